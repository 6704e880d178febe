/* dmrescue ls: thin devices with their mapped, exclusive and shared space. */
#include "config.h"
#include "cli.h"
#include "inventory.h"
#include "thinmeta/usage.h"
#include "util/fmt.h"

#include <errno.h>
#include <getopt.h>
#include "util/jsonc.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define LS_SCHEMA "dmrescue.ls/1"

enum field {
	F_DEV, F_MAPPED_BLOCKS, F_EXCLUSIVE_BLOCKS, F_SHARED_BLOCKS,
	F_MAPPED_SECTORS, F_EXCLUSIVE_SECTORS, F_SHARED_SECTORS,
	F_MAPPED_BYTES, F_EXCLUSIVE_BYTES, F_SHARED_BYTES,
	F_MAPPED, F_EXCLUSIVE, F_SHARED,
	F_TRANSACTION, F_CREATE_TIME, F_SNAP_TIME,
	F_HIGHEST_MAPPED, F_HIGHEST_MAPPED_BYTES,
	F_CLASS, F_HASH, F_OWNER,
	F_COUNT
};

static const char *const field_names[F_COUNT] = {
	"DEV", "MAPPED_BLOCKS", "EXCLUSIVE_BLOCKS", "SHARED_BLOCKS",
	"MAPPED_SECTORS", "EXCLUSIVE_SECTORS", "SHARED_SECTORS",
	"MAPPED_BYTES", "EXCLUSIVE_BYTES", "SHARED_BYTES",
	"MAPPED", "EXCLUSIVE", "SHARED",
	"TRANSACTION", "CREATE_TIME", "SNAP_TIME",
	"HIGHEST_MAPPED", "HIGHEST_MAPPED_BYTES",
	"CLASS", "HASH", "OWNER",
};

#define DEFAULT_FIELDS "DEV,MAPPED,EXCLUSIVE,SHARED,CREATE_TIME,SNAP_TIME"
/* With a Docker root next to the pool, the owner columns come too. */
#define DEFAULT_FIELDS_DOCKER DEFAULT_FIELDS ",CLASS,OWNER"

static void ls_usage(FILE *out)
{
	fputs("Usage:\n"
	      " dmrescue ls [options]\n"
	      "\n"
	      "List the pool's thin devices with the space each one maps. A data block\n"
	      "mapped by exactly one device is exclusive to it: removing that device\n"
	      "frees it.\n"
	      "\n"
	      "Options:\n"
	      " -o, --output FIELDS   comma-separated columns (default " DEFAULT_FIELDS ",\n"
	      "                       plus CLASS,OWNER when the Docker root is found)\n"
	      "     --no-headers      no header line\n"
	      " -m, --metadata-snap   list the devices of the held metadata snapshot\n"
	      "     --json            one JSON document (schema " LS_SCHEMA ")\n"
	      "\n"
	      "Fields:\n", out);
	for (int i = 0; i < F_COUNT; i++)
		fprintf(out, "%s%s", i % 4 == 0 ? " " : " ", field_names[i]);
	fputs("\n\nGlobal options (-r, --metadata, -q, -v) work here too; see dmrescue --help.\n", out);
}

static void ls_damage(void *ctx, size_t root, const struct tm_damage *d)
{
	struct dmr_pool_view *v = ctx;
	dmr_damage_device(&v->log, v->devs.dev[v->dev_of_root[root]].dev_id, d);
}

/* Parses FIELDS; on an unknown name copies it into bad. */
static int parse_fields(const char *spec, enum field *out, size_t *n, char *bad, size_t badlen)
{
	char *copy = strdup(spec), *save = NULL;
	if (!copy)
		return -1;
	*n = 0;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int found = -1;
		for (int i = 0; i < F_COUNT; i++)
			if (strcasecmp(tok, field_names[i]) == 0)
				found = i;
		if (found < 0 || *n >= 64) {
			snprintf(bad, badlen, "%s", tok);
			free(copy);
			return found < 0 ? -2 : -3;
		}
		out[(*n)++] = (enum field)found;
	}
	free(copy);
	return *n ? 0 : -2;
}

