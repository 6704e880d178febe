/* image/devicemapper/layerdb: read-only layers (sha256/<chain>/), their
 * interrupted deletions (sha256/<chain>-<random>-removing/), read-write
 * layers (mounts/<name>/) and interrupted atomic writes (tmp/write-set-*). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker/scan.h"

#define MAX_WRITE_SET_ENTRIES 1000000

void dk_layer_clear(struct dk_layer *l)
{
	free(l->chain_id);
	free(l->dir);
	free(l->cache_id);
	free(l->diff_id);
	free(l->parent);
	free(l->error);
	memset(l, 0, sizeof(*l));
}

void dk_mount_clear(struct dk_mount *m)
{
	free(m->name);
	free(m->mount_id);
	free(m->init_id);
	free(m->parent);
	free(m->error);
	memset(m, 0, sizeof(*m));
}

/* One value of a small file. */
enum value_kind {
	VAL_HASH,     /* a device hash (cache-id) */
	VAL_MOUNT_ID, /* ^[a-f0-9]{64}(-init)?$, as layer/filestore.go checks */
	VAL_DIGEST,   /* sha256:<64 hex> */
	VAL_SIZE,     /* decimal int64, not negative */
};

static const char *check_value(const char *v, enum value_kind kind, uint64_t *size)
{
	size_t n = strlen(v);
	switch (kind) {
	case VAL_HASH:
		return dk_is_hash_name(v) ? NULL : "not a device hash";
	case VAL_MOUNT_ID:
		if ((n == 64 || (n == 69 && !strcmp(v + 64, "-init"))) && dk_is_hex(v, 64))
			return NULL;
		return "not 64 hex digits (with an optional -init)";
	case VAL_DIGEST:
		return dk_is_digest(v) ? NULL : "not a sha256 digest";
	case VAL_SIZE: {
		if (n == 0 || n > 19)
			return n ? "out of range" : "not a decimal number";
		uint64_t x = 0;
		for (size_t i = 0; i < n; i++) {
			if (v[i] < '0' || v[i] > '9')
				return "not a decimal number";
			x = x * 10 + (uint64_t)(v[i] - '0');
		}
		if (x > INT64_MAX)
			return "out of range";
		*size = x;
		return NULL;
	}
	}
	return "?";
}

/* Reads dir/name into *out (NULL when absent). Returns 0 or DMR_ENOMEM;
 * errors go to the problems and to *error (the first one). */
static int read_value(struct dk_scan *s, const struct fsr_dir *dir, const char *name, int required,
		      enum value_kind kind, char **out, uint64_t *size, char **error)
{
	struct fsr_file f;
	char why[DK_MSG_MAX];
	*out = NULL;
	int r = dk_read(s, dir, name, DK_SMALL_MAX, required, &f, why, sizeof(why));
	if (r == FSR_MISSING || r < 0)
		return r < 0 ? r : 0;
	if (!r) {
		dk_chomp(&f);
		char q[160];
		if (f.len == 0) {
			snprintf(why, sizeof(why), "empty");
		} else if (memchr(f.data, '\0', f.len)) {
			snprintf(why, sizeof(why), "contains a NUL byte");
		} else {
			const char *bad = check_value(f.data, kind, size);
			if (!bad) {
				*out = f.data;
				return 0;
			}
			snprintf(why, sizeof(why), "%s (\"%s\")", bad, fsr_quote(q, sizeof(q), f.data, 80));
		}
		fsr_file_free(&f);
		char *path = dk_path(dir, name);
		r = path ? dk_problem(s, path, "%s", why) : DMR_ENOMEM;
		free(path);
		if (r)
			return r;
	}
	if (!*error) {
		size_t len = strlen(name) + strlen(why) + 3;
		*error = malloc(len);
		if (!*error)
			return DMR_ENOMEM;
		snprintf(*error, len, "%s: %s", name, why);
	}
	return 0;
}

/* Where a layer directory name is "<64 hex>" or "<64 hex>-<64 hex>-removing". */
static int layer_dir_name(const char *name, int *removing)
{
	size_t n = strlen(name);
	if (n == 64 && dk_is_hex(name, 64)) {
		*removing = 0;
		return 1;
	}
	if (n == 64 + 1 + 64 + 9 && dk_is_hex(name, 64) && name[64] == '-' && dk_is_hex(name + 65, 64) &&
	    !strcmp(name + 129, "-removing")) {
		*removing = 1;
		return 1;
	}
	return 0;
}

static int read_layer(struct dk_scan *s, const struct fsr_dir *sha, const char *name, int removing)
{
	struct dk_state *st = s->st;
	if (DK_GROW(st->layers, s->cap_layers, st->nr_layers + 1))
		return DMR_ENOMEM;
	struct dk_layer *l = &st->layers[st->nr_layers++];
	memset(l, 0, sizeof(*l));
	l->removing = removing;
	l->chain_id = malloc(7 + 64 + 1);
	l->dir = dk_path(sha, name);
	if (!l->chain_id || !l->dir)
		return DMR_ENOMEM;
	memcpy(l->chain_id, "sha256:", 7);
	memcpy(l->chain_id + 7, name, 64);
	l->chain_id[71] = '\0';

	struct fsr_dir d;
	char why[DK_MSG_MAX];
	int r = dk_opendir(s, sha, name, 1, &d, why, sizeof(why));
	if (r) {
		if (r < 0)
			return r;
		l->error = strdup(why);
		return l->error ? 0 : DMR_ENOMEM;
	}
	/* A directory being removed may have lost anything but its cache-id
	 * (which is all Docker's cleanup reads). */
	uint64_t size = 0;
	r = read_value(s, &d, "cache-id", 1, VAL_HASH, &l->cache_id, NULL, &l->error);
	if (!r)
		r = read_value(s, &d, "diff", !removing, VAL_DIGEST, &l->diff_id, NULL, &l->error);
	if (!r)
		r = read_value(s, &d, "parent", 0, VAL_DIGEST, &l->parent, NULL, &l->error);
	char *sz = NULL;
	if (!r)
		r = read_value(s, &d, "size", !removing, VAL_SIZE, &sz, &size, &l->error);
	if (sz)
		l->size = size;
	free(sz);
	fsr_closedir(&d);
	return r;
}

