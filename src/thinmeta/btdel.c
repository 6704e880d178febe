#include "config.h"
#include "thinmeta/btdel.h"
#include "thinmeta/blocksrc.h"
#include "util/grow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Nodes read per batch (1 MiB). */
#define DEL_CHUNK 256u

/* Every device's tree, reached through a top-level leaf. */
static const struct tm_del_tree bottom_tree = {
	.name = "mappings", .value_size = 8, .values = TM_DEL_DATA_BLOCKS,
};

struct del_item {
	uint64_t block;
	uint64_t parent; /* the node pointing here; 0 for a root */
	uint64_t dev;    /* the device, for a device's tree */
	const struct tm_del_tree *tree;
	int depth;       /* in its own tree, 0 = root */
};

struct del_list {
	struct del_item *e;
	size_t n, cap;
};

struct del {
	struct tm_pool *p;
	struct tm_refcounts *rc;
	struct del_list cur, next;
	unsigned char *bufs;
	uint64_t blocks[DEL_CHUNK];
	int status[DEL_CHUNK];
};

static int push(struct del_list *l, struct del_item it)
{
	struct del_item *e = dmr_grow(l->e, &l->cap, l->n, sizeof(*e));
	if (!e)
		return DMR_ENOMEM;
	l->e = e;
	l->e[l->n++] = it;
	return 0;
}

/* "device details", or "device 7 mappings". */
static const char *tree_name(const struct del_item *it, char *buf, size_t len)
{
	if (it->tree != &bottom_tree)
		return it->tree->name;
	snprintf(buf, len, "device %llu %s", (unsigned long long)it->dev, it->tree->name);
	return buf;
}

static int meta_dec(struct tm_pool *p, struct tm_refcounts *rc, uint64_t block, uint64_t parent,
		    const char *what, struct dmr_err *err)
{
	if (block == 0 || block >= p->limit)
		return dmr_err_set(err, DMR_ECORRUPT, "%s: block %llu: %s points at block %llu, outside the metadata (1..%llu)",
				   p->path, (unsigned long long)parent, what, (unsigned long long)block,
				   (unsigned long long)(p->limit - 1));
	if (rc->meta[block] == 0)
		return dmr_err_set(err, DMR_ECORRUPT,
				   "%s: block %llu: %s: reference count would go below zero (more references than counted)",
				   p->path, (unsigned long long)block, what);
	rc->meta[block]--;
	return 0;
}

int tm_refcount_dec_meta(struct tm_pool *p, struct tm_refcounts *rc, uint64_t block, const char *what,
			 struct dmr_err *err)
{
	return meta_dec(p, rc, block, 0, what, err);
}

/* Releases a leaf's values. */
static int release_values(struct del *d, const struct del_item *it, const struct tm_node *n, struct dmr_err *err)
{
	struct tm_refcounts *rc = d->rc;
	for (uint32_t i = 0; i < n->nr_entries; i++) {
		if (it->tree->values == TM_DEL_DEVICE_ROOTS) {
			struct del_item c = { .block = tm_node_value64(n, i), .parent = it->block,
					      .dev = tm_node_key(n, i), .tree = &bottom_tree };
			if (push(&d->next, c))
				return DMR_ENOMEM;
		} else if (it->tree->values == TM_DEL_DATA_BLOCKS) {
			uint64_t db = tm_node_value64(n, i) >> TM_BLOCK_TIME_TIME_BITS;
			if (db >= rc->nr_data || rc->data[db] == 0)
				return dmr_err_set(err, DMR_ECORRUPT,
						   "%s: block %llu: device %llu maps virtual block %llu to data block %llu, %s",
						   d->p->path, (unsigned long long)it->block, (unsigned long long)it->dev,
						   (unsigned long long)tm_node_key(n, i), (unsigned long long)db,
						   db >= rc->nr_data ? "beyond the pool" : "whose reference count is already 0");
			rc->data[db]--;
		}
	}
	return 0;
}

