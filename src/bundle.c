/* The support bundle format: see bundle.h. */
#include "config.h"
#include "bundle.h"
#include "util/jsonc.h"
#include "util/safeio.h"
#include "docker/fsread.h"
#include "thinmeta/ondisk.h"
#include "util/grow.h"
#include "util/sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define MAGIC "DMRESCUE-BUNDLE1"
#define END_MAGIC "DMRESCUE-BNDLEND"
#define MAGIC_LEN 16
#define MANIFEST_MAX ((uint64_t)64 << 20)
/* The whole stream is inflated in memory: bounded so a crafted bundle
 * cannot ask for more. */
#define STREAM_MAX ((size_t)4 << 30)
#define ENTRIES_MAX 1000000

_Static_assert(sizeof(MAGIC) - 1 == MAGIC_LEN, "magic length");
_Static_assert(sizeof(END_MAGIC) - 1 == MAGIC_LEN, "end magic length");

/* Printable: names go to terminals and one-line messages. */
static int printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

int bundle_path_ok(const char *path)
{
	if (!path || !*path || *path == '/' || strlen(path) >= BUNDLE_PATH_MAX || !printable(path))
		return 0;
	const char *p = path;
	while (*p) {
		const char *s = strchr(p, '/');
		size_t n = s ? (size_t)(s - p) : strlen(p);
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return 0;
		p += n;
		if (*p == '/') {
			p++;
			if (!*p)
				return 0;
		}
	}
	return 1;
}

int bundle_add(struct bundle *b, const char *path, enum bundle_kind kind, unsigned char *data, size_t len,
	       struct dmr_err *err)
{
	struct bundle_entry *ne = dmr_grow(b->e, &b->cap, b->n, sizeof(*ne));
	char *p = ne ? strdup(path) : NULL;
	if (ne)
		b->e = ne;
	if (!p) {
		free(data);
		return dmr_err_set(err, DMR_ENOMEM, "out of memory");
	}
	b->e[b->n++] = (struct bundle_entry){ .path = p, .kind = kind, .data = data, .len = len };
	return 0;
}

void bundle_free(struct bundle *b)
{
	for (size_t i = 0; i < b->n; i++) {
		free(b->e[i].path);
		free(b->e[i].data);
	}
	free(b->e);
	free(b->source);
	free(b->metadata_path);
	free(b->data_path);
	free(b->pool_prefix);
	memset(b, 0, sizeof(*b));
}

static const char *const kind_names[] = {
	[BUNDLE_FILE] = "file",
	[BUNDLE_METADATA_BLOCKS] = "metadata-blocks",
	[BUNDLE_DIR] = "dir",
	[BUNDLE_PLACEHOLDER] = "placeholder",
};
#define NR_KINDS (sizeof(kind_names) / sizeof(kind_names[0]))

static struct json_object *jstr_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static char *manifest_text(const struct bundle *b)
{
	struct json_object *root = json_object_new_object();
	json_object_object_add(root, "schema", json_object_new_string(BUNDLE_SCHEMA));
	json_object_object_add(root, "generator", json_object_new_string(PACKAGE_NAME " " PACKAGE_VERSION));
	json_object_object_add(root, "source", jstr_or_null(b->source));
	json_object_object_add(root, "metadata_path", jstr_or_null(b->metadata_path));
	json_object_object_add(root, "data_path", jstr_or_null(b->data_path));
	json_object_object_add(root, "pool_prefix", jstr_or_null(b->pool_prefix));
	json_object_object_add(root, "redacted", json_object_new_boolean(b->redacted));
	json_object_object_add(root, "metadata_file_size", json_object_new_int64((int64_t)b->meta_file_size));
	struct json_object *arr = json_object_new_array();
	for (size_t i = 0; i < b->n; i++) {
		const struct bundle_entry *e = &b->e[i];
		struct json_object *o = json_object_new_object();
		char hex[SHA256_HEX_LEN + 1];
		sha256_hex(e->data, e->len, hex);
		json_object_object_add(o, "path", json_object_new_string(e->path));
		json_object_object_add(o, "kind", json_object_new_string(kind_names[e->kind]));
		json_object_object_add(o, "size", json_object_new_int64((int64_t)e->len));
		if (e->kind == BUNDLE_METADATA_BLOCKS)
			json_object_object_add(o, "blocks", json_object_new_int64((int64_t)(e->len / BUNDLE_REC)));
		if (e->kind == BUNDLE_PLACEHOLDER)
			json_object_object_add(o, "file_size", json_object_new_int64((int64_t)e->file_size));
		json_object_object_add(o, "sha256", json_object_new_string(hex));
		json_object_array_add(arr, o);
	}
	json_object_object_add(root, "entries", arr);
	char *s = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
							       JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(root);
	return s;
}

