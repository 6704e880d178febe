/* dmrescue scan: the inventory of a Docker root and its pool. */
#include "config.h"
#include "cli.h"
#include "inventory.h"
#include "util/fmt.h"

#include <getopt.h>
#include "util/jsonc.h"
#include <stdlib.h>
#include <string.h>

#define SCAN_SCHEMA "dmrescue.scan/1"

static void scan_usage(FILE *out)
{
	fputs("Usage:\n"
	      " dmrescue scan [options]\n"
	      "\n"
	      "Read the pool metadata and Docker's files under the root (read-only), map\n"
	      "every thin device to its owner (image layer, container, BuildKit...) and\n"
	      "report the leftovers, what each one holds, and what to do about it.\n"
	      "\n"
	      "Options:\n"
	      "     --json        one JSON document (schema " SCAN_SCHEMA ")\n"
	      " -v, --verbose     list every device, not only the findings\n"
	      "\n"
	      "Global options (-r, --metadata, --data, -q) work here too; see dmrescue --help.\n", out);
}

static const char *layout_name(enum dk_layout l)
{
	return l == DK_LAYOUT_DOCKER ? "docker" : l == DK_LAYOUT_CSTORAGE ? "containers-storage" : "none";
}

static uint64_t item_reclaim(const struct inv_item *it, uint64_t bs)
{
	if (it->cls == INV_TRANSIENT)
		return it->transient_bytes;
	return it->has_usage ? it->usage.exclusive * bs : 0;
}

static void print_owners(const struct inv_item *it)
{
	for (size_t i = 0; i < it->nr_containers; i++)
		printf("%scontainer %s", i ? ", " : "  ", it->containers[i]);
	for (size_t i = 0; i < it->nr_images; i++)
		printf("%simage %s", i || it->nr_containers ? ", " : "  ", it->images[i]);
}

static void print_item_line(const struct inv_item *it, uint64_t bs)
{
	char a[32], b[32];
	if (it->thin_id >= 0)
		printf("    thin %-6lld", (long long)it->thin_id);
	else
		printf("    %-11s", it->cls == INV_TRANSIENT ? "file" : "no device");
	if (it->cls == INV_TRANSIENT) {
		printf(" %s (%s)", it->path, fmt_human(it->transient_bytes, a));
	} else {
		printf(" %s", it->hash ? (it->hash[0] ? it->hash : "base") : "-");
		if (it->has_usage)
			printf("  %s mapped, %s exclusive", fmt_human(it->usage.mapped * bs, a),
			       fmt_human(it->usage.exclusive * bs, b));
	}
	print_owners(it);
	putchar('\n');
	for (size_t k = 0; k < it->nr_evidence; k++)
		printf("        %s\n", it->evidence[k]);
}

