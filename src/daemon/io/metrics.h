/*
 * tether - metrics over HTTP: Prometheus text exposition (format 0.0.4) at
 * /metrics, the same data as JSON at /stats, and the dashboard at /, a
 * page that polls /stats (src/daemon/io/metrics.c, dashboard.html).
 */
#ifndef TETHER_METRICS_H
#define TETHER_METRICS_H

#include "ctl.h"
#include "history.h"
#include "resolve.h"
#include "worker.h"

struct t_metrics {
	struct ctl_server cs;
	struct t_history hist;          /* the chart's last minutes, sampled while serving */
	const struct t_resolver *res;   /* not owned: DNS entries' counters; NULL: none */
};

/* Serves w's runtime on b (ctl_bind_tcp; taken over), in place of the
 * socket served so far if any (a reload); starts sampling the history. */
void metrics_serve(struct t_metrics *m, struct t_worker *w, struct ctl_bound *b);
/* Stops serving and sampling; nothing when not started. */
void metrics_stop(struct t_metrics *m);

#endif
