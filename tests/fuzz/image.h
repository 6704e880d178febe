/* Metadata images for the thin-pool harnesses: the fuzz input read as whole
 * 4 KiB blocks, optionally resealed, written to a scratch file the readers
 * open like any pool's metadata.
 *
 * Every metadata block carries a CRC-32C, so random mutations almost never
 * get past the first checksum. Resealing recomputes the checksum of each
 * block that does not already check under one of the four salts, with the
 * salt the block's place and content suggest (see fuzz_img_reseal). A block
 * that checks under some salt keeps its bytes: a valid bitmap copied where a
 * node is expected still fails as a node, as it would on disk. */
#ifndef DMR_TESTS_FUZZ_IMAGE_H
#define DMR_TESTS_FUZZ_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "thinmeta/ondisk.h"

/* Inputs are capped at 64 blocks (256 KiB): small enough to rewrite every
 * run, large enough for two-level trees and both space maps. */
#define FUZZ_IMG_MAX_BLOCKS 64u
#define FUZZ_IMG_MAX_BYTES ((size_t)FUZZ_IMG_MAX_BLOCKS * TM_BLOCK_SIZE)

struct fuzz_img {
	unsigned char buf[FUZZ_IMG_MAX_BYTES];
	size_t nr_blocks; /* 0..64: the input's length in blocks, rounded up */
};

/* The input as blocks: bytes past the end of a partial last block are zero,
 * bytes past 64 blocks are dropped. */
void fuzz_img_load(struct fuzz_img *img, const uint8_t *data, size_t size);

/* The salt fuzz_img_reseal would seal block b with. */
uint32_t fuzz_img_guess_salt(const struct fuzz_img *img, size_t b);

/* Reseals every non-zero block whose checksum matches none of the salts:
 *   block 0 and any block with the superblock magic: superblock salt;
 *   the block the superblock names as metadata space map index: index salt;
 *   node flags 1 (internal) or 2 (leaf) in the header: btree node salt;
 *   anything else: bitmap salt.
 * All-zero blocks stay zero (an unwritten block). Returns the number of
 * blocks changed. */
size_t fuzz_img_reseal(struct fuzz_img *img);

/* Writes the image to this process's scratch file (rewritten in place each
 * run) and returns its path. */
const char *fuzz_img_write(const struct fuzz_img *img);

/* Runs fn on the input as an image resealed and, for one input in 8 (and
 * always under FUZZ_DUMP_DIR), first as it is. path is the scratch file
 * holding img. */
void fuzz_img_each(const uint8_t *data, size_t size,
		   void (*fn)(const char *path, const struct fuzz_img *img));

/* Where a replayed input's images go when FUZZ_DUMP_DIR is set: raw.img and
 * resealed.img, so a finding can be run through dmrescue itself. */
void fuzz_img_dump(const struct fuzz_img *img, const char *name);

#endif
