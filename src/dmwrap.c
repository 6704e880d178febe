/* libdevmapper, wrapped. See dmwrap.h. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <libdevmapper.h>

#include "dmwrap.h"

static void dmw_quiet_log(int level, const char *file, int line, int dm_errno_or_class,
			  const char *f, ...) __attribute__((format(printf, 5, 6)));
static void dmw_quiet_log(int level, const char *file, int line, int dm_errno_or_class,
			  const char *f, ...)
{
}

/* Without either, libdevmapper would try to create the control node (and
 * so load dm-mod): a kernel that has neither has no dm devices. */
static int kernel_has_dm(void)
{
	return access("/dev/mapper/control", F_OK) == 0 ||
	       access("/sys/class/misc/device-mapper", F_OK) == 0;
}

static int errno_means_no_dm(int e)
{
	return e == ENOENT || e == ENODEV;
}

/* Creates and runs a task (on name, unless NULL) with libdevmapper's log
 * silenced. 0 with *out to destroy; DMR_ENOENT when the device (or
 * device-mapper) is not there; DMR_EIO/DMR_ENOMEM otherwise, the message
 * for the caller to prefix with what it was doing. */
static int run_task_prep(int type, const char *name, int (*prep)(struct dm_task *t, const void *arg),
			 const void *arg, struct dm_task **out, struct dmr_err *err);

static int run_task(int type, const char *name, struct dm_task **out, struct dmr_err *err)
{
	return run_task_prep(type, name, NULL, NULL, out, err);
}

/* run_task, with prep(t, arg) called before the task runs (0: failed). */
static int run_task_prep(int type, const char *name, int (*prep)(struct dm_task *t, const void *arg),
			 const void *arg, struct dm_task **out, struct dmr_err *err)
{
	*out = NULL;
	if (!kernel_has_dm())
		return dmr_err_set(err, DMR_ENOENT, "no device-mapper in this kernel");
	dm_log_with_errno_init(dmw_quiet_log);
	int r = 0;
	struct dm_task *t = dm_task_create(type);
	if (!t) {
		r = dmr_err_set(err, DMR_ENOMEM, "cannot create a device-mapper task");
		goto out;
	}
	if (name && !dm_task_set_name(t, name)) {
		r = dmr_err_set(err, DMR_EIO, "bad device name");
		goto out;
	}
	if (prep && !prep(t, arg)) {
		r = dmr_err_set(err, DMR_ENOMEM, "cannot set up a device-mapper task");
		goto out;
	}
	errno = 0;
	if (!dm_task_run(t)) {
		int e = dm_task_get_errno(t);
		if (!e)
			e = errno;
		if (name && e == ENXIO)
			r = dmr_err_set(err, DMR_ENOENT, "no device-mapper device %s", name);
		else if (errno_means_no_dm(e) || (!name && e == ENXIO))
			r = dmr_err_set(err, DMR_ENOENT, "no device-mapper in this kernel");
		else
			r = dmr_err_set(err, DMR_EIO, "%s%s", e ? strerror(e) : "the ioctl failed",
					e == EACCES || e == EPERM || !e ? " (not root?)" : "");
	}
out:
	if (r && t)
		dm_task_destroy(t);
	else
		*out = t;
	dm_log_with_errno_init(NULL);
	return r;
}

int dmw_list_names(struct dml_list *l, struct dmr_err *err)
{
	struct dm_task *t;
	l->no_dm = 0;
	int r = run_task(DM_DEVICE_LIST, NULL, &t, err);
	if (r == DMR_ENOENT) {
		l->no_dm = 1;
		return 0;
	}
	if (r)
		return dmr_err_prefix(err, "cannot list device-mapper devices");
	struct dm_names *names = dm_task_get_names(t);
	if (names && names->dev) {
		uint32_t next = 0;
		do {
			names = (struct dm_names *)((char *)names + next);
			if (!dml_add(l, names->name, (dev_t)names->dev, err)) {
				r = DMR_ENOMEM;
				break;
			}
			next = names->next;
		} while (next);
	}
	dm_task_destroy(t);
	return r;
}

/* The info every device task returns: a device gone since is ENOENT. */
static int take_info(struct dm_task *t, struct dml_device *d, struct dmr_err *err)
{
	struct dm_info info;
	if (!dm_task_get_info(t, &info))
		return dmr_err_set(err, DMR_EIO, "no device info for %s", d->name);
	if (!info.exists)
		return dmr_err_set(err, DMR_ENOENT, "no device-mapper device %s", d->name);
	d->open_count = info.open_count;
	d->flags &= ~(unsigned)(DML_SUSPENDED | DML_DEFERRED_REMOVE);
	if (info.suspended)
		d->flags |= DML_SUSPENDED;
	if (info.deferred_remove)
		d->flags |= DML_DEFERRED_REMOVE;
	return 0;
}

int dmw_get_deps(struct dml_device *d, struct dmr_err *err)
{
	struct dm_task *t;
	int r = run_task(DM_DEVICE_DEPS, d->name, &t, err);
	if (r)
		return r == DMR_ENOENT ? r : dmr_err_prefix(err, "cannot read what %s uses", d->name);
	struct dm_deps *deps;
	if (!(r = take_info(t, d, err)) && (deps = dm_task_get_deps(t)))
		for (uint32_t k = 0; !r && k < deps->count; k++)
			r = dml_add_dep(d, (dev_t)deps->device[k], err);
	dm_task_destroy(t);
	return r;
}

int dmw_get_table(struct dml_device *d, struct dmr_err *err)
{
	struct dm_task *t;
	int r = run_task(DM_DEVICE_TABLE, d->name, &t, err);
	if (r)
		return r == DMR_ENOENT ? r : dmr_err_prefix(err, "cannot read the table of %s", d->name);
	if (!(r = take_info(t, d, err))) {
		const char *uuid = dm_task_get_uuid(t);
		snprintf(d->uuid, sizeof(d->uuid), "%s", uuid ? uuid : "");
		void *next = NULL;
		do {
			uint64_t start, length;
			char *type = NULL, *params = NULL;
			next = dm_get_next_target(t, next, &start, &length, &type, &params);
			if (type)
				r = dml_add_target(d, start, length, type, params, err);
		} while (next && !r);
	}
	dm_task_destroy(t);
	return r;
}

/* Removal: retried by libdevmapper while something (udev, blkid) holds the
 * device briefly; udev's rules run and are waited for, as dmsetup does. */
static int prep_remove(struct dm_task *t, const void *arg)
{
	uint32_t *cookie = (uint32_t *)arg;
	return dm_task_retry_remove(t) && dm_task_set_cookie(t, cookie, 0);
}

int dmw_remove(const char *name, struct dmr_err *err)
{
	struct dm_task *t;
	uint32_t cookie = 0;
	int r = run_task_prep(DM_DEVICE_REMOVE, name, prep_remove, &cookie, &t, err);
	if (cookie)
		(void)dm_udev_wait(cookie);
	if (r)
		return dmr_err_prefix(err, "cannot remove %s", name);
	dm_task_destroy(t);
	return 0;
}

static int prep_cancel(struct dm_task *t, const void *arg)
{
	(void)arg;
	return dm_task_set_sector(t, 0) && dm_task_set_message(t, "@cancel_deferred_remove");
}

int dmw_cancel_deferred_remove(const char *name, struct dmr_err *err)
{
	struct dm_task *t;
	int r = run_task_prep(DM_DEVICE_TARGET_MSG, name, prep_cancel, NULL, &t, err);
	if (r)
		return dmr_err_prefix(err, "cannot cancel the deferred removal of %s", name);
	dm_task_destroy(t);
	return 0;
}
