/* The batched data reader: every method (forced), every range covered
 * exactly once with the right bytes, bounds, aborts, and the fallbacks and
 * short or failed reads, injected through the wrapped system calls. */
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <libaio.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loopfile/aioread.h"

#define BLK (64u * 1024u)
#define NBLK 64u
#define FILE_BYTES ((uint64_t)NBLK * BLK)
#define MAGIC 0xa5a5a5a5a5a5a5a5ull

/* ---- injected faults (linked with --wrap) ---- */

static struct {
	int open_direct_einval; /* open(O_DIRECT) fails with EINVAL */
	int pread_direct_einval; /* pread on an O_DIRECT fd fails with EINVAL */
	int pread_short;         /* every pread returns at most half (>= 1 byte) */
	int pread_eio_at;        /* the N-th pread (from 1) fails with EIO */
	int pread_calls;
	int io_setup_ret;        /* io_setup returns this when non-zero */
	int submit_fail_after;   /* io_submit calls after this many return -EAGAIN; -1: never */
	int submit_calls;
	int ev_short_every;      /* every N-th completion is cut to half, 512-aligned */
	int ev_odd_every;        /* every N-th completion is cut to 100 bytes */
	int ev_fail_at;          /* the N-th completion (from 1) gets ev_fail_res */
	long ev_fail_res;
	int ev_calls;
	long ev_max;             /* io_getevents returns at most this many; 0: any */
	unsigned ev_delay_us;    /* sleep before each io_getevents: bigger batches */
	long submitted, reaped; /* reads given to io_submit, events reaped */
} fault;

/* No read may be in flight when lf_read_ranges returns. */
static void assert_idle(void)
{
	if (fault.submitted != fault.reaped)
		fail_msg("%ld reads still in flight", fault.submitted - fault.reaped);
}

static void fault_reset(void)
{
	memset(&fault, 0, sizeof(fault));
	fault.submit_fail_after = -1;
}

int __real_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...);
ssize_t __real_pread(int fd, void *buf, size_t n, off_t off);
ssize_t __wrap_pread(int fd, void *buf, size_t n, off_t off);
int __real_io_setup(int maxevents, io_context_t *ctx);
int __wrap_io_setup(int maxevents, io_context_t *ctx);
int __real_io_submit(io_context_t ctx, long nr, struct iocb *ios[]);
int __wrap_io_submit(io_context_t ctx, long nr, struct iocb *ios[]);
int __real_io_getevents(io_context_t ctx, long min_nr, long nr, struct io_event *ev, struct timespec *t);
int __wrap_io_getevents(io_context_t ctx, long min_nr, long nr, struct io_event *ev, struct timespec *t);

