/* dmrescue export: a thin device's virtual contents as a sparse raw image.
 *
 * 1. Resolve TARGET (target.c) against Docker's files, read-only: a thin
 *    id, a device hash, a container or an image; find the device in the
 *    pool and collect its mappings (damage is reported and walked past:
 *    what it loses stays a hole).
 * 2. The image's size: Docker's size field, or the highest mapped block.
 * 3. Create a dot-named temporary file next to FILE, size it, copy the
 *    mapped extents with the batched reader (loopfile/imagecopy.c), pwrite
 *    through safeio; unmapped and all-zero parts stay holes. fsync, read it
 *    back for the SHA-256, rename over FILE (only with --force when FILE
 *    exists), fsync the directory.
 *
 * Every input is opened read-only; the only file written is FILE. */
#include "config.h"
#include "cli.h"
#include "docker/state.h"
#include "loopfile/aioread.h"
#include "loopfile/imagecopy.h"
#include "target.h"
#include "thinmeta/runlist.h"
#include "util/fmt.h"
#include "util/jsonc.h"
#include "util/progress.h"
#include "util/safeio.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXPORT_SCHEMA "dmrescue.export/1"

static void export_usage(FILE *out)
{
	fputs("Usage:\n"
	      " dmrescue export [options] TARGET -o FILE\n"
	      "\n"
	      "Write a thin device's virtual contents to FILE as a sparse raw image that\n"
	      "mounts with 'mount -o ro,loop' (plus nouuid for XFS): unmapped blocks are\n"
	      "holes, mapped ones are read from the pool's data file. Prints the image's\n"
	      "SHA-256 (what sha256sum FILE gives) and the bytes written. Every input is\n"
	      "opened read-only.\n"
	      "\n"
	      "TARGET: a thin id (a number), a device hash (or 'base'), a container name\n"
	      "or id (its read-write device), an image reference, id or chain id (its top\n"
	      "layer), or a layer's chain id.\n"
	      "\n"
	      "Options:\n"
	      " -o, --output FILE    the image to write (required)\n"
	      "     --force          replace FILE if it exists\n"
	      "     --init           a container's -init device instead\n"
	      "     --layer N        an image's N-th layer from the bottom (1 = the bottom)\n"
	      "     --no-checksum    skip the SHA-256 (reading back a big sparse image)\n"
	      "     --json           the result as one JSON document (schema " EXPORT_SCHEMA ")\n"
	      " -v, --verbose        progress lines even when stderr is not a terminal\n"
	      "\n"
	      "Exit status: 0 written, 2 the device's mappings are damaged (the image was\n"
	      "written with holes where they were lost), 3 input unreadable or no such\n"
	      "target, 4 FILE could not be written, 5 FILE exists (see --force), 64 usage.\n", out);
}

enum { OPT_FORCE = OPT_CMD_BASE, OPT_INIT, OPT_LAYER, OPT_NO_CHECKSUM };

struct export {
	struct dmr_cli *cli;
	const char *arg, *output;
	int force, no_checksum;
	struct dmr_target_opts topts;
	struct dmr_target t; /* its pointers go with Docker's state: */
	char hash[160];      /* t.hash kept ("" the base) */
	int has_hash;
	char file[200];      /* t.file->name kept */
	int docker; /* Docker's files were read */
	const char *size_source; /* "docker-file", "highest-mapped" */
	uint64_t size, block_bytes, mapped_blocks, extents;
	struct lf_copy_stats cs;
	const char *method;
	char sha[SHA256_HEX_LEN + 1];
	unsigned long damage;
	double seconds;
};

