#include "config.h"
#include "image.h"
#include "fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "thinmeta/crc32c.h"

static const uint32_t salts[] = {
	TM_SALT_SUPERBLOCK, TM_SALT_BTREE_NODE, TM_SALT_BITMAP, TM_SALT_INDEX,
};

void fuzz_img_load(struct fuzz_img *img, const uint8_t *data, size_t size)
{
	if (size > FUZZ_IMG_MAX_BYTES)
		size = FUZZ_IMG_MAX_BYTES;
	img->nr_blocks = (size + TM_BLOCK_SIZE - 1) / TM_BLOCK_SIZE;
	if (size)
		memcpy(img->buf, data, size);
	memset(img->buf + size, 0, img->nr_blocks * TM_BLOCK_SIZE - size);
}

static int is_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

uint32_t fuzz_img_guess_salt(const struct fuzz_img *img, size_t b)
{
	const unsigned char *blk = img->buf + b * TM_BLOCK_SIZE;
	if (b == 0 || tm_le64(blk + offsetof(struct tm_disk_superblock, magic)) == TM_SUPERBLOCK_MAGIC)
		return TM_SALT_SUPERBLOCK;
	/* The metadata space map root's bitmap_root is the index block. */
	uint64_t index = tm_le64(img->buf + offsetof(struct tm_disk_superblock, metadata_space_map_root) +
				 offsetof(struct tm_disk_sm_root, bitmap_root));
	if (img->nr_blocks > 0 && b == index)
		return TM_SALT_INDEX;
	uint32_t flags = tm_le32(blk + offsetof(struct tm_disk_node_header, flags));
	if (flags == TM_NODE_INTERNAL || flags == TM_NODE_LEAF)
		return TM_SALT_BTREE_NODE;
	return TM_SALT_BITMAP;
}

size_t fuzz_img_reseal(struct fuzz_img *img)
{
	size_t changed = 0;
	for (size_t b = 0; b < img->nr_blocks; b++) {
		unsigned char *blk = img->buf + b * TM_BLOCK_SIZE;
		if (is_zero(blk, TM_BLOCK_SIZE))
			continue;
		uint32_t unsalted = tm_block_csum(blk, 0), stored = tm_le32(blk);
		int ok = 0;
		for (size_t i = 0; i < sizeof(salts) / sizeof(salts[0]); i++)
			ok |= stored == (unsalted ^ salts[i]);
		if (ok)
			continue;
		tm_put_le32(blk, unsalted ^ fuzz_img_guess_salt(img, b));
		changed++;
	}
	return changed;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
	size_t off = 0;
	while (off < n) {
		ssize_t w = pwrite(fd, p + off, n - off, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		off += (size_t)w;
	}
	return 0;
}

const char *fuzz_img_write(const struct fuzz_img *img)
{
	static char path[4200];
	static int fd = -1;
	if (fd < 0) {
		snprintf(path, sizeof(path), "%s/metadata", fuzz_tmpdir());
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0) {
			fprintf(stderr, "fuzz: cannot create %s: %s\n", path, strerror(errno));
			exit(2);
		}
	}
	size_t n = img->nr_blocks * TM_BLOCK_SIZE;
	if (ftruncate(fd, (off_t)n) < 0 || write_all(fd, img->buf, n) < 0) {
		fprintf(stderr, "fuzz: cannot write %s: %s\n", path, strerror(errno));
		exit(2);
	}
	return path;
}

void fuzz_img_dump(const struct fuzz_img *img, const char *name)
{
	const char *dir = getenv("FUZZ_DUMP_DIR");
	if (!dir || !*dir)
		return;
	char path[4200];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(img->buf, TM_BLOCK_SIZE, img->nr_blocks, f) != img->nr_blocks || fclose(f)) {
		fprintf(stderr, "fuzz: cannot write %s\n", path);
		exit(2);
	}
	fprintf(stderr, "fuzz: wrote %s (%zu blocks)\n", path, img->nr_blocks);
}

void fuzz_img_each(const uint8_t *data, size_t size,
		   void (*fn)(const char *path, const struct fuzz_img *img))
{
	static struct fuzz_img img;
	fuzz_img_load(&img, data, size);
	/* The raw pass mostly finds the block a mutation broke; it runs for one
	 * input in 8 (picked by a hash of the input, so replays repeat it). */
	int raw = (crc32c_raw(0, data, size) & 7u) == 0 || getenv("FUZZ_DUMP_DIR");
	if (raw) {
		fuzz_img_dump(&img, "raw.img");
		fn(fuzz_img_write(&img), &img);
	}
	if (fuzz_img_reseal(&img) == 0 && raw)
		return;
	fuzz_img_dump(&img, "resealed.img");
	fn(fuzz_img_write(&img), &img);
}