/* Replaces the value of every "NAME=value" of Config.Env by "<redacted>".
 * NULL when the file does not parse: it is then left out (never leak). */
unsigned char *bundle_redact_env(const char *data, size_t len, size_t *out_len)
{
	struct json_tokener *tok = json_tokener_new();
	if (!tok)
		return NULL;
	struct json_object *root = json_tokener_parse_ex(tok, data, (int)len);
	int ok = root && json_tokener_get_error(tok) == json_tokener_success;
	json_tokener_free(tok);
	struct json_object *cfg, *env;
	if (!ok || !json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		return NULL;
	}
	if (json_object_object_get_ex(root, "Config", &cfg) && json_object_is_type(cfg, json_type_object) &&
	    json_object_object_get_ex(cfg, "Env", &env) && json_object_is_type(env, json_type_array)) {
		size_t n = json_object_array_length(env);
		for (size_t i = 0; i < n; i++) {
			const char *s = json_object_get_string(json_object_array_get_idx(env, i));
			const char *eq = s ? strchr(s, '=') : NULL;
			size_t k = eq ? (size_t)(eq - s) : (s ? strlen(s) : 0);
			char *nv = malloc(k + 12);
			if (!nv) {
				json_object_put(root);
				return NULL;
			}
			snprintf(nv, k + 12, "%.*s=<redacted>", (int)k, s ? s : "");
			json_object_array_put_idx(env, i, json_object_new_string(nv));
			free(nv);
		}
	}
	const char *txt = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	unsigned char *out = (unsigned char *)strdup(txt);
	if (out)
		*out_len = strlen(txt);
	json_object_put(root);
	return out;
}

struct gzout {
	z_stream z;
	int fd;
	const char *what;
	uint64_t off;
	unsigned char buf[1 << 16];
};

static int gz_feed(struct gzout *g, const void *data, size_t len, int flush, struct dmr_err *err)
{
	g->z.next_in = (unsigned char *)(uintptr_t)data;
	do {
		/* avail_in is 32-bit: feed big entries in pieces */
		size_t piece = len > (1u << 30) ? (1u << 30) : len;
		g->z.avail_in = (uInt)piece;
		len -= piece;
		int f = len ? Z_NO_FLUSH : flush;
		int r;
		do {
			g->z.next_out = g->buf;
			g->z.avail_out = sizeof(g->buf);
			r = deflate(&g->z, f);
			if (r == Z_STREAM_ERROR)
				return dmr_err_set(err, DMR_EIO, "%s: compressing: zlib error", g->what);
			size_t have = sizeof(g->buf) - g->z.avail_out;
			if (have) {
				if (sio_pwrite(g->fd, g->buf, have, (off_t)g->off, g->what, err))
					return err->code;
				g->off += have;
			}
		} while (g->z.avail_out == 0 || (f == Z_FINISH && r != Z_STREAM_END));
	} while (len);
	return 0;
}

