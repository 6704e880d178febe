/* docker/state: a whole Docker root read in one go (everything pointing at
 * everything else), containers/storage roots, BuildKit's database, and the
 * order of the output (sorted, the same on every read). */
#include "unit.h"
#include "dktree.h"

#include <errno.h>
#include <fcntl.h>

#include "docker/state.h"

#define META "devicemapper/metadata/"
#define LDB "image/devicemapper/layerdb/"
#define CONTENT "image/devicemapper/imagedb/content/sha256/"

#define D1 "sha256:f191e625176e7514249870c60bc24622131b04927a418001d1969c9cecd260f1"
#define D2 "sha256:77c7ed05b2e49df2e55d70cb007508cc66b2f5419a940bfd6f8749ba7db77c45"
/* printf 'D1 D2' | sha256sum */
#define C2 "d440fc2ac5bfa225471b58c5d6b4283504f5dfbcd6251023a635cdcd0c058e3e"
#define IMG "{\"config\":{\"Labels\":{\"app\":\"web\"}},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" D1 "\",\"" D2 "\"]}}"
/* printf '%s' IMG | sha256sum */
#define IMG_ID "36848bfea5a33ee00e74f2cb60ff1a93f98d99ddd77757f2ecfb1b9bfbca4303"

/* The same file as the tests of the BuildKit reader use (bbolt-few.txt lists it). */
static void copy_fixture(const char *root, const char *rel, const char *fixture)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", DK_SRCDIR, fixture);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		fail_msg("%s: %s", path, strerror(errno));
	static char buf[1 << 20];
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	assert_true(n > 0);
	dkt_writen(root, rel, buf, (size_t)n);
}

static void make_docker_root(const char *root)
{
	dkt_write(root, META "base", "{\"device_id\":1,\"size\":10737418240,\"transaction_id\":1,\"initialized\":true,"
				     "\"deleted\":false}");
	/* layer 1, layer 2, the container's init and RW devices, a deferred-deleted one */
	dkt_write(root, META HA, "{\"device_id\":2,\"size\":10737418240,\"transaction_id\":2,\"initialized\":false,"
				 "\"deleted\":false}");
	dkt_write(root, META HB, "{\"device_id\":3,\"size\":10737418240,\"transaction_id\":3,\"initialized\":false,"
				 "\"deleted\":false}");
	dkt_write(root, META HC "-init", "{\"device_id\":4,\"size\":10737418240,\"transaction_id\":4,"
					 "\"initialized\":false,\"deleted\":false}");
	dkt_write(root, META HC, "{\"device_id\":5,\"size\":10737418240,\"transaction_id\":5,\"initialized\":false,"
				 "\"deleted\":false}");
	dkt_write(root, META HD, "{\"device_id\":6,\"size\":10737418240,\"transaction_id\":6,\"initialized\":false,"
				 "\"deleted\":true}");
	dkt_write(root, META "deviceset-metadata", "{\"next_device_id\":6,\"BaseDeviceUUID\":\"u\","
						   "\"BaseDeviceFilesystem\":\"xfs\"}");
	dkt_write(root, META "transaction-metadata", "{\"open_transaction_id\":7,\"device_hash\":\"" HD "\","
						     "\"device_id\":6}");
	dkt_mkdir(root, "devicemapper/mnt/" HC);
	dkt_sparse(root, "devicemapper/devicemapper/data", 1 << 20);
	dkt_sparse(root, "devicemapper/devicemapper/metadata", 1 << 20);

	/* chain[0] = diff[0] */
	dkt_write(root, LDB "sha256/f191e625176e7514249870c60bc24622131b04927a418001d1969c9cecd260f1/cache-id", HA);
	dkt_write(root, LDB "sha256/f191e625176e7514249870c60bc24622131b04927a418001d1969c9cecd260f1/diff", D1);
	dkt_write(root, LDB "sha256/f191e625176e7514249870c60bc24622131b04927a418001d1969c9cecd260f1/size", "100");
	dkt_write(root, LDB "sha256/" C2 "/cache-id", HB);
	dkt_write(root, LDB "sha256/" C2 "/diff", D2);
	dkt_write(root, LDB "sha256/" C2 "/parent", D1);
	dkt_write(root, LDB "sha256/" C2 "/size", "200");
	dkt_write(root, LDB "mounts/" H1 "/mount-id", HC);
	dkt_write(root, LDB "mounts/" H1 "/init-id", HC "-init");
	dkt_write(root, LDB "mounts/" H1 "/parent", "sha256:" C2);
	dkt_write(root, CONTENT IMG_ID, IMG);
	dkt_write(root, "image/devicemapper/repositories.json",
		  "{\"Repositories\":{\"web\":{\"web:1\":\"sha256:" IMG_ID "\"}}}");
	dkt_write(root, "containers/" H1 "/config.v2.json",
		  "{\"ID\":\"" H1 "\",\"Name\":\"/web\",\"Image\":\"sha256:" IMG_ID "\",\"Driver\":\"devicemapper\","
		  "\"State\":{\"Running\":false,\"Dead\":false}}");
	copy_fixture(root, "buildkit/snapshots.db", "tests/fixtures/buildkit/bbolt-few.db");
}

