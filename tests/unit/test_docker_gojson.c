/* docker/gojson: JSON read as Go's encoding/json reads it (strict syntax,
 * case-insensitive members, last duplicate wins, exact integer ranges). */
#include "unit.h"

#include "docker/gojson.h"

static void parse_ok(const char *s, struct gj_doc *doc)
{
	char why[256] = "";
	int r = gj_parse(s, strlen(s), doc, why, sizeof(why));
	if (r)
		fail_msg("gj_parse(%s) = %d: %s", s, r, why);
}

static void parse_bad(const char *s, size_t len, const char *want)
{
	struct gj_doc doc;
	char why[256] = "";
	int r = gj_parse(s, len, &doc, why, sizeof(why));
	if (r != DMR_ECORRUPT)
		fail_msg("gj_parse(%s) = %d, expected DMR_ECORRUPT", s, r);
	assert_null(doc.root);
	assert_string_equal(why, want);
}

static void test_syntax(void **state)
{
	(void)state;
	parse_bad("", 0, "empty file");
	parse_bad(" \n\t\r", 4, "only white space");
	parse_bad("hello", 5, "not JSON: invalid character 'h' at byte 0");
	parse_bad("{\"a\":1,\"b\":", 11, "not JSON: unexpected end of input at byte 11");
	parse_bad("{'a':1}", 7, "not JSON: expected a string key at byte 1");
	parse_bad("{\"a\":NaN}", 9, "not JSON: invalid character 'N' at byte 5");
	parse_bad("{\"a\":01}", 8, "not JSON: expected ',' or '}' in an object at byte 6");
	parse_bad("{\"a\":1.}", 8, "not JSON: invalid number at byte 7");
	parse_bad("{\"a\":-}", 7, "not JSON: invalid number at byte 6");
	parse_bad("{\"a\":1e}", 8, "not JSON: invalid number at byte 7");
	parse_bad("{\"a\":1,}", 8, "not JSON: expected a string key at byte 7");
	parse_bad("[1,]", 4, "not JSON: invalid character ']' at byte 3");
	parse_bad("{\"a\":1} x", 9, "not JSON: data after the JSON value at byte 8");
	parse_bad("{\"a\":1}{}", 9, "not JSON: data after the JSON value at byte 7");
	parse_bad("{\"a\":tru}", 9, "not JSON: invalid literal at byte 5");
	parse_bad("{\"a\":\"x\x01\"}", 10, "not JSON: control character in a string at byte 7");
	parse_bad("{\"a\":\"\\q\"}", 10, "not JSON: invalid escape in a string at byte 7");
	parse_bad("{\"a\":\"\\u12g4\"}", 14, "not JSON: invalid \\u escape in a string at byte 7");
	parse_bad("\xff\xfe{}", 4, "not JSON: invalid byte 0xff at byte 0");
	parse_bad("\xef\xbb\xbf{}", 5, "not JSON: invalid byte 0xef at byte 0"); /* Go rejects a BOM too */
	parse_bad("{\"a\":1", 6, "not JSON: unexpected end of input at byte 6");
	parse_bad("{\"a\":\"x", 7, "not JSON: unexpected end of input at byte 7");
	parse_bad("{\"a\" 1}", 7, "not JSON: expected ':' after a key at byte 5");
	/* A NUL inside the buffer is not JSON. */
	parse_bad("{\"a\":1}\0", 8, "not JSON: data after the JSON value at byte 7");
	/* Nesting: bounded, reported, no recursion blow-up. */
	char deep[2000];
	size_t n = 0;
	for (int i = 0; i < 600; i++)
		deep[n++] = '[';
	for (int i = 0; i < 600; i++)
		deep[n++] = ']';
	parse_bad(deep, n, "not JSON: nested too deeply at byte 512");
}

