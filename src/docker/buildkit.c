#include "config.h"
#include "docker/bolt.h"
#include "docker/parsers.h"
#include "util/grow.h"

#include <endian.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A read-only walk of a bbolt file (etcd-io/bbolt page.go, db.go, bucket.go,
 * node.go; boltdb/bolt has the same format). bbolt writes the machine's own
 * byte order; this reads little-endian files (x86, arm) and says so when it
 * meets a big-endian one. */

#define BOLT_MAGIC 0xED0CDAEDu
#define BOLT_VERSION 2u

#define BOLT_PAGE_BRANCH 0x01u
#define BOLT_PAGE_LEAF 0x02u
#define BOLT_PAGE_META 0x04u
#define BOLT_PAGE_FREELIST 0x10u

#define BOLT_LEAF_BUCKET 0x01u /* leaf element flag: the value is a bucket */

#define BOLT_MIN_PAGE_SIZE 512u
#define BOLT_MAX_PAGE_SIZE 65536u

/* Tree pages plus bucket nesting along one path; bbolt trees of a few
 * thousand buckets are 2 or 3 levels deep. */
#define BOLT_MAX_DEPTH 32

/* Longest key or value kept as a string; snapshot ids are 25 bytes,
 * chain ids 71. */
#define BK_MAX_STRING 4096u

struct bolt_page_hdr {
	uint64_t id;
	uint16_t flags;
	uint16_t count;
	uint32_t overflow; /* pages that follow this one and belong to it */
} __attribute__((packed));
_Static_assert(sizeof(struct bolt_page_hdr) == 16, "bbolt page header is 16 bytes");

struct bolt_leaf_elem {
	uint32_t flags;
	uint32_t pos; /* from the element itself to its key; the value follows the key */
	uint32_t ksize;
	uint32_t vsize;
} __attribute__((packed));
_Static_assert(sizeof(struct bolt_leaf_elem) == 16, "bbolt leaf element is 16 bytes");

struct bolt_branch_elem {
	uint32_t pos; /* from the element itself to its key */
	uint32_t ksize;
	uint64_t pgid;
} __attribute__((packed));
_Static_assert(sizeof(struct bolt_branch_elem) == 16, "bbolt branch element is 16 bytes");

struct bolt_bucket_hdr {
	uint64_t root; /* 0: inline, the bucket's leaf page follows in the value */
	uint64_t sequence;
} __attribute__((packed));
_Static_assert(sizeof(struct bolt_bucket_hdr) == 16, "bbolt bucket header is 16 bytes");

struct bolt_meta {
	uint32_t magic;
	uint32_t version;
	uint32_t page_size;
	uint32_t flags;
	struct bolt_bucket_hdr root;
	uint64_t freelist;
	uint64_t pgid; /* high water mark: pages at or above it are not in use */
	uint64_t txid;
	uint64_t checksum; /* FNV-64a of everything above */
} __attribute__((packed));
_Static_assert(sizeof(struct bolt_meta) == 64, "bbolt meta is 64 bytes");
_Static_assert(offsetof(struct bolt_meta, checksum) == 56, "bbolt checksum covers 56 bytes");

#define BOLT_PAGE_HDR sizeof(struct bolt_page_hdr)
#define BOLT_ELEM 16u

struct bolt {
	const unsigned char *db;
	size_t len;
	uint32_t page_size;
	uint64_t nr_pages;   /* usable: min(pages in the file, high water mark) */
	unsigned char *seen; /* one bit per page reached, against cycles and shared pages */
	char first[sizeof(((struct dmr_err *)0)->msg)];
	size_t nr_problems;
};

