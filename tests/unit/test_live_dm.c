/* live's device-mapper guard over a scripted kernel (fake_dmwrap.c linked
 * instead of src/dmwrap.c): processes, loops and mounts come from a quiet
 * fake root, the dm list from the script. */
#include "unit.h"
#include "liveroot.h"
#include "fake_dmwrap.h"

#include <sys/sysmacros.h>

#include "dmlist.h"

#define PREFIX "docker-8:1-1234"

/* init, the root mount, loop0 (7:0) on the data file, loop1 (7:1) on
 * the metadata file, loop2 (7:2) on someone else's file. */
static void quiet_root(const char *root)
{
	dkt_write(root, "sysroot/proc/1/comm", "systemd\n");
	dkt_writen(root, "sysroot/proc/1/cmdline", "/sbin/init\0", 11);
	dkt_mkdir(root, "sysroot/proc/self");
	dkt_write(root, "sysroot/proc/self/mountinfo",
		  "22 1 253:0 / / rw,relatime shared:1 - xfs /dev/vda1 rw\n");
	dkt_write(root, "docker/devicemapper/data", "d");
	dkt_write(root, "docker/devicemapper/metadata", "m");
	dkt_write(root, "other", "o");
	dkt_write(root, "sysroot/sys/block/loop0/dev", "7:0\n");
	dkt_write(root, "sysroot/sys/block/loop0/loop/backing_file", lvr_path(root, "docker/devicemapper/data"));
	dkt_write(root, "sysroot/sys/block/loop1/dev", "7:1\n");
	dkt_write(root, "sysroot/sys/block/loop1/loop/backing_file", lvr_path(root, "docker/devicemapper/metadata"));
	dkt_write(root, "sysroot/sys/block/loop2/dev", "7:2\n");
	dkt_write(root, "sysroot/sys/block/loop2/loop/backing_file", lvr_path(root, "other"));
}

/* live_check with the script; *n findings of dm kinds (the loop lines of
 * quiet_root are left out) into msgs. Returns live_check's result. */
static int dm_check(const char *root, const struct fake_dm *script, int with_files,
		    char msgs[][400], enum live_kind *kinds, size_t *n, struct dmr_err *err)
{
	char meta[4200], data[4200];
	snprintf(meta, sizeof(meta), "%s/docker/devicemapper/metadata", root);
	snprintf(data, sizeof(data), "%s/docker/devicemapper/data", root);
	struct live_finding *f = NULL;
	size_t nf = 99;
	fake_dm_set(script);
	int r = lvr_check(root, 1, with_files ? meta : NULL, with_files ? data : NULL, PREFIX, &f, &nf, err);
	*n = 0;
	if (r) {
		assert_null(f);
		assert_int_equal(nf, 0);
		return r;
	}
	lvr_print_findings(f, nf);
	for (size_t i = 0; i < nf; i++) {
		if (f[i].kind != LIVE_DM_POOL && f[i].kind != LIVE_DM_THIN)
			continue;
		assert_false(f[i].overridable);
		snprintf(msgs[*n], 400, "%s", f[i].msg);
		kinds[(*n)++] = f[i].kind;
	}
	free(f);
	return 0;
}

struct want {
	enum live_kind kind;
	const char *msg;
};

static void expect_dm(const char *root, const struct fake_dm *script, int with_files,
		      const struct want *w, size_t nw)
{
	char msgs[32][400];
	enum live_kind kinds[32];
	size_t n;
	struct dmr_err err = { 0 };
	int r = dm_check(root, script, with_files, msgs, kinds, &n, &err);
	if (r)
		fail_msg("live_check = %d: %s", r, err.msg);
	if (n != nw)
		fail_msg("%zu dm findings, expected %zu", n, nw);
	for (size_t i = 0; i < n; i++)
		if (kinds[i] != w[i].kind || strcmp(msgs[i], w[i].msg))
			fail_msg("dm finding %zu: \"%s\" (kind %d), expected \"%s\" (kind %d)", i, msgs[i],
				 (int)kinds[i], w[i].msg, (int)w[i].kind);
}

/* The machine's own root volume: on a disk, not ours. */
#define ROOT_DEV { .name = "rhel-root", .major = 253, .minor = 0, .deps = "252:2", \
		   .table = "0 41943040 linear 252:2 2048", .uuid = "LVM-abc", .open_count = 1 }

