/*
 * tether - the `backends` section: shared by the daemon and tether-sim.
 */
#include <ctype.h>
#include <libconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_read.h"
#include "tether/config.h"
#include "tether/err.h"

static const char *const backend_keys[] = {
	"name", "balance", "iphash", "cookie", "stick", "timeouts", "retries", "health", "servers", NULL };
static const char *const iphash_keys[] = { "method", "table_size", "key", "balance_factor", NULL };
static const char *const cookie_keys[] = { "name", "fallback", "max_age", "secret", "max_head", NULL };
static const char *const stick_keys[] = { "timeout", "size", NULL };
static const char *const timeout_keys[] = { "connect", "client", "server", "http_request", NULL };
static const char *const health_keys[] = {
	"type", "interval", "timeout", "rise", "fall", "path", "host", "expect", "observe", "on_down", NULL };
static const char *const server_keys[] = { "name", "address", "weight", "maxconn", "backup", NULL };

#define DAY_MS 86400000ull

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

static void parse_iphash(struct cfg_ctx *c, const config_setting_t *g, const char *path, struct lb_params *p)
{
	static const char *const methods[] = { "maglev", "modulo", NULL };
	static const char *const keys[] = { "address", "prefix24", NULL };
	long long v;
	int e;

	if (!cfg_check_group(c, g, path))
		return;
	cfg_check_known(c, g, path, iphash_keys);
	if (cfg_get_enum(c, g, path, "method", methods, &e) > 0)
		p->hash_method = e == 0 ? LB_HASH_MAGLEV : LB_HASH_MODULO;
	if (cfg_get_enum(c, g, path, "key", keys, &e) > 0)
		p->hash_key = e == 0 ? LB_KEY_ADDRESS : LB_KEY_PREFIX;
	/* the algorithm's own rules (prime, limits) are checked by lb_params_validate */
	if (cfg_get_int(c, g, path, "table_size", &v, 2, UINT32_MAX) > 0)
		p->table_size = (uint32_t)v;
	if (cfg_get_int(c, g, path, "balance_factor", &v, 0, UINT32_MAX) > 0)
		p->balance_factor = (unsigned)v;
}

static void parse_cookie(struct cfg_ctx *c, const config_setting_t *g, const char *path, struct cfg_backend *b)
{
	long long v;
	uint64_t ms;
	char fb[32];

	if (!cfg_check_group(c, g, path))
		return;
	cfg_check_known(c, g, path, cookie_keys);
	if (cfg_get_string(c, g, path, "name", b->cookie_name, sizeof(b->cookie_name)) > 0 &&
	    !is_token(b->cookie_name)) {
		char full[96];

		snprintf(full, sizeof(full), "%s.name", path);
		cfg_error(c, config_setting_get_member(g, "name"), full, "\"%s\" is not a valid cookie name",
		          b->cookie_name);
	}
	if (cfg_get_string(c, g, path, "fallback", fb, sizeof(fb)) > 0)
		b->params.fallback = find_algo(c, config_setting_get_member(g, "fallback"), path, "fallback", fb,
		                               LB_F_NEEDS_HTTP);
	if (cfg_get_duration(c, g, path, "max_age", &ms, 1000, 400 * DAY_MS) > 0)
		b->cookie_max_age_s = (uint32_t)(ms / 1000);
	cfg_get_string(c, g, path, "secret", b->params.cookie_secret, sizeof(b->params.cookie_secret));
	if (cfg_get_int(c, g, path, "max_head", &v, 512, 65536) > 0)
		b->peek_max = (uint32_t)v;
}

static void parse_stick(struct cfg_ctx *c, const config_setting_t *g, const char *path, struct lb_params *p)
{
	long long v;
	uint64_t ms;

	if (!cfg_check_group(c, g, path))
		return;
	cfg_check_known(c, g, path, stick_keys);
	p->stick_size = LB_STICK_SIZE_DEFAULT;
	if (cfg_get_int(c, g, path, "size", &v, 1, 100000000) > 0)
		p->stick_size = (uint32_t)v;
	if (cfg_get_duration(c, g, path, "timeout", &ms, 1000, DAY_MS) > 0)
		p->stick_timeout_ms = ms;
}

