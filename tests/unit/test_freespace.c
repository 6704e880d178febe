/* thinmeta: per-device usage (usage.c), free-space runs cross-checked with
 * the mappings (freespace.c), and point lookups in a mapping tree
 * (tm_mapping_lookup in pool.c). */
#include "unit.h"

#include <stdlib.h>
#include <unistd.h>

#include "builder.h"
#include "thinmeta/freespace.h"
#include "thinmeta/pool.h"
#include "thinmeta/spacemap.h"
#include "thinmeta/usage.h"

struct tpool {
	char path[4096];
	struct tm_pool *p;
	struct tm_devlist devs;
};

static void tpool_open(struct tpool *t, const struct bld *b)
{
	struct dmr_err err = { 0 };
	memset(t, 0, sizeof(*t));
	bld_write_tmp(b, t->path);
	if (tm_pool_open(&t->p, t->path, 0, &err))
		fail_msg("tm_pool_open: %s", err.msg);
	if (tm_devices_read(t->p, &t->p->sb, &t->devs, NULL, NULL, &err))
		fail_msg("tm_devices_read: %s", err.msg);
}

static void tpool_close(struct tpool *t)
{
	tm_devlist_free(&t->devs);
	tm_pool_close(t->p);
	unlink(t->path);
}

static uint64_t root_of(const struct tpool *t, uint64_t id)
{
	const struct tm_device *d = tm_devlist_find(&t->devs, id);
	if (!d || !d->in_mapping)
		fail_msg("no mapping tree for device %llu", (unsigned long long)id);
	return d->mapping_root;
}

/* ---- usage ---- */

struct dmg {
	size_t n;
	size_t root[16];
	char reason[16][256];
};

static void on_damage(void *ctx, size_t root, const struct tm_damage *d)
{
	struct dmg *g = ctx;
	if (g->n < 16) {
		g->root[g->n] = root;
		snprintf(g->reason[g->n], sizeof(g->reason[0]), "%s", d->reason);
	}
	g->n++;
}

static void expect_dev(const struct tm_usage *u, size_t i, uint64_t mapped, uint64_t exclusive, uint64_t highest)
{
	assert_true(i < u->n);
	const struct tm_dev_usage *d = &u->dev[i];
	if (d->mapped != mapped || d->exclusive != exclusive || d->highest != highest)
		fail_msg("root %zu: mapped %llu exclusive %llu highest %llu, expected %llu %llu %llu", i,
			 (unsigned long long)d->mapped, (unsigned long long)d->exclusive,
			 (unsigned long long)d->highest, (unsigned long long)mapped, (unsigned long long)exclusive,
			 (unsigned long long)highest);
}

/* A: 0..3 -> 10..13; B: 0..1 -> 10..11, 7 -> 50; C: 2 -> 12, 100 -> 13,
 * 200 -> 60; D: nothing. */
static void build_shared(struct bld *b)
{
	bld_init(b, 32, 1024);
	static const struct bld_map a[] = { { 0, 10, 0 }, { 1, 11, 0 }, { 2, 12, 0 }, { 3, 13, 0 } };
	static const struct bld_map bm[] = { { 0, 10, 0 }, { 1, 11, 0 }, { 7, 50, 1 } };
	static const struct bld_map c[] = { { 2, 12, 0 }, { 100, 13, 0 }, { 200, 60, 1 } };
	bld_device(b, 1, a, 4, 0, 0);
	bld_device(b, 2, bm, 3, 0, 0);
	bld_device(b, 3, c, 3, 0, 0);
	bld_device(b, 4, NULL, 0, 0, 0);
	bld_finish(b);
}

