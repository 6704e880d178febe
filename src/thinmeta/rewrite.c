#include "config.h"
#include "thinmeta/rewrite.h"
#include "thinmeta/blocksrc.h"
#include "thinmeta/btbuild.h"
#include "thinmeta/btdel.h"
#include "thinmeta/crc32c.h"
#include "thinmeta/pool.h"
#include "thinmeta/smwrite.h"
#include "thinmeta/spacemap.h"
#include "util/safeio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Blocks per write of consecutive new blocks (1 MiB). */
#define WRITE_RUN 256u

struct rewrite {
	const char *path;
	int do_write;                 /* 0: plan only, the file opened read-only */
	int fd;                       /* for writing; -1 when planning */
	struct tm_pool *p;
	unsigned char *sb_raw;        /* the committed superblock, as read */
	struct tm_refcounts rc;       /* changed in memory as references go */
	uint8_t *committed_free;      /* bit per metadata block: count 0 before any change */
	uint64_t *meta_bitmap, *data_bitmap; /* the old bitmap blocks */
	uint64_t nr_meta_bitmaps, nr_data_bitmaps;
	struct tm_devlist devs;
	unsigned char *removed;       /* per devs entry */

	/* The new blocks, ascending, each with its 4 KiB buffer. */
	uint64_t *new_block;
	unsigned char *new_buf;
	size_t nr_new, used;

	/* The new roots. */
	uint64_t details_root, top_root, data_index_root, data_ref_root, meta_index, meta_ref_root;
};

/* ---- reading the committed state ---- */

/* The first damage a reader reports, which makes us refuse. */
struct damage_note {
	int seen;
	char msg[400];
};

static void note_damage(void *ctx, const char *tree, const struct tm_damage *d)
{
	struct damage_note *n = ctx;
	if (n->seen++)
		return;
	snprintf(n->msg, sizeof(n->msg), "block %llu: %s: %s", (unsigned long long)d->block, tree, d->reason);
}

static int refuse_damage(const struct rewrite *w, const struct damage_note *n, struct dmr_err *err)
{
	return dmr_err_set(err, DMR_ECORRUPT, "%s: %s (nothing changed)", w->path, n->msg);
}

/* Loads one space map as a count per block, and its bitmap blocks. */
static int load_counts(struct rewrite *w, int which, uint32_t **counts, uint64_t **bitmaps, uint64_t *nr_bitmaps,
		       struct dmr_err *err)
{
	struct damage_note note = { 0 };
	struct tm_space_map sm;
	int r = tm_sm_read(w->p, which, &sm, note_damage, &note, err);
	if (r)
		return r;
	if (note.seen) {
		tm_sm_free(&sm);
		return refuse_damage(w, &note, err);
	}
	*counts = malloc((size_t)(sm.nr_blocks ? sm.nr_blocks : 1) * sizeof(**counts));
	if (!*counts) {
		tm_sm_free(&sm);
		return dmr_err_set(err, DMR_ENOMEM, "%s: out of memory for %llu reference counts", w->path,
				   (unsigned long long)sm.nr_blocks);
	}
	for (uint64_t b = 0; b < sm.nr_blocks; b++)
		(*counts)[b] = tm_sm_count(&sm, b);
	*bitmaps = sm.bitmap_block;
	*nr_bitmaps = sm.nr_bitmaps;
	sm.bitmap_block = NULL;
	tm_sm_free(&sm);
	return 0;
}

static int load_superblock(struct rewrite *w, struct dmr_err *err)
{
	if (w->do_write) {
		w->fd = open(w->path, O_RDWR | O_CLOEXEC);
		if (w->fd < 0)
			return dmr_err_set(err, DMR_EIO, "%s: cannot open for writing: %s", w->path, strerror(errno));
	}
	int r = tm_pool_open(&w->p, w->path, 0, err);
	if (r)
		return r;
	w->sb_raw = tm_block_alloc(1);
	if (!w->sb_raw)
		return dmr_err_set(err, DMR_ENOMEM, "%s: out of memory", w->path);
	return tm_blocksrc_read(w->p->bs, 0, w->sb_raw, err);
}

