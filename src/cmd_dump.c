/* dmrescue dump: the pool metadata as thin_dump-compatible XML. */
#include "config.h"
#include "cli.h"
#include "thinmeta/blocksrc.h"
#include "util/fmt.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void dump_usage(FILE *out)
{
	fputs("Usage:\n"
	      " dmrescue dump [options]\n"
	      "\n"
	      "Print the thin-pool metadata as XML that thin_restore(8) accepts, like\n"
	      "thin_dump(8). Damaged ranges are reported on stderr and left out.\n"
	      "\n"
	      "Options:\n"
	      "     --dev-id N               only device N (repeatable)\n"
	      "     --skip-mappings          devices only, no mappings\n"
	      " -m, --metadata-snap[=BLOCK]  dump the held metadata snapshot\n"
	      "                              (or the snapshot superblock at BLOCK)\n"
	      "\n"
	      "Global options (-r, --metadata, -q, -v) work here too; see dmrescue --help.\n", out);
}

/* Devices are written in order; each one's mappings come from one walk of
 * all the wanted trees (aligned: leaf reads batched across devices). */
struct dump_out {
	FILE *f;
	const struct tm_devlist *devs;
	const size_t *dev_of_root; /* walked root -> device index */
	size_t next_dev;           /* first device not yet opened */
	int open;                  /* a <device> element is open */
	const uint64_t *ids;
	size_t nids;
	struct dmr_damage_log *log;
};

static void put_xml_text(FILE *f, const uint8_t *s, size_t max)
{
	for (size_t i = 0; i < max && s[i]; i++) {
		switch (s[i]) {
		case '"': fputs("&quot;", f); break;
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		default:
			if (s[i] < 0x20 || s[i] >= 0x7f)
				fprintf(f, "&#%u;", s[i]);
			else
				fputc(s[i], f);
		}
	}
}

static int wanted(uint64_t id, const uint64_t *ids, size_t n)
{
	if (n == 0)
		return 1;
	for (size_t i = 0; i < n; i++)
		if (ids[i] == id)
			return 1;
	return 0;
}

/* Closes the open device and writes every wanted device before dev (and
 * dev itself, opened, when dev < n). */
static void advance_to(struct dump_out *o, size_t dev)
{
	FILE *f = o->f;
	for (;;) {
		if (o->open) {
			fputs("  </device>\n", f);
			o->open = 0;
		}
		if (o->next_dev > dev || o->next_dev >= o->devs->n)
			return;
		size_t i = o->next_dev++;
		const struct tm_device *d = &o->devs->dev[i];
		if (!d->in_details || !wanted(d->dev_id, o->ids, o->nids))
			continue;
		fprintf(f, "  <device dev_id=\"%llu\" mapped_blocks=\"%llu\" transaction=\"%llu\" creation_time=\"%u\" snap_time=\"%u\">\n",
			(unsigned long long)d->dev_id, (unsigned long long)d->mapped_blocks,
			(unsigned long long)d->transaction_id, d->creation_time, d->snapshotted_time);
		o->open = 1;
		if (i == dev)
			return;
	}
}

static int dump_wanted(void *ctx, const struct tm_device *d)
{
	const struct dump_out *o = ctx;
	return wanted(d->dev_id, o->ids, o->nids);
}

static int emit_run(void *ctx, size_t root, const struct tm_run *r)
{
	struct dump_out *o = ctx;
	size_t dev = o->dev_of_root[root];
	if (!o->open || o->next_dev != dev + 1)
		advance_to(o, dev);
	char line[192];
	size_t n;
	if (r->len == 1) {
		n = fmt_str(line, "    <single_mapping origin_block=\"");
		n += fmt_u64(line + n, r->vbegin);
		n += fmt_str(line + n, "\" data_block=\"");
		n += fmt_u64(line + n, r->dbegin);
	} else {
		n = fmt_str(line, "    <range_mapping origin_begin=\"");
		n += fmt_u64(line + n, r->vbegin);
		n += fmt_str(line + n, "\" data_begin=\"");
		n += fmt_u64(line + n, r->dbegin);
		n += fmt_str(line + n, "\" length=\"");
		n += fmt_u64(line + n, r->len);
	}
	n += fmt_str(line + n, "\" time=\"");
	n += fmt_u64(line + n, r->time);
	n += fmt_str(line + n, "\"/>\n");
	fwrite_unlocked(line, 1, n, o->f);
	return 0;
}

static void map_damage(void *ctx, size_t root, const struct tm_damage *d)
{
	struct dump_out *o = ctx;
	dmr_damage_device(o->log, o->devs->dev[o->dev_of_root[root]].dev_id, d);
}