static void test_usage_shared(void **state)
{
	(void)state;
	struct bld b;
	build_shared(&b);
	struct tpool t;
	tpool_open(&t, &b);
	uint64_t roots[4] = { root_of(&t, 1), root_of(&t, 2), root_of(&t, 3), root_of(&t, 4) };
	struct tm_usage u;
	struct dmg g = { 0 };
	struct dmr_err err = { 0 };

	assert_int_equal(tm_usage_compute(t.p, roots, 4, 1024, on_damage, &g, &u, &err), 0);
	assert_int_equal(g.n, 0);
	assert_int_equal(u.n, 4);
	expect_dev(&u, 0, 4, 0, 4);
	expect_dev(&u, 1, 3, 1, 8);
	expect_dev(&u, 2, 3, 1, 201);
	expect_dev(&u, 3, 0, 0, 0);
	assert_int_equal(tm_datamap_count(&u.map, 10), 2);
	assert_int_equal(tm_datamap_count(&u.map, 12), 2);
	assert_int_equal(tm_datamap_count(&u.map, 50), 1);
	assert_int_equal(tm_datamap_count(&u.map, 60), 1);
	assert_int_equal(tm_datamap_count(&u.map, 0), 0);
	assert_int_equal(tm_datamap_count(&u.map, 14), 0);
	tm_usage_free(&u);
	assert_null(u.dev);
	assert_int_equal(u.n, 0);

	/* Another order: the results follow the roots. */
	uint64_t rev[3] = { roots[2], roots[0], roots[1] };
	assert_int_equal(tm_usage_compute(t.p, rev, 3, 1024, NULL, NULL, &u, &err), 0);
	expect_dev(&u, 0, 3, 1, 201);
	expect_dev(&u, 1, 4, 0, 4);
	expect_dev(&u, 2, 3, 1, 8);
	tm_usage_free(&u);

	/* A alone owns all its blocks; A with C shares 12 and 13. */
	assert_int_equal(tm_usage_compute(t.p, roots, 1, 1024, NULL, NULL, &u, &err), 0);
	expect_dev(&u, 0, 4, 4, 4);
	tm_usage_free(&u);
	uint64_t ac[2] = { roots[0], roots[2] };
	assert_int_equal(tm_usage_compute(t.p, ac, 2, 1024, NULL, NULL, &u, &err), 0);
	expect_dev(&u, 0, 4, 2, 4);
	expect_dev(&u, 1, 3, 1, 201);
	tm_usage_free(&u);

	/* The same tree twice: nothing exclusive. */
	uint64_t twice[2] = { roots[1], roots[1] };
	assert_int_equal(tm_usage_compute(t.p, twice, 2, 1024, NULL, NULL, &u, &err), 0);
	expect_dev(&u, 0, 3, 0, 8);
	expect_dev(&u, 1, 3, 0, 8);
	tm_usage_free(&u);

	/* No roots. */
	assert_int_equal(tm_usage_compute(t.p, roots, 0, 1024, NULL, NULL, &u, &err), 0);
	assert_int_equal(u.n, 0);
	assert_int_equal(tm_datamap_count(&u.map, 10), 0);
	tm_usage_free(&u);

	/* A pool of 55 data blocks: C's mapping to 60 is damage, skipped. */
	assert_int_equal(tm_usage_compute(t.p, roots, 4, 55, on_damage, &g, &u, &err), 0);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.root[0], 2);
	assert_contains(g.reason[0], "beyond the end of the pool");
	expect_dev(&u, 2, 2, 0, 101);
	expect_dev(&u, 1, 3, 1, 8);
	tm_usage_free(&u);

	tpool_close(&t);
	bld_free(&b);
}

