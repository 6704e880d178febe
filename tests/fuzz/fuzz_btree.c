/* Harness: btree nodes and every walk of a pool's trees.
 *
 * Input: a whole metadata image (at most 64 blocks), resealed (and now and
 * then also run as it is: image.h). Block 1 goes through tm_node_check for
 * each value size the pool uses (8 mappings and children, 24 device details,
 * 16 space map index entries, 4 overflow counts). The image then goes
 * through what dmrescue does with a pool: tm_pool_open, tm_devices_read,
 * the three kinds of mapping walk (ordered, aligned, unordered),
 * tm_usage_compute, a few lookups, and the same for a held metadata
 * snapshot. */
#include "config.h"
#include "fuzz.h"
#include "image.h"

#include <stdlib.h>
#include <string.h>

#include "thinmeta/btree.h"
#include "thinmeta/pool.h"
#include "thinmeta/usage.h"

static void check_node(const unsigned char *blk, uint64_t block, uint32_t vs)
{
	struct tm_node n;
	char why[200];
	why[0] = '\0';
	if (tm_node_check(blk, block, vs, &n, why, sizeof(why))) {
		FUZZ_ASSERT(why[0], "rejected without a reason");
		return;
	}
	FUZZ_ASSERT(n.flags == TM_NODE_INTERNAL || n.flags == TM_NODE_LEAF, "flags %u", n.flags);
	FUZZ_ASSERT(n.value_size == (n.flags == TM_NODE_INTERNAL ? 8u : vs), "value size %u", n.value_size);
	FUZZ_ASSERT(n.nr_entries <= n.max_entries && n.max_entries == tm_node_max_entries(n.value_size),
		    "%u of %u entries", n.nr_entries, n.max_entries);
	FUZZ_ASSERT(n.keys == blk + sizeof(struct tm_disk_node_header), "keys not after the header");
	FUZZ_ASSERT(n.values + (size_t)n.max_entries * n.value_size <= blk + TM_BLOCK_SIZE, "values beyond the block");
	for (uint32_t i = 1; i < n.nr_entries; i++)
		FUZZ_ASSERT(tm_node_key(&n, i - 1) < tm_node_key(&n, i), "keys out of order at %u", i);
}

static void check_damage(const struct tm_damage *d)
{
	FUZZ_ASSERT(memchr(d->reason, '\0', sizeof(d->reason)) && d->reason[0], "damage without a reason");
	FUZZ_ASSERT(d->lo < d->hi || d->hi == UINT64_MAX, "damaged range %llu..%llu is empty or inverted: %s",
		    (unsigned long long)d->lo, (unsigned long long)d->hi, d->reason);
}

static void on_pool_damage(void *ctx, const char *tree, const struct tm_damage *d)
{
	(void)ctx;
	FUZZ_ASSERT(tree && tree[0], "damage without a tree name");
	check_damage(d);
}

struct walk_check {
	size_t n;          /* roots walked */
	uint64_t nr_data;  /* data blocks */
	int ordered;
	const char *kind;  /* of walk, for messages */
	unsigned char *finished; /* ordered: per root, its runs are over */
	size_t last_dev;
	uint64_t next_v;   /* ordered: the next run of last_dev starts at or after this */
	uint64_t next_d;   /* ... and the data block and time that would continue it */
	uint32_t time;
	int have;
	int out_of_root_order;
	uint64_t blocks;   /* mapped blocks seen */
	uint64_t damage;   /* damage reports */
};

