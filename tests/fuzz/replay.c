/* A main() for the harnesses without libFuzzer: runs each file named on the
 * command line (or each file in a named directory, in name order) through
 * LLVMFuzzerTestOneInput once. Any compiler builds it, so `make check` can
 * replay the seeds and the regression inputs under the plain and the
 * sanitizer builds; a crash or a broken invariant fails the run.
 *
 *   replay_<target> [-v] FILE|DIR...
 *
 * FUZZ_DUMP_DIR=dir makes the image harnesses write the images they used
 * there (raw.img, resealed.img), to run a finding through dmrescue. */
#include "config.h"
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Inputs larger than any harness's -max_len are a mistake, not a test. */
#define REPLAY_MAX ((size_t)16 << 20)

static int verbose;

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	uint8_t *buf = malloc(REPLAY_MAX);
	size_t n = buf ? fread(buf, 1, REPLAY_MAX, f) : 0;
	int bad = !buf || ferror(f) || !feof(f);
	fclose(f);
	if (bad) {
		fprintf(stderr, "replay: %s: cannot read it (or larger than %zu bytes)\n", path, REPLAY_MAX);
		free(buf);
		return -1;
	}
	if (verbose)
		fprintf(stderr, "replay: %s (%zu bytes)\n", path, n);
	/* An exact-size copy, as libFuzzer hands it over. */
	uint8_t *in = malloc(n ? n : 1);
	if (!in) {
		free(buf);
		return -1;
	}
	memcpy(in, buf, n);
	free(buf);
	LLVMFuzzerTestOneInput(in, n);
	free(in);
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_dir(const char *dir, size_t *count)
{
	DIR *d = opendir(dir);
	if (!d) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	int r = 0;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			char **v = realloc(names, cap * sizeof(*v));
			if (!v) {
				r = -1;
				break;
			}
			names = v;
		}
		if (!(names[n] = strdup(e->d_name))) {
			r = -1;
			break;
		}
		n++;
	}
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (r == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			r = run_file(path);
			(*count)++;
		}
		free(names[i]);
	}
	free(names);
	return r;
}

int main(int argc, char **argv)
{
	size_t count = 0;
	int r = 0, i = 1;
	if (i < argc && !strcmp(argv[i], "-v")) {
		verbose = 1;
		i++;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: %s [-v] FILE|DIR...\n", argv[0]);
		return 64;
	}
	for (; i < argc && r == 0; i++) {
		struct stat st;
		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
			r = run_dir(argv[i], &count);
		} else {
			r = run_file(argv[i]);
			count++;
		}
	}
	if (r)
		return 1;
	const char *name = strrchr(argv[0], '/');
	printf("%s: %zu inputs, no crash\n", name ? name + 1 : argv[0], count);
	return 0;
}
