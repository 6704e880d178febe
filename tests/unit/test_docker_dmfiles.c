/* docker/dmfiles through dk_state_read: the layout and pool prefix, device
 * files (valid, old, damaged in every way), deviceset-metadata,
 * transaction-metadata, the legacy json, leftovers in metadata/ and mnt/. */
#include "unit.h"
#include "dktree.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "docker/state.h"

#define META "devicemapper/metadata/"
#define BK "k3ebj7i1v0e9wb0xv5q2s8z4n" /* a 25-character BuildKit key */
#define LDB_CACHE_ID "image/devicemapper/layerdb/sha256/" H1 "/cache-id"

static const struct dk_devfile *file(const struct dk_state *st, const char *hash)
{
	const struct dk_devfile *f = dk_state_file_by_hash(st, hash);
	if (!f)
		fail_msg("no device file with hash \"%s\"", hash);
	return f;
}

/* ---- layout and prefix ---- */

static void test_empty_root(void **state)
{
	const char *root = *state;
	struct dk_state st;
	dkt_read(root, &st);
	assert_int_equal(st.layout, DK_LAYOUT_NONE);
	assert_string_equal(st.root, root);
	assert_null(st.home);
	assert_null(st.prefix);
	assert_null(st.pool_name);
	assert_int_equal(st.nr_files, 0);
	assert_int_equal(st.txn.present, 0);
	assert_int_equal(st.txn.device_id, -1);
	assert_null(st.txn.device_hash);
	assert_int_equal(st.deviceset.present, 0);
	assert_int_equal(st.deviceset.next_device_id, -1);
	dkt_assert_nr_problems(&st, 0);
	dk_state_free(&st);
}

static void test_root_not_dir(void **state)
{
	const char *root = *state;
	dkt_write(root, "file", "x");
	char path[4200];
	snprintf(path, sizeof(path), "%s/file", root);
	struct dk_state st;
	struct dmr_err err = { 0 };
	assert_int_equal(dk_state_read(path, &st, &err), DMR_EIO);
	assert_contains(err.msg, "Not a directory");
	snprintf(path, sizeof(path), "%s/none", root);
	assert_int_equal(dk_state_read(path, &st, &err), DMR_EIO);
	dk_state_free(&st); /* harmless on a failed read */
}

static void expected_prefix(const char *root, const char *kind, char *buf, size_t size)
{
	char home[4200];
	struct stat sb;
	snprintf(home, sizeof(home), "%s/devicemapper", root);
	assert_int_equal(stat(home, &sb), 0);
	/* Docker's formula (devmapper/deviceset.go), written out here on its own. */
	uint64_t dev = (uint64_t)sb.st_dev;
	snprintf(buf, size, "%s-%llu:%llu-%llu", kind, (unsigned long long)((dev >> 8) & 0xfff),
		 (unsigned long long)((dev & 0xff) | ((dev >> 12) & 0xfff00)), (unsigned long long)sb.st_ino);
}

static void test_layout_docker(void **state)
{
	const char *root = *state;
	dkt_mkdir(root, "devicemapper");
	struct dk_state st;
	dkt_read(root, &st);
	/* The home alone: Docker (the common case). */
	assert_int_equal(st.layout, DK_LAYOUT_DOCKER);
	assert_string_equal(st.home, "devicemapper");
	char want[256], pool[300];
	expected_prefix(root, "docker", want, sizeof(want));
	assert_string_equal(st.prefix, want);
	snprintf(pool, sizeof(pool), "%s-pool", want);
	assert_string_equal(st.pool_name, pool);
	dkt_assert_nr_problems(&st, 0);
	dk_state_free(&st);

	dkt_mkdir(root, "image/devicemapper");
	dkt_read(root, &st);
	assert_int_equal(st.layout, DK_LAYOUT_DOCKER);
	dk_state_free(&st);

	dkt_remove(root, "image");
	dkt_mkdir(root, "containers");
	dkt_read(root, &st);
	assert_int_equal(st.layout, DK_LAYOUT_DOCKER);
	dkt_assert_nr_problems(&st, 0);
	dk_state_free(&st);
}

static void test_layout_cstorage(void **state)
{
	const char *root = *state;
	dkt_mkdir(root, "devicemapper/metadata");
	dkt_mkdir(root, "devicemapper-layers");
	dkt_mkdir(root, "devicemapper-images");
	struct dk_state st;
	dkt_read(root, &st);
	assert_int_equal(st.layout, DK_LAYOUT_CSTORAGE);
	char want[256];
	expected_prefix(root, "container", want, sizeof(want));
	assert_string_equal(st.prefix, want);
	assert_int_equal(strncmp(st.pool_name, "container-", 10), 0);
	dkt_assert_nr_problems(&st, 0);
	dk_state_free(&st);

	/* Both kinds of marker: read as Docker, and said so. */
	dkt_mkdir(root, "image/devicemapper");
	dkt_read(root, &st);
	assert_int_equal(st.layout, DK_LAYOUT_DOCKER);
	dkt_assert_nr_problems(&st, 1);
	dkt_assert_problem(&st, "devicemapper-layers",
			   "both Docker (image/, containers/) and containers/storage directories under the root: "
			   "read as Docker");
	dk_state_free(&st);
}

