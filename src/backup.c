/* Backups before any change, and undo (see backup.h).
 *
 * manifest.json, schema "dmrescue.backup/1" (a reader refuses another
 * schema; fields may be added within version 1, never changed in meaning):
 *
 *   {
 *     "schema": "dmrescue.backup/1",
 *     "state": "prepared" | "complete" | "undone",
 *         prepared: sealed, changes may have started (a crash leaves this);
 *         complete: the command finished; undone: restored by undo
 *     "command": "clean",           what made the backup
 *     "created": "2026-11-29T12:05:01Z",
 *     "undone_at": "..."            only once undone
 *     "docker_root": "/var/lib/docker",   absolute
 *     "reclaim_serial": 0,          <root>/devicemapper/.dmrescue-reclaimed then
 *     "metadata": null | {          the pool metadata, copied to pool/metadata
 *       "path": "/abs/path", "root_relative": "devicemapper/devicemapper/metadata" | null,
 *       "kind": "file" | "block",
 *       "size", "digest", "sha256", "mode", "uid", "gid", "mtime",
 *       "after_sha256": "..." | null   its content after the change, once known
 *     },
 *     "rewritten": [ {              files changed in place, copied to files/<path>
 *       "path": "devicemapper/metadata/<hash>",   relative to docker_root
 *       "size", "sha256", "mode", "uid", "gid", "mtime",
 *       "after_sha256": "..." | null, "after_removed": false
 *     } ],
 *     "removed": [ {                files or trees moved to files/<path>
 *       "path": "containers/<id>",
 *       "entries": [ { "path", "type": "file" | "dir" | "symlink" | "other",
 *                      "size", "sha256" (files), "target" (symlinks),
 *                      "mode", "uid", "gid", "mtime" } ]   sorted by path, the first is "path"
 *     } ]
 *   }
 *
 * sha256 values are 64 lowercase hex digits: the SHA-256 of the logical
 * content (holes read as zeros), except for the metadata, whose "sha256"
 * and "after_sha256" hold the digest its "digest" names:
 *   "sha256-nonzero-4k"   fc_digest_nonzero (util/filecopy.h): SHA-256 over
 *                         the offset (le64) and content of each 4 KiB block
 *                         that is not all zeros, then the size (le64); it
 *                         costs the data in use, not the 2 GiB of a sparse
 *                         loop-lvm file. What this dmrescue writes. Of
 *                         a block device ("kind": "block"), undo hashes
 *                         the first "size" bytes.
 *   "sha256"              the plain SHA-256, as above. A manifest without
 *                         "digest" (written before the field existed) means
 *                         this, and is undone as before.
 * Another digest name is refused as unsupported (a newer dmrescue). mode
 * is the permission bits (st_mode & 07777); mtime is in seconds since the
 * epoch. */
#include "config.h"
#include "backup.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "docker/fsread.h"
#include "docker/gojson.h"
#include "util/filecopy.h"
#include "util/grow.h"
#include "util/jsonc.h"
#include "util/safeio.h"
#include "util/sha256.h"

#define BK_SCHEMA "dmrescue.backup/1"
#define BK_SCHEMA_FAMILY "dmrescue.backup/"
#define BK_MANIFEST "manifest.json"
#define BK_MANIFEST_TMP ".manifest.json.tmp"
#define BK_MANIFEST_MAX ((size_t)128 << 20)
#define BK_MAX_NODES 200000
#define BK_MAX_DEPTH 64
#define BK_PATH FSR_PATH_MAX
#define BK_META_COPY "pool/metadata"
/* The metadata's digests, as the manifest names them. */
#define BK_DIGEST_NONZERO "sha256-nonzero-4k"
#define BK_DIGEST_SHA256 "sha256"
#define BK_RECLAIM "devicemapper/.dmrescue-reclaimed"
/* Temp names in the user's directories start with '.': Docker skips those
 * when it loads devicemapper/metadata/. */
#define BK_TMP_PREFIX ".dmrescue-undo."
#define BK_PARTIAL_PREFIX ".dmrescue-partial."

enum bk_type { BK_T_FILE, BK_T_DIR, BK_T_LINK, BK_T_OTHER };
static const char *const type_names[] = { "file", "dir", "symlink", "other" };

/* One recorded file, directory or symlink. */
struct bk_node {
	char *path; /* relative to the Docker root */
	enum bk_type type;
	uint64_t size;
	char sha256[SHA256_HEX_LEN + 1]; /* files */
	char *target;                    /* symlinks */
	uint32_t mode, uid, gid;
	int64_t mtime;
};

enum bk_after { AFTER_UNKNOWN, AFTER_HASH, AFTER_GONE };

struct bk_changed {
	struct bk_node n;
	enum bk_after after;
	char after_sha256[SHA256_HEX_LEN + 1];
};

/* Which digest c.n.sha256 and c.after_sha256 hold. */
enum bk_digest { BK_DIG_NONZERO, BK_DIG_SHA256 };

struct bk_meta {
	int present;
	char *path;     /* absolute */
	char *root_rel; /* relative to the Docker root, or NULL */
	int is_block;
	enum bk_digest digest;
	struct bk_changed c;
};

struct bk_removal {
	char *path;
	struct bk_node *nodes; /* sorted by path; nodes[0] is path itself */
	size_t nr;
};

struct bk_manifest {
	char *state, *command, *created, *undone_at, *docker_root;
	uint64_t reclaim_serial;
	struct bk_meta meta;
	struct bk_changed *rw;
	size_t nr_rw;
	struct bk_removal *rm;
	size_t nr_rm;
};

struct backup {
	char *dir;
	struct fsr_dir root; /* the Docker root */
	int dirfd;           /* the backup directory */
	struct bk_manifest m;
	size_t nr_nodes;     /* bounded by BK_MAX_NODES */
	int sealed;
};

/* ---- small helpers ---- */

static int oom(struct dmr_err *err)
{
	return dmr_err_set(err, DMR_ENOMEM, "out of memory");
}

static int join(char *out, const char *a, const char *b, struct dmr_err *err)
{
	if (fsr_join(out, BK_PATH, a, b) < 0)
		return dmr_err_set(err, DMR_EUSAGE, "%s/%s: path too long", a, b);
	return 0;
}

/* The time now, UTC: compact for directory names, ISO 8601 for the manifest. */
static void utc_stamp(char *out, size_t size, int compact)
{
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	if (compact)
		strftime(out, size, "%Y%m%dT%H%M%SZ", &tm);
	else
		strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int is_hex64(const char *s)
{
	if (!s || strlen(s) != SHA256_HEX_LEN)
		return 0;
	for (const char *p = s; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return 0;
	return 1;
}

/* A path relative to the Docker root: components without "." and "..",
 * no empty ones, nothing absolute. */
static int valid_rel(const char *p)
{
	if (!p || !*p || *p == '/' || strlen(p) >= BK_PATH)
		return 0;
	while (*p) {
		const char *e = strchr(p, '/');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len == 0 || len > NAME_MAX || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			return 0;
		if (!e)
			break;
		p = e + 1;
		if (!*p)
			return 0;
	}
	return 1;
}

static void node_free(struct bk_node *n)
{
	free(n->path);
	free(n->target);
	n->path = n->target = NULL;
}

static void manifest_free(struct bk_manifest *m)
{
	free(m->state);
	free(m->command);
	free(m->created);
	free(m->undone_at);
	free(m->docker_root);
	free(m->meta.path);
	free(m->meta.root_rel);
	node_free(&m->meta.c.n);
	for (size_t i = 0; i < m->nr_rw; i++)
		node_free(&m->rw[i].n);
	free(m->rw);
	for (size_t i = 0; i < m->nr_rm; i++) {
		for (size_t k = 0; k < m->rm[i].nr; k++)
			node_free(&m->rm[i].nodes[k]);
		free(m->rm[i].nodes);
		free(m->rm[i].path);
	}
	free(m->rm);
	memset(m, 0, sizeof(*m));
}

static void node_from_stat(struct bk_node *n, const struct stat *st)
{
	n->mode = (uint32_t)(st->st_mode & 07777);
	n->uid = (uint32_t)st->st_uid;
	n->gid = (uint32_t)st->st_gid;
	n->mtime = (int64_t)st->st_mtim.tv_sec;
	n->size = S_ISREG(st->st_mode) ? (uint64_t)st->st_size : 0;
	n->type = S_ISREG(st->st_mode) ? BK_T_FILE : S_ISDIR(st->st_mode) ? BK_T_DIR
		  : S_ISLNK(st->st_mode) ? BK_T_LINK : BK_T_OTHER;
}

/* SHA-256 of the first limit bytes of fd (all of it when limit is
 * UINT64_MAX), read from offset 0. */
static int hash_fd(int fd, uint64_t limit, char hex[SHA256_HEX_LEN + 1], const char *what, struct dmr_err *err)
{
	enum { CHUNK = 1 << 20 };
	unsigned char *buf = malloc(CHUNK);
	if (!buf)
		return oom(err);
	struct sha256_ctx c;
	sha256_init(&c);
	uint64_t off = 0;
	while (off < limit) {
		size_t want = limit - off < CHUNK ? (size_t)(limit - off) : CHUNK;
		ssize_t n = pread(fd, buf, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			free(buf);
			return dmr_err_set(err, DMR_EIO, "reading %s: %s", what, strerror(e));
		}
		if (n == 0)
			break;
		sha256_update(&c, buf, (size_t)n);
		off += (uint64_t)n;
	}
	free(buf);
	if (limit != UINT64_MAX && off < limit)
		return dmr_err_set(err, DMR_ECORRUPT, "%s: shorter than the %llu bytes recorded", what,
				   (unsigned long long)limit);
	sha256_final_hex(&c, hex);
	return 0;
}

/* The digest d of the first limit bytes of fd (all of it when
 * UINT64_MAX). */
static int digest_fd(int fd, enum bk_digest d, uint64_t limit, char hex[SHA256_HEX_LEN + 1], const char *what,
		     struct dmr_err *err)
{
	if (d == BK_DIG_SHA256)
		return hash_fd(fd, limit, hex, what, err);
	return fc_digest_nonzero_len(fd, limit, what, hex, err);
}

static int digest_path(const char *path, enum bk_digest d, char hex[SHA256_HEX_LEN + 1], struct dmr_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return dmr_err_set(err, errno == ENOENT ? DMR_ENOENT : DMR_EIO, "cannot open %s: %s", path,
				   strerror(errno));
	int r = digest_fd(fd, d, UINT64_MAX, hex, path, err);
	close(fd);
	return r;
}

int bk_sha256_file(const char *path, char hex[65], struct dmr_err *err)
{
	return digest_path(path, BK_DIG_SHA256, hex, err);
}

int bk_metadata_digest(const char *path, char hex[65], struct dmr_err *err)
{
	return digest_path(path, BK_DIG_NONZERO, hex, err);
}

static int exists_at(int dirfd, const char *name)
{
	struct stat st;
	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* An open directory and a name in it: where a file is, or goes. */
struct loc {
	int fd;
	char path[BK_PATH]; /* the directory, for messages and sio_fsync_dir */
	char name[NAME_MAX + 1];
	char full[BK_PATH]; /* path/name */
};

static void loc_close(struct loc *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
}

/* Splits rel into its directory and last component. */
static void split_rel(const char *rel, char *dir, char *name)
{
	const char *slash = strrchr(rel, '/');
	size_t dl = slash ? (size_t)(slash - rel) : 0;
	memcpy(dir, rel, dl);
	dir[dl] = '\0';
	snprintf(name, NAME_MAX + 1, "%s", slash ? slash + 1 : rel);
}

/* The directory holding rel below root (never leaving the root, never
 * following a symlink). DMR_ENOENT when a directory on the way is missing. */
static int loc_in_root(const struct fsr_dir *root, const char *root_path, const char *rel, struct loc *l,
		       struct dmr_err *err)
{
	char dir[BK_PATH];
	l->fd = -1;
	if (!valid_rel(rel))
		return dmr_err_set(err, DMR_EUSAGE, "%s: not a path below the Docker root", rel);
	split_rel(rel, dir, l->name);
	struct fsr_dir d;
	struct fsr_fail f;
	int r = fsr_opendir(root, dir, &d, &f);
	if (r == DMR_ENOMEM)
		return oom(err);
	if (r)
		return dmr_err_set(err, r == FSR_MISSING ? DMR_ENOENT : DMR_EIO, "%s/%s: %s", root_path, f.path,
				   f.msg);
	l->fd = d.fd;
	d.fd = -1;
	fsr_closedir(&d);
	if (join(l->path, root_path, dir, err) || join(l->full, l->path, l->name, err)) {
		loc_close(l);
		return err ? err->code : DMR_EUSAGE;
	}
	return 0;
}

/* The directory holding rel below the directory dirfd (at base), created
 * (mode 0700, each new one's parent fsynced) when missing. */
static int loc_make(int dirfd, const char *base, const char *rel, struct loc *l, struct dmr_err *err)
{
	char dir[BK_PATH], path[BK_PATH];
	l->fd = -1;
	if (!valid_rel(rel))
		return dmr_err_set(err, DMR_EUSAGE, "%s: not a relative path", rel);
	split_rel(rel, dir, l->name);
	int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return dmr_err_set(err, DMR_EIO, "%s: %s", base, strerror(errno));
	snprintf(path, sizeof(path), "%s", base);
	for (char *p = dir, *e; *p; p = e ? e + 1 : p + strlen(p)) {
		e = strchr(p, '/');
		if (e)
			*e = '\0';
		char next[BK_PATH];
		int r = join(next, path, p, err);
		if (!r && !exists_at(fd, p) && !(r = sio_mkdirat(fd, p, 0700, next, err)))
			r = sio_fsync_dir(path, err);
		if (r) {
			close(fd);
			return r;
		}
		int sub = openat(fd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0) {
			int e2 = errno;
			close(fd);
			return dmr_err_set(err, DMR_EIO, "opening directory %s: %s", next, strerror(e2));
		}
		close(fd);
		fd = sub;
		memcpy(path, next, sizeof(path));
		if (!e)
			break;
	}
	l->fd = fd;
	snprintf(l->path, sizeof(l->path), "%s", path);
	if (join(l->full, l->path, l->name, err)) {
		loc_close(l);
		return err ? err->code : DMR_EUSAGE;
	}
	return 0;
}

/* Sorted names in the open directory fd. */
static int list_dir(int fd, const char *path, struct fsr_list *out, struct dmr_err *err)
{
	struct fsr_dir d = { .fd = fd, .rel = (char *)path };
	struct fsr_fail f;
	int r = fsr_list(&d, "", BK_MAX_NODES, out, &f);
	if (r == DMR_ENOMEM)
		return oom(err);
	if (r)
		return dmr_err_set(err, DMR_EIO, "listing %s: %s", path, f.msg);
	if (out->truncated) {
		fsr_list_free(out);
		return dmr_err_set(err, DMR_EUNSUPP, "%s: more than %d entries", path, BK_MAX_NODES);
	}
	return 0;
}

static int open_dir_at(int dirfd, const char *name, const char *path, struct dmr_err *err)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		dmr_err_set(err, DMR_EIO, "opening directory %s: %s", path, strerror(errno));
	return fd;
}

/* Opens a regular file for reading without following a symlink. */
static int open_file_at(int dirfd, const char *name, const char *path, struct stat *st, struct dmr_err *err)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return dmr_err_set(err, errno == ENOENT ? DMR_ENOENT : DMR_EIO, "cannot open %s: %s", path,
				   errno == ELOOP ? "a symlink, not followed" : strerror(errno));
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		int e = errno;
		close(fd);
		return dmr_err_set(err, DMR_EIO, "%s: %s", path, S_ISREG(st->st_mode) ? strerror(e) : "not a regular file");
	}
	return fd;
}

