/*
 * tether-sim - command line (DESIGN.md, "tether-sim"; docs/simulator.md).
 *
 * Exit status: 0 done, 1 the run or its outputs failed, 2 bad arguments or
 * scenario.  With `--json -` stdout carries the JSON only; the human
 * summary then goes to stderr.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim.h"
#include "tether/config.h"

#define MAX_SETS 64

struct opts {
	const char *scenario, *csv, *json, *plot;
	char *sets[MAX_SETS + 2];
	char seed_set[64], dur_set[64];
	int nsets, runs, threads;
	char pattern;
	bool cmp, quiet, params;
};

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: tether-sim [-c SCENARIO.conf] [--pattern A|B|C|D] [--set group.key=value]... [--seed N]\n"
	        "                  [--duration T] [--csv FILE] [--json FILE|-] [--plot FILE.svg|.png] [--quiet]\n"
	        "                  [--runs N [--threads N]] [--params]\n"
	        "       tether-sim --compare-patterns [--set ...] [--seed N] [--duration T] [--runs N]\n"
	        "patterns: A pod memory, no affinity; B pod memory + affinity; C Redis, no affinity;\n"
	        "          D Redis + pod-local cache + affinity\n"
	        "--runs N: N replications (seeds N..N+runs-1) in parallel, mean and 95%% confidence interval\n"
	        "--params: print the scenario as read (defaults, pattern, file, --set) as JSON, do not run\n");
}

static const char *store_name(enum store s)
{
	return s == STORE_LOCAL ? "pod memory" : s == STORE_REDIS ? "Redis" : "Redis + local cache";
}

static void print_summary(FILE *f, const struct sim_params *p, const struct sim_summary *s)
{
	fprintf(f, "balance %-10s store %-20s pods %d, %.0f s simulated in %.2f s (%.1f M events/s)\n",
	        p->be.algo->name, store_name(p->store), s->pods_final, p->duration_s, s->wall_seconds,
	        (double)s->events / s->wall_seconds / 1e6);
	fprintf(f, "  requests            %12llu\n", (unsigned long long)s->requests);
	fprintf(f, "  sessions created    %12llu\n", (unsigned long long)s->sessions_created);
	fprintf(f, "  session miss rate   %11.2f%%   (logged-in requests that found no session: forced re-login)\n",
	        100 * s->session_miss_rate);
	fprintf(f, "  local hit rate      %11.2f%%\n", 100 * s->local_hit_rate);
	fprintf(f, "  redis hit rate      %11.2f%%\n", 100 * s->redis_hit_rate);
	fprintf(f, "  redis ops/s         %12.1f   (server busy %.1f%%, longest wait %.2f ms)\n", s->redis_ops_per_sec,
	        100 * s->redis_utilisation, s->redis_wait_max_ms);
	fprintf(f, "  sessions lost       %12llu\n", (unsigned long long)s->sessions_lost);
	fprintf(f, "  failed requests     %12llu   (no pod %llu, queue full %llu, timeout %llu, crash %llu)\n",
	        (unsigned long long)s->failed, (unsigned long long)s->failed_no_server,
	        (unsigned long long)s->failed_queue_full, (unsigned long long)s->failed_timeout,
	        (unsigned long long)s->failed_crash);
	if (s->logins_failed)
		fprintf(f, "  logins failed       %12llu   (Redis down)\n", (unsigned long long)s->logins_failed);
	fprintf(f, "  load max/mean       %12.3f   (stddev/mean %.3f)\n", s->load_max_over_mean, s->load_stddev);
	fprintf(f, "  mean response       %10.2f ms (answered requests)\n", s->mean_response_ms);
	fprintf(f, "  pods created        %12d\n", s->pods_created);
	if (s->rebalance_seconds > 0)
		fprintf(f, "  rebalanced after    %10.0f s\n", s->rebalance_seconds);
	if (s->pods_refused)
		fprintf(f, "  WARNING: %llu pods not created: %d were alive at once\n", (unsigned long long)s->pods_refused,
		        SIM_MAX_PODS);
}

/* --params: what a run of these arguments would use, for the lab
 * (scripts/lab), which performs the scenario for real and must read it
 * exactly as the simulator does.  Times in seconds, "group.key" names. */
