/*
 * tether - proxied connections: the connection state machine (proxy.c),
 * the relay (relay.c), cookie mode's request peek and Set-Cookie
 * insertion (proxy_http.c), and the PROXY protocol headers read from
 * clients and written to servers (proxy_pp.c).
 *
 * A connection is accepted by a listener, picks a server through the
 * core's outcome policy (lb_attempt: retries never repeat a server),
 * connects without blocking, then relays both directions with half-close,
 * resets and idle timeouts until both sides are done.  Its sockets live in
 * the worker's poller; it holds one reference to its generation.
 */
#ifndef TETHER_PROXY_H
#define TETHER_PROXY_H

#include <sys/socket.h>

#include "runtime.h"
#include "worker.h"

/* Why a connection ended: the last field of its log line. */
enum t_end {
	END_CLIENT_CLOSED = 0, END_SERVER_CLOSED, END_CLIENT_TIMEOUT, END_SERVER_TIMEOUT,
	END_CONNECT_FAILED, END_NO_SERVER, END_CLIENT_RESET, END_SERVER_RESET,
	END_SHUTDOWN, END_SERVER_DOWN, END_HEAD_TIMEOUT, END_ERROR, END_PROXY_INVALID, END_PROXY_TIMEOUT,
	END_QUEUE_TIMEOUT, END_QUEUE_FULL,
};
const char *t_end_name(enum t_end e);

/* A client connection accepted on one of fe's listeners: takes fd. */
void proxy_accept(struct t_worker *w, struct t_frontend *fe, int fd, const struct sockaddr_storage *ss);
/* Closes every connection (shutdown deadline, exit). */
void proxy_close_all(struct t_worker *w, enum t_end why);
/* Closes w's established connections to server `id` of be (on_down = "close"). */
void proxy_close_server(struct t_worker *w, const struct t_backend *be, uint32_t id);
/* Slots freed for some of w's queued connections (its qwake): they connect. */
void proxy_dispatch(struct t_worker *w);
/* Frees the connections closed since the last call (the poller's `after`). */
void proxy_reap(void *worker);

#endif
