/* dmrescue check: is this pool (and this Docker root) consistent? */
#include "config.h"
#include "cli.h"
#include "inventory.h"
#include "thinmeta/check.h"

#include <getopt.h>
#include <stdarg.h>
#include "util/jsonc.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CHECK_SCHEMA "dmrescue.check/1"

/* Docker-side finding codes (the pool's are in thinmeta/check.h). */
#define DK_CHK_BAD_FILE "docker-bad-file"
#define DK_CHK_PROBLEM "docker-file-problem"
#define DK_CHK_HOLLOW "docker-hollow-file"
#define DK_CHK_ORPHAN "docker-pool-orphan"
#define DK_CHK_TXN "docker-open-transaction"
#define DK_CHK_DEVICESET "docker-deviceset-metadata"
#define DK_CHK_BASE_UUID "docker-base-uuid-mismatch"
#define DK_CHK_LAYER_NODEV "docker-layer-device-missing"
#define DK_CHK_MOUNT_MISSING "docker-container-mount-missing"

static void check_usage(FILE *out)
{
	fputs("Usage:\n"
	      " dmrescue check [options]\n"
	      "\n"
	      "Check the pool metadata (stricter than thin_check: data reference counts,\n"
	      "mapped_blocks, device sets, mappings beyond the pool...) and, when the\n"
	      "Docker root is found, Docker's files against the pool. Damage is walked\n"
	      "past and reported with what it loses. Read-only.\n"
	      "\n"
	      "Options:\n"
	      "     --json        one JSON document (schema " CHECK_SCHEMA ")\n"
	      " -q, --quiet       no info lines, no summary\n"
	      "\n"
	      "Exit status: 0 consistent, 1 warnings only, 2 fatal damage, 3 input unreadable.\n", out);
}

static const char *const sev_name[] = { "info", "warning", "fatal" };

struct collected {
	struct tm_finding *f;
	size_t n, cap;
	int oom;
};

static void collect(void *ctx, const struct tm_finding *f)
{
	struct collected *c = ctx;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		struct tm_finding *n = realloc(c->f, cap * sizeof(*n));
		if (!n) {
			c->oom = 1;
			return;
		}
		c->f = n;
		c->cap = cap;
	}
	c->f[c->n++] = *f;
}

static void add(struct collected *c, enum tm_severity sev, const char *code, int64_t dev, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void add(struct collected *c, enum tm_severity sev, const char *code, int64_t dev, const char *fmt, ...)
{
	struct tm_finding f = { .severity = sev, .code = code, .block = UINT64_MAX, .dev_id = dev };
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f.msg, sizeof(f.msg), fmt, ap);
	va_end(ap);
	collect(c, &f);
}

static const char *hash_name(const char *h)
{
	return !h ? "-" : h[0] ? h : "base";
}

/* Docker's files against the pool: what would stop Docker, or what Docker
 * would silently drop. */
