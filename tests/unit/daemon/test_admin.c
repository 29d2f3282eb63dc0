/*
 * The runtime API's command parsing and answers (io/admin.c), on a
 * runtime without sockets: every command, its usage errors, and its effect.
 */
#include "util.h"

#include "admin.h"

struct fx {
	struct ev_loop *loop;
	struct t_log log;
	struct t_runtime rt;
	struct t_worker w;
	struct sbuf out;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char *err = NULL;
	struct t_gen *g;

	f->loop = ev_loop_new(EVFLAG_AUTO);
	log_init(&f->log, false);
	assert_int_equal(log_open(&f->log, "/dev/null", NULL, &err), 0);
	rt_init(&f->rt, &f->log, "t.conf", 1, 1);
	assert_int_equal(worker_init(&f->w, 0, f->loop, &f->rt, &f->log, &err), 0);
	f->w.peers = &f->w;
	f->w.npeers = 1;
	g = rt_gen_new(&f->rt, cfg_text(
		"global = { log = \"stderr\"; maxconn = 77; };\n"
		"frontends = ( { name = \"web\"; bind = [ \"127.0.0.1:1\" ]; backend = \"be\"; } );\n"
		"backends = ( { name = \"be\"; servers = ( { name = \"s1\"; address = \"127.0.0.1:2\"; },\n"
		"  { name = \"s2\"; address = \"127.0.0.1:3\"; weight = 4; } ); } );\n"), &err);
	assert_non_null(g);
	rt_install(&f->rt, g);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	sb_free(&f->out);
	worker_fini(&f->w);
	rt_fini(&f->rt);
	log_close(&f->log);
	ev_loop_destroy(f->loop);
	free(f);
	return 0;
}

/* The answer to line for a client of level (the buffer is reused). */
static const char *run_at(struct fx *f, int level, const char *line)
{
	f->out.len = 0;
	admin_exec(&f->w, level, line, &f->out);
	sb_printf(&f->out, "%s", "");
	return f->out.s;
}

static const char *run(struct fx *f, const char *line)
{
	return run_at(f, CFG_LEVEL_ADMIN, line);
}

