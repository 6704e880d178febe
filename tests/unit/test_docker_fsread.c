/* docker/fsread: reads confined to a root (symlinks reported, never
 * followed), size caps, bounded sorted listings, apparent-size walks. */
#include "unit.h"
#include "dktree.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "docker/fsread.h"

struct fx {
	char *root;
	struct fsr_dir dir;
};

static int setup(void **state)
{
	void *root;
	if (dkt_setup(&root))
		return -1;
	struct fx *fx = calloc(1, sizeof(*fx));
	fx->root = root;
	fx->dir.fd = -1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	void *root = fx->root;
	fsr_closedir(&fx->dir);
	free(fx);
	return dkt_teardown(&root);
}

static void open_root(struct fx *fx)
{
	struct dmr_err err = { 0 };
	assert_int_equal(fsr_open_root(&fx->dir, fx->root, &err), 0);
	assert_string_equal(fx->dir.rel, "");
}

static void expect_fail(const struct fsr_dir *at, const char *rel, int want, const char *path, const char *msg)
{
	struct fsr_file f;
	struct fsr_fail fl;
	int r = fsr_read(at, rel, 1024, &f, &fl);
	if (r != want)
		fail_msg("fsr_read(%s) = %d, expected %d (%s: %s)", rel, r, want, r > 0 ? fl.path : "",
			 r > 0 ? fl.msg : "");
	assert_null(f.data);
	assert_string_equal(fl.path, path);
	assert_string_equal(fl.msg, msg);
}

static void test_read_plain(void **state)
{
	struct fx *fx = *state;
	dkt_write(fx->root, "a/b/c", "hello");
	dkt_write(fx->root, "empty", "");
	open_root(fx);
	struct fsr_file f;
	struct fsr_fail fl;
	assert_int_equal(fsr_read(&fx->dir, "a/b/c", 5, &f, &fl), 0);
	assert_int_equal(f.len, 5);
	assert_string_equal(f.data, "hello");
	fsr_file_free(&f);
	assert_int_equal(fsr_read(&fx->dir, "empty", 5, &f, &fl), 0);
	assert_int_equal(f.len, 0);
	assert_string_equal(f.data, "");
	fsr_file_free(&f);
	/* Through a directory handle: failures still name paths from the root. */
	struct fsr_dir sub;
	assert_int_equal(fsr_opendir(&fx->dir, "a/b", &sub, &fl), 0);
	assert_string_equal(sub.rel, "a/b");
	assert_int_equal(fsr_read(&sub, "c", 5, &f, &fl), 0);
	fsr_file_free(&f);
	expect_fail(&sub, "nope", FSR_MISSING, "a/b/nope", "missing");
	fsr_closedir(&sub);
}

static void test_read_cap(void **state)
{
	struct fx *fx = *state;
	dkt_write(fx->root, "six", "123456");
	dkt_sparse(fx->root, "huge", (16ll << 20) + 1);
	open_root(fx);
	struct fsr_file f;
	struct fsr_fail fl;
	assert_int_equal(fsr_read(&fx->dir, "six", 6, &f, &fl), 0);
	fsr_file_free(&f);
	assert_int_equal(fsr_read(&fx->dir, "six", 5, &f, &fl), FSR_BAD);
	assert_string_equal(fl.msg, "too large (6 bytes)");
	assert_int_equal(fsr_read(&fx->dir, "huge", FSR_JSON_MAX, &f, &fl), FSR_BAD);
	assert_string_equal(fl.path, "huge");
	assert_string_equal(fl.msg, "too large (16777217 bytes)");
}

