/*
 * store.c - tether-pod's session stores (see docs/lab.md, "tether-pod"):
 *
 *   memory       the session lives in this pod's table (sesstab.c)
 *   redis        every request reads and refreshes sess:<id> in Redis
 *   redis+cache  a session read from (or written to) Redis is served from
 *                the local cache for --cache-ttl seconds without a Redis
 *                read; the sliding TTL is still refreshed in Redis by a
 *                touch the answer does not wait for (tether-sim's model D)
 *
 * Redis layout (the reference workload):
 *   sess:<id>    HASH user, created, last_seen, views, pod; TTL session_ttl,
 *                refreshed by every request that finds it (sliding)
 *   cart:<user>  HASH item -> quantity; TTL POD_CART_TTL
 * A login is HSET + EXPIRE, pipelined (one round trip).  A read is one
 * EVALSHA of store_touch_lua, which checks, refreshes and reads at once, so
 * a session deleted or expired in Redis is never re-created by a touch.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "pod.h"

/* KEYS[1] sess:<id>; ARGV[1] now (unix s); ARGV[2] TTL (s).
 * nil when the session does not exist, else {user, views}. */
const char store_touch_lua[] =
	"if redis.call('EXPIRE', KEYS[1], ARGV[2]) == 0 then return false end\n"
	"redis.call('HSET', KEYS[1], 'last_seen', ARGV[1])\n"
	"local v = redis.call('HINCRBY', KEYS[1], 'views', 1)\n"
	"return {redis.call('HGET', KEYS[1], 'user'), v}\n";

#define TOUCH_INFLIGHT_MAX 1000

static const char *const src_names[] = { "local", "cache", "redis", "miss", "new" };

/* splitmix64 (Steele, Lea, Flood 2014) over a randomly seeded state: ids
 * that do not repeat across pods sharing one Redis.  Never 0. */
