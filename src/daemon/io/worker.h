/*
 * tether - a worker: one event loop and the client connections it serves
 * (src/daemon/worker.c).
 *
 * The I/O modules (listener, proxy, check, ctl) run on a worker's loop and
 * share its state through this struct; the runtime below them knows nothing
 * of it.  One instance has one worker today (global.workers = 1).
 */
#ifndef TETHER_WORKER_H
#define TETHER_WORKER_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

#include "log.h"
#include "poller.h"
#include "runtime.h"

struct conn;

struct t_worker {
	struct ev_loop *loop;           /* not owned */
	struct t_runtime *rt;           /* not owned */
	struct t_log *log;              /* not owned */
	struct poller poller;           /* the connections' sockets */
	char *scratch;                  /* relay buffer shared by every connection */
	size_t scratch_size;
	struct conn *conns;             /* every open connection (drain, on_down) */
	struct conn *dead;              /* closed, freed after the batch (proxy_reap) */
	bool accept_paused;             /* out of fds or at maxconn */
	bool draining;                  /* stopped accepting: the loop ends with the last connection */
	ev_timer accept_timer;          /* resumes accepting after a pause */
};

/* 0, or a negative errno with *err. */
int worker_init(struct t_worker *w, struct ev_loop *loop, struct t_runtime *rt, char **err);
/* Closes every connection and frees the worker's own state. */
void worker_fini(struct t_worker *w);

#endif