static int parse(struct export *ex, int argc, char **argv)
{
	static const struct option longopts[] = {
		DMR_GLOBAL_LONGOPTS,
		{ "output", required_argument, NULL, 'o' },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "init", no_argument, NULL, OPT_INIT },
		{ "layer", required_argument, NULL, OPT_LAYER },
		{ "no-checksum", no_argument, NULL, OPT_NO_CHECKSUM },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, DMR_GLOBAL_SHORTOPTS "o:", longopts, NULL)) != -1) {
		if (dmr_cli_global_opt(ex->cli, ch, optarg, export_usage))
			continue;
		switch (ch) {
		case 'o': ex->output = optarg; break;
		case OPT_FORCE: ex->force = 1; break;
		case OPT_INIT: ex->topts.init = 1; break;
		case OPT_LAYER: {
			char *end;
			errno = 0;
			unsigned long n = strtoul(optarg, &end, 10);
			if (errno || *end || end == optarg || n == 0 || n > 10000 || optarg[0] == '-')
				return dmr_cli_usage_error(ex->cli, "export", "--layer wants a number from 1, not '%s'",
							   optarg);
			ex->topts.layer = (unsigned)n;
			break;
		}
		case OPT_NO_CHECKSUM: ex->no_checksum = 1; break;
		default:
			return dmr_cli_bad_option(ex->cli, "export", ch, argv);
		}
	}
	if (optind >= argc)
		return dmr_cli_usage_error(ex->cli, "export", "no TARGET given");
	ex->arg = argv[optind++];
	if (optind < argc)
		return dmr_cli_usage_error(ex->cli, "export", "unexpected argument '%s'", argv[optind]);
	if (!ex->output)
		return dmr_cli_usage_error(ex->cli, "export", "no output file given (-o FILE)");
	if (!ex->output[0])
		return dmr_cli_usage_error(ex->cli, "export", "empty output file name");
	return DMR_EXIT_OK;
}

/* --- the output file --- */

struct outfile {
	char dir[PATH_MAX];
	char base[NAME_MAX + 1];
	char tmp[NAME_MAX + 1];
	char tmp_path[PATH_MAX + NAME_MAX + 2];
	int dirfd, fd;
	int created;
};

/* FILE's directory and name; refuses an existing FILE without --force, one
 * that is not a regular file, and one that is an input. */
static int out_prepare(struct export *ex, struct outfile *o)
{
	struct dmr_cli *cli = ex->cli;
	char a[PATH_MAX], b[PATH_MAX];
	if (strlen(ex->output) >= sizeof(a)) {
		dmr_cli_error(cli, "%s: name too long", ex->output);
		return DMR_EXIT_OUTPUT;
	}
	snprintf(a, sizeof(a), "%s", ex->output);
	snprintf(b, sizeof(b), "%s", ex->output);
	snprintf(o->dir, sizeof(o->dir), "%s", dirname(a));
	const char *bn = basename(b);
	if (strlen(bn) + 24 > NAME_MAX || !strcmp(bn, "/") || !strcmp(bn, ".") || !strcmp(bn, "..")) {
		dmr_cli_error(cli, "%s: not a usable file name", ex->output);
		return DMR_EXIT_OUTPUT;
	}
	snprintf(o->base, sizeof(o->base), "%s", bn);
	if (snprintf(o->tmp, sizeof(o->tmp), ".%s.dmrescue-%ld", o->base, (long)getpid()) >= (int)sizeof(o->tmp)) {
		dmr_cli_error(cli, "%s: name too long", ex->output);
		return DMR_EXIT_OUTPUT;
	}
	snprintf(o->tmp_path, sizeof(o->tmp_path), "%s/%s", o->dir, o->tmp);
	o->dirfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (o->dirfd < 0) {
		dmr_cli_error(cli, "%s: %s", o->dir, strerror(errno));
		return DMR_EXIT_OUTPUT;
	}
	struct stat s, in;
	if (fstatat(o->dirfd, o->base, &s, AT_SYMLINK_NOFOLLOW) == 0) {
		const char *inputs[] = { dmr_cli_metadata_path(cli), dmr_cli_data_path(cli) };
		for (size_t i = 0; i < 2; i++)
			if (stat(inputs[i], &in) == 0 && in.st_dev == s.st_dev && in.st_ino == s.st_ino) {
				dmr_cli_error(cli, "%s is the pool's %s file: refusing to write over an input", ex->output,
					      i ? "data" : "metadata");
				return DMR_EXIT_REFUSED;
			}
		if (!S_ISREG(s.st_mode)) {
			dmr_cli_error(cli, "%s exists and is not a regular file", ex->output);
			return DMR_EXIT_REFUSED;
		}
		if (!ex->force) {
			dmr_cli_error(cli, "%s exists: refusing to overwrite it (--force replaces it)", ex->output);
			return DMR_EXIT_REFUSED;
		}
	} else if (errno != ENOENT) {
		dmr_cli_error(cli, "%s: %s", ex->output, strerror(errno));
		return DMR_EXIT_OUTPUT;
	}
	return DMR_EXIT_OK;
}

