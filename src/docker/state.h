/* Docker's (or containers/storage's) on-disk state under a root directory,
 * read into plain structs. The readers never print and never stop at a bad
 * file: each problem becomes a dk_problem and the scan goes on. Everything
 * is opened read-only, confined to the root (symlinks are not followed), and
 * every file read is bounded in size.
 *
 * Formats: ../shared/docs/docker-devicemapper.md (sections 1, 4, 7.1). */
#ifndef DMR_DOCKER_STATE_H
#define DMR_DOCKER_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

enum dk_layout {
	DK_LAYOUT_NONE = 0,   /* no driver home found under the root */
	DK_LAYOUT_DOCKER,     /* ROOT/devicemapper, ROOT/image/devicemapper, ROOT/containers */
	DK_LAYOUT_CSTORAGE,   /* ROOT/devicemapper, ROOT/devicemapper-{layers,images,containers} */
};

/* Something wrong with one file or directory; never fatal for the scan. */
struct dk_problem {
	char *path; /* relative to the root */
	char *msg;  /* one line: what is wrong ("not JSON", "symlink leading outside the root", ...) */
};

/* metadata/<hash>, metadata/base, or an entry of the legacy devicemapper/json. */
struct dk_devfile {
	char *hash;           /* "" for the base device */
	char *name;           /* path relative to the root (metadata/<name>) */
	int valid;            /* parsed, with a device_id in 0..0xffffff */
	int64_t device_id;    /* -1 when unknown */
	uint64_t size;        /* virtual size, bytes */
	uint64_t transaction_id;
	int initialized;
	int deleted;          /* "deleted": true (deferred deletion) */
	int has_deleted_key;  /* files from Docker <= 1.8 lack it */
	int from_legacy_json; /* only in devicemapper/json, not migrated */
	char *error;          /* why not valid (also reported as a problem) */
};

/* metadata/transaction-metadata */
struct dk_txn {
	int present;
	int valid; /* Docker ignores a parse error (fields read as zero) */
	uint64_t open_transaction_id;
	char *device_hash; /* "" for the base */
	int64_t device_id; /* -1 when unknown */
};

/* metadata/deviceset-metadata */
struct dk_deviceset {
	int present;
	int valid; /* Docker refuses to start when it does not parse */
	int64_t next_device_id; /* -1 when absent */
	char *base_uuid;        /* BaseDeviceUUID, NULL when absent */
	char *base_fs;          /* BaseDeviceFilesystem, NULL when absent */
};

/* A leftover that is only a file or directory, no device. */
enum dk_transient_kind {
	DK_TRANSIENT_METADATA_TMP,   /* metadata/.tmp* */
	DK_TRANSIENT_WRITE_SET,      /* image/devicemapper/layerdb/tmp/write-set-* */
	DK_TRANSIENT_IMAGEDB_TMP,    /* imagedb/content/sha256/.tmp-* */
	DK_TRANSIENT_MNT_EMPTY,      /* mnt/<hash>, an empty directory */
	DK_TRANSIENT_MNT_NONEMPTY,   /* mnt/<hash> with files in it (written while unmounted) */
	DK_TRANSIENT_STRAY,          /* another file in metadata/ that would stop Docker from starting */
};

struct dk_transient {
	enum dk_transient_kind kind;
	char *path;     /* relative to the root */
	uint64_t bytes; /* apparent bytes (recursive for directories, bounded walk) */
};

/* image/devicemapper/layerdb/sha256/<chain>[-<random>-removing]/ */
struct dk_layer {
	char *chain_id;  /* "sha256:<hex>" from the directory name */
	char *dir;       /* path relative to the root */
	char *cache_id;  /* the devicemapper hash; NULL when unreadable */
	char *diff_id;   /* "sha256:<hex>" */
	char *parent;    /* "sha256:<chain>" or NULL for a bottom layer */
	uint64_t size;
	int removing;    /* a *-removing directory: deletion in progress */
	char *error;     /* a file that Docker cannot read: the layer (and those above) is skipped */
};

/* image/devicemapper/layerdb/mounts/<name>/ */
struct dk_mount {
	char *name;      /* the container ID for containers, random for builders */
	char *mount_id;  /* hash of the RW device */
	char *init_id;   /* hash of the -init device, or NULL */
	char *parent;    /* "sha256:<chain>" of the top image layer, or NULL */
	char *error;
};

struct dk_label {
	char *key;
	char *value;
};

/* imagedb/content/sha256/<id> with its tags from repositories.json. */
struct dk_image {
	char *id;          /* "sha256:<hex>" */
	char **diff_ids;   /* rootfs.diff_ids, bottom first */
	size_t nr_diff_ids;
	char **chain_ids;  /* computed from diff_ids: chain_ids[i] pins layer i */
	char **tags;       /* "busybox:latest", "busybox@sha256:..." */
	size_t nr_tags;
	struct dk_label *labels; /* config.Labels */
	size_t nr_labels;
	char *top_layer;   /* containers/storage: the top layer id; NULL for Docker */
	char *error;
};

