/* dmrescue diff: where two thin devices differ, by their mappings.
 *
 * Both targets are resolved as for export (target.c), both mapping trees
 * walked; a virtual block is the same when both map it to the same data
 * block or neither maps it, and differs otherwise: mapped by one only, or
 * remapped (both map it, to different data blocks: written after the
 * snapshot). --content reads the differing blocks (batched reader) and
 * drops those whose bytes are the same after all (an unmapped block reads
 * as zeros). For a container against its image's top layer: what the
 * container (and Docker's -init placeholders) wrote. Read-only. */
#include "config.h"
#include "cli.h"
#include "docker/state.h"
#include "loopfile/aioread.h"
#include "target.h"
#include "thinmeta/runlist.h"
#include "util/fmt.h"
#include "util/jsonc.h"
#include "util/progress.h"
#include "util/grow.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DIFF_SCHEMA "dmrescue.diff/1"
#define SLICE_MAX (1u << 20)   /* bytes compared at a time within a block */
#define BATCH_BYTES (16u << 20) /* per side, per batch of reads */

static void diff_usage(FILE *out)
{
	fputs("Usage:\n"
	      " dmrescue diff [options] A B\n"
	      "\n"
	      "The virtual block ranges where two thin devices differ: mapped by one only,\n"
	      "or by both to different data blocks. Blocks both map to the same data block,\n"
	      "or neither maps, are the same. A and B are named as for export: thin id,\n"
	      "device hash, container, image (its top layer), chain id. An image's top\n"
	      "layer against a container on it: what the container wrote.\n"
	      "\n"
	      "Options:\n"
	      "     --content        read the differing blocks and leave out those whose\n"
	      "                      bytes are the same (unmapped reads as zeros)\n"
	      "     --json           one JSON document (schema " DIFF_SCHEMA ")\n"
	      " -v, --verbose        progress lines even when stderr is not a terminal\n"
	      "\n"
	      "Exit status: 0 the same, 1 they differ, 2 damaged mappings (what could be\n"
	      "read was compared), 3 input unreadable or no such target, 64 usage.\n", out);
}

enum { OPT_CONTENT = OPT_CMD_BASE };

struct side {
	const char *arg;
	struct dmr_target t;
	char hash[160];
	int has_hash;
	uint64_t mapped;
};

struct range {
	uint64_t vbegin, len;
	enum tm_diff_kind kind;
};

struct diff {
	struct dmr_cli *cli;
	int content;
	struct side s[2];
	uint64_t block_bytes;
	struct tm_diff_piece *pieces;
	size_t nr_pieces, cap_pieces;
	uint8_t *same;          /* --content: per differing block (in piece order), 1 = same bytes */
	uint64_t nr_blocks;     /* differing blocks by mapping */
	uint64_t same_blocks;   /* of those, same bytes (--content) */
	uint64_t kind_blocks[3];
	struct range *ranges;
	size_t nr_ranges, cap_ranges;
	unsigned long damage;
	const char *method;
};

static const char *kind_name(enum tm_diff_kind k)
{
	switch (k) {
	case TM_DIFF_ONLY_A: return "only-a";
	case TM_DIFF_ONLY_B: return "only-b";
	case TM_DIFF_REMAPPED: return "remapped";
	}
	return "?";
}

static int parse(struct diff *df, int argc, char **argv)
{
	static const struct option longopts[] = {
		DMR_GLOBAL_LONGOPTS,
		{ "content", no_argument, NULL, OPT_CONTENT },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, DMR_GLOBAL_SHORTOPTS, longopts, NULL)) != -1) {
		if (dmr_cli_global_opt(df->cli, ch, optarg, diff_usage))
			continue;
		if (ch == OPT_CONTENT) {
			df->content = 1;
			continue;
		}
		return dmr_cli_bad_option(df->cli, "diff", ch, argv);
	}
	if (argc - optind < 2)
		return dmr_cli_usage_error(df->cli, "diff", "two devices to compare are needed (A B)");
	if (argc - optind > 2)
		return dmr_cli_usage_error(df->cli, "diff", "unexpected argument '%s'", argv[optind + 2]);
	df->s[0].arg = argv[optind];
	df->s[1].arg = argv[optind + 1];
	return DMR_EXIT_OK;
}

