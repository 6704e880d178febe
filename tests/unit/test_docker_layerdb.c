/* docker/layerdb through dk_state_read: layers, their -removing dirs,
 * mounts, write-set leftovers, and every way the small files go wrong. */
#include "unit.h"
#include "dktree.h"

#include "docker/state.h"

#define LDB "image/devicemapper/layerdb/"
#define SHA LDB "sha256/"
#define MNT LDB "mounts/"
#define BK "k3ebj7i1v0e9wb0xv5q2s8z4n"

static const struct dk_layer *layer(const struct dk_state *st, const char *dir)
{
	for (size_t i = 0; i < st->nr_layers; i++)
		if (!strcmp(st->layers[i].dir, dir))
			return &st->layers[i];
	fail_msg("no layer in %s", dir);
	return NULL;
}

static const struct dk_mount *mount(const struct dk_state *st, const char *name)
{
	for (size_t i = 0; i < st->nr_mounts; i++)
		if (!strcmp(st->mounts[i].name, name))
			return &st->mounts[i];
	fail_msg("no mount %s", name);
	return NULL;
}

static void write_layer(const char *root, const char *dir, const char *cache, const char *diff, const char *parent,
			const char *size)
{
	char rel[512];
	if (cache) {
		snprintf(rel, sizeof(rel), SHA "%s/cache-id", dir);
		dkt_write(root, rel, cache);
	}
	if (diff) {
		snprintf(rel, sizeof(rel), SHA "%s/diff", dir);
		dkt_write(root, rel, diff);
	}
	if (parent) {
		snprintf(rel, sizeof(rel), SHA "%s/parent", dir);
		dkt_write(root, rel, parent);
	}
	if (size) {
		snprintf(rel, sizeof(rel), SHA "%s/size", dir);
		dkt_write(root, rel, size);
	}
	snprintf(rel, sizeof(rel), SHA "%s/tar-split.json.gz", dir);
	dkt_write(root, rel, "\x1f\x8b");
}

static void test_layers(void **state)
{
	const char *root = *state;
	write_layer(root, H1, HA, "sha256:" HD, NULL, "1234");
	/* A trailing newline (hand-edited) is tolerated. */
	write_layer(root, H2, HB "\n", "sha256:" HE "\n", "sha256:" H1 "\n", "0\n");
	/* BuildKit-made layer: its cache-id is the 25-character key. */
	write_layer(root, H3, BK, "sha256:" HF, "sha256:" H2, "9223372036854775807");
	struct dk_state st;
	dkt_read(root, &st);
	dkt_assert_nr_problems(&st, 0);
	assert_int_equal(st.nr_layers, 3);
	const struct dk_layer *l = &st.layers[0];
	assert_string_equal(l->chain_id, "sha256:" H1);
	assert_string_equal(l->dir, SHA H1);
	assert_string_equal(l->cache_id, HA);
	assert_string_equal(l->diff_id, "sha256:" HD);
	assert_null(l->parent);
	assert_int_equal(l->size, 1234);
	assert_false(l->removing);
	assert_null(l->error);
	l = &st.layers[1];
	assert_string_equal(l->chain_id, "sha256:" H2);
	assert_string_equal(l->cache_id, HB);
	assert_string_equal(l->diff_id, "sha256:" HE);
	assert_string_equal(l->parent, "sha256:" H1);
	assert_int_equal(l->size, 0);
	assert_null(l->error);
	l = &st.layers[2];
	assert_string_equal(l->cache_id, BK);
	assert_true(l->size == INT64_MAX);
	assert_null(l->error);
	assert_int_equal(st.nr_mounts, 0);
	assert_int_equal(st.nr_transients, 0);
	dk_state_free(&st);
}

static void test_removing(void **state)
{
	const char *root = *state;
	write_layer(root, H1, HA, "sha256:" HD, NULL, "1");
	/* Being deleted: renamed, and possibly half emptied; only the cache-id matters. */
	write_layer(root, H1 "-" HF "-removing", HA, NULL, NULL, NULL);
	write_layer(root, H2 "-" HF "-removing", HB, "sha256:" HE, "sha256:" H1, "7");
	write_layer(root, H3 "-" HF "-removing", NULL, NULL, NULL, NULL);
	struct dk_state st;
	dkt_read(root, &st);
	assert_int_equal(st.nr_layers, 4);
	/* Sorted by chain id, then directory. */
	assert_string_equal(st.layers[0].dir, SHA H1);
	assert_string_equal(st.layers[1].dir, SHA H1 "-" HF "-removing");
	assert_string_equal(st.layers[2].dir, SHA H2 "-" HF "-removing");
	const struct dk_layer *l = &st.layers[1];
	assert_string_equal(l->chain_id, "sha256:" H1);
	assert_true(l->removing);
	assert_string_equal(l->cache_id, HA);
	assert_null(l->diff_id);
	assert_null(l->error);
	l = &st.layers[2];
	assert_true(l->removing);
	assert_string_equal(l->chain_id, "sha256:" H2);
	assert_string_equal(l->parent, "sha256:" H1);
	assert_int_equal(l->size, 7);
	l = &st.layers[3];
	assert_true(l->removing);
	assert_null(l->cache_id);
	assert_string_equal(l->error, "cache-id: missing");
	dkt_assert_nr_problems(&st, 1);
	dkt_assert_problem(&st, SHA H3 "-" HF "-removing/cache-id", "missing");
	dk_state_free(&st);
}