static void test_layout_no_home(void **state)
{
	const char *root = *state;
	dkt_mkdir(root, "image/devicemapper/layerdb");
	struct dk_state st;
	dkt_read(root, &st);
	assert_int_equal(st.layout, DK_LAYOUT_NONE);
	assert_null(st.prefix);
	dkt_assert_nr_problems(&st, 1);
	dkt_assert_problem(&st, "devicemapper", "missing: the driver home with the device files is gone");
	dk_state_free(&st);

	/* An overlay2 host: nothing devicemapper, nothing to say. */
	dkt_remove(root, "image");
	dkt_mkdir(root, "image/overlay2");
	dkt_mkdir(root, "containers");
	dkt_read(root, &st);
	assert_int_equal(st.layout, DK_LAYOUT_NONE);
	dkt_assert_nr_problems(&st, 0);
	dk_state_free(&st);
}

static void test_layout_home_symlink(void **state)
{
	const char *root = *state;
	dkt_mkdir(root, "image/devicemapper");
	dkt_symlink(root, "devicemapper", "/srv/docker-dm");
	struct dk_state st;
	dkt_read(root, &st);
	assert_int_equal(st.layout, DK_LAYOUT_NONE);
	assert_null(st.prefix);
	dkt_assert_nr_problems(&st, 1);
	dkt_assert_problem(&st, "devicemapper",
			   "symlink leading outside the root, not followed (-> \"/srv/docker-dm\")");
	dk_state_free(&st);

	dkt_remove(root, "devicemapper");
	dkt_write(root, "devicemapper", "not a directory");
	dkt_read(root, &st);
	assert_int_equal(st.layout, DK_LAYOUT_NONE);
	dkt_assert_problem(&st, "devicemapper", "a regular file, not a directory");
	dk_state_free(&st);
}

static void test_dev_formula(void **state)
{
	(void)state;
	/* Small numbers: the same as glibc. */
	uint64_t d = makedev(253, 1);
	assert_int_equal(dk_dev_major(d), 253);
	assert_int_equal(dk_dev_minor(d), 1);
	d = makedev(7, 300);
	assert_int_equal(dk_dev_major(d), 7);
	assert_int_equal(dk_dev_minor(d), 300);
	d = makedev(4095, 0xfffff);
	assert_int_equal(dk_dev_major(d), 4095);
	assert_int_equal(dk_dev_minor(d), 0xfffff);
	/* Beyond 12 bits of major or 20 of minor Docker keeps only those bits. */
	d = makedev(5000, 0x123456);
	assert_int_equal(major(d), 5000);
	assert_int_equal(minor(d), 0x123456);
	assert_int_equal(dk_dev_major(d), 5000 & 0xfff);
	assert_int_equal(dk_dev_minor(d), 0x23456);
	/* Raw values, as the formula reads them. */
	assert_int_equal(dk_dev_major(0xfd01), 0xfd);
	assert_int_equal(dk_dev_minor(0xfd01), 0x01);
	assert_int_equal(dk_dev_major(0x123456789abcdefull), 0xbcd);
	assert_int_equal(dk_dev_minor(0x123456789abcdefull), 0x89aef);
}

/* ---- device files ---- */

static void test_devfiles_valid(void **state)
{
	const char *root = *state;
	dkt_write(root, META "base",
		  "{\"device_id\":1,\"size\":10737418240,\"transaction_id\":1,\"initialized\":true,\"deleted\":false}");
	dkt_write(root, META HA,
		  "{\"device_id\":629,\"size\":10737418240,\"transaction_id\":3379,\"initialized\":false,\"deleted\":false}");
	/* Docker <= 1.8: no "deleted"; and a trailing newline from an editor. */
	dkt_write(root, META HA "-init", "{\"device_id\":628,\"size\":20,\"transaction_id\":3378,\"initialized\":false}\n");
	dkt_write(root, META BK, "{\"device_id\":16777215,\"size\":5,\"transaction_id\":9,\"initialized\":false,"
				 "\"deleted\":true}");
	/* Unknown keys are ignored, as by Go. */
	dkt_write(root, META HB, "{\"device_id\":0,\"extra\":[1,{\"x\":null}],\"size\":18446744073709551615}");
	struct dk_state st;
	dkt_read(root, &st);
	dkt_assert_nr_problems(&st, 0);
	assert_int_equal(st.nr_files, 5);
	/* Sorted by hash; the base ("") first. */
	assert_string_equal(st.files[0].hash, "");
	assert_string_equal(st.files[1].hash, HA);
	assert_string_equal(st.files[2].hash, HA "-init");
	assert_string_equal(st.files[3].hash, HB);
	assert_string_equal(st.files[4].hash, BK);

	const struct dk_devfile *f = file(&st, "");
	assert_string_equal(f->name, META "base");
	assert_true(f->valid);
	assert_int_equal(f->device_id, 1);
	assert_int_equal(f->size, 10737418240ull);
	assert_int_equal(f->transaction_id, 1);
	assert_true(f->initialized);
	assert_false(f->deleted);
	assert_true(f->has_deleted_key);
	assert_false(f->from_legacy_json);
	assert_null(f->error);

	f = file(&st, HA);
	assert_string_equal(f->name, META HA);
	assert_true(f->valid);
	assert_int_equal(f->device_id, 629);
	assert_int_equal(f->transaction_id, 3379);
	assert_false(f->initialized);

	f = file(&st, HA "-init");
	assert_true(f->valid);
	assert_int_equal(f->device_id, 628);
	assert_int_equal(f->size, 20);
	assert_false(f->deleted);
	assert_false(f->has_deleted_key);

	f = file(&st, BK);
	assert_true(f->valid);
	assert_int_equal(f->device_id, 0xffffff);
	assert_true(f->deleted);
	assert_true(f->has_deleted_key);

	f = file(&st, HB);
	assert_true(f->valid);
	assert_int_equal(f->device_id, 0);
	assert_true(f->size == UINT64_MAX);
	assert_int_equal(f->transaction_id, 0);

	/* Lookups. */
	assert_ptr_equal(dk_state_file_by_device_id(&st, 629), dk_state_file_by_hash(&st, HA));
	assert_ptr_equal(dk_state_file_by_device_id(&st, 0), dk_state_file_by_hash(&st, HB));
	assert_null(dk_state_file_by_device_id(&st, 630));
	assert_null(dk_state_file_by_device_id(&st, -1));
	assert_null(dk_state_file_by_hash(&st, HC));
	assert_null(dk_state_file_by_hash(&st, "base"));
	dk_state_free(&st);
}

