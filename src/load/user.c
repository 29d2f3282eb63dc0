/*
 * tether-load - a virtual user's life, and what each answer counts.
 *
 * The life is tether-sim's (sim/clients.c user_new, user_next, user_failed;
 * pods.c route_request): a user arrives, makes its first request at once - the
 * login, `GET /login?user=u<seq>` - and then `pages_left - 1` more, each an
 * exponential think time (mean think_s) after the previous answer; a failed
 * request is followed by the next one after a think time too.  A user that
 * is logged in views `GET /item/N`, or `POST /cart/add?item=N` with
 * probability clients.cart_adds (the simulator's cart writes).
 *
 * Open loop: a request is sent when it is due, whatever else is late, and
 * its latency runs from when it was due (model time `sched`), not from when
 * it was written, so a slow generator shows up in latency instead of
 * hiding it (no coordinated omission).  The users are independent: a slow
 * answer delays only its own user's next request, as in the simulator.
 *
 * Counting follows sessions.c session_serve(): `requests` counts requests (the
 * logins included) when they are made; `requests_logged_in` the page views
 * a pod answered (200 or 401); a 401 (X-Session: miss) is a session miss,
 * and the forced re-login that follows at once is part of the same request
 * (as in the simulator, where the request that misses makes the new
 * session): it adds an HTTP exchange (`http_requests`) and a session
 * created, not a request.  A 503 from a pod (Redis unavailable) is what
 * sessions.c makes of a request while Redis is down: a miss for a page
 * view, a failed login for a first login; not a failed request.  The rest
 * is in docs/load.md.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "load.h"

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

/*
 * --- the simulator's draws ---
 *
 * The arrival rate, the pages of a visit and the address changes are the
 * simulator's own functions (sim.h: sim_arrival_rate, sim_visit_pages,
 * sim_address_changes).  What differs, because real time is not virtual:
 * each user draws from its own generator (seeded from the arrival stream),
 * so a seed fixes each user's pages, think times and items whatever order
 * the answers come back in; and the address space is --addresses loopback
 * addresses, not 2^32 (below).
 */

/*
 * clients.c user_new(): with users_per_address > 1, a user takes one of
 * nusers / users_per_address + 1 addresses at random (nusers: user slots
 * ever used, about the peak of users alive), so about users_per_address
 * users share each.  With 1, every user has an address of its own: the
 * simulator draws 32 random bits; here the next of the --addresses
 * addresses in turn, so users alive at once get distinct addresses while
 * there are at least as many addresses as users.
 */
static uint32_t address(struct load *L, struct lu_user *u)
{
	unsigned upa = L->p->users_per_address;
	uint32_t n = L->o->addresses, a;

	if (n == 0)
		return 0;
	if (upa > 1) {
		a = (uint32_t)(lb_rng_next(&u->rng) % (L->nusers / upa + 1));
		return a % n;
	}
	a = L->addr_next;
	L->addr_next = (L->addr_next + 1) % n;
	return a;
}

/* --- users --- */

static struct lu_user *slot(struct load *L, uint32_t id)
{
	return &L->slabs[id / LOAD_SLAB][id % LOAD_SLAB];
}

/* A free slot, or NULL when memory is out.  Slabs never move: libev holds
 * pointers to the watchers inside them. */
static struct lu_user *user_alloc(struct load *L)
{
	struct lu_user *u;
	uint32_t id;

	if (L->nfree) {
		id = L->free_ids[--L->nfree];
	} else {
		if (L->nusers == L->nslabs * LOAD_SLAB) {
			struct lu_user **s = realloc(L->slabs, (L->nslabs + 1) * sizeof(*s));
			uint32_t *f;

			if (!s)
				return NULL;
			L->slabs = s;
			f = realloc(L->free_ids, (size_t)(L->nslabs + 1) * LOAD_SLAB * sizeof(*f));
			if (!f)
				return NULL;
			L->free_ids = f;
			if (!(L->slabs[L->nslabs] = calloc(LOAD_SLAB, sizeof(struct lu_user))))
				return NULL;
			L->nslabs++;
		}
		id = L->nusers++;
	}
	u = slot(L, id);
	memset(u, 0, sizeof(*u));
	u->id = id;
	ev_timer_init(&u->timer, timer_cb, 0., 0.);
	conn_init_user(u);
	return u;
}

static void pod_sessions(struct load *L, int pod, int delta)
{
	if (pod >= 0 && L->p->store == STORE_LOCAL)
		L->s.pods[pod].sessions += delta;
}

/* sessions.c live_del(): live sessions are those of visiting users that
 * hold one (made by a login, not yet found missing). */
