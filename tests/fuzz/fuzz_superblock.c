/* Harness: the superblock validators (with and without TM_SB_ALLOW_SHORT).
 *
 * Input: the live superblock block (4 KiB), a metadata-snapshot superblock
 * block (4 KiB) and file_blocks (8 bytes, little-endian); anything missing is
 * zero, anything more is ignored. Each block is validated as it is and, when
 * its checksum is wrong, again after resealing it, so mutations reach the
 * checks behind the checksum. What a validator accepts must satisfy what
 * the rest of the reader relies on: roots inside the metadata, counts
 * bounded by the file size. */
#include "config.h"
#include "fuzz.h"

#include <string.h>

#include "thinmeta/crc32c.h"
#include "thinmeta/ondisk.h"
#include "thinmeta/superblock.h"

static void check_live(const struct tm_superblock *sb, uint64_t file_blocks, unsigned flags)
{
	uint64_t limit = tm_superblock_meta_limit(sb, file_blocks);
	FUZZ_ASSERT(sb->magic == TM_SUPERBLOCK_MAGIC && sb->blocknr == 0, "accepted a wrong magic or blocknr");
	FUZZ_ASSERT(limit <= file_blocks && limit <= TM_MAX_METADATA_BLOCKS, "limit %llu beyond the file",
		    (unsigned long long)limit);
	const uint64_t roots[] = {
		sb->metadata_sm.bitmap_root, sb->metadata_sm.ref_count_root, sb->data_sm.bitmap_root,
		sb->data_sm.ref_count_root, sb->data_mapping_root, sb->device_details_root,
	};
	for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++)
		FUZZ_ASSERT(roots[i] > 0 && roots[i] < limit, "root %zu is block %llu, limit %llu", i,
			    (unsigned long long)roots[i], (unsigned long long)limit);
	FUZZ_ASSERT(sb->held_root < limit, "held root %llu beyond %llu", (unsigned long long)sb->held_root,
		    (unsigned long long)limit);
	/* tm_sm_read sizes allocations by these. */
	FUZZ_ASSERT(sb->data_sm.nr_blocks <= (uint64_t)TM_ENTRIES_PER_BITMAP * limit, "data sm of %llu blocks",
		    (unsigned long long)sb->data_sm.nr_blocks);
	FUZZ_ASSERT(sb->metadata_sm.nr_blocks <= TM_MAX_METADATA_BLOCKS &&
		    (sb->metadata_sm.nr_blocks <= file_blocks || (flags & TM_SB_ALLOW_SHORT)),
		    "metadata sm of %llu blocks", (unsigned long long)sb->metadata_sm.nr_blocks);
	FUZZ_ASSERT(sb->data_block_size >= TM_DATA_BLOCK_MIN_SECTORS && sb->data_block_size <= TM_DATA_BLOCK_MAX_SECTORS,
		    "data block size %u", sb->data_block_size);
}

static void check_snapshot(const struct tm_superblock *snap, const struct tm_superblock *live, uint64_t location)
{
	FUZZ_ASSERT(snap->blocknr == location && snap->held_root == 0, "accepted a snapshot at the wrong place");
	FUZZ_ASSERT(snap->data_mapping_root > 0 && snap->data_mapping_root < live->metadata_sm.nr_blocks &&
		    snap->device_details_root > 0 && snap->device_details_root < live->metadata_sm.nr_blocks,
		    "snapshot roots outside the metadata");
	FUZZ_ASSERT(snap->data_block_size == live->data_block_size, "snapshot data block size differs");
}

/* Validates live (and the snapshot block against it when live is good);
 * flags as tm_superblock_validate_flags. */
static void validate(const unsigned char *live, const unsigned char *snap, uint64_t file_blocks, unsigned flags)
{
	struct tm_superblock sb, ssb;
	struct dmr_err err = { 0 };
	int r = tm_superblock_validate_flags(live, file_blocks, "fuzz", flags, &sb, &err);
	FUZZ_ASSERT(r <= 0, "positive return %d", r);
	FUZZ_ASSERT(r == 0 || err.msg[0], "failure %d without a message", r);
	FUZZ_ASSERT(memchr(err.msg, '\0', sizeof(err.msg)), "unterminated message");
	if (r)
		tm_superblock_decode(live, 0, &sb); /* the snapshot checks still run against it */
	else
		check_live(&sb, file_blocks, flags);

	uint64_t location = sb.held_root ? sb.held_root : tm_le64(snap + offsetof(struct tm_disk_superblock, blocknr));
	dmr_err_clear(&err);
	int rs = tm_superblock_validate_snapshot(snap, location, &sb, "fuzz", &ssb, &err);
	FUZZ_ASSERT(rs <= 0 && (rs == 0 || err.msg[0]), "snapshot: return %d, message \"%s\"", rs, err.msg);
	if (rs == 0 && r == 0)
		check_snapshot(&ssb, &sb, location);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char live[TM_BLOCK_SIZE], snap[TM_BLOCK_SIZE];
	unsigned char fb[8] = { 0 };
	memset(live, 0, sizeof(live));
	memset(snap, 0, sizeof(snap));
	memcpy(live, data, size < TM_BLOCK_SIZE ? size : TM_BLOCK_SIZE);
	if (size > TM_BLOCK_SIZE)
		memcpy(snap, data + TM_BLOCK_SIZE, size - TM_BLOCK_SIZE < TM_BLOCK_SIZE ? size - TM_BLOCK_SIZE : TM_BLOCK_SIZE);
	if (size > 2 * TM_BLOCK_SIZE)
		memcpy(fb, data + 2 * TM_BLOCK_SIZE, size - 2 * TM_BLOCK_SIZE < 8 ? size - 2 * TM_BLOCK_SIZE : 8);
	uint64_t file_blocks = tm_le64(fb);

	/* The plain validation (dump, ls, scan), then the checker's, which
	 * allows a file shorter than the metadata space map. */
	validate(live, snap, file_blocks, 0);
	validate(live, snap, file_blocks, TM_SB_ALLOW_SHORT);
	int resealed = 0;
	if (!tm_block_csum_ok(live, TM_SALT_SUPERBLOCK)) {
		tm_block_csum_set(live, TM_SALT_SUPERBLOCK);
		resealed = 1;
	}
	if (!tm_block_csum_ok(snap, TM_SALT_SUPERBLOCK)) {
		tm_block_csum_set(snap, TM_SALT_SUPERBLOCK);
		resealed = 1;
	}
	if (resealed) {
		validate(live, snap, file_blocks, 0);
		validate(live, snap, file_blocks, TM_SB_ALLOW_SHORT);
	}
	return 0;
}
