/* Backups taken before any change, and what undo needs to put them back.
 *
 * A backup is a directory (by default <root>/devicemapper/dmrescue-backup/
 * <UTC stamp>, outside metadata/ which Docker reads; --backup-dir to pick
 * another) holding:
 *   manifest.json   schema "dmrescue.backup/1": what was saved, from where,
 *                   SHA-256, size, mode, owner and mtime of every file, and
 *                   for each changed file its SHA-256 after the change;
 *                   for the metadata, its bk_metadata_digest instead of
 *                   the SHA-256 (both before and after the change)
 *   pool/metadata   a sparse copy of the pool's metadata file
 *   files/<path>    copies of Docker files that are rewritten, and files or
 *                   directories that are removed, moved here (rename; a copy
 *                   then an unlink when the backup is on another filesystem)
 * Paths of Docker files are relative to the Docker root.
 *
 * Order of use (clean):
 *   bk_begin()                  creates the directory, fsynced
 *   bk_save_metadata()          sparse copy + bk_metadata_digest of the
 *                               metadata file
 *   bk_save_file() for every file that will be rewritten
 *   bk_plan_remove() for every file or directory that will be removed
 *                               (hashes its content now; nothing moves yet)
 *   bk_seal()                   writes manifest.json (state "prepared"),
 *                               fsyncs everything: only now may changes start
 *   bk_remove_now()             moves one planned file/dir into the backup
 *   bk_set_after()              records a changed file's new SHA-256 (the
 *                               metadata's new bk_metadata_digest)
 *   bk_finish()                 manifest state "complete"
 *   bk_close()
 * Every write goes through util/safeio (fault injection covers backups).
 */
#ifndef DMR_BACKUP_H
#define DMR_BACKUP_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

struct backup;

/* The reclaim stamp: reclaim (issue 6) increments the counter in
 * <root>/devicemapper/.dmrescue-reclaimed before it punches anything;
 * backups record the value, and undo refuses when it changed. Reads 0
 * when the file does not exist. */
int bk_reclaim_serial(const char *docker_root, uint64_t *serial, struct dmr_err *err);
int bk_reclaim_bump(const char *docker_root, struct dmr_err *err);

/* dir NULL: the default location. command names what made the backup
 * ("clean"). The directory must not exist yet (or be empty). */
int bk_begin(struct backup **out, const char *docker_root, const char *dir, const char *command,
	     struct dmr_err *err);
const char *bk_path(const struct backup *b);

int bk_save_metadata(struct backup *b, const char *metadata_path, struct dmr_err *err);
/* relpath: relative to the Docker root, a regular file. */
int bk_save_file(struct backup *b, const char *relpath, struct dmr_err *err);
/* relpath: a regular file or a directory (its whole tree; symlinks are
 * recorded as links, never followed). */
int bk_plan_remove(struct backup *b, const char *relpath, struct dmr_err *err);
int bk_seal(struct backup *b, struct dmr_err *err);
/* Moves a planned path into the backup; its parent directory is fsynced. */
int bk_remove_now(struct backup *b, const char *relpath, struct dmr_err *err);
/* relpath: a file saved with bk_save_file, and sha256_hex its new SHA-256
 * (bk_sha256_file); NULL: the metadata file, and sha256_hex its new
 * bk_metadata_digest (not its SHA-256). sha256_hex: 64 hex digits, or NULL
 * when the file no longer exists after the change. Once sealed, the
 * manifest is rewritten at once. Best called before the change is made:
 * undo accepts a file holding either its saved or its after-change
 * content, but refuses (unless forced) one whose new content the backup
 * does not know. */
int bk_set_after(struct backup *b, const char *relpath, const char *sha256_hex, struct dmr_err *err);
int bk_finish(struct backup *b, struct dmr_err *err);
void bk_close(struct backup *b);

/* The Docker root a backup records (from its manifest, checked as bk_undo
 * checks it); *root is malloc'ed. */
int bk_manifest_root(const char *backup_dir, char **root, struct dmr_err *err);

/* SHA-256 of a whole file as 64 hex digits (+ NUL): the digest of Docker's
 * files (bk_save_file, bk_set_after with a relpath). */
int bk_sha256_file(const char *path, char hex[65], struct dmr_err *err);

/* The digest backups record for the pool metadata (a regular file or a
 * block device), as 64 hex digits (+ NUL): fc_digest_nonzero
 * ("sha256-nonzero-4k", util/filecopy.h), which reads only the data in
 * use, so a 2 GiB loop-lvm file with a few MiB in use takes milliseconds,
 * not seconds. What bk_set_after(b, NULL, hex, err) takes. */
int bk_metadata_digest(const char *path, char hex[65], struct dmr_err *err);

struct bk_undo_result {
	unsigned restored;  /* files and trees put back */
	unsigned displaced; /* current versions moved to <backup>/displaced/ (force) */
	int changed;        /* something in the Docker root may have changed: a
			     * failure after this is a failure to write */
};

struct bk_undo_opts {
	int force;    /* restore even when files changed since, or reclaim ran */
	int dry_run;  /* print what would be restored, change nothing */
	struct bk_undo_result *result; /* optional: filled in, also on failure */
};

/* Restores a backup byte for byte: verifies every stored copy against the
 * manifest, refuses (DMR_EUSAGE, one line) when reclaim ran since or when a
 * file no longer has its after-change digest (Docker ran since), unless
 * forced; then puts each file back (temp file + fsync + rename, directories
 * renamed back) and marks the manifest "undone". report gets one line per
 * action. docker_root NULL: the one the manifest records.
 *
 * A file that still has its saved content is left alone, so undo also
 * works on a backup whose command was interrupted (state "prepared"), and
 * an interrupted undo can simply be run again. A forced undo keeps what it
 * replaces in <backup>/displaced/. Errors: DMR_ENOENT or DMR_EIO when the
 * backup cannot be read, DMR_ECORRUPT when it is damaged (a stored copy
 * differs from the manifest, or the manifest does not parse), DMR_EUSAGE
 * for a refusal, DMR_EIO when a restore fails (then result->changed),
 * DMR_EUNSUPP for a manifest from a newer dmrescue (another schema, or a
 * metadata digest this one does not know). */
int bk_undo(const char *backup_dir, const char *docker_root, const struct bk_undo_opts *o,
	    void (*report)(void *ctx, const char *line), void *ctx, struct dmr_err *err);

#endif
