#include "config.h"
#include "docker/gojson.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json_object_iterator.h>

#include "docker/fsread.h"
#include "util/err.h"

/* json-c before 0.14 has no unsigned 64-bit integers: literals above
 * INT64_MAX saturate there, so they count as out of range. */
#if defined(JSON_C_VERSION_NUM) && JSON_C_VERSION_NUM >= ((0 << 16) | (14 << 8))
#define GJ_HAVE_UINT64 1
#else
#define GJ_HAVE_UINT64 0
#endif

/* ---- strict syntax pass ---- */

struct key {
	const char *p; /* raw bytes between the quotes */
	size_t len;
};

struct scan {
	const char *start, *p, *end;
	int depth;
	int nomem;
	const char *err;
	struct gj_doc *doc;
};

static int scan_value(struct scan *s, const struct key *member);

static int bad(struct scan *s, const char *what)
{
	if (!s->err)
		s->err = what;
	return -1;
}

static void skip_ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static int hexdigit(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int scan_string(struct scan *s, struct key *out)
{
	s->p++; /* the opening quote */
	const char *begin = s->p;
	while (s->p < s->end) {
		unsigned char c = (unsigned char)*s->p;
		if (c == '"') {
			if (out) {
				out->p = begin;
				out->len = (size_t)(s->p - begin);
			}
			s->p++;
			return 0;
		}
		if (c < 0x20)
			return bad(s, "control character in a string");
		if (c == '\\') {
			s->p++;
			if (s->p >= s->end)
				break;
			switch (*s->p) {
			case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
				s->p++;
				break;
			case 'u':
				for (int i = 1; i <= 4; i++)
					if (s->p + i >= s->end || !hexdigit(s->p[i]))
						return s->p + i >= s->end ? bad(s, "unexpected end of input")
									  : bad(s, "invalid \\u escape in a string");
				s->p += 5;
				break;
			default:
				return bad(s, "invalid escape in a string");
			}
			continue;
		}
		s->p++;
	}
	return bad(s, "unexpected end of input");
}

/* Digit string d (no sign, no leading zero unless "0") compared with the
 * decimal limit lim: > 0 when d is larger. */
static int cmp_digits(const char *d, size_t len, const char *lim)
{
	size_t ll = strlen(lim);
	if (len != ll)
		return len > ll ? 1 : -1;
	return memcmp(d, lim, len);
}

static void note_big(struct scan *s, const struct key *member)
{
	struct gj_doc *doc = s->doc;
	if (doc->nr_big == GJ_MAX_BIG)
		return;
	size_t len = member ? member->len : 0;
	if (len >= sizeof(doc->big_keys[0]))
		len = sizeof(doc->big_keys[0]) - 1;
	if (len)
		memcpy(doc->big_keys[doc->nr_big], member->p, len);
	doc->big_keys[doc->nr_big][len] = '\0';
	doc->nr_big++;
}

static int scan_number(struct scan *s, const struct key *member)
{
	int neg = 0, integer = 1;
	if (*s->p == '-') {
		neg = 1;
		s->p++;
	}
	const char *digits = s->p;
	if (s->p >= s->end || *s->p < '0' || *s->p > '9')
		return bad(s, s->p >= s->end ? "unexpected end of input" : "invalid number");
	if (*s->p == '0')
		s->p++;
	else
		while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
			s->p++;
	size_t ndigits = (size_t)(s->p - digits);
	if (s->p < s->end && *s->p == '.') {
		integer = 0;
		s->p++;
		if (s->p >= s->end || *s->p < '0' || *s->p > '9')
			return bad(s, "invalid number");
		while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
			s->p++;
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
		integer = 0;
		s->p++;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		if (s->p >= s->end || *s->p < '0' || *s->p > '9')
			return bad(s, "invalid number");
		while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
			s->p++;
	}
	if (integer) {
		const char *lim = neg ? "9223372036854775808" : GJ_HAVE_UINT64 ? "18446744073709551615"
									     : "9223372036854775807";
		if (cmp_digits(digits, ndigits, lim) > 0)
			note_big(s, member);
	}
	return 0;
}

static int scan_literal(struct scan *s, const char *lit)
{
	size_t len = strlen(lit);
	if ((size_t)(s->end - s->p) < len)
		return memcmp(s->p, lit, (size_t)(s->end - s->p)) ? bad(s, "invalid literal")
								   : bad(s, "unexpected end of input");
	if (memcmp(s->p, lit, len))
		return bad(s, "invalid literal");
	s->p += len;
	return 0;
}

static int fold_cmp(const struct key *a, const struct key *b)
{
	size_t n = a->len < b->len ? a->len : b->len;
	for (size_t i = 0; i < n; i++) {
		int ca = (unsigned char)a->p[i], cb = (unsigned char)b->p[i];
		if (ca >= 'A' && ca <= 'Z')
			ca += 'a' - 'A';
		if (cb >= 'A' && cb <= 'Z')
			cb += 'a' - 'A';
		if (ca != cb)
			return ca - cb;
	}
	return a->len < b->len ? -1 : a->len > b->len;
}

static int cmp_key(const void *a, const void *b)
{
	return fold_cmp(a, b);
}

static void note_duplicates(struct scan *s, struct key *keys, size_t n)
{
	if (s->doc->dup_key[0] || n < 2)
		return;
	qsort(keys, n, sizeof(keys[0]), cmp_key);
	for (size_t i = 1; i < n; i++) {
		if (!fold_cmp(&keys[i - 1], &keys[i])) {
			/* qsort is not stable: name the later one in the text */
			const struct key *k = keys[i].p > keys[i - 1].p ? &keys[i] : &keys[i - 1];
			char raw[128];
			size_t len = k->len < sizeof(raw) - 1 ? k->len : sizeof(raw) - 1;
			memcpy(raw, k->p, len);
			raw[len] = '\0';
			char q[80];
			snprintf(s->doc->dup_key, sizeof(s->doc->dup_key), "\"%s\"", fsr_quote(q, sizeof(q), raw, 60));
			return;
		}
	}
}

static int scan_object(struct scan *s)
{
	struct key small[16], *keys = small;
	size_t n = 0, cap = 16;
	int r = -1;
	s->p++;
	skip_ws(s);
	if (s->p < s->end && *s->p == '}') {
		s->p++;
		return 0;
	}
	for (;;) {
		skip_ws(s);
		if (s->p >= s->end) {
			bad(s, "unexpected end of input");
			goto out;
		}
		if (*s->p != '"') {
			bad(s, "expected a string key");
			goto out;
		}
		struct key k;
		if (scan_string(s, &k))
			goto out;
		if (n == cap) {
			struct key *nk = malloc(2 * cap * sizeof(*nk));
			if (!nk) {
				s->nomem = 1;
				bad(s, "out of memory");
				goto out;
			}
			memcpy(nk, keys, n * sizeof(*nk));
			if (keys != small)
				free(keys);
			keys = nk;
			cap *= 2;
		}
		keys[n++] = k;
		skip_ws(s);
		if (s->p >= s->end) {
			bad(s, "unexpected end of input");
			goto out;
		}
		if (*s->p != ':') {
			bad(s, "expected ':' after a key");
			goto out;
		}
		s->p++;
		if (scan_value(s, &k))
			goto out;
		skip_ws(s);
		if (s->p >= s->end) {
			bad(s, "unexpected end of input");
			goto out;
		}
		if (*s->p == ',') {
			s->p++;
			continue;
		}
		if (*s->p == '}') {
			s->p++;
			break;
		}
		bad(s, "expected ',' or '}' in an object");
		goto out;
	}
	note_duplicates(s, keys, n);
	r = 0;
out:
	if (keys != small)
		free(keys);
	return r;
}

static int scan_array(struct scan *s, const struct key *member)
{
	s->p++;
	skip_ws(s);
	if (s->p < s->end && *s->p == ']') {
		s->p++;
		return 0;
	}
	for (;;) {
		if (scan_value(s, member))
			return -1;
		skip_ws(s);
		if (s->p >= s->end)
			return bad(s, "unexpected end of input");
		if (*s->p == ',') {
			s->p++;
			continue;
		}
		if (*s->p == ']') {
			s->p++;
			return 0;
		}
		return bad(s, "expected ',' or ']' in an array");
	}
}

static int scan_value(struct scan *s, const struct key *member)
{
	skip_ws(s);
	if (s->p >= s->end)
		return bad(s, "unexpected end of input");
	int r;
	switch (*s->p) {
	case '{':
	case '[':
		if (++s->depth > GJ_MAX_DEPTH)
			return bad(s, "nested too deeply");
		r = *s->p == '{' ? scan_object(s) : scan_array(s, member);
		s->depth--;
		return r;
	case '"':
		return scan_string(s, NULL);
	case 't':
		return scan_literal(s, "true");
	case 'f':
		return scan_literal(s, "false");
	case 'n':
		return scan_literal(s, "null");
	default:
		if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
			return scan_number(s, member);
		return bad(s, "invalid character");
	}
}

static enum json_type top_type(char c)
{
	switch (c) {
	case '{': return json_type_object;
	case '[': return json_type_array;
	case '"': return json_type_string;
	case 't': case 'f': return json_type_boolean;
	case 'n': return json_type_null;
	default: return json_type_int;
	}
}

int gj_parse(const char *buf, size_t len, struct gj_doc *doc, char *why, size_t whylen)
{
	memset(doc, 0, sizeof(*doc));
	struct scan s = { .start = buf, .p = buf, .end = buf + len, .doc = doc };
	skip_ws(&s);
	if (s.p == s.end) {
		snprintf(why, whylen, "%s", len ? "only white space" : "empty file");
		return DMR_ECORRUPT;
	}
	doc->top = top_type(*s.p);
	if (!scan_value(&s, NULL)) {
		skip_ws(&s);
		if (s.p != s.end)
			bad(&s, "data after the JSON value");
	}
	if (s.nomem)
		return DMR_ENOMEM;
	if (s.err) {
		size_t off = (size_t)(s.p - s.start);
		if (s.p < s.end && !strcmp(s.err, "invalid character")) {
			unsigned char c = (unsigned char)*s.p;
			if (c >= 0x20 && c < 0x7f)
				snprintf(why, whylen, "not JSON: invalid character '%c' at byte %zu", c, off);
			else
				snprintf(why, whylen, "not JSON: invalid byte 0x%02x at byte %zu", c, off);
		} else {
			snprintf(why, whylen, "not JSON: %s at byte %zu", s.err, off);
		}
		return DMR_ECORRUPT;
	}
	if (doc->top != json_type_object && doc->top != json_type_array)
		return 0;
	if (len > INT_MAX) {
		snprintf(why, whylen, "too large for the JSON parser");
		return DMR_ECORRUPT;
	}
	struct json_tokener *tok = json_tokener_new_ex(GJ_MAX_DEPTH + 8);
	if (!tok)
		return DMR_ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	doc->root = json_tokener_parse_ex(tok, buf, (int)len);
	enum json_tokener_error e = json_tokener_get_error(tok);
	json_tokener_free(tok);
	if (!doc->root) {
		snprintf(why, whylen, "not JSON (json-c: %s)", json_tokener_error_desc(e));
		return DMR_ECORRUPT;
	}
	return 0;
}

void gj_free(struct gj_doc *doc)
{
	if (doc->root)
		json_object_put(doc->root);
	doc->root = NULL;
}

const char *gj_type_name(enum json_type t)
{
	switch (t) {
	case json_type_null: return "null";
	case json_type_boolean: return "a boolean";
	case json_type_double:
	case json_type_int: return "a number";
	case json_type_object: return "an object";
	case json_type_array: return "an array";
	case json_type_string: return "a string";
	default: return "an unknown JSON type";
	}
}

struct json_object *gj_member(struct json_object *obj, const char *key)
{
	struct json_object *v = NULL;
	if (!obj || !json_object_is_type(obj, json_type_object))
		return NULL;
	if (json_object_object_get_ex(obj, key, &v))
		return v;
	/* Go also takes a member whose name differs only in case; the last one wins. */
	struct json_object_iterator it = json_object_iter_begin(obj), end = json_object_iter_end(obj);
	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it))
		if (!strcasecmp(json_object_iter_peek_name(&it), key))
			v = json_object_iter_peek_value(&it);
	return v;
}