struct bad_case {
	const char *content;
	const char *error;
	int64_t device_id; /* what was still readable */
};

static const struct bad_case bad_cases[] = {
	{ "", "empty file", -1 },
	{ "  \n", "only white space", -1 },
	{ "hello", "not JSON: invalid character 'h' at byte 0", -1 },
	{ "{\"device_id\":1,\"size\":", "not JSON: unexpected end of input at byte 22", -1 },
	{ "{\"device_id\":1,\"size\":10737418240,\"transac", "not JSON: unexpected end of input at byte 42", -1 },
	{ "\x00\x00\x00\x00", "not JSON: invalid byte 0x00 at byte 0", -1 },
	{ "[1,2]", "an array, not a JSON object", -1 },
	{ "null", "null, not a JSON object", -1 },
	{ "\"device\"", "a string, not a JSON object", -1 },
	{ "42", "a number, not a JSON object", -1 },
	{ "{}", "no device_id", -1 },
	{ "{\"device_id\":null}", "no device_id", -1 },
	{ "{\"device_id\":\"5\"}", "device_id: a string, not an integer", -1 },
	{ "{\"device_id\":[5]}", "device_id: an array, not an integer", -1 },
	{ "{\"device_id\":{}}", "device_id: an object, not an integer", -1 },
	{ "{\"device_id\":true}", "device_id: a boolean, not an integer", -1 },
	{ "{\"device_id\":1.0}", "device_id: not an integer", -1 },
	{ "{\"device_id\":1e3}", "device_id: not an integer", -1 },
	{ "{\"device_id\":-1}", "device_id -1 is out of range (0..16777215)", -1 },
	{ "{\"device_id\":16777216}", "device_id 16777216 is out of range (0..16777215)", -1 },
	{ "{\"device_id\":9223372036854775807}", "device_id 9223372036854775807 is out of range (0..16777215)", -1 },
	{ "{\"device_id\":99999999999999999999}", "device_id: out of range", -1 },
	{ "{\"device_id\":-99999999999999999999}", "device_id: out of range", -1 },
	{ "{\"device_id\":3,\"size\":-5}", "size: negative (-5)", 3 },
	{ "{\"device_id\":3,\"size\":18446744073709551616}", "size: out of range", 3 },
	{ "{\"device_id\":3,\"size\":\"10G\"}", "size: a string, not an integer", 3 },
	{ "{\"device_id\":3,\"transaction_id\":-1}", "transaction_id: negative (-1)", 3 },
	{ "{\"device_id\":3,\"initialized\":1}", "initialized: a number, not a boolean", 3 },
	{ "{\"device_id\":3,\"deleted\":\"false\"}", "deleted: a string, not a boolean", 3 },
	{ "{'device_id':1}", "not JSON: expected a string key at byte 1", -1 },
	{ "{\"device_id\":NaN}", "not JSON: invalid character 'N' at byte 13", -1 },
	{ "{\"device_id\":1} x", "not JSON: data after the JSON value at byte 16", -1 },
	{ "{\"device_id\":1}{\"device_id\":2}", "not JSON: data after the JSON value at byte 15", -1 },
	{ "{\"device_id\":0x10}", "not JSON: expected ',' or '}' in an object at byte 14", -1 },
	{ "\xef\xbb\xbf{\"device_id\":1}", "not JSON: invalid byte 0xef at byte 0", -1 },
};

