/* Btree node validation and the level-at-a-time walker. */
#include "unit.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "builder.h"
#include "thinmeta/blocksrc.h"
#include "thinmeta/btree.h"
#include "thinmeta/crc32c.h"

#define OPEN UINT64_MAX

/* ---- tm_node_check ---- */

static void patch32(struct bld *b, uint64_t blk, size_t off, uint32_t v)
{
	tm_put_le32(bld_block(b, blk) + off, v);
	bld_reseal_node(b, blk);
}

static int check(struct bld *b, uint64_t blk, uint64_t as_block, uint32_t leaf_vs, struct tm_node *n, char *why)
{
	why[0] = '\0';
	return tm_node_check(bld_block(b, blk), as_block, leaf_vs, n, why, 200);
}

static void build_leaf(struct bld *b, uint64_t blk, uint64_t first, uint32_t nr)
{
	uint64_t keys[252], vals[252];
	for (uint32_t i = 0; i < nr; i++) {
		keys[i] = first + i;
		vals[i] = (first + i) * 100;
	}
	bld_node64(b, blk, TM_NODE_LEAF, nr, keys, vals);
}

static void test_max_entries(void **state)
{
	(void)state;
	assert_int_equal(tm_node_max_entries(8), 252);
	assert_int_equal(tm_node_max_entries(24), 126);
	assert_int_equal(tm_node_max_entries(16), 168);
	assert_int_equal(tm_node_max_entries(4), 336);
}

static void test_node_valid(void **state)
{
	(void)state;
	struct bld b;
	bld_init(&b, 8, 1);
	char why[200];
	struct tm_node n;
	build_leaf(&b, 3, 1000, 5);
	assert_int_equal(check(&b, 3, 3, 8, &n, why), 0);
	assert_int_equal(n.block, 3);
	assert_int_equal(n.flags, TM_NODE_LEAF);
	assert_int_equal(n.nr_entries, 5);
	assert_int_equal(n.max_entries, 252);
	assert_int_equal(n.value_size, 8);
	for (uint32_t i = 0; i < 5; i++) {
		assert_int_equal(tm_node_key(&n, i), 1000 + i);
		assert_int_equal(tm_node_value64(&n, i), (1000 + i) * 100);
	}
	/* Values start after max_entries keys, not after nr_entries. */
	assert_ptr_equal(n.keys, bld_block(&b, 3) + 32);
	assert_ptr_equal(n.values, bld_block(&b, 3) + 32 + 8 * 252);

	/* A full leaf, an empty leaf, an internal node. */
	build_leaf(&b, 4, 0, 252);
	assert_int_equal(check(&b, 4, 4, 8, &n, why), 0);
	assert_int_equal(n.nr_entries, 252);
	bld_node(&b, 5, TM_NODE_LEAF, 8, 0, NULL, NULL);
	assert_int_equal(check(&b, 5, 5, 8, &n, why), 0);
	assert_int_equal(n.nr_entries, 0);
	uint64_t keys[2] = { 0, 1000 }, kids[2] = { 4, 3 };
	bld_node64(&b, 6, TM_NODE_INTERNAL, 2, keys, kids);
	/* Internal nodes have 8-byte values whatever the leaves hold. */
	assert_int_equal(check(&b, 6, 6, 24, &n, why), 0);
	assert_int_equal(n.flags, TM_NODE_INTERNAL);
	assert_int_equal(tm_node_value64(&n, 1), 3);

	/* Details leaf (24-byte values) and overflow leaf (4-byte values). */
	struct tm_disk_device_details d[2] = { { .mapped_blocks = htole64(7) }, { .mapped_blocks = htole64(9) } };
	uint64_t dk[2] = { 1, 5 };
	bld_node(&b, 7, TM_NODE_LEAF, 24, 2, dk, d);
	assert_int_equal(check(&b, 7, 7, 24, &n, why), 0);
	assert_int_equal(n.max_entries, 126);
	assert_int_equal(tm_le64(tm_node_value(&n, 1)), 9);
	assert_ptr_equal(n.values, bld_block(&b, 7) + 32 + 8 * 126);
	uint32_t ov[2] = { htole32(3), htole32(70) };
	bld_node(&b, 2, TM_NODE_LEAF, 4, 2, dk, ov);
	assert_int_equal(check(&b, 2, 2, 4, &n, why), 0);
	assert_int_equal(tm_le32(tm_node_value(&n, 1)), 70);
	bld_free(&b);
}

static void expect_bad(struct bld *b, uint64_t blk, uint64_t as_block, uint32_t leaf_vs, const char *word)
{
	char why[200];
	struct tm_node n;
	int r = check(b, blk, as_block, leaf_vs, &n, why);
	if (r != DMR_ECORRUPT)
		fail_msg("node %llu accepted (%d), expected an error about \"%s\"", (unsigned long long)blk, r, word);
	assert_true(why[0] != '\0');
	assert_contains(why, word);
}

