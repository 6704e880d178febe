/* dmrescue clean: remove leftovers offline, crash-safe, with a backup.
 *
 * 1. Read everything (read-only), check the pool, build the plan (plan.c).
 * 2. Print the plan; --dry-run stops here.
 * 3. Guards: the lock, nothing live (live.c), confirmation.
 * 4. Backup (backup.c): the metadata file and every Docker file touched.
 * 5. The new metadata: a sparse copy next to the metadata file (a dot
 *    name), the devices removed from it by the copy-on-write engine
 *    (thinmeta/rewrite.c), checked by our checker and by thin_check.
 *    A metadata block device is rewritten in place, after a rehearsal on a
 *    copy in the backup directory.
 * 6. Docker's files, in Docker's own order (plan.h), each change atomic.
 * 7. The swap: rename the new metadata over the old one, fsync the
 *    directory. A crash before it leaves the old pool with fewer Docker
 *    files (pool orphans, valid); after it, the new state. */
#include "config.h"
#include "backup.h"
#include "cli.h"
#include "docker/bolt.h"
#include "docker/scan.h"
#include "guard.h"
#include "inventory.h"
#include "live.h"
#include "plan.h"
#include "thinmeta/check.h"
#include "thinmeta/rewrite.h"
#include "util/filecopy.h"
#include "util/fmt.h"
#include "util/jsonc.h"
#include "util/safeio.h"
#include "util/sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CLEAN_SCHEMA "dmrescue.clean/1"

static void clean_usage(FILE *out)
{
	fputs("Usage:\n"
	      " dmrescue clean [options]\n"
	      "\n"
	      "Remove leftovers from the pool and Docker's files, with Docker stopped.\n"
	      "By default: pool orphans, deferred-deleted devices, the open transaction\n"
	      "(Docker's own rollback), half-removed layers and transient files. A plan\n"
	      "is printed first; nothing changes without --yes (or y on a terminal).\n"
	      "Everything changed is saved first to a backup ('dmrescue undo' restores it).\n"
	      "\n"
	      "Options:\n"
	      " -n, --dry-run              print the plan, change nothing\n"
	      " -y, --yes                  do not ask\n"
	      "     --force                go on while dockerd/podman seems to run (never\n"
	      "                            while the pool, a loop device or a mount is live)\n"
	      "     --backup-dir DIR       where the backup goes (default:\n"
	      "                            ROOT/devicemapper/dmrescue-backup/<time>)\n"
	      "Opt-in classes:\n"
	      "     --driver-orphans       devices and mounts nothing refers to\n"
	      "     --hollow-files         metadata files whose device is gone\n"
	      "     --dead-containers      Dead containers, removed in Docker's order\n"
	      "     --unreferenced-layers  layers no image or container uses\n"
	      "     --bad-files            metadata files Docker cannot parse\n"
	      "     --all                  all of the above\n"
	      "     --buildkit-cache       drop BuildKit's whole build cache (buildkit/ into\n"
	      "                            the backup, its devices removed), as 'docker\n"
	      "                            builder prune -a' would; image layers stay\n"
	      "     --buildkit-unreferenced  only the BuildKit snapshots no cache record,\n"
	      "                            lease, layer or kept snapshot refers to\n"
	      "                            (buildkit/snapshots.db rewritten without them)\n"
	      "Explicit targets (only these are removed; repeatable):\n"
	      "     --device ID|HASH       a thin device (and its metadata file)\n"
	      "     --container NAME|ID    a container with its layers\n"
	      "     --image REF|ID         an image (untag only when it has other tags)\n"
	      "     --json                 the plan and the result as one JSON document\n"
	      "                            (schema " CLEAN_SCHEMA ")\n"
	      "\n"
	      "Exit status: 0 done (or nothing to do), 2 the pool is damaged, 3 input\n"
	      "unreadable, 4 a write failed (see the backup), 5 refused, 64 usage.\n", out);
}

enum {
	OPT_DRY = OPT_CMD_BASE,
	OPT_FORCE,
	OPT_BACKUP_DIR,
	OPT_DRIVER_ORPHANS,
	OPT_HOLLOW,
	OPT_DEAD,
	OPT_UNREF,
	OPT_BAD,
	OPT_BUILDKIT,
	OPT_BUILDKIT_UNREF,
	OPT_ALL,
	OPT_DEVICE,
	OPT_CONTAINER,
	OPT_IMAGE,
};

struct targets {
	const char **v;
	size_t n;
};

static int push_target(struct targets *t, const char *s)
{
	const char **n = realloc(t->v, (t->n + 1) * sizeof(*n));
	if (!n)
		return -1;
	t->v = n;
	t->v[t->n++] = s;
	return 0;
}

struct clean {
	struct dmr_cli *cli;
	int dry_run, yes, force;
	const char *backup_dir;
	struct plan_opts po;
	struct targets dev, con, img;

