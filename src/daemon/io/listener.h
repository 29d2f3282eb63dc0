/*
 * tether - listening sockets and the accept loop (src/daemon/listener.c).
 *
 * accept4() runs in a bounded batch per readiness event.  When the process
 * runs out of descriptors (EMFILE/ENFILE) or memory, accepting pauses for
 * ACCEPT_PAUSE seconds instead of spinning on a listener that stays
 * readable; it also pauses at global or frontend maxconn and resumes when a
 * connection closes.
 */
#ifndef TETHER_LISTENER_H
#define TETHER_LISTENER_H

#include "runtime.h"
#include "worker.h"

/* Opens g's listeners whose address no running listener has, then - only
 * once all of them opened - takes over the running ones' sockets (a reload
 * refuses no connection attempt).  0, or a negative errno with *err and
 * nothing running touched. */
int listeners_open(struct t_runtime *rt, struct t_gen *g, char **err);
/* Starts accepting on g's listeners, for worker w. */
void listeners_start(struct t_worker *w, struct t_gen *g);
/* Stops and closes the listeners g still holds (retirement, drain). */
void listeners_close(struct t_gen *g);
/* Stops accepting on the running generation, for `seconds` (0: until a
 * connection closes, which calls listener_resume). */
void listener_pause(struct t_worker *w, double seconds);
void listener_resume(struct t_worker *w);

#endif
