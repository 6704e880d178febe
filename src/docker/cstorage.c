#include "config.h"
#include "docker/gojson.h"
#include "docker/parsers.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/jsonc.h"

/* containers/storage's JSON stores (layers.go, images.go, containers.go at
 * 1fd0dc1d20, the last tree with the devicemapper driver): each a JSON
 * array of objects written by json-iterator in encoding/json's mode, read
 * back with json.Unmarshal. Members are matched as Go does (exactly, else
 * ignoring ASCII case) and null reads as absent. A bad element is skipped
 * and the rest are kept. */

#define CS_MAX_DEPTH 64

struct cs_ctx {
	const char *what; /* "layer", "image", "container" */
	size_t nr_elems, nr_skipped, nr_problems;
	char first[sizeof(((struct dmr_err *)0)->msg)];
};

static void cs_problem(struct cs_ctx *c, size_t index, const char *id, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void cs_problem(struct cs_ctx *c, size_t index, const char *id, const char *fmt, ...)
{
	if (c->nr_problems++ > 0)
		return;
	int n;
	if (id)
		n = snprintf(c->first, sizeof(c->first), "%s %zu (%.80s): ", c->what, index, id);
	else
		n = snprintf(c->first, sizeof(c->first), "%s %zu: ", c->what, index);
	if (n < 0 || (size_t)n >= sizeof(c->first))
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->first + n, sizeof(c->first) - (size_t)n, fmt, ap);
	va_end(ap);
}

/* The member key of obj as encoding/json finds it: the exact name, else
 * one that matches ignoring ASCII case; NULL when absent or null. */
static struct json_object *member(struct json_object *obj, const char *key)
{
	struct json_object *v = NULL;
	if (json_object_object_get_ex(obj, key, &v))
		return v;
	json_object_object_foreach(obj, k, val) {
		if (strcasecmp(k, key) == 0)
			return val;
	}
	return NULL;
}

static const char *type_name(struct json_object *v)
{
	return gj_type_name(json_object_get_type(v));
}

/* A JSON string without NUL bytes, copied; 1 when v is not one. */
static int dup_string(struct json_object *v, char **out)
{
	*out = NULL;
	if (!json_object_is_type(v, json_type_string))
		return 1;
	int len = json_object_get_string_len(v);
	const char *s = json_object_get_string(v);
	if (len < 0 || memchr(s, '\0', (size_t)len))
		return 1;
	*out = strndup(s, (size_t)len);
	return *out ? 0 : DMR_ENOMEM;
}

/* An optional string member: NULL when absent, null or "". */
static int opt_string(struct cs_ctx *c, size_t index, const char *id, struct json_object *obj, const char *key,
		      char **out)
{
	*out = NULL;
	struct json_object *v = member(obj, key);
	if (!v)
		return 0;
	int r = dup_string(v, out);
	if (r == DMR_ENOMEM)
		return r;
	if (r) {
		cs_problem(c, index, id, "\"%s\" is %s, not a string", key, type_name(v));
		return 0;
	}
	if (!**out) {
		free(*out);
		*out = NULL;
	}
	return 0;
}

/* "names": an array of strings; entries that are not strings are dropped. */
static int string_array(struct cs_ctx *c, size_t index, const char *id, struct json_object *obj, const char *key,
			char ***out, size_t *nr)
{
	*out = NULL;
	*nr = 0;
	struct json_object *v = member(obj, key);
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_array)) {
		cs_problem(c, index, id, "\"%s\" is %s, not an array", key, type_name(v));
		return 0;
	}
	size_t n = json_object_array_length(v);
	if (n == 0)
		return 0;
	char **a = calloc(n, sizeof(*a));
	if (!a)
		return DMR_ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(v, i);
		int r = dup_string(e, &a[k]);
		if (r == DMR_ENOMEM) {
			for (size_t j = 0; j < k; j++)
				free(a[j]);
			free(a);
			return r;
		}
		if (r)
			cs_problem(c, index, id, "\"%s\"[%zu] is %s, not a string", key, i, type_name(e));
		else
			k++;
	}
	if (k == 0) {
		free(a);
		a = NULL;
	}
	*out = a;
	*nr = k;
	return 0;
}

