/* When each device's mappings were written: the pool's time counter goes
 * up at each snapshot, and every mapping keeps the time it was made (on
 * first write, or on copy-on-write after a snapshot). One unordered walk
 * of all the trees, one small histogram per device. */
#ifndef DMR_THINMETA_MTIMES_H
#define DMR_THINMETA_MTIMES_H

#include <stddef.h>
#include <stdint.h>

#include "thinmeta/pool.h"

struct tm_timecount {
	uint32_t time;
	uint64_t blocks;
};

struct tm_timehist {
	struct tm_timecount *v; /* ascending time */
	size_t n, cap;
};

/* Walks roots[0..n) into out[0..n); damage as for tm_usage_compute. Free
 * each with tm_timehist_free even on failure. */
int tm_mapping_times(struct tm_pool *p, const uint64_t *roots, size_t n, uint64_t nr_data_blocks,
		     void (*damage)(void *ctx, size_t root, const struct tm_damage *d), void *ctx,
		     struct tm_timehist *out, struct dmr_err *err);
/* Blocks mapped at time >= t. */
uint64_t tm_timehist_since(const struct tm_timehist *h, uint32_t t);
void tm_timehist_free(struct tm_timehist *h);

#endif
