/* The thin wrapper around libdevmapper: one device-mapper ioctl per call,
 * results in the plain structs of dmlist.h. Nothing else in dmrescue
 * includes libdevmapper.h. src/dmwrap.c is linked from its own archive
 * (libdmwrap.a), so a test can link tests/unit/fake_dmwrap.c instead and
 * script what the kernel says.
 *
 * Every call returns 0 or a negative DMR_E* code with a message:
 * - no device-mapper in the kernel: dmw_list_names gives an empty list
 *   with no_dm set; the calls on one device say DMR_ENOENT. Nothing here
 *   creates /dev/mapper/control or loads dm-mod to find that out.
 * - DMR_ENOENT: no such device (removed since it was listed).
 * - DMR_EIO: the kernel could not be asked (not root: EACCES) or refused.
 * - DMR_ENOMEM.
 * libdevmapper's own log lines are silenced; the message says what failed.
 *
 * The removals (dmrescue teardown) come here too, by name, with the same
 * conventions. */
#ifndef DMR_DMWRAP_H
#define DMR_DMWRAP_H

#include "dmlist.h"

/* DM_DEVICE_LIST: appends every device (name, dev) to the empty list *l. */
int dmw_list_names(struct dml_list *l, struct dmr_err *err);

/* DM_DEVICE_DEPS on d->name: d->deps, d->open_count, DML_SUSPENDED and
 * DML_DEFERRED_REMOVE in d->flags. */
int dmw_get_deps(struct dml_device *d, struct dmr_err *err);

/* DM_DEVICE_TABLE on d->name: d->table (the live table; empty when the
 * device has none loaded) and d->uuid. */
int dmw_get_table(struct dml_device *d, struct dmr_err *err);

/* DM_DEVICE_REMOVE of name: retried while briefly busy, udev waited for.
 * A device still open fails (DMR_EIO, "Device or resource busy"). */
int dmw_remove(const char *name, struct dmr_err *err);

/* "@cancel_deferred_remove" to name: a removal deferred until the last
 * close no longer happens by itself (teardown removes it now instead). */
int dmw_cancel_deferred_remove(const char *name, struct dmr_err *err);

#endif
