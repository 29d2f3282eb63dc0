/*
 * tether - the `backends` section: shared by the daemon and tether-sim.
 */
#include <ctype.h>
#include <libconfig.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_read.h"
#include "tether/config.h"
#include "tether/err.h"

#define DAY_MS 86400000ll
#define BE(field) .offset = offsetof(struct cfg_backend, field), .size = sizeof(((struct cfg_backend *)0)->field)
#define SV(field) .offset = offsetof(struct cfg_server, field), .size = sizeof(((struct cfg_server *)0)->field)

/* RFC 6265 cookie-name: a token. */
static bool is_token(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
			return false;
	return true;
}

/* The registered algorithm called name, reported when there is none (or it
 * has one of the flags `refused`); falls back to the first registered. */
static const struct lb_algo *find_algo(struct cfg_ctx *c, const config_setting_t *s, const char *path,
                                       const char *key, const char *name, unsigned refused)
{
	const struct lb_algo *a = lb_algo_find(name);
	char names[160], full[128];

	if (a && !(a->flags & refused))
		return a;
	lb_algo_names(names, sizeof(names), refused);
	snprintf(full, sizeof(full), "%s.%s", path, key);
	cfg_error(c, s, full, "\"%s\" is not one of %s", name, names);
	return lb_algo_list()[0];
}

/* The algorithms' own rules on their parameters (lb_params_validate),
 * reported at the line of the setting they name. */
static void check_params(struct cfg_ctx *c, const config_setting_t *g, const char *path, const struct cfg_backend *b)
{
	char *err = NULL, *colon, full[128];
	const config_setting_t *s;

	if (lb_params_validate(&b->params, &err) >= 0)
		return;
	colon = err ? strchr(err, ':') : NULL;
	if (!colon) {
		cfg_error(c, g, path, "%s", err ? err : "out of memory");
		free(err);
		return;
	}
	*colon = '\0';
	s = config_setting_lookup((config_setting_t *)g, err);
	snprintf(full, sizeof(full), "%s.%s", path, err);
	cfg_error(c, s ? s : g, full, "%s", colon + 2);
	free(err);
}

static void read_balance(struct cfg_ctx *c, const config_setting_t *g, const char *path, const struct cfg_field *f,
                         void *base)
{
	struct cfg_backend *b = base;
	char bal[32];

	if (cfg_get_string(c, g, path, f->name, bal, sizeof(bal)) > 0)
		b->algo = find_algo(c, config_setting_get_member(g, f->name), path, f->name, bal, 0);
}

static void read_fallback(struct cfg_ctx *c, const config_setting_t *g, const char *path, const struct cfg_field *f,
                          void *base)
{
	struct cfg_backend *b = base;
	char fb[32];

	if (cfg_get_string(c, g, path, f->name, fb, sizeof(fb)) > 0)
		b->params.fallback = find_algo(c, config_setting_get_member(g, f->name), path, f->name, fb,
		                               LB_F_NEEDS_HTTP);
}

static void check_cookie_name(struct cfg_ctx *c, const config_setting_t *g, const char *path,
                              const struct cfg_field *f, void *base)
{
	struct cfg_backend *b = base;
	char full[96];

	if (is_token(b->cookie_name))
		return;
	snprintf(full, sizeof(full), "%s.%s", path, f->name);
	cfg_error(c, config_setting_get_member(g, f->name), full, "\"%s\" is not a valid cookie name", b->cookie_name);
}

/* expect: 200 (exact) or "2xx" (a class). */
static void read_expect(struct cfg_ctx *c, const config_setting_t *g, const char *path, const struct cfg_field *f,
                        void *base)
{
	struct cfg_health *h = &((struct cfg_backend *)base)->health;
	const config_setting_t *s = config_setting_get_member(g, f->name);
	char full[96];

	snprintf(full, sizeof(full), "%s.%s", path, f->name);
	if (!s)
		return;
	if (config_setting_type(s) == CONFIG_TYPE_INT) {
		int v = config_setting_get_int(s);

		if (v >= 100 && v <= 599) {
			h->expect_lo = h->expect_hi = v;
			return;
		}
	} else if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		const char *v = config_setting_get_string(s);

		if (strlen(v) == 3 && v[0] >= '1' && v[0] <= '5' && v[1] == 'x' && v[2] == 'x') {
			h->expect_lo = (v[0] - '0') * 100;
			h->expect_hi = h->expect_lo + 99;
			return;
		}
	}
	cfg_error(c, s, full, "must be a status 100..599 or a class such as \"2xx\"");
}

