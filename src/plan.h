/* What clean will do, decided before anything is touched: the devices to
 * remove from the pool, the Docker files and directories to remove (or
 * rewrite), in the order Docker itself would, and what was left alone and
 * why. Built from the inventory's classes and from explicit targets; prints
 * nothing (cmd_clean formats it).
 *
 * Order on disk (cmd_clean): Docker's records are removed first, the thing
 * that refers before the thing referred to (containers/<id>, then
 * layerdb/mounts/<id>, then layerdb/sha256/<chain>, then metadata/<hash>,
 * then mnt/<hash>), and the pool last. A crash in between leaves devices
 * without a metadata file: pool orphans, which Docker ignores and the next
 * clean removes by default. */
#ifndef DMR_PLAN_H
#define DMR_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "docker/state.h"
#include "inventory.h"
#include "util/err.h"

/* Opt-in classes (the default ones are always in). */
enum {
	PLAN_DRIVER_ORPHANS = 1u << 0,      /* driver-orphan and orphan-mount */
	PLAN_HOLLOW_FILES = 1u << 1,
	PLAN_DEAD_CONTAINERS = 1u << 2,
	PLAN_UNREFERENCED_LAYERS = 1u << 3,
	PLAN_BAD_FILES = 1u << 4,
	/* BuildKit's build cache, dropped whole (docker builder prune -a):
	 * buildkit/ moved into the backup, and every device only BuildKit
	 * knows (its snapshots, and devices named like BuildKit keys that
	 * nothing knows) removed. Layers that images use stay. */
	PLAN_BUILDKIT_CACHE = 1u << 5,
	/* Only the BuildKit snapshots nothing refers to (docker/bkrefs.h):
	 * their buckets dropped from buildkit/snapshots.db (rewritten whole,
	 * first), their devices removed; what BuildKit's cache records and
	 * leases still use stays valid. Refused (class_refused) when the
	 * records or leases cannot be read. Not in --all: it rewrites
	 * BuildKit's database, so it is asked for by name. Implied by
	 * PLAN_BUILDKIT_CACHE, which drops everything. */
	PLAN_BUILDKIT_UNREFERENCED = 1u << 6,
	PLAN_NO_DEFAULTS = 1u << 8,         /* explicit targets only */
};

struct plan_opts {
	unsigned flags;
	const char *const *devices;    /* thin ids or hashes */
	size_t nr_devices;
	const char *const *containers; /* names or ids (unique prefixes of 12+) */
	size_t nr_containers;
	const char *const *images;     /* references, ids or chain ids */
	size_t nr_images;
};

struct plan_dev {
	uint64_t thin_id;
	const char *hash;        /* NULL: no Docker file */
	enum inv_class cls;
	char *reason;
	uint64_t mapped_blocks, exclusive_blocks;
	int is_protected;        /* removed only because it was named explicitly */
};

enum plan_file_op {
	PLAN_REMOVE,           /* file or directory: moved into the backup */
	PLAN_REWRITE_REPOS,    /* repositories.json without the tags in drop_tags */
	PLAN_REWRITE_BOLT,     /* buildkit/snapshots.db without the buckets in drop_snapshots */
};

struct plan_file {
	enum plan_file_op op;
	char *path;            /* relative to the Docker root */
	char *reason;
	int rank;              /* removal order: lower first */
	int optional;          /* may be absent (not read by the scan) */
};

struct plan_skip {
	char *what;
	char *why;
};

struct plan {
	struct plan_dev *devs;     /* ascending thin id */
	size_t nr_devs, cap_devs;
	struct plan_file *files;   /* in the order they are changed */
	size_t nr_files, cap_files;
	struct plan_skip *skips;
	size_t nr_skips, cap_skips;
	char **drop_tags;          /* repositories.json references to drop */
	size_t nr_drop_tags, cap_drop_tags;
	int refused;               /* an explicit target cannot be removed (see skips) */
	char **drop_snapshots;     /* buildkit/snapshots.db buckets to drop, sorted */
	size_t nr_drop_snapshots, cap_drop_snapshots;
	char *class_refused;       /* an opt-in class cannot be planned safely: one line why */
};

/* Builds the plan. An explicit target that does not exist or that
 * something still depends on sets refused and adds a skip saying why;
 * other problems (memory) fail. */
int plan_build(struct plan *pl, const struct inventory *inv, const struct dk_state *st, const struct plan_opts *o,
	       struct dmr_err *err);
void plan_free(struct plan *pl);

/* 1 when the plan changes nothing. */
int plan_empty(const struct plan *pl);

/* 1 when the object carries the label "protected" (any value): the
 * convention of 'docker system prune --filter label!=protected'. */
int plan_labels_protected(const struct dk_label *labels, size_t n);

#endif
