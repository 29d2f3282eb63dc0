/*
 * tether-sim - the engine and the model (see sim.h and docs/simulator.md).
 *
 * Events are played in (time, sequence) order (evq.h), so equal times
 * resolve in insertion order and a seed reproduces a run exactly.
 *
 * A user arrives, logs in on the pod that serves its first request, then
 * views `pages` pages with think times in between.  Sessions:
 *  - local (patterns A, B): the session lives in the memory of the pod that
 *    created it; the browser holds that one session id, so a request that
 *    lands on another pod finds nothing and forces a new login there;
 *  - redis (C): every request reads the session from Redis and refreshes its
 *    sliding TTL (one read, one write);
 *  - redis+cache (D): a pod-local cache in front of Redis; a cached session
 *    is served without a Redis read (the TTL refresh is still written).
 * Balancing is lb_pick over an lb_pool whose servers are the pods, with the
 * client's address and cookie as the key, exactly as the daemon does.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "evq.h"
#include "expo.h"
#include "sim.h"

enum ev_kind { EV_ARRIVAL, EV_REQUEST, EV_DONE, EV_CHECK, EV_CRASH, EV_READY, EV_HPA, EV_REPORT,
	EV_REDIS_CRASH, EV_REDIS_UP, EV_RDB_SAVE, EV_SCALE, EV_END };

/*
 * An event's key is the time in µs shifted left by SEQ_BITS, plus an
 * insertion counter: equal times pop in insertion order (deterministic even
 * when the counter wraps), and one integer compare orders two events.  38
 * bits of µs cover 76 hours: sim_run refuses longer runs.  The queue plays
 * slots of 16384 µs (evq.h).
 */
#define SEQ_BITS 26
#define SLOT_SHIFT (SEQ_BITS + 14)
#define MAX_DURATION_S ((double)(1ull << (64 - SEQ_BITS)) / US - 3600)

/* One cache line per user: a request touches its user once per think time,
 * long after the line left the cache, so it costs one miss, not two. */
struct user {
	_Alignas(64) double redis_expiry;   /* s; 0: no session in Redis */
	double arrive_t;            /* s: when the current request was sent */
	double last_write;          /* s */
	double cache_until;         /* s: D's cache entry in cache_pod */
	uint32_t addr;
	uint32_t session_epoch;     /* epoch of session_pod when the session was made */
	uint32_t cache_epoch;
	int16_t session_pod;        /* -1: none */
	int16_t cache_pod;
	int16_t cookie_pod;         /* affinity cookie: the pod it names, -1 none */
	uint16_t pages_left;
	uint8_t logged_in;
	uint8_t active;
};

struct pod {
	struct lb_server lb;
	struct hc_state hc;
	bool exists, alive, ready, draining;
	uint32_t epoch;             /* bumped on crash: local sessions die */
	int busy;
	uint32_t *queue;            /* users waiting, ring */
	uint32_t qhead, qlen, qcap;
	double busy_us, last_change;/* CPU time integral */
	double busy_at_sync;
	double ready_since;
	uint64_t requests, interval_requests;
	uint64_t sessions;          /* live local sessions here */
};

struct sim {
	const struct sim_params *p;
	struct lb_rng rng;
	struct sim_expo zig;        /* exponential variates */
	struct lb_pool pool;
	struct pod pods[SIM_MAX_PODS];
	int npods;                  /* slots used */
	struct evq q;
	uint64_t seq, now;          /* µs */
	struct user *users;
	uint32_t nusers, ucap, free_head;
	uint32_t *free_list;
	uint32_t nfree;
	bool redis_up;
	double last_rdb_save;
	double redis_write_rate_est;
	/* HPA */
	double rec_t[64];
	int rec_v[64];
	int nrec;
	int hpa_desired;
	/* stats */
	struct sim_summary s;
	double resp_sum;
	uint64_t resp_n;
	uint64_t iv_requests, iv_misses, iv_local, iv_redis, iv_redis_ops, iv_failed;
	double last_scale_t;
	bool rebalanced;
	FILE *csv;
	uint64_t live_sessions;
};

static double now_s(const struct sim *S)
{
	return S->now / US;
}

static double expo(struct sim *S, double mean)
{
	return mean * sim_expo_draw(&S->zig, &S->rng);
}

/* Arrival rate at time t (users/s): constant, a linear ramp, or a day
 * curve whose mean over 24 h is user_rate and whose peak is 1.8 x. */
