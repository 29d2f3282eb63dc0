/*
 * tether - helpers private to the algorithm core (not part of lb.h); tests
 * and benchmarks of the core may include it.
 */
#ifndef TETHER_LB_CORE_H
#define TETHER_LB_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Zeroed algorithm state of `size` bytes, or NULL with *err set to
 * "out of memory" (the caller returns -ENOMEM). */
void *lb_state_alloc(size_t size, char **err);

struct lb_pool;
struct lb_server;

/* Maglev table entries held by `s` in an iphash pool (or a cookie pool
 * falling back to iphash): its exact share of the hash space.  -1 when the
 * pool does not use a Maglev table.  For tests and benchmarks only. */
int lb_iphash_entries(const struct lb_pool *pool, const struct lb_server *s);

/* The pool index of the server holding Maglev slot `slot` of the primary
 * (backup = false) or backup table, or -1 (no Maglev table, slot out of
 * range).  For the golden-value tests: the table is a compatibility promise. */
int lb_iphash_slot(const struct lb_pool *pool, bool backup, uint32_t slot);

#endif
