/* Space maps: bitmap entry decoding, and loading the data and metadata
 * space maps with their overflow trees and damage. */
#include "unit.h"

#include <stdlib.h>
#include <unistd.h>

#include "builder.h"
#include "thinmeta/crc32c.h"
#include "thinmeta/spacemap.h"

/* ---- tm_bitmap_entry ---- */

static void test_bitmap_entry_doc(void **state)
{
	(void)state;
	unsigned char blk[TM_BLOCK_SIZE] = { 0 };
	/* The doc's word: blocks 0-9 count 2, 10-19 count 1, 20-31 count 2. */
	tm_put_le64(blk + 16, 0x555555aaaaa55555ull);
	for (uint32_t i = 0; i < 32; i++) {
		unsigned want = i < 10 ? 2 : i < 20 ? 1 : 2;
		if (tm_bitmap_entry(blk, i) != want)
			fail_msg("entry %u: %u, expected %u", i, tm_bitmap_entry(blk, i), want);
	}
	/* Word 1 all ones: count 3 ("see the overflow tree"). */
	tm_put_le64(blk + 24, ~0ull);
	for (uint32_t i = 32; i < 64; i++)
		assert_int_equal(tm_bitmap_entry(blk, i), 3);
	assert_int_equal(tm_bitmap_entry(blk, 64), 0);
	/* The last word (509): entry 16319 uses bits 62 (high) and 63 (low). */
	tm_put_le64(blk + 16 + 8 * 509, 1ull << 62);
	assert_int_equal(tm_bitmap_entry(blk, 16319), 2);
	assert_int_equal(tm_bitmap_entry(blk, 16318), 0);
	tm_put_le64(blk + 16 + 8 * 509, 1ull << 63 | 1ull << 61);
	assert_int_equal(tm_bitmap_entry(blk, 16319), 1);
	assert_int_equal(tm_bitmap_entry(blk, 16318), 1);
	/* Little-endian: byte 16 holds entries 0-3. */
	memset(blk, 0, sizeof(blk));
	blk[16] = 0x01; /* bit 0 = high bit of entry 0 */
	assert_int_equal(tm_bitmap_entry(blk, 0), 2);
	blk[16] = 0x02;
	assert_int_equal(tm_bitmap_entry(blk, 0), 1);
	blk[16] = 0x40; /* bit 6 = high bit of entry 3 */
	assert_int_equal(tm_bitmap_entry(blk, 3), 2);
	assert_int_equal(tm_bitmap_entry(blk, 0), 0);
	blk[23] = 0x80; /* bit 63 of word 0: low bit of entry 31 */
	assert_int_equal(tm_bitmap_entry(blk, 31), 1);
}

static void test_bitmap_entry_roundtrip(void **state)
{
	(void)state;
	/* The builder's writer (from the doc's bit order) and the reader agree. */
	struct bld b;
	bld_init(&b, 4, 1);
	uint64_t rs = 99;
	unsigned *want = calloc(TM_ENTRIES_PER_BITMAP, sizeof(*want));
	assert_non_null(want);
	for (uint32_t i = 0; i < TM_ENTRIES_PER_BITMAP; i++) {
		want[i] = (unsigned)(unit_rand(&rs) & 3);
		bld_bitmap_set(&b, 3, i, want[i]);
	}
	for (uint32_t i = 0; i < TM_ENTRIES_PER_BITMAP; i++)
		assert_int_equal(tm_bitmap_entry(bld_block(&b, 3), i), want[i]);
	assert_true(tm_block_csum_ok(bld_block(&b, 3), TM_SALT_BITMAP));
	free(want);
	bld_free(&b);
}

/* ---- tm_sm_read ---- */

struct dmg_log {
	char tree[64][64];
	struct tm_damage d[64];
	size_t n;
};

static void log_damage(void *ctx, const char *tree, const struct tm_damage *d)
{
	struct dmg_log *l = ctx;
	if (l->n < 64) {
		snprintf(l->tree[l->n], sizeof(l->tree[0]), "%s", tree);
		l->d[l->n] = *d;
	}
	l->n++;
}

