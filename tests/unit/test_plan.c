/* The clean plan (plan.c): what each class rule and each explicit target
 * removes, in which order, and what is left alone and why. The inventory
 * and Docker's state are made by hand: items with their class, device,
 * hash and file; the state's layers, mounts, containers, images, BuildKit
 * snapshots, transients and transaction. */
#include "unit.h"

#include "dkstate.h"
#include "docker/scan.h"
#include "inventory.h"
#include "plan.h"

/* ---- ids: a prefix padded with '0' to 64 hex digits, interned ---- */

#define MAX_IDS 128

static const char *intern(const char *pfx, const char *before, const char *after)
{
	static char tab[MAX_IDS][96];
	static size_t n;
	char s[96];
	size_t len = strlen(pfx);
	assert_true(len <= 64);
	char hex[65];
	memset(hex, '0', 64);
	memcpy(hex, pfx, len);
	hex[64] = 0;
	snprintf(s, sizeof(s), "%s%s%s", before, hex, after);
	for (size_t i = 0; i < n; i++)
		if (strcmp(tab[i], s) == 0)
			return tab[i];
	assert_true(n < MAX_IDS);
	memcpy(tab[n], s, sizeof(s));
	return tab[n++];
}

static const char *hx(const char *pfx) { return intern(pfx, "", ""); }          /* device hash, container id */
static const char *hinit(const char *pfx) { return intern(pfx, "", "-init"); }  /* a mount's init-id */
static const char *sha(const char *pfx) { return intern(pfx, "sha256:", ""); }  /* image id, chain id */

/* ---- Docker's state: dkstate.h, and freed by dk_state_free ---- */

static struct dk_label *labels(const char *key, size_t *nr)
{
	struct dk_label *l = calloc(2, sizeof(*l));
	assert_non_null(l);
	l[0].key = xstrdup("maintainer");
	l[0].value = xstrdup("someone");
	l[1].key = xstrdup(key);
	l[1].value = xstrdup("");
	*nr = 2;
	return l;
}

static void labels_free(struct dk_label *l, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(l[i].key);
		free(l[i].value);
	}
	free(l);
}

static const char *meta_path(const char *hash)
{
	static char buf[8][200];
	static unsigned next;
	char *o = buf[next++ % 8];
	snprintf(o, sizeof(buf[0]), DK_HOME "/metadata/%s", hash[0] ? hash : "base");
	return o;
}

static const char *layer_dir(const char *chain, int removing)
{
	static char buf[8][300];
	static unsigned next;
	char *o = buf[next++ % 8];
	snprintf(o, sizeof(buf[0]), DK_LAYERDB "/sha256/%s%s", chain + 7, removing ? "-0123abcd-removing" : "");
	return o;
}

static void set_txn(struct dk_state *st, uint64_t open_id, const char *hash, int64_t id)
{
	st->txn.present = 1;
	st->txn.valid = 1;
	st->txn.open_transaction_id = open_id;
	st->txn.device_hash = xstrdup(hash);
	st->txn.device_id = id;
}

static void state_init(struct dk_state *st)
{
	memset(st, 0, sizeof(*st));
	st->layout = DK_LAYOUT_DOCKER;
	st->root = xstrdup("/var/lib/docker");
	st->home = xstrdup(DK_HOME);
}

/* ---- the inventory: items by hand (add them once the state's files are
 * all there: an item points at its file) ---- */

#define MAX_ITEMS 32

struct tinv {
	struct inv_item items[MAX_ITEMS];
	struct inventory inv;
};

static void tinv_init(struct tinv *t, uint64_t trans_id)
{
	memset(t, 0, sizeof(*t));
	t->inv.items = t->items;
	t->inv.pool.trans_id = trans_id;
	t->inv.pool.data_block_bytes = 64 << 10;
}

static const struct dk_devfile *file_of(const struct dk_state *st, const char *hash)
{
	for (size_t i = 0; hash && i < st->nr_files; i++)
		if (strcmp(st->files[i].hash, hash) == 0)
			return &st->files[i];
	return NULL;
}

/* A device (thin_id >= 0) and/or the file of hash, of class cls; usage
 * mapped = 100 + thin id, exclusive = thin id. */
static struct inv_item *item(struct tinv *t, const struct dk_state *st, enum inv_class cls, int64_t thin_id,
			     const char *hash)
{
	assert_true(t->inv.nr_items < MAX_ITEMS);
	struct inv_item *it = &t->items[t->inv.nr_items++];
	memset(it, 0, sizeof(*it));
	it->cls = cls;
	it->thin_id = thin_id;
	it->hash = hash;
	it->file = file_of(st, hash);
	it->path = it->file ? it->file->name : NULL;
	if (thin_id >= 0) {
		it->facts |= INV_F_POOL;
		it->has_usage = 1;
		it->usage.mapped = 100 + (uint64_t)thin_id;
		it->usage.exclusive = (uint64_t)thin_id;
	}
	if (it->file)
		it->facts |= INV_F_FILE;
	return it;
}

static struct inv_item *transient_item(struct tinv *t, const char *path)
{
	assert_true(t->inv.nr_items < MAX_ITEMS);
	struct inv_item *it = &t->items[t->inv.nr_items++];
	memset(it, 0, sizeof(*it));
	it->cls = INV_TRANSIENT;
	it->facts = INV_F_TRANSIENT;
	it->thin_id = -1;
	it->path = path;
	return it;
}

/* ---- building and checking plans ---- */

struct targets {
	const char *dev[4], *con[4], *img[4];
};

static size_t count(const char *const *v, size_t max)
{
	size_t n = 0;
	while (n < max && v[n])
		n++;
	return n;
}

static void dump(const struct plan *pl)
{
	for (size_t i = 0; i < pl->nr_devs; i++)
		fprintf(stderr, "  dev %llu %s [%s]%s\n", (unsigned long long)pl->devs[i].thin_id,
			pl->devs[i].hash ? pl->devs[i].hash : "-", pl->devs[i].reason,
			pl->devs[i].is_protected ? " protected" : "");
	for (size_t i = 0; i < pl->nr_files; i++)
		fprintf(stderr, "  file %d %s %s [%s]%s\n", pl->files[i].rank,
			pl->files[i].op == PLAN_REWRITE_REPOS ? "rewrite" : "remove", pl->files[i].path,
			pl->files[i].reason, pl->files[i].optional ? " optional" : "");
	for (size_t i = 0; i < pl->nr_skips; i++)
		fprintf(stderr, "  skip %s: %s\n", pl->skips[i].what, pl->skips[i].why);
	for (size_t i = 0; i < pl->nr_drop_tags; i++)
		fprintf(stderr, "  untag %s\n", pl->drop_tags[i]);
	fprintf(stderr, "  refused %d\n", pl->refused);
}

static void build(struct plan *pl, const struct tinv *t, const struct dk_state *st, unsigned flags,
		  const struct targets *tg)
{
	static const struct targets none;
	if (!tg)
		tg = &none;
	struct plan_opts o = {
		.flags = flags,
		.devices = tg->dev,
		.nr_devices = count(tg->dev, 4),
		.containers = tg->con,
		.nr_containers = count(tg->con, 4),
		.images = tg->img,
		.nr_images = count(tg->img, 4),
	};
	struct dmr_err err = { 0 };
	memset(pl, 0xa5, sizeof(*pl)); /* plan_build initialises it */
	if (plan_build(pl, &t->inv, st, &o, &err))
		fail_msg("plan_build: %s", err.msg);
	/* The invariants of every plan. */
	for (size_t i = 1; i < pl->nr_devs; i++)
		if (pl->devs[i - 1].thin_id >= pl->devs[i].thin_id) {
			dump(pl);
			fail_msg("devices not in ascending thin id order, or twice");
		}
	for (size_t i = 0; i < pl->nr_files; i++) {
		if (i > 0 && pl->files[i - 1].rank > pl->files[i].rank) {
			dump(pl);
			fail_msg("files not sorted by rank");
		}
		for (size_t k = 0; k < i; k++)
			if (strcmp(pl->files[k].path, pl->files[i].path) == 0) {
				dump(pl);
				fail_msg("%s twice", pl->files[i].path);
			}
	}
	for (size_t i = 0; i < pl->nr_drop_tags; i++)
		for (size_t k = 0; k < i; k++)
			if (strcmp(pl->drop_tags[k], pl->drop_tags[i]) == 0) {
				dump(pl);
				fail_msg("untag %s twice", pl->drop_tags[i]);
			}
	assert_int_equal(plan_empty(pl), pl->nr_devs == 0 && pl->nr_files == 0);
}

static const struct plan_dev *dev_of(const struct plan *pl, uint64_t thin_id)
{
	for (size_t i = 0; i < pl->nr_devs; i++)
		if (pl->devs[i].thin_id == thin_id)
			return &pl->devs[i];
	return NULL;
}

static const struct plan_file *file_in(const struct plan *pl, const char *path)
{
	for (size_t i = 0; i < pl->nr_files; i++)
		if (strcmp(pl->files[i].path, path) == 0)
			return &pl->files[i];
	return NULL;
}

/* The devices, exactly (ascending). */
static void expect_devs(const struct plan *pl, const uint64_t *ids, size_t n)
{
	int ok = pl->nr_devs == n;
	for (size_t i = 0; ok && i < n; i++)
		ok = pl->devs[i].thin_id == ids[i];
	if (!ok) {
		dump(pl);
		fail_msg("devices differ (%zu planned, %zu expected)", pl->nr_devs, n);
	}
}
#define DEVS(pl, ...) expect_devs((pl), (const uint64_t[]){ __VA_ARGS__ }, \
				  sizeof((const uint64_t[]){ __VA_ARGS__ }) / sizeof(uint64_t))

