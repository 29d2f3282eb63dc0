/*
 * Guards of the simulator's failure accounting (docs/simulator.md) against
 * scripts/mutants.py's kind of bug, as invariants that hold in every run:
 *  - Redis takes no write while it is down (no phantom refresh, login or
 *    cart), seen in the write trace;
 *  - every request of a logged-in user is a local hit, a Redis hit or a
 *    miss, exactly one of them;
 *  - a session is created exactly when a CREATE reaches Redis (Redis
 *    stores), and a login while Redis is down fails;
 *  - a pod crash loses the local sessions of its visiting users, counted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sim.h"

struct trace {
	double crash_s, back_s;
	double late_from, late_to;      /* creates in [late_from, late_to) are counted apart */
	uint64_t writes_while_down, creates, leaves, late_creates;
};

static void watch(void *ctx, const struct sim_trace_write *w)
{
	struct trace *t = ctx;

	if (w->what == SIM_W_LEAVE) {
		t->leaves++;
		return;
	}
	t->creates += w->what == SIM_W_CREATE;
	t->late_creates += w->what == SIM_W_CREATE && w->t_s >= t->late_from && w->t_s < t->late_to;
	if (t->crash_s >= 0 && w->t_s > t->crash_s + 1e-6 && w->t_s < t->back_s - 1e-6)
		t->writes_while_down++;
}

static struct sim_summary run(struct sim_params *p, struct trace *t)
{
	struct sim_summary s;
	char *err = NULL;

	p->trace = watch;
	p->trace_ctx = t;
	if (sim_run(p, &s, NULL, false, &err) != 0)
		fail_msg("sim_run: %s", err ? err : "?");
	return s;
}

static void check_identities(const struct sim_params *p, const struct sim_summary *s, const struct trace *t)
{
	print_message("store %d: requests %llu logged-in %llu = local %llu + redis %llu + misses %llu; "
	              "created %llu (CREATE writes %llu), failed logins %llu, lost %llu\n", (int)p->store,
	              (unsigned long long)s->requests, (unsigned long long)s->requests_logged_in,
	              (unsigned long long)s->local_hits, (unsigned long long)s->redis_hits,
	              (unsigned long long)s->misses, (unsigned long long)s->sessions_created,
	              (unsigned long long)t->creates, (unsigned long long)s->logins_failed,
	              (unsigned long long)s->sessions_lost);
	assert_int_equal(s->requests_logged_in, s->local_hits + s->redis_hits + s->misses);
	assert_true(s->requests_logged_in <= s->requests);
	if (p->store != STORE_LOCAL) {
		assert_int_equal(s->sessions_created, t->creates);
		assert_int_equal(t->writes_while_down, 0);
	} else {
		assert_int_equal(s->redis_hits, 0);
		assert_int_equal(s->logins_failed, 0);
	}
}

/* Redis down for 30 s in the middle of a busy run: requests needing it miss,
 * logins fail, nothing is written; the counters add up for every store. */
static void test_redis_outage_accounting(void **unused)
{
	static const char patterns[] = "CD";

	for (int k = 0; patterns[k]; k++) {
		struct sim_params p;
		struct trace t = { 0 };
		struct sim_summary s, calm;

		sim_params_default(&p);
		sim_pattern(&p, patterns[k]);
		p.user_rate = 30;
		p.duration_s = 300;
		p.cart_adds = 0.3;
		p.persistence = P_AOF_ALWAYS;
		t.crash_s = -1;
		calm = run(&p, &t);
		check_identities(&p, &calm, &t);
		assert_int_equal(calm.logins_failed, 0);

		memset(&t, 0, sizeof(t));
		p.redis_crash_at_s = 150.25;
		p.redis_down_s = 30;
		t.crash_s = 150.25;
		t.back_s = 180.25;
		s = run(&p, &t);
		check_identities(&p, &s, &t);
		assert_true(s.logins_failed > 0);
		if (patterns[k] == 'C') {       /* no cache: every request needs Redis, and misses */
			assert_true(s.misses > calm.misses);
			assert_true(s.redis_hits < calm.redis_hits);
		}
		assert_int_equal(s.sessions_lost, 0);  /* aof-always: nothing lost */
	}
}

/* Local sessions (patterns A, B): a pod crash loses those of the visiting
 * users on it, and they count as lost; the requests still add up. */
static void test_pod_crash_loses_local_sessions(void **unused)
{
	static const char patterns[] = "AB";

	for (int k = 0; patterns[k]; k++) {
		struct sim_params p;
		struct trace t = { .crash_s = -1 };
		struct sim_summary s, calm;
		int64_t lost = -1;

		sim_params_default(&p);
		sim_pattern(&p, patterns[k]);
		p.user_rate = 5;
		p.duration_s = 400;
		calm = run(&p, &t);
		check_identities(&p, &calm, &t);
		assert_int_equal(calm.sessions_lost, 0);

		p.crash_at_s = 200.5;
		snprintf(p.crash_pod, sizeof(p.crash_pod), "pod2");
		s = run(&p, &t);
		check_identities(&p, &s, &t);
		for (int i = 0; i < s.nmarks; i++)
			if (strstr(s.marks[i].what, "crash"))
				lost = s.marks[i].lost;
		print_message("pattern %c: %lld lost at the crash, %llu in all, misses %llu (calm %llu)\n", patterns[k],
		              (long long)lost, (unsigned long long)s.sessions_lost, (unsigned long long)s.misses,
		              (unsigned long long)calm.misses);
		assert_true(lost > 0);
		assert_true(s.sessions_lost >= (uint64_t)lost);
		/* with affinity (B), each user who lost a session misses once more */
		if (patterns[k] == 'B') {
			assert_true(s.misses > calm.misses);
			assert_true(s.misses - calm.misses <= s.sessions_lost);
		}
	}
}

/* rdb's `save S N` fires once N changes are there (Redis: dirty >= N):
 * with sparse logins (a CREATE is 2 changes) and a `save 1 2` rule, every
 * session is in a snapshot at most 2.1 s after it was created (the first
 * 100 ms tick more than a whole second after the last save), so a crash
 * loses only the sessions created in the 2.1 s before it. */
static void test_rdb_save_point_threshold(void **unused)
{
	for (uint64_t seed = 1; seed <= 8; seed++) {
		struct sim_params p;
		struct trace t = { .crash_s = -1, .late_from = 587.9, .late_to = 590 };
		struct sim_summary s;

		sim_params_default(&p);
		sim_pattern(&p, 'C');
		p.seed = seed;
		p.user_rate = 0.02;             /* a login every 50 s */
		p.pages = 1000;
		p.think_s = 100000;             /* then silence: no refresh */
		p.cart_adds = 0;
		p.persistence = P_RDB;
		p.save[0] = (struct sim_save_rule){ 1, 2 };
		p.nsave = 1;
		p.duration_s = 600;
		p.redis_crash_at_s = 590;
		p.redis_down_s = 5;
		s = run(&p, &t);
		print_message("seed %llu: %llu sessions at the crash, %llu lost, %llu creates\n", (unsigned long long)seed,
		              (unsigned long long)s.sessions_at_crash, (unsigned long long)s.sessions_lost,
		              (unsigned long long)t.creates);
		assert_true(s.sessions_at_crash >= 3);
		assert_true(s.sessions_lost <= t.late_creates);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_redis_outage_accounting),
		cmocka_unit_test(test_pod_crash_loses_local_sessions),
		cmocka_unit_test(test_rdb_save_point_threshold),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