/* containers/<id>/config.v2.json (Docker) or containers.json (c/storage). */
struct dk_container {
	char *id;
	char *name;      /* without the leading '/' */
	char *image;     /* "sha256:<imageID>" (Docker) or the image id (c/storage) */
	char *driver;    /* "devicemapper" expected */
	int running, paused, restarting, dead, removal_in_progress;
	struct dk_label *labels; /* Config.Labels */
	size_t nr_labels;
	char *layer;     /* containers/storage: the container's layer id (= device hash) */
	char *error;
};

/* One bucket of buildkit/snapshots.db. */
struct dk_buildkit_snapshot {
	char *key;       /* the 25-character base-36 snapshot id (= device hash) */
	char *parent;    /* parent key or NULL */
	char *chain_id;  /* set once it became an image layer */
	int committed;
	char *committed_to; /* "committed": the key (device) this name was committed from */
};

/* containers/storage layers.json entry. */
struct dk_cs_layer {
	char *id;        /* = the device hash */
	char *parent;
	char **names;
	size_t nr_names;
	int incomplete;  /* flags.incomplete: a half-made layer */
};

struct dk_state {
	char *root;             /* as given */
	enum dk_layout layout;
	char *home;             /* driver home relative to the root: "devicemapper" */
	char *prefix;           /* "docker-MAJ:MIN-INO" or "container-MAJ:MIN-INO", from HOME's st_dev/st_ino */
	char *pool_name;        /* prefix + "-pool" */

	struct dk_devfile *files;
	size_t nr_files;
	struct dk_txn txn;
	struct dk_deviceset deviceset;
	int legacy_json;          /* devicemapper/devicemapper/json present (not yet migrated) */
	int legacy_json_migrated; /* json.migrated present */

	struct dk_transient *transients;
	size_t nr_transients;

	struct dk_layer *layers;
	size_t nr_layers;
	struct dk_mount *mounts;
	size_t nr_mounts;
	struct dk_image *images;
	size_t nr_images;
	struct dk_container *containers;
	size_t nr_containers;
	struct dk_buildkit_snapshot *buildkit;
	size_t nr_buildkit;
	int buildkit_present;     /* buildkit/snapshots.db exists */
	int buildkit_damaged;     /* snapshots.db did not read cleanly (a problem says why) */
	/* The snapshot keys BuildKit's cache records (buildkit/metadata_v2.db)
	 * and leases (buildkit/containerdmeta.db) refer to, sorted
	 * (docker/bkrefs.h). buildkit_refs_read: both databases were read;
	 * otherwise buildkit_refs_error says why not (NULL without
	 * snapshots.db). Not a problem of the scan: Docker does not need them. */
	char **buildkit_refs;
	size_t nr_buildkit_refs;
	int buildkit_refs_read;
	char *buildkit_refs_error;
	struct dk_cs_layer *cs_layers;
	size_t nr_cs_layers;

	struct dk_problem *problems;
	size_t nr_problems;
};

/* Reads everything under root. Fails (DMR_EIO) only when root itself cannot
 * be opened; a root with no driver home gives layout DK_LAYOUT_NONE. */
int dk_state_read(const char *root, struct dk_state *st, struct dmr_err *err);
void dk_state_free(struct dk_state *st);

/* Lookups (linear or binary; the state is small). */
const struct dk_devfile *dk_state_file_by_hash(const struct dk_state *st, const char *hash);
const struct dk_devfile *dk_state_file_by_device_id(const struct dk_state *st, int64_t device_id);

/* Lookups by what a user types (docker/lookup.c). */
const struct dk_container *dk_container_by_id(const struct dk_state *st, const char *id);
/* By name (with or without the leading '/'), else by id prefix; *many is
 * set (and one of them returned) when several ids start with arg. */
const struct dk_container *dk_container_find(const struct dk_state *st, const char *arg, int *many);
/* layerdb/mounts/<id>: the container's read-write (mount-id) and -init devices. */
const struct dk_mount *dk_mount_of_container(const struct dk_state *st, const char *id);
/* A layer that is not being removed, by "sha256:<chain>". */
const struct dk_layer *dk_layer_by_chain(const struct dk_state *st, const char *chain);
/* The chain id of an image's top layer, or NULL. */
const char *dk_image_top_chain(const struct dk_image *im);
/* By reference (name[:tag], name@digest; ":latest" implied; *by_tag set),
 * else by id prefix ("sha256:" optional) or the full chain id of its top
 * layer; *many is set when several images match. */
const struct dk_image *dk_image_find(const struct dk_state *st, const char *arg, int *by_tag, int *many);

/* Docker's own major/minor split of st_dev (not glibc's): the pool prefix. */
unsigned dk_dev_major(uint64_t dev);
unsigned dk_dev_minor(uint64_t dev);

#endif
