/* image/devicemapper/imagedb/content/sha256/<id>: image configs (the id is
 * the sha256 of the file), their layers as chain ids computed from
 * rootfs.diff_ids, config.Labels, and the tags of repositories.json. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker/gojson.h"
#include "docker/scan.h"
#include "util/sha256.h"

#define MAX_TAGS ((size_t)1000000)

void dk_image_clear(struct dk_image *im)
{
	free(im->id);
	dk_free_strv(im->diff_ids, im->nr_diff_ids);
	dk_free_strv(im->chain_ids, im->chain_ids ? im->nr_diff_ids : 0);
	dk_free_strv(im->tags, im->nr_tags);
	gj_labels_free(im->labels, im->nr_labels);
	free(im->top_layer);
	free(im->error);
	memset(im, 0, sizeof(*im));
}

int dk_chain_ids(char *const *diff_ids, size_t n, char ***out)
{
	*out = NULL;
	if (!n)
		return 0;
	char **c = calloc(n, sizeof(*c));
	if (!c)
		return DMR_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (i == 0) {
			c[0] = strdup(diff_ids[0]);
		} else {
			/* layer/layer.go createChainIDFromParent: sha256("<parent chain> <diff id>") */
			struct sha256_ctx ctx;
			unsigned char d[SHA256_DIGEST_LEN];
			sha256_init(&ctx);
			sha256_update(&ctx, c[i - 1], strlen(c[i - 1]));
			sha256_update(&ctx, " ", 1);
			sha256_update(&ctx, diff_ids[i], strlen(diff_ids[i]));
			sha256_final(&ctx, d);
			c[i] = malloc(7 + SHA256_HEX_LEN + 1);
			if (c[i]) {
				static const char hex[] = "0123456789abcdef";
				memcpy(c[i], "sha256:", 7);
				for (int k = 0; k < SHA256_DIGEST_LEN; k++) {
					c[i][7 + 2 * k] = hex[d[k] >> 4];
					c[i][7 + 2 * k + 1] = hex[d[k] & 15];
				}
				c[i][7 + SHA256_HEX_LEN] = '\0';
			}
		}
		if (!c[i]) {
			dk_free_strv(c, i);
			return DMR_ENOMEM;
		}
	}
	*out = c;
	return 0;
}

/* rootfs.diff_ids into im (all or nothing); err gets what is wrong. */
static int parse_rootfs(struct json_object *root, struct dk_image *im, char *err, size_t errlen)
{
	char why[DK_MSG_MAX];
	struct json_object *rootfs = gj_member(root, "rootfs");
	if (!rootfs) {
		dk_first_error(err, errlen, "", "no rootfs");
		return 0;
	}
	if (!json_object_is_type(rootfs, json_type_object)) {
		snprintf(why, sizeof(why), "rootfs: %s, not an object", gj_type_name(json_object_get_type(rootfs)));
		dk_first_error(err, errlen, "", why);
		return 0;
	}
	char *type = NULL;
	int r = gj_get_str(rootfs, "type", &type, why, sizeof(why));
	if (r < 0)
		return r;
	if (r == GJ_BAD) {
		dk_first_error(err, errlen, "rootfs.", why);
	} else if (r == GJ_OK && strcmp(type, "layers")) {
		char q[100];
		snprintf(why, sizeof(why), "rootfs.type is \"%s\", not \"layers\"", fsr_quote(q, sizeof(q), type, 40));
		dk_first_error(err, errlen, "", why);
	}
	free(type);
	struct json_object *ids = gj_member(rootfs, "diff_ids");
	if (!ids)
		return 0;
	if (!json_object_is_type(ids, json_type_array)) {
		snprintf(why, sizeof(why), "rootfs.diff_ids: %s, not an array", gj_type_name(json_object_get_type(ids)));
		dk_first_error(err, errlen, "", why);
		return 0;
	}
	size_t n = json_object_array_length(ids);
	if (n > DK_MAX_LIST_ITEMS) {
		snprintf(why, sizeof(why), "rootfs.diff_ids: more than %zu entries", DK_MAX_LIST_ITEMS);
		dk_first_error(err, errlen, "", why);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		struct json_object *v = json_object_array_get_idx(ids, i);
		const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
		if (!s || !dk_is_digest(s) || (size_t)json_object_get_string_len(v) != strlen(s)) {
			snprintf(why, sizeof(why), "rootfs.diff_ids[%zu]: %s", i,
				 s ? "not a sha256 digest" : "not a string");
			dk_first_error(err, errlen, "", why);
			return 0;
		}
	}
	if (!n)
		return 0;
	im->diff_ids = calloc(n, sizeof(char *));
	if (!im->diff_ids)
		return DMR_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		im->diff_ids[i] = strdup(json_object_get_string(json_object_array_get_idx(ids, i)));
		if (!im->diff_ids[i]) {
			dk_free_strv(im->diff_ids, i);
			im->diff_ids = NULL;
			return DMR_ENOMEM;
		}
	}
	im->nr_diff_ids = n;
	return dk_chain_ids(im->diff_ids, n, &im->chain_ids);
}

