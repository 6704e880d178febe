#include "config.h"
#include "thinmeta/datamap.h"
#include "thinmeta/ondisk.h"

#include <stdlib.h>

#define CHUNK_BLOCKS TM_ENTRIES_PER_BITMAP

struct tm_datamap_chunk {
	uint8_t count[CHUNK_BLOCKS / 4]; /* 2 bits a block */
	uint32_t owner[CHUNK_BLOCKS];
};

int tm_datamap_init(struct tm_datamap *m, uint64_t nr_blocks)
{
	m->nr_blocks = nr_blocks;
	m->nr_chunks = (nr_blocks + CHUNK_BLOCKS - 1) / CHUNK_BLOCKS;
	m->chunk = calloc((size_t)m->nr_chunks + 1, sizeof(*m->chunk));
	return m->chunk ? 0 : DMR_ENOMEM;
}

void tm_datamap_free(struct tm_datamap *m)
{
	if (m->chunk)
		for (uint64_t i = 0; i < m->nr_chunks; i++)
			free(m->chunk[i]);
	free(m->chunk);
	m->chunk = NULL;
}

int tm_datamap_add(struct tm_datamap *m, uint64_t b, uint64_t len, uint32_t dev)
{
	while (len > 0) {
		uint64_t ci = b / CHUNK_BLOCKS;
		uint32_t off = (uint32_t)(b % CHUNK_BLOCKS);
		uint64_t n = CHUNK_BLOCKS - off;
		if (n > len)
			n = len;
		struct tm_datamap_chunk *c = m->chunk[ci];
		if (!c) {
			c = m->chunk[ci] = calloc(1, sizeof(*c));
			if (!c)
				return DMR_ENOMEM;
		}
		for (uint32_t i = off; i < off + n; i++) {
			unsigned sh = 2u * (i % 4u);
			unsigned v = (c->count[i / 4] >> sh) & 3u;
			if (v == 0) {
				c->owner[i] = dev;
				c->count[i / 4] |= (uint8_t)(1u << sh);
			} else if (v == 1) {
				c->count[i / 4] = (uint8_t)((c->count[i / 4] & ~(3u << sh)) | (2u << sh));
			}
		}
		b += n;
		len -= n;
	}
	return 0;
}

unsigned tm_datamap_count(const struct tm_datamap *m, uint64_t b)
{
	if (b >= m->nr_blocks)
		return 0;
	const struct tm_datamap_chunk *c = m->chunk[b / CHUNK_BLOCKS];
	if (!c)
		return 0;
	uint32_t i = (uint32_t)(b % CHUNK_BLOCKS);
	return (c->count[i / 4] >> (2u * (i % 4u))) & 3u;
}

void tm_datamap_exclusive_runs(const struct tm_datamap *m,
			       void (*fn)(void *ctx, uint32_t dev, uint64_t b, uint64_t len), void *ctx)
{
	uint64_t run_b = 0, run_len = 0;
	uint32_t run_dev = 0;
	for (uint64_t ci = 0; ci < m->nr_chunks; ci++) {
		const struct tm_datamap_chunk *c = m->chunk[ci];
		if (!c)
			continue;
		for (uint32_t i = 0; i < CHUNK_BLOCKS; i++) {
			if (((c->count[i / 4] >> (2u * (i % 4u))) & 3u) != 1)
				continue;
			uint64_t b = ci * CHUNK_BLOCKS + i;
			if (run_len && run_dev == c->owner[i] && run_b + run_len == b) {
				run_len++;
				continue;
			}
			if (run_len)
				fn(ctx, run_dev, run_b, run_len);
			run_b = b;
			run_len = 1;
			run_dev = c->owner[i];
		}
	}
	if (run_len)
		fn(ctx, run_dev, run_b, run_len);
}
