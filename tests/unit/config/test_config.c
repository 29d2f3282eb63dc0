/*
 * The configuration loader: values and defaults of a full file, every error
 * case with its exact message, and every shipped file under conf/.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "config_read.h"
#include "tether/config.h"

#define FE "frontends = ( { name = \"web\"; bind = [ \"127.0.0.1:8080\" ]; backend = \"pods\"; } );\n"
#define SRV "servers = ( { name = \"a\"; address = \"127.0.0.1:9001\"; } );"
#define BE(body) "backends = ( { name = \"pods\"; " body " " SRV " } );\n"

static void test_full_config(void **unused)
{
	static const char text[] =
		"global = { workers = 1; maxconn = 500; log = \"/tmp/x.log\"; admin = \"/tmp/t.sock\";\n"
		"  metrics = \"127.0.0.1:9100\"; drain_timeout = \"10s\"; };\n"
		"frontends = ( { name = \"web\"; bind = [ \"127.0.0.1:8080\", \"[::1]:8081\" ]; backend = \"pods\"; maxconn = 7; } );\n"
		"backends = ( {\n"
		"  name = \"pods\"; balance = \"cookie\";\n"
		"  iphash = { method = \"modulo\"; table_size = 257; key = \"prefix24\"; balance_factor = 150; };\n"
		"  cookie = { name = \"SRV\"; fallback = \"iphash\"; max_age = \"30m\"; secret = \"s3\"; max_head = 4096; };\n"
		"  stick = { timeout = \"10m\"; size = 1000; };\n"
		"  timeouts = { connect = \"2s\"; client = \"1m\"; server = \"500ms\"; http_request = \"3s\"; };\n"
		"  retries = 4;\n"
		"  health = { type = \"http\"; interval = \"5s\"; timeout = \"2s\"; rise = 3; fall = 4; path = \"/hz\";\n"
		"             host = \"app\"; expect = \"2xx\"; observe = true; on_down = \"close\"; };\n"
		"  servers = ( { name = \"a\"; address = \"127.0.0.1:9001\"; weight = 3; maxconn = 10; },\n"
		"              { name = \"b\"; address = \"[::1]:9002\"; backup = true; } );\n"
		"} );\n";
	struct tether_config *c = NULL;
	char *err = NULL;
	struct cfg_backend *b;

	assert_int_equal(cfg_load_string(text, "t.conf", &c, &err), 0);
	assert_null(err);
	assert_int_equal(c->global.maxconn, 500);
	assert_string_equal(c->global.log, "/tmp/x.log");
	assert_int_equal(c->global.drain_timeout_ms, 10000);
	assert_int_not_equal(c->global.metrics.len, 0);
	assert_int_equal(c->nfrontends, 1);
	assert_int_equal(c->frontends[0].nbinds, 2);
	assert_int_equal(c->frontends[0].maxconn, 7);
	assert_int_equal(c->frontends[0].backend, 0);
	b = &c->backends[0];
	assert_ptr_equal(b->algo, &lb_algo_cookie);
	assert_ptr_equal(b->params.fallback, &lb_algo_iphash);
	assert_int_equal(b->params.hash_method, LB_HASH_MODULO);
	assert_int_equal(b->params.hash_key, LB_KEY_PREFIX);
	assert_int_equal(b->params.table_size, 257);
	assert_int_equal(b->params.balance_factor, 150);
	assert_int_equal(b->params.stick_size, 1000);
	assert_int_equal(b->params.stick_timeout_ms, 600000);
	assert_string_equal(b->params.cookie_secret, "s3");
	assert_string_equal(b->cookie_name, "SRV");
	assert_int_equal(b->cookie_max_age_ms, 1800000);
	assert_int_equal(b->peek_max, 4096);
	assert_int_equal(b->timeouts.connect_ms, 2000);
	assert_int_equal(b->timeouts.client_ms, 60000);
	assert_int_equal(b->timeouts.server_ms, 500);
	assert_int_equal(b->timeouts.http_request_ms, 3000);
	assert_int_equal(b->params.retries, 4);
	assert_int_equal(b->health.type, CFG_CHECK_HTTP);
	assert_int_equal(b->params.health.interval_ms, 5000);
	assert_int_equal(b->params.health.rise, 3);
	assert_int_equal(b->params.health.fall, 4);
	assert_string_equal(b->health.path, "/hz");
	assert_string_equal(b->health.host, "app");
	assert_int_equal(b->health.expect_lo, 200);
	assert_int_equal(b->health.expect_hi, 299);
	assert_true(b->params.observe);
	assert_int_equal(b->health.on_down, CFG_ON_DOWN_CLOSE);
	assert_int_equal(b->nservers, 2);
	assert_int_equal(b->servers[0].weight, 3);
	assert_int_equal(b->servers[0].maxconn, 10);
	assert_true(b->servers[1].backup);
	cfg_free(c);
}

static void test_defaults(void **unused)
{
	struct tether_config *c = NULL;
	char *err = NULL;
	struct cfg_backend *b;

	assert_int_equal(cfg_load_string(FE BE(""), "t.conf", &c, &err), 0);
	b = &c->backends[0];
	assert_int_equal(c->global.workers, 1);
	assert_int_equal(c->global.maxconn, 20000);
	assert_string_equal(c->global.log, "stderr");
	assert_int_equal(c->global.drain_timeout_ms, 30000);
	assert_ptr_equal(b->algo, &lb_algo_roundrobin);
	assert_int_equal(b->timeouts.connect_ms, 5000);
	assert_int_equal(b->timeouts.client_ms, 30000);
	assert_int_equal(b->timeouts.server_ms, 30000);
	assert_int_equal(b->timeouts.http_request_ms, 5000);
	assert_int_equal(b->params.retries, 2);
	assert_int_equal(b->health.type, CFG_CHECK_NONE);
	assert_int_equal(b->params.health.interval_ms, 2000);
	assert_int_equal(b->params.health.rise, 2);
	assert_int_equal(b->params.health.fall, 3);
	assert_string_equal(b->cookie_name, "TETHERID");
	assert_int_equal(b->peek_max, 8192);
	assert_int_equal(b->params.stick_size, 0);
	assert_int_equal(b->params.table_size, 65537);
	assert_int_equal(b->servers[0].weight, 1);
	assert_string_equal(c->global.admin.path, "");
	cfg_free(c);
	/* admin: the string form is level admin, mode 0600; the group form */
	assert_int_equal(cfg_load_string("global = { admin = \"/tmp/a.sock\"; };\n" FE BE(""), "t.conf", &c, &err), 0);
	assert_string_equal(c->global.admin.path, "/tmp/a.sock");
	assert_int_equal(c->global.admin.mode, 0600);
	assert_int_equal(c->global.admin.level, CFG_LEVEL_ADMIN);
	assert_string_equal(c->global.admin.group, "");
	cfg_free(c);
	assert_int_equal(cfg_load_string("global = { admin = { path = \"/tmp/a.sock\"; mode = \"0660\"; group = \"adm\"; "
	                                 "level = \"user\"; }; };\n" FE BE(""), "t.conf", &c, &err), 0);
	assert_int_equal(c->global.admin.mode, 0660);
	assert_int_equal(c->global.admin.level, CFG_LEVEL_USER);
	assert_string_equal(c->global.admin.group, "adm");
	cfg_free(c);
}

