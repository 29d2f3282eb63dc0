/*
 * tether - the daemon's runtime: the object model built from a
 * configuration, its generations across reloads, and the operations of the
 * runtime API (src/daemon/runtime.c).
 *
 * The runtime does no I/O.  It sits above the pure core (src/lb) and the
 * configuration (src/config), and below the I/O modules (proxy, listener,
 * check, ctl, admin, metrics) and the instance (daemon.c), which call down
 * into it; it reaches back up only through struct rt_hooks, filled at
 * start-up.  The build enforces the direction (src/daemon/meson.build).
 *
 *   struct t_runtime         the state of one tether instance
 *    +- struct t_gen *       generations: the running one, and retired ones
 *    |   |                   that still carry connections after a reload
 *    |   +- struct tether_config   the configuration it was built from
 *    |   +- struct t_frontend[]    with their listeners
 *    |   +- struct t_backend *     a list, each with its lb_pool
 *    |       +- struct t_server[]  configured, plus those added at runtime
 *
 * Ownership (who frees what, and when):
 *  - A generation owns its configuration, frontends, backends and servers,
 *    and frees all of them at once, exactly once: in gen_put() when its
 *    last reference goes.
 *  - References to a generation: one while it is the running one (dropped
 *    by the rt_install that retires it, or by rt_fini), and one per
 *    connection accepted on one of its frontends (taken when the proxy
 *    accepts it, dropped when the proxy frees it).  Nothing else counts.
 *  - A connection's frontend, backend and server pointers are borrowed
 *    from the generation it holds.
 *  - Retiring a generation means: the instance stopped its checks and
 *    closed the listeners the new generation did not take over; its
 *    connections keep running on its objects.  Servers carry health and
 *    counters to the same-named server of the new generation (by value,
 *    never by pointer).
 *  - A server added at runtime belongs to its backend.  `del server` takes
 *    it out of the pool; it is freed when its last connection ends
 *    (srv_conn_end), or with its generation.
 *
 * Threads (global.workers = N): the runtime is shared by the N workers'
 * threads and the control thread (worker 0).  What may change after a
 * generation is built is guarded as follows:
 *  - a backend's pool (lb_pool and the lb_server of each server: health,
 *    admin state, weight, active counts, the algorithm's state, the stick
 *    table) and its list of runtime-added servers: its mutex (be->lock),
 *    taken by every rt_* function below that needs it and by readers through
 *    rt_backend_lock();
 *  - counters (connections, bytes, retries, active gauges), generation
 *    references and the `retired` flag: atomic operations (T_ADD, T_LOAD),
 *    relaxed for counters, acquire/release for references;
 *  - the list of generations: rt->lock; rt->gen is written by the control
 *    thread only (workers use the generation their own listeners belong to);
 *  - everything else of a generation (its configuration, names, addresses)
 *    is never written after rt_gen_new: read freely.
 * rt_hooks functions may be called from any worker thread.
 */
#ifndef TETHER_RUNTIME_H
#define TETHER_RUNTIME_H

#include <ev.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "defs.h"
#include "log.h"
#include "tether/config.h"
#include "tether/lb.h"


/* Counters shared by the workers: relaxed atomics (a sum, never a decision). */
#define T_ADD(p, n) __atomic_fetch_add((p), (n), __ATOMIC_RELAXED)
#define T_SUB(p, n) __atomic_fetch_sub((p), (n), __ATOMIC_RELAXED)
#define T_LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)

struct t_runtime;
struct t_gen;
struct t_backend;
struct t_frontend;
struct t_worker;

/* The state of a server's active health check: owned and used by check.c
 * only; here so that a server is one allocation. */
struct t_check {
	struct ev_loop *loop;           /* while a check is scheduled, else NULL */
	ev_timer timer;
	ev_io io;
	int fd;                         /* the check's socket, -1 when idle */
	unsigned len;
	char buf[256];
};

/* A counter's last one-second delta: kept by the dashboard's sampler
 * (io/history.c) only; here so that it lives and dies with its object. */
struct t_rate {
	uint64_t prev;                  /* the counter at the previous sample */
	uint32_t last;                  /* its increase over the last second */
};

