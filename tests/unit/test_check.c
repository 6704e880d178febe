/* The pool checker (tm_check_pool): pools built with exact reference
 * counts, then damaged or miscounted one way at a time; every finding's
 * code, severity, block, device and key facts, and the stats. */
#include "unit.h"

#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#include "builder.h"
#include "thinmeta/check.h"
#include "thinmeta/pool.h"

#define NOBLOCK UINT64_MAX
#define NODEV ((int64_t)-1)
#define MAXF 128

/* ---- collecting findings ---- */

struct found {
	struct tm_finding f[MAXF];
	size_t n;
	struct tm_check_stats st;
};

static void collect(void *ctx, const struct tm_finding *f)
{
	struct found *l = ctx;
	if (l->n < MAXF)
		l->f[l->n] = *f;
	l->n++;
}

static const char *sev_name(enum tm_severity s)
{
	return s == TM_SEV_FATAL ? "fatal" : s == TM_SEV_WARNING ? "warning" : "info";
}

static void dump(const struct found *l)
{
	for (size_t i = 0; i < l->n && i < MAXF; i++) {
		const struct tm_finding *f = &l->f[i];
		print_message("finding %zu: %s %s block %lld dev %lld: %s\n", i, sev_name(f->severity), f->code,
			      f->block == NOBLOCK ? -1LL : (long long)f->block, (long long)f->dev_id, f->msg);
	}
	print_message("stats: %llu metadata blocks, %llu nodes, %llu mappings, %llu devices; %lu/%lu/%lu\n",
		      (unsigned long long)l->st.meta_blocks_checked, (unsigned long long)l->st.nodes,
		      (unsigned long long)l->st.mappings, (unsigned long long)l->st.devices, l->st.findings[0],
		      l->st.findings[1], l->st.findings[2]);
}

/* Writes the first nr_blocks blocks of b to a temp file, opens it as the
 * check command does and checks it. */
static void check_full(struct bld *b, uint64_t nr_blocks, const struct tm_check_opts *opts, struct found *out)
{
	char path[4096];
	bld_write_tmp_n(b, nr_blocks, path);
	struct tm_pool *p = NULL;
	struct dmr_err err = { 0 };
	if (tm_pool_open(&p, path, TM_POOL_ALLOW_SHORT, &err))
		fail_msg("tm_pool_open: %s", err.msg);
	memset(out, 0, sizeof(*out));
	memset(&out->st, 0xa5, sizeof(out->st)); /* tm_check_pool zeroes it */
	int r = tm_check_pool(p, opts, collect, out, &out->st, &err);
	tm_pool_close(p);
	unlink(path);
	if (r)
		fail_msg("tm_check_pool: %d %s", r, err.msg);
	if (out->n > MAXF) {
		dump(out);
		fail_msg("%zu findings, more than the test keeps", out->n);
	}
}

static void check_opts(struct bld *b, const struct tm_check_opts *opts, struct found *out)
{
	check_full(b, b->nr_blocks, opts, out);
}

static void check(struct bld *b, struct found *out)
{
	check_full(b, b->nr_blocks, NULL, out);
}

static void check_n(struct bld *b, uint64_t nr_blocks, struct found *out)
{
	check_full(b, nr_blocks, NULL, out);
}

/* Number of findings with code. */
static size_t count_code(const struct found *l, const char *code)
{
	size_t n = 0;
	for (size_t i = 0; i < l->n; i++)
		n += strcmp(l->f[i].code, code) == 0;
	return n;
}

/* Words of a finding's message, NULL-terminated. */
#define END ((const char *)NULL)

static int has_words(const char *msg, va_list ap)
{
	va_list aq;
	va_copy(aq, ap);
	int ok = 1;
	for (const char *w; ok && (w = va_arg(aq, const char *));)
		ok = strstr(msg, w) != NULL;
	va_end(aq);
	return ok;
}

/* The finding with code, block and dev_id whose message holds every word
 * (the list ends with END); fails the test unless there is exactly one,
 * or it has not severity sev. */
static const struct tm_finding *expect(const struct found *l, const char *code, enum tm_severity sev, uint64_t block,
				       int64_t dev, ...)
{
	const struct tm_finding *hit = NULL;
	size_t nhits = 0;
	va_list ap;
	va_start(ap, dev);
	for (size_t i = 0; i < l->n; i++) {
		const struct tm_finding *f = &l->f[i];
		if (strcmp(f->code, code) == 0 && f->block == block && f->dev_id == dev && has_words(f->msg, ap)) {
			hit = f;
			nhits++;
		}
	}
	if (nhits != 1) {
		dump(l);
		print_message("wanted words:");
		for (const char *w; (w = va_arg(ap, const char *));)
			print_message(" \"%s\"", w);
		print_message("\n");
		va_end(ap);
		fail_msg("%zu findings %s block %lld dev %lld with those words, expected one", nhits, code,
			 block == NOBLOCK ? -1LL : (long long)block, (long long)dev);
	}
	va_end(ap);
	if (hit->severity != sev) {
		dump(l);
		fail_msg("%s: severity %s, expected %s", code, sev_name(hit->severity), sev_name(sev));
	}
	assert_null(strchr(hit->msg, '\n'));
	return hit;
}

/* Fails unless there are exactly n findings. */
static void expect_n(const struct found *l, size_t n)
{
	if (l->n != n) {
		dump(l);
		fail_msg("%zu findings, expected %zu", l->n, n);
	}
}

/* Fails unless the stats count (info, warning, fatal) findings. */
static void expect_sev(const struct found *l, unsigned long info, unsigned long warn, unsigned long fatal)
{
	if (l->st.findings[TM_SEV_INFO] != info || l->st.findings[TM_SEV_WARNING] != warn ||
	    l->st.findings[TM_SEV_FATAL] != fatal) {
		dump(l);
		fail_msg("stats count %lu/%lu/%lu findings, expected %lu/%lu/%lu", l->st.findings[0], l->st.findings[1],
			 l->st.findings[2], info, warn, fatal);
	}
}

static void expect_clean(const struct found *l)
{
	expect_n(l, 0);
	expect_sev(l, 0, 0, 0);
}

/* ---- building pools ---- */

static uint64_t nr_in_use(const struct bld *b)
{
	uint64_t n = 0;
	for (uint64_t i = 0; i < b->nr_blocks; i++)
		n += b->meta_count[i] != 0;
	return n;
}

static struct bld_dev *dev_of(struct bld *b, uint64_t id)
{
	for (size_t i = 0; i < b->nr_devs; i++)
		if (b->dev[i].id == id)
			return &b->dev[i];
	fail_msg("no device %llu", (unsigned long long)id);
	return NULL;
}

/* Flips a byte of block blk without resealing it. */
static void smash(struct bld *b, uint64_t blk)
{
	bld_block(b, blk)[4000] ^= 0x5a;
}

static void meta_count_set(struct bld *b, uint64_t blk, unsigned count)
{
	bld_bitmap_set(b, b->meta_bitmap[blk / TM_ENTRIES_PER_BITMAP], (uint32_t)(blk % TM_ENTRIES_PER_BITMAP), count);
}

static void data_count_set(struct bld *b, uint64_t blk, unsigned count)
{
	bld_bitmap_set(b, b->data_bitmap[blk / TM_ENTRIES_PER_BITMAP], (uint32_t)(blk % TM_ENTRIES_PER_BITMAP), count);
}

/* Device dev of 600 mappings, virtual v -> data 200 + v, in six leaves of
 * 100 under one internal root; 32 metadata blocks, 1024 data blocks. Leaf
 * k is block 4 + k, the root block 10. */
static void build_two_level(struct bld *b, uint64_t dev)
{
	struct bld_map maps[600];
	for (uint64_t i = 0; i < 600; i++)
		maps[i] = (struct bld_map){ .vblock = i, .dblock = 200 + i, .time = 0 };
	bld_init(b, 32, 1024);
	b->time = 1;
	bld_device(b, dev, maps, 600, 100, 0);
	assert_int_equal(b->dev[0].root, 10);
	for (uint64_t k = 0; k < 6; k++)
		assert_int_equal(tm_le64(bld_block(b, 4 + k) + 32), 100 * k);
}

/* ---- clean pools ---- */

static void test_clean_standard(void **state)
{
	(void)state;
	struct bld b;
	bld_standard(&b);
	struct found l;
	check(&b, &l);
	expect_clean(&l);
	/* Device leaf, details, top level, data sm index, two overflow trees. */
	assert_int_equal(l.st.nodes, 6);
	assert_int_equal(l.st.mappings, 4);
	assert_int_equal(l.st.devices, 1);
	/* Every block in use was read and verified. */
	assert_int_equal(nr_in_use(&b), 10);
	assert_int_equal(l.st.meta_blocks_checked, nr_in_use(&b));

	/* Default options and explicit zero options agree. */
	struct tm_check_opts opts = { 0 };
	check_opts(&b, &opts, &l);
	expect_clean(&l);
	bld_free(&b);
}

