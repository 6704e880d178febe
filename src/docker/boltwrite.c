/* dk_bolt_write: a whole new bbolt file from a tree (docker/bolt.h).
 * Promoted from the test writer, with bounds and errors instead of aborts;
 * the tests' files (tests/fixtures/buildkit/boltwriter.c) are written here
 * too, through dk_bolt_write_with's layout choices. Layout, as a fresh bbolt
 * database compacted by 'bbolt compact' would have it: meta pages 0 and 1,
 * an empty freelist at page 2, then each bucket's pages, children before
 * parents; leaves filled up to a page, keys of a branch element the first
 * key of its child, small buckets without sub-buckets inline
 * (Bucket.inlineable: at most a quarter page). */
#include "config.h"
#include "docker/bolt.h"

#include <stdlib.h>
#include <string.h>

#define PAGE_HDR 16u
#define ELEM 16u
#define MAGIC 0xED0CDAEDu
#define FLAG_BRANCH 0x01u
#define FLAG_LEAF 0x02u
#define FLAG_META 0x04u
#define FLAG_FREELIST 0x10u
#define MAX_ELEMS 0xffffu /* the page header's count is 16 bits */

struct out {
	unsigned char *buf;
	uint64_t next; /* next free page id */
	size_t cap_pages;
	uint32_t ps;
	size_t leaf_fill; /* bytes per leaf node (dk_bolt_write_opts) */
	int oom, too_big;
};

struct elem {
	const unsigned char *key;
	size_t klen;
	const unsigned char *val;
	size_t vlen;
	uint32_t flags;
	uint64_t pgid;
};

static void le16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* n new zeroed pages; UINT64_MAX when out of memory (o->oom set). */
static uint64_t alloc_pages(struct out *o, uint64_t n)
{
	if (o->oom || o->too_big)
		return UINT64_MAX;
	if (n > (SIZE_MAX / o->ps) - o->next) {
		o->too_big = 1;
		return UINT64_MAX;
	}
	uint64_t id = o->next;
	if (o->next + n > o->cap_pages) {
		size_t cap = o->cap_pages ? o->cap_pages : 8;
		while (cap < o->next + n)
			cap *= 2;
		unsigned char *b = realloc(o->buf, cap * o->ps);
		if (!b) {
			o->oom = 1;
			return UINT64_MAX;
		}
		o->buf = b;
		o->cap_pages = cap;
	}
	memset(o->buf + id * o->ps, 0, n * o->ps);
	o->next += n;
	return id;
}

static size_t elem_size(int leaf, const struct elem *e)
{
	return ELEM + e->klen + (leaf ? e->vlen : 0);
}

static size_t node_size(int leaf, const struct elem *e, size_t n)
{
	size_t sz = PAGE_HDR;
	for (size_t i = 0; i < n; i++)
		sz += elem_size(leaf, &e[i]);
	return sz;
}

/* bbolt's node.write: the element array, then keys and values in order,
 * each pos counted from its own element. */
static void node_write(unsigned char *p, uint64_t id, int leaf, const struct elem *e, size_t n, uint32_t overflow)
{
	le64(p, id);
	le16(p + 8, leaf ? FLAG_LEAF : FLAG_BRANCH);
	le16(p + 10, (uint16_t)n);
	le32(p + 12, overflow);
	size_t off = PAGE_HDR + n * ELEM;
	for (size_t i = 0; i < n; i++) {
		unsigned char *el = p + PAGE_HDR + i * ELEM;
		uint32_t pos = (uint32_t)(off - (size_t)(el - p));
		if (leaf) {
			le32(el, e[i].flags);
			le32(el + 4, pos);
			le32(el + 8, (uint32_t)e[i].klen);
			le32(el + 12, (uint32_t)e[i].vlen);
		} else {
			le32(el, pos);
			le32(el + 4, (uint32_t)e[i].klen);
			le64(el + 8, e[i].pgid);
		}
		memcpy(p + off, e[i].key, e[i].klen);
		off += e[i].klen;
		if (leaf && e[i].vlen) {
			memcpy(p + off, e[i].val, e[i].vlen);
			off += e[i].vlen;
		}
	}
}

