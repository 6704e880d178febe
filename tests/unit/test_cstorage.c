/* containers/storage: layers.json, images.json, containers.json. */
#include "unit.h"

#include "docker/parsers.h"
#include "util/err.h"

/* Every parse gets an exact-size copy without a NUL, so reading past len
 * shows up under the sanitizers and valgrind. */
static char *exact(const char *s, size_t *len)
{
	*len = strlen(s);
	char *p = malloc(*len ? *len : 1);
	assert_non_null(p);
	memcpy(p, s, *len);
	return p;
}

static void check_err(int r, const struct dmr_err *err)
{
	assert_null(strchr(err->msg, '\n'));
	if (r)
		assert_true(err->msg[0] != '\0');
	else
		assert_int_equal(err->msg[0], '\0');
}

static int layers(const char *json, struct dk_cs_layer **l, size_t *nr, struct dmr_err *err)
{
	size_t len;
	char *p = exact(json, &len);
	memset(err, 'x', sizeof(*err));
	int r = dk_cs_parse_layers(p, len, l, nr, err);
	free(p);
	check_err(r, err);
	if (*nr == 0)
		assert_null(*l);
	return r;
}

static void images_free(struct dk_image *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].id);
		for (size_t k = 0; k < v[i].nr_tags; k++)
			free(v[i].tags[k]);
		free(v[i].tags);
		free(v[i].top_layer);
		assert_null(v[i].diff_ids);
		assert_int_equal(v[i].nr_diff_ids, 0);
		assert_null(v[i].chain_ids);
		assert_null(v[i].labels);
		assert_null(v[i].error);
	}
	free(v);
}

static void containers_free(struct dk_container *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].id);
		free(v[i].name);
		free(v[i].image);
		free(v[i].layer);
		assert_null(v[i].labels);
		assert_int_equal(v[i].nr_labels, 0);
		assert_null(v[i].driver);
		assert_null(v[i].error);
	}
	free(v);
}

static int images(const char *json, struct dk_image **v, size_t *nr, struct dmr_err *err)
{
	size_t len;
	char *p = exact(json, &len);
	memset(err, 'x', sizeof(*err));
	int r = dk_cs_parse_images(p, len, v, nr, err);
	free(p);
	check_err(r, err);
	return r;
}

static int containers(const char *json, struct dk_container **v, size_t *nr, struct dmr_err *err)
{
	size_t len;
	char *p = exact(json, &len);
	memset(err, 'x', sizeof(*err));
	int r = dk_cs_parse_containers(p, len, v, nr, err);
	free(p);
	check_err(r, err);
	return r;
}

/* ---- layers.json ---- */

/* As c/storage writes it (json-iterator, std-compatible: no spaces). */
static const char LAYERS[] =
	"[{\"id\":\"3b1b8d5d0c4a29a9b8f6b9f2f5e0cfbd3ab7e1b1e0c8f0b8e8f1a2b3c4d5e6f7\","
	"\"created\":\"2023-05-01T10:00:00.000000001Z\","
	"\"compressed-diff-digest\":\"sha256:aa\",\"compressed-size\":2811478,"
	"\"diff-digest\":\"sha256:bb\",\"diff-size\":5860864,\"compression\":2,"
	"\"uidset\":[0],\"gidset\":[0,42]},"
	"{\"id\":\"c0ffee00000000000000000000000000000000000000000000000000000000aa\","
	"\"names\":[\"n1\",\"n2\"],"
	"\"parent\":\"3b1b8d5d0c4a29a9b8f6b9f2f5e0cfbd3ab7e1b1e0c8f0b8e8f1a2b3c4d5e6f7\","
	"\"metadata\":\"{}\",\"mountlabel\":\"system_u:object_r:container_file_t:s0\","
	"\"flags\":{\"incomplete\":true}},"
	"{\"id\":\"dd\",\"flags\":{\"incomplete\":false,\"other\":{\"x\":[1,2]}}},"
	"{\"id\":\"ee\",\"flags\":{\"incomplete\":\"true\"}}]";

