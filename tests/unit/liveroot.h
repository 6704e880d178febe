/* Fake machines for the tests of live (test_live, test_live_dm): in
 * dktree's temp dir per test, <root>/sysroot stands for the machine's /
 * (proc/, sys/, run/) and <root>/docker for Docker's root. */
#ifndef DMR_TESTS_UNIT_LIVEROOT_H
#define DMR_TESTS_UNIT_LIVEROOT_H

#include "unit.h"
#include "dktree.h"

#include "live.h"

/* A cmocka test with a fresh root in *state (dkt_setup, dkt_teardown). */
#define LVR_TEST(f) cmocka_unit_test_setup_teardown(f, dkt_setup, dkt_teardown)

/* Runs the group; UNIT_SKIP where no temp dir can be made. */
#define LVR_RUN(name, tests) \
	(unit_tmpdir_usable() ? cmocka_run_group_tests_name(name, tests, NULL, NULL) : UNIT_SKIP)

/* "<root>/<rel>", in one of two static buffers used in turn (so two may be
 * passed to one call). */
char *lvr_path(const char *root, const char *rel);

/* The findings, one line each on stderr. */
void lvr_print_findings(const struct live_finding *f, size_t n);

/* live_check of the fake machine below root (dm_from_kernel as in
 * struct live_ctx). */
int lvr_check(const char *root, int dm_from_kernel, const char *meta, const char *data, const char *prefix,
	      struct live_finding **f, size_t *n, struct dmr_err *err);

#endif
