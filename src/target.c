/* Resolving a command's TARGET (see target.h). */
#include "config.h"
#include "target.h"

#include "docker/scan.h"
#include "util/fmt.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *dmr_target_kind_name(enum dmr_target_kind k)
{
	switch (k) {
	case DMR_TARGET_THIN_ID: return "thin-id";
	case DMR_TARGET_HASH: return "device-hash";
	case DMR_TARGET_CONTAINER: return "container";
	case DMR_TARGET_IMAGE: return "image";
	case DMR_TARGET_LAYER: return "layer";
	}
	return "?";
}

static const char *short_id(const char *id, char buf[16])
{
	if (id && strncmp(id, "sha256:", 7) == 0)
		id += 7;
	snprintf(buf, 16, "%.12s", id ? id : "?");
	return buf;
}

/* hash -> its device file, thin id and size. */
static int by_hash(const struct dk_state *st, const char *hash, struct dmr_target *t, struct dmr_err *err)
{
	const struct dk_devfile *f = dk_state_file_by_hash(st, hash);
	if (!f)
		return dmr_err_set(err, DMR_ENOENT, "%s: its device file devicemapper/metadata/%s is missing", t->what,
				   hash[0] ? hash : "base");
	if (!f->valid || f->device_id < 0)
		return dmr_err_set(err, DMR_ENOENT, "%s: its device file %s cannot be read%s%s", t->what,
				   f->name ? f->name : hash, f->error ? ": " : "", f->error ? f->error : "");
	t->hash = f->hash;
	t->file = f;
	t->thin_id = (uint64_t)f->device_id;
	t->size = f->size;
	return 0;
}

static int resolve_container(const struct dk_state *st, const struct dk_container *c, const struct dmr_target_opts *o,
			     struct dmr_target *t, struct dmr_err *err)
{
	char b[16];
	t->kind = DMR_TARGET_CONTAINER;
	snprintf(t->what, sizeof(t->what), "container %s (%s)%s", c->name ? c->name : "?", short_id(c->id, b),
		 o->init ? ", -init device" : "");
	if (o->layer)
		return dmr_err_set(err, DMR_EUSAGE, "%s: --layer is for images", t->what);
	if (st->layout == DK_LAYOUT_CSTORAGE) {
		if (o->init)
			return dmr_err_set(err, DMR_EUSAGE, "%s: containers/storage has no -init devices", t->what);
		if (!c->layer)
			return dmr_err_set(err, DMR_ENOENT, "%s: no layer in containers.json", t->what);
		return by_hash(st, c->layer, t, err);
	}
	const struct dk_mount *m = dk_mount_of_container(st, c->id);
	const char *h = m ? (o->init ? m->init_id : m->mount_id) : NULL;
	if (!h)
		return dmr_err_set(err, DMR_ENOENT, "%s: no %s in image/devicemapper/layerdb/mounts/%s", t->what,
				   o->init ? "init-id" : "mount-id", c->id);
	return by_hash(st, h, t, err);
}

static int resolve_layer(const struct dk_state *st, const char *chain, struct dmr_target *t, struct dmr_err *err)
{
	const struct dk_layer *l = dk_layer_by_chain(st, chain);
	if (!l || !l->cache_id)
		return dmr_err_set(err, DMR_ENOENT, "%s: no readable layer %s in layerdb", t->what, chain);
	return by_hash(st, l->cache_id, t, err);
}

static int resolve_image(const struct dk_state *st, const struct dk_image *im, const char *arg, int by_tag,
			 const struct dmr_target_opts *o, struct dmr_target *t, struct dmr_err *err)
{
	char b[16];
	t->kind = DMR_TARGET_IMAGE;
	const char *name = by_tag ? arg : im->nr_tags ? im->tags[0] : short_id(im->id, b);
	if (o->init)
		return dmr_err_set(err, DMR_EUSAGE, "image %s: --init is for containers", name);
	if (st->layout == DK_LAYOUT_CSTORAGE) {
		snprintf(t->what, sizeof(t->what), "image %s, top layer", name);
		if (o->layer)
			return dmr_err_set(err, DMR_EUSAGE, "%s: --layer needs a Docker root", t->what);
		if (!im->top_layer)
			return dmr_err_set(err, DMR_ENOENT, "%s: no top layer in images.json", t->what);
		return by_hash(st, im->top_layer, t, err);
	}
	size_t n = im->nr_diff_ids;
	if (!n || !im->chain_ids)
		return dmr_err_set(err, DMR_ENOENT, "image %s has no layers", name);
	if (o->layer > n)
		return dmr_err_set(err, DMR_EUSAGE, "image %s has %zu layer%s: --layer %u is beyond", name, n,
				   n == 1 ? "" : "s", o->layer);
	size_t k = o->layer ? o->layer - 1 : n - 1;
	snprintf(t->what, sizeof(t->what), "image %s, layer %zu of %zu (%s)", name, k + 1, n,
		 short_id(im->chain_ids[k], b));
	return resolve_layer(st, im->chain_ids[k], t, err);
}

