/*
 * tether - metrics over HTTP on global.metrics: Prometheus text exposition
 * (format 0.0.4) at /metrics, the same data as JSON at /stats (plus the
 * last minutes, history.c, and the workers), and the dashboard page at /.
 *
 * Served by the daemon's own loop from the plain counters the relay keeps:
 * nothing on the relay path locks or even knows about it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dashboard.h"
#include "metrics.h"

/* Label value escaping of the exposition format: \ " and newline. */
static const char *esc(const char *s, char *buf, size_t cap)
{
	size_t o = 0;

	for (; *s && o + 2 < cap; s++) {
		if (*s == '\\' || *s == '"') {
			buf[o++] = '\\';
			buf[o++] = *s;
		} else if (*s == '\n') {
			buf[o++] = '\\';
			buf[o++] = 'n';
		} else {
			buf[o++] = *s;
		}
	}
	buf[o] = '\0';
	return buf;
}

enum scope { SC_GLOBAL, SC_FRONTEND, SC_BACKEND, SC_SERVER };

struct metric {
	const char *name, *type, *help;
	enum scope scope;
	/* one of these is set, by scope */
	double (*global)(const struct t_worker *w);
	uint64_t (*fe)(const struct t_frontend *f);
	uint64_t (*be)(const struct t_backend *b);
	uint64_t (*srv)(const struct t_server *s);
	double scale;                   /* backend scope: printed as value * scale when set (ms -> s) */
};

static double g_active(const struct t_worker *w) { return T_LOAD(&w->rt->active); }
static double g_reloads(const struct t_worker *w) { return (double)w->rt->reloads_total; }
static double g_reload_fail(const struct t_worker *w) { return (double)w->rt->reload_failures_total; }
static double g_uptime(const struct t_worker *w) { return ev_now(w->loop) - w->rt->started; }
static double g_maxconn(const struct t_worker *w) { return w->rt->gen->cfg->global.maxconn; }
static uint64_t f_total(const struct t_frontend *f) { return T_LOAD(&f->connections_total); }
static uint64_t f_active(const struct t_frontend *f) { return T_LOAD(&f->active); }
static uint64_t f_proxy_err(const struct t_frontend *f) { return T_LOAD(&f->proxy_errors_total); }
static uint64_t b_retries(const struct t_backend *b) { return T_LOAD(&b->retries_total); }
static uint64_t b_noserver(const struct t_backend *b) { return T_LOAD(&b->no_server_total); }
static double g_local_err(const struct t_worker *w) { return (double)T_LOAD(&w->rt->local_errors_total); }
static uint64_t b_qlen(const struct t_backend *b) { return T_LOAD(&b->queue_length); }
static uint64_t b_queued(const struct t_backend *b) { return T_LOAD(&b->queued_total); }
static uint64_t b_qdisp(const struct t_backend *b) { return T_LOAD(&b->queue_dispatched_total); }
static uint64_t b_qwait(const struct t_backend *b) { return T_LOAD(&b->queue_wait_ms_total); }
static uint64_t b_qtimeout(const struct t_backend *b) { return T_LOAD(&b->queue_timeouts_total); }
static uint64_t b_qfull(const struct t_backend *b) { return T_LOAD(&b->queue_full_total); }
static uint64_t b_reqtimeout(const struct t_backend *b) { return T_LOAD(&b->request_timeouts_total); }
static uint64_t s_up(const struct t_server *s) { return s->lb.up; }
static uint64_t s_weight(const struct t_server *s) { return s->lb.weight; }
static uint64_t s_active(const struct t_server *s) { return s->lb.active; }
static uint64_t s_total(const struct t_server *s) { return T_LOAD(&s->connections_total); }
static uint64_t s_fail(const struct t_server *s) { return T_LOAD(&s->connect_failures_total); }
static uint64_t s_in(const struct t_server *s) { return T_LOAD(&s->bytes_in_total); }
static uint64_t s_out(const struct t_server *s) { return T_LOAD(&s->bytes_out_total); }
static uint64_t s_trans(const struct t_server *s) { return s->lb.hc.transitions; }
static uint64_t s_hits(const struct t_server *s) { return s->lb.cnt.affinity_hits; }
static uint64_t s_misses(const struct t_server *s) { return s->lb.cnt.affinity_misses; }
static uint64_t s_redisp(const struct t_server *s) { return s->lb.cnt.redispatches; }
static uint64_t s_drain(const struct t_server *s) { return s->lb.admin == LB_ADMIN_DRAIN; }

