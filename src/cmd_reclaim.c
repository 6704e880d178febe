/* dmrescue reclaim: give free pool space back to the host.
 *
 * 1. Read the pool (read-only), refuse a damaged one (our checker), list
 *    the data blocks free in the space map AND mapped by no device; a
 *    block the space map calls free that a device maps is an inconsistency:
 *    refuse, punch nothing.
 * 2. Turn them into byte runs, cut to the pool's size and the file's end,
 *    keep only what the data file really has allocated (SEEK_DATA/
 *    SEEK_HOLE, FIEMAP), shrunk to whole host filesystem blocks: the exact
 *    bytes the host gets back. The same for the metadata file's free
 *    blocks. --dig-zeroes adds mapped blocks that read as all zeros.
 * 3. Print the plan; --dry-run stops here. Guards and confirmation as for
 *    clean (guard.c).
 * 4. Mark the Docker root as reclaimed (backups made before can no longer
 *    be undone: the blocks they map may be gone), then punch: fallocate
 *    PUNCH_HOLE per run on a file, BLKDISCARD per run on a block device.
 *
 * Every byte punched is free or already zero, so a crash anywhere leaves a
 * valid pool; running reclaim again finishes the job. */
#include "config.h"
#include "backup.h"
#include "cli.h"
#include "docker/state.h"
#include "guard.h"
#include "live.h"
#include "loopfile/aioread.h"
#include "loopfile/punch.h"
#include "thinmeta/freespace.h"
#include "thinmeta/spacemap.h"
#include "thinmeta/usage.h"
#include "util/fmt.h"
#include "util/grow.h"
#include "util/jsonc.h"
#include "util/progress.h"
#include "util/safeio.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define RECLAIM_SCHEMA "dmrescue.reclaim/1"
#define LARGEST 5

static void reclaim_usage(FILE *out)
{
	fputs("Usage:\n"
	      " dmrescue reclaim [options]\n"
	      "\n"
	      "Give the pool's free space back to the host, with Docker stopped: punch\n"
	      "holes in the data file for every data block that is free in the pool and\n"
	      "still allocated on the host (discards on a block device), and the same for\n"
	      "the metadata file's free blocks. Nothing in use is touched. A plan is\n"
	      "printed first; nothing changes without --yes (or y on a terminal).\n"
	      "\n"
	      "Options:\n"
	      " -n, --dry-run        print what the host would get back, change nothing\n"
	      " -y, --yes            do not ask\n"
	      "     --force          go on while dockerd/podman seems to run (never while\n"
	      "                      the pool, a loop device or a mount is live)\n"
	      "     --dig-zeroes     also punch mapped data blocks that are all zeros (reads\n"
	      "                      every allocated mapped block; the content stays the same)\n"
	      "     --data-only      leave the metadata file alone\n"
	      "     --json           the plan and the result as one JSON document\n"
	      "                      (schema " RECLAIM_SCHEMA ")\n"
	      " -v, --verbose        progress lines even when stderr is not a terminal\n"
	      "\n"
	      "Exit status: 0 done (or nothing to do), 2 the pool is damaged or\n"
	      "inconsistent, 3 input unreadable, 4 a punch or discard failed, 5 refused\n"
	      "(live pool, not confirmed, no hole punching or discard support), 64 usage.\n", out);
}

enum { OPT_FORCE = OPT_CMD_BASE, OPT_DIG, OPT_DATA_ONLY };

/* One file to give space back from: the data file or the metadata file. */
struct target {
	const char *role; /* "data", "metadata" */
	const char *path;
	int present;      /* planned */
	int blockdev;
	const char *skipped; /* why it is left alone (NULL: it is not) */
	uint64_t size;       /* bytes (file size or device size) */
	uint64_t limit;      /* nothing at or beyond: min(pool size, size) */
	uint64_t block_bytes;
	uint64_t nr_blocks;
	uint64_t free_blocks, free_block_runs;
	uint64_t alloc_before, alloc_after; /* st_blocks * 512 (files) */
	enum lf_extent_method method;
	struct lf_discard disc;
	struct lf_runs runs; /* what will be punched */
	uint64_t zero_blocks; /* --dig-zeroes: mapped blocks found all zero (data only) */
	uint64_t zero_blocks_read;
	struct lf_punch_stats done;
	int punched; /* attempted */
};