static void free_strings(char **a, size_t n)
{
	if (!a)
		return;
	for (size_t i = 0; i < n; i++)
		free(a[i]);
	free(a);
}

static int is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* Parses the document and checks it is an array; *arr is NULL for an empty
 * file or "null" (c/storage reads both as no entries). */
static int parse_array(const char *json, size_t len, struct cs_ctx *c, struct json_object **doc,
		       struct json_object **arr, struct dmr_err *err)
{
	*doc = *arr = NULL;
	if (len == 0)
		return 0;
	size_t start = 0;
	while (start < len && is_space(json[start]))
		start++;
	if (start == len)
		return dmr_err_set(err, DMR_ECORRUPT, "%ss: not JSON: only white space", c->what);
	if (len > INT_MAX)
		return dmr_err_set(err, DMR_ECORRUPT, "%ss: %zu bytes, too big", c->what, len);
	struct json_tokener *tok = json_tokener_new_ex(CS_MAX_DEPTH);
	if (!tok)
		return dmr_err_set(err, DMR_ENOMEM, "out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	struct json_object *o = json_tokener_parse_ex(tok, json, (int)len);
	enum json_tokener_error je = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	if (je == json_tokener_continue) {
		/* a top-level number or literal ends only at the terminating NUL */
		o = json_tokener_parse_ex(tok, "", 1);
		je = json_tokener_get_error(tok);
		end = len;
	}
	json_tokener_free(tok);
	if (je == json_tokener_continue || je == json_tokener_error_parse_eof) {
		json_object_put(o);
		return dmr_err_set(err, DMR_ECORRUPT, "%ss: not JSON: cut short after %zu bytes", c->what, len);
	}
	if (je != json_tokener_success) {
		json_object_put(o);
		return dmr_err_set(err, DMR_ECORRUPT, "%ss: not JSON: %s at byte %zu", c->what,
				   json_tokener_error_desc(je), end);
	}
	for (size_t i = end; i < len; i++) {
		if (!is_space(json[i])) {
			json_object_put(o);
			return dmr_err_set(err, DMR_ECORRUPT, "%ss: not JSON: data after the array at byte %zu",
					   c->what, i);
		}
	}
	if (!o)
		return 0; /* null */
	if (!json_object_is_type(o, json_type_array)) {
		int r = dmr_err_set(err, DMR_ECORRUPT, "%ss: %s, not a JSON array", c->what, type_name(o));
		json_object_put(o);
		return r;
	}
	*doc = o;
	*arr = o;
	return 0;
}

/* Element i as an object with a string id, or NULL (skipped, reported). */
static struct json_object *element(struct cs_ctx *c, struct json_object *arr, size_t i, char **id, int *nomem)
{
	struct json_object *e = json_object_array_get_idx(arr, i);
	*id = NULL;
	*nomem = 0;
	if (!json_object_is_type(e, json_type_object)) {
		cs_problem(c, i, NULL, "%s, not an object", type_name(e));
		c->nr_skipped++;
		return NULL;
	}
	struct json_object *v = member(e, "id");
	if (!v) {
		cs_problem(c, i, NULL, "no \"id\"");
		c->nr_skipped++;
		return NULL;
	}
	int r = dup_string(v, id);
	if (r == DMR_ENOMEM) {
		*nomem = 1;
		return NULL;
	}
	if (r || !**id) {
		cs_problem(c, i, NULL, "\"id\" is %s", r ? type_name(v) : "empty");
		free(*id);
		*id = NULL;
		c->nr_skipped++;
		return NULL;
	}
	return e;
}

static int cmp_str_ptr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reports the first id that occurs twice (c/storage keeps the last in its
 * index but both in its list; so do we). */
static int check_duplicates(struct cs_ctx *c, char **ids, size_t n)
{
	if (n < 2)
		return 0;
	char **s = malloc(n * sizeof(*s));
	if (!s)
		return DMR_ENOMEM;
	memcpy(s, ids, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_str_ptr);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(s[i - 1], s[i]) == 0) {
			if (c->nr_problems++ == 0)
				snprintf(c->first, sizeof(c->first), "%s id %.80s appears twice", c->what, s[i]);
			break;
		}
	}
	free(s);
	return 0;
}