static void test_read_kinds(void **state)
{
	struct fx *fx = *state;
	dkt_mkdir(fx->root, "dir");
	dkt_mkfifo(fx->root, "fifo");
	dkt_write(fx->root, "file", "x");
	open_root(fx);
	expect_fail(&fx->dir, "dir", FSR_BAD, "dir", "a directory, not a regular file");
	/* A fifo is never opened, so nothing waits for a writer. */
	expect_fail(&fx->dir, "fifo", FSR_BAD, "fifo", "a fifo, not a regular file");
	expect_fail(&fx->dir, "file/x", FSR_BAD, "file", "a regular file, not a directory");
	expect_fail(&fx->dir, "missing/x", FSR_MISSING, "missing", "missing");
	expect_fail(&fx->dir, "missing", FSR_MISSING, "missing", "missing");
	expect_fail(&fx->dir, "a/../file", FSR_BAD, "", "invalid path below this directory");
	expect_fail(&fx->dir, "./file", FSR_BAD, "", "invalid path below this directory");
	expect_fail(&fx->dir, "dir//file", FSR_BAD, "", "invalid path below this directory");
	expect_fail(&fx->dir, "dir/", FSR_BAD, "", "invalid path below this directory");
	expect_fail(&fx->dir, "", FSR_BAD, "", "a directory, not a regular file");
}

/* A device node is never opened: /dev/zero's numbers would read forever. */
static void test_read_device_node(void **state)
{
	struct fx *fx = *state;
	char p[4200];
	snprintf(p, sizeof(p), "%s/zero", fx->root);
	if (mknod(p, S_IFCHR | 0644, makedev(1, 5)) < 0)
		skip(); /* not root, or not allowed here */
	snprintf(p, sizeof(p), "%s/loop", fx->root);
	if (mknod(p, S_IFBLK | 0644, makedev(7, 0)) < 0)
		skip();
	open_root(fx);
	expect_fail(&fx->dir, "zero", FSR_BAD, "zero", "a character device, not a regular file");
	expect_fail(&fx->dir, "loop", FSR_BAD, "loop", "a block device, not a regular file");
	struct fsr_usage u;
	struct fsr_fail fl;
	assert_int_equal(fsr_usage(&fx->dir, "", 100, &u, &fl), 0);
	assert_int_equal(u.entries, 2);
}