	struct dk_state st;
	struct dmr_pool_view v;
	int view_open;
	struct tm_usage u;
	struct inventory inv;
	struct plan pl;
	uint64_t data_block_bytes;
	int is_blockdev;
	struct tm_rewrite_result sim; /* the removal, simulated (tm_rewrite_plan) */

	/* results */
	struct backup *bk;
	struct tm_rewrite_result rw;
	const char *thin_check_result;
	size_t files_done;
	int lock_fd;
};

static uint64_t *plan_ids(const struct plan *pl);

/* --- reading and checking --- */

static int verify(struct clean *c, const char *path, struct dmr_err *err)
{
	int r = dmr_guard_our_check(path, dmr_cli_data_path(c->cli), err);
	if (r)
		return dmr_err_prefix(err, "verifying the rewritten metadata");
	r = dmr_guard_thin_check(path, err);
	if (r == DMR_ECORRUPT)
		return dmr_err_prefix(err, "nothing was changed");
	if (r < 0)
		return r;
	c->thin_check_result = r == 0 ? "passed" : "not installed";
	return 0;
}


/* Reads the pool, checks it and builds the plan. Returns an exit code. */
static int load(struct clean *c)
{
	struct dmr_cli *cli = c->cli;
	struct dmr_err err = { 0 };
	const char *meta = dmr_cli_metadata_path(cli);
	int r = dmr_guard_pool_sound(cli, "change");
	if (r != DMR_EXIT_OK)
		return r;
	if (dk_state_read(cli->root, &c->st, &err))
		return dmr_cli_fail(cli, &err);
	int rc = dmr_pool_view_open(cli, &c->v, 0, 0);
	c->view_open = 1;
	if (rc == DMR_EXIT_OK)
		rc = dmr_pool_view_roots(&c->v, NULL, NULL, 0);
	if (rc != DMR_EXIT_OK)
		return rc;
	if (c->v.log.count) {
		dmr_cli_error(cli, "refusing to change a damaged pool: run 'dmrescue check'");
		return DMR_EXIT_DAMAGE;
	}
	const struct tm_superblock *sb = &c->v.pool->sb;
	if (sb->flags & TM_SB_FLAG_NEEDS_CHECK) {
		dmr_cli_error(cli, "%s: needs_check is set: run thin_check (or thin_repair into a new file) first", meta);
		return DMR_EXIT_REFUSED;
	}
	if (sb->held_root) {
		dmr_cli_error(cli, "%s: a metadata snapshot is held at block %llu (something like thin_dump -m or lvm "
			      "uses it): release it with the pool active ('dmsetup message POOL 0 "
			      "release_metadata_snap') first", meta, (unsigned long long)sb->held_root);
		return DMR_EXIT_REFUSED;
	}
	if (tm_usage_compute(c->v.pool, c->v.roots, c->v.nroots, sb->data_sm.nr_blocks, dmr_pool_view_usage_damage, &c->v, &c->u,
			     &err) ||
	    inv_build(&c->inv, c->v.pool, &c->v.devs, c->v.dev_of_root, c->v.nroots, &c->u, &c->st,
		      dmr_cli_data_path(cli), &err))
		return dmr_cli_fail(cli, &err);
	c->data_block_bytes = c->inv.pool.data_block_bytes;
	c->po.devices = c->dev.v;
	c->po.nr_devices = c->dev.n;
	c->po.containers = c->con.v;
	c->po.nr_containers = c->con.n;
	c->po.images = c->img.v;
	c->po.nr_images = c->img.n;
	if (plan_build(&c->pl, &c->inv, &c->st, &c->po, &err))
		return dmr_cli_fail(cli, &err);
	struct stat s;
	c->is_blockdev = stat(meta, &s) == 0 && S_ISBLK(s.st_mode);
	if (c->pl.nr_devs) {
		uint64_t *ids = plan_ids(&c->pl);
		if (!ids)
			return dmr_cli_error(cli, "out of memory"), DMR_EXIT_INPUT;
		r = tm_rewrite_plan(meta, ids, c->pl.nr_devs, &c->sim, &err);
		free(ids);
		if (r == DMR_EUNSUPP) {
			dmr_cli_error(cli, "%s", err.msg);
			return DMR_EXIT_REFUSED;
		}
		if (r)
			return dmr_cli_fail(cli, &err);
	}
	return DMR_EXIT_OK;
}

/* --- the plan, for people and as JSON --- */

/* Pool data the removal frees: blocks no kept device maps, counted once. */
static uint64_t plan_freed(const struct clean *c)
{
	return (c->sim.data_used_before - c->sim.data_used_after) * c->data_block_bytes;
}

