/* loopfile: allocated extents of sparse files (extents.c), reading a thin
 * device through its mappings (thinread.c), filesystem probes (fsprobe.c).
 *
 * Linked with -Wl,--wrap=lseek: __wrap_lseek can make SEEK_DATA/SEEK_HOLE
 * fail with EINVAL, as on filesystems that do not know them, so the FIEMAP
 * path (and, where FIEMAP is missing too, the assume-allocated path) runs
 * on real files. */
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "builder.h"
#include "loopfile/extents.h"
#include "loopfile/punch.h"
#include "loopfile/fsprobe.h"
#include "loopfile/thinread.h"
#include "thinmeta/pool.h"

off_t __real_lseek(int fd, off_t off, int whence);
off_t __wrap_lseek(int fd, off_t off, int whence);

static int no_seek_data;

off_t __wrap_lseek(int fd, off_t off, int whence)
{
	if (no_seek_data && (whence == SEEK_DATA || whence == SEEK_HOLE)) {
		errno = EINVAL;
		return -1;
	}
	return __real_lseek(fd, off, whence);
}

static const char *tmpdir(void)
{
	const char *t = getenv("TMPDIR");
	return t && *t ? t : "/tmp";
}

/* A new empty temp file in dir (tracked for cleanup); -1 if dir is unusable. */
static int tmp_in(const char *dir, const char *tag, char *path, size_t len)
{
	snprintf(path, len, "%s/dmr-lf-%s-XXXXXX", dir, tag);
	int fd = mkstemp(path);
	if (fd >= 0)
		unit_tmp_track(path);
	return fd;
}

static int tmp_file(const char *tag, char *path, size_t len)
{
	int fd = tmp_in(tmpdir(), tag, path, len);
	if (fd < 0)
		fail_msg("cannot make a temp file in %s", tmpdir());
	return fd;
}

static void write_fill(int fd, uint64_t off, uint64_t len, unsigned char v)
{
	unsigned char buf[65536];
	memset(buf, v, sizeof(buf));
	while (len > 0) {
		size_t n = len < sizeof(buf) ? (size_t)len : sizeof(buf);
		ssize_t k = pwrite(fd, buf, n, (off_t)off);
		assert_int_equal(k, (ssize_t)n);
		off += n;
		len -= n;
	}
}

/* ---- extents ---- */

#define KB 4096ull

struct ranges {
	size_t n;
	uint64_t off[2048], len[2048];
	int fail_at;   /* return fail_rc from call number fail_at (1-based), 0 = never */
	int fail_rc;
	int calls;
};

static int collect(void *ctx, uint64_t off, uint64_t len)
{
	struct ranges *r = ctx;
	r->calls++;
	if (r->fail_at && r->calls >= r->fail_at)
		return r->fail_rc;
	/* ascending, disjoint, never empty */
	assert_true(len > 0);
	if (r->n)
		assert_true(off >= r->off[r->n - 1] + r->len[r->n - 1]);
	/* coalesce adjacent ranges: methods may split where the other does not */
	if (r->n && r->off[r->n - 1] + r->len[r->n - 1] == off) {
		r->len[r->n - 1] += len;
		return 0;
	}
	assert_true(r->n < 2048);
	r->off[r->n] = off;
	r->len[r->n++] = len;
	return 0;
}

/* The reference: every 4 KiB block asked with SEEK_DATA on its own, clipped
 * to [start, end). */
static void reference(int fd, uint64_t start, uint64_t end, struct ranges *ref)
{
	memset(ref, 0, sizeof(*ref));
	for (uint64_t b = start / KB * KB; b < end; b += KB) {
		off_t d = __real_lseek(fd, (off_t)b, SEEK_DATA);
		if (d < 0) {
			assert_int_equal(errno, ENXIO);
			break;
		}
		if ((uint64_t)d != b)
			continue;
		uint64_t a = b < start ? start : b, e = b + KB < end ? b + KB : end;
		collect(ref, a, e - a);
	}
}

static void expect_same(const struct ranges *got, const struct ranges *want, const char *what)
{
	int ok = got->n == want->n;
	for (size_t i = 0; ok && i < got->n; i++)
		ok = got->off[i] == want->off[i] && got->len[i] == want->len[i];
	if (!ok) {
		for (size_t i = 0; i < got->n && i < 20; i++)
			fprintf(stderr, "  got  %llu +%llu\n", (unsigned long long)got->off[i],
				(unsigned long long)got->len[i]);
		for (size_t i = 0; i < want->n && i < 20; i++)
			fprintf(stderr, "  want %llu +%llu\n", (unsigned long long)want->off[i],
				(unsigned long long)want->len[i]);
		fail_msg("%s: %zu ranges, expected %zu", what, got->n, want->n);
	}
}