static void test_layer_dir_names(void **state)
{
	const char *root = *state;
	write_layer(root, H1, HA, "sha256:" HD, NULL, "1");
	dkt_mkdir(root, SHA "not-a-chain");
	dkt_mkdir(root, SHA H2 "-removing");                /* the random part is missing */
	dkt_mkdir(root, SHA HEX64("A"));                     /* upper case: not a digest */
	dkt_mkdir(root, SHA H2 "-" HF "-removin");
	dkt_write(root, SHA H3, "a file, not a directory");
	dkt_symlink(root, SHA HC, "/var/lib/docker/image/devicemapper/layerdb/sha256/" H1);
	struct dk_state st;
	dkt_read(root, &st);
	assert_int_equal(st.nr_layers, 3);
	const struct dk_layer *l = layer(&st, SHA H3);
	assert_null(l->cache_id);
	assert_string_equal(l->error, "a regular file, not a directory");
	l = layer(&st, SHA HC);
	assert_string_equal(l->error, "symlink leading outside the root, not followed "
				      "(-> \"/var/lib/docker/image/devicemapper/layerdb/sha256/" H1 "\")");
	dkt_assert_nr_problems(&st, 6);
	dkt_assert_problem(&st, SHA "not-a-chain", "not a layer directory name (Docker skips it)");
	dkt_assert_problem(&st, SHA H2 "-removing", "not a layer directory name (Docker skips it)");
	dkt_assert_problem(&st, SHA HEX64("A"), "not a layer directory name (Docker skips it)");
	dkt_assert_problem(&st, SHA H2 "-" HF "-removin", "not a layer directory name (Docker skips it)");
	dkt_assert_problem(&st, SHA H3, "a regular file, not a directory");
	dk_state_free(&st);
}

struct file_case {
	const char *file;
	const char *content; /* NULL: a directory instead of the file */
	const char *problem;
};

