/* docker/imagedb through dk_state_read: image configs, their ids (checked
 * against the content), chain ids, labels, tags, and damaged configs. */
#include "unit.h"
#include "dktree.h"

#include "docker/state.h"
#include "util/sha256.h"

#define CONTENT "image/devicemapper/imagedb/content/sha256/"
#define REPOS "image/devicemapper/repositories.json"

#define D1 "sha256:f191e625176e7514249870c60bc24622131b04927a418001d1969c9cecd260f1"
#define D2 "sha256:77c7ed05b2e49df2e55d70cb007508cc66b2f5419a940bfd6f8749ba7db77c45"
#define D3 "sha256:6483085b79dcef99d4d90b43a910666cdce078bf772da453728f8c385fbfdf2f"
/* printf 'D1 D2' | sha256sum; printf 'C2 D3' | sha256sum */
#define C2 "sha256:d440fc2ac5bfa225471b58c5d6b4283504f5dfbcd6251023a635cdcd0c058e3e"
#define C3 "sha256:952689aceeac7e377b602804de533a4ad47ba634e3917ca7cb071e5ff2bff6cd"

/* An image config and its id, from sha256sum. */
#define IMG1 "{\"architecture\":\"amd64\",\"config\":{\"Env\":[\"PATH=/bin\"],\"Labels\":{\"maintainer\":\"me\",\"a\":\"1\"}}," \
	     "\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" D1 "\",\"" D2 "\",\"" D3 "\"]}}"
#define IMG1_ID "a297f7a8c468c86de3d9d35faf9cecdfc31af7678b6d1c512f2b9072f5041e26"

static const struct dk_image *image(const struct dk_state *st, const char *id)
{
	for (size_t i = 0; i < st->nr_images; i++)
		if (!strcmp(st->images[i].id, id))
			return &st->images[i];
	fail_msg("no image %s", id);
	return NULL;
}

/* Writes content under its own sha256 (the library's, checked against
 * sha256sum in test_docker_sha256) and returns the id in buf. */
static const char *write_image(const char *root, const char *content, char *buf)
{
	char hex[SHA256_HEX_LEN + 1], rel[256];
	sha256_hex(content, strlen(content), hex);
	snprintf(rel, sizeof(rel), CONTENT "%s", hex);
	dkt_write(root, rel, content);
	snprintf(buf, 80, "sha256:%s", hex);
	return buf;
}

static void test_image(void **state)
{
	const char *root = *state;
	dkt_write(root, CONTENT IMG1_ID, IMG1);
	dkt_write(root, REPOS, "{\"Repositories\":{\"busybox\":{\"busybox:latest\":\"sha256:" IMG1_ID "\","
			       "\"busybox@sha256:" HA "\":\"sha256:" IMG1_ID "\"},"
			       "\"myreg:5000/app\":{\"myreg:5000/app:1\":\"sha256:" IMG1_ID "\"}}}");
	struct dk_state st;
	dkt_read(root, &st);
	dkt_assert_nr_problems(&st, 0);
	assert_int_equal(st.nr_images, 1);
	const struct dk_image *im = &st.images[0];
	assert_string_equal(im->id, "sha256:" IMG1_ID);
	assert_null(im->error);
	assert_null(im->top_layer);
	assert_int_equal(im->nr_diff_ids, 3);
	assert_string_equal(im->diff_ids[0], D1);
	assert_string_equal(im->diff_ids[1], D2);
	assert_string_equal(im->diff_ids[2], D3);
	assert_string_equal(im->chain_ids[0], D1);
	assert_string_equal(im->chain_ids[1], C2);
	assert_string_equal(im->chain_ids[2], C3);
	assert_int_equal(im->nr_labels, 2);
	assert_string_equal(im->labels[0].key, "a");
	assert_string_equal(im->labels[0].value, "1");
	assert_string_equal(im->labels[1].key, "maintainer");
	assert_string_equal(im->labels[1].value, "me");
	assert_int_equal(im->nr_tags, 3);
	assert_string_equal(im->tags[0], "busybox:latest");
	assert_string_equal(im->tags[1], "busybox@sha256:" HA);
	assert_string_equal(im->tags[2], "myreg:5000/app:1");
	dk_state_free(&st);
}

