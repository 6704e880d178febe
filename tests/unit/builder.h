/* A builder of small, valid dm-thin metadata images in memory, for unit
 * tests: superblock, device details tree, top-level mapping tree, one
 * bottom-level tree per device, data space map (index btree + bitmaps),
 * metadata space map (index block + bitmap) and overflow ref-count trees.
 *
 * Usage:
 *   struct bld b;
 *   bld_init(&b, 64, 1000);           64 metadata blocks, 1000 data blocks
 *   bld_device(&b, 1, maps, n, 0, 0); device 1 with n mappings
 *   bld_finish(&b);                   space maps, trees, superblock
 *   ... corrupt blocks, bld_reseal_*() ...
 *   bld_write_tmp(&b, path);          a temp file to open (unlink it after)
 *
 * Block layout: 0 superblock, 1 metadata sm index, 2.. metadata bitmaps,
 * then data bitmaps, then everything else allocated in call order
 * (bld_alloc), the space-map trees last (in bld_finish). The builder keeps a
 * reference count for every metadata and data block and writes the space
 * maps from them, so a finished image is consistent. */
#ifndef DMR_TESTS_UNIT_BUILDER_H
#define DMR_TESTS_UNIT_BUILDER_H

#include <stddef.h>
#include <stdint.h>

#include "thinmeta/ondisk.h"

#define BLD_MAX_BITMAPS 256
#define BLD_MAX_DEVS 256

struct bld_map {
	uint64_t vblock;
	uint64_t dblock;
	uint32_t time;
};

struct bld_dev {
	uint64_t id;
	uint64_t root;   /* bottom-level root, 0 when not in the top level */
	int in_details;
	struct tm_disk_device_details details; /* host byte order */
};

struct bld {
	unsigned char *img;       /* nr_blocks * 4096 bytes */
	uint64_t nr_blocks;       /* metadata blocks (= metadata sm nr_blocks) */
	uint64_t next;            /* next block bld_alloc hands out */
	uint32_t *meta_count;     /* per metadata block */
	uint64_t nr_data_blocks;
	uint32_t *data_count;     /* per data block */

	/* Superblock fields; bld_finish writes them. */
	uint32_t time;
	uint64_t trans_id;
	uint32_t data_block_size; /* sectors */
	uint32_t version;

	/* Where things are. */
	uint64_t meta_index;                    /* metadata sm index block */
	uint64_t meta_bitmap[BLD_MAX_BITMAPS];
	uint64_t nr_meta_bitmaps;
	uint64_t data_bitmap[BLD_MAX_BITMAPS];
	uint64_t nr_data_bitmaps;
	uint64_t data_index_root;  /* set by bld_finish */
	uint64_t data_ref_root;    /* set by bld_finish */
	uint64_t meta_ref_root;    /* set by bld_finish */
	uint64_t details_root;     /* set by bld_finish */
	uint64_t top_root;         /* set by bld_finish */
	uint64_t held_root;        /* bld_reserve_snapshot */

	struct bld_dev dev[BLD_MAX_DEVS];
	size_t nr_devs;
};

/* Allocates a zeroed image. Aborts the test on failure (malloc). */
void bld_init(struct bld *b, uint64_t nr_meta_blocks, uint64_t nr_data_blocks);
void bld_free(struct bld *b);

unsigned char *bld_block(struct bld *b, uint64_t n);

/* Takes the next free metadata block and counts one reference to it. */
uint64_t bld_alloc(struct bld *b);

/* Writes a btree node at block with the right max_entries for value_size
 * and a valid checksum. values holds nr * value_size bytes. Does not count
 * references. */
void bld_node(struct bld *b, uint64_t block, uint32_t flags, uint32_t value_size, uint32_t nr,
	      const uint64_t *keys, const void *values);
/* A leaf or internal node with u64 values (children, or mapping values). */
void bld_node64(struct bld *b, uint64_t block, uint32_t flags, uint32_t nr, const uint64_t *keys,
		const uint64_t *values);

/* Builds a btree of n (key, value) pairs, leaves holding at most leaf_fill
 * entries (0 = as many as fit) and internal nodes at most 252 entries;
 * allocates its nodes with bld_alloc. Returns the root. An empty tree is
 * one empty leaf. */
uint64_t bld_tree(struct bld *b, uint32_t value_size, size_t n, const uint64_t *keys, const void *values,
		  uint32_t leaf_fill);

