/* The block source: batched reads in any order, bounds, read engines. */
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "thinmeta/blocksrc.h"
#include "thinmeta/ondisk.h"

#define NBLOCKS 300u

/* Word k of block b holds b << 16 | k. */
static void fill_block(unsigned char *p, uint64_t b)
{
	for (uint32_t k = 0; k < TM_BLOCK_SIZE / 8; k++)
		tm_put_le64(p + 8u * k, b << 16 | k);
}

static int block_ok(const unsigned char *p, uint64_t b)
{
	for (uint32_t k = 0; k < TM_BLOCK_SIZE / 8; k++)
		if (tm_le64(p + 8u * k) != (b << 16 | k))
			return 0;
	return 1;
}

/* Writes nblocks pattern blocks plus extra bytes into a temp file in dir.
 * Returns -1 when dir is not usable. */
static int make_file(const char *dir, uint64_t nblocks, size_t extra, char *path)
{
	snprintf(path, 4096, "%s/dmr-unit-bs-XXXXXX", dir);
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	unit_tmp_track(path);
	unsigned char *blk = malloc(TM_BLOCK_SIZE);
	assert_non_null(blk);
	int ok = 1;
	for (uint64_t b = 0; b < nblocks && ok; b++) {
		fill_block(blk, b);
		ok = write(fd, blk, TM_BLOCK_SIZE) == (ssize_t)TM_BLOCK_SIZE;
	}
	if (ok && extra) {
		memset(blk, 0xee, extra);
		ok = write(fd, blk, extra) == (ssize_t)extra;
	}
	free(blk);
	if (close(fd) < 0 || !ok) {
		unlink(path);
		return -1;
	}
	return 0;
}

static const char *tmpdir(void)
{
	const char *t = getenv("TMPDIR");
	return t && *t ? t : "/tmp";
}

/* Reads blocks[0..n) and checks every buffer and status. */
static void read_and_check(struct tm_blocksrc *bs, const uint64_t *blocks, size_t n)
{
	unsigned char *bufs = tm_block_alloc(n);
	int *status = malloc((n ? n : 1) * sizeof(*status));
	assert_non_null(bufs);
	assert_non_null(status);
	for (size_t i = 0; i < n; i++)
		status[i] = 12345;
	struct dmr_err err;
	dmr_err_clear(&err);
	assert_int_equal(tm_blocksrc_read_many(bs, blocks, n, bufs, status, &err), 0);
	for (size_t i = 0; i < n; i++) {
		if (blocks[i] >= tm_blocksrc_nr_blocks(bs)) {
			if (status[i] != DMR_ECORRUPT)
				fail_msg("block %llu (beyond the end): status %d", (unsigned long long)blocks[i], status[i]);
			continue;
		}
		if (status[i] != 0)
			fail_msg("block %llu: status %d", (unsigned long long)blocks[i], status[i]);
		if (!block_ok(bufs + i * TM_BLOCK_SIZE, blocks[i]))
			fail_msg("buffer %zu does not hold block %llu (engine %s)", i, (unsigned long long)blocks[i],
				 tm_blocksrc_engine(bs));
	}
	free(bufs);
	free(status);
}

/* Checks buffers and statuses filled by a finished batch. */
static void check_batch(struct tm_blocksrc *bs, const uint64_t *blocks, size_t n,
			const unsigned char *bufs, const int *status)
{
	for (size_t i = 0; i < n; i++) {
		if (blocks[i] >= tm_blocksrc_nr_blocks(bs)) {
			assert_int_equal(status[i], DMR_ECORRUPT);
			continue;
		}
		assert_int_equal(status[i], 0);
		if (!block_ok(bufs + i * TM_BLOCK_SIZE, blocks[i]))
			fail_msg("batch buffer %zu does not hold block %llu (engine %s)", i,
				 (unsigned long long)blocks[i], tm_blocksrc_engine(bs));
	}
}

