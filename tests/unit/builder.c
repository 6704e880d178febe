#include "config.h"
#include "builder.h"
#include "unit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "thinmeta/btbuild.h"
#include "thinmeta/crc32c.h"
#include "thinmeta/smwrite.h"

static void die(const char *what)
{
	fprintf(stderr, "builder: %s\n", what);
	abort();
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		die("out of memory");
	return p;
}

void bld_init(struct bld *b, uint64_t nr_meta_blocks, uint64_t nr_data_blocks)
{
	memset(b, 0, sizeof(*b));
	b->nr_blocks = nr_meta_blocks;
	b->nr_data_blocks = nr_data_blocks;
	b->img = xcalloc((size_t)nr_meta_blocks, TM_BLOCK_SIZE);
	b->meta_count = xcalloc((size_t)nr_meta_blocks, sizeof(*b->meta_count));
	b->data_count = xcalloc((size_t)nr_data_blocks, sizeof(*b->data_count));
	b->data_block_size = 128;
	b->version = 2;
	b->time = 0;
	b->trans_id = 1;

	b->nr_meta_bitmaps = (nr_meta_blocks + TM_ENTRIES_PER_BITMAP - 1) / TM_ENTRIES_PER_BITMAP;
	b->nr_data_bitmaps = (nr_data_blocks + TM_ENTRIES_PER_BITMAP - 1) / TM_ENTRIES_PER_BITMAP;
	if (b->nr_meta_bitmaps > BLD_MAX_BITMAPS || b->nr_data_bitmaps > BLD_MAX_BITMAPS)
		die("too many bitmaps for the builder");
	b->next = 0;
	if (bld_alloc(b) != 0)
		die("superblock not at 0");
	b->meta_index = bld_alloc(b);
	for (uint64_t i = 0; i < b->nr_meta_bitmaps; i++)
		b->meta_bitmap[i] = bld_alloc(b);
	for (uint64_t i = 0; i < b->nr_data_bitmaps; i++)
		b->data_bitmap[i] = bld_alloc(b);
}

void bld_free(struct bld *b)
{
	free(b->img);
	free(b->meta_count);
	free(b->data_count);
	memset(b, 0, sizeof(*b));
}

unsigned char *bld_block(struct bld *b, uint64_t n)
{
	if (n >= b->nr_blocks)
		die("block beyond the image");
	return b->img + n * TM_BLOCK_SIZE;
}

uint64_t bld_alloc(struct bld *b)
{
	if (b->next >= b->nr_blocks)
		die("image full");
	uint64_t n = b->next++;
	b->meta_count[n]++;
	return n;
}

void bld_reseal(struct bld *b, uint64_t block, uint32_t salt)
{
	tm_block_csum_set(bld_block(b, block), salt);
}

void bld_node(struct bld *b, uint64_t block, uint32_t flags, uint32_t value_size, uint32_t nr,
	      const uint64_t *keys, const void *values)
{
	if (nr > tm_node_max_entries(value_size))
		die("too many entries for a node");
	tm_node_write(bld_block(b, block), block, flags, value_size, nr, keys, values);
}

void bld_node64(struct bld *b, uint64_t block, uint32_t flags, uint32_t nr, const uint64_t *keys,
		const uint64_t *values)
{
	uint64_t *le = xcalloc(nr, sizeof(*le));
	for (uint32_t i = 0; i < nr; i++)
		tm_put_le64(&le[i], values[i]);
	bld_node(b, block, flags, 8, nr, keys, le);
	free(le);
}

