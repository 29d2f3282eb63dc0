/*
 * tether-load - the command line (docs/load.md).
 *
 * The scenario is read by the simulator's own reader (sim_params_default,
 * sim_pattern, sim_load from sim/sim.h) in the simulator's order: defaults,
 * --pattern, the file and its --set overrides, then --seed and --duration.
 * tether-load uses its clients group (cart_adds included), report_interval,
 * the pods' store and the servers' names; failures, Redis and the HPA are
 * the lab's to play.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "load.h"

#define MAX_SETS 64

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: tether-load --target ADDR:PORT [-c SCENARIO.conf] [--pattern A|B|C|D] [--set group.key=value]...\n"
	        "                   [--seed N] [--duration T] [--addresses N] [--new-conn] [--timeout T]\n"
	        "                   [--json FILE|-] [--csv FILE] [--quiet] [--no-check] [--visiting FILE]\n"
	        "Virtual users of tether-sim's client model (arrivals, pages, think time) against a real target;\n"
	        "see docs/load.md.\n"
	        "  --target ADDR:PORT  the balancer's frontend (or one pod)\n"
	        "  --addresses N       users connect from 127.1.0.1 .. (N addresses, users_per_address share one)\n"
	        "  --new-conn          a new connection per request (default: one kept alive per user)\n"
	        "  --timeout T         connect + send + answer, per exchange (default 10s)\n"
	        "  --no-check          do not probe the target before the run\n"
	        "  --visiting FILE     on SIGUSR1, write \"SID POD\" for every visiting user holding a session\n");
}

static int bad(const char *opt, const char *v, const char *want)
{
	fprintf(stderr, "tether-load: %s %s: want %s\n", opt, v ? v : "(missing)", want);
	return -1;
}

static int number(const char *opt, const char *v, double lo, double hi, double *out)
{
	char *end;

	errno = 0;
	*out = v ? strtod(v, &end) : 0;
	if (!v || !*v || *end || errno || *out < lo || *out > hi) {
		char want[64];

		snprintf(want, sizeof(want), "a number in %g..%g", lo, hi);
		return bad(opt, v, want);
	}
	return 0;
}

static int duration(const char *opt, const char *v, double *out)
{
	uint64_t ms;

	if (!v || cfg_parse_duration(v, &ms) < 0 || ms == 0)
		return bad(opt, v, "a duration such as \"500ms\", \"60s\" or \"10m\"");
	*out = (double)ms / 1000.0;
	return 0;
}

/* What the command line says besides struct load_opts. */
struct cli {
	const char *scenario, *target;
	char *sets[MAX_SETS];
	int nsets;
	char pattern;
	double seed, duration, addresses;
};

/* Parses argv[*i] (and its value, advancing *i).  0, -1 on a bad value
 * (printed), or 2 for an option it does not know. */
static int one_option(struct load_opts *o, struct cli *c, int argc, char **argv, int *i)
{
	const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;

	static const char *const valued[] = { "-c", "--target", "--json", "--csv", "--pattern", "--set", "--seed",
	                                       "--duration", "--addresses", "--timeout", "--visiting", NULL };
	bool known = false;

	if (strcmp(a, "--new-conn") == 0)
		return o->new_conn = true, 0;
	if (strcmp(a, "--quiet") == 0)
		return o->quiet = true, 0;
	if (strcmp(a, "--no-check") == 0)
		return o->check = false, 0;
	for (int k = 0; valued[k]; k++)
		known |= strcmp(a, valued[k]) == 0;
	if (!known)
		return 2;
	if (!v)
		return bad(a, NULL, "a value");
	(*i)++;
	if (strcmp(a, "-c") == 0)
		c->scenario = v;
	else if (strcmp(a, "--target") == 0)
		c->target = v;
	else if (strcmp(a, "--json") == 0)
		o->json = v;
	else if (strcmp(a, "--csv") == 0)
		o->csv = v;
	else if (strcmp(a, "--visiting") == 0)
		o->visiting = v;
	else if (strcmp(a, "--pattern") == 0)
		return strlen(v) == 1 && v[0] >= 'A' && v[0] <= 'D' ? (c->pattern = v[0], 0) : bad(a, v, "A, B, C or D");
	else if (strcmp(a, "--set") == 0)
		return c->nsets < MAX_SETS ? (c->sets[c->nsets++] = argv[*i], 0) : bad(a, v, "at most 64 of them");
	else if (strcmp(a, "--seed") == 0)
		return number(a, v, 0, 1e18, &c->seed);
	else if (strcmp(a, "--duration") == 0)
		return duration(a, v, &c->duration);
	else if (strcmp(a, "--addresses") == 0)
		return number(a, v, 1, LOAD_MAX_ADDRESSES, &c->addresses);
	else
		return duration(a, v, &o->timeout_s);
	return 0;
}

/* The scenario, read by the simulator's reader.  0 or -1 (printed). */
static int scenario(struct load_opts *o, const struct cli *c)
{
	char *err = NULL;

	sim_params_default(&o->p);
	if (c->pattern)
		sim_pattern(&o->p, c->pattern);
	if (c->scenario && access(c->scenario, R_OK) < 0) {
		fprintf(stderr, "tether-load: %s: %s\n", c->scenario, strerror(errno));
		return -1;
	}
	if ((c->scenario || c->nsets) && sim_load(&o->p, c->scenario, (char **)c->sets, c->nsets, &err) < 0) {
		fprintf(stderr, "%s\n", err ? err : "tether-load: bad scenario");
		free(err);
		return -1;
	}
	if (c->seed >= 0)
		o->p.seed = (uint64_t)c->seed;
	if (c->duration > 0)
		o->p.duration_s = c->duration;
	if (o->p.report_s <= 0)
		o->p.report_s = 10;
	return 0;
}

int load_args(struct load_opts *o, int argc, char **argv)
{
	struct cli c = { .seed = -1, .duration = -1 };

	memset(o, 0, sizeof(*o));
	o->check = true;
	o->timeout_s = 10;
	for (int i = 1; i < argc; i++) {
		int rc;

		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 1;
		}
		if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--version") == 0) {
			printf("tether-load %s\n", TETHER_VERSION);
			return 1;
		}
		rc = one_option(o, &c, argc, argv, &i);
		if (rc == 2) {
			fprintf(stderr, "tether-load: unknown option \"%s\"\n", argv[i]);
			usage(stderr);
			return -1;
		}
		if (rc < 0)
			return -1;
	}
	if (!c.target) {
		fprintf(stderr, "tether-load: give --target ADDR:PORT (the balancer's frontend)\n");
		return -1;
	}
	if (cfg_parse_addr(c.target, &o->target) < 0)
		return bad("--target", c.target, "a numeric ADDR:PORT such as 127.0.0.1:8080");
	o->addresses = (unsigned)c.addresses;
	return scenario(o, &c);
}

void load_opts_free(struct load_opts *o)
{
	free(o->p.be.servers);
	o->p.be.servers = NULL;
}
