/* dmrescue timeline: the pool's devices in the order they were made.
 *
 * The pool keeps a time counter that every snapshot moves on; each device
 * records its creation time and the time of its last snapshot, each mapping
 * the time it was written. With the transaction ids of the pool and of
 * Docker's files, and the owner from the inventory, that orders the host's
 * history: which layer came from which, and how much each device wrote
 * after its last snapshot (its own changes, not shared with it). Read-only. */
#include "config.h"
#include "cli.h"
#include "docker/state.h"
#include "inventory.h"
#include "thinmeta/mtimes.h"
#include "thinmeta/usage.h"
#include "util/jsonc.h"

#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TIMELINE_SCHEMA "dmrescue.timeline/1"

static void timeline_usage(FILE *out)
{
	fputs("Usage:\n"
	      " dmrescue timeline [options]\n"
	      "\n"
	      "The pool's thin devices in creation order: the pool's creation and snapshot\n"
	      "times, the transaction ids of the pool and of Docker's files, the owner,\n"
	      "and when each device's mappings were written (the mapping time field): how\n"
	      "many since its last snapshot, and how many at each pool time.\n"
	      "\n"
	      "Options:\n"
	      " -m, --metadata-snap  read the held metadata snapshot\n"
	      "     --json           one JSON document (schema " TIMELINE_SCHEMA ")\n"
	      "\n"
	      "Exit status: 0 done, 2 damaged metadata (what could be read is shown),\n"
	      "3 input unreadable, 64 usage.\n", out);
}

struct row {
	size_t dev;  /* index into the view's devices */
	size_t root; /* SIZE_MAX: no mapping tree */
};

struct timeline {
	struct dmr_cli *cli;
	int use_snap;
	struct dmr_pool_view v;
	struct tm_usage u;
	struct tm_timehist *hist; /* per root */
	struct dk_state st;
	struct inventory inv;
	int have_inv, have_state;
	struct row *rows;
	size_t nr_rows;
};

static int cmp_rows(const void *a, const void *b, void *ctx)
{
	const struct tm_devlist *l = ctx;
	const struct tm_device *x = &l->dev[((const struct row *)a)->dev], *y = &l->dev[((const struct row *)b)->dev];
	if (x->creation_time != y->creation_time)
		return x->creation_time < y->creation_time ? -1 : 1;
	return x->dev_id < y->dev_id ? -1 : x->dev_id > y->dev_id;
}

static int load(struct timeline *tl)
{
	struct dmr_cli *cli = tl->cli;
	struct dmr_err err = { 0 };
	int code = dmr_pool_view_open(cli, &tl->v, tl->use_snap, 0);
	if (code == DMR_EXIT_OK)
		code = dmr_pool_view_roots(&tl->v, NULL, NULL, 0);
	if (code != DMR_EXIT_OK)
		return code;
	struct dmr_pool_view *v = &tl->v;
	uint64_t nr_data = v->pool->sb.data_sm.nr_blocks;
	tl->hist = calloc(v->nroots + 1, sizeof(*tl->hist));
	tl->rows = calloc(v->devs.n + 1, sizeof(*tl->rows));
	if (!tl->hist || !tl->rows) {
		dmr_cli_error(cli, "out of memory");
		return DMR_EXIT_INPUT;
	}
	if (tm_usage_compute(v->pool, v->roots, v->nroots, nr_data, dmr_pool_view_usage_damage, v, &tl->u, &err) ||
	    tm_mapping_times(v->pool, v->roots, v->nroots, nr_data, NULL, NULL, tl->hist, &err))
		return dmr_cli_fail(cli, &err);
	/* Docker's side, when the pool is the root's own (as ls decides). */
	char mdir[PATH_MAX];
	struct stat sb;
	snprintf(mdir, sizeof(mdir), "%s/devicemapper", cli->root);
	if (!cli->metadata_path && stat(mdir, &sb) == 0 && S_ISDIR(sb.st_mode)) {
		if (dmr_cli_state_read(cli, &tl->st, &err) == 0) {
			tl->have_state = 1;
			if (inv_build(&tl->inv, v->pool, &v->devs, v->dev_of_root, v->nroots, &tl->u, &tl->st, NULL, &err) == 0)
				tl->have_inv = 1;
		}
		if (!tl->have_inv && !cli->quiet)
			dmr_cli_error(cli, "%s: owners unknown: %s", dmr_cli_root_shown(cli), err.msg);
	}
	for (size_t i = 0; i < v->devs.n; i++)
		tl->rows[i] = (struct row){ .dev = i, .root = SIZE_MAX };
	for (size_t r = 0; r < v->nroots; r++)
		tl->rows[v->dev_of_root[r]].root = r;
	tl->nr_rows = v->devs.n;
	qsort_r(tl->rows, tl->nr_rows, sizeof(*tl->rows), cmp_rows, &v->devs);
	return v->log.count ? DMR_EXIT_DAMAGE : DMR_EXIT_OK;
}