static void dump_log(const struct dmg_log *l)
{
	for (size_t i = 0; i < l->n && i < 64; i++)
		print_message("damage %s [%llu, %llu) block %llu: %s\n", l->tree[i], (unsigned long long)l->d[i].lo,
			      (unsigned long long)l->d[i].hi, (unsigned long long)l->d[i].block, l->d[i].reason);
}

static const struct tm_damage *find(const struct dmg_log *l, const char *tree, uint64_t lo, uint64_t hi)
{
	for (size_t i = 0; i < l->n && i < 64; i++)
		if (strcmp(l->tree[i], tree) == 0 && l->d[i].lo == lo && l->d[i].hi == hi)
			return &l->d[i];
	return NULL;
}

static void expect(const struct dmg_log *l, const char *tree, uint64_t lo, uint64_t hi, uint64_t block,
		   const char *word)
{
	const struct tm_damage *d = find(l, tree, lo, hi);
	if (!d) {
		dump_log(l);
		fail_msg("no damage in %s for [%llu, %llu)", tree, (unsigned long long)lo, (unsigned long long)hi);
	}
	if (block != UINT64_MAX)
		assert_int_equal(d->block, block);
	if (word)
		assert_contains(d->reason, word);
}

/* Loads space map which of the image b; returns the tm_sm_read code. */
static int load(struct bld *b, int which, struct tm_space_map *sm, struct dmg_log *log)
{
	char path[4096];
	bld_write_tmp(b, path);
	struct tm_pool *p;
	struct dmr_err err;
	int r = tm_pool_open(&p, path, 0, &err);
	unlink(path);
	if (r)
		fail_msg("tm_pool_open: %s", err.msg);
	memset(log, 0, sizeof(*log));
	r = tm_sm_read(p, which, sm, log_damage, log, &err);
	tm_pool_close(p);
	return r;
}

static void expect_counts(const struct tm_space_map *sm, const uint32_t *want, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		uint32_t got = tm_sm_count(sm, i);
		if (got != want[i])
			fail_msg("block %llu: count %u, expected %u", (unsigned long long)i, got, want[i]);
	}
}

static void test_sm_data_basic(void **state)
{
	(void)state;
	struct bld b;
	bld_standard(&b);
	struct tm_space_map sm;
	struct dmg_log log;
	assert_int_equal(load(&b, 0, &sm, &log), 0);
	if (log.n)
		dump_log(&log);
	assert_int_equal(log.n, 0);
	assert_int_equal(sm.nr_blocks, 1024);
	assert_int_equal(sm.nr_bitmaps, 1);
	assert_int_equal(sm.nr_overflow, 0);
	for (uint64_t i = 0; i < 1024; i++) {
		uint32_t want = (i >= 10 && i <= 12) || i == 20;
		assert_int_equal(tm_sm_count(&sm, i), want);
	}
	assert_int_equal(tm_sm_count(&sm, 1024), 0);
	assert_int_equal(tm_sm_count(&sm, UINT64_MAX), 0);
	tm_sm_free(&sm);
	assert_null(sm.counts);
	bld_free(&b);
}

static void test_sm_metadata_basic(void **state)
{
	(void)state;
	struct bld b;
	bld_standard(&b);
	struct tm_space_map sm;
	struct dmg_log log;
	assert_int_equal(load(&b, 1, &sm, &log), 0);
	if (log.n)
		dump_log(&log);
	assert_int_equal(log.n, 0);
	assert_int_equal(sm.nr_blocks, 32);
	assert_int_equal(sm.nr_bitmaps, 1);
	expect_counts(&sm, b.meta_count, 32);
	assert_int_equal(tm_sm_count(&sm, 0), 1);
	assert_int_equal(tm_sm_count(&sm, b.next), 0);
	tm_sm_free(&sm);
	bld_free(&b);
}