static void test_layers_valid(void **state)
{
	(void)state;
	struct dk_cs_layer *l;
	size_t nr;
	struct dmr_err err;
	assert_int_equal(layers(LAYERS, &l, &nr, &err), 0);
	assert_int_equal(nr, 4);
	assert_string_equal(l[0].id, "3b1b8d5d0c4a29a9b8f6b9f2f5e0cfbd3ab7e1b1e0c8f0b8e8f1a2b3c4d5e6f7");
	assert_null(l[0].parent);
	assert_int_equal(l[0].nr_names, 0);
	assert_null(l[0].names);
	assert_int_equal(l[0].incomplete, 0);
	assert_string_equal(l[1].id, "c0ffee00000000000000000000000000000000000000000000000000000000aa");
	assert_string_equal(l[1].parent, l[0].id);
	assert_int_equal(l[1].nr_names, 2);
	assert_string_equal(l[1].names[0], "n1");
	assert_string_equal(l[1].names[1], "n2");
	assert_int_equal(l[1].incomplete, 1);
	assert_string_equal(l[2].id, "dd");
	assert_int_equal(l[2].incomplete, 0);
	/* only a JSON true counts (layers.go: cleanup.(bool)) */
	assert_string_equal(l[3].id, "ee");
	assert_int_equal(l[3].incomplete, 0);
	dk_cs_layers_free(l, nr);

	/* encoding/json matches member names ignoring case; null is absent */
	assert_int_equal(layers(" [ {\"ID\":\"a\",\"Parent\":\"b\",\"NAMES\":[\"x\"]},\n"
				"{\"id\":\"c\",\"parent\":null,\"names\":null,\"flags\":null} ] \n",
				&l, &nr, &err),
			 0);
	assert_int_equal(nr, 2);
	assert_string_equal(l[0].id, "a");
	assert_string_equal(l[0].parent, "b");
	assert_string_equal(l[0].names[0], "x");
	assert_null(l[1].parent);
	assert_int_equal(l[1].nr_names, 0);
	dk_cs_layers_free(l, nr);

	/* an exact match wins over a case-folded one */
	assert_int_equal(layers("[{\"Id\":\"folded\",\"id\":\"exact\"}]", &l, &nr, &err), 0);
	assert_string_equal(l[0].id, "exact");
	dk_cs_layers_free(l, nr);
}

static void test_layers_empty(void **state)
{
	(void)state;
	struct dk_cs_layer *l;
	size_t nr;
	struct dmr_err err;
	/* c/storage reads an empty file and null as no layers */
	assert_int_equal(layers("", &l, &nr, &err), 0);
	assert_int_equal(nr, 0);
	assert_int_equal(layers("null", &l, &nr, &err), 0);
	assert_int_equal(nr, 0);
	assert_int_equal(layers("[]", &l, &nr, &err), 0);
	assert_int_equal(nr, 0);
	assert_int_equal(layers(" \n[ ]\n", &l, &nr, &err), 0);
	assert_int_equal(nr, 0);
	dk_cs_layers_free(NULL, 0);
}

