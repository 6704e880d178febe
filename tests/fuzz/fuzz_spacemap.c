/* Harness: the on-disk space maps.
 *
 * Input: a whole metadata image (at most 64 blocks), resealed (and now and
 * then also run as it is: image.h). tm_pool_open, then tm_sm_read of the
 * data and the metadata space map; every count is read back through
 * tm_sm_count, and the data map is crossed with the mappings
 * (tm_usage_compute, tm_free_runs) the way dmrescue finds free blocks. */
#include "config.h"
#include "fuzz.h"
#include "image.h"

#include <stdlib.h>
#include <string.h>

#include "thinmeta/freespace.h"
#include "thinmeta/pool.h"
#include "thinmeta/spacemap.h"
#include "thinmeta/usage.h"

static void on_damage(void *ctx, const char *tree, const struct tm_damage *d)
{
	uint64_t *n = ctx;
	FUZZ_ASSERT(tree && tree[0], "damage without a tree name");
	FUZZ_ASSERT(memchr(d->reason, '\0', sizeof(d->reason)) && d->reason[0], "damage without a reason");
	FUZZ_ASSERT(d->lo < d->hi || d->hi == UINT64_MAX, "%s: damaged range %llu..%llu is empty or inverted: %s",
		    tree, (unsigned long long)d->lo, (unsigned long long)d->hi, d->reason);
	(*n)++;
}

static void on_usage_damage(void *ctx, size_t root, const struct tm_damage *d)
{
	(void)ctx;
	(void)root;
	(void)d;
}

static void check_map(const struct tm_space_map *sm, uint64_t nr_blocks)
{
	FUZZ_ASSERT(sm->nr_blocks == nr_blocks, "map of %llu blocks, superblock says %llu",
		    (unsigned long long)sm->nr_blocks, (unsigned long long)nr_blocks);
	FUZZ_ASSERT(sm->nr_bitmaps == (nr_blocks + TM_ENTRIES_PER_BITMAP - 1) / TM_ENTRIES_PER_BITMAP,
		    "%llu bitmaps for %llu blocks", (unsigned long long)sm->nr_bitmaps, (unsigned long long)nr_blocks);
	for (size_t i = 0; i < sm->nr_overflow; i++) {
		const struct tm_sm_overflow *o = &sm->overflow[i];
		FUZZ_ASSERT(i == 0 || sm->overflow[i - 1].block < o->block, "overflow not ascending at %zu", i);
		FUZZ_ASSERT(o->block < nr_blocks && o->count >= 3, "overflow %llu:%u", (unsigned long long)o->block,
			    o->count);
		FUZZ_ASSERT(tm_sm_count(sm, o->block) == o->count, "tm_sm_count(%llu) is not its overflow count",
			    (unsigned long long)o->block);
	}
	/* Every count (the map is at most 64 * 16320 blocks), and past the end. */
	for (uint64_t b = 0; b < nr_blocks; b++)
		(void)tm_sm_count(sm, b);
	FUZZ_ASSERT(tm_sm_count(sm, nr_blocks) == 0 && tm_sm_count(sm, UINT64_MAX) == 0, "counts beyond the map");
}

struct free_check {
	uint64_t nr_blocks, next, blocks;
};

static void on_free_run(void *ctx, uint64_t b, uint64_t len)
{
	struct free_check *f = ctx;
	FUZZ_ASSERT(len > 0 && b >= f->next && b < f->nr_blocks && len <= f->nr_blocks - b,
		    "free run %llu+%llu (next %llu, %llu blocks)", (unsigned long long)b, (unsigned long long)len,
		    (unsigned long long)f->next, (unsigned long long)f->nr_blocks);
	f->next = b + len + 1; /* runs are maximal: never adjacent */
	f->blocks += len;
}

static void free_space(struct tm_pool *p, const struct tm_space_map *sm)
{
	struct tm_devlist devs;
	struct dmr_err err = { 0 };
	if (tm_devices_read(p, &p->sb, &devs, NULL, NULL, &err))
		return;
	uint64_t *roots = malloc((devs.n ? devs.n : 1) * sizeof(*roots));
	FUZZ_ASSERT(roots, "out of memory");
	size_t n = 0;
	for (size_t i = 0; i < devs.n; i++)
		if (devs.dev[i].in_mapping)
			roots[n++] = devs.dev[i].mapping_root;
	struct tm_usage u;
	if (tm_usage_compute(p, roots, n, sm->nr_blocks, on_usage_damage, NULL, &u, &err) == 0) {
		struct free_check f = { .nr_blocks = sm->nr_blocks };
		struct tm_free_stats st;
		tm_free_runs(sm, &u.map, on_free_run, &f, &st);
		FUZZ_ASSERT(st.nr_blocks == sm->nr_blocks && f.blocks == st.free_blocks &&
			    st.free_blocks + st.used_blocks + st.free_but_mapped == st.nr_blocks &&
			    st.held_unmapped <= st.used_blocks,
			    "free stats: %llu blocks, %llu free (runs %llu), %llu used, %llu free but mapped",
			    (unsigned long long)st.nr_blocks, (unsigned long long)st.free_blocks,
			    (unsigned long long)f.blocks, (unsigned long long)st.used_blocks,
			    (unsigned long long)st.free_but_mapped);
		tm_usage_free(&u);
	}
	free(roots);
	tm_devlist_free(&devs);
}

static void run_image(const char *path, const struct fuzz_img *img)
{
	(void)img;
	struct tm_pool *p;
	struct dmr_err err = { 0 };
	/* As the checker opens it: the superset of what opens. */
	if (tm_pool_open(&p, path, TM_POOL_ALLOW_SHORT, &err))
		return;
	for (int which = 0; which < 2; which++) {
		struct tm_space_map sm;
		uint64_t damage = 0;
		dmr_err_clear(&err);
		int r = tm_sm_read(p, which, &sm, on_damage, &damage, &err);
		FUZZ_ASSERT(r <= 0 && (r == 0 || err.msg[0]), "tm_sm_read(%d): %d without a message", which, r);
		if (r)
			continue;
		check_map(&sm, which ? p->sb.metadata_sm.nr_blocks : p->sb.data_sm.nr_blocks);
		if (which == 0)
			free_space(p, &sm);
		tm_sm_free(&sm);
	}
	tm_pool_close(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_img_each(data, size, run_image);
	return 0;
}