static void test_clean_two_level(void **state)
{
	(void)state;
	struct bld b;
	build_two_level(&b, 3);
	bld_device(&b, 9, NULL, 0, 0, 0); /* an empty device: one empty leaf */
	bld_finish(&b);
	struct found l;
	check(&b, &l);
	expect_clean(&l);
	/* 6 leaves + root, the empty leaf, and the 5 roots of bld_finish. */
	assert_int_equal(l.st.nodes, 13);
	assert_int_equal(l.st.mappings, 600);
	assert_int_equal(l.st.devices, 2);
	assert_int_equal(l.st.meta_blocks_checked, nr_in_use(&b));
	bld_free(&b);
}

/* Three data bitmaps, two metadata bitmaps, and counts of 3 and more in
 * both maps (their overflow trees): data blocks in five distinct leaves, a
 * leaf shared by four devices. */
static void test_clean_overflow_counts(void **state)
{
	(void)state;
	struct bld b;
	bld_init(&b, 16400, 40000); /* two metadata bitmaps, three data bitmaps */
	b.time = 1;
	/* Five devices with distinct leaves mapping the same data blocks. */
	bld_devs_own_leaves(&b, 1, 5, 16300, 40);
	/* A leaf shared by four devices: metadata count 4 (overflow). */
	uint64_t shared = bld_devs_shared_leaf(&b, 6, 4, 30000, 10);
	bld_finish(&b);
	assert_int_equal(b.data_count[16300], 5);
	assert_int_equal(b.data_count[30000], 1);
	struct found l;
	check(&b, &l);
	expect_clean(&l);
	assert_int_equal(l.st.devices, 9);
	assert_int_equal(l.st.mappings, 5 * 40 + 10);
	assert_int_equal(l.st.meta_blocks_checked, nr_in_use(&b));

	/* The overflow count of the shared leaf one too low. */
	bld_free(&b);
	bld_init(&b, 64, 1024);
	shared = bld_devs_shared_leaf(&b, 1, 4, 100, 10);
	b.meta_count[shared] = 3; /* written: 3; referenced by 4 */
	bld_finish(&b);
	check(&b, &l);
	expect_n(&l, 1);
	expect(&l, TM_CHK_META_UNDERCOUNT, TM_SEV_FATAL, shared, NODEV, "has 4 references but a count of 3", END);
	bld_free(&b);
}

/* ---- sharing ---- */

/* Devices 1 and 2, two-level trees sharing leaf L2 (kernel style: after a
 * snapshot, device 1's root was shadowed and its first leaf rewritten). */
static void build_shared_leaf(struct bld *b, uint64_t *l2)
{
	bld_init(b, 32, 1024);
	b->time = 2;
	uint64_t l1 = bld_leaf(b, 0, 0, 100);
	*l2 = bld_leaf(b, 100, 100, 100);
	uint64_t l3 = bld_leaf(b, 0, 200, 100);
	uint64_t r1[] = { l1, *l2 }, r2[] = { l3, *l2 };
	bld_add_dev(b, 1, bld_inode(b, 2, r1), 200);
	bld_add_dev(b, 2, bld_inode(b, 2, r2), 200);
	b->meta_count[*l2]++; /* two parents */
}

static void test_shared_leaf(void **state)
{
	(void)state;
	struct bld b;
	uint64_t l2;
	build_shared_leaf(&b, &l2);
	bld_finish(&b);
	assert_int_equal(b.meta_count[l2], 2);
	assert_int_equal(b.data_count[150], 1); /* once per distinct leaf */
	struct found l;
	check(&b, &l);
	expect_clean(&l);
	assert_int_equal(l.st.mappings, 300); /* distinct leaves */
	assert_int_equal(l.st.nodes, 5 + 5);
	assert_int_equal(l.st.devices, 2);
	assert_int_equal(l.st.meta_blocks_checked, nr_in_use(&b));

	/* Data counted once per device holding the leaf is too high. */
	bld_free(&b);
	build_shared_leaf(&b, &l2);
	bld_finish(&b);
	for (uint64_t d = 100; d < 200; d++)
		data_count_set(&b, d, 2);
	check(&b, &l);
	expect_n(&l, 1);
	expect(&l, TM_CHK_DATA_OVERCOUNT, TM_SEV_WARNING, NOBLOCK, NODEV,
	       "data blocks 100..199 have 1 references but a count of 2", END);

	/* The leaf counted once while two parents point at it. */
	bld_free(&b);
	build_shared_leaf(&b, &l2);
	bld_finish(&b);
	meta_count_set(&b, l2, 1);
	check(&b, &l);
	expect_n(&l, 1);
	char want[160];
	snprintf(want, sizeof(want), "metadata block %llu has 2 references but a count of 1", (unsigned long long)l2);
	expect(&l, TM_CHK_META_UNDERCOUNT, TM_SEV_FATAL, l2, NODEV, want, END);
	bld_free(&b);
}

/* Devices 1 and 2, three-level trees: both roots point at the internal
 * node S (84 leaves of 84 mappings). Every non-root node holds at least
 * 84 entries, so nothing is underfull. */
static void build_shared_internal(struct bld *b, uint64_t *s)
{
	bld_init(b, 300, 24000);
	b->time = 2;
	const uint32_t per = 84, span = 84 * 84;
	uint64_t a = bld_subtree(b, 0, 0, 84, per);
	*s = bld_subtree(b, span, span, 84, per);
	uint64_t c = bld_subtree(b, 0, 2 * span, 84, per);
	uint64_t r1[] = { a, *s }, r2[] = { c, *s };
	bld_add_dev(b, 1, bld_inode(b, 2, r1), 2 * span);
	bld_add_dev(b, 2, bld_inode(b, 2, r2), 2 * span);
	b->meta_count[*s]++;
}

static void test_shared_internal(void **state)
{
	(void)state;
	struct bld b;
	uint64_t s;
	build_shared_internal(&b, &s);
	bld_finish(&b);
	struct found l;
	check(&b, &l);
	expect_clean(&l);
	assert_int_equal(l.st.mappings, 3 * 84 * 84);
	assert_int_equal(l.st.nodes, 3 * 85 + 2 + 5);
	assert_int_equal(l.st.meta_blocks_checked, nr_in_use(&b));

	/* S counted once: low; its children are counted once per parent (S),
	 * so they stay right. */
	bld_free(&b);
	build_shared_internal(&b, &s);
	bld_finish(&b);
	meta_count_set(&b, s, 1);
	check(&b, &l);
	expect_n(&l, 1);
	expect(&l, TM_CHK_META_UNDERCOUNT, TM_SEV_FATAL, s, NODEV, "2 references but a count of 1", END);
	bld_free(&b);
}

/* A subtree shared at different depths: device 1 (a snapshot) has the
 * internal node I as its root; device 2 (the origin, whose root split
 * after the snapshot) reaches I one level down, next to a newer subtree.
 * The breadth-first pass reads I as device 1's root before device 2's
 * root, its parent there. */
static void test_shared_subtree_depths(void **state)
{
	(void)state;
	struct bld b;
	bld_init(&b, 256, 16000);
	b.time = 3;
	const uint32_t per = 84, span = 84 * 84;
	uint64_t i = bld_subtree(&b, 0, 0, 84, per);
	uint64_t k = bld_subtree(&b, span, span, 84, per);
	uint64_t r2[] = { i, k };
	bld_add_dev(&b, 1, i, span);
	bld_add_dev(&b, 2, bld_inode(&b, 2, r2), 2 * span);
	b.meta_count[i]++;
	bld_finish(&b);
	struct found l;
	check(&b, &l);
	expect_clean(&l);
	assert_int_equal(l.st.mappings, 2 * span);

	/* Device 1 one mapping short: only device 1 is reported. */
	bld_free(&b);
	bld_init(&b, 256, 16000);
	i = bld_subtree(&b, 0, 0, 84, per);
	k = bld_subtree(&b, span, span, 84, per);
	uint64_t r2b[] = { i, k };
	bld_add_dev(&b, 1, i, span - 1);
	uint64_t root2 = bld_inode(&b, 2, r2b);
	bld_add_dev(&b, 2, root2, 2 * span);
	b.meta_count[i]++;
	bld_finish(&b);
	check(&b, &l);
	expect_n(&l, 1);
	expect(&l, TM_CHK_MAPPED_BLOCKS, TM_SEV_FATAL, i, 1, "details say 7055 mapped blocks, its tree holds 7056",
	       END);
	bld_free(&b);

	/* Two levels apart: device 2's root -> A -> I, I being device 1's
	 * root (A, with one child, is underfull). */
	bld_init(&b, 32, 1024);
	uint64_t ls[] = { bld_leaf(&b, 0, 0, 100), bld_leaf(&b, 100, 100, 100) };
	i = bld_inode(&b, 2, ls);
	uint64_t a = bld_inode(&b, 1, &i);
	bld_add_dev(&b, 1, i, 200);
	bld_add_dev(&b, 2, bld_inode(&b, 1, &a), 200);
	b.meta_count[i]++;
	bld_finish(&b);
	check(&b, &l);
	expect_n(&l, 1);
	expect(&l, TM_CHK_UNDERFULL, TM_SEV_WARNING, a, 2, "1 entries", END);
	bld_free(&b);
}

