/* Writing persistent-data btree nodes, and bulk-building whole btrees from
 * sorted (key, value) pairs, as the rewrite engine replaces trees: each level
 * holds the fewest nodes that fit its entries, spread evenly, so every
 * non-root node is at least half full (the format wants a third). */
#ifndef DMR_THINMETA_BTBUILD_H
#define DMR_THINMETA_BTBUILD_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* Where new metadata blocks come from: next() hands out the next block
 * number and a zeroed 4 KiB buffer for its contents, or NULL when there are
 * no more blocks. */
struct tm_blockalloc {
	unsigned char *(*next)(void *ctx, uint64_t *block);
	void *ctx;
};

/* Fills buf (4 KiB, zeroed first) with a checksummed node at block: flags
 * TM_NODE_LEAF or TM_NODE_INTERNAL, max_entries for value_size, keys in
 * host order, values nr * value_size bytes already in disk (little-endian)
 * form. nr must not exceed tm_node_max_entries(value_size). */
void tm_node_write(void *buf, uint64_t block, uint32_t flags, uint32_t value_size, uint32_t nr,
		   const uint64_t *keys, const void *values);

/* Nodes a bulk-built tree of n entries takes (1 for the empty tree). */
uint64_t tm_btbuild_nr_nodes(uint64_t n, uint32_t value_size);

/* Builds a btree of the n pairs (keys strictly ascending, values in disk
 * form) with nodes from a: leaves first, then each internal level, taking
 * exactly tm_btbuild_nr_nodes(n, value_size) blocks. An empty tree is one
 * empty leaf. *root is its root block. DMR_ENOMEM, or DMR_EUSAGE when a
 * runs out of blocks. */
int tm_btbuild(const struct tm_blockalloc *a, uint32_t value_size, size_t n, const uint64_t *keys,
	       const void *values, uint64_t *root, struct dmr_err *err);

#endif