int __wrap_open(const char *path, int flags, ...)
{
	mode_t mode = 0;
	if (flags & O_CREAT) {
		va_list ap;
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	if (fault.open_direct_einval && (flags & O_DIRECT)) {
		errno = EINVAL;
		return -1;
	}
	return __real_open(path, flags, mode);
}

ssize_t __wrap_pread(int fd, void *buf, size_t n, off_t off)
{
	fault.pread_calls++;
	if (fault.pread_direct_einval && (fcntl(fd, F_GETFL) & O_DIRECT)) {
		errno = EINVAL;
		return -1;
	}
	if (fault.pread_eio_at && fault.pread_calls == fault.pread_eio_at) {
		errno = EIO;
		return -1;
	}
	if (fault.pread_short && n > 1)
		n /= 2;
	return __real_pread(fd, buf, n, off);
}

int __wrap_io_setup(int maxevents, io_context_t *ctx)
{
	if (fault.io_setup_ret)
		return fault.io_setup_ret;
	return __real_io_setup(maxevents, ctx);
}

int __wrap_io_submit(io_context_t ctx, long nr, struct iocb *ios[])
{
	if (fault.submit_fail_after >= 0 && fault.submit_calls++ >= fault.submit_fail_after)
		return -EAGAIN;
	/* One at a time, so a queue of many takes several calls. */
	int sub = __real_io_submit(ctx, nr > 3 ? 3 : nr, ios);
	if (sub > 0)
		fault.submitted += sub;
	return sub;
}

int __wrap_io_getevents(io_context_t ctx, long min_nr, long nr, struct io_event *ev, struct timespec *t)
{
	if (fault.ev_delay_us)
		usleep(fault.ev_delay_us);
	if (fault.ev_max && nr > fault.ev_max)
		nr = fault.ev_max;
	if (min_nr > nr)
		min_nr = nr;
	int got = __real_io_getevents(ctx, min_nr, nr, ev, t);
	if (got > 0)
		fault.reaped += got;
	for (int i = 0; i < got; i++) {
		fault.ev_calls++;
		long res = (long)ev[i].res;
		if (fault.ev_fail_at && fault.ev_calls == fault.ev_fail_at)
			ev[i].res = (unsigned long)fault.ev_fail_res;
		else if (fault.ev_short_every && fault.ev_calls % fault.ev_short_every == 0 && res > 512)
			ev[i].res = (unsigned long)(res / 2 / 512 * 512);
		else if (fault.ev_odd_every && fault.ev_calls % fault.ev_odd_every == 0 && res > 100)
			ev[i].res = 100;
	}
	return got;
}

/* ---- the test file: holes, written zeros, data ---- */

enum kind { HOLE, ZEROS, DATA };

static enum kind block_kind(uint64_t b) { return b % 4 == 0 ? HOLE : b % 4 == 1 ? ZEROS : DATA; }

static uint64_t expected_word(uint64_t off)
{
	return block_kind(off / BLK) == DATA ? off ^ MAGIC : 0;
}

static const char *tmpdir(void)
{
	const char *t = getenv("TMPDIR");
	return t && *t ? t : "/tmp";
}

/* Returns -1 when dir is not usable. */
static int make_file(const char *dir, char *path)
{
	snprintf(path, 4096, "%s/dmr-unit-aio-XXXXXX", dir);
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	unit_tmp_track(path);
	int ok = ftruncate(fd, (off_t)FILE_BYTES) == 0;
	unsigned char *blk = malloc(BLK);
	assert_non_null(blk);
	for (uint64_t b = 0; b < NBLK && ok; b++) {
		if (block_kind(b) == HOLE)
			continue;
		for (uint64_t w = 0; w < BLK / 8; w++) {
			uint64_t v = expected_word(b * BLK + 8 * w);
			memcpy(blk + 8 * w, &v, 8);
		}
		ok = pwrite(fd, blk, BLK, (off_t)(b * BLK)) == (ssize_t)BLK;
	}
	free(blk);
	if (close(fd) < 0 || !ok) {
		unlink(path);
		return -1;
	}
	return 0;
}

/* ---- the checking callback ---- */

struct check {
	const struct lf_read_range *rg;
	size_t n;
	size_t chunk;
	uint64_t *bytes;      /* delivered per range */
	uint32_t *sectors;    /* deliveries per 512-byte sector of the file */
	size_t calls;
	size_t stop_after;    /* stop at this call (from 1); 0: never */
	int stop_rc;
	int set_err;          /* fill err when stopping with a negative value */
	char why[256];        /* the first thing that was wrong */
};

static void check_init(struct check *c, const struct lf_read_range *rg, size_t n, size_t chunk)
{
	memset(c, 0, sizeof(*c));
	c->rg = rg;
	c->n = n;
	c->chunk = chunk;
	c->bytes = calloc(n ? n : 1, sizeof(*c->bytes));
	c->sectors = calloc(FILE_BYTES / 512, sizeof(*c->sectors));
	assert_non_null(c->bytes);
	assert_non_null(c->sectors);
}

static void check_free(struct check *c)
{
	free(c->bytes);
	free(c->sectors);
}

static int bad(struct check *c, struct dmr_err *err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int bad(struct check *c, struct dmr_err *err, const char *fmt, ...)
{
	if (!c->why[0]) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(c->why, sizeof(c->why), fmt, ap);
		va_end(ap);
	}
	return dmr_err_set(err, DMR_ECORRUPT, "test callback: %s", c->why);
}

static int check_piece(void *ctx, const struct lf_read_piece *p, struct dmr_err *err)
{
	struct check *c = ctx;
	c->calls++;
	if (p->range >= c->n)
		return bad(c, err, "range index %zu of %zu", p->range, c->n);
	const struct lf_read_range *g = &c->rg[p->range];
	if (p->len == 0 || p->len > c->chunk)
		return bad(c, err, "piece of %zu bytes (chunk %zu)", p->len, c->chunk);
	if (p->off < g->off || p->off + p->len > g->off + g->len)
		return bad(c, err, "piece %llu+%zu outside range %zu (%llu+%llu)", (unsigned long long)p->off, p->len,
			   p->range, (unsigned long long)g->off, (unsigned long long)g->len);
	if (p->off % 512 || p->len % 512)
		return bad(c, err, "unaligned piece %llu+%zu", (unsigned long long)p->off, p->len);
	int zero = 1;
	for (size_t i = 0; i < p->len; i += 8) {
		uint64_t w, want = expected_word(p->off + i);
		memcpy(&w, (const unsigned char *)p->buf + i, 8);
		if (w != want)
			return bad(c, err, "offset %llu: %#llx, want %#llx", (unsigned long long)(p->off + i),
				   (unsigned long long)w, (unsigned long long)want);
		zero &= want == 0;
	}
	if (lf_is_zero(p->buf, p->len) != zero)
		return bad(c, err, "lf_is_zero %d at %llu+%zu", !zero, (unsigned long long)p->off, p->len);
	c->bytes[p->range] += p->len;
	for (uint64_t s = p->off / 512; s < (p->off + p->len) / 512; s++)
		c->sectors[s]++;
	if (c->stop_after && c->calls == c->stop_after) {
		if (c->stop_rc < 0 && c->set_err)
			dmr_err_set(err, c->stop_rc, "test callback stops at %llu", (unsigned long long)p->off);
		return c->stop_rc;
	}
	return 0;
}

/* Every range delivered exactly once: its bytes add up, and every sector
 * was delivered as often as ranges cover it. */
static void check_coverage(const struct check *c)
{
	if (c->why[0])
		fail_msg("%s", c->why);
	uint32_t *want = calloc(FILE_BYTES / 512, sizeof(*want));
	assert_non_null(want);
	for (size_t i = 0; i < c->n; i++) {
		if (c->bytes[i] != c->rg[i].len)
			fail_msg("range %zu (%llu+%llu): %llu bytes delivered", i, (unsigned long long)c->rg[i].off,
				 (unsigned long long)c->rg[i].len, (unsigned long long)c->bytes[i]);
		for (uint64_t s = c->rg[i].off / 512; s < (c->rg[i].off + c->rg[i].len) / 512; s++)
			want[s]++;
	}
	for (uint64_t s = 0; s < FILE_BYTES / 512; s++)
		if (c->sectors[s] != want[s])
			fail_msg("sector %llu delivered %u times, want %u", (unsigned long long)s, c->sectors[s], want[s]);
	free(want);
}

static void read_and_check(struct lf_reader *r, const struct lf_read_range *rg, size_t n)
{
	struct check c;
	struct dmr_err err;
	check_init(&c, rg, n, lf_reader_chunk_size(r));
	int rc = lf_read_ranges(r, rg, n, check_piece, &c, &err);
	assert_idle();
	if (rc)
		fail_msg("lf_read_ranges (%s): %d %s", lf_reader_method(r), rc, err.msg);
	check_coverage(&c);
	check_free(&c);
}

static void shuffle(struct lf_read_range *rg, size_t n, uint64_t seed)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)(unit_rand(&seed) % i);
		struct lf_read_range t = rg[i - 1];
		rg[i - 1] = rg[j];
		rg[j] = t;
	}
}

