/*
 * tether-sim - defaults, the four patterns, and scenario files.
 *
 * A scenario is a libconfig file: the balancer's `backends` syntax (one
 * backend: algorithm, parameters, health, retries, and the initial pods as
 * its servers) plus the groups sim, clients, pods, redis, failures, hpa.
 * `--set group.key=value` overrides a scalar before the file is checked;
 * the value is typed as libconfig would read it (1000 and 1e3 are numbers,
 * "30s" a string).  Errors use the balancer's format, FILE:LINE: SETTING:
 * what is wrong, except for a value that came from --set, which is named
 * as "--set group.key=value: SETTING: ...".  The whole is then checked by
 * sim_check (scenario_check.c).
 */
#include <errno.h>
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
	p->max_memory_mb = 4096;
	p->user_rate = 10;          /* x 10 pages / visit = 100 requests/s (the teaching preset) */
	p->stop_at_s = -1;
	p->pages = 10;
	p->think_s = 5;
	p->users_per_address = 1;
	p->pods = 3;
	p->concurrency = 8;
	p->service_ms = 20;
	p->queue = 1000;            /* as the balancer's queue.max default */
	p->timeout_s = 30;          /* as the balancer's timeouts.server default */
	p->store = STORE_LOCAL;
	p->cache_ttl_s = 300;
	p->startup_s = 30;          /* time until the readiness probe passes */
	p->replace_s = 0;
	p->redis_rtt_ms = 1;        /* a same-zone round trip */
	p->redis_ops_per_s = 100000;/* redis-benchmark order of magnitude, one core, no pipelining */
	p->session_ttl_s = 3600;    /* 1 h sliding TTL (the reference retailer) */
	p->cart_ttl_s = 86400;      /* carts kept 24 h (DESIGN.md, tether-pod) */
	p->persistence = P_AOF_EVERYSEC;
	p->save[0] = (struct sim_save_rule){ 3600, 1 };     /* redis.conf >= 7.0 default */
	p->save[1] = (struct sim_save_rule){ 300, 100 };
	p->save[2] = (struct sim_save_rule){ 60, 10000 };
	p->nsave = 3;
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
	lb_params_default(&p->be.params);
	p->be.algo = &lb_algo_roundrobin;
	p->be.health.type = CFG_CHECK_TCP;
}

void sim_pattern(struct sim_params *p, char pattern)
{
	p->pods = 3;
	p->user_rate = 10;
	p->pages = 10;
	snprintf(p->name, sizeof(p->name), "pattern %c", pattern);
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
	char path[128], *eq, *dot, *end;
	config_setting_t *g, *s;
	const char *v;
	long long iv;
	double dv;

	snprintf(path, sizeof(path), "%s", set);
	eq = strchr(path, '=');
	dot = strchr(path, '.');
	if (!eq || !dot || dot > eq || (strchr(dot + 1, '.') && strchr(dot + 1, '.') < eq))
		goto bad;
	*eq = '\0';
	*dot = '\0';
	v = eq + 1;
	g = config_setting_get_member(config_root_setting(lc), path);
	if (!g)
		g = config_setting_add(config_root_setting(lc), path, CONFIG_TYPE_GROUP);
	if (!g || config_setting_type(g) != CONFIG_TYPE_GROUP)
		goto bad;
	if (config_setting_get_member(g, dot + 1))
		config_setting_remove(g, dot + 1);
	errno = 0;
	iv = strtoll(v, &end, 10);
	if (*v && !*end && errno == 0) {
		s = config_setting_add(g, dot + 1, CONFIG_TYPE_INT64);
		if (s)
			config_setting_set_int64(s, iv);
	} else if ((dv = strtod(v, &end)), *v && !*end) {
		s = config_setting_add(g, dot + 1, CONFIG_TYPE_FLOAT);
		if (s)
			config_setting_set_float(s, dv);
	} else if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0) {
		s = config_setting_add(g, dot + 1, CONFIG_TYPE_BOOL);
		if (s)
			config_setting_set_bool(s, v[0] == 't');
	} else {
		s = config_setting_add(g, dot + 1, CONFIG_TYPE_STRING);
		if (s)
			config_setting_set_string(s, v);
	}
	if (!s)
		goto bad;
	return 0;
bad:
	*err = malloc(strlen(set) + 80);
	if (*err)
		sprintf(*err, "--set %s: want group.key=value (e.g. pods.count=5)", set);
	return -EINVAL;
}

/* Error lines about settings that came from --set ("FILE:0: a.b: msg", or
 * sim_check's "a.b: msg" / "a.b (5) ...") are rewritten to name the
 * option: "--set a.b=v: a.b: msg". */