static void test_top_level(void **state)
{
	(void)state;
	struct gj_doc doc;
	parse_ok("  {\"a\":1}\n", &doc);
	assert_int_equal(doc.top, json_type_object);
	assert_non_null(doc.root);
	gj_free(&doc);
	parse_ok("[1,{\"b\":[]}]", &doc);
	assert_int_equal(doc.top, json_type_array);
	assert_non_null(doc.root);
	gj_free(&doc);
	const char *scalars[] = { "null", "true", "false", "\"s\"", "-12.5e3", "0" };
	enum json_type types[] = { json_type_null, json_type_boolean, json_type_boolean, json_type_string,
				   json_type_int, json_type_int };
	for (int i = 0; i < 6; i++) {
		parse_ok(scalars[i], &doc);
		assert_int_equal(doc.top, types[i]);
		assert_null(doc.root);
		gj_free(&doc);
	}
	/* Deep but within the bound. */
	char deep[1200];
	size_t n = 0;
	for (int i = 0; i < 500; i++)
		deep[n++] = '[';
	for (int i = 0; i < 500; i++)
		deep[n++] = ']';
	deep[n] = '\0';
	parse_ok(deep, &doc);
	gj_free(&doc);
}

static void test_duplicates(void **state)
{
	(void)state;
	struct gj_doc doc;
	char why[128];
	int64_t v;
	parse_ok("{\"a\":1,\"b\":2,\"a\":3}", &doc);
	assert_string_equal(doc.dup_key, "\"a\"");
	assert_int_equal(gj_get_int(&doc, doc.root, "a", &v, why, sizeof(why)), GJ_OK);
	assert_int_equal(v, 3);
	gj_free(&doc);
	/* Keys equal but for case are duplicates too for Go. */
	parse_ok("{\"x\":{\"Key\":1,\"kEY\":2}}", &doc);
	assert_string_equal(doc.dup_key, "\"kEY\"");
	gj_free(&doc);
	parse_ok("{\"a\":{\"a\":1},\"b\":[{\"a\":1},{\"a\":2}]}", &doc);
	assert_string_equal(doc.dup_key, "");
	gj_free(&doc);
}

static void test_members(void **state)
{
	(void)state;
	struct gj_doc doc;
	char why[128];
	int64_t i64;
	uint64_t u64;
	int b;
	char *s = NULL;
	parse_ok("{\"DEVICE_ID\":7,\"n\":null,\"s\":\"str\",\"t\":true,\"f\":1.5,\"neg\":-3,\"z\":\"a\\u0000b\"}", &doc);
	assert_int_equal(gj_get_int(&doc, doc.root, "device_id", &i64, why, sizeof(why)), GJ_OK);
	assert_int_equal(i64, 7);
	assert_int_equal(gj_get_int(&doc, doc.root, "n", &i64, why, sizeof(why)), GJ_ABSENT);
	assert_int_equal(gj_get_int(&doc, doc.root, "missing", &i64, why, sizeof(why)), GJ_ABSENT);
	assert_int_equal(gj_get_int(&doc, doc.root, "s", &i64, why, sizeof(why)), GJ_BAD);
	assert_string_equal(why, "s: a string, not an integer");
	assert_int_equal(gj_get_int(&doc, doc.root, "f", &i64, why, sizeof(why)), GJ_BAD);
	assert_string_equal(why, "f: not an integer");
	assert_int_equal(gj_get_int(&doc, doc.root, "neg", &i64, why, sizeof(why)), GJ_OK);
	assert_int_equal(i64, -3);
	assert_int_equal(gj_get_u64(&doc, doc.root, "neg", &u64, why, sizeof(why)), GJ_BAD);
	assert_string_equal(why, "neg: negative (-3)");
	assert_int_equal(gj_get_bool(doc.root, "t", &b, why, sizeof(why)), GJ_OK);
	assert_int_equal(b, 1);
	assert_int_equal(gj_get_bool(doc.root, "s", &b, why, sizeof(why)), GJ_BAD);
	assert_string_equal(why, "s: a string, not a boolean");
	assert_int_equal(gj_get_str(doc.root, "s", &s, why, sizeof(why)), GJ_OK);
	assert_string_equal(s, "str");
	free(s);
	assert_int_equal(gj_get_str(doc.root, "t", &s, why, sizeof(why)), GJ_BAD);
	assert_string_equal(why, "t: a boolean, not a string");
	assert_int_equal(gj_get_str(doc.root, "z", &s, why, sizeof(why)), GJ_BAD);
	assert_string_equal(why, "z: contains a NUL character");
	assert_null(gj_member(doc.root, "nothing"));
	assert_null(gj_member(NULL, "x"));
	gj_free(&doc);
}

