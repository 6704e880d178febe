/* Every change dmrescue makes to a user's files goes through these calls:
 * writes, fsyncs, renames, unlinks, directory creation and removal. They
 * retry short writes and EINTR, name the file in one-line errors, and in a
 * build configured with --enable-fault-injection they can simulate a crash
 * or an I/O error at the N-th change, so tests can prove that every
 * intermediate state on disk is valid:
 *
 *   DMRESCUE_FAULT_AT=N     the N-th call (1-based) fails
 *   DMRESCUE_FAULT_MODE=crash (default): _exit(SIO_FAULT_EXIT) before doing it,
 *                           as if the machine lost power (nothing after runs)
 *                     =eio: return DMR_EIO (the error paths must clean up)
 *   DMRESCUE_FAULT_LOG=FILE appends "N op path" for every call (tests use it
 *                           to count the calls and to name the failing one)
 *
 * Reads never go through here. */
#ifndef DMR_UTIL_SAFEIO_H
#define DMR_UTIL_SAFEIO_H

#include <stddef.h>
#include <sys/types.h>

#include "util/err.h"

#define SIO_FAULT_EXIT 86

/* 1 when this build honours DMRESCUE_FAULT_AT. */
int sio_fault_injection_built(void);

/* pwrite all of buf at off (retrying short writes); what names the file. */
int sio_pwrite(int fd, const void *buf, size_t len, off_t off, const char *what, struct dmr_err *err);
int sio_fsync(int fd, const char *what, struct dmr_err *err);
int sio_ftruncate(int fd, off_t len, const char *what, struct dmr_err *err);
/* fsyncs the directory (opened O_RDONLY|O_DIRECTORY) at path. */
int sio_fsync_dir(const char *path, struct dmr_err *err);
/* renameat(olddirfd, oldname, newdirfd, newname); paths are for messages
 * and the fault log (may be NULL: the names are used). */
int sio_renameat(int olddirfd, const char *oldname, int newdirfd, const char *newname, const char *what,
		 struct dmr_err *err);
int sio_unlinkat(int dirfd, const char *name, int flags, const char *what, struct dmr_err *err);
int sio_mkdirat(int dirfd, const char *name, mode_t mode, const char *what, struct dmr_err *err);
/* open(O_CREAT|O_EXCL|O_WRONLY...) of a new file: counts as a change. */
int sio_create(int dirfd, const char *name, int extra_flags, mode_t mode, const char *what, struct dmr_err *err);
/* Punching a hole / discarding counts as a change too (reclaim). */
int sio_punch(int fd, off_t off, off_t len, const char *what, struct dmr_err *err);

/* For callers that change things by other means (ioctl, fchown, xattrs):
 * counts one change and applies the fault; 0 means go ahead. */
int sio_fault_point(const char *op, const char *what, struct dmr_err *err);

#endif
