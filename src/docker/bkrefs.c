/* Which BuildKit snapshots something still refers to (clean
 * --buildkit-unreferenced).
 *
 * Docker's buildkit/ directory with the graph driver (moby
 * builder/builder-next: controller.go, adapters/snapshot/snapshot.go,
 * leasemanager.go; moby/buildkit cache/metadata.go, cache/metadata/
 * metadata.go; containerd metadata/buckets.go, leases.go):
 *
 * - snapshots.db (bbolt, Docker's snapshotter): one top-level bucket per
 *   snapshot key. Prepare(key, parent) makes the graph-driver device <key>
 *   (GraphDriver.Create(key, parent's device)) and bucket <key> with
 *   "parent" = the parent's snapshot key as BuildKit named it ("" for
 *   none; "sha256:<chain>" for an image layer). Commit(name, key) makes
 *   bucket <name> with "committed" = key (the device stays <key>:
 *   getGraphDriverID) and puts "iscommitted" into bucket <key>. "chainid"
 *   marks a snapshot registered as an image layer (RegisterByGraphID: the
 *   layer's cache-id is then the device's key); "size" caches Usage.
 *   remove(key) deletes bucket <key>, the bucket of its committed key, and
 *   the device.
 * - metadata_v2.db (bbolt, BuildKit's cache metadata store): bucket
 *   "_main", one bucket per cache record id, each key a JSON Value
 *   {"value": <json>, "index": "..."}. A record's snapshot is the string
 *   in "cache.snapshot", or the record id itself when absent (older
 *   records: getSnapshotID). Other keys link records to records
 *   (cache.equalMutable, cache.parent, cache.layerParent,
 *   cache.mergeParents...); those records are in _main too. "_index" and
 *   "_external" hold nothing about snapshots.
 * - containerdmeta.db (bbolt, containerd's metadata store, namespace
 *   "buildkit"): leases at v1/<namespace>/leases/<lease id>, whose
 *   snapshot resources are keys of v1/.../leases/<id>/snapshots/
 *   <snapshotter>/ (type "snapshots/default" for Docker's snapshotter,
 *   which counts them in leasemanager.go and removes a snapshot when its
 *   last lease goes). Snapshots of containerd's own snapshotters, if any,
 *   are under v1/<namespace>/snapshots/<snapshotter>/<key> (with "name").
 *
 * Over-approximation is the rule here: every record id, every string (or
 * string in an array) a record's values hold, every lease resource key in
 * any namespace and snapshotter, every containerd snapshot key and name
 * counts as a reference. A snapshot is removed only when nothing of that
 * names it (see dk_buildkit_unreferenced). */
#include "config.h"
#include "docker/bkrefs.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "docker/bolt.h"

struct refs {
	char **v;
	size_t n, cap;
};

static int add_ref(struct refs *r, const unsigned char *s, size_t len)
{
	if (len == 0 || memchr(s, '\0', len))
		return 0;
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 64;
		char **v = realloc(r->v, cap * sizeof(*v));
		if (!v)
			return DMR_ENOMEM;
		r->v = v;
		r->cap = cap;
	}
	char *c = malloc(len + 1);
	if (!c)
		return DMR_ENOMEM;
	memcpy(c, s, len);
	c[len] = '\0';
	r->v[r->n++] = c;
	return 0;
}

static int add_json_strings(struct refs *r, json_object *v)
{
	if (json_object_is_type(v, json_type_string))
		return add_ref(r, (const unsigned char *)json_object_get_string(v), (size_t)json_object_get_string_len(v));
	if (json_object_is_type(v, json_type_array)) {
		size_t n = json_object_array_length(v);
		for (size_t i = 0; i < n; i++) {
			int e = add_json_strings(r, json_object_array_get_idx(v, i));
			if (e)
				return e;
		}
	}
	return 0;
}