static void print_params(FILE *f, const struct sim_params *p)
{
	static const char *const store[] = { "memory", "redis", "redis+cache" };
	static const char *const pers[] = { "none", "aof-always", "aof-everysec", "rdb" };

	fprintf(f, "{\"name\": \"%s\", \"sim.duration\": %.6f, \"sim.report_interval\": %.6f, \"sim.seed\": %llu,\n",
	        p->name, p->duration_s, p->report_s, (unsigned long long)p->seed);
	fprintf(f, " \"clients.users_per_second\": %.6f, \"clients.stop_at\": %.6f, \"clients.ramp_to\": %.6f, "
	        "\"clients.ramp_over\": %.6f, \"clients.daily\": %s, \"clients.pages\": %.6f, \"clients.think\": %.6f,\n"
	        " \"clients.users_per_address\": %u, \"clients.address_change\": %.6f, \"clients.cart_adds\": %.6f,\n",
	        p->user_rate, p->stop_at_s, p->ramp_to, p->ramp_s, p->daily ? "true" : "false", p->pages, p->think_s,
	        p->users_per_address, p->address_change, p->cart_adds);
	fprintf(f, " \"pods.count\": %d, \"pods.concurrency\": %d, \"pods.service\": %.6f, \"pods.queue\": %d, "
	        "\"pods.timeout\": %.6f, \"pods.store\": \"%s\", \"pods.cache_ttl\": %.6f, \"pods.startup\": %.6f, "
	        "\"pods.replace_after\": %.6f,\n",
	        p->pods, p->concurrency, p->service_ms / 1000, p->queue, p->timeout_s, store[p->store], p->cache_ttl_s,
	        p->startup_s, p->replace_s);
	fprintf(f, " \"redis.rtt\": %.6f, \"redis.session_ttl\": %.6f, \"redis.cart_ttl\": %.6f, \"redis.persistence\": \"%s\", "
	        "\"redis.save\": \"",
	        p->redis_rtt_ms / 1000, p->session_ttl_s, p->cart_ttl_s, pers[p->persistence]);
	for (int i = 0; i < p->nsave; i++)
		fprintf(f, "%s%u %u", i ? " " : "", p->save[i].seconds, p->save[i].changes);
	fprintf(f, "\", \"redis.crash_at\": %.6f, \"redis.down_for\": %.6f, \"redis.sentinel\": %s, "
	        "\"redis.down_after\": %.6f, \"redis.failover\": %.6f, \"redis.replication_lag\": %.6f,\n",
	        p->redis_crash_at_s, p->redis_down_s, p->sentinel ? "true" : "false", p->down_after_s, p->failover_s,
	        p->repl_lag_s);
	fprintf(f, " \"failures.crash_at\": %.6f, \"failures.crash_pod\": \"%s\", \"failures.mtbf\": %.6f, "
	        "\"failures.scale_at\": %.6f, \"failures.scale_to\": %d,\n",
	        p->crash_at_s, p->crash_pod, p->mtbf_s, p->scale_at_s, p->scale_to);
	fprintf(f, " \"hpa.enabled\": %s, \"backend.name\": \"%s\", \"backend.balance\": \"%s\", \"backend.servers\": [",
	        p->hpa ? "true" : "false", p->be.name, p->be.algo->name);
	for (int i = 0; i < p->be.nservers; i++)
		fprintf(f, "%s\"%s\"", i ? ", " : "", p->be.servers[i].name);
	fprintf(f, "]}\n");
}

/* Defaults, the pattern, the scenario and --set: the parameters of a run. */
static int build(const struct opts *o, char pattern, struct sim_params *p)
{
	char *err = NULL, *warn = NULL;
	int rc;

	sim_params_default(p);
	if (pattern)
		sim_pattern(p, pattern);
	rc = sim_load_warn(p, o->scenario, (char **)o->sets, o->nsets, &err, &warn);
	if (warn)
		fprintf(stderr, "tether-sim: warning: %s\n", warn);
	if (rc < 0)
		fprintf(stderr, "%s\n", err ? err : "tether-sim: bad scenario");
	free(err);
	free(warn);
	return rc;
}

static int stats(const struct opts *o, const struct sim_params *p, struct sim_stats *st)
{
	char *err = NULL;
	int rc = sim_runs(p, o->runs > 0 ? o->runs : 1, o->runs > 0 ? o->threads : 1, st, NULL, &err);

	if (rc < 0)
		fprintf(stderr, "%s\n", err ? err : "tether-sim: the runs failed");
	free(err);
	return rc;
}

/* metric m of the table: mean, with its interval when there are runs */
static void cell(const struct sim_stats *st, int m, double scale, int decimals, int w)
{
	char b[64];

	snprintf(b, sizeof(b), "%.*f", decimals, scale * st->m[m].mean);
	if (st->runs > 1)
		snprintf(b + strlen(b), sizeof(b) - strlen(b), "±%.2g", scale * st->m[m].ci95);
	printf(" %*s", w, b);
}

