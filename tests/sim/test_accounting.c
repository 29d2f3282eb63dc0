/*
 * tether-sim failure accounting (issue 15): every counter means what
 * docs/simulator.md says, in every scenario.
 *
 * - Each logged-in request is exactly one of: a local hit, a Redis hit, a
 *   miss (requests_logged_in = local_hits + redis_hits + misses), and each
 *   failed request exactly one of the four failure kinds.
 * - While Redis is down (no pod-local cache), a logged-in request cannot
 *   find its session: it is a miss, never a hit.  Checked exactly: a run
 *   whose Redis goes down at t and stays down is compared with the same
 *   run (same seed) stopped at t.
 * - Pod-memory sessions die with their pod: users whose session was there
 *   miss when they come back, and the sessions are counted as lost.
 */
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

	if (sim_run(p, &s, NULL, false, &err) != 0)
		fail_msg("sim_run: %s", err ? err : "?");
	return s;
}

static void check_consistent(const char *what, const struct sim_summary *s, const struct sim_params *p)
{
	enum store store = p->store;
	/* requests still waiting or in service when the run ends: neither served nor failed */
	uint64_t in_flight = (uint64_t)s->pods_final * (uint64_t)(p->concurrency + p->queue);
	uint64_t kinds = s->failed_no_server + s->failed_queue_full + s->failed_timeout + s->failed_crash;

	print_message("%-28s requests %llu, logged in %llu = local %llu + redis %llu + misses %llu; failed %llu\n",
	              what, (unsigned long long)s->requests, (unsigned long long)s->requests_logged_in,
	              (unsigned long long)s->local_hits, (unsigned long long)s->redis_hits,
	              (unsigned long long)s->misses, (unsigned long long)s->failed);
	if (s->requests_logged_in != s->local_hits + s->redis_hits + s->misses)
		fail_msg("%s: logged-in requests %llu != hits %llu + %llu + misses %llu", what,
		         (unsigned long long)s->requests_logged_in, (unsigned long long)s->local_hits,
		         (unsigned long long)s->redis_hits, (unsigned long long)s->misses);
	if (s->failed != kinds)
		fail_msg("%s: failed %llu != the sum of its kinds %llu", what, (unsigned long long)s->failed,
		         (unsigned long long)kinds);
	/* a request is a first one (a login, made or failed) or a logged-in one,
	 * unless it failed before it was served (or is still in flight) */
	assert_true(s->requests_logged_in + s->logins_failed <= s->requests);
	if (s->requests > s->requests_logged_in + s->sessions_created + s->logins_failed + s->failed + in_flight)
		fail_msg("%s: requests %llu > logged in + created %llu + failed logins %llu + failed", what,
		         (unsigned long long)s->requests, (unsigned long long)s->sessions_created,
		         (unsigned long long)s->logins_failed);
	assert_true(s->sessions_lost <= s->sessions_created);
	if (store == STORE_LOCAL) {
		assert_int_equal(s->redis_hits, 0);
		assert_int_equal(s->redis_reads + s->redis_writes, 0);
		assert_int_equal(s->logins_failed, 0);          /* no Redis to be down */
	}
	if (store == STORE_REDIS)
		assert_int_equal(s->local_hits, 0);             /* no pod-local cache */
	if (s->requests_logged_in)
		assert_true(s->session_miss_rate == (double)s->misses / (double)s->requests_logged_in);
}

static void test_counters_consistent(void **unused)
{
	static const char patterns[] = "ABCD";

	for (int i = 0; i < 4; i++) {
		struct sim_params p;
		struct sim_summary s;
		char what[64];

		/* the pattern, then with a pod crash, then with a Redis crash */
		for (int variant = 0; variant < 3; variant++) {
			sim_params_default(&p);
			sim_pattern(&p, patterns[i]);
			p.duration_s = 400;
			p.user_rate = 20;
			if (variant == 1) {
				p.crash_at_s = 150.5;
				p.replace_s = 20;
			}
			if (variant == 2) {
				if (p.store == STORE_LOCAL)
					continue;
				p.redis_crash_at_s = 150.5;
				p.redis_down_s = 30;
			}
			s = run(&p);
			snprintf(what, sizeof(what), "pattern %c%s", patterns[i],
			         variant == 1 ? " + pod crash" : variant == 2 ? " + Redis crash" : "");
			check_consistent(what, &s, &p);
		}
	}
}