static uint64_t new_sid(struct pod *p)
{
	uint64_t z = (p->sid_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	return z ? z : 1;
}

static void answer_login(struct pod *p, struct client *c, uint64_t sid, const char *user)
{
	char extra[128], body[160];

	snprintf(extra, sizeof(extra), "Set-Cookie: SID=%016" PRIx64 "; Path=/; HttpOnly\r\nX-Session: new\r\n", sid);
	snprintf(body, sizeof(body), "%s logged in %s\n", p->name, user);
	conn_respond(c, 200, "text/plain", extra, body);
}

static void answer_page(struct pod *p, struct client *c, enum sess_src src, const char *user, uint32_t item,
                        uint32_t views, bool cart)
{
	char extra[64], body[192];

	snprintf(extra, sizeof(extra), "X-Session: %s\r\n", src_names[src]);
	if (cart)
		snprintf(body, sizeof(body), "%s cart %s item %" PRIu32 "\n", p->name, user, item);
	else
		snprintf(body, sizeof(body), "%s item %" PRIu32 " for %s (views %" PRIu32 ")\n", p->name, item, user,
		         views);
	conn_respond(c, 200, "text/plain", extra, body);
}

static int answer_miss(struct pod *p, struct client *c)
{
	char body[128];

	p->st.misses++;
	snprintf(body, sizeof(body), "%s: login required\n", p->name);
	conn_respond(c, 401, "text/plain", "X-Session: miss\r\n", body);
	return APP_DONE;
}

/* A 503 for a Redis op that failed or could not be sent. */
static int refuse(struct pod *p, struct client *c, const char *reason)
{
	p->st.redis_errors++;
	app_unavailable(p, c, reason);
	return APP_DONE;
}

/* ---- memory ---- */

static int mem_login(struct pod *p, struct client *c, const char *user, size_t ul)
{
	double now = ev_now(p->loop);
	uint64_t sid = new_sid(p);
	struct sess *s = sesstab_put(&p->sessions, sid, now + p->session_ttl, now);

	if (!s) {
		app_unavailable(p, c, "session table full");
		return APP_DONE;
	}
	memcpy(s->user, user, ul);
	s->created = (int64_t)now;
	p->st.sessions_created++;
	answer_login(p, c, sid, s->user);
	return APP_DONE;
}

static int mem_item(struct pod *p, struct client *c, uint64_t sid, uint32_t item, bool cart)
{
	double now = ev_now(p->loop);
	struct sess *s = sesstab_find(&p->sessions, sid, now);

	if (!s)
		return answer_miss(p, c);
	s->expires = now + p->session_ttl;
	s->views++;
	p->st.hits_local++;
	if (cart) {
		s->cart++;
		p->st.carts++;
	}
	answer_page(p, c, SRC_LOCAL, s->user, item, s->views, cart);
	return APP_DONE;
}

/* ---- Redis commands ---- */

struct cmd {
	int argc;
	const char *argv[12];
	size_t len[12];
};

static void arg(struct cmd *m, const char *s)
{
	m->argv[m->argc] = s;
	m->len[m->argc++] = strlen(s);
}

static int send_cmd(struct pod *p, struct pod_op *op, struct cmd *m)
{
	return rlink_cmd(&p->redis, &op->r, m->argc, m->argv, m->len);
}

static void send_login(struct pod *p, struct pod_op *op)
{
	char key[32], now[24], ttl[24];
	struct cmd hset = { 0 }, expire = { 0 };

	snprintf(key, sizeof(key), "sess:%016" PRIx64, op->sid);
	snprintf(now, sizeof(now), "%lld", (long long)ev_now(p->loop));
	snprintf(ttl, sizeof(ttl), "%lld", (long long)p->session_ttl);
	arg(&hset, "HSET"), arg(&hset, key), arg(&hset, "user"), arg(&hset, op->user);
	arg(&hset, "created"), arg(&hset, now), arg(&hset, "last_seen"), arg(&hset, now);
	arg(&hset, "views"), arg(&hset, "0"), arg(&hset, "pod"), arg(&hset, p->name);
	arg(&expire, "EXPIRE"), arg(&expire, key), arg(&expire, ttl);
	if (send_cmd(p, op, &hset) == 0)
		send_cmd(p, op, &expire);
}

static void send_touch(struct pod *p, struct pod_op *op)
{
	char key[32], now[24], ttl[24];
	struct cmd m = { 0 };

	snprintf(key, sizeof(key), "sess:%016" PRIx64, op->sid);
	snprintf(now, sizeof(now), "%lld", (long long)ev_now(p->loop));
	snprintf(ttl, sizeof(ttl), "%lld", (long long)p->session_ttl);
	arg(&m, "EVALSHA"), arg(&m, p->redis.sha), arg(&m, "1"), arg(&m, key), arg(&m, now), arg(&m, ttl);
	send_cmd(p, op, &m);
}

static void send_cart(struct pod *p, struct pod_op *op)
{
	char key[48], item[16], ttl[16];
	struct cmd incr = { 0 }, expire = { 0 };

	snprintf(key, sizeof(key), "cart:%s", op->user);
	snprintf(item, sizeof(item), "%" PRIu32, op->item);
	snprintf(ttl, sizeof(ttl), "%d", POD_CART_TTL);
	arg(&incr, "HINCRBY"), arg(&incr, key), arg(&incr, item), arg(&incr, "1");
	arg(&expire, "EXPIRE"), arg(&expire, key), arg(&expire, ttl);
	if (send_cmd(p, op, &incr) == 0)
		send_cmd(p, op, &expire);
}

static struct pod_op *new_op(struct pod *p, enum op_kind kind, uint64_t sid)
{
	struct pod_op *op = (struct pod_op *)rlink_op(&p->redis);

	if (op) {
		op->kind = kind;
		op->sid = sid;
	}
	return op;
}

/* After sending op's commands: c waits for it, or gets its 503 when
 * nothing could be sent. */
static int wait_or_refuse(struct pod *p, struct client *c, struct pod_op *op)
{
	if (op->r.pending == 0) {
		refuse(p, c, op->r.reason);
		rlink_op_put(&p->redis, &op->r);
		return APP_DONE;
	}
	conn_park(c, op);
	return APP_WAIT;
}

/* A touch nobody waits for (a cache hit still slides the Redis TTL).
 * Nothing bounds these but this: past TOUCH_INFLIGHT_MAX ops in flight,
 * Redis is behind, and piling touches on it would only push the ops that
 * clients wait for past the timeout; a skipped touch costs nothing while
 * the session's TTL (an hour) is far longer than Redis's lag. */
static void touch(struct pod *p, uint64_t sid)
{
	struct pod_op *op;

	if (p->redis.inflight >= TOUCH_INFLIGHT_MAX) {
		p->st.touches_skipped++;
		return;
	}
	op = rlink_up(&p->redis) ? new_op(p, OP_TOUCH, sid) : NULL;
	if (op)
		send_touch(p, op);
	if (!op || op->r.pending == 0) {
		p->st.redis_errors++;
		if (op)
			rlink_op_put(&p->redis, &op->r);
	}
}

/* ---- redis and redis+cache ---- */

static int redis_login(struct pod *p, struct client *c, const char *user, size_t ul)
{
	struct pod_op *op;

	if (!rlink_up(&p->redis))
		return refuse(p, c, p->redis.reason);
	op = new_op(p, OP_LOGIN, new_sid(p));
	if (!op)
		return refuse(p, c, "out of memory");
	memcpy(op->user, user, ul);
	send_login(p, op);
	return wait_or_refuse(p, c, op);
}

static int cache_hit(struct pod *p, struct client *c, struct sess *s, uint32_t item, bool cart)
{
	struct pod_op *op;

	p->st.hits_cache++;
	s->views++;
	touch(p, s->sid);
	if (!cart) {
		answer_page(p, c, SRC_CACHE, s->user, item, s->views, false);
		return APP_DONE;
	}
	op = rlink_up(&p->redis) ? new_op(p, OP_CART, s->sid) : NULL;
	if (!op)
		return refuse(p, c, p->redis.reason);
	op->src = SRC_CACHE;
	op->item = item;
	op->views = s->views;
	memcpy(op->user, s->user, sizeof(op->user));
	send_cart(p, op);
	return wait_or_refuse(p, c, op);
}

static int redis_item(struct pod *p, struct client *c, uint64_t sid, uint32_t item, bool cart)
{
	struct pod_op *op;

	if (p->store == STORE_CACHE) {
		struct sess *s = sesstab_find(&p->sessions, sid, ev_now(p->loop));

		if (s)
			return cache_hit(p, c, s, item, cart);
	}
	if (!rlink_up(&p->redis))
		return refuse(p, c, p->redis.reason);
	op = new_op(p, OP_LOAD, sid);
	if (!op)
		return refuse(p, c, "out of memory");
	op->item = item;
	op->cart = cart;
	send_touch(p, op);
	return wait_or_refuse(p, c, op);
}

int store_login(struct pod *p, struct client *c, const char *user, size_t ul)
{
	return p->store == STORE_MEMORY ? mem_login(p, c, user, ul) : redis_login(p, c, user, ul);
}

int store_item(struct pod *p, struct client *c, uint64_t sid, uint32_t item, bool cart)
{
	if (!sid)
		return answer_miss(p, c);
	return p->store == STORE_MEMORY ? mem_item(p, c, sid, item, cart) : redis_item(p, c, sid, item, cart);
}

/* ---- replies ---- */

void store_reply(void *owner, struct rop *rop, const redisReply *r)
{
	struct pod_op *op = (struct pod_op *)rop;

	if (op->kind != OP_LOAD && op->kind != OP_TOUCH)
		return;             /* HSET, EXPIRE, HINCRBY: no news but success */
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING &&
	    r->element[0]->len <= SESS_USER_MAX && r->element[1]->type == REDIS_REPLY_INTEGER) {
		op->found = true;
		memcpy(op->user, r->element[0]->str, r->element[0]->len);
		op->views = (uint32_t)r->element[1]->integer;
	}
}

