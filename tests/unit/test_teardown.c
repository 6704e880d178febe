/* teardown: the steps from live_check's findings (order, deferred
 * removals, refusals), and running them through scripted operations. */
#include "unit.h"

#include "teardown.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static struct live_finding fnd(enum live_kind k, const char *object, int named, int level, int deferred)
{
	struct live_finding f;
	memset(&f, 0, sizeof(f));
	f.kind = k;
	f.overridable = k == LIVE_DOCKERD || k == LIVE_PODMAN_CRIO;
	snprintf(f.object, sizeof(f.object), "%s", object);
	snprintf(f.msg, sizeof(f.msg), "%s is live", object);
	f.named = named;
	f.level = level;
	f.deferred = deferred;
	return f;
}

static void test_order(void **state)
{
	(void)state;
	struct live_finding f[] = {
		fnd(LIVE_LOOP, "/dev/loop1", 0, 0, 0),
		fnd(LIVE_DM_POOL, "docker-8:1-42-pool", 1, 0, 0),
		fnd(LIVE_MOUNT, "/var/lib/docker/devicemapper/mnt/aaa", 0, 0, 0),
		fnd(LIVE_DM_THIN, "docker-8:1-42-aaa", 1, 1, 1),
		fnd(LIVE_LOOP, "/dev/loop0", 0, 0, 0),
		fnd(LIVE_DM_THIN, "docker-8:1-42-bbb", 1, 2, 0), /* on aaa */
		fnd(LIVE_MOUNT, "/var/lib/docker/devicemapper/mnt/aaa/rootfs", 0, 0, 0),
	};
	struct td_plan p;
	struct dmr_err err = { 0 };
	assert_int_equal(td_plan_build(f, sizeof(f) / sizeof(f[0]), &p, &err), 0);
	assert_int_equal(p.refused, 0);
	const struct {
		enum td_kind k;
		const char *o;
	} want[] = {
		{ TD_UNMOUNT, "/var/lib/docker/devicemapper/mnt/aaa/rootfs" },
		{ TD_UNMOUNT, "/var/lib/docker/devicemapper/mnt/aaa" },
		{ TD_REMOVE_THIN, "docker-8:1-42-bbb" },
		{ TD_CANCEL_DEFERRED, "docker-8:1-42-aaa" },
		{ TD_REMOVE_THIN, "docker-8:1-42-aaa" },
		{ TD_REMOVE_POOL, "docker-8:1-42-pool" },
		{ TD_DETACH_LOOP, "/dev/loop0" },
		{ TD_DETACH_LOOP, "/dev/loop1" },
	};
	assert_int_equal(p.n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < p.n; i++) {
		assert_int_equal(p.v[i].kind, want[i].k);
		assert_string_equal(p.v[i].object, want[i].o);
	}
	td_plan_free(&p);
	assert_int_equal(td_plan_build(NULL, 0, &p, &err), 0);
	assert_int_equal(p.n, 0);
	td_plan_free(&p);
}

static void test_refusals(void **state)
{
	(void)state;
	struct td_plan p;
	struct dmr_err err = { 0 };
	struct live_finding d[] = { fnd(LIVE_DM_POOL, "docker-8:1-42-pool", 1, 0, 0),
				    fnd(LIVE_DOCKERD, "1234", 0, 0, 0) };
	assert_int_equal(td_plan_build(d, 2, &p, &err), 0);
	assert_true(p.refused);
	assert_contains(p.refusal, "teardown is for a daemon that died");
	td_plan_free(&p);
	struct live_finding o[] = { fnd(LIVE_DM_POOL, "vg-thinpool", 0, 0, 0) };
	assert_int_equal(td_plan_build(o, 1, &p, &err), 0);
	assert_true(p.refused);
	assert_contains(p.refusal, "vg-thinpool: it uses Docker's files but is not named like Docker's pool");
	td_plan_free(&p);
	struct live_finding s[] = { fnd(LIVE_DM_POOL, "docker-8:1-42-pool", 1, 0, 0),
				    fnd(LIVE_DM_THIN, "docker-8:1-42-aaa", 1, 1, 0),
				    fnd(LIVE_DM_THIN, "crypt-home", 0, 2, 0) };
	assert_int_equal(td_plan_build(s, 3, &p, &err), 0);
	assert_true(p.refused);
	assert_contains(p.refusal, "crypt-home: it sits on Docker's devices but is not Docker's");
	td_plan_free(&p);
}

/* Scripted operations: a log of calls, and one that fails. */
struct script {
	char log[1024];
	const char *fail_on;
	int busy_mount;
};

static int note(struct script *s, const char *what, const char *obj, struct dmr_err *err)
{
	strcat(s->log, what);
	strcat(s->log, " ");
	strcat(s->log, obj);
	strcat(s->log, ";");
	if (s->fail_on && !strcmp(what, "remove") && !strcmp(s->fail_on, obj))
		return dmr_err_set(err, DMR_EIO, "cannot remove %s: Device or resource busy", obj);
	return 0;
}

static int f_unmount(void *ctx, const char *path, int *lazily, struct dmr_err *err)
{
	struct script *s = ctx;
	*lazily = s->busy_mount;
	return note(s, "umount", path, err);
}
static int f_cancel(void *ctx, const char *name, struct dmr_err *err) { return note(ctx, "cancel", name, err); }
static int f_remove(void *ctx, const char *name, struct dmr_err *err) { return note(ctx, "remove", name, err); }
static int f_detach(void *ctx, const char *dev, struct dmr_err *err) { return note(ctx, "detach", dev, err); }