static int is_big(const struct gj_doc *d, const char *key)
{
	for (int i = 0; i < d->nr_big; i++)
		if (!strcasecmp(d->big_keys[i], key))
			return 1;
	return 0;
}

static int wrong_type(const char *key, struct json_object *v, const char *want, char *why, size_t whylen)
{
	snprintf(why, whylen, "%s: %s, not %s", key, gj_type_name(json_object_get_type(v)), want);
	return GJ_BAD;
}

/* The integer member as json-c prints it (exact for what it holds). */
static int int_text(struct json_object *v, const char *key, const char **text, char *why, size_t whylen)
{
	if (json_object_is_type(v, json_type_double)) {
		snprintf(why, whylen, "%s: not an integer", key);
		return GJ_BAD;
	}
	if (!json_object_is_type(v, json_type_int))
		return wrong_type(key, v, "an integer", why, whylen);
	*text = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
	return GJ_OK;
}

int gj_get_u64(const struct gj_doc *d, struct json_object *obj, const char *key, uint64_t *v, char *why,
	       size_t whylen)
{
	struct json_object *m = gj_member(obj, key);
	const char *text;
	if (!m)
		return GJ_ABSENT;
	int r = int_text(m, key, &text, why, whylen);
	if (r != GJ_OK)
		return r;
	if (text[0] == '-') {
		snprintf(why, whylen, "%s: negative (%s)", key, text);
		return GJ_BAD;
	}
	errno = 0;
	unsigned long long x = strtoull(text, NULL, 10);
	if (errno == ERANGE || ((x == UINT64_MAX || x == INT64_MAX) && is_big(d, key))) {
		snprintf(why, whylen, "%s: out of range", key);
		return GJ_BAD;
	}
	*v = x;
	return GJ_OK;
}