/* Two batches in flight at once, finished in the other order; small gaps
 * between wanted blocks are read into scratch space, never into the
 * caller's buffers; a batch freed while active is reaped first. */
static void exercise_batches(struct tm_blocksrc *bs)
{
	uint64_t a[120], b[90];
	for (size_t i = 0; i < 120; i++)
		a[i] = (i * 7) % NBLOCKS; /* gaps of 6: bridged */
	for (size_t i = 0; i < 90; i++)
		b[i] = i % 3 ? 299 - 3 * i : NBLOCKS + i; /* gaps of 2, and some beyond the end */
	unsigned char *ba = tm_block_alloc(120 + 1), *bb = tm_block_alloc(90 + 1);
	int sa[120], sb[90];
	assert_non_null(ba);
	assert_non_null(bb);
	/* A guard block after each buffer array must stay untouched. */
	memset(ba + 120 * TM_BLOCK_SIZE, 0xa5, TM_BLOCK_SIZE);
	memset(bb + 90 * TM_BLOCK_SIZE, 0xa5, TM_BLOCK_SIZE);
	struct tm_read_batch *x = tm_read_batch_new(bs), *y = tm_read_batch_new(bs);
	assert_non_null(x);
	assert_non_null(y);
	struct dmr_err err;
	for (int round = 0; round < 3; round++) { /* batches are reusable */
		assert_int_equal(tm_read_batch_start(x, a, 120, ba, sa, &err), 0);
		assert_int_equal(tm_read_batch_start(x, a, 120, ba, sa, &err), DMR_EUSAGE);
		assert_int_equal(tm_read_batch_start(y, b, 90, bb, sb, &err), 0);
		assert_int_equal(tm_read_batch_finish(y, &err), 0);
		assert_int_equal(tm_read_batch_finish(x, &err), 0);
		assert_int_equal(tm_read_batch_finish(x, &err), 0); /* a second finish is a no-op */
		check_batch(bs, a, 120, ba, sa);
		check_batch(bs, b, 90, bb, sb);
		for (size_t k = 0; k < TM_BLOCK_SIZE; k++) {
			assert_int_equal(ba[120 * TM_BLOCK_SIZE + k], 0xa5);
			assert_int_equal(bb[90 * TM_BLOCK_SIZE + k], 0xa5);
		}
	}
	/* Freed while in flight: the reads are reaped before free returns. */
	assert_int_equal(tm_read_batch_start(x, a, 120, ba, sa, &err), 0);
	tm_read_batch_free(x);
	check_batch(bs, a, 120, ba, sa);
	tm_read_batch_free(y);
	free(ba);
	free(bb);
}

