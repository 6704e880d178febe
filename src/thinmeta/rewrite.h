/* Removing thin devices from pool metadata, offline, the way the kernel's
 * `delete` message does, with copy-on-write so that a crash at any write
 * leaves the committed state intact.
 *
 * What changes (see ../shared/docs/thin-metadata-format.md sections 5.1, 5.2):
 * - Each removed device's bottom-level tree is deleted like the kernel's
 *   dm_btree_del: a node whose metadata count is > 1 is decremented and not
 *   descended (it is shared with another device), otherwise its children
 *   (internal) or data blocks (leaf) are decremented and the node is freed.
 * - The device details tree and the top level of the mapping tree are
 *   rebuilt without the removed devices (bulk-built, every non-root node at
 *   least max/3 full); the old trees are released with the same dm_btree_del
 *   rule, so the kept device roots keep exactly one reference from the new
 *   top level, and nodes shared with a held metadata snapshot stay.
 * - The space maps are written anew from the resulting counts: new bitmaps,
 *   a new metadata index block, a new data index tree and new overflow
 *   (ref-count) trees.
 * - Every block written is one that is free in the committed space map
 *   (count 0 before we start); nothing in use is ever overwritten, except
 *   the superblock, written last, between two fsyncs. trans_id, time,
 *   flags, uuid, data block size and the held root stay as they are.
 *
 * So the same code works in place (a metadata block device) and on a
 * private copy that the caller renames over the original (loop files).
 * Metadata blocks in use afterwards never exceed those before, except with
 * a held metadata snapshot: it keeps the old top level and details tree
 * (and the removed devices' trees), so the new ones add to them.
 *
 * The kept devices' trees are not read: a pool whose space map undercounts
 * them would have them overwritten. Check the pool (check.h) first. */
#ifndef DMR_THINMETA_REWRITE_H
#define DMR_THINMETA_REWRITE_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

struct tm_rewrite_result {
	uint64_t nr_removed;           /* devices removed */
	uint64_t meta_used_before, meta_used_after;   /* metadata blocks with count > 0 */
	uint64_t data_used_before, data_used_after;   /* data blocks with count > 0 */
	uint64_t blocks_written;       /* metadata blocks written, superblock included */
};

/* Opens path read-write, removes devices ids[0..n) (each must exist in
 * both the details tree and the mapping tree: DMR_ENOENT naming the id
 * otherwise; an id given twice is removed once), writes through util/safeio (so fault injection covers every
 * write), fsyncs, writes the superblock, fsyncs. With n == 0 nothing is
 * written. On damage anywhere it reads (bad checksum, a count that would
 * go below zero, a block out of range) it stops with DMR_ECORRUPT before
 * the superblock is written, naming the file and block. When the
 * committed state has too few free metadata blocks for the new trees,
 * bitmaps and index: DMR_EUNSUPP saying how many it needs and has, nothing
 * written. */
int tm_rewrite_remove(const char *path, const uint64_t *ids, size_t n, struct tm_rewrite_result *res,
		      struct dmr_err *err);

/* What tm_rewrite_remove(path, ids, n) would do, without doing it: opens
 * path read-only (no write access needed) and writes nothing, but reads,
 * releases, allocates and builds exactly as the removal does, so res gets
 * the figures the removal would produce (blocks_written: the blocks it
 * would write, superblock included; data_used_before - data_used_after:
 * the data blocks it frees, a block shared by removed devices once) and
 * the errors are the same (DMR_ENOENT, DMR_ECORRUPT, DMR_EUNSUPP, with the
 * same messages). */
int tm_rewrite_plan(const char *path, const uint64_t *ids, size_t n, struct tm_rewrite_result *res,
		    struct dmr_err *err);

#endif