/* Puts op's session in the cache, fresh for cache_ttl. */
static void cache_put(struct pod *p, const struct pod_op *op)
{
	double now = ev_now(p->loop);
	struct sess *s = sesstab_put(&p->sessions, op->sid, now + p->cache_ttl, now);

	if (s) {
		memcpy(s->user, op->user, sizeof(s->user));
		s->views = op->views;
		s->created = (int64_t)now;
	}
}

static void load_done(struct pod *p, struct pod_op *op, struct client *c)
{
	if (!op->found) {
		if (p->store == STORE_CACHE)
			sesstab_del(&p->sessions, op->sid);
		if (c) {
			answer_miss(p, c);
			conn_resume(c);
		} else {
			p->st.misses++;
		}
		return;
	}
	p->st.hits_redis++;
	if (p->store == STORE_CACHE)
		cache_put(p, op);
	if (!c)
		return;
	if (!op->cart) {
		answer_page(p, c, SRC_REDIS, op->user, op->item, op->views, false);
		conn_resume(c);
		return;
	}
	op->kind = OP_CART;     /* second round trip, the client still parked on op */
	op->src = SRC_REDIS;
	send_cart(p, op);
	if (op->r.pending == 0) {
		refuse(p, c, op->r.reason);
		conn_resume(c);
	}
}

void store_done(void *owner, struct rop *rop)
{
	struct pod *p = owner;
	struct pod_op *op = (struct pod_op *)rop;
	struct client *c = op->client;

	if (op->r.failed) {
		p->st.redis_errors++;
		if (c) {
			app_unavailable(p, c, op->r.reason);
			conn_resume(c);
		}
		return;
	}
	switch (op->kind) {
	case OP_LOGIN:
		p->st.sessions_created++;
		if (p->store == STORE_CACHE)
			cache_put(p, op);
		if (c) {
			answer_login(p, c, op->sid, op->user);
			conn_resume(c);
		}
		break;
	case OP_LOAD:
		load_done(p, op, c);
		break;
	case OP_CART:
		p->st.carts++;
		if (c) {
			answer_page(p, c, op->src, op->user, op->item, op->views, true);
			conn_resume(c);
		}
		break;
	case OP_TOUCH:
		if (!op->found)         /* gone from Redis: the next request misses */
			sesstab_del(&p->sessions, op->sid);
		break;
	}
}
