/* The clean plan: from classes and explicit targets to a list of devices
 * and files, in Docker's own removal order. See plan.h. */
#include "config.h"
#include "plan.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker/bkrefs.h"
#include "docker/scan.h"
#include "util/fmt.h"

#define MT "/mounts/"
/* containers/storage keeps layers and containers in layers.json and
 * containers.json, which this version does not rewrite. */
#define CS_NOTE "a containers/storage root: remove it with podman (layers.json and containers.json are not " \
		"rewritten by dmrescue)"

struct pb {
	struct plan *pl;
	const struct inventory *inv;
	const struct dk_state *st;
	int oom;
	int bk_unref;   /* PLAN_BUILDKIT_UNREFERENCED, and BuildKit's references were read */
	/* layers chosen for removal (chain ids), to tell whether a layer's
	 * children all go too */
	const struct dk_layer **gone_layers;
	size_t nr_gone_layers, cap_gone_layers;
	const struct dk_container **gone_containers;
	size_t nr_gone_containers, cap_gone_containers;
	const struct dk_image **gone_images;
	size_t nr_gone_images, cap_gone_images;
};

static char *vfmt(const char *fmt, va_list ap)
{
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0)
		return NULL;
	return s;
}

static char *fmt(struct pb *b, const char *f, ...) __attribute__((format(printf, 2, 3)));
static char *fmt(struct pb *b, const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	char *s = vfmt(f, ap);
	va_end(ap);
	if (!s)
		b->oom = 1;
	return s;
}

static int grow(struct pb *b, void **arr, size_t *cap, size_t need, size_t elem)
{
	if (b->oom)
		return -1;
	if (dk_grow(arr, cap, need, elem)) {
		b->oom = 1;
		return -1;
	}
	return 0;
}
#define GROW(b, arr, cap, need) grow((b), (void **)&(arr), &(cap), (need), sizeof(*(arr)))

static void skip(struct pb *b, const char *what, const char *f, ...) __attribute__((format(printf, 3, 4)));
static void skip(struct pb *b, const char *what, const char *f, ...)
{
	struct plan *pl = b->pl;
	if (GROW(b, pl->skips, pl->cap_skips, pl->nr_skips + 1))
		return;
	va_list ap;
	va_start(ap, f);
	char *why = vfmt(f, ap);
	va_end(ap);
	char *w = strdup(what);
	if (!why || !w) {
		free(why);
		free(w);
		b->oom = 1;
		return;
	}
	pl->skips[pl->nr_skips++] = (struct plan_skip){ w, why };
}

static const char *short_id(const char *id)
{
	if (strncmp(id, "sha256:", 7) == 0)
		id += 7;
	static __thread char buf[16];
	snprintf(buf, sizeof(buf), "%.12s", id);
	return buf;
}

int plan_labels_protected(const struct dk_label *labels, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (labels[i].key && strcmp(labels[i].key, "protected") == 0)
			return 1;
	return 0;
}

static void add_dev(struct pb *b, const struct inv_item *it, const char *reason, int is_protected)
{
	struct plan *pl = b->pl;
	if (!it || it->thin_id < 0 || b->oom)
		return;
	for (size_t i = 0; i < pl->nr_devs; i++)
		if (pl->devs[i].thin_id == (uint64_t)it->thin_id)
			return;
	if (GROW(b, pl->devs, pl->cap_devs, pl->nr_devs + 1))
		return;
	char *r = strdup(reason);
	if (!r) {
		b->oom = 1;
		return;
	}
	pl->devs[pl->nr_devs++] = (struct plan_dev){
		.thin_id = (uint64_t)it->thin_id,
		.hash = it->hash,
		.cls = it->cls,
		.reason = r,
		.mapped_blocks = it->has_usage ? it->usage.mapped : 0,
		.exclusive_blocks = it->has_usage ? it->usage.exclusive : 0,
		.is_protected = is_protected,
	};
}

/* path is consumed (freed on failure). */
static void add_path(struct pb *b, enum plan_file_op op, char *path, const char *reason, int rank, int optional)
{
	struct plan *pl = b->pl;
	if (!path) {
		b->oom = 1;
		return;
	}
	for (size_t i = 0; i < pl->nr_files; i++)
		if (strcmp(pl->files[i].path, path) == 0) {
			free(path);
			return;
		}
	char *r = strdup(reason);
	if (!r || GROW(b, pl->files, pl->cap_files, pl->nr_files + 1)) {
		free(r);
		free(path);
		b->oom = 1;
		return;
	}
	pl->files[pl->nr_files++] = (struct plan_file){ op, path, r, rank, optional };
}

enum {
	RANK_REPOS = 5,
	RANK_BUILDKIT = 8,
	RANK_CONTAINER = 10,
	RANK_MOUNT_FILES = 15, /* a container's device files, before its mount record */
	RANK_MOUNTS = 20,
	RANK_IMAGEDB = 25,
	RANK_DEVFILE = 40,
	RANK_LAYER = 42,       /* a layer's directory after its device file */
	RANK_TXN = 45,
	RANK_MNT = 50,
	RANK_TRANSIENT = 60,
};