/* Multi-level trees; a damaged tree counts what could be read. */
static void test_usage_multilevel_damage(void **state)
{
	(void)state;
	struct bld b;
	bld_init(&b, 600, 4096);
	enum { N = 1500 };
	struct bld_map *m = calloc(N, sizeof(*m));
	assert_non_null(m);
	for (size_t i = 0; i < N; i++)
		m[i] = (struct bld_map){ 3 * i, 100 + i, (uint32_t)(i % 5) };
	bld_device(&b, 1, m, N, 4, 0);
	/* 2 shares the first 10 blocks of 1 and has 5 of its own. */
	struct bld_map m2[15];
	for (size_t i = 0; i < 15; i++)
		m2[i] = (struct bld_map){ i, i < 10 ? 100 + i : 3000 + i, 0 };
	size_t d2 = bld_device(&b, 2, m2, 15, 0, 0);
	bld_finish(&b);
	uint64_t leaf2 = b.dev[d2].root;

	struct tpool t;
	tpool_open(&t, &b);
	uint64_t roots[2] = { root_of(&t, 1), root_of(&t, 2) };
	struct tm_usage u;
	struct dmr_err err = { 0 };
	struct dmg g = { 0 };
	assert_int_equal(tm_usage_compute(t.p, roots, 2, 4096, on_damage, &g, &u, &err), 0);
	assert_int_equal(g.n, 0);
	expect_dev(&u, 0, N, N - 10, 3 * (N - 1) + 1);
	expect_dev(&u, 1, 15, 5, 15);
	tm_usage_free(&u);
	tpool_close(&t);

	/* Device 2's only leaf with a bad checksum: 1 owns its 10 blocks again. */
	bld_block(&b, leaf2)[100] ^= 0xff;
	tpool_open(&t, &b);
	memset(&g, 0, sizeof(g));
	assert_int_equal(tm_usage_compute(t.p, roots, 2, 4096, on_damage, &g, &u, &err), 0);
	assert_true(g.n >= 1);
	assert_int_equal(g.root[0], 1);
	expect_dev(&u, 0, N, N, 3 * (N - 1) + 1);
	expect_dev(&u, 1, 0, 0, 0);
	tm_usage_free(&u);
	tpool_close(&t);
	free(m);
	bld_free(&b);
}

/* ---- free runs ---- */

struct runs {
	size_t n;
	uint64_t b[64], len[64];
};

static void on_run(void *ctx, uint64_t block, uint64_t len)
{
	struct runs *r = ctx;
	if (r->n < 64) {
		r->b[r->n] = block;
		r->len[r->n] = len;
	}
	r->n++;
}

static void expect_runs(const struct runs *r, const uint64_t *want, size_t n)
{
	int ok = r->n == n;
	for (size_t i = 0; ok && i < n; i++)
		ok = r->b[i] == want[2 * i] && r->len[i] == want[2 * i + 1];
	if (!ok) {
		for (size_t i = 0; i < r->n && i < 64; i++)
			fprintf(stderr, "  run %zu: %llu +%llu\n", i, (unsigned long long)r->b[i],
				(unsigned long long)r->len[i]);
		fail_msg("%zu runs, expected %zu", r->n, n);
	}
}

struct fs_case {
	struct tpool t;
	struct tm_space_map sm;
	struct tm_usage u;
	struct dmg g; /* space map damage: ignored, counted */
};

static void sm_damage(void *ctx, const char *tree, const struct tm_damage *d)
{
	(void)tree;
	(void)d;
	((struct dmg *)ctx)->n++;
}

/* Space map and datamap of every device of a builder pool. */
static void fs_open(struct fs_case *c, const struct bld *b)
{
	struct dmr_err err = { 0 };
	memset(c, 0, sizeof(*c));
	tpool_open(&c->t, b);
	if (tm_sm_read(c->t.p, 0, &c->sm, sm_damage, &c->g, &err))
		fail_msg("tm_sm_read: %s", err.msg);
	uint64_t roots[BLD_MAX_DEVS];
	size_t n = 0;
	for (size_t i = 0; i < c->t.devs.n; i++)
		if (c->t.devs.dev[i].in_mapping)
			roots[n++] = c->t.devs.dev[i].mapping_root;
	if (tm_usage_compute(c->t.p, roots, n, c->t.p->sb.data_sm.nr_blocks, NULL, NULL, &c->u, &err))
		fail_msg("tm_usage_compute: %s", err.msg);
}

static void fs_close(struct fs_case *c)
{
	tm_usage_free(&c->u);
	tm_sm_free(&c->sm);
	tpool_close(&c->t);
}

static void expect_stats(const struct tm_free_stats *s, uint64_t nr, uint64_t free_blocks, uint64_t used,
			 uint64_t fbm, uint64_t held)
{
	if (s->nr_blocks != nr || s->free_blocks != free_blocks || s->used_blocks != used ||
	    s->free_but_mapped != fbm || s->held_unmapped != held)
		fail_msg("nr %llu free %llu used %llu free_but_mapped %llu held_unmapped %llu, expected %llu %llu "
			 "%llu %llu %llu",
			 (unsigned long long)s->nr_blocks, (unsigned long long)s->free_blocks,
			 (unsigned long long)s->used_blocks, (unsigned long long)s->free_but_mapped,
			 (unsigned long long)s->held_unmapped, (unsigned long long)nr, (unsigned long long)free_blocks,
			 (unsigned long long)used, (unsigned long long)fbm, (unsigned long long)held);
}

