/*
 * tether-sim - checks a whole scenario before a run (sim_check): values
 * the model cannot run are errors, settings that would have no effect are
 * warnings, and a run estimated to need more memory than
 * sim.max_memory_mb is refused up front with the estimate.
 *
 * Messages name the setting as written in a scenario file.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

static void add(char **to, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add(char **to, const char *fmt, ...)
{
	char line[512], *n;
	size_t old;
	va_list ap;

	if (!to)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	old = *to ? strlen(*to) : 0;
	if (!(n = realloc(*to, old + strlen(line) + 2)))
		return;
	if (old)
		n[old++] = '\n';
	strcpy(n + old, line);
	*to = n;
}

/*
 * Peak memory: each visiting user holds a 64-byte slot, a free-list entry
 * and one pending event (16 bytes, plus the wheel's chunk overhead), and the
 * user table doubles as it grows: ~160 bytes per visiting user at the
 * peak.  Visiting users at the peak = peak arrival rate x mean visit
 * (pages x think time, Little's law), at most every arrival of the run.
 * CSV rows are kept to the end: ~120 bytes + 12 per pod.  Plus ~16 MB of
 * tables (event wheel, ziggurat, binary).
 */
double sim_memory_estimate(const struct sim_params *p)
{
	double peak = p->daily ? 1.8 * p->user_rate : fmax(p->user_rate, p->ramp_to);
	double visit = p->pages * (p->think_s + p->service_ms / 1000.0);
	double users = fmin(peak * visit, peak * p->duration_s) + 1000;
	double pods = p->hpa ? p->hpa_max : fmax(p->pods, p->scale_to);
	double rows = p->report_s > 0 ? p->duration_s / p->report_s : 0;

	if (p->mtbf_s > 0)
		pods += p->duration_s / p->mtbf_s;
	return users * 160 + rows * (120 + 12 * pods) + pods * p->concurrency * 8.0 + 16e6;
}

/* The name of initial pod k (0-based), as pods.c gives it. */
static void initial_name(const struct sim_params *p, int k, char out[LB_NAME_MAX])
{
	if (k < p->be.nservers)
		snprintf(out, LB_NAME_MAX, "%s", p->be.servers[k].name);
	else
		snprintf(out, LB_NAME_MAX, "pod%d", k + 1);
}

static void check_clients(const struct sim_params *p, char **e)
{
	if (!(p->user_rate > 0))
		add(e, "clients.users_per_second: must be > 0");
	if (p->pages < 1)
		add(e, "clients.pages: must be >= 1");
	if ((p->ramp_to > 0) != (p->ramp_s > 0))
		add(e, "clients.ramp_to and clients.ramp_over go together (the rate grows to ramp_to over ramp_over)");
	if (p->users_per_address < 1)
		add(e, "clients.users_per_address: must be >= 1");
}

static void check_pods(const struct sim_params *p, char **e, char **w)
{
	char name[LB_NAME_MAX];
	bool found = false;

	if (p->pods < 1 || p->pods > SIM_MAX_PODS)
		add(e, "pods.count: must be 1..%d (pods alive at once)", SIM_MAX_PODS);
	if (p->concurrency < 1 || p->concurrency > SIM_MAX_CONCURRENCY)
		add(e, "pods.concurrency: must be 1..%d", SIM_MAX_CONCURRENCY);
	if (p->queue < 0)
		add(e, "pods.queue: must be >= 0");
	if (!(p->timeout_s > 0))
		add(e, "pods.timeout: must be > 0 (a request not answered within it gets 504)");
	if (p->store == STORE_REDIS_CACHE && !(p->cache_ttl_s > 0))
		add(e, "pods.cache_ttl: must be > 0 with pods.store = \"redis+cache\"");
	if (p->crash_pod[0]) {
		for (int k = 0; k < p->pods && !found; k++) {
			initial_name(p, k, name);
			found = strcmp(name, p->crash_pod) == 0;
		}
		if (!found) {
			initial_name(p, 0, name);
			add(e, "failures.crash_pod: \"%s\" is not one of the %d pods (named as the servers: \"%s\", ...; "
			    "or a number 1..%d)", p->crash_pod, p->pods, name, p->pods);
		}
	}
	if (p->crash_at_s >= p->duration_s)
		add(w, "failures.crash_at (%.0f s) is at or after the end of the run (%.0f s): no crash", p->crash_at_s,
		    p->duration_s);
	if (p->crash_pod[0] && p->crash_at_s < 0)
		add(w, "failures.crash_pod without failures.crash_at: no crash");
	if (p->scale_at_s >= 0 && p->scale_to < 1)
		add(e, "failures.scale_at needs failures.scale_to (the pod count to scale out to)");
	else if (p->scale_at_s >= 0 && p->scale_to < p->pods)
		add(e, "failures.scale_to (%d) is below the %d pods running: the simulator scales out only "
		    "(the HPA scales down)", p->scale_to, p->pods);
	if (p->scale_at_s >= p->duration_s)
		add(w, "failures.scale_at (%.0f s) is at or after the end of the run: no scaling", p->scale_at_s);
}

