/*
 * tether-sim - the Redis server: a single thread of finite speed, its
 * persistence, its crash and its return (docs/simulator.md, "Redis").
 *
 * Capacity.  Redis executes commands one at a time.  A round trip costs the
 * server rt_us for its first command (reading the socket, parsing, replying:
 * 1 / redis.capacity, about 10 µs at redis-benchmark's order of 100 K
 * simple commands/s per core without pipelining) and op_us for each further
 * command pipelined in it (a tenth of that: redis-benchmark with -P 16 does
 * roughly ten times more).  Commands are served first come, first served,
 * so the server is one FIFO queue whose departures follow the Lindley
 * recursion: start = max(arrival, free), free = start + cost; no event is
 * needed.  A request's round trips are booked when its worker starts, in
 * event order.
 *
 * Persistence decides which writes survive a crash (the crash is taken to be
 * the host's: the page cache is lost too, as when a node fails):
 *  - aof-always: every write is fsynced before it is acknowledged: none lost;
 *  - aof-everysec: flushAppendOnlyFile starts a background fsync when a
 *    second has passed since the last one (aof.c), covering every write
 *    made before it, including the one that triggered it; writes after the
 *    last fsync started are lost;
 *  - rdb: serverCron (10 times a second) forks a snapshot when any rule
 *    `save S N` holds: at least N changes since the last save and
 *    unixtime - lastsave > S (server.c); writes after the last fork are lost
 *    (the snapshot is taken to be written at once);
 *  - none: everything is lost;
 *  - sentinel: the promoted replica has every write up to repl_lag before
 *    the crash, whatever the persistence.
 * A lost write does not always lose a session: a session *created* after
 * the durable point is gone, but one only *refreshed* after it comes back
 * with the expiry of its last durable write, and is lost only if that has
 * passed when Redis is back.  To know that expiry, each user keeps
 * persisted_ms, updated lazily at its writes: when a user writes and its
 * previous write was durable, the current expiry is the one the durable
 * copy has.  Exact for aof and rdb.  For sentinel, whose durable point
 * moves continuously, a session created after it is lost exactly (users
 * keep created_ms); the expiry a lost refresh leaves is exact when the
 * user's writes are further apart than repl_lag, and otherwise taken as at
 * least creation + TTL.
 */
#include <math.h>

#include "model.h"

void redis_init(struct sim *S)
{
	struct redis_state *r = &S->redis;

	r->up = true;
	r->rt_us = US / S->p->redis_ops_per_s;
	r->op_us = r->rt_us / 10;
	r->persist_ms = -1;
	r->fsync_ms = 0;
	r->lastsave_s = 0;
}

double redis_round_trip(struct sim *S, double t_us, unsigned ops)
{
	struct redis_state *r = &S->redis;
	double half = S->p->redis_rtt_ms * 500.0, arrive = t_us + half;
	double start = arrive > r->free_us ? arrive : r->free_us, cost = r->rt_us + (ops - 1) * r->op_us;

	r->free_us = start + cost;
	r->busy_us += cost;
	if (start - arrive > r->wait_max_us)
		r->wait_max_us = start - arrive;
	return r->free_us + half - t_us;
}

/* Writes at or before this ms are durable (as of now). */
static int64_t durable_ms(const struct sim *S)
{
	const struct sim_params *p = S->p;

	if (p->sentinel)
		return (int64_t)S->now_ms - (int64_t)(p->repl_lag_s * 1000);
	switch (p->persistence) {
	case P_AOF_ALWAYS:
		return S->now_ms;
	case P_AOF_EVERYSEC:
		return S->redis.fsync_ms;
	case P_RDB:
		return S->redis.persist_ms;
	default:
		return -1;
	}
}