/* The range sets every method must get right. */
static void exercise(struct lf_reader *r)
{
	assert_int_equal(lf_reader_size(r), FILE_BYTES);

	/* Every block on its own, shuffled. */
	struct lf_read_range blocks[NBLK];
	for (uint64_t b = 0; b < NBLK; b++)
		blocks[b] = (struct lf_read_range){ b * BLK, BLK };
	shuffle(blocks, NBLK, 1);
	read_and_check(r, blocks, NBLK);

	/* The whole file in one range: split into chunks. */
	struct lf_read_range whole = { 0, FILE_BYTES };
	read_and_check(r, &whole, 1);

	/* Small, adjacent (joined into one read), repeated, overlapping and
	 * empty ranges, unsorted; the last sector of the file. */
	static const struct lf_read_range mixed[] = {
		{ 5 * BLK + 512, 1024 }, { 0, 512 }, { 512, 512 }, { 1024, 3 * BLK },
		{ 2 * BLK, BLK + 4096 }, { 0, 512 }, { 7 * BLK, 0 }, { 9 * BLK, 2 * BLK },
		{ 11 * BLK, 512 }, { 11 * BLK + 512, 0 }, { 11 * BLK + 512, BLK }, { FILE_BYTES - 512, 512 },
		{ FILE_BYTES, 0 }, { 5 * BLK, 512 },
	};
	read_and_check(r, mixed, sizeof(mixed) / sizeof(mixed[0]));

	/* Nothing at all. */
	struct dmr_err err;
	assert_int_equal(lf_read_ranges(r, NULL, 0, check_piece, NULL, &err), 0);
}

