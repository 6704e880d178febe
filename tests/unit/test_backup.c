/* Backups and undo (src/backup.c) and the copies under them
 * (src/util/filecopy.c): sparse copies keep holes, content and hash;
 * attributes come along; a whole clean-like cycle is undone byte for byte;
 * undo refuses what it must (reclaim since, a changed file, a recreated
 * path, a damaged backup or manifest) unless forced where that makes
 * sense; and with a crash, or an I/O error, injected at every change of
 * the cycle and of the undo, every file is always either its old or its
 * new self, and undo then brings back the old.
 *
 * The metadata's digest (fc_digest_nonzero) is checked against its
 * definition (bks_digest_nonzero): the same whatever the holes, changed by
 * one byte, fast on a 2 GiB sparse file; undo uses it for the metadata,
 * and still undoes a manifest written before it, of the plain SHA-256.
 *
 * Linked with -Wl,--wrap=lseek to make SEEK_DATA fail (the fallback), and
 * -Wl,--wrap=pread to make reads short (ranges that start and end inside
 * a 4 KiB block). The fault runs re-execute this program (argv[0] --child
 * ...) so each child counts changes from zero. */
#include "unit.h"
#include "dktree.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>

#include "backup.h"
#include "bkscenario.h"
#include "util/filecopy.h"
#include "util/safeio.h"
#include "util/sha256.h"

off_t __real_lseek(int fd, off_t off, int whence);
off_t __wrap_lseek(int fd, off_t off, int whence);

static int fail_seek_data;

off_t __wrap_lseek(int fd, off_t off, int whence)
{
	if (fail_seek_data && (whence == SEEK_DATA || whence == SEEK_HOLE)) {
		errno = EINVAL;
		return -1;
	}
	return __real_lseek(fd, off, whence);
}

static size_t short_reads; /* not 0: pread reads at most this much */

ssize_t __real_pread(int fd, void *buf, size_t n, off_t off);
ssize_t __wrap_pread(int fd, void *buf, size_t n, off_t off);

ssize_t __wrap_pread(int fd, void *buf, size_t n, off_t off)
{
	if (short_reads && n > short_reads)
		n = short_reads;
	return __real_pread(fd, buf, n, off);
}

static const char *self_path;

/* ---- helpers ---- */

#define PATHBUF 8400

static void path_of(char *out, const char *root, const char *rel)
{
	snprintf(out, PATHBUF, "%s/%s", root, rel);
}

static void sha_of(const char *path, char hex[65])
{
	struct dmr_err err = { 0 };
	if (bk_sha256_file(path, hex, &err))
		fail_msg("hashing %s: %s", path, err.msg);
}

/* The data ranges of a file, as SEEK_DATA/SEEK_HOLE see them. */
static size_t data_ranges(const char *path, off_t *v, size_t max)
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	size_t n = 0;
	for (off_t pos = 0; pos < st.st_size && n + 2 <= max;) {
		off_t d = __real_lseek(fd, pos, SEEK_DATA);
		if (d < 0)
			break;
		off_t h = __real_lseek(fd, d, SEEK_HOLE);
		v[n++] = d;
		v[n++] = h;
		pos = h;
	}
	close(fd);
	return n;
}

/* 1 when this filesystem keeps holes (SEEK_HOLE finds one in a fresh
 * sparse file). */
static int keeps_holes(const char *root)
{
	char path[PATHBUF];
	dkt_sparse(root, "probe", 1 << 20);
	path_of(path, root, "probe");
	int fd = open(path, O_RDONLY);
	off_t h = __real_lseek(fd, 0, SEEK_HOLE);
	close(fd);
	unlink(path);
	return h == 0;
}

/* Everything below root as sorted lines "path type mode content-hash",
 * leaving out the backup, the lock and dmrescue's stamp files. */
struct snap {
	char **line;
	size_t n;
};

static struct snap *cur_snap;
static size_t cur_root_len;

static int snap_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)flag;
	const char *rel = path + cur_root_len;
	if (!*rel)
		return 0;
	rel++;
	const char *base = path + ftw->base;
	/* Not the tree's content: the backup, dmrescue's lock and reclaim
	 * stamp, and the test's own temp file (see bkscenario.c). */
	if (!strncmp(rel, "devicemapper/dmrescue-backup", 28) || !strcmp(base, ".dmrescue.lock") ||
	    !strcmp(base, ".dmrescue-reclaimed") || !strcmp(base, ".new"))
		return 0;
	char content[4200] = "-";
	if (S_ISREG(st->st_mode))
		sha_of(path, content);
	else if (S_ISLNK(st->st_mode)) {
		ssize_t n = readlink(path, content, sizeof(content) - 1);
		content[n > 0 ? n : 0] = '\0';
	}
	char *line = malloc(strlen(rel) + strlen(content) + 32);
	sprintf(line, "%s %c %o %s", rel, S_ISREG(st->st_mode) ? 'f' : S_ISDIR(st->st_mode) ? 'd' : 'l',
		(unsigned)(st->st_mode & 07777), content);
	cur_snap->line = realloc(cur_snap->line, (cur_snap->n + 1) * sizeof(char *));
	cur_snap->line[cur_snap->n++] = line;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void snap_take(const char *root, struct snap *s)
{
	memset(s, 0, sizeof(*s));
	cur_snap = s;
	cur_root_len = strlen(root);
	nftw(root, snap_one, 32, FTW_PHYS);
	qsort(s->line, s->n, sizeof(char *), cmp_str);
}

static void snap_free(struct snap *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->line[i]);
	free(s->line);
	memset(s, 0, sizeof(*s));
}

static void snap_print(const char *what, const struct snap *s)
{
	fprintf(stderr, "%s:\n", what);
	for (size_t i = 0; i < s->n; i++)
		fprintf(stderr, "  %s\n", s->line[i]);
}

static void assert_snap_equal(const struct snap *a, const struct snap *b, const char *what)
{
	int same = a->n == b->n;
	for (size_t i = 0; same && i < a->n; i++)
		same = !strcmp(a->line[i], b->line[i]);
	if (!same) {
		snap_print("expected", a);
		snap_print("found", b);
		fail_msg("%s: the trees differ", what);
	}
}

/* The line of path in s, or NULL. */
static const char *snap_find(const struct snap *s, const char *path)
{
	size_t l = strlen(path);
	for (size_t i = 0; i < s->n; i++)
		if (!strncmp(s->line[i], path, l) && s->line[i][l] == ' ')
			return s->line[i];
	return NULL;
}

/* Every path of old and new is in cur as in old or as in new (a path
 * missing from one of them may be missing); nothing else is there but
 * undo's temp files. Whether what is missing from the root is safe in the
 * backup, the undo that follows tells. */