uint64_t bld_tree(struct bld *b, uint32_t value_size, size_t n, const uint64_t *keys, const void *values,
		  uint32_t leaf_fill)
{
	uint32_t max = tm_node_max_entries(value_size);
	if (leaf_fill == 0 || leaf_fill > max)
		leaf_fill = max;
	if (n == 0) {
		uint64_t root = bld_alloc(b);
		bld_node(b, root, TM_NODE_LEAF, value_size, 0, NULL, NULL);
		return root;
	}
	size_t nl = (n + leaf_fill - 1) / leaf_fill;
	uint64_t *lkeys = xcalloc(nl, sizeof(*lkeys));
	uint64_t *lblocks = xcalloc(nl, sizeof(*lblocks));
	const unsigned char *v = values;
	for (size_t i = 0; i < nl; i++) {
		size_t first = i * leaf_fill;
		uint32_t cnt = (uint32_t)(n - first < leaf_fill ? n - first : leaf_fill);
		lblocks[i] = bld_alloc(b);
		lkeys[i] = keys[first];
		bld_node(b, lblocks[i], TM_NODE_LEAF, value_size, cnt, keys + first, v + first * value_size);
	}
	uint32_t imax = tm_node_max_entries(8);
	while (nl > 1) {
		size_t ni = (nl + imax - 1) / imax;
		for (size_t i = 0; i < ni; i++) {
			size_t first = i * imax;
			uint32_t cnt = (uint32_t)(nl - first < imax ? nl - first : imax);
			uint64_t blk = bld_alloc(b);
			bld_node64(b, blk, TM_NODE_INTERNAL, cnt, lkeys + first, lblocks + first);
			lkeys[i] = lkeys[first];
			lblocks[i] = blk;
		}
		nl = ni;
	}
	uint64_t root = lblocks[0];
	free(lkeys);
	free(lblocks);
	return root;
}

size_t bld_device(struct bld *b, uint64_t id, const struct bld_map *maps, size_t n, uint32_t leaf_fill,
		  unsigned flags)
{
	if (b->nr_devs >= BLD_MAX_DEVS)
		die("too many devices");
	struct bld_dev *d = &b->dev[b->nr_devs];
	memset(d, 0, sizeof(*d));
	d->id = id;
	d->in_details = !(flags & BLD_NO_DETAILS);
	d->details.mapped_blocks = n;
	d->details.transaction_id = b->trans_id;
	d->details.creation_time = b->time;
	d->details.snapshotted_time = b->time;
	if (!(flags & BLD_NO_MAPPING)) {
		uint64_t *keys = xcalloc(n, sizeof(*keys));
		uint64_t *vals = xcalloc(n, sizeof(*vals));
		for (size_t i = 0; i < n; i++) {
			keys[i] = maps[i].vblock;
			tm_put_le64(&vals[i], bld_block_time(maps[i].dblock, maps[i].time));
			if (maps[i].dblock < b->nr_data_blocks)
				b->data_count[maps[i].dblock]++;
		}
		d->root = bld_tree(b, 8, n, keys, vals, leaf_fill);
		free(keys);
		free(vals);
	}
	return b->nr_devs++;
}

uint64_t bld_leaf(struct bld *b, uint64_t v0, uint64_t d0, uint32_t n)
{
	uint64_t keys[252], vals[252];
	if (n > 252)
		die("too many mappings for one leaf");
	uint64_t blk = bld_alloc(b);
	for (uint32_t i = 0; i < n; i++) {
		keys[i] = v0 + i;
		vals[i] = bld_block_time(d0 + i, 0);
		if (d0 + i < b->nr_data_blocks)
			b->data_count[d0 + i]++;
	}
	bld_node64(b, blk, TM_NODE_LEAF, n, keys, vals);
	return blk;
}

uint64_t bld_inode(struct bld *b, uint32_t n, const uint64_t *children)
{
	uint64_t keys[252];
	if (n < 1 || n > 252)
		die("bad number of children for an internal node");
	for (uint32_t i = 0; i < n; i++)
		keys[i] = tm_le64(bld_block(b, children[i]) + 32);
	uint64_t blk = bld_alloc(b);
	bld_node64(b, blk, TM_NODE_INTERNAL, n, keys, children);
	return blk;
}

