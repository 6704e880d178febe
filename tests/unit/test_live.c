/* live: the guards against fake roots (proc/, sys/, run/ in a temp dir),
 * the lock, and one run against this machine. */
#include "unit.h"
#include "liveroot.h"

#include <errno.h>
#include <sys/stat.h>


#define PREFIX "docker-8:1-1234"

struct expect {
	enum live_kind kind;
	const char *msg;
};

/* live_check on the fake root <root>/sys-root must give exactly ex[]. */
static void check_exact(const char *root, const char *meta, const char *data, const char *prefix,
			const struct expect *ex, size_t nex)
{
	struct live_finding *f = NULL;
	size_t n = 99;
	struct dmr_err err = { 0 };
	int r = lvr_check(root, 0, meta, data, prefix, &f, &n, &err);
	if (r)
		fail_msg("live_check = %d: %s", r, err.msg);
	if (n != nex) {
		lvr_print_findings(f, n);
		fail_msg("%zu findings, expected %zu", n, nex);
	}
	for (size_t i = 0; i < n; i++) {
		if (f[i].kind != ex[i].kind || strcmp(f[i].msg, ex[i].msg)) {
			lvr_print_findings(f, n);
			fail_msg("finding %zu: expected kind %d \"%s\"", i, (int)ex[i].kind, ex[i].msg);
		}
		assert_int_equal(f[i].overridable,
				 ex[i].kind == LIVE_DOCKERD || ex[i].kind == LIVE_PODMAN_CRIO);
	}
	free(f);
}

/* A quiet machine: init, a shell, an unused loop, an unrelated dm device,
 * the root mount. */
static void clean_root(const char *root)
{
	dkt_write(root, "sysroot/proc/1/comm", "systemd\n");
	dkt_writen(root, "sysroot/proc/1/cmdline", "/sbin/init\0splash\0", 18);
	dkt_write(root, "sysroot/proc/42/comm", "bash\n");
	dkt_writen(root, "sysroot/proc/42/cmdline", "-bash\0", 6);
	dkt_mkdir(root, "sysroot/proc/self");
	dkt_write(root, "sysroot/proc/self/mountinfo",
		  "22 1 253:0 / / rw,relatime shared:1 - xfs /dev/vda1 rw\n");
	dkt_write(root, "sysroot/sys/block/loop0/dev", "7:0\n");
	dkt_mkdir(root, "sysroot/sys/block/loop0/loop"); /* attached to nothing: no backing_file */
	dkt_write(root, "sysroot/sys/block/dm-0/dev", "253:0\n");
	dkt_write(root, "sysroot/sys/block/dm-0/dm/name", "rhel-root\n");
	dkt_mkdir(root, "sysroot/sys/block/dm-0/slaves/vda2");
	dkt_write(root, "sysroot/sys/block/vda2/dev", "252:2\n");
	dkt_write(root, "docker/devicemapper/data", "d");
	dkt_write(root, "docker/devicemapper/metadata", "m");
}

static void test_clean(void **state)
{
	const char *root = *state;
	clean_root(root);
	check_exact(root, lvr_path(root, "docker/devicemapper/metadata"),
		    lvr_path(root, "docker/devicemapper/data"), PREFIX, NULL, 0);
	check_exact(root, NULL, NULL, NULL, NULL, 0);
	/* a stale pid file (dead pid) and one whose pid now is init */
	dkt_write(root, "sysroot/var/run/docker.pid", "4321\n");
	dkt_write(root, "sysroot/run/docker.pid", "1");
	check_exact(root, NULL, NULL, PREFIX, NULL, 0);
}

static void test_no_proc(void **state)
{
	const char *root = *state;
	dkt_mkdir(root, "sysroot");
	struct live_ctx c = { .sysroot = lvr_path(root, "sysroot") };
	struct live_finding *f = NULL;
	size_t n = 0;
	struct dmr_err err = { 0 };
	/* A guard that cannot look must not say "nothing is live". */
	assert_int_equal(live_check(&c, "/var/lib/docker", NULL, NULL, PREFIX, &f, &n, &err), DMR_EIO);
	assert_contains(err.msg, "cannot list processes in");
	assert_null(f);
	assert_int_equal(n, 0);
}