static void print_plan(const struct clean *c)
{
	const struct plan *pl = &c->pl;
	char a[32], b[32];
	printf("Plan for %s (pool %s)\n", c->st.root, dmr_cli_metadata_path(c->cli));
	if (plan_empty(pl))
		printf("  nothing to remove\n");
	if (pl->nr_devs)
		printf("  remove %zu thin device%s from the pool:\n", pl->nr_devs, pl->nr_devs == 1 ? "" : "s");
	for (size_t i = 0; i < pl->nr_devs; i++) {
		const struct plan_dev *d = &pl->devs[i];
		printf("    thin %-6llu %-18s %s  %s mapped, %s exclusive%s\n", (unsigned long long)d->thin_id, d->reason,
		       d->hash ? (d->hash[0] ? d->hash : "base") : "(no file)",
		       fmt_human(d->mapped_blocks * c->data_block_bytes, a),
		       fmt_human(d->exclusive_blocks * c->data_block_bytes, b),
		       d->is_protected ? "  [label protected: removed because named]" : "");
	}
	if (pl->nr_files)
		printf("  change %zu file%s and directories under the root:\n", pl->nr_files, pl->nr_files == 1 ? "" : "s");
	for (size_t i = 0; i < pl->nr_files; i++) {
		const struct plan_file *f = &pl->files[i];
		if (f->op == PLAN_REWRITE_REPOS) {
			printf("    rewrite %s without", f->path);
			for (size_t t = 0; t < pl->nr_drop_tags; t++)
				printf(" %s", pl->drop_tags[t]);
			printf("\n");
		} else if (f->op == PLAN_REWRITE_BOLT) {
			printf("    rewrite %s without %zu snapshot%s:", f->path, pl->nr_drop_snapshots,
			       pl->nr_drop_snapshots == 1 ? "" : "s");
			for (size_t t = 0; t < pl->nr_drop_snapshots; t++)
				printf(" %s", pl->drop_snapshots[t]);
			printf("  (%s)\n", f->reason);
		} else {
			printf("    remove  %s%s  (%s)\n", f->path, f->optional ? " (if present)" : "", f->reason);
		}
	}
	if (pl->nr_devs)
		printf("  pool data freed: %s (%llu blocks); metadata blocks in use: %llu -> %llu\n",
		       fmt_human(plan_freed(c), a), (unsigned long long)(c->sim.data_used_before - c->sim.data_used_after),
		       (unsigned long long)c->sim.meta_used_before, (unsigned long long)c->sim.meta_used_after);
	for (size_t i = 0; i < pl->nr_skips; i++)
		printf("  left alone: %s: %s\n", pl->skips[i].what, pl->skips[i].why);
}

static json_object *plan_json(const struct clean *c)
{
	const struct plan *pl = &c->pl;
	json_object *o = json_object_new_object();
	json_object *devs = json_object_new_array();
	for (size_t i = 0; i < pl->nr_devs; i++) {
		const struct plan_dev *d = &pl->devs[i];
		json_object *x = json_object_new_object();
		json_object_object_add(x, "thin_id", json_object_new_int64((int64_t)d->thin_id));
		json_object_object_add(x, "hash", d->hash ? json_object_new_string(d->hash) : NULL);
		json_object_object_add(x, "class", json_object_new_string(inv_class_name(d->cls)));
		json_object_object_add(x, "reason", json_object_new_string(d->reason));
		json_object_object_add(x, "mapped_bytes", json_object_new_int64((int64_t)(d->mapped_blocks * c->data_block_bytes)));
		json_object_object_add(x, "exclusive_bytes",
				       json_object_new_int64((int64_t)(d->exclusive_blocks * c->data_block_bytes)));
		json_object_object_add(x, "protected", json_object_new_boolean(d->is_protected));
		json_object_array_add(devs, x);
	}
	json_object_object_add(o, "devices", devs);
	json_object *files = json_object_new_array();
	for (size_t i = 0; i < pl->nr_files; i++) {
		const struct plan_file *f = &pl->files[i];
		json_object *x = json_object_new_object();
		json_object_object_add(x, "op", json_object_new_string(f->op == PLAN_REMOVE ? "remove" : "rewrite"));
		json_object_object_add(x, "path", json_object_new_string(f->path));
		json_object_object_add(x, "reason", json_object_new_string(f->reason));
		json_object_object_add(x, "optional", json_object_new_boolean(f->optional));
		json_object_array_add(files, x);
	}
	json_object_object_add(o, "files", files);
	json_object *tags = json_object_new_array();
	for (size_t i = 0; i < pl->nr_drop_tags; i++)
		json_object_array_add(tags, json_object_new_string(pl->drop_tags[i]));
	json_object_object_add(o, "untag", tags);
	json_object *snaps = json_object_new_array();
	for (size_t i = 0; i < pl->nr_drop_snapshots; i++)
		json_object_array_add(snaps, json_object_new_string(pl->drop_snapshots[i]));
	json_object_object_add(o, "drop_buildkit_snapshots", snaps);
	json_object *sk = json_object_new_array();
	for (size_t i = 0; i < pl->nr_skips; i++) {
		json_object *x = json_object_new_object();
		json_object_object_add(x, "what", json_object_new_string(pl->skips[i].what));
		json_object_object_add(x, "why", json_object_new_string(pl->skips[i].why));
		json_object_array_add(sk, x);
	}
	json_object_object_add(o, "left_alone", sk);
	json_object_object_add(o, "data_bytes_freed", json_object_new_int64((int64_t)plan_freed(c)));
	json_object_object_add(o, "metadata_blocks_before", json_object_new_int64((int64_t)c->sim.meta_used_before));
	json_object_object_add(o, "metadata_blocks_after", json_object_new_int64((int64_t)c->sim.meta_used_after));
	return o;
}

