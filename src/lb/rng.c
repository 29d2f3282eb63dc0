/*
 * tether - deterministic random numbers for the pure core.
 *
 * splitmix64 (Steele, Lea, Flood, "Fast splittable pseudorandom number
 * generators", OOPSLA 2014): one 64-bit word of state, passes BigCrush, and
 * any seed (even 0) is fine.  Callers own the state, so the daemon and each
 * simulation run are reproducible and no global state exists.
 */
#include "tether/lb.h"

void lb_rng_seed(struct lb_rng *rng, uint64_t seed)
{
	rng->s = seed;
}

uint64_t lb_rng_next(struct lb_rng *rng)
{
	uint64_t z = (rng->s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Lemire's multiply-shift with rejection: unbiased, one multiply in the
 * common case (D. Lemire, "Fast random integer generation in an interval",
 * ACM TOMACS 2019). */
uint32_t lb_rng_below(struct lb_rng *rng, uint32_t n)
{
	uint64_t m = (uint64_t)(uint32_t)lb_rng_next(rng) * n;
	uint32_t low = (uint32_t)m;

	if (low < n) {
		uint32_t threshold = (uint32_t)-n % n;

		while (low < threshold) {
			m = (uint64_t)(uint32_t)lb_rng_next(rng) * n;
			low = (uint32_t)m;
		}
	}
	return (uint32_t)(m >> 32);
}

/* 53 random bits scaled to [0, 1). */
double lb_rng_double(struct lb_rng *rng)
{
	return (double)(lb_rng_next(rng) >> 11) * 0x1.0p-53;
}
