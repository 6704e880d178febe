#include "config.h"
#include "util/progress.h"
#include "util/fmt.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

double progress_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void progress_init(struct progress *p, FILE *out, const char *label, int verbose, int quiet)
{
	memset(p, 0, sizeof(*p));
	p->out = quiet ? NULL : out;
	p->label = label;
	p->tty = out && isatty(fileno(out));
	p->verbose = verbose;
	p->t0 = p->last = progress_now();
}

static void eta(char *buf, size_t len, double seconds)
{
	if (seconds < 0 || seconds > 359999) {
		snprintf(buf, len, "--:--");
		return;
	}
	unsigned s = (unsigned)(seconds + 0.5);
	if (s >= 3600)
		snprintf(buf, len, "%u:%02u:%02u", s / 3600, s / 60 % 60, s % 60);
	else
		snprintf(buf, len, "%u:%02u", s / 60, s % 60);
}

void progress_update(void *ctx, uint64_t done, uint64_t total)
{
	struct progress *p = ctx;
	if (!p->out || (!p->tty && !p->verbose))
		return;
	double now = progress_now();
	int last = done >= total;
	if (!last && now - p->last < (p->tty ? 0.2 : 5.0))
		return;
	p->last = now;
	double el = now - p->t0;
	double rate = el > 0 ? (double)done / el : 0;
	char a[32], b[32], r[32], e[32];
	fmt_human(done, a);
	fmt_human(total, b);
	fmt_human((uint64_t)rate, r);
	eta(e, sizeof(e), rate > 0 ? (double)(total - done) / rate : -1);
	unsigned pct = total ? (unsigned)(done * 100 / total) : 100;
	if (p->tty) {
		char bar[21];
		unsigned fill = pct / 5;
		for (unsigned i = 0; i < 20; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[20] = '\0';
		fprintf(p->out, "\r%s [%s] %3u%%  %s of %s  %s/s  ETA %s\033[K", p->label, bar, pct, a, b, r, e);
		p->drawn = 1;
	} else {
		fprintf(p->out, "%s: %u%%, %s of %s, %s/s, ETA %s\n", p->label, pct, a, b, r, e);
	}
	fflush(p->out);
}

void progress_end(struct progress *p)
{
	if (p->out && p->tty && p->drawn) {
		fputs("\r\033[K", p->out);
		fflush(p->out);
	}
	p->drawn = 0;
}
