/* The device-mapper device list. See dmlist.h. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmlist.h"
#include "dmwrap.h"
#include "util/grow.h"

struct dml_device *dml_add(struct dml_list *l, const char *name, dev_t dev, struct dmr_err *err)
{
	struct dml_device *v = dmr_grow(l->v, &l->cap, l->n, sizeof(*v));
	if (!v) {
		dmr_err_set(err, DMR_ENOMEM, "out of memory");
		return NULL;
	}
	l->v = v;
	struct dml_device *d = &v[l->n++];
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->dev = dev;
	d->open_count = -1;
	return d;
}

int dml_add_dep(struct dml_device *d, dev_t dep, struct dmr_err *err)
{
	dev_t *v = dmr_grow(d->deps, &d->cap_deps, d->nr_deps, sizeof(*v));
	if (!v)
		return dmr_err_set(err, DMR_ENOMEM, "out of memory");
	d->deps = v;
	d->deps[d->nr_deps++] = dep;
	return 0;
}

int dml_add_target(struct dml_device *d, uint64_t start, uint64_t length, const char *type,
		   const char *params, struct dmr_err *err)
{
	struct dml_target *v = dmr_grow(d->table, &d->cap_table, d->nr_table, sizeof(*v));
	char *p = strdup(params ? params : "");
	if (!v || !p) {
		free(p);
		if (v)
			d->table = v;
		return dmr_err_set(err, DMR_ENOMEM, "out of memory");
	}
	d->table = v;
	struct dml_target *t = &v[d->nr_table++];
	t->start = start;
	t->length = length;
	snprintf(t->type, sizeof(t->type), "%s", type ? type : "");
	t->params = p;
	return 0;
}

const struct dml_device *dml_find_dev(const struct dml_list *l, dev_t dev)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].dev == dev)
			return &l->v[i];
	return NULL;
}

void dml_free(struct dml_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		struct dml_device *d = &l->v[i];
		for (size_t k = 0; k < d->nr_table; k++)
			free(d->table[k].params);
		free(d->table);
		free(d->deps);
	}
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

int dml_read(struct dml_list *l, struct dmr_err *err)
{
	int r = dmw_list_names(l, err);
	for (size_t i = 0; !r && i < l->n; i++) {
		struct dml_device *d = &l->v[i];
		r = dmw_get_deps(d, err);
		if (!r)
			r = dmw_get_table(d, err);
		if (r == DMR_ENOENT) {
			/* Removed since the listing: what was read stays, and its
			 * name still counts for the guards. */
			d->flags |= DML_GONE;
			r = 0;
		}
	}
	if (r)
		dml_free(l);
	return r;
}