void redis_write(struct sim *S, struct user *u, uint32_t uid, enum sim_write what, unsigned changes)
{
	const struct sim_params *p = S->p;
	struct redis_state *r = &S->redis;
	uint32_t now = S->now_ms;

	if (p->persistence == P_AOF_EVERYSEC && now - r->fsync_ms >= 1000)
		r->fsync_ms = now;              /* the write(2) before it includes this write */
	r->dirty += changes;
	if (what == SIM_W_CART) {
		if (u->cart_ms <= now)
			u->cart_first_ms = now;
		u->cart_ms = now + (uint32_t)(p->cart_ttl_s * 1000);
	} else {
		if ((int64_t)u->write_ms <= durable_ms(S))
			u->persisted_ms = u->expiry_ms;     /* what the durable copy holds */
		if (what == SIM_W_CREATE)
			u->created_ms = now;
		u->expiry_ms = now + (uint32_t)(p->session_ttl_s * 1000);
		u->write_ms = now;
	}
	if (p->trace) {
		struct sim_trace_write w = { now_s(S), uid, what, changes };

		p->trace(p->trace_ctx, &w);
	}
}

/* serverCron's save-point check (rdb), 10 times a second. */
void redis_cron(struct sim *S)
{
	struct redis_state *r = &S->redis;
	int64_t unixtime = (int64_t)floor(now_s(S));

	if (r->up) {
		for (int j = 0; j < S->p->nsave; j++)
			if (r->dirty >= S->p->save[j].changes && unixtime - r->lastsave_s > (int64_t)S->p->save[j].seconds) {
				r->persist_ms = S->now_ms;  /* the fork: the snapshot holds every write so far */
				r->lastsave_s = unixtime;
				r->dirty = 0;
				break;
			}
	}
	push_at_us(S, S->now + 100000, EV_REDIS_CRON, 0, 0);     /* exact 100 ms steps */
}

void redis_crash(struct sim *S)
{
	const struct sim_params *p = S->p;
	struct redis_state *r = &S->redis;
	uint32_t now = S->now_ms;
	double back = now_s(S) + (p->sentinel ? p->down_after_s + p->failover_s : p->redis_down_s);
	uint32_t back_ms = (uint32_t)(back * 1000);
	int64_t durable = durable_ms(S);
	uint32_t ttl = (uint32_t)(p->session_ttl_s * 1000);
	uint64_t live = S->live_sessions, at_crash = 0, lost = 0;

	if (!r->up)
		return;
	for (uint32_t id = 0; id < S->nusers; id++) {
		struct user *u = &S->users[id];
		uint32_t restored;

		if (!(u->flags & U_ACTIVE))
			continue;
		if (u->cart_ms > now && (int64_t)u->cart_first_ms > durable) {
			u->cart_ms = 0;
			S->s.carts_lost++;
		}
		if (u->expiry_ms <= now || !(u->flags & U_SESSION))
			continue;
		at_crash++;
		if ((int64_t)u->created_ms > durable)
			restored = 0;                   /* created after the durable point: not in the copy */
		else if ((int64_t)u->write_ms <= durable)
			restored = u->expiry_ms;
		else    /* a refresh is lost: the copy has an older expiry, at least creation + TTL */
			restored = u->persisted_ms > u->created_ms + ttl ? u->persisted_ms : u->created_ms + ttl;
		if ((int64_t)u->write_ms > durable)
			u->write_ms = durable > 0 ? (uint32_t)durable : 0;     /* the copy's last write */
		u->expiry_ms = restored;
		if (restored <= back_ms) {
			S->s.sessions_expired_at_restore += restored > now;
			u->expiry_ms = 0;
			u->flags &= (uint8_t)~U_SESSION;
			S->live_sessions--;
			lost++;
		}
	}
	S->s.sessions_lost += lost;
	S->s.sessions_at_crash = at_crash;
	r->up = false;
	r->restart_t = back;
	sim_mark(S, (int64_t)lost, live, "Redis crash");
	push(S, back, EV_REDIS_UP, 0, 0);
}

void redis_up(struct sim *S)
{
	struct redis_state *r = &S->redis;

	r->up = true;
	r->free_us = (double)S->now;
	/* what was loaded is on disk: durable as of now */
	r->fsync_ms = S->now_ms;
	r->persist_ms = S->now_ms;
	r->lastsave_s = (int64_t)floor(now_s(S));
	r->dirty = 0;
	sim_mark(S, -1, 0, S->p->sentinel ? "replica promoted" : "Redis back");
}
