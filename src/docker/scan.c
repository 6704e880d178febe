#include "config.h"
#include "docker/scan.h"
#include "docker/gojson.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dk_grow(void **arr, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t ncap = *cap ? *cap : 16;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2)
			return DMR_ENOMEM;
		ncap *= 2;
	}
	if (ncap > SIZE_MAX / elem)
		return DMR_ENOMEM;
	void *p = realloc(*arr, ncap * elem);
	if (!p)
		return DMR_ENOMEM;
	memset((char *)p + *cap * elem, 0, (ncap - *cap) * elem);
	*arr = p;
	*cap = ncap;
	return 0;
}

static int add_problem(struct dk_scan *s, const char *path, const char *msg)
{
	struct dk_state *st = s->st;
	if (st->nr_problems >= DK_MAX_PROBLEMS) {
		s->dropped_problems++;
		return 0;
	}
	if (DK_GROW(st->problems, s->cap_problems, st->nr_problems + 1))
		return DMR_ENOMEM;
	struct dk_problem *p = &st->problems[st->nr_problems];
	p->path = strdup(path);
	p->msg = strdup(msg);
	if (!p->path || !p->msg) {
		free(p->path);
		free(p->msg);
		p->path = p->msg = NULL;
		return DMR_ENOMEM;
	}
	st->nr_problems++;
	return 0;
}

int dk_problem(struct dk_scan *s, const char *path, const char *fmt, ...)
{
	char msg[640];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return add_problem(s, path, msg);
}

int dk_transient(struct dk_scan *s, enum dk_transient_kind kind, const char *path, uint64_t bytes)
{
	struct dk_state *st = s->st;
	if (DK_GROW(st->transients, s->cap_transients, st->nr_transients + 1))
		return DMR_ENOMEM;
	struct dk_transient *t = &st->transients[st->nr_transients];
	t->path = strdup(path);
	if (!t->path)
		return DMR_ENOMEM;
	t->kind = kind;
	t->bytes = bytes;
	st->nr_transients++;
	return 0;
}

/* Turns an fsread result into the wrapper's result. */
static int report(struct dk_scan *s, int r, int required, char *why, size_t whylen)
{
	if (r <= 0)
		return r;
	if (r == FSR_MISSING && !required)
		return FSR_MISSING;
	if (why)
		snprintf(why, whylen, "%s", s->fail.msg);
	int e = add_problem(s, s->fail.path, s->fail.msg);
	return e ? e : FSR_BAD;
}

int dk_read(struct dk_scan *s, const struct fsr_dir *at, const char *rel, size_t cap, int required,
	    struct fsr_file *out, char *why, size_t whylen)
{
	return report(s, fsr_read(at, rel, cap, out, &s->fail), required, why, whylen);
}

int dk_opendir(struct dk_scan *s, const struct fsr_dir *at, const char *rel, int required, struct fsr_dir *out,
	       char *why, size_t whylen)
{
	return report(s, fsr_opendir(at, rel, out, &s->fail), required, why, whylen);
}

int dk_list(struct dk_scan *s, const struct fsr_dir *at, const char *rel, int required, struct fsr_list *out)
{
	int r = report(s, fsr_list(at, rel, FSR_LIST_MAX, out, &s->fail), required, NULL, 0);
	if (r || !out->truncated)
		return r;
	char *path = dk_path(at, rel);
	if (!path) {
		fsr_list_free(out);
		return DMR_ENOMEM;
	}
	r = dk_problem(s, path, "more than %zu entries: only the first %zu (in directory order) were read",
		       FSR_LIST_MAX, FSR_LIST_MAX);
	free(path);
	if (r)
		fsr_list_free(out);
	return r;
}

char *dk_path(const struct fsr_dir *at, const char *rel)
{
	char buf[FSR_PATH_MAX];
	if (fsr_join(buf, sizeof(buf), at->rel, rel) < 0)
		return NULL;
	return strdup(buf);
}

void dk_first_error(char *err, size_t size, const char *prefix, const char *why)
{
	if (!size || err[0])
		return;
	size_t o = 0;
	for (const char *parts[2] = { prefix, why }, **p = parts; p < parts + 2; p++) {
		size_t len = strlen(*p);
		if (len > size - 1 - o)
			len = size - 1 - o;
		memcpy(err + o, *p, len);
		o += len;
	}
	err[o] = '\0';
}

void dk_chomp(struct fsr_file *f)
{
	if (f->len && f->data[f->len - 1] == '\n')
		f->data[--f->len] = '\0';
}

int dk_is_hex(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return len != 0;
}

int dk_is_digest(const char *s)
{
	return !strncmp(s, "sha256:", 7) && strlen(s + 7) == 64 && dk_is_hex(s + 7, 64);
}

int dk_is_hash_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 255 || s[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
		      c == '-' || c == '.'))
			return 0;
	}
	return 1;
}

int dk_read_labels(struct json_object *root, const char *member, struct dk_label **labels, size_t *nr,
		   char *err, size_t errlen)
{
	char why[256], prefix[64];
	struct json_object *parent = gj_member(root, member);
	if (!parent)
		return 0;
	if (!json_object_is_type(parent, json_type_object)) {
		snprintf(why, sizeof(why), "%s: %s, not an object", member, gj_type_name(json_object_get_type(parent)));
		dk_first_error(err, errlen, "", why);
		return 0;
	}
	int r = gj_get_labels(parent, "Labels", DK_MAX_LIST_ITEMS, labels, nr, why, sizeof(why));
	if (r == GJ_BAD) {
		snprintf(prefix, sizeof(prefix), "%s.", member);
		dk_first_error(err, errlen, prefix, why);
	}
	return r < 0 ? r : 0;
}

void dk_free_strv(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int dk_open_list(struct dk_scan *s, const struct fsr_dir *at, const char *rel, struct fsr_dir *dir,
		 struct fsr_list *list)
{
	int r = dk_opendir(s, at, rel, 0, dir, NULL, 0);
	if (r)
		return r < 0 ? r : 0;
	r = dk_list(s, dir, "", 1, list);
	if (r) {
		fsr_closedir(dir);
		return r < 0 ? r : 0;
	}
	return 1;
}
