/*
 * tether - small definitions shared by every daemon module.
 */
#ifndef TETHER_DEFS_H
#define TETHER_DEFS_H

#include <stddef.h>
#include <stdint.h>

struct poll_item;
/* Called by the worker's poller (io/poller.h) with the epoll events
 * (EPOLLIN, EPOLLOUT, EPOLLRDHUP, ...) of the socket the item stands for. */
typedef void (*poll_fn)(struct poll_item *it, uint32_t events);

/* Embedded in whatever owns a socket in a poller; recovered with container_of. */
struct poll_item {
	poll_fn fn;
};

/* The object that embeds `ptr` as its `member` (libev watchers, poll items). */
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#endif
