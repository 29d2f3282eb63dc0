/*
 * Golden values: outputs that are a compatibility promise across versions
 * and across instances (docs/cookie-affinity.md: cookie values "are stable
 * across restarts and across tether instances that share the
 * configuration"; docs/algorithms.md: "two tether instances with the same
 * server list send every client to the same server").  A browser holding a
 * cookie from the previous version, or a client hashed by the other
 * instance, must land on the same server.  So the expected values below are
 * fixed literals: a change to the hash seeds, the key derivation, the
 * Maglev permutation or the lookup that alters them fails here.  If such a
 * change is ever intended, it breaks every deployed cookie and moves every
 * iphash client: say so in the release notes, then update the literals.
 *
 * `test_lb_golden --print` prints the current values in the form used here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "testpool.h"
#include "core.h"       /* lb_iphash_slot */

static bool print_mode;

/* FNV-1a, 64 bits: independent of the code under test. */
static uint64_t fnv(uint64_t h, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

#define FNV_INIT 0xcbf29ce484222325ULL

static const struct {
	const char *secret, *name, *value;
} cookies[] = {
	{ "", "pod1", "fcabeb840afb74f3" },
	{ "s3cret", "a", "bfd6436dcc6537d4" },
	{ "s3cret", "b", "70b3a9c25d121f16" },
	{ "s3cret", "c", "0afdd3d6d994af8e" },
	{ "change-me", "pod1", "b30551caf0c8a003" },
	{ "change-me", "pod2", "b82ba734f1337c41" },
	{ "other", "pod1", "8a4b53c5ae1ca8d1" },
	{ "change-me", "pods-10.244.1.7-8080", "29fc712f0130a979" },
};

static void test_cookie_golden(void **unused)
{
	for (size_t i = 0; i < sizeof(cookies) / sizeof(cookies[0]); i++) {
		char v[LB_COOKIE_LEN + 1];

		lb_cookie_value(cookies[i].secret, cookies[i].name, v);
		if (print_mode)
			print_message("\t{ \"%s\", \"%s\", \"%s\" },\n", cookies[i].secret, cookies[i].name, v);
		else if (strcmp(v, cookies[i].value) != 0)
			fail_msg("cookie(secret \"%s\", name \"%s\") = %s, promised %s", cookies[i].secret,
			         cookies[i].name, v, cookies[i].value);
	}
}

/* A pool named like a deployment: the table depends on names and weights. */
static const char *const golden_names[] = { "pod-a", "pod-b", "pod-c", "pod-d", "pod-e" };
static const unsigned golden_weights[] = { 1, 1, 2, 1, 3 };

static void golden_pool(struct testpool *tp, uint32_t table_size, int n)
{
	struct lb_params p;

	lb_params_default(&p);
	p.table_size = table_size;
	tp_init(tp, &lb_algo_iphash, &p, 0, NULL);
	for (int i = 0; i < n; i++) {
		snprintf(tp->srv[i].name, sizeof(tp->srv[i].name), "%s", golden_names[i]);
		tp->srv[i].weight = golden_weights[i];
		tp->srv[i].up = true;
		if (lb_pool_add(&tp->pool, &tp->srv[i]) != 0)
			abort();
	}
	tp->n = n;
}

/* The table as a string of server letters (a..e for pod-a..pod-e). */
static void table_letters(const struct testpool *tp, uint32_t size, char *out)
{
	for (uint32_t i = 0; i < size; i++) {
		int idx = lb_iphash_slot(&tp->pool, false, i);

		assert_true(idx >= 0);
		out[i] = tp->pool.servers[idx]->name[4];
	}
	out[size] = '\0';
}

/* Whole small tables, spelled out: 3 servers in 13 slots, 5 weighted in 61. */
static void test_maglev_small_tables_golden(void **unused)
{
	static const struct {
		uint32_t size;
		int n;
		const char *table;
	} want[] = {
		{ 13, 3, "aaabccccbccbc" },
		{ 61, 5, "dbecbdecabecaedeacedccedebeedcaeeeaeecceebdaeccdebeacebccbeec" },
	};

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		struct testpool tp;
		char got[128];

		golden_pool(&tp, want[i].size, want[i].n);
		table_letters(&tp, want[i].size, got);
		if (print_mode)
			print_message("\t\t{ %u, %d, \"%s\" },\n", want[i].size, want[i].n, got);
		else
			assert_string_equal(got, want[i].table);
		tp_fini(&tp);
	}
}