static int add_piece(void *ctx, const struct tm_diff_piece *p)
{
	struct diff *df = ctx;
	struct tm_diff_piece *v = dmr_grow(df->pieces, &df->cap_pieces, df->nr_pieces, sizeof(*v));
	if (!v)
		return DMR_ENOMEM;
	df->pieces = v;
	df->pieces[df->nr_pieces++] = *p;
	df->nr_blocks += p->len;
	return 0;
}

/* --- --content: compare the bytes of the differing blocks --- */

struct slice {
	uint64_t block;     /* index into df->same */
	int mapped[2];
	uint64_t off[2];    /* data file offsets */
	uint32_t len;
};

struct batch {
	struct slice *sl;
	size_t n;
	unsigned char *buf[2];
	struct lf_read_range *rr;
	uint32_t slice_bytes;
	struct progress pg;
	uint64_t done, total;
};

static int batch_piece(void *ctx, const struct lf_read_piece *p, struct dmr_err *err)
{
	(void)err;
	struct batch *b = ctx;
	size_t j = p->range / 2, side = p->range % 2;
	memcpy(b->buf[side] + j * b->slice_bytes + (p->off - b->rr[p->range].off), p->buf, p->len);
	b->done += p->len;
	progress_update(&b->pg, b->done, b->total);
	return 0;
}

static int run_batch(struct diff *df, struct lf_reader *rd, struct batch *b, struct dmr_err *err)
{
	for (size_t j = 0; j < b->n; j++)
		for (int s = 0; s < 2; s++) {
			b->rr[2 * j + s].off = b->sl[j].mapped[s] ? b->sl[j].off[s] : 0;
			b->rr[2 * j + s].len = b->sl[j].mapped[s] ? b->sl[j].len : 0;
		}
	int r = lf_read_ranges(rd, b->rr, 2 * b->n, batch_piece, b, err);
	if (r)
		return r;
	for (size_t j = 0; j < b->n; j++) {
		const struct slice *s = &b->sl[j];
		const unsigned char *pa = b->buf[0] + j * b->slice_bytes, *pb = b->buf[1] + j * b->slice_bytes;
		int equal = !s->mapped[0] ? lf_is_zero(pb, s->len)
			  : !s->mapped[1] ? lf_is_zero(pa, s->len) : memcmp(pa, pb, s->len) == 0;
		if (!equal)
			df->same[s->block] = 0;
	}
	b->n = 0;
	return 0;
}

static int compare_content(struct diff *df, const char *data_path, struct dmr_err *err)
{
	struct dmr_cli *cli = df->cli;
	uint64_t bs = df->block_bytes;
	struct batch b = { 0 };
	struct lf_reader *rd = NULL;
	int r = DMR_ENOMEM;
	b.slice_bytes = bs < SLICE_MAX ? (uint32_t)bs : SLICE_MAX;
	size_t max = BATCH_BYTES / b.slice_bytes;
	df->same = malloc(df->nr_blocks ? df->nr_blocks : 1);
	b.sl = calloc(max, sizeof(*b.sl));
	b.rr = calloc(2 * max, sizeof(*b.rr));
	b.buf[0] = malloc((size_t)max * b.slice_bytes);
	b.buf[1] = malloc((size_t)max * b.slice_bytes);
	if (!df->same || !b.sl || !b.rr || !b.buf[0] || !b.buf[1]) {
		dmr_err_set(err, DMR_ENOMEM, "out of memory comparing %" PRIu64 " blocks", df->nr_blocks);
		goto out;
	}
	memset(df->same, 1, df->nr_blocks ? df->nr_blocks : 1);
	size_t chunk = b.slice_bytes < LF_READ_CHUNK_DEFAULT ? b.slice_bytes : LF_READ_CHUNK_DEFAULT;
	if (chunk % 4096)
		chunk = 4096;
	struct lf_reader_opts o = { .chunk_size = chunk };
	if ((r = lf_reader_open(&rd, data_path, &o, err)))
		goto out;
	df->method = lf_reader_method(rd);
	for (size_t i = 0; i < df->nr_pieces; i++) {
		const struct tm_diff_piece *p = &df->pieces[i];
		b.total += p->len * bs * (p->kind == TM_DIFF_REMAPPED ? 2 : 1);
	}
	progress_init(&b.pg, stderr, "diff --content", cli->verbose, cli->quiet || cli->json);
	uint64_t block = 0;
	for (size_t i = 0; i < df->nr_pieces; i++) {
		const struct tm_diff_piece *p = &df->pieces[i];
		for (uint64_t k = 0; k < p->len; k++, block++)
			for (uint64_t off = 0; off < bs; off += b.slice_bytes) {
				struct slice *s = &b.sl[b.n++];
				s->block = block;
				s->mapped[0] = p->kind != TM_DIFF_ONLY_B;
				s->mapped[1] = p->kind != TM_DIFF_ONLY_A;
				s->off[0] = (p->a_dbegin + k) * bs + off;
				s->off[1] = (p->b_dbegin + k) * bs + off;
				s->len = bs - off < b.slice_bytes ? (uint32_t)(bs - off) : b.slice_bytes;
				if (b.n == max && (r = run_batch(df, rd, &b, err)))
					goto out_pg;
			}
	}
	r = b.n ? run_batch(df, rd, &b, err) : 0;
out_pg:
	progress_end(&b.pg);
out:
	if (rd)
		lf_reader_close(rd);
	free(b.sl);
	free(b.rr);
	free(b.buf[0]);
	free(b.buf[1]);
	return r;
}

