#include "config.h"
#include "thinmeta/btree.h"
#include "thinmeta/blocksrc.h"
#include "thinmeta/crc32c.h"
#include "util/grow.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Nodes per read batch; two batches are in flight at once (the next one is
 * read while the current one is visited): 4 MiB whatever the tree size. */
#define WALK_CHUNK 512u

int tm_node_check(const void *buf, uint64_t block, uint32_t leaf_value_size,
		  struct tm_node *out, char *why, size_t whylen)
{
	struct tm_disk_node_header h;
	memcpy(&h, buf, sizeof(h));
	uint32_t flags = le32toh(h.flags);
	uint64_t blocknr = le64toh(h.blocknr);
	uint32_t nr = le32toh(h.nr_entries);
	uint32_t max = le32toh(h.max_entries);
	uint32_t vs = le32toh(h.value_size);

	if (!tm_block_csum_ok(buf, TM_SALT_BTREE_NODE)) {
		snprintf(why, whylen, "bad checksum in btree node");
		return DMR_ECORRUPT;
	}
	if (blocknr != block) {
		snprintf(why, whylen, "btree node says it is block %llu", (unsigned long long)blocknr);
		return DMR_ECORRUPT;
	}
	if (flags != TM_NODE_INTERNAL && flags != TM_NODE_LEAF) {
		snprintf(why, whylen, "btree node flags 0x%x are neither internal nor leaf", flags);
		return DMR_ECORRUPT;
	}
	uint32_t want_vs = flags == TM_NODE_INTERNAL ? 8u : leaf_value_size;
	if (vs != want_vs) {
		snprintf(why, whylen, "%s node value size %u, expected %u",
			 flags == TM_NODE_INTERNAL ? "internal" : "leaf", vs, want_vs);
		return DMR_ECORRUPT;
	}
	if (max != tm_node_max_entries(vs)) {
		snprintf(why, whylen, "btree node max_entries %u, expected %u for value size %u",
			 max, tm_node_max_entries(vs), vs);
		return DMR_ECORRUPT;
	}
	if (nr > max) {
		snprintf(why, whylen, "btree node has %u entries, more than its max %u", nr, max);
		return DMR_ECORRUPT;
	}
	if (flags == TM_NODE_INTERNAL && nr == 0) {
		snprintf(why, whylen, "internal btree node has no entries");
		return DMR_ECORRUPT;
	}
	const unsigned char *keys = (const unsigned char *)buf + sizeof(h);
	for (uint32_t i = 1; i < nr; i++) {
		uint64_t a = tm_le64(keys + 8u * (i - 1)), b = tm_le64(keys + 8u * i);
		if (a >= b) {
			snprintf(why, whylen, "btree node keys out of order at entry %u (%llu then %llu)",
				 i, (unsigned long long)a, (unsigned long long)b);
			return DMR_ECORRUPT;
		}
	}
	out->block = block;
	out->flags = flags;
	out->nr_entries = nr;
	out->max_entries = max;
	out->value_size = vs;
	out->keys = keys;
	out->values = keys + 8u * max;
	return 0;
}

struct walk_entry {
	uint64_t block;
	uint64_t lo, hi; /* key range allowed by the parents; hi exclusive, UINT64_MAX = open */
	size_t root;
	int depth; /* within its own tree, 0 = root */
};

struct level {
	struct walk_entry *e;
	size_t n, cap;
};

static int level_push(struct level *l, struct walk_entry we)
{
	struct walk_entry *e = dmr_grow(l->e, &l->cap, l->n, sizeof(*e));
	if (!e)
		return -1;
	l->e = e;
	l->e[l->n++] = we;
	return 0;
}

static int cmp_entry_block(const void *a, const void *b)
{
	const struct walk_entry *x = a, *y = b;
	return x->block < y->block ? -1 : x->block > y->block;
}

static void report(const struct tm_btree_visitor *v, const struct walk_entry *we, int depth,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void report(const struct tm_btree_visitor *v, const struct walk_entry *we, int depth,
		   const char *fmt, ...)
{
	if (!v->damage)
		return;
	struct tm_damage d = {
		.root_index = we->root, .lo = we->lo, .hi = we->hi, .block = we->block, .depth = depth,
	};
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d.reason, sizeof(d.reason), fmt, ap);
	va_end(ap);
	v->damage(v->ctx, &d);
}

struct walk {
	const struct tm_btree_visitor *v;
	signed char *leaf_depth; /* per root: depth of its first valid leaf, -1 before */
	struct level next;
};

