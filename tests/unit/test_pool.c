/* Opening a pool, reading its devices, walking mappings with coalescing. */
#include "unit.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "builder.h"
#include "thinmeta/pool.h"

#define OPEN UINT64_MAX

struct tmpfile {
	char path[4096];
};

static struct tm_pool *open_pool(const struct bld *b, struct tmpfile *t)
{
	bld_write_tmp(b, t->path);
	struct tm_pool *p = NULL;
	struct dmr_err err;
	int r = tm_pool_open(&p, t->path, 0, &err);
	if (r)
		fail_msg("tm_pool_open: %s", err.msg);
	return p;
}

static void close_pool(struct tm_pool *p, struct tmpfile *t)
{
	tm_pool_close(p);
	unlink(t->path);
}

/* ---- open ---- */

static void test_open(void **state)
{
	(void)state;
	struct bld b;
	bld_standard(&b);
	struct tmpfile t;
	struct tm_pool *p = open_pool(&b, &t);
	assert_string_equal(p->path, t.path);
	assert_int_equal(p->file_blocks, 32);
	assert_int_equal(p->limit, 32);
	assert_int_equal(p->sb.data_mapping_root, b.top_root);
	assert_int_equal(p->sb.device_details_root, b.details_root);
	assert_int_equal(p->sb.data_sm.nr_blocks, 1024);
	assert_int_equal(p->sb.time, 1);
	close_pool(p, &t);

	/* A file longer than the metadata space map: the map limits. */
	struct bld big;
	bld_init(&big, 40, 1024);
	bld_device(&big, 1, NULL, 0, 0, 0);
	bld_finish(&big);
	struct tm_disk_superblock d;
	bld_sb_get(&big, 0, &d);
	struct tm_disk_sm_root m;
	bld_sm_root_get(d.metadata_space_map_root, &m);
	m.nr_blocks = 30;
	m.nr_allocated = 10;
	bld_sm_root_put(d.metadata_space_map_root, &m);
	bld_sb_put(&big, 0, &d);
	p = open_pool(&big, &t);
	assert_int_equal(p->file_blocks, 40);
	assert_int_equal(p->limit, 30);
	close_pool(p, &t);
	bld_free(&big);
	bld_free(&b);
}

static void test_open_errors(void **state)
{
	(void)state;
	struct tm_pool *p = NULL;
	struct dmr_err err;
	struct bld b;
	bld_standard(&b);
	struct tmpfile t;

	/* Missing file. */
	int r = tm_pool_open(&p, "/nonexistent/dir/metadata", 0, &err);
	assert_int_equal(r, DMR_EIO);
	assert_contains(err.msg, "/nonexistent/dir/metadata");

	/* Empty file. */
	bld_write_tmp_n(&b, 0, t.path);
	r = tm_pool_open(&p, t.path, 0, &err);
	assert_int_equal(r, DMR_ECORRUPT);
	assert_contains(err.msg, t.path);
	unlink(t.path);

	/* Truncated: the space map claims 32 blocks, the file holds 20. */
	bld_write_tmp_n(&b, 20, t.path);
	r = tm_pool_open(&p, t.path, 0, &err);
	assert_int_equal(r, DMR_ECORRUPT);
	assert_contains(err.msg, t.path);
	assert_contains(err.msg, "truncated");
	unlink(t.path);

	/* Not metadata at all. */
	memset(bld_block(&b, 0), 0, TM_BLOCK_SIZE);
	bld_write_tmp(&b, t.path);
	r = tm_pool_open(&p, t.path, 0, &err);
	assert_int_equal(r, DMR_ECORRUPT);
	assert_contains(err.msg, t.path);
	assert_contains(err.msg, "block 0");
	unlink(t.path);
	bld_free(&b);
}

/* ---- devices ---- */

struct dmg_log {
	char tree[16][64];
	struct tm_damage d[16];
	size_t n;
};

static void log_damage(void *ctx, const char *tree, const struct tm_damage *d)
{
	struct dmg_log *l = ctx;
	if (l->n < 16) {
		snprintf(l->tree[l->n], sizeof(l->tree[0]), "%s", tree);
		l->d[l->n] = *d;
	}
	l->n++;
}