/* 40000 data blocks (3 bitmaps, the last partial), 64 metadata blocks. */
static void build_big(struct bld *b, int with_overflow)
{
	bld_init(b, 64, 40000);
	static const struct bld_map m1[] = { { 0, 100, 0 }, { 1, 101, 0 }, { 2, 20000, 0 }, { 3, 35000, 0 },
					     { 4, 39999, 0 }, { 5, 16319, 0 }, { 6, 16320, 0 } };
	static const struct bld_map m2[] = { { 0, 101, 0 }, { 1, 32639, 0 }, { 2, 32640, 0 } };
	bld_device(b, 1, m1, 7, 0, 0);
	bld_device(b, 2, m2, 3, 0, 0);
	if (with_overflow) {
		b->data_count[30] = 3;
		b->data_count[31] = 7;
		b->data_count[16325] = 100000;
		b->meta_count[b->data_bitmap[1]] = 5;
	}
	bld_finish(b);
}

static void test_sm_multi_bitmap(void **state)
{
	(void)state;
	struct bld b;
	build_big(&b, 0);
	struct tm_space_map sm;
	struct dmg_log log;
	assert_int_equal(load(&b, 0, &sm, &log), 0);
	if (log.n)
		dump_log(&log);
	assert_int_equal(log.n, 0);
	assert_int_equal(sm.nr_blocks, 40000);
	assert_int_equal(sm.nr_bitmaps, 3);
	expect_counts(&sm, b.data_count, 40000);
	assert_int_equal(tm_sm_count(&sm, 101), 2);
	assert_int_equal(tm_sm_count(&sm, 16319), 1);
	assert_int_equal(tm_sm_count(&sm, 16320), 1);
	assert_int_equal(tm_sm_count(&sm, 39999), 1);
	assert_int_equal(tm_sm_count(&sm, 40000), 0);
	tm_sm_free(&sm);
	bld_free(&b);
}

static void test_sm_overflow(void **state)
{
	(void)state;
	struct bld b;
	build_big(&b, 1);
	struct tm_space_map sm;
	struct dmg_log log;
	assert_int_equal(load(&b, 0, &sm, &log), 0);
	if (log.n)
		dump_log(&log);
	assert_int_equal(log.n, 0);
	assert_int_equal(sm.nr_overflow, 3);
	assert_int_equal(tm_sm_count(&sm, 30), 3);
	assert_int_equal(tm_sm_count(&sm, 31), 7);
	assert_int_equal(tm_sm_count(&sm, 16325), 100000);
	assert_int_equal(tm_sm_count(&sm, 29), 0);
	assert_int_equal(tm_sm_count(&sm, 32), 0);
	expect_counts(&sm, b.data_count, 40000);
	tm_sm_free(&sm);

	assert_int_equal(load(&b, 1, &sm, &log), 0);
	if (log.n)
		dump_log(&log);
	assert_int_equal(log.n, 0);
	assert_int_equal(sm.nr_overflow, 1);
	assert_int_equal(tm_sm_count(&sm, b.data_bitmap[1]), 5);
	expect_counts(&sm, b.meta_count, 64);
	tm_sm_free(&sm);
	bld_free(&b);
}

