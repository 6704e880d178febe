/* Giving space back: lists of byte runs, their intersection with what a
 * file really has allocated, and punching them (fallocate PUNCH_HOLE on a
 * regular file, BLKDISCARD on a block device).
 *
 * Punching only ever turns bytes into zeros: callers pass runs nothing
 * refers to (free pool blocks) or runs that are zero already, so a crash
 * between two calls leaves a valid state. Every punch or discard goes
 * through src/util/safeio (counted, fault-injectable). */
#ifndef DMR_LOOPFILE_PUNCH_H
#define DMR_LOOPFILE_PUNCH_H

#include <stddef.h>
#include <stdint.h>

#include "loopfile/extents.h"
#include "util/err.h"

struct lf_run {
	uint64_t off, len; /* bytes */
};

/* Sorted, disjoint runs; lf_runs_push merges a run touching the last. */
struct lf_runs {
	struct lf_run *v;
	size_t n, cap;
	uint64_t bytes; /* sum of len */
};

int lf_runs_push(struct lf_runs *r, uint64_t off, uint64_t len);
void lf_runs_free(struct lf_runs *r);

/* out = a ∪ b (both sorted and disjoint), coalesced. */
int lf_runs_union(const struct lf_runs *a, const struct lf_runs *b, struct lf_runs *out);

/* out = [0, limit) minus r (sorted and disjoint). */
int lf_runs_complement(const struct lf_runs *r, uint64_t limit, struct lf_runs *out);

/* The n largest runs (largest first, then by offset) into out[0..*got). */
void lf_runs_largest(const struct lf_runs *r, struct lf_run *out, size_t n, size_t *got);

/* The block size of fd's filesystem (a power of two; 4096 when unknown):
 * runs are shrunk to it so no partial block is zeroed instead of freed. */
uint64_t lf_fs_block(int fd);

/* out = the parts of want (sorted, disjoint) that fd has allocated below
 * limit, shrunk to whole align-byte units (align a power of two, or 1),
 * coalesced into maximal runs. One pass over what the file occupies on the
 * host (lf_occupied_ranges: FIEMAP with preallocated extents, or
 * SEEK_DATA/SEEK_HOLE), so already-sparse parts cost nothing. */
int lf_runs_allocated(int fd, const struct lf_runs *want, uint64_t limit, uint64_t align, struct lf_runs *out,
		      enum lf_extent_method *method, struct dmr_err *err);

/* Discard limits of a block device, from sysfs (queue/discard_*). */
struct lf_discard {
	uint64_t granularity; /* bytes; 0 when the device cannot discard */
	uint64_t max_bytes;   /* largest single discard; 0: cannot discard */
	uint64_t alignment;   /* offset of the first granule */
	int zeroes_data;      /* queue/discard_zeroes_data says 1 */
};
/* sysroot "" for this machine. Missing attributes mean "cannot discard". */
int lf_discard_limits(const char *sysroot, int fd, struct lf_discard *out, struct dmr_err *err);

/* Shrinks runs to whole discard granules (honouring the alignment):
 * discarding part of a granule does nothing useful, or zeroes more than
 * asked on some devices. */
int lf_runs_granular(const struct lf_runs *in, const struct lf_discard *d, struct lf_runs *out);

/* Asks fd's filesystem whether it can punch holes, changing nothing (a
 * punch wholly beyond the end of the file, size kept): 0 yes,
 * DMR_EUNSUPP no (one line naming what), DMR_EIO other failures. */
int lf_punch_probe(int fd, const char *what, struct dmr_err *err);

/* Progress: bytes done of total, called after each call. */
typedef void (*lf_progress_fn)(void *ctx, uint64_t done, uint64_t total);

struct lf_punch_stats {
	uint64_t calls; /* fallocate or ioctl calls made */
	uint64_t bytes; /* bytes punched or discarded */
};

/* Punches every run of fd (a regular file: one fallocate per run), or
 * discards it (blockdev: BLKDISCARD per run, split at d->max_bytes). what
 * names the file in errors. Stops at the first failure (*st says how far
 * it got). */
int lf_punch_runs(int fd, int blockdev, const struct lf_discard *d, const struct lf_runs *runs,
		  lf_progress_fn progress, void *ctx, struct lf_punch_stats *st, const char *what,
		  struct dmr_err *err);

#endif