static void test_image_id_mismatch(void **state)
{
	const char *root = *state;
	dkt_write(root, CONTENT HA, IMG1);
	struct dk_state st;
	dkt_read(root, &st);
	assert_int_equal(st.nr_images, 1);
	const struct dk_image *im = &st.images[0];
	assert_string_equal(im->id, "sha256:" HA);
	/* Still read: the layers it names are evidence. */
	assert_int_equal(im->nr_diff_ids, 3);
	assert_string_equal(im->chain_ids[2], C3);
	assert_string_equal(im->error, "content is sha256:" IMG1_ID ", not its name: Docker does not load it");
	dkt_assert_nr_problems(&st, 1);
	dkt_assert_problem(&st, CONTENT HA, "content is sha256:" IMG1_ID ", not its name: Docker does not load it");
	dk_state_free(&st);
}

static void test_image_minimal(void **state)
{
	const char *root = *state;
	char id1[80], id2[80], id3[80];
	/* FROM scratch with no layer; no config at all; null diff_ids. */
	write_image(root, "{\"rootfs\":{\"type\":\"layers\"}}", id1);
	write_image(root, "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":null},\"config\":null}", id2);
	write_image(root, "{\"rootfs\":{\"diff_ids\":[\"" D2 "\"]},\"config\":{\"Labels\":{}}}", id3);
	struct dk_state st;
	dkt_read(root, &st);
	dkt_assert_nr_problems(&st, 0);
	assert_int_equal(st.nr_images, 3);
	const struct dk_image *im = image(&st, id1);
	assert_int_equal(im->nr_diff_ids, 0);
	assert_null(im->diff_ids);
	assert_null(im->chain_ids);
	assert_int_equal(im->nr_labels, 0);
	assert_null(im->error);
	im = image(&st, id2);
	assert_int_equal(im->nr_diff_ids, 0);
	assert_null(im->error);
	im = image(&st, id3);
	assert_int_equal(im->nr_diff_ids, 1);
	assert_string_equal(im->chain_ids[0], D2);
	assert_null(im->error);
	/* Sorted by id. */
	for (size_t i = 1; i < st.nr_images; i++)
		assert_true(strcmp(st.images[i - 1].id, st.images[i].id) < 0);
	dk_state_free(&st);
}

static void test_image_bad(void **state)
{
	const char *root = *state;
	static const struct { const char *content, *error; } cases[] = {
		{ "", "empty file" },
		{ "{\"rootfs\":", "not JSON: unexpected end of input at byte 10" },
		{ "[]", "an array, not a JSON object" },
		{ "{}", "no rootfs" },
		{ "{\"rootfs\":[]}", "rootfs: an array, not an object" },
		{ "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":\"" D1 "\"}}", "rootfs.diff_ids: a string, not an array" },
		{ "{\"rootfs\":{\"diff_ids\":[5]}}", "rootfs.diff_ids[0]: not a string" },
		{ "{\"rootfs\":{\"diff_ids\":[\"" D1 "\",null]}}", "rootfs.diff_ids[1]: not a string" },
		{ "{\"rootfs\":{\"diff_ids\":[\"sha256:zz\"]}}", "rootfs.diff_ids[0]: not a sha256 digest" },
		{ "{\"rootfs\":{\"type\":\"foo\",\"diff_ids\":[]}}", "rootfs.type is \"foo\", not \"layers\"" },
		{ "{\"rootfs\":{\"type\":7}}", "rootfs.type: a number, not a string" },
		{ "{\"rootfs\":{},\"config\":\"x\"}", "config: a string, not an object" },
		{ "{\"rootfs\":{},\"config\":{\"Labels\":[]}}", "config.Labels: an array, not an object" },
		{ "{\"rootfs\":{},\"config\":{\"Labels\":{\"a\":1}}}",
		  "config.Labels: the value of \"a\" is a number, not a string" },
	};
	size_t n = sizeof(cases) / sizeof(cases[0]);
	char ids[sizeof(cases) / sizeof(cases[0])][80], rel[256];
	for (size_t i = 0; i < n; i++)
		write_image(root, cases[i].content, ids[i]);
	struct dk_state st;
	dkt_read(root, &st);
	assert_int_equal(st.nr_images, n);
	dkt_assert_nr_problems(&st, n);
	for (size_t i = 0; i < n; i++) {
		const struct dk_image *im = image(&st, ids[i]);
		if (!im->error || strcmp(im->error, cases[i].error))
			fail_msg("case %zu: error \"%s\", expected \"%s\"", i, im->error ? im->error : "(null)",
				 cases[i].error);
		assert_int_equal(im->nr_diff_ids, 0);
		snprintf(rel, sizeof(rel), CONTENT "%s", ids[i] + 7);
		dkt_assert_problem(&st, rel, cases[i].error);
	}
	dk_state_free(&st);
}