static void print_report(struct dmr_cli *cli, const struct dk_state *st, const struct inventory *inv,
			 const char *meta_path, const char *data_path, unsigned long damage)
{
	const struct inv_pool *ps = &inv->pool;
	uint64_t bs = ps->data_block_bytes;
	char a[32], b[32], c[32];
	printf("Docker root %s (%s)\n", st->root, layout_name(st->layout));
	printf("Pool %s\n", st->pool_name ? st->pool_name : "(name unknown)");
	printf("  metadata  %s: %s used of %s\n", meta_path, fmt_human(ps->meta_used * 4096, a), fmt_human(ps->meta_blocks * 4096, b));
	printf("  data      %s: %s used of %s (%s blocks)\n", data_path, fmt_human(ps->data_used * bs, a),
	       fmt_human(ps->data_blocks * bs, b), fmt_human(bs, c));
	printf("  transaction %llu", (unsigned long long)ps->trans_id);
	if (st->txn.present && st->txn.valid)
		printf("; Docker's open transaction %llu (%s)\n", (unsigned long long)st->txn.open_transaction_id,
		       st->txn.open_transaction_id > ps->trans_id ? "ahead: Docker rolls it back at start" : "closed");
	else
		printf("; %s\n", st->txn.present ? "transaction-metadata unreadable (Docker ignores it)" : "no transaction-metadata");
	if (ps->needs_check)
		printf("  needs_check is set: run 'dmrescue check' (or thin_check) before anything else\n");
	if (ps->held_root)
		printf("  a metadata snapshot is held at block %llu\n", (unsigned long long)ps->held_root);
	if (ps->free_but_mapped)
		printf("  INCONSISTENT: %llu data blocks are free in the space map but mapped by a device\n",
		       (unsigned long long)ps->free_but_mapped);
	if (ps->reclaim_known)
		printf("  the data file takes %s on disk; %s of it is free pool space (%llu run%s for dmrescue reclaim)\n",
		       fmt_human(ps->data_file_allocated, a), fmt_human(ps->reclaim_bytes, b),
		       (unsigned long long)ps->reclaim_runs, ps->reclaim_runs == 1 ? "" : "s");
	else
		printf("  reclaimable space unknown: %s\n", ps->reclaim_note ? ps->reclaim_note : "?");

	size_t count[INV_CLASS_COUNT] = { 0 };
	size_t ndev = 0, nfiles = 0;
	uint64_t leftover_bytes = 0;
	for (size_t i = 0; i < inv->nr_items; i++) {
		count[inv->items[i].cls]++;
		ndev += inv->items[i].thin_id >= 0;
		nfiles += inv->items[i].file != NULL;
		if (inv_class_is_leftover(inv->items[i].cls))
			leftover_bytes += item_reclaim(&inv->items[i], bs);
	}
	printf("\nDevices: %zu in the pool, %zu metadata files\n ", ndev, nfiles);
	const char *sep = " ";
	for (int k = 0; k < INV_CLASS_COUNT; k++)
		if (count[k]) {
			printf("%s%s %zu", sep, inv_class_name((enum inv_class)k), count[k]);
			sep = ", ";
		}
	putchar('\n');

	if (cli->verbose) {
		printf("\nAll devices\n");
		for (size_t i = 0; i < inv->nr_items; i++)
			if (inv->items[i].cls != INV_TRANSIENT) {
				printf("  %s\n", inv_class_name(inv->items[i].cls));
				print_item_line(&inv->items[i], bs);
			}
	}

	int any = 0;
	for (int k = 0; k < INV_CLASS_COUNT; k++) {
		if (!count[k] || !inv_class_is_leftover((enum inv_class)k))
			continue;
		if (!any++)
			printf("\nFindings\n");
		printf("  %s (%zu): %s\n", inv_class_title((enum inv_class)k), count[k],
		       inv_class_meaning((enum inv_class)k));
		printf("    What to do: %s\n", inv_class_action((enum inv_class)k));
		for (size_t i = 0; i < inv->nr_items; i++)
			if (inv->items[i].cls == (enum inv_class)k)
				print_item_line(&inv->items[i], bs);
	}
	if (!any)
		printf("\nNo leftovers found.\n");
	if (st->nr_problems) {
		printf("\nProblems reading Docker's files (%zu)\n", st->nr_problems);
		for (size_t i = 0; i < st->nr_problems; i++)
			printf("  %s: %s\n", st->problems[i].path, st->problems[i].msg);
	}
	if (damage)
		printf("\nThe pool metadata is damaged (%lu ranges reported above): run 'dmrescue check'.\n", damage);
	printf("\nReclaimable: %s of pool space by removing the leftovers", fmt_human(leftover_bytes, a));
	if (ps->reclaim_known)
		printf(", %s of host disk by 'dmrescue reclaim'", fmt_human(ps->reclaim_bytes, b));
	printf(".\n");
}

static struct json_object *jstr(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static struct json_object *ju64(uint64_t v)
{
	return json_object_new_int64((int64_t)v);
}

static struct json_object *jstrs(const char *const *s, size_t n)
{
	struct json_object *a = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(s[i]));
	return a;
}