static void test_dockerd(void **state)
{
	const char *root = *state;
	clean_root(root);
	dkt_write(root, "sysroot/proc/1234/comm", "dockerd\n");
	dkt_writen(root, "sysroot/proc/1234/cmdline", "/usr/bin/dockerd\0-H\0fd://\0", 26);
	dkt_write(root, "sysroot/var/run/docker.pid", "1234\n");
	dkt_write(root, "sysroot/run/docker.pid", "1234"); /* the same, seen twice */
	const struct expect ex[] = {
		{ LIVE_DOCKERD, "dockerd is running (pid 1234, from /var/run/docker.pid): stop Docker first" },
	};
	check_exact(root, NULL, NULL, PREFIX, ex, 1);
	/* containers/storage roots do not care about dockerd */
	check_exact(root, NULL, NULL, "container-8:1-1234", NULL, 0);
}

static void test_dockerd_variants(void **state)
{
	const char *root = *state;
	clean_root(root);
	/* RHEL 7's docker package; comm is cut to 15 characters */
	dkt_write(root, "sysroot/proc/999/comm", "dockerd-current\n");
	check_exact(root, NULL, NULL, PREFIX, (const struct expect[]){
		{ LIVE_DOCKERD, "dockerd-current is running (pid 999): stop Docker first" } }, 1);
	dkt_remove(root, "sysroot/proc/999");
	/* Docker before 1.12 */
	dkt_write(root, "sysroot/proc/55/comm", "docker\n");
	dkt_writen(root, "sysroot/proc/55/cmdline", "/usr/bin/docker\0daemon\0", 23);
	check_exact(root, NULL, NULL, PREFIX, (const struct expect[]){
		{ LIVE_DOCKERD, "docker daemon is running (pid 55): stop Docker first" } }, 1);
	dkt_remove(root, "sysroot/proc/55");
	/* comm renamed, argv[0] still tells */
	dkt_write(root, "sysroot/proc/66/comm", "worker\n");
	dkt_writen(root, "sysroot/proc/66/cmdline", "/opt/bin/dockerd\0", 17);
	check_exact(root, NULL, NULL, PREFIX, (const struct expect[]){
		{ LIVE_DOCKERD, "dockerd is running (pid 66): stop Docker first" } }, 1);
	dkt_remove(root, "sysroot/proc/66");
	/* not Docker: the client, and a look-alike name */
	dkt_write(root, "sysroot/proc/67/comm", "docker\n");
	dkt_writen(root, "sysroot/proc/67/cmdline", "docker\0ps\0", 10);
	dkt_write(root, "sysroot/proc/68/comm", "dockerdx\n");
	check_exact(root, NULL, NULL, PREFIX, NULL, 0);
}

static void test_podman(void **state)
{
	const char *root = *state;
	clean_root(root);
	dkt_write(root, "sysroot/proc/77/comm", "conmon\n");
	dkt_writen(root, "sysroot/proc/77/cmdline", "/usr/bin/conmon\0--api-version\0", 30);
	const struct expect ex[] = {
		{ LIVE_PODMAN_CRIO, "conmon is running (pid 77): stop Podman/CRI-O/Buildah first" },
	};
	check_exact(root, NULL, NULL, "container-8:1-1234", ex, 1);
	check_exact(root, NULL, NULL, NULL, ex, 1); /* prefix unknown: both */
	check_exact(root, NULL, NULL, PREFIX, NULL, 0);
}