static void test_node_bad(void **state)
{
	(void)state;
	struct bld b;
	bld_init(&b, 8, 1);
	char why[200];
	struct tm_node n;

	/* Checksum: any flipped byte, including unused space. */
	build_leaf(&b, 3, 0, 10);
	bld_block(&b, 3)[4000] ^= 1;
	expect_bad(&b, 3, 3, 8, "checksum");
	build_leaf(&b, 3, 0, 10);
	bld_block(&b, 3)[0] ^= 1;
	expect_bad(&b, 3, 3, 8, "checksum");
	/* Wrong salt (a bitmap checksum on a node). */
	build_leaf(&b, 3, 0, 10);
	bld_reseal(&b, 3, TM_SALT_BITMAP);
	expect_bad(&b, 3, 3, 8, "checksum");

	/* blocknr: read from another block than it says. */
	build_leaf(&b, 3, 0, 10);
	expect_bad(&b, 3, 4, 8, "block 3");
	expect_bad(&b, 3, 0, 8, "block");

	/* flags: neither or both. */
	static const uint32_t badflags[] = { 0, 3, 4, 0x102 };
	for (size_t i = 0; i < 4; i++) {
		build_leaf(&b, 3, 0, 10);
		patch32(&b, 3, 4, badflags[i]);
		expect_bad(&b, 3, 3, 8, "flags");
	}

	/* value_size: a mapping leaf where a details leaf is expected, and
	 * the other way around; an internal node with 24-byte values. */
	build_leaf(&b, 3, 0, 10);
	expect_bad(&b, 3, 3, 24, "value size");
	expect_bad(&b, 3, 3, 16, "value size");
	uint64_t dk[1] = { 1 };
	struct tm_disk_device_details d = { 0 };
	bld_node(&b, 4, TM_NODE_LEAF, 24, 1, dk, &d);
	expect_bad(&b, 4, 4, 8, "value size");
	bld_node(&b, 4, TM_NODE_INTERNAL, 24, 1, dk, &d);
	expect_bad(&b, 4, 4, 24, "value size");
	expect_bad(&b, 4, 4, 8, "value size");

	/* max_entries must be the one for the value size. */
	static const uint32_t badmax[] = { 0, 1, 251, 253, 126, 336, 0xffffffffu };
	for (size_t i = 0; i < sizeof(badmax) / sizeof(badmax[0]); i++) {
		build_leaf(&b, 3, 0, 0);
		patch32(&b, 3, 20, badmax[i]);
		expect_bad(&b, 3, 3, 8, "max_entries");
	}

	/* nr_entries > max_entries. */
	build_leaf(&b, 3, 0, 10);
	patch32(&b, 3, 16, 253);
	expect_bad(&b, 3, 3, 8, "entries");
	build_leaf(&b, 3, 0, 10);
	patch32(&b, 3, 16, 0xffffffffu);
	expect_bad(&b, 3, 3, 8, "entries");
	/* ... while exactly max is fine (keys 0..251 ascending). */
	build_leaf(&b, 3, 0, 252);
	assert_int_equal(check(&b, 3, 3, 8, &n, why), 0);

	/* An internal node with no entries. */
	bld_node(&b, 5, TM_NODE_INTERNAL, 8, 0, NULL, NULL);
	expect_bad(&b, 5, 5, 8, "no entries");

	/* Keys out of order and duplicated, first and last positions. */
	uint64_t keys[5] = { 1, 2, 3, 4, 5 }, vals[5] = { 0 };
	keys[2] = 2;
	bld_node64(&b, 3, TM_NODE_LEAF, 5, keys, vals);
	expect_bad(&b, 3, 3, 8, "order");
	uint64_t k2[5] = { 5, 1, 2, 3, 4 };
	bld_node64(&b, 3, TM_NODE_LEAF, 5, k2, vals);
	expect_bad(&b, 3, 3, 8, "order");
	uint64_t k3[5] = { 1, 2, 3, 4, 4 };
	bld_node64(&b, 3, TM_NODE_LEAF, 5, k3, vals);
	expect_bad(&b, 3, 3, 8, "order");
	uint64_t k4[3] = { 10, 5, 20 }, kids[3] = { 1, 2, 4 };
	bld_node64(&b, 3, TM_NODE_INTERNAL, 3, k4, kids);
	expect_bad(&b, 3, 3, 8, "order");
	/* Only the first nr_entries keys count. */
	uint64_t k5[5] = { 1, 2, 3, 0, 0 };
	bld_node64(&b, 3, TM_NODE_LEAF, 3, k5, vals);
	assert_int_equal(check(&b, 3, 3, 8, &n, why), 0);
	bld_free(&b);
}

/* ---- tm_btree_walk ---- */

struct leafrec {
	size_t root;
	uint64_t block, lo, hi;
	uint32_t nr;
	uint64_t first, last;
};

struct rec {
	struct leafrec *leaf;
	size_t nl, capl;
	struct tm_damage *dmg;
	size_t nd, capd;
	size_t nodes;
	size_t nodes_at[TM_BTREE_MAX_DEPTH]; /* valid nodes by depth in their tree */
	size_t stop_after; /* 0 = never */
	uint64_t *keys;    /* every leaf key delivered, in order */
	size_t nk, capk;
};

static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return p;
	size_t c = *cap ? *cap * 2 : 64;
	while (c < need)
		c *= 2;
	void *q = realloc(p, c * size);
	assert_non_null(q);
	*cap = c;
	return q;
}

