#include "config.h"
#include "thinmeta/blocksrc.h"
#include "thinmeta/ondisk.h"

#include <errno.h>
#include <fcntl.h>
#include <libaio.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define AIO_DEPTH 128u       /* requests in flight, over all batches */
#define MAX_RUN_BLOCKS 64u   /* blocks coalesced into one request */
#define MAX_GAP_BLOCKS 8u    /* unwanted blocks read to join two runs */

struct tm_blocksrc {
	char *path;
	void *scratch; /* landing block for gap reads; its content is ignored */
	int fd;
	int direct;
	uint64_t nr_blocks;
	io_context_t aio;
	int have_aio; /* the context exists (destroyed at close) */
	int use_aio;  /* submit new reads through it */
	unsigned inflight;
};

const char *tm_blocksrc_path(const struct tm_blocksrc *bs) { return bs->path; }
uint64_t tm_blocksrc_nr_blocks(const struct tm_blocksrc *bs) { return bs->nr_blocks; }

const char *tm_blocksrc_engine(const struct tm_blocksrc *bs)
{
	if (bs->use_aio)
		return "libaio+O_DIRECT";
	return bs->direct ? "pread+O_DIRECT" : "pread";
}

void *tm_block_alloc(size_t n)
{
	void *p = NULL;
	if (n == 0)
		n = 1;
	if (n > SIZE_MAX / TM_BLOCK_SIZE)
		return NULL;
	if (posix_memalign(&p, TM_BLOCK_SIZE, n * TM_BLOCK_SIZE))
		return NULL;
	return p;
}

/* Falls back from O_DIRECT to the page cache for the rest of this run.
 * Reads already in flight keep their own reference to the old file. */
static int drop_direct(struct tm_blocksrc *bs)
{
	int fd = open(bs->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	close(bs->fd);
	bs->fd = fd;
	bs->direct = 0;
	bs->use_aio = 0;
	return 0;
}

int tm_blocksrc_open(struct tm_blocksrc **out, const char *path, unsigned flags, struct dmr_err *err)
{
	const char *env = getenv("DMRESCUE_IO");
	int force_aio = env && strcmp(env, "aio") == 0;
	if (env && strcmp(env, "pread") == 0)
		flags |= TM_BS_NO_DIRECT | TM_BS_NO_AIO;

	/* A block device is read with O_DIRECT: dm-thin writes its metadata
	 * device beneath the block device's page cache, so cached pages can be
	 * stale. A regular file (loop-lvm) is coherent through the page cache,
	 * which also makes repeated runs fast; DMRESCUE_IO=aio forces the
	 * O_DIRECT engine there too. */
	struct stat pst;
	if (!force_aio && stat(path, &pst) == 0 && S_ISREG(pst.st_mode))
		flags |= TM_BS_NO_DIRECT | TM_BS_NO_AIO;

	struct tm_blocksrc *bs = calloc(1, sizeof(*bs));
	if (!bs || !(bs->path = strdup(path))) {
		free(bs);
		return dmr_err_set(err, DMR_ENOMEM, "%s: out of memory", path);
	}
	bs->fd = -1;
	if (!(flags & TM_BS_NO_DIRECT)) {
		bs->fd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT);
		bs->direct = bs->fd >= 0;
	}
	if (bs->fd < 0)
		bs->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (bs->fd < 0) {
		int e = errno;
		tm_blocksrc_close(bs);
		return dmr_err_set(err, DMR_EIO, "%s: cannot open: %s", path, strerror(e));
	}

	struct stat st;
	if (fstat(bs->fd, &st) < 0) {
		int e = errno;
		tm_blocksrc_close(bs);
		return dmr_err_set(err, DMR_EIO, "%s: cannot stat: %s", path, strerror(e));
	}
	uint64_t bytes;
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(bs->fd, BLKGETSIZE64, &bytes) < 0) {
			int e = errno;
			tm_blocksrc_close(bs);
			return dmr_err_set(err, DMR_EIO, "%s: cannot get device size: %s", path, strerror(e));
		}
	} else if (S_ISREG(st.st_mode)) {
		bytes = (uint64_t)st.st_size;
	} else {
		tm_blocksrc_close(bs);
		return dmr_err_set(err, DMR_EIO, "%s: not a regular file or block device", path);
	}
	bs->nr_blocks = bytes / TM_BLOCK_SIZE;

	if (bs->direct && !(flags & TM_BS_NO_AIO)) {
		memset(&bs->aio, 0, sizeof(bs->aio));
		bs->have_aio = bs->use_aio = io_setup(AIO_DEPTH, &bs->aio) == 0;
	}

	/* Probe O_DIRECT with a real read: some filesystems accept the flag at
	 * open and refuse the I/O with EINVAL. */
	if (bs->direct && bs->nr_blocks > 0) {
		void *probe = tm_block_alloc(1);
		if (!probe) {
			tm_blocksrc_close(bs);
			return dmr_err_set(err, DMR_ENOMEM, "%s: out of memory", path);
		}
		ssize_t r = pread(bs->fd, probe, TM_BLOCK_SIZE, 0);
		free(probe);
		if (r < 0 && drop_direct(bs) < 0) {
			int e = errno;
			tm_blocksrc_close(bs);
			return dmr_err_set(err, DMR_EIO, "%s: cannot open: %s", path, strerror(e));
		}
	}
	*out = bs;
	return 0;
}

