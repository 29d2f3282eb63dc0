/*
 * expo - ziggurat tables and slow path (see expo.h).  The constants are the
 * paper's for 256 layers: r, the right edge of the base layer, and v, the
 * area of every layer.
 */
#include <math.h>

#include "expo.h"

#define ZIG_R 7.697117470131487
#define ZIG_V 3.949659822581572e-3
#define M32 4294967296.0

void sim_expo_init(struct sim_expo *z)
{
	double de = ZIG_R, te = ZIG_R, q = ZIG_V / exp(-ZIG_R);

	z->k[0] = (uint32_t)((de / q) * M32);
	z->k[1] = 0;
	z->w[0] = q / M32;
	z->w[255] = de / M32;
	z->f[0] = 1.0;
	z->f[255] = exp(-de);
	for (int i = 254; i >= 1; i--) {
		de = -log(ZIG_V / de + exp(-de));
		z->k[i + 1] = (uint32_t)((de / te) * M32);
		te = de;
		z->f[i] = exp(-de);
		z->w[i] = de / M32;
	}
}

/* U in (0, 1]: never log(0). */
static double uniform_open0(struct lb_rng *rng)
{
	return ((double)(lb_rng_next(rng) >> 11) + 1.0) * 0x1.0p-53;
}

double sim_expo_slow(const struct sim_expo *z, struct lb_rng *rng, uint32_t i, uint32_t j)
{
	for (;;) {
		uint64_t r;
		double x;

		if (i == 0)             /* the tail beyond r: r + an exponential */
			return ZIG_R - log(uniform_open0(rng));
		x = j * z->w[i];
		if (z->f[i] + uniform_open0(rng) * (z->f[i - 1] - z->f[i]) < exp(-x))
			return x;
		r = lb_rng_next(rng);
		i = (uint32_t)(r & 255);
		j = (uint32_t)(r >> 32);
		if (j < z->k[i])
			return j * z->w[i];
	}
}
