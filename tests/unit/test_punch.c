/* loopfile/punch: run lists, their intersection with a file's allocated
 * ranges (alignment, limit), discard granules, and punching itself on a
 * real sparse file (holes checked with SEEK_DATA/SEEK_HOLE). */
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "loopfile/punch.h"

#include <linux/fs.h>
#include <stdarg.h>
#include <sys/ioctl.h>

/* --wrap=ioctl: BLKDISCARD calls are recorded (and succeed) while
 * fake_discard is set; everything else goes to the real ioctl. */
int __real_ioctl(int fd, unsigned long req, ...);
int __wrap_ioctl(int fd, unsigned long req, ...);
static int fake_discard;
static uint64_t disc[64][2];
static size_t nr_disc;

int __wrap_ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	if (fake_discard && req == BLKDISCARD) {
		const uint64_t *r = arg;
		if (nr_disc < 64) {
			disc[nr_disc][0] = r[0];
			disc[nr_disc][1] = r[1];
		}
		nr_disc++;
		return 0;
	}
	return __real_ioctl(fd, req, arg);
}

#define BLK 65536u

static void test_push_merges(void **state)
{
	(void)state;
	struct lf_runs r = { 0 };
	assert_int_equal(lf_runs_push(&r, 0, 10), 0);
	assert_int_equal(lf_runs_push(&r, 10, 5), 0);  /* touches: merged */
	assert_int_equal(lf_runs_push(&r, 20, 0), 0);  /* empty: ignored */
	assert_int_equal(lf_runs_push(&r, 30, 7), 0);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.v[0].off, 0);
	assert_int_equal(r.v[0].len, 15);
	assert_int_equal(r.v[1].off, 30);
	assert_int_equal(r.bytes, 22);
	for (uint64_t i = 0; i < 1000; i++) /* growth */
		assert_int_equal(lf_runs_push(&r, 100 + 2 * i, 1), 0);
	assert_int_equal(r.n, 1002);
	lf_runs_free(&r);
	assert_int_equal(r.n, 0);
}

static void test_largest(void **state)
{
	(void)state;
	struct lf_runs r = { 0 };
	uint64_t lens[] = { 3, 9, 1, 9, 5, 2 };
	for (size_t i = 0; i < 6; i++)
		lf_runs_push(&r, 100 * i, lens[i]);
	struct lf_run top[4];
	size_t n;
	lf_runs_largest(&r, top, 4, &n);
	assert_int_equal(n, 4);
	assert_int_equal(top[0].len, 9);
	assert_int_equal(top[0].off, 100); /* ties: the earlier first */
	assert_int_equal(top[1].off, 300);
	assert_int_equal(top[2].len, 5);
	assert_int_equal(top[3].len, 3);
	struct lf_run all[10];
	lf_runs_largest(&r, all, 10, &n);
	assert_int_equal(n, 6);
	assert_int_equal(all[5].len, 1);
	lf_runs_free(&r);
}