static void test_loops(void **state)
{
	const char *root = *state;
	clean_root(root);
	char *data = strdup(lvr_path(root, "docker/devicemapper/data"));
	char *meta = strdup(lvr_path(root, "docker/devicemapper/metadata"));
	assert_non_null(data);
	assert_non_null(meta);
	dkt_write(root, "sysroot/sys/block/loop0/loop/backing_file", data);
	/* the same file under another spelling: matched by st_dev/st_ino */
	dkt_write(root, "sysroot/sys/block/loop1/dev", "7:1\n");
	dkt_write(root, "sysroot/sys/block/loop1/loop/backing_file",
		  lvr_path(root, "docker/./devicemapper//metadata\n"));
	/* someone else's */
	dkt_write(root, "other-file", "x");
	dkt_write(root, "sysroot/sys/block/loop2/loop/backing_file", lvr_path(root, "other-file\n"));
	const struct expect ex[] = {
		{ LIVE_LOOP, "" }, { LIVE_LOOP, "" },
	};
	char m0[400], m1[400];
	snprintf(m0, sizeof(m0), "loop device /dev/loop0 is backed by %s", data);
	snprintf(m1, sizeof(m1), "loop device /dev/loop1 is backed by %s", meta);
	struct expect e2[2] = { { ex[0].kind, m0 }, { ex[1].kind, m1 } };
	check_exact(root, meta, data, PREFIX, e2, 2);
	/* no loop files given: nothing to match */
	check_exact(root, NULL, NULL, PREFIX, NULL, 0);
	free(data);
	free(meta);
}

static void test_loop_stale_path(void **state)
{
	const char *root = *state;
	clean_root(root);
	/* The file was deleted (or is not reachable from here): the path. */
	dkt_write(root, "sysroot/sys/block/loop3/loop/backing_file",
		  "/var/lib/docker/devicemapper/data (deleted)\n");
	check_exact(root, "/var/lib/docker/devicemapper/metadata",
		    "/var/lib/docker/devicemapper/data", PREFIX, (const struct expect[]){
		{ LIVE_LOOP, "loop device /dev/loop3 is backed by /var/lib/docker/devicemapper/data" } }, 1);
}

static void test_dm(void **state)
{
	const char *root = *state;
	clean_root(root);
	char *data = strdup(lvr_path(root, "docker/devicemapper/data"));
	assert_non_null(data);
	dkt_write(root, "sysroot/sys/block/loop0/loop/backing_file", data);
	/* our pool, by name and on our loop */
	dkt_write(root, "sysroot/sys/block/dm-1/dev", "253:1\n");
	dkt_write(root, "sysroot/sys/block/dm-1/dm/name", PREFIX "-pool\n");
	dkt_mkdir(root, "sysroot/sys/block/dm-1/slaves/loop0");
	/* a thin device and the base, by name */
	dkt_write(root, "sysroot/sys/block/dm-2/dev", "253:2\n");
	dkt_write(root, "sysroot/sys/block/dm-2/dm/name", PREFIX "-" HA "\n");
	dkt_mkdir(root, "sysroot/sys/block/dm-2/slaves/dm-1");
	dkt_write(root, "sysroot/sys/block/dm-3/dev", "253:3\n");
	dkt_write(root, "sysroot/sys/block/dm-3/dm/name", PREFIX "-base\n");
	/* another HOME's pool: a longer inode, same start */
	dkt_write(root, "sysroot/sys/block/dm-4/dev", "253:4\n");
	dkt_write(root, "sysroot/sys/block/dm-4/dm/name", PREFIX "5-pool\n");
	/* a pool named otherwise (dm.thinpooldev, moved HOME) on our loop,
	 * and a device stacked on it */
	dkt_write(root, "sysroot/sys/block/dm-5/dev", "253:5\n");
	dkt_write(root, "sysroot/sys/block/dm-5/dm/name", "docker-8:1-999-pool\n");
	dkt_mkdir(root, "sysroot/sys/block/dm-5/slaves/loop0");
	dkt_write(root, "sysroot/sys/block/dm-6/dev", "253:6\n");
	dkt_write(root, "sysroot/sys/block/dm-6/dm/name", "docker-8:1-999-" HB "\n");
	dkt_mkdir(root, "sysroot/sys/block/dm-6/slaves/dm-5");
	char loop[400];
	snprintf(loop, sizeof(loop), "loop device /dev/loop0 is backed by %s", data);
	const struct expect ex[] = {
		{ LIVE_DM_POOL, "thin pool " PREFIX "-pool is active in the kernel" },
		{ LIVE_DM_THIN, "thin device " PREFIX "-" HA " is active in the kernel" },
		{ LIVE_DM_THIN, "thin device " PREFIX "-base is active in the kernel" },
		{ LIVE_DM_POOL, "thin pool docker-8:1-999-pool is active in the kernel" },
		{ LIVE_DM_THIN, "thin device docker-8:1-999-" HB " is active in the kernel" },
		{ LIVE_LOOP, loop },
	};
	check_exact(root, NULL, data, PREFIX, ex, 6);
	/* without the loop files only the names tell */
	check_exact(root, NULL, NULL, PREFIX, ex, 3);
	free(data);
}

