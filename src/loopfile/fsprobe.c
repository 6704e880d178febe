#include "config.h"
#include "loopfile/fsprobe.h"
#include "loopfile/thinread.h"

#include <blkid.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_WINDOW_BLOCKS 2u /* 128 KiB needs at most 2 data blocks (64 KiB each) */
#define CACHE_SLOTS 64u

struct probe_cache {
	uint64_t key[MAX_WINDOW_BLOCKS]; /* data block + 1 per window block; 0 = unmapped */
	unsigned nkey;
	int used;
	struct lf_fsinfo info;
};

struct lf_prober {
	struct tm_pool *p;
	int data_fd;
	uint64_t data_bytes;
	unsigned char *buf;
	struct probe_cache cache[CACHE_SLOTS];
	unsigned next_slot;
};

int lf_prober_new(struct lf_prober **out, struct tm_pool *p, int data_fd, uint64_t data_bytes, struct dmr_err *err)
{
	struct lf_prober *pr = calloc(1, sizeof(*pr));
	if (!pr || !(pr->buf = malloc(LF_PROBE_BYTES))) {
		free(pr);
		return dmr_err_set(err, DMR_ENOMEM, "out of memory");
	}
	pr->p = p;
	pr->data_fd = data_fd;
	pr->data_bytes = data_bytes;
	*out = pr;
	return 0;
}

void lf_prober_free(struct lf_prober *pr)
{
	if (pr)
		free(pr->buf);
	free(pr);
}

static void copy_value(blkid_probe bp, const char *name, char *dst, size_t dstlen)
{
	const char *v = NULL;
	size_t len = 0;
	dst[0] = '\0';
	if (blkid_probe_lookup_value(bp, name, &v, &len) == 0 && v)
		snprintf(dst, dstlen, "%s", v);
}

/* Probes len bytes of fd at off. */
static int probe_fd(int fd, uint64_t off, uint64_t len, struct lf_fsinfo *out, struct dmr_err *err)
{
	memset(out, 0, sizeof(*out));
	blkid_probe bp = blkid_new_probe();
	if (!bp)
		return dmr_err_set(err, DMR_ENOMEM, "libblkid: cannot make a probe");
	int r = 0;
	if (blkid_probe_set_device(bp, fd, (blkid_loff_t)off, (blkid_loff_t)len) != 0) {
		r = dmr_err_set(err, DMR_EIO, "libblkid: cannot probe at offset %llu", (unsigned long long)off);
		goto out;
	}
	blkid_probe_enable_superblocks(bp, 1);
	blkid_probe_set_superblocks_flags(bp, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_UUID | BLKID_SUBLKS_LABEL);
	blkid_probe_enable_partitions(bp, 0);
	/* 0: found; 1: nothing; -2: ambivalent (several signatures); -1: error. */
	int rc = blkid_do_safeprobe(bp);
	if (rc == 0) {
		out->found = 1;
		copy_value(bp, "TYPE", out->type, sizeof(out->type));
		copy_value(bp, "UUID", out->uuid, sizeof(out->uuid));
		copy_value(bp, "LABEL", out->label, sizeof(out->label));
	} else if (rc == -2) {
		out->found = 1;
		snprintf(out->type, sizeof(out->type), "ambivalent");
	} else if (rc < 0) {
		r = dmr_err_set(err, DMR_EIO, "libblkid: probe failed at offset %llu", (unsigned long long)off);
	}
out:
	blkid_free_probe(bp);
	return r;
}

int lf_probe_buffer(const void *buf, size_t len, struct lf_fsinfo *out, struct dmr_err *err)
{
	/* libblkid probes file descriptors: an unlinked temporary file works
	 * everywhere (no memfd on old glibc). */
	FILE *tf = tmpfile();
	if (!tf)
		return dmr_err_set(err, DMR_EIO, "cannot make a temporary file to probe: %s", strerror(errno));
	int r = 0;
	if (fwrite(buf, 1, len, tf) != len || fflush(tf) != 0)
		r = dmr_err_set(err, DMR_EIO, "cannot write a temporary file to probe: %s", strerror(errno));
	else
		r = probe_fd(fileno(tf), 0, len, out, err);
	fclose(tf);
	return r;
}

int lf_probe_device(struct lf_prober *pr, uint64_t root, struct lf_fsinfo *out, struct dmr_err *err)
{
	struct tm_pool *p = pr->p;
	uint64_t bs = (uint64_t)p->sb.data_block_size * 512u;
	unsigned nwin = (unsigned)((LF_PROBE_BYTES + bs - 1) / bs);
	uint64_t key[MAX_WINDOW_BLOCKS] = { 0 };
	int contiguous = 1;
	for (unsigned i = 0; i < nwin; i++) {
		uint64_t d;
		uint32_t t;
		int r = tm_mapping_lookup(p, root, i, &d, &t, err);
		if (r == DMR_ENOENT) {
			contiguous = 0;
			continue;
		}
		if (r)
			return r;
		key[i] = d + 1;
		if (i > 0 && key[i] != key[i - 1] + 1)
			contiguous = 0;
	}
	/* Same first blocks, same bytes, same answer. */
	for (unsigned s = 0; s < CACHE_SLOTS; s++) {
		const struct probe_cache *c = &pr->cache[s];
		if (c->used && c->nkey == nwin && memcmp(c->key, key, sizeof(key)) == 0) {
			*out = c->info;
			return 0;
		}
	}
	int r;
	uint64_t len = LF_PROBE_BYTES < bs * nwin ? LF_PROBE_BYTES : bs * nwin;
	if (key[0] == 0 && (nwin == 1 || key[1] == 0)) {
		memset(out, 0, sizeof(*out)); /* nothing mapped: reads as zeros */
		r = 0;
	} else if (contiguous && (key[0] - 1) * bs + len <= pr->data_bytes) {
		r = probe_fd(pr->data_fd, (key[0] - 1) * bs, len, out, err);
	} else {
		r = lf_thin_read(p, root, pr->data_fd, pr->data_bytes, 0, pr->buf, (size_t)len, err);
		if (!r)
			r = lf_probe_buffer(pr->buf, (size_t)len, out, err);
	}
	if (r)
		return r;
	struct probe_cache *c = &pr->cache[pr->next_slot++ % CACHE_SLOTS];
	memcpy(c->key, key, sizeof(key));
	c->nkey = nwin;
	c->used = 1;
	c->info = *out;
	return 0;
}
