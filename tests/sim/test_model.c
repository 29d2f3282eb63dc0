/*
 * tether-sim: regression tests for the pod, HPA and accounting defects of
 * issue 14 (1, 4, 6, 7, 8), each failing on the model before the fix.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sim.h"

static struct sim_summary run_csv(struct sim_params *p, FILE *csv)
{
	struct sim_summary s;
	char *err = NULL;

	if (sim_run(p, &s, csv, false, &err) < 0)
		fail_msg("%s", err);
	return s;
}

static struct sim_summary run(struct sim_params *p)
{
	return run_csv(p, NULL);
}

static bool mark_hpa(const struct sim_summary *s, int i, int *from, int *to)
{
	return sscanf(s->marks[i].what, "HPA %d->%d", from, to) == 2;
}

/* 1. A crash every minute (random) with replacements ready 30 s later, for
 * 6 hours: hundreds of pods over the run, failures only in the 30 s after
 * a crash (when three crashes come within 30 s no pod is left for a while). */
static void test_crash_every_minute_for_hours(void **unused)
{
	struct sim_params p;
	struct sim_summary s;
	FILE *csv = tmpfile();
	char line[1 << 16];
	int outside = 0, rows = 0;

	sim_params_default(&p);
	sim_pattern(&p, 'B');
	p.mtbf_s = 60;
	p.replace_s = 25;           /* a replacement ready 30 s after the crash */
	p.startup_s = 5;
	p.duration_s = 6 * 3600;
	s = run_csv(&p, csv);
	rewind(csv);
	assert_non_null(fgets(line, sizeof(line), csv));
	while (fgets(line, sizeof(line), csv)) {
		double t;
		unsigned long long failed;
		bool near = false;

		assert_int_equal(sscanf(line, "%lf,%*d,%*d,%*d,%*u,%*u,%*f,%*u,%*u,%*u,%llu", &t, &failed), 2);
		rows++;
		for (int i = 0; i < s.nmarks && !near; i++)
			near = strstr(s.marks[i].what, "crash") && s.marks[i].t_s > t - p.report_s - 30 &&
			       s.marks[i].t_s <= t;
		outside += failed > 0 && !near;
	}
	fclose(csv);
	print_message("%d pods created, %llu refused, %llu of %llu requests failed, %d of %d intervals with "
	              "failures away from a crash\n", s.pods_created, (unsigned long long)s.pods_refused,
	              (unsigned long long)s.failed, (unsigned long long)s.requests, outside, rows);
	assert_true(s.pods_created > 300);
	assert_int_equal(s.pods_refused, 0);
	assert_true(s.failed < s.requests / 50);
	assert_int_equal(outside, 0);
	assert_int_equal(s.marks_dropped, 0);
}

/* 4. Live sessions are counted once: the sessions live at each crash stay
 * near the steady state (lambda x visit, Little's law), crash after crash. */
static void test_live_sessions_counted_once(void **unused)
{
	struct sim_params p;
	struct sim_summary s;
	double steady;
	int n = 0;

	sim_params_default(&p);
	sim_pattern(&p, 'B');
	p.user_rate = 50;
	p.mtbf_s = 120;
	p.replace_s = 20;
	p.duration_s = 3600;
	s = run(&p);
	double sum = 0;

	steady = p.user_rate * p.pages * p.think_s;     /* users visiting, each with a session */
	for (int i = 0; i < s.nmarks; i++)
		if (strstr(s.marks[i].what, "crash") && s.marks[i].t_s > 300) {
			assert_true(fabs((double)s.marks[i].live - steady) < 0.4 * steady);
			sum += (double)s.marks[i].live;
			n++;
		}
	print_message("%d crashes after 300 s, %.0f live sessions at them on average (~%.0f visiting)\n", n,
	              sum / n, steady);
	assert_true(n >= 10);
	assert_true(sum / n > 0.8 * steady);
}

/* 6. The stabilization window is time: with a 2 s sync, 150 recommendations
 * fit in 300 s, and replicas still hold for 300 s after the load stops. */