static void check_path(struct cfg_ctx *c, const config_setting_t *g, const char *path, const struct cfg_field *f,
                       void *base)
{
	char full[96];

	if (((struct cfg_backend *)base)->health.path[0] == '/')
		return;
	snprintf(full, sizeof(full), "%s.%s", path, f->name);
	cfg_error(c, config_setting_get_member(g, f->name), full, "must start with /");
}

/* A DNS name: labels of [A-Za-z0-9_-] (underscore for SRV's _service._proto),
 * 1..63 bytes each, separated by dots, 253 bytes at most (RFC 1035 2.3.4);
 * a trailing dot (an absolute name) is allowed. */
static bool is_dns_name(const char *n)
{
	size_t len = strlen(n), label = 0;

	if (len == 0 || len > 253 || n[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		if (n[i] == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (isalnum((unsigned char)n[i]) || n[i] == '-' || n[i] == '_') {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return true;
}

/* address of a resolve entry: "NAME:PORT" (A, AAAA) or "NAME" (SRV). */
static void read_resolve_address(struct cfg_ctx *c, const config_setting_t *s, const char *full, struct cfg_server *sv,
                                 const char *addr)
{
	const char *colon = strrchr(addr, ':');
	char *end;
	long port = 0;

	if (sv->resolve == CFG_RESOLVE_SRV) {
		if (colon || !is_dns_name(addr))
			cfg_error(c, s, full, "\"%s\" is not an SRV name like \"_http._tcp.pods.default.svc.cluster.local\" "
			          "(SRV records give the port)", addr);
		else
			memcpy(sv->host, addr, strlen(addr) + 1);      /* is_dns_name: at most 253 bytes */
		return;
	}
	if (colon && colon[1] >= '0' && colon[1] <= '9')
		port = strtol(colon + 1, &end, 10);
	if (!colon || port < 1 || port > 65535 || *end || (size_t)(colon - addr) >= sizeof(sv->host)) {
		cfg_error(c, s, full, "\"%s\" is not a name and port like \"pods.default.svc.cluster.local:8080\"", addr);
		return;
	}
	memcpy(sv->host, addr, (size_t)(colon - addr));
	sv->host[colon - addr] = '\0';
	sv->port = (uint16_t)port;
	if (!is_dns_name(sv->host))
		cfg_error(c, s, full, "\"%s\" is not a DNS name", sv->host);
}

static void read_address(struct cfg_ctx *c, const config_setting_t *g, const char *path, const struct cfg_field *f,
                         void *base)
{
	struct cfg_server *s = base;
	char addr[300], full[112];

	snprintf(full, sizeof(full), "%s.%s", path, f->name);
	switch (cfg_get_string(c, g, path, f->name, addr, sizeof(addr))) {
	case 0:
		cfg_error(c, g, path, "missing \"address\"");
		break;
	case 1:
		if (s->resolve != CFG_RESOLVE_NONE)
			read_resolve_address(c, config_setting_get_member(g, f->name), full, s, addr);
		else if (cfg_parse_addr(addr, &s->addr) < 0 || s->addr.ss.ss_family == 0)
			cfg_error(c, config_setting_get_member(g, f->name), full,
			          "\"%s\" is not an address like \"127.0.0.1:9001\" or \"[::1]:9001\"", addr);
		break;
	default:
		break;
	}
}

static const char *const methods[] = { "maglev", "modulo", NULL };
static const int method_values[] = { LB_HASH_MAGLEV, LB_HASH_MODULO };
static const char *const hash_keys[] = { "address", "prefix24", NULL };
static const int hash_key_values[] = { LB_KEY_ADDRESS, LB_KEY_PREFIX };
static const char *const check_types[] = { "tcp", "http", NULL };
static const int check_type_values[] = { CFG_CHECK_TCP, CFG_CHECK_HTTP };
static const char *const on_downs[] = { "keep", "close", NULL };
static const int on_down_values[] = { CFG_ON_DOWN_KEEP, CFG_ON_DOWN_CLOSE };
static const char *const proxy_versions[] = { "v1", "v2", NULL };
static const int proxy_version_values[] = { 1, 2 };

/* The algorithms' own rules (prime table, balance factor 0 or > 100) are
 * checked by lb_params_validate: these limits only bound the type. */
static const struct cfg_field iphash_fields[] = {
	{ .name = "method", .type = CT_ENUM, BE(params.hash_method), .choices = methods, .values = method_values },
	{ .name = "table_size", .type = CT_INT, BE(params.table_size), .min = 2, .max = INT32_MAX, .flags = CF_FURTHER },
	{ .name = "key", .type = CT_ENUM, BE(params.hash_key), .choices = hash_keys, .values = hash_key_values },
	{ .name = "balance_factor", .type = CT_INT, BE(params.balance_factor), .min = 0, .max = INT32_MAX, .flags = CF_FURTHER },
};
static const struct cfg_field cookie_fields[] = {
	{ .name = "name", .type = CT_STRING, BE(cookie_name), .read = check_cookie_name },
	{ .name = "fallback", .type = CT_CUSTOM, .read = read_fallback },
	{ .name = "max_age", .type = CT_DURATION, BE(cookie_max_age_ms), .min = 1000, .max = 400 * DAY_MS },
	{ .name = "secret", .type = CT_STRING, BE(params.cookie_secret) },
	{ .name = "max_head", .type = CT_INT, BE(peek_max), .min = 512, .max = 65536 },
};
static const struct cfg_field stick_fields[] = {
	{ .name = "timeout", .type = CT_DURATION, BE(params.stick_timeout_ms), .min = 1000, .max = DAY_MS },
	{ .name = "size", .type = CT_INT, BE(params.stick_size), .min = 1, .max = 100000000 },
};
static const struct cfg_field timeout_fields[] = {
	{ .name = "connect", .type = CT_DURATION, BE(timeouts.connect_ms), .min = 1, .max = 3600000 },
	{ .name = "client", .type = CT_DURATION, BE(timeouts.client_ms), .min = 1, .max = 7 * DAY_MS },
	{ .name = "server", .type = CT_DURATION, BE(timeouts.server_ms), .min = 1, .max = 7 * DAY_MS },
	{ .name = "http_request", .type = CT_DURATION, BE(timeouts.http_request_ms), .min = 1, .max = 3600000 },
};
static const struct cfg_field queue_fields[] = {
	{ .name = "max", .type = CT_INT, BE(queue.max), .min = 0, .max = 1000000 },
	{ .name = "timeout", .type = CT_DURATION, BE(queue.timeout_ms), .min = 1, .max = 3600000 },
};
static const struct cfg_field health_fields[] = {
	{ .name = "type", .type = CT_ENUM, BE(health.type), .choices = check_types, .values = check_type_values },
	{ .name = "interval", .type = CT_DURATION, BE(params.health.interval_ms), .min = 100, .max = 3600000 },
	{ .name = "timeout", .type = CT_DURATION, BE(params.health.timeout_ms), .min = 10, .max = 3600000 },
	{ .name = "rise", .type = CT_INT, BE(params.health.rise), .min = 1, .max = 100 },
	{ .name = "fall", .type = CT_INT, BE(params.health.fall), .min = 1, .max = 100 },
	{ .name = "path", .type = CT_STRING, BE(health.path), .read = check_path },
	{ .name = "host", .type = CT_STRING, BE(health.host) },
	{ .name = "expect", .type = CT_CUSTOM, .read = read_expect },
	{ .name = "observe", .type = CT_BOOL, BE(params.observe) },
	{ .name = "on_down", .type = CT_ENUM, BE(health.on_down), .choices = on_downs, .values = on_down_values },
};
static const char *const resolve_types[] = { "A", "AAAA", "SRV", NULL };
static const int resolve_values[] = { CFG_RESOLVE_A, CFG_RESOLVE_AAAA, CFG_RESOLVE_SRV };

/* A resolve entry's name prefixes its servers' names (CFG_RESOLVE_NAME_MAX). */
static void check_resolve(struct cfg_ctx *c, const config_setting_t *g, const char *path, const struct cfg_field *f,
                          void *base)
{
	const struct cfg_server *s = base;
	char full[112];

	snprintf(full, sizeof(full), "%s.name", path);
	if (strlen(s->name) > CFG_RESOLVE_NAME_MAX)
		cfg_error(c, config_setting_get_member(g, "name"), full, "with resolve, at most %d characters (it "
		          "prefixes the names of the servers found, which must fit an IPv6 address)", CFG_RESOLVE_NAME_MAX);
}

/* resolve comes before address: it decides how address reads.  interval
 * and max belong to resolve entries (checked in read_servers). */
static const struct cfg_field server_fields[] = {
	{ .name = "name", .type = CT_NAME, SV(name), .flags = CF_REQUIRED },
	{ .name = "resolve", .type = CT_ENUM, SV(resolve), .choices = resolve_types, .values = resolve_values,
	  .read = check_resolve },
	{ .name = "address", .type = CT_CUSTOM, .read = read_address },
	{ .name = "interval", .type = CT_DURATION, SV(interval_ms), .min = 100, .max = 86400000 },
	{ .name = "max", .type = CT_INT, SV(max), .min = 1, .max = 1024 },
	{ .name = "weight", .type = CT_INT, SV(weight), .min = 0, .max = LB_WEIGHT_MAX },
	{ .name = "maxconn", .type = CT_INT, SV(maxconn), .min = 0, .max = 10000000 },
	{ .name = "backup", .type = CT_BOOL, SV(backup) },
};

static const struct cfg_group iphash_group = CFG_GROUP("backends.[].iphash", iphash_fields);
static const struct cfg_group cookie_group = CFG_GROUP("backends.[].cookie", cookie_fields);
static const struct cfg_group stick_group = CFG_GROUP("backends.[].stick", stick_fields);
static const struct cfg_group timeout_group = CFG_GROUP("backends.[].timeouts", timeout_fields);
static const struct cfg_group queue_group = CFG_GROUP("backends.[].queue", queue_fields);
static const struct cfg_group health_group = CFG_GROUP("backends.[].health", health_fields);
static const struct cfg_group server_group = CFG_GROUP("backends.[].servers.[]", server_fields);

/* A sub-group of a backend: read when present, with its defaults set first. */
static void read_subgroup(struct cfg_ctx *c, const config_setting_t *g, const char *path, const struct cfg_field *f,
                          void *base)
{
	const config_setting_t *s = config_setting_get_member(g, f->name);
	const struct cfg_group *grp = (const struct cfg_group *)f->choices;
	struct cfg_backend *b = base;
	char sub[96];

	if (!s)
		return;
	snprintf(sub, sizeof(sub), "%s.%s", path, f->name);
	if (grp == &stick_group)
		b->params.stick_size = LB_STICK_SIZE_DEFAULT;       /* a stick group turns the table on */
	if (grp == &health_group)
		b->health.type = CFG_CHECK_TCP;                     /* a health group turns checks on */
	cfg_read_group(c, s, sub, grp, b);
}

static void read_servers(struct cfg_ctx *c, const config_setting_t *g, const char *path, const struct cfg_field *f,
                         void *base)
{
	const config_setting_t *list = config_setting_get_member(g, f->name);
	struct cfg_backend *b = base;
	char sub[80];
	int n;

	snprintf(sub, sizeof(sub), "%s.servers", path);
	if (!list) {
		cfg_error(c, NULL, path, "missing \"servers\"");
		return;
	}
	if (config_setting_type(list) != CONFIG_TYPE_LIST) {
		cfg_error(c, list, sub, "must be a list: servers = ( { name = ...; address = ...; } );");
		return;
	}
	n = config_setting_length(list);
	if (n == 0)
		cfg_error(c, list, sub, "at least one server is needed");
	b->servers = calloc((size_t)n + 1, sizeof(*b->servers));
	if (!b->servers)
		return;
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
		struct cfg_server *s = &b->servers[i];
		char spath[96];

		snprintf(spath, sizeof(spath), "%s.[%d]", sub, i);
		s->weight = 1;
		s->interval_ms = 5000;
		s->max = 32;
		s->line = config_setting_source_line(e);
		cfg_read_group(c, e, spath, &server_group, s);
		if (s->resolve == CFG_RESOLVE_NONE && e && config_setting_type(e) == CONFIG_TYPE_GROUP &&
		    (config_setting_get_member(e, "interval") || config_setting_get_member(e, "max")))
			cfg_error_line(c, s->line, spath, "interval and max go with resolve = \"A\" | \"AAAA\" | \"SRV\"");
		for (int j = 0; j < i; j++)
			if (s->name[0] && strcmp(s->name, b->servers[j].name) == 0)
				cfg_error_line(c, s->line, spath, "server name \"%s\" is used twice in this backend", s->name);
	}
	b->nservers = n;
}

/* The groups of a backend are fields whose `choices` points at the group. */
#define SUBGROUP(n, g) { .name = n, .type = CT_CUSTOM, .choices = (const char *const *)&g, .read = read_subgroup }
static const struct cfg_field backend_fields[] = {
	{ .name = "name", .type = CT_NAME, BE(name), .flags = CF_REQUIRED },
	{ .name = "balance", .type = CT_CUSTOM, .read = read_balance },
	SUBGROUP("iphash", iphash_group),
	SUBGROUP("cookie", cookie_group),
	SUBGROUP("stick", stick_group),
	SUBGROUP("timeouts", timeout_group),
	{ .name = "retries", .type = CT_INT, BE(params.retries), .min = 0, .max = LB_RETRIES_MAX },
	SUBGROUP("queue", queue_group),
	SUBGROUP("health", health_group),
	{ .name = "send_proxy", .type = CT_ENUM, BE(send_proxy), .choices = proxy_versions, .values = proxy_version_values },
	{ .name = "servers", .type = CT_CUSTOM, .read = read_servers },
};
#undef SUBGROUP
static const struct cfg_group backend_group = CFG_GROUP("backends.[]", backend_fields);

const struct cfg_group *cfg_backend_schema(void)
{
	static const struct cfg_group all[] = {
		CFG_GROUP("backends.[]", backend_fields), CFG_GROUP("backends.[].iphash", iphash_fields),
		CFG_GROUP("backends.[].cookie", cookie_fields), CFG_GROUP("backends.[].stick", stick_fields),
		CFG_GROUP("backends.[].timeouts", timeout_fields), CFG_GROUP("backends.[].queue", queue_fields),
		CFG_GROUP("backends.[].health", health_fields),
		CFG_GROUP("backends.[].servers.[]", server_fields), { NULL, NULL, 0 },
	};
	return all;
}

/* The defaults of the core (lb_params_default: stick table, health rules,
 * retries) and of the daemon's own settings. */
static void backend_defaults(struct cfg_backend *b)
{
	lb_params_default(&b->params);
	b->algo = lb_algo_list()[0];
	strcpy(b->cookie_name, "TETHERID");
	b->peek_max = 8192;
	b->timeouts.connect_ms = 5000;
	b->timeouts.client_ms = 30000;
	b->timeouts.server_ms = 30000;
	b->timeouts.http_request_ms = 5000;
	b->queue.max = 1000;
	b->queue.timeout_ms = 5000;
	strcpy(b->health.path, "/health");
	b->health.expect_lo = 200;
	b->health.expect_hi = 399;
}

static void parse_backend(struct cfg_ctx *c, const config_setting_t *g, const char *path, struct cfg_backend *b)
{
	backend_defaults(b);
	b->line = config_setting_source_line(g);
	if (!cfg_read_group(c, g, path, &backend_group, b))
		return;
	check_params(c, g, path, b);
	if (!(b->algo->flags & LB_F_WEIGHTS))
		for (int i = 0; i < b->nservers; i++)
			if (b->servers[i].weight != 1)
				cfg_error_line(c, b->servers[i].line, path, "balance \"%s\" ignores weights; remove weight",
				               b->algo->name);
}

static int count_lines(const char *s)
{
	int n = 0;

	if (!s)
		return 0;
	for (n = 1; *s; s++)
		n += *s == '\n';
	return n;
}

int cfg_parse_backends(const struct config_setting_t *list, const char *file,
                       struct cfg_backend **out, int *n, char **errs)
{
	struct cfg_ctx c = { .file = file, .errs = errs };
	int count, before = count_lines(*errs);

	*out = NULL;
	*n = 0;
	if (config_setting_type(list) != CONFIG_TYPE_LIST) {
		cfg_error(&c, list, "backends", "must be a list: backends = ( { ... } );");
		return 1;
	}
	count = config_setting_length(list);
	if (count == 0)
		cfg_error(&c, list, "backends", "at least one backend is needed");
	*out = calloc((size_t)count + 1, sizeof(**out));
	if (!*out)
		return 1;
	for (int i = 0; i < count; i++) {
		char path[32];

		snprintf(path, sizeof(path), "backends.[%d]", i);
		parse_backend(&c, config_setting_get_elem(list, (unsigned)i), path, &(*out)[i]);
		for (int j = 0; j < i; j++)
			if ((*out)[i].name[0] && strcmp((*out)[i].name, (*out)[j].name) == 0)
				cfg_error_line(&c, (*out)[i].line, path, "backend name \"%s\" is used twice", (*out)[i].name);
	}
	*n = count;
	return count_lines(*errs) - before;
}

void cfg_free_backends(struct cfg_backend *b, int n)
{
	for (int i = 0; b && i < n; i++)
		free(b[i].servers);
	free(b);
}
