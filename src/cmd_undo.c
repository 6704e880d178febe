/* dmrescue undo: put back what a clean changed, from its backup. */
#include "config.h"
#include "cli.h"
#include "guard.h"
#include "backup.h"
#include "docker/state.h"
#include "live.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_ROOT "/var/lib/docker"

enum { OPT_DRY_RUN = OPT_CMD_BASE, OPT_FORCE };

static void undo_usage(FILE *out)
{
	fputs("Usage:\n"
	      " dmrescue undo [options] BACKUP_DIR\n"
	      "\n"
	      "Put back what a clean changed, from the backup it made (by default a\n"
	      "directory under ROOT/devicemapper/dmrescue-backup/): the pool metadata,\n"
	      "the Docker files it rewrote and the ones it removed. Every stored copy is\n"
	      "checked against the backup's manifest first. Refuses when a file changed\n"
	      "since the backup (Docker ran), when a removed path exists again, when\n"
	      "reclaim ran since, and while the pool is in use.\n"
	      "\n"
	      "Options:\n"
	      "     --dry-run     print what would be restored, change nothing\n"
	      " -y, --yes         do not ask for confirmation (needed off a terminal)\n"
	      "     --force       restore over files changed since the backup (keeping them\n"
	      "                   in BACKUP_DIR/displaced/), after a reclaim, or while\n"
	      "                   dockerd runs (never while the pool is active)\n"
	      " -r, --root DIR    Docker root (default: the one the backup records)\n"
	      " -q, --quiet       print errors only\n"
	      "\n"
	      "Exit status: 0 restored, 2 the backup is damaged, 3 the backup or the Docker\n"
	      "root cannot be read, 4 restoring failed, 5 refused, 64 usage error.\n", out);
}

struct printer {
	const struct dmr_cli *cli;
};

static void print_line(void *ctx, const char *line)
{
	const struct printer *p = ctx;
	if (!p->cli->quiet)
		printf("  %s\n", line);
}

/* Exit code for a failure of the backup library, printing it: a refusal
 * is 5, and a failure once the Docker root may have changed is one to
 * write (4); the rest as for every command. */
static int undo_fail(const struct dmr_cli *cli, const struct dmr_err *err, int changed)
{
	if (err->code != DMR_EUSAGE && (!changed || err->code == DMR_ECORRUPT))
		return dmr_cli_fail(cli, err);
	dmr_cli_error(cli, "%s", err->msg);
	return err->code == DMR_EUSAGE ? DMR_EXIT_REFUSED : DMR_EXIT_OUTPUT;
}

/* Asks on the terminal; 1 for yes. */
static int confirm(void)
{
	char answer[16];
	fprintf(stderr, "Restore these? [y/N] ");
	fflush(stderr);
	if (!fgets(answer, sizeof(answer), stdin))
		return 0;
	return !strcmp(answer, "y\n") || !strcmp(answer, "Y\n") || !strcmp(answer, "yes\n");
}

/* Refuses while the pool is in use (dockerd only with --force). Returns an
 * exit code, DMR_EXIT_OK to go ahead. */
static int guard_live(struct dmr_cli *cli, const char *root, int force)
{
	struct dk_state st;
	struct dmr_err err = { 0 };
	memset(&st, 0, sizeof(st));
	/* The pool's device-mapper prefix comes from Docker's driver home;
	 * without it only the loop devices tell whether the pool is live. */
	const char *prefix = dk_state_read(root, &st, &err) == 0 ? st.prefix : NULL;
	cli->root = root;
	int rc = dmr_guard_live(cli, prefix, force, "undo on");
	dk_state_free(&st);
	return rc;
}

int cmd_undo(struct dmr_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		DMR_GLOBAL_LONGOPTS,
		{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "yes", no_argument, NULL, 'y' },
		{ NULL, 0, NULL, 0 },
	};
	int c, yes = 0, root_given = strcmp(cli->root, DEFAULT_ROOT) != 0;
	struct bk_undo_result res = { 0 };
	struct bk_undo_opts o = { .result = &res };
	while ((c = getopt_long(argc, argv, DMR_GLOBAL_SHORTOPTS "y", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_DRY_RUN:
			o.dry_run = 1;
			continue;
		case OPT_FORCE:
			o.force = 1;
			continue;
		case 'y':
			yes = 1;
			continue;
		case 'r':
			root_given = 1;
			break;
		}
		if (dmr_cli_global_opt(cli, c, optarg, undo_usage))
			continue;
		return dmr_cli_bad_option(cli, "undo", c, argv);
	}
	if (optind >= argc)
		return dmr_cli_usage_error(cli, "undo", "no backup directory given");
	if (optind + 1 < argc)
		return dmr_cli_usage_error(cli, "undo", "unexpected argument '%s'", argv[optind + 1]);
	const char *dir = argv[optind];

	struct dmr_err err = { 0 };
	char *recorded = NULL;
	int rc, lock = -1;
	if (!root_given && bk_manifest_root(dir, &recorded, &err))
		return undo_fail(cli, &err, 0);
	const char *root = root_given ? cli->root : recorded;
	struct printer p = { cli };

	/* The plan: what would be restored, and any reason to refuse. */
	if (!cli->quiet)
		printf("Undo from %s (Docker root %s):\n", dir, root);
	struct bk_undo_opts plan = { .force = o.force, .dry_run = 1 };
	if (bk_undo(dir, root, &plan, print_line, &p, &err)) {
		rc = undo_fail(cli, &err, 0);
		goto out;
	}
	if (o.dry_run) {
		rc = DMR_EXIT_OK;
		goto out;
	}
	if (!yes && !isatty(STDIN_FILENO)) {
		dmr_cli_error(cli, "not restoring without confirmation: run on a terminal, or add --yes");
		rc = DMR_EXIT_REFUSED;
		goto out;
	}
	if (live_lock(root, &lock, &err)) {
		rc = err.code == DMR_EUSAGE ? DMR_EXIT_REFUSED : err.code == DMR_ENOENT ? DMR_EXIT_INPUT : DMR_EXIT_OUTPUT;
		dmr_cli_error(cli, "%s", err.msg);
		goto out;
	}
	if ((rc = guard_live(cli, root, o.force)) != DMR_EXIT_OK)
		goto out;
	fflush(stdout);
	if (!yes && !confirm()) {
		dmr_cli_error(cli, "not confirmed: nothing changed");
		rc = DMR_EXIT_REFUSED;
		goto out;
	}
	if (bk_undo(dir, root, &o, NULL, NULL, &err)) {
		rc = undo_fail(cli, &err, res.changed);
		if (res.changed)
			dmr_cli_error(cli, "the Docker root may be partly restored: run undo again once the cause is fixed");
		goto out;
	}
	if (!cli->quiet) {
		printf("Restored %u item%s; %s is marked undone.\n", res.restored, res.restored == 1 ? "" : "s", dir);
		if (res.displaced)
			printf("What was replaced is in %s/displaced/.\n", dir);
	}
	rc = DMR_EXIT_OK;
out:
	live_unlock(lock);
	free(recorded);
	return dmr_cli_finish_stdout(cli, rc);
}
