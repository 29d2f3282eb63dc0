/*
 * tether-sim - discrete-event simulation of users, pods, Redis, crashes and
 * an HPA, balanced by the very lb_* code of the daemon (src/lb).
 *
 * Time is virtual, in microseconds.  Everything random comes from one
 * struct lb_rng seeded by the scenario, so a seed gives identical output.
 */
#ifndef TETHER_SIM_H
#define TETHER_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tether/config.h"
#include "tether/health.h"
#include "tether/lb.h"

#define SIM_MAX_PODS 64         /* a user's local sessions are a 64-bit mask */
#define US 1000000.0            /* microseconds per second */

enum store { STORE_LOCAL = 0, STORE_REDIS, STORE_REDIS_CACHE };
enum persist { P_NONE = 0, P_AOF_ALWAYS, P_AOF_EVERYSEC, P_RDB };
enum policy { POL_CORE = 0, POL_RANDOM };   /* random: a reference policy for validation only */

struct sim_params {
	/* sim */
	double duration_s, report_s;
	uint64_t seed;
	/* clients */
	double user_rate;           /* new users per second (Poisson) */
	double stop_at_s;           /* < 0: arrivals never stop; else no new users after */
	double ramp_to, ramp_s;     /* rate grows linearly to ramp_to over ramp_s (0: no ramp) */
	bool daily;                 /* a day curve: rate x (1 - 0.8 cos(2 pi (t - 4 h) / 24 h)), peak at 16:00 */
	double pages;               /* mean page views per visit (geometric) */
	double think_s;             /* mean think time between pages (exponential) */
	unsigned users_per_address; /* > 1: users share an address (NAT) */
	double address_change;      /* chance per page view that a (mobile) user's address changes */
	/* pods */
	int pods;                   /* initial pods (from servers when a backend is given) */
	int concurrency;            /* requests served at once per pod */
	double service_ms;          /* mean service time (exponential) */
	enum store store;
	double cache_ttl_s;         /* D: pod-local cache entry lifetime */
	double startup_s;           /* new pod: time until ready */
	double replace_s;           /* crashed pod: replacement after (0 = never) */
	/* redis */
	double redis_rtt_ms;
	double session_ttl_s;       /* sliding */
	enum persist persistence;
	double redis_crash_at_s;    /* < 0: none */
	double redis_down_s;
	bool sentinel;
	double down_after_s, failover_s, repl_lag_s;
	/* failures */
	double crash_at_s;          /* < 0: none */
	int crash_pod;              /* index */
	double mtbf_s;              /* 0: no random crashes */
	/* scale */
	double scale_at_s;          /* < 0: none; manual scale-out to scale_to */
	int scale_to;
	bool hpa;
	int hpa_min, hpa_max;
	double hpa_target;          /* CPU utilisation, percent */
	double hpa_sync_s, hpa_stabilize_s;
	/* balancing */
	struct cfg_backend be;      /* algorithm, params, health, retries */
	enum policy policy;
};

/* Something worth a vertical line on the plot: a crash or a scaling step. */
#define SIM_MAX_MARKS 128
struct sim_mark {
	double t_s;
	char what[24];              /* "pod 2 crash", "HPA 4->6", "Redis crash", ... */
};

struct sim_summary {
	uint64_t requests, requests_logged_in, misses, sessions_created, local_hits, redis_hits;
	uint64_t redis_reads, redis_writes, failed, sessions_lost;
	double redis_ops_per_sec, session_miss_rate, local_hit_rate, redis_hit_rate;
	double load_max_over_mean, load_stddev, mean_response_ms;
	int pods_final;
	double rebalance_seconds;
	uint64_t events, live_sessions_peak;
	uint64_t sessions_at_crash;        /* live sessions when the scheduled pod/Redis crash hit */
	double wall_seconds;
	struct sim_mark marks[SIM_MAX_MARKS];  /* in time order; the first SIM_MAX_MARKS */
	int nmarks, marks_dropped;
};

void sim_params_default(struct sim_params *p);
/* Applies preset pattern 'A'..'D' (3 pods, 100 requests/s). */
void sim_pattern(struct sim_params *p, char pattern);
/* Loads a scenario file into p (after defaults); 0 or -1 with *err. */
int sim_load(struct sim_params *p, const char *path, char **sets, int nsets, char **err);
/* Runs one simulation.  csv may be NULL. */
int sim_run(const struct sim_params *p, struct sim_summary *out, FILE *csv, bool progress);
void sim_print_json(FILE *f, const struct sim_summary *s);

/* HPA recommendation as Kubernetes computes it (replica_calculator.go):
 * utilisation is a whole percent; no change within the 0.1 tolerance. */
int sim_hpa_desired(int current, int util_percent, double target_percent);
/* Scale-up limit of the default behavior: max(2c, c+4) per period. */
int sim_hpa_scale_up_limit(int current);

#endif
