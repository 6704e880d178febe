#include "config.h"
#include "thinmeta/spacemap.h"
#include "thinmeta/blocksrc.h"
#include "thinmeta/crc32c.h"
#include "util/grow.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SM_CHUNK 256u

struct sm_load {
	struct tm_pool *p;
	struct tm_space_map *sm;
	const char *tree;
	tm_damage_fn damage;
	void *ctx;
	uint64_t *bitmap_block; /* per bitmap index: its block, 0 = unknown */
	uint64_t index_root;    /* the index btree root or index block */
	size_t nr_over_cap;
	int index_walk;         /* damage keys are bitmap indexes, not blocks */
	uint64_t (*reported)[2]; /* block ranges already reported as damaged */
	size_t nr_reported, cap_reported;
};

/* Remembers a damaged range so what follows from it is not reported again. */
static void note_reported(struct sm_load *l, uint64_t lo, uint64_t hi)
{
	if (l->nr_reported == l->cap_reported) {
		size_t cap = l->cap_reported ? l->cap_reported * 2 : 16;
		void *n = realloc(l->reported, cap * sizeof(*l->reported));
		if (!n)
			return;
		l->reported = n;
		l->cap_reported = cap;
	}
	l->reported[l->nr_reported][0] = lo;
	l->reported[l->nr_reported++][1] = hi;
}

static int was_reported(const struct sm_load *l, uint64_t lo, uint64_t hi)
{
	for (size_t i = 0; i < l->nr_reported; i++)
		if (lo >= l->reported[i][0] && hi <= l->reported[i][1])
			return 1;
	return 0;
}

static void sm_report(struct sm_load *l, uint64_t lo, uint64_t hi, uint64_t block, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void sm_report(struct sm_load *l, uint64_t lo, uint64_t hi, uint64_t block, const char *fmt, ...)
{
	if (!l->damage)
		return;
	struct tm_damage d = { .lo = lo, .hi = hi, .block = block };
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d.reason, sizeof(d.reason), fmt, ap);
	va_end(ap);
	l->damage(l->ctx, l->tree, &d);
}

/* Damage in the index btree or an overflow tree, in block units. */
static void forward_damage(void *vctx, const struct tm_damage *d)
{
	struct sm_load *l = vctx;
	struct tm_damage b = *d;
	if (l->index_walk) {
		uint64_t n = l->sm->nr_blocks;
		b.lo = d->lo < n / TM_ENTRIES_PER_BITMAP + 1 ? d->lo * TM_ENTRIES_PER_BITMAP : n;
		b.hi = d->hi == UINT64_MAX || d->hi >= n / TM_ENTRIES_PER_BITMAP + 1 ? n : d->hi * TM_ENTRIES_PER_BITMAP;
		if (b.lo > n)
			b.lo = n;
		if (b.hi > n)
			b.hi = n;
	}
	note_reported(l, b.lo, b.hi);
	if (l->damage)
		l->damage(l->ctx, l->tree, &b);
}

/* Data space map: the index btree's leaves hold one index entry per bitmap. */
static int index_leaf(void *vctx, size_t root, const struct tm_node *leaf, uint64_t lo, uint64_t hi)
{
	struct sm_load *l = vctx;
	for (uint32_t i = 0; i < leaf->nr_entries; i++) {
		uint64_t k = tm_node_key(leaf, i);
		uint64_t b = tm_le64(tm_node_value(leaf, i));
		if (k >= l->sm->nr_bitmaps) {
			sm_report(l, k, k + 1, leaf->block, "index entry for bitmap %llu, but the map has only %llu bitmaps",
				  (unsigned long long)k, (unsigned long long)l->sm->nr_bitmaps);
			continue;
		}
		uint64_t first = k * TM_ENTRIES_PER_BITMAP, end = first + TM_ENTRIES_PER_BITMAP;
		if (end > l->sm->nr_blocks)
			end = l->sm->nr_blocks;
		if (b == 0 || b >= l->p->limit) {
			/* The entry is wrong, in this leaf: name the leaf. */
			sm_report(l, first, end, leaf->block, "index entry for bitmap %llu points at block %llu, %s",
				  (unsigned long long)k, (unsigned long long)b,
				  b == 0 ? "the superblock" : "outside the metadata");
			note_reported(l, first, end);
			continue;
		}
		l->bitmap_block[k] = b;
	}
	return 0;
}

