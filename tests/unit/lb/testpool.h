/* Helpers shared by the core's unit tests: a pool of N servers named s0..sN-1. */
#ifndef TESTPOOL_H
#define TESTPOOL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tether/lb.h"

struct testpool {
	struct lb_pool pool;
	struct lb_server *srv;
	int n;
};

static inline void tp_init(struct testpool *tp, const struct lb_algo *algo, const struct lb_params *p,
                           int n, const unsigned *weights)
{
	struct lb_params def;
	char *err = NULL;

	if (!p) {
		lb_params_default(&def);
		p = &def;
	}
	tp->n = n;
	tp->srv = calloc((size_t)n + 64, sizeof(*tp->srv));
	if (lb_pool_init(&tp->pool, algo, p, &err) != 0) {
		fprintf(stderr, "lb_pool_init: %s\n", err ? err : "?");
		abort();
	}
	for (int i = 0; i < n; i++) {
		snprintf(tp->srv[i].name, sizeof(tp->srv[i].name), "s%d", i);
		tp->srv[i].weight = weights ? weights[i] : 1;
		tp->srv[i].up = true;
		if (lb_pool_add(&tp->pool, &tp->srv[i]) != 0)
			abort();
	}
}

/* Adds server number i (slot i of tp->srv must be free). */
static inline struct lb_server *tp_add(struct testpool *tp, int i, unsigned weight)
{
	snprintf(tp->srv[i].name, sizeof(tp->srv[i].name), "s%d", i);
	tp->srv[i].weight = weight;
	tp->srv[i].up = true;
	if (lb_pool_add(&tp->pool, &tp->srv[i]) != 0)
		abort();
	return &tp->srv[i];
}

static inline void tp_fini(struct testpool *tp)
{
	lb_pool_fini(&tp->pool);
	free(tp->srv);
}

static inline void tp_key_v4(struct lb_key *k, uint32_t ip)
{
	memset(k, 0, sizeof(*k));
	k->addr.len = 4;
	k->addr.bytes[0] = (uint8_t)(ip >> 24);
	k->addr.bytes[1] = (uint8_t)(ip >> 16);
	k->addr.bytes[2] = (uint8_t)(ip >> 8);
	k->addr.bytes[3] = (uint8_t)ip;
}

/* Server (by pointer, stable across add/del) for a pick, NULL for -1. */
static inline struct lb_server *tp_pick(struct testpool *tp, const struct lb_key *k, struct lb_rng *rng)
{
	int i = lb_pick(&tp->pool, k, 0, rng);

	return i < 0 ? NULL : tp->pool.servers[i];
}

#endif