static int parse_image(struct dk_scan *s, const char *path, const struct fsr_file *file, struct dk_image *im,
		       char *err, size_t errlen)
{
	struct gj_doc doc;
	int r = gj_parse(file->data, file->len, &doc, err, errlen);
	if (r)
		return r == DMR_ENOMEM ? r : 0;
	if (doc.top != json_type_object) {
		snprintf(err, errlen, "%s, not a JSON object", gj_type_name(doc.top));
		gj_free(&doc);
		return 0;
	}
	r = parse_rootfs(doc.root, im, err, errlen);
	if (!r)
		r = dk_read_labels(doc.root, "config", &im->labels, &im->nr_labels, err, errlen);
	if (!r && doc.dup_key[0])
		r = dk_problem(s, path, "duplicate key %s (the last one counts, as for Docker)", doc.dup_key);
	gj_free(&doc);
	return r;
}

static int read_image(struct dk_scan *s, const struct fsr_dir *dir, const char *name)
{
	struct dk_state *st = s->st;
	if (DK_GROW(st->images, s->cap_images, st->nr_images + 1))
		return DMR_ENOMEM;
	struct dk_image *im = &st->images[st->nr_images++];
	memset(im, 0, sizeof(*im));
	im->id = malloc(7 + 64 + 1);
	char *path = dk_path(dir, name);
	int r = DMR_ENOMEM;
	if (!im->id || !path)
		goto out;
	snprintf(im->id, 7 + 64 + 1, "sha256:%s", name);
	struct fsr_file file;
	char err[DK_MSG_MAX] = "";
	r = dk_read(s, dir, name, FSR_JSON_MAX, 1, &file, err, sizeof(err));
	if (r < 0)
		goto out;
	if (r == 0) {
		char hex[SHA256_HEX_LEN + 1];
		sha256_hex(file.data, file.len, hex);
		if (strcmp(hex, name)) {
			/* Docker verifies this when loading and drops the image. */
			snprintf(err, sizeof(err), "content is sha256:%s, not its name: Docker does not load it", hex);
			r = dk_problem(s, path, "%s", err);
		}
		if (!r) {
			char perr[DK_MSG_MAX] = "";
			r = parse_image(s, path, &file, im, perr, sizeof(perr));
			if (!r && perr[0]) {
				r = dk_problem(s, path, "%s", perr);
				dk_first_error(err, sizeof(err), "", perr);
			}
		}
		fsr_file_free(&file);
	} else {
		r = 0;
	}
	if (!r && err[0]) {
		im->error = strdup(err);
		if (!im->error)
			r = DMR_ENOMEM;
	}
out:
	free(path);
	return r;
}