int gj_get_int(const struct gj_doc *d, struct json_object *obj, const char *key, int64_t *v, char *why,
	       size_t whylen)
{
	struct json_object *m = gj_member(obj, key);
	const char *text;
	if (!m)
		return GJ_ABSENT;
	int r = int_text(m, key, &text, why, whylen);
	if (r != GJ_OK)
		return r;
	errno = 0;
	long long x = strtoll(text, NULL, 10);
	if (errno == ERANGE || ((x == INT64_MAX || x == INT64_MIN) && is_big(d, key))) {
		snprintf(why, whylen, "%s: out of range", key);
		return GJ_BAD;
	}
	*v = x;
	return GJ_OK;
}

int gj_get_bool(struct json_object *obj, const char *key, int *v, char *why, size_t whylen)
{
	struct json_object *m = gj_member(obj, key);
	if (!m)
		return GJ_ABSENT;
	if (!json_object_is_type(m, json_type_boolean))
		return wrong_type(key, m, "a boolean", why, whylen);
	*v = json_object_get_boolean(m) ? 1 : 0;
	return GJ_OK;
}

static int copy_string(struct json_object *m, const char *key, char **v, char *why, size_t whylen)
{
	const char *s = json_object_get_string(m);
	size_t len = (size_t)json_object_get_string_len(m);
	if (strlen(s) != len) {
		snprintf(why, whylen, "%s: contains a NUL character", key);
		return GJ_BAD;
	}
	char *c = strdup(s);
	if (!c)
		return DMR_ENOMEM;
	*v = c;
	return GJ_OK;
}

