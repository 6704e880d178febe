/* The live-state guards: processes, device-mapper, loop devices, mounts,
 * and the dmrescue lock. See live.h. */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "dmlist.h"
#include "live.h"
#include "util/grow.h"

#define LIVE_PATH 4096

struct findings {
	struct live_finding *v;
	size_t n, cap;
};

static int add(struct findings *f, enum live_kind kind, struct dmr_err *err,
	       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int add(struct findings *f, enum live_kind kind, struct dmr_err *err,
	       const char *fmt, ...)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? 2 * f->cap : 8;
		struct live_finding *v = realloc(f->v, cap * sizeof(*v));
		if (!v)
			return dmr_err_set(err, DMR_ENOMEM, "out of memory");
		f->v = v;
		f->cap = cap;
	}
	struct live_finding *x = &f->v[f->n++];
	memset(x, 0, sizeof(*x));
	x->kind = kind;
	x->overridable = kind == LIVE_DOCKERD || kind == LIVE_PODMAN_CRIO;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(x->msg, sizeof(x->msg), fmt, ap);
	va_end(ap);
	return 0;
}

static const char *sysroot(const struct live_ctx *c)
{
	return c && c->sysroot ? c->sysroot : "";
}

static int path_in(char *buf, const char *root, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* root + formatted path; -1 when it does not fit. */
static int path_in(char *buf, const char *root, const char *fmt, ...)
{
	int len = snprintf(buf, LIVE_PATH, "%s", root);
	if (len < 0 || len >= LIVE_PATH)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(buf + len, LIVE_PATH - (size_t)len, fmt, ap);
	va_end(ap);
	return m < 0 || m >= LIVE_PATH - len ? -1 : 0;
}

/* Reads up to size-1 bytes of a small file (proc, sysfs); -1 with errno. */
static ssize_t read_small(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -1;
	size_t len = 0;
	while (len < size - 1) {
		ssize_t r = read(fd, buf + len, size - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = '\0';
	return (ssize_t)len;
}

/* One-line sysfs/proc value without its trailing newline. */
static int read_line(const char *path, char *buf, size_t size)
{
	if (read_small(path, buf, size) < 0)
		return -1;
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

/* ---- (1) processes ---- */

enum proc_who { WHO_NONE, WHO_DOCKERD, WHO_CSTORAGE };

static const char *const cstorage_names[] = { "podman", "crio", "conmon", "buildah" };

/* dockerd, and RHEL 7's dockerd-current. */
static int is_dockerd_name(const char *s)
{
	return !strncmp(s, "dockerd", 7) && (s[7] == '\0' || s[7] == '-');
}

/* What /proc/<pid>/{comm,cmdline} say this process is. */
static enum proc_who classify_pid(const char *root, const char *pid, char *name, size_t name_size)
{
	char path[LIVE_PATH], comm[64], cmd[512];
	const char *argv0 = "", *argv1 = "";

	comm[0] = '\0';
	if (path_in(path, root, "/proc/%s/comm", pid) == 0)
		(void)read_line(path, comm, sizeof(comm));
	ssize_t len = -1;
	if (path_in(path, root, "/proc/%s/cmdline", pid) == 0)
		len = read_small(path, cmd, sizeof(cmd));
	if (len > 0) {
		argv0 = cmd;
		size_t l0 = strlen(cmd);
		if ((ssize_t)l0 + 1 < len)
			argv1 = cmd + l0 + 1;
		const char *slash = strrchr(argv0, '/');
		if (slash)
			argv0 = slash + 1;
	}

	enum proc_who who = WHO_NONE;
	const char *what = "";
	if (is_dockerd_name(comm)) {
		who = WHO_DOCKERD, what = comm;
	} else if (is_dockerd_name(argv0)) {
		who = WHO_DOCKERD, what = argv0;
	} else if (!strcmp(argv0, "docker") && (!strcmp(argv1, "daemon") ||
		   !strcmp(argv1, "-d") || !strcmp(argv1, "--daemon"))) {
		/* Docker before 1.12 */
		who = WHO_DOCKERD, what = "docker daemon";
	} else {
		for (size_t i = 0; i < sizeof(cstorage_names) / sizeof(cstorage_names[0]); i++)
			if (!strcmp(comm, cstorage_names[i]) || !strcmp(argv0, cstorage_names[i])) {
				who = WHO_CSTORAGE, what = cstorage_names[i];
				break;
			}
	}
	snprintf(name, name_size, "%s", what);
	return who;
}

struct pidset {
	long v[64];
	size_t n;
};

static int pid_seen(struct pidset *s, long pid)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i] == pid)
			return 1;
	if (s->n < sizeof(s->v) / sizeof(s->v[0]))
		s->v[s->n++] = pid;
	return 0;
}

static int report_proc(struct findings *f, struct pidset *seen, enum proc_who who,
		       const char *name, long pid, const char *pidfile, struct dmr_err *err)
{
	if (pid_seen(seen, pid))
		return 0;
	char from[LIVE_PATH + 16] = "";
	if (pidfile)
		snprintf(from, sizeof(from), ", from %s", pidfile);
	if (who == WHO_DOCKERD)
		return add(f, LIVE_DOCKERD, err, "%s is running (pid %ld%s): stop Docker first",
			   name, pid, from);
	return add(f, LIVE_PODMAN_CRIO, err,
		   "%s is running (pid %ld%s): stop Podman/CRI-O/Buildah first", name, pid, from);
}

/* Docker's pid files, when their pid is alive. A pid reused by another
 * process (its comm readable and not dockerd) is a stale pid file. */
static int check_pidfiles(const char *root, struct findings *f, struct pidset *seen,
			  struct dmr_err *err)
{
	static const char *const pidfiles[] = { "/var/run/docker.pid", "/run/docker.pid" };
	for (size_t i = 0; i < sizeof(pidfiles) / sizeof(pidfiles[0]); i++) {
		char path[LIVE_PATH], buf[32], *end;
		if (path_in(path, root, "%s", pidfiles[i]) < 0 || read_line(path, buf, sizeof(buf)) < 0)
			continue;
		errno = 0;
		long pid = strtol(buf, &end, 10);
		if (errno || end == buf || *end || pid <= 0)
			continue;
		char pidstr[24], comm[64], name[64];
		snprintf(pidstr, sizeof(pidstr), "%ld", pid);
		struct stat st;
		if (path_in(path, root, "/proc/%ld", pid) < 0 || stat(path, &st) < 0)
			continue; /* not alive */
		enum proc_who who = classify_pid(root, pidstr, name, sizeof(name));
		if (who == WHO_CSTORAGE)
			continue;
		if (who == WHO_NONE) {
			if (path_in(path, root, "/proc/%ld/comm", pid) == 0 &&
			    read_line(path, comm, sizeof(comm)) == 0)
				continue; /* someone else's pid now */
			snprintf(name, sizeof(name), "dockerd");
		}
		int r = report_proc(f, seen, WHO_DOCKERD, name, pid, pidfiles[i], err);
		if (r)
			return r;
	}
	return 0;
}

static int check_procs(const char *root, int want_docker, int want_cs,
		       struct findings *f, struct dmr_err *err)
{
	struct pidset seen = { .n = 0 };
	char path[LIVE_PATH];
	int r;

	if (want_docker && (r = check_pidfiles(root, f, &seen, err)))
		return r;
	if (path_in(path, root, "/proc") < 0)
		return dmr_err_set(err, DMR_EIO, "%s/proc: path too long", root);
	DIR *d = opendir(path);
	if (!d)
		return dmr_err_set(err, DMR_EIO, "cannot list processes in %s: %s", path, strerror(errno));
	struct dirent *de;
	long self = (long)getpid();
	r = 0;
	while (!r && (de = readdir(d))) {
		char *end;
		errno = 0;
		long pid = strtol(de->d_name, &end, 10);
		if (errno || end == de->d_name || *end || pid <= 0 || (!*root && pid == self))
			continue;
		char name[64];
		enum proc_who who = classify_pid(root, de->d_name, name, sizeof(name));
		if ((who == WHO_DOCKERD && want_docker) || (who == WHO_CSTORAGE && want_cs))
			r = report_proc(f, &seen, who, name, pid, NULL, err);
	}
	closedir(d);
	return r;
}

/* ---- (3) loop devices ---- */

struct loopdev {
	unsigned major, minor;
	char name[64];
};

struct loops {
	struct loopdev v[16];
	size_t n;
};

static int parse_majmin(const char *s, unsigned *major_, unsigned *minor_)
{
	char tail;
	return sscanf(s, "%u:%u%c", major_, minor_, &tail) == 2 ? 0 : -1;
}

/* Same file: st_dev/st_ino of what the loop's backing_file names, or (the
 * file renamed, deleted, or on a fake root) the path itself, like
 * util-linux loopdev_is_used. */
static int backing_matches(const char *backing, const char *file, const struct stat *fst)
{
	if (!file)
		return 0;
	if (!strcmp(backing, file))
		return 1;
	struct stat st;
	return fst && stat(backing, &st) == 0 && st.st_dev == fst->st_dev && st.st_ino == fst->st_ino;
}

static int check_loops(const char *root, const char *metadata_path, const char *data_path,
		       struct loops *loops, struct findings *f, struct dmr_err *err)
{
	struct stat mst, dst;
	const struct stat *pm = metadata_path && stat(metadata_path, &mst) == 0 ? &mst : NULL;
	const struct stat *pd = data_path && stat(data_path, &dst) == 0 ? &dst : NULL;
	char pattern[LIVE_PATH];
	glob_t g;
	int r = 0;

	if (!metadata_path && !data_path)
		return 0;
	if (path_in(pattern, root, "/sys/block/loop*/loop/backing_file") < 0)
		return dmr_err_set(err, DMR_EIO, "%s/sys/block: path too long", root);
	int gr = glob(pattern, 0, NULL, &g);
	if (gr == GLOB_NOMATCH)
		return 0; /* no loop device is attached */
	if (gr)
		return dmr_err_set(err, gr == GLOB_NOSPACE ? DMR_ENOMEM : DMR_EIO,
				   "cannot list %s", pattern);
	for (size_t i = 0; !r && i < g.gl_pathc; i++) {
		char backing[LIVE_PATH], dev[32];
		if (read_line(g.gl_pathv[i], backing, sizeof(backing)) < 0)
			continue; /* detached meanwhile */
		/* The kernel appends " (deleted)" when the file is gone. */
		size_t bl = strlen(backing);
		if (bl > 10 && !strcmp(backing + bl - 10, " (deleted)"))
			backing[bl - 10] = '\0';
		const char *which = backing_matches(backing, data_path, pd) ? data_path
			: backing_matches(backing, metadata_path, pm) ? metadata_path : NULL;
		if (!which)
			continue;
		/* .../sys/block/loopN/loop/backing_file -> loopN */
		char *slash = strrchr(g.gl_pathv[i], '/');
		*slash = '\0';
		slash = strrchr(g.gl_pathv[i], '/');
		*slash = '\0';
		const char *name = strrchr(g.gl_pathv[i], '/') + 1;
		r = add(f, LIVE_LOOP, err, "loop device /dev/%s is backed by %s", name, which);
		if (!r)
			snprintf(f->v[f->n - 1].object, sizeof(f->v[f->n - 1].object), "/dev/%s", name);
		if (r || loops->n == sizeof(loops->v) / sizeof(loops->v[0]))
			continue;
		struct loopdev *l = &loops->v[loops->n];
		snprintf(l->name, sizeof(l->name), "%s", name);
		char devpath[LIVE_PATH];
		if (path_in(devpath, g.gl_pathv[i], "/dev") == 0 &&
		    read_line(devpath, dev, sizeof(dev)) == 0 &&
		    parse_majmin(dev, &l->major, &l->minor) == 0)
			loops->n++;
	}
	globfree(&g);
	return r;
}

/* ---- (2) device-mapper ---- */

/* Fake root: <root>/sys/block/dm-N/{dev,dm/name,slaves/}, as the list the
 * kernel would give (no uuid, no open count, no table). */
static int dm_list_sysfs(const char *root, struct dml_list *d, struct dmr_err *err)
{
	char pattern[LIVE_PATH];
	glob_t g;
	if (path_in(pattern, root, "/sys/block/dm-*") < 0)
		return dmr_err_set(err, DMR_EIO, "%s/sys/block: path too long", root);
	int gr = glob(pattern, 0, NULL, &g);
	if (gr == GLOB_NOMATCH)
		return 0;
	if (gr)
		return dmr_err_set(err, DMR_EIO, "cannot list %s", pattern);
	int r = 0;
	for (size_t i = 0; !r && i < g.gl_pathc; i++) {
		char path[LIVE_PATH], name[128], dev[32];
		unsigned ma = 0, mi = 0;
		if (path_in(path, g.gl_pathv[i], "/dm/name") < 0 || read_line(path, name, sizeof(name)) < 0)
			continue;
		if (path_in(path, g.gl_pathv[i], "/dev") == 0 && read_line(path, dev, sizeof(dev)) == 0)
			(void)parse_majmin(dev, &ma, &mi);
		struct dml_device *x = dml_add(d, name, makedev(ma, mi), err);
		if (!x) {
			r = DMR_ENOMEM;
			break;
		}
		if (path_in(path, g.gl_pathv[i], "/slaves") < 0)
			continue;
		DIR *sd = opendir(path);
		struct dirent *de;
		while (!r && sd && (de = readdir(sd))) {
			char sp[LIVE_PATH];
			if (de->d_name[0] == '.' ||
			    path_in(sp, root, "/sys/block/%s/dev", de->d_name) < 0 ||
			    read_line(sp, dev, sizeof(dev)) < 0 || parse_majmin(dev, &ma, &mi) < 0)
				continue;
			r = dml_add_dep(x, makedev(ma, mi), err);
		}
		if (sd)
			closedir(sd);
	}
	globfree(&g);
	if (r)
		dml_free(d);
	return r;
}

/* The first target of this type, or NULL (also without a table). */
static const struct dml_target *dm_target(const struct dml_device *x, const char *type)
{
	for (size_t k = 0; k < x->nr_table; k++)
		if (!strcmp(x->table[k].type, type))
			return &x->table[k];
	return NULL;
}

static int has_prefix(const char *name, const char *prefix)
{
	size_t l = strlen(prefix);
	return !strncmp(name, prefix, l) && name[l] == '-';
}

struct dm_verdict {
	dev_t *uses; /* what it sits on: deps, and the devices its table names */
	size_t nr_uses, cap_uses;
	int live;
	int level; /* stacking: 0 on our loops (or the named pool), +1 per device below */
	enum live_kind kind;
	/* Found through what it sits on: that device (a loop or a dm device),
	 * for the message when its table says it is no thin pool or device. */
	char on[140];
};

static int uses_add(struct dm_verdict *v, dev_t dev)
{
	dev_t *u = dmr_grow(v->uses, &v->cap_uses, v->nr_uses, sizeof(*u));
	if (!u)
		return -1;
	v->uses = u;
	v->uses[v->nr_uses++] = dev;
	return 0;
}

/* The deps, and every "MAJ:MIN" word of the table's params: that is how
 * thin and thin-pool targets name their pool and their metadata and data
 * devices. -1: out of memory. */
static int uses_collect(struct dm_verdict *v, const struct dml_device *x)
{
	for (size_t k = 0; k < x->nr_deps; k++)
		if (uses_add(v, x->deps[k]) < 0)
			return -1;
	for (size_t k = 0; k < x->nr_table; k++)
		for (const char *p = x->table[k].params; *p;) {
			p += strspn(p, " ");
			size_t len = strcspn(p, " ");
			char word[32];
			unsigned ma, mi;
			if (len && len < sizeof(word)) {
				memcpy(word, p, len);
				word[len] = '\0';
				if (parse_majmin(word, &ma, &mi) == 0 && uses_add(v, makedev(ma, mi)) < 0)
					return -1;
			}
			p += len;
		}
	return 0;
}

static int dm_uses(const struct dm_verdict *v, dev_t dev)
{
	for (size_t k = 0; k < v->nr_uses; k++)
		if (v->uses[k] == dev)
			return 1;
	return 0;
}

/* One line for a live device: its name and role. The role comes from the
 * prefix, or from its table when the kernel gave one: a linear or crypt
 * device on our loops is still live, but not "a thin pool". */
static int dm_report_msg(struct findings *f, const struct dml_device *x, const struct dm_verdict *v,
		     struct dmr_err *err)
{
	const char *want = v->kind == LIVE_DM_POOL ? "thin-pool" : "thin";
	if (v->on[0] && x->nr_table && !dm_target(x, want))
		return add(f, v->kind, err, "dm device %s (%s) on %s is active in the kernel",
			   x->name, x->table[0].type, v->on);
	return add(f, v->kind, err, "%s %s is active in the kernel",
		   v->kind == LIVE_DM_POOL ? "thin pool" : "thin device", x->name);
}

static int dm_report(struct findings *f, const struct dml_device *x, const struct dm_verdict *v,
		     const char *prefix, struct dmr_err *err)
{
	int r = dm_report_msg(f, x, v, err);
	if (r)
		return r;
	struct live_finding *lf = &f->v[f->n - 1];
	snprintf(lf->object, sizeof(lf->object), "%s", x->name);
	lf->named = prefix && has_prefix(x->name, prefix);
	lf->level = v->level;
	lf->deferred = !!(x->flags & DML_DEFERRED_REMOVE);
	return 0;
}

/* Live: a name with our prefix, a device on our loops (the pool, whatever
 * its name: dm.thinpooldev or a moved HOME), or one on a live one (a thin
 * device of the pool under another name, or anything stacked further).
 * "On" is what the deps say, or a device its table names (the pool of a
 * thin target, the metadata and data of a thin-pool target). */
static int dm_analyse(const struct dml_list *d, const char *prefix, const struct loops *loops,
		      struct findings *f, struct dmr_err *err)
{
	struct dm_verdict *v = calloc(d->n ? d->n : 1, sizeof(*v));
	int r = 0;
	if (!v)
		return dmr_err_set(err, DMR_ENOMEM, "out of memory");
	for (size_t i = 0; i < d->n; i++) {
		const struct dml_device *x = &d->v[i];
		if (uses_collect(&v[i], x) < 0) {
			r = dmr_err_set(err, DMR_ENOMEM, "out of memory");
			goto out;
		}
		if (prefix && has_prefix(x->name, prefix)) {
			v[i].live = 1;
			v[i].kind = !strcmp(x->name + strlen(prefix), "-pool") ? LIVE_DM_POOL : LIVE_DM_THIN;
		}
		for (size_t l = 0; l < loops->n; l++)
			if (dm_uses(&v[i], makedev(loops->v[l].major, loops->v[l].minor))) {
				v[i].live = 1;
				v[i].kind = LIVE_DM_POOL;
				snprintf(v[i].on, sizeof(v[i].on), "/dev/%s", loops->v[l].name);
			}
	}
	for (int changed = 1; changed;) {
		changed = 0;
		for (size_t i = 0; i < d->n; i++)
			for (size_t j = 0; !v[i].live && j < d->n; j++)
				if (v[j].live && j != i && dm_uses(&v[i], d->v[j].dev)) {
					v[i].live = 1;
					v[i].kind = LIVE_DM_THIN;
					snprintf(v[i].on, sizeof(v[i].on), "%s", d->v[j].name);
					changed = 1;
				}
	}
	/* Levels: a device is one above the highest live device it sits on;
	 * one that sits on none (a named thin device whose deps the fake tree
	 * does not give) is 1, unless it is the pool. At most n rounds: a
	 * cycle (which the kernel does not allow) cannot loop. */
	for (size_t i = 0; i < d->n; i++)
		v[i].level = v[i].kind == LIVE_DM_POOL ? 0 : 1;
	for (size_t round = 0, changed = 1; changed && round < d->n; round++) {
		changed = 0;
		for (size_t i = 0; i < d->n; i++)
			for (size_t j = 0; v[i].live && j < d->n; j++)
				if (j != i && v[j].live && dm_uses(&v[i], d->v[j].dev) && v[i].level <= v[j].level) {
					v[i].level = v[j].level + 1;
					changed = 1;
				}
	}
	for (size_t i = 0; !r && i < d->n; i++)
		if (v[i].live)
			r = dm_report(f, &d->v[i], &v[i], prefix, err);
out:
	for (size_t i = 0; i < d->n; i++)
		free(v[i].uses);
	free(v);
	return r;
}

/* The list from the kernel (through dmwrap), or from a fake root's sysfs. */
static int check_dm(const struct live_ctx *c, const char *prefix, const struct loops *loops,
		    struct findings *f, struct dmr_err *err)
{
	const char *root = sysroot(c);
	struct dml_list d = { NULL, 0, 0, 0 };
	int r = *root && !(c && c->dm_from_kernel) ? dm_list_sysfs(root, &d, err) : dml_read(&d, err);
	if (!r)
		r = dm_analyse(&d, prefix, loops, f, err);
	dml_free(&d);
	return r;
}

/* ---- (4) mounts ---- */

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape_octal(char *s)
{
	char *w = s;
	for (const char *p = s; *p; p++) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
		    p[3] >= '0' && p[3] <= '7') {
			*w++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
			p += 3;
		} else {
			*w++ = *p;
		}
	}
	*w = '\0';
}

