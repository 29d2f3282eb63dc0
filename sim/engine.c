/*
 * tether-sim - the engine: sets a run up, plays its events in (time,
 * insertion) order (evq.h), hands each to the model, and reports.
 *
 * A seed reproduces a run exactly: one lb_rng draws everything, and equal
 * times resolve in insertion order.  Nothing here is global: sim_run may
 * run in several threads at once (runs.c).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"

static int fail(char **err, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char **err, int rc, const char *fmt, ...)
{
	va_list ap;
	char *m = malloc(512);

	if (m) {
		va_start(ap, fmt);
		vsnprintf(m, 512, fmt, ap);
		va_end(ap);
	}
	free(*err);
	*err = m;
	return rc;
}

void sim_mark(struct sim *S, int64_t lost, uint64_t live, const char *fmt, ...)
{
	struct sim_mark *m;
	va_list ap;

	if (S->s.nmarks == SIM_MAX_MARKS) {
		S->s.marks_dropped++;
		return;
	}
	m = &S->s.marks[S->s.nmarks++];
	m->t_s = now_s(S);
	m->lost = lost;
	m->live = live;
	va_start(ap, fmt);
	vsnprintf(m->what, sizeof(m->what), fmt, ap);
	va_end(ap);
}

/* The users of the events of a slot about to be played are cold in the
 * cache (megabytes of users, each touched once per think time): fetch them
 * all at once, not one miss at a time.  Plain loads, not prefetch hints:
 * a hint that misses the TLB may be dropped (the users span thousands of
 * pages), a load is not, and the independent loads overlap (measured on
 * the retail peak: 1.5x faster than __builtin_prefetch). */
static void prefetch_slot(struct sim *S)
{
	size_t n;
	const struct evq_event *near = evq_near(&S->q, &n);
	uint32_t sum = 0;

	for (size_t k = 0; k < n; k++) {
		uint32_t kind = EV_KIND(near[k].kind), a = near[k].a, w;

		if (kind == EV_REQUEST) {
			sum += S->users[a].flags;
		} else if (kind == EV_DONE) {   /* the worker's user (the pods' small arrays are hot) */
			w = S->pods[a >> 16].work[a & 0xffff];
			if (w < S->nusers)
				sum += S->users[w].flags;
		}
	}
	S->sink = sum;
}

static void on_arrival(struct sim *S)
{
	const struct sim_params *p = S->p;
	uint32_t uid = user_new(S);

	if (uid != UINT32_MAX)
		route_request(S, uid);
	if (p->stop_at_s < 0 || now_s(S) < p->stop_at_s)
		push(S, now_s(S) + expo(S, 1.0 / sim_arrival_rate(p, now_s(S))), EV_ARRIVAL, 0, 0);
}

static void on_scale(struct sim *S)
{
	int to = S->p->scale_to;

	sim_mark(S, -1, 0, "scale-out to %d", to);
	for (int n = S->spec; n < to; n++)
		pod_new(S, false);
	S->spec = to > S->spec ? to : S->spec;
	S->last_scale_t = now_s(S);
	S->rebalanced = false;
}

static void dispatch(struct sim *S, struct evq_event e)
{
	uint32_t gen = EV_GEN(e.kind);

	switch (EV_KIND(e.kind)) {
	case EV_ARRIVAL:
		on_arrival(S);
		break;
	case EV_REQUEST:
		route_request(S, e.a);
		break;
	case EV_DONE:
		on_done(S, e.a, gen);
		break;
	case EV_TIMEOUT:
		on_timeout(S, e.a, gen);
		break;
	case EV_QTIMEOUT:
		on_queue_timeout(S, (int)e.a, gen);
		break;
	case EV_CHECK:
		on_check(S, (int)e.a, gen);
		break;
	case EV_CRASH:
		if (e.a == UINT32_MAX) {        /* random crash: any live pod */
			pod_crash_random(S);
			push(S, now_s(S) + expo(S, S->p->mtbf_s), EV_CRASH, 0, UINT32_MAX);
		} else {
			int i = pod_find(S, S->p->crash_pod[0] ? S->p->crash_pod : S->names[0]);

			if (i >= 0)
				pod_crash(S, i);
			else
				sim_mark(S, 0, S->live_sessions, "%.20s gone", S->p->crash_pod);
		}
		break;
	case EV_READY:
		pod_ready(S, (int)e.a, gen);
		break;
	case EV_REPLACE:
		pod_new(S, false);
		break;
	case EV_SCALE:
		on_scale(S);
		break;
	case EV_HPA:
		hpa_sync(S);
		break;
	case EV_REPORT:
		report_interval(S);
		break;
	case EV_REDIS_CRASH:
		redis_crash(S);
		break;
	case EV_REDIS_UP:
		redis_up(S);
		break;
	case EV_REDIS_CRON:
		redis_cron(S);
		break;
	case EV_END:
		evq_clear(&S->q);
		break;
	}
}