uint64_t bld_subtree(struct bld *b, uint64_t v0, uint64_t d0, uint32_t nleaves, uint32_t per)
{
	uint64_t ch[252];
	if (nleaves > 252)
		die("too many leaves for one internal node");
	for (uint32_t i = 0; i < nleaves; i++)
		ch[i] = bld_leaf(b, v0 + (uint64_t)i * per, d0 + (uint64_t)i * per, per);
	return bld_inode(b, nleaves, ch);
}

void bld_add_dev(struct bld *b, uint64_t id, uint64_t root, uint64_t mapped)
{
	size_t i = bld_device(b, id, NULL, mapped, 0, BLD_NO_MAPPING);
	b->dev[i].root = root;
}

void bld_devs_own_leaves(struct bld *b, uint64_t first, uint32_t n, uint64_t d0, uint32_t len)
{
	for (uint64_t d = first; d < first + n; d++)
		bld_add_dev(b, d, bld_leaf(b, 0, d0, len), len);
}

uint64_t bld_devs_shared_leaf(struct bld *b, uint64_t first, uint32_t n, uint64_t d0, uint32_t len)
{
	uint64_t leaf = bld_leaf(b, 0, d0, len);
	for (uint64_t d = first; d < first + n; d++)
		bld_add_dev(b, d, leaf, len);
	b->meta_count[leaf] = n;
	return leaf;
}

uint64_t bld_reserve_snapshot(struct bld *b)
{
	b->held_root = bld_alloc(b);
	return b->held_root;
}

static int cmp_dev(const void *x, const void *y)
{
	const struct bld_dev *a = x, *c = y;
	return a->id < c->id ? -1 : a->id > c->id;
}

void bld_bitmap_set(struct bld *b, uint64_t block, uint32_t i, unsigned count)
{
	tm_bitmap_put(bld_block(b, block), i, count);
	bld_reseal(b, block, TM_SALT_BITMAP);
}

/* The overflow tree of a map: a (block, u32 count) entry per count >= 3. */
static uint64_t overflow_tree(struct bld *b, const uint32_t *counts, uint64_t nr_blocks)
{
	size_t n = (size_t)tm_counts_overflowing(counts, nr_blocks);
	uint64_t *keys = xcalloc(n, sizeof(*keys));
	unsigned char *vals = xcalloc(n, 4);
	tm_counts_overflow_pairs(counts, nr_blocks, keys, vals);
	uint64_t root = bld_tree(b, 4, n, keys, vals, 0);
	free(keys);
	free(vals);
	return root;
}