struct t_server {
	struct lb_server lb;            /* embedded; lb.data points back here; lb.hc is its health */
	struct t_backend *be;           /* owner; not owned */
	struct cfg_addr addr;
	bool dynamic;                   /* added at runtime: allocated alone */
	bool deleted;                   /* `del server`: freed once idle (srv_conn_end) */
	char last_check[64];            /* reason of the last check result */
	/* counters (monotonic, T_ADD) */
	uint64_t connections_total;
	uint64_t connect_failures_total;
	uint64_t bytes_in_total;        /* client -> server */
	uint64_t bytes_out_total;       /* server -> client */
	/* The counters as inherit() copied them to the next generation's
	 * same-named server: what this one counts after that (its connections
	 * still running) is added there when this generation is freed. */
	bool handed_over;
	uint64_t handed[4];             /* connections, connect failures, bytes in, bytes out */
	struct t_check check;
	struct t_rate rate;             /* connections per second (io/history.c) */
	struct t_server *next_dynamic;  /* list of runtime-added servers */
};

/* A connection waiting in its backend's queue for a slot (embedded in the
 * connection, which sets key and ready; the rest is the runtime's, under
 * the backend's lock). */
struct rt_waiter {
	struct rt_waiter *prev, *next;  /* the backend's queue, oldest first */
	struct lb_key *key;             /* its picks' key (tried servers, cookie) */
	uint64_t now_ms;                /* when it queued: the clock of its picks */
	struct t_server *srv;           /* a slot freed: the server its attempt is counted on */
	bool given;                     /* srv is set (atomic: its owner may look without the lock) */
	bool queued;                    /* in the queue */
	/* srv was set and the waiter left the queue: called with the
	 * backend's lock held, from any thread; wakes its owner, nothing more */
	void (*ready)(struct rt_waiter *w);
};

/* A slot was given to w (its owner then takes it with rt_queue_take). */
static inline bool rt_waiter_given(const struct rt_waiter *w)
{
	return __atomic_load_n(&w->given, __ATOMIC_ACQUIRE);
}

/* Why rt_attempt gave no server. */
enum rt_wait { RT_NO_SERVER, RT_QUEUED, RT_QUEUE_FULL };

struct t_backend {
	struct cfg_backend cfg;         /* copy; cfg.servers not owned (NULL) */
	struct lb_pool pool;
	struct t_server *servers;       /* configured servers, cfg_nservers of them */
	int cfg_nservers;
	struct t_server *dynamic;       /* runtime-added servers */
	struct t_gen *gen;              /* owner */
	pthread_mutex_t lock;           /* pool, servers' lb state, dynamic list */
	uint64_t retries_total;         /* T_ADD */
	uint64_t no_server_total;       /* T_ADD */
	struct rt_waiter *qhead, *qtail; /* the queue (lock) */
	unsigned queue_length;          /* waiters in it (written under the lock with T_ADD, read with T_LOAD) */
	struct lb_rng qrng;             /* the picks made for waiters (lock) */
	/* T_ADD */
	uint64_t queued_total;          /* connections that waited in the queue */
	uint64_t queue_dispatched_total;/* ... and then got a server */
	uint64_t queue_wait_ms_total;   /* ... after waiting this long in all */
	uint64_t queue_timeouts_total;  /* closed after queue.timeout */
	uint64_t queue_full_total;      /* closed at once: the queue held queue.max */
	uint64_t request_timeouts_total;/* cookie mode: no complete request head within http_request */
	bool handed_over;               /* as for servers: the counters above at the copy */
	uint64_t handed[8];             /* in runtime.c's be_counters order */
	struct t_backend *next;
};

/* One listening socket of a frontend for one worker (with N workers, N
 * sockets per address share its port through SO_REUSEPORT); opened,
 * started and closed by listener.c.  fd moves to the next generation when
 * its address stays.  Touched by its worker's thread only, once started. */
struct t_listener {
	struct poll_item it;            /* in its worker's poller while accepting */
	bool accepting;
	int fd;                         /* -1 when closed */
	struct cfg_addr addr;
	struct t_frontend *fe;          /* owner */
	struct t_worker *w;             /* accepting for this worker while started */
};

struct t_frontend {
	struct cfg_frontend cfg;
	struct t_gen *gen;              /* owner */
	struct t_backend *be;           /* of the same generation */
	struct t_listener *ls;          /* cfg.nbinds x rt->nworkers: ls[bind * nworkers + worker] */
	uint64_t connections_total;     /* T_ADD */
	uint64_t proxy_errors_total;    /* accept_proxy: headers malformed, cut short or too late (T_ADD) */
	bool handed_over;               /* as for servers: connections, proxy errors at the copy */
	uint64_t handed[2];
	struct t_rate rate;             /* connections per second (io/history.c, control thread) */
	unsigned active;                /* T_ADD */
};

