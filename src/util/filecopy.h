/* Copies that keep what matters about a file: sparse copies (only the
 * allocated ranges are read and written; holes stay holes) and the
 * attributes a replacement file must carry to stand in for the original
 * (mode, owner, and extended attributes, security.selinux included).
 * Every write goes through util/safeio. */
#ifndef DMR_UTIL_FILECOPY_H
#define DMR_UTIL_FILECOPY_H

#include <stdint.h>

#include "util/err.h"

/* Copies src_fd (a regular file or a block device, read from offset 0 to
 * its size) into dst_fd (a new empty regular file): allocated ranges only
 * (SEEK_DATA/SEEK_HOLE; a block device or a filesystem without them is
 * read whole, and all-zero 64 KiB chunks are skipped), then sets dst's
 * size to src's. When sha256_hex is not NULL it gets the SHA-256 of the
 * whole logical content (holes hash as zeros) as 64 hex digits. Does not
 * fsync. what names the pair in errors ("metadata -> backup"). */
int fc_copy_sparse(int src_fd, int dst_fd, const char *what, uint64_t *bytes_written, char sha256_hex[65],
		   struct dmr_err *err);

/* Gives dst_fd src_fd's mode, owner (when we may) and extended attributes
 * (all of them, so security.selinux too; a filesystem without xattrs is
 * not an error). Counts as one change for fault injection. */
int fc_copy_attrs(int src_fd, int dst_fd, const char *what, struct dmr_err *err);

#endif