/* The item of a Docker hash (device and/or file), or NULL. */
static const struct inv_item *item_by_hash(const struct inventory *inv, const char *hash)
{
	for (size_t i = 0; i < inv->nr_items; i++)
		if (inv->items[i].hash && strcmp(inv->items[i].hash, hash) == 0 && inv->items[i].cls != INV_TRANSIENT)
			return &inv->items[i];
	return NULL;
}

/* A device and its metadata/<hash> file, with the reason. */
static void add_dev_file_rank(struct pb *b, const struct inv_item *it, const char *reason, int is_protected, int rank)
{
	if (!it)
		return;
	add_dev(b, it, reason, is_protected);
	if (it->file && !it->file->from_legacy_json && it->file->name)
		add_path(b, PLAN_REMOVE, strdup(it->file->name), reason, rank, 0);
}

static void add_device_and_file(struct pb *b, const struct inv_item *it, const char *reason, int is_protected)
{
	add_dev_file_rank(b, it, reason, is_protected, RANK_DEVFILE);
}

static void add_hash(struct pb *b, const char *hash, const char *reason, int is_protected)
{
	if (hash)
		add_device_and_file(b, item_by_hash(b->inv, hash), reason, is_protected);
}


static int gone_container(const struct pb *b, const struct dk_container *c)
{
	for (size_t i = 0; i < b->nr_gone_containers; i++)
		if (b->gone_containers[i] == c)
			return 1;
	return 0;
}

static int gone_image(const struct pb *b, const struct dk_image *im)
{
	for (size_t i = 0; i < b->nr_gone_images; i++)
		if (b->gone_images[i] == im)
			return 1;
	return 0;
}

static int gone_layer(const struct pb *b, const struct dk_layer *l)
{
	for (size_t i = 0; i < b->nr_gone_layers; i++)
		if (b->gone_layers[i] == l)
			return 1;
	return 0;
}

/* Docker's container removal: the mount-id device, the -init device,
 * layerdb/mounts/<id>, containers/<id>. On disk containers/<id> goes first,
 * then the device files, then the mount record, and the devices with the
 * pool at the end (see plan.h): after a crash at any point what is left
 * is an orphan mount, a mount record naming no file, or pool orphans, all
 * of which the same clean removes. */
static void remove_mount(struct pb *b, const struct dk_mount *m, const char *reason, int is_protected)
{
	const char *h[2] = { m->mount_id, m->init_id };
	for (int i = 0; i < 2; i++)
		if (h[i])
			add_dev_file_rank(b, item_by_hash(b->inv, h[i]), reason, is_protected, RANK_MOUNT_FILES);
	add_path(b, PLAN_REMOVE, fmt(b, "%s%s%s", DK_LAYERDB, MT, m->name), reason, RANK_MOUNTS, 0);
}

static void remove_container(struct pb *b, const struct dk_container *c, const char *reason, int is_protected)
{
	if (gone_container(b, c) || GROW(b, b->gone_containers, b->cap_gone_containers, b->nr_gone_containers + 1))
		return;
	b->gone_containers[b->nr_gone_containers++] = c;
	for (size_t i = 0; i < b->st->nr_mounts; i++)
		if (b->st->mounts[i].name && strcmp(b->st->mounts[i].name, c->id) == 0)
			remove_mount(b, &b->st->mounts[i], reason, is_protected);
	add_path(b, PLAN_REMOVE, fmt(b, "%s/%s", DK_CONTAINERS, c->id), reason, RANK_CONTAINER, 0);
}

/* The container that has hash as its mount-id or init-id. */
static const struct dk_mount *mount_of_hash(const struct dk_state *st, const char *hash)
{
	for (size_t i = 0; i < st->nr_mounts; i++) {
		const struct dk_mount *m = &st->mounts[i];
		if ((m->mount_id && strcmp(m->mount_id, hash) == 0) || (m->init_id && strcmp(m->init_id, hash) == 0))
			return m;
	}
	return NULL;
}

static int image_protected(const struct dk_state *st, const char *image_id)
{
	for (size_t i = 0; image_id && i < st->nr_images; i++)
		if (st->images[i].id && strcmp(st->images[i].id, image_id) == 0)
			return plan_labels_protected(st->images[i].labels, st->images[i].nr_labels);
	return 0;
}

static int container_protected(const struct dk_state *st, const struct dk_container *c)
{
	return plan_labels_protected(c->labels, c->nr_labels) || image_protected(st, c->image);
}

/* Is any owner of hash protected (a container using it, or an image whose
 * layers include it)? what gets the owner's name. */
static int hash_protected(const struct pb *b, const char *hash, char *what, size_t len)
{
	const struct dk_state *st = b->st;
	const struct dk_mount *m = hash ? mount_of_hash(st, hash) : NULL;
	const struct dk_container *c = m && m->name ? dk_container_by_id(st, m->name) : NULL;
	if (c && container_protected(st, c)) {
		snprintf(what, len, "container %s", c->name ? c->name : short_id(c->id));
		return 1;
	}
	for (size_t i = 0; hash && i < st->nr_layers; i++) {
		const struct dk_layer *l = &st->layers[i];
		if (!l->cache_id || strcmp(l->cache_id, hash) != 0)
			continue;
		for (size_t k = 0; k < st->nr_images; k++) {
			const struct dk_image *im = &st->images[k];
			for (size_t j = 0; j < im->nr_diff_ids && im->chain_ids; j++)
				if (im->chain_ids[j] && strcmp(im->chain_ids[j], l->chain_id) == 0 &&
				    plan_labels_protected(im->labels, im->nr_labels)) {
					snprintf(what, len, "image %s", im->nr_tags ? im->tags[0] : short_id(im->id));
					return 1;
				}
		}
	}
	return 0;
}

