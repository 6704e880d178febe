/* Reading Docker's JSON the way Go's encoding/json does, on top of json-c:
 * strict RFC 8259 syntax (json-c alone accepts single quotes, NaN, ...),
 * object members matched exactly or else ignoring ASCII case, the last of
 * duplicate keys wins (and the duplicate is reported), null reads as
 * absent, and numbers keep their exact integer range (json-c saturates out
 * of range literals silently, so the syntax pass notes where that happened). */
#ifndef DMR_DOCKER_GOJSON_H
#define DMR_DOCKER_GOJSON_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "docker/state.h"

#define GJ_MAX_DEPTH 512
#define GJ_MAX_BIG 8

struct gj_doc {
	struct json_object *root; /* the top-level object or array; NULL for anything else */
	enum json_type top;       /* the top-level type (json_type_null for "null") */
	char dup_key[96];         /* the first duplicate key found, quoted; "" if none */
	int nr_big;               /* member keys whose integer literal lies outside 64 bits */
	char big_keys[GJ_MAX_BIG][64];
};

/* 0 (doc filled, gj_free it), DMR_ECORRUPT with why ("not JSON: ... at byte N",
 * "empty file"), or DMR_ENOMEM. buf[len] need not be a NUL. */
int gj_parse(const char *buf, size_t len, struct gj_doc *doc, char *why, size_t whylen);
void gj_free(struct gj_doc *doc);

/* "a string", "an object", ... for messages. */
const char *gj_type_name(enum json_type t);

/* The member key of obj (exact match, else ASCII case-insensitive): NULL
 * when absent or null, or when obj is not an object. */
struct json_object *gj_member(struct json_object *obj, const char *key);

/* Typed members. Return GJ_ABSENT (absent or null; *v untouched), GJ_OK, or
 * GJ_BAD with why = "<key>: <reason>"; gj_get_str and gj_get_labels may
 * also return DMR_ENOMEM. */
enum { GJ_ABSENT = 0, GJ_OK = 1, GJ_BAD = 2 };
int gj_get_u64(const struct gj_doc *d, struct json_object *obj, const char *key, uint64_t *v, char *why,
	       size_t whylen);
int gj_get_int(const struct gj_doc *d, struct json_object *obj, const char *key, int64_t *v, char *why,
	       size_t whylen);
int gj_get_bool(struct json_object *obj, const char *key, int *v, char *why, size_t whylen);
int gj_get_str(struct json_object *obj, const char *key, char **v, char *why, size_t whylen);
/* A map[string]string, sorted by key; at most max entries. */
int gj_get_labels(struct json_object *obj, const char *key, size_t max, struct dk_label **out, size_t *nr,
		  char *why, size_t whylen);
void gj_labels_free(struct dk_label *l, size_t nr);

#endif