static int set_count(struct tm_space_map *sm, uint64_t b, unsigned c)
{
	uint8_t *byte = &sm->counts[b / 4];
	unsigned sh = 2u * (unsigned)(b % 4);
	*byte = (uint8_t)((*byte & ~(3u << sh)) | (c << sh));
	return 0;
}

uint32_t tm_sm_count(const struct tm_space_map *sm, uint64_t b)
{
	if (b >= sm->nr_blocks)
		return 0;
	unsigned c = (sm->counts[b / 4] >> (2u * (unsigned)(b % 4))) & 3u;
	if (c < 3)
		return c;
	size_t lo = 0, hi = sm->nr_overflow;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (sm->overflow[mid].block < b)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < sm->nr_overflow && sm->overflow[lo].block == b)
		return sm->overflow[lo].count;
	return 3; /* damaged: at least 3 */
}

static int load_bitmaps(struct sm_load *l, struct dmr_err *err)
{
	struct tm_space_map *sm = l->sm;
	void *bufs = tm_block_alloc(SM_CHUNK);
	uint64_t blocks[SM_CHUNK];
	int status[SM_CHUNK];
	if (!bufs)
		return dmr_err_set(err, DMR_ENOMEM, "%s: out of memory", l->p->path);
	for (uint64_t off = 0; off < sm->nr_bitmaps; off += SM_CHUNK) {
		size_t cnt = sm->nr_bitmaps - off < SM_CHUNK ? (size_t)(sm->nr_bitmaps - off) : SM_CHUNK;
		for (size_t i = 0; i < cnt; i++) {
			uint64_t b = l->bitmap_block[off + i];
			blocks[i] = b > 0 && b < l->p->limit ? b : UINT64_MAX;
		}
		int r = tm_blocksrc_read_many(l->p->bs, blocks, cnt, bufs, status, err);
		if (r) {
			free(bufs);
			return r;
		}
		for (size_t i = 0; i < cnt; i++) {
			uint64_t idx = off + i;
			uint64_t first = idx * TM_ENTRIES_PER_BITMAP;
			uint64_t end = first + TM_ENTRIES_PER_BITMAP;
			if (end > sm->nr_blocks)
				end = sm->nr_blocks;
			uint64_t b = l->bitmap_block[idx];
			const unsigned char *buf = (const unsigned char *)bufs + i * TM_BLOCK_SIZE;
			if (b == 0) {
				if (!was_reported(l, first, end))
					sm_report(l, first, end, l->index_root,
						  "no index entry for bitmap %llu", (unsigned long long)idx);
				continue;
			}
			if (blocks[i] == UINT64_MAX || status[i] == DMR_ECORRUPT) {
				sm_report(l, first, end, b, "bitmap %llu at block %llu is outside the metadata",
					  (unsigned long long)idx, (unsigned long long)b);
				continue;
			}
			if (status[i]) {
				sm_report(l, first, end, b, "bitmap %llu: read error", (unsigned long long)idx);
				continue;
			}
			if (!tm_block_csum_ok(buf, TM_SALT_BITMAP)) {
				sm_report(l, first, end, b, "bad checksum in bitmap %llu", (unsigned long long)idx);
				continue;
			}
			if (tm_le64(buf + 8) != b) {
				sm_report(l, first, end, b, "bitmap %llu says it is block %llu",
					  (unsigned long long)idx, (unsigned long long)tm_le64(buf + 8));
				continue;
			}
			for (uint64_t blk = first; blk < end; blk++)
				set_count(sm, blk, tm_bitmap_entry(buf, (uint32_t)(blk - first)));
		}
	}
	free(bufs);
	return 0;
}

