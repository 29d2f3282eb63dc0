/*
 * tether-load - virtual users that follow tether-sim's client model, for
 * real, over TCP (docs/load.md).
 *
 * One thread, one libev loop.  struct load owns everything: the options,
 * the users (in slabs that never move, so the watchers embedded in them
 * stay put), the counters and the output files.  No file-scope mutable
 * state.
 *
 * Times: `ev` times are the loop's clock (ev_now); model times are seconds
 * since the run started (ev time - load.t0), the scale of the scenario's
 * durations and of the CSV's time_s.
 *
 * Modules: user.c (the simulator's draws, a user's life and what its
 * answers count), conn.c (its connection), stats.c (counters, latency,
 * CSV, JSON), load.c (the loop: arrivals, reports, the end), args.c.
 */
#ifndef TETHER_LOAD_H
#define TETHER_LOAD_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "expo.h"
#include "sim.h"
#include "tether/config.h"
#include "wire.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#define LOAD_SLAB 1024          /* users per slab */
#define LOAD_ITEMS 10000        /* /item/N draws N in 1..LOAD_ITEMS */
#define LOAD_SRC_BASE 0x7f010001u  /* --addresses: user address i is 127.1.0.1 + i */
#define LOAD_MAX_ADDRESSES 1000000u
#define LOAD_HIST 1216          /* latency buckets, see stats.c */

/* --- options (args.c) --- */

struct load_opts {
	struct sim_params p;        /* the scenario: clients, store, servers' names, durations */
	struct cfg_addr target;     /* where the users connect (the balancer, or a pod) */
	unsigned addresses;         /* 0: the kernel picks the source; else users bind 127.1.0.1 + i, i < addresses */
	bool new_conn;              /* a new connection per request (else keep-alive per user) */
	bool quiet;                 /* no summary, no progress line */
	bool check;                 /* probe the target before the run (default on) */
	double timeout_s;           /* per exchange: connect + send + answer */
	const char *json, *csv;     /* NULL: none; "-": stdout (json only) */
	const char *visiting;       /* SIGUSR1 writes the visiting users' sessions here (the lab), or NULL */
};

/* Parses argv into o (defaults, scenario, overrides).  0, 1 when the
 * program should exit 0 (--help), or -1 after printing why on stderr. */
int load_args(struct load_opts *o, int argc, char **argv);
void load_opts_free(struct load_opts *o);

/* --- one virtual user --- */

enum lu_state { LU_FREE = 0, LU_THINK, LU_SEND, LU_WAIT };
enum lu_action { LA_LOGIN = 0, LA_ITEM, LA_CART, LA_RELOGIN };
/* Why a request failed, in tether-sim's classes (sim.h struct sim_summary)
 * and two of tether-load's own. */
enum lu_fail {
	LF_NO_SERVER = 0,           /* no connection (refused, unreachable, no descriptor), or 503 not from a pod */
	LF_TIMEOUT,                 /* no whole answer within --timeout, or 504 */
	LF_CRASH,                   /* the connection ended before a whole answer, or 502 */
	LF_STATUS,                  /* any other status but 2xx (and 401 to a page view) */
	LF_PROTOCOL,                /* an answer tether-load cannot read */
	LF_KINDS
};

struct lu_user {
	ev_timer timer;             /* LU_THINK: the next request is due; else the exchange's deadline */
	ev_io io;                   /* the connection; io.fd < 0 when none */
	struct lb_rng rng;          /* this user's draws: pages, think times, items */
	double sched;               /* model time the current request was due */
	uint64_t seq;               /* arrival number: the user is "u<seq>" */
	uint32_t id;                /* slot */
	uint32_t addr;              /* source address index (--addresses) */
	uint32_t item;
	uint32_t pages_left;        /* requests still to make, this one included */
	uint16_t sent;              /* bytes of the request already sent */
	int16_t session_pod;        /* pod that made its session (pod memory stores), -1 none */
	uint8_t state, action;
	bool logged_in;             /* once logged in (the simulator's U_LOGGED_IN: never reset) */
	bool has_session;           /* holds a session not found missing (U_SESSION) */
	bool reused;                /* the connection served an earlier answer */
	bool retried;               /* this exchange was resent once after a stale keep-alive close */
	bool got_bytes;             /* the answer has started */
	bool conn_done;             /* the connection takes no more requests (close, --new-conn) */
	struct wire_resp resp;
	struct wire_jar jar;
};

/* --- counters (stats.c) --- */

struct load_hist {
	uint64_t n;
	uint64_t b[LOAD_HIST];
};

/* One CSV row (an interval), and its pods' cells. */
struct load_row {
	double t;
	int up;
	uint64_t requests, misses, local, redis, redis_ops, failed, timeouts, live;
	uint32_t first, ncells;     /* cells[first .. first + ncells) */
};

struct load_cell {
	uint32_t pod;
	uint64_t answers;
	int64_t sessions;
};

struct load_pod {
	char name[WIRE_POD_MAX];
	uint64_t answers, iv_answers;   /* HTTP answers carrying this X-Pod */
	int64_t sessions;               /* live sessions it made (pod memory stores) */
	double first_seen, last_seen;   /* model times */
};

