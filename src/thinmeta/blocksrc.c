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

#define AIO_DEPTH 64u        /* requests in flight */
#define MAX_RUN_BLOCKS 64u  /* blocks coalesced into one request */

struct tm_blocksrc {
	char *path;
	int fd;
	int direct;
	uint64_t nr_blocks;
	io_context_t aio;
	int use_aio;
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

/* Falls back from O_DIRECT to the page cache for the rest of this run. */
static int drop_direct(struct tm_blocksrc *bs)
{
	int fd = open(bs->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	close(bs->fd);
	bs->fd = fd;
	bs->direct = 0;
	if (bs->use_aio) {
		io_destroy(bs->aio);
		bs->use_aio = 0;
	}
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
		bs->use_aio = io_setup(AIO_DEPTH, &bs->aio) == 0;
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
	if (bs->use_aio)
		io_destroy(bs->aio);
	if (bs->fd >= 0)
		close(bs->fd);
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
};

static int cmp_idx_by_block(const void *a, const void *b, void *arg)
{
	const uint64_t *blocks = arg;
	uint64_t x = blocks[*(const size_t *)a], y = blocks[*(const size_t *)b];
	return x < y ? -1 : x > y;
}

/* Reads one run block by block after a failed batch, so one bad sector
 * costs only its own block. */
static void read_run_singly(struct tm_blocksrc *bs, const struct run *rn, struct iovec *iov,
			    const size_t *order, int *status)
{
	for (uint32_t k = 0; k < rn->count; k++) {
		int r = read_full(bs, &iov[rn->iov0 + k], 1, (rn->first + k) * TM_BLOCK_SIZE);
		status[order[rn->iov0 + k]] = r ? DMR_EIO : 0;
	}
}

static void read_runs_aio(struct tm_blocksrc *bs, struct run *runs, size_t nruns,
			  struct iovec *iov, const size_t *order, int *status)
{
	struct iocb cbs[AIO_DEPTH];
	struct iocb *cbp[AIO_DEPTH];
	struct io_event ev[AIO_DEPTH];
	size_t next = 0;
	while (next < nruns) {
		unsigned batch = 0;
		while (batch < AIO_DEPTH && next + batch < nruns) {
			struct run *rn = &runs[next + batch];
			io_prep_preadv(&cbs[batch], bs->fd, &iov[rn->iov0], (int)rn->count,
				       (long long)(rn->first * TM_BLOCK_SIZE));
			cbs[batch].data = rn;
			cbp[batch] = &cbs[batch];
			batch++;
		}
		int sub = io_submit(bs->aio, (long)batch, cbp);
		if (sub <= 0) {
			/* The kernel or filesystem refused: do the rest synchronously. */
			io_destroy(bs->aio);
			bs->use_aio = 0;
			for (size_t i = next; i < nruns; i++)
				if (read_full(bs, &iov[runs[i].iov0], (int)runs[i].count, runs[i].first * TM_BLOCK_SIZE))
					read_run_singly(bs, &runs[i], iov, order, status);
			return;
		}
		int done = 0;
		while (done < sub) {
			int got = io_getevents(bs->aio, 1, sub - done, ev, NULL);
			if (got < 0) {
				if (got == -EINTR)
					continue;
				break;
			}
			for (int i = 0; i < got; i++) {
				struct run *rn = ev[i].data;
				if ((long)ev[i].res != (long)rn->count * (long)TM_BLOCK_SIZE)
					read_run_singly(bs, rn, iov, order, status);
			}
			done += got;
		}
		next += (size_t)sub;
	}
}

int tm_blocksrc_read_many(struct tm_blocksrc *bs, const uint64_t *blocks, size_t n,
			  void *bufs, int *status, struct dmr_err *err)
{
	if (n == 0)
		return 0;
	size_t *order = malloc(n * sizeof(*order));
	struct iovec *iov = malloc(n * sizeof(*iov));
	struct run *runs = malloc(n * sizeof(*runs));
	if (!order || !iov || !runs) {
		free(order);
		free(iov);
		free(runs);
		return dmr_err_set(err, DMR_ENOMEM, "%s: out of memory for %zu block reads", bs->path, n);
	}
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	qsort_r(order, n, sizeof(*order), cmp_idx_by_block, (void *)blocks);

	/* Build runs of adjacent in-range blocks; a repeated block is read into
	 * each of its buffers by its own run. */
	size_t nruns = 0, niov = 0;
	size_t *slot = malloc(n * sizeof(*slot)); /* iovec index -> caller index */
	if (!slot) {
		free(order);
		free(iov);
		free(runs);
		return dmr_err_set(err, DMR_ENOMEM, "%s: out of memory for %zu block reads", bs->path, n);
	}
	for (size_t k = 0; k < n; k++) {
		size_t i = order[k];
		uint64_t b = blocks[i];
		if (b >= bs->nr_blocks) {
			status[i] = DMR_ECORRUPT;
			continue;
		}
		status[i] = 0;
		iov[niov].iov_base = (char *)bufs + i * TM_BLOCK_SIZE;
		iov[niov].iov_len = TM_BLOCK_SIZE;
		slot[niov] = i;
		struct run *last = nruns ? &runs[nruns - 1] : NULL;
		if (last && last->first + last->count == b && last->count < MAX_RUN_BLOCKS)
			last->count++;
		else
			runs[nruns++] = (struct run){ .first = b, .count = 1, .iov0 = (uint32_t)niov };
		niov++;
	}

	if (bs->use_aio && nruns > 1) {
		read_runs_aio(bs, runs, nruns, iov, slot, status);
	} else {
#ifdef HAVE_POSIX_FADVISE
		/* Let the kernel fetch every run at once, then copy them in order. */
		if (nruns > 1 && !bs->direct)
			for (size_t r = 0; r < nruns; r++)
				posix_fadvise(bs->fd, (off_t)(runs[r].first * TM_BLOCK_SIZE),
					      (off_t)runs[r].count * TM_BLOCK_SIZE, POSIX_FADV_WILLNEED);
#endif
		for (size_t r = 0; r < nruns; r++)
			if (read_full(bs, &iov[runs[r].iov0], (int)runs[r].count, runs[r].first * TM_BLOCK_SIZE))
				read_run_singly(bs, &runs[r], iov, slot, status);
	}
	free(slot);
	free(order);
	free(iov);
	free(runs);
	return 0;
}