static void test_devices(void **state)
{
	(void)state;
	struct bld b;
	bld_init(&b, 32, 1024);
	b.time = 4;
	b.trans_id = 9;
	static const struct bld_map m1[] = { { 0, 1, 0 }, { 1, 2, 0 } };
	static const struct bld_map m3[] = { { 7, 3, 1 } };
	static const struct bld_map m7[] = { { 0, 4, 2 }, { 9, 5, 2 }, { 10, 6, 4 } };
	size_t i7 = bld_device(&b, 7, m7, 3, 0, 0);
	b.dev[i7].details.mapped_blocks = 99; /* a lie the reader must pass on */
	b.dev[i7].details.transaction_id = 5;
	b.dev[i7].details.creation_time = 2;
	b.dev[i7].details.snapshotted_time = 3;
	bld_device(&b, 1, m1, 2, 0, 0);
	bld_device(&b, 2, NULL, 0, 0, BLD_NO_MAPPING);
	bld_device(&b, 3, m3, 1, 0, BLD_NO_DETAILS);
	bld_finish(&b);
	struct tmpfile t;
	struct tm_pool *p = open_pool(&b, &t);
	struct tm_devlist l;
	struct dmg_log log = { 0 };
	struct dmr_err err;
	assert_int_equal(tm_devices_read(p, &p->sb, &l, log_damage, &log, &err), 0);
	assert_int_equal(log.n, 0);
	assert_int_equal(l.n, 4);
	static const uint64_t ids[] = { 1, 2, 3, 7 };
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(l.dev[i].dev_id, ids[i]);

	const struct tm_device *d = tm_devlist_find(&l, 1);
	assert_non_null(d);
	assert_true(d->in_details);
	assert_true(d->in_mapping);
	assert_int_equal(d->mapped_blocks, 2);
	assert_int_equal(d->transaction_id, 9);
	assert_int_equal(d->creation_time, 4);
	assert_int_equal(d->snapshotted_time, 4);
	assert_int_equal(d->mapping_root, b.dev[0].root);

	d = tm_devlist_find(&l, 2);
	assert_non_null(d);
	assert_true(d->in_details);
	assert_false(d->in_mapping);

	d = tm_devlist_find(&l, 3);
	assert_non_null(d);
	assert_false(d->in_details);
	assert_true(d->in_mapping);
	assert_int_equal(d->mapping_root, b.dev[2].root);
	assert_int_equal(d->mapped_blocks, 0);

	d = tm_devlist_find(&l, 7);
	assert_non_null(d);
	assert_true(d->in_details && d->in_mapping);
	assert_int_equal(d->mapped_blocks, 99);
	assert_int_equal(d->transaction_id, 5);
	assert_int_equal(d->creation_time, 2);
	assert_int_equal(d->snapshotted_time, 3);
	assert_int_equal(d->mapping_root, b.dev[3].root);

	assert_null(tm_devlist_find(&l, 0));
	assert_null(tm_devlist_find(&l, 4));
	assert_null(tm_devlist_find(&l, 8));
	tm_devlist_free(&l);
	assert_null(l.dev);
	assert_int_equal(l.n, 0);
	close_pool(p, &t);

	/* A damaged details root: its devices are lost, the top level's stay. */
	bld_block(&b, b.details_root)[200] ^= 1;
	p = open_pool(&b, &t);
	memset(&log, 0, sizeof(log));
	assert_int_equal(tm_devices_read(p, &p->sb, &l, log_damage, &log, &err), 0);
	assert_int_equal(log.n, 1);
	assert_string_equal(log.tree[0], "device details");
	assert_int_equal(log.d[0].lo, 0);
	assert_int_equal(log.d[0].hi, OPEN);
	assert_int_equal(log.d[0].block, b.details_root);
	assert_int_equal(l.n, 3);
	for (size_t i = 0; i < l.n; i++) {
		assert_false(l.dev[i].in_details);
		assert_true(l.dev[i].in_mapping);
	}
	tm_devlist_free(&l);
	close_pool(p, &t);

	/* A damaged top level instead: only the details tree's devices. */
	bld_block(&b, b.details_root)[200] ^= 1;
	bld_block(&b, b.top_root)[300] ^= 1;
	p = open_pool(&b, &t);
	memset(&log, 0, sizeof(log));
	assert_int_equal(tm_devices_read(p, &p->sb, &l, log_damage, &log, &err), 0);
	assert_int_equal(log.n, 1);
	assert_string_equal(log.tree[0], "mapping top level");
	assert_int_equal(log.d[0].block, b.top_root);
	assert_int_equal(l.n, 3);
	for (size_t i = 0; i < l.n; i++) {
		assert_true(l.dev[i].in_details);
		assert_false(l.dev[i].in_mapping);
	}
	assert_non_null(tm_devlist_find(&l, 2));
	assert_null(tm_devlist_find(&l, 3));
	tm_devlist_free(&l);
	close_pool(p, &t);
	bld_free(&b);
}