static void assert_old_or_new(const struct snap *old, const struct snap *new, const struct snap *cur,
			      const char *what)
{
	const struct snap *sets[2] = { old, new };
	for (int k = 0; k < 2; k++)
		for (size_t i = 0; i < sets[k]->n; i++) {
			char path[4096];
			sscanf(sets[k]->line[i], "%4095s", path);
			const char *o = snap_find(old, path), *n = snap_find(new, path), *c = snap_find(cur, path);
			if ((c && o && !strcmp(c, o)) || (c && n && !strcmp(c, n)) || (!c && (!o || !n)))
				continue;
			snap_print("old", old);
			snap_print("new", new);
			snap_print("now", cur);
			fail_msg("%s: %s is neither old nor new (now: %s)", what, path, c ? c : "missing");
		}
	for (size_t i = 0; i < cur->n; i++) {
		char path[4096];
		sscanf(cur->line[i], "%4095s", path);
		if (!snap_find(old, path) && !snap_find(new, path) && !strstr(path, "/.dmrescue-undo."))
			fail_msg("%s: %s should not be there", what, cur->line[i]);
	}
}

static void layout(const char *root)
{
	if (bks_layout(root) < 0)
		fail_msg("laying out %s: %s", root, strerror(errno));
}

static void cycle(const char *root, const char *dir, char *out)
{
	struct dmr_err err = { 0 };
	int r = bks_cycle(root, dir, out, 4096, &err);
	if (r)
		fail_msg("backup and change of %s: %d %s", root, r, err.msg);
}

struct lines {
	unsigned n;
	char all[8192];
};

static void collect(void *ctx, const char *line)
{
	struct lines *l = ctx;
	l->n++;
	size_t used = strlen(l->all);
	snprintf(l->all + used, sizeof(l->all) - used, "%s\n", line);
}

static int undo(const char *dir, int force, int dry_run, struct lines *lines, struct dmr_err *err)
{
	struct bk_undo_opts o = { .force = force, .dry_run = dry_run };
	dmr_err_clear(err);
	return bk_undo(dir, NULL, &o, lines ? collect : NULL, lines, err);
}

/* The old tree, and the tree after the change, with the backup's path. */
struct world {
	char root[4096], bk[4096];
	struct snap old, new;
};

static void world_make(const char *base, struct world *w, const char *dir)
{
	snprintf(w->root, sizeof(w->root), "%s/root", base);
	dkt_mkdir(base, "root");
	layout(w->root);
	snap_take(w->root, &w->old);
	cycle(w->root, dir, w->bk);
	snap_take(w->root, &w->new);
}

static void world_free(struct world *w)
{
	snap_free(&w->old);
	snap_free(&w->new);
}

static void assert_tree(const char *root, const struct snap *want, const char *what)
{
	struct snap now;
	snap_take(root, &now);
	assert_snap_equal(want, &now, what);
	snap_free(&now);
}

/* ---- filecopy ---- */

static void make_sparse_src(const char *root, char path[PATHBUF])
{
	unsigned char buf[128 << 10];
	uint64_t seed = 7;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(unit_rand(&seed) | 1);
	path_of(path, root, "src");
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, 64 << 10, 1 << 20), 64 << 10);
	assert_int_equal(pwrite(fd, buf, sizeof(buf), 3 << 20), (ssize_t)sizeof(buf));
	assert_int_equal(ftruncate(fd, 6 << 20), 0);
	close(fd);
}

/* Copies src to a new dst (without SEEK_DATA when via_fallback) with the
 * digest; *written gets the bytes written. Also fc_digest_nonzero of src
 * into nz_src (when not NULL), in the same way. */
