#include "config.h"
#include "loopfile/aioread.h"

#include <errno.h>
#include <fcntl.h>
#include <libaio.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUF_ALIGN 4096u

/* One read of up to chunk_size bytes into its own buffer: the bytes
 * [off, off+len) of the file, made of pieces of the ranges from sorted
 * position k (pos bytes into it) on. done grows with short reads. */
struct req {
	struct iocb cb;
	unsigned char *buf;
	uint64_t off;
	size_t len;
	size_t done;
	size_t k;
	uint64_t pos;
};

struct lf_reader {
	char *path;
	int fd;
	int bfd; /* the same file without O_DIRECT, opened on first need */
	int direct;
	int is_blk;
	int busy;
	unsigned align; /* what O_DIRECT needs of offsets and lengths */
	uint64_t size;
	io_context_t aio;
	int have_aio; /* the context exists (destroyed at close) */
	int use_aio;  /* new reads go through it */
	unsigned depth;
	size_t chunk;
	unsigned nslots;
	unsigned char *bufs; /* nslots * chunk */
	struct req *reqs;
	unsigned *free_slots;
	struct iocb **pend;
	struct io_event *events;
	char note[160];
	struct lf_read_stats stats;
};

const char *lf_reader_path(const struct lf_reader *r) { return r->path; }
uint64_t lf_reader_size(const struct lf_reader *r) { return r->size; }
unsigned lf_reader_depth(const struct lf_reader *r) { return r->use_aio ? r->depth : 1; }
size_t lf_reader_chunk_size(const struct lf_reader *r) { return r->chunk; }
const struct lf_read_stats *lf_reader_stats(const struct lf_reader *r) { return &r->stats; }
const char *lf_reader_note(const struct lf_reader *r) { return r->note[0] ? r->note : NULL; }

const char *lf_reader_method(const struct lf_reader *r)
{
	if (r->use_aio)
		return "libaio+O_DIRECT";
	return r->direct ? "pread+O_DIRECT" : "pread";
}

int lf_is_zero(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	/* 256 bytes without a branch (the compiler vectorises it), then a
	 * test: fast on long zero runs, early out on data. */
	while (len >= 256) {
		uint64_t acc = 0;
		for (size_t i = 0; i < 256; i += 8) {
			uint64_t w;
			memcpy(&w, p + i, sizeof(w));
			acc |= w;
		}
		if (acc)
			return 0;
		p += 256;
		len -= 256;
	}
	for (; len >= 8; p += 8, len -= 8) {
		uint64_t w;
		memcpy(&w, p, sizeof(w));
		if (w)
			return 0;
	}
	for (; len; p++, len--)
		if (*p)
			return 0;
	return 1;
}

void lf_reader_close(struct lf_reader *r)
{
	if (!r)
		return;
	/* io_destroy waits for reads still in flight (there are none unless
	 * a wait failed), so the buffers can go after it. */
	if (r->have_aio)
		io_destroy(r->aio);
	if (r->fd >= 0)
		close(r->fd);
	if (r->bfd >= 0)
		close(r->bfd);
	free(r->bufs);
	free(r->reqs);
	free(r->free_slots);
	free(r->pend);
	free(r->events);
	free(r->path);
	free(r);
}

static int open_error(struct lf_reader *r, const char *path, const char *what, int e, struct dmr_err *err)
{
	lf_reader_close(r);
	return dmr_err_set(err, e == ENOENT ? DMR_ENOENT : DMR_EIO, "%s: %s: %s", path, what, strerror(e));
}

/* Some filesystems accept O_DIRECT at open and refuse the reads with
 * EINVAL: try one. Other errors are left to the real reads to report. */
