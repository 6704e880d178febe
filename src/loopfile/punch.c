#include "config.h"
#include "loopfile/punch.h"
#include "util/safeio.h"
#include "util/grow.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

uint64_t lf_fs_block(int fd)
{
	struct statfs f;
	uint64_t b = fstatfs(fd, &f) == 0 && f.f_bsize > 0 ? (uint64_t)f.f_bsize : 4096;
	return b & (b - 1) ? 4096 : b;
}

int lf_runs_push(struct lf_runs *r, uint64_t off, uint64_t len)
{
	if (!len)
		return 0;
	if (r->n && r->v[r->n - 1].off + r->v[r->n - 1].len == off) {
		r->v[r->n - 1].len += len;
		r->bytes += len;
		return 0;
	}
	struct lf_run *v = dmr_grow(r->v, &r->cap, r->n, sizeof(*v));
	if (!v)
		return DMR_ENOMEM;
	r->v = v;
	r->v[r->n].off = off;
	r->v[r->n++].len = len;
	r->bytes += len;
	return 0;
}

void lf_runs_free(struct lf_runs *r)
{
	free(r->v);
	memset(r, 0, sizeof(*r));
}

/* Appends [off, off+len) to r, merging with an overlapping last run. */
static int push_merge(struct lf_runs *r, uint64_t off, uint64_t len)
{
	if (r->n) {
		struct lf_run *l = &r->v[r->n - 1];
		if (off <= l->off + l->len) {
			uint64_t end = off + len > l->off + l->len ? off + len : l->off + l->len;
			r->bytes += end - (l->off + l->len);
			l->len = end - l->off;
			return 0;
		}
	}
	return lf_runs_push(r, off, len);
}

int lf_runs_union(const struct lf_runs *a, const struct lf_runs *b, struct lf_runs *out)
{
	memset(out, 0, sizeof(*out));
	size_t i = 0, j = 0;
	while (i < a->n || j < b->n) {
		const struct lf_run *x = j >= b->n || (i < a->n && a->v[i].off <= b->v[j].off) ? &a->v[i++] : &b->v[j++];
		if (push_merge(out, x->off, x->len)) {
			lf_runs_free(out);
			return DMR_ENOMEM;
		}
	}
	return 0;
}

int lf_runs_complement(const struct lf_runs *r, uint64_t limit, struct lf_runs *out)
{
	memset(out, 0, sizeof(*out));
	uint64_t pos = 0;
	for (size_t i = 0; i <= r->n && pos < limit; i++) {
		uint64_t next = i < r->n ? r->v[i].off : limit;
		if (next > limit)
			next = limit;
		if (next > pos && lf_runs_push(out, pos, next - pos)) {
			lf_runs_free(out);
			return DMR_ENOMEM;
		}
		if (i < r->n && r->v[i].off + r->v[i].len > pos)
			pos = r->v[i].off + r->v[i].len;
	}
	return 0;
}

/* Is a larger (or as large and earlier) than b? */
static int bigger(const struct lf_run *a, const struct lf_run *b)
{
	return a->len > b->len || (a->len == b->len && a->off < b->off);
}

void lf_runs_largest(const struct lf_runs *r, struct lf_run *out, size_t n, size_t *got)
{
	size_t k = 0;
	for (size_t i = 0; i < r->n && n; i++) {
		if (k == n && !bigger(&r->v[i], &out[k - 1]))
			continue;
		size_t j = k < n ? k++ : n - 1;
		while (j > 0 && bigger(&r->v[i], &out[j - 1])) {
			out[j] = out[j - 1];
			j--;
		}
		out[j] = r->v[i];
	}
	*got = k;
}

struct isect {
	const struct lf_runs *want;
	size_t i; /* first want run that may still overlap */
	uint64_t align;
	struct lf_runs *out;
	uint64_t pend_off, pend_len; /* the run being built, before alignment */
	int oom;
};