static void test_symlinks(void **state)
{
	struct fx *fx = *state;
	dkt_write(fx->root, "a/b/target", "secret");
	dkt_symlink(fx->root, "a/b/in", "target");
	dkt_symlink(fx->root, "a/b/up", "../../a/b/target");
	dkt_symlink(fx->root, "a/b/out", "../../../etc/passwd");
	dkt_symlink(fx->root, "a/b/abs", "/etc/passwd");
	dkt_symlink(fx->root, "a/b/dots", "./.././../x/../..");
	dkt_symlink(fx->root, "a/linkdir", "b");
	dkt_symlink(fx->root, "top", "/");
	dkt_symlink(fx->root, "weird", "x\n\"y\"\x01");
	open_root(fx);
	expect_fail(&fx->dir, "a/b/in", FSR_BAD, "a/b/in", "symlink, not followed (-> \"target\")");
	expect_fail(&fx->dir, "a/b/up", FSR_BAD, "a/b/up", "symlink, not followed (-> \"../../a/b/target\")");
	expect_fail(&fx->dir, "a/b/out", FSR_BAD, "a/b/out",
		    "symlink leading outside the root, not followed (-> \"../../../etc/passwd\")");
	expect_fail(&fx->dir, "a/b/abs", FSR_BAD, "a/b/abs",
		    "symlink leading outside the root, not followed (-> \"/etc/passwd\")");
	expect_fail(&fx->dir, "a/b/dots", FSR_BAD, "a/b/dots",
		    "symlink leading outside the root, not followed (-> \"./.././../x/../..\")");
	/* A symlink on the way is reported as itself. */
	expect_fail(&fx->dir, "a/linkdir/target", FSR_BAD, "a/linkdir", "symlink, not followed (-> \"b\")");
	expect_fail(&fx->dir, "top/etc/passwd", FSR_BAD, "top",
		    "symlink leading outside the root, not followed (-> \"/\")");
	expect_fail(&fx->dir, "weird", FSR_BAD, "weird", "symlink, not followed (-> \"x\\x0a\\\"y\\\"\\x01\")");
	struct fsr_dir d;
	struct fsr_fail fl;
	assert_int_equal(fsr_opendir(&fx->dir, "a/linkdir", &d, &fl), FSR_BAD);
	assert_string_equal(fl.msg, "symlink, not followed (-> \"b\")");
	struct fsr_list l;
	assert_int_equal(fsr_list(&fx->dir, "top", 10, &l, &fl), FSR_BAD);
	assert_string_equal(fl.path, "top");
	/* lstat sees the link itself. */
	struct stat st;
	assert_int_equal(fsr_lstat(&fx->dir, "a/b/out", &st, &fl), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(fsr_lstat(&fx->dir, "a/linkdir/target", &st, &fl), FSR_BAD);
	assert_int_equal(fsr_lstat(&fx->dir, "a/b/none", &st, &fl), FSR_MISSING);
}

/* The root itself may be a symlink: the caller chose it. */
static void test_root_symlink(void **state)
{
	struct fx *fx = *state;
	dkt_write(fx->root, "real/f", "x");
	char link[4200];
	snprintf(link, sizeof(link), "%s/link", fx->root);
	assert_int_equal(symlink("real", link), 0);
	struct dmr_err err = { 0 };
	assert_int_equal(fsr_open_root(&fx->dir, link, &err), 0);
	struct fsr_file f;
	struct fsr_fail fl;
	assert_int_equal(fsr_read(&fx->dir, "f", 10, &f, &fl), 0);
	fsr_file_free(&f);
	fsr_closedir(&fx->dir);
	snprintf(link, sizeof(link), "%s/real/f", fx->root);
	assert_int_equal(fsr_open_root(&fx->dir, link, &err), DMR_EIO);
	assert_contains(err.msg, "Not a directory");
	snprintf(link, sizeof(link), "%s/none", fx->root);
	assert_int_equal(fsr_open_root(&fx->dir, link, &err), DMR_EIO);
	assert_contains(err.msg, "No such file or directory");
}

static void test_unreadable(void **state)
{
	struct fx *fx = *state;
	if (geteuid() == 0)
		skip(); /* root reads anything: the "directory where a file belongs" cases cover the path */
	dkt_write(fx->root, "locked/f", "x");
	dkt_write(fx->root, "nope", "x");
	char p[4200];
	snprintf(p, sizeof(p), "%s/nope", fx->root);
	chmod(p, 0);
	snprintf(p, sizeof(p), "%s/locked", fx->root);
	chmod(p, 0);
	open_root(fx);
	expect_fail(&fx->dir, "nope", FSR_BAD, "nope", "permission denied");
	expect_fail(&fx->dir, "locked/f", FSR_BAD, "locked", "permission denied");
	struct fsr_list l;
	struct fsr_fail fl;
	assert_int_equal(fsr_list(&fx->dir, "locked", 10, &l, &fl), FSR_BAD);
	assert_string_equal(fl.msg, "permission denied");
}

static void test_list(void **state)
{
	struct fx *fx = *state;
	dkt_write(fx->root, "d/b", "");
	dkt_write(fx->root, "d/a", "");
	dkt_write(fx->root, "d/.hidden", "");
	dkt_mkdir(fx->root, "d/c");
	dkt_symlink(fx->root, "d/Z", "nowhere");
	dkt_mkfifo(fx->root, "d/p");
	dkt_mkdir(fx->root, "empty");
	open_root(fx);
	struct fsr_list l;
	struct fsr_fail fl;
	assert_int_equal(fsr_list(&fx->dir, "d", 100, &l, &fl), 0);
	assert_int_equal(l.n, 6);
	assert_false(l.truncated);
	const char *names[] = { ".hidden", "Z", "a", "b", "c", "p" };
	mode_t types[] = { S_IFREG, S_IFLNK, S_IFREG, S_IFREG, S_IFDIR, S_IFIFO };
	for (size_t i = 0; i < 6; i++) {
		assert_string_equal(l.e[i].name, names[i]);
		assert_int_equal(l.e[i].type, types[i]);
	}
	fsr_list_free(&l);
	/* Bounded: the first entries in directory order, then truncated. */
	assert_int_equal(fsr_list(&fx->dir, "d", 2, &l, &fl), 0);
	assert_int_equal(l.n, 2);
	assert_true(l.truncated);
	fsr_list_free(&l);
	assert_int_equal(fsr_list(&fx->dir, "empty", 2, &l, &fl), 0);
	assert_int_equal(l.n, 0);
	fsr_list_free(&l);
	/* The root itself, twice (the dup'd fd is rewound). */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(fsr_list(&fx->dir, "", 10, &l, &fl), 0);
		assert_int_equal(l.n, 2);
		assert_string_equal(l.e[0].name, "d");
		fsr_list_free(&l);
	}
	assert_int_equal(fsr_list(&fx->dir, "d/a", 10, &l, &fl), FSR_BAD);
	assert_string_equal(fl.msg, "a regular file, not a directory");
	assert_int_equal(fsr_list(&fx->dir, "none", 10, &l, &fl), FSR_MISSING);
}

