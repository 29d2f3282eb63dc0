/*
 * tether-sim - defaults, the four patterns, and scenario files.
 *
 * A scenario is a libconfig file: the balancer's `backends` syntax (one
 * backend: algorithm, parameters, health, retries, and the initial pods as
 * its servers) plus the groups sim, clients, pods, redis, failures, hpa.
 * `--set group.key=value` overrides a scalar before the file is checked.
 * Errors use the balancer's format: FILE:LINE: SETTING: what is wrong.
 */
#include <libconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_read.h"
#include "sim.h"

void sim_params_default(struct sim_params *p)
{
	memset(p, 0, sizeof(*p));
	p->duration_s = 600;
	p->report_s = 10;
	p->seed = 1;
	p->user_rate = 10;          /* x 10 pages / visit = 100 requests/s (the teaching preset) */
	p->stop_at_s = -1;
	p->pages = 10;
	p->think_s = 5;
	p->users_per_address = 1;
	p->pods = 3;
	p->concurrency = 8;
	p->service_ms = 20;
	p->store = STORE_LOCAL;
	p->cache_ttl_s = 300;
	p->startup_s = 30;          /* HPA initial-readiness-delay default (sources §1) */
	p->replace_s = 0;
	p->redis_rtt_ms = 1;        /* a same-zone round trip */
	p->session_ttl_s = 3600;    /* 1 h sliding TTL (the reference retailer) */
	p->persistence = P_AOF_EVERYSEC;
	p->redis_crash_at_s = -1;
	p->redis_down_s = 10;
	p->down_after_s = 30;       /* sentinel.conf down-after-milliseconds 30000 */
	p->failover_s = 5;
	p->repl_lag_s = 1;
	p->crash_at_s = -1;
	p->scale_at_s = -1;
	p->hpa_min = 1;
	p->hpa_max = 20;
	p->hpa_target = 50;
	p->hpa_sync_s = 15;         /* horizontal-pod-autoscaler-sync-period */
	p->hpa_stabilize_s = 300;   /* default scaleDown stabilizationWindowSeconds */
	memset(&p->be, 0, sizeof(p->be));
	lb_params_default(&p->be.params);
	p->be.algo = &lb_algo_roundrobin;
	p->be.health.type = CFG_CHECK_TCP;
}

void sim_pattern(struct sim_params *p, char pattern)
{
	p->pods = 3;
	p->user_rate = 10;
	p->pages = 10;
	switch (pattern) {
	case 'A':       /* pod memory, round-robin */
		p->store = STORE_LOCAL;
		p->be.algo = &lb_algo_roundrobin;
		break;
	case 'B':       /* pod memory + cookie affinity */
		p->store = STORE_LOCAL;
		p->be.algo = &lb_algo_cookie;
		break;
	case 'C':       /* Redis, round-robin */
		p->store = STORE_REDIS;
		p->be.algo = &lb_algo_roundrobin;
		break;
	default:        /* D: Redis + pod-local cache + affinity */
		p->store = STORE_REDIS_CACHE;
		p->be.algo = &lb_algo_cookie;
		break;
	}
}

static const char *const top_keys[] = { "sim", "clients", "pods", "redis", "failures", "hpa", "backends", NULL };

/* Applies one --set group.key=value to the parsed tree. */
static int apply_set(config_t *lc, const char *set, char **err)
{
	char path[128], *eq, *dot;
	config_setting_t *g, *s;
	const char *v;
	char *end;

	snprintf(path, sizeof(path), "%s", set);
	eq = strchr(path, '=');
	dot = strchr(path, '.');
	if (!eq || !dot || dot > eq)
		goto bad;
	*eq = '\0';
	*dot = '\0';
	v = eq + 1;
	g = config_setting_get_member(config_root_setting(lc), path);
	if (!g)
		g = config_setting_add(config_root_setting(lc), path, CONFIG_TYPE_GROUP);
	if (!g || config_setting_type(g) != CONFIG_TYPE_GROUP)
		goto bad;
	s = config_setting_get_member(g, dot + 1);
	if (s)
		config_setting_remove(g, dot + 1);
	strtod(v, &end);
	if (*v && !*end && strchr(v, '.'))
		s = config_setting_add(g, dot + 1, CONFIG_TYPE_FLOAT), config_setting_set_float(s, strtod(v, NULL));
	else if (*v && !*end)
		s = config_setting_add(g, dot + 1, CONFIG_TYPE_INT64), config_setting_set_int64(s, strtoll(v, NULL, 10));
	else if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0)
		s = config_setting_add(g, dot + 1, CONFIG_TYPE_BOOL), config_setting_set_bool(s, v[0] == 't');
	else
		s = config_setting_add(g, dot + 1, CONFIG_TYPE_STRING), config_setting_set_string(s, v);
	if (!s)
		goto bad;
	return 0;