static double arrival_rate(const struct sim *S, double t)
{
	const struct sim_params *p = S->p;

	if (p->daily)
		return p->user_rate * (1.0 - 0.8 * cos(2 * M_PI * (t - 4 * 3600.0) / 86400.0));
	if (p->ramp_s > 0)
		return p->user_rate + (p->ramp_to - p->user_rate) * fmin(1.0, t / p->ramp_s);
	return p->user_rate;
}

/* --- events --- */

static void push(struct sim *S, double at_s, enum ev_kind kind, uint32_t a)
{
	evq_push(&S->q, ((uint64_t)(at_s * US) << SEQ_BITS) | (S->seq++ & ((1u << SEQ_BITS) - 1)), kind, a);
}

/* Records a marker for the plot (printf-style label). */
__attribute__((format(printf, 2, 3)))
static void mark(struct sim *S, const char *fmt, ...)
{
	struct sim_mark *m;
	va_list ap;

	if (S->s.nmarks == SIM_MAX_MARKS) {
		S->s.marks_dropped++;
		return;
	}
	m = &S->s.marks[S->s.nmarks++];
	m->t_s = now_s(S);
	va_start(ap, fmt);
	vsnprintf(m->what, sizeof(m->what), fmt, ap);
	va_end(ap);
}

/* --- pods --- */

static void pod_account(struct sim *S, struct pod *pd)
{
	double t = (double)S->now;

	pd->busy_us += pd->busy * (t - pd->last_change);
	pd->last_change = t;
}

static int pod_new(struct sim *S, bool ready_now)
{
	int i = S->npods;
	struct pod *pd;

	if (i >= SIM_MAX_PODS)
		return -1;
	pd = &S->pods[S->npods++];
	memset(pd, 0, sizeof(*pd));
	snprintf(pd->lb.name, sizeof(pd->lb.name), "%s",
	         i < S->p->be.nservers ? S->p->be.servers[i].name : "");
	if (!pd->lb.name[0])
		snprintf(pd->lb.name, sizeof(pd->lb.name), "pod%d", i + 1);
	pd->lb.weight = i < S->p->be.nservers ? S->p->be.servers[i].weight : 1;
	pd->lb.data = pd;
	pd->exists = true;
	pd->alive = true;
	pd->last_change = (double)S->now;
	if (ready_now)
		push(S, now_s(S), EV_READY, (uint32_t)i);
	else
		push(S, now_s(S) + S->p->startup_s, EV_READY, (uint32_t)i);
	return i;
}

static void pod_ready(struct sim *S, int i)
{
	struct pod *pd = &S->pods[i];

	if (!pd->exists || pd->ready)
		return;
	pd->ready = true;
	pd->ready_since = now_s(S);
	lb_server_health_init(&S->pool, &pd->lb, true);
	lb_pool_add(&S->pool, &pd->lb);
	if (S->p->be.health.type != CFG_CHECK_NONE)
		push(S, now_s(S) + hc_next_delay_ms(&S->p->be.params.health, &S->rng) / 1000.0, EV_CHECK, (uint32_t)i);
}

static void pod_remove(struct sim *S, struct pod *pd)
{
	if (pd->lb.index >= 0 && pd->ready && pd->lb.active == 0) {
		lb_pool_del(&S->pool, &pd->lb);
		pd->exists = false;
		pd->ready = false;
	}
}

static int pods_ready(const struct sim *S)
{
	int n = 0;

	for (int i = 0; i < S->npods; i++)
		n += S->pods[i].ready && !S->pods[i].draining;
	return n;
}

/* --- users and requests --- */

static uint32_t user_new(struct sim *S)
{
	uint32_t id;
	struct user *u;

	if (S->nfree) {
		id = S->free_list[--S->nfree];
	} else {
		if (S->nusers == S->ucap) {
			struct user *nu;

			S->ucap = S->ucap ? S->ucap * 2 : 4096;
			nu = aligned_alloc(_Alignof(struct user), S->ucap * sizeof(*S->users));
			S->free_list = realloc(S->free_list, S->ucap * sizeof(*S->free_list));
			if (!nu || !S->free_list)
				abort();
			if (S->users)
				memcpy(nu, S->users, S->nusers * sizeof(*S->users));
			free(S->users);
			S->users = nu;
		}
		id = S->nusers++;
	}
	u = &S->users[id];
	memset(u, 0, sizeof(*u));
	u->session_pod = u->cache_pod = u->cookie_pod = -1;
	u->active = 1;
	u->addr = S->p->users_per_address > 1 ? (uint32_t)(lb_rng_next(&S->rng) % (S->nusers / S->p->users_per_address + 1))
	                                     : (uint32_t)lb_rng_next(&S->rng);
	/* a geometric number of pages with the configured mean, by inversion:
	 * P(n > k) = (1 - q)^k, so n = 1 + floor(ln U / ln(1 - q)) */
	{
		double q = 1.0 / (S->p->pages < 1 ? 1 : S->p->pages);
		double n = q >= 1 ? 1 : 1 + floor(log(1.0 - lb_rng_double(&S->rng)) / log1p(-q));

		u->pages_left = (uint16_t)fmin(n, 60000);
	}
	return id;
}