static int rec_leaf(void *ctx, size_t root, const struct tm_node *leaf, uint64_t lo, uint64_t hi)
{
	struct rec *r = ctx;
	r->leaf = grow(r->leaf, &r->capl, r->nl + 1, sizeof(*r->leaf));
	struct leafrec *l = &r->leaf[r->nl++];
	*l = (struct leafrec){ .root = root, .block = leaf->block, .lo = lo, .hi = hi, .nr = leaf->nr_entries };
	if (leaf->nr_entries) {
		l->first = tm_node_key(leaf, 0);
		l->last = tm_node_key(leaf, leaf->nr_entries - 1);
	}
	r->keys = grow(r->keys, &r->capk, r->nk + leaf->nr_entries, sizeof(*r->keys));
	for (uint32_t i = 0; i < leaf->nr_entries; i++)
		r->keys[r->nk++] = tm_node_key(leaf, i);
	if (r->stop_after && r->nl >= r->stop_after)
		return -42;
	return 0;
}

static void rec_node(void *ctx, size_t root, const struct tm_node *node, int depth)
{
	struct rec *r = ctx;
	r->nodes++;
	assert_true(depth >= 0 && depth < TM_BTREE_MAX_DEPTH);
	r->nodes_at[depth]++;
}

static void rec_damage(void *ctx, const struct tm_damage *d)
{
	struct rec *r = ctx;
	r->dmg = grow(r->dmg, &r->capd, r->nd + 1, sizeof(*r->dmg));
	r->dmg[r->nd++] = *d;
}

static void rec_free(struct rec *r)
{
	free(r->leaf);
	free(r->dmg);
	free(r->keys);
	memset(r, 0, sizeof(*r));
}

/* Writes the image to a temp file and walks it. mode: 0 ordered,
 * 1 unordered, 2 ordered and aligned. */
static int walk_limit(struct bld *b, uint64_t limit, const uint64_t *roots, size_t n, uint32_t vs, int mode,
		      struct rec *r)
{
	char path[4096];
	bld_write_tmp(b, path);
	struct tm_blocksrc *bs;
	struct dmr_err err;
	int rc = tm_blocksrc_open(&bs, path, 0, &err);
	unlink(path);
	if (rc)
		fail_msg("open: %s", err.msg);
	struct tm_btree_visitor v = {
		.value_size = vs, .unordered = mode == 1, .aligned = mode == 2,
		.leaf = rec_leaf, .node = rec_node, .damage = rec_damage, .ctx = r,
	};
	rc = tm_btree_walk(bs, limit, roots, n, &v, &err);
	tm_blocksrc_close(bs);
	return rc;
}

static void walk(struct bld *b, const uint64_t *roots, size_t n, int mode, struct rec *r)
{
	assert_int_equal(walk_limit(b, b->nr_blocks, roots, n, 8, mode, r), 0);
}

static uint64_t leaf_at(struct bld *b, uint64_t first, uint32_t nr)
{
	uint64_t blk = bld_alloc(b);
	build_leaf(b, blk, first, nr);
	return blk;
}

static uint64_t internal_at(struct bld *b, uint32_t nr, const uint64_t *keys, const uint64_t *kids)
{
	uint64_t blk = bld_alloc(b);
	bld_node64(b, blk, TM_NODE_INTERNAL, nr, keys, kids);
	return blk;
}

static const struct tm_damage *find_damage(const struct rec *r, size_t root, uint64_t lo, uint64_t hi)
{
	for (size_t i = 0; i < r->nd; i++)
		if (r->dmg[i].root_index == root && r->dmg[i].lo == lo && r->dmg[i].hi == hi)
			return &r->dmg[i];
	return NULL;
}

static void expect_damage(const struct rec *r, size_t root, uint64_t lo, uint64_t hi, uint64_t block,
			  int depth, const char *word)
{
	const struct tm_damage *d = find_damage(r, root, lo, hi);
	if (!d) {
		for (size_t i = 0; i < r->nd; i++)
			print_message("damage: root %zu [%llu, %llu) block %llu: %s\n", r->dmg[i].root_index,
				      (unsigned long long)r->dmg[i].lo, (unsigned long long)r->dmg[i].hi,
				      (unsigned long long)r->dmg[i].block, r->dmg[i].reason);
		fail_msg("no damage reported for root %zu [%llu, %llu)", root, (unsigned long long)lo,
			 (unsigned long long)hi);
	}
	assert_int_equal(d->block, block);
	if (depth >= 0)
		assert_int_equal(d->depth, depth);
	if (word)
		assert_contains(d->reason, word);
}

/* The leaves delivered, in order, are exactly blocks[0..n). */
static void expect_leaves(const struct rec *r, const uint64_t *blocks, size_t n)
{
	if (r->nl != n) {
		for (size_t i = 0; i < r->nl; i++)
			print_message("leaf %llu [%llu, %llu)\n", (unsigned long long)r->leaf[i].block,
				      (unsigned long long)r->leaf[i].lo, (unsigned long long)r->leaf[i].hi);
		fail_msg("%zu leaves delivered, expected %zu", r->nl, n);
	}
	for (size_t i = 0; i < n; i++)
		assert_int_equal(r->leaf[i].block, blocks[i]);
}

/* Same leaf blocks, in any order. */
static void expect_leaf_set(const struct rec *r, const uint64_t *blocks, size_t n)
{
	assert_int_equal(r->nl, n);
	for (size_t i = 0; i < n; i++) {
		size_t hits = 0;
		for (size_t k = 0; k < r->nl; k++)
			hits += r->leaf[k].block == blocks[i];
		if (hits != 1)
			fail_msg("leaf %llu delivered %zu times", (unsigned long long)blocks[i], hits);
	}
}