static void docker_checks(struct collected *c, const struct dk_state *st, const struct inventory *inv)
{
	for (size_t i = 0; i < st->nr_problems; i++)
		add(c, TM_SEV_WARNING, DK_CHK_PROBLEM, -1, "%s: %s", st->problems[i].path, st->problems[i].msg);
	if (st->deviceset.present && !st->deviceset.valid)
		add(c, TM_SEV_FATAL, DK_CHK_DEVICESET, -1,
		    "devicemapper/metadata/deviceset-metadata does not parse: Docker will not start");
	for (size_t i = 0; i < st->nr_transients; i++)
		if (st->transients[i].kind == DK_TRANSIENT_STRAY)
			add(c, TM_SEV_FATAL, DK_CHK_BAD_FILE, -1,
			    "%s: Docker loads every file under devicemapper/metadata/ as a device: it will not start",
			    st->transients[i].path);
	/* next_device_id is only a search hint, stale after any crash: say so
	 * when it is, and when it cannot be one. */
	int64_t max_id = -1;
	for (size_t i = 0; i < st->nr_files; i++)
		if (st->files[i].valid && st->files[i].device_id > max_id)
			max_id = st->files[i].device_id;
	if (st->deviceset.valid && st->deviceset.next_device_id > 0xffffff)
		add(c, TM_SEV_WARNING, DK_CHK_DEVICESET, -1,
		    "deviceset-metadata: next_device_id %lld is beyond Docker's 24-bit device ids",
		    (long long)st->deviceset.next_device_id);
	else if (st->deviceset.valid && st->deviceset.next_device_id >= 0 && st->deviceset.next_device_id < max_id)
		add(c, TM_SEV_INFO, DK_CHK_DEVICESET, -1,
		    "deviceset-metadata: next_device_id %lld is behind the highest device id %lld in use "
		    "(stale after a crash; harmless: Docker searches forward for a free id)",
		    (long long)st->deviceset.next_device_id, (long long)max_id);
	const struct inv_item *base = NULL;
	for (size_t i = 0; i < inv->nr_items; i++) {
		const struct inv_item *it = &inv->items[i];
		if (it->hash && !it->hash[0] && it->thin_id >= 0)
			base = it;
		switch (it->cls) {
		case INV_BAD_FILE:
			add(c, TM_SEV_FATAL, DK_CHK_BAD_FILE, it->thin_id, "%s cannot be loaded: Docker will not start",
			    it->path ? it->path : hash_name(it->hash));
			break;
		case INV_HOLLOW_FILE:
			add(c, it->hash && !it->hash[0] ? TM_SEV_FATAL : TM_SEV_WARNING, DK_CHK_HOLLOW, -1,
			    "%s claims thin device %lld, which is not in the pool%s", it->path ? it->path : hash_name(it->hash),
			    it->file ? (long long)it->file->device_id : -1LL,
			    it->hash && !it->hash[0] ? ": Docker cannot activate its base device and will not start" : "");
			break;
		case INV_POOL_ORPHAN:
			add(c, TM_SEV_WARNING, DK_CHK_ORPHAN, it->thin_id, "thin device %lld has no Docker metadata file",
			    (long long)it->thin_id);
			break;
		case INV_OPEN_TRANSACTION:
			add(c, TM_SEV_WARNING, DK_CHK_TXN, it->thin_id,
			    "transaction %llu is open (pool at %llu): at its next start Docker deletes %s%s",
			    (unsigned long long)st->txn.open_transaction_id, (unsigned long long)inv->pool.trans_id,
			    hash_name(it->hash), it->thin_id >= 0 ? " and its thin device" : "");
			break;
		default:
			break;
		}
		/* A layer whose device is missing: Docker drops its images. */
		if (it->thin_id < 0 && it->nr_layers && it->cls != INV_TRANSIENT)
			add(c, TM_SEV_WARNING, DK_CHK_LAYER_NODEV, -1,
			    "layer %s has no device in the pool: Docker drops the images using it", it->layers[0]);
	}
	for (size_t i = 0; i < st->nr_layers; i++) {
		const struct dk_layer *l = &st->layers[i];
		if (l->removing || !l->cache_id || dk_state_file_by_hash(st, l->cache_id))
			continue;
		add(c, TM_SEV_WARNING, DK_CHK_LAYER_NODEV, -1,
		    "layer %s: cache-id %s has no metadata file: Docker drops the images using it", l->chain_id, l->cache_id);
	}
	for (size_t i = 0; i < st->nr_containers; i++) {
		const struct dk_container *ct = &st->containers[i];
		if (st->layout != DK_LAYOUT_DOCKER)
			break;
		const char *mount_id = NULL;
		for (size_t m = 0; m < st->nr_mounts && !mount_id; m++)
			if (st->mounts[m].name && strcmp(st->mounts[m].name, ct->id) == 0)
				mount_id = st->mounts[m].mount_id;
		/* Docker's restore loads layerdb/mounts/<id> only (GetRWLayer):
		 * without it the container is skipped; with it but without the
		 * device, it is listed and fails when mounted ("Unknown device"). */
		if (!mount_id)
			add(c, TM_SEV_WARNING, DK_CHK_MOUNT_MISSING, -1,
			    "container %s (%s) has no read-write layer record: Docker skips it at start",
			    ct->name ? ct->name : "?", ct->id);
		else if (!dk_state_file_by_hash(st, mount_id))
			add(c, TM_SEV_WARNING, DK_CHK_MOUNT_MISSING, -1,
			    "container %s (%s): its read-write layer %s has no metadata file: Docker lists it but cannot start it",
			    ct->name ? ct->name : "?", ct->id, mount_id);
	}
	if (base && st->deviceset.valid && st->deviceset.base_uuid && st->deviceset.base_uuid[0] && base->fs.found &&
	    strcmp(base->fs.uuid, st->deviceset.base_uuid) != 0)
		add(c, TM_SEV_FATAL, DK_CHK_BASE_UUID, base->thin_id,
		    "the base device's filesystem UUID is %s, deviceset-metadata says %s: Docker stops with "
		    "\"Base Device UUID and Filesystem verification failed\"",
		    base->fs.uuid[0] ? base->fs.uuid : "(none)", st->deviceset.base_uuid);
}

