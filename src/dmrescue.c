/* dmrescue: offline recovery and forensics of Docker devicemapper pools. */
#include "config.h"
#include "cli.h"
#include "util/jsonc.h"
#include "util/safeio.h"
#include "thinmeta/blocksrc.h"
#include "bundle.h"
#include "docker/state.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct command {
	const char *name;
	int (*fn)(struct dmr_cli *cli, int argc, char **argv);
	const char *help;
};

static const struct command commands[] = {
	{ "dump", cmd_dump, "print the pool metadata as thin_dump-compatible XML" },
	{ "ls", cmd_ls, "list thin devices with mapped, exclusive and shared space" },
	{ "scan", cmd_scan, "map every device to its Docker owner and find leftovers" },
	{ "check", cmd_check, "check the pool and Docker's files, stricter than thin_check" },
	{ "clean", cmd_clean, "remove leftovers offline, with a backup (see --dry-run)" },
	{ "undo", cmd_undo, "restore the files a clean changed from its backup" },
	{ "reclaim", cmd_reclaim, "punch the pool's free blocks out of the data and metadata files" },
	{ "teardown", cmd_teardown, "after dockerd died: unmount, remove its thin devices and pool, detach its loops" },
	{ "export", cmd_export, "write a device (layer, container, thin id) as a sparse raw image" },
	{ "diff", cmd_diff, "the block ranges where two devices differ (what a container wrote)" },
	{ "timeline", cmd_timeline, "devices in creation order, with times, transactions and owners" },
	{ "bundle", cmd_bundle, "write a support bundle: Docker's state files and the metadata in use" },
};

static void usage(FILE *out)
{
	fputs("Usage:\n"
	      " dmrescue [options] <command> [command options]\n"
	      "\n"
	      "Offline recovery and forensics of Docker devicemapper thin pools.\n"
	      "\n"
	      "Commands:\n", out);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, " %-8s %s\n", commands[i].name, commands[i].help);
	fputs("\n"
	      "Options:\n"
	      " -r, --root DIR       Docker root (default /var/lib/docker)\n"
	      "     --metadata PATH  pool metadata file or device\n"
	      "                      (default ROOT/devicemapper/devicemapper/metadata)\n"
	      "     --data PATH      pool data file or device\n"
	      "                      (default ROOT/devicemapper/devicemapper/data)\n"
	      "     --bundle FILE    read a support bundle instead of a root (scan, ls,\n"
	      "                      dump, check, timeline)\n"
	      "     --json           machine-readable output\n"
	      " -q, --quiet          print only errors\n"
	      " -v, --verbose        say more\n"
	      " -h, --help           display this help\n"
	      " -V, --version        display version\n"
	      "\n"
	      "Run 'dmrescue <command> --help' for a command's options; see dmrescue(8).\n", out);
}

static char bundle_dir[PATH_MAX]; /* --bundle: the extraction directory */

/* Writes msg to f with the extraction directory named as the root it came from. */
static void put_shown(const struct dmr_cli *cli, const char *msg, FILE *f)
{
	size_t dl = strlen(bundle_dir);
	const char *hit;
	while (dl && cli->shown_root && (hit = strstr(msg, bundle_dir)) != NULL) {
		fwrite(msg, 1, (size_t)(hit - msg), f);
		fputs(cli->shown_root, f);
		msg = hit + dl;
	}
	fputs(msg, f);
}

void dmr_cli_error(const struct dmr_cli *cli, const char *fmt, ...)
{
	char msg[8192];
	va_list ap;
	fflush(stdout);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: ", cli->prog);
	put_shown(cli, msg, stderr);
	fputc('\n', stderr);
}

int dmr_cli_usage_error(const struct dmr_cli *cli, const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", cli->prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s%s%s --help' for more information.\n", cli->prog, cmd ? " " : "", cmd ? cmd : "");
	return DMR_EXIT_USAGE;
}