static const struct metric metrics[] = {
	{ "tether_active_connections", "gauge", "Client connections open now.", SC_GLOBAL, .global = g_active },
	{ "tether_maxconn", "gauge", "Global connection limit (global.maxconn).", SC_GLOBAL, .global = g_maxconn },
	{ "tether_reloads_total", "counter", "Successful configuration reloads (SIGHUP).", SC_GLOBAL, .global = g_reloads },
	{ "tether_reload_failures_total", "counter", "Reloads refused because the new file was invalid.", SC_GLOBAL,
	  .global = g_reload_fail },
	{ "tether_uptime_seconds", "gauge", "Seconds since tether started.", SC_GLOBAL, .global = g_uptime },
	{ "tether_local_errors_total", "counter",
	  "Sockets and connects (proxied or health checks) that failed for a local shortage: EMFILE, ENFILE, "
	  "ENOBUFS, ENOMEM, EADDRNOTAVAIL.", SC_GLOBAL, .global = g_local_err },
	{ "tether_frontend_connections_total", "counter", "Client connections accepted.", SC_FRONTEND, .fe = f_total },
	{ "tether_frontend_active_connections", "gauge", "Client connections open now.", SC_FRONTEND, .fe = f_active },
	{ "tether_frontend_proxy_errors_total", "counter",
	  "accept_proxy: connections closed for a malformed, cut or late PROXY header.", SC_FRONTEND, .fe = f_proxy_err },
	{ "tether_retries_total", "counter", "Connects retried on another server after a failure.", SC_BACKEND,
	  .be = b_retries },
	{ "tether_backend_no_server_total", "counter", "Client connections closed because no server was usable.",
	  SC_BACKEND, .be = b_noserver },
	{ "tether_backend_queue_length", "gauge", "Client connections waiting now for a server below its maxconn.",
	  SC_BACKEND, .be = b_qlen },
	{ "tether_backend_queued_total", "counter", "Client connections that had to wait in the queue.", SC_BACKEND,
	  .be = b_queued },
	{ "tether_backend_queue_dispatched_total", "counter", "Queued connections that then got a server.", SC_BACKEND,
	  .be = b_qdisp },
	{ "tether_backend_queue_wait_seconds_total", "counter",
	  "Time the dispatched connections waited in the queue, in all (divide by queue_dispatched_total).",
	  SC_BACKEND, .be = b_qwait, .scale = 0.001 },
	{ "tether_backend_queue_timeouts_total", "counter", "Queued connections closed after queue.timeout.",
	  SC_BACKEND, .be = b_qtimeout },
	{ "tether_backend_queue_full_total", "counter", "Connections closed at once because the queue held queue.max.",
	  SC_BACKEND, .be = b_qfull },
	{ "tether_backend_request_timeouts_total", "counter",
	  "Cookie mode: connections closed without a complete request head within timeouts.http_request.", SC_BACKEND,
	  .be = b_reqtimeout },
	{ "tether_server_up", "gauge", "1 when the server is UP by health checks, 0 when DOWN.", SC_SERVER, .srv = s_up },
	{ "tether_server_draining", "gauge", "1 while the server is drained by the runtime API.", SC_SERVER,
	  .srv = s_drain },
	{ "tether_server_weight", "gauge", "Current weight.", SC_SERVER, .srv = s_weight },
	{ "tether_server_active_connections", "gauge", "Connections open to the server now (including connecting).",
	  SC_SERVER, .srv = s_active },
	{ "tether_server_connections_total", "counter", "Connection attempts to the server.", SC_SERVER, .srv = s_total },
	{ "tether_server_connect_failures_total", "counter", "Connects that failed (refused, unreachable, timed out).",
	  SC_SERVER, .srv = s_fail },
	{ "tether_server_bytes_in_total", "counter", "Bytes sent from clients to the server.", SC_SERVER, .srv = s_in },
	{ "tether_server_bytes_out_total", "counter", "Bytes sent from the server to clients.", SC_SERVER, .srv = s_out },
	{ "tether_server_health_transitions_total", "counter", "UP/DOWN changes of the server.", SC_SERVER,
	  .srv = s_trans },
	{ "tether_server_affinity_hits_total", "counter", "Connections an affinity (cookie or stick entry) sent here.",
	  SC_SERVER, .srv = s_hits },
	{ "tether_server_affinity_misses_total", "counter", "Connections sent here without a usable affinity (new clients).",
	  SC_SERVER, .srv = s_misses },
	{ "tether_server_redispatches_total", "counter",
	  "Connections whose affinity named this server while it was unusable, sent elsewhere.", SC_SERVER,
	  .srv = s_redisp },
};
#define NMETRICS (sizeof(metrics) / sizeof(metrics[0]))

