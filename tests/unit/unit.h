/* Shared includes and small helpers of the cmocka unit tests. */
#ifndef DMR_TESTS_UNIT_UNIT_H
#define DMR_TESTS_UNIT_UNIT_H

#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/* Fails the test unless needle occurs in haystack. */
#define assert_contains(haystack, needle) do { \
		const char *h_ = (haystack), *n_ = (needle); \
		if (!strstr(h_, n_)) \
			fail_msg("\"%s\" does not contain \"%s\"", h_, n_); \
	} while (0)

/* splitmix64, for reproducible pseudo-random test data. */
static inline uint64_t unit_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Temp files made by a test program: unit_tmp_track() records a path,
 * unit_tmp_cleanup() (the group teardown) unlinks every recorded path that
 * is still there, so a test that fails half-way leaves nothing behind. */
void unit_tmp_track(const char *path);
int unit_tmp_cleanup(void **state);

/* Exit status of a test program that cannot run here (automake: skip). */
#define UNIT_SKIP 77

/* 1 when a temp file can be made in $TMPDIR (or /tmp), which the tests
 * that read metadata from files need. */
static inline int unit_tmpdir_usable(void)
{
	const char *t = getenv("TMPDIR");
	char path[4096];
	snprintf(path, sizeof(path), "%s/dmr-unit-probe-XXXXXX", t && *t ? t : "/tmp");
	int fd = mkstemp(path);
	if (fd < 0) {
		fprintf(stderr, "cannot create a temp file in %s: skipping\n", t && *t ? t : "/tmp");
		return 0;
	}
	int ok = write(fd, "x", 1) == 1;
	close(fd);
	unlink(path);
	return ok;
}

#endif
