/* The block copy of export (loopfile/imagecopy.c): extents land at their
 * virtual offsets with the right bytes, unmapped and all-zero parts stay
 * holes, a data extent beyond the data file is refused before anything is
 * written; the sparse image's SHA-256 equals a plain read's; hashing zeros
 * the fast way equals hashing zero bytes. */
#include "unit.h"

#include "loopfile/imagecopy.h"

#include <fcntl.h>
#include <sys/stat.h>

#define BS 8192u
#define NDATA 32u
#define NVIRT 40u

static char data_path[4096], out_path[4096];

static void tmpname(char *buf, const char *what)
{
	const char *t = getenv("TMPDIR");
	snprintf(buf, 4096, "%s/dmr-imagecopy-%s-XXXXXX", t && *t ? t : "/tmp", what);
	int fd = mkstemp(buf);
	assert_true(fd >= 0);
	close(fd);
	unit_tmp_track(buf);
}

/* Data block b: every byte b+1, except block 5 (zeros) and the first half
 * of block 7 (zeros). */
static void fill_block(unsigned char *buf, uint64_t b)
{
	memset(buf, (int)(b + 1), BS);
	if (b == 5)
		memset(buf, 0, BS);
	if (b == 7)
		memset(buf, 0, BS / 2);
}

static void make_data(void)
{
	tmpname(data_path, "data");
	int fd = open(data_path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	unsigned char buf[BS];
	for (uint64_t b = 0; b < NDATA; b++) {
		fill_block(buf, b);
		assert_int_equal(pwrite(fd, buf, BS, (off_t)(b * BS)), BS);
	}
	close(fd);
}

static const struct lf_extent ext[] = {
	{ .vblock = 0, .dblock = 3, .len = 2 },
	{ .vblock = 10, .dblock = 5, .len = 1 }, /* all zeros: a hole */
	{ .vblock = 4, .dblock = 7, .len = 1 },  /* half zeros: written whole */
	{ .vblock = 20, .dblock = 29, .len = 3 },
};
#define NEXT (sizeof(ext) / sizeof(ext[0]))

static int is_hole(int fd, uint64_t off)
{
	off_t d = lseek(fd, (off_t)off, SEEK_DATA);
	return d < 0 || (uint64_t)d >= off + BS;
}

static void copy_with(const char *io)
{
	if (io)
		setenv("DMRESCUE_IO", io, 1);
	else
		unsetenv("DMRESCUE_IO");
	make_data();
	tmpname(out_path, "out");
	int fd = open(out_path, O_RDWR | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, NVIRT * BS), 0);
	struct lf_reader *r = NULL;
	struct dmr_err err = { 0 };
	struct lf_reader_opts o = { .chunk_size = BS };
	assert_int_equal(lf_reader_open(&r, data_path, &o, &err), 0);
	struct lf_copy_stats st;
	assert_int_equal(lf_copy_extents(r, ext, NEXT, BS, fd, out_path, NULL, NULL, &st, &err), 0);
	lf_reader_close(r);
	assert_int_equal(st.bytes_read, 7 * BS);
	assert_int_equal(st.bytes_zero, BS);
	assert_int_equal(st.bytes_written, 6 * BS);
	/* every virtual block: the data block it maps, or zeros */
	unsigned char want[BS], got[BS];
	for (uint64_t v = 0; v < NVIRT; v++) {
		int64_t d = -1;
		for (size_t i = 0; i < NEXT; i++)
			if (v >= ext[i].vblock && v < ext[i].vblock + ext[i].len)
				d = (int64_t)(ext[i].dblock + v - ext[i].vblock);
		if (d >= 0)
			fill_block(want, (uint64_t)d);
		else
			memset(want, 0, BS);
		assert_int_equal(pread(fd, got, BS, (off_t)(v * BS)), BS);
		if (memcmp(want, got, BS))
			fail_msg("virtual block %llu differs", (unsigned long long)v);
		int mapped_nonzero = d >= 0 && d != 5;
		if (is_hole(fd, v * BS) == mapped_nonzero)
			fail_msg("virtual block %llu: %s", (unsigned long long)v,
				 mapped_nonzero ? "a hole, data expected" : "data, a hole expected");
	}
	/* the checksum of the sparse file equals a plain read's */
	char hex[SHA256_HEX_LEN + 1], plain[SHA256_HEX_LEN + 1];
	assert_int_equal(lf_sha256_sparse(fd, NVIRT * BS, out_path, NULL, NULL, hex, &err), 0);
	struct sha256_ctx c;
	sha256_init(&c);
	for (uint64_t v = 0; v < NVIRT; v++) {
		assert_int_equal(pread(fd, got, BS, (off_t)(v * BS)), BS);
		sha256_update(&c, got, BS);
	}
	sha256_final_hex(&c, plain);
	assert_string_equal(hex, plain);
	/* and a size that is not a multiple of the block (trailing hole) */
	assert_int_equal(lf_sha256_sparse(fd, 3 * BS + 100, out_path, NULL, NULL, hex, &err), 0);
	sha256_init(&c);
	for (uint64_t v = 0; v < 4; v++) {
		assert_int_equal(pread(fd, got, BS, (off_t)(v * BS)), BS);
		sha256_update(&c, got, v == 3 ? 100 : BS);
	}
	sha256_final_hex(&c, plain);
	assert_string_equal(hex, plain);
	close(fd);
	unsetenv("DMRESCUE_IO");
}

