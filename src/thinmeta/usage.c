#include "config.h"
#include "thinmeta/usage.h"

#include <stdlib.h>
#include <string.h>

struct usage_walk {
	struct tm_usage *u;
	void (*damage)(void *ctx, size_t root, const struct tm_damage *d);
	void *ctx;
};

static int usage_run(void *vctx, size_t root, const struct tm_run *r)
{
	struct usage_walk *w = vctx;
	struct tm_dev_usage *s = &w->u->dev[root];
	s->mapped += r->len;
	if (r->vbegin + r->len > s->highest)
		s->highest = r->vbegin + r->len;
	return tm_datamap_add(&w->u->map, r->dbegin, r->len, (uint32_t)root);
}

static void usage_damage(void *vctx, size_t root, const struct tm_damage *d)
{
	struct usage_walk *w = vctx;
	if (w->damage)
		w->damage(w->ctx, root, d);
}

static void usage_exclusive(void *vctx, uint32_t root, uint64_t b, uint64_t len)
{
	struct tm_usage *u = vctx;
	u->dev[root].exclusive += len;
}

int tm_usage_compute(struct tm_pool *p, const uint64_t *roots, size_t n, uint64_t nr_data_blocks,
		     void (*damage)(void *ctx, size_t root, const struct tm_damage *d), void *ctx,
		     struct tm_usage *out, struct dmr_err *err)
{
	memset(out, 0, sizeof(*out));
	out->n = n;
	out->dev = calloc(n + 1, sizeof(*out->dev));
	if (!out->dev || tm_datamap_init(&out->map, nr_data_blocks)) {
		tm_usage_free(out);
		return dmr_err_set(err, DMR_ENOMEM, "%s: out of memory counting mappings", p->path);
	}
	struct usage_walk w = { .u = out, .damage = damage, .ctx = ctx };
	struct tm_mapping_visitor mv = { .unordered = 1, .run = usage_run, .damage = usage_damage, .ctx = &w };
	int r = tm_mappings_walk(p, roots, n, nr_data_blocks, &mv, err);
	if (r) {
		tm_usage_free(out);
		return r;
	}
	tm_datamap_exclusive_runs(&out->map, usage_exclusive, out);
	return 0;
}

void tm_usage_free(struct tm_usage *u)
{
	tm_datamap_free(&u->map);
	free(u->dev);
	u->dev = NULL;
	u->n = 0;
}