static const struct inv_item *row_item(const struct timeline *tl, const struct row *r)
{
	return tl->have_inv ? inv_item_for_device(&tl->inv, tl->v.devs.dev[r->dev].dev_id) : NULL;
}

static const struct tm_timehist *row_hist(const struct timeline *tl, const struct row *r)
{
	static const struct tm_timehist none;
	return r->root == SIZE_MAX ? &none : &tl->hist[r->root];
}

static void print_human(const struct timeline *tl)
{
	const struct tm_superblock *sb = tl->v.sb;
	printf("Pool %s: time %" PRIu32 ", transaction %" PRIu64 "%s\n", tl->v.pool->path, sb->time, sb->trans_id,
	       tl->use_snap ? " (metadata snapshot)" : "");
	if (tl->have_state) {
		const struct dk_state *st = &tl->st;
		printf("Docker:");
		if (st->txn.present && st->txn.valid)
			printf(" transaction-metadata: open transaction %" PRIu64 "%s for device %s;",
			       st->txn.open_transaction_id,
			       st->txn.open_transaction_id > sb->trans_id ? " (ahead of the pool: rolled back at start)" : "",
			       st->txn.device_hash ? (st->txn.device_hash[0] ? st->txn.device_hash : "base") : "?");
		if (st->deviceset.present && st->deviceset.valid && st->deviceset.next_device_id >= 0)
			printf(" deviceset-metadata: next_device_id %" PRId64, st->deviceset.next_device_id);
		printf("\n");
	}
	printf("%4s %7s %7s %8s %10s %8s %10s %-18s %-24s %s\n", "DEV", "CREATED", "SNAPPED", "POOL_TID", "DOCKER_TID",
	       "MAPPED", "SINCE_SNAP", "CLASS", "OWNER", "WRITTEN_AT (time:blocks)");
	for (size_t i = 0; i < tl->nr_rows; i++) {
		const struct row *r = &tl->rows[i];
		const struct tm_device *d = &tl->v.devs.dev[r->dev];
		const struct inv_item *it = row_item(tl, r);
		const struct tm_timehist *h = row_hist(tl, r);
		char dtid[24] = "-";
		if (it && it->file && it->file->valid)
			snprintf(dtid, sizeof(dtid), "%" PRIu64, it->file->transaction_id);
		printf("%4" PRIu64 " %7" PRIu32 " %7" PRIu32 " %8" PRIu64 " %10s %8" PRIu64 " %10" PRIu64 " %-18s %-24s", d->dev_id,
		       d->creation_time, d->snapshotted_time, d->transaction_id, dtid, d->mapped_blocks,
		       tm_timehist_since(h, d->snapshotted_time), it ? inv_class_name(it->cls) : "-", inv_item_owner(it));
		for (size_t k = 0; k < h->n; k++)
			printf("%s%" PRIu32 ":%" PRIu64, k ? "," : " ", h->v[k].time, h->v[k].blocks);
		printf("\n");
	}
}

