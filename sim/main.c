/*
 * tether-sim - command line (DESIGN.md, "tether-sim").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim.h"
#include "tether/config.h"

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: tether-sim [-c SCENARIO.conf] [--pattern A|B|C|D] [--set key=value]... [--seed N]\n"
	        "                  [--duration T] [--csv FILE] [--json FILE] [--plot FILE.svg|.png] [--quiet]\n"
	        "       tether-sim --compare-patterns [--seed N] [--duration T]\n"
	        "patterns: A pod memory, no affinity; B pod memory + affinity; C Redis, no affinity;\n"
	        "          D Redis + pod-local cache + affinity\n");
}

static const char *store_name(enum store s)
{
	return s == STORE_LOCAL ? "pod memory" : s == STORE_REDIS ? "Redis" : "Redis + local cache";
}

static void print_summary(const struct sim_params *p, const struct sim_summary *s)
{
	printf("balance %-10s store %-20s pods %d, %.0f s simulated in %.2f s (%.1f M events/s)\n",
	       p->be.algo->name, store_name(p->store), s->pods_final, p->duration_s, s->wall_seconds,
	       s->events / s->wall_seconds / 1e6);
	printf("  requests            %12llu\n", (unsigned long long)s->requests);
	printf("  sessions created    %12llu\n", (unsigned long long)s->sessions_created);
	printf("  session miss rate   %11.2f%%   (logged-in requests that found no session: forced re-login)\n",
	       100 * s->session_miss_rate);
	printf("  local hit rate      %11.2f%%\n", 100 * s->local_hit_rate);
	printf("  redis hit rate      %11.2f%%\n", 100 * s->redis_hit_rate);
	printf("  redis ops/s         %12.1f\n", s->redis_ops_per_sec);
	printf("  sessions lost       %12llu\n", (unsigned long long)s->sessions_lost);
	printf("  failed requests     %12llu\n", (unsigned long long)s->failed);
	printf("  load max/mean       %12.3f   (stddev/mean %.3f)\n", s->load_max_over_mean, s->load_stddev);
	printf("  mean response       %10.2f ms\n", s->mean_response_ms);
	if (s->rebalance_seconds > 0)
		printf("  rebalanced after    %10.0f s\n", s->rebalance_seconds);
}

/* The four patterns side by side: normal running, a pod crash, scale-out 3 -> 5. */
static int compare(const struct sim_params *base)
{
	struct sim_summary run[4], crash[4], scale[4];
	static const char *const what[4] = {
		"pod memory, round-robin", "pod memory + cookie affinity",
		"Redis, round-robin", "Redis + local cache + affinity" };

	for (int i = 0; i < 4; i++) {
		struct sim_params p = *base;

		sim_pattern(&p, (char)('A' + i));
		if (sim_run(&p, &run[i], NULL, false) < 0)
			return 1;
		p.crash_at_s = p.duration_s / 2;
		p.crash_pod = 0;
		sim_run(&p, &crash[i], NULL, false);
		p.crash_at_s = -1;
		p.scale_at_s = p.duration_s / 2;
		p.scale_to = 5;
		p.startup_s = 5;
		sim_run(&p, &scale[i], NULL, false);
	}
	printf("The four session patterns: 3 pods, ~100 requests/s, %.0f s simulated (seed %llu)\n\n",
	       base->duration_s, (unsigned long long)base->seed);
	printf("%-3s %-32s %9s %9s %10s %9s %13s %15s\n", "", "pattern", "miss rate", "local hit", "Redis ops/s",
	       "max/mean", "lost on crash", "misses 3->5");
	for (int i = 0; i < 4; i++)
		printf("%-3c %-32s %8.1f%% %8.1f%% %10.1f %9.2f %13llu %14.1f%%\n", 'A' + i, what[i],
		       100 * run[i].session_miss_rate, 100 * run[i].local_hit_rate, run[i].redis_ops_per_sec,
		       run[i].load_max_over_mean, (unsigned long long)crash[i].sessions_lost,
		       100 * scale[i].session_miss_rate);
	printf("\nmiss rate: requests of logged-in users that found no session and forced a new login.\n"
	       "lost on crash: sessions destroyed when pod 1 crashes half-way.  misses 3->5: miss rate of a\n"
	       "run that scales from 3 to 5 pods half-way.  A loses 2 of 3 requests to the wrong pod; B keeps\n"
	       "users on their pod but loses a pod's sessions when it dies; C never misses but pays Redis on\n"
	       "every request; D never misses and serves most requests from the pod-local cache.\n");
	return 0;
}

/* A dashed vertical line, labelled on the top panel, per marker the run
 * recorded: crashes in red, scaling in blue, Redis recovery in green. */
static void markers(FILE *f, const struct sim_summary *s)
{
	for (int i = 0; i < s->nmarks; i++) {
		const struct sim_mark *m = &s->marks[i];
		const char *color = strstr(m->what, "crash") ? "red" : strstr(m->what, "Redis") ||
		                    strstr(m->what, "replica") ? "dark-green" : "blue";

		fprintf(f, "set arrow from %.0f, graph 0 to %.0f, graph 1 nohead dashtype 2 lc rgb '%s'\n",
		        m->t_s, m->t_s, color);
		fprintf(f, "set label %d '%s' at %.0f, graph 0.97 rotate by 90 right font ',8' tc rgb '%s'\n",
		        i + 1, m->what, m->t_s, color);
	}
}