/* dir without trailing slashes + "/devicemapper/mnt/". */
static int mnt_prefix(char *buf, size_t size, const char *dir)
{
	size_t l = strlen(dir);
	while (l > 1 && dir[l - 1] == '/')
		l--;
	if (l == 1 && dir[0] == '/')
		l = 0;
	int m = snprintf(buf, size, "%.*s/devicemapper/mnt/", (int)l, dir);
	return m < 0 || (size_t)m >= size ? -1 : 0;
}

static int check_mounts(const char *root, const char *docker_root, struct findings *f,
			struct dmr_err *err)
{
	char path[LIVE_PATH], want[LIVE_PATH], want_real[LIVE_PATH] = "";
	char *real = realpath(docker_root, NULL);
	int r = 0;

	if (mnt_prefix(want, sizeof(want), docker_root) < 0 ||
	    (real && mnt_prefix(want_real, sizeof(want_real), real) < 0)) {
		free(real);
		return dmr_err_set(err, DMR_EUSAGE, "%s: path too long", docker_root);
	}
	free(real);
	if (path_in(path, root, "/proc/self/mountinfo") < 0)
		return dmr_err_set(err, DMR_EIO, "%s/proc: path too long", root);
	FILE *fp = fopen(path, "re");
	if (!fp)
		return dmr_err_set(err, DMR_EIO, "cannot read %s: %s", path, strerror(errno));
	char *line = NULL;
	size_t cap = 0;
	while (!r && getline(&line, &cap, fp) > 0) {
		/* id parent maj:min root mount-point options ... */
		char *save = NULL, *mp = strtok_r(line, " ", &save);
		for (int field = 1; mp && field < 5; field++)
			mp = strtok_r(NULL, " ", &save);
		if (!mp)
			continue;
		unescape_octal(mp);
		size_t lw = strlen(want), lr = strlen(want_real);
		if ((!strncmp(mp, want, lw) && mp[lw]) || (lr && !strncmp(mp, want_real, lr) && mp[lr]))
			if (!(r = add(f, LIVE_MOUNT, err, "%s is mounted", mp)))
				snprintf(f->v[f->n - 1].object, sizeof(f->v[f->n - 1].object), "%s", mp);
	}
	if (!r && ferror(fp))
		r = dmr_err_set(err, DMR_EIO, "cannot read %s", path);
	free(line);
	fclose(fp);
	return r;
}