/* A 64-block file with data in blocks 0-3, 10, 20-29 and 40-63. */
static int make_file(char *path)
{
	strcpy(path, "/tmp/dmr-test-punch.XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unit_tmp_track(path);
	assert_int_equal(ftruncate(fd, 64 * BLK), 0);
	static unsigned char buf[BLK];
	const int data[][2] = { { 0, 4 }, { 10, 11 }, { 20, 30 }, { 40, 64 } };
	for (size_t k = 0; k < 4; k++)
		for (int b = data[k][0]; b < data[k][1]; b++) {
			memset(buf, 'a' + b % 26, sizeof(buf));
			assert_int_equal(pwrite(fd, buf, BLK, (off_t)b * BLK), (ssize_t)BLK);
		}
	assert_int_equal(fsync(fd), 0);
	return fd;
}

static void want_blocks(struct lf_runs *w, const int (*runs)[2], size_t n)
{
	memset(w, 0, sizeof(*w));
	for (size_t i = 0; i < n; i++)
		assert_int_equal(lf_runs_push(w, (uint64_t)runs[i][0] * BLK, (uint64_t)(runs[i][1] - runs[i][0]) * BLK), 0);
}

static void test_allocated(void **state)
{
	(void)state;
	char path[64];
	int fd = make_file(path);
	/* free: 2-12, 25-45, 60-70 (past the 64-block limit) */
	const int free_runs[][2] = { { 2, 13 }, { 25, 46 }, { 60, 70 } };
	struct lf_runs want, out;
	want_blocks(&want, free_runs, 3);
	struct dmr_err err = { 0 };
	enum lf_extent_method m;
	assert_int_equal(lf_runs_allocated(fd, &want, 64 * BLK, 4096, &out, &m, &err), 0);
	const uint64_t exp[][2] = { { 2, 4 }, { 10, 11 }, { 25, 30 }, { 40, 46 }, { 60, 64 } };
	assert_int_equal(out.n, 5);
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(out.v[i].off, exp[i][0] * BLK);
		assert_int_equal(out.v[i].len, (exp[i][1] - exp[i][0]) * BLK);
	}
	assert_int_equal(out.bytes, (2 + 1 + 5 + 6 + 4) * BLK);

	/* The same, punched: exactly those runs become holes, the rest stays. */
	struct lf_punch_stats st;
	assert_int_equal(lf_punch_probe(fd, path, &err), 0);
	assert_int_equal(lf_punch_runs(fd, 0, NULL, &out, NULL, NULL, &st, path, &err), 0);
	assert_int_equal(st.calls, 5);
	assert_int_equal(st.bytes, out.bytes);
	for (int b = 0; b < 64; b++) {
		int punched = 0;
		for (size_t i = 0; i < 5; i++)
			punched |= (uint64_t)b >= exp[i][0] && (uint64_t)b < exp[i][1];
		int had = b < 4 || b == 10 || (b >= 20 && b < 30) || b >= 40;
		off_t d = lseek(fd, (off_t)b * BLK, SEEK_DATA);
		int is_data = d >= 0 && d < (off_t)(b + 1) * BLK;
		assert_int_equal(is_data, had && !punched);
		if (had && !punched) {
			unsigned char c;
			assert_int_equal(pread(fd, &c, 1, (off_t)b * BLK + 100), 1);
			assert_int_equal(c, 'a' + b % 26);
		}
	}
	struct stat s;
	assert_int_equal(fstat(fd, &s), 0);
	assert_int_equal(s.st_size, 64 * BLK); /* size kept */

	/* Again: nothing allocated is left in the free runs. */
	lf_runs_free(&out);
	assert_int_equal(lf_runs_allocated(fd, &want, 64 * BLK, 4096, &out, &m, &err), 0);
	assert_int_equal(out.n, 0);
	lf_runs_free(&out);

	/* Preallocated (unwritten) extents read as zeros and SEEK_DATA calls
	 * them holes, but they take space on the host: they count. */
	if (fallocate(fd, 0, 12 * BLK, BLK) == 0) {
		struct stat s2;
		assert_int_equal(fstat(fd, &s2), 0);
		if (s2.st_blocks * 512 > s.st_blocks * 512) {
			assert_int_equal(lf_runs_allocated(fd, &want, 64 * BLK, 4096, &out, &m, &err), 0);
			if (m == LF_EXT_FIEMAP) {
				assert_int_equal(out.n, 1);
				assert_int_equal(out.v[0].off, 12 * BLK);
				assert_int_equal(out.v[0].len, BLK);
			}
			lf_runs_free(&out);
		}
	}
	lf_runs_free(&want);
	close(fd);
}

static void test_alignment_and_limit(void **state)
{
	(void)state;
	char path[64];
	int fd = make_file(path);
	struct lf_runs want = { 0 }, out;
	struct dmr_err err = { 0 };
	/* [1000, 11000): only [4096, 8192) is whole 4 KiB blocks */
	lf_runs_push(&want, 1000, 10000);
	/* a run cut by the limit at block 62 + 100 bytes */
	lf_runs_push(&want, 61 * BLK, 3 * BLK);
	assert_int_equal(lf_runs_allocated(fd, &want, 62 * BLK + 100, 4096, &out, NULL, &err), 0);
	assert_int_equal(out.n, 2);
	assert_int_equal(out.v[0].off, 4096);
	assert_int_equal(out.v[0].len, 4096);
	assert_int_equal(out.v[1].off, 61 * BLK);
	assert_int_equal(out.v[1].len, BLK); /* never past the limit, and aligned down */
	lf_runs_free(&out);
	assert_int_equal(lf_runs_allocated(fd, &want, 64 * BLK, 3000, &out, NULL, &err), DMR_EUSAGE);
	lf_runs_free(&want);
	/* nothing wanted: nothing to do */
	assert_int_equal(lf_runs_allocated(fd, &want, 64 * BLK, 4096, &out, NULL, &err), 0);
	assert_int_equal(out.n, 0);
	close(fd);
}

static void test_granular(void **state)
{
	(void)state;
	const uint64_t MiB = 1u << 20;
	struct lf_runs in = { 0 }, out;
	lf_runs_push(&in, 100 * 1024, 3 * MiB - 100 * 1024); /* [100K, 3M) */
	lf_runs_push(&in, 5 * MiB + 10, MiB - 20);            /* inside one granule: dropped */
	lf_runs_push(&in, 8 * MiB, 4 * MiB);
	struct lf_discard d = { .granularity = MiB, .max_bytes = 2 * MiB };
	assert_int_equal(lf_runs_granular(&in, &d, &out), 0);
	assert_int_equal(out.n, 2);
	assert_int_equal(out.v[0].off, MiB);
	assert_int_equal(out.v[0].len, 2 * MiB);
	assert_int_equal(out.v[1].off, 8 * MiB);
	assert_int_equal(out.v[1].len, 4 * MiB);
	lf_runs_free(&out);
	d.alignment = 512 * 1024; /* granules start at 512K + k MiB */
	assert_int_equal(lf_runs_granular(&in, &d, &out), 0);
	assert_int_equal(out.v[0].off, 512 * 1024);
	assert_int_equal(out.v[0].len, 2 * MiB);
	lf_runs_free(&out);
	lf_runs_free(&in);
}

