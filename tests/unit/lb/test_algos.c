/*
 * Algorithm-specific behaviour: round-robin order, least-connections under
 * long-lived connections, Maglev shares and disruption, modulo remapping,
 * bounded load, cookie values, the stick table, health, SipHash.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tether/hash.h"
#include "tether/health.h"
#include "tether/stick.h"
#include "testpool.h"
#include "core.h"       /* lb_iphash_entries */

static void test_rr_smooth_sequence(void **unused)
{
	static const unsigned w[] = { 5, 1, 1 };
	static const char want[] = "aabacaa" "aabacaa";
	struct testpool tp;
	struct lb_rng rng;
	struct lb_key k;

	tp_key_v4(&k, 1);
	tp_init(&tp, &lb_algo_roundrobin, NULL, 3, w);
	for (int i = 0; want[i]; i++) {
		struct lb_server *s = tp_pick(&tp, &k, &rng);

		assert_int_equal('a' + (s - tp.srv), want[i]);
	}
	tp_fini(&tp);
}

static void test_rr_equal_rotation(void **unused)
{
	struct testpool tp;
	struct lb_rng rng;
	struct lb_key k;

	tp_key_v4(&k, 1);
	tp_init(&tp, &lb_algo_roundrobin, NULL, 3, NULL);
	for (int i = 0; i < 9; i++)
		assert_ptr_equal(tp_pick(&tp, &k, &rng), &tp.srv[i % 3]);
	tp_fini(&tp);
}

static void test_leastconn_long_lived(void **unused)
{
	static const unsigned w[] = { 1, 1, 2 };
	struct testpool tp;
	struct lb_rng rng;
	struct lb_key k;

	tp_key_v4(&k, 1);
	tp_init(&tp, &lb_algo_leastconn, NULL, 3, w);
	/* 400 connections that stay open: active/weight stays level, so s2 gets half */
	for (int i = 0; i < 400; i++)
		lb_conn_open(&tp.pool, tp_pick(&tp, &k, &rng));
	assert_int_equal(tp.srv[0].active, 100);
	assert_int_equal(tp.srv[1].active, 100);
	assert_int_equal(tp.srv[2].active, 200);
	/* close 50 on s0: the next 50 go to s0 */
	for (int i = 0; i < 50; i++)
		lb_conn_close(&tp.pool, &tp.srv[0]);
	for (int i = 0; i < 50; i++) {
		struct lb_server *s = tp_pick(&tp, &k, &rng);

		assert_ptr_equal(s, &tp.srv[0]);
		lb_conn_open(&tp.pool, s);
	}
	tp_fini(&tp);
}

static void test_leastconn_ties_rotate(void **unused)
{
	struct testpool tp;
	struct lb_rng rng;
	struct lb_key k;
	unsigned count[4] = { 0 };

	tp_key_v4(&k, 1);
	tp_init(&tp, &lb_algo_leastconn, NULL, 4, NULL);
	for (int i = 0; i < 4000; i++) {
		struct lb_server *s = tp_pick(&tp, &k, &rng);

		count[s - tp.srv]++;
		lb_conn_open(&tp.pool, s);
		lb_conn_close(&tp.pool, s);
	}
	for (int i = 0; i < 4; i++)
		assert_int_equal(count[i], 1000);
	tp_fini(&tp);
}

/* Maglev: each server's share of table entries within 1% of its weight
 * share (Maglev section 5.3: M prime and M > 100 N), counted exactly. */
static void check_maglev_shares(int n, bool weighted)
{
	struct testpool tp;
	unsigned *w = malloc((size_t)n * sizeof(*w)), wsum = 0;
	double worst = 0;

	for (int i = 0; i < n; i++)
		wsum += (w[i] = weighted ? 1 + (unsigned)i % 4 : 1);
	tp_init(&tp, &lb_algo_iphash, NULL, n, w);
	for (int i = 0; i < n; i++) {
		double share = lb_iphash_entries(&tp.pool, &tp.srv[i]) / 65537.0, want = (double)w[i] / wsum;
		double err = share > want ? share / want - 1 : 1 - share / want;

		worst = err > worst ? err : worst;
		if (err > 0.01)
			fail_msg("n=%d server %d share %.6f want %.6f", n, i, share, want);
	}
	print_message("maglev n=%d%s: worst share error %.4f%%\n", n, weighted ? " weighted" : "", worst * 100);
	free(w);
	tp_fini(&tp);
}

