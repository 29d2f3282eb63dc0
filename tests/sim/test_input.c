/*
 * tether-sim: what the input side refuses or warns about (issue 14, items
 * 9, 10, 11), and the calibration of the retail scenarios.
 * argv[1]: the folder of the scenario files (sim/scenarios).
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sim.h"

static const char *scenarios = "sim/scenarios";

/* Loads defaults + the --set list; returns sim_load's code, *msg the
 * errors or else the warnings (caller frees). */
static int load(struct sim_params *p, const char *file, char **msg, int n, ...)
{
	char *sets[16], *warn = NULL, path[512];
	va_list ap;
	int rc;

	va_start(ap, n);
	for (int i = 0; i < n; i++)
		sets[i] = va_arg(ap, char *);
	va_end(ap);
	snprintf(path, sizeof(path), "%s/%s", scenarios, file ? file : "");
	sim_params_default(p);
	rc = sim_load_warn(p, file ? path : NULL, sets, n, msg, &warn);
	if (rc == 0) {
		*msg = warn;
	} else {
		free(warn);
	}
	print_message("%s\n", *msg ? *msg : "(nothing)");
	return rc;
}

static void expect_error(int n, const char *set, const char *needle)
{
	struct sim_params p;
	char *msg = NULL;

	assert_int_not_equal(load(&p, NULL, &msg, n, set, "pods.count=3"), 0);
	assert_non_null(msg);
	assert_non_null(strstr(msg, needle));
	free(msg);
	free(p.be.servers);
}

/* --set numbers are numbers: 1e3 is 1000 (not 1), 2.5 is 2.5. */
static void test_set_numbers(void **unused)
{
	struct sim_params p;
	char *msg = NULL;

	assert_int_equal(load(&p, NULL, &msg, 2, "clients.users_per_second=1e3", "clients.pages=2.5"), 0);
	assert_true(p.user_rate == 1000);
	assert_true(p.pages == 2.5);
	free(msg);
}

/* Values the model cannot run are errors naming the setting, and errors of
 * a --set name the option. */
static void test_errors(void **unused)
{
	expect_error(1, "sim.report_interval=0s", "--set sim.report_interval=0s: ");
	expect_error(1, "sim.report_interval=0s", "report_interval: must be > 0");
	expect_error(1, "hpa.sync=0s", "hpa.sync");
	expect_error(1, "pods.count=0", "--set pods.count=0: pods.count: must be 1..");
	expect_error(1, "failures.crash_pod=7", "failures.crash_pod");
	expect_error(1, "failures.crash_pod=web9", "\"web9\" is not one of the 3 pods");
	expect_error(1, "clients.ramp_to=50", "ramp_over");
	expect_error(1, "pods.timeout=0s", "pods.timeout");
	expect_error(1, "redis.save=60", "redis.save");
	expect_error(1, "sim.seed=-1", "sim.seed");
}

static void test_cross_checks(void **unused)
{
	struct sim_params p;
	char *msg = NULL;

	assert_int_equal(load(&p, NULL, &msg, 4, "hpa.enabled=true", "hpa.min=5", "hpa.max=3", "pods.count=3"), -EINVAL);
	assert_non_null(strstr(msg, "hpa.min (5) is above hpa.max (3)"));
	free(msg);
	assert_int_equal(load(&p, NULL, &msg, 3, "failures.scale_at=100s", "failures.scale_to=2", "pods.count=3"),
	                 -EINVAL);
	assert_non_null(strstr(msg, "below the 3 pods"));
	free(msg);
	/* crash_pod by name, or 1-based */
	assert_int_equal(load(&p, "pattern-b.conf", &msg, 2, "failures.crash_at=60s", "failures.crash_pod=3"), 0);
	assert_string_equal(p.crash_pod, "pod3");
	free(msg);
	free(p.be.servers);
}

