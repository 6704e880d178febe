/* The joiner: pool devices and Docker's files into one classified list. */
#include "config.h"
#include "inventory.h"
#include "loopfile/punch.h"
#include "thinmeta/freespace.h"
#include "thinmeta/spacemap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A sorted (string -> pointer) index for lookups by hash or id. */
struct sidx_ent {
	const char *key;
	const void *val;
	unsigned flags;
};

struct sidx {
	struct sidx_ent *e;
	size_t n, cap;
};

static int sidx_add(struct sidx *x, const char *key, const void *val, unsigned flags)
{
	if (!key)
		return 0;
	if (x->n == x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 64;
		struct sidx_ent *e = realloc(x->e, cap * sizeof(*e));
		if (!e)
			return -1;
		x->e = e;
		x->cap = cap;
	}
	x->e[x->n++] = (struct sidx_ent){ key, val, flags };
	return 0;
}

static int sidx_cmp(const void *a, const void *b)
{
	return strcmp(((const struct sidx_ent *)a)->key, ((const struct sidx_ent *)b)->key);
}

static void sidx_sort(struct sidx *x)
{
	if (x->n > 1)
		qsort(x->e, x->n, sizeof(*x->e), sidx_cmp);
}

/* Files by device id, and by hash among equal ids (qsort is not stable:
 * the file order alone would decide nothing). */
static int byid_cmp(const void *a, const void *b)
{
	int c = sidx_cmp(a, b);
	if (c)
		return c;
	const struct dk_devfile *fa = ((const struct sidx_ent *)a)->val, *fb = ((const struct sidx_ent *)b)->val;
	return strcmp(fa->hash ? fa->hash : "", fb->hash ? fb->hash : "");
}

/* The first entry with this key (entries with equal keys are adjacent). */
static const struct sidx_ent *sidx_find(const struct sidx *x, const char *key)
{
	if (!key)
		return NULL;
	size_t lo = 0, hi = x->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(x->e[mid].key, key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < x->n && strcmp(x->e[lo].key, key) == 0 ? &x->e[lo] : NULL;
}

static int sidx_has(const struct sidx *x, const char *key)
{
	return sidx_find(x, key) != NULL;
}

struct build {
	struct inventory *inv;
	const struct dk_state *st;
	struct sidx files;       /* hash -> dk_devfile */
	struct sidx layers;      /* cache-id -> dk_layer (live and removing) */
	struct sidx chains;      /* chain id -> dk_layer (live) */
	struct sidx pinned;      /* chain ids (or c/s layer ids) used by an image or a container */
	struct sidx imgchain;    /* chain id -> dk_image using that layer */
	struct sidx mounts;      /* mount-id / init-id -> dk_mount; flags 1 = init */
	struct sidx containers;  /* id -> dk_container */
	struct sidx images;      /* id -> dk_image */
	struct sidx buildkit;    /* key -> dk_buildkit_snapshot */
	struct sidx cslayers;    /* id -> dk_cs_layer */
	struct sidx cscont;      /* layer id -> dk_container (c/s) */
	size_t cap_items;
};

static void build_free(struct build *b)
{
	free(b->files.e);
	free(b->layers.e);
	free(b->chains.e);
	free(b->pinned.e);
	free(b->imgchain.e);
	free(b->mounts.e);
	free(b->containers.e);
	free(b->images.e);
	free(b->buildkit.e);
	free(b->cslayers.e);
	free(b->cscont.e);
}

/* Strings the inventory owns (owner descriptions). */
static const char *inv_strdup(struct inventory *inv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static const char *inv_strdup(struct inventory *inv, const char *fmt, ...)
{
	if (inv->nr_strings == inv->cap_strings) {
		size_t cap = inv->cap_strings ? inv->cap_strings * 2 : 64;
		const char **s = realloc(inv->strings, cap * sizeof(*s));
		if (!s)
			return NULL;
		inv->strings = s;
		inv->cap_strings = cap;
	}
	char *out = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&out, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	inv->strings[inv->nr_strings++] = out;
	return out;
}

static int push_str(const char ***arr, size_t *n, const char *s)
{
	if (!s)
		return -1;
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*arr)[i], s) == 0)
			return 0;
	const char **a = realloc(*arr, (*n + 1) * sizeof(*a));
	if (!a)
		return -1;
	a[(*n)++] = s;
	*arr = a;
	return 0;
}