int dmr_cli_bad_option(const struct dmr_cli *cli, const char *cmd, int c, char **argv)
{
	char shortopt[3] = { '-', (char)optopt, '\0' };
	const char *opt = optopt ? shortopt : argv[optind - 1];
	if (c == ':')
		return dmr_cli_usage_error(cli, cmd, "option '%s' needs an argument", opt);
	return dmr_cli_usage_error(cli, cmd, "unknown option '%s'", opt);
}

int dmr_cli_fail(const struct dmr_cli *cli, const struct dmr_err *err)
{
	dmr_cli_error(cli, "%s", err->msg);
	switch (err->code) {
	case DMR_ECORRUPT:
		return DMR_EXIT_DAMAGE;
	case DMR_EUSAGE:
		return DMR_EXIT_USAGE;
	default:
		return DMR_EXIT_INPUT;
	}
}

int dmr_cli_global_opt(struct dmr_cli *cli, int c, const char *arg, void (*usage_fn)(FILE *))
{
	switch (c) {
	case 'r':
	case OPT_METADATA:
	case OPT_DATA:
		if (cli->bundle) {
			dmr_cli_usage_error(cli, cli->cmd, "--bundle replaces --root, --metadata and --data");
			exit(DMR_EXIT_USAGE);
		}
		cli->root_given = 1;
		if (c == 'r')
			cli->root = arg;
		else if (c == OPT_METADATA)
			cli->metadata_path = arg;
		else
			cli->data_path = arg;
		return 1;
	case OPT_BUNDLE:
		if (cli->bundle || cli->root_given) {
			dmr_cli_usage_error(cli, cli->cmd, "--bundle %s", cli->bundle ? "given twice" : "replaces --root, --metadata and --data");
			exit(DMR_EXIT_USAGE);
		}
		cli->bundle = arg;
		if (cli->cmd) /* after the command's name: open it now */
			dmr_cli_open_bundle(cli);
		return 1;
	case OPT_JSON:
		cli->json = 1;
		return 1;
	case 'q':
		cli->quiet = 1;
		return 1;
	case 'v':
		cli->verbose++;
		return 1;
	case 'h':
		usage_fn(stdout);
		exit(dmr_cli_finish_stdout(cli, DMR_EXIT_OK));
	case 'V':
		printf("%s %s%s\n", cli->prog, PACKAGE_VERSION,
		       sio_fault_injection_built() ? " (test build: fault-injection)" : "");
		exit(dmr_cli_finish_stdout(cli, DMR_EXIT_OK));
	}
	return 0;
}

/* The metadata file to open. */
static const char *metadata_input(struct dmr_cli *cli)
{
	if (cli->metadata_path)
		return cli->metadata_path;
	snprintf(cli->metadata_buf, sizeof(cli->metadata_buf), "%s/devicemapper/devicemapper/metadata", cli->root);
	return cli->metadata_buf;
}

const char *dmr_cli_metadata_path(struct dmr_cli *cli)
{
	return cli->shown_metadata ? cli->shown_metadata : metadata_input(cli);
}

const char *dmr_cli_data_path(struct dmr_cli *cli)
{
	if (cli->shown_data)
		return cli->shown_data;
	if (cli->data_path)
		return cli->data_path;
	snprintf(cli->data_buf, sizeof(cli->data_buf), "%s/devicemapper/devicemapper/data", cli->root);
	return cli->data_buf;
}

const char *dmr_cli_data_input(struct dmr_cli *cli)
{
	return cli->bundle ? NULL : dmr_cli_data_path(cli);
}

const char *dmr_cli_root_shown(const struct dmr_cli *cli)
{
	return cli->shown_root ? cli->shown_root : cli->root;
}