/* One record of _main: its id, and the strings in its values. */
static int record_refs(struct refs *r, const struct dk_bolt_item *rec, struct dmr_err *err)
{
	int e = add_ref(r, rec->key, rec->klen);
	for (size_t i = 0; !e && i < rec->sub->n; i++) {
		const struct dk_bolt_item *it = &rec->sub->items[i];
		if (it->sub || it->vlen == 0)
			continue;
		json_tokener *tok = json_tokener_new();
		if (!tok)
			return DMR_ENOMEM;
		json_object *o = json_tokener_parse_ex(tok, (const char *)it->val, (int)it->vlen);
		int bad = json_tokener_get_error(tok) != json_tokener_success || !o ||
			  !json_object_is_type(o, json_type_object);
		json_tokener_free(tok);
		if (bad) {
			json_object_put(o);
			return dmr_err_set(err, DMR_ECORRUPT, "_main/%.*s: value of %.*s is not a JSON object",
					   (int)(rec->klen < 64 ? rec->klen : 64), (const char *)rec->key,
					   (int)(it->klen < 64 ? it->klen : 64), (const char *)it->key);
		}
		json_object *val = NULL;
		if (json_object_object_get_ex(o, "value", &val))
			e = add_json_strings(r, val);
		json_object_put(o);
	}
	return e;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void refs_free(struct refs *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i]);
	free(r->v);
	memset(r, 0, sizeof(*r));
}

static int cache_refs(const unsigned char *db, size_t len, struct refs *r, struct dmr_err *err)
{
	struct dk_bolt_db d;
	int e = dk_bolt_load(db, len, &d, err);
	if (e)
		return dmr_err_prefix(err, "buildkit/metadata_v2.db");
	const struct dk_bolt_bucket *main = dk_bolt_bucket_at(d.root, "_main");
	for (size_t i = 0; !e && main && i < main->n; i++) {
		if (!main->items[i].sub)
			continue; /* All() skips plain keys */
		e = record_refs(r, &main->items[i], err);
		if (e == DMR_ENOMEM)
			dmr_err_set(err, e, "out of memory");
	}
	dk_bolt_db_free(&d);
	return e ? dmr_err_prefix(err, "buildkit/metadata_v2.db") : 0;
}

/* Every key of every bucket below b (leases/<id>/snapshots/<snapshotter>). */
static int keys_two_down(struct refs *r, const struct dk_bolt_bucket *b)
{
	int e = 0;
	for (size_t i = 0; !e && b && i < b->n; i++) {
		const struct dk_bolt_bucket *s = b->items[i].sub;
		for (size_t k = 0; !e && s && k < s->n; k++) {
			e = add_ref(r, s->items[k].key, s->items[k].klen);
			const struct dk_bolt_item *name = s->items[k].sub ? dk_bolt_get(s->items[k].sub, "name") : NULL;
			if (!e && name && !name->sub)
				e = add_ref(r, name->val, name->vlen);
		}
	}
	return e;
}

static int lease_refs(const unsigned char *db, size_t len, struct refs *r, struct dmr_err *err)
{
	struct dk_bolt_db d;
	int e = dk_bolt_load(db, len, &d, err);
	if (e)
		return dmr_err_prefix(err, "buildkit/containerdmeta.db");
	const struct dk_bolt_bucket *v1 = dk_bolt_bucket_at(d.root, "v1");
	for (size_t i = 0; !e && v1 && i < v1->n; i++) {
		const struct dk_bolt_bucket *ns = v1->items[i].sub;
		if (!ns)
			continue;
		const struct dk_bolt_bucket *leases = dk_bolt_bucket_at(ns, "leases");
		for (size_t l = 0; !e && leases && l < leases->n; l++)
			if (leases->items[l].sub)
				e = keys_two_down(r, dk_bolt_bucket_at(leases->items[l].sub, "snapshots"));
		if (!e)
			e = keys_two_down(r, dk_bolt_bucket_at(ns, "snapshots"));
	}
	dk_bolt_db_free(&d);
	if (e)
		return dmr_err_set(err, e, "buildkit/containerdmeta.db: out of memory");
	return 0;
}