/* Writes a gnuplot script next to the output and runs it: miss rate, Redis
 * operations and pods over time, with the run's markers. */
static int plot(const struct sim_summary *s, const char *csv, const char *out)
{
	const char *ext = strrchr(out, '.');
	const char *term = ext && strcmp(ext, ".png") == 0 ? "pngcairo size 1000,700" : "svg size 1000,700";
	char script[4200], cmd[4300];
	FILE *f;
	int rc;

	if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
		fprintf(stderr, "tether-sim: --plot needs gnuplot: apt-get install gnuplot-nox\n");
		return 1;
	}
	snprintf(script, sizeof(script), "%s.gp", out);
	if (!(f = fopen(script, "w"))) {
		perror(script);
		return 1;
	}
	fprintf(f, "set terminal %s\nset output '%s'\nset datafile separator ','\n"
	        "set key autotitle columnhead\nset multiplot layout 3,1\nset xlabel 'time (s)'\n", term, out);
	markers(f, s);
	fprintf(f, "set yrange [0:1]\nplot '%s' using 1:7 with lines title 'miss rate'\n"
	        "unset label\nset yrange [0:*]\n"
	        "plot '%s' using 1:10 with lines title 'Redis ops per interval'\n"
	        "set offsets 0, 0, 1, 0\n"
	        "plot '%s' using 1:3 with steps title 'pods ready', '' using 1:4 with steps title 'HPA desired'\n"
	        "unset multiplot\n", csv, csv, csv);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "gnuplot '%s'", script);
	rc = system(cmd);
	unlink(script);
	if (s->marks_dropped)
		fprintf(stderr, "tether-sim: plot: %d later markers not drawn (at most %d)\n", s->marks_dropped, SIM_MAX_MARKS);
	return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct sim_params p;
	struct sim_summary s;
	const char *scenario = NULL, *csv = NULL, *json = NULL, *plotf = NULL;
	char *sets[64], pattern = 0, *err = NULL, tmpcsv[64] = "";
	int nsets = 0, cmp = 0, quiet = 0;
	double duration = -1;
	long long seed = -1;
	FILE *cf = NULL;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "-c") == 0 && v) {
			scenario = v, i++;
		} else if (strcmp(a, "--pattern") == 0 && v && strlen(v) == 1 && v[0] >= 'A' && v[0] <= 'D') {
			pattern = v[0], i++;
		} else if (strcmp(a, "--set") == 0 && v && nsets < 64) {
			sets[nsets++] = argv[++i];
		} else if (strcmp(a, "--seed") == 0 && v) {
			seed = atoll(v), i++;
		} else if (strcmp(a, "--duration") == 0 && v) {
			uint64_t ms;

			if (cfg_parse_duration(v, &ms) < 0) {
				fprintf(stderr, "tether-sim: --duration %s: want a duration such as \"600s\" or \"24h\"\n", v);
				return 2;
			}
			duration = ms / 1000.0, i++;
		} else if (strcmp(a, "--csv") == 0 && v) {
			csv = v, i++;
		} else if (strcmp(a, "--json") == 0 && v) {
			json = v, i++;
		} else if (strcmp(a, "--plot") == 0 && v) {
			plotf = v, i++;
		} else if (strcmp(a, "--quiet") == 0) {
			quiet = 1;
		} else if (strcmp(a, "--compare-patterns") == 0) {
			cmp = 1;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "tether-sim: bad argument \"%s\"\n", a);
			usage(stderr);
			return 2;
		}
	}
	sim_params_default(&p);
	if (pattern)
		sim_pattern(&p, pattern);
	if ((scenario || nsets) && sim_load(&p, scenario, sets, nsets, &err) < 0) {
		fprintf(stderr, "%s\n", err ? err : "tether-sim: bad scenario");
		free(err);
		return 1;
	}
	if (seed >= 0)
		p.seed = (uint64_t)seed;
	if (duration > 0)
		p.duration_s = duration;
	if (cmp)
		return compare(&p);
	if (plotf && !csv) {
		snprintf(tmpcsv, sizeof(tmpcsv), "/tmp/tether-sim-%d.csv", (int)getpid());
		csv = tmpcsv;
	}
	if (csv && !(cf = fopen(csv, "w"))) {
		perror(csv);
		return 1;
	}
	if (sim_run(&p, &s, cf, !quiet && isatty(2)) < 0)
		return 1;
	if (cf)
		fclose(cf);
	if (!quiet)
		print_summary(&p, &s);
	if (json) {
		FILE *jf = strcmp(json, "-") == 0 ? stdout : fopen(json, "w");

		if (!jf) {
			perror(json);
			return 1;
		}
		sim_print_json(jf, &s);
		if (jf != stdout)
			fclose(jf);
	}
	if (plotf && plot(&s, csv, plotf) != 0)
		return 1;
	if (tmpcsv[0])
		unlink(tmpcsv);
	free(p.be.servers);
	return 0;
}