static void session_gone(struct load *L, struct lu_user *u)
{
	if (!u->has_session)
		return;
	pod_sessions(L, u->session_pod, -1);
	L->s.live_sessions--;
	u->has_session = false;
	u->session_pod = -1;
}

/* sessions.c live_add(): a login made u's session on `pod` (-1: unknown). */
static void session_made(struct load *L, struct lu_user *u, int pod)
{
	session_gone(L, u);
	u->has_session = true;
	u->session_pod = (int16_t)pod;
	pod_sessions(L, pod, +1);
	if (++L->s.live_sessions > L->s.live_sessions_peak)
		L->s.live_sessions_peak = L->s.live_sessions;
}

static void leave(struct load *L, struct lu_user *u)
{
	ev_timer_stop(L->loop, &u->timer);
	conn_close(L, u);
	session_gone(L, u);
	u->state = LU_FREE;
	L->free_ids[L->nfree++] = u->id;
	L->active--;
	load_user_gone(L);
}

/* pods.c route_request(): the next request of u, due now (model time u->sched). */
static void request(struct load *L, struct lu_user *u)
{
	if (u->logged_in && sim_address_changes(L->p, &u->rng) && L->o->addresses) {
		u->addr = (uint32_t)(lb_rng_next(&u->rng) % L->o->addresses);
		conn_close(L, u);               /* a new network: a new connection */
	}
	u->action = !u->has_session ? LA_LOGIN :
	            lb_rng_double(&u->rng) < L->p->cart_adds ? LA_CART : LA_ITEM;
	u->item = 1 + lb_rng_below(&u->rng, LOAD_ITEMS);
	u->retried = false;
	L->s.requests++;
	L->s.iv_requests++;
	conn_send(L, u);
}

/* clients.c user_next(): a think time, then the next request, or leave. */
static void next(struct load *L, struct lu_user *u)
{
	double now = load_now(L);

	if (--u->pages_left == 0 || L->ending) {
		leave(L, u);
		return;
	}
	u->state = LU_THINK;
	u->sched = now + L->p->think_s * sim_expo_draw(&L->zig, &u->rng);
	ev_timer_stop(L->loop, &u->timer);
	ev_timer_set(&u->timer, L->t0 + u->sched - ev_now(L->loop), 0.);
	ev_timer_start(L->loop, &u->timer);
}

static void done(struct load *L, struct lu_user *u)
{
	double us;

	ev_now_update(L->loop);             /* the answer's own time, not the batch's */
	us = (load_now(L) - u->sched) * 1e6;
	stats_hist_add(&L->s.lat, us);
	L->s.lat_sum += us;
	next(L, u);
}

static void on_fail(struct load *L, struct lu_user *u, enum lu_fail why)
{
	L->s.failed++;
	L->s.iv_failed++;
	L->s.fail[why]++;
	L->s.iv_timeouts += why == LF_TIMEOUT;
	next(L, u);
}

/* sessions.c count_redis(), by the simulator's rule (the pods' real
 * commands differ: ask Redis for those). */
static void redis_ops(struct load *L, unsigned reads, unsigned writes)
{
	if (L->p->store == STORE_LOCAL)
		return;
	L->s.redis_reads += reads;
	L->s.redis_writes += writes;
	L->s.iv_redis_ops += reads + writes;
}

/* A login answered 2xx: a session made on `pod` (HSET + EXPIRE). */
static void logged_in(struct load *L, struct lu_user *u, int pod)
{
	L->s.sessions_created++;
	redis_ops(L, 0, 2);
	u->logged_in = true;
	session_made(L, u, pod);
}

/* A page view answered 401: the session is gone; log in again at once. */
static void missed(struct load *L, struct lu_user *u, int pod)
{
	L->s.misses++;
	L->s.iv_misses++;
	redis_ops(L, 1, 0);                 /* HGETALL found nothing */
	/* lost, not merely elsewhere: its own pod, or the shared store, no
	 * longer has it (with pod memory on another pod it never had it) */
	if (L->p->store != STORE_LOCAL || (pod >= 0 && pod == u->session_pod))
		L->s.sessions_lost++;
	session_gone(L, u);
	u->action = LA_RELOGIN;
	u->retried = false;
	conn_send(L, u);
}