static void test_image_dir_entries(void **state)
{
	const char *root = *state;
	dkt_write(root, CONTENT IMG1_ID, IMG1);
	dkt_write(root, CONTENT ".tmp-" IMG1_ID "123456", "{\"arch");
	dkt_write(root, CONTENT "notanid", "{}");
	dkt_mkdir(root, CONTENT HB);
	dkt_symlink(root, CONTENT HC, IMG1_ID);
	dkt_sparse(root, CONTENT HD, (16ll << 20) + 1);
	struct dk_state st;
	dkt_read(root, &st);
	assert_int_equal(st.nr_images, 4);
	assert_string_equal(image(&st, "sha256:" HB)->error, "a directory, not a regular file");
	assert_string_equal(image(&st, "sha256:" HC)->error, "symlink, not followed (-> \"" IMG1_ID "\")");
	assert_string_equal(image(&st, "sha256:" HD)->error, "too large (16777217 bytes)");
	assert_null(image(&st, "sha256:" IMG1_ID)->error);
	assert_int_equal(st.nr_transients, 1);
	assert_int_equal(st.transients[0].kind, DK_TRANSIENT_IMAGEDB_TMP);
	assert_string_equal(st.transients[0].path, CONTENT ".tmp-" IMG1_ID "123456");
	assert_int_equal(st.transients[0].bytes, 6);
	dkt_assert_nr_problems(&st, 4);
	dkt_assert_problem(&st, CONTENT "notanid", "not an image id (Docker skips it)");
	dkt_assert_problem(&st, CONTENT HB, "a directory, not a regular file");
	dk_state_free(&st);
}

static void test_tags_bad(void **state)
{
	const char *root = *state;
	dkt_write(root, CONTENT IMG1_ID, IMG1);
	struct dk_state st;
	static const struct { const char *content, *problem; } cases[] = {
		{ "[]", "an array, not a JSON object" },
		{ "{\"Repositories\":[]}", "Repositories: an array, not an object" },
		{ "{\"Repositories\":{\"busybox\":\"x\"}}", "repository \"busybox\": a string, not an object" },
		{ "{\"Repositories\":{\"busybox\":{\"busybox:1\":5}}}", "\"busybox:1\": a number, not a string" },
		{ "{\"Repositories\":{\"busybox\":{\"busybox:1\":\"sha256:" HA "\"}}}",
		  "\"busybox:1\" names image \"sha256:" HA "\", which is not in imagedb" },
		{ "{\"Repositories\":", "not JSON: unexpected end of input at byte 16" },
		{ "{\"Repositories\":{},\"Repositories\":{}}",
		  "duplicate key \"Repositories\" (the last one counts, as for Docker)" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dkt_write(root, REPOS, cases[i].content);
		dkt_read(root, &st);
		dkt_assert_nr_problems(&st, 1);
		dkt_assert_problem(&st, REPOS, cases[i].problem);
		assert_int_equal(st.images[0].nr_tags, 0);
		dk_state_free(&st);
	}
	/* No repositories.json, or one without tags: nothing to say. */
	dkt_write(root, REPOS, "{}");
	dkt_read(root, &st);
	dkt_assert_nr_problems(&st, 0);
	dk_state_free(&st);
	dkt_remove(root, REPOS);
	dkt_read(root, &st);
	dkt_assert_nr_problems(&st, 0);
	dk_state_free(&st);
}

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
		T(test_image),
		T(test_image_id_mismatch),
		T(test_image_minimal),
		T(test_image_bad),
		T(test_image_dir_entries),
		T(test_tags_bad),
	};
	return cmocka_run_group_tests_name("docker_imagedb", tests, NULL, NULL);
}