/* One configuration and what was built from it (see the ownership notes). */
struct t_gen {
	struct t_runtime *rt;
	struct tether_config *cfg;      /* owned */
	struct t_frontend **fe;         /* owned, nfe of them */
	int nfe;
	struct t_backend *backends;     /* owned list */
	unsigned refs;                  /* running: 1; plus one per connection (atomic) */
	bool retired;                   /* no longer the running generation (atomic) */
	struct t_gen *next;             /* t_runtime.gens */
};

/* How the runtime reaches the layers above it: filled by the instance. */
struct rt_hooks {
	/* The server `id` of backend be went DOWN (a check or an observed
	 * failure) in the running generation, and be closes connections then
	 * (on_down = "close"): close the established ones.  Called from any
	 * thread, with no lock held; the server itself may be gone by then. */
	void (*server_down)(void *arg, struct t_backend *be, uint32_t id);
	void *arg;
};

struct t_runtime {
	struct t_log *log;              /* not owned */
	struct t_gen *gen;              /* the running generation; NULL before the first */
	struct t_gen *gens;             /* every live generation, newest first (lock) */
	pthread_mutex_t lock;           /* gens */
	unsigned nworkers;              /* fixed at start: listeners per address */
	struct lb_rng rng;              /* check jitter (control thread) */
	struct rt_hooks hooks;
	char conf_path[256];
	unsigned active;                /* client connections open, all generations (T_ADD) */
	uint64_t local_errors_total;    /* sockets and connects failed for a local shortage (T_ADD) */
	bool local_short;               /* such a shortage is on: logged once (atomic) */
	uint64_t reloads_total, reload_failures_total;
	double started;                 /* ev_time() at start */
};

/* An empty runtime logging to log, for nworkers workers. */
void rt_init(struct t_runtime *rt, struct t_log *log, const char *conf_path, unsigned nworkers, uint64_t seed);
/* Frees every generation.  Connections must all be gone (proxy_close_all
 * and the reaping of them come first). */
void rt_fini(struct t_runtime *rt);

/* Builds a generation from cfg (owned from now on, also on failure):
 * frontends with closed listeners, backends, servers with the health and
 * counters of the running same-named ones.  NULL with *err on failure. */
struct t_gen *rt_gen_new(struct t_runtime *rt, struct tether_config *cfg, char **err);
/* Frees a generation that was never installed (a reload that failed after
 * rt_gen_new); closes the listeners it opened. */
void rt_gen_free(struct t_gen *g);
/* Makes g the running generation.  The previous one (whose checks and
 * listeners the caller has stopped) is retired and its running reference
 * dropped: it goes when its last connection does. */
void rt_install(struct t_runtime *rt, struct t_gen *g);
/* A connection takes / drops its one reference to its generation; the last
 * gen_put of a retired generation frees it and everything it owns. */
void gen_get(struct t_gen *g);
void gen_put(struct t_gen *g);
/* Live generations: 1 + retired ones still carrying connections. */
unsigned rt_generations(struct t_runtime *rt);
/* Connections waiting in a backend's queue, every live generation's. */
unsigned rt_queued(struct t_runtime *rt);
/* True once g is no longer the running generation (any thread). */
bool rt_gen_retired(const struct t_gen *g);

/* The running listener bound to addr for worker w, or NULL (control thread). */
struct t_listener *rt_listener_find(const struct t_runtime *rt, const struct cfg_addr *addr, unsigned w);

/* Readers of a backend's servers' lb state (show servers, metrics) hold its lock. */
void rt_backend_lock(struct t_backend *be);
void rt_backend_unlock(struct t_backend *be);
/* The core's lb_attempt under the backend's lock: the server for a
 * connection's next attempt (counted on it), or NULL and *why: no usable
 * server is left or the retries are spent (RT_NO_SERVER); the servers it
 * could use are all at their maxconn and qw joined the queue (RT_QUEUED;
 * qw->ready is called once a slot is its own), or the queue is full or off
 * (RT_QUEUE_FULL; queue.max 0: RT_NO_SERVER).  rng is the caller's (per
 * worker).  qw NULL: no queueing. */
