/*
 * tether - metrics over HTTP: Prometheus text exposition (format 0.0.4) at
 * /metrics and the same data as JSON at /stats (src/daemon/metrics.c).
 */
#ifndef TETHER_METRICS_H
#define TETHER_METRICS_H

#include "ctl.h"
#include "worker.h"

/* Serves w's runtime on the TCP address a. */
int metrics_start(struct ctl_server *cs, struct t_worker *w, const struct cfg_addr *a, char **err);

#endif
