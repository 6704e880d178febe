/* Every mapping run of a few devices, collected into arrays: for commands
 * that look at one or two devices as a whole (export, diff), where a
 * callback walk would tangle reading with deciding. Memory: one tm_run
 * (32 bytes) per coalesced run. */
#ifndef DMR_THINMETA_RUNLIST_H
#define DMR_THINMETA_RUNLIST_H

#include <stddef.h>
#include <stdint.h>

#include "thinmeta/pool.h"

struct tm_runlist {
	struct tm_run *v; /* ascending vbegin, not overlapping */
	size_t n, cap;
	uint64_t mapped;  /* blocks */
	uint64_t end;     /* highest mapped virtual block + 1; 0 = none */
};

/* Walks roots[0..n) and fills out[0..n). Damage goes to damage(ctx, root
 * index, d) and the walk goes on (the lost blocks are simply not in the
 * list). Free with tm_runlist_free even on failure. */
int tm_runlist_collect(struct tm_pool *p, const uint64_t *roots, size_t n, uint64_t nr_data_blocks,
		       void (*damage)(void *ctx, size_t root, const struct tm_damage *d), void *ctx,
		       struct tm_runlist *out, struct dmr_err *err);
void tm_runlist_free(struct tm_runlist *l);

/* How two devices differ over virtual blocks [vbegin, vbegin+len): mapped
 * by A only, by B only, or by both to different data blocks (what the
 * other maps, or not, is the same over the whole piece). */
enum tm_diff_kind { TM_DIFF_ONLY_A, TM_DIFF_ONLY_B, TM_DIFF_REMAPPED };

struct tm_diff_piece {
	uint64_t vbegin, len;
	enum tm_diff_kind kind;
	uint64_t a_dbegin, b_dbegin; /* the data block of vbegin in A, in B (when mapped) */
};

/* Calls fn for each maximal piece where a and b differ, in ascending
 * order: blocks mapped to the same data block by both, or by neither, are
 * the same. A nonzero return of fn stops and is returned. */
int tm_runlist_diff(const struct tm_runlist *a, const struct tm_runlist *b,
		    int (*fn)(void *ctx, const struct tm_diff_piece *p), void *ctx);

#endif
