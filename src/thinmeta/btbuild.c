#include "config.h"
#include "thinmeta/btbuild.h"
#include "thinmeta/crc32c.h"
#include "thinmeta/ondisk.h"

#include <stdlib.h>
#include <string.h>

void tm_node_write(void *buf, uint64_t block, uint32_t flags, uint32_t value_size, uint32_t nr,
		   const uint64_t *keys, const void *values)
{
	unsigned char *p = buf;
	uint32_t max = tm_node_max_entries(value_size);
	struct tm_disk_node_header h = {
		.flags = htole32(flags),
		.blocknr = htole64(block),
		.nr_entries = htole32(nr),
		.max_entries = htole32(max),
		.value_size = htole32(value_size),
	};
	memset(p, 0, TM_BLOCK_SIZE);
	memcpy(p, &h, sizeof(h));
	for (uint32_t i = 0; i < nr; i++)
		tm_put_le64(p + sizeof(h) + 8u * i, keys[i]);
	if (nr)
		memcpy(p + sizeof(h) + 8u * max, values, (size_t)nr * value_size);
	tm_block_csum_set(p, TM_SALT_BTREE_NODE);
}

/* The fewest nodes of at most max entries that hold n (one for none). */
static uint64_t level_nodes(uint64_t n, uint32_t max)
{
	return n ? (n + max - 1) / max : 1;
}

uint64_t tm_btbuild_nr_nodes(uint64_t n, uint32_t value_size)
{
	uint64_t level = level_nodes(n, tm_node_max_entries(value_size)), total = level;
	while (level > 1) {
		level = level_nodes(level, tm_node_max_entries(8));
		total += level;
	}
	return total;
}

/* Writes one level: n entries spread evenly over the fewest nodes; node i's
 * first key and block go to out_keys[i] and out_vals[i] (little-endian).
 * The outputs may overlay the inputs (node i is written before out[i], and
 * no later node reads below its own first entry, which is at least i). */
static int build_level(const struct tm_blockalloc *a, uint32_t flags, uint32_t vs, size_t n,
		       const uint64_t *keys, const unsigned char *values, uint64_t *out_keys,
		       unsigned char *out_vals, size_t *out_n, struct dmr_err *err)
{
	size_t nodes = (size_t)level_nodes(n, tm_node_max_entries(vs));
	size_t base = n / nodes, extra = n % nodes, first = 0;
	for (size_t i = 0; i < nodes; i++) {
		size_t cnt = base + (i < extra);
		uint64_t blk;
		unsigned char *buf = a->next(a->ctx, &blk);
		if (!buf)
			return dmr_err_set(err, DMR_EUSAGE, "building a btree: no more new blocks allocated");
		/* An empty tree's one leaf may come with NULL arrays. */
		uint64_t first_key = cnt ? keys[first] : 0;
		tm_node_write(buf, blk, flags, vs, (uint32_t)cnt, cnt ? keys + first : NULL,
			      cnt ? values + first * vs : NULL);
		out_keys[i] = first_key;
		tm_put_le64(out_vals + 8u * i, blk);
		first += cnt;
	}
	*out_n = nodes;
	return 0;
}

int tm_btbuild(const struct tm_blockalloc *a, uint32_t value_size, size_t n, const uint64_t *keys,
	       const void *values, uint64_t *root, struct dmr_err *err)
{
	size_t nl = (size_t)level_nodes(n, tm_node_max_entries(value_size));
	uint64_t *lkeys = malloc(nl * sizeof(*lkeys));
	unsigned char *lvals = malloc(nl * 8u);
	int r = 0;
	if (!lkeys || !lvals) {
		r = dmr_err_set(err, DMR_ENOMEM, "building a btree of %zu entries: out of memory", n);
		goto out;
	}
	r = build_level(a, TM_NODE_LEAF, value_size, n, keys, values, lkeys, lvals, &nl, err);
	while (!r && nl > 1)
		r = build_level(a, TM_NODE_INTERNAL, 8, nl, lkeys, lvals, lkeys, lvals, &nl, err);
	if (!r)
		*root = tm_le64(lvals);
out:
	free(lkeys);
	free(lvals);
	return r;
}