static void test_copy_default(void **state)
{
	(void)state;
	copy_with(NULL);
}

static void test_copy_pread(void **state)
{
	(void)state;
	copy_with("pread");
}

static void test_beyond_data(void **state)
{
	(void)state;
	make_data();
	tmpname(out_path, "out");
	int fd = open(out_path, O_RDWR | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, NVIRT * BS), 0);
	struct lf_reader *r = NULL;
	struct dmr_err err = { 0 };
	assert_int_equal(lf_reader_open(&r, data_path, NULL, &err), 0);
	const struct lf_extent bad[] = { { .vblock = 0, .dblock = 0, .len = 1 },
					 { .vblock = 8, .dblock = NDATA - 1, .len = 2 } };
	struct lf_copy_stats st;
	assert_int_equal(lf_copy_extents(r, bad, 2, BS, fd, out_path, NULL, NULL, &st, &err), DMR_ECORRUPT);
	assert_contains(err.msg, "virtual blocks 8..9 map to data blocks 31..32, beyond the end of");
	assert_int_equal(st.bytes_written, 0);
	assert_true(is_hole(fd, 0)); /* checked before anything was read */
	assert_int_equal(lf_copy_extents(r, bad, 1, 1000, fd, out_path, NULL, NULL, &st, &err), DMR_EUSAGE);
	lf_reader_close(r);
	close(fd);
}

static void test_sha256_zeros(void **state)
{
	(void)state;
	static unsigned char zeros[200000], prefix[128];
	memset(prefix, 0x5a, sizeof(prefix));
	const size_t pre[] = { 0, 1, 63, 64, 100 };
	const size_t len[] = { 0, 1, 55, 63, 64, 65, 127, 1000, 131072, 199999 };
	for (size_t i = 0; i < sizeof(pre) / sizeof(pre[0]); i++)
		for (size_t j = 0; j < sizeof(len) / sizeof(len[0]); j++) {
			struct sha256_ctx a, b;
			char ha[SHA256_HEX_LEN + 1], hb[SHA256_HEX_LEN + 1];
			sha256_init(&a);
			sha256_init(&b);
			sha256_update(&a, prefix, pre[i]);
			sha256_update(&b, prefix, pre[i]);
			sha256_update(&a, zeros, len[j]);
			sha256_update_zeros(&b, len[j]);
			sha256_update(&a, "x", 1);
			sha256_update(&b, "x", 1);
			sha256_final_hex(&a, ha);
			sha256_final_hex(&b, hb);
			if (strcmp(ha, hb))
				fail_msg("prefix %zu, %zu zeros: %s vs %s", pre[i], len[j], ha, hb);
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_copy_default),
		cmocka_unit_test(test_copy_pread),
		cmocka_unit_test(test_beyond_data),
		cmocka_unit_test(test_sha256_zeros),
	};
	if (!unit_tmpdir_usable())
		return UNIT_SKIP;
	return cmocka_run_group_tests_name("imagecopy", tests, NULL, unit_tmp_cleanup);
}