int bundle_write(const struct bundle *b, int fd, const char *what, uint64_t *out_len, struct dmr_err *err)
{
	char *man = manifest_text(b);
	if (!man)
		return dmr_err_set(err, DMR_ENOMEM, "out of memory");
	size_t mlen = strlen(man);
	unsigned char hdr[MAGIC_LEN + 8], trailer[MAGIC_LEN + SHA256_DIGEST_LEN];
	memcpy(hdr, MAGIC, MAGIC_LEN);
	tm_put_le64(hdr + MAGIC_LEN, mlen);
	memcpy(trailer, END_MAGIC, MAGIC_LEN);
	struct sha256_ctx c;
	sha256_init(&c);
	sha256_update(&c, man, mlen);
	sha256_final(&c, trailer + MAGIC_LEN);

	struct gzout *g = calloc(1, sizeof(*g));
	if (!g) {
		free(man);
		return dmr_err_set(err, DMR_ENOMEM, "out of memory");
	}
	g->fd = fd;
	g->what = what;
	int r = 0;
	/* windowBits 15 + 16: a gzip header, so zcat reads it */
	if (deflateInit2(&g->z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
		free(g);
		free(man);
		return dmr_err_set(err, DMR_ENOMEM, "%s: cannot start zlib", what);
	}
	r = gz_feed(g, hdr, sizeof(hdr), Z_NO_FLUSH, err);
	if (!r)
		r = gz_feed(g, man, mlen, Z_NO_FLUSH, err);
	for (size_t i = 0; i < b->n && !r; i++)
		r = gz_feed(g, b->e[i].data, b->e[i].len, Z_NO_FLUSH, err);
	if (!r)
		r = gz_feed(g, trailer, sizeof(trailer), Z_FINISH, err);
	if (!r && out_len)
		*out_len = g->off;
	deflateEnd(&g->z);
	free(g);
	free(man);
	return r;
}

/* Deflate expands at most about 1032:1; a stream longer than that for
 * the file's size is not one (and must not size an allocation). */
#define DEFLATE_RATIO_MAX 1032

/* Inflates the whole file (one gzip member, nothing after it). */
static int inflate_file(const char *path, unsigned char **out, size_t *out_len, struct dmr_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return dmr_err_set(err, DMR_EIO, "%s: %s", path, strerror(e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return dmr_err_set(err, DMR_EIO, "%s: not a regular file", path);
	}
	size_t limit = STREAM_MAX;
	if ((uint64_t)st.st_size < (STREAM_MAX - (1 << 20)) / DEFLATE_RATIO_MAX)
		limit = (size_t)st.st_size * DEFLATE_RATIO_MAX + (1 << 20);
	z_stream z = { 0 };
	if (inflateInit2(&z, 15 + 16) != Z_OK) {
		close(fd);
		return dmr_err_set(err, DMR_ENOMEM, "%s: cannot start zlib", path);
	}
	enum { IN_SIZE = 1 << 16 };
	size_t cap = 1 << 20, len = 0;
	unsigned char *in = malloc(IN_SIZE), *buf = malloc(cap);
	int r = 0, done = 0;
	if (!buf || !in)
		r = dmr_err_set(err, DMR_ENOMEM, "out of memory");
	while (!r && !done) {
		ssize_t n = read(fd, in, IN_SIZE);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = dmr_err_set(err, DMR_EIO, "%s: %s", path, strerror(errno));
			break;
		}
		if (n == 0) {
			r = dmr_err_set(err, DMR_ECORRUPT,
					"%s: not a dmrescue bundle, or truncated (the compressed stream ends early)", path);
			break;
		}
		z.next_in = in;
		z.avail_in = (uInt)n;
		while (z.avail_in && !r && !done) {
			if (len == cap) {
				if (cap >= limit) {
					r = dmr_err_set(err, DMR_ECORRUPT,
							"%s: not a dmrescue bundle (expands to more than %zu bytes)", path,
							limit);
					break;
				}
				size_t ncap = cap * 2 < limit ? cap * 2 : limit;
				unsigned char *nb = realloc(buf, ncap);
				if (!nb) {
					r = dmr_err_set(err, DMR_ENOMEM, "out of memory");
					break;
				}
				buf = nb;
				cap = ncap;
			}
			z.next_out = buf + len;
			size_t room = cap - len;
			uInt give = room > UINT32_MAX ? UINT32_MAX : (uInt)room;
			z.avail_out = give;
			int zr = inflate(&z, Z_NO_FLUSH);
			len += give - z.avail_out;
			if (zr == Z_STREAM_END) {
				done = 1;
				if (z.avail_in)
					r = dmr_err_set(err, DMR_ECORRUPT,
							"%s: not a dmrescue bundle (data after the gzip stream)", path);
			} else if (zr != Z_OK && zr != Z_BUF_ERROR) {
				r = dmr_err_set(err, DMR_ECORRUPT, "%s: not a dmrescue bundle, or damaged (%s)", path,
						z.msg ? z.msg : "zlib error");
			}
		}
	}
	if (!r && done) {
		char extra;
		ssize_t n = read(fd, &extra, 1);
		if (n > 0)
			r = dmr_err_set(err, DMR_ECORRUPT, "%s: not a dmrescue bundle (data after the gzip stream)", path);
	}
	inflateEnd(&z);
	close(fd);
	free(in);
	if (r) {
		free(buf);
		return r;
	}
	*out = buf;
	*out_len = len;
	return 0;
}

/* An optional string member: absent or null is NULL; anything else must be
 * a printable string of reasonable length. */
static int opt_string(struct json_object *root, const char *key, char **out)
{
	struct json_object *v;
	if (!json_object_object_get_ex(root, key, &v) || !v)
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return -1;
	const char *s = json_object_get_string(v);
	if ((size_t)json_object_get_string_len(v) != strlen(s) || strlen(s) >= BUNDLE_PATH_MAX || !printable(s))
		return -1;
	*out = strdup(s);
	return *out ? 0 : -2;
}

static int get_int(struct json_object *o, const char *key, int64_t *out)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return -1;
	errno = 0;
	*out = json_object_get_int64(v);
	/* json-c clamps what does not fit to INT64_MAX and sets errno (or not, by version) */
	return errno || *out == INT64_MAX ? -1 : 0;
}

