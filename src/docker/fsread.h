/* Reading files below a root directory without ever leaving it: the root is
 * opened once, and every path below it is walked one component at a time
 * with openat(O_NOFOLLOW), so a symlink anywhere on the way is reported,
 * never followed. Whole-file reads are capped, listings are bounded, and
 * nothing but regular files and directories is ever opened (a fifo or a
 * device node is only stat'ed).
 *
 * Paths are relative to a directory handle (the root itself, or one opened
 * below it), '/'-separated, without "." or ".." components. Failures come
 * back as a path relative to the root (the component that failed, e.g. the
 * symlink) and a one-line reason; the caller decides whether it is a
 * problem. */
#ifndef DMR_DOCKER_FSREAD_H
#define DMR_DOCKER_FSREAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "util/err.h"

#define FSR_PATH_MAX 4096

/* Results besides 0: positive, so a negative value is always a DMR_E* code
 * (only DMR_ENOMEM). */
enum {
	FSR_MISSING = 1, /* a component does not exist; f->msg is "missing" */
	FSR_BAD = 2,     /* exists but cannot be used: f says why */
};

/* Default caps. */
#define FSR_JSON_MAX ((size_t)16 << 20)
#define FSR_LIST_MAX ((size_t)1000000)

struct fsr_fail {
	char path[FSR_PATH_MAX]; /* relative to the root */
	char msg[512];
};

/* An open directory at or below the root. */
struct fsr_dir {
	int fd;
	dev_t dev;   /* st_dev of the directory */
	char *rel;   /* path relative to the root, "" for the root */
};

/* Opens the root itself (following symlinks in path: the caller chose it).
 * DMR_EIO when it is not an openable directory. */
int fsr_open_root(struct fsr_dir *root, const char *path, struct dmr_err *err);

/* Opens the directory rel below at. */
int fsr_opendir(const struct fsr_dir *at, const char *rel, struct fsr_dir *out, struct fsr_fail *f);
void fsr_closedir(struct fsr_dir *d);

/* lstat of rel below at: the last component may be anything (a symlink is
 * returned as one); only the components on the way must be directories. */
int fsr_lstat(const struct fsr_dir *at, const char *rel, struct stat *st, struct fsr_fail *f);

struct fsr_file {
	char *data;  /* len bytes and a NUL */
	size_t len;
	struct stat st;
};

/* Reads the whole regular file rel below at, at most cap bytes: a larger
 * file is FSR_BAD "too large (N bytes)" and is not read. */
int fsr_read(const struct fsr_dir *at, const char *rel, size_t cap, struct fsr_file *out, struct fsr_fail *f);
void fsr_file_free(struct fsr_file *file);

struct fsr_entry {
	char *name;
	mode_t type; /* S_IFREG, S_IFDIR, S_IFLNK, ...; 0 when it vanished */
};

struct fsr_list {
	struct fsr_entry *e; /* sorted by name (strcmp), without "." and ".." */
	size_t n;
	int truncated;       /* more than max entries: only the first max read */
};

/* Lists the directory rel below at (rel "" is at itself). */
int fsr_list(const struct fsr_dir *at, const char *rel, size_t max, struct fsr_list *out, struct fsr_fail *f);
void fsr_list_free(struct fsr_list *l);

struct fsr_usage {
	uint64_t bytes;   /* st_size of every non-directory entry below */
	uint64_t entries; /* entries seen below (not counting the directory itself) */
	int truncated;    /* stopped at the entry or depth bound: bytes is a lower bound */
	int other_fs;     /* a directory on another filesystem (a mount point) was not entered */
	int unreadable;   /* a subdirectory could not be opened or listed */
};

/* Apparent size of everything below the directory rel, never following
 * symlinks and never crossing into another filesystem. */
int fsr_usage(const struct fsr_dir *at, const char *rel, uint64_t max_entries, struct fsr_usage *out,
	      struct fsr_fail *f);

/* Joins a and b with '/' into out (either may be empty). -1 when it does not fit. */
int fsr_join(char *out, size_t size, const char *a, const char *b);

/* Copies s into out for a one-line message: printable ASCII as is, '"' and
 * '\\' escaped, anything else as \xNN, cut to about max characters with
 * "...". Returns out. */
char *fsr_quote(char *out, size_t size, const char *s, size_t max);

#endif
