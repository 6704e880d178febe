/* docker/containers through dk_state_read: config.v2.json as Docker writes
 * it, and damaged, misplaced or missing ones. */
#include "unit.h"
#include "dktree.h"

#include "docker/state.h"

#define CT "containers/"

static const struct dk_container *container(const struct dk_state *st, const char *id)
{
	for (size_t i = 0; i < st->nr_containers; i++)
		if (!strcmp(st->containers[i].id, id))
			return &st->containers[i];
	fail_msg("no container %s", id);
	return NULL;
}

static void test_container(void **state)
{
	const char *root = *state;
	dkt_write(root, CT HA "/config.v2.json",
		  "{\"StreamConfig\":{},\"State\":{\"Running\":true,\"Paused\":false,\"Restarting\":false,"
		  "\"OOMKilled\":false,\"RemovalInProgress\":false,\"Dead\":false,\"Pid\":4242,\"ExitCode\":0,"
		  "\"Error\":\"\",\"StartedAt\":\"2024-01-01T00:00:00Z\",\"Health\":null},"
		  "\"ID\":\"" HA "\",\"Created\":\"2024-01-01T00:00:00Z\",\"Path\":\"sh\",\"Args\":[],"
		  "\"Config\":{\"Hostname\":\"aaaa\",\"Image\":\"busybox\",\"Labels\":{\"com.example\":\"x\",\"a\":\"\"}},"
		  "\"Image\":\"sha256:" HB "\",\"Name\":\"/web\",\"Driver\":\"devicemapper\",\"MountLabel\":\"\"}");
	dkt_write(root, CT HA "/hostconfig.json", "{}");
	/* Being removed (docker rm checkpoints Dead first), no labels, no slash. */
	dkt_write(root, CT HC "/config.v2.json",
		  "{\"ID\":\"" HC "\",\"Name\":\"db\",\"Image\":\"sha256:" HB "\",\"Driver\":\"devicemapper\","
		  "\"State\":{\"Dead\":true,\"RemovalInProgress\":true,\"Paused\":true,\"Restarting\":true},"
		  "\"Config\":{\"Labels\":null}}");
	/* Another driver: read, the joiner decides. */
	dkt_write(root, CT HD "/config.v2.json", "{\"ID\":\"" HD "\",\"Driver\":\"overlay2\"}");
	struct dk_state st;
	dkt_read(root, &st);
	dkt_assert_nr_problems(&st, 0);
	assert_int_equal(st.nr_containers, 3);
	const struct dk_container *c = &st.containers[0];
	assert_string_equal(c->id, HA);
	assert_string_equal(c->name, "web");
	assert_string_equal(c->image, "sha256:" HB);
	assert_string_equal(c->driver, "devicemapper");
	assert_true(c->running);
	assert_false(c->paused);
	assert_false(c->restarting);
	assert_false(c->dead);
	assert_false(c->removal_in_progress);
	assert_int_equal(c->nr_labels, 2);
	assert_string_equal(c->labels[0].key, "a");
	assert_string_equal(c->labels[0].value, "");
	assert_string_equal(c->labels[1].key, "com.example");
	assert_string_equal(c->labels[1].value, "x");
	assert_null(c->layer);
	assert_null(c->error);
	c = &st.containers[1];
	assert_string_equal(c->id, HC);
	assert_string_equal(c->name, "db");
	assert_false(c->running);
	assert_true(c->paused);
	assert_true(c->restarting);
	assert_true(c->dead);
	assert_true(c->removal_in_progress);
	assert_int_equal(c->nr_labels, 0);
	assert_null(c->error);
	c = &st.containers[2];
	assert_string_equal(c->driver, "overlay2");
	assert_null(c->name);
	assert_null(c->image);
	assert_null(c->error);
	dk_state_free(&st);
}