static int push_range(struct diff *df, uint64_t v, uint64_t n, enum tm_diff_kind k)
{
	df->kind_blocks[k] += n;
	struct range *last = df->nr_ranges ? &df->ranges[df->nr_ranges - 1] : NULL;
	if (last && last->kind == k && last->vbegin + last->len == v) {
		last->len += n;
		return 0;
	}
	struct range *x = dmr_grow(df->ranges, &df->cap_ranges, df->nr_ranges, sizeof(*x));
	if (!x)
		return DMR_ENOMEM;
	df->ranges = x;
	df->ranges[df->nr_ranges++] = (struct range){ .vbegin = v, .len = n, .kind = k };
	return 0;
}

/* Pieces, minus the blocks --content found the same, as ranges of one kind. */
static int make_ranges(struct diff *df)
{
	uint64_t block = 0;
	for (size_t i = 0; i < df->nr_pieces; i++) {
		const struct tm_diff_piece *p = &df->pieces[i];
		if (!df->same) {
			if (push_range(df, p->vbegin, p->len, p->kind))
				return DMR_ENOMEM;
			continue;
		}
		for (uint64_t k = 0; k < p->len; k++) {
			if (df->same[block++]) {
				df->same_blocks++;
				continue;
			}
			if (push_range(df, p->vbegin + k, 1, p->kind))
				return DMR_ENOMEM;
		}
	}
	return 0;
}

static int want_two(void *ctx, const struct tm_device *d)
{
	const struct diff *df = ctx;
	return d->dev_id == df->s[0].t.thin_id || d->dev_id == df->s[1].t.thin_id;
}

