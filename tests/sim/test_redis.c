/*
 * tether-sim: what a Redis crash costs, checked against an independent
 * calculation (issue 14, defects 2, 3, 5, 7, 8).
 *
 * The simulator reports every Redis write (and every user leaving) through
 * sim_params.trace.  From that stream alone, this file recomputes what real
 * Redis would keep: the fsyncs of aof-everysec (flushAppendOnlyFile: one
 * when a second has passed since the last), the snapshots of rdb (serverCron
 * every 100 ms: a rule `save S N` holds when dirty >= N and
 * unixtime - lastsave > S), the replica of Sentinel (repl_lag behind), and
 * so the sessions of visiting users created after the last durable point:
 * those, and only those, must be lost.
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

#define CRASH_S 400.3217        /* off the 100 ms grid and off the second */

struct trace {
	struct sim_trace_write *w;
	size_t n, cap;
};

static void collect(void *ctx, const struct sim_trace_write *w)
{
	struct trace *t = ctx;

	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 65536;
		t->w = realloc(t->w, t->cap * sizeof(*t->w));
		assert_non_null(t->w);
	}
	t->w[t->n++] = *w;
}

static uint64_t us(double t)
{
	return (uint64_t)llround(t * 1e6);
}

static struct sim_summary run(struct sim_params *p, struct trace *t)
{
	struct sim_summary s;
	char *err = NULL;

	p->trace = collect;
	p->trace_ctx = t;
	assert_int_equal(sim_run(p, &s, NULL, false, &err), 0);
	return s;
}

static void setup(struct sim_params *p, enum persist how)
{
	sim_params_default(p);
	sim_pattern(p, 'C');
	p->user_rate = 50;
	p->persistence = how;
	p->redis_crash_at_s = CRASH_S;
	p->redis_down_s = 5;
	p->duration_s = 500;
}

/* The last durable point (ms) before the crash, from the write stream. */
static int64_t durable_everysec(const struct trace *t)
{
	int64_t fsync = 0;

	for (size_t i = 0; i < t->n && us(t->w[i].t_s) < us(CRASH_S); i++)
		if (t->w[i].what != SIM_W_LEAVE && (int64_t)(us(t->w[i].t_s) / 1000) - fsync >= 1000)
			fsync = (int64_t)(us(t->w[i].t_s) / 1000);
	return fsync;
}

static int64_t durable_rdb(const struct trace *t, const struct sim_params *p)
{
	int64_t saved = -1, lastsave = 0;
	uint64_t dirty = 0, tick = 100000;
	size_t i = 0;

	for (; tick < us(CRASH_S); tick += 100000) {
		for (; i < t->n && us(t->w[i].t_s) < tick; i++)
			dirty += t->w[i].changes;
		for (int r = 0; r < p->nsave; r++)
			if (dirty >= p->save[r].changes && (int64_t)(tick / 1000000) - lastsave > (int64_t)p->save[r].seconds) {
				saved = (int64_t)(tick / 1000);
				lastsave = (int64_t)(tick / 1000000);
				dirty = 0;
				break;
			}
	}
	return saved;
}

/* Sessions of users visiting at the crash, created after `durable` (ms);
 * *visiting gets all sessions of visiting users. */
static long created_after(const struct trace *t, int64_t durable, long *visiting)
{
	int64_t *created = calloc(1 << 22, sizeof(*created));
	long n = 0;

	assert_non_null(created);
	for (size_t k = 0; k < (1 << 22); k++)
		created[k] = -2;
	for (size_t i = 0; i < t->n && us(t->w[i].t_s) < us(CRASH_S); i++) {
		assert_true(t->w[i].user < (1 << 22));
		if (t->w[i].what == SIM_W_CREATE)
			created[t->w[i].user] = (int64_t)(us(t->w[i].t_s) / 1000);
		else if (t->w[i].what == SIM_W_LEAVE)
			created[t->w[i].user] = -2;
	}
	*visiting = 0;
	for (size_t k = 0; k < (1 << 22); k++) {
		*visiting += created[k] != -2;
		n += created[k] != -2 && created[k] > durable;
	}
	free(created);
	return n;
}