void bld_finish(struct bld *b)
{
	qsort(b->dev, b->nr_devs, sizeof(b->dev[0]), cmp_dev);

	/* Details tree. */
	uint64_t keys[BLD_MAX_DEVS];
	struct tm_disk_device_details det[BLD_MAX_DEVS];
	uint64_t roots[BLD_MAX_DEVS];
	size_t n = 0;
	for (size_t i = 0; i < b->nr_devs; i++) {
		if (!b->dev[i].in_details)
			continue;
		const struct tm_disk_device_details *s = &b->dev[i].details;
		keys[n] = b->dev[i].id;
		det[n] = (struct tm_disk_device_details){
			.mapped_blocks = htole64(s->mapped_blocks),
			.transaction_id = htole64(s->transaction_id),
			.creation_time = htole32(s->creation_time),
			.snapshotted_time = htole32(s->snapshotted_time),
		};
		n++;
	}
	b->details_root = bld_tree(b, sizeof(struct tm_disk_device_details), n, keys, det, 0);

	/* Top level. */
	n = 0;
	for (size_t i = 0; i < b->nr_devs; i++) {
		if (!b->dev[i].root)
			continue;
		keys[n] = b->dev[i].id;
		tm_put_le64(&roots[n], b->dev[i].root);
		n++;
	}
	b->top_root = bld_tree(b, 8, n, keys, roots, 0);

	if (b->held_root) {
		b->meta_count[b->details_root]++;
		b->meta_count[b->top_root]++;
	}

	/* Data space map: bitmaps, index btree, overflow tree. */
	struct tm_disk_index_entry ie[BLD_MAX_BITMAPS];
	uint64_t ikeys[BLD_MAX_BITMAPS];
	for (uint64_t k = 0; k < b->nr_data_bitmaps; k++) {
		tm_bitmap_build(bld_block(b, b->data_bitmap[k]), b->data_bitmap[k], b->data_count, b->nr_data_blocks, k,
				&ie[k]);
		ikeys[k] = k;
	}
	b->data_index_root = bld_tree(b, sizeof(struct tm_disk_index_entry), (size_t)b->nr_data_bitmaps,
				      ikeys, ie, 0);
	b->data_ref_root = overflow_tree(b, b->data_count, b->nr_data_blocks);

	/* Metadata space map: the overflow tree first, since its nodes count. */
	b->meta_ref_root = overflow_tree(b, b->meta_count, b->nr_blocks);
	for (uint64_t k = 0; k < b->nr_meta_bitmaps; k++)
		tm_bitmap_build(bld_block(b, b->meta_bitmap[k]), b->meta_bitmap[k], b->meta_count, b->nr_blocks, k,
				&ie[k]);
	tm_metadata_index_build(bld_block(b, b->meta_index), b->meta_index, ie, b->nr_meta_bitmaps);

	/* Superblock. */
	struct tm_disk_superblock sb = {
		.blocknr = 0,
		.magic = TM_SUPERBLOCK_MAGIC,
		.version = b->version,
		.time = b->time,
		.trans_id = b->trans_id,
		.held_root = b->held_root,
		.data_mapping_root = b->top_root,
		.device_details_root = b->details_root,
		.data_block_size = b->data_block_size,
		.metadata_block_size = TM_BLOCK_SECTORS,
		.metadata_nr_blocks = b->nr_blocks,
	};
	struct tm_disk_sm_root dsm = {
		.nr_blocks = b->nr_data_blocks,
		.nr_allocated = tm_counts_nonzero(b->data_count, b->nr_data_blocks),
		.bitmap_root = b->data_index_root,
		.ref_count_root = b->data_ref_root,
	};
	struct tm_disk_sm_root msm = {
		.nr_blocks = b->nr_blocks,
		.nr_allocated = tm_counts_nonzero(b->meta_count, b->nr_blocks),
		.bitmap_root = b->meta_index,
		.ref_count_root = b->meta_ref_root,
	};
	bld_sm_root_put(sb.data_space_map_root, &dsm);
	bld_sm_root_put(sb.metadata_space_map_root, &msm);
	bld_sb_put(b, 0, &sb);

	if (b->held_root) {
		struct tm_disk_superblock snap = sb;
		snap.blocknr = b->held_root;
		snap.held_root = 0;
		memset(snap.data_space_map_root, 0, sizeof(snap.data_space_map_root));
		memset(snap.metadata_space_map_root, 0, sizeof(snap.metadata_space_map_root));
		bld_sb_put(b, b->held_root, &snap);
	}
}

void bld_standard(struct bld *b)
{
	static const struct bld_map maps[] = {
		{ 0, 10, 0 }, { 1, 11, 0 }, { 2, 12, 0 }, { 5, 20, 1 },
	};
	bld_init(b, 32, 1024);
	b->time = 1;
	bld_device(b, 1, maps, sizeof(maps) / sizeof(maps[0]), 0, 0);
	bld_finish(b);
}

void bld_sm_root_get(const uint8_t raw[TM_SM_ROOT_SIZE], struct tm_disk_sm_root *r)
{
	r->nr_blocks = tm_le64(raw);
	r->nr_allocated = tm_le64(raw + 8);
	r->bitmap_root = tm_le64(raw + 16);
	r->ref_count_root = tm_le64(raw + 24);
}

void bld_sm_root_put(uint8_t raw[TM_SM_ROOT_SIZE], const struct tm_disk_sm_root *r)
{
	const struct tm_sm_root h = {
		.nr_blocks = r->nr_blocks, .nr_allocated = r->nr_allocated,
		.bitmap_root = r->bitmap_root, .ref_count_root = r->ref_count_root,
	};
	memset(raw, 0, TM_SM_ROOT_SIZE);
	tm_sm_root_encode(raw, &h);
}

