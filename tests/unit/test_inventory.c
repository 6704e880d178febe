/* The inventory: the class rules (classes.c) and the joiner (inventory.c)
 * over builder pools and hand-made Docker states. */
#include "unit.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builder.h"
#include "dkstate.h"
#include "inventory.h"
#include "thinmeta/pool.h"
#include "thinmeta/usage.h"

/* ---- the rule table ---- */

static const enum inv_class owned[] = { INV_BASE, INV_IMAGE_LAYER, INV_CONTAINER, INV_CONTAINER_INIT,
					INV_BUILDKIT };

#define FP (INV_F_FILE | INV_F_POOL)

static void expect_class(unsigned facts, enum inv_class want)
{
	enum inv_class got = inv_classify(facts);
	if (got != want)
		fail_msg("facts 0x%x: %s, expected %s", facts, inv_class_name(got), inv_class_name(want));
}

/* Each class from the facts that define it. */
static void test_classify_each(void **state)
{
	(void)state;
	expect_class(INV_F_TXN_OPEN | FP, INV_OPEN_TRANSACTION);
	expect_class(INV_F_TXN_OPEN | INV_F_POOL, INV_OPEN_TRANSACTION);
	expect_class(INV_F_TXN_OPEN | INV_F_FILE, INV_OPEN_TRANSACTION);
	expect_class(INV_F_FILE | INV_F_FILE_INVALID, INV_BAD_FILE);
	expect_class(INV_F_FILE, INV_HOLLOW_FILE);
	expect_class(INV_F_POOL, INV_POOL_ORPHAN);
	expect_class(INV_F_TRANSIENT, INV_TRANSIENT);
	expect_class(FP | INV_F_DELETED, INV_DEFERRED_DELETED);
	expect_class(FP | INV_F_BASE, INV_BASE);
	expect_class(FP | INV_F_LAYER_REMOVING, INV_HALF_REMOVED_LAYER);
	expect_class(FP | INV_F_MOUNT | INV_F_CONTAINER | INV_F_CONTAINER_DEAD, INV_DEAD_CONTAINER);
	expect_class(FP | INV_F_MOUNT | INV_F_MOUNT_INIT | INV_F_CONTAINER, INV_CONTAINER_INIT);
	expect_class(FP | INV_F_MOUNT | INV_F_CONTAINER, INV_CONTAINER);
	expect_class(FP | INV_F_MOUNT, INV_ORPHAN_MOUNT);
	expect_class(FP | INV_F_LAYER | INV_F_LAYER_PINNED, INV_IMAGE_LAYER);
	expect_class(FP | INV_F_LAYER, INV_UNREFERENCED_LAYER);
	expect_class(FP | INV_F_BUILDKIT, INV_BUILDKIT);
	expect_class(FP, INV_DRIVER_ORPHAN);
	/* The fallback: nothing known. */
	expect_class(0, INV_DRIVER_ORPHAN);
}

/* Where rules overlap, the first in the table decides. */
static void test_classify_precedence(void **state)
{
	(void)state;
	unsigned all = (INV_F_TRANSIENT << 1) - 1;

	/* An open transaction beats everything. */
	expect_class(all, INV_OPEN_TRANSACTION);
	expect_class(all & ~(unsigned)INV_F_TRANSIENT, INV_OPEN_TRANSACTION);
	expect_class(INV_F_TXN_OPEN | INV_F_FILE | INV_F_FILE_INVALID, INV_OPEN_TRANSACTION);
	expect_class(INV_F_TXN_OPEN | FP | INV_F_BASE, INV_OPEN_TRANSACTION);

	/* A bad file stays bad whatever refers to its hash. */
	expect_class(FP | INV_F_FILE_INVALID | INV_F_LAYER | INV_F_LAYER_PINNED, INV_BAD_FILE);
	expect_class(INV_F_FILE | INV_F_FILE_INVALID | INV_F_DELETED, INV_BAD_FILE);

	/* Hollow file = a file without a pool device, however well owned. */
	expect_class(INV_F_FILE | INV_F_BASE, INV_HOLLOW_FILE);
	expect_class(INV_F_FILE | INV_F_LAYER | INV_F_LAYER_PINNED, INV_HOLLOW_FILE);
	expect_class(INV_F_FILE | INV_F_MOUNT | INV_F_CONTAINER, INV_HOLLOW_FILE);
	expect_class(INV_F_FILE | INV_F_DELETED, INV_HOLLOW_FILE);
	expect_class(INV_F_FILE | INV_F_BUILDKIT, INV_HOLLOW_FILE);

	/* Deferred-deleted beats base and every owner. */
	expect_class(FP | INV_F_DELETED | INV_F_BASE, INV_DEFERRED_DELETED);
	expect_class(FP | INV_F_DELETED | INV_F_LAYER | INV_F_LAYER_PINNED, INV_DEFERRED_DELETED);
	expect_class(FP | INV_F_DELETED | INV_F_MOUNT | INV_F_CONTAINER, INV_DEFERRED_DELETED);
	expect_class(FP | INV_F_DELETED | INV_F_LAYER_REMOVING, INV_DEFERRED_DELETED);

	/* Half-removed only when not also a live layer or a mount. */
	expect_class(FP | INV_F_LAYER_REMOVING | INV_F_LAYER | INV_F_LAYER_PINNED, INV_IMAGE_LAYER);
	expect_class(FP | INV_F_LAYER_REMOVING | INV_F_LAYER, INV_UNREFERENCED_LAYER);
	expect_class(FP | INV_F_LAYER_REMOVING | INV_F_MOUNT | INV_F_CONTAINER, INV_CONTAINER);
	expect_class(FP | INV_F_LAYER_REMOVING | INV_F_MOUNT, INV_ORPHAN_MOUNT);
	expect_class(FP | INV_F_LAYER_REMOVING | INV_F_BUILDKIT, INV_HALF_REMOVED_LAYER);

	/* Dead container > container-init > container; mounts before layers. */
	expect_class(FP | INV_F_MOUNT | INV_F_MOUNT_INIT | INV_F_CONTAINER | INV_F_CONTAINER_DEAD,
		     INV_DEAD_CONTAINER);
	expect_class(FP | INV_F_MOUNT | INV_F_CONTAINER | INV_F_LAYER | INV_F_LAYER_PINNED, INV_CONTAINER);
	expect_class(FP | INV_F_MOUNT | INV_F_MOUNT_INIT | INV_F_CONTAINER | INV_F_LAYER, INV_CONTAINER_INIT);
	/* Dead without a container is not possible; the mount alone is orphaned. */
	expect_class(FP | INV_F_MOUNT | INV_F_MOUNT_INIT, INV_ORPHAN_MOUNT);
	expect_class(FP | INV_F_MOUNT | INV_F_LAYER | INV_F_LAYER_PINNED, INV_ORPHAN_MOUNT);
	expect_class(FP | INV_F_MOUNT | INV_F_BUILDKIT, INV_ORPHAN_MOUNT);

	/* Image layer vs unreferenced layer vs BuildKit. */
	expect_class(FP | INV_F_LAYER | INV_F_LAYER_PINNED | INV_F_BUILDKIT, INV_IMAGE_LAYER);
	/* A layer that only BuildKit tracks (RegisterByGraphID: the cache-id
	 * is the BuildKit key) is BuildKit's, not unreferenced. */
	expect_class(FP | INV_F_LAYER | INV_F_BUILDKIT, INV_BUILDKIT);
	expect_class(FP | INV_F_LAYER_PINNED, INV_DRIVER_ORPHAN); /* pinned means nothing without a layer */

	/* Pool orphan: no file, whatever else. */
	expect_class(INV_F_POOL | INV_F_DELETED, INV_POOL_ORPHAN);
	expect_class(INV_F_POOL | INV_F_BASE, INV_POOL_ORPHAN);

	/* Transients never carry pool or file facts in practice; the rule
	 * still comes after the one-side-missing rules. */
	expect_class(INV_F_TRANSIENT | INV_F_FILE, INV_HOLLOW_FILE);
	expect_class(INV_F_TRANSIENT | FP, INV_TRANSIENT);
}

