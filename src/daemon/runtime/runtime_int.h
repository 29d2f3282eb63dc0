/*
 * tether - the runtime, private to runtime.c and server.c.
 */
#ifndef TETHER_RUNTIME_INT_H
#define TETHER_RUNTIME_INT_H

#include "runtime.h"

/* A new server object's identity (name, address, owner; no check socket). */
void rt_server_init(struct t_server *s, struct t_backend *be, const char *name, const struct cfg_addr *addr);
/* Health and counters of the same-named server of the running generation:
 * a reload does not make a DOWN server UP, nor reset what it counted.
 * Returns its admin state (READY when there is none). */
enum lb_admin rt_inherit(const struct t_runtime *rt, struct t_backend *nb, struct t_server *s);

#endif
