/* CRC-32C (Castagnoli) and the dm-persistent-data block checksum. */
#ifndef DMR_THINMETA_CRC32C_H
#define DMR_THINMETA_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Raw CRC-32C update: no pre- or post-inversion (kernel crc32c(seed, ...)). */
uint32_t crc32c_raw(uint32_t seed, const void *buf, size_t len);

/* The same computed with the portable table only, for tests. */
uint32_t crc32c_raw_table(uint32_t seed, const void *buf, size_t len);

/* Whether crc32c_raw uses the SSE4.2 instruction on this CPU. */
int crc32c_has_hw(void);

/* The checksum stored at offset 0 of a 4 KiB metadata block:
 * crc32c_raw(~0, block + 4, 4092) ^ salt. */
uint32_t tm_block_csum(const void *block, uint32_t salt);

/* Computes and stores the checksum of a block (LE u32 at offset 0). */
void tm_block_csum_set(void *block, uint32_t salt);

/* 1 when the stored checksum matches. */
int tm_block_csum_ok(const void *block, uint32_t salt);

#endif
