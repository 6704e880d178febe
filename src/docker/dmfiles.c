/* The driver home: metadata/<hash> and metadata/base (one JSON devInfo
 * each), deviceset-metadata, transaction-metadata, the legacy
 * devicemapper/json, leftovers Docker would trip over in metadata/, and
 * the mount point directories in mnt/. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker/gojson.h"
#include "docker/scan.h"

#define MAX_DEVICE_ID 0xffffff
/* Docker walks metadata/ to any depth; we stop here and say so. */
#define MAX_STRAY_DEPTH 16
#define MAX_MNT_ENTRIES 1000000

void dk_devfile_clear(struct dk_devfile *f)
{
	free(f->hash);
	free(f->name);
	free(f->error);
	memset(f, 0, sizeof(*f));
}

static int cmp_devfile(const void *a, const void *b)
{
	return strcmp(((const struct dk_devfile *)a)->hash, ((const struct dk_devfile *)b)->hash);
}

static struct dk_devfile *find_devfile(struct dk_state *st, size_t n, const char *hash)
{
	struct dk_devfile key = { .hash = (char *)hash };
	return n ? bsearch(&key, st->files, n, sizeof(key), cmp_devfile) : NULL;
}

static struct dk_devfile *new_devfile(struct dk_scan *s, const char *hash, const char *name)
{
	struct dk_state *st = s->st;
	if (DK_GROW(st->files, s->cap_files, st->nr_files + 1))
		return NULL;
	struct dk_devfile *f = &st->files[st->nr_files];
	memset(f, 0, sizeof(*f));
	f->device_id = -1;
	f->hash = strdup(hash);
	f->name = strdup(name);
	if (!f->hash || !f->name) {
		dk_devfile_clear(f);
		return NULL;
	}
	st->nr_files++;
	return f;
}

/* Keeps the first reason a field could not be read. */
/* The fields of a devInfo object; err gets the first reason it is not valid. */
static void parse_devinfo(const struct gj_doc *doc, struct json_object *o, struct dk_devfile *f, char *err,
			  size_t errlen)
{
	char why[DK_MSG_MAX];
	int64_t id;
	int r = gj_get_int(doc, o, "device_id", &id, why, sizeof(why));
	if (r == GJ_ABSENT) {
		dk_first_error(err, errlen, "", "no device_id");
	} else if (r == GJ_BAD) {
		dk_first_error(err, errlen, "", why);
	} else if (id < 0 || id > MAX_DEVICE_ID) {
		snprintf(why, sizeof(why), "device_id %lld is out of range (0..%d)", (long long)id, MAX_DEVICE_ID);
		dk_first_error(err, errlen, "", why);
	} else {
		f->device_id = id;
	}
	if (gj_get_u64(doc, o, "size", &f->size, why, sizeof(why)) == GJ_BAD)
		dk_first_error(err, errlen, "", why);
	if (gj_get_u64(doc, o, "transaction_id", &f->transaction_id, why, sizeof(why)) == GJ_BAD)
		dk_first_error(err, errlen, "", why);
	if (gj_get_bool(o, "initialized", &f->initialized, why, sizeof(why)) == GJ_BAD)
		dk_first_error(err, errlen, "", why);
	r = gj_get_bool(o, "deleted", &f->deleted, why, sizeof(why));
	if (r == GJ_BAD)
		dk_first_error(err, errlen, "", why);
	f->has_deleted_key = r != GJ_ABSENT;
}

static int set_invalid(struct dk_devfile *f, const char *err)
{
	f->valid = 0;
	f->error = strdup(err);
	return f->error ? 0 : DMR_ENOMEM;
}

static int duplicate_key_problem(struct dk_scan *s, const char *path, const struct gj_doc *doc)
{
	if (!doc->dup_key[0])
		return 0;
	return dk_problem(s, path, "duplicate key %s (the last one counts, as for Docker)", doc->dup_key);
}

