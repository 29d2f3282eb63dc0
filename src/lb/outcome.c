/*
 * tether - the outcome policy: what a connect's result or a health check's
 * result does to a server, when a connection may try another server, and
 * when an answer must carry an affinity cookie (contracts in lb.h).
 *
 * These are the rules HAProxy spreads over check.c (rise/fall, observe
 * layer4) and backend.c (redispatch after a failed connect, `retries`),
 * and nginx over ngx_stream_upstream_*_module's `free(..., failed)`.  They
 * live here, in the pure core, so that the daemon (src/daemon) and the
 * simulator (sim/) make exactly the same decisions.
 */
#include "tether/lb.h"

void lb_server_health_init(const struct lb_pool *pool, struct lb_server *s, bool start_up)
{
	hc_init(&s->hc, &pool->params.health, start_up);
	s->up = s->hc.up;
}

enum hc_change lb_server_checked(struct lb_pool *pool, struct lb_server *s, bool ok)
{
	enum hc_change ch = hc_report(&s->hc, &pool->params.health, ok);

	if (ch != HC_SAME)
		lb_server_set_up(pool, s, ch == HC_WENT_UP);
	return ch;
}

enum hc_change lb_server_observed(struct lb_pool *pool, struct lb_server *s, bool ok)
{
	const struct hc_params *h = &pool->params.health;

	if (!pool->params.observe)
		return HC_SAME;
	if (ok && (!s->up || s->hc.health == h->rise + h->fall - 1))
		return HC_SAME;
	return lb_server_checked(pool, s, ok);
}

bool lb_retry_allowed(const struct lb_pool *pool, const struct lb_key *key)
{
	return key->ntried <= pool->params.retries && key->ntried < LB_MAX_TRIED;
}

int lb_attempt(struct lb_pool *pool, struct lb_key *key, uint64_t now_ms, struct lb_rng *rng)
{
	struct lb_server *s;
	int idx;

	if (!lb_retry_allowed(pool, key))
		return -1;
	idx = lb_pick(pool, key, now_ms, rng);
	if (idx < 0)
		return lb_pool_full(pool, key) ? LB_FULL : -1;
	s = pool->servers[idx];
	lb_key_add_tried(key, s);
	lb_conn_open(pool, s);
	return idx;
}

enum hc_change lb_attempt_failed(struct lb_pool *pool, struct lb_server *s)
{
	enum hc_change ch = lb_server_observed(pool, s, false);

	lb_conn_close(pool, s);
	return ch;
}

bool lb_cookie_needed(const struct lb_pool *pool, const struct lb_key *key, const struct lb_server *s)
{
	return (pool->algo->flags & LB_F_NEEDS_HTTP) && !lb_cookie_names(key, s);
}
