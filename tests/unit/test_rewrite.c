/* The rewrite engine (tm_rewrite_remove) on builder pools written to temp
 * files: unshared devices, origins and snapshots sharing leaves, subtrees
 * and roots, counts in the overflow trees going down, every device
 * removed, a held metadata snapshot, too little free metadata, damage in
 * what is removed, unknown devices. After every rewrite the pool must check
 * clean (data counts included), the kept devices must read exactly as
 * before, and only blocks the committed space map called free may have
 * changed (besides the superblock). Before every removal, tm_rewrite_plan
 * must leave the file as it was and give the removal's result, or its
 * error; it must also work without write access to the file. */
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "builder.h"
#include "thinmeta/check.h"
#include "thinmeta/pool.h"
#include "thinmeta/rewrite.h"
#include "thinmeta/smwrite.h"
#include "thinmeta/spacemap.h"
#include "util/grow.h"

/* ---- reading a pool back ---- */

struct dev_runs {
	uint64_t dev;
	struct tm_run run;
};

/* The devices and every mapping run of the live trees or the snapshot's. */
struct view {
	struct tm_devlist devs;
	struct dev_runs *runs;
	size_t n, cap;
	uint64_t *ids; /* per walked root */
};

static void fail_damage(void *ctx, const char *tree, const struct tm_damage *d)
{
	(void)ctx;
	fail_msg("damage in %s: block %llu: %s", tree, (unsigned long long)d->block, d->reason);
}

static void fail_map_damage(void *ctx, size_t dev_index, const struct tm_damage *d)
{
	(void)ctx;
	fail_msg("damage in the mappings of root %zu: block %llu: %s", dev_index, (unsigned long long)d->block,
		 d->reason);
}

static int add_run(void *ctx, size_t dev_index, const struct tm_run *run)
{
	struct view *v = ctx;
	v->runs = dmr_grow(v->runs, &v->cap, v->n, sizeof(*v->runs));
	assert_non_null(v->runs);
	v->runs[v->n++] = (struct dev_runs){ .dev = v->ids[dev_index], .run = *run };
	return 0;
}

/* snapshot: read the held metadata snapshot's trees instead. */
static void view_read(const char *path, int snapshot, struct view *v)
{
	struct tm_pool *p = NULL;
	struct dmr_err err = { 0 };
	struct tm_superblock sb;
	memset(v, 0, sizeof(*v));
	if (tm_pool_open(&p, path, 0, &err))
		fail_msg("tm_pool_open: %s", err.msg);
	sb = p->sb;
	if (snapshot && tm_pool_read_snapshot(p, 0, &sb, &err))
		fail_msg("tm_pool_read_snapshot: %s", err.msg);
	if (tm_devices_read(p, &sb, &v->devs, fail_damage, NULL, &err))
		fail_msg("tm_devices_read: %s", err.msg);
	uint64_t *roots = calloc(v->devs.n + 1, sizeof(*roots));
	v->ids = calloc(v->devs.n + 1, sizeof(*v->ids));
	assert_true(roots && v->ids);
	size_t n = 0;
	for (size_t i = 0; i < v->devs.n; i++) {
		assert_true(v->devs.dev[i].in_details && v->devs.dev[i].in_mapping);
		v->ids[n] = v->devs.dev[i].dev_id;
		roots[n++] = v->devs.dev[i].mapping_root;
	}
	struct tm_mapping_visitor mv = { .run = add_run, .damage = fail_map_damage, .ctx = v };
	if (tm_mappings_walk(p, roots, n, p->sb.data_sm.nr_blocks, &mv, &err))
		fail_msg("tm_mappings_walk: %s", err.msg);
	free(roots);
	tm_pool_close(p);
}

static void view_free(struct view *v)
{
	tm_devlist_free(&v->devs);
	free(v->runs);
	free(v->ids);
}

static int in_ids(uint64_t id, const uint64_t *ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] == id)
			return 1;
	return 0;
}

static void expect_same_run(const struct tm_run *x, const struct tm_run *y)
{
	assert_int_equal(x->vbegin, y->vbegin);
	assert_int_equal(x->dbegin, y->dbegin);
	assert_int_equal(x->len, y->len);
	assert_int_equal(x->time, y->time);
}

