/* Sparse copies, the digest that ignores holes, and attribute copies (see
 * filecopy.h). */
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
/* The block of FC_DIGEST_NONZERO. */
#define FC_BLOCK ((size_t)4096)

/* One pass over a source's allocated ranges: a copy (dst >= 0), a digest,
 * or both. */
struct copy {
	int src, dst;       /* dst -1: nothing written */
	const char *verb;   /* "copying", "hashing": for errors */
	const char *what;
	unsigned char *buf;
	struct sha256_ctx sha;
	enum fc_digest digest;
	uint64_t hashed_to; /* FC_DIGEST_SHA256: logical bytes hashed so far (holes as zeros) */
	/* FC_DIGEST_NONZERO: the block being filled (a range that starts or
	 * ends inside a block), zeros where nothing was read. */
	unsigned char block[FC_BLOCK];
	uint64_t block_off;
	int block_pending;
	uint64_t written;
	struct dmr_err *err;
	int failed;         /* the callback set err */
};

static const unsigned char zeros[FC_CHUNK];

static int all_zero(const unsigned char *p, size_t len)
{
	return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

static void hash_le64(struct sha256_ctx *sha, uint64_t v)
{
	unsigned char le[8];
	for (int i = 0; i < 8; i++)
		le[i] = (unsigned char)(v >> (8 * i));
	sha256_update(sha, le, sizeof(le));
}

/* FC_DIGEST_NONZERO: one whole block at off. */
static void hash_block(struct copy *c, const unsigned char *b, uint64_t off)
{
	if (all_zero(b, FC_BLOCK))
		return;
	hash_le64(&c->sha, off);
	sha256_update(&c->sha, b, FC_BLOCK);
}

static void flush_block(struct copy *c)
{
	if (c->block_pending)
		hash_block(c, c->block, c->block_off);
	c->block_pending = 0;
}

/* FC_DIGEST_NONZERO: len bytes read at off (ascending across calls). */
static void hash_nonzero(struct copy *c, const unsigned char *p, size_t len, uint64_t off)
{
	while (len) {
		uint64_t blk = off & ~(uint64_t)(FC_BLOCK - 1);
		size_t in = (size_t)(off - blk), n = FC_BLOCK - in < len ? FC_BLOCK - in : len;
		if (c->block_pending && c->block_off != blk)
			flush_block(c);
		if (!c->block_pending && n == FC_BLOCK) {
			hash_block(c, p, blk); /* a whole block: no need to gather it */
		} else {
			if (!c->block_pending) {
				memset(c->block, 0, FC_BLOCK);
				c->block_off = blk;
				c->block_pending = 1;
			}
			memcpy(c->block + in, p, n);
		}
		p += n;
		off += n;
		len -= n;
	}
}

/* FC_DIGEST_SHA256: hashes the hole [hashed_to, to) as zeros. */
static void hash_zeros_to(struct copy *c, uint64_t to)
{
	while (c->digest == FC_DIGEST_SHA256 && c->hashed_to < to) {
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

/* lf_allocated_ranges callback: copies and/or hashes [off, off+len). */
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
				return dmr_err_set(c->err, DMR_EIO, "%s %s: the source shrank while being read", c->verb,
						   c->what);
			return dmr_err_set(c->err, DMR_EIO, "%s %s: reading: %s", c->verb, c->what, strerror(errno));
		}
		int r = c->dst >= 0 ? write_nonzero(c, c->buf, (size_t)n, off) : 0;
		if (r) {
			c->failed = 1;
			return r;
		}
		if (c->digest == FC_DIGEST_SHA256) {
			sha256_update(&c->sha, c->buf, (size_t)n);
			c->hashed_to = off + (uint64_t)n;
		} else if (c->digest == FC_DIGEST_NONZERO) {
			hash_nonzero(c, c->buf, (size_t)n, off);
		}
		off += (uint64_t)n;
	}
	return 0;
}