/* 10000 random ranges (sector-aligned, 512 bytes to 20 KiB), unsorted. */
static struct lf_read_range *random_ranges(size_t n, uint64_t seed)
{
	struct lf_read_range *rg = malloc(n * sizeof(*rg));
	assert_non_null(rg);
	for (size_t i = 0; i < n; i++) {
		uint64_t len = 512 * (1 + unit_rand(&seed) % 40);
		uint64_t off = 512 * (unit_rand(&seed) % ((FILE_BYTES - len) / 512 + 1));
		rg[i] = (struct lf_read_range){ off, len };
	}
	return rg;
}

struct method_case {
	const char *env; /* DMRESCUE_IO, or NULL */
	unsigned flags;
};

static const struct method_case method_cases[] = {
	{ NULL, 0 },
	{ NULL, LF_READ_NO_AIO },
	{ NULL, LF_READ_NO_DIRECT },
	{ NULL, LF_READ_NO_DIRECT | LF_READ_NO_AIO },
	{ "pread", 0 },
	{ "pread-direct", 0 },
	{ "aio", 0 },
};

static void set_env(const char *v)
{
	if (v)
		setenv("DMRESCUE_IO", v, 1);
	else
		unsetenv("DMRESCUE_IO");
}

static struct lf_reader *open_ok(const char *path, const struct lf_reader_opts *o)
{
	struct lf_reader *r = NULL;
	struct dmr_err err;
	if (lf_reader_open(&r, path, o, &err))
		fail_msg("open %s: %s", path, err.msg);
	return r;
}

/* Opens PATH with each method and runs the range sets; *aio tells whether
 * the unforced open chose libaio. */
static void run_methods(const char *path, int *aio)
{
	for (size_t i = 0; i < sizeof(method_cases) / sizeof(method_cases[0]); i++) {
		const struct method_case *mc = &method_cases[i];
		set_env(mc->env);
		static const size_t chunks[] = { 0, BLK, 1024 * 1024 };
		for (size_t ci = 0; ci < 3; ci++) {
			struct lf_reader_opts o = { .flags = mc->flags, .chunk_size = chunks[ci] };
			struct lf_reader *r = open_ok(path, &o);
			const char *m = lf_reader_method(r);
			const char *note = lf_reader_note(r);
			if (ci == 0)
				print_message("%s, DMRESCUE_IO=%s flags %u: %s%s%s\n", path, mc->env ? mc->env : "",
					      mc->flags, m, note ? "; " : "", note ? note : "");
			int no_aio = (mc->flags & (LF_READ_NO_AIO | LF_READ_NO_DIRECT)) ||
				     (mc->env && strncmp(mc->env, "pread", 5) == 0);
			int no_direct = (mc->flags & LF_READ_NO_DIRECT) || (mc->env && strcmp(mc->env, "pread") == 0);
			if (no_direct)
				assert_string_equal(m, "pread");
			else if (no_aio)
				assert_true(strcmp(m, "pread+O_DIRECT") == 0 || (strcmp(m, "pread") == 0 && note));
			else if (strcmp(m, "libaio+O_DIRECT") != 0)
				assert_non_null(note); /* a fallback always says why */
			if (strcmp(m, "libaio+O_DIRECT") == 0)
				assert_true(lf_reader_depth(r) >= 32);
			if (!mc->env && mc->flags == 0 && ci == 0)
				*aio = strcmp(m, "libaio+O_DIRECT") == 0;
			assert_int_equal(lf_reader_chunk_size(r), chunks[ci] ? chunks[ci] : LF_READ_CHUNK_DEFAULT);
			assert_string_equal(lf_reader_path(r), path);
			exercise(r);
			assert_int_equal(lf_reader_stats(r)->resubmits, 0);
			lf_reader_close(r);
		}
	}
	set_env(NULL);
}

static void test_methods_tmpdir(void **state)
{
	(void)state;
	char path[4096];
	if (make_file(tmpdir(), path) < 0)
		fail_msg("cannot write a temp file in %s", tmpdir());
	int aio = 0;
	run_methods(path, &aio);
	unlink(path);
}

