/* Resolving a forensics command's TARGET (target.c) over a hand-made
 * Docker state: thin ids with and without a file, hashes and "base",
 * containers by name and id prefix and their -init device, images by
 * reference, id prefix, top chain id and --layer, a layer's chain id;
 * ambiguous prefixes, missing device files, options that do not fit. */
#include "unit.h"

#include "dkstate.h"
#include "target.h"

#define HEX(c) c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c
/* 64 hex digits from one repeated 1-character string. */
#define H_L1 HEX("1")     /* cache-id of layer 1 */
#define H_L2 HEX("2")     /* cache-id of layer 2 */
#define H_MNT HEX("3")    /* web's mount-id */
#define H_HOLLOW HEX("4") /* a container whose device file is missing */
#define C_L1 "sha256:" HEX("a")
#define C_L2 "sha256:" HEX("b")

static struct dk_state st;
static char img_id[72], web_id[65], other_id[65], hollow_id[65], init_hash[80];

static int setup(void **state)
{
	(void)state;
	memset(&st, 0, sizeof(st));
	st.layout = DK_LAYOUT_DOCKER;
	/* metadata files sorted by hash, as the reader leaves them */
	add_file(&st, "", 1)->size = 1ull << 30;
	add_file(&st, H_L1, 2);
	add_file(&st, H_L2, 3);
	add_file(&st, H_MNT, 5)->size = 5ull << 30;
	snprintf(init_hash, sizeof(init_hash), "%s-init", H_MNT);
	add_file(&st, init_hash, 4);
	add_layer(&st, C_L1, H_L1, NULL, 0);
	add_layer(&st, C_L2, H_L2, C_L1, 0);
	snprintf(img_id, sizeof(img_id), "sha256:abc%.61s", HEX("c"));
	const char *chains[] = { C_L1, C_L2 };
	const char *tags[] = { "example/app:1.0", "example/app:latest" };
	add_image(&st, img_id, chains, 2, tags, 2);
	snprintf(web_id, sizeof(web_id), "abd%.61s", HEX("e"));
	snprintf(other_id, sizeof(other_id), "abd0%.60s", HEX("f"));
	snprintf(hollow_id, sizeof(hollow_id), "9%.63s", HEX("9"));
	add_container(&st, web_id, "web", img_id);
	add_container(&st, other_id, "other", img_id);
	add_container(&st, hollow_id, "hollow", img_id);
	add_mount(&st, web_id, H_MNT, init_hash, C_L2);
	add_mount(&st, hollow_id, H_HOLLOW, NULL, C_L2);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	dk_state_free(&st);
	return 0;
}

static uint64_t resolve_ok(const char *arg, const struct dmr_target_opts *o, enum dmr_target_kind kind)
{
	struct dmr_target t;
	struct dmr_err err = { 0 };
	int r = dmr_target_resolve(&st, arg, o, &t, &err);
	if (r)
		fail_msg("%s: %s", arg, err.msg);
	assert_int_equal(t.kind, kind);
	return t.thin_id;
}

static void resolve_fails(const struct dk_state *s, const char *arg, const struct dmr_target_opts *o, int code,
			  const char *msg)
{
	struct dmr_target t;
	struct dmr_err err = { 0 };
	assert_int_equal(dmr_target_resolve(s, arg, o, &t, &err), code);
	assert_contains(err.msg, msg);
}

static void test_thin_ids(void **state)
{
	(void)state;
	struct dmr_target t;
	struct dmr_err err = { 0 };
	assert_int_equal(dmr_target_resolve(&st, "3", NULL, &t, &err), 0);
	assert_int_equal(t.kind, DMR_TARGET_THIN_ID);
	assert_int_equal(t.thin_id, 3);
	assert_string_equal(t.hash, H_L2);
	assert_int_equal(t.size, 10ull << 30);
	/* a thin id no file names: no hash, no size; the pool decides */
	assert_int_equal(dmr_target_resolve(&st, "77", NULL, &t, &err), 0);
	assert_null(t.hash);
	assert_int_equal(t.size, 0);
	/* without a Docker root, only thin ids */
	assert_int_equal(dmr_target_resolve(NULL, "7", NULL, &t, &err), 0);
	assert_int_equal(t.thin_id, 7);
	resolve_fails(NULL, "web", NULL, DMR_ENOENT, "no Docker root");
	resolve_fails(&st, "16777216", NULL, DMR_ENOENT, "beyond 24 bits");
	struct dmr_target_opts init = { .init = 1 };
	resolve_fails(&st, "3", &init, DMR_EUSAGE, "are for containers and images");
}

static void test_hashes(void **state)
{
	(void)state;
	assert_int_equal(resolve_ok(H_L1, NULL, DMR_TARGET_HASH), 2);
	assert_int_equal(resolve_ok(init_hash, NULL, DMR_TARGET_HASH), 4);
	struct dmr_target t;
	struct dmr_err err = { 0 };
	assert_int_equal(dmr_target_resolve(&st, "base", NULL, &t, &err), 0);
	assert_int_equal(t.thin_id, 1);
	assert_string_equal(t.hash, "");
	assert_int_equal(t.size, 1ull << 30);
	assert_string_equal(t.what, "device base");
}