/* ---- trees: recording, copying, removing ---- */

struct nodes {
	struct bk_node *v;
	size_t n, cap;
};

static void nodes_free(struct nodes *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		node_free(&ns->v[i]);
	free(ns->v);
	ns->v = NULL;
	ns->n = ns->cap = 0;
}

static struct bk_node *nodes_push(struct nodes *ns)
{
	struct bk_node *v = dmr_grow(ns->v, &ns->cap, ns->n, sizeof(*v));
	if (!v)
		return NULL;
	ns->v = v;
	memset(&v[ns->n], 0, sizeof(*v));
	return &v[ns->n++];
}

static int cmp_node(const void *a, const void *b)
{
	return strcmp(((const struct bk_node *)a)->path, ((const struct bk_node *)b)->path);
}

static const struct bk_node *node_find(const struct bk_node *v, size_t n, const char *path)
{
	struct bk_node key = { .path = (char *)path };
	return n ? bsearch(&key, v, n, sizeof(*v), cmp_node) : NULL;
}

/* Calls fn for each entry of the directory name (in dirfd, at abs), in
 * name order, with the open directory and the entry's name and path; at
 * most BK_MAX_DEPTH levels below the top (depth is this one's). */
typedef int (*child_fn)(void *ctx, int dfd, const char *child, const char *child_abs, struct dmr_err *err);

static int each_child(int dirfd, const char *name, const char *abs, int depth, child_fn fn, void *ctx,
		      struct dmr_err *err)
{
	if (depth >= BK_MAX_DEPTH)
		return dmr_err_set(err, DMR_EUNSUPP, "%s: deeper than %d levels", abs, BK_MAX_DEPTH);
	int d = open_dir_at(dirfd, name, abs, err);
	if (d < 0)
		return d;
	struct fsr_list l;
	int r = list_dir(d, abs, &l, err);
	int listed = !r;
	for (size_t i = 0; !r && i < l.n; i++) {
		char c[BK_PATH];
		r = join(c, abs, l.e[i].name, err);
		if (!r)
			r = fn(ctx, d, l.e[i].name, c, err);
	}
	if (listed)
		fsr_list_free(&l);
	close(d);
	return r;
}

struct scan_ctx {
	const char *rel;
	int depth;
	size_t max;
	struct nodes *out;
};

static int scan_tree(int dirfd, const char *name, const char *abs, const char *rel, int depth, size_t max,
		     struct nodes *out, struct dmr_err *err);

static int scan_child(void *ctx, int dfd, const char *child, const char *child_abs, struct dmr_err *err)
{
	const struct scan_ctx *c = ctx;
	char crel[BK_PATH];
	int r = join(crel, c->rel, child, err);
	return r ? r : scan_tree(dfd, child, child_abs, crel, c->depth + 1, c->max, c->out, err);
}

/* Records name (in dirfd, at abs) as rel, and everything below it. */
static int scan_tree(int dirfd, const char *name, const char *abs, const char *rel, int depth, size_t max,
		     struct nodes *out, struct dmr_err *err)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return dmr_err_set(err, errno == ENOENT ? DMR_ENOENT : DMR_EIO, "%s: %s", abs, strerror(errno));
	if (out->n >= max)
		return dmr_err_set(err, DMR_EUNSUPP, "%s: more than %zu entries", abs, max);
	struct bk_node *n = nodes_push(out);
	if (!n || !(n->path = strdup(rel)))
		return oom(err);
	node_from_stat(n, &st);
	if (n->type == BK_T_LINK) {
		char target[BK_PATH];
		ssize_t len = readlinkat(dirfd, name, target, sizeof(target) - 1);
		if (len < 0)
			return dmr_err_set(err, DMR_EIO, "reading the symlink %s: %s", abs, strerror(errno));
		target[len] = '\0';
		n->size = 0;
		return (n->target = strdup(target)) ? 0 : oom(err);
	}
	if (n->type == BK_T_FILE) {
		struct stat fst;
		int fd = open_file_at(dirfd, name, abs, &fst, err);
		if (fd < 0)
			return fd;
		int r = hash_fd(fd, UINT64_MAX, n->sha256, abs, err);
		close(fd);
		return r;
	}
	if (n->type != BK_T_DIR)
		return 0;
	struct scan_ctx c = { rel, depth, max, out };
	return each_child(dirfd, name, abs, depth, scan_child, &c, err);
}

/* Scans a tree into a sorted node array. */
static int scan_sorted(int dirfd, const char *name, const char *abs, const char *rel, struct nodes *out,
		       struct dmr_err *err)
{
	memset(out, 0, sizeof(*out));
	int r = scan_tree(dirfd, name, abs, rel, 0, BK_MAX_NODES, out, err);
	if (r) {
		nodes_free(out);
		return r;
	}
	qsort(out->v, out->n, sizeof(out->v[0]), cmp_node);
	return 0;
}

static int same_node(const struct bk_node *a, const struct bk_node *b)
{
	if (a->type != b->type)
		return 0;
	if (a->type == BK_T_FILE)
		return a->size == b->size && !strcmp(a->sha256, b->sha256);
	if (a->type == BK_T_LINK)
		return !strcmp(a->target, b->target);
	return 1;
}

enum tree_cmp { TREE_EQUAL, TREE_SUBSET, TREE_DIFFERENT };

/* have against want (both sorted): the same content, a strict part of it
 * (what an interrupted removal leaves), or something else. *first_diff
 * gets the first path that differs. */
static enum tree_cmp tree_compare(const struct bk_node *have, size_t nh, const struct bk_node *want, size_t nw,
				  const char **first_diff)
{
	*first_diff = NULL;
	for (size_t i = 0; i < nh; i++) {
		const struct bk_node *w = node_find(want, nw, have[i].path);
		if (!w || !same_node(&have[i], w)) {
			*first_diff = have[i].path;
			return TREE_DIFFERENT;
		}
	}
	if (nh == nw)
		return TREE_EQUAL;
	for (size_t i = 0; i < nw; i++)
		if (!node_find(have, nh, want[i].path)) {
			*first_diff = want[i].path;
			break;
		}
	return TREE_SUBSET;
}

/* Copies the open file in to a new file name in dirfd (at abs), with its
 * mode, owner and xattrs, fsynced; hex gets its digest (FC_DIGEST_NONE:
 * none, and hex may be NULL). */
static int copy_file(int in, int dirfd, const char *name, const char *abs, enum fc_digest digest, char hex[65],
		     struct dmr_err *err)
{
	int out = sio_create(dirfd, name, 0, 0600, abs, err);
	if (out < 0)
		return out;
	int r = fc_copy_sparse_digest(in, out, abs, NULL, digest, hex, err);
	if (!r)
		r = fc_copy_attrs(in, out, abs, err);
	if (!r)
		r = sio_fsync(out, abs, err);
	close(out);
	return r;
}

