/* A source of 4 KiB metadata blocks: a regular file or a block device.
 * Batched reads go out in ascending block order, adjacent blocks coalesced.
 * Block devices are read through libaio with O_DIRECT where that works and
 * plain pread where it does not (ENOSYS, EINVAL, tmpfs): decided at run
 * time, never fatal. Regular files are read through the page cache (see
 * tm_blocksrc_open). */
#ifndef DMR_THINMETA_BLOCKSRC_H
#define DMR_THINMETA_BLOCKSRC_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

struct tm_blocksrc;

enum {
	TM_BS_NO_DIRECT = 1, /* never use O_DIRECT */
	TM_BS_NO_AIO = 2,    /* never use libaio */
};

/* Opens PATH read-only. flags: TM_BS_*. The environment variable
 * DMRESCUE_IO=pread forces the plain engine, DMRESCUE_IO=aio the
 * libaio+O_DIRECT one also for regular files (tests and benchmarks). */
int tm_blocksrc_open(struct tm_blocksrc **out, const char *path, unsigned flags, struct dmr_err *err);
void tm_blocksrc_close(struct tm_blocksrc *bs);

const char *tm_blocksrc_path(const struct tm_blocksrc *bs);
/* Whole 4 KiB blocks in the file or device. */
uint64_t tm_blocksrc_nr_blocks(const struct tm_blocksrc *bs);
/* "libaio+O_DIRECT", "pread+O_DIRECT" or "pread". */
const char *tm_blocksrc_engine(const struct tm_blocksrc *bs);

/* Allocates n block buffers, aligned for O_DIRECT. Free with free(). */
void *tm_block_alloc(size_t n);

/* Reads one block into buf (4096 bytes, any alignment). */
int tm_blocksrc_read(struct tm_blocksrc *bs, uint64_t block, void *buf, struct dmr_err *err);

/* Reads blocks[0..n) into bufs (n * 4096 bytes from tm_block_alloc): block
 * blocks[i] lands at bufs + i * 4096. status[i] is 0, or DMR_EIO /
 * DMR_ECORRUPT (beyond the end) for that block alone; the call itself fails
 * only when it cannot work at all (memory). */
int tm_blocksrc_read_many(struct tm_blocksrc *bs, const uint64_t *blocks, size_t n,
			  void *bufs, int *status, struct dmr_err *err);

/* A batch of reads that can be in flight while the caller works on the
 * previous one (libaio), or prefetched by the kernel (page cache). Start
 * it, do other work, then finish it: after finish, the buffers and the
 * status array are filled exactly as by tm_blocksrc_read_many. A batch
 * object is reused from one start/finish pair to the next. */
struct tm_read_batch;
struct tm_read_batch *tm_read_batch_new(struct tm_blocksrc *bs);
void tm_read_batch_free(struct tm_read_batch *b);
int tm_read_batch_start(struct tm_read_batch *b, const uint64_t *blocks, size_t n, void *bufs,
			int *status, struct dmr_err *err);
int tm_read_batch_finish(struct tm_read_batch *b, struct dmr_err *err);

#endif