static int run_diff(struct diff *df)
{
	struct dmr_cli *cli = df->cli;
	struct dmr_err err = { 0 };
	struct dk_state st;
	memset(&st, 0, sizeof(st));
	struct dmr_pool_view v;
	memset(&v, 0, sizeof(v));
	struct tm_runlist rl[2];
	memset(rl, 0, sizeof(rl));
	int code, docker = 0;

	char mdir[PATH_MAX];
	struct stat sb;
	snprintf(mdir, sizeof(mdir), "%s/devicemapper", cli->root);
	if (!cli->metadata_path && stat(mdir, &sb) == 0 && S_ISDIR(sb.st_mode)) {
		if (dk_state_read(cli->root, &st, &err) == 0)
			docker = 1;
		else if (!cli->quiet)
			dmr_cli_error(cli, "%s: Docker's files unreadable, only thin ids work: %s", cli->root, err.msg);
	}
	for (int i = 0; i < 2; i++) {
		struct side *s = &df->s[i];
		if (dmr_target_resolve(docker ? &st : NULL, s->arg, NULL, &s->t, &err)) {
			code = err.code == DMR_EUSAGE ? dmr_cli_usage_error(cli, "diff", "%s", err.msg)
						      : dmr_cli_fail(cli, &err);
			goto out;
		}
		s->has_hash = s->t.hash != NULL;
		snprintf(s->hash, sizeof(s->hash), "%s", s->t.hash ? s->t.hash : "");
	}
	if ((code = dmr_pool_view_open(cli, &v, 0, 0)) != DMR_EXIT_OK)
		goto out;
	if ((code = dmr_pool_view_roots(&v, want_two, df, 0)) != DMR_EXIT_OK)
		goto out;
	/* roots come in thin id order; find each side's (A and B may be one) */
	size_t root_of[2] = { SIZE_MAX, SIZE_MAX };
	for (int i = 0; i < 2; i++) {
		for (size_t r = 0; r < v.nroots; r++)
			if (v.devs.dev[v.dev_of_root[r]].dev_id == df->s[i].t.thin_id)
				root_of[i] = r;
		if (root_of[i] == SIZE_MAX) {
			dmr_cli_error(cli, "%s: thin device %" PRIu64 " (%s) is not in the pool", v.pool->path,
				      df->s[i].t.thin_id, df->s[i].t.what);
			code = DMR_EXIT_INPUT;
			goto out;
		}
	}
	if (tm_runlist_collect(v.pool, v.roots, v.nroots, v.pool->sb.data_sm.nr_blocks, dmr_pool_view_usage_damage, &v,
			       rl, &err)) {
		code = dmr_cli_fail(cli, &err);
		goto out;
	}
	df->block_bytes = (uint64_t)v.pool->sb.data_block_size * 512u;
	df->s[0].mapped = rl[root_of[0]].mapped;
	df->s[1].mapped = rl[root_of[1]].mapped;
	int r = tm_runlist_diff(&rl[root_of[0]], &rl[root_of[1]], add_piece, df);
	if (!r && df->content && df->nr_blocks)
		r = compare_content(df, dmr_cli_data_path(cli), &err);
	else if (r)
		dmr_err_set(&err, r, "out of memory listing differences");
	if (!r && (r = make_ranges(df)))
		dmr_err_set(&err, r, "out of memory listing differences");
	if (r) {
		code = dmr_cli_fail(cli, &err);
		goto out;
	}
	df->damage = v.log.count;
	code = df->damage ? DMR_EXIT_DAMAGE : df->nr_ranges ? DMR_EXIT_FINDINGS : DMR_EXIT_OK;
out:
	tm_runlist_free(&rl[0]);
	tm_runlist_free(&rl[1]);
	dmr_pool_view_close(&v);
	dk_state_free(&st);
	return code;
}

/* --- output --- */

static void print_human(const struct diff *df)
{
	char a[32], b[32];
	uint64_t bs = df->block_bytes, diff_blocks = df->nr_blocks - df->same_blocks;
	for (int i = 0; i < 2; i++) {
		const struct side *s = &df->s[i];
		printf("%s %s: thin %" PRIu64 "%s%s, %" PRIu64 " mapped blocks\n", i ? "B" : "A", s->t.what, s->t.thin_id,
		       s->has_hash ? ", hash " : "", s->has_hash ? (s->hash[0] ? s->hash : "base") : "", s->mapped);
	}
	if (!diff_blocks) {
		printf("The same: %s%s.\n", df->same_blocks ? "every block that maps differently holds the same bytes"
							    : "every block maps to the same data block",
		       df->damage ? " (as far as the damaged mappings let it be read)" : "");
		return;
	}
	printf("They differ in %" PRIu64 " block%s of %s (%s) in %zu range%s: %" PRIu64 " only in A, %" PRIu64
	       " only in B, %" PRIu64 " remapped\n",
	       diff_blocks, diff_blocks == 1 ? "" : "s", fmt_human(bs, a), fmt_human(diff_blocks * bs, b), df->nr_ranges,
	       df->nr_ranges == 1 ? "" : "s", df->kind_blocks[TM_DIFF_ONLY_A], df->kind_blocks[TM_DIFF_ONLY_B],
	       df->kind_blocks[TM_DIFF_REMAPPED]);
	if (df->content)
		printf("--content: %" PRIu64 " block%s that map%s differently hold%s the same bytes (left out)\n",
		       df->same_blocks, df->same_blocks == 1 ? "" : "s", df->same_blocks == 1 ? "s" : "",
		       df->same_blocks == 1 ? "s" : "");
	printf("%-23s %8s %14s %9s %s\n", "VBLOCKS", "BLOCKS", "OFFSET", "LENGTH", "KIND");
	for (size_t i = 0; i < df->nr_ranges; i++) {
		const struct range *r = &df->ranges[i];
		char rng[48];
		fmt_key_range(rng, sizeof(rng), r->vbegin, r->vbegin + r->len);
		printf("%-23s %8" PRIu64 " %14" PRIu64 " %9s %s\n", rng, r->len, r->vbegin * bs, fmt_human(r->len * bs, a),
		       kind_name(r->kind));
	}
}