/* The files, exactly, in order. */
static void expect_files(const struct plan *pl, const char *const *paths, size_t n)
{
	int ok = pl->nr_files == n;
	for (size_t i = 0; ok && i < n; i++)
		ok = strcmp(pl->files[i].path, paths[i]) == 0;
	if (!ok) {
		dump(pl);
		for (size_t i = 0; i < n; i++)
			fprintf(stderr, "  expected %s\n", paths[i]);
		fail_msg("files differ (%zu planned, %zu expected)", pl->nr_files, n);
	}
}
#define FILES(pl, ...) expect_files((pl), (const char *const[]){ __VA_ARGS__ }, \
				    sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(const char *))

static const struct plan_skip *skip_of(const struct plan *pl, const char *what)
{
	for (size_t i = 0; i < pl->nr_skips; i++)
		if (strstr(pl->skips[i].what, what))
			return &pl->skips[i];
	return NULL;
}

/* A skip whose what contains `what` and whose why contains `why`. */
static void expect_skip(const struct plan *pl, const char *what, const char *why)
{
	for (size_t i = 0; i < pl->nr_skips; i++)
		if (strstr(pl->skips[i].what, what) && strstr(pl->skips[i].why, why))
			return;
	dump(pl);
	fail_msg("no skip \"%s\" saying \"%s\"", what, why);
}

static void expect_untag(const struct plan *pl, const char *const *tags, size_t n)
{
	int ok = pl->nr_drop_tags == n;
	for (size_t i = 0; ok && i < n; i++)
		ok = strcmp(pl->drop_tags[i], tags[i]) == 0;
	if (!ok) {
		dump(pl);
		fail_msg("untagged differ (%zu planned, %zu expected)", pl->nr_drop_tags, n);
	}
}
#define UNTAG(pl, ...) expect_untag((pl), (const char *const[]){ __VA_ARGS__ }, \
				    sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(const char *))

static void expect_refused(const struct plan *pl, const char *what, const char *why)
{
	if (!pl->refused) {
		dump(pl);
		fail_msg("%s: not refused", what);
	}
	expect_skip(pl, what, why);
	assert_true(plan_empty(pl));
}

/* One explicit target alone (as cmd_clean passes them: no class rules). */
static void expect_target_refused(const struct tinv *t, const struct dk_state *st, const struct targets *tg,
				  const char *what, const char *why)
{
	struct plan pl;
	build(&pl, t, st, PLAN_NO_DEFAULTS, tg);
	expect_refused(&pl, what, why);
	assert_int_equal(pl.nr_skips, 1);
	plan_free(&pl);
}

static const char *mounts_path(const char *name)
{
	static char buf[4][200];
	static unsigned next;
	char *o = buf[next++ % 4];
	snprintf(o, sizeof(buf[0]), DK_LAYERDB "/mounts/%s", name);
	return o;
}

static const char *container_path(const char *id)
{
	static char buf[4][200];
	static unsigned next;
	char *o = buf[next++ % 4];
	snprintf(o, sizeof(buf[0]), DK_CONTAINERS "/%s", id);
	return o;
}

static const char *imagedb_path(const char *what, const char *id)
{
	static char buf[4][300];
	static unsigned next;
	char *o = buf[next++ % 4];
	snprintf(o, sizeof(buf[0]), DK_IMAGEDB "/%s/sha256/%s", what, id + 7);
	return o;
}

#define TXN_PATH DK_HOME "/metadata/transaction-metadata"

/* ---- the empty plan and the label test ---- */

static void test_empty(void **state)
{
	(void)state;
	struct dk_state st;
	struct tinv t;
	struct plan pl;
	state_init(&st);
	tinv_init(&t, 1);
	build(&pl, &t, &st, 0, NULL);
	assert_true(plan_empty(&pl));
	assert_int_equal(pl.nr_skips, 0);
	assert_int_equal(pl.nr_drop_tags, 0);
	assert_int_equal(pl.refused, 0);
	plan_free(&pl);
	plan_free(&pl); /* freeing twice is harmless: plan_free clears */
	assert_true(plan_empty(&pl));

	/* Owned devices are never a class rule's: no device, no skip, even
	 * with every option (but --buildkit-cache, which drops BuildKit's own
	 * devices: test_buildkit_cache). */
	add_file(&st, "", 0);
	add_file(&st, hx("d1"), 2);
	tinv_init(&t, 1);
	item(&t, &st, INV_BASE, 1, "");
	item(&t, &st, INV_IMAGE_LAYER, 2, hx("d1"));
	item(&t, &st, INV_CONTAINER, 3, hx("e1"));
	item(&t, &st, INV_CONTAINER_INIT, 4, hinit("e1"));
	item(&t, &st, INV_BUILDKIT, 5, hx("f1"));
	build(&pl, &t, &st, ~(unsigned)(PLAN_NO_DEFAULTS | PLAN_BUILDKIT_CACHE), NULL);
	assert_true(plan_empty(&pl));
	assert_int_equal(pl.nr_skips, 0);
	plan_free(&pl);
	dk_state_free(&st);

	/* plan_empty: a plan with only a file, or only a device, is not empty. */
	struct plan_file f = { PLAN_REMOVE, (char *)"x", (char *)"y", 0, 0 };
	struct plan_dev d = { .thin_id = 1 };
	struct plan p = { 0 };
	assert_true(plan_empty(&p));
	p.files = &f;
	p.nr_files = 1;
	assert_false(plan_empty(&p));
	p.nr_files = 0;
	p.devs = &d;
	p.nr_devs = 1;
	assert_false(plan_empty(&p));
}

static void test_labels_protected(void **state)
{
	(void)state;
	struct dk_label l[] = {
		{ (char *)"com.example.protected", (char *)"1" },
		{ (char *)"Protected", (char *)"1" },
		{ NULL, NULL },
		{ (char *)"protected", (char *)"" },
	};
	assert_false(plan_labels_protected(NULL, 0));
	assert_false(plan_labels_protected(l, 3));
	assert_true(plan_labels_protected(l, 4)); /* any value, even empty */
	assert_true(plan_labels_protected(&l[3], 1));
}

/* ---- the default classes ---- */

static void test_pool_orphan(void **state)
{
	(void)state;
	struct dk_state st;
	struct tinv t;
	struct plan pl;
	state_init(&st);
	tinv_init(&t, 1);
	item(&t, &st, INV_POOL_ORPHAN, 5, NULL);
	build(&pl, &t, &st, 0, NULL);
	DEVS(&pl, 5);
	assert_int_equal(pl.nr_files, 0);
	assert_int_equal(pl.nr_skips, 0);
	const struct plan_dev *d = dev_of(&pl, 5);
	assert_null(d->hash);
	assert_int_equal(d->cls, INV_POOL_ORPHAN);
	assert_string_equal(d->reason, "pool-orphan");
	assert_int_equal(d->mapped_blocks, 105);
	assert_int_equal(d->exclusive_blocks, 5);
	assert_int_equal(d->is_protected, 0);
	assert_int_equal(pl.refused, 0);
	plan_free(&pl);

	/* No usage known: zero blocks. */
	t.items[0].has_usage = 0;
	build(&pl, &t, &st, 0, NULL);
	DEVS(&pl, 5);
	assert_int_equal(pl.devs[0].mapped_blocks, 0);
	assert_int_equal(pl.devs[0].exclusive_blocks, 0);
	plan_free(&pl);

	/* PLAN_NO_DEFAULTS: the class rules are off. */
	build(&pl, &t, &st, PLAN_NO_DEFAULTS | PLAN_DRIVER_ORPHANS, NULL);
	assert_true(plan_empty(&pl));
	assert_int_equal(pl.nr_skips, 0);
	plan_free(&pl);
	dk_state_free(&st);
}

static void test_deferred_deleted(void **state)
{
	(void)state;
	struct dk_state st;
	struct tinv t;
	struct plan pl;
	state_init(&st);
	add_file(&st, hx("d1"), 3)->deleted = 1;
	struct dk_devfile *legacy = add_file(&st, hx("d2"), 4);
	legacy->deleted = 1;
	legacy->from_legacy_json = 1;
	tinv_init(&t, 1);
	item(&t, &st, INV_DEFERRED_DELETED, 3, hx("d1"));
	item(&t, &st, INV_DEFERRED_DELETED, 4, hx("d2"));
	build(&pl, &t, &st, 0, NULL);
	DEVS(&pl, 3, 4);
	/* The legacy json's entry is not a file of its own: the device only. */
	FILES(&pl, meta_path(hx("d1")));
	const struct plan_file *f = &pl.files[0];
	assert_int_equal(f->op, PLAN_REMOVE);
	assert_string_equal(f->reason, "deferred-deleted");
	assert_int_equal(f->optional, 0);
	assert_string_equal(pl.devs[0].hash, hx("d1"));
	assert_string_equal(pl.devs[0].reason, "deferred-deleted");
	assert_int_equal(pl.devs[0].cls, INV_DEFERRED_DELETED);
	assert_int_equal(pl.nr_skips, 0);
	plan_free(&pl);
	dk_state_free(&st);
}

static void test_half_removed_layer(void **state)
{
	(void)state;
	struct dk_state st;
	struct tinv t;
	struct plan pl;
	state_init(&st);
	add_file(&st, hx("d1"), 3);
	add_file(&st, hx("d2"), 4);
	add_layer(&st, sha("a1"), hx("d2"), NULL, 0); /* a live layer: not touched */
	add_layer(&st, sha("a2"), hx("d1"), sha("a1"), 1);
	tinv_init(&t, 1);
	item(&t, &st, INV_HALF_REMOVED_LAYER, 3, hx("d1"));
	item(&t, &st, INV_IMAGE_LAYER, 4, hx("d2"));
	build(&pl, &t, &st, 0, NULL);
	DEVS(&pl, 3);
	/* layerdb before the device's file */
	FILES(&pl, meta_path(hx("d1")), layer_dir(sha("a2"), 1));
	for (size_t i = 0; i < pl.nr_files; i++)
		assert_string_equal(pl.files[i].reason, "half-removed-layer");
	assert_int_equal(pl.nr_skips, 0);
	plan_free(&pl);
	dk_state_free(&st);
}