static void test_maglev_shares(void **unused)
{
	check_maglev_shares(3, false);
	check_maglev_shares(10, true);
	check_maglev_shares(100, true);
	check_maglev_shares(1000, false);
}

/* Fraction of 10^6 keys that change server when server n is added to 0..n-1. */
static double moved_on_add(enum lb_hash_method method, int n)
{
	struct testpool tp;
	struct lb_params p;
	struct lb_rng rng;
	uint8_t *before = malloc(1000000);
	int moved = 0;

	lb_params_default(&p);
	p.hash_method = method;
	tp_init(&tp, &lb_algo_iphash, &p, n, NULL);
	for (uint32_t i = 0; i < 1000000; i++) {
		struct lb_key k;

		tp_key_v4(&k, i * 2654435761u + 7);
		before[i] = (uint8_t)(tp_pick(&tp, &k, &rng) - tp.srv);
	}
	tp_add(&tp, n, 1);
	for (uint32_t i = 0; i < 1000000; i++) {
		struct lb_key k;

		tp_key_v4(&k, i * 2654435761u + 7);
		moved += (tp_pick(&tp, &k, &rng) - tp.srv) != before[i];
	}
	free(before);
	tp_fini(&tp);
	return moved / 1e6;
}

static void test_remap_on_scale_out(void **unused)
{
	for (int n = 3; n <= 9; n += 3) {
		double mod = moved_on_add(LB_HASH_MODULO, n), mag = moved_on_add(LB_HASH_MAGLEV, n);
		double ideal = 1.0 / (n + 1);

		print_message("N=%d->%d: modulo moved %.4f (N/(N+1) = %.4f), maglev moved %.4f (1/(N+1) = %.4f)\n",
		              n, n + 1, mod, (double)n / (n + 1), mag, ideal);
		assert_true(mod > (double)n / (n + 1) - 0.005 && mod < (double)n / (n + 1) + 0.005);
		assert_true(mag >= ideal - 0.005 && mag <= 2 * ideal);
	}
}

static void test_maglev_removal_and_down(void **unused)
{
	struct testpool tp;
	struct lb_rng rng;
	const int n = 10, keys = 200000;
	uint8_t *before = malloc(keys);
	int moved_other = 0, moved_down = 0;

	tp_init(&tp, &lb_algo_iphash, NULL, n, NULL);
	for (int i = 0; i < keys; i++) {
		struct lb_key k;

		tp_key_v4(&k, (uint32_t)i * 2654435761u);
		before[i] = (uint8_t)(tp_pick(&tp, &k, &rng) - tp.srv);
	}
	/* a DOWN server: only its own clients move, nobody else */
	lb_server_set_up(&tp.pool, &tp.srv[4], false);
	for (int i = 0; i < keys; i++) {
		struct lb_key k;
		int now;

		tp_key_v4(&k, (uint32_t)i * 2654435761u);
		now = (int)(tp_pick(&tp, &k, &rng) - tp.srv);
		if (before[i] == 4)
			assert_int_not_equal(now, 4);
		else
			moved_other += now != before[i];
	}
	assert_int_equal(moved_other, 0);
	/* removal rebuilds the table: its keys move plus a small extra (Maglev
	 * is not minimal; the paper's Table 1 shows one extra entry) */
	lb_server_set_up(&tp.pool, &tp.srv[4], true);
	assert_int_equal(lb_pool_del(&tp.pool, &tp.srv[4]), 0);
	for (int i = 0; i < keys; i++) {
		struct lb_key k;
		int now;

		tp_key_v4(&k, (uint32_t)i * 2654435761u);
		now = (int)(tp_pick(&tp, &k, &rng) - tp.srv);
		if (before[i] != 4)
			moved_down += now != before[i];
	}
	print_message("remove 1 of %d: %.4f of the other keys moved\n", n, (double)moved_down / keys);
	assert_true((double)moved_down / keys < 0.03);
	free(before);
	tp_fini(&tp);
}

static void test_maglev_order_independent(void **unused)
{
	struct testpool a, b;
	struct lb_rng rng;

	tp_init(&a, &lb_algo_iphash, NULL, 5, NULL);
	tp_init(&b, &lb_algo_iphash, NULL, 0, NULL);
	for (int i = 4; i >= 0; i--)
		tp_add(&b, i, 1);
	for (uint32_t ip = 0; ip < 100000; ip++) {
		struct lb_key k;

		tp_key_v4(&k, ip * 2654435761u);
		assert_string_equal(tp_pick(&a, &k, &rng)->name, tp_pick(&b, &k, &rng)->name);
	}
	tp_fini(&a);
	tp_fini(&b);
}