static int on_run(void *ctx, size_t dev, const struct tm_run *r)
{
	struct walk_check *w = ctx;
	FUZZ_ASSERT(dev < w->n, "run of root %zu of %zu", dev, w->n);
	FUZZ_ASSERT(r->len > 0, "empty run");
	FUZZ_ASSERT(r->dbegin < w->nr_data && r->len <= w->nr_data - r->dbegin, "run %llu+%llu beyond %llu data blocks",
		    (unsigned long long)r->dbegin, (unsigned long long)r->len, (unsigned long long)w->nr_data);
	FUZZ_ASSERT(r->time < (1u << TM_BLOCK_TIME_TIME_BITS), "time %u", r->time);
	/* Ordered walks: each device's runs in one stretch, ascending and
	 * coalesced (two runs of a device never touch with the same time). */
	if (w->ordered && w->have && dev == w->last_dev) {
		FUZZ_ASSERT(r->vbegin >= w->next_v, "%s walk: root %zu run at %llu, before the previous one's end %llu",
			    w->kind, dev, (unsigned long long)r->vbegin, (unsigned long long)w->next_v);
		FUZZ_ASSERT(r->vbegin != w->next_v || r->dbegin != w->next_d || r->time != w->time,
			    "%s walk: root %zu runs not coalesced at %llu", w->kind, dev, (unsigned long long)r->vbegin);
	} else if (w->ordered) {
		FUZZ_ASSERT(!w->finished[dev], "%s walk: root %zu has runs again after root %zu's", w->kind, dev,
			    w->last_dev);
		if (w->have) {
			w->finished[w->last_dev] = 1;
			w->out_of_root_order |= dev < w->last_dev;
		}
	}
	w->last_dev = dev;
	w->next_v = r->vbegin + r->len;
	w->next_d = r->dbegin + r->len;
	w->time = r->time;
	w->have = 1;
	w->blocks += r->len;
	return 0;
}

static void on_map_damage(void *ctx, size_t dev, const struct tm_damage *d)
{
	struct walk_check *w = ctx;
	FUZZ_ASSERT(dev < w->n && d->root_index == dev, "damage of root %zu (%zu) of %zu", dev, d->root_index, w->n);
	check_damage(d);
	w->damage++;
}

static void on_usage_damage(void *ctx, size_t dev, const struct tm_damage *d)
{
	on_map_damage(ctx, dev, d);
}