static int flush_pending(struct isect *x)
{
	if (!x->pend_len)
		return 0;
	uint64_t a = x->align;
	uint64_t s = (x->pend_off + a - 1) / a * a;
	uint64_t e = (x->pend_off + x->pend_len) / a * a;
	x->pend_len = 0;
	return e > s ? lf_runs_push(x->out, s, e - s) : 0;
}

static int add_piece(struct isect *x, uint64_t off, uint64_t len)
{
	if (x->pend_len && x->pend_off + x->pend_len == off) {
		x->pend_len += len;
		return 0;
	}
	int r = flush_pending(x);
	x->pend_off = off;
	x->pend_len = len;
	return r;
}

static int on_allocated(void *ctx, uint64_t off, uint64_t len)
{
	struct isect *x = ctx;
	const struct lf_runs *w = x->want;
	uint64_t end = off + len;
	while (x->i < w->n && w->v[x->i].off + w->v[x->i].len <= off)
		x->i++;
	for (size_t i = x->i; i < w->n && w->v[i].off < end; i++) {
		uint64_t s = w->v[i].off > off ? w->v[i].off : off;
		uint64_t e = w->v[i].off + w->v[i].len < end ? w->v[i].off + w->v[i].len : end;
		if (e > s && add_piece(x, s, e - s)) {
			x->oom = 1;
			return -ENOMEM;
		}
	}
	return 0;
}

int lf_runs_allocated(int fd, const struct lf_runs *want, uint64_t limit, uint64_t align, struct lf_runs *out,
		      enum lf_extent_method *method, struct dmr_err *err)
{
	memset(out, 0, sizeof(*out));
	if (!align || (align & (align - 1)))
		return dmr_err_set(err, DMR_EUSAGE, "alignment %" PRIu64 " is not a power of two", align);
	struct isect x = { .want = want, .align = align, .out = out };
	if (want->n == 0)
		return 0;
	uint64_t start = want->v[0].off;
	uint64_t end = want->v[want->n - 1].off + want->v[want->n - 1].len;
	if (end > limit)
		end = limit;
	int r = 0;
	if (start < end)
		r = lf_occupied_ranges(fd, start, end, on_allocated, &x, method, err);
	if (x.oom || (!r && flush_pending(&x))) {
		lf_runs_free(out);
		return dmr_err_set(err, DMR_ENOMEM, "out of memory listing the runs to punch");
	}
	if (r)
		lf_runs_free(out);
	return r;
}

/* Reads a number from a sysfs attribute of the device's queue. */
static int queue_attr(const char *sysroot, dev_t dev, const char *name, uint64_t *v)
{
	char path[512];
	/* A partition has no queue/ of its own: its disk's is one up. */
	for (int k = 0; k < 2; k++) {
		snprintf(path, sizeof(path), "%s/sys/dev/block/%u:%u/%squeue/%s", sysroot, major(dev), minor(dev),
			 k ? "../" : "", name);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		unsigned long long x;
		int ok = fscanf(f, "%llu", &x) == 1;
		fclose(f);
		if (ok) {
			*v = x;
			return 0;
		}
	}
	return -1;
}

int lf_discard_limits(const char *sysroot, int fd, struct lf_discard *out, struct dmr_err *err)
{
	memset(out, 0, sizeof(*out));
	struct stat s;
	if (fstat(fd, &s) < 0)
		return dmr_err_set(err, DMR_EIO, "stat: %s", strerror(errno));
	if (!S_ISBLK(s.st_mode))
		return dmr_err_set(err, DMR_EUSAGE, "not a block device");
	uint64_t g = 0, m = 0, a = 0, z = 0;
	if (queue_attr(sysroot, s.st_rdev, "discard_granularity", &g) ||
	    queue_attr(sysroot, s.st_rdev, "discard_max_bytes", &m))
		return 0; /* no discard attributes: cannot discard */
	(void)queue_attr(sysroot, s.st_rdev, "discard_alignment", &a);
	(void)queue_attr(sysroot, s.st_rdev, "discard_zeroes_data", &z);
	if (!g || !m)
		return 0;
	out->granularity = g;
	out->max_bytes = m;
	out->alignment = a % g;
	out->zeroes_data = z == 1;
	return 0;
}

