/*
 * tether-sim - pods: their life (start, ready, crash, deletion), their
 * workers and bounded queue, and the routing of a request to one of them
 * through the balancer core (see model.h, docs/simulator.md).
 *
 * A pod has `concurrency` workers and a FIFO queue of at most `queue`
 * requests.  A request that finds every worker busy waits in the queue; one
 * that finds the queue full is answered 503 at once.  A request not
 * answered within `timeout` of being sent is answered 504 at that moment:
 * if it was still queued it leaves the queue, if a worker had it the worker
 * finishes it anyway (the client is gone, the work is wasted, as on a real
 * server).  A crash fails every request the pod had (502), queued or in
 * service.  All requests of one pod share the timeout, so queue deadlines
 * are in queue order and one timer per pod (for the head) is enough.
 *
 * Routing (route_request) is the daemon's per-connection logic, from the
 * core's outcome policy (src/lb/outcome.c) that the daemon calls too:
 * lb_attempt chooses a server (never one already tried, up to `retries`
 * more after failed connects), lb_attempt_failed counts a failed connect
 * (passive health when observed), lb_server_observed a successful one,
 * lb_server_checked an active check, lb_cookie_needed whether the answer
 * carries a new affinity cookie.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

#define W_POD(a) ((int)((a) >> 16))
#define W_IDX(a) ((a) & 0xffffu)

/* --- life --- */

/* The name of the pod numbered id (0-based over the run): the backend's
 * server names first, then the first server's name with its trailing digits
 * replaced by id + 1 ("web4" -> "web5"), made unique if need be. */
static void pod_name(struct sim *S, uint32_t id, char out[LB_NAME_MAX])
{
	const struct sim_params *p = S->p;
	char base[LB_NAME_MAX] = "pod";
	size_t n;

	if (id < (uint32_t)p->be.nservers) {
		snprintf(out, LB_NAME_MAX, "%s", p->be.servers[id].name);
		return;
	}
	if (p->be.nservers) {
		snprintf(base, sizeof(base), "%s", p->be.servers[0].name);
		for (n = strlen(base); n > 0 && base[n - 1] >= '0' && base[n - 1] <= '9'; n--)
			base[n - 1] = '\0';
	}
	snprintf(out, LB_NAME_MAX, "%.40s%u", base, id + 1);
	for (uint32_t j = 0; j < id; j++)
		if (strcmp(S->names[j], out) == 0) {
			snprintf(out, LB_NAME_MAX, "%.40s%u-%u", base, id + 1, id);
			break;
		}
}

/* Gives a slot its per-worker arrays (kept across reuses). */
static int slot_arrays(struct sim *S, struct pod *pd)
{
	int c = S->p->concurrency;

	if (!pd->work) {
		pd->work = malloc((size_t)c * sizeof(*pd->work));
		pd->idle = malloc((size_t)c * sizeof(*pd->idle));
		if (!pd->work || !pd->idle) {
			S->nomem = 1;
			return -1;
		}
	}
	for (int w = 0; w < c; w++) {
		pd->work[w] = W_FREE;
		pd->idle[w] = (uint32_t)(c - 1 - w);
	}
	pd->nidle = c;
	pd->busy = 0;
	return 0;
}

int pod_new(struct sim *S, bool ready_now)
{
	struct pod *pd;
	uint32_t epoch, gen, *work, *idle, *queue, qcap;
	int i;

	for (i = 0; i < S->nslots && S->pods[i].exists; i++)
		;
	if (i == SIM_MAX_PODS) {
		S->s.pods_refused++;
		return -1;
	}
	if (S->npods_ever == S->capnames) {
		uint32_t cap = S->capnames ? S->capnames * 2 : 64;
		char (*nn)[LB_NAME_MAX] = realloc(S->names, cap * sizeof(*nn));

		if (!nn) {
			S->nomem = 1;
			return -1;
		}
		S->names = nn;
		S->capnames = cap;
	}
	if (i == S->nslots)
		S->nslots++;
	pd = &S->pods[i];
	epoch = pd->epoch, gen = pd->gen, work = pd->work, idle = pd->idle, queue = pd->queue, qcap = pd->qcap;
	memset(pd, 0, sizeof(*pd));
	pd->epoch = epoch, pd->gen = gen, pd->work = work, pd->idle = idle, pd->queue = queue, pd->qcap = qcap;
	if (slot_arrays(S, pd) < 0)
		return -1;
	pd->id = S->npods_ever++;
	pod_name(S, pd->id, S->names[pd->id]);
	memcpy(pd->lb.name, S->names[pd->id], LB_NAME_MAX);
	pd->lb.weight = pd->id < (uint32_t)S->p->be.nservers ? S->p->be.servers[pd->id].weight : 1;
	pd->lb.data = pd;
	pd->lb.index = -1;
	pd->exists = true;
	pd->alive = true;
	S->s.pods_created++;
	push(S, ready_now ? now_s(S) : now_s(S) + S->p->startup_s, EV_READY, pd->gen, (uint32_t)i);
	return i;
}

