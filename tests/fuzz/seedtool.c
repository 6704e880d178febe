/* Makes seed inputs for the metadata harnesses from the test fixtures.
 *
 *   seedtool image IN OUT       a pool's metadata cut to the blocks in use
 *   seedtool superblock IN OUT  the superblock harness's input from an image
 *
 * image: the fixtures are 64 MiB files whose blocks in use come first
 * (thin_restore allocates from the start); writes them (at least as many as
 * the metadata space map counts allocated)
 * with the superblock's metadata size set to match and resealed, so the
 * result is a whole, valid pool of a few dozen blocks. Exits 3 when the
 * pool needs more than the harnesses' 64 blocks.
 *
 * superblock: block 0, the held metadata snapshot block (zeros if none),
 * and the file size in blocks as a little-endian u64. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "thinmeta/crc32c.h"
#include "thinmeta/ondisk.h"

static unsigned char blocks[FUZZ_IMG_MAX_BLOCKS + 1][TM_BLOCK_SIZE];

static int is_zero(const unsigned char *p)
{
	for (size_t i = 0; i < TM_BLOCK_SIZE; i++)
		if (p[i])
			return 0;
	return 1;
}

static void die(const char *what, const char *path)
{
	fprintf(stderr, "seedtool: %s: %s\n", path, what);
	exit(1);
}

/* Reads up to max blocks; returns how many were read. */
static size_t read_blocks(const char *path, size_t max)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		die("cannot open it", path);
	size_t n = fread(blocks, TM_BLOCK_SIZE, max, f);
	if (ferror(f))
		die("cannot read it", path);
	fclose(f);
	return n;
}

static void write_out(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n || fclose(f))
		die("cannot write it", path);
}

static int cmd_image(const char *in, const char *out)
{
	/* One block more than fits: if it is in use, the pool does not fit. */
	size_t n = read_blocks(in, FUZZ_IMG_MAX_BLOCKS + 1);
	if (n == 0)
		die("empty", in);
	unsigned char *sb = blocks[0];
	uint64_t used = 0;
	for (size_t b = 0; b < n; b++)
		if (!is_zero(blocks[b]))
			used = b + 1;
	size_t msm = offsetof(struct tm_disk_superblock, metadata_space_map_root);
	size_t dsm = offsetof(struct tm_disk_superblock, data_space_map_root);
	uint64_t allocated = tm_le64(sb + msm + offsetof(struct tm_disk_sm_root, nr_allocated));
	if (allocated > used)
		used = allocated;
	uint64_t data_blocks = tm_le64(sb + dsm + offsetof(struct tm_disk_sm_root, nr_blocks));
	if (used > FUZZ_IMG_MAX_BLOCKS || data_blocks > used * TM_ENTRIES_PER_BITMAP) {
		fprintf(stderr, "seedtool: %s: needs more than %u blocks, skipped\n", in, FUZZ_IMG_MAX_BLOCKS);
		return 3;
	}
	tm_put_le64(sb + msm + offsetof(struct tm_disk_sm_root, nr_blocks), used);
	tm_put_le64(sb + offsetof(struct tm_disk_superblock, metadata_nr_blocks), used);
	tm_block_csum_set(sb, TM_SALT_SUPERBLOCK);
	write_out(out, blocks, (size_t)used * TM_BLOCK_SIZE);
	return 0;
}

static int cmd_superblock(const char *in, const char *out)
{
	size_t n = read_blocks(in, FUZZ_IMG_MAX_BLOCKS);
	static unsigned char seed[2 * TM_BLOCK_SIZE + 8];
	if (n == 0)
		die("empty", in);
	memcpy(seed, blocks[0], TM_BLOCK_SIZE);
	uint64_t held = tm_le64(blocks[0] + offsetof(struct tm_disk_superblock, held_root));
	if (held > 0 && held < n)
		memcpy(seed + TM_BLOCK_SIZE, blocks[held], TM_BLOCK_SIZE);
	tm_put_le64(seed + 2 * TM_BLOCK_SIZE, n);
	write_out(out, seed, sizeof(seed));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "image"))
		return cmd_image(argv[2], argv[3]);
	if (argc == 4 && !strcmp(argv[1], "superblock"))
		return cmd_superblock(argv[2], argv[3]);
	fprintf(stderr, "usage: seedtool image|superblock IN OUT\n");
	return 64;
}
