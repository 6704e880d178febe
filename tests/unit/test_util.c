/* util: number formatting and error messages; the data-block owner map. */
#include "unit.h"

#include <stdlib.h>

#include "thinmeta/datamap.h"
#include "util/err.h"
#include "util/fmt.h"

/* ---- fmt ---- */

static void check_u64(uint64_t v, const char *want)
{
	char buf[32];
	memset(buf, 'x', sizeof(buf));
	size_t n = fmt_u64(buf, v);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(buf, want, n);
	assert_int_equal(buf[n], 'x'); /* no NUL, nothing beyond */
}

static void test_fmt_u64(void **state)
{
	(void)state;
	check_u64(0, "0");
	check_u64(1, "1");
	check_u64(9, "9");
	check_u64(10, "10");
	check_u64(1000000, "1000000");
	check_u64(4294967296ull, "4294967296");
	check_u64(UINT64_MAX, "18446744073709551615");
	check_u64(UINT64_MAX - 1, "18446744073709551614");
	/* Agrees with printf on many values. */
	uint64_t rs = 3;
	for (int i = 0; i < 10000; i++) {
		uint64_t v = unit_rand(&rs) >> (unit_rand(&rs) % 64);
		char want[32], got[32];
		snprintf(want, sizeof(want), "%llu", (unsigned long long)v);
		size_t n = fmt_u64(got, v);
		got[n] = '\0';
		assert_string_equal(got, want);
	}
}

static void test_fmt_str(void **state)
{
	(void)state;
	char buf[16];
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(fmt_str(buf, "abc"), 3);
	assert_memory_equal(buf, "abcx", 4);
	assert_int_equal(fmt_str(buf, ""), 0);
	assert_int_equal(buf[0], 'a');
}

static void check_unit(uint64_t bytes, const char *want)
{
	char buf[32];
	const char *got = fmt_disk_unit(bytes, buf);
	assert_ptr_equal(got, buf);
	if (strcmp(got, want) != 0)
		fail_msg("fmt_disk_unit(%llu) = \"%s\", expected \"%s\"", (unsigned long long)bytes, got, want);
}

static void test_fmt_disk_unit(void **state)
{
	(void)state;
	/* Expected values follow thin_ls (base/disk_units.cc in
	 * thin-provisioning-tools 0.9.0): divide by 1024 while above 1 MiB,
	 * then round to the next unit when above 8 KiB of the current one. */
	check_unit(0, "0");
	check_unit(1, "1");
	check_unit(1023, "1023");
	check_unit(1024, "1024");
	check_unit(8191, "8191");
	check_unit(8192, "8192");           /* 8 KiB: not above 8 KiB */
	check_unit(8193, "8KiB");           /* 8 KiB + 1 rounds to 8 */
	check_unit(8703, "8KiB");           /* 8.499 KiB */
	check_unit(8704, "9KiB");           /* 8.5 KiB rounds half up */
	check_unit(65536, "64KiB");
	check_unit(1048575, "1024KiB");
	check_unit(1048576, "1024KiB");     /* 1 MiB: not above 1 MiB */
	check_unit(1048577, "1024KiB");     /* 1 MiB + 1: /1024 then 1024 KiB */
	check_unit(6553600, "6400KiB");     /* 6.25 MiB */
	check_unit(8388608, "8192KiB");     /* 8 MiB: 8192 KiB is not above 8 KiB */
	check_unit(8389632, "8MiB");        /* 8 MiB + 1 KiB */
	check_unit(39387136, "38MiB");
	check_unit(1073741824ull, "1024MiB"); /* 1 GiB */
	check_unit(8589934592ull, "8192MiB"); /* 8 GiB */
	check_unit(8590983168ull, "8GiB");    /* 8 GiB + 1 MiB */
	check_unit(1099511627776ull, "1024GiB");
	check_unit(UINT64_MAX, "16EiB");
}

/* ---- err ---- */

static void test_err(void **state)
{
	(void)state;
	struct dmr_err err;
	assert_int_equal(dmr_err_set(&err, DMR_ECORRUPT, "block %d: %s", 7, "bad"), DMR_ECORRUPT);
	assert_int_equal(err.code, DMR_ECORRUPT);
	assert_string_equal(err.msg, "block 7: bad");
	assert_int_equal(dmr_err_prefix(&err, "reading %s", "meta"), DMR_ECORRUPT);
	assert_string_equal(err.msg, "reading meta: block 7: bad");
	/* NULL err is allowed: the code comes back. */
	assert_int_equal(dmr_err_set(NULL, DMR_EIO, "x"), DMR_EIO);
	/* Long messages are cut, still terminated. */
	char longs[1000];
	memset(longs, 'a', sizeof(longs) - 1);
	longs[sizeof(longs) - 1] = '\0';
	dmr_err_set(&err, DMR_EIO, "%s", longs);
	assert_int_equal(strlen(err.msg), sizeof(err.msg) - 1);
	dmr_err_prefix(&err, "p");
	assert_int_equal(strlen(err.msg), sizeof(err.msg) - 1);
	assert_memory_equal(err.msg, "p: aaa", 6);
	dmr_err_clear(&err);
	assert_int_equal(err.code, 0);
	assert_string_equal(err.msg, "");
}