struct reclaim {
	struct dmr_cli *cli;
	int dry_run, yes, force, dig, data_only;
	int lock_fd;
	char prefix_buf[256];
	const char *prefix;
	struct target data, meta;
	double seconds;
};

/* --- reading: what is free --- */

struct collect {
	struct lf_runs *runs;
	uint64_t bs;
	uint64_t nr_runs;
	int oom;
};

static void collect_run(void *ctx, uint64_t block, uint64_t len)
{
	struct collect *c = ctx;
	c->nr_runs++;
	if (lf_runs_push(c->runs, block * c->bs, len * c->bs))
		c->oom = 1;
}


/* Opens t->path read-only and fills size/kind. Returns an exit code. */
static int open_target(struct reclaim *rc, struct target *t, int *fd)
{
	*fd = open(t->path, O_RDONLY | O_CLOEXEC);
	struct stat s;
	if (*fd < 0 || fstat(*fd, &s) < 0) {
		dmr_cli_error(rc->cli, "%s: %s", t->path, strerror(errno));
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		return DMR_EXIT_INPUT;
	}
	t->blockdev = S_ISBLK(s.st_mode);
	if (t->blockdev) {
		uint64_t sz = 0;
		if (ioctl(*fd, BLKGETSIZE64, &sz) < 0) {
			dmr_cli_error(rc->cli, "%s: cannot read the device size: %s", t->path, strerror(errno));
			return DMR_EXIT_INPUT;
		}
		t->size = sz;
	} else if (S_ISREG(s.st_mode)) {
		t->size = (uint64_t)s.st_size;
		t->alloc_before = (uint64_t)s.st_blocks * 512u;
	} else {
		dmr_cli_error(rc->cli, "%s: neither a regular file nor a block device", t->path);
		return DMR_EXIT_INPUT;
	}
	t->present = 1;
	t->limit = t->nr_blocks * t->block_bytes;
	if (t->size < t->limit)
		t->limit = t->size;
	return DMR_EXIT_OK;
}

/* want (free byte runs) -> t->runs: what punching would really give back. */
static int plan_target(struct reclaim *rc, struct target *t, int fd, struct lf_runs *want)
{
	struct dmr_err err = { 0 };
	if (t->blockdev) {
		/* A device has no holes to find: every free run is discarded,
		 * cut to whole granules. */
		if (lf_discard_limits("", fd, &t->disc, &err))
			return dmr_cli_fail(rc->cli, &err);
		if (!t->disc.max_bytes && want->n) {
			dmr_cli_error(rc->cli, "%s: the device does not support discard (queue/discard_max_bytes is 0): "
				      "its free blocks cannot be given back", t->path);
			return DMR_EXIT_REFUSED;
		}
		struct lf_runs cut = { 0 };
		for (size_t i = 0; i < want->n; i++) {
			uint64_t s = want->v[i].off, e = s + want->v[i].len;
			if (e > t->limit)
				e = t->limit;
			if (e > s && lf_runs_push(&cut, s, e - s)) {
				lf_runs_free(&cut);
				return dmr_cli_error(rc->cli, "out of memory"), DMR_EXIT_INPUT;
			}
		}
		int r = lf_runs_granular(&cut, &t->disc, &t->runs);
		lf_runs_free(&cut);
		if (r)
			return dmr_cli_error(rc->cli, "out of memory"), DMR_EXIT_INPUT;
		return DMR_EXIT_OK;
	}
	if (lf_runs_allocated(fd, want, t->limit, lf_fs_block(fd), &t->runs, &t->method, &err)) {
		dmr_err_prefix(&err, "%s", t->path);
		return dmr_cli_fail(rc->cli, &err);
	}
	return DMR_EXIT_OK;
}

