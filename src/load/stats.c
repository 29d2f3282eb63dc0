/*
 * tether-load - counters, latency histograms, the per-interval CSV and the
 * JSON summary, with tether-sim's columns and keys (sim/report.c
 * report_interval, report_write_csv, report_finish, sim_print_json) and the
 * same definitions wherever a client can observe the same thing.  Where it cannot, the figure is
 * derived from the answers' headers, as docs/load.md says per key:
 *  - pods are known by the X-Pod of their answers, numbered as the
 *    scenario's servers (pod1.. when it has none, as the simulator names
 *    them), new names after them;
 *  - a pod is "up" in an interval when it answered in it, and "alive at
 *    the end" when it answered in the last interval;
 *  - Redis operations are counted by the simulator's rule from X-Session;
 *  - what a client cannot observe at all (Redis utilisation, pods created,
 *    the simulator's events ...) is null in the JSON, empty in the CSV.
 * As tether-sim does, the CSV rows are kept and written at the end, so the
 * header can name every pod that answered during the run.
 *
 * Latency histograms are log-linear (HdrHistogram's layout, G. Tene): 64
 * exact 1 µs buckets, then 32 buckets per power of two, so any value is
 * kept within 1/32 (3 %) and a quantile costs one pass over 1216 counters.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"

static void pod_name(struct load_pod *pd, const char *name)
{
	snprintf(pd->name, sizeof(pd->name), "%s", name);
	pd->first_seen = -1;
}

void stats_init(struct load_stats *s, const struct sim_params *p)
{
	int n = p->pods < SIM_MAX_PODS ? p->pods : SIM_MAX_PODS;

	memset(s, 0, sizeof(*s));
	s->report_s = p->report_s;
	s->last_scale_t = -1;
	/* sim/pods.c pod_name(): the scenario's server names, else pod1, pod2, ... */
	for (int i = 0; i < n; i++) {
		char name[WIRE_POD_MAX];

		if (i < p->be.nservers)
			snprintf(name, sizeof(name), "%.*s", WIRE_POD_MAX - 1, p->be.servers[i].name);
		else
			snprintf(name, sizeof(name), "pod%d", i + 1);
		pod_name(&s->pods[i], name);
	}
	s->npods = n;
}

void stats_fini(struct load_stats *s)
{
	free(s->rows);
	free(s->cells);
	s->rows = NULL;
	s->cells = NULL;
}

int stats_pod(struct load_stats *s, const char *name, double t)
{
	struct load_pod *pd = NULL;

	if (!name[0])
		return -1;
	for (int i = 0; i < s->npods; i++)
		if (strcmp(s->pods[i].name, name) == 0) {
			pd = &s->pods[i];
			break;
		}
	if (!pd) {
		if (s->npods == SIM_MAX_PODS)
			return -1;
		pd = &s->pods[s->npods++];
		pod_name(pd, name);
	}
	if (pd->first_seen < 0) {
		pd->first_seen = t;
		if (t >= s->report_s) {         /* a pod that joined during the run: a scale-out */
			s->last_scale_t = t;
			s->rebalanced = false;
		}
	}
	pd->last_seen = t;
	pd->answers++;
	pd->iv_answers++;
	return (int)(pd - s->pods);
}

/* --- histograms --- */

static unsigned hist_index(uint64_t v)
{
	unsigned msb, shift;

	if (v < 64)
		return (unsigned)v;
	if (v >= 1ull << 40)                /* 12 days: clamp */
		v = (1ull << 40) - 1;
	msb = 63u - (unsigned)__builtin_clzll(v);
	shift = msb - 5;                    /* the top 6 bits: 32..63 */
	return 64 + (shift - 1) * 32 + (unsigned)((v >> shift) - 32);
}

/* The middle of bucket i, µs. */
static double hist_value(unsigned i)
{
	unsigned shift, top;

	if (i < 64)
		return i;
	shift = (i - 64) / 32 + 1;
	top = (i - 64) % 32 + 32;
	return ((double)((uint64_t)top << shift) + (double)((uint64_t)(top + 1) << shift) - 1) / 2;
}

void stats_hist_add(struct load_hist *h, double us)
{
	h->b[hist_index(us > 0 ? (uint64_t)us : 0)]++;
	h->n++;
}