/* The read patterns every engine must get right. */
static void exercise(struct tm_blocksrc *bs)
{
	exercise_batches(bs);

	assert_int_equal(tm_blocksrc_nr_blocks(bs), NBLOCKS);

	/* Unsorted, with duplicates (adjacent and not) and blocks beyond the
	 * end mixed in: the call succeeds, only those blocks fail. */
	static const uint64_t mixed[] = { 7, 3, 3, 299, 0, 7, 12, 13, 14, 300, 1000, 11, UINT64_MAX,
					  5, 14, 13, 12, 4, 6, 298, 299, 301, 1, 2 };
	read_and_check(bs, mixed, sizeof(mixed) / sizeof(mixed[0]));

	/* 200 adjacent blocks in shuffled order: runs longer than one request. */
	uint64_t many[200];
	for (size_t i = 0; i < 200; i++)
		many[i] = i;
	uint64_t rs = 5;
	for (size_t i = 199; i > 0; i--) {
		size_t j = (size_t)(unit_rand(&rs) % (i + 1));
		uint64_t t = many[i];
		many[i] = many[j];
		many[j] = t;
	}
	read_and_check(bs, many, 200);

	/* 150 separate runs, descending: more requests than one batch. */
	uint64_t sparse[150];
	for (size_t i = 0; i < 150; i++)
		sparse[i] = 298 - 2 * i;
	read_and_check(bs, sparse, 150);

	/* Every block of the file, twice, plus out-of-range ones. */
	uint64_t all[2 * NBLOCKS + 3];
	for (size_t i = 0; i < NBLOCKS; i++) {
		all[i] = i;
		all[NBLOCKS + i] = NBLOCKS - 1 - i;
	}
	all[2 * NBLOCKS] = NBLOCKS;
	all[2 * NBLOCKS + 1] = NBLOCKS + 64;
	all[2 * NBLOCKS + 2] = 1ull << 52;
	read_and_check(bs, all, 2 * NBLOCKS + 3);

	/* Only out-of-range blocks; and nothing at all. */
	static const uint64_t none[] = { NBLOCKS, NBLOCKS + 1, UINT64_MAX };
	read_and_check(bs, none, 3);
	struct dmr_err err;
	assert_int_equal(tm_blocksrc_read_many(bs, none, 0, NULL, NULL, &err), 0);

	/* Single reads, into an unaligned buffer. */
	unsigned char *raw = malloc(TM_BLOCK_SIZE + 1);
	assert_non_null(raw);
	assert_int_equal(tm_blocksrc_read(bs, 123, raw + 1, &err), 0);
	assert_true(block_ok(raw + 1, 123));
	assert_int_equal(tm_blocksrc_read(bs, NBLOCKS - 1, raw + 1, &err), 0);
	assert_true(block_ok(raw + 1, NBLOCKS - 1));
	dmr_err_clear(&err);
	assert_int_equal(tm_blocksrc_read(bs, NBLOCKS, raw + 1, &err), DMR_ECORRUPT);
	assert_int_equal(err.code, DMR_ECORRUPT);
	assert_contains(err.msg, tm_blocksrc_path(bs));
	assert_contains(err.msg, "300");
	free(raw);
}

struct engine_case {
	const char *env;  /* DMRESCUE_IO, or NULL */
	unsigned flags;
	const char *want; /* exact engine, or NULL for "any that works here" */
};

static void run_engines(const char *dir, int *ran)
{
	char path[4096];
	if (make_file(dir, NBLOCKS, 0, path) < 0) {
		*ran = 0;
		return;
	}
	*ran = 1;
	static const struct engine_case cases[] = {
		{ NULL, 0, "pread" }, /* regular files: the page cache */
		{ NULL, TM_BS_NO_AIO, "pread" },
		{ NULL, TM_BS_NO_DIRECT | TM_BS_NO_AIO, "pread" },
		{ "pread", 0, "pread" },
		{ "aio", 0, NULL },
		{ "aio", TM_BS_NO_AIO, NULL },
		{ "aio", TM_BS_NO_DIRECT, NULL },
	};
	const char *saved = getenv("DMRESCUE_IO");
	char *saved_copy = saved ? strdup(saved) : NULL;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (cases[i].env)
			setenv("DMRESCUE_IO", cases[i].env, 1);
		else
			unsetenv("DMRESCUE_IO");
		struct tm_blocksrc *bs;
		struct dmr_err err;
		int r = tm_blocksrc_open(&bs, path, cases[i].flags, &err);
		if (r)
			fail_msg("open %s (DMRESCUE_IO=%s): %s", path, cases[i].env ? cases[i].env : "", err.msg);
		const char *eng = tm_blocksrc_engine(bs);
		print_message("%s, DMRESCUE_IO=%s flags %u: engine %s\n", dir, cases[i].env ? cases[i].env : "",
			      cases[i].flags, eng);
		if (cases[i].want)
			assert_string_equal(eng, cases[i].want);
		else if (strcmp(eng, "libaio+O_DIRECT") && strcmp(eng, "pread+O_DIRECT") && strcmp(eng, "pread"))
			fail_msg("unknown engine \"%s\"", eng);
		if (cases[i].flags & TM_BS_NO_AIO)
			assert_true(strncmp(eng, "libaio", 6) != 0);
		if (cases[i].flags & TM_BS_NO_DIRECT)
			assert_null(strstr(eng, "O_DIRECT"));
		assert_string_equal(tm_blocksrc_path(bs), path);
		exercise(bs);
		tm_blocksrc_close(bs);
	}
	if (saved_copy)
		setenv("DMRESCUE_IO", saved_copy, 1);
	else
		unsetenv("DMRESCUE_IO");
	free(saved_copy);
	unlink(path);
}