static void test_walk_multilevel(void **state)
{
	(void)state;
	struct bld b;
	bld_init(&b, 16, 1);
	/* Leaves allocated in descending key order, so block order and key
	 * order disagree. */
	uint64_t leaves[5], keys[5];
	for (int i = 4; i >= 0; i--) {
		keys[i] = 100u * (unsigned)i;
		leaves[i] = leaf_at(&b, keys[i], 10 + (unsigned)i);
	}
	uint64_t root = internal_at(&b, 5, keys, leaves);
	struct rec r = { 0 };
	walk(&b, &root, 1, 0, &r);
	assert_int_equal(r.nd, 0);
	expect_leaves(&r, leaves, 5);
	assert_int_equal(r.nodes, 6);
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(r.leaf[i].root, 0);
		assert_int_equal(r.leaf[i].lo, keys[i]);
		assert_int_equal(r.leaf[i].hi, i < 4 ? keys[i + 1] : OPEN);
		assert_int_equal(r.leaf[i].nr, 10 + i);
		assert_int_equal(r.leaf[i].first, keys[i]);
	}
	rec_free(&r);

	/* Unordered: the same leaves. */
	walk(&b, &root, 1, 1, &r);
	assert_int_equal(r.nd, 0);
	expect_leaf_set(&r, leaves, 5);
	rec_free(&r);

	/* A single leaf as root: range [0, open). */
	walk(&b, &leaves[2], 1, 0, &r);
	expect_leaves(&r, &leaves[2], 1);
	assert_int_equal(r.leaf[0].lo, 0);
	assert_int_equal(r.leaf[0].hi, OPEN);
	rec_free(&r);
	bld_free(&b);
}

static void test_walk_three_levels(void **state)
{
	(void)state;
	/* 1100 one-entry leaves: more than one read batch per level, and
	 * three levels (root -> 5 internal -> 1100 leaves). */
	enum { N = 1100 };
	struct bld b;
	bld_init(&b, N + 16, 1);
	uint64_t *keys = calloc(N, sizeof(*keys)), *vals = calloc(N, sizeof(*vals));
	assert_non_null(keys);
	assert_non_null(vals);
	for (size_t i = 0; i < N; i++) {
		keys[i] = i * 3 + 1;
		vals[i] = htole64(i);
	}
	uint64_t root = bld_tree(&b, 8, N, keys, vals, 1);
	for (int unordered = 0; unordered <= 1; unordered++) {
		struct rec r = { 0 };
		walk(&b, &root, 1, unordered, &r);
		assert_int_equal(r.nd, 0);
		assert_int_equal(r.nl, N);
		assert_int_equal(r.nodes, N + 5 + 1);
		assert_int_equal(r.nk, N);
		if (!unordered)
			for (size_t i = 0; i < N; i++)
				assert_int_equal(r.keys[i], keys[i]);
		rec_free(&r);
	}
	free(keys);
	free(vals);
	bld_free(&b);
}

/* root: keys 0, 100, 200, 300 -> leaves; child 1 replaced by bad. */
static uint64_t tree_with_bad_child(struct bld *b, uint64_t bad, uint64_t *good)
{
	uint64_t keys[4] = { 0, 100, 200, 300 }, kids[4];
	for (int i = 0; i < 4; i++)
		kids[i] = leaf_at(b, keys[i], 10);
	good[0] = kids[0];
	good[1] = kids[2];
	good[2] = kids[3];
	uint64_t root = b->next;
	kids[1] = bad == UINT64_MAX - 1 ? root : bad; /* UINT64_MAX-1: itself */
	return internal_at(b, 4, keys, kids);
}

static void check_bad_child(uint64_t bad, uint64_t expect_block, const char *word)
{
	struct bld b;
	bld_init(&b, 16, 1);
	uint64_t good[3];
	uint64_t root = tree_with_bad_child(&b, bad, good);
	if (expect_block == UINT64_MAX - 1)
		expect_block = root;
	for (int unordered = 0; unordered <= 1; unordered++) {
		struct rec r = { 0 };
		walk(&b, &root, 1, unordered, &r);
		assert_int_equal(r.nd, 1);
		expect_damage(&r, 0, 100, 200, expect_block, -1, word);
		if (unordered)
			expect_leaf_set(&r, good, 3);
		else
			expect_leaves(&r, good, 3);
		rec_free(&r);
	}
	bld_free(&b);
}

static void test_walk_child_self(void **state)
{
	(void)state;
	check_bad_child(UINT64_MAX - 1, UINT64_MAX - 1, "itself");
}

static void test_walk_child_superblock(void **state)
{
	(void)state;
	/* The damage names the parent, which points at block 0. */
	struct bld b;
	bld_init(&b, 16, 1);
	uint64_t good[3];
	uint64_t root = tree_with_bad_child(&b, 0, good);
	struct rec r = { 0 };
	walk(&b, &root, 1, 0, &r);
	assert_int_equal(r.nd, 1);
	expect_damage(&r, 0, 100, 200, 0, 1, "superblock");
	expect_leaves(&r, good, 3);
	rec_free(&r);
	bld_free(&b);
}