bad:
	*err = malloc(strlen(set) + 80);
	if (*err)
		sprintf(*err, "--set %s: want group.key=value (e.g. pods.count=5)", set);
	return -1;
}

static double dur(struct cfg_ctx *c, const config_setting_t *g, const char *path, const char *key, double def)
{
	uint64_t ms;

	return cfg_get_duration(c, g, path, key, &ms, 0, 400ull * 86400000) > 0 ? ms / 1000.0 : def;
}

static double num(struct cfg_ctx *c, const config_setting_t *g, const char *path, const char *key, double def,
                  double min, double max)
{
	double v;

	return cfg_get_float(c, g, path, key, &v, min, max) > 0 ? v : def;
}

static void read_groups(struct cfg_ctx *c, const config_setting_t *root, struct sim_params *p)
{
	static const char *const sim_k[] = { "duration", "report_interval", "seed", NULL };
	static const char *const cli_k[] = { "users_per_second", "pages", "think", "users_per_address", "address_change", "stop_at",
	                                     "ramp_to", "ramp_over", "daily", NULL };
	static const char *const pod_k[] = { "count", "concurrency", "service", "store", "cache_ttl", "startup",
	                                     "replace_after", NULL };
	static const char *const red_k[] = { "rtt", "session_ttl", "persistence", "crash_at", "down_for", "sentinel",
	                                     "down_after", "failover", "replication_lag", NULL };
	static const char *const fail_k[] = { "crash_at", "crash_pod", "mtbf", "scale_at", "scale_to", NULL };
	static const char *const hpa_k[] = { "enabled", "min", "max", "target", "sync", "stabilization", NULL };
	static const char *const stores[] = { "memory", "redis", "redis+cache", NULL };
	static const char *const persists[] = { "none", "aof-always", "aof-everysec", "rdb", NULL };
	const config_setting_t *g;
	int e;

	if ((g = config_setting_get_member(root, "sim")) && cfg_check_group(c, g, "sim")) {
		cfg_check_known(c, g, "sim", sim_k);
		p->duration_s = dur(c, g, "sim", "duration", p->duration_s);
		p->report_s = dur(c, g, "sim", "report_interval", p->report_s);
		p->seed = (uint64_t)num(c, g, "sim", "seed", (double)p->seed, 0, 1e18);
	}
	if ((g = config_setting_get_member(root, "clients")) && cfg_check_group(c, g, "clients")) {
		cfg_check_known(c, g, "clients", cli_k);
		p->user_rate = num(c, g, "clients", "users_per_second", p->user_rate, 1e-6, 1e7);
		p->pages = num(c, g, "clients", "pages", p->pages, 1, 10000);
		p->think_s = dur(c, g, "clients", "think", p->think_s);
		p->users_per_address = (unsigned)num(c, g, "clients", "users_per_address", p->users_per_address, 1, 1e6);
		p->stop_at_s = dur(c, g, "clients", "stop_at", p->stop_at_s);
		p->address_change = num(c, g, "clients", "address_change", p->address_change, 0, 1);
		p->ramp_to = num(c, g, "clients", "ramp_to", p->user_rate, 1e-6, 1e7);
		p->ramp_s = dur(c, g, "clients", "ramp_over", p->ramp_s);
		cfg_get_bool(c, g, "clients", "daily", &p->daily);
	}
	if ((g = config_setting_get_member(root, "pods")) && cfg_check_group(c, g, "pods")) {
		cfg_check_known(c, g, "pods", pod_k);
		p->pods = (int)num(c, g, "pods", "count", p->pods, 1, SIM_MAX_PODS);
		p->concurrency = (int)num(c, g, "pods", "concurrency", p->concurrency, 1, 100000);
		p->service_ms = dur(c, g, "pods", "service", p->service_ms / 1000) * 1000;
		if (cfg_get_enum(c, g, "pods", "store", stores, &e) > 0)
			p->store = (enum store)e;
		p->cache_ttl_s = dur(c, g, "pods", "cache_ttl", p->cache_ttl_s);
		p->startup_s = dur(c, g, "pods", "startup", p->startup_s);
		p->replace_s = dur(c, g, "pods", "replace_after", p->replace_s);
	}
	if ((g = config_setting_get_member(root, "redis")) && cfg_check_group(c, g, "redis")) {
		cfg_check_known(c, g, "redis", red_k);
		p->redis_rtt_ms = dur(c, g, "redis", "rtt", p->redis_rtt_ms / 1000) * 1000;
		p->session_ttl_s = dur(c, g, "redis", "session_ttl", p->session_ttl_s);
		if (cfg_get_enum(c, g, "redis", "persistence", persists, &e) > 0)
			p->persistence = (enum persist)e;
		p->redis_crash_at_s = dur(c, g, "redis", "crash_at", p->redis_crash_at_s);
		p->redis_down_s = dur(c, g, "redis", "down_for", p->redis_down_s);
		cfg_get_bool(c, g, "redis", "sentinel", &p->sentinel);
		p->down_after_s = dur(c, g, "redis", "down_after", p->down_after_s);
		p->failover_s = dur(c, g, "redis", "failover", p->failover_s);
		p->repl_lag_s = dur(c, g, "redis", "replication_lag", p->repl_lag_s);
	}
	if ((g = config_setting_get_member(root, "failures")) && cfg_check_group(c, g, "failures")) {
		cfg_check_known(c, g, "failures", fail_k);
		p->crash_at_s = dur(c, g, "failures", "crash_at", p->crash_at_s);
		p->crash_pod = (int)num(c, g, "failures", "crash_pod", p->crash_pod, 0, SIM_MAX_PODS - 1);
		p->mtbf_s = dur(c, g, "failures", "mtbf", p->mtbf_s);
		p->scale_at_s = dur(c, g, "failures", "scale_at", p->scale_at_s);
		p->scale_to = (int)num(c, g, "failures", "scale_to", p->scale_to, 0, SIM_MAX_PODS);
	}
	if ((g = config_setting_get_member(root, "hpa")) && cfg_check_group(c, g, "hpa")) {
		cfg_check_known(c, g, "hpa", hpa_k);
		cfg_get_bool(c, g, "hpa", "enabled", &p->hpa);
		p->hpa_min = (int)num(c, g, "hpa", "min", p->hpa_min, 1, SIM_MAX_PODS);
		p->hpa_max = (int)num(c, g, "hpa", "max", p->hpa_max, 1, SIM_MAX_PODS);
		p->hpa_target = num(c, g, "hpa", "target", p->hpa_target, 1, 100);
		p->hpa_sync_s = dur(c, g, "hpa", "sync", p->hpa_sync_s);
		p->hpa_stabilize_s = dur(c, g, "hpa", "stabilization", p->hpa_stabilize_s);
	}
}