static void test_open_transaction(void **state)
{
	(void)state;
	struct dk_state st;
	struct tinv t;
	struct plan pl;
	state_init(&st);
	add_file(&st, hx("d1"), 4);
	set_txn(&st, 9, hx("d1"), 4);
	tinv_init(&t, 8);
	item(&t, &st, INV_OPEN_TRANSACTION, 4, hx("d1"));
	build(&pl, &t, &st, 0, NULL);
	DEVS(&pl, 4);
	FILES(&pl, meta_path(hx("d1")), TXN_PATH);
	assert_string_equal(pl.devs[0].reason, "open-transaction");
	assert_string_equal(pl.files[1].reason, "open-transaction");
	assert_int_equal(pl.files[1].op, PLAN_REMOVE);
	assert_int_equal(pl.nr_skips, 0);
	plan_free(&pl);

	/* The transaction is not ahead of the pool: transaction-metadata stays. */
	t.inv.pool.trans_id = 9;
	build(&pl, &t, &st, 0, NULL);
	assert_null(file_in(&pl, TXN_PATH));
	plan_free(&pl);
	/* Nor when it does not parse (Docker reads zeros). */
	t.inv.pool.trans_id = 8;
	st.txn.valid = 0;
	build(&pl, &t, &st, 0, NULL);
	assert_null(file_in(&pl, TXN_PATH));
	plan_free(&pl);
	st.txn.valid = 1;
	/* Nor with the class rules off. */
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, NULL);
	assert_true(plan_empty(&pl));
	plan_free(&pl);
	dk_state_free(&st);

	/* The device was made, the file not yet written: the device and
	 * transaction-metadata. */
	state_init(&st);
	set_txn(&st, 9, hx("d1"), 4);
	tinv_init(&t, 8);
	item(&t, &st, INV_OPEN_TRANSACTION, 4, NULL);
	build(&pl, &t, &st, 0, NULL);
	DEVS(&pl, 4);
	FILES(&pl, TXN_PATH);
	plan_free(&pl);
	dk_state_free(&st);

	/* The file was written, the device is not in the pool: the file. */
	state_init(&st);
	add_file(&st, hx("d1"), 4);
	set_txn(&st, 9, hx("d1"), 4);
	tinv_init(&t, 8);
	item(&t, &st, INV_OPEN_TRANSACTION, -1, hx("d1"));
	build(&pl, &t, &st, 0, NULL);
	assert_int_equal(pl.nr_devs, 0);
	FILES(&pl, meta_path(hx("d1")), TXN_PATH);
	plan_free(&pl);
	dk_state_free(&st);
}

/* The transaction names thin 4, which another valid file claims: Docker's
 * rollback would delete a device in use; the plan leaves it alone. */
static void test_open_transaction_claimed(void **state)
{
	(void)state;
	struct dk_state st;
	struct tinv t;
	struct plan pl;
	state_init(&st);
	add_file(&st, hx("d2"), 4);
	set_txn(&st, 9, hx("d1"), 4);
	tinv_init(&t, 8);
	item(&t, &st, INV_OPEN_TRANSACTION, 4, hx("d2"));
	build(&pl, &t, &st, 0, NULL);
	assert_int_equal(pl.nr_devs, 0);
	assert_null(file_in(&pl, meta_path(hx("d2"))));
	/* transaction-metadata goes: no rollback will delete the device */
	FILES(&pl, TXN_PATH);
	expect_skip(&pl, "thin 4", "claims it");
	expect_skip(&pl, hx("d2"), meta_path(hx("d2")));
	assert_int_equal(pl.nr_skips, 1);
	assert_int_equal(pl.refused, 0);
	plan_free(&pl);

	/* A claim by a file that does not parse is no claim. */
	st.files[0].valid = 0;
	build(&pl, &t, &st, 0, NULL);
	DEVS(&pl, 4);
	assert_null(file_in(&pl, meta_path(hx("d2")))); /* not the named hash's file */
	FILES(&pl, TXN_PATH);
	assert_int_equal(pl.nr_skips, 0);
	plan_free(&pl);
	dk_state_free(&st);
}

static void test_transients(void **state)
{
	(void)state;
	struct dk_state st;
	struct tinv t;
	struct plan pl;
	static const char *const removable[] = {
		DK_HOME "/metadata/.tmp123456",
		DK_LAYERDB "/tmp/write-set-987",
		DK_IMAGEDB "/content/sha256/.tmp-abc",
		DK_HOME "/mnt/" "1111111111111111111111111111111111111111111111111111111111111111",
	};
	const char *full = DK_HOME "/mnt/2222222222222222222222222222222222222222222222222222222222222222";
	const char *stray = DK_HOME "/metadata/notes.txt";
	const char *unknown = DK_HOME "/metadata/.tmp-vanished";
	state_init(&st);
	add_file(&st, hx("d1"), 3)->deleted = 1;
	add_transient(&st, DK_TRANSIENT_METADATA_TMP, removable[0], 100);
	add_transient(&st, DK_TRANSIENT_WRITE_SET, removable[1], 100);
	add_transient(&st, DK_TRANSIENT_IMAGEDB_TMP, removable[2], 100);
	add_transient(&st, DK_TRANSIENT_MNT_EMPTY, removable[3], 100);
	add_transient(&st, DK_TRANSIENT_MNT_NONEMPTY, full, 100);
	add_transient(&st, DK_TRANSIENT_STRAY, stray, 100);
	tinv_init(&t, 1);
	/* transients first in the inventory, the device file after: the
	 * device's file still comes first in the plan */
	for (size_t i = 0; i < 4; i++)
		transient_item(&t, removable[i]);
	transient_item(&t, full);
	transient_item(&t, stray);
	transient_item(&t, unknown); /* not in the state: left alone */
	item(&t, &st, INV_DEFERRED_DELETED, 3, hx("d1"));
	build(&pl, &t, &st, 0, NULL);
	DEVS(&pl, 3);
	FILES(&pl, meta_path(hx("d1")), removable[0], removable[1], removable[2], removable[3]);
	for (size_t i = 1; i < 5; i++) {
		assert_string_equal(pl.files[i].reason, "transient");
		assert_int_equal(pl.files[i].op, PLAN_REMOVE);
	}
	assert_int_equal(pl.nr_skips, 3);
	expect_skip(&pl, full, "look at them first");
	expect_skip(&pl, stray, "by hand");
	expect_skip(&pl, unknown, "not a known temporary file");
	assert_int_equal(pl.refused, 0);
	plan_free(&pl);
	dk_state_free(&st);
}

/* ---- the opt-in classes ---- */

static void optin_state(struct dk_state *st, struct tinv *t)
{
	state_init(st);
	add_file(st, hx("d1"), 3);                     /* driver orphan */
	add_file(st, hx("e1"), 4);                     /* orphan mount */
	add_file(st, hinit("e1"), 5);
	add_file(st, hx("d2"), 6);                     /* hollow: no device 6 */
	add_file(st, hx("e2"), 7);                     /* dead container */
	add_file(st, hx("d3"), 8);                     /* unreferenced layer */
	add_file(st, hx("d4"), -1)->valid = 0;         /* bad file */
	add_layer(st, sha("a3"), hx("d3"), NULL, 0);
	add_mount(st, hx("c9"), hx("e1"), hinit("e1"), NULL);      /* no container c9 */
	add_mount(st, hx("c2"), hx("e2"), NULL, NULL);
	add_container(st, hx("c2"), "dead", sha("b0"))->dead = 1;
	tinv_init(t, 1);
	item(t, st, INV_DRIVER_ORPHAN, 3, hx("d1"));
	item(t, st, INV_ORPHAN_MOUNT, 4, hx("e1"));
	item(t, st, INV_ORPHAN_MOUNT, 5, hinit("e1"));
	item(t, st, INV_DEAD_CONTAINER, 7, hx("e2"));
	item(t, st, INV_UNREFERENCED_LAYER, 8, hx("d3"));
	item(t, st, INV_HOLLOW_FILE, -1, hx("d2"));
	item(t, st, INV_BAD_FILE, -1, hx("d4"));
}