static int load(struct rewrite *w, struct dmr_err *err)
{
	int r = load_superblock(w, err);
	if (!r)
		r = load_counts(w, 1, &w->rc.meta, &w->meta_bitmap, &w->nr_meta_bitmaps, err);
	if (!r)
		r = load_counts(w, 0, &w->rc.data, &w->data_bitmap, &w->nr_data_bitmaps, err);
	if (r)
		return r;
	w->rc.nr_meta = w->p->sb.metadata_sm.nr_blocks;
	w->rc.nr_data = w->p->sb.data_sm.nr_blocks;
	w->committed_free = calloc((size_t)(w->rc.nr_meta / 8 + 1), 1);
	if (!w->committed_free)
		return dmr_err_set(err, DMR_ENOMEM, "%s: out of memory", w->path);
	for (uint64_t b = 0; b < w->rc.nr_meta; b++)
		if (w->rc.meta[b] == 0)
			w->committed_free[b / 8] |= (uint8_t)(1u << (b % 8));
	struct damage_note note = { 0 };
	r = tm_devices_read(w->p, &w->p->sb, &w->devs, note_damage, &note, err);
	if (!r && note.seen)
		r = refuse_damage(w, &note, err);
	return r;
}

/* Marks the devices to remove; each must be in both trees. */
static int mark_removed(struct rewrite *w, const uint64_t *ids, size_t n, uint64_t *nr_removed,
			struct dmr_err *err)
{
	w->removed = calloc(w->devs.n ? w->devs.n : 1, 1);
	if (!w->removed)
		return dmr_err_set(err, DMR_ENOMEM, "%s: out of memory", w->path);
	*nr_removed = 0;
	for (size_t i = 0; i < n; i++) {
		const struct tm_device *d = tm_devlist_find(&w->devs, ids[i]);
		if (!d || !d->in_details || !d->in_mapping)
			return dmr_err_set(err, DMR_ENOENT, "%s: device %llu does not exist%s", w->path,
					   (unsigned long long)ids[i],
					   !d ? "" : d->in_details ? " (it has no mapping tree)" : " (it has no details)");
		size_t k = (size_t)(d - w->devs.dev);
		*nr_removed += !w->removed[k];
		w->removed[k] = 1;
	}
	return 0;
}

/* ---- releasing the old state, in memory ---- */

/* The new top level holds one more reference to each kept device's tree,
 * before the old top level lets go of its own. */
static int hold_kept_roots(struct rewrite *w, struct dmr_err *err)
{
	for (size_t i = 0; i < w->devs.n; i++) {
		const struct tm_device *d = &w->devs.dev[i];
		if (w->removed[i] || !d->in_mapping)
			continue;
		uint64_t b = d->mapping_root;
		if (b == 0 || b >= w->p->limit || w->rc.meta[b] == 0)
			return dmr_err_set(err, DMR_ECORRUPT, "%s: block %llu: root of device %llu %s", w->path,
					   (unsigned long long)b, (unsigned long long)d->dev_id,
					   b == 0 || b >= w->p->limit ? "is outside the metadata" : "has reference count 0");
		w->rc.meta[b]++;
	}
	return 0;
}

static int release_old(struct rewrite *w, struct dmr_err *err)
{
	const struct tm_superblock *sb = &w->p->sb;
	const struct tm_del_tree trees[] = {
		{ "mapping top level", sb->data_mapping_root, 8, TM_DEL_DEVICE_ROOTS },
		{ "device details", sb->device_details_root, sizeof(struct tm_disk_device_details), TM_DEL_NO_REFS },
		{ "data space map index", sb->data_sm.bitmap_root, sizeof(struct tm_disk_index_entry), TM_DEL_NO_REFS },
		{ "data ref count tree", sb->data_sm.ref_count_root, 4, TM_DEL_NO_REFS },
		{ "metadata ref count tree", sb->metadata_sm.ref_count_root, 4, TM_DEL_NO_REFS },
	};
	int r = hold_kept_roots(w, err);
	if (!r)
		r = tm_btree_del(w->p, &w->rc, trees, sizeof(trees) / sizeof(trees[0]), err);
	for (uint64_t i = 0; i < w->nr_data_bitmaps && !r; i++)
		r = tm_refcount_dec_meta(w->p, &w->rc, w->data_bitmap[i], "data space map bitmap", err);
	for (uint64_t i = 0; i < w->nr_meta_bitmaps && !r; i++)
		r = tm_refcount_dec_meta(w->p, &w->rc, w->meta_bitmap[i], "metadata space map bitmap", err);
	if (!r)
		r = tm_refcount_dec_meta(w->p, &w->rc, sb->metadata_sm.bitmap_root, "metadata space map index", err);
	return r;
}