/* --dig-zeroes: reads every allocated byte of the blocks in use (not free)
 * and adds the allocated parts of the blocks that are all zeros to t->runs.
 * A hole reads as zeros, so punching them changes no content. */
struct dig {
	uint64_t bs;
	uint8_t *nonzero; /* one bit per data block */
	struct progress pg;
	uint64_t done, total;
};

static int dig_piece(void *ctx, const struct lf_read_piece *p, struct dmr_err *err)
{
	(void)err;
	struct dig *d = ctx;
	if (!lf_is_zero(p->buf, p->len)) {
		/* A piece never spans two blocks: the ranges are cut at block
		 * boundaries and chunks are at most one block. */
		uint64_t b = p->off / d->bs;
		d->nonzero[b / 8] |= (uint8_t)(1u << (b % 8));
	}
	d->done += p->len;
	progress_update(&d->pg, d->done, d->total);
	return 0;
}

static int dig_zeroes(struct reclaim *rc, struct target *t, int fd, const struct lf_runs *free_runs)
{
	struct dmr_cli *cli = rc->cli;
	struct dmr_err err = { 0 };
	struct lf_runs used = { 0 }, alloc = { 0 }, zero = { 0 }, all = { 0 };
	struct lf_read_range *rr = NULL;
	struct lf_reader *rd = NULL;
	struct dig d = { .bs = t->block_bytes };
	int code = DMR_EXIT_INPUT;
	if (lf_runs_complement(free_runs, t->limit, &used)) {
		dmr_cli_error(cli, "out of memory listing the blocks in use");
		goto out;
	}
	if (lf_runs_allocated(fd, &used, t->limit, lf_fs_block(fd), &alloc, NULL, &err)) {
		dmr_err_prefix(&err, "%s", t->path);
		code = dmr_cli_fail(cli, &err);
		goto out;
	}
	/* Cut at block boundaries, so each piece read belongs to one block. */
	size_t n = 0, cap = 0;
	uint64_t last_block = UINT64_MAX;
	for (size_t i = 0; i < alloc.n; i++) {
		uint64_t off = alloc.v[i].off, end = off + alloc.v[i].len;
		while (off < end) {
			uint64_t b = off / t->block_bytes;
			uint64_t e = (b + 1) * t->block_bytes < end ? (b + 1) * t->block_bytes : end;
			struct lf_read_range *x = dmr_grow(rr, &cap, n, sizeof(*x));
			if (!x) {
				dmr_cli_error(cli, "out of memory listing the blocks to read");
				goto out;
			}
			rr = x;
			rr[n].off = off;
			rr[n++].len = e - off;
			if (b != last_block)
				t->zero_blocks_read++;
			last_block = b;
			off = e;
		}
	}
	d.nonzero = calloc(t->nr_blocks / 8 + 1, 1);
	if (!d.nonzero) {
		dmr_cli_error(cli, "out of memory for %" PRIu64 " blocks", t->nr_blocks);
		goto out;
	}
	size_t chunk = t->block_bytes < LF_READ_CHUNK_DEFAULT ? (size_t)t->block_bytes : LF_READ_CHUNK_DEFAULT;
	struct lf_reader_opts o = { .chunk_size = chunk };
	if (lf_reader_open(&rd, t->path, &o, &err)) {
		code = dmr_cli_fail(cli, &err);
		goto out;
	}
	if (cli->verbose)
		fprintf(stderr, "reading %s of blocks in use with %s (depth %u)%s%s\n", "the allocated parts",
			lf_reader_method(rd), lf_reader_depth(rd), lf_reader_note(rd) ? ": " : "",
			lf_reader_note(rd) ? lf_reader_note(rd) : "");
	d.total = alloc.bytes;
	progress_init(&d.pg, stderr, "reading blocks in use", cli->verbose, cli->quiet || cli->json);
	int r = lf_read_ranges(rd, rr, n, dig_piece, &d, &err);
	progress_end(&d.pg);
	if (r) {
		code = dmr_cli_fail(cli, &err);
		goto out;
	}
	last_block = UINT64_MAX;
	for (size_t i = 0; i < n; i++) {
		uint64_t b = rr[i].off / t->block_bytes;
		if (d.nonzero[b / 8] & (1u << (b % 8)))
			continue;
		if (b != last_block)
			t->zero_blocks++;
		last_block = b;
		if (lf_runs_push(&zero, rr[i].off, rr[i].len)) {
			dmr_cli_error(cli, "out of memory");
			goto out;
		}
	}
	if (lf_runs_union(&t->runs, &zero, &all)) {
		dmr_cli_error(cli, "out of memory");
		goto out;
	}
	lf_runs_free(&t->runs);
	t->runs = all;
	code = DMR_EXIT_OK;
out:
	if (rd)
		lf_reader_close(rd);
	free(d.nonzero);
	free(rr);
	lf_runs_free(&used);
	lf_runs_free(&alloc);
	lf_runs_free(&zero);
	return code;
}