/* The four patterns side by side: normal running, a crash of the first
 * pod half-way, a scale-out by two pods half-way; --set, --duration,
 * --seed and --runs apply to each. */
static int compare(const struct opts *o)
{
	static const char *const what[4] = { "pod memory, round-robin", "pod memory + cookie affinity",
	                                     "Redis, round-robin", "Redis + local cache + affinity" };
	struct sim_stats run[4], crash[4], scale[4];
	struct sim_params p;

	for (int i = 0; i < 4; i++) {
		if (build(o, (char)('A' + i), &p) < 0)
			return 2;
		if (stats(o, &p, &run[i]) < 0)
			goto fail;
		p.crash_at_s = p.duration_s / 2;
		p.crash_pod[0] = '\0';
		if (stats(o, &p, &crash[i]) < 0)
			goto fail;
		p.crash_at_s = -1;
		p.scale_at_s = p.duration_s / 2;
		p.scale_to = p.pods + 2;
		p.startup_s = 5;
		if (stats(o, &p, &scale[i]) < 0)
			goto fail;
		free(p.be.servers);
	}
	printf("The four session patterns: %d pods, %.0f s simulated, seed %llu%s\n\n", p.pods, p.duration_s,
	       (unsigned long long)p.seed, o->runs > 1 ? " (mean ± 95% CI over the runs)" : "");
	printf("%-3s %-32s %14s %14s %14s %12s %14s %14s\n", "", "pattern", "miss rate %", "local hit %",
	       "Redis ops/s", "max/mean", "lost on crash", "misses +2 pods");
	for (int i = 0; i < 4; i++) {
		printf("%-3c %-32s", 'A' + i, what[i]);
		cell(&run[i], 2, 100, 1, 14);
		cell(&run[i], 3, 100, 1, 14);
		cell(&run[i], 5, 1, 1, 14);
		cell(&run[i], 7, 1, 2, 12);
		cell(&crash[i], 6, 1, 0, 14);
		cell(&scale[i], 2, 100, 1, 14);
		printf("\n");
	}
	printf("\nmiss rate: requests of logged-in users that found no session and forced a new login.\n"
	       "lost on crash: sessions destroyed when the first pod crashes half-way.  misses +2 pods: miss rate\n"
	       "of a run that scales out by two pods half-way.  A loses 2 of 3 requests to the wrong pod; B keeps\n"
	       "users on their pod but loses a pod's sessions when it dies; C never misses but pays Redis on\n"
	       "every request; D never misses and serves most requests from the pod-local cache.\n");
	return 0;
fail:
	free(p.be.servers);
	return 1;
}

static int parse(int argc, char **argv, struct opts *o)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		char *end;

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			exit(0);
		} else if (strcmp(a, "--quiet") == 0) {
			o->quiet = true;
		} else if (strcmp(a, "--params") == 0) {
			o->params = true;
		} else if (strcmp(a, "--compare-patterns") == 0) {
			o->cmp = true;
		} else if (!v) {
			fprintf(stderr, "tether-sim: %s: unknown, or missing its value\n", a);
			return -1;
		} else if (strcmp(a, "-c") == 0) {
			o->scenario = argv[++i];
		} else if (strcmp(a, "--pattern") == 0) {
			if (strlen(v) != 1 || v[0] < 'A' || v[0] > 'D') {
				fprintf(stderr, "tether-sim: --pattern %s: want A, B, C or D\n", v);
				return -1;
			}
			o->pattern = v[0], i++;
		} else if (strcmp(a, "--set") == 0) {
			if (o->nsets == MAX_SETS) {
				fprintf(stderr, "tether-sim: at most %d --set\n", MAX_SETS);
				return -1;
			}
			o->sets[o->nsets++] = argv[++i];
		} else if (strcmp(a, "--seed") == 0) {
			errno = 0;
			strtoull(v, &end, 10);
			if (!*v || *end || v[0] == '-' || errno) {
				fprintf(stderr, "tether-sim: --seed %s: want an unsigned integer\n", v);
				return -1;
			}
			snprintf(o->seed_set, sizeof(o->seed_set), "sim.seed=%s", v), i++;
		} else if (strcmp(a, "--duration") == 0) {
			uint64_t ms;

			if (cfg_parse_duration(v, &ms) < 0 || ms == 0 || strlen(v) > 40) {
				fprintf(stderr, "tether-sim: --duration %s: want a duration such as \"600s\" or \"24h\"\n", v);
				return -1;
			}
			snprintf(o->dur_set, sizeof(o->dur_set), "sim.duration=%s", v), i++;
		} else if (strcmp(a, "--runs") == 0 || strcmp(a, "--threads") == 0) {
			long n = strtol(v, &end, 10);

			if (!*v || *end || n < 1 || n > 10000) {
				fprintf(stderr, "tether-sim: %s %s: want an integer 1..10000\n", a, v);
				return -1;
			}
			*(a[2] == 'r' ? &o->runs : &o->threads) = (int)n, i++;
		} else if (strcmp(a, "--csv") == 0) {
			o->csv = argv[++i];
		} else if (strcmp(a, "--json") == 0) {
			o->json = argv[++i];
		} else if (strcmp(a, "--plot") == 0) {
			o->plot = argv[++i];
		} else {
			fprintf(stderr, "tether-sim: bad argument \"%s\"\n", a);
			return -1;
		}
	}
	if (o->seed_set[0])
		o->sets[o->nsets++] = o->seed_set;
	if (o->dur_set[0])
		o->sets[o->nsets++] = o->dur_set;
	if (o->runs > 1 && (o->csv || o->plot)) {
		fprintf(stderr, "tether-sim: --csv and --plot describe one run: leave out --runs\n");
		return -1;
	}
	return 0;
}

