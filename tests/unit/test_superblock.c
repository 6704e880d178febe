/* Superblock decoding and validation (live and metadata snapshot). */
#include "unit.h"

#include <stdlib.h>

#include "builder.h"
#include "thinmeta/crc32c.h"
#include "thinmeta/superblock.h"

#define PATH "/some/dir/metadata"

static int setup(void **state)
{
	struct bld *b = malloc(sizeof(*b));
	if (!b)
		return -1;
	bld_standard(b);
	*state = b;
	return 0;
}

static int teardown(void **state)
{
	bld_free(*state);
	free(*state);
	return 0;
}

static int validate(struct bld *b, uint64_t file_blocks, struct tm_superblock *sb, struct dmr_err *err)
{
	dmr_err_clear(err);
	return tm_superblock_validate(bld_block(b, 0), file_blocks, PATH, sb, err);
}

/* Patches the live superblock through fn, validates, restores. */
static int with_patch(struct bld *b, void (*fn)(struct tm_disk_superblock *, uint64_t), uint64_t arg,
		      struct dmr_err *err)
{
	unsigned char saved[TM_BLOCK_SIZE];
	memcpy(saved, bld_block(b, 0), TM_BLOCK_SIZE);
	struct tm_disk_superblock d;
	bld_sb_get(b, 0, &d);
	fn(&d, arg);
	bld_sb_put(b, 0, &d);
	struct tm_superblock sb;
	int r = validate(b, b->nr_blocks, &sb, err);
	memcpy(bld_block(b, 0), saved, TM_BLOCK_SIZE);
	return r;
}

/* Every error names the file and the block. */
static void assert_err(int r, int code, const struct dmr_err *err, const char *block, const char *word)
{
	assert_int_equal(r, code);
	assert_int_equal(err->code, code);
	assert_contains(err->msg, PATH);
	assert_contains(err->msg, block);
	if (word)
		assert_contains(err->msg, word);
}

static void test_valid(void **state)
{
	struct bld *b = *state;
	struct tm_superblock sb;
	struct dmr_err err;
	assert_int_equal(validate(b, b->nr_blocks, &sb, &err), 0);
	assert_int_equal(sb.location, 0);
	assert_int_equal(sb.magic, 27022010);
	assert_int_equal(sb.blocknr, 0);
	assert_int_equal(sb.version, 2);
	assert_int_equal(sb.time, 1);
	assert_int_equal(sb.trans_id, 1);
	assert_int_equal(sb.held_root, 0);
	assert_int_equal(sb.data_block_size, 128);
	assert_int_equal(sb.metadata_block_size, 8);
	assert_int_equal(sb.metadata_nr_blocks, 32);
	assert_int_equal(sb.data_mapping_root, b->top_root);
	assert_int_equal(sb.device_details_root, b->details_root);
	assert_int_equal(sb.data_sm.nr_blocks, 1024);
	assert_int_equal(sb.data_sm.nr_allocated, 4);
	assert_int_equal(sb.data_sm.bitmap_root, b->data_index_root);
	assert_int_equal(sb.data_sm.ref_count_root, b->data_ref_root);
	assert_int_equal(sb.metadata_sm.nr_blocks, 32);
	assert_int_equal(sb.metadata_sm.nr_allocated, b->next);
	assert_int_equal(sb.metadata_sm.bitmap_root, b->meta_index);
	assert_int_equal(sb.metadata_sm.ref_count_root, b->meta_ref_root);
	assert_int_equal(tm_superblock_meta_limit(&sb, 32), 32);
	assert_int_equal(tm_superblock_meta_limit(&sb, 100), 32);
	/* A larger file is fine: the space map decides the size. */
	assert_int_equal(validate(b, 1000, &sb, &err), 0);
}