static void problem(struct bolt *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void problem(struct bolt *b, const char *fmt, ...)
{
	if (b->nr_problems++ == 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(b->first, sizeof(b->first), fmt, ap);
		va_end(ap);
	}
}

uint64_t dk_bolt_fnv64a(const unsigned char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static struct bolt_page_hdr read_page_hdr(const unsigned char *p)
{
	struct bolt_page_hdr h;
	memcpy(&h, p, sizeof(h));
	h.id = le64toh(h.id);
	h.flags = le16toh(h.flags);
	h.count = le16toh(h.count);
	h.overflow = le32toh(h.overflow);
	return h;
}

/* ---- meta pages ---- */

/* Checks the meta in the page at p (avail bytes there) as bbolt's
 * meta.validate does, plus a sane page size. */
static int meta_read(const unsigned char *p, size_t avail, struct bolt_meta *m, char *why, size_t whylen)
{
	if (avail < BOLT_PAGE_HDR + sizeof(*m)) {
		snprintf(why, whylen, "cut short by the end of the file");
		return -1;
	}
	memcpy(m, p + BOLT_PAGE_HDR, sizeof(*m));
	uint32_t magic = le32toh(m->magic);
	if (magic != BOLT_MAGIC) {
		if (magic == __builtin_bswap32(BOLT_MAGIC))
			snprintf(why, whylen, "big-endian bbolt file, not readable here");
		else
			snprintf(why, whylen, "bad magic 0x%08x", magic);
		return -1;
	}
	m->magic = magic;
	m->version = le32toh(m->version);
	m->page_size = le32toh(m->page_size);
	m->flags = le32toh(m->flags);
	m->root.root = le64toh(m->root.root);
	m->root.sequence = le64toh(m->root.sequence);
	m->freelist = le64toh(m->freelist);
	m->pgid = le64toh(m->pgid);
	m->txid = le64toh(m->txid);
	m->checksum = le64toh(m->checksum);
	if (m->version != BOLT_VERSION) {
		snprintf(why, whylen, "version %u, expected %u", m->version, BOLT_VERSION);
		return -1;
	}
	if (m->checksum != dk_bolt_fnv64a(p + BOLT_PAGE_HDR, offsetof(struct bolt_meta, checksum))) {
		snprintf(why, whylen, "bad checksum");
		return -1;
	}
	uint32_t ps = m->page_size;
	if (ps < BOLT_MIN_PAGE_SIZE || ps > BOLT_MAX_PAGE_SIZE || (ps & (ps - 1))) {
		snprintf(why, whylen, "page size %u is not a power of two in %u..%u", ps, BOLT_MIN_PAGE_SIZE,
			 BOLT_MAX_PAGE_SIZE);
		return -1;
	}
	return 0;
}

/* Picks the valid meta with the highest txid (bbolt's DB.meta). The page
 * size comes from meta 0; when meta 0 is bad, meta 1 is looked for at each
 * possible page size, 4096 first. A bad meta is a problem even when the
 * other one is good: the last transaction may be lost. */
static int meta_pick(struct bolt *b, struct bolt_meta *out, struct dmr_err *err)
{
	struct bolt_meta m0 = { 0 }, m1 = { 0 };
	char why0[128], why1[128];
	int ok0 = meta_read(b->db, b->len, &m0, why0, sizeof(why0)) == 0;
	int ok1 = 0;
	uint32_t ps = 0;
	if (ok0) {
		ps = m0.page_size;
		if (ps >= b->len) {
			snprintf(why1, sizeof(why1), "beyond the end of the file (%zu bytes)", b->len);
		} else if (meta_read(b->db + ps, b->len - ps, &m1, why1, sizeof(why1)) == 0) {
			if (m1.page_size == ps)
				ok1 = 1;
			else
				snprintf(why1, sizeof(why1), "page size %u, meta page 0 says %u", m1.page_size, ps);
		}
	} else {
		static const uint32_t sizes[] = { 4096, 512, 1024, 2048, 8192, 16384, 32768, 65536 };
		snprintf(why1, sizeof(why1), "not found at any page size");
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]) && !ok1; i++) {
			char why[128];
			if (sizes[i] >= b->len)
				continue;
			if (meta_read(b->db + sizes[i], b->len - sizes[i], &m1, why, sizeof(why)) == 0 &&
			    m1.page_size == sizes[i]) {
				ok1 = 1;
				ps = sizes[i];
			} else if (sizes[i] == 4096) {
				memcpy(why1, why, sizeof(why1));
			}
		}
	}
	if (!ok0 && !ok1)
		return dmr_err_set(err, DMR_ECORRUPT, "no valid bbolt meta page: page 0: %s; page 1: %s", why0, why1);
	if (!ok0)
		problem(b, "meta page 0: %s; using meta page 1 (txid %llu)", why0, (unsigned long long)m1.txid);
	else if (!ok1)
		problem(b, "meta page 1: %s; using meta page 0 (txid %llu)", why1, (unsigned long long)m0.txid);
	if (ok0 && (!ok1 || m0.txid >= m1.txid))
		*out = m0;
	else
		*out = m1;
	b->page_size = ps;
	return 0;
}