/* Who still uses layer l, apart from what is already going: an image, a
 * container's mount, or a kept layer above it. NULL when nothing. */
static const char *layer_user(struct pb *b, const struct dk_layer *l, char *buf, size_t len)
{
	const struct dk_state *st = b->st;
	for (size_t k = 0; k < st->nr_images; k++) {
		const struct dk_image *im = &st->images[k];
		if (gone_image(b, im))
			continue;
		for (size_t j = 0; j < im->nr_diff_ids && im->chain_ids; j++)
			if (im->chain_ids[j] && strcmp(im->chain_ids[j], l->chain_id) == 0) {
				snprintf(buf, len, "image %s", im->nr_tags ? im->tags[0] : short_id(im->id));
				return buf;
			}
	}
	for (size_t k = 0; k < st->nr_mounts; k++) {
		const struct dk_mount *m = &st->mounts[k];
		const struct dk_container *c = m->name ? dk_container_by_id(st, m->name) : NULL;
		if (c && gone_container(b, c))
			continue;
		if (m->parent && strcmp(m->parent, l->chain_id) == 0) {
			snprintf(buf, len, "the read-write layer %s", short_id(m->name ? m->name : "?"));
			return buf;
		}
	}
	for (size_t k = 0; l->cache_id && k < st->nr_buildkit; k++)
		if (st->buildkit[k].key && strcmp(st->buildkit[k].key, l->cache_id) == 0) {
			snprintf(buf, len, "BuildKit's snapshot %s (buildkit/snapshots.db)", st->buildkit[k].key);
			return buf;
		}
	for (size_t k = 0; k < st->nr_layers; k++) {
		const struct dk_layer *o = &st->layers[k];
		if (o != l && !o->removing && o->parent && strcmp(o->parent, l->chain_id) == 0 && !gone_layer(b, o)) {
			snprintf(buf, len, "layer %s above it", short_id(o->chain_id));
			return buf;
		}
	}
	return NULL;
}

static void remove_layer(struct pb *b, const struct dk_layer *l, const char *reason, int is_protected)
{
	if (gone_layer(b, l) || GROW(b, b->gone_layers, b->cap_gone_layers, b->nr_gone_layers + 1))
		return;
	b->gone_layers[b->nr_gone_layers++] = l;
	add_path(b, PLAN_REMOVE, strdup(l->dir), reason, RANK_LAYER, 0);
	add_hash(b, l->cache_id, reason, is_protected);
}

/* Releases the layers of a chain from the top down, each one only when
 * nothing else uses it (Docker's layer reference counting). */
static void release_chain(struct pb *b, const char *top_chain, const char *reason, int is_protected)
{
	char who[160];
	for (const struct dk_layer *l = dk_layer_by_chain(b->st, top_chain); l; l = dk_layer_by_chain(b->st, l->parent)) {
		if (layer_user(b, l, who, sizeof(who))) {
			char what[64];
			snprintf(what, sizeof(what), "layer %s", short_id(l->chain_id));
			skip(b, what, "stays with the layers below it: %s uses it", who);
			break;
		}
		remove_layer(b, l, reason, is_protected);
	}
}

/* A layer above l that stays, for the unreferenced-layer rule, which
 * removes whole unreferenced stacks: a child that is not an unreferenced
 * layer itself (BuildKit's, say), or one with such a layer above it. */
static const struct dk_layer *kept_above(struct pb *b, const struct dk_layer *l, size_t depth)
{
	const struct dk_state *st = b->st;
	if (depth > st->nr_layers)
		return l; /* a cycle: keep */
	for (size_t k = 0; k < st->nr_layers; k++) {
		const struct dk_layer *o = &st->layers[k];
		if (o == l || o->removing || !o->parent || strcmp(o->parent, l->chain_id) != 0 || gone_layer(b, o))
			continue;
		const struct inv_item *it = o->cache_id ? item_by_hash(b->inv, o->cache_id) : NULL;
		if (!it || it->cls != INV_UNREFERENCED_LAYER)
			return o;
		const struct dk_layer *k2 = kept_above(b, o, depth + 1);
		if (k2)
			return k2;
	}
	return NULL;
}

static int txn_ahead(const struct dk_state *st, const struct inventory *inv)
{
	return st->txn.present && st->txn.valid && st->txn.open_transaction_id > inv->pool.trans_id;
}

static const char *transient_ok(const struct dk_state *st, const char *path)
{
	for (size_t i = 0; i < st->nr_transients; i++) {
		const struct dk_transient *t = &st->transients[i];
		if (strcmp(t->path, path) != 0)
			continue;
		switch (t->kind) {
		case DK_TRANSIENT_METADATA_TMP:
		case DK_TRANSIENT_WRITE_SET:
		case DK_TRANSIENT_IMAGEDB_TMP:
		case DK_TRANSIENT_MNT_EMPTY:
			return NULL;
		case DK_TRANSIENT_MNT_NONEMPTY:
			return "holds files written while nothing was mounted there: look at them first";
		case DK_TRANSIENT_STRAY:
			return "not a temporary file: move it out of metadata/ by hand after a look";
		}
	}
	return "not a known temporary file";
}