static void print_json(const struct clean *c, const char *state, const struct dmr_err *err)
{
	json_object *root = json_object_new_object();
	json_object_object_add(root, "schema", json_object_new_string(CLEAN_SCHEMA));
	json_object_object_add(root, "root", json_object_new_string(c->st.root ? c->st.root : c->cli->root));
	json_object_object_add(root, "metadata", json_object_new_string(dmr_cli_metadata_path(c->cli)));
	json_object_object_add(root, "dry_run", json_object_new_boolean(c->dry_run));
	json_object_object_add(root, "plan", plan_json(c));
	json_object *res = json_object_new_object();
	json_object_object_add(res, "state", json_object_new_string(state));
	if (err && err->msg[0])
		json_object_object_add(res, "error", json_object_new_string(err->msg));
	if (c->bk)
		json_object_object_add(res, "backup", json_object_new_string(bk_path(c->bk)));
	if (c->rw.nr_removed || c->rw.meta_used_before) {
		json_object_object_add(res, "devices_removed", json_object_new_int64((int64_t)c->rw.nr_removed));
		json_object_object_add(res, "data_bytes_freed",
				       json_object_new_int64((int64_t)((c->rw.data_used_before - c->rw.data_used_after) *
								       c->data_block_bytes)));
		json_object_object_add(res, "metadata_blocks_before", json_object_new_int64((int64_t)c->rw.meta_used_before));
		json_object_object_add(res, "metadata_blocks_after", json_object_new_int64((int64_t)c->rw.meta_used_after));
	}
	json_object_object_add(res, "files_changed", json_object_new_int64((int64_t)c->files_done));
	if (c->thin_check_result)
		json_object_object_add(res, "thin_check", json_object_new_string(c->thin_check_result));
	json_object_object_add(root, "result", res);
	dmr_cli_put_json(root);
}

/* --- doing it --- */

static int path_exists(const char *root, const char *rel)
{
	char p[8192];
	struct stat s;
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	return lstat(p, &s) == 0;
}

static int take_backup(struct clean *c, struct dmr_err *err)
{
	const char *root = c->cli->root;
	int r = bk_begin(&c->bk, root, c->backup_dir, "clean", err);
	if (!r && c->pl.nr_devs)
		r = bk_save_metadata(c->bk, dmr_cli_metadata_path(c->cli), err);
	for (size_t i = 0; !r && i < c->pl.nr_files; i++) {
		const struct plan_file *f = &c->pl.files[i];
		if (f->optional && !path_exists(root, f->path))
			continue;
		r = f->op == PLAN_REMOVE ? bk_plan_remove(c->bk, f->path, err) : bk_save_file(c->bk, f->path, err);
	}
	if (!r)
		r = bk_seal(c->bk, err);
	return r;
}

/* Gives fd the mode, owner and xattrs of the file name in dfd (path, for
 * messages, names it). */
static int copy_attrs_of(int dfd, const char *name, int fd, const char *path, struct dmr_err *err)
{
	int ofd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (ofd < 0)
		return dmr_err_set(err, DMR_EIO, "opening %s: %s", path, strerror(errno));
	int r = fc_copy_attrs(ofd, fd, path, err);
	close(ofd);
	return r;
}

/* repositories.json without the dropped references: Docker's layout
 * {"Repositories": {name: {ref: id}}}, empty names dropped. */
