/* Support bundles (src/bundle.c): a bundle written and read back gives the
 * same entries, and extracted the same files byte for byte, the same
 * directories, placeholders of the right size and the metadata file with
 * the same blocks in use (holes elsewhere); Config.Env is redacted.
 *
 * Damaged bundles are refused with DMR_ECORRUPT (exit status 2) and a
 * one-line message: truncated, a flipped byte, a wrong entry checksum,
 * unsafe paths ("..", absolute, control characters), a symlink in the way
 * at extraction, sizes past the end or that would overflow, duplicates, a
 * file with entries below it, metadata blocks out of order or beyond the
 * file, wrong magic, version or schema, trailing bytes. The raw streams are
 * crafted here (magic, manifest, body, end marker), so each case hits the
 * check it names and not an earlier one. */
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <zlib.h>

#include "bundle.h"
#include "thinmeta/ondisk.h"
#include "util/err.h"
#include "util/sha256.h"

static char tmpdir[256];
static char bundle_path[300];

static int setup(void **state)
{
	(void)state;
	const char *t = getenv("TMPDIR");
	snprintf(tmpdir, sizeof(tmpdir), "%s/dmr-test-bundle-XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(bundle_path, sizeof(bundle_path), "%s/b.dmrb", tmpdir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	bundle_rmtree(tmpdir);
	return 0;
}

/* --- writing raw streams --- */

static void write_gzip(const char *path, const void *data, size_t len)
{
	z_stream z = { 0 };
	assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
	size_t cap = deflateBound(&z, (uLong)len) + 64;
	unsigned char *out = malloc(cap);
	assert_non_null(out);
	z.next_in = (unsigned char *)(uintptr_t)data;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	size_t n = cap - z.avail_out;
	deflateEnd(&z);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, out, n), (ssize_t)n);
	close(fd);
	free(out);
}

struct raw {
	unsigned char *p;
	size_t n;
};

static void raw_put(struct raw *r, const void *data, size_t len)
{
	r->p = realloc(r->p, r->n + len + 1);
	assert_non_null(r->p);
	memcpy(r->p + r->n, data, len);
	r->n += len;
}

/* magic, manifest length, manifest, body, end marker, manifest digest:
 * what bundle_write makes, with any part chosen by the test. */
static void write_raw(const char *magic, const char *manifest, const void *body, size_t body_len)
{
	struct raw r = { 0 };
	unsigned char len[8], digest[SHA256_DIGEST_LEN];
	size_t ml = strlen(manifest);
	tm_put_le64(len, ml);
	raw_put(&r, magic, 16);
	raw_put(&r, len, 8);
	raw_put(&r, manifest, ml);
	raw_put(&r, body, body_len);
	raw_put(&r, "DMRESCUE-BNDLEND", 16);
	struct sha256_ctx c;
	sha256_init(&c);
	sha256_update(&c, manifest, ml);
	sha256_final(&c, digest);
	raw_put(&r, digest, sizeof(digest));
	write_gzip(bundle_path, r.p, r.n);
	free(r.p);
}

static const char *hex_of(const void *data, size_t len)
{
	static char hex[SHA256_HEX_LEN + 1];
	sha256_hex(data, len, hex);
	return hex;
}

/* A manifest of one file entry "a.json" holding body, with extra manifest
 * members and entries spliced in (JSON text, may be ""). */
static void write_one(const char *entry_path, const char *body, const char *extra_entries)
{
	char man[8192];
	snprintf(man, sizeof(man),
		 "{ \"schema\": \"dmrescue.bundle/1\", \"metadata_file_size\": 0, \"entries\": [ "
		 "{ \"path\": \"%s\", \"kind\": \"file\", \"size\": %zu, \"sha256\": \"%s\" }%s ] }",
		 entry_path, strlen(body), hex_of(body, strlen(body)), extra_entries);
	write_raw("DMRESCUE-BUNDLE1", man, body, strlen(body));
}

