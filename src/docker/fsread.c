#include "config.h"
#include "docker/fsread.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef O_NOATIME
#define O_NOATIME 0
#endif

/* Bound on the directory depth fsr_usage descends to (one fd per level). */
#define FSR_USAGE_DEPTH 64

int fsr_join(char *out, size_t size, const char *a, const char *b)
{
	int n;
	if (!*a)
		n = snprintf(out, size, "%s", b);
	else if (!*b)
		n = snprintf(out, size, "%s", a);
	else
		n = snprintf(out, size, "%s/%s", a, b);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

char *fsr_quote(char *out, size_t size, const char *s, size_t max)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, shown = 0;
	if (!size)
		return out;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char tmp[4];
		size_t len;
		if (c == '"' || c == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)c;
			len = 2;
		} else if (c >= 0x20 && c < 0x7f) {
			tmp[0] = (char)c;
			len = 1;
		} else {
			tmp[0] = '\\';
			tmp[1] = 'x';
			tmp[2] = hex[c >> 4];
			tmp[3] = hex[c & 15];
			len = 4;
		}
		if (shown >= max || o + len + 4 > size) {
			if (o + 4 <= size) {
				memcpy(out + o, "...", 3);
				o += 3;
			}
			break;
		}
		memcpy(out + o, tmp, len);
		o += len;
		shown++;
	}
	out[o] = '\0';
	return out;
}

static const char *type_name(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: return "a regular file";
	case S_IFDIR: return "a directory";
	case S_IFLNK: return "a symlink";
	case S_IFIFO: return "a fifo";
	case S_IFSOCK: return "a socket";
	case S_IFCHR: return "a character device";
	case S_IFBLK: return "a block device";
	default: return "an unknown kind of file";
	}
}

static int fail(struct fsr_fail *f, int code, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(struct fsr_fail *f, int code, const char *path, const char *fmt, ...)
{
	va_list ap;
	snprintf(f->path, sizeof(f->path), "%s", path);
	va_start(ap, fmt);
	vsnprintf(f->msg, sizeof(f->msg), fmt, ap);
	va_end(ap);
	return code;
}

static int fail_errno(struct fsr_fail *f, const char *path, int e)
{
	if (e == ENOENT)
		return fail(f, FSR_MISSING, path, "missing");
	if (e == EACCES || e == EPERM)
		return fail(f, FSR_BAD, path, "permission denied");
	if (e == ENOMEM)
		return DMR_ENOMEM;
	return fail(f, FSR_BAD, path, "%s", strerror(e));
}

/* Whether target, read from a symlink whose directory is dir (relative to
 * the root), stays below the root when resolved lexically. */
static int target_inside(const char *dir, const char *target)
{
	if (target[0] == '/')
		return 0;
	size_t depth = 0;
	for (const char *p = dir; *p;) {
		const char *e = strchr(p, '/');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len)
			depth++;
		p += len + (e ? 1 : 0);
	}
	for (const char *p = target; *p;) {
		const char *e = strchr(p, '/');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len == 2 && p[0] == '.' && p[1] == '.') {
			if (depth == 0)
				return 0;
			depth--;
		} else if (len && !(len == 1 && p[0] == '.')) {
			depth++;
		}
		p += len + (e ? 1 : 0);
	}
	return 1;
}

/* The failure for a symlink named name in dirfd, at path (its directory is
 * path minus the last component). */
static int fail_symlink(struct fsr_fail *f, int dirfd, const char *name, const char *path)
{
	char target[PATH_MAX], shown[400];
	ssize_t n = readlinkat(dirfd, name, target, sizeof(target) - 1);
	if (n < 0)
		return fail(f, FSR_BAD, path, "symlink, not followed (unreadable: %s)", strerror(errno));
	target[n] = '\0';
	char dir[FSR_PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	else
		dir[0] = '\0';
	fsr_quote(shown, sizeof(shown), target, 200);
	if ((size_t)n == sizeof(target) - 1 || !target_inside(dir, target))
		return fail(f, FSR_BAD, path, "symlink leading outside the root, not followed (-> \"%s\")", shown);
	return fail(f, FSR_BAD, path, "symlink, not followed (-> \"%s\")", shown);
}

/* Why name (in dirfd, at path) could not be opened as a want (S_IFDIR or
 * S_IFREG), open having failed with e (0: it opened but is the wrong kind). */
static int classify(struct fsr_fail *f, int dirfd, const char *name, const char *path, mode_t want, int e)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return fail_errno(f, path, errno);
	if (S_ISLNK(st.st_mode))
		return fail_symlink(f, dirfd, name, path);
	if ((st.st_mode & S_IFMT) != want)
		return fail(f, FSR_BAD, path, "%s, not %s", type_name(st.st_mode), type_name(want));
	return fail_errno(f, path, e ? e : EIO);
}

