/* The pool checker (see check.h). One breadth-first pass over every tree
 * of the pool, each level read in ascending block order: every reference to
 * a metadata block is counted, every node is verified and descended once.
 * Then the counts are compared with both space maps. */
#include "config.h"
#include "util/fmt.h"
#include "thinmeta/check.h"
#include "thinmeta/blocksrc.h"
#include "thinmeta/crc32c.h"
#include "thinmeta/spacemap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CHUNK 512u
/* Per code, the blocks named one by one before a summary line. */
#define MAX_PER_CODE 20u

enum kind { K_DETAILS, K_TOP, K_BOTTOM, K_DATA_INDEX, K_DATA_REF, K_META_REF, K_NKINDS };

static const char *const kind_name[K_NKINDS] = {
	[K_DETAILS] = "device details tree",
	[K_TOP] = "mapping tree (top level)",
	[K_BOTTOM] = "mapping tree",
	[K_DATA_INDEX] = "data space map index",
	[K_DATA_REF] = "data reference count tree",
	[K_META_REF] = "metadata reference count tree",
};

static const uint32_t kind_value_size[K_NKINDS] = {
	[K_DETAILS] = 24, [K_TOP] = 8, [K_BOTTOM] = 8, [K_DATA_INDEX] = 16, [K_DATA_REF] = 4, [K_META_REF] = 4,
};

struct qent {
	uint64_t block;
	uint64_t parent; /* the node (or superblock, 0) holding the reference */
	uint64_t lo, hi; /* keys the parent allows; hi exclusive, UINT64_MAX open */
	int64_t dev;     /* the device whose tree reached it first (bottom level) */
	uint8_t kind;
	uint8_t depth;
	uint8_t is_root;
};

struct queue {
	struct qent *e;
	size_t n, cap;
};

/* Expected data reference counts: 2 bits a block (0, 1, 2, 3 = see the
 * hash table) in chunks allocated on first use, as compact as the space
 * map itself; counts of 3 and more live in a hash table. */
#define DCHUNK 65536u
/* block + 1 in the low 40 bits (0 = empty slot), the count in the high 24
 * (saturating: no real pool has 16M leaves sharing one block). */
struct dbig {
	uint64_t v;
};
#define DBIG_BLOCK(e) ((e).v & ((1ull << 40) - 1))
#define DBIG_COUNT(e) ((e).v >> 40)
struct dcounts {
	uint64_t nr_blocks;
	uint8_t **chunk; /* DCHUNK / 4 bytes each */
	uint64_t nr_chunks;
	struct dbig *big; /* open addressing, power-of-two size */
	size_t nr_big, cap_big;
};

struct checker {
	struct tm_pool *p;
	const struct tm_check_opts *opts;
	tm_finding_fn fn;
	void *ctx;
	struct tm_check_stats *st;
	uint64_t nmeta;
	uint32_t *mref;      /* expected metadata counts */
	uint8_t *seen;       /* descended already */
	uint8_t *damaged;    /* bottom-level subtree with damage below it */
	uint64_t *ncount;    /* mappings under a bottom-level node */
	/* internal bottom-level nodes in visit order, with their children */
	uint64_t *inodes;
	size_t nr_inodes, cap_inodes;
	uint64_t *ichild;    /* children, grouped per internal node */
	size_t nr_ichild, cap_ichild;
	size_t *ichild_start;
	struct dcounts data;
	unsigned long per_code[32];
	const char *codes[32];
	size_t nr_codes;
	int tree_damage; /* some node was damaged: unreferenced counts may be its */
	/* key ranges lost in the details and top-level trees */
	uint64_t (*lost)[3]; /* kind, lo, hi */
	size_t nr_lost, cap_lost;
	int oom;
};

static unsigned long *code_counter(struct checker *c, const char *code)
{
	for (size_t i = 0; i < c->nr_codes; i++)
		if (strcmp(c->codes[i], code) == 0)
			return &c->per_code[i];
	if (c->nr_codes < 32) {
		c->codes[c->nr_codes] = code;
		return &c->per_code[c->nr_codes++];
	}
	return NULL;
}

static void finding(struct checker *c, enum tm_severity sev, const char *code, uint64_t block, int64_t dev,
		    const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void finding(struct checker *c, enum tm_severity sev, const char *code, uint64_t block, int64_t dev,
		    const char *fmt, ...)
{
	/* dev is a device id (a btree key, cast) or -1; an id beyond INT64_MAX
	 * (damage: the kernel's ids have 24 bits) is named by the message only. */
	struct tm_finding f = { .severity = sev, .code = code, .block = block, .dev_id = dev < -1 ? -1 : dev };
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f.msg, sizeof(f.msg), fmt, ap);
	va_end(ap);
	c->st->findings[sev]++;
	c->fn(c->ctx, &f);
}