/* Reads bundle_path expecting DMR_ECORRUPT with want in a one-line message. */
static void expect_corrupt(const char *want)
{
	struct bundle b;
	struct dmr_err err = { 0 };
	int r = bundle_read(bundle_path, &b, &err);
	if (r != DMR_ECORRUPT)
		fail_msg("expected DMR_ECORRUPT (%s), got %d: %s", want, r, err.msg);
	assert_contains(err.msg, want);
	assert_null(strchr(err.msg, '\n'));
	assert_int_equal(b.n, 0); /* nothing kept */
	assert_null(b.e);
}

/* --- round trip --- */

static const char cfg[] = "{\"ID\":\"abc\",\"Name\":\"/web\",\"Config\":{\"Image\":\"nginx\",\"Env\":"
			  "[\"PATH=/usr/bin\",\"SECRET=hunter2\",\"NOVALUE\"]}}";

static unsigned char *dup_bytes(const void *p, size_t n)
{
	unsigned char *d = malloc(n ? n : 1);
	assert_non_null(d);
	memcpy(d, p, n);
	return d;
}

static void fill_block(unsigned char *rec, uint64_t blk)
{
	tm_put_le64(rec, blk);
	uint64_t st = blk + 1;
	for (size_t i = 0; i < BUNDLE_BLOCK; i += 8) {
		uint64_t v = unit_rand(&st);
		memcpy(rec + 8 + i, &v, 8);
	}
}

static const uint64_t meta_blocks[] = { 0, 1, 7, 300, 1023 };
#define NR_META (sizeof(meta_blocks) / sizeof(meta_blocks[0]))

static void build(struct bundle *b)
{
	struct dmr_err err = { 0 };
	memset(b, 0, sizeof(*b));
	b->source = strdup("/var/lib/docker");
	b->metadata_path = strdup("/var/lib/docker/devicemapper/devicemapper/metadata");
	b->data_path = strdup("/var/lib/docker/devicemapper/devicemapper/data");
	b->pool_prefix = strdup("docker-8:1-1234");
	b->meta_file_size = 1024 * BUNDLE_BLOCK;
	b->redacted = 1;
	unsigned char *recs = malloc(NR_META * BUNDLE_REC);
	assert_non_null(recs);
	for (size_t i = 0; i < NR_META; i++)
		fill_block(recs + i * BUNDLE_REC, meta_blocks[i]);
	assert_int_equal(bundle_add(b, BUNDLE_META_PATH, BUNDLE_METADATA_BLOCKS, recs, NR_META * BUNDLE_REC, &err), 0);
	size_t rl;
	unsigned char *red = bundle_redact_env(cfg, strlen(cfg), &rl);
	assert_non_null(red);
	assert_int_equal(bundle_add(b, "containers/abc/config.v2.json", BUNDLE_FILE, red, rl, &err), 0);
	const char *js = "{\"Devices\":{}}";
	assert_int_equal(bundle_add(b, "devicemapper/metadata/deviceset-metadata", BUNDLE_FILE,
				    dup_bytes(js, strlen(js)), strlen(js), &err), 0);
	assert_int_equal(bundle_add(b, "devicemapper/metadata/empty", BUNDLE_FILE, NULL, 0, &err), 0);
	assert_int_equal(bundle_add(b, "devicemapper/mnt", BUNDLE_DIR, NULL, 0, &err), 0);
	assert_int_equal(bundle_add(b, "devicemapper/mnt/0123abcd", BUNDLE_DIR, NULL, 0, &err), 0);
	assert_int_equal(bundle_add(b, "image/devicemapper/layerdb/tmp/write-set-1/tar-split.json.gz",
				    BUNDLE_PLACEHOLDER, NULL, 0, &err), 0);
	b->e[b->n - 1].file_size = 100;
}