struct bad_case {
	const char *text;
	const char *want;       /* exact error output */
};

static const struct bad_case bad[] = {
	{ FE BE("retries = 11;"), "t.conf:2: backends.[0].retries: must be 0..10" },
	{ FE BE("retries = 4294967298;"), "t.conf:2: retries: 4294967298 is too large (at most 2147483647)" },
	{ FE BE("retires = 1;"), "t.conf:2: backends.[0].retires: unknown setting \"retires\" (did you mean \"retries\"?)" },
	{ "global = { wrokers = 1; };\n" FE BE(""), "t.conf:1: global.wrokers: unknown setting \"wrokers\" (did you mean \"workers\"?)" },
	{ "colour = 1;\n" FE BE(""), "t.conf:1: colour: unknown setting \"colour\"" },
	{ FE BE("timeouts = { connect = \"2 s\"; };"),
	  "t.conf:2: backends.[0].timeouts.connect: \"2 s\" is not a duration such as \"500ms\", \"2s\", \"30m\", \"3h\"" },
	{ FE BE("timeouts = { client = 30; };"),
	  "t.conf:2: backends.[0].timeouts.client: must be a duration string with a unit, such as \"500ms\", \"2s\", \"30m\", \"3h\"" },
	{ FE BE("timeouts = { server = \"-1s\"; };"),
	  "t.conf:2: backends.[0].timeouts.server: \"-1s\" is not a duration such as \"500ms\", \"2s\", \"30m\", \"3h\"" },
	{ FE BE("timeouts = { connect = \"10x\"; };"),
	  "t.conf:2: backends.[0].timeouts.connect: \"10x\" is not a duration such as \"500ms\", \"2s\", \"30m\", \"3h\"" },
	{ FE "backends = ( { name = \"pods\"; servers = ( { name = \"a\"; address = \"127.0.0.1\"; } ); } );\n",
	  "t.conf:2: backends.[0].servers.[0].address: \"127.0.0.1\" is not an address like \"127.0.0.1:9001\" or \"[::1]:9001\"" },
	{ FE "backends = ( { name = \"pods\"; servers = ( { name = \"a\"; address = \"127.0.0.1:70000\"; } ); } );\n",
	  "t.conf:2: backends.[0].servers.[0].address: \"127.0.0.1:70000\" is not an address like \"127.0.0.1:9001\" or \"[::1]:9001\"" },
	{ FE "backends = ( { name = \"pods\"; servers = ( { name = \"a\"; address = \"localhost:80\"; } ); } );\n",
	  "t.conf:2: backends.[0].servers.[0].address: \"localhost:80\" is not an address like \"127.0.0.1:9001\" or \"[::1]:9001\"" },
	{ FE "backends = ( { name = \"pods\"; servers = ( { name = \"a\"; address = \"127.0.0.1:1\"; },\n"
	     "{ name = \"a\"; address = \"127.0.0.1:2\"; } ); } );\n",
	  "t.conf:3: backends.[0].servers.[1]: server name \"a\" is used twice in this backend" },
	{ FE "backends = ( { name = \"pods\"; " SRV " },\n  { name = \"pods\"; " SRV " } );\n",
	  "t.conf:3: backends.[1]: backend name \"pods\" is used twice" },
	{ "frontends = ( { name = \"web\"; bind = [ \"127.0.0.1:8080\" ]; backend = \"pods\"; },\n"
	  "  { name = \"web\"; bind = [ \"127.0.0.1:8081\" ]; backend = \"pods\"; } );\n" BE(""),
	  "t.conf:2: frontends.[1]: frontend name \"web\" is used twice" },
	{ "frontends = ( { name = \"web\"; bind = [ \"127.0.0.1:8080\" ]; backend = \"nope\"; } );\n" BE(""),
	  "t.conf:1: frontends.[0]: backend \"nope\" is not defined" },
	{ FE "backends = ( { name = \"pods\"; servers = ( { name = \"a\"; address = \"127.0.0.1:1\"; weight = 300; } ); } );\n",
	  "t.conf:2: backends.[0].servers.[0].weight: must be 0..256" },
	{ FE BE("iphash = { table_size = 65536; };"),
	  "t.conf:2: backends.[0].iphash.table_size: 65536 is not a prime <= 5000011 (Maglev needs a prime table size, e.g. 65537)" },
	{ FE BE("balance = \"random\";"),
	  "t.conf:2: backends.[0].balance: \"random\" is not one of roundrobin, leastconn, iphash, cookie" },
	{ FE BE("cookie = { fallback = \"cookie\"; };"),
	  "t.conf:2: backends.[0].cookie.fallback: \"cookie\" is not one of roundrobin, leastconn, iphash" },
	{ FE BE("health = { expect = \"2xy\"; };"),
	  "t.conf:2: backends.[0].health.expect: must be a status 100..599 or a class such as \"2xx\"" },
	{ FE BE("health = { expect = 700; };"),
	  "t.conf:2: backends.[0].health.expect: must be a status 100..599 or a class such as \"2xx\"" },
	{ "global = { workers = \"many\"; };\n" FE BE(""), "t.conf:1: global.workers: must be a number 1..64 or \"auto\"" },
	{ FE BE("retries = = 2;"), "t.conf:2: syntax error: syntax error" },
	{ FE BE("retries = \"2\";"), "t.conf:2: backends.[0].retries: must be an integer" },
	{ FE BE("iphash = { balance_factor = 100; };"),
	  "t.conf:2: backends.[0].iphash.balance_factor: must be 0 (off) or 101..1000 (125 = at most 1.25x the mean)" },
	{ FE BE("cookie = { name = \"a b\"; };"), "t.conf:2: backends.[0].cookie.name: \"a b\" is not a valid cookie name" },
	{ FE BE("health = { type = \"udp\"; };"), "t.conf:2: backends.[0].health.type: \"udp\" is not one of tcp, http" },
	{ FE BE("health = { observe = 1; };"), "t.conf:2: backends.[0].health.observe: must be true or false" },
	{ FE BE("health = { path = \"health\"; };"), "t.conf:2: backends.[0].health.path: must start with /" },
	{ BE(""), "t.conf:1: frontends: missing: at least one frontend is needed" },
	{ FE, "t.conf:1: backends: missing: at least one backend is needed" },
	{ FE "backends = ( { name = \"pods\"; servers = ( ); } );\n", "t.conf:2: backends.[0].servers: at least one server is needed" },
	{ "frontends = ( { name = \"web\"; bind = [ \"127.0.0.1:8080\", \"127.0.0.1:8080\" ]; backend = \"pods\"; } );\n" BE(""),
	  "t.conf:1: frontends.[0]: address 127.0.0.1:8080 is bound twice" },
	{ "frontends = ( { name = \"x y\"; bind = [ \"127.0.0.1:8080\" ]; backend = \"pods\"; } );\n" BE(""),
	  "t.conf:1: frontends.[0].name: \"x y\": names are 1..63 characters from A-Z a-z 0-9 . _ -" },
	{ FE "backends = ( { name = \"pods\"; servers = ( { address = \"127.0.0.1:1\"; } ); } );\n",
	  "t.conf:2: backends.[0].servers.[0]: missing \"name\"" },
	{ "global = { admin = { mode = \"0660\"; }; };\n" FE BE(""), "t.conf:1: global.admin: missing \"path\"" },
	{ "global = { admin = { path = \"/a\"; mode = \"0999\"; }; };\n" FE BE(""),
	  "t.conf:1: global.admin.mode: \"0999\" is not an octal mode like \"0660\" (at most \"0777\")" },
	{ "global = { admin = { path = \"/a\"; mode = \"1777\"; }; };\n" FE BE(""),
	  "t.conf:1: global.admin.mode: \"1777\" is not an octal mode like \"0660\" (at most \"0777\")" },
	{ "global = { admin = { path = \"/a\"; level = \"root\"; }; };\n" FE BE(""),
	  "t.conf:1: global.admin.level: \"root\" is not one of user, operator, admin" },
	{ "global = { metrics = \"127.0.0.1:8080\"; };\n" FE BE(""),
	  "t.conf:2: global.metrics: 127.0.0.1:8080 is also bound by frontend \"web\" (127.0.0.1:8080)" },
	{ "global = { metrics = \"*:8080\"; };\n" FE BE(""),
	  "t.conf:2: global.metrics: *:8080 is also bound by frontend \"web\" (127.0.0.1:8080)" },
	/* a string across lines, or with an escape, quoted in an error: still one line */
	{ FE "backends = ( { name = \"pods\"; servers = ( { name = \"a\"; address = \"127.0\n.0.1:1\x1b[2J\"; } ); } );\n",
	  "t.conf:2: backends.[0].servers.[0].address: \"127.0?.0.1:1?[2J\" is not an address like \"127.0.0.1:9001\" or \"[::1]:9001\"" },
	/* several errors are all reported, in file order */
	{ FE BE("retries = 11;\n  timeouts = { connect = \"1\"; };"),
	  "t.conf:2: backends.[0].retries: must be 0..10\n"
	  "t.conf:3: backends.[0].timeouts.connect: \"1\" is not a duration such as \"500ms\", \"2s\", \"30m\", \"3h\"" },
};

