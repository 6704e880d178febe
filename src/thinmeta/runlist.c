#include "config.h"
#include "thinmeta/runlist.h"
#include "util/grow.h"

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
	struct tm_run *v = dmr_grow(l->v, &l->cap, l->n, sizeof(*v));
	if (!v)
		return DMR_ENOMEM;
	l->v = v;
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

/* Where a list stands at v: *mapped and the run holding v, or the next
 * run's start (UINT64_MAX: none) as the end of the gap. */
struct cursor {
	const struct tm_runlist *l;
	size_t i;
};

static uint64_t cursor_at(struct cursor *c, uint64_t v, const struct tm_run **run)
{
	while (c->i < c->l->n && c->l->v[c->i].vbegin + c->l->v[c->i].len <= v)
		c->i++;
	if (c->i == c->l->n) {
		*run = NULL;
		return UINT64_MAX;
	}
	const struct tm_run *r = &c->l->v[c->i];
	if (r->vbegin <= v) {
		*run = r;
		return r->vbegin + r->len;
	}
	*run = NULL;
	return r->vbegin;
}

int tm_runlist_diff(const struct tm_runlist *a, const struct tm_runlist *b,
		    int (*fn)(void *ctx, const struct tm_diff_piece *p), void *ctx)
{
	struct cursor ca = { .l = a }, cb = { .l = b };
	struct tm_diff_piece cur;
	int have = 0;
	uint64_t v = 0;
	for (;;) {
		const struct tm_run *ra, *rb;
		uint64_t ea = cursor_at(&ca, v, &ra), eb = cursor_at(&cb, v, &rb);
		uint64_t e = ea < eb ? ea : eb;
		if (e == UINT64_MAX && !ra && !rb)
			break;
		uint64_t da = ra ? ra->dbegin + (v - ra->vbegin) : 0, db = rb ? rb->dbegin + (v - rb->vbegin) : 0;
		int differ = (ra || rb) && !(ra && rb && da == db);
		if (differ) {
			enum tm_diff_kind k = !rb ? TM_DIFF_ONLY_A : !ra ? TM_DIFF_ONLY_B : TM_DIFF_REMAPPED;
			/* Extend the piece when it goes on with the same kind and
			 * contiguous data blocks on both sides. */
			if (have && cur.kind == k && cur.vbegin + cur.len == v &&
			    (!ra || cur.a_dbegin + cur.len == da) && (!rb || cur.b_dbegin + cur.len == db)) {
				cur.len += e - v;
			} else {
				if (have) {
					int r = fn(ctx, &cur);
					if (r)
						return r;
				}
				cur = (struct tm_diff_piece){ .vbegin = v, .len = e - v, .kind = k, .a_dbegin = da,
							      .b_dbegin = db };
				have = 1;
			}
		}
		v = e;
	}
	return have ? fn(ctx, &cur) : 0;
}
