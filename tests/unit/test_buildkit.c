/* buildkit/snapshots.db: the bbolt walk on files laid out by
 * tests/fixtures/buildkit/boltwriter.c, intact and damaged. */
#include "unit.h"

#include "docker/bkrefs.h"
#include "docker/bolt.h"
#include "docker/parsers.h"
#include "util/err.h"

#include "../fixtures/buildkit/boltwriter.h"

/* ---- expected snapshots ---- */

struct want {
	char key[32];
	char parent[32];   /* "" for none */
	char chainid[80];  /* "" for none */
	int committed;
};

static void snap_key(unsigned i, char out[26])
{
	static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	uint64_t rs = 0x5eed + i;
	for (int k = 0; k < 21; k++)
		out[k] = digits[unit_rand(&rs) % 36];
	/* the last 4 digits make keys unique */
	unsigned v = i;
	for (int k = 24; k >= 21; k--) {
		out[k] = digits[v % 36];
		v /= 36;
	}
	out[25] = '\0';
}

static void chain_id(unsigned i, char out[80])
{
	uint64_t rs = 0xc4a1 + i;
	int n = snprintf(out, 80, "sha256:");
	for (int k = 0; k < 4; k++)
		n += snprintf(out + n, (size_t)(80 - n), "%016llx", (unsigned long long)unit_rand(&rs));
}

/* Snapshot i of a test db: a parent chain, every other one committed,
 * every fifth one an image layer. */
static void make_want(unsigned i, struct want *w)
{
	memset(w, 0, sizeof(*w));
	snap_key(i, w->key);
	if (i > 0)
		snap_key(i - 1, w->parent);
	w->committed = i % 2;
	if (i % 5 == 0)
		chain_id(i, w->chainid);
}

static void add_want(struct dk_bolt_bucket *root, const struct want *w)
{
	bw_snapshot(root, w->key, w->parent, w->committed ? w->key : NULL, w->chainid[0] ? w->chainid : NULL,
		    "4096");
}

static int cmp_want(const void *a, const void *b)
{
	return strcmp(((const struct want *)a)->key, ((const struct want *)b)->key);
}

static void expect_snapshots(const struct dk_buildkit_snapshot *s, size_t nr, struct want *w, size_t nw)
{
	qsort(w, nw, sizeof(*w), cmp_want);
	assert_int_equal(nr, nw);
	for (size_t i = 0; i < nw; i++) {
		assert_string_equal(s[i].key, w[i].key);
		if (w[i].parent[0])
			assert_string_equal(s[i].parent ? s[i].parent : "(null)", w[i].parent);
		else
			assert_null(s[i].parent);
		if (w[i].chainid[0])
			assert_string_equal(s[i].chain_id ? s[i].chain_id : "(null)", w[i].chainid);
		else
			assert_null(s[i].chain_id);
		assert_int_equal(s[i].committed, w[i].committed);
		/* "committed" names the key the snapshot was committed from. */
		if (w[i].committed)
			assert_string_equal(s[i].committed_to ? s[i].committed_to : "(null)", w[i].key);
		else
			assert_null(s[i].committed_to);
	}
}

/* A db with snapshots 0..n-1. */
static unsigned char *build_n(unsigned n, const struct bw_opts *o, size_t *len, struct bw_layout *lay,
			      struct want **wants)
{
	struct dk_bolt_bucket *root = bw_bucket_new();
	struct want *w = calloc(n ? n : 1, sizeof(*w));
	assert_non_null(w);
	for (unsigned i = 0; i < n; i++) {
		make_want(i, &w[i]);
		add_want(root, &w[i]);
	}
	unsigned char *db = bw_build(root, NULL, o, len, lay);
	bw_bucket_free(root);
	if (wants)
		*wants = w;
	else
		free(w);
	return db;
}

static int parse(const unsigned char *db, size_t len, struct dk_buildkit_snapshot **s, size_t *nr,
		 struct dmr_err *err)
{
	memset(err, 0, sizeof(*err));
	int r = dk_buildkit_parse(db, len, s, nr, err);
	/* whatever happened: sorted, unique, one-line message */
	for (size_t i = 1; i < *nr; i++)
		assert_true(strcmp((*s)[i - 1].key, (*s)[i].key) < 0);
	assert_null(strchr(err->msg, '\n'));
	if (r)
		assert_true(err->msg[0] != '\0');
	return r;
}

static void check_n(unsigned n, const struct bw_opts *o, struct bw_layout *lay_out)
{
	size_t len, nr;
	struct want *w;
	struct bw_layout lay;
	unsigned char *db = build_n(n, o, &len, &lay, &w);
	struct dk_buildkit_snapshot *s;
	struct dmr_err err;
	int r = parse(db, len, &s, &nr, &err);
	if (r)
		fail_msg("parse: %s", err.msg);
	expect_snapshots(s, nr, w, n);
	dk_buildkit_free(s, nr);
	free(w);
	free(db);
	if (lay_out)
		*lay_out = lay;
}