/* A node whose count reached 0: validate it and release what it holds. */
static int release_node(struct del *d, const struct del_item *it, const void *buf, int status, struct dmr_err *err)
{
	char name[64], why[200];
	struct tm_node n;
	if (status)
		return dmr_err_set(err, status == DMR_ECORRUPT ? DMR_ECORRUPT : DMR_EIO, "%s: block %llu: %s: %s",
				   d->p->path, (unsigned long long)it->block, tree_name(it, name, sizeof(name)),
				   status == DMR_ECORRUPT ? "beyond the end of the file" : "read error");
	if (tm_node_check(buf, it->block, it->tree->value_size, &n, why, sizeof(why)))
		return dmr_err_set(err, DMR_ECORRUPT, "%s: block %llu: %s: %s", d->p->path,
				   (unsigned long long)it->block, tree_name(it, name, sizeof(name)), why);
	if (n.flags == TM_NODE_LEAF)
		return release_values(d, it, &n, err);
	if (it->depth + 1 >= TM_BTREE_MAX_DEPTH)
		return dmr_err_set(err, DMR_ECORRUPT, "%s: block %llu: %s deeper than %d levels: a cycle?", d->p->path,
				   (unsigned long long)it->block, tree_name(it, name, sizeof(name)), TM_BTREE_MAX_DEPTH);
	for (uint32_t i = 0; i < n.nr_entries; i++) {
		struct del_item c = *it;
		c.block = tm_node_value64(&n, i);
		c.parent = it->block;
		c.depth = it->depth + 1;
		if (push(&d->next, c))
			return DMR_ENOMEM;
	}
	return 0;
}

static int cmp_item_block(const void *a, const void *b)
{
	const struct del_item *x = a, *y = b;
	return x->block < y->block ? -1 : x->block > y->block;
}

/* Reads the nodes of items[0..n) (sorted by block) and releases each. */
static int release_nodes(struct del *d, const struct del_item *items, size_t n, struct dmr_err *err)
{
	for (size_t off = 0; off < n; off += DEL_CHUNK) {
		size_t cnt = n - off < DEL_CHUNK ? n - off : DEL_CHUNK;
		for (size_t i = 0; i < cnt; i++)
			d->blocks[i] = items[off + i].block;
		int r = tm_blocksrc_read_many(d->p->bs, d->blocks, cnt, d->bufs, d->status, err);
		for (size_t i = 0; i < cnt && !r; i++)
			r = release_node(d, &items[off + i], d->bufs + i * TM_BLOCK_SIZE, d->status[i], err);
		if (r)
			return r;
	}
	return 0;
}

/* One level: every reference in cur is released; the nodes that are no
 * longer referenced are read and what they hold goes into next. */
static int del_level(struct del *d, struct dmr_err *err)
{
	struct del_list *cur = &d->cur;
	size_t freed = 0;
	char name[64];
	for (size_t i = 0; i < cur->n; i++) {
		const struct del_item *it = &cur->e[i];
		int r = meta_dec(d->p, d->rc, it->block, it->parent, tree_name(it, name, sizeof(name)), err);
		if (r)
			return r;
		if (d->rc->meta[it->block] == 0)
			cur->e[freed++] = *it;
	}
	qsort(cur->e, freed, sizeof(*cur->e), cmp_item_block);
	return release_nodes(d, cur->e, freed, err);
}

int tm_btree_del(struct tm_pool *p, struct tm_refcounts *rc, const struct tm_del_tree *trees, size_t n,
		 struct dmr_err *err)
{
	struct del d = { .p = p, .rc = rc, .bufs = tm_block_alloc(DEL_CHUNK) };
	int r = d.bufs ? 0 : DMR_ENOMEM;
	for (size_t i = 0; i < n && !r; i++)
		r = push(&d.cur, (struct del_item){ .block = trees[i].root, .tree = &trees[i] });
	while (!r && d.cur.n > 0) {
		r = del_level(&d, err);
		struct del_list t = d.cur;
		d.cur = d.next;
		d.next = t;
		d.next.n = 0;
	}
	if (r == DMR_ENOMEM)
		dmr_err_set(err, r, "%s: out of memory deleting btrees", p->path);
	free(d.bufs);
	free(d.cur.e);
	free(d.next.e);
	return r;
}