static void test_devfiles_bad(void **state)
{
	const char *root = *state;
	size_t n = sizeof(bad_cases) / sizeof(bad_cases[0]);
	char rel[64], hash[32];
	for (size_t i = 0; i < n; i++) {
		snprintf(rel, sizeof(rel), META "bad%02zu", i);
		size_t len = strlen(bad_cases[i].content);
		if (bad_cases[i].content[0] == '\0' && i == 5)
			len = 4; /* the NUL bytes */
		dkt_writen(root, rel, bad_cases[i].content, len);
	}
	dkt_write(root, META HA, "{\"device_id\":7}");
	struct dk_state st;
	dkt_read(root, &st);
	assert_int_equal(st.nr_files, n + 1);
	dkt_assert_nr_problems(&st, n);
	for (size_t i = 0; i < n; i++) {
		snprintf(hash, sizeof(hash), "bad%02zu", i);
		snprintf(rel, sizeof(rel), META "bad%02zu", i);
		const struct dk_devfile *f = file(&st, hash);
		if (f->valid || !f->error || strcmp(f->error, bad_cases[i].error))
			fail_msg("case %zu (%s): valid %d, error \"%s\", expected \"%s\"", i, bad_cases[i].content,
				 f->valid, f->error ? f->error : "(null)", bad_cases[i].error);
		assert_int_equal(f->device_id, bad_cases[i].device_id);
		dkt_assert_problem(&st, rel, bad_cases[i].error);
	}
	/* The bad files did not stop the good one. */
	assert_true(file(&st, HA)->valid);
	dk_state_free(&st);
}

static void test_devfiles_odd_but_valid(void **state)
{
	const char *root = *state;
	/* Duplicate keys: Go takes the last; said, but still valid. */
	dkt_write(root, META HA, "{\"device_id\":1,\"size\":1,\"device_id\":2}");
	/* Go matches member names ignoring case. */
	dkt_write(root, META HB, "{\"DEVICE_ID\":7,\"Size\":3,\"Deleted\":true}");
	/* Blank space everywhere JSON allows it. */
	dkt_write(root, META HC, " \t\r\n{ \"device_id\" :\n 9 ,\"initialized\":false }\n\n");
	struct dk_state st;
	dkt_read(root, &st);
	const struct dk_devfile *f = file(&st, HA);
	assert_true(f->valid);
	assert_int_equal(f->device_id, 2);
	assert_int_equal(f->size, 1);
	f = file(&st, HB);
	assert_true(f->valid);
	assert_int_equal(f->device_id, 7);
	assert_int_equal(f->size, 3);
	assert_true(f->deleted);
	assert_true(f->has_deleted_key);
	f = file(&st, HC);
	assert_true(f->valid);
	assert_int_equal(f->device_id, 9);
	dkt_assert_nr_problems(&st, 1);
	dkt_assert_problem(&st, META HA, "duplicate key \"device_id\" (the last one counts, as for Docker)");
	dk_state_free(&st);
}

static void test_devfiles_not_files(void **state)
{
	const char *root = *state;
	dkt_write(root, META "base", "{\"device_id\":1}");
	dkt_symlink(root, META HA, "base");
	dkt_symlink(root, META HB, "../../../../../etc/passwd");
	dkt_symlink(root, META HC, "/var/lib/docker/devicemapper/metadata/base");
	dkt_mkfifo(root, META HD);
	dkt_sparse(root, META HE, (16ll << 20) + 1);
	struct dk_state st;
	dkt_read(root, &st);
	assert_int_equal(st.nr_files, 5); /* base, 3 symlinks, the huge one; not the fifo */
	const struct dk_devfile *f = file(&st, HA);
	assert_false(f->valid);
	assert_string_equal(f->error, "symlink, not followed (-> \"base\")");
	f = file(&st, HB);
	assert_string_equal(f->error,
			    "symlink leading outside the root, not followed (-> \"../../../../../etc/passwd\")");
	f = file(&st, HC);
	assert_string_equal(f->error, "symlink leading outside the root, not followed "
				      "(-> \"/var/lib/docker/devicemapper/metadata/base\")");
	f = file(&st, HE);
	assert_false(f->valid);
	assert_string_equal(f->error, "too large (16777217 bytes)");
	assert_int_equal(f->device_id, -1);
	assert_null(dk_state_file_by_hash(&st, HD));
	assert_int_equal(st.nr_transients, 1);
	assert_int_equal(st.transients[0].kind, DK_TRANSIENT_STRAY);
	assert_string_equal(st.transients[0].path, META HD);
	dkt_assert_nr_problems(&st, 5);
	dkt_assert_problem(&st, META HA, "symlink, not followed (-> \"base\")");
	dkt_assert_problem(&st, META HD, "a fifo in metadata/: Docker takes it for a device file and hangs reading it");
	dkt_assert_problem(&st, META HE, "too large (16777217 bytes)");
	dk_state_free(&st);
}

static void test_devfiles_device_nodes(void **state)
{
	const char *root = *state;
	char p[4200];
	dkt_mkdir(root, META);
	snprintf(p, sizeof(p), "%s/" META HA, root);
	if (mknod(p, S_IFCHR | 0644, makedev(1, 5)) < 0)
		skip(); /* not root, or not allowed here */
	dkt_write(root, LDB_CACHE_ID, "");
	snprintf(p, sizeof(p), "%s/" LDB_CACHE_ID, root);
	unlink(p);
	if (mknod(p, S_IFCHR | 0644, makedev(1, 5)) < 0)
		skip();
	struct dk_state st;
	dkt_read(root, &st);
	assert_int_equal(st.nr_files, 0);
	assert_int_equal(st.nr_transients, 1);
	assert_int_equal(st.transients[0].kind, DK_TRANSIENT_STRAY);
	assert_int_equal(st.nr_layers, 1);
	assert_string_equal(st.layers[0].error, "cache-id: a character device, not a regular file");
	dkt_assert_problem(&st, META HA, "a device node in metadata/: Docker takes it for a device file and will not start");
	dkt_assert_problem(&st, LDB_CACHE_ID, "a character device, not a regular file");
	dk_state_free(&st);
}