static void test_engines_tmpdir(void **state)
{
	(void)state;
	int ran;
	run_engines(tmpdir(), &ran);
	if (!ran)
		fail_msg("cannot write a temp file in %s", tmpdir());
}

static void test_engines_tmpfs(void **state)
{
	(void)state;
	struct stat st;
	if (stat("/dev/shm", &st) < 0 || !S_ISDIR(st.st_mode) || access("/dev/shm", W_OK) < 0) {
		print_message("no writable /dev/shm here\n");
		skip();
	}
	int ran;
	run_engines("/dev/shm", &ran);
	if (!ran) {
		print_message("cannot write a file in /dev/shm\n");
		skip();
	}
}

static void test_partial_block(void **state)
{
	(void)state;
	char path[4096];
	assert_int_equal(make_file(tmpdir(), 10, 100, path), 0);
	struct tm_blocksrc *bs;
	struct dmr_err err;
	assert_int_equal(tm_blocksrc_open(&bs, path, 0, &err), 0);
	/* The partial block at the end does not count. */
	assert_int_equal(tm_blocksrc_nr_blocks(bs), 10);
	static const uint64_t blocks[] = { 9, 10, 0 };
	read_and_check(bs, blocks, 3);
	unsigned char buf[TM_BLOCK_SIZE];
	assert_int_equal(tm_blocksrc_read(bs, 10, buf, &err), DMR_ECORRUPT);
	tm_blocksrc_close(bs);
	unlink(path);

	/* An empty file has no blocks; every read is beyond the end. */
	assert_int_equal(make_file(tmpdir(), 0, 0, path), 0);
	assert_int_equal(tm_blocksrc_open(&bs, path, 0, &err), 0);
	assert_int_equal(tm_blocksrc_nr_blocks(bs), 0);
	assert_int_equal(tm_blocksrc_read(bs, 0, buf, &err), DMR_ECORRUPT);
	tm_blocksrc_close(bs);
	unlink(path);
}

static void test_open_errors(void **state)
{
	(void)state;
	struct tm_blocksrc *bs = NULL;
	struct dmr_err err;
	assert_int_equal(tm_blocksrc_open(&bs, "/nonexistent/dmr/meta", 0, &err), DMR_EIO);
	assert_contains(err.msg, "/nonexistent/dmr/meta");
	assert_int_equal(tm_blocksrc_open(&bs, tmpdir(), 0, &err), DMR_EIO);
	assert_contains(err.msg, tmpdir());
	tm_blocksrc_close(NULL); /* harmless */
}

static void test_block_alloc(void **state)
{
	(void)state;
	static const size_t ns[] = { 0, 1, 2, 7, 64 };
	for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		unsigned char *p = tm_block_alloc(ns[i]);
		assert_non_null(p);
		assert_int_equal((uintptr_t)p % TM_BLOCK_SIZE, 0);
		size_t n = ns[i] ? ns[i] : 1;
		memset(p, 0x5a, n * TM_BLOCK_SIZE); /* the whole size is usable */
		free(p);
	}
	assert_null(tm_block_alloc(SIZE_MAX / 2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_engines_tmpdir),
		cmocka_unit_test(test_engines_tmpfs),
		cmocka_unit_test(test_partial_block),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_block_alloc),
	};
	if (!unit_tmpdir_usable())
		return UNIT_SKIP;
	return cmocka_run_group_tests_name("blocksrc", tests, NULL, unit_tmp_cleanup);
}