static void test_docker_root(void **state)
{
	const char *root = *state;
	make_docker_root(root);
	struct dk_state st;
	dkt_read(root, &st);
	dkt_assert_nr_problems(&st, 0);
	assert_int_equal(st.layout, DK_LAYOUT_DOCKER);
	assert_int_equal(st.nr_files, 6);
	assert_true(st.deviceset.valid);
	assert_true(st.txn.valid);
	assert_int_equal(st.txn.open_transaction_id, 7);
	assert_int_equal(st.nr_transients, 1);
	assert_int_equal(st.transients[0].kind, DK_TRANSIENT_MNT_EMPTY);
	assert_int_equal(st.nr_layers, 2);
	assert_int_equal(st.nr_mounts, 1);
	assert_int_equal(st.nr_images, 1);
	assert_int_equal(st.nr_containers, 1);
	assert_true(st.buildkit_present);
	assert_int_equal(st.nr_buildkit, 3);
	assert_string_equal(st.buildkit[0].key, "00000000000000000017wz7ck");
	assert_string_equal(st.buildkit[1].parent, "00000000000000000017wz7ck");
	assert_int_equal(st.nr_cs_layers, 0);

	/* From the container to its devices and on down the image's layers. */
	const struct dk_container *c = &st.containers[0];
	const struct dk_mount *m = &st.mounts[0];
	assert_string_equal(m->name, c->id);
	const struct dk_devfile *f = dk_state_file_by_hash(&st, m->mount_id);
	assert_non_null(f);
	assert_int_equal(f->device_id, 5);
	f = dk_state_file_by_hash(&st, m->init_id);
	assert_non_null(f);
	assert_int_equal(f->device_id, 4);
	const struct dk_image *im = &st.images[0];
	assert_string_equal(im->id, c->image);
	assert_int_equal(im->nr_tags, 1);
	assert_string_equal(im->tags[0], "web:1");
	assert_string_equal(im->chain_ids[1] + 7, C2);
	assert_string_equal(m->parent, im->chain_ids[1]);
	for (size_t i = 0; i < 2; i++) {
		const struct dk_layer *l = NULL;
		for (size_t k = 0; k < st.nr_layers; k++)
			if (!strcmp(st.layers[k].chain_id, im->chain_ids[i]))
				l = &st.layers[k];
		assert_non_null(l);
		f = dk_state_file_by_hash(&st, l->cache_id);
		assert_non_null(f);
		assert_int_equal(f->device_id, (int64_t)i + 2);
	}
	assert_string_equal(st.layers[0].chain_id, "sha256:" C2); /* sorted by chain id */
	assert_string_equal(st.layers[0].parent, st.layers[1].chain_id);
	/* The pending transaction names the deferred-deleted device. */
	f = dk_state_file_by_device_id(&st, st.txn.device_id);
	assert_non_null(f);
	assert_string_equal(f->hash, st.txn.device_hash);
	assert_true(f->deleted);
	dk_state_free(&st);
}

static void test_sorted_and_stable(void **state)
{
	const char *root = *state;
	make_docker_root(root);
	/* Problems met in reading order: metadata/, mnt/, layerdb, imagedb, containers. */
	dkt_write(root, META "zzz", "not json");
	dkt_write(root, META "aaa", "not json");
	dkt_write(root, "containers/" H2 "/config.v2.json", "[]");
	dkt_write(root, LDB "sha256/bogus", "");
	dkt_write(root, CONTENT "bogus", "");
	dkt_write(root, "devicemapper/mnt/file", "");
	dkt_write(root, META ".tmp1", "");
	dkt_write(root, META ".tmp0", "");
	struct dk_state a, b;
	dkt_read(root, &a);
	dkt_read(root, &b);
	dkt_assert_nr_problems(&a, 6);
	const char *order[] = {
		"containers/" H2 "/config.v2.json",
		META "aaa",
		META "zzz",
		"devicemapper/mnt/file",
		CONTENT "bogus",
		LDB "sha256/bogus",
	};
	for (size_t i = 0; i < 6; i++) {
		assert_string_equal(a.problems[i].path, order[i]);
		assert_string_equal(a.problems[i].path, b.problems[i].path);
		assert_string_equal(a.problems[i].msg, b.problems[i].msg);
	}
	assert_int_equal(a.nr_transients, 3);
	assert_string_equal(a.transients[0].path, META ".tmp0");
	assert_string_equal(a.transients[1].path, META ".tmp1");
	assert_string_equal(a.transients[2].path, "devicemapper/mnt/" HC);
	for (size_t i = 1; i < a.nr_files; i++)
		assert_true(strcmp(a.files[i - 1].hash, a.files[i].hash) < 0);
	for (size_t i = 1; i < a.nr_containers; i++)
		assert_true(strcmp(a.containers[i - 1].id, a.containers[i].id) < 0);
	dk_state_free(&a);
	dk_state_free(&b);
}