static const char *get_string(struct json_object *o, const char *key)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	const char *s = json_object_get_string(v);
	return (size_t)json_object_get_string_len(v) == strlen(s) ? s : NULL;
}

static int cmp_entry_path(const void *a, const void *b)
{
	const struct bundle_entry *const *x = a, *const *y = b;
	return strcmp((*x)->path, (*y)->path);
}

/* No path twice, and nothing below a path that is not a directory. */
static int check_paths(const char *path, const struct bundle *b, struct dmr_err *err)
{
	if (b->n < 2)
		return 0;
	const struct bundle_entry **v = malloc(b->n * sizeof(*v));
	if (!v)
		return dmr_err_set(err, DMR_ENOMEM, "out of memory");
	for (size_t i = 0; i < b->n; i++)
		v[i] = &b->e[i];
	qsort(v, b->n, sizeof(*v), cmp_entry_path);
	int r = 0;
	for (size_t i = 0; i + 1 < b->n && !r; i++) {
		if (!strcmp(v[i]->path, v[i + 1]->path)) {
			r = dmr_err_set(err, DMR_ECORRUPT, "%s: bad manifest: %s listed twice", path, v[i]->path);
			break;
		}
		if (v[i]->kind == BUNDLE_DIR)
			continue;
		/* entries below p sort at or after "p/": find the first of them */
		size_t pl = strlen(v[i]->path), lo = i + 1, hi = b->n;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			int c = strncmp(v[mid]->path, v[i]->path, pl);
			if (c < 0 || (c == 0 && (unsigned char)v[mid]->path[pl] < '/'))
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < b->n && !strncmp(v[lo]->path, v[i]->path, pl) && v[lo]->path[pl] == '/')
			r = dmr_err_set(err, DMR_ECORRUPT, "%s: bad manifest: %s is below the file %s", path,
					v[lo]->path, v[i]->path);
	}
	free(v);
	return r;
}

/* The metadata records: ascending block numbers inside the file. */
static int check_blocks(const char *path, const struct bundle *b, struct dmr_err *err)
{
	for (size_t i = 0; i < b->n; i++) {
		const struct bundle_entry *e = &b->e[i];
		uint64_t prev = 0;
		for (size_t j = 0; e->kind == BUNDLE_METADATA_BLOCKS && j < e->len / BUNDLE_REC; j++) {
			uint64_t blk = tm_le64(e->data + j * BUNDLE_REC);
			if (blk >= b->meta_file_size / BUNDLE_BLOCK)
				return dmr_err_set(err, DMR_ECORRUPT, "%s: metadata block %llu beyond the file's %llu bytes",
						   path, (unsigned long long)blk, (unsigned long long)b->meta_file_size);
			if (j && blk <= prev)
				return dmr_err_set(err, DMR_ECORRUPT, "%s: metadata block %llu out of order", path,
						   (unsigned long long)blk);
			prev = blk;
		}
	}
	return 0;
}