static void user_leave(struct sim *S, uint32_t id)
{
	struct user *u = &S->users[id];

	if (u->session_pod >= 0 && S->pods[u->session_pod].epoch == u->session_epoch &&
	    S->pods[u->session_pod].sessions)
		S->pods[u->session_pod].sessions--;
	if (u->logged_in && S->live_sessions)
		S->live_sessions--;
	u->active = 0;
	S->free_list[S->nfree++] = id;
}

static void set_local_session(struct sim *S, struct user *u, int pod)
{
	if (u->session_pod >= 0 && S->pods[u->session_pod].epoch == u->session_epoch &&
	    S->pods[u->session_pod].sessions)
		S->pods[u->session_pod].sessions--;
	u->session_pod = (int16_t)pod;
	u->session_epoch = S->pods[pod].epoch;
	S->pods[pod].sessions++;
}

static void redis_write(struct sim *S, struct user *u)
{
	S->s.redis_writes++;
	S->iv_redis_ops++;
	u->redis_expiry = now_s(S) + S->p->session_ttl_s;
	u->last_write = now_s(S);
}

/* The session logic of one request served by pod i. */
static void serve_session(struct sim *S, struct user *u, int i)
{
	struct pod *pd = &S->pods[i];
	bool first = !u->logged_in, found = false;

	if (!first) {
		S->s.requests_logged_in++;
		switch (S->p->store) {
		case STORE_LOCAL:
			found = u->session_pod == i && u->session_epoch == pd->epoch;
			if (found) {
				S->s.local_hits++;
				S->iv_local++;
			}
			break;
		case STORE_REDIS_CACHE:
			if (u->cache_pod == i && u->cache_epoch == pd->epoch && now_s(S) < u->cache_until) {
				found = true;
				S->s.local_hits++;
				S->iv_local++;
				redis_write(S, u);      /* the sliding TTL is still refreshed */
				break;
			}
			/* not cached here: read Redis */
			/* FALLTHROUGH */
		case STORE_REDIS:
			if (!S->redis_up)
				break;
			S->s.redis_reads++;
			S->iv_redis_ops++;
			found = u->redis_expiry > now_s(S);
			if (found) {
				S->s.redis_hits++;
				S->iv_redis++;
				redis_write(S, u);
				if (S->p->store == STORE_REDIS_CACHE) {
					u->cache_pod = (int16_t)i;
					u->cache_epoch = pd->epoch;
					u->cache_until = now_s(S) + S->p->cache_ttl_s;
				}
			}
			break;
		}
		if (!found) {
			S->s.misses++;
			S->iv_misses++;
		}
	}
	if (first || !found) {          /* (re)login: a new session on this pod / in Redis */
		S->s.sessions_created++;
		if (first) {
			u->logged_in = 1;
			S->live_sessions++;
			if (S->live_sessions > S->s.live_sessions_peak)
				S->s.live_sessions_peak = S->live_sessions;
		}
		if (S->p->store == STORE_LOCAL) {
			set_local_session(S, u, i);
		} else if (S->redis_up) {
			redis_write(S, u);
			if (S->p->store == STORE_REDIS_CACHE) {
				u->cache_pod = (int16_t)i;
				u->cache_epoch = pd->epoch;
				u->cache_until = now_s(S) + S->p->cache_ttl_s;
			}
		}
	}
	{
		struct lb_key k = { .cookie = u->cookie_pod >= 0 ? S->pods[u->cookie_pod].lb.cookie : NULL,
		                    .cookie_len = LB_COOKIE_LEN };

		if (lb_cookie_needed(&S->pool, &k, &pd->lb))
			u->cookie_pod = (int16_t)i;     /* the response carried a new cookie */
	}
}

static void start_service(struct sim *S, int i, uint32_t uid)
{
	struct pod *pd = &S->pods[i];
	double svc = expo(S, S->p->service_ms / 1000.0);

	if (S->p->store != STORE_LOCAL)
		svc += S->p->redis_rtt_ms / 1000.0;     /* one round trip per request */
	pod_account(S, pd);
	pd->busy++;
	serve_session(S, &S->users[uid], i);
	push(S, now_s(S) + svc, EV_DONE, (uint32_t)i | (uid << 6));
}

