/*
 * expo - exponential variates by the ziggurat method (Marsaglia and Tsang,
 * "The Ziggurat Method for Generating Random Variables", J. Stat. Softw.
 * 5(8), 2000), 256 layers.
 *
 * The simulator draws two exponentials per request (service and think
 * time); -log(U) cost more than a tenth of a run.  The ziggurat returns an
 * exactly exponential variate from one 64-bit random number 98.9 % of the
 * time (a table look-up, a compare, a multiply) and falls back to the exact
 * density test, or to -log(U) in the tail, otherwise.  Unlike the paper's
 * generator, the layer index and the value use separate bits of the random
 * number, so they are independent.
 */
#ifndef TETHER_SIM_EXPO_H
#define TETHER_SIM_EXPO_H

#include <stdint.h>

#include "tether/lb.h"

struct sim_expo {
	uint32_t k[256];        /* fast-path bound per layer, on the 32-bit value */
	double w[256];          /* layer width / 2^32 */
	double f[256];          /* density at the layer's edge */
};

/* Fills the tables (same values on every call). */
void sim_expo_init(struct sim_expo *z);
/* The slow path: a draw that fell outside the layer's rectangle. */
double sim_expo_slow(const struct sim_expo *z, struct lb_rng *rng, uint32_t i, uint32_t j);

/* A variate with mean 1. */
static inline double sim_expo_draw(const struct sim_expo *z, struct lb_rng *rng)
{
	uint64_t r = lb_rng_next(rng);
	uint32_t i = (uint32_t)(r & 255), j = (uint32_t)(r >> 32);

	if (j < z->k[i])
		return j * z->w[i];
	return sim_expo_slow(z, rng, i, j);
}

#endif