/* ---- datamap ---- */

#define CH 16320u

struct runs {
	struct {
		uint32_t dev;
		uint64_t b, len;
	} r[64];
	size_t n;
};

static void collect(void *ctx, uint32_t dev, uint64_t b, uint64_t len)
{
	struct runs *rs = ctx;
	assert_true(rs->n < 64);
	rs->r[rs->n].dev = dev;
	rs->r[rs->n].b = b;
	rs->r[rs->n].len = len;
	rs->n++;
}

static void expect_runs(const struct tm_datamap *m, const uint64_t (*want)[3], size_t n)
{
	struct runs rs = { 0 };
	tm_datamap_exclusive_runs(m, collect, &rs);
	if (rs.n != n) {
		for (size_t i = 0; i < rs.n; i++)
			print_message("run dev %u [%llu, +%llu)\n", rs.r[i].dev, (unsigned long long)rs.r[i].b,
				      (unsigned long long)rs.r[i].len);
		fail_msg("%zu runs, expected %zu", rs.n, n);
	}
	for (size_t i = 0; i < n; i++) {
		if (rs.r[i].dev != want[i][0] || rs.r[i].b != want[i][1] || rs.r[i].len != want[i][2])
			fail_msg("run %zu: dev %u [%llu, +%llu), expected dev %llu [%llu, +%llu)", i, rs.r[i].dev,
				 (unsigned long long)rs.r[i].b, (unsigned long long)rs.r[i].len,
				 (unsigned long long)want[i][0], (unsigned long long)want[i][1],
				 (unsigned long long)want[i][2]);
	}
}

static size_t chunks_allocated(const struct tm_datamap *m)
{
	size_t n = 0;
	for (uint64_t i = 0; i < m->nr_chunks; i++)
		n += m->chunk[i] != NULL;
	return n;
}

static void test_datamap_counts(void **state)
{
	(void)state;
	struct tm_datamap m;
	assert_int_equal(tm_datamap_init(&m, 1000), 0);
	assert_int_equal(m.nr_blocks, 1000);
	assert_int_equal(m.nr_chunks, 1);
	/* Nothing mapped: no runs. */
	expect_runs(&m, NULL, 0);
	/* 0: unmapped. 10-19: dev 1 only. 20-29: devs 1 and 2. 30-39: dev 2,
	 * then one more device at a time: the count saturates at 2 and must
	 * stay there, whatever the number of devices. */
	assert_int_equal(tm_datamap_add(&m, 10, 20, 1), 0);
	assert_int_equal(tm_datamap_add(&m, 20, 20, 2), 0);
	static const uint64_t want0[][3] = { { 1, 10, 10 }, { 2, 30, 10 } };
	expect_runs(&m, want0, 2);
	static const uint64_t want[][3] = { { 1, 10, 10 } };
	for (uint32_t d = 3; d <= 12; d++) {
		assert_int_equal(tm_datamap_add(&m, 30, 10, d), 0);
		expect_runs(&m, want, 1);
	}
	/* len 0 changes nothing. */
	assert_int_equal(tm_datamap_add(&m, 500, 0, 9), 0);
	expect_runs(&m, want, 1);
	/* The last block. */
	tm_datamap_add(&m, 999, 1, 8);
	static const uint64_t want2[][3] = { { 1, 10, 10 }, { 8, 999, 1 } };
	expect_runs(&m, want2, 2);
	tm_datamap_free(&m);
	assert_null(m.chunk);
}

static void test_datamap_runs(void **state)
{
	(void)state;
	struct tm_datamap m;
	assert_int_equal(tm_datamap_init(&m, 1000), 0);
	/* Adjacent runs of different owners stay apart; two adds of one
	 * owner join; a shared block splits an owner's run. */
	tm_datamap_add(&m, 0, 5, 1);
	tm_datamap_add(&m, 5, 5, 1);
	tm_datamap_add(&m, 10, 10, 2);
	tm_datamap_add(&m, 20, 10, 1);
	tm_datamap_add(&m, 25, 1, 3); /* 25 shared by 1 and 3 */
	tm_datamap_add(&m, 40, 3, UINT32_MAX);
	tm_datamap_add(&m, 43, 2, 0);
	static const uint64_t want[][3] = {
		{ 1, 0, 10 }, { 2, 10, 10 }, { 1, 20, 5 }, { 1, 26, 4 }, { UINT32_MAX, 40, 3 }, { 0, 43, 2 },
	};
	expect_runs(&m, want, sizeof(want) / sizeof(want[0]));
	/* Out of order adds give the same result. */
	struct tm_datamap m2;
	assert_int_equal(tm_datamap_init(&m2, 1000), 0);
	tm_datamap_add(&m2, 43, 2, 0);
	tm_datamap_add(&m2, 25, 1, 3);
	tm_datamap_add(&m2, 40, 3, UINT32_MAX);
	tm_datamap_add(&m2, 20, 10, 1);
	tm_datamap_add(&m2, 10, 10, 2);
	tm_datamap_add(&m2, 5, 5, 1);
	tm_datamap_add(&m2, 0, 5, 1);
	expect_runs(&m2, want, sizeof(want) / sizeof(want[0]));
	tm_datamap_free(&m2);
	tm_datamap_free(&m);
}