/* metadata/<name>: one device. */
static int read_devfile(struct dk_scan *s, const struct fsr_dir *meta, const char *name)
{
	char *path = dk_path(meta, name);
	if (!path)
		return DMR_ENOMEM;
	struct dk_devfile *f = new_devfile(s, strcmp(name, "base") ? name : "", path);
	int r = DMR_ENOMEM;
	if (!f)
		goto out;
	struct fsr_file file;
	char err[DK_MSG_MAX] = "";
	r = dk_read(s, meta, name, FSR_JSON_MAX, 1, &file, err, sizeof(err));
	if (r < 0)
		goto out;
	if (r) {
		r = set_invalid(f, err);
		goto out;
	}
	struct gj_doc doc;
	r = gj_parse(file.data, file.len, &doc, err, sizeof(err));
	fsr_file_free(&file);
	if (r == DMR_ENOMEM)
		goto out;
	if (!r && doc.top != json_type_object)
		snprintf(err, sizeof(err), "%s, not a JSON object", gj_type_name(doc.top));
	else if (!r)
		parse_devinfo(&doc, doc.root, f, err, sizeof(err));
	r = duplicate_key_problem(s, path, &doc);
	gj_free(&doc);
	if (r)
		goto out;
	if (err[0]) {
		r = set_invalid(f, err);
		if (!r)
			r = dk_problem(s, path, "%s", err);
	} else {
		f->valid = 1;
	}
out:
	free(path);
	return r;
}

/* metadata/deviceset-metadata: Docker refuses to start when it does not read. */
static int read_deviceset(struct dk_scan *s, const struct fsr_dir *meta, const char *name)
{
	struct dk_deviceset *ds = &s->st->deviceset;
	struct fsr_file file;
	ds->present = 1;
	ds->next_device_id = -1;
	int r = dk_read(s, meta, name, FSR_JSON_MAX, 1, &file, NULL, 0);
	if (r)
		return r < 0 ? r : 0;
	char *path = dk_path(meta, name);
	if (!path) {
		fsr_file_free(&file);
		return DMR_ENOMEM;
	}
	char err[DK_MSG_MAX] = "", why[256];
	struct gj_doc doc;
	r = gj_parse(file.data, file.len, &doc, err, sizeof(err));
	fsr_file_free(&file);
	if (r == DMR_ENOMEM)
		goto out;
	if (!r && doc.top == json_type_null) {
		/* Go reads null into a struct as "nothing to set": Docker starts. */
		ds->valid = 1;
		r = dk_problem(s, path, "null instead of an object (Docker reads no values)");
		goto out_doc;
	}
	if (!r && doc.top != json_type_object) {
		snprintf(err, sizeof(err), "%s, not a JSON object", gj_type_name(doc.top));
	} else if (!r) {
		int64_t next;
		r = gj_get_int(&doc, doc.root, "next_device_id", &next, why, sizeof(why));
		if (r == GJ_BAD)
			dk_first_error(err, sizeof(err), "", why);
		else if (r == GJ_OK)
			ds->next_device_id = next;
		r = gj_get_str(doc.root, "BaseDeviceUUID", &ds->base_uuid, why, sizeof(why));
		if (r == DMR_ENOMEM)
			goto out_doc;
		if (r == GJ_BAD)
			dk_first_error(err, sizeof(err), "", why);
		r = gj_get_str(doc.root, "BaseDeviceFilesystem", &ds->base_fs, why, sizeof(why));
		if (r == DMR_ENOMEM)
			goto out_doc;
		if (r == GJ_BAD)
			dk_first_error(err, sizeof(err), "", why);
	}
	ds->valid = !err[0];
	r = duplicate_key_problem(s, path, &doc);
	if (!r && err[0])
		r = dk_problem(s, path, "%s", err);
out_doc:
	gj_free(&doc);
out:
	free(path);
	return r;
}

/* metadata/transaction-metadata. Docker ignores what does not parse and
 * uses Go's zero values instead; the fields hold what Docker reads. */
