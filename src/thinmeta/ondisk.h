/* The dm-thin metadata on-disk format (Linux drivers/md/dm-thin-metadata.c
 * and persistent-data/). Everything is little-endian; every structure here
 * is checked against the kernel's offsets with _Static_assert. */
#ifndef DMR_THINMETA_ONDISK_H
#define DMR_THINMETA_ONDISK_H

#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define TM_BLOCK_SIZE 4096u
#define TM_BLOCK_SECTORS 8u
#define TM_SUPERBLOCK_LOCATION 0u
#define TM_SUPERBLOCK_MAGIC 27022010ull

/* Checksum salts (XORed into the crc), one per block type. */
#define TM_SALT_SUPERBLOCK 160774u
#define TM_SALT_BTREE_NODE 121107u
#define TM_SALT_BITMAP 240779u
#define TM_SALT_INDEX 160478u

#define TM_SB_FLAG_NEEDS_CHECK 1u

/* Data block size limits in 512-byte sectors (64 KiB .. 1 GiB). */
#define TM_DATA_BLOCK_MIN_SECTORS 128u
#define TM_DATA_BLOCK_MAX_SECTORS 2097152u

/* The metadata space map has one index block of 255 entries. */
#define TM_MAX_METADATA_BITMAPS 255u
#define TM_ENTRIES_PER_BITMAP 16320u /* (4096 - 16) * 4 */
#define TM_MAX_METADATA_BLOCKS (TM_MAX_METADATA_BITMAPS * TM_ENTRIES_PER_BITMAP)

/* Mapping values: 40-bit data block, 24-bit time. */
#define TM_BLOCK_TIME_TIME_BITS 24u
#define TM_DATA_BLOCK_LIMIT (1ull << 40)

struct tm_disk_sm_root {
	uint64_t nr_blocks;
	uint64_t nr_allocated;
	uint64_t bitmap_root;
	uint64_t ref_count_root;
} __attribute__((packed));
_Static_assert(sizeof(struct tm_disk_sm_root) == 32, "sm root is 32 bytes");

#define TM_SM_ROOT_SIZE 128u

struct tm_disk_superblock {
	uint32_t csum;
	uint32_t flags;
	uint64_t blocknr;
	uint8_t uuid[16];
	uint64_t magic;
	uint32_t version;
	uint32_t time;
	uint64_t trans_id;
	uint64_t held_root;
	uint8_t data_space_map_root[TM_SM_ROOT_SIZE];
	uint8_t metadata_space_map_root[TM_SM_ROOT_SIZE];
	uint64_t data_mapping_root;
	uint64_t device_details_root;
	uint32_t data_block_size;
	uint32_t metadata_block_size;
	uint64_t metadata_nr_blocks;
	uint32_t compat_flags;
	uint32_t compat_ro_flags;
	uint32_t incompat_flags;
} __attribute__((packed));
_Static_assert(sizeof(struct tm_disk_superblock) == 364, "superblock is 364 bytes");
_Static_assert(offsetof(struct tm_disk_superblock, magic) == 32, "magic at 32");
_Static_assert(offsetof(struct tm_disk_superblock, held_root) == 56, "held_root at 56");
_Static_assert(offsetof(struct tm_disk_superblock, data_space_map_root) == 64, "data sm at 64");
_Static_assert(offsetof(struct tm_disk_superblock, metadata_space_map_root) == 192, "meta sm at 192");
_Static_assert(offsetof(struct tm_disk_superblock, data_mapping_root) == 320, "mapping root at 320");
_Static_assert(offsetof(struct tm_disk_superblock, data_block_size) == 336, "data block size at 336");
_Static_assert(offsetof(struct tm_disk_superblock, metadata_nr_blocks) == 344, "meta nr blocks at 344");
_Static_assert(offsetof(struct tm_disk_superblock, incompat_flags) == 360, "incompat at 360");

#define TM_NODE_INTERNAL 1u
#define TM_NODE_LEAF 2u

struct tm_disk_node_header {
	uint32_t csum;
	uint32_t flags;
	uint64_t blocknr;
	uint32_t nr_entries;
	uint32_t max_entries;
	uint32_t value_size;
	uint32_t padding;
} __attribute__((packed));
_Static_assert(sizeof(struct tm_disk_node_header) == 32, "node header is 32 bytes");

/* Values of the device details tree. */
struct tm_disk_device_details {
	uint64_t mapped_blocks;
	uint64_t transaction_id;
	uint32_t creation_time;
	uint32_t snapshotted_time;
} __attribute__((packed));
_Static_assert(sizeof(struct tm_disk_device_details) == 24, "device details are 24 bytes");

/* Values of the data space map's index btree, and entries of the metadata
 * space map's index block. */
struct tm_disk_index_entry {
	uint64_t blocknr;
	uint32_t nr_free;
	uint32_t none_free_before;
} __attribute__((packed));
_Static_assert(sizeof(struct tm_disk_index_entry) == 16, "index entry is 16 bytes");

struct tm_disk_bitmap_header {
	uint32_t csum;
	uint32_t not_used;
	uint64_t blocknr;
} __attribute__((packed));
_Static_assert(sizeof(struct tm_disk_bitmap_header) == 16, "bitmap header is 16 bytes");

struct tm_disk_metadata_index {
	uint32_t csum;
	uint32_t padding;
	uint64_t blocknr;
	struct tm_disk_index_entry index[TM_MAX_METADATA_BITMAPS];
} __attribute__((packed));
_Static_assert(sizeof(struct tm_disk_metadata_index) == TM_BLOCK_SIZE, "index block fills a block");

/* max_entries of a node with this value size: the largest multiple of 3 that
 * fits (the kernel's calc_max_entries). */
static inline uint32_t tm_node_max_entries(uint32_t value_size)
{
	uint32_t n = (TM_BLOCK_SIZE - (uint32_t)sizeof(struct tm_disk_node_header)) / (8u + value_size);
	return 3u * (n / 3u);
}

/* Little-endian loads from possibly unaligned memory. */
static inline uint64_t tm_le64(const void *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static inline uint32_t tm_le32(const void *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static inline void tm_put_le64(void *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

static inline void tm_put_le32(void *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

#endif