/* ---- tree walk ---- */

/* Called for each element of a leaf page; where names the page for messages. */
typedef int (*leaf_fn)(struct bolt *b, void *ctx, const char *where, int depth, uint32_t flags,
		       const unsigned char *key, uint32_t klen, const unsigned char *val, uint32_t vlen);

static int walk_pgid(struct bolt *b, uint64_t pgid, const char *from, int depth, leaf_fn fn, void *ctx);

/* The page (or inline page) at p, span bytes long with its overflow. */
static int walk_page(struct bolt *b, const unsigned char *p, size_t span, const char *where, int depth, leaf_fn fn,
		     void *ctx)
{
	if (depth > BOLT_MAX_DEPTH) {
		problem(b, "%s: nested deeper than %d levels", where, BOLT_MAX_DEPTH);
		return 0;
	}
	if (span < BOLT_PAGE_HDR) {
		problem(b, "%s: %zu bytes, shorter than a page header", where, span);
		return 0;
	}
	struct bolt_page_hdr h = read_page_hdr(p);
	if (h.flags != BOLT_PAGE_BRANCH && h.flags != BOLT_PAGE_LEAF) {
		problem(b, "%s: page flags 0x%02x, expected a branch (0x01) or leaf (0x02) page", where, h.flags);
		return 0;
	}
	int is_leaf = h.flags == BOLT_PAGE_LEAF;
	size_t data_start = BOLT_PAGE_HDR + (size_t)h.count * BOLT_ELEM;
	if (data_start > span) {
		problem(b, "%s: %u elements do not fit in its %zu bytes", where, h.count, span);
		return 0;
	}
	if (!is_leaf && h.count == 0) {
		problem(b, "%s: branch page without elements", where);
		return 0;
	}
	for (uint32_t i = 0; i < h.count; i++) {
		size_t eoff = BOLT_PAGE_HDR + (size_t)i * BOLT_ELEM;
		uint32_t eflags = 0, pos, ksize, vsize = 0;
		uint64_t child = 0;
		if (is_leaf) {
			struct bolt_leaf_elem e;
			memcpy(&e, p + eoff, sizeof(e));
			eflags = le32toh(e.flags);
			pos = le32toh(e.pos);
			ksize = le32toh(e.ksize);
			vsize = le32toh(e.vsize);
		} else {
			struct bolt_branch_elem e;
			memcpy(&e, p + eoff, sizeof(e));
			pos = le32toh(e.pos);
			ksize = le32toh(e.ksize);
			child = le64toh(e.pgid);
		}
		/* bbolt writes keys and values after the element array, in order. */
		uint64_t kstart = (uint64_t)eoff + pos, end = kstart + ksize + vsize;
		if (kstart < data_start || end > span) {
			problem(b, "%s: element %u (bytes %llu..%llu) lies outside the page data (%zu..%zu)", where, i,
				(unsigned long long)kstart, (unsigned long long)end, data_start, span);
			continue;
		}
		if (ksize == 0) {
			problem(b, "%s: element %u has an empty key", where, i);
			continue;
		}
		if (is_leaf) {
			int r = fn(b, ctx, where, depth, eflags, p + kstart, ksize, p + kstart + ksize, vsize);
			if (r < 0)
				return r;
		} else {
			char from[160];
			snprintf(from, sizeof(from), "%s: branch element %u", where, i);
			int r = walk_pgid(b, child, from, depth + 1, fn, ctx);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static int seen_test_and_set(struct bolt *b, uint64_t first, uint64_t n)
{
	for (uint64_t i = first; i < first + n; i++)
		if (b->seen[i / 8] & (1u << (i % 8)))
			return 1;
	for (uint64_t i = first; i < first + n; i++)
		b->seen[i / 8] |= (unsigned char)(1u << (i % 8));
	return 0;
}

/* A page reached from "from" (a branch element or a bucket header). */
static int walk_pgid(struct bolt *b, uint64_t pgid, const char *from, int depth, leaf_fn fn, void *ctx)
{
	if (pgid < 2) {
		problem(b, "%s points at meta page %llu", from, (unsigned long long)pgid);
		return 0;
	}
	if (pgid >= b->nr_pages) {
		problem(b, "%s points at page %llu, beyond the %llu pages of the database", from,
			(unsigned long long)pgid, (unsigned long long)b->nr_pages);
		return 0;
	}
	const unsigned char *p = b->db + pgid * b->page_size;
	struct bolt_page_hdr h = read_page_hdr(p);
	if (h.id != pgid) {
		problem(b, "page %llu (from %s): header says page %llu", (unsigned long long)pgid, from,
			(unsigned long long)h.id);
		return 0;
	}
	if (h.overflow >= b->nr_pages - pgid) {
		problem(b, "page %llu: %u overflow pages run past the %llu pages of the database",
			(unsigned long long)pgid, h.overflow, (unsigned long long)b->nr_pages);
		return 0;
	}
	if (seen_test_and_set(b, pgid, (uint64_t)h.overflow + 1)) {
		problem(b, "%s points at page %llu, which was reached already (a cycle or a shared page)", from,
			(unsigned long long)pgid);
		return 0;
	}
	char where[48];
	snprintf(where, sizeof(where), "page %llu", (unsigned long long)pgid);
	return walk_page(b, p, ((size_t)h.overflow + 1) * b->page_size, where, depth, fn, ctx);
}

/* A key for a one-line message: at most 64 bytes, other than printable
 * ASCII shown as '?'. */
static const char *printable(char *dst, size_t dstlen, const unsigned char *k, uint32_t klen)
{
	size_t n = 0;
	for (uint32_t i = 0; i < klen && n + 4 < dstlen && i < 64; i++)
		dst[n++] = k[i] >= 0x20 && k[i] < 0x7f && k[i] != '"' ? (char)k[i] : '?';
	if (klen > 64 && n + 4 < dstlen) {
		memcpy(dst + n, "...", 3);
		n += 3;
	}
	dst[n] = '\0';
	return dst;
}

/* Walks the bucket whose 16-byte header (plus inline page) is val. */
static int walk_bucket(struct bolt *b, const char *where, const unsigned char *key, uint32_t klen,
		       const unsigned char *val, uint32_t vlen, int depth, leaf_fn fn, void *ctx)
{
	char name[200], pk[72];
	snprintf(name, sizeof(name), "%s: bucket \"%s\"", where, printable(pk, sizeof(pk), key, klen));
	if (vlen < sizeof(struct bolt_bucket_hdr)) {
		problem(b, "%s: value of %u bytes is shorter than a bucket header (16)", name, vlen);
		return 0;
	}
	struct bolt_bucket_hdr bh;
	memcpy(&bh, val, sizeof(bh));
	uint64_t root = le64toh(bh.root);
	if (root == 0) {
		char inl[240];
		snprintf(inl, sizeof(inl), "%s: inline page", name);
		const unsigned char *p = val + sizeof(bh);
		size_t span = vlen - sizeof(bh);
		if (span >= BOLT_PAGE_HDR && read_page_hdr(p).flags != BOLT_PAGE_LEAF) {
			problem(b, "%s: flags 0x%02x, an inline bucket is one leaf page", inl, read_page_hdr(p).flags);
			return 0;
		}
		return walk_page(b, p, span, inl, depth + 1, fn, ctx);
	}
	return walk_pgid(b, root, name, depth + 1, fn, ctx);
}

/* Starts a walk of the file: its newest valid meta in *m, the pages it may
 * reach (a truncated file is a problem, and its pages that remain are still
 * read) and the map of pages reached (b->seen, for the caller to free). */
static int bolt_open(struct bolt *b, struct bolt_meta *m, const unsigned char *db, size_t len, struct dmr_err *err)
{
	dmr_err_clear(err);
	if (len == 0)
		return dmr_err_set(err, DMR_ECORRUPT, "empty file, not a bbolt database");
	*b = (struct bolt){ .db = db, .len = len };
	*m = (struct bolt_meta){ 0 };
	int r = meta_pick(b, m, err);
	if (r)
		return r;
	uint64_t file_pages = len / b->page_size;
	b->nr_pages = m->pgid < file_pages ? m->pgid : file_pages;
	if (m->pgid > file_pages)
		problem(b, "the database has %llu pages of %u bytes but the file holds %llu: truncated",
			(unsigned long long)m->pgid, b->page_size, (unsigned long long)file_pages);
	b->seen = calloc((size_t)(b->nr_pages / 8 + 1), 1);
	if (!b->seen)
		return dmr_err_set(err, DMR_ENOMEM, "out of memory for %llu pages", (unsigned long long)b->nr_pages);
	return 0;
}

/* ---- the whole tree (docker/bolt.h) ---- */

struct tree_ctx {
	struct dk_bolt_bucket *b;
};

static void tree_free(struct dk_bolt_bucket *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n; i++) {
		free(b->items[i].key);
		free(b->items[i].val);
		tree_free(b->items[i].sub);
	}
	free(b->items);
	free(b);
}

static int key_cmp(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static int tree_elem(struct bolt *b, void *ctx, const char *where, int depth, uint32_t flags, const unsigned char *key,
		     uint32_t klen, const unsigned char *val, uint32_t vlen)
{
	struct dk_bolt_bucket *bk = ctx;
	if (flags & ~BOLT_LEAF_BUCKET) {
		problem(b, "%s: element flags 0x%x", where, flags);
		return 0;
	}
	if (bk->n && key_cmp(bk->items[bk->n - 1].key, bk->items[bk->n - 1].klen, key, klen) >= 0) {
		char pk[72];
		problem(b, "%s: key \"%s\" out of order", where, printable(pk, sizeof(pk), key, klen));
		return 0;
	}
	struct dk_bolt_item *v = dmr_grow(bk->items, &bk->cap, bk->n, sizeof(*v));
	if (!v)
		return DMR_ENOMEM;
	bk->items = v;
	struct dk_bolt_item it = { 0 };
	it.key = malloc(klen);
	if (!it.key)
		return DMR_ENOMEM;
	memcpy(it.key, key, klen);
	it.klen = klen;
	if (flags & BOLT_LEAF_BUCKET) {
		it.sub = calloc(1, sizeof(*it.sub));
		if (!it.sub) {
			free(it.key);
			return DMR_ENOMEM;
		}
		if (vlen >= sizeof(struct bolt_bucket_hdr)) {
			struct bolt_bucket_hdr bh;
			memcpy(&bh, val, sizeof(bh));
			it.sub->sequence = le64toh(bh.sequence);
		}
		int r = walk_bucket(b, where, key, klen, val, vlen, depth, tree_elem, it.sub);
		if (r < 0) {
			free(it.key);
			tree_free(it.sub);
			return r;
		}
	} else if (vlen) {
		it.val = malloc(vlen);
		if (!it.val) {
			free(it.key);
			return DMR_ENOMEM;
		}
		memcpy(it.val, val, vlen);
		it.vlen = vlen;
	}
	bk->items[bk->n++] = it;
	return 0;
}

void dk_bolt_db_free(struct dk_bolt_db *db)
{
	if (!db)
		return;
	tree_free(db->root);
	memset(db, 0, sizeof(*db));
}

int dk_bolt_load(const unsigned char *db, size_t len, struct dk_bolt_db *out, struct dmr_err *err)
{
	memset(out, 0, sizeof(*out));
	struct bolt b;
	struct bolt_meta m;
	int r = bolt_open(&b, &m, db, len, err);
	if (r)
		return r;
	struct dk_bolt_bucket *root = calloc(1, sizeof(*root));
	if (!root) {
		free(b.seen);
		return dmr_err_set(err, DMR_ENOMEM, "out of memory for %llu pages", (unsigned long long)b.nr_pages);
	}
	root->sequence = m.root.sequence;
	r = walk_pgid(&b, m.root.root, "the meta page's root bucket", 0, tree_elem, root);
	free(b.seen);
	if (r < 0) {
		tree_free(root);
		return dmr_err_set(err, r, "out of memory reading the database");
	}
	if (b.nr_problems) {
		tree_free(root);
		if (b.nr_problems == 1)
			return dmr_err_set(err, DMR_ECORRUPT, "%s", b.first);
		return dmr_err_set(err, DMR_ECORRUPT, "%s (and %zu more problems)", b.first, b.nr_problems - 1);
	}
	out->root = root;
	out->page_size = b.page_size;
	out->txid = m.txid;
	return 0;
}

static size_t find_index(const struct dk_bolt_bucket *b, const char *key, int *found)
{
	size_t lo = 0, hi = b->n, klen = strlen(key);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = key_cmp(b->items[mid].key, b->items[mid].klen, (const unsigned char *)key, klen);
		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = 0;
	return lo;
}

const struct dk_bolt_item *dk_bolt_get(const struct dk_bolt_bucket *b, const char *key)
{
	int found;
	size_t i = b ? find_index(b, key, &found) : 0;
	return b && found ? &b->items[i] : NULL;
}

const struct dk_bolt_bucket *dk_bolt_bucket_at(const struct dk_bolt_bucket *b, const char *key)
{
	const struct dk_bolt_item *it = dk_bolt_get(b, key);
	return it ? it->sub : NULL;
}

int dk_bolt_delete(struct dk_bolt_bucket *b, const char *key)
{
	int found;
	size_t i = find_index(b, key, &found);
	if (!found)
		return 0;
	free(b->items[i].key);
	free(b->items[i].val);
	tree_free(b->items[i].sub);
	memmove(&b->items[i], &b->items[i + 1], (b->n - i - 1) * sizeof(b->items[0]));
	b->n--;
	return 1;
}

int dk_bolt_equal(const struct dk_bolt_bucket *a, const struct dk_bolt_bucket *b)
{
	if (a->n != b->n || a->sequence != b->sequence)
		return 0;
	for (size_t i = 0; i < a->n; i++) {
		const struct dk_bolt_item *x = &a->items[i], *y = &b->items[i];
		if (x->klen != y->klen || memcmp(x->key, y->key, x->klen) != 0 || !x->sub != !y->sub)
			return 0;
		if (x->sub ? !dk_bolt_equal(x->sub, y->sub)
			   : x->vlen != y->vlen || (x->vlen && memcmp(x->val, y->val, x->vlen) != 0))
			return 0;
	}
	return 1;
}

/* ---- Docker's snapshots.db layout ----
 * moby builder/builder-next/adapters/snapshot/snapshot.go: one top-level
 * bucket per snapshot key holding "parent" (Prepare; "" without a parent),
 * "committed" (Commit: bucket <name> gets the key it was committed from),
 * "chainid" (layer.go EnsureLayer) and "size" (Usage). */

struct snaps {
	struct dk_buildkit_snapshot *v;
	size_t n, cap;
};

static int bounded_string(const unsigned char *p, uint32_t n, char **out)
{
	if (n > BK_MAX_STRING || memchr(p, '\0', n))
		return -1;
	char *s = malloc((size_t)n + 1);
	if (!s)
		return DMR_ENOMEM;
	memcpy(s, p, n);
	s[n] = '\0';
	*out = s;
	return 0;
}

static void snapshot_clear(struct dk_buildkit_snapshot *s)
{
	free(s->key);
	free(s->parent);
	free(s->chain_id);
	free(s->committed_to);
	memset(s, 0, sizeof(*s));
}

static int key_is(const unsigned char *k, uint32_t klen, const char *want)
{
	return klen == strlen(want) && memcmp(k, want, klen) == 0;
}

static int snapshot_field(struct bolt *b, void *ctx, const char *where, int depth, uint32_t flags,
			  const unsigned char *key, uint32_t klen, const unsigned char *val, uint32_t vlen)
{
	(void)depth;
	struct dk_buildkit_snapshot *s = ctx;
	if (flags & BOLT_LEAF_BUCKET)
		return 0; /* not something Docker writes; nothing of ours inside */
	char **dst = NULL;
	if (key_is(key, klen, "parent"))
		dst = &s->parent;
	else if (key_is(key, klen, "chainid"))
		dst = &s->chain_id;
	else if (key_is(key, klen, "committed")) {
		s->committed = 1;
		dst = &s->committed_to;
	} else if (key_is(key, klen, "iscommitted")) {
		s->committed = 1;
	}
	if (!dst)
		return 0;
	char *str = NULL;
	if (vlen > 0) {
		int r = bounded_string(val, vlen, &str);
		if (r == DMR_ENOMEM)
			return r;
		if (r) {
			problem(b, "%s: snapshot \"%s\": value of \"%.*s\" (%u bytes) is not a string", where, s->key,
				(int)klen, (const char *)key, vlen);
			return 0;
		}
	}
	free(*dst);
	*dst = str;
	return 0;
}

static int snapshot_bucket(struct bolt *b, void *ctx, const char *where, int depth, uint32_t flags,
			   const unsigned char *key, uint32_t klen, const unsigned char *val, uint32_t vlen)
{
	struct snaps *ss = ctx;
	if (flags & ~BOLT_LEAF_BUCKET) {
		problem(b, "%s: element flags 0x%x", where, flags);
		return 0;
	}
	if (!(flags & BOLT_LEAF_BUCKET))
		return 0; /* a plain key at the top: not Docker's layout, nothing to take */
	struct dk_buildkit_snapshot s = { 0 };
	int r = bounded_string(key, klen, &s.key);
	if (r == DMR_ENOMEM)
		return r;
	if (r) {
		problem(b, "%s: bucket key of %u bytes is not a snapshot id", where, klen);
		return 0;
	}
	r = walk_bucket(b, where, key, klen, val, vlen, depth, snapshot_field, &s);
	if (r == 0) {
		struct dk_buildkit_snapshot *v = dmr_grow(ss->v, &ss->cap, ss->n, sizeof(*v));
		if (v)
			ss->v = v;
		else
			r = DMR_ENOMEM;
	}
	if (r < 0) {
		snapshot_clear(&s);
		return r;
	}
	ss->v[ss->n++] = s;
	return 0;
}

static int cmp_snapshot_key(const void *a, const void *b)
{
	const struct dk_buildkit_snapshot *x = a, *y = b;
	return strcmp(x->key, y->key);
}

void dk_buildkit_free(struct dk_buildkit_snapshot *s, size_t nr)
{
	if (!s)
		return;
	for (size_t i = 0; i < nr; i++)
		snapshot_clear(&s[i]);
	free(s);
}

int dk_buildkit_parse(const unsigned char *db, size_t len, struct dk_buildkit_snapshot **out, size_t *nr,
		      struct dmr_err *err)
{
	*out = NULL;
	*nr = 0;
	struct bolt b;
	struct bolt_meta m;
	int r = bolt_open(&b, &m, db, len, err);
	if (r)
		return r;

	struct snaps ss = { 0 };
	r = walk_pgid(&b, m.root.root, "the meta page's root bucket", 0, snapshot_bucket, &ss);
	free(b.seen);
	if (r < 0) {
		dk_buildkit_free(ss.v, ss.n);
		return dmr_err_set(err, r, "out of memory reading the snapshots");
	}

	/* Keys come sorted from an intact tree; a damaged one may repeat or
	 * misorder them. Keep the first of equal keys. */
	if (ss.n > 1)
		qsort(ss.v, ss.n, sizeof(ss.v[0]), cmp_snapshot_key);
	size_t w = 0;
	for (size_t i = 0; i < ss.n; i++) {
		if (w > 0 && strcmp(ss.v[w - 1].key, ss.v[i].key) == 0) {
			problem(&b, "snapshot \"%s\" appears twice", ss.v[i].key);
			snapshot_clear(&ss.v[i]);
			continue;
		}
		ss.v[w++] = ss.v[i];
	}
	*out = ss.v;
	*nr = w;
	if (w == 0) {
		free(ss.v);
		*out = NULL;
	}
	if (b.nr_problems == 1)
		return dmr_err_set(err, DMR_ECORRUPT, "%s", b.first);
	if (b.nr_problems > 1)
		return dmr_err_set(err, DMR_ECORRUPT, "%s (and %zu more problems)", b.first, b.nr_problems - 1);
	return 0;
}