static void test_walk_child_beyond_end(void **state)
{
	(void)state;
	check_bad_child(16, 16, "beyond the end");
	check_bad_child(1000000, 1000000, "beyond the end");
	check_bad_child(UINT64_MAX, UINT64_MAX, "beyond the end");

	/* Inside the file but beyond the limit the caller gives. */
	struct bld b;
	bld_init(&b, 32, 1);
	uint64_t good[3];
	uint64_t root = tree_with_bad_child(&b, 20, good);
	build_leaf(&b, 20, 100, 10); /* a valid leaf, but outside the metadata */
	struct rec r = { 0 };
	assert_int_equal(walk_limit(&b, 20, &root, 1, 8, 0, &r), 0);
	assert_int_equal(r.nd, 1);
	expect_damage(&r, 0, 100, 200, 20, 1, "beyond the end");
	expect_leaves(&r, good, 3);
	rec_free(&r);
	bld_free(&b);
}

static void test_walk_child_out_of_range(void **state)
{
	(void)state;
	struct bld b;
	bld_init(&b, 64, 1);
	uint64_t lowleaf = leaf_at(&b, 95, 10);   /* 95..104 in [100, 200) */
	uint64_t highleaf = leaf_at(&b, 150, 60); /* 150..209 in [100, 200) */
	uint64_t okleaf = leaf_at(&b, 100, 100);  /* 100..199: exactly fits */
	uint64_t good[3];
	uint64_t root1 = tree_with_bad_child(&b, lowleaf, good);
	uint64_t good2[3];
	uint64_t root2 = tree_with_bad_child(&b, highleaf, good2);
	uint64_t good3[3];
	uint64_t root3 = tree_with_bad_child(&b, okleaf, good3);

	struct rec r = { 0 };
	walk(&b, &root1, 1, 0, &r);
	assert_int_equal(r.nd, 1);
	expect_damage(&r, 0, 100, 200, lowleaf, 1, "outside the range");
	expect_leaves(&r, good, 3);
	rec_free(&r);

	walk(&b, &root2, 1, 0, &r);
	assert_int_equal(r.nd, 1);
	expect_damage(&r, 0, 100, 200, highleaf, 1, "outside the range");
	expect_leaves(&r, good2, 3);
	rec_free(&r);

	walk(&b, &root3, 1, 0, &r);
	assert_int_equal(r.nd, 0);
	uint64_t all[4] = { good3[0], okleaf, good3[1], good3[2] };
	expect_leaves(&r, all, 4);
	rec_free(&r);

	/* The last child's range is open above, but the first key still
	 * bounds it from below: a leaf under key 300 holding key 299. */
	uint64_t under = leaf_at(&b, 299, 2);
	uint64_t keys[2] = { 0, 300 }, kids[2] = { good[0], under };
	uint64_t root4 = internal_at(&b, 2, keys, kids);
	walk(&b, &root4, 1, 0, &r);
	assert_int_equal(r.nd, 1);
	expect_damage(&r, 0, 300, OPEN, under, 1, "outside the range");
	expect_leaves(&r, good, 1);
	rec_free(&r);
	bld_free(&b);
}

static void test_walk_cycle(void **state)
{
	(void)state;
	struct bld b;
	bld_init(&b, 16, 1);
	/* A -> (B, X), B -> A, X -> L: A comes back under B with the range
	 * [0, 100), but its keys reach 100: out of range. */
	uint64_t L = leaf_at(&b, 100, 10);
	uint64_t A = b.next, B = b.next + 1, X = b.next + 2;
	uint64_t ka[2] = { 0, 100 }, ca[2] = { B, X };
	assert_int_equal(internal_at(&b, 2, ka, ca), A);
	uint64_t kb[1] = { 0 }, cb[1] = { A };
	assert_int_equal(internal_at(&b, 1, kb, cb), B);
	uint64_t kx[1] = { 100 }, cx[1] = { L };
	assert_int_equal(internal_at(&b, 1, kx, cx), X);
	for (int unordered = 0; unordered <= 1; unordered++) {
		struct rec r = { 0 };
		walk(&b, &A, 1, unordered, &r);
		assert_int_equal(r.nd, 1);
		expect_damage(&r, 0, 0, 100, A, 2, "outside the range");
		expect_leaves(&r, &L, 1);
		assert_int_equal(r.leaf[0].lo, 100);
		assert_int_equal(r.leaf[0].hi, OPEN);
		rec_free(&r);
	}

	/* C -> D -> C with the same key 0 everywhere: the key ranges all
	 * agree, so only the depth limit stops it. */
	uint64_t C = b.next, D = b.next + 1;
	uint64_t k0[1] = { 0 }, cc[1] = { D }, cd[1] = { C };
	assert_int_equal(internal_at(&b, 1, k0, cc), C);
	assert_int_equal(internal_at(&b, 1, k0, cd), D);
	struct rec r = { 0 };
	walk(&b, &C, 1, 0, &r);
	assert_int_equal(r.nl, 0);
	assert_int_equal(r.nd, 1);
	assert_true(r.nodes <= TM_BTREE_MAX_DEPTH);
	assert_int_equal(r.dmg[0].lo, 0);
	assert_int_equal(r.dmg[0].hi, OPEN);
	assert_true(r.dmg[0].depth < TM_BTREE_MAX_DEPTH);
	rec_free(&r);

	/* The same, with a second, valid root walked alongside. */
	uint64_t roots[2] = { C, A };
	walk(&b, roots, 2, 0, &r);
	assert_int_equal(r.nl, 1);
	assert_int_equal(r.leaf[0].root, 1);
	assert_int_equal(r.leaf[0].block, L);
	assert_int_equal(r.nd, 2);
	assert_non_null(find_damage(&r, 0, 0, OPEN));
	expect_damage(&r, 1, 0, 100, A, 2, "outside the range");
	rec_free(&r);
	bld_free(&b);
}