static void test_sm_overflow_damage(void **state)
{
	(void)state;
	struct bld b;
	build_big(&b, 1);
	struct tm_space_map sm;
	struct dmg_log log;

	/* A bitmap entry of 3 with no overflow count: block 40. */
	bld_bitmap_set(&b, b.data_bitmap[0], 40, 3);
	assert_int_equal(load(&b, 0, &sm, &log), 0);
	assert_int_equal(log.n, 1);
	expect(&log, "data space map", 40, 41, UINT64_MAX, "overflow");
	assert_int_equal(tm_sm_count(&sm, 40), 3); /* at least 3 */
	assert_int_equal(tm_sm_count(&sm, 31), 7);
	tm_sm_free(&sm);
	bld_bitmap_set(&b, b.data_bitmap[0], 40, 0);

	/* An overflow count for a block whose bitmap entry is 1. */
	bld_bitmap_set(&b, b.data_bitmap[0], 31, 1);
	assert_int_equal(load(&b, 0, &sm, &log), 0);
	assert_int_equal(log.n, 1);
	expect(&log, "data ref count tree", 31, 32, b.data_ref_root, "not 3");
	assert_int_equal(tm_sm_count(&sm, 31), 1);
	assert_int_equal(sm.nr_overflow, 2);
	tm_sm_free(&sm);
	bld_bitmap_set(&b, b.data_bitmap[0], 31, 3);

	/* Overflow values below 3 and keys beyond the map. The overflow tree
	 * is one leaf: keys 30, 31, 16325. */
	unsigned char *leaf = bld_block(&b, b.data_ref_root);
	size_t vals = 32 + 8 * 336;
	assert_int_equal(tm_le64(leaf + 32 + 8), 31);
	tm_put_le32(leaf + vals + 4, 2);
	tm_put_le64(leaf + 32 + 16, 50000);
	bld_reseal_node(&b, b.data_ref_root);
	assert_int_equal(load(&b, 0, &sm, &log), 0);
	expect(&log, "data ref count tree", 31, 32, b.data_ref_root, "below 3");
	expect(&log, "data ref count tree", 50000, 50001, b.data_ref_root, "beyond");
	/* ... which leaves 31 and 16325 without an overflow count. */
	expect(&log, "data space map", 31, 32, UINT64_MAX, "overflow");
	expect(&log, "data space map", 16325, 16326, UINT64_MAX, "overflow");
	assert_int_equal(log.n, 4);
	assert_int_equal(tm_sm_count(&sm, 30), 3);
	assert_int_equal(tm_sm_count(&sm, 31), 3);
	assert_int_equal(tm_sm_count(&sm, 16325), 3);
	tm_sm_free(&sm);

	/* A damaged overflow tree root: the 3s it would explain are covered by
	 * that one report, not reported again one by one. */
	leaf[100] ^= 1;
	assert_int_equal(load(&b, 0, &sm, &log), 0);
	expect(&log, "data ref count tree", 0, UINT64_MAX, b.data_ref_root, "checksum");
	assert_int_equal(log.n, 1);
	tm_sm_free(&sm);
	bld_free(&b);
}

static void test_sm_bad_bitmap(void **state)
{
	(void)state;
	struct bld b;
	build_big(&b, 0);
	struct tm_space_map sm;
	struct dmg_log log;

	/* Bitmap 1 (blocks 16320..32639) has a bad checksum. */
	bld_block(&b, b.data_bitmap[1])[1000] ^= 0x10;
	assert_int_equal(load(&b, 0, &sm, &log), 0);
	assert_int_equal(log.n, 1);
	expect(&log, "data space map", 16320, 32640, b.data_bitmap[1], "checksum");
	for (uint64_t i = 0; i < 40000; i++) {
		uint32_t want = i >= 16320 && i < 32640 ? 0 : b.data_count[i];
		if (tm_sm_count(&sm, i) != want)
			fail_msg("block %llu: %u, expected %u", (unsigned long long)i, tm_sm_count(&sm, i), want);
	}
	tm_sm_free(&sm);
	bld_block(&b, b.data_bitmap[1])[1000] ^= 0x10;

	/* The last, partial bitmap: the range ends at nr_blocks. */
	bld_block(&b, b.data_bitmap[2])[20] ^= 1;
	assert_int_equal(load(&b, 0, &sm, &log), 0);
	assert_int_equal(log.n, 1);
	expect(&log, "data space map", 32640, 40000, b.data_bitmap[2], "checksum");
	assert_int_equal(tm_sm_count(&sm, 35000), 0);
	assert_int_equal(tm_sm_count(&sm, 100), 1);
	assert_int_equal(tm_sm_count(&sm, 20000), 1);
	tm_sm_free(&sm);
	bld_block(&b, b.data_bitmap[2])[20] ^= 1;

	/* A bitmap that says it is another block. */
	tm_put_le64(bld_block(&b, b.data_bitmap[0]) + 8, 63);
	bld_reseal(&b, b.data_bitmap[0], TM_SALT_BITMAP);
	assert_int_equal(load(&b, 0, &sm, &log), 0);
	assert_int_equal(log.n, 1);
	expect(&log, "data space map", 0, 16320, b.data_bitmap[0], "63");
	assert_int_equal(tm_sm_count(&sm, 100), 0);
	assert_int_equal(tm_sm_count(&sm, 20000), 1);
	tm_sm_free(&sm);
	tm_put_le64(bld_block(&b, b.data_bitmap[0]) + 8, b.data_bitmap[0]);
	bld_reseal(&b, b.data_bitmap[0], TM_SALT_BITMAP);

	/* A node checksum on a bitmap (wrong salt). */
	bld_reseal(&b, b.data_bitmap[0], TM_SALT_BTREE_NODE);
	assert_int_equal(load(&b, 0, &sm, &log), 0);
	assert_int_equal(log.n, 1);
	expect(&log, "data space map", 0, 16320, b.data_bitmap[0], "checksum");
	tm_sm_free(&sm);
	bld_reseal(&b, b.data_bitmap[0], TM_SALT_BITMAP);

	/* The metadata bitmap. */
	bld_block(&b, b.meta_bitmap[0])[4095] ^= 1;
	assert_int_equal(load(&b, 1, &sm, &log), 0);
	assert_int_equal(log.n, 1);
	expect(&log, "metadata space map", 0, 64, b.meta_bitmap[0], "checksum");
	for (uint64_t i = 0; i < 64; i++)
		assert_int_equal(tm_sm_count(&sm, i), 0);
	tm_sm_free(&sm);
	bld_free(&b);
}