static int rewrite_repos(struct clean *c, const char *rel, struct dmr_err *err)
{
	char path[8192], dir[8192], tmpname[64];
	snprintf(path, sizeof(path), "%s/%s", c->cli->root, rel);
	json_object *doc = json_object_from_file(path);
	if (!doc)
		return dmr_err_set(err, DMR_ECORRUPT, "%s: not JSON; not rewritten", path);
	json_object *repos = NULL;
	if (!json_object_object_get_ex(doc, "Repositories", &repos) || !json_object_is_type(repos, json_type_object)) {
		json_object_put(doc);
		return dmr_err_set(err, DMR_ECORRUPT, "%s: no Repositories object; not rewritten", path);
	}
	for (size_t t = 0; t < c->pl.nr_drop_tags; t++) {
		const char *ref = c->pl.drop_tags[t];
		json_object_object_foreach(repos, name, refs) {
			if (json_object_is_type(refs, json_type_object))
				json_object_object_del(refs, ref);
			(void)name;
		}
	}
	/* drop names left empty (collect first: no deletion while iterating) */
	for (;;) {
		const char *empty = NULL;
		json_object_object_foreach(repos, name, refs) {
			if (json_object_is_type(refs, json_type_object) && json_object_object_length(refs) == 0) {
				empty = name;
				break;
			}
		}
		if (!empty)
			break;
		json_object_object_del(repos, empty);
	}
	const char *text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	snprintf(dir, sizeof(dir), "%s", path);
	char *d = dirname(dir);
	int dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		json_object_put(doc);
		return dmr_err_set(err, DMR_EIO, "opening %s: %s", d, strerror(errno));
	}
	snprintf(tmpname, sizeof(tmpname), ".tmp-repositories.json-dmrescue-%ld", (long)getpid());
	/* The new content's hash goes into the backup before the change, so
	 * an undo after a crash knows both versions. */
	char hex[SHA256_HEX_LEN + 1];
	sha256_hex(text, strlen(text), hex);
	int r = bk_set_after(c->bk, rel, hex, err);
	int fd = r ? r : sio_create(dfd, tmpname, 0, 0600, path, err);
	if (!r && fd < 0)
		r = fd;
	if (!r)
		r = copy_attrs_of(AT_FDCWD, path, fd, path, err);
	if (!r) {
		r = sio_pwrite(fd, text, strlen(text), 0, path, err);
		if (!r)
			r = sio_fsync(fd, path, err);
		close(fd);
		if (!r)
			r = sio_renameat(dfd, tmpname, dfd, "repositories.json", path, err);
		if (r)
			unlinkat(dfd, tmpname, 0);
	}
	if (!r)
		r = sio_fsync_dir(d, err);
	close(dfd);
	json_object_put(doc);
	return r;
}

/* Replaces the file at path with len bytes of data as Docker writes its
 * files: a dot-named temp file in the same directory (one a crash left is
 * removed first), the old file's mode, owner and xattrs, fsync, rename
 * over, directory fsync. */
static int replace_file(const char *path, const char *tmpname, const void *data, size_t len, struct dmr_err *err)
{
	char dir[8192];
	snprintf(dir, sizeof(dir), "%s", path);
	char *d = dirname(dir);
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	int dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return dmr_err_set(err, DMR_EIO, "opening %s: %s", d, strerror(errno));
	unlinkat(dfd, tmpname, 0); /* a temp file a crash left behind */
	int fd = sio_create(dfd, tmpname, 0, 0600, path, err);
	int r = fd < 0 ? fd : 0;
	if (!r) {
		r = copy_attrs_of(dfd, base, fd, path, err);
		if (!r)
			r = sio_pwrite(fd, data, len, 0, path, err);
		if (!r)
			r = sio_fsync(fd, path, err);
		close(fd);
		if (!r)
			r = sio_renameat(dfd, tmpname, dfd, base, path, err);
		if (r)
			unlinkat(dfd, tmpname, 0);
	}
	close(dfd);
	if (!r)
		r = sio_fsync_dir(d, err);
	return r;
}