void pod_ready(struct sim *S, int i, uint32_t gen)
{
	struct pod *pd = &S->pods[i];

	if (!pd->exists || (pd->gen & GEN_MASK) != gen || pd->ready || !pd->alive)
		return;
	pd->ready = true;
	pd->ready_since = now_s(S);
	lb_server_health_init(&S->pool, &pd->lb, true);
	if (lb_pool_add(&S->pool, &pd->lb) < 0) {
		S->nomem = 1;
		return;
	}
	if (S->p->be.health.type != CFG_CHECK_NONE)
		push(S, now_s(S) + hc_next_delay_ms(&S->p->be.params.health, &S->rng) / 1000.0, EV_CHECK, pd->gen,
		     (uint32_t)i);
}

/* The pod is gone (dead and out of the endpoints, or deleted): its slot is
 * free, and everything that names its old life is stale. */
static void pod_free(struct sim *S, struct pod *pd)
{
	if (S->p->store == STORE_LOCAL && pd->sessions)
		S->s.sessions_lost += sessions_kill_pod(S, (int)(pd - S->pods));
	if (pd->lb.index >= 0)
		lb_pool_del(&S->pool, &pd->lb);
	pd->lb.index = -1;
	pd->exists = pd->ready = pd->alive = pd->deleting = false;
	pd->epoch++;
	pd->gen++;
}

/* A deleted pod leaves once its last connection ended. */
static void pod_maybe_gone(struct sim *S, struct pod *pd)
{
	if (pd->deleting && pd->lb.active == 0 && pd->busy == 0)
		pod_free(S, pd);
}

/* Scale-down: a pod not ready yet leaves at once; a ready one drains. */
void pod_delete(struct sim *S, int i)
{
	struct pod *pd = &S->pods[i];

	if (!pd->ready) {
		pod_free(S, pd);
		return;
	}
	pd->deleting = true;
	lb_server_set_admin(&S->pool, &pd->lb, LB_ADMIN_DRAIN);
	pod_maybe_gone(S, pd);
}

int pods_ready(const struct sim *S)
{
	int n = 0;

	for (int i = 0; i < S->nslots; i++)
		n += S->pods[i].ready && S->pods[i].alive && !S->pods[i].deleting;
	return n;
}

int pod_find(const struct sim *S, const char *name)
{
	for (int i = 0; i < S->nslots; i++)
		if (S->pods[i].exists && strcmp(S->pods[i].lb.name, name) == 0)
			return i;
	return -1;
}

/* --- health: active checks (passive observation is in route_request) --- */

void on_check(struct sim *S, int i, uint32_t gen)
{
	struct pod *pd = &S->pods[i];

	if (!pd->exists || (pd->gen & GEN_MASK) != gen || !pd->ready)
		return;
	lb_server_checked(&S->pool, &pd->lb, pd->alive);
	if (!pd->alive && !pd->lb.up) {
		pod_free(S, pd);                /* the dead pod leaves the endpoints */
		return;
	}
	push(S, now_s(S) + hc_next_delay_ms(&S->p->be.params.health, &S->rng) / 1000.0, EV_CHECK, pd->gen, (uint32_t)i);
}

/* --- workers and queue --- */

static void start(struct sim *S, int i, uint32_t uid)
{
	struct pod *pd = &S->pods[i];
	struct user *u = &S->users[uid];
	uint32_t w = pd->idle[--pd->nidle];
	double cpu_us = expo(S, S->p->service_ms * 1000.0), wait_us;
	uint64_t done, deadline = u->arrive_us + (uint64_t)(S->p->timeout_s * US);

	pd->busy++;
	wait_us = session_serve(S, u, uid, i);  /* Redis holds the worker, not the CPU */
	pd->cpu_us += cpu_us;
	done = S->now + (uint64_t)(wait_us + cpu_us);
	pd->work[w] = uid;
	if (done > deadline) {
		pd->work[w] |= W_TIMING;
		push_at_us(S, deadline > S->now ? deadline : S->now, EV_TIMEOUT, pd->epoch, ((uint32_t)i << 16) | w);
	}
	push_at_us(S, done, EV_DONE, pd->epoch, ((uint32_t)i << 16) | w);
}

static uint64_t deadline_of(const struct sim *S, uint32_t uid)
{
	return S->users[uid].arrive_us + (uint64_t)(S->p->timeout_s * US);
}