int gj_get_str(struct json_object *obj, const char *key, char **v, char *why, size_t whylen)
{
	struct json_object *m = gj_member(obj, key);
	if (!m)
		return GJ_ABSENT;
	if (!json_object_is_type(m, json_type_string))
		return wrong_type(key, m, "a string", why, whylen);
	return copy_string(m, key, v, why, whylen);
}

void gj_labels_free(struct dk_label *l, size_t nr)
{
	for (size_t i = 0; i < nr; i++) {
		free(l[i].key);
		free(l[i].value);
	}
	free(l);
}

static int cmp_label(const void *a, const void *b)
{
	return strcmp(((const struct dk_label *)a)->key, ((const struct dk_label *)b)->key);
}

int gj_get_labels(struct json_object *obj, const char *key, size_t max, struct dk_label **out, size_t *nr,
		  char *why, size_t whylen)
{
	struct json_object *m = gj_member(obj, key);
	*out = NULL;
	*nr = 0;
	if (!m)
		return GJ_ABSENT;
	if (!json_object_is_type(m, json_type_object))
		return wrong_type(key, m, "an object", why, whylen);
	size_t n = (size_t)json_object_object_length(m);
	if (n > max) {
		snprintf(why, whylen, "%s: more than %zu entries", key, max);
		return GJ_BAD;
	}
	if (!n)
		return GJ_OK;
	struct dk_label *l = calloc(n, sizeof(*l));
	if (!l)
		return DMR_ENOMEM;
	size_t i = 0;
	int r = GJ_OK;
	struct json_object_iterator it = json_object_iter_begin(m), end = json_object_iter_end(m);
	for (; i < n && !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
		struct json_object *val = json_object_iter_peek_value(&it);
		const char *name = json_object_iter_peek_name(&it);
		char q[80];
		if (val && !json_object_is_type(val, json_type_string)) {
			snprintf(why, whylen, "%s: the value of \"%s\" is %s, not a string", key,
				 fsr_quote(q, sizeof(q), name, 40), gj_type_name(json_object_get_type(val)));
			r = GJ_BAD;
			break;
		}
		l[i].key = strdup(name);
		if (!l[i].key) {
			r = DMR_ENOMEM;
			break;
		}
		if (val) {
			r = copy_string(val, key, &l[i].value, why, whylen);
			if (r != GJ_OK) {
				i++;
				break;
			}
		} else {
			l[i].value = strdup(""); /* Go stores the zero value for null */
			if (!l[i].value) {
				i++;
				r = DMR_ENOMEM;
				break;
			}
		}
		i++;
	}
	if (r != GJ_OK) {
		gj_labels_free(l, i);
		return r;
	}
	if (i > 1)
		qsort(l, i, sizeof(*l), cmp_label);
	*out = l;
	*nr = i;
	return GJ_OK;
}