static void write_bundle(const struct bundle *b)
{
	struct dmr_err err = { 0 };
	int fd = open(bundle_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	uint64_t len = 0;
	assert_int_equal(bundle_write(b, fd, bundle_path, &len, &err), 0);
	close(fd);
	struct stat st;
	assert_int_equal(stat(bundle_path, &st), 0);
	assert_int_equal((uint64_t)st.st_size, len);
}

static void test_round_trip(void **state)
{
	(void)state;
	struct bundle w, r;
	struct dmr_err err = { 0 };
	build(&w);
	write_bundle(&w);
	assert_int_equal(bundle_read(bundle_path, &r, &err), 0);
	assert_int_equal(r.n, w.n);
	for (size_t i = 0; i < w.n; i++) {
		assert_string_equal(r.e[i].path, w.e[i].path);
		assert_int_equal(r.e[i].kind, w.e[i].kind);
		assert_int_equal(r.e[i].len, w.e[i].len);
		assert_int_equal(r.e[i].file_size, w.e[i].file_size);
		if (w.e[i].len)
			assert_memory_equal(r.e[i].data, w.e[i].data, w.e[i].len);
	}
	assert_int_equal(r.meta_file_size, w.meta_file_size);
	assert_int_equal(r.redacted, 1);
	assert_string_equal(r.source, "/var/lib/docker");
	assert_string_equal(r.metadata_path, w.metadata_path);
	assert_string_equal(r.data_path, w.data_path);
	assert_string_equal(r.pool_prefix, "docker-8:1-1234");

	char dir[400], path[600];
	snprintf(dir, sizeof(dir), "%s/x", tmpdir);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(bundle_extract(&r, dir, &err), 0);
	/* files byte for byte */
	for (size_t i = 0; i < w.n; i++) {
		if (w.e[i].kind != BUNDLE_FILE)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, w.e[i].path);
		int fd = open(path, O_RDONLY);
		assert_true(fd >= 0);
		unsigned char buf[4096];
		ssize_t n = read(fd, buf, sizeof(buf));
		close(fd);
		assert_int_equal(n, (ssize_t)w.e[i].len);
		if (n)
			assert_memory_equal(buf, w.e[i].data, (size_t)n);
	}
	struct stat st;
	snprintf(path, sizeof(path), "%s/devicemapper/mnt/0123abcd", dir);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	snprintf(path, sizeof(path), "%s/image/devicemapper/layerdb/tmp/write-set-1/tar-split.json.gz", dir);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_size, 100);
	assert_int_equal(st.st_blocks, 0); /* a placeholder: no content */

	/* the metadata file: its size, the blocks in use, zeros elsewhere */
	snprintf(path, sizeof(path), "%s/" BUNDLE_META_PATH, dir);
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal((uint64_t)st.st_size, w.meta_file_size);
	unsigned char blk[BUNDLE_BLOCK], zero[BUNDLE_BLOCK] = { 0 }, rec[BUNDLE_REC];
	for (uint64_t b = 0, j = 0; b < w.meta_file_size / BUNDLE_BLOCK; b++) {
		assert_int_equal(pread(fd, blk, sizeof(blk), (off_t)(b * BUNDLE_BLOCK)), BUNDLE_BLOCK);
		if (j < NR_META && meta_blocks[j] == b) {
			fill_block(rec, b);
			assert_memory_equal(blk, rec + 8, BUNDLE_BLOCK);
			j++;
		} else {
			assert_memory_equal(blk, zero, BUNDLE_BLOCK);
		}
	}
	/* sparse: only the blocks in use take space */
	assert_true((uint64_t)st.st_blocks * 512 <= (NR_META + 8) * BUNDLE_BLOCK);
	close(fd);
	bundle_free(&r);
	bundle_free(&w);
}

/* Env values are replaced, names and everything else stay; a file that
 * does not parse gives NULL (left out); unredacted, the bundle keeps it. */
static void test_redact(void **state)
{
	(void)state;
	size_t n;
	unsigned char *out = bundle_redact_env(cfg, strlen(cfg), &n);
	assert_non_null(out);
	assert_int_equal(strlen((char *)out), n);
	assert_contains((char *)out, "\"PATH=<redacted>\"");
	assert_contains((char *)out, "\"SECRET=<redacted>\"");
	assert_contains((char *)out, "\"NOVALUE=<redacted>\"");
	assert_contains((char *)out, "\"Image\":\"nginx\"");
	assert_contains((char *)out, "\"Name\":\"/web\"");
	assert_null(strstr((char *)out, "hunter2"));
	assert_null(strstr((char *)out, "/usr/bin"));
	free(out);
	assert_null(bundle_redact_env("{\"Config\":{\"Env\":[\"A=b\"]", 24, &n));
	assert_null(bundle_redact_env("[1,2]", 5, &n));
	/* no Env: the same document */
	out = bundle_redact_env("{\"Config\":{}}", 13, &n);
	assert_non_null(out);
	assert_string_equal((char *)out, "{\"Config\":{}}");
	free(out);

	/* --no-redact: the file goes in as it is and comes back as it was */
	struct bundle w = { 0 }, r;
	struct dmr_err err = { 0 };
	assert_int_equal(bundle_add(&w, "containers/abc/config.v2.json", BUNDLE_FILE,
				    dup_bytes(cfg, strlen(cfg)), strlen(cfg), &err), 0);
	write_bundle(&w);
	assert_int_equal(bundle_read(bundle_path, &r, &err), 0);
	assert_int_equal(r.redacted, 0);
	assert_int_equal(r.e[0].len, strlen(cfg));
	assert_memory_equal(r.e[0].data, cfg, strlen(cfg));
	bundle_free(&r);
	bundle_free(&w);
}

