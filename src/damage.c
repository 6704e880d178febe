#include "config.h"
#include "util/fmt.h"
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>

void dmr_damage_tree(void *vlog, const char *tree, const struct tm_damage *d)
{
	struct dmr_damage_log *log = vlog;
	char keys[64];
	fmt_key_range(keys, sizeof(keys), d->lo, d->hi);
	log->count++;
	if (!log->cli->quiet)
		dmr_cli_error(log->cli, "%s: %s: block %llu: %s (keys %s lost)", log->path, tree,
			      (unsigned long long)d->block, d->reason, keys);
}

void dmr_damage_device(struct dmr_damage_log *log, uint64_t dev_id, const struct tm_damage *d)
{
	char keys[64];
	fmt_key_range(keys, sizeof(keys), d->lo, d->hi);
	log->count++;
	if (!log->cli->quiet)
		dmr_cli_error(log->cli, "%s: device %llu: block %llu: %s (virtual blocks %s lost)", log->path,
			      (unsigned long long)dev_id, (unsigned long long)d->block, d->reason, keys);
}

void dmr_damage_note(struct dmr_damage_log *log, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log->count++;
	if (!log->cli->quiet)
		dmr_cli_error(log->cli, "%s: %s", log->path, msg);
}
