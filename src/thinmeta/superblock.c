#include "config.h"
#include "thinmeta/superblock.h"
#include "thinmeta/crc32c.h"
#include "thinmeta/ondisk.h"

#include <string.h>

static void decode_sm_root(const uint8_t *raw, struct tm_sm_root *r)
{
	struct tm_disk_sm_root d;
	memcpy(&d, raw, sizeof(d));
	r->nr_blocks = le64toh(d.nr_blocks);
	r->nr_allocated = le64toh(d.nr_allocated);
	r->bitmap_root = le64toh(d.bitmap_root);
	r->ref_count_root = le64toh(d.ref_count_root);
}

void tm_superblock_decode(const void *block, uint64_t location, struct tm_superblock *sb)
{
	struct tm_disk_superblock d;
	memcpy(&d, block, sizeof(d));
	memset(sb, 0, sizeof(*sb));
	sb->location = location;
	sb->csum = le32toh(d.csum);
	sb->flags = le32toh(d.flags);
	sb->blocknr = le64toh(d.blocknr);
	memcpy(sb->uuid, d.uuid, sizeof(sb->uuid));
	sb->magic = le64toh(d.magic);
	sb->version = le32toh(d.version);
	sb->time = le32toh(d.time);
	sb->trans_id = le64toh(d.trans_id);
	sb->held_root = le64toh(d.held_root);
	decode_sm_root(d.data_space_map_root, &sb->data_sm);
	decode_sm_root(d.metadata_space_map_root, &sb->metadata_sm);
	sb->data_mapping_root = le64toh(d.data_mapping_root);
	sb->device_details_root = le64toh(d.device_details_root);
	sb->data_block_size = le32toh(d.data_block_size);
	sb->metadata_block_size = le32toh(d.metadata_block_size);
	sb->metadata_nr_blocks = le64toh(d.metadata_nr_blocks);
	sb->compat_flags = le32toh(d.compat_flags);
	sb->compat_ro_flags = le32toh(d.compat_ro_flags);
	sb->incompat_flags = le32toh(d.incompat_flags);
}

uint64_t tm_superblock_meta_limit(const struct tm_superblock *sb, uint64_t file_blocks)
{
	uint64_t n = sb->metadata_sm.nr_blocks;
	return n < file_blocks ? n : file_blocks;
}

#define BAD(...) dmr_err_set(err, DMR_ECORRUPT, __VA_ARGS__)

/* Checks shared by the live superblock and its snapshot copy. */
static int validate_common(const void *block, uint64_t location, const char *path,
			   const struct tm_superblock *sb, struct dmr_err *err)
{
	const char *what = location ? "metadata snapshot superblock" : "superblock";
	unsigned long long loc = (unsigned long long)location;
	static const unsigned char zero[512];
	if (memcmp(block, zero, sizeof(zero)) == 0)
		return BAD("%s: block %llu: %s is all zeroes: an unformatted pool, or not thin-pool metadata",
			   path, loc, what);
	if (sb->magic != TM_SUPERBLOCK_MAGIC)
		return BAD("%s: block %llu: bad magic in %s (0x%llx, expected 0x%llx): not thin-pool metadata",
			   path, loc, what, (unsigned long long)sb->magic, TM_SUPERBLOCK_MAGIC);
	if (!tm_block_csum_ok(block, TM_SALT_SUPERBLOCK))
		return BAD("%s: block %llu: bad checksum in %s (stored 0x%08x, computed 0x%08x)",
			   path, loc, what, sb->csum, tm_block_csum(block, TM_SALT_SUPERBLOCK));
	if (sb->blocknr != location)
		return BAD("%s: block %llu: %s says it is block %llu",
			   path, loc, what, (unsigned long long)sb->blocknr);
	if (sb->flags & ~TM_SB_FLAG_NEEDS_CHECK)
		return BAD("%s: block %llu: unknown flags 0x%x in %s", path, loc, sb->flags, what);
	if (sb->incompat_flags != 0)
		return dmr_err_set(err, DMR_EUNSUPP, "%s: block %llu: %s has unknown incompatible features 0x%x",
				   path, loc, what, sb->incompat_flags);
	if (sb->version < 1 || sb->version > 2)
		return dmr_err_set(err, DMR_EUNSUPP, "%s: block %llu: unsupported metadata version %u",
				   path, loc, sb->version);
	if (sb->metadata_block_size != TM_BLOCK_SECTORS)
		return BAD("%s: block %llu: metadata block size is %u sectors, expected %u",
			   path, loc, sb->metadata_block_size, TM_BLOCK_SECTORS);
	if (sb->data_block_size < TM_DATA_BLOCK_MIN_SECTORS || sb->data_block_size > TM_DATA_BLOCK_MAX_SECTORS ||
	    sb->data_block_size % TM_DATA_BLOCK_MIN_SECTORS)
		return BAD("%s: block %llu: data block size %u sectors is not a multiple of 128 in 128..2097152",
			   path, loc, sb->data_block_size);
	return 0;
}