static void copy_with(const char *src, const char *dst, int via_fallback, enum fc_digest digest, uint64_t *written,
		      char hex[65], char nz_src[65])
{
	struct dmr_err err = { 0 };
	int in = open(src, O_RDONLY), out = open(dst, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(in >= 0 && out >= 0);
	fail_seek_data = via_fallback;
	int r = fc_copy_sparse_digest(in, out, dst, written, digest, hex, &err);
	if (!r && nz_src)
		r = fc_digest_nonzero(in, nz_src, &err);
	fail_seek_data = 0;
	if (r)
		fail_msg("copying %s to %s: %s", src, dst, err.msg);
	close(in);
	close(out);
}

static void copy_and_compare(const char *root, int via_fallback)
{
	char src[PATHBUF], dst[PATHBUF], dst2[PATHBUF], hex[65], want[65];
	struct dmr_err err = { 0 };
	uint64_t written = 0, written2 = 0;
	make_sparse_src(root, src);
	path_of(dst, root, "dst");
	copy_with(src, dst, via_fallback, FC_DIGEST_SHA256, &written, hex, NULL);
	sha_of(src, want);
	assert_string_equal(hex, want);
	sha_of(dst, want);
	assert_string_equal(hex, want);
	/* The metadata's digest, while copying: as fc_digest_nonzero, of the
	 * source and of the copy. */
	char nz[65], nz_src[65], nz_dst[65];
	path_of(dst2, root, "dst2");
	copy_with(src, dst2, via_fallback, FC_DIGEST_NONZERO, &written2, nz, nz_src);
	assert_int_equal(written2, written);
	assert_string_equal(nz, nz_src);
	assert_int_equal(bk_metadata_digest(dst2, nz_dst, &err), 0);
	assert_string_equal(nz, nz_dst);
	assert_string_not_equal(nz, hex);
	unlink(dst2);
	assert_int_equal(written, (64 << 10) + (128 << 10));
	struct stat a, b;
	assert_int_equal(stat(src, &a), 0);
	assert_int_equal(stat(dst, &b), 0);
	assert_int_equal(a.st_size, b.st_size);
	if (keeps_holes(root)) {
		off_t ra[16], rb[16];
		size_t na = data_ranges(src, ra, 16), nb = data_ranges(dst, rb, 16);
		assert_int_equal(b.st_blocks, a.st_blocks);
		assert_int_equal(na, nb);
		for (size_t i = 0; i < na; i++)
			assert_int_equal(ra[i], rb[i]);
	}
	unlink(dst);
}

static void test_copy_sparse(void **state)
{
	copy_and_compare(*state, 0);
}

/* Without SEEK_DATA (FIEMAP, or a whole read skipping zero chunks). */
static void test_copy_sparse_fallback(void **state)
{
	copy_and_compare(*state, 1);
}

static void test_copy_empty(void **state)
{
	char src[PATHBUF], dst[PATHBUF], hex[65], want[65];
	struct dmr_err err = { 0 };
	dkt_write(*state, "empty", "");
	path_of(src, *state, "empty");
	path_of(dst, *state, "copy");
	int in = open(src, O_RDONLY), out = open(dst, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_int_equal(fc_copy_sparse(in, out, "empty", NULL, hex, &err), 0);
	close(in);
	close(out);
	sha256_hex("", 0, want);
	assert_string_equal(hex, want);
}

static void test_copy_attrs(void **state)
{
	char src[PATHBUF], dst[PATHBUF], val[16];
	struct dmr_err err = { 0 };
	dkt_write(*state, "a", "x");
	path_of(src, *state, "a");
	path_of(dst, *state, "b");
	assert_int_equal(chmod(src, 0751), 0);
	int xattrs = setxattr(src, "user.dmrescue", "hello", 5, 0) == 0;
	if (!xattrs)
		fprintf(stderr, "no user xattrs on this filesystem (%s): checking the mode only\n", strerror(errno));
	int in = open(src, O_RDONLY), out = open(dst, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fc_copy_attrs(in, out, "a -> b", &err))
		fail_msg("fc_copy_attrs: %s", err.msg);
	close(in);
	close(out);
	struct stat st;
	assert_int_equal(stat(dst, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0751);
	if (xattrs) {
		ssize_t n = getxattr(dst, "user.dmrescue", val, sizeof(val));
		assert_int_equal(n, 5);
		assert_memory_equal(val, "hello", 5);
	}
}

/* ---- the metadata's digest ---- */

static void le64(unsigned char out[8], uint64_t v)
{
	for (int i = 0; i < 8; i++)
		out[i] = (unsigned char)(v >> (8 * i));
}

/* fc_digest_nonzero of path (UINT64_MAX), or fc_digest_nonzero_len of its
 * first len bytes; fails the test on an error. */
static void digest_of(const char *path, uint64_t len, char hex[65])
{
	struct dmr_err err = { 0 };
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	int r = len == UINT64_MAX ? fc_digest_nonzero(fd, hex, &err) : fc_digest_nonzero_len(fd, len, path, hex, &err);
	close(fd);
	if (r)
		fail_msg("digest of %s: %s", path, err.msg);
}

#define DG_SIZE ((size_t)(6 << 20) + 1000) /* a short last block */

/* The content of the digest tests: data in a few places, some of them
 * inside a block, the last block short. */
static void dg_content(unsigned char *buf)
{
	uint64_t seed = 11;
	memset(buf, 0, DG_SIZE);
	for (size_t i = 0; i < (64 << 10); i++)
		buf[(1 << 20) + i] = (unsigned char)(unit_rand(&seed) | 1);
	for (size_t i = 0; i < (128 << 10); i++)
		buf[(3 << 20) + i] = (unsigned char)(unit_rand(&seed) | 1);
	memcpy(buf + (5 << 20) + 4096 + 100, "inside a block", 14);
	memset(buf + DG_SIZE - 500, 0x5a, 400);
}

/* root/rel with buf's content: dense (every byte written, zeros too), or
 * sparse (only the non-zero 4 KiB blocks written, plus an allocated run
 * of zeros at 2 MiB). */
static void dg_write(const char *root, const char *rel, const unsigned char *buf, int dense)
{
	char path[PATHBUF];
	path_of(path, root, rel);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	if (dense) {
		assert_int_equal(pwrite(fd, buf, DG_SIZE, 0), (ssize_t)DG_SIZE);
	} else {
		static const unsigned char zero64k[64 << 10];
		assert_int_equal(pwrite(fd, zero64k, sizeof(zero64k), 2 << 20), (ssize_t)sizeof(zero64k));
		for (size_t off = 0; off < DG_SIZE; off += 4096) {
			size_t n = DG_SIZE - off < 4096 ? DG_SIZE - off : 4096, k = 0;
			while (k < n && !buf[off + k])
				k++;
			if (k < n)
				assert_int_equal(pwrite(fd, buf + off, n, (off_t)off), (ssize_t)n);
		}
		assert_int_equal(ftruncate(fd, (off_t)DG_SIZE), 0);
	}
	close(fd);
}

/* The digest does not depend on the holes, nor on how the data is found
 * or read; it is the one of its definition. */
static void test_digest_layout(void **state)
{
	const char *root = *state;
	unsigned char *buf = malloc(DG_SIZE);
	char want[65], hex[65], path[PATHBUF], copy[PATHBUF];
	struct dmr_err err = { 0 };
	assert_non_null(buf);
	dg_content(buf);
	bks_digest_nonzero(buf, DG_SIZE, want);
	dg_write(root, "dense", buf, 1);
	dg_write(root, "sparse", buf, 0);
	/* A sparse copy of the dense file. */
	path_of(path, root, "dense");
	path_of(copy, root, "copy");
	int in = open(path, O_RDONLY), out = open(copy, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(in >= 0 && out >= 0);
	assert_int_equal(fc_copy_sparse(in, out, "dense -> copy", NULL, NULL, &err), 0);
	close(in);
	close(out);
	if (keeps_holes(root)) {
		struct stat d, c;
		assert_int_equal(stat(path, &d), 0);
		assert_int_equal(stat(copy, &c), 0);
		assert_true(c.st_blocks < d.st_blocks); /* the layouts do differ */
	}
	static const char *const files[] = { "dense", "sparse", "copy" };
	for (size_t f = 0; f < 3; f++) {
		path_of(path, root, files[f]);
		/* SEEK_DATA; FIEMAP or a whole read; reads of 1000 bytes. */
		for (int way = 0; way < 3; way++) {
			fail_seek_data = way == 1;
			short_reads = way == 2 ? 1000 : 0;
			digest_of(path, UINT64_MAX, hex);
			fail_seek_data = 0;
			short_reads = 0;
			if (strcmp(hex, want))
				fail_msg("%s, way %d: digest %s, expected %s", files[f], way, hex, want);
		}
		assert_int_equal(bk_metadata_digest(path, hex, &err), 0);
		assert_string_equal(hex, want);
		/* Of the first bytes: as of a file that ends there. */
		static const uint64_t lens[] = { 0, 4096, 3 * 4096 + 17, (5 << 20) + 4096 + 101, DG_SIZE - 1 };
		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
			char part[65];
			bks_digest_nonzero(buf, (size_t)lens[i], part);
			short_reads = f == 1 ? 777 : 0;
			digest_of(path, lens[i], hex);
			short_reads = 0;
			if (strcmp(hex, part))
				fail_msg("%s, first %llu bytes: digest %s, expected %s", files[f], (unsigned long long)lens[i],
					 hex, part);
		}
		digest_of(path, (uint64_t)DG_SIZE + 12345, hex); /* longer than the file: all of it */
		assert_string_equal(hex, want);
	}
	/* Not the plain SHA-256. */
	path_of(path, root, "dense");
	sha_of(path, hex);
	assert_string_not_equal(hex, want);
	free(buf);
}

/* One changed byte (in the data, in a hole, in allocated zeros, in the
 * short last block), a longer size, the same bytes one block further:
 * each changes the digest. */
static void test_digest_changes(void **state)
{
	const char *root = *state;
	unsigned char *buf = malloc(DG_SIZE);
	char want[65], hex[65], path[PATHBUF];
	struct dmr_err err = { 0 };
	assert_non_null(buf);
	dg_content(buf);
	bks_digest_nonzero(buf, DG_SIZE, want);
	static const size_t at[] = { (1 << 20) + 5, (3 << 20) + (128 << 10) - 1, 0, (2 << 20) + 4095, DG_SIZE - 1 };
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		unsigned char old = buf[at[i]];
		buf[at[i]] ^= 0x80;
		char changed[65];
		bks_digest_nonzero(buf, DG_SIZE, changed);
		dg_write(root, "f", buf, 0);
		path_of(path, root, "f");
		digest_of(path, UINT64_MAX, hex);
		buf[at[i]] = old;
		if (!strcmp(hex, want))
			fail_msg("a byte changed at %zu: the same digest", at[i]);
		assert_string_equal(hex, changed);
	}
	/* The same content with more zeros after it: another size. */
	dg_write(root, "f", buf, 0);
	path_of(path, root, "f");
	digest_of(path, UINT64_MAX, hex);
	assert_string_equal(hex, want);
	assert_int_equal(truncate(path, (off_t)DG_SIZE + 4096), 0);
	digest_of(path, UINT64_MAX, hex);
	assert_string_not_equal(hex, want);
	/* The same bytes moved by one block: another digest. */
	dkt_writen(root, "a", "x", 1);
	dkt_sparse(root, "b", 4097);
	path_of(path, root, "b");
	int fd = open(path, O_WRONLY);
	assert_int_equal(pwrite(fd, "x", 1, 4096), 1);
	close(fd);
	char a[65], b[65];
	path_of(path, root, "a");
	assert_int_equal(truncate(path, 4097), 0);
	digest_of(path, UINT64_MAX, a);
	path_of(path, root, "b");
	digest_of(path, UINT64_MAX, b);
	assert_string_not_equal(a, b);
	/* Empty: the SHA-256 of the size 0 as le64. */
	unsigned char zero8[8];
	le64(zero8, 0);
	sha256_hex(zero8, 8, want);
	dkt_write(root, "empty", "");
	path_of(path, root, "empty");
	digest_of(path, UINT64_MAX, hex);
	assert_string_equal(hex, want);
	/* Neither a regular file nor a block device. */
	assert_int_equal(bk_metadata_digest(root, hex, &err), DMR_EUSAGE);
	assert_contains(err.msg, "not a regular file or block device");
	path_of(path, root, "missing");
	assert_int_equal(bk_metadata_digest(path, hex, &err), DMR_ENOENT);
	free(buf);
}

static double seconds(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A 2 GiB loop-lvm metadata file with 1 MiB in use: the digest reads the
 * 1 MiB (its time is printed, not asserted), and is right. */
static void test_digest_2g(void **state)
{
	const char *root = *state;
	char path[PATHBUF], hex[65], want[65];
	struct dmr_err err = { 0 };
	if (!keeps_holes(root)) {
		fprintf(stderr, "this filesystem keeps no holes: the 2 GiB digest would read 2 GiB; skipped\n");
		skip();
		return;
	}
	unsigned char piece[64 << 10], le[8];
	uint64_t seed = 5;
	const uint64_t size = 2ull << 30;
	for (size_t i = 0; i < sizeof(piece); i++)
		piece[i] = (unsigned char)(unit_rand(&seed) | 1);
	dkt_sparse(root, "metadata", (long long)size);
	path_of(path, root, "metadata");
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	/* 16 pieces of 64 KiB, 128 MiB apart: the expected digest from the
	 * definition, block by block. */
	struct sha256_ctx c;
	sha256_init(&c);
	for (uint64_t p = 0; p < 16; p++) {
		uint64_t off = p * (128ull << 20);
		assert_int_equal(pwrite(fd, piece, sizeof(piece), (off_t)off), (ssize_t)sizeof(piece));
		for (size_t b = 0; b < sizeof(piece); b += 4096) {
			le64(le, off + b);
			sha256_update(&c, le, 8);
			sha256_update(&c, piece + b, 4096);
		}
	}
	le64(le, size);
	sha256_update(&c, le, 8);
	sha256_final_hex(&c, want);
	close(fd);
	double t0 = seconds();
	int r = bk_metadata_digest(path, hex, &err);
	double t1 = seconds();
	if (r)
		fail_msg("bk_metadata_digest: %s", err.msg);
	fprintf(stderr, "digest of a 2 GiB sparse file with 1 MiB of data: %.3f s\n", t1 - t0);
	assert_string_equal(hex, want);
	/* Through FIEMAP (or a whole read) too. */
	fail_seek_data = 1;
	t0 = seconds();
	digest_of(path, UINT64_MAX, hex);
	t1 = seconds();
	fail_seek_data = 0;
	fprintf(stderr, "the same without SEEK_DATA: %.3f s\n", t1 - t0);
	assert_string_equal(hex, want);
}

/* ---- the cycle and undo ---- */

static void test_cycle_undo(void **state)
{
	struct world w;
	struct lines lines = { 0 };
	struct dmr_err err = { 0 };
	char meta[PATHBUF];
	off_t before[16], after[16];
	int holes = keeps_holes(*state);
	world_make(*state, &w, NULL);
	assert_contains(w.bk, "/devicemapper/dmrescue-backup/20");
	/* The holes of the metadata as laid out, before the change. */
	char ref[4096];
	path_of(ref, *state, "ref");
	dkt_mkdir(*state, "ref");
	layout(ref);
	path_of(meta, ref, BKS_METADATA);
	size_t nb = data_ranges(meta, before, 16);
	path_of(meta, w.root, BKS_METADATA);
	/* The change happened: the removed paths are in the backup. */
	assert_null(snap_find(&w.new, BKS_CONTAINER));
	assert_non_null(snap_find(&w.old, BKS_CONTAINER "/link"));
	if (undo(w.bk, 0, 0, &lines, &err))
		fail_msg("bk_undo: %s", err.msg);
	assert_tree(w.root, &w.old, "after undo");
	assert_contains(lines.all, "restore " BKS_DEVICESET);
	assert_contains(lines.all, "put back " BKS_CONTAINER);
	if (holes) {
		/* The restored metadata is as sparse as the original was. */
		size_t na = data_ranges(meta, after, 16);
		assert_int_equal(na, nb);
		assert_int_equal(na, 4);
		for (size_t i = 0; i < na; i++)
			assert_int_equal(after[i], before[i]);
	}
	/* Undone once: a second undo refuses. */
	assert_int_equal(undo(w.bk, 0, 0, NULL, &err), DMR_EUSAGE);
	assert_contains(err.msg, "undone already");
	world_free(&w);
}

static void test_dry_run(void **state)
{
	struct world w;
	struct lines lines = { 0 };
	struct dmr_err err = { 0 };
	world_make(*state, &w, NULL);
	assert_int_equal(undo(w.bk, 0, 1, &lines, &err), 0);
	assert_true(lines.n >= 6);
	assert_contains(lines.all, "restore " BKS_REWRITTEN_GONE);
	assert_contains(lines.all, "put back " BKS_MOUNT " (2 entries)");
	assert_tree(w.root, &w.new, "after a dry run");
	/* Still undoable. */
	assert_int_equal(undo(w.bk, 0, 0, NULL, &err), 0);
	assert_tree(w.root, &w.old, "after undo");
	world_free(&w);
}

static void test_refuse_reclaim(void **state)
{
	struct world w;
	struct dmr_err err = { 0 };
	uint64_t serial;
	world_make(*state, &w, NULL);
	assert_int_equal(bk_reclaim_bump(w.root, &err), 0);
	assert_int_equal(bk_reclaim_serial(w.root, &serial, &err), 0);
	assert_int_equal(serial, 1);
	assert_int_equal(undo(w.bk, 0, 0, NULL, &err), DMR_EUSAGE);
	assert_contains(err.msg, "reclaim ran since the backup (serial 0, now 1)");
	assert_contains(err.msg, "--force");
	assert_null(strchr(err.msg, '\n'));
	assert_tree(w.root, &w.new, "after the refusal");
	assert_int_equal(undo(w.bk, 1, 0, NULL, &err), 0);
	assert_tree(w.root, &w.old, "after a forced undo");
	world_free(&w);
}

static void test_reclaim_serial(void **state)
{
	struct dmr_err err = { 0 };
	uint64_t serial = 99;
	dkt_mkdir(*state, "devicemapper");
	assert_int_equal(bk_reclaim_serial(*state, &serial, &err), 0);
	assert_int_equal(serial, 0);
	assert_int_equal(bk_reclaim_bump(*state, &err), 0);
	assert_int_equal(bk_reclaim_bump(*state, &err), 0);
	assert_int_equal(bk_reclaim_serial(*state, &serial, &err), 0);
	assert_int_equal(serial, 2);
	dkt_write(*state, "devicemapper/.dmrescue-reclaimed", "12x\n");
	assert_int_equal(bk_reclaim_serial(*state, &serial, &err), DMR_ECORRUPT);
	assert_contains(err.msg, ".dmrescue-reclaimed: not a decimal counter");
	dkt_write(*state, "devicemapper/.dmrescue-reclaimed", "99999999999999999999999\n");
	assert_int_equal(bk_reclaim_serial(*state, &serial, &err), DMR_ECORRUPT);
}

static void test_refuse_changed(void **state)
{
	struct world w;
	struct dmr_err err = { 0 };
	char disp[PATHBUF], hex[65], want[65];
	world_make(*state, &w, NULL);
	dkt_write(w.root, BKS_DEVICESET, "{\"NextDeviceId\":9}");
	path_of(disp, w.root, BKS_DEVICESET);
	sha_of(disp, want);
	struct snap changed;
	snap_take(w.root, &changed);
	assert_int_equal(undo(w.bk, 0, 0, NULL, &err), DMR_EUSAGE);
	assert_contains(err.msg, BKS_DEVICESET " changed since the backup");
	assert_tree(w.root, &changed, "after the refusal");
	assert_int_equal(undo(w.bk, 1, 0, NULL, &err), 0);
	assert_tree(w.root, &w.old, "after a forced undo");
	/* What was replaced is kept. */
	snprintf(disp, sizeof(disp), "%s/displaced/%s", w.bk, BKS_DEVICESET);
	sha_of(disp, hex);
	assert_string_equal(hex, want);
	snap_free(&changed);
	world_free(&w);
}

static void test_refuse_recreated(void **state)
{
	struct world w;
	struct dmr_err err = { 0 };
	char disp[PATHBUF];
	struct stat st;
	world_make(*state, &w, NULL);
	dkt_write(w.root, BKS_CONTAINER "/config.v2.json", "{\"ID\":\"new\"}");
	assert_int_equal(undo(w.bk, 0, 0, NULL, &err), DMR_EUSAGE);
	assert_contains(err.msg, BKS_CONTAINER " exists again");
	assert_int_equal(undo(w.bk, 1, 0, NULL, &err), 0);
	assert_tree(w.root, &w.old, "after a forced undo");
	snprintf(disp, sizeof(disp), "%s/displaced/%s/config.v2.json", w.bk, BKS_CONTAINER);
	assert_int_equal(stat(disp, &st), 0);
	world_free(&w);
}

static void test_refuse_corrupt_copy(void **state)
{
	struct world w;
	struct dmr_err err = { 0 };
	world_make(*state, &w, NULL);
	char rel[4200];
	snprintf(rel, sizeof(rel), "%s/files/%s", w.bk + strlen(*state) + 1, BKS_DEVICESET);
	dkt_write(*state, rel, "{\"NextDeviceId\":5,\"BaseDeviceUUID\":\"X\",\"BaseDeviceFilesystem\":\"xfs\"}");
	assert_int_equal(undo(w.bk, 0, 0, NULL, &err), DMR_ECORRUPT);
	assert_contains(err.msg, "the backup is damaged");
	assert_contains(err.msg, "files/" BKS_DEVICESET);
	/* Force does not restore from a damaged backup. */
	assert_int_equal(undo(w.bk, 1, 0, NULL, &err), DMR_ECORRUPT);
	assert_tree(w.root, &w.new, "after the refusal");
	/* A file missing from a stored tree. */
	dkt_remove(*state, rel);
	assert_int_equal(undo(w.bk, 0, 0, NULL, &err), DMR_ECORRUPT);
	assert_contains(err.msg, "missing from the backup");
	world_free(&w);
}

static void test_refuse_bad_manifest(void **state)
{
	struct world w;
	struct dmr_err err = { 0 };
	char manifest[4200], rel[4200];
	world_make(*state, &w, NULL);
	snprintf(manifest, sizeof(manifest), "%s/manifest.json", w.bk);
	snprintf(rel, sizeof(rel), "%s/manifest.json", w.bk + strlen(*state) + 1);
	struct stat st;
	assert_int_equal(stat(manifest, &st), 0);
	/* Cut in the middle. */
	assert_int_equal(truncate(manifest, st.st_size / 2), 0);
	assert_int_equal(undo(w.bk, 1, 0, NULL, &err), DMR_ECORRUPT);
	assert_contains(err.msg, "manifest.json: damaged manifest: not JSON");
	static const char *const bad[] = {
		"", "garbage", "[]", "{}", "{\"schema\":\"dmrescue.backup/2\"}",
		"{\"schema\":\"dmrescue.backup/1\",\"state\":\"complete\",\"docker_root\":\"/x\",\"reclaim_serial\":-1}",
		"{\"schema\":\"dmrescue.backup/1\",\"state\":\"complete\",\"docker_root\":\"/x\",\"reclaim_serial\":0,"
		"\"rewritten\":[{\"path\":\"../etc/passwd\",\"size\":1,\"sha256\":\"00\",\"mode\":0,\"uid\":0,\"gid\":0}]}",
		"{\"schema\":\"dmrescue.backup/1\",\"state\":\"complete\",\"docker_root\":\"/x\",\"reclaim_serial\":0,"
		"\"removed\":[{\"path\":\"a\",\"entries\":[{\"path\":\"b\",\"type\":\"file\"}]}]}",
		"{\"schema\":\"dmrescue.backup/1\",\"state\":\"complete\",\"docker_root\":\"/x\",\"reclaim_serial\":0,"
		"\"removed\":[{\"path\":\"a\",\"entries\":[{\"path\":\"a\",\"type\":\"file\",\"size\":1,\"sha256\":"
		"\"" HA "\",\"mode\":99999,\"uid\":0,\"gid\":0}]}]}",
		"{\"schema\":\"dmrescue.backup/1\",\"state\":\"complete\",\"docker_root\":\"/x\",\"reclaim_serial\":0,"
		"\"removed\":[{\"path\":\"a\",\"entries\":[{\"path\":\"a/b/c\",\"type\":\"dir\",\"mode\":0,\"uid\":0,\"gid\":0},"
		"{\"path\":\"a\",\"type\":\"dir\",\"mode\":0,\"uid\":0,\"gid\":0}]}]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		dkt_write(*state, rel, bad[i]);
		int r = undo(w.bk, 1, 0, NULL, &err);
		if (r != DMR_ECORRUPT && r != DMR_EUNSUPP)
			fail_msg("manifest %zu: %d (%s)", i, r, err.msg);
		assert_contains(err.msg, "manifest.json");
		assert_null(strchr(err.msg, '\n'));
	}
	/* Oversized: refused unread. */
	dkt_sparse(*state, rel, 200ll << 20);
	assert_int_equal(undo(w.bk, 1, 0, NULL, &err), DMR_ECORRUPT);
	assert_contains(err.msg, "too large");
	/* Missing. */
	dkt_remove(*state, rel);
	assert_int_equal(undo(w.bk, 1, 0, NULL, &err), DMR_ENOENT);
	assert_contains(err.msg, "not a dmrescue backup");
	assert_tree(w.root, &w.new, "after all that");
	world_free(&w);
}

/* A backup on another filesystem: copies, not renames. */
static void test_other_filesystem(void **state)
{
	char other[4096];
	struct stat a, b;
	if (stat("/dev/shm", &b) < 0 || stat(*state, &a) < 0 || a.st_dev == b.st_dev || access("/dev/shm", W_OK)) {
		skip();
		return;
	}
	snprintf(other, sizeof(other), "/dev/shm/dmr-bk-XXXXXX");
	assert_non_null(mkdtemp(other));
	struct world w;
	struct dmr_err err = { 0 };
	char dir[4200];
	snprintf(dir, sizeof(dir), "%s/bk", other);
	world_make(*state, &w, dir);
	int r = undo(w.bk, 0, 0, NULL, &err);
	if (!r) {
		assert_tree(w.root, &w.old, "after undo");
		/* The copies stay in the backup. */
		char kept[4300];
		snprintf(kept, sizeof(kept), "%s/files/%s/link", dir, BKS_CONTAINER);
		struct stat st;
		assert_int_equal(lstat(kept, &st), 0);
		assert_true(S_ISLNK(st.st_mode));
	}
	world_free(&w);
	dkt_remove("/dev/shm", other + strlen("/dev/shm/"));
	if (r)
		fail_msg("undo: %s", err.msg);
}

/* path's whole content, NUL-terminated (malloc'ed). */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	long len = ftell(f);
	assert_true(len >= 0);
	rewind(f);
	char *s = malloc((size_t)len + 1);
	assert_non_null(s);
	assert_int_equal(fread(s, 1, (size_t)len, f), (size_t)len);
	s[len] = '\0';
	fclose(f);
	return s;
}

/* s with every from replaced by to (malloc'ed); from must occur. */
static char *replaced(const char *s, const char *from, const char *to)
{
	size_t fl = strlen(from), tl = strlen(to), n = 0;
	for (const char *p = strstr(s, from); p; p = strstr(p + fl, from))
		n++;
	if (!n)
		fail_msg("no '%s' in the text", from);
	char *out = malloc(strlen(s) + n * tl + 1), *o = out;
	assert_non_null(out);
	for (const char *p; (p = strstr(s, from)); s = p + fl) {
		memcpy(o, s, (size_t)(p - s));
		o += p - s;
		memcpy(o, to, tl);
		o += tl;
	}
	strcpy(o, s);
	return out;
}

/* Writes text as the backup's manifest (base: the test's directory). */
static void put_manifest(const char *base, const char *bk, const char *text)
{
	char rel[4200];
	snprintf(rel, sizeof(rel), "%s/manifest.json", bk + strlen(base) + 1);
	dkt_write(base, rel, text);
}

/* The manifest names the metadata's digest and records bk_metadata_digest
 * before and after the change; it is honored (a stored copy checked with
 * another digest is damaged); an unknown one is refused as unsupported;
 * and a manifest from before the field, of plain SHA-256s, is undone. */
static void test_metadata_digest_manifest(void **state)
{
	struct world w;
	struct dmr_err err = { 0 };
	struct lines lines = { 0 };
	char ref[4096], before[PATHBUF], after[PATHBUF], copy[PATHBUF], manifest[4200];
	char nz_before[65], nz_after[65], sha_before[65], sha_after[65], hex[65], quoted[PATHBUF + 32];
	world_make(*state, &w, NULL);
	path_of(ref, *state, "ref");
	dkt_mkdir(*state, "ref");
	layout(ref);
	path_of(before, ref, BKS_METADATA);
	path_of(after, w.root, BKS_METADATA);
	assert_int_equal(bk_metadata_digest(before, nz_before, &err), 0);
	assert_int_equal(bk_metadata_digest(after, nz_after, &err), 0);
	sha_of(before, sha_before);
	sha_of(after, sha_after);
	snprintf(manifest, sizeof(manifest), "%s/manifest.json", w.bk);
	char *good = slurp(manifest);
	assert_contains(good, "\"digest\": \"sha256-nonzero-4k\"");
	snprintf(quoted, sizeof(quoted), "\"sha256\": \"%s\"", nz_before);
	assert_contains(good, quoted);
	snprintf(quoted, sizeof(quoted), "\"after_sha256\": \"%s\"", nz_after);
	assert_contains(good, quoted);
	assert_null(strstr(good, sha_before));
	assert_null(strstr(good, sha_after));
	/* The stored copy has it too. */
	snprintf(copy, sizeof(copy), "%s/pool/metadata", w.bk);
	assert_int_equal(bk_metadata_digest(copy, hex, &err), 0);
	assert_string_equal(hex, nz_before);

	/* A digest this dmrescue does not know. */
	char *text = replaced(good, "\"sha256-nonzero-4k\"", "\"sha256-nonzero-64k\"");
	put_manifest(*state, w.bk, text);
	free(text);
	assert_int_equal(undo(w.bk, 1, 1, NULL, &err), DMR_EUNSUPP);
	assert_contains(err.msg, "manifest.json: unsupported manifest: metadata: digest sha256-nonzero-64k unknown");
	assert_null(strchr(err.msg, '\n'));
	/* "sha256" named, the values left: the stored copy does not match. */
	text = replaced(good, "\"sha256-nonzero-4k\"", "\"sha256\"");
	put_manifest(*state, w.bk, text);
	free(text);
	assert_int_equal(undo(w.bk, 1, 1, NULL, &err), DMR_ECORRUPT);
	assert_contains(err.msg, "pool/metadata: the stored copy differs from the manifest (SHA-256");
	/* "sha256" with the plain SHA-256s: as before the field. */
	char *t1 = replaced(good, "\"sha256-nonzero-4k\"", "\"sha256\""), *t2 = replaced(t1, nz_before, sha_before);
	text = replaced(t2, nz_after, sha_after);
	put_manifest(*state, w.bk, text);
	free(t1);
	free(t2);
	free(text);
	assert_int_equal(undo(w.bk, 0, 1, &lines, &err), 0);
	snprintf(quoted, sizeof(quoted), "restore %s", after);
	assert_contains(lines.all, quoted);
	/* Without the field (a manifest written before it), undone. */
	t1 = replaced(good, "\"digest\": \"sha256-nonzero-4k\",", "");
	t2 = replaced(t1, nz_before, sha_before);
	text = replaced(t2, nz_after, sha_after);
	assert_null(strstr(text, "digest"));
	put_manifest(*state, w.bk, text);
	free(t1);
	free(t2);
	free(text);
	if (undo(w.bk, 0, 0, NULL, &err))
		fail_msg("undo of an old manifest: %s", err.msg);
	assert_tree(w.root, &w.old, "after undo of an old manifest");
	/* Written back as it was read: still of the plain SHA-256. */
	text = slurp(manifest);
	assert_contains(text, "\"digest\": \"sha256\"");
	assert_contains(text, sha_before);
	free(text);
	free(good);
	world_free(&w);
}

/* Undo compares the metadata by content, not by holes: rewritten densely
 * it is still the changed content; one byte more (in what was a hole) is
 * a change since; a damaged stored copy of it is found. */
static void test_metadata_digest_undo(void **state)
{
	struct world w;
	struct dmr_err err = { 0 };
	struct lines lines = { 0 };
	char meta[PATHBUF], dense[PATHBUF + 8], rel[4200];
	world_make(*state, &w, NULL);
	path_of(meta, w.root, BKS_METADATA);
	snprintf(dense, sizeof(dense), "%s.dense", meta);
	/* The same content, every byte written. */
	unsigned char *buf = malloc(BKS_METADATA_SIZE);
	assert_non_null(buf);
	int fd = open(meta, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(__real_pread(fd, buf, BKS_METADATA_SIZE, 0), BKS_METADATA_SIZE);
	close(fd);
	fd = open(dense, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, BKS_METADATA_SIZE, 0), BKS_METADATA_SIZE);
	close(fd);
	assert_int_equal(rename(dense, meta), 0);
	free(buf);
	assert_int_equal(undo(w.bk, 0, 1, &lines, &err), 0);
	char want[PATHBUF + 16];
	snprintf(want, sizeof(want), "restore %s\n", meta);
	assert_contains(lines.all, want);
	/* One byte in what was a hole. */
	fd = open(meta, O_WRONLY);
	assert_int_equal(pwrite(fd, "\1", 1, (1 << 20) + 7), 1);
	assert_int_equal(undo(w.bk, 0, 1, NULL, &err), DMR_EUSAGE);
	assert_contains(err.msg, BKS_METADATA " changed since the backup");
	/* Zero again (now allocated): the changed content once more. */
	assert_int_equal(pwrite(fd, "\0", 1, (1 << 20) + 7), 1);
	close(fd);
	assert_int_equal(undo(w.bk, 0, 1, NULL, &err), 0);
	/* A damaged stored copy: a byte where the copy has a hole. */
	snprintf(rel, sizeof(rel), "%s/pool/metadata", w.bk);
	fd = open(rel, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "\1", 1, (1 << 20) + 7), 1);
	close(fd);
	assert_int_equal(undo(w.bk, 1, 0, NULL, &err), DMR_ECORRUPT);
	assert_contains(err.msg, "pool/metadata: the stored copy differs from the manifest (sha256-nonzero-4k");
	assert_contains(err.msg, "the backup is damaged");
	fd = open(rel, O_WRONLY);
	assert_int_equal(pwrite(fd, "\0", 1, (1 << 20) + 7), 1);
	close(fd);
	/* Restored, with the holes of the saved file. */
	if (undo(w.bk, 0, 0, NULL, &err))
		fail_msg("undo: %s", err.msg);
	assert_tree(w.root, &w.old, "after undo");
	world_free(&w);
}

static void test_api_misuse(void **state)
{
	struct backup *b;
	struct dmr_err err = { 0 };
	char root[4096], dir[4096];
	snprintf(root, sizeof(root), "%s/root", (char *)*state);
	dkt_mkdir(*state, "root");
	layout(root);
	snprintf(dir, sizeof(dir), "%s/bk", (char *)*state);
	dkt_write(*state, "bk/x", "not empty");
	assert_int_equal(bk_begin(&b, root, dir, "clean", &err), DMR_EUSAGE);
	assert_contains(err.msg, "not empty");
	dkt_remove(*state, "bk");
	assert_int_equal(bk_begin(&b, root, dir, "clean", &err), 0);
	assert_int_equal(bk_save_file(b, "../etc/passwd", &err), DMR_EUSAGE);
	assert_int_equal(bk_save_file(b, BKS_CONTAINER "/link", &err), DMR_EIO);
	assert_contains(err.msg, "symlink");
	assert_int_equal(bk_save_file(b, BKS_DEVICESET, &err), 0);
	assert_int_equal(bk_save_file(b, BKS_DEVICESET, &err), DMR_EUSAGE);
	assert_int_equal(bk_plan_remove(b, "nothing/here", &err), DMR_ENOENT);
	assert_int_equal(bk_plan_remove(b, BKS_MOUNT, &err), 0);
	assert_int_equal(bk_remove_now(b, BKS_MOUNT, &err), DMR_EUSAGE); /* not sealed */
	assert_int_equal(bk_finish(b, &err), DMR_EUSAGE);
	assert_int_equal(bk_seal(b, &err), 0);
	assert_int_equal(bk_plan_remove(b, BKS_CONTAINER, &err), DMR_EUSAGE); /* sealed */
	assert_int_equal(bk_remove_now(b, BKS_CONTAINER, &err), DMR_EUSAGE);  /* not planned */
	assert_int_equal(bk_set_after(b, "devicemapper/metadata/base", HA, &err), DMR_EUSAGE);
	assert_int_equal(bk_set_after(b, BKS_DEVICESET, "xyz", &err), DMR_EUSAGE);
	bk_close(b);
	/* Sealed but nothing changed yet (a crash right after bk_seal): undo
	 * finds everything as saved. */
	struct lines lines = { 0 };
	assert_int_equal(undo(dir, 0, 0, &lines, &err), 0);
	assert_contains(lines.all, "keep " BKS_DEVICESET ": already as saved");
	assert_contains(lines.all, "keep " BKS_MOUNT ": already in place");
}

/* ---- fault injection ---- */

/* Every change in the plain and sanitizer builds; under valgrind (the
 * valgrind pass of scripts/test sets DMR_VALGRIND=1) every 7th, which
 * still crosses every phase: the parent's checks are what valgrind sees. */
static unsigned fault_step(void)
{
	const char *v = getenv("DMR_VALGRIND");
	return v && strcmp(v, "1") == 0 ? 7 : 1;
}

/* Runs argv[0] --child MODE ARG... with DMRESCUE_FAULT_AT=n (a crash, or
 * with eio an I/O error); its exit status. */
static int run_child(unsigned n, int eio, const char *mode, const char *a, const char *b)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char at[16];
		snprintf(at, sizeof(at), "%u", n);
		setenv("DMRESCUE_FAULT_AT", at, 1);
		if (eio)
			setenv("DMRESCUE_FAULT_MODE", "eio", 1);
		else
			unsetenv("DMRESCUE_FAULT_MODE");
		execl(self_path, self_path, "--child", mode, a, b, (char *)NULL);
		_exit(127);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status))
		fail_msg("child %s at %u died with signal %d", mode, n, WTERMSIG(status));
	return WEXITSTATUS(status);
}

