#include "config.h"
#include "thinmeta/mtimes.h"
#include "util/grow.h"

#include <stdlib.h>
#include <string.h>

struct walk {
	struct tm_timehist *out;
	void (*damage)(void *ctx, size_t root, const struct tm_damage *d);
	void *ctx;
};

static int add(struct tm_timehist *h, uint32_t t, uint64_t blocks)
{
	size_t lo = 0, hi = h->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (h->v[mid].time < t)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < h->n && h->v[lo].time == t) {
		h->v[lo].blocks += blocks;
		return 0;
	}
	struct tm_timecount *v = dmr_grow(h->v, &h->cap, h->n, sizeof(*v));
	if (!v)
		return DMR_ENOMEM;
	h->v = v;
	memmove(h->v + lo + 1, h->v + lo, (h->n - lo) * sizeof(*h->v));
	h->v[lo] = (struct tm_timecount){ .time = t, .blocks = blocks };
	h->n++;
	return 0;
}

static int on_run(void *ctx, size_t dev, const struct tm_run *run)
{
	struct walk *w = ctx;
	return add(&w->out[dev], run->time, run->len);
}

static void on_damage(void *ctx, size_t dev, const struct tm_damage *d)
{
	struct walk *w = ctx;
	if (w->damage)
		w->damage(w->ctx, dev, d);
}

int tm_mapping_times(struct tm_pool *p, const uint64_t *roots, size_t n, uint64_t nr_data_blocks,
		     void (*damage)(void *ctx, size_t root, const struct tm_damage *d), void *ctx,
		     struct tm_timehist *out, struct dmr_err *err)
{
	memset(out, 0, n * sizeof(*out));
	struct walk w = { .out = out, .damage = damage, .ctx = ctx };
	struct tm_mapping_visitor v = { .unordered = 1, .run = on_run, .damage = on_damage, .ctx = &w };
	int r = tm_mappings_walk(p, roots, n, nr_data_blocks, &v, err);
	if (r == DMR_ENOMEM)
		return dmr_err_set(err, DMR_ENOMEM, "out of memory counting mapping times");
	return r;
}

uint64_t tm_timehist_since(const struct tm_timehist *h, uint32_t t)
{
	uint64_t s = 0;
	for (size_t i = 0; i < h->n; i++)
		if (h->v[i].time >= t)
			s += h->v[i].blocks;
	return s;
}

void tm_timehist_free(struct tm_timehist *h)
{
	free(h->v);
	memset(h, 0, sizeof(*h));
}