/* Mapping value: data block << 24 | time. */
static inline uint64_t bld_block_time(uint64_t dblock, uint32_t time)
{
	return dblock << TM_BLOCK_TIME_TIME_BITS | time;
}

enum {
	BLD_NO_DETAILS = 1, /* the device is in the top level only */
	BLD_NO_MAPPING = 2, /* the device is in the details tree only */
};

/* Adds a device: builds its bottom-level tree (leaf_fill as bld_tree),
 * counts one data reference per mapping, and records its details
 * (mapped_blocks = n, creation and snapshotted time = b->time). Returns
 * the index in b->dev. */
size_t bld_device(struct bld *b, uint64_t id, const struct bld_map *maps, size_t n, uint32_t leaf_fill,
		  unsigned flags);

/* Trees built by hand, for sharing: a mapping leaf virtual v0+i -> data
 * d0+i (time 0) for i < n, counting one data reference per mapping; an
 * internal node over children[0..n) (keys read back from the children);
 * nleaves leaves of per mappings under one internal node. Each takes new
 * blocks with bld_alloc. */
uint64_t bld_leaf(struct bld *b, uint64_t v0, uint64_t d0, uint32_t n);
uint64_t bld_inode(struct bld *b, uint32_t n, const uint64_t *children);
uint64_t bld_subtree(struct bld *b, uint64_t v0, uint64_t d0, uint32_t nleaves, uint32_t per);
/* A device (details mapped_blocks = mapped) whose bottom-level tree the
 * test built. Every block bld_alloc hands out counts one parent: the test
 * adds the others of a shared root or node to b->meta_count. */
void bld_add_dev(struct bld *b, uint64_t id, uint64_t root, uint64_t mapped);

/* Devices first..first+n-1 mapping virtual 0..len-1 to data d0..: with a
 * leaf each (data counts n), or all on one leaf (its metadata count n;
 * returned). */
void bld_devs_own_leaves(struct bld *b, uint64_t first, uint32_t n, uint64_t d0, uint32_t len);
uint64_t bld_devs_shared_leaf(struct bld *b, uint64_t first, uint32_t n, uint64_t d0, uint32_t len);

/* Allocates a block for a metadata-snapshot copy of the superblock;
 * bld_finish writes it. */
uint64_t bld_reserve_snapshot(struct bld *b);

/* Builds the details and top-level trees, the data sm index btree and both
 * overflow trees, then writes every bitmap, the metadata index block and
 * the superblock (and the snapshot copy, if reserved). */
void bld_finish(struct bld *b);

/* The standard small pool used by most tests: 32 metadata blocks, 1024
 * data blocks of 128 sectors, time 1, trans_id 1, device 1 mapping virtual
 * 0..2 -> data 10..12 (time 0) and 5 -> 20 (time 1). */
void bld_standard(struct bld *b);

/* Recomputes the checksum of a block of the given type. */
void bld_reseal(struct bld *b, uint64_t block, uint32_t salt);
static inline void bld_reseal_node(struct bld *b, uint64_t block) { bld_reseal(b, block, TM_SALT_BTREE_NODE); }
static inline void bld_reseal_sb(struct bld *b) { bld_reseal(b, 0, TM_SALT_SUPERBLOCK); }

/* Reads and writes the superblock of block sbblock as a struct in host
 * byte order (the helpers convert; put reseals). */
void bld_sb_get(struct bld *b, uint64_t sbblock, struct tm_disk_superblock *sb);
void bld_sb_put(struct bld *b, uint64_t sbblock, const struct tm_disk_superblock *sb);
void bld_sm_root_get(const uint8_t raw[TM_SM_ROOT_SIZE], struct tm_disk_sm_root *r);
void bld_sm_root_put(uint8_t raw[TM_SM_ROOT_SIZE], const struct tm_disk_sm_root *r);

/* Sets entry i of the bitmap at block (count 0..3, the on-disk pair order)
 * and reseals it. */
void bld_bitmap_set(struct bld *b, uint64_t block, uint32_t i, unsigned count);

/* Writes the image to a new temp file under $TMPDIR (or /tmp) and stores
 * its name in path (at least 4096 bytes). Aborts the test on failure. */
void bld_write_tmp(const struct bld *b, char *path);
/* Writes the image into a temp file in dir; returns -1 if dir is unusable. */
int bld_write_tmp_in(const struct bld *b, const char *dir, char *path);
/* Writes only the first nr_blocks blocks (a truncated file). */
void bld_write_tmp_n(const struct bld *b, uint64_t nr_blocks, char *path);

#endif
