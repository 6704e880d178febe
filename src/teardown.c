#include "config.h"
#include "teardown.h"
#include "dmwrap.h"
#include "util/grow.h"
#include "util/safeio.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <dirent.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

const char *td_kind_name(enum td_kind k)
{
	switch (k) {
	case TD_UNMOUNT: return "unmount";
	case TD_CANCEL_DEFERRED: return "cancel the deferred removal of";
	case TD_REMOVE_THIN: return "remove thin device";
	case TD_REMOVE_POOL: return "remove pool";
	case TD_DETACH_LOOP: return "detach";
	}
	return "?";
}

static int push(struct td_plan *p, enum td_kind k, const char *object, struct dmr_err *err)
{
	struct td_step *v = dmr_grow(p->v, &p->cap, p->n, sizeof(*v));
	if (!v)
		return dmr_err_set(err, DMR_ENOMEM, "out of memory");
	p->v = v;
	p->v[p->n].kind = k;
	snprintf(p->v[p->n].object, sizeof(p->v[p->n].object), "%s", object);
	p->n++;
	return 0;
}

/* The first reason wins: "a: b" (or "a b" when b starts with ':'). */
static void refuse(struct td_plan *p, const char *a, const char *b)
{
	if (p->refused++)
		return;
	snprintf(p->refusal, sizeof(p->refusal), "%s%s%s", a, *b == ':' ? "" : ": ", b);
}

/* Deeper mount points first: a mount inside another goes before it. */
static int by_depth_desc(const void *a, const void *b)
{
	const struct live_finding *x = *(const struct live_finding *const *)a;
	const struct live_finding *y = *(const struct live_finding *const *)b;
	size_t lx = strlen(x->object), ly = strlen(y->object);
	if (x->kind == LIVE_MOUNT && y->kind == LIVE_MOUNT && lx != ly)
		return lx > ly ? -1 : 1;
	if (x->level != y->level)
		return x->level > y->level ? -1 : 1;
	return strcmp(x->object, y->object);
}

int td_plan_build(const struct live_finding *f, size_t n, struct td_plan *p, struct dmr_err *err)
{
	memset(p, 0, sizeof(*p));
	const struct live_finding **s = calloc(n ? n : 1, sizeof(*s));
	if (!s)
		return dmr_err_set(err, DMR_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		s[i] = &f[i];
		switch (f[i].kind) {
		case LIVE_DOCKERD:
		case LIVE_PODMAN_CRIO:
			refuse(p, f[i].msg, ": teardown is for a daemon that died (it would take its pool back)");
			break;
		case LIVE_DM_POOL:
			if (!f[i].named)
				refuse(p, f[i].object, "it uses Docker's files but is not named like Docker's "
				       "pool: not touching it (remove it yourself: dmsetup remove)");
			break;
		case LIVE_DM_THIN:
			if (!f[i].named)
				refuse(p, f[i].object, "it sits on Docker's devices but is not Docker's: remove it "
				       "yourself first (dmsetup remove)");
			break;
		case LIVE_LOOP:
		case LIVE_MOUNT:
			break;
		}
	}
	qsort(s, n, sizeof(*s), by_depth_desc);
	/* Mounts (deepest first), then the dm devices from the top of the
	 * stack down (a pool's level is 0: after its thin devices), then the
	 * loops under them. */
	int r = 0;
	for (int pass = 0; !r && pass < 3; pass++)
		for (size_t i = 0; !r && i < n; i++) {
			enum live_kind k = s[i]->kind;
			int dm = k == LIVE_DM_THIN || k == LIVE_DM_POOL;
			if (pass == 0 && k == LIVE_MOUNT)
				r = push(p, TD_UNMOUNT, s[i]->object, err);
			if (pass == 1 && dm && s[i]->deferred)
				r = push(p, TD_CANCEL_DEFERRED, s[i]->object, err);
			if (pass == 1 && dm && !r)
				r = push(p, k == LIVE_DM_POOL ? TD_REMOVE_POOL : TD_REMOVE_THIN, s[i]->object, err);
			if (pass == 2 && k == LIVE_LOOP)
				r = push(p, TD_DETACH_LOOP, s[i]->object, err);
		}
	free(s);
	if (r)
		td_plan_free(p);
	return r;
}

void td_plan_free(struct td_plan *p)
{
	free(p->v);
	memset(p, 0, sizeof(*p));
}