/* Device dev has the same runs, in the same order, in both views. */
static void expect_same_runs(const struct view *x, const struct view *y, uint64_t dev)
{
	size_t i = 0, j = 0;
	for (;;) {
		while (i < x->n && x->runs[i].dev != dev)
			i++;
		while (j < y->n && y->runs[j].dev != dev)
			j++;
		if (i == x->n || j == y->n)
			break;
		expect_same_run(&x->runs[i++].run, &y->runs[j++].run);
	}
	if (i != x->n || j != y->n)
		fail_msg("device %llu has a different number of mapping runs", (unsigned long long)dev);
}

/* after holds exactly the devices of before that are not in ids, with the
 * same details and mappings. */
static void expect_kept(const struct view *before, const struct view *after, const uint64_t *ids, size_t n)
{
	size_t kept = 0;
	for (size_t i = 0; i < before->devs.n; i++) {
		const struct tm_device *d = &before->devs.dev[i];
		const struct tm_device *a = tm_devlist_find(&after->devs, d->dev_id);
		if (in_ids(d->dev_id, ids, n)) {
			if (a)
				fail_msg("device %llu is still there", (unsigned long long)d->dev_id);
			continue;
		}
		kept++;
		if (!a)
			fail_msg("device %llu is gone", (unsigned long long)d->dev_id);
		assert_int_equal(a->mapped_blocks, d->mapped_blocks);
		assert_int_equal(a->transaction_id, d->transaction_id);
		assert_int_equal(a->creation_time, d->creation_time);
		assert_int_equal(a->snapshotted_time, d->snapshotted_time);
		expect_same_runs(before, after, d->dev_id);
	}
	assert_int_equal(after->devs.n, kept);
}

/* ---- checking the result ---- */

static void print_finding(void *ctx, const struct tm_finding *f)
{
	(*(int *)ctx)++;
	print_message("finding: %s block %lld dev %lld: %s\n", f->code,
		      f->block == UINT64_MAX ? -1LL : (long long)f->block, (long long)f->dev_id, f->msg);
}

static void expect_clean(const char *path)
{
	struct tm_pool *p = NULL;
	struct dmr_err err = { 0 };
	struct tm_check_stats st;
	int findings = 0;
	if (tm_pool_open(&p, path, 0, &err))
		fail_msg("tm_pool_open: %s", err.msg);
	if (tm_check_pool(p, NULL, print_finding, &findings, &st, &err))
		fail_msg("tm_check_pool: %s", err.msg);
	tm_pool_close(p);
	assert_int_equal(findings, 0);
}

/* The reference counts of a space map (which: 0 data, 1 metadata). */
static uint32_t *sm_counts(const char *path, int which, uint64_t *n)
{
	struct tm_pool *p = NULL;
	struct dmr_err err = { 0 };
	struct tm_space_map sm;
	if (tm_pool_open(&p, path, 0, &err) || tm_sm_read(p, which, &sm, fail_damage, NULL, &err))
		fail_msg("reading the space map: %s", err.msg);
	uint32_t *c = calloc(sm.nr_blocks + 1, sizeof(*c));
	assert_non_null(c);
	for (uint64_t b = 0; b < sm.nr_blocks; b++)
		c[b] = tm_sm_count(&sm, b);
	*n = sm.nr_blocks;
	tm_sm_free(&sm);
	tm_pool_close(p);
	return c;
}

static unsigned char *read_file(const char *path, size_t len)
{
	unsigned char *buf = malloc(len);
	FILE *f = fopen(path, "rb");
	assert_true(buf && f);
	assert_int_equal(fread(buf, 1, len, f), len);
	fclose(f);
	return buf;
}

/* Blocks of the file that differ from the image; each must have been free
 * in the image's space map, except the superblock. */