/* ---- all together ---- */

int live_check(const struct live_ctx *c, const char *docker_root,
	       const char *metadata_path, const char *data_path,
	       const char *dm_prefix, struct live_finding **out, size_t *n,
	       struct dmr_err *err)
{
	const char *root = sysroot(c);
	struct findings f = { NULL, 0, 0 };
	struct loops loops = { .n = 0 };
	struct findings loopf = { NULL, 0, 0 };
	int want_cs = !dm_prefix || !strncmp(dm_prefix, "container-", 10);
	int want_docker = !dm_prefix || !want_cs;
	int r;

	*out = NULL;
	*n = 0;
	if (!docker_root)
		return dmr_err_set(err, DMR_EUSAGE, "live_check: no docker root");
	/* Loops are looked up first: the dm check needs their numbers. */
	if ((r = check_procs(root, want_docker, want_cs, &f, err)) ||
	    (r = check_loops(root, metadata_path, data_path, &loops, &loopf, err)) ||
	    (r = check_dm(c, dm_prefix, &loops, &f, err)))
		goto fail;
	for (size_t i = 0; i < loopf.n; i++) {
		if ((r = add(&f, loopf.v[i].kind, err, "%s", loopf.v[i].msg)))
			goto fail;
		f.v[f.n - 1] = loopf.v[i];
	}
	if ((r = check_mounts(root, docker_root, &f, err)))
		goto fail;
	free(loopf.v);
	*out = f.v;
	*n = f.n;
	return 0;
fail:
	free(loopf.v);
	free(f.v);
	return r;
}

