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

/* Serves w's runtime on the TCP address a.  0, or a negative errno with *err. */
int metrics_start(struct t_metrics *m, struct t_worker *w, const struct cfg_addr *a, char **err);
/* Stops serving and sampling; nothing when not started. */
void metrics_stop(struct t_metrics *m);

#endif
