/* A whole bbolt database as a tree in memory, read and written back: what
 * --buildkit-unreferenced needs to rewrite buildkit/snapshots.db (and to
 * read BuildKit's other databases). Loading is strict: any problem the
 * reader (buildkit.c) finds makes it fail, since a database rewritten from
 * a damaged one would lose what could not be read. Writing lays the tree
 * out as bbolt's own node.write / Bucket.write / DB.init do (etcd-io/bbolt
 * page.go, node.go, bucket.go, db.go): one fresh file, every page reachable,
 * an empty freelist, both meta pages valid. */
#ifndef DMR_DOCKER_BOLT_H
#define DMR_DOCKER_BOLT_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* bbolt's own limits (bucket.go MaxKeySize, MaxValueSize). */
#define DK_BOLT_MAX_KEY 32768u
#define DK_BOLT_MAX_VALUE ((size_t)0x7ffffffe)

struct dk_bolt_bucket;

struct dk_bolt_item {
	unsigned char *key;
	size_t klen;
	unsigned char *val; /* a plain value (may be NULL when vlen is 0), unless sub */
	size_t vlen;
	struct dk_bolt_bucket *sub; /* a nested bucket, or NULL */
};

/* Items in bbolt's order (bytewise on the keys, shorter first). */
struct dk_bolt_bucket {
	struct dk_bolt_item *items;
	size_t n, cap;
	uint64_t sequence; /* NextSequence's counter, kept as is */
	int never_inline;  /* dk_bolt_write: pages of its own even when it would fit inline
			    * (as bbolt leaves a bucket it did not touch); 0 from dk_bolt_load */
};

struct dk_bolt_db {
	struct dk_bolt_bucket *root; /* the root bucket: top-level buckets (and keys) */
	uint32_t page_size;
	uint64_t txid;
};

/* Reads the whole database (its newest valid meta). DMR_ECORRUPT for any
 * damage, with the first problem; DMR_ENOMEM. */
int dk_bolt_load(const unsigned char *db, size_t len, struct dk_bolt_db *out, struct dmr_err *err);
void dk_bolt_db_free(struct dk_bolt_db *db);

/* Lookups by a NUL-terminated key; NULL when absent. */
const struct dk_bolt_item *dk_bolt_get(const struct dk_bolt_bucket *b, const char *key);
const struct dk_bolt_bucket *dk_bolt_bucket_at(const struct dk_bolt_bucket *b, const char *key);
/* Removes key (and what it holds); 1 when it was there. */
int dk_bolt_delete(struct dk_bolt_bucket *b, const char *key);

/* A new file holding db (its page size; txid db->txid + 1): *out is
 * malloc'd, *len bytes. DMR_EUSAGE for a key or value beyond bbolt's
 * limits, DMR_ENOMEM. */
int dk_bolt_write(const struct dk_bolt_db *db, unsigned char **out, size_t *len, struct dmr_err *err);

/* Layouts bbolt makes over a database's life that a fresh write does not,
 * for tests of the reader (tests/fixtures/buildkit/boltwriter.c). */
struct dk_bolt_write_opts {
	size_t leaf_fill;                   /* bytes of a leaf node before the next one starts: the page size
					     * when 0; more gives one leaf with overflow pages */
	const struct dk_bolt_bucket *older; /* a second tree, written first, for the older meta page; NULL:
					     * both meta pages point at db's tree */
};

/* dk_bolt_write with opts (NULL: as dk_bolt_write). */
int dk_bolt_write_with(const struct dk_bolt_db *db, const struct dk_bolt_write_opts *opts, unsigned char **out,
		       size_t *len, struct dmr_err *err);

/* The meta page checksum: 64-bit FNV-1a (hash/fnv New64a) over the meta
 * up to its checksum field. */
uint64_t dk_bolt_fnv64a(const unsigned char *p, size_t n);

/* 1 when the two trees hold the same keys, values, buckets and sequences. */
int dk_bolt_equal(const struct dk_bolt_bucket *a, const struct dk_bolt_bucket *b);

#endif