/* Reads the pool and plans both files. Returns an exit code. */
static int load(struct reclaim *rc)
{
	struct dmr_cli *cli = rc->cli;
	struct dmr_err err = { 0 };
	const char *meta = dmr_cli_metadata_path(cli);
	int r = dmr_guard_pool_sound(cli, "reclaim space from");
	if (r != DMR_EXIT_OK)
		return r;

	struct dk_state st;
	memset(&st, 0, sizeof(st));
	if (dk_state_read(cli->root, &st, &err) == 0 && st.prefix) {
		snprintf(rc->prefix_buf, sizeof(rc->prefix_buf), "%s", st.prefix);
		rc->prefix = rc->prefix_buf;
	}
	dk_state_free(&st);

	struct dmr_pool_view v;
	struct tm_usage u;
	struct tm_space_map dsm, msm;
	memset(&u, 0, sizeof(u));
	memset(&dsm, 0, sizeof(dsm));
	memset(&msm, 0, sizeof(msm));
	struct lf_runs want = { 0 }, mwant = { 0 };
	int fd = -1, rcode = dmr_pool_view_open(cli, &v, 0, 0);
	if (rcode == DMR_EXIT_OK)
		rcode = dmr_pool_view_roots(&v, NULL, NULL, 0);
	if (rcode != DMR_EXIT_OK)
		goto out;
	const struct tm_superblock *sb = &v.pool->sb;
	if (sb->flags & TM_SB_FLAG_NEEDS_CHECK) {
		dmr_cli_error(cli, "%s: needs_check is set: run thin_check (or thin_repair into a new file) first", meta);
		rcode = DMR_EXIT_REFUSED;
		goto out;
	}
	if (tm_usage_compute(v.pool, v.roots, v.nroots, sb->data_sm.nr_blocks, dmr_pool_view_usage_damage, &v, &u, &err) ||
	    tm_sm_read(v.pool, 0, &dsm, NULL, NULL, &err) || tm_sm_read(v.pool, 1, &msm, NULL, NULL, &err)) {
		rcode = dmr_cli_fail(cli, &err);
		goto out;
	}
	if (v.log.count) {
		dmr_cli_error(cli, "refusing to punch anything in a damaged pool: run 'dmrescue check'");
		rcode = DMR_EXIT_DAMAGE;
		goto out;
	}

	/* The data file. */
	struct target *t = &rc->data;
	t->block_bytes = (uint64_t)sb->data_block_size * 512u;
	t->nr_blocks = dsm.nr_blocks;
	struct collect c = { .runs = &want, .bs = t->block_bytes };
	struct tm_free_stats fs;
	tm_free_runs(&dsm, &u.map, collect_run, &c, &fs);
	if (c.oom) {
		dmr_cli_error(cli, "out of memory listing the free blocks");
		rcode = DMR_EXIT_INPUT;
		goto out;
	}
	if (fs.free_but_mapped) {
		dmr_cli_error(cli, "%s: data block %" PRIu64 " is free in the space map but a device maps it (%" PRIu64
			      " such block%s): the metadata is inconsistent, nothing was punched; run 'dmrescue check'",
			      meta, fs.first_free_but_mapped, fs.free_but_mapped, fs.free_but_mapped == 1 ? "" : "s");
		rcode = DMR_EXIT_DAMAGE;
		goto out;
	}
	t->free_blocks = fs.free_blocks;
	t->free_block_runs = c.nr_runs;
	if ((rcode = open_target(rc, t, &fd)) != DMR_EXIT_OK)
		goto out;
	if (t->blockdev && rc->dig) {
		dmr_cli_error(cli, "%s: --dig-zeroes needs a data file: a discarded block of a device is not "
			      "guaranteed to read back as zeros", t->path);
		rcode = DMR_EXIT_REFUSED;
		goto out;
	}
	if ((rcode = plan_target(rc, t, fd, &want)) != DMR_EXIT_OK)
		goto out;
	if (rc->dig && (rcode = dig_zeroes(rc, t, fd, &want)) != DMR_EXIT_OK)
		goto out;
	close(fd);
	fd = -1;

	/* The metadata file: its free 4 KiB blocks. */
	t = &rc->meta;
	t->block_bytes = TM_BLOCK_SIZE;
	t->nr_blocks = msm.nr_blocks;
	if (rc->data_only) {
		t->skipped = "--data-only";
		goto out;
	}
	if ((rcode = open_target(rc, t, &fd)) != DMR_EXIT_OK)
		goto out;
	if (t->blockdev) {
		t->skipped = "a block device (its free blocks are not discarded)";
		goto out;
	}
	for (uint64_t b = 0; b < msm.nr_blocks; b++) {
		if (tm_sm_count(&msm, b))
			continue;
		t->free_blocks++;
		if (!mwant.n || mwant.v[mwant.n - 1].off + mwant.v[mwant.n - 1].len != b * TM_BLOCK_SIZE)
			t->free_block_runs++;
		if (lf_runs_push(&mwant, b * TM_BLOCK_SIZE, TM_BLOCK_SIZE)) {
			dmr_cli_error(cli, "out of memory listing the free metadata blocks");
			rcode = DMR_EXIT_INPUT;
			goto out;
		}
	}
	rcode = plan_target(rc, t, fd, &mwant);
out:
	if (fd >= 0)
		close(fd);
	lf_runs_free(&want);
	lf_runs_free(&mwant);
	tm_sm_free(&dsm);
	tm_sm_free(&msm);
	tm_usage_free(&u);
	dmr_pool_view_close(&v);
	return rcode;
}