/* 2000 data blocks held by three or four distinct leaves each: expected
 * counts of 3 and more, many of them; and a few of them wrong. */
static void build_many_shared(struct bld *b)
{
	struct bld_map *maps = calloc(2000, sizeof(*maps));
	assert_non_null(maps);
	for (uint64_t i = 0; i < 2000; i++)
		maps[i] = (struct bld_map){ .vblock = i, .dblock = i, .time = 0 };
	bld_init(b, 128, 4096);
	for (uint64_t d = 1; d <= 3; d++)
		bld_device(b, d, maps, 2000, 0, 0);
	bld_device(b, 4, maps, 1000, 0, 0);
	free(maps);
	assert_int_equal(b->data_count[999], 4);
	assert_int_equal(b->data_count[1000], 3);
}

static void test_many_shared_data(void **state)
{
	(void)state;
	struct bld b;
	build_many_shared(&b);
	bld_finish(&b);
	struct found l;
	check(&b, &l);
	expect_clean(&l);
	assert_int_equal(l.st.mappings, 7000);
	assert_int_equal(l.st.devices, 4);
	assert_int_equal(l.st.meta_blocks_checked, nr_in_use(&b));
	bld_free(&b);

	/* The space map written with a few counts off. */
	build_many_shared(&b);
	b.data_count[10] = 2;
	b.data_count[500] = 3;
	b.data_count[1500] = 5;
	b.data_count[1999] = 1;
	b.data_count[3000] = 7; /* nothing refers to it */
	bld_finish(&b);
	check(&b, &l);
	expect(&l, TM_CHK_DATA_UNDERCOUNT, TM_SEV_FATAL, NOBLOCK, NODEV, "data block 10 has 4 references but a count of 2",
	       END);
	expect(&l, TM_CHK_DATA_UNDERCOUNT, TM_SEV_FATAL, NOBLOCK, NODEV, "data block 500 has 4 references but a count of 3",
	       END);
	expect(&l, TM_CHK_DATA_OVERCOUNT, TM_SEV_WARNING, NOBLOCK, NODEV,
	       "data block 1500 has 3 references but a count of 5", END);
	expect(&l, TM_CHK_DATA_UNDERCOUNT, TM_SEV_FATAL, NOBLOCK, NODEV, "data block 1999 has 3 references but a count of 1",
	       END);
	expect(&l, TM_CHK_DATA_LEAK, TM_SEV_WARNING, NOBLOCK, NODEV, "data block 3000 has a count of 7 but nothing", END);
	expect_n(&l, 5);
	bld_free(&b);
}

/* ---- metadata snapshots ---- */

static void test_snapshot_held(void **state)
{
	(void)state;
	struct bld b;
	static const struct bld_map maps[] = { { 0, 10, 0 }, { 1, 11, 0 } };
	bld_init(&b, 32, 1024);
	b.time = 1;
	bld_device(&b, 1, maps, 2, 0, 0);
	uint64_t held = bld_reserve_snapshot(&b);
	bld_finish(&b);
	assert_int_equal(b.meta_count[b.details_root], 2);
	assert_int_equal(b.meta_count[b.top_root], 2);
	struct found l;
	check(&b, &l);
	expect_clean(&l);
	/* The snapshot shares every node; its superblock copy is one more
	 * block; its device is counted with the live ones. */
	assert_int_equal(l.st.nodes, 6);
	assert_int_equal(l.st.mappings, 2);
	assert_int_equal(l.st.devices, 2);
	assert_int_equal(l.st.meta_blocks_checked, nr_in_use(&b));

	/* The snapshot's references to the two roots left out of the counts:
	 * both roots (adjacent blocks) low, as one run. */
	assert_int_equal(b.top_root, b.details_root + 1);
	meta_count_set(&b, b.details_root, 1);
	meta_count_set(&b, b.top_root, 1);
	check(&b, &l);
	expect_n(&l, 1);
	char want[160];
	snprintf(want, sizeof(want), "metadata blocks %llu..%llu have 2 references but a count of 1",
		 (unsigned long long)b.details_root, (unsigned long long)b.top_root);
	expect(&l, TM_CHK_META_UNDERCOUNT, TM_SEV_FATAL, b.details_root, NODEV, want, END);

	/* The snapshot superblock itself uncounted: a fatal count. */
	meta_count_set(&b, b.details_root, 2);
	meta_count_set(&b, b.top_root, 2);
	meta_count_set(&b, held, 0);
	check(&b, &l);
	expect_n(&l, 1);
	expect(&l, TM_CHK_META_UNDERCOUNT, TM_SEV_FATAL, held, NODEV, "1 references but a count of 0",
	       "would hand them out again", END);
	bld_free(&b);
}

/* A snapshot with trees of its own (the live device was rewritten after
 * the snapshot): its leaf holds data blocks nothing else refers to. */
static void build_snapshot_diverged(struct bld *b)
{
	static const struct bld_map maps[] = { { 0, 10, 1 }, { 1, 11, 1 }, { 2, 12, 1 } };
	bld_init(b, 32, 1024);
	b->time = 1;
	bld_device(b, 1, maps, 3, 0, 0);
	/* The snapshot's version of device 1 (and of a device 2 deleted
	 * since): data 30..32 and 40. */
	uint64_t sl1 = bld_leaf(b, 0, 30, 3);
	uint64_t sl2 = bld_leaf(b, 0, 40, 1);
	uint64_t stop = bld_alloc(b), sdet = bld_alloc(b);
	uint64_t keys[] = { 1, 2 }, roots[] = { sl1, sl2 };
	bld_node64(b, stop, TM_NODE_LEAF, 2, keys, roots);
	struct tm_disk_device_details det[2] = {
		{ .mapped_blocks = htole64(3) }, { .mapped_blocks = htole64(1) },
	};
	bld_node(b, sdet, TM_NODE_LEAF, sizeof(det[0]), 2, keys, det);
	uint64_t held = bld_reserve_snapshot(b);
	bld_finish(b);
	/* Point the copy at the snapshot's own trees; the live roots lose
	 * the snapshot's references. */
	struct tm_disk_superblock sb;
	bld_sb_get(b, held, &sb);
	sb.data_mapping_root = stop;
	sb.device_details_root = sdet;
	bld_sb_put(b, held, &sb);
	meta_count_set(b, b->details_root, 1);
	meta_count_set(b, b->top_root, 1);
}

static void test_snapshot_diverged(void **state)
{
	(void)state;
	struct bld b;
	build_snapshot_diverged(&b);
	struct found l;
	check(&b, &l);
	expect_clean(&l);
	assert_int_equal(l.st.mappings, 3 + 3 + 1);
	assert_int_equal(l.st.devices, 1 + 2);
	assert_int_equal(l.st.nodes, 6 + 4);
	assert_int_equal(l.st.meta_blocks_checked, nr_in_use(&b));

	/* The snapshot's data marked free: in use all the same. */
	data_count_set(&b, 30, 0);
	data_count_set(&b, 31, 0);
	data_count_set(&b, 32, 0);
	data_count_set(&b, 40, 0);
	check(&b, &l);
	expect_n(&l, 2);
	expect(&l, TM_CHK_DATA_UNDERCOUNT, TM_SEV_FATAL, NOBLOCK, NODEV,
	       "data blocks 30..32 have 1 references but a count of 0: the space map would hand them out again while in use",
	       END);
	expect(&l, TM_CHK_DATA_UNDERCOUNT, TM_SEV_FATAL, NOBLOCK, NODEV, "data block 40 has 1 references but a count of 0",
	       END);
	bld_free(&b);
}

