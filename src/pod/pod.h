/*
 * pod.h - tether-pod: the pod, its client connections and its Redis ops.
 *
 * One struct pod owns everything (listeners, connections, the session
 * table, the Redis link, the counters); nothing lives at file scope, so the
 * modules below only ever reach state through it:
 *   conn.c   HTTP/1.1 connections: keep-alive, pipelining, answers in order
 *   app.c    routes: /, /health, /stats, and the session endpoints
 *   store.c  the session stores: memory, redis, redis+cache
 *   rlink.c  the async Redis (and Sentinel) link
 *   req.c    request head parsing; sesstab.c the local tables
 *   main.c   arguments, start-up, signals, shutdown
 */
#ifndef TETHER_POD_POD_H
#define TETHER_POD_POD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <ev.h>

#include "req.h"
#include "rlink.h"
#include "sesstab.h"

#define POD_REQ_MAX 16384       /* a head larger than this gets 431 */
#define POD_LISTEN_MAX 16
#define POD_CART_TTL 86400      /* s: carts are kept a day (DESIGN.md, the lab) */

#ifndef container_of
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#endif

enum pod_store { STORE_NONE, STORE_MEMORY, STORE_REDIS, STORE_CACHE };

/* Where a request's session came from: the X-Session header. */
enum sess_src { SRC_LOCAL, SRC_CACHE, SRC_REDIS, SRC_MISS, SRC_NEW };

/* Counters served at /stats; see docs/lab.md for their exact meaning. */
struct pod_stats {
	uint64_t requests;          /* every request but /health and /stats */
	uint64_t sessions_created;  /* logins that stored a session */
	uint64_t misses;            /* 401: no session for the SID given (or none given) */
	uint64_t hits_local, hits_cache, hits_redis;
	uint64_t carts;             /* cart additions stored */
	uint64_t unavailable;       /* 503 answers */
	uint64_t redis_errors;      /* Redis ops that failed or could not be sent */
	uint64_t touches_skipped;   /* redis+cache: TTL refreshes not sent, Redis being behind */
	uint64_t connections;       /* connections accepted */
	uint64_t proxy_errors;      /* --proxy-protocol: connections closed for a bad or missing header */
};

enum op_kind { OP_LOGIN, OP_LOAD, OP_CART, OP_TOUCH };

/* A Redis op of the pod: one request's round trip (or a touch nobody
 * waits for).  Memory owned by the link (rlink.h). */
struct pod_op {
	struct rop r;
	struct client *client;      /* not owned: the client waiting, NULL when none (or gone) */
	enum op_kind kind;
	enum sess_src src;          /* OP_CART: where its session came from */
	bool cart;                  /* OP_LOAD: for /cart/add, a cart write follows */
	bool found;                 /* OP_LOAD, OP_TOUCH: the session exists */
	uint32_t item, views;
	uint64_t sid;
	char user[SESS_USER_MAX + 1];
};

/* One client connection.  Freed only by conn.c, never from inside one of
 * its own I/O callbacks' callers once they return. */
struct client {
	ev_io rio, wio;
	ev_timer idle;
	struct pod *pod;            /* not owned */
	struct client *prev, *next; /* the pod's list of connections */
	struct pod_op *op;          /* not owned: the op this client waits for (parked), or NULL */
	int fd;
	size_t in_len, out_len, out_off;
	bool close_after;           /* close once the answers are out */
	bool eof;                   /* the client sent its FIN: answer what is left, then close */
	bool pp_pending;            /* --proxy-protocol: its PROXY header is still to read */
	struct sockaddr_storage peer;   /* the address it connected from */
	char in[POD_REQ_MAX];
	char out[POD_REQ_MAX];
};

struct pod {
	struct ev_loop *loop;       /* not owned */
	const char *name;           /* not owned (argv) */
	int health_status;
	enum pod_store store;
	bool proxy_protocol;        /* a PROXY v1/v2 header starts every connection */
	bool log_connections;       /* one stderr line per connection, with the client's address */
	double session_ttl;         /* s, sliding */
	double cache_ttl;           /* s, since the entry was read from or written to Redis */
	struct sesstab sessions;    /* memory: the sessions; redis+cache: the cache */
	struct addrset addrs;       /* distinct client addresses */
	struct rlink redis;         /* used by the redis stores only */
	bool redis_on;              /* `redis` was started */
	struct pod_stats st;
	uint64_t sid_state;         /* session id generator (splitmix64), seeded at random */
	struct client *clients;     /* owned: every open connection */
	ev_io listener[POD_LISTEN_MAX];
	int nlisteners;
	ev_signal sterm, sint;
};

/* conn.c */
/* libev callback of a listening socket whose `data` is the pod. */
void conn_accept_cb(struct ev_loop *loop, ev_io *w, int revents);
/* Appends an answer (with X-Pod) to c's output; `extra` is zero or more
 * header lines, each ending in CRLF. */
void conn_respond(struct client *c, int status, const char *ctype, const char *extra, const char *body);
/* The request being handled waits for `op`: c reads and answers nothing
 * more until conn_resume(). */
void conn_park(struct client *c, struct pod_op *op);
/* The parked request's answer is in: send it and go on with c's next
 * requests.  c may be freed before this returns. */
void conn_resume(struct client *c);
/* Closes every connection (shutdown). */
void conn_close_all(struct pod *p);

/* app.c */
enum { APP_DONE, APP_WAIT };
/* Answers request r of c (APP_DONE), or parks c on a Redis op (APP_WAIT). */
int app_handle(struct pod *p, struct client *c, const struct req *r);
/* The 503 answer for a Redis failure, counted; `reason` is for the body. */
void app_unavailable(struct pod *p, struct client *c, const char *reason);

/* store.c */
/* The Lua script the Redis link loads on every connect (one page read). */
extern const char store_touch_lua[];
/* Logs `user` (ulen valid bytes) in on c's request: APP_DONE or APP_WAIT. */
int store_login(struct pod *p, struct client *c, const char *user, size_t ulen);
/* A page (/item/N) or, with `cart`, a cart addition of item for session
 * `sid` (0: none given): APP_DONE or APP_WAIT. */
int store_item(struct pod *p, struct client *c, uint64_t sid, uint32_t item, bool cart);
/* The Redis link's hooks (rlink.h); `owner` is the pod. */
void store_reply(void *owner, struct rop *op, const redisReply *r);
void store_done(void *owner, struct rop *op);

#endif