/* --- the plan, for people and as JSON --- */

static const char *method_name(const struct target *t)
{
	if (t->blockdev)
		return "discard";
	switch (t->method) {
	case LF_EXT_SEEK: return "seek_data";
	case LF_EXT_FIEMAP: return "fiemap";
	case LF_EXT_ASSUME_ALLOCATED: return "assumed-allocated";
	}
	return "?";
}

static void print_target(const struct reclaim *rc, const struct target *t)
{
	char a[32], b[32], c[32];
	if (!t->present && !t->skipped)
		return;
	printf("  %s %s: ", t->role, t->path);
	if (t->skipped && !t->present) {
		printf("left alone (%s)\n", t->skipped);
		return;
	}
	if (t->blockdev)
		printf("block device, %s\n", fmt_human(t->size, a));
	else
		printf("%s, %s allocated on the host\n", fmt_human(t->size, a), fmt_human(t->alloc_before, b));
	if (t->skipped) {
		printf("    left alone (%s)\n", t->skipped);
		return;
	}
	printf("    free in the pool: %" PRIu64 " of %" PRIu64 " blocks of %s, in %" PRIu64 " run%s\n", t->free_blocks,
	       t->nr_blocks, fmt_human(t->block_bytes, a), t->free_block_runs, t->free_block_runs == 1 ? "" : "s");
	if (t->zero_blocks_read)
		printf("    all-zero mapped blocks (--dig-zeroes): %" PRIu64 " of %" PRIu64 " read\n", t->zero_blocks,
		       t->zero_blocks_read);
	printf("    %s %s in %zu run%s (%s)\n", rc->dry_run ? "would give back" : "to give back",
	       fmt_human(t->runs.bytes, a), t->runs.n, t->runs.n == 1 ? "" : "s",
	       t->blockdev ? "BLKDISCARD, whole granules" : "allocated parts only");
	struct lf_run top[LARGEST];
	size_t n;
	lf_runs_largest(&t->runs, top, LARGEST, &n);
	for (size_t i = 0; i < n; i++)
		printf("    %s %s at offset %s\n", i ? "          " : "largest:", fmt_human(top[i].len, b),
		       fmt_human(top[i].off, c));
}

