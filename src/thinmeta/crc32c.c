#include "config.h"
#include "thinmeta/crc32c.h"
#include "thinmeta/ondisk.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__) && defined(HAVE_CPUID_H)
#include <cpuid.h>
#define DMR_CRC_X86 1
#endif

#define CRC32C_POLY 0x82F63B78u

static uint32_t crc_table[8][256];
static int crc_hw;
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc32c_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1u)));
		crc_table[0][i] = c;
	}
	/* Slicing-by-8 tables. */
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
#ifdef DMR_CRC_X86
	unsigned a, b, c, d;
	if (__get_cpuid(1, &a, &b, &c, &d))
		crc_hw = (c & bit_SSE4_2) != 0;
#endif
}

uint32_t crc32c_raw_table(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	pthread_once(&crc_once, crc32c_init);
	while (len >= 8) {
		uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
		crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
		      crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
		      crc_table[3][p[4]] ^ crc_table[2][p[5]] ^ crc_table[1][p[6]] ^ crc_table[0][p[7]];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
	return crc;
}

#ifdef DMR_CRC_X86
__attribute__((target("sse4.2")))
static uint32_t crc32c_raw_hw(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint64_t c = crc;
	while (len >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		len -= 8;
	}
	uint32_t c32 = (uint32_t)c;
	while (len--)
		c32 = __builtin_ia32_crc32qi(c32, *p++);
	return c32;
}
#endif

int crc32c_has_hw(void)
{
	pthread_once(&crc_once, crc32c_init);
	return crc_hw;
}

uint32_t crc32c_raw(uint32_t crc, const void *buf, size_t len)
{
#ifdef DMR_CRC_X86
	if (crc32c_has_hw())
		return crc32c_raw_hw(crc, buf, len);
#endif
	return crc32c_raw_table(crc, buf, len);
}

uint32_t tm_block_csum(const void *block, uint32_t salt)
{
	return crc32c_raw(0xffffffffu, (const unsigned char *)block + 4, TM_BLOCK_SIZE - 4) ^ salt;
}

void tm_block_csum_set(void *block, uint32_t salt)
{
	tm_put_le32(block, tm_block_csum(block, salt));
}

int tm_block_csum_ok(const void *block, uint32_t salt)
{
	return tm_le32(block) == tm_block_csum(block, salt);
}
