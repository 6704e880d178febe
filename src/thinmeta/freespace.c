#include "config.h"
#include "thinmeta/freespace.h"

#include <string.h>

void tm_free_runs(const struct tm_space_map *sm, const struct tm_datamap *map,
		  void (*fn)(void *ctx, uint64_t block, uint64_t len), void *ctx, struct tm_free_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->nr_blocks = sm->nr_blocks;
	uint64_t run_b = 0, run_len = 0;
	for (uint64_t b = 0; b < sm->nr_blocks; b++) {
		unsigned mapped = tm_datamap_count(map, b);
		unsigned count = (sm->counts[b / 4] >> (2u * (unsigned)(b % 4))) & 3u;
		int is_free = 0;
		if (count == 0 && mapped == 0) {
			is_free = 1;
			st->free_blocks++;
		} else if (count == 0) {
			if (st->free_but_mapped++ == 0)
				st->first_free_but_mapped = b;
		} else {
			st->used_blocks++;
			if (mapped == 0)
				st->held_unmapped++;
		}
		if (is_free && run_len && run_b + run_len == b) {
			run_len++;
		} else if (is_free) {
			if (run_len && fn)
				fn(ctx, run_b, run_len);
			run_b = b;
			run_len = 1;
		}
	}
	if (run_len && fn)
		fn(ctx, run_b, run_len);
}
