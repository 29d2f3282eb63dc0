/*
 * tether-sim - discrete-event simulation of users, pods, Redis, crashes and
 * an HPA, balanced by the very lb_* code of the daemon (src/lb).
 *
 * Time is virtual, in microseconds.  Everything random comes from one
 * struct lb_rng seeded by the scenario, so a seed gives identical output.
 * The library keeps no state outside the objects passed to it: several
 * runs may go on at once in separate threads (sim_runs does).
 *
 * Files: engine.c (event loop, sim_run), clients.c (users), pods.c (pods,
 * routing, health checks), sessions.c (the session stores), redis.c (the
 * Redis server: capacity, persistence, crashes), hpa.c, report.c (CSV,
 * summary, JSON), runs.c (replications), scenario.c / scenario_check.c
 * (defaults, files, validation), plot.c (gnuplot).  Model: docs/simulator.md.
 */
#ifndef TETHER_SIM_H
#define TETHER_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tether/config.h"
#include "tether/health.h"
#include "tether/lb.h"

#define SIM_MAX_PODS 256        /* pods alive at once (slots are reused; any number may exist over a run) */
#define SIM_MAX_CONCURRENCY 65536
#define US 1000000.0            /* microseconds per second */

enum store { STORE_LOCAL = 0, STORE_REDIS, STORE_REDIS_CACHE };
enum persist { P_NONE = 0, P_AOF_ALWAYS, P_AOF_EVERYSEC, P_RDB };
enum policy { POL_CORE = 0, POL_RANDOM };   /* random: a reference policy for validation only */

#define SIM_MAX_SAVE_RULES 8

/* One redis.conf `save SECONDS CHANGES` rule. */
struct sim_save_rule {
	unsigned seconds, changes;
};

/* A Redis write as the server sees it, for tools and tests that check the
 * persistence model against their own calculation (sim_params.trace). */
enum sim_write { SIM_W_CREATE = 0, SIM_W_REFRESH, SIM_W_CART, SIM_W_LEAVE /* not a write: the user left */ };
struct sim_trace_write {
	double t_s;
	uint32_t user;              /* slot of the user: reused after it leaves */
	enum sim_write what;
	unsigned changes;           /* what it adds to Redis' dirty counter */
};

struct sim_params {
	/* sim */
	double duration_s, report_s;
	uint64_t seed;
	unsigned max_memory_mb;     /* runs estimated to need more are refused (sim_check) */
	/* clients */
	double user_rate;           /* new users per second (Poisson) */
	double stop_at_s;           /* < 0: arrivals never stop; else no new users after */
	double ramp_to, ramp_s;     /* rate grows linearly to ramp_to over ramp_s (0: no ramp) */
	bool daily;                 /* a day curve: rate x (1 - 0.8 cos(2 pi (t - 4 h) / 24 h)), peak at 16:00 */
	double pages;               /* mean page views per visit (geometric) */
	double think_s;             /* mean think time between pages (exponential) */
	unsigned users_per_address; /* > 1: users share an address (NAT) */
	double address_change;      /* chance per page view that a (mobile) user's address changes */
	double cart_adds;           /* chance per page view that it writes the user's cart (Redis stores) */
	/* pods */
	int pods;                   /* initial pods (from servers when a backend is given) */
	int concurrency;            /* workers per pod: requests served at once */
	double service_ms;          /* mean CPU time per request (exponential) */
	int queue;                  /* requests waiting per pod beyond which new ones get 503 */
	double timeout_s;           /* a request not answered within this gets 504 */
	enum store store;
	double cache_ttl_s;         /* D: pod-local cache entry lifetime */
	double startup_s;           /* new pod: time until ready (readiness probe passes) */
	double replace_s;           /* crashed pod: replacement created after (0 = never) */
	/* redis */
	double redis_rtt_ms;
	double redis_ops_per_s;     /* single-threaded capacity: round trips of one simple command per second */
	double session_ttl_s;       /* sliding */
	double cart_ttl_s;
	enum persist persistence;
	struct sim_save_rule save[SIM_MAX_SAVE_RULES];  /* rdb: redis.conf `save` */
	int nsave;
	double redis_crash_at_s;    /* < 0: none */
	double redis_down_s;
	bool sentinel;
	double down_after_s, failover_s, repl_lag_s;
	/* failures */
	double crash_at_s;          /* < 0: none */
	char crash_pod[LB_NAME_MAX];/* server name; "" = the first pod */
	double mtbf_s;              /* 0: no random crashes */
	/* scale */
	double scale_at_s;          /* < 0: none; manual scale-out to scale_to */
	int scale_to;
	bool hpa;
	int hpa_min, hpa_max;
	double hpa_target;          /* CPU utilisation, percent */
	double hpa_sync_s, hpa_stabilize_s;
	/* balancing */
	struct cfg_backend be;      /* algorithm, params, health, retries; servers owned (free be.servers) */
	enum policy policy;
	/* observation (NULL: none); called in time order from sim_run's thread */
	void (*trace)(void *ctx, const struct sim_trace_write *w);
	void *trace_ctx;
	/* presentation only */
	char name[64];              /* scenario or pattern, for titles */
};

/* Something worth a vertical line on the plot: a crash or a scaling step. */
#define SIM_MAX_MARKS 1024
struct sim_mark {
	double t_s;
	char what[32];              /* "pod2 crash", "HPA 4->6", "Redis crash", ... */
	int64_t lost;               /* crashes: sessions of visiting users lost; -1 otherwise */
	uint64_t live;              /* crashes: sessions of visiting users just before */
};

