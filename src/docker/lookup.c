/* Finding Docker's objects by what a user types: a container by name or id
 * prefix, an image by reference, id prefix or top chain id, a layer by chain
 * id, a container's mount. Shared by clean's explicit targets (plan.c) and
 * the forensics commands (target.c). */
#include "config.h"
#include "docker/scan.h"
#include "docker/state.h"

#include <stdio.h>
#include <string.h>

const struct dk_container *dk_container_by_id(const struct dk_state *st, const char *id)
{
	for (size_t i = 0; id && i < st->nr_containers; i++)
		if (st->containers[i].id && strcmp(st->containers[i].id, id) == 0)
			return &st->containers[i];
	return NULL;
}

const struct dk_container *dk_container_find(const struct dk_state *st, const char *arg, int *many)
{
	*many = 0;
	const char *name = arg[0] == '/' ? arg + 1 : arg;
	for (size_t i = 0; i < st->nr_containers; i++)
		if (st->containers[i].name && strcmp(st->containers[i].name, name) == 0)
			return &st->containers[i];
	const struct dk_container *found = NULL;
	size_t n = strlen(arg);
	for (size_t i = 0; n && i < st->nr_containers; i++) {
		const struct dk_container *c = &st->containers[i];
		if (c->id && strncmp(c->id, arg, n) == 0) {
			if (found)
				*many = 1;
			found = c;
		}
	}
	return found;
}

const struct dk_mount *dk_mount_of_container(const struct dk_state *st, const char *id)
{
	for (size_t i = 0; id && i < st->nr_mounts; i++)
		if (st->mounts[i].name && strcmp(st->mounts[i].name, id) == 0)
			return &st->mounts[i];
	return NULL;
}

const struct dk_layer *dk_layer_by_chain(const struct dk_state *st, const char *chain)
{
	for (size_t i = 0; chain && i < st->nr_layers; i++)
		if (!st->layers[i].removing && st->layers[i].chain_id && strcmp(st->layers[i].chain_id, chain) == 0)
			return &st->layers[i];
	return NULL;
}

const char *dk_image_top_chain(const struct dk_image *im)
{
	return im->nr_diff_ids && im->chain_ids ? im->chain_ids[im->nr_diff_ids - 1] : NULL;
}

const struct dk_image *dk_image_find(const struct dk_state *st, const char *arg, int *by_tag, int *many)
{
	char ref[512];
	*by_tag = 0;
	*many = 0;
	/* a reference: name[:tag] or name@digest */
	if (!strchr(arg, '@') && !strchr(strrchr(arg, '/') ? strrchr(arg, '/') : arg, ':'))
		snprintf(ref, sizeof(ref), "%s:latest", arg);
	else
		snprintf(ref, sizeof(ref), "%s", arg);
	for (size_t i = 0; i < st->nr_images; i++)
		for (size_t t = 0; t < st->images[i].nr_tags; t++)
			if (strcmp(st->images[i].tags[t], ref) == 0 || strcmp(st->images[i].tags[t], arg) == 0) {
				*by_tag = 1;
				return &st->images[i];
			}
	/* an id (sha256:hex or a hex prefix), or a chain id of its top layer */
	const char *hex = strncmp(arg, "sha256:", 7) == 0 ? arg + 7 : arg;
	size_t n = strlen(hex);
	if (n == 0 || !dk_is_hex(hex, n))
		return NULL;
	const struct dk_image *found = NULL;
	for (size_t i = 0; i < st->nr_images; i++) {
		const struct dk_image *im = &st->images[i];
		const char *top = dk_image_top_chain(im);
		int hit = (im->id && strlen(im->id) > 7 && strncmp(im->id + 7, hex, n) == 0) ||
			  (n == 64 && top && strcmp(top + 7, hex) == 0);
		if (hit) {
			if (found && found != im)
				*many = 1;
			found = im;
		}
	}
	return found;
}