int dk_buildkit_refs_parse(const unsigned char *cache_db, size_t cache_len, const unsigned char *lease_db,
			   size_t lease_len, char ***out, size_t *nr, struct dmr_err *err)
{
	struct refs r = { 0 };
	*out = NULL;
	*nr = 0;
	int e = cache_refs(cache_db, cache_len, &r, err);
	if (!e)
		e = lease_refs(lease_db, lease_len, &r, err);
	if (e) {
		refs_free(&r);
		return e;
	}
	if (r.n > 1)
		qsort(r.v, r.n, sizeof(r.v[0]), cmp_str);
	size_t w = 0;
	for (size_t i = 0; i < r.n; i++) {
		if (w && strcmp(r.v[w - 1], r.v[i]) == 0) {
			free(r.v[i]);
			continue;
		}
		r.v[w++] = r.v[i];
	}
	*out = r.v;
	*nr = w;
	return 0;
}

int dk_buildkit_is_ref(const struct dk_state *st, const char *key)
{
	if (!key || !st->nr_buildkit_refs)
		return 0;
	return bsearch(&key, st->buildkit_refs, st->nr_buildkit_refs, sizeof(char *), cmp_str) != NULL;
}

/* ---- the unreferenced snapshots ---- */

int dk_buildkit_key_shape(const char *h)
{
	if (!h || strlen(h) != 25)
		return 0;
	for (; *h; h++)
		if (!((*h >= 'a' && *h <= 'z') || (*h >= '0' && *h <= '9')))
			return 0;
	return 1;
}

static int cmp_snap_key(const void *k, const void *e)
{
	return strcmp((const char *)k, ((const struct dk_buildkit_snapshot *)e)->key);
}

static long snap_index(const struct dk_state *st, const char *key)
{
	if (!key || !*key)
		return -1;
	const struct dk_buildkit_snapshot *s =
		bsearch(key, st->buildkit, st->nr_buildkit, sizeof(st->buildkit[0]), cmp_snap_key);
	return s ? (long)(s - st->buildkit) : -1;
}

/* A graph-driver id Docker itself uses: a layer's cache-id (removing
 * layers too) or a read-write layer's mount or init id. */
int dk_buildkit_docker_uses(const struct dk_state *st, const char *hash)
{
	if (!hash || !*hash)
		return 0;
	for (size_t i = 0; i < st->nr_layers; i++)
		if (st->layers[i].cache_id && strcmp(st->layers[i].cache_id, hash) == 0)
			return 1;
	for (size_t i = 0; i < st->nr_mounts; i++)
		if ((st->mounts[i].mount_id && strcmp(st->mounts[i].mount_id, hash) == 0) ||
		    (st->mounts[i].init_id && strcmp(st->mounts[i].init_id, hash) == 0))
			return 1;
	return 0;
}

static int chain_is_layer(const struct dk_state *st, const char *chain)
{
	for (size_t i = 0; chain && i < st->nr_layers; i++)
		if (st->layers[i].chain_id && strcmp(st->layers[i].chain_id, chain) == 0)
			return 1;
	return 0;
}

static void keep(const struct dk_state *st, unsigned char *kept, long i, size_t depth)
{
	/* each step marks one more bucket, so depth is bounded by their number */
	while (i >= 0 && !kept[i] && depth++ <= st->nr_buildkit) {
		kept[i] = 1;
		const struct dk_buildkit_snapshot *s = &st->buildkit[i];
		keep(st, kept, snap_index(st, s->committed_to), depth);
		i = snap_index(st, s->parent);
	}
}

size_t dk_buildkit_unreferenced(const struct dk_state *st, unsigned char *drop)
{
	size_t n = st->nr_buildkit, nr = 0;
	unsigned char *kept = calloc(n ? n : 1, 1);
	if (!kept)
		return (size_t)-1;
	for (size_t i = 0; i < n; i++) {
		const struct dk_buildkit_snapshot *s = &st->buildkit[i];
		if (!dk_buildkit_key_shape(s->key) || dk_buildkit_is_ref(st, s->key) ||
		    dk_buildkit_docker_uses(st, s->key) || dk_buildkit_docker_uses(st, s->committed_to) ||
		    chain_is_layer(st, s->chain_id))
			keep(st, kept, (long)i, 0);
	}
	for (size_t i = 0; i < n; i++) {
		drop[i] = !kept[i];
		nr += drop[i];
	}
	free(kept);
	return nr;
}