static void next_request(struct sim *S, uint32_t uid)
{
	struct user *u = &S->users[uid];

	if (--u->pages_left == 0) {
		user_leave(S, uid);
		return;
	}
	push(S, now_s(S) + expo(S, S->p->think_s), EV_REQUEST, uid);
}

/* The next attempt of a request: the core's lb_attempt (the daemon's own
 * choice and retry rule), or for validation a uniformly random reference
 * policy that opens the attempt the same way. */
static int attempt(struct sim *S, struct lb_key *k)
{
	int cand[SIM_MAX_PODS], n = 0, idx;

	if (S->p->policy == POL_CORE)
		return lb_attempt(&S->pool, k, S->now / 1000, &S->rng);
	if (!lb_retry_allowed(&S->pool, k))
		return -1;
	for (int i = 0; i < S->pool.nservers; i++)
		if (lb_server_eligible(&S->pool, S->pool.servers[i]) && !lb_key_tried(k, S->pool.servers[i]->id))
			cand[n++] = i;
	if (!n)
		return -1;
	idx = cand[lb_rng_below(&S->rng, (uint32_t)n)];
	lb_key_add_tried(k, S->pool.servers[idx]);
	lb_conn_open(&S->pool, S->pool.servers[idx]);
	return idx;
}

static void on_request(struct sim *S, uint32_t uid)
{
	struct user *u = &S->users[uid];
	struct lb_key k;

	memset(&k, 0, sizeof(k));
	k.addr.len = 4;
	memcpy(k.addr.bytes, &u->addr, 4);
	if (u->cookie_pod >= 0) {
		k.cookie = S->pods[u->cookie_pod].lb.cookie;
		k.cookie_len = LB_COOKIE_LEN;
	}
	if (S->p->address_change > 0 && u->logged_in && lb_rng_double(&S->rng) < S->p->address_change) {
		u->addr = (uint32_t)lb_rng_next(&S->rng);       /* a mobile user moved networks */
		memcpy(k.addr.bytes, &u->addr, 4);
	}
	u->arrive_t = now_s(S);
	S->s.requests++;
	S->iv_requests++;
	for (;;) {
		int idx = attempt(S, &k);
		struct pod *pd;

		if (idx < 0)
			break;
		pd = S->pool.servers[idx]->data;
		if (!pd->alive) {           /* crashed but not yet marked down: the connect fails */
			lb_attempt_failed(&S->pool, &pd->lb);
			continue;
		}
		lb_server_observed(&S->pool, &pd->lb, true);
		pd->requests++;
		pd->interval_requests++;
		if (pd->busy < S->p->concurrency) {
			start_service(S, (int)(pd - S->pods), uid);
		} else {
			if (pd->qlen == pd->qcap) {
				uint32_t ncap = pd->qcap ? pd->qcap * 2 : 64, *q = malloc(ncap * sizeof(*q));

				if (!q)
					abort();
				for (uint32_t j = 0; j < pd->qlen; j++)
					q[j] = pd->queue[(pd->qhead + j) % pd->qcap];
				free(pd->queue);
				pd->queue = q;
				pd->qcap = ncap;
				pd->qhead = 0;
			}
			pd->queue[(pd->qhead + pd->qlen++) % pd->qcap] = uid;
		}
		return;
	}
	S->s.failed++;
	S->iv_failed++;
	next_request(S, uid);
}

static void on_done(struct sim *S, uint32_t a)
{
	int i = (int)(a & 63);
	uint32_t uid = a >> 6;
	struct pod *pd = &S->pods[i];

	pod_account(S, pd);
	pd->busy--;
	if (pd->lb.index >= 0)
		lb_conn_close(&S->pool, &pd->lb);
	S->resp_sum += now_s(S) - S->users[uid].arrive_t;
	S->resp_n++;
	if (pd->qlen && pd->alive) {
		uint32_t next = pd->queue[pd->qhead];

		pd->qhead = (pd->qhead + 1) % pd->qcap;
		pd->qlen--;
		start_service(S, i, next);
	}
	if (pd->draining)
		pod_remove(S, pd);
	next_request(S, uid);
}

/* --- failures --- */

