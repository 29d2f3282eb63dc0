/*
 * tether-sim - the state of one run, shared by the engine and the model
 * files (private to sim/; see sim.h for the file map).
 *
 * Ownership: struct sim is created and freed by sim_run (engine.c); every
 * array in it is owned by it.  Users and pods live in slots that are reused:
 * a pod slot gets a new `epoch` when its pod crashes or a new pod takes it,
 * and every event, session or cache entry that names a pod also carries the
 * epoch (or `gen`, the pod's identity) it was made under, so one from an
 * earlier life is recognised and dropped.
 */
#ifndef TETHER_SIM_MODEL_H
#define TETHER_SIM_MODEL_H

#include <stdint.h>

#include "evq.h"
#include "expo.h"
#include "sim.h"

enum ev_kind {
	EV_ARRIVAL, EV_REQUEST, EV_DONE, EV_TIMEOUT, EV_QTIMEOUT, EV_CHECK, EV_CRASH, EV_READY,
	EV_REPLACE, EV_SCALE, EV_HPA, EV_REPORT, EV_REDIS_CRASH, EV_REDIS_UP, EV_REDIS_CRON, EV_END,
};
/* evq_event.kind: the kind in the low 8 bits, a pod's epoch or gen above */
#define EV_KIND(k) ((k) & 0xffu)
#define EV_GEN(k) ((k) >> 8)
#define GEN_MASK 0xffffffu

/*
 * An event's key is the time in µs shifted left by SEQ_BITS, plus an
 * insertion counter: equal times pop in insertion order (deterministic even
 * when the counter wraps), and one integer compare orders two events.  38
 * bits of µs cover 76 hours: sim_check refuses longer runs.  The queue plays
 * slots of 16384 µs (evq.h).
 */
#define SEQ_BITS 26
#define SLOT_SHIFT (SEQ_BITS + 14)
#define MAX_DURATION_S ((double)(1ull << (64 - SEQ_BITS)) / US - 3600)

/* struct user.flags */
#define U_ACTIVE    0x01u       /* visiting: has a request pending, queued, in service or a think time */
#define U_LOGGED_IN 0x02u       /* holds a session cookie */
#define U_SESSION   0x04u       /* its session exists (counted in live_sessions) */

/* One cache line per user: a request touches its user once per think time,
 * long after the line left the cache, so it costs one miss, not two.
 * Times are ms of virtual time (uint32: 49 days > the longest run). */
struct user {
	_Alignas(64) uint64_t arrive_us;    /* when the current request was sent */
	uint32_t expiry_ms;         /* session expiry (local or Redis); <= now: none */
	uint32_t persisted_ms;      /* Redis: expiry as of the last persistence point (redis.c) */
	uint32_t write_ms;          /* last Redis write of the session */
	uint32_t cache_ms;          /* D: the cache entry in cache_pod is valid until */
	uint32_t cart_ms;           /* cart expiry; <= now: none */
	uint32_t cart_first_ms;     /* when the cart key was created */
	uint32_t created_ms;        /* when the session (in Redis) was created */
	uint32_t addr;
	uint32_t session_epoch;     /* local: epoch of session_pod when the session was made */
	uint32_t cache_epoch;
	uint32_t cookie_gen;        /* gen of cookie_pod when the cookie was issued */
	int16_t session_pod;        /* -1: none */
	int16_t cache_pod;
	int16_t cookie_pod;         /* affinity cookie: the pod it names, -1 none */
	uint16_t pages_left;
	uint8_t flags;
};
_Static_assert(sizeof(struct user) == 64, "a user is one cache line");

/* struct pod.work[]: the user a worker serves, with what is pending */
#define W_FREE      UINT32_MAX
#define W_ORPHAN    (UINT32_MAX - 1)    /* the client gave up (504); only the worker's EV_DONE is left */
#define W_TIMING    0x80000000u         /* EV_TIMEOUT pending: the answer comes after pods.timeout */

struct pod {
	struct lb_server lb;            /* lb.hc: its health */
	bool exists;                /* the slot holds a pod */
	bool alive;                 /* not crashed */
	bool ready;                 /* passed startup; in the pool */
	bool deleting;              /* scaled down: leaves once its connections end */
	bool qtimer;                /* an EV_QTIMEOUT is pending for the queue head */
	uint32_t epoch;             /* bumped on crash and on slot reuse */
	uint32_t gen;               /* bumped on slot reuse: the pod's identity */
	uint32_t id;                /* pod number over the run (CSV columns, names) */
	int busy;                   /* workers in use */
	uint32_t *work;             /* per worker (W_*), concurrency of them */
	uint32_t *idle;             /* stack of free worker indexes */
	int nidle;
	uint32_t *queue;            /* users waiting, ring */
	uint32_t qhead, qlen, qcap;
	double cpu_us, cpu_at_sync; /* CPU time used: service only, not Redis waits */
	double ready_since;         /* s */
	uint64_t requests, interval_requests;
	uint64_t sessions;          /* live local sessions here */
};

struct redis_state {
	bool up;
	double free_us;             /* when the single thread is done with what it was given */
	double busy_us;             /* service time given, for the utilisation */
	double wait_max_us;
	double rt_us, op_us;        /* cost of a round trip's first command / of each pipelined one after it */
	int64_t persist_ms;         /* writes at or before this are durable; -1: none */
	int64_t fsync_ms;           /* aof-everysec: start of the last fsync */
	uint64_t dirty;             /* rdb: changes since the last save */
	int64_t lastsave_s;         /* rdb: unixtime of the last save (or start) */
	double restart_t;           /* s: when it comes back */
};

