/*
 * tether - the last minutes of an instance (see history.h).
 *
 * The sums are taken over the running generation: frontends' and servers'
 * counters carry over a reload by name, so a reload does not show as a
 * spike; a sum that went down (a server deleted with its counters) counts
 * as no change rather than a negative rate.
 */
#include <stdbool.h>

#include "history.h"

static uint32_t delta(uint64_t now, uint64_t before)
{
	return now > before ? (uint32_t)(now - before) : 0;
}

/* A rate's new second (a new object's first sample counts nothing). */
static void rate_sample(struct t_rate *r, uint64_t total, bool count)
{
	r->last = count && r->prev ? delta(total, r->prev) : 0;
	r->prev = total;
}

/* The sums the chart plots; with `rates`, each frontend's and server's
 * one-second rate too. */
static void sums(const struct t_worker *w, uint64_t *conn, uint64_t *fail, bool rates)
{
	const struct t_gen *g = w->rt->gen;

	*conn = *fail = 0;
	for (int i = 0; i < g->nfe; i++) {
		uint64_t total = T_LOAD(&g->fe[i]->connections_total);

		*conn += total;
		*fail += T_LOAD(&g->fe[i]->proxy_errors_total);
		rate_sample(&g->fe[i]->rate, total, rates);
	}
	for (struct t_backend *be = g->backends; be; be = be->next) {
		*fail += T_LOAD(&be->no_server_total) + T_LOAD(&be->queue_timeouts_total) + T_LOAD(&be->queue_full_total) +
		         T_LOAD(&be->request_timeouts_total);
		rt_backend_lock(be);            /* the pool's list of servers */
		for (int i = 0; i < be->pool.nservers; i++) {
			struct t_server *s = be->pool.servers[i]->data;

			*fail += T_LOAD(&s->connect_failures_total);
			rate_sample(&s->rate, T_LOAD(&s->connections_total), rates);
		}
		rt_backend_unlock(be);
	}
}

static void sample_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct t_history *h = container_of(t, struct t_history, timer);
	uint64_t conn, fail;

	sums(h->w, &conn, &fail, true);
	h->conn[h->head] = delta(conn, h->last_conn);
	h->fail[h->head] = delta(fail, h->last_fail);
	h->active[h->head] = T_LOAD(&h->w->rt->active);
	h->last_conn = conn;
	h->last_fail = fail;
	h->head = (h->head + 1) % HISTORY_LEN;
	if (h->count < HISTORY_LEN)
		h->count++;
}

void history_start(struct t_history *h, struct t_worker *w)
{
	h->w = w;
	h->head = h->count = 0;
	sums(w, &h->last_conn, &h->last_fail, false);
	ev_timer_init(&h->timer, sample_cb, HISTORY_STEP, HISTORY_STEP);
	ev_timer_start(w->loop, &h->timer);
	ev_unref(w->loop);
}

void history_stop(struct t_history *h)
{
	if (!h->w)
		return;
	ev_ref(h->w->loop);
	ev_timer_stop(h->w->loop, &h->timer);
	h->w = NULL;
}

static void ring(const struct t_history *h, const uint32_t *v, struct sbuf *out)
{
	unsigned first = (h->head + HISTORY_LEN - h->count) % HISTORY_LEN;

	sb_printf(out, "[");
	for (unsigned i = 0; i < h->count; i++)
		sb_printf(out, "%s%u", i ? "," : "", v[(first + i) % HISTORY_LEN]);
	sb_printf(out, "]");
}

void history_json(const struct t_history *h, struct sbuf *out)
{
	sb_printf(out, "\"history\":{\"step_seconds\":%g,\"connections\":", HISTORY_STEP);
	ring(h, h->conn, out);
	sb_printf(out, ",\"failures\":");
	ring(h, h->fail, out);
	sb_printf(out, ",\"active\":");
	ring(h, h->active, out);
	sb_printf(out, "}");
}
