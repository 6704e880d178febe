/* The pool consistency checker: everything thin_check 0.9.0 checks
 * (superblock, every btree node, key order and ranges, underfull nodes,
 * metadata reference counts against reachability) and what it misses
 * (data reference counts, mapped_blocks, the device sets of the two trees,
 * mappings beyond the pool, needs_check, the space maps against the file
 * sizes). Damage is walked past: each damaged node is one finding naming
 * the tree, the block and what it loses, and the check goes on.
 *
 * Shared nodes are descended once and counted once per parent reference,
 * as the kernel counts them; a data block's expected count is the number of
 * distinct leaves holding it (plus those of a held metadata snapshot). */
#ifndef DMR_THINMETA_CHECK_H
#define DMR_THINMETA_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "thinmeta/pool.h"

enum tm_severity {
	TM_SEV_INFO = 0,    /* worth knowing, nothing wrong */
	TM_SEV_WARNING = 1, /* non-fatal: the pool works, something is off (exit 1) */
	TM_SEV_FATAL = 2,   /* damage: data or metadata is wrong or lost (exit 2) */
};

/* Finding codes: stable identifiers, part of the JSON schema. */
#define TM_CHK_BAD_NODE "bad-node"                  /* checksum, blocknr, flags, sizes, key order */
#define TM_CHK_NODE_RANGE "node-out-of-range"       /* block beyond the metadata */
#define TM_CHK_KEY_RANGE "key-outside-parent-range"
#define TM_CHK_UNBALANCED "unbalanced-tree"
#define TM_CHK_CYCLE "tree-cycle"
#define TM_CHK_UNDERFULL "underfull-node"           /* non-root node below max_entries/3 */
#define TM_CHK_MAPPING_BEYOND "mapping-beyond-pool" /* data block >= nr_data_blocks */
#define TM_CHK_MAPPED_BLOCKS "mapped-blocks-wrong"  /* details mapped_blocks != mappings */
#define TM_CHK_DEVICE_NO_DETAILS "device-without-details"
#define TM_CHK_DEVICE_NO_MAPPING "device-without-mapping-tree"
#define TM_CHK_META_UNDERCOUNT "metadata-count-low"  /* on-disk count below the references */
#define TM_CHK_META_OVERCOUNT "metadata-count-high"  /* above the references, but referenced */
#define TM_CHK_META_LEAK "metadata-leak"             /* counted, not referenced */
#define TM_CHK_DATA_UNDERCOUNT "data-count-low"      /* includes mapped blocks the space map calls free */
#define TM_CHK_DATA_OVERCOUNT "data-count-high"
#define TM_CHK_DATA_LEAK "data-leak"
#define TM_CHK_SM_BAD "space-map-damaged"            /* bitmap, index or overflow tree unreadable or wrong */
#define TM_CHK_SUPERBLOCK "superblock"               /* fatal problems of block 0 */
#define TM_CHK_NEEDS_CHECK "needs-check-set"
#define TM_CHK_METADATA_SIZE "metadata-size"         /* space map vs file size */
#define TM_CHK_DATA_SIZE "data-file-short"           /* data file shorter than the pool */
#define TM_CHK_SNAPSHOT "metadata-snapshot"          /* held snapshot problems */

struct tm_finding {
	enum tm_severity severity;
	const char *code;      /* TM_CHK_* */
	uint64_t block;        /* metadata block concerned, or UINT64_MAX */
	int64_t dev_id;        /* thin device concerned, or -1 */
	char msg[320];         /* one line, naming the block and what is lost */
};

struct tm_check_opts {
	const char *data_path; /* NULL: skip the data file size check */
	int skip_data_counts;  /* do not compare data reference counts */
};

typedef void (*tm_finding_fn)(void *ctx, const struct tm_finding *f);

struct tm_check_stats {
	uint64_t meta_blocks_checked; /* distinct metadata blocks read and verified */
	uint64_t nodes;               /* btree nodes */
	uint64_t mappings;            /* mappings in distinct leaves */
	uint64_t devices;
	unsigned long findings[3];    /* by severity */
};

/* Checks the pool; every finding goes to fn. Returns 0 when the check ran
 * (whatever it found), negative only when it could not run (memory). */
int tm_check_pool(struct tm_pool *p, const struct tm_check_opts *opts, tm_finding_fn fn, void *ctx,
		  struct tm_check_stats *stats, struct dmr_err *err);

#endif