static uint64_t write_node(struct out *o, int leaf, const struct elem *e, size_t n)
{
	size_t sz = node_size(leaf, e, n);
	uint64_t pages = (sz + o->ps - 1) / o->ps;
	if (pages - 1 > UINT32_MAX) {
		o->too_big = 1;
		return UINT64_MAX;
	}
	uint64_t id = alloc_pages(o, pages);
	if (id == UINT64_MAX)
		return id;
	node_write(o->buf + id * o->ps, id, leaf, e, n, (uint32_t)(pages - 1));
	return id;
}

/* Splits e into nodes of at most a page (leaves: o->leaf_fill; one element
 * at least), writes them, and puts the first key and page of each in next. */
static size_t write_level(struct out *o, int leaf, const struct elem *e, size_t n, struct elem *next)
{
	size_t nr = 0, start = 0, bytes = PAGE_HDR, fill = leaf ? o->leaf_fill : o->ps;
	for (size_t i = 0; i <= n; i++) {
		size_t need = i < n ? elem_size(leaf, &e[i]) : 0;
		if (i == n || (i > start && (bytes + need > fill || i - start >= MAX_ELEMS))) {
			if (start < n)
				next[nr] = (struct elem){ .key = e[start].key, .klen = e[start].klen };
			else
				next[nr] = (struct elem){ 0 }; /* an empty bucket is one empty leaf */
			next[nr].pgid = write_node(o, leaf, e + start, i - start);
			if (next[nr].pgid == UINT64_MAX)
				return 0;
			nr++;
			start = i;
			bytes = PAGE_HDR;
		}
		bytes += need;
	}
	return nr;
}

/* The bucket's value: its 16-byte header, followed by its leaf page when
 * inline. NULL on failure (o says why). */
static unsigned char *write_bucket(struct out *o, const struct dk_bolt_bucket *b, int is_root, size_t *vlen,
				   int depth)
{
	if (depth > 64) {
		o->too_big = 1;
		return NULL;
	}
	struct elem *e = calloc(b->n + 1, sizeof(*e));
	unsigned char **subvals = calloc(b->n + 1, sizeof(*subvals));
	unsigned char *val = NULL;
	struct elem *lvl = NULL;
	if (!e || !subvals) {
		o->oom = 1;
		goto out;
	}
	int inlineable = !is_root && !b->never_inline;
	for (size_t i = 0; i < b->n; i++) {
		const struct dk_bolt_item *it = &b->items[i];
		if (it->klen == 0 || it->klen > DK_BOLT_MAX_KEY || it->vlen > DK_BOLT_MAX_VALUE) {
			o->too_big = 1;
			goto out;
		}
		e[i] = (struct elem){ .key = it->key, .klen = it->klen, .val = it->val, .vlen = it->vlen };
		if (it->sub) {
			subvals[i] = write_bucket(o, it->sub, 0, &e[i].vlen, depth + 1);
			if (!subvals[i])
				goto out;
			e[i].val = subvals[i];
			e[i].flags = 0x01;
			inlineable = 0;
		}
	}
	size_t sz = node_size(1, e, b->n);
	if (sz > o->ps / 4)
		inlineable = 0;
	if (inlineable) {
		*vlen = 16 + sz;
		val = calloc(1, *vlen);
		if (!val) {
			o->oom = 1;
			goto out;
		}
		le64(val + 8, b->sequence);
		node_write(val + 16, 0, 1, e, b->n, 0);
		goto out;
	}
	lvl = calloc(b->n + 1, sizeof(*lvl));
	if (!lvl) {
		o->oom = 1;
		goto out;
	}
	size_t n = write_level(o, 1, e, b->n, lvl);
	while (n > 1) {
		struct elem *up = calloc(n, sizeof(*up));
		if (!up) {
			o->oom = 1;
			goto out;
		}
		size_t m = write_level(o, 0, lvl, n, up);
		free(lvl);
		lvl = up;
		n = m;
	}
	if (n != 1)
		goto out;
	*vlen = 16;
	val = calloc(1, 16);
	if (!val) {
		o->oom = 1;
		goto out;
	}
	le64(val, lvl[0].pgid);
	le64(val + 8, b->sequence);
out:
	for (size_t i = 0; subvals && i < b->n; i++)
		free(subvals[i]);
	free(subvals);
	free(e);
	free(lvl);
	return val;
}