/* tmpfs: older kernels refuse O_DIRECT there (newer ones take it); either
 * way the reads are right, and a refusal (simulated where the kernel does
 * not refuse) falls back to plain pread. */
static void test_tmpfs(void **state)
{
	(void)state;
	struct stat st;
	char path[4096];
	if (stat("/dev/shm", &st) < 0 || !S_ISDIR(st.st_mode) || access("/dev/shm", W_OK) < 0 ||
	    make_file("/dev/shm", path) < 0) {
		print_message("no writable /dev/shm here\n");
		skip();
	}
	int aio = 0;
	run_methods(path, &aio);
	if (aio)
		print_message("this kernel's tmpfs takes O_DIRECT: simulating the refusal\n");

	fault_reset();
	fault.open_direct_einval = 1;
	struct lf_reader *r = open_ok(path, NULL);
	assert_string_equal(lf_reader_method(r), "pread");
	assert_contains(lf_reader_note(r), "O_DIRECT refused");
	exercise(r);
	lf_reader_close(r);

	/* Accepted at open, refused at the first read. */
	fault_reset();
	fault.pread_direct_einval = 1;
	r = open_ok(path, NULL);
	assert_string_equal(lf_reader_method(r), "pread");
	assert_contains(lf_reader_note(r), "first read");
	exercise(r);
	lf_reader_close(r);
	fault_reset();
	unlink(path);
}

/* ---- bounds and usage ---- */

static int count_calls(void *ctx, const struct lf_read_piece *p, struct dmr_err *err)
{
	(*(size_t *)ctx)++;
	return 0;
}

struct nested {
	struct lf_reader *r;
	int rc;
	char msg[512];
};

static int read_again(void *ctx, const struct lf_read_piece *p, struct dmr_err *err)
{
	struct nested *nc = ctx;
	struct lf_read_range one = { 0, 512 };
	struct dmr_err inner;
	nc->rc = lf_read_ranges(nc->r, &one, 1, count_calls, NULL, &inner);
	snprintf(nc->msg, sizeof(nc->msg), "%s", inner.msg);
	return 1;
}

static void test_bounds(void **state)
{
	(void)state;
	char path[4096];
	assert_int_equal(make_file(tmpdir(), path), 0);
	for (size_t i = 0; i < sizeof(method_cases) / sizeof(method_cases[0]); i++) {
		struct lf_reader_opts o = { .flags = method_cases[i].flags };
		struct lf_reader *r = open_ok(path, &o);
		struct dmr_err err;
		size_t calls = 0;
		/* Checked before anything is read: no call at all. */
		struct lf_read_range unaligned_off[] = { { 0, BLK }, { 100, 512 } };
		assert_int_equal(lf_read_ranges(r, unaligned_off, 2, count_calls, &calls, &err), DMR_EUSAGE);
		assert_contains(err.msg, path);
		assert_contains(err.msg, "offset 100");
		struct lf_read_range unaligned_len[] = { { 4096, 1000 } };
		assert_int_equal(lf_read_ranges(r, unaligned_len, 1, count_calls, &calls, &err), DMR_EUSAGE);
		assert_contains(err.msg, "offset 4096");

		struct lf_read_range past[] = { { 0, BLK }, { FILE_BYTES - 512, 1024 } };
		assert_int_equal(lf_read_ranges(r, past, 2, count_calls, &calls, &err), DMR_ECORRUPT);
		assert_contains(err.msg, path);
		char off[64];
		snprintf(off, sizeof(off), "offset %llu", (unsigned long long)(FILE_BYTES - 512));
		assert_contains(err.msg, off);
		assert_contains(err.msg, "beyond the end");
		struct lf_read_range far[] = { { FILE_BYTES + BLK, 512 } };
		assert_int_equal(lf_read_ranges(r, far, 1, count_calls, &calls, &err), DMR_ECORRUPT);
		struct lf_read_range wrap[] = { { 512, UINT64_MAX - 511 } };
		assert_int_equal(lf_read_ranges(r, wrap, 1, count_calls, &calls, &err), DMR_ECORRUPT);
		assert_int_equal(calls, 0);
		/* Up to the very end is fine. */
		struct lf_read_range tail[] = { { FILE_BYTES - BLK, BLK } };
		assert_int_equal(lf_read_ranges(r, tail, 1, count_calls, &calls, &err), 0);
		assert_true(calls >= 1);
		/* Not from its own callback. */
		struct nested nc = { .r = r };
		assert_int_equal(lf_read_ranges(r, tail, 1, read_again, &nc, &err), 1);
		assert_int_equal(nc.rc, DMR_EUSAGE);
		assert_contains(nc.msg, path);
		lf_reader_close(r);
	}
	unlink(path);
}