static int finish(struct cs_ctx *c, struct dmr_err *err)
{
	if (c->nr_problems == 0)
		return 0;
	char more[64] = "";
	if (c->nr_problems > 1)
		snprintf(more, sizeof(more), " (and %zu more problems)", c->nr_problems - 1);
	return dmr_err_set(err, DMR_ECORRUPT, "%s%s; %zu of %zu %ss skipped", c->first, more, c->nr_skipped,
			   c->nr_elems, c->what);
}

/* ---- layers.json ---- */

static void cs_layer_clear(struct dk_cs_layer *l)
{
	free(l->id);
	free(l->parent);
	free_strings(l->names, l->nr_names);
	memset(l, 0, sizeof(*l));
}

void dk_cs_layers_free(struct dk_cs_layer *l, size_t nr)
{
	if (!l)
		return;
	for (size_t i = 0; i < nr; i++)
		cs_layer_clear(&l[i]);
	free(l);
}

int dk_cs_parse_layers(const char *json, size_t len, struct dk_cs_layer **out, size_t *nr, struct dmr_err *err)
{
	*out = NULL;
	*nr = 0;
	dmr_err_clear(err);
	struct cs_ctx c = { .what = "layer" };
	struct json_object *doc, *arr;
	int r = parse_array(json, len, &c, &doc, &arr, err);
	if (r || !arr)
		return r;
	c.nr_elems = json_object_array_length(arr);
	struct dk_cs_layer *v = calloc(c.nr_elems ? c.nr_elems : 1, sizeof(*v));
	char **ids = calloc(c.nr_elems ? c.nr_elems : 1, sizeof(*ids));
	size_t n = 0;
	if (!v || !ids)
		r = DMR_ENOMEM;
	for (size_t i = 0; r == 0 && i < c.nr_elems; i++) {
		struct dk_cs_layer l = { 0 };
		int nomem;
		struct json_object *e = element(&c, arr, i, &l.id, &nomem);
		if (nomem) {
			r = DMR_ENOMEM;
			break;
		}
		if (!e)
			continue;
		r = opt_string(&c, i, l.id, e, "parent", &l.parent);
		if (r == 0)
			r = string_array(&c, i, l.id, e, "names", &l.names, &l.nr_names);
		/* layers.go: Flags["incomplete"].(bool) marks a layer to delete at load */
		struct json_object *flags = member(e, "flags");
		if (r == 0 && flags) {
			if (!json_object_is_type(flags, json_type_object)) {
				cs_problem(&c, i, l.id, "\"flags\" is %s, not an object", type_name(flags));
			} else {
				struct json_object *inc = NULL;
				if (json_object_object_get_ex(flags, "incomplete", &inc) &&
				    json_object_is_type(inc, json_type_boolean))
					l.incomplete = json_object_get_boolean(inc);
			}
		}
		if (r) {
			cs_layer_clear(&l);
			break;
		}
		ids[n] = l.id;
		v[n++] = l;
	}
	if (r == 0)
		r = check_duplicates(&c, ids, n);
	free(ids);
	json_object_put(doc);
	if (r) {
		dk_cs_layers_free(v, n);
		return dmr_err_set(err, r, "out of memory reading %zu layers", c.nr_elems);
	}
	if (n == 0) {
		free(v);
		v = NULL;
	}
	*out = v;
	*nr = n;
	return finish(&c, err);
}

/* ---- images.json ---- */

static void cs_image_clear(struct dk_image *im)
{
	free(im->id);
	free_strings(im->tags, im->nr_tags);
	free(im->top_layer);
	memset(im, 0, sizeof(*im));
}

static void cs_images_free(struct dk_image *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		cs_image_clear(&v[i]);
	free(v);
}