static void test_cstorage_root(void **state)
{
	const char *root = *state;
	dkt_write(root, META HA, "{\"device_id\":2,\"size\":10737418240,\"transaction_id\":2,\"initialized\":false,"
				 "\"deleted\":false}");
	dkt_write(root, META "base", "{\"device_id\":1,\"size\":10737418240,\"transaction_id\":1,"
				     "\"initialized\":true,\"deleted\":false}");
	dkt_write(root, "devicemapper-layers/layers.json",
		  "[{\"id\":\"" HB "\",\"parent\":\"" HA "\",\"names\":[\"n\"]},{\"id\":\"" HA "\"}]");
	dkt_write(root, "devicemapper-images/images.json",
		  "[{\"id\":\"" HC "\",\"names\":[\"docker.io/library/busybox:latest\"],\"layer\":\"" HB "\"}]");
	dkt_write(root, "devicemapper-containers/containers.json",
		  "[{\"id\":\"" HD "\",\"names\":[\"web\"],\"image\":\"" HC "\",\"layer\":\"" HE "\"}]");
	struct dk_state st;
	dkt_read(root, &st);
	dkt_assert_nr_problems(&st, 0);
	assert_int_equal(st.layout, DK_LAYOUT_CSTORAGE);
	assert_int_equal(strncmp(st.prefix, "container-", 10), 0);
	assert_int_equal(st.nr_files, 2);
	assert_int_equal(st.nr_cs_layers, 2);
	assert_string_equal(st.cs_layers[0].id, HA); /* sorted */
	assert_string_equal(st.cs_layers[1].id, HB);
	assert_string_equal(st.cs_layers[1].parent, HA);
	assert_int_equal(st.nr_images, 1);
	assert_string_equal(st.images[0].id, HC);
	assert_string_equal(st.images[0].top_layer, HB);
	assert_int_equal(st.nr_containers, 1);
	assert_string_equal(st.containers[0].layer, HE);
	assert_string_equal(st.containers[0].name, "web");
	assert_int_equal(st.nr_layers, 0);
	dk_state_free(&st);

	/* A damaged store: the parser's complaint, at that file. */
	dkt_write(root, "devicemapper-layers/layers.json", "[{\"id\":");
	dkt_write(root, "devicemapper-images/images.json", "{}");
	dkt_read(root, &st);
	assert_int_equal(st.layout, DK_LAYOUT_CSTORAGE);
	dkt_assert_nr_problems(&st, 2);
	assert_string_equal(st.problems[0].path, "devicemapper-images/images.json");
	assert_string_equal(st.problems[1].path, "devicemapper-layers/layers.json");
	assert_int_equal(st.nr_containers, 1);
	dk_state_free(&st);

	dkt_remove(root, "devicemapper-containers/containers.json");
	dkt_symlink(root, "devicemapper-containers/containers.json", "/etc/passwd");
	dkt_read(root, &st);
	dkt_assert_problem(&st, "devicemapper-containers/containers.json",
			   "symlink leading outside the root, not followed (-> \"/etc/passwd\")");
	assert_int_equal(st.nr_containers, 0);
	dk_state_free(&st);
}

static void test_buildkit(void **state)
{
	const char *root = *state;
	dkt_mkdir(root, "devicemapper");
	struct dk_state st;
	dkt_read(root, &st);
	assert_false(st.buildkit_present);
	dk_state_free(&st);

	dkt_write(root, "buildkit/snapshots.db", "not a bbolt file");
	dkt_read(root, &st);
	assert_true(st.buildkit_present);
	assert_int_equal(st.nr_buildkit, 0);
	dkt_assert_nr_problems(&st, 1);
	assert_string_equal(st.problems[0].path, "buildkit/snapshots.db");
	dk_state_free(&st);

	dkt_remove(root, "buildkit/snapshots.db");
	dkt_mkfifo(root, "buildkit/snapshots.db");
	dkt_read(root, &st);
	assert_true(st.buildkit_present);
	dkt_assert_nr_problems(&st, 1);
	dkt_assert_problem(&st, "buildkit/snapshots.db", "a fifo, not a regular file");
	dk_state_free(&st);
}

int main(void)
{
	if (!unit_tmpdir_usable())
		return UNIT_SKIP;
#define T(f) cmocka_unit_test_setup_teardown(f, dkt_setup, dkt_teardown)
	const struct CMUnitTest tests[] = {
		T(test_docker_root),
		T(test_sorted_and_stable),
		T(test_cstorage_root),
		T(test_buildkit),
	};
	return cmocka_run_group_tests_name("docker_state", tests, NULL, NULL);
}
