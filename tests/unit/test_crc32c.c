/* CRC-32C and the dm-persistent-data block checksum. */
#include "unit.h"

#include <stdlib.h>

#include "thinmeta/crc32c.h"
#include "thinmeta/ondisk.h"

/* Bit-at-a-time reference: reflected Castagnoli, no inversions. */
static uint32_t crc_ref(uint32_t crc, const unsigned char *p, size_t len)
{
	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
	}
	return crc;
}

static void test_check_value(void **state)
{
	(void)state;
	static const char s[] = "123456789";
	assert_int_equal(~crc32c_raw(~0u, s, 9), 0xE3069283u);
	assert_int_equal(~crc32c_raw_table(~0u, s, 9), 0xE3069283u);
	assert_int_equal(~crc_ref(~0u, (const unsigned char *)s, 9), 0xE3069283u);
	/* Raw: no final inversion. */
	assert_int_equal(crc32c_raw(~0u, s, 9), ~0xE3069283u);
	/* Empty input leaves the seed alone. */
	assert_int_equal(crc32c_raw(0x12345678u, s, 0), 0x12345678u);
	assert_int_equal(crc32c_raw_table(0x12345678u, s, 0), 0x12345678u);
}

static void test_incremental(void **state)
{
	(void)state;
	/* Raw updates chain: crc(a||b) = crc(crc(a), b). */
	static const char s[] = "The quick brown fox jumps over the lazy dog";
	size_t n = strlen(s);
	uint32_t whole = crc32c_raw(~0u, s, n);
	for (size_t cut = 0; cut <= n; cut++) {
		uint32_t a = crc32c_raw(~0u, s, cut);
		assert_int_equal(crc32c_raw(a, s + cut, n - cut), whole);
		uint32_t t = crc32c_raw_table(~0u, s, cut);
		assert_int_equal(crc32c_raw_table(t, s + cut, n - cut), whole);
	}
}

static void test_doc_vectors(void **state)
{
	(void)state;
	unsigned char *blk = calloc(1, TM_BLOCK_SIZE);
	assert_non_null(blk);
	assert_int_equal(crc32c_raw(0xffffffffu, blk + 4, 4092), 0x58CDA791u);
	assert_int_equal(crc32c_raw_table(0xffffffffu, blk + 4, 4092), 0x58CDA791u);
	assert_int_equal(tm_block_csum(blk, TM_SALT_SUPERBLOCK), 0x58CFD397u);
	assert_int_equal(tm_block_csum(blk, TM_SALT_BTREE_NODE), 0x58CC7E82u);
	assert_int_equal(tm_block_csum(blk, TM_SALT_BITMAP), 0x58CE0B1Au);
	assert_int_equal(tm_block_csum(blk, TM_SALT_INDEX), 0x58CFD54Fu);
	/* The csum field itself is not covered. */
	memset(blk, 0xab, 4);
	assert_int_equal(tm_block_csum(blk, TM_SALT_BTREE_NODE), 0x58CC7E82u);
	/* The salts are the documented values. */
	assert_int_equal(TM_SALT_SUPERBLOCK, 160774);
	assert_int_equal(TM_SALT_BTREE_NODE, 121107);
	assert_int_equal(TM_SALT_BITMAP, 240779);
	assert_int_equal(TM_SALT_INDEX, 160478);
	free(blk);
}

static void test_hw_matches_table(void **state)
{
	(void)state;
	if (!crc32c_has_hw())
		print_message("no SSE4.2 here: crc32c_raw uses the table; comparing with the reference only\n");
	enum { MAX = 70000 };
	unsigned char *buf = malloc(MAX + 16);
	assert_non_null(buf);
	uint64_t rs = 42;
	for (size_t i = 0; i < MAX + 16; i++)
		buf[i] = (unsigned char)unit_rand(&rs);
	static const size_t lens[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65,
				       255, 256, 257, 1000, 4092, 4096, 4097, 8191, 65536, MAX };
	for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
		for (size_t align = 0; align < 16; align++) {
			size_t len = lens[li];
			uint32_t seed = (uint32_t)unit_rand(&rs);
			uint32_t hw = crc32c_raw(seed, buf + align, len);
			uint32_t tb = crc32c_raw_table(seed, buf + align, len);
			if (hw != tb)
				fail_msg("len %zu align %zu seed 0x%08x: hw 0x%08x table 0x%08x", len, align, seed, hw, tb);
			if (len <= 4097) {
				uint32_t ref = crc_ref(seed, buf + align, len);
				if (tb != ref)
					fail_msg("len %zu align %zu: table 0x%08x reference 0x%08x", len, align, tb, ref);
			}
		}
	}
	/* Random lengths and offsets too. */
	for (int i = 0; i < 2000; i++) {
		size_t off = (size_t)(unit_rand(&rs) % 16);
		size_t len = (size_t)(unit_rand(&rs) % 5000);
		uint32_t seed = (uint32_t)unit_rand(&rs);
		uint32_t tb = crc32c_raw_table(seed, buf + off, len);
		assert_int_equal(crc32c_raw(seed, buf + off, len), tb);
		assert_int_equal(crc_ref(seed, buf + off, len), tb);
	}
	free(buf);
}

static void test_block_csum_roundtrip(void **state)
{
	(void)state;
	static const uint32_t salts[] = { TM_SALT_SUPERBLOCK, TM_SALT_BTREE_NODE, TM_SALT_BITMAP, TM_SALT_INDEX };
	unsigned char *blk = malloc(TM_BLOCK_SIZE);
	assert_non_null(blk);
	uint64_t rs = 7;
	for (size_t s = 0; s < 4; s++) {
		for (size_t i = 0; i < TM_BLOCK_SIZE; i++)
			blk[i] = (unsigned char)unit_rand(&rs);
		tm_block_csum_set(blk, salts[s]);
		assert_true(tm_block_csum_ok(blk, salts[s]));
		/* Stored little-endian at offset 0, as the formula says. */
		uint32_t want = crc_ref(0xffffffffu, blk + 4, TM_BLOCK_SIZE - 4) ^ salts[s];
		assert_int_equal(blk[0] | blk[1] << 8 | blk[2] << 16 | (uint32_t)blk[3] << 24, want);
		/* A different salt (another block type) does not match. */
		for (size_t o = 0; o < 4; o++)
			if (o != s)
				assert_false(tm_block_csum_ok(blk, salts[o]));
		/* Any flipped bit, in the payload or the csum, is caught. */
		static const size_t where[] = { 0, 3, 4, 5, 100, 2048, TM_BLOCK_SIZE - 1 };
		for (size_t w = 0; w < sizeof(where) / sizeof(where[0]); w++) {
			blk[where[w]] ^= 0x10;
			assert_false(tm_block_csum_ok(blk, salts[s]));
			blk[where[w]] ^= 0x10;
			assert_true(tm_block_csum_ok(blk, salts[s]));
		}
	}
	free(blk);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_value),
		cmocka_unit_test(test_incremental),
		cmocka_unit_test(test_doc_vectors),
		cmocka_unit_test(test_hw_matches_table),
		cmocka_unit_test(test_block_csum_roundtrip),
	};
	return cmocka_run_group_tests_name("crc32c", tests, NULL, unit_tmp_cleanup);
}