static void test_optin_skipped(void **state)
{
	(void)state;
	struct dk_state st;
	struct tinv t;
	struct plan pl;
	optin_state(&st, &t);
	build(&pl, &t, &st, 0, NULL);
	assert_true(plan_empty(&pl));
	assert_int_equal(pl.refused, 0);
	assert_int_equal(pl.nr_skips, 7);
	expect_skip(&pl, "thin 3", "driver-orphan: opt-in, add --driver-orphans");
	expect_skip(&pl, "thin 4", "orphan-mount: opt-in, add --driver-orphans");
	expect_skip(&pl, "thin 5", "--driver-orphans");
	expect_skip(&pl, "thin 7", "dead-container: opt-in, add --dead-containers");
	expect_skip(&pl, "thin 8", "unreferenced-layer: opt-in, add --unreferenced-layers");
	expect_skip(&pl, hx("d2"), "hollow-file: opt-in, add --hollow-files");
	expect_skip(&pl, hx("d4"), "bad-file: opt-in, add --bad-files");
	plan_free(&pl);

	/* One option turns on its classes only. */
	build(&pl, &t, &st, PLAN_HOLLOW_FILES, NULL);
	FILES(&pl, meta_path(hx("d2")));
	assert_int_equal(pl.nr_devs, 0);
	assert_string_equal(pl.files[0].reason, "hollow-file");
	assert_int_equal(pl.nr_skips, 6);
	assert_null(skip_of(&pl, hx("d2")));
	plan_free(&pl);

	build(&pl, &t, &st, PLAN_BAD_FILES, NULL);
	FILES(&pl, meta_path(hx("d4")));
	assert_int_equal(pl.nr_devs, 0);
	assert_string_equal(pl.files[0].reason, "bad-file");
	plan_free(&pl);

	build(&pl, &t, &st, PLAN_UNREFERENCED_LAYERS, NULL);
	DEVS(&pl, 8);
	FILES(&pl, meta_path(hx("d3")), layer_dir(sha("a3"), 0));
	assert_string_equal(pl.devs[0].reason, "unreferenced-layer");
	plan_free(&pl);

	/* --dead-containers: the dead container, and the mount whose container
	 * is gone (what an interrupted container removal leaves). */
	build(&pl, &t, &st, PLAN_DEAD_CONTAINERS, NULL);
	DEVS(&pl, 4, 5, 7);
	FILES(&pl, container_path(hx("c2")), meta_path(hx("e2")), meta_path(hx("e1")), meta_path(hinit("e1")),
	      mounts_path(hx("c2")), mounts_path(hx("c9")));
	plan_free(&pl);

	/* --driver-orphans: the driver orphan, and the mount with both its
	 * devices (once, though two items name it). */
	build(&pl, &t, &st, PLAN_DRIVER_ORPHANS, NULL);
	DEVS(&pl, 3, 4, 5);
	FILES(&pl, meta_path(hx("e1")), meta_path(hinit("e1")), mounts_path(hx("c9")), meta_path(hx("d1")));
	assert_string_equal(dev_of(&pl, 4)->reason, "orphan-mount");
	assert_string_equal(dev_of(&pl, 3)->reason, "driver-orphan");
	assert_int_equal(pl.nr_skips, 4);
	plan_free(&pl);

	/* All: nothing left alone. */
	build(&pl, &t, &st,
	      PLAN_DRIVER_ORPHANS | PLAN_HOLLOW_FILES | PLAN_DEAD_CONTAINERS | PLAN_UNREFERENCED_LAYERS | PLAN_BAD_FILES,
	      NULL);
	DEVS(&pl, 3, 4, 5, 7, 8);
	assert_int_equal(pl.nr_files, 11);
	assert_int_equal(pl.nr_skips, 0);
	/* A bad file only in the legacy json has nothing to move. */
	plan_free(&pl);
	st.files[6].from_legacy_json = 1;
	build(&pl, &t, &st, PLAN_BAD_FILES, NULL);
	assert_true(plan_empty(&pl));
	plan_free(&pl);
	dk_state_free(&st);
}

/* A stack of unreferenced layers goes whole, whatever order the inventory
 * lists them in; a layer that a kept one (BuildKit's) is built on stays. */
static void test_unreferenced_stack(void **state)
{
	(void)state;
	struct dk_state st;
	struct tinv t;
	struct plan pl;
	state_init(&st);
	add_file(&st, hx("d1"), 3);
	add_file(&st, hx("d2"), 4);
	add_file(&st, hx("d3"), 5);
	add_layer(&st, sha("a1"), hx("d1"), NULL, 0);
	add_layer(&st, sha("a2"), hx("d2"), sha("a1"), 0);
	add_layer(&st, sha("a3"), hx("d3"), sha("a2"), 0);
	tinv_init(&t, 1);
	item(&t, &st, INV_UNREFERENCED_LAYER, 3, hx("d1"));
	item(&t, &st, INV_UNREFERENCED_LAYER, 4, hx("d2"));
	item(&t, &st, INV_UNREFERENCED_LAYER, 5, hx("d3"));
	build(&pl, &t, &st, PLAN_UNREFERENCED_LAYERS, NULL);
	DEVS(&pl, 3, 4, 5);
	assert_int_equal(pl.nr_files, 6);
	assert_int_equal(pl.nr_skips, 0);
	plan_free(&pl);

	/* The top one is BuildKit's (its cache-id is a snapshot key): the two
	 * below carry it and stay. */
	t.items[2].cls = INV_BUILDKIT;
	add_buildkit(&st, hx("d3"), sha("a3"));
	build(&pl, &t, &st, PLAN_UNREFERENCED_LAYERS, NULL);
	if (!plan_empty(&pl)) {
		dump(&pl);
		fail_msg("layers under BuildKit's layer planned");
	}
	expect_skip(&pl, "thin 3", "a3");
	expect_skip(&pl, "thin 4", "a3");
	plan_free(&pl);

	/* ... and so does a layer under a half-made (removing) one? No: a
	 * *-removing directory carries nothing. */
	t.items[2].cls = INV_HALF_REMOVED_LAYER;
	st.layers[2].removing = 1;
	build(&pl, &t, &st, PLAN_UNREFERENCED_LAYERS, NULL);
	DEVS(&pl, 3, 4, 5);
	assert_int_equal(pl.nr_skips, 0);
	plan_free(&pl);
	dk_state_free(&st);
}

/* ---- dead containers and the protected label ---- */

static void dead_state(struct dk_state *st, struct tinv *t)
{
	state_init(st);
	add_file(st, hx("d1"), 2);
	add_file(st, hx("e1"), 7);
	add_file(st, hinit("e1"), 6);
	add_layer(st, sha("a1"), hx("d1"), NULL, 0);
	add_image(st, sha("b1"), (const char *const[]){ sha("a1") }, 1, (const char *const[]){ "app:1" }, 1);
	add_mount(st, hx("c1"), hx("e1"), hinit("e1"), sha("a1"));
	add_container(st, hx("c1"), "web", sha("b1"))->dead = 1;
	tinv_init(t, 1);
	item(t, st, INV_IMAGE_LAYER, 2, hx("d1"));
	item(t, st, INV_DEAD_CONTAINER, 6, hinit("e1"));
	item(t, st, INV_DEAD_CONTAINER, 7, hx("e1"));
}

static void test_dead_container(void **state)
{
	(void)state;
	struct dk_state st;
	struct tinv t;
	struct plan pl;
	dead_state(&st, &t);
	build(&pl, &t, &st, PLAN_DEAD_CONTAINERS, NULL);
	DEVS(&pl, 6, 7);
	/* The container, the devices' files (mount-id, then init), then the
	 * mount record: after a crash at any point the rest is an orphan mount
	 * or pool orphans. The image layer stays. */
	FILES(&pl, container_path(hx("c1")), meta_path(hx("e1")), meta_path(hinit("e1")), mounts_path(hx("c1")));
	assert_int_equal(pl.files[0].rank < pl.files[1].rank, 1);
	assert_int_equal(pl.files[2].rank < pl.files[3].rank, 1);
	for (size_t i = 0; i < pl.nr_files; i++)
		assert_string_equal(pl.files[i].reason, "dead-container");
	assert_string_equal(pl.devs[0].reason, "dead-container");
	assert_int_equal(pl.devs[0].is_protected, 0);
	assert_int_equal(pl.devs[1].is_protected, 0);
	assert_int_equal(pl.nr_skips, 0);
	plan_free(&pl);

	/* Without --dead-containers: both devices left alone, each saying so. */
	build(&pl, &t, &st, 0, NULL);
	assert_true(plan_empty(&pl));
	assert_int_equal(pl.nr_skips, 2);
	plan_free(&pl);
	dk_state_free(&st);
}

static void test_protected(void **state)
{
	(void)state;
	struct dk_state st;
	struct tinv t;
	struct plan pl;

	/* The container's label. */
	dead_state(&st, &t);
	st.containers[0].labels = labels("protected", &st.containers[0].nr_labels);
	build(&pl, &t, &st, PLAN_DEAD_CONTAINERS, NULL);
	assert_true(plan_empty(&pl));
	expect_skip(&pl, "thin 6", "container web carries the label \"protected\"");
	expect_skip(&pl, "thin 7", "only an explicit target removes it");
	assert_int_equal(pl.refused, 0);
	plan_free(&pl);

	/* An explicit --container removes it, marked protected. */
	struct targets tg = { .con = { "web" } };
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &tg);
	DEVS(&pl, 6, 7);
	FILES(&pl, container_path(hx("c1")), meta_path(hx("e1")), meta_path(hinit("e1")), mounts_path(hx("c1")));
	assert_int_equal(pl.devs[0].is_protected, 1);
	assert_int_equal(pl.devs[1].is_protected, 1);
	assert_string_equal(pl.devs[0].reason, "named");
	assert_int_equal(pl.refused, 0);
	assert_int_equal(pl.nr_skips, 0);
	plan_free(&pl);
	dk_state_free(&st);

	/* The image's label protects its containers... */
	dead_state(&st, &t);
	st.images[0].labels = labels("protected", &st.images[0].nr_labels);
	build(&pl, &t, &st, PLAN_DEAD_CONTAINERS, NULL);
	assert_true(plan_empty(&pl));
	expect_skip(&pl, "thin 7", "container web carries the label");
	plan_free(&pl);
	/* ... and the devices of its layers: a deferred-deleted layer device
	 * stays (a default class otherwise). */
	t.items[0].cls = INV_DEFERRED_DELETED;
	build(&pl, &t, &st, 0, NULL);
	assert_null(dev_of(&pl, 2));
	expect_skip(&pl, "thin 2", "deferred-deleted: image app:1 carries the label \"protected\"");
	plan_free(&pl);
	/* An explicit --device on it is the user's call. */
	struct targets td = { .dev = { "2" } };
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &td);
	DEVS(&pl, 2);
	FILES(&pl, meta_path(hx("d1")));
	assert_string_equal(pl.devs[0].reason, "named");
	assert_int_equal(pl.devs[0].is_protected, 1);
	plan_free(&pl);
	/* --container of a container of a protected image: protected too. */
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &tg);
	DEVS(&pl, 6, 7);
	assert_int_equal(pl.devs[0].is_protected, 1);
	assert_int_equal(pl.devs[1].is_protected, 1);
	plan_free(&pl);

	/* Another label does not protect. */
	labels_free(st.images[0].labels, st.images[0].nr_labels);
	st.images[0].labels = labels("protected-not", &st.images[0].nr_labels);
	t.items[0].cls = INV_IMAGE_LAYER;
	build(&pl, &t, &st, PLAN_DEAD_CONTAINERS, NULL);
	DEVS(&pl, 6, 7);
	assert_int_equal(pl.nr_skips, 0);
	plan_free(&pl);
	dk_state_free(&st);
}