/* --- damaged bundles --- */

/* Writes the bundle of build() to bundle_path; returns its size. */
static off_t write_sample(void)
{
	struct bundle w;
	struct stat st;
	build(&w);
	write_bundle(&w);
	bundle_free(&w);
	assert_int_equal(stat(bundle_path, &st), 0);
	return st.st_size;
}

static void test_truncated(void **state)
{
	(void)state;
	for (off_t len = write_sample() - 1; len > 0; len = len * 2 / 3) {
		assert_int_equal(truncate(bundle_path, len), 0);
		expect_corrupt(len < 10 ? "not a dmrescue bundle" : "truncated");
	}
	assert_int_equal(truncate(bundle_path, 0), 0);
	expect_corrupt("not a dmrescue bundle");
}

static void test_flipped_byte(void **state)
{
	(void)state;
	off_t size = write_sample();
	int fd = open(bundle_path, O_RDWR);
	assert_true(fd >= 0);
	/* every 97th byte past the gzip header, one at a time */
	for (off_t off = 10; off < size; off += 97) {
		unsigned char c;
		assert_int_equal(pread(fd, &c, 1, off), 1);
		c ^= 0x20;
		assert_int_equal(pwrite(fd, &c, 1, off), 1);
		expect_corrupt(bundle_path);
		c ^= 0x20;
		assert_int_equal(pwrite(fd, &c, 1, off), 1);
	}
	close(fd);
	/* inside a valid gzip stream: the entry's checksum */
	char man[1024];
	snprintf(man, sizeof(man),
		 "{ \"schema\": \"dmrescue.bundle/1\", \"metadata_file_size\": 0, \"entries\": [ "
		 "{ \"path\": \"a.json\", \"kind\": \"file\", \"size\": 4, \"sha256\": \"%s\" } ] }",
		 hex_of("{}\n\n", 4));
	write_raw("DMRESCUE-BUNDLE1", man, "{}\n!", 4);
	expect_corrupt("checksum mismatch in a.json");
	/* the manifest's own digest */
	struct raw r = { 0 };
	write_one("a.json", "{}", "");
	snprintf(man, sizeof(man), "{ \"schema\": \"dmrescue.bundle/1\", \"metadata_file_size\": 0, \"entries\": [] }");
	raw_put(&r, "DMRESCUE-BUNDLE1", 16);
	unsigned char len[8] = { (unsigned char)strlen(man) };
	raw_put(&r, len, 8);
	raw_put(&r, man, strlen(man));
	raw_put(&r, "DMRESCUE-BNDLEND", 16);
	unsigned char digest[SHA256_DIGEST_LEN] = { 1 };
	raw_put(&r, digest, sizeof(digest));
	write_gzip(bundle_path, r.p, r.n);
	free(r.p);
	expect_corrupt("manifest checksum");
}

static void test_unsafe_paths(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"../escape", "a/../../escape", "/etc/passwd", "a//b", "a/./b", "a/", ".", "..", "",
		"a\\u0001b", "a\\u001b[31mred", "a\\u0000b",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_one(bad[i], "{}", "");
		expect_corrupt("bad manifest entry 0");
	}
	/* the metadata entry only at its path, nothing else there */
	write_one(BUNDLE_META_PATH, "{}", "");
	expect_corrupt("bad manifest entry 0");
}