static void expect_lost(const struct sim_summary *s, long expected, const char *what)
{
	print_message("%s: lost %llu of %llu, expected %ld\n", what, (unsigned long long)s->sessions_lost,
	              (unsigned long long)s->sessions_at_crash, expected);
	assert_true(labs((long)s->sessions_lost - expected) <= 2);
}

/* aof-everysec: the sessions created since the last fsync (< ~1 s). */
static void test_aof_everysec_loses_the_last_second(void **unused)
{
	struct sim_params p;
	struct trace t = { 0 };
	struct sim_summary s;
	long visiting, expected;
	int64_t d;

	setup(&p, P_AOF_EVERYSEC);
	s = run(&p, &t);
	d = durable_everysec(&t);
	expected = created_after(&t, d, &visiting);
	print_message("last fsync %.3f s before the crash\n", CRASH_S - d / 1000.0);
	expect_lost(&s, expected, "aof-everysec");
	assert_true(CRASH_S - d / 1000.0 <= 1.0 + 0.1);
	assert_true((double)s.sessions_lost <= p.user_rate * 2.0);     /* "about 1-2 s of new sessions" */
	assert_true(s.sessions_at_crash > 1000);
	free(t.w);
}

/* rdb: the sessions created since the last snapshot; refreshed ones survive. */
static void test_rdb_follows_save_points(void **unused)
{
	struct sim_params p;
	struct trace t = { 0 };
	struct sim_summary s;
	long visiting, expected;
	int64_t d;

	setup(&p, P_RDB);
	s = run(&p, &t);
	d = durable_rdb(&t, &p);
	expected = created_after(&t, d, &visiting);
	print_message("last snapshot at %.1f s (crash at %.1f s), %ld visiting\n", d / 1000.0, CRASH_S, visiting);
	assert_true(d > 0);
	expect_lost(&s, expected, "rdb");
	assert_true(expected < visiting * 8 / 10);  /* not "as much as no persistence" */
	/* the 60 s / 10000 changes rule fires: at ~550 changes/s the snapshot is < 62 s old */
	assert_true(CRASH_S - d / 1000.0 < 62);
	free(t.w);
}

/* rdb with only `save 3600 1`: no snapshot in the first hour: all lost. */
static void test_rdb_no_save_point_yet(void **unused)
{
	struct sim_params p;
	struct trace t = { 0 };
	struct sim_summary s;

	setup(&p, P_RDB);
	p.save[0] = (struct sim_save_rule){ 3600, 1 };
	p.nsave = 1;
	s = run(&p, &t);
	assert_int_equal(durable_rdb(&t, &p), -1);
	assert_int_equal(s.sessions_lost, s.sessions_at_crash);
	free(t.w);
}

static void test_always_and_none(void **unused)
{
	struct sim_params p;
	struct trace t = { 0 };
	struct sim_summary always, none;
	long visiting;

	setup(&p, P_AOF_ALWAYS);
	always = run(&p, &t);
	t.n = 0;
	setup(&p, P_NONE);
	none = run(&p, &t);
	expect_lost(&none, created_after(&t, -1, &visiting), "none");
	assert_int_equal(always.sessions_lost, 0);
	assert_int_equal(none.sessions_lost, none.sessions_at_crash);
	free(t.w);
}

/* Sentinel: the replica misses the last repl_lag of writes: sessions created
 * in that second are lost, refreshed ones come back with their older TTL. */
static void test_sentinel_replication_lag(void **unused)
{
	struct sim_params p;
	struct trace t = { 0 };
	struct sim_summary s;
	long visiting;

	setup(&p, P_AOF_EVERYSEC);
	p.sentinel = true;
	p.repl_lag_s = 1;
	s = run(&p, &t);
	expect_lost(&s, created_after(&t, (int64_t)(us(CRASH_S) / 1000) - 1000, &visiting), "sentinel");
	assert_true((double)s.sessions_lost <= p.user_rate * 2.0);
	free(t.w);
}

/* Pattern D: while Redis is down a cache hit writes nothing, and after it
 * is back a lost session is not refreshed back to life by a cache hit
 * (EXPIRE on a missing key does nothing): its next write is a new login. */