double stats_hist_ms(const struct load_hist *h, double q)
{
	uint64_t rank = (uint64_t)ceil(q * (double)h->n), seen = 0;

	if (h->n == 0)
		return 0;
	if (rank == 0)
		rank = 1;
	for (unsigned i = 0; i < LOAD_HIST; i++) {
		seen += h->b[i];
		if (seen >= rank)
			return hist_value(i) / 1000.0;
	}
	return hist_value(LOAD_HIST - 1) / 1000.0;
}

/* --- the CSV --- */

/* Room for `need` elements of `size` bytes in *a, whose capacity *cap
 * doubles (from 64) as needed.  false when memory is out (*a is kept). */
static bool reserve(void **a, size_t *cap, size_t need, size_t size)
{
	size_t n = *cap;
	void *b = *a;

	while (n < need)
		n = n ? 2 * n : 64;
	if (n != *cap && !(b = realloc(*a, n * size)))
		return false;
	*a = b;
	*cap = n;
	return true;
}

/* The row of the interval ending at t, and a cell per pod seen so far. */
static void keep_row(struct load_stats *s, double t, int up)
{
	struct load_row *w;

	if (!reserve((void **)&s->rows, &s->caprows, s->nrows + 1, sizeof(*s->rows)) ||
	    !reserve((void **)&s->cells, &s->capcells, s->ncells + (size_t)s->npods, sizeof(*s->cells))) {
		s->rows_dropped++;
		return;
	}
	w = &s->rows[s->nrows++];
	*w = (struct load_row){ t, up, s->iv_requests, s->iv_misses, s->iv_local, s->iv_redis, s->iv_redis_ops,
	                        s->iv_failed, s->iv_timeouts, s->live_sessions, (uint32_t)s->ncells, 0 };
	for (int i = 0; i < s->npods; i++)
		if (s->pods[i].first_seen >= 0) {
			s->cells[s->ncells++] = (struct load_cell){ (uint32_t)i, s->pods[i].iv_answers,
			                                            s->pods[i].sessions > 0 ? s->pods[i].sessions : 0 };
			w->ncells++;
		}
}

void stats_interval(struct load_stats *s, double t)
{
	double sum = 0, mx = 0;
	int up = 0;

	for (int i = 0; i < s->npods; i++)
		if (s->pods[i].iv_answers) {
			sum += (double)s->pods[i].iv_answers;
			mx = fmax(mx, (double)s->pods[i].iv_answers);
			up++;
		}
	/* report.c report_interval(): rebalanced once max/mean falls under 1.2 */
	if (up && !s->rebalanced && s->last_scale_t >= 0 && sum > 0 && mx / (sum / up) < 1.2) {
		s->rebalance_seconds = t - s->last_scale_t;
		s->rebalanced = true;
	}
	keep_row(s, t, up);
	for (int i = 0; i < s->npods; i++)
		s->pods[i].iv_answers = 0;
	s->iv_requests = s->iv_misses = s->iv_local = s->iv_redis = s->iv_redis_ops = s->iv_failed = 0;
	s->iv_timeouts = 0;
}

int stats_csv(FILE *f, const struct load_stats *s)
{
	fprintf(f, "time_s,pods_up,pods_ready,hpa_desired,requests,misses,miss_rate,local_hits,redis_hits,"
	        "redis_ops,failed,live_sessions,timeouts,failed_rate,redis_busy");
	for (int i = 0; i < s->npods; i++)
		fprintf(f, ",%s_requests,%s_sessions", s->pods[i].name, s->pods[i].name);
	fprintf(f, "\n");
	for (size_t r = 0; r < s->nrows; r++) {
		const struct load_row *w = &s->rows[r];
		const struct load_cell *c = &s->cells[w->first], *end = c + w->ncells;

		/* a client sees no HPA: hpa_desired is the pods that answered; redis_busy is unknown */
		fprintf(f, "%.0f,%d,%d,%d,%llu,%llu,%.4f,%llu,%llu,%llu,%llu,%llu,%llu,%.4f,", w->t, w->up, w->up,
		        w->up, (unsigned long long)w->requests, (unsigned long long)w->misses,
		        w->requests ? (double)w->misses / (double)w->requests : 0.0, (unsigned long long)w->local,
		        (unsigned long long)w->redis, (unsigned long long)w->redis_ops, (unsigned long long)w->failed,
		        (unsigned long long)w->live, (unsigned long long)w->timeouts,
		        w->requests ? (double)w->failed / (double)w->requests : 0.0);
		for (int i = 0; i < s->npods; i++)
			if (c < end && (int)c->pod == i) {
				fprintf(f, ",%llu,%lld", (unsigned long long)c->answers, (long long)c->sessions);
				c++;
			} else {
				fprintf(f, ",,");
			}
		fprintf(f, "\n");
	}
	return fflush(f) != 0 || ferror(f) ? -1 : 0;
}

