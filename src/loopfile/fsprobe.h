/* The filesystem on a thin device, probed with libblkid from the device's
 * first 128 KiB read through its mapping (enough for xfs, ext2/3/4 and
 * btrfs superblocks). Devices whose first blocks map to the same data
 * blocks (snapshots that never rewrote their superblock) share one probe. */
#ifndef DMR_LOOPFILE_FSPROBE_H
#define DMR_LOOPFILE_FSPROBE_H

#include <stddef.h>
#include <stdint.h>

#include "thinmeta/pool.h"

#define LF_PROBE_BYTES (128u * 1024u)

struct lf_fsinfo {
	int found;       /* a filesystem was recognised */
	char type[32];   /* "xfs", "ext4"... */
	char uuid[64];
	char label[128];
};

struct lf_prober;

/* data_fd/data_bytes: the pool's data file or device. */
int lf_prober_new(struct lf_prober **out, struct tm_pool *p, int data_fd, uint64_t data_bytes, struct dmr_err *err);
void lf_prober_free(struct lf_prober *pr);

/* Probes the device whose mapping tree is at root. A device with nothing
 * recognisable gives found = 0 and returns 0; damage or I/O errors return
 * an error naming the block. */
int lf_probe_device(struct lf_prober *pr, uint64_t root, struct lf_fsinfo *out, struct dmr_err *err);

/* Probes a buffer (for tests and for callers that already hold the bytes). */
int lf_probe_buffer(const void *buf, size_t len, struct lf_fsinfo *out, struct dmr_err *err);

#endif