static void reset_dir(const char *base, const char *name)
{
	dkt_remove(base, name);
	dkt_mkdir(base, name);
}

static int no_temp_left(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	if (!strncmp(path + ftw->base, ".dmrescue-undo.", 15) || !strncmp(path + ftw->base, ".dmrescue-partial.", 18))
		fail_msg("left behind: %s", path);
	return 0;
}

/* base/root and base/bk; the trees before and after the change. */
static void fault_setup(const char *base, char *root, char *bk, struct snap *old, struct snap *new)
{
	snprintf(root, 4096, "%s/root", base);
	snprintf(bk, 4096, "%s/bk", base);
	reset_dir(base, "root");
	layout(root);
	snap_take(root, old);
	cycle(root, bk, NULL);
	snap_take(root, new);
}

/* A fresh root (backed up and changed, when changed) and no backup. */
static void fault_round(const char *base, const char *root, const char *bk, int changed)
{
	reset_dir(base, "root");
	dkt_remove(base, "bk");
	layout(root);
	if (changed)
		cycle(root, bk, NULL);
}

/* A crash, then an I/O error, at every change of backup + change: each
 * file is old or new, and undo (when the backup was sealed) brings back
 * the old tree. */
static void test_fault_cycle(void **state)
{
	if (!sio_fault_injection_built()) {
		skip();
		return;
	}
	char root[4096], bk[4096], manifest[4200];
	struct snap old, new;
	fault_setup(*state, root, bk, &old, &new);
	snprintf(manifest, sizeof(manifest), "%s/manifest.json", bk);
	for (int eio = 0; eio < 2; eio++) {
		unsigned n;
		for (n = 1; n < 10000; n += fault_step()) {
			fault_round(*state, root, bk, 0);
			int rc = run_child(n, eio, "cycle", root, bk);
			if (rc == 0)
				break;
			if (rc != (eio ? 1 : SIO_FAULT_EXIT))
				fail_msg("cycle with a fault at %u: exit %d", n, rc);
			struct snap cur;
			snap_take(root, &cur);
			char what[64];
			snprintf(what, sizeof(what), "%s at change %u", eio ? "I/O error" : "crash", n);
			assert_old_or_new(&old, &new, &cur, what);
			/* Every path missing from the root is in the backup (undo
			 * checks that each stored copy is whole). */
			struct stat st;
			if (stat(manifest, &st) == 0) {
				struct dmr_err err = { 0 };
				if (undo(bk, 0, 0, NULL, &err))
					fail_msg("%s: undo: %s", what, err.msg);
				snprintf(what, sizeof(what), "undo after %s at change %u", eio ? "an I/O error" : "a crash", n);
			}
			snap_free(&cur);
			assert_tree(root, &old, what);
			nftw(root, no_temp_left, 32, FTW_PHYS);
		}
		fprintf(stderr, "backup and change: %u changes, %s at each\n", n - 1, eio ? "an I/O error" : "a crash");
		assert_true(n > 20);
		assert_tree(root, &new, "the cycle without a fault");
	}
	snap_free(&old);
	snap_free(&new);
}