static size_t changed_blocks(const struct bld *b, const char *path)
{
	unsigned char *now = read_file(path, (size_t)b->nr_blocks * TM_BLOCK_SIZE);
	size_t changed = 0;
	for (uint64_t i = 0; i < b->nr_blocks; i++) {
		if (memcmp(now + i * TM_BLOCK_SIZE, b->img + i * TM_BLOCK_SIZE, TM_BLOCK_SIZE) == 0)
			continue;
		changed++;
		if (i != 0 && b->meta_count[i] != 0)
			fail_msg("block %llu (count %u) was overwritten", (unsigned long long)i, b->meta_count[i]);
	}
	free(now);
	return changed;
}

static void expect_unchanged(const struct bld *b, const char *path)
{
	unsigned char *now = read_file(path, (size_t)b->nr_blocks * TM_BLOCK_SIZE);
	assert_memory_equal(now, b->img, (size_t)b->nr_blocks * TM_BLOCK_SIZE);
	free(now);
}

static void expect_same_result(const struct tm_rewrite_result *plan, const struct tm_rewrite_result *res)
{
	assert_int_equal(plan->nr_removed, res->nr_removed);
	assert_int_equal(plan->meta_used_before, res->meta_used_before);
	assert_int_equal(plan->meta_used_after, res->meta_used_after);
	assert_int_equal(plan->data_used_before, res->data_used_before);
	assert_int_equal(plan->data_used_after, res->data_used_after);
	assert_int_equal(plan->blocks_written, res->blocks_written);
}

/* tm_rewrite_plan on b written to path: returns its status (err its
 * message) and leaves the file as b is. */
static int plan_unchanged(const struct bld *b, const char *path, const uint64_t *ids, size_t n,
			  struct tm_rewrite_result *plan, struct dmr_err *err)
{
	int r = tm_rewrite_plan(path, ids, n, plan, err);
	expect_unchanged(b, path);
	return r;
}

/* What one successful rewrite left. */
struct outcome {
	char path[4096];
	struct tm_rewrite_result res;
	uint32_t *data, *meta;
	uint64_t nr_data, nr_meta;
};

/* Writes b, removes ids and asserts everything that holds for any removal. */
static void remove_ok(const struct bld *b, const uint64_t *ids, size_t n, struct outcome *o)
{
	struct view before, after;
	struct dmr_err err = { 0 };
	struct tm_rewrite_result plan;
	bld_write_tmp(b, o->path);
	view_read(o->path, 0, &before);
	int r = plan_unchanged(b, o->path, ids, n, &plan, &err);
	if (r)
		fail_msg("tm_rewrite_plan: %d %s", r, err.msg);
	r = tm_rewrite_remove(o->path, ids, n, &o->res, &err);
	if (r)
		fail_msg("tm_rewrite_remove: %d %s", r, err.msg);
	expect_same_result(&plan, &o->res);
	view_read(o->path, 0, &after);
	expect_kept(&before, &after, ids, n);
	view_free(&before);
	view_free(&after);
	expect_clean(o->path);
	if (!b->held_root)
		assert_true(o->res.meta_used_after <= o->res.meta_used_before);
	assert_true(changed_blocks(b, o->path) <= o->res.blocks_written);
	o->data = sm_counts(o->path, 0, &o->nr_data);
	o->meta = sm_counts(o->path, 1, &o->nr_meta);
	assert_int_equal(o->res.data_used_after, tm_counts_nonzero(o->data, o->nr_data));
	assert_int_equal(o->res.meta_used_after, tm_counts_nonzero(o->meta, o->nr_meta));
	assert_int_equal(o->res.data_used_before, tm_counts_nonzero(b->data_count, b->nr_data_blocks));
	assert_int_equal(o->res.meta_used_before, tm_counts_nonzero(b->meta_count, b->nr_blocks));
}

static void outcome_free(struct outcome *o)
{
	unlink(o->path);
	free(o->data);
	free(o->meta);
}

/* Writes b and expects removing ids to fail with code, the message holding
 * want, and the file unchanged; planning it fails the same way. */