static void test_devices_many(void **state)
{
	(void)state;
	/* 200 devices: the details tree needs two leaves (126 a leaf) and an
	 * internal root. Odd ids in the details tree only below 100, even ids
	 * in the top level only above 100. */
	struct bld b;
	bld_init(&b, 256, 1024);
	size_t want_both = 0;
	for (uint64_t id = 0; id < 200; id++) {
		unsigned flags = 0;
		if (id < 100 && id % 2)
			flags = BLD_NO_MAPPING;
		else if (id >= 100 && id % 2 == 0)
			flags = BLD_NO_DETAILS;
		else
			want_both++;
		bld_device(&b, id * 1000 + 5, NULL, 0, 0, flags);
	}
	bld_finish(&b);
	struct tmpfile t;
	struct tm_pool *p = open_pool(&b, &t);
	struct tm_devlist l;
	struct dmr_err err;
	struct dmg_log log = { 0 };
	assert_int_equal(tm_devices_read(p, &p->sb, &l, log_damage, &log, &err), 0);
	assert_int_equal(log.n, 0);
	assert_int_equal(l.n, 200);
	size_t both = 0;
	for (size_t i = 0; i < l.n; i++) {
		uint64_t id = (l.dev[i].dev_id - 5) / 1000;
		assert_int_equal(l.dev[i].dev_id, id * 1000 + 5);
		assert_int_equal(id, i);
		assert_int_equal(l.dev[i].in_details, !(id >= 100 && id % 2 == 0));
		assert_int_equal(l.dev[i].in_mapping, !(id < 100 && id % 2));
		both += l.dev[i].in_details && l.dev[i].in_mapping;
		assert_ptr_equal(tm_devlist_find(&l, l.dev[i].dev_id), &l.dev[i]);
	}
	assert_int_equal(both, want_both);
	tm_devlist_free(&l);
	close_pool(p, &t);
	bld_free(&b);
}

/* ---- mappings ---- */

struct runlog {
	struct {
		size_t dev;
		struct tm_run run;
	} r[2048];
	size_t n;
	struct tm_damage dmg[64];
	size_t dmg_dev[64];
	size_t nd;
	size_t nodes;
	size_t stop_after;
};

static int log_run(void *ctx, size_t dev, const struct tm_run *run)
{
	struct runlog *l = ctx;
	assert_true(l->n < 2048);
	l->r[l->n].dev = dev;
	l->r[l->n].run = *run;
	l->n++;
	return l->stop_after && l->n >= l->stop_after ? -7 : 0;
}

static void log_node(void *ctx, size_t dev, const struct tm_node *node, int depth)
{
	struct runlog *l = ctx;
	l->nodes++;
}

static void log_map_damage(void *ctx, size_t dev, const struct tm_damage *d)
{
	struct runlog *l = ctx;
	assert_true(l->nd < 64);
	l->dmg_dev[l->nd] = dev;
	l->dmg[l->nd++] = *d;
}