/* One manifest entry: its content is the next size bytes of the body. */
static int parse_entry(const char *path, size_t i, struct json_object *o, const unsigned char *body, size_t avail,
		       struct bundle *b, size_t *used, struct dmr_err *err)
{
	const char *ps = json_object_is_type(o, json_type_object) ? get_string(o, "path") : NULL;
	const char *ks = ps ? get_string(o, "kind") : NULL, *hs = ks ? get_string(o, "sha256") : NULL;
	int64_t size;
	if (!hs || get_int(o, "size", &size))
		return dmr_err_set(err, DMR_ECORRUPT, "%s: bad manifest entry %zu", path, i);
	char q[128];
	if (!bundle_path_ok(ps))
		return dmr_err_set(err, DMR_ECORRUPT, "%s: bad manifest entry %zu: unsafe path \"%s\"", path, i,
				   fsr_quote(q, sizeof(q), ps, 80));
	size_t k = 0;
	while (k < NR_KINDS && strcmp(ks, kind_names[k]) != 0)
		k++;
	if (k == NR_KINDS)
		return dmr_err_set(err, DMR_ECORRUPT, "%s: bad manifest entry %zu (%s): unknown kind", path, i, ps);
	int is_meta_path = !strcmp(ps, BUNDLE_META_PATH);
	if ((k == BUNDLE_METADATA_BLOCKS) != is_meta_path || (k == BUNDLE_METADATA_BLOCKS && size % BUNDLE_REC) ||
	    ((k == BUNDLE_DIR || k == BUNDLE_PLACEHOLDER) && size != 0))
		return dmr_err_set(err, DMR_ECORRUPT, "%s: bad manifest entry %zu (%s)", path, i, ps);
	if (size < 0 || (uint64_t)size > avail)
		return dmr_err_set(err, DMR_ECORRUPT, "%s: bad manifest entry %zu (%s): %lld bytes, %zu left", path, i,
				   ps, (long long)size, avail);
	int64_t fsize = 0;
	if (k == BUNDLE_PLACEHOLDER &&
	    (get_int(o, "file_size", &fsize) || fsize < 0 || (uint64_t)fsize > BUNDLE_PLACEHOLDER_MAX))
		return dmr_err_set(err, DMR_ECORRUPT, "%s: bad manifest entry %zu (%s): file_size", path, i, ps);
	char hex[SHA256_HEX_LEN + 1];
	sha256_hex(body, (size_t)size, hex);
	if (strcmp(hex, hs) != 0)
		return dmr_err_set(err, DMR_ECORRUPT, "%s: checksum mismatch in %s", path, ps);
	unsigned char *d = NULL;
	if (size) {
		d = malloc((size_t)size);
		if (!d)
			return dmr_err_set(err, DMR_ENOMEM, "out of memory");
		memcpy(d, body, (size_t)size);
	}
	int r = bundle_add(b, ps, (enum bundle_kind)k, d, (size_t)size, err);
	if (!r)
		b->e[b->n - 1].file_size = (uint64_t)fsize;
	*used = (size_t)size;
	return r;
}

