/* Copies that keep what matters about a file: sparse copies (only the
 * allocated ranges are read and written; holes stay holes) and the
 * attributes a replacement file must carry to stand in for the original
 * (mode, owner, and extended attributes, security.selinux included).
 * Every write goes through util/safeio. */
#ifndef DMR_UTIL_FILECOPY_H
#define DMR_UTIL_FILECOPY_H

#include <stdint.h>

#include "util/err.h"

/* What fc_copy_sparse_digest computes of the source's content while
 * copying. */
enum fc_digest {
	FC_DIGEST_NONE,
	/* SHA-256 of the whole logical content, holes hashed as zeros: reads
	 * (or hashes) every byte of the size, so slow on a large sparse file. */
	FC_DIGEST_SHA256,
	/* fc_digest_nonzero's digest: costs only the data in use. */
	FC_DIGEST_NONZERO,
};

/* Copies src_fd (a regular file or a block device, read from offset 0 to
 * its size) into dst_fd (a new empty regular file): allocated ranges only
 * (SEEK_DATA/SEEK_HOLE; a block device or a filesystem without them is
 * read whole, and all-zero 64 KiB chunks are skipped), then sets dst's
 * size to src's. When sha256_hex is not NULL it gets the SHA-256 of the
 * whole logical content (holes hash as zeros) as 64 hex digits. Does not
 * fsync. what names the pair in errors ("metadata -> backup"). */
int fc_copy_sparse(int src_fd, int dst_fd, const char *what, uint64_t *bytes_written, char sha256_hex[65],
		   struct dmr_err *err);

/* fc_copy_sparse with the digest to compute while copying: hex (not NULL
 * unless digest is FC_DIGEST_NONE) gets it as 64 hex digits. */
int fc_copy_sparse_digest(int src_fd, int dst_fd, const char *what, uint64_t *bytes_written, enum fc_digest digest,
			  char hex[65], struct dmr_err *err);

/* A digest of a file's content that does not depend on where its holes
 * are, and whose cost is the data in use, not the size ("sha256-nonzero-4k"):
 * SHA-256 over, for each 4 KiB block (at offsets multiple of 4096) that is
 * not all zeros, in ascending order, the block's offset as a little-endian
 * 64-bit number followed by its 4096 bytes (a short last block padded with
 * zeros); then the size as a little-endian 64-bit number. Files with equal
 * content have equal digests, however sparse. Holes are never read (the
 * allocated ranges come from lf_allocated_ranges; where it cannot tell,
 * everything is read and all-zero blocks are skipped); a block device is
 * read whole. fd: a regular file or a block device, read with pread. */
int fc_digest_nonzero(int fd, char hex[65], struct dmr_err *err);

/* fc_digest_nonzero of the first len bytes of fd (all of it when fd is
 * shorter; the size hashed is the length covered); errors name what. */
int fc_digest_nonzero_len(int fd, uint64_t len, const char *what, char hex[65], struct dmr_err *err);

/* Gives dst_fd src_fd's mode, owner (when we may) and extended attributes
 * (all of them, so security.selinux too; a filesystem without xattrs is
 * not an error). Counts as one change for fault injection. */
int fc_copy_attrs(int src_fd, int dst_fd, const char *what, struct dmr_err *err);

#endif