int cmd_dump(struct dmr_cli *cli, int argc, char **argv)
{
	enum { OPT_DEV_ID = OPT_CMD_BASE, OPT_SKIP_MAPPINGS };
	static const struct option longopts[] = {
		DMR_GLOBAL_LONGOPTS,
		{ "dev-id", required_argument, NULL, OPT_DEV_ID },
		{ "skip-mappings", no_argument, NULL, OPT_SKIP_MAPPINGS },
		{ "metadata-snap", optional_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t *ids = NULL;
	size_t nids = 0;
	int skip_mappings = 0, use_snap = 0;
	uint64_t snap_block = 0;
	int c, rc = DMR_EXIT_OK;
	char *end;

	while ((c = getopt_long(argc, argv, DMR_GLOBAL_SHORTOPTS "m::", longopts, NULL)) != -1) {
		if (dmr_cli_global_opt(cli, c, optarg, dump_usage))
			continue;
		switch (c) {
		case OPT_DEV_ID: {
			errno = 0;
			unsigned long long v = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end || optarg[0] == '-') {
				free(ids);
				return dmr_cli_usage_error(cli, "dump", "invalid device id '%s'", optarg);
			}
			uint64_t *n = realloc(ids, (nids + 1) * sizeof(*ids));
			if (!n) {
				free(ids);
				dmr_cli_error(cli, "out of memory");
				return DMR_EXIT_INPUT;
			}
			ids = n;
			ids[nids++] = v;
			break;
		}
		case OPT_SKIP_MAPPINGS:
			skip_mappings = 1;
			break;
		case 'm':
			use_snap = 1;
			if (optarg) {
				errno = 0;
				snap_block = strtoull(optarg, &end, 10);
				if (errno || end == optarg || *end || optarg[0] == '-' || snap_block == 0) {
					free(ids);
					return dmr_cli_usage_error(cli, "dump", "invalid metadata snapshot block '%s'", optarg);
				}
			}
			break;
		default:
			free(ids);
			return dmr_cli_bad_option(cli, "dump", c, argv);
		}
	}
	if (optind < argc) {
		free(ids);
		return dmr_cli_usage_error(cli, "dump", "unexpected argument '%s'", argv[optind]);
	}
	if (cli->json) {
		free(ids);
		return dmr_cli_usage_error(cli, "dump", "dump writes thin_dump XML; it has no --json output");
	}

	struct dmr_pool_view v;
	struct dmr_err err = { 0 };
	struct dump_out o = { .ids = ids, .nids = nids };
	rc = dmr_pool_view_open(cli, &v, use_snap, snap_block);
	if (rc == DMR_EXIT_OK)
		rc = dmr_pool_view_roots(&v, dump_wanted, &o, 1);
	if (rc != DMR_EXIT_OK)
		goto out;
	const struct tm_superblock *sb = v.sb;

	static char obuf[1 << 20];
	setvbuf(stdout, obuf, _IOFBF, sizeof(obuf));
	FILE *f = stdout;
	fputs("<superblock uuid=\"", f);
	put_xml_text(f, sb->uuid, sizeof(sb->uuid));
	fprintf(f, "\" time=\"%u\" transaction=\"%llu\" flags=\"%u\" version=\"%u\" data_block_size=\"%u\" nr_data_blocks=\"%llu\">\n",
		sb->time, (unsigned long long)sb->trans_id, sb->flags, sb->version, sb->data_block_size,
		(unsigned long long)sb->data_sm.nr_blocks);

	o.f = f;
	o.devs = &v.devs;
	o.dev_of_root = v.dev_of_root;
	o.log = &v.log;
	struct tm_mapping_visitor mv = { .aligned = 1, .run = emit_run, .damage = map_damage, .ctx = &o };
	/* A snapshot's superblock has no space maps: bound its mappings by
	 * the live pool's size. */
	if (!skip_mappings && tm_mappings_walk(v.pool, v.roots, v.nroots, v.pool->sb.data_sm.nr_blocks, &mv, &err)) {
		rc = dmr_cli_fail(cli, &err);
		goto out;
	}
	advance_to(&o, v.devs.n);
	fputs("</superblock>\n", f);
	rc = v.log.count ? DMR_EXIT_DAMAGE : DMR_EXIT_OK;
	for (size_t i = 0; i < nids; i++)
		if (!tm_devlist_find(&v.devs, ids[i])) {
			dmr_cli_error(cli, "%s: no device %llu in the pool", v.pool->path, (unsigned long long)ids[i]);
			if (rc == DMR_EXIT_OK)
				rc = DMR_EXIT_INPUT;
		}
	rc = dmr_cli_finish_stdout(cli, rc);
out:
	dmr_pool_view_close(&v);
	free(ids);
	return rc;
}