static void test_free_runs_standard(void **state)
{
	(void)state;
	struct bld b;
	bld_standard(&b); /* 10..12, 20 */
	struct fs_case c;
	fs_open(&c, &b);
	assert_int_equal(c.g.n, 0);
	struct runs r = { 0 };
	struct tm_free_stats s;
	memset(&s, 0xa5, sizeof(s));
	tm_free_runs(&c.sm, &c.u.map, on_run, &r, &s);
	static const uint64_t want[] = { 0, 10, 13, 7, 21, 1003 };
	expect_runs(&r, want, 3);
	expect_stats(&s, 1024, 1020, 4, 0, 0);

	/* No callback: the same stats. */
	struct tm_free_stats s2;
	tm_free_runs(&c.sm, &c.u.map, NULL, NULL, &s2);
	expect_stats(&s2, 1024, 1020, 4, 0, 0);
	fs_close(&c);
	bld_free(&b);
}

/* Mapped at both ends and across a bitmap boundary (16320 entries each). */
static void test_free_runs_edges(void **state)
{
	(void)state;
	struct bld b;
	bld_init(&b, 64, 40000);
	static const struct bld_map m[] = { { 0, 0, 0 }, { 1, 16319, 0 }, { 2, 16320, 0 }, { 3, 39999, 0 },
					    { 4, 2, 0 } };
	bld_device(&b, 1, m, 5, 0, 0);
	bld_finish(&b);
	struct fs_case c;
	fs_open(&c, &b);
	assert_int_equal(c.g.n, 0);
	struct runs r = { 0 };
	struct tm_free_stats s;
	tm_free_runs(&c.sm, &c.u.map, on_run, &r, &s);
	static const uint64_t want[] = { 1, 1, 3, 16316, 16321, 23678 };
	expect_runs(&r, want, 3);
	expect_stats(&s, 40000, 40000 - 5, 5, 0, 0);
	fs_close(&c);
	bld_free(&b);

	/* Everything used: no run. */
	bld_init(&b, 32, 4);
	static const struct bld_map all[] = { { 0, 0, 0 }, { 1, 1, 0 }, { 2, 2, 0 }, { 3, 3, 0 } };
	bld_device(&b, 1, all, 4, 0, 0);
	bld_finish(&b);
	fs_open(&c, &b);
	memset(&r, 0, sizeof(r));
	tm_free_runs(&c.sm, &c.u.map, on_run, &r, &s);
	assert_int_equal(r.n, 0);
	expect_stats(&s, 4, 0, 4, 0, 0);
	fs_close(&c);
	bld_free(&b);

	/* Nothing used: one run of the whole pool. */
	bld_init(&b, 32, 100);
	bld_finish(&b);
	fs_open(&c, &b);
	memset(&r, 0, sizeof(r));
	tm_free_runs(&c.sm, &c.u.map, on_run, &r, &s);
	static const uint64_t whole[] = { 0, 100 };
	expect_runs(&r, whole, 1);
	expect_stats(&s, 100, 100, 0, 0, 0);
	fs_close(&c);
	bld_free(&b);
}

/* A block the space map calls free that a device maps: inconsistent, and
 * never part of a free run. */
static void test_free_runs_inconsistent(void **state)
{
	(void)state;
	struct bld b;
	bld_standard(&b); /* 10..12, 20 */
	bld_bitmap_set(&b, b.data_bitmap[0], 11, 0);
	bld_bitmap_set(&b, b.data_bitmap[0], 20, 0);
	struct fs_case c;
	fs_open(&c, &b);
	assert_int_equal(tm_sm_count(&c.sm, 11), 0);
	assert_int_equal(tm_datamap_count(&c.u.map, 11), 1);
	struct runs r = { 0 };
	struct tm_free_stats s;
	tm_free_runs(&c.sm, &c.u.map, on_run, &r, &s);
	static const uint64_t want[] = { 0, 10, 13, 7, 21, 1003 };
	expect_runs(&r, want, 3);
	expect_stats(&s, 1024, 1020, 2, 2, 0);
	assert_int_equal(s.first_free_but_mapped, 11);
	fs_close(&c);
	bld_free(&b);
}