/* Where 10000 IPv4 and 1000 IPv6 clients go, as a hash of the server
 * letters: pins the address hashing as well as the table. */
static uint64_t clients_hash(struct testpool *tp, struct lb_rng *rng)
{
	uint64_t ch = FNV_INIT;

	for (uint32_t i = 0; i < 11000; i++) {
		struct lb_key k;
		struct lb_server *s;

		tp_key_v4(&k, 0x0a000000u + i * 2654435761u);
		if (i >= 10000) {
			k.addr.len = 16;
			memset(k.addr.bytes, 0, 16);
			k.addr.bytes[0] = 0xfd;
			k.addr.bytes[12] = (uint8_t)(i >> 8);
			k.addr.bytes[15] = (uint8_t)i;
		}
		s = tp_pick(tp, &k, rng);
		ch = fnv(ch, &s->name[4], 1);
	}
	return ch;
}

/* The default table (65537 slots) of the weighted five: a hash of every
 * slot, a few explicit slots, and where explicit client addresses go. */
static void test_maglev_default_table_golden(void **unused)
{
	static const uint64_t want_hash = 0x6d4881576ca09eeeULL;
	static const struct {
		uint32_t slot;
		char server;
	} want_slots[] = { { 0, 'd' }, { 1, 'e' }, { 2, 'e' }, { 32768, 'c' }, { 65535, 'd' }, { 65536, 'b' } };
	static const struct {
		uint32_t ip;
		char server;
	} want_clients[] = {
		{ 0x0a000001u, 'e' }, { 0x0a000002u, 'a' }, { 0xc0a80107u, 'e' },
		{ 0x7f000001u, 'e' }, { 0x08080808u, 'a' }, { 0xac100a0bu, 'e' },
	};
	static const uint64_t want_clients_hash = 0xa4ab1553f982782eULL;
	static const uint64_t want_clients_down_hash = 0x21ec283bcfdc6863ULL;
	struct testpool tp;
	struct lb_rng rng;
	char *table = malloc(65537 + 1);
	uint64_t h, ch;

	lb_rng_seed(&rng, 1);
	golden_pool(&tp, 65537, 5);
	table_letters(&tp, 65537, table);
	h = fnv(FNV_INIT, table, 65537);
	if (print_mode)
		print_message("table hash 0x%016llxULL\n", (unsigned long long)h);
	else
		assert_true(h == want_hash);
	for (size_t i = 0; i < sizeof(want_slots) / sizeof(want_slots[0]); i++) {
		if (print_mode)
			print_message("{ %u, '%c' }, ", want_slots[i].slot, table[want_slots[i].slot]);
		else
			assert_int_equal(table[want_slots[i].slot], want_slots[i].server);
	}
	for (size_t i = 0; i < sizeof(want_clients) / sizeof(want_clients[0]); i++) {
		struct lb_key k;
		struct lb_server *s;

		tp_key_v4(&k, want_clients[i].ip);
		s = tp_pick(&tp, &k, &rng);
		if (print_mode)
			print_message("{ 0x%08xu, '%c' }, ", want_clients[i].ip, s->name[4]);
		else
			assert_int_equal(s->name[4], want_clients[i].server);
	}
	ch = clients_hash(&tp, &rng);
	if (print_mode)
		print_message("\nclients hash 0x%016llxULL\n", (unsigned long long)ch);
	else
		assert_true(ch == want_clients_hash);
	/* pod-e down: its clients walk their own preference order (derived
	 * lookups), which two instances must also agree on */
	lb_server_set_up(&tp.pool, &tp.srv[4], false);
	ch = clients_hash(&tp, &rng);
	if (print_mode)
		print_message("clients hash with pod-e down 0x%016llxULL\n", (unsigned long long)ch);
	else
		assert_true(ch == want_clients_down_hash);
	free(table);
	tp_fini(&tp);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cookie_golden),
		cmocka_unit_test(test_maglev_small_tables_golden),
		cmocka_unit_test(test_maglev_default_table_golden),
	};

	print_mode = argc > 1 && strcmp(argv[1], "--print") == 0;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