static void test_snapshot_unreadable(void **state)
{
	(void)state;
	struct bld b;
	bld_init(&b, 32, 1024);
	bld_device(&b, 1, NULL, 0, 0, 0);
	uint64_t held = bld_reserve_snapshot(&b);
	bld_finish(&b);
	smash(&b, held);
	struct found l;
	check(&b, &l);
	/* The copy is reported; its references to the roots are then not
	 * seen, so those two counts are high. */
	expect(&l, TM_CHK_SNAPSHOT, TM_SEV_FATAL, held, NODEV, "checksum", END);
	expect(&l, TM_CHK_META_OVERCOUNT, TM_SEV_WARNING, b.details_root, NODEV,
	       "have 1 references but a count of 2", END);
	expect_n(&l, 2);
	bld_free(&b);
}

/* ---- data reference counts ---- */

static void test_data_leak(void **state)
{
	(void)state;
	struct bld b;
	bld_standard(&b);
	data_count_set(&b, 500, 1);
	struct found l;
	check(&b, &l);
	expect_n(&l, 1);
	const struct tm_finding *f = expect(&l, TM_CHK_DATA_LEAK, TM_SEV_WARNING, NOBLOCK, NODEV,
					    "data block 500 has a count of 1 but nothing refers to it (leaked)", END);
	assert_null(strstr(f->msg, "damaged"));
	expect_sev(&l, 0, 1, 0);

	/* A run of leaks with the same count is one finding. */
	for (uint64_t d = 600; d < 700; d++)
		data_count_set(&b, d, 2);
	check(&b, &l);
	expect_n(&l, 2);
	expect(&l, TM_CHK_DATA_LEAK, TM_SEV_WARNING, NOBLOCK, NODEV,
	       "data blocks 600..699 have a count of 2 but nothing refers to them (leaked)", END);
	bld_free(&b);
}

static void test_data_undercount(void **state)
{
	(void)state;
	struct bld b;
	/* Data block 100 in two distinct leaves: two references. */
	bld_init(&b, 32, 1024);
	bld_add_dev(&b, 1, bld_leaf(&b, 0, 100, 4), 4);
	bld_add_dev(&b, 2, bld_leaf(&b, 7, 100, 1), 1);
	bld_finish(&b);
	assert_int_equal(b.data_count[100], 2);
	struct found l;
	check(&b, &l);
	expect_clean(&l);

	data_count_set(&b, 100, 1);
	check(&b, &l);
	expect_n(&l, 1);
	const struct tm_finding *f = expect(&l, TM_CHK_DATA_UNDERCOUNT, TM_SEV_FATAL, NOBLOCK, NODEV,
					    "data block 100 has 2 references but a count of 1", END);
	assert_null(strstr(f->msg, "hand them out"));

	data_count_set(&b, 100, 2);
	data_count_set(&b, 102, 0);
	check(&b, &l);
	expect_n(&l, 1);
	expect(&l, TM_CHK_DATA_UNDERCOUNT, TM_SEV_FATAL, NOBLOCK, NODEV,
	       "data block 102 has 1 references but a count of 0: the space map would hand them out again while in use",
	       END);
	expect_sev(&l, 0, 0, 1);
	bld_free(&b);
}

static void test_data_overcount(void **state)
{
	(void)state;
	struct bld b;
	bld_standard(&b);
	data_count_set(&b, 11, 2);
	data_count_set(&b, 12, 3); /* 3 with no overflow entry: the map is damaged there */
	struct found l;
	check(&b, &l);
	expect(&l, TM_CHK_DATA_OVERCOUNT, TM_SEV_WARNING, NOBLOCK, NODEV,
	       "data block 11 has 1 references but a count of 2", END);
	/* Block 12's count is unknown: damage, and no count finding. */
	expect(&l, TM_CHK_SM_BAD, TM_SEV_FATAL, b.data_ref_root, NODEV, "no overflow count",
	       "counts of blocks 12 unknown", END);
	expect_n(&l, 2);
	bld_free(&b);
}

/* ---- metadata reference counts ---- */

static void test_metadata_counts(void **state)
{
	(void)state;
	struct bld b;
	bld_standard(&b);
	uint64_t dleaf = b.dev[0].root;
	assert_int_equal(b.details_root, dleaf + 1);
	meta_count_set(&b, 20, 1);            /* leak */
	meta_count_set(&b, dleaf, 0);         /* under-count: free while in use */
	meta_count_set(&b, b.details_root, 2); /* over-count */
	struct found l;
	check(&b, &l);
	expect_n(&l, 3);
	expect(&l, TM_CHK_META_LEAK, TM_SEV_WARNING, 20, NODEV,
	       "metadata block 20 has a count of 1 but nothing refers to it (leaked)", END);
	char want[160];
	snprintf(want, sizeof(want), "metadata block %llu has 1 references but a count of 0: the space map would hand",
		 (unsigned long long)dleaf);
	expect(&l, TM_CHK_META_UNDERCOUNT, TM_SEV_FATAL, dleaf, NODEV, want, END);
	snprintf(want, sizeof(want), "metadata block %llu has 1 references but a count of 2",
		 (unsigned long long)b.details_root);
	expect(&l, TM_CHK_META_OVERCOUNT, TM_SEV_WARNING, b.details_root, NODEV, want, END);
	expect_sev(&l, 0, 2, 1);

	/* The space maps' own blocks are references too. */
	bld_free(&b);
	bld_standard(&b);
	meta_count_set(&b, b.meta_index, 0);
	meta_count_set(&b, b.data_bitmap[0], 2);
	meta_count_set(&b, 0, 2);
	check(&b, &l);
	expect_n(&l, 3);
	expect(&l, TM_CHK_META_UNDERCOUNT, TM_SEV_FATAL, b.meta_index, NODEV, "1 references but a count of 0", END);
	expect(&l, TM_CHK_META_OVERCOUNT, TM_SEV_WARNING, b.data_bitmap[0], NODEV, "1 references but a count of 2",
	       END);
	expect(&l, TM_CHK_META_OVERCOUNT, TM_SEV_WARNING, 0, NODEV, "metadata block 0 has", END);
	bld_free(&b);
}

/* ---- mapped_blocks ---- */

static void test_mapped_blocks(void **state)
{
	(void)state;
	struct bld b;
	static const struct bld_map maps[] = { { 0, 10, 0 }, { 1, 11, 0 }, { 2, 12, 0 }, { 5, 20, 1 } };
	bld_init(&b, 32, 1024);
	bld_device(&b, 1, maps, 4, 0, 0);
	size_t i = bld_device(&b, 7, maps, 2, 0, 0);
	b.dev[i].details.mapped_blocks = 3; /* one too many */
	bld_finish(&b);
	struct found l;
	check(&b, &l);
	expect_n(&l, 1);
	expect(&l, TM_CHK_MAPPED_BLOCKS, TM_SEV_FATAL, dev_of(&b, 7)->root, 7,
	       "device 7: details say 3 mapped blocks, its tree holds 2 mappings", END);
	expect_sev(&l, 0, 0, 1);
	bld_free(&b);

	/* One too few, in a two-level tree. */
	build_two_level(&b, 4);
	b.dev[0].details.mapped_blocks = 599;
	bld_finish(&b);
	check(&b, &l);
	expect_n(&l, 1);
	expect(&l, TM_CHK_MAPPED_BLOCKS, TM_SEV_FATAL, 10, 4, "details say 599 mapped blocks, its tree holds 600",
	       END);
	bld_free(&b);
}

static void test_mapped_blocks_damaged(void **state)
{
	(void)state;
	struct bld b;
	/* A damaged root leaf: the damage says what is lost. */
	bld_standard(&b);
	struct tm_disk_device_details det;
	uint64_t dl = b.details_root;
	memcpy(&det, bld_block(&b, dl) + 32 + 8 * 126, sizeof(det));
	assert_int_equal(le64toh(det.mapped_blocks), 4);
	det.mapped_blocks = htole64(5);
	memcpy(bld_block(&b, dl) + 32 + 8 * 126, &det, sizeof(det));
	bld_reseal_node(&b, dl);
	struct found l;
	check(&b, &l);
	expect_n(&l, 1);
	expect(&l, TM_CHK_MAPPED_BLOCKS, TM_SEV_FATAL, b.dev[0].root, 1, "details say 5 mapped blocks", END);
	smash(&b, b.dev[0].root);
	check(&b, &l);
	assert_int_equal(count_code(&l, TM_CHK_MAPPED_BLOCKS), 0);
	expect(&l, TM_CHK_BAD_NODE, TM_SEV_FATAL, b.dev[0].root, 1, "virtual blocks 0..end of device 1 lost", END);
	bld_free(&b);

	/* A damaged leaf below the root of a two-level tree. */
	build_two_level(&b, 2);
	b.dev[0].details.mapped_blocks = 601;
	bld_finish(&b);
	smash(&b, 5);
	check(&b, &l);
	assert_int_equal(count_code(&l, TM_CHK_MAPPED_BLOCKS), 0);
	expect(&l, TM_CHK_BAD_NODE, TM_SEV_FATAL, 5, 2, "virtual blocks 100..199 of device 2 lost", END);
	bld_free(&b);
}