static void test_bounded_load(void **unused)
{
	struct testpool tp;
	struct lb_params p;
	struct lb_rng rng;
	unsigned maxa = 0;

	lb_params_default(&p);
	p.balance_factor = 125;
	tp_init(&tp, &lb_algo_iphash, &p, 4, NULL);
	/* every client from one address: without the cap all go to one server */
	for (int i = 0; i < 400; i++) {
		struct lb_key k;
		struct lb_server *s;
		unsigned cap = (unsigned)((125ull * (tp.pool.total_active + 1) + 399) / 400);

		tp_key_v4(&k, 42);
		s = tp_pick(&tp, &k, &rng);
		assert_true(s->active + 1 <= cap);
		lb_conn_open(&tp.pool, s);
	}
	for (int i = 0; i < 4; i++)
		maxa = tp.srv[i].active > maxa ? tp.srv[i].active : maxa;
	assert_true(maxa <= 125);
	tp_fini(&tp);
}

static void test_prefix24(void **unused)
{
	struct testpool tp;
	struct lb_params p;
	struct lb_rng rng;

	lb_params_default(&p);
	p.hash_key = LB_KEY_PREFIX;
	tp_init(&tp, &lb_algo_iphash, &p, 7, NULL);
	for (uint32_t net = 0; net < 1000; net++) {
		struct lb_key k;
		struct lb_server *first;

		tp_key_v4(&k, net << 8);
		first = tp_pick(&tp, &k, &rng);
		for (uint32_t host = 1; host < 256; host += 17) {
			tp_key_v4(&k, (net << 8) | host);
			assert_ptr_equal(tp_pick(&tp, &k, &rng), first);
		}
	}
	tp_fini(&tp);
}

static void test_bad_table_size(void **unused)
{
	struct lb_pool pool;
	struct lb_params p;
	char *err = NULL;

	lb_params_default(&p);
	p.table_size = 65536;
	assert_int_equal(lb_pool_init(&pool, &lb_algo_iphash, &p, &err), -EINVAL);
	assert_non_null(strstr(err, "prime"));
	free(err);
}

static void test_cookie_values(void **unused)
{
	char a[LB_COOKIE_LEN + 1], b[LB_COOKIE_LEN + 1], c[LB_COOKIE_LEN + 1];

	lb_cookie_value("secret", "pod1", a);
	lb_cookie_value("secret", "pod1", b);
	lb_cookie_value("other", "pod1", c);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	assert_int_equal(strlen(a), LB_COOKIE_LEN);
	assert_int_equal(strspn(a, "0123456789abcdef"), LB_COOKIE_LEN);
	assert_null(strstr(a, "pod1"));
}

static void test_cookie_routing(void **unused)
{
	struct testpool tp;
	struct lb_rng rng;
	struct lb_key k;

	tp_init(&tp, &lb_algo_cookie, NULL, 4, NULL);
	tp_key_v4(&k, 5);
	k.cookie = tp.srv[2].cookie;
	k.cookie_len = LB_COOKIE_LEN;
	for (int i = 0; i < 20; i++)
		assert_ptr_equal(tp_pick(&tp, &k, &rng), &tp.srv[2]);
	assert_int_equal(tp.srv[2].cnt.affinity_hits, 20);
	lb_server_set_up(&tp.pool, &tp.srv[2], false);
	assert_ptr_not_equal(tp_pick(&tp, &k, &rng), &tp.srv[2]);
	assert_int_equal(tp.srv[2].cnt.redispatches, 1);
	k.cookie = NULL;
	k.cookie_len = 0;
	{
		struct lb_server *s = tp_pick(&tp, &k, &rng);

		assert_int_equal(s->cnt.affinity_misses, 1);
	}
	tp_fini(&tp);
}

