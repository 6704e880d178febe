#include "config.h"
#include "thinmeta/pool.h"
#include "thinmeta/blocksrc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tm_pool_open(struct tm_pool **out, const char *path, unsigned bsflags, struct dmr_err *err)
{
	struct tm_pool *p = calloc(1, sizeof(*p));
	if (!p)
		return dmr_err_set(err, DMR_ENOMEM, "%s: out of memory", path);
	int r = tm_blocksrc_open(&p->bs, path, bsflags & ~TM_POOL_ALLOW_SHORT, err);
	if (r) {
		free(p);
		return r;
	}
	p->path = tm_blocksrc_path(p->bs);
	p->file_blocks = tm_blocksrc_nr_blocks(p->bs);
	if (p->file_blocks == 0) {
		r = dmr_err_set(err, DMR_ECORRUPT, "%s: too small to hold thin-pool metadata (%s)", path,
				"less than one 4 KiB block");
		goto fail;
	}
	unsigned char *blk = tm_block_alloc(1);
	if (!blk) {
		r = dmr_err_set(err, DMR_ENOMEM, "%s: out of memory", path);
		goto fail;
	}
	r = tm_blocksrc_read(p->bs, 0, blk, err);
	if (!r)
		r = tm_superblock_validate_flags(blk, p->file_blocks, p->path,
						 bsflags & TM_POOL_ALLOW_SHORT ? TM_SB_ALLOW_SHORT : 0, &p->sb, err);
	free(blk);
	if (r)
		goto fail;
	p->limit = tm_superblock_meta_limit(&p->sb, p->file_blocks);
	*out = p;
	return 0;
fail:
	tm_pool_close(p);
	return r;
}

void tm_pool_close(struct tm_pool *p)
{
	if (!p)
		return;
	tm_blocksrc_close(p->bs);
	free(p);
}

int tm_pool_read_snapshot(struct tm_pool *p, uint64_t location, struct tm_superblock *out,
			  struct dmr_err *err)
{
	if (location == 0)
		location = p->sb.held_root;
	if (location == 0)
		return dmr_err_set(err, DMR_ENOENT, "%s: the pool holds no metadata snapshot", p->path);
	if (location >= p->limit)
		return dmr_err_set(err, DMR_ECORRUPT, "%s: metadata snapshot block %llu is outside the metadata (%llu blocks)",
				   p->path, (unsigned long long)location, (unsigned long long)p->limit);
	unsigned char *blk = tm_block_alloc(1);
	if (!blk)
		return dmr_err_set(err, DMR_ENOMEM, "%s: out of memory", p->path);
	int r = tm_blocksrc_read(p->bs, location, blk, err);
	if (!r)
		r = tm_superblock_validate_snapshot(blk, location, &p->sb, p->path, out, err);
	free(blk);
	return r;
}

/* Collecting (key, value) pairs of a one-level tree. */
struct kv_collect {
	struct tm_device *dev;
	size_t n, cap;
	int details; /* 1: details tree, 0: top level */
	tm_damage_fn damage;
	void *ctx;
	const char *tree;
};

static int kv_leaf(void *vctx, size_t root, const struct tm_node *leaf, uint64_t lo, uint64_t hi)
{
	struct kv_collect *c = vctx;
	if (c->n + leaf->nr_entries > c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		while (cap < c->n + leaf->nr_entries)
			cap *= 2;
		struct tm_device *d = realloc(c->dev, cap * sizeof(*d));
		if (!d)
			return DMR_ENOMEM;
		c->dev = d;
		c->cap = cap;
	}
	for (uint32_t i = 0; i < leaf->nr_entries; i++) {
		struct tm_device *d = &c->dev[c->n++];
		memset(d, 0, sizeof(*d));
		d->dev_id = tm_node_key(leaf, i);
		if (c->details) {
			struct tm_disk_device_details dd;
			memcpy(&dd, tm_node_value(leaf, i), sizeof(dd));
			d->in_details = 1;
			d->mapped_blocks = le64toh(dd.mapped_blocks);
			d->transaction_id = le64toh(dd.transaction_id);
			d->creation_time = le32toh(dd.creation_time);
			d->snapshotted_time = le32toh(dd.snapshotted_time);
		} else {
			d->in_mapping = 1;
			d->mapping_root = tm_node_value64(leaf, i);
		}
	}
	return 0;
}

static void kv_damage(void *vctx, const struct tm_damage *d)
{
	struct kv_collect *c = vctx;
	if (c->damage)
		c->damage(c->ctx, c->tree, d);
}