struct sim_summary {
	uint64_t requests, requests_logged_in, misses, sessions_created, local_hits, redis_hits;
	uint64_t redis_reads, redis_writes, failed, sessions_lost;
	uint64_t failed_no_server;  /* 503: no pod could be connected to */
	uint64_t failed_queue_full; /* 503: the pod's queue was full */
	uint64_t failed_timeout;    /* 504: not answered within pods.timeout */
	uint64_t failed_crash;      /* 502: the pod died while the request waited or ran */
	uint64_t logins_failed;     /* a login (or re-login) while Redis was down */
	uint64_t carts_lost, sessions_expired_at_restore;
	double redis_ops_per_sec, session_miss_rate, local_hit_rate, redis_hit_rate;
	double load_max_over_mean, load_stddev, mean_response_ms;
	double redis_utilisation, redis_wait_max_ms;
	int pods_final, pods_created;
	double rebalance_seconds;
	uint64_t events, live_sessions_peak, live_sessions_end;
	uint64_t sessions_at_crash;        /* live sessions when the last pod/Redis crash hit */
	uint64_t pods_refused;             /* pods not created: SIM_MAX_PODS alive at once */
	double wall_seconds;
	struct sim_mark marks[SIM_MAX_MARKS];  /* in time order; the first SIM_MAX_MARKS */
	int nmarks, marks_dropped;
};

void sim_params_default(struct sim_params *p);
/* Applies preset pattern 'A'..'D' (3 pods, 100 requests/s). */
void sim_pattern(struct sim_params *p, char pattern);
/* Loads a scenario file (path may be NULL) and then the `--set group.key=value`
 * overrides into p (after defaults, and a pattern if any), then checks the
 * whole (sim_check).  0, or -EINVAL with *err (malloc'd, one message per
 * line; "--set X: ..." for an override) set.  Warnings (a setting without
 * effect) go to *warn (malloc'd or NULL) when warn is not NULL. */
int sim_load(struct sim_params *p, const char *path, char **sets, int nsets, char **err);
int sim_load_warn(struct sim_params *p, const char *path, char **sets, int nsets, char **err, char **warn);
/* Checks p for values the model cannot run (zero intervals, min > max, a
 * pod name that does not exist, a run needing more memory than
 * max_memory_mb ...).  0, or -EINVAL / -ENOMEM with *err; warnings as sim_load. */
int sim_check(const struct sim_params *p, char **err, char **warn);
/* Estimated peak memory of a run, in bytes (users, events, pods). */
double sim_memory_estimate(const struct sim_params *p);

/* Runs one simulation.  csv may be NULL; progress draws a bar on stderr.
 * 0, or a negative errno with *err (malloc'd) set: -EINVAL for parameters
 * sim_check refuses, -ENOMEM when memory ran out. */
int sim_run(const struct sim_params *p, struct sim_summary *out, FILE *csv, bool progress, char **err);
void sim_print_json(FILE *f, const struct sim_summary *s);

/* --- replications (runs.c) --- */

/* Mean and 95 % confidence interval (Student t) of one metric over runs. */
struct sim_stat {
	double mean, ci95, min, max;
};

#define SIM_NMETRICS 14
struct sim_stats {
	int runs, threads;
	uint64_t seed;                      /* seeds seed .. seed + runs - 1 */
	double wall_seconds;
	struct sim_stat m[SIM_NMETRICS];    /* in the order of sim_metric_names() */
};

/* The metric names of struct sim_stats.m (also the JSON keys). */
const char *const *sim_metric_names(void);
/* `runs` replications with seeds p->seed .. p->seed + runs - 1, on
 * `threads` threads (0: one per online CPU).  Each run's summary goes to
 * each[i] when each is not NULL.  0 or a negative errno with *err. */
int sim_runs(const struct sim_params *p, int runs, int threads, struct sim_stats *out,
             struct sim_summary *each, char **err);
void sim_print_stats(FILE *f, const struct sim_stats *st);
void sim_print_stats_json(FILE *f, const struct sim_stats *st);

/* --- plots (plot.c) --- */

/* 0 when `path` ends in .png or .svg and gnuplot is installed; else -EINVAL
 * / -ENOENT with *err saying what to do. */
int sim_plot_check(const char *path, char **err);
/* Draws the CSV of a run (written by sim_run) into `path`. 0 or -errno with *err. */
int sim_plot(const struct sim_params *p, const struct sim_summary *s, const char *csv, const char *path,
             char **err);

/* HPA recommendation as Kubernetes computes it (replica_calculator.go):
 * utilisation is a whole percent; no change within the 0.1 tolerance. */
int sim_hpa_desired(int current, int util_percent, double target_percent);
/* Scale-up limit of the default behavior: max(2c, c+4) per period. */
int sim_hpa_scale_up_limit(int current);

/*
 * The client model's draws (sim/clients.c), shared with tether-load so
 * that the live lab's users are the simulator's users.
 */
/* Users arriving per second at time t: constant, a linear ramp, or the day
 * curve (mean user_rate over 24 h, peak 1.8 x at 16:00). */
double sim_arrival_rate(const struct sim_params *p, double t);
/* A visit's number of requests, the login included (geometric with mean
 * `pages`), drawn from rng (nothing drawn when pages <= 1). */
unsigned sim_visit_pages(const struct sim_params *p, struct lb_rng *rng);
/* Whether a logged-in user's address changes at this request (a mobile
 * user moving networks), drawn from rng (nothing drawn when it cannot). */
bool sim_address_changes(const struct sim_params *p, struct lb_rng *rng);

#endif