static json_object *side_json(const struct side *s)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "arg", json_object_new_string(s->arg));
	json_object_object_add(o, "kind", json_object_new_string(dmr_target_kind_name(s->t.kind)));
	json_object_object_add(o, "what", json_object_new_string(s->t.what));
	json_object_object_add(o, "thin_id", json_object_new_int64((int64_t)s->t.thin_id));
	json_object_object_add(o, "hash", s->has_hash ? json_object_new_string(s->hash) : NULL);
	json_object_object_add(o, "mapped_blocks", json_object_new_int64((int64_t)s->mapped));
	return o;
}

static void print_json(const struct diff *df)
{
	uint64_t bs = df->block_bytes, diff_blocks = df->nr_blocks - df->same_blocks;
	json_object *root = json_object_new_object();
	json_object_object_add(root, "schema", json_object_new_string(DIFF_SCHEMA));
	json_object_object_add(root, "a", side_json(&df->s[0]));
	json_object_object_add(root, "b", side_json(&df->s[1]));
	json_object_object_add(root, "block_bytes", json_object_new_int64((int64_t)bs));
	json_object_object_add(root, "content", json_object_new_boolean(df->content));
	json_object_object_add(root, "identical", json_object_new_boolean(diff_blocks == 0));
	json_object_object_add(root, "differing_blocks", json_object_new_int64((int64_t)diff_blocks));
	json_object_object_add(root, "differing_bytes", json_object_new_int64((int64_t)(diff_blocks * bs)));
	json_object_object_add(root, "only_a_blocks", json_object_new_int64((int64_t)df->kind_blocks[TM_DIFF_ONLY_A]));
	json_object_object_add(root, "only_b_blocks", json_object_new_int64((int64_t)df->kind_blocks[TM_DIFF_ONLY_B]));
	json_object_object_add(root, "remapped_blocks",
			       json_object_new_int64((int64_t)df->kind_blocks[TM_DIFF_REMAPPED]));
	if (df->content) {
		json_object_object_add(root, "same_content_blocks", json_object_new_int64((int64_t)df->same_blocks));
		json_object_object_add(root, "read_method", json_object_new_string(df->method ? df->method : "-"));
	}
	json_object_object_add(root, "damaged_ranges", json_object_new_int64((int64_t)df->damage));
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < df->nr_ranges; i++) {
		const struct range *r = &df->ranges[i];
		json_object *o = json_object_new_object();
		json_object_object_add(o, "vbegin", json_object_new_int64((int64_t)r->vbegin));
		json_object_object_add(o, "blocks", json_object_new_int64((int64_t)r->len));
		json_object_object_add(o, "offset", json_object_new_int64((int64_t)(r->vbegin * bs)));
		json_object_object_add(o, "bytes", json_object_new_int64((int64_t)(r->len * bs)));
		json_object_object_add(o, "kind", json_object_new_string(kind_name(r->kind)));
		json_object_array_add(a, o);
	}
	json_object_object_add(root, "ranges", a);
	dmr_cli_put_json(root);
}

int cmd_diff(struct dmr_cli *cli, int argc, char **argv)
{
	struct diff df = { .cli = cli };
	int code = parse(&df, argc, argv);
	if (code == DMR_EXIT_OK)
		code = run_diff(&df);
	if (code == DMR_EXIT_OK || code == DMR_EXIT_FINDINGS || code == DMR_EXIT_DAMAGE) {
		if (cli->json)
			print_json(&df);
		else if (!cli->quiet)
			print_human(&df);
		code = dmr_cli_finish_stdout(cli, code);
	}
	free(df.pieces);
	free(df.same);
	free(df.ranges);
	return code;
}
