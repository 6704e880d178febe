/* The real libdevmapper wrapper on this machine. Whatever the kernel has,
 * it must answer in the terms of dmwrap.h: a list (empty, with no_dm, when
 * there is no device-mapper) or a clear error; never a crash, and never
 * creating the control node to find out. */
#include "unit.h"

#include <errno.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "dmlist.h"
#include "dmwrap.h"

static int exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static void test_read(void **state)
{
	(void)state;
	int had_control = exists("/dev/mapper/control");
	struct dml_list l = { 0 };
	struct dmr_err err = { 0 };
	int r = dml_read(&l, &err);
	fprintf(stderr, "  dml_read = %d (%s): %zu devices%s\n", r, r ? err.msg : "ok", l.n,
		l.no_dm ? ", no device-mapper in this kernel" : "");
	if (r) {
		assert_int_equal(r, DMR_EIO);
		assert_contains(err.msg, "device-mapper");
		assert_int_equal(l.n, 0);
		assert_null(l.v);
	} else {
		if (l.no_dm)
			assert_int_equal(l.n, 0);
		for (size_t i = 0; i < l.n; i++) {
			const struct dml_device *d = &l.v[i];
			fprintf(stderr, "  %s %u:%u open %d flags %#x, %zu deps, %zu targets%s%s\n", d->name,
				major(d->dev), minor(d->dev), d->open_count, d->flags, d->nr_deps,
				d->nr_table, d->nr_table ? ", first " : "", d->nr_table ? d->table[0].type : "");
			assert_true(d->name[0] != '\0');
			for (size_t k = 0; k < d->nr_table; k++)
				assert_non_null(d->table[k].params);
		}
	}
	dml_free(&l);
	assert_int_equal(exists("/dev/mapper/control"), had_control);
}

/* A device that is not there: "gone", or the same clear error. */
static void test_missing_device(void **state)
{
	(void)state;
	int had_control = exists("/dev/mapper/control");
	struct dml_list l = { 0 };
	struct dmr_err err = { 0 };
	struct dml_device *d = dml_add(&l, "dmrescue-test-no-such-device", 0, &err);
	assert_non_null(d);
	int r = dmw_get_deps(d, &err);
	fprintf(stderr, "  deps: %d (%s)\n", r, r ? err.msg : "ok");
	assert_true(r == DMR_ENOENT || r == DMR_EIO);
	assert_contains(err.msg, "device-mapper");
	r = dmw_get_table(d, &err);
	fprintf(stderr, "  table: %d (%s)\n", r, r ? err.msg : "ok");
	assert_true(r == DMR_ENOENT || r == DMR_EIO);
	assert_int_equal(d->nr_deps, 0);
	assert_int_equal(d->nr_table, 0);
	dml_free(&l);
	assert_int_equal(exists("/dev/mapper/control"), had_control);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read),
		cmocka_unit_test(test_missing_device),
	};
	return cmocka_run_group_tests_name("dmwrap", tests, NULL, NULL);
}