/* A whole file, bounded (a regular file, not followed through a symlink). */
static int read_whole(const char *path, size_t cap, unsigned char **out, size_t *len, struct dmr_err *err)
{
	*out = NULL;
	*len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return dmr_err_set(err, DMR_EIO, "opening %s: %s", path, strerror(errno));
	struct stat s;
	if (fstat(fd, &s) < 0 || !S_ISREG(s.st_mode) || (uint64_t)s.st_size > cap) {
		close(fd);
		return dmr_err_set(err, DMR_EIO, "%s: not a regular file of at most %zu bytes", path, cap);
	}
	unsigned char *buf = malloc(s.st_size ? (size_t)s.st_size : 1);
	size_t got = 0;
	while (buf && got < (size_t)s.st_size) {
		ssize_t n = pread(fd, buf + got, (size_t)s.st_size - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (!buf)
		return dmr_err_set(err, DMR_ENOMEM, "out of memory reading %s", path);
	if (got != (size_t)s.st_size) {
		free(buf);
		return dmr_err_set(err, DMR_EIO, "reading %s: short read", path);
	}
	*out = buf;
	*len = got;
	return 0;
}

/* buildkit/snapshots.db without the dropped buckets: loaded whole
 * (strictly: damage stops it), the buckets deleted, written as a new
 * bbolt file, read back and compared before anything is replaced; its
 * SHA-256 goes into the backup first. */
static int rewrite_snapshots(struct clean *c, const char *rel, struct dmr_err *err)
{
	char path[8192];
	snprintf(path, sizeof(path), "%s/%s", c->cli->root, rel);
	unsigned char *old = NULL, *neu = NULL;
	size_t oldlen = 0, newlen = 0;
	struct dk_bolt_db db = { 0 }, back = { 0 };
	int r = read_whole(path, (size_t)512 << 20, &old, &oldlen, err);
	if (!r && dk_bolt_load(old, oldlen, &db, err))
		r = dmr_err_prefix(err, "%s: not rewritten", path);
	for (size_t i = 0; !r && i < c->pl.nr_drop_snapshots; i++) {
		const struct dk_bolt_item *it = dk_bolt_get(db.root, c->pl.drop_snapshots[i]);
		if (it && it->sub)
			dk_bolt_delete(db.root, c->pl.drop_snapshots[i]);
	}
	if (!r && dk_bolt_write(&db, &neu, &newlen, err))
		r = dmr_err_prefix(err, "%s", path);
	if (!r && (dk_bolt_load(neu, newlen, &back, err) || !dk_bolt_equal(back.root, db.root)))
		r = dmr_err_set(err, DMR_ECORRUPT, "%s: the rewritten database does not read back as written; "
				"nothing replaced", path);
	if (!r) {
		char hex[SHA256_HEX_LEN + 1];
		sha256_hex(neu, newlen, hex);
		r = bk_set_after(c->bk, rel, hex, err);
	}
	if (!r)
		r = replace_file(path, ".snapshots.db.dmrescue-new", neu, newlen, err);
	dk_bolt_db_free(&db);
	dk_bolt_db_free(&back);
	free(old);
	free(neu);
	return r;
}

static int docker_files(struct clean *c, struct dmr_err *err)
{
	for (size_t i = 0; i < c->pl.nr_files; i++) {
		const struct plan_file *f = &c->pl.files[i];
		int r;
		if (f->op == PLAN_REWRITE_REPOS) {
			r = rewrite_repos(c, f->path, err);
		} else if (f->op == PLAN_REWRITE_BOLT) {
			r = rewrite_snapshots(c, f->path, err);
		} else {
			if (f->optional && !path_exists(c->cli->root, f->path))
				continue;
			r = bk_remove_now(c->bk, f->path, err);
		}
		if (r)
			return r;
		c->files_done++;
		if (c->cli->verbose && !c->cli->json)
			printf("  %s %s\n", f->op == PLAN_REMOVE ? "removed" : "rewrote", f->path);
	}
	return 0;
}

static uint64_t *plan_ids(const struct plan *pl)
{
	uint64_t *ids = calloc(pl->nr_devs ? pl->nr_devs : 1, sizeof(*ids));
	for (size_t i = 0; ids && i < pl->nr_devs; i++)
		ids[i] = pl->devs[i].thin_id;
	return ids;
}

/* The new metadata as a sparse copy next to the old file: tmp gets its path. */
static int prepare_copy(const char *meta, const char *dst, struct dmr_err *err)
{
	char dbuf[4096];
	snprintf(dbuf, sizeof(dbuf), "%s", dst);
	const char *base = strrchr(dst, '/') ? strrchr(dst, '/') + 1 : dst;
	int src = open(meta, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (src < 0)
		return dmr_err_set(err, DMR_EIO, "opening %s: %s", meta, strerror(errno));
	char *d = dirname(dbuf);
	int dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		close(src);
		return dmr_err_set(err, DMR_EIO, "opening %s: %s", d, strerror(errno));
	}
	unlinkat(dfd, base, 0); /* a copy a crash left behind */
	int fd = sio_create(dfd, base, 0, 0600, dst, err);
	int r = fd < 0 ? fd : 0;
	if (!r) {
		r = fc_copy_sparse(src, fd, dst, NULL, NULL, err);
		if (!r)
			r = fc_copy_attrs(src, fd, dst, err);
		if (!r)
			r = sio_fsync(fd, dst, err);
		close(fd);
	}
	close(dfd);
	close(src);
	return r;
}

static int swap_in(const char *tmp, const char *meta, struct dmr_err *err)
{
	char dbuf[4096];
	snprintf(dbuf, sizeof(dbuf), "%s", meta);
	char *d = dirname(dbuf);
	int r = sio_renameat(AT_FDCWD, tmp, AT_FDCWD, meta, meta, err);
	if (!r)
		r = sio_fsync_dir(d, err);
	return r;
}

/* The new metadata's digest, into the backup before it replaces the old. */
static int record_after(struct clean *c, const char *path, struct dmr_err *err)
{
	char hex[SHA256_HEX_LEN + 1];
	int r = bk_metadata_digest(path, hex, err);
	return r ? r : bk_set_after(c->bk, NULL, hex, err);
}

/* The new metadata in the file at tmp: a sparse copy of the pool's, the
 * devices removed, checked (ours and thin_check), its digest recorded in
 * the backup before it replaces anything. */
static int rewrite_copy(struct clean *c, const char *meta, const char *tmp, const uint64_t *ids,
			struct dmr_err *err)
{
	int r = prepare_copy(meta, tmp, err);
	if (!r)
		r = tm_rewrite_remove(tmp, ids, c->pl.nr_devs, &c->rw, err);
	if (!r)
		r = verify(c, tmp, err);
	if (!r)
		r = record_after(c, tmp, err);
	return r;
}

static int rewrite_pool(struct clean *c, char *tmp, size_t tmplen, struct dmr_err *err)
{
	const char *meta = dmr_cli_metadata_path(c->cli);
	uint64_t *ids = plan_ids(&c->pl);
	if (!ids)
		return dmr_err_set(err, DMR_ENOMEM, "out of memory");
	int r;
	if (c->is_blockdev) {
		/* Rehearse on a copy in the backup, then do it in place: the
		 * rewrite is deterministic, so the device ends up as the
		 * rehearsal did, whose digest the backup already has. */
		snprintf(tmp, tmplen, "%s/pool/metadata.rehearsal", bk_path(c->bk));
		r = rewrite_copy(c, meta, tmp, ids, err);
		unlink(tmp);
		tmp[0] = '\0';
		if (!r)
			r = tm_rewrite_remove(meta, ids, c->pl.nr_devs, &c->rw, err);
		if (!r)
			r = verify(c, meta, err);
	} else {
		char dbuf[4096];
		snprintf(dbuf, sizeof(dbuf), "%s", meta);
		const char *base = strrchr(meta, '/') ? strrchr(meta, '/') + 1 : meta;
		snprintf(tmp, tmplen, "%s/.%s.dmrescue-new", dirname(dbuf), base);
		r = rewrite_copy(c, meta, tmp, ids, err);
	}
	free(ids);
	return r;
}

static int apply(struct clean *c)
{
	struct dmr_cli *cli = c->cli;
	struct dmr_err err = { 0 };
	char tmp[4096] = "";
	const char *meta = dmr_cli_metadata_path(cli);
	const char *stage = "taking the backup";
	int r = take_backup(c, &err);
	if (!r && !cli->json && !cli->quiet)
		printf("Backup: %s\n", bk_path(c->bk));
	if (!r && c->pl.nr_devs) {
		stage = "rewriting the pool metadata";
		r = rewrite_pool(c, tmp, sizeof(tmp), &err);
	}
	if (!r) {
		stage = "changing Docker's files";
		r = docker_files(c, &err);
	}
	if (!r && tmp[0]) {
		stage = "putting the new metadata in place";
		r = swap_in(tmp, meta, &err);
		if (!r)
			tmp[0] = '\0';
	}
	if (!r)
		r = bk_finish(c->bk, &err);
	if (tmp[0])
		unlink(tmp);
	if (r) {
		if (cli->json)
			print_json(c, "failed", &err);
		dmr_cli_error(cli, "%s: %s", stage, err.msg);
		if (c->bk)
			dmr_cli_error(cli, "the pool metadata is %s; the backup is %s ('dmrescue undo %s' restores "
				      "the files changed so far)", tmp[0] || !c->pl.nr_devs ? "unchanged" : "as before or rewritten",
				      bk_path(c->bk), bk_path(c->bk));
		return r == DMR_ECORRUPT ? DMR_EXIT_DAMAGE : r == DMR_EUNSUPP ? DMR_EXIT_REFUSED : DMR_EXIT_OUTPUT;
	}
	if (cli->json) {
		print_json(c, "done", NULL);
		return DMR_EXIT_OK;
	}
	char a[32];
	if (c->pl.nr_devs)
		printf("Removed %llu thin device%s: %s of pool data freed; metadata blocks in use %llu -> %llu; "
		       "thin_check %s.\n", (unsigned long long)c->rw.nr_removed, c->rw.nr_removed == 1 ? "" : "s",
		       fmt_human((c->rw.data_used_before - c->rw.data_used_after) * c->data_block_bytes, a),
		       (unsigned long long)c->rw.meta_used_before, (unsigned long long)c->rw.meta_used_after,
		       c->thin_check_result ? c->thin_check_result : "not run");
	printf("Changed %zu file%s and directories. 'dmrescue undo %s' puts everything back.\n", c->files_done,
	       c->files_done == 1 ? "" : "s", bk_path(c->bk));
	if (c->pl.nr_devs && !c->is_blockdev)
		printf("The data file keeps its size on the host until 'dmrescue reclaim' punches the free blocks.\n");
	return DMR_EXIT_OK;
}

static int parse(struct clean *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		DMR_GLOBAL_LONGOPTS,
		{ "dry-run", no_argument, NULL, 'n' },
		{ "yes", no_argument, NULL, 'y' },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "backup-dir", required_argument, NULL, OPT_BACKUP_DIR },
		{ "driver-orphans", no_argument, NULL, OPT_DRIVER_ORPHANS },
		{ "hollow-files", no_argument, NULL, OPT_HOLLOW },
		{ "dead-containers", no_argument, NULL, OPT_DEAD },
		{ "unreferenced-layers", no_argument, NULL, OPT_UNREF },
		{ "bad-files", no_argument, NULL, OPT_BAD },
		{ "buildkit-cache", no_argument, NULL, OPT_BUILDKIT },
		{ "buildkit-unreferenced", no_argument, NULL, OPT_BUILDKIT_UNREF },
		{ "all", no_argument, NULL, OPT_ALL },
		{ "device", required_argument, NULL, OPT_DEVICE },
		{ "container", required_argument, NULL, OPT_CONTAINER },
		{ "image", required_argument, NULL, OPT_IMAGE },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, DMR_GLOBAL_SHORTOPTS "ny", longopts, NULL)) != -1) {
		if (dmr_cli_global_opt(c->cli, ch, optarg, clean_usage))
			continue;
		int oom = 0;
		switch (ch) {
		case 'n': c->dry_run = 1; break;
		case 'y': c->yes = 1; break;
		case OPT_FORCE: c->force = 1; break;
		case OPT_BACKUP_DIR: c->backup_dir = optarg; break;
		case OPT_DRIVER_ORPHANS: c->po.flags |= PLAN_DRIVER_ORPHANS; break;
		case OPT_HOLLOW: c->po.flags |= PLAN_HOLLOW_FILES; break;
		case OPT_DEAD: c->po.flags |= PLAN_DEAD_CONTAINERS; break;
		case OPT_UNREF: c->po.flags |= PLAN_UNREFERENCED_LAYERS; break;
		case OPT_BAD: c->po.flags |= PLAN_BAD_FILES; break;
		case OPT_BUILDKIT: c->po.flags |= PLAN_BUILDKIT_CACHE; break;
		case OPT_BUILDKIT_UNREF: c->po.flags |= PLAN_BUILDKIT_UNREFERENCED; break;
		case OPT_ALL:
			c->po.flags |= PLAN_DRIVER_ORPHANS | PLAN_HOLLOW_FILES | PLAN_DEAD_CONTAINERS |
				       PLAN_UNREFERENCED_LAYERS | PLAN_BAD_FILES;
			break;
		case OPT_DEVICE: oom = push_target(&c->dev, optarg); break;
		case OPT_CONTAINER: oom = push_target(&c->con, optarg); break;
		case OPT_IMAGE: oom = push_target(&c->img, optarg); break;
		default:
			return dmr_cli_bad_option(c->cli, "clean", ch, argv);
		}
		if (oom) {
			dmr_cli_error(c->cli, "out of memory");
			return DMR_EXIT_USAGE;
		}
	}
	if (optind < argc)
		return dmr_cli_usage_error(c->cli, "clean", "unexpected argument '%s'", argv[optind]);
	if (c->dev.n || c->con.n || c->img.n) {
		if (c->po.flags)
			return dmr_cli_usage_error(c->cli, "clean", "explicit targets and class options do not mix: "
						   "run them one after the other");
		c->po.flags |= PLAN_NO_DEFAULTS;
	}
	return DMR_EXIT_OK;
}