/* A crash, then an I/O error, at every change of an undo: each file is
 * old or new, an error leaves no temp file, and undo run again completes
 * it. */
static void test_fault_undo(void **state)
{
	if (!sio_fault_injection_built()) {
		skip();
		return;
	}
	char root[4096], bk[4096];
	struct snap old, new;
	fault_setup(*state, root, bk, &old, &new);
	for (int eio = 0; eio < 2; eio++) {
		unsigned n;
		for (n = 1; n < 10000; n += fault_step()) {
			fault_round(*state, root, bk, 1);
			int rc = run_child(n, eio, "undo", bk, "-");
			if (rc == 0)
				break;
			if (rc != (eio ? 1 : SIO_FAULT_EXIT))
				fail_msg("undo with a fault at %u: exit %d", n, rc);
			struct snap cur;
			char what[64];
			snprintf(what, sizeof(what), "undo failed (%s) at change %u", eio ? "I/O error" : "crash", n);
			snap_take(root, &cur);
			assert_old_or_new(&new, &old, &cur, what);
			snap_free(&cur);
			if (eio)
				nftw(root, no_temp_left, 32, FTW_PHYS); /* the error path cleaned up */
			/* A failure once the manifest says "undone" (its directory
			 * not yet fsynced) leaves nothing to do. */
			struct dmr_err err = { 0 };
			int r = undo(bk, 0, 0, NULL, &err);
			if (r && !(r == DMR_EUSAGE && strstr(err.msg, "undone already")))
				fail_msg("%s, then undo again: %s", what, err.msg);
			assert_tree(root, &old, what);
			nftw(root, no_temp_left, 32, FTW_PHYS);
		}
		fprintf(stderr, "undo: %u changes, %s at each\n", n - 1, eio ? "an I/O error" : "a crash");
		assert_true(n > 10);
		assert_tree(root, &old, "undo without a fault");
	}
	snap_free(&old);
	snap_free(&new);
}

