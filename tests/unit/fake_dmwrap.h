/* A scripted device-mapper for the tests: fake_dmwrap.c implements
 * src/dmwrap.h from the script below, and a test links it (with
 * DMR_LIBS_NODM) instead of the real wrapper. */
#ifndef DMR_TESTS_UNIT_FAKE_DMWRAP_H
#define DMR_TESTS_UNIT_FAKE_DMWRAP_H

#include "dmwrap.h"

enum fake_dm_when {
	FAKE_DM_HERE = 0,
	FAKE_DM_GONE_BEFORE_DEPS,  /* listed, then removed: DEPS says ENXIO */
	FAKE_DM_GONE_BEFORE_TABLE, /* removed between DEPS and TABLE */
};

struct fake_dm_dev {
	const char *name;
	unsigned major, minor;
	const char *deps;  /* "7:0 253:1"; NULL: none */
	const char *table; /* "start length type params" lines, '\n' between; NULL: none */
	const char *uuid;
	int open_count;
	enum fake_dm_when when;
	int fail;          /* DMR_E* code: DEPS on this device fails so */
};

struct fake_dm {
	int no_dm;          /* the kernel has no device-mapper */
	int list_fail;      /* DMR_E* code: LIST fails so (message list_msg) */
	const char *list_msg;
	const struct fake_dm_dev *devs;
	size_t n;
};

/* Uses *script (kept, not copied) until the next call; NULL: no dm. */
void fake_dm_set(const struct fake_dm *script);

/* Calls made since fake_dm_set. */
struct fake_dm_calls {
	unsigned list, deps, table;
};
extern struct fake_dm_calls fake_dm_calls;

#endif