static void arm_queue_timer(struct sim *S, int i)
{
	struct pod *pd = &S->pods[i];

	if (pd->qtimer || !pd->qlen)
		return;
	pd->qtimer = true;
	push_at_us(S, deadline_of(S, pd->queue[pd->qhead]), EV_QTIMEOUT, pd->epoch, (uint32_t)i);
}

static uint32_t queue_pop(struct pod *pd)
{
	uint32_t uid = pd->queue[pd->qhead];

	pd->qhead = (pd->qhead + 1) % pd->qcap;
	pd->qlen--;
	return uid;
}

/* Answers 504 to the queue heads whose deadline has come. */
static void queue_expire(struct sim *S, int i)
{
	struct pod *pd = &S->pods[i];

	while (pd->qlen && deadline_of(S, pd->queue[pd->qhead]) <= S->now) {
		lb_conn_close(&S->pool, &pd->lb);
		S->rep.timeouts++;
		user_failed(S, queue_pop(pd), &S->s.failed_timeout);
	}
}

static int queue_add(struct sim *S, struct pod *pd, uint32_t uid)
{
	if (pd->qlen == pd->qcap) {
		uint32_t ncap = pd->qcap ? pd->qcap * 2 : 64, *q = malloc(ncap * sizeof(*q));

		if (!q) {
			S->nomem = 1;
			return -1;
		}
		for (uint32_t j = 0; j < pd->qlen; j++)
			q[j] = pd->queue[(pd->qhead + j) % pd->qcap];
		free(pd->queue);
		pd->queue = q;
		pd->qcap = ncap;
		pd->qhead = 0;
	}
	pd->queue[(pd->qhead + pd->qlen++) % pd->qcap] = uid;
	return 0;
}

/* The connection to pod i is made (lb_attempt counted it on the pod):
 * serve, queue, or refuse (503). */
static void pod_accept(struct sim *S, int i, uint32_t uid)
{
	struct pod *pd = &S->pods[i];

	pd->requests++;
	pd->interval_requests++;
	if (pd->nidle) {
		start(S, i, uid);
	} else if (pd->qlen < (uint32_t)S->p->queue && queue_add(S, pd, uid) == 0) {
		arm_queue_timer(S, i);
	} else {
		lb_conn_close(&S->pool, &pd->lb);
		user_failed(S, uid, &S->s.failed_queue_full);
	}
}

void on_done(struct sim *S, uint32_t a, uint32_t epoch)
{
	int i = W_POD(a);
	struct pod *pd = &S->pods[i];
	uint32_t w = W_IDX(a), what;

	if (!pd->exists || (pd->epoch & GEN_MASK) != epoch)
		return;                         /* the pod crashed since: already failed */
	what = pd->work[w];
	pd->work[w] = W_FREE;
	pd->idle[pd->nidle++] = w;
	pd->busy--;
	if (what != W_ORPHAN) {             /* (W_TIMING cannot be set: its EV_TIMEOUT came first) */
		what &= ~W_TIMING;
		S->resp_sum += (double)(S->now - S->users[what].arrive_us);
		S->resp_n++;
		lb_conn_close(&S->pool, &pd->lb);
		user_next(S, what);
	}
	queue_expire(S, i);
	if (pd->qlen)
		start(S, i, queue_pop(pd));
	pod_maybe_gone(S, pd);
}

void on_timeout(struct sim *S, uint32_t a, uint32_t epoch)
{
	struct pod *pd = &S->pods[W_POD(a)];
	uint32_t w = W_IDX(a), what;

	if (!pd->exists || (pd->epoch & GEN_MASK) != epoch)
		return;
	what = pd->work[w];
	if (what == W_FREE || what == W_ORPHAN || !(what & W_TIMING))
		return;
	pd->work[w] = W_ORPHAN;
	lb_conn_close(&S->pool, &pd->lb);
	S->rep.timeouts++;
	user_failed(S, what & ~W_TIMING, &S->s.failed_timeout);
}

void on_queue_timeout(struct sim *S, int i, uint32_t epoch)
{
	struct pod *pd = &S->pods[i];

	if (!pd->exists || (pd->epoch & GEN_MASK) != epoch)
		return;
	pd->qtimer = false;
	queue_expire(S, i);
	arm_queue_timer(S, i);
	pod_maybe_gone(S, pd);
}

/* --- failures --- */