static const struct td_ops fake_ops = { f_unmount, f_cancel, f_remove, f_detach };

static int run_all(const struct td_plan *p, struct script *s, size_t *done, struct dmr_err *err)
{
	for (*done = 0; *done < p->n; (*done)++) {
		int lazily;
		int r = td_run_step(&fake_ops, s, &p->v[*done], &lazily, err);
		if (r)
			return r;
		if (p->v[*done].kind == TD_UNMOUNT)
			assert_int_equal(lazily, s->busy_mount);
	}
	return 0;
}

static void test_run(void **state)
{
	(void)state;
	struct live_finding f[] = { fnd(LIVE_MOUNT, "/r/devicemapper/mnt/x", 0, 0, 0),
				    fnd(LIVE_DM_THIN, "docker-8:1-42-x", 1, 1, 1),
				    fnd(LIVE_DM_POOL, "docker-8:1-42-pool", 1, 0, 0),
				    fnd(LIVE_LOOP, "/dev/loop0", 0, 0, 0) };
	struct td_plan p;
	struct dmr_err err = { 0 };
	assert_int_equal(td_plan_build(f, 4, &p, &err), 0);
	struct script s = { .busy_mount = 1 };
	size_t done;
	assert_int_equal(run_all(&p, &s, &done, &err), 0);
	assert_string_equal(s.log, "umount /r/devicemapper/mnt/x;cancel docker-8:1-42-x;remove docker-8:1-42-x;"
				   "remove docker-8:1-42-pool;detach /dev/loop0;");
	/* A step that fails stops the run there: the pool stays, with its loop. */
	struct script s2 = { .fail_on = "docker-8:1-42-x" };
	assert_int_equal(run_all(&p, &s2, &done, &err), DMR_EIO);
	assert_int_equal(done, 2);
	assert_contains(err.msg, "busy");
	assert_string_equal(s2.log, "umount /r/devicemapper/mnt/x;cancel docker-8:1-42-x;remove docker-8:1-42-x;");
	td_plan_free(&p);
	assert_string_equal(td_kind_name(TD_REMOVE_POOL), "remove pool");
}

/* A fake /proc: pid 12 (a container's sleep) has 253:3 mounted in its
 * namespace, pid 40 only 253:30, pid 7 has no comm, "self" and "x1" are no
 * pids. */
static void put(const char *dir, const char *pid, const char *file, const char *text, char paths[][600], int *n)
{
	char p[600];
	snprintf(p, sizeof(p), "%s/%s", dir, pid);
	if (mkdir(p, 0700) == 0)
		snprintf(paths[(*n)++], 600, "%s", p);
	snprintf(p, sizeof(p), "%s/%s/%s", dir, pid, file);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	unit_tmp_track(p);
}

static void test_holders(void **state)
{
	(void)state;
	if (!unit_tmpdir_usable())
		skip();
	const char *t = getenv("TMPDIR");
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/dmr-td-proc-XXXXXX", t && *t ? t : "/tmp");
	assert_non_null(mkdtemp(dir));
	char dirs[8][600];
	int nd = 0;
	const char *root = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n";
	put(dir, "12", "mountinfo",
	    "600 500 8:1 /var/lib/docker/devicemapper/mnt/x/rootfs / rw - ext4 /dev/sda1 rw\n"
	    "610 600 253:3 /rootfs / rw,relatime - xfs /dev/mapper/docker-8:1-42-x rw\n", dirs, &nd);
	put(dir, "12", "comm", "sleep\n", dirs, &nd);
	put(dir, "40", "mountinfo", "23 22 253:30 / /mnt rw - xfs /dev/dm-30 rw\n", dirs, &nd);
	put(dir, "40", "comm", "sh\n", dirs, &nd);
	put(dir, "7", "mountinfo", "24 22 253:3 / /a rw - xfs /dev/dm-3 rw\n", dirs, &nd);
	put(dir, "self", "mountinfo", "25 22 253:3 / /b rw - xfs /dev/dm-3 rw\n", dirs, &nd);
	put(dir, "x1", "mountinfo", root, dirs, &nd);
	char out[256];
	td_holders(dir, 253, 3, out, sizeof(out));
	/* readdir order: either way round */
	assert_true(!strcmp(out, "pid 12 (sleep), pid 7 (?)") || !strcmp(out, "pid 7 (?), pid 12 (sleep)"));
	td_holders(dir, 253, 30, out, sizeof(out));
	assert_string_equal(out, "pid 40 (sh)");
	td_holders(dir, 8, 3, out, sizeof(out));
	assert_string_equal(out, "");
	td_holders(dir, 253, 3, out, 20); /* too small for two: the first only */
	assert_true(!strcmp(out, "pid 12 (sleep)") || !strcmp(out, "pid 7 (?)"));
	td_holders("/nonexistent-proc", 253, 3, out, sizeof(out));
	assert_string_equal(out, "");
	unit_tmp_cleanup(NULL);
	while (nd > 0)
		rmdir(dirs[--nd]);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_run),
		cmocka_unit_test(test_holders),
	};
	return cmocka_run_group_tests_name("teardown", tests, NULL, NULL);
}
