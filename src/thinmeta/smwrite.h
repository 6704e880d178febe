/* Writing space maps from reference counts held in memory (one uint32 per
 * block): bitmap blocks with their index entries, the metadata space map's
 * index block, the (block, count) pairs of an overflow ref-count tree, and
 * the 32-byte sm root of the superblock. The reading side is spacemap.h. */
#ifndef DMR_THINMETA_SMWRITE_H
#define DMR_THINMETA_SMWRITE_H

#include <stddef.h>
#include <stdint.h>

#include "thinmeta/ondisk.h"
#include "thinmeta/superblock.h"

/* Sets entry i (0..16319) of a bitmap block to count (0..3), in the pair
 * order tm_bitmap_entry decodes. Does not reseal the block. */
void tm_bitmap_put(void *bitmap_block, uint32_t i, unsigned count);

/* Fills buf (4 KiB) with bitmap k of a map of nr_blocks counts: entries
 * for blocks k*16320.. (counts of 3 and more as 3, entries beyond nr_blocks
 * zero), header blocknr and checksum; *ie (disk order) gets its index
 * entry. Hints follow the kernel: nr_free counts the whole 16320 entries,
 * none_free_before is the first entry that is free or beyond the map. */
void tm_bitmap_build(void *buf, uint64_t blocknr, const uint32_t *counts, uint64_t nr_blocks, uint64_t k,
		     struct tm_disk_index_entry *ie);

/* Fills buf with the metadata space map's index block at blocknr holding
 * entries ie[0..nr) (disk order; nr <= 255), the rest zero. */
void tm_metadata_index_build(void *buf, uint64_t blocknr, const struct tm_disk_index_entry *ie, uint64_t nr);

/* Blocks with a nonzero count, and with a count of 3 or more (the entries
 * of the overflow ref-count tree). */
uint64_t tm_counts_nonzero(const uint32_t *counts, uint64_t n);
uint64_t tm_counts_overflowing(const uint32_t *counts, uint64_t n);

/* The overflow tree's pairs: keys[] gets each block with a count >= 3, in
 * ascending order, and values[] its count (little-endian u32, 4 bytes
 * each); both sized by tm_counts_overflowing. */
void tm_counts_overflow_pairs(const uint32_t *counts, uint64_t n, uint64_t *keys, unsigned char *values);

/* Stores r as the first 32 bytes of a superblock sm-root field. */
void tm_sm_root_encode(void *raw, const struct tm_sm_root *r);

#endif