static int read_kv_tree(struct tm_pool *p, uint64_t root, int details, struct kv_collect *c,
			struct dmr_err *err)
{
	struct tm_btree_visitor v = {
		.value_size = details ? (uint32_t)sizeof(struct tm_disk_device_details) : 8u,
		.leaf = kv_leaf,
		.damage = kv_damage,
		.ctx = c,
	};
	c->details = details;
	c->tree = details ? "device details" : "mapping top level";
	int r = tm_btree_walk(p->bs, p->limit, &root, 1, &v, err);
	if (r == DMR_ENOMEM)
		r = dmr_err_set(err, DMR_ENOMEM, "%s: out of memory reading the %s tree", p->path, c->tree);
	return r;
}

int tm_devices_read(struct tm_pool *p, const struct tm_superblock *sb, struct tm_devlist *out,
		    tm_damage_fn damage, void *ctx, struct dmr_err *err)
{
	struct kv_collect det = { .damage = damage, .ctx = ctx };
	struct kv_collect top = { .damage = damage, .ctx = ctx };
	out->dev = NULL;
	out->n = 0;
	int r = read_kv_tree(p, sb->device_details_root, 1, &det, err);
	if (!r)
		r = read_kv_tree(p, sb->data_mapping_root, 0, &top, err);
	if (r)
		goto out;
	/* Both lists ascend (the walker delivers leaves in key order and keys
	 * are validated): merge them. */
	size_t cap = det.n + top.n;
	out->dev = malloc((cap ? cap : 1) * sizeof(*out->dev));
	if (!out->dev) {
		r = dmr_err_set(err, DMR_ENOMEM, "%s: out of memory", p->path);
		goto out;
	}
	size_t i = 0, j = 0;
	while (i < det.n || j < top.n) {
		struct tm_device *d;
		if (j >= top.n || (i < det.n && det.dev[i].dev_id < top.dev[j].dev_id)) {
			d = &out->dev[out->n++];
			*d = det.dev[i++];
		} else if (i >= det.n || top.dev[j].dev_id < det.dev[i].dev_id) {
			d = &out->dev[out->n++];
			*d = top.dev[j++];
		} else {
			d = &out->dev[out->n++];
			*d = det.dev[i++];
			d->in_mapping = 1;
			d->mapping_root = top.dev[j++].mapping_root;
		}
	}
out:
	free(det.dev);
	free(top.dev);
	if (r)
		tm_devlist_free(out);
	return r;
}

void tm_devlist_free(struct tm_devlist *l)
{
	free(l->dev);
	l->dev = NULL;
	l->n = 0;
}

