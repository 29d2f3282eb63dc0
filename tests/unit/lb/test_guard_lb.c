/*
 * Guards of the core's promises (docs/algorithms.md, docs/cookie-affinity.md),
 * written against scripts/mutants.py's survivors and meant to hold against
 * any small bug of the same kind:
 *  - golden values: the Maglev assignment and the cookie values are a
 *    compatibility promise across versions and instances, so fixed inputs
 *    must give these exact outputs forever;
 *  - reference models: round-robin and least-connections are replayed by
 *    a plain model of their documented rule through random pool changes;
 *  - exact boundaries: stick expiry and LRU, health rise/fall, retries,
 *    observe, the bounded-load cap, backups, counters.
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

/* Golden values, computed once by this very code (tether 1.0) and fixed:
 * a change that alters one is a compatibility break, not a refactoring. */
#define GOLDEN_MAGLEV_FIRST "bbabbbbdddacccbdbbeeacdbcddebeaebcdabedcbdeddbbcaaddddadebdaaaea"
#define GOLDEN_MAGLEV_HASH 0xd6f3f0e4b5a2df00ULL
#define GOLDEN_SMALL_ENTRIES 454        /* 4, 5, 4 slots */
#define GOLDEN_SMALL_MAP "bcaccbaccacccbabaccabababbbbbcbaabbcbcbb"
#define GOLDEN_COOKIES { { "", "s1", "ad8cbe86bcea20a9" }, { "s3cret", "s1", "c70db322fba6ae53" }, \
                         { "s3cret", "s2", "ec0f7b4b2cc00bf0" }, { "another secret", "pod-a", "bf572d6b03e76824" }, \
                         { "tether", "web-01.example", "2dff6a32b23c65c3" } }