/* ---- --device ---- */

static void device_state(struct dk_state *st, struct tinv *t)
{
	state_init(st);
	add_file(st, "", 1);
	add_file(st, hx("d1"), 2);
	add_file(st, hx("e1"), 3);
	add_file(st, hinit("e1"), 4);
	add_file(st, hx("f1"), 5);
	add_file(st, hx("d5"), 6);
	add_file(st, hx("d6"), 8);
	add_file(st, hx("d7"), 9);
	add_file(st, hx("d8"), 10);
	add_layer(st, sha("a1"), hx("d1"), NULL, 0);
	add_layer(st, sha("a7"), hx("d7"), NULL, 0);
	add_layer(st, sha("a8"), hx("d8"), sha("a7"), 0);
	add_image(st, sha("b1"), (const char *const[]){ sha("a1") }, 1, (const char *const[]){ "app:1" }, 1);
	add_mount(st, hx("c1"), hx("e1"), hinit("e1"), sha("a1"));
	add_container(st, hx("c1"), "web", sha("b1"));
	add_buildkit(st, hx("f1"), NULL);
	tinv_init(t, 1);
	struct inv_item *it;
	item(t, st, INV_BASE, 1, "");
	it = item(t, st, INV_IMAGE_LAYER, 2, hx("d1"));
	static const char *imgs[] = { "app:1" };
	it->images = imgs;
	it->nr_images = 1;
	static const char *cons[] = { "web (c10000000000)" };
	it = item(t, st, INV_CONTAINER, 3, hx("e1"));
	it->containers = cons;
	it->nr_containers = 1;
	it = item(t, st, INV_CONTAINER_INIT, 4, hinit("e1"));
	it->containers = cons;
	it->nr_containers = 1;
	item(t, st, INV_BUILDKIT, 5, hx("f1"));
	item(t, st, INV_DRIVER_ORPHAN, 6, hx("d5"));
	item(t, st, INV_POOL_ORPHAN, 7, NULL);
	item(t, st, INV_UNREFERENCED_LAYER, 9, hx("d7"));
	item(t, st, INV_UNREFERENCED_LAYER, 10, hx("d8"));
	item(t, st, INV_HOLLOW_FILE, -1, hx("d6"));
}

static void test_target_device(void **state)
{
	(void)state;
	struct dk_state st;
	struct tinv t;
	struct plan pl;
	device_state(&st, &t);

	/* By thin id and by hash; opt-in classes need no option when named. */
	struct targets tg = { .dev = { "6", "7", hx("d6") } };
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &tg);
	DEVS(&pl, 6, 7);
	FILES(&pl, meta_path(hx("d5")), meta_path(hx("d6")));
	assert_string_equal(pl.devs[0].reason, "named");
	assert_int_equal(pl.devs[0].cls, INV_DRIVER_ORPHAN);
	assert_int_equal(pl.devs[1].cls, INV_POOL_ORPHAN);
	assert_string_equal(pl.files[0].reason, "named");
	assert_int_equal(pl.refused, 0);
	assert_int_equal(pl.nr_skips, 0);
	plan_free(&pl);

	struct targets th = { .dev = { hx("d5") } };
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &th);
	DEVS(&pl, 6);
	FILES(&pl, meta_path(hx("d5")));
	plan_free(&pl);

	/* The top unreferenced layer: its layerdb directory too. The one
	 * below carries it: refused. */
	struct targets tl = { .dev = { "10" } };
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &tl);
	DEVS(&pl, 10);
	FILES(&pl, meta_path(hx("d8")), layer_dir(sha("a8"), 0));
	plan_free(&pl);
	expect_target_refused(&t, &st, &(struct targets){ .dev = { "9" } }, "--device 9",
			      "is still used by layer");
	/* Both, top first: the second sees the first going. */
	struct targets tl2 = { .dev = { "10", "9" } };
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &tl2);
	DEVS(&pl, 9, 10);
	FILES(&pl, meta_path(hx("d8")), meta_path(hx("d7")), layer_dir(sha("a8"), 0), layer_dir(sha("a7"), 0));
	assert_int_equal(pl.refused, 0);
	plan_free(&pl);

	/* Refusals, each naming why. */
	expect_target_refused(&t, &st, &(struct targets){ .dev = { "1" } }, "--device 1", "the base device");
	expect_target_refused(&t, &st, &(struct targets){ .dev = { "2" } }, "--device 2",
			      "a layer of image app:1: remove the image (--image)");
	expect_target_refused(&t, &st, &(struct targets){ .dev = { hx("d1") } }, hx("d1"), "--image");
	expect_target_refused(&t, &st, &(struct targets){ .dev = { "3" } }, "--device 3",
			      "a layer of container web (c10000000000): remove the container (--container)");
	expect_target_refused(&t, &st, &(struct targets){ .dev = { hinit("e1") } }, "-init", "--container");
	expect_target_refused(&t, &st, &(struct targets){ .dev = { "5" } }, "--device 5", "buildkit/snapshots.db");
	expect_target_refused(&t, &st, &(struct targets){ .dev = { "99" } }, "--device 99", "no such device");
	expect_target_refused(&t, &st, &(struct targets){ .dev = { hx("99") } }, hx("99"), "no such device");
	expect_target_refused(&t, &st, &(struct targets){ .dev = { "" } }, "--device ", "no such device");

	/* One refused target among good ones: refused is set, the others are
	 * still planned (cmd_clean decides). */
	struct targets tm = { .dev = { "6", "1" } };
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &tm);
	assert_int_equal(pl.refused, 1);
	DEVS(&pl, 6);
	expect_skip(&pl, "--device 1", "base");
	plan_free(&pl);

	/* Named and matched by a class rule as well: once. */
	struct targets tp = { .dev = { "7", "7" } };
	build(&pl, &t, &st, PLAN_DRIVER_ORPHANS, &tp);
	DEVS(&pl, 6, 7);
	assert_string_equal(dev_of(&pl, 7)->reason, "named"); /* the targets come first */
	FILES(&pl, meta_path(hx("d5")));
	plan_free(&pl);
	dk_state_free(&st);
}

/* --device on leftovers that belong to a container or a transaction. */
static void test_target_device_leftovers(void **state)
{
	(void)state;
	struct dk_state st;
	struct tinv t;
	struct plan pl;

	/* A dead container's device: the whole container goes. */
	dead_state(&st, &t);
	struct targets tg = { .dev = { "7" } };
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &tg);
	DEVS(&pl, 6, 7);
	FILES(&pl, container_path(hx("c1")), meta_path(hx("e1")), meta_path(hinit("e1")), mounts_path(hx("c1")));
	assert_string_equal(pl.devs[0].reason, "named");
	plan_free(&pl);
	dk_state_free(&st);

	/* An orphan mount's: the mount. */
	state_init(&st);
	add_file(&st, hx("e1"), 4);
	add_file(&st, hinit("e1"), 5);
	add_mount(&st, hx("c9"), hx("e1"), hinit("e1"), NULL);
	tinv_init(&t, 1);
	item(&t, &st, INV_ORPHAN_MOUNT, 4, hx("e1"));
	item(&t, &st, INV_ORPHAN_MOUNT, 5, hinit("e1"));
	struct targets tm = { .dev = { hinit("e1") } };
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &tm);
	DEVS(&pl, 4, 5);
	FILES(&pl, meta_path(hx("e1")), meta_path(hinit("e1")), mounts_path(hx("c9")));
	plan_free(&pl);
	dk_state_free(&st);

	/* A half-removed layer's: the *-removing directory too. */
	state_init(&st);
	add_file(&st, hx("d1"), 3);
	add_layer(&st, sha("a1"), hx("d1"), NULL, 1);
	tinv_init(&t, 1);
	item(&t, &st, INV_HALF_REMOVED_LAYER, 3, hx("d1"));
	struct targets th = { .dev = { "3" } };
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &th);
	DEVS(&pl, 3);
	FILES(&pl, meta_path(hx("d1")), layer_dir(sha("a1"), 1));
	plan_free(&pl);
	dk_state_free(&st);

	/* The open transaction's, claimed by another file: left alone. */
	state_init(&st);
	add_file(&st, hx("d2"), 4);
	set_txn(&st, 9, hx("d1"), 4);
	tinv_init(&t, 8);
	item(&t, &st, INV_OPEN_TRANSACTION, 4, hx("d2"));
	struct targets tt = { .dev = { "4" } };
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &tt);
	assert_true(plan_empty(&pl));
	expect_skip(&pl, "thin 4", "claims it");
	plan_free(&pl);
	dk_state_free(&st);
}

/* ---- --container ---- */