/* A symlink in the extraction directory (put there by someone else) is
 * never followed: the extraction stops, nothing lands outside. */
static void test_symlink_escape(void **state)
{
	(void)state;
	char dir[400], outside[400], link[500], path[600];
	snprintf(dir, sizeof(dir), "%s/x", tmpdir);
	snprintf(outside, sizeof(outside), "%s/outside", tmpdir);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(mkdir(outside, 0700), 0);
	snprintf(link, sizeof(link), "%s/containers", dir);
	assert_int_equal(symlink(outside, link), 0);
	struct bundle w;
	struct dmr_err err = { 0 };
	build(&w);
	int r = bundle_extract(&w, dir, &err);
	assert_int_equal(r, DMR_ECORRUPT);
	assert_contains(err.msg, "containers/abc/config.v2.json");
	assert_contains(err.msg, "symlink");
	snprintf(path, sizeof(path), "%s/abc", outside);
	assert_int_equal(access(path, F_OK), -1);
	/* the last component a symlink */
	bundle_rmtree(dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(mkdir(link, 0700), 0);
	snprintf(link, sizeof(link), "%s/containers/abc", dir);
	assert_int_equal(mkdir(link, 0700), 0);
	snprintf(link, sizeof(link), "%s/containers/abc/config.v2.json", dir);
	snprintf(path, sizeof(path), "%s/target", outside);
	assert_int_equal(symlink(path, link), 0);
	err = (struct dmr_err){ 0 };
	assert_int_equal(bundle_extract(&w, dir, &err), DMR_ECORRUPT);
	assert_int_equal(access(path, F_OK), -1);
	bundle_free(&w);
}

static void test_sizes(void **state)
{
	(void)state;
	char man[1024];
	static const char *const sizes[] = { "5000", "9223372036854775807", "18446744073709551615",
					     "-1", "1e30", "\"3\"", "99999999999999999999999" };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		snprintf(man, sizeof(man),
			 "{ \"schema\": \"dmrescue.bundle/1\", \"metadata_file_size\": 0, \"entries\": [ "
			 "{ \"path\": \"a\", \"kind\": \"file\", \"size\": %s, \"sha256\": \"%s\" } ] }",
			 sizes[i], hex_of("{}", 2));
		write_raw("DMRESCUE-BUNDLE1", man, "{}", 2);
		expect_corrupt("bad manifest entry 0");
	}
	/* metadata file sizes: negative, unaligned, past what dm-thin takes, overflowing */
	static const char *const msizes[] = { "-4096", "4097", "34359738368", "18446744073709551615" };
	for (size_t i = 0; i < sizeof(msizes) / sizeof(msizes[0]); i++) {
		snprintf(man, sizeof(man),
			 "{ \"schema\": \"dmrescue.bundle/1\", \"metadata_file_size\": %s, \"entries\": [] }", msizes[i]);
		write_raw("DMRESCUE-BUNDLE1", man, "", 0);
		expect_corrupt("metadata_file_size");
	}
	/* a placeholder as big as no data file */
	snprintf(man, sizeof(man),
		 "{ \"schema\": \"dmrescue.bundle/1\", \"metadata_file_size\": 0, \"entries\": [ "
		 "{ \"path\": \"p\", \"kind\": \"placeholder\", \"size\": 0, \"file_size\": 9223372036854775807,"
		 " \"sha256\": \"%s\" } ] }", hex_of("", 0));
	write_raw("DMRESCUE-BUNDLE1", man, "", 0);
	expect_corrupt("file_size");
	/* the manifest length past the stream, and past the cap */
	struct raw r = { 0 };
	raw_put(&r, "DMRESCUE-BUNDLE1", 16);
	raw_put(&r, "\xff\xff\xff\xff\xff\xff\xff\xff", 8);
	raw_put(&r, "{}", 2);
	raw_put(&r, "DMRESCUE-BNDLEND0123456789abcdef0123456789abcdef", 48);
	write_gzip(bundle_path, r.p, r.n);
	free(r.p);
	expect_corrupt("bad manifest length");
	/* bytes past the last entry */
	snprintf(man, sizeof(man), "{ \"schema\": \"dmrescue.bundle/1\", \"metadata_file_size\": 0, \"entries\": [] }");
	write_raw("DMRESCUE-BUNDLE1", man, "xyz", 3);
	expect_corrupt("3 bytes beyond");
}