static unsigned class_flag(enum inv_class c)
{
	switch (c) {
	case INV_POOL_ORPHAN:
	case INV_DEFERRED_DELETED:
	case INV_OPEN_TRANSACTION:
	case INV_HALF_REMOVED_LAYER:
	case INV_TRANSIENT:
		return 0; /* default */
	case INV_DRIVER_ORPHAN:
		return PLAN_DRIVER_ORPHANS;
	case INV_ORPHAN_MOUNT:
		/* also what an interrupted container removal leaves */
		return PLAN_DRIVER_ORPHANS | PLAN_DEAD_CONTAINERS;
	case INV_HOLLOW_FILE:
		return PLAN_HOLLOW_FILES;
	case INV_DEAD_CONTAINER:
		return PLAN_DEAD_CONTAINERS;
	case INV_UNREFERENCED_LAYER:
		return PLAN_UNREFERENCED_LAYERS;
	case INV_BAD_FILE:
		return PLAN_BAD_FILES;
	case INV_BUILDKIT:
		return PLAN_BUILDKIT_CACHE;
	default:
		return ~0u; /* never by a class rule */
	}
}

static const char *class_option(enum inv_class c)
{
	switch (class_flag(c)) {
	case PLAN_DRIVER_ORPHANS: return "--driver-orphans";
	case PLAN_DRIVER_ORPHANS | PLAN_DEAD_CONTAINERS: return "--driver-orphans or --dead-containers";
	case PLAN_HOLLOW_FILES: return "--hollow-files";
	case PLAN_DEAD_CONTAINERS: return "--dead-containers";
	case PLAN_UNREFERENCED_LAYERS: return "--unreferenced-layers";
	case PLAN_BAD_FILES: return "--bad-files";
	case PLAN_BUILDKIT_CACHE: return "--buildkit-cache";
	default: return NULL;
	}
}

static void item_name(const struct inv_item *it, char *buf, size_t len)
{
	if (it->thin_id >= 0)
		snprintf(buf, len, "thin %lld (%s)", (long long)it->thin_id,
			 it->hash ? (it->hash[0] ? it->hash : "base") : "no file");
	else
		snprintf(buf, len, "%s", it->path ? it->path : it->hash ? it->hash : "?");
}

/* The open transaction: Docker's rollback deletes device_id from the pool
 * and metadata/<device_hash>, then transaction-metadata. One safety on top:
 * a device that another valid file claims is not deleted. */
static void by_open_transaction(struct pb *b, const struct inv_item *it, const char *reason)
{
	const struct dk_txn *t = &b->st->txn;
	char name[160];
	item_name(it, name, sizeof(name));
	if (it->thin_id >= 0 && it->file && it->file->valid && t->device_hash && it->hash &&
	    strcmp(it->hash, t->device_hash) != 0) {
		skip(b, name,
		     "the open transaction names thin %lld, but %s claims it: Docker's rollback would delete it; "
		     "check by hand", (long long)it->thin_id, it->file->name);
		return;
	}
	add_dev(b, it, reason, 0);
	if (it->file && it->hash && t->device_hash && strcmp(it->hash, t->device_hash) == 0 && !it->file->from_legacy_json)
		add_path(b, PLAN_REMOVE, strdup(it->file->name), reason, RANK_DEVFILE, 0);
}

static int is_buildkit_key(const char *h)
{
	return dk_buildkit_key_shape(h);
}

