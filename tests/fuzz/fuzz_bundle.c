/* Harness: the support bundle reader (bundle_read) and its extraction
 * (bundle_extract), on a file written from the input.
 *
 * Input: one selector byte, then the rest. Selector % 4 == 3: the rest is
 * the bundle file as it is (gzip and all). Otherwise the rest is the
 * manifest (JSON), a NUL, and the body (the entries' contents); the harness
 * reseals it as dmrescue writes a bundle: every entry's "sha256" set to the
 * hash of its slice of the body (by the entry's "size", in order, where
 * that is an integer that fits), the framing (magic, manifest length, end
 * marker, the manifest's SHA-256) added and the whole gzip-compressed, so
 * that mutations reach the manifest's meaning, not only its checksums.
 *
 * What a read that succeeds promises, and is checked: every entry path is
 * safe, the entries are few enough and their sizes add up; extraction into
 * an empty private directory creates nothing outside it. */
#include "config.h"
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "bundle.h"
#include "util/sha256.h"

#define MAGIC "DMRESCUE-BUNDLE1"
#define END_MAGIC "DMRESCUE-BNDLEND"

struct buf {
	unsigned char *p;
	size_t n, cap;
};

static void put(struct buf *b, const void *d, size_t n)
{
	if (b->n + n > b->cap) {
		size_t cap = (b->n + n) * 2 + 64;
		unsigned char *p = realloc(b->p, cap);
		FUZZ_ASSERT(p, "out of memory building the bundle");
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, d, n);
	b->n += n;
}

/* The manifest with each entry's sha256 fixed up from the body; the text as
 * it came when it is not a JSON object with an entries array. */
static char *reseal_manifest(const char *text, size_t len, const unsigned char *body, size_t body_len)
{
	struct json_tokener *tok = json_tokener_new();
	FUZZ_ASSERT(tok, "out of memory");
	struct json_object *root = json_tokener_parse_ex(tok, text, (int)len);
	int ok = root && json_tokener_get_error(tok) == json_tokener_success;
	json_tokener_free(tok);
	struct json_object *arr;
	if (!ok || !json_object_is_type(root, json_type_object) || !json_object_object_get_ex(root, "entries", &arr) ||
	    !json_object_is_type(arr, json_type_array)) {
		json_object_put(root);
		char *s = malloc(len + 1);
		FUZZ_ASSERT(s, "out of memory");
		memcpy(s, text, len);
		s[len] = '\0';
		return s;
	}
	size_t off = 0;
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct json_object *o = json_object_array_get_idx(arr, i), *sz;
		if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, "size", &sz) ||
		    !json_object_is_type(sz, json_type_int))
			continue;
		int64_t n = json_object_get_int64(sz);
		if (n < 0 || (uint64_t)n > body_len - off)
			continue;
		char hex[SHA256_HEX_LEN + 1];
		sha256_hex(body + off, (size_t)n, hex);
		json_object_object_add(o, "sha256", json_object_new_string(hex));
		off += (size_t)n;
	}
	char *s = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(root);
	FUZZ_ASSERT(s, "out of memory");
	return s;
}

static void gzip_to(const char *path, const unsigned char *d, size_t n)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	FUZZ_ASSERT(deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK, "deflateInit2");
	size_t cap = deflateBound(&z, n);
	unsigned char *out = malloc(cap);
	FUZZ_ASSERT(out, "out of memory");
	z.next_in = (unsigned char *)d;
	z.avail_in = (uInt)n;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	FUZZ_ASSERT(deflate(&z, Z_FINISH) == Z_STREAM_END, "deflate");
	size_t len = cap - z.avail_out;
	deflateEnd(&z);
	FILE *f = fopen(path, "wb");
	FUZZ_ASSERT(f && fwrite(out, 1, len, f) == len && fclose(f) == 0, "writing %s", path);
	free(out);
}

static void write_raw(const char *path, const unsigned char *d, size_t n)
{
	FILE *f = fopen(path, "wb");
	FUZZ_ASSERT(f && (n == 0 || fwrite(d, 1, n, f) == n) && fclose(f) == 0, "writing %s", path);
}

/* The names directly in dir, but for skip: what extraction must not add. */
static size_t count_below(const char *dir, const char *skip)
{
	DIR *d = opendir(dir);
	FUZZ_ASSERT(d, "cannot list %s", dir);
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, skip))
			n++;
	closedir(d);
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > (1u << 20))
		return 0;
	const char *tmp = fuzz_tmpdir();
	char file[4096], dir[4096];
	snprintf(file, sizeof(file), "%s/in.dmrb", tmp);
	snprintf(dir, sizeof(dir), "%s/x", tmp);
	fuzz_rm_below(tmp);
	const unsigned char *in = data + 1;
	size_t n = size - 1;
	if (data[0] % 4 == 3) {
		write_raw(file, in, n);
	} else {
		const unsigned char *nul = memchr(in, '\0', n);
		size_t mlen = nul ? (size_t)(nul - in) : n;
		const unsigned char *body = nul ? nul + 1 : in + n;
		size_t body_len = nul ? n - mlen - 1 : 0;
		char *m = reseal_manifest((const char *)in, mlen, body, body_len);
		size_t ml = strlen(m);
		struct buf b = { 0 };
		unsigned char le[8];
		for (int i = 0; i < 8; i++)
			le[i] = (unsigned char)((uint64_t)ml >> (8 * i));
		put(&b, MAGIC, 16);
		put(&b, le, 8);
		put(&b, m, ml);
		put(&b, body, body_len);
		put(&b, END_MAGIC, 16);
		unsigned char digest[SHA256_DIGEST_LEN];
		struct sha256_ctx c;
		sha256_init(&c);
		sha256_update(&c, m, ml);
		sha256_final(&c, digest);
		put(&b, digest, sizeof(digest));
		free(m);
		gzip_to(file, b.p, b.n);
		free(b.p);
	}

	struct bundle bd;
	struct dmr_err err = { 0 };
	int r = bundle_read(file, &bd, &err);
	FUZZ_ASSERT(memchr(err.msg, '\0', sizeof(err.msg)), "unterminated message");
	if (r) {
		FUZZ_ASSERT(r < 0 && err.msg[0], "failure %d without a message", r);
		FUZZ_ASSERT(!strchr(err.msg, '\n'), "message is not one line: \"%s\"", err.msg);
		return 0;
	}
	FUZZ_ASSERT(bd.e || bd.n == 0, "%zu entries but no array", bd.n);
	for (size_t i = 0; i < bd.n; i++) {
		FUZZ_ASSERT(bd.e[i].path && bundle_path_ok(bd.e[i].path), "entry %zu: unsafe path", i);
		FUZZ_ASSERT(bd.e[i].data || bd.e[i].len == 0, "entry %zu: %zu bytes but no data", i, bd.e[i].len);
	}
	FUZZ_ASSERT(mkdir(dir, 0700) == 0, "mkdir %s: %s", dir, strerror(errno));
	r = bundle_extract(&bd, dir, &err);
	FUZZ_ASSERT(r <= 0 && (r == 0 || err.msg[0]), "extraction failure %d without a message", r);
	/* nothing beside the input file and the extraction directory */
	FUZZ_ASSERT(count_below(tmp, "in.dmrb") == 1, "extraction wrote outside its directory");
	bundle_free(&bd);
	fuzz_rm_below(tmp);
	return 0;
}