static int overflow_leaf(void *vctx, size_t root, const struct tm_node *leaf, uint64_t lo, uint64_t hi)
{
	struct sm_load *l = vctx;
	struct tm_space_map *sm = l->sm;
	for (uint32_t i = 0; i < leaf->nr_entries; i++) {
		uint64_t b = tm_node_key(leaf, i);
		uint32_t c = tm_le32(tm_node_value(leaf, i));
		if (b >= sm->nr_blocks) {
			sm_report(l, b, b + 1, leaf->block, "overflow count for block %llu beyond the map (%llu blocks)",
				  (unsigned long long)b, (unsigned long long)sm->nr_blocks);
			continue;
		}
		if (c < 3) {
			sm_report(l, b, b + 1, leaf->block, "overflow count %u for block %llu is below 3",
				  c, (unsigned long long)b);
			continue;
		}
		if (((sm->counts[b / 4] >> (2u * (unsigned)(b % 4))) & 3u) != 3) {
			/* Unless its bitmap is lost, which was reported already. */
			if (!was_reported(l, b, b + 1))
				sm_report(l, b, b + 1, leaf->block, "overflow count for block %llu whose bitmap entry is not 3",
					  (unsigned long long)b);
			continue;
		}
		/* The overflow tree is bounded by the map: each block once. */
		struct tm_sm_overflow *o = dmr_grow(sm->overflow, &l->nr_over_cap, sm->nr_overflow, sizeof(*o));
		if (!o)
			return DMR_ENOMEM;
		sm->overflow = o;
		sm->overflow[sm->nr_overflow++] = (struct tm_sm_overflow){ .block = b, .count = c };
	}
	return 0;
}

static int load_metadata_index(struct sm_load *l, uint64_t index_block, struct dmr_err *err)
{
	unsigned char *buf = tm_block_alloc(1);
	if (!buf)
		return dmr_err_set(err, DMR_ENOMEM, "%s: out of memory", l->p->path);
	int r = tm_blocksrc_read(l->p->bs, index_block, buf, err);
	if (r) {
		free(buf);
		if (r == DMR_ENOMEM)
			return r;
		sm_report(l, 0, l->sm->nr_blocks, index_block, "metadata space map index: %s", err->msg);
		note_reported(l, 0, l->sm->nr_blocks);
		dmr_err_clear(err);
		return 0;
	}
	if (!tm_block_csum_ok(buf, TM_SALT_INDEX)) {
		sm_report(l, 0, l->sm->nr_blocks, index_block, "bad checksum in metadata space map index block");
		note_reported(l, 0, l->sm->nr_blocks);
	} else if (tm_le64(buf + 8) != index_block) {
		sm_report(l, 0, l->sm->nr_blocks, index_block, "metadata space map index says it is block %llu",
			  (unsigned long long)tm_le64(buf + 8));
		note_reported(l, 0, l->sm->nr_blocks);
	} else {
		for (uint64_t i = 0; i < l->sm->nr_bitmaps; i++) {
			uint64_t b = tm_le64(buf + 16 + 16 * i);
			uint64_t first = i * TM_ENTRIES_PER_BITMAP, end = first + TM_ENTRIES_PER_BITMAP;
			if (end > l->sm->nr_blocks)
				end = l->sm->nr_blocks;
			if (b == 0 || b >= l->p->limit) {
				sm_report(l, first, end, index_block, "index entry for bitmap %llu points at block %llu, %s",
					  (unsigned long long)i, (unsigned long long)b,
					  b == 0 ? "the superblock" : "outside the metadata");
				note_reported(l, first, end);
				continue;
			}
			l->bitmap_block[i] = b;
		}
	}
	free(buf);
	return 0;
}

