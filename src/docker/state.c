/* dk_state_read: which layout the root has, then every reader in turn, then
 * everything sorted so that the same tree always gives the same state. */
#include "config.h"
#include "docker/state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "docker/bkrefs.h"
#include "docker/parsers.h"
#include "docker/scan.h"

#define BUILDKIT_DB "buildkit/snapshots.db"
#define BUILDKIT_CACHE_DB "buildkit/metadata_v2.db"
#define BUILDKIT_LEASE_DB "buildkit/containerdmeta.db"
#define BUILDKIT_MAX ((size_t)512 << 20)
#define CS_JSON_MAX ((size_t)64 << 20)

unsigned dk_dev_major(uint64_t dev)
{
	return (unsigned)((dev >> 8) & 0xfff);
}

unsigned dk_dev_minor(uint64_t dev)
{
	return (unsigned)((dev & 0xff) | ((dev >> 12) & 0xfff00));
}

/* Something is there (even if it cannot be used: the reader of it says why). */
static int exists(struct dk_scan *s, const char *rel)
{
	struct stat st;
	return fsr_lstat(&s->root, rel, &st, &s->fail) != FSR_MISSING;
}

static int set_prefix(struct dk_state *st, const struct fsr_dir *home)
{
	struct stat sb;
	if (fstat(home->fd, &sb) < 0)
		return 0; /* cannot happen on an open fd; leave the prefix unknown */
	char buf[128];
	snprintf(buf, sizeof(buf), "%s-%u:%u-%llu", st->layout == DK_LAYOUT_CSTORAGE ? "container" : "docker",
		 dk_dev_major((uint64_t)sb.st_dev), dk_dev_minor((uint64_t)sb.st_dev), (unsigned long long)sb.st_ino);
	st->prefix = strdup(buf);
	if (!st->prefix)
		return DMR_ENOMEM;
	snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "-pool");
	st->pool_name = strdup(buf);
	return st->pool_name ? 0 : DMR_ENOMEM;
}

/* A parser's complaint about a file becomes a problem; its partial output stays. */
static int parser_result(struct dk_scan *s, const char *rel, int r, const struct dmr_err *e)
{
	if (r == DMR_ENOMEM)
		return r;
	if (r < 0)
		return dk_problem(s, rel, "%s", e->msg[0] ? e->msg : "damaged");
	return 0;
}

static int read_cstorage(struct dk_scan *s)
{
	static const char *const rel[] = {
		"devicemapper-layers/layers.json",
		"devicemapper-images/images.json",
		"devicemapper-containers/containers.json",
	};
	struct dk_state *st = s->st;
	int r = 0;
	for (int i = 0; i < 3 && !r; i++) {
		struct fsr_file f;
		struct dmr_err e = { 0 };
		r = dk_read(s, &s->root, rel[i], CS_JSON_MAX, 0, &f, NULL, 0);
		if (r) {
			r = r < 0 ? r : 0;
			continue;
		}
		if (i == 0)
			r = dk_cs_parse_layers(f.data, f.len, &st->cs_layers, &st->nr_cs_layers, &e);
		else if (i == 1)
			r = dk_cs_parse_images(f.data, f.len, &st->images, &st->nr_images, &e);
		else
			r = dk_cs_parse_containers(f.data, f.len, &st->containers, &st->nr_containers, &e);
		fsr_file_free(&f);
		r = parser_result(s, rel[i], r, &e);
	}
	return r;
}

static int refs_error(struct dk_state *st, const char *what, const char *why)
{
	char buf[sizeof(((struct dmr_err *)0)->msg) + 128];
	snprintf(buf, sizeof(buf), "%s%s%s", what, *what && *why ? ": " : "", why);
	st->buildkit_refs_error = strdup(buf);
	return st->buildkit_refs_error ? 0 : DMR_ENOMEM;
}

/* BuildKit's cache records and leases: read without recording problems
 * (Docker starts without them); what is wrong goes to buildkit_refs_error. */
static int read_buildkit_refs(struct dk_scan *s)
{
	static const char *const rel[2] = { BUILDKIT_CACHE_DB, BUILDKIT_LEASE_DB };
	struct dk_state *st = s->st;
	struct fsr_file f[2] = { 0 };
	int r = 0, have = 0;
	for (int i = 0; i < 2 && !r; i++) {
		struct fsr_fail fail = { 0 };
		r = fsr_read(&s->root, rel[i], BUILDKIT_MAX, &f[i], &fail);
		if (r == DMR_ENOMEM)
			break;
		if (r == FSR_MISSING)
			r = refs_error(st, rel[i], "missing") ? DMR_ENOMEM : 1;
		else if (r)
			r = refs_error(st, rel[i], fail.msg) ? DMR_ENOMEM : 1;
		else
			have++;
	}
	if (have == 2) {
		struct dmr_err e = { 0 };
		r = dk_buildkit_refs_parse((const unsigned char *)f[0].data, f[0].len, (const unsigned char *)f[1].data,
					   f[1].len, &st->buildkit_refs, &st->nr_buildkit_refs, &e);
		if (r == DMR_ENOMEM)
			;
		else if (r)
			r = refs_error(st, "", e.msg) ? DMR_ENOMEM : 0;
		else
			st->buildkit_refs_read = 1;
	}
	for (int i = 0; i < have; i++)
		fsr_file_free(&f[i]);
	return r == DMR_ENOMEM ? r : 0;
}

