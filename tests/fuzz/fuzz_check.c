/* Harness: the pool checker.
 *
 * Input: a whole metadata image (at most 64 blocks), resealed (and now and
 * then also run as it is: image.h), opened the way `dmrescue check` opens a
 * pool (a file shorter than its space map is allowed) and checked with data
 * reference counts compared. Every finding must be a known severity with a
 * code and a one-line message, and the statistics must agree with them. */
#include "config.h"
#include "fuzz.h"
#include "image.h"

#include <string.h>

#include "thinmeta/check.h"
#include "thinmeta/pool.h"

struct findings {
	unsigned long n[3];
};

static void on_finding(void *ctx, const struct tm_finding *f)
{
	struct findings *c = ctx;
	FUZZ_ASSERT(f->severity == TM_SEV_INFO || f->severity == TM_SEV_WARNING || f->severity == TM_SEV_FATAL,
		    "severity %d", (int)f->severity);
	FUZZ_ASSERT(f->code && f->code[0], "finding without a code");
	FUZZ_ASSERT(memchr(f->msg, '\0', sizeof(f->msg)) && f->msg[0], "%s: finding without a message", f->code);
	FUZZ_ASSERT(!strchr(f->msg, '\n'), "%s: message is not one line: \"%s\"", f->code, f->msg);
	FUZZ_ASSERT(f->dev_id >= -1, "%s: device %lld", f->code, (long long)f->dev_id);
	c->n[f->severity]++;
}

static void run_image(const char *path, const struct fuzz_img *img)
{
	(void)img;
	struct tm_pool *p;
	struct dmr_err err = { 0 };
	if (tm_pool_open(&p, path, TM_POOL_ALLOW_SHORT, &err)) {
		FUZZ_ASSERT(err.msg[0], "tm_pool_open failed without a message");
		return;
	}
	struct tm_check_opts opts = { .data_path = NULL };
	struct tm_check_stats stats;
	struct findings seen = { { 0 } };
	memset(&stats, 0, sizeof(stats));
	int r = tm_check_pool(p, &opts, on_finding, &seen, &stats, &err);
	FUZZ_ASSERT(r <= 0 && (r == 0 || err.msg[0]), "tm_check_pool: %d without a message", r);
	/* Findings past 20 of a code are only counted (and summed up in one
	 * more line), so the counts and the reports differ, but never on
	 * whether there was anything to report. */
	if (r == 0)
		for (int s = 0; s < 3; s++)
			FUZZ_ASSERT((stats.findings[s] == 0) == (seen.n[s] == 0),
				    "severity %d: %lu findings counted, %lu reported", s, stats.findings[s], seen.n[s]);
	tm_pool_close(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_img_each(data, size, run_image);
	return 0;
}
