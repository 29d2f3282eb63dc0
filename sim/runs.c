/*
 * tether-sim - independent replications of one scenario (--runs N): seeds
 * seed .. seed + N - 1, run on several threads at once, and the mean and
 * 95 % confidence interval of each summary metric.
 *
 * The interval is mean +- t(0.975, N - 1) * s / sqrt(N) (Student t, the
 * runs being independent and identically distributed); with one run it is
 * 0.  Runs share nothing but the parameters, which they only read (a
 * trace hook, if set, is called from every thread).
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sim.h"

static const char *const names[SIM_NMETRICS] = {
	"requests", "sessions_created", "session_miss_rate", "local_hit_rate", "redis_hit_rate",
	"redis_ops_per_sec", "sessions_lost", "load_max_over_mean", "load_stddev", "pods_final",
	"rebalance_seconds", "failed_requests", "mean_response_ms", "redis_utilisation",
};

const char *const *sim_metric_names(void)
{
	return names;
}

static void metrics(const struct sim_summary *s, double v[SIM_NMETRICS])
{
	double m[SIM_NMETRICS] = {
		(double)s->requests, (double)s->sessions_created, s->session_miss_rate, s->local_hit_rate,
		s->redis_hit_rate, s->redis_ops_per_sec, (double)s->sessions_lost, s->load_max_over_mean,
		s->load_stddev, s->pods_final, s->rebalance_seconds, (double)s->failed, s->mean_response_ms,
		s->redis_utilisation,
	};

	memcpy(v, m, sizeof(m));
}

/* t quantile 0.975 for df = 1..30; beyond, the normal's with a correction. */
static double t975(int df)
{
	static const double t[30] = {
		12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
		2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
	};

	return df <= 30 ? t[df - 1] : 1.960 + 2.4 / df;
}

struct job {
	const struct sim_params *p;
	struct sim_summary *all;
	int runs, next, rc;
	char *err;
	pthread_mutex_t lock;
};

static void *worker(void *arg)
{
	struct job *j = arg;

	for (;;) {
		struct sim_params p;
		char *err = NULL;
		int k, rc;

		pthread_mutex_lock(&j->lock);
		k = j->rc < 0 ? j->runs : j->next++;
		pthread_mutex_unlock(&j->lock);
		if (k >= j->runs)
			return NULL;
		p = *j->p;
		p.seed = j->p->seed + (uint64_t)k;
		rc = sim_run(&p, &j->all[k], NULL, false, &err);
		pthread_mutex_lock(&j->lock);
		if (rc < 0 && j->rc == 0) {
			j->rc = rc;
			j->err = err;
			err = NULL;
		}
		pthread_mutex_unlock(&j->lock);
		free(err);
	}
}

static void aggregate(const struct sim_summary *all, int runs, struct sim_stats *out)
{
	for (int m = 0; m < SIM_NMETRICS; m++) {
		double sum = 0, sq = 0, v[SIM_NMETRICS], mean;
		struct sim_stat *st = &out->m[m];

		st->min = INFINITY;
		st->max = -INFINITY;
		for (int k = 0; k < runs; k++) {
			metrics(&all[k], v);
			sum += v[m];
			st->min = fmin(st->min, v[m]);
			st->max = fmax(st->max, v[m]);
		}
		mean = sum / runs;
		for (int k = 0; k < runs; k++) {
			metrics(&all[k], v);
			sq += (v[m] - mean) * (v[m] - mean);
		}
		st->mean = mean;
		st->ci95 = runs > 1 ? t975(runs - 1) * sqrt(sq / (runs - 1)) / sqrt(runs) : 0;
	}
}

int sim_runs(const struct sim_params *p, int runs, int threads, struct sim_stats *out, struct sim_summary *each,
             char **err)
{
	struct job j = { .p = p, .runs = runs };
	pthread_t tid[256];
	struct timespec w0, w1;
	int n = 0, rc;

	*err = NULL;
	if (runs < 1)
		return -EINVAL;
	if (threads <= 0)
		threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
	threads = threads < 1 ? 1 : threads > runs ? runs : threads > 256 ? 256 : threads;
	if (!(j.all = calloc((size_t)runs, sizeof(*j.all)))) {
		*err = strdup("tether-sim: out of memory for the runs' summaries");
		return -ENOMEM;
	}
	pthread_mutex_init(&j.lock, NULL);
	clock_gettime(CLOCK_MONOTONIC, &w0);
	for (; n < threads; n++)
		if (pthread_create(&tid[n], NULL, worker, &j) != 0)
			break;
	if (n == 0)
		worker(&j);         /* no thread could start: run them here */
	for (int k = 0; k < n; k++)
		pthread_join(tid[k], NULL);
	clock_gettime(CLOCK_MONOTONIC, &w1);
	pthread_mutex_destroy(&j.lock);
	rc = j.rc;
	if (rc == 0) {
		memset(out, 0, sizeof(*out));
		out->runs = runs;
		out->threads = n ? n : 1;
		out->seed = p->seed;
		out->wall_seconds = (double)(w1.tv_sec - w0.tv_sec) + (double)(w1.tv_nsec - w0.tv_nsec) / 1e9;
		aggregate(j.all, runs, out);
		if (each)
			memcpy(each, j.all, (size_t)runs * sizeof(*each));
	}
	*err = j.err;
	free(j.all);
	return rc;
}

void sim_print_stats(FILE *f, const struct sim_stats *st)
{
	fprintf(f, "%d runs (seeds %llu..%llu) on %d threads in %.2f s\n", st->runs, (unsigned long long)st->seed,
	        (unsigned long long)(st->seed + (uint64_t)st->runs - 1), st->threads, st->wall_seconds);
	fprintf(f, "  %-20s %14s %12s %14s %14s\n", "metric", "mean", "95% CI +-", "min", "max");
	for (int m = 0; m < SIM_NMETRICS; m++)
		fprintf(f, "  %-20s %14.6g %12.4g %14.6g %14.6g\n", names[m], st->m[m].mean, st->m[m].ci95, st->m[m].min,
		        st->m[m].max);
}

void sim_print_stats_json(FILE *f, const struct sim_stats *st)
{
	fprintf(f, "{\"runs\": %d, \"seed\": %llu, \"threads\": %d, \"wall_seconds\": %.3f", st->runs,
	        (unsigned long long)st->seed, st->threads, st->wall_seconds);
	for (int m = 0; m < SIM_NMETRICS; m++)
		fprintf(f, ", \"%s\": {\"mean\": %.9g, \"ci95\": %.9g, \"min\": %.9g, \"max\": %.9g}", names[m],
		        st->m[m].mean, st->m[m].ci95, st->m[m].min, st->m[m].max);
	fprintf(f, "}\n");
}