static void remove_fails(const struct bld *b, const uint64_t *ids, size_t n, int code, const char *want)
{
	char path[4096];
	struct tm_rewrite_result res;
	struct dmr_err err = { 0 }, plan_err = { 0 };
	bld_write_tmp(b, path);
	int r = plan_unchanged(b, path, ids, n, &res, &plan_err);
	if (r != code)
		fail_msg("tm_rewrite_plan: %d (%s), expected %d", r, plan_err.msg, code);
	r = tm_rewrite_remove(path, ids, n, &res, &err);
	if (r != code)
		fail_msg("tm_rewrite_remove: %d (%s), expected %d", r, err.msg, code);
	assert_contains(err.msg, want);
	assert_contains(err.msg, path);
	assert_string_equal(plan_err.msg, err.msg);
	expect_unchanged(b, path);
	unlink(path);
}

/* ---- pools ---- */

static void maps_linear(struct bld_map *m, size_t n, uint64_t v0, uint64_t d0, uint32_t time)
{
	for (size_t i = 0; i < n; i++)
		m[i] = (struct bld_map){ .vblock = v0 + i, .dblock = d0 + i, .time = time };
}

/* Child i of an internal node. */
static uint64_t child(struct bld *b, uint64_t node, uint32_t i)
{
	return tm_le64(bld_block(b, node) + 32 + 8u * 252 + 8u * i);
}

static void set_child(struct bld *b, uint64_t node, uint32_t i, uint64_t to)
{
	tm_put_le64(bld_block(b, node) + 32 + 8u * 252 + 8u * i, to);
	bld_reseal_node(b, node);
}

/* bld_standard's device 1, device 2 (virtual 0..9 -> data 30..39) and
 * device 3 (one mapping to data 50). */
static void build_three(struct bld *b)
{
	struct bld_map m[10];
	bld_init(b, 32, 1024);
	b->time = 1;
	maps_linear(m, 3, 0, 10, 0);
	m[3] = (struct bld_map){ 5, 20, 1 };
	bld_device(b, 1, m, 4, 0, 0);
	maps_linear(m, 10, 0, 30, 1);
	bld_device(b, 2, m, 10, 0, 0);
	maps_linear(m, 1, 7, 50, 1);
	bld_device(b, 3, m, 1, 0, 0);
}

/* ---- tests ---- */

static void test_remove_unshared(void **state)
{
	(void)state;
	struct bld b;
	struct outcome o;
	build_three(&b);
	bld_finish(&b);
	uint64_t root1 = b.dev[0].root;
	const uint64_t ids[] = { 1, 1 }; /* the same device twice is one removal */
	remove_ok(&b, ids, 2, &o);
	assert_int_equal(o.res.nr_removed, 1);
	for (uint64_t d = 10; d <= 12; d++)
		assert_int_equal(o.data[d], 0);
	assert_int_equal(o.data[20], 0);
	for (uint64_t d = 30; d < 40; d++)
		assert_int_equal(o.data[d], 1);
	assert_int_equal(o.data[50], 1);
	assert_int_equal(o.res.data_used_after, o.res.data_used_before - 4);
	/* Freed, and not reused by the rewrite itself. */
	assert_int_equal(o.meta[root1], 0);
	outcome_free(&o);
	bld_free(&b);
}

/* Devices 1 (origin) and 2 (snapshot) after copy-on-write of the origin's
 * first leaf: roots R1 -> [L1', L2, L3] and R2 -> [L1, L2, L3]; L2 and L3
 * have two parents. L1 maps 0..99 -> data 0..99, L1' -> 500..599, L2 and
 * L3 virtual 100..299 -> data 100..299. */
static void build_cow_leaves(struct bld *b, uint64_t *l1, uint64_t *l1new, uint64_t *l2)
{
	bld_init(b, 32, 1024);
	b->time = 1;
	*l1 = bld_leaf(b, 0, 0, 100);
	*l2 = bld_leaf(b, 100, 100, 100);
	uint64_t l3 = bld_leaf(b, 200, 200, 100);
	*l1new = bld_leaf(b, 0, 500, 100);
	uint64_t r1[] = { *l1new, *l2, l3 }, r2[] = { *l1, *l2, l3 };
	bld_add_dev(b, 1, bld_inode(b, 3, r1), 300);
	bld_add_dev(b, 2, bld_inode(b, 3, r2), 300);
	b->meta_count[*l2]++;
	b->meta_count[l3]++;
	bld_finish(b);
}

