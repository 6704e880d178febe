/* SHA-256 (FIPS 180-4), for Docker's content ids: an image id is the
 * digest of its config file, a layer's chain id the digest of
 * "<parent chain> <diff id>". */
#ifndef DMR_UTIL_SHA256_H
#define DMR_UTIL_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_LEN 32
#define SHA256_HEX_LEN 64

struct sha256_ctx {
	uint32_t h[8];
	uint64_t nbytes; /* message length so far */
	unsigned char buf[64];
	size_t used;     /* bytes waiting in buf */
};

void sha256_init(struct sha256_ctx *c);
void sha256_update(struct sha256_ctx *c, const void *data, size_t len);
/* sha256_update of len zero bytes, faster (holes of sparse images). */
void sha256_update_zeros(struct sha256_ctx *c, uint64_t len);
void sha256_final(struct sha256_ctx *c, unsigned char out[SHA256_DIGEST_LEN]);

/* sha256_final, written as 64 lowercase hex characters and a NUL. */
void sha256_final_hex(struct sha256_ctx *c, char out[SHA256_HEX_LEN + 1]);

/* One-shot digest as 64 lowercase hex characters and a NUL. */
void sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LEN + 1]);

#endif