/* Allocated bytes of ref inside [a, b). */
static uint64_t ref_bytes_in(const struct ranges *ref, uint64_t a, uint64_t b)
{
	uint64_t n = 0;
	for (size_t i = 0; i < ref->n; i++) {
		uint64_t x = ref->off[i] > a ? ref->off[i] : a;
		uint64_t y = ref->off[i] + ref->len[i] < b ? ref->off[i] + ref->len[i] : b;
		if (x < y)
			n += y - x;
	}
	return n;
}

/* 1200 blocks of 4 KiB: data in blocks 0, 16-17, 50, 100-103, 255, every
 * other block of 300-899 (300 extents: more than one FIEMAP batch of 256)
 * and the last block, 1199; holes everywhere else. */
static const uint64_t layout[][2] = { { 0, 1 }, { 16, 2 }, { 50, 1 }, { 100, 4 }, { 255, 1 } };
#define SPARSE_BLOCKS 1200ull

static int make_sparse(char *path, size_t len, const char *dir)
{
	int fd = tmp_in(dir, "sparse", path, len);
	if (fd < 0)
		return -1;
	assert_int_equal(ftruncate(fd, (off_t)(SPARSE_BLOCKS * KB)), 0);
	for (size_t i = 0; i < sizeof(layout) / sizeof(layout[0]); i++)
		write_fill(fd, layout[i][0] * KB, layout[i][1] * KB, (unsigned char)(i + 1));
	for (uint64_t b = 300; b < 900; b += 2)
		write_fill(fd, b * KB, KB, 0x5a);
	write_fill(fd, (SPARSE_BLOCKS - 1) * KB, KB, 0x77);
	assert_int_equal(fsync(fd), 0);
	return fd;
}

/* The ranges the file was written with, clipped. */
static void written(uint64_t start, uint64_t end, struct ranges *w)
{
	memset(w, 0, sizeof(*w));
	uint64_t blocks[400][2];
	size_t n = 0;
	for (size_t i = 0; i < sizeof(layout) / sizeof(layout[0]); i++) {
		blocks[n][0] = layout[i][0];
		blocks[n++][1] = layout[i][1];
	}
	for (uint64_t b = 300; b < 900; b += 2) {
		blocks[n][0] = b;
		blocks[n++][1] = 1;
	}
	blocks[n][0] = SPARSE_BLOCKS - 1;
	blocks[n++][1] = 1;
	for (size_t i = 0; i < n; i++) {
		uint64_t a = blocks[i][0] * KB, e = a + blocks[i][1] * KB;
		if (a < start)
			a = start;
		if (e > end)
			e = end;
		if (a < e)
			collect(w, a, e - a);
	}
}

static const uint64_t windows[][2] = {
	{ 0, SPARSE_BLOCKS * KB },
	{ 0, 1 },
	{ 100, 5000 },
	{ 3 * KB, 16 * KB },         /* a hole only */
	{ 16 * KB + 100, 17 * KB },  /* inside an extent */
	{ 10 * KB, 101 * KB + 7 },   /* ends inside an extent */
	{ 301 * KB, 700 * KB + 1 },
	{ 1000 * KB, 3000 * KB },    /* beyond EOF */
	{ 5000 * KB, 6000 * KB },    /* entirely beyond EOF */
};

static void check_ranges_method(int fd, enum lf_extent_method want_method, const char *what, int exact)
{
	for (size_t i = 0; i < sizeof(windows) / sizeof(windows[0]); i++) {
		uint64_t s = windows[i][0], e = windows[i][1];
		struct ranges got, ref, w;
		memset(&got, 0, sizeof(got));
		enum lf_extent_method m = (enum lf_extent_method)99;
		struct dmr_err err = { 0 };
		int r = lf_allocated_ranges(fd, s, e, collect, &got, &m, &err);
		if (r)
			fail_msg("%s [%llu, %llu): %s", what, (unsigned long long)s, (unsigned long long)e, err.msg);
		assert_int_equal(m, want_method);
		if (want_method == LF_EXT_ASSUME_ALLOCATED) {
			assert_int_equal(got.n, 1);
			assert_int_equal(got.off[0], s);
			assert_int_equal(got.len[0], e - s);
			continue;
		}
		reference(fd, s, e, &ref);
		expect_same(&got, &ref, what);
		if (exact) {
			written(s, e, &w);
			expect_same(&got, &w, what);
		}
	}
	/* An empty window: no call. */
	struct ranges got;
	memset(&got, 0, sizeof(got));
	assert_int_equal(lf_allocated_ranges(fd, 10, 10, collect, &got, NULL, NULL), 0);
	assert_int_equal(lf_allocated_ranges(fd, 10, 5, collect, &got, NULL, NULL), 0);
	assert_int_equal(got.calls, 0);
}

