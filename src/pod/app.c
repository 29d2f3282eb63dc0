/*
 * app.c - tether-pod's routes (see pod.h and docs/lab.md):
 *
 *   GET /health                 200 "ok" (or --health-status)
 *   GET /stats                  200, the counters as one JSON object
 *   GET|POST /login?user=U      a new session, cookie SID        (a store)
 *   GET /item/N                 a page that needs the session     (a store)
 *   POST /cart/add?item=N       adds to cart:<user>               (a store)
 *   anything else               200 "NAME\n"
 *
 * Session answers carry X-Session; every answer carries X-Pod (conn.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "pod.h"

static const char *const store_names[] = { "none", "memory", "redis", "redis+cache" };

static bool method_is(const struct req *r, const char *m)
{
	return r->method_len == strlen(m) && memcmp(r->method, m, r->method_len) == 0;
}

static void plain(struct pod *p, struct client *c, int status, const char *text)
{
	char body[160];

	snprintf(body, sizeof(body), "%s%s%s\n", p->name, *text ? ": " : "", text);
	conn_respond(c, status, "text/plain", "", body);
}

void app_unavailable(struct pod *p, struct client *c, const char *reason)
{
	char body[192];

	p->st.unavailable++;
	snprintf(body, sizeof(body), "%s: redis unavailable: %s\n", p->name, reason);
	conn_respond(c, 503, "text/plain", "Retry-After: 1\r\n", body);
}

static void health(struct pod *p, struct client *c)
{
	const char *extra = "";

	if (p->store == STORE_REDIS || p->store == STORE_CACHE)
		extra = rlink_up(&p->redis) ? "X-Redis: up\r\n" : "X-Redis: down\r\n";
	conn_respond(c, p->health_status, "text/plain", extra, "ok\n");
}

static void stats(struct pod *p, struct client *c)
{
	const struct pod_stats *s = &p->st;
	bool redis = p->store == STORE_REDIS || p->store == STORE_CACHE;
	char body[1024];

	snprintf(body, sizeof(body),
	         "{\"pod\": \"%s\", \"store\": \"%s\", \"requests\": %" PRIu64 ", \"sessions_created\": %" PRIu64
	         ", \"misses\": %" PRIu64 ", \"hits_local\": %" PRIu64 ", \"hits_cache\": %" PRIu64
	         ", \"hits_redis\": %" PRIu64 ", \"carts\": %" PRIu64 ", \"unavailable\": %" PRIu64
	         ", \"redis_errors\": %" PRIu64 ", \"touches_skipped\": %" PRIu64 ", \"redis_commands\": %" PRIu64
	         ", \"redis_up\": %s"
	         ", \"redis_connects\": %" PRIu64 ", \"sessions_local\": %zu, \"client_addresses\": %zu"
	         ", \"connections\": %" PRIu64 ", \"proxy_errors\": %" PRIu64 "}\n",
	         p->name, store_names[p->store], s->requests, s->sessions_created, s->misses, s->hits_local,
	         s->hits_cache, s->hits_redis, s->carts, s->unavailable, s->redis_errors,
	         s->touches_skipped, redis ? p->redis.commands : 0, redis && rlink_up(&p->redis) ? "true" : "false",
	         redis ? p->redis.ups : 0, p->store == STORE_NONE ? 0 : sesstab_sweep(&p->sessions, ev_now(p->loop)),
	         p->addrs.count, s->connections, s->proxy_errors);
	conn_respond(c, 200, "application/json", "", body);
}

/* A user name: 1..SESS_USER_MAX of A-Z a-z 0-9 . _ - @ (no escaping needed
 * in a header, a body or a Redis key). */
static bool good_user(const char *u, size_t n)
{
	static const char ok[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-@";

	if (n == 0 || n > SESS_USER_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!u[i] || !strchr(ok, u[i]))
			return false;
	return true;
}

static int login(struct pod *p, struct client *c, const struct req *r)
{
	size_t ul = 0;
	const char *u = r->query ? req_param(r->query, r->query_len, "user", &ul) : NULL;

	if (!u && r->body)
		u = req_param(r->body, r->body_len, "user", &ul);
	if (!u) {
		u = "anonymous";
		ul = strlen(u);
	}
	if (!good_user(u, ul)) {
		plain(p, c, 400, "bad user name");
		return APP_DONE;
	}
	return store_login(p, c, u, ul);
}

static int item(struct pod *p, struct client *c, const struct req *r, bool cart)
{
	const char *v;
	size_t vl;
	uint32_t n;

	if (cart) {
		v = r->query ? req_param(r->query, r->query_len, "item", &vl) : NULL;
		if (!v && r->body)
			v = req_param(r->body, r->body_len, "item", &vl);
	} else {
		v = r->path + 6;
		vl = r->path_len - 6;
	}
	if (!v || req_uint(v, vl, &n) < 0) {
		plain(p, c, cart ? 400 : 404, cart ? "give item=N" : "no such item");
		return APP_DONE;
	}
	return store_item(p, c, r->sid, n, cart);
}

int app_handle(struct pod *p, struct client *c, const struct req *r)
{
	if (req_path_is(r, "/health")) {
		health(p, c);
		return APP_DONE;
	}
	if (req_path_is(r, "/stats")) {
		stats(p, c);
		return APP_DONE;
	}
	p->st.requests++;
	if (p->store != STORE_NONE) {
		if (req_path_is(r, "/login"))
			return login(p, c, r);
		if (r->path_len > 6 && memcmp(r->path, "/item/", 6) == 0 && method_is(r, "GET"))
			return item(p, c, r, false);
		if (req_path_is(r, "/cart/add") && (method_is(r, "POST") || method_is(r, "GET")))
			return item(p, c, r, true);
	}
	plain(p, c, 200, "");
	return APP_DONE;
}