static void test_usage_errors(void **state)
{
	struct fx *f = *state;
	static const struct { const char *line, *answer; } cases[] = {
		{ "", "ERR empty command\n" },
		{ "   ", "ERR empty command\n" },
		{ "frobnicate", "ERR unknown command (show, add, del, set, drain, enable, disable)\n" },
		{ "show", "ERR usage: show servers [BACKEND] | show info\n" },
		{ "show servers nope", "ERR no such backend\n" },
		{ "add server be", "ERR usage: add server BACKEND NAME ADDR [weight N]\n" },
		{ "add server be s3 127.0.0.1:4 weight", "ERR usage: add server BACKEND NAME ADDR [weight N]\n" },
		{ "add server be s3 127.0.0.1:4 weight x", "ERR weight must be 0..256\n" },
		{ "add server be s3 127.0.0.1:4 weight 300", "ERR weight must be 0..256\n" },
		{ "add server be s1 127.0.0.1:4", "ERR a server with this name exists\n" },
		{ "add server be s3 nowhere", "ERR bad address (want 127.0.0.1:9001 or [::1]:9001)\n" },
		{ "add server no s3 127.0.0.1:4", "ERR no such backend\n" },
		{ "del server be", "ERR usage: del|drain|enable|disable server BACKEND NAME\n" },
		{ "drain servers be s1", "ERR usage: del|drain|enable|disable server BACKEND NAME\n" },
		{ "disable server be nope", "ERR no such server\n" },
		{ "set weight be s1", "ERR usage: set weight BACKEND NAME N\n" },
		{ "set weight be s1 1x", "ERR weight must be 0..256\n" },
		{ "set weight be s1 -1", "ERR weight must be 0..256\n" },
		{ "set weight be nope 1", "ERR no such server\n" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (strcmp(run(f, cases[i].line), cases[i].answer) != 0)
			fail_msg("\"%s\": got \"%s\", want \"%s\"", cases[i].line, f->out.s, cases[i].answer);
}

static void test_effects(void **state)
{
	struct fx *f = *state;
	struct t_backend *be = f->rt.gen->backends;

	assert_string_equal(run(f, "show servers"), "# backend be (roundrobin) queue 0/1000\n"
	                    "s1 127.0.0.1:2 UP 1 0 0 0\ns2 127.0.0.1:3 UP 4 0 0 0\nOK\n");
	assert_string_equal(run(f, "set weight be s1 9"), "OK\n");
	assert_int_equal(be->servers[0].lb.weight, 9);
	assert_string_equal(run(f, "drain server be s1"), "OK\n");
	assert_string_equal(run(f, "disable server be s2"), "OK\n");
	assert_string_equal(run(f, "show servers be"), "# backend be (roundrobin) queue 0/1000\n"
	                    "s1 127.0.0.1:2 DRAIN 9 0 0 0\ns2 127.0.0.1:3 MAINT 4 0 0 0\nOK\n");
	assert_string_equal(run(f, "enable server be s2"), "OK\n");
	assert_int_equal(be->servers[1].lb.admin, LB_ADMIN_READY);
	assert_string_equal(run(f, "add server be s3 [::1]:9 weight 2"), "OK\n");
	assert_non_null(strstr(run(f, "show servers"), "s3 [::1]:9 UP 2 0 0 0\n"));
	assert_string_equal(run(f, "del server be s3"), "OK\n");
	assert_null(strstr(run(f, "show servers"), "s3"));
	assert_string_equal(run(f, "del server be s3"), "ERR no such server\n");
	/* show info: the fields operators script against */
	run(f, "show info");
	assert_non_null(strstr(f->out.s, "\nconfig t.conf\nactive_connections 0\nconnections_total 0\n"
	                       "queued_connections 0\nmaxconn 77\n"
	                       "reloads 0\nreload_failures 0\ngenerations 1\nworkers 1\n"
	                       "worker 0 active_connections 0 connections_total 0\nOK\n"));
	assert_memory_equal(f->out.s, "version ", 8);
	/* the queue: its length and max in show servers, the waiters in show info */
	be->queue_length = 3;
	assert_non_null(strstr(run(f, "show servers be"), "# backend be (roundrobin) queue 3/1000\n"));
	assert_non_null(strstr(run(f, "show info"), "\nqueued_connections 3\n"));
	be->queue_length = 0;
}

/* global.admin.level: user shows, operator also drains/enables/disables/
 * sets weights, admin also adds and deletes; a refused command changes
 * nothing and says why. */
static void test_levels(void **state)
{
	struct fx *f = *state;
	struct t_backend *be = f->rt.gen->backends;

	assert_non_null(strstr(run_at(f, CFG_LEVEL_USER, "show servers"), "s1 127.0.0.1:2 UP 1"));
	assert_non_null(strstr(run_at(f, CFG_LEVEL_USER, "show info"), "\nOK\n"));
	assert_string_equal(run_at(f, CFG_LEVEL_USER, "drain server be s1"),
	                    "ERR permission denied (level user; drain needs level operator)\n");
	assert_string_equal(run_at(f, CFG_LEVEL_USER, "set weight be s1 3"),
	                    "ERR permission denied (level user; set needs level operator)\n");
	assert_string_equal(run_at(f, CFG_LEVEL_USER, "disable server be s1"),
	                    "ERR permission denied (level user; disable needs level operator)\n");
	assert_int_equal(be->servers[0].lb.admin, LB_ADMIN_READY);
	assert_int_equal(be->servers[0].lb.weight, 1);
	assert_string_equal(run_at(f, CFG_LEVEL_OPERATOR, "add server be s3 127.0.0.1:4"),
	                    "ERR permission denied (level operator; add needs level admin)\n");
	assert_string_equal(run_at(f, CFG_LEVEL_OPERATOR, "del server be s1"),
	                    "ERR permission denied (level operator; del needs level admin)\n");
	assert_null(strstr(run(f, "show servers"), "s3"));
	assert_string_equal(run_at(f, CFG_LEVEL_OPERATOR, "set weight be s1 3"), "OK\n");
	assert_string_equal(run_at(f, CFG_LEVEL_OPERATOR, "drain server be s1"), "OK\n");
	assert_string_equal(run_at(f, CFG_LEVEL_OPERATOR, "enable server be s1"), "OK\n");
	assert_int_equal(be->servers[0].lb.weight, 3);
	/* an unknown command is unknown whatever the level */
	assert_string_equal(run_at(f, CFG_LEVEL_USER, "frobnicate"),
	                    "ERR unknown command (show, add, del, set, drain, enable, disable)\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_usage_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_effects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_levels, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
