/*
 * tether-sim - what a run reports: the CSV (one row per report interval),
 * the summary and its JSON (keys of DESIGN.md, "tether-sim").
 *
 * Rows are kept in memory and written at the end, so the header can give a
 * pair of columns (requests, sessions) to every pod that ever existed,
 * replacements and scale-outs included; a pod's cells are empty in the
 * intervals it did not exist.  A row costs ~100 bytes plus 12 per pod.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

static bool grow(void **a, size_t *cap, size_t need, size_t size)
{
	size_t n = *cap ? *cap : 64;
	void *b;

	if (need <= *cap)
		return true;
	while (n < need)
		n *= 2;
	if (!(b = realloc(*a, n * size)))
		return false;
	*a = b;
	*cap = n;
	return true;
}

void report_interval(struct sim *S)
{
	struct report *r = &S->rep;
	struct report_row *row;
	double mean = 0, mx = 0, busy = S->redis.busy_us;
	int up = 0, n = 0;

	if (!grow((void **)&r->rows, &r->caprows, r->nrows + 1, sizeof(*r->rows)) ||
	    !grow((void **)&r->cells, &r->capcells, r->ncells + (size_t)S->nslots, sizeof(*r->cells))) {
		S->nomem = 1;
		return;
	}
	row = &r->rows[r->nrows++];
	row->first = (uint32_t)r->ncells;
	row->n = 0;
	for (int i = 0; i < S->nslots; i++) {
		struct pod *pd = &S->pods[i];

		if (!pd->exists && !pd->interval_requests)
			continue;
		up += pd->exists && pd->alive;
		r->cells[r->ncells++] = (struct report_cell){ pd->id, (uint32_t)pd->interval_requests,
		                                              (uint32_t)pd->sessions };
		row->n++;
		if (pd->ready && pd->alive && !pd->deleting) {
			mean += (double)pd->interval_requests;
			mx = pd->interval_requests > mx ? (double)pd->interval_requests : mx;
			n++;
		}
		pd->interval_requests = 0;
	}
	if (n && !S->rebalanced && S->last_scale_t >= 0 && mean > 0 && mx / (mean / n) < 1.2) {
		S->s.rebalance_seconds = now_s(S) - S->last_scale_t;
		S->rebalanced = true;
	}
	row->t = now_s(S);
	row->up = up;
	row->ready = pods_ready(S);
	row->desired = S->p->hpa ? S->hpa.desired : S->spec;
	row->requests = r->requests;
	row->misses = r->misses;
	row->local = r->local;
	row->redis = r->redis;
	row->redis_ops = r->redis_ops;
	row->failed = r->failed;
	row->timeouts = r->timeouts;
	row->live = S->live_sessions;
	row->redis_busy = fmin(1.0, (busy - r->redis_busy_at) / (S->p->report_s * US));
	r->redis_busy_at = busy;
	r->requests = r->misses = r->local = r->redis = r->redis_ops = r->failed = r->timeouts = 0;
	push(S, now_s(S) + S->p->report_s, EV_REPORT, 0, 0);
}

int report_write_csv(struct sim *S, FILE *f)
{
	const struct report *r = &S->rep;
	uint32_t np = S->npods_ever;
	struct report_cell *line = calloc(np ? np : 1, sizeof(*line));
	bool *has = calloc(np ? np : 1, sizeof(*has));
	int rc = 0;

	if (!line || !has) {
		rc = -ENOMEM;
		goto out;
	}
	fprintf(f, "time_s,pods_up,pods_ready,hpa_desired,requests,misses,miss_rate,local_hits,redis_hits,"
	        "redis_ops,failed,live_sessions,timeouts,failed_rate,redis_busy");
	for (uint32_t k = 0; k < np; k++)
		fprintf(f, ",%s_requests,%s_sessions", S->names[k], S->names[k]);
	fprintf(f, "\n");
	for (size_t j = 0; j < r->nrows; j++) {
		const struct report_row *w = &r->rows[j];

		fprintf(f, "%.0f,%d,%d,%d,%" PRIu64 ",%" PRIu64 ",%.4f,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
		        ",%" PRIu64 ",%" PRIu64 ",%.4f,%.4f", w->t, w->up, w->ready, w->desired, w->requests, w->misses,
		        w->requests ? (double)w->misses / (double)w->requests : 0.0, w->local, w->redis, w->redis_ops,
		        w->failed, w->live, w->timeouts, w->requests ? (double)w->failed / (double)w->requests : 0.0,
		        w->redis_busy);
		memset(has, 0, np * sizeof(*has));
		for (uint32_t c = 0; c < w->n; c++) {
			line[r->cells[w->first + c].pod] = r->cells[w->first + c];
			has[r->cells[w->first + c].pod] = true;
		}
		for (uint32_t k = 0; k < np; k++)
			if (has[k])
				fprintf(f, ",%u,%u", line[k].requests, line[k].sessions);
			else
				fprintf(f, ",,");
		fprintf(f, "\n");
	}
	if (fflush(f) != 0 || ferror(f))
		rc = -EIO;
out:
	free(line);
	free(has);
	return rc;
}

void report_finish(struct sim *S, struct sim_summary *out)
{
	double sum = 0, sq = 0, mx = 0, t = fmax(1e-9, now_s(S));
	int n = 0;

	for (int i = 0; i < S->nslots; i++) {
		struct pod *pd = &S->pods[i];
		double rate;

		if (!pd->exists || !pd->ready || !pd->alive || pd->deleting)
			continue;
		rate = (double)pd->requests / fmax(1e-9, now_s(S) - pd->ready_since);
		sum += rate;
		sq += rate * rate;
		mx = rate > mx ? rate : mx;
		n++;
	}
	S->s.pods_final = n;
	if (n && sum > 0) {
		double mean = sum / n;

		S->s.load_max_over_mean = mx / mean;
		S->s.load_stddev = sqrt(fmax(0, sq / n - mean * mean)) / mean;
	}
	if (S->s.requests_logged_in) {
		S->s.session_miss_rate = (double)S->s.misses / (double)S->s.requests_logged_in;
		S->s.local_hit_rate = (double)S->s.local_hits / (double)S->s.requests_logged_in;
		S->s.redis_hit_rate = (double)S->s.redis_hits / (double)S->s.requests_logged_in;
	}
	S->s.redis_ops_per_sec = (double)(S->s.redis_reads + S->s.redis_writes) / t;
	S->s.redis_utilisation = fmin(1.0, S->redis.busy_us / (t * US));
	S->s.redis_wait_max_ms = S->redis.wait_max_us / 1000.0;
	S->s.mean_response_ms = S->resp_n ? S->resp_sum / (double)S->resp_n / 1000.0 : 0;
	S->s.live_sessions_end = S->live_sessions;
	*out = S->s;
}

void report_fini(struct sim *S)
{
	free(S->rep.rows);
	free(S->rep.cells);
}

void sim_print_json(FILE *f, const struct sim_summary *s)
{
	fprintf(f, "{\"requests\": %" PRIu64 ", \"sessions_created\": %" PRIu64 ", \"session_miss_rate\": %.6f, "
	        "\"local_hit_rate\": %.6f, \"redis_hit_rate\": %.6f, \"redis_ops_per_sec\": %.3f, "
	        "\"sessions_lost\": %" PRIu64 ", \"load_max_over_mean\": %.4f, \"load_stddev\": %.4f, "
	        "\"pods_final\": %d, \"rebalance_seconds\": %.1f, ",
	        s->requests, s->sessions_created, s->session_miss_rate, s->local_hit_rate, s->redis_hit_rate,
	        s->redis_ops_per_sec, s->sessions_lost, s->load_max_over_mean, s->load_stddev, s->pods_final,
	        s->rebalance_seconds);
	fprintf(f, "\"failed_requests\": %" PRIu64 ", \"failed_no_server\": %" PRIu64 ", \"failed_queue_full\": %" PRIu64
	        ", \"failed_timeout\": %" PRIu64 ", \"failed_crash\": %" PRIu64 ", \"logins_failed\": %" PRIu64 ", "
	        "\"mean_response_ms\": %.4f, \"redis_reads\": %" PRIu64 ", \"redis_writes\": %" PRIu64 ", "
	        "\"redis_utilisation\": %.6f, \"redis_wait_max_ms\": %.4f, \"carts_lost\": %" PRIu64 ", "
	        "\"live_sessions_peak\": %" PRIu64 ", \"pods_created\": %d, \"pods_refused\": %" PRIu64 ", "
	        "\"events\": %" PRIu64 "}\n",
	        s->failed, s->failed_no_server, s->failed_queue_full, s->failed_timeout, s->failed_crash,
	        s->logins_failed, s->mean_response_ms, s->redis_reads, s->redis_writes, s->redis_utilisation,
	        s->redis_wait_max_ms, s->carts_lost, s->live_sessions_peak, s->pods_created, s->pods_refused,
	        s->events);
}