static void print_json(const struct dk_state *st, const struct inventory *inv, const char *meta_path,
		       const char *data_path, unsigned long damage)
{
	const struct inv_pool *ps = &inv->pool;
	uint64_t bs = ps->data_block_bytes;
	struct json_object *root = json_object_new_object();
	json_object_object_add(root, "schema", json_object_new_string(SCAN_SCHEMA));
	json_object_object_add(root, "root", jstr(st->root));
	json_object_object_add(root, "layout", json_object_new_string(layout_name(st->layout)));

	struct json_object *pool = json_object_new_object();
	json_object_object_add(pool, "name", jstr(st->pool_name));
	json_object_object_add(pool, "metadata_path", jstr(meta_path));
	json_object_object_add(pool, "data_path", jstr(data_path));
	json_object_object_add(pool, "data_block_bytes", ju64(bs));
	json_object_object_add(pool, "data_blocks", ju64(ps->data_blocks));
	json_object_object_add(pool, "data_used_blocks", ju64(ps->data_used));
	json_object_object_add(pool, "data_free_blocks", ju64(ps->data_free));
	json_object_object_add(pool, "metadata_blocks", ju64(ps->meta_blocks));
	json_object_object_add(pool, "metadata_used_blocks", ju64(ps->meta_used));
	json_object_object_add(pool, "transaction_id", ju64(ps->trans_id));
	json_object_object_add(pool, "docker_open_transaction",
			       st->txn.present && st->txn.valid ? ju64(st->txn.open_transaction_id) : NULL);
	json_object_object_add(pool, "needs_check", json_object_new_boolean(ps->needs_check));
	json_object_object_add(pool, "metadata_snapshot", ps->held_root ? ju64(ps->held_root) : NULL);
	json_object_object_add(pool, "free_but_mapped_blocks", ju64(ps->free_but_mapped));
	json_object_object_add(pool, "data_file_bytes", ps->reclaim_known ? ju64(ps->data_file_bytes) : NULL);
	json_object_object_add(pool, "data_file_allocated_bytes", ps->reclaim_known ? ju64(ps->data_file_allocated) : NULL);
	json_object_object_add(pool, "reclaimable_bytes", ps->reclaim_known ? ju64(ps->reclaim_bytes) : NULL);
	json_object_object_add(pool, "reclaimable_ranges", ps->reclaim_known ? ju64(ps->reclaim_runs) : NULL);
	json_object_object_add(pool, "damaged_ranges", ju64(damage));
	json_object_object_add(root, "pool", pool);

	struct json_object *devices = json_object_new_array();
	struct json_object *findings = json_object_new_array();
	for (size_t i = 0; i < inv->nr_items; i++) {
		const struct inv_item *it = &inv->items[i];
		if (inv_class_is_leftover(it->cls)) {
			struct json_object *f = json_object_new_object();
			json_object_object_add(f, "class", json_object_new_string(inv_class_name(it->cls)));
			json_object_object_add(f, "thin_id", it->thin_id >= 0 ? json_object_new_int64(it->thin_id) : NULL);
			json_object_object_add(f, "hash", jstr(it->hash));
			json_object_object_add(f, "path", jstr(it->path));
			json_object_object_add(f, "reclaim_bytes", ju64(item_reclaim(it, bs)));
			json_object_object_add(f, "action", json_object_new_string(inv_class_action(it->cls)));
			json_object_array_add(findings, f);
		}
		if (it->cls == INV_TRANSIENT)
			continue;
		struct json_object *d = json_object_new_object();
		json_object_object_add(d, "thin_id", it->thin_id >= 0 ? json_object_new_int64(it->thin_id) : NULL);
		json_object_object_add(d, "hash", jstr(it->hash));
		json_object_object_add(d, "class", json_object_new_string(inv_class_name(it->cls)));
		struct json_object *own = json_object_new_object();
		json_object_object_add(own, "images", jstrs(it->images, it->nr_images));
		json_object_object_add(own, "containers", jstrs(it->containers, it->nr_containers));
		json_object_object_add(own, "layers", jstrs(it->layers, it->nr_layers));
		json_object_object_add(d, "owners", own);
		json_object_object_add(d, "size_bytes", it->file && it->file->valid ? ju64(it->size_bytes) : NULL);
		json_object_object_add(d, "mapped_blocks", it->has_usage ? ju64(it->usage.mapped) : NULL);
		json_object_object_add(d, "exclusive_blocks", it->has_usage ? ju64(it->usage.exclusive) : NULL);
		json_object_object_add(d, "shared_blocks",
				       it->has_usage ? ju64(it->usage.mapped - it->usage.exclusive) : NULL);
		json_object_object_add(d, "mapped_bytes", it->has_usage ? ju64(it->usage.mapped * bs) : NULL);
		json_object_object_add(d, "exclusive_bytes", it->has_usage ? ju64(it->usage.exclusive * bs) : NULL);
		struct json_object *fs = NULL;
		if (it->fs.found) {
			fs = json_object_new_object();
			json_object_object_add(fs, "type", jstr(it->fs.type));
			json_object_object_add(fs, "uuid", it->fs.uuid[0] ? jstr(it->fs.uuid) : NULL);
			json_object_object_add(fs, "label", it->fs.label[0] ? jstr(it->fs.label) : NULL);
		}
		json_object_object_add(d, "fs", fs);
		json_object_object_add(d, "evidence", jstrs((const char *const *)it->evidence, it->nr_evidence));
		json_object_array_add(devices, d);
	}
	json_object_object_add(root, "devices", devices);
	json_object_object_add(root, "findings", findings);
	struct json_object *probs = json_object_new_array();
	for (size_t i = 0; i < st->nr_problems; i++) {
		struct json_object *p = json_object_new_object();
		json_object_object_add(p, "path", jstr(st->problems[i].path));
		json_object_object_add(p, "message", jstr(st->problems[i].msg));
		json_object_array_add(probs, p);
	}
	json_object_object_add(root, "problems", probs);
	dmr_cli_put_json(root);
}