static void test_errors(void **unused)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tether_config *c = NULL;
		char *err = NULL;

		if (cfg_load_string(bad[i].text, "t.conf", &c, &err) == 0)
			fail_msg("case %zu loaded; want: %s", i, bad[i].want);
		assert_null(c);
		if (!err || strcmp(err, bad[i].want) != 0)
			fail_msg("case %zu:\n got: %s\nwant: %s", i, err ? err : "(null)", bad[i].want);
		free(err);
	}
}

static void test_durations_and_addresses(void **unused)
{
	uint64_t ms;
	struct cfg_addr a;

	assert_int_equal(cfg_parse_duration("500ms", &ms), 0);
	assert_int_equal(ms, 500);
	assert_int_equal(cfg_parse_duration("3h", &ms), 0);
	assert_int_equal(ms, 10800000);
	assert_int_equal(cfg_parse_duration("1d", &ms), 0);
	assert_int_equal(ms, 86400000);
	assert_int_not_equal(cfg_parse_duration("5", &ms), 0);
	assert_int_not_equal(cfg_parse_duration("", &ms), 0);
	assert_int_not_equal(cfg_parse_duration("s", &ms), 0);
	assert_int_not_equal(cfg_parse_duration("99999999999999999999s", &ms), 0);
	assert_int_equal(cfg_parse_addr("*:80", &a), 0);
	assert_int_equal(a.ss.ss_family, AF_INET);
	assert_int_equal(cfg_parse_addr("[::1]:80", &a), 0);
	assert_int_equal(a.ss.ss_family, AF_INET6);
	assert_int_not_equal(cfg_parse_addr("[::1]80", &a), 0);
	assert_int_not_equal(cfg_parse_addr("::1:80", &a), 0);
	assert_int_not_equal(cfg_parse_addr("1.2.3.4:0", &a), 0);
	assert_int_not_equal(cfg_parse_addr("1.2.3.4:", &a), 0);
}

