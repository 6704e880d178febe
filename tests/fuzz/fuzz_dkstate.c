/* Harness: dk_state_read on a small Docker root made from the input.
 *
 * Input: records "name\0content\0" one after the other; a last record may
 * end without its NUL. Each record becomes an entry below a fresh root
 * directory, parent directories made on the way:
 *   "a/b/file"   a regular file holding content
 *   "a/b/dir/"   a directory (content ignored)
 *   ">a/link"    a symlink to content
 *   "|a/fifo"    a fifo (the readers must only stat it)
 * A last component "#" is replaced by the sha256 of the content, so an
 * image config (imagedb/content/sha256/#) keeps the name Docker checks it
 * against however it is mutated. Names with empty, "." or ".." components,
 * and entries that would go through a symlink, are skipped. At most 128
 * records; the input is capped by -max_len. Everything Docker keeps under
 * its root is reachable: devicemapper/metadata/<hash>, transaction-metadata,
 * deviceset-metadata, the layerdb, image configs, repositories.json,
 * containers/<id>/config.v2.json, the containers/storage JSON files. */
#include "config.h"
#include "fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "docker/state.h"
#include "util/sha256.h"

#define MAX_RECORDS 128
#define MAX_NAME 512
#define MAX_DEPTH 16

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Makes one entry below the directory rootfd. Skips what it cannot make. */
static void make_entry(int rootfd, const char *name, const uint8_t *content, size_t len)
{
	char kind = 'f';
	if (name[0] == '>' || name[0] == '|')
		kind = *name++;
	size_t nlen = strlen(name);
	if (nlen == 0 || nlen >= MAX_NAME)
		return;
	char path[MAX_NAME + SHA256_HEX_LEN];
	memcpy(path, name, nlen + 1);
	if (path[nlen - 1] == '/') {
		if (kind != 'f')
			return;
		kind = 'd';
		path[--nlen] = '\0';
	}

	char *comp[MAX_DEPTH];
	int depth = 0;
	for (char *p = path, *slash;; p = slash + 1) {
		if (depth == MAX_DEPTH)
			return;
		comp[depth++] = p;
		slash = strchr(p, '/');
		if (!slash)
			break;
		*slash = '\0';
	}
	for (int i = 0; i < depth; i++)
		if (!comp[i][0] || !strcmp(comp[i], ".") || !strcmp(comp[i], ".."))
			return;
	char hex[SHA256_HEX_LEN + 1];
	if (!strcmp(comp[depth - 1], "#")) {
		sha256_hex(content, len, hex);
		comp[depth - 1] = hex;
	}

	/* Walk down without following anything, making directories. */
	int dfd = dup(rootfd);
	for (int i = 0; dfd >= 0 && i < depth - 1; i++) {
		if (mkdirat(dfd, comp[i], 0755) < 0 && errno != EEXIST) {
			close(dfd);
			return;
		}
		int next = openat(dfd, comp[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(dfd);
		dfd = next;
	}
	if (dfd < 0)
		return;
	const char *last = comp[depth - 1];
	if (kind == 'd') {
		mkdirat(dfd, last, 0755);
	} else if (kind == '|') {
		mkfifoat(dfd, last, 0644);
	} else if (kind == '>') {
		char target[256];
		size_t tlen = len < sizeof(target) - 1 ? len : sizeof(target) - 1;
		memcpy(target, content, tlen);
		target[tlen] = '\0';
		if (tlen)
			symlinkat(target, dfd, last);
	} else {
		int fd = openat(dfd, last, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fd >= 0) {
			write_all(fd, content, len);
			close(fd);
		}
	}
	close(dfd);
}

static void build_root(const char *root, const uint8_t *data, size_t size)
{
	int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	FUZZ_ASSERT(rootfd >= 0, "cannot open %s: %s", root, strerror(errno));
	size_t off = 0;
	for (int n = 0; n < MAX_RECORDS && off < size; n++) {
		const uint8_t *name = data + off;
		const uint8_t *end = memchr(name, '\0', size - off);
		if (!end)
			break; /* a name without content: nothing to make */
		const uint8_t *content = end + 1;
		size_t left = size - (size_t)(content - data);
		const uint8_t *cend = memchr(content, '\0', left);
		size_t clen = cend ? (size_t)(cend - content) : left;
		make_entry(rootfd, (const char *)name, content, clen);
		off = (size_t)(content - data) + clen + 1;
	}
	close(rootfd);
}

static void check_str(const char *s, const char *what, size_t i)
{
	FUZZ_ASSERT(s, "%s %zu is NULL", what, i);
	(void)strlen(s);
}

static void check_state(const struct dk_state *st)
{
	FUZZ_ASSERT(st->layout == DK_LAYOUT_NONE || st->layout == DK_LAYOUT_DOCKER || st->layout == DK_LAYOUT_CSTORAGE,
		    "layout %d", (int)st->layout);
	if (st->layout != DK_LAYOUT_NONE)
		FUZZ_ASSERT(st->home && st->prefix && st->pool_name, "a driver home without its names");
	for (size_t i = 0; i < st->nr_problems; i++) {
		const struct dk_problem *p = &st->problems[i];
		check_str(p->path, "problem path", i);
		check_str(p->msg, "problem message", i);
		FUZZ_ASSERT(p->path[0] != '/', "problem path %s is not relative", p->path);
		FUZZ_ASSERT(p->msg[0] && !strchr(p->msg, '\n'), "problem message is not one line: \"%s\"", p->msg);
		if (i > 0) {
			const struct dk_problem *q = &st->problems[i - 1];
			int c = strcmp(q->path, p->path);
			FUZZ_ASSERT(c < 0 || (c == 0 && strcmp(q->msg, p->msg) < 0), "problems not sorted and unique at %zu", i);
		}
	}
	for (size_t i = 0; i < st->nr_files; i++) {
		const struct dk_devfile *f = &st->files[i];
		check_str(f->hash, "file hash", i);
		check_str(f->name, "file name", i);
		FUZZ_ASSERT(!f->valid || (f->device_id >= 0 && f->device_id <= 0xffffff), "valid file with device id %lld",
			    (long long)f->device_id);
		FUZZ_ASSERT(f->valid || f->error, "invalid file %s without an error", f->name);
		FUZZ_ASSERT(i == 0 || strcmp(st->files[i - 1].hash, f->hash) <= 0, "files not sorted at %zu", i);
		const struct dk_devfile *g = dk_state_file_by_hash(st, f->hash);
		FUZZ_ASSERT(g && !strcmp(g->hash, f->hash), "dk_state_file_by_hash misses %s", f->hash);
		if (f->valid) {
			g = dk_state_file_by_device_id(st, f->device_id);
			FUZZ_ASSERT(g && g->device_id == f->device_id, "dk_state_file_by_device_id misses %lld",
				    (long long)f->device_id);
		}
	}
	for (size_t i = 0; i < st->nr_transients; i++)
		check_str(st->transients[i].path, "transient path", i);
	for (size_t i = 0; i < st->nr_layers; i++) {
		check_str(st->layers[i].chain_id, "layer chain id", i);
		check_str(st->layers[i].dir, "layer dir", i);
	}
	for (size_t i = 0; i < st->nr_mounts; i++)
		check_str(st->mounts[i].name, "mount name", i);
	for (size_t i = 0; i < st->nr_images; i++) {
		const struct dk_image *im = &st->images[i];
		check_str(im->id, "image id", i);
		for (size_t k = 0; k < im->nr_diff_ids; k++) {
			check_str(im->diff_ids[k], "diff id", k);
			if (im->chain_ids)
				check_str(im->chain_ids[k], "chain id", k);
		}
		for (size_t k = 0; k < im->nr_tags; k++)
			check_str(im->tags[k], "tag", k);
		for (size_t k = 0; k < im->nr_labels; k++) {
			check_str(im->labels[k].key, "label key", k);
			check_str(im->labels[k].value, "label value", k);
		}
	}
	for (size_t i = 0; i < st->nr_containers; i++)
		check_str(st->containers[i].id, "container id", i);
	for (size_t i = 0; i < st->nr_cs_layers; i++)
		check_str(st->cs_layers[i].id, "containers/storage layer id", i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char root[4200];
	if (!root[0])
		snprintf(root, sizeof(root), "%s/root", fuzz_tmpdir());
	if (mkdir(root, 0755) < 0 && errno != EEXIST)
		FUZZ_ASSERT(0, "cannot make %s: %s", root, strerror(errno));
	build_root(root, data, size);

	struct dk_state st;
	struct dmr_err err = { 0 };
	int r = dk_state_read(root, &st, &err);
	FUZZ_ASSERT(r == 0, "dk_state_read failed on a readable root: %s", err.msg);
	check_state(&st);
	dk_state_free(&st);
	fuzz_rm_below(root);
	return 0;
}