/* For findings that can come by the million (counts): the first ones one by
 * one, then a count at the end (see flush_summaries). */
static int limited(struct checker *c, const char *code)
{
	unsigned long *n = code_counter(c, code);
	return n && (*n)++ < MAX_PER_CODE;
}

/* A damaged node: what it is, where, and what is lost with it. */
static void node_damage(struct checker *c, const struct qent *q, const char *code, const char *why)
{
	char keys[64];
	fmt_key_range(keys, sizeof(keys), q->lo, q->hi);
	if (q->kind == K_BOTTOM)
		finding(c, TM_SEV_FATAL, code, q->block, q->dev,
			"block %llu (device %llu mappings): %s; virtual blocks %s of device %llu lost",
			(unsigned long long)q->block, (unsigned long long)q->dev, why, keys, (unsigned long long)q->dev);
	else
		finding(c, TM_SEV_FATAL, code, q->block, -1, "block %llu (%s): %s; keys %s lost",
			(unsigned long long)q->block, kind_name[q->kind], why, keys);
	if (q->kind == K_BOTTOM && q->block < c->nmeta)
		c->damaged[q->block] = 1;
	c->tree_damage = 1;
	if (q->kind == K_DETAILS || q->kind == K_TOP) {
		if (c->nr_lost == c->cap_lost) {
			size_t cap = c->cap_lost ? c->cap_lost * 2 : 8;
			void *n = realloc(c->lost, cap * sizeof(*c->lost));
			if (!n)
				return;
			c->lost = n;
			c->cap_lost = cap;
		}
		c->lost[c->nr_lost][0] = q->kind;
		c->lost[c->nr_lost][1] = q->lo;
		c->lost[c->nr_lost++][2] = q->hi;
	}
}

/* Whether a device id falls in a range lost with a damaged node. */
static int lost_with_damage(const struct checker *c, enum kind k, uint64_t dev)
{
	for (size_t i = 0; i < c->nr_lost; i++)
		if (c->lost[i][0] == (uint64_t)k && dev >= c->lost[i][1] && (c->lost[i][2] == UINT64_MAX || dev < c->lost[i][2]))
			return 1;
	return 0;
}

static int push(struct queue *qu, struct qent e)
{
	if (qu->n == qu->cap) {
		size_t cap = qu->cap ? qu->cap * 2 : 256;
		struct qent *n = realloc(qu->e, cap * sizeof(*n));
		if (!n)
			return -1;
		qu->e = n;
		qu->cap = cap;
	}
	qu->e[qu->n++] = e;
	return 0;
}

/* One more reference to a metadata block that is not a btree node
 * (bitmaps, the index block, a snapshot superblock). A bad number is
 * reported by whoever reads that block (the space map loader). */
static void ref_plain(struct checker *c, uint64_t block)
{
	if (block > 0 && block < c->nmeta && c->mref[block] < UINT32_MAX)
		c->mref[block]++;
}

/* One more reference to a btree node: counted always, queued the first time. */
static void ref_node(struct checker *c, struct queue *next, struct qent e)
{
	if (e.block == 0 || e.block >= c->nmeta) {
		/* Name the node holding the bad pointer: the one to repair. */
		char why[160];
		struct qent at = e;
		at.block = e.parent;
		snprintf(why, sizeof(why), "points at block %llu, outside the metadata (1..%llu)",
			 (unsigned long long)e.block, (unsigned long long)(c->nmeta - 1));
		node_damage(c, &at, TM_CHK_NODE_RANGE, why);
		return;
	}
	if (c->mref[e.block] < UINT32_MAX)
		c->mref[e.block]++;
	if (c->seen[e.block / 8] & (1u << (e.block % 8)))
		return; /* shared: descended once */
	c->seen[e.block / 8] |= (uint8_t)(1u << (e.block % 8));
	if (push(next, e))
		c->oom = 1;
}

static struct dbig *big_slot(struct dbig *t, size_t cap, uint64_t b)
{
	size_t i = (size_t)((b * 0x9E3779B97F4A7C15ull) >> 20) & (cap - 1);
	while (DBIG_BLOCK(t[i]) && DBIG_BLOCK(t[i]) != b + 1)
		i = (i + 1) & (cap - 1);
	return &t[i];
}