static void test_remove_shared_leaf(void **state)
{
	(void)state;
	struct bld b;
	struct outcome o;
	uint64_t l1, l1new, l2;

	/* The origin: its own leaf goes, the shared ones drop to one parent. */
	build_cow_leaves(&b, &l1, &l1new, &l2);
	const uint64_t origin[] = { 1 };
	remove_ok(&b, origin, 1, &o);
	assert_int_equal(o.meta[l1new], 0);
	assert_int_equal(o.meta[l2], 1);
	assert_int_equal(o.meta[l1], 1);
	for (uint64_t d = 0; d < 300; d++)
		assert_int_equal(o.data[d], 1);
	for (uint64_t d = 500; d < 600; d++)
		assert_int_equal(o.data[d], 0);
	outcome_free(&o);

	/* The snapshot instead. */
	const uint64_t snap[] = { 2 };
	remove_ok(&b, snap, 1, &o);
	assert_int_equal(o.meta[l1], 0);
	assert_int_equal(o.meta[l2], 1);
	for (uint64_t d = 0; d < 100; d++)
		assert_int_equal(o.data[d], 0);
	for (uint64_t d = 100; d < 300; d++)
		assert_int_equal(o.data[d], 1);
	outcome_free(&o);

	/* Both: everything goes. */
	const uint64_t both[] = { 2, 1 };
	remove_ok(&b, both, 2, &o);
	assert_int_equal(o.res.data_used_after, 0);
	assert_int_equal(o.meta[l2], 0);
	outcome_free(&o);
	bld_free(&b);
}

/* A snapshot taken just now (kernel style): both devices have the same
 * root leaf, count 2; data counts 1. */
static void test_remove_shared_root(void **state)
{
	(void)state;
	struct bld b;
	struct outcome o;
	bld_init(&b, 32, 1024);
	uint64_t root = bld_devs_shared_leaf(&b, 1, 2, 40, 120);
	bld_finish(&b);
	for (uint64_t id = 1; id <= 2; id++) {
		remove_ok(&b, &id, 1, &o);
		assert_int_equal(o.meta[root], 1);
		assert_int_equal(o.res.data_used_after, 120);
		assert_int_equal(o.data[40], 1);
		outcome_free(&o);
	}
	bld_free(&b);
}

/* Device 1 (the origin, rewritten since) has the three-level tree
 * R1 -> [A, S], device 2 (its snapshot) R2 -> [C, S]: S (84 leaves of 84,
 * so no node is underfull) has two parents, its leaves one. */
static void test_remove_shared_subtree(void **state)
{
	(void)state;
	struct bld b;
	struct outcome o;
	const uint32_t per = 84, span = 84 * 84;
	bld_init(&b, 300, 3 * span);
	b.time = 1;
	uint64_t s = bld_subtree(&b, span, 0, 84, per);
	uint64_t a = bld_subtree(&b, 0, span, 84, per);
	uint64_t c = bld_subtree(&b, 0, 2 * span, 84, per);
	uint64_t s_leaf = child(&b, s, 0);
	uint64_t r1[] = { a, s }, r2[] = { c, s };
	bld_add_dev(&b, 1, bld_inode(&b, 2, r1), 2 * span);
	bld_add_dev(&b, 2, bld_inode(&b, 2, r2), 2 * span);
	b.meta_count[s]++;
	bld_finish(&b);

	const uint64_t origin[] = { 1 };
	remove_ok(&b, origin, 1, &o);
	assert_int_equal(o.meta[s], 1);
	assert_int_equal(o.meta[s_leaf], 1);
	assert_int_equal(o.meta[a], 0);
	assert_int_equal(o.data[0], 1);             /* S's */
	assert_int_equal(o.data[span], 0);          /* A's */
	assert_int_equal(o.data[2 * span + 5], 1);  /* C's */
	assert_int_equal(o.res.data_used_after, 2 * span);
	outcome_free(&o);
	bld_free(&b);
}

/* Data counts above 2 live in the overflow tree: four devices with a leaf
 * each over data 100..109 (count 4); a leaf shared by devices 5..8
 * (metadata count 4). Removing one, two, three of them takes the counts
 * to 3, 2, 1. */
