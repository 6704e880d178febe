/* dmrescue bundle: a support bundle of a Docker root, to take home.
 *
 * Docker's small state files (the devicemapper driver's metadata, the image
 * and layer databases, the containers' configuration with the environment
 * redacted, BuildKit's databases) and the pool metadata blocks in use, in
 * the format of bundle.h. No layer or container content, no data file.
 * Everything is opened read-only; FILE is written under a dot name and
 * renamed into place. Layers' tar-split.json.gz files are left out: they
 * list the files of each layer (names, headers), dmrescue never reads them,
 * and they can be large. */
#include "config.h"
#include "bundle.h"
#include "cli.h"
#include "docker/fsread.h"
#include "docker/state.h"
#include "thinmeta/blocksrc.h"
#include "thinmeta/ondisk.h"
#include "thinmeta/spacemap.h"
#include "util/fmt.h"
#include "util/jsonc.h"
#include "util/grow.h"
#include "util/safeio.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_MAX ((size_t)512 << 20) /* BuildKit's databases can be large */
#define READ_BATCH 256

static void bundle_usage(FILE *out)
{
	fputs("Usage:\n"
	      " dmrescue bundle -o FILE [options]\n"
	      "\n"
	      "Write a support bundle of the Docker root: Docker's small state files and\n"
	      "the pool metadata blocks in use, gzip-compressed and checksummed. No layer\n"
	      "or container content, no data file. Read it back anywhere with\n"
	      "'dmrescue --bundle FILE scan' (also ls, dump, check, timeline).\n"
	      "\n"
	      "Options:\n"
	      " -o, --output FILE    the bundle to write\n"
	      "     --no-redact      keep the environment values of containers' config.v2.json\n"
	      "     --force          replace FILE if it exists\n"
	      "\n"
	      "Exit status: 0 done, 3 input unreadable, 4 cannot write FILE,\n"
	      "5 refused (FILE exists, or is an input), 64 usage.\n", out);
}

struct collect {
	struct dmr_cli *cli;
	struct fsr_dir root;
	struct bundle b;
	int redact;
	unsigned long skipped;
};

/* Adds the regular file rel if it is there; missing is fine. */
static int add_file(struct collect *c, const char *rel, int redact)
{
	struct fsr_file f;
	struct fsr_fail fail = { 0 };
	struct dmr_err err = { 0 };
	int r = fsr_read(&c->root, rel, FILE_MAX, &f, &fail);
	if (r == FSR_MISSING)
		return 0;
	if (r == DMR_ENOMEM)
		return dmr_cli_fail(c->cli, &(struct dmr_err){ .code = DMR_ENOMEM, .msg = "out of memory" });
	if (r) {
		dmr_cli_error(c->cli, "warning: %s/%s left out: %s", c->cli->root, rel, fail.msg);
		c->skipped++;
		return 0;
	}
	unsigned char *data = (unsigned char *)f.data;
	size_t len = f.len;
	if (redact) {
		data = bundle_redact_env(f.data, f.len, &len);
		fsr_file_free(&f);
		if (!data) {
			dmr_cli_error(c->cli, "warning: %s/%s left out: not JSON, cannot redact it", c->cli->root, rel);
			c->skipped++;
			return 0;
		}
	}
	if (bundle_add(&c->b, rel, BUNDLE_FILE, data, len, &err))
		return dmr_cli_fail(c->cli, &err);
	return 0;
}

static int add_dir(struct collect *c, const char *rel)
{
	struct dmr_err err = { 0 };
	if (bundle_add(&c->b, rel, BUNDLE_DIR, NULL, 0, &err))
		return dmr_cli_fail(c->cli, &err);
	return 0;
}

/* The name and size of the regular file rel, not its content. */
static int add_placeholder(struct collect *c, const char *rel)
{
	struct stat st;
	struct fsr_fail fail = { 0 };
	struct dmr_err err = { 0 };
	if (fsr_lstat(&c->root, rel, &st, &fail) || !S_ISREG(st.st_mode))
		return 0; /* gone, or no longer a file */
	if (bundle_add(&c->b, rel, BUNDLE_PLACEHOLDER, NULL, 0, &err))
		return dmr_cli_fail(c->cli, &err);
	c->b.e[c->b.n - 1].file_size = (uint64_t)st.st_size;
	return 0;
}

/* The directory rel and every directory and regular file below it, but
 * the layers' tar-split.json.gz; with names_only, files as placeholders.
 * layerdb/tmp (interrupted layer writes) is always names only. */
