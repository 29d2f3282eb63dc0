/*
 * tether - small definitions shared by every daemon module.
 */
#ifndef TETHER_DEFS_H
#define TETHER_DEFS_H

#include <stddef.h>

/* The object that embeds `ptr` as its `member` (libev watchers, poll items). */
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#endif
