/* Helpers shared by every harness: invariant failures and scratch space. */
#include "config.h"
#include "fuzz.h"

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void fuzz_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s:%d: fuzz invariant broken: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

static char tmpdir[4096];

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	if (ftw->level == 0)
		return 0;
	if (type == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

void fuzz_rm_below(const char *dir)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void rm_tmpdir(void)
{
	if (!tmpdir[0])
		return;
	fuzz_rm_below(tmpdir);
	rmdir(tmpdir);
}

const char *fuzz_tmpdir(void)
{
	if (tmpdir[0])
		return tmpdir;
	const char *base = getenv("TMPDIR");
	if (!base || !*base)
		base = "/tmp";
	if (snprintf(tmpdir, sizeof(tmpdir), "%s/dmrescue-fuzz.XXXXXX", base) >= (int)sizeof(tmpdir) ||
	    !mkdtemp(tmpdir)) {
		fprintf(stderr, "fuzz: cannot make a temp dir under %s: %s\n", base, strerror(errno));
		exit(2);
	}
	atexit(rm_tmpdir);
	return tmpdir;
}