void tm_blocksrc_close(struct tm_blocksrc *bs)
{
	if (!bs)
		return;
	if (bs->have_aio)
		io_destroy(bs->aio);
	if (bs->fd >= 0)
		close(bs->fd);
	free(bs->scratch);
	free(bs->path);
	free(bs);
}

static int read_full(struct tm_blocksrc *bs, struct iovec *iov, int cnt, uint64_t off)
{
	size_t want = 0;
	for (int i = 0; i < cnt; i++)
		want += iov[i].iov_len;
	ssize_t r;
	do {
		r = preadv(bs->fd, iov, cnt, (off_t)off);
	} while (r < 0 && errno == EINTR);
	if (r < 0 && errno == EINVAL && bs->direct) {
		if (drop_direct(bs) == 0)
			return read_full(bs, iov, cnt, off);
	}
	if (r < 0)
		return -errno;
	if ((size_t)r != want) {
		/* Short read: fall back to block-by-block to find the culprit. */
		return -EIO;
	}
	return 0;
}

int tm_blocksrc_read(struct tm_blocksrc *bs, uint64_t block, void *buf, struct dmr_err *err)
{
	int status;
	void *tmp = tm_block_alloc(1);
	if (!tmp)
		return dmr_err_set(err, DMR_ENOMEM, "%s: out of memory", bs->path);
	int r = tm_blocksrc_read_many(bs, &block, 1, tmp, &status, err);
	if (r == 0 && status != 0)
		r = status == DMR_ECORRUPT
			? dmr_err_set(err, DMR_ECORRUPT, "%s: block %llu is beyond the end (%llu blocks)",
				      bs->path, (unsigned long long)block, (unsigned long long)bs->nr_blocks)
			: dmr_err_set(err, DMR_EIO, "%s: block %llu: read error",
				      bs->path, (unsigned long long)block);
	if (r == 0)
		memcpy(buf, tmp, TM_BLOCK_SIZE);
	free(tmp);
	return r;
}

struct run {
	uint64_t first;  /* first block */
	uint32_t count;  /* blocks */
	uint32_t iov0;   /* index of the first iovec */
	struct tm_read_batch *batch;
	struct iocb cb;
};

struct tm_read_batch {
	struct tm_blocksrc *bs;
	size_t cap;
	size_t *order;     /* caller indexes sorted by block */
	struct iovec *iov; /* one per in-range block, ascending */
	size_t *slot;      /* iovec index -> caller index */
	struct run *runs;
	size_t nruns;
	size_t next_submit; /* runs [next_submit, nruns) are not submitted yet */
	size_t pending;     /* submitted and not reaped */
	int *status;
	int active;
};

static int cmp_idx_by_block(const void *a, const void *b, void *arg)
{
	const uint64_t *blocks = arg;
	uint64_t x = blocks[*(const size_t *)a], y = blocks[*(const size_t *)b];
	return x < y ? -1 : x > y;
}