/* Validates one read node and dispatches it. Returns <0 to stop. */
static int visit(struct walk *w, const struct walk_entry *we, const void *buf, int status, uint64_t limit)
{
	int depth = we->depth;
	const struct tm_btree_visitor *v = w->v;
	struct tm_node n;
	char why[200];
	if (status == DMR_ECORRUPT) {
		report(v, we, depth, "block %llu is beyond the end of the metadata (%llu blocks)",
		       (unsigned long long)we->block, (unsigned long long)limit);
		return 0;
	}
	if (status) {
		report(v, we, depth, "read error");
		return 0;
	}
	if (tm_node_check(buf, we->block, v->value_size, &n, why, sizeof(why))) {
		report(v, we, depth, "%s", why);
		return 0;
	}
	if (n.nr_entries > 0) {
		uint64_t first = tm_node_key(&n, 0), last = tm_node_key(&n, n.nr_entries - 1);
		if (first < we->lo || (we->hi != UINT64_MAX && last >= we->hi)) {
			report(v, we, depth, "btree node keys %llu..%llu outside the range %llu..%llu its parent gives",
			       (unsigned long long)first, (unsigned long long)last,
			       (unsigned long long)we->lo, (unsigned long long)we->hi);
			return 0;
		}
	}
	int is_leaf = n.flags == TM_NODE_LEAF;
	/* All leaves of a btree sit at one depth. */
	int ld = w->leaf_depth[we->root];
	if (ld >= 0 && (is_leaf ? depth != ld : depth >= ld)) {
		report(v, we, depth, "unbalanced btree: %s node at depth %d, leaves are at depth %d",
		       is_leaf ? "leaf" : "internal", depth, ld);
		return 0;
	}
	if (v->node)
		v->node(v->ctx, we->root, &n, depth);
	if (is_leaf) {
		w->leaf_depth[we->root] = (signed char)depth;
		return v->leaf ? v->leaf(v->ctx, we->root, &n, we->lo, we->hi) : 0;
	}
	if (depth + 1 >= TM_BTREE_MAX_DEPTH) {
		report(v, we, depth, "btree deeper than %d levels: a cycle?", TM_BTREE_MAX_DEPTH);
		return 0;
	}
	for (uint32_t i = 0; i < n.nr_entries; i++) {
		struct walk_entry c = {
			.block = tm_node_value64(&n, i),
			.lo = tm_node_key(&n, i),
			.hi = i + 1 < n.nr_entries ? tm_node_key(&n, i + 1) : we->hi,
			.root = we->root,
			.depth = depth + 1,
		};
		if (c.block == we->block) {
			report(v, &c, depth + 1, "btree node %llu points at itself", (unsigned long long)c.block);
			continue;
		}
		if (c.block == 0) {
			report(v, &c, depth + 1, "btree node %llu points at the superblock", (unsigned long long)we->block);
			continue;
		}
		if (level_push(&w->next, c))
			return DMR_ENOMEM;
	}
	return 0;
}

/* Double-buffered reading of one level. */
struct walk_io {
	struct tm_blocksrc *bs;
	uint64_t limit;
	void *bufs[2];
	uint64_t *blocks[2];
	int *status[2];
	struct tm_read_batch *batch[2];
};

static int walk_io_init(struct walk_io *io, struct tm_blocksrc *bs, uint64_t limit)
{
	io->bs = bs;
	io->limit = limit;
	for (int i = 0; i < 2; i++) {
		io->bufs[i] = tm_block_alloc(WALK_CHUNK);
		io->blocks[i] = malloc(WALK_CHUNK * sizeof(*io->blocks[i]));
		io->status[i] = malloc(WALK_CHUNK * sizeof(*io->status[i]));
		io->batch[i] = tm_read_batch_new(bs);
		if (!io->bufs[i] || !io->blocks[i] || !io->status[i] || !io->batch[i])
			return DMR_ENOMEM;
	}
	return 0;
}

static void walk_io_free(struct walk_io *io)
{
	for (int i = 0; i < 2; i++) {
		/* Reap reads still in flight before their buffers go. */
		tm_read_batch_free(io->batch[i]);
		free(io->bufs[i]);
		free(io->blocks[i]);
		free(io->status[i]);
	}
}

static int start_chunk(struct walk_io *io, int slot, const struct walk_entry *e, size_t cnt, struct dmr_err *err)
{
	for (size_t i = 0; i < cnt; i++) {
		uint64_t b = e[i].block;
		/* Out-of-range blocks are reported, not read. */
		io->blocks[slot][i] = b < io->limit ? b : UINT64_MAX;
	}
	return tm_read_batch_start(io->batch[slot], io->blocks[slot], cnt, io->bufs[slot], io->status[slot], err);
}

/* Reads the blocks of entries e[0..n) in chunks, the next chunk in flight
 * while fn visits the current one with its buffer and read status. */
static int read_level(struct walk_io *io, const struct walk_entry *e, size_t n,
		      int (*fn)(void *ctx, const struct walk_entry *we, const void *buf, int status),
		      void *ctx, struct dmr_err *err)
{
	size_t nchunks = (n + WALK_CHUNK - 1) / WALK_CHUNK;
	int r = 0;
	if (nchunks > 0)
		r = start_chunk(io, 0, e, n < WALK_CHUNK ? n : WALK_CHUNK, err);
	for (size_t k = 0; k < nchunks && !r; k++) {
		int slot = (int)(k % 2);
		size_t off = k * WALK_CHUNK;
		size_t cnt = n - off < WALK_CHUNK ? n - off : WALK_CHUNK;
		if (k + 1 < nchunks) {
			size_t noff = off + WALK_CHUNK;
			r = start_chunk(io, 1 - slot, e + noff, n - noff < WALK_CHUNK ? n - noff : WALK_CHUNK, err);
			if (r)
				break;
		}
		r = tm_read_batch_finish(io->batch[slot], err);
		for (size_t i = 0; i < cnt && !r; i++)
			r = fn(ctx, &e[off + i], (char *)io->bufs[slot] + i * TM_BLOCK_SIZE,
			       io->blocks[slot][i] == UINT64_MAX ? DMR_ECORRUPT : io->status[slot][i]);
	}
	return r;
}