int dmr_cli_state_read(const struct dmr_cli *cli, struct dk_state *st, struct dmr_err *err)
{
	int r = dk_state_read(cli->root, st, err);
	if (r || !cli->shown_root)
		return r;
	char *root = strdup(cli->shown_root), *prefix = NULL, *pool = NULL;
	if (cli->pool_prefix && st->prefix) {
		size_t n = strlen(cli->pool_prefix) + sizeof("-pool");
		prefix = strdup(cli->pool_prefix);
		pool = malloc(n);
		if (pool)
			snprintf(pool, n, "%s-pool", cli->pool_prefix);
	}
	if (!root || (cli->pool_prefix && st->prefix && (!prefix || !pool))) {
		free(root);
		free(prefix);
		free(pool);
		dk_state_free(st);
		return dmr_err_set(err, DMR_ENOMEM, "out of memory");
	}
	free(st->root);
	free(st->prefix);
	free(st->pool_name);
	st->root = root;
	st->prefix = prefix; /* unknown when the bundle did not record it */
	st->pool_name = pool;
	return 0;
}

struct tm_pool *dmr_cli_open_pool_flags(struct dmr_cli *cli, unsigned flags, struct dmr_err *err)
{
	struct tm_pool *p = NULL;
	if (tm_pool_open(&p, metadata_input(cli), flags, err))
		return NULL;
	if (cli->shown_metadata) /* messages name the host's file, not the extraction */
		p->path = cli->shown_metadata;
	if (cli->verbose)
		fprintf(stderr, "%s: %s: %llu metadata blocks, read with %s\n", cli->prog, p->path,
			(unsigned long long)p->file_blocks, tm_blocksrc_engine(p->bs));
	return p;
}

struct tm_pool *dmr_cli_open_pool(struct dmr_cli *cli, int *exit_code)
{
	struct dmr_err err = { 0 };
	struct tm_pool *p = dmr_cli_open_pool_flags(cli, 0, &err);
	if (!p) {
		*exit_code = dmr_cli_fail(cli, &err);
		return NULL;
	}
	return p;
}

void dmr_cli_put_json(struct json_object *root)
{
	fputs(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
						       JSON_C_TO_STRING_NOSLASHESCAPE), stdout);
	fputc('\n', stdout);
	json_object_put(root);
}

int dmr_cli_finish_stdout(const struct dmr_cli *cli, int code)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		int e = errno;
		fprintf(stderr, "%s: write error on standard output: %s\n", cli->prog, strerror(e));
		return DMR_EXIT_OUTPUT;
	}
	return code;
}

/* --- --bundle --- */

static void bundle_cleanup(void)
{
	if (bundle_dir[0])
		bundle_rmtree(bundle_dir);
	bundle_dir[0] = '\0';
}

/* On a signal the extraction goes too, with what is async-signal-safe
 * (fork, execve, waitpid; not nftw): rm -rf in a child, then the signal's
 * default action. */