static void pod_crash(struct sim *S, int i)
{
	struct pod *pd = &S->pods[i];

	if (!pd->exists || !pd->alive)
		return;
	S->s.sessions_at_crash = S->live_sessions;
	mark(S, "%s crash", pd->lb.name);
	pd->alive = false;
	pd->epoch++;
	S->s.sessions_lost += pd->sessions;     /* local sessions die with the pod */
	S->live_sessions -= pd->sessions < S->live_sessions ? pd->sessions : S->live_sessions;
	pd->sessions = 0;
	/* queued requests fail; their users go on */
	while (pd->qlen) {
		uint32_t uid = pd->queue[pd->qhead];

		pd->qhead = (pd->qhead + 1) % pd->qcap;
		pd->qlen--;
		lb_conn_close(&S->pool, &pd->lb);
		S->s.failed++;
		next_request(S, uid);
	}
	if (S->p->be.health.type == CFG_CHECK_NONE)     /* nothing would notice: model an instant eviction */
		lb_server_set_up(&S->pool, &pd->lb, false);
	if (S->p->replace_s > 0)
		push(S, now_s(S) + S->p->replace_s, EV_SCALE, 1000 + (uint32_t)i);
}

static void on_check(struct sim *S, int i)
{
	struct pod *pd = &S->pods[i];

	if (!pd->exists || !pd->ready)
		return;
	lb_server_checked(&S->pool, &pd->lb, pd->alive);
	if (!pd->alive && !pd->lb.up && pd->lb.active == 0) {
		pod_remove(S, pd);              /* the dead pod leaves the endpoints */
		return;
	}
	push(S, now_s(S) + hc_next_delay_ms(&S->p->be.params.health, &S->rng) / 1000.0, EV_CHECK, (uint32_t)i);
}

static void redis_crash(struct sim *S)
{
	double t = now_s(S), since;

	switch (S->p->persistence) {
	case P_AOF_ALWAYS:
		since = INFINITY;               /* every acknowledged write was fsynced */
		break;
	case P_AOF_EVERYSEC:
		since = t - 1.0;                /* redis persistence.md: "you may lose 1 second of data" */
		break;
	case P_RDB:
		since = S->last_rdb_save;
		break;
	default:
		since = -INFINITY;              /* nothing survives */
		break;
	}
	if (S->p->sentinel)                 /* the replica lags the master by repl_lag */
		since = t - S->p->repl_lag_s;
	S->s.sessions_at_crash = 0;
	for (uint32_t id = 0; id < S->nusers; id++) {
		struct user *u = &S->users[id];

		S->s.sessions_at_crash += u->active && u->redis_expiry > t;
		if (u->active && u->redis_expiry > t && u->last_write > since) {
			u->redis_expiry = 0;
			S->s.sessions_lost++;
		}
	}
	S->redis_up = false;
	mark(S, "Redis crash");
	push(S, t + (S->p->sentinel ? S->p->down_after_s + S->p->failover_s : S->p->redis_down_s), EV_REDIS_UP, 0);
}

/* RDB save rules "save 3600 1 300 100 60 10000" (redis.conf >= 7): the
 * first rule whose change count is reached in its window. */
static double rdb_period(const struct sim *S, double writes_per_s)
{
	if (writes_per_s * 60 >= 10000)
		return 60;
	if (writes_per_s * 300 >= 100)
		return 300;
	return 3600;
}

/* --- HPA --- */

int sim_hpa_desired(int current, int util_percent, double target_percent)
{
	double ratio = util_percent / target_percent;

	if (fabs(1.0 - ratio) <= 0.1)       /* HorizontalPodAutoscalerTolerance */
		return current;
	return (int)ceil(ratio * current);
}

int sim_hpa_scale_up_limit(int current)
{
	/* default behavior: 100 % or 4 pods per 15 s, selectPolicy Max */
	return current * 2 > current + 4 ? current * 2 : current + 4;
}