static void test_no_dm(void **state)
{
	const char *root = *state;
	quiet_root(root);
	struct fake_dm none = { .no_dm = 1 };
	expect_dm(root, &none, 1, NULL, 0);
	assert_int_equal(fake_dm_calls.list, 1);
	assert_int_equal(fake_dm_calls.deps, 0);
	/* device-mapper, but no device */
	struct fake_dm empty = { .n = 0 };
	expect_dm(root, &empty, 1, NULL, 0);
	/* the kernel was asked even though the root is fake */
	assert_int_equal(fake_dm_calls.list, 1);
}

static void test_pool_by_name(void **state)
{
	const char *root = *state;
	quiet_root(root);
	const struct fake_dm_dev devs[] = {
		ROOT_DEV,
		{ .name = PREFIX "-pool", .major = 253, .minor = 1, .deps = "7:1 7:0",
		  .table = "0 209715200 thin-pool 7:1 7:0 128 32768 1 skip_block_zeroing" },
	};
	struct fake_dm s = { .devs = devs, .n = 2 };
	const struct want w[] = { { LIVE_DM_POOL, "thin pool " PREFIX "-pool is active in the kernel" } };
	expect_dm(root, &s, 1, w, 1);
	expect_dm(root, &s, 0, w, 1); /* without the loop files, the name alone */
	assert_int_equal(fake_dm_calls.deps, 2);
	assert_int_equal(fake_dm_calls.table, 2);
}

static void test_thin_by_prefix(void **state)
{
	const char *root = *state;
	quiet_root(root);
	const struct fake_dm_dev devs[] = {
		ROOT_DEV,
		{ .name = PREFIX "-" HA, .major = 253, .minor = 2 }, /* no deps, no table: the name tells */
		{ .name = PREFIX "-base", .major = 253, .minor = 3, .deps = "253:9",
		  .table = "0 20971520 thin 253:9 0" },
	};
	struct fake_dm s = { .devs = devs, .n = 3 };
	const struct want w[] = {
		{ LIVE_DM_THIN, "thin device " PREFIX "-" HA " is active in the kernel" },
		{ LIVE_DM_THIN, "thin device " PREFIX "-base is active in the kernel" },
	};
	expect_dm(root, &s, 1, w, 2);
}

static void test_stacked_on_pool(void **state)
{
	const char *root = *state;
	quiet_root(root);
	const struct fake_dm_dev devs[] = {
		{ .name = PREFIX "-pool", .major = 253, .minor = 1, .deps = "7:1 7:0",
		  .table = "0 209715200 thin-pool 7:1 7:0 128 32768 1 skip_block_zeroing" },
		/* a thin device of the pool under another name: deps and table */
		{ .name = "mythin", .major = 253, .minor = 4, .deps = "253:1",
		  .table = "0 2097152 thin 253:1 7" },
		/* only its table names the pool (deps not given) */
		{ .name = "tableonly", .major = 253, .minor = 5, .table = "0 2097152 thin 253:1 8" },
		/* a linear on a thin device, further up */
		{ .name = "onthin", .major = 253, .minor = 6, .deps = "253:4",
		  .table = "0 2048 linear 253:4 0" },
		/* a thin device of another pool */
		{ .name = "elsewhere", .major = 253, .minor = 7, .deps = "253:8",
		  .table = "0 2048 thin 253:8 1" },
		{ .name = "otherpool", .major = 253, .minor = 8, .deps = "8:17 8:18",
		  .table = "0 2048 thin-pool 8:17 8:18 128 0 0" },
	};
	struct fake_dm s = { .devs = devs, .n = 6 };
	const struct want w[] = {
		{ LIVE_DM_POOL, "thin pool " PREFIX "-pool is active in the kernel" },
		{ LIVE_DM_THIN, "thin device mythin is active in the kernel" },
		{ LIVE_DM_THIN, "thin device tableonly is active in the kernel" },
		{ LIVE_DM_THIN, "dm device onthin (linear) on mythin is active in the kernel" },
	};
	expect_dm(root, &s, 0, w, 4);
}