/* Rewrites the data sm index leaf with only the entries whose bitmap
 * index is in keep (a bit mask), and optionally one extra entry. */
static void rewrite_index(struct bld *b, unsigned keep, uint64_t extra_key, uint64_t extra_block)
{
	struct tm_node n;
	char why[200];
	uint64_t root = b->data_index_root;
	assert_int_equal(tm_node_check(bld_block(b, root), root, 16, &n, why, sizeof(why)), 0);
	assert_int_equal(n.flags, TM_NODE_LEAF);
	uint64_t keys[16];
	struct tm_disk_index_entry ie[16];
	uint32_t k = 0;
	for (uint32_t i = 0; i < n.nr_entries; i++) {
		if (!(keep & (1u << tm_node_key(&n, i))))
			continue;
		keys[k] = tm_node_key(&n, i);
		memcpy(&ie[k], tm_node_value(&n, i), sizeof(ie[k]));
		k++;
	}
	if (extra_key != UINT64_MAX) {
		keys[k] = extra_key;
		ie[k] = (struct tm_disk_index_entry){ .blocknr = htole64(extra_block) };
		k++;
	}
	bld_node(b, root, TM_NODE_LEAF, 16, k, keys, ie);
}

static void test_sm_missing_index(void **state)
{
	(void)state;
	struct bld b;
	struct tm_space_map sm;
	struct dmg_log log;

	/* No index entry for data bitmap 1. */
	build_big(&b, 0);
	rewrite_index(&b, 1u | 4u, UINT64_MAX, 0);
	assert_int_equal(load(&b, 0, &sm, &log), 0);
	assert_int_equal(log.n, 1);
	expect(&log, "data space map", 16320, 32640, UINT64_MAX, "no index entry");
	assert_int_equal(tm_sm_count(&sm, 20000), 0);
	assert_int_equal(tm_sm_count(&sm, 100), 1);
	assert_int_equal(tm_sm_count(&sm, 35000), 1);
	tm_sm_free(&sm);
	bld_free(&b);

	/* An index entry for a bitmap the map does not have (index 3), and
	 * one that points outside the metadata. */
	build_big(&b, 0);
	rewrite_index(&b, 1u | 2u, 3, b.data_bitmap[2]);
	assert_int_equal(load(&b, 0, &sm, &log), 0);
	expect(&log, "data space map", 3, 4, b.data_index_root, "bitmap 3");
	expect(&log, "data space map", 32640, 40000, UINT64_MAX, "no index entry");
	assert_int_equal(log.n, 2);
	tm_sm_free(&sm);
	bld_free(&b);

	build_big(&b, 0);
	rewrite_index(&b, 1u | 2u, 2, 64);
	assert_int_equal(load(&b, 0, &sm, &log), 0);
	assert_int_equal(log.n, 1);
	/* The wrong entry is in the index leaf: that is the block named. */
	expect(&log, "data space map", 32640, 40000, b.data_index_root, "outside");
	tm_sm_free(&sm);
	bld_free(&b);

	/* The index btree root itself is damaged. */
	build_big(&b, 0);
	bld_block(&b, b.data_index_root)[50] ^= 1;
	assert_int_equal(load(&b, 0, &sm, &log), 0);
	/* In block units: everything the index covers; nothing more. */
	expect(&log, "data space map", 0, 40000, b.data_index_root, "checksum");
	assert_int_equal(log.n, 1);
	tm_sm_free(&sm);
	bld_free(&b);

	/* Metadata: a zeroed entry in the index block. */
	bld_standard(&b);
	struct tm_disk_metadata_index *mi = (struct tm_disk_metadata_index *)bld_block(&b, b.meta_index);
	memset(&mi->index[0], 0, sizeof(mi->index[0]));
	bld_reseal(&b, b.meta_index, TM_SALT_INDEX);
	assert_int_equal(load(&b, 1, &sm, &log), 0);
	assert_int_equal(log.n, 1);
	expect(&log, "metadata space map", 0, 32, b.meta_index, "superblock");
	tm_sm_free(&sm);

	/* Metadata: a bad index block checksum. */
	bld_free(&b);
	bld_standard(&b);
	bld_block(&b, b.meta_index)[500] ^= 1;
	assert_int_equal(load(&b, 1, &sm, &log), 0);
	expect(&log, "metadata space map", 0, 32, b.meta_index, "checksum");
	for (uint64_t i = 0; i < 32; i++)
		assert_int_equal(tm_sm_count(&sm, i), 0);
	tm_sm_free(&sm);
	bld_free(&b);
}