static void test_usage(void **state)
{
	struct fx *fx = *state;
	dkt_write(fx->root, "u/a", "12345");
	dkt_write(fx->root, "u/s/b", "123");
	dkt_symlink(fx->root, "u/s/l", "/etc");     /* 4 bytes, not followed */
	dkt_symlink(fx->root, "u/s/m", "../../..");  /* a loop if followed */
	dkt_mkdir(fx->root, "u/s/t/empty");
	dkt_mkdir(fx->root, "e");
	/* Deeper than the walk goes. */
	char deep[4096] = "deep";
	for (int i = 0; i < 70; i++)
		strcat(deep, "/d");
	strcat(deep, "/f");
	dkt_write(fx->root, deep, "x");
	open_root(fx);
	struct fsr_usage u;
	struct fsr_fail fl;
	assert_int_equal(fsr_usage(&fx->dir, "u", 1000, &u, &fl), 0);
	assert_int_equal(u.bytes, 5 + 3 + 4 + 8);
	assert_int_equal(u.entries, 7);
	assert_false(u.truncated);
	assert_false(u.other_fs);
	assert_false(u.unreadable);
	assert_int_equal(fsr_usage(&fx->dir, "e", 1000, &u, &fl), 0);
	assert_int_equal(u.entries, 0);
	assert_int_equal(u.bytes, 0);
	assert_int_equal(fsr_usage(&fx->dir, "u", 3, &u, &fl), 0);
	assert_int_equal(u.entries, 3);
	assert_true(u.truncated);
	assert_int_equal(fsr_usage(&fx->dir, "deep", 1000, &u, &fl), 0);
	assert_true(u.truncated);
	assert_int_equal(u.bytes, 0);
	assert_int_equal(fsr_usage(&fx->dir, "u/s/l", 10, &u, &fl), FSR_BAD);
	assert_string_equal(fl.msg, "symlink leading outside the root, not followed (-> \"/etc\")");
}

static void test_quote_join(void **state)
{
	(void)state;
	char buf[64];
	assert_string_equal(fsr_quote(buf, sizeof(buf), "plain", 100), "plain");
	assert_string_equal(fsr_quote(buf, sizeof(buf), "a\"b\\c\n\xff", 100), "a\\\"b\\\\c\\x0a\\xff");
	assert_string_equal(fsr_quote(buf, sizeof(buf), "abcdefgh", 4), "abcd...");
	char small[8];
	assert_string_equal(fsr_quote(small, sizeof(small), "abcdefgh", 100), "abcd...");
	assert_int_equal(fsr_join(buf, sizeof(buf), "", "b"), 0);
	assert_string_equal(buf, "b");
	assert_int_equal(fsr_join(buf, sizeof(buf), "a", ""), 0);
	assert_string_equal(buf, "a");
	assert_int_equal(fsr_join(buf, sizeof(buf), "a", "b"), 0);
	assert_string_equal(buf, "a/b");
	assert_int_equal(fsr_join(small, sizeof(small), "abcd", "efg"), -1);
}

int main(void)
{
	if (!unit_tmpdir_usable())
		return UNIT_SKIP;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read_plain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_kinds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_device_node, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlinks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_root_symlink, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unreadable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
		cmocka_unit_test(test_quote_join),
	};
	return cmocka_run_group_tests_name("docker_fsread", tests, NULL, NULL);
}