static void test_mounts(void **state)
{
	const char *root = *state;
	clean_root(root);
	char *droot = strdup(lvr_path(root, "docker"));
	assert_non_null(droot);
	FILE *fp = fopen(lvr_path(root, "sysroot/proc/self/mountinfo"), "w");
	assert_non_null(fp);
	fprintf(fp, "22 1 253:0 / / rw,relatime shared:1 - xfs /dev/vda1 rw\n");
	fprintf(fp, "90 22 253:7 / %s/devicemapper/mnt rw - xfs /dev/vda1 rw\n", droot);
	fprintf(fp, "91 22 253:7 / %s/devicemapper/mntx/y rw - xfs /dev/vda1 rw\n", droot);
	fprintf(fp, "92 22 253:2 / %s/devicemapper/mnt/%s rw,relatime shared:5 - xfs /dev/mapper/x rw,nouuid\n",
		droot, HA);
	fprintf(fp, "93 22 253:3 / %s/devicemapper/mnt/a\\040b\\134c/rootfs rw - xfs /dev/mapper/y rw\n", droot);
	fprintf(fp, "94 22 0:5 / /elsewhere/devicemapper/mnt/z rw - tmpfs tmpfs rw\n");
	assert_int_equal(fclose(fp), 0);
	char m0[400], m1[400];
	snprintf(m0, sizeof(m0), "%s/devicemapper/mnt/%s is mounted", droot, HA);
	snprintf(m1, sizeof(m1), "%s/devicemapper/mnt/a b\\c/rootfs is mounted", droot);
	const struct expect ex[] = { { LIVE_MOUNT, m0 }, { LIVE_MOUNT, m1 } };
	check_exact(root, NULL, NULL, PREFIX, ex, 2);

	/* the root given with a trailing slash, and through a symlink */
	struct live_ctx c = { .sysroot = lvr_path(root, "sysroot") };
	struct live_finding *f = NULL;
	size_t n = 0;
	struct dmr_err err = { 0 };
	char other[4200];
	snprintf(other, sizeof(other), "%s/", droot);
	assert_int_equal(live_check(&c, other, NULL, NULL, PREFIX, &f, &n, &err), 0);
	assert_int_equal(n, 2);
	free(f);
	dkt_symlink(root, "link", "docker");
	assert_int_equal(live_check(&c, lvr_path(root, "link"), NULL, NULL, PREFIX, &f, &n, &err), 0);
	assert_int_equal(n, 2);
	free(f);
	free(droot);
}