static int add_tree(struct collect *c, const char *rel, int depth, int names_only)
{
	struct fsr_list l;
	struct fsr_fail fail = { 0 };
	int r = fsr_list(&c->root, rel, FSR_LIST_MAX, &l, &fail);
	if (r == FSR_MISSING)
		return 0;
	if (r) {
		dmr_cli_error(c->cli, "warning: %s/%s left out: %s", c->cli->root, rel, fail.msg);
		c->skipped++;
		return 0;
	}
	int code = add_dir(c, rel);
	size_t rl = strlen(rel);
	names_only |= rl >= 11 && !strcmp(rel + rl - 11, "layerdb/tmp");
	for (size_t i = 0; i < l.n && !code; i++) {
		char sub[FSR_PATH_MAX];
		if (fsr_join(sub, sizeof(sub), rel, l.e[i].name) < 0)
			continue;
		if (l.e[i].type == S_IFDIR && depth < 16)
			code = add_tree(c, sub, depth + 1, names_only);
		else if (l.e[i].type == S_IFREG && names_only)
			code = add_placeholder(c, sub);
		else if (l.e[i].type == S_IFREG && strcmp(l.e[i].name, "tar-split.json.gz") != 0)
			code = add_file(c, sub, 0);
	}
	fsr_list_free(&l);
	return code;
}

/* devicemapper/mnt/<hash>: mount points, empty outside a running daemon;
 * what was written into one while unmounted is container content: names
 * and sizes only. A mounted one is recorded as a directory, not entered. */
static int add_mnt(struct collect *c)
{
	struct fsr_dir mnt;
	struct fsr_list l;
	struct fsr_fail fail = { 0 };
	if (fsr_opendir(&c->root, "devicemapper/mnt", &mnt, &fail))
		return 0;
	int code = 0;
	if (fsr_list(&mnt, "", FSR_LIST_MAX, &l, &fail) == 0) {
		code = add_dir(c, "devicemapper/mnt");
		for (size_t i = 0; i < l.n && !code; i++) {
			char sub[FSR_PATH_MAX];
			struct fsr_dir d;
			if (l.e[i].type != S_IFDIR || fsr_join(sub, sizeof(sub), "devicemapper/mnt", l.e[i].name) < 0 ||
			    fsr_opendir(&mnt, l.e[i].name, &d, &fail))
				continue;
			code = d.dev == mnt.dev ? add_tree(c, sub, 1, 1) : add_dir(c, sub);
			fsr_closedir(&d);
		}
		fsr_list_free(&l);
	}
	fsr_closedir(&mnt);
	return code;
}

static int add_docker_files(struct collect *c)
{
	static const char *const files[] = {
		"devicemapper/json",
		"devicemapper-layers/layers.json",
		"devicemapper-images/images.json",
		"devicemapper-containers/containers.json",
	};
	int code = add_tree(c, "devicemapper/metadata", 0, 0);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]) && !code; i++)
		code = add_file(c, files[i], 0);
	if (!code)
		code = add_mnt(c);
	if (!code)
		code = add_tree(c, "image/devicemapper", 0, 0);
	struct fsr_list l;
	struct fsr_fail fail = { 0 };
	if (!code && fsr_list(&c->root, "containers", FSR_LIST_MAX, &l, &fail) == 0) {
		for (size_t i = 0; i < l.n && !code; i++) {
			char rel[FSR_PATH_MAX];
			if (l.e[i].type != S_IFDIR)
				continue;
			snprintf(rel, sizeof(rel), "containers/%s", l.e[i].name);
			code = add_dir(c, rel);
			snprintf(rel, sizeof(rel), "containers/%s/config.v2.json", l.e[i].name);
			if (!code)
				code = add_file(c, rel, c->redact);
			snprintf(rel, sizeof(rel), "containers/%s/hostconfig.json", l.e[i].name);
			if (!code)
				code = add_file(c, rel, 0);
		}
		fsr_list_free(&l);
	}
	if (!code && fsr_list(&c->root, "buildkit", FSR_LIST_MAX, &l, &fail) == 0) {
		for (size_t i = 0; i < l.n && !code; i++) {
			size_t n = strlen(l.e[i].name);
			char rel[FSR_PATH_MAX];
			if (l.e[i].type != S_IFREG || n < 4 || strcmp(l.e[i].name + n - 3, ".db") != 0)
				continue;
			snprintf(rel, sizeof(rel), "buildkit/%s", l.e[i].name);
			code = add_file(c, rel, 0);
		}
		fsr_list_free(&l);
	}
	return code;
}

/* The metadata blocks the metadata space map counts (and the superblock):
 * records of block number and content. */