static int parse_manifest(const char *path, const char *text, size_t len, const unsigned char *body, size_t body_len,
			  struct bundle *b, struct dmr_err *err)
{
	struct json_tokener *tok = json_tokener_new();
	if (!tok)
		return dmr_err_set(err, DMR_ENOMEM, "out of memory");
	struct json_object *root = json_tokener_parse_ex(tok, text, (int)len);
	int ok = root && json_tokener_get_error(tok) == json_tokener_success &&
		 json_tokener_get_parse_end(tok) == len;
	json_tokener_free(tok);
	struct json_object *arr;
	const char *schema = ok && json_object_is_type(root, json_type_object) ? get_string(root, "schema") : NULL;
	int64_t msize;
	int r = 0;
	if (!schema) {
		r = dmr_err_set(err, DMR_ECORRUPT, "%s: bad manifest (not JSON, or no schema)", path);
		goto out;
	}
	if (strcmp(schema, BUNDLE_SCHEMA) != 0) {
		char q[128];
		r = dmr_err_set(err, DMR_ECORRUPT, "%s: a bundle of schema \"%s\": this dmrescue reads %s", path,
				fsr_quote(q, sizeof(q), schema, 60), BUNDLE_SCHEMA);
		goto out;
	}
	if (!json_object_object_get_ex(root, "entries", &arr) || !json_object_is_type(arr, json_type_array) ||
	    get_int(root, "metadata_file_size", &msize)) {
		r = dmr_err_set(err, DMR_ECORRUPT, "%s: bad manifest (no entries or metadata_file_size)", path);
		goto out;
	}
	if (msize < 0 || msize % BUNDLE_BLOCK || (uint64_t)msize > BUNDLE_META_FILE_MAX) {
		r = dmr_err_set(err, DMR_ECORRUPT, "%s: bad manifest: metadata_file_size %lld", path, (long long)msize);
		goto out;
	}
	b->meta_file_size = (uint64_t)msize;
	struct json_object *v;
	if (json_object_object_get_ex(root, "redacted", &v))
		b->redacted = json_object_get_boolean(v);
	int sr = opt_string(root, "source", &b->source);
	if (!sr)
		sr = opt_string(root, "metadata_path", &b->metadata_path);
	if (!sr)
		sr = opt_string(root, "data_path", &b->data_path);
	if (!sr)
		sr = opt_string(root, "pool_prefix", &b->pool_prefix);
	if (sr) {
		r = sr == -2 ? dmr_err_set(err, DMR_ENOMEM, "out of memory")
			     : dmr_err_set(err, DMR_ECORRUPT, "%s: bad manifest (source, paths or pool prefix)", path);
		goto out;
	}
	size_t n = json_object_array_length(arr), off = 0;
	if (n > ENTRIES_MAX) {
		r = dmr_err_set(err, DMR_ECORRUPT, "%s: bad manifest: %zu entries", path, n);
		goto out;
	}
	for (size_t i = 0; i < n && !r; i++) {
		size_t used = 0;
		r = parse_entry(path, i, json_object_array_get_idx(arr, i), body + off, body_len - off, b, &used, err);
		off += used;
	}
	if (!r && off != body_len)
		r = dmr_err_set(err, DMR_ECORRUPT, "%s: %zu bytes beyond the manifest's entries", path, body_len - off);
	if (!r)
		r = check_paths(path, b, err);
	if (!r)
		r = check_blocks(path, b, err);
out:
	json_object_put(root);
	return r;
}

int bundle_read(const char *path, struct bundle *out, struct dmr_err *err)
{
	memset(out, 0, sizeof(*out));
	unsigned char *s = NULL;
	size_t len = 0;
	int r = inflate_file(path, &s, &len, err);
	if (r)
		return r;
	const size_t hdr = MAGIC_LEN + 8, tail = MAGIC_LEN + SHA256_DIGEST_LEN;
	/* "DMRESCUE-BUNDLE" and another digit: a later format */
	if (len >= MAGIC_LEN && !memcmp(s, MAGIC, MAGIC_LEN - 1) && s[MAGIC_LEN - 1] != MAGIC[MAGIC_LEN - 1] &&
	    s[MAGIC_LEN - 1] >= '0' && s[MAGIC_LEN - 1] <= '9') {
		r = dmr_err_set(err, DMR_ECORRUPT, "%s: a bundle of format version '%c': this dmrescue reads version 1",
				path, s[MAGIC_LEN - 1]);
		goto out;
	}
	if (len < hdr + tail || memcmp(s, MAGIC, MAGIC_LEN) != 0) {
		r = dmr_err_set(err, DMR_ECORRUPT, "%s: not a dmrescue bundle", path);
		goto out;
	}
	uint64_t mlen = tm_le64(s + MAGIC_LEN);
	if (mlen > MANIFEST_MAX || mlen > len - hdr - tail) {
		r = dmr_err_set(err, DMR_ECORRUPT, "%s: bad manifest length %llu", path, (unsigned long long)mlen);
		goto out;
	}
	const unsigned char *trailer = s + len - tail;
	unsigned char digest[SHA256_DIGEST_LEN];
	struct sha256_ctx c;
	sha256_init(&c);
	sha256_update(&c, s + hdr, (size_t)mlen);
	sha256_final(&c, digest);
	if (memcmp(trailer, END_MAGIC, MAGIC_LEN) != 0 || memcmp(trailer + MAGIC_LEN, digest, SHA256_DIGEST_LEN) != 0) {
		r = dmr_err_set(err, DMR_ECORRUPT, "%s: damaged bundle (manifest checksum or end marker)", path);
		goto out;
	}
	r = parse_manifest(path, (const char *)s + hdr, (size_t)mlen, s + hdr + mlen, len - hdr - (size_t)mlen - tail,
			   out, err);
out:
	free(s);
	if (r)
		bundle_free(out);
	return r;
}