static void prometheus(struct t_metrics *ms, struct sbuf *o)
{
	struct t_worker *w = ms->hist.w;
	const struct t_gen *g = w->rt->gen;
	char a[160], b[160];

	for (size_t m = 0; m < NMETRICS; m++) {
		const struct metric *mt = &metrics[m];

		sb_printf(o, "# HELP %s %s\n# TYPE %s %s\n", mt->name, mt->help, mt->name, mt->type);
		switch (mt->scope) {
		case SC_GLOBAL:
			sb_printf(o, "%s %.17g\n", mt->name, mt->global(w));
			break;
		case SC_FRONTEND:
			for (int i = 0; i < g->nfe; i++)
				sb_printf(o, "%s{frontend=\"%s\"} %llu\n", mt->name, esc(g->fe[i]->cfg.name, a, sizeof(a)),
				          (unsigned long long)mt->fe(g->fe[i]));
			break;
		case SC_BACKEND:
			for (struct t_backend *be = g->backends; be; be = be->next)
				if (mt->scale)
					sb_printf(o, "%s{backend=\"%s\"} %.17g\n", mt->name, esc(be->cfg.name, a, sizeof(a)),
					          (double)mt->be(be) * mt->scale);
				else
					sb_printf(o, "%s{backend=\"%s\"} %llu\n", mt->name, esc(be->cfg.name, a, sizeof(a)),
					          (unsigned long long)mt->be(be));
			break;
		case SC_SERVER:     /* servers' lb state under their backend's lock (workers change it) */
			for (struct t_backend *be = g->backends; be; be = be->next) {
				rt_backend_lock(be);
				for (int i = 0; i < be->pool.nservers; i++) {
					struct t_server *s = be->pool.servers[i]->data;

					if (s->deleted)
						continue;
					sb_printf(o, "%s{backend=\"%s\",server=\"%s\"} %llu\n", mt->name,
					          esc(be->cfg.name, a, sizeof(a)), esc(s->lb.name, b, sizeof(b)),
					          (unsigned long long)mt->srv(s));
				}
				rt_backend_unlock(be);
			}
			break;
		}
	}
	if (ms->res)
		resolver_metrics(ms->res, o);
	sb_printf(o, "# HELP tether_build_info Version of tether.\n# TYPE tether_build_info gauge\n"
	          "tether_build_info{version=\"%s\"} 1\n", TETHER_VERSION);
}

/* JSON strings here are names limited to [A-Za-z0-9._-] and addresses. */
static void json(struct t_metrics *mt, struct sbuf *o)
{
	struct t_worker *w = mt->hist.w;
	struct t_runtime *rt = w->rt;
	const struct t_gen *g = rt->gen;

	sb_printf(o, "{\"version\":\"%s\",\"pid\":%d,\"uptime_seconds\":%.3f,\"active_connections\":%u,"
	          "\"reloads_total\":%llu,\"reload_failures_total\":%llu,\"generations\":%u,\"workers\":[",
	          TETHER_VERSION, (int)getpid(), ev_now(w->loop) - rt->started, T_LOAD(&rt->active),
	          (unsigned long long)rt->reloads_total, (unsigned long long)rt->reload_failures_total,
	          rt_generations(rt));
	for (unsigned i = 0; i < w->npeers; i++)
		sb_printf(o, "%s{\"id\":%u,\"active_connections\":%u,\"connections_total\":%llu}", i ? "," : "", i,
		          T_LOAD(&w->peers[i].active), (unsigned long long)T_LOAD(&w->peers[i].accepted));
	sb_printf(o, "],\"frontends\":[");
	for (int i = 0; i < g->nfe; i++)
		sb_printf(o, "%s{\"name\":\"%s\",\"backend\":\"%s\",\"connections_total\":%llu,\"active_connections\":%u,"
		          "\"proxy_errors_total\":%llu,\"connections_per_second\":%u}", i ? "," : "", g->fe[i]->cfg.name,
		          g->fe[i]->be->cfg.name, (unsigned long long)T_LOAD(&g->fe[i]->connections_total),
		          T_LOAD(&g->fe[i]->active), (unsigned long long)T_LOAD(&g->fe[i]->proxy_errors_total),
		          g->fe[i]->rate.last);
	sb_printf(o, "],\"backends\":[");
	{
		bool first = true;

		for (struct t_backend *be = g->backends; be; be = be->next) {
			bool sfirst = true;

			sb_printf(o, "%s{\"name\":\"%s\",\"balance\":\"%s\",\"retries_total\":%llu", first ? "" : ",",
			          be->cfg.name, be->pool.algo->name, (unsigned long long)T_LOAD(&be->retries_total));
			for (size_t m = 0; m < NMETRICS; m++)      /* no_server_total, queue_length, ... */
				if (metrics[m].scope == SC_BACKEND && !metrics[m].scale &&
				    strncmp(metrics[m].name, "tether_backend_", 15) == 0)
					sb_printf(o, ",\"%s\":%llu", metrics[m].name + 15, (unsigned long long)metrics[m].be(be));
			sb_printf(o, ",\"queue_wait_seconds_total\":%.3f,\"servers\":[", (double)b_qwait(be) / 1000.0);
			first = false;
			rt_backend_lock(be);
			for (int i = 0; i < be->pool.nservers; i++) {
				struct t_server *s = be->pool.servers[i]->data;

				if (s->deleted)
					continue;
				sb_printf(o, "%s{\"name\":\"%s\",\"address\":\"%s\",\"state\":\"%s\",\"backup\":%s,"
				          "\"last_check\":\"%s\",\"connections_per_second\":%u", sfirst ? "" : ",", s->lb.name,
				          s->addr.text, rt_server_state(s), s->lb.backup ? "true" : "false",
				          strpbrk(s->last_check, "\"\\") ? "?" : s->last_check, s->rate.last);
				sfirst = false;
				for (size_t m = 0; m < NMETRICS; m++)
					if (metrics[m].scope == SC_SERVER)
						sb_printf(o, ",\"%s\":%llu", metrics[m].name + strlen("tether_server_"),
						          (unsigned long long)metrics[m].srv(s));
				sb_printf(o, "}");
			}
			rt_backend_unlock(be);
			sb_printf(o, "]}");
		}
	}
	sb_printf(o, "],");
	if (mt->res) {
		resolver_json(mt->res, o);
		sb_printf(o, ",");
	}
	history_json(&mt->hist, o);
	sb_printf(o, "}\n");
}

