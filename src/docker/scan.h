/* Internals shared by the readers of dk_state_read: the scan context that
 * collects problems and transients, reads through fsread and reports what
 * it cannot read, and the name checks every reader needs. */
#ifndef DMR_DOCKER_SCAN_H
#define DMR_DOCKER_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "docker/fsread.h"
#include "docker/state.h"

/* Paths below the root (Docker's layout, section 4 of the format notes). */
#define DK_HOME "devicemapper"
#define DK_LAYERDB "image/devicemapper/layerdb"
#define DK_IMAGEDB "image/devicemapper/imagedb"
#define DK_REPOSITORIES "image/devicemapper/repositories.json"
#define DK_CONTAINERS "containers"
#define DK_BUILDKIT_SNAPSHOTS "buildkit/snapshots.db"

/* Caps: the small one-value files of layerdb, and the bound on problems
 * kept (one more says how many were dropped). */
#define DK_MSG_MAX 512 /* one problem message or reason */
#define DK_SMALL_MAX ((size_t)64 << 10)
#define DK_MAX_PROBLEMS ((size_t)100000)
#define DK_MAX_LIST_ITEMS ((size_t)65536) /* diff_ids, labels per object */

struct dk_scan {
	struct fsr_dir root;
	struct dk_state *st;
	size_t cap_problems, cap_transients, cap_files, cap_layers, cap_mounts, cap_images, cap_containers;
	size_t dropped_problems;
	struct fsr_fail fail; /* scratch for the wrappers below */
};

/* Grows *arr (elements of size elem) so that it holds need elements. */
int dk_grow(void **arr, size_t *cap, size_t need, size_t elem);
#define DK_GROW(arr, cap, need) dk_grow((void **)&(arr), &(cap), (need), sizeof(*(arr)))

/* Records a problem at path (relative to the root). 0 or DMR_ENOMEM. */
int dk_problem(struct dk_scan *s, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int dk_transient(struct dk_scan *s, enum dk_transient_kind kind, const char *path, uint64_t bytes);

/* fsread wrappers that record a problem for anything but success and an
 * optional missing file: 0, FSR_MISSING (not required and absent: no
 * problem), FSR_BAD (problem recorded, its message copied to why when
 * given), or DMR_ENOMEM. A required file that is missing is FSR_BAD with
 * the problem "missing". */
int dk_read(struct dk_scan *s, const struct fsr_dir *at, const char *rel, size_t cap, int required,
	    struct fsr_file *out, char *why, size_t whylen);
int dk_opendir(struct dk_scan *s, const struct fsr_dir *at, const char *rel, int required, struct fsr_dir *out,
	       char *why, size_t whylen);
/* Also records a problem when the listing was cut at FSR_LIST_MAX entries. */
int dk_list(struct dk_scan *s, const struct fsr_dir *at, const char *rel, int required, struct fsr_list *out);

/* Opens the optional directory rel below at and lists it: 1 when both
 * worked (close dir, free list), 0 when it is absent or a problem was
 * recorded, negative for memory. */
int dk_open_list(struct dk_scan *s, const struct fsr_dir *at, const char *rel, struct fsr_dir *dir,
		 struct fsr_list *list);

/* rel below at as a path relative to the root, malloc'd (NULL: no memory
 * or too long). */
char *dk_path(const struct fsr_dir *at, const char *rel);

/* Sets err to prefix + why (cut to fit) unless err already holds a reason:
 * the first reason something is not valid is the one kept. */
void dk_first_error(char *err, size_t size, const char *prefix, const char *why);

struct json_object;
/* Reads <parent>.Labels where parent is the member `member` of root
 * ("Config" of a container, "config" of an image): a wrong shape is the
 * first error ("Config.Labels: ..."), not a failure. Negative only for
 * memory. */
int dk_read_labels(struct json_object *root, const char *member, struct dk_label **labels, size_t *nr,
		   char *err, size_t errlen);

/* Drops one trailing newline (Docker writes none; people editing by hand do). */
void dk_chomp(struct fsr_file *f);

int dk_is_hex(const char *s, size_t len); /* the first len (> 0) characters are lowercase hex */
int dk_is_digest(const char *s);          /* "sha256:" and 64 lowercase hex digits */
/* A device hash Docker could have made a metadata file of: 1..255 of
 * [A-Za-z0-9_.-], not starting with '.'. */
int dk_is_hash_name(const char *s);

/* The readers, in the order dk_state_read calls them; each returns 0 or
 * DMR_ENOMEM (anything else became a problem). */
int dk_read_dmfiles(struct dk_scan *s, const struct fsr_dir *home);
int dk_read_layerdb(struct dk_scan *s);
int dk_read_imagedb(struct dk_scan *s);
int dk_read_containers(struct dk_scan *s);

/* Chain ids of a layer stack (layer/layer.go): chain[0] = diff[0],
 * chain[i] = "sha256:" + hex(sha256(chain[i-1] + " " + diff[i])). */
int dk_chain_ids(char *const *diff_ids, size_t n, char ***out);

/* Freeing single elements (also used by dk_state_free). */
/* Frees n strings and the array (NULL is fine). */
void dk_free_strv(char **v, size_t n);
void dk_devfile_clear(struct dk_devfile *f);
void dk_layer_clear(struct dk_layer *l);
void dk_mount_clear(struct dk_mount *m);
void dk_image_clear(struct dk_image *im);
void dk_container_clear(struct dk_container *c);

#endif
