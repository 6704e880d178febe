/* What is live: the guards that destructive commands run before touching a
 * pool. Each thing found becomes one line for the user; nothing here ever
 * changes the system. Only the process check may be overridden (--force):
 * the kernel state (dm devices, loops, mounts) never.
 *
 * Like kmod's context, live_ctx takes a root directory: "" for this
 * machine, a fake tree in the tests (proc/, sys/, run/, var/run/ below it).
 *
 * The device-mapper check works on one list of devices (dmlist.h: name,
 * number, deps, live table), whichever source filled it:
 * - this machine: the kernel, through the libdevmapper wrapper (dmwrap.h:
 *   DM_DEVICE_LIST, then DM_DEVICE_DEPS and DM_DEVICE_TABLE per device).
 *   A kernel without device-mapper gives an empty list; a device removed
 *   while we look still counts by its name; any other failure fails the
 *   check. Tests link a scripted fake of the wrapper
 *   (tests/unit/fake_dmwrap.c) and set dm_from_kernel.
 * - a fake root: <root>/sys/block/dm-* (name, dev, slaves/ as deps; no
 *   table), unless dm_from_kernel is set.
 *
 * Why each check: ../shared/docs/docker-devicemapper.md sections 2.2, 2.3,
 * 7.1 and 8. */
#ifndef DMR_LIVE_H
#define DMR_LIVE_H

#include <stddef.h>

#include "util/err.h"

struct live_ctx {
	const char *sysroot; /* "" (or NULL): this machine */
	int dm_from_kernel;  /* dm list from dmwrap even with a fake sysroot */
};

enum live_kind {
	LIVE_DOCKERD,     /* dockerd (or dockerd-current, "docker daemon") runs */
	LIVE_PODMAN_CRIO, /* podman, crio, conmon or buildah runs */
	LIVE_DM_POOL,     /* the pool (by name, or a dm device on our loops) */
	LIVE_DM_THIN,     /* a dm device with our prefix, or stacked on the pool */
	LIVE_LOOP,        /* a loop device backed by the data or metadata file */
	LIVE_MOUNT,       /* something mounted under <docker_root>/devicemapper/mnt/ */
};

struct live_finding {
	enum live_kind kind;
	int overridable; /* 1 only for the process checks (--force) */
	char msg[400];   /* one line, no newline */
	/* What teardown acts on: the dm device's name, "/dev/loopN", the
	 * mount point, or the pid. */
	char object[256];
	/* dm devices: the name has the pool's prefix (Docker's own); the
	 * stacking level (0 the pool, or whatever sits on our loops; 1 a thin
	 * device on it; 2 something on that...): remove the highest first;
	 * its removal was deferred until its last close (DML_DEFERRED_REMOVE). */
	int named;
	int level;
	int deferred;
};

/* Looks for everything that is live for this pool. dm_prefix is
 * "docker-MAJ:MIN-INO" or "container-MAJ:MIN-INO" (it also picks which
 * processes matter: dockerd, or podman/crio/conmon/buildah; NULL: both);
 * metadata_path and data_path may be NULL (no loop files). *out (free() it)
 * gets *n findings, in the order processes, dm, loops, mounts.
 * Fails only when a check cannot run (DMR_EIO, DMR_ENOMEM): a guard that
 * cannot look must not say "nothing live". A kernel without device-mapper
 * has no dm devices, which is not a failure. */
int live_check(const struct live_ctx *c, const char *docker_root,
	       const char *metadata_path, const char *data_path,
	       const char *dm_prefix, struct live_finding **out, size_t *n,
	       struct dmr_err *err);

/* Takes an exclusive lock (flock, non-blocking) on
 * <docker_root>/devicemapper/.dmrescue.lock: a dot file, outside metadata/,
 * which Docker ignores. Writes our pid into it. On success *fd holds the
 * lock until live_unlock(). Another dmrescue holding it: DMR_EUSAGE with
 * "another dmrescue (pid N) is working on ...". */
int live_lock(const char *docker_root, int *fd, struct dmr_err *err);
void live_unlock(int fd);

#endif