static int big_grow(struct dcounts *d)
{
	size_t cap = d->cap_big ? d->cap_big * 2 : 1024;
	struct dbig *t = calloc(cap, sizeof(*t));
	if (!t)
		return -1;
	for (size_t i = 0; i < d->cap_big; i++)
		if (DBIG_BLOCK(d->big[i]))
			*big_slot(t, cap, DBIG_BLOCK(d->big[i]) - 1) = d->big[i];
	free(d->big);
	d->big = t;
	d->cap_big = cap;
	return 0;
}

static int dcount_add(struct dcounts *d, uint64_t b)
{
	uint64_t ci = b / DCHUNK;
	if (!d->chunk[ci] && !(d->chunk[ci] = calloc(DCHUNK / 4, 1)))
		return -1;
	uint32_t i = (uint32_t)(b % DCHUNK);
	uint8_t *byte = &d->chunk[ci][i / 4];
	unsigned sh = 2u * (i % 4u), v = (*byte >> sh) & 3u;
	if (v < 2) {
		*byte = (uint8_t)(*byte + (1u << sh));
		return 0;
	}
	if ((d->nr_big + 1) * 4 > d->cap_big * 3 && big_grow(d))
		return -1;
	struct dbig *e = big_slot(d->big, d->cap_big, b);
	if (!DBIG_BLOCK(*e)) {
		e->v = (b + 1) | (2ull << 40);
		d->nr_big++;
		*byte |= (uint8_t)(3u << sh);
	}
	if (DBIG_COUNT(*e) < (1ull << 24) - 1)
		e->v += 1ull << 40;
	return 0;
}

static uint64_t dcount_get(const struct dcounts *d, uint64_t b)
{
	const uint8_t *ch = d->chunk[b / DCHUNK];
	if (!ch)
		return 0;
	uint32_t i = (uint32_t)(b % DCHUNK);
	unsigned v = (ch[i / 4] >> (2u * (i % 4u))) & 3u;
	if (v < 3)
		return v;
	const struct dbig *e = big_slot(d->big, d->cap_big, b);
	return DBIG_BLOCK(*e) ? DBIG_COUNT(*e) : 3;
}

static int remember_internal(struct checker *c, uint64_t block, const struct tm_node *n)
{
	if (c->nr_inodes == c->cap_inodes) {
		size_t cap = c->cap_inodes ? c->cap_inodes * 2 : 256;
		uint64_t *a = realloc(c->inodes, cap * sizeof(*a));
		size_t *s = a ? realloc(c->ichild_start, (cap + 1) * sizeof(*s)) : NULL;
		if (a)
			c->inodes = a;
		if (!a || !s)
			return -1;
		c->ichild_start = s;
		c->cap_inodes = cap;
	}
	if (c->nr_ichild + n->nr_entries > c->cap_ichild) {
		size_t cap = c->cap_ichild ? c->cap_ichild * 2 : 4096;
		while (cap < c->nr_ichild + n->nr_entries)
			cap *= 2;
		uint64_t *a = realloc(c->ichild, cap * sizeof(*a));
		if (!a)
			return -1;
		c->ichild = a;
		c->cap_ichild = cap;
	}
	c->ichild_start[c->nr_inodes] = c->nr_ichild;
	c->inodes[c->nr_inodes++] = block;
	for (uint32_t i = 0; i < n->nr_entries; i++)
		c->ichild[c->nr_ichild++] = tm_node_value64(n, i);
	c->ichild_start[c->nr_inodes] = c->nr_ichild;
	return 0;
}