static void container_state(struct dk_state *st, struct tinv *t)
{
	state_init(st);
	add_file(st, hx("e1"), 3);
	add_file(st, hinit("e1"), 4);
	add_file(st, hx("e2"), 5);
	add_mount(st, hx("c1a"), hx("e1"), hinit("e1"), NULL);
	add_mount(st, hx("c1b"), hx("e2"), NULL, NULL);
	add_container(st, hx("c1a"), "web", sha("b1"))->running = 1;
	add_container(st, hx("c1b"), "db", sha("b1"));
	add_container(st, hx("c2"), "nomount", sha("b1"));
	tinv_init(t, 1);
	item(t, st, INV_CONTAINER, 3, hx("e1"));
	item(t, st, INV_CONTAINER_INIT, 4, hinit("e1"));
	item(t, st, INV_CONTAINER, 5, hx("e2"));
}

static void test_target_container(void **state)
{
	(void)state;
	struct dk_state st;
	struct tinv t;
	struct plan pl;
	container_state(&st, &t);
	const char *web[] = { "web", "/web", hx("c1a"), "c1a", "c1a000000000" };
	for (size_t i = 0; i < sizeof(web) / sizeof(web[0]); i++) {
		struct targets tg = { .con = { web[i] } };
		build(&pl, &t, &st, PLAN_NO_DEFAULTS, &tg);
		if (pl.refused)
			dump(&pl);
		assert_int_equal(pl.refused, 0);
		DEVS(&pl, 3, 4);
		FILES(&pl, container_path(hx("c1a")), meta_path(hx("e1")), meta_path(hinit("e1")), mounts_path(hx("c1a")));
		assert_string_equal(pl.devs[0].reason, "named");
		assert_int_equal(pl.devs[0].is_protected, 0);
		plan_free(&pl);
	}

	/* Two, the second twice: each once; a container without a mount has
	 * only its directory. */
	struct targets t2 = { .con = { "db", "web", hx("c1b"), "nomount" } };
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &t2);
	DEVS(&pl, 3, 4, 5);
	FILES(&pl, container_path(hx("c1b")), container_path(hx("c1a")), container_path(hx("c2")), meta_path(hx("e2")), meta_path(hx("e1")), meta_path(hinit("e1")), mounts_path(hx("c1b")), mounts_path(hx("c1a")));
	plan_free(&pl);

	/* A name wins over an id prefix. */
	free(st.containers[2].name);
	st.containers[2].name = xstrdup("c1");
	struct targets tn = { .con = { "c1" } };
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &tn);
	assert_int_equal(pl.refused, 0);
	FILES(&pl, container_path(hx("c2")));
	plan_free(&pl);
	free(st.containers[2].name);
	st.containers[2].name = xstrdup("nomount");

	/* An ambiguous prefix, an unknown name. */
	expect_target_refused(&t, &st, &(struct targets){ .con = { "c1" } }, "--container c1",
			      "more than one container id starts with c1");
	expect_target_refused(&t, &st, &(struct targets){ .con = { "c" } }, "--container c", "more than one");
	expect_target_refused(&t, &st, &(struct targets){ .con = { "cache" } }, "--container cache",
			      "no such container");
	expect_target_refused(&t, &st, &(struct targets){ .con = { "c3" } }, "--container c3", "no such container");
	expect_target_refused(&t, &st, &(struct targets){ .con = { "" } }, "--container ", "no such container");
	dk_state_free(&st);
}

/* ---- --image ---- */

/* b1 "app:1" "app:latest": a1 <- a2; b2 "base:1": a1; the layers' devices
 * 2 and 3. */
static void image_state(struct dk_state *st, struct tinv *t, int with_b2)
{
	state_init(st);
	add_file(st, hx("d1"), 2);
	add_file(st, hx("d2"), 3);
	add_layer(st, sha("a1"), hx("d1"), NULL, 0);
	add_layer(st, sha("a2"), hx("d2"), sha("a1"), 0);
	add_image(st, sha("b1"), (const char *const[]){ sha("a1"), sha("a2") }, 2,
		  (const char *const[]){ "app:1", "app:latest" }, 2);
	if (with_b2)
		add_image(st, sha("b2"), (const char *const[]){ sha("a1") }, 1, (const char *const[]){ "base:1" }, 1);
	tinv_init(t, 1);
	item(t, st, INV_IMAGE_LAYER, 2, hx("d1"));
	item(t, st, INV_IMAGE_LAYER, 3, hx("d2"));
}

static void test_image_untag(void **state)
{
	(void)state;
	struct dk_state st;
	struct tinv t;
	struct plan pl;
	image_state(&st, &t, 0);

	/* A tag of an image with others: untagged only ("app" is app:latest). */
	const char *refs[] = { "app", "app:latest" };
	for (size_t i = 0; i < 2; i++) {
		struct targets tg = { .img = { refs[i] } };
		build(&pl, &t, &st, PLAN_NO_DEFAULTS, &tg);
		UNTAG(&pl, "app:latest");
		FILES(&pl, DK_REPOSITORIES);
		assert_int_equal(pl.files[0].op, PLAN_REWRITE_REPOS);
		assert_string_equal(pl.files[0].reason, "untag");
		assert_int_equal(pl.nr_devs, 0);
		assert_int_equal(pl.refused, 0);
		assert_false(plan_empty(&pl));
		plan_free(&pl);
	}
	struct targets t1 = { .img = { "app:1" } };
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &t1);
	UNTAG(&pl, "app:1");
	FILES(&pl, DK_REPOSITORIES);
	plan_free(&pl);

	/* Every tag named: as 'docker rmi app:1 app:latest', the image goes. */
	struct targets ta = { .img = { "app:1", "app:latest" } };
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &ta);
	UNTAG(&pl, "app:1", "app:latest");
	DEVS(&pl, 2, 3);
	assert_non_null(file_in(&pl, imagedb_path("content", sha("b1"))));
	plan_free(&pl);

	/* The same tag twice: once. */
	struct targets tt = { .img = { "app:1", "app:1" } };
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &tt);
	UNTAG(&pl, "app:1");
	FILES(&pl, DK_REPOSITORIES);
	plan_free(&pl);

	/* An unknown reference. */
	expect_target_refused(&t, &st, &(struct targets){ .img = { "nope" } }, "--image nope", "no such image");
	expect_target_refused(&t, &st, &(struct targets){ .img = { "app:2" } }, "--image app:2", "no such image");
	expect_target_refused(&t, &st, &(struct targets){ .img = { "" } }, "--image ", "no such image");
	dk_state_free(&st);
}

static void test_image_by_id(void **state)
{
	(void)state;
	struct dk_state st;
	struct tinv t;
	struct plan pl;
	image_state(&st, &t, 0);
	/* The id, a prefix of it, the top layer's chain id. */
	const char *ids[] = { sha("b1"), hx("b1"), "b1", sha("a2") + 7 };
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		struct targets tg = { .img = { ids[i] } };
		build(&pl, &t, &st, PLAN_NO_DEFAULTS, &tg);
		assert_int_equal(pl.refused, 0);
		UNTAG(&pl, "app:1", "app:latest");
		DEVS(&pl, 2, 3);
		/* tags, config, layers top down, devices' files */
		FILES(&pl, DK_REPOSITORIES, imagedb_path("content", sha("b1")), imagedb_path("metadata", sha("b1")), meta_path(hx("d2")), meta_path(hx("d1")), layer_dir(sha("a2"), 0), layer_dir(sha("a1"), 0));
		assert_int_equal(pl.files[0].op, PLAN_REWRITE_REPOS);
		assert_int_equal(pl.files[1].optional, 0);
		assert_int_equal(pl.files[2].optional, 1); /* metadata/sha256/<id> may not exist */
		for (size_t k = 1; k < pl.nr_files; k++) {
			assert_int_equal(pl.files[k].op, PLAN_REMOVE);
			assert_string_equal(pl.files[k].reason, "named");
		}
		assert_string_equal(pl.devs[0].reason, "named");
		assert_int_equal(pl.devs[0].is_protected, 0);
		assert_int_equal(pl.nr_skips, 0);
		plan_free(&pl);
	}

	/* A single-tag image by its tag: removed the same way. */
	char **tags = st.images[0].tags;
	free(tags[1]);
	st.images[0].nr_tags = 1;
	struct targets t1 = { .img = { "app:1" } };
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &t1);
	UNTAG(&pl, "app:1");
	DEVS(&pl, 2, 3);
	assert_int_equal(pl.nr_files, 7);
	plan_free(&pl);

	/* Untagged: no repositories.json change. Named twice: once. */
	free(tags[0]);
	free(tags);
	st.images[0].tags = NULL;
	st.images[0].nr_tags = 0;
	struct targets t0 = { .img = { "b1", sha("b1") } };
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &t0);
	assert_int_equal(pl.nr_drop_tags, 0);
	assert_null(file_in(&pl, DK_REPOSITORIES));
	DEVS(&pl, 2, 3);
	assert_int_equal(pl.nr_files, 6);
	assert_int_equal(pl.nr_skips, 0);
	plan_free(&pl);

	/* The image's protected label: its devices say they were named. */
	st.images[0].labels = labels("protected", &st.images[0].nr_labels);
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &t0);
	DEVS(&pl, 2, 3);
	assert_int_equal(pl.devs[0].is_protected, 1);
	assert_int_equal(pl.devs[1].is_protected, 1);
	plan_free(&pl);

	/* Not hex, not a tag. */
	expect_target_refused(&t, &st, &(struct targets){ .img = { "sha256:xyz" } }, "--image sha256:xyz",
			      "no such image");
	dk_state_free(&st);
}

