/*
 * tether - smooth weighted round-robin (the algorithm of nginx's
 * ngx_http_upstream_get_peer): every pick adds each candidate's weight to
 * its current weight, takes the largest, and subtracts the total from it.
 * Weights 5,1,1 give a a b a c a a: heavy servers are interleaved, never
 * bursted.  O(N) per pick, which is cheap for the pool sizes of L4 balancing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tether/lb.h"
#include "core.h"

struct rr_state {
	int *cw;        /* current weight per server index */
	int n;
};

static int rr_init(void **state, const struct lb_pool *pool, const struct lb_params *p, char **err)
{
	struct rr_state *st = lb_state_alloc(sizeof(*st), err);

	if (!st)
		return -ENOMEM;
	*state = st;
	return 0;
}

static void rr_fini(void *state)
{
	struct rr_state *st = state;

	if (st)
		free(st->cw);
	free(st);
}

/* Indexes may have shifted: start every server from 0 again. */
static void rr_rebuild(void *state, const struct lb_pool *pool)
{
	struct rr_state *st = state;

	if (pool->nservers > st->n) {
		int *cw = realloc(st->cw, (size_t)pool->nservers * sizeof(*cw));

		if (!cw)
			return;     /* keep the old, smaller array; rr_pick bounds by st->n */
		st->cw = cw;
		st->n = pool->nservers;
	}
	if (st->cw)
		memset(st->cw, 0, (size_t)st->n * sizeof(*st->cw));
}

static int rr_pick(void *state, const struct lb_pool *pool, const struct lb_key *key,
                   uint64_t now_ms, struct lb_rng *rng)
{
	struct rr_state *st = state;
	int best = -1, total = 0;
	int n = pool->nservers < st->n ? pool->nservers : st->n;

	for (int i = 0; i < n; i++) {
		const struct lb_server *s = pool->servers[i];

		if (s->weight == 0 || !lb_server_eligible(pool, s) || lb_key_tried(key, s->id))
			continue;
		st->cw[i] += (int)s->weight;
		total += (int)s->weight;
		if (best < 0 || st->cw[i] > st->cw[best])
			best = i;
	}
	if (best >= 0)
		st->cw[best] -= total;
	return best;
}

const struct lb_algo lb_algo_roundrobin = {
	.name = "roundrobin",
	.flags = LB_F_WEIGHTS,
	.init = rr_init,
	.fini = rr_fini,
	.rebuild = rr_rebuild,
	.pick = rr_pick,
};