static int add_metadata(struct collect *c, uint64_t *in_use)
{
	struct dmr_cli *cli = c->cli;
	struct dmr_err err = { 0 };
	int code = DMR_EXIT_OK;
	struct tm_pool *p = dmr_cli_open_pool(cli, &code);
	if (!p)
		return code;
	struct tm_space_map sm = { 0 };
	unsigned char *recs = NULL, *bufs = tm_block_alloc(READ_BATCH);
	uint64_t blocks[READ_BATCH];
	int status[READ_BATCH];
	size_t n = 0, cap = 0, nb = 0;
	if (!bufs) {
		code = dmr_cli_fail(cli, &(struct dmr_err){ .code = DMR_ENOMEM, .msg = "out of memory" });
		goto out;
	}
	if (tm_sm_read(p, 1, &sm, NULL, NULL, &err)) {
		code = dmr_cli_fail(cli, &err);
		goto out;
	}
	uint64_t end = p->file_blocks;
	for (uint64_t b = 0; b <= end; b++) {
		if (b < end && (b == 0 || tm_sm_count(&sm, b) > 0))
			blocks[nb++] = b;
		if (nb == READ_BATCH || (b == end && nb)) {
			if (tm_blocksrc_read_many(p->bs, blocks, nb, bufs, status, &err)) {
				code = dmr_cli_fail(cli, &err);
				goto out;
			}
			unsigned char *nr = dmr_grow(recs, &cap, n + nb - 1, BUNDLE_REC);
			if (!nr) {
				code = dmr_cli_fail(cli, &(struct dmr_err){ .code = DMR_ENOMEM, .msg = "out of memory" });
				goto out;
			}
			recs = nr;
			for (size_t i = 0; i < nb; i++) {
				if (status[i]) {
					dmr_cli_error(cli, "warning: %s: metadata block %llu unreadable, left out", p->path,
						      (unsigned long long)blocks[i]);
					continue;
				}
				unsigned char *rec = recs + n * BUNDLE_REC;
				tm_put_le64(rec, blocks[i]);
				memcpy(rec + 8, bufs + i * BUNDLE_BLOCK, BUNDLE_BLOCK);
				n++;
			}
			nb = 0;
		}
	}
	c->b.meta_file_size = p->file_blocks * BUNDLE_BLOCK;
	*in_use = n;
	if (bundle_add(&c->b, BUNDLE_META_PATH, BUNDLE_METADATA_BLOCKS, recs, n * BUNDLE_REC, &err))
		code = dmr_cli_fail(cli, &err);
	recs = NULL;
out:
	free(recs);
	free(bufs);
	tm_sm_free(&sm);
	tm_pool_close(p);
	return code;
}

/* path as an absolute name, without resolving symlinks: the name the host
 * knows it by (NULL when out of memory). */
static char *absolute_name(const char *path)
{
	char cwd[PATH_MAX];
	if (path[0] == '/' || !getcwd(cwd, sizeof(cwd)))
		return strdup(path);
	while (path[0] == '.' && path[1] == '/')
		path += 2;
	if (!strcmp(path, ".") || !*path)
		return strdup(cwd);
	size_t n = strlen(cwd) + strlen(path) + 2;
	char *out = malloc(n);
	if (out)
		snprintf(out, n, "%s%s%s", cwd, strcmp(cwd, "/") ? "/" : "", path);
	return out;
}

/* What reading the bundle shows instead of its extraction: the root, the
 * pool's paths and the pool's name prefix (made from the driver home's
 * device and inode, which the extraction cannot have). */
static int record_names(struct collect *c)
{
	struct dmr_cli *cli = c->cli;
	struct bundle *b = &c->b;
	b->source = absolute_name(cli->root);
	b->metadata_path = absolute_name(dmr_cli_metadata_path(cli));
	b->data_path = absolute_name(dmr_cli_data_path(cli));
	struct dk_state st;
	struct dmr_err err = { 0 };
	if (dk_state_read(cli->root, &st, &err) == 0) {
		if (st.prefix && !(b->pool_prefix = strdup(st.prefix))) {
			dk_state_free(&st);
			goto oom;
		}
		dk_state_free(&st);
	}
	if (b->source && b->metadata_path && b->data_path)
		return DMR_EXIT_OK;
oom:
	return dmr_cli_fail(cli, &(struct dmr_err){ .code = DMR_ENOMEM, .msg = "out of memory" });
}

