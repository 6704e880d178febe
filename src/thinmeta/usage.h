/* What each thin device maps: mapped blocks, the blocks no other device
 * maps (what removing it would free in the pool), and its highest mapped
 * virtual block; plus the map of every mapped data block, kept for
 * free-space cross-checks. One unordered walk of all the trees. */
#ifndef DMR_THINMETA_USAGE_H
#define DMR_THINMETA_USAGE_H

#include <stddef.h>
#include <stdint.h>

#include "thinmeta/datamap.h"
#include "thinmeta/pool.h"

struct tm_dev_usage {
	uint64_t mapped;
	uint64_t exclusive;
	uint64_t highest; /* highest mapped virtual block + 1; 0 = none */
};

struct tm_usage {
	struct tm_dev_usage *dev; /* one per root, in the order given */
	size_t n;
	struct tm_datamap map;    /* owner = root index */
};

/* Walks roots[0..n); damage goes to damage(ctx, root index, d). */
int tm_usage_compute(struct tm_pool *p, const uint64_t *roots, size_t n, uint64_t nr_data_blocks,
		     void (*damage)(void *ctx, size_t root, const struct tm_damage *d), void *ctx,
		     struct tm_usage *out, struct dmr_err *err);
void tm_usage_free(struct tm_usage *u);

#endif
