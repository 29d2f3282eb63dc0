/*
 * tether - least connections relative to weight.
 *
 * Picks the eligible server with the smallest active/weight, compared as
 * active_a * weight_b < active_b * weight_a so no division is needed.  The
 * scan starts one past the previous choice, and only a strictly better
 * server replaces the first candidate, so ties rotate round-robin and equal
 * servers share evenly (HAProxy's leastconn also round-robins among equals).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tether/lb.h"
#include "core.h"

struct lc_state {
	int next;       /* where the next scan starts */
};

static int lc_init(void **state, const struct lb_pool *pool, const struct lb_params *p, char **err)
{
	struct lc_state *st = lb_state_alloc(sizeof(*st), err);

	if (!st)
		return -ENOMEM;
	*state = st;
	return 0;
}

static void lc_fini(void *state)
{
	free(state);
}

static void lc_rebuild(void *state, const struct lb_pool *pool)
{
	struct lc_state *st = state;

	if (st->next >= pool->nservers)
		st->next = 0;
}

static int lc_pick(void *state, const struct lb_pool *pool, const struct lb_key *key,
                   uint64_t now_ms, struct lb_rng *rng)
{
	struct lc_state *st = state;
	int n = pool->nservers, best = -1;

	for (int k = 0; k < n; k++) {
		int i = (st->next + k) % n;
		const struct lb_server *s = pool->servers[i];

		if (s->weight == 0 || !lb_server_eligible(pool, s) || lb_key_tried(key, s->id))
			continue;
		if (best < 0 || (uint64_t)s->active * pool->servers[best]->weight <
		                (uint64_t)pool->servers[best]->active * s->weight)
			best = i;
	}
	if (best >= 0)
		st->next = (best + 1) % n;
	return best;
}

const struct lb_algo lb_algo_leastconn = {
	.name = "leastconn",
	.flags = LB_F_WEIGHTS | LB_F_CONNS,
	.init = lc_init,
	.fini = lc_fini,
	.rebuild = lc_rebuild,
	.pick = lc_pick,
};