static void test_cache_hits_no_phantom_writes(void **unused)
{
	struct sim_params p;
	struct trace t = { 0 };
	struct sim_summary s;
	uint8_t *lost = calloc(1 << 22, 1);
	long created = 0, refreshed_lost = 0;

	setup(&p, P_NONE);
	sim_pattern(&p, 'D');
	p.user_rate = 50;
	p.redis_down_s = 20;
	s = run(&p, &t);
	for (size_t i = 0; i < t.n; i++) {
		const struct sim_trace_write *w = &t.w[i];

		if (w->what == SIM_W_LEAVE) {
			lost[w->user] = 0;
			continue;
		}
		assert_false(w->t_s >= CRASH_S && w->t_s < CRASH_S + p.redis_down_s);
		if (w->t_s < CRASH_S)
			lost[w->user] = 1;      /* persistence none: every session of the moment is lost */
		else if (w->what == SIM_W_CREATE)
			lost[w->user] = 0, created++;
		else if (w->what == SIM_W_REFRESH && lost[w->user])
			refreshed_lost++;
	}
	print_message("after the restart: %ld new logins, %ld refreshes of lost sessions; %llu lost\n", created,
	              refreshed_lost, (unsigned long long)s.sessions_lost);
	assert_int_equal(refreshed_lost, 0);
	assert_true(created > 100);
	free(lost);
	free(t.w);
}

/* While Redis is down a request is a miss or a failed login, never also a
 * new session: sessions_created counts the sessions really written. */
static void test_redis_down_miss_or_new(void **unused)
{
	struct sim_params p;
	struct trace t = { 0 };
	struct sim_summary s;
	uint64_t creates = 0;

	setup(&p, P_AOF_ALWAYS);
	p.redis_down_s = 30;
	s = run(&p, &t);
	for (size_t i = 0; i < t.n; i++)
		creates += t.w[i].what == SIM_W_CREATE;
	print_message("created %llu (written %llu), misses %llu, failed logins %llu\n",
	              (unsigned long long)s.sessions_created, (unsigned long long)creates,
	              (unsigned long long)s.misses, (unsigned long long)s.logins_failed);
	assert_int_equal(s.sessions_created, creates);
	assert_true(s.misses > 0 && s.logins_failed > 0);
	free(t.w);
}

/* Redis' busy share is its commands' cost: 1 / capacity for a round trip's
 * first command, a tenth of that for each pipelined one (every request here
 * is one round trip of two commands). */
static void test_redis_capacity(void **unused)
{
	struct sim_params p;
	struct trace t = { 0 };
	struct sim_summary ok, sat;
	double expect;

	setup(&p, P_AOF_EVERYSEC);
	p.redis_crash_at_s = -1;
	p.redis_ops_per_s = 20000;
	ok = run(&p, &t);
	expect = (double)ok.requests * (1.0 / 20000 + 0.1 / 20000) / p.duration_s;
	print_message("utilisation %.5f, expected %.5f\n", ok.redis_utilisation, expect);
	assert_true(fabs(ok.redis_utilisation - expect) <= 0.02 * expect);
	/* saturated: 500 requests/s x 11 ms > 1 s per s: timeouts, not a huge mean */
	p.redis_ops_per_s = 100;
	p.timeout_s = 5;
	sat = run(&p, &t);
	print_message("saturated: %llu of %llu timed out, mean response %.0f ms\n",
	              (unsigned long long)sat.failed_timeout, (unsigned long long)sat.requests, sat.mean_response_ms);
	assert_true(sat.failed_timeout > sat.requests / 2);
	assert_true(sat.mean_response_ms < 5000);
	free(t.w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_aof_everysec_loses_the_last_second),
		cmocka_unit_test(test_rdb_follows_save_points),
		cmocka_unit_test(test_rdb_no_save_point_yet),
		cmocka_unit_test(test_always_and_none),
		cmocka_unit_test(test_sentinel_replication_lag),
		cmocka_unit_test(test_cache_hits_no_phantom_writes),
		cmocka_unit_test(test_redis_down_miss_or_new),
		cmocka_unit_test(test_redis_capacity),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
