/* Free data blocks: free in the on-disk data space map AND mapped by no
 * device. The two sources are cross-checked: a block the space map calls
 * free that a device maps means the metadata is inconsistent. */
#ifndef DMR_THINMETA_FREESPACE_H
#define DMR_THINMETA_FREESPACE_H

#include <stdint.h>

#include "thinmeta/datamap.h"
#include "thinmeta/spacemap.h"

struct tm_free_stats {
	uint64_t nr_blocks;
	uint64_t free_blocks;      /* count 0 and unmapped */
	uint64_t used_blocks;      /* count > 0 in the space map */
	uint64_t free_but_mapped;  /* count 0 but mapped: inconsistent */
	uint64_t held_unmapped;    /* count > 0, mapped by no live device (a metadata snapshot, or a leak) */
	uint64_t first_free_but_mapped; /* valid when free_but_mapped > 0 */
};

/* Calls fn (when not NULL) on each maximal run of free blocks, ascending,
 * and fills st. */
void tm_free_runs(const struct tm_space_map *sm, const struct tm_datamap *map,
		  void (*fn)(void *ctx, uint64_t block, uint64_t len), void *ctx, struct tm_free_stats *st);

#endif