static void test_layers_not_json(void **state)
{
	(void)state;
	struct dk_cs_layer *l;
	size_t nr;
	struct dmr_err err;
	static const struct {
		const char *json, *msg;
	} cases[] = {
		{ "  \n", "layers: not JSON: only white space" },
		{ "[{\"id\":\"a\"", "layers: not JSON: cut short" },
		{ "[{\"id\":\"a\"}] x", "at byte 13" },
		{ "[{\"id\":\"a\"}][]", "layers: not JSON: " },
		{ "[{\"id\":\"a\"}] \n]", "layers: not JSON: " },
		{ "[{'id':'a'}]", "layers: not JSON: " },
		{ "[{\"id\":\"a\",}]", "layers: not JSON: " },
		/* json-c takes NaN even when strict; not an object all the same */
		{ "[NaN]", "layer 0: a number, not an object" },
		{ "{\"id\":\"a\"}", "layers: an object, not a JSON array" },
		{ "\"x\"", "layers: a string, not a JSON array" },
		{ "123", "layers: a number, not a JSON array" },
		{ "true", "layers: a boolean, not a JSON array" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = layers(cases[i].json, &l, &nr, &err);
		if (r != DMR_ECORRUPT)
			fail_msg("%s: got %d", cases[i].json, r);
		assert_contains(err.msg, cases[i].msg);
		assert_int_equal(nr, 0);
	}
	/* only len bytes are read: "[]" followed by garbage that is not passed */
	const char *s = "[]garbage";
	char *p = malloc(2);
	memcpy(p, s, 2);
	assert_int_equal(dk_cs_parse_layers(p, 2, &l, &nr, &err), 0);
	free(p);
	/* nesting deeper than the parser's bound */
	size_t depth = 5000;
	char *deep = malloc(2 * depth + 1);
	memset(deep, '[', depth);
	memset(deep + depth, ']', depth);
	deep[2 * depth] = '\0';
	assert_int_equal(layers(deep, &l, &nr, &err), DMR_ECORRUPT);
	assert_contains(err.msg, "not JSON");
	free(deep);
}

static void test_layers_bad_elements(void **state)
{
	(void)state;
	struct dk_cs_layer *l;
	size_t nr;
	struct dmr_err err;
	int r = layers("[{\"id\":\"a\"},7,{\"names\":[\"x\"]},{\"id\":5},{\"id\":\"\"},[],"
		       "{\"id\":\"nul\\u0000byte\"},{\"id\":\"b\",\"parent\":\"a\"}]",
		       &l, &nr, &err);
	assert_int_equal(r, DMR_ECORRUPT);
	assert_string_equal(err.msg, "layer 1: a number, not an object (and 5 more problems); 6 of 8 layers skipped");
	assert_int_equal(nr, 2);
	assert_string_equal(l[0].id, "a");
	assert_string_equal(l[1].id, "b");
	assert_string_equal(l[1].parent, "a");
	dk_cs_layers_free(l, nr);

	/* each alone */
	static const struct {
		const char *json, *msg;
	} cases[] = {
		{ "[{\"names\":[]}]", "layer 0: no \"id\"; 1 of 1 layers skipped" },
		{ "[{\"id\":null}]", "layer 0: no \"id\"; 1 of 1 layers skipped" },
		{ "[{\"id\":[\"a\"]}]", "layer 0: \"id\" is an array; 1 of 1 layers skipped" },
		{ "[{\"id\":\"\"}]", "layer 0: \"id\" is empty; 1 of 1 layers skipped" },
		{ "[{\"id\":\"a\\u0000\"}]", "layer 0: \"id\" is a string; 1 of 1 layers skipped" },
		{ "[null]", "layer 0: null, not an object; 1 of 1 layers skipped" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(layers(cases[i].json, &l, &nr, &err), DMR_ECORRUPT);
		assert_string_equal(err.msg, cases[i].msg);
		assert_int_equal(nr, 0);
	}
}

static void test_layers_bad_fields(void **state)
{
	(void)state;
	struct dk_cs_layer *l;
	size_t nr;
	struct dmr_err err;
	/* the layer stays, without what is wrong */
	static const struct {
		const char *json, *msg;
	} cases[] = {
		{ "[{\"id\":\"a\",\"parent\":12}]", "layer 0 (a): \"parent\" is a number, not a string; 0 of 1 layers skipped" },
		{ "[{\"id\":\"a\",\"names\":\"n\"}]", "layer 0 (a): \"names\" is a string, not an array; 0 of 1" },
		{ "[{\"id\":\"a\",\"flags\":[true]}]", "layer 0 (a): \"flags\" is an array, not an object" },
		{ "[{\"id\":\"a\",\"parent\":\"p\\u0000\"}]", "layer 0 (a): \"parent\" is a string, not a string" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(layers(cases[i].json, &l, &nr, &err), DMR_ECORRUPT);
		assert_contains(err.msg, cases[i].msg);
		assert_int_equal(nr, 1);
		assert_string_equal(l[0].id, "a");
		assert_null(l[0].parent);
		assert_int_equal(l[0].nr_names, 0);
		dk_cs_layers_free(l, nr);
	}
	/* a names array with one bad entry keeps the others */
	assert_int_equal(layers("[{\"id\":\"a\",\"names\":[\"x\",1,\"y\",null]}]", &l, &nr, &err), DMR_ECORRUPT);
	assert_contains(err.msg, "layer 0 (a): \"names\"[1] is a number, not a string (and 1 more problems)");
	assert_int_equal(l[0].nr_names, 2);
	assert_string_equal(l[0].names[0], "x");
	assert_string_equal(l[0].names[1], "y");
	dk_cs_layers_free(l, nr);
	/* a duplicate id: both kept, reported */
	assert_int_equal(layers("[{\"id\":\"a\"},{\"id\":\"b\"},{\"id\":\"a\",\"parent\":\"b\"}]", &l, &nr, &err),
			 DMR_ECORRUPT);
	assert_contains(err.msg, "layer id a appears twice");
	assert_int_equal(nr, 3);
	dk_cs_layers_free(l, nr);
}

static void test_layers_many(void **state)
{
	(void)state;
	/* 100000 layers, and as many bad elements: bounded by the input */
	size_t n = 100000, cap = n * 48 + 16, len = 0;
	char *json = malloc(cap);
	assert_non_null(json);
	json[len++] = '[';
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(json + len, cap - len, "%s{\"id\":\"%zu\",\"parent\":\"%zu\"},0", i ? "," : "",
					i, i ? i - 1 : 0);
	json[len++] = ']';
	json[len] = '\0';
	struct dk_cs_layer *l;
	size_t nr;
	struct dmr_err err;
	assert_int_equal(layers(json, &l, &nr, &err), DMR_ECORRUPT);
	assert_int_equal(nr, n);
	assert_string_equal(l[n - 1].id, "99999");
	assert_string_equal(l[n - 1].parent, "99998");
	assert_contains(err.msg, "(and 99999 more problems); 100000 of 200000 layers skipped");
	dk_cs_layers_free(l, nr);
	free(json);
}

/* ---- images.json ---- */

static void test_images(void **state)
{
	(void)state;
	struct dk_image *v;
	size_t nr;
	struct dmr_err err;
	const char *json =
		"[{\"id\":\"8e8e\",\"digest\":\"sha256:11\",\"names\":[\"docker.io/library/busybox:latest\","
		"\"docker.io/library/busybox@sha256:22\"],\"layer\":\"c0ffee\",\"metadata\":\"{}\","
		"\"big-data-names\":[\"manifest\"],\"big-data-sizes\":{\"manifest\":527},"
		"\"created\":\"2023-05-01T10:00:00Z\",\"flags\":{}},"
		"{\"id\":\"no-layers\",\"layer\":\"\"},"
		"{\"id\":\"bare\"}]";
	assert_int_equal(images(json, &v, &nr, &err), 0);
	assert_int_equal(nr, 3);
	assert_string_equal(v[0].id, "8e8e");
	assert_int_equal(v[0].nr_tags, 2);
	assert_string_equal(v[0].tags[0], "docker.io/library/busybox:latest");
	assert_string_equal(v[0].tags[1], "docker.io/library/busybox@sha256:22");
	assert_string_equal(v[0].top_layer, "c0ffee");
	assert_string_equal(v[1].id, "no-layers");
	assert_null(v[1].top_layer);
	assert_int_equal(v[1].nr_tags, 0);
	assert_string_equal(v[2].id, "bare");
	assert_null(v[2].top_layer);
	images_free(v, nr);

	assert_int_equal(images("", &v, &nr, &err), 0);
	assert_int_equal(nr, 0);
	assert_int_equal(images("{}", &v, &nr, &err), DMR_ECORRUPT);
	assert_string_equal(err.msg, "images: an object, not a JSON array");

	assert_int_equal(images("[{\"id\":\"a\",\"layer\":{}},\"x\",{\"id\":\"b\",\"names\":[\"t\"]},{}]", &v, &nr,
				&err),
			 DMR_ECORRUPT);
	assert_string_equal(err.msg,
			    "image 0 (a): \"layer\" is an object, not a string (and 2 more problems); 2 of 4 images skipped");
	assert_int_equal(nr, 2);
	assert_string_equal(v[0].id, "a");
	assert_null(v[0].top_layer);
	assert_string_equal(v[1].tags[0], "t");
	images_free(v, nr);
}

/* ---- containers.json ---- */

static void test_containers(void **state)
{
	(void)state;
	struct dk_container *v;
	size_t nr;
	struct dmr_err err;
	const char *json =
		"[{\"id\":\"c1\",\"names\":[\"web\",\"alias\"],\"image\":\"8e8e\",\"layer\":\"l1\","
		"\"metadata\":\"{\\\"image-name\\\":\\\"busybox\\\",\\\"name\\\":\\\"web\\\"}\","
		"\"big-data-names\":[\"config.json\"],\"created\":\"2023-05-01T10:00:00Z\","
		"\"uidmap\":[{\"container_id\":0,\"host_id\":100000,\"size\":65536}],"
		"\"flags\":{\"MountLabel\":\"x\",\"ProcessLabel\":\"y\"}},"
		"{\"id\":\"c2\",\"image\":\"\",\"layer\":\"l2\"}]";
	assert_int_equal(containers(json, &v, &nr, &err), 0);
	assert_int_equal(nr, 2);
	assert_string_equal(v[0].id, "c1");
	assert_string_equal(v[0].name, "web");
	assert_string_equal(v[0].image, "8e8e");
	assert_string_equal(v[0].layer, "l1");
	assert_int_equal(v[0].running, 0);
	assert_string_equal(v[1].id, "c2");
	assert_null(v[1].name);
	assert_null(v[1].image);
	assert_string_equal(v[1].layer, "l2");
	containers_free(v, nr);

	assert_int_equal(containers("null", &v, &nr, &err), 0);
	assert_int_equal(nr, 0);
	assert_int_equal(containers("[", &v, &nr, &err), DMR_ECORRUPT);
	assert_contains(err.msg, "containers: not JSON");

	assert_int_equal(containers("[{\"id\":\"a\",\"names\":[1,\"second\"],\"layer\":false},{\"id\":7}]", &v, &nr,
				    &err),
			 DMR_ECORRUPT);
	assert_string_equal(err.msg, "container 0 (a): \"names\"[0] is a number, not a string "
				     "(and 2 more problems); 1 of 2 containers skipped");
	assert_int_equal(nr, 1);
	assert_string_equal(v[0].name, "second");
	assert_null(v[0].layer);
	containers_free(v, nr);
}

/* Random bytes and cut-short documents: never a crash. */
static void test_random_input(void **state)
{
	(void)state;
	uint64_t rs = 5;
	static const char alphabet[] = "[]{}\",:0123456789eE+-.truefalsn \\u\"id\"names";
	char buf[300];
	for (int iter = 0; iter < 20000; iter++) {
		size_t n = (size_t)(unit_rand(&rs) % sizeof(buf));
		for (size_t i = 0; i < n; i++)
			buf[i] = alphabet[unit_rand(&rs) % (sizeof(alphabet) - 1)];
		if (n > 2 && unit_rand(&rs) % 2) {
			buf[0] = '[';
			buf[1] = '{';
		}
		char *p = malloc(n ? n : 1);
		memcpy(p, buf, n);
		struct dmr_err err;
		struct dk_cs_layer *l;
		struct dk_image *im;
		struct dk_container *ct;
		size_t nr;
		int r = dk_cs_parse_layers(p, n, &l, &nr, &err);
		assert_true(r == 0 || r == DMR_ECORRUPT);
		dk_cs_layers_free(l, nr);
		r = dk_cs_parse_images(p, n, &im, &nr, &err);
		assert_true(r == 0 || r == DMR_ECORRUPT);
		images_free(im, nr);
		r = dk_cs_parse_containers(p, n, &ct, &nr, &err);
		assert_true(r == 0 || r == DMR_ECORRUPT);
		containers_free(ct, nr);
		free(p);
	}
	/* every prefix of a valid file */
	size_t full = strlen(LAYERS);
	for (size_t n = 0; n < full; n++) {
		char *p = malloc(n ? n : 1);
		memcpy(p, LAYERS, n);
		struct dmr_err err;
		struct dk_cs_layer *l;
		size_t nr;
		int r = dk_cs_parse_layers(p, n, &l, &nr, &err);
		assert_int_equal(r, n == 0 ? 0 : DMR_ECORRUPT);
		dk_cs_layers_free(l, nr);
		free(p);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layers_valid),
		cmocka_unit_test(test_layers_empty),
		cmocka_unit_test(test_layers_not_json),
		cmocka_unit_test(test_layers_bad_elements),
		cmocka_unit_test(test_layers_bad_fields),
		cmocka_unit_test(test_layers_many),
		cmocka_unit_test(test_images),
		cmocka_unit_test(test_containers),
		cmocka_unit_test(test_random_input),
	};
	return cmocka_run_group_tests_name("cstorage", tests, NULL, unit_tmp_cleanup);
}