static void print_json(const struct timeline *tl)
{
	const struct tm_superblock *sb = tl->v.sb;
	json_object *root = json_object_new_object();
	json_object_object_add(root, "schema", json_object_new_string(TIMELINE_SCHEMA));
	json_object *pool = json_object_new_object();
	json_object_object_add(pool, "metadata", json_object_new_string(tl->v.pool->path));
	json_object_object_add(pool, "time", json_object_new_int64(sb->time));
	json_object_object_add(pool, "transaction_id", json_object_new_int64((int64_t)sb->trans_id));
	json_object_object_add(pool, "metadata_snapshot", json_object_new_boolean(tl->use_snap));
	json_object_object_add(root, "pool", pool);
	json_object *dk = NULL;
	if (tl->have_state) {
		const struct dk_state *st = &tl->st;
		dk = json_object_new_object();
		int txn = st->txn.present && st->txn.valid;
		json_object_object_add(dk, "open_transaction_id",
				       txn ? json_object_new_int64((int64_t)st->txn.open_transaction_id) : NULL);
		json_object_object_add(dk, "open_transaction_hash",
				       txn && st->txn.device_hash ? json_object_new_string(st->txn.device_hash) : NULL);
		json_object_object_add(dk, "open_transaction_device_id",
				       txn && st->txn.device_id >= 0 ? json_object_new_int64(st->txn.device_id) : NULL);
		int ds = st->deviceset.present && st->deviceset.valid && st->deviceset.next_device_id >= 0;
		json_object_object_add(dk, "next_device_id", ds ? json_object_new_int64(st->deviceset.next_device_id) : NULL);
	}
	json_object_object_add(root, "docker", dk);
	json_object *devs = json_object_new_array();
	for (size_t i = 0; i < tl->nr_rows; i++) {
		const struct row *r = &tl->rows[i];
		const struct tm_device *d = &tl->v.devs.dev[r->dev];
		const struct inv_item *it = row_item(tl, r);
		const struct tm_timehist *h = row_hist(tl, r);
		json_object *o = json_object_new_object();
		json_object_object_add(o, "thin_id", json_object_new_int64((int64_t)d->dev_id));
		json_object_object_add(o, "creation_time", json_object_new_int64(d->creation_time));
		json_object_object_add(o, "snapshotted_time", json_object_new_int64(d->snapshotted_time));
		json_object_object_add(o, "transaction_id", json_object_new_int64((int64_t)d->transaction_id));
		json_object_object_add(o, "docker_transaction_id", it && it->file && it->file->valid ?
				       json_object_new_int64((int64_t)it->file->transaction_id) : NULL);
		json_object_object_add(o, "hash", it && it->hash ? json_object_new_string(it->hash) : NULL);
		json_object_object_add(o, "class", it ? json_object_new_string(inv_class_name(it->cls)) : NULL);
		json_object_object_add(o, "owner", it && strcmp(inv_item_owner(it), "-") ?
				       json_object_new_string(inv_item_owner(it)) : NULL);
		json_object_object_add(o, "mapped_blocks", json_object_new_int64((int64_t)d->mapped_blocks));
		json_object_object_add(o, "written_since_snapshot",
				       json_object_new_int64((int64_t)tm_timehist_since(h, d->snapshotted_time)));
		json_object *times = json_object_new_array();
		for (size_t k = 0; k < h->n; k++) {
			json_object *t = json_object_new_object();
			json_object_object_add(t, "time", json_object_new_int64(h->v[k].time));
			json_object_object_add(t, "blocks", json_object_new_int64((int64_t)h->v[k].blocks));
			json_object_array_add(times, t);
		}
		json_object_object_add(o, "mapping_times", times);
		json_object_array_add(devs, o);
	}
	json_object_object_add(root, "devices", devs);
	json_object_object_add(root, "damaged_ranges", json_object_new_int64((int64_t)tl->v.log.count));
	dmr_cli_put_json(root);
}

int cmd_timeline(struct dmr_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		DMR_GLOBAL_LONGOPTS,
		{ "metadata-snap", no_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	struct timeline tl;
	memset(&tl, 0, sizeof(tl));
	tl.cli = cli;
	int ch;
	while ((ch = getopt_long(argc, argv, DMR_GLOBAL_SHORTOPTS "m", longopts, NULL)) != -1) {
		if (dmr_cli_global_opt(cli, ch, optarg, timeline_usage))
			continue;
		if (ch == 'm') {
			tl.use_snap = 1;
			continue;
		}
		return dmr_cli_bad_option(cli, "timeline", ch, argv);
	}
	if (optind < argc)
		return dmr_cli_usage_error(cli, "timeline", "unexpected argument '%s'", argv[optind]);
	int code = load(&tl);
	if (code == DMR_EXIT_OK || (code == DMR_EXIT_DAMAGE && tl.nr_rows)) {
		if (cli->json)
			print_json(&tl);
		else if (!cli->quiet)
			print_human(&tl);
		code = dmr_cli_finish_stdout(cli, code);
	}
	for (size_t r = 0; tl.hist && r < tl.v.nroots; r++)
		tm_timehist_free(&tl.hist[r]);
	free(tl.hist);
	free(tl.rows);
	inv_free(&tl.inv);
	dk_state_free(&tl.st);
	tm_usage_free(&tl.u);
	dmr_pool_view_close(&tl.v);
	return code;
}