static void test_everything(void **state)
{
	const char *root = *state;
	clean_root(root);
	dkt_write(root, "sysroot/proc/1234/comm", "dockerd\n");
	dkt_write(root, "sysroot/sys/block/dm-1/dm/name", PREFIX "-pool\n");
	dkt_write(root, "sysroot/sys/block/loop0/loop/backing_file", lvr_path(root, "docker/devicemapper/data"));
	FILE *fp = fopen(lvr_path(root, "sysroot/proc/self/mountinfo"), "a");
	assert_non_null(fp);
	fprintf(fp, "92 22 253:2 / %s/devicemapper/mnt/%s rw - xfs /dev/mapper/x rw\n", lvr_path(root, "docker"), HA);
	assert_int_equal(fclose(fp), 0);
	char loop[400], mnt[400];
	snprintf(loop, sizeof(loop), "loop device /dev/loop0 is backed by %s", lvr_path(root, "docker/devicemapper/data"));
	snprintf(mnt, sizeof(mnt), "%s/devicemapper/mnt/%s is mounted", lvr_path(root, "docker"), HA);
	const struct expect ex[] = {
		{ LIVE_DOCKERD, "dockerd is running (pid 1234): stop Docker first" },
		{ LIVE_DM_POOL, "thin pool " PREFIX "-pool is active in the kernel" },
		{ LIVE_LOOP, loop },
		{ LIVE_MOUNT, mnt },
	};
	check_exact(root, lvr_path(root, "docker/devicemapper/metadata"), lvr_path(root, "docker/devicemapper/data"),
		    PREFIX, ex, 4);
}

static void test_lock(void **state)
{
	const char *root = *state;
	char *droot = strdup(lvr_path(root, "docker"));
	assert_non_null(droot);
	struct dmr_err err = { 0 };
	int fd = -1, fd2 = -1;

	assert_int_equal(live_lock(droot, &fd, &err), DMR_ENOENT); /* no devicemapper/ */
	assert_contains(err.msg, "devicemapper/.dmrescue.lock");
	assert_int_equal(fd, -1);

	dkt_mkdir(root, "docker/devicemapper/metadata");
	assert_int_equal(live_lock(droot, &fd, &err), 0);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(stat(lvr_path(root, "docker/devicemapper/.dmrescue.lock"), &st), 0);

	/* a second open file description, as another dmrescue would have */
	assert_int_equal(live_lock(droot, &fd2, &err), DMR_EUSAGE);
	assert_int_equal(fd2, -1);
	char want[600];
	snprintf(want, sizeof(want), "another dmrescue (pid %ld) is working on %s (it holds %s/devicemapper/.dmrescue.lock)",
		 (long)getpid(), droot, droot);
	assert_string_equal(err.msg, want);

	live_unlock(fd);
	assert_int_equal(live_lock(droot, &fd2, &err), 0);
	live_unlock(fd2);
	free(droot);
}

/* This machine: must look without failing, whatever it finds. */
static void test_this_machine(void **state)
{
	(void)state;
	struct live_ctx c = { .sysroot = "" };
	struct live_finding *f = NULL;
	size_t n = 0;
	struct dmr_err err = { 0 };
	int r = live_check(&c, "/var/lib/docker", "/var/lib/docker/devicemapper/devicemapper/metadata",
			   "/var/lib/docker/devicemapper/devicemapper/data", PREFIX, &f, &n, &err);
	if (r)
		fail_msg("live_check on this machine = %d: %s", r, err.msg);
	lvr_print_findings(f, n);
	for (size_t i = 0; i < n; i++)
		assert_true(strlen(f[i].msg) > 0);
	free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		LVR_TEST(test_clean),
		LVR_TEST(test_no_proc),
		LVR_TEST(test_dockerd),
		LVR_TEST(test_dockerd_variants),
		LVR_TEST(test_podman),
		LVR_TEST(test_loops),
		LVR_TEST(test_loop_stale_path),
		LVR_TEST(test_dm),
		LVR_TEST(test_mounts),
		LVR_TEST(test_everything),
		LVR_TEST(test_lock),
		cmocka_unit_test(test_this_machine),
	};
	return LVR_RUN("live", tests);
}