/* Every class is reachable; every rule's own facts select it. */
static void test_classify_reachable(void **state)
{
	(void)state;
	unsigned all = (INV_F_TRANSIENT << 1) - 1;
	int seen[INV_CLASS_COUNT] = { 0 };
	for (unsigned f = 0; f <= all; f++) {
		enum inv_class c = inv_classify(f);
		assert_true(c < INV_CLASS_COUNT);
		seen[c] = 1;
	}
	for (int c = 0; c < INV_CLASS_COUNT; c++)
		if (!seen[c])
			fail_msg("class %s is unreachable", inv_class_name((enum inv_class)c));

	assert_int_equal(inv_nr_rules, 16);
	int ruled[INV_CLASS_COUNT] = { 0 };
	for (size_t i = 0; i < inv_nr_rules; i++) {
		const struct inv_rule *r = &inv_rules[i];
		assert_true(r->cls < INV_CLASS_COUNT);
		assert_int_equal(r->need & r->reject, 0);
		assert_int_not_equal(r->need, 0);
		ruled[r->cls]++;
		if (inv_classify(r->need) != r->cls)
			fail_msg("rule %zu (%s): its own facts give %s", i, inv_class_name(r->cls),
				 inv_class_name(inv_classify(r->need)));
		/* ... and with both sides present, unless it rejects one. */
		if (!(r->reject & FP) && inv_classify(r->need | FP) != r->cls)
			fail_msg("rule %zu (%s): with file and pool gives %s", i, inv_class_name(r->cls),
				 inv_class_name(inv_classify(r->need | FP)));
	}
	for (int c = 0; c < INV_CLASS_COUNT; c++)
		assert_int_equal(ruled[c], 1);
	/* The first rule wins: OPEN_TRANSACTION first, DRIVER_ORPHAN last. */
	assert_int_equal(inv_rules[0].cls, INV_OPEN_TRANSACTION);
	assert_int_equal(inv_rules[inv_nr_rules - 1].cls, INV_DRIVER_ORPHAN);
}

static void test_class_texts(void **state)
{
	(void)state;
	for (int c = 0; c < INV_CLASS_COUNT; c++) {
		enum inv_class k = (enum inv_class)c;
		const char *s[] = { inv_class_name(k), inv_class_title(k), inv_class_meaning(k), inv_class_action(k) };
		for (size_t i = 0; i < 4; i++) {
			assert_non_null(s[i]);
			if (strlen(s[i]) < 2 || strcmp(s[i], "?") == 0)
				fail_msg("class %d: text %zu is \"%s\"", c, i, s[i]);
		}
		/* Names are lower-case words joined by dashes. */
		for (const char *p = s[0]; *p; p++)
			if (!((*p >= 'a' && *p <= 'z') || *p == '-'))
				fail_msg("class name \"%s\"", s[0]);
		for (int d = 0; d < c; d++) {
			assert_string_not_equal(inv_class_name(k), inv_class_name((enum inv_class)d));
			assert_string_not_equal(inv_class_title(k), inv_class_title((enum inv_class)d));
		}
		int is_owned = 0;
		for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++)
			is_owned |= owned[i] == k;
		if (inv_class_is_leftover(k) != !is_owned)
			fail_msg("class %s: leftover flag %d", s[0], inv_class_is_leftover(k));
	}
	assert_string_equal(inv_class_name(INV_POOL_ORPHAN), "pool-orphan");
	assert_string_equal(inv_class_title(INV_POOL_ORPHAN), "Pool orphans");
	assert_string_equal(inv_class_name(INV_BASE), "base");
	assert_string_equal(inv_class_name(INV_DRIVER_ORPHAN), "driver-orphan");
	assert_string_equal(inv_class_name(INV_CLASS_COUNT), "?");
	assert_string_equal(inv_class_title(INV_CLASS_COUNT), "?");
	assert_string_equal(inv_class_meaning(INV_CLASS_COUNT), "?");
	assert_string_equal(inv_class_action(INV_CLASS_COUNT), "?");
	assert_int_equal(inv_class_is_leftover(INV_CLASS_COUNT), 0);
	assert_int_equal(inv_class_is_leftover((enum inv_class)1000), 0);
}

/* ---- a pool with its usage, opened the way poolview does ---- */

struct tpool {
	char path[4096];
	struct tm_pool *p;
	struct tm_devlist devs;
	uint64_t *roots;
	size_t *dev_of_root;
	size_t nroots;
	struct tm_usage u;
};

static void tpool_open(struct tpool *t, const struct bld *b)
{
	struct dmr_err err = { 0 };
	memset(t, 0, sizeof(*t));
	bld_write_tmp(b, t->path);
	if (tm_pool_open(&t->p, t->path, 0, &err))
		fail_msg("tm_pool_open: %s", err.msg);
	if (tm_devices_read(t->p, &t->p->sb, &t->devs, NULL, NULL, &err))
		fail_msg("tm_devices_read: %s", err.msg);
	t->roots = calloc(t->devs.n + 1, sizeof(*t->roots));
	t->dev_of_root = calloc(t->devs.n + 1, sizeof(*t->dev_of_root));
	assert_non_null(t->roots);
	assert_non_null(t->dev_of_root);
	for (size_t i = 0; i < t->devs.n; i++) {
		if (!t->devs.dev[i].in_mapping)
			continue;
		t->roots[t->nroots] = t->devs.dev[i].mapping_root;
		t->dev_of_root[t->nroots++] = i;
	}
	if (tm_usage_compute(t->p, t->roots, t->nroots, t->p->sb.data_sm.nr_blocks, NULL, NULL, &t->u, &err))
		fail_msg("tm_usage_compute: %s", err.msg);
}

static void tpool_close(struct tpool *t)
{
	tm_usage_free(&t->u);
	free(t->roots);
	free(t->dev_of_root);
	tm_devlist_free(&t->devs);
	tm_pool_close(t->p);
	unlink(t->path);
}

static int tpool_build(struct tpool *t, struct inventory *inv, const struct dk_state *st, const char *data_path,
		       struct dmr_err *err)
{
	return inv_build(inv, t->p, &t->devs, t->dev_of_root, t->nroots, &t->u, st, data_path, err);
}

/* ---- hand-made Docker state ---- */

/* 64 copies of c, plus an optional suffix ("-init"). */
static const char *h64(char c, const char *suffix)
{
	static char buf[8][80];
	static unsigned next;
	char *o = buf[next++ % 8];
	memset(o, c, 64);
	snprintf(o + 64, 16, "%s", suffix ? suffix : "");
	return o;
}