static void test_devfiles_unreadable(void **state)
{
	const char *root = *state;
	if (geteuid() == 0)
		skip(); /* root reads anything; test_devfiles_not_files covers the same path */
	dkt_write(root, META HA, "{\"device_id\":1}");
	char p[4200];
	snprintf(p, sizeof(p), "%s/" META HA, root);
	chmod(p, 0);
	struct dk_state st;
	dkt_read(root, &st);
	const struct dk_devfile *f = file(&st, HA);
	assert_false(f->valid);
	assert_string_equal(f->error, "permission denied");
	dkt_assert_problem(&st, META HA, "permission denied");
	dk_state_free(&st);
}

/* ---- what Docker skips, and what it trips over ---- */

static void test_metadata_leftovers(void **state)
{
	const char *root = *state;
	dkt_write(root, META "base", "{\"device_id\":1}");
	dkt_write(root, META HA, "{\"device_id\":2}");
	dkt_write(root, META ".tmp123456789", "{\"devi");
	dkt_write(root, META ".tmp", "");
	dkt_mkfifo(root, META ".tmpfifo");         /* skipped by Docker, not a write leftover */
	dkt_write(root, META ".hidden-backup", "x"); /* skipped by Docker: the place for backups */
	dkt_write(root, META "old.migrated", "x");
	/* Docker walks subdirectories and takes their files for devices. */
	dkt_write(root, META "sub/" HA, "copy");
	dkt_write(root, META "sub/deep/" HB, "");
	dkt_write(root, META "sub/base", "{}");
	dkt_symlink(root, META "sub/" HC, "/etc");
	dkt_write(root, META "sub/.tmp9", "x");
	dkt_write(root, META "sub/transaction-metadata", "x");
	dkt_write(root, META "sub/deviceset-metadata", "x");
	dkt_write(root, META "sub/x.migrated", "x");
	dkt_mkdir(root, META "empty");
	dkt_write(root, META ".tmpdir/" HD, "12");   /* a dot directory is walked too */
	struct dk_state st;
	dkt_read(root, &st);
	assert_int_equal(st.nr_files, 2);
	assert_int_equal(st.nr_transients, 7);
	const struct { enum dk_transient_kind kind; const char *path; uint64_t bytes; } want[] = {
		{ DK_TRANSIENT_METADATA_TMP, META ".tmp", 0 },
		{ DK_TRANSIENT_METADATA_TMP, META ".tmp123456789", 6 },
		{ DK_TRANSIENT_STRAY, META ".tmpdir/" HD, 2 },
		{ DK_TRANSIENT_STRAY, META "sub/" HA, 4 },
		{ DK_TRANSIENT_STRAY, META "sub/base", 2 },
		{ DK_TRANSIENT_STRAY, META "sub/" HC, 4 },
		{ DK_TRANSIENT_STRAY, META "sub/deep/" HB, 0 },
	};
	for (size_t i = 0; i < 7; i++) {
		assert_int_equal(st.transients[i].kind, want[i].kind);
		assert_string_equal(st.transients[i].path, want[i].path);
		assert_int_equal(st.transients[i].bytes, want[i].bytes);
	}
	dkt_assert_nr_problems(&st, 5);
	dkt_assert_problem(&st, META "sub/" HA, "stray file in a subdirectory of metadata/: Docker loads it as device \""
					       HA "\", whose own file is valid");
	dkt_assert_problem(&st, META "sub/base", "stray file in a subdirectory of metadata/: Docker loads it as device "
						 "\"base\", whose own file is valid");
	dkt_assert_problem(&st, META "sub/deep/" HB, "stray file in a subdirectory of metadata/: Docker loads it as "
						     "device \"" HB "\", has no valid metadata/" HB " and will not start");
	dkt_assert_problem(&st, META "sub/" HC, "stray file in a subdirectory of metadata/: Docker loads it as device \""
					       HC "\", has no valid metadata/" HC " and will not start");
	dkt_assert_problem(&st, META ".tmpdir/" HD, "stray file in a subdirectory of metadata/: Docker loads it as "
						     "device \"" HD "\", has no valid metadata/" HD " and will not start");
	dk_state_free(&st);
}

static void test_metadata_deep_dirs(void **state)
{
	const char *root = *state;
	char rel[4096] = META "x";
	for (int i = 0; i < 20; i++)
		strcat(rel, "/x");
	strcat(rel, "/f");
	dkt_write(root, rel, "");
	struct dk_state st;
	dkt_read(root, &st);
	assert_int_equal(st.nr_transients, 0);
	dkt_assert_nr_problems(&st, 1);
	assert_contains(st.problems[0].msg, "directories nested more than 16 deep in metadata/: not walked");
	dk_state_free(&st);
}

/* ---- transaction-metadata ---- */

static void read_txn(const char *root, const char *content, struct dk_state *st)
{
	dkt_write(root, META "transaction-metadata", content);
	dkt_read(root, st);
}

