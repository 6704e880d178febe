#include "config.h"
#include "util/safeio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef DMR_FAULT_INJECTION
static unsigned long sio_calls;

int sio_fault_injection_built(void)
{
	return 1;
}

static int fault(const char *op, const char *what, struct dmr_err *err)
{
	sio_calls++;
	const char *log = getenv("DMRESCUE_FAULT_LOG");
	if (log && *log) {
		FILE *f = fopen(log, "ae");
		if (f) {
			fprintf(f, "%lu %s %s\n", sio_calls, op, what ? what : "-");
			fclose(f);
		}
	}
	const char *at = getenv("DMRESCUE_FAULT_AT");
	if (!at || !*at)
		return 0;
	char *end;
	unsigned long n = strtoul(at, &end, 10);
	if (*end || n != sio_calls)
		return 0;
	const char *mode = getenv("DMRESCUE_FAULT_MODE");
	if (mode && strcmp(mode, "eio") == 0)
		return dmr_err_set(err, DMR_EIO, "%s %s: injected I/O error (change %lu)", op, what ? what : "-",
				   n);
	_exit(SIO_FAULT_EXIT);
}
#else
int sio_fault_injection_built(void)
{
	return 0;
}

static int fault(const char *op, const char *what, struct dmr_err *err)
{
	(void)op;
	(void)what;
	(void)err;
	return 0;
}
#endif

int sio_fault_point(const char *op, const char *what, struct dmr_err *err)
{
	return fault(op, what, err);
}

static int fail(struct dmr_err *err, const char *op, const char *what)
{
	return dmr_err_set(err, DMR_EIO, "%s %s: %s", op, what ? what : "-", strerror(errno));
}

int sio_pwrite(int fd, const void *buf, size_t len, off_t off, const char *what, struct dmr_err *err)
{
	int rc = fault("write", what, err);
	if (rc)
		return rc;
	const unsigned char *p = buf;
	while (len > 0) {
		ssize_t w = pwrite(fd, p, len, off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return fail(err, "writing", what);
		}
		if (w == 0) {
			errno = ENOSPC;
			return fail(err, "writing", what);
		}
		p += w;
		len -= (size_t)w;
		off += w;
	}
	return 0;
}

int sio_fsync(int fd, const char *what, struct dmr_err *err)
{
	int rc = fault("fsync", what, err);
	if (rc)
		return rc;
	while (fsync(fd) != 0) {
		if (errno != EINTR)
			return fail(err, "syncing", what);
	}
	return 0;
}

int sio_ftruncate(int fd, off_t len, const char *what, struct dmr_err *err)
{
	int rc = fault("truncate", what, err);
	if (rc)
		return rc;
	while (ftruncate(fd, len) != 0) {
		if (errno != EINTR)
			return fail(err, "truncating", what);
	}
	return 0;
}

int sio_fsync_dir(const char *path, struct dmr_err *err)
{
	int rc = fault("fsync", path, err);
	if (rc)
		return rc;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, "opening directory", path);
	while (fsync(fd) != 0) {
		/* Some filesystems cannot sync a directory; that is not an error. */
		if (errno == EINVAL || errno == EROFS)
			break;
		if (errno != EINTR) {
			int e = errno;
			close(fd);
			errno = e;
			return fail(err, "syncing directory", path);
		}
	}
	close(fd);
	return 0;
}

int sio_renameat(int olddirfd, const char *oldname, int newdirfd, const char *newname, const char *what,
		 struct dmr_err *err)
{
	const char *w = what ? what : newname;
	int rc = fault("rename", w, err);
	if (rc)
		return rc;
	if (renameat(olddirfd, oldname, newdirfd, newname) != 0)
		return dmr_err_set(err, DMR_EIO, "renaming %s to %s: %s", oldname, w, strerror(errno));
	return 0;
}

int sio_unlinkat(int dirfd, const char *name, int flags, const char *what, struct dmr_err *err)
{
	const char *w = what ? what : name;
	int rc = fault("unlink", w, err);
	if (rc)
		return rc;
	if (unlinkat(dirfd, name, flags) != 0)
		return fail(err, "removing", w);
	return 0;
}

int sio_mkdirat(int dirfd, const char *name, mode_t mode, const char *what, struct dmr_err *err)
{
	const char *w = what ? what : name;
	int rc = fault("mkdir", w, err);
	if (rc)
		return rc;
	if (mkdirat(dirfd, name, mode) != 0)
		return fail(err, "creating directory", w);
	return 0;
}

int sio_create(int dirfd, const char *name, int extra_flags, mode_t mode, const char *what, struct dmr_err *err)
{
	const char *w = what ? what : name;
	int rc = fault("create", w, err);
	if (rc)
		return rc;
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | extra_flags, mode);
	if (fd < 0)
		return fail(err, "creating", w);
	return fd;
}

int sio_punch(int fd, off_t off, off_t len, const char *what, struct dmr_err *err)
{
	int rc = fault("punch", what, err);
	if (rc)
		return rc;
#if defined(HAVE_FALLOCATE) && defined(FALLOC_FL_PUNCH_HOLE)
	while (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) != 0) {
		if (errno == EOPNOTSUPP || errno == ENOSYS)
			return dmr_err_set(err, DMR_EUNSUPP, "%s: its filesystem cannot punch holes "
					   "(fallocate PUNCH_HOLE: %s)", what, strerror(errno));
		if (errno != EINTR)
			return fail(err, "punching a hole in", what);
	}
	return 0;
#else
	(void)fd;
	(void)off;
	(void)len;
	return dmr_err_set(err, DMR_EUNSUPP, "punching a hole in %s: not supported on this system", what);
#endif
}