int lf_runs_granular(const struct lf_runs *in, const struct lf_discard *d, struct lf_runs *out)
{
	memset(out, 0, sizeof(*out));
	uint64_t g = d->granularity ? d->granularity : 1, a = d->alignment;
	for (size_t i = 0; i < in->n; i++) {
		uint64_t s = in->v[i].off, e = s + in->v[i].len;
		if (e <= a)
			continue;
		uint64_t s2 = s < a ? a : s;
		s2 = a + (s2 - a + g - 1) / g * g;
		uint64_t e2 = a + (e - a) / g * g;
		if (e2 > s2 && lf_runs_push(out, s2, e2 - s2)) {
			lf_runs_free(out);
			return DMR_ENOMEM;
		}
	}
	return 0;
}

int lf_punch_probe(int fd, const char *what, struct dmr_err *err)
{
	struct stat s;
	if (fstat(fd, &s) < 0)
		return dmr_err_set(err, DMR_EIO, "%s: %s", what, strerror(errno));
	off_t past = (s.st_size + 65535) / 65536 * 65536 + 65536;
	while (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, past, 65536) != 0) {
		if (errno == EOPNOTSUPP || errno == ENOSYS)
			return dmr_err_set(err, DMR_EUNSUPP, "%s: its filesystem cannot punch holes (fallocate "
					   "PUNCH_HOLE: %s)", what, strerror(errno));
		if (errno != EINTR)
			return dmr_err_set(err, DMR_EIO, "%s: probing for hole punching: %s", what, strerror(errno));
	}
	return 0;
}

static int discard(int fd, uint64_t off, uint64_t len, const char *what, struct dmr_err *err)
{
	int r = sio_fault_point("discard", what, err);
	if (r)
		return r;
	uint64_t range[2] = { off, len };
	while (ioctl(fd, BLKDISCARD, range) != 0) {
		if (errno == EOPNOTSUPP)
			return dmr_err_set(err, DMR_EUNSUPP, "%s: the device does not support discard (BLKDISCARD)",
					   what);
		if (errno != EINTR)
			return dmr_err_set(err, DMR_EIO, "discarding %" PRIu64 "+%" PRIu64 " bytes of %s: %s", off,
					   len, what, strerror(errno));
	}
	return 0;
}

int lf_punch_runs(int fd, int blockdev, const struct lf_discard *d, const struct lf_runs *runs,
		  lf_progress_fn progress, void *ctx, struct lf_punch_stats *st, const char *what,
		  struct dmr_err *err)
{
	memset(st, 0, sizeof(*st));
	if (blockdev && (!d || !d->max_bytes))
		return dmr_err_set(err, DMR_EUNSUPP, "%s: the device does not support discard", what);
	for (size_t i = 0; i < runs->n; i++) {
		uint64_t off = runs->v[i].off, left = runs->v[i].len;
		while (left) {
			uint64_t n = left;
			int r;
			if (blockdev) {
				/* A whole number of granules per call. */
				if (n > d->max_bytes) {
					uint64_t g = d->granularity ? d->granularity : 512;
					n = d->max_bytes / g * g;
					if (!n)
						n = d->max_bytes;
				}
				r = discard(fd, off, n, what, err);
			} else {
				if (n > (uint64_t)INT64_MAX)
					n = (uint64_t)INT64_MAX / 4096 * 4096;
				r = sio_punch(fd, (off_t)off, (off_t)n, what, err);
			}
			if (r)
				return r;
			st->calls++;
			st->bytes += n;
			off += n;
			left -= n;
			if (progress)
				progress(ctx, st->bytes, runs->bytes);
		}
	}
	return 0;
}
