/* The thin-pool superblock: decode and validate block 0 (or a held
 * metadata-snapshot copy of it). */
#ifndef DMR_THINMETA_SUPERBLOCK_H
#define DMR_THINMETA_SUPERBLOCK_H

#include <stdint.h>

#include "util/err.h"

struct tm_sm_root {
	uint64_t nr_blocks;
	uint64_t nr_allocated;
	uint64_t bitmap_root;
	uint64_t ref_count_root;
};

struct tm_superblock {
	uint64_t location; /* where it was read: 0, or the held root */
	uint32_t csum;
	uint32_t flags;
	uint64_t blocknr;
	uint8_t uuid[16];
	uint64_t magic;
	uint32_t version;
	uint32_t time;
	uint64_t trans_id;
	uint64_t held_root;
	struct tm_sm_root data_sm;
	struct tm_sm_root metadata_sm;
	uint64_t data_mapping_root;
	uint64_t device_details_root;
	uint32_t data_block_size;     /* sectors */
	uint32_t metadata_block_size; /* sectors */
	uint64_t metadata_nr_blocks;
	uint32_t compat_flags;
	uint32_t compat_ro_flags;
	uint32_t incompat_flags;
};

/* Decodes a 4 KiB block without validating anything. */
void tm_superblock_decode(const void *block, uint64_t location, struct tm_superblock *sb);

/* Validates a live superblock read at block 0 of a file of file_blocks
 * blocks: checksum, magic, blocknr, block sizes, feature flags, and every
 * root and count against the file's size. path names the file in errors. */
int tm_superblock_validate(const void *block, uint64_t file_blocks, const char *path,
			   struct tm_superblock *sb, struct dmr_err *err);

/* The same; with TM_SB_ALLOW_SHORT a file shorter than the metadata space
 * map is accepted (for the checker, which reports it and checks the rest;
 * node block numbers are then bounded by the file). */
#define TM_SB_ALLOW_SHORT 1u
int tm_superblock_validate_flags(const void *block, uint64_t file_blocks, const char *path, unsigned flags,
				 struct tm_superblock *sb, struct dmr_err *err);

/* Validates a metadata-snapshot copy read at location, within a pool whose
 * live superblock is live (its space maps are zero by design). */
int tm_superblock_validate_snapshot(const void *block, uint64_t location,
				    const struct tm_superblock *live, const char *path,
				    struct tm_superblock *sb, struct dmr_err *err);

/* Blocks a node may live in: within the file and the metadata space map. */
uint64_t tm_superblock_meta_limit(const struct tm_superblock *sb, uint64_t file_blocks);

#endif