static FILE *open_out(const char *path)
{
	FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");

	if (!f)
		fprintf(stderr, "tether-sim: %s: %s\n", path, strerror(errno));
	return f;
}

static int close_out(FILE *f, const char *path)
{
	int bad = ferror(f) || (f == stdout ? fflush(f) : fclose(f)) != 0;

	if (bad)
		fprintf(stderr, "tether-sim: writing %s failed\n", path);
	return bad ? 1 : 0;
}

/* --runs N: the table, and the JSON of means and intervals. */
static int many(const struct opts *o, struct sim_params *p)
{
	struct sim_stats st;
	FILE *jf;

	if (stats(o, p, &st) < 0)
		return 1;
	if (!o->quiet)
		sim_print_stats(o->json && strcmp(o->json, "-") == 0 ? stderr : stdout, &st);
	if (!o->json)
		return 0;
	if (!(jf = open_out(o->json)))
		return 1;
	sim_print_stats_json(jf, &st);
	return close_out(jf, o->json);
}

static int one(const struct opts *o, struct sim_params *p)
{
	char tmpcsv[64] = "", *err = NULL;
	const char *csv = o->csv;
	struct sim_summary s;
	FILE *cf = NULL, *jf;
	int rc = 1;

	if (o->plot && !csv) {
		snprintf(tmpcsv, sizeof(tmpcsv), "/tmp/tether-sim-%d.csv", (int)getpid());
		csv = tmpcsv;
	}
	if (csv && !(cf = open_out(csv)))
		return 1;
	if (sim_run(p, &s, cf, !o->quiet && isatty(2), &err) < 0) {
		fprintf(stderr, "%s\n", err ? err : "tether-sim: the run failed");
		goto out;
	}
	if (cf && close_out(cf, csv))
		goto out;
	cf = NULL;
	if (!o->quiet)
		print_summary(o->json && strcmp(o->json, "-") == 0 ? stderr : stdout, p, &s);
	if (o->json) {
		if (!(jf = open_out(o->json)))
			goto out;
		sim_print_json(jf, &s);
		if (close_out(jf, o->json))
			goto out;
	}
	if (o->plot && sim_plot(p, &s, csv, o->plot, &err) < 0) {
		fprintf(stderr, "%s\n", err);
		goto out;
	}
	rc = 0;
out:
	if (cf)
		fclose(cf);
	if (tmpcsv[0])
		unlink(tmpcsv);
	free(err);
	return rc;
}

int main(int argc, char **argv)
{
	struct opts o = { 0 };
	struct sim_params p;
	char *err = NULL;
	int rc;

	if (parse(argc, argv, &o) < 0) {
		usage(stderr);
		return 2;
	}
	if (o.plot && sim_plot_check(o.plot, &err) < 0) {
		fprintf(stderr, "%s\n", err);
		free(err);
		return 2;
	}
	if (o.cmp)
		return compare(&o);
	if (build(&o, o.pattern, &p) < 0) {
		free(p.be.servers);
		return 2;
	}
	if (o.params) {
		print_params(stdout, &p);
		free(p.be.servers);
		return fflush(stdout) == 0 ? 0 : 1;
	}
	rc = o.runs > 1 ? many(&o, &p) : one(&o, &p);
	free(p.be.servers);
	return rc;
}