static void test_duplicates(void **state)
{
	(void)state;
	char extra[1024];
	snprintf(extra, sizeof(extra),
		 ", { \"path\": \"a/b\", \"kind\": \"dir\", \"size\": 0, \"sha256\": \"%s\" }"
		 ", { \"path\": \"a/b\", \"kind\": \"dir\", \"size\": 0, \"sha256\": \"%s\" }",
		 hex_of("", 0), hex_of("", 0));
	write_one("a/c", "{}", extra);
	expect_corrupt("a/b listed twice");
	snprintf(extra, sizeof(extra), ", { \"path\": \"a/c\", \"kind\": \"placeholder\", \"size\": 0, "
		 "\"file_size\": 3, \"sha256\": \"%s\" }", hex_of("", 0));
	write_one("a/c", "{}", extra);
	expect_corrupt("a/c listed twice");
	/* a file and something below it */
	snprintf(extra, sizeof(extra),
		 ", { \"path\": \"a.d\", \"kind\": \"dir\", \"size\": 0, \"sha256\": \"%s\" }"
		 ", { \"path\": \"a/x\", \"kind\": \"dir\", \"size\": 0, \"sha256\": \"%s\" }",
		 hex_of("", 0), hex_of("", 0));
	write_one("a", "{}", extra);
	expect_corrupt("a/x is below the file a");
	/* a directory above a file is fine */
	snprintf(extra, sizeof(extra), ", { \"path\": \"a\", \"kind\": \"dir\", \"size\": 0, \"sha256\": \"%s\" }",
		 hex_of("", 0));
	write_one("a/b", "{}", extra);
	struct bundle b;
	struct dmr_err err = { 0 };
	assert_int_equal(bundle_read(bundle_path, &b, &err), 0);
	bundle_free(&b);
}

static void write_meta(uint64_t file_size, const uint64_t *blocks, size_t n)
{
	unsigned char *recs = calloc(n ? n : 1, BUNDLE_REC);
	assert_non_null(recs);
	for (size_t i = 0; i < n; i++)
		fill_block(recs + i * BUNDLE_REC, blocks[i]);
	char man[1024];
	snprintf(man, sizeof(man),
		 "{ \"schema\": \"dmrescue.bundle/1\", \"metadata_file_size\": %llu, \"entries\": [ "
		 "{ \"path\": \"" BUNDLE_META_PATH "\", \"kind\": \"metadata-blocks\", \"size\": %zu, "
		 "\"sha256\": \"%s\" } ] }",
		 (unsigned long long)file_size, n * BUNDLE_REC, hex_of(recs, n * BUNDLE_REC));
	write_raw("DMRESCUE-BUNDLE1", man, recs, n * BUNDLE_REC);
	free(recs);
}

static void test_metadata_blocks(void **state)
{
	(void)state;
	static const uint64_t beyond[] = { 0, 16 }, order[] = { 0, 5, 3 }, twice[] = { 0, 2, 2 };
	write_meta(16 * BUNDLE_BLOCK, beyond, 2);
	expect_corrupt("metadata block 16 beyond");
	write_meta(16 * BUNDLE_BLOCK, order, 3);
	expect_corrupt("metadata block 3 out of order");
	write_meta(16 * BUNDLE_BLOCK, twice, 3);
	expect_corrupt("metadata block 2 out of order");
	/* a record cut short */
	char man[1024];
	snprintf(man, sizeof(man),
		 "{ \"schema\": \"dmrescue.bundle/1\", \"metadata_file_size\": 4096, \"entries\": [ "
		 "{ \"path\": \"" BUNDLE_META_PATH "\", \"kind\": \"metadata-blocks\", \"size\": 8, "
		 "\"sha256\": \"%s\" } ] }", hex_of("\0\0\0\0\0\0\0\0", 8));
	write_raw("DMRESCUE-BUNDLE1", man, "\0\0\0\0\0\0\0\0", 8);
	expect_corrupt("bad manifest entry 0");
	/* two metadata entries */
	char extra[512];
	snprintf(extra, sizeof(extra), ", { \"path\": \"" BUNDLE_META_PATH "\", \"kind\": \"metadata-blocks\", "
		 "\"size\": 0, \"sha256\": \"%s\" }, { \"path\": \"" BUNDLE_META_PATH "\", "
		 "\"kind\": \"metadata-blocks\", \"size\": 0, \"sha256\": \"%s\" }", hex_of("", 0), hex_of("", 0));
	write_one("x", "{}", extra);
	expect_corrupt("listed twice");
}

