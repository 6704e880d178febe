/* util/sha256: FIPS 180-4 vectors, padding edges, incremental updates;
 * Docker's chain ids (layer/layer.go) against values from sha256sum. */
#include "unit.h"

#include "docker/scan.h"
#include "util/sha256.h"

static void check(const void *data, size_t len, const char *want)
{
	char hex[SHA256_HEX_LEN + 1];
	sha256_hex(data, len, hex);
	assert_string_equal(hex, want);
}

static void test_vectors(void **state)
{
	(void)state;
	check("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	check("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	check(m448, strlen(m448), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_million_a(void **state)
{
	(void)state;
	char *a = malloc(1000000);
	assert_non_null(a);
	memset(a, 'a', 1000000);
	check(a, 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	/* The same through updates of odd sizes. */
	struct sha256_ctx c;
	unsigned char d[SHA256_DIGEST_LEN];
	sha256_init(&c);
	size_t off = 0, step = 1;
	while (off < 1000000) {
		size_t n = step < 1000000 - off ? step : 1000000 - off;
		sha256_update(&c, a + off, n);
		off += n;
		step = step * 3 % 997 + 1;
	}
	sha256_final(&c, d);
	static const unsigned char want[SHA256_DIGEST_LEN] = {
		0xcd, 0xc7, 0x6e, 0x5c, 0x99, 0x14, 0xfb, 0x92, 0x81, 0xa1, 0xc7, 0xe2, 0x84, 0xd7, 0x3e, 0x67,
		0xf1, 0x80, 0x9a, 0x48, 0xa4, 0x97, 0x20, 0x0e, 0x04, 0x6d, 0x39, 0xcc, 0xc7, 0x11, 0x2c, 0xd0,
	};
	assert_memory_equal(d, want, sizeof(want));
	free(a);
}

/* 55, 56 and 64 bytes: the length still fits the last block, just does
 * not, and a block of its own. */
static void test_padding_edges(void **state)
{
	(void)state;
	char x[64];
	memset(x, 'x', sizeof(x));
	check(x, 55, "d5e285683cd4efc02d021a5c62014694958901005d6f71e89e0989fac77e4072");
	check(x, 56, "04c26261370ee7541549d16dee320c723e3fd14671e66a099afe0a377c16888e");
	check(x, 64, "7ce100971f64e7001e8fe5a51973ecdfe1ced42befe7ee8d5fd6219506b5393c");
}

#define D1 "sha256:f191e625176e7514249870c60bc24622131b04927a418001d1969c9cecd260f1"
#define D2 "sha256:77c7ed05b2e49df2e55d70cb007508cc66b2f5419a940bfd6f8749ba7db77c45"
#define D3 "sha256:6483085b79dcef99d4d90b43a910666cdce078bf772da453728f8c385fbfdf2f"
/* printf 'D1 D2' | sha256sum, then printf 'C2 D3' | sha256sum */
#define C2 "sha256:d440fc2ac5bfa225471b58c5d6b4283504f5dfbcd6251023a635cdcd0c058e3e"
#define C3 "sha256:952689aceeac7e377b602804de533a4ad47ba634e3917ca7cb071e5ff2bff6cd"

static void test_chain_ids(void **state)
{
	(void)state;
	char *diff[] = { D1, D2, D3 };
	char **chain;
	assert_int_equal(dk_chain_ids(diff, 3, &chain), 0);
	assert_string_equal(chain[0], D1);
	assert_string_equal(chain[1], C2);
	assert_string_equal(chain[2], C3);
	for (int i = 0; i < 3; i++)
		free(chain[i]);
	free(chain);
	assert_int_equal(dk_chain_ids(diff, 0, &chain), 0);
	assert_null(chain);
	assert_int_equal(dk_chain_ids(diff, 1, &chain), 0);
	assert_string_equal(chain[0], D1);
	free(chain[0]);
	free(chain);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_million_a),
		cmocka_unit_test(test_padding_edges),
		cmocka_unit_test(test_chain_ids),
	};
	return cmocka_run_group_tests_name("docker_sha256", tests, NULL, NULL);
}