static void write_meta(unsigned char *db, uint32_t ps, uint64_t which, uint64_t root, uint64_t root_seq, uint64_t hwm,
		       uint64_t txid)
{
	unsigned char *p = db + which * ps;
	memset(p, 0, ps);
	le64(p, which);
	le16(p + 8, FLAG_META);
	unsigned char *m = p + PAGE_HDR;
	le32(m, MAGIC);
	le32(m + 4, 2);
	le32(m + 8, ps);
	le32(m + 12, 0);
	le64(m + 16, root);
	le64(m + 24, root_seq);
	le64(m + 32, 2); /* the freelist page */
	le64(m + 40, hwm);
	le64(m + 48, txid);
	le64(m + 56, dk_bolt_fnv64a(m, 56));
}

/* The root page of tree b, written as the root bucket; UINT64_MAX on
 * failure (o says why). */
static uint64_t write_root(struct out *o, const struct dk_bolt_bucket *b)
{
	size_t vlen = 0;
	unsigned char *v = o->oom ? NULL : write_bucket(o, b, 1, &vlen, 0);
	if (!v)
		return UINT64_MAX;
	uint64_t root = get64(v);
	free(v);
	return root;
}

int dk_bolt_write(const struct dk_bolt_db *db, unsigned char **out, size_t *len, struct dmr_err *err)
{
	return dk_bolt_write_with(db, NULL, out, len, err);
}

int dk_bolt_write_with(const struct dk_bolt_db *db, const struct dk_bolt_write_opts *opts, unsigned char **out,
		       size_t *len, struct dmr_err *err)
{
	*out = NULL;
	*len = 0;
	uint32_t ps = db->page_size ? db->page_size : 4096;
	if (ps < 512 || ps > 65536 || (ps & (ps - 1)))
		return dmr_err_set(err, DMR_EUSAGE, "bbolt page size %u is not a power of two in 512..65536", ps);
	const struct dk_bolt_bucket *older = opts ? opts->older : NULL;
	struct out o = { .ps = ps, .leaf_fill = opts && opts->leaf_fill ? opts->leaf_fill : ps };
	alloc_pages(&o, 3); /* meta 0, meta 1, freelist */
	uint64_t old_root = older ? write_root(&o, older) : 0;
	uint64_t root = old_root == UINT64_MAX ? old_root : write_root(&o, db->root);
	if (root == UINT64_MAX) {
		free(o.buf);
		if (o.oom)
			return dmr_err_set(err, DMR_ENOMEM, "out of memory writing the bbolt database");
		return dmr_err_set(err, DMR_EUSAGE, "the bbolt database has a key or value beyond bbolt's limits, "
				   "or is too big");
	}
	unsigned char *fl = o.buf + 2 * (size_t)ps;
	le64(fl, 2);
	le16(fl + 8, FLAG_FREELIST);
	/* bbolt writes txid t into meta page t % 2; the other one, one
	 * transaction older, points at the same tree (or at older). */
	uint64_t txid = db->txid + 1;
	write_meta(o.buf, ps, txid % 2, root, db->root->sequence, o.next, txid);
	if (older)
		write_meta(o.buf, ps, (txid + 1) % 2, old_root, older->sequence, o.next, txid - 1);
	else
		write_meta(o.buf, ps, (txid + 1) % 2, root, db->root->sequence, o.next, txid - 1);
	*out = o.buf;
	*len = (size_t)o.next * ps;
	return 0;
}