static void check_redis(const struct sim_params *p, char **e, char **w)
{
	if (!(p->session_ttl_s > 0))
		add(e, "redis.session_ttl: must be > 0");
	if (!(p->cart_ttl_s > 0))
		add(e, "redis.cart_ttl: must be > 0");
	if (!(p->redis_ops_per_s > 0))
		add(e, "redis.capacity: must be > 0");
	if (p->session_ttl_s + p->duration_s > 4e6 || p->cart_ttl_s + p->duration_s > 4e6)
		add(e, "redis.session_ttl / cart_ttl + sim.duration must stay below 46 days (times are uint32 ms)");
	if (p->redis_crash_at_s >= 0 && p->store == STORE_LOCAL)
		add(w, "redis.crash_at has no effect with pods.store = \"memory\" (sessions are not in Redis)");
	else if (p->redis_crash_at_s >= p->duration_s)
		add(w, "redis.crash_at (%.0f s) is at or after the end of the run: no crash", p->redis_crash_at_s);
	if (p->sentinel && !(p->down_after_s > 0))
		add(e, "redis.down_after: must be > 0 with sentinel");
	if (p->persistence == P_RDB && p->nsave == 0 && p->redis_crash_at_s >= 0)
		add(w, "redis.persistence = \"rdb\" with no save rule never saves: a crash loses every session");
	if (p->cart_adds > 0 && p->store == STORE_LOCAL)
		add(w, "clients.cart_adds has no effect with pods.store = \"memory\" (carts are Redis keys)");
}

static void check_hpa(const struct sim_params *p, char **e)
{
	if (!(p->hpa_sync_s > 0))
		add(e, "hpa.sync: must be > 0");
	if (!p->hpa)
		return;
	if (p->hpa_min > p->hpa_max)
		add(e, "hpa.min (%d) is above hpa.max (%d)", p->hpa_min, p->hpa_max);
	if (p->hpa_max > SIM_MAX_PODS)
		add(e, "hpa.max: at most %d", SIM_MAX_PODS);
	if (!(p->hpa_target > 0))
		add(e, "hpa.target: must be > 0");
}

int sim_check(const struct sim_params *p, char **err, char **warn)
{
	char *e = NULL;
	double mem;
	int rc = 0;

	if (!(p->duration_s > 0) || p->duration_s > MAX_DURATION_S)
		add(&e, "sim.duration: must be > 0 and at most %.0f h", MAX_DURATION_S / 3600);
	if (!(p->report_s > 0))
		add(&e, "sim.report_interval: must be > 0");
	if (!p->be.algo)
		add(&e, "backends: no balancing algorithm");
	check_clients(p, &e);
	check_pods(p, &e, warn);
	check_redis(p, &e, warn);
	check_hpa(p, &e);
	if (e) {
		rc = -EINVAL;
	} else if ((mem = sim_memory_estimate(p)) > p->max_memory_mb * 1048576.0) {
		add(&e, "this run would need about %.0f MB (peak visiting users x ~160 bytes, plus reports), above "
		    "sim.max_memory_mb = %u: lower the load or the duration, or raise sim.max_memory_mb",
		    mem / 1048576.0, p->max_memory_mb);
		rc = -ENOMEM;
	}
	if (rc < 0) {
		free(*err);
		*err = e;
	}
	return rc;
}