static uint64_t fnv(uint64_t h, uint64_t v)
{
	for (int i = 0; i < 8; i++) {
		h ^= (v >> (8 * i)) & 0xff;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* A pool of servers with the given names and weights. */
static void named_pool(struct testpool *tp, const struct lb_algo *algo, const struct lb_params *p,
                       const char *const *names, const unsigned *w, int n)
{
	char *err = NULL;

	tp->n = n;
	tp->srv = calloc((size_t)n + 8, sizeof(*tp->srv));
	assert_int_equal(lb_pool_init(&tp->pool, algo, p, &err), 0);
	for (int i = 0; i < n; i++) {
		snprintf(tp->srv[i].name, sizeof(tp->srv[i].name), "%s", names[i]);
		tp->srv[i].weight = w ? w[i] : 1;
		tp->srv[i].up = true;
		assert_int_equal(lb_pool_add(&tp->pool, &tp->srv[i]), 0);
	}
}

/* Index (into tp->srv) of the server client 10.(i>>16).(i>>8).i gets. */
static int client_server(struct testpool *tp, uint32_t i)
{
	struct lb_key k;
	struct lb_rng rng;
	struct lb_server *s;

	lb_rng_seed(&rng, 1);
	tp_key_v4(&k, 0x0a000000u | i);
	s = tp_pick(tp, &k, &rng);
	return s ? (int)(s - tp->srv) : -1;
}

/* --- golden values: these numbers must never change --- */

static const char *const pods[] = { "pod-a", "pod-b", "pod-c", "pod-d", "pod-e" };

static void test_golden_maglev(void **unused)
{
	static const unsigned w[] = { 1, 2, 1, 3, 1 };
	struct lb_params p;
	struct testpool tp;
	char first[65] = "";
	uint64_t h = 0xcbf29ce484222325ULL;
	int count[5] = { 0 };

	lb_params_default(&p);
	named_pool(&tp, &lb_algo_iphash, &p, pods, w, 5);
	for (uint32_t i = 0; i < 64; i++)
		first[i] = (char)('a' + client_server(&tp, i * 7919));
	for (uint32_t i = 0; i < 20000; i++) {
		int s = client_server(&tp, i * 104729);

		count[s]++;
		h = fnv(h, (uint64_t)s);
	}
	print_message("maglev: %s %016llx %d %d %d %d %d\n", first, (unsigned long long)h, count[0], count[1],
	              count[2], count[3], count[4]);
	assert_string_equal(first, GOLDEN_MAGLEV_FIRST);
	assert_true(h == GOLDEN_MAGLEV_HASH);
	/* the slots of each member: its weight share of 65537, within one */
	for (int i = 0; i < 5; i++) {
		int e = lb_iphash_entries(&tp.pool, &tp.srv[i]);
		double exact = 65537.0 * w[i] / 8.0;

		assert_true(e >= (int)exact && e <= (int)exact + 1);
	}
	tp_fini(&tp);
}

/* A small table, where remainders and quotas show: 13 slots, 3 equal
 * members get 5, 4, 4 (the extra slot to the first by name hash). */
static void test_golden_maglev_small_table(void **unused)
{
	static const unsigned w3[] = { 1, 1, 1 }, w2[] = { 3, 1 };
	struct lb_params p;
	struct testpool tp;
	int e[3], total = 0;
	char map[41] = "";

	lb_params_default(&p);
	p.table_size = 13;
	named_pool(&tp, &lb_algo_iphash, &p, pods, w3, 3);
	for (int i = 0; i < 3; i++)
		total += e[i] = lb_iphash_entries(&tp.pool, &tp.srv[i]);
	assert_int_equal(total, 13);
	for (int i = 0; i < 3; i++)
		assert_true(e[i] == 4 || e[i] == 5);
	for (uint32_t i = 0; i < 40; i++)
		map[i] = (char)('a' + client_server(&tp, i));
	print_message("small: %d %d %d %s\n", e[0], e[1], e[2], map);
	assert_int_equal(e[0] * 100 + e[1] * 10 + e[2], GOLDEN_SMALL_ENTRIES);
	assert_string_equal(map, GOLDEN_SMALL_MAP);
	tp_fini(&tp);

	named_pool(&tp, &lb_algo_iphash, &p, pods, w2, 2);      /* 13 * 3/4 = 9.75, 3.25 */
	assert_int_equal(lb_iphash_entries(&tp.pool, &tp.srv[0]), 10);
	assert_int_equal(lb_iphash_entries(&tp.pool, &tp.srv[1]), 3);
	tp_fini(&tp);
}

static void test_golden_cookie_values(void **unused)
{
	static const struct { const char *secret, *name, *value; } g[] = GOLDEN_COOKIES;
	char v[LB_COOKIE_LEN + 1], w[LB_COOKIE_LEN + 1];

	int wrong = 0;

	for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++) {
		lb_cookie_value(g[i].secret, g[i].name, v);
		if (strcmp(v, g[i].value) != 0) {
			print_message("cookie(\"%s\", \"%s\") = %s, want %s\n", g[i].secret, g[i].name, v, g[i].value);
			wrong++;
		}
	}
	assert_int_equal(wrong, 0);
	/* the value depends on the secret, on every name, and on the whole secret */
	for (int i = 0; i < 50; i++) {
		char name[16];

		snprintf(name, sizeof(name), "srv%d", i);
		lb_cookie_value("alpha", name, v);
		lb_cookie_value("alphb", name, w);
		assert_string_not_equal(v, w);
		lb_cookie_value("", name, w);
		assert_string_not_equal(v, w);
		assert_int_equal(strspn(v, "0123456789abcdef"), LB_COOKIE_LEN);
	}
}

/* --- cookie matching --- */

static void test_cookie_exact_match(void **unused)
{
	struct lb_params p;
	struct testpool tp;
	struct lb_key k;
	struct lb_rng rng;
	char longer[LB_COOKIE_LEN + 2];

	lb_params_default(&p);
	snprintf(p.cookie_secret, sizeof(p.cookie_secret), "s3cret");
	named_pool(&tp, &lb_algo_cookie, &p, pods, NULL, 3);
	lb_rng_seed(&rng, 1);
	tp_key_v4(&k, 1);
	k.cookie = tp.srv[2].cookie;
	k.cookie_len = LB_COOKIE_LEN;
	assert_true(lb_cookie_names(&k, &tp.srv[2]));
	for (int i = 0; i < 10; i++)
		assert_ptr_equal(tp_pick(&tp, &k, &rng), &tp.srv[2]);
	assert_int_equal(tp.srv[2].cnt.affinity_hits, 10);
	/* one character more or less names nobody */
	snprintf(longer, sizeof(longer), "%s0", tp.srv[2].cookie);
	k.cookie = longer;
	k.cookie_len = LB_COOKIE_LEN + 1;
	for (int i = 0; i < 3; i++)
		assert_false(lb_cookie_names(&k, &tp.srv[i]));
	k.cookie_len = LB_COOKIE_LEN - 1;
	for (int i = 0; i < 3; i++)
		assert_false(lb_cookie_names(&k, &tp.srv[i]));
	/* a connect to the named server failed: the retry goes elsewhere, and
	 * the named server counts a redispatch */
	k.cookie = tp.srv[2].cookie;
	k.cookie_len = LB_COOKIE_LEN;
	lb_key_add_tried(&k, &tp.srv[2]);
	for (int i = 0; i < 5; i++) {
		struct lb_server *s = tp_pick(&tp, &k, &rng);

		assert_non_null(s);
		assert_ptr_not_equal(s, &tp.srv[2]);
	}
	assert_int_equal(tp.srv[2].cnt.redispatches, 5);
	/* a DOWN named server: elsewhere too */
	k.ntried = 0;
	lb_server_set_up(&tp.pool, &tp.srv[2], false);
	assert_ptr_not_equal(tp_pick(&tp, &k, &rng), &tp.srv[2]);
	assert_int_equal(tp.srv[2].cnt.redispatches, 6);
	tp_fini(&tp);
}

/* --- reference models of round-robin and least-connections --- */

static bool eligible(const struct lb_pool *pool, const struct lb_server *s, const struct lb_key *k)
{
	return s->weight > 0 && s->up && s->admin == LB_ADMIN_READY && (!s->maxconn || s->active < s->maxconn) &&
	       s->backup == pool->use_backup && !lb_key_tried(k, s->id);
}

struct model {
	long cw[16];
	int next;
};

/* nginx's smooth weighted round-robin, restarted at every pool change. */
static int model_rr(struct model *m, const struct lb_pool *pool, const struct lb_key *k)
{
	int best = -1;
	long total = 0;

	for (int i = 0; i < pool->nservers; i++) {
		const struct lb_server *s = pool->servers[i];

		if (!eligible(pool, s, k))
			continue;
		m->cw[i] += s->weight;
		total += s->weight;
		if (best < 0 || m->cw[i] > m->cw[best])
			best = i;
	}
	if (best >= 0)
		m->cw[best] -= total;
	return best;
}

/* Least active/weight; the scan starts after the previous choice and only a
 * strictly better server replaces the first candidate. */
static int model_lc(struct model *m, const struct lb_pool *pool, const struct lb_key *k)
{
	int n = pool->nservers, best = -1;

	for (int j = 0; j < n; j++) {
		int i = (m->next + j) % n;
		const struct lb_server *s = pool->servers[i], *b;

		if (!eligible(pool, s, k))
			continue;
		b = best < 0 ? NULL : pool->servers[best];
		if (!b || (double)s->active / s->weight < (double)b->active / b->weight)
			best = i;
	}
	if (best >= 0)
		m->next = (best + 1) % n;
	return best;
}

static void replay(const struct lb_algo *algo, int (*model)(struct model *, const struct lb_pool *,
                                                            const struct lb_key *), bool is_rr)
{
	static const unsigned w[] = { 5, 1, 3, 2, 1, 4 };
	struct testpool tp;
	struct model m;
	struct lb_rng rng, dice;
	struct lb_key k;
	struct lb_server *open[4096];
	int nopen = 0;

	memset(&m, 0, sizeof(m));
	lb_rng_seed(&rng, 7);
	lb_rng_seed(&dice, 42);
	tp_init(&tp, algo, NULL, 6, w);
	tp.srv[1].maxconn = 2;          /* full servers take nobody */
	tp.srv[4].maxconn = 5;
	for (int step = 0; step < 4000; step++) {
		unsigned r = lb_rng_below(&dice, 100);
		struct lb_server *s = &tp.srv[lb_rng_below(&dice, 6)];
		unsigned w0 = s->weight;
		bool up0 = s->up;
		enum lb_admin a0 = s->admin;

		if (r < 3)
			lb_server_set_weight(&tp.pool, s, lb_rng_below(&dice, 6));
		else if (r < 6)
			lb_server_set_up(&tp.pool, s, !s->up);
		else if (r < 8)
			lb_server_set_admin(&tp.pool, s, s->admin == LB_ADMIN_READY ? LB_ADMIN_DRAIN : LB_ADMIN_READY);
		if (r < 8) {                    /* a real change restarts round-robin */
			if (is_rr && (s->weight != w0 || s->up != up0 || s->admin != a0))
				memset(m.cw, 0, sizeof(m.cw));
			else if (!is_rr && m.next >= tp.pool.nservers)
				m.next = 0;
			continue;
		}
		if (r < 30 && nopen > 0) {      /* a connection ends */
			int i = (int)lb_rng_below(&dice, (uint32_t)nopen);

			lb_conn_close(&tp.pool, open[i]);
			open[i] = open[--nopen];
			continue;
		}
		tp_key_v4(&k, (uint32_t)step);
		if (r < 40) {                   /* a retry: one server already tried */
			lb_key_add_tried(&k, s);
		}
		{
			int want = model(&m, &tp.pool, &k);
			int got = lb_pick(&tp.pool, &k, 0, &rng);

			if (got != want)
				fail_msg("%s step %d: picked %d, the model says %d", algo->name, step, got, want);
			if (got >= 0 && nopen < 4096 && !is_rr) {
				lb_conn_open(&tp.pool, tp.pool.servers[got]);
				open[nopen++] = tp.pool.servers[got];
			}
		}
	}
	tp_fini(&tp);
}

static void test_rr_model(void **unused)
{
	replay(&lb_algo_roundrobin, model_rr, true);
}

static void test_leastconn_model(void **unused)
{
	replay(&lb_algo_leastconn, model_lc, false);
}

/* --- iphash: bounded load, prefix keys, health never rebuilds, weights --- */

static void test_bounded_load_cap_inclusive(void **unused)
{
	struct lb_params p, plain;
	struct testpool tp, ref;
	struct lb_key k;
	struct lb_rng rng;
	int took_at_cap = 0;

	lb_params_default(&p);
	p.balance_factor = 125;
	lb_params_default(&plain);
	named_pool(&tp, &lb_algo_iphash, &p, pods, NULL, 4);
	named_pool(&ref, &lb_algo_iphash, &plain, pods, NULL, 4);
	lb_rng_seed(&rng, 3);
	for (uint32_t i = 0; i < 400; i++) {
		unsigned cap = (unsigned)((125ULL * (tp.pool.total_active + 1) + 399) / 400);
		struct lb_server *want, *got;

		tp_key_v4(&k, 0x0a000000u + i * 2654435761u % 65536);
		want = &tp.srv[tp_pick(&ref, &k, &rng) - ref.srv];
		got = tp_pick(&tp, &k, &rng);
		assert_non_null(got);
		assert_true(got->active + 1 <= cap);
		if (want->active + 1 <= cap)
			assert_ptr_equal(got, want);    /* the table's choice whenever it is under the cap */
		took_at_cap += got->active + 1 == cap;
		lb_conn_open(&tp.pool, got);
	}
	assert_true(took_at_cap > 0);
	tp_fini(&tp);
	tp_fini(&ref);
}

static void test_prefix_key(void **unused)
{
	struct lb_params p;
	struct testpool tp;
	int spread = 0;

	lb_params_default(&p);
	p.hash_key = LB_KEY_PREFIX;
	named_pool(&tp, &lb_algo_iphash, &p, pods, NULL, 5);
	for (uint32_t net = 0; net < 64; net++) {
		int first = client_server(&tp, net << 8 | 1);

		for (uint32_t host = 2; host < 255; host += 17)
			assert_int_equal(client_server(&tp, net << 8 | host), first);
	}
	tp_fini(&tp);
	p.hash_key = LB_KEY_ADDRESS;
	named_pool(&tp, &lb_algo_iphash, &p, pods, NULL, 5);
	for (uint32_t host = 2; host < 255; host++)
		spread += client_server(&tp, host) != client_server(&tp, 1);
	assert_true(spread > 100);
	tp_fini(&tp);
}

static void test_iphash_down_moves_only_its_clients(void **unused)
{
	struct lb_params p;
	struct testpool tp;
	int before[2000], moved = 0;

	lb_params_default(&p);
	named_pool(&tp, &lb_algo_iphash, &p, pods, NULL, 5);
	for (uint32_t i = 0; i < 2000; i++)
		before[i] = client_server(&tp, i * 31);
	lb_server_set_up(&tp.pool, &tp.srv[1], false);
	for (uint32_t i = 0; i < 2000; i++) {
		int now = client_server(&tp, i * 31);

		if (before[i] != 1)
			assert_int_equal(now, before[i]);
		else
			moved++, assert_int_not_equal(now, 1);
	}
	assert_true(moved > 200);
	lb_server_set_up(&tp.pool, &tp.srv[1], true);
	for (uint32_t i = 0; i < 2000; i++)
		assert_int_equal(client_server(&tp, i * 31), before[i]);
	tp_fini(&tp);
}

/* set weight reaches the algorithm: Maglev entries, round-robin shares */
static void test_set_weight_takes_effect(void **unused)
{
	struct lb_params p;
	struct testpool tp;
	struct lb_key k;
	struct lb_rng rng;
	int n[3] = { 0 };

	lb_params_default(&p);
	named_pool(&tp, &lb_algo_iphash, &p, pods, NULL, 2);
	lb_server_set_weight(&tp.pool, &tp.srv[0], 3);
	assert_int_equal(tp.srv[0].weight, 3);
	assert_int_equal(lb_iphash_entries(&tp.pool, &tp.srv[0]), 49153);      /* 3/4 of 65537, rounded up */
	assert_int_equal(lb_iphash_entries(&tp.pool, &tp.srv[1]), 16384);
	lb_server_set_weight(&tp.pool, &tp.srv[1], 0);
	for (uint32_t i = 0; i < 100; i++)
		assert_int_equal(client_server(&tp, i), 0);
	tp_fini(&tp);

	tp_init(&tp, &lb_algo_roundrobin, NULL, 3, NULL);
	lb_server_set_weight(&tp.pool, &tp.srv[2], 4);
	lb_server_set_weight(&tp.pool, &tp.srv[1], 300);        /* capped at LB_WEIGHT_MAX */
	assert_int_equal(tp.srv[1].weight, LB_WEIGHT_MAX);
	lb_server_set_weight(&tp.pool, &tp.srv[1], 0);
	lb_rng_seed(&rng, 1);
	tp_key_v4(&k, 1);
	for (int i = 0; i < 50; i++)
		n[tp_pick(&tp, &k, &rng) - tp.srv]++;
	assert_int_equal(n[0], 10);
	assert_int_equal(n[1], 0);
	assert_int_equal(n[2], 40);
	tp_fini(&tp);
}

/* --- stick table --- */

static void test_stick_boundaries(void **unused)
{
	struct lb_stick *t = lb_stick_new(3, 1000);
	struct lb_addr a[5];
	uint32_t id;

	for (int i = 0; i < 5; i++) {
		memset(&a[i], 0, sizeof(a[i]));
		a[i].len = 4;
		a[i].bytes[0] = 10;
		a[i].bytes[3] = (uint8_t)i;
	}
	/* idle exactly `timeout`: gone; one ms less: there */
	lb_stick_put(t, &a[0], 7, 5000);
	assert_true(lb_stick_get(t, &a[0], 5999, &id));
	assert_int_equal(id, 7);
	assert_false(lb_stick_get(t, &a[0], 6000, &id));
	assert_int_equal(lb_stick_count(t), 0);
	/* every put refreshes: idle time counts from the last one */
	lb_stick_put(t, &a[1], 1, 10000);
	lb_stick_put(t, &a[1], 1, 10800);
	lb_stick_put(t, &a[1], 2, 11600);
	assert_true(lb_stick_get(t, &a[1], 12500, &id));
	assert_int_equal(id, 2);
	/* full: the least recently put goes */
	lb_stick_put(t, &a[2], 3, 12500);
	lb_stick_put(t, &a[3], 4, 12501);
	lb_stick_put(t, &a[1], 2, 12502);       /* a[1] is now the most recent */
	lb_stick_put(t, &a[4], 5, 12503);       /* evicts a[2] */
	assert_int_equal(lb_stick_count(t), 3);
	assert_false(lb_stick_get(t, &a[2], 12504, &id));
	assert_true(lb_stick_get(t, &a[1], 12504, &id));
	assert_true(lb_stick_get(t, &a[3], 12504, &id));
	assert_true(lb_stick_get(t, &a[4], 12504, &id));
	lb_stick_drop_server(t, 4);
	assert_false(lb_stick_get(t, &a[3], 12504, &id));
	assert_int_equal(lb_stick_count(t), 2);
	lb_stick_free(t);
}

static void test_stick_pool_counters(void **unused)
{
	struct lb_params p;
	struct testpool tp;
	struct lb_key k;
	struct lb_rng rng;
	struct lb_server *s, *again;

	lb_params_default(&p);
	p.stick_size = 100;
	p.stick_timeout_ms = 60000;
	tp_init(&tp, &lb_algo_roundrobin, &p, 3, NULL);
	lb_rng_seed(&rng, 1);
	tp_key_v4(&k, 0x0a000001);
	s = tp_pick(&tp, &k, &rng);
	assert_int_equal(s->cnt.affinity_misses, 1);
	assert_int_equal(s->cnt.affinity_hits, 0);
	for (int i = 0; i < 4; i++)
		assert_ptr_equal(tp_pick(&tp, &k, &rng), s);
	assert_int_equal(s->cnt.affinity_hits, 4);
	assert_int_equal(s->cnt.affinity_misses, 1);
	assert_int_equal(s->cnt.picks, 5);
	/* DOWN: its entries go at once; the client is new again elsewhere */
	assert_int_equal(lb_stick_count(tp.pool.stick), 1);
	lb_server_set_up(&tp.pool, s, false);
	assert_int_equal(lb_stick_count(tp.pool.stick), 0);
	again = tp_pick(&tp, &k, &rng);
	assert_ptr_not_equal(again, s);
	assert_int_equal(again->cnt.affinity_misses, 1);
	assert_int_equal(s->cnt.redispatches, 0);
	/* back UP: the client stays where it is now, its entry kept */
	lb_server_set_up(&tp.pool, s, true);
	assert_int_equal(lb_stick_count(tp.pool.stick), 1);
	assert_ptr_equal(tp_pick(&tp, &k, &rng), again);
	/* drained: a redispatch on the named server, the entry moves */
	lb_server_set_admin(&tp.pool, again, LB_ADMIN_DRAIN);
	s = tp_pick(&tp, &k, &rng);
	assert_ptr_not_equal(s, again);
	assert_int_equal(again->cnt.redispatches, 1);
	lb_server_set_admin(&tp.pool, again, LB_ADMIN_READY);
	assert_ptr_equal(tp_pick(&tp, &k, &rng), s);
	/* deleted: its entries go with it */
	assert_int_equal(lb_stick_count(tp.pool.stick), 1);
	assert_int_equal(lb_pool_del(&tp.pool, s), 0);
	assert_int_equal(lb_stick_count(tp.pool.stick), 0);
	tp_fini(&tp);
}

/* --- health --- */

static void run_health(unsigned rise, unsigned fall)
{
	struct hc_params p;
	struct hc_state st;

	hc_params_default(&p);
	p.rise = rise;
	p.fall = fall;
	/* configured: UP, `fall` failures to go DOWN, not one fewer */
	hc_init(&st, &p, true);
	assert_true(st.up);
	for (unsigned i = 0; i + 1 < fall; i++)
		assert_int_equal(hc_report(&st, &p, false), HC_SAME);
	assert_int_equal(hc_report(&st, &p, false), HC_WENT_DOWN);
	assert_false(st.up);
	/* DOWN: `rise` successes to go UP, not one fewer */
	for (unsigned i = 0; i + 1 < rise; i++)
		assert_int_equal(hc_report(&st, &p, true), HC_SAME);
	assert_int_equal(hc_report(&st, &p, true), HC_WENT_UP);
	/* a fresh UP needs `fall` failures again */
	for (unsigned i = 0; i + 1 < fall; i++)
		assert_int_equal(hc_report(&st, &p, false), HC_SAME);
	assert_int_equal(hc_report(&st, &p, false), HC_WENT_DOWN);
	/* failures while DOWN do not pile up below 0; a failure among the
	 * successes takes one step back (HAProxy's counter) */
	for (int i = 0; i < 5; i++)
		assert_int_equal(hc_report(&st, &p, false), HC_SAME);
	if (rise > 1) {
		for (unsigned i = 0; i + 1 < rise; i++)
			assert_int_equal(hc_report(&st, &p, true), HC_SAME);
		assert_int_equal(hc_report(&st, &p, false), HC_SAME);
		assert_int_equal(hc_report(&st, &p, true), HC_SAME);
		assert_int_equal(hc_report(&st, &p, true), HC_WENT_UP);
		for (unsigned i = 0; i < fall; i++)
			hc_report(&st, &p, false);
		assert_false(st.up);
	}
	/* added at runtime: DOWN, `rise` successes */
	hc_init(&st, &p, false);
	assert_false(st.up);
	for (unsigned i = 0; i + 1 < rise; i++)
		assert_int_equal(hc_report(&st, &p, true), HC_SAME);
	assert_int_equal(hc_report(&st, &p, true), HC_WENT_UP);
	assert_int_equal(st.transitions, 1);
	/* a success in the UP range refills: fall - 1 failures, a success, fall - 1 failures: still UP */
	for (unsigned i = 0; i + 1 < fall; i++)
		hc_report(&st, &p, false);
	for (unsigned i = 0; i + 1 < fall; i++)
		hc_report(&st, &p, true);
	for (unsigned i = 0; i + 1 < fall; i++)
		assert_int_equal(hc_report(&st, &p, false), HC_SAME);
	assert_true(st.up);
}

static void test_health_rise_fall_exact(void **unused)
{
	static const unsigned rf[][2] = { { 1, 1 }, { 2, 3 }, { 1, 4 }, { 5, 1 }, { 3, 3 } };
	struct hc_params p;

	for (size_t i = 0; i < sizeof(rf) / sizeof(rf[0]); i++)
		run_health(rf[i][0], rf[i][1]);
	/* the documented defaults (docs/configuration.md) */
	hc_params_default(&p);
	assert_int_equal(p.rise, 2);
	assert_int_equal(p.fall, 3);
	assert_int_equal(p.interval_ms, 2000);
	assert_int_equal(p.timeout_ms, 1000);
}

/* interval +-10 %, centred */
static void test_health_jitter(void **unused)
{
	struct hc_params p;
	struct lb_rng rng;
	uint32_t lo = UINT32_MAX, hi = 0;
	double sum = 0;

	hc_params_default(&p);
	p.interval_ms = 1000;
	lb_rng_seed(&rng, 9);
	for (int i = 0; i < 20000; i++) {
		uint32_t d = hc_next_delay_ms(&p, &rng);

		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
		sum += d;
	}
	assert_int_equal(lo, 900);
	assert_int_equal(hi, 1100);
	assert_true(sum / 20000 > 995 && sum / 20000 < 1005);
}

/* --- the outcome policy --- */

static void test_retries_and_observe(void **unused)
{
	for (unsigned retries = 0; retries <= 3; retries++)
		for (int observe = 0; observe < 2; observe++) {
			struct lb_params p;
			struct testpool tp;
			struct lb_key k;
			struct lb_rng rng;
			int attempts = 0, idx;

			lb_params_default(&p);
			p.retries = retries;
			p.observe = observe;
			p.health.fall = 1;
			tp_init(&tp, &lb_algo_roundrobin, &p, 6, NULL);
			for (int i = 0; i < 6; i++)
				lb_server_health_init(&tp.pool, &tp.srv[i], true);
			lb_rng_seed(&rng, 1);
			tp_key_v4(&k, 1);
			while ((idx = lb_attempt(&tp.pool, &k, 0, &rng)) >= 0) {
				struct lb_server *s = tp.pool.servers[idx];

				assert_int_equal(s->active, 1);
				attempts++;
				lb_attempt_failed(&tp.pool, s);
				assert_int_equal(s->active, 0);
				assert_int_equal(s->up, !observe);      /* observe: one failure is `fall` */
			}
			assert_int_equal(attempts, retries + 1);
			assert_int_equal(tp.pool.total_active, 0);
			tp_fini(&tp);
		}
}

static void test_backup_use(void **unused)
{
	struct testpool tp;
	struct lb_key k;
	struct lb_rng rng;

	tp_init(&tp, &lb_algo_roundrobin, NULL, 3, NULL);
	lb_rng_seed(&rng, 1);
	tp_key_v4(&k, 1);
	lb_server_set_up(&tp.pool, &tp.srv[0], false);
	tp.srv[3].backup = true;
	tp_add(&tp, 3, 1);
	for (int i = 0; i < 6; i++)
		assert_ptr_not_equal(tp_pick(&tp, &k, &rng), &tp.srv[3]);
	lb_server_set_admin(&tp.pool, &tp.srv[1], LB_ADMIN_DRAIN);
	lb_server_set_weight(&tp.pool, &tp.srv[2], 0);
	for (int i = 0; i < 3; i++)
		assert_ptr_equal(tp_pick(&tp, &k, &rng), &tp.srv[3]);
	lb_server_set_up(&tp.pool, &tp.srv[0], true);
	for (int i = 0; i < 3; i++)
		assert_ptr_equal(tp_pick(&tp, &k, &rng), &tp.srv[0]);
	tp_fini(&tp);
}

static void test_defaults(void **unused)
{
	struct lb_params p;

	lb_params_default(&p);
	assert_int_equal(p.retries, 2);
	assert_int_equal(p.table_size, 65537);
	assert_int_equal(p.stick_timeout_ms, 30 * 60000);
	assert_int_equal(p.hash_key, LB_KEY_ADDRESS);
	assert_int_equal(p.hash_method, LB_HASH_MAGLEV);
	assert_false(p.observe);
	assert_int_equal(p.balance_factor, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden_maglev),
		cmocka_unit_test(test_golden_maglev_small_table),
		cmocka_unit_test(test_golden_cookie_values),
		cmocka_unit_test(test_cookie_exact_match),
		cmocka_unit_test(test_rr_model),
		cmocka_unit_test(test_leastconn_model),
		cmocka_unit_test(test_bounded_load_cap_inclusive),
		cmocka_unit_test(test_prefix_key),
		cmocka_unit_test(test_iphash_down_moves_only_its_clients),
		cmocka_unit_test(test_set_weight_takes_effect),
		cmocka_unit_test(test_stick_boundaries),
		cmocka_unit_test(test_stick_pool_counters),
		cmocka_unit_test(test_health_rise_fall_exact),
		cmocka_unit_test(test_health_jitter),
		cmocka_unit_test(test_retries_and_observe),
		cmocka_unit_test(test_backup_use),
		cmocka_unit_test(test_defaults),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