/* mode: 0 ordered, 1 unordered, 2 ordered and aligned. */
static int walk_maps(struct tm_pool *p, const uint64_t *roots, size_t n, int mode, struct runlog *l)
{
	struct tm_mapping_visitor v = {
		.unordered = mode == 1, .aligned = mode == 2, .run = log_run, .node = log_node, .damage = log_map_damage, .ctx = l,
	};
	struct dmr_err err;
	return tm_mappings_walk(p, roots, n, p->sb.data_sm.nr_blocks, &v, &err);
}

/* Device 1's mappings (see test_mappings_coalesce). */
static size_t dev1_maps(struct bld_map *m)
{
	size_t n = 0;
	for (uint64_t v = 0; v < 10; v++)
		m[n++] = (struct bld_map){ v, 100 + v, 0 };
	for (uint64_t v = 10; v < 15; v++)
		m[n++] = (struct bld_map){ v, 100 + v, 1 };
	m[n++] = (struct bld_map){ 15, 200, 1 };
	m[n++] = (struct bld_map){ 17, 201, 1 };
	m[n++] = (struct bld_map){ 18, 202, 1 };
	for (uint64_t v = 100; v < 400; v++)
		m[n++] = (struct bld_map){ v, v + 200, 2 };
	m[n++] = (struct bld_map){ 400, 1022, 2 };
	m[n++] = (struct bld_map){ 401, 1023, 2 };
	m[n++] = (struct bld_map){ 402, 1024, 2 };  /* beyond the pool */
	m[n++] = (struct bld_map){ 403, 5000, 2 };  /* beyond the pool */
	m[n++] = (struct bld_map){ 404, 0, 3 };
	return n;
}

static const struct tm_run dev1_runs[] = {
	{ 0, 100, 10, 0 },   /* time 0 */
	{ 10, 110, 5, 1 },   /* same data run, new time */
	{ 15, 200, 1, 1 },   /* data jump */
	{ 17, 201, 2, 1 },   /* virtual gap (data contiguous) */
	{ 100, 300, 300, 2 },/* across three leaves */
	{ 400, 1022, 2, 2 },
	{ 404, 0, 1, 3 },
};
#define NR_DEV1_RUNS (sizeof(dev1_runs) / sizeof(dev1_runs[0]))

static void build_map_pool(struct bld *b, size_t *n1)
{
	static struct bld_map m[400];
	bld_init(b, 64, 1024);
	b->time = 3;
	*n1 = dev1_maps(m);
	bld_device(b, 1, m, *n1, 126, 0);           /* 3 leaves + root */
	static const struct bld_map m6[] = { { 405, 1, 3 }, { 406, 2, 3 } };
	bld_device(b, 6, m6, 2, 1, 0);              /* 2 leaves + root */
	static const struct bld_map m9[] = { { 0, 50, 3 }, { 1, 51, 3 } };
	bld_device(b, 9, m9, 2, 0, 0);              /* a lone leaf */
	bld_finish(b);
}

static void assert_run(const struct tm_run *got, const struct tm_run *want)
{
	if (got->vbegin != want->vbegin || got->dbegin != want->dbegin || got->len != want->len ||
	    got->time != want->time)
		fail_msg("run v%llu d%llu len %llu t%u, expected v%llu d%llu len %llu t%u",
			 (unsigned long long)got->vbegin, (unsigned long long)got->dbegin,
			 (unsigned long long)got->len, got->time, (unsigned long long)want->vbegin,
			 (unsigned long long)want->dbegin, (unsigned long long)want->len, want->time);
}