static void test_decode_raw(void **state)
{
	struct bld *b = *state;
	unsigned char blk[TM_BLOCK_SIZE] = { 0 };
	/* Offsets from the doc's table, written by hand. */
	tm_put_le32(blk + 4, 1);
	tm_put_le64(blk + 8, 77);
	blk[16] = 0xaa;
	blk[31] = 0xbb;
	tm_put_le64(blk + 32, 27022010);
	tm_put_le32(blk + 40, 1);
	tm_put_le32(blk + 44, 9);
	tm_put_le64(blk + 48, 1234);
	tm_put_le64(blk + 56, 17);
	tm_put_le64(blk + 64, 5000);
	tm_put_le64(blk + 72, 40);
	tm_put_le64(blk + 80, 3);
	tm_put_le64(blk + 88, 4);
	tm_put_le64(blk + 192, 60);
	tm_put_le64(blk + 200, 20);
	tm_put_le64(blk + 208, 1);
	tm_put_le64(blk + 216, 2);
	tm_put_le64(blk + 320, 7);
	tm_put_le64(blk + 328, 8);
	tm_put_le32(blk + 336, 256);
	tm_put_le32(blk + 340, 8);
	tm_put_le64(blk + 344, 61);
	tm_put_le32(blk + 352, 0x11);
	tm_put_le32(blk + 356, 0x22);
	tm_put_le32(blk + 360, 0x33);
	struct tm_superblock sb;
	tm_superblock_decode(blk, 5, &sb);
	assert_int_equal(sb.location, 5);
	assert_int_equal(sb.flags, 1);
	assert_int_equal(sb.blocknr, 77);
	assert_int_equal(sb.uuid[0], 0xaa);
	assert_int_equal(sb.uuid[15], 0xbb);
	assert_int_equal(sb.magic, 27022010);
	assert_int_equal(sb.version, 1);
	assert_int_equal(sb.time, 9);
	assert_int_equal(sb.trans_id, 1234);
	assert_int_equal(sb.held_root, 17);
	assert_int_equal(sb.data_sm.nr_blocks, 5000);
	assert_int_equal(sb.data_sm.nr_allocated, 40);
	assert_int_equal(sb.data_sm.bitmap_root, 3);
	assert_int_equal(sb.data_sm.ref_count_root, 4);
	assert_int_equal(sb.metadata_sm.nr_blocks, 60);
	assert_int_equal(sb.metadata_sm.nr_allocated, 20);
	assert_int_equal(sb.metadata_sm.bitmap_root, 1);
	assert_int_equal(sb.metadata_sm.ref_count_root, 2);
	assert_int_equal(sb.data_mapping_root, 7);
	assert_int_equal(sb.device_details_root, 8);
	assert_int_equal(sb.data_block_size, 256);
	assert_int_equal(sb.metadata_block_size, 8);
	assert_int_equal(sb.metadata_nr_blocks, 61);
	assert_int_equal(sb.compat_flags, 0x11);
	assert_int_equal(sb.compat_ro_flags, 0x22);
	assert_int_equal(sb.incompat_flags, 0x33);
	(void)b;
}

static void test_bad_csum(void **state)
{
	struct bld *b = *state;
	struct tm_superblock sb;
	struct dmr_err err;
	unsigned char *p = bld_block(b, 0);
	p[16] ^= 1; /* uuid byte, no reseal */
	int r = validate(b, b->nr_blocks, &sb, &err);
	assert_err(r, DMR_ECORRUPT, &err, "block 0", "checksum");
	p[16] ^= 1;
	/* Damage beyond the 364 used bytes is covered too. */
	p[4000] = 1;
	r = validate(b, b->nr_blocks, &sb, &err);
	assert_err(r, DMR_ECORRUPT, &err, "block 0", "checksum");
	p[4000] = 0;
	/* The csum field itself. */
	p[0] ^= 0x80;
	r = validate(b, b->nr_blocks, &sb, &err);
	assert_err(r, DMR_ECORRUPT, &err, "block 0", "checksum");
	p[0] ^= 0x80;
	/* A node checksum (another salt) is not a superblock checksum. */
	tm_block_csum_set(p, TM_SALT_BTREE_NODE);
	r = validate(b, b->nr_blocks, &sb, &err);
	assert_err(r, DMR_ECORRUPT, &err, "block 0", "checksum");
	bld_reseal_sb(b);
	assert_int_equal(validate(b, b->nr_blocks, &sb, &err), 0);
}

