/*
 * tether-load - the simulator's client model (sim/sim.c), drawn the same
 * way with the same generators (lb_rng, the ziggurat of sim/expo.h).
 *
 * The draws below copy three static helpers of sim/sim.c: arrival_rate(),
 * the geometric page count and the address choice of user_new(), and the
 * address change of on_request().  sim.h does not export them; they belong
 * there (e.g. sim_arrival_rate(), sim_pages()) so both programs call one
 * definition - until then a change to one must be made to the other, and
 * tests/load/test_load.py checks the model's outcome against tether-sim.
 *
 * What differs from the simulator, because real time is not virtual:
 *  - every user draws from its own generator (seeded from the arrival
 *    stream), so a seed fixes each user's pages, think times and items
 *    whatever order the answers come back in;
 *  - the address space is --addresses loopback addresses, not 2^32.
 */
#include <math.h>

#include "load.h"

/* sim.c arrival_rate(): constant, a linear ramp, or a day curve whose mean
 * over 24 h is user_rate and whose peak (16:00) is 1.8 x. */
double model_arrival_rate(const struct sim_params *p, double t)
{
	if (p->daily)
		return p->user_rate * (1.0 - 0.8 * cos(2 * M_PI * (t - 4 * 3600.0) / 86400.0));
	if (p->ramp_s > 0)
		return p->user_rate + (p->ramp_to - p->user_rate) * fmin(1.0, t / p->ramp_s);
	return p->user_rate;
}

/* sim.c user_new(): a geometric number of requests with mean `pages`, by
 * inversion: P(n > k) = (1 - q)^k, so n = 1 + floor(ln U / ln(1 - q)).
 * The first request is the login, as in the simulator. */
uint32_t model_pages(const struct sim_params *p, struct lb_rng *rng)
{
	double q = 1.0 / (p->pages < 1 ? 1 : p->pages);
	double n = q >= 1 ? 1 : 1 + floor(log(1.0 - lb_rng_double(rng)) / log1p(-q));

	return (uint32_t)fmin(n, 60000);
}

/*
 * sim.c user_new(): with users_per_address > 1, a user takes one of
 * nusers / users_per_address + 1 addresses at random (nusers: user slots
 * ever used, about the peak of users alive), so about users_per_address
 * users share each.  With 1, every user has an address of its own: the
 * simulator draws 32 random bits; here the next of the --addresses
 * addresses in turn, so users alive at once get distinct addresses while
 * there are at least as many addresses as users.
 */
uint32_t model_address(struct load *L, struct lu_user *u)
{
	unsigned upa = L->p->users_per_address;
	uint32_t n = L->o->addresses, a;

	if (n == 0)
		return 0;
	if (upa > 1) {
		a = (uint32_t)(lb_rng_next(&u->rng) % (L->nusers / upa + 1));
		return a % n;
	}
	a = L->addr_next;
	L->addr_next = (L->addr_next + 1) % n;
	return a;
}

/* sim.c on_request(): a logged-in (mobile) user moves networks with
 * probability address_change per request. */
bool model_address_changes(const struct sim_params *p, struct lb_rng *rng)
{
	return p->address_change > 0 && lb_rng_double(rng) < p->address_change;
}