/* ---- damaged trees ---- */

static void test_bad_leaf_checksum(void **state)
{
	(void)state;
	struct bld b;
	build_two_level(&b, 7);
	bld_finish(&b);
	smash(&b, 7); /* leaf 3: virtual 300..399 -> data 500..599 */
	struct found l;
	check(&b, &l);
	expect_n(&l, 2);
	expect(&l, TM_CHK_BAD_NODE, TM_SEV_FATAL, 7, 7,
	       "block 7 (device 7 mappings): bad checksum in btree node; virtual blocks 300..399 of device 7 lost", END);
	expect(&l, TM_CHK_DATA_LEAK, TM_SEV_WARNING, NOBLOCK, NODEV,
	       "data blocks 500..599 have a count of 1 but nothing refers to them (leaked, or referred to by the damaged nodes above)",
	       END);
	expect_sev(&l, 0, 1, 1);
	assert_int_equal(l.st.mappings, 500);

	/* The last leaf: its range runs to the end. */
	bld_free(&b);
	build_two_level(&b, 7);
	bld_finish(&b);
	smash(&b, 9);
	check(&b, &l);
	expect(&l, TM_CHK_BAD_NODE, TM_SEV_FATAL, 9, 7, "virtual blocks 500..end of device 7 lost", END);
	expect(&l, TM_CHK_DATA_LEAK, TM_SEV_WARNING, NOBLOCK, NODEV, "data blocks 700..799 ", END);
	expect_n(&l, 2);

	/* A node that says it is another block, and wrong flags. */
	bld_free(&b);
	build_two_level(&b, 7);
	bld_finish(&b);
	tm_put_le64(bld_block(&b, 4) + 8, 5);
	bld_reseal_node(&b, 4);
	tm_put_le32(bld_block(&b, 6) + 4, 3);
	bld_reseal_node(&b, 6);
	check(&b, &l);
	expect(&l, TM_CHK_BAD_NODE, TM_SEV_FATAL, 4, 7, "says it is block 5", "virtual blocks 0..99 of device 7 lost",
	       END);
	expect(&l, TM_CHK_BAD_NODE, TM_SEV_FATAL, 6, 7, "flags", "virtual blocks 200..299", END);
	expect(&l, TM_CHK_DATA_LEAK, TM_SEV_WARNING, NOBLOCK, NODEV, "data blocks 200..299 ", END);
	expect(&l, TM_CHK_DATA_LEAK, TM_SEV_WARNING, NOBLOCK, NODEV, "data blocks 400..499 ", END);
	expect_n(&l, 4);
	bld_free(&b);
}

static void test_damaged_other_trees(void **state)
{
	(void)state;
	struct bld b;
	bld_standard(&b);
	smash(&b, b.data_ref_root);
	struct found l;
	check(&b, &l);
	char want[160];
	snprintf(want, sizeof(want), "block %llu (data reference count tree): bad checksum in btree node; keys 0..end lost",
		 (unsigned long long)b.data_ref_root);
	expect(&l, TM_CHK_BAD_NODE, TM_SEV_FATAL, b.data_ref_root, NODEV, want, END);
	/* The space map loader reports the same tree: every data count is
	 * unknown, so none is compared. */
	expect(&l, TM_CHK_SM_BAD, TM_SEV_FATAL, b.data_ref_root, NODEV, "(data ref count tree)",
	       "counts of blocks 0..end unknown", END);
	expect_n(&l, 2);
	bld_free(&b);
}

static void test_cycle_self(void **state)
{
	(void)state;
	struct bld b;
	build_two_level(&b, 3);
	/* The root's third child replaced by the root itself. */
	uint64_t keys[6], ch[6];
	for (uint64_t k = 0; k < 6; k++) {
		keys[k] = 100 * k;
		ch[k] = 4 + k;
	}
	ch[2] = 10;
	bld_node64(&b, 10, TM_NODE_INTERNAL, 6, keys, ch);
	b.meta_count[6]--; /* leaf 2 is lost: a leak in the written map */
	bld_finish(&b);
	meta_count_set(&b, 6, 1);
	struct found l;
	check(&b, &l);
	expect(&l, TM_CHK_CYCLE, TM_SEV_FATAL, 10, 3, "points at itself", "virtual blocks 200..299 of device 3 lost",
	       END);
	expect(&l, TM_CHK_META_LEAK, TM_SEV_WARNING, 6, NODEV, "nothing refers to it", "damaged nodes", END);
	expect(&l, TM_CHK_DATA_LEAK, TM_SEV_WARNING, NOBLOCK, NODEV, "data blocks 400..499 ", "damaged nodes", END);
	assert_int_equal(count_code(&l, TM_CHK_MAPPED_BLOCKS), 0);
	expect_n(&l, 3);
	bld_free(&b);
}

/* A child pointing back at an ancestor: the second reference to the
 * ancestor is counted (its count is then low), and it is not walked again. */
static void test_cycle_ancestor(void **state)
{
	(void)state;
	struct bld b;
	bld_init(&b, 32, 1024);
	uint64_t la[] = { bld_leaf(&b, 0, 0, 100), bld_leaf(&b, 100, 100, 100) };
	uint64_t lb[] = { bld_leaf(&b, 200, 200, 100), bld_leaf(&b, 300, 300, 100) };
	uint64_t ia = bld_inode(&b, 2, la), ib = bld_inode(&b, 2, lb);
	uint64_t top[] = { ia, ib };
	uint64_t root = bld_inode(&b, 2, top);
	bld_add_dev(&b, 1, root, 400);
	/* ib's second child becomes the root. */
	uint64_t keys[] = { 200, 300 }, ch[] = { lb[0], root };
	bld_node64(&b, ib, TM_NODE_INTERNAL, 2, keys, ch);
	b.meta_count[lb[1]]--;
	bld_finish(&b);
	struct found l;
	check(&b, &l);
	char want[160];
	snprintf(want, sizeof(want), "metadata block %llu has 2 references but a count of 1", (unsigned long long)root);
	expect(&l, TM_CHK_META_UNDERCOUNT, TM_SEV_FATAL, root, NODEV, want, END);
	/* The counts under the cycle mean nothing: no mapped_blocks finding,
	 * and what is lost may be the damage's. */
	assert_int_equal(count_code(&l, TM_CHK_MAPPED_BLOCKS), 0);
	expect(&l, TM_CHK_DATA_LEAK, TM_SEV_WARNING, NOBLOCK, NODEV, "data blocks 300..399 ", "damaged nodes", END);
	/* Two-entry internal nodes below the root. */
	expect(&l, TM_CHK_UNDERFULL, TM_SEV_WARNING, ia, 1, "2 entries", END);
	expect(&l, TM_CHK_UNDERFULL, TM_SEV_WARNING, ib, 1, "2 entries", END);
	expect_n(&l, 4);
	assert_int_equal(l.st.mappings, 300);
	bld_free(&b);
}

static void test_child_out_of_range(void **state)
{
	(void)state;
	struct bld b;
	uint64_t keys[6], ch[6];
	for (uint64_t k = 0; k < 6; k++) {
		keys[k] = 100 * k;
		ch[k] = 4 + k;
	}
	/* Block 0 (the superblock), and block 32 of a 32-block file. The
	 * finding names the node holding the bad pointer (the one to repair). */
	for (int beyond = 0; beyond < 2; beyond++) {
		build_two_level(&b, 3);
		ch[4] = beyond ? 32 : 0;
		bld_node64(&b, 10, TM_NODE_INTERNAL, 6, keys, ch);
		bld_finish(&b);
		meta_count_set(&b, 8, 0); /* leaf 4 is lost; its block is free */
		for (uint64_t d = 600; d < 700; d++)
			data_count_set(&b, d, 0);
		struct found l;
		check(&b, &l);
		expect(&l, TM_CHK_NODE_RANGE, TM_SEV_FATAL, 10, 3,
		       beyond ? "block 10 (device 3 mappings): points at block 32, outside the metadata (1..31)"
			      : "block 10 (device 3 mappings): points at block 0, outside the metadata (1..31)",
		       "virtual blocks 400..499 of device 3 lost", END);
		assert_int_equal(count_code(&l, TM_CHK_MAPPED_BLOCKS), 0);
		/* Block 0 is still counted once (the superblock only). */
		expect_n(&l, 1);
		assert_int_equal(l.st.mappings, 500);
		bld_free(&b);
	}

	/* A device root in the top level that points outside. */
	bld_standard(&b);
	uint64_t k1 = 1, bad = 1000;
	bld_node64(&b, b.top_root, TM_NODE_LEAF, 1, &k1, &bad);
	meta_count_set(&b, b.dev[0].root, 0);
	for (uint64_t d = 0; d < 1024; d++)
		if (b.data_count[d])
			data_count_set(&b, d, 0);
	struct found l;
	check(&b, &l);
	expect(&l, TM_CHK_NODE_RANGE, TM_SEV_FATAL, b.top_root, 1, "points at block 1000",
	       "virtual blocks 0..end of device 1 lost", END);
	expect_n(&l, 1);
	bld_free(&b);
}