/* Reads one run block by block after a failed request, so one bad sector
 * costs only its own block. */
static void read_run_singly(struct tm_read_batch *b, const struct run *rn)
{
	for (uint32_t k = 0; k < rn->count; k++) {
		size_t caller = b->slot[rn->iov0 + k];
		if (caller == SIZE_MAX)
			continue; /* a gap block nobody asked for */
		int r = read_full(b->bs, &b->iov[rn->iov0 + k], 1, (rn->first + k) * TM_BLOCK_SIZE);
		b->status[caller] = r ? DMR_EIO : 0;
	}
}

static void read_run(struct tm_read_batch *b, const struct run *rn)
{
	if (read_full(b->bs, &b->iov[rn->iov0], (int)rn->count, rn->first * TM_BLOCK_SIZE))
		read_run_singly(b, rn);
}

struct tm_read_batch *tm_read_batch_new(struct tm_blocksrc *bs)
{
	struct tm_read_batch *b = calloc(1, sizeof(*b));
	if (b)
		b->bs = bs;
	return b;
}

void tm_read_batch_free(struct tm_read_batch *b)
{
	if (!b)
		return;
	if (b->active) {
		struct dmr_err err;
		tm_read_batch_finish(b, &err);
	}
	free(b->order);
	free(b->iov);
	free(b->slot);
	free(b->runs);
	free(b);
}

static int batch_reserve(struct tm_read_batch *b, size_t n)
{
	if (n <= b->cap)
		return 0;
	size_t *order = realloc(b->order, n * sizeof(*order));
	if (order)
		b->order = order;
	struct iovec *iov = realloc(b->iov, 2 * n * sizeof(*iov));
	if (iov)
		b->iov = iov;
	size_t *slot = realloc(b->slot, 2 * n * sizeof(*slot));
	if (slot)
		b->slot = slot;
	struct run *runs = realloc(b->runs, n * sizeof(*runs));
	if (runs)
		b->runs = runs;
	if (!order || !iov || !slot || !runs)
		return -1;
	b->cap = n;
	return 0;
}

/* Submits as many unsubmitted runs as the queue has room for. */
static void submit_some(struct tm_read_batch *b)
{
	struct tm_blocksrc *bs = b->bs;
	while (bs->use_aio && b->next_submit < b->nruns && bs->inflight < AIO_DEPTH) {
		struct iocb *cbp[AIO_DEPTH];
		long want = 0;
		while (b->next_submit + (size_t)want < b->nruns && bs->inflight + (unsigned)want < AIO_DEPTH) {
			struct run *rn = &b->runs[b->next_submit + (size_t)want];
			io_prep_preadv(&rn->cb, bs->fd, &b->iov[rn->iov0], (int)rn->count,
				       (long long)(rn->first * TM_BLOCK_SIZE));
			rn->cb.data = rn;
			cbp[want++] = &rn->cb;
		}
		int sub = io_submit(bs->aio, want, cbp);
		if (sub <= 0) {
			/* Refused: the rest of this run reads synchronously. */
			bs->use_aio = 0;
			return;
		}
		b->next_submit += (size_t)sub;
		b->pending += (size_t)sub;
		bs->inflight += (unsigned)sub;
	}
}

