/* containers/<id>/config.v2.json: which image a container runs, under
 * which name, on which driver, and in which state. Its devices are found
 * through layerdb/mounts/<id>, not here. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker/gojson.h"
#include "docker/scan.h"

void dk_container_clear(struct dk_container *c)
{
	free(c->id);
	free(c->name);
	free(c->image);
	free(c->driver);
	gj_labels_free(c->labels, c->nr_labels);
	free(c->layer);
	free(c->error);
	memset(c, 0, sizeof(*c));
}

/* A string member into *out; wrong types go to err. */
static int get_str(struct json_object *o, const char *key, char **out, char *err, size_t errlen)
{
	char why[DK_MSG_MAX];
	int r = gj_get_str(o, key, out, why, sizeof(why));
	if (r == GJ_BAD)
		dk_first_error(err, errlen, "", why);
	return r < 0 ? r : 0;
}

static void get_state(struct json_object *root, struct dk_container *c, char *err, size_t errlen)
{
	char why[DK_MSG_MAX];
	struct json_object *state = gj_member(root, "State");
	if (!state)
		return;
	if (!json_object_is_type(state, json_type_object)) {
		snprintf(why, sizeof(why), "State: %s, not an object", gj_type_name(json_object_get_type(state)));
		dk_first_error(err, errlen, "", why);
		return;
	}
	static const char *const keys[] = { "Running", "Paused", "Restarting", "Dead", "RemovalInProgress" };
	int *vals[] = { &c->running, &c->paused, &c->restarting, &c->dead, &c->removal_in_progress };
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (gj_get_bool(state, keys[i], vals[i], why, sizeof(why)) == GJ_BAD)
			dk_first_error(err, errlen, "State.", why);
	}
}

static int parse_config(struct dk_scan *s, const char *path, const struct fsr_file *file, struct dk_container *c,
			char *err, size_t errlen)
{
	struct gj_doc doc;
	char why[DK_MSG_MAX];
	int r = gj_parse(file->data, file->len, &doc, err, errlen);
	if (r)
		return r == DMR_ENOMEM ? r : 0;
	if (doc.top != json_type_object) {
		snprintf(err, errlen, "%s, not a JSON object", gj_type_name(doc.top));
		gj_free(&doc);
		return 0;
	}
	char *id = NULL;
	r = get_str(doc.root, "ID", &id, err, errlen);
	if (!r && id && strcmp(id, c->id)) {
		char q[160];
		/* daemon.load: "Container %s is stored at %s" */
		snprintf(why, sizeof(why), "ID is \"%s\", not the directory name: Docker does not load it",
			 fsr_quote(q, sizeof(q), id, 80));
		dk_first_error(err, errlen, "", why);
	} else if (!r && !id) {
		dk_first_error(err, errlen, "", "no ID");
	}
	free(id);
	if (!r)
		r = get_str(doc.root, "Name", &c->name, err, errlen);
	if (!r && c->name && c->name[0] == '/')
		memmove(c->name, c->name + 1, strlen(c->name));
	if (!r)
		r = get_str(doc.root, "Image", &c->image, err, errlen);
	if (!r)
		r = get_str(doc.root, "Driver", &c->driver, err, errlen);
	if (!r)
		get_state(doc.root, c, err, errlen);
	if (!r)
		r = dk_read_labels(doc.root, "Config", &c->labels, &c->nr_labels, err, errlen);
	if (!r && doc.dup_key[0])
		r = dk_problem(s, path, "duplicate key %s (the last one counts, as for Docker)", doc.dup_key);
	gj_free(&doc);
	return r;
}

static int read_container(struct dk_scan *s, const struct fsr_dir *dir, const char *name)
{
	struct dk_state *st = s->st;
	if (DK_GROW(st->containers, s->cap_containers, st->nr_containers + 1))
		return DMR_ENOMEM;
	struct dk_container *c = &st->containers[st->nr_containers++];
	memset(c, 0, sizeof(*c));
	c->id = strdup(name);
	char rel[FSR_PATH_MAX];
	char *path = NULL;
	int r = DMR_ENOMEM;
	if (!c->id || fsr_join(rel, sizeof(rel), name, "config.v2.json") < 0 || !(path = dk_path(dir, rel)))
		goto out;
	struct fsr_file file;
	char err[DK_MSG_MAX] = "", why[DK_MSG_MAX];
	r = dk_read(s, dir, rel, FSR_JSON_MAX, 1, &file, why, sizeof(why));
	if (r < 0)
		goto out;
	if (r) {
		dk_first_error(err, sizeof(err), "config.v2.json: ", why);
		r = 0;
	} else {
		r = parse_config(s, path, &file, c, err, sizeof(err));
		fsr_file_free(&file);
		if (!r && err[0])
			r = dk_problem(s, path, "%s", err);
	}
	if (!r && err[0] && !(c->error = strdup(err)))
		r = DMR_ENOMEM;
out:
	free(path);
	return r;
}

int dk_read_containers(struct dk_scan *s)
{
	struct fsr_dir dir;
	int r = dk_opendir(s, &s->root, DK_CONTAINERS, 0, &dir, NULL, 0);
	if (r)
		return r < 0 ? r : 0;
	struct fsr_list l;
	r = dk_list(s, &dir, "", 1, &l);
	if (r) {
		fsr_closedir(&dir);
		return r < 0 ? r : 0;
	}
	for (size_t i = 0; i < l.n && !r; i++) {
		if (l.e[i].type == S_IFDIR) {
			r = read_container(s, &dir, l.e[i].name);
			continue;
		}
		struct fsr_dir d; /* not a container: the problem says what it is */
		r = dk_opendir(s, &dir, l.e[i].name, 1, &d, NULL, 0);
		if (!r)
			fsr_closedir(&d);
		r = r < 0 ? r : 0;
	}
	fsr_list_free(&l);
	fsr_closedir(&dir);
	return r;
}