static void check_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d))) {
		char path[1024];
		struct tether_config *c = NULL;
		char *err = NULL;
		size_t len = strlen(e->d_name);

		if (len < 5 || strcmp(e->d_name + len - 5, ".conf") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (cfg_load(path, &c, &err) != 0)
			fail_msg("%s", err);
		cfg_free(c);
		n++;
	}
	closedir(d);
	assert_true(n > 0);
}

static void test_shipped_files(void **unused)
{
	const char *src = getenv("TETHER_SRCDIR");
	char dir[900];
	struct tether_config *c = NULL;
	char *err = NULL;

	assert_non_null(src);
	snprintf(dir, sizeof(dir), "%s/conf", src);
	check_dir(dir);
	snprintf(dir, sizeof(dir), "%s/conf/examples", src);
	check_dir(dir);
	assert_int_equal(cfg_load("/nonexistent/t.conf", &c, &err), -ENOENT);
	assert_string_equal(err, "/nonexistent/t.conf: cannot read the file: No such file or directory");
	free(err);
	err = NULL;
	assert_int_equal(cfg_load(src, &c, &err), -EISDIR);
	assert_non_null(strstr(err, ": cannot read the file: Is a directory"));
	free(err);
	err = NULL;
	assert_int_equal(cfg_load_string("\xef\xbb\xbfglobal = {};", "bom.conf", &c, &err), -EINVAL);
	assert_string_equal(err, "bom.conf:1: the file starts with a UTF-8 byte order mark (BOM); save it without one");
	free(err);
}

