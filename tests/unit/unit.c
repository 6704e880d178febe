#include "unit.h"

#include <errno.h>

#define MAX_TRACKED 256

static char *tracked[MAX_TRACKED];
static size_t nr_tracked;

void unit_tmp_track(const char *path)
{
	if (nr_tracked == MAX_TRACKED) {
		/* Full: forget the oldest, most likely long removed. */
		free(tracked[0]);
		memmove(tracked, tracked + 1, (MAX_TRACKED - 1) * sizeof(tracked[0]));
		nr_tracked--;
	}
	tracked[nr_tracked] = strdup(path);
	if (tracked[nr_tracked])
		nr_tracked++;
}

int unit_tmp_cleanup(void **state)
{
	(void)state;
	for (size_t i = 0; i < nr_tracked; i++) {
		if (unlink(tracked[i]) < 0 && errno != ENOENT)
			fprintf(stderr, "cannot remove %s: %s\n", tracked[i], strerror(errno));
		free(tracked[i]);
	}
	nr_tracked = 0;
	return 0;
}