static void test_mappings_coalesce(void **state)
{
	(void)state;
	struct bld b;
	size_t n1;
	build_map_pool(&b, &n1);
	struct tmpfile t;
	struct tm_pool *p = open_pool(&b, &t);
	uint64_t root1 = b.dev[0].root;
	struct runlog *l = calloc(1, sizeof(*l));
	assert_non_null(l);

	assert_int_equal(walk_maps(p, &root1, 1, 0, l), 0);
	assert_int_equal(l->n, NR_DEV1_RUNS);
	for (size_t i = 0; i < NR_DEV1_RUNS; i++) {
		assert_int_equal(l->r[i].dev, 0);
		assert_run(&l->r[i].run, &dev1_runs[i]);
	}
	assert_int_equal(l->nodes, 4);
	/* Mappings beyond nr_data_blocks: damage, one virtual block each. */
	assert_int_equal(l->nd, 2);
	assert_int_equal(l->dmg_dev[0], 0);
	assert_int_equal(l->dmg[0].lo, 402);
	assert_int_equal(l->dmg[0].hi, 403);
	assert_contains(l->dmg[0].reason, "1024");
	assert_int_equal(l->dmg[1].lo, 403);
	assert_int_equal(l->dmg[1].hi, 404);
	assert_contains(l->dmg[1].reason, "5000");
	free(l);
	close_pool(p, &t);
	bld_free(&b);
}

/* Expands runs into (v, d, t) triples, sorted by v, for comparison. */
struct vdt {
	uint64_t v, d;
	uint32_t t;
	size_t dev;
};

static int cmp_vdt(const void *x, const void *y)
{
	const struct vdt *a = x, *b = y;
	if (a->dev != b->dev)
		return a->dev < b->dev ? -1 : 1;
	return a->v < b->v ? -1 : a->v > b->v;
}

static size_t expand(const struct runlog *l, struct vdt *out)
{
	size_t n = 0;
	for (size_t i = 0; i < l->n; i++)
		for (uint64_t k = 0; k < l->r[i].run.len; k++)
			out[n++] = (struct vdt){ l->r[i].run.vbegin + k, l->r[i].run.dbegin + k, l->r[i].run.time,
						 l->r[i].dev };
	qsort(out, n, sizeof(*out), cmp_vdt);
	return n;
}

static void test_mappings_unordered(void **state)
{
	(void)state;
	struct bld b;
	size_t n1;
	build_map_pool(&b, &n1);
	struct tmpfile t;
	struct tm_pool *p = open_pool(&b, &t);
	uint64_t roots[3] = { b.dev[0].root, b.dev[1].root, b.dev[2].root };
	struct runlog *lo = calloc(1, sizeof(*lo)), *lu = calloc(1, sizeof(*lu));
	assert_non_null(lo);
	assert_non_null(lu);
	assert_int_equal(walk_maps(p, roots, 3, 0, lo), 0);
	assert_int_equal(walk_maps(p, roots, 3, 1, lu), 0);
	struct vdt *eo = calloc(1000, sizeof(*eo)), *eu = calloc(1000, sizeof(*eu));
	assert_non_null(eo);
	assert_non_null(eu);
	size_t no = expand(lo, eo), nu = expand(lu, eu);
	assert_int_equal(no, n1 - 2 + 2 + 2);
	assert_int_equal(nu, no);
	for (size_t i = 0; i < no; i++) {
		assert_int_equal(eu[i].v, eo[i].v);
		assert_int_equal(eu[i].d, eo[i].d);
		assert_int_equal(eu[i].t, eo[i].t);
		assert_int_equal(eu[i].dev, eo[i].dev);
	}
	/* Unordered runs are still maximal within a leaf and never longer
	 * than the ordered ones. */
	assert_true(lu->n >= lo->n);
	assert_int_equal(lu->nd, 2);
	assert_int_equal(lu->nodes, lo->nodes);
	free(eo);
	free(eu);
	free(lo);
	free(lu);
	close_pool(p, &t);
	bld_free(&b);
}