/* One row: the pool device, what it maps, and its Docker owner if known. */
struct ls_row {
	const struct tm_device *d;
	const struct tm_dev_usage *s;
	const struct inv_item *it;
};


#define FIELD_MAX 256

static void field_value(enum field f, const struct ls_row *row, uint64_t bsect, char *buf)
{
	const struct tm_device *d = row->d;
	const struct tm_dev_usage *s = row->s;
	uint64_t shared = s->mapped - s->exclusive;
	uint64_t v = 0;
	switch (f) {
	case F_DEV: v = d->dev_id; break;
	case F_MAPPED_BLOCKS: v = s->mapped; break;
	case F_EXCLUSIVE_BLOCKS: v = s->exclusive; break;
	case F_SHARED_BLOCKS: v = shared; break;
	case F_MAPPED_SECTORS: v = s->mapped * bsect; break;
	case F_EXCLUSIVE_SECTORS: v = s->exclusive * bsect; break;
	case F_SHARED_SECTORS: v = shared * bsect; break;
	case F_MAPPED_BYTES: v = s->mapped * bsect * 512; break;
	case F_EXCLUSIVE_BYTES: v = s->exclusive * bsect * 512; break;
	case F_SHARED_BYTES: v = shared * bsect * 512; break;
	case F_MAPPED: fmt_disk_unit(s->mapped * bsect * 512, buf); return;
	case F_EXCLUSIVE: fmt_disk_unit(s->exclusive * bsect * 512, buf); return;
	case F_SHARED: fmt_disk_unit(shared * bsect * 512, buf); return;
	case F_TRANSACTION: v = d->transaction_id; break;
	case F_CREATE_TIME: v = d->creation_time; break;
	case F_SNAP_TIME: v = d->snapshotted_time; break;
	case F_HIGHEST_MAPPED:
		if (!s->highest) {
			strcpy(buf, "-");
			return;
		}
		v = s->highest - 1;
		break;
	case F_HIGHEST_MAPPED_BYTES: v = s->highest * bsect * 512; break;
	case F_CLASS:
		snprintf(buf, FIELD_MAX, "%s", row->it ? inv_class_name(row->it->cls) : "-");
		return;
	case F_HASH:
		snprintf(buf, FIELD_MAX, "%s", !row->it || !row->it->hash ? "-" : row->it->hash[0] ? row->it->hash : "base");
		return;
	case F_OWNER:
		snprintf(buf, FIELD_MAX, "%s", inv_item_owner(row->it));
		return;
	case F_COUNT: break;
	}
	buf[fmt_u64(buf, v)] = '\0';
}

static struct ls_row make_row(const struct tm_devlist *devs, const struct tm_dev_usage *st,
			      const struct inventory *inv, size_t i)
{
	struct ls_row r = { &devs->dev[i], &st[i], inv ? inv_item_for_device(inv, devs->dev[i].dev_id) : NULL };
	return r;
}

/* Right-aligned numbers, left-aligned text columns. */
static int field_is_text(enum field f)
{
	return f == F_CLASS || f == F_HASH || f == F_OWNER;
}

static void print_table(const struct tm_devlist *devs, const struct tm_dev_usage *st, const struct inventory *inv,
			uint64_t bsect, const enum field *fields, size_t nf, int headers)
{
	size_t width[64] = { 0 };
	char buf[FIELD_MAX];
	for (size_t j = 0; j < nf; j++)
		width[j] = headers ? strlen(field_names[fields[j]]) : 1;
	for (size_t i = 0; i < devs->n; i++) {
		struct ls_row row = make_row(devs, st, inv, i);
		for (size_t j = 0; j < nf; j++) {
			field_value(fields[j], &row, bsect, buf);
			if (strlen(buf) > width[j])
				width[j] = strlen(buf);
		}
	}
	for (size_t i = 0; i < devs->n + (headers ? 1 : 0); i++) {
		struct ls_row row = { 0 };
		if (!headers || i > 0)
			row = make_row(devs, st, inv, headers ? i - 1 : i);
		for (size_t j = 0; j < nf; j++) {
			const char *text = buf;
			if (headers && i == 0)
				text = field_names[fields[j]];
			else
				field_value(fields[j], &row, bsect, buf);
			/* Numbers right-aligned; text left-aligned, unpadded when last. */
			int w = field_is_text(fields[j]) && j + 1 == nf ? 0 : (int)width[j];
			printf(field_is_text(fields[j]) ? "%-*s%s" : "%*s%s", w, text, j + 1 < nf ? " " : "\n");
		}
	}
}

