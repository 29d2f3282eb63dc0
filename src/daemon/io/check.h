/*
 * tether - active health checks: a TCP connect, or an HTTP GET with an
 * expected status (src/daemon/check.c).  Each server has one timer and at
 * most one check socket (struct t_check in its t_server).  The result goes
 * to rt_server_checked(), i.e. the core's rise/fall state machine; the
 * first check of each server is spread over one interval so that checks of
 * many servers do not fire together.
 */
#ifndef TETHER_CHECK_H
#define TETHER_CHECK_H

#include "runtime.h"
#include "worker.h"

/* Starts checking s on w's loop (nothing when its backend has no checks). */
void check_start(struct t_worker *w, struct t_server *s);
void check_stop(struct t_server *s);
/* Every server of every backend of g. */
void checks_start(struct t_worker *w, struct t_gen *g);
void checks_stop(struct t_gen *g);

#endif
