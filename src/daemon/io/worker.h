/*
 * tether - a worker: one event loop, its thread, its listening sockets and
 * the client connections it serves (src/daemon/io/worker.c).
 *
 * The I/O modules (listener, proxy, check, ctl) run on a worker's loop and
 * share its state through this struct; the runtime below them knows nothing
 * of it.  With global.workers = N an instance has N workers: worker 0 runs
 * on the process's main thread and also carries the control work (signals,
 * health checks, the runtime API, metrics, reloads); workers 1..N-1 each
 * run on a thread of their own.  Everything in a struct t_worker is touched
 * by its own thread only, except the message queue: other threads reach a
 * worker by posting a function to run on its loop (worker_post,
 * workers_call), which is also how a reload, a drain or an on_down close
 * reach every worker.
 */
#ifndef TETHER_WORKER_H
#define TETHER_WORKER_H

#include <ev.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "log.h"
#include "poller.h"
#include "runtime.h"

struct conn;
struct t_worker;
struct w_msg;

/* A function run on a worker's loop, in its thread. */
typedef void (*worker_fn)(struct t_worker *w, void *arg);

struct t_worker {
	unsigned id;                    /* 0 .. nworkers-1; listeners ls[bind * nworkers + id] */
	struct ev_loop *loop;           /* owned by worker_fini for id > 0 */
	struct t_runtime *rt;           /* not owned */
	struct t_log *log;              /* the instance's (id 0) or this worker's own */
	struct t_log own_log;           /* id > 0: a buffer of its own on the instance's file */
	struct t_gen *gen;              /* the generation whose listeners it runs */
	struct poller poller;           /* the connections' sockets */
	struct lb_rng rng;              /* its picks */
	char *scratch;                  /* relay buffer shared by its connections */
	size_t scratch_size;
	struct conn *conns;             /* its open connections (drain, on_down) */
	struct conn *dead;              /* closed, freed after the batch (proxy_reap) */
	struct conn *queued;            /* those waiting in a backend's queue */
	ev_async qwake;                 /* a slot freed for one of them (any thread) */
	unsigned active;                /* its connections (read by others: T_LOAD) */
	uint64_t accepted;              /* connections accepted (T_ADD) */
	bool accept_paused;             /* out of fds or at maxconn */
	int spare_fd;                   /* a TCP socket held back for a connection's server side
	                                 * (worker_spare_*); -1 once used, until taken again */
	bool draining;                  /* stopped accepting: the loop ends with the last connection */
	bool running;                   /* its thread runs its loop (id > 0) */
	ev_timer accept_timer;          /* resumes accepting after a pause */
	ev_async wake;                  /* messages posted */
	pthread_mutex_t mq_lock;
	struct w_msg *mq, **mq_tail;    /* posted, not yet run */
	pthread_t thread;
	worker_fn on_idle;              /* draining and the last connection closed */
	void *on_idle_arg;
	struct t_worker *peers;         /* every worker of the instance (show info, /stats) */
	unsigned npeers;
};

/* 0, or a negative errno with *err.  Worker 0 runs on `loop` (the
 * caller's); others get a loop of their own (loop NULL). */
int worker_init(struct t_worker *w, unsigned id, struct ev_loop *loop, struct t_runtime *rt, struct t_log *log,
                char **err);
/* The spare socket: a connection accepted with the last descriptor still
 * gets its server socket, so that tether never accepts a client only to
 * drop it.  worker_spare_ready makes the spare again when it was used
 * (before each accept; false when out of descriptors: do not accept).
 * worker_spare_take hands over a socket of `family` when socket() failed
 * for want of descriptors (the spare itself for AF_INET), or -1. */
bool worker_spare_ready(struct t_worker *w);
int worker_spare_take(struct t_worker *w, int family);
/* Starts the thread of a worker > 0 (its loop runs until worker_stop). */
int worker_start_thread(struct t_worker *w, bool pin_cpu, char **err);
/* global.cpu_affinity: runs `thread` (w's) on CPU w->id, modulo the CPUs. */
void worker_pin(const struct t_worker *w, pthread_t thread);
/* Ends the loop of a worker > 0 and joins its thread (any thread but its own). */
void worker_stop_thread(struct t_worker *w);
/* Closes every connection and frees the worker's own state (its thread,
 * if any, has stopped). */
void worker_fini(struct t_worker *w);

/* Runs fn(w, arg) on w's loop, soon; from any thread. */
void worker_post(struct t_worker *w, worker_fn fn, void *arg);
/* Runs fn on every worker of ws[0..n) and returns when all have run it;
 * called from worker 0's thread, which runs its own share directly. */
void workers_call(struct t_worker *ws, unsigned n, worker_fn fn, void *arg);

#endif