static void visit_leaf(struct checker *c, struct queue *next, const struct qent *q, const struct tm_node *n)
{
	uint64_t nr_data = c->p->sb.data_sm.nr_blocks;
	switch (q->kind) {
	case K_TOP:
		for (uint32_t i = 0; i < n->nr_entries; i++) {
			struct qent e = { .block = tm_node_value64(n, i), .parent = q->block, .hi = UINT64_MAX,
					  .dev = (int64_t)tm_node_key(n, i), .kind = K_BOTTOM, .is_root = 1 };
			ref_node(c, next, e);
		}
		break;
	case K_BOTTOM:
		c->ncount[q->block] = n->nr_entries;
		c->st->mappings += n->nr_entries;
		for (uint32_t i = 0; i < n->nr_entries; i++) {
			uint64_t db = tm_node_value64(n, i) >> TM_BLOCK_TIME_TIME_BITS;
			if (db >= nr_data) {
				if (limited(c, TM_CHK_MAPPING_BEYOND))
					finding(c, TM_SEV_FATAL, TM_CHK_MAPPING_BEYOND, q->block, q->dev,
						"block %llu (device %llu mappings): virtual block %llu maps to data block %llu, beyond the pool's %llu blocks",
						(unsigned long long)q->block, (unsigned long long)q->dev,
						(unsigned long long)tm_node_key(n, i), (unsigned long long)db,
						(unsigned long long)nr_data);
				else
					c->st->findings[TM_SEV_FATAL]++;
				continue;
			}
			/* The data file check needs the counts too. */
			if ((!c->opts->skip_data_counts || c->opts->data_path) && dcount_add(&c->data, db))
				c->oom = 1;
		}
		break;
	case K_DATA_INDEX:
		for (uint32_t i = 0; i < n->nr_entries; i++)
			ref_plain(c, tm_le64(tm_node_value(n, i)));
		break;
	default: /* details and overflow values hold no block numbers */
		break;
	}
}

static void visit(struct checker *c, struct queue *next, const struct qent *q, const void *buf, int status)
{
	struct tm_node n;
	char why[200];
	if (status) {
		node_damage(c, q, status == DMR_ECORRUPT ? TM_CHK_NODE_RANGE : TM_CHK_BAD_NODE,
			    status == DMR_ECORRUPT ? "beyond the end of the file" : "read error");
		return;
	}
	c->st->meta_blocks_checked++;
	c->st->nodes++;
	if (tm_node_check(buf, q->block, kind_value_size[q->kind], &n, why, sizeof(why))) {
		node_damage(c, q, TM_CHK_BAD_NODE, why);
		return;
	}
	if (n.nr_entries > 0) {
		uint64_t first = tm_node_key(&n, 0), last = tm_node_key(&n, n.nr_entries - 1);
		if (first < q->lo || (q->hi != UINT64_MAX && last >= q->hi)) {
			snprintf(why, sizeof(why), "keys %llu..%llu outside the range its parent gives",
				 (unsigned long long)first, (unsigned long long)last);
			node_damage(c, q, TM_CHK_KEY_RANGE, why);
			return;
		}
	}
	if (!q->is_root && n.nr_entries < n.max_entries / 3)
		finding(c, TM_SEV_WARNING, TM_CHK_UNDERFULL, q->block, q->kind == K_BOTTOM ? q->dev : -1,
			"block %llu (%s): %u entries, fewer than the %u a non-root node must hold",
			(unsigned long long)q->block, kind_name[q->kind], n.nr_entries, n.max_entries / 3);
	if (n.flags == TM_NODE_LEAF) {
		visit_leaf(c, next, q, &n);
		return;
	}
	if (q->depth + 1 >= TM_BTREE_MAX_DEPTH) {
		node_damage(c, q, TM_CHK_CYCLE, "deeper than any real btree: a cycle?");
		return;
	}
	if (q->kind == K_BOTTOM && remember_internal(c, q->block, &n))
		c->oom = 1;
	for (uint32_t i = 0; i < n.nr_entries; i++) {
		struct qent e = {
			.block = tm_node_value64(&n, i), .parent = q->block, .lo = tm_node_key(&n, i),
			.hi = i + 1 < n.nr_entries ? tm_node_key(&n, i + 1) : q->hi,
			.dev = q->dev, .kind = q->kind, .depth = (uint8_t)(q->depth + 1),
		};
		if (e.block == q->block) {
			node_damage(c, &e, TM_CHK_CYCLE, "a btree node that points at itself");
			continue;
		}
		ref_node(c, next, e);
	}
}

/* Reads the queue level by level until nothing is left. */
static int walk(struct checker *c, struct queue *cur, struct dmr_err *err)
{
	struct queue next = { 0 };
	void *bufs = tm_block_alloc(CHUNK);
	uint64_t *blocks = malloc(CHUNK * sizeof(*blocks));
	int *status = malloc(CHUNK * sizeof(*status));
	int r = 0;
	if (!bufs || !blocks || !status) {
		r = DMR_ENOMEM;
		goto out;
	}
	while (cur->n > 0 && !c->oom) {
		for (size_t off = 0; off < cur->n && !c->oom; off += CHUNK) {
			size_t cnt = cur->n - off < CHUNK ? cur->n - off : CHUNK;
			for (size_t i = 0; i < cnt; i++)
				blocks[i] = cur->e[off + i].block;
			if ((r = tm_blocksrc_read_many(c->p->bs, blocks, cnt, bufs, status, err)))
				goto out;
			for (size_t i = 0; i < cnt; i++)
				visit(c, &next, &cur->e[off + i], (char *)bufs + i * TM_BLOCK_SIZE, status[i]);
		}
		struct queue t = *cur;
		*cur = next;
		next = t;
		next.n = 0;
	}
	if (c->oom)
		r = DMR_ENOMEM;
out:
	free(next.e);
	free(bufs);
	free(blocks);
	free(status);
	return r;
}

