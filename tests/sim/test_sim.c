/*
 * tether-sim validation: each case reproduces a published or derived result
 * (sources in ../../shared/reference/simulation-sources.md, cited per case).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sim.h"

static struct sim_summary run(struct sim_params *p)
{
	struct sim_summary s;

	char *err = NULL;

	assert_int_equal(sim_run(p, &s, NULL, false, &err), 0);
	return s;
}

/* Pattern A: round-robin over 3 pods with pod-memory sessions: a logged-in
 * request finds its session only on the pod that made it: 2/3 miss (the
 * problem statement; ± 1 pp). */
static void test_pattern_a_misses_two_thirds(void **unused)
{
	struct sim_params p;
	struct sim_summary s;

	sim_params_default(&p);
	sim_pattern(&p, 'A');
	p.duration_s = 1800;
	s = run(&p);
	print_message("pattern A miss rate %.4f\n", s.session_miss_rate);
	assert_true(fabs(s.session_miss_rate - 2.0 / 3.0) <= 0.01);
}

/* Patterns C and D: a shared store never misses without failures; D's
 * pod-local cache cuts Redis reads at least 5x against C. */
static void test_patterns_c_d(void **unused)
{
	struct sim_params p;
	struct sim_summary c, d;

	sim_params_default(&p);
	sim_pattern(&p, 'C');
	c = run(&p);
	sim_pattern(&p, 'D');
	d = run(&p);
	print_message("C reads %llu, D reads %llu\n", (unsigned long long)c.redis_reads, (unsigned long long)d.redis_reads);
	assert_int_equal(c.misses, 0);
	assert_int_equal(d.misses, 0);
	assert_true(c.redis_reads >= 5 * (d.redis_reads ? d.redis_reads : 1));
}

/* Remap on N -> N+1 through the core, 10^6 keys: modulo N/(N+1) (4 -> 5:
 * 80 % ± 0.5 pp, sources §3 [D]); Maglev within 20-40 % (V4). */
static double remap(enum lb_hash_method m)
{
	struct lb_pool pool;
	struct lb_params prm;
	struct lb_server srv[5];
	struct lb_rng rng;
	uint8_t *before = malloc(1000000);
	char *err = NULL;
	int moved = 0;

	lb_params_default(&prm);
	prm.hash_method = m;
	assert_int_equal(lb_pool_init(&pool, &lb_algo_iphash, &prm, &err), 0);
	memset(srv, 0, sizeof(srv));
	for (int i = 0; i < 5; i++) {
		snprintf(srv[i].name, sizeof(srv[i].name), "pod%d", i + 1);
		srv[i].weight = 1;
		srv[i].up = true;
	}
	for (int i = 0; i < 4; i++)
		lb_pool_add(&pool, &srv[i]);
	for (uint32_t k = 0; k < 1000000; k++) {
		struct lb_key key = { .addr = { .len = 4 } };
		uint32_t a = k * 2654435761u + 1;

		memcpy(key.addr.bytes, &a, 4);
		before[k] = (uint8_t)lb_pick(&pool, &key, 0, &rng);
	}
	lb_pool_add(&pool, &srv[4]);
	for (uint32_t k = 0; k < 1000000; k++) {
		struct lb_key key = { .addr = { .len = 4 } };
		uint32_t a = k * 2654435761u + 1;

		memcpy(key.addr.bytes, &a, 4);
		moved += pool.servers[lb_pick(&pool, &key, 0, &rng)] != &srv[before[k]];
	}
	lb_pool_fini(&pool);
	free(before);
	return moved / 1e6;
}

static void test_remap_4_to_5(void **unused)
{
	double mod = remap(LB_HASH_MODULO), mag = remap(LB_HASH_MAGLEV);

	print_message("4 -> 5: modulo %.4f, maglev %.4f\n", mod, mag);
	assert_true(fabs(mod - 0.80) <= 0.005);
	assert_true(mag >= 0.20 - 0.003 && mag <= 0.40);
}

/* HPA (sources §1, V1, V2): desired = ceil(current x ratio), tolerance 0.1,
 * scale-up cap max(2c, c+4). */
static void test_hpa_formula(void **unused)
{
	assert_int_equal(sim_hpa_desired(4, 90, 50), 8);
	assert_int_equal(sim_hpa_desired(10, 56, 50), 12);
	assert_int_equal(sim_hpa_desired(10, 54, 50), 10);      /* inside the tolerance */
	assert_int_equal(sim_hpa_desired(10, 55, 50), 11);      /* |1-1.1| = 0.10000000000000009 > 0.1 */
	assert_int_equal(sim_hpa_desired(10, 45, 50), 10);      /* |1-0.9| = 0.09999999999999998 */
	assert_int_equal(sim_hpa_desired(1, 250, 50), 5);       /* ratio 5 */
	assert_int_equal(sim_hpa_scale_up_limit(1), 5);         /* so 1 -> 5 in one step */
	assert_int_equal(sim_hpa_scale_up_limit(8), 16);
}

