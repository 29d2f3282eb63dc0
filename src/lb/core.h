/*
 * tether - helpers private to the algorithm core (not part of lb.h).
 */
#ifndef TETHER_LB_CORE_H
#define TETHER_LB_CORE_H

#include <stddef.h>

/* Zeroed algorithm state of `size` bytes, or NULL with *err set to
 * "out of memory" (the caller returns -ENOMEM). */
void *lb_state_alloc(size_t size, char **err);

#endif