/* A metadata file shorter than its space map (opened as the checker's
 * caller does): a fatal metadata-size finding, and the rest is checked
 * within the file. */
static void test_metadata_file_short(void **state)
{
	(void)state;
	struct bld b;
	static const struct bld_map maps[] = { { 0, 10, 0 }, { 1, 11, 0 }, { 2, 12, 0 } };
	bld_init(&b, 64, 1024);
	bld_device(&b, 1, maps, 3, 0, 0);
	bld_finish(&b);
	assert_true(b.next <= 32);
	struct found l;
	check_n(&b, 32, &l);
	expect(&l, TM_CHK_METADATA_SIZE, TM_SEV_FATAL, NOBLOCK, NODEV,
	       "the metadata space map covers 64 blocks but the file holds 32: it was cut short", END);
	expect_n(&l, 1);
	assert_int_equal(l.st.mappings, 3);
	bld_free(&b);

	/* The device's leaf at block 40, cut off. */
	bld_init(&b, 64, 1024);
	uint64_t first = b.next;
	b.next = 40;
	uint64_t far = bld_leaf(&b, 0, 10, 3);
	b.next = first;
	bld_add_dev(&b, 1, far, 3);
	bld_finish(&b);
	check_n(&b, 32, &l);
	expect(&l, TM_CHK_METADATA_SIZE, TM_SEV_FATAL, NOBLOCK, NODEV, "cut short", END);
	expect(&l, TM_CHK_NODE_RANGE, TM_SEV_FATAL, b.top_root, 1, "points at block 40, outside the metadata (1..31)",
	       "virtual blocks 0..end of device 1 lost", END);
	expect(&l, TM_CHK_DATA_LEAK, TM_SEV_WARNING, NOBLOCK, NODEV, "data blocks 10..12 ", "damaged nodes", END);
	expect_n(&l, 3);
	bld_free(&b);
}

static void test_key_outside_parent(void **state)
{
	(void)state;
	struct bld b;
	build_two_level(&b, 3);
	uint64_t keys[6] = { 0, 100, 200, 350, 400, 500 }, ch[6] = { 4, 5, 6, 7, 8, 9 };
	bld_node64(&b, 10, TM_NODE_INTERNAL, 6, keys, ch);
	bld_finish(&b);
	struct found l;
	check(&b, &l);
	/* Leaf 3 holds 300..399 but its parent gives it 350..399. */
	expect(&l, TM_CHK_KEY_RANGE, TM_SEV_FATAL, 7, 3, "keys 300..399 outside the range its parent gives",
	       "virtual blocks 350..399 of device 3 lost", END);
	expect(&l, TM_CHK_DATA_LEAK, TM_SEV_WARNING, NOBLOCK, NODEV, "data blocks 500..599 ", END);
	assert_int_equal(count_code(&l, TM_CHK_MAPPED_BLOCKS), 0);
	expect_n(&l, 2);

	/* Leaf 2 reaching past its upper bound (leaf 3 starting later than
	 * its parent's key is fine). */
	bld_free(&b);
	build_two_level(&b, 3);
	uint64_t keys2[6] = { 0, 100, 200, 250, 400, 500 };
	bld_node64(&b, 10, TM_NODE_INTERNAL, 6, keys2, ch);
	bld_finish(&b);
	check(&b, &l);
	expect(&l, TM_CHK_KEY_RANGE, TM_SEV_FATAL, 6, 3, "keys 200..299 outside", "virtual blocks 200..249 of device 3",
	       END);
	expect(&l, TM_CHK_DATA_LEAK, TM_SEV_WARNING, NOBLOCK, NODEV, "data blocks 400..499 ", END);
	expect_n(&l, 2);
	bld_free(&b);
}

static void test_underfull(void **state)
{
	(void)state;
	struct bld b;
	struct bld_map maps[300];
	for (uint64_t i = 0; i < 300; i++)
		maps[i] = (struct bld_map){ .vblock = 2 * i, .dblock = i, .time = 0 };
	bld_init(&b, 32, 1024);
	/* Leaves of 83, 83, 83 and 51: all below 84. */
	bld_device(&b, 5, maps, 300, 83, 0);
	bld_finish(&b);
	struct found l;
	check(&b, &l);
	expect_n(&l, 4);
	expect(&l, TM_CHK_UNDERFULL, TM_SEV_WARNING, 4, 5,
	       "block 4 (mapping tree): 83 entries, fewer than the 84 a non-root node must hold", END);
	expect(&l, TM_CHK_UNDERFULL, TM_SEV_WARNING, 5, 5, "83 entries", END);
	expect(&l, TM_CHK_UNDERFULL, TM_SEV_WARNING, 6, 5, "83 entries", END);
	expect(&l, TM_CHK_UNDERFULL, TM_SEV_WARNING, 7, 5, "51 entries", END);
	expect_sev(&l, 0, 4, 0);
	bld_free(&b);

	/* 84 per leaf: fine; a root of one entry, internal or leaf: fine. */
	bld_init(&b, 32, 1024);
	bld_device(&b, 5, maps, 168, 84, 0);
	bld_device(&b, 6, maps, 1, 0, 0);
	uint64_t only = bld_leaf(&b, 0, 900, 100);
	bld_add_dev(&b, 8, bld_inode(&b, 1, &only), 100);
	bld_finish(&b);
	check(&b, &l);
	expect_clean(&l);
	bld_free(&b);

	/* An underfull node in a one-level tree that is not the root: a
	 * details tree of two leaves. */
	bld_init(&b, 256, 1024);
	for (uint64_t d = 1; d <= 130; d++)
		bld_device(&b, d, NULL, 0, 0, 0);
	bld_finish(&b);
	/* 126 + 4 details: the second leaf holds 4 (< 42). */
	check(&b, &l);
	const struct tm_finding *f = NULL;
	for (size_t i = 0; i < l.n; i++)
		if (!strcmp(l.f[i].code, TM_CHK_UNDERFULL))
			f = &l.f[i];
	assert_non_null(f);
	assert_int_equal(f->severity, TM_SEV_WARNING);
	assert_int_equal(f->dev_id, -1);
	assert_contains(f->msg, "(device details tree): 4 entries, fewer than the 42");
	expect_n(&l, 1);
	assert_int_equal(l.st.devices, 130);
	bld_free(&b);
}

static void test_mapping_beyond_pool(void **state)
{
	(void)state;
	struct bld b;
	static const struct bld_map maps[] = { { 0, 10, 0 }, { 7, 1024, 0 }, { 8, 5000, 0 }, { 9, 1023, 0 } };
	bld_init(&b, 32, 1024);
	bld_device(&b, 2, maps, 4, 0, 0);
	bld_finish(&b);
	struct found l;
	check(&b, &l);
	expect_n(&l, 2);
	uint64_t root = b.dev[0].root;
	size_t n7 = 0, n8 = 0;
	for (size_t i = 0; i < l.n; i++) {
		const struct tm_finding *f = &l.f[i];
		assert_string_equal(f->code, TM_CHK_MAPPING_BEYOND);
		assert_int_equal(f->severity, TM_SEV_FATAL);
		assert_int_equal(f->block, root);
		assert_int_equal(f->dev_id, 2);
		n7 += strstr(f->msg, "virtual block 7 maps to data block 1024, beyond the pool's 1024 blocks") != NULL;
		n8 += strstr(f->msg, "virtual block 8 maps to data block 5000") != NULL;
	}
	assert_int_equal(n7, 1);
	assert_int_equal(n8, 1);
	/* The mappings count (mapped_blocks says 4); no data count goes wrong. */
	assert_int_equal(l.st.mappings, 4);
	bld_free(&b);
}

/* ---- device sets ---- */