static int open_nofollow(int dirfd, const char *name, int flags)
{
	int fd = openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NOATIME);
	if (fd < 0 && errno == EPERM && O_NOATIME)
		fd = openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	return fd;
}

/* Splits rel into components in buf (NULs replacing the slashes); checks
 * each. Returns the number of components, or -1 with f filled. */
static int split(const struct fsr_dir *at, const char *rel, char *buf, size_t size, char **comp, int max,
		 struct fsr_fail *f)
{
	if (snprintf(buf, size, "%s", rel) >= (int)size) {
		fail(f, FSR_BAD, at->rel, "path too long");
		return -1;
	}
	int n = 0;
	char *p = buf;
	while (*p) {
		char *e = strchr(p, '/');
		if (e)
			*e = '\0';
		if (!*p || !strcmp(p, ".") || !strcmp(p, "..") || strlen(p) > NAME_MAX || n == max) {
			fail(f, FSR_BAD, at->rel, "invalid path below this directory");
			return -1;
		}
		comp[n++] = p;
		if (!e)
			break;
		p = e + 1;
		if (!*p) {
			fail(f, FSR_BAD, at->rel, "invalid path below this directory");
			return -1;
		}
	}
	return n;
}

#define MAX_COMPONENTS 256

/* Walks all components of rel but the last, which is returned in *last
 * (NULL for an empty rel) with its path relative to the root in path.
 * *dirfd is the directory holding it: at->fd itself (not to be closed) when
 * rel has one component, else a new fd the caller closes. */
struct walk {
	char buf[FSR_PATH_MAX];
	char path[FSR_PATH_MAX];
	char *comp[MAX_COMPONENTS];
	int n;
	int dirfd;
	int owned;
	const char *last;
};

static int walk_parent(const struct fsr_dir *at, const char *rel, struct walk *w, struct fsr_fail *f)
{
	w->dirfd = at->fd;
	w->owned = 0;
	w->last = NULL;
	snprintf(w->path, sizeof(w->path), "%s", at->rel);
	w->n = split(at, rel, w->buf, sizeof(w->buf), w->comp, MAX_COMPONENTS, f);
	if (w->n < 0)
		return FSR_BAD;
	for (int i = 0; i < w->n; i++) {
		char next[FSR_PATH_MAX];
		if (fsr_join(next, sizeof(next), w->path, w->comp[i]) < 0) {
			if (w->owned)
				close(w->dirfd);
			return fail(f, FSR_BAD, w->path, "path too long");
		}
		memcpy(w->path, next, sizeof(next));
		if (i == w->n - 1) {
			w->last = w->comp[i];
			break;
		}
		int fd = open_nofollow(w->dirfd, w->comp[i], O_RDONLY | O_DIRECTORY);
		int r = 0;
		if (fd < 0)
			r = classify(f, w->dirfd, w->comp[i], w->path, S_IFDIR, errno);
		if (w->owned)
			close(w->dirfd);
		w->owned = 0;
		if (r)
			return r;
		w->dirfd = fd;
		w->owned = 1;
	}
	return 0;
}

static void walk_done(struct walk *w)
{
	if (w->owned)
		close(w->dirfd);
	w->owned = 0;
}

int fsr_open_root(struct fsr_dir *root, const char *path, struct dmr_err *err)
{
	root->fd = -1;
	root->rel = NULL;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return dmr_err_set(err, DMR_EIO, "%s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return dmr_err_set(err, DMR_EIO, "%s: %s", path, strerror(e));
	}
	root->rel = strdup("");
	if (!root->rel) {
		close(fd);
		return dmr_err_set(err, DMR_ENOMEM, "%s: out of memory", path);
	}
	root->fd = fd;
	root->dev = st.st_dev;
	return 0;
}