int dmr_target_resolve(const struct dk_state *st, const char *arg, const struct dmr_target_opts *o,
		       struct dmr_target *t, struct dmr_err *err)
{
	static const struct dmr_target_opts none;
	if (!o)
		o = &none;
	memset(t, 0, sizeof(*t));
	if (!*arg)
		return dmr_err_set(err, DMR_EUSAGE, "an empty TARGET");
	/* Thin ids have 24 bits: 8 digits at most (a longer number can only be
	 * a hash or an id). */
	if (fmt_all_digits(arg) && strlen(arg) <= 8) {
		char *end;
		unsigned long long id = strtoull(arg, &end, 10);
		if (*end || id > 0xffffffull)
			return dmr_err_set(err, DMR_ENOENT, "thin id %s is beyond 24 bits", arg);
		t->kind = DMR_TARGET_THIN_ID;
		t->thin_id = id;
		snprintf(t->what, sizeof(t->what), "thin device %llu", id);
		if (o->init || o->layer)
			return dmr_err_set(err, DMR_EUSAGE, "%s: --init and --layer are for containers and images",
					   t->what);
		const struct dk_devfile *f = st ? dk_state_file_by_device_id(st, (int64_t)id) : NULL;
		if (f && f->valid) {
			t->hash = f->hash;
			t->file = f;
			t->size = f->size;
		}
		return 0;
	}
	if (!st || st->layout == DK_LAYOUT_NONE)
		return dmr_err_set(err, DMR_ENOENT, "'%s' is not a thin id, and there is no Docker root to look it up in",
				   arg);

	/* A device hash. */
	const char *hash = strcmp(arg, "base") == 0 ? "" : arg;
	const struct dk_devfile *f = dk_state_file_by_hash(st, hash);
	if (f) {
		t->kind = DMR_TARGET_HASH;
		snprintf(t->what, sizeof(t->what), "device %s", hash[0] ? hash : "base");
		if (o->init || o->layer)
			return dmr_err_set(err, DMR_EUSAGE, "%s: --init and --layer are for containers and images",
					   t->what);
		return by_hash(st, hash, t, err);
	}

	/* A container, an image: a hex prefix may name one of each. */
	int cmany = 0, imany = 0, by_tag = 0;
	const struct dk_container *c = dk_container_find(st, arg, &cmany);
	const struct dk_image *im = dk_image_find(st, arg, &by_tag, &imany);
	int c_by_name = c && c->name && strcmp(c->name, arg[0] == '/' ? arg + 1 : arg) == 0;
	if (c_by_name)
		return resolve_container(st, c, o, t, err);
	if (im && by_tag)
		return resolve_image(st, im, arg, by_tag, o, t, err);
	if (c && im)
		return dmr_err_set(err, DMR_EUSAGE, "'%s' is the start of a container id and of an image id: give more "
				   "of it", arg);
	if (cmany)
		return dmr_err_set(err, DMR_EUSAGE, "more than one container id starts with %s", arg);
	if (c)
		return resolve_container(st, c, o, t, err);
	if (imany)
		return dmr_err_set(err, DMR_EUSAGE, "more than one image matches %s", arg);
	if (im)
		return resolve_image(st, im, arg, by_tag, o, t, err);

	/* A layer's chain id. */
	char chain[80];
	const char *hex = strncmp(arg, "sha256:", 7) == 0 ? arg + 7 : arg;
	if (strlen(hex) == 64 && dk_is_hex(hex, 64)) {
		snprintf(chain, sizeof(chain), "sha256:%s", hex);
		if (dk_layer_by_chain(st, chain)) {
			t->kind = DMR_TARGET_LAYER;
			snprintf(t->what, sizeof(t->what), "layer %s", chain);
			if (o->init || o->layer)
				return dmr_err_set(err, DMR_EUSAGE, "%s: --init and --layer are for containers and images",
						   t->what);
			return resolve_layer(st, chain, t, err);
		}
	}
	return dmr_err_set(err, DMR_ENOENT, "no thin device, device hash, container, image or layer matches '%s'", arg);
}
