/*
 * Guards of the configuration's documented limits (docs/configuration.md),
 * against scripts/mutants.py's kind of bug: the schema rows are what
 * test_config's table-driven range test reads, so a wrong row (rise = 0
 * allowed, weight up to 1000) would pass it.  Here the documented limits
 * are written down independently and the schema must match them row for
 * row; the boundaries are also loaded directly, and the defaults compared.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "config_read.h"
#include "tether/config.h"

struct limit {
	const char *path, *name;
	long long min, max;
};

/* The numeric settings and their documented limits. */
static const struct limit limits[] = {
	{ "global", "workers", 1, 64 },
	{ "global", "maxconn", 1, 10000000 },
	{ "global", "drain_timeout", 0, 3600000 },
	{ "frontends.[]", "maxconn", 0, 10000000 },
	{ "frontends.[]", "proxy_timeout", 100, 600000 },
	{ "backends.[]", "retries", 0, 10 },
	{ "backends.[].iphash", "table_size", 2, 2147483647 },          /* then: a prime <= 5000011 */
	{ "backends.[].iphash", "balance_factor", 0, 2147483647 },      /* then: 0 or 101..1000 */
	{ "backends.[].cookie", "max_age", 1000, 400LL * 86400000 },
	{ "backends.[].cookie", "max_head", 512, 65536 },
	{ "backends.[].stick", "timeout", 1000, 86400000 },
	{ "backends.[].stick", "size", 1, 100000000 },
	{ "backends.[].timeouts", "connect", 1, 3600000 },
	{ "backends.[].timeouts", "client", 1, 7 * 86400000 },
	{ "backends.[].timeouts", "server", 1, 7 * 86400000 },
	{ "backends.[].timeouts", "http_request", 1, 3600000 },
	{ "backends.[].queue", "max", 0, 1000000 },
	{ "backends.[].queue", "timeout", 1, 3600000 },
	{ "backends.[].health", "interval", 100, 3600000 },
	{ "backends.[].health", "timeout", 10, 3600000 },
	{ "backends.[].health", "rise", 1, 100 },
	{ "backends.[].health", "fall", 1, 100 },
	{ "backends.[].servers.[]", "interval", 100, 86400000 },
	{ "backends.[].servers.[]", "max", 1, 1024 },
	{ "backends.[].servers.[]", "weight", 0, 256 },
	{ "backends.[].servers.[]", "maxconn", 0, 10000000 },
};

static void test_schema_matches_documented_limits(void **unused)
{
	int found[sizeof(limits) / sizeof(limits[0])] = { 0 }, wrong = 0;

	for (const struct cfg_group *g = cfg_schema(); g->path; g++)
		for (size_t i = 0; i < g->nfields; i++) {
			const struct cfg_field *f = &g->fields[i];
			size_t k;

			if (f->type != CT_INT && f->type != CT_DURATION && !(f->flags & CF_NUMERIC))
				continue;
			for (k = 0; k < sizeof(limits) / sizeof(limits[0]); k++)
				if (strcmp(limits[k].path, g->path) == 0 && strcmp(limits[k].name, f->name) == 0)
					break;
			if (k == sizeof(limits) / sizeof(limits[0]) || limits[k].min != f->min || limits[k].max != f->max) {
				print_message("schema: { \"%s\", \"%s\", %lld, %lld },\n", g->path, f->name, f->min, f->max);
				wrong++;
			} else {
				found[k]++;
			}
		}
	for (size_t k = 0; k < sizeof(limits) / sizeof(limits[0]); k++)
		if (found[k] != 1) {
			print_message("documented, not in the schema: %s.%s\n", limits[k].path, limits[k].name);
			wrong++;
		}
	assert_int_equal(wrong, 0);
}

#define FE "frontends = ( { name = \"web\"; bind = [ \"127.0.0.1:8080\" ]; backend = \"pods\"; } );\n"