/* --- the summary --- */

void stats_finish(struct load_stats *s, double t, double report_s)
{
	double sum = 0, sq = 0, mx = 0;
	int n = 0;

	s->end_t = t;
	/* report.c report_finish(): each live pod's request rate since it came up */
	for (int i = 0; i < s->npods; i++) {
		const struct load_pod *pd = &s->pods[i];
		double rate;

		if (pd->first_seen < 0 || pd->last_seen < t - report_s)
			continue;
		rate = (double)pd->answers / fmax(1e-9, t - pd->first_seen);
		sum += rate;
		sq += rate * rate;
		mx = fmax(mx, rate);
		n++;
	}
	s->pods_final = n;
	s->load_max_over_mean = s->load_stddev = 0;
	if (n && sum > 0) {
		double mean = sum / n;

		s->load_max_over_mean = mx / mean;
		s->load_stddev = sqrt(fmax(0, sq / n - mean * mean)) / mean;
	}
	s->redis_ops_per_sec = (double)(s->redis_reads + s->redis_writes) / fmax(1e-9, t);
}

static double per_logged_in(const struct load_stats *s, uint64_t v)
{
	return s->requests_logged_in ? (double)v / (double)s->requests_logged_in : 0;
}

/* The causes of failure in tether-sim's classes. */
static unsigned long long failed(const struct load_stats *s, enum lu_fail why)
{
	return (unsigned long long)s->fail[why];
}

void stats_json(FILE *f, const struct load_stats *s)
{
	/* first tether-sim's keys, in sim_print_json()'s order and formats;
	 * null: a client cannot observe it */
	fprintf(f, "{\"requests\": %llu, \"sessions_created\": %llu, \"session_miss_rate\": %.6f, "
	        "\"local_hit_rate\": %.6f, \"redis_hit_rate\": %.6f, \"redis_ops_per_sec\": %.3f, "
	        "\"sessions_lost\": %llu, \"load_max_over_mean\": %.4f, \"load_stddev\": %.4f, "
	        "\"pods_final\": %d, \"rebalance_seconds\": %.1f, ",
	        (unsigned long long)s->requests, (unsigned long long)s->sessions_created,
	        per_logged_in(s, s->misses), per_logged_in(s, s->local_hits), per_logged_in(s, s->redis_hits),
	        s->redis_ops_per_sec, (unsigned long long)s->sessions_lost, s->load_max_over_mean, s->load_stddev,
	        s->pods_final, s->rebalance_seconds);
	fprintf(f, "\"failed_requests\": %llu, \"failed_no_server\": %llu, \"failed_queue_full\": null, "
	        "\"failed_timeout\": %llu, \"failed_crash\": %llu, \"logins_failed\": %llu, "
	        "\"mean_response_ms\": %.4f, \"redis_reads\": %llu, \"redis_writes\": %llu, "
	        "\"redis_utilisation\": null, \"redis_wait_max_ms\": null, \"carts_lost\": null, "
	        "\"live_sessions_peak\": %llu, \"pods_created\": null, \"pods_refused\": null, \"events\": null",
	        (unsigned long long)s->failed, failed(s, LF_NO_SERVER), failed(s, LF_TIMEOUT), failed(s, LF_CRASH),
	        (unsigned long long)s->logins_failed, s->lat.n ? s->lat_sum / (double)s->lat.n / 1000.0 : 0.0,
	        (unsigned long long)s->redis_reads, (unsigned long long)s->redis_writes,
	        (unsigned long long)s->live_sessions_peak);
	/* then tether-load's own */
	fprintf(f, ", \"latency_p50_ms\": %.3f, \"latency_p99_ms\": %.3f, \"latency_max_ms\": %.3f, "
	        "\"send_lag_p99_ms\": %.3f, \"duration_s\": %.3f, \"users\": %llu, \"requests_logged_in\": %llu, "
	        "\"misses\": %llu, \"local_hits\": %llu, \"redis_hits\": %llu, \"unavailable\": %llu, "
	        "\"carts\": %llu, \"http_requests\": %llu, \"answered\": %llu, \"retries\": %llu, "
	        "\"failed_status\": %llu, \"failed_protocol\": %llu, \"pod_answers\": {",
	        stats_hist_ms(&s->lat, 0.5), stats_hist_ms(&s->lat, 0.99), stats_hist_ms(&s->lat, 1.0),
	        stats_hist_ms(&s->lag, 0.99), s->end_t, (unsigned long long)s->users,
	        (unsigned long long)s->requests_logged_in, (unsigned long long)s->misses,
	        (unsigned long long)s->local_hits, (unsigned long long)s->redis_hits,
	        (unsigned long long)s->unavailable, (unsigned long long)s->carts,
	        (unsigned long long)s->http_requests, (unsigned long long)s->lat.n, (unsigned long long)s->retries,
	        failed(s, LF_STATUS), failed(s, LF_PROTOCOL));
	for (int i = 0, k = 0; i < s->npods; i++) {
		if (s->pods[i].first_seen < 0)
			continue;
		fprintf(f, "%s\"", k++ ? ", " : "");
		for (const char *c = s->pods[i].name; *c; c++)     /* X-Pod is the server's text: escape it */
			fprintf(f, (unsigned char)*c < 0x20 || *c == '"' || *c == '\\' ? "\\u%04x" : "%c", *c);
		fprintf(f, "\": %llu", (unsigned long long)s->pods[i].answers);
	}
	fprintf(f, "}}\n");
}