static int write_all(int fd, const void *buf, size_t len, off_t off, const char *path, struct dmr_err *err)
{
	const unsigned char *p = buf;
	while (len) {
		ssize_t n = pwrite(fd, p, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return dmr_err_set(err, DMR_EIO, "writing %s: %s", path, strerror(errno));
		}
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

static int extract_error(const char *what, const char *rel, int e, struct dmr_err *err)
{
	/* what is in the way was put there by the bundle (or by someone else):
	 * a symlink, a file where a directory goes */
	if (e == ELOOP || e == ENOTDIR || e == EEXIST)
		return dmr_err_set(err, DMR_ECORRUPT, "%s %s: %s is in the way (a symlink or a file)", what, rel,
				   e == ELOOP ? "a symlink" : "something");
	return dmr_err_set(err, DMR_EIO, "%s %s: %s", what, rel, strerror(e));
}

/* Opens the directory of rel's last component below dirfd, creating the
 * directories on the way and following no symlink. Returns the fd and
 * points *last at the last component. */
static int open_parent(int dirfd, const char *rel, const char **last, struct dmr_err *err)
{
	char comp[BUNDLE_PATH_MAX];
	int fd = dup(dirfd);
	if (fd < 0)
		return -dmr_err_set(err, DMR_EIO, "extracting %s: %s", rel, strerror(errno));
	const char *p = rel, *s;
	while ((s = strchr(p, '/')) != NULL) {
		size_t n = (size_t)(s - p);
		memcpy(comp, p, n);
		comp[n] = '\0';
		if (mkdirat(fd, comp, 0700) < 0 && errno != EEXIST) {
			int e = errno;
			close(fd);
			return -extract_error("creating the directory of", rel, e, err);
		}
		int nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		close(fd);
		if (nfd < 0)
			return -extract_error("extracting", rel, e, err);
		fd = nfd;
		p = s + 1;
	}
	*last = p;
	return fd;
}

static int extract_one(const struct bundle *b, const struct bundle_entry *e, int dirfd, struct dmr_err *err)
{
	if (!bundle_path_ok(e->path))
		return dmr_err_set(err, DMR_ECORRUPT, "bad path in bundle: %s", e->path);
	const char *name;
	int pfd = open_parent(dirfd, e->path, &name, err);
	if (pfd < 0)
		return -pfd;
	int r = 0;
	if (e->kind == BUNDLE_DIR) {
		struct stat st;
		if (mkdirat(pfd, name, 0700) < 0 &&
		    (errno != EEXIST || fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode)))
			r = extract_error("creating", e->path, errno == EEXIST ? ELOOP : errno, err);
		close(pfd);
		return r;
	}
	int fd = openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		r = extract_error("creating", e->path, errno, err);
		close(pfd);
		return r;
	}
	close(pfd);
	if (e->kind == BUNDLE_FILE) {
		r = write_all(fd, e->data, e->len, 0, e->path, err);
	} else if (e->kind == BUNDLE_PLACEHOLDER) {
		if (ftruncate(fd, (off_t)e->file_size) < 0)
			r = dmr_err_set(err, DMR_EIO, "sizing %s: %s", e->path, strerror(errno));
	} else {
		if (ftruncate(fd, (off_t)b->meta_file_size) < 0)
			r = dmr_err_set(err, DMR_EIO, "sizing %s: %s", e->path, strerror(errno));
		for (size_t j = 0; !r && j < e->len / BUNDLE_REC; j++) {
			const unsigned char *rec = e->data + j * BUNDLE_REC;
			r = write_all(fd, rec + 8, BUNDLE_BLOCK, (off_t)(tm_le64(rec) * BUNDLE_BLOCK), e->path, err);
		}
	}
	if (close(fd) < 0 && !r)
		r = dmr_err_set(err, DMR_EIO, "writing %s: %s", e->path, strerror(errno));
	return r;
}

int bundle_extract(const struct bundle *b, const char *dir, struct dmr_err *err)
{
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return dmr_err_set(err, DMR_EIO, "%s: %s", dir, strerror(errno));
	int r = 0;
	for (size_t i = 0; i < b->n && !r; i++)
		r = extract_one(b, &b->e[i], dirfd, err);
	close(dirfd);
	return r;
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

void bundle_rmtree(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}