static void schedule_start(struct sim *S)
{
	const struct sim_params *p = S->p;

	for (int i = 0; i < p->pods; i++)
		pod_new(S, true);
	S->spec = p->pods;
	S->hpa.desired = p->pods;
	push(S, expo(S, 1.0 / sim_arrival_rate(p, 0)), EV_ARRIVAL, 0, 0);
	push(S, p->report_s, EV_REPORT, 0, 0);
	if (p->hpa)
		push(S, p->hpa_sync_s, EV_HPA, 0, 0);
	if (p->crash_at_s >= 0)
		push(S, p->crash_at_s, EV_CRASH, 0, 0);
	if (p->mtbf_s > 0)
		push(S, expo(S, p->mtbf_s), EV_CRASH, 0, UINT32_MAX);
	if (p->redis_crash_at_s >= 0)
		push(S, p->redis_crash_at_s, EV_REDIS_CRASH, 0, 0);
	if (p->persistence == P_RDB && p->store != STORE_LOCAL)
		push_at_us(S, 100000, EV_REDIS_CRON, 0, 0);
	if (p->scale_at_s >= 0)
		push(S, p->scale_at_s, EV_SCALE, 0, 0);
	push(S, p->duration_s, EV_END, 0, 0);
}

static void progress_bar(const struct sim *S, int *shown)
{
	int pct = (int)(100 * now_s(S) / S->p->duration_s);

	if (pct != *shown) {
		fprintf(stderr, "\r[%-50.*s] %3d%%", pct / 2, "##################################################", pct);
		*shown = pct;
	}
}

int sim_run(const struct sim_params *p, struct sim_summary *out, FILE *csv, bool progress, char **err)
{
	struct sim *S = NULL;
	struct timespec w0, w1;
	uint64_t turns = 0;
	int shown = -1, rc;
	bool pool = false, q = false;

	*err = NULL;
	if ((rc = sim_check(p, err, NULL)) < 0)
		return rc;
	clock_gettime(CLOCK_MONOTONIC, &w0);
	if (!(S = calloc(1, sizeof(*S))) || evq_init(&S->q, SLOT_SHIFT) < 0) {
		rc = fail(err, -ENOMEM, "tether-sim: out of memory setting the run up");
		goto out;
	}
	q = true;
	S->p = p;
	S->last_scale_t = -1;
	lb_rng_seed(&S->rng, p->seed);
	sim_expo_init(&S->zig);
	if ((rc = lb_pool_init(&S->pool, p->be.algo, &p->be.params, err)) < 0)
		goto out;
	pool = true;
	redis_init(S);
	schedule_start(S);
	while (S->q.len && !S->nomem) {
		struct evq_event e = evq_pop(&S->q);

		if (S->q.turns != turns) {
			turns = S->q.turns;
			if (!getenv("NOPF")) prefetch_slot(S);
		}
		S->now = e.key >> SEQ_BITS;
		S->now_ms = (uint32_t)(S->now / 1000);
		S->s.events++;
		dispatch(S, e);
		if (progress && (S->s.events & 0xfffff) == 0)
			progress_bar(S, &shown);
	}
	if (progress && shown >= 0)
		fprintf(stderr, "\r%70s\r", "");
	if (S->nomem) {
		rc = fail(err, -ENOMEM, "tether-sim: out of memory at %.0f s of simulated time with %u users "
		          "(estimate before the run: %.0f MB); lower the load or the duration",
		          now_s(S), S->nusers, sim_memory_estimate(p) / 1e6);
		goto out;
	}
	report_finish(S, out);
	clock_gettime(CLOCK_MONOTONIC, &w1);
	out->wall_seconds = (double)(w1.tv_sec - w0.tv_sec) + (double)(w1.tv_nsec - w0.tv_nsec) / 1e9;
	if (csv && (rc = report_write_csv(S, csv)) < 0) {
		rc = fail(err, rc, "tether-sim: writing the CSV: %s", strerror(-rc));
		goto out;
	}
	rc = 0;
out:
	if (S) {
		if (pool)
			lb_pool_fini(&S->pool);
		if (q)
			evq_fini(&S->q);
		pods_fini(S);
		hpa_fini(S);
		report_fini(S);
		free(S->users);
		free(S->free_list);
		free(S);
	}
	return rc;
}