static int check_root(uint64_t root, uint64_t limit, const char *name, const char *path, struct dmr_err *err)
{
	if (root == 0 || root >= limit)
		return BAD("%s: block 0: %s is block %llu, outside the metadata (1..%llu)",
			   path, name, (unsigned long long)root, (unsigned long long)(limit ? limit - 1 : 0));
	return 0;
}

int tm_superblock_validate(const void *block, uint64_t file_blocks, const char *path,
			   struct tm_superblock *sb, struct dmr_err *err)
{
	return tm_superblock_validate_flags(block, file_blocks, path, 0, sb, err);
}

int tm_superblock_validate_flags(const void *block, uint64_t file_blocks, const char *path, unsigned flags,
				 struct tm_superblock *sb, struct dmr_err *err)
{
	tm_superblock_decode(block, 0, sb);
	int r = validate_common(block, 0, path, sb, err);
	if (r)
		return r;

	const struct tm_sm_root *msm = &sb->metadata_sm;
	if (msm->nr_blocks > TM_MAX_METADATA_BLOCKS)
		return BAD("%s: block 0: metadata space map claims %llu blocks, more than the format's %u",
			   path, (unsigned long long)msm->nr_blocks, TM_MAX_METADATA_BLOCKS);
	if (msm->nr_blocks > file_blocks && !(flags & TM_SB_ALLOW_SHORT))
		return BAD("%s: block 0: metadata space map claims %llu blocks but the file holds %llu: truncated?",
			   path, (unsigned long long)msm->nr_blocks, (unsigned long long)file_blocks);
	uint64_t limit = tm_superblock_meta_limit(sb, file_blocks);
	if ((r = check_root(msm->bitmap_root, limit, "metadata space map index", path, err)) ||
	    (r = check_root(msm->ref_count_root, limit, "metadata ref count root", path, err)) ||
	    (r = check_root(sb->data_sm.bitmap_root, limit, "data space map root", path, err)) ||
	    (r = check_root(sb->data_sm.ref_count_root, limit, "data ref count root", path, err)) ||
	    (r = check_root(sb->data_mapping_root, limit, "data mapping root", path, err)) ||
	    (r = check_root(sb->device_details_root, limit, "device details root", path, err)))
		return r;
	if (sb->held_root != 0 && sb->held_root >= limit)
		return BAD("%s: block 0: metadata snapshot at block %llu is outside the metadata (%llu blocks)",
			   path, (unsigned long long)sb->held_root, (unsigned long long)limit);

	/* Every data bitmap is a metadata block, so the data space map cannot
	 * be larger than this: it bounds every allocation sized by it. */
	const struct tm_sm_root *dsm = &sb->data_sm;
	if (dsm->nr_blocks > TM_DATA_BLOCK_LIMIT ||
	    dsm->nr_blocks > (uint64_t)TM_ENTRIES_PER_BITMAP * limit)
		return BAD("%s: block 0: data space map claims %llu blocks, impossible for %llu metadata blocks",
			   path, (unsigned long long)dsm->nr_blocks, (unsigned long long)limit);
	if (dsm->nr_allocated > dsm->nr_blocks)
		return BAD("%s: block 0: data space map has %llu of %llu blocks allocated",
			   path, (unsigned long long)dsm->nr_allocated, (unsigned long long)dsm->nr_blocks);
	if (msm->nr_allocated > msm->nr_blocks)
		return BAD("%s: block 0: metadata space map has %llu of %llu blocks allocated",
			   path, (unsigned long long)msm->nr_allocated, (unsigned long long)msm->nr_blocks);
	return 0;
}

int tm_superblock_validate_snapshot(const void *block, uint64_t location,
				    const struct tm_superblock *live, const char *path,
				    struct tm_superblock *sb, struct dmr_err *err)
{
	tm_superblock_decode(block, location, sb);
	int r = validate_common(block, location, path, sb, err);
	if (r)
		return r;
	unsigned long long loc = (unsigned long long)location;
	uint64_t limit = live->metadata_sm.nr_blocks;
	if (sb->data_mapping_root == 0 || sb->data_mapping_root >= limit ||
	    sb->device_details_root == 0 || sb->device_details_root >= limit)
		return BAD("%s: block %llu: metadata snapshot roots %llu/%llu are outside the metadata (%llu blocks)",
			   path, loc, (unsigned long long)sb->data_mapping_root,
			   (unsigned long long)sb->device_details_root, (unsigned long long)limit);
	if (sb->held_root != 0)
		return BAD("%s: block %llu: metadata snapshot itself holds a snapshot (block %llu)",
			   path, loc, (unsigned long long)sb->held_root);
	if (sb->data_block_size != live->data_block_size)
		return BAD("%s: block %llu: metadata snapshot data block size %u differs from the pool's %u",
			   path, loc, sb->data_block_size, live->data_block_size);
	return 0;
}