/* ---- allocating the new blocks ---- */

static size_t nr_kept(const struct rewrite *w, int details)
{
	size_t n = 0;
	for (size_t i = 0; i < w->devs.n; i++)
		n += !w->removed[i] && (details ? w->devs.dev[i].in_details : w->devs.dev[i].in_mapping);
	return n;
}

/* Blocks the new trees, bitmaps and index take. */
static uint64_t blocks_needed(const struct rewrite *w)
{
	return tm_btbuild_nr_nodes(nr_kept(w, 1), sizeof(struct tm_disk_device_details)) +
	       tm_btbuild_nr_nodes(nr_kept(w, 0), 8) +
	       tm_btbuild_nr_nodes(w->nr_data_bitmaps, sizeof(struct tm_disk_index_entry)) +
	       tm_btbuild_nr_nodes(tm_counts_overflowing(w->rc.data, w->rc.nr_data), 4) +
	       tm_btbuild_nr_nodes(tm_counts_overflowing(w->rc.meta, w->rc.nr_meta), 4) +
	       w->nr_data_bitmaps + w->nr_meta_bitmaps + 1;
}

/* Free in the committed space map and still unused: never a block the
 * committed state refers to, nor one released by this rewrite. */
static int allocatable(const struct rewrite *w, uint64_t b)
{
	return (w->committed_free[b / 8] >> (b % 8) & 1u) && w->rc.meta[b] == 0;
}

/* Takes the lowest allocatable blocks, counting one reference to each. */
static int allocate(struct rewrite *w, struct dmr_err *err)
{
	uint64_t need = blocks_needed(w), have = 0;
	for (uint64_t b = 1; b < w->p->limit; b++)
		have += allocatable(w, b);
	if (have < need)
		return dmr_err_set(err, DMR_EUNSUPP, "%s: metadata has %llu free blocks, the rewrite needs %llu (nothing changed)",
				   w->path, (unsigned long long)have, (unsigned long long)need);
	w->new_block = malloc((size_t)need * sizeof(*w->new_block));
	w->new_buf = tm_block_alloc((size_t)need);
	if (!w->new_block || !w->new_buf)
		return dmr_err_set(err, DMR_ENOMEM, "%s: out of memory for %llu new blocks", w->path,
				   (unsigned long long)need);
	for (uint64_t b = 1; w->nr_new < need; b++)
		if (allocatable(w, b))
			w->new_block[w->nr_new++] = b;
	for (size_t i = 0; i < w->nr_new; i++)
		w->rc.meta[w->new_block[i]] = 1;
	return 0;
}

/* ---- building the new blocks in memory ---- */

static unsigned char *next_block(void *ctx, uint64_t *block)
{
	struct rewrite *w = ctx;
	if (w->used == w->nr_new)
		return NULL;
	*block = w->new_block[w->used];
	unsigned char *buf = w->new_buf + w->used * TM_BLOCK_SIZE;
	memset(buf, 0, TM_BLOCK_SIZE);
	w->used++;
	return buf;
}

/* The details tree (details != 0) or the top level of the kept devices. */
static int build_device_tree(struct rewrite *w, const struct tm_blockalloc *a, int details, uint64_t *root,
			     struct dmr_err *err)
{
	uint32_t vs = details ? sizeof(struct tm_disk_device_details) : 8u;
	size_t n = nr_kept(w, details), k = 0;
	uint64_t *keys = malloc((n ? n : 1) * sizeof(*keys));
	unsigned char *vals = malloc((n ? n : 1) * vs);
	if (!keys || !vals) {
		free(keys);
		free(vals);
		return dmr_err_set(err, DMR_ENOMEM, "%s: out of memory", w->path);
	}
	for (size_t i = 0; i < w->devs.n; i++) {
		const struct tm_device *d = &w->devs.dev[i];
		if (w->removed[i] || !(details ? d->in_details : d->in_mapping))
			continue;
		keys[k] = d->dev_id;
		if (details) {
			struct tm_disk_device_details dd = {
				.mapped_blocks = htole64(d->mapped_blocks),
				.transaction_id = htole64(d->transaction_id),
				.creation_time = htole32(d->creation_time),
				.snapshotted_time = htole32(d->snapshotted_time),
			};
			memcpy(vals + k * vs, &dd, sizeof(dd));
		} else {
			tm_put_le64(vals + k * vs, d->mapping_root);
		}
		k++;
	}
	int r = tm_btbuild(a, vs, n, keys, vals, root, err);
	free(keys);
	free(vals);
	return r;
}

