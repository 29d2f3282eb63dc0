/*
 * Exponential variates of the simulator (sim/expo.c, ziggurat): mean 1,
 * variance 1, and the survival function e^-x at points inside the layers,
 * at the layer edges and in the tail beyond the base layer (x > 7.7), where
 * a wrong table or slow path would show.  Tolerances are 5 standard errors
 * for 4 million draws.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "expo.h"

#define N 4000000

static void test_exponential(void **unused)
{
	static const double at[] = { 0.05, 0.3, 1.0, 2.0, 3.5, 6.0, 7.69, 9.0 };
	uint64_t above[sizeof(at) / sizeof(at[0])] = { 0 };
	struct sim_expo z;
	struct lb_rng rng;
	double sum = 0, sum2 = 0, min = 1e9;

	(void)unused;
	sim_expo_init(&z);
	lb_rng_seed(&rng, 7);
	for (int n = 0; n < N; n++) {
		double x = sim_expo_draw(&z, &rng);

		assert_true(x >= 0 && isfinite(x));
		sum += x;
		sum2 += x * x;
		if (x < min)
			min = x;
		for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++)
			above[i] += x > at[i];
	}
	assert_true(fabs(sum / N - 1.0) < 5 * 1.0 / sqrt(N));
	assert_true(fabs(sum2 / N - sum * sum / N / N - 1.0) < 5 * sqrt(8.0 / N));
	assert_true(min < 1e-5);
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		double p = exp(-at[i]), se = sqrt(p * (1 - p) / N);

		if (fabs((double)above[i] / N - p) > 5 * se + 1e-7)
			fail_msg("P(X > %.2f) = %.6g, expected %.6g", at[i], (double)above[i] / N, p);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exponential),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