static void print_plan(const struct reclaim *rc)
{
	printf("Reclaim for %s (pool %s)\n", rc->cli->root, dmr_cli_metadata_path(rc->cli));
	print_target(rc, &rc->data);
	print_target(rc, &rc->meta);
	if (!rc->data.runs.n && !rc->meta.runs.n)
		printf("  nothing to give back: every free block is a hole already\n");
}

static json_object *runs_json(const struct lf_runs *r)
{
	struct lf_run top[LARGEST];
	size_t n;
	lf_runs_largest(r, top, LARGEST, &n);
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "offset", json_object_new_int64((int64_t)top[i].off));
		json_object_object_add(o, "length", json_object_new_int64((int64_t)top[i].len));
		json_object_array_add(a, o);
	}
	return a;
}

static json_object *target_json(const struct reclaim *rc, const struct target *t)
{
	if (!t->present && !t->skipped)
		return json_object_new_null();
	json_object *o = json_object_new_object();
	json_object_object_add(o, "path", json_object_new_string(t->path));
	json_object_object_add(o, "kind", json_object_new_string(t->blockdev ? "block-device" : "file"));
	if (t->skipped) {
		json_object_object_add(o, "skipped", json_object_new_string(t->skipped));
		if (!t->present)
			return o;
	}
	json_object_object_add(o, "size", json_object_new_int64((int64_t)t->size));
	json_object_object_add(o, "block_bytes", json_object_new_int64((int64_t)t->block_bytes));
	json_object_object_add(o, "nr_blocks", json_object_new_int64((int64_t)t->nr_blocks));
	json_object_object_add(o, "free_blocks", json_object_new_int64((int64_t)t->free_blocks));
	json_object_object_add(o, "free_block_runs", json_object_new_int64((int64_t)t->free_block_runs));
	if (t == &rc->data && rc->dig) {
		json_object_object_add(o, "zero_blocks_read", json_object_new_int64((int64_t)t->zero_blocks_read));
		json_object_object_add(o, "zero_blocks", json_object_new_int64((int64_t)t->zero_blocks));
	}
	json_object_object_add(o, "method", json_object_new_string(method_name(t)));
	json_object_object_add(o, "runs", json_object_new_int64((int64_t)t->runs.n));
	json_object_object_add(o, "bytes", json_object_new_int64((int64_t)t->runs.bytes));
	json_object_object_add(o, "largest_runs", runs_json(&t->runs));
	if (!t->blockdev)
		json_object_object_add(o, "allocated_before", json_object_new_int64((int64_t)t->alloc_before));
	if (t->punched) {
		json_object_object_add(o, "calls", json_object_new_int64((int64_t)t->done.calls));
		json_object_object_add(o, "bytes_returned", json_object_new_int64((int64_t)t->done.bytes));
		if (!t->blockdev)
			json_object_object_add(o, "allocated_after", json_object_new_int64((int64_t)t->alloc_after));
	}
	return o;
}

