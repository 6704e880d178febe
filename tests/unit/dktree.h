/* Small Docker roots for the tests of src/docker: a fresh temp directory
 * per test, files written below it (parent directories made on the way),
 * and everything removed at teardown. */
#ifndef DMR_TESTS_UNIT_DKTREE_H
#define DMR_TESTS_UNIT_DKTREE_H

#include "unit.h"

#include "docker/state.h"

/* 64 lowercase hex digits made of one repeated character. */
#define HEX64(c) c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
		 c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c
#define HA HEX64("a")
#define HB HEX64("b")
#define HC HEX64("c")
#define HD HEX64("d")
#define HE HEX64("e")
#define HF HEX64("f")
#define H1 HEX64("1")
#define H2 HEX64("2")
#define H3 HEX64("3")

/* cmocka setup/teardown: *state becomes the root path (a char *). */
int dkt_setup(void **state);
int dkt_teardown(void **state);

void dkt_write(const char *root, const char *rel, const char *content);
void dkt_writen(const char *root, const char *rel, const void *data, size_t len);
/* A sparse file of the given size. */
void dkt_sparse(const char *root, const char *rel, long long size);
void dkt_mkdir(const char *root, const char *rel);
void dkt_symlink(const char *root, const char *rel, const char *target);
void dkt_mkfifo(const char *root, const char *rel);
void dkt_remove(const char *root, const char *rel);

/* Reading a whole root (inline, so that tests of the lower layers need not
 * link the readers). */

/* dk_state_read that must succeed. */
static inline void dkt_read(const char *root, struct dk_state *st)
{
	struct dmr_err err = { 0 };
	int r = dk_state_read(root, st, &err);
	if (r)
		fail_msg("dk_state_read(%s) = %d: %s", root, r, err.msg);
}

/* The problems as "path: msg" lines, for failure messages. */
static inline void dkt_print_problems(const struct dk_state *st)
{
	for (size_t i = 0; i < st->nr_problems; i++)
		fprintf(stderr, "  problem %zu: %s: %s\n", i, st->problems[i].path, st->problems[i].msg);
}

/* Exactly n problems. */
static inline void dkt_assert_nr_problems(const struct dk_state *st, size_t n)
{
	if (st->nr_problems != n) {
		dkt_print_problems(st);
		fail_msg("%zu problems, expected %zu", st->nr_problems, n);
	}
}

/* The problem at path (relative to the root) has exactly msg. */
static inline void dkt_assert_problem(const struct dk_state *st, const char *path, const char *msg)
{
	for (size_t i = 0; i < st->nr_problems; i++)
		if (!strcmp(st->problems[i].path, path) && !strcmp(st->problems[i].msg, msg))
			return;
	dkt_print_problems(st);
	fail_msg("no problem \"%s: %s\"", path, msg);
}

#endif