static void json_u64(struct json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

static int print_json(const char *path, const struct tm_superblock *sb, uint64_t nr_data_blocks,
		      const struct tm_devlist *devs, const struct tm_dev_usage *st, const struct inventory *inv,
		      unsigned long damage)
{
	uint64_t bbytes = (uint64_t)sb->data_block_size * 512;
	struct json_object *root = json_object_new_object();
	json_object_object_add(root, "schema", json_object_new_string(LS_SCHEMA));
	json_object_object_add(root, "metadata", json_object_new_string(path));
	struct json_object *pool = json_object_new_object();
	json_u64(pool, "transaction", sb->trans_id);
	json_u64(pool, "time", sb->time);
	json_u64(pool, "data_block_size_bytes", bbytes);
	json_u64(pool, "nr_data_blocks", nr_data_blocks);
	json_object_object_add(pool, "needs_check", json_object_new_boolean(sb->flags & 1));
	json_object_object_add(pool, "metadata_snapshot",
			       sb->location ? json_object_new_int64((int64_t)sb->location) : NULL);
	json_object_object_add(root, "pool", pool);
	struct json_object *arr = json_object_new_array();
	for (size_t i = 0; i < devs->n; i++) {
		const struct tm_device *d = &devs->dev[i];
		const struct tm_dev_usage *s = &st[i];
		struct json_object *o = json_object_new_object();
		json_u64(o, "dev", d->dev_id);
		json_u64(o, "mapped_blocks", s->mapped);
		json_u64(o, "exclusive_blocks", s->exclusive);
		json_u64(o, "shared_blocks", s->mapped - s->exclusive);
		json_u64(o, "mapped_bytes", s->mapped * bbytes);
		json_u64(o, "exclusive_bytes", s->exclusive * bbytes);
		json_u64(o, "shared_bytes", (s->mapped - s->exclusive) * bbytes);
		json_object_object_add(o, "highest_mapped",
				       s->highest ? json_object_new_int64((int64_t)(s->highest - 1)) : NULL);
		if (d->in_details) {
			json_u64(o, "transaction", d->transaction_id);
			json_u64(o, "create_time", d->creation_time);
			json_u64(o, "snap_time", d->snapshotted_time);
			json_u64(o, "details_mapped_blocks", d->mapped_blocks);
		}
		json_object_object_add(o, "has_details", json_object_new_boolean(d->in_details));
		json_object_object_add(o, "has_mappings", json_object_new_boolean(d->in_mapping));
		if (inv) {
			/* Present only when a Docker root was read. */
			const struct inv_item *it = inv_item_for_device(inv, d->dev_id);
			json_object_object_add(o, "class", it ? json_object_new_string(inv_class_name(it->cls)) : NULL);
			json_object_object_add(o, "hash", it && it->hash ? json_object_new_string(it->hash) : NULL);
			json_object_object_add(o, "owner", it && strcmp(inv_item_owner(it), "-") ? json_object_new_string(inv_item_owner(it)) : NULL);
		}
		json_object_array_add(arr, o);
	}
	json_object_object_add(root, "devices", arr);
	json_u64(root, "damaged_ranges", damage);
	dmr_cli_put_json(root);
	return 0;
}

int cmd_ls(struct dmr_cli *cli, int argc, char **argv)
{
	enum { OPT_NO_HEADERS = OPT_CMD_BASE };
	static const struct option longopts[] = {
		DMR_GLOBAL_LONGOPTS,
		{ "output", required_argument, NULL, 'o' },
		{ "format", required_argument, NULL, 'o' },
		{ "no-headers", no_argument, NULL, OPT_NO_HEADERS },
		{ "metadata-snap", no_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	enum field fields[64];
	size_t nf = 0;
	const char *spec = NULL;
	int headers = 1, use_snap = 0, c, rc = DMR_EXIT_OK;

	while ((c = getopt_long(argc, argv, DMR_GLOBAL_SHORTOPTS "o:m", longopts, NULL)) != -1) {
		if (dmr_cli_global_opt(cli, c, optarg, ls_usage))
			continue;
		switch (c) {
		case 'o':
			spec = optarg;
			break;
		case OPT_NO_HEADERS:
			headers = 0;
			break;
		case 'm':
			use_snap = 1;
			break;
		default:
			return dmr_cli_bad_option(cli, "ls", c, argv);
		}
	}
	if (optind < argc)
		return dmr_cli_usage_error(cli, "ls", "unexpected argument '%s'", argv[optind]);
	/* The owner columns need Docker's files: the root's, when the pool is
	 * the root's own (not one named with --metadata). */
	char mdir[4200];
	struct stat sbuf;
	snprintf(mdir, sizeof(mdir), "%s/devicemapper/metadata", cli->root);
	int docker = !cli->metadata_path && stat(mdir, &sbuf) == 0 && S_ISDIR(sbuf.st_mode);
	if (!spec)
		spec = docker ? DEFAULT_FIELDS_DOCKER : DEFAULT_FIELDS;
	char bad[64] = "";
	int fr = parse_fields(spec, fields, &nf, bad, sizeof(bad));
	if (fr == -1) {
		dmr_cli_error(cli, "out of memory");
		return DMR_EXIT_INPUT;
	}
	if (fr < 0)
		return fr == -3 ? dmr_cli_usage_error(cli, "ls", "too many fields in '%s'", spec)
		       : bad[0] ? dmr_cli_usage_error(cli, "ls", "unknown field '%s'", bad)
				: dmr_cli_usage_error(cli, "ls", "no fields in '%s'", spec);

	struct dmr_pool_view v;
	struct dmr_err err = { 0 };
	struct tm_usage u = { 0 };
	struct tm_dev_usage *st = NULL;
	struct dk_state ds = { 0 };
	struct inventory inv = { 0 };
	int have_inv = 0;
	rc = dmr_pool_view_open(cli, &v, use_snap, 0);
	if (rc == DMR_EXIT_OK)
		rc = dmr_pool_view_roots(&v, NULL, NULL, 0);
	if (rc != DMR_EXIT_OK)
		goto out;
	uint64_t nr_data_blocks = v.pool->sb.data_sm.nr_blocks;
	if (tm_usage_compute(v.pool, v.roots, v.nroots, nr_data_blocks, ls_damage, &v, &u, &err)) {
		rc = dmr_cli_fail(cli, &err);
		goto out;
	}
	/* Per device; devices without a mapping tree stay zero. */
	st = calloc(v.devs.n + 1, sizeof(*st));
	if (!st) {
		dmr_cli_error(cli, "%s: out of memory", v.pool->path);
		rc = DMR_EXIT_INPUT;
		goto out;
	}
	for (size_t r = 0; r < v.nroots; r++)
		st[v.dev_of_root[r]] = u.dev[r];
	if (docker) {
		/* Owners are a bonus: a Docker side that cannot be read leaves
		 * the columns at "-" and says why, once. */
		struct dmr_err derr = { 0 };
		if (dmr_cli_state_read(cli, &ds, &derr) == 0 &&
		    inv_build(&inv, v.pool, &v.devs, v.dev_of_root, v.nroots, &u, &ds, NULL, &derr) == 0)
			have_inv = 1;
		else if (!cli->quiet)
			dmr_cli_error(cli, "%s: owners unknown: %s", dmr_cli_root_shown(cli), derr.msg);
	}

	if (cli->json)
		print_json(v.pool->path, v.sb, nr_data_blocks, &v.devs, st, have_inv ? &inv : NULL, v.log.count);
	else
		print_table(&v.devs, st, have_inv ? &inv : NULL, v.sb->data_block_size, fields, nf, headers);
	rc = dmr_cli_finish_stdout(cli, v.log.count ? DMR_EXIT_DAMAGE : DMR_EXIT_OK);
out:
	inv_free(&inv);
	dk_state_free(&ds);
	tm_usage_free(&u);
	free(st);
	dmr_pool_view_close(&v);
	return rc;
}