/* The layers go from the top down until one is still used. */
static void test_image_shared_layers(void **state)
{
	(void)state;
	struct dk_state st;
	struct tinv t;
	struct plan pl;
	struct targets tg = { .img = { "b1" } };

	/* by another image */
	image_state(&st, &t, 1);
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &tg);
	assert_int_equal(pl.refused, 0);
	DEVS(&pl, 3);
	FILES(&pl, DK_REPOSITORIES, imagedb_path("content", sha("b1")), imagedb_path("metadata", sha("b1")), meta_path(hx("d2")), layer_dir(sha("a2"), 0));
	expect_skip(&pl, "layer a10000000000", "stays with the layers below it: image base:1 uses it");
	assert_int_equal(pl.nr_skips, 1);
	plan_free(&pl);
	/* ... unless that one is named as well (after: b1 is built on it) */
	struct targets both = { .img = { "b1", "base:1" } };
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &both);
	assert_int_equal(pl.refused, 0);
	DEVS(&pl, 2, 3);
	UNTAG(&pl, "app:1", "app:latest", "base:1");
	assert_non_null(file_in(&pl, imagedb_path("content", sha("b2"))));
	assert_non_null(file_in(&pl, layer_dir(sha("a1"), 0)));
	plan_free(&pl);
	dk_state_free(&st);

	/* by a container's read-write layer (of a container of another image) */
	image_state(&st, &t, 0);
	add_mount(&st, hx("c1"), hx("e1"), NULL, sha("a1"));
	add_container(&st, hx("c1"), "web", sha("b9"));
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &tg);
	DEVS(&pl, 3);
	expect_skip(&pl, "layer a10000000000", "the read-write layer c10000000000");
	plan_free(&pl);
	/* ... unless the container goes too */
	struct targets tc = { .img = { "b1" }, .con = { "web" } };
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &tc);
	assert_int_equal(pl.refused, 0);
	DEVS(&pl, 2, 3);
	assert_int_equal(pl.nr_skips, 0);
	plan_free(&pl);
	dk_state_free(&st);

	/* by a kept layer above it */
	image_state(&st, &t, 0);
	add_file(&st, hx("d3"), 4);
	add_layer(&st, sha("a3"), hx("d3"), sha("a1"), 0);
	t.inv.nr_items = 0;
	item(&t, &st, INV_IMAGE_LAYER, 2, hx("d1"));
	item(&t, &st, INV_IMAGE_LAYER, 3, hx("d2"));
	item(&t, &st, INV_UNREFERENCED_LAYER, 4, hx("d3"));
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &tg);
	DEVS(&pl, 3);
	expect_skip(&pl, "layer a10000000000", "layer a30000000000 above it uses it");
	plan_free(&pl);
	/* a half-removed layer above it does not keep it */
	st.layers[2].removing = 1;
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &tg);
	DEVS(&pl, 2, 3);
	plan_free(&pl);
	dk_state_free(&st);

	/* by a BuildKit snapshot: the top layer already */
	image_state(&st, &t, 0);
	add_buildkit(&st, hx("d2"), sha("a2"));
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &tg);
	assert_int_equal(pl.refused, 0);
	assert_int_equal(pl.nr_devs, 0);
	FILES(&pl, DK_REPOSITORIES, imagedb_path("content", sha("b1")), imagedb_path("metadata", sha("b1")));
	expect_skip(&pl, "layer a20000000000", "BuildKit's snapshot");
	plan_free(&pl);
	dk_state_free(&st);
}

static void test_image_refused(void **state)
{
	(void)state;
	struct dk_state st;
	struct tinv t;
	struct plan pl;

	/* A container of it. */
	image_state(&st, &t, 0);
	add_mount(&st, hx("c1"), hx("e1"), NULL, sha("a2"));
	add_container(&st, hx("c1"), "web", sha("b1"));
	expect_target_refused(&t, &st, &(struct targets){ .img = { "b1" } }, "--image b1",
			      "container web uses it: remove the container first (--container)");
	/* Its last tag is the image (the first is untagged). */
	struct targets tt = { .img = { "app:1", "app:latest" } };
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &tt);
	assert_int_equal(pl.refused, 1);
	expect_skip(&pl, "--image app:latest", "container web uses it");
	assert_int_equal(pl.nr_devs, 0);
	plan_free(&pl);
	/* Named together: fine. */
	struct targets tc = { .img = { "b1" }, .con = { hx("c1") } };
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &tc);
	assert_int_equal(pl.refused, 0);
	DEVS(&pl, 2, 3);
	assert_non_null(file_in(&pl, container_path(hx("c1"))));
	plan_free(&pl);
	dk_state_free(&st);

	/* A child image built on it. */
	image_state(&st, &t, 1);
	add_image(&st, sha("b3"), (const char *const[]){ sha("a1"), sha("a2"), sha("a4") }, 3,
		  (const char *const[]){ "child:1" }, 1);
	expect_target_refused(&t, &st, &(struct targets){ .img = { "b1" } }, "--image b1",
			      "image child:1 is built on it");
	expect_target_refused(&t, &st, &(struct targets){ .img = { "base:1" } }, "--image base:1",
			      "is built on it");
	/* An ambiguous id prefix. */
	expect_target_refused(&t, &st, &(struct targets){ .img = { "b" } }, "--image b", "more than one image");
	dk_state_free(&st);
}

/* ---- containers/storage ---- */

static void test_cstorage(void **state)
{
	(void)state;
	struct dk_state st;
	struct tinv t;
	struct plan pl;
	dead_state(&st, &t);
	st.layout = DK_LAYOUT_CSTORAGE;
	add_file(&st, hx("d9"), 9);
	add_file(&st, hx("e9"), 10);
	add_mount(&st, hx("c9"), hx("e9"), NULL, NULL);
	t.inv.nr_items = 0;
	item(&t, &st, INV_IMAGE_LAYER, 2, hx("d1"));
	item(&t, &st, INV_DEAD_CONTAINER, 6, hinit("e1"));
	item(&t, &st, INV_DEAD_CONTAINER, 7, hx("e1"));
	item(&t, &st, INV_POOL_ORPHAN, 8, NULL);
	item(&t, &st, INV_UNREFERENCED_LAYER, 9, hx("d9"));
	item(&t, &st, INV_ORPHAN_MOUNT, 10, hx("e9"));
	item(&t, &st, INV_DRIVER_ORPHAN, 11, NULL);

	/* The device-only classes still go; containers and layers are
	 * podman's. */
	build(&pl, &t, &st, PLAN_DEAD_CONTAINERS | PLAN_UNREFERENCED_LAYERS | PLAN_DRIVER_ORPHANS, NULL);
	DEVS(&pl, 8, 11);
	assert_int_equal(pl.nr_files, 0);
	expect_skip(&pl, "thin 6", "dead-container: a containers/storage root: remove it with podman");
	expect_skip(&pl, "thin 7", "containers/storage");
	expect_skip(&pl, "thin 9", "unreferenced-layer: a containers/storage root");
	expect_skip(&pl, "thin 10", "orphan-mount: a containers/storage root");
	assert_int_equal(pl.refused, 0);
	plan_free(&pl);

	expect_target_refused(&t, &st, &(struct targets){ .con = { "web" } }, "--container web",
			      "containers/storage");
	expect_target_refused(&t, &st, &(struct targets){ .img = { "app:1" } }, "--image app:1",
			      "remove it with podman");
	/* So do --device on them: their Docker records are podman's. */
	expect_target_refused(&t, &st, &(struct targets){ .dev = { "7" } }, "--device 7", "containers/storage");
	expect_target_refused(&t, &st, &(struct targets){ .dev = { "9" } }, "--device 9", "containers/storage");
	expect_target_refused(&t, &st, &(struct targets){ .dev = { hx("e9") } }, "--device", "containers/storage");
	/* --device on a pool orphan is still fine. */
	struct targets td = { .dev = { "8" } };
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &td);
	DEVS(&pl, 8);
	plan_free(&pl);
	dk_state_free(&st);
}

/* ---- BuildKit's cache ---- */

/* ---- BuildKit's unreferenced snapshots ---- */