/* HPA in a run: load drops at t0; replicas hold for the 300 s
 * stabilization window, then fall (V3, ± one sync period). */
static void test_hpa_scale_down_waits(void **unused)
{
	struct sim_params p;
	struct sim_summary s;
	FILE *csv = tmpfile();
	char line[4096], *err = NULL;
	double t0 = 600, first_drop = -1;
	int at_stop = 0;

	sim_params_default(&p);
	p.hpa = true;
	p.hpa_min = 1;
	p.hpa_max = 20;
	p.pods = 2;
	p.user_rate = 40;
	p.pages = 5;
	p.think_s = 1;
	p.service_ms = 100;
	p.concurrency = 4;
	p.startup_s = 10;
	p.stop_at_s = t0;
	p.duration_s = 1400;
	p.report_s = 15;
	p.be.health.type = CFG_CHECK_NONE;
	assert_int_equal(sim_run(&p, &s, csv, false, &err), 0);
	rewind(csv);
	assert_non_null(fgets(line, sizeof(line), csv));
	while (fgets(line, sizeof(line), csv)) {
		double t;
		int up, ready, desired;

		if (sscanf(line, "%lf,%d,%d,%d", &t, &up, &ready, &desired) != 4)
			continue;
		if (t <= t0)
			at_stop = ready;
		else if (first_drop < 0 && ready < at_stop)
			first_drop = t;
	}
	fclose(csv);
	print_message("%d pods at the stop; first scale-down at %.0f s (load stopped at %.0f s)\n", at_stop,
	              first_drop, t0);
	assert_true(at_stop > 2);
	assert_true(first_drop >= t0 + 300 - 15);
	assert_true(first_drop <= t0 + 300 + 120);      /* users drain for ~a minute after the stop */
}

/* Queueing, N = 10, rho = 0.9, exponential service (sources §7, V8): mean
 * response random 10.0 (M/M/1), round-robin 5.66 (E_N/M/1), least
 * connections strictly between 1.67 (M/M/N) and 5.66; ± 5 %. */
static double queueing(const struct lb_algo *algo, enum policy pol)
{
	struct sim_params p;
	struct sim_summary s;

	sim_params_default(&p);
	p.pods = 10;
	p.concurrency = 1;
	p.service_ms = 1000;
	p.pages = 1;
	p.user_rate = 9;            /* rho = 9 / (10 x 1) */
	p.duration_s = 100000;
	p.report_s = 100000;
	p.be.algo = algo;
	p.be.health.type = CFG_CHECK_NONE;
	p.queue = 10000000;         /* the textbook queue: unbounded, nobody gives up */
	p.timeout_s = 1e6;
	p.policy = pol;
	p.seed = 7;
	s = run(&p);
	return s.mean_response_ms / 1000.0;
}

static void test_queueing_n10_rho09(void **unused)
{
	double rnd = queueing(&lb_algo_roundrobin, POL_RANDOM);
	double rr = queueing(&lb_algo_roundrobin, POL_CORE);
	double lc = queueing(&lb_algo_leastconn, POL_CORE);

	print_message("mean response: random %.3f (10.0), roundrobin %.3f (5.66), leastconn %.3f\n", rnd, rr, lc);
	assert_true(fabs(rnd - 10.0) <= 0.5);
	assert_true(fabs(rr - 5.66) <= 5.66 * 0.05);
	assert_true(lc > 1.67 && lc < 5.66);
}

/* Pod crash with pod-memory sessions and affinity: about S/N sessions lost
 * (sources V10 [D]; ± 2 pp of S). */
static void test_pod_crash_loses_s_over_n(void **unused)
{
	struct sim_params p;
	struct sim_summary s;
	double share;

	sim_params_default(&p);
	sim_pattern(&p, 'B');
	p.user_rate = 50;
	p.crash_at_s = 400;
	snprintf(p.crash_pod, sizeof(p.crash_pod), "pod2");
	s = run(&p);
	share = (double)s.sessions_lost / (double)s.sessions_at_crash;
	print_message("lost %llu of %llu sessions (%.4f, 1/N = %.4f)\n", (unsigned long long)s.sessions_lost,
	              (unsigned long long)s.sessions_at_crash, share, 1.0 / 3);
	assert_true(fabs(share - 1.0 / 3) <= 0.02);
	/* the plot's marker: the crash, when it happened */
	assert_int_equal(s.nmarks, 1);
	assert_true(fabs(s.marks[0].t_s - 400) < 0.001);
	assert_string_equal(s.marks[0].what, "pod2 crash");
}

/* Redis crash: aof-always loses no acknowledged write, aof-everysec at most
 * one second of writes, none loses every session (sources §5, V10). */
static struct sim_summary redis_crash(enum persist how)
{
	struct sim_params p;