static void p_magic(struct tm_disk_superblock *d, uint64_t v) { d->magic = v; }
static void p_blocknr(struct tm_disk_superblock *d, uint64_t v) { d->blocknr = v; }
static void p_mbs(struct tm_disk_superblock *d, uint64_t v) { d->metadata_block_size = (uint32_t)v; }
static void p_dbs(struct tm_disk_superblock *d, uint64_t v) { d->data_block_size = (uint32_t)v; }
static void p_incompat(struct tm_disk_superblock *d, uint64_t v) { d->incompat_flags = (uint32_t)v; }
static void p_flags(struct tm_disk_superblock *d, uint64_t v) { d->flags = (uint32_t)v; }
static void p_version(struct tm_disk_superblock *d, uint64_t v) { d->version = (uint32_t)v; }
static void p_held(struct tm_disk_superblock *d, uint64_t v) { d->held_root = v; }
static void p_mapping_root(struct tm_disk_superblock *d, uint64_t v) { d->data_mapping_root = v; }
static void p_details_root(struct tm_disk_superblock *d, uint64_t v) { d->device_details_root = v; }

static void p_msm(struct tm_disk_superblock *d, uint64_t field_value)
{
	/* field_value: field index in the high byte, value below. */
	struct tm_disk_sm_root r;
	bld_sm_root_get(d->metadata_space_map_root, &r);
	uint64_t v = field_value & 0xffffffffffffffull;
	switch (field_value >> 56) {
	case 0: r.nr_blocks = v; break;
	case 1: r.nr_allocated = v; break;
	case 2: r.bitmap_root = v; break;
	case 3: r.ref_count_root = v; break;
	}
	bld_sm_root_put(d->metadata_space_map_root, &r);
}

static void p_dsm(struct tm_disk_superblock *d, uint64_t field_value)
{
	struct tm_disk_sm_root r;
	bld_sm_root_get(d->data_space_map_root, &r);
	uint64_t v = field_value & 0xffffffffffffffull;
	switch (field_value >> 56) {
	case 0: r.nr_blocks = v; break;
	case 1: r.nr_allocated = v; break;
	case 2: r.bitmap_root = v; break;
	case 3: r.ref_count_root = v; break;
	}
	bld_sm_root_put(d->data_space_map_root, &r);
}

#define F(i, v) ((uint64_t)(i) << 56 | (uint64_t)(v))

static void test_bad_magic(void **state)
{
	struct bld *b = *state;
	struct dmr_err err;
	assert_err(with_patch(b, p_magic, 27022011, &err), DMR_ECORRUPT, &err, "block 0", "magic");
	assert_err(with_patch(b, p_magic, 0, &err), DMR_ECORRUPT, &err, "block 0", "magic");
	/* The magic is 64 bits: junk in the high half counts. */
	assert_err(with_patch(b, p_magic, 27022010ull | 1ull << 40, &err), DMR_ECORRUPT, &err, "block 0", "magic");
}

static void test_bad_blocknr(void **state)
{
	struct bld *b = *state;
	struct dmr_err err;
	assert_err(with_patch(b, p_blocknr, 1, &err), DMR_ECORRUPT, &err, "block 0", NULL);
	assert_err(with_patch(b, p_blocknr, 1ull << 32, &err), DMR_ECORRUPT, &err, "block 0", NULL);
}