static void test_buildkit_unreferenced(void **state)
{
	(void)state;
	struct dk_state st;
	struct tinv t;
	struct plan pl;
	const char *child = "ccccccccccccccccccccccccc", *layer_key = "fgskcqqqhtpksdckpkqiuslth";
	const char *name = "igesdthruldflsckdpcsddhrp", *leased = "kkkkkkkkkkkkkkkkkkkkkkkkk";
	const char *parent = "ppppppppppppppppppppppppp", *snap = "teqfqifdrfijqdsfirdussiqg";
	const char *orphan = "tlfkuchdsjepurkuhuhrfhfsc";
	state_init(&st);
	add_file(&st, snap, 13);
	add_file(&st, layer_key, 14);
	add_file(&st, leased, 15);
	add_file(&st, child, 16);
	add_file(&st, parent, 17);
	add_file(&st, orphan, 23);
	/* sorted by key, as the reader leaves them */
	add_buildkit(&st, child, NULL);
	st.buildkit[0].parent = xstrdup(parent);
	add_buildkit(&st, layer_key, NULL);
	add_buildkit(&st, name, NULL);
	st.buildkit[2].committed_to = xstrdup(snap);
	add_buildkit(&st, leased, NULL);
	add_buildkit(&st, parent, NULL);
	add_buildkit(&st, snap, NULL);
	add_layer(&st, sha("a1"), layer_key, NULL, 0);
	add_image(&st, sha("b1"), (const char *const[]){ sha("a1") }, 1, (const char *const[]){ "tool:dev" }, 1);
	tinv_init(&t, 1);
	item(&t, &st, INV_BUILDKIT, 13, snap);
	item(&t, &st, INV_IMAGE_LAYER, 14, layer_key);
	item(&t, &st, INV_BUILDKIT, 15, leased);
	item(&t, &st, INV_BUILDKIT, 16, child);
	item(&t, &st, INV_BUILDKIT, 17, parent);
	item(&t, &st, INV_DRIVER_ORPHAN, 23, orphan);
	/* The records and leases were not read: refused, nothing planned. */
	st.buildkit_refs_error = xstrdup("buildkit/metadata_v2.db: missing");
	build(&pl, &t, &st, PLAN_BUILDKIT_UNREFERENCED, NULL);
	assert_non_null(pl.class_refused);
	assert_non_null(strstr(pl.class_refused, "buildkit/metadata_v2.db: missing"));
	assert_true(plan_empty(&pl));
	plan_free(&pl);
	/* A record names the child (so its parent stays), a lease the leased
	 * one; the layer is an image's. The builder stage and its committed
	 * name go, with the BuildKit-named orphan no record names. */
	st.buildkit_refs = strv((const char *const[]){ child, leased }, 2);
	st.nr_buildkit_refs = 2;
	st.buildkit_refs_read = 1;
	build(&pl, &t, &st, PLAN_BUILDKIT_UNREFERENCED, NULL);
	assert_null(pl.class_refused);
	DEVS(&pl, 13, 23);
	FILES(&pl, "buildkit/snapshots.db", meta_path(orphan), meta_path(snap));
	assert_int_equal(pl.files[0].op, PLAN_REWRITE_BOLT);
	assert_int_equal(pl.nr_drop_snapshots, 2);
	assert_string_equal(pl.drop_snapshots[0], name);
	assert_string_equal(pl.drop_snapshots[1], snap);
	assert_non_null(skip_of(&pl, "BuildKit's cache"));
	plan_free(&pl);
	/* A record on the orphan's key keeps it too. */
	strv_free(st.buildkit_refs, st.nr_buildkit_refs);
	st.buildkit_refs = strv((const char *const[]){ child, leased, orphan }, 3);
	st.nr_buildkit_refs = 3;
	build(&pl, &t, &st, PLAN_BUILDKIT_UNREFERENCED, NULL);
	DEVS(&pl, 13);
	plan_free(&pl);
	/* --buildkit-cache drops everything anyway: no rewrite. */
	build(&pl, &t, &st, PLAN_BUILDKIT_CACHE | PLAN_BUILDKIT_UNREFERENCED, NULL);
	assert_int_equal(pl.nr_drop_snapshots, 0);
	assert_string_equal(pl.files[0].path, "buildkit");
	plan_free(&pl);
	dk_state_free(&st);
}

static void test_buildkit_cache(void **state)
{
	(void)state;
	struct dk_state st;
	struct tinv t;
	struct plan pl;
	const char *snap = "teqfqifdrfijqdsfirdussiqg", *orphan = "tlfkuchdsjepurkuhuhrfhfsc";
	const char *layer_key = "fgskcqqqhtpksdckpkqiuslth";
	state_init(&st);
	add_file(&st, snap, 13);
	add_file(&st, orphan, 23);
	add_file(&st, layer_key, 14);
	add_file(&st, hx("d1"), 3);
	add_buildkit(&st, snap, NULL);
	add_buildkit(&st, layer_key, NULL);
	add_layer(&st, sha("a1"), layer_key, NULL, 0);
	add_image(&st, sha("b1"), (const char *const[]){ sha("a1") }, 1, (const char *const[]){ "tool:dev" }, 1);
	tinv_init(&t, 1);
	item(&t, &st, INV_DRIVER_ORPHAN, 3, hx("d1"));
	item(&t, &st, INV_BUILDKIT, 13, snap);
	item(&t, &st, INV_IMAGE_LAYER, 14, layer_key);
	item(&t, &st, INV_DRIVER_ORPHAN, 23, orphan);
	/* Without the option BuildKit's cache is not a leftover: not even
	 * named among what is left alone; the orphans are, as driver orphans. */
	build(&pl, &t, &st, 0, NULL);
	assert_true(plan_empty(&pl));
	assert_int_equal(pl.nr_skips, 2);
	plan_free(&pl);
	/* With it: buildkit/ first, the snapshot and the BuildKit-named orphan
	 * with their files; the layer an image uses and the other orphan stay. */
	build(&pl, &t, &st, PLAN_BUILDKIT_CACHE, NULL);
	DEVS(&pl, 13, 23);
	FILES(&pl, "buildkit", meta_path(snap), meta_path(orphan));
	assert_string_equal(pl.files[0].reason, "buildkit-cache");
	assert_int_equal(pl.nr_skips, 1);
	plan_free(&pl);
	/* After buildkit/ is gone (an interrupted run), the snapshot's device
	 * is a BuildKit-named driver orphan: the same option finishes. */
	st.buildkit_present = 0;
	t.items[1].cls = INV_DRIVER_ORPHAN;
	build(&pl, &t, &st, PLAN_BUILDKIT_CACHE, NULL);
	DEVS(&pl, 13, 23);
	FILES(&pl, meta_path(snap), meta_path(orphan));
	plan_free(&pl);
	dk_state_free(&st);
}

/* ---- order and duplicates ---- */

static void test_order(void **state)
{
	(void)state;
	struct dk_state st;
	struct tinv t;
	struct plan pl;
	state_init(&st);
	add_file(&st, hx("d9"), 9);
	add_file(&st, hx("d3"), 3);
	add_file(&st, hx("d6"), 6);
	add_file(&st, hx("d1"), 12);
	add_layer(&st, sha("a1"), hx("d1"), NULL, 1);
	add_transient(&st, DK_TRANSIENT_MNT_EMPTY, DK_HOME "/mnt/x", 100);
	tinv_init(&t, 1);
	/* an inventory in no particular order (plan_build must not rely on it) */
	transient_item(&t, DK_HOME "/mnt/x");
	item(&t, &st, INV_DEFERRED_DELETED, 9, hx("d9"));
	item(&t, &st, INV_POOL_ORPHAN, 20, NULL);
	item(&t, &st, INV_DEFERRED_DELETED, 3, hx("d3"));
	item(&t, &st, INV_HALF_REMOVED_LAYER, 12, hx("d1"));
	item(&t, &st, INV_DEFERRED_DELETED, 6, hx("d6"));
	item(&t, &st, INV_POOL_ORPHAN, 0, NULL);
	build(&pl, &t, &st, 0, NULL);
	DEVS(&pl, 0, 3, 6, 9, 12, 20);
	/* devices' hashes follow their devices through the sort */
	assert_string_equal(pl.devs[1].hash, hx("d3"));
	assert_string_equal(pl.devs[3].hash, hx("d9"));
	assert_null(pl.devs[5].hash);
	/* by rank; within a rank, the order they were added in */
	FILES(&pl, meta_path(hx("d9")), meta_path(hx("d3")), meta_path(hx("d1")), meta_path(hx("d6")), layer_dir(sha("a1"), 1), DK_HOME "/mnt/x");
	plan_free(&pl);
	dk_state_free(&st);
}

static void test_no_duplicates(void **state)
{
	(void)state;
	struct dk_state st;
	struct tinv t;
	struct plan pl;

	/* The same dead container by two items, by --container and by --device:
	 * its devices and paths once. */
	dead_state(&st, &t);
	struct targets tg = { .con = { "web", hx("c1") }, .dev = { "6", hx("e1") } };
	build(&pl, &t, &st, PLAN_DEAD_CONTAINERS, &tg);
	DEVS(&pl, 6, 7);
	assert_int_equal(pl.nr_files, 4);
	assert_int_equal(pl.nr_skips, 0);
	plan_free(&pl);
	dk_state_free(&st);

	/* A half-removed layer whose removing directory is listed twice in the
	 * state (two crashed removals of the same chain): once. Two layers
	 * whose cache-ids collide: one device. */
	state_init(&st);
	add_file(&st, hx("d1"), 3);
	add_layer(&st, sha("a1"), hx("d1"), NULL, 1);
	add_layer(&st, sha("a1"), hx("d1"), NULL, 1);
	tinv_init(&t, 1);
	item(&t, &st, INV_HALF_REMOVED_LAYER, 3, hx("d1"));
	struct targets td = { .dev = { "3" } };
	build(&pl, &t, &st, 0, &td);
	DEVS(&pl, 3);
	FILES(&pl, meta_path(hx("d1")), layer_dir(sha("a1"), 1));
	plan_free(&pl);
	dk_state_free(&st);

	/* An image named by id, by tag and by chain id: once. */
	image_state(&st, &t, 0);
	struct targets ti = { .img = { "b1", "app:1", sha("a2") + 7, sha("b1") } };
	build(&pl, &t, &st, PLAN_NO_DEFAULTS, &ti);
	assert_int_equal(pl.refused, 0);
	DEVS(&pl, 2, 3);
	UNTAG(&pl, "app:1", "app:latest");
	assert_int_equal(pl.nr_files, 7);
	assert_int_equal(pl.nr_skips, 0);
	plan_free(&pl);
	dk_state_free(&st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_labels_protected),
		cmocka_unit_test(test_pool_orphan),
		cmocka_unit_test(test_deferred_deleted),
		cmocka_unit_test(test_half_removed_layer),
		cmocka_unit_test(test_open_transaction),
		cmocka_unit_test(test_open_transaction_claimed),
		cmocka_unit_test(test_transients),
		cmocka_unit_test(test_optin_skipped),
		cmocka_unit_test(test_unreferenced_stack),
		cmocka_unit_test(test_dead_container),
		cmocka_unit_test(test_protected),
		cmocka_unit_test(test_target_device),
		cmocka_unit_test(test_target_device_leftovers),
		cmocka_unit_test(test_target_container),
		cmocka_unit_test(test_image_untag),
		cmocka_unit_test(test_image_by_id),
		cmocka_unit_test(test_image_shared_layers),
		cmocka_unit_test(test_image_refused),
		cmocka_unit_test(test_cstorage),
		cmocka_unit_test(test_buildkit_cache),
		cmocka_unit_test(test_buildkit_unreferenced),
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_no_duplicates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