/*
 * One HTTP/1.x request per connection: GET (or HEAD: the same headers, no
 * body, as nginx) of /metrics, /stats or / (the dashboard).  Another
 * method gets 405 with Allow, another path 404.
 */
static size_t handle(struct ctl_server *cs, const char *in, size_t len, struct sbuf *out, bool *close_after)
{
	struct t_metrics *m = cs->arg;
	const char *end = memmem(in, len, "\r\n\r\n", 4), *sp, *target, *tend;
	struct sbuf body = { 0 };
	const char *type = "text/plain; version=0.0.4; charset=utf-8", *extra = "";
	const void *text;
	size_t text_len;
	bool head = false, dash = false;
	int status = 200;

	if (!end)
		end = memmem(in, len, "\n\n", 2);
	if (!end)
		return 0;
	*close_after = true;
	sp = memchr(in, ' ', (size_t)(end - in));
	target = sp ? sp + 1 : end;
	tend = memchr(target, ' ', (size_t)(end - target));
	if (!tend)
		tend = target;
	if (sp && (size_t)(sp - in) == 4 && memcmp(in, "HEAD", 4) == 0)
		head = true;
	else if (!(sp && (size_t)(sp - in) == 3 && memcmp(in, "GET", 3) == 0))
		status = 405;
#define IS(p) ((size_t)(tend - target) == strlen(p) && memcmp(target, p, strlen(p)) == 0)
	if (status == 405) {
		sb_printf(&body, "method not allowed: GET or HEAD\n");
		type = "text/plain";
		extra = "Allow: GET, HEAD\r\n";
	} else if (IS("/metrics")) {
		prometheus(m, &body);
	} else if (IS("/stats")) {
		json(m, &body);
		type = "application/json";
	} else if (IS("/")) {
		type = "text/html; charset=utf-8";
		extra = "Cache-Control: no-store\r\n";
		dash = true;
	} else {
		status = 404;
		sb_printf(&body, "not found: try / (the dashboard), /metrics or /stats\n");
		type = "text/plain";
	}
#undef IS
	text = dash ? (const void *)dashboard_html : body.s;
	text_len = dash ? dashboard_html_len : body.len;
	sb_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n",
	          status, status == 200 ? "OK" : status == 405 ? "Method Not Allowed" : "Not Found", type, text_len,
	          extra);
	if (!head && text_len)
		sb_printf(out, "%.*s", (int)text_len, (const char *)text);
	sb_free(&body);
	return len;
}

void metrics_serve(struct t_metrics *m, struct t_worker *w, struct ctl_bound *b)
{
	bool sampling = m->cs.loop != NULL;

	ctl_stop(&m->cs);
	m->cs.idle = CTL_REQUEST;       /* one request per connection: no idle client */
	ctl_serve(&m->cs, w->loop, b, w->log, handle, m);
	if (!sampling)
		history_start(&m->hist, w);
}

void metrics_stop(struct t_metrics *m)
{
	ctl_stop(&m->cs);
	history_stop(&m->hist);
}