/* Counted but mapped by no device: held (a metadata snapshot, a leak). */
static void test_free_runs_held(void **state)
{
	(void)state;
	struct bld b;
	bld_init(&b, 32, 1024);
	static const struct bld_map m[] = { { 0, 10, 0 }, { 1, 11, 0 } };
	bld_device(&b, 1, m, 2, 0, 0);
	b.data_count[500] = 1;  /* consistent image, no device maps it */
	b.data_count[1023] = 5; /* an overflow count */
	bld_finish(&b);
	bld_bitmap_set(&b, b.data_bitmap[0], 0, 2); /* a bitmap entry changed after the fact */
	struct fs_case c;
	fs_open(&c, &b);
	assert_int_equal(tm_sm_count(&c.sm, 1023), 5);
	struct runs r = { 0 };
	struct tm_free_stats s;
	tm_free_runs(&c.sm, &c.u.map, on_run, &r, &s);
	static const uint64_t want[] = { 1, 9, 12, 488, 501, 522 };
	expect_runs(&r, want, 3);
	expect_stats(&s, 1024, 1024 - 5, 5, 0, 3);
	assert_int_equal(s.first_free_but_mapped, 0);
	fs_close(&c);
	bld_free(&b);
}

/* ---- tm_mapping_lookup ---- */

static void expect_hit(struct tm_pool *p, uint64_t root, uint64_t v, uint64_t d, uint32_t tm)
{
	uint64_t got = UINT64_MAX;
	uint32_t gt = UINT32_MAX;
	struct dmr_err err = { 0 };
	int r = tm_mapping_lookup(p, root, v, &got, &gt, &err);
	if (r)
		fail_msg("lookup of %llu: %d (%s)", (unsigned long long)v, r, err.msg);
	if (got != d || gt != tm)
		fail_msg("lookup of %llu: data %llu time %u, expected %llu time %u", (unsigned long long)v,
			 (unsigned long long)got, gt, (unsigned long long)d, tm);
}

static void expect_miss(struct tm_pool *p, uint64_t root, uint64_t v)
{
	uint64_t got = 12345;
	uint32_t gt = 6789;
	struct dmr_err err = { 0 };
	int r = tm_mapping_lookup(p, root, v, &got, &gt, &err);
	if (r != DMR_ENOENT)
		fail_msg("lookup of %llu: %d, expected DMR_ENOENT (%s)", (unsigned long long)v, r, err.msg);
}

static void expect_corrupt(struct tm_pool *p, uint64_t root, uint64_t v, const char *block, const char *why)
{
	uint64_t got;
	uint32_t gt;
	struct dmr_err err = { 0 };
	int r = tm_mapping_lookup(p, root, v, &got, &gt, &err);
	if (r != DMR_ECORRUPT)
		fail_msg("lookup of %llu: %d, expected DMR_ECORRUPT", (unsigned long long)v, r);
	assert_contains(err.msg, p->path);
	assert_contains(err.msg, block);
	assert_contains(err.msg, why);
}