/* The overflow ref-count tree of counts[0..n). */
static int build_overflow_tree(struct rewrite *w, const struct tm_blockalloc *a, const uint32_t *counts, uint64_t n,
			       uint64_t *root, struct dmr_err *err)
{
	uint64_t nr = tm_counts_overflowing(counts, n);
	uint64_t *keys = malloc((size_t)(nr ? nr : 1) * sizeof(*keys));
	unsigned char *vals = malloc((size_t)(nr ? nr : 1) * 4u);
	int r = keys && vals ? 0 : dmr_err_set(err, DMR_ENOMEM, "%s: out of memory", w->path);
	if (!r) {
		tm_counts_overflow_pairs(counts, n, keys, vals);
		r = tm_btbuild(a, 4, (size_t)nr, keys, vals, root, err);
	}
	free(keys);
	free(vals);
	return r;
}

/* The bitmaps of a map and their index entries. */
static int build_bitmaps(struct rewrite *w, const struct tm_blockalloc *a, const uint32_t *counts, uint64_t n,
			 uint64_t nr_bitmaps, struct tm_disk_index_entry *ie, struct dmr_err *err)
{
	for (uint64_t k = 0; k < nr_bitmaps; k++) {
		uint64_t blk;
		unsigned char *buf = a->next(a->ctx, &blk);
		if (!buf)
			return dmr_err_set(err, DMR_EUSAGE, "%s: no more new blocks allocated for bitmaps", w->path);
		tm_bitmap_build(buf, blk, counts, n, k, &ie[k]);
	}
	return 0;
}

static int build_data_sm(struct rewrite *w, const struct tm_blockalloc *a, struct dmr_err *err)
{
	uint64_t nb = w->nr_data_bitmaps;
	struct tm_disk_index_entry *ie = malloc((size_t)(nb ? nb : 1) * sizeof(*ie));
	uint64_t *keys = malloc((size_t)(nb ? nb : 1) * sizeof(*keys));
	int r = ie && keys ? 0 : dmr_err_set(err, DMR_ENOMEM, "%s: out of memory", w->path);
	for (uint64_t k = 0; k < nb && !r; k++)
		keys[k] = k;
	if (!r)
		r = build_bitmaps(w, a, w->rc.data, w->rc.nr_data, nb, ie, err);
	if (!r)
		r = tm_btbuild(a, sizeof(*ie), (size_t)nb, keys, ie, &w->data_index_root, err);
	if (!r)
		r = build_overflow_tree(w, a, w->rc.data, w->rc.nr_data, &w->data_ref_root, err);
	free(ie);
	free(keys);
	return r;
}

/* Last: every new block is counted by now, the metadata map's own too. */
static int build_meta_sm(struct rewrite *w, const struct tm_blockalloc *a, struct dmr_err *err)
{
	struct tm_disk_index_entry ie[TM_MAX_METADATA_BITMAPS];
	int r = build_overflow_tree(w, a, w->rc.meta, w->rc.nr_meta, &w->meta_ref_root, err);
	if (!r)
		r = build_bitmaps(w, a, w->rc.meta, w->rc.nr_meta, w->nr_meta_bitmaps, ie, err);
	if (r)
		return r;
	unsigned char *buf = a->next(a->ctx, &w->meta_index);
	if (!buf)
		return dmr_err_set(err, DMR_EUSAGE, "%s: no new block allocated for the metadata index", w->path);
	tm_metadata_index_build(buf, w->meta_index, ie, w->nr_meta_bitmaps);
	return 0;
}

static int build_new(struct rewrite *w, struct dmr_err *err)
{
	const struct tm_blockalloc a = { .next = next_block, .ctx = w };
	int r = build_device_tree(w, &a, 1, &w->details_root, err);
	if (!r)
		r = build_device_tree(w, &a, 0, &w->top_root, err);
	if (!r)
		r = build_data_sm(w, &a, err);
	if (!r)
		r = build_meta_sm(w, &a, err);
	if (!r && w->used != w->nr_new)
		r = dmr_err_set(err, DMR_EUSAGE, "%s: %zu new blocks allocated, %zu used", w->path, w->nr_new, w->used);
	return r;
}