static void test_txn(void **state)
{
	const char *root = *state;
	struct dk_state st;
	read_txn(root, "{\"open_transaction_id\":3380,\"device_hash\":\"" HF "\",\"device_id\":630}", &st);
	assert_true(st.txn.present);
	assert_true(st.txn.valid);
	assert_int_equal(st.txn.open_transaction_id, 3380);
	assert_string_equal(st.txn.device_hash, HF);
	assert_int_equal(st.txn.device_id, 630);
	assert_int_equal(st.nr_files, 0); /* not a device file */
	dkt_assert_nr_problems(&st, 0);
	dk_state_free(&st);

	read_txn(root, "{\"open_transaction_id\":1,\"device_hash\":\"\",\"device_id\":1}", &st);
	assert_true(st.txn.valid);
	assert_string_equal(st.txn.device_hash, "");
	dk_state_free(&st);

	/* Not JSON: Docker reads zeros and carries on. */
	read_txn(root, "{\"open_transaction_id\":33", &st);
	assert_true(st.txn.present);
	assert_false(st.txn.valid);
	assert_int_equal(st.txn.open_transaction_id, 0);
	assert_string_equal(st.txn.device_hash, "");
	assert_int_equal(st.txn.device_id, 0);
	dkt_assert_nr_problems(&st, 1);
	dkt_assert_problem(&st, META "transaction-metadata",
			   "not JSON: unexpected end of input at byte 25 (Docker ignores the file's errors and reads zeros)");
	dk_state_free(&st);

	/* A wrong type: Go still sets the other fields, and so does Docker. */
	read_txn(root, "{\"open_transaction_id\":5,\"device_hash\":7,\"device_id\":3}", &st);
	assert_false(st.txn.valid);
	assert_int_equal(st.txn.open_transaction_id, 5);
	assert_string_equal(st.txn.device_hash, "");
	assert_int_equal(st.txn.device_id, 3);
	dkt_assert_problem(&st, META "transaction-metadata",
			   "device_hash: a number, not a string (Docker ignores the file's errors and reads zeros)");
	dk_state_free(&st);

	read_txn(root, "{\"open_transaction_id\":5,\"device_hash\":\"x\",\"device_id\":16777216}", &st);
	assert_false(st.txn.valid);
	assert_int_equal(st.txn.device_id, 16777216);
	dkt_assert_problem(&st, META "transaction-metadata",
			   "device_id 16777216 is out of range (0..16777215) (Docker ignores the file's errors and reads zeros)");
	dk_state_free(&st);

	read_txn(root, "{\"open_transaction_id\":5,\"device_id\":2}", &st);
	assert_false(st.txn.valid);
	assert_string_equal(st.txn.device_hash, "");
	dkt_assert_problem(&st, META "transaction-metadata", "no device_hash (Docker reads \"\", the base) (Docker "
							     "ignores the file's errors and reads zeros)");
	dk_state_free(&st);

	read_txn(root, "[]", &st);
	assert_false(st.txn.valid);
	dkt_assert_problem(&st, META "transaction-metadata",
			   "an array, not a JSON object (Docker ignores the file's errors and reads zeros)");
	dk_state_free(&st);

	/* Unreadable: Docker does not start, and nothing is known. */
	dkt_remove(root, META "transaction-metadata");
	dkt_mkdir(root, META "transaction-metadata");
	dkt_read(root, &st);
	assert_true(st.txn.present);
	assert_false(st.txn.valid);
	assert_null(st.txn.device_hash);
	assert_int_equal(st.txn.device_id, -1);
	dkt_assert_nr_problems(&st, 1);
	dkt_assert_problem(&st, META "transaction-metadata", "a directory, not a regular file");
	dk_state_free(&st);
}

/* ---- deviceset-metadata ---- */

static void read_ds(const char *root, const char *content, struct dk_state *st)
{
	dkt_write(root, META "deviceset-metadata", content);
	dkt_read(root, st);
}

static void test_deviceset(void **state)
{
	const char *root = *state;
	struct dk_state st;
	read_ds(root, "{\"next_device_id\":1234,\"BaseDeviceUUID\":\"5d3c0c1b-1111-2222-3333-444455556666\","
		      "\"BaseDeviceFilesystem\":\"xfs\"}", &st);
	assert_true(st.deviceset.present);
	assert_true(st.deviceset.valid);
	assert_int_equal(st.deviceset.next_device_id, 1234);
	assert_string_equal(st.deviceset.base_uuid, "5d3c0c1b-1111-2222-3333-444455556666");
	assert_string_equal(st.deviceset.base_fs, "xfs");
	assert_int_equal(st.nr_files, 0);
	dkt_assert_nr_problems(&st, 0);
	dk_state_free(&st);

	/* Docker 1.4: only next_device_id. */
	read_ds(root, "{\"next_device_id\":3}", &st);
	assert_true(st.deviceset.valid);
	assert_null(st.deviceset.base_uuid);
	assert_null(st.deviceset.base_fs);
	dk_state_free(&st);

	read_ds(root, "{}", &st);
	assert_true(st.deviceset.valid);
	assert_int_equal(st.deviceset.next_device_id, -1);
	dk_state_free(&st);

	read_ds(root, "{\"next_device_id\":\"3\",\"BaseDeviceFilesystem\":\"ext4\"}", &st);
	assert_false(st.deviceset.valid);
	assert_int_equal(st.deviceset.next_device_id, -1);
	assert_string_equal(st.deviceset.base_fs, "ext4");
	dkt_assert_problem(&st, META "deviceset-metadata", "next_device_id: a string, not an integer");
	dk_state_free(&st);

	read_ds(root, "{\"BaseDeviceUUID\":5}", &st);
	assert_false(st.deviceset.valid);
	dkt_assert_problem(&st, META "deviceset-metadata", "BaseDeviceUUID: a number, not a string");
	dk_state_free(&st);

	read_ds(root, "not json", &st);
	assert_true(st.deviceset.present);
	assert_false(st.deviceset.valid);
	dkt_assert_problem(&st, META "deviceset-metadata", "not JSON: invalid literal at byte 0");
	dk_state_free(&st);

	/* Go reads null into a struct without error. */
	read_ds(root, "null", &st);
	assert_true(st.deviceset.valid);
	dkt_assert_problem(&st, META "deviceset-metadata", "null instead of an object (Docker reads no values)");
	dk_state_free(&st);

	read_ds(root, "{\"next_device_id\":1,\"next_device_id\":2}", &st);
	assert_true(st.deviceset.valid);
	assert_int_equal(st.deviceset.next_device_id, 2);
	dkt_assert_problem(&st, META "deviceset-metadata",
			   "duplicate key \"next_device_id\" (the last one counts, as for Docker)");
	dk_state_free(&st);

	dkt_remove(root, META "deviceset-metadata");
	dkt_symlink(root, META "deviceset-metadata", "../../elsewhere");
	dkt_read(root, &st);
	assert_true(st.deviceset.present);
	assert_false(st.deviceset.valid);
	dkt_assert_problem(&st, META "deviceset-metadata", "symlink, not followed (-> \"../../elsewhere\")");
	dk_state_free(&st);
}

