/* tm_runlist_diff: the sweep over two devices' mapping runs, against a
 * block-by-block comparison of random run lists; pieces are maximal,
 * ordered, and of one kind with contiguous data blocks. */
#include "unit.h"

#include "thinmeta/runlist.h"

#define NV 300

struct got {
	int64_t map_a[NV], map_b[NV]; /* from the lists: data block or -1 */
	int seen[NV];
	uint64_t next; /* pieces come in order */
	size_t n;
	struct tm_diff_piece last;
};

static int on_piece(void *ctx, const struct tm_diff_piece *p)
{
	struct got *g = ctx;
	assert_true(p->len > 0);
	assert_true(p->vbegin >= g->next);
	if (g->n && g->last.vbegin + g->last.len == p->vbegin && g->last.kind == p->kind) {
		/* adjacent and same kind: must be a data discontinuity */
		int cont_a = p->kind == TM_DIFF_ONLY_B || g->last.a_dbegin + g->last.len == p->a_dbegin;
		int cont_b = p->kind == TM_DIFF_ONLY_A || g->last.b_dbegin + g->last.len == p->b_dbegin;
		assert_false(cont_a && cont_b);
	}
	for (uint64_t k = 0; k < p->len; k++) {
		uint64_t v = p->vbegin + k;
		assert_true(v < NV);
		int64_t a = g->map_a[v], b = g->map_b[v];
		g->seen[v] = 1;
		switch (p->kind) {
		case TM_DIFF_ONLY_A:
			assert_true(a >= 0 && b < 0);
			assert_int_equal(a, p->a_dbegin + k);
			break;
		case TM_DIFF_ONLY_B:
			assert_true(b >= 0 && a < 0);
			assert_int_equal(b, p->b_dbegin + k);
			break;
		case TM_DIFF_REMAPPED:
			assert_true(a >= 0 && b >= 0 && a != b);
			assert_int_equal(a, p->a_dbegin + k);
			assert_int_equal(b, p->b_dbegin + k);
			break;
		}
	}
	g->next = p->vbegin + p->len;
	g->last = *p;
	g->n++;
	return 0;
}

/* Random runs over [0, NV): gaps, and data blocks that often continue
 * the other list's, so that shared stretches occur. */
static void random_list(struct tm_runlist *l, int64_t *map, uint64_t *seed, const int64_t *other)
{
	memset(l, 0, sizeof(*l));
	l->cap = NV;
	l->v = calloc(NV, sizeof(*l->v));
	assert_non_null(l->v);
	for (int i = 0; i < NV; i++)
		map[i] = -1;
	uint64_t v = unit_rand(seed) % 5;
	while (v < NV) {
		uint64_t len = 1 + unit_rand(seed) % 12;
		if (v + len > NV)
			len = NV - v;
		uint64_t d = other && other[v] >= 0 && unit_rand(seed) % 2 ? (uint64_t)other[v] : 1000 + unit_rand(seed) % 5000;
		l->v[l->n++] = (struct tm_run){ .vbegin = v, .dbegin = d, .len = len, .time = (uint32_t)(unit_rand(seed) % 3) };
		for (uint64_t k = 0; k < len; k++)
			map[v + k] = (int64_t)(d + k);
		l->mapped += len;
		l->end = v + len;
		v += len + (unit_rand(seed) % 3 ? 0 : unit_rand(seed) % 8);
	}
}

static void test_random(void **state)
{
	(void)state;
	uint64_t seed = 42;
	for (int round = 0; round < 500; round++) {
		struct got g;
		memset(&g, 0, sizeof(g));
		struct tm_runlist a, b;
		random_list(&a, g.map_a, &seed, NULL);
		random_list(&b, g.map_b, &seed, g.map_a);
		assert_int_equal(tm_runlist_diff(&a, &b, on_piece, &g), 0);
		for (int v = 0; v < NV; v++) {
			int differ = (g.map_a[v] >= 0 || g.map_b[v] >= 0) && g.map_a[v] != g.map_b[v];
			if (differ != g.seen[v])
				fail_msg("round %d, block %d: %s", round, v, differ ? "missed" : "reported but the same");
		}
		tm_runlist_free(&a);
		tm_runlist_free(&b);
	}
}

static int stop(void *ctx, const struct tm_diff_piece *p)
{
	(void)ctx;
	(void)p;
	return 7;
}

static void test_edges(void **state)
{
	(void)state;
	struct got g;
	memset(&g, 0, sizeof(g));
	struct tm_runlist e1 = { 0 }, e2 = { 0 };
	assert_int_equal(tm_runlist_diff(&e1, &e2, on_piece, &g), 0);
	assert_int_equal(g.n, 0);
	/* runs split only by their time are one piece */
	struct tm_run ra[] = { { 0, 10, 5, 1 }, { 5, 15, 5, 2 } };
	struct tm_runlist a = { .v = ra, .n = 2, .mapped = 10, .end = 10 };
	memset(&g, 0, sizeof(g));
	for (int i = 0; i < NV; i++)
		g.map_a[i] = g.map_b[i] = -1;
	for (int i = 0; i < 10; i++)
		g.map_a[i] = 10 + i;
	assert_int_equal(tm_runlist_diff(&a, &e1, on_piece, &g), 0);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.last.len, 10);
	assert_int_equal(g.last.kind, TM_DIFF_ONLY_A);
	/* a stop from the callback is returned */
	assert_int_equal(tm_runlist_diff(&a, &e1, stop, NULL), 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_edges),
	};
	return cmocka_run_group_tests_name("rundiff", tests, NULL, NULL);
}