static void test_stick_table(void **unused)
{
	struct lb_stick *t = lb_stick_new(3, 1000);
	struct lb_addr a[4];
	uint32_t id;

	for (int i = 0; i < 4; i++) {
		memset(&a[i], 0, sizeof(a[i]));
		a[i].len = 4;
		a[i].bytes[3] = (uint8_t)i;
	}
	lb_stick_put(t, &a[0], 10, 0);
	lb_stick_put(t, &a[1], 11, 10);
	lb_stick_put(t, &a[2], 12, 20);
	assert_true(lb_stick_get(t, &a[0], 999, &id));
	assert_int_equal(id, 10);
	assert_false(lb_stick_get(t, &a[0], 1000, &id));      /* idle timeout */
	lb_stick_put(t, &a[1], 11, 500);                       /* refresh */
	lb_stick_put(t, &a[3], 13, 600);
	lb_stick_put(t, &a[0], 10, 700);                       /* full: evicts LRU a[2] */
	assert_false(lb_stick_get(t, &a[2], 700, &id));
	assert_true(lb_stick_get(t, &a[1], 1400, &id));
	assert_int_equal(lb_stick_count(t), 3);
	lb_stick_drop_server(t, 11);
	assert_false(lb_stick_get(t, &a[1], 1400, &id));
	lb_stick_free(t);
}

static void test_stick_zero_remap_on_add(void **unused)
{
	struct testpool tp;
	struct lb_params p;
	struct lb_rng rng;
	uint8_t before[2000];

	lb_params_default(&p);
	p.stick_size = 10000;
	p.stick_timeout_ms = 60000;
	tp_init(&tp, &lb_algo_iphash, &p, 4, NULL);
	for (uint32_t i = 0; i < 2000; i++) {
		struct lb_key k;

		tp_key_v4(&k, 0x7f000000u + i);
		before[i] = (uint8_t)(lb_pick(&tp.pool, &k, 100, &rng));
	}
	tp_add(&tp, 4, 1);
	for (uint32_t i = 0; i < 2000; i++) {
		struct lb_key k;

		tp_key_v4(&k, 0x7f000000u + i);
		assert_int_equal(lb_pick(&tp.pool, &k, 200, &rng), before[i]);
	}
	tp_fini(&tp);
}

static void test_health_machine(void **unused)
{
	struct hc_params p;
	struct hc_state st;
	struct lb_rng rng;

	hc_params_default(&p);
	hc_init(&st, &p, true);
	assert_int_equal(hc_report(&st, &p, false), HC_SAME);
	assert_int_equal(hc_report(&st, &p, false), HC_SAME);
	assert_int_equal(hc_report(&st, &p, false), HC_WENT_DOWN);      /* fall = 3 */
	assert_int_equal(hc_report(&st, &p, true), HC_SAME);
	assert_int_equal(hc_report(&st, &p, false), HC_SAME);            /* flapping */
	assert_int_equal(hc_report(&st, &p, true), HC_SAME);
	assert_int_equal(hc_report(&st, &p, true), HC_WENT_UP);          /* rise = 2 */
	assert_int_equal(st.transitions, 2);
	hc_init(&st, &p, false);                                          /* runtime add */
	assert_false(st.up);
	assert_int_equal(hc_report(&st, &p, true), HC_SAME);
	assert_int_equal(hc_report(&st, &p, true), HC_WENT_UP);
	lb_rng_seed(&rng, 9);
	{
		uint32_t lo = UINT32_MAX, hi = 0;

		for (int i = 0; i < 1000; i++) {
			uint32_t d = hc_next_delay_ms(&p, &rng);

			assert_true(d >= 1800 && d <= 2200);
			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
		}
		assert_true(lo < 1820 && hi > 2180);        /* the jitter uses its whole +-10 % */
	}
}

static void test_siphash_vector(void **unused)
{
	uint8_t k[16], m[15];

	for (int i = 0; i < 16; i++)
		k[i] = (uint8_t)i;
	for (int i = 0; i < 15; i++)
		m[i] = (uint8_t)i;
	/* SipHash paper, Appendix A */
	assert_true(lb_siphash(k, m, 15) == 0xa129ca6149be45e5ULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rr_smooth_sequence),
		cmocka_unit_test(test_rr_equal_rotation),
		cmocka_unit_test(test_leastconn_long_lived),
		cmocka_unit_test(test_leastconn_ties_rotate),
		cmocka_unit_test(test_maglev_shares),
		cmocka_unit_test(test_remap_on_scale_out),
		cmocka_unit_test(test_maglev_removal_and_down),
		cmocka_unit_test(test_maglev_order_independent),
		cmocka_unit_test(test_bounded_load),
		cmocka_unit_test(test_prefix24),
		cmocka_unit_test(test_bad_table_size),
		cmocka_unit_test(test_cookie_values),
		cmocka_unit_test(test_cookie_routing),
		cmocka_unit_test(test_stick_table),
		cmocka_unit_test(test_stick_zero_remap_on_add),
		cmocka_unit_test(test_health_machine),
		cmocka_unit_test(test_siphash_vector),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