static void test_mappings_multi_device(void **state)
{
	(void)state;
	struct bld b;
	size_t n1;
	build_map_pool(&b, &n1);
	struct tmpfile t;
	struct tm_pool *p = open_pool(&b, &t);
	/* Device 6 continues device 1's last run exactly (v 405 -> d 1, time
	 * 3): runs must not join across devices. */
	uint64_t roots[3] = { b.dev[0].root, b.dev[1].root, b.dev[2].root };
	struct runlog *l = calloc(1, sizeof(*l));
	assert_non_null(l);
	assert_int_equal(walk_maps(p, roots, 3, 0, l), 0);
	size_t per[3] = { 0 };
	int switched[3] = { 0 };
	for (size_t i = 0; i < l->n; i++) {
		size_t d = l->r[i].dev;
		assert_true(d < 3);
		per[d]++;
		/* Each device's runs come together. */
		if (i > 0 && l->r[i - 1].dev != d) {
			assert_false(switched[d]);
			switched[d] = 1;
		}
		if (i == 0)
			switched[d] = 1;
	}
	assert_int_equal(per[0], NR_DEV1_RUNS);
	assert_int_equal(per[1], 1);
	assert_int_equal(per[2], 1);
	for (size_t i = 0; i < l->n; i++) {
		if (l->r[i].dev == 1) {
			struct tm_run want = { 405, 1, 2, 3 }; /* coalesced across its two leaves */
			assert_run(&l->r[i].run, &want);
		} else if (l->r[i].dev == 2) {
			struct tm_run want = { 0, 50, 2, 3 };
			assert_run(&l->r[i].run, &want);
		}
	}
	assert_int_equal(l->nodes, 4 + 3 + 1);
	free(l);

	/* Aligned: the same runs, devices in root order. */
	l = calloc(1, sizeof(*l));
	assert_non_null(l);
	assert_int_equal(walk_maps(p, roots, 3, 2, l), 0);
	assert_int_equal(l->n, NR_DEV1_RUNS + 2);
	for (size_t i = 0; i < NR_DEV1_RUNS; i++) {
		assert_int_equal(l->r[i].dev, 0);
		assert_run(&l->r[i].run, &dev1_runs[i]);
	}
	static const struct tm_run r6 = { 405, 1, 2, 3 }, r9 = { 0, 50, 2, 3 };
	assert_int_equal(l->r[NR_DEV1_RUNS].dev, 1);
	assert_run(&l->r[NR_DEV1_RUNS].run, &r6);
	assert_int_equal(l->r[NR_DEV1_RUNS + 1].dev, 2);
	assert_run(&l->r[NR_DEV1_RUNS + 1].run, &r9);
	assert_int_equal(l->nd, 2);
	assert_int_equal(l->nodes, 4 + 3 + 1);
	free(l);

	/* A run callback that stops the walk. */
	l = calloc(1, sizeof(*l));
	assert_non_null(l);
	l->stop_after = 3;
	assert_int_equal(walk_maps(p, roots, 3, 0, l), -7);
	assert_int_equal(l->n, 3);
	free(l);

	/* A device with no mappings (an empty leaf) gives no runs. */
	close_pool(p, &t);
	bld_free(&b);
	bld_init(&b, 16, 100);
	bld_device(&b, 1, NULL, 0, 0, 0);
	bld_finish(&b);
	p = open_pool(&b, &t);
	l = calloc(1, sizeof(*l));
	assert_non_null(l);
	assert_int_equal(walk_maps(p, &b.dev[0].root, 1, 0, l), 0);
	assert_int_equal(l->n, 0);
	assert_int_equal(l->nd, 0);
	assert_int_equal(l->nodes, 1);
	free(l);
	close_pool(p, &t);
	bld_free(&b);
}