/* A whole configuration with `setting` placed in the group at `path`
 * (a schema path such as "backends.[].health"). */
static void config_with(char *out, size_t cap, const char *path, const char *setting)
{
	const char *glob = "", *fe = "", *be = "", *srv = "", *sub = NULL, *addr = "address = \"127.0.0.1:9001\";";
	char subtext[256] = "", logtext[256];

	if (strcmp(path, "global") == 0) {
		glob = setting;
	} else if (strcmp(path, "global.log") == 0) {
		snprintf(logtext, sizeof(logtext), "log = { target = \"stderr\"; %s };", setting);
		glob = logtext;
	} else if (strcmp(path, "global.admin") == 0) {
		snprintf(logtext, sizeof(logtext), "admin = { path = \"/tmp/t.sock\"; %s };", setting);
		glob = logtext;
	} else if (strcmp(path, "frontends.[]") == 0)
		fe = setting;
	else if (strcmp(path, "backends.[]") == 0)
		be = setting;
	else if (strcmp(path, "backends.[].servers.[]") == 0) {
		srv = setting;
		/* the settings of a resolve entry, in one */
		if (strncmp(setting, "resolve", 7) == 0)
			addr = strstr(setting, "SRV") ? "address = \"_http._tcp.pods.example\";"
			                               : "address = \"pods.example:9001\";";
		else if (strncmp(setting, "interval", 8) == 0 || strncmp(setting, "max =", 5) == 0)
			addr = "resolve = \"A\"; address = \"pods.example:9001\";";
	}
	else if (strncmp(path, "backends.[].", 12) == 0)
		sub = path + 12;
	else
		fail_msg("no template for group %s", path);
	if (sub)
		snprintf(subtext, sizeof(subtext), "%s = { %s };", sub, setting);
	snprintf(out, cap,
	         "global = { %s };\n"
	         "frontends = ( { name = \"web\"; bind = [ \"127.0.0.1:8080\" ]; backend = \"pods\"; %s } );\n"
	         "backends = ( { name = \"pods\"; %s %s\n"
	         "  servers = ( { name = \"a\"; %s %s } ); } );\n",
	         glob, fe, be, subtext, addr, srv);
}