static int probe_direct(struct lf_reader *r, struct dmr_err *err)
{
	if (r->size < r->align)
		return 0;
	void *probe = NULL;
	if (posix_memalign(&probe, BUF_ALIGN, r->align))
		return dmr_err_set(err, DMR_ENOMEM, "%s: out of memory", r->path);
	ssize_t got;
	do {
		got = pread(r->fd, probe, r->align, 0);
	} while (got < 0 && errno == EINTR);
	int e = errno;
	free(probe);
	if (got >= 0 || e != EINVAL)
		return 0;
	int fd = open(r->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	close(r->fd);
	r->fd = fd;
	r->direct = 0;
	snprintf(r->note, sizeof(r->note), "O_DIRECT refused at the first read: %s", strerror(e));
	return 0;
}

int lf_reader_open(struct lf_reader **out, const char *path, const struct lf_reader_opts *opts,
		   struct dmr_err *err)
{
	unsigned flags = opts ? opts->flags : 0;
	unsigned depth = opts && opts->depth ? opts->depth : LF_READ_DEPTH_DEFAULT;
	size_t chunk = opts && opts->chunk_size ? opts->chunk_size : LF_READ_CHUNK_DEFAULT;
	if (chunk % BUF_ALIGN || chunk > LF_READ_CHUNK_MAX)
		return dmr_err_set(err, DMR_EUSAGE, "%s: read chunk size %zu is not a multiple of %u up to %u",
				   path, chunk, BUF_ALIGN, LF_READ_CHUNK_MAX);
	if (depth > LF_READ_DEPTH_MAX)
		return dmr_err_set(err, DMR_EUSAGE, "%s: read queue depth %u is above %u", path, depth,
				   LF_READ_DEPTH_MAX);
	const char *env = getenv("DMRESCUE_IO");
	if (env && strcmp(env, "pread") == 0)
		flags |= LF_READ_NO_DIRECT;
	else if (env && strcmp(env, "pread-direct") == 0)
		flags |= LF_READ_NO_AIO;
	if (flags & LF_READ_NO_DIRECT)
		flags |= LF_READ_NO_AIO; /* libaio without O_DIRECT blocks in io_submit */

	struct lf_reader *r = calloc(1, sizeof(*r));
	if (!r || !(r->path = strdup(path))) {
		free(r);
		return dmr_err_set(err, DMR_ENOMEM, "%s: out of memory", path);
	}
	r->fd = r->bfd = -1;
	r->chunk = chunk;
	r->align = LF_READ_ALIGN;
	if (!(flags & LF_READ_NO_DIRECT)) {
		r->fd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT);
		r->direct = r->fd >= 0;
		if (r->fd < 0 && errno == EINVAL)
			snprintf(r->note, sizeof(r->note), "O_DIRECT refused: %s", strerror(errno));
	}
	if (r->fd < 0 && (r->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return open_error(r, path, "cannot open", errno, err);

	struct stat st;
	if (fstat(r->fd, &st) < 0)
		return open_error(r, path, "cannot stat", errno, err);
	if (S_ISBLK(st.st_mode)) {
		r->is_blk = 1;
		if (ioctl(r->fd, BLKGETSIZE64, &r->size) < 0)
			return open_error(r, path, "cannot get the device size", errno, err);
		int ssz = 0;
		if (ioctl(r->fd, BLKSSZGET, &ssz) == 0 && ssz > (int)r->align && ssz <= (int)BUF_ALIGN)
			r->align = (unsigned)ssz;
	} else if (S_ISREG(st.st_mode)) {
		r->size = (uint64_t)st.st_size;
	} else {
		lf_reader_close(r);
		return dmr_err_set(err, DMR_EUSAGE, "%s: not a regular file or block device", path);
	}

	if (r->direct) {
		int e = probe_direct(r, err);
		if (e == DMR_ENOMEM) {
			lf_reader_close(r);
			return e;
		}
		if (e < 0)
			return open_error(r, path, "cannot open", -e, err);
	}
	if (r->direct && !(flags & LF_READ_NO_AIO)) {
		if (depth < LF_READ_DEPTH_DEFAULT)
			depth = LF_READ_DEPTH_DEFAULT;
		memset(&r->aio, 0, sizeof(r->aio));
		int e = io_setup((int)depth, &r->aio);
		if (e == 0)
			r->have_aio = r->use_aio = 1;
		else /* ENOSYS, EAGAIN (aio-max-nr), EINVAL: pread it is */
			snprintf(r->note, sizeof(r->note), "io_setup(%u): %s", depth, strerror(e < 0 ? -e : e));
	}
	r->depth = depth;
	r->nslots = r->use_aio ? depth : 1;

	void *bufs = NULL;
	if (posix_memalign(&bufs, BUF_ALIGN, (size_t)r->nslots * chunk))
		bufs = NULL;
	r->bufs = bufs;
	r->reqs = calloc(r->nslots, sizeof(*r->reqs));
	r->free_slots = calloc(r->nslots, sizeof(*r->free_slots));
	r->pend = calloc(r->nslots, sizeof(*r->pend));
	r->events = calloc(r->nslots, sizeof(*r->events));
	if (!r->bufs || !r->reqs || !r->free_slots || !r->pend || !r->events) {
		lf_reader_close(r);
		return dmr_err_set(err, DMR_ENOMEM, "%s: out of memory for %u read buffers of %zu bytes", path,
				   r->nslots, chunk);
	}
	for (unsigned i = 0; i < r->nslots; i++)
		r->reqs[i].buf = r->bufs + (size_t)i * chunk;
	*out = r;
	return 0;
}

/* One call of lf_read_ranges. */
struct job {
	struct lf_reader *r;
	const struct lf_read_range *rg;
	const size_t *ord; /* sorted position -> range index; NULL: already sorted */
	size_t n;
	size_t k;     /* cursor: the next byte to request is at pos in range k */
	uint64_t pos;
	lf_read_fn fn;
	void *ctx;
	struct dmr_err *err;
	int status; /* first error or stop */
	unsigned inflight;
};

static size_t range_index(const struct job *j, size_t k) { return j->ord ? j->ord[k] : k; }
static const struct lf_read_range *range_at(const struct job *j, size_t k) { return &j->rg[range_index(j, k)]; }

/* 1 when there is more to request. */
static int more(struct job *j)
{
	while (j->k < j->n && range_at(j, j->k)->len == 0)
		j->k++;
	return j->k < j->n;
}

/* Takes the next read from the cursor: adjacent ranges join. */
static int next_req(struct job *j, struct req *q)
{
	if (!more(j))
		return 0;
	q->k = j->k;
	q->pos = j->pos;
	q->off = range_at(j, j->k)->off + j->pos;
	q->len = q->done = 0;
	for (;;) {
		const struct lf_read_range *g = range_at(j, j->k);
		uint64_t left = g->len - j->pos;
		size_t room = j->r->chunk - q->len;
		if (left > room) {
			q->len += room;
			j->pos += room;
			break;
		}
		q->len += (size_t)left;
		j->k++;
		j->pos = 0;
		if (q->len == j->r->chunk || !more(j) || range_at(j, j->k)->off != q->off + q->len)
			break;
	}
	j->r->stats.requests++;
	return 1;
}

/* Hands a finished read to the callback, one piece per range. */
static int deliver(struct job *j, const struct req *q)
{
	size_t k = q->k;
	uint64_t pos = q->pos;
	size_t used = 0;
	while (used < q->len) {
		const struct lf_read_range *g = range_at(j, k);
		if (g->len == 0) {
			k++;
			continue;
		}
		uint64_t left = g->len - pos;
		size_t piece = left < q->len - used ? (size_t)left : q->len - used;
		struct lf_read_piece p = { .range = range_index(j, k), .off = g->off + pos, .buf = q->buf + used, .len = piece };
		j->r->stats.bytes += piece;
		int rc = j->fn(j->ctx, &p, j->err);
		if (rc < 0 && (!j->err || j->err->code == 0))
			dmr_err_set(j->err, rc, "%s: stopped at offset %llu", j->r->path, (unsigned long long)p.off);
		if (rc)
			return rc;
		used += piece;
		k++;
		pos = 0;
	}
	return 0;
}

static int read_error(struct job *j, uint64_t off, size_t len, int e)
{
	return dmr_err_set(j->err, DMR_EIO, "%s: read error at offset %llu (%zu bytes): %s", j->r->path,
			   (unsigned long long)off, len, strerror(e));
}

static int eof_error(struct job *j, uint64_t off, size_t len)
{
	return dmr_err_set(j->err, DMR_EIO, "%s: unexpected end of %s at offset %llu (%zu bytes missing; it was %llu bytes at open)",
			   j->r->path, j->r->is_blk ? "device" : "file", (unsigned long long)off, len,
			   (unsigned long long)j->r->size);
}

static int direct_fits(const struct lf_reader *r, uint64_t off, size_t len)
{
	return off % r->align == 0 && len % r->align == 0;
}

static int buffered_fd(struct job *j)
{
	struct lf_reader *r = j->r;
	if (r->bfd < 0 && (r->bfd = open(r->path, O_RDONLY | O_CLOEXEC)) < 0)
		return dmr_err_set(j->err, DMR_EIO, "%s: cannot open without O_DIRECT: %s", r->path, strerror(errno));
	return r->bfd;
}

/* Reads what is left of q with pread, short reads continued. EINVAL from
 * O_DIRECT (or a remainder it cannot take) goes through the page cache. */
static int read_rest(struct job *j, struct req *q, int buffered)
{
	struct lf_reader *r = j->r;
	if (!r->direct)
		buffered = 0; /* r->fd is the page cache already */
	else if (buffered)
		r->stats.buffered++;
	while (q->done < q->len) {
		uint64_t off = q->off + q->done;
		size_t want = q->len - q->done;
		if (r->direct && !buffered && !direct_fits(r, off, want)) {
			buffered = 1;
			r->stats.buffered++;
		}
		int fd = r->fd;
		if (buffered && (fd = buffered_fd(j)) < 0)
			return fd;
		ssize_t got = pread(fd, q->buf + q->done, want, (off_t)off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0 && errno == EINVAL && r->direct && !buffered) {
			buffered = 1;
			r->stats.buffered++;
			continue;
		}
		if (got < 0)
			return read_error(j, off, want, errno);
		if (got == 0)
			return eof_error(j, off, want);
		if ((size_t)got < want)
			r->stats.resubmits++;
		q->done += (size_t)got;
	}
	return 0;
}

static int run_sync(struct job *j)
{
	struct req *q = &j->r->reqs[0];
	while (next_req(j, q)) {
		int rc = read_rest(j, q, 0);
		if (!rc)
			rc = deliver(j, q);
		if (rc)
			return rc;
	}
	return 0;
}

static void prep(struct lf_reader *r, struct req *q)
{
	io_prep_pread(&q->cb, r->fd, q->buf + q->done, q->len - q->done, (long long)(q->off + q->done));
	q->cb.data = q;
}

/* A completion: 0 and *requeue set when the rest must be read again;
 * otherwise the read is finished and delivered (or failed). */
static int complete(struct job *j, struct req *q, long res, int *requeue)
{
	struct lf_reader *r = j->r;
	size_t want = q->len - q->done;
	*requeue = 0;
	if (res == -EINVAL && r->direct) {
		int rc = read_rest(j, q, 1);
		return rc ? rc : deliver(j, q);
	}
	if (res < 0)
		return read_error(j, q->off + q->done, want, (int)-res);
	if (res == 0)
		return eof_error(j, q->off + q->done, want);
	if ((size_t)res < want) {
		/* Never data as it stands: read the remainder again. */
		q->done += (size_t)res;
		r->stats.resubmits++;
		if (direct_fits(r, q->off + q->done, q->len - q->done)) {
			*requeue = 1;
			return 0;
		}
		int rc = read_rest(j, q, 1);
		return rc ? rc : deliver(j, q);
	}
	q->done = q->len;
	return deliver(j, q);
}

/* Waits for every read in flight, dropping their data. */
static void drain(struct job *j)
{
	struct lf_reader *r = j->r;
	while (j->inflight > 0) {
		int got = io_getevents(r->aio, 1, (long)r->nslots, r->events, NULL);
		if (got == -EINTR)
			continue;
		if (got < 0) {
			/* Cannot wait here: io_destroy waits for them instead, and
			 * this reader reads with pread from now on. */
			io_destroy(r->aio);
			r->have_aio = r->use_aio = 0;
			j->inflight = 0;
			return;
		}
		j->inflight -= (unsigned)got;
	}
}

/* libaio gave up on us (io_submit refused with nothing in flight):
 * the queued reads and the rest of the reader's life go through pread. */
static int aio_give_up(struct job *j, unsigned npend, int e)
{
	struct lf_reader *r = j->r;
	r->use_aio = 0;
	snprintf(r->note, sizeof(r->note), "io_submit: %s", strerror(e));
	int rc = 0;
	for (unsigned i = 0; i < npend && !rc; i++) {
		struct req *q = r->pend[i]->data;
		rc = read_rest(j, q, 0);
		if (!rc)
			rc = deliver(j, q);
	}
	return rc;
}

static int run_aio(struct job *j)
{
	struct lf_reader *r = j->r;
	unsigned nfree = r->nslots, npend = 0;
	for (unsigned i = 0; i < r->nslots; i++)
		r->free_slots[i] = r->nslots - 1 - i;
	struct io_event *ev = r->events;
	while (!j->status) {
		while (r->use_aio && nfree > 0) {
			struct req *q = &r->reqs[r->free_slots[nfree - 1]];
			if (!next_req(j, q))
				break;
			nfree--;
			prep(r, q);
			r->pend[npend++] = &q->cb;
		}
		if (npend > 0) {
			int sub = io_submit(r->aio, (long)npend, r->pend);
			if (sub > 0) {
				memmove(r->pend, r->pend + sub, (npend - (unsigned)sub) * sizeof(*r->pend));
				npend -= (unsigned)sub;
				j->inflight += (unsigned)sub;
			} else if (sub == -EINTR) {
				continue;
			} else if (j->inflight == 0) {
				j->status = aio_give_up(j, npend, sub < 0 ? -sub : EAGAIN);
				npend = 0;
				continue; /* and out: run_sync reads the rest */
			}
		}
		if (j->inflight == 0)
			break; /* nothing queued either: done, or pread takes over */
		int got = io_getevents(r->aio, 1, (long)r->nslots, ev, NULL);
		if (got == -EINTR)
			continue;
		if (got < 0) {
			j->status = dmr_err_set(j->err, DMR_EIO, "%s: waiting for reads: %s", r->path, strerror(-got));
			break;
		}
		j->inflight -= (unsigned)got;
		for (int i = 0; i < got; i++) {
			struct req *q = ev[i].data;
			int requeue = 0;
			if (!j->status)
				j->status = complete(j, q, (long)ev[i].res, &requeue);
			if (requeue) {
				prep(r, q);
				r->pend[npend++] = &q->cb;
			} else {
				r->free_slots[nfree++] = (unsigned)(q - r->reqs);
			}
		}
	}
	drain(j);
	return j->status;
}

static int cmp_pos_by_off(const void *a, const void *b, void *arg)
{
	const struct lf_read_range *rg = arg;
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	if (rg[x].off != rg[y].off)
		return rg[x].off < rg[y].off ? -1 : 1;
	return x < y ? -1 : x > y; /* repeats in the order given */
}

static int check_ranges(struct lf_reader *r, const struct lf_read_range *rg, size_t n, int *sorted,
			struct dmr_err *err)
{
	*sorted = 1;
	for (size_t i = 0; i < n; i++) {
		if (rg[i].off % LF_READ_ALIGN || rg[i].len % LF_READ_ALIGN)
			return dmr_err_set(err, DMR_EUSAGE, "%s: range %zu (offset %llu, %llu bytes) is not aligned to %u bytes",
					   r->path, i, (unsigned long long)rg[i].off, (unsigned long long)rg[i].len,
					   LF_READ_ALIGN);
		if (rg[i].off > r->size || rg[i].len > r->size - rg[i].off)
			return dmr_err_set(err, DMR_ECORRUPT,
					   "%s: range %zu (offset %llu, %llu bytes) goes beyond the end of the %s at %llu bytes",
					   r->path, i, (unsigned long long)rg[i].off, (unsigned long long)rg[i].len,
					   r->is_blk ? "device" : "file", (unsigned long long)r->size);
		if (i > 0 && rg[i].off < rg[i - 1].off)
			*sorted = 0;
	}
	return 0;
}

int lf_read_ranges(struct lf_reader *r, const struct lf_read_range *ranges, size_t n, lf_read_fn fn,
		   void *ctx, struct dmr_err *err)
{
	if (r->busy)
		return dmr_err_set(err, DMR_EUSAGE, "%s: lf_read_ranges called from its own callback", r->path);
	dmr_err_clear(err);
	int sorted;
	int rc = check_ranges(r, ranges, n, &sorted, err);
	if (rc)
		return rc;
	size_t *ord = NULL;
	if (!sorted) {
		if (n > SIZE_MAX / sizeof(*ord) || !(ord = malloc(n * sizeof(*ord))))
			return dmr_err_set(err, DMR_ENOMEM, "%s: out of memory for %zu ranges", r->path, n);
		for (size_t i = 0; i < n; i++)
			ord[i] = i;
		qsort_r(ord, n, sizeof(*ord), cmp_pos_by_off, (void *)ranges);
	}
	struct job j = { .r = r, .rg = ranges, .ord = ord, .n = n, .fn = fn, .ctx = ctx, .err = err };
	r->busy = 1;
	rc = r->use_aio ? run_aio(&j) : 0;
	if (!rc)
		rc = run_sync(&j); /* everything, or what libaio left over */
	r->busy = 0;
	free(ord);
	return rc;
}