/* Writes the bundle to a dot name beside FILE, then renames it over. */
static int write_out(struct collect *c, const char *output, int force, uint64_t *size)
{
	struct dmr_cli *cli = c->cli;
	struct dmr_err err = { 0 };
	char a[PATH_MAX], bn_buf[PATH_MAX], tmp[NAME_MAX + 1], tmp_path[2 * PATH_MAX], final[2 * PATH_MAX];
	if (strlen(output) >= sizeof(a)) {
		dmr_cli_error(cli, "%s: name too long", output);
		return DMR_EXIT_OUTPUT;
	}
	snprintf(a, sizeof(a), "%s", output);
	snprintf(bn_buf, sizeof(bn_buf), "%s", output);
	const char *dir = dirname(a), *base = basename(bn_buf);
	if (strlen(base) + 24 > NAME_MAX || !strcmp(base, "/") || !strcmp(base, ".") || !strcmp(base, "..")) {
		dmr_cli_error(cli, "%s: not a usable file name", output);
		return DMR_EXIT_OUTPUT;
	}
	snprintf(tmp, sizeof(tmp), ".%s.dmrescue-%ld", base, (long)getpid());
	snprintf(tmp_path, sizeof(tmp_path), "%s/%s", dir, tmp);
	snprintf(final, sizeof(final), "%s/%s", dir, base);
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		dmr_cli_error(cli, "%s: %s", dir, strerror(errno));
		return DMR_EXIT_OUTPUT;
	}
	struct stat s;
	if (fstatat(dirfd, base, &s, AT_SYMLINK_NOFOLLOW) == 0) {
		if (!S_ISREG(s.st_mode) || !force) {
			dmr_cli_error(cli, "%s exists: refusing to overwrite it%s", output,
				      S_ISREG(s.st_mode) ? " (--force replaces it)" : "");
			close(dirfd);
			return DMR_EXIT_REFUSED;
		}
	}
	int fd = sio_create(dirfd, tmp, 0, 0600, tmp_path, &err);
	if (fd < 0)
		goto fail;
	if (bundle_write(&c->b, fd, tmp_path, size, &err) || sio_fsync(fd, tmp_path, &err)) {
		close(fd);
		struct dmr_err e2 = { 0 };
		sio_unlinkat(dirfd, tmp, 0, tmp_path, &e2);
		goto fail;
	}
	close(fd);
	if (sio_renameat(dirfd, tmp, dirfd, base, final, &err)) {
		struct dmr_err e2 = { 0 };
		sio_unlinkat(dirfd, tmp, 0, tmp_path, &e2);
		goto fail;
	}
	if (sio_fsync_dir(dir, &err))
		goto fail;
	close(dirfd);
	return DMR_EXIT_OK;
fail:
	close(dirfd);
	dmr_cli_error(cli, "%s", err.msg);
	return DMR_EXIT_OUTPUT;
}

int cmd_bundle(struct dmr_cli *cli, int argc, char **argv)
{
	enum { OPT_NO_REDACT = OPT_CMD_BASE, OPT_FORCE };
	static const struct option longopts[] = {
		DMR_GLOBAL_LONGOPTS,
		{ "output", required_argument, NULL, 'o' },
		{ "no-redact", no_argument, NULL, OPT_NO_REDACT },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ NULL, 0, NULL, 0 },
	};
	const char *output = NULL;
	int force = 0, c;
	struct collect col = { .cli = cli, .redact = 1 };
	while ((c = getopt_long(argc, argv, DMR_GLOBAL_SHORTOPTS "o:", longopts, NULL)) != -1) {
		if (dmr_cli_global_opt(cli, c, optarg, bundle_usage))
			continue;
		switch (c) {
		case 'o':
			output = optarg;
			break;
		case OPT_NO_REDACT:
			col.redact = 0;
			break;
		case OPT_FORCE:
			force = 1;
			break;
		default:
			return dmr_cli_bad_option(cli, "bundle", c, argv);
		}
	}
	if (optind < argc)
		return dmr_cli_usage_error(cli, "bundle", "unexpected argument '%s'", argv[optind]);
	if (!output)
		return dmr_cli_usage_error(cli, "bundle", "no output file: -o FILE");
	struct dmr_err err = { 0 };
	if (fsr_open_root(&col.root, cli->root, &err))
		return dmr_cli_fail(cli, &err);
	col.b.redacted = col.redact;
	uint64_t in_use = 0, size = 0;
	int code = record_names(&col);
	if (code == DMR_EXIT_OK)
		code = add_metadata(&col, &in_use);
	if (code == DMR_EXIT_OK)
		code = add_docker_files(&col);
	if (code == DMR_EXIT_OK)
		code = write_out(&col, output, force, &size);
	if (code == DMR_EXIT_OK && !cli->quiet) {
		char h1[32], h2[32];
		size_t files = 0;
		for (size_t i = 0; i < col.b.n; i++)
			files += col.b.e[i].kind == BUNDLE_FILE;
		printf("%s: %zu files, %llu metadata blocks in use of %llu (%s), %s%s\n", output, files,
		       (unsigned long long)in_use, (unsigned long long)(col.b.meta_file_size / BUNDLE_BLOCK),
		       fmt_human(col.b.meta_file_size, h1), fmt_human(size, h2),
		       col.redact ? ", environment redacted" : ", environment NOT redacted");
	}
	fsr_closedir(&col.root);
	bundle_free(&col.b);
	if (code == DMR_EXIT_OK && col.skipped)
		code = DMR_EXIT_FINDINGS;
	return dmr_cli_finish_stdout(cli, code);
}
