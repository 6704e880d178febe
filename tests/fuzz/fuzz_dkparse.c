/* Harness: the parsers that work on bytes already read.
 *
 * Input: one selector byte, then the file. Selector % 4: 0 layers.json,
 * 1 images.json, 2 containers.json (containers/storage), 3 BuildKit's
 * snapshots.db (bbolt). The file is handed over in a buffer of exactly its
 * length, without a trailing NUL, so a read past the end is caught. Every
 * string of the result is read back, then freed the way dk_state_free frees
 * a scan's state. */
#include "config.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "docker/parsers.h"
#include "docker/state.h"

static size_t touch(const char *s)
{
	return s ? strlen(s) : 0;
}

static void touch_strv(char *const *v, size_t n)
{
	FUZZ_ASSERT(v || n == 0, "%zu strings but no array", n);
	for (size_t i = 0; i < n; i++) {
		FUZZ_ASSERT(v[i], "string %zu of %zu is NULL", i, n);
		touch(v[i]);
	}
}

static void touch_labels(const struct dk_label *l, size_t n)
{
	FUZZ_ASSERT(l || n == 0, "%zu labels but no array", n);
	for (size_t i = 0; i < n; i++) {
		FUZZ_ASSERT(l[i].key && l[i].value, "label %zu without key or value", i);
		FUZZ_ASSERT(i == 0 || strcmp(l[i - 1].key, l[i].key) < 0, "labels not sorted and unique at %zu", i);
		touch(l[i].value);
	}
}

static void check_result(int r, const struct dmr_err *err, const void *arr, size_t n)
{
	FUZZ_ASSERT(r <= 0, "positive return %d", r);
	FUZZ_ASSERT(r == 0 || err->msg[0], "failure %d without a message", r);
	FUZZ_ASSERT(memchr(err->msg, '\0', sizeof(err->msg)), "unterminated message");
	FUZZ_ASSERT(arr || n == 0, "%zu results but no array", n);
}

static void parse(unsigned which, const char *buf, size_t len)
{
	struct dk_state st;
	struct dmr_err err = { 0 };
	memset(&st, 0, sizeof(st));
	int r;
	switch (which) {
	case 0:
		r = dk_cs_parse_layers(buf, len, &st.cs_layers, &st.nr_cs_layers, &err);
		check_result(r, &err, st.cs_layers, st.nr_cs_layers);
		for (size_t i = 0; i < st.nr_cs_layers; i++) {
			const struct dk_cs_layer *l = &st.cs_layers[i];
			FUZZ_ASSERT(l->id, "layer %zu without an id", i);
			touch(l->id);
			touch(l->parent);
			touch_strv(l->names, l->nr_names);
		}
		break;
	case 1:
		r = dk_cs_parse_images(buf, len, &st.images, &st.nr_images, &err);
		check_result(r, &err, st.images, st.nr_images);
		for (size_t i = 0; i < st.nr_images; i++) {
			const struct dk_image *im = &st.images[i];
			FUZZ_ASSERT(im->id, "image %zu without an id", i);
			touch(im->id);
			touch_strv(im->diff_ids, im->nr_diff_ids);
			if (im->chain_ids)
				touch_strv(im->chain_ids, im->nr_diff_ids);
			touch_strv(im->tags, im->nr_tags);
			touch_labels(im->labels, im->nr_labels);
			touch(im->top_layer);
			touch(im->error);
		}
		break;
	case 2:
		r = dk_cs_parse_containers(buf, len, &st.containers, &st.nr_containers, &err);
		check_result(r, &err, st.containers, st.nr_containers);
		for (size_t i = 0; i < st.nr_containers; i++) {
			const struct dk_container *c = &st.containers[i];
			FUZZ_ASSERT(c->id, "container %zu without an id", i);
			touch(c->id);
			touch(c->name);
			touch(c->image);
			touch(c->driver);
			touch_labels(c->labels, c->nr_labels);
			touch(c->layer);
			touch(c->error);
		}
		break;
	default:
		r = dk_buildkit_parse((const unsigned char *)buf, len, &st.buildkit, &st.nr_buildkit, &err);
		check_result(r, &err, st.buildkit, st.nr_buildkit);
		for (size_t i = 0; i < st.nr_buildkit; i++) {
			const struct dk_buildkit_snapshot *s = &st.buildkit[i];
			FUZZ_ASSERT(s->key, "snapshot %zu without a key", i);
			touch(s->key);
			touch(s->parent);
			touch(s->chain_id);
			touch(s->committed_to);
		}
		break;
	}
	dk_state_free(&st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	size_t len = size - 1;
	/* Exactly len bytes: ASan sees any read past the end. */
	char *buf = malloc(len ? len : 1);
	FUZZ_ASSERT(buf, "out of memory");
	memcpy(buf, data + 1, len);
	parse(data[0] & 3u, buf, len);
	free(buf);
	return 0;
}
