/* Hand-made Docker states for the unit tests of what reads a dk_state
 * (the inventory, the clean plan): the readers' structs filled directly,
 * every string malloc'd so that dk_state_free can free them. Each helper
 * fails the test when out of memory. */
#ifndef DMR_TESTS_UNIT_DKSTATE_H
#define DMR_TESTS_UNIT_DKSTATE_H

#include <stddef.h>
#include <stdint.h>

#include "docker/state.h"

char *xstrdup(const char *s); /* NULL stays NULL */
/* arr grown to n + 1 elements of size, the new one zeroed. */
void *grow(void *arr, size_t n, size_t size);
char **strv(const char *const *s, size_t n); /* NULL when n is 0 */
void strv_free(char **v, size_t n);

/* devicemapper/metadata/<hash> ("base" for ""): valid, initialized. */
struct dk_devfile *add_file(struct dk_state *st, const char *hash, int64_t id);
/* layerdb/sha256/<chain>[-0123abcd-removing] */
struct dk_layer *add_layer(struct dk_state *st, const char *chain, const char *cache, const char *parent,
			   int removing);
void add_mount(struct dk_state *st, const char *name, const char *mount_id, const char *init_id,
	       const char *parent);
/* chains: the chain ids, bottom first (the diff ids are copies of them). */
struct dk_image *add_image(struct dk_state *st, const char *id, const char *const *chains, size_t n,
			   const char *const *tags, size_t ntags);
struct dk_container *add_container(struct dk_state *st, const char *id, const char *name, const char *image);
void add_buildkit(struct dk_state *st, const char *key, const char *chain);
void add_transient(struct dk_state *st, enum dk_transient_kind kind, const char *path, uint64_t bytes);

#endif
