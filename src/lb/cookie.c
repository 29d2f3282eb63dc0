/*
 * tether - cookie affinity.
 *
 * The daemon peeks at the client's first HTTP/1.x request head and passes
 * the affinity cookie's value in key->cookie.  A value equal to an eligible,
 * untried server's cookie (lb_cookie_value of its name under the secret)
 * routes there; anything else - no cookie, an unknown value, a server that
 * is down, draining, full or removed - is chosen by the fallback algorithm
 * (params.fallback, leastconn by default), and the daemon then issues a
 * fresh cookie for the chosen server.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tether/err.h"
#include "tether/lb.h"
#include "core.h"

struct ck_state {
	const struct lb_algo *fallback;
	void *fstate;
};

static int ck_validate(const struct lb_params *p, char **err)
{
	if (p->fallback && (p->fallback->flags & LB_F_NEEDS_HTTP))
		return tether_err(err, -EINVAL, "cookie.fallback: \"%s\" cannot be a fallback (it needs a cookie itself)",
		                  p->fallback->name);
	return 0;
}

static int ck_init(void **state, const struct lb_pool *pool, const struct lb_params *p, char **err)
{
	struct ck_state *st;
	int rc = ck_validate(p, err);

	if (rc < 0)
		return rc;
	st = lb_state_alloc(sizeof(*st), err);
	if (!st)
		return -ENOMEM;
	st->fallback = p->fallback ? p->fallback : &lb_algo_leastconn;
	rc = st->fallback->init(&st->fstate, pool, p, err);
	if (rc < 0) {
		free(st);
		return rc;
	}
	*state = st;
	return 0;
}

static void ck_fini(void *state)
{
	struct ck_state *st = state;

	if (!st)
		return;
	st->fallback->fini(st->fstate);
	free(st);
}

static void ck_rebuild(void *state, const struct lb_pool *pool)
{
	struct ck_state *st = state;

	st->fallback->rebuild(st->fstate, pool);
}

static int ck_pick(void *state, const struct lb_pool *pool, const struct lb_key *key,
                   uint64_t now_ms, struct lb_rng *rng)
{
	struct ck_state *st = state;

	if (key->cookie) {
		for (int i = 0; i < pool->nservers; i++) {
			const struct lb_server *s = pool->servers[i];

			if (lb_cookie_names(key, s)) {
				if (lb_server_eligible(pool, s) && !lb_key_tried(key, s->id))
					return i;
				break;
			}
		}
	}
	return st->fallback->pick(st->fstate, pool, key, now_ms, rng);
}

static void ck_conn_open(void *state, const struct lb_pool *pool, int server)
{
	struct ck_state *st = state;

	if (st->fallback->conn_open)
		st->fallback->conn_open(st->fstate, pool, server);
}

static void ck_conn_close(void *state, const struct lb_pool *pool, int server)
{
	struct ck_state *st = state;

	if (st->fallback->conn_close)
		st->fallback->conn_close(st->fstate, pool, server);
}

const struct lb_algo lb_algo_cookie = {
	.name = "cookie",
	.flags = LB_F_NEEDS_HTTP | LB_F_NEEDS_ADDR | LB_F_WEIGHTS | LB_F_CONNS,
	.validate = ck_validate,
	.init = ck_init,
	.fini = ck_fini,
	.rebuild = ck_rebuild,
	.pick = ck_pick,
	.conn_open = ck_conn_open,
	.conn_close = ck_conn_close,
};