/* Mappings under each bottom-level node, children before parents (the
 * reverse of the breadth-first visit order); damage below marks the node.
 * A subtree shared at different depths (an origin whose root split after a
 * snapshot) can be read before one of its parents, which then comes first
 * here: repeat until nothing changes, at most once per level. A count
 * still growing in the last pass is fed by a cycle (a child pointing back
 * at an ancestor): it means nothing, and the node counts as damaged. */
static void sum_counts(struct checker *c)
{
	for (int pass = 0; pass < TM_BTREE_MAX_DEPTH; pass++) {
		int changed = 0, last = pass == TM_BTREE_MAX_DEPTH - 1;
		for (size_t k = c->nr_inodes; k-- > 0;) {
			uint64_t b = c->inodes[k], sum = 0;
			uint8_t dmg = c->damaged[b];
			for (size_t j = c->ichild_start[k]; j < c->ichild_start[k + 1]; j++) {
				uint64_t ch = c->ichild[j];
				if (ch == 0 || ch >= c->nmeta || ch == b) {
					dmg = 1;
					continue;
				}
				sum += c->ncount[ch];
				if (c->damaged[ch])
					dmg = 1;
			}
			if (last && sum != c->ncount[b]) {
				dmg = 1;
				c->tree_damage = 1;
			}
			changed |= sum != c->ncount[b] || dmg != c->damaged[b];
			c->ncount[b] = sum;
			c->damaged[b] = dmg;
		}
		if (!changed)
			break;
	}
}

struct smdmg {
	struct checker *c;
	uint64_t (*ranges)[2];
	size_t n, cap;
	int which;
};

static void sm_damage(void *vctx, const char *tree, const struct tm_damage *d)
{
	struct smdmg *s = vctx;
	char keys[64];
	fmt_key_range(keys, sizeof(keys), d->lo, d->hi);
	finding(s->c, TM_SEV_FATAL, TM_CHK_SM_BAD, d->block, -1, "block %llu (%s): %s; counts of blocks %s unknown",
		(unsigned long long)d->block, tree, d->reason, keys);
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		void *n = realloc(s->ranges, cap * sizeof(*s->ranges));
		if (!n)
			return;
		s->ranges = n;
		s->cap = cap;
	}
	s->ranges[s->n][0] = d->lo;
	s->ranges[s->n++][1] = d->hi;
}

static int in_damaged(const struct smdmg *s, uint64_t b)
{
	for (size_t i = 0; i < s->n; i++)
		if (b >= s->ranges[i][0] && b < s->ranges[i][1])
			return 1;
	return 0;
}

/* A run of blocks with the same wrong count, reported as one finding. */
struct count_run {
	const char *code;
	enum tm_severity sev;
	uint64_t want, have, first, len;
};

static void flush_run(struct checker *c, struct count_run *r, int meta)
{
	if (!r->len)
		return;
	const char *what = meta ? "metadata" : "data";
	char blocks[64];
	fmt_key_range(blocks, sizeof(blocks), r->first, r->first + r->len);
	const char *plural = r->len > 1 ? "s" : "", *verb = r->len > 1 ? "have" : "has";
	if (!limited(c, r->code)) {
		c->st->findings[r->sev]++;
	} else if (r->want > r->have) {
		finding(c, r->sev, r->code, meta ? r->first : UINT64_MAX, -1,
			"%s block%s %s %s %llu references but a count of %llu%s", what, plural, blocks, verb,
			(unsigned long long)r->want, (unsigned long long)r->have,
			r->have == 0 ? ": the space map would hand them out again while in use" : "");
	} else if (r->want == 0) {
		finding(c, r->sev, r->code, meta ? r->first : UINT64_MAX, -1,
			"%s block%s %s %s a count of %llu but nothing refers to %s (leaked%s)", what, plural, blocks, verb,
			(unsigned long long)r->have, r->len > 1 ? "them" : "it",
			c->tree_damage ? ", or referred to by the damaged nodes above" : "");
	} else {
		finding(c, r->sev, r->code, meta ? r->first : UINT64_MAX, -1,
			"%s block%s %s %s %llu references but a count of %llu", what, plural, blocks, verb,
			(unsigned long long)r->want, (unsigned long long)r->have);
	}
	r->len = 0;
}