/* ---- legacy devicemapper/json ---- */

#define LEGACY "devicemapper/devicemapper/json"

static void test_legacy_json(void **state)
{
	const char *root = *state;
	dkt_write(root, LEGACY,
		  "{\"Devices\":{"
		  "\"\":{\"device_id\":1,\"size\":10737418240,\"transaction_id\":0,\"initialized\":true},"
		  "\"" HA "\":{\"device_id\":2,\"size\":10,\"transaction_id\":0,\"initialized\":false},"
		  "\"" HB "\":{\"device_id\":\"x\"},"
		  "\"" HC "\":[],"
		  "\"../x\":{\"device_id\":5},"
		  "\"" HD "\":{\"device_id\":4}}}");
	/* Migrated already: the per-device file wins. */
	dkt_write(root, META HA, "{\"device_id\":20,\"size\":10}");
	struct dk_state st;
	dkt_read(root, &st);
	assert_true(st.legacy_json);
	assert_false(st.legacy_json_migrated);
	assert_int_equal(st.nr_files, 6);
	const struct dk_devfile *f = file(&st, "");
	assert_true(f->valid);
	assert_true(f->from_legacy_json);
	assert_string_equal(f->name, LEGACY);
	assert_int_equal(f->device_id, 1);
	assert_true(f->initialized);
	assert_false(f->has_deleted_key);
	f = file(&st, HA);
	assert_false(f->from_legacy_json);
	assert_int_equal(f->device_id, 20);
	assert_string_equal(f->name, META HA);
	f = file(&st, HB);
	assert_true(f->from_legacy_json);
	assert_false(f->valid);
	assert_string_equal(f->error, "device_id: a string, not an integer");
	f = file(&st, HC);
	assert_false(f->valid);
	assert_string_equal(f->error, "an array, not a JSON object");
	f = file(&st, "../x");
	assert_false(f->valid);
	assert_string_equal(f->error, "the hash is not a usable file name");
	assert_int_equal(f->device_id, -1);
	f = file(&st, HD);
	assert_true(f->valid);
	assert_int_equal(f->device_id, 4);
	dkt_assert_nr_problems(&st, 3);
	dkt_assert_problem(&st, LEGACY, "device \"" HB "\": device_id: a string, not an integer");
	dkt_assert_problem(&st, LEGACY, "device \"" HC "\": an array, not a JSON object");
	dkt_assert_problem(&st, LEGACY, "device \"../x\": the hash is not a usable file name");
	dk_state_free(&st);
}