static void test_overflow_counts(void **state)
{
	(void)state;
	struct bld b;
	struct outcome o;
	bld_init(&b, 32, 1024);
	b.time = 1;
	bld_devs_own_leaves(&b, 1, 4, 100, 10);
	uint64_t shared = bld_devs_shared_leaf(&b, 5, 4, 200, 10);
	bld_finish(&b);
	assert_int_equal(b.data_count[100], 4);
	const uint64_t ids[] = { 1, 5, 2, 6, 3, 7 };
	for (size_t k = 1; k <= 3; k++) {
		remove_ok(&b, ids, 2 * k, &o);
		assert_int_equal(o.data[100], 4 - k);
		assert_int_equal(o.data[109], 4 - k);
		assert_int_equal(o.meta[shared], 4 - k);
		assert_int_equal(o.data[200], 1);
		outcome_free(&o);
	}
	bld_free(&b);
}

static void test_remove_all(void **state)
{
	(void)state;
	struct bld b;
	struct outcome o;
	build_three(&b);
	bld_finish(&b);
	const uint64_t ids[] = { 3, 1, 2 };
	remove_ok(&b, ids, 3, &o);
	assert_int_equal(o.res.nr_removed, 3);
	assert_int_equal(o.res.data_used_after, 0);
	/* Superblock, metadata index and bitmap, data bitmap, one empty leaf
	 * each for details, top level, data index and the two overflow trees. */
	assert_int_equal(o.res.meta_used_after, 9);
	outcome_free(&o);
	bld_free(&b);
}

/* More devices than one top-level leaf holds: the new trees are two-level. */
static void test_many_devices(void **state)
{
	(void)state;
	struct bld b;
	struct outcome o;
	bld_init(&b, 600, 1024);
	b.time = 1;
	for (uint64_t d = 0; d < BLD_MAX_DEVS; d++) {
		struct bld_map m = { .vblock = 0, .dblock = d, .time = 1 };
		bld_device(&b, 10 + d, &m, 1, 0, 0);
	}
	bld_finish(&b);
	const uint64_t ids[] = { 10, 100, 10 + BLD_MAX_DEVS - 1 };
	remove_ok(&b, ids, 3, &o);
	assert_int_equal(o.data[0], 0);
	assert_int_equal(o.data[90], 0);
	assert_int_equal(o.data[1], 1);
	assert_int_equal(o.res.data_used_after, BLD_MAX_DEVS - 3);
	outcome_free(&o);
	bld_free(&b);
}

/* A held metadata snapshot keeps the old top level and details tree, so
 * what the removed device held stays; the snapshot reads as before. */
static void test_held_snapshot(void **state)
{
	(void)state;
	struct bld b;
	struct outcome o;
	struct view snap_before, snap_after;
	build_three(&b);
	bld_reserve_snapshot(&b);
	bld_finish(&b);
	uint64_t old_top = b.top_root, old_details = b.details_root, root1 = b.dev[0].root;
	char path[4096];
	bld_write_tmp(&b, path);
	view_read(path, 1, &snap_before);
	unlink(path);

	const uint64_t ids[] = { 1 };
	remove_ok(&b, ids, 1, &o);
	assert_int_equal(o.meta[old_top], 1);
	assert_int_equal(o.meta[old_details], 1);
	assert_int_equal(o.meta[root1], 1);
	assert_int_equal(o.meta[b.held_root], 1);
	assert_int_equal(o.data[10], 1);
	assert_int_equal(o.res.data_used_after, o.res.data_used_before);
	/* New top level and details tree; the old ones are the snapshot's. */
	assert_int_equal(o.res.meta_used_after, o.res.meta_used_before + 2);
	view_read(o.path, 1, &snap_after);
	expect_kept(&snap_before, &snap_after, NULL, 0);
	view_free(&snap_before);
	view_free(&snap_after);
	outcome_free(&o);
	bld_free(&b);
}