int tm_read_batch_start(struct tm_read_batch *b, const uint64_t *blocks, size_t n, void *bufs,
			int *status, struct dmr_err *err)
{
	struct tm_blocksrc *bs = b->bs;
	if (b->active)
		return dmr_err_set(err, DMR_EUSAGE, "%s: read batch started twice", bs->path);
	if (batch_reserve(b, n ? n : 1))
		return dmr_err_set(err, DMR_ENOMEM, "%s: out of memory for %zu block reads", bs->path, n);
	for (size_t i = 0; i < n; i++)
		b->order[i] = i;
	if (n > 1)
		qsort_r(b->order, n, sizeof(*b->order), cmp_idx_by_block, (void *)blocks);

	/* Runs of adjacent in-range blocks; a repeated block is read into each
	 * of its buffers by its own run. Small gaps are read into the scratch
	 * block to save a request (at most n gap blocks in all: iov holds 2n). */
	if (!bs->scratch && !(bs->scratch = tm_block_alloc(1)))
		return dmr_err_set(err, DMR_ENOMEM, "%s: out of memory", bs->path);
	size_t niov = 0, gaps = 0;
	b->nruns = b->next_submit = b->pending = 0;
	b->status = status;
	for (size_t k = 0; k < n; k++) {
		size_t i = b->order[k];
		uint64_t blk = blocks[i];
		if (blk >= bs->nr_blocks) {
			status[i] = DMR_ECORRUPT;
			continue;
		}
		status[i] = 0;
		struct run *last = b->nruns ? &b->runs[b->nruns - 1] : NULL;
		uint64_t end = last ? last->first + last->count : 0;
		if (last && blk > end && blk - end <= MAX_GAP_BLOCKS && gaps + (blk - end) <= n &&
		    last->count + (blk - end) < MAX_RUN_BLOCKS) {
			for (; end < blk; end++, gaps++) {
				b->iov[niov].iov_base = bs->scratch;
				b->iov[niov].iov_len = TM_BLOCK_SIZE;
				b->slot[niov++] = SIZE_MAX;
				last->count++;
			}
		}
		b->iov[niov].iov_base = (char *)bufs + i * TM_BLOCK_SIZE;
		b->iov[niov].iov_len = TM_BLOCK_SIZE;
		b->slot[niov] = i;
		if (last && last->first + last->count == blk && last->count < MAX_RUN_BLOCKS)
			last->count++;
		else
			b->runs[b->nruns++] = (struct run){ .first = blk, .count = 1, .iov0 = (uint32_t)niov, .batch = b };
		niov++;
	}
	b->active = 1;
	if (bs->use_aio) {
		submit_some(b);
	} else {
#ifdef HAVE_POSIX_FADVISE
		/* Let the kernel fetch every run now; finish copies them out. */
		if (!bs->direct && b->nruns > 1)
			for (size_t r = 0; r < b->nruns; r++)
				posix_fadvise(bs->fd, (off_t)(b->runs[r].first * TM_BLOCK_SIZE),
					      (off_t)b->runs[r].count * TM_BLOCK_SIZE, POSIX_FADV_WILLNEED);
#endif
	}
	return 0;
}

int tm_read_batch_finish(struct tm_read_batch *b, struct dmr_err *err)
{
	struct tm_blocksrc *bs = b->bs;
	if (!b->active)
		return 0;
	while (b->pending > 0 || (bs->use_aio && b->next_submit < b->nruns)) {
		submit_some(b);
		if (b->pending == 0)
			break;
		struct io_event ev[AIO_DEPTH];
		int got = io_getevents(bs->aio, 1, AIO_DEPTH, ev, NULL);
		if (got < 0) {
			if (got == -EINTR)
				continue;
			/* Cannot happen with a valid context; do not spin. */
			b->active = 0;
			return dmr_err_set(err, DMR_EIO, "%s: waiting for reads: %s", bs->path, strerror(-got));
		}
		for (int i = 0; i < got; i++) {
			struct run *rn = ev[i].data;
			struct tm_read_batch *owner = rn->batch;
			owner->pending--;
			bs->inflight--;
			if ((long)ev[i].res != (long)rn->count * (long)TM_BLOCK_SIZE)
				read_run_singly(owner, rn);
		}
	}
	/* Whatever was not submitted (plain engine, or aio refused). */
	for (size_t r = b->next_submit; r < b->nruns; r++)
		read_run(b, &b->runs[r]);
	b->next_submit = b->nruns;
	b->active = 0;
	return 0;
}

int tm_blocksrc_read_many(struct tm_blocksrc *bs, const uint64_t *blocks, size_t n,
			  void *bufs, int *status, struct dmr_err *err)
{
	if (n == 0)
		return 0;
	struct tm_read_batch *b = tm_read_batch_new(bs);
	if (!b)
		return dmr_err_set(err, DMR_ENOMEM, "%s: out of memory for %zu block reads", bs->path, n);
	int r = tm_read_batch_start(b, blocks, n, bufs, status, err);
	if (!r)
		r = tm_read_batch_finish(b, err);
	tm_read_batch_free(b);
	return r;
}