static void walk_devices(struct tm_pool *p, const struct tm_superblock *sb)
{
	struct tm_devlist devs;
	struct dmr_err err = { 0 };
	if (tm_devices_read(p, sb, &devs, on_pool_damage, NULL, &err)) {
		FUZZ_ASSERT(err.msg[0], "tm_devices_read failed without a message");
		return;
	}
	uint64_t *roots = malloc((devs.n ? devs.n : 1) * sizeof(*roots));
	FUZZ_ASSERT(roots, "out of memory");
	size_t n = 0;
	for (size_t i = 0; i < devs.n; i++) {
		const struct tm_device *d = &devs.dev[i];
		FUZZ_ASSERT(i == 0 || devs.dev[i - 1].dev_id < d->dev_id, "device list not strictly ascending at %zu", i);
		FUZZ_ASSERT(d->in_details || d->in_mapping, "device %llu in neither tree", (unsigned long long)d->dev_id);
		FUZZ_ASSERT(tm_devlist_find(&devs, d->dev_id) == d, "tm_devlist_find misses %llu",
			    (unsigned long long)d->dev_id);
		if (d->in_mapping)
			roots[n++] = d->mapping_root;
	}
	uint64_t nr_data = p->sb.data_sm.nr_blocks;

	/* Ordered, aligned (ordered, leaves batched across devices), unordered. */
	static const struct { int unordered, aligned; const char *name; } kinds[] = {
		{ 0, 0, "ordered" }, { 0, 1, "aligned" }, { 1, 0, "unordered" },
	};
	uint64_t blocks[3], damage = 0;
	int failed = 0;
	for (size_t k = 0; k < 3; k++) {
		struct walk_check w = {
			.n = n, .nr_data = nr_data, .ordered = !kinds[k].unordered, .kind = kinds[k].name,
			.finished = calloc(n ? n : 1, 1),
		};
		FUZZ_ASSERT(w.finished, "out of memory");
		struct tm_mapping_visitor v = {
			.unordered = kinds[k].unordered, .aligned = kinds[k].aligned,
			.run = on_run, .damage = on_map_damage, .ctx = &w,
		};
		dmr_err_clear(&err);
		if (tm_mappings_walk(p, roots, n, nr_data, &v, &err)) {
			FUZZ_ASSERT(err.msg[0], "tm_mappings_walk failed without a message");
			failed = 1;
		}
		/* Aligned walks bring every tree's leaves at one level, in root
		 * order; damage on a leftmost path can misjudge a tree's depth. */
		FUZZ_ASSERT(!kinds[k].aligned || w.damage || failed || !w.out_of_root_order,
			    "aligned walk of undamaged trees: runs out of root order");
		free(w.finished);
		blocks[k] = w.blocks;
		damage += w.damage;
	}
	/* Without damage, the order of a walk cannot change what it finds. */
	FUZZ_ASSERT(failed || damage || (blocks[0] == blocks[1] && blocks[1] == blocks[2]),
		    "undamaged walks disagree: ordered %llu, aligned %llu, unordered %llu mapped blocks",
		    (unsigned long long)blocks[0], (unsigned long long)blocks[1], (unsigned long long)blocks[2]);

	struct walk_check uw = { .n = n, .nr_data = nr_data };
	struct tm_usage u;
	dmr_err_clear(&err);
	if (tm_usage_compute(p, roots, n, nr_data, on_usage_damage, &uw, &u, &err) == 0) {
		FUZZ_ASSERT(u.n == n, "usage of %zu roots for %zu", u.n, n);
		uint64_t mapped = 0;
		for (size_t i = 0; i < n; i++) {
			FUZZ_ASSERT(u.dev[i].exclusive <= u.dev[i].mapped, "root %zu: %llu exclusive of %llu mapped", i,
				    (unsigned long long)u.dev[i].exclusive, (unsigned long long)u.dev[i].mapped);
			mapped += u.dev[i].mapped;
		}
		FUZZ_ASSERT(failed || damage || uw.damage || mapped == blocks[2],
			    "usage counts %llu mapped blocks, the unordered walk %llu",
			    (unsigned long long)mapped, (unsigned long long)blocks[2]);
		tm_usage_free(&u);
	} else {
		FUZZ_ASSERT(err.msg[0] || failed, "tm_usage_compute failed without a message");
	}

	/* Lookups: the first virtual blocks and a far one, in the first roots. */
	for (size_t i = 0; i < n && i < 4; i++) {
		static const uint64_t vb[] = { 0, 1, 2, 100, UINT64_MAX };
		for (size_t j = 0; j < sizeof(vb) / sizeof(vb[0]); j++) {
			uint64_t db = 0;
			uint32_t t = 0;
			dmr_err_clear(&err);
			int r = tm_mapping_lookup(p, roots[i], vb[j], &db, &t, &err);
			FUZZ_ASSERT(r <= 0, "lookup returned %d", r);
			FUZZ_ASSERT(r != 0 || t < (1u << TM_BLOCK_TIME_TIME_BITS), "lookup time %u", t);
		}
	}
	free(roots);
	tm_devlist_free(&devs);
}

static void run_image(const char *path, const struct fuzz_img *img)
{
	if (img->nr_blocks > 1)
		for (size_t i = 0; i < 4; i++) {
			static const uint32_t vs[] = { 8, 24, 16, 4 };
			check_node(img->buf + TM_BLOCK_SIZE, 1, vs[i]);
		}

	struct tm_pool *p;
	struct dmr_err err = { 0 };
	if (tm_pool_open(&p, path, 0, &err)) {
		FUZZ_ASSERT(err.msg[0], "tm_pool_open failed without a message");
		return;
	}
	FUZZ_ASSERT(p->file_blocks == img->nr_blocks, "file of %llu blocks, image of %zu",
		    (unsigned long long)p->file_blocks, img->nr_blocks);
	FUZZ_ASSERT(p->limit <= p->file_blocks, "limit %llu beyond the file", (unsigned long long)p->limit);
	walk_devices(p, &p->sb);

	struct tm_superblock snap;
	dmr_err_clear(&err);
	if (tm_pool_read_snapshot(p, 0, &snap, &err) == 0)
		walk_devices(p, &snap);
	tm_pool_close(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_img_each(data, size, run_image);
	return 0;
}
