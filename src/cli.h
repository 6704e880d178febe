/* What the commands share: global options, exit codes, error printing. */
#ifndef DMR_CLI_H
#define DMR_CLI_H

#include <stdio.h>

#include "thinmeta/pool.h"
#include "util/err.h"

enum dmr_exit {
	DMR_EXIT_OK = 0,
	DMR_EXIT_FINDINGS = 1, /* non-fatal findings only */
	DMR_EXIT_DAMAGE = 2,   /* the input is damaged */
	DMR_EXIT_INPUT = 3,    /* could not read the input */
	DMR_EXIT_OUTPUT = 4,   /* could not write the output */
	DMR_EXIT_REFUSED = 5,  /* refused: something is live, or not confirmed */
	DMR_EXIT_USAGE = 64,
};

struct dmr_cli {
	const char *prog;
	const char *root;
	const char *metadata_path;
	const char *data_path;
	int json;
	int quiet;
	int verbose;
	const char *cmd;    /* the command's name, once known */
	const char *bundle; /* --bundle FILE: root is its extraction */
	int root_given;     /* --root, --metadata or --data was given */
	/* With --bundle, the names the bundle recorded, shown instead of the
	 * extraction's (NULL otherwise). */
	const char *shown_root;
	const char *shown_metadata;
	const char *shown_data;
	const char *pool_prefix;
	char metadata_buf[4096];
	char data_buf[4096];
};

/* Global options every command also accepts after its name. */
#define DMR_GLOBAL_SHORTOPTS ":r:qvhV"
enum {
	OPT_METADATA = 0x100,
	OPT_DATA,
	OPT_JSON,
	OPT_BUNDLE,
	OPT_CMD_BASE = 0x200, /* commands number their own long options from here */
};
#define DMR_GLOBAL_LONGOPTS                                        \
	{ "root", required_argument, NULL, 'r' },                  \
	{ "metadata", required_argument, NULL, OPT_METADATA },     \
	{ "data", required_argument, NULL, OPT_DATA },             \
	{ "json", no_argument, NULL, OPT_JSON },                   \
	{ "bundle", required_argument, NULL, OPT_BUNDLE },         \
	{ "quiet", no_argument, NULL, 'q' },                       \
	{ "verbose", no_argument, NULL, 'v' },                     \
	{ "help", no_argument, NULL, 'h' },                        \
	{ "version", no_argument, NULL, 'V' }

/* Handles a global option returned by getopt_long. Returns 1 if it was
 * one, 0 if not; exits for -h/-V (printing usage via usage_fn). */
int dmr_cli_global_opt(struct dmr_cli *cli, int c, const char *arg, void (*usage_fn)(FILE *));

