/*
 * tether - one balancer instance: its runtime, log, worker and control
 * servers, signals, reload and drain (src/daemon/daemon.c).  The top of
 * the daemon: it sequences the layers below and is called by main() only
 * (and by tests, which may run several instances in one process).
 */
#ifndef TETHER_DAEMON_H
#define TETHER_DAEMON_H

#include <ev.h>
#include <stdbool.h>

#include "ctl.h"
#include "log.h"
#include "metrics.h"
#include "resolve.h"
#include "runtime.h"
#include "tether/config.h"
#include "worker.h"

/* tether_start flags */
#define TETHER_SIGNALS 0x1u     /* run on the default loop and handle HUP, TERM, INT, USR1 */

struct tether {
	struct ev_loop *loop;
	unsigned flags;
	struct t_log log;
	struct t_runtime rt;
	struct t_worker *w;             /* nw of them; w[0] runs on `loop` */
	unsigned nw;
	struct ctl_server admin;
	struct t_metrics metrics;
	struct t_resolver res;          /* DNS service discovery (on worker 0) */
	ev_signal sig_term, sig_int, sig_hup, sig_usr1;
	ev_timer drain_timer;
	bool draining;
	int exit_code;
};

/* Builds and starts an instance from a loaded config (taking ownership of
 * cfg, also on failure).  0, or a negative errno with *err; tether_free()
 * must be called either way. */
int tether_start(struct tether *t, struct tether_config *cfg, const char *path, unsigned flags, char **err);
/* Runs the loop until stopped; returns the exit code. */
int tether_run(struct tether *t);
void tether_free(struct tether *t);
/* SIGHUP: re-reads the file; a bad file keeps the running configuration. */
void tether_reload(struct tether *t);
/* SIGTERM: stops accepting, drains for up to drain_timeout, then stops. */
void tether_drain(struct tether *t, const char *why);

#endif
