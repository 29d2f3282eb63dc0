/*
 * tether - listening sockets and the accept loop (src/daemon/listener.c).
 *
 * accept4() runs in a bounded batch per readiness event.  When the process
 * runs out of descriptors (EMFILE/ENFILE) or memory, accepting pauses for
 * ACCEPT_PAUSE seconds instead of spinning on a listener that stays
 * readable; it also pauses at global maxconn (every listener of the worker)
 * or a frontend's maxconn (that frontend's listeners) and resumes when a
 * connection closes.
 */
#ifndef TETHER_LISTENER_H
#define TETHER_LISTENER_H

#include "runtime.h"
#include "worker.h"

/* Opens g's listeners - one per address and worker - whose address has no
 * running listener; the running ones' sockets are taken over later, by each
 * worker in listeners_switch (a reload refuses no connection attempt).  0,
 * or a negative errno with *err and nothing running touched (rt_gen_free
 * closes what was opened).  Control thread. */
int listeners_open(struct t_runtime *rt, struct t_gen *g, char **err);
/* On worker w (a worker_fn: run it there): takes over the sockets of its
 * listeners in w->gen whose address stays, stops the others, and accepts
 * on the listeners of generation `gen` from now on. */
void listeners_switch(struct t_worker *w, void *gen);
/* On worker w (a worker_fn): stops accepting (drain). */
void listeners_stop(struct t_worker *w, void *unused);
/* Closes the sockets g still holds; every worker has stopped watching them
 * (listeners_switch or listeners_stop ran everywhere). */
void listeners_close(struct t_gen *g);
/* Stops accepting on w, for `seconds` (0: until one of its connections
 * closes, or shortly when it has none). */
void listener_pause(struct t_worker *w, double seconds);
void listener_resume(struct t_worker *w);

#endif