static void print_json(const char *meta, const struct collected *c, const struct tm_check_stats *s, int docker,
		       const char *verdict)
{
	struct json_object *root = json_object_new_object();
	json_object_object_add(root, "schema", json_object_new_string(CHECK_SCHEMA));
	json_object_object_add(root, "metadata", json_object_new_string(meta));
	json_object_object_add(root, "docker_checked", json_object_new_boolean(docker));
	struct json_object *arr = json_object_new_array();
	for (size_t i = 0; i < c->n; i++) {
		const struct tm_finding *f = &c->f[i];
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "severity", json_object_new_string(sev_name[f->severity]));
		json_object_object_add(o, "code", json_object_new_string(f->code));
		json_object_object_add(o, "block", f->block != UINT64_MAX ? json_object_new_int64((int64_t)f->block) : NULL);
		json_object_object_add(o, "dev_id", f->dev_id >= 0 ? json_object_new_int64(f->dev_id) : NULL);
		json_object_object_add(o, "message", json_object_new_string(f->msg));
		json_object_array_add(arr, o);
	}
	json_object_object_add(root, "findings", arr);
	struct json_object *st = json_object_new_object();
	json_object_object_add(st, "metadata_blocks_checked", json_object_new_int64((int64_t)s->meta_blocks_checked));
	json_object_object_add(st, "nodes", json_object_new_int64((int64_t)s->nodes));
	json_object_object_add(st, "mappings", json_object_new_int64((int64_t)s->mappings));
	json_object_object_add(st, "devices", json_object_new_int64((int64_t)s->devices));
	json_object_object_add(root, "stats", st);
	json_object_object_add(root, "verdict", json_object_new_string(verdict));
	dmr_cli_put_json(root);
}