const struct tm_device *tm_devlist_find(const struct tm_devlist *l, uint64_t dev_id)
{
	size_t lo = 0, hi = l->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (l->dev[mid].dev_id < dev_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < l->n && l->dev[lo].dev_id == dev_id ? &l->dev[lo] : NULL;
}

/* Bottom-level walk with run coalescing. */
struct map_walk {
	const struct tm_mapping_visitor *v;
	uint64_t nr_data_blocks;
	struct tm_run cur;
	size_t cur_dev;
	int have;
};

static int flush_run(struct map_walk *m)
{
	if (!m->have)
		return 0;
	m->have = 0;
	return m->v->run(m->v->ctx, m->cur_dev, &m->cur);
}

static int map_leaf(void *vctx, size_t root, const struct tm_node *leaf, uint64_t lo, uint64_t hi)
{
	struct map_walk *m = vctx;
	int r;
	if (m->v->unordered && (r = flush_run(m)))
		return r;
	for (uint32_t i = 0; i < leaf->nr_entries; i++) {
		uint64_t vb = tm_node_key(leaf, i);
		uint64_t bt = tm_node_value64(leaf, i);
		uint64_t db = bt >> TM_BLOCK_TIME_TIME_BITS;
		uint32_t t = (uint32_t)(bt & ((1u << TM_BLOCK_TIME_TIME_BITS) - 1));
		if (db >= m->nr_data_blocks) {
			if (m->v->damage) {
				struct tm_damage d = { .root_index = root, .lo = vb,
						       /* the last key cannot overflow into an empty range */
						       .hi = vb == UINT64_MAX ? UINT64_MAX : vb + 1,
						       .block = leaf->block };
				snprintf(d.reason, sizeof(d.reason),
					 "mapping to data block %llu beyond the end of the pool (%llu blocks)",
					 (unsigned long long)db, (unsigned long long)m->nr_data_blocks);
				m->v->damage(m->v->ctx, root, &d);
			}
			continue;
		}
		struct tm_run *c = &m->cur;
		if (m->have && m->cur_dev == root && c->time == t && c->vbegin + c->len == vb &&
		    c->dbegin + c->len == db) {
			c->len++;
			continue;
		}
		if ((r = flush_run(m)))
			return r;
		m->cur_dev = root;
		*c = (struct tm_run){ .vbegin = vb, .dbegin = db, .len = 1, .time = t };
		m->have = 1;
	}
	return 0;
}

static void map_node(void *vctx, size_t root, const struct tm_node *node, int depth)
{
	struct map_walk *m = vctx;
	m->v->node(m->v->ctx, root, node, depth);
}

static void map_damage(void *vctx, const struct tm_damage *d)
{
	struct map_walk *m = vctx;
	if (m->v->damage)
		m->v->damage(m->v->ctx, d->root_index, d);
}

int tm_mappings_walk(struct tm_pool *p, const uint64_t *roots, size_t n, uint64_t nr_data_blocks,
		     const struct tm_mapping_visitor *v, struct dmr_err *err)
{
	struct map_walk m = { .v = v, .nr_data_blocks = nr_data_blocks };
	struct tm_btree_visitor bv = {
		.value_size = 8,
		.unordered = v->unordered,
		.aligned = v->aligned,
		.leaf = map_leaf,
		.node = v->node ? map_node : NULL,
		.damage = map_damage,
		.ctx = &m,
	};
	int r = tm_btree_walk(p->bs, p->limit, roots, n, &bv, err);
	if (!r)
		r = flush_run(&m);
	if (r == DMR_ENOMEM)
		dmr_err_set(err, r, "%s: out of memory walking mappings", p->path);
	return r;
}

int tm_mapping_lookup(struct tm_pool *p, uint64_t root, uint64_t vblock, uint64_t *data_block, uint32_t *time,
		      struct dmr_err *err)
{
	unsigned char *buf = tm_block_alloc(1);
	if (!buf)
		return dmr_err_set(err, DMR_ENOMEM, "%s: out of memory", p->path);
	uint64_t block = root, lo = 0;
	int r = DMR_ECORRUPT;
	for (int depth = 0; depth < TM_BTREE_MAX_DEPTH; depth++) {
		struct tm_node n;
		char why[200];
		if (block == 0 || block >= p->limit) {
			r = dmr_err_set(err, DMR_ECORRUPT, "%s: block %llu: btree node outside the metadata (%llu blocks)",
					p->path, (unsigned long long)block, (unsigned long long)p->limit);
			goto out;
		}
		if ((r = tm_blocksrc_read(p->bs, block, buf, err)))
			goto out;
		if (tm_node_check(buf, block, 8, &n, why, sizeof(why))) {
			r = dmr_err_set(err, DMR_ECORRUPT, "%s: block %llu: %s", p->path, (unsigned long long)block, why);
			goto out;
		}
		if (n.nr_entries > 0 && tm_node_key(&n, 0) < lo) {
			r = dmr_err_set(err, DMR_ECORRUPT, "%s: block %llu: btree node keys below its parent's key %llu",
					p->path, (unsigned long long)block, (unsigned long long)lo);
			goto out;
		}
		/* The largest key <= vblock. */
		uint32_t a = 0, b = n.nr_entries;
		while (a < b) {
			uint32_t mid = a + (b - a) / 2;
			if (tm_node_key(&n, mid) <= vblock)
				a = mid + 1;
			else
				b = mid;
		}
		if (a == 0) {
			r = DMR_ENOENT;
			goto out;
		}
		uint32_t i = a - 1;
		if (n.flags == TM_NODE_LEAF) {
			if (tm_node_key(&n, i) != vblock) {
				r = DMR_ENOENT;
				goto out;
			}
			uint64_t bt = tm_node_value64(&n, i);
			*data_block = bt >> TM_BLOCK_TIME_TIME_BITS;
			*time = (uint32_t)(bt & ((1u << TM_BLOCK_TIME_TIME_BITS) - 1));
			r = 0;
			goto out;
		}
		lo = tm_node_key(&n, i);
		block = tm_node_value64(&n, i);
	}
	r = dmr_err_set(err, DMR_ECORRUPT, "%s: btree rooted at %llu deeper than %d levels: a cycle?", p->path,
			(unsigned long long)root, TM_BTREE_MAX_DEPTH);
out:
	free(buf);
	return r;
}
