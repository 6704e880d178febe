/* dmrescue teardown, the logic: after dockerd died (kill -9, a hang), its
 * pool stays active with its thin devices, loop devices and mounts, and
 * every offline command refuses to touch it. Teardown turns what live.c
 * finds into ordered steps and runs them through replaceable operations
 * (the real ones use umount2, libdevmapper through dmwrap, and the loop
 * ioctl; tests pass their own):
 *
 *   1. unmount what is mounted under ROOT/devicemapper/mnt/, deepest first
 *      (lazily when busy);
 *   2. remove the dm devices from the top of the stack down: cancel a
 *      deferred removal first, then remove; thin devices, then the pool;
 *   3. detach the loop devices backed by the data and metadata files.
 *
 * It refuses, before doing anything, while dockerd (or podman...) runs,
 * and when a device it would have to remove is not Docker's (a pool on
 * Docker's loops under another name, or someone's device stacked on
 * Docker's). */
#ifndef DMR_TEARDOWN_H
#define DMR_TEARDOWN_H

#include <stddef.h>

#include "live.h"
#include "util/err.h"

enum td_kind { TD_UNMOUNT, TD_CANCEL_DEFERRED, TD_REMOVE_THIN, TD_REMOVE_POOL, TD_DETACH_LOOP };

struct td_step {
	enum td_kind kind;
	char object[256];
};

struct td_plan {
	struct td_step *v;
	size_t n, cap;
	int refused;       /* nothing may be done */
	char refusal[480]; /* why, one line */
};

/* The steps for findings f[0..n) of live_check. */
int td_plan_build(const struct live_finding *f, size_t n, struct td_plan *p, struct dmr_err *err);
void td_plan_free(struct td_plan *p);

/* "unmount", "cancel the deferred removal of", "remove thin device"... */
const char *td_kind_name(enum td_kind k);

struct td_ops {
	/* *lazily set when it had to detach a busy mount (MNT_DETACH). */
	int (*unmount)(void *ctx, const char *path, int *lazily, struct dmr_err *err);
	int (*dm_cancel_deferred)(void *ctx, const char *name, struct dmr_err *err);
	int (*dm_remove)(void *ctx, const char *name, struct dmr_err *err);
	int (*loop_detach)(void *ctx, const char *dev, struct dmr_err *err);
};

/* The real operations; each counts as a change (src/util/safeio). */
extern const struct td_ops td_real_ops;

/* Which processes have block device MAJ:MIN mounted in their mount namespace
 * (PROC/PID/mountinfo, PROC being "/proc" or a test's tree): "pid 12
 * (sleep), pid 40 (sh)", at most four, in OUT (empty: none seen). A
 * container dockerd left running holds its thin device this way, even after
 * its mount under mnt/ is gone from the host's namespace. */
void td_holders(const char *proc, unsigned maj, unsigned min, char *out, size_t outsz);

/* Runs one step; *lazily as for unmount (0 for the others). */
int td_run_step(const struct td_ops *ops, void *ctx, const struct td_step *s, int *lazily, struct dmr_err *err);

#endif