static void test_open_errors(void **state)
{
	(void)state;
	struct lf_reader *r = NULL;
	struct dmr_err err;
	assert_int_equal(lf_reader_open(&r, "/nonexistent/dmr/data", NULL, &err), DMR_ENOENT);
	assert_contains(err.msg, "/nonexistent/dmr/data");
	assert_int_equal(lf_reader_open(&r, tmpdir(), NULL, &err), DMR_EUSAGE);
	assert_contains(err.msg, tmpdir());
	struct lf_reader_opts o = { .chunk_size = 1000 };
	assert_int_equal(lf_reader_open(&r, "/nonexistent", &o, &err), DMR_EUSAGE);
	o = (struct lf_reader_opts){ .depth = LF_READ_DEPTH_MAX + 1 };
	assert_int_equal(lf_reader_open(&r, "/nonexistent", &o, &err), DMR_EUSAGE);
	lf_reader_close(NULL); /* harmless */

	/* An empty file: nothing to read, everything beyond the end. */
	char path[4096];
	snprintf(path, sizeof(path), "%s/dmr-unit-aio-XXXXXX", tmpdir());
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unit_tmp_track(path);
	close(fd);
	r = open_ok(path, NULL);
	assert_int_equal(lf_reader_size(r), 0);
	struct lf_read_range one = { 0, 512 }, none = { 0, 0 };
	size_t calls = 0;
	assert_int_equal(lf_read_ranges(r, &one, 1, count_calls, &calls, &err), DMR_ECORRUPT);
	assert_int_equal(lf_read_ranges(r, &none, 1, count_calls, &calls, &err), 0);
	assert_int_equal(calls, 0);
	lf_reader_close(r);
	unlink(path);
}

/* ---- many ranges, aborts ---- */

static void test_many_ranges(void **state)
{
	(void)state;
	char path[4096];
	assert_int_equal(make_file(tmpdir(), path), 0);
	struct lf_read_range *rg = random_ranges(10000, 42);
	for (size_t i = 0; i < sizeof(method_cases) / sizeof(method_cases[0]); i++) {
		set_env(method_cases[i].env);
		struct lf_reader_opts o = { .flags = method_cases[i].flags, .depth = 32, .chunk_size = BLK };
		struct lf_reader *r = open_ok(path, &o);
		read_and_check(r, rg, 10000);
		const struct lf_read_stats *s = lf_reader_stats(r);
		uint64_t total = 0;
		for (size_t k = 0; k < 10000; k++)
			total += rg[k].len;
		assert_int_equal(s->bytes, total);
		assert_true(s->requests <= 10000 + total / BLK);
		lf_reader_close(r);
	}
	set_env(NULL);
	free(rg);
	unlink(path);
}

static void test_abort(void **state)
{
	(void)state;
	char path[4096];
	assert_int_equal(make_file(tmpdir(), path), 0);
	struct lf_read_range *rg = random_ranges(2000, 7);
	static const struct { size_t after; int rc; int set_err; } stops[] = {
		{ 1, 1, 0 }, { 3, 7, 0 }, { 500, DMR_ECORRUPT, 1 }, { 40, DMR_EUNSUPP, 0 },
	};
	for (size_t i = 0; i < sizeof(method_cases) / sizeof(method_cases[0]); i++) {
		set_env(method_cases[i].env);
		struct lf_reader_opts o = { .flags = method_cases[i].flags, .chunk_size = BLK };
		struct lf_reader *r = open_ok(path, &o);
		struct dmr_err err;
		/* One completion at a time: the stop comes with reads in flight;
		 * then many at a time: the stop comes with completions still to
		 * go through in the same batch. */
		for (int one = 1; one >= 0; one--) {
			fault_reset();
			fault.ev_max = one;
			fault.ev_delay_us = one ? 0 : 300;
			for (size_t s = 0; s < sizeof(stops) / sizeof(stops[0]); s++) {
				struct check c;
				check_init(&c, rg, 2000, BLK);
				c.stop_after = stops[s].after;
				c.stop_rc = stops[s].rc;
				c.set_err = stops[s].set_err;
				int rc = lf_read_ranges(r, rg, 2000, check_piece, &c, &err);
				assert_idle();
				if (c.why[0])
					fail_msg("%s", c.why);
				assert_int_equal(rc, stops[s].rc);
				/* Not one call after the stop. */
				assert_int_equal(c.calls, stops[s].after);
				if (stops[s].rc < 0) {
					assert_int_equal(err.code, stops[s].rc);
					assert_contains(err.msg, stops[s].set_err ? "test callback stops" : path);
				}
				check_free(&c);
				/* The reader is whole afterwards: nothing stale comes back. */
				read_and_check(r, rg, 2000);
			}
		}
		lf_reader_close(r);
	}
	fault_reset();
	set_env(NULL);
	free(rg);
	unlink(path);
}