/* Whether the filesystem allocated exactly what was written (4 KiB blocks). */
static int fs_exact(int fd)
{
	struct ranges ref, w;
	reference(fd, 0, SPARSE_BLOCKS * KB, &ref);
	written(0, SPARSE_BLOCKS * KB, &w);
	if (ref.n != w.n)
		return 0;
	for (size_t i = 0; i < ref.n; i++)
		if (ref.off[i] != w.off[i] || ref.len[i] != w.len[i])
			return 0;
	return 1;
}

static void test_extents_seek(void **state)
{
	(void)state;
	char path[4200];
	int fd = make_sparse(path, sizeof(path), tmpdir());
	assert_true(fd >= 0);
	int exact = fs_exact(fd);
	if (!exact)
		fprintf(stderr, "note: %s does not allocate exactly what was written\n", tmpdir());
	check_ranges_method(fd, LF_EXT_SEEK, "SEEK_DATA", exact);
	close(fd);
	unlink(path);
}

static int fiemap_works(int fd)
{
	struct ranges got;
	memset(&got, 0, sizeof(got));
	enum lf_extent_method m;
	no_seek_data = 1;
	int r = lf_allocated_ranges(fd, 0, KB, collect, &got, &m, NULL);
	no_seek_data = 0;
	return r == 0 && m == LF_EXT_FIEMAP;
}

static void test_extents_fiemap(void **state)
{
	(void)state;
	char path[4200];
	int fd = make_sparse(path, sizeof(path), tmpdir());
	assert_true(fd >= 0);
	if (!fiemap_works(fd)) {
		close(fd);
		unlink(path);
		skip();
	}
	int exact = fs_exact(fd);
	no_seek_data = 1;
	check_ranges_method(fd, LF_EXT_FIEMAP, "FIEMAP", exact);
	no_seek_data = 0;
	close(fd);
	unlink(path);
}

/* Neither SEEK_DATA nor FIEMAP (tmpfs has no FIEMAP): the whole window is
 * counted as allocated, never a hole that is not there. */
static void test_extents_assume(void **state)
{
	(void)state;
	char path[4200];
	int fd = make_sparse(path, sizeof(path), "/dev/shm");
	if (fd < 0)
		skip();
	if (fiemap_works(fd)) {
		close(fd);
		unlink(path);
		skip();
	}
	no_seek_data = 1;
	check_ranges_method(fd, LF_EXT_ASSUME_ALLOCATED, "assumed", 0);
	no_seek_data = 0;
	close(fd);
	unlink(path);
}

/* A callback error stops the walk and is an error, by every method; the
 * callback is not called again. */
static void test_extents_callback_error(void **state)
{
	(void)state;
	char path[4200];
	int fd = make_sparse(path, sizeof(path), tmpdir());
	assert_true(fd >= 0);
	int fiemap = fiemap_works(fd);
	static const int rcs[] = { -ECANCELED, -EINVAL, -EOPNOTSUPP, 1 };
	for (int mode = 0; mode < 2; mode++) {
		if (mode == 1 && !fiemap)
			break;
		for (size_t k = 0; k < sizeof(rcs) / sizeof(rcs[0]); k++) {
			struct ranges got;
			memset(&got, 0, sizeof(got));
			got.fail_at = 2;
			got.fail_rc = rcs[k];
			struct dmr_err err = { 0 };
			no_seek_data = mode;
			int r = lf_allocated_ranges(fd, 0, SPARSE_BLOCKS * KB, collect, &got, NULL, &err);
			no_seek_data = 0;
			if (r != DMR_EIO || got.calls != 2)
				fail_msg("%s, callback error %d: returned %d after %d calls",
					 mode ? "FIEMAP" : "SEEK_DATA", rcs[k], r, got.calls);
			assert_contains(err.msg, "finding holes");
		}
	}
	close(fd);
	unlink(path);
}

/* What reclaim and scan use: the occupied bytes of fd inside sorted,
 * disjoint ranges (lf_runs_allocated with no alignment). */
struct lf_ranges {
	const uint64_t *start, *len;
	size_t n;
};