static int read_layers(struct dk_scan *s, const struct fsr_dir *ldb)
{
	struct fsr_dir sha;
	struct fsr_list l;
	int r = dk_open_list(s, ldb, "sha256", &sha, &l);
	if (r <= 0)
		return r;
	r = 0;
	for (size_t i = 0; i < l.n && !r; i++) {
		int removing;
		if (layer_dir_name(l.e[i].name, &removing)) {
			r = read_layer(s, &sha, l.e[i].name, removing);
			continue;
		}
		char *path = dk_path(&sha, l.e[i].name);
		r = path ? dk_problem(s, path, "not a layer directory name (Docker skips it)") : DMR_ENOMEM;
		free(path);
	}
	fsr_list_free(&l);
	fsr_closedir(&sha);
	return r;
}

static int read_mount(struct dk_scan *s, const struct fsr_dir *mounts, const char *name)
{
	struct dk_state *st = s->st;
	if (DK_GROW(st->mounts, s->cap_mounts, st->nr_mounts + 1))
		return DMR_ENOMEM;
	struct dk_mount *m = &st->mounts[st->nr_mounts++];
	memset(m, 0, sizeof(*m));
	m->name = strdup(name);
	if (!m->name)
		return DMR_ENOMEM;
	struct fsr_dir d;
	char why[DK_MSG_MAX];
	int r = dk_opendir(s, mounts, name, 1, &d, why, sizeof(why));
	if (r) {
		if (r < 0)
			return r;
		m->error = strdup(why);
		return m->error ? 0 : DMR_ENOMEM;
	}
	r = read_value(s, &d, "mount-id", 1, VAL_MOUNT_ID, &m->mount_id, NULL, &m->error);
	if (!r)
		r = read_value(s, &d, "init-id", 0, VAL_MOUNT_ID, &m->init_id, NULL, &m->error);
	if (!r)
		r = read_value(s, &d, "parent", 0, VAL_DIGEST, &m->parent, NULL, &m->error);
	fsr_closedir(&d);
	return r;
}

static int read_mounts(struct dk_scan *s, const struct fsr_dir *ldb)
{
	struct fsr_dir mounts;
	struct fsr_list l;
	int r = dk_open_list(s, ldb, "mounts", &mounts, &l);
	if (r <= 0)
		return r;
	r = 0;
	for (size_t i = 0; i < l.n && !r; i++)
		r = read_mount(s, &mounts, l.e[i].name);
	fsr_list_free(&l);
	fsr_closedir(&mounts);
	return r;
}

/* tmp/write-set-*: the unfinished atomic write of a layer directory. */
static int read_write_sets(struct dk_scan *s, const struct fsr_dir *ldb)
{
	struct fsr_dir tmp;
	struct fsr_list l;
	int r = dk_open_list(s, ldb, "tmp", &tmp, &l);
	if (r <= 0)
		return r;
	r = 0;
	for (size_t i = 0; i < l.n && !r; i++) {
		char *path = dk_path(&tmp, l.e[i].name);
		if (!path) {
			r = DMR_ENOMEM;
			break;
		}
		if (strncmp(l.e[i].name, "write-set-", 10)) {
			r = dk_problem(s, path, "not a write-set-* directory");
		} else if (l.e[i].type != S_IFDIR) {
			struct fsr_dir d;
			r = dk_opendir(s, &tmp, l.e[i].name, 1, &d, NULL, 0); /* says what it is */
			if (!r)
				fsr_closedir(&d);
			r = r < 0 ? r : 0;
		} else {
			struct fsr_usage u;
			r = fsr_usage(&tmp, l.e[i].name, MAX_WRITE_SET_ENTRIES, &u, &s->fail);
			if (r > 0)
				r = dk_problem(s, s->fail.path, "%s", s->fail.msg);
			else if (!r)
				r = dk_transient(s, DK_TRANSIENT_WRITE_SET, path, u.bytes);
			if (!r && (u.truncated || u.unreadable || u.other_fs))
				r = dk_problem(s, path, "not fully walked: the byte count is a lower bound");
		}
		free(path);
	}
	fsr_list_free(&l);
	fsr_closedir(&tmp);
	return r;
}

int dk_read_layerdb(struct dk_scan *s)
{
	struct fsr_dir ldb;
	int r = dk_opendir(s, &s->root, DK_LAYERDB, 0, &ldb, NULL, 0);
	if (r)
		return r < 0 ? r : 0;
	r = read_layers(s, &ldb);
	if (!r)
		r = read_mounts(s, &ldb);
	if (!r)
		r = read_write_sets(s, &ldb);
	fsr_closedir(&ldb);
	return r;
}
