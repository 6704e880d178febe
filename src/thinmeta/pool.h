/* A thin pool's metadata opened read-only: the superblock, the device
 * list (details tree joined with the top level of the mapping tree), and
 * walks of the bottom-level mapping trees with runs coalesced. */
#ifndef DMR_THINMETA_POOL_H
#define DMR_THINMETA_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "thinmeta/btree.h"
#include "thinmeta/superblock.h"
#include "util/err.h"

struct tm_blocksrc;

struct tm_pool {
	struct tm_blocksrc *bs;
	const char *path;
	struct tm_superblock sb; /* the live superblock */
	uint64_t file_blocks;
	uint64_t limit; /* node block numbers must be below this */
};

/* bsflags: TM_BS_* for the block source, and TM_POOL_ALLOW_SHORT to open a
 * metadata file shorter than its space map (the checker does). */
#define TM_POOL_ALLOW_SHORT 0x100u
int tm_pool_open(struct tm_pool **out, const char *path, unsigned bsflags, struct dmr_err *err);
void tm_pool_close(struct tm_pool *p);

/* Reads the metadata-snapshot superblock at location, or at the pool's
 * held root when location is 0. DMR_ENOENT when there is none. */
int tm_pool_read_snapshot(struct tm_pool *p, uint64_t location, struct tm_superblock *out,
			  struct dmr_err *err);

struct tm_device {
	uint64_t dev_id;
	uint64_t mapping_root; /* valid when in_mapping */
	int in_details;
	int in_mapping;
	uint64_t mapped_blocks;
	uint64_t transaction_id;
	uint32_t creation_time;
	uint32_t snapshotted_time;
};

struct tm_devlist {
	struct tm_device *dev; /* ascending dev_id */
	size_t n;
};

/* Damage found while reading; tree names the tree ("device details",
 * "mapping top level", "device 7 mappings", "data space map"...). */
typedef void (*tm_damage_fn)(void *ctx, const char *tree, const struct tm_damage *d);

/* Reads the devices of the trees sb points at (the live superblock or a
 * snapshot). Devices missing from one of the two trees are kept, with
 * in_details or in_mapping clear. */
int tm_devices_read(struct tm_pool *p, const struct tm_superblock *sb, struct tm_devlist *out,
		    tm_damage_fn damage, void *ctx, struct dmr_err *err);
void tm_devlist_free(struct tm_devlist *l);
const struct tm_device *tm_devlist_find(const struct tm_devlist *l, uint64_t dev_id);

/* A run of mappings: virtual blocks [vbegin, vbegin+len) map to data blocks
 * [dbegin, dbegin+len), all written at the same time. */
struct tm_run {
	uint64_t vbegin;
	uint64_t dbegin;
	uint64_t len;
	uint32_t time;
};

struct tm_mapping_visitor {
	/* In ordered walks, runs of each device come in ascending virtual
	 * order, coalesced across leaves; devices one after the other. */
	int unordered;
	/* Ordered walks: batch the leaf reads across devices (see btree.h). */
	int aligned;
	int (*run)(void *ctx, size_t dev_index, const struct tm_run *run);
	/* Optional: every valid bottom-level node (for sharing analysis). */
	void (*node)(void *ctx, size_t dev_index, const struct tm_node *node, int depth);
	void (*damage)(void *ctx, size_t dev_index, const struct tm_damage *d);
	void *ctx;
};

/* Walks the bottom-level trees roots[0..n). Mappings to data blocks at or
 * beyond nr_data_blocks are reported as damage and skipped. */
int tm_mappings_walk(struct tm_pool *p, const uint64_t *roots, size_t n, uint64_t nr_data_blocks,
		     const struct tm_mapping_visitor *v, struct dmr_err *err);

/* Looks up one virtual block in the bottom-level tree at root: 0 with
 * *data_block and *time set, DMR_ENOENT when it is not mapped,
 * DMR_ECORRUPT (with the node named in err) on damage. */
int tm_mapping_lookup(struct tm_pool *p, uint64_t root, uint64_t vblock, uint64_t *data_block, uint32_t *time,
		      struct dmr_err *err);

#endif