static void test_hpa_window_is_time(void **unused)
{
	struct sim_params p;
	struct sim_summary s;
	double t0 = 600, first_drop = -1;

	sim_params_default(&p);
	p.hpa = true;
	p.pods = 2;
	p.user_rate = 40;
	p.pages = 5;
	p.think_s = 1;
	p.service_ms = 100;
	p.concurrency = 4;
	p.startup_s = 10;
	p.stop_at_s = t0;
	p.duration_s = 1400;
	p.hpa_sync_s = 2;
	p.be.health.type = CFG_CHECK_NONE;
	s = run(&p);
	for (int i = 0; i < s.nmarks; i++) {
		int from, to;

		if (mark_hpa(&s, i, &from, &to) && to < from && first_drop < 0)
			first_drop = s.marks[i].t_s;
	}
	print_message("first scale-down at %.0f s (load stopped at %.0f s)\n", first_drop, t0);
	assert_true(first_drop >= t0 + 250);        /* the window's max: noisy 2 s samples before t0 */
}

/* 6. Pods not ready yet count as 0 % when scaling up (replica_calculator.go):
 * one pod at ~85 % with four starting ones is no reason to change. */
static void test_hpa_unready_pods_count_zero(void **unused)
{
	struct sim_params p;
	struct sim_summary s;

	sim_params_default(&p);
	p.hpa = true;
	p.hpa_target = 70;
	p.hpa_max = 10;
	p.pods = 1;
	p.concurrency = 4;
	p.service_ms = 100;
	p.user_rate = 3.6;          /* 36 requests/s x 100 ms / 4 workers = 90 %, ratio 1.29 */
	p.pages = 10;
	p.think_s = 0.1;            /* steady within a second or two */
	p.scale_at_s = 1;
	p.scale_to = 5;
	p.startup_s = 300;
	p.duration_s = 290;
	p.be.health.type = CFG_CHECK_NONE;
	s = run(&p);
	for (int i = 0; i < s.nmarks; i++) {
		int from, to;

		assert_false(mark_hpa(&s, i, &from, &to));
	}
}

/* 6. Without health checks a dead pod leaves at once, and the HPA counts
 * the pods that are left: 3 pods near target, one dies, 2 at ~72 % -> 3. */
static void test_hpa_dead_pod_leaves_count(void **unused)
{
	struct sim_params p;
	struct sim_summary s;

	sim_params_default(&p);
	p.hpa = true;
	p.hpa_min = 1;
	p.pods = 3;
	p.concurrency = 4;
	p.service_ms = 100;
	p.user_rate = 5.76;         /* 57.6 requests/s: 48 % of 3 pods, 72 % of 2 */
	p.pages = 10;
	p.think_s = 2;
	p.crash_at_s = 300;
	p.duration_s = 600;
	p.be.health.type = CFG_CHECK_NONE;
	s = run(&p);
	print_message("pods at the end %d\n", s.pods_final);
	assert_true(s.pods_final >= 3);
}

/* 6. A pod deleted before it is ready leaves at once (it never joins). */
static void test_hpa_deletes_unready_pods(void **unused)
{
	struct sim_params p;
	struct sim_summary s;
	bool up = false, down = false;

	sim_params_default(&p);
	p.hpa = true;
	p.hpa_min = 1;
	p.pods = 2;
	p.concurrency = 4;
	p.service_ms = 100;
	p.user_rate = 60;
	p.pages = 1;
	p.stop_at_s = 40;
	p.startup_s = 400;
	p.hpa_stabilize_s = 0;
	p.duration_s = 600;
	p.be.health.type = CFG_CHECK_NONE;
	s = run(&p);
	for (int i = 0; i < s.nmarks; i++) {
		int from, to;

		if (mark_hpa(&s, i, &from, &to)) {
			up |= to > from;
			down |= to < from;
		}
	}
	print_message("pods at the end %d, %d created\n", s.pods_final, s.pods_created);
	assert_true(up && down);
	assert_int_equal(s.pods_final, 1);
}

/* 6. CPU is the service time only: workers waiting 50 ms on Redis are not
 * busy CPUs, so the HPA does not scale up on them. */
static void test_hpa_cpu_excludes_redis_wait(void **unused)
{
	struct sim_params p;
	struct sim_summary s;

	sim_params_default(&p);
	sim_pattern(&p, 'C');
	p.hpa = true;
	p.hpa_min = 3;
	p.redis_rtt_ms = 50;
	p.service_ms = 5;
	p.concurrency = 4;
	p.user_rate = 15;           /* 50 requests/s per pod: workers 69 % busy, CPUs 6 % */
	p.think_s = 1;
	p.duration_s = 600;
	s = run(&p);
	assert_int_equal(s.nmarks, 0);
	assert_true(s.pods_final >= 3);
}

/* 7. Overload shows as 503/504, not as a mean response of minutes: 100
 * requests/s on 3 pods that serve 60/s. */