static struct dk_cs_layer *add_cs_layer(struct dk_state *st, const char *id, const char *parent, int incomplete)
{
	st->cs_layers = grow(st->cs_layers, st->nr_cs_layers, sizeof(*st->cs_layers));
	struct dk_cs_layer *l = &st->cs_layers[st->nr_cs_layers++];
	l->id = xstrdup(id);
	l->parent = xstrdup(parent);
	l->incomplete = incomplete;
	return l;
}

static void state_free(struct dk_state *st)
{
	free(st->root);
	free(st->home);
	free(st->prefix);
	free(st->pool_name);
	for (size_t i = 0; i < st->nr_files; i++) {
		free(st->files[i].hash);
		free(st->files[i].name);
		free(st->files[i].error);
	}
	free(st->files);
	free(st->txn.device_hash);
	free(st->deviceset.base_uuid);
	free(st->deviceset.base_fs);
	for (size_t i = 0; i < st->nr_transients; i++)
		free(st->transients[i].path);
	free(st->transients);
	for (size_t i = 0; i < st->nr_layers; i++) {
		struct dk_layer *l = &st->layers[i];
		free(l->chain_id);
		free(l->dir);
		free(l->cache_id);
		free(l->diff_id);
		free(l->parent);
		free(l->error);
	}
	free(st->layers);
	for (size_t i = 0; i < st->nr_mounts; i++) {
		struct dk_mount *m = &st->mounts[i];
		free(m->name);
		free(m->mount_id);
		free(m->init_id);
		free(m->parent);
		free(m->error);
	}
	free(st->mounts);
	for (size_t i = 0; i < st->nr_images; i++) {
		struct dk_image *im = &st->images[i];
		free(im->id);
		strv_free(im->diff_ids, im->nr_diff_ids);
		strv_free(im->chain_ids, im->nr_diff_ids);
		strv_free(im->tags, im->nr_tags);
		free(im->top_layer);
		free(im->error);
	}
	free(st->images);
	for (size_t i = 0; i < st->nr_containers; i++) {
		struct dk_container *c = &st->containers[i];
		free(c->id);
		free(c->name);
		free(c->image);
		free(c->driver);
		free(c->layer);
		free(c->error);
	}
	free(st->containers);
	for (size_t i = 0; i < st->nr_buildkit; i++) {
		free(st->buildkit[i].key);
		free(st->buildkit[i].parent);
		free(st->buildkit[i].chain_id);
	}
	free(st->buildkit);
	for (size_t i = 0; i < st->nr_cs_layers; i++) {
		free(st->cs_layers[i].id);
		free(st->cs_layers[i].parent);
		strv_free(st->cs_layers[i].names, st->cs_layers[i].nr_names);
	}
	free(st->cs_layers);
	memset(st, 0, sizeof(*st));
}

/* ---- checks on items ---- */

static int has_str(const char *const *arr, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(arr[i], s) == 0)
			return 1;
	return 0;
}

static void expect_str(const char *const *arr, size_t n, const char *s, const char *what)
{
	if (!has_str(arr, n, s)) {
		for (size_t i = 0; i < n; i++)
			fprintf(stderr, "  %s[%zu] = %s\n", what, i, arr[i]);
		fail_msg("no %s \"%s\"", what, s);
	}
}

static void expect_evidence(const struct inv_item *it, const char *needle)
{
	for (size_t i = 0; i < it->nr_evidence; i++)
		if (strstr(it->evidence[i], needle))
			return;
	for (size_t i = 0; i < it->nr_evidence; i++)
		fprintf(stderr, "  evidence: %s\n", it->evidence[i]);
	fail_msg("item %lld (%s): no evidence containing \"%s\"", (long long)it->thin_id,
		 it->hash ? it->hash : "-", needle);
}

static void no_evidence(const struct inv_item *it, const char *needle)
{
	for (size_t i = 0; i < it->nr_evidence; i++)
		if (strstr(it->evidence[i], needle))
			fail_msg("item %lld: unexpected evidence \"%s\"", (long long)it->thin_id, it->evidence[i]);
}

static const struct inv_item *dev_item(const struct inventory *inv, uint64_t id, enum inv_class cls)
{
	const struct inv_item *it = inv_item_for_device(inv, id);
	if (!it)
		fail_msg("no item for thin device %llu", (unsigned long long)id);
	assert_int_equal(it->thin_id, (int64_t)id);
	assert_non_null(it->dev);
	assert_int_equal(it->dev->dev_id, id);
	if (it->cls != cls)
		fail_msg("thin device %llu: %s (facts 0x%x), expected %s", (unsigned long long)id,
			 inv_class_name(it->cls), it->facts, inv_class_name(cls));
	assert_true(it->facts & INV_F_POOL);
	return it;
}

static const struct inv_item *hash_item(const struct inventory *inv, const char *hash, enum inv_class cls)
{
	for (size_t i = 0; i < inv->nr_items; i++) {
		const struct inv_item *it = &inv->items[i];
		if (it->thin_id < 0 && it->hash && strcmp(it->hash, hash) == 0) {
			if (it->cls != cls)
				fail_msg("file %s: %s (facts 0x%x), expected %s", hash, inv_class_name(it->cls),
					 it->facts, inv_class_name(cls));
			return it;
		}
	}
	fail_msg("no file-only item %s", hash);
	return NULL;
}

static void expect_usage(const struct inv_item *it, uint64_t mapped, uint64_t exclusive, uint64_t highest)
{
	assert_true(it->has_usage);
	if (it->usage.mapped != mapped || it->usage.exclusive != exclusive || it->usage.highest != highest)
		fail_msg("device %lld: mapped %llu exclusive %llu highest %llu, expected %llu %llu %llu",
			 (long long)it->thin_id, (unsigned long long)it->usage.mapped,
			 (unsigned long long)it->usage.exclusive, (unsigned long long)it->usage.highest,
			 (unsigned long long)mapped, (unsigned long long)exclusive, (unsigned long long)highest);
}

/* Pool devices by thin id, then file-only items by hash, then transients by path. */
static void expect_order(const struct inventory *inv)
{
	int stage = 0;
	const struct inv_item *prev = NULL;
	for (size_t i = 0; i < inv->nr_items; i++) {
		const struct inv_item *it = &inv->items[i];
		int k = it->thin_id >= 0 ? 0 : it->cls == INV_TRANSIENT ? 2 : 1;
		if (k < stage)
			fail_msg("item %zu out of order (group %d after %d)", i, k, stage);
		if (prev && k == stage) {
			if (k == 0 && !(prev->thin_id < it->thin_id))
				fail_msg("thin ids %lld then %lld", (long long)prev->thin_id, (long long)it->thin_id);
			if (k == 1 && strcmp(prev->hash, it->hash) > 0)
				fail_msg("hashes %s then %s", prev->hash, it->hash);
			if (k == 2 && strcmp(prev->path, it->path) >= 0)
				fail_msg("paths %s then %s", prev->path, it->path);
		}
		stage = k;
		prev = it;
	}
}

/* ---- the Docker layout ---- */