static int lf_allocated_in(int fd, const struct lf_ranges *r, uint64_t *bytes, enum lf_extent_method *m,
			   struct dmr_err *err)
{
	struct lf_runs want = { 0 }, out;
	for (size_t i = 0; i < r->n; i++)
		assert_int_equal(lf_runs_push(&want, r->start[i], r->len[i]), 0);
	int rc = lf_runs_allocated(fd, &want, UINT64_MAX, 1, &out, m, err);
	*bytes = rc ? 0 : out.bytes;
	if (!rc)
		lf_runs_free(&out);
	lf_runs_free(&want);
	return rc;
}

static void check_allocated_in(int fd, const struct ranges *ref, const char *what,
			       enum lf_extent_method want_method)
{
	struct dmr_err err = { 0 };
	uint64_t bytes = 12345;
	enum lf_extent_method m;

	/* No ranges. */
	struct lf_ranges none = { 0 };
	assert_int_equal(lf_allocated_in(fd, &none, &bytes, NULL, &err), 0);
	assert_int_equal(bytes, 0);

	/* Hand-picked: inside, across, around extents, and beyond EOF. */
	static const uint64_t st[] = { 0, 2048, 15 * KB, 17 * KB + 1, 49 * KB, 101 * KB, 255 * KB, 301 * KB,
				       1199 * KB + 4000, 1300 * KB };
	static const uint64_t ln[] = { 1024, 100, 2 * KB, 100, 3 * KB, 2 * KB + 10, KB, 10 * KB, 200, 100 * KB };
	struct lf_ranges rr = { st, ln, sizeof(st) / sizeof(st[0]) };
	uint64_t want = 0;
	for (size_t i = 0; i < rr.n; i++)
		want += ref_bytes_in(ref, st[i], st[i] + ln[i]);
	if (want_method != LF_EXT_ASSUME_ALLOCATED && ref->n == 6 + 300)
		/* exactly as written: 1024 + 100 + KB + 100 + KB + 2KB+10 + KB + 5KB + 96 + 0 */
		assert_int_equal(want, 1024 + 100 + KB + 100 + KB + 2 * KB + 10 + KB + 5 * KB + 96);
	if (want_method == LF_EXT_ASSUME_ALLOCATED) {
		want = 0;
		for (size_t i = 0; i < rr.n; i++)
			want += ln[i];
	}
	assert_int_equal(lf_allocated_in(fd, &rr, &bytes, &m, &err), 0);
	/* FIEMAP comes first where it works (it sees preallocated extents). */
	if (m != want_method && !(m == LF_EXT_FIEMAP && want_method == LF_EXT_SEEK))
		fail_msg("%s: method %d, expected %d", what, (int)m, (int)want_method);
	if (bytes != want)
		fail_msg("%s: %llu bytes, expected %llu", what, (unsigned long long)bytes, (unsigned long long)want);

	/* Random sorted, disjoint ranges. */
	uint64_t seed = 42;
	static uint64_t rs[300], rl[300];
	for (int round = 0; round < 50; round++) {
		size_t n = 1 + unit_rand(&seed) % 300;
		uint64_t pos = unit_rand(&seed) % (64 * KB);
		size_t k = 0;
		for (; k < n; k++) {
			rs[k] = pos;
			rl[k] = 1 + unit_rand(&seed) % (16 * KB);
			pos += rl[k] + unit_rand(&seed) % (8 * KB);
		}
		struct lf_ranges rnd = { rs, rl, k };
		want = 0;
		for (size_t i = 0; i < k; i++)
			want += want_method == LF_EXT_ASSUME_ALLOCATED ? rl[i] : ref_bytes_in(ref, rs[i], rs[i] + rl[i]);
		assert_int_equal(lf_allocated_in(fd, &rnd, &bytes, NULL, &err), 0);
		if (bytes != want)
			fail_msg("%s round %d: %llu bytes, expected %llu", what, round, (unsigned long long)bytes,
				 (unsigned long long)want);
	}
}

