/* Reading a thin device's content offline: its virtual bytes, through its
 * mapping tree, from the pool's data file or device. Unmapped blocks read
 * as zeros, as the kernel returns them. */
#ifndef DMR_LOOPFILE_THINREAD_H
#define DMR_LOOPFILE_THINREAD_H

#include <stddef.h>
#include <stdint.h>

#include "thinmeta/pool.h"

/* Reads [off, off+len) of the device whose mapping tree is at root into
 * buf. data_fd is the data file or device; data_bytes its size (a mapped
 * block beyond it is an error naming the block). */
int lf_thin_read(struct tm_pool *p, uint64_t root, int data_fd, uint64_t data_bytes, uint64_t off, void *buf,
		 size_t len, struct dmr_err *err);

#endif
