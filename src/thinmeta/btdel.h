/* Releasing references in memory, the way the kernel does when it deletes
 * metadata (persistent-data dm_btree_del and the value types' dec): the
 * pool's reference counts are loaded into arrays, changed here, and written
 * out as new space maps by the caller. Only reads the pool. */
#ifndef DMR_THINMETA_BTDEL_H
#define DMR_THINMETA_BTDEL_H

#include <stddef.h>
#include <stdint.h>

#include "thinmeta/pool.h"
#include "util/err.h"

/* One count per metadata block and per data block. */
struct tm_refcounts {
	uint32_t *meta;
	uint64_t nr_meta;
	uint32_t *data;
	uint64_t nr_data;
};

/* What the leaf values of a tree reference. */
enum tm_del_values {
	TM_DEL_NO_REFS,      /* details, space map index and ref-count trees */
	TM_DEL_DEVICE_ROOTS, /* the top level: each value is a device's tree, deleted in turn */
	TM_DEL_DATA_BLOCKS,  /* a device's mappings: value >> 24 is a data block */
};

struct tm_del_tree {
	const char *name; /* for errors: "device details", "data space map index"... */
	uint64_t root;
	uint32_t value_size; /* of the leaves */
	enum tm_del_values values;
};

/* Deletes the trees trees[0..n) as dm_btree_del does: each node's count is
 * decremented; a node still referenced afterwards (shared with another
 * tree, a device or a held metadata snapshot) is left alone, and one that
 * reaches 0 is read, validated and its children's counts (internal) or its
 * values' references (leaf) released in turn. Nodes are read level by
 * level in block order. A count that would go below 0, a block outside the
 * metadata or the pool, a damaged node or a tree deeper than
 * TM_BTREE_MAX_DEPTH is DMR_ECORRUPT naming the file and block; counts
 * never go below 0, so cycles end there. */
int tm_btree_del(struct tm_pool *p, struct tm_refcounts *rc, const struct tm_del_tree *trees, size_t n,
		 struct dmr_err *err);

/* Releases one reference to a metadata block that is not a btree node (a
 * bitmap or index block); what names it in errors. */
int tm_refcount_dec_meta(struct tm_pool *p, struct tm_refcounts *rc, uint64_t block, const char *what,
			 struct dmr_err *err);

#endif
