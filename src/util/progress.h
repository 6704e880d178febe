/* A progress line for long runs: on a terminal (stderr) a bar redrawn in
 * place, "label  [#####.....]  3.2GiB of 90GiB  1.1GiB/s  ETA 1:19", at
 * most five times a second; off a terminal nothing, or with verbose one
 * plain line every few seconds. */
#ifndef DMR_UTIL_PROGRESS_H
#define DMR_UTIL_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

struct progress {
	FILE *out;
	const char *label;
	int tty;      /* redraw in place */
	int verbose;  /* plain lines when not a tty */
	int drawn;    /* something is on the line */
	double t0, last;
};

/* out: where to draw (stderr); quiet: never draw. */
void progress_init(struct progress *p, FILE *out, const char *label, int verbose, int quiet);

/* An lf_progress_fn: ctx is the struct progress. */
void progress_update(void *ctx, uint64_t done, uint64_t total);

/* Clears the bar (a terminal) so the next output starts on a clean line. */
void progress_end(struct progress *p);

/* Seconds since an arbitrary start (CLOCK_MONOTONIC). */
double progress_now(void);

#endif
