/* The inventory: every pool device and every Docker file joined and
 * classified, with the evidence for each class, what each device holds,
 * and what the pool could give back. Built from the readers' plain structs;
 * prints nothing (the scan and ls commands format it). */
#ifndef DMR_INVENTORY_H
#define DMR_INVENTORY_H

#include <stddef.h>
#include <stdint.h>

#include "docker/state.h"
#include "loopfile/fsprobe.h"
#include "thinmeta/pool.h"
#include "thinmeta/usage.h"

enum inv_class {
	INV_BASE,
	INV_IMAGE_LAYER,
	INV_CONTAINER,
	INV_CONTAINER_INIT,
	INV_BUILDKIT,
	/* leftovers */
	INV_OPEN_TRANSACTION,
	INV_BAD_FILE,
	INV_HOLLOW_FILE,
	INV_POOL_ORPHAN,
	INV_DEFERRED_DELETED,
	INV_HALF_REMOVED_LAYER,
	INV_DEAD_CONTAINER,
	INV_ORPHAN_MOUNT,
	INV_UNREFERENCED_LAYER,
	INV_DRIVER_ORPHAN,
	INV_TRANSIENT,
	INV_CLASS_COUNT
};

/* What is known about one device or file: the facts the rules test. */
enum inv_fact {
	INV_F_FILE = 1u << 0,            /* a metadata/<hash> file (or legacy json entry) */
	INV_F_POOL = 1u << 1,            /* a device in the pool */
	INV_F_BASE = 1u << 2,            /* the base device (file "base") */
	INV_F_FILE_INVALID = 1u << 3,    /* the file does not parse: Docker will not start */
	INV_F_DELETED = 1u << 4,         /* "deleted": true */
	INV_F_TXN_OPEN = 1u << 5,        /* named by a transaction ahead of the pool */
	INV_F_LAYER = 1u << 6,           /* a layerdb layer's cache-id (c/s: a layer id) */
	INV_F_LAYER_PINNED = 1u << 7,    /* ... that an image or a container uses */
	INV_F_LAYER_REMOVING = 1u << 8,  /* a *-removing layer's cache-id (c/s: incomplete) */
	INV_F_MOUNT = 1u << 9,           /* a layerdb/mounts mount-id or init-id (c/s: container layer) */
	INV_F_MOUNT_INIT = 1u << 10,     /* ... its init-id */
	INV_F_CONTAINER = 1u << 11,      /* ... of an existing container */
	INV_F_CONTAINER_DEAD = 1u << 12, /* ... that is Dead or being removed */
	INV_F_BUILDKIT = 1u << 13,       /* a key in buildkit/snapshots.db */
	INV_F_TRANSIENT = 1u << 14,      /* only a file or directory, no device */
};

struct inv_rule {
	enum inv_class cls;
	unsigned need;    /* all of these facts */
	unsigned reject;  /* none of these */
};

/* The rule table, in the order it is applied: the first match wins. */
extern const struct inv_rule inv_rules[];
extern const size_t inv_nr_rules;

/* Applies the rules to a set of facts. */
enum inv_class inv_classify(unsigned facts);

const char *inv_class_name(enum inv_class c);     /* "pool-orphan" */
const char *inv_class_title(enum inv_class c);    /* "Pool orphans" */
const char *inv_class_meaning(enum inv_class c);  /* one sentence */
const char *inv_class_action(enum inv_class c);   /* what to do */
int inv_class_is_leftover(enum inv_class c);

struct inv_item {
	enum inv_class cls;
	unsigned facts;
	int64_t thin_id;                  /* -1: no pool device */
	const char *hash;                 /* NULL: no Docker hash ("" is the base) */
	const char *path;                 /* transients and files: relative to the root */
	const struct tm_device *dev;      /* pool side, or NULL */
	const struct dk_devfile *file;    /* Docker side, or NULL */
	int has_usage;
	struct tm_dev_usage usage;
	struct lf_fsinfo fs;
	uint64_t size_bytes;              /* virtual size from the file; 0 unknown */
	uint64_t transient_bytes;
	/* owners (pointers into the state) */
	const char **images;              /* image tags, or ids when untagged */
	size_t nr_images;
	const char **containers;          /* "name (id12)" strings owned by the item */
	size_t nr_containers;
	const char **layers;              /* chain ids */
	size_t nr_layers;
	char **evidence;                  /* owned lines */
	size_t nr_evidence;
};

struct inv_pool {
	uint64_t data_block_bytes;
	uint64_t data_blocks, data_used, data_free;
	uint64_t meta_blocks, meta_used;
	uint64_t trans_id;
	int needs_check;
	uint64_t held_root;
	uint64_t free_but_mapped;  /* inconsistent: space map says free, a device maps it */
	uint64_t held_unmapped;    /* counted, but mapped by no live device */
	int reclaim_known;         /* the data file could be examined */
	uint64_t reclaim_bytes;    /* what reclaim would punch: occupied bytes over free blocks */
	uint64_t reclaim_runs;     /* ... in this many calls (free blocks' runs until measured) */
	uint64_t data_file_bytes;
	uint64_t data_file_allocated;
	const char *reclaim_note;  /* why unknown, when it is */
};

struct inventory {
	struct inv_item *items;   /* sorted: pool devices by thin id, then file-only, then transients */
	size_t nr_items;
	struct inv_pool pool;
	const char **strings;     /* strings made for owners, freed with the inventory */
	size_t nr_strings, cap_strings;
};

struct dmr_pool_view;

/* Joins the pool (its devices and their usage: usage->dev indexed like
 * v->roots) with Docker's state. data_path may be NULL (no data file: no fs
 * probe, reclaim unknown). */
int inv_build(struct inventory *inv, struct tm_pool *p, const struct tm_devlist *devs, const size_t *dev_of_root,
	      size_t nroots, const struct tm_usage *usage, const struct dk_state *st, const char *data_path,
	      struct dmr_err *err);
void inv_free(struct inventory *inv);

/* The item of a pool device, by device index in devs (or NULL). */
const struct inv_item *inv_item_for_device(const struct inventory *inv, uint64_t thin_id);

/* The owner to show in one column: a container, else an image, else a
 * layer; "-" for none (and for no item). */
const char *inv_item_owner(const struct inv_item *it);

#endif