/* Settings without effect are warnings. */
static void test_warnings(void **unused)
{
	struct sim_params p;
	char *msg = NULL;

	assert_int_equal(load(&p, NULL, &msg, 2, "failures.crash_at=2h", "sim.duration=600s"), 0);
	assert_non_null(msg);
	assert_non_null(strstr(msg, "after the end"));
	free(msg);
	assert_int_equal(load(&p, NULL, &msg, 2, "redis.crash_at=60s", "pods.store=memory"), 0);
	assert_non_null(strstr(msg, "no effect with pods.store = \"memory\""));
	free(msg);
}

/* A run that would need more memory than sim.max_memory_mb is refused up
 * front, with the estimate; sim_run refuses it too. */
static void test_memory_bound(void **unused)
{
	struct sim_params p;
	struct sim_summary s;
	char *msg = NULL;

	assert_int_equal(load(&p, NULL, &msg, 3, "clients.users_per_second=1e6", "clients.think=60s",
	                      "clients.pages=100"), -ENOMEM);
	assert_non_null(strstr(msg, "would need about"));
	free(msg);
	sim_params_default(&p);
	p.user_rate = 1e6;
	p.pages = 100;
	p.think_s = 60;
	assert_int_equal(sim_run(&p, &s, NULL, false, &msg), -ENOMEM);
	assert_non_null(msg);
	free(msg);
}

static void test_plot_extension(void **unused)
{
	char *msg = NULL;

	assert_int_equal(sim_plot_check("out.pdf", &msg), -EINVAL);
	assert_non_null(strstr(msg, ".png or .svg"));
	free(msg);
}

/* Every scenario file loads cleanly. */
static void test_scenarios_load(void **unused)
{
	static const char *const files[] = {
		"pattern-a.conf", "pattern-b.conf", "pattern-c.conf", "pattern-d.conf", "pod-crash.conf",
		"hpa-scale-out.conf", "redis-crash-aof-always.conf", "redis-crash-aof-everysec.conf",
		"redis-crash-none.conf", "redis-crash-rdb.conf", "sentinel-failover.conf", "retail-day.conf",
		"retail-peak.conf", "crash-every-minute.conf",
	};

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		struct sim_params p;
		char *msg = NULL;

		assert_int_equal(load(&p, files[i], &msg, 0), 0);
		assert_null(msg);
		free(p.be.servers);
	}
}

/* 9. The retail day matches its reference: 5 M users a day and ~6,000
 * session writes/s at the 16:00 peak (1.8 x the mean arrival rate, one
 * TTL refresh per page view plus the login's two writes per visit). */
static void test_retail_day_calibrated(void **unused)
{
	struct sim_params p;
	char *msg = NULL;
	double users_day, peak_writes;

	assert_int_equal(load(&p, "retail-day.conf", &msg, 0), 0);
	users_day = p.user_rate * 86400;
	peak_writes = 1.8 * p.user_rate * (p.pages - 1 + 2);
	print_message("%.2f M users/day, %.0f session writes/s at the peak\n", users_day / 1e6, peak_writes);
	assert_true(fabs(users_day - 5e6) < 0.05e6);
	assert_true(fabs(peak_writes - 6000) < 300);
	assert_true(p.cart_adds > 0 && p.cart_ttl_s == 86400);
	free(p.be.servers);
	/* the peak scenario: 20,000 item views/s once the ramp is done */
	assert_int_equal(load(&p, "retail-peak.conf", &msg, 0), 0);
	print_message("retail peak: %.0f page views/s\n", p.ramp_to * p.pages);
	assert_true(fabs(p.ramp_to * p.pages - 20000) < 500);
	assert_true(p.hpa);
	free(p.be.servers);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_numbers),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_cross_checks),
		cmocka_unit_test(test_warnings),
		cmocka_unit_test(test_memory_bound),
		cmocka_unit_test(test_plot_extension),
		cmocka_unit_test(test_scenarios_load),
		cmocka_unit_test(test_retail_day_calibrated),
	};

	if (argc > 1)
		scenarios = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
