/* The on-disk space maps, loaded into memory: 2-bit reference counts per
 * block from the bitmaps (data: index btree; metadata: one index block),
 * counts of 3 and more from the overflow ref-count btree. */
#ifndef DMR_THINMETA_SPACEMAP_H
#define DMR_THINMETA_SPACEMAP_H

#include <stddef.h>
#include <stdint.h>

#include "thinmeta/pool.h"

struct tm_sm_overflow {
	uint64_t block;
	uint32_t count;
};

struct tm_space_map {
	uint64_t nr_blocks;
	uint8_t *counts; /* 2 bits per block, 4 blocks per byte, low bits first */
	struct tm_sm_overflow *overflow; /* ascending block */
	size_t nr_overflow;
	uint64_t nr_bitmaps;
	uint64_t *bitmap_block; /* per bitmap: its block, 0 where the index has none */
};

/* Decodes entry i (0..16319) of a bitmap block payload: the lower-numbered
 * bit of each pair is the high bit of the count. */
static inline unsigned tm_bitmap_entry(const void *bitmap_block, uint32_t i)
{
	uint64_t w = tm_le64((const unsigned char *)bitmap_block + 16 + 8u * (i / 32u));
	unsigned sh = 2u * (i % 32u);
	return (unsigned)(((w >> sh) & 1u) << 1 | ((w >> (sh + 1)) & 1u));
}

/* Loads the data (which = 0) or metadata (which = 1) space map of the live
 * superblock. Damage (bad bitmaps, bad index entries, overflow entries
 * that disagree with the bitmaps) is reported and loading goes on; blocks
 * whose bitmap is lost read as 0. */
int tm_sm_read(struct tm_pool *p, int which, struct tm_space_map *out, tm_damage_fn damage, void *ctx,
	       struct dmr_err *err);
void tm_sm_free(struct tm_space_map *sm);

/* The reference count of block b (0 for blocks beyond nr_blocks). */
uint32_t tm_sm_count(const struct tm_space_map *sm, uint64_t b);

#endif