static void on_hpa(struct sim *S)
{
	double busy = 0, cap = 0, t = now_s(S);
	int ready = pods_ready(S), desired, current = 0, util;

	for (int i = 0; i < S->npods; i++) {
		struct pod *pd = &S->pods[i];

		if (!pd->exists || pd->draining)
			continue;
		current++;
		pod_account(S, pd);
		if (pd->ready && pd->alive) {
			busy += pd->busy_us - pd->busy_at_sync;
			cap += S->p->concurrency * S->p->hpa_sync_s * US;
		}
		pd->busy_at_sync = pd->busy_us;
	}
	util = cap > 0 ? (int)(busy * 100 / cap) : 0;   /* a whole percent, as the metrics API */
	/* replica_calculator.go: ceil(ratio x ready pods); inside the
	 * tolerance the recommendation is the current replica count */
	desired = sim_hpa_desired(ready ? ready : 1, util, S->p->hpa_target);
	if (desired == (ready ? ready : 1))
		desired = current;
	if (desired > current)
		desired = desired < sim_hpa_scale_up_limit(current) ? desired : sim_hpa_scale_up_limit(current);
	/* scale-down stabilization: the highest recommendation in the window */
	if (S->nrec == 64) {
		memmove(S->rec_t, S->rec_t + 1, 63 * sizeof(double));
		memmove(S->rec_v, S->rec_v + 1, 63 * sizeof(int));
		S->nrec--;
	}
	S->rec_t[S->nrec] = t;
	S->rec_v[S->nrec++] = desired;
	if (desired < current)
		for (int j = 0; j < S->nrec; j++)
			if (S->rec_t[j] > t - S->p->hpa_stabilize_s && S->rec_v[j] > desired)
				desired = S->rec_v[j];
	if (desired < S->p->hpa_min)
		desired = S->p->hpa_min;
	if (desired > S->p->hpa_max)
		desired = S->p->hpa_max;
	S->hpa_desired = desired;
	if (desired != current)
		mark(S, "HPA %d->%d", current, desired);
	if (desired > current) {
		for (int n = current; n < desired; n++)
			pod_new(S, false);
		S->last_scale_t = t;
		S->rebalanced = false;
	} else if (desired < current) {
		for (int i = S->npods - 1; i >= 0 && current > desired; i--)
			if (S->pods[i].exists && !S->pods[i].draining) {
				S->pods[i].draining = true;
				lb_server_set_admin(&S->pool, &S->pods[i].lb, LB_ADMIN_DRAIN);
				pod_remove(S, &S->pods[i]);
				current--;
			}
	}
	push(S, t + S->p->hpa_sync_s, EV_HPA, 0);
}

/* --- reporting --- */

static void csv_header(struct sim *S)
{
	int maxp = S->p->hpa ? S->p->hpa_max : S->p->pods;

	if (S->p->scale_to > maxp)
		maxp = S->p->scale_to;
	if (maxp > SIM_MAX_PODS)
		maxp = SIM_MAX_PODS;
	fprintf(S->csv, "time_s,pods_up,pods_ready,hpa_desired,requests,misses,miss_rate,local_hits,redis_hits,"
	        "redis_ops,failed,live_sessions");
	for (int i = 0; i < maxp; i++)
		fprintf(S->csv, ",pod%d_requests,pod%d_sessions", i + 1, i + 1);
	fprintf(S->csv, "\n");
}

static void on_report(struct sim *S)
{
	int up = 0, maxp = S->p->hpa ? S->p->hpa_max : S->p->pods;
	double mean = 0, mx = 0;
	int n = 0;

	if (S->p->scale_to > maxp)
		maxp = S->p->scale_to;
	if (maxp > SIM_MAX_PODS)
		maxp = SIM_MAX_PODS;
	for (int i = 0; i < S->npods; i++)
		up += S->pods[i].exists && S->pods[i].alive;
	for (int i = 0; i < S->npods; i++)
		if (S->pods[i].ready && S->pods[i].alive && !S->pods[i].draining) {
			mean += (double)S->pods[i].interval_requests;
			mx = S->pods[i].interval_requests > mx ? (double)S->pods[i].interval_requests : mx;
			n++;
		}
	if (n && !S->rebalanced && S->last_scale_t >= 0 && mean > 0 && mx / (mean / n) < 1.2) {
		S->s.rebalance_seconds = now_s(S) - S->last_scale_t;
		S->rebalanced = true;
	}
	if (S->csv) {
		fprintf(S->csv, "%.0f,%d,%d,%d,%llu,%llu,%.4f,%llu,%llu,%llu,%llu,%llu", now_s(S), up, pods_ready(S),
		        S->hpa_desired, (unsigned long long)S->iv_requests, (unsigned long long)S->iv_misses,
		        S->iv_requests ? (double)S->iv_misses / (double)S->iv_requests : 0.0,
		        (unsigned long long)S->iv_local, (unsigned long long)S->iv_redis,
		        (unsigned long long)S->iv_redis_ops, (unsigned long long)S->iv_failed,
		        (unsigned long long)S->live_sessions);
		for (int i = 0; i < maxp; i++)
			fprintf(S->csv, ",%llu,%llu", i < S->npods ? (unsigned long long)S->pods[i].interval_requests : 0ull,
			        i < S->npods ? (unsigned long long)S->pods[i].sessions : 0ull);
		fprintf(S->csv, "\n");
	}
	for (int i = 0; i < S->npods; i++)
		S->pods[i].interval_requests = 0;
	S->iv_requests = S->iv_misses = S->iv_local = S->iv_redis = S->iv_redis_ops = S->iv_failed = 0;
	push(S, now_s(S) + S->p->report_s, EV_REPORT, 0);
}