int tm_sm_read(struct tm_pool *p, int which, struct tm_space_map *out, tm_damage_fn damage, void *ctx,
	       struct dmr_err *err)
{
	const struct tm_sm_root *root = which ? &p->sb.metadata_sm : &p->sb.data_sm;
	memset(out, 0, sizeof(*out));
	out->nr_blocks = root->nr_blocks;
	out->nr_bitmaps = (root->nr_blocks + TM_ENTRIES_PER_BITMAP - 1) / TM_ENTRIES_PER_BITMAP;
	struct sm_load l = {
		.p = p, .sm = out, .damage = damage, .ctx = ctx,
		.tree = which ? "metadata space map" : "data space map",
	};
	/* nr_blocks was bounded by the file size when the superblock was
	 * validated: at most 16320 entries per metadata block. */
	out->counts = calloc((size_t)(root->nr_blocks / 4 + 1), 1);
	l.bitmap_block = calloc((size_t)out->nr_bitmaps + 1, sizeof(*l.bitmap_block));
	int r = 0;
	if (!out->counts || !l.bitmap_block) {
		r = dmr_err_set(err, DMR_ENOMEM, "%s: out of memory for the %s", p->path, l.tree);
		goto out;
	}
	l.index_root = root->bitmap_root;
	if (which) {
		if (out->nr_bitmaps > TM_MAX_METADATA_BITMAPS) {
			r = dmr_err_set(err, DMR_ECORRUPT, "%s: metadata space map needs %llu bitmaps, more than 255",
					p->path, (unsigned long long)out->nr_bitmaps);
			goto out;
		}
		r = load_metadata_index(&l, root->bitmap_root, err);
	} else {
		struct tm_btree_visitor v = {
			.value_size = sizeof(struct tm_disk_index_entry),
			.leaf = index_leaf, .damage = forward_damage, .ctx = &l,
		};
		l.index_walk = 1;
		r = tm_btree_walk(p->bs, p->limit, &root->bitmap_root, 1, &v, err);
		l.index_walk = 0;
	}
	if (!r)
		r = load_bitmaps(&l, err);
	if (!r) {
		struct tm_btree_visitor v = {
			.value_size = 4, .leaf = overflow_leaf, .damage = forward_damage, .ctx = &l,
		};
		l.tree = which ? "metadata ref count tree" : "data ref count tree";
		r = tm_btree_walk(p->bs, p->limit, &root->ref_count_root, 1, &v, err);
		l.tree = which ? "metadata space map" : "data space map";
	}
	/* Every bitmap entry of 3 needs an overflow count. */
	if (!r) {
		size_t k = 0;
		for (uint64_t b = 0; b < out->nr_blocks; b++) {
			if (out->counts[b / 4] == 0) {
				b |= 3; /* skip a whole zero byte */
				continue;
			}
			if (((out->counts[b / 4] >> (2u * (unsigned)(b % 4))) & 3u) != 3)
				continue;
			while (k < out->nr_overflow && out->overflow[k].block < b)
				k++;
			if ((k >= out->nr_overflow || out->overflow[k].block != b) && !was_reported(&l, b, b + 1))
				sm_report(&l, b, b + 1, root->ref_count_root,
					  "block %llu has count 3+ in its bitmap but no overflow count",
					  (unsigned long long)b);
		}
	}
	if (r == DMR_ENOMEM)
		dmr_err_set(err, r, "%s: out of memory reading the %s", p->path, l.tree);
out:
	out->bitmap_block = l.bitmap_block;
	free(l.reported);
	if (r)
		tm_sm_free(out);
	return r;
}

void tm_sm_free(struct tm_space_map *sm)
{
	free(sm->counts);
	free(sm->overflow);
	free(sm->bitmap_block);
	sm->counts = NULL;
	sm->overflow = NULL;
	sm->bitmap_block = NULL;
	sm->nr_overflow = 0;
}