static void test_walk_shared_child_bomb(void **state)
{
	(void)state;
	struct bld b;
	bld_init(&b, 8, 1);
	uint64_t L = leaf_at(&b, 0, 10);
	uint64_t keys[252], kids[252];
	for (int i = 0; i < 252; i++) {
		keys[i] = 10u * (unsigned)i;
		kids[i] = L;
	}
	uint64_t root = internal_at(&b, 252, keys, kids);
	for (int unordered = 0; unordered <= 1; unordered++) {
		struct rec r = { 0 };
		clock_t t0 = clock();
		walk(&b, &root, 1, unordered, &r);
		double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
		assert_true(secs < 2.0);
		expect_leaves(&r, &L, 1);
		assert_int_equal(r.leaf[0].lo, 0);
		assert_int_equal(r.leaf[0].hi, 10);
		assert_int_equal(r.nd, 251);
		for (unsigned i = 1; i < 252; i++)
			expect_damage(&r, 0, 10u * i, i < 251 ? 10u * (i + 1) : OPEN, L, 1, "outside the range");
		rec_free(&r);
	}

	/* Two levels of it: 252 internal copies, each pointing 252 times at
	 * the leaf. Only [0, 10) is valid at each level. */
	uint64_t mid = root;
	for (int i = 0; i < 252; i++) {
		keys[i] = 10u * (unsigned)i;
		kids[i] = mid;
	}
	uint64_t top = internal_at(&b, 252, keys, kids);
	struct rec r = { 0 };
	walk(&b, &top, 1, 0, &r);
	/* mid is out of range under every child but the first (its keys
	 * reach 2510); under the first it is also out of range ([0, 10)). */
	assert_int_equal(r.nl, 0);
	assert_int_equal(r.nd, 252);
	expect_damage(&r, 0, 0, 10, mid, 1, "outside the range");
	rec_free(&r);
	bld_free(&b);
}

static void test_walk_unbalanced(void **state)
{
	(void)state;
	struct bld b;
	bld_init(&b, 16, 1);
	/* root -> [L0 (leaf, keys 0..9), I (internal) -> L1 (keys 100..109)] */
	uint64_t L0 = leaf_at(&b, 0, 10);
	uint64_t L1 = leaf_at(&b, 100, 10);
	uint64_t k1[1] = { 100 }, c1[1] = { L1 };
	uint64_t I = internal_at(&b, 1, k1, c1);
	uint64_t k[2] = { 0, 100 }, c[2] = { L0, I };
	uint64_t root = internal_at(&b, 2, k, c);
	struct rec r = { 0 };
	walk(&b, &root, 1, 0, &r);
	/* L0 is seen first at depth 1: the deeper branch is the damage. */
	expect_leaves(&r, &L0, 1);
	assert_int_equal(r.nd, 1);
	expect_damage(&r, 0, 100, OPEN, I, 1, "unbalanced");
	rec_free(&r);

	/* Mirror image: the deep branch first. Whichever comes first sets
	 * the leaf depth; the other branch is reported, not delivered. */
	uint64_t L2 = leaf_at(&b, 0, 10);
	uint64_t k2[1] = { 0 }, c2[1] = { L2 };
	uint64_t I2 = internal_at(&b, 1, k2, c2);
	uint64_t L3 = leaf_at(&b, 100, 10);
	uint64_t k3[2] = { 0, 100 }, c3[2] = { I2, L3 };
	uint64_t root2 = internal_at(&b, 2, k3, c3);
	walk(&b, &root2, 1, 0, &r);
	assert_int_equal(r.nl, 1);
	assert_int_equal(r.nd, 1);
	assert_contains(r.dmg[0].reason, "unbalanced");
	if (r.leaf[0].block == L3)
		expect_damage(&r, 0, 0, 100, L2, 2, "unbalanced");
	else
		assert_int_equal(r.leaf[0].block, L2);
	rec_free(&r);

	/* Depth is per root: a leaf root and a two-level root together. */
	uint64_t roots[2] = { L0, root2 };
	walk(&b, roots, 2, 0, &r);
	assert_int_equal(r.nd, 1);
	size_t from0 = 0;
	for (size_t i = 0; i < r.nl; i++)
		from0 += r.leaf[i].root == 0;
	assert_int_equal(from0, 1);
	rec_free(&r);
	bld_free(&b);
}