/* Discards are split at max_bytes, in whole granules, one ioctl each. */
static void test_discard_split(void **state)
{
	(void)state;
	const uint64_t MiB = 1u << 20;
	struct lf_discard d = { .granularity = MiB, .max_bytes = 3 * MiB + 4096 };
	struct lf_runs r = { 0 };
	lf_runs_push(&r, 0, 7 * MiB);
	lf_runs_push(&r, 20 * MiB, MiB);
	struct lf_punch_stats st;
	struct dmr_err err = { 0 };
	fake_discard = 1;
	nr_disc = 0;
	assert_int_equal(lf_punch_runs(-1, 1, &d, &r, NULL, NULL, &st, "fake", &err), 0);
	fake_discard = 0;
	assert_int_equal(nr_disc, 4);
	assert_int_equal(st.calls, 4);
	assert_int_equal(st.bytes, 8 * MiB);
	const uint64_t want[4][2] = { { 0, 3 * MiB }, { 3 * MiB, 3 * MiB }, { 6 * MiB, MiB }, { 20 * MiB, MiB } };
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(disc[i][0], want[i][0]);
		assert_int_equal(disc[i][1], want[i][1]);
	}
	lf_runs_free(&r);
}

static void test_not_blockdev(void **state)
{
	(void)state;
	char path[64];
	int fd = make_file(path);
	struct lf_discard d;
	struct dmr_err err = { 0 };
	assert_int_equal(lf_discard_limits("", fd, &d, &err), DMR_EUSAGE);
	/* A device that cannot discard: refused before any call. */
	struct lf_runs r = { 0 };
	lf_runs_push(&r, 0, BLK);
	struct lf_punch_stats st;
	memset(&d, 0, sizeof(d));
	assert_int_equal(lf_punch_runs(fd, 1, &d, &r, NULL, NULL, &st, path, &err), DMR_EUNSUPP);
	assert_contains(err.msg, "does not support discard");
	assert_int_equal(st.calls, 0);
	lf_runs_free(&r);
	close(fd);
}

static void test_union_complement(void **state)
{
	(void)state;
	struct lf_runs a = { 0 }, b = { 0 }, u, c;
	lf_runs_push(&a, 0, 10);
	lf_runs_push(&a, 50, 10);
	lf_runs_push(&b, 10, 5);  /* touches a's first: merged */
	lf_runs_push(&b, 55, 20); /* overlaps a's second */
	lf_runs_push(&b, 100, 1);
	assert_int_equal(lf_runs_union(&a, &b, &u), 0);
	assert_int_equal(u.n, 3);
	assert_int_equal(u.v[0].off, 0);
	assert_int_equal(u.v[0].len, 15);
	assert_int_equal(u.v[1].off, 50);
	assert_int_equal(u.v[1].len, 25);
	assert_int_equal(u.v[2].off, 100);
	assert_int_equal(u.bytes, 15 + 25 + 1);
	assert_int_equal(lf_runs_complement(&u, 90, &c), 0);
	assert_int_equal(c.n, 2); /* [15,50) [75,90): cut at the limit */
	assert_int_equal(c.v[0].off, 15);
	assert_int_equal(c.v[0].len, 35);
	assert_int_equal(c.v[1].off, 75);
	assert_int_equal(c.v[1].len, 15);
	assert_int_equal(c.bytes, 50);
	lf_runs_free(&c);
	struct lf_runs none = { 0 };
	assert_int_equal(lf_runs_complement(&none, 7, &c), 0);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.v[0].len, 7);
	lf_runs_free(&c);
	lf_runs_free(&u);
	lf_runs_free(&a);
	lf_runs_free(&b);
}

struct prog {
	uint64_t calls, last, total;
};

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct prog *p = ctx;
	assert_true(done > p->last);
	p->calls++;
	p->last = done;
	p->total = total;
}

static void test_progress(void **state)
{
	(void)state;
	char path[64];
	int fd = make_file(path);
	struct lf_runs r = { 0 };
	for (int b = 40; b < 64; b += 2)
		lf_runs_push(&r, (uint64_t)b * BLK, BLK);
	struct prog p = { 0 };
	struct lf_punch_stats st;
	struct dmr_err err = { 0 };
	assert_int_equal(lf_punch_runs(fd, 0, NULL, &r, on_progress, &p, &st, path, &err), 0);
	assert_int_equal(p.calls, 12);
	assert_int_equal(p.last, 12 * BLK);
	assert_int_equal(p.total, 12 * BLK);
	lf_runs_free(&r);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_push_merges),
		cmocka_unit_test(test_largest),
		cmocka_unit_test(test_allocated),
		cmocka_unit_test(test_alignment_and_limit),
		cmocka_unit_test(test_granular),
		cmocka_unit_test(test_not_blockdev),
		cmocka_unit_test(test_discard_split),
		cmocka_unit_test(test_progress),
		cmocka_unit_test(test_union_complement),
	};
	if (!unit_tmpdir_usable())
		return UNIT_SKIP;
	return cmocka_run_group_tests_name("punch", tests, NULL, unit_tmp_cleanup);
}