/* The committed superblock with the new roots. */
static void build_superblock(struct rewrite *w)
{
	const struct tm_superblock *sb = &w->p->sb;
	struct tm_sm_root dsm = {
		.nr_blocks = w->rc.nr_data,
		.nr_allocated = tm_counts_nonzero(w->rc.data, w->rc.nr_data),
		.bitmap_root = w->data_index_root,
		.ref_count_root = w->data_ref_root,
	};
	struct tm_sm_root msm = {
		.nr_blocks = sb->metadata_sm.nr_blocks,
		.nr_allocated = tm_counts_nonzero(w->rc.meta, w->rc.nr_meta),
		.bitmap_root = w->meta_index,
		.ref_count_root = w->meta_ref_root,
	};
	unsigned char *p = w->sb_raw;
	tm_sm_root_encode(p + offsetof(struct tm_disk_superblock, data_space_map_root), &dsm);
	tm_sm_root_encode(p + offsetof(struct tm_disk_superblock, metadata_space_map_root), &msm);
	tm_put_le64(p + offsetof(struct tm_disk_superblock, data_mapping_root), w->top_root);
	tm_put_le64(p + offsetof(struct tm_disk_superblock, device_details_root), w->details_root);
	tm_block_csum_set(p, TM_SALT_SUPERBLOCK);
}

/* ---- writing ---- */

/* New blocks first, in runs of consecutive blocks, then a flush; then the
 * superblock, which commits them, and a flush. */
static int write_new(struct rewrite *w, struct dmr_err *err)
{
	for (size_t i = 0; i < w->nr_new;) {
		size_t run = 1;
		while (i + run < w->nr_new && run < WRITE_RUN && w->new_block[i + run] == w->new_block[i] + run)
			run++;
		int r = sio_pwrite(w->fd, w->new_buf + i * TM_BLOCK_SIZE, run * TM_BLOCK_SIZE,
				   (off_t)(w->new_block[i] * TM_BLOCK_SIZE), w->path, err);
		if (r)
			return r;
		i += run;
	}
	int r = sio_fsync(w->fd, w->path, err);
	if (!r)
		r = sio_pwrite(w->fd, w->sb_raw, TM_BLOCK_SIZE, 0, w->path, err);
	if (!r)
		r = sio_fsync(w->fd, w->path, err);
	return r;
}

static void rewrite_free(struct rewrite *w)
{
	if (w->fd >= 0)
		close(w->fd);
	tm_pool_close(w->p);
	free(w->sb_raw);
	free(w->rc.meta);
	free(w->rc.data);
	free(w->committed_free);
	free(w->meta_bitmap);
	free(w->data_bitmap);
	tm_devlist_free(&w->devs);
	free(w->removed);
	free(w->new_block);
	free(w->new_buf);
}

/* The removal, up to the writing when do_write is 0: everything else (and
 * so every figure and every error but the writes') is the same. */
static int rewrite(const char *path, const uint64_t *ids, size_t n, int do_write, struct tm_rewrite_result *res,
		   struct dmr_err *err)
{
	struct rewrite w = { .path = path, .do_write = do_write, .fd = -1 };
	memset(res, 0, sizeof(*res));
	int r = load(&w, err);
	if (!r)
		r = mark_removed(&w, ids, n, &res->nr_removed, err);
	if (r)
		goto out;
	res->meta_used_before = tm_counts_nonzero(w.rc.meta, w.rc.nr_meta);
	res->data_used_before = tm_counts_nonzero(w.rc.data, w.rc.nr_data);
	if (n > 0) {
		r = release_old(&w, err);
		if (!r)
			r = allocate(&w, err);
		if (!r)
			r = build_new(&w, err);
		if (r)
			goto out;
		build_superblock(&w);
		if (w.do_write)
			r = write_new(&w, err);
		if (r)
			goto out;
		res->blocks_written = w.nr_new + 1;
	}
	res->meta_used_after = tm_counts_nonzero(w.rc.meta, w.rc.nr_meta);
	res->data_used_after = tm_counts_nonzero(w.rc.data, w.rc.nr_data);
out:
	rewrite_free(&w);
	return r;
}

int tm_rewrite_remove(const char *path, const uint64_t *ids, size_t n, struct tm_rewrite_result *res,
		      struct dmr_err *err)
{
	return rewrite(path, ids, n, 1, res, err);
}

int tm_rewrite_plan(const char *path, const uint64_t *ids, size_t n, struct tm_rewrite_result *res,
		    struct dmr_err *err)
{
	return rewrite(path, ids, n, 0, res, err);
}