void pod_crash(struct sim *S, int i)
{
	struct pod *pd = &S->pods[i];
	uint64_t live = S->live_sessions, lost = 0;

	if (!pd->exists || !pd->alive)
		return;
	if (S->p->store == STORE_LOCAL)
		lost = sessions_kill_pod(S, i);     /* local sessions die with the pod */
	S->s.sessions_lost += lost;
	S->s.sessions_at_crash = live;
	sim_mark(S, (int64_t)lost, live, "%s crash", pd->lb.name);
	pd->alive = false;
	pd->epoch++;                        /* its cache, timers and answers die */
	for (int w = 0; w < S->p->concurrency; w++) {
		uint32_t what = pd->work[w];

		pd->work[w] = W_FREE;
		if (what == W_FREE)
			continue;
		if (what != W_ORPHAN) {
			lb_conn_close(&S->pool, &pd->lb);
			user_failed(S, what & ~W_TIMING, &S->s.failed_crash);
		}
	}
	slot_arrays(S, pd);
	while (pd->qlen) {
		lb_conn_close(&S->pool, &pd->lb);
		user_failed(S, queue_pop(pd), &S->s.failed_crash);
	}
	pd->qtimer = false;
	if (S->p->replace_s > 0)
		push(S, now_s(S) + S->p->replace_s, EV_REPLACE, 0, 0);
	else
		S->spec--;                  /* nothing brings it back */
	if (!pd->ready) {
		pod_free(S, pd);            /* never in the pool */
	} else if (S->p->be.health.type == CFG_CHECK_NONE) {
		lb_server_set_up(&S->pool, &pd->lb, false);     /* nothing would notice: the endpoint goes at once */
		pod_free(S, pd);
	}
}

void pod_crash_random(struct sim *S)
{
	int live[SIM_MAX_PODS], n = 0;

	for (int i = 0; i < S->nslots; i++)
		if (S->pods[i].exists && S->pods[i].alive && S->pods[i].ready)
			live[n++] = i;
	if (n)
		pod_crash(S, live[lb_rng_below(&S->rng, (uint32_t)n)]);
}

/* --- routing --- */

/* The next attempt of a request: the core's lb_attempt (the daemon's own
 * choice and retry rule), or for validation a uniformly random reference
 * policy that opens its attempt the same way. */
static int attempt(struct sim *S, struct lb_key *k)
{
	int cand[SIM_MAX_PODS], n = 0, idx;

	if (S->p->policy != POL_RANDOM)
		return lb_attempt(&S->pool, k, S->now / 1000, &S->rng);
	if (!lb_retry_allowed(&S->pool, k))
		return -1;
	for (int i = 0; i < S->pool.nservers && n < SIM_MAX_PODS; i++)
		if (lb_server_eligible(&S->pool, S->pool.servers[i]) && !lb_key_tried(k, S->pool.servers[i]->id))
			cand[n++] = i;
	if (!n)
		return -1;
	idx = cand[lb_rng_below(&S->rng, (uint32_t)n)];
	lb_key_add_tried(k, S->pool.servers[idx]);
	lb_conn_open(&S->pool, S->pool.servers[idx]);
	return idx;
}

/* The answer of pod i carries a new affinity cookie when the core says so
 * (the client's cookie does not name pod i). */
static void cookie_issue(struct sim *S, struct user *u, const struct lb_key *k, int i)
{
	if (lb_cookie_needed(&S->pool, k, &S->pods[i].lb)) {
		u->cookie_pod = (int16_t)i;
		u->cookie_gen = S->pods[i].gen;
	}
}

void route_request(struct sim *S, uint32_t uid)
{
	struct user *u = &S->users[uid];
	struct lb_key k;

	memset(&k, 0, sizeof(k));
	if ((u->flags & U_LOGGED_IN) && sim_address_changes(S->p, &S->rng))
		u->addr = (uint32_t)lb_rng_next(&S->rng);       /* a mobile user moved networks */
	k.addr.len = 4;
	memcpy(k.addr.bytes, &u->addr, 4);
	/* a cookie naming a pod that no longer exists matches no server: as none */
	if (u->cookie_pod >= 0 && S->pods[u->cookie_pod].exists && S->pods[u->cookie_pod].gen == u->cookie_gen) {
		k.cookie = S->pods[u->cookie_pod].lb.cookie;
		k.cookie_len = LB_COOKIE_LEN;
	}
	u->arrive_us = S->now;
	S->s.requests++;
	S->rep.requests++;
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
		cookie_issue(S, u, &k, (int)(pd - S->pods));
		pod_accept(S, (int)(pd - S->pods), uid);
		return;
	}
	user_failed(S, uid, &S->s.failed_no_server);
}

void pods_fini(struct sim *S)
{
	for (int i = 0; i < S->nslots; i++) {
		free(S->pods[i].work);
		free(S->pods[i].idle);
		free(S->pods[i].queue);
	}
	free(S->names);
}