static void test_legacy_json_shapes(void **state)
{
	const char *root = *state;
	struct dk_state st;
	dkt_write(root, "devicemapper/devicemapper/json.migrated", "{}");
	dkt_read(root, &st);
	assert_false(st.legacy_json);
	assert_true(st.legacy_json_migrated);
	dkt_assert_nr_problems(&st, 0);
	dk_state_free(&st);

	const struct { const char *content, *problem; } cases[] = {
		{ "[]", "an array, not a JSON object" },
		{ "{}", "no \"Devices\" object" },
		{ "{\"Devices\":[]}", "no \"Devices\" object" },
		{ "{\"Devices\":", "not JSON: unexpected end of input at byte 11" },
		{ "", "empty file" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dkt_write(root, LEGACY, cases[i].content);
		dkt_read(root, &st);
		assert_true(st.legacy_json);
		assert_int_equal(st.nr_files, 0);
		dkt_assert_nr_problems(&st, 1);
		dkt_assert_problem(&st, LEGACY, cases[i].problem);
		dk_state_free(&st);
	}
	dkt_write(root, LEGACY, "{\"Devices\":{}}");
	dkt_read(root, &st);
	assert_true(st.legacy_json);
	dkt_assert_nr_problems(&st, 0);
	dk_state_free(&st);
}

/* ---- mnt/ ---- */

static void test_mnt(void **state)
{
	const char *root = *state;
	dkt_mkdir(root, "devicemapper/mnt/" HA);
	dkt_write(root, "devicemapper/mnt/" HB "/rootfs/a", "1234567890");
	dkt_write(root, "devicemapper/mnt/" HB "/rootfs/sub/b", "12345");
	dkt_write(root, "devicemapper/mnt/" HB "/id", "");
	dkt_symlink(root, "devicemapper/mnt/" HD "/l", "/etc"); /* counted as 4 bytes, never followed */
	dkt_symlink(root, "devicemapper/mnt/" HC, "/tmp");
	dkt_write(root, "devicemapper/mnt/stray-file", "x");
	struct dk_state st;
	dkt_read(root, &st);
	assert_int_equal(st.nr_transients, 3);
	assert_int_equal(st.transients[0].kind, DK_TRANSIENT_MNT_EMPTY);
	assert_string_equal(st.transients[0].path, "devicemapper/mnt/" HA);
	assert_int_equal(st.transients[0].bytes, 0);
	assert_int_equal(st.transients[1].kind, DK_TRANSIENT_MNT_NONEMPTY);
	assert_string_equal(st.transients[1].path, "devicemapper/mnt/" HB);
	assert_int_equal(st.transients[1].bytes, 15);
	assert_int_equal(st.transients[2].kind, DK_TRANSIENT_MNT_NONEMPTY);
	assert_string_equal(st.transients[2].path, "devicemapper/mnt/" HD);
	assert_int_equal(st.transients[2].bytes, 4);
	dkt_assert_nr_problems(&st, 2);
	dkt_assert_problem(&st, "devicemapper/mnt/" HC, "symlink leading outside the root, not followed (-> \"/tmp\")");
	dkt_assert_problem(&st, "devicemapper/mnt/stray-file", "a regular file, not a directory");
	dk_state_free(&st);
}

/* Live mount points: only where this test may mount a tmpfs (root, and
 * allowed to mount here). */
static char mounted[2][4200];

static int umount_teardown(void **state)
{
	for (int i = 0; i < 2; i++)
		if (mounted[i][0] && umount2(mounted[i], MNT_DETACH) == 0)
			mounted[i][0] = '\0';
	return dkt_teardown(state);
}

static void test_mnt_mount_points(void **state)
{
	const char *root = *state;
	if (geteuid() != 0)
		skip();
	dkt_mkdir(root, "devicemapper/mnt/" HA);
	dkt_write(root, "devicemapper/mnt/" HB "/rootfs/a", "123");
	dkt_mkdir(root, "devicemapper/mnt/" HB "/rootfs/m");
	snprintf(mounted[0], sizeof(mounted[0]), "%s/devicemapper/mnt/" HA, root);
	snprintf(mounted[1], sizeof(mounted[1]), "%s/devicemapper/mnt/" HB "/rootfs/m", root);
	for (int i = 0; i < 2; i++) {
		if (mount("dmrescue-test", mounted[i], "tmpfs", 0, "size=1m") < 0) {
			mounted[i][0] = '\0';
			skip();
		}
	}
	dkt_write(root, "devicemapper/mnt/" HA "/id", "in the mounted filesystem");
	dkt_write(root, "devicemapper/mnt/" HB "/rootfs/m/big", "also mounted: not counted");
	struct dk_state st;
	dkt_read(root, &st);
	/* A mounted device is live state, not a leftover. */
	assert_int_equal(st.nr_transients, 1);
	assert_int_equal(st.transients[0].kind, DK_TRANSIENT_MNT_NONEMPTY);
	assert_string_equal(st.transients[0].path, "devicemapper/mnt/" HB);
	assert_int_equal(st.transients[0].bytes, 3);
	dkt_assert_nr_problems(&st, 2);
	dkt_assert_problem(&st, "devicemapper/mnt/" HA, "a mount point: a filesystem is mounted here");
	dkt_assert_problem(&st, "devicemapper/mnt/" HB, "a filesystem is mounted below it (not counted)");
	dk_state_free(&st);
}

int main(void)
{
	if (!unit_tmpdir_usable())
		return UNIT_SKIP;
#define T(f) cmocka_unit_test_setup_teardown(f, dkt_setup, dkt_teardown)
	const struct CMUnitTest tests[] = {
		T(test_empty_root),
		T(test_root_not_dir),
		T(test_layout_docker),
		T(test_layout_cstorage),
		T(test_layout_no_home),
		T(test_layout_home_symlink),
		cmocka_unit_test(test_dev_formula),
		T(test_devfiles_valid),
		T(test_devfiles_bad),
		T(test_devfiles_odd_but_valid),
		T(test_devfiles_not_files),
		T(test_devfiles_device_nodes),
		T(test_devfiles_unreadable),
		T(test_metadata_leftovers),
		T(test_metadata_deep_dirs),
		T(test_txn),
		T(test_deviceset),
		T(test_legacy_json),
		T(test_legacy_json_shapes),
		T(test_mnt),
		cmocka_unit_test_setup_teardown(test_mnt_mount_points, dkt_setup, umount_teardown),
	};
	return cmocka_run_group_tests_name("docker_dmfiles", tests, NULL, NULL);
}
