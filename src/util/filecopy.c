/* Sparse copies and attribute copies (see filecopy.h). */
#include "config.h"
#include "util/filecopy.h"

#include <errno.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "loopfile/extents.h"
#include "util/safeio.h"
#include "util/sha256.h"

/* Zero chunks of this size (aligned) are not written: they stay holes. */
#define FC_CHUNK ((size_t)64 << 10)
/* Read this much at a time. */
#define FC_READ ((size_t)1 << 20)

struct copy {
	int src, dst;
	const char *what;
	unsigned char *buf;
	struct sha256_ctx sha;
	int hashing;
	uint64_t hashed_to; /* logical bytes hashed so far (holes as zeros) */
	uint64_t written;
	struct dmr_err *err;
	int failed;         /* the callback set err */
};

static const unsigned char zeros[FC_CHUNK];

static int all_zero(const unsigned char *p, size_t len)
{
	return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

/* Hashes the hole [hashed_to, to) as zeros. */
static void hash_zeros_to(struct copy *c, uint64_t to)
{
	while (c->hashing && c->hashed_to < to) {
		uint64_t n = to - c->hashed_to < FC_CHUNK ? to - c->hashed_to : FC_CHUNK;
		sha256_update(&c->sha, zeros, (size_t)n);
		c->hashed_to += n;
	}
}

/* Writes the non-zero chunks of buf (len bytes at off), runs of them
 * coalesced into one write. */
static int write_nonzero(struct copy *c, const unsigned char *buf, size_t len, uint64_t off)
{
	size_t run = 0, run_len = 0;
	for (size_t i = 0; i < len; i += FC_CHUNK) {
		size_t n = len - i < FC_CHUNK ? len - i : FC_CHUNK;
		if (!all_zero(buf + i, n)) {
			if (!run_len)
				run = i;
			run_len += n;
			continue;
		}
		if (run_len && sio_pwrite(c->dst, buf + run, run_len, (off_t)(off + run), c->what, c->err))
			return c->err ? c->err->code : DMR_EIO;
		c->written += run_len;
		run_len = 0;
	}
	if (run_len && sio_pwrite(c->dst, buf + run, run_len, (off_t)(off + run), c->what, c->err))
		return c->err ? c->err->code : DMR_EIO;
	c->written += run_len;
	return 0;
}

/* lf_allocated_ranges callback: copies [off, off+len). */
static int copy_range(void *ctx, uint64_t off, uint64_t len)
{
	struct copy *c = ctx;
	hash_zeros_to(c, off);
	uint64_t end = off + len;
	while (off < end) {
		size_t want = end - off < FC_READ ? (size_t)(end - off) : FC_READ;
		ssize_t n = pread(c->src, c->buf, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			c->failed = 1;
			if (n == 0)
				return dmr_err_set(c->err, DMR_EIO, "copying %s: the source shrank while being copied",
						   c->what);
			return dmr_err_set(c->err, DMR_EIO, "copying %s: reading: %s", c->what, strerror(errno));
		}
		int r = write_nonzero(c, c->buf, (size_t)n, off);
		if (r) {
			c->failed = 1;
			return r;
		}
		if (c->hashing) {
			sha256_update(&c->sha, c->buf, (size_t)n);
			c->hashed_to = off + (uint64_t)n;
		}
		off += (uint64_t)n;
	}
	return 0;
}

int fc_copy_sparse(int src_fd, int dst_fd, const char *what, uint64_t *bytes_written, char sha256_hex[65],
		   struct dmr_err *err)
{
	struct stat st;
	uint64_t size;
	if (fstat(src_fd, &st) < 0)
		return dmr_err_set(err, DMR_EIO, "copying %s: cannot stat the source: %s", what, strerror(errno));
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(src_fd, BLKGETSIZE64, &size) < 0)
			return dmr_err_set(err, DMR_EIO, "copying %s: cannot get the device size: %s", what,
					   strerror(errno));
	} else if (S_ISREG(st.st_mode)) {
		size = (uint64_t)st.st_size;
	} else {
		return dmr_err_set(err, DMR_EUSAGE, "copying %s: not a regular file or block device", what);
	}
	struct copy c = { .src = src_fd, .dst = dst_fd, .what = what, .hashing = sha256_hex != NULL };
	struct dmr_err ranges_err = { 0 };
	c.err = err ? err : &ranges_err;
	c.buf = malloc(FC_READ);
	if (!c.buf)
		return dmr_err_set(err, DMR_ENOMEM, "copying %s: out of memory", what);
	sha256_init(&c.sha);
	int r;
	if (S_ISBLK(st.st_mode)) {
		/* A device has no holes to ask for: read it whole. */
		r = size ? copy_range(&c, 0, size) : 0;
	} else {
		r = lf_allocated_ranges(src_fd, 0, size, copy_range, &c, NULL, &ranges_err);
		if (r && !c.failed)
			r = dmr_err_set(err, ranges_err.code, "copying %s: %s", what, ranges_err.msg);
		else if (r)
			r = c.err->code;
	}
	free(c.buf);
	if (r)
		return r;
	hash_zeros_to(&c, size);
	if (sio_ftruncate(dst_fd, (off_t)size, what, err))
		return err ? err->code : DMR_EIO;
	if (bytes_written)
		*bytes_written = c.written;
	if (sha256_hex)
		sha256_final_hex(&c.sha, sha256_hex);
	return 0;
}