/* The fault runs: a fresh process, so DMRESCUE_FAULT_AT counts from 1. */
static int child_main(int argc, char **argv)
{
	struct dmr_err err = { 0 };
	int r = DMR_EUSAGE;
	if (argc >= 5 && !strcmp(argv[2], "cycle"))
		r = bks_cycle(argv[3], argv[4], NULL, 0, &err);
	else if (argc >= 4 && !strcmp(argv[2], "undo")) {
		struct bk_undo_opts o = { 0 };
		r = bk_undo(argv[3], NULL, &o, NULL, NULL, &err);
	}
	if (r && !strstr(err.msg, "injected"))
		fprintf(stderr, "child: %s\n", err.msg);
	return r ? 1 : 0;
}

int main(int argc, char **argv)
{
	self_path = argv[0];
	if (argc > 1 && !strcmp(argv[1], "--child"))
		return child_main(argc, argv);
	if (!unit_tmpdir_usable())
		return UNIT_SKIP;
	unsetenv("DMRESCUE_FAULT_AT");
#define T(f) cmocka_unit_test_setup_teardown(f, dkt_setup, dkt_teardown)
	const struct CMUnitTest tests[] = {
		T(test_copy_sparse),
		T(test_copy_sparse_fallback),
		T(test_copy_empty),
		T(test_copy_attrs),
		T(test_digest_layout),
		T(test_digest_changes),
		T(test_digest_2g),
		T(test_cycle_undo),
		T(test_dry_run),
		T(test_reclaim_serial),
		T(test_refuse_reclaim),
		T(test_refuse_changed),
		T(test_refuse_recreated),
		T(test_refuse_corrupt_copy),
		T(test_refuse_bad_manifest),
		T(test_other_filesystem),
		T(test_metadata_digest_manifest),
		T(test_metadata_digest_undo),
		T(test_api_misuse),
		T(test_fault_cycle),
		T(test_fault_undo),
	};
	return cmocka_run_group_tests_name("backup", tests, NULL, NULL);
}
