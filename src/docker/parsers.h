/* Parsers that work on bytes already read (by state.c, through the
 * confined, bounded file reader): BuildKit's bbolt database and the
 * containers/storage JSON files. They keep what they could parse when the
 * input is damaged, and say what was wrong in err (DMR_ECORRUPT). */
#ifndef DMR_DOCKER_PARSERS_H
#define DMR_DOCKER_PARSERS_H

#include <stddef.h>

#include "docker/state.h"

/* buildkit/snapshots.db: one bucket per snapshot key, with the keys
 * "parent", "committed"/"iscommitted", "chainid", "size" (bbolt format,
 * read-only walk, no cycles, every page number bounded by len). */
int dk_buildkit_parse(const unsigned char *db, size_t len, struct dk_buildkit_snapshot **out, size_t *nr,
		      struct dmr_err *err);
void dk_buildkit_free(struct dk_buildkit_snapshot *s, size_t nr);

/* containers/storage: devicemapper-layers/layers.json, devicemapper-images/images.json,
 * devicemapper-containers/containers.json (JSON arrays of objects). */
int dk_cs_parse_layers(const char *json, size_t len, struct dk_cs_layer **out, size_t *nr, struct dmr_err *err);
int dk_cs_parse_images(const char *json, size_t len, struct dk_image **out, size_t *nr, struct dmr_err *err);
int dk_cs_parse_containers(const char *json, size_t len, struct dk_container **out, size_t *nr,
			   struct dmr_err *err);
void dk_cs_layers_free(struct dk_cs_layer *l, size_t nr);

#endif