static void test_container_bad(void **state)
{
	const char *root = *state;
	static const struct { const char *content, *error; } cases[] = {
		{ "", "empty file" },
		{ "{\"ID\":\"x\"", "not JSON: unexpected end of input at byte 9" },
		{ "[]", "an array, not a JSON object" },
		{ "{}", "no ID" },
		{ "{\"ID\":5}", "ID: a number, not a string" },
		{ "{\"ID\":\"" HF "\"}", "ID is \"" HF "\", not the directory name: Docker does not load it" },
		{ "{\"ID\":\"@\",\"Name\":[\"/x\"]}", "Name: an array, not a string" },
		{ "{\"ID\":\"@\",\"Image\":{}}", "Image: an object, not a string" },
		{ "{\"ID\":\"@\",\"Driver\":false}", "Driver: a boolean, not a string" },
		{ "{\"ID\":\"@\",\"State\":\"running\"}", "State: a string, not an object" },
		{ "{\"ID\":\"@\",\"State\":{\"Running\":\"yes\"}}", "State.Running: a string, not a boolean" },
		{ "{\"ID\":\"@\",\"State\":{\"Dead\":1}}", "State.Dead: a number, not a boolean" },
		{ "{\"ID\":\"@\",\"Config\":[]}", "Config: an array, not an object" },
		{ "{\"ID\":\"@\",\"Config\":{\"Labels\":{\"k\":{}}}}",
		  "Config.Labels: the value of \"k\" is an object, not a string" },
	};
	size_t n = sizeof(cases) / sizeof(cases[0]);
	char id[80], rel[256], content[512];
	for (size_t i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "%064zx", i);
		snprintf(rel, sizeof(rel), CT "%s/config.v2.json", id);
		/* "@" stands for the directory's own id */
		const char *at = strchr(cases[i].content, '@');
		if (at)
			snprintf(content, sizeof(content), "%.*s%s%s", (int)(at - cases[i].content), cases[i].content, id,
				 at + 1);
		else
			snprintf(content, sizeof(content), "%s", cases[i].content);
		dkt_write(root, rel, content);
	}
	struct dk_state st;
	dkt_read(root, &st);
	assert_int_equal(st.nr_containers, n);
	dkt_assert_nr_problems(&st, n);
	for (size_t i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "%064zx", i);
		const struct dk_container *c = container(&st, id);
		if (!c->error || strcmp(c->error, cases[i].error))
			fail_msg("case %zu: error \"%s\", expected \"%s\"", i, c->error ? c->error : "(null)",
				 cases[i].error);
		snprintf(rel, sizeof(rel), CT "%s/config.v2.json", id);
		dkt_assert_problem(&st, rel, cases[i].error);
	}
	/* What could be read around an error is kept. */
	snprintf(id, sizeof(id), "%064zx", (size_t)10);
	assert_false(container(&st, id)->running);
	dk_state_free(&st);
}

static void test_container_files(void **state)
{
	const char *root = *state;
	dkt_mkdir(root, CT HA);                              /* rm -r interrupted, or a pre-1.10 container */
	dkt_write(root, CT HA "/config.json", "{}");
	dkt_mkdir(root, CT HB "/config.v2.json");
	dkt_symlink(root, CT HC "/config.v2.json", "/etc/passwd");
	dkt_sparse(root, CT HD "/config.v2.json", (16ll << 20) + 1);
	dkt_write(root, CT "stray", "x");
	dkt_symlink(root, CT HE, "../" HA);
	struct dk_state st;
	dkt_read(root, &st);
	assert_int_equal(st.nr_containers, 4);
	assert_string_equal(container(&st, HA)->error, "config.v2.json: missing");
	assert_string_equal(container(&st, HB)->error, "config.v2.json: a directory, not a regular file");
	assert_string_equal(container(&st, HC)->error,
			    "config.v2.json: symlink leading outside the root, not followed (-> \"/etc/passwd\")");
	assert_string_equal(container(&st, HD)->error, "config.v2.json: too large (16777217 bytes)");
	dkt_assert_nr_problems(&st, 6);
	dkt_assert_problem(&st, CT HA "/config.v2.json", "missing");
	dkt_assert_problem(&st, CT HB "/config.v2.json", "a directory, not a regular file");
	dkt_assert_problem(&st, CT HD "/config.v2.json", "too large (16777217 bytes)");
	dkt_assert_problem(&st, CT "stray", "a regular file, not a directory");
	dkt_assert_problem(&st, CT HE, "symlink, not followed (-> \"../" HA "\")");
	dk_state_free(&st);
}

int main(void)
{
	if (!unit_tmpdir_usable())
		return UNIT_SKIP;
#define T(f) cmocka_unit_test_setup_teardown(f, dkt_setup, dkt_teardown)
	const struct CMUnitTest tests[] = {
		T(test_container),
		T(test_container_bad),
		T(test_container_files),
	};
	return cmocka_run_group_tests_name("docker_containers", tests, NULL, NULL);
}