void td_holders(const char *proc, unsigned maj, unsigned min, char *out, size_t outsz)
{
	size_t used = 0, found = 0;
	out[0] = 0;
	DIR *d = opendir(proc);
	if (!d)
		return;
	struct dirent *e;
	while (found < 4 && (e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		char path[512], line[4096];
		snprintf(path, sizeof(path), "%s/%ld/mountinfo", proc, pid);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		int held = 0;
		while (!held && fgets(line, sizeof(line), f)) {
			unsigned a, b;
			held = sscanf(line, "%*d %*d %u:%u", &a, &b) == 2 && a == maj && b == min;
		}
		fclose(f);
		if (!held)
			continue;
		char comm[64] = "?";
		snprintf(path, sizeof(path), "%s/%ld/comm", proc, pid);
		if ((f = fopen(path, "re"))) {
			if (fgets(comm, sizeof(comm), f))
				comm[strcspn(comm, "\n")] = 0;
			fclose(f);
		}
		int w = snprintf(out + used, outsz - used, "%spid %ld (%s)", found ? ", " : "", pid, comm);
		if (w < 0 || (size_t)w >= outsz - used) {
			out[used] = 0;
			break;
		}
		used += (size_t)w;
		found++;
	}
	closedir(d);
}

/* ---- the real operations ---- */

static int real_unmount(void *ctx, const char *path, int *lazily, struct dmr_err *err)
{
	(void)ctx;
	int r = sio_fault_point("umount", path, err);
	if (r)
		return r;
	*lazily = 0;
	if (umount2(path, UMOUNT_NOFOLLOW) == 0 || errno == EINVAL /* not mounted any more */)
		return 0;
	if (errno != EBUSY)
		return dmr_err_set(err, DMR_EIO, "cannot unmount %s: %s", path, strerror(errno));
	if (umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) == 0) {
		*lazily = 1;
		return 0;
	}
	return dmr_err_set(err, DMR_EIO, "cannot unmount %s, even lazily: %s", path, strerror(errno));
}

static int real_dm_cancel(void *ctx, const char *name, struct dmr_err *err)
{
	(void)ctx;
	int r = sio_fault_point("dm-cancel-deferred", name, err);
	return r ? r : dmw_cancel_deferred_remove(name, err);
}

static int real_dm_remove(void *ctx, const char *name, struct dmr_err *err)
{
	(void)ctx;
	int r = sio_fault_point("dm-remove", name, err);
	if (r)
		return r;
	struct stat sb;
	char path[320];
	snprintf(path, sizeof(path), "/dev/mapper/%s", name);
	int have_dev = stat(path, &sb) == 0 && S_ISBLK(sb.st_mode);
	r = dmw_remove(name, err);
	if (r == DMR_ENOENT)
		return 0; /* gone already (a deferred removal) */
	char who[256];
	if (r && have_dev) {
		td_holders("/proc", major(sb.st_rdev), minor(sb.st_rdev), who, sizeof(who));
		if (who[0]) {
			char first[sizeof(err->msg)];
			snprintf(first, sizeof(first), "%s", err->msg);
			dmr_err_set(err, r, "%s; it is still mounted in the mount namespace of %s: stop those "
				    "processes (containers dockerd left running?) and run teardown again", first, who);
		}
	}
	return r;
}

static int real_loop_detach(void *ctx, const char *dev, struct dmr_err *err)
{
	(void)ctx;
	int r = sio_fault_point("loop-detach", dev, err);
	if (r)
		return r;
	int fd = open(dev, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ENXIO ? 0 : dmr_err_set(err, DMR_EIO, "cannot open %s: %s", dev,
									  strerror(errno));
	r = 0;
	if (ioctl(fd, LOOP_CLR_FD, 0) < 0 && errno != ENXIO /* detached already (autoclear) */)
		r = dmr_err_set(err, DMR_EIO, "cannot detach %s: %s", dev, strerror(errno));
	close(fd);
	return r;
}

const struct td_ops td_real_ops = {
	.unmount = real_unmount,
	.dm_cancel_deferred = real_dm_cancel,
	.dm_remove = real_dm_remove,
	.loop_detach = real_loop_detach,
};

int td_run_step(const struct td_ops *ops, void *ctx, const struct td_step *s, int *lazily, struct dmr_err *err)
{
	*lazily = 0;
	switch (s->kind) {
	case TD_UNMOUNT: return ops->unmount(ctx, s->object, lazily, err);
	case TD_CANCEL_DEFERRED: return ops->dm_cancel_deferred(ctx, s->object, err);
	case TD_REMOVE_THIN:
	case TD_REMOVE_POOL: return ops->dm_remove(ctx, s->object, err);
	case TD_DETACH_LOOP: return ops->loop_detach(ctx, s->object, err);
	}
	return dmr_err_set(err, DMR_EUSAGE, "unknown step");
}