/* Opens the directory rel below at as a raw fd (a dup of at->fd for ""). */
static int open_dir_fd(const struct fsr_dir *at, const char *rel, int *out, char *path, struct fsr_fail *f)
{
	if (!*rel) {
		int fd = fcntl(at->fd, F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			return fail_errno(f, at->rel, errno);
		snprintf(path, FSR_PATH_MAX, "%s", at->rel);
		*out = fd;
		return 0;
	}
	struct walk *w = malloc(sizeof(*w));
	if (!w)
		return DMR_ENOMEM;
	int r = walk_parent(at, rel, w, f);
	if (!r) {
		int fd = open_nofollow(w->dirfd, w->last, O_RDONLY | O_DIRECTORY);
		if (fd < 0)
			r = classify(f, w->dirfd, w->last, w->path, S_IFDIR, errno);
		else
			*out = fd;
		snprintf(path, FSR_PATH_MAX, "%s", w->path);
	}
	walk_done(w);
	free(w);
	return r;
}

int fsr_opendir(const struct fsr_dir *at, const char *rel, struct fsr_dir *out, struct fsr_fail *f)
{
	char path[FSR_PATH_MAX];
	int fd;
	out->fd = -1;
	out->rel = NULL;
	int r = open_dir_fd(at, rel, &fd, path, f);
	if (r)
		return r;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		r = fail_errno(f, path, errno);
		close(fd);
		return r;
	}
	out->rel = strdup(path);
	if (!out->rel) {
		close(fd);
		return DMR_ENOMEM;
	}
	out->fd = fd;
	out->dev = st.st_dev;
	return 0;
}

void fsr_closedir(struct fsr_dir *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
	free(d->rel);
	d->rel = NULL;
}

int fsr_lstat(const struct fsr_dir *at, const char *rel, struct stat *st, struct fsr_fail *f)
{
	if (!*rel)
		return fstat(at->fd, st) < 0 ? fail_errno(f, at->rel, errno) : 0;
	struct walk *w = malloc(sizeof(*w));
	if (!w)
		return DMR_ENOMEM;
	int r = walk_parent(at, rel, w, f);
	if (!r && fstatat(w->dirfd, w->last, st, AT_SYMLINK_NOFOLLOW) < 0)
		r = fail_errno(f, w->path, errno);
	walk_done(w);
	free(w);
	return r;
}

static int read_fd(int fd, size_t cap, const struct stat *st, struct fsr_file *out, const char *path,
		   struct fsr_fail *f)
{
	/* The size is only a first guess: read until EOF, but never more than
	 * cap + 1 bytes (one more tells that the file grew past the cap). */
	size_t alloc = (uint64_t)st->st_size < cap ? (size_t)st->st_size + 1 : cap + 1;
	if (alloc < 64)
		alloc = cap + 1 < 64 ? cap + 1 : 64;
	char *buf = malloc(alloc + 1);
	if (!buf)
		return DMR_ENOMEM;
	size_t len = 0;
	for (;;) {
		if (len == alloc) {
			if (alloc > cap)
				break;
			size_t grow = alloc > (cap + 1) / 2 ? cap + 1 : alloc * 2;
			char *nb = realloc(buf, grow + 1);
			if (!nb) {
				free(buf);
				return DMR_ENOMEM;
			}
			buf = nb;
			alloc = grow;
		}
		ssize_t n = read(fd, buf + len, alloc - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			free(buf);
			return fail_errno(f, path, e);
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > cap) {
		free(buf);
		return fail(f, FSR_BAD, path, "too large (more than %zu bytes)", cap);
	}
	buf[len] = '\0';
	out->data = buf;
	out->len = len;
	out->st = *st;
	return 0;
}

int fsr_read(const struct fsr_dir *at, const char *rel, size_t cap, struct fsr_file *out, struct fsr_fail *f)
{
	out->data = NULL;
	out->len = 0;
	if (!*rel)
		return fail(f, FSR_BAD, at->rel, "a directory, not a regular file");
	struct walk *w = malloc(sizeof(*w));
	if (!w)
		return DMR_ENOMEM;
	int r = walk_parent(at, rel, w, f);
	if (r)
		goto out;
	struct stat st;
	if (fstatat(w->dirfd, w->last, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		r = fail_errno(f, w->path, errno);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = classify(f, w->dirfd, w->last, w->path, S_IFREG, 0);
		goto out;
	}
	if ((uint64_t)st.st_size > cap) {
		r = fail(f, FSR_BAD, w->path, "too large (%llu bytes)", (unsigned long long)st.st_size);
		goto out;
	}
	/* O_NONBLOCK: should it have become a fifo since the stat, do not wait for a writer. */
	int fd = open_nofollow(w->dirfd, w->last, O_RDONLY | O_NONBLOCK);
	if (fd < 0) {
		r = classify(f, w->dirfd, w->last, w->path, S_IFREG, errno);
		goto out;
	}
	struct stat fst;
	if (fstat(fd, &fst) < 0) {
		r = fail_errno(f, w->path, errno);
	} else if (!S_ISREG(fst.st_mode) || fst.st_ino != st.st_ino || fst.st_dev != st.st_dev) {
		r = fail(f, FSR_BAD, w->path, "replaced while being read");
	} else if ((uint64_t)fst.st_size > cap) {
		r = fail(f, FSR_BAD, w->path, "too large (%llu bytes)", (unsigned long long)fst.st_size);
	} else {
		r = read_fd(fd, cap, &fst, out, w->path, f);
	}
	close(fd);
out:
	walk_done(w);
	free(w);
	return r;
}

void fsr_file_free(struct fsr_file *file)
{
	free(file->data);
	file->data = NULL;
	file->len = 0;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct fsr_entry *)a)->name, ((const struct fsr_entry *)b)->name);
}