static void test_allocated_in(void **state)
{
	(void)state;
	char path[4200];
	int fd = make_sparse(path, sizeof(path), tmpdir());
	assert_true(fd >= 0);
	struct ranges ref;
	reference(fd, 0, 2 * SPARSE_BLOCKS * KB, &ref);
	check_allocated_in(fd, &ref, "SEEK_DATA", LF_EXT_SEEK);
	if (fiemap_works(fd)) {
		no_seek_data = 1;
		check_allocated_in(fd, &ref, "FIEMAP", LF_EXT_FIEMAP);
		no_seek_data = 0;
	}
	close(fd);
	unlink(path);

	fd = make_sparse(path, sizeof(path), "/dev/shm");
	if (fd >= 0) {
		reference(fd, 0, 2 * SPARSE_BLOCKS * KB, &ref);
		check_allocated_in(fd, &ref, "tmpfs SEEK_DATA", LF_EXT_SEEK);
		if (!fiemap_works(fd)) {
			no_seek_data = 1;
			check_allocated_in(fd, &ref, "tmpfs assumed", LF_EXT_ASSUME_ALLOCATED);
			no_seek_data = 0;
		}
		close(fd);
		unlink(path);
	}

	/* A file with no data at all, and an empty file. */
	fd = tmp_file("empty", path, sizeof(path));
	uint64_t bytes = 1;
	static const uint64_t st[] = { 0, 100 * KB };
	static const uint64_t ln[] = { 10 * KB, KB };
	struct lf_ranges rr = { st, ln, 2 };
	assert_int_equal(lf_allocated_in(fd, &rr, &bytes, NULL, NULL), 0);
	assert_int_equal(bytes, 0);
	assert_int_equal(ftruncate(fd, (off_t)(1 << 20)), 0);
	bytes = 1;
	assert_int_equal(lf_allocated_in(fd, &rr, &bytes, NULL, NULL), 0);
	assert_int_equal(bytes, 0);
	close(fd);
	unlink(path);
}

/* ---- a pool and its data file ---- */

struct tpool {
	char path[4096];
	struct tm_pool *p;
	struct tm_devlist devs;
};

static void tpool_open(struct tpool *t, const struct bld *b)
{
	struct dmr_err err = { 0 };
	memset(t, 0, sizeof(*t));
	bld_write_tmp(b, t->path);
	if (tm_pool_open(&t->p, t->path, 0, &err))
		fail_msg("tm_pool_open: %s", err.msg);
	if (tm_devices_read(t->p, &t->p->sb, &t->devs, NULL, NULL, &err))
		fail_msg("tm_devices_read: %s", err.msg);
}

static void tpool_close(struct tpool *t)
{
	tm_devlist_free(&t->devs);
	tm_pool_close(t->p);
	unlink(t->path);
}

static uint64_t root_of(const struct tpool *t, uint64_t id)
{
	const struct tm_device *d = tm_devlist_find(&t->devs, id);
	if (!d || !d->in_mapping)
		fail_msg("no mapping tree for device %llu", (unsigned long long)id);
	return d->mapping_root;
}

/* ---- lf_thin_read ---- */

#define BS 65536ull

static unsigned char pattern(uint64_t dblock, uint64_t off)
{
	return (unsigned char)(dblock * 37u + off * 7u + (off >> 9) + 1u);
}

/* Virtual 0 -> 3, 1 -> 4, 3 -> 1, 5 -> 10 (beyond the data file),
 * 6 -> 7 (half beyond: the file ends 32 KiB into block 7). */
static const struct bld_map tr_maps[] = { { 0, 3, 0 }, { 1, 4, 1 }, { 3, 1, 0 }, { 5, 10, 0 }, { 6, 7, 0 } };
#define TR_DATA_BYTES (7 * BS + 32768)

static uint64_t tr_dblock(uint64_t v, int *mapped)
{
	for (size_t i = 0; i < sizeof(tr_maps) / sizeof(tr_maps[0]); i++)
		if (tr_maps[i].vblock == v) {
			*mapped = 1;
			return tr_maps[i].dblock;
		}
	*mapped = 0;
	return 0;
}

/* none: the device maps nothing (all zeros). */
static void expect_read_dev(struct tm_pool *p, uint64_t root, int none, int fd, uint64_t off, size_t len)
{
	unsigned char *buf = malloc(len + 1);
	assert_non_null(buf);
	memset(buf, 0xee, len + 1);
	struct dmr_err err = { 0 };
	int r = lf_thin_read(p, root, fd, TR_DATA_BYTES, off, buf, len, &err);
	if (r)
		fail_msg("read [%llu, +%zu): %s", (unsigned long long)off, len, err.msg);
	for (size_t i = 0; i < len; i++) {
		uint64_t o = off + i;
		int mapped;
		uint64_t d = tr_dblock(o / BS, &mapped);
		mapped &= !none;
		unsigned char want = mapped ? pattern(d, o % BS) : 0;
		if (buf[i] != want)
			fail_msg("read [%llu, +%zu): byte %llu is %u, expected %u", (unsigned long long)off, len,
				 (unsigned long long)o, buf[i], want);
	}
	assert_int_equal(buf[len], 0xee); /* nothing written past the end */
	free(buf);
}

static void expect_read(struct tm_pool *p, uint64_t root, int fd, uint64_t off, size_t len)
{
	expect_read_dev(p, root, 0, fd, off, len);
}

