#include "config.h"
#include "loopfile/imagecopy.h"

#include "loopfile/extents.h"
#include "util/safeio.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct copy {
	const struct lf_extent *x;
	uint64_t bs;
	int fd;
	const char *path;
	const struct lf_read_range *rr;
	struct lf_copy_stats *st;
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *pctx;
	uint64_t total;
};

static int copy_piece(void *ctx, const struct lf_read_piece *p, struct dmr_err *err)
{
	struct copy *c = ctx;
	c->st->bytes_read += p->len;
	if (lf_is_zero(p->buf, p->len)) {
		c->st->bytes_zero += p->len;
	} else {
		uint64_t voff = c->x[p->range].vblock * c->bs + (p->off - c->rr[p->range].off);
		int r = sio_pwrite(c->fd, p->buf, p->len, (off_t)voff, c->path, err);
		if (r)
			return r;
		c->st->bytes_written += p->len;
		c->st->writes++;
	}
	if (c->progress)
		c->progress(c->pctx, c->st->bytes_read, c->total);
	return 0;
}

int lf_copy_extents(struct lf_reader *r, const struct lf_extent *x, size_t n, uint64_t block_bytes, int out_fd,
		    const char *out_path, void (*progress)(void *ctx, uint64_t done, uint64_t total), void *pctx,
		    struct lf_copy_stats *st, struct dmr_err *err)
{
	memset(st, 0, sizeof(*st));
	if (!block_bytes || block_bytes % LF_READ_ALIGN)
		return dmr_err_set(err, DMR_EUSAGE, "block size %" PRIu64 " is not a multiple of %u", block_bytes,
				   LF_READ_ALIGN);
	struct lf_read_range *rr = calloc(n ? n : 1, sizeof(*rr));
	if (!rr)
		return dmr_err_set(err, DMR_ENOMEM, "out of memory for %zu extents", n);
	uint64_t data_bytes = lf_reader_size(r), total = 0;
	for (size_t i = 0; i < n; i++) {
		if (x[i].len > UINT64_MAX / block_bytes || x[i].dblock > UINT64_MAX / block_bytes - x[i].len ||
		    (x[i].dblock + x[i].len) * block_bytes > data_bytes) {
			free(rr);
			return dmr_err_set(err, DMR_ECORRUPT,
					   "virtual blocks %" PRIu64 "..%" PRIu64 " map to data blocks %" PRIu64 "..%" PRIu64
					   ", beyond the end of %s (%" PRIu64 " bytes)",
					   x[i].vblock, x[i].vblock + x[i].len - 1, x[i].dblock, x[i].dblock + x[i].len - 1,
					   lf_reader_path(r), data_bytes);
		}
		rr[i].off = x[i].dblock * block_bytes;
		rr[i].len = x[i].len * block_bytes;
		total += rr[i].len;
	}
	struct copy c = { .x = x, .bs = block_bytes, .fd = out_fd, .path = out_path, .rr = rr, .st = st,
			  .progress = progress, .pctx = pctx, .total = total };
	int ret = lf_read_ranges(r, rr, n, copy_piece, &c, err);
	free(rr);
	return ret;
}

/* --- the checksum --- */

#define HASH_BUF (1u << 20)

struct hash {
	struct sha256_ctx sha;
	int fd;
	const char *path;
	unsigned char *buf;
	uint64_t pos, size;
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *pctx;
	int read_errno; /* a failed pread: the callback cannot fill err */
};

static void hash_zeros(struct hash *h, uint64_t upto)
{
	const uint64_t step = 16u << 20;
	while (h->pos < upto) {
		uint64_t k = upto - h->pos < step ? upto - h->pos : step;
		sha256_update_zeros(&h->sha, k);
		h->pos += k;
		if (h->progress)
			h->progress(h->pctx, h->pos, h->size);
	}
}

static int hash_data(void *ctx, uint64_t off, uint64_t len)
{
	struct hash *h = ctx;
	hash_zeros(h, off);
	uint64_t end = off + len;
	while (h->pos < end) {
		size_t want = end - h->pos < HASH_BUF ? (size_t)(end - h->pos) : HASH_BUF;
		ssize_t k = pread(h->fd, h->buf, want, (off_t)h->pos);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			h->read_errno = k == 0 ? EIO : errno;
			return -h->read_errno;
		}
		sha256_update(&h->sha, h->buf, (size_t)k);
		h->pos += (uint64_t)k;
		if (h->progress)
			h->progress(h->pctx, h->pos, h->size);
	}
	return 0;
}

int lf_sha256_sparse(int fd, uint64_t size, const char *path, void (*progress)(void *ctx, uint64_t done, uint64_t total),
		     void *pctx, char hex[SHA256_HEX_LEN + 1], struct dmr_err *err)
{
	struct hash h = { .fd = fd, .path = path, .size = size, .progress = progress, .pctx = pctx };
	h.buf = malloc(HASH_BUF);
	if (!h.buf)
		return dmr_err_set(err, DMR_ENOMEM, "out of memory");
	sha256_init(&h.sha);
	int r = lf_allocated_ranges(fd, 0, size, hash_data, &h, NULL, err);
	if (r && h.read_errno)
		dmr_err_set(err, DMR_EIO, "reading %s back at offset %" PRIu64 ": %s", path, h.pos, strerror(h.read_errno));
	else if (r)
		dmr_err_prefix(err, "%s", path);
	if (!r) {
		hash_zeros(&h, size);
		if (progress)
			progress(pctx, size, size);
		sha256_final_hex(&h.sha, hex);
	}
	free(h.buf);
	return r;
}