static void compare_counts(struct checker *c, const struct tm_space_map *sm, const struct smdmg *dmg, int meta)
{
	uint64_t n = meta ? c->nmeta : sm->nr_blocks;
	struct count_run run = { 0 };
	for (uint64_t b = 0; b < n; b++) {
		uint64_t want = meta ? c->mref[b] : dcount_get(&c->data, b);
		uint64_t have = tm_sm_count(sm, b);
		if (want == have || in_damaged(dmg, b)) {
			flush_run(c, &run, meta);
			continue;
		}
		struct count_run cur = { .want = want, .have = have, .first = b, .len = 1 };
		if (want > have) {
			cur.code = meta ? TM_CHK_META_UNDERCOUNT : TM_CHK_DATA_UNDERCOUNT;
			cur.sev = TM_SEV_FATAL;
		} else if (want == 0) {
			cur.code = meta ? TM_CHK_META_LEAK : TM_CHK_DATA_LEAK;
			cur.sev = TM_SEV_WARNING;
		} else {
			cur.code = meta ? TM_CHK_META_OVERCOUNT : TM_CHK_DATA_OVERCOUNT;
			cur.sev = TM_SEV_WARNING;
		}
		if (run.len && run.code == cur.code && run.want == want && run.have == have && run.first + run.len == b) {
			run.len++;
			continue;
		}
		flush_run(c, &run, meta);
		run = cur;
	}
	flush_run(c, &run, meta);
}

/* "and N more" lines for codes cut short by limited(). */
static void flush_summaries(struct checker *c)
{
	for (size_t i = 0; i < c->nr_codes; i++) {
		if (c->per_code[i] <= MAX_PER_CODE)
			continue;
		const char *code = c->codes[i];
		int fatal = !strcmp(code, TM_CHK_META_UNDERCOUNT) || !strcmp(code, TM_CHK_DATA_UNDERCOUNT) ||
			    !strcmp(code, TM_CHK_MAPPING_BEYOND);
		struct tm_finding f = { .severity = fatal ? TM_SEV_FATAL : TM_SEV_WARNING, .code = code,
					.block = UINT64_MAX, .dev_id = -1 };
		snprintf(f.msg, sizeof(f.msg), "and %lu more like the ones above", c->per_code[i] - MAX_PER_CODE);
		c->fn(c->ctx, &f);
	}
}

/* Counts the metadata space map's own blocks: its index and bitmaps. */
static void ref_metadata_sm(struct checker *c)
{
	const struct tm_sm_root *r = &c->p->sb.metadata_sm;
	ref_plain(c, r->bitmap_root);
	unsigned char *buf = tm_block_alloc(1);
	struct dmr_err e = { 0 };
	if (!buf) {
		c->oom = 1;
		return;
	}
	if (r->bitmap_root > 0 && r->bitmap_root < c->nmeta && tm_blocksrc_read(c->p->bs, r->bitmap_root, buf, &e) == 0 &&
	    tm_block_csum_ok(buf, TM_SALT_INDEX) && tm_le64(buf + 8) == r->bitmap_root) {
		uint64_t nb = (r->nr_blocks + TM_ENTRIES_PER_BITMAP - 1) / TM_ENTRIES_PER_BITMAP;
		for (uint64_t i = 0; i < nb && i < TM_MAX_METADATA_BITMAPS; i++)
			ref_plain(c, tm_le64(buf + 16 + 16 * i));
	}
	/* An unreadable index is reported when the space map is loaded. */
	free(buf);
}