static void test_metadata_block_size(void **state)
{
	struct bld *b = *state;
	struct dmr_err err;
	static const uint64_t bad[] = { 0, 1, 7, 9, 16, 128 };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_err(with_patch(b, p_mbs, bad[i], &err), DMR_ECORRUPT, &err, "block 0", "metadata block size");
	assert_int_equal(with_patch(b, p_mbs, 8, &err), 0);
}

static void test_data_block_size(void **state)
{
	struct bld *b = *state;
	struct dmr_err err;
	static const uint64_t bad[] = { 0, 1, 64, 127, 129, 192, 200, 1000, 2097152 + 128, 4194304, 0xffffffffu };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = with_patch(b, p_dbs, bad[i], &err);
		if (r != DMR_ECORRUPT)
			fail_msg("data block size %llu accepted (%d)", (unsigned long long)bad[i], r);
		assert_err(r, DMR_ECORRUPT, &err, "block 0", "data block size");
	}
	static const uint64_t good[] = { 128, 256, 384, 1024, 2097152 - 128, 2097152 };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		int r = with_patch(b, p_dbs, good[i], &err);
		if (r != 0)
			fail_msg("data block size %llu refused: %s", (unsigned long long)good[i], err.msg);
	}
}

static void test_incompat_flags(void **state)
{
	struct bld *b = *state;
	struct dmr_err err;
	assert_err(with_patch(b, p_incompat, 1, &err), DMR_EUNSUPP, &err, "block 0", "incompat");
	assert_err(with_patch(b, p_incompat, 0x80000000u, &err), DMR_EUNSUPP, &err, "block 0", NULL);
	assert_contains(err.msg, "0x80000000");
}

static void test_version(void **state)
{
	struct bld *b = *state;
	struct dmr_err err;
	assert_int_equal(with_patch(b, p_version, 1, &err), 0);
	assert_int_equal(with_patch(b, p_version, 2, &err), 0);
	assert_err(with_patch(b, p_version, 0, &err), DMR_EUNSUPP, &err, "block 0", "version");
	assert_err(with_patch(b, p_version, 3, &err), DMR_EUNSUPP, &err, "block 0", "version");
}

static void test_flags(void **state)
{
	struct bld *b = *state;
	struct dmr_err err;
	/* NEEDS_CHECK is known and fine for reading. */
	struct tm_superblock sb;
	unsigned char saved[TM_BLOCK_SIZE];
	memcpy(saved, bld_block(b, 0), TM_BLOCK_SIZE);
	struct tm_disk_superblock d;
	bld_sb_get(b, 0, &d);
	d.flags = TM_SB_FLAG_NEEDS_CHECK;
	bld_sb_put(b, 0, &d);
	assert_int_equal(validate(b, b->nr_blocks, &sb, &err), 0);
	assert_int_equal(sb.flags, 1);
	memcpy(bld_block(b, 0), saved, TM_BLOCK_SIZE);

	static const uint64_t bad[] = { 2, 3, 4, 0x100, 0x80000000u, 0xffffffffu };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_err(with_patch(b, p_flags, bad[i], &err), DMR_ECORRUPT, &err, "block 0", "flags");
}