static void parse_timeouts(struct cfg_ctx *c, const config_setting_t *g, const char *path, struct cfg_timeouts *t)
{
	uint64_t ms;

	if (!cfg_check_group(c, g, path))
		return;
	cfg_check_known(c, g, path, timeout_keys);
	if (cfg_get_duration(c, g, path, "connect", &ms, 1, 3600000) > 0)
		t->connect_ms = (uint32_t)ms;
	if (cfg_get_duration(c, g, path, "client", &ms, 1, 7 * DAY_MS) > 0)
		t->client_ms = (uint32_t)ms;
	if (cfg_get_duration(c, g, path, "server", &ms, 1, 7 * DAY_MS) > 0)
		t->server_ms = (uint32_t)ms;
	if (cfg_get_duration(c, g, path, "http_request", &ms, 1, 3600000) > 0)
		t->http_request_ms = (uint32_t)ms;
}

/* expect: 200 (exact) or "2xx" (a class). */
static void parse_expect(struct cfg_ctx *c, const config_setting_t *g, const char *path, struct cfg_health *h)
{
	const config_setting_t *s = config_setting_get_member(g, "expect");
	char full[96];

	snprintf(full, sizeof(full), "%s.expect", path);
	if (!s)
		return;
	if (config_setting_type(s) == CONFIG_TYPE_INT) {
		int v = config_setting_get_int(s);

		if (v < 100 || v > 599) {
			cfg_error(c, s, full, "must be a status 100..599 or a class such as \"2xx\"");
			return;
		}
		h->expect_lo = h->expect_hi = v;
		return;
	}
	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		const char *v = config_setting_get_string(s);

		if (strlen(v) == 3 && v[0] >= '1' && v[0] <= '5' && v[1] == 'x' && v[2] == 'x') {
			h->expect_lo = (v[0] - '0') * 100;
			h->expect_hi = h->expect_lo + 99;
			return;
		}
	}
	cfg_error(c, s, full, "must be a status 100..599 or a class such as \"2xx\"");
}

static void parse_health(struct cfg_ctx *c, const config_setting_t *g, const char *path, struct cfg_backend *b)
{
	struct cfg_health *h = &b->health;
	struct hc_params *hc = &b->params.health;
	static const char *const types[] = { "tcp", "http", NULL };
	static const char *const on_down[] = { "keep", "close", NULL };
	long long v;
	uint64_t ms;
	int e;

	if (!cfg_check_group(c, g, path))
		return;
	cfg_check_known(c, g, path, health_keys);
	h->type = CFG_CHECK_TCP;
	if (cfg_get_enum(c, g, path, "type", types, &e) > 0)
		h->type = e == 0 ? CFG_CHECK_TCP : CFG_CHECK_HTTP;
	if (cfg_get_duration(c, g, path, "interval", &ms, 100, 3600000) > 0)
		hc->interval_ms = (uint32_t)ms;
	if (cfg_get_duration(c, g, path, "timeout", &ms, 10, 3600000) > 0)
		hc->timeout_ms = (uint32_t)ms;
	if (cfg_get_int(c, g, path, "rise", &v, 1, 100) > 0)
		hc->rise = (unsigned)v;
	if (cfg_get_int(c, g, path, "fall", &v, 1, 100) > 0)
		hc->fall = (unsigned)v;
	cfg_get_string(c, g, path, "path", h->path, sizeof(h->path));
	if (h->path[0] != '/') {
		char full[96];

		snprintf(full, sizeof(full), "%s.path", path);
		cfg_error(c, config_setting_get_member(g, "path"), full, "must start with /");
	}
	cfg_get_string(c, g, path, "host", h->host, sizeof(h->host));
	parse_expect(c, g, path, h);
	cfg_get_bool(c, g, path, "observe", &b->params.observe);
	if (cfg_get_enum(c, g, path, "on_down", on_down, &e) > 0)
		h->on_down = e == 0 ? CFG_ON_DOWN_KEEP : CFG_ON_DOWN_CLOSE;
}