int cmd_check(struct dmr_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = { DMR_GLOBAL_LONGOPTS, { NULL, 0, NULL, 0 } };
	int c;
	while ((c = getopt_long(argc, argv, DMR_GLOBAL_SHORTOPTS, longopts, NULL)) != -1) {
		if (dmr_cli_global_opt(cli, c, optarg, check_usage))
			continue;
		return dmr_cli_bad_option(cli, "check", c, argv);
	}
	if (optind < argc)
		return dmr_cli_usage_error(cli, "check", "unexpected argument '%s'", argv[optind]);

	int rc = DMR_EXIT_OK;
	struct dmr_err err = { 0 };
	struct collected col = { 0 };
	struct tm_check_stats stats = { 0 };
	struct tm_pool *p = dmr_cli_open_pool_flags(cli, TM_POOL_ALLOW_SHORT, &err);
	if (!p) {
		if (err.code != DMR_ECORRUPT)
			return dmr_cli_fail(cli, &err);
		/* A superblock that cannot be used is the check's answer, not
		 * a failure to run: report it like any finding. */
		add(&col, TM_SEV_FATAL, TM_CHK_SUPERBLOCK, -1, "%s", err.msg);
		if (col.n)
			col.f[0].block = 0;
		if (cli->json)
			print_json(dmr_cli_metadata_path(cli), &col, &stats, 0, "damaged");
		else
			printf("fatal %s: %s\n", TM_CHK_SUPERBLOCK, err.msg);
		free(col.f);
		return dmr_cli_finish_stdout(cli, DMR_EXIT_DAMAGE);
	}
	struct tm_check_opts opts = { .data_path = dmr_cli_data_input(cli) };
	if (tm_check_pool(p, &opts, collect, &col, &stats, &err)) {
		rc = dmr_cli_fail(cli, &err);
		goto out;
	}
	/* Docker's side, when the pool is the root's own. */
	char mdir[4200];
	struct stat sbuf;
	snprintf(mdir, sizeof(mdir), "%s/devicemapper/metadata", cli->root);
	int docker = !cli->metadata_path && stat(mdir, &sbuf) == 0 && S_ISDIR(sbuf.st_mode);
	if (docker) {
		struct dk_state st = { 0 };
		struct dmr_pool_view v;
		struct tm_usage u = { 0 };
		struct inventory inv = { 0 };
		int vr = dmr_pool_view_open(cli, &v, 0, 0);
		if (vr == DMR_EXIT_OK)
			vr = dmr_pool_view_roots(&v, NULL, NULL, 0);
		if (vr == DMR_EXIT_OK && dmr_cli_state_read(cli, &st, &err) == 0 &&
		    tm_usage_compute(v.pool, v.roots, v.nroots, v.pool->sb.data_sm.nr_blocks, NULL, NULL, &u, &err) == 0 &&
		    inv_build(&inv, v.pool, &v.devs, v.dev_of_root, v.nroots, &u, &st, dmr_cli_data_input(cli), &err) == 0)
			docker_checks(&col, &st, &inv);
		else
			add(&col, TM_SEV_WARNING, DK_CHK_PROBLEM, -1, "%s: Docker's side not checked: %s", dmr_cli_root_shown(cli),
			    err.msg[0] ? err.msg : "the pool view could not be built");
		inv_free(&inv);
		tm_usage_free(&u);
		dmr_pool_view_close(&v);
		dk_state_free(&st);
	}
	if (col.oom) {
		dmr_cli_error(cli, "out of memory");
		rc = DMR_EXIT_INPUT;
		goto out;
	}
	unsigned long count[3] = { 0 };
	for (size_t i = 0; i < col.n; i++)
		count[col.f[i].severity]++;
	int fatal = count[TM_SEV_FATAL] > 0, warn = count[TM_SEV_WARNING] > 0;
	const char *verdict = fatal ? "damaged" : warn ? "warnings" : "consistent";
	if (cli->json) {
		print_json(p->path, &col, &stats, docker, verdict);
	} else {
		for (size_t i = 0; i < col.n; i++) {
			const struct tm_finding *f = &col.f[i];
			if (cli->quiet && f->severity == TM_SEV_INFO)
				continue;
			printf("%s %s: %s\n", sev_name[f->severity], f->code, f->msg);
		}
		if (!cli->quiet)
			printf("%s: %s (%llu metadata blocks, %llu nodes, %llu mappings, %llu devices checked%s; "
			       "%lu fatal, %lu warnings)\n",
			       p->path, verdict, (unsigned long long)stats.meta_blocks_checked,
			       (unsigned long long)stats.nodes, (unsigned long long)stats.mappings,
			       (unsigned long long)stats.devices, docker ? ", and Docker's files" : "",
			       count[TM_SEV_FATAL], count[TM_SEV_WARNING]);
	}
	rc = dmr_cli_finish_stdout(cli, fatal ? DMR_EXIT_DAMAGE : warn ? DMR_EXIT_FINDINGS : DMR_EXIT_OK);
out:
	free(col.f);
	tm_pool_close(p);
	return rc;
}