static void test_device_sets(void **state)
{
	(void)state;
	struct bld b;
	static const struct bld_map maps[] = { { 0, 10, 0 } };
	bld_init(&b, 32, 1024);
	bld_device(&b, 1, maps, 1, 0, 0);
	bld_device(&b, 2, NULL, 3, 0, BLD_NO_MAPPING);
	bld_device(&b, 3, maps, 1, 0, BLD_NO_DETAILS);
	bld_finish(&b);
	struct found l;
	check(&b, &l);
	expect_n(&l, 2);
	expect(&l, TM_CHK_DEVICE_NO_MAPPING, TM_SEV_FATAL, NOBLOCK, 2, "device 2 has details but no mapping tree", END);
	expect(&l, TM_CHK_DEVICE_NO_DETAILS, TM_SEV_FATAL, NOBLOCK, 3, "device 3 has a mapping tree but no details",
	       END);
	assert_int_equal(l.st.devices, 3);
	bld_free(&b);
}

/* Devices lost with a damaged details or top-level node are not also
 * reported as missing from that tree; others still are. */
static void test_device_sets_damaged(void **state)
{
	(void)state;
	struct bld b;
	bld_standard(&b);
	smash(&b, b.top_root);
	struct found l;
	check(&b, &l);
	char want[160];
	snprintf(want, sizeof(want), "block %llu (mapping tree (top level)): bad checksum in btree node; keys 0..end lost",
		 (unsigned long long)b.top_root);
	expect(&l, TM_CHK_BAD_NODE, TM_SEV_FATAL, b.top_root, NODEV, want, END);
	/* Device 1's tree, unreachable now: its leaf and data. */
	expect(&l, TM_CHK_META_LEAK, TM_SEV_WARNING, b.dev[0].root, NODEV, "damaged nodes", END);
	expect(&l, TM_CHK_DATA_LEAK, TM_SEV_WARNING, NOBLOCK, NODEV, "data blocks 10..12 ", "damaged nodes", END);
	expect(&l, TM_CHK_DATA_LEAK, TM_SEV_WARNING, NOBLOCK, NODEV, "data block 20 ", "damaged nodes", END);
	expect_n(&l, 4);
	bld_free(&b);

	/* Devices 1..200 (60 and 150 in the top level only): details leaves
	 * of 126 (ids 1..127) and 72 (128..200); the second one damaged. */
	bld_init(&b, 256, 1024);
	for (uint64_t d = 1; d <= 200; d++)
		bld_device(&b, d, NULL, 0, 0, d == 60 || d == 150 ? BLD_NO_DETAILS : 0);
	bld_finish(&b);
	uint64_t keys[2], kids[2];
	for (int i = 0; i < 2; i++) {
		keys[i] = tm_le64(bld_block(&b, b.details_root) + 32 + 8 * i);
		kids[i] = tm_le64(bld_block(&b, b.details_root) + 32 + 8 * 252 + 8 * i);
	}
	assert_int_equal(keys[1], 128);
	smash(&b, kids[1]);
	check(&b, &l);
	expect(&l, TM_CHK_BAD_NODE, TM_SEV_FATAL, kids[1], NODEV, "(device details tree)", "keys 128..end lost", END);
	expect(&l, TM_CHK_DEVICE_NO_DETAILS, TM_SEV_FATAL, NOBLOCK, 60, "device 60 has a mapping tree but no details",
	       END);
	expect_n(&l, 2);
	assert_int_equal(l.st.devices, 200);
	bld_free(&b);
}

static void test_needs_check(void **state)
{
	(void)state;
	struct bld b;
	bld_standard(&b);
	struct tm_disk_superblock sb;
	bld_sb_get(&b, 0, &sb);
	sb.flags |= TM_SB_FLAG_NEEDS_CHECK;
	bld_sb_put(&b, 0, &sb);
	struct found l;
	check(&b, &l);
	expect_n(&l, 1);
	expect(&l, TM_CHK_NEEDS_CHECK, TM_SEV_WARNING, 0, NODEV, "needs_check", END);
	expect_sev(&l, 0, 1, 0);
	bld_free(&b);
}

static void test_metadata_size(void **state)
{
	(void)state;
	struct bld b;
	bld_standard(&b);
	/* The space map covers 20 of the file's 32 blocks. */
	struct tm_disk_superblock sb;
	bld_sb_get(&b, 0, &sb);
	struct tm_disk_sm_root m;
	bld_sm_root_get(sb.metadata_space_map_root, &m);
	m.nr_blocks = 20;
	bld_sm_root_put(sb.metadata_space_map_root, &m);
	bld_sb_put(&b, 0, &sb);
	struct found l;
	check(&b, &l);
	expect_n(&l, 1);
	expect(&l, TM_CHK_METADATA_SIZE, TM_SEV_INFO, NOBLOCK, NODEV, "the metadata file has 32 blocks, the space map covers 20",
	       END);
	expect_sev(&l, 1, 0, 0);
	bld_free(&b);
}

/* ---- damaged space maps ---- */

static void test_data_bitmap_damaged(void **state)
{
	(void)state;
	struct bld b;
	static const struct bld_map maps[] = { { 0, 10, 0 }, { 1, 16400, 0 } };
	bld_init(&b, 32, 20000);
	bld_device(&b, 1, maps, 2, 0, 0);
	bld_finish(&b);
	data_count_set(&b, 500, 1);   /* a leak where the map is readable */
	data_count_set(&b, 16500, 1); /* one where it is not */
	smash(&b, b.data_bitmap[1]);
	struct found l;
	check(&b, &l);
	char want[160];
	snprintf(want, sizeof(want), "block %llu (data space map): bad checksum in bitmap 1",
		 (unsigned long long)b.data_bitmap[1]);
	expect(&l, TM_CHK_SM_BAD, TM_SEV_FATAL, b.data_bitmap[1], NODEV, want, "counts of blocks 16320..19999 unknown",
	       END);
	/* 16400 reads as free and 16500 as leaked: neither is reported. */
	expect(&l, TM_CHK_DATA_LEAK, TM_SEV_WARNING, NOBLOCK, NODEV, "data block 500 ", END);
	expect_n(&l, 2);
	bld_free(&b);
}

/* A data space map index entry pointing at the superblock: the index leaf
 * holding it is named, and that bitmap's counts are unknown. */
static void test_data_index_entry_bad(void **state)
{
	(void)state;
	struct bld b;
	static const struct bld_map maps[] = { { 0, 10, 0 }, { 1, 16400, 0 } };
	bld_init(&b, 32, 20000);
	bld_device(&b, 1, maps, 2, 0, 0);
	bld_finish(&b);
	unsigned char *ix = bld_block(&b, b.data_index_root);
	/* Entry 1 (value at 32 + 8 * 168 + 16): bitmap 1 at block 0. */
	tm_put_le64(ix + 32 + 8 * 168 + 16, 0);
	bld_reseal_node(&b, b.data_index_root);
	meta_count_set(&b, b.data_bitmap[1], 0); /* the bitmap is no longer referenced */
	struct found l;
	check(&b, &l);
	char want[160];
	snprintf(want, sizeof(want), "block %llu (data space map): index entry for bitmap 1 points at block 0",
		 (unsigned long long)b.data_index_root);
	expect(&l, TM_CHK_SM_BAD, TM_SEV_FATAL, b.data_index_root, NODEV, want, "counts of blocks 16320..19999 unknown",
	       END);
	expect_n(&l, 1);
	bld_free(&b);
}

static void test_metadata_bitmap_damaged(void **state)
{
	(void)state;
	struct bld b;
	bld_standard(&b);
	meta_count_set(&b, 20, 1); /* would be a leak */
	smash(&b, b.meta_bitmap[0]);
	struct found l;
	check(&b, &l);
	expect(&l, TM_CHK_SM_BAD, TM_SEV_FATAL, b.meta_bitmap[0], NODEV, "(metadata space map): bad checksum in bitmap 0",
	       "counts of blocks 0..31 unknown", END);
	expect_n(&l, 1);
	bld_free(&b);
}

/* ---- many findings ---- */