static void bundle_signal(int sig)
{
	if (bundle_dir[0]) {
		pid_t pid = fork();
		if (pid == 0) {
			char *const argv[] = { "rm", "-rf", "--one-file-system", "--", bundle_dir, NULL };
			char *const envp[] = { NULL };
			execve("/bin/rm", argv, envp);
			_exit(127);
		}
		while (pid > 0 && waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

/* The names a bundle recorded, kept for the whole run: what the commands
 * show instead of the extraction directory. A bundle that recorded none
 * (or a path of the extraction itself) shows them under "(bundle FILE)". */
static void bundle_show_names(struct dmr_cli *cli, const struct bundle *b)
{
	static char root[PATH_MAX + 16], meta[PATH_MAX + 64], data[PATH_MAX + 64], prefix[256];
	if (b->source)
		snprintf(root, sizeof(root), "%s", b->source);
	else
		snprintf(root, sizeof(root), "(bundle %s)", cli->bundle);
	if (b->metadata_path)
		snprintf(meta, sizeof(meta), "%s", b->metadata_path);
	else
		snprintf(meta, sizeof(meta), "%s/devicemapper/devicemapper/metadata", root);
	if (b->data_path)
		snprintf(data, sizeof(data), "%s", b->data_path);
	else
		snprintf(data, sizeof(data), "%s/devicemapper/devicemapper/data", root);
	cli->shown_root = root;
	cli->shown_metadata = meta;
	cli->shown_data = data;
	if (b->pool_prefix) {
		snprintf(prefix, sizeof(prefix), "%s", b->pool_prefix);
		cli->pool_prefix = prefix;
	}
	if (!cli->quiet)
		fprintf(stderr, "%s: reading bundle %s of %s\n", cli->prog, cli->bundle, root);
}

void dmr_cli_open_bundle(struct dmr_cli *cli)
{
	static const char *const readers[] = { "scan", "check", "ls", "dump", "timeline" };
	int ok = 0;
	for (size_t i = 0; i < sizeof(readers) / sizeof(readers[0]); i++)
		ok |= !strcmp(cli->cmd, readers[i]);
	if (!ok) {
		dmr_cli_error(cli, "--bundle: '%s' cannot run on a bundle (it holds no data file and is read-only); "
			      "it works with scan, check, ls, dump and timeline", cli->cmd);
		exit(DMR_EXIT_USAGE);
	}
	struct dmr_err err = { 0 };
	struct bundle b;
	if (bundle_read(cli->bundle, &b, &err))
		exit(dmr_cli_fail(cli, &err));
	const char *tmpdir = getenv("TMPDIR");
	if (!tmpdir || !*tmpdir)
		tmpdir = "/tmp";
	if (snprintf(bundle_dir, sizeof(bundle_dir), "%s/dmrescue-bundle.XXXXXX", tmpdir) >= (int)sizeof(bundle_dir) ||
	    !mkdtemp(bundle_dir)) {
		dmr_cli_error(cli, "--bundle: cannot create a temporary directory in %s: %s", tmpdir, strerror(errno));
		bundle_dir[0] = '\0';
		bundle_free(&b);
		exit(DMR_EXIT_OUTPUT);
	}
	atexit(bundle_cleanup);
	signal(SIGINT, bundle_signal);
	signal(SIGTERM, bundle_signal);
	signal(SIGHUP, bundle_signal);
	signal(SIGPIPE, bundle_signal);
	if (bundle_extract(&b, bundle_dir, &err)) {
		bundle_free(&b);
		dmr_cli_error(cli, "--bundle %s: %s", cli->bundle, err.msg);
		exit(err.code == DMR_ECORRUPT ? DMR_EXIT_DAMAGE : DMR_EXIT_OUTPUT);
	}
	cli->root = bundle_dir;
	bundle_show_names(cli, &b);
	bundle_free(&b);
	if (cli->verbose)
		fprintf(stderr, "%s: %s extracted into %s\n", cli->prog, cli->bundle, bundle_dir);
}

int main(int argc, char **argv)
{
	struct dmr_cli cli = { .prog = "dmrescue", .root = "/var/lib/docker" };
	static const struct option longopts[] = { DMR_GLOBAL_LONGOPTS, { NULL, 0, NULL, 0 } };
	int c;
	opterr = 0; /* we print one line of our own */
	while ((c = getopt_long(argc, argv, "+" DMR_GLOBAL_SHORTOPTS, longopts, NULL)) != -1) {
		if (!dmr_cli_global_opt(&cli, c, optarg, usage))
			return dmr_cli_bad_option(&cli, NULL, c, argv);
	}
	if (optind >= argc)
		return dmr_cli_usage_error(&cli, NULL, "no command given");
	const char *name = argv[optind];
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(name, commands[i].name) == 0) {
			int sub_argc = argc - optind;
			char **sub_argv = argv + optind;
			optind = 0; /* reset getopt for the command */
			cli.cmd = name;
			if (cli.bundle)
				dmr_cli_open_bundle(&cli);
			return commands[i].fn(&cli, sub_argc, sub_argv);
		}
	}
	return dmr_cli_usage_error(&cli, NULL, "unknown command '%s'", name);
}