static void by_class(struct pb *b, const struct inv_item *it, unsigned flags)
{
	unsigned need = class_flag(it->cls);
	char name[160], who[160];
	if (need == ~0u)
		return;
	/* A device named like a BuildKit key that nothing knows is what an
	 * interrupted build (or an interrupted --buildkit-cache) leaves. */
	if (it->cls == INV_DRIVER_ORPHAN && (flags & PLAN_BUILDKIT_CACHE) && is_buildkit_key(it->hash))
		need = PLAN_BUILDKIT_CACHE;
	/* The same for the unreferenced snapshots (an interrupted
	 * --buildkit-unreferenced leaves exactly these), unless a cache
	 * record or a lease names the key. */
	else if (it->cls == INV_DRIVER_ORPHAN && b->bk_unref && is_buildkit_key(it->hash) &&
		 !dk_buildkit_is_ref(b->st, it->hash))
		need = PLAN_BUILDKIT_UNREFERENCED;
	if (it->cls == INV_BUILDKIT && !(flags & need))
		return; /* BuildKit's live cache: not a leftover, nothing to say */
	if (need && !(flags & need)) {
		item_name(it, name, sizeof(name));
		skip(b, name, "%s: opt-in, add %s", inv_class_name(it->cls), class_option(it->cls));
		return;
	}
	if (it->hash && hash_protected(b, it->hash, who, sizeof(who))) {
		item_name(it, name, sizeof(name));
		skip(b, name, "%s: %s carries the label \"protected\" (only an explicit target removes it)",
		     inv_class_name(it->cls), who);
		return;
	}
	const char *reason = inv_class_name(it->cls);
	const struct dk_state *st = b->st;
	if (st->layout == DK_LAYOUT_CSTORAGE &&
	    (it->cls == INV_DEAD_CONTAINER || it->cls == INV_ORPHAN_MOUNT || it->cls == INV_UNREFERENCED_LAYER)) {
		item_name(it, name, sizeof(name));
		skip(b, name, "%s: %s", inv_class_name(it->cls), CS_NOTE);
		return;
	}
	switch (it->cls) {
	case INV_POOL_ORPHAN:
		add_dev(b, it, reason, 0);
		break;
	case INV_OPEN_TRANSACTION:
		by_open_transaction(b, it, reason);
		break;
	case INV_DEFERRED_DELETED:
	case INV_DRIVER_ORPHAN:
	case INV_BUILDKIT:
		add_device_and_file(b, it, reason, 0);
		break;
	case INV_HOLLOW_FILE:
	case INV_BAD_FILE:
		if (it->file && !it->file->from_legacy_json)
			add_path(b, PLAN_REMOVE, strdup(it->file->name), reason, RANK_DEVFILE, 0);
		break;
	case INV_HALF_REMOVED_LAYER:
		for (size_t i = 0; i < st->nr_layers; i++)
			if (st->layers[i].removing && st->layers[i].cache_id && it->hash &&
			    strcmp(st->layers[i].cache_id, it->hash) == 0)
				add_path(b, PLAN_REMOVE, strdup(st->layers[i].dir), reason, RANK_LAYER, 0);
		add_device_and_file(b, it, reason, 0);
		break;
	case INV_ORPHAN_MOUNT: {
		const struct dk_mount *m = it->hash ? mount_of_hash(st, it->hash) : NULL;
		if (m)
			remove_mount(b, m, reason, 0);
		break;
	}
	case INV_DEAD_CONTAINER: {
		const struct dk_mount *m = it->hash ? mount_of_hash(st, it->hash) : NULL;
		const struct dk_container *c = m && m->name ? dk_container_by_id(st, m->name) : NULL;
		if (c)
			remove_container(b, c, reason, 0);
		break;
	}
	case INV_UNREFERENCED_LAYER:
		for (size_t i = 0; i < st->nr_layers; i++) {
			const struct dk_layer *l = &st->layers[i];
			if (l->removing || !l->cache_id || !it->hash || strcmp(l->cache_id, it->hash) != 0)
				continue;
			/* Its children are unreferenced too (or it would be pinned),
			 * and released in the same pass, unless one is kept without
			 * pinning it (BuildKit's). */
			const struct dk_layer *k = kept_above(b, l, 0);
			if (k) {
				item_name(it, name, sizeof(name));
				skip(b, name, "%s: layer %s above it stays", reason, short_id(k->chain_id));
				continue;
			}
			remove_layer(b, l, reason, 0);
		}
		break;
	case INV_TRANSIENT: {
		const char *why = transient_ok(st, it->path);
		if (why) {
			skip(b, it->path, "%s", why);
			break;
		}
		add_path(b, PLAN_REMOVE, strdup(it->path), reason, RANK_TRANSIENT, 0);
		break;
	}
	default:
		break;
	}
}

/* --- explicit targets --- */

static void refuse(struct pb *b, const char *what, const char *f, ...) __attribute__((format(printf, 3, 4)));
static void refuse(struct pb *b, const char *what, const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	char *why = vfmt(f, ap);
	va_end(ap);
	if (!why) {
		b->oom = 1;
		return;
	}
	skip(b, what, "%s", why);
	free(why);
	b->pl->refused = 1;
}

static void target_device(struct pb *b, const char *arg)
{
	const struct inventory *inv = b->inv;
	const struct inv_item *it = NULL;
	for (size_t i = 0; i < inv->nr_items && !it; i++) {
		const struct inv_item *x = &inv->items[i];
		if (x->cls == INV_TRANSIENT)
			continue;
		if (fmt_all_digits(arg) ? x->thin_id >= 0 && (uint64_t)x->thin_id == strtoull(arg, NULL, 10)
				   : x->hash && x->hash[0] && strcmp(x->hash, arg) == 0)
			it = x;
	}
	char what[200];
	snprintf(what, sizeof(what), "--device %s", arg);
	if (!it) {
		refuse(b, what, "no such device in the pool or in devicemapper/metadata/");
		return;
	}
	if (b->st->layout == DK_LAYOUT_CSTORAGE &&
	    (it->cls == INV_DEAD_CONTAINER || it->cls == INV_ORPHAN_MOUNT || it->cls == INV_UNREFERENCED_LAYER)) {
		refuse(b, what, "%s: %s", inv_class_name(it->cls), CS_NOTE);
		return;
	}
	switch (it->cls) {
	case INV_BASE:
		refuse(b, what, "the base device: Docker makes every new image layer from it");
		return;
	case INV_IMAGE_LAYER:
		refuse(b, what, "a layer of image %s: remove the image (--image)",
		       it->nr_images ? it->images[0] : "?");
		return;
	case INV_CONTAINER:
	case INV_CONTAINER_INIT:
		refuse(b, what, "a layer of container %s: remove the container (--container)",
		       it->nr_containers ? it->containers[0] : "?");
		return;
	case INV_BUILDKIT:
		refuse(b, what, "BuildKit still refers to it in buildkit/snapshots.db");
		return;
	case INV_UNREFERENCED_LAYER: {
		char who[160];
		for (size_t i = 0; i < b->st->nr_layers; i++) {
			const struct dk_layer *l = &b->st->layers[i];
			if (l->removing || !l->cache_id || strcmp(l->cache_id, it->hash) != 0)
				continue;
			if (layer_user(b, l, who, sizeof(who))) {
				refuse(b, what, "layer %s is still used by %s", short_id(l->chain_id), who);
				return;
			}
			remove_layer(b, l, "named", 0);
		}
		return;
	}
	default:
		break;
	}
	if (it->cls == INV_DEAD_CONTAINER || it->cls == INV_ORPHAN_MOUNT) {
		const struct dk_mount *m = mount_of_hash(b->st, it->hash);
		const struct dk_container *c = m && m->name ? dk_container_by_id(b->st, m->name) : NULL;
		if (c)
			remove_container(b, c, "named", container_protected(b->st, c));
		else if (m)
			remove_mount(b, m, "named", 0);
		return;
	}
	if (it->cls == INV_HALF_REMOVED_LAYER || it->cls == INV_OPEN_TRANSACTION) {
		by_class(b, it, ~0u);
		return;
	}
	char who[160];
	add_device_and_file(b, it, "named", it->hash && hash_protected(b, it->hash, who, sizeof(who)));
}

