/*
 * tether-sim - what one request does to its user's session, per store.
 *
 *  - memory (patterns A, B): the session lives in the memory of the pod that
 *    created it and expires after session_ttl without use, like a Redis
 *    key; the browser holds that one session id, so a request that lands on
 *    another pod finds nothing and forces a new login there (a miss);
 *  - redis (C): the request reads the session (HGETALL) and refreshes its
 *    sliding TTL (EXPIRE), two commands in one round trip;
 *  - redis+cache (D): a pod-local cache in front of Redis; a request that
 *    finds the session cached on its pod is served without a read, and its
 *    EXPIRE still goes to Redis, where it refreshes the key only if the key
 *    still exists (EXPIRE on a missing key does nothing: a session Redis
 *    lost is not brought back by a cache hit).
 * A login writes a new session: HSET + EXPIRE, one round trip.  While Redis
 * is down, a request of a logged-in user that needs it is a miss (it cannot
 * read the session; no new one can be made), a login fails; neither makes a
 * session.  A cache hit needs no Redis and writes nothing while it is down.
 *
 * Live sessions are those of visiting users whose session exists
 * (U_SESSION); a session that expired during a visit is found out at the
 * user's next request, which makes a new one.
 */
#include "model.h"

static void live_add(struct sim *S, struct user *u)
{
	if (u->flags & U_SESSION)
		return;
	u->flags |= U_SESSION;
	if (++S->live_sessions > S->s.live_sessions_peak)
		S->s.live_sessions_peak = S->live_sessions;
}

static void live_del(struct sim *S, struct user *u)
{
	if (!(u->flags & U_SESSION))
		return;
	u->flags &= (uint8_t)~U_SESSION;
	S->live_sessions--;
}

/* The user's local session on its pod, if it still exists there. */
static struct pod *local_pod(struct sim *S, const struct user *u)
{
	struct pod *pd;

	if (u->session_pod < 0)
		return NULL;
	pd = &S->pods[u->session_pod];
	return pd->exists && pd->epoch == u->session_epoch ? pd : NULL;
}

static void local_create(struct sim *S, struct user *u, int i)
{
	struct pod *old = local_pod(S, u);

	if (old && old->sessions)
		old->sessions--;        /* orphaned there: the browser forgot its id */
	u->session_pod = (int16_t)i;
	u->session_epoch = S->pods[i].epoch;
	u->expiry_ms = S->now_ms + (uint32_t)(S->p->session_ttl_s * 1000);
	S->pods[i].sessions++;
}

static void cache_fill(struct sim *S, struct user *u, int i)
{
	if (S->p->store != STORE_REDIS_CACHE)
		return;
	u->cache_pod = (int16_t)i;
	u->cache_epoch = S->pods[i].epoch;
	u->cache_ms = S->now_ms + (uint32_t)(S->p->cache_ttl_s * 1000);
}

static void count_redis(struct sim *S, unsigned reads, unsigned writes)
{
	S->s.redis_reads += reads;
	S->s.redis_writes += writes;
	S->rep.redis_ops += reads + writes;
}

/* Looks the session up; true when found.  *wait_us grows by Redis' part. */
static bool lookup(struct sim *S, struct user *u, uint32_t uid, int i, double *wait_us)
{
	const struct sim_params *p = S->p;
	const struct pod *pd = &S->pods[i];
	uint32_t now = S->now_ms;

	if (p->store == STORE_LOCAL) {
		if (u->session_pod != i || u->session_epoch != pd->epoch || u->expiry_ms <= now)
			return false;
		u->expiry_ms = now + (uint32_t)(p->session_ttl_s * 1000);
		S->s.local_hits++;
		S->rep.local++;
		return true;
	}
	if (p->store == STORE_REDIS_CACHE && u->cache_pod == i && u->cache_epoch == pd->epoch && u->cache_ms > now) {
		S->s.local_hits++;
		S->rep.local++;
		if (S->redis.up) {              /* EXPIRE: refreshes the key only if it exists */
			*wait_us += redis_round_trip(S, (double)S->now, 1);
			count_redis(S, 0, 1);
			if (u->expiry_ms > now)
				redis_write(S, u, uid, SIM_W_REFRESH, 1);
		}
		return true;
	}
	if (!S->redis.up)
		return false;
	if (u->expiry_ms <= now) {              /* HGETALL finds nothing */
		*wait_us += redis_round_trip(S, (double)S->now, 1);
		count_redis(S, 1, 0);
		return false;
	}
	*wait_us += redis_round_trip(S, (double)S->now, 2);     /* HGETALL + EXPIRE */
	count_redis(S, 1, 1);
	redis_write(S, u, uid, SIM_W_REFRESH, 1);
	S->s.redis_hits++;
	S->rep.redis++;
	cache_fill(S, u, i);
	return true;
}

double session_serve(struct sim *S, struct user *u, uint32_t uid, int i)
{
	const struct sim_params *p = S->p;
	bool first = !(u->flags & U_LOGGED_IN), found = false;
	double wait_us = 0;

	if (!first) {
		S->s.requests_logged_in++;
		found = lookup(S, u, uid, i, &wait_us);
		if (!found) {
			S->s.misses++;
			S->rep.misses++;
		}
	}
	if (!found && p->store == STORE_LOCAL) {                /* (re)login on this pod */
		local_create(S, u, i);
		S->s.sessions_created++;
		u->flags |= U_LOGGED_IN;
		live_add(S, u);
	} else if (!found && S->redis.up) {                     /* (re)login: HSET + EXPIRE */
		wait_us += redis_round_trip(S, (double)S->now + wait_us, 2);
		count_redis(S, 0, 2);
		redis_write(S, u, uid, SIM_W_CREATE, 2);
		cache_fill(S, u, i);
		S->s.sessions_created++;
		u->flags |= U_LOGGED_IN;
		live_add(S, u);
	} else if (first) {
		S->s.logins_failed++;                           /* Redis down: no session to make */
	}
	if (p->cart_adds > 0 && p->store != STORE_LOCAL && S->redis.up && lb_rng_double(&S->rng) < p->cart_adds) {
		wait_us += redis_round_trip(S, (double)S->now + wait_us, 2);    /* HSET + EXPIRE cart:<user> */
		count_redis(S, 0, 2);
		redis_write(S, u, uid, SIM_W_CART, 2);
	}
	return wait_us;
}

/* The user leaves: its session is no longer a visiting user's. */
void session_drop(struct sim *S, struct user *u, uint32_t uid)
{
	struct pod *pd = S->p->store == STORE_LOCAL ? local_pod(S, u) : NULL;

	if (S->p->trace) {
		struct sim_trace_write w = { now_s(S), uid, SIM_W_LEAVE, 0 };

		S->p->trace(S->p->trace_ctx, &w);
	}
	if (pd && pd->sessions)
		pd->sessions--;
	live_del(S, u);
}

/* Pod i dies or leaves: the local sessions of its visiting users die. */
uint64_t sessions_kill_pod(struct sim *S, int i)
{
	struct pod *pd = &S->pods[i];
	uint64_t lost = 0;

	for (uint32_t id = 0; id < S->nusers; id++) {
		struct user *u = &S->users[id];

		if ((u->flags & U_ACTIVE) && (u->flags & U_SESSION) && u->session_pod == i &&
		    u->session_epoch == pd->epoch) {
			live_del(S, u);
			u->session_pod = -1;
			lost++;
		}
	}
	pd->sessions = 0;
	return lost;
}
