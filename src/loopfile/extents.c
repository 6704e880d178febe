#include "config.h"
#include "loopfile/extents.h"

#include <errno.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int by_seek(int fd, uint64_t start, uint64_t end, int (*fn)(void *, uint64_t, uint64_t), void *ctx)
{
	uint64_t pos = start;
	while (pos < end) {
		off_t d = lseek(fd, (off_t)pos, SEEK_DATA);
		if (d < 0)
			return errno == ENXIO ? 0 : -errno; /* ENXIO: no data after pos */
		if ((uint64_t)d >= end)
			return 0;
		off_t h = lseek(fd, d, SEEK_HOLE);
		if (h < 0)
			return -errno;
		uint64_t e = (uint64_t)h < end ? (uint64_t)h : end;
		int r = fn(ctx, (uint64_t)d, e - (uint64_t)d);
		if (r)
			return r > 0 ? -r : r;
		pos = e;
	}
	return 0;
}

#define FIEMAP_BATCH 256

/* *called: fn was called at least once (an error after that is not a
 * reason to fall back: the ranges would be reported twice). */
static int by_fiemap(int fd, uint64_t start, uint64_t end, int (*fn)(void *, uint64_t, uint64_t), void *ctx,
		     int *called, int unwritten_too)
{
	size_t sz = sizeof(struct fiemap) + FIEMAP_BATCH * sizeof(struct fiemap_extent);
	struct fiemap *fm = calloc(1, sz);
	if (!fm)
		return -ENOMEM;
	uint64_t pos = start, last_end = start;
	int r = 0;
	while (pos < end) {
		memset(fm, 0, sz);
		fm->fm_start = pos;
		fm->fm_length = end - pos;
		fm->fm_flags = FIEMAP_FLAG_SYNC;
		fm->fm_extent_count = FIEMAP_BATCH;
		if (ioctl(fd, FS_IOC_FIEMAP, fm) < 0) {
			r = -errno;
			break;
		}
		if (fm->fm_mapped_extents == 0)
			break;
		int last = 0;
		for (unsigned i = 0; i < fm->fm_mapped_extents && !r; i++) {
			const struct fiemap_extent *e = &fm->fm_extents[i];
			uint64_t a = e->fe_logical, b = e->fe_logical + e->fe_length;
			if (e->fe_flags & FIEMAP_EXTENT_LAST)
				last = 1;
			if ((e->fe_flags & FIEMAP_EXTENT_UNWRITTEN) && !unwritten_too)
				continue; /* preallocated, reads as zeros, but still allocated */
			if (a < last_end)
				a = last_end; /* never report a byte twice */
			if (b > end)
				b = end;
			if (a < b) {
				*called = 1;
				r = fn(ctx, a, b - a);
			}
			if (b > last_end)
				last_end = b;
		}
		if (r || last)
			break;
		const struct fiemap_extent *e = &fm->fm_extents[fm->fm_mapped_extents - 1];
		uint64_t next = e->fe_logical + e->fe_length;
		if (next <= pos)
			break; /* no progress: do not loop */
		pos = next;
	}
	free(fm);
	return r > 0 ? -r : r;
}

int lf_allocated_ranges(int fd, uint64_t start, uint64_t end,
			int (*fn)(void *ctx, uint64_t off, uint64_t len), void *ctx,
			enum lf_extent_method *method, struct dmr_err *err)
{
	if (start >= end)
		return 0;
	/* Probe once: some filesystems answer SEEK_DATA with EINVAL. */
	if (lseek(fd, (off_t)start, SEEK_DATA) >= 0 || errno == ENXIO) {
		if (method)
			*method = LF_EXT_SEEK;
		int r = by_seek(fd, start, end, fn, ctx);
		return r ? dmr_err_set(err, DMR_EIO, "finding holes: %s", strerror(-r)) : 0;
	}
	int called = 0;
	int r = by_fiemap(fd, start, end, fn, ctx, &called, 0);
	if (r == 0) {
		if (method)
			*method = LF_EXT_FIEMAP;
		return 0;
	}
	if (called || (r != -EOPNOTSUPP && r != -ENOTTY && r != -EINVAL))
		return dmr_err_set(err, DMR_EIO, "finding holes: %s", strerror(-r));
	if (method)
		*method = LF_EXT_ASSUME_ALLOCATED;
	r = fn(ctx, start, end - start);
	return r ? dmr_err_set(err, DMR_EIO, "finding holes: %s", strerror(r < 0 ? -r : r)) : 0;
}

int lf_occupied_ranges(int fd, uint64_t start, uint64_t end, int (*fn)(void *ctx, uint64_t off, uint64_t len),
		       void *ctx, enum lf_extent_method *method, struct dmr_err *err)
{
	if (start >= end)
		return 0;
	int called = 0;
	int r = by_fiemap(fd, start, end, fn, ctx, &called, 1);
	if (r == 0) {
		if (method)
			*method = LF_EXT_FIEMAP;
		return 0;
	}
	if (called || (r != -EOPNOTSUPP && r != -ENOTTY && r != -EINVAL))
		return dmr_err_set(err, DMR_EIO, "finding holes: %s", strerror(-r));
	return lf_allocated_ranges(fd, start, end, fn, ctx, method, err);
}