static void check_devices(struct checker *c, const struct tm_superblock *sb, const char *which)
{
	struct tm_devlist devs = { 0 };
	struct dmr_err e = { 0 };
	/* Damage was reported by the walk; only the joined lists matter here. */
	if (tm_devices_read(c->p, sb, &devs, NULL, NULL, &e)) {
		if (e.code == DMR_ENOMEM)
			c->oom = 1;
		return;
	}
	c->st->devices += devs.n;
	for (size_t i = 0; i < devs.n; i++) {
		const struct tm_device *d = &devs.dev[i];
		if (!d->in_details && !lost_with_damage(c, K_DETAILS, d->dev_id))
			finding(c, TM_SEV_FATAL, TM_CHK_DEVICE_NO_DETAILS, UINT64_MAX, (int64_t)d->dev_id,
				"%sdevice %llu has a mapping tree but no details", which, (unsigned long long)d->dev_id);
		if (!d->in_mapping) {
			if (!lost_with_damage(c, K_TOP, d->dev_id))
				finding(c, TM_SEV_FATAL, TM_CHK_DEVICE_NO_MAPPING, UINT64_MAX, (int64_t)d->dev_id,
				"%sdevice %llu has details but no mapping tree", which, (unsigned long long)d->dev_id);
			continue;
		}
		uint64_t root = d->mapping_root;
		if (!d->in_details || root == 0 || root >= c->nmeta || c->damaged[root] ||
		    !(c->seen[root / 8] & (1u << (root % 8))))
			continue; /* damage already says what is lost */
		if (c->ncount[root] != d->mapped_blocks)
			finding(c, TM_SEV_FATAL, TM_CHK_MAPPED_BLOCKS, root, (int64_t)d->dev_id,
				"%sdevice %llu: details say %llu mapped blocks, its tree holds %llu mappings", which,
				(unsigned long long)d->dev_id, (unsigned long long)d->mapped_blocks,
				(unsigned long long)c->ncount[root]);
	}
	tm_devlist_free(&devs);
}

static void check_data_file(struct checker *c)
{
	const char *path = c->opts->data_path;
	struct stat sb;
	if (!path)
		return;
	if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
		return; /* a block device's size is the volume manager's business */
	uint64_t bs = (uint64_t)c->p->sb.data_block_size * 512u;
	uint64_t want = c->p->sb.data_sm.nr_blocks * bs;
	if ((uint64_t)sb.st_size >= want)
		return;
	uint64_t first_lost = (uint64_t)sb.st_size / bs, mapped_beyond = 0;
	for (uint64_t b = first_lost; b < c->p->sb.data_sm.nr_blocks; b++)
		mapped_beyond += dcount_get(&c->data, b) > 0;
	finding(c, mapped_beyond ? TM_SEV_FATAL : TM_SEV_WARNING, TM_CHK_DATA_SIZE, UINT64_MAX, -1,
		"%s holds %llu bytes, the pool has %llu blocks of %llu bytes (%llu bytes)%s%llu mapped blocks beyond its end",
		path, (unsigned long long)sb.st_size, (unsigned long long)c->p->sb.data_sm.nr_blocks,
		(unsigned long long)bs, (unsigned long long)want, mapped_beyond ? ": " : "; ",
		(unsigned long long)mapped_beyond);
}

int tm_check_pool(struct tm_pool *p, const struct tm_check_opts *opts, tm_finding_fn fn, void *ctx,
		  struct tm_check_stats *stats, struct dmr_err *err)
{
	static const struct tm_check_opts defaults = { 0 };
	struct checker c = { .p = p, .opts = opts ? opts : &defaults, .fn = fn, .ctx = ctx, .st = stats };
	struct queue q = { 0 };
	struct tm_space_map dsm = { 0 }, msm = { 0 };
	struct smdmg ddmg = { .c = &c }, mdmg = { .c = &c, .which = 1 };
	int r = 0;
	memset(stats, 0, sizeof(*stats));
	c.nmeta = p->limit;
	c.mref = calloc(c.nmeta + 1, sizeof(*c.mref));
	c.seen = calloc(c.nmeta / 8 + 1, 1);
	c.damaged = calloc(c.nmeta + 1, 1);
	c.ncount = calloc(c.nmeta + 1, sizeof(*c.ncount));
	c.data.nr_blocks = p->sb.data_sm.nr_blocks;
	c.data.nr_chunks = (c.data.nr_blocks + DCHUNK - 1) / DCHUNK;
	c.data.chunk = calloc(c.data.nr_chunks + 1, sizeof(*c.data.chunk));
	if (!c.mref || !c.seen || !c.damaged || !c.ncount || !c.data.chunk) {
		r = DMR_ENOMEM;
		goto out;
	}

