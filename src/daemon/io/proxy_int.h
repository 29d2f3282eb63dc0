/*
 * tether - what proxy.c, relay.c and proxy_http.c share about a connection
 * (not for other modules: they use proxy.h).
 *
 * Ownership: conn_close() unlinks and closes the connection and puts it on
 * the worker's dead list, freed after the batch (proxy_reap), so a later
 * event of the same batch that points at it finds it closed.  Every
 * function that may close returns false (or true for "closed", as named)
 * so its callers return at once.
 */
#ifndef TETHER_PROXY_INT_H
#define TETHER_PROXY_INT_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "poller.h"
#include "proxy.h"
#include "tether/http.h"

#define IO_R 1
#define IO_W 2

enum conn_state { ST_PROXY, ST_HEAD, ST_QUEUED, ST_CONNECTING, ST_RELAY };

/* Bytes waiting to be written to one side. */
struct pbuf {
	uint32_t off, len, cap;
	char data[];
};

struct side {
	struct poll_item it;        /* in the worker's poller while fd >= 0 */
	int fd;
	uint8_t want;               /* IO_R | IO_W: what the connection waits for */
	bool client;                /* this side is conn.c (the client's) */
	struct pbuf *out;           /* pending bytes for this fd, NULL when none */
	ev_tstamp last;             /* last read from or write to this fd */
	bool rd_eof;                /* EOF read from this fd */
	bool wr_shut;               /* shutdown(SHUT_WR) done towards this fd */
	bool watched;               /* fd is in the epoll set */
	bool rd_ready;              /* fd may hold unread bytes or an unread end */
	bool rd_hup;                /* the peer's FIN (or an error) has arrived */
	bool rd_fin;                /* ... and it was a FIN, with no error seen */
};

struct conn {
	struct side c, s;           /* client, server */
	ev_timer timer;
	struct t_worker *w;
	struct t_frontend *fe;      /* its generation is referenced (gen_put in proxy_reap) */
	struct t_backend *be;       /* of the same generation */
	struct t_server *srv;       /* current attempt, then the server; NULL before */
	struct conn *prev, *next;   /* worker.conns; once closed, next links worker.dead */
	struct conn *qprev, *qnext; /* worker.queued, while ST_QUEUED */
	struct rt_waiter qw;        /* in the backend's queue, while ST_QUEUED */
	ev_tstamp qstart;           /* when it joined the queue */
	bool closed;
	ev_tstamp start, connect_start;
	uint64_t bytes_in, bytes_out;
	float connect_ms;
	uint16_t port;              /* client port, host order */
	uint8_t state;
	uint8_t first_eof;          /* END_CLIENT_CLOSED or END_SERVER_CLOSED: who closed first */
	bool injecting;             /* inserting Set-Cookie into the first response */
	bool head_http;             /* head is a complete HTTP/1.x request head */
	char *head;                 /* cookie mode: the client's first bytes */
	uint32_t head_len;
	struct http_inject inj;
	struct lb_key key;          /* client address, cookie, tried servers */
	struct lb_addr dst;         /* accept_proxy: the address the client connected to, from the
	                             * header; len 0: the client socket's own (getsockname) */
	uint16_t dport;             /* with dst, host order */
};

/* proxy.c */
void conn_close(struct conn *cn, enum t_end why, bool reset);
/* Picks a server (first attempt or a retry) and starts connecting; or
 * queues cn when every server it could use is full; or closes it. */
void connect_start(struct conn *cn);
void arm_timer(struct conn *cn, double seconds);

/* relay.c */
/* Re-queues sd in the poller (first call: adds it).  False when the kernel
 * refused (the caller closes). */
bool io_arm(struct conn *cn, struct side *sd);
/* Waits for `what` on sd; a system call only when sd is not yet watched or
 * reading resumes on a socket that may still hold bytes.  False when the
 * connection was closed. */
bool io_start(struct conn *cn, struct side *sd, uint8_t what);
void io_stop(struct side *sd, uint8_t what);
/* Closes sd's fd (which leaves the epoll set); reset: as an RST. */
void side_close(struct side *sd, bool reset);
/* Sends to `to`, keeping what it cannot take.  False when cn was closed. */
bool send_to(struct conn *cn, struct side *to, const char *data, size_t len);
/* `from` is readable: moves its bytes to its peer. */
void pump(struct conn *cn, struct side *from);
/* `to` is writable: flushes its pending bytes. */
void flush(struct conn *cn, struct side *to);
/* Passes the end of `to`'s peer on to `to`.  True when cn was closed. */
bool pass_fin(struct conn *cn, struct side *to);

/* The client is known (accepted, or its PROXY header read): read its
 * request head (cookie mode) or connect. */
void conn_route(struct conn *cn);

/* proxy_pp.c (the PROXY protocol) */
/* The client sent (more of) its PROXY header. */
void pp_read(struct conn *cn);
/* The connect to a server with send_proxy succeeded: writes the header
 * first.  False when cn was closed. */
bool pp_send(struct conn *cn);

/* proxy_http.c (cookie mode) */
/* The client sent (more of) its request head. */
void head_read(struct conn *cn);
/* The head is complete, too long, cut by the client's FIN or not HTTP: route it. */
void route_head(struct conn *cn);
/* Server -> client bytes while the Set-Cookie header is still to insert.
 * False when cn was closed. */
bool send_injecting(struct conn *cn, const char *buf, size_t n);
/* Cookie mode: answers the client "HTTP/1.1 <status>" (no body,
 * Connection: close) before the caller closes, having read what the client
 * sent meanwhile so that the close is a FIN, not a reset. */
void http_answer(struct conn *cn, const char *status);
/* The connect succeeded in cookie mode: forwards the head, decides whether
 * the answer carries a cookie.  False when cn was closed. */
bool head_forward(struct conn *cn);

#endif
