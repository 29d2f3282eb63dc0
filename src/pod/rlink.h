/*
 * rlink.h - tether-pod's link to the Redis master: hiredis's async API on
 * the pod's libev loop, so the pod never blocks on Redis.
 *
 * The link finds the master (a fixed address, or by asking Redis Sentinel
 * `SENTINEL get-master-addr-by-name`), connects, checks with ROLE that it
 * is a master and loads the owner's Lua script (SCRIPT LOAD), and only then
 * is up.  While it is not up, commands are refused at once with a reason.
 * On any loss (connection error, a reply later than `timeout`, an error
 * reply saying the server is no longer a writable master, a Sentinel
 * `+switch-master` for our master) it drops the connection, fails every
 * command in flight and reconnects with exponential backoff (RLINK_BACKOFF_*),
 * asking Sentinel again.
 *
 * Commands are grouped in ops: an op is one or more commands sent in one
 * go (pipelined); the owner hears each non-error reply (`reply` hook) and
 * then, once, that the op is over (`done` hook), with `failed` and `reason`
 * set if any command failed.  Ops are owned by the link: rlink_op() hands
 * one out, and it returns to the link's free list once `done` returns
 * without having sent new commands on it (an owner may chain a second step
 * on the same op from `done`).  No allocation per op once the free list
 * has warmed up.
 */
#ifndef TETHER_POD_RLINK_H
#define TETHER_POD_RLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <hiredis/async.h>

#define RLINK_SENTINELS_MAX 8
#define RLINK_BACKOFF_MIN 0.05  /* s: first retry after a loss */
#define RLINK_BACKOFF_MAX 1.0   /* s: doubling stops here, so a pod is back within
                                 * a second of its master (or Sentinel's new one) */

struct rlink_addr {
	char host[64];          /* an IP address: a host name would block in getaddrinfo */
	int port;
};

/* The link's part of an op; the owner's struct begins with it. */
struct rop {
	struct rop *prev, *next;        /* private: ops in flight, or the free list */
	double sent;                    /* private: ev_now() at the first command */
	int pending;                    /* read-only: replies still to come */
	bool failed;                    /* read-only: a command of the op failed */
	char reason[128];               /* read-only: why, when failed */
};

/* A non-error reply `r` to one command of `op`, in command order. */
typedef void rlink_reply_fn(void *owner, struct rop *op, const redisReply *r);
/* Every command of `op` answered, or failed. */
typedef void rlink_done_fn(void *owner, struct rop *op);

struct rlink_conf {
	struct rlink_addr direct;       /* the master, when there are no sentinels */
	struct rlink_addr sentinel[RLINK_SENTINELS_MAX];
	int nsentinels;
	const char *master_name;        /* not owned; Sentinel's name of the master */
	double timeout;                 /* s: bound on a connect, the handshake, and each reply */
	const char *script;             /* not owned; Lua loaded on every connect, see `sha` */
	const char *log_name;           /* not owned; prefixes log lines on stderr */
	size_t op_size;                 /* the owner's op size, >= sizeof(struct rop) */
	rlink_reply_fn *reply;
	rlink_done_fn *done;
	void *owner;                    /* not owned; passed to the hooks */
};

enum rlink_state { RLINK_DOWN, RLINK_RESOLVING, RLINK_CONNECTING, RLINK_UP };

struct rlink {
	struct rlink_conf conf;
	struct ev_loop *loop;           /* not owned */
	enum rlink_state state;
	redisAsyncContext *ac;          /* the master, or NULL */
	redisAsyncContext *query;       /* the sentinel being asked, or NULL */
	redisAsyncContext *sub;         /* the sentinel we hear +switch-master from, or NULL */
	struct rlink_addr master;       /* the master last found */
	int next_sentinel, tried, sub_next;
	double backoff;                 /* s: the next retry's delay */
	ev_timer retry;                 /* reconnect */
	ev_timer conn_timer;            /* bounds a connect plus handshake */
	ev_timer op_timer;              /* bounds the oldest op in flight */
	ev_timer sub_retry;
	char sha[41];                   /* read-only: the script's SHA1, valid while up */
	char reason[128];               /* read-only: why the link is not up */
	char logged[128];               /* the last reason logged, to log changes only */
	struct rop *head, *tail;        /* ops in flight, oldest first */
	size_t inflight;                /* read-only: how many */
	struct rop *free_ops;
	bool stopping;
	uint64_t commands;              /* read-only: commands sent */
	uint64_t ups;                   /* read-only: times the link came up */
};

/* Starts connecting (at once).  0, or -EINVAL with a message on stderr
 * for a configuration that cannot work. */
int rlink_start(struct rlink *l, struct ev_loop *loop, const struct rlink_conf *conf);

/* Closes every connection (ops in flight get `done` with a failure) and
 * frees the ops.  The link is unusable afterwards. */
void rlink_stop(struct rlink *l);

static inline bool rlink_up(const struct rlink *l)
{
	return l->state == RLINK_UP;
}

/* A zeroed op of conf.op_size, or NULL when memory is short. */
struct rop *rlink_op(struct rlink *l);

/* Gives back an op on which no command was sent. */
void rlink_op_put(struct rlink *l, struct rop *op);

/* Sends one command of `op` (binary-safe arguments).  0, or -1 when the
 * link is down or the command cannot be queued: then `op` is marked failed
 * with the reason, and if no command of it is in flight, it stays the
 * caller's (no `done` will come). */
int rlink_cmd(struct rlink *l, struct rop *op, int argc, const char **argv, const size_t *argvlen);

#endif