static void test_overload_fails_fast(void **unused)
{
	struct sim_params p;
	struct sim_summary s;

	sim_params_default(&p);
	p.concurrency = 2;
	p.service_ms = 100;
	p.queue = 50;
	p.timeout_s = 5;
	s = run(&p);
	print_message("%llu of %llu failed (queue full %llu, timeout %llu), mean response %.0f ms\n",
	              (unsigned long long)s.failed, (unsigned long long)s.requests,
	              (unsigned long long)s.failed_queue_full, (unsigned long long)s.failed_timeout, s.mean_response_ms);
	assert_true(s.failed > s.requests * 3 / 10);
	assert_true(s.failed_queue_full > 0);
	assert_true(s.mean_response_ms < 5000);
}

/* 7. A crash fails the requests in service (about lambda x service of them),
 * not only the queued ones. */
static void test_crash_fails_requests_in_service(void **unused)
{
	struct sim_params p;
	struct sim_summary s;

	sim_params_default(&p);
	sim_pattern(&p, 'B');
	p.user_rate = 3;            /* 30 requests/s, 10/s per pod */
	p.concurrency = 1000;
	p.service_ms = 2000;        /* ~20 in service on each pod */
	p.crash_at_s = 300.5;
	snprintf(p.crash_pod, sizeof(p.crash_pod), "pod2");
	s = run(&p);
	print_message("%llu failed by the crash\n", (unsigned long long)s.failed_crash);
	assert_true(s.failed_crash >= 5 && s.failed_crash <= 60);
}

/* 8. Sessions on pods the HPA removes are lost, and counted. */
static void test_scale_down_loses_sessions(void **unused)
{
	struct sim_params p;
	struct sim_summary s;

	sim_params_default(&p);
	sim_pattern(&p, 'B');
	p.hpa = true;
	p.hpa_min = 1;
	p.pods = 4;
	p.user_rate = 1;
	p.pages = 200;
	p.duration_s = 900;
	s = run(&p);
	print_message("pods %d at the end, %llu sessions lost\n", s.pods_final, (unsigned long long)s.sessions_lost);
	assert_true(s.pods_final < 4);
	assert_true(s.sessions_lost > 0);
}

/* 8. Local sessions expire like Redis keys: with a 10 s TTL and 20 s mean
 * think times, a page finds its session gone with probability e^-0.5. */
static void test_local_sessions_expire(void **unused)
{
	struct sim_params p;
	struct sim_summary s;

	sim_params_default(&p);
	sim_pattern(&p, 'B');
	p.session_ttl_s = 10;
	p.think_s = 20;
	p.duration_s = 3600;
	s = run(&p);
	print_message("miss rate %.4f, e^-0.5 = %.4f\n", s.session_miss_rate, exp(-0.5));
	assert_true(fabs(s.session_miss_rate - exp(-0.5)) < 0.02);
}

/* 8. The CSV has a pair of columns for every pod that ever existed. */
static void test_csv_names_every_pod(void **unused)
{
	struct sim_params p;
	struct sim_summary s;
	FILE *csv = tmpfile();
	char line[1 << 16], *c;
	int cols = 0;

	sim_params_default(&p);
	sim_pattern(&p, 'B');
	p.mtbf_s = 60;
	p.replace_s = 20;
	p.duration_s = 1800;
	s = run_csv(&p, csv);
	rewind(csv);
	assert_non_null(fgets(line, sizeof(line), csv));
	for (c = line; (c = strstr(c, "_requests")); c++)
		cols++;
	fclose(csv);
	print_message("%d pods created, %d pod columns\n", s.pods_created, cols);
	assert_true(s.pods_created > 10);
	assert_int_equal(cols, s.pods_created);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crash_every_minute_for_hours),
		cmocka_unit_test(test_live_sessions_counted_once),
		cmocka_unit_test(test_hpa_window_is_time),
		cmocka_unit_test(test_hpa_unready_pods_count_zero),
		cmocka_unit_test(test_hpa_dead_pod_leaves_count),
		cmocka_unit_test(test_hpa_deletes_unready_pods),
		cmocka_unit_test(test_hpa_cpu_excludes_redis_wait),
		cmocka_unit_test(test_overload_fails_fast),
		cmocka_unit_test(test_crash_fails_requests_in_service),
		cmocka_unit_test(test_scale_down_loses_sessions),
		cmocka_unit_test(test_local_sessions_expire),
		cmocka_unit_test(test_csv_names_every_pod),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