static void test_on_our_loops(void **state)
{
	const char *root = *state;
	quiet_root(root);
	const struct fake_dm_dev devs[] = {
		ROOT_DEV,
		/* our pool under another name (dm.thinpooldev, a moved HOME) */
		{ .name = "docker-8:1-999-pool", .major = 253, .minor = 1, .deps = "7:1 7:0",
		  .table = "0 209715200 thin-pool 7:1 7:0 128 32768 1 skip_block_zeroing" },
		{ .name = "docker-8:1-999-" HB, .major = 253, .minor = 2, .deps = "253:1",
		  .table = "0 20971520 thin 253:1 3" },
		/* the kernel gave the table but no deps */
		{ .name = "pool2", .major = 253, .minor = 3,
		  .table = "0 2048 thin-pool 7:1 7:0 128 0 0" },
		/* not a pool: a linear mapping of our data file */
		{ .name = "peek", .major = 253, .minor = 4, .deps = "7:0",
		  .table = "0 2048 linear 7:0 0" },
		/* on someone else's loop */
		{ .name = "theirs", .major = 253, .minor = 5, .deps = "7:2",
		  .table = "0 2048 linear 7:2 0" },
	};
	struct fake_dm s = { .devs = devs, .n = 6 };
	const struct want w[] = {
		{ LIVE_DM_POOL, "thin pool docker-8:1-999-pool is active in the kernel" },
		{ LIVE_DM_THIN, "thin device docker-8:1-999-" HB " is active in the kernel" },
		{ LIVE_DM_POOL, "thin pool pool2 is active in the kernel" },
		{ LIVE_DM_POOL, "dm device peek (linear) on /dev/loop0 is active in the kernel" },
	};
	expect_dm(root, &s, 1, w, 4);
	/* without the loop files there is nothing to tie them to us */
	expect_dm(root, &s, 0, NULL, 0);
}

static void test_unrelated(void **state)
{
	const char *root = *state;
	quiet_root(root);
	const struct fake_dm_dev devs[] = {
		ROOT_DEV,
		{ .name = "rhel-swap", .major = 253, .minor = 1, .deps = "252:2",
		  .table = "0 4194304 linear 252:2 41945088" },
		/* another HOME's pool: a longer inode, same start */
		{ .name = PREFIX "5-pool", .major = 253, .minor = 2, .deps = "7:3 7:4",
		  .table = "0 2048 thin-pool 7:3 7:4 128 0 0" },
		{ .name = PREFIX "5-" HA, .major = 253, .minor = 3, .deps = "253:2",
		  .table = "0 2048 thin 253:2 1" },
		/* a name that only starts like ours */
		{ .name = PREFIX "pool", .major = 253, .minor = 4 },
	};
	struct fake_dm s = { .devs = devs, .n = 5 };
	expect_dm(root, &s, 1, NULL, 0);
}

static void test_list_fails(void **state)
{
	const char *root = *state;
	quiet_root(root);
	char msgs[4][400];
	enum live_kind kinds[4];
	size_t n = 9;
	struct dmr_err err = { 0 };
	/* a guard that cannot look must not say "nothing live" */
	struct fake_dm s = { .list_fail = DMR_EIO, .list_msg = "Permission denied (not root?)" };
	assert_int_equal(dm_check(root, &s, 1, msgs, kinds, &n, &err), DMR_EIO);
	assert_string_equal(err.msg, "cannot list device-mapper devices: Permission denied (not root?)");
	assert_int_equal(n, 0);

	/* the same for one device that cannot be read */
	const struct fake_dm_dev devs[] = {
		ROOT_DEV,
		{ .name = "stuck", .major = 253, .minor = 1, .fail = DMR_EIO },
	};
	struct fake_dm s2 = { .devs = devs, .n = 2 };
	dmr_err_clear(&err);
	assert_int_equal(dm_check(root, &s2, 1, msgs, kinds, &n, &err), DMR_EIO);
	assert_contains(err.msg, "cannot read what stuck uses");
}

static void test_removed_meanwhile(void **state)
{
	const char *root = *state;
	quiet_root(root);
	const struct fake_dm_dev devs[] = {
		/* gone before its deps: the name still counts */
		{ .name = PREFIX "-" HA, .major = 253, .minor = 2, .deps = "253:1",
		  .table = "0 2048 thin 253:1 1", .when = FAKE_DM_GONE_BEFORE_DEPS },
		/* gone, and nothing tied it to us */
		{ .name = "tmp-snap", .major = 253, .minor = 3, .deps = "7:0",
		  .table = "0 2048 linear 7:0 0", .when = FAKE_DM_GONE_BEFORE_DEPS },
		ROOT_DEV,
		/* gone between deps and table: the deps read still tie it */
		{ .name = "lastgasp", .major = 253, .minor = 4, .deps = "7:0",
		  .table = "0 2048 linear 7:0 0", .when = FAKE_DM_GONE_BEFORE_TABLE },
	};
	struct fake_dm s = { .devs = devs, .n = 4 };
	const struct want w[] = {
		{ LIVE_DM_THIN, "thin device " PREFIX "-" HA " is active in the kernel" },
		{ LIVE_DM_POOL, "thin pool lastgasp is active in the kernel" },
	};
	expect_dm(root, &s, 1, w, 2);
	assert_int_equal(fake_dm_calls.deps, 4);
	assert_int_equal(fake_dm_calls.table, 2); /* rhel-root and lastgasp */
}