static void test_datamap_chunks(void **state)
{
	(void)state;
	struct tm_datamap m;
	/* 3 chunks: [0, 16320), [16320, 32640), [32640, 40000). */
	assert_int_equal(tm_datamap_init(&m, 40000), 0);
	assert_int_equal(m.nr_chunks, 3);
	assert_int_equal(chunks_allocated(&m), 0); /* lazy */

	/* One block in the last chunk allocates only that chunk. */
	tm_datamap_add(&m, 39999, 1, 4);
	assert_int_equal(chunks_allocated(&m), 1);
	assert_non_null(m.chunk[2]);
	static const uint64_t w1[][3] = { { 4, 39999, 1 } };
	expect_runs(&m, w1, 1);

	/* A run across the chunk 0/1 boundary: one run, two chunks. */
	tm_datamap_add(&m, CH - 10, 20, 1);
	assert_int_equal(chunks_allocated(&m), 3);
	static const uint64_t w2[][3] = { { 1, CH - 10, 20 }, { 4, 39999, 1 } };
	expect_runs(&m, w2, 2);
	tm_datamap_free(&m);

	/* Runs ending exactly at a boundary and starting exactly at one. */
	assert_int_equal(tm_datamap_init(&m, 3 * CH), 0);
	tm_datamap_add(&m, CH - 1, 1, 7);  /* last block of chunk 0 */
	tm_datamap_add(&m, CH, 1, 7);      /* first block of chunk 1: joins */
	tm_datamap_add(&m, 2 * CH, 1, 7);  /* first of chunk 2: a gap before it */
	static const uint64_t w3[][3] = { { 7, CH - 1, 2 }, { 7, 2 * CH, 1 } };
	expect_runs(&m, w3, 2);
	tm_datamap_free(&m);

	/* A skipped (never allocated) chunk between two owners' blocks. */
	assert_int_equal(tm_datamap_init(&m, 3 * CH), 0);
	tm_datamap_add(&m, CH - 1, 1, 5);
	tm_datamap_add(&m, 2 * CH, 1, 5);
	assert_null(m.chunk[1]);
	static const uint64_t w4[][3] = { { 5, CH - 1, 1 }, { 5, 2 * CH, 1 } };
	expect_runs(&m, w4, 2);
	tm_datamap_free(&m);

	/* Exactly one chunk, and one block more. */
	assert_int_equal(tm_datamap_init(&m, CH), 0);
	assert_int_equal(m.nr_chunks, 1);
	tm_datamap_add(&m, 0, CH, 2);
	static const uint64_t w5[][3] = { { 2, 0, CH } };
	expect_runs(&m, w5, 1);
	tm_datamap_free(&m);
	assert_int_equal(tm_datamap_init(&m, CH + 1), 0);
	assert_int_equal(m.nr_chunks, 2);
	tm_datamap_add(&m, 0, CH + 1, 2);
	static const uint64_t w6[][3] = { { 2, 0, CH + 1 } };
	expect_runs(&m, w6, 1);
	tm_datamap_free(&m);

	/* An empty map; and a huge pool costs nothing until used. */
	assert_int_equal(tm_datamap_init(&m, 0), 0);
	assert_int_equal(m.nr_chunks, 0);
	expect_runs(&m, NULL, 0);
	tm_datamap_free(&m);
	assert_int_equal(tm_datamap_init(&m, 1ull << 32), 0);
	assert_int_equal(m.nr_chunks, ((1ull << 32) + CH - 1) / CH);
	tm_datamap_add(&m, (1ull << 32) - 1, 1, 1);
	assert_int_equal(chunks_allocated(&m), 1);
	static const uint64_t w7[][3] = { { 1, (1ull << 32) - 1, 1 } };
	expect_runs(&m, w7, 1);
	tm_datamap_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fmt_u64),
		cmocka_unit_test(test_fmt_str),
		cmocka_unit_test(test_fmt_disk_unit),
		cmocka_unit_test(test_err),
		cmocka_unit_test(test_datamap_counts),
		cmocka_unit_test(test_datamap_runs),
		cmocka_unit_test(test_datamap_chunks),
	};
	return cmocka_run_group_tests_name("util", tests, NULL, unit_tmp_cleanup);
}