	sim_params_default(&p);
	sim_pattern(&p, 'C');
	p.user_rate = 50;
	p.persistence = how;
	p.redis_crash_at_s = 300;
	p.redis_down_s = 5;
	return run(&p);
}

static void test_redis_crash_persistence(void **unused)
{
	struct sim_summary always = redis_crash(P_AOF_ALWAYS), every = redis_crash(P_AOF_EVERYSEC),
	                   none = redis_crash(P_NONE);
	double writes_per_s = (double)every.redis_writes / 600.0;

	print_message("lost: aof-always %llu, aof-everysec %llu (<= %.0f writes/s x 1 s), none %llu of %llu\n",
	              (unsigned long long)always.sessions_lost, (unsigned long long)every.sessions_lost,
	              writes_per_s, (unsigned long long)none.sessions_lost, (unsigned long long)none.sessions_at_crash);
	assert_int_equal(always.sessions_lost, 0);
	assert_true(every.sessions_lost > 0 && (double)every.sessions_lost <= writes_per_s * 1.0 * 1.5);
	assert_int_equal(none.sessions_lost, none.sessions_at_crash);
	assert_true(none.sessions_lost > 100);
}

/* ClientIP-style affinity (iphash) keeps pod-memory sessions while
 * addresses are stable; mobile users who change address lose them. */
static void test_address_change_breaks_ip_affinity(void **unused)
{
	struct sim_params p;
	struct sim_summary fixed, mobile;

	sim_params_default(&p);
	sim_pattern(&p, 'B');
	p.be.algo = &lb_algo_iphash;
	fixed = run(&p);
	p.address_change = 0.1;
	mobile = run(&p);
	print_message("iphash miss rate: fixed addresses %.4f, 10%% address changes %.4f\n",
	              fixed.session_miss_rate, mobile.session_miss_rate);
	assert_int_equal(fixed.misses, 0);
	/* a change lands on another of 3 pods 2/3 of the time */
	assert_true(fabs(mobile.session_miss_rate - 0.1 * 2.0 / 3.0) < 0.015);
}

/* Same seed, same bytes. */
/* Every scaling step and every random crash is marked for the plot, in time
 * order, each HPA mark a real change. */
static void test_marks(void **unused)
{
	struct sim_params p;
	struct sim_summary s;
	int hpa = 0, crashes = 0;

	(void)unused;
	sim_params_default(&p);
	sim_pattern(&p, 'C');
	p.hpa = true;
	p.hpa_min = 3;
	p.hpa_max = 12;
	p.hpa_target = 50;
	p.user_rate = 3;
	p.ramp_to = 15;
	p.ramp_s = 600;
	p.mtbf_s = 200;
	p.duration_s = 1200;
	s = run(&p);
	for (int i = 0; i < s.nmarks; i++) {
		int from, to;

		if (i)
			assert_true(s.marks[i].t_s >= s.marks[i - 1].t_s);
		if (sscanf(s.marks[i].what, "HPA %d->%d", &from, &to) == 2) {
			assert_int_not_equal(from, to);
			hpa++;
		}
		crashes += strstr(s.marks[i].what, " crash") != NULL;
	}
	print_message("%d HPA steps, %d random crashes marked\n", hpa, crashes);
	assert_true(hpa >= 2);
	assert_true(crashes >= 2);
}

static void test_deterministic(void **unused)
{
	struct sim_params p;
	struct sim_summary a, b;
	FILE *fa = tmpfile(), *fb = tmpfile();
	char *err = NULL;
	char ba[1 << 16], bb[1 << 16];
	size_t na, nb;

	sim_params_default(&p);
	sim_pattern(&p, 'D');
	p.crash_at_s = 100;
	p.mtbf_s = 200;
	assert_int_equal(sim_run(&p, &a, fa, false, &err), 0);
	assert_int_equal(sim_run(&p, &b, fb, false, &err), 0);
	rewind(fa);
	rewind(fb);
	na = fread(ba, 1, sizeof(ba), fa);
	nb = fread(bb, 1, sizeof(bb), fb);
	assert_int_equal(na, nb);
	assert_memory_equal(ba, bb, na);
	assert_int_equal(a.requests, b.requests);
	assert_int_equal(a.misses, b.misses);
	fclose(fa);
	fclose(fb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pattern_a_misses_two_thirds),
		cmocka_unit_test(test_patterns_c_d),
		cmocka_unit_test(test_remap_4_to_5),
		cmocka_unit_test(test_hpa_formula),
		cmocka_unit_test(test_hpa_scale_down_waits),
		cmocka_unit_test(test_queueing_n10_rho09),
		cmocka_unit_test(test_pod_crash_loses_s_over_n),
		cmocka_unit_test(test_redis_crash_persistence),
		cmocka_unit_test(test_address_change_breaks_ip_affinity),
		cmocka_unit_test(test_marks),
		cmocka_unit_test(test_deterministic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