void bld_sb_get(struct bld *b, uint64_t sbblock, struct tm_disk_superblock *sb)
{
	struct tm_disk_superblock d;
	memcpy(&d, bld_block(b, sbblock), sizeof(d));
	*sb = d;
	sb->csum = le32toh(d.csum);
	sb->flags = le32toh(d.flags);
	sb->blocknr = le64toh(d.blocknr);
	sb->magic = le64toh(d.magic);
	sb->version = le32toh(d.version);
	sb->time = le32toh(d.time);
	sb->trans_id = le64toh(d.trans_id);
	sb->held_root = le64toh(d.held_root);
	sb->data_mapping_root = le64toh(d.data_mapping_root);
	sb->device_details_root = le64toh(d.device_details_root);
	sb->data_block_size = le32toh(d.data_block_size);
	sb->metadata_block_size = le32toh(d.metadata_block_size);
	sb->metadata_nr_blocks = le64toh(d.metadata_nr_blocks);
	sb->compat_flags = le32toh(d.compat_flags);
	sb->compat_ro_flags = le32toh(d.compat_ro_flags);
	sb->incompat_flags = le32toh(d.incompat_flags);
	/* The sm roots stay raw (little-endian): use bld_sm_root_get/put. */
}

void bld_sb_put(struct bld *b, uint64_t sbblock, const struct tm_disk_superblock *sb)
{
	struct tm_disk_superblock d = *sb;
	d.csum = 0;
	d.flags = htole32(sb->flags);
	d.blocknr = htole64(sb->blocknr);
	d.magic = htole64(sb->magic);
	d.version = htole32(sb->version);
	d.time = htole32(sb->time);
	d.trans_id = htole64(sb->trans_id);
	d.held_root = htole64(sb->held_root);
	d.data_mapping_root = htole64(sb->data_mapping_root);
	d.device_details_root = htole64(sb->device_details_root);
	d.data_block_size = htole32(sb->data_block_size);
	d.metadata_block_size = htole32(sb->metadata_block_size);
	d.metadata_nr_blocks = htole64(sb->metadata_nr_blocks);
	d.compat_flags = htole32(sb->compat_flags);
	d.compat_ro_flags = htole32(sb->compat_ro_flags);
	d.incompat_flags = htole32(sb->incompat_flags);
	unsigned char *p = bld_block(b, sbblock);
	memset(p, 0, TM_BLOCK_SIZE);
	memcpy(p, &d, sizeof(d));
	bld_reseal(b, sbblock, TM_SALT_SUPERBLOCK);
}

static const char *tmpdir(void)
{
	const char *t = getenv("TMPDIR");
	return t && *t ? t : "/tmp";
}

static int write_all(int fd, const unsigned char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static int write_tmp(const struct bld *b, uint64_t nr_blocks, const char *dir, char *path)
{
	snprintf(path, 4096, "%s/dmr-unit-XXXXXX", dir);
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	unit_tmp_track(path);
	if (write_all(fd, b->img, (size_t)nr_blocks * TM_BLOCK_SIZE) < 0 || close(fd) < 0) {
		unlink(path);
		return -1;
	}
	return 0;
}

int bld_write_tmp_in(const struct bld *b, const char *dir, char *path)
{
	return write_tmp(b, b->nr_blocks, dir, path);
}

void bld_write_tmp_n(const struct bld *b, uint64_t nr_blocks, char *path)
{
	if (nr_blocks > b->nr_blocks)
		die("writing more blocks than the image has");
	if (write_tmp(b, nr_blocks, tmpdir(), path) < 0)
		die("cannot write a temp file");
}

void bld_write_tmp(const struct bld *b, char *path)
{
	bld_write_tmp_n(b, b->nr_blocks, path);
}