struct t_server *rt_attempt(struct t_backend *be, struct lb_key *key, uint64_t now_ms, struct lb_rng *rng,
                            struct rt_waiter *qw, enum rt_wait *why);
/* The server a slot freed for qw (its attempt is counted on it: connect,
 * or give it back with srv_conn_end), or NULL while none did.  leave: qw
 * leaves the queue either way (a timeout, a close). */
struct t_server *rt_queue_take(struct t_backend *be, struct rt_waiter *qw, bool leave);
/* The running backend called name, or NULL. */
struct t_backend *rt_backend_find(const struct t_runtime *rt, const char *name);
/* A server of be in its pool (configured or added; not deleted), or NULL. */
struct t_server *rt_server_find(const struct t_backend *be, const char *name);

/*
 * The runtime API's operations on the running generation.  Each returns
 * 0, or a negative errno with *err set to the reason an operator reads
 * ("no such backend", "server still has connections: drain it first").
 */
/* Adds a server (weight 0..LB_WEIGHT_MAX); it starts DOWN when the backend
 * has checks (the caller starts them), UP otherwise.  *out = the server. */
int rt_server_add(struct t_runtime *rt, const char *backend, const char *name, const char *addr,
                  unsigned weight, struct t_server **out, char **err);
/* rt_server_add on a generation g being built (a reload, before
 * rt_install): the server inherits health, counters and a drain or disable
 * from the running generation's same-named server, like a configured one. */
int rt_gen_server_add(struct t_gen *g, const char *backend, const char *name, const char *addr, unsigned weight,
                      struct t_server **out, char **err);
/* -EBUSY (with *err) while s has connections and is neither drained nor
 * disabled: `del` is refused then.  0 otherwise. */
int rt_server_del_refused(struct t_server *s, char **err);
/* Deletes s (unless refused, as above): out of the pool at once when idle,
 * else hidden until its last connection ends; may free s.  The caller has
 * stopped its checks. */
int rt_server_del(struct t_runtime *rt, struct t_server *s, char **err);
int rt_server_set_admin(struct t_runtime *rt, struct t_server *s, enum lb_admin a);
int rt_server_set_weight(struct t_runtime *rt, struct t_server *s, long weight, char **err);
/* The server BACKEND/NAME of the running generation, or NULL with *err. */
struct t_server *rt_server_lookup(struct t_runtime *rt, const char *backend, const char *name, char **err);
/* "UP", "DOWN", "DRAIN" (drained) or "MAINT" (disabled). */
const char *rt_server_state(const struct t_server *s);

/*
 * Outcomes, through the core's policy (lb_server_checked/observed,
 * lb_attempt_failed): they log state changes of the running generation
 * and call hooks.server_down when the backend closes connections on DOWN.
 */
/* An active check of s ended: ok, and why ("HTTP 503", "timeout"). */
void rt_server_checked(struct t_server *s, bool ok, const char *why);
/* A connection to s was established (passive health, when observed). */
void rt_server_connected(struct t_server *s);
/* The attempt on s failed to connect: counters, passive health, and the
 * end of the attempt (srv_conn_end).  s must not be used after. */
void rt_attempt_failed(struct t_server *s, const char *why);
/* A connection to s (or an attempt) ended: it is no longer counted on s;
 * a deleted server whose last connection this was is freed.  s must not
 * be used after this call. */
void srv_conn_end(struct t_server *s);

/*
 * A socket() or connect() that failed for want of something local (file
 * descriptors, buffers, memory, ephemeral ports) says nothing about the
 * server it was meant for: it must not count as the server's failure.
 */
/* True for such an errno: EMFILE, ENFILE, ENOBUFS, ENOMEM, EADDRNOTAVAIL. */
bool rt_errno_local(int err);
/* One such failure (what: "health check of pods/pod1"): counted; logged
 * once per shortage (any thread). */
void rt_local_error(struct t_runtime *rt, const char *what, int err);
/* A socket was had: a shortage that was on is over (logged); one relaxed
 * load otherwise (any thread). */
void rt_local_ok(struct t_runtime *rt);

/* Address text "a.b.c.d:port" / "[v6]:port" of ss. */
void addr_format(const struct sockaddr_storage *ss, char *out, size_t cap);

#endif