static void test_metadata_sm_too_big(void **state)
{
	struct bld *b = *state;
	struct tm_superblock sb;
	struct dmr_err err;
	/* The file is shorter than the metadata space map says: truncated. */
	int r = validate(b, b->nr_blocks - 1, &sb, &err);
	assert_err(r, DMR_ECORRUPT, &err, "block 0", "truncated");
	assert_contains(err.msg, "32 blocks");
	assert_contains(err.msg, "31");
	r = validate(b, 1, &sb, &err);
	assert_err(r, DMR_ECORRUPT, &err, "block 0", NULL);
	/* Same file, space map claims one block more. */
	assert_err(with_patch(b, p_msm, F(0, 33), &err), DMR_ECORRUPT, &err, "block 0", "metadata space map");
	/* More than the format allows (255 bitmaps), even for a huge file. */
	unsigned char saved[TM_BLOCK_SIZE];
	memcpy(saved, bld_block(b, 0), TM_BLOCK_SIZE);
	struct tm_disk_superblock d;
	bld_sb_get(b, 0, &d);
	p_msm(&d, F(0, TM_MAX_METADATA_BLOCKS + 1ull));
	bld_sb_put(b, 0, &d);
	r = validate(b, 1ull << 30, &sb, &err);
	assert_err(r, DMR_ECORRUPT, &err, "block 0", NULL);
	/* Exactly the maximum is fine as far as the superblock goes. */
	p_msm(&d, F(0, TM_MAX_METADATA_BLOCKS));
	bld_sb_put(b, 0, &d);
	assert_int_equal(validate(b, 1ull << 30, &sb, &err), 0);
	memcpy(bld_block(b, 0), saved, TM_BLOCK_SIZE);
	/* A smaller space map than the file is fine: it limits the roots. */
	assert_int_equal(with_patch(b, p_msm, F(0, b->next), &err), 0);
	assert_err(with_patch(b, p_msm, F(0, b->top_root), &err), DMR_ECORRUPT, &err, "block 0", "outside");
}

static void test_roots(void **state)
{
	struct bld *b = *state;
	struct dmr_err err;
	uint64_t n = b->nr_blocks;
	struct {
		void (*fn)(struct tm_disk_superblock *, uint64_t);
		int field;
		const char *name;
	} roots[] = {
		{ p_mapping_root, -1, "data mapping root" },
		{ p_details_root, -1, "device details root" },
		{ p_msm, 2, "metadata space map index" },
		{ p_msm, 3, "metadata ref count root" },
		{ p_dsm, 2, "data space map root" },
		{ p_dsm, 3, "data ref count root" },
	};
	static const uint64_t bad[] = { 0, 32, 33, 1000, 1ull << 40 };
	for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
		for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
			uint64_t arg = roots[i].field < 0 ? bad[k] : F(roots[i].field, bad[k]);
			int r = with_patch(b, roots[i].fn, arg, &err);
			if (r != DMR_ECORRUPT)
				fail_msg("%s = %llu accepted", roots[i].name, (unsigned long long)bad[k]);
			assert_err(r, DMR_ECORRUPT, &err, "block 0", roots[i].name);
		}
		/* The last block of the metadata is a legal place. */
		uint64_t arg = roots[i].field < 0 ? n - 1 : F(roots[i].field, n - 1);
		if (with_patch(b, roots[i].fn, arg, &err) != 0)
			fail_msg("%s = %llu refused: %s", roots[i].name, (unsigned long long)(n - 1), err.msg);
	}
	/* held_root: 0 means none; otherwise inside the metadata. */
	assert_int_equal(with_patch(b, p_held, 0, &err), 0);
	assert_int_equal(with_patch(b, p_held, n - 1, &err), 0);
	assert_err(with_patch(b, p_held, n, &err), DMR_ECORRUPT, &err, "block 0", "snapshot");
	assert_err(with_patch(b, p_held, ~0ull, &err), DMR_ECORRUPT, &err, "block 0", "snapshot");
}

static void test_data_sm_size(void **state)
{
	struct bld *b = *state;
	struct dmr_err err;
	/* 32 metadata blocks hold at most 32 bitmaps of 16320 entries. */
	uint64_t most = 32ull * TM_ENTRIES_PER_BITMAP;
	assert_int_equal(with_patch(b, p_dsm, F(0, most), &err), 0);
	assert_err(with_patch(b, p_dsm, F(0, most + 1), &err), DMR_ECORRUPT, &err, "block 0", "data space map");
	assert_err(with_patch(b, p_dsm, F(0, 1ull << 41), &err), DMR_ECORRUPT, &err, "block 0", "data space map");
	/* Allocated counts cannot exceed the totals. */
	assert_err(with_patch(b, p_dsm, F(1, 1025), &err), DMR_ECORRUPT, &err, "block 0", "allocated");
	assert_int_equal(with_patch(b, p_dsm, F(1, 1024), &err), 0);
	assert_err(with_patch(b, p_msm, F(1, 33), &err), DMR_ECORRUPT, &err, "block 0", "allocated");
	/* An empty pool is valid. */
	struct tm_disk_superblock d;
	unsigned char saved[TM_BLOCK_SIZE];
	memcpy(saved, bld_block(b, 0), TM_BLOCK_SIZE);
	bld_sb_get(b, 0, &d);
	p_dsm(&d, F(0, 0));
	p_dsm(&d, F(1, 0));
	bld_sb_put(b, 0, &d);
	struct tm_superblock sb;
	assert_int_equal(validate(b, b->nr_blocks, &sb, &err), 0);
	memcpy(bld_block(b, 0), saved, TM_BLOCK_SIZE);
}