struct copy_ctx {
	int dfd; /* the directory copied into */
	const char *dabs;
	int depth;
};

static int copy_tree(int sfd, const char *sname, const char *sabs, int dfd, const char *dname, const char *dabs,
		     int depth, struct dmr_err *err);

static int copy_child(void *ctx, int sdir, const char *child, const char *child_abs, struct dmr_err *err)
{
	const struct copy_ctx *c = ctx;
	char cd[BK_PATH];
	int r = join(cd, c->dabs, child, err);
	return r ? r : copy_tree(sdir, child, child_abs, c->dfd, child, cd, c->depth + 1, err);
}

/* Copies name (in sfd, at sabs) to dname in dfd (at dabs), with its tree,
 * mode, owner and xattrs; files and directories fsynced. */
static int copy_tree(int sfd, const char *sname, const char *sabs, int dfd, const char *dname, const char *dabs,
		     int depth, struct dmr_err *err)
{
	struct stat st;
	int r = 0;
	if (fstatat(sfd, sname, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return dmr_err_set(err, DMR_EIO, "%s: %s", sabs, strerror(errno));
	if (S_ISREG(st.st_mode)) {
		struct stat fst;
		int in = open_file_at(sfd, sname, sabs, &fst, err);
		if (in < 0)
			return in;
		r = copy_file(in, dfd, dname, dabs, FC_DIGEST_NONE, NULL, err);
		close(in);
		return r;
	}
	if (S_ISLNK(st.st_mode)) {
		char target[BK_PATH];
		ssize_t len = readlinkat(sfd, sname, target, sizeof(target) - 1);
		if (len < 0)
			return dmr_err_set(err, DMR_EIO, "reading the symlink %s: %s", sabs, strerror(errno));
		target[len] = '\0';
		if ((r = sio_fault_point("symlink", dabs, err)))
			return r;
		if (symlinkat(target, dfd, dname) < 0)
			return dmr_err_set(err, DMR_EIO, "creating the symlink %s: %s", dabs, strerror(errno));
		if (fchownat(dfd, dname, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0 && errno != EPERM)
			return dmr_err_set(err, DMR_EIO, "setting the owner of %s: %s", dabs, strerror(errno));
		return 0;
	}
	if (!S_ISDIR(st.st_mode))
		return dmr_err_set(err, DMR_EUNSUPP, "%s: cannot copy a special file (fifo, socket or device)", sabs);
	if ((r = sio_mkdirat(dfd, dname, 0700, dabs, err)))
		return r;
	struct copy_ctx c = { .dabs = dabs, .depth = depth, .dfd = open_dir_at(dfd, dname, dabs, err) };
	if (c.dfd < 0)
		return c.dfd;
	if (!(r = each_child(sfd, sname, sabs, depth, copy_child, &c, err))) {
		int s = open_dir_at(sfd, sname, sabs, err);
		r = s < 0 ? s : fc_copy_attrs(s, c.dfd, dabs, err);
		if (s >= 0)
			close(s);
	}
	if (!r)
		r = sio_fsync(c.dfd, dabs, err);
	close(c.dfd);
	return r;
}

static int remove_tree(int dirfd, const char *name, const char *abs, int depth, struct dmr_err *err);

static int remove_child(void *ctx, int dfd, const char *child, const char *child_abs, struct dmr_err *err)
{
	return remove_tree(dfd, child, child_abs, *(const int *)ctx + 1, err);
}

/* Removes name (in dirfd, at abs) and everything below it. */
static int remove_tree(int dirfd, const char *name, const char *abs, int depth, struct dmr_err *err)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return dmr_err_set(err, DMR_EIO, "%s: %s", abs, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return sio_unlinkat(dirfd, name, 0, abs, err);
	int r = each_child(dirfd, name, abs, depth, remove_child, &depth, err);
	return r ? r : sio_unlinkat(dirfd, name, AT_REMOVEDIR, abs, err);
}

/* A name for a temp file next to name: prefix + name, cut to NAME_MAX. */
static void temp_name(char *out, const char *prefix, const char *name)
{
	size_t p = strlen(prefix), n = strlen(name);
	if (p + n > NAME_MAX)
		n = NAME_MAX - p;
	memcpy(out, prefix, p);
	memcpy(out + p, name, n);
	out[p + n] = '\0';
}

/* Removes what a crash may have left at name in dirfd. */
static int remove_stale(int dirfd, const char *dirpath, const char *name, struct dmr_err *err)
{
	if (!exists_at(dirfd, name))
		return 0;
	char abs[BK_PATH];
	int r = join(abs, dirpath, name, err);
	return r ? r : remove_tree(dirfd, name, abs, 0, err);
}

/* Moves src to dst (which must not exist): a rename, fsyncing both
 * directories; across filesystems a copy under a temp name, renamed into
 * place once complete, then (unless keep_src) the source removed. */
static int move_tree(const struct loc *src, const struct loc *dst, int keep_src, struct dmr_err *err)
{
	struct stat a, b;
	int r;
	if (fstat(src->fd, &a) < 0 || fstat(dst->fd, &b) < 0)
		return dmr_err_set(err, DMR_EIO, "moving %s: %s", src->full, strerror(errno));
	if (a.st_dev == b.st_dev) {
		errno = 0;
		r = sio_renameat(src->fd, src->name, dst->fd, dst->name, dst->full, err);
		if (!r) {
			if ((r = sio_fsync_dir(src->path, err)))
				return r;
			return strcmp(src->path, dst->path) ? sio_fsync_dir(dst->path, err) : 0;
		}
		if (errno != EXDEV)
			return r;
	}
	char tmp[NAME_MAX + 1], tmp_abs[BK_PATH];
	temp_name(tmp, BK_PARTIAL_PREFIX, dst->name);
	if ((r = join(tmp_abs, dst->path, tmp, err)) || (r = remove_stale(dst->fd, dst->path, tmp, err)))
		return r;
	if ((r = copy_tree(src->fd, src->name, src->full, dst->fd, tmp, tmp_abs, 0, err)) ||
	    (r = sio_fsync_dir(dst->path, err)) || (r = sio_renameat(dst->fd, tmp, dst->fd, dst->name, dst->full, err))) {
		struct dmr_err ignored;
		remove_stale(dst->fd, dst->path, tmp, &ignored); /* best effort, as above */
		return r;
	}
	if ((r = sio_fsync_dir(dst->path, err)))
		return r;
	if (keep_src)
		return 0;
	if ((r = remove_tree(src->fd, src->name, src->full, 0, err)))
		return r;
	return sio_fsync_dir(src->path, err);
}

/* ---- the manifest ---- */

static struct json_object *jstr(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static void add_attrs(struct json_object *o, const struct bk_node *n)
{
	json_object_object_add(o, "mode", json_object_new_int64(n->mode));
	json_object_object_add(o, "uid", json_object_new_int64(n->uid));
	json_object_object_add(o, "gid", json_object_new_int64(n->gid));
	json_object_object_add(o, "mtime", json_object_new_int64(n->mtime));
}

/* digest: the name of the digest sha256 holds (the metadata's), or NULL
 * for the plain SHA-256 of other files. */
static struct json_object *changed_json(const struct bk_changed *c, int with_path, const char *digest)
{
	struct json_object *o = json_object_new_object();
	if (with_path)
		json_object_object_add(o, "path", jstr(c->n.path));
	json_object_object_add(o, "size", json_object_new_int64((int64_t)c->n.size));
	if (digest)
		json_object_object_add(o, "digest", jstr(digest));
	json_object_object_add(o, "sha256", jstr(c->n.sha256));
	add_attrs(o, &c->n);
	json_object_object_add(o, "after_sha256", c->after == AFTER_HASH ? jstr(c->after_sha256) : NULL);
	json_object_object_add(o, "after_removed", json_object_new_boolean(c->after == AFTER_GONE));
	return o;
}

static struct json_object *manifest_json(const struct bk_manifest *m)
{
	struct json_object *root = json_object_new_object();
	json_object_object_add(root, "schema", jstr(BK_SCHEMA));
	json_object_object_add(root, "state", jstr(m->state));
	json_object_object_add(root, "command", jstr(m->command));
	json_object_object_add(root, "created", jstr(m->created));
	if (m->undone_at)
		json_object_object_add(root, "undone_at", jstr(m->undone_at));
	json_object_object_add(root, "docker_root", jstr(m->docker_root));
	json_object_object_add(root, "reclaim_serial", json_object_new_int64((int64_t)m->reclaim_serial));
	struct json_object *meta = NULL;
	if (m->meta.present) {
		meta = changed_json(&m->meta.c, 0,
				    m->meta.digest == BK_DIG_SHA256 ? BK_DIGEST_SHA256 : BK_DIGEST_NONZERO);
		json_object_object_add(meta, "path", jstr(m->meta.path));
		json_object_object_add(meta, "root_relative", jstr(m->meta.root_rel));
		json_object_object_add(meta, "kind", jstr(m->meta.is_block ? "block" : "file"));
	}
	json_object_object_add(root, "metadata", meta);
	struct json_object *rw = json_object_new_array();
	for (size_t i = 0; i < m->nr_rw; i++)
		json_object_array_add(rw, changed_json(&m->rw[i], 1, NULL));
	json_object_object_add(root, "rewritten", rw);
	struct json_object *rm = json_object_new_array();
	for (size_t i = 0; i < m->nr_rm; i++) {
		struct json_object *o = json_object_new_object(), *entries = json_object_new_array();
		json_object_object_add(o, "path", jstr(m->rm[i].path));
		for (size_t k = 0; k < m->rm[i].nr; k++) {
			const struct bk_node *n = &m->rm[i].nodes[k];
			struct json_object *e = json_object_new_object();
			json_object_object_add(e, "path", jstr(n->path));
			json_object_object_add(e, "type", jstr(type_names[n->type]));
			if (n->type == BK_T_FILE) {
				json_object_object_add(e, "size", json_object_new_int64((int64_t)n->size));
				json_object_object_add(e, "sha256", jstr(n->sha256));
			}
			if (n->type == BK_T_LINK)
				json_object_object_add(e, "target", jstr(n->target));
			add_attrs(e, n);
			json_object_array_add(entries, e);
		}
		json_object_object_add(o, "entries", entries);
		json_object_array_add(rm, o);
	}
	json_object_object_add(root, "removed", rm);
	return root;
}

/* Writes manifest.json in dirfd (at dir): temp file, fsync, rename, fsync
 * of the directory. */
static int manifest_write(int dirfd, const char *dir, const struct bk_manifest *m, struct dmr_err *err)
{
	char tmp_abs[BK_PATH], abs[BK_PATH];
	int r;
	if ((r = join(tmp_abs, dir, BK_MANIFEST_TMP, err)) || (r = join(abs, dir, BK_MANIFEST, err)))
		return r;
	struct json_object *j = manifest_json(m);
	if (!j)
		return oom(err);
	const char *text = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
								     JSON_C_TO_STRING_NOSLASHESCAPE);
	size_t len = text ? strlen(text) : 0;
	if (!text) {
		r = oom(err);
	} else if (len + 1 > BK_MANIFEST_MAX) {
		r = dmr_err_set(err, DMR_EUNSUPP, "%s: the manifest would be larger than %zu bytes", abs,
				BK_MANIFEST_MAX);
	} else if (!(r = remove_stale(dirfd, dir, BK_MANIFEST_TMP, err))) {
		int fd = sio_create(dirfd, BK_MANIFEST_TMP, 0, 0600, tmp_abs, err);
		if (fd < 0) {
			r = fd;
		} else {
			if (!(r = sio_pwrite(fd, text, len, 0, tmp_abs, err)))
				if (!(r = sio_pwrite(fd, "\n", 1, (off_t)len, tmp_abs, err)))
					r = sio_fsync(fd, tmp_abs, err);
			close(fd);
			if (!r)
				r = sio_renameat(dirfd, BK_MANIFEST_TMP, dirfd, BK_MANIFEST, abs, err);
			if (!r)
				r = sio_fsync_dir(dir, err);
		}
	}
	json_object_put(j);
	return r;
}

/* Reading: every field checked, every count bounded. why gets the reason. */
struct reader {
	struct gj_doc doc;
	char why[400];
	size_t nodes;
};

static int rd_bad(struct reader *rd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int rd_bad(struct reader *rd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rd->why, sizeof(rd->why), fmt, ap);
	va_end(ap);
	return DMR_ECORRUPT;
}

/* A required string member (opt: may be absent or null). */
static int rd_str(struct reader *rd, struct json_object *o, const char *key, int opt, char **out)
{
	int g = gj_get_str(o, key, out, rd->why, sizeof(rd->why));
	if (g == DMR_ENOMEM)
		return DMR_ENOMEM;
	if (g == GJ_BAD)
		return DMR_ECORRUPT;
	if (g == GJ_ABSENT && !opt)
		return rd_bad(rd, "%s: missing", key);
	return 0;
}

static int rd_u64(struct reader *rd, struct json_object *o, const char *key, uint64_t max, uint64_t *out)
{
	int g = gj_get_u64(&rd->doc, o, key, out, rd->why, sizeof(rd->why));
	if (g == GJ_BAD)
		return DMR_ECORRUPT;
	if (g == GJ_ABSENT)
		return rd_bad(rd, "%s: missing", key);
	if (*out > max)
		return rd_bad(rd, "%s: out of range (%llu)", key, (unsigned long long)*out);
	return 0;
}

static int rd_hex(struct reader *rd, struct json_object *o, const char *key, int opt, char out[65], int *present)
{
	char *s = NULL;
	int r = rd_str(rd, o, key, opt, &s);
	if (r)
		return r;
	if (present)
		*present = s != NULL;
	if (!s)
		return 0;
	if (!is_hex64(s)) {
		free(s);
		return rd_bad(rd, "%s: not 64 lowercase hex digits", key);
	}
	memcpy(out, s, SHA256_HEX_LEN + 1);
	free(s);
	return 0;
}

static int rd_attrs(struct reader *rd, struct json_object *o, struct bk_node *n)
{
	uint64_t mode, uid, gid;
	int64_t mtime;
	int r;
	if ((r = rd_u64(rd, o, "mode", 07777, &mode)) || (r = rd_u64(rd, o, "uid", UINT32_MAX, &uid)) ||
	    (r = rd_u64(rd, o, "gid", UINT32_MAX, &gid)))
		return r;
	int g = gj_get_int(&rd->doc, o, "mtime", &mtime, rd->why, sizeof(rd->why));
	if (g == GJ_BAD)
		return DMR_ECORRUPT;
	n->mode = (uint32_t)mode;
	n->uid = (uint32_t)uid;
	n->gid = (uint32_t)gid;
	n->mtime = g == GJ_OK ? mtime : 0;
	return 0;
}

static int rd_changed(struct reader *rd, struct json_object *o, int with_path, struct bk_changed *c)
{
	int r, has_after = 0, removed = 0;
	if (!json_object_is_type(o, json_type_object))
		return rd_bad(rd, "not an object");
	if (with_path) {
		if ((r = rd_str(rd, o, "path", 0, &c->n.path)))
			return r;
		if (!valid_rel(c->n.path))
			return rd_bad(rd, "path: not a path below the Docker root");
	}
	c->n.type = BK_T_FILE;
	if ((r = rd_u64(rd, o, "size", INT64_MAX, &c->n.size)) || (r = rd_hex(rd, o, "sha256", 0, c->n.sha256, NULL)) ||
	    (r = rd_attrs(rd, o, &c->n)) || (r = rd_hex(rd, o, "after_sha256", 1, c->after_sha256, &has_after)))
		return r;
	if (gj_get_bool(o, "after_removed", &removed, rd->why, sizeof(rd->why)) == GJ_BAD)
		return DMR_ECORRUPT;
	if (has_after && removed)
		return rd_bad(rd, "both after_sha256 and after_removed");
	c->after = has_after ? AFTER_HASH : removed ? AFTER_GONE : AFTER_UNKNOWN;
	return 0;
}

static int rd_node(struct reader *rd, struct json_object *o, const char *top, struct bk_node *n)
{
	char *type = NULL;
	int r;
	if (!json_object_is_type(o, json_type_object))
		return rd_bad(rd, "not an object");
	if ((r = rd_str(rd, o, "path", 0, &n->path)) || (r = rd_str(rd, o, "type", 0, &type)))
		goto out;
	size_t tl = strlen(top);
	if (!valid_rel(n->path) || (strcmp(n->path, top) && (strncmp(n->path, top, tl) || n->path[tl] != '/'))) {
		r = rd_bad(rd, "path: %s is not below %s", n->path, top);
		goto out;
	}
	r = rd_bad(rd, "type: unknown (%s)", type);
	for (int t = BK_T_FILE; t <= BK_T_OTHER; t++)
		if (!strcmp(type, type_names[t])) {
			n->type = (enum bk_type)t;
			r = 0;
		}
	if (r)
		goto out;
	if (n->type == BK_T_FILE &&
	    ((r = rd_u64(rd, o, "size", INT64_MAX, &n->size)) || (r = rd_hex(rd, o, "sha256", 0, n->sha256, NULL))))
		goto out;
	if (n->type == BK_T_LINK && (r = rd_str(rd, o, "target", 0, &n->target)))
		goto out;
	if (n->type == BK_T_LINK && (!*n->target || strlen(n->target) >= BK_PATH)) {
		r = rd_bad(rd, "target: empty or too long");
		goto out;
	}
	r = rd_attrs(rd, o, n);
out:
	free(type);
	return r;
}

static int rd_removal(struct reader *rd, struct json_object *o, struct bk_removal *rm)
{
	struct json_object *entries = gj_member(o, "entries");
	int r;
	if (!json_object_is_type(o, json_type_object))
		return rd_bad(rd, "not an object");
	if ((r = rd_str(rd, o, "path", 0, &rm->path)))
		return r;
	if (!valid_rel(rm->path))
		return rd_bad(rd, "path: not a path below the Docker root");
	if (!entries || !json_object_is_type(entries, json_type_array) || json_object_array_length(entries) == 0)
		return rd_bad(rd, "%s: entries: missing or empty", rm->path);
	size_t n = json_object_array_length(entries);
	if (n > BK_MAX_NODES - rd->nodes)
		return rd_bad(rd, "more than %d entries", BK_MAX_NODES);
	rd->nodes += n;
	rm->nodes = calloc(n, sizeof(*rm->nodes));
	if (!rm->nodes)
		return DMR_ENOMEM;
	for (size_t k = 0; k < n; k++, rm->nr++) {
		if ((r = rd_node(rd, json_object_array_get_idx(entries, k), rm->path, &rm->nodes[k]))) {
			rm->nr++; /* freed with the rest */
			return r;
		}
	}
	qsort(rm->nodes, rm->nr, sizeof(rm->nodes[0]), cmp_node);
	if (strcmp(rm->nodes[0].path, rm->path))
		return rd_bad(rd, "%s: entries: the path itself is missing", rm->path);
	for (size_t k = 1; k < rm->nr; k++) {
		char dir[BK_PATH], name[NAME_MAX + 1];
		if (!strcmp(rm->nodes[k].path, rm->nodes[k - 1].path))
			return rd_bad(rd, "%s: entries: %s twice", rm->path, rm->nodes[k].path);
		split_rel(rm->nodes[k].path, dir, name);
		const struct bk_node *parent = node_find(rm->nodes, rm->nr, dir);
		if (!parent || parent->type != BK_T_DIR)
			return rd_bad(rd, "%s: entries: %s has no directory above it", rm->path, rm->nodes[k].path);
	}
	return 0;
}

static int rd_manifest(struct reader *rd, struct bk_manifest *m)
{
	struct json_object *top = rd->doc.root, *meta, *rw, *rmv;
	char *schema = NULL;
	int r;
	if (!top || !json_object_is_type(top, json_type_object))
		return rd_bad(rd, "not a JSON object");
	if ((r = rd_str(rd, top, "schema", 0, &schema)))
		return r;
	if (strcmp(schema, BK_SCHEMA)) {
		r = strncmp(schema, BK_SCHEMA_FAMILY, strlen(BK_SCHEMA_FAMILY)) ? DMR_ECORRUPT : DMR_EUNSUPP;
		rd_bad(rd, "schema %.100s, not " BK_SCHEMA "%s", schema,
		       r == DMR_EUNSUPP ? " (written by a newer dmrescue?)" : "");
		free(schema);
		return r;
	}
	free(schema);
	if ((r = rd_str(rd, top, "state", 0, &m->state)) || (r = rd_str(rd, top, "command", 1, &m->command)) ||
	    (r = rd_str(rd, top, "created", 1, &m->created)) || (r = rd_str(rd, top, "undone_at", 1, &m->undone_at)) ||
	    (r = rd_str(rd, top, "docker_root", 0, &m->docker_root)) ||
	    (r = rd_u64(rd, top, "reclaim_serial", UINT64_MAX, &m->reclaim_serial)))
		return r;
	if (strcmp(m->state, "prepared") && strcmp(m->state, "complete") && strcmp(m->state, "undone"))
		return rd_bad(rd, "state: unknown (%.100s)", m->state);
	if (m->docker_root[0] != '/')
		return rd_bad(rd, "docker_root: not an absolute path");
	if ((meta = gj_member(top, "metadata"))) {
		char *kind = NULL, *digest = NULL;
		m->meta.present = 1;
		if ((r = rd_changed(rd, meta, 0, &m->meta.c)) || (r = rd_str(rd, meta, "path", 0, &m->meta.path)) ||
		    (r = rd_str(rd, meta, "root_relative", 1, &m->meta.root_rel)) || (r = rd_str(rd, meta, "kind", 0, &kind)))
			return r;
		r = rd_str(rd, meta, "digest", 1, &digest);
		/* Absent: a manifest from before the field, of the plain SHA-256. */
		if (!r && (!digest || !strcmp(digest, BK_DIGEST_SHA256)))
			m->meta.digest = BK_DIG_SHA256;
		else if (!r && !strcmp(digest, BK_DIGEST_NONZERO))
			m->meta.digest = BK_DIG_NONZERO;
		else if (!r) {
			rd_bad(rd, "metadata: digest %.100s unknown (written by a newer dmrescue?)", digest);
			r = DMR_EUNSUPP;
		}
		free(digest);
		if (r) {
			free(kind);
			return r;
		}
		m->meta.is_block = !strcmp(kind, "block");
		int bad = !m->meta.is_block && strcmp(kind, "file");
		free(kind);
		if (bad)
			return rd_bad(rd, "metadata: kind: unknown");
		if (m->meta.path[0] != '/' || (m->meta.root_rel && !valid_rel(m->meta.root_rel)))
			return rd_bad(rd, "metadata: path or root_relative: not a valid path");
	}
	rw = gj_member(top, "rewritten");
	rmv = gj_member(top, "removed");
	if ((rw && !json_object_is_type(rw, json_type_array)) || (rmv && !json_object_is_type(rmv, json_type_array)))
		return rd_bad(rd, "rewritten or removed: not an array");
	size_t nrw = rw ? json_object_array_length(rw) : 0, nrm = rmv ? json_object_array_length(rmv) : 0;
	if (nrw > BK_MAX_NODES || nrm > BK_MAX_NODES)
		return rd_bad(rd, "more than %d entries", BK_MAX_NODES);
	rd->nodes = nrw;
	if ((nrw && !(m->rw = calloc(nrw, sizeof(*m->rw)))) || (nrm && !(m->rm = calloc(nrm, sizeof(*m->rm)))))
		return DMR_ENOMEM;
	for (size_t i = 0; i < nrw; i++) {
		m->nr_rw++;
		if ((r = rd_changed(rd, json_object_array_get_idx(rw, i), 1, &m->rw[i]))) {
			if (r == DMR_ECORRUPT) {
				char why[sizeof(rd->why)];
				memcpy(why, rd->why, sizeof(why));
				rd_bad(rd, "rewritten[%zu]: %s", i, why);
			}
			return r;
		}
	}
	for (size_t i = 0; i < nrm; i++) {
		m->nr_rm++;
		if ((r = rd_removal(rd, json_object_array_get_idx(rmv, i), &m->rm[i]))) {
			if (r == DMR_ECORRUPT) {
				char why[sizeof(rd->why)];
				memcpy(why, rd->why, sizeof(why));
				rd_bad(rd, "removed[%zu]: %s", i, why);
			}
			return r;
		}
	}
	return 0;
}

/* Loads dir/manifest.json: at most BK_MANIFEST_MAX bytes, every field
 * checked. A missing manifest: DMR_ENOENT; a damaged one: DMR_ECORRUPT. */
static int manifest_load(const char *dir, struct fsr_dir *bdir, struct bk_manifest *m, struct dmr_err *err)
{
	struct fsr_file f;
	struct fsr_fail fail;
	struct reader rd;
	memset(m, 0, sizeof(*m));
	memset(&rd, 0, sizeof(rd));
	int r = fsr_open_root(bdir, dir, err);
	if (r)
		return r;
	r = fsr_read(bdir, BK_MANIFEST, BK_MANIFEST_MAX, &f, &fail);
	if (r == DMR_ENOMEM)
		return oom(err);
	if (r == FSR_MISSING)
		return dmr_err_set(err, DMR_ENOENT, "%s/%s: missing (not a dmrescue backup?)", dir, BK_MANIFEST);
	if (r)
		return dmr_err_set(err, strstr(fail.msg, "too large") ? DMR_ECORRUPT : DMR_EIO, "%s/%s: %s", dir,
				   BK_MANIFEST, fail.msg);
	r = gj_parse(f.data, f.len, &rd.doc, rd.why, sizeof(rd.why));
	fsr_file_free(&f);
	if (!r)
		r = rd_manifest(&rd, m);
	gj_free(&rd.doc);
	if (r == DMR_ENOMEM)
		return oom(err);
	if (r) {
		manifest_free(m);
		return dmr_err_set(err, r, "%s/%s: %s manifest: %s", dir, BK_MANIFEST,
				   r == DMR_EUNSUPP ? "unsupported" : "damaged", rd.why);
	}
	return 0;
}

/* ---- the reclaim stamp ---- */

int bk_reclaim_serial(const char *docker_root, uint64_t *serial, struct dmr_err *err)
{
	struct fsr_dir root;
	struct fsr_file f;
	struct fsr_fail fail;
	*serial = 0;
	int r = fsr_open_root(&root, docker_root, err);
	if (r)
		return r;
	r = fsr_read(&root, BK_RECLAIM, 64, &f, &fail);
	fsr_closedir(&root);
	if (r == FSR_MISSING)
		return 0;
	if (r == DMR_ENOMEM)
		return oom(err);
	if (r)
		return dmr_err_set(err, DMR_EIO, "%s/%s: %s", docker_root, fail.path, fail.msg);
	size_t digits = strspn(f.data, "0123456789");
	int ok = digits > 0 && digits <= 20 && (f.data[digits] == '\0' || !strcmp(f.data + digits, "\n"));
	errno = 0;
	unsigned long long v = ok ? strtoull(f.data, NULL, 10) : 0;
	fsr_file_free(&f);
	if (!ok || errno == ERANGE)
		return dmr_err_set(err, DMR_ECORRUPT, "%s/%s: not a decimal counter", docker_root, BK_RECLAIM);
	*serial = v;
	return 0;
}

int bk_reclaim_bump(const char *docker_root, struct dmr_err *err)
{
	uint64_t serial;
	struct fsr_dir root;
	struct loc l;
	char tmp[NAME_MAX + 1], tmp_abs[BK_PATH], text[32];
	int r = bk_reclaim_serial(docker_root, &serial, err);
	if (r)
		return r;
	if (serial == UINT64_MAX)
		return dmr_err_set(err, DMR_EUNSUPP, "%s/%s: the counter is at its maximum", docker_root, BK_RECLAIM);
	if ((r = fsr_open_root(&root, docker_root, err)))
		return r;
	r = loc_in_root(&root, docker_root, BK_RECLAIM, &l, err);
	fsr_closedir(&root);
	if (r)
		return r;
	int len = snprintf(text, sizeof(text), "%llu\n", (unsigned long long)serial + 1);
	temp_name(tmp, ".tmp", l.name);
	if (!(r = join(tmp_abs, l.path, tmp, err)) && !(r = remove_stale(l.fd, l.path, tmp, err))) {
		int fd = sio_create(l.fd, tmp, 0, 0644, tmp_abs, err);
		if (fd < 0) {
			r = fd;
		} else {
			if (!(r = sio_pwrite(fd, text, (size_t)len, 0, tmp_abs, err)))
				r = sio_fsync(fd, tmp_abs, err);
			close(fd);
			if (!r && !(r = sio_renameat(l.fd, tmp, l.fd, l.name, l.full, err)))
				r = sio_fsync_dir(l.path, err);
		}
	}
	loc_close(&l);
	return r;
}

/* ---- taking a backup ---- */

const char *bk_path(const struct backup *b)
{
	return b->dir;
}

void bk_close(struct backup *b)
{
	if (!b)
		return;
	fsr_closedir(&b->root);
	if (b->dirfd >= 0)
		close(b->dirfd);
	manifest_free(&b->m);
	free(b->dir);
	free(b);
}

/* Creates the default backup directory below <root>/devicemapper. */
static int make_default_dir(struct backup *b, const char *docker_root, struct dmr_err *err)
{
	char home[BK_PATH], parent[BK_PATH], stamp[32], name[48], path[BK_PATH];
	struct fsr_dir dm;
	struct fsr_fail f;
	int r = fsr_opendir(&b->root, "devicemapper", &dm, &f);
	if (r == DMR_ENOMEM)
		return oom(err);
	if (r)
		return dmr_err_set(err, r == FSR_MISSING ? DMR_ENOENT : DMR_EIO, "%s/%s: %s", docker_root, f.path,
				   f.msg);
	if ((r = join(home, docker_root, "devicemapper", err)) || (r = join(parent, home, "dmrescue-backup", err)))
		goto out;
	if (!exists_at(dm.fd, "dmrescue-backup") &&
	    ((r = sio_mkdirat(dm.fd, "dmrescue-backup", 0700, parent, err)) || (r = sio_fsync_dir(home, err))))
		goto out;
	int pfd = open_dir_at(dm.fd, "dmrescue-backup", parent, err);
	if (pfd < 0) {
		r = pfd;
		goto out;
	}
	utc_stamp(stamp, sizeof(stamp), 1);
	snprintf(name, sizeof(name), "%s", stamp);
	for (int i = 1; exists_at(pfd, name); i++) {
		if (i > 1000) {
			close(pfd);
			r = dmr_err_set(err, DMR_EIO, "%s/%s: too many backups with this time stamp", parent, stamp);
			goto out;
		}
		snprintf(name, sizeof(name), "%s-%d", stamp, i);
	}
	if (!(r = join(path, parent, name, err)) && !(r = sio_mkdirat(pfd, name, 0700, path, err)) &&
	    !(r = sio_fsync_dir(parent, err)))
		r = (b->dir = strdup(path)) ? 0 : oom(err);
	close(pfd);
out:
	fsr_closedir(&dm);
	return r;
}

/* Uses dir: created when missing, else it must be an empty directory. */
static int make_given_dir(struct backup *b, const char *dir, struct dmr_err *err)
{
	struct stat st;
	int r;
	if (lstat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return dmr_err_set(err, DMR_EUSAGE, "%s: exists and is not a directory", dir);
		int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return dmr_err_set(err, DMR_EIO, "%s: %s", dir, strerror(errno));
		struct fsr_list l;
		r = list_dir(fd, dir, &l, err);
		close(fd);
		if (r)
			return r;
		size_t n = l.n;
		fsr_list_free(&l);
		if (n)
			return dmr_err_set(err, DMR_EUSAGE, "%s: exists and is not empty", dir);
	} else {
		char parent[BK_PATH];
		snprintf(parent, sizeof(parent), "%s", dir);
		char *slash = strrchr(parent, '/');
		if (slash == parent)
			parent[1] = '\0';
		else if (slash)
			*slash = '\0';
		else
			snprintf(parent, sizeof(parent), ".");
		if ((r = sio_mkdirat(AT_FDCWD, dir, 0700, dir, err)) || (r = sio_fsync_dir(parent, err)))
			return r;
	}
	return (b->dir = strdup(dir)) ? 0 : oom(err);
}

int bk_begin(struct backup **out, const char *docker_root, const char *dir, const char *command,
	     struct dmr_err *err)
{
	*out = NULL;
	struct backup *b = calloc(1, sizeof(*b));
	if (!b)
		return oom(err);
	b->dirfd = -1;
	b->root.fd = -1;
	char *real = realpath(docker_root, NULL);
	int r;
	if (!real) {
		r = dmr_err_set(err, errno == ENOENT ? DMR_ENOENT : DMR_EIO, "%s: %s", docker_root, strerror(errno));
		goto fail;
	}
	b->m.docker_root = real;
	if ((r = fsr_open_root(&b->root, real, err)) || (r = bk_reclaim_serial(real, &b->m.reclaim_serial, err)))
		goto fail;
	char created[32];
	utc_stamp(created, sizeof(created), 0);
	if (!(b->m.state = strdup("prepared")) || !(b->m.command = strdup(command ? command : "unknown")) ||
	    !(b->m.created = strdup(created))) {
		r = oom(err);
		goto fail;
	}
	r = dir ? make_given_dir(b, dir, err) : make_default_dir(b, real, err);
	if (r)
		goto fail;
	b->dirfd = open(b->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (b->dirfd < 0) {
		r = dmr_err_set(err, DMR_EIO, "%s: %s", b->dir, strerror(errno));
		goto fail;
	}
	*out = b;
	return 0;
fail:
	bk_close(b);
	return r;
}

static int need_unsealed(const struct backup *b, const char *what, struct dmr_err *err)
{
	if (b->sealed)
		return dmr_err_set(err, DMR_EUSAGE, "%s: the backup %s is sealed already", what, b->dir);
	return 0;
}

/* Copies the open src into dir/bk_rel (dirfd) (made with its directories) with
 * its attributes, fsynced; hex gets its digest (as copy_file). */
static int store_copy(int dirfd, const char *dir, int src, const char *bk_rel, enum fc_digest digest, char hex[65],
		      struct dmr_err *err)
{
	struct loc dst;
	int r = loc_make(dirfd, dir, bk_rel, &dst, err);
	if (r)
		return r;
	if (exists_at(dst.fd, dst.name)) {
		loc_close(&dst);
		return dmr_err_set(err, DMR_EUSAGE, "%s: saved twice", dst.full);
	}
	r = copy_file(src, dst.fd, dst.name, dst.full, digest, hex, err);
	if (!r)
		r = sio_fsync_dir(dst.path, err);
	loc_close(&dst);
	return r;
}

/* realpath(path) below realpath(root): its relative path, or NULL. */
static char *rel_below(const char *root, const char *path)
{
	char *real = realpath(path, NULL), *rel = NULL;
	size_t l = strlen(root);
	if (real && !strncmp(real, root, l) && real[l] == '/' && valid_rel(real + l + 1))
		rel = strdup(real + l + 1);
	free(real);
	return rel;
}

int bk_save_metadata(struct backup *b, const char *metadata_path, struct dmr_err *err)
{
	int r = need_unsealed(b, metadata_path, err);
	if (r)
		return r;
	if (b->m.meta.present)
		return dmr_err_set(err, DMR_EUSAGE, "%s: the metadata is saved already", metadata_path);
	int fd = open(metadata_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	if (fd < 0)
		return dmr_err_set(err, errno == ENOENT ? DMR_ENOENT : DMR_EIO, "cannot open %s: %s", metadata_path,
				   strerror(errno));
	if (fstat(fd, &st) < 0 || (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))) {
		close(fd);
		return dmr_err_set(err, DMR_EUSAGE, "%s: not a regular file or block device", metadata_path);
	}
	struct bk_meta *m = &b->m.meta;
	char *abs = realpath(metadata_path, NULL);
	m->digest = BK_DIG_NONZERO;
	r = store_copy(b->dirfd, b->dir, fd, BK_META_COPY, FC_DIGEST_NONZERO, m->c.n.sha256, err);
	if (!r && !abs)
		r = dmr_err_set(err, DMR_EIO, "%s: %s", metadata_path, strerror(errno));
	if (!r) {
		node_from_stat(&m->c.n, &st);
		m->c.n.type = BK_T_FILE;
		m->is_block = S_ISBLK(st.st_mode);
		if (m->is_block && ioctl(fd, BLKGETSIZE64, &m->c.n.size) < 0)
			r = dmr_err_set(err, DMR_EIO, "%s: cannot get the device size: %s", metadata_path, strerror(errno));
		m->path = abs;
		abs = NULL;
		m->root_rel = rel_below(b->m.docker_root, m->path);
		m->present = !r;
	}
	free(abs);
	close(fd);
	return r;
}

static struct bk_changed *find_rewrite(const struct bk_manifest *m, const char *rel)
{
	for (size_t i = 0; i < m->nr_rw; i++)
		if (!strcmp(m->rw[i].n.path, rel))
			return &m->rw[i];
	return NULL;
}

static struct bk_removal *find_removal(const struct bk_manifest *m, const char *rel)
{
	for (size_t i = 0; i < m->nr_rm; i++)
		if (!strcmp(m->rm[i].path, rel))
			return &m->rm[i];
	return NULL;
}

/* The path is not saved or planned already. */
static int check_new(const struct backup *b, const char *rel, struct dmr_err *err)
{
	int r = need_unsealed(b, rel, err);
	if (r)
		return r;
	if (!valid_rel(rel))
		return dmr_err_set(err, DMR_EUSAGE, "%s: not a path below the Docker root", rel);
	if (find_rewrite(&b->m, rel) || find_removal(&b->m, rel))
		return dmr_err_set(err, DMR_EUSAGE, "%s: in the backup already", rel);
	if (b->nr_nodes >= BK_MAX_NODES)
		return dmr_err_set(err, DMR_EUNSUPP, "%s: more than %d entries in one backup", rel, BK_MAX_NODES);
	return 0;
}

int bk_save_file(struct backup *b, const char *relpath, struct dmr_err *err)
{
	struct loc src;
	struct stat st;
	char bk_rel[BK_PATH];
	int r = check_new(b, relpath, err);
	if (r || (r = join(bk_rel, "files", relpath, err)) ||
	    (r = loc_in_root(&b->root, b->m.docker_root, relpath, &src, err)))
		return r;
	struct bk_changed *v = realloc(b->m.rw, (b->m.nr_rw + 1) * sizeof(*v));
	int fd = v ? open_file_at(src.fd, src.name, src.full, &st, err) : oom(err);
	if (v)
		b->m.rw = v;
	if (fd < 0) {
		loc_close(&src);
		return fd;
	}
	struct bk_changed *c = &b->m.rw[b->m.nr_rw];
	memset(c, 0, sizeof(*c));
	r = store_copy(b->dirfd, b->dir, fd, bk_rel, FC_DIGEST_SHA256, c->n.sha256, err);
	close(fd);
	loc_close(&src);
	if (r)
		return r;
	node_from_stat(&c->n, &st);
	if (!(c->n.path = strdup(relpath)))
		return oom(err);
	b->m.nr_rw++;
	b->nr_nodes++;
	return 0;
}

int bk_plan_remove(struct backup *b, const char *relpath, struct dmr_err *err)
{
	struct loc src;
	struct nodes ns;
	int r = check_new(b, relpath, err);
	if (r || (r = loc_in_root(&b->root, b->m.docker_root, relpath, &src, err)))
		return r;
	memset(&ns, 0, sizeof(ns));
	r = scan_tree(src.fd, src.name, src.full, relpath, 0, BK_MAX_NODES - b->nr_nodes, &ns, err);
	loc_close(&src);
	struct bk_removal *v = r ? NULL : realloc(b->m.rm, (b->m.nr_rm + 1) * sizeof(*v));
	if (!r && !v)
		r = oom(err);
	if (r) {
		nodes_free(&ns);
		return r;
	}
	b->m.rm = v;
	qsort(ns.v, ns.n, sizeof(ns.v[0]), cmp_node);
	struct bk_removal *rm = &b->m.rm[b->m.nr_rm];
	rm->nodes = ns.v;
	rm->nr = ns.n;
	if (!(rm->path = strdup(relpath))) {
		nodes_free(&ns);
		return oom(err);
	}
	b->m.nr_rm++;
	b->nr_nodes += ns.n;
	return 0;
}

int bk_seal(struct backup *b, struct dmr_err *err)
{
	int r = need_unsealed(b, "sealing", err);
	if (r || (r = manifest_write(b->dirfd, b->dir, &b->m, err)))
		return r;
	/* The directories made for the copies were fsynced as they were
	 * made; the backup's own entry in its parent was fsynced by bk_begin. */
	b->sealed = 1;
	return 0;
}

static int need_sealed(const struct backup *b, const char *what, struct dmr_err *err)
{
	if (!b->sealed)
		return dmr_err_set(err, DMR_EUSAGE, "%s: the backup %s is not sealed yet", what, b->dir);
	return 0;
}

int bk_remove_now(struct backup *b, const char *relpath, struct dmr_err *err)
{
	struct loc src, dst;
	char bk_rel[BK_PATH];
	int r = need_sealed(b, relpath, err);
	if (r)
		return r;
	if (!find_removal(&b->m, relpath))
		return dmr_err_set(err, DMR_EUSAGE, "%s: not planned for removal in %s", relpath, b->dir);
	if ((r = join(bk_rel, "files", relpath, err)) ||
	    (r = loc_in_root(&b->root, b->m.docker_root, relpath, &src, err)))
		return r;
	if ((r = loc_make(b->dirfd, b->dir, bk_rel, &dst, err))) {
		loc_close(&src);
		return r;
	}
	if (exists_at(dst.fd, dst.name))
		r = dmr_err_set(err, DMR_EUSAGE, "%s: moved into the backup already", dst.full);
	else
		r = move_tree(&src, &dst, 0, err);
	loc_close(&src);
	loc_close(&dst);
	return r;
}

int bk_set_after(struct backup *b, const char *relpath, const char *sha256_hex, struct dmr_err *err)
{
	struct bk_changed *c = relpath ? find_rewrite(&b->m, relpath) : b->m.meta.present ? &b->m.meta.c : NULL;
	if (!c)
		return dmr_err_set(err, DMR_EUSAGE, "%s: not saved in the backup %s", relpath ? relpath : "the metadata",
				   b->dir);
	if (sha256_hex && !is_hex64(sha256_hex))
		return dmr_err_set(err, DMR_EUSAGE, "%s: not a SHA-256 in hex", sha256_hex);
	c->after = sha256_hex ? AFTER_HASH : AFTER_GONE;
	if (sha256_hex)
		memcpy(c->after_sha256, sha256_hex, SHA256_HEX_LEN + 1);
	/* Once changes may have started, undo must know each one. */
	return b->sealed ? manifest_write(b->dirfd, b->dir, &b->m, err) : 0;
}

int bk_finish(struct backup *b, struct dmr_err *err)
{
	int r = need_sealed(b, "finishing", err);
	if (r)
		return r;
	char *s = strdup("complete");
	if (!s)
		return oom(err);
	free(b->m.state);
	b->m.state = s;
	return manifest_write(b->dirfd, b->dir, &b->m, err);
}

/* ---- undo ---- */

enum act {
	ACT_KEEP,    /* already as before (or never changed): nothing to do */
	ACT_RESTORE, /* put the saved version back */
	ACT_REPLACE, /* forced: move the current version to displaced/, then restore */
	ACT_FINISH,  /* an interrupted cross-filesystem removal: clear what is left, then restore */
};

struct undo {
	const char *dir;
	const char *root_path;
	struct fsr_dir bdir, root;
	struct bk_manifest m;
	const struct bk_undo_opts *o;
	void (*report)(void *ctx, const char *line);
	void *ctx;
	struct bk_undo_result res;
	unsigned refusals;
	char refusal[400];
	char meta_path[BK_PATH];
	enum act meta_act;
	enum act *rw_act, *rm_act;
	char *rm_copy; /* removed[i] has its copy in files/ */
};

static void say(struct undo *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct undo *u, const char *fmt, ...)
{
	char line[BK_PATH + 400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (u->report)
		u->report(u->ctx, line);
}

static void refuse(struct undo *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void refuse(struct undo *u, const char *fmt, ...)
{
	char line[sizeof(u->refusal)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (!u->refusals++)
		memcpy(u->refusal, line, sizeof(line));
	say(u, "%s: %s", u->o->force ? "forced" : "refused", line);
}

/* Opens a stored copy (files/..., pool/metadata) below the backup. */
static int open_stored(struct undo *u, const char *bk_rel, struct stat *st, struct dmr_err *err)
{
	struct loc l;
	int r = loc_in_root(&u->bdir, u->dir, bk_rel, &l, err);
	if (r == DMR_ENOENT || (!r && !exists_at(l.fd, l.name))) {
		if (!r)
			loc_close(&l);
		return dmr_err_set(err, DMR_ECORRUPT, "%s/%s: missing from the backup", u->dir, bk_rel);
	}
	if (r)
		return r;
	int fd = open_file_at(l.fd, l.name, l.full, st, err);
	loc_close(&l);
	return fd;
}

/* The stored copy of c at bk_rel has the recorded size and digest (of the
 * metadata when meta, else the SHA-256). */
static int verify_copy(struct undo *u, const char *bk_rel, const struct bk_changed *c, int meta, struct dmr_err *err)
{
	struct stat st;
	char hex[SHA256_HEX_LEN + 1], what[BK_PATH];
	int fd = open_stored(u, bk_rel, &st, err), r;
	if (fd < 0)
		return fd;
	if ((r = join(what, u->dir, bk_rel, err))) {
		close(fd);
		return r;
	}
	r = digest_fd(fd, meta ? u->m.meta.digest : BK_DIG_SHA256, UINT64_MAX, hex, what, err);
	close(fd);
	if (r)
		return r;
	if ((uint64_t)st.st_size != c->n.size || strcmp(hex, c->n.sha256))
		return dmr_err_set(err, DMR_ECORRUPT,
				   "%s: the stored copy differs from the manifest (%s %.12s..., expected %.12s...): "
				   "the backup is damaged", what,
				   !meta || u->m.meta.digest == BK_DIG_SHA256 ? "SHA-256" : BK_DIGEST_NONZERO, hex,
				   c->n.sha256);
	return 0;
}

/* Every stored copy against the manifest. */
static int verify_backup(struct undo *u, struct dmr_err *err)
{
	char bk_rel[BK_PATH];
	int r;
	if (u->m.meta.present && (r = verify_copy(u, BK_META_COPY, &u->m.meta.c, 1, err)))
		return r;
	for (size_t i = 0; i < u->m.nr_rw; i++)
		if ((r = join(bk_rel, "files", u->m.rw[i].n.path, err)) || (r = verify_copy(u, bk_rel, &u->m.rw[i], 0, err)))
			return r;
	for (size_t i = 0; i < u->m.nr_rm; i++) {
		const struct bk_removal *rm = &u->m.rm[i];
		struct loc l;
		struct nodes ns;
		const char *diff;
		if ((r = join(bk_rel, "files", rm->path, err)))
			return r;
		r = loc_in_root(&u->bdir, u->dir, bk_rel, &l, err);
		if (r == DMR_ENOENT)
			continue; /* never moved */
		if (r)
			return r;
		u->rm_copy[i] = exists_at(l.fd, l.name);
		r = u->rm_copy[i] ? scan_sorted(l.fd, l.name, l.full, rm->path, &ns, err) : 0;
		loc_close(&l);
		if (r || !u->rm_copy[i])
			continue;
		enum tree_cmp t = tree_compare(ns.v, ns.n, rm->nodes, rm->nr, &diff);
		if (t != TREE_EQUAL)
			r = dmr_err_set(err, DMR_ECORRUPT, "%s/files/%s: %s than the manifest records: the backup is damaged",
					u->dir, diff ? diff : rm->path,
					t == TREE_SUBSET ? "missing, or fewer entries" : "differs, or more entries");
		nodes_free(&ns);
		if (r)
			return r;
	}
	return 0;
}

/* What to do with a changed file, from its current content (gone, or hex). */
static enum act decide(struct undo *u, const char *shown, const struct bk_changed *c, int gone, const char *hex)
{
	if (!gone && !strcmp(hex, c->n.sha256)) {
		say(u, "keep %s: already as saved", shown);
		return ACT_KEEP;
	}
	if ((gone && c->after == AFTER_GONE) || (!gone && c->after == AFTER_HASH && !strcmp(hex, c->after_sha256))) {
		say(u, "restore %s", shown);
		return ACT_RESTORE;
	}
	refuse(u, "%s %s", shown,
	       gone ? "was removed since the backup"
	       : c->after == AFTER_UNKNOWN ? "changed, and the backup does not record to what (the command was interrupted?)"
					   : "changed since the backup (did Docker run?)");
	if (gone)
		return ACT_RESTORE;
	say(u, "restore %s over its current version (kept in %s/displaced/)", shown, u->dir);
	return ACT_REPLACE;
}

static int assess_metadata(struct undo *u, struct dmr_err *err)
{
	const struct bk_meta *mt = &u->m.meta;
	char hex[SHA256_HEX_LEN + 1];
	int r = mt->root_rel ? join(u->meta_path, u->root_path, mt->root_rel, err)
			     : join(u->meta_path, mt->path, "", err);
	if (r)
		return r;
	int fd = open(u->meta_path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 && errno != ENOENT)
		return dmr_err_set(err, DMR_EIO, "cannot open %s: %s", u->meta_path, strerror(errno));
	if (fd >= 0) {
		struct stat st;
		if (fstat(fd, &st) < 0 || (mt->is_block ? !S_ISBLK(st.st_mode) : !S_ISREG(st.st_mode))) {
			close(fd);
			return dmr_err_set(err, DMR_EUSAGE, "%s: not a %s as when it was saved", u->meta_path,
					   mt->is_block ? "block device" : "regular file");
		}
		r = digest_fd(fd, mt->digest, mt->is_block ? mt->c.n.size : UINT64_MAX, hex, u->meta_path, err);
		close(fd);
		if (r)
			return r;
	}
	u->meta_act = decide(u, u->meta_path, &mt->c, fd < 0, hex);
	return 0;
}

static int assess_rewritten(struct undo *u, size_t i, struct dmr_err *err)
{
	const struct bk_changed *c = &u->m.rw[i];
	char hex[SHA256_HEX_LEN + 1];
	struct loc l;
	struct stat st;
	int gone = 1;
	int r = loc_in_root(&u->root, u->root_path, c->n.path, &l, err);
	if (r && r != DMR_ENOENT)
		return r;
	if (!r) {
		int fd = open_file_at(l.fd, l.name, l.full, &st, err);
		if (fd >= 0) {
			gone = 0;
			r = hash_fd(fd, UINT64_MAX, hex, l.full, err);
			close(fd);
		} else if (fd != DMR_ENOENT) {
			r = fd;
		}
		loc_close(&l);
		if (r)
			return r;
	}
	if (gone && r == DMR_ENOENT)
		return dmr_err_set(err, DMR_ENOENT, "cannot restore %s/%s: the directory holding it is gone",
				   u->root_path, c->n.path);
	u->rw_act[i] = decide(u, c->n.path, c, gone, hex);
	return 0;
}

static int assess_removed(struct undo *u, size_t i, struct dmr_err *err)
{
	const struct bk_removal *rm = &u->m.rm[i];
	struct loc l;
	struct nodes ns;
	const char *diff;
	int r = loc_in_root(&u->root, u->root_path, rm->path, &l, err);
	if (r == DMR_ENOENT)
		return dmr_err_set(err, DMR_ENOENT, "cannot put back %s/%s: the directory holding it is gone",
				   u->root_path, rm->path);
	if (r)
		return r;
	if (!exists_at(l.fd, l.name)) {
		loc_close(&l);
		if (!u->rm_copy[i])
			return dmr_err_set(err, DMR_ECORRUPT, "%s is neither in %s nor in the backup %s", rm->path,
					   u->root_path, u->dir);
		say(u, "put back %s (%zu entr%s)", rm->path, rm->nr, rm->nr == 1 ? "y" : "ies");
		u->rm_act[i] = ACT_RESTORE;
		return 0;
	}
	r = scan_sorted(l.fd, l.name, l.full, rm->path, &ns, err);
	loc_close(&l);
	if (r)
		return r;
	enum tree_cmp t = tree_compare(ns.v, ns.n, rm->nodes, rm->nr, &diff);
	nodes_free(&ns);
	u->rm_act[i] = ACT_KEEP;
	if (t == TREE_EQUAL) {
		say(u, "keep %s: already in place", rm->path);
	} else if (!u->rm_copy[i]) {
		say(u, "keep %s: never removed", rm->path);
	} else if (t == TREE_SUBSET) {
		say(u, "put back %s (%zu entries), clearing what an interrupted move left there", rm->path, rm->nr);
		u->rm_act[i] = ACT_FINISH;
	} else {
		refuse(u, "%s exists again (something recreated it since the backup)", rm->path);
		say(u, "put back %s (%zu entries) in place of the current one (kept in %s/displaced/)", rm->path, rm->nr,
		    u->dir);
		u->rm_act[i] = ACT_REPLACE;
	}
	return 0;
}

static int assess(struct undo *u, struct dmr_err *err)
{
	uint64_t serial;
	int r = bk_reclaim_serial(u->root_path, &serial, err);
	if (r)
		return r;
	if (serial != u->m.reclaim_serial)
		refuse(u, "reclaim ran since the backup (serial %llu, now %llu): the data blocks it gave back cannot "
			  "be restored", (unsigned long long)u->m.reclaim_serial, (unsigned long long)serial);
	if (u->m.meta.present && (r = assess_metadata(u, err)))
		return r;
	for (size_t i = 0; i < u->m.nr_rw; i++)
		if ((r = assess_rewritten(u, i, err)))
			return r;
	for (size_t i = 0; i < u->m.nr_rm; i++)
		if ((r = assess_removed(u, i, err)))
			return r;
	return 0;
}

/* The recorded owner, mode and mtime on fd. */
static int apply_recorded(int fd, const struct bk_node *n, const char *what, struct dmr_err *err)
{
	int r = sio_fault_point("attrs", what, err);
	if (r)
		return r;
	struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_sec = (time_t)n->mtime } };
	if (fchown(fd, n->uid, n->gid) < 0 && errno != EPERM)
		return dmr_err_set(err, DMR_EIO, "%s: setting the owner: %s", what, strerror(errno));
	if (fchmod(fd, n->mode) < 0 || futimens(fd, ts) < 0)
		return dmr_err_set(err, DMR_EIO, "%s: setting the mode and time: %s", what, strerror(errno));
	return 0;
}

/* Keeps the current version of a file in displaced/<rel>. */
static int displace_file(struct undo *u, int cur, const char *rel, struct dmr_err *err)
{
	char bk_rel[BK_PATH];
	struct loc l;
	int r = join(bk_rel, "displaced", rel, err);
	if (r || (r = loc_make(u->bdir.fd, u->dir, bk_rel, &l, err)))
		return r;
	r = remove_stale(l.fd, l.path, l.name, err);
	loc_close(&l);
	return r ? r : store_copy(u->bdir.fd, u->dir, cur, bk_rel, FC_DIGEST_NONE, NULL, err);
}

/* Puts the stored copy back at dst: a temp file next to it, fsynced,
 * renamed over it, the directory fsynced. attrs_from: the file whose
 * mode, owner and xattrs the result takes (the current one for the
 * metadata); -1: the stored copy's, and the recorded ones. */
static int restore_file(struct undo *u, const char *bk_rel, const struct loc *dst, int attrs_from,
			const struct bk_node *n, struct dmr_err *err)
{
	char tmp[NAME_MAX + 1], tmp_abs[BK_PATH];
	struct stat st;
	int r, fd = -1, in = open_stored(u, bk_rel, &st, err);
	if (in < 0)
		return in;
	temp_name(tmp, BK_TMP_PREFIX, dst->name);
	if ((r = join(tmp_abs, dst->path, tmp, err)) || (r = remove_stale(dst->fd, dst->path, tmp, err)) ||
	    (r = fd = sio_create(dst->fd, tmp, 0, 0600, tmp_abs, err)) < 0) {
		close(in);
		return r;
	}
	if (!(r = fc_copy_sparse(in, fd, tmp_abs, NULL, NULL, err)) &&
	    !(r = fc_copy_attrs(attrs_from >= 0 ? attrs_from : in, fd, tmp_abs, err)) &&
	    !(attrs_from < 0 && (r = apply_recorded(fd, n, tmp_abs, err))) && !(r = sio_fsync(fd, tmp_abs, err)))
		r = sio_renameat(dst->fd, tmp, dst->fd, dst->name, dst->full, err);
	close(fd);
	close(in);
	if (!r)
		return sio_fsync_dir(dst->path, err);
	/* Leave no temp file in the user's directory (best effort: the error
	 * says already what went wrong). */
	struct dmr_err ignored;
	sio_unlinkat(dst->fd, tmp, 0, tmp_abs, &ignored);
	return r;
}

/* A block device cannot be renamed over: its content is written back in place. */
static int restore_device(struct undo *u, int dev, struct dmr_err *err)
{
	enum { CHUNK = 1 << 20 };
	struct stat st;
	int in = open_stored(u, BK_META_COPY, &st, err), r = 0;
	if (in < 0)
		return in;
	unsigned char *buf = malloc(CHUNK);
	if (!buf)
		r = oom(err);
	for (uint64_t off = 0; !r && off < (uint64_t)st.st_size;) {
		ssize_t n = pread(in, buf, CHUNK, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			r = dmr_err_set(err, DMR_EIO, "reading %s/%s: %s", u->dir, BK_META_COPY,
					n ? strerror(errno) : "shorter than recorded");
		else if (!(r = sio_pwrite(dev, buf, (size_t)n, (off_t)off, u->meta_path, err)))
			off += (uint64_t)n;
	}
	free(buf);
	close(in);
	return r ? r : sio_fsync(dev, u->meta_path, err);
}

static int undo_metadata(struct undo *u, struct dmr_err *err)
{
	struct loc l = { .fd = -1 };
	char dir[BK_PATH];
	int r = 0;
	int cur = open(u->meta_path, (u->m.meta.is_block ? O_WRONLY : O_RDONLY) | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (cur < 0 && (errno != ENOENT || u->m.meta.is_block))
		return dmr_err_set(err, DMR_EIO, "cannot open %s: %s", u->meta_path, strerror(errno));
	if (u->meta_act == ACT_REPLACE) {
		int rd = open(u->meta_path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		r = rd < 0 ? dmr_err_set(err, DMR_EIO, "cannot open %s: %s", u->meta_path, strerror(errno))
			   : displace_file(u, rd, "metadata", err);
		if (rd >= 0)
			close(rd);
		u->res.displaced += !r;
	}
	if (!r && u->m.meta.is_block) {
		r = u->meta_act == ACT_KEEP ? 0 : restore_device(u, cur, err);
		goto out;
	}
	split_rel(u->meta_path, dir, l.name);
	snprintf(l.path, sizeof(l.path), "%s", *dir ? dir : "/");
	snprintf(l.full, sizeof(l.full), "%s", u->meta_path);
	l.fd = open(l.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (!r && l.fd < 0)
		r = dmr_err_set(err, DMR_EIO, "opening directory %s: %s", l.path, strerror(errno));
	if (!r && u->meta_act == ACT_KEEP) {
		char tmp[NAME_MAX + 1];
		temp_name(tmp, BK_TMP_PREFIX, l.name);
		r = remove_stale(l.fd, l.path, tmp, err);
	} else if (!r) {
		r = restore_file(u, BK_META_COPY, &l, cur, &u->m.meta.c.n, err);
	}
out:
	loc_close(&l);
	if (cur >= 0)
		close(cur);
	return r;
}

static int undo_rewritten(struct undo *u, size_t i, struct dmr_err *err)
{
	const struct bk_changed *c = &u->m.rw[i];
	char bk_rel[BK_PATH], tmp[NAME_MAX + 1];
	struct loc l;
	int r = join(bk_rel, "files", c->n.path, err);
	if (r || (r = loc_in_root(&u->root, u->root_path, c->n.path, &l, err)))
		return r;
	if (u->rw_act[i] == ACT_REPLACE) {
		struct stat st;
		int cur = open_file_at(l.fd, l.name, l.full, &st, err);
		r = cur < 0 ? cur : displace_file(u, cur, c->n.path, err);
		if (cur >= 0)
			close(cur);
		u->res.displaced += !r;
	}
	if (!r && u->rw_act[i] == ACT_KEEP) {
		temp_name(tmp, BK_TMP_PREFIX, l.name);
		r = remove_stale(l.fd, l.path, tmp, err);
	} else if (!r) {
		r = restore_file(u, bk_rel, &l, -1, &c->n, err);
	}
	loc_close(&l);
	return r;
}

static int undo_removed(struct undo *u, size_t i, struct dmr_err *err)
{
	const struct bk_removal *rm = &u->m.rm[i];
	char bk_rel[BK_PATH];
	struct loc src, dst;
	int r;
	if (u->rm_act[i] == ACT_KEEP)
		return 0;
	if ((r = join(bk_rel, "files", rm->path, err)) || (r = loc_in_root(&u->root, u->root_path, rm->path, &dst, err)))
		return r;
	if (u->rm_act[i] == ACT_FINISH && !(r = remove_tree(dst.fd, dst.name, dst.full, 0, err)))
		r = sio_fsync_dir(dst.path, err);
	if (u->rm_act[i] == ACT_REPLACE) {
		char disp_rel[BK_PATH];
		struct loc disp;
		if (!(r = join(disp_rel, "displaced", rm->path, err)) &&
		    !(r = loc_make(u->bdir.fd, u->dir, disp_rel, &disp, err))) {
			if (!(r = remove_stale(disp.fd, disp.path, disp.name, err)))
				r = move_tree(&dst, &disp, 0, err);
			loc_close(&disp);
		}
		u->res.displaced += !r;
	}
	if (!r && !(r = loc_in_root(&u->bdir, u->dir, bk_rel, &src, err))) {
		/* Across filesystems the backup keeps its copy: it is verified, and
		 * a second undo then finds everything in place. */
		r = move_tree(&src, &dst, 1, err);
		loc_close(&src);
	}
	loc_close(&dst);
	return r;
}

static int undo_apply(struct undo *u, struct dmr_err *err)
{
	int r = 0;
	/* From here on, a failure means the Docker root may be half restored. */
	u->res.changed = 1;
	if (u->m.meta.present && (r = undo_metadata(u, err)))
		return r;
	u->res.restored += u->m.meta.present && u->meta_act != ACT_KEEP;
	for (size_t i = 0; i < u->m.nr_rw; i++) {
		if ((r = undo_rewritten(u, i, err)))
			return r;
		u->res.restored += u->rw_act[i] != ACT_KEEP;
	}
	for (size_t i = 0; i < u->m.nr_rm; i++) {
		if ((r = undo_removed(u, i, err)))
			return r;
		u->res.restored += u->rm_act[i] != ACT_KEEP;
	}
	char stamp[32], *state = strdup("undone"), *at;
	utc_stamp(stamp, sizeof(stamp), 0);
	at = strdup(stamp);
	if (!state || !at) {
		free(state);
		free(at);
		return oom(err);
	}
	free(u->m.state);
	free(u->m.undone_at);
	u->m.state = state;
	u->m.undone_at = at;
	return manifest_write(u->bdir.fd, u->dir, &u->m, err);
}

int bk_undo(const char *backup_dir, const char *docker_root, const struct bk_undo_opts *o,
	    void (*report)(void *ctx, const char *line), void *ctx, struct dmr_err *err)
{
	struct undo u;
	memset(&u, 0, sizeof(u));
	u.dir = backup_dir;
	u.o = o;
	u.report = report;
	u.ctx = ctx;
	u.bdir.fd = u.root.fd = -1;
	int r = manifest_load(backup_dir, &u.bdir, &u.m, err);
	if (r)
		goto out;
	if (!strcmp(u.m.state, "undone")) {
		r = dmr_err_set(err, DMR_EUSAGE, "%s: undone already (%s)", backup_dir,
				u.m.undone_at ? u.m.undone_at : "time unknown");
		goto out;
	}
	u.root_path = docker_root ? docker_root : u.m.docker_root;
	u.rw_act = calloc(u.m.nr_rw + 1, sizeof(*u.rw_act));
	u.rm_act = calloc(u.m.nr_rm + 1, sizeof(*u.rm_act));
	u.rm_copy = calloc(u.m.nr_rm + 1, 1);
	if (!u.rw_act || !u.rm_act || !u.rm_copy) {
		r = oom(err);
		goto out;
	}
	if ((r = fsr_open_root(&u.root, u.root_path, err)) || (r = verify_backup(&u, err)) || (r = assess(&u, err)))
		goto out;
	if (u.refusals && !o->force) {
		if (u.refusals > 1)
			r = dmr_err_set(err, DMR_EUSAGE, "%s (and %u more); --force restores anyway", u.refusal,
					u.refusals - 1);
		else
			r = dmr_err_set(err, DMR_EUSAGE, "%s; --force restores anyway", u.refusal);
		goto out;
	}
	if (!o->dry_run)
		r = undo_apply(&u, err);
out:
	if (o->result)
		*o->result = u.res;
	free(u.rw_act);
	free(u.rm_act);
	free(u.rm_copy);
	fsr_closedir(&u.root);
	fsr_closedir(&u.bdir);
	manifest_free(&u.m);
	return r;
}

int bk_manifest_root(const char *backup_dir, char **root, struct dmr_err *err)
{
	struct fsr_dir bdir = { .fd = -1 };
	struct bk_manifest m;
	*root = NULL;
	int r = manifest_load(backup_dir, &bdir, &m, err);
	fsr_closedir(&bdir);
	if (r)
		return r;
	*root = m.docker_root;
	m.docker_root = NULL;
	manifest_free(&m);
	return 0;
}