static void page_viewed(struct load *L, const struct lu_user *u)
{
	switch (u->resp.session) {
	case WS_LOCAL:
	case WS_CACHE:                      /* D's pod-local cache: EXPIRE is still sent */
		L->s.local_hits++;
		L->s.iv_local++;
		redis_ops(L, 0, u->resp.session == WS_CACHE);
		break;
	case WS_REDIS:                      /* HGETALL + EXPIRE */
		L->s.redis_hits++;
		L->s.iv_redis++;
		redis_ops(L, 1, 1);
		break;
	default:
		break;
	}
	if (u->action == LA_CART) {         /* HSET + EXPIRE cart:<user> */
		L->s.carts++;
		redis_ops(L, 0, 2);
	}
}

/*
 * A pod answered 503 without a verdict (X-Pod, no X-Session): it could not
 * reach Redis.  sessions.c counts such a page view as a miss (the session
 * cannot be read, no new one made) and such a first login as a failed
 * login; neither is a failed request, and the user keeps its session id.
 */
static void unavailable(struct load *L, struct lu_user *u)
{
	L->s.unavailable++;
	if (u->action == LA_ITEM || u->action == LA_CART) {
		L->s.requests_logged_in++;
		L->s.misses++;
		L->s.iv_misses++;
	} else if (u->action == LA_LOGIN && !u->logged_in) {
		L->s.logins_failed++;
	}
	done(L, u);
}

/* What a failed status stands for, in tether-sim's failure classes. */
static enum lu_fail status_failure(const struct wire_resp *r)
{
	switch (r->status) {
	case 503:
		return LF_NO_SERVER;            /* not from a pod: from a balancer */
	case 504:
		return LF_TIMEOUT;
	case 502:
		return LF_CRASH;
	default:
		return LF_STATUS;
	}
}

static void on_answer(struct load *L, struct lu_user *u)
{
	const struct wire_resp *r = &u->resp;
	int pod = stats_pod(&L->s, r->pod, load_now(L)), st = r->status;
	bool login = u->action == LA_LOGIN || u->action == LA_RELOGIN;

	if (st == 503 && r->pod[0] && r->session == WS_NONE) {
		unavailable(L, u);
		return;
	}
	if ((st < 200 || st >= 300) && (login || st != 401)) {
		on_fail(L, u, status_failure(r));
		return;
	}
	if (login) {
		logged_in(L, u, pod);
		done(L, u);
		return;
	}
	L->s.requests_logged_in++;
	if (st == 401) {
		missed(L, u, pod);
		return;
	}
	page_viewed(L, u);
	done(L, u);
}

void user_init_hooks(struct load *L)
{
	L->on_answer = on_answer;
	L->on_fail = on_fail;
}

void user_arrive(struct load *L, double at)
{
	struct lu_user *u = user_alloc(L);

	if (!u) {
		fprintf(stderr, "tether-load: out of memory for users\n");
		abort();
	}
	L->active++;
	L->s.users++;
	u->seq = L->s.users;
	lb_rng_seed(&u->rng, lb_rng_next(&L->rng));
	u->pages_left = sim_visit_pages(L->p, &u->rng);
	u->addr = address(L, u);
	u->session_pod = -1;
	u->sched = at;
	request(L, u);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct lu_user *u = container_of(w, struct lu_user, timer);
	struct load *L = ev_userdata(loop);

	if (u->state == LU_THINK)
		request(L, u);
	else
		conn_timeout(L, u);
}

void user_end_all(struct load *L)
{
	for (uint32_t id = 0; id < L->nusers; id++) {
		struct lu_user *u = slot(L, id);

		if (u->state == LU_THINK)
			leave(L, u);
	}
}

int user_dump_visiting(struct load *L, const char *path)
{
	char tmp[4096];
	FILE *f;
	int bad;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (!(f = fopen(tmp, "w")))
		return -1;
	for (uint32_t id = 0; id < L->nusers; id++) {
		const struct lu_user *u = slot(L, id);
		const char *sid;
		size_t n;

		if (u->state == LU_FREE || !u->has_session || !(sid = wire_jar_get(&u->jar, "SID", &n)))
			continue;
		fprintf(f, "%.*s %s\n", (int)n, sid, u->session_pod >= 0 ? L->s.pods[u->session_pod].name : "-");
	}
	bad = ferror(f);
	if (fclose(f) != 0 || bad || rename(tmp, path) < 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

void user_free_all(struct load *L)
{
	for (uint32_t id = 0; id < L->nusers; id++) {
		struct lu_user *u = slot(L, id);

		ev_timer_stop(L->loop, &u->timer);
		conn_close(L, u);
	}
	for (uint32_t i = 0; i < L->nslabs; i++)
		free(L->slabs[i]);
	free(L->slabs);
	free(L->free_ids);
	L->slabs = NULL;
	L->free_ids = NULL;
	L->nslabs = L->nusers = L->nfree = 0;
}