static void finish(struct sim *S, struct sim_summary *out)
{
	double sum = 0, sq = 0, mx = 0;
	int n = 0;

	for (int i = 0; i < S->npods; i++) {
		struct pod *pd = &S->pods[i];
		double rate;

		if (!pd->exists || !pd->ready || !pd->alive)
			continue;
		rate = pd->requests / fmax(1e-9, now_s(S) - pd->ready_since);
		sum += rate;
		sq += rate * rate;
		mx = rate > mx ? rate : mx;
		n++;
	}
	S->s.pods_final = n;
	if (n && sum > 0) {
		double mean = sum / n;

		S->s.load_max_over_mean = mx / mean;
		S->s.load_stddev = sqrt(fmax(0, sq / n - mean * mean)) / mean;
	}
	S->s.session_miss_rate = S->s.requests_logged_in ? (double)S->s.misses / (double)S->s.requests_logged_in : 0;
	S->s.local_hit_rate = S->s.requests_logged_in ? (double)S->s.local_hits / (double)S->s.requests_logged_in : 0;
	S->s.redis_hit_rate = S->s.requests_logged_in ? (double)S->s.redis_hits / (double)S->s.requests_logged_in : 0;
	S->s.redis_ops_per_sec = (double)(S->s.redis_reads + S->s.redis_writes) / fmax(1e-9, now_s(S));
	S->s.mean_response_ms = S->resp_n ? S->resp_sum / (double)S->resp_n * 1000.0 : 0;
	*out = S->s;
}