void stats_print(FILE *f, const struct load_stats *s, double wall_s)
{
	fprintf(f, "tether-load: %.1f s, %llu users, %llu requests (%.0f/s), %llu HTTP exchanges\n", s->end_t,
	        (unsigned long long)s->users, (unsigned long long)s->requests,
	        (double)s->requests / fmax(1e-9, s->end_t), (unsigned long long)s->http_requests);
	fprintf(f, "  sessions created    %12llu\n", (unsigned long long)s->sessions_created);
	fprintf(f, "  session miss rate   %11.2f%%   (logged-in requests that found no session: forced re-login)\n",
	        100 * per_logged_in(s, s->misses));
	fprintf(f, "  local hit rate      %11.2f%%\n", 100 * per_logged_in(s, s->local_hits));
	fprintf(f, "  redis hit rate      %11.2f%%\n", 100 * per_logged_in(s, s->redis_hits));
	fprintf(f, "  failed requests     %12llu   (no server %llu, timeout %llu, cut short %llu, status %llu, "
	        "protocol %llu)\n", (unsigned long long)s->failed, failed(s, LF_NO_SERVER), failed(s, LF_TIMEOUT),
	        failed(s, LF_CRASH), failed(s, LF_STATUS), failed(s, LF_PROTOCOL));
	if (s->unavailable || s->logins_failed)
		fprintf(f, "  Redis unavailable   %12llu   (503 from a pod: page views counted as misses; %llu first "
		        "logins failed)\n", (unsigned long long)s->unavailable, (unsigned long long)s->logins_failed);
	fprintf(f, "  load max/mean       %12.3f   (stddev/mean %.3f, %d pods)\n", s->load_max_over_mean,
	        s->load_stddev, s->pods_final);
	fprintf(f, "  latency             p50 %.2f ms  p99 %.2f ms  max %.2f ms  (from when each request was due)\n",
	        stats_hist_ms(&s->lat, 0.5), stats_hist_ms(&s->lat, 0.99), stats_hist_ms(&s->lat, 1.0));
	fprintf(f, "  send lag            p99 %.2f ms   (due -> written; wall %.1f s)\n", stats_hist_ms(&s->lag, 0.99),
	        wall_s);
}
