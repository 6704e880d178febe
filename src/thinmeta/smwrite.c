#include "config.h"
#include "thinmeta/smwrite.h"
#include "thinmeta/crc32c.h"

#include <string.h>

/* The 2 bits of a count (0..3) in a bitmap word: the lower-numbered bit is
 * the high bit of the count (see tm_bitmap_entry). */
static uint64_t bitmap_pair(unsigned count, unsigned shift)
{
	return (((uint64_t)(count >> 1) & 1u) | ((uint64_t)(count & 1u) << 1)) << shift;
}

void tm_bitmap_put(void *bitmap_block, uint32_t i, unsigned count)
{
	unsigned char *wp = (unsigned char *)bitmap_block + sizeof(struct tm_disk_bitmap_header) + 8u * (i / 32u);
	unsigned sh = 2u * (i % 32u);
	tm_put_le64(wp, (tm_le64(wp) & ~(3ull << sh)) | bitmap_pair(count, sh));
}

void tm_bitmap_build(void *buf, uint64_t blocknr, const uint32_t *counts, uint64_t nr_blocks, uint64_t k,
		     struct tm_disk_index_entry *ie)
{
	unsigned char *p = buf;
	uint64_t first = k * TM_ENTRIES_PER_BITMAP;
	uint32_t n = nr_blocks - first < TM_ENTRIES_PER_BITMAP ? (uint32_t)(nr_blocks - first) : TM_ENTRIES_PER_BITMAP;
	uint32_t used = 0, none_free_before = n;
	memset(p, 0, TM_BLOCK_SIZE);
	tm_put_le64(p + 8, blocknr);
	for (uint32_t w = 0; w * 32u < n; w++) {
		uint64_t word = 0;
		for (uint32_t j = 0; j < 32u && w * 32u + j < n; j++) {
			uint32_t c = counts[first + w * 32u + j];
			word |= bitmap_pair(c > 3 ? 3 : c, 2u * j);
			used += c != 0;
			if (c == 0 && none_free_before == n)
				none_free_before = w * 32u + j;
		}
		tm_put_le64(p + sizeof(struct tm_disk_bitmap_header) + 8u * w, word);
	}
	tm_block_csum_set(p, TM_SALT_BITMAP);
	ie->blocknr = htole64(blocknr);
	ie->nr_free = htole32(TM_ENTRIES_PER_BITMAP - used);
	ie->none_free_before = htole32(none_free_before);
}

void tm_metadata_index_build(void *buf, uint64_t blocknr, const struct tm_disk_index_entry *ie, uint64_t nr)
{
	struct tm_disk_metadata_index mi;
	if (nr > TM_MAX_METADATA_BITMAPS)
		nr = TM_MAX_METADATA_BITMAPS;
	memset(&mi, 0, sizeof(mi));
	mi.blocknr = htole64(blocknr);
	memcpy(mi.index, ie, (size_t)nr * sizeof(*ie));
	memcpy(buf, &mi, sizeof(mi));
	tm_block_csum_set(buf, TM_SALT_INDEX);
}

uint64_t tm_counts_nonzero(const uint32_t *counts, uint64_t n)
{
	uint64_t a = 0;
	for (uint64_t i = 0; i < n; i++)
		a += counts[i] != 0;
	return a;
}

uint64_t tm_counts_overflowing(const uint32_t *counts, uint64_t n)
{
	uint64_t a = 0;
	for (uint64_t i = 0; i < n; i++)
		a += counts[i] >= 3;
	return a;
}

void tm_counts_overflow_pairs(const uint32_t *counts, uint64_t n, uint64_t *keys, unsigned char *values)
{
	size_t k = 0;
	for (uint64_t i = 0; i < n; i++) {
		if (counts[i] < 3)
			continue;
		keys[k] = i;
		tm_put_le32(values + 4u * k, counts[i]);
		k++;
	}
}

void tm_sm_root_encode(void *raw, const struct tm_sm_root *r)
{
	unsigned char *p = raw;
	tm_put_le64(p, r->nr_blocks);
	tm_put_le64(p + 8, r->nr_allocated);
	tm_put_le64(p + 16, r->bitmap_root);
	tm_put_le64(p + 24, r->ref_count_root);
}