static void test_thin_read(void **state)
{
	(void)state;
	struct bld b;
	bld_init(&b, 32, 64);
	bld_device(&b, 1, tr_maps, sizeof(tr_maps) / sizeof(tr_maps[0]), 0, 0);
	bld_device(&b, 2, NULL, 0, 0, 0);
	bld_finish(&b);
	struct tpool t;
	tpool_open(&t, &b);
	uint64_t root = root_of(&t, 1);

	char data[4200];
	int fd = tmp_file("data", data, sizeof(data));
	unsigned char *blk = malloc(BS);
	assert_non_null(blk);
	for (uint64_t d = 0; d < 8; d++) {
		for (uint64_t o = 0; o < BS; o++)
			blk[o] = pattern(d, o);
		size_t n = d == 7 ? 32768 : BS;
		assert_int_equal(pwrite(fd, blk, n, (off_t)(d * BS)), (ssize_t)n);
	}
	free(blk);

	expect_read(t.p, root, fd, 0, BS);                /* one whole block */
	expect_read(t.p, root, fd, 60 * 1024, 10 * 1024); /* across 0 -> 1 */
	expect_read(t.p, root, fd, BS - 1, 2);
	expect_read(t.p, root, fd, 100 * 1024, 150 * 1024); /* mapped, unmapped, mapped */
	expect_read(t.p, root, fd, 3 * BS - 10, 20);        /* unmapped -> mapped */
	expect_read(t.p, root, fd, 2 * BS, BS);             /* all unmapped */
	expect_read(t.p, root, fd, 4 * BS + 5, BS - 5);     /* up to v5, not into it */
	expect_read(t.p, root, fd, 6 * BS, 32768);          /* what the file holds of block 7 */
	expect_read(t.p, root, fd, 1000 * BS + 3, 7);       /* far beyond: zeros */
	expect_read(t.p, root, fd, 0, 4 * BS + 1);
	expect_read(t.p, root, fd, 17, 0);                  /* nothing */
	expect_read_dev(t.p, root_of(&t, 2), 1, fd, 0, 3 * BS); /* maps nothing */

	/* Beyond the data: v5 -> 10, past the file; v6's second half. */
	unsigned char buf[256];
	struct dmr_err err = { 0 };
	assert_int_equal(lf_thin_read(t.p, root, fd, TR_DATA_BYTES, 5 * BS, buf, 16, &err), DMR_ECORRUPT);
	assert_contains(err.msg, "virtual block 5 maps to data block 10");
	assert_int_equal(lf_thin_read(t.p, root, fd, TR_DATA_BYTES, 5 * BS - 8, buf, 16, &err), DMR_ECORRUPT);
	assert_contains(err.msg, "data block 10");
	assert_int_equal(lf_thin_read(t.p, root, fd, TR_DATA_BYTES, 6 * BS + 32760, buf, 16, &err),
			 DMR_ECORRUPT);
	assert_contains(err.msg, "virtual block 6 maps to data block 7");
	/* data_bytes is what counts, not the file. */
	assert_int_equal(lf_thin_read(t.p, root, fd, 3 * BS, 0, buf, 16, &err), DMR_ECORRUPT);
	assert_contains(err.msg, "data block 3");
	/* An unreadable data fd. */
	assert_int_equal(lf_thin_read(t.p, root, -1, TR_DATA_BYTES, 0, buf, 16, &err), DMR_EIO);
	assert_contains(err.msg, "reading data block 3");
	/* A damaged tree. */
	assert_int_equal(lf_thin_read(t.p, 31, fd, TR_DATA_BYTES, 0, buf, 16, &err), DMR_ECORRUPT);
	assert_contains(err.msg, "block 31");

	close(fd);
	unlink(data);
	tpool_close(&t);
	bld_free(&b);
}

/* ---- filesystem probes ---- */

#define FS_UUID "0b7c6b4e-5d1a-4b8e-9a3e-2f1c0d9e8a71"

static int have_tool(const char *name)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1 || test -x /sbin/%s || test -x /usr/sbin/%s",
		 name, name, name);
	return system(cmd) == 0;
}

/* Makes a filesystem image of size bytes with mkfs and reads its first
 * LF_PROBE_BYTES into buf. 0 on success. */
static int make_fs(const char *mkfs_cmd, uint64_t size, unsigned char *buf)
{
	char path[4200];
	int fd = tmp_file("fs", path, sizeof(path));
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	char cmd[8600];
	snprintf(cmd, sizeof(cmd), "PATH=\"$PATH:/sbin:/usr/sbin\" %s '%s' >/dev/null 2>&1", mkfs_cmd, path);
	int r = system(cmd);
	if (r == 0)
		assert_int_equal(pread(fd, buf, LF_PROBE_BYTES, 0), (ssize_t)LF_PROBE_BYTES);
	close(fd);
	unlink(path);
	return r == 0 ? 0 : -1;
}

