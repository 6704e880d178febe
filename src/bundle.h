/* The support bundle format (dmrescue.bundle/1): Docker's small state files
 * and the pool metadata blocks in use, in one gzip stream (RFC 1952):
 *
 *   "DMRESCUE-BUNDLE1" (16 bytes)
 *   manifest length (8 bytes, little-endian), the manifest (JSON)
 *   the entries' contents, one after the other, in manifest order
 *   "DMRESCUE-BNDLEND" (16 bytes), SHA-256 of the manifest (32 bytes)
 *
 * The manifest names each entry (path relative to the Docker root, size,
 * SHA-256, kind) and records where the bundle came from (the root, the
 * metadata and data paths, the pool's name prefix) so that reading it shows
 * the original names. The metadata entry holds, per block in use, its
 * number (8 bytes, little-endian, ascending) and its 4 KiB; with the
 * metadata file's size from the manifest, that rebuilds the file sparse.
 * Directories are entries of their own (scan reports empty ones), and
 * files whose content is not Docker's state (what sits in devicemapper/mnt/
 * and layerdb/tmp/write-set-*) are placeholders: name and size only,
 * rebuilt as sparse files. The reader checks everything (gzip CRC,
 * lengths, every SHA-256, paths, duplicates) before extracting. */
#ifndef DMR_BUNDLE_H
#define DMR_BUNDLE_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define BUNDLE_SCHEMA "dmrescue.bundle/1"
#define BUNDLE_META_PATH "devicemapper/devicemapper/metadata"
#define BUNDLE_BLOCK 4096
#define BUNDLE_REC (8 + BUNDLE_BLOCK) /* one metadata block record */
#define BUNDLE_PATH_MAX 4096

/* What a bundle reader allows: the largest metadata device dm-thin takes
 * (just under 16 GiB), and placeholders no larger than a data file. */
#define BUNDLE_META_FILE_MAX ((uint64_t)16 << 30)
#define BUNDLE_PLACEHOLDER_MAX ((uint64_t)1 << 44)

enum bundle_kind {
	BUNDLE_FILE = 0,
	BUNDLE_METADATA_BLOCKS = 1,
	BUNDLE_DIR = 2,         /* a directory (no content) */
	BUNDLE_PLACEHOLDER = 3, /* a file of file_size bytes whose content is left out */
};

struct bundle_entry {
	char *path; /* relative, no "." or ".." components */
	enum bundle_kind kind;
	unsigned char *data;
	size_t len;
	uint64_t file_size; /* BUNDLE_PLACEHOLDER: the original file's size */
};

struct bundle {
	struct bundle_entry *e;
	size_t n, cap;
	uint64_t meta_file_size; /* bytes of the metadata file (with a metadata entry) */
	int redacted;            /* Env values of config.v2.json replaced */
	/* Where it was made (absolute paths as the host named them, or NULL):
	 * what reading it shows instead of the extraction directory. */
	char *source;        /* the Docker root */
	char *metadata_path; /* the pool metadata */
	char *data_path;     /* the pool data */
	char *pool_prefix;   /* Docker's device name prefix, "docker-MAJ:MIN-INO" */
};

/* Appends an entry, taking data (malloc'd, may be NULL when len is 0)
 * over; on failure data is freed. */
int bundle_add(struct bundle *b, const char *path, enum bundle_kind kind, unsigned char *data, size_t len,
	       struct dmr_err *err);
void bundle_free(struct bundle *b);

/* 1 when path is a safe relative path (no "", ".", ".." components, no
 * leading '/', no control characters). */
int bundle_path_ok(const char *path);

/* config.v2.json (len bytes of data) with the value of every "NAME=value"
 * of Config.Env replaced by "<redacted>", as compact JSON (malloc'd, its
 * length in *out_len). NULL when it does not parse (leave the file out:
 * never leak) or when out of memory. */
unsigned char *bundle_redact_env(const char *data, size_t len, size_t *out_len);

/* Writes the bundle as a gzip stream to fd (a new file) through safeio;
 * what names the file. Returns the bytes written in *out_len. */
int bundle_write(const struct bundle *b, int fd, const char *what, uint64_t *out_len, struct dmr_err *err);

/* Reads and verifies the bundle at path (opened read-only). A file that is
 * not a bundle, truncated or damaged is DMR_ECORRUPT; an unreadable one
 * DMR_EIO. Memory is bounded by the file's size (what deflate can expand
 * it to) and a fixed cap. */
int bundle_read(const char *path, struct bundle *out, struct dmr_err *err);

/* Extracts into the existing empty directory dir: the files and
 * directories, placeholders and the metadata file rebuilt sparse. Never
 * follows a symlink found below dir. On failure what was written stays:
 * the caller removes dir. */
int bundle_extract(const struct bundle *b, const char *dir, struct dmr_err *err);

/* Removes dir and everything below it (not following symlinks). */
void bundle_rmtree(const char *dir);

#endif