/* Names in the namespaces only root may set. */
static int privileged_xattr(const char *name)
{
	return !strncmp(name, "trusted.", 8) || !strncmp(name, "security.", 9);
}

static int no_xattrs(int e)
{
	return e == ENOTSUP || e == EOPNOTSUPP || e == ENOSYS;
}

static int copy_xattrs(int src_fd, int dst_fd, const char *what, struct dmr_err *err)
{
	ssize_t len = flistxattr(src_fd, NULL, 0);
	if (len < 0)
		return no_xattrs(errno) ? 0
					: dmr_err_set(err, DMR_EIO, "%s: listing extended attributes: %s", what,
						      strerror(errno));
	if (len == 0)
		return 0;
	char *names = malloc((size_t)len);
	char *val = NULL;
	int r = 0;
	if (!names)
		return dmr_err_set(err, DMR_ENOMEM, "%s: out of memory", what);
	len = flistxattr(src_fd, names, (size_t)len);
	if (len < 0) {
		r = dmr_err_set(err, DMR_EIO, "%s: listing extended attributes: %s", what,
				errno == ERANGE ? "they changed while being read" : strerror(errno));
		goto out;
	}
	for (char *name = names; name < names + len; name += strlen(name) + 1) {
		ssize_t vlen = fgetxattr(src_fd, name, NULL, 0);
		if (vlen < 0) {
			if (errno == ENODATA)
				continue; /* removed since the listing */
			r = dmr_err_set(err, DMR_EIO, "%s: reading extended attribute %s: %s", what, name,
					strerror(errno));
			goto out;
		}
		free(val);
		val = malloc(vlen ? (size_t)vlen : 1);
		if (!val) {
			r = dmr_err_set(err, DMR_ENOMEM, "%s: out of memory", what);
			goto out;
		}
		vlen = fgetxattr(src_fd, name, val, (size_t)vlen);
		if (vlen < 0) {
			r = dmr_err_set(err, DMR_EIO, "%s: reading extended attribute %s: %s", what, name,
					strerror(errno));
			goto out;
		}
		if (fsetxattr(dst_fd, name, val, (size_t)vlen, 0) == 0)
			continue;
		if (no_xattrs(errno))
			break; /* the destination cannot hold them */
		if ((errno == EPERM || errno == EACCES) && privileged_xattr(name) && geteuid() != 0)
			continue; /* not ours to set */
		r = dmr_err_set(err, DMR_EIO, "%s: setting extended attribute %s: %s", what, name, strerror(errno));
		goto out;
	}
out:
	free(val);
	free(names);
	return r;
}

int fc_copy_attrs(int src_fd, int dst_fd, const char *what, struct dmr_err *err)
{
	int r = sio_fault_point("attrs", what, err);
	if (r)
		return r;
	struct stat st, dst;
	if (fstat(src_fd, &st) < 0 || fstat(dst_fd, &dst) < 0)
		return dmr_err_set(err, DMR_EIO, "%s: cannot stat: %s", what, strerror(errno));
	/* Owner first (chown clears set-id bits and file capabilities), then
	 * the xattrs, then the mode. Without the right to chown, the copy
	 * keeps ours. */
	if ((st.st_uid != dst.st_uid || st.st_gid != dst.st_gid) && fchown(dst_fd, st.st_uid, st.st_gid) < 0 &&
	    errno != EPERM)
		return dmr_err_set(err, DMR_EIO, "%s: setting the owner: %s", what, strerror(errno));
	r = copy_xattrs(src_fd, dst_fd, what, err);
	if (r)
		return r;
	if (fchmod(dst_fd, st.st_mode & 07777) < 0)
		return dmr_err_set(err, DMR_EIO, "%s: setting the mode: %s", what, strerror(errno));
	return 0;
}
