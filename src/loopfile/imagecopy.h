/* A thin device's virtual contents as a sparse image file: its mapped
 * extents read from the pool's data file with the batched reader and
 * written at their virtual offsets; everything else stays a hole (the
 * kernel reads an unmapped block as zeros), and so do pieces read as all
 * zeros. Then the image's SHA-256, read back from the file as sha256sum
 * would read it, its holes hashed as zeros without reading them. */
#ifndef DMR_LOOPFILE_IMAGECOPY_H
#define DMR_LOOPFILE_IMAGECOPY_H

#include <stddef.h>
#include <stdint.h>

#include "loopfile/aioread.h"
#include "util/sha256.h"

/* Virtual blocks [vblock, vblock+len) are data blocks [dblock, dblock+len). */
struct lf_extent {
	uint64_t vblock, dblock, len;
};

struct lf_copy_stats {
	uint64_t bytes_read;    /* from the data file */
	uint64_t bytes_written; /* to the image */
	uint64_t bytes_zero;    /* read as zeros and left as holes */
	uint64_t writes;
};

/* Copies x[0..n) (blocks of block_bytes, a multiple of LF_READ_ALIGN) from
 * the reader to out_fd (the image, already sized; out_path names it in
 * errors), pwrite through util/safeio. A data extent beyond the data file
 * is DMR_ECORRUPT naming the virtual blocks, checked before anything is
 * read. progress (may be NULL) gets bytes read so far of the total. */
int lf_copy_extents(struct lf_reader *r, const struct lf_extent *x, size_t n, uint64_t block_bytes, int out_fd,
		    const char *out_path, void (*progress)(void *ctx, uint64_t done, uint64_t total), void *pctx,
		    struct lf_copy_stats *st, struct dmr_err *err);

/* SHA-256 of fd's first size bytes, as 64 hex digits: data read with
 * pread, holes (SEEK_DATA/SEEK_HOLE) hashed as zeros. */
int lf_sha256_sparse(int fd, uint64_t size, const char *path, void (*progress)(void *ctx, uint64_t done, uint64_t total),
		     void *pctx, char hex[SHA256_HEX_LEN + 1], struct dmr_err *err);

#endif
