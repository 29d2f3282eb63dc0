/*
 * tether-sim - users: arrivals, visits, think times (see model.h).
 *
 * A user arrives (Poisson, at sim_arrival_rate), logs in on the pod that serves
 * its first request, then views a geometric number of pages with
 * exponential think times in between, and leaves.  Every request ends in
 * user_next() exactly once, answered or failed, so an active user always
 * has exactly one thing pending: a request event, a queue place, a worker,
 * or a think time.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

/* Arrival rate at time t (users/s): constant, a linear ramp, or a day
 * curve whose mean over 24 h is user_rate and whose peak is 1.8 x. */
double sim_arrival_rate(const struct sim_params *p, double t)
{
	if (p->daily)
		return p->user_rate * (1.0 - 0.8 * cos(2 * M_PI * (t - 4 * 3600.0) / 86400.0));
	if (p->ramp_s > 0)
		return p->user_rate + (p->ramp_to - p->user_rate) * fmin(1.0, t / p->ramp_s);
	return p->user_rate;
}

/* Doubles the user table; false (and S->nomem) when memory ran out. */
static bool users_grow(struct sim *S)
{
	uint32_t cap = S->ucap ? S->ucap * 2 : 4096;
	struct user *nu = aligned_alloc(_Alignof(struct user), cap * sizeof(*nu));
	uint32_t *nf = realloc(S->free_list, cap * sizeof(*nf));

	if (nf)
		S->free_list = nf;
	if (!nu || !nf) {
		free(nu);
		S->nomem = 1;
		return false;
	}
	if (S->users)
		memcpy(nu, S->users, S->nusers * sizeof(*nu));
	free(S->users);
	S->users = nu;
	S->ucap = cap;
	return true;
}

/* A new visiting user; UINT32_MAX when out of memory. */
uint32_t user_new(struct sim *S)
{
	const struct sim_params *p = S->p;
	struct user *u;
	uint32_t id;

	if (S->nfree) {
		id = S->free_list[--S->nfree];
	} else {
		if (S->nusers == S->ucap && !users_grow(S))
			return UINT32_MAX;
		id = S->nusers++;
	}
	u = &S->users[id];
	memset(u, 0, sizeof(*u));
	u->session_pod = u->cache_pod = u->cookie_pod = -1;
	u->flags = U_ACTIVE;
	u->addr = p->users_per_address > 1 ? (uint32_t)(lb_rng_next(&S->rng) % (S->nusers / p->users_per_address + 1))
	                                   : (uint32_t)lb_rng_next(&S->rng);
	u->pages_left = (uint16_t)sim_visit_pages(p, &S->rng);
	return id;
}

/* A geometric number of requests with mean `pages`, by inversion:
 * P(n > k) = (1 - q)^k, so n = 1 + floor(ln U / ln(1 - q)).  One visit of
 * one page draws nothing (the random stream, hence every result of a
 * seed, depends on it). */
unsigned sim_visit_pages(const struct sim_params *p, struct lb_rng *rng)
{
	double q = 1.0 / (p->pages < 1 ? 1 : p->pages);
	double n = q >= 1 ? 1 : 1 + floor(log(1.0 - lb_rng_double(rng)) / log1p(-q));

	return (unsigned)fmin(n, 60000);
}

bool sim_address_changes(const struct sim_params *p, struct lb_rng *rng)
{
	return p->address_change > 0 && lb_rng_double(rng) < p->address_change;
}

static void user_leave(struct sim *S, uint32_t id)
{
	struct user *u = &S->users[id];

	session_drop(S, u, id);
	u->flags = 0;
	S->free_list[S->nfree++] = id;
}

void user_next(struct sim *S, uint32_t uid)
{
	struct user *u = &S->users[uid];

	if (--u->pages_left == 0) {
		user_leave(S, uid);
		return;
	}
	push(S, now_s(S) + expo(S, S->p->think_s), EV_REQUEST, 0, uid);
}

/* The request failed (the counter says how); the user goes on. */
void user_failed(struct sim *S, uint32_t uid, uint64_t *counter)
{
	(*counter)++;
	S->s.failed++;
	S->rep.failed++;
	user_next(S, uid);
}