static int read_buildkit(struct dk_scan *s)
{
	struct dk_state *st = s->st;
	if (!exists(s, BUILDKIT_DB))
		return 0;
	st->buildkit_present = 1;
	struct fsr_file f;
	int r = dk_read(s, &s->root, BUILDKIT_DB, BUILDKIT_MAX, 1, &f, NULL, 0);
	if (r)
		return r < 0 ? r : 0;
	struct dmr_err e = { 0 };
	r = dk_buildkit_parse((const unsigned char *)f.data, f.len, &st->buildkit, &st->nr_buildkit, &e);
	fsr_file_free(&f);
	if (r < 0 && r != DMR_ENOMEM)
		st->buildkit_damaged = 1;
	r = parser_result(s, BUILDKIT_DB, r, &e);
	return r ? r : read_buildkit_refs(s);
}

/* ---- sorting ---- */

static int cmp_s(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "");
}

static int cmp_problem(const void *a, const void *b)
{
	const struct dk_problem *x = a, *y = b;
	int c = cmp_s(x->path, y->path);
	return c ? c : cmp_s(x->msg, y->msg);
}

static int cmp_devfile(const void *a, const void *b)
{
	const struct dk_devfile *x = a, *y = b;
	int c = cmp_s(x->hash, y->hash);
	return c ? c : x->from_legacy_json - y->from_legacy_json;
}

static int cmp_transient(const void *a, const void *b)
{
	const struct dk_transient *x = a, *y = b;
	int c = cmp_s(x->path, y->path);
	return c ? c : (int)x->kind - (int)y->kind;
}

static int cmp_layer(const void *a, const void *b)
{
	const struct dk_layer *x = a, *y = b;
	int c = cmp_s(x->chain_id, y->chain_id);
	return c ? c : cmp_s(x->dir, y->dir);
}

static int cmp_mount(const void *a, const void *b)
{
	return cmp_s(((const struct dk_mount *)a)->name, ((const struct dk_mount *)b)->name);
}

static int cmp_image(const void *a, const void *b)
{
	return cmp_s(((const struct dk_image *)a)->id, ((const struct dk_image *)b)->id);
}

static int cmp_container(const void *a, const void *b)
{
	return cmp_s(((const struct dk_container *)a)->id, ((const struct dk_container *)b)->id);
}

static int cmp_buildkit(const void *a, const void *b)
{
	return cmp_s(((const struct dk_buildkit_snapshot *)a)->key, ((const struct dk_buildkit_snapshot *)b)->key);
}

static int cmp_cs_layer(const void *a, const void *b)
{
	return cmp_s(((const struct dk_cs_layer *)a)->id, ((const struct dk_cs_layer *)b)->id);
}

#define SORT(arr, n, cmp) do { if ((n) > 1) qsort((arr), (n), sizeof(*(arr)), (cmp)); } while (0)

static int finish(struct dk_scan *s)
{
	struct dk_state *st = s->st;
	if (s->dropped_problems) {
		if (DK_GROW(st->problems, s->cap_problems, st->nr_problems + 1))
			return DMR_ENOMEM;
		struct dk_problem *p = &st->problems[st->nr_problems];
		char msg[128];
		snprintf(msg, sizeof(msg), "%zu more problems were not recorded", s->dropped_problems);
		p->path = strdup("");
		p->msg = strdup(msg);
		if (!p->path || !p->msg) {
			free(p->path);
			free(p->msg);
			p->path = p->msg = NULL;
			return DMR_ENOMEM;
		}
		st->nr_problems++;
	}
	SORT(st->problems, st->nr_problems, cmp_problem);
	/* The same problem can be met twice (a symlinked directory on two paths). */
	size_t n = 0;
	for (size_t i = 0; i < st->nr_problems; i++) {
		if (n && !cmp_problem(&st->problems[n - 1], &st->problems[i])) {
			free(st->problems[i].path);
			free(st->problems[i].msg);
			continue;
		}
		st->problems[n++] = st->problems[i];
	}
	st->nr_problems = n;
	SORT(st->files, st->nr_files, cmp_devfile);
	SORT(st->transients, st->nr_transients, cmp_transient);
	SORT(st->layers, st->nr_layers, cmp_layer);
	SORT(st->mounts, st->nr_mounts, cmp_mount);
	SORT(st->images, st->nr_images, cmp_image);
	SORT(st->containers, st->nr_containers, cmp_container);
	SORT(st->buildkit, st->nr_buildkit, cmp_buildkit);
	SORT(st->cs_layers, st->nr_cs_layers, cmp_cs_layer);
	return 0;
}

