/* Persistent-data btrees: node validation and a level-at-a-time walker.
 *
 * The walker reads one tree level at a time, each batch in ascending block
 * order, validates every node (checksum, blocknr, flags, max_entries,
 * value_size, key order within the parent's key range), hands leaves to a
 * visitor and reports each damaged key range to it, then keeps going. Strict
 * key ranges plus a depth limit make cycles and shared-child bombs harmless:
 * a block can be valid in at most one key range per level. */
#ifndef DMR_THINMETA_BTREE_H
#define DMR_THINMETA_BTREE_H

#include <stddef.h>
#include <stdint.h>

#include "thinmeta/ondisk.h"
#include "util/err.h"

struct tm_blocksrc;

#define TM_BTREE_MAX_DEPTH 12

/* A validated node, pointing into its block buffer. */
struct tm_node {
	uint64_t block;
	uint32_t flags; /* TM_NODE_INTERNAL or TM_NODE_LEAF */
	uint32_t nr_entries;
	uint32_t max_entries;
	uint32_t value_size;
	const unsigned char *keys;
	const unsigned char *values;
};

static inline uint64_t tm_node_key(const struct tm_node *n, uint32_t i)
{
	return tm_le64(n->keys + 8u * i);
}

static inline const unsigned char *tm_node_value(const struct tm_node *n, uint32_t i)
{
	return n->values + (size_t)n->value_size * i;
}

static inline uint64_t tm_node_value64(const struct tm_node *n, uint32_t i)
{
	return tm_le64(n->values + 8u * i);
}

/* Validates the node in buf read from block: checksum, blocknr, flags,
 * value_size (8 for internal nodes, leaf_value_size for leaves),
 * max_entries, nr_entries, strictly ascending keys. On failure writes the
 * reason into why and returns DMR_ECORRUPT. */
int tm_node_check(const void *buf, uint64_t block, uint32_t leaf_value_size,
		  struct tm_node *out, char *why, size_t whylen);

struct tm_damage {
	size_t root_index; /* which of the walked roots */
	uint64_t lo, hi;   /* keys [lo, hi) lost; hi == UINT64_MAX means "to the end" */
	uint64_t block;    /* the bad block */
	int depth;         /* 0 = root */
	char reason[256];
};

struct tm_btree_visitor {
	uint32_t value_size; /* expected leaf value size */
	/* Leaves of each root come in ascending key order unless unordered is
	 * set, in which case each whole level is read in block order. */
	int unordered;
	/* Ordered walks of several roots: probe each tree's depth first and
	 * start shallow trees later, so all leaves come at one final level in
	 * root order and are read in large batches across trees. */
	int aligned;
	/* Called for every valid leaf; [lo, hi) is its key range from the
	 * parents. A negative return stops the walk and is returned. */
	int (*leaf)(void *ctx, size_t root_index, const struct tm_node *leaf, uint64_t lo, uint64_t hi);
	/* Optional: called for every valid node (internal and leaf), e.g. to
	 * count metadata references. */
	void (*node)(void *ctx, size_t root_index, const struct tm_node *node, int depth);
	/* Called for every damaged range; the walk goes on. */
	void (*damage)(void *ctx, const struct tm_damage *d);
	void *ctx;
};

/* Walks the trees rooted at roots[0..nroots). Blocks must be below limit
 * (the metadata size). Returns 0 when the walk finished (damage is reported
 * through the visitor), or a negative code for memory, or a visitor stop. */
int tm_btree_walk(struct tm_blocksrc *bs, uint64_t limit, const uint64_t *roots, size_t nroots,
		  const struct tm_btree_visitor *v, struct dmr_err *err);

#endif