static void expect_fs(const struct lf_fsinfo *fs, const char *type)
{
	if (!fs->found)
		fail_msg("no filesystem found, expected %s", type);
	assert_string_equal(fs->type, type);
	assert_string_equal(fs->uuid, FS_UUID);
	assert_string_equal(fs->label, "lbl");
}

static void expect_fs_same(const struct lf_fsinfo *a, const struct lf_fsinfo *b)
{
	assert_int_equal(a->found, b->found);
	assert_string_equal(a->type, b->type);
	assert_string_equal(a->uuid, b->uuid);
	assert_string_equal(a->label, b->label);
}

/* Devices (64 KiB blocks): 1 and 3 map v0, v1 -> 4, 5 (contiguous);
 * 2 maps v0 -> 9, v1 -> 7; 4 maps nothing; 5 maps only v2 (outside the
 * probe window); 6 maps v0 -> 4, v1 -> 40 (beyond the data file). */
static void probe_through_pool(const unsigned char *img, const char *type)
{
	struct bld b;
	bld_init(&b, 32, 64);
	static const struct bld_map m1[] = { { 0, 4, 0 }, { 1, 5, 0 }, { 7, 20, 0 } };
	static const struct bld_map m2[] = { { 0, 9, 0 }, { 1, 7, 0 } };
	static const struct bld_map m5[] = { { 2, 4, 0 } };
	static const struct bld_map m6[] = { { 0, 4, 0 }, { 1, 40, 0 } };
	bld_device(&b, 1, m1, 3, 0, 0);
	bld_device(&b, 2, m2, 2, 0, 0);
	bld_device(&b, 3, m1, 2, 0, 0);
	bld_device(&b, 4, NULL, 0, 0, 0);
	bld_device(&b, 5, m5, 1, 0, 0);
	bld_device(&b, 6, m6, 2, 0, 0);
	bld_finish(&b);
	struct tpool t;
	tpool_open(&t, &b);

	char data[4200];
	int fd = tmp_file("fsdata", data, sizeof(data));
	const uint64_t data_bytes = 16 * BS;
	assert_int_equal(ftruncate(fd, (off_t)data_bytes), 0);
	assert_int_equal(pwrite(fd, img, BS, (off_t)(4 * BS)), (ssize_t)BS);
	assert_int_equal(pwrite(fd, img + BS, BS, (off_t)(5 * BS)), (ssize_t)BS);
	assert_int_equal(pwrite(fd, img, BS, (off_t)(9 * BS)), (ssize_t)BS);
	assert_int_equal(pwrite(fd, img + BS, BS, (off_t)(7 * BS)), (ssize_t)BS);

	struct lf_prober *pr = NULL;
	struct dmr_err err = { 0 };
	assert_int_equal(lf_prober_new(&pr, t.p, fd, data_bytes, &err), 0);
	struct lf_fsinfo f1, f2, f3, f;
	assert_int_equal(lf_probe_device(pr, root_of(&t, 1), &f1, &err), 0);
	expect_fs(&f1, type);
	assert_int_equal(lf_probe_device(pr, root_of(&t, 2), &f2, &err), 0);
	expect_fs(&f2, type);
	/* Same first blocks as device 1: the cached answer, even once the
	 * bytes are gone from the file. */
	write_fill(fd, 4 * BS, 2 * BS, 0);
	assert_int_equal(lf_probe_device(pr, root_of(&t, 3), &f3, &err), 0);
	expect_fs_same(&f3, &f1);
	/* Nothing mapped in the window. */
	memset(&f, 0x55, sizeof(f));
	assert_int_equal(lf_probe_device(pr, root_of(&t, 4), &f, &err), 0);
	assert_int_equal(f.found, 0);
	assert_string_equal(f.type, "");
	assert_int_equal(lf_probe_device(pr, root_of(&t, 5), &f, &err), 0);
	assert_int_equal(f.found, 0);
	/* A mapping beyond the data file: an error naming the block. */
	assert_int_equal(lf_probe_device(pr, root_of(&t, 6), &f, &err), DMR_ECORRUPT);
	assert_contains(err.msg, "data block 40");
	/* A damaged tree. */
	assert_int_equal(lf_probe_device(pr, 31, &f, &err), DMR_ECORRUPT);
	assert_contains(err.msg, "block 31");
	lf_prober_free(pr);

	/* A new prober reads the zeros now at 4, 5. */
	assert_int_equal(lf_prober_new(&pr, t.p, fd, data_bytes, &err), 0);
	assert_int_equal(lf_probe_device(pr, root_of(&t, 3), &f, &err), 0);
	assert_int_equal(f.found, 0);
	assert_int_equal(lf_probe_device(pr, root_of(&t, 2), &f, &err), 0);
	expect_fs(&f, type);
	lf_prober_free(pr);
	lf_prober_free(NULL);
	close(fd);
	unlink(data);
	tpool_close(&t);
	bld_free(&b);

	/* 128 KiB data blocks: the window is one block. */
	bld_init(&b, 32, 64);
	b.data_block_size = 256;
	static const struct bld_map big[] = { { 0, 3, 0 } };
	static const struct bld_map big2[] = { { 1, 3, 0 } };
	bld_device(&b, 1, big, 1, 0, 0);
	bld_device(&b, 2, big2, 1, 0, 0);
	bld_finish(&b);
	tpool_open(&t, &b);
	fd = tmp_file("fsdata", data, sizeof(data));
	assert_int_equal(pwrite(fd, img, LF_PROBE_BYTES, (off_t)(3 * 2 * BS)), (ssize_t)LF_PROBE_BYTES);
	assert_int_equal(lf_prober_new(&pr, t.p, fd, 4 * 2 * BS, &err), 0);
	assert_int_equal(lf_probe_device(pr, root_of(&t, 1), &f, &err), 0);
	expect_fs(&f, type);
	assert_int_equal(lf_probe_device(pr, root_of(&t, 2), &f, &err), 0);
	assert_int_equal(f.found, 0);
	lf_prober_free(pr);
	close(fd);
	unlink(data);
	tpool_close(&t);
	bld_free(&b);
}