static int read_txn(struct dk_scan *s, const struct fsr_dir *meta, const char *name)
{
	struct dk_txn *t = &s->st->txn;
	struct fsr_file file;
	t->present = 1;
	int r = dk_read(s, meta, name, FSR_JSON_MAX, 1, &file, NULL, 0);
	if (r)
		return r < 0 ? r : 0; /* unreadable: Docker does not start; nothing known */
	char *path = dk_path(meta, name);
	t->device_hash = strdup("");
	if (!path || !t->device_hash) {
		free(path);
		fsr_file_free(&file);
		return DMR_ENOMEM;
	}
	t->device_id = 0;
	char err[DK_MSG_MAX] = "", why[256];
	struct gj_doc doc;
	r = gj_parse(file.data, file.len, &doc, err, sizeof(err));
	fsr_file_free(&file);
	if (r == DMR_ENOMEM)
		goto out;
	if (!r && doc.top != json_type_object) {
		snprintf(err, sizeof(err), "%s, not a JSON object", gj_type_name(doc.top));
	} else if (!r) {
		r = gj_get_u64(&doc, doc.root, "open_transaction_id", &t->open_transaction_id, why, sizeof(why));
		if (r != GJ_OK)
			dk_first_error(err, sizeof(err), "", r == GJ_BAD ? why : "no open_transaction_id");
		char *hash = NULL;
		r = gj_get_str(doc.root, "device_hash", &hash, why, sizeof(why));
		if (r == DMR_ENOMEM)
			goto out_doc;
		if (r == GJ_OK) {
			free(t->device_hash);
			t->device_hash = hash;
		} else {
			dk_first_error(err, sizeof(err), "",
				       r == GJ_BAD ? why : "no device_hash (Docker reads \"\", the base)");
		}
		int64_t id;
		r = gj_get_int(&doc, doc.root, "device_id", &id, why, sizeof(why));
		if (r == GJ_OK) {
			t->device_id = id;
			if (id < 0 || id > MAX_DEVICE_ID) {
				snprintf(why, sizeof(why), "device_id %lld is out of range (0..%d)", (long long)id,
					 MAX_DEVICE_ID);
				dk_first_error(err, sizeof(err), "", why);
			}
		} else {
			dk_first_error(err, sizeof(err), "", r == GJ_BAD ? why : "no device_id");
		}
	}
	t->valid = !err[0];
	r = duplicate_key_problem(s, path, &doc);
	if (!r && err[0])
		r = dk_problem(s, path, "%s (Docker ignores the file's errors and reads zeros)", err);
out_doc:
	gj_free(&doc);
out:
	free(path);
	return r;
}

/* Names Docker's loader skips (deviceFileWalkFunction), at any depth. */
static int docker_skips(const char *name)
{
	size_t n = strlen(name);
	return name[0] == '.' || (n >= 9 && !strcmp(name + n - 9, ".migrated")) ||
	       !strcmp(name, "deviceset-metadata") || !strcmp(name, "transaction-metadata");
}

static uint64_t entry_bytes(const struct fsr_dir *at, const char *name)
{
	struct fsr_fail f;
	struct stat st;
	if (fsr_lstat(at, name, &st, &f))
		return 0;
	return S_ISDIR(st.st_mode) ? 0 : (uint64_t)st.st_size;
}

/* Docker looks a stray file up by its base name, in metadata/ itself: it
 * starts only if that device has a valid file there. */
static int stray_problem(struct dk_scan *s, const char *path, const char *name, size_t nr_top)
{
	const struct dk_devfile *f = find_devfile(s->st, nr_top, strcmp(name, "base") ? name : "");
	char q[300];
	fsr_quote(q, sizeof(q), name, 100);
	if (f && f->valid)
		return dk_problem(s, path, "stray file in a subdirectory of metadata/: Docker loads it as device "
					   "\"%s\", whose own file is valid", q);
	return dk_problem(s, path, "stray file in a subdirectory of metadata/: Docker loads it as device \"%s\", "
				   "has no valid metadata/%s and will not start", q, q);
}

/* A subdirectory of metadata/: Docker walks it and takes every file in it
 * for a device named like the file, which it then loads from metadata/. */