struct walk_level_ctx {
	struct walk *w;
	uint64_t limit;
};

static int visit_cb(void *vctx, const struct walk_entry *we, const void *buf, int status)
{
	struct walk_level_ctx *c = vctx;
	return visit(c->w, we, buf, status, c->limit);
}

/* Depth probe: follows each tree's leftmost path to find its depth. */
struct probe_ctx {
	uint32_t value_size;
	signed char *depth;
	struct level *next;
};

static int probe_cb(void *vctx, const struct walk_entry *we, const void *buf, int status)
{
	struct probe_ctx *c = vctx;
	struct tm_node n;
	char why[200];
	c->depth[we->root] = (signed char)we->depth;
	if (status || tm_node_check(buf, we->block, c->value_size, &n, why, sizeof(why)) ||
	    n.flags == TM_NODE_LEAF || we->depth + 1 >= TM_BTREE_MAX_DEPTH)
		return 0;
	struct walk_entry child = { .block = tm_node_value64(&n, 0), .root = we->root, .depth = we->depth + 1 };
	return level_push(c->next, child) ? DMR_ENOMEM : 0;
}

int tm_btree_walk(struct tm_blocksrc *bs, uint64_t limit, const uint64_t *roots, size_t nroots,
		  const struct tm_btree_visitor *v, struct dmr_err *err)
{
	struct level cur = { 0 }, merged = { 0 };
	struct walk w = { .v = v, .leaf_depth = malloc(nroots ? nroots : 1) };
	signed char *start = calloc(nroots ? nroots : 1, 1);
	struct walk_io io = { 0 };
	int r = walk_io_init(&io, bs, limit), last_start = 0;
	if (r || !w.leaf_depth || !start) {
		r = DMR_ENOMEM;
		goto out;
	}
	memset(w.leaf_depth, -1, nroots);

	if (v->aligned && !v->unordered && nroots > 1) {
		/* Start shallow trees late so every tree reaches its leaves at
		 * the same level: the leaf level then comes in root order,
		 * read in large batches across trees. */
		struct probe_ctx pc = { .value_size = v->value_size, .depth = start, .next = &w.next };
		for (size_t i = 0; i < nroots; i++)
			if (level_push(&cur, (struct walk_entry){ .block = roots[i], .root = i })) {
				r = DMR_ENOMEM;
				goto out;
			}
		while (cur.n > 0) {
			r = read_level(&io, cur.e, cur.n, probe_cb, &pc, err);
			if (r)
				goto out;
			struct level t = cur;
			cur = w.next;
			w.next = t;
			w.next.n = 0;
		}
		for (size_t i = 0; i < nroots; i++)
			if (start[i] > last_start)
				last_start = start[i];
		for (size_t i = 0; i < nroots; i++)
			start[i] = (signed char)(last_start - start[i]);
	}

	struct walk_level_ctx lc = { .w = &w, .limit = limit };
	for (int level = 0; cur.n > 0 || level <= last_start; level++) {
		/* Merge the roots that start at this level, keeping root order. */
		merged.n = 0;
		size_t j = 0;
		for (size_t i = 0; i < nroots; i++) {
			if (start[i] != level)
				continue;
			while (j < cur.n && cur.e[j].root < i)
				if (level_push(&merged, cur.e[j++])) {
					r = DMR_ENOMEM;
					goto out;
				}
			if (level_push(&merged, (struct walk_entry){ .block = roots[i], .hi = UINT64_MAX, .root = i })) {
				r = DMR_ENOMEM;
				goto out;
			}
		}
		while (j < cur.n)
			if (level_push(&merged, cur.e[j++])) {
				r = DMR_ENOMEM;
				goto out;
			}
		struct level t = cur;
		cur = merged;
		merged = t;
		if (v->unordered && cur.n > 1)
			qsort(cur.e, cur.n, sizeof(*cur.e), cmp_entry_block);
		r = read_level(&io, cur.e, cur.n, visit_cb, &lc, err);
		if (r)
			goto out;
		t = cur;
		cur = w.next;
		w.next = t;
		w.next.n = 0;
	}
out:
	if (r == DMR_ENOMEM)
		dmr_err_set(err, r, "%s: out of memory walking btrees", tm_blocksrc_path(bs));
	free(cur.e);
	free(merged.e);
	free(w.next.e);
	walk_io_free(&io);
	free(w.leaf_depth);
	free(start);
	return r;
}