/* dml_read itself: what the wrapper said, with the flags of the race. */
static void test_dml_read(void **state)
{
	(void)state;
	const struct fake_dm_dev devs[] = {
		ROOT_DEV,
		{ .name = "gone", .major = 253, .minor = 1, .deps = "7:0", .when = FAKE_DM_GONE_BEFORE_DEPS },
		{ .name = "half", .major = 253, .minor = 2, .deps = "7:0 7:1",
		  .table = "0 8 linear 7:0 0", .open_count = 3, .when = FAKE_DM_GONE_BEFORE_TABLE },
		{ .name = "two", .major = 253, .minor = 3, .deps = "7:0",
		  .table = "0 8 linear 7:0 0\n8 8 linear 7:0 100", .uuid = "u2" },
	};
	struct fake_dm s = { .devs = devs, .n = 4 };
	fake_dm_set(&s);
	struct dml_list l = { 0 };
	struct dmr_err err = { 0 };
	assert_int_equal(dml_read(&l, &err), 0);
	assert_int_equal(l.n, 4);
	assert_false(l.no_dm);
	assert_string_equal(l.v[0].name, "rhel-root");
	assert_string_equal(l.v[0].uuid, "LVM-abc");
	assert_int_equal(l.v[0].open_count, 1);
	assert_int_equal(l.v[0].nr_deps, 1);
	assert_true(l.v[0].deps[0] == makedev(252, 2));
	assert_int_equal(l.v[0].nr_table, 1);
	assert_string_equal(l.v[0].table[0].type, "linear");
	assert_string_equal(l.v[0].table[0].params, "252:2 2048");
	assert_true(l.v[0].table[0].length == 41943040);
	assert_int_equal(l.v[0].flags, 0);
	assert_int_equal(l.v[1].flags, DML_GONE);
	assert_int_equal(l.v[1].nr_deps, 0);
	assert_int_equal(l.v[2].flags, DML_GONE);
	assert_int_equal(l.v[2].nr_deps, 2);
	assert_int_equal(l.v[2].nr_table, 0);
	assert_int_equal(l.v[3].nr_table, 2);
	assert_true(l.v[3].table[1].start == 8);
	assert_string_equal(l.v[3].table[1].params, "7:0 100");
	assert_ptr_equal(dml_find_dev(&l, makedev(253, 3)), &l.v[3]);
	assert_null(dml_find_dev(&l, makedev(253, 9)));
	dml_free(&l);
	assert_int_equal(l.n, 0);

	/* no dm: empty, flagged, not an error */
	struct fake_dm none = { .no_dm = 1 };
	fake_dm_set(&none);
	assert_int_equal(dml_read(&l, &err), 0);
	assert_int_equal(l.n, 0);
	assert_true(l.no_dm);
	dml_free(&l);

	/* a failure leaves nothing behind */
	const struct fake_dm_dev bad[] = {
		ROOT_DEV,
		{ .name = "stuck", .major = 253, .minor = 1, .deps = "7:0", .fail = DMR_EIO },
	};
	struct fake_dm sb = { .devs = bad, .n = 2 };
	fake_dm_set(&sb);
	assert_int_equal(dml_read(&l, &err), DMR_EIO);
	assert_int_equal(l.n, 0);
	assert_null(l.v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		LVR_TEST(test_no_dm),
		LVR_TEST(test_pool_by_name),
		LVR_TEST(test_thin_by_prefix),
		LVR_TEST(test_stacked_on_pool),
		LVR_TEST(test_on_our_loops),
		LVR_TEST(test_unrelated),
		LVR_TEST(test_list_fails),
		LVR_TEST(test_removed_meanwhile),
		cmocka_unit_test(test_dml_read),
	};
	return LVR_RUN("live_dm", tests);
}