static void parse_server(struct cfg_ctx *c, const config_setting_t *g, const char *path, struct cfg_server *s)
{
	char addr[160], full[112];
	long long v;

	s->weight = 1;
	s->line = config_setting_source_line(g);
	if (!cfg_check_group(c, g, path))
		return;
	cfg_check_known(c, g, path, server_keys);
	cfg_get_name(c, g, path, s->name, true);
	snprintf(full, sizeof(full), "%s.address", path);
	switch (cfg_get_string(c, g, path, "address", addr, sizeof(addr))) {
	case 0:
		cfg_error(c, g, path, "missing \"address\"");
		break;
	case 1:
		if (cfg_parse_addr(addr, &s->addr) < 0 || s->addr.ss.ss_family == 0)
			cfg_error(c, config_setting_get_member(g, "address"), full,
			          "\"%s\" is not an address like \"127.0.0.1:9001\" or \"[::1]:9001\"", addr);
		break;
	default:
		break;
	}
	if (cfg_get_int(c, g, path, "weight", &v, 0, LB_WEIGHT_MAX) > 0)
		s->weight = (unsigned)v;
	if (cfg_get_int(c, g, path, "maxconn", &v, 0, 10000000) > 0)
		s->maxconn = (unsigned)v;
	cfg_get_bool(c, g, path, "backup", &s->backup);
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
	strcpy(b->health.path, "/health");
	b->health.expect_lo = 200;
	b->health.expect_hi = 399;
}

static void parse_servers(struct cfg_ctx *c, const config_setting_t *list, const char *path, struct cfg_backend *b)
{
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
		char spath[96];

		snprintf(spath, sizeof(spath), "%s.[%d]", sub, i);
		parse_server(c, config_setting_get_elem(list, (unsigned)i), spath, &b->servers[i]);
		for (int j = 0; j < i; j++)
			if (b->servers[i].name[0] && strcmp(b->servers[i].name, b->servers[j].name) == 0)
				cfg_error_line(c, b->servers[i].line, spath, "server name \"%s\" is used twice in this backend",
				               b->servers[i].name);
	}
	b->nservers = n;
}

static void parse_backend(struct cfg_ctx *c, const config_setting_t *g, const char *path, struct cfg_backend *b)
{
	const config_setting_t *s;
	char sub[80], bal[32];
	long long v;

	backend_defaults(b);
	b->line = config_setting_source_line(g);
	if (!cfg_check_group(c, g, path))
		return;
	cfg_check_known(c, g, path, backend_keys);
	cfg_get_name(c, g, path, b->name, true);
	if (cfg_get_string(c, g, path, "balance", bal, sizeof(bal)) > 0)
		b->algo = find_algo(c, config_setting_get_member(g, "balance"), path, "balance", bal, 0);
#define SUBGROUP(key, call) \
	if ((s = config_setting_get_member(g, key))) { \
		snprintf(sub, sizeof(sub), "%s.%s", path, key); \
		call; \
	}
	SUBGROUP("iphash", parse_iphash(c, s, sub, &b->params))
	SUBGROUP("cookie", parse_cookie(c, s, sub, b))
	SUBGROUP("stick", parse_stick(c, s, sub, &b->params))
	SUBGROUP("timeouts", parse_timeouts(c, s, sub, &b->timeouts))
	SUBGROUP("health", parse_health(c, s, sub, b))
#undef SUBGROUP
	if (cfg_get_int(c, g, path, "retries", &v, 0, LB_RETRIES_MAX) > 0)
		b->params.retries = (unsigned)v;
	check_params(c, g, path, b);
	parse_servers(c, config_setting_get_member(g, "servers"), path, b);
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