static int walk_stray_dir(struct dk_scan *s, const struct fsr_dir *meta, size_t nr_top, const char *rel, int depth)
{
	struct fsr_list l;
	int r = dk_list(s, meta, rel, 1, &l);
	if (r)
		return r < 0 ? r : 0;
	for (size_t i = 0; i < l.n && !r; i++) {
		const char *name = l.e[i].name;
		char sub[FSR_PATH_MAX];
		if (fsr_join(sub, sizeof(sub), rel, name) < 0) {
			char *p = dk_path(meta, rel);
			r = p ? dk_problem(s, p, "path too long: not walked further") : DMR_ENOMEM;
			free(p);
			break;
		}
		char *path = dk_path(meta, sub);
		if (!path) {
			r = DMR_ENOMEM;
			break;
		}
		if (l.e[i].type == S_IFDIR) {
			if (depth >= MAX_STRAY_DEPTH)
				r = dk_problem(s, path, "directories nested more than %d deep in metadata/: not walked",
					       MAX_STRAY_DEPTH);
			else
				r = walk_stray_dir(s, meta, nr_top, sub, depth + 1);
		} else if (l.e[i].type && !docker_skips(name)) {
			r = dk_transient(s, DK_TRANSIENT_STRAY, path, entry_bytes(meta, sub));
			if (!r)
				r = stray_problem(s, path, name, nr_top);
		}
		free(path);
	}
	fsr_list_free(&l);
	return r;
}

/* metadata/: the device files first (sorted by hash), then what depends on them. */
static int read_metadata_dir(struct dk_scan *s, const struct fsr_dir *home)
{
	struct fsr_dir meta;
	struct fsr_list l;
	int r = dk_open_list(s, home, "metadata", &meta, &l);
	if (r <= 0)
		return r;
	r = 0;
	for (size_t i = 0; i < l.n && !r; i++) {
		const char *name = l.e[i].name;
		mode_t type = l.e[i].type;
		if (!strcmp(name, "deviceset-metadata")) {
			r = read_deviceset(s, &meta, name);
		} else if (!strcmp(name, "transaction-metadata")) {
			r = read_txn(s, &meta, name);
		} else if (type == S_IFDIR || !type) {
			continue; /* second pass */
		} else if (!strncmp(name, ".tmp", 4)) {
			if (type == S_IFREG) {
				char *path = dk_path(&meta, name);
				r = path ? dk_transient(s, DK_TRANSIENT_METADATA_TMP, path, entry_bytes(&meta, name))
					 : DMR_ENOMEM;
				free(path);
			}
		} else if (docker_skips(name)) {
			continue;
		} else if (type == S_IFREG || type == S_IFLNK) {
			r = read_devfile(s, &meta, name);
		} else {
			char *path = dk_path(&meta, name);
			r = path ? dk_transient(s, DK_TRANSIENT_STRAY, path, 0) : DMR_ENOMEM;
			if (!r && S_ISFIFO(type))
				r = dk_problem(s, path, "a fifo in metadata/: Docker takes it for a device file and "
						      "hangs reading it");
			else if (!r)
				r = dk_problem(s, path, "%s in metadata/: Docker takes it for a device file and will not "
						      "start", S_ISSOCK(type) ? "a socket" : "a device node");
			free(path);
		}
	}
	size_t nr_top = s->st->nr_files;
	if (nr_top > 1)
		qsort(s->st->files, nr_top, sizeof(s->st->files[0]), cmp_devfile);
	for (size_t i = 0; i < l.n && !r; i++)
		if (l.e[i].type == S_IFDIR)
			r = walk_stray_dir(s, &meta, nr_top, l.e[i].name, 1);
	fsr_list_free(&l);
	fsr_closedir(&meta);
	return r;
}

/* devicemapper/json (Docker <= 0.11): {"Devices": {"<hash>": {devInfo}}}.
 * Its entries count as devices only where no metadata/<hash> exists. */
