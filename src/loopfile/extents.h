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

/* Bytes allocated in the file inside the sorted, disjoint byte ranges given
 * by next_range (which returns 0 at the end): the exact bytes that punching
 * those ranges would give back. */
struct lf_ranges {
	const uint64_t *start; /* byte offsets */
	const uint64_t *len;
	size_t n;
};
int lf_allocated_in(int fd, const struct lf_ranges *r, uint64_t *bytes, enum lf_extent_method *method,
		    struct dmr_err *err);

#endif
