/* Which byte ranges of a file hold data (are allocated) rather than holes:
 * SEEK_DATA/SEEK_HOLE, or FIEMAP where lseek does not know them, or the
 * whole range where neither works (counted as allocated: never claim a
 * hole that is not there). */
#ifndef DMR_LOOPFILE_EXTENTS_H
#define DMR_LOOPFILE_EXTENTS_H

#include <stdint.h>

#include "util/err.h"

enum lf_extent_method { LF_EXT_SEEK, LF_EXT_FIEMAP, LF_EXT_ASSUME_ALLOCATED };

/* Calls fn for each allocated range [off, off+len) inside [start, end), in
 * ascending order. *method (when not NULL) says how they were found. */
int lf_allocated_ranges(int fd, uint64_t start, uint64_t end,
			int (*fn)(void *ctx, uint64_t off, uint64_t len), void *ctx,
			enum lf_extent_method *method, struct dmr_err *err);

/* Like lf_allocated_ranges, but for what takes space on the host rather
 * than what holds data: FIEMAP first, counting preallocated (unwritten)
 * extents, which SEEK_DATA calls holes although they occupy the disk
 * (a loop device turns write-zeroes into fallocate(ZERO_RANGE)); then
 * SEEK_DATA/SEEK_HOLE, then the whole range. For reclaim. */
int lf_occupied_ranges(int fd, uint64_t start, uint64_t end, int (*fn)(void *ctx, uint64_t off, uint64_t len),
		       void *ctx, enum lf_extent_method *method, struct dmr_err *err);

#endif