/* The pass over src_fd's first limit bytes (at most) behind fc_copy_sparse
 * (dst_fd >= 0) and fc_digest_nonzero (dst_fd -1). */
static int sparse_pass(int src_fd, int dst_fd, const char *verb, const char *what, uint64_t limit,
		       uint64_t *bytes_written, enum fc_digest digest, char hex[65], struct dmr_err *err)
{
	struct stat st;
	uint64_t size;
	if (fstat(src_fd, &st) < 0)
		return dmr_err_set(err, DMR_EIO, "%s %s: cannot stat the source: %s", verb, what, strerror(errno));
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(src_fd, BLKGETSIZE64, &size) < 0)
			return dmr_err_set(err, DMR_EIO, "%s %s: cannot get the device size: %s", verb, what,
					   strerror(errno));
	} else if (S_ISREG(st.st_mode)) {
		size = (uint64_t)st.st_size;
	} else {
		return dmr_err_set(err, DMR_EUSAGE, "%s %s: not a regular file or block device", verb, what);
	}
	if (size > limit)
		size = limit;
	struct copy *c = calloc(1, sizeof(*c));
	if (!c || !(c->buf = malloc(FC_READ))) {
		free(c);
		return dmr_err_set(err, DMR_ENOMEM, "%s %s: out of memory", verb, what);
	}
	struct dmr_err ranges_err = { 0 };
	c->src = src_fd;
	c->dst = dst_fd;
	c->verb = verb;
	c->what = what;
	c->digest = hex ? digest : FC_DIGEST_NONE;
	c->err = err ? err : &ranges_err;
	sha256_init(&c->sha);
	int r;
	if (S_ISBLK(st.st_mode)) {
		/* A device has no holes to ask for: read it whole. */
		r = size ? copy_range(c, 0, size) : 0;
	} else {
		r = lf_allocated_ranges(src_fd, 0, size, copy_range, c, NULL, &ranges_err);
		if (r && !c->failed)
			r = dmr_err_set(err, ranges_err.code, "%s %s: %s", verb, what, ranges_err.msg);
		else if (r)
			r = c->err->code;
	}
	if (!r) {
		hash_zeros_to(c, size);
		if (dst_fd >= 0 && sio_ftruncate(dst_fd, (off_t)size, what, err))
			r = err ? err->code : DMR_EIO;
	}
	if (!r && bytes_written)
		*bytes_written = c->written;
	if (!r && c->digest == FC_DIGEST_NONZERO) {
		flush_block(c);
		hash_le64(&c->sha, size);
	}
	if (!r && c->digest != FC_DIGEST_NONE)
		sha256_final_hex(&c->sha, hex);
	free(c->buf);
	free(c);
	return r;
}

int fc_copy_sparse_digest(int src_fd, int dst_fd, const char *what, uint64_t *bytes_written, enum fc_digest digest,
			  char hex[65], struct dmr_err *err)
{
	return sparse_pass(src_fd, dst_fd, "copying", what, UINT64_MAX, bytes_written, digest, hex, err);
}

int fc_copy_sparse(int src_fd, int dst_fd, const char *what, uint64_t *bytes_written, char sha256_hex[65],
		   struct dmr_err *err)
{
	return fc_copy_sparse_digest(src_fd, dst_fd, what, bytes_written,
				     sha256_hex ? FC_DIGEST_SHA256 : FC_DIGEST_NONE, sha256_hex, err);
}

int fc_digest_nonzero_len(int fd, uint64_t len, const char *what, char hex[65], struct dmr_err *err)
{
	return sparse_pass(fd, -1, "hashing", what, len, NULL, FC_DIGEST_NONZERO, hex, err);
}

int fc_digest_nonzero(int fd, char hex[65], struct dmr_err *err)
{
	return fc_digest_nonzero_len(fd, UINT64_MAX, "a file", hex, err);
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
