/* Hand-made Docker states for the unit tests: see dkstate.h. */
#include "unit.h"

#include "dkstate.h"

char *xstrdup(const char *s)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	assert_non_null(d);
	return d;
}

void *grow(void *arr, size_t n, size_t size)
{
	void *a = realloc(arr, (n + 1) * size);
	assert_non_null(a);
	memset((char *)a + n * size, 0, size);
	return a;
}

char **strv(const char *const *s, size_t n)
{
	if (n == 0)
		return NULL;
	char **v = calloc(n, sizeof(*v));
	assert_non_null(v);
	for (size_t i = 0; i < n; i++)
		v[i] = xstrdup(s[i]);
	return v;
}

void strv_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

struct dk_devfile *add_file(struct dk_state *st, const char *hash, int64_t id)
{
	st->files = grow(st->files, st->nr_files, sizeof(*st->files));
	struct dk_devfile *f = &st->files[st->nr_files++];
	char name[200];
	snprintf(name, sizeof(name), "devicemapper/metadata/%s", hash[0] ? hash : "base");
	f->hash = xstrdup(hash);
	f->name = xstrdup(name);
	f->valid = 1;
	f->device_id = id;
	f->size = 10ull << 30;
	f->transaction_id = 1;
	f->initialized = 1;
	f->has_deleted_key = 1;
	return f;
}

struct dk_layer *add_layer(struct dk_state *st, const char *chain, const char *cache, const char *parent,
			   int removing)
{
	st->layers = grow(st->layers, st->nr_layers, sizeof(*st->layers));
	struct dk_layer *l = &st->layers[st->nr_layers++];
	char dir[300], diff[80];
	snprintf(dir, sizeof(dir), "image/devicemapper/layerdb/sha256/%s%s", chain + 7,
		 removing ? "-0123abcd-removing" : "");
	snprintf(diff, sizeof(diff), "sha256:d1ff%s", chain + 11);
	l->chain_id = xstrdup(chain);
	l->dir = xstrdup(dir);
	l->cache_id = xstrdup(cache);
	l->diff_id = xstrdup(diff);
	l->parent = xstrdup(parent);
	l->size = 1234;
	l->removing = removing;
	return l;
}

void add_mount(struct dk_state *st, const char *name, const char *mount_id, const char *init_id,
	       const char *parent)
{
	st->mounts = grow(st->mounts, st->nr_mounts, sizeof(*st->mounts));
	struct dk_mount *m = &st->mounts[st->nr_mounts++];
	m->name = xstrdup(name);
	m->mount_id = xstrdup(mount_id);
	m->init_id = xstrdup(init_id);
	m->parent = xstrdup(parent);
}

struct dk_image *add_image(struct dk_state *st, const char *id, const char *const *chains, size_t n,
			   const char *const *tags, size_t ntags)
{
	st->images = grow(st->images, st->nr_images, sizeof(*st->images));
	struct dk_image *im = &st->images[st->nr_images++];
	im->id = xstrdup(id);
	im->nr_diff_ids = n;
	im->chain_ids = strv(chains, n);
	im->diff_ids = strv(chains, n); /* not used by the inventory nor the plan */
	im->tags = strv(tags, ntags);
	im->nr_tags = ntags;
	return im;
}

struct dk_container *add_container(struct dk_state *st, const char *id, const char *name, const char *image)
{
	st->containers = grow(st->containers, st->nr_containers, sizeof(*st->containers));
	struct dk_container *c = &st->containers[st->nr_containers++];
	c->id = xstrdup(id);
	c->name = xstrdup(name);
	c->image = xstrdup(image);
	c->driver = xstrdup("devicemapper");
	return c;
}

void add_buildkit(struct dk_state *st, const char *key, const char *chain)
{
	st->buildkit = grow(st->buildkit, st->nr_buildkit, sizeof(*st->buildkit));
	struct dk_buildkit_snapshot *s = &st->buildkit[st->nr_buildkit++];
	s->key = xstrdup(key);
	s->chain_id = xstrdup(chain);
	s->committed = 1;
	st->buildkit_present = 1;
}

void add_transient(struct dk_state *st, enum dk_transient_kind kind, const char *path, uint64_t bytes)
{
	st->transients = grow(st->transients, st->nr_transients, sizeof(*st->transients));
	struct dk_transient *t = &st->transients[st->nr_transients++];
	t->kind = kind;
	t->path = xstrdup(path);
	t->bytes = bytes;
}