/* ---- injected faults ---- */

static void test_io_setup_fails(void **state)
{
	(void)state;
	char path[4096];
	assert_int_equal(make_file(tmpdir(), path), 0);
	static const int errs[] = { -ENOSYS, -EAGAIN, -EINVAL };
	for (size_t i = 0; i < 3; i++) {
		fault_reset();
		fault.io_setup_ret = errs[i];
		struct lf_reader *r = open_ok(path, NULL);
		const char *m = lf_reader_method(r);
		assert_true(strcmp(m, "pread+O_DIRECT") == 0 || strcmp(m, "pread") == 0);
		if (strcmp(m, "pread+O_DIRECT") == 0) {
			assert_contains(lf_reader_note(r), "io_setup");
			assert_contains(lf_reader_note(r), strerror(-errs[i]));
		}
		exercise(r);
		lf_reader_close(r);
	}
	fault_reset();
	unlink(path);
}

/* Opens path with libaio, or skips the test where it cannot be had. */
static struct lf_reader *open_aio(const char *path, size_t chunk)
{
	struct lf_reader_opts o = { .chunk_size = chunk };
	struct lf_reader *r = open_ok(path, &o);
	if (strcmp(lf_reader_method(r), "libaio+O_DIRECT") != 0) {
		print_message("no libaio+O_DIRECT in %s (%s)\n", tmpdir(), lf_reader_note(r));
		lf_reader_close(r);
		unlink(path);
		skip();
	}
	return r;
}

static void test_aio_short_completions(void **state)
{
	(void)state;
	char path[4096];
	assert_int_equal(make_file(tmpdir(), path), 0);
	fault_reset();
	struct lf_reader *r = open_aio(path, BLK);
	struct lf_read_range *rg = random_ranges(3000, 9);

	/* Cut to a sector multiple: the rest goes out again through libaio. */
	fault.ev_short_every = 3;
	exercise(r);
	read_and_check(r, rg, 3000);
	assert_true(lf_reader_stats(r)->resubmits > 0);
	assert_int_equal(lf_reader_stats(r)->buffered, 0);

	/* Cut to 100 bytes: the rest is no longer aligned, pread takes it. */
	fault_reset();
	fault.ev_odd_every = 5;
	read_and_check(r, rg, 3000);
	assert_true(lf_reader_stats(r)->buffered > 0);

	/* EINVAL from a completion: read again without O_DIRECT. */
	fault_reset();
	uint64_t before = lf_reader_stats(r)->buffered;
	fault.ev_fail_at = 10;
	fault.ev_fail_res = -EINVAL;
	read_and_check(r, rg, 3000);
	assert_int_equal(lf_reader_stats(r)->buffered, before + 1);
	assert_string_equal(lf_reader_method(r), "libaio+O_DIRECT");
	free(rg);
	lf_reader_close(r);
	fault_reset();
	unlink(path);
}

static void test_aio_errors(void **state)
{
	(void)state;
	char path[4096];
	assert_int_equal(make_file(tmpdir(), path), 0);
	fault_reset();
	struct lf_reader *r = open_aio(path, BLK);
	struct lf_read_range *rg = random_ranges(3000, 11);
	struct dmr_err err;
	static const long results[] = { -EIO, 0 };
	static const char *const says[] = { "read error at offset", "unexpected end of file at offset" };
	for (size_t i = 0; i < 2; i++) {
		fault_reset();
		fault.ev_fail_at = 50;
		fault.ev_fail_res = results[i];
		fault.ev_max = 1;
		struct check c;
		check_init(&c, rg, 3000, BLK);
		assert_int_equal(lf_read_ranges(r, rg, 3000, check_piece, &c, &err), DMR_EIO);
		assert_idle();
		if (c.why[0])
			fail_msg("%s", c.why);
		assert_int_equal(err.code, DMR_EIO);
		assert_contains(err.msg, path);
		assert_contains(err.msg, says[i]);
		assert_true(c.calls < 3000 * 2);
		check_free(&c);
		/* Nothing stale from the failed call comes back. */
		fault_reset();
		read_and_check(r, rg, 3000);
	}
	free(rg);
	lf_reader_close(r);
	unlink(path);
}