static void test_mappings_damaged_leaf(void **state)
{
	(void)state;
	struct bld b;
	size_t n1;
	build_map_pool(&b, &n1);
	/* Device 1's middle leaf (entries 126..251: virtual 208..333) is bad. */
	uint64_t root = b.dev[0].root;
	struct tm_node n;
	char why[200];
	assert_int_equal(tm_node_check(bld_block(&b, root), root, 8, &n, why, sizeof(why)), 0);
	assert_int_equal(n.nr_entries, 3);
	uint64_t mid = tm_node_value64(&n, 1);
	uint64_t lo = tm_node_key(&n, 1), hi = tm_node_key(&n, 2);
	bld_block(&b, mid)[64] ^= 1;
	struct tmpfile t;
	struct tm_pool *p = open_pool(&b, &t);
	struct runlog *l = calloc(1, sizeof(*l));
	assert_non_null(l);
	assert_int_equal(walk_maps(p, &root, 1, 0, l), 0);
	assert_int_equal(l->nd, 3);
	assert_int_equal(l->dmg[0].lo, lo);
	assert_int_equal(l->dmg[0].hi, hi);
	assert_int_equal(l->dmg[0].block, mid);
	assert_contains(l->dmg[0].reason, "checksum");
	/* The long run is cut around the hole: [100, lo) and [hi, 400). */
	uint64_t covered = 0;
	for (size_t i = 0; i < l->n; i++) {
		const struct tm_run *r = &l->r[i].run;
		assert_true(r->vbegin + r->len <= lo || r->vbegin >= hi);
		covered += r->len;
	}
	assert_int_equal(covered, (n1 - 2) - (hi - lo));
	free(l);
	close_pool(p, &t);
	bld_free(&b);
}

/* ---- metadata snapshot ---- */

static void test_snapshot(void **state)
{
	(void)state;
	struct bld b;
	bld_standard(&b);
	struct tmpfile t;
	struct tm_pool *p = open_pool(&b, &t);
	struct tm_superblock snap;
	struct dmr_err err;
	assert_int_equal(tm_pool_read_snapshot(p, 0, &snap, &err), DMR_ENOENT);
	assert_int_equal(err.code, DMR_ENOENT);
	assert_contains(err.msg, t.path);
	/* An explicit location that is not a superblock copy. */
	assert_int_equal(tm_pool_read_snapshot(p, b.details_root, &snap, &err), DMR_ECORRUPT);
	assert_int_equal(tm_pool_read_snapshot(p, 32, &snap, &err), DMR_ECORRUPT);
	assert_int_equal(tm_pool_read_snapshot(p, UINT64_MAX, &snap, &err), DMR_ECORRUPT);
	close_pool(p, &t);
	bld_free(&b);

	static const struct bld_map m[] = { { 0, 1, 0 }, { 1, 2, 0 } };
	bld_init(&b, 32, 1024);
	bld_device(&b, 4, m, 2, 0, 0);
	bld_device(&b, 5, m, 1, 0, 0);
	uint64_t held = bld_reserve_snapshot(&b);
	bld_finish(&b);
	p = open_pool(&b, &t);
	assert_int_equal(p->sb.held_root, held);
	assert_int_equal(tm_pool_read_snapshot(p, 0, &snap, &err), 0);
	assert_int_equal(snap.location, held);
	assert_int_equal(snap.data_mapping_root, b.top_root);
	assert_int_equal(snap.device_details_root, b.details_root);
	memset(&snap, 0, sizeof(snap));
	assert_int_equal(tm_pool_read_snapshot(p, held, &snap, &err), 0);
	assert_int_equal(snap.location, held);
	struct tm_devlist l;
	assert_int_equal(tm_devices_read(p, &snap, &l, NULL, NULL, &err), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.dev[0].dev_id, 4);
	assert_int_equal(l.dev[1].dev_id, 5);
	assert_int_equal(l.dev[1].mapped_blocks, 1);
	tm_devlist_free(&l);
	close_pool(p, &t);

	/* A held root that is not a valid copy. */
	bld_block(&b, held)[300] ^= 1;
	p = open_pool(&b, &t);
	assert_int_equal(tm_pool_read_snapshot(p, 0, &snap, &err), DMR_ECORRUPT);
	assert_contains(err.msg, "checksum");
	close_pool(p, &t);
	bld_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_devices),
		cmocka_unit_test(test_devices_many),
		cmocka_unit_test(test_mappings_coalesce),
		cmocka_unit_test(test_mappings_unordered),
		cmocka_unit_test(test_mappings_multi_device),
		cmocka_unit_test(test_mappings_damaged_leaf),
		cmocka_unit_test(test_snapshot),
	};
	if (!unit_tmpdir_usable())
		return UNIT_SKIP;
	return cmocka_run_group_tests_name("pool", tests, NULL, unit_tmp_cleanup);
}
