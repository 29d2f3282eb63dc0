/*
 * tether - the connections' epoll set, watched by the loop as one fd
 * (src/daemon/poller.c).
 *
 * Sockets are added once, edge-triggered for reading and writing (as
 * nginx does), and stay until close() removes them: what an owner waits
 * for is its own business, so stopping and resuming a direction costs no
 * system call.  A batch of events is played in the order the kernel queued
 * them, so the socket that became ready first is served first (libev would
 * play its pending watchers last-in first-out, and the oldest request of a
 * busy batch would wait for all the others).
 *
 * Deferred frees: after every batch, and once per loop iteration, the
 * poller calls `after` so that objects closed during the batch are freed
 * only once no later event of the batch can point at them.
 */
#ifndef TETHER_POLLER_H
#define TETHER_POLLER_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "defs.h"              /* struct poll_item */

typedef void (*poll_after_fn)(void *arg);

struct poller {
	int epfd;
	struct ev_loop *loop;
	ev_io io;               /* epfd readable */
	ev_prepare reaper;      /* `after` once per loop iteration */
	poll_after_fn after;
	void *arg;
};

/* 0, or a negative errno with *err.  Neither watcher keeps the loop alive. */
int poller_init(struct poller *p, struct ev_loop *loop, poll_after_fn after, void *arg, char **err);
void poller_fini(struct poller *p);
/* Adds fd (first call, `added` false) or queues it again so that the
 * kernel reports it once more if it is ready.  0 or a negative errno. */
int poller_arm(struct poller *p, int fd, struct poll_item *it, bool added);
/* A listening socket: level-triggered readable; `exclusive` (EPOLLEXCLUSIVE)
 * when the same socket is in several workers' sets, so that a connection
 * wakes one of them.  poller_remove takes it out (a pause).  0 or -errno. */
int poller_add_listener(struct poller *p, int fd, struct poll_item *it, bool exclusive);
int poller_remove(struct poller *p, int fd);

#endif