static void probe_fs(const char *tool, const char *args, uint64_t size, const char *type)
{
	if (!have_tool(tool)) {
		fprintf(stderr, "%s not found: skipping\n", tool);
		skip();
	}
	unsigned char *img = malloc(LF_PROBE_BYTES);
	assert_non_null(img);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "%s %s", tool, args);
	if (make_fs(cmd, size, img)) {
		free(img);
		fprintf(stderr, "%s failed: skipping\n", tool);
		skip();
	}
	struct lf_fsinfo fs;
	struct dmr_err err = { 0 };
	assert_int_equal(lf_probe_buffer(img, LF_PROBE_BYTES, &fs, &err), 0);
	expect_fs(&fs, type);
	probe_through_pool(img, type);
	free(img);
}

static void test_probe_ext4(void **state)
{
	(void)state;
	probe_fs("mkfs.ext4", "-F -q -U " FS_UUID " -L lbl", 64ull << 20, "ext4");
}

static void test_probe_xfs(void **state)
{
	(void)state;
	probe_fs("mkfs.xfs", "-f -q -m uuid=" FS_UUID " -L lbl", 320ull << 20, "xfs");
}

static void test_probe_nothing(void **state)
{
	(void)state;
	unsigned char *buf = calloc(1, LF_PROBE_BYTES);
	assert_non_null(buf);
	struct lf_fsinfo fs;
	struct dmr_err err = { 0 };
	memset(&fs, 0x55, sizeof(fs));
	assert_int_equal(lf_probe_buffer(buf, LF_PROBE_BYTES, &fs, &err), 0);
	assert_int_equal(fs.found, 0);
	assert_string_equal(fs.type, "");
	assert_string_equal(fs.uuid, "");
	uint64_t seed = 7;
	for (size_t i = 0; i < LF_PROBE_BYTES; i++)
		buf[i] = (unsigned char)unit_rand(&seed);
	assert_int_equal(lf_probe_buffer(buf, LF_PROBE_BYTES, &fs, &err), 0);
	assert_int_equal(fs.found, 0);
	assert_int_equal(lf_probe_buffer(buf, 0, &fs, &err), 0);
	assert_int_equal(fs.found, 0);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_extents_seek),
		cmocka_unit_test(test_extents_fiemap),
		cmocka_unit_test(test_extents_assume),
		cmocka_unit_test(test_extents_callback_error),
		cmocka_unit_test(test_allocated_in),
		cmocka_unit_test(test_thin_read),
		cmocka_unit_test(test_probe_ext4),
		cmocka_unit_test(test_probe_xfs),
		cmocka_unit_test(test_probe_nothing),
	};
	if (!unit_tmpdir_usable())
		return UNIT_SKIP;
	return cmocka_run_group_tests_name("loopfile", tests, NULL, unit_tmp_cleanup);
}
