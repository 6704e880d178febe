/* The support bundle format: see bundle.h. */
#include "config.h"
#include "bundle.h"
#include "util/jsonc.h"
#include "util/safeio.h"
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

int bundle_path_ok(const char *path)
{
	if (!path || !*path || *path == '/' || strlen(path) >= 4096)
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
	if (b->n == b->cap) {
		size_t nc = b->cap ? b->cap * 2 : 64;
		struct bundle_entry *ne = realloc(b->e, nc * sizeof(*ne));
		if (!ne) {
			free(data);
			return dmr_err_set(err, DMR_ENOMEM, "out of memory");
		}
		b->e = ne;
		b->cap = nc;
	}
	char *p = strdup(path);
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
	memset(b, 0, sizeof(*b));
}

static const char *kind_name(enum bundle_kind k)
{
	return k == BUNDLE_METADATA_BLOCKS ? "metadata-blocks" : "file";
}

static char *manifest_text(const struct bundle *b)
{
	struct json_object *root = json_object_new_object();
	json_object_object_add(root, "schema", json_object_new_string(BUNDLE_SCHEMA));
	json_object_object_add(root, "generator", json_object_new_string(PACKAGE_NAME " " PACKAGE_VERSION));
	json_object_object_add(root, "source", b->source ? json_object_new_string(b->source) : NULL);
	json_object_object_add(root, "redacted", json_object_new_boolean(b->redacted));
	json_object_object_add(root, "metadata_file_size", json_object_new_int64((int64_t)b->meta_file_size));
	struct json_object *arr = json_object_new_array();
	for (size_t i = 0; i < b->n; i++) {
		const struct bundle_entry *e = &b->e[i];
		struct json_object *o = json_object_new_object();
		char hex[SHA256_HEX_LEN + 1];
		sha256_hex(e->data, e->len, hex);
		json_object_object_add(o, "path", json_object_new_string(e->path));
		json_object_object_add(o, "kind", json_object_new_string(kind_name(e->kind)));
		json_object_object_add(o, "size", json_object_new_int64((int64_t)e->len));
		if (e->kind == BUNDLE_METADATA_BLOCKS)
			json_object_object_add(o, "blocks", json_object_new_int64((int64_t)(e->len / BUNDLE_REC)));
		json_object_object_add(o, "sha256", json_object_new_string(hex));
		json_object_array_add(arr, o);
	}
	json_object_object_add(root, "entries", arr);
	char *s = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
							       JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(root);
	return s;
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

static void put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

int bundle_write(const struct bundle *b, int fd, const char *what, uint64_t *out_len, struct dmr_err *err)
{
	char *man = manifest_text(b);
	if (!man)
		return dmr_err_set(err, DMR_ENOMEM, "out of memory");
	size_t mlen = strlen(man);
	unsigned char hdr[MAGIC_LEN + 8], trailer[MAGIC_LEN + SHA256_DIGEST_LEN];
	memcpy(hdr, MAGIC, MAGIC_LEN);
	put_le64(hdr + MAGIC_LEN, mlen);
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

/* Inflates the whole file (one gzip member, nothing after it). */
static int inflate_file(const char *path, unsigned char **out, size_t *out_len, struct dmr_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return dmr_err_set(err, DMR_EIO, "%s: %s", path, strerror(errno));
	z_stream z = { 0 };
	if (inflateInit2(&z, 15 + 16) != Z_OK) {
		close(fd);
		return dmr_err_set(err, DMR_ENOMEM, "%s: cannot start zlib", path);
	}
	static unsigned char in[1 << 16];
	size_t cap = 1 << 20, len = 0;
	unsigned char *buf = malloc(cap);
	int r = 0, done = 0;
	if (!buf)
		r = dmr_err_set(err, DMR_ENOMEM, "out of memory");
	while (!r && !done) {
		ssize_t n = read(fd, in, sizeof(in));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = dmr_err_set(err, DMR_EIO, "%s: %s", path, strerror(errno));
			break;
		}
		if (n == 0) {
			r = dmr_err_set(err, DMR_ECORRUPT, "%s: not a dmrescue bundle, or truncated (the compressed stream ends early)", path);
			break;
		}
		z.next_in = in;
		z.avail_in = (uInt)n;
		while (z.avail_in && !r && !done) {
			if (len == cap) {
				if (cap >= STREAM_MAX) {
					r = dmr_err_set(err, DMR_EUNSUPP, "%s: more than %zu bytes uncompressed", path, STREAM_MAX);
					break;
				}
				unsigned char *nb = realloc(buf, cap * 2);
				if (!nb) {
					r = dmr_err_set(err, DMR_ENOMEM, "out of memory");
					break;
				}
				buf = nb;
				cap *= 2;
			}
			z.next_out = buf + len;
			z.avail_out = (uInt)(cap - len);
			int zr = inflate(&z, Z_NO_FLUSH);
			len = cap - z.avail_out;
			if (zr == Z_STREAM_END) {
				done = 1;
				if (z.avail_in)
					r = dmr_err_set(err, DMR_ECORRUPT, "%s: not a dmrescue bundle (data after the gzip stream)", path);
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
	if (r) {
		free(buf);
		return r;
	}
	*out = buf;
	*out_len = len;
	return 0;
}

static int parse_manifest(const char *path, const char *text, size_t len, const unsigned char *body, size_t body_len,
			  struct bundle *b, struct dmr_err *err)
{
	struct json_tokener *tok = json_tokener_new();
	if (!tok)
		return dmr_err_set(err, DMR_ENOMEM, "out of memory");
	struct json_object *root = json_tokener_parse_ex(tok, text, (int)len);
	int ok = root && json_tokener_get_error(tok) == json_tokener_success;
	json_tokener_free(tok);
	struct json_object *v, *arr;
	int r = 0;
	if (!ok || !json_object_is_type(root, json_type_object) || !json_object_object_get_ex(root, "schema", &v) ||
	    strcmp(json_object_get_string(v), BUNDLE_SCHEMA) != 0 ||
	    !json_object_object_get_ex(root, "entries", &arr) || !json_object_is_type(arr, json_type_array) ||
	    !json_object_object_get_ex(root, "metadata_file_size", &v) || !json_object_is_type(v, json_type_int)) {
		r = dmr_err_set(err, DMR_ECORRUPT, "%s: bad manifest (not schema %s)", path, BUNDLE_SCHEMA);
		goto out;
	}
	int64_t msize = json_object_get_int64(v);
	if (msize < 0 || msize % BUNDLE_BLOCK) {
		r = dmr_err_set(err, DMR_ECORRUPT, "%s: bad manifest: metadata_file_size %lld", path, (long long)msize);
		goto out;
	}
	b->meta_file_size = (uint64_t)msize;
	if (json_object_object_get_ex(root, "redacted", &v))
		b->redacted = json_object_get_boolean(v);
	if (json_object_object_get_ex(root, "source", &v) && json_object_is_type(v, json_type_string))
		b->source = strdup(json_object_get_string(v));
	size_t n = json_object_array_length(arr), off = 0;
	if (n > ENTRIES_MAX) {
		r = dmr_err_set(err, DMR_ECORRUPT, "%s: bad manifest: %zu entries", path, n);
		goto out;
	}
	int have_meta = 0;
	for (size_t i = 0; i < n && !r; i++) {
		struct json_object *o = json_object_array_get_idx(arr, i), *p, *k, *s, *h;
		if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, "path", &p) ||
		    !json_object_object_get_ex(o, "kind", &k) || !json_object_object_get_ex(o, "size", &s) ||
		    !json_object_object_get_ex(o, "sha256", &h) || !json_object_is_type(s, json_type_int)) {
			r = dmr_err_set(err, DMR_ECORRUPT, "%s: bad manifest entry %zu", path, i);
			break;
		}
		const char *ps = json_object_get_string(p), *ks = json_object_get_string(k);
		int64_t size = json_object_get_int64(s);
		enum bundle_kind kind = !strcmp(ks, "file") ? BUNDLE_FILE : BUNDLE_METADATA_BLOCKS;
		if (!bundle_path_ok(ps) || (kind == BUNDLE_METADATA_BLOCKS && strcmp(ks, "metadata-blocks") != 0) ||
		    (kind == BUNDLE_METADATA_BLOCKS && (have_meta++ || strcmp(ps, BUNDLE_META_PATH) != 0 || size % BUNDLE_REC)) ||
		    (kind == BUNDLE_FILE && !strcmp(ps, BUNDLE_META_PATH)) || size < 0 || (uint64_t)size > body_len - off) {
			r = dmr_err_set(err, DMR_ECORRUPT, "%s: bad manifest entry %zu (%s)", path, i, ps);
			break;
		}
		char hex[SHA256_HEX_LEN + 1];
		sha256_hex(body + off, (size_t)size, hex);
		if (strcmp(hex, json_object_get_string(h)) != 0) {
			r = dmr_err_set(err, DMR_ECORRUPT, "%s: checksum mismatch in %s", path, ps);
			break;
		}
		unsigned char *d = malloc(size ? (size_t)size : 1);
		if (!d) {
			r = dmr_err_set(err, DMR_ENOMEM, "out of memory");
			break;
		}
		memcpy(d, body + off, (size_t)size);
		r = bundle_add(b, ps, kind, d, (size_t)size, err);
		off += (size_t)size;
	}
	if (!r && off != body_len)
		r = dmr_err_set(err, DMR_ECORRUPT, "%s: %zu bytes beyond the manifest's entries", path, body_len - off);
	/* every metadata block must fall inside the file */
	for (size_t i = 0; i < b->n && !r; i++) {
		const struct bundle_entry *e = &b->e[i];
		for (size_t j = 0; e->kind == BUNDLE_METADATA_BLOCKS && j < e->len / BUNDLE_REC && !r; j++) {
			uint64_t blk = get_le64(e->data + j * BUNDLE_REC);
			if (blk >= b->meta_file_size / BUNDLE_BLOCK)
				r = dmr_err_set(err, DMR_ECORRUPT, "%s: metadata block %llu beyond the file's %llu bytes",
						path, (unsigned long long)blk, (unsigned long long)b->meta_file_size);
		}
	}
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
	const size_t tail = MAGIC_LEN + SHA256_DIGEST_LEN;
	if (len < MAGIC_LEN + 8 + tail || memcmp(s, MAGIC, MAGIC_LEN) != 0) {
		free(s);
		return dmr_err_set(err, DMR_ECORRUPT, "%s: not a dmrescue bundle", path);
	}
	uint64_t mlen = get_le64(s + MAGIC_LEN);
	size_t hdr = MAGIC_LEN + 8;
	if (mlen > MANIFEST_MAX || mlen > len - hdr - tail) {
		free(s);
		return dmr_err_set(err, DMR_ECORRUPT, "%s: bad manifest length %llu", path, (unsigned long long)mlen);
	}
	const unsigned char *trailer = s + len - tail;
	unsigned char digest[SHA256_DIGEST_LEN];
	struct sha256_ctx c;
	sha256_init(&c);
	sha256_update(&c, s + hdr, (size_t)mlen);
	sha256_final(&c, digest);
	if (memcmp(trailer, END_MAGIC, MAGIC_LEN) != 0 || memcmp(trailer + MAGIC_LEN, digest, SHA256_DIGEST_LEN) != 0) {
		free(s);
		return dmr_err_set(err, DMR_ECORRUPT, "%s: damaged bundle (manifest checksum or end marker)", path);
	}
	r = parse_manifest(path, (const char *)s + hdr, (size_t)mlen, s + hdr + mlen, len - hdr - (size_t)mlen - tail,
			   out, err);
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

/* Creates the directories on the way to rel below dir. */
static int make_parents(const char *dir, const char *rel, struct dmr_err *err)
{
	char buf[8192];
	if (snprintf(buf, sizeof(buf), "%s/%s", dir, rel) >= (int)sizeof(buf))
		return dmr_err_set(err, DMR_EUNSUPP, "path too long: %s", rel);
	for (char *p = buf + strlen(dir) + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return dmr_err_set(err, DMR_EIO, "creating %s: %s", buf, strerror(errno));
		*p = '/';
	}
	return 0;
}

int bundle_extract(const struct bundle *b, const char *dir, struct dmr_err *err)
{
	for (size_t i = 0; i < b->n; i++) {
		const struct bundle_entry *e = &b->e[i];
		char path[8192];
		if (!bundle_path_ok(e->path))
			return dmr_err_set(err, DMR_ECORRUPT, "bad path in bundle: %s", e->path);
		int r = make_parents(dir, e->path, err);
		if (r)
			return r;
		snprintf(path, sizeof(path), "%s/%s", dir, e->path);
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0)
			return dmr_err_set(err, DMR_EIO, "creating %s: %s", path, strerror(errno));
		if (e->kind == BUNDLE_FILE) {
			r = write_all(fd, e->data, e->len, 0, path, err);
		} else {
			if (ftruncate(fd, (off_t)b->meta_file_size) < 0)
				r = dmr_err_set(err, DMR_EIO, "sizing %s: %s", path, strerror(errno));
			for (size_t j = 0; !r && j < e->len / BUNDLE_REC; j++) {
				const unsigned char *rec = e->data + j * BUNDLE_REC;
				r = write_all(fd, rec + 8, BUNDLE_BLOCK, (off_t)(get_le64(rec) * BUNDLE_BLOCK), path, err);
			}
		}
		if (close(fd) < 0 && !r)
			r = dmr_err_set(err, DMR_EIO, "writing %s: %s", path, strerror(errno));
		if (r)
			return r;
	}
	return 0;
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