static int scan(struct dk_scan *s)
{
	struct dk_state *st = s->st;
	int docker = exists(s, "image/devicemapper") || exists(s, DK_CONTAINERS);
	int cstorage = exists(s, "devicemapper-layers");
	int r = 0;
	if (docker && cstorage)
		r = dk_problem(s, "devicemapper-layers", "both Docker (image/, containers/) and containers/storage "
				  "directories under the root: read as Docker");
	enum dk_layout flavor = cstorage && !docker ? DK_LAYOUT_CSTORAGE : DK_LAYOUT_DOCKER;

	struct fsr_dir home = { .fd = -1 };
	int have_home = 0;
	if (!r) {
		r = dk_opendir(s, &s->root, DK_HOME, 0, &home, NULL, 0);
		have_home = r == 0;
		if (r == FSR_MISSING && (cstorage || exists(s, "image/devicemapper")))
			r = dk_problem(s, DK_HOME, "missing: the driver home with the device files is gone");
		else if (r > 0)
			r = 0;
	}
	if (!r && have_home) {
		st->layout = flavor;
		st->home = strdup(DK_HOME);
		r = st->home ? set_prefix(st, &home) : DMR_ENOMEM;
		if (!r)
			r = dk_read_dmfiles(s, &home);
	}
	fsr_closedir(&home);
	if (!r && flavor == DK_LAYOUT_DOCKER) {
		r = dk_read_layerdb(s);
		if (!r)
			r = dk_read_imagedb(s);
		if (!r)
			r = dk_read_containers(s);
	} else if (!r) {
		r = read_cstorage(s);
	}
	if (!r)
		r = read_buildkit(s);
	if (!r)
		r = finish(s);
	return r;
}

int dk_state_read(const char *root, struct dk_state *st, struct dmr_err *err)
{
	memset(st, 0, sizeof(*st));
	st->txn.device_id = -1;
	st->deviceset.next_device_id = -1;
	struct dk_scan *s = calloc(1, sizeof(*s));
	if (!s)
		return dmr_err_set(err, DMR_ENOMEM, "%s: out of memory", root);
	s->st = st;
	int r = fsr_open_root(&s->root, root, err);
	if (r) {
		free(s);
		return r;
	}
	st->root = strdup(root);
	r = st->root ? scan(s) : DMR_ENOMEM;
	fsr_closedir(&s->root);
	free(s);
	if (r) {
		dk_state_free(st);
		return dmr_err_set(err, DMR_ENOMEM, "%s: out of memory reading Docker's state", root);
	}
	return 0;
}

void dk_state_free(struct dk_state *st)
{
	if (!st)
		return;
	free(st->root);
	free(st->home);
	free(st->prefix);
	free(st->pool_name);
	for (size_t i = 0; i < st->nr_files; i++)
		dk_devfile_clear(&st->files[i]);
	free(st->files);
	free(st->txn.device_hash);
	free(st->deviceset.base_uuid);
	free(st->deviceset.base_fs);
	for (size_t i = 0; i < st->nr_transients; i++)
		free(st->transients[i].path);
	free(st->transients);
	for (size_t i = 0; i < st->nr_layers; i++)
		dk_layer_clear(&st->layers[i]);
	free(st->layers);
	for (size_t i = 0; i < st->nr_mounts; i++)
		dk_mount_clear(&st->mounts[i]);
	free(st->mounts);
	for (size_t i = 0; i < st->nr_images; i++)
		dk_image_clear(&st->images[i]);
	free(st->images);
	for (size_t i = 0; i < st->nr_containers; i++)
		dk_container_clear(&st->containers[i]);
	free(st->containers);
	dk_buildkit_free(st->buildkit, st->nr_buildkit);
	for (size_t i = 0; i < st->nr_buildkit_refs; i++)
		free(st->buildkit_refs[i]);
	free(st->buildkit_refs);
	free(st->buildkit_refs_error);
	for (size_t i = 0; i < st->nr_cs_layers; i++) {
		free(st->cs_layers[i].id);
		free(st->cs_layers[i].parent);
		dk_free_strv(st->cs_layers[i].names, st->cs_layers[i].nr_names);
	}
	free(st->cs_layers);
	for (size_t i = 0; i < st->nr_problems; i++) {
		free(st->problems[i].path);
		free(st->problems[i].msg);
	}
	free(st->problems);
	memset(st, 0, sizeof(*st));
}

const struct dk_devfile *dk_state_file_by_hash(const struct dk_state *st, const char *hash)
{
	size_t lo = 0, hi = st->nr_files;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = cmp_s(st->files[mid].hash, hash);
		if (!c)
			return &st->files[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const struct dk_devfile *dk_state_file_by_device_id(const struct dk_state *st, int64_t device_id)
{
	const struct dk_devfile *found = NULL;
	if (device_id < 0)
		return NULL;
	for (size_t i = 0; i < st->nr_files; i++) {
		const struct dk_devfile *f = &st->files[i];
		if (f->device_id != device_id)
			continue;
		if (f->valid)
			return f;
		if (!found)
			found = f;
	}
	return found;
}
