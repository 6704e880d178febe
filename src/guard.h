/* What every command that changes a pool does before it changes anything,
 * in one place (clean, reclaim, undo): the lock, the live checks, the
 * checker verdicts, and the confirmation. Each prints its own one-line
 * refusals and returns an exit code (DMR_EXIT_OK: go ahead). */
#ifndef DMR_GUARD_H
#define DMR_GUARD_H

#include "cli.h"

/* The system root the live checks look at: "" (this machine), or
 * $DMRESCUE_SYSROOT in test builds (--enable-fault-injection). */
const char *dmr_guard_sysroot(void);

/* The exclusive lock on the Docker root (live_lock); *fd keeps it until
 * live_unlock(*fd). Another run holding it: DMR_EXIT_REFUSED. */
int dmr_guard_lock(const struct dmr_cli *cli, int *fd);

/* Refuses while anything uses the pool: dockerd/podman (overridden by
 * force), the pool or a thin device in the kernel, a loop device on the
 * data or metadata file, a mount under mnt/ (never overridden). prefix is
 * the device-mapper name prefix (NULL: unknown). verb says what would be
 * refused ("change", "undo"). */
int dmr_guard_live(struct dmr_cli *cli, const char *prefix, int force, const char *verb);

/* Asks "question [y/N]" on a terminal; off a terminal refuses unless yes. */
int dmr_guard_confirm(const struct dmr_cli *cli, int yes, const char *question);

/* Our checker on the metadata at path (data_path may be NULL): 0 when it
 * finds nothing fatal, DMR_ECORRUPT naming the count and the first fatal
 * finding, or another error when it cannot read. */
int dmr_guard_our_check(const char *path, const char *data_path, struct dmr_err *err);

/* dmr_guard_our_check on the command's metadata, as a refusal: prints
 * the first fatal finding and "refusing to VERB a damaged pool: repair it
 * first..." and returns DMR_EXIT_DAMAGE; other failures as exit codes. */
int dmr_guard_pool_sound(struct dmr_cli *cli, const char *verb);

/* thin_check -q on path, the runtime oracle: 0 passed, 1 not installed,
 * DMR_ECORRUPT rejected. Test builds take the program from
 * $DMRESCUE_THIN_CHECK ("" = not installed). */
int dmr_guard_thin_check(const char *path, struct dmr_err *err);

#endif
