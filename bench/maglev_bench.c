/*
 * Maglev table build time and pick cost of each algorithm, printed (a
 * benchmark, not a test).  Run: build/bench/maglev_bench
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tether/lb.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void pool_of(struct lb_pool *pool, const struct lb_algo *a, struct lb_server *srv, int n)
{
	struct lb_params p;
	char *err = NULL;

	lb_params_default(&p);
	if (lb_pool_init(pool, a, &p, &err) < 0) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	for (int i = 0; i < n; i++) {
		memset(&srv[i], 0, sizeof(srv[i]));
		snprintf(srv[i].name, sizeof(srv[i].name), "server-%d", i);
		srv[i].weight = 1 + i % 3;
		srv[i].up = true;
		lb_pool_add(pool, &srv[i]);
	}
}

int main(void)
{
	static struct lb_server srv[1001];
	const struct lb_algo *const *a;
	struct lb_pool pool;
	struct lb_rng rng;
	double t0, best = 1e9;

	/* table build: adding the 1000th server rebuilds the whole table */
	for (int r = 0; r < 5; r++) {
		pool_of(&pool, &lb_algo_iphash, srv, 999);
		t0 = now();
		memset(&srv[999], 0, sizeof(srv[999]));
		snprintf(srv[999].name, sizeof(srv[999].name), "server-999");
		srv[999].weight = 1;
		srv[999].up = true;
		lb_pool_add(&pool, &srv[999]);
		if (now() - t0 < best)
			best = now() - t0;
		lb_pool_fini(&pool);
	}
	printf("maglev table build, 1000 servers, M = 65537: %.2f ms (best of 5)\n", best * 1e3);

	lb_rng_seed(&rng, 1);
	for (a = lb_algo_list(); *a; a++) {
		const int picks = 2000000;
		struct lb_key k;

		pool_of(&pool, *a, srv, 10);
		memset(&k, 0, sizeof(k));
		k.addr.len = 4;
		t0 = now();
		for (int i = 0; i < picks; i++) {
			int idx;

			memcpy(k.addr.bytes, &i, 4);
			idx = lb_pick(&pool, &k, 0, &rng);
			lb_conn_open(&pool, pool.servers[idx]);
			lb_conn_close(&pool, pool.servers[idx]);
		}
		printf("%-10s pick + open + close, 10 servers: %6.1f ns\n", (*a)->name, (now() - t0) / picks * 1e9);
		lb_pool_fini(&pool);
	}
	return 0;
}