/* Parses a damaged file: expects DMR_ECORRUPT, a message containing what,
 * and returns how many snapshots came back. */
static size_t expect_damage(const unsigned char *db, size_t len, const char *what)
{
	struct dk_buildkit_snapshot *s;
	size_t nr;
	struct dmr_err err;
	int r = parse(db, len, &s, &nr, &err);
	if (r != DMR_ECORRUPT)
		fail_msg("expected DMR_ECORRUPT (\"%s\"), got %d: %s", what, r, err.msg);
	assert_contains(err.msg, what);
	dk_buildkit_free(s, nr);
	return nr;
}

/* Element i of the page at p. */
static unsigned char *elem(unsigned char *p, unsigned i)
{
	return p + BW_PAGE_HDR + (size_t)i * BW_ELEM;
}

/* ---- valid files ---- */

static void test_few(void **state)
{
	(void)state;
	struct dk_bolt_bucket *root = bw_bucket_new();
	/* Prepare(a, ""), Prepare(b, a), Commit(c, b), EnsureLayer(c) */
	bw_snapshot(root, "bbbbbbbbbbbbbbbbbbbbbbbbb", "aaaaaaaaaaaaaaaaaaaaaaaaa", NULL, NULL, NULL);
	bw_snapshot(root, "aaaaaaaaaaaaaaaaaaaaaaaaa", "", NULL, NULL, "123");
	bw_snapshot(root, "ccccccccccccccccccccccccc", NULL, "bbbbbbbbbbbbbbbbbbbbbbbbb",
		    "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", NULL);
	size_t len, nr;
	struct bw_layout lay;
	unsigned char *db = bw_build(root, NULL, NULL, &len, &lay);
	bw_bucket_free(root);
	assert_int_equal(lay.nr_pages, 4); /* meta, meta, freelist, root leaf with three inline buckets */
	assert_int_equal(bw_page_flags(bw_page(db, 4096, lay.root)), 0x02);

	struct dk_buildkit_snapshot *s;
	struct dmr_err err;
	assert_int_equal(parse(db, len, &s, &nr, &err), 0);
	assert_int_equal(nr, 3);
	assert_string_equal(s[0].key, "aaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_null(s[0].parent); /* "" means none */
	assert_int_equal(s[0].committed, 0);
	assert_null(s[0].chain_id);
	assert_string_equal(s[1].key, "bbbbbbbbbbbbbbbbbbbbbbbbb");
	assert_string_equal(s[1].parent, "aaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_int_equal(s[1].committed, 0);
	assert_string_equal(s[2].key, "ccccccccccccccccccccccccc");
	assert_null(s[2].parent);
	assert_int_equal(s[2].committed, 1);
	assert_string_equal(s[2].chain_id, "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	dk_buildkit_free(s, nr);

	/* A file with zero padding after the high water mark reads the same. */
	unsigned char *big = calloc(1, len + 8 * 4096);
	memcpy(big, db, len);
	assert_int_equal(parse(big, len + 8 * 4096, &s, &nr, &err), 0);
	assert_int_equal(nr, 3);
	dk_buildkit_free(s, nr);
	free(big);
	free(db);
}

static void test_empty_db(void **state)
{
	(void)state;
	check_n(0, NULL, NULL);
}

static void test_many_branch(void **state)
{
	(void)state;
	struct bw_layout lay;
	check_n(500, NULL, &lay);
	assert_true(lay.nr_pages > 10);
	/* The same through a three-level tree of small pages. */
	struct bw_opts o = { .page_size = 1024 };
	size_t len;
	unsigned char *db = build_n(500, &o, &len, &lay, NULL);
	unsigned char *rp = bw_page(db, 1024, lay.root);
	assert_int_equal(bw_page_flags(rp), 0x01);
	uint64_t child = bw_get64(elem(rp, 0) + 8);
	assert_int_equal(bw_page_flags(bw_page(db, 1024, child)), 0x01);
	free(db);
	check_n(500, &o, NULL);
	/* and page sizes at both ends */
	o.page_size = 512;
	check_n(300, &o, NULL);
	o.page_size = 65536;
	check_n(50, &o, NULL);
}

static void test_inline_and_page_buckets(void **state)
{
	(void)state;
	struct dk_bolt_bucket *root = bw_bucket_new();
	/* inline */
	bw_snapshot(root, "inline00000000000000000000", "p1", NULL, NULL, NULL);
	/* forced onto its own page */
	struct dk_bolt_bucket *pg = bw_sub(root, "paged000000000000000000000");
	pg->never_inline = 1;
	bw_put_str(pg, "parent", "p2");
	bw_put_str(pg, "committed", "x");
	/* too big to be inline (> page size / 4): a page of its own */
	struct dk_bolt_bucket *big = bw_sub(root, "big00000000000000000000000");
	char pad[1500];
	memset(pad, 'z', sizeof(pad));
	bw_put(big, "aaa-unknown", pad, sizeof(pad));
	bw_put_str(big, "chainid", "sha256:big");
	/* a value bigger than a page: the leaf has overflow pages and the
	 * keys after it live there */
	struct dk_bolt_bucket *ovf = bw_sub(root, "overflow000000000000000000");
	static char blob[10000];
	memset(blob, 'q', sizeof(blob));
	bw_put(ovf, "blob", blob, sizeof(blob));
	bw_put_str(ovf, "parent", "p4");
	bw_put_str(ovf, "iscommitted", "1");
	/* things Docker does not write: ignored */
	bw_put_str(root, "plainkey", "plainvalue");
	struct dk_bolt_bucket *nested = bw_sub(root, "nested000000000000000000000");
	bw_put_str(nested, "parent", "p5");
	struct dk_bolt_bucket *deeper = bw_sub(nested, "sub");
	bw_put_str(deeper, "parent", "not-this-one");

	size_t len, nr;
	struct bw_layout lay;
	unsigned char *db = bw_build(root, NULL, NULL, &len, &lay);
	bw_bucket_free(root);

	/* the overflow bucket's root leaf spans three pages */
	int seen_overflow = 0;
	for (uint64_t p = 3; p < lay.nr_pages; p++) {
		unsigned char *pp = bw_page(db, 4096, p);
		if (bw_get64(pp) == p && bw_get32(pp + 12) == 2)
			seen_overflow = 1;
	}
	assert_true(seen_overflow);

	struct dk_buildkit_snapshot *s;
	struct dmr_err err;
	int r = parse(db, len, &s, &nr, &err);
	if (r)
		fail_msg("%s", err.msg);
	assert_int_equal(nr, 5);
	assert_string_equal(s[0].key, "big00000000000000000000000");
	assert_string_equal(s[0].chain_id, "sha256:big");
	assert_null(s[0].parent);
	assert_string_equal(s[1].key, "inline00000000000000000000");
	assert_string_equal(s[1].parent, "p1");
	assert_string_equal(s[2].key, "nested000000000000000000000");
	assert_string_equal(s[2].parent, "p5");
	assert_string_equal(s[3].key, "overflow000000000000000000");
	assert_string_equal(s[3].parent, "p4");
	assert_int_equal(s[3].committed, 1);
	assert_string_equal(s[4].key, "paged000000000000000000000");
	assert_string_equal(s[4].parent, "p2");
	assert_int_equal(s[4].committed, 1);
	dk_buildkit_free(s, nr);
	free(db);
}

static void test_root_leaf_overflow(void **state)
{
	(void)state;
	/* all 200 buckets in one root leaf of many pages */
	struct bw_opts o = { .leaf_fill = 1u << 20 };
	struct bw_layout lay;
	size_t len;
	unsigned char *db = build_n(200, &o, &len, &lay, NULL);
	unsigned char *rp = bw_page(db, 4096, lay.root);
	assert_int_equal(bw_page_flags(rp), 0x02);
	assert_true(bw_get32(rp + 12) > 3);
	free(db);
	check_n(200, &o, NULL);
}

/* The newer valid meta wins, whichever page it is on; a bad newer one
 * falls back to the older tree. */
static void test_meta_choice(void **state)
{
	(void)state;
	for (int newer = 0; newer < 2; newer++) {
		struct dk_bolt_bucket *oldb = bw_bucket_new(), *newb = bw_bucket_new();
		struct want w[3];
		for (unsigned i = 0; i < 3; i++) {
			make_want(i, &w[i]);
			if (i < 2)
				add_want(oldb, &w[i]);
			add_want(newb, &w[i]);
		}
		struct bw_opts o = { .newer_meta = newer };
		size_t len, nr;
		struct bw_layout lay;
		unsigned char *db = bw_build(newb, oldb, &o, &len, &lay);
		bw_bucket_free(oldb);
		bw_bucket_free(newb);

		struct dk_buildkit_snapshot *s;
		struct dmr_err err;
		assert_int_equal(parse(db, len, &s, &nr, &err), 0);
		expect_snapshots(s, nr, w, 3);
		dk_buildkit_free(s, nr);

		/* break the newer meta's checksum */
		unsigned char *m = bw_page(db, 4096, (uint64_t)newer) + BW_PAGE_HDR;
		m[48] ^= 0x40; /* txid */
		char what[64];
		snprintf(what, sizeof(what), "meta page %d: bad checksum", newer);
		assert_int_equal(expect_damage(db, len, what), 2);
		parse(db, len, &s, &nr, &err);
		struct want wold[2];
		make_want(0, &wold[0]);
		make_want(1, &wold[1]);
		expect_snapshots(s, nr, wold, 2);
		dk_buildkit_free(s, nr);
		free(db);
	}
}

/* Files written by the real bbolt (tests/fixtures/buildkit/boltcheck.go
 * write few|churn, the second with deleted buckets and a non-empty
 * freelist), and bbolt's listing of them. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s", path);
	char *buf = malloc(1 << 20);
	assert_non_null(buf);
	*len = fread(buf, 1, (1 << 20) - 1, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

static void test_real_bbolt_files(void **state)
{
	(void)state;
	const char *top = getenv("top_srcdir");
	if (!top)
		skip();
	static const char *const names[] = { "few", "churn" };
	for (size_t i = 0; i < 2; i++) {
		char path[4096];
		size_t len, tlen, nr;
		snprintf(path, sizeof(path), "%s/tests/fixtures/buildkit/bbolt-%s.db", top, names[i]);
		char *db = slurp(path, &len);
		snprintf(path, sizeof(path), "%s/tests/fixtures/buildkit/bbolt-%s.txt", top, names[i]);
		char *want = slurp(path, &tlen);
		struct dk_buildkit_snapshot *s;
		struct dmr_err err;
		int r = parse((const unsigned char *)db, len, &s, &nr, &err);
		if (r)
			fail_msg("%s: %s", names[i], err.msg);
		size_t cap = 1 << 20, n = 0;
		char *got = malloc(cap);
		assert_non_null(got);
		for (size_t k = 0; k < nr; k++)
			n += (size_t)snprintf(got + n, cap - n, "%s parent=%s chainid=%s committed=%d\n", s[k].key,
					      s[k].parent ? s[k].parent : "-", s[k].chain_id ? s[k].chain_id : "-",
					      s[k].committed);
		assert_string_equal(got, want);
		dk_buildkit_free(s, nr);
		free(got);
		free(want);
		free(db);
	}
}

/* ---- damage ---- */

static void test_damaged_meta(void **state)
{
	(void)state;
	size_t len;
	struct bw_layout lay;
	unsigned char *db = build_n(40, NULL, &len, &lay, NULL);
	unsigned char *copy = malloc(len);

	assert_int_equal(expect_damage(db, 0, "empty file"), 0);
	assert_int_equal(expect_damage(db, 50, "no valid bbolt meta page"), 0);

	/* bad magic in both */
	memcpy(copy, db, len);
	copy[16] ^= 1;
	copy[4096 + 16] ^= 1;
	assert_int_equal(expect_damage(copy, len, "page 0: bad magic"), 0);

	/* bad checksums in both */
	memcpy(copy, db, len);
	copy[16 + 56] ^= 1;
	copy[4096 + 16 + 56] ^= 1;
	assert_int_equal(expect_damage(copy, len, "page 1: bad checksum"), 0);

	/* version 1 */
	memcpy(copy, db, len);
	bw_le32(copy + 16 + 4, 1);
	bw_meta_reseal(copy, 4096, 0);
	bw_le32(copy + 4096 + 16 + 4, 1);
	bw_meta_reseal(copy, 4096, 1);
	assert_int_equal(expect_damage(copy, len, "version 1, expected 2"), 0);

	/* page size not a power of two */
	memcpy(copy, db, len);
	bw_le32(copy + 16 + 8, 4000);
	bw_meta_reseal(copy, 4096, 0);
	assert_int_equal(expect_damage(copy, len, "meta page 0: page size 4000"), 40);

	/* meta 0 zeroed: meta 1 is found at 4096 and the page size comes from it */
	memcpy(copy, db, len);
	memset(copy, 0, 4096);
	assert_int_equal(expect_damage(copy, len, "meta page 0: bad magic 0x00000000; using meta page 1"), 40);

	/* meta 1 zeroed */
	memcpy(copy, db, len);
	memset(copy + 4096, 0, 4096);
	assert_int_equal(expect_damage(copy, len, "meta page 1: bad magic"), 40);

	/* a big-endian file */
	memcpy(copy, db, len);
	for (int i = 0; i < 2; i++) {
		unsigned char *m = copy + 4096 * i + 16;
		unsigned char t = m[0];
		m[0] = m[3];
		m[3] = t;
		t = m[1];
		m[1] = m[2];
		m[2] = t;
	}
	assert_int_equal(expect_damage(copy, len, "big-endian"), 0);

	/* the root bucket's page is a meta page, or past the end */
	memcpy(copy, db, len);
	for (int i = 0; i < 2; i++) {
		bw_le64(copy + 4096 * i + 16 + 16, 1);
		bw_meta_reseal(copy, 4096, i);
	}
	assert_int_equal(expect_damage(copy, len, "root bucket points at meta page 1"), 0);
	for (int i = 0; i < 2; i++) {
		bw_le64(copy + 4096 * i + 16 + 16, 1000);
		bw_meta_reseal(copy, 4096, i);
	}
	assert_int_equal(expect_damage(copy, len, "points at page 1000, beyond"), 0);
	free(copy);
	free(db);
}

static void test_truncated(void **state)
{
	(void)state;
	size_t len;
	struct bw_layout lay;
	unsigned char *db = build_n(500, NULL, &len, &lay, NULL);
	/* Half the file: the pages that remain are still read. */
	size_t half = (len / 4096 / 2) * 4096;
	size_t nr = expect_damage(db, half, "truncated");
	assert_true(nr < 500);
	/* The root branch is the last page written; cut it and nothing is left. */
	assert_int_equal(expect_damage(db, len - 4096, "truncated"), 0);
	/* Cut in the middle of a page: that page is gone too. */
	nr = expect_damage(db, half + 100, "truncated");
	assert_true(nr < 500);
	/* Only meta page 0 (page size from it, meta 1 beyond the end). */
	assert_int_equal(expect_damage(db, 4096, "meta page 1: beyond the end of the file"), 0);
	free(db);
}

static void test_bad_page_refs(void **state)
{
	(void)state;
	size_t len;
	struct bw_layout lay;
	struct bw_opts o = { .page_size = 1024 };
	unsigned char *db = build_n(500, &o, &len, &lay, NULL);
	unsigned char *copy = malloc(len);
	uint32_t ps = 1024;
	unsigned char *rp;

	/* a branch element beyond the file */
	memcpy(copy, db, len);
	rp = bw_page(copy, ps, lay.root);
	bw_le64(elem(rp, 1) + 8, 99999);
	size_t nr = expect_damage(copy, len, "branch element 1 points at page 99999, beyond the");
	assert_true(nr > 0 && nr < 500);

	/* a branch pointing at itself */
	memcpy(copy, db, len);
	rp = bw_page(copy, ps, lay.root);
	bw_le64(elem(rp, 0) + 8, lay.root);
	char what[128];
	snprintf(what, sizeof(what), "points at page %llu, which was reached already", (unsigned long long)lay.root);
	nr = expect_damage(copy, len, what);
	assert_true(nr > 0 && nr < 500);

	/* a second-level branch pointing back at the root (a cycle) */
	memcpy(copy, db, len);
	rp = bw_page(copy, ps, lay.root);
	uint64_t mid = bw_get64(elem(rp, 0) + 8);
	unsigned char *mp = bw_page(copy, ps, mid);
	assert_int_equal(bw_page_flags(mp), 0x01);
	bw_le64(elem(mp, 1) + 8, lay.root);
	nr = expect_damage(copy, len, what);
	assert_true(nr > 0 && nr < 500);

	/* two branch elements sharing one child: the second is refused */
	memcpy(copy, db, len);
	rp = bw_page(copy, ps, lay.root);
	bw_le64(elem(rp, 1) + 8, bw_get64(elem(rp, 0) + 8));
	nr = expect_damage(copy, len, "which was reached already");
	assert_true(nr > 0 && nr < 500);

	/* a page whose header names another page */
	memcpy(copy, db, len);
	mp = bw_page(copy, ps, mid);
	bw_le64(mp, mid + 1);
	snprintf(what, sizeof(what), "page %llu (from page %llu: branch element 0): header says page %llu",
		 (unsigned long long)mid, (unsigned long long)lay.root, (unsigned long long)mid + 1);
	nr = expect_damage(copy, len, what);
	assert_true(nr > 0 && nr < 500);

	/* overflow running past the end */
	memcpy(copy, db, len);
	mp = bw_page(copy, ps, mid);
	bw_le32(mp + 12, 100000);
	nr = expect_damage(copy, len, "overflow pages run past");
	assert_true(nr > 0 && nr < 500);
	free(copy);
	free(db);
}

/* The first leaf page of the tree. */
static uint64_t first_leaf(unsigned char *db, uint32_t ps, uint64_t root)
{
	uint64_t p = root;
	for (int d = 0; d < 10 && bw_page_flags(bw_page(db, ps, p)) == 0x01; d++)
		p = bw_get64(elem(bw_page(db, ps, p), 0) + 8);
	assert_int_equal(bw_page_flags(bw_page(db, ps, p)), 0x02);
	return p;
}

static void test_bad_pages(void **state)
{
	(void)state;
	size_t len;
	struct bw_layout lay;
	unsigned char *db = build_n(500, NULL, &len, &lay, NULL);
	unsigned char *copy = malloc(len);
	uint32_t ps = 4096;
	uint64_t leaf = first_leaf(db, ps, lay.root);
	unsigned nleaf = bw_page_count(bw_page(db, ps, leaf));
	char what[128];

	/* count huge */
	memcpy(copy, db, len);
	bw_le16(bw_page(copy, ps, leaf) + 10, 0xffff);
	snprintf(what, sizeof(what), "page %llu: 65535 elements do not fit in its 4096 bytes", (unsigned long long)leaf);
	assert_int_equal(expect_damage(copy, len, what), 500 - nleaf);

	/* an element past the page end */
	memcpy(copy, db, len);
	bw_le32(elem(bw_page(copy, ps, leaf), 2) + 12, 0x7fffffff);
	snprintf(what, sizeof(what), "page %llu: element 2 (bytes", (unsigned long long)leaf);
	assert_int_equal(expect_damage(copy, len, what), 499);
	memcpy(copy, db, len);
	bw_le32(elem(bw_page(copy, ps, leaf), 0) + 4, 0xfffffff0u);
	assert_int_equal(expect_damage(copy, len, "lies outside the page data"), 499);
	/* pointing back into the element array */
	memcpy(copy, db, len);
	bw_le32(elem(bw_page(copy, ps, leaf), 1) + 4, 0);
	assert_int_equal(expect_damage(copy, len, "lies outside the page data"), 499);
	/* an empty key */
	memcpy(copy, db, len);
	bw_le32(elem(bw_page(copy, ps, leaf), 1) + 8, 0);
	assert_int_equal(expect_damage(copy, len, "element 1 has an empty key"), 499);

	/* wrong page flags: a freelist, a meta, zero */
	static const uint16_t bad_flags[] = { 0x10, 0x04, 0x00, 0x03 };
	for (size_t i = 0; i < 4; i++) {
		memcpy(copy, db, len);
		bw_le16(bw_page(copy, ps, leaf) + 8, bad_flags[i]);
		snprintf(what, sizeof(what), "page %llu: page flags 0x%02x, expected a branch",
			 (unsigned long long)leaf, bad_flags[i]);
		assert_int_equal(expect_damage(copy, len, what), 500 - nleaf);
	}
	/* a branch without elements */
	memcpy(copy, db, len);
	bw_le16(bw_page(copy, ps, lay.root) + 10, 0);
	assert_int_equal(expect_damage(copy, len, "branch page without elements"), 0);

	/* a zeroed page */
	memcpy(copy, db, len);
	memset(bw_page(copy, ps, leaf), 0, ps);
	assert_int_equal(expect_damage(copy, len, "header says page 0"), 500 - nleaf);

	/* unknown leaf element flags at the top level */
	memcpy(copy, db, len);
	bw_le32(elem(bw_page(copy, ps, leaf), 3), 0x80000001u);
	assert_int_equal(expect_damage(copy, len, "element flags 0x80000001"), 499);
	free(copy);
	free(db);
}

/* Finds the leaf element with key k in the page at p. */
static unsigned char *find_elem(unsigned char *p, const char *k)
{
	for (unsigned i = 0; i < bw_page_count(p); i++) {
		unsigned char *e = elem(p, i);
		if (bw_get32(e + 8) == strlen(k) && memcmp(e + bw_get32(e + 4), k, strlen(k)) == 0)
			return e;
	}
	fail_msg("no key %s", k);
	return NULL;
}

static void test_bad_buckets(void **state)
{
	(void)state;
	struct dk_bolt_bucket *root = bw_bucket_new();
	bw_snapshot(root, "aaaa", "p", NULL, NULL, NULL);
	bw_put(root, "short", "12345678", 8);
	bw_snapshot(root, "zzzz", "q", NULL, NULL, NULL);
	struct dk_bolt_bucket *pg = bw_sub(root, "paged");
	pg->never_inline = 1;
	bw_put_str(pg, "parent", "r");
	size_t len, nr;
	struct bw_layout lay;
	unsigned char *db = bw_build(root, NULL, NULL, &len, &lay);
	bw_bucket_free(root);
	unsigned char *copy = malloc(len);
	unsigned char *rp;

	/* "short" is a plain value; flag it as a bucket: 8 bytes < 16 */
	memcpy(copy, db, len);
	rp = bw_page(copy, 4096, lay.root);
	bw_le32(find_elem(rp, "short"), 1);
	char what[160];
	snprintf(what, sizeof(what), "page %llu: bucket \"short\": value of 8 bytes is shorter than a bucket header",
		 (unsigned long long)lay.root);
	/* the snapshot is still listed, without its fields */
	assert_int_equal(expect_damage(copy, len, what), 4);

	/* an inline bucket whose page is a branch */
	memcpy(copy, db, len);
	rp = bw_page(copy, 4096, lay.root);
	unsigned char *e = find_elem(rp, "zzzz");
	unsigned char *v = e + bw_get32(e + 4) + bw_get32(e + 8);
	bw_le16(v + 16 + 8, 0x01);
	assert_int_equal(expect_damage(copy, len, "bucket \"zzzz\": inline page: flags 0x01"), 3);

	/* an inline page cut short: count beyond the value */
	memcpy(copy, db, len);
	rp = bw_page(copy, 4096, lay.root);
	e = find_elem(rp, "zzzz");
	v = e + bw_get32(e + 4) + bw_get32(e + 8);
	bw_le16(v + 16 + 10, 50);
	assert_int_equal(expect_damage(copy, len, "bucket \"zzzz\": inline page: 50 elements do not fit"), 3);

	/* a bucket header pointing at a meta page / itself */
	memcpy(copy, db, len);
	rp = bw_page(copy, 4096, lay.root);
	e = find_elem(rp, "paged");
	v = e + bw_get32(e + 4) + bw_get32(e + 8);
	bw_le64(v, 0x1);
	assert_int_equal(expect_damage(copy, len, "bucket \"paged\" points at meta page 1"), 3);
	bw_le64(v, lay.root);
	assert_int_equal(expect_damage(copy, len, "reached already"), 3);

	/* a key with a NUL byte is no snapshot id */
	memcpy(copy, db, len);
	rp = bw_page(copy, 4096, lay.root);
	e = find_elem(rp, "aaaa");
	(e + bw_get32(e + 4))[1] = '\0';
	assert_int_equal(expect_damage(copy, len, "bucket key of 4 bytes is not a snapshot id"), 2);

	/* a parent with a NUL byte: the snapshot stays, without parent */
	memcpy(copy, db, len);
	rp = bw_page(copy, 4096, lay.root);
	e = find_elem(rp, "aaaa");
	v = e + bw_get32(e + 4) + bw_get32(e + 8);
	unsigned char *pe = find_elem(v + 16, "parent");
	(pe + bw_get32(pe + 4) + bw_get32(pe + 8))[0] = '\0';
	struct dk_buildkit_snapshot *s;
	struct dmr_err err;
	assert_int_equal(parse(copy, len, &s, &nr, &err), DMR_ECORRUPT);
	assert_contains(err.msg, "snapshot \"aaaa\": value of \"parent\" (1 bytes) is not a string");
	assert_int_equal(nr, 3);
	assert_string_equal(s[0].key, "aaaa");
	assert_null(s[0].parent);
	dk_buildkit_free(s, nr);

	/* two problems: the message counts the rest */
	memcpy(copy, db, len);
	rp = bw_page(copy, 4096, lay.root);
	bw_le32(find_elem(rp, "short"), 1);
	e = find_elem(rp, "aaaa");
	(e + bw_get32(e + 4))[1] = '\0';
	assert_int_equal(expect_damage(copy, len, "(and 1 more problems)"), 3);
	free(copy);
	free(db);
}

/* Random damage: never a crash, always sorted unique results. */
static void test_random_damage(void **state)
{
	(void)state;
	size_t len;
	struct bw_layout lay;
	struct bw_opts o = { .page_size = 1024 };
	unsigned char *db = build_n(300, &o, &len, &lay, NULL);
	unsigned char *copy = malloc(len);
	uint64_t rs = 77;
	for (int iter = 0; iter < 3000; iter++) {
		memcpy(copy, db, len);
		int flips = 1 + (int)(unit_rand(&rs) % 8);
		for (int f = 0; f < flips; f++) {
			size_t at = (size_t)(unit_rand(&rs) % len);
			/* aim at page headers and element arrays half the time */
			if (unit_rand(&rs) % 2)
				at = (at / 1024) * 1024 + (size_t)(unit_rand(&rs) % 64);
			copy[at] = (unsigned char)unit_rand(&rs);
		}
		size_t cut = unit_rand(&rs) % 8 == 0 ? (size_t)(unit_rand(&rs) % len) : len;
		struct dk_buildkit_snapshot *s;
		size_t nr;
		struct dmr_err err;
		int r = parse(copy, cut, &s, &nr, &err);
		assert_true(r == 0 || r == DMR_ECORRUPT);
		assert_true(nr <= 300);
		dk_buildkit_free(s, nr);
	}
	free(copy);
	free(db);
}

/* dk_bolt_write then dk_bolt_load gives the same tree: many keys (branch
 * pages), a value with overflow pages, nested and inline buckets, an
 * empty bucket, sequences; deleting a bucket keeps the rest. */
static void test_bolt_roundtrip(void **state)
{
	(void)state;
	struct dk_bolt_bucket *root = bw_bucket_new();
	char k[32];
	static char big[9000];
	memset(big, 'v', sizeof(big));
	for (int i = 0; i < 700; i++) {
		snprintf(k, sizeof(k), "snap%05d", i);
		struct dk_bolt_bucket *b = bw_sub(root, k);
		bw_put_str(b, "parent", i ? "x" : "");
		if (i % 50 == 0)
			bw_put(b, "blob", big, sizeof(big));
		if (i % 70 == 0)
			bw_put_str(bw_sub(b, "nested"), "key", "value");
		b->sequence = (uint64_t)i;
	}
	bw_sub(root, "empty");
	size_t len;
	unsigned char *file = bw_build(root, NULL, &(struct bw_opts){ .page_size = 1024 }, &len, NULL);
	bw_bucket_free(root);
	struct dk_bolt_db db, back;
	struct dmr_err err = { 0 };
	assert_int_equal(dk_bolt_load(file, len, &db, &err), 0);
	free(file);
	assert_int_equal(db.page_size, 1024);
	assert_non_null(dk_bolt_bucket_at(db.root, "snap00350"));
	assert_int_equal(dk_bolt_delete(db.root, "snap00350"), 1);
	assert_int_equal(dk_bolt_delete(db.root, "snap00350"), 0);
	unsigned char *out;
	assert_int_equal(dk_bolt_write(&db, &out, &len, &err), 0);
	assert_int_equal(dk_bolt_load(out, len, &back, &err), 0);
	assert_true(dk_bolt_equal(db.root, back.root));
	assert_null(dk_bolt_get(back.root, "snap00350"));
	assert_int_equal(dk_bolt_bucket_at(back.root, "snap00140")->sequence, 140);
	/* what the snapshots reader sees agrees */
	struct dk_buildkit_snapshot *s;
	size_t nr;
	assert_int_equal(dk_buildkit_parse(out, len, &s, &nr, &err), 0);
	assert_int_equal(nr, 700); /* 699 snapshots and the empty bucket */
	dk_buildkit_free(s, nr);
	/* strict: a truncated copy does not load */
	struct dk_bolt_db tr;
	assert_int_equal(dk_bolt_load(out, len - 1024, &tr, &err), DMR_ECORRUPT);
	free(out);
	dk_bolt_db_free(&back);
	dk_bolt_db_free(&db);
}

/* The references of BuildKit's cache records and leases. */
static void test_buildkit_refs(void **state)
{
	(void)state;
	struct dk_bolt_bucket *cache = bw_bucket_new(), *lease = bw_bucket_new();
	struct dk_bolt_bucket *main_ = bw_sub(cache, "_main");
	bw_put_str(bw_sub(main_, "rec1"), "cache.snapshot", "{\"value\":\"snapA\"}");
	struct dk_bolt_bucket *r2 = bw_sub(main_, "rec2"); /* no cache.snapshot: the record id */
	bw_put_str(r2, "cache.mergeParents", "{\"value\":[\"rec1\",\"snapM\"],\"index\":\"x\"}");
	bw_put_str(r2, "cache.size", "{\"value\":42}");
	bw_sub(cache, "_index");
	struct dk_bolt_bucket *ns = bw_sub(bw_sub(lease, "v1"), "buildkit");
	struct dk_bolt_bucket *leases = bw_sub(ns, "leases");
	bw_put(bw_sub(bw_sub(leases, "lease1"), "snapshots"), "x", "", 0);
	bw_put(bw_sub(bw_sub(bw_sub(leases, "lease2"), "snapshots"), "default"), "snapL", "", 0);
	size_t clen, llen;
	unsigned char *c = bw_build(cache, NULL, NULL, &clen, NULL), *l = bw_build(lease, NULL, NULL, &llen, NULL);
	char **refs;
	size_t nr;
	struct dmr_err err = { 0 };
	assert_int_equal(dk_buildkit_refs_parse(c, clen, l, llen, &refs, &nr, &err), 0);
	const char *want[] = { "rec1", "rec2", "snapA", "snapL", "snapM" };
	assert_int_equal(nr, 5);
	for (size_t i = 0; i < nr; i++) {
		assert_string_equal(refs[i], want[i]);
		free(refs[i]);
	}
	free(refs);
	/* a value that is not JSON: refused, never guessed */
	bw_put_str(bw_sub(main_, "rec3"), "cache.snapshot", "not json");
	free(c);
	c = bw_build(cache, NULL, NULL, &clen, NULL);
	assert_int_equal(dk_buildkit_refs_parse(c, clen, l, llen, &refs, &nr, &err), DMR_ECORRUPT);
	assert_non_null(strstr(err.msg, "metadata_v2.db"));
	free(c);
	free(l);
	bw_bucket_free(cache);
	bw_bucket_free(lease);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_few),
		cmocka_unit_test(test_empty_db),
		cmocka_unit_test(test_many_branch),
		cmocka_unit_test(test_inline_and_page_buckets),
		cmocka_unit_test(test_root_leaf_overflow),
		cmocka_unit_test(test_meta_choice),
		cmocka_unit_test(test_real_bbolt_files),
		cmocka_unit_test(test_damaged_meta),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_bad_page_refs),
		cmocka_unit_test(test_bad_pages),
		cmocka_unit_test(test_bad_buckets),
		cmocka_unit_test(test_random_damage),
		cmocka_unit_test(test_bolt_roundtrip),
		cmocka_unit_test(test_buildkit_refs),
	};
	return cmocka_run_group_tests_name("buildkit", tests, NULL, unit_tmp_cleanup);
}