static void print_json(const struct reclaim *rc, const char *state, const struct dmr_err *err)
{
	json_object *root = json_object_new_object();
	json_object_object_add(root, "schema", json_object_new_string(RECLAIM_SCHEMA));
	json_object_object_add(root, "root", json_object_new_string(rc->cli->root));
	json_object_object_add(root, "dry_run", json_object_new_boolean(rc->dry_run));
	json_object_object_add(root, "dig_zeroes", json_object_new_boolean(rc->dig));
	json_object_object_add(root, "state", json_object_new_string(state));
	if (err && err->msg[0])
		json_object_object_add(root, "error", json_object_new_string(err->msg));
	json_object_object_add(root, "data", target_json(rc, &rc->data));
	json_object_object_add(root, "metadata", target_json(rc, &rc->meta));
	json_object_object_add(root, "seconds", json_object_new_double(rc->seconds));
	dmr_cli_put_json(root);
}

/* --- doing it --- */

static int punch_target(struct reclaim *rc, struct target *t, struct dmr_err *err)
{
	if (!t->runs.n)
		return 0;
	int fd = open(t->path, (t->blockdev ? O_WRONLY : O_RDWR) | O_CLOEXEC);
	if (fd < 0)
		return dmr_err_set(err, DMR_EIO, "opening %s for writing: %s", t->path, strerror(errno));
	struct progress pg;
	char label[64];
	snprintf(label, sizeof(label), "reclaim %s", t->role);
	progress_init(&pg, stderr, label, rc->cli->verbose, rc->cli->quiet || rc->cli->json);
	t->punched = 1;
	int r = lf_punch_runs(fd, t->blockdev, &t->disc, &t->runs, progress_update, &pg, &t->done, t->path, err);
	progress_end(&pg);
	if (!r && !t->blockdev)
		r = sio_fsync(fd, t->path, err);
	struct stat s;
	if (!t->blockdev && fstat(fd, &s) == 0)
		t->alloc_after = (uint64_t)s.st_blocks * 512u;
	close(fd);
	return r;
}

static int apply(struct reclaim *rc)
{
	struct dmr_cli *cli = rc->cli;
	struct dmr_err err = { 0 };
	double t0 = progress_now();
	/* Backups taken before this point map blocks that are about to go:
	 * 'dmrescue undo' must know (backup.c). */
	int r = 0;
	const struct target *ts[] = { &rc->data, &rc->meta };
	for (size_t i = 0; i < 2 && !r; i++) {
		if (!ts[i]->runs.n || ts[i]->blockdev)
			continue;
		int fd = open(ts[i]->path, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			r = dmr_err_set(&err, DMR_EIO, "opening %s for writing: %s", ts[i]->path, strerror(errno));
			break;
		}
		r = lf_punch_probe(fd, ts[i]->path, &err);
		close(fd);
	}
	if (!r)
		r = bk_reclaim_bump(cli->root, &err);
	if (r && err.code == DMR_ENOENT)
		r = 0; /* no Docker root: no backups of it either */
	if (!r)
		r = punch_target(rc, &rc->data, &err);
	if (!r)
		r = punch_target(rc, &rc->meta, &err);
	if (!r && rc->meta.punched) {
		/* Cheap insurance: the metadata must read exactly as before. */
		r = dmr_guard_our_check(dmr_cli_metadata_path(cli), NULL, &err);
		if (r)
			dmr_err_prefix(&err, "after punching the metadata file");
	}
	rc->seconds = progress_now() - t0;
	if (r) {
		if (cli->json)
			print_json(rc, "failed", &err);
		dmr_cli_error(cli, "%s", err.msg);
		if (r != DMR_ECORRUPT && (rc->data.punched || rc->meta.punched))
			dmr_cli_error(cli, "only free blocks were punched (%" PRIu64 " call%s): the pool is valid; run "
				      "reclaim again once the cause is fixed", rc->data.done.calls + rc->meta.done.calls,
				      rc->data.done.calls + rc->meta.done.calls == 1 ? "" : "s");
		return r == DMR_EUNSUPP ? DMR_EXIT_REFUSED : r == DMR_ECORRUPT ? DMR_EXIT_DAMAGE : DMR_EXIT_OUTPUT;
	}
	if (cli->json) {
		print_json(rc, "done", NULL);
		return DMR_EXIT_OK;
	}
	char a[32], b[32], c[32];
	for (size_t i = 0; i < 2; i++) {
		const struct target *t = ts[i];
		if (!t->punched)
			continue;
		if (t->blockdev)
			printf("%s: discarded %s in %" PRIu64 " call%s.\n", t->role, fmt_human(t->done.bytes, a),
			       t->done.calls, t->done.calls == 1 ? "" : "s");
		else
			printf("%s: gave back %s in %" PRIu64 " call%s; allocated %s -> %s.\n", t->role,
			       fmt_human(t->done.bytes, a), t->done.calls, t->done.calls == 1 ? "" : "s",
			       fmt_human(t->alloc_before, b), fmt_human(t->alloc_after, c));
	}
	printf("Done in %.2f s.\n", rc->seconds);
	return DMR_EXIT_OK;
}