static void test_lookup_leaf(void **state)
{
	(void)state;
	struct bld b;
	bld_init(&b, 32, 1024);
	static const struct bld_map m[] = { { 5, 10, 0 }, { 6, 11, 3 }, { 9, 500, 0xffffff }, { 1000000, 1023, 7 } };
	bld_device(&b, 1, m, 4, 0, 0);
	bld_device(&b, 2, NULL, 0, 0, 0);
	bld_finish(&b);
	struct tpool t;
	tpool_open(&t, &b);
	uint64_t root = root_of(&t, 1);
	expect_hit(t.p, root, 5, 10, 0);
	expect_hit(t.p, root, 6, 11, 3);
	expect_hit(t.p, root, 9, 500, 0xffffff);
	expect_hit(t.p, root, 1000000, 1023, 7);
	for (uint64_t v = 0; v < 5; v++)
		expect_miss(t.p, root, v); /* below the first key */
	expect_miss(t.p, root, 7);         /* between keys */
	expect_miss(t.p, root, 8);
	expect_miss(t.p, root, 999999);
	expect_miss(t.p, root, 1000001); /* after the last */
	expect_miss(t.p, root, UINT64_MAX);
	/* An empty tree. */
	expect_miss(t.p, root_of(&t, 2), 0);
	expect_miss(t.p, root_of(&t, 2), 5);
	tpool_close(&t);
	bld_free(&b);

	/* The standard pool, too. */
	bld_standard(&b);
	tpool_open(&t, &b);
	root = root_of(&t, 1);
	expect_hit(t.p, root, 0, 10, 0);
	expect_hit(t.p, root, 2, 12, 0);
	expect_hit(t.p, root, 5, 20, 1);
	expect_miss(t.p, root, 3);
	expect_miss(t.p, root, 6);
	tpool_close(&t);
	bld_free(&b);
}

/* 2000 mappings, 3 to a leaf: 667 leaves, 3 internal nodes under a root. */
static void test_lookup_multilevel(void **state)
{
	(void)state;
	struct bld b;
	bld_init(&b, 800, 8192);
	enum { N = 2000 };
	struct bld_map *m = calloc(N, sizeof(*m));
	assert_non_null(m);
	for (size_t i = 0; i < N; i++)
		m[i] = (struct bld_map){ 7 + 2 * i, 8191 - 3 * i, (uint32_t)(i % 11) };
	size_t d = bld_device(&b, 1, m, N, 3, 0);
	bld_finish(&b);
	struct tpool t;
	tpool_open(&t, &b);
	uint64_t root = root_of(&t, 1);
	assert_int_equal(root, b.dev[d].root);
	/* The root is internal, and so are its children. */
	const unsigned char *rb = bld_block(&b, root);
	assert_int_equal(tm_le32(rb + 4), TM_NODE_INTERNAL);
	uint64_t child = tm_le64(rb + 32 + 8 * tm_le32(rb + 20));
	assert_int_equal(tm_le32(bld_block(&b, child) + 4), TM_NODE_INTERNAL);

	for (size_t i = 0; i < N; i++) {
		expect_hit(t.p, root, 7 + 2 * i, 8191 - 3 * i, (uint32_t)(i % 11));
		expect_miss(t.p, root, 8 + 2 * i);
	}
	for (uint64_t v = 0; v < 7; v++)
		expect_miss(t.p, root, v);
	expect_miss(t.p, root, 7 + 2 * N);
	expect_miss(t.p, root, UINT64_MAX);
	tpool_close(&t);
	free(m);
	bld_free(&b);
}

