/* Batched reads of many byte ranges of the pool's data file or device (the
 * mapped data blocks that reclaim --dig-zeroes and export look at).
 *
 * Reads go out through libaio with O_DIRECT, many in flight, where that
 * works; through pread with O_DIRECT where libaio does not (io_setup fails:
 * ENOSYS, EAGAIN when aio-max-nr is used up, EINVAL); through plain pread
 * where O_DIRECT is refused (some filesystems, at open or at the first
 * read). Decided at open, never fatal. Memory stays bounded: depth buffers
 * of chunk_size bytes, allocated once and reused. */
#ifndef DMR_LOOPFILE_AIOREAD_H
#define DMR_LOOPFILE_AIOREAD_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define LF_READ_ALIGN 512u                 /* offsets and lengths of ranges */
#define LF_READ_DEPTH_DEFAULT 32u          /* reads in flight (libaio) */
#define LF_READ_DEPTH_MAX 1024u
#define LF_READ_CHUNK_DEFAULT (256u * 1024u) /* bytes per read */
#define LF_READ_CHUNK_MAX (64u * 1024u * 1024u)

enum {
	LF_READ_NO_AIO = 1,    /* pread only ("pread+O_DIRECT", or "pread") */
	LF_READ_NO_DIRECT = 2, /* the page cache: "pread" (libaio needs O_DIRECT) */
};

struct lf_reader_opts {
	unsigned flags;    /* LF_READ_* */
	unsigned depth;    /* 0: LF_READ_DEPTH_DEFAULT; raised to it with libaio */
	size_t chunk_size; /* 0: LF_READ_CHUNK_DEFAULT; a multiple of 4096 */
};

struct lf_reader;

/* Opens PATH (a regular file or a block device) read-only. opts may be
 * NULL. The environment variable DMRESCUE_IO=pread forces plain pread,
 * DMRESCUE_IO=pread-direct pread with O_DIRECT (tests, benchmarks). */
int lf_reader_open(struct lf_reader **out, const char *path, const struct lf_reader_opts *opts,
		   struct dmr_err *err);
void lf_reader_close(struct lf_reader *r);

const char *lf_reader_path(const struct lf_reader *r);
/* Bytes in the file or device. */
uint64_t lf_reader_size(const struct lf_reader *r);
/* "libaio+O_DIRECT", "pread+O_DIRECT" or "pread": for -v. */
const char *lf_reader_method(const struct lf_reader *r);
/* Why a faster method was not used ("O_DIRECT refused: Invalid argument",
 * "io_setup: Resource temporarily unavailable"...), or NULL. */
const char *lf_reader_note(const struct lf_reader *r);
/* Reads in flight at most: the queue depth with libaio, 1 with pread. */
unsigned lf_reader_depth(const struct lf_reader *r);
size_t lf_reader_chunk_size(const struct lf_reader *r);

/* Counters since open. */
struct lf_read_stats {
	uint64_t bytes;     /* delivered to callbacks */
	uint64_t requests;  /* reads issued (each up to chunk_size bytes) */
	uint64_t resubmits; /* short reads whose remainder was read again */
	uint64_t buffered;  /* reads redone without O_DIRECT after EINVAL */
};
const struct lf_read_stats *lf_reader_stats(const struct lf_reader *r);

struct lf_read_range {
	uint64_t off; /* bytes; multiples of LF_READ_ALIGN */
	uint64_t len;
};

/* One piece of data handed to the callback: it lies inside one range and
 * holds at most chunk_size bytes. The buffer is valid during the call
 * only. */
struct lf_read_piece {
	size_t range;    /* index into the ranges array */
	uint64_t off;    /* byte offset in the file */
	const void *buf;
	size_t len;
};

/* Returns 0 to go on. Anything else stops the reads: a negative DMR_E*
 * code with err filled in, or a positive value for "stop, no error". */
typedef int (*lf_read_fn)(void *ctx, const struct lf_read_piece *piece, struct dmr_err *err);

/* Reads ranges[0..n) (any order; overlaps and repeats are read as often as
 * they are given; empty ranges give no call) and calls fn once for each
 * piece; the pieces of a range cover it exactly once, in any order. Reads
 * go out in ascending offset order, adjacent ranges joined up to
 * chunk_size. Every range is checked before anything is read: an
 * unaligned one is DMR_EUSAGE, one beyond the end of the file
 * DMR_ECORRUPT. A read error, or a file that became shorter, is DMR_EIO
 * naming the path and offset; a short read is continued, never handed
 * on as it stands. Unsorted input costs an index of n words. When
 * fn stops the reads, the ones in flight are waited for and dropped, and
 * fn's value is returned. fn must not call lf_read_ranges on the same
 * reader (DMR_EUSAGE). */
int lf_read_ranges(struct lf_reader *r, const struct lf_read_range *ranges, size_t n, lf_read_fn fn,
		   void *ctx, struct dmr_err *err);

/* 1 when buf[0..len) is all zero bytes. */
int lf_is_zero(const void *buf, size_t len);

#endif