static void test_containers(void **state)
{
	(void)state;
	struct dmr_target t;
	struct dmr_err err = { 0 };
	assert_int_equal(dmr_target_resolve(&st, "web", NULL, &t, &err), 0);
	assert_int_equal(t.kind, DMR_TARGET_CONTAINER);
	assert_int_equal(t.thin_id, 5);
	assert_string_equal(t.hash, H_MNT);
	assert_int_equal(t.size, 5ull << 30);
	assert_string_equal(t.what, "container web (abdeeeeeeeee)");
	assert_int_equal(resolve_ok("/web", NULL, DMR_TARGET_CONTAINER), 5);
	assert_int_equal(resolve_ok(web_id, NULL, DMR_TARGET_CONTAINER), 5);
	assert_int_equal(resolve_ok("abde", NULL, DMR_TARGET_CONTAINER), 5);
	struct dmr_target_opts init = { .init = 1 };
	assert_int_equal(resolve_ok("web", &init, DMR_TARGET_CONTAINER), 4);
	/* "abd" starts both container ids; "ab" starts them and the image id */
	resolve_fails(&st, "abd", NULL, DMR_EUSAGE, "more than one container id starts with abd");
	resolve_fails(&st, "ab", NULL, DMR_EUSAGE, "of a container id and of an image id");
	/* other has no mount record, hollow no device file */
	resolve_fails(&st, "other", NULL, DMR_ENOENT, "no mount-id in image/devicemapper/layerdb/mounts/");
	resolve_fails(&st, "hollow", NULL, DMR_ENOENT, "its device file devicemapper/metadata/" H_HOLLOW " is missing");
	resolve_fails(&st, "hollow", &init, DMR_ENOENT, "no init-id");
	struct dmr_target_opts layer = { .layer = 1 };
	resolve_fails(&st, "web", &layer, DMR_EUSAGE, "--layer is for images");
}

static void test_images(void **state)
{
	(void)state;
	struct dmr_target t;
	struct dmr_err err = { 0 };
	assert_int_equal(dmr_target_resolve(&st, "example/app:1.0", NULL, &t, &err), 0);
	assert_int_equal(t.kind, DMR_TARGET_IMAGE);
	assert_int_equal(t.thin_id, 3);
	assert_string_equal(t.what, "image example/app:1.0, layer 2 of 2 (bbbbbbbbbbbb)");
	assert_int_equal(resolve_ok("example/app", NULL, DMR_TARGET_IMAGE), 3); /* :latest */
	assert_int_equal(resolve_ok(img_id, NULL, DMR_TARGET_IMAGE), 3);
	assert_int_equal(resolve_ok("abcc", NULL, DMR_TARGET_IMAGE), 3);
	assert_int_equal(resolve_ok(C_L2, NULL, DMR_TARGET_IMAGE), 3); /* the top chain id names the image */
	struct dmr_target_opts l1 = { .layer = 1 }, l3 = { .layer = 3 }, init = { .init = 1 };
	assert_int_equal(resolve_ok("example/app:1.0", &l1, DMR_TARGET_IMAGE), 2);
	resolve_fails(&st, "example/app:1.0", &l3, DMR_EUSAGE, "has 2 layers: --layer 3 is beyond");
	resolve_fails(&st, "example/app:1.0", &init, DMR_EUSAGE, "--init is for containers");
	/* a lower layer's chain id is a layer of its own */
	assert_int_equal(resolve_ok(C_L1, NULL, DMR_TARGET_LAYER), 2);
	assert_int_equal(resolve_ok(C_L1 + 7, NULL, DMR_TARGET_LAYER), 2);
	resolve_fails(&st, "example/none:1", NULL, DMR_ENOENT, "no thin device, device hash, container, image or layer");
	resolve_fails(&st, "", NULL, DMR_EUSAGE, "an empty TARGET"); /* not the base's hash "" */
}

static void test_cstorage(void **state)
{
	(void)state;
	struct dk_state cs;
	memset(&cs, 0, sizeof(cs));
	cs.layout = DK_LAYOUT_CSTORAGE;
	add_file(&cs, H_L1, 2);
	add_file(&cs, H_MNT, 4);
	const char *chains[] = { C_L1 };
	struct dk_image *im = add_image(&cs, img_id, chains, 1, NULL, 0);
	im->top_layer = xstrdup(H_L1);
	struct dk_container *c = add_container(&cs, web_id, "web", img_id);
	c->layer = xstrdup(H_MNT);
	struct dmr_target t;
	struct dmr_err err = { 0 };
	assert_int_equal(dmr_target_resolve(&cs, "web", NULL, &t, &err), 0);
	assert_int_equal(t.thin_id, 4);
	assert_int_equal(dmr_target_resolve(&cs, "abcc", NULL, &t, &err), 0);
	assert_int_equal(t.thin_id, 2);
	struct dmr_target_opts init = { .init = 1 };
	resolve_fails(&cs, "web", &init, DMR_EUSAGE, "no -init devices");
	dk_state_free(&cs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_thin_ids),
		cmocka_unit_test(test_hashes),
		cmocka_unit_test(test_containers),
		cmocka_unit_test(test_images),
		cmocka_unit_test(test_cstorage),
	};
	return cmocka_run_group_tests_name("target", tests, setup, teardown);
}