static void target_container(struct pb *b, const char *arg)
{
	const struct dk_state *st = b->st;
	const struct dk_container *found;
	int many = 0;
	char what[200];
	snprintf(what, sizeof(what), "--container %s", arg);
	if (st->layout == DK_LAYOUT_CSTORAGE) {
		refuse(b, what, "%s", CS_NOTE);
		return;
	}
	found = dk_container_find(st, arg, &many);
	if (many) {
		refuse(b, what, "more than one container id starts with %s", arg);
		return;
	}
	if (!found) {
		refuse(b, what, "no such container");
		return;
	}
	remove_container(b, found, "named", container_protected(st, found));
}

static int dropped(const struct plan *pl, const char *tag)
{
	for (size_t i = 0; i < pl->nr_drop_tags; i++)
		if (strcmp(pl->drop_tags[i], tag) == 0)
			return 1;
	return 0;
}

static void drop_tag(struct pb *b, const char *tag)
{
	if (dropped(b->pl, tag))
		return;
	char *d = strdup(tag);
	if (!d || GROW(b, b->pl->drop_tags, b->pl->cap_drop_tags, b->pl->nr_drop_tags + 1)) {
		free(d);
		b->oom = 1;
		return;
	}
	b->pl->drop_tags[b->pl->nr_drop_tags++] = d;
}

static void target_image(struct pb *b, const char *arg)
{
	const struct dk_state *st = b->st;
	char what[600];
	snprintf(what, sizeof(what), "--image %s", arg);
	if (st->layout == DK_LAYOUT_CSTORAGE) {
		refuse(b, what, "%s", CS_NOTE);
		return;
	}
	int by_tag, many;
	const struct dk_image *im = dk_image_find(st, arg, &by_tag, &many);
	if (many) {
		refuse(b, what, "more than one image matches %s", arg);
		return;
	}
	if (!im) {
		refuse(b, what, "no such image");
		return;
	}
	if (gone_image(b, im))
		return; /* named already */
	/* Untag only, as 'docker rmi TAG' does when the image keeps other
	 * tags (not counting those named before). */
	if (by_tag) {
		char ref[512];
		snprintf(ref, sizeof(ref), "%s:latest", arg);
		size_t left = 0;
		for (size_t t = 0; t < im->nr_tags; t++)
			if (strcmp(im->tags[t], arg) != 0 && strcmp(im->tags[t], ref) != 0 && !dropped(b->pl, im->tags[t]))
				left++;
		if (left) {
			for (size_t t = 0; t < im->nr_tags; t++)
				if (strcmp(im->tags[t], arg) == 0 || strcmp(im->tags[t], ref) == 0)
					drop_tag(b, im->tags[t]);
			add_path(b, PLAN_REWRITE_REPOS, strdup(DK_REPOSITORIES), "untag", RANK_REPOS, 0);
			return;
		}
	}
	for (size_t i = 0; i < st->nr_containers; i++) {
		const struct dk_container *c = &st->containers[i];
		if (c->image && im->id && strcmp(c->image, im->id) == 0 && !gone_container(b, c)) {
			refuse(b, what, "container %s uses it: remove the container first (--container)",
			       c->name ? c->name : short_id(c->id));
			return;
		}
	}
	const char *top = dk_image_top_chain(im);
	for (size_t i = 0; top && i < st->nr_images; i++) {
		const struct dk_image *o = &st->images[i];
		if (o == im || gone_image(b, o) || o->nr_diff_ids <= im->nr_diff_ids || !o->chain_ids)
			continue;
		if (o->chain_ids[im->nr_diff_ids - 1] && strcmp(o->chain_ids[im->nr_diff_ids - 1], top) == 0) {
			refuse(b, what, "image %s is built on it (dependent child image)",
			       o->nr_tags ? o->tags[0] : short_id(o->id));
			return;
		}
	}
	if (GROW(b, b->gone_images, b->cap_gone_images, b->nr_gone_images + 1))
		return;
	b->gone_images[b->nr_gone_images++] = im;
	int prot = plan_labels_protected(im->labels, im->nr_labels);
	for (size_t t = 0; t < im->nr_tags; t++)
		drop_tag(b, im->tags[t]);
	if (im->nr_tags)
		add_path(b, PLAN_REWRITE_REPOS, strdup(DK_REPOSITORIES), "untag", RANK_REPOS, 0);
	add_path(b, PLAN_REMOVE, fmt(b, "%s/content/sha256/%s", DK_IMAGEDB, im->id + 7), "named", RANK_IMAGEDB, 0);
	add_path(b, PLAN_REMOVE, fmt(b, "%s/metadata/sha256/%s", DK_IMAGEDB, im->id + 7), "named", RANK_IMAGEDB, 1);
	release_chain(b, top, "named", prot);
}