/* The new blocks come only from blocks free in the committed space map. */
static void test_not_enough_space(void **state)
{
	(void)state;
	struct bld b;
	struct outcome o;
	build_three(&b);
	bld_finish(&b);
	uint64_t used = b.next;
	bld_free(&b);
	/* Details, top level, data index, two overflow trees: a leaf each;
	 * two bitmaps and the metadata index. */
	const uint64_t need = 8;
	const uint64_t ids[] = { 2 };

	build_three(&b);
	b.nr_blocks = used + need - 1;
	bld_finish(&b);
	char want[128];
	snprintf(want, sizeof(want), "metadata has %llu free blocks, the rewrite needs %llu",
		 (unsigned long long)(need - 1), (unsigned long long)need);
	remove_fails(&b, ids, 1, DMR_EUNSUPP, want);
	bld_free(&b);

	/* Exactly enough. */
	build_three(&b);
	b.nr_blocks = used + need;
	bld_finish(&b);
	remove_ok(&b, ids, 1, &o);
	assert_int_equal(o.res.blocks_written, need + 1);
	outcome_free(&o);
	bld_free(&b);
}

/* build_three plus device 4: three leaves of 100 under an internal root,
 * which it returns. */
static uint64_t build_with_two_level(struct bld *b)
{
	struct bld_map m[300];
	build_three(b);
	maps_linear(m, 300, 0, 600, 1);
	size_t i = bld_device(b, 4, m, 300, 100, 0);
	return b->dev[i].root;
}

/* Ways to damage device 4's tree, and what the error then says after
 * naming the block (the leaf, or the root). */
enum tree_damage { LEAF_CHECKSUM, CHILD_IS_ROOT, CHILD_BEYOND, NR_TREE_DAMAGE };

static const char *const tree_damage_says[NR_TREE_DAMAGE] = {
	[LEAF_CHECKSUM] = ": bad checksum",
	/* A cycle ends where a count would go below zero. */
	[CHILD_IS_ROOT] = ": reference count would go below zero",
	[CHILD_BEYOND] = " points at block 5000, outside the metadata",
};

/* build_three plus a damaged device 4; want gets the expected message. */
static void build_damaged(struct bld *b, enum tree_damage how, char *want, size_t len)
{
	uint64_t root = build_with_two_level(b), leaf = child(b, root, 1);
	if (how == CHILD_IS_ROOT)
		set_child(b, root, 1, root);
	if (how == CHILD_BEYOND)
		set_child(b, root, 2, 5000);
	bld_finish(b);
	if (how == LEAF_CHECKSUM)
		bld_block(b, leaf)[4000] ^= 0x5a;
	snprintf(want, len, "block %llu: device 4 mappings%s", (unsigned long long)(how == LEAF_CHECKSUM ? leaf : root),
		 tree_damage_says[how]);
}

static void test_damage_in_removed_device(void **state)
{
	(void)state;
	struct bld b;
	char want[128];
	const uint64_t ids[] = { 2, 4 };
	for (int how = 0; how < NR_TREE_DAMAGE; how++) {
		build_damaged(&b, (enum tree_damage)how, want, sizeof(want));
		remove_fails(&b, ids, 2, DMR_ECORRUPT, want);
		bld_free(&b);
	}

	/* A mapping beyond the pool. */
	struct bld_map m = { .vblock = 3, .dblock = 5000, .time = 1 };
	build_three(&b);
	bld_device(&b, 4, &m, 1, 0, 0);
	bld_finish(&b);
	remove_fails(&b, ids, 2, DMR_ECORRUPT, "device 4 maps virtual block 3 to data block 5000, beyond the pool");
	bld_free(&b);

	/* Damage in a space map: refused before anything is released. */
	build_three(&b);
	bld_finish(&b);
	bld_block(&b, b.data_bitmap[0])[100] ^= 1;
	remove_fails(&b, ids, 1, DMR_ECORRUPT, "bad checksum in bitmap 0");
	bld_free(&b);
}