int cmd_clean(struct dmr_cli *cli, int argc, char **argv)
{
	struct clean c = { .cli = cli, .lock_fd = -1 };
	int rc = parse(&c, argc, argv);
	if (rc != DMR_EXIT_OK)
		goto out;
	rc = load(&c);
	if (rc != DMR_EXIT_OK)
		goto out;
	if (c.st.layout == DK_LAYOUT_NONE && !(c.po.flags & PLAN_NO_DEFAULTS)) {
		dmr_cli_error(cli, "%s: no Docker driver home (devicemapper/) here: name the devices to remove "
			      "with --device", cli->root);
		rc = DMR_EXIT_USAGE;
		goto out;
	}
	if (c.pl.class_refused) {
		struct dmr_err e = { 0 };
		snprintf(e.msg, sizeof(e.msg), "%s", c.pl.class_refused);
		if (cli->json)
			print_json(&c, "refused", &e);
		dmr_cli_error(cli, "%s", c.pl.class_refused);
		rc = DMR_EXIT_REFUSED;
		goto out;
	}
	if (cli->json && (c.dry_run || plan_empty(&c.pl) || c.pl.refused))
		print_json(&c, c.pl.refused ? "refused" : c.dry_run ? "planned" : "nothing-to-do", NULL);
	else if (!cli->json && !cli->quiet)
		print_plan(&c);
	if (c.pl.refused) {
		dmr_cli_error(cli, "refused: a target cannot be removed (see 'left alone' above)");
		rc = DMR_EXIT_REFUSED;
		goto out;
	}
	if (plan_empty(&c.pl) || c.dry_run) {
		rc = dmr_cli_finish_stdout(cli, DMR_EXIT_OK);
		goto out;
	}
	rc = dmr_guard_lock(cli, &c.lock_fd);
	if (rc == DMR_EXIT_OK)
		rc = dmr_guard_live(cli, c.st.prefix, c.force, "change");
	if (rc == DMR_EXIT_OK)
		rc = dmr_guard_confirm(cli, c.yes, "Make these changes?");
	if (rc == DMR_EXIT_OK) {
		fflush(stdout);
		rc = apply(&c);
	}
	rc = dmr_cli_finish_stdout(cli, rc);
out:
	if (c.bk)
		bk_close(c.bk);
	if (c.lock_fd >= 0)
		live_unlock(c.lock_fd);
	plan_free(&c.pl);
	inv_free(&c.inv);
	tm_usage_free(&c.u);
	if (c.view_open)
		dmr_pool_view_close(&c.v);
	dk_state_free(&c.st);
	free(c.dev.v);
	free(c.con.v);
	free(c.img.v);
	return rc;
}