int dk_cs_parse_images(const char *json, size_t len, struct dk_image **out, size_t *nr, struct dmr_err *err)
{
	*out = NULL;
	*nr = 0;
	dmr_err_clear(err);
	struct cs_ctx c = { .what = "image" };
	struct json_object *doc, *arr;
	int r = parse_array(json, len, &c, &doc, &arr, err);
	if (r || !arr)
		return r;
	c.nr_elems = json_object_array_length(arr);
	struct dk_image *v = calloc(c.nr_elems ? c.nr_elems : 1, sizeof(*v));
	char **ids = calloc(c.nr_elems ? c.nr_elems : 1, sizeof(*ids));
	size_t n = 0;
	if (!v || !ids)
		r = DMR_ENOMEM;
	for (size_t i = 0; r == 0 && i < c.nr_elems; i++) {
		struct dk_image im = { 0 };
		int nomem;
		struct json_object *e = element(&c, arr, i, &im.id, &nomem);
		if (nomem) {
			r = DMR_ENOMEM;
			break;
		}
		if (!e)
			continue;
		/* images.go: Names []string "names", TopLayer string "layer" ("" without layers) */
		r = string_array(&c, i, im.id, e, "names", &im.tags, &im.nr_tags);
		if (r == 0)
			r = opt_string(&c, i, im.id, e, "layer", &im.top_layer);
		if (r) {
			cs_image_clear(&im);
			break;
		}
		ids[n] = im.id;
		v[n++] = im;
	}
	if (r == 0)
		r = check_duplicates(&c, ids, n);
	free(ids);
	json_object_put(doc);
	if (r) {
		cs_images_free(v, n);
		return dmr_err_set(err, r, "out of memory reading %zu images", c.nr_elems);
	}
	if (n == 0) {
		free(v);
		v = NULL;
	}
	*out = v;
	*nr = n;
	return finish(&c, err);
}

/* ---- containers.json ---- */

static void cs_container_clear(struct dk_container *ct)
{
	free(ct->id);
	free(ct->name);
	free(ct->image);
	free(ct->layer);
	memset(ct, 0, sizeof(*ct));
}

static void cs_containers_free(struct dk_container *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		cs_container_clear(&v[i]);
	free(v);
}

int dk_cs_parse_containers(const char *json, size_t len, struct dk_container **out, size_t *nr,
			   struct dmr_err *err)
{
	*out = NULL;
	*nr = 0;
	dmr_err_clear(err);
	struct cs_ctx c = { .what = "container" };
	struct json_object *doc, *arr;
	int r = parse_array(json, len, &c, &doc, &arr, err);
	if (r || !arr)
		return r;
	c.nr_elems = json_object_array_length(arr);
	struct dk_container *v = calloc(c.nr_elems ? c.nr_elems : 1, sizeof(*v));
	char **ids = calloc(c.nr_elems ? c.nr_elems : 1, sizeof(*ids));
	size_t n = 0;
	if (!v || !ids)
		r = DMR_ENOMEM;
	for (size_t i = 0; r == 0 && i < c.nr_elems; i++) {
		struct dk_container ct = { 0 };
		int nomem;
		struct json_object *e = element(&c, arr, i, &ct.id, &nomem);
		if (nomem) {
			r = DMR_ENOMEM;
			break;
		}
		if (!e)
			continue;
		/* containers.go: Names []string "names", ImageID "image", LayerID "layer";
		 * no labels (Podman keeps its own config in "metadata", a string) */
		char **names = NULL;
		size_t nr_names = 0;
		r = string_array(&c, i, ct.id, e, "names", &names, &nr_names);
		if (r == 0 && nr_names > 0) {
			ct.name = names[0];
			names[0] = NULL;
		}
		free_strings(names, nr_names);
		if (r == 0)
			r = opt_string(&c, i, ct.id, e, "image", &ct.image);
		if (r == 0)
			r = opt_string(&c, i, ct.id, e, "layer", &ct.layer);
		if (r) {
			cs_container_clear(&ct);
			break;
		}
		ids[n] = ct.id;
		v[n++] = ct;
	}
	if (r == 0)
		r = check_duplicates(&c, ids, n);
	free(ids);
	json_object_put(doc);
	if (r) {
		cs_containers_free(v, n);
		return dmr_err_set(err, r, "out of memory reading %zu containers", c.nr_elems);
	}
	if (n == 0) {
		free(v);
		v = NULL;
	}
	*out = v;
	*nr = n;
	return finish(&c, err);
}