int sim_run(const struct sim_params *p, struct sim_summary *out, FILE *csv, bool progress)
{
	struct sim *S = calloc(1, sizeof(*S));
	struct timespec w0, w1;
	char *err = NULL;
	int shown = -1;
	uint64_t turns = 0;

	if (!S)
		return -1;
	if (p->duration_s > MAX_DURATION_S) {
		fprintf(stderr, "tether-sim: duration at most %.0f h\n", MAX_DURATION_S / 3600);
		free(S);
		return -1;
	}
	clock_gettime(CLOCK_MONOTONIC, &w0);
	S->p = p;
	S->csv = csv;
	S->redis_up = true;
	S->last_scale_t = -1;
	S->s.rebalance_seconds = 0;
	lb_rng_seed(&S->rng, p->seed);
	sim_expo_init(&S->zig);
	if (evq_init(&S->q, SLOT_SHIFT) < 0) {
		fprintf(stderr, "tether-sim: out of memory\n");
		free(S);
		return -1;
	}
	if (lb_pool_init(&S->pool, p->be.algo, &p->be.params, &err) < 0) {
		fprintf(stderr, "tether-sim: %s\n", err);
		free(err);
		evq_fini(&S->q);
		free(S);
		return -1;
	}
	for (int i = 0; i < p->pods && i < SIM_MAX_PODS; i++)
		pod_new(S, true);
	S->hpa_desired = p->pods;
	if (csv)
		csv_header(S);
	push(S, expo(S, 1.0 / arrival_rate(S, 0)), EV_ARRIVAL, 0);
	push(S, p->report_s, EV_REPORT, 0);
	if (p->hpa)
		push(S, p->hpa_sync_s, EV_HPA, 0);
	if (p->crash_at_s >= 0)
		push(S, p->crash_at_s, EV_CRASH, (uint32_t)p->crash_pod);
	if (p->mtbf_s > 0)
		push(S, expo(S, p->mtbf_s), EV_CRASH, UINT32_MAX);
	if (p->redis_crash_at_s >= 0)
		push(S, p->redis_crash_at_s, EV_REDIS_CRASH, 0);
	if (p->persistence == P_RDB)
		push(S, 60, EV_RDB_SAVE, 0);
	if (p->scale_at_s >= 0)
		push(S, p->scale_at_s, EV_SCALE, 0);
	push(S, p->duration_s, EV_END, 0);
	while (S->q.len) {
		struct evq_event e = evq_pop(&S->q);

		if (S->q.turns != turns) {
			/* The users of the events of a new slot are cold in the
			 * cache (megabytes of users, each touched once per think
			 * time): fetch them all at once, not one miss at a time. */
			size_t n;
			const struct evq_event *near = evq_near(&S->q, &n);

			turns = S->q.turns;
			for (size_t k = 0; k < n; k++) {
				if (near[k].kind == EV_REQUEST)
					__builtin_prefetch(&S->users[near[k].a]);
				else if (near[k].kind == EV_DONE)
					__builtin_prefetch(&S->users[near[k].a >> 6]);
			}
		}
		S->now = e.key >> SEQ_BITS;
		S->s.events++;
		switch (e.kind) {
		case EV_ARRIVAL: {
			uint32_t uid = user_new(S);

			on_request(S, uid);
			if (p->stop_at_s < 0 || now_s(S) < p->stop_at_s)
				push(S, now_s(S) + expo(S, 1.0 / arrival_rate(S, now_s(S))), EV_ARRIVAL, 0);
			break;
		}
		case EV_REQUEST:
			if (S->users[e.a].active)
				on_request(S, e.a);
			break;
		case EV_DONE:
			on_done(S, e.a);
			break;
		case EV_CHECK:
			on_check(S, (int)e.a);
			break;
		case EV_CRASH:
			if (e.a == UINT32_MAX) {        /* random crash: any live pod */
				int live[SIM_MAX_PODS], n = 0;

				for (int i = 0; i < S->npods; i++)
					if (S->pods[i].exists && S->pods[i].alive && S->pods[i].ready)
						live[n++] = i;
				if (n)
					pod_crash(S, live[lb_rng_below(&S->rng, (uint32_t)n)]);
				push(S, now_s(S) + expo(S, p->mtbf_s), EV_CRASH, UINT32_MAX);
			} else if ((int)e.a < S->npods) {
				pod_crash(S, (int)e.a);
			}
			break;
		case EV_READY:
			pod_ready(S, (int)e.a);
			break;
		case EV_SCALE:
			if (e.a >= 1000) {              /* replacement of a crashed pod */
				pod_new(S, false);
			} else {
				mark(S, "scale-out to %d", p->scale_to);
				for (int n = pods_ready(S); n < p->scale_to; n++)
					pod_new(S, false);
				S->last_scale_t = now_s(S);
				S->rebalanced = false;
			}
			break;
		case EV_HPA:
			on_hpa(S);
			break;
		case EV_REPORT:
			on_report(S);
			break;
		case EV_REDIS_CRASH:
			redis_crash(S);
			break;
		case EV_REDIS_UP:
			S->redis_up = true;
			mark(S, p->sentinel ? "replica promoted" : "Redis back");
			break;
		case EV_RDB_SAVE: {
			double rate = (double)S->s.redis_writes / fmax(1.0, now_s(S));

			S->last_rdb_save = now_s(S);
			push(S, now_s(S) + rdb_period(S, rate), EV_RDB_SAVE, 0);
			break;
		}
		case EV_END:
			evq_clear(&S->q);
			break;
		}
		if (progress && (S->s.events & 0xfffff) == 0) {
			int pct = (int)(100 * now_s(S) / p->duration_s);

			if (pct != shown) {
				fprintf(stderr, "\r[%-50.*s] %3d%%", pct / 2, "##################################################", pct);
				shown = pct;
			}
		}
	}
	if (progress && shown >= 0)
		fprintf(stderr, "\r%70s\r", "");
	finish(S, out);
	clock_gettime(CLOCK_MONOTONIC, &w1);
	out->wall_seconds = (double)(w1.tv_sec - w0.tv_sec) + (w1.tv_nsec - w0.tv_nsec) / 1e9;
	lb_pool_fini(&S->pool);
	for (int i = 0; i < S->npods; i++)
		free(S->pods[i].queue);
	evq_fini(&S->q);
	free(S->users);
	free(S->free_list);
	free(S);
	return 0;
}

void sim_print_json(FILE *f, const struct sim_summary *s)
{
	fprintf(f, "{\"requests\": %llu, \"sessions_created\": %llu, \"session_miss_rate\": %.6f, "
	        "\"local_hit_rate\": %.6f, \"redis_hit_rate\": %.6f, \"redis_ops_per_sec\": %.3f, "
	        "\"sessions_lost\": %llu, \"load_max_over_mean\": %.4f, \"load_stddev\": %.4f, \"pods_final\": %d, "
	        "\"rebalance_seconds\": %.1f, \"failed_requests\": %llu, \"mean_response_ms\": %.4f, "
	        "\"redis_reads\": %llu, \"redis_writes\": %llu, \"live_sessions_peak\": %llu}\n",
	        (unsigned long long)s->requests, (unsigned long long)s->sessions_created, s->session_miss_rate,
	        s->local_hit_rate, s->redis_hit_rate, s->redis_ops_per_sec, (unsigned long long)s->sessions_lost,
	        s->load_max_over_mean, s->load_stddev, s->pods_final, s->rebalance_seconds,
	        (unsigned long long)s->failed, s->mean_response_ms, (unsigned long long)s->redis_reads,
	        (unsigned long long)s->redis_writes, (unsigned long long)s->live_sessions_peak);
}