static void test_aio_submit_refused(void **state)
{
	(void)state;
	char path[4096];
	assert_int_equal(make_file(tmpdir(), path), 0);
	struct lf_read_range *rg = random_ranges(3000, 13);
	/* From the start, and after a few calls with reads in flight. */
	static const int after[] = { 0, 4 };
	for (size_t i = 0; i < 2; i++) {
		fault_reset();
		struct lf_reader *r = open_aio(path, BLK);
		fault.submit_fail_after = after[i];
		read_and_check(r, rg, 3000);
		assert_string_equal(lf_reader_method(r), "pread+O_DIRECT");
		assert_contains(lf_reader_note(r), "io_submit");
		read_and_check(r, rg, 3000); /* and stays there */
		lf_reader_close(r);
	}
	fault_reset();
	free(rg);
	unlink(path);
}

static void test_pread_faults(void **state)
{
	(void)state;
	char path[4096];
	assert_int_equal(make_file(tmpdir(), path), 0);
	struct lf_read_range *rg = random_ranges(1000, 17);
	static const unsigned flags[] = { LF_READ_NO_AIO, LF_READ_NO_DIRECT };
	for (size_t i = 0; i < 2; i++) {
		struct lf_reader_opts o = { .flags = flags[i], .chunk_size = BLK };
		fault_reset();
		struct lf_reader *r = open_ok(path, &o);
		fault.pread_short = 1;
		read_and_check(r, rg, 1000);
		assert_true(lf_reader_stats(r)->resubmits > 0);

		fault_reset();
		fault.pread_eio_at = 20;
		struct dmr_err err;
		size_t calls = 0;
		assert_int_equal(lf_read_ranges(r, rg, 1000, count_calls, &calls, &err), DMR_EIO);
		assert_contains(err.msg, path);
		assert_contains(err.msg, "read error at offset");
		assert_contains(err.msg, strerror(EIO));
		fault_reset();
		read_and_check(r, rg, 1000);
		lf_reader_close(r);
	}
	free(rg);
	unlink(path);
}

/* ---- lf_is_zero ---- */

static void test_is_zero(void **state)
{
	(void)state;
	enum { N = 4096 + 64 };
	unsigned char *buf = calloc(1, N);
	assert_non_null(buf);
	assert_true(lf_is_zero(buf, 0));
	assert_true(lf_is_zero(NULL, 0));
	static const size_t lens[] = { 1, 7, 8, 9, 255, 256, 257, 511, 512, 4095, 4096 };
	for (size_t start = 0; start < 9; start++) {
		for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
			size_t len = lens[li];
			assert_true(lf_is_zero(buf + start, len));
			for (size_t at = 0; at < len; at += at < 20 || len - at < 20 ? 1 : 97) {
				buf[start + at] = 0x80;
				if (lf_is_zero(buf + start, len))
					fail_msg("byte %zu of %zu (start %zu) missed", at, len, start);
				buf[start + at] = 0;
			}
			/* Bytes just outside do not count. */
			buf[start + len] = 1;
			if (start)
				buf[start - 1] = 1;
			assert_true(lf_is_zero(buf + start, len));
			buf[start + len] = 0;
			if (start)
				buf[start - 1] = 0;
		}
	}
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_methods_tmpdir),
		cmocka_unit_test(test_tmpfs),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_many_ranges),
		cmocka_unit_test(test_abort),
		cmocka_unit_test(test_io_setup_fails),
		cmocka_unit_test(test_aio_short_completions),
		cmocka_unit_test(test_aio_errors),
		cmocka_unit_test(test_aio_submit_refused),
		cmocka_unit_test(test_pread_faults),
		cmocka_unit_test(test_is_zero),
	};
	fault_reset();
	unsetenv("DMRESCUE_IO");
	if (!unit_tmpdir_usable())
		return UNIT_SKIP;
	return cmocka_run_group_tests_name("aioread", tests, NULL, unit_tmp_cleanup);
}
