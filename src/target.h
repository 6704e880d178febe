/* What a forensics command is pointed at, as a user names it: a thin id, a
 * Docker device hash, a container (name or id prefix: its read-write
 * device, or its -init device), an image (reference, id prefix or top
 * chain id: its top layer, or the n-th from the bottom) or a layer's chain
 * id. Resolved against Docker's state into one thin device, with the size
 * Docker gave it and a description for people. Prints nothing. */
#ifndef DMR_TARGET_H
#define DMR_TARGET_H

#include <stddef.h>
#include <stdint.h>

#include "docker/state.h"
#include "util/err.h"

enum dmr_target_kind {
	DMR_TARGET_THIN_ID,
	DMR_TARGET_HASH,
	DMR_TARGET_CONTAINER,
	DMR_TARGET_IMAGE,
	DMR_TARGET_LAYER,
};

struct dmr_target_opts {
	int init;       /* a container's -init device instead of its read-write one */
	unsigned layer; /* an image's layer, 1 = the bottom one; 0 = the top */
};

struct dmr_target {
	enum dmr_target_kind kind;
	uint64_t thin_id;
	const char *hash;               /* Docker's hash ("" the base), NULL when unknown; points into st */
	const struct dk_devfile *file;  /* its metadata file, or NULL */
	uint64_t size;                  /* virtual bytes from the file; 0 when unknown */
	char what[600];                 /* "container web (0123456789ab)", "image debian:12, layer 2 of 2" */
};

/* "thin-id", "device-hash", "container", "image", "layer". */
const char *dmr_target_kind_name(enum dmr_target_kind k);

/* Resolves arg. st may be NULL (no Docker root): only thin ids resolve.
 * A number of up to 8 digits is always a thin id; then, in this order, a device hash (or
 * "base"), a container, an image, a layer's chain id. DMR_ENOENT when
 * nothing matches or the object has no device file, DMR_EUSAGE when the
 * name is ambiguous or an option does not fit; err says which. Whether the
 * thin id exists in the pool is for the caller to check. */
int dmr_target_resolve(const struct dk_state *st, const char *arg, const struct dmr_target_opts *o,
		       struct dmr_target *t, struct dmr_err *err);

#endif