static void test_layer_files_bad(void **state)
{
	const char *root = *state;
	static const struct file_case cases[] = {
		{ "cache-id", "", "empty" },
		{ "cache-id", "\n", "empty" },
		{ "cache-id", HA "\n\n", "not a device hash (\"" HA "\\x0a\")" },
		{ "cache-id", " " HA, "not a device hash (\" " HA "\")" },
		{ "cache-id", "../../../etc", "not a device hash (\"../../../etc\")" },
		{ "cache-id", ".tmp1", "not a device hash (\".tmp1\")" },
		{ "cache-id", NULL, "a directory, not a regular file" },
		{ "diff", "sha256:xyz", "not a sha256 digest (\"sha256:xyz\")" },
		{ "diff", HD, "not a sha256 digest (\"" HD "\")" },
		{ "diff", "sha256:" HEX64("D"), "not a sha256 digest (\"sha256:" HEX64("D") "\")" },
		{ "diff", "sha512:" HD, "not a sha256 digest (\"sha512:" HD "\")" },
		{ "parent", "", "empty" },
		{ "parent", "sha256:" H1 "0", "not a sha256 digest (\"sha256:" H1 "0\")" },
		{ "size", "-5", "not a decimal number (\"-5\")" },
		{ "size", "+5", "not a decimal number (\"+5\")" },
		{ "size", "12 ", "not a decimal number (\"12 \")" },
		{ "size", "1e3", "not a decimal number (\"1e3\")" },
		{ "size", "9223372036854775808", "out of range (\"9223372036854775808\")" },
		{ "size", "99999999999999999999999", "out of range (\"99999999999999999999999\")" },
		{ "size", "", "empty" },
	};
	size_t n = sizeof(cases) / sizeof(cases[0]);
	char dir[160], rel[512], want[512];
	for (size_t i = 0; i < n; i++) {
		/* chain ids 000...0i: each case in its own layer, else valid */
		snprintf(dir, sizeof(dir), "%064zx", i);
		write_layer(root, dir, !strcmp(cases[i].file, "cache-id") ? NULL : HA,
			    !strcmp(cases[i].file, "diff") ? NULL : "sha256:" HD,
			    !strcmp(cases[i].file, "parent") ? NULL : "sha256:" H1,
			    !strcmp(cases[i].file, "size") ? NULL : "10");
		snprintf(rel, sizeof(rel), SHA "%s/%s", dir, cases[i].file);
		if (cases[i].content)
			dkt_write(root, rel, cases[i].content);
		else
			dkt_mkdir(root, rel);
	}
	/* Missing required files. */
	write_layer(root, H1, NULL, NULL, NULL, NULL);
	/* A NUL byte, and a file too large to be an id. */
	write_layer(root, H2, NULL, "sha256:" HD, NULL, "1");
	dkt_writen(root, SHA H2 "/cache-id", "ab\0cd", 5);
	write_layer(root, H3, HA, "sha256:" HD, NULL, NULL);
	dkt_sparse(root, SHA H3 "/size", 65537);
	struct dk_state st;
	dkt_read(root, &st);
	assert_int_equal(st.nr_layers, n + 3);
	for (size_t i = 0; i < n; i++) {
		snprintf(dir, sizeof(dir), SHA "%064zx", i);
		const struct dk_layer *l = layer(&st, dir);
		snprintf(want, sizeof(want), "%s: %s", cases[i].file, cases[i].problem);
		if (!l->error || strcmp(l->error, want))
			fail_msg("case %zu: error \"%s\", expected \"%s\"", i, l->error ? l->error : "(null)", want);
		snprintf(rel, sizeof(rel), "%s/%s", dir, cases[i].file);
		dkt_assert_problem(&st, rel, cases[i].problem);
	}
	/* The first error is the layer's; each file has its problem. */
	const struct dk_layer *l = layer(&st, SHA H1);
	assert_string_equal(l->error, "cache-id: missing");
	dkt_assert_problem(&st, SHA H1 "/cache-id", "missing");
	dkt_assert_problem(&st, SHA H1 "/diff", "missing");
	dkt_assert_problem(&st, SHA H1 "/size", "missing");
	l = layer(&st, SHA H2);
	assert_string_equal(l->error, "cache-id: contains a NUL byte");
	l = layer(&st, SHA H3);
	assert_string_equal(l->error, "size: too large (65537 bytes)");
	assert_string_equal(l->cache_id, HA);
	dkt_assert_nr_problems(&st, n + 5);
	dk_state_free(&st);
}

static void test_mounts(void **state)
{
	const char *root = *state;
	dkt_write(root, MNT HA "/mount-id", HB);
	dkt_write(root, MNT HA "/init-id", HB "-init");
	dkt_write(root, MNT HA "/parent", "sha256:" H1);
	/* FROM scratch: no parent, no init layer. */
	dkt_write(root, MNT HC "/mount-id", HD "\n");
	/* A builder's mount, named with a BuildKit id. */
	dkt_write(root, MNT BK "/mount-id", HE);
	dkt_write(root, MNT H1 "/mount-id", "xyz");
	dkt_write(root, MNT H1 "/init-id", HB);
	dkt_mkdir(root, MNT H2);
	dkt_write(root, MNT H3 "/mount-id", HA);
	dkt_write(root, MNT H3 "/init-id", HA "-initx");
	dkt_write(root, MNT H3 "/parent", "sha256:" HA "\r\n");
	dkt_write(root, MNT "plainfile", "x");
	struct dk_state st;
	dkt_read(root, &st);
	assert_int_equal(st.nr_mounts, 7);
	/* Sorted by name. */
	const char *order[] = { H1, H2, H3, HA, HC, BK, "plainfile" };
	for (size_t i = 0; i < 7; i++)
		assert_string_equal(st.mounts[i].name, order[i]);
	const struct dk_mount *m = mount(&st, HA);
	assert_string_equal(m->mount_id, HB);
	assert_string_equal(m->init_id, HB "-init");
	assert_string_equal(m->parent, "sha256:" H1);
	assert_null(m->error);
	m = mount(&st, HC);
	assert_string_equal(m->mount_id, HD);
	assert_null(m->init_id);
	assert_null(m->parent);
	assert_null(m->error);
	m = mount(&st, BK);
	assert_string_equal(m->mount_id, HE);
	m = mount(&st, H1);
	assert_null(m->mount_id);
	assert_string_equal(m->init_id, HB);
	assert_string_equal(m->error, "mount-id: not 64 hex digits (with an optional -init) (\"xyz\")");
	m = mount(&st, H2);
	assert_string_equal(m->error, "mount-id: missing");
	m = mount(&st, H3);
	assert_string_equal(m->mount_id, HA);
	assert_null(m->init_id);
	assert_null(m->parent);
	assert_string_equal(m->error, "init-id: not 64 hex digits (with an optional -init) (\"" HA "-initx\")");
	m = mount(&st, "plainfile");
	assert_string_equal(m->error, "a regular file, not a directory");
	dkt_assert_nr_problems(&st, 5);
	dkt_assert_problem(&st, MNT H1 "/mount-id", "not 64 hex digits (with an optional -init) (\"xyz\")");
	dkt_assert_problem(&st, MNT H2 "/mount-id", "missing");
	dkt_assert_problem(&st, MNT H3 "/init-id", "not 64 hex digits (with an optional -init) (\"" HA "-initx\")");
	dkt_assert_problem(&st, MNT H3 "/parent", "not a sha256 digest (\"sha256:" HA "\\x0d\")");
	dkt_assert_problem(&st, MNT "plainfile", "a regular file, not a directory");
	dk_state_free(&st);
}