static char *load(const char *backend_extra, const char *server_extra, struct tether_config **out)
{
	char text[2048], *err = NULL;
	struct tether_config *c = NULL;

	snprintf(text, sizeof(text), FE "backends = ( { name = \"pods\"; %s\n"
	         "  servers = ( { name = \"a\"; address = \"127.0.0.1:9001\"; %s } ); } );\n",
	         backend_extra, server_extra);
	if (cfg_load_string(text, "t.conf", &c, &err) == 0) {
		if (out)
			*out = c;
		else
			cfg_free(c);
		return NULL;
	}
	return err ? err : strdup("?");
}

static void refused(const char *be, const char *srv, const char *name)
{
	char *err = load(be, srv, NULL);

	if (!err)
		fail_msg("accepted: %s %s", be, srv);
	if (!strstr(err, name))
		fail_msg("the error does not name %s: %s", name, err);
	free(err);
}

static void accepted(const char *be, const char *srv)
{
	char *err = load(be, srv, NULL);

	if (err)
		fail_msg("refused: %s %s: %s", be, srv, err);
}

/* The boundaries the docs name, loaded as a user would write them. */
static void test_documented_boundaries(void **unused)
{
	refused("health = { rise = 0; };", "", "rise");
	accepted("health = { rise = 1; fall = 1; };", "");
	accepted("health = { rise = 100; fall = 100; };", "");
	refused("health = { fall = 0; };", "", "fall");
	refused("health = { rise = 101; };", "", "rise");
	refused("", "weight = 257;", "weight");
	accepted("", "weight = 256;");
	accepted("", "weight = 0;");
	refused("", "weight = -1;", "weight");
	refused("retries = 11;", "", "retries");
	accepted("retries = 10;", "");
	accepted("retries = 0;", "");
	refused("timeouts = { client = \"0ms\"; };", "", "client");
	accepted("timeouts = { client = \"1ms\"; server = \"7d\"; };", "");
	refused("timeouts = { server = \"8d\"; };", "", "server");
	refused("health = { interval = \"99ms\"; };", "", "interval");
	accepted("health = { interval = \"100ms\"; timeout = \"10ms\"; };", "");
	refused("balance = \"iphash\"; iphash = { table_size = 65536; };", "", "table_size");
	accepted("balance = \"iphash\"; iphash = { table_size = 65537; };", "");
	refused("balance = \"iphash\"; iphash = { balance_factor = 100; };", "", "balance_factor");
	accepted("balance = \"iphash\"; iphash = { balance_factor = 101; };", "");
}

/* The documented defaults. */
static void test_documented_defaults(void **unused)
{
	struct tether_config *c = NULL;
	struct cfg_backend *b;

	assert_null(load("", "", &c));
	b = &c->backends[0];
	assert_int_equal(c->global.maxconn, 20000);
	assert_int_equal(c->global.drain_timeout_ms, 30000);
	assert_int_equal(c->frontends[0].maxconn, 0);
	assert_int_equal(c->frontends[0].proxy_timeout_ms, 5000);
	assert_int_equal(b->timeouts.connect_ms, 5000);
	assert_int_equal(b->timeouts.client_ms, 30000);
	assert_int_equal(b->timeouts.server_ms, 30000);
	assert_int_equal(b->timeouts.http_request_ms, 5000);
	assert_int_equal(b->params.retries, 2);
	assert_false(b->params.observe);
	assert_int_equal(b->params.health.interval_ms, 2000);
	assert_int_equal(b->params.health.timeout_ms, 1000);
	assert_int_equal(b->params.health.rise, 2);
	assert_int_equal(b->params.health.fall, 3);
	assert_int_equal(b->params.stick_timeout_ms, 30 * 60000);
	assert_int_equal(b->params.table_size, 65537);
	assert_int_equal(b->params.balance_factor, 0);
	assert_int_equal(b->peek_max, 8192);
	assert_int_equal(b->cookie_max_age_ms, 0);
	assert_string_equal(b->cookie_name, "TETHERID");
	assert_int_equal(b->servers[0].weight, 1);
	assert_int_equal(b->servers[0].maxconn, 0);
	assert_false(b->servers[0].backup);
	cfg_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_schema_matches_documented_limits),
		cmocka_unit_test(test_documented_boundaries),
		cmocka_unit_test(test_documented_defaults),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