/* --- BuildKit's unreferenced snapshots --- */

/* Why the class cannot be planned, or NULL. */
static const char *bk_unref_refusal(const struct dk_state *st, char *buf, size_t len)
{
	if (st->layout != DK_LAYOUT_DOCKER || !st->buildkit_present)
		return NULL; /* no BuildKit cache: nothing to do */
	if (st->buildkit_damaged)
		snprintf(buf, len, "--buildkit-unreferenced: buildkit/snapshots.db is damaged ('dmrescue scan' says "
			 "how): not rewritten; --buildkit-cache drops the whole cache instead");
	else if (!st->buildkit_refs_read)
		snprintf(buf, len, "--buildkit-unreferenced: cannot tell which snapshots BuildKit still uses: %s; "
			 "--buildkit-cache drops the whole cache instead",
			 st->buildkit_refs_error ? st->buildkit_refs_error : "its databases were not read");
	else
		return NULL;
	return buf;
}

/* A graph-driver id something kept still needs. */
static int bk_hash_kept(const struct dk_state *st, const unsigned char *drop, const char *hash)
{
	if (dk_buildkit_is_ref(st, hash) || dk_buildkit_docker_uses(st, hash))
		return 1;
	for (size_t i = 0; i < st->nr_buildkit; i++)
		if (!drop[i] && ((st->buildkit[i].key && strcmp(st->buildkit[i].key, hash) == 0) ||
				 (st->buildkit[i].committed_to && strcmp(st->buildkit[i].committed_to, hash) == 0)))
			return 1;
	return 0;
}

static void buildkit_unreferenced(struct pb *b)
{
	const struct dk_state *st = b->st;
	struct plan *pl = b->pl;
	if (!b->bk_unref || !st->nr_buildkit)
		return;
	unsigned char *drop = calloc(st->nr_buildkit, 1);
	size_t nr = drop ? dk_buildkit_unreferenced(st, drop) : (size_t)-1;
	if (nr == (size_t)-1) {
		free(drop);
		b->oom = 1;
		return;
	}
	for (size_t i = 0; i < st->nr_buildkit && !b->oom; i++) {
		if (!drop[i])
			continue;
		const struct dk_buildkit_snapshot *s = &st->buildkit[i];
		char *k = strdup(s->key);
		if (!k || GROW(b, pl->drop_snapshots, pl->cap_drop_snapshots, pl->nr_drop_snapshots + 1)) {
			free(k);
			b->oom = 1;
			break;
		}
		pl->drop_snapshots[pl->nr_drop_snapshots++] = k;
		/* its device: the key itself (Prepare), or the key it was
		 * committed from when that has no bucket of its own */
		const char *h[2] = { s->key, s->committed_to };
		for (int j = 0; j < 2; j++) {
			if (!h[j] || !*h[j] || bk_hash_kept(st, drop, h[j]))
				continue;
			const struct inv_item *it = item_by_hash(b->inv, h[j]);
			if (it && it->cls == INV_BUILDKIT)
				add_device_and_file(b, it, "buildkit-unreferenced", 0);
		}
	}
	if (nr)
		add_path(b, PLAN_REWRITE_BOLT, strdup(DK_BUILDKIT_SNAPSHOTS), "buildkit-unreferenced", RANK_BUILDKIT, 0);
	if (nr < st->nr_buildkit) {
		char what[64];
		snprintf(what, sizeof(what), "BuildKit's cache");
		skip(b, what, "%zu of %zu snapshots stay: a cache record or lease refers to them, Docker uses them as a "
		     "layer or container, or a kept snapshot is built on them", st->nr_buildkit - nr, st->nr_buildkit);
	}
	free(drop);
}

static int cmp_devs(const void *a, const void *b)
{
	const struct plan_dev *x = a, *y = b;
	return x->thin_id < y->thin_id ? -1 : x->thin_id > y->thin_id;
}

static void sort_files(struct plan *pl)
{
	/* Insertion sort: stable, so each rank keeps Docker's order. */
	for (size_t i = 1; i < pl->nr_files; i++) {
		struct plan_file f = pl->files[i];
		size_t j = i;
		while (j > 0 && pl->files[j - 1].rank > f.rank) {
			pl->files[j] = pl->files[j - 1];
			j--;
		}
		pl->files[j] = f;
	}
}

/* Records whose device has no metadata file any more (an interrupted
 * removal, ours or Docker's, removed the file first): the device is a pool
 * orphan, and the record names nothing. */