int sim_load(struct sim_params *p, const char *path, char **sets, int nsets, char **err)
{
	config_t lc;
	struct cfg_ctx c = { .file = path, .errs = err };
	const config_setting_t *bl;
	int rc = -1;

	*err = NULL;
	config_init(&lc);
	if (path && config_read_file(&lc, path) != CONFIG_TRUE) {
		*err = malloc(512);
		if (*err)
			snprintf(*err, 512, "%s:%d: %s", path, config_error_line(&lc),
			         config_error_text(&lc) ? config_error_text(&lc) : "cannot read");
		goto out;
	}
	for (int i = 0; i < nsets; i++)
		if (apply_set(&lc, sets[i], err) < 0)
			goto out;
	cfg_check_known(&c, config_root_setting(&lc), "", top_keys);
	bl = config_setting_get_member(config_root_setting(&lc), "backends");
	if (bl) {
		struct cfg_backend *b = NULL;
		int n = 0;

		cfg_parse_backends(bl, path ? path : "--set", &b, &n, err);
		if (n >= 1 && !*err) {
			free(p->be.servers);
			p->be = b[0];
			b[0].servers = NULL;
			p->pods = p->be.nservers;
			if (n > 1)
				cfg_error(&c, bl, "backends", "the simulator balances one backend");
		}
		cfg_free_backends(b, n);
	}
	read_groups(&c, config_root_setting(&lc), p);
	rc = *err ? -1 : 0;
out:
	config_destroy(&lc);
	return rc;
}