static void scan_damage(void *ctx, size_t root, const struct tm_damage *d)
{
	struct dmr_pool_view *v = ctx;
	dmr_damage_device(&v->log, v->devs.dev[v->dev_of_root[root]].dev_id, d);
}

int cmd_scan(struct dmr_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = { DMR_GLOBAL_LONGOPTS, { NULL, 0, NULL, 0 } };
	int c, rc;
	while ((c = getopt_long(argc, argv, DMR_GLOBAL_SHORTOPTS, longopts, NULL)) != -1) {
		if (dmr_cli_global_opt(cli, c, optarg, scan_usage))
			continue;
		return dmr_cli_bad_option(cli, "scan", c, argv);
	}
	if (optind < argc)
		return dmr_cli_usage_error(cli, "scan", "unexpected argument '%s'", argv[optind]);

	struct dk_state st = { 0 };
	struct dmr_err err = { 0 };
	struct dmr_pool_view v;
	struct tm_usage u = { 0 };
	struct inventory inv = { 0 };
	if (dmr_cli_state_read(cli, &st, &err)) {
		dk_state_free(&st);
		return dmr_cli_fail(cli, &err);
	}
	rc = dmr_pool_view_open(cli, &v, 0, 0);
	if (rc == DMR_EXIT_OK)
		rc = dmr_pool_view_roots(&v, NULL, NULL, 0);
	if (rc != DMR_EXIT_OK)
		goto out;
	if (tm_usage_compute(v.pool, v.roots, v.nroots, v.pool->sb.data_sm.nr_blocks, scan_damage, &v, &u, &err) ||
	    inv_build(&inv, v.pool, &v.devs, v.dev_of_root, v.nroots, &u, &st, dmr_cli_data_input(cli), &err)) {
		rc = dmr_cli_fail(cli, &err);
		goto out;
	}
	if (cli->json)
		print_json(&st, &inv, v.pool->path, dmr_cli_data_path(cli), v.log.count);
	else
		print_report(cli, &st, &inv, v.pool->path, dmr_cli_data_path(cli), v.log.count);
	int findings = st.nr_problems > 0 || inv.pool.free_but_mapped > 0;
	for (size_t i = 0; i < inv.nr_items && !findings; i++)
		findings = inv_class_is_leftover(inv.items[i].cls);
	rc = v.log.count ? DMR_EXIT_DAMAGE : findings ? DMR_EXIT_FINDINGS : DMR_EXIT_OK;
	rc = dmr_cli_finish_stdout(cli, rc);
out:
	inv_free(&inv);
	tm_usage_free(&u);
	dmr_pool_view_close(&v);
	dk_state_free(&st);
	return rc;
}