void fsr_list_free(struct fsr_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->e[i].name);
	free(l->e);
	l->e = NULL;
	l->n = 0;
}

static mode_t entry_type(DIR *d, const struct dirent *de)
{
#ifdef _DIRENT_HAVE_D_TYPE
	if (de->d_type != DT_UNKNOWN)
		return DTTOIF(de->d_type);
#endif
	struct stat st;
	if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	return st.st_mode & S_IFMT;
}

int fsr_list(const struct fsr_dir *at, const char *rel, size_t max, struct fsr_list *out, struct fsr_fail *f)
{
	char path[FSR_PATH_MAX];
	int fd;
	memset(out, 0, sizeof(*out));
	int r = open_dir_fd(at, rel, &fd, path, f);
	if (r)
		return r;
	DIR *d = fdopendir(fd);
	if (!d) {
		r = fail_errno(f, path, errno);
		close(fd);
		return r;
	}
	rewinddir(d);
	size_t cap = 0;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			if (errno)
				r = fail_errno(f, path, errno);
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (out->n == max) {
			out->truncated = 1;
			break;
		}
		if (out->n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			if (ncap > max)
				ncap = max;
			struct fsr_entry *e = realloc(out->e, ncap * sizeof(*e));
			if (!e) {
				r = DMR_ENOMEM;
				break;
			}
			out->e = e;
			cap = ncap;
		}
		char *name = strdup(de->d_name);
		if (!name) {
			r = DMR_ENOMEM;
			break;
		}
		out->e[out->n].name = name;
		out->e[out->n].type = entry_type(d, de);
		out->n++;
	}
	closedir(d);
	if (r) {
		fsr_list_free(out);
		return r;
	}
	if (out->n > 1)
		qsort(out->e, out->n, sizeof(out->e[0]), cmp_entry);
	return 0;
}

static void usage_dir(int fd, dev_t dev, int depth, uint64_t max, struct fsr_usage *u)
{
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		u->unreadable = 1;
		return;
	}
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			if (errno)
				u->unreadable = 1;
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (u->entries == max) {
			u->truncated = 1;
			break;
		}
		u->entries++;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			u->unreadable = 1;
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			u->bytes += (uint64_t)st.st_size;
			continue;
		}
		if (st.st_dev != dev) {
			u->other_fs = 1;
			continue;
		}
		if (depth + 1 >= FSR_USAGE_DEPTH) {
			u->truncated = 1;
			continue;
		}
		int sub = open_nofollow(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY);
		if (sub < 0) {
			u->unreadable = 1;
			continue;
		}
		usage_dir(sub, dev, depth + 1, max, u);
		if (u->truncated && u->entries == max)
			break;
	}
	closedir(d);
}

int fsr_usage(const struct fsr_dir *at, const char *rel, uint64_t max_entries, struct fsr_usage *out,
	      struct fsr_fail *f)
{
	char path[FSR_PATH_MAX];
	int fd;
	memset(out, 0, sizeof(*out));
	int r = open_dir_fd(at, rel, &fd, path, f);
	if (r)
		return r;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		r = fail_errno(f, path, errno);
		close(fd);
		return r;
	}
	usage_dir(fd, st.st_dev, 0, max_entries, out);
	return 0;
}
