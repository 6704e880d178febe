#include "config.h"
#include "guard.h"
#include "live.h"
#include "thinmeta/check.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

const char *dmr_guard_sysroot(void)
{
#ifdef DMR_FAULT_INJECTION
	const char *s = getenv("DMRESCUE_SYSROOT");
	if (s)
		return s;
#endif
	return "";
}

int dmr_guard_lock(const struct dmr_cli *cli, int *fd)
{
	struct dmr_err err = { 0 };
	if (live_lock(cli->root, fd, &err) == 0)
		return DMR_EXIT_OK;
	dmr_cli_error(cli, "%s", err.msg);
	return err.code == DMR_EUSAGE ? DMR_EXIT_REFUSED : err.code == DMR_ENOENT ? DMR_EXIT_INPUT : DMR_EXIT_OUTPUT;
}

int dmr_guard_live(struct dmr_cli *cli, const char *prefix, int force, const char *verb)
{
	struct dmr_err err = { 0 };
	struct live_ctx lc = { .sysroot = dmr_guard_sysroot() };
	struct live_finding *f = NULL;
	size_t n = 0;
	if (live_check(&lc, cli->root, dmr_cli_metadata_path(cli), dmr_cli_data_path(cli), prefix, &f, &n, &err)) {
		dmr_cli_error(cli, "cannot tell whether the pool is live: %s", err.msg);
		return DMR_EXIT_REFUSED;
	}
	int blocking = 0;
	for (size_t i = 0; i < n; i++) {
		int overridden = f[i].overridable && force;
		dmr_cli_error(cli, "%s%s", f[i].msg, overridden ? " (--force: going on)" : "");
		blocking += !overridden;
	}
	free(f);
	if (blocking) {
		dmr_cli_error(cli, "refusing to %s a live pool: stop Docker and deactivate the pool first%s", verb,
			      force ? "" : " (--force overrides only the process check)");
		return DMR_EXIT_REFUSED;
	}
	return DMR_EXIT_OK;
}

int dmr_guard_confirm(const struct dmr_cli *cli, int yes, const char *question)
{
	if (yes)
		return DMR_EXIT_OK;
	if (!isatty(STDIN_FILENO)) {
		dmr_cli_error(cli, "not confirmed: run again with --yes to make these changes");
		return DMR_EXIT_REFUSED;
	}
	printf("%s [y/N] ", question);
	fflush(stdout);
	char line[16];
	if (!fgets(line, sizeof(line), stdin) || (line[0] != 'y' && line[0] != 'Y')) {
		dmr_cli_error(cli, "not confirmed: nothing changed");
		return DMR_EXIT_REFUSED;
	}
	return DMR_EXIT_OK;
}

struct chk {
	unsigned long fatal;
	char first_fatal[400];
};

static void count_finding(void *ctx, const struct tm_finding *f)
{
	struct chk *c = ctx;
	if (f->severity != TM_SEV_FATAL)
		return;
	if (c->fatal++ == 0)
		snprintf(c->first_fatal, sizeof(c->first_fatal), "%s", f->msg);
}

int dmr_guard_our_check(const char *path, const char *data_path, struct dmr_err *err)
{
	struct tm_pool *p;
	struct chk c = { 0 };
	int r = tm_pool_open(&p, path, 0, err);
	if (r)
		return r;
	struct tm_check_opts o = { .data_path = data_path };
	struct tm_check_stats stats;
	r = tm_check_pool(p, &o, count_finding, &c, &stats, err);
	tm_pool_close(p);
	if (r)
		return r;
	if (c.fatal)
		return dmr_err_set(err, DMR_ECORRUPT, "%s: %lu fatal finding(s), first: %s", path, c.fatal,
				   c.first_fatal);
	return 0;
}

int dmr_guard_thin_check(const char *path, struct dmr_err *err)
{
	const char *exe = NULL;
#ifdef DMR_FAULT_INJECTION
	exe = getenv("DMRESCUE_THIN_CHECK");
#endif
	static const char *const where[] = { "/usr/sbin/thin_check", "/sbin/thin_check", "/usr/bin/thin_check",
					     "/usr/local/sbin/thin_check" };
	for (size_t i = 0; !exe && i < sizeof(where) / sizeof(where[0]); i++)
		if (access(where[i], X_OK) == 0)
			exe = where[i];
	if (!exe || !*exe)
		return 1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return dmr_err_set(err, DMR_EIO, "running %s: %s", exe, strerror(errno));
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0) {
			dup2(null, 1);
			close(null);
		}
		execl(exe, "thin_check", "-q", path, (char *)NULL);
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return dmr_err_set(err, DMR_EIO, "waiting for %s: %s", exe, strerror(errno));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		return 1;
	return dmr_err_set(err, DMR_ECORRUPT, "thin_check rejects the metadata %s (status %d)", path,
			   WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

int dmr_guard_pool_sound(struct dmr_cli *cli, const char *verb)
{
	struct dmr_err err = { 0 };
	int r = dmr_guard_our_check(dmr_cli_metadata_path(cli), dmr_cli_data_path(cli), &err);
	if (r == DMR_ECORRUPT) {
		dmr_cli_error(cli, "%s", err.msg);
		dmr_cli_error(cli, "refusing to %s a damaged pool: repair it first (thin_repair into a new file), "
			      "then run 'dmrescue check'", verb);
		return DMR_EXIT_DAMAGE;
	}
	return r ? dmr_cli_fail(cli, &err) : DMR_EXIT_OK;
}