static void test_magic_version_schema(void **state)
{
	(void)state;
	write_raw("DMRESCUE-BUNDLEX", "{}", "", 0);
	expect_corrupt("not a dmrescue bundle");
	write_raw("DMRESCUE-BUNDLE2", "{}", "", 0);
	expect_corrupt("format version '2'");
	write_raw("PK\x03\x04xxxxxxxxxxxx", "{}", "", 0);
	expect_corrupt("not a dmrescue bundle");
	write_raw("DMRESCUE-BUNDLE1", "{ \"schema\": \"dmrescue.bundle/2\", \"entries\": [] }", "", 0);
	expect_corrupt("schema \"dmrescue.bundle/2\"");
	write_raw("DMRESCUE-BUNDLE1", "not json", "", 0);
	expect_corrupt("bad manifest");
	write_raw("DMRESCUE-BUNDLE1", "{ \"schema\": \"dmrescue.bundle/1\", \"entries\": [] } trailing", "", 0);
	expect_corrupt("bad manifest");
	write_raw("DMRESCUE-BUNDLE1", "{ \"schema\": \"dmrescue.bundle/1\", \"metadata_file_size\": 0, "
		  "\"entries\": [ { \"path\": \"a\", \"kind\": \"tarball\", \"size\": 0, \"sha256\": \"\" } ] }", "", 0);
	expect_corrupt("unknown kind");
	write_raw("DMRESCUE-BUNDLE1", "{ \"schema\": \"dmrescue.bundle/1\", \"metadata_file_size\": 0, "
		  "\"source\": \"/var/lib/\\u001b]0;docker\", \"entries\": [] }", "", 0);
	expect_corrupt("source");
	/* not gzip at all, and gzip with something after it */
	int fd = open(bundle_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "plain text\n", 11), 11);
	close(fd);
	expect_corrupt("not a dmrescue bundle");
	write_one("a", "{}", "");
	fd = open(bundle_path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	expect_corrupt("data after the gzip stream");
}

/* Not a regular file, or not there: DMR_EIO (exit status 3). */
static void test_unreadable(void **state)
{
	(void)state;
	struct bundle b;
	struct dmr_err err = { 0 };
	assert_int_equal(bundle_read(tmpdir, &b, &err), DMR_EIO);
	char path[400];
	snprintf(path, sizeof(path), "%s/missing", tmpdir);
	assert_int_equal(bundle_read(path, &b, &err), DMR_EIO);
	assert_contains(err.msg, "missing");
}

/* Deflate's best ratio stays under the reader's bound: 8 MiB of zeros in a
 * file of a few KiB still reads. */
static void test_compressible(void **state)
{
	(void)state;
	size_t n = (size_t)8 << 20;
	unsigned char *zeros = calloc(1, n);
	assert_non_null(zeros);
	struct bundle w = { 0 }, r;
	struct dmr_err err = { 0 };
	assert_int_equal(bundle_add(&w, "zeros", BUNDLE_FILE, zeros, n, &err), 0);
	write_bundle(&w);
	struct stat st;
	assert_int_equal(stat(bundle_path, &st), 0);
	assert_true(st.st_size < 64 << 10);
	assert_int_equal(bundle_read(bundle_path, &r, &err), 0);
	assert_int_equal(r.e[0].len, n);
	bundle_free(&r);
	bundle_free(&w);
}

int main(void)
{
	if (!unit_tmpdir_usable())
		return UNIT_SKIP;
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_round_trip),  T(test_redact),	       T(test_truncated),
		T(test_flipped_byte), T(test_unsafe_paths),    T(test_symlink_escape),
		T(test_sizes),	     T(test_duplicates),       T(test_metadata_blocks),
		T(test_magic_version_schema), T(test_unreadable), T(test_compressible),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