static int read_legacy_json(struct dk_scan *s, const struct fsr_dir *home)
{
	struct dk_state *st = s->st;
	struct stat sb;
	struct fsr_fail f;
	if (!fsr_lstat(home, "devicemapper/json.migrated", &sb, &f))
		st->legacy_json_migrated = 1;
	struct fsr_file file;
	int r = dk_read(s, home, "devicemapper/json", FSR_JSON_MAX, 0, &file, NULL, 0);
	if (r == FSR_MISSING)
		return 0;
	st->legacy_json = 1;
	if (r)
		return r < 0 ? r : 0;
	char *path = dk_path(home, "devicemapper/json");
	if (!path) {
		fsr_file_free(&file);
		return DMR_ENOMEM;
	}
	char err[DK_MSG_MAX] = "";
	struct gj_doc doc;
	r = gj_parse(file.data, file.len, &doc, err, sizeof(err));
	fsr_file_free(&file);
	if (r == DMR_ENOMEM)
		goto out;
	if (r) {
		r = dk_problem(s, path, "%s", err);
		goto out;
	}
	r = duplicate_key_problem(s, path, &doc);
	if (r)
		goto out_doc;
	struct json_object *devs = gj_member(doc.root, "Devices");
	if (doc.top != json_type_object) {
		r = dk_problem(s, path, "%s, not a JSON object", gj_type_name(doc.top));
		goto out_doc;
	}
	if (!devs || !json_object_is_type(devs, json_type_object)) {
		r = dk_problem(s, path, "no \"Devices\" object");
		goto out_doc;
	}
	size_t nr_top = st->nr_files;
	struct json_object_iterator it = json_object_iter_begin(devs), end = json_object_iter_end(devs);
	for (; !r && !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
		const char *hash = json_object_iter_peek_name(&it);
		struct json_object *o = json_object_iter_peek_value(&it);
		if (find_devfile(st, nr_top, hash))
			continue;
		struct dk_devfile *df = new_devfile(s, hash, path);
		if (!df) {
			r = DMR_ENOMEM;
			break;
		}
		df->from_legacy_json = 1;
		err[0] = '\0';
		if (*hash && !dk_is_hash_name(hash))
			snprintf(err, sizeof(err), "the hash is not a usable file name");
		else if (!o || !json_object_is_type(o, json_type_object))
			snprintf(err, sizeof(err), "%s, not a JSON object", gj_type_name(json_object_get_type(o)));
		else
			parse_devinfo(&doc, o, df, err, sizeof(err));
		if (!err[0]) {
			df->valid = 1;
			continue;
		}
		char q[300];
		r = set_invalid(df, err);
		if (!r)
			r = dk_problem(s, path, "device \"%s\": %s", fsr_quote(q, sizeof(q), hash, 100), err);
	}
out_doc:
	gj_free(&doc);
out:
	free(path);
	return r;
}

/* mnt/<hash>: mount points. Outside a running daemon they should be gone
 * (18.02+) or empty; files in them were written while unmounted. */
static int read_mnt(struct dk_scan *s, const struct fsr_dir *home)
{
	struct fsr_dir mnt;
	struct fsr_list l;
	int r = dk_open_list(s, home, "mnt", &mnt, &l);
	if (r <= 0)
		return r;
	r = 0;
	for (size_t i = 0; i < l.n && !r; i++) {
		struct fsr_dir d;
		r = dk_opendir(s, &mnt, l.e[i].name, 1, &d, NULL, 0);
		if (r) {
			r = r < 0 ? r : 0;
			continue;
		}
		if (d.dev != mnt.dev) {
			r = dk_problem(s, d.rel, "a mount point: a filesystem is mounted here");
			fsr_closedir(&d);
			continue;
		}
		struct fsr_usage u;
		r = fsr_usage(&d, "", MAX_MNT_ENTRIES, &u, &s->fail);
		if (r > 0) {
			r = dk_problem(s, s->fail.path, "%s", s->fail.msg);
		} else if (!r) {
			r = dk_transient(s, u.entries ? DK_TRANSIENT_MNT_NONEMPTY : DK_TRANSIENT_MNT_EMPTY, d.rel,
					 u.bytes);
			if (!r && u.other_fs)
				r = dk_problem(s, d.rel, "a filesystem is mounted below it (not counted)");
			if (!r && u.truncated)
				r = dk_problem(s, d.rel, "too many entries or too deep: the byte count is a lower bound");
			if (!r && u.unreadable)
				r = dk_problem(s, d.rel, "partly unreadable: the byte count is a lower bound");
		}
		fsr_closedir(&d);
	}
	fsr_list_free(&l);
	fsr_closedir(&mnt);
	return r;
}

int dk_read_dmfiles(struct dk_scan *s, const struct fsr_dir *home)
{
	int r = read_metadata_dir(s, home);
	if (!r)
		r = read_legacy_json(s, home);
	if (!r)
		r = read_mnt(s, home);
	return r;
}
