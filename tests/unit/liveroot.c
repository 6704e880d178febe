#include "liveroot.h"

char *lvr_path(const char *root, const char *rel)
{
	static char buf[2][4200];
	static int k;
	k ^= 1;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", root, rel);
	return buf[k];
}

void lvr_print_findings(const struct live_finding *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, "  finding %zu: kind %d%s: %s\n", i, (int)f[i].kind,
			f[i].overridable ? " (overridable)" : "", f[i].msg);
}

int lvr_check(const char *root, int dm_from_kernel, const char *meta, const char *data, const char *prefix,
	      struct live_finding **f, size_t *n, struct dmr_err *err)
{
	char sysroot[4200], droot[4200];
	snprintf(sysroot, sizeof(sysroot), "%s/sysroot", root);
	snprintf(droot, sizeof(droot), "%s/docker", root);
	struct live_ctx c = { .sysroot = sysroot, .dm_from_kernel = dm_from_kernel };
	return live_check(&c, droot, meta, data, prefix, f, n, err);
}