static void test_walk_bad_nodes_in_tree(void **state)
{
	(void)state;
	struct bld b;
	bld_init(&b, 16, 1);
	uint64_t good[3];
	uint64_t root = tree_with_bad_child(&b, 9, good);
	/* Block 9: a node with a bad checksum. */
	build_leaf(&b, 9, 100, 10);
	bld_block(&b, 9)[100] ^= 1;
	struct rec r = { 0 };
	walk(&b, &root, 1, 0, &r);
	expect_damage(&r, 0, 100, 200, 9, 1, "checksum");
	expect_leaves(&r, good, 3);
	rec_free(&r);
	/* A details leaf in a mapping tree: wrong value size. */
	uint64_t dk[1] = { 150 };
	struct tm_disk_device_details d = { 0 };
	bld_node(&b, 9, TM_NODE_LEAF, 24, 1, dk, &d);
	walk(&b, &root, 1, 0, &r);
	expect_damage(&r, 0, 100, 200, 9, 1, "value size");
	expect_leaves(&r, good, 3);
	rec_free(&r);
	/* A zeroed block. */
	memset(bld_block(&b, 9), 0, TM_BLOCK_SIZE);
	walk(&b, &root, 1, 0, &r);
	expect_damage(&r, 0, 100, 200, 9, 1, NULL);
	expect_leaves(&r, good, 3);
	rec_free(&r);
	/* A bad root: the whole key space of that root is lost. */
	uint64_t roots[3] = { 9, root, 15 };
	walk(&b, roots, 3, 0, &r);
	expect_damage(&r, 0, 0, OPEN, 9, 0, NULL);
	expect_damage(&r, 1, 100, 200, 9, 1, NULL);
	expect_damage(&r, 2, 0, OPEN, 15, 0, NULL);
	assert_int_equal(r.nd, 3);
	expect_leaves(&r, good, 3);
	rec_free(&r);
	bld_free(&b);
}

static void test_walk_multiple_roots(void **state)
{
	(void)state;
	struct bld b;
	bld_init(&b, 64, 1);
	/* Three trees of different heights; the second root given twice. */
	uint64_t k1[30], v1[30];
	for (int i = 0; i < 30; i++) {
		k1[i] = 1000u + (unsigned)i;
		v1[i] = htole64(7);
	}
	uint64_t t1 = bld_tree(&b, 8, 30, k1, v1, 4);   /* 8 leaves */
	uint64_t t2 = leaf_at(&b, 5, 3);                /* a lone leaf */
	uint64_t t3 = bld_tree(&b, 8, 10, k1, v1, 5);   /* 2 leaves */
	uint64_t roots[4] = { t1, t2, t3, t2 };
	for (int mode = 0; mode <= 2; mode++) {
		int unordered = mode == 1;
		struct rec r = { 0 };
		walk(&b, roots, 4, mode, &r);
		assert_int_equal(r.nd, 0);
		size_t per[4] = { 0 };
		uint64_t last[4] = { 0 };
		int seen[4] = { 0 };
		for (size_t i = 0; i < r.nl; i++) {
			size_t ri = r.leaf[i].root;
			assert_true(ri < 4);
			per[ri]++;
			/* Ascending within each root, unless unordered. */
			if (!unordered && seen[ri])
				assert_true(r.leaf[i].first > last[ri]);
			last[ri] = r.leaf[i].last;
			seen[ri] = 1;
		}
		assert_int_equal(per[0], 8);
		assert_int_equal(per[1], 1);
		assert_int_equal(per[2], 2);
		assert_int_equal(per[3], 1);
		rec_free(&r);
	}
	/* No roots at all. */
	struct rec r = { 0 };
	walk(&b, roots, 0, 0, &r);
	assert_int_equal(r.nl, 0);
	assert_int_equal(r.nd, 0);
	rec_free(&r);
	bld_free(&b);
}

/* Each root's leaves come together, in ascending key order, and (aligned)
 * the roots one after the other in root order. */
static void check_grouped(const struct rec *r, int root_order)
{
	for (size_t i = 1; i < r->nl; i++) {
		const struct leafrec *a = &r->leaf[i - 1], *b = &r->leaf[i];
		if (a->root == b->root) {
			if (a->nr && b->nr)
				assert_true(b->first > a->last);
			continue;
		}
		if (root_order)
			assert_true(b->root > a->root);
		for (size_t k = 0; k < i; k++)
			if (r->leaf[k].root == b->root)
				fail_msg("root %zu's leaves are not together (leaf %zu)", b->root, i);
	}
}