static int parse(struct reclaim *rc, int argc, char **argv)
{
	static const struct option longopts[] = {
		DMR_GLOBAL_LONGOPTS,
		{ "dry-run", no_argument, NULL, 'n' },
		{ "yes", no_argument, NULL, 'y' },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "dig-zeroes", no_argument, NULL, OPT_DIG },
		{ "data-only", no_argument, NULL, OPT_DATA_ONLY },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, DMR_GLOBAL_SHORTOPTS "ny", longopts, NULL)) != -1) {
		if (dmr_cli_global_opt(rc->cli, ch, optarg, reclaim_usage))
			continue;
		switch (ch) {
		case 'n': rc->dry_run = 1; break;
		case 'y': rc->yes = 1; break;
		case OPT_FORCE: rc->force = 1; break;
		case OPT_DIG: rc->dig = 1; break;
		case OPT_DATA_ONLY: rc->data_only = 1; break;
		default:
			return dmr_cli_bad_option(rc->cli, "reclaim", ch, argv);
		}
	}
	if (optind < argc)
		return dmr_cli_usage_error(rc->cli, "reclaim", "unexpected argument '%s'", argv[optind]);
	return DMR_EXIT_OK;
}

int cmd_reclaim(struct dmr_cli *cli, int argc, char **argv)
{
	struct reclaim rc = { .cli = cli, .lock_fd = -1 };
	rc.data.role = "data";
	rc.meta.role = "metadata";
	int code = parse(&rc, argc, argv);
	if (code != DMR_EXIT_OK)
		goto out;
	rc.data.path = dmr_cli_data_path(cli);
	rc.meta.path = dmr_cli_metadata_path(cli);
	/* The lock first: nothing may change between the plan and the punches. */
	if (!rc.dry_run && (code = dmr_guard_lock(cli, &rc.lock_fd)) != DMR_EXIT_OK)
		goto out;
	code = load(&rc);
	if (code != DMR_EXIT_OK)
		goto out;
	int empty = !rc.data.runs.n && !rc.meta.runs.n;
	if (cli->json && (rc.dry_run || empty))
		print_json(&rc, rc.dry_run ? "planned" : "nothing-to-do", NULL);
	else if (!cli->json && !cli->quiet)
		print_plan(&rc);
	if (empty || rc.dry_run) {
		code = dmr_cli_finish_stdout(cli, DMR_EXIT_OK);
		goto out;
	}
	code = dmr_guard_live(cli, rc.prefix, rc.force, "change");
	if (code == DMR_EXIT_OK)
		code = dmr_guard_confirm(cli, rc.yes, "Punch these holes?");
	if (code == DMR_EXIT_OK) {
		fflush(stdout);
		code = apply(&rc);
	}
	code = dmr_cli_finish_stdout(cli, code);
out:
	if (rc.lock_fd >= 0)
		live_unlock(rc.lock_fd);
	lf_runs_free(&rc.data.runs);
	lf_runs_free(&rc.meta.runs);
	return code;
}