static void test_unknown_device(void **state)
{
	(void)state;
	struct bld b;
	build_three(&b);
	bld_device(&b, 9, NULL, 0, 0, BLD_NO_MAPPING);
	bld_finish(&b);
	const uint64_t ids[] = { 1, 7 }, details_only[] = { 9 };
	remove_fails(&b, ids, 2, DMR_ENOENT, "device 7 does not exist");
	remove_fails(&b, details_only, 1, DMR_ENOENT, "device 9 does not exist (it has no mapping tree)");

	/* Nothing to remove: nothing written. */
	char path[4096];
	struct tm_rewrite_result res, plan;
	struct dmr_err err = { 0 };
	bld_write_tmp(&b, path);
	assert_int_equal(plan_unchanged(&b, path, NULL, 0, &plan, &err), 0);
	assert_int_equal(plan.blocks_written, 0);
	assert_int_equal(tm_rewrite_remove(path, NULL, 0, &res, &err), 0);
	expect_same_result(&plan, &res);
	assert_int_equal(res.blocks_written, 0);
	assert_int_equal(res.meta_used_after, res.meta_used_before);
	expect_unchanged(&b, path);
	unlink(path);
	bld_free(&b);
}

/* CAP_DAC_OVERRIDE off (on: 0) or back on (1) in the effective set, so
 * that root too is held to a file's mode; 0 when done. */
static int dac_override(int on)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
	if (syscall(SYS_capget, &h, d) != 0)
		return -1;
	if (on)
		d[0].effective |= 1u << CAP_DAC_OVERRIDE;
	else
		d[0].effective &= ~(1u << CAP_DAC_OVERRIDE);
	return (int)syscall(SYS_capset, &h, d);
}

/* Planning needs no write access: on a file of mode 0444 that cannot be
 * opened for writing (not even by root), where the removal is refused, the
 * plan gives what the removal gives once the file is writable again. */
static void test_plan_read_only(void **state)
{
	(void)state;
	struct bld b;
	struct tm_rewrite_result plan, res;
	struct dmr_err err = { 0 };
	char path[4096];
	uint64_t l1, l1new, l2;
	build_cow_leaves(&b, &l1, &l1new, &l2);
	const uint64_t both[] = { 1, 2 };
	bld_write_tmp(&b, path);
	assert_int_equal(chmod(path, 0444), 0);
	int root = geteuid() == 0;
	if (root && dac_override(0) != 0)
		fail_msg("cannot drop CAP_DAC_OVERRIDE: %s", strerror(errno));
	int fd = open(path, O_RDWR);
	int open_errno = errno;
	if (fd >= 0)
		close(fd);

	int r = plan_unchanged(&b, path, both, 2, &plan, &err);
	struct dmr_err werr = { 0 };
	int rw = tm_rewrite_remove(path, both, 2, &res, &werr);
	if (root && dac_override(1) != 0)
		fail_msg("cannot restore CAP_DAC_OVERRIDE: %s", strerror(errno));
	assert_int_equal(fd, -1);
	assert_int_equal(open_errno, EACCES);
	if (r)
		fail_msg("tm_rewrite_plan on a read-only file: %d %s", r, err.msg);
	assert_int_equal(rw, DMR_EIO);
	assert_contains(werr.msg, "cannot open for writing");
	expect_unchanged(&b, path);
	/* Both devices' blocks, the shared ones once. */
	assert_int_equal(plan.nr_removed, 2);
	assert_int_equal(plan.data_used_before, 400);
	assert_int_equal(plan.data_used_after, 0);

	assert_int_equal(chmod(path, 0644), 0);
	r = tm_rewrite_remove(path, both, 2, &res, &err);
	if (r)
		fail_msg("tm_rewrite_remove: %d %s", r, err.msg);
	expect_same_result(&plan, &res);
	expect_clean(path);
	unlink(path);
	bld_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_remove_unshared),
		cmocka_unit_test(test_remove_shared_leaf),
		cmocka_unit_test(test_remove_shared_root),
		cmocka_unit_test(test_remove_shared_subtree),
		cmocka_unit_test(test_overflow_counts),
		cmocka_unit_test(test_remove_all),
		cmocka_unit_test(test_many_devices),
		cmocka_unit_test(test_held_snapshot),
		cmocka_unit_test(test_not_enough_space),
		cmocka_unit_test(test_damage_in_removed_device),
		cmocka_unit_test(test_unknown_device),
		cmocka_unit_test(test_plan_read_only),
	};
	if (!unit_tmpdir_usable())
		return UNIT_SKIP;
	return cmocka_run_group_tests_name("rewrite", tests, NULL, unit_tmp_cleanup);
}