static void test_all_zero(void **state)
{
	(void)state;
	unsigned char blk[TM_BLOCK_SIZE] = { 0 };
	struct tm_superblock sb;
	struct dmr_err err;
	int r = tm_superblock_validate(blk, 32, PATH, &sb, &err);
	assert_err(r, DMR_ECORRUPT, &err, "block 0", NULL);
}

/* Metadata snapshot copy. */

static int setup_snap(void **state)
{
	struct bld *b = malloc(sizeof(*b));
	if (!b)
		return -1;
	static const struct bld_map maps[] = { { 0, 1, 0 }, { 1, 2, 0 } };
	bld_init(b, 32, 1024);
	bld_device(b, 3, maps, 2, 0, 0);
	bld_reserve_snapshot(b);
	bld_finish(b);
	*state = b;
	return 0;
}

static int validate_snap(struct bld *b, uint64_t loc, struct tm_superblock *out, struct dmr_err *err)
{
	struct tm_superblock live;
	assert_int_equal(validate(b, b->nr_blocks, &live, err), 0);
	dmr_err_clear(err);
	return tm_superblock_validate_snapshot(bld_block(b, loc), loc, &live, PATH, out, err);
}

static int snap_patch(struct bld *b, void (*fn)(struct tm_disk_superblock *, uint64_t), uint64_t arg,
		      struct dmr_err *err)
{
	unsigned char saved[TM_BLOCK_SIZE];
	memcpy(saved, bld_block(b, b->held_root), TM_BLOCK_SIZE);
	struct tm_disk_superblock d;
	bld_sb_get(b, b->held_root, &d);
	fn(&d, arg);
	bld_sb_put(b, b->held_root, &d);
	struct tm_superblock sb;
	int r = validate_snap(b, b->held_root, &sb, err);
	memcpy(bld_block(b, b->held_root), saved, TM_BLOCK_SIZE);
	return r;
}

static void test_snapshot_valid(void **state)
{
	struct bld *b = *state;
	struct tm_superblock live, snap;
	struct dmr_err err;
	assert_int_equal(validate(b, b->nr_blocks, &live, &err), 0);
	assert_int_equal(live.held_root, b->held_root);
	assert_int_equal(validate_snap(b, b->held_root, &snap, &err), 0);
	assert_int_equal(snap.location, b->held_root);
	assert_int_equal(snap.blocknr, b->held_root);
	assert_int_equal(snap.held_root, 0);
	assert_int_equal(snap.data_mapping_root, live.data_mapping_root);
	assert_int_equal(snap.device_details_root, live.device_details_root);
	/* Its space map roots are zero by design, and that is fine. */
	assert_int_equal(snap.data_sm.nr_blocks, 0);
	assert_int_equal(snap.metadata_sm.bitmap_root, 0);
}