static int cmp_image(const void *a, const void *b)
{
	return strcmp(((const struct dk_image *)a)->id, ((const struct dk_image *)b)->id);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add_tag(struct dk_image *im, const char *tag)
{
	char **t = realloc(im->tags, (im->nr_tags + 1) * sizeof(*t));
	if (!t)
		return DMR_ENOMEM;
	im->tags = t;
	t[im->nr_tags] = strdup(tag);
	if (!t[im->nr_tags])
		return DMR_ENOMEM;
	im->nr_tags++;
	return 0;
}

/* repositories.json: {"Repositories": {"<name>": {"<ref>": "sha256:<image id>"}}} */
static int read_tags(struct dk_scan *s)
{
	struct dk_state *st = s->st;
	struct fsr_file file;
	int r = dk_read(s, &s->root, DK_REPOSITORIES, FSR_JSON_MAX, 0, &file, NULL, 0);
	if (r)
		return r < 0 ? r : 0;
	char err[DK_MSG_MAX] = "";
	struct gj_doc doc;
	r = gj_parse(file.data, file.len, &doc, err, sizeof(err));
	fsr_file_free(&file);
	if (r)
		return r == DMR_ENOMEM ? r : dk_problem(s, DK_REPOSITORIES, "%s", err);
	struct json_object *repos = gj_member(doc.root, "Repositories");
	if (doc.top != json_type_object)
		r = dk_problem(s, DK_REPOSITORIES, "%s, not a JSON object", gj_type_name(doc.top));
	else if (doc.dup_key[0])
		r = dk_problem(s, DK_REPOSITORIES, "duplicate key %s (the last one counts, as for Docker)", doc.dup_key);
	if (!r && doc.top == json_type_object && repos && !json_object_is_type(repos, json_type_object))
		r = dk_problem(s, DK_REPOSITORIES, "Repositories: %s, not an object",
			       gj_type_name(json_object_get_type(repos)));
	if (r || doc.top != json_type_object || !repos || !json_object_is_type(repos, json_type_object)) {
		gj_free(&doc);
		return r;
	}
	size_t nr_tags = 0;
	struct json_object_iterator it = json_object_iter_begin(repos), end = json_object_iter_end(repos);
	for (; !r && !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
		struct json_object *refs = json_object_iter_peek_value(&it);
		char q[160], q2[160];
		fsr_quote(q, sizeof(q), json_object_iter_peek_name(&it), 80);
		if (!refs || !json_object_is_type(refs, json_type_object)) {
			r = dk_problem(s, DK_REPOSITORIES, "repository \"%s\": %s, not an object", q,
				       gj_type_name(json_object_get_type(refs)));
			continue;
		}
		struct json_object_iterator rit = json_object_iter_begin(refs), rend = json_object_iter_end(refs);
		for (; !r && !json_object_iter_equal(&rit, &rend); json_object_iter_next(&rit)) {
			const char *ref = json_object_iter_peek_name(&rit);
			struct json_object *v = json_object_iter_peek_value(&rit);
			fsr_quote(q2, sizeof(q2), ref, 100);
			if (!v || !json_object_is_type(v, json_type_string)) {
				r = dk_problem(s, DK_REPOSITORIES, "\"%s\": %s, not a string", q2,
					       gj_type_name(json_object_get_type(v)));
				continue;
			}
			struct dk_image key = { .id = (char *)json_object_get_string(v) };
			struct dk_image *im = st->nr_images
				? bsearch(&key, st->images, st->nr_images, sizeof(key), cmp_image) : NULL;
			if (!im) {
				char q3[160];
				r = dk_problem(s, DK_REPOSITORIES, "\"%s\" names image \"%s\", which is not in imagedb", q2,
					       fsr_quote(q3, sizeof(q3), key.id, 80));
			} else if (nr_tags == MAX_TAGS) {
				r = dk_problem(s, DK_REPOSITORIES, "more than %zu tags: the rest is not read", MAX_TAGS);
				break;
			} else {
				r = add_tag(im, ref);
				nr_tags++;
			}
		}
		if (nr_tags == MAX_TAGS)
			break;
	}
	gj_free(&doc);
	for (size_t i = 0; i < st->nr_images; i++)
		if (st->images[i].nr_tags > 1)
			qsort(st->images[i].tags, st->images[i].nr_tags, sizeof(char *), cmp_str);
	return r;
}

int dk_read_imagedb(struct dk_scan *s)
{
	struct fsr_dir dir;
	int r = dk_opendir(s, &s->root, DK_IMAGEDB "/content/sha256", 0, &dir, NULL, 0);
	if (r)
		return r < 0 ? r : 0;
	struct fsr_list l;
	r = dk_list(s, &dir, "", 1, &l);
	if (r) {
		fsr_closedir(&dir);
		return r < 0 ? r : 0;
	}
	for (size_t i = 0; i < l.n && !r; i++) {
		const char *name = l.e[i].name;
		if (strlen(name) == 64 && dk_is_hex(name, 64)) {
			r = read_image(s, &dir, name);
			continue;
		}
		char *path = dk_path(&dir, name);
		if (!path) {
			r = DMR_ENOMEM;
		} else if (!strncmp(name, ".tmp-", 5)) {
			struct stat st;
			uint64_t bytes = 0;
			if (!fsr_lstat(&dir, name, &st, &s->fail) && !S_ISDIR(st.st_mode))
				bytes = (uint64_t)st.st_size;
			r = dk_transient(s, DK_TRANSIENT_IMAGEDB_TMP, path, bytes);
		} else {
			r = dk_problem(s, path, "not an image id (Docker skips it)");
		}
		free(path);
	}
	fsr_list_free(&l);
	fsr_closedir(&dir);
	if (!r && s->st->nr_images > 1)
		qsort(s->st->images, s->st->nr_images, sizeof(s->st->images[0]), cmp_image);
	if (!r)
		r = read_tags(s);
	return r;
}