static void test_integer_ranges(void **state)
{
	(void)state;
	struct gj_doc doc;
	char why[128];
	int64_t i64;
	uint64_t u64;
	parse_ok("{\"max\":18446744073709551615,\"over\":18446744073709551616,\"huge\":99999999999999999999999,"
		 "\"imax\":9223372036854775807,\"imin\":-9223372036854775808,\"under\":-9223372036854775809}",
		 &doc);
	assert_int_equal(gj_get_u64(&doc, doc.root, "max", &u64, why, sizeof(why)), GJ_OK);
	assert_true(u64 == UINT64_MAX);
	assert_int_equal(gj_get_u64(&doc, doc.root, "over", &u64, why, sizeof(why)), GJ_BAD);
	assert_string_equal(why, "over: out of range");
	assert_int_equal(gj_get_u64(&doc, doc.root, "huge", &u64, why, sizeof(why)), GJ_BAD);
	assert_int_equal(gj_get_int(&doc, doc.root, "huge", &i64, why, sizeof(why)), GJ_BAD);
	assert_string_equal(why, "huge: out of range");
	assert_int_equal(gj_get_int(&doc, doc.root, "max", &i64, why, sizeof(why)), GJ_BAD);
	assert_string_equal(why, "max: out of range");
	assert_int_equal(gj_get_int(&doc, doc.root, "imax", &i64, why, sizeof(why)), GJ_OK);
	assert_true(i64 == INT64_MAX);
	assert_int_equal(gj_get_int(&doc, doc.root, "imin", &i64, why, sizeof(why)), GJ_OK);
	assert_true(i64 == INT64_MIN);
	assert_int_equal(gj_get_int(&doc, doc.root, "under", &i64, why, sizeof(why)), GJ_BAD);
	assert_string_equal(why, "under: out of range");
	gj_free(&doc);
}

static void test_labels(void **state)
{
	(void)state;
	struct gj_doc doc;
	char why[160];
	struct dk_label *l;
	size_t n;
	parse_ok("{\"L\":{\"b\":\"2\",\"a\":\"1\",\"c\":null},\"bad\":{\"k\":1},\"arr\":[],\"e\":{}}", &doc);
	assert_int_equal(gj_get_labels(doc.root, "l", 10, &l, &n, why, sizeof(why)), GJ_OK);
	assert_int_equal(n, 3);
	assert_string_equal(l[0].key, "a");
	assert_string_equal(l[0].value, "1");
	assert_string_equal(l[1].key, "b");
	assert_string_equal(l[2].key, "c");
	assert_string_equal(l[2].value, "");
	gj_labels_free(l, n);
	assert_int_equal(gj_get_labels(doc.root, "L", 2, &l, &n, why, sizeof(why)), GJ_BAD);
	assert_string_equal(why, "L: more than 2 entries");
	assert_int_equal(gj_get_labels(doc.root, "bad", 10, &l, &n, why, sizeof(why)), GJ_BAD);
	assert_string_equal(why, "bad: the value of \"k\" is a number, not a string");
	assert_null(l);
	assert_int_equal(gj_get_labels(doc.root, "arr", 10, &l, &n, why, sizeof(why)), GJ_BAD);
	assert_string_equal(why, "arr: an array, not an object");
	assert_int_equal(gj_get_labels(doc.root, "e", 10, &l, &n, why, sizeof(why)), GJ_OK);
	assert_int_equal(n, 0);
	assert_int_equal(gj_get_labels(doc.root, "none", 10, &l, &n, why, sizeof(why)), GJ_ABSENT);
	gj_free(&doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_syntax),
		cmocka_unit_test(test_top_level),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_members),
		cmocka_unit_test(test_integer_ranges),
		cmocka_unit_test(test_labels),
	};
	return cmocka_run_group_tests_name("docker_gojson", tests, NULL, NULL);
}