#define BK_KEY "abcdefghijklmnopqrstuvwxy"  /* a BuildKit snapshot only */
#define BK_LAYER "zyxwvutsrqponmlkjihgfedcb" /* a BuildKit key that became a layer no image uses */
#define CT_ID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define DEAD_ID "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define IMG1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define IMG2 "sha256:e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e2"
#define C1 "sha256:c100000000000000000000000000000000000000000000000000000000000000"
#define C2 "sha256:c200000000000000000000000000000000000000000000000000000000000000"
#define C3 "sha256:c300000000000000000000000000000000000000000000000000000000000000"
#define C4 "sha256:c400000000000000000000000000000000000000000000000000000000000000"
#define C5 "sha256:c500000000000000000000000000000000000000000000000000000000000000"

static void build_docker_pool(struct bld *b)
{
	bld_init(b, 64, 1024);
	b->time = 3;
	b->trans_id = 7;
	static const struct bld_map base[] = { { 0, 10, 0 }, { 1, 11, 0 }, { 2, 12, 0 }, { 3, 13, 0 } };
	static const struct bld_map l1[] = { { 0, 10, 0 }, { 1, 11, 0 }, { 4, 20, 1 } };
	static const struct bld_map l2[] = { { 0, 10, 0 }, { 1, 11, 0 }, { 4, 20, 1 }, { 5, 21, 1 } };
	static const struct bld_map init[] = { { 0, 10, 0 }, { 1, 11, 0 }, { 4, 20, 1 }, { 5, 21, 1 }, { 6, 22, 2 } };
	static const struct bld_map ct[] = { { 0, 10, 0 }, { 1, 11, 0 }, { 4, 20, 1 }, { 5, 21, 1 }, { 6, 22, 2 },
					     { 7, 23, 2 } };
	bld_device(b, 1, base, 4, 0, 0);
	bld_device(b, 2, l1, 3, 0, 0);
	bld_device(b, 3, l2, 4, 0, 0);
	bld_device(b, 4, init, 5, 0, 0);
	bld_device(b, 5, ct, 6, 0, 0);
	/* 6..14, 16, 17: one block each, data block 24 + id. */
	for (uint64_t id = 6; id <= 17; id++) {
		if (id == 15)
			continue;
		struct bld_map m = { 0, 24 + id, 2 };
		bld_device(b, id, &m, 1, 0, 0);
	}
	bld_device(b, 15, NULL, 0, 0, BLD_NO_MAPPING);
	struct bld_map m18 = { 3, 42, 2 };
	bld_device(b, 18, &m18, 1, 0, BLD_NO_DETAILS);
	bld_finish(b);
}

static void build_docker_state(struct dk_state *st)
{
	memset(st, 0, sizeof(*st));
	st->layout = DK_LAYOUT_DOCKER;
	st->root = xstrdup("/var/lib/docker");
	st->home = xstrdup("devicemapper");
	add_file(st, "", 1);
	add_file(st, h64('1', NULL), 2);
	add_file(st, h64('2', NULL), 3);
	add_file(st, h64('c', "-init"), 4);
	add_file(st, h64('c', NULL), 5);
	/* 6: no file (pool orphan) */
	add_file(st, h64('d', NULL), 7)->deleted = 1;
	add_file(st, h64('e', NULL), 8);
	add_file(st, h64('f', NULL), 9);
	add_file(st, h64('9', NULL), 10);
	add_file(st, h64('8', NULL), 11);
	add_file(st, BK_KEY, 12);
	add_file(st, h64('7', NULL), 13);
	/* 14: claimed twice; the lower hash comes second here. */
	add_file(st, h64('4', NULL), 14);
	add_file(st, h64('3', NULL), 14);
	add_file(st, h64('5', NULL), 15);
	add_file(st, h64('9', "-init"), 16);
	add_file(st, BK_LAYER, 17);
	add_file(st, h64('6', NULL), 18);
	/* Not in the pool; does not parse. */
	add_file(st, h64('a', NULL), 99);
	struct dk_devfile *bad = add_file(st, "bad", -1);
	bad->valid = 0;
	bad->error = xstrdup("not JSON");
	bad->size = 0;

	add_layer(st, C1, h64('1', NULL), NULL, 0);
	add_layer(st, C2, h64('2', NULL), C1, 0);
	add_layer(st, C3, h64('e', NULL), C1, 0);
	add_layer(st, C4, h64('f', NULL), C1, 1);
	add_layer(st, C5, BK_LAYER, NULL, 0);

	static const char *const chains1[] = { C1, C2 };
	static const char *const tags1[] = { "busybox:latest", "busybox@sha256:abcd" };
	add_image(st, IMG1, chains1, 2, tags1, 2);
	static const char *const chains2[] = { C1 };
	add_image(st, IMG2, chains2, 1, NULL, 0);

	add_mount(st, CT_ID, h64('c', NULL), h64('c', "-init"), C2);
	add_mount(st, DEAD_ID, h64('9', NULL), h64('9', "-init"), C2);
	add_mount(st, "builder0000random", h64('8', NULL), NULL, C1);

	add_container(st, CT_ID, "web", IMG1)->running = 1;
	add_container(st, DEAD_ID, "zombie", IMG1)->dead = 1;

	add_buildkit(st, BK_KEY, NULL);
	add_buildkit(st, BK_LAYER, C5);

	/* Out of path order on purpose. */
	add_transient(st, DK_TRANSIENT_MNT_EMPTY, "devicemapper/mnt/0000", 0);
	add_transient(st, DK_TRANSIENT_METADATA_TMP, "devicemapper/metadata/.tmp123", 100);
}

