#include "config.h"
#include "thinmeta/runlist.h"

#include <stdlib.h>
#include <string.h>

struct collect {
	struct tm_runlist *out;
	void (*damage)(void *ctx, size_t root, const struct tm_damage *d);
	void *ctx;
};

static int on_run(void *ctx, size_t dev, const struct tm_run *run)
{
	struct collect *c = ctx;
	struct tm_runlist *l = &c->out[dev];
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct tm_run *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return DMR_ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *run;
	l->mapped += run->len;
	if (run->vbegin + run->len > l->end)
		l->end = run->vbegin + run->len;
	return 0;
}

static void on_damage(void *ctx, size_t dev, const struct tm_damage *d)
{
	struct collect *c = ctx;
	if (c->damage)
		c->damage(c->ctx, dev, d);
}

int tm_runlist_collect(struct tm_pool *p, const uint64_t *roots, size_t n, uint64_t nr_data_blocks,
		       void (*damage)(void *ctx, size_t root, const struct tm_damage *d), void *ctx,
		       struct tm_runlist *out, struct dmr_err *err)
{
	memset(out, 0, n * sizeof(*out));
	struct collect c = { .out = out, .damage = damage, .ctx = ctx };
	struct tm_mapping_visitor v = { .run = on_run, .damage = on_damage, .ctx = &c };
	int r = tm_mappings_walk(p, roots, n, nr_data_blocks, &v, err);
	if (r == DMR_ENOMEM)
		return dmr_err_set(err, DMR_ENOMEM, "out of memory collecting mappings");
	return r;
}

void tm_runlist_free(struct tm_runlist *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}