static void name_sets(char **err, const char *file, char **sets, int nsets)
{
	char prefix[300], *out = NULL, *line, *save = NULL;
	size_t len = 0, plen;

	if (!*err)
		return;
	snprintf(prefix, sizeof(prefix), "%s:0: ", file);
	plen = strlen(prefix);
	for (line = strtok_r(*err, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *set = NULL;
		char *o;
		size_t need;

		size_t skip = strncmp(line, prefix, plen) == 0 ? plen : 0;

		for (int i = 0; i < nsets && !set; i++) {
			size_t k = strcspn(sets[i], "=");

			if (strncmp(line + skip, sets[i], k) == 0 && (line[skip + k] == ':' || line[skip + k] == ' '))
				set = sets[i];
		}
		need = len + strlen(line) + (set ? strlen(set) + 16 : 0) + 2;
		if (!(o = realloc(out, need)))
			break;
		out = o;
		len += (size_t)(set ? sprintf(out + len, "%s--set %s: %s", len ? "\n" : "", set, line + skip)
		                    : sprintf(out + len, "%s%s", len ? "\n" : "", line));
	}
	if (out) {
		free(*err);
		*err = out;
	}
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

/* redis.save: "S N [S N]...", as redis.conf's `save`; "" for none. */
static void read_save(struct cfg_ctx *c, const config_setting_t *g, struct sim_params *p)
{
	char v[256], *s = v, *end;
	int n = 0;

	if (cfg_get_string(c, g, "redis", "save", v, sizeof(v)) <= 0)
		return;
	for (;;) {
		unsigned long sec, chg;

		while (*s == ' ')
			s++;
		if (!*s)
			break;
		sec = strtoul(s, &end, 10);
		if (end == s || *end != ' ' || n == SIM_MAX_SAVE_RULES)
			goto bad;
		s = end;
		chg = strtoul(s, &end, 10);
		if (end == s || (*end && *end != ' ') || sec == 0 || chg == 0)
			goto bad;
		p->save[n++] = (struct sim_save_rule){ (unsigned)sec, (unsigned)chg };
		s = end;
	}
	p->nsave = n;
	return;
bad:
	cfg_error(c, config_setting_get_member(g, "save"), "redis.save",
	          "\"%s\": want pairs \"SECONDS CHANGES\" as redis.conf (e.g. \"3600 1 300 100 60 10000\"), "
	          "at most %d, both > 0", v, SIM_MAX_SAVE_RULES);
}

/* failures.crash_pod: a server name, or its 1-based number. */
static void read_crash_pod(struct cfg_ctx *c, const config_setting_t *g, struct sim_params *p)
{
	const config_setting_t *s = config_setting_get_member(g, "crash_pod");
	long long k;

	if (!s)
		return;
	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		cfg_get_string(c, g, "failures", "crash_pod", p->crash_pod, sizeof(p->crash_pod));
	} else if (cfg_get_int(c, g, "failures", "crash_pod", &k, 1, SIM_MAX_PODS) > 0) {
		if (k <= p->be.nservers)
			snprintf(p->crash_pod, sizeof(p->crash_pod), "%s", p->be.servers[k - 1].name);
		else
			snprintf(p->crash_pod, sizeof(p->crash_pod), "pod%lld", k);
	}
}

static void read_groups(struct cfg_ctx *c, const config_setting_t *root, struct sim_params *p)
{
	static const char *const sim_k[] = { "duration", "report_interval", "seed", "max_memory_mb", NULL };
	static const char *const cli_k[] = { "users_per_second", "pages", "think", "users_per_address", "address_change",
	                                     "stop_at", "ramp_to", "ramp_over", "daily", "cart_adds", NULL };
	static const char *const pod_k[] = { "count", "concurrency", "service", "queue", "timeout", "store", "cache_ttl",
	                                     "startup", "replace_after", NULL };
	static const char *const red_k[] = { "rtt", "capacity", "session_ttl", "cart_ttl", "persistence", "save",
	                                     "crash_at", "down_for", "sentinel", "down_after", "failover",
	                                     "replication_lag", NULL };
	static const char *const fail_k[] = { "crash_at", "crash_pod", "mtbf", "scale_at", "scale_to", NULL };
	static const char *const hpa_k[] = { "enabled", "min", "max", "target", "sync", "stabilization", NULL };
	static const char *const stores[] = { "memory", "redis", "redis+cache", NULL };
	static const char *const persists[] = { "none", "aof-always", "aof-everysec", "rdb", NULL };
	const config_setting_t *g;
	long long seed;
	int e;

	if ((g = config_setting_get_member(root, "sim")) && cfg_check_group(c, g, "sim")) {
		cfg_check_known(c, g, "sim", sim_k);
		p->duration_s = dur(c, g, "sim", "duration", p->duration_s);
		p->report_s = dur(c, g, "sim", "report_interval", p->report_s);
		if (cfg_get_int(c, g, "sim", "seed", &seed, 0, INT64_MAX) > 0)
			p->seed = (uint64_t)seed;
		p->max_memory_mb = (unsigned)num(c, g, "sim", "max_memory_mb", p->max_memory_mb, 16, 1 << 20);
	}
	if ((g = config_setting_get_member(root, "clients")) && cfg_check_group(c, g, "clients")) {
		cfg_check_known(c, g, "clients", cli_k);
		p->user_rate = num(c, g, "clients", "users_per_second", p->user_rate, 1e-6, 1e7);
		p->pages = num(c, g, "clients", "pages", p->pages, 1, 10000);
		p->think_s = dur(c, g, "clients", "think", p->think_s);
		p->users_per_address = (unsigned)num(c, g, "clients", "users_per_address", p->users_per_address, 1, 1e6);
		p->stop_at_s = dur(c, g, "clients", "stop_at", p->stop_at_s);
		p->address_change = num(c, g, "clients", "address_change", p->address_change, 0, 1);
		p->ramp_to = num(c, g, "clients", "ramp_to", p->ramp_to, 1e-6, 1e7);
		p->ramp_s = dur(c, g, "clients", "ramp_over", p->ramp_s);
		cfg_get_bool(c, g, "clients", "daily", &p->daily);
		p->cart_adds = num(c, g, "clients", "cart_adds", p->cart_adds, 0, 1);
	}
	if ((g = config_setting_get_member(root, "pods")) && cfg_check_group(c, g, "pods")) {
		cfg_check_known(c, g, "pods", pod_k);
		p->pods = (int)num(c, g, "pods", "count", p->pods, 1, SIM_MAX_PODS);
		p->concurrency = (int)num(c, g, "pods", "concurrency", p->concurrency, 1, SIM_MAX_CONCURRENCY);
		p->service_ms = dur(c, g, "pods", "service", p->service_ms / 1000) * 1000;
		p->queue = (int)num(c, g, "pods", "queue", p->queue, 0, 1e7);
		p->timeout_s = dur(c, g, "pods", "timeout", p->timeout_s);
		if (cfg_get_enum(c, g, "pods", "store", stores, &e) > 0)
			p->store = (enum store)e;
		p->cache_ttl_s = dur(c, g, "pods", "cache_ttl", p->cache_ttl_s);
		p->startup_s = dur(c, g, "pods", "startup", p->startup_s);
		p->replace_s = dur(c, g, "pods", "replace_after", p->replace_s);
	}
	if ((g = config_setting_get_member(root, "redis")) && cfg_check_group(c, g, "redis")) {
		cfg_check_known(c, g, "redis", red_k);
		p->redis_rtt_ms = dur(c, g, "redis", "rtt", p->redis_rtt_ms / 1000) * 1000;
		p->redis_ops_per_s = num(c, g, "redis", "capacity", p->redis_ops_per_s, 100, 1e8);
		p->session_ttl_s = dur(c, g, "redis", "session_ttl", p->session_ttl_s);
		p->cart_ttl_s = dur(c, g, "redis", "cart_ttl", p->cart_ttl_s);
		if (cfg_get_enum(c, g, "redis", "persistence", persists, &e) > 0)
			p->persistence = (enum persist)e;
		read_save(c, g, p);
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
		read_crash_pod(c, g, p);
		p->mtbf_s = dur(c, g, "failures", "mtbf", p->mtbf_s);
		p->scale_at_s = dur(c, g, "failures", "scale_at", p->scale_at_s);
		p->scale_to = (int)num(c, g, "failures", "scale_to", p->scale_to, 1, SIM_MAX_PODS);
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

/* The `backends` list: its one backend becomes p->be, its servers the pods. */
static void read_backend(struct cfg_ctx *c, const config_setting_t *bl, const char *file, struct sim_params *p)
{
	struct cfg_backend *b = NULL;
	int n = 0;

	cfg_parse_backends(bl, file, &b, &n, c->errs);
	if (n >= 1 && !*c->errs) {
		free(p->be.servers);
		p->be = b[0];
		b[0].servers = NULL;
		p->pods = p->be.nservers;
		if (n > 1)
			cfg_error(c, bl, "backends", "the simulator balances one backend");
		for (int i = 0; i < p->be.nservers; i++)
			if (p->be.servers[i].resolve != CFG_RESOLVE_NONE)
				cfg_error_line(c, p->be.servers[i].line, "backends.[0].servers",
				               "resolve is the balancer's DNS discovery; the simulator's pods are servers "
				               "with addresses (or pods.count)");
	}
	cfg_free_backends(b, n);
}

int sim_load_warn(struct sim_params *p, const char *path, char **sets, int nsets, char **err, char **warn)
{
	const char *file = path ? path : "--set";
	struct cfg_ctx c = { .file = file, .errs = err };
	const config_setting_t *bl;
	config_t lc;
	int rc = -EINVAL;
	const char *base;

	*err = NULL;
	if (warn)
		*warn = NULL;
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
	if ((bl = config_setting_get_member(config_root_setting(&lc), "backends")))
		read_backend(&c, bl, file, p);
	read_groups(&c, config_root_setting(&lc), p);
	name_sets(err, file, sets, nsets);
	if (*err)
		goto out;
	if (path) {
		base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
		snprintf(p->name, sizeof(p->name), "%.*s", (int)strcspn(base, "."), base);
	}
	rc = sim_check(p, err, warn);
	name_sets(err, file, sets, nsets);
	if (warn)
		name_sets(warn, file, sets, nsets);
out:
	config_destroy(&lc);
	return rc;
}

int sim_load(struct sim_params *p, const char *path, char **sets, int nsets, char **err)
{
	return sim_load_warn(p, path, sets, nsets, err, NULL);
}