static void dangling(struct pb *b, unsigned flags)
{
	const struct dk_state *st = b->st;
	char who[160];
	if (st->layout != DK_LAYOUT_DOCKER)
		return;
	for (size_t i = 0; i < st->nr_layers && !b->oom; i++) {
		const struct dk_layer *l = &st->layers[i];
		if (l->cache_id && item_by_hash(b->inv, l->cache_id))
			continue;
		if (l->removing)
			add_path(b, PLAN_REMOVE, strdup(l->dir), "half-removed-layer (its device file is gone)", RANK_LAYER, 0);
		else if ((flags & PLAN_UNREFERENCED_LAYERS) && !layer_user(b, l, who, sizeof(who)))
			remove_layer(b, l, "unreferenced-layer (its device file is gone)", 0);
	}
	if (!(flags & (PLAN_DEAD_CONTAINERS | PLAN_DRIVER_ORPHANS)))
		return;
	for (size_t i = 0; i < st->nr_mounts && !b->oom; i++) {
		const struct dk_mount *m = &st->mounts[i];
		if (!m->name || dk_container_by_id(st, m->name) || (m->mount_id && item_by_hash(b->inv, m->mount_id)) ||
		    (m->init_id && item_by_hash(b->inv, m->init_id)))
			continue;
		add_path(b, PLAN_REMOVE, fmt(b, "%s%s%s", DK_LAYERDB, MT, m->name),
			 "orphan-mount (its device files are gone)", RANK_MOUNTS, 0);
	}
}

int plan_build(struct plan *pl, const struct inventory *inv, const struct dk_state *st, const struct plan_opts *o,
	       struct dmr_err *err)
{
	memset(pl, 0, sizeof(*pl));
	struct pb b = { .pl = pl, .inv = inv, .st = st };
	if ((o->flags & PLAN_BUILDKIT_UNREFERENCED) && !(o->flags & (PLAN_BUILDKIT_CACHE | PLAN_NO_DEFAULTS))) {
		char why[sizeof(((struct dmr_err *)0)->msg) + 256];
		if (bk_unref_refusal(st, why, sizeof(why))) {
			pl->class_refused = strdup(why);
			if (!pl->class_refused)
				return dmr_err_set(err, DMR_ENOMEM, "out of memory making the plan");
			return 0;
		}
		b.bk_unref = 1;
	}
	for (size_t i = 0; i < o->nr_containers && !b.oom; i++)
		target_container(&b, o->containers[i]);
	for (size_t i = 0; i < o->nr_images && !b.oom; i++)
		target_image(&b, o->images[i]);
	for (size_t i = 0; i < o->nr_devices && !b.oom; i++)
		target_device(&b, o->devices[i]);
	if (!(o->flags & PLAN_NO_DEFAULTS)) {
		/* Dead containers first, so the layers they pinned can go too. */
		for (size_t i = 0; i < inv->nr_items && !b.oom; i++)
			if (inv->items[i].cls == INV_DEAD_CONTAINER)
				by_class(&b, &inv->items[i], o->flags);
		for (size_t i = 0; i < inv->nr_items && !b.oom; i++)
			if (inv->items[i].cls != INV_DEAD_CONTAINER)
				by_class(&b, &inv->items[i], o->flags);
		if (txn_ahead(st, inv))
			add_path(&b, PLAN_REMOVE, strdup(DK_HOME "/metadata/transaction-metadata"),
				 "open-transaction", RANK_TXN, 0);
		dangling(&b, o->flags);
		buildkit_unreferenced(&b);
		/* BuildKit's databases go first: it must never see an entry
		 * whose device is gone. */
		if ((o->flags & PLAN_BUILDKIT_CACHE) && st->buildkit_present && st->layout == DK_LAYOUT_DOCKER)
			add_path(&b, PLAN_REMOVE, strdup("buildkit"), "buildkit-cache", RANK_BUILDKIT, 0);
	}
	free(b.gone_layers);
	free(b.gone_containers);
	free(b.gone_images);
	if (b.oom) {
		plan_free(pl);
		return dmr_err_set(err, DMR_ENOMEM, "out of memory making the plan");
	}
	if (pl->nr_devs > 1)
		qsort(pl->devs, pl->nr_devs, sizeof(*pl->devs), cmp_devs);
	sort_files(pl);
	return 0;
}

void plan_free(struct plan *pl)
{
	for (size_t i = 0; i < pl->nr_devs; i++)
		free(pl->devs[i].reason);
	for (size_t i = 0; i < pl->nr_files; i++) {
		free(pl->files[i].path);
		free(pl->files[i].reason);
	}
	for (size_t i = 0; i < pl->nr_skips; i++) {
		free(pl->skips[i].what);
		free(pl->skips[i].why);
	}
	for (size_t i = 0; i < pl->nr_drop_tags; i++)
		free(pl->drop_tags[i]);
	for (size_t i = 0; i < pl->nr_drop_snapshots; i++)
		free(pl->drop_snapshots[i]);
	free(pl->drop_snapshots);
	free(pl->class_refused);
	free(pl->devs);
	free(pl->files);
	free(pl->skips);
	free(pl->drop_tags);
	memset(pl, 0, sizeof(*pl));
}

int plan_empty(const struct plan *pl)
{
	return pl->nr_devs == 0 && pl->nr_files == 0;
}