static void test_write_sets(void **state)
{
	const char *root = *state;
	dkt_write(root, LDB "tmp/write-set-123456/cache-id", HA);
	dkt_write(root, LDB "tmp/write-set-123456/diff", "sha256:" HB);
	dkt_mkdir(root, LDB "tmp/write-set-empty");
	dkt_write(root, LDB "tmp/write-set-file", "x");
	dkt_write(root, LDB "tmp/other", "x");
	dkt_symlink(root, LDB "tmp/write-set-link", "/");
	struct dk_state st;
	dkt_read(root, &st);
	assert_int_equal(st.nr_layers, 0);
	assert_int_equal(st.nr_transients, 2);
	assert_int_equal(st.transients[0].kind, DK_TRANSIENT_WRITE_SET);
	assert_string_equal(st.transients[0].path, LDB "tmp/write-set-123456");
	assert_int_equal(st.transients[0].bytes, 64 + 71);
	assert_int_equal(st.transients[1].kind, DK_TRANSIENT_WRITE_SET);
	assert_string_equal(st.transients[1].path, LDB "tmp/write-set-empty");
	assert_int_equal(st.transients[1].bytes, 0);
	dkt_assert_nr_problems(&st, 3);
	dkt_assert_problem(&st, LDB "tmp/other", "not a write-set-* directory");
	dkt_assert_problem(&st, LDB "tmp/write-set-file", "a regular file, not a directory");
	dkt_assert_problem(&st, LDB "tmp/write-set-link", "symlink leading outside the root, not followed (-> \"/\")");
	dk_state_free(&st);
}

static void test_layerdb_confined(void **state)
{
	const char *root = *state;
	dkt_mkdir(root, "elsewhere/sha256/" H1);
	dkt_symlink(root, LDB "sha256", "../../../elsewhere/sha256");
	dkt_symlink(root, LDB "mounts", "/var/lib/docker/image/devicemapper/layerdb/mounts");
	struct dk_state st;
	dkt_read(root, &st);
	assert_int_equal(st.nr_layers, 0);
	assert_int_equal(st.nr_mounts, 0);
	dkt_assert_nr_problems(&st, 2);
	dkt_assert_problem(&st, LDB "sha256", "symlink, not followed (-> \"../../../elsewhere/sha256\")");
	dkt_assert_problem(&st, LDB "mounts", "symlink leading outside the root, not followed "
					      "(-> \"/var/lib/docker/image/devicemapper/layerdb/mounts\")");
	dk_state_free(&st);

	/* A symlink higher up: one problem, however many readers meet it. */
	dkt_remove(root, "image");
	dkt_symlink(root, "image", "/var/lib/docker/image");
	dkt_read(root, &st);
	assert_int_equal(st.layout, DK_LAYOUT_DOCKER);
	dkt_assert_nr_problems(&st, 1);
	dkt_assert_problem(&st, "image", "symlink leading outside the root, not followed (-> \"/var/lib/docker/image\")");
	dk_state_free(&st);
}

/* Every root here has a driver home, so that its absence is not a problem. */
static int setup(void **state)
{
	if (dkt_setup(state))
		return -1;
	dkt_mkdir(*state, "devicemapper");
	return 0;
}

int main(void)
{
	if (!unit_tmpdir_usable())
		return UNIT_SKIP;
#define T(f) cmocka_unit_test_setup_teardown(f, setup, dkt_teardown)
	const struct CMUnitTest tests[] = {
		T(test_layers),
		T(test_removing),
		T(test_layer_dir_names),
		T(test_layer_files_bad),
		T(test_mounts),
		T(test_write_sets),
		T(test_layerdb_confined),
	};
	return cmocka_run_group_tests_name("docker_layerdb", tests, NULL, NULL);
}