/* Loads text; returns NULL when it loads, else the errors (caller frees). */
static char *load_errors(const char *text)
{
	struct tether_config *c = NULL;
	char *err = NULL;

	if (cfg_load_string(text, "t.conf", &c, &err) == 0) {
		cfg_free(c);
		return NULL;
	}
	return err ? err : strdup("?");
}

static void value_text(char *out, size_t cap, const struct cfg_field *f, long long v)
{
	if (f->type == CT_DURATION)
		snprintf(out, cap, "%s = \"%lldms\";", f->name, v);
	else
		snprintf(out, cap, "%s = %lld;", f->name, v);
}

/* Every numeric setting of the schema: its minimum and maximum load (unless
 * further checks apply), one below and one above are refused with the
 * setting's name in the message.  Every enum takes each of its choices and
 * refuses another word.  Table-driven from the loader's own schema, so a
 * setting added there is checked here without a new line. */
static void test_schema_ranges(void **unused)
{
	int checked = 0;

	for (const struct cfg_group *g = cfg_schema(); g->path; g++)
		for (size_t i = 0; i < g->nfields; i++) {
			const struct cfg_field *f = &g->fields[i];
			char text[2048], set[160], *err;

			if (f->type == CT_INT || f->type == CT_DURATION || (f->flags & CF_NUMERIC)) {
				const long long probe[4] = { f->min, f->max, f->min - 1, f->max + 1 };

				for (int k = 0; k < 4; k++) {
					value_text(set, sizeof(set), f, probe[k]);
					config_with(text, sizeof(text), g->path, set);
					err = load_errors(text);
					if (k < 2 && err && !(f->flags & CF_FURTHER))
						fail_msg("%s.%s = %lld refused: %s", g->path, f->name, probe[k], err);
					if (k >= 2 && !err)
						fail_msg("%s.%s = %lld accepted", g->path, f->name, probe[k]);
					if (k >= 2 && !strstr(err, f->name))
						fail_msg("%s.%s = %lld: the error does not name it: %s", g->path, f->name,
						         probe[k], err);
					free(err);
				}
				checked++;
			} else if (f->type == CT_ENUM) {
				for (int k = 0; f->choices[k]; k++) {
					snprintf(set, sizeof(set), "%s = \"%s\";", f->name, f->choices[k]);
					config_with(text, sizeof(text), g->path, set);
					err = load_errors(text);
					if (err)
						fail_msg("%s.%s = %s refused: %s", g->path, f->name, f->choices[k], err);
				}
				snprintf(set, sizeof(set), "%s = \"bogus\";", f->name);
				config_with(text, sizeof(text), g->path, set);
				err = load_errors(text);
				assert_non_null(err);
				assert_non_null(strstr(err, "\"bogus\" is not one of"));
				free(err);
				checked++;
			}
		}
	assert_true(checked >= 25);
}

/* docs/configuration.md names every setting the loader knows. */
static void test_schema_documented(void **unused)
{
	const char *src = getenv("TETHER_SRCDIR");
	char path[1024], *doc;
	FILE *f;
	long n;

	assert_non_null(src);
	snprintf(path, sizeof(path), "%s/docs/configuration.md", src);
	f = fopen(path, "r");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	doc = calloc(1, (size_t)n + 1);
	assert_int_equal(fread(doc, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	for (const struct cfg_group *g = cfg_schema(); g->path; g++)
		for (size_t i = 0; i < g->nfields; i++) {
			char word[80];

			snprintf(word, sizeof(word), "%s", g->fields[i].name);
			if (!strstr(doc, word))
				fail_msg("docs/configuration.md does not mention %s.%s", g->path, word);
		}
	free(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_config),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_durations_and_addresses),
		cmocka_unit_test(test_shipped_files),
		cmocka_unit_test(test_schema_ranges),
		cmocka_unit_test(test_schema_documented),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