static void test_sm_index_two_levels(void **state)
{
	(void)state;
	/* 200 data bitmaps: more than a 168-entry index leaf holds, so the
	 * data space map's index btree has an internal root. */
	uint64_t nr = 200ull * TM_ENTRIES_PER_BITMAP - 5;
	struct bld b;
	bld_init(&b, 256, nr);
	assert_int_equal(b.nr_data_bitmaps, 200);
	static const struct bld_map m[] = { { 0, 0, 0 }, { 1, 170ull * 16320 + 3, 0 }, { 2, 200ull * 16320 - 6, 0 } };
	bld_device(&b, 1, m, 3, 0, 0);
	b.data_count[199ull * 16320] = 9;
	bld_finish(&b);
	struct tm_node n;
	char why[200];
	assert_int_equal(tm_node_check(bld_block(&b, b.data_index_root), b.data_index_root, 16, &n, why, sizeof(why)), 0);
	assert_int_equal(n.flags, TM_NODE_INTERNAL);
	struct tm_space_map sm;
	struct dmg_log log;
	assert_int_equal(load(&b, 0, &sm, &log), 0);
	if (log.n)
		dump_log(&log);
	assert_int_equal(log.n, 0);
	assert_int_equal(sm.nr_bitmaps, 200);
	assert_int_equal(tm_sm_count(&sm, 0), 1);
	assert_int_equal(tm_sm_count(&sm, 170ull * 16320 + 3), 1);
	assert_int_equal(tm_sm_count(&sm, 200ull * 16320 - 6), 1);
	assert_int_equal(tm_sm_count(&sm, 199ull * 16320), 9);
	assert_int_equal(tm_sm_count(&sm, 170ull * 16320 + 2), 0);
	tm_sm_free(&sm);
	/* Lose the second index leaf (bitmaps 168..199). */
	uint64_t leaf2 = tm_node_value64(&n, 1);
	bld_block(&b, leaf2)[64] ^= 1;
	assert_int_equal(load(&b, 0, &sm, &log), 0);
	expect(&log, "data space map", 168ull * 16320, nr, leaf2, "checksum");
	/* ... and the overflow count of 9 now sits on a block that reads 0. */
	assert_int_equal(log.n, 1);
	assert_int_equal(tm_sm_count(&sm, 0), 1);
	assert_int_equal(tm_sm_count(&sm, 170ull * 16320 + 3), 0);
	tm_sm_free(&sm);
	bld_free(&b);
}