static int evidence(struct inv_item *it, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int evidence(struct inv_item *it, const char *fmt, ...)
{
	char *line = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&line, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	char **e = realloc(it->evidence, (it->nr_evidence + 1) * sizeof(*e));
	if (!e) {
		free(line);
		return -1;
	}
	e[it->nr_evidence++] = line;
	it->evidence = e;
	return 0;
}

static struct inv_item *new_item(struct build *b)
{
	struct inventory *inv = b->inv;
	if (inv->nr_items == b->cap_items) {
		size_t cap = b->cap_items ? b->cap_items * 2 : 64;
		struct inv_item *it = realloc(inv->items, cap * sizeof(*it));
		if (!it)
			return NULL;
		inv->items = it;
		b->cap_items = cap;
	}
	struct inv_item *it = &inv->items[inv->nr_items++];
	memset(it, 0, sizeof(*it));
	it->thin_id = -1;
	return it;
}

/* Marks the chain from `chain` down to the bottom layer as pinned (sorted
 * once at the end). A chain longer than the number of layers has a cycle. */
static int pin_chain(struct build *b, const char *chain)
{
	for (size_t steps = 0; chain && steps <= b->st->nr_layers; steps++) {
		if (sidx_add(&b->pinned, chain, NULL, 0))
			return -1;
		const struct sidx_ent *e = sidx_find(&b->chains, chain);
		chain = e ? ((const struct dk_layer *)e->val)->parent : NULL;
	}
	return 0;
}

static int pin_cs_layer(struct build *b, const char *id)
{
	for (size_t steps = 0; id && steps <= b->st->nr_cs_layers; steps++) {
		if (sidx_add(&b->pinned, id, NULL, 0))
			return -1;
		const struct sidx_ent *e = sidx_find(&b->cslayers, id);
		id = e ? ((const struct dk_cs_layer *)e->val)->parent : NULL;
	}
	return 0;
}

static int build_indexes(struct build *b)
{
	const struct dk_state *st = b->st;
	int r = 0;
	for (size_t i = 0; i < st->nr_files && !r; i++)
		r = sidx_add(&b->files, st->files[i].hash, &st->files[i], 0);
	for (size_t i = 0; i < st->nr_layers && !r; i++) {
		r = sidx_add(&b->layers, st->layers[i].cache_id, &st->layers[i], 0);
		if (!r && !st->layers[i].removing && !st->layers[i].error)
			r = sidx_add(&b->chains, st->layers[i].chain_id, &st->layers[i], 0);
	}
	for (size_t i = 0; i < st->nr_mounts && !r; i++) {
		r = sidx_add(&b->mounts, st->mounts[i].mount_id, &st->mounts[i], 0);
		if (!r)
			r = sidx_add(&b->mounts, st->mounts[i].init_id, &st->mounts[i], 1);
	}
	for (size_t i = 0; i < st->nr_containers && !r; i++) {
		r = sidx_add(&b->containers, st->containers[i].id, &st->containers[i], 0);
		if (!r)
			r = sidx_add(&b->cscont, st->containers[i].layer, &st->containers[i], 0);
	}
	for (size_t i = 0; i < st->nr_images && !r; i++) {
		r = sidx_add(&b->images, st->images[i].id, &st->images[i], 0);
		for (size_t k = 0; k < st->images[i].nr_diff_ids && st->images[i].chain_ids && !r; k++)
			r = sidx_add(&b->imgchain, st->images[i].chain_ids[k], &st->images[i], 0);
	}
	for (size_t i = 0; i < st->nr_buildkit && !r; i++) {
		r = sidx_add(&b->buildkit, st->buildkit[i].key, &st->buildkit[i], 0);
		/* Commit(name, key) keeps the device under key: bucket name points at it. */
		if (!r && st->buildkit[i].committed_to)
			r = sidx_add(&b->buildkit, st->buildkit[i].committed_to, &st->buildkit[i], 1);
	}
	for (size_t i = 0; i < st->nr_cs_layers && !r; i++)
		r = sidx_add(&b->cslayers, st->cs_layers[i].id, &st->cs_layers[i], 0);
	if (r)
		return -1;
	sidx_sort(&b->files);
	sidx_sort(&b->layers);
	sidx_sort(&b->chains);
	sidx_sort(&b->mounts);
	sidx_sort(&b->containers);
	sidx_sort(&b->images);
	sidx_sort(&b->imgchain);
	sidx_sort(&b->buildkit);
	sidx_sort(&b->cslayers);
	sidx_sort(&b->cscont);

	/* What images and containers pin. */
	for (size_t i = 0; i < st->nr_images && !r; i++) {
		const struct dk_image *im = &st->images[i];
		if (im->nr_diff_ids > 0 && im->chain_ids)
			r = pin_chain(b, im->chain_ids[im->nr_diff_ids - 1]);
		if (!r && im->top_layer)
			r = pin_cs_layer(b, im->top_layer);
	}
	for (size_t i = 0; i < st->nr_mounts && !r; i++)
		r = pin_chain(b, st->mounts[i].parent);
	for (size_t i = 0; i < st->nr_containers && !r; i++)
		if (st->containers[i].layer)
			r = pin_cs_layer(b, st->containers[i].layer);
	sidx_sort(&b->pinned);
	return r;
}

/* The first 12 hex digits of an id, as docker prints them. Rotates over
 * four buffers so one printf can hold several. */
static const char *short_id(const char *id)
{
	static char buf[4][16];
	static unsigned next;
	if (!id)
		return "?";
	const char *h = strncmp(id, "sha256:", 7) == 0 ? id + 7 : id;
	char *out = buf[next++ % 4];
	snprintf(out, sizeof(buf[0]), "%.12s", h);
	return out;
}

/* Names an image: its tags, or its short id. */
static int add_image_owner(struct build *b, struct inv_item *it, const struct dk_image *im)
{
	if (im->nr_tags == 0)
		return push_str(&it->images, &it->nr_images, inv_strdup(b->inv, "%s", short_id(im->id)));
	for (size_t t = 0; t < im->nr_tags; t++)
		if (push_str(&it->images, &it->nr_images, im->tags[t]))
			return -1;
	return 0;
}

static int add_container_owner(struct build *b, struct inv_item *it, const struct dk_container *c)
{
	const char *state = c->dead ? "dead" : c->removal_in_progress ? "removing" : c->running ? "running"
		: c->paused ? "paused" : c->restarting ? "restarting" : "stopped";
	return push_str(&it->containers, &it->nr_containers,
			inv_strdup(b->inv, "%s (%s, %s)", c->name ? c->name : "?", short_id(c->id), state));
}

/* Whether the c/s layer id is in the chain from top down to the bottom
 * layer (a chain longer than the number of layers has a cycle). */
static int cs_chain_has(struct build *b, const char *top, const char *id)
{
	for (size_t steps = 0; top && steps <= b->st->nr_cs_layers; steps++) {
		if (strcmp(top, id) == 0)
			return 1;
		const struct sidx_ent *e = sidx_find(&b->cslayers, top);
		top = e ? ((const struct dk_cs_layer *)e->val)->parent : NULL;
	}
	return 0;
}

/* Facts and owners of the Docker side of a hash. */
static int docker_facts(struct build *b, struct inv_item *it, const char *hash)
{
	const struct dk_state *st = b->st;
	if (!hash)
		return 0;
	if (hash[0] == '\0') {
		it->facts |= INV_F_BASE;
		return 0;
	}
	/* layerdb layers using it as cache-id */
	const struct sidx_ent *e = sidx_find(&b->layers, hash);
	for (; e && e < b->layers.e + b->layers.n && strcmp(e->key, hash) == 0; e++) {
		const struct dk_layer *l = e->val;
		if (l->removing) {
			it->facts |= INV_F_LAYER_REMOVING;
			evidence(it, "layerdb: %s is being removed (cache-id %s)", l->dir, hash);
			continue;
		}
		it->facts |= INV_F_LAYER;
		push_str(&it->layers, &it->nr_layers, l->chain_id);
		if (sidx_has(&b->pinned, l->chain_id))
			it->facts |= INV_F_LAYER_PINNED;
		evidence(it, "layerdb: layer %s (diff %s) has cache-id %s", short_id(l->chain_id),
			 short_id(l->diff_id), hash);
		const struct sidx_ent *ie = sidx_find(&b->imgchain, l->chain_id);
		for (; ie && ie < b->imgchain.e + b->imgchain.n && strcmp(ie->key, l->chain_id) == 0; ie++)
			add_image_owner(b, it, ie->val);
	}
	/* layerdb/mounts: a container's (or builder's) read-write layers */
	e = sidx_find(&b->mounts, hash);
	for (; e && e < b->mounts.e + b->mounts.n && strcmp(e->key, hash) == 0; e++) {
		const struct dk_mount *m = e->val;
		it->facts |= INV_F_MOUNT;
		if (e->flags)
			it->facts |= INV_F_MOUNT_INIT;
		const struct sidx_ent *ce = sidx_find(&b->containers, m->name);
		evidence(it, "layerdb/mounts/%s: %s %s", m->name, e->flags ? "init-id" : "mount-id", hash);
		if (ce) {
			const struct dk_container *c = ce->val;
			it->facts |= INV_F_CONTAINER;
			if (c->dead || c->removal_in_progress)
				it->facts |= INV_F_CONTAINER_DEAD;
			add_container_owner(b, it, c);
			const struct sidx_ent *ie = sidx_find(&b->images, c->image);
			if (ie)
				add_image_owner(b, it, ie->val);
		} else {
			evidence(it, "no container %s: a builder's mount, or its container is gone", short_id(m->name));
		}
	}
	/* containers/storage: the layer id is the hash */
	e = sidx_find(&b->cslayers, hash);
	if (e) {
		const struct dk_cs_layer *l = e->val;
		if (l->incomplete) {
			it->facts |= INV_F_LAYER_REMOVING;
			evidence(it, "layers.json: layer %s is incomplete (containers/storage deletes it at load)",
				 short_id(hash));
		} else {
			it->facts |= INV_F_LAYER;
			if (sidx_has(&b->pinned, hash))
				it->facts |= INV_F_LAYER_PINNED;
			evidence(it, "layers.json: layer %s", short_id(hash));
		}
		for (size_t i = 0; i < st->nr_images; i++)
			if (cs_chain_has(b, st->images[i].top_layer, hash))
				add_image_owner(b, it, &st->images[i]);
	}
	e = sidx_find(&b->cscont, hash);
	if (e) {
		const struct dk_container *c = e->val;
		it->facts |= INV_F_MOUNT | INV_F_CONTAINER;
		it->facts &= ~(unsigned)INV_F_LAYER;
		add_container_owner(b, it, c);
		const struct sidx_ent *ie = sidx_find(&b->images, c->image);
		if (ie)
			add_image_owner(b, it, ie->val);
		evidence(it, "containers.json: container %s uses layer %s", short_id(c->id), short_id(hash));
	}
	e = sidx_find(&b->buildkit, hash);
	if (e) {
		const struct dk_buildkit_snapshot *bs = e->val;
		it->facts |= INV_F_BUILDKIT;
		if (e->flags)
			evidence(it, "buildkit/snapshots.db: snapshot %s was committed from %s", bs->key, hash);
		else
			evidence(it, "buildkit/snapshots.db has snapshot %s", hash);
	}
	return 0;
}

static int txn_names(const struct dk_state *st, uint64_t trans_id, const char *hash, int64_t thin_id)
{
	const struct dk_txn *t = &st->txn;
	if (!t->present || !t->valid || t->open_transaction_id <= trans_id)
		return 0;
	return (hash && t->device_hash && strcmp(hash, t->device_hash) == 0) ||
	       (thin_id >= 0 && t->device_id == thin_id);
}

static void file_facts(struct build *b, struct inv_item *it, const struct dk_devfile *f)
{
	it->file = f;
	it->hash = f->hash;
	it->path = f->name;
	it->facts |= INV_F_FILE;
	it->size_bytes = f->size;
	if (!f->valid) {
		it->facts |= INV_F_FILE_INVALID;
		evidence(it, "%s: %s", f->name, f->error ? f->error : "not a valid device file");
	}
	if (f->deleted) {
		it->facts |= INV_F_DELETED;
		evidence(it, "%s: \"deleted\": true", f->name);
	}
	if (f->from_legacy_json)
		evidence(it, "only in the legacy devicemapper/devicemapper/json (Docker <= 0.11)");
}

static int cmp_items(const void *x, const void *y)
{
	const struct inv_item *a = x, *b = y;
	/* pool devices by thin id, then file-only items by hash, then transients by path */
	int ka = a->thin_id >= 0 ? 0 : a->cls == INV_TRANSIENT ? 2 : 1;
	int kb = b->thin_id >= 0 ? 0 : b->cls == INV_TRANSIENT ? 2 : 1;
	if (ka != kb)
		return ka - kb;
	if (ka == 0)
		return a->thin_id < b->thin_id ? -1 : a->thin_id > b->thin_id;
	const char *sa = ka == 1 ? a->hash : a->path, *sb = kb == 1 ? b->hash : b->path;
	return strcmp(sa ? sa : "", sb ? sb : "");
}

struct reclaim_ctx {
	struct lf_runs runs;
	uint64_t bs;
	int oom;
};

static void collect_free(void *vctx, uint64_t block, uint64_t len)
{
	struct reclaim_ctx *c = vctx;
	if (lf_runs_push(&c->runs, block * c->bs, len * c->bs))
		c->oom = 1;
}

static int pool_summary(struct inventory *inv, struct tm_pool *p, const struct tm_usage *usage,
			const char *data_path, struct dmr_err *err)
{
	struct inv_pool *ps = &inv->pool;
	ps->data_block_bytes = (uint64_t)p->sb.data_block_size * 512u;
	ps->data_blocks = p->sb.data_sm.nr_blocks;
	ps->meta_blocks = p->sb.metadata_sm.nr_blocks;
	ps->trans_id = p->sb.trans_id;
	ps->needs_check = p->sb.flags & TM_SB_FLAG_NEEDS_CHECK;
	ps->held_root = p->sb.held_root;

	struct tm_space_map dsm, msm;
	int r = tm_sm_read(p, 0, &dsm, NULL, NULL, err);
	if (r)
		return r;
	r = tm_sm_read(p, 1, &msm, NULL, NULL, err);
	if (r) {
		tm_sm_free(&dsm);
		return r;
	}
	for (uint64_t b = 0; b < msm.nr_blocks; b++)
		ps->meta_used += tm_sm_count(&msm, b) != 0;
	tm_sm_free(&msm);

	struct reclaim_ctx rc = { .bs = ps->data_block_bytes };
	struct tm_free_stats fs;
	tm_free_runs(&dsm, &usage->map, collect_free, &rc, &fs);
	tm_sm_free(&dsm);
	ps->data_used = fs.used_blocks;
	ps->data_free = fs.free_blocks;
	ps->free_but_mapped = fs.free_but_mapped;
	ps->held_unmapped = fs.held_unmapped;
	ps->reclaim_runs = rc.runs.n;
	if (rc.oom) {
		r = dmr_err_set(err, DMR_ENOMEM, "out of memory listing free blocks");
		goto out;
	}
	if (!data_path) {
		ps->reclaim_note = "no data file";
		goto out;
	}
	int fd = open(data_path, O_RDONLY | O_CLOEXEC);
	struct stat sbuf;
	if (fd < 0 || fstat(fd, &sbuf) < 0) {
		ps->reclaim_note = "the data file cannot be opened";
		if (fd >= 0)
			close(fd);
		goto out;
	}
	if (!S_ISREG(sbuf.st_mode)) {
		ps->reclaim_note = "the data device is not a regular file (discards, not holes)";
		close(fd);
		goto out;
	}
	ps->data_file_bytes = (uint64_t)sbuf.st_size;
	ps->data_file_allocated = (uint64_t)sbuf.st_blocks * 512u;
	/* Exactly what reclaim would punch (loopfile/punch.h): never beyond
	 * the pool's blocks or the file's end. */
	uint64_t limit = ps->data_blocks * ps->data_block_bytes;
	if ((uint64_t)sbuf.st_size < limit)
		limit = (uint64_t)sbuf.st_size;
	struct lf_runs punch;
	struct dmr_err ferr = { 0 };
	if (lf_runs_allocated(fd, &rc.runs, limit, lf_fs_block(fd), &punch, NULL, &ferr) == 0) {
		ps->reclaim_known = 1;
		ps->reclaim_bytes = punch.bytes;
		ps->reclaim_runs = punch.n;
		lf_runs_free(&punch);
	} else {
		ps->reclaim_note = "holes in the data file could not be listed";
	}
	close(fd);
out:
	lf_runs_free(&rc.runs);
	return r;
}

int inv_build(struct inventory *inv, struct tm_pool *p, const struct tm_devlist *devs, const size_t *dev_of_root,
	      size_t nroots, const struct tm_usage *usage, const struct dk_state *st, const char *data_path,
	      struct dmr_err *err)
{
	memset(inv, 0, sizeof(*inv));
	struct build b = { .inv = inv, .st = st };
	size_t *root_of_dev = malloc((devs->n + 1) * sizeof(*root_of_dev));
	int r = 0;
	if (!root_of_dev || build_indexes(&b)) {
		r = dmr_err_set(err, DMR_ENOMEM, "out of memory building the inventory");
		goto out;
	}
	for (size_t i = 0; i < devs->n; i++)
		root_of_dev[i] = SIZE_MAX;
	for (size_t k = 0; k < nroots; k++)
		root_of_dev[dev_of_root[k]] = k;

	/* Which file claims each thin id: the first, by hash order. */
	struct sidx byid = { 0 };
	char (*idkeys)[24] = calloc(st->nr_files + 1, sizeof(*idkeys));
	if (!idkeys) {
		r = dmr_err_set(err, DMR_ENOMEM, "out of memory building the inventory");
		goto out;
	}
	for (size_t i = 0; i < st->nr_files; i++) {
		if (!st->files[i].valid || st->files[i].device_id < 0)
			continue;
		snprintf(idkeys[i], sizeof(idkeys[i]), "%020lld", (long long)st->files[i].device_id);
		if (sidx_add(&byid, idkeys[i], &st->files[i], 0)) {
			r = dmr_err_set(err, DMR_ENOMEM, "out of memory building the inventory");
			free(idkeys);
			free(byid.e);
			goto out;
		}
	}
	if (byid.n > 1)
		qsort(byid.e, byid.n, sizeof(*byid.e), byid_cmp);

	/* Pool devices. */
	for (size_t i = 0; i < devs->n; i++) {
		const struct tm_device *d = &devs->dev[i];
		struct inv_item *it = new_item(&b);
		if (!it) {
			r = dmr_err_set(err, DMR_ENOMEM, "out of memory building the inventory");
			break;
		}
		it->thin_id = (int64_t)d->dev_id;
		it->dev = d;
		it->facts |= INV_F_POOL;
		if (root_of_dev[i] != SIZE_MAX) {
			it->has_usage = 1;
			it->usage = usage->dev[root_of_dev[i]];
		}
		char key[24];
		snprintf(key, sizeof(key), "%020lld", (long long)d->dev_id);
		const struct sidx_ent *fe = sidx_find(&byid, key);
		if (fe) {
			file_facts(&b, it, fe->val);
			for (const struct sidx_ent *o = fe + 1; o < byid.e + byid.n && strcmp(o->key, key) == 0; o++)
				evidence(it, "%s also claims thin device %lld", ((const struct dk_devfile *)o->val)->name,
					 (long long)d->dev_id);
		}
		docker_facts(&b, it, it->hash);
		if (txn_names(st, p->sb.trans_id, it->hash, it->thin_id)) {
			it->facts |= INV_F_TXN_OPEN;
			evidence(it, "transaction-metadata: open transaction %llu > pool transaction %llu names it",
				 (unsigned long long)st->txn.open_transaction_id, (unsigned long long)p->sb.trans_id);
		}
		if (!fe)
			evidence(it, "no file in devicemapper/metadata/ has device_id %lld", (long long)d->dev_id);
	}
	/* Files whose device is not in the pool, and files that do not parse. */
	for (size_t i = 0; i < st->nr_files && !r; i++) {
		const struct dk_devfile *f = &st->files[i];
		if (f->valid && f->device_id >= 0 && tm_devlist_find(devs, (uint64_t)f->device_id)) {
			char key[24];
			snprintf(key, sizeof(key), "%020lld", (long long)f->device_id);
			const struct sidx_ent *fe = sidx_find(&byid, key);
			if (fe && fe->val == f)
				continue; /* joined above */
		}
		struct inv_item *it = new_item(&b);
		if (!it) {
			r = dmr_err_set(err, DMR_ENOMEM, "out of memory building the inventory");
			break;
		}
		file_facts(&b, it, f);
		docker_facts(&b, it, f->hash);
		if (f->valid && f->device_id >= 0) {
			if (tm_devlist_find(devs, (uint64_t)f->device_id))
				evidence(it, "thin device %lld belongs to another file", (long long)f->device_id);
			else
				evidence(it, "thin device %lld is not in the pool", (long long)f->device_id);
		}
		if (txn_names(st, p->sb.trans_id, f->hash, -1)) {
			it->facts |= INV_F_TXN_OPEN;
			evidence(it, "transaction-metadata: open transaction %llu > pool transaction %llu names it",
				 (unsigned long long)st->txn.open_transaction_id, (unsigned long long)p->sb.trans_id);
		}
	}
	free(idkeys);
	free(byid.e);
	/* Transient files and directories. */
	for (size_t i = 0; i < st->nr_transients && !r; i++) {
		const struct dk_transient *t = &st->transients[i];
		struct inv_item *it = new_item(&b);
		if (!it) {
			r = dmr_err_set(err, DMR_ENOMEM, "out of memory building the inventory");
			break;
		}
		it->facts = INV_F_TRANSIENT;
		it->path = t->path;
		it->transient_bytes = t->bytes;
		static const char *const what[] = {
			[DK_TRANSIENT_METADATA_TMP] = "temporary file of an interrupted metadata write",
			[DK_TRANSIENT_WRITE_SET] = "temporary directory of an interrupted layer write",
			[DK_TRANSIENT_IMAGEDB_TMP] = "temporary file of an interrupted image write",
			[DK_TRANSIENT_MNT_EMPTY] = "empty mount point left after a crash",
			[DK_TRANSIENT_MNT_NONEMPTY] = "mount point holding files written while unmounted",
			[DK_TRANSIENT_STRAY] = "stray file in devicemapper/metadata/",
		};
		evidence(it, "%s: %s", t->path, t->kind <= DK_TRANSIENT_STRAY ? what[t->kind] : "leftover");
	}
	if (r)
		goto out;
	for (size_t i = 0; i < inv->nr_items; i++)
		inv->items[i].cls = inv_classify(inv->items[i].facts);
	if (inv->nr_items > 1)
		qsort(inv->items, inv->nr_items, sizeof(*inv->items), cmp_items);

	r = pool_summary(inv, p, usage, data_path, err);
	if (r)
		goto out;

	/* Filesystems, from each device's first blocks. */
	if (data_path) {
		int fd = open(data_path, O_RDONLY | O_CLOEXEC);
		struct stat sbuf;
		struct lf_prober *pr = NULL;
		if (fd >= 0 && fstat(fd, &sbuf) == 0 && S_ISREG(sbuf.st_mode) &&
		    lf_prober_new(&pr, p, fd, (uint64_t)sbuf.st_size, err) == 0) {
			for (size_t i = 0; i < inv->nr_items; i++) {
				struct inv_item *it = &inv->items[i];
				if (!it->dev || !it->dev->in_mapping)
					continue;
				struct dmr_err perr = { 0 };
				if (lf_probe_device(pr, it->dev->mapping_root, &it->fs, &perr))
					evidence(it, "filesystem probe: %s", perr.msg);
			}
			lf_prober_free(pr);
		}
		if (fd >= 0)
			close(fd);
	}
out:
	free(root_of_dev);
	build_free(&b);
	if (r)
		inv_free(inv);
	return r;
}

void inv_free(struct inventory *inv)
{
	for (size_t i = 0; i < inv->nr_items; i++) {
		struct inv_item *it = &inv->items[i];
		for (size_t k = 0; k < it->nr_evidence; k++)
			free(it->evidence[k]);
		free(it->evidence);
		free(it->images);
		free(it->containers);
		free(it->layers);
	}
	free(inv->items);
	for (size_t i = 0; i < inv->nr_strings; i++)
		free((void *)inv->strings[i]);
	free(inv->strings);
	memset(inv, 0, sizeof(*inv));
}

const struct inv_item *inv_item_for_device(const struct inventory *inv, uint64_t thin_id)
{
	size_t lo = 0, hi = inv->nr_items;
	/* pool devices come first, by thin id */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct inv_item *it = &inv->items[mid];
		if (it->thin_id >= 0 && (uint64_t)it->thin_id < thin_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* thin_id above INT64_MAX would equal -1, a file-only item's id */
	return lo < inv->nr_items && thin_id <= INT64_MAX && inv->items[lo].thin_id == (int64_t)thin_id
		? &inv->items[lo] : NULL;
}

const char *inv_item_owner(const struct inv_item *it)
{
	if (!it)
		return "-";
	if (it->nr_containers)
		return it->containers[0];
	if (it->nr_images)
		return it->images[0];
	if (it->nr_layers)
		return it->layers[0];
	return "-";
}
