/* What device-mapper has, as plain structs: each device with its number,
 * uuid, open count, the devices it sits on, and its live table. Filled
 * from the kernel through the wrapper (dmwrap.h) by dml_read(), or built
 * by hand (the fake sysfs trees of live.c, the tests). dml_read() holds the
 * policy (races, what counts as a failure); the wrapper only makes the
 * calls, so tests replace the wrapper and keep the policy. */
#ifndef DMR_DMLIST_H
#define DMR_DMLIST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/err.h"

/* One line of a live table: start and length in 512-byte sectors. Devices
 * in params are "MAJ:MIN", as the kernel prints them. */
struct dml_target {
	uint64_t start, length;
	char type[16]; /* "thin", "thin-pool", "linear"... (DM_MAX_TYPE_NAME) */
	char *params;
};

enum dml_flags {
	DML_GONE = 1,            /* listed, then removed before its deps/table were read */
	DML_SUSPENDED = 2,
	DML_DEFERRED_REMOVE = 4, /* removal deferred until its last close */
};

struct dml_device {
	char name[128]; /* DM_NAME_LEN */
	char uuid[129]; /* DM_UUID_LEN; "" when it has none */
	dev_t dev;
	int open_count; /* -1: not known (sysfs) */
	unsigned flags; /* enum dml_flags */
	dev_t *deps;
	size_t nr_deps, cap_deps;
	struct dml_target *table;
	size_t nr_table, cap_table;
};

struct dml_list {
	struct dml_device *v;
	size_t n, cap;
	int no_dm; /* the kernel has no device-mapper (the list is empty) */
};

/* The kernel's devices: the names, then each one's deps and table. A
 * kernel without device-mapper gives an empty list (no_dm set), not an
 * error; a device removed meanwhile stays in the list with DML_GONE and
 * what was read of it. Any other failure (not root, an ioctl error) fails
 * the whole read: DMR_EIO (DMR_ENOMEM) with the error, *l emptied. */
int dml_read(struct dml_list *l, struct dmr_err *err);

/* Appends a device (no deps, no table, open count -1). The pointer is
 * valid until the next dml_add. NULL: out of memory (err set). */
struct dml_device *dml_add(struct dml_list *l, const char *name, dev_t dev, struct dmr_err *err);
int dml_add_dep(struct dml_device *d, dev_t dep, struct dmr_err *err);
int dml_add_target(struct dml_device *d, uint64_t start, uint64_t length, const char *type,
		   const char *params, struct dmr_err *err);
/* The device with this number, or NULL. */
const struct dml_device *dml_find_dev(const struct dml_list *l, dev_t dev);
/* Frees everything and leaves *l empty (no_dm kept). */
void dml_free(struct dml_list *l);

#endif