static void test_build_docker(void **state)
{
	(void)state;
	struct bld b;
	build_docker_pool(&b);
	struct tpool t;
	tpool_open(&t, &b);
	assert_int_equal(t.devs.n, 18);
	struct dk_state st;
	build_docker_state(&st);
	struct inventory inv;
	struct dmr_err err = { 0 };
	if (tpool_build(&t, &inv, &st, NULL, &err))
		fail_msg("inv_build: %s", err.msg);

	/* 18 devices, 3 file-only items (the duplicate's loser, the hollow
	 * file, the bad file), 2 transients. */
	assert_int_equal(inv.nr_items, 18 + 3 + 2);
	expect_order(&inv);
	for (size_t i = 0; i < 18; i++)
		assert_int_equal(inv.items[i].thin_id, (int64_t)i + 1);

	const struct inv_item *it = dev_item(&inv, 1, INV_BASE);
	assert_string_equal(it->hash, "");
	assert_string_equal(it->path, "devicemapper/metadata/base");
	assert_true(it->facts & INV_F_BASE);
	assert_non_null(it->file);
	assert_int_equal(it->size_bytes, 10ull << 30);
	expect_usage(it, 4, 2, 4);
	assert_int_equal(it->fs.found, 0);

	it = dev_item(&inv, 2, INV_IMAGE_LAYER);
	assert_string_equal(it->hash, h64('1', NULL));
	assert_int_equal(it->facts, FP | INV_F_LAYER | INV_F_LAYER_PINNED);
	expect_usage(it, 3, 0, 5);
	/* The bottom layer belongs to both images: tags of one, id of the other. */
	assert_int_equal(it->nr_images, 3);
	expect_str(it->images, it->nr_images, "busybox:latest", "image");
	expect_str(it->images, it->nr_images, "busybox@sha256:abcd", "image");
	expect_str(it->images, it->nr_images, "e2e2e2e2e2e2", "image");
	assert_int_equal(it->nr_layers, 1);
	assert_string_equal(it->layers[0], C1);
	assert_int_equal(it->nr_containers, 0);
	expect_evidence(it, "layerdb: layer c10000000000 (diff d1ff00000000) has cache-id 1111");

	it = dev_item(&inv, 3, INV_IMAGE_LAYER);
	expect_usage(it, 4, 0, 6);
	assert_int_equal(it->nr_images, 2);
	expect_str(it->images, it->nr_images, "busybox:latest", "image");
	assert_false(has_str(it->images, it->nr_images, "e2e2e2e2e2e2"));
	assert_string_equal(it->layers[0], C2);

	it = dev_item(&inv, 4, INV_CONTAINER_INIT);
	assert_int_equal(it->facts, FP | INV_F_MOUNT | INV_F_MOUNT_INIT | INV_F_CONTAINER);
	expect_usage(it, 5, 0, 7);
	assert_int_equal(it->nr_containers, 1);
	assert_string_equal(it->containers[0], "web (0123456789ab, running)");
	expect_str(it->images, it->nr_images, "busybox:latest", "image");
	expect_evidence(it, "layerdb/mounts/" CT_ID ": init-id cccc");

	it = dev_item(&inv, 5, INV_CONTAINER);
	assert_int_equal(it->facts, FP | INV_F_MOUNT | INV_F_CONTAINER);
	expect_usage(it, 6, 1, 8);
	assert_int_equal(it->nr_containers, 1);
	assert_string_equal(it->containers[0], "web (0123456789ab, running)");
	assert_int_equal(it->nr_images, 2);
	expect_evidence(it, "layerdb/mounts/" CT_ID ": mount-id cccc");
	no_evidence(it, "init-id");

	it = dev_item(&inv, 6, INV_POOL_ORPHAN);
	assert_null(it->hash);
	assert_null(it->file);
	assert_int_equal(it->facts, INV_F_POOL);
	expect_usage(it, 1, 1, 1);
	expect_evidence(it, "no file in devicemapper/metadata/ has device_id 6");

	it = dev_item(&inv, 7, INV_DEFERRED_DELETED);
	assert_true(it->facts & INV_F_DELETED);
	expect_evidence(it, "\"deleted\": true");

	it = dev_item(&inv, 8, INV_UNREFERENCED_LAYER);
	assert_int_equal(it->facts, FP | INV_F_LAYER);
	assert_int_equal(it->nr_images, 0);
	assert_string_equal(it->layers[0], C3);

	it = dev_item(&inv, 9, INV_HALF_REMOVED_LAYER);
	assert_int_equal(it->facts, FP | INV_F_LAYER_REMOVING);
	assert_int_equal(it->nr_layers, 0);
	expect_evidence(it, "-0123abcd-removing is being removed (cache-id ffff");

	it = dev_item(&inv, 10, INV_DEAD_CONTAINER);
	assert_int_equal(it->nr_containers, 1);
	assert_string_equal(it->containers[0], "zombie (fedcba987654, dead)");

	it = dev_item(&inv, 11, INV_ORPHAN_MOUNT);
	assert_int_equal(it->facts, FP | INV_F_MOUNT);
	assert_int_equal(it->nr_containers, 0);
	expect_evidence(it, "no container builder0000r");

	it = dev_item(&inv, 12, INV_BUILDKIT);
	assert_string_equal(it->hash, BK_KEY);
	expect_evidence(it, "buildkit/snapshots.db has snapshot " BK_KEY);

	it = dev_item(&inv, 13, INV_DRIVER_ORPHAN);
	assert_int_equal(it->facts, FP);

	/* Claimed twice: the lower hash wins, whatever the file order. */
	it = dev_item(&inv, 14, INV_DRIVER_ORPHAN);
	assert_string_equal(it->hash, h64('3', NULL));
	expect_evidence(it, "devicemapper/metadata/4444444444444444444444444444444444444444444444444444444444444444 "
			    "also claims thin device 14");

	/* Details only: no mapping tree, no usage. */
	it = dev_item(&inv, 15, INV_DRIVER_ORPHAN);
	assert_false(it->has_usage);
	assert_false(it->dev->in_mapping);

	it = dev_item(&inv, 16, INV_DEAD_CONTAINER);
	assert_true(it->facts & INV_F_MOUNT_INIT);
	assert_string_equal(it->containers[0], "zombie (fedcba987654, dead)");

	it = dev_item(&inv, 17, INV_BUILDKIT);
	assert_true(it->facts & INV_F_LAYER);
	assert_false(it->facts & INV_F_LAYER_PINNED);

	/* Top level only: usage, no details. */
	it = dev_item(&inv, 18, INV_DRIVER_ORPHAN);
	assert_false(it->dev->in_details);
	expect_usage(it, 1, 1, 4);

	/* File-only items. */
	it = hash_item(&inv, h64('4', NULL), INV_HOLLOW_FILE);
	assert_null(it->dev);
	assert_int_equal(it->thin_id, -1);
	expect_evidence(it, "thin device 14 belongs to another file");
	it = hash_item(&inv, h64('a', NULL), INV_HOLLOW_FILE);
	expect_evidence(it, "thin device 99 is not in the pool");
	assert_string_equal(it->path, "devicemapper/metadata/" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	it = hash_item(&inv, "bad", INV_BAD_FILE);
	assert_true(it->facts & INV_F_FILE_INVALID);
	expect_evidence(it, "devicemapper/metadata/bad: not JSON");
	no_evidence(it, "thin device");

	/* Transients, by path. */
	it = &inv.items[21];
	assert_int_equal(it->cls, INV_TRANSIENT);
	assert_int_equal(it->facts, INV_F_TRANSIENT);
	assert_string_equal(it->path, "devicemapper/metadata/.tmp123");
	assert_int_equal(it->transient_bytes, 100);
	expect_evidence(it, ".tmp123: temporary file of an interrupted metadata write");
	it = &inv.items[22];
	assert_string_equal(it->path, "devicemapper/mnt/0000");
	expect_evidence(it, "empty mount point");

	/* No item names a transaction. */
	for (size_t i = 0; i < inv.nr_items; i++)
		assert_false(inv.items[i].facts & INV_F_TXN_OPEN);

	/* The pool. */
	const struct inv_pool *ps = &inv.pool;
	assert_int_equal(ps->data_block_bytes, 65536);
	assert_int_equal(ps->data_blocks, 1024);
	/* 10..13, 20..23, 30..41 except 39 (15 has none), 42 */
	uint64_t used = 0;
	for (uint64_t d = 0; d < 1024; d++)
		used += b.data_count[d] != 0;
	assert_int_equal(used, 8 + 11 + 1);
	assert_int_equal(ps->data_used, used);
	assert_int_equal(ps->data_free, 1024 - used);
	assert_int_equal(ps->meta_blocks, 64);
	uint64_t mused = 0;
	for (uint64_t m = 0; m < 64; m++)
		mused += b.meta_count[m] != 0;
	assert_int_equal(ps->meta_used, mused);
	assert_int_equal(ps->trans_id, 7);
	assert_int_equal(ps->needs_check, 0);
	assert_int_equal(ps->held_root, 0);
	assert_int_equal(ps->free_but_mapped, 0);
	assert_int_equal(ps->held_unmapped, 0);
	assert_int_equal(ps->reclaim_known, 0);
	assert_int_equal(ps->reclaim_bytes, 0);
	assert_non_null(ps->reclaim_note);
	assert_string_equal(ps->reclaim_note, "no data file");
	/* free: 0..9, 14..19, 24..29, 43..1023 (30..42 are mapped except 39) */
	assert_int_equal(ps->reclaim_runs, 5);

	/* Lookups that miss. */
	assert_null(inv_item_for_device(&inv, 0));
	assert_null(inv_item_for_device(&inv, 19));
	assert_null(inv_item_for_device(&inv, 99));
	assert_null(inv_item_for_device(&inv, UINT64_MAX));

	inv_free(&inv);
	assert_int_equal(inv.nr_items, 0);
	assert_null(inv.items);
	state_free(&st);
	tpool_close(&t);
	bld_free(&b);
}

/* The same state with a sparse data file: reclaimable bytes, and the file
 * shorter than the pool. */
static void write_at(int fd, uint64_t off, size_t len, unsigned char v)
{
	unsigned char buf[8192];
	assert_true(len <= sizeof(buf));
	memset(buf, v, len);
	assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
}

/* The first 128 KiB of a fresh ext4 image, or NULL when mkfs.ext4 is
 * missing or fails. */
#define FS_UUID "0b7c6b4e-5d1a-4b8e-9a3e-2f1c0d9e8a71"

static unsigned char *ext4_head(void)
{
	if (system("PATH=\"$PATH:/sbin:/usr/sbin\" command -v mkfs.ext4 >/dev/null 2>&1") != 0)
		return NULL;
	const char *tmp = getenv("TMPDIR");
	char path[4096];
	snprintf(path, sizeof(path), "%s/dmr-inv-ext4-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unit_tmp_track(path);
	assert_int_equal(ftruncate(fd, 64 << 20), 0);
	char cmd[4400];
	snprintf(cmd, sizeof(cmd), "PATH=\"$PATH:/sbin:/usr/sbin\" mkfs.ext4 -F -q -U %s -L lbl '%s' >/dev/null 2>&1",
		 FS_UUID, path);
	unsigned char *buf = NULL;
	if (system(cmd) == 0) {
		buf = malloc(LF_PROBE_BYTES);
		assert_non_null(buf);
		assert_int_equal(pread(fd, buf, LF_PROBE_BYTES, 0), (ssize_t)LF_PROBE_BYTES);
	}
	close(fd);
	unlink(path);
	return buf;
}

static void test_build_reclaim(void **state)
{
	(void)state;
	struct bld b;
	build_docker_pool(&b);
	struct tpool t;
	tpool_open(&t, &b);
	struct dk_state st;
	build_docker_state(&st);

	const char *tmp = getenv("TMPDIR");
	char data[4096];
	snprintf(data, sizeof(data), "%s/dmr-inv-data-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	int fd = mkstemp(data);
	assert_true(fd >= 0);
	unit_tmp_track(data);
	const uint64_t bs = 65536;
	assert_int_equal(ftruncate(fd, (off_t)(1024 * bs)), 0);
	write_at(fd, 500 * bs, 4096, 1);          /* free block */
	write_at(fd, 10 * bs, 4096, 2);           /* mapped block */
	write_at(fd, 1023 * bs + 61440, 4096, 3); /* free, the last 4 KiB */
	write_at(fd, 5 * bs + 8192, 8192, 4);     /* free */
	write_at(fd, 20 * bs, 4096, 5);           /* mapped */
	assert_int_equal(fsync(fd), 0);

	struct inventory inv;
	struct dmr_err err = { 0 };
	if (tpool_build(&t, &inv, &st, data, &err))
		fail_msg("inv_build: %s", err.msg);
	const struct inv_pool *ps = &inv.pool;
	assert_int_equal(ps->reclaim_known, 1);
	assert_int_equal(ps->reclaim_bytes, 4096 + 4096 + 8192);
	assert_int_equal(ps->data_file_bytes, 1024 * bs);
	assert_true(ps->data_file_allocated >= 4096 * 4 + 8192);
	/* The three allocated pieces of free blocks: reclaim's calls. */
	assert_int_equal(ps->reclaim_runs, 3);
	/* Zeros everywhere: no filesystem, and no probe errors. */
	for (size_t i = 0; i < inv.nr_items; i++) {
		assert_int_equal(inv.items[i].fs.found, 0);
		no_evidence(&inv.items[i], "filesystem probe");
	}
	inv_free(&inv);

	/* An ext4 in data blocks 10, 11: the base and the four devices that
	 * share its first two blocks have it. */
	unsigned char *img = ext4_head();
	if (img) {
		assert_int_equal(pwrite(fd, img, LF_PROBE_BYTES, (off_t)(10 * bs)), (ssize_t)LF_PROBE_BYTES);
		free(img);
		if (tpool_build(&t, &inv, &st, data, &err))
			fail_msg("inv_build: %s", err.msg);
		for (size_t i = 0; i < inv.nr_items; i++) {
			const struct inv_item *it = &inv.items[i];
			no_evidence(it, "filesystem probe");
			if (it->thin_id >= 1 && it->thin_id <= 5) {
				assert_int_equal(it->fs.found, 1);
				assert_string_equal(it->fs.type, "ext4");
				assert_string_equal(it->fs.uuid, FS_UUID);
				assert_string_equal(it->fs.label, "lbl");
			} else {
				assert_int_equal(it->fs.found, 0);
			}
		}
		/* 16384 reclaimable bytes as before: 10 and 11 are mapped */
		assert_int_equal(inv.pool.reclaim_bytes, 4096 + 4096 + 8192);
		inv_free(&inv);
	} else {
		fprintf(stderr, "mkfs.ext4 not usable: no filesystem in the inventory test\n");
	}

	/* The file ends inside block 600: block 1023 is beyond it. */
	assert_int_equal(ftruncate(fd, (off_t)(600 * bs + 100)), 0);
	if (tpool_build(&t, &inv, &st, data, &err))
		fail_msg("inv_build: %s", err.msg);
	assert_int_equal(inv.pool.reclaim_known, 1);
	assert_int_equal(inv.pool.reclaim_bytes, 4096 + 8192);
	assert_int_equal(inv.pool.data_file_bytes, 600 * bs + 100);
	inv_free(&inv);

	/* A data path that is not there: unknown, with a reason. */
	char gone[4200];
	snprintf(gone, sizeof(gone), "%s.gone", data);
	if (tpool_build(&t, &inv, &st, gone, &err))
		fail_msg("inv_build: %s", err.msg);
	assert_int_equal(inv.pool.reclaim_known, 0);
	assert_non_null(inv.pool.reclaim_note);
	assert_contains(inv.pool.reclaim_note, "cannot be opened");
	inv_free(&inv);

	/* A directory is not a regular file. */
	const char *dir = tmp && *tmp ? tmp : "/tmp";
	if (tpool_build(&t, &inv, &st, dir, &err))
		fail_msg("inv_build: %s", err.msg);
	assert_int_equal(inv.pool.reclaim_known, 0);
	assert_contains(inv.pool.reclaim_note, "not a regular file");
	inv_free(&inv);

	close(fd);
	unlink(data);
	state_free(&st);
	tpool_close(&t);
	bld_free(&b);
}

/* An empty state: every device is a pool orphan; an empty pool and state:
 * nothing at all. */
static void test_build_empty(void **state)
{
	(void)state;
	struct bld b;
	bld_standard(&b);
	struct tpool t;
	tpool_open(&t, &b);
	struct dk_state st = { 0 };
	struct inventory inv;
	struct dmr_err err = { 0 };
	assert_int_equal(tpool_build(&t, &inv, &st, NULL, &err), 0);
	assert_int_equal(inv.nr_items, 1);
	const struct inv_item *it = dev_item(&inv, 1, INV_POOL_ORPHAN);
	expect_usage(it, 4, 4, 6);
	assert_int_equal(inv.pool.data_used, 4);
	assert_int_equal(inv.pool.data_free, 1020);
	assert_int_equal(inv.pool.reclaim_runs, 3);
	assert_null(inv_item_for_device(&inv, 2));
	inv_free(&inv);
	tpool_close(&t);
	bld_free(&b);

	/* The space map disagrees: 11 free but mapped, 500 held but unmapped. */
	bld_standard(&b);
	bld_bitmap_set(&b, b.data_bitmap[0], 11, 0);
	bld_bitmap_set(&b, b.data_bitmap[0], 500, 1);
	tpool_open(&t, &b);
	assert_int_equal(tpool_build(&t, &inv, &st, NULL, &err), 0);
	assert_int_equal(inv.pool.free_but_mapped, 1);
	assert_int_equal(inv.pool.held_unmapped, 1);
	assert_int_equal(inv.pool.data_used, 4);
	assert_int_equal(inv.pool.data_free, 1019);
	assert_int_equal(inv.pool.reclaim_runs, 4);
	inv_free(&inv);
	tpool_close(&t);
	bld_free(&b);

	bld_init(&b, 16, 100);
	bld_finish(&b);
	tpool_open(&t, &b);
	assert_int_equal(tpool_build(&t, &inv, &st, NULL, &err), 0);
	assert_int_equal(inv.nr_items, 0);
	assert_null(inv_item_for_device(&inv, 0));
	assert_int_equal(inv.pool.data_used, 0);
	assert_int_equal(inv.pool.data_free, 100);
	assert_int_equal(inv.pool.reclaim_runs, 1);
	inv_free(&inv);
	tpool_close(&t);
	bld_free(&b);
}

/* ---- an open transaction ---- */

static void test_build_open_transaction(void **state)
{
	(void)state;
	struct bld b;
	bld_init(&b, 32, 256);
	b.trans_id = 4;
	struct bld_map m = { 0, 1, 0 };
	bld_device(&b, 1, &m, 1, 0, 0);
	m.dblock = 2;
	bld_device(&b, 20, &m, 1, 0, 0);
	m.dblock = 3;
	bld_device(&b, 21, &m, 1, 0, 0);
	bld_finish(&b);
	struct tpool t;
	tpool_open(&t, &b);

	struct dk_state st = { 0 };
	add_file(&st, "", 1);
	add_file(&st, h64('n', NULL), 21);
	add_file(&st, h64('h', NULL), 50);
	st.txn.present = 1;
	st.txn.valid = 1;

	struct inventory inv;
	struct dmr_err err = { 0 };

	/* Open transaction 5 > pool 4, naming hash n and thin id 20: both
	 * the device with no file (the id) and the file's device (the hash). */
	st.txn.open_transaction_id = 5;
	st.txn.device_hash = xstrdup(h64('n', NULL));
	st.txn.device_id = 20;
	assert_int_equal(tpool_build(&t, &inv, &st, NULL, &err), 0);
	assert_int_equal(inv.nr_items, 4);
	expect_order(&inv);
	dev_item(&inv, 1, INV_BASE);
	const struct inv_item *it = dev_item(&inv, 20, INV_OPEN_TRANSACTION);
	assert_int_equal(it->facts, INV_F_POOL | INV_F_TXN_OPEN);
	expect_evidence(it, "open transaction 5 > pool transaction 4 names it");
	it = dev_item(&inv, 21, INV_OPEN_TRANSACTION);
	assert_int_equal(it->facts, FP | INV_F_TXN_OPEN);
	expect_evidence(it, "open transaction 5 > pool transaction 4");
	hash_item(&inv, h64('h', NULL), INV_HOLLOW_FILE);
	inv_free(&inv);

	/* Naming the hollow file by hash (its device never made it). */
	free(st.txn.device_hash);
	st.txn.device_hash = xstrdup(h64('h', NULL));
	st.txn.device_id = 50;
	assert_int_equal(tpool_build(&t, &inv, &st, NULL, &err), 0);
	dev_item(&inv, 20, INV_POOL_ORPHAN);
	dev_item(&inv, 21, INV_DRIVER_ORPHAN);
	it = hash_item(&inv, h64('h', NULL), INV_OPEN_TRANSACTION);
	expect_evidence(it, "open transaction 5 > pool transaction 4");
	expect_evidence(it, "thin device 50 is not in the pool");
	inv_free(&inv);

	/* The base. */
	free(st.txn.device_hash);
	st.txn.device_hash = xstrdup("");
	st.txn.device_id = 1;
	assert_int_equal(tpool_build(&t, &inv, &st, NULL, &err), 0);
	dev_item(&inv, 1, INV_OPEN_TRANSACTION);
	dev_item(&inv, 20, INV_POOL_ORPHAN);
	inv_free(&inv);

	/* Not ahead of the pool, not valid, not present: nothing is open. */
	free(st.txn.device_hash);
	st.txn.device_hash = xstrdup(h64('n', NULL));
	st.txn.device_id = 20;
	for (int k = 0; k < 4; k++) {
		st.txn.open_transaction_id = k == 0 ? 4 : k == 1 ? 3 : 5;
		st.txn.valid = k != 2;
		st.txn.present = k != 3;
		assert_int_equal(tpool_build(&t, &inv, &st, NULL, &err), 0);
		dev_item(&inv, 20, INV_POOL_ORPHAN);
		dev_item(&inv, 21, INV_DRIVER_ORPHAN);
		for (size_t i = 0; i < inv.nr_items; i++)
			assert_false(inv.items[i].facts & INV_F_TXN_OPEN);
		inv_free(&inv);
	}

	state_free(&st);
	tpool_close(&t);
	bld_free(&b);
}

/* ---- containers/storage ---- */

#define CS_CT "c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5"
#define CS_IMG "fedfedfedfedfedfedfedfedfedfedfedfedfedfedfedfedfedfedfedfedfedf"

static void test_build_cstorage(void **state)
{
	(void)state;
	struct bld b;
	bld_init(&b, 32, 256);
	for (uint64_t id = 1; id <= 7; id++) {
		struct bld_map m = { 0, 100 + id, 0 };
		bld_device(&b, id, &m, 1, 0, 0);
	}
	bld_finish(&b);
	struct tpool t;
	tpool_open(&t, &b);

	struct dk_state st = { 0 };
	st.layout = DK_LAYOUT_CSTORAGE;
	add_file(&st, "", 7);
	add_file(&st, h64('a', NULL), 1);
	add_file(&st, h64('b', NULL), 2);
	add_file(&st, h64('c', NULL), 3);
	add_file(&st, h64('9', NULL), 4);
	add_file(&st, h64('5', NULL), 5);
	add_file(&st, h64('7', NULL), 6);
	/* Listed top first, to check the parent chains are followed. */
	add_cs_layer(&st, h64('7', NULL), h64('c', NULL), 0); /* the container's */
	add_cs_layer(&st, h64('c', NULL), h64('b', NULL), 0); /* the image's top */
	add_cs_layer(&st, h64('b', NULL), h64('a', NULL), 0);
	add_cs_layer(&st, h64('a', NULL), NULL, 0);
	add_cs_layer(&st, h64('9', NULL), h64('a', NULL), 1); /* incomplete */
	add_cs_layer(&st, h64('5', NULL), h64('a', NULL), 0); /* nothing uses it */
	static const char *const tags[] = { "registry.fedoraproject.org/fedora:39" };
	struct dk_image *im = add_image(&st, CS_IMG, NULL, 0, tags, 1);
	im->top_layer = xstrdup(h64('c', NULL));
	struct dk_container *c = add_container(&st, CS_CT, "pod1", CS_IMG);
	c->layer = xstrdup(h64('7', NULL));

	struct inventory inv;
	struct dmr_err err = { 0 };
	assert_int_equal(tpool_build(&t, &inv, &st, NULL, &err), 0);
	assert_int_equal(inv.nr_items, 7);
	expect_order(&inv);

	const struct inv_item *it = dev_item(&inv, 1, INV_IMAGE_LAYER);
	assert_true(it->facts & INV_F_LAYER_PINNED);
	expect_evidence(it, "layers.json: layer aaaaaaaaaaaa");
	/* A lower layer of an image belongs to it, as with layerdb. */
	expect_str(it->images, it->nr_images, "registry.fedoraproject.org/fedora:39", "image");
	it = dev_item(&inv, 2, INV_IMAGE_LAYER);
	expect_str(it->images, it->nr_images, "registry.fedoraproject.org/fedora:39", "image");
	it = dev_item(&inv, 3, INV_IMAGE_LAYER);
	assert_int_equal(it->nr_images, 1);
	assert_string_equal(it->images[0], "registry.fedoraproject.org/fedora:39");
	it = dev_item(&inv, 4, INV_HALF_REMOVED_LAYER);
	assert_int_equal(it->facts, FP | INV_F_LAYER_REMOVING);
	expect_evidence(it, "layer 999999999999 is incomplete");
	it = dev_item(&inv, 5, INV_UNREFERENCED_LAYER);
	assert_int_equal(it->nr_images, 0);
	it = dev_item(&inv, 6, INV_CONTAINER);
	assert_false(it->facts & INV_F_LAYER);
	assert_true(it->facts & INV_F_MOUNT);
	assert_int_equal(it->nr_containers, 1);
	assert_string_equal(it->containers[0], "pod1 (c5c5c5c5c5c5, stopped)");
	expect_evidence(it, "containers.json: container c5c5c5c5c5c5 uses layer 777777777777");
	dev_item(&inv, 7, INV_BASE);
	inv_free(&inv);

	/* Without the image, only the container pins its chain. */
	st.nr_images = 0;
	assert_int_equal(tpool_build(&t, &inv, &st, NULL, &err), 0);
	dev_item(&inv, 1, INV_IMAGE_LAYER);
	dev_item(&inv, 3, INV_IMAGE_LAYER);
	assert_int_equal(inv_item_for_device(&inv, 3)->nr_images, 0);
	dev_item(&inv, 5, INV_UNREFERENCED_LAYER);
	inv_free(&inv);
	/* ... and without the container, nothing does. */
	st.nr_containers = 0;
	assert_int_equal(tpool_build(&t, &inv, &st, NULL, &err), 0);
	dev_item(&inv, 1, INV_UNREFERENCED_LAYER);
	dev_item(&inv, 3, INV_UNREFERENCED_LAYER);
	dev_item(&inv, 6, INV_UNREFERENCED_LAYER);
	inv_free(&inv);
	st.nr_images = 1;
	st.nr_containers = 1;

	/* A parent cycle does not hang. */
	free(st.cs_layers[3].parent);
	st.cs_layers[3].parent = xstrdup(h64('c', NULL));
	assert_int_equal(tpool_build(&t, &inv, &st, NULL, &err), 0);
	dev_item(&inv, 1, INV_IMAGE_LAYER);
	inv_free(&inv);

	state_free(&st);
	tpool_close(&t);
	bld_free(&b);
}

/* A layerdb parent cycle, layers with errors, a mount of a missing chain. */
static void test_build_odd_layerdb(void **state)
{
	(void)state;
	struct bld b;
	bld_init(&b, 32, 256);
	for (uint64_t id = 1; id <= 3; id++) {
		struct bld_map m = { 0, 10 + id, 0 };
		bld_device(&b, id, &m, 1, 0, 0);
	}
	bld_finish(&b);
	struct tpool t;
	tpool_open(&t, &b);
	struct dk_state st = { 0 };
	add_file(&st, h64('1', NULL), 1);
	add_file(&st, h64('2', NULL), 2);
	add_file(&st, h64('3', NULL), 3);
	add_layer(&st, C1, h64('1', NULL), C2, 0);
	add_layer(&st, C2, h64('2', NULL), C1, 0);
	/* Same cache-id twice: a live layer and a removing one. */
	add_layer(&st, C3, h64('3', NULL), NULL, 0);
	add_layer(&st, C4, h64('3', NULL), NULL, 1);
	static const char *const chains[] = { C1 };
	add_image(&st, IMG1, chains, 1, NULL, 0);
	add_mount(&st, "m", NULL, NULL, C5);

	struct inventory inv;
	struct dmr_err err = { 0 };
	assert_int_equal(tpool_build(&t, &inv, &st, NULL, &err), 0);
	const struct inv_item *it = dev_item(&inv, 1, INV_IMAGE_LAYER);
	assert_int_equal(it->nr_images, 1);
	assert_string_equal(it->images[0], "111111111111");
	dev_item(&inv, 2, INV_IMAGE_LAYER);
	it = dev_item(&inv, 3, INV_UNREFERENCED_LAYER);
	assert_true(it->facts & INV_F_LAYER_REMOVING);
	expect_evidence(it, "is being removed");
	inv_free(&inv);
	state_free(&st);
	tpool_close(&t);
	bld_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify_each),
		cmocka_unit_test(test_classify_precedence),
		cmocka_unit_test(test_classify_reachable),
		cmocka_unit_test(test_class_texts),
		cmocka_unit_test(test_build_docker),
		cmocka_unit_test(test_build_reclaim),
		cmocka_unit_test(test_build_empty),
		cmocka_unit_test(test_build_open_transaction),
		cmocka_unit_test(test_build_cstorage),
		cmocka_unit_test(test_build_odd_layerdb),
	};
	if (!unit_tmpdir_usable())
		return UNIT_SKIP;
	return cmocka_run_group_tests_name("inventory", tests, NULL, unit_tmp_cleanup);
}