static void test_walk_aligned(void **state)
{
	(void)state;
	struct bld b;
	bld_init(&b, 2048, 1);
	/* Trees of depth 2, 0, 1, 2 and 1: aligned walks deliver every leaf at
	 * the last level, in root order. */
	enum { N0 = 600, N2 = 40, N3 = 300, N4 = 5 };
	static uint64_t k[N0], v[N0];
	for (size_t i = 0; i < N0; i++) {
		k[i] = 10 * i;
		v[i] = htole64(i);
	}
	uint64_t roots[5];
	roots[0] = bld_tree(&b, 8, N0, k, v, 2);  /* 300 leaves: depth 2 */
	roots[1] = leaf_at(&b, 7, 3);             /* depth 0 */
	roots[2] = bld_tree(&b, 8, N2, k, v, 10); /* 4 leaves: depth 1 */
	roots[3] = bld_tree(&b, 8, N3, k, v, 1);  /* 300 leaves: depth 2 */
	roots[4] = bld_tree(&b, 8, N4, k, v, 1);  /* 5 leaves: depth 1 */
	size_t want_leaves = 300 + 1 + 4 + 300 + 5;

	struct rec plain = { 0 }, al = { 0 }, un = { 0 };
	walk(&b, roots, 5, 0, &plain);
	walk(&b, roots, 5, 2, &al);
	walk(&b, roots, 5, 1, &un);
	assert_int_equal(plain.nd, 0);
	assert_int_equal(al.nd, 0);
	assert_int_equal(un.nd, 0);
	assert_int_equal(plain.nl, want_leaves);
	assert_int_equal(al.nl, want_leaves);
	assert_int_equal(un.nl, want_leaves);
	assert_int_equal(al.nodes, plain.nodes);
	assert_int_equal(un.nodes, plain.nodes);
	/* Depths are within each tree, whatever level the walk read them at. */
	for (int d = 0; d < TM_BTREE_MAX_DEPTH; d++) {
		assert_int_equal(al.nodes_at[d], plain.nodes_at[d]);
		assert_int_equal(un.nodes_at[d], plain.nodes_at[d]);
	}
	assert_int_equal(plain.nodes_at[0], 5);
	check_grouped(&plain, 0);
	check_grouped(&al, 1);
	assert_int_equal(al.leaf[0].root, 0);
	assert_int_equal(al.leaf[al.nl - 1].root, 4);
	/* Same leaves with the same key ranges. */
	for (size_t i = 0; i < al.nl; i++) {
		size_t hits = 0;
		for (size_t j = 0; j < plain.nl; j++)
			if (plain.leaf[j].root == al.leaf[i].root && plain.leaf[j].block == al.leaf[i].block &&
			    plain.leaf[j].lo == al.leaf[i].lo && plain.leaf[j].hi == al.leaf[i].hi)
				hits++;
		assert_int_equal(hits, 1);
	}
	rec_free(&plain);
	rec_free(&al);
	rec_free(&un);

	/* Damage does not upset it: root 2's leftmost leaf is bad (the depth
	 * probe stops there), root 4 is beyond the end, root 1 given twice. */
	struct tm_node n;
	char why[200];
	assert_int_equal(tm_node_check(bld_block(&b, roots[2]), roots[2], 8, &n, why, sizeof(why)), 0);
	uint64_t bad = tm_node_value64(&n, 0), bad_hi = tm_node_key(&n, 1);
	bld_block(&b, bad)[40] ^= 1;
	uint64_t roots2[6] = { roots[0], roots[1], roots[2], roots[3], 5000, roots[1] };
	walk(&b, roots2, 6, 2, &al);
	assert_int_equal(al.nd, 2);
	expect_damage(&al, 2, 0, bad_hi, bad, 1, "checksum");
	expect_damage(&al, 4, 0, OPEN, 5000, 0, "beyond the end");
	assert_int_equal(al.nl, 300 + 1 + 3 + 300 + 1);
	check_grouped(&al, 1);
	rec_free(&al);

	/* The probe itself meets a cycle (C -> D -> C): it must end too. */
	uint64_t C = b.next, D = b.next + 1;
	uint64_t k0[1] = { 0 }, cc[1] = { D }, cd[1] = { C };
	assert_int_equal(internal_at(&b, 1, k0, cc), C);
	assert_int_equal(internal_at(&b, 1, k0, cd), D);
	uint64_t roots3[3] = { roots[1], C, roots[2] };
	walk(&b, roots3, 3, 2, &al);
	assert_int_equal(al.nl, 1 + 3);
	assert_non_null(find_damage(&al, 1, 0, OPEN));
	check_grouped(&al, 1);
	rec_free(&al);
	bld_free(&b);
}

static void test_walk_visitor_stop(void **state)
{
	(void)state;
	struct bld b;
	bld_init(&b, 16, 1);
	uint64_t keys[5], kids[5];
	for (int i = 0; i < 5; i++) {
		keys[i] = 100u * (unsigned)i;
		kids[i] = leaf_at(&b, keys[i], 3);
	}
	uint64_t root = internal_at(&b, 5, keys, kids);
	struct rec r = { .stop_after = 2 };
	assert_int_equal(walk_limit(&b, b.nr_blocks, &root, 1, 8, 0, &r), -42);
	assert_int_equal(r.nl, 2);
	rec_free(&r);
	bld_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_max_entries),
		cmocka_unit_test(test_node_valid),
		cmocka_unit_test(test_node_bad),
		cmocka_unit_test(test_walk_multilevel),
		cmocka_unit_test(test_walk_three_levels),
		cmocka_unit_test(test_walk_child_self),
		cmocka_unit_test(test_walk_child_superblock),
		cmocka_unit_test(test_walk_child_beyond_end),
		cmocka_unit_test(test_walk_child_out_of_range),
		cmocka_unit_test(test_walk_cycle),
		cmocka_unit_test(test_walk_shared_child_bomb),
		cmocka_unit_test(test_walk_unbalanced),
		cmocka_unit_test(test_walk_bad_nodes_in_tree),
		cmocka_unit_test(test_walk_multiple_roots),
		cmocka_unit_test(test_walk_aligned),
		cmocka_unit_test(test_walk_visitor_stop),
	};
	if (!unit_tmpdir_usable())
		return UNIT_SKIP;
	return cmocka_run_group_tests_name("btree", tests, NULL, unit_tmp_cleanup);
}
