/* Which devices map each data block: a saturating count (0, 1, 2 = more)
 * and the first device seen, per data block. Chunks of 16320 blocks are
 * allocated on first use, so memory follows the mapped blocks, not the
 * pool size a superblock claims. */
#ifndef DMR_THINMETA_DATAMAP_H
#define DMR_THINMETA_DATAMAP_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

struct tm_datamap_chunk;

struct tm_datamap {
	uint64_t nr_blocks;
	uint64_t nr_chunks;
	struct tm_datamap_chunk **chunk;
};

int tm_datamap_init(struct tm_datamap *m, uint64_t nr_blocks);
void tm_datamap_free(struct tm_datamap *m);

/* Records that device index dev maps data blocks [b, b+len). Blocks must be
 * below nr_blocks. Returns DMR_ENOMEM on allocation failure. */
int tm_datamap_add(struct tm_datamap *m, uint64_t b, uint64_t len, uint32_t dev);

/* How many devices map data block b: 0, 1, or 2 for two or more. */
unsigned tm_datamap_count(const struct tm_datamap *m, uint64_t b);

/* Calls fn for each block mapped by exactly one device, with that device,
 * in ascending block order, coalesced into runs of the same device. */
void tm_datamap_exclusive_runs(const struct tm_datamap *m,
			       void (*fn)(void *ctx, uint32_t dev, uint64_t b, uint64_t len), void *ctx);

#endif