/* ---- the lock ---- */

int live_lock(const char *docker_root, int *fd, struct dmr_err *err)
{
	char path[LIVE_PATH];
	*fd = -1;
	if (mnt_prefix(path, sizeof(path), docker_root) < 0)
		return dmr_err_set(err, DMR_EUSAGE, "%s: path too long", docker_root);
	/* ".../devicemapper/mnt/" -> ".../devicemapper/.dmrescue.lock" */
	char *mnt = path + strlen(path) - strlen("mnt/");
	if ((size_t)(mnt - path) + sizeof(".dmrescue.lock") > sizeof(path))
		return dmr_err_set(err, DMR_EUSAGE, "%s: path too long", docker_root);
	strcpy(mnt, ".dmrescue.lock");

	int l = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (l < 0)
		return dmr_err_set(err, errno == ENOENT ? DMR_ENOENT : DMR_EIO,
				   "cannot open the lock file %s: %s", path, strerror(errno));
	if (flock(l, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		if (e == EWOULDBLOCK) {
			char buf[32] = "";
			ssize_t len = pread(l, buf, sizeof(buf) - 1, 0);
			buf[len > 0 ? len : 0] = '\0';
			buf[strcspn(buf, "\n")] = '\0';
			if (buf[strspn(buf, "0123456789")])
				buf[0] = '\0'; /* not a pid: say nothing about it */
			close(l);
			return dmr_err_set(err, DMR_EUSAGE,
					   "another dmrescue%s%s%s is working on %s (it holds %s)",
					   *buf ? " (pid " : "", buf, *buf ? ")" : "", docker_root, path);
		}
		close(l);
		return dmr_err_set(err, DMR_EIO, "cannot lock %s: %s", path, strerror(e));
	}
	/* The pid is only for the message above; failing to write it is harmless. */
	char pid[24];
	int m = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(l, 0) == 0 && pwrite(l, pid, (size_t)m, 0) < 0) {
		/* ignored */
	}
	*fd = l;
	return 0;
}

void live_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}