static void test_lookup_damage(void **state)
{
	(void)state;
	struct bld b;
	bld_init(&b, 64, 1024);
	enum { N = 30 };
	struct bld_map m[N];
	for (size_t i = 0; i < N; i++)
		m[i] = (struct bld_map){ 10 * i, 100 + i, 0 };
	size_t d = bld_device(&b, 1, m, N, 4, 0);
	/* Hand-made nodes: */
	uint64_t self = bld_alloc(&b);    /* internal, its only child is itself */
	uint64_t far = bld_alloc(&b);     /* internal, a child beyond the file */
	uint64_t zero = bld_alloc(&b);    /* internal, a child at block 0 */
	uint64_t low = bld_alloc(&b);     /* internal: keys 0, 100; the second child has key 50 */
	uint64_t lowleaf = bld_alloc(&b);
	uint64_t lowleaf2 = bld_alloc(&b);
	uint64_t wide = bld_alloc(&b);    /* a leaf with 16-byte values */
	uint64_t moved = bld_alloc(&b);   /* a copy of a leaf at the wrong block */
	uint64_t badflags = bld_alloc(&b);
	bld_finish(&b);
	uint64_t root = b.dev[d].root;
	const unsigned char *rb = bld_block(&b, root);
	assert_int_equal(tm_le32(rb + 4), TM_NODE_INTERNAL);
	uint32_t rmax = tm_le32(rb + 20);
	uint64_t leaf1 = tm_le64(rb + 32 + 8 * rmax + 8); /* keys 40..70 */

	uint64_t k0[1] = { 0 }, v[2];
	v[0] = self;
	bld_node64(&b, self, TM_NODE_INTERNAL, 1, k0, v);
	v[0] = 100000;
	bld_node64(&b, far, TM_NODE_INTERNAL, 1, k0, v);
	v[0] = 0;
	bld_node64(&b, zero, TM_NODE_INTERNAL, 1, k0, v);
	uint64_t k2[2] = { 0, 100 };
	v[0] = lowleaf;
	v[1] = lowleaf2;
	bld_node64(&b, low, TM_NODE_INTERNAL, 2, k2, v);
	uint64_t lk[1] = { 0 }, lv[1] = { bld_block_time(5, 0) };
	bld_node64(&b, lowleaf, TM_NODE_LEAF, 1, lk, lv);
	lk[0] = 50;
	bld_node64(&b, lowleaf2, TM_NODE_LEAF, 1, lk, lv);
	unsigned char vals16[16] = { 0 };
	bld_node(&b, wide, TM_NODE_LEAF, 16, 1, k0, vals16);
	memcpy(bld_block(&b, moved), bld_block(&b, leaf1), TM_BLOCK_SIZE);
	bld_reseal_node(&b, moved);
	lv[0] = bld_block_time(5, 0);
	bld_node64(&b, badflags, 3, 1, k0, lv);

	char bad_leaf[64], blk[64];
	/* A leaf with a bad checksum: lookups through it fail, others work. */
	bld_block(&b, leaf1)[200] ^= 0x10;
	struct tpool t;
	tpool_open(&t, &b);
	snprintf(bad_leaf, sizeof(bad_leaf), "block %llu", (unsigned long long)leaf1);
	expect_corrupt(t.p, root, 50, bad_leaf, "checksum");
	expect_corrupt(t.p, root, 45, bad_leaf, "checksum");
	expect_hit(t.p, root, 30, 103, 0);
	expect_hit(t.p, root, 80, 108, 0);
	expect_miss(t.p, root, 31);

	/* A child pointing at itself: the depth limit. */
	snprintf(blk, sizeof(blk), "rooted at %llu", (unsigned long long)self);
	expect_corrupt(t.p, self, 7, blk, "deeper than");
	/* A child beyond the file; a child at block 0; a root beyond. */
	expect_corrupt(t.p, far, 7, "block 100000", "outside the metadata");
	expect_corrupt(t.p, zero, 7, "block 0", "outside the metadata");
	expect_corrupt(t.p, 64, 7, "block 64", "outside the metadata");
	/* Keys below the parent's. */
	snprintf(blk, sizeof(blk), "block %llu", (unsigned long long)lowleaf2);
	expect_corrupt(t.p, low, 150, blk, "below its parent's key 100");
	expect_hit(t.p, low, 0, 5, 0);
	/* Wrong value size, wrong block number, bad flags. */
	snprintf(blk, sizeof(blk), "block %llu", (unsigned long long)wide);
	expect_corrupt(t.p, wide, 0, blk, "value size 16");
	snprintf(blk, sizeof(blk), "block %llu", (unsigned long long)moved);
	expect_corrupt(t.p, moved, 40, blk, "says it is block");
	snprintf(blk, sizeof(blk), "block %llu", (unsigned long long)badflags);
	expect_corrupt(t.p, badflags, 0, blk, "flags");
	tpool_close(&t);
	bld_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_usage_shared),
		cmocka_unit_test(test_usage_multilevel_damage),
		cmocka_unit_test(test_free_runs_standard),
		cmocka_unit_test(test_free_runs_edges),
		cmocka_unit_test(test_free_runs_inconsistent),
		cmocka_unit_test(test_free_runs_held),
		cmocka_unit_test(test_lookup_leaf),
		cmocka_unit_test(test_lookup_multilevel),
		cmocka_unit_test(test_lookup_damage),
	};
	if (!unit_tmpdir_usable())
		return UNIT_SKIP;
	return cmocka_run_group_tests_name("freespace", tests, NULL, unit_tmp_cleanup);
}