struct hpa_rec {
	double t;
	int v;
};

struct hpa_state {
	struct hpa_rec *recs;       /* raw recommendations within the stabilization window */
	int nrecs, caprecs;
	struct hpa_rec ev[64];      /* scale events within the last policy period (15 s) */
	int nev;
	int desired;
};

/* One CSV row, kept until the end so the header can name every pod. */
struct report_row {
	double t;
	int up, ready, desired;
	uint64_t requests, misses, local, redis, redis_ops, failed, timeouts, live;
	double redis_busy;
	uint32_t first, n;          /* its per-pod cells in report.cells */
};

struct report_cell {
	uint32_t pod;               /* pod id */
	uint32_t requests, sessions;
};

struct report {
	struct report_row *rows;
	size_t nrows, caprows;
	struct report_cell *cells;
	size_t ncells, capcells;
	uint64_t requests, misses, local, redis, redis_ops, failed, timeouts;
	double redis_busy_at;
};

struct sim {
	const struct sim_params *p;
	struct lb_rng rng;
	struct sim_expo zig;        /* exponential variates */
	struct lb_pool pool;
	struct pod pods[SIM_MAX_PODS];
	int nslots;                 /* slots ever used */
	int spec;                   /* replicas the deployment wants (initial, scale, HPA) */
	char (*names)[LB_NAME_MAX]; /* per pod id */
	uint32_t npods_ever, capnames;
	struct evq q;
	uint64_t seq, now;          /* µs */
	uint32_t now_ms;
	struct user *users;
	uint32_t nusers, ucap;
	uint32_t *free_list;
	uint32_t nfree;
	struct redis_state redis;
	struct hpa_state hpa;
	struct report rep;
	struct sim_summary s;
	double resp_sum;
	uint64_t resp_n;
	uint64_t live_sessions;
	double last_scale_t;
	bool rebalanced;
	int nomem;                  /* set when an allocation failed: the run stops */
	uint32_t sink;              /* keeps prefetch_slot's loads */
};

static inline double now_s(const struct sim *S)
{
	return (double)S->now / US;
}

static inline double expo(struct sim *S, double mean)
{
	return mean * sim_expo_draw(&S->zig, &S->rng);
}

static inline void push_at_us(struct sim *S, uint64_t at_us, unsigned kind, uint32_t gen, uint32_t a)
{
	evq_push(&S->q, (at_us << SEQ_BITS) | (S->seq++ & ((1u << SEQ_BITS) - 1)),
	         (uint32_t)kind | ((gen & GEN_MASK) << 8), a);
}

/* Schedules an event at at_s (never before now). */
static inline void push(struct sim *S, double at_s, unsigned kind, uint32_t gen, uint32_t a)
{
	uint64_t at = (uint64_t)(at_s * US);

	push_at_us(S, at > S->now ? at : S->now, kind, gen, a);
}

/* engine.c */
void sim_mark(struct sim *S, int64_t lost, uint64_t live, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* clients.c: users and their visits */
uint32_t user_new(struct sim *S);
/* The user's request ended (answered or failed): next page after a think
 * time, or the end of the visit. */
void user_next(struct sim *S, uint32_t uid);
void user_failed(struct sim *S, uint32_t uid, uint64_t *counter);

/* pods.c */
int pod_new(struct sim *S, bool ready_now);
void pod_ready(struct sim *S, int i, uint32_t gen);
void pod_crash(struct sim *S, int i);
void pod_crash_random(struct sim *S);
void pod_delete(struct sim *S, int i);
int pods_ready(const struct sim *S);
int pod_find(const struct sim *S, const char *name);
void route_request(struct sim *S, uint32_t uid);
void on_done(struct sim *S, uint32_t a, uint32_t epoch);
void on_timeout(struct sim *S, uint32_t a, uint32_t epoch);
void on_queue_timeout(struct sim *S, int i, uint32_t epoch);
void on_check(struct sim *S, int i, uint32_t gen);
void pods_fini(struct sim *S);

/* sessions.c: what a request does to its session; returns the µs it waits
 * for Redis (0 without) */
double session_serve(struct sim *S, struct user *u, uint32_t uid, int pod);
void session_drop(struct sim *S, struct user *u, uint32_t uid);
uint64_t sessions_kill_pod(struct sim *S, int pod);

/* redis.c */
void redis_init(struct sim *S);
/* Books one round trip of `ops` commands sent at t_us; returns its latency. */
double redis_round_trip(struct sim *S, double t_us, unsigned ops);
void redis_write(struct sim *S, struct user *u, uint32_t uid, enum sim_write what, unsigned changes);
void redis_crash(struct sim *S);
void redis_up(struct sim *S);
void redis_cron(struct sim *S);

/* hpa.c */
void hpa_sync(struct sim *S);
void hpa_fini(struct sim *S);

/* report.c */
void report_interval(struct sim *S);
void report_finish(struct sim *S, struct sim_summary *out);
int report_write_csv(struct sim *S, FILE *f);
void report_fini(struct sim *S);

#endif
