/* BuildKit's references to its snapshots (cache records in
 * buildkit/metadata_v2.db, leases in buildkit/containerdmeta.db), and the
 * snapshots of buildkit/snapshots.db that nothing refers to. See bkrefs.c
 * for the layout of those databases. */
#ifndef DMR_DOCKER_BKREFS_H
#define DMR_DOCKER_BKREFS_H

#include <stddef.h>

#include "docker/state.h"
#include "util/err.h"

/* Every snapshot key the two databases may refer to, sorted and unique
 * (*out malloc'd, each string too). Any damage in either database is an
 * error (DMR_ECORRUPT): never a guess. */
int dk_buildkit_refs_parse(const unsigned char *cache_db, size_t cache_len, const unsigned char *lease_db,
			   size_t lease_len, char ***out, size_t *nr, struct dmr_err *err);

/* 1 when key is in st->buildkit_refs. */
int dk_buildkit_is_ref(const struct dk_state *st, const char *key);

/* 1 when h has the shape of a BuildKit snapshot key (identity.NewID: 25
 * characters of [0-9a-z]). */
int dk_buildkit_key_shape(const char *h);

/* 1 when Docker itself uses the graph-driver id hash: a layer's cache-id
 * or a read-write layer's mount or init id. */
int dk_buildkit_docker_uses(const struct dk_state *st, const char *hash);

/* Marks in drop[i] (one byte per st->buildkit[i]) the snapshots nothing
 * refers to: a bucket is kept when its key has not the shape of a
 * BuildKit key, when a cache record or lease names it
 * (st->buildkit_refs), when its key or committed key is a graph-driver
 * id Docker uses, or when its chain id is a layer's; and so is every
 * bucket a kept one names as its parent or committed key, transitively.
 * Returns how many are dropped, (size_t)-1 when out of memory. Needs
 * st->buildkit_refs_read. */
size_t dk_buildkit_unreferenced(const struct dk_state *st, unsigned char *drop);

#endif