static void test_sm_empty_pool(void **state)
{
	(void)state;
	/* A pool with no data blocks: no bitmaps, an empty index leaf. */
	struct bld b;
	bld_init(&b, 16, 0);
	bld_device(&b, 1, NULL, 0, 0, 0);
	bld_finish(&b);
	struct tm_space_map sm;
	struct dmg_log log;
	assert_int_equal(load(&b, 0, &sm, &log), 0);
	if (log.n)
		dump_log(&log);
	assert_int_equal(log.n, 0);
	assert_int_equal(sm.nr_blocks, 0);
	assert_int_equal(sm.nr_bitmaps, 0);
	assert_int_equal(tm_sm_count(&sm, 0), 0);
	tm_sm_free(&sm);
	bld_free(&b);
}

static void test_sm_metadata_two_bitmaps(void **state)
{
	(void)state;
	/* 16321 metadata blocks: the metadata space map needs a second
	 * bitmap, for block 16320 alone. */
	struct bld b;
	bld_init(&b, TM_ENTRIES_PER_BITMAP + 1, 100);
	assert_int_equal(b.nr_meta_bitmaps, 2);
	bld_device(&b, 1, NULL, 0, 0, 0);
	b.meta_count[TM_ENTRIES_PER_BITMAP - 1] = 1;
	b.meta_count[TM_ENTRIES_PER_BITMAP] = 2;
	bld_finish(&b);
	struct tm_space_map sm;
	struct dmg_log log;
	assert_int_equal(load(&b, 1, &sm, &log), 0);
	if (log.n)
		dump_log(&log);
	assert_int_equal(log.n, 0);
	assert_int_equal(sm.nr_bitmaps, 2);
	expect_counts(&sm, b.meta_count, b.nr_blocks);
	assert_int_equal(tm_sm_count(&sm, TM_ENTRIES_PER_BITMAP), 2);
	tm_sm_free(&sm);
	/* The second bitmap damaged: only block 16320 is lost. */
	bld_block(&b, b.meta_bitmap[1])[30] ^= 1;
	assert_int_equal(load(&b, 1, &sm, &log), 0);
	assert_int_equal(log.n, 1);
	expect(&log, "metadata space map", TM_ENTRIES_PER_BITMAP, TM_ENTRIES_PER_BITMAP + 1, b.meta_bitmap[1],
	       "checksum");
	assert_int_equal(tm_sm_count(&sm, TM_ENTRIES_PER_BITMAP), 0);
	assert_int_equal(tm_sm_count(&sm, TM_ENTRIES_PER_BITMAP - 1), 1);
	tm_sm_free(&sm);
	bld_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bitmap_entry_doc),
		cmocka_unit_test(test_bitmap_entry_roundtrip),
		cmocka_unit_test(test_sm_data_basic),
		cmocka_unit_test(test_sm_metadata_basic),
		cmocka_unit_test(test_sm_multi_bitmap),
		cmocka_unit_test(test_sm_overflow),
		cmocka_unit_test(test_sm_overflow_damage),
		cmocka_unit_test(test_sm_bad_bitmap),
		cmocka_unit_test(test_sm_missing_index),
		cmocka_unit_test(test_sm_index_two_levels),
		cmocka_unit_test(test_sm_empty_pool),
		cmocka_unit_test(test_sm_metadata_two_bitmaps),
	};
	if (!unit_tmpdir_usable())
		return UNIT_SKIP;
	return cmocka_run_group_tests_name("spacemap", tests, NULL, unit_tmp_cleanup);
}
