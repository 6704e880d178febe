/* The scripted device-mapper of fake_dmwrap.h: the functions of
 * src/dmwrap.h, answering from the script. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "fake_dmwrap.h"

static const struct fake_dm *script;
struct fake_dm_calls fake_dm_calls;

void fake_dm_set(const struct fake_dm *s)
{
	script = s;
	memset(&fake_dm_calls, 0, sizeof(fake_dm_calls));
}

static int has_dm(void)
{
	return script && !script->no_dm;
}

int dmw_list_names(struct dml_list *l, struct dmr_err *err)
{
	fake_dm_calls.list++;
	l->no_dm = !has_dm();
	if (!has_dm())
		return 0;
	if (script->list_fail)
		return dmr_err_set(err, script->list_fail, "cannot list device-mapper devices: %s",
				   script->list_msg ? script->list_msg : "scripted failure");
	for (size_t i = 0; i < script->n; i++)
		if (!dml_add(l, script->devs[i].name,
			     makedev(script->devs[i].major, script->devs[i].minor), err))
			return DMR_ENOMEM;
	return 0;
}

static const struct fake_dm_dev *find(const char *name)
{
	for (size_t i = 0; has_dm() && i < script->n; i++)
		if (!strcmp(script->devs[i].name, name))
			return &script->devs[i];
	return NULL;
}

int dmw_get_deps(struct dml_device *d, struct dmr_err *err)
{
	fake_dm_calls.deps++;
	const struct fake_dm_dev *s = find(d->name);
	if (!s || s->when == FAKE_DM_GONE_BEFORE_DEPS)
		return dmr_err_set(err, DMR_ENOENT, "no device-mapper device %s", d->name);
	if (s->fail)
		return dmr_err_set(err, s->fail, "cannot read what %s uses: scripted failure", d->name);
	d->open_count = s->open_count;
	for (const char *p = s->deps; p && *p;) {
		unsigned ma, mi;
		int used = 0;
		if (sscanf(p, " %u:%u%n", &ma, &mi, &used) != 2) {
			fprintf(stderr, "fake_dmwrap: bad deps \"%s\" of %s\n", s->deps, s->name);
			abort();
		}
		int r = dml_add_dep(d, makedev(ma, mi), err);
		if (r)
			return r;
		p += used;
		p += strspn(p, " ");
	}
	return 0;
}

int dmw_get_table(struct dml_device *d, struct dmr_err *err)
{
	fake_dm_calls.table++;
	const struct fake_dm_dev *s = find(d->name);
	if (!s || s->when != FAKE_DM_HERE)
		return dmr_err_set(err, DMR_ENOENT, "no device-mapper device %s", d->name);
	snprintf(d->uuid, sizeof(d->uuid), "%s", s->uuid ? s->uuid : "");
	for (const char *p = s->table; p && *p;) {
		size_t len = strcspn(p, "\n");
		char line[512], type[16];
		unsigned long long start, length;
		int used = 0;
		snprintf(line, sizeof(line), "%.*s", (int)len, p);
		if (sscanf(line, "%llu %llu %15s %n", &start, &length, type, &used) != 3) {
			fprintf(stderr, "fake_dmwrap: bad table line \"%s\" of %s\n", line, s->name);
			abort();
		}
		int r = dml_add_target(d, start, length, type, used ? line + used : "", err);
		if (r)
			return r;
		p += len;
		p += strspn(p, "\n");
	}
	return 0;
}
