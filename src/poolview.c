/* The pool as the commands see it (see struct dmr_pool_view in cli.h). */
#include "config.h"
#include "cli.h"

#include <stdlib.h>

int dmr_pool_view_open(struct dmr_cli *cli, struct dmr_pool_view *v, int use_snap, uint64_t snap_block)
{
	int rc = DMR_EXIT_OK;
	struct dmr_err err = { 0 };
	*v = (struct dmr_pool_view){ .log = { .cli = cli } };
	v->pool = dmr_cli_open_pool(cli, &rc);
	if (!v->pool)
		return rc;
	v->log.path = v->pool->path;
	v->sb = &v->pool->sb;
	if (use_snap) {
		if (tm_pool_read_snapshot(v->pool, snap_block, &v->snap, &err))
			return dmr_cli_fail(cli, &err);
		v->sb = &v->snap;
	}
	if (tm_devices_read(v->pool, v->sb, &v->devs, dmr_damage_tree, &v->log, &err))
		return dmr_cli_fail(cli, &err);
	return DMR_EXIT_OK;
}

int dmr_pool_view_roots(struct dmr_pool_view *v, int (*want)(void *ctx, const struct tm_device *d), void *ctx,
			int need_details)
{
	size_t n = v->devs.n;
	v->roots = malloc((n + 1) * sizeof(*v->roots));
	v->dev_of_root = malloc((n + 1) * sizeof(*v->dev_of_root));
	if (!v->roots || !v->dev_of_root) {
		dmr_cli_error(v->log.cli, "%s: out of memory", v->pool->path);
		return DMR_EXIT_INPUT;
	}
	v->nroots = 0;
	for (size_t i = 0; i < n; i++) {
		const struct tm_device *d = &v->devs.dev[i];
		if (want && !want(ctx, d))
			continue;
		if (!d->in_details)
			dmr_damage_note(&v->log, "device %llu has a mapping tree but no details%s",
					(unsigned long long)d->dev_id, need_details ? ": left out" : "");
		if (!d->in_mapping)
			dmr_damage_note(&v->log, "device %llu has details but no mapping tree",
					(unsigned long long)d->dev_id);
		if (d->in_mapping && (d->in_details || !need_details)) {
			v->roots[v->nroots] = d->mapping_root;
			v->dev_of_root[v->nroots++] = i;
		}
	}
	return DMR_EXIT_OK;
}

void dmr_pool_view_close(struct dmr_pool_view *v)
{
	free(v->roots);
	free(v->dev_of_root);
	tm_devlist_free(&v->devs);
	tm_pool_close(v->pool);
	v->roots = NULL;
	v->dev_of_root = NULL;
	v->pool = NULL;
}

void dmr_pool_view_usage_damage(void *ctx, size_t root, const struct tm_damage *d)
{
	struct dmr_pool_view *v = ctx;
	dmr_damage_device(&v->log, v->devs.dev[v->dev_of_root[root]].dev_id, d);
}