/* Overload and the HPA: the failures of a saturated run are counted once each. */
static void test_counters_consistent_overload_and_hpa(void **unused)
{
	struct sim_params p;
	struct sim_summary s;

	sim_params_default(&p);
	sim_pattern(&p, 'C');
	p.duration_s = 300;
	p.user_rate = 40;
	p.concurrency = 2;
	p.queue = 4;
	p.service_ms = 40;
	p.timeout_s = 1;
	s = run(&p);
	check_consistent("overload", &s, &p);
	assert_true(s.failed_queue_full > 0 || s.failed_timeout > 0);

	sim_params_default(&p);
	sim_pattern(&p, 'D');
	p.hpa = true;
	p.hpa_min = 1;
	p.pods = 2;
	p.duration_s = 900;
	p.mtbf_s = 300;
	p.replace_s = 10;
	s = run(&p);
	check_consistent("hpa + random crashes", &s, &p);
}

/* Redis goes down at T and stays down: every logged-in request after T is
 * a miss; no hit, no session made, no Redis read after T. */
static void test_redis_outage_requests_are_misses(void **unused)
{
	const double T = 300.5;
	struct sim_params p;
	struct sim_summary before, outage;

	sim_params_default(&p);
	sim_pattern(&p, 'C');
	p.user_rate = 20;
	p.duration_s = T;
	before = run(&p);                   /* the same run, stopped when Redis would go */

	sim_params_default(&p);
	sim_pattern(&p, 'C');
	p.user_rate = 20;
	p.duration_s = T + 100;
	p.redis_crash_at_s = T;
	p.redis_down_s = 1000;              /* still down when the run ends */
	outage = run(&p);
	check_consistent("Redis down for the last 100 s", &outage, &p);
	print_message("after the crash: %llu logged-in requests, %llu misses, %llu failed logins\n",
	              (unsigned long long)(outage.requests_logged_in - before.requests_logged_in),
	              (unsigned long long)(outage.misses - before.misses), (unsigned long long)outage.logins_failed);
	assert_true(outage.requests_logged_in - before.requests_logged_in > 1000);
	assert_int_equal(outage.redis_hits, before.redis_hits);
	assert_int_equal(outage.misses - before.misses, outage.requests_logged_in - before.requests_logged_in);
	assert_int_equal(outage.redis_reads, before.redis_reads);
	assert_int_equal(outage.sessions_created, before.sessions_created);
	assert_true(outage.logins_failed > 0);  /* new users cannot log in */
	assert_int_equal(before.logins_failed, 0);
}

/* Pattern B (pod memory + cookie affinity): pod2 crashes and is replaced a
 * second later (a new pod).  The sessions it held are lost, and
 * their users miss when they return. */
static void test_local_sessions_lost_with_their_pod(void **unused)
{
	struct sim_params p;
	struct sim_summary calm, crash;

	sim_params_default(&p);
	sim_pattern(&p, 'B');
	p.user_rate = 20;
	calm = run(&p);
	check_consistent("pattern B", &calm, &p);

	sim_params_default(&p);
	sim_pattern(&p, 'B');
	p.user_rate = 20;
	p.crash_at_s = 300.5;
	snprintf(p.crash_pod, sizeof(p.crash_pod), "pod2");
	p.replace_s = 1;
	crash = run(&p);
	check_consistent("pattern B + pod2 crash", &crash, &p);
	print_message("lost %llu sessions; misses %llu without the crash, %llu with it\n",
	              (unsigned long long)crash.sessions_lost, (unsigned long long)calm.misses,
	              (unsigned long long)crash.misses);
	assert_true(crash.sessions_lost > 100);
	assert_int_equal(calm.sessions_lost, 0);
	/* a session belongs to a user still visiting (it is deleted when the
	 * user leaves), so its user comes back and misses, wherever the
	 * fallback sends it */
	assert_true(crash.misses * 10 >= (calm.misses + crash.sessions_lost) * 9);
	assert_true(crash.misses <= calm.misses + crash.sessions_lost + crash.failed_crash + 50);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counters_consistent),
		cmocka_unit_test(test_counters_consistent_overload_and_hpa),
		cmocka_unit_test(test_redis_outage_requests_are_misses),
		cmocka_unit_test(test_local_sessions_lost_with_their_pod),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