/* Prints "dmrescue: msg" on stderr. */
void dmr_cli_error(const struct dmr_cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints a usage error and the "try --help" line; returns DMR_EXIT_USAGE. */
int dmr_cli_usage_error(const struct dmr_cli *cli, const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* For getopt's ':' (missing argument) and '?' (unknown option): prints
 * the usage error and returns DMR_EXIT_USAGE. Option strings start with
 * ':' so the two can be told apart. */
int dmr_cli_bad_option(const struct dmr_cli *cli, const char *cmd, int c, char **argv);

/* Maps a library error to an exit code and prints it. */
int dmr_cli_fail(const struct dmr_cli *cli, const struct dmr_err *err);

/* The metadata file: --metadata, or ROOT/devicemapper/devicemapper/metadata
 * (with --bundle: as the bundle recorded it, for messages). */
const char *dmr_cli_metadata_path(struct dmr_cli *cli);

/* The data file: --data, or ROOT/devicemapper/devicemapper/data (with
 * --bundle: as the bundle recorded it, for messages). */
const char *dmr_cli_data_path(struct dmr_cli *cli);

/* The data file to read: dmr_cli_data_path, or NULL with --bundle (a
 * bundle holds no data file, and the recorded path is the host's). */
const char *dmr_cli_data_input(struct dmr_cli *cli);

/* The Docker root to name in output: --root, or the one a bundle was made of. */
const char *dmr_cli_root_shown(const struct dmr_cli *cli);

/* dk_state_read of the root; with --bundle, the root's name and the pool's
 * name are the ones the bundle recorded (the extraction's inode would make
 * another pool name). */
struct dk_state;
int dmr_cli_state_read(const struct dmr_cli *cli, struct dk_state *st, struct dmr_err *err);

/* Opens the pool read-only, printing any error; NULL on failure with
 * *exit_code set. */
struct tm_pool *dmr_cli_open_pool(struct dmr_cli *cli, int *exit_code);
/* The same with tm_pool_open flags; on failure fills err and prints nothing. */
struct tm_pool *dmr_cli_open_pool_flags(struct dmr_cli *cli, unsigned flags, struct dmr_err *err);

/* Prints a --json document on stdout (pretty, "/" unescaped, one newline
 * at the end) and frees it. */
struct json_object;
void dmr_cli_put_json(struct json_object *root);

/* Flushes stdout and turns a write error into DMR_EXIT_OUTPUT. */
int dmr_cli_finish_stdout(const struct dmr_cli *cli, int code);

/* Damage reporting shared by the commands: one line on stderr per damaged
 * range, and a count so the command can exit with DMR_EXIT_DAMAGE. */
struct dmr_damage_log {
	const struct dmr_cli *cli;
	const char *path;
	unsigned long count;
};
void dmr_damage_tree(void *log, const char *tree, const struct tm_damage *d);
/* For mapping trees: dev_id names the device whose virtual blocks are lost. */
void dmr_damage_device(struct dmr_damage_log *log, uint64_t dev_id, const struct tm_damage *d);
void dmr_damage_note(struct dmr_damage_log *log, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The pool as the commands see it: opened read-only, the live superblock or
 * a metadata snapshot's, its devices, and the roots of their mapping trees
 * (devices missing from one of the trees are noted as damage). */
struct dmr_pool_view {
	struct tm_pool *pool;
	const struct tm_superblock *sb; /* live, or &snap */
	struct tm_superblock snap;
	struct tm_devlist devs;
	uint64_t *roots;     /* mapping roots to walk */
	size_t *dev_of_root; /* root index -> device index */
	size_t nroots;
	struct dmr_damage_log log;
};

/* Opens the pool and reads its devices (of the held metadata snapshot, or
 * the one at snap_block, when use_snap). Returns an exit code; on failure
 * the error is printed. Close the view in any case. */
int dmr_pool_view_open(struct dmr_cli *cli, struct dmr_pool_view *v, int use_snap, uint64_t snap_block);

/* Collects the roots of the devices want() accepts (all when NULL) that
 * have a mapping tree, and details too when need_details. */
int dmr_pool_view_roots(struct dmr_pool_view *v, int (*want)(void *ctx, const struct tm_device *d), void *ctx,
			int need_details);
void dmr_pool_view_close(struct dmr_pool_view *v);

/* A tm_usage_compute damage callback for a view (ctx): the damage goes to
 * the view's log under the device of that root. */
void dmr_pool_view_usage_damage(void *ctx, size_t root, const struct tm_damage *d);

int cmd_dump(struct dmr_cli *cli, int argc, char **argv);
int cmd_ls(struct dmr_cli *cli, int argc, char **argv);
int cmd_scan(struct dmr_cli *cli, int argc, char **argv);
int cmd_check(struct dmr_cli *cli, int argc, char **argv);
int cmd_clean(struct dmr_cli *cli, int argc, char **argv);
int cmd_undo(struct dmr_cli *cli, int argc, char **argv);
int cmd_reclaim(struct dmr_cli *cli, int argc, char **argv);
int cmd_teardown(struct dmr_cli *cli, int argc, char **argv);
int cmd_export(struct dmr_cli *cli, int argc, char **argv);
int cmd_diff(struct dmr_cli *cli, int argc, char **argv);
int cmd_timeline(struct dmr_cli *cli, int argc, char **argv);
int cmd_bundle(struct dmr_cli *cli, int argc, char **argv);

/* Opens cli->bundle for cli->cmd: verifies it, extracts it into a private
 * temporary directory (removed at exit) and points cli->root there. Exits
 * with a message on failure or when the command cannot run on a bundle. */
void dmr_cli_open_bundle(struct dmr_cli *cli);

#endif