	const struct tm_superblock *sb = &p->sb;
	c.mref[0] = 1; /* the superblock */
	stats->meta_blocks_checked = 1;
	if (sb->flags & TM_SB_FLAG_NEEDS_CHECK)
		finding(&c, TM_SEV_WARNING, TM_CHK_NEEDS_CHECK, 0, -1,
			"block 0: the needs_check flag is set: the kernel saw a metadata error and keeps the pool read-only");
	if (p->file_blocks < sb->metadata_sm.nr_blocks)
		finding(&c, TM_SEV_FATAL, TM_CHK_METADATA_SIZE, UINT64_MAX, -1,
			"the metadata space map covers %llu blocks but the file holds %llu: it was cut short, "
			"and the kernel refuses such a pool", (unsigned long long)sb->metadata_sm.nr_blocks,
			(unsigned long long)p->file_blocks);
	else if (p->file_blocks > sb->metadata_sm.nr_blocks && sb->metadata_sm.nr_blocks < TM_MAX_METADATA_BLOCKS)
		finding(&c, TM_SEV_INFO, TM_CHK_METADATA_SIZE, UINT64_MAX, -1,
			"the metadata file has %llu blocks, the space map covers %llu (the kernel grows it at the next activation)",
			(unsigned long long)p->file_blocks, (unsigned long long)sb->metadata_sm.nr_blocks);

	ref_metadata_sm(&c);
	struct qent roots[] = {
		{ .block = sb->metadata_sm.ref_count_root, .hi = UINT64_MAX, .dev = -1, .kind = K_META_REF, .is_root = 1 },
		{ .block = sb->data_sm.bitmap_root, .hi = UINT64_MAX, .dev = -1, .kind = K_DATA_INDEX, .is_root = 1 },
		{ .block = sb->data_sm.ref_count_root, .hi = UINT64_MAX, .dev = -1, .kind = K_DATA_REF, .is_root = 1 },
		{ .block = sb->device_details_root, .hi = UINT64_MAX, .dev = -1, .kind = K_DETAILS, .is_root = 1 },
		{ .block = sb->data_mapping_root, .hi = UINT64_MAX, .dev = -1, .kind = K_TOP, .is_root = 1 },
	};
	for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++)
		ref_node(&c, &q, roots[i]);
	struct tm_superblock snap;
	int have_snap = 0;
	if (sb->held_root) {
		struct dmr_err se = { 0 };
		ref_plain(&c, sb->held_root);
		if (tm_pool_read_snapshot(p, 0, &snap, &se) == 0) {
			have_snap = 1;
			stats->meta_blocks_checked++;
			struct qent sroots[] = {
				{ .block = snap.device_details_root, .hi = UINT64_MAX, .dev = -1, .kind = K_DETAILS, .is_root = 1 },
				{ .block = snap.data_mapping_root, .hi = UINT64_MAX, .dev = -1, .kind = K_TOP, .is_root = 1 },
			};
			for (size_t i = 0; i < 2; i++)
				ref_node(&c, &q, sroots[i]);
		} else {
			finding(&c, TM_SEV_FATAL, TM_CHK_SNAPSHOT, sb->held_root, -1, "%s", se.msg);
		}
	}
	if (c.oom || (r = walk(&c, &q, err)))
		goto out;
	sum_counts(&c);
	check_devices(&c, sb, "");
	if (have_snap)
		check_devices(&c, &snap, "metadata snapshot: ");

	/* The space maps, against what the trees refer to. */
	r = tm_sm_read(p, 1, &msm, sm_damage, &mdmg, err);
	if (r)
		goto out;
	/* Its index block (in range: the superblock was validated) and bitmaps. */
	stats->meta_blocks_checked++;
	for (uint64_t b = 0; b < msm.nr_bitmaps && b < TM_MAX_METADATA_BITMAPS; b++)
		stats->meta_blocks_checked++;
	compare_counts(&c, &msm, &mdmg, 1);
	r = tm_sm_read(p, 0, &dsm, sm_damage, &ddmg, err);
	if (r)
		goto out;
	stats->meta_blocks_checked += dsm.nr_bitmaps;
	if (!c.opts->skip_data_counts)
		compare_counts(&c, &dsm, &ddmg, 0);
	check_data_file(&c);
	flush_summaries(&c);
	if (c.oom)
		r = DMR_ENOMEM;
out:
	if (r == DMR_ENOMEM)
		dmr_err_set(err, r, "%s: out of memory checking the pool", p->path);
	tm_sm_free(&dsm);
	tm_sm_free(&msm);
	free(ddmg.ranges);
	free(mdmg.ranges);
	free(q.e);
	free(c.mref);
	free(c.seen);
	free(c.damaged);
	free(c.ncount);
	if (c.data.chunk)
		for (uint64_t i = 0; i < c.data.nr_chunks; i++)
			free(c.data.chunk[i]);
	free(c.data.chunk);
	free(c.data.big);
	free(c.inodes);
	free(c.lost);
	free(c.ichild);
	free(c.ichild_start);
	return r;
}