static void test_snapshot_bad(void **state)
{
	struct bld *b = *state;
	struct dmr_err err;
	char where[64];
	snprintf(where, sizeof(where), "block %llu", (unsigned long long)b->held_root);

	/* Checksum. */
	unsigned char *p = bld_block(b, b->held_root);
	p[20] ^= 4;
	struct tm_superblock sb;
	assert_err(validate_snap(b, b->held_root, &sb, &err), DMR_ECORRUPT, &err, where, "checksum");
	p[20] ^= 4;
	assert_int_equal(validate_snap(b, b->held_root, &sb, &err), 0);
	/* The live superblock, offered as the snapshot copy: wrong blocknr. */
	struct tm_superblock live;
	assert_int_equal(validate(b, b->nr_blocks, &live, &err), 0);
	int r = tm_superblock_validate_snapshot(bld_block(b, 0), b->held_root, &live, PATH, &sb, &err);
	assert_err(r, DMR_ECORRUPT, &err, where, NULL);

	assert_err(snap_patch(b, p_magic, 1, &err), DMR_ECORRUPT, &err, where, "magic");
	assert_err(snap_patch(b, p_blocknr, 0, &err), DMR_ECORRUPT, &err, where, NULL);
	assert_err(snap_patch(b, p_blocknr, b->held_root + 1, &err), DMR_ECORRUPT, &err, where, NULL);
	assert_err(snap_patch(b, p_mbs, 16, &err), DMR_ECORRUPT, &err, where, NULL);
	assert_err(snap_patch(b, p_dbs, 100, &err), DMR_ECORRUPT, &err, where, NULL);
	assert_err(snap_patch(b, p_dbs, 256, &err), DMR_ECORRUPT, &err, where, "data block size");
	assert_err(snap_patch(b, p_incompat, 4, &err), DMR_EUNSUPP, &err, where, NULL);
	assert_err(snap_patch(b, p_mapping_root, 0, &err), DMR_ECORRUPT, &err, where, NULL);
	assert_err(snap_patch(b, p_mapping_root, 32, &err), DMR_ECORRUPT, &err, where, NULL);
	assert_err(snap_patch(b, p_details_root, 0, &err), DMR_ECORRUPT, &err, where, NULL);
	assert_err(snap_patch(b, p_details_root, 1000, &err), DMR_ECORRUPT, &err, where, NULL);
	assert_err(snap_patch(b, p_held, 5, &err), DMR_ECORRUPT, &err, where, "snapshot");

	assert_int_equal(snap_patch(b, p_mapping_root, 31, &err), 0);
}

static void test_snapshot_flags(void **state)
{
	struct bld *b = *state;
	struct dmr_err err;
	char where[64];
	snprintf(where, sizeof(where), "block %llu", (unsigned long long)b->held_root);
	/* The copy is block 0 as it was (the kernel shadows it), flags
	 * included: NEEDS_CHECK is fine, and unknown bits are as corrupt as in
	 * the live superblock, which tm_superblock_validate refuses. */
	assert_int_equal(snap_patch(b, p_flags, TM_SB_FLAG_NEEDS_CHECK, &err), 0);
	static const uint32_t bad[] = { 2, 0x80000001u };
	for (size_t i = 0; i < 2; i++) {
		int r = snap_patch(b, p_flags, bad[i], &err);
		if (r != DMR_ECORRUPT)
			fail_msg("metadata snapshot superblock with unknown flags 0x%x accepted (returned %d)", bad[i], r);
		assert_err(r, DMR_ECORRUPT, &err, where, "flags");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_valid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_decode_raw, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_csum, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_magic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_blocknr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metadata_block_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_data_block_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_incompat_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metadata_sm_too_big, setup, teardown),
		cmocka_unit_test_setup_teardown(test_roots, setup, teardown),
		cmocka_unit_test_setup_teardown(test_data_sm_size, setup, teardown),
		cmocka_unit_test(test_all_zero),
		cmocka_unit_test_setup_teardown(test_snapshot_valid, setup_snap, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_bad, setup_snap, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_flags, setup_snap, teardown),
	};
	return cmocka_run_group_tests_name("superblock", tests, NULL, unit_tmp_cleanup);
}