static void out_abandon(struct outfile *o)
{
	if (o->fd >= 0)
		close(o->fd);
	o->fd = -1;
	if (o->created) {
		struct dmr_err e = { 0 };
		sio_unlinkat(o->dirfd, o->tmp, 0, o->tmp_path, &e);
		o->created = 0;
	}
}

/* --- reading the pool and writing --- */

static int want_one(void *ctx, const struct tm_device *d)
{
	return d->dev_id == *(const uint64_t *)ctx;
}

static void progress_done(struct progress *pg, uint64_t total)
{
	progress_update(pg, total, total);
	progress_end(pg);
}

static int write_image(struct export *ex, struct outfile *o, const struct lf_extent *x, size_t n,
		       const char *data_path)
{
	struct dmr_cli *cli = ex->cli;
	struct dmr_err err = { 0 };
	struct lf_reader *rd = NULL;
	struct progress pg;
	int code = DMR_EXIT_OUTPUT;
	int fd = sio_create(o->dirfd, o->tmp, 0, 0600, o->tmp_path, &err);
	if (fd < 0) {
		dmr_cli_error(cli, "%s", err.msg);
		return DMR_EXIT_OUTPUT;
	}
	o->fd = fd;
	o->created = 1;
	if (sio_ftruncate(fd, (off_t)ex->size, o->tmp_path, &err))
		goto fail_out;
	if (n) {
		size_t chunk = ex->block_bytes < LF_READ_CHUNK_DEFAULT ? (size_t)ex->block_bytes : LF_READ_CHUNK_DEFAULT;
		if (chunk % 4096)
			chunk = 4096; /* 512-byte multiples below 4 KiB: the reader wants 4 KiB */
		struct lf_reader_opts ro = { .chunk_size = chunk };
		if (lf_reader_open(&rd, data_path, &ro, &err)) {
			code = dmr_cli_fail(cli, &err);
			goto fail;
		}
		ex->method = lf_reader_method(rd);
		if (cli->verbose)
			fprintf(stderr, "%s: reading %s with %s (depth %u)%s%s\n", cli->prog, data_path, ex->method,
				lf_reader_depth(rd), lf_reader_note(rd) ? ": " : "",
				lf_reader_note(rd) ? lf_reader_note(rd) : "");
		progress_init(&pg, stderr, "export", cli->verbose, cli->quiet || cli->json);
		int r = lf_copy_extents(rd, x, n, ex->block_bytes, fd, o->tmp_path, progress_update, &pg, &ex->cs, &err);
		progress_end(&pg);
		lf_reader_close(rd);
		rd = NULL;
		if (r) {
			if (r == DMR_ECORRUPT || (r == DMR_EIO && strstr(err.msg, data_path)))
				code = dmr_cli_fail(cli, &err);
			else
				goto fail_out;
			goto fail;
		}
	}
	if (sio_fsync(fd, o->tmp_path, &err))
		goto fail_out;
	close(fd);
	o->fd = -1;
	if (!ex->no_checksum) {
		int rfd = openat(o->dirfd, o->tmp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (rfd < 0) {
			dmr_err_set(&err, DMR_EIO, "reading %s back: %s", o->tmp_path, strerror(errno));
			goto fail_out;
		}
		progress_init(&pg, stderr, "sha256", cli->verbose, cli->quiet || cli->json);
		int r = lf_sha256_sparse(rfd, ex->size, o->tmp_path, progress_update, &pg, ex->sha, &err);
		close(rfd);
		if (r) {
			progress_end(&pg);
			goto fail_out;
		}
		progress_done(&pg, ex->size);
	}
	char final[PATH_MAX + NAME_MAX + 2];
	snprintf(final, sizeof(final), "%s/%s", o->dir, o->base);
	if (sio_renameat(o->dirfd, o->tmp, o->dirfd, o->base, final, &err))
		goto fail_out;
	o->created = 0;
	if (sio_fsync_dir(o->dir, &err))
		goto fail_out;
	return DMR_EXIT_OK;
fail_out:
	dmr_cli_error(cli, "%s", err.msg);
	code = DMR_EXIT_OUTPUT;
fail:
	if (rd)
		lf_reader_close(rd);
	out_abandon(o);
	return code;
}

static int run_export(struct export *ex)
{
	struct dmr_cli *cli = ex->cli;
	struct dmr_err err = { 0 };
	struct dk_state st;
	memset(&st, 0, sizeof(st));
	struct dmr_pool_view v;
	memset(&v, 0, sizeof(v));
	struct tm_runlist rl = { 0 };
	struct lf_extent *x = NULL;
	struct outfile o = { .dirfd = -1, .fd = -1 };
	int code;
	double t0 = progress_now();

	/* Docker's files, when the pool is the root's own (as ls decides). */
	char mdir[PATH_MAX];
	struct stat sb;
	snprintf(mdir, sizeof(mdir), "%s/devicemapper", cli->root);
	if (!cli->metadata_path && stat(mdir, &sb) == 0 && S_ISDIR(sb.st_mode)) {
		if (dk_state_read(cli->root, &st, &err) == 0)
			ex->docker = 1;
		else if (!cli->quiet)
			dmr_cli_error(cli, "%s: Docker's files unreadable, only thin ids work: %s", cli->root, err.msg);
	}
	if (dmr_target_resolve(ex->docker ? &st : NULL, ex->arg, &ex->topts, &ex->t, &err)) {
		code = err.code == DMR_EUSAGE ? dmr_cli_usage_error(cli, "export", "%s", err.msg) : dmr_cli_fail(cli, &err);
		goto out;
	}
	ex->has_hash = ex->t.hash != NULL;
	snprintf(ex->hash, sizeof(ex->hash), "%s", ex->t.hash ? ex->t.hash : "");
	snprintf(ex->file, sizeof(ex->file), "%s", ex->t.file && ex->t.file->name ? ex->t.file->name : "");
	if ((code = out_prepare(ex, &o)) != DMR_EXIT_OK)
		goto out;
	if ((code = dmr_pool_view_open(cli, &v, 0, 0)) != DMR_EXIT_OK)
		goto out;
	if ((code = dmr_pool_view_roots(&v, want_one, &ex->t.thin_id, 0)) != DMR_EXIT_OK)
		goto out;
	if (!v.nroots) {
		dmr_cli_error(cli, "%s: thin device %" PRIu64 " (%s) is not in the pool", v.pool->path, ex->t.thin_id,
			      ex->t.what);
		code = DMR_EXIT_INPUT;
		goto out;
	}
	uint64_t nr_data = v.pool->sb.data_sm.nr_blocks;
	if (tm_runlist_collect(v.pool, v.roots, 1, nr_data, dmr_pool_view_usage_damage, &v, &rl, &err)) {
		code = dmr_cli_fail(cli, &err);
		goto out;
	}
	ex->block_bytes = (uint64_t)v.pool->sb.data_block_size * 512u;
	ex->mapped_blocks = rl.mapped;
	uint64_t mapped_end = rl.end * ex->block_bytes;
	if (ex->t.size) {
		ex->size = ex->t.size;
		ex->size_source = "docker-file";
		if (mapped_end > ex->size) {
			dmr_cli_error(cli, "warning: %s maps blocks up to %" PRIu64 " bytes, beyond its size in %s (%" PRIu64
				      "): the image covers them", ex->t.what, mapped_end, ex->file, ex->size);
			ex->size = mapped_end;
		}
	} else {
		ex->size = mapped_end;
		ex->size_source = "highest-mapped";
	}
	/* Coalesce runs that differ only in their time: fewer, longer reads. */
	x = malloc((rl.n ? rl.n : 1) * sizeof(*x));
	if (!x) {
		dmr_cli_error(cli, "out of memory");
		code = DMR_EXIT_INPUT;
		goto out;
	}
	size_t n = 0;
	for (size_t i = 0; i < rl.n; i++) {
		const struct tm_run *r = &rl.v[i];
		if (n && x[n - 1].vblock + x[n - 1].len == r->vbegin && x[n - 1].dblock + x[n - 1].len == r->dbegin) {
			x[n - 1].len += r->len;
			continue;
		}
		x[n++] = (struct lf_extent){ .vblock = r->vbegin, .dblock = r->dbegin, .len = r->len };
	}
	ex->extents = n;
	if (cli->verbose)
		fprintf(stderr, "%s: %s is thin %" PRIu64 ": %" PRIu64 " mapped blocks in %zu extents, %" PRIu64
			" bytes (%s)\n", cli->prog, ex->t.what, ex->t.thin_id, rl.mapped, n, ex->size, ex->size_source);
	ex->method = "-";
	code = write_image(ex, &o, x, n, dmr_cli_data_path(cli));
	ex->damage = v.log.count;
	if (code == DMR_EXIT_OK && ex->damage)
		code = DMR_EXIT_DAMAGE;
out:
	ex->seconds = progress_now() - t0;
	out_abandon(&o);
	if (o.dirfd >= 0)
		close(o.dirfd);
	free(x);
	tm_runlist_free(&rl);
	dmr_pool_view_close(&v);
	dk_state_free(&st);
	return code;
}

/* --- the result --- */

static void print_human(const struct export *ex)
{
	char a[32], b[32], c[32];
	printf("Exported %s: thin %" PRIu64 "%s%s to %s\n", ex->t.what, ex->t.thin_id, ex->has_hash ? ", hash " : "",
	       ex->has_hash ? (ex->hash[0] ? ex->hash : "base") : "", ex->output);
	printf("  size %s (%" PRIu64 " bytes, %s); %" PRIu64 " mapped blocks of %s in %" PRIu64 " extent%s\n",
	       fmt_human(ex->size, a), ex->size,
	       !strcmp(ex->size_source, "docker-file") ? "from Docker's device file" : "up to the highest mapped block",
	       ex->mapped_blocks, fmt_human(ex->block_bytes, b), ex->extents, ex->extents == 1 ? "" : "s");
	printf("  written %s (%" PRIu64 " bytes) in %" PRIu64 " write%s; %s read as zeros left as holes; %.2f s\n",
	       fmt_human(ex->cs.bytes_written, a), ex->cs.bytes_written, ex->cs.writes, ex->cs.writes == 1 ? "" : "s",
	       fmt_human(ex->cs.bytes_zero, c), ex->seconds);
	if (ex->damage)
		printf("  damaged mappings: the blocks named above are holes in the image\n");
	if (ex->sha[0])
		printf("%s  %s\n", ex->sha, ex->output);
}

static void print_json(const struct export *ex)
{
	json_object *root = json_object_new_object();
	json_object_object_add(root, "schema", json_object_new_string(EXPORT_SCHEMA));
	json_object *t = json_object_new_object();
	json_object_object_add(t, "arg", json_object_new_string(ex->arg));
	json_object_object_add(t, "kind", json_object_new_string(dmr_target_kind_name(ex->t.kind)));
	json_object_object_add(t, "what", json_object_new_string(ex->t.what));
	json_object_object_add(t, "thin_id", json_object_new_int64((int64_t)ex->t.thin_id));
	json_object_object_add(t, "hash", ex->has_hash ? json_object_new_string(ex->hash) : NULL);
	json_object_object_add(root, "target", t);
	json_object_object_add(root, "output", json_object_new_string(ex->output));
	json_object_object_add(root, "size", json_object_new_int64((int64_t)ex->size));
	json_object_object_add(root, "size_source", json_object_new_string(ex->size_source));
	json_object_object_add(root, "block_bytes", json_object_new_int64((int64_t)ex->block_bytes));
	json_object_object_add(root, "mapped_blocks", json_object_new_int64((int64_t)ex->mapped_blocks));
	json_object_object_add(root, "extents", json_object_new_int64((int64_t)ex->extents));
	json_object_object_add(root, "bytes_read", json_object_new_int64((int64_t)ex->cs.bytes_read));
	json_object_object_add(root, "bytes_written", json_object_new_int64((int64_t)ex->cs.bytes_written));
	json_object_object_add(root, "bytes_zero", json_object_new_int64((int64_t)ex->cs.bytes_zero));
	json_object_object_add(root, "writes", json_object_new_int64((int64_t)ex->cs.writes));
	json_object_object_add(root, "sha256", ex->sha[0] ? json_object_new_string(ex->sha) : NULL);
	json_object_object_add(root, "read_method", json_object_new_string(ex->method));
	json_object_object_add(root, "damaged_ranges", json_object_new_int64((int64_t)ex->damage));
	json_object_object_add(root, "seconds", json_object_new_double(ex->seconds));
	dmr_cli_put_json(root);
}

int cmd_export(struct dmr_cli *cli, int argc, char **argv)
{
	struct export ex = { .cli = cli };
	int code = parse(&ex, argc, argv);
	if (code != DMR_EXIT_OK)
		return code;
	code = run_export(&ex);
	if (code != DMR_EXIT_OK && code != DMR_EXIT_DAMAGE)
		return code;
	if (cli->json)
		print_json(&ex);
	else if (!cli->quiet)
		print_human(&ex);
	return dmr_cli_finish_stdout(cli, code);
}