/* Field names follow struct sim_summary where the meaning is the same. */
struct load_stats {
	uint64_t users, requests, requests_logged_in, misses, sessions_created, local_hits, redis_hits;
	uint64_t redis_reads, redis_writes, failed, sessions_lost, live_sessions, live_sessions_peak;
	uint64_t http_requests, retries, fail[LF_KINDS], logins_failed, unavailable, carts;
	uint64_t iv_requests, iv_misses, iv_local, iv_redis, iv_redis_ops, iv_failed, iv_timeouts;
	double lat_sum;
	struct load_hist lat;       /* answered requests: scheduled time -> answer, µs */
	struct load_hist lag;       /* sends: scheduled time -> first byte written, µs */
	struct load_pod pods[SIM_MAX_PODS];
	int npods;                  /* pods known */
	double report_s;            /* the reporting interval */
	struct load_row *rows;      /* owned, as cells */
	struct load_cell *cells;
	size_t nrows, caprows, ncells, capcells;
	uint64_t rows_dropped;      /* out of memory for the CSV */
	double last_scale_t, rebalance_seconds;
	bool rebalanced;
	/* set by stats_finish() */
	double end_t, load_max_over_mean, load_stddev, redis_ops_per_sec;
	int pods_final;
};

void stats_init(struct load_stats *s, const struct sim_params *p);
void stats_fini(struct load_stats *s);
/* The pod named `name` (an X-Pod value), known or new; -1 for "" or when
 * SIM_MAX_PODS are known. */
int stats_pod(struct load_stats *s, const char *name, double t);
/* µs into a histogram. */
void stats_hist_add(struct load_hist *h, double us);
/* The q-quantile (0 < q <= 1) in ms, 0 when empty. */
double stats_hist_ms(const struct load_hist *h, double q);
/* Ends a reporting interval at model time t: a CSV row kept, the
 * rebalance check, the interval counters back to zero. */
void stats_interval(struct load_stats *s, double t);
/* Writes the CSV (header naming every pod known, then the rows); 0 or -1. */
int stats_csv(FILE *f, const struct load_stats *s);
/* Derives the summary figures at model time t. */
void stats_finish(struct load_stats *s, double t, double report_s);
void stats_json(FILE *f, const struct load_stats *s);
void stats_print(FILE *f, const struct load_stats *s, double wall_s);

/* --- the run --- */

struct load;
typedef void load_answer_fn(struct load *L, struct lu_user *u);
typedef void load_fail_fn(struct load *L, struct lu_user *u, enum lu_fail why);

struct load {
	struct ev_loop *loop;       /* not owned: ev_default_loop */
	struct load_opts *o;        /* not owned */
	const struct sim_params *p; /* &o->p */
	struct sim_expo zig;
	struct lb_rng rng;          /* arrivals, and each user's seed */
	double t0;                  /* ev time of model time 0 */
	double next_arrival;        /* model time */
	double next_report;         /* model time the current reporting interval ends */
	uint64_t prog_requests;     /* requests at the last progress line */
	bool arrivals_over, ending, stopped;
	ev_timer arrival, report, progress, end;
	ev_signal sigint, sigterm, sigusr1;
	/* users */
	struct lu_user **slabs;
	uint32_t nslabs, nusers;    /* slots ever used (the simulator's nusers) */
	uint32_t *free_ids, nfree;
	uint32_t active;            /* users alive */
	uint32_t addr_next;         /* --addresses, users_per_address 1: the next address */
	/* hooks conn.c calls when an exchange ends (user.c fills them) */
	load_answer_fn *on_answer;
	load_fail_fn *on_fail;
	/* I/O */
	struct sockaddr_storage target;
	socklen_t target_len;
	char host[sizeof(((struct cfg_addr *)0)->text)];
	bool warned_fds;
	FILE *csv;                  /* owned */
	struct load_stats s;
	double wall_s;
	char wbuf[1024];            /* the request being formatted */
	char rbuf[65536];           /* what recv() just read */
};

/* The loop's model time. */
static inline double load_now(const struct load *L)
{
	return ev_now(L->loop) - L->t0;
}

/* Runs the whole load test; 0, or -1 after printing why. */
int load_run(struct load *L, struct load_opts *o);
void load_fini(struct load *L);
/* Called when a user left: ends the run once the end has come and no user is left. */
void load_user_gone(struct load *L);

/* --- user.c --- */

void user_init_hooks(struct load *L);
/* A new user arrives at model time `at` and makes its first request. */
void user_arrive(struct load *L, double at);
/* The end has come: users between requests leave now, the others after their answer. */
void user_end_all(struct load *L);
void user_free_all(struct load *L);
/* --visiting: writes "SID POD" per visiting user holding a session (POD
 * "-" when unknown) to path.tmp, then renames it to path.  0 or -1. */
int user_dump_visiting(struct load *L, const char *path);

/* --- conn.c --- */

/* Sends u's current request (opening a connection when needed).  The
 * exchange ends in L->on_answer or L->on_fail, possibly before this returns. */
void conn_send(struct load *L, struct lu_user *u);
/* The exchange's deadline passed. */
void conn_timeout(struct load *L, struct lu_user *u);
void conn_close(struct load *L, struct lu_user *u);
/* Prepares a fresh slot's watchers (no connection). */
void conn_init_user(struct lu_user *u);

#endif