static void test_many_wrong_counts(void **state)
{
	(void)state;
	struct bld b;
	struct bld_map maps[22 + 23];
	for (uint64_t i = 0; i < 22; i++)
		maps[i] = (struct bld_map){ .vblock = i, .dblock = 100 + 2 * i, .time = 0 };
	for (uint64_t i = 0; i < 23; i++)
		maps[22 + i] = (struct bld_map){ .vblock = 22 + i, .dblock = 2000 + i, .time = 0 };
	bld_init(&b, 32, 1024);
	bld_device(&b, 1, maps, 45, 0, 0);
	bld_finish(&b);
	for (uint64_t i = 0; i < 22; i++)
		data_count_set(&b, 100 + 2 * i, 0); /* 22 separate under-counts */
	for (uint64_t i = 0; i < 25; i++)
		data_count_set(&b, 500 + 2 * i, 1); /* 25 separate leaks */
	struct found l;
	check(&b, &l);
	/* 20 of each one by one, then one line for the rest. */
	assert_int_equal(count_code(&l, TM_CHK_DATA_UNDERCOUNT), 21);
	assert_int_equal(count_code(&l, TM_CHK_DATA_LEAK), 21);
	assert_int_equal(count_code(&l, TM_CHK_MAPPING_BEYOND), 21);
	expect_n(&l, 63);
	expect(&l, TM_CHK_DATA_UNDERCOUNT, TM_SEV_FATAL, NOBLOCK, NODEV, "data block 100 has", END);
	expect(&l, TM_CHK_DATA_UNDERCOUNT, TM_SEV_FATAL, NOBLOCK, NODEV, "data block 138 has", END);
	expect(&l, TM_CHK_DATA_LEAK, TM_SEV_WARNING, NOBLOCK, NODEV, "data block 538 has", END);
	expect(&l, TM_CHK_MAPPING_BEYOND, TM_SEV_FATAL, b.dev[0].root, 1, "virtual block 41 maps to data block 2019,", END);
	for (size_t i = 0; i < l.n; i++) {
		const struct tm_finding *f = &l.f[i];
		assert_null(strstr(f->msg, "data block 140 ")); /* the 21st under-count */
		assert_null(strstr(f->msg, "data block 540 ")); /* the 21st leak */
		assert_null(strstr(f->msg, "data block 2020,"));
	}
	size_t summaries = 0;
	for (size_t i = 0; i < l.n; i++) {
		const struct tm_finding *f = &l.f[i];
		if (strncmp(f->msg, "and ", 4))
			continue;
		summaries++;
		assert_int_equal(f->block, NOBLOCK);
		assert_int_equal(f->dev_id, -1);
		if (!strcmp(f->code, TM_CHK_DATA_UNDERCOUNT)) {
			assert_string_equal(f->msg, "and 2 more like the ones above");
			assert_int_equal(f->severity, TM_SEV_FATAL);
		} else if (!strcmp(f->code, TM_CHK_DATA_LEAK)) {
			assert_string_equal(f->msg, "and 5 more like the ones above");
			assert_int_equal(f->severity, TM_SEV_WARNING);
		} else {
			assert_string_equal(f->code, TM_CHK_MAPPING_BEYOND);
			assert_string_equal(f->msg, "and 3 more like the ones above");
			assert_int_equal(f->severity, TM_SEV_FATAL);
		}
	}
	assert_int_equal(summaries, 3);
	/* The stats count every one. */
	expect_sev(&l, 0, 25, 22 + 23);

	/* Exactly 20: no summary. */
	bld_free(&b);
	bld_standard(&b);
	for (uint64_t i = 0; i < 20; i++)
		data_count_set(&b, 500 + 2 * i, 1);
	check(&b, &l);
	expect_n(&l, 20);
	expect_sev(&l, 0, 20, 0);
	bld_free(&b);
}

/* ---- the data file ---- */

static void make_data_file(char *path, uint64_t size)
{
	const char *t = getenv("TMPDIR");
	snprintf(path, 4096, "%s/dmr-unit-data-XXXXXX", t && *t ? t : "/tmp");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unit_tmp_track(path);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	close(fd);
}

static void test_data_file_short(void **state)
{
	(void)state;
	struct bld b;
	bld_standard(&b); /* 1024 blocks of 64 KiB; data 10..12 and 20 mapped */
	const uint64_t bs = 65536;
	char path[4096];
	struct tm_check_opts opts = { 0 };
	struct found l;

	/* Long enough, or longer. */
	make_data_file(path, 1024 * bs);
	opts.data_path = path;
	check_opts(&b, &opts, &l);
	expect_clean(&l);
	unlink(path);
	make_data_file(path, 2048 * bs);
	check_opts(&b, &opts, &l);
	expect_clean(&l);
	unlink(path);

	/* Short, nothing mapped beyond its end (21 blocks: 20 is inside). */
	make_data_file(path, 21 * bs);
	check_opts(&b, &opts, &l);
	expect_n(&l, 1);
	char want[4096 + 256];
	snprintf(want, sizeof(want),
		 "%s holds %llu bytes, the pool has 1024 blocks of 65536 bytes (67108864 bytes); 0 mapped blocks beyond its end",
		 path, (unsigned long long)(21 * bs));
	expect(&l, TM_CHK_DATA_SIZE, TM_SEV_WARNING, NOBLOCK, NODEV, want, END);
	unlink(path);

	/* Ending inside block 20: block 20 is cut. */
	make_data_file(path, 20 * bs + 512);
	check_opts(&b, &opts, &l);
	expect_n(&l, 1);
	expect(&l, TM_CHK_DATA_SIZE, TM_SEV_FATAL, NOBLOCK, NODEV, ": 1 mapped blocks beyond its end", END);
	unlink(path);

	/* Short with four mapped blocks beyond (10..12 and 20). */
	make_data_file(path, 10 * bs);
	check_opts(&b, &opts, &l);
	expect_n(&l, 1);
	expect(&l, TM_CHK_DATA_SIZE, TM_SEV_FATAL, NOBLOCK, NODEV, "holds 655360 bytes", ": 4 mapped blocks beyond its end",
	       END);
	expect_sev(&l, 0, 0, 1);
	unlink(path);

	/* Empty. */
	make_data_file(path, 0);
	check_opts(&b, &opts, &l);
	expect(&l, TM_CHK_DATA_SIZE, TM_SEV_FATAL, NOBLOCK, NODEV, "holds 0 bytes", ": 4 mapped blocks", END);
	unlink(path);

	/* Not a regular file, or missing: not checked. */
	const char *t = getenv("TMPDIR");
	opts.data_path = t && *t ? t : "/tmp";
	check_opts(&b, &opts, &l);
	expect_clean(&l);
	opts.data_path = "/nonexistent/dmr-unit-data";
	check_opts(&b, &opts, &l);
	expect_clean(&l);
	bld_free(&b);
}

static void test_skip_data_counts(void **state)
{
	(void)state;
	struct bld b;
	bld_standard(&b);
	data_count_set(&b, 500, 1);
	data_count_set(&b, 10, 0);
	struct tm_check_opts opts = { .skip_data_counts = 1 };
	struct found l;
	check_opts(&b, &opts, &l);
	expect_clean(&l);
	assert_int_equal(l.st.mappings, 4);

	/* The data file is still checked against what is mapped. */
	char path[4096];
	make_data_file(path, 15 * 65536);
	opts.data_path = path;
	check_opts(&b, &opts, &l);
	expect_n(&l, 1);
	expect(&l, TM_CHK_DATA_SIZE, TM_SEV_FATAL, NOBLOCK, NODEV, ": 1 mapped blocks beyond its end", END);
	unlink(path);
	bld_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clean_standard),
		cmocka_unit_test(test_clean_two_level),
		cmocka_unit_test(test_clean_overflow_counts),
		cmocka_unit_test(test_shared_leaf),
		cmocka_unit_test(test_shared_internal),
		cmocka_unit_test(test_shared_subtree_depths),
		cmocka_unit_test(test_many_shared_data),
		cmocka_unit_test(test_snapshot_held),
		cmocka_unit_test(test_snapshot_diverged),
		cmocka_unit_test(test_snapshot_unreadable),
		cmocka_unit_test(test_data_leak),
		cmocka_unit_test(test_data_undercount),
		cmocka_unit_test(test_data_overcount),
		cmocka_unit_test(test_metadata_counts),
		cmocka_unit_test(test_mapped_blocks),
		cmocka_unit_test(test_mapped_blocks_damaged),
		cmocka_unit_test(test_bad_leaf_checksum),
		cmocka_unit_test(test_damaged_other_trees),
		cmocka_unit_test(test_cycle_self),
		cmocka_unit_test(test_cycle_ancestor),
		cmocka_unit_test(test_child_out_of_range),
		cmocka_unit_test(test_metadata_file_short),
		cmocka_unit_test(test_key_outside_parent),
		cmocka_unit_test(test_underfull),
		cmocka_unit_test(test_mapping_beyond_pool),
		cmocka_unit_test(test_device_sets),
		cmocka_unit_test(test_device_sets_damaged),
		cmocka_unit_test(test_needs_check),
		cmocka_unit_test(test_metadata_size),
		cmocka_unit_test(test_data_bitmap_damaged),
		cmocka_unit_test(test_data_index_entry_bad),
		cmocka_unit_test(test_metadata_bitmap_damaged),
		cmocka_unit_test(test_many_wrong_counts),
		cmocka_unit_test(test_data_file_short),
		cmocka_unit_test(test_skip_data_counts),
	};
	if (!unit_tmpdir_usable())
		return UNIT_SKIP;
	return cmocka_run_group_tests_name("check", tests, NULL, unit_tmp_cleanup);
}
