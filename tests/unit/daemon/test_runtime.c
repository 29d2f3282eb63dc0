/*
 * The runtime alone (linked without the I/O modules, so a call from the
 * runtime up into them would not link): generations and their references,
 * what a reload carries over, the runtime API's operations, and outcomes
 * through the core's policy with the server_down hook.
 */
#include "util.h"

#include "runtime.h"

#define CONF \
	"global = { log = \"stderr\"; };\n" \
	"frontends = ( { name = \"web\"; bind = [ \"127.0.0.1:1\" ]; backend = \"be\"; } );\n" \
	"backends = ( { name = \"be\"; %s\n" \
	"  servers = ( { name = \"s1\"; address = \"127.0.0.1:2\"; }, { name = \"s2\"; address = \"127.0.0.1:3\"; } ); } );\n"

struct fx {
	struct t_log log;
	struct t_runtime rt;
	int downs;
	struct t_backend *down_be;
	uint32_t down_id;
};

static void hook_down(void *arg, struct t_backend *be, uint32_t id)
{
	struct fx *f = arg;

	f->downs++;
	f->down_be = be;
	f->down_id = id;
}

static struct t_gen *install(struct fx *f, const char *backend_extra)
{
	char *err = NULL;
	struct t_gen *g = rt_gen_new(&f->rt, cfg_text(CONF, backend_extra), &err);

	if (!g)
		fail_msg("rt_gen_new: %s", err);
	rt_install(&f->rt, g);
	return g;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char *err = NULL;

	log_init(&f->log, false);
	assert_int_equal(log_open(&f->log, "/dev/null", NULL, &err), 0);
	rt_init(&f->rt, &f->log, "t.conf", 1, 1);
	f->rt.hooks = (struct rt_hooks){ .server_down = hook_down, .arg = f };
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	rt_fini(&f->rt);
	log_close(&f->log);
	free(f);
	return 0;
}

static struct t_server *server(struct fx *f, const char *name)
{
	struct t_server *s = rt_server_lookup(&f->rt, "be", name, NULL);

	assert_non_null(s);
	return s;
}

/* A connection's reference keeps a retired generation alive, and only it. */
static void test_generation_references(void **state)
{
	struct fx *f = *state;
	struct t_gen *g1 = install(f, ""), *g2;

	assert_int_equal(rt_generations(&f->rt), 1);
	gen_get(g1);                            /* a connection on g1 */
	gen_get(g1);                            /* and another */
	g2 = install(f, "balance = \"leastconn\";");
	assert_ptr_equal(f->rt.gen, g2);
	assert_true(g1->retired);
	assert_false(g2->retired);
	assert_int_equal(rt_generations(&f->rt), 2);
	install(f, "");                         /* g2 goes at once: no connection holds it */
	assert_int_equal(rt_generations(&f->rt), 2);
	gen_put(g1);
	assert_int_equal(rt_generations(&f->rt), 2);
	gen_put(g1);                            /* the last connection of g1 */
	assert_int_equal(rt_generations(&f->rt), 1);
}

/* A reload keeps the health, admin state and counters of same-named servers. */
static void test_reload_carries_state(void **state)
{
	struct fx *f = *state;
	struct t_server *s1, *s2;

	install(f, "health = { type = \"tcp\"; rise = 2; fall = 2; };");
	s1 = server(f, "s1");
	rt_server_checked(s1, false, "refused");
	rt_server_checked(s1, false, "refused");
	assert_false(s1->lb.up);
	s1->connections_total = 7;
	rt_server_set_admin(&f->rt, server(f, "s2"), LB_ADMIN_DRAIN);
	install(f, "health = { type = \"tcp\"; rise = 2; fall = 2; };");
	s1 = server(f, "s1");
	s2 = server(f, "s2");
	assert_false(s1->lb.up);
	assert_string_equal(rt_server_state(s1), "DOWN");
	assert_int_equal(s1->lb.hc.transitions, 1);
	assert_int_equal(s1->connections_total, 7);
	assert_string_equal(s1->last_check, "refused");
	assert_string_equal(rt_server_state(s2), "DRAIN");
	/* a DOWN server needs `rise` successes in the new generation too */
	rt_server_checked(s1, true, "connected");
	assert_false(s1->lb.up);
	rt_server_checked(s1, true, "connected");
	assert_true(s1->lb.up);
}

/* What a retired generation's connections count after the reload reaches
 * the running generation's same-named objects when the retired one is
 * freed (through any number of reloads in between); a build that was never
 * installed hands nothing over. */
static void test_reload_hands_over_late_counts(void **state)
{
	struct fx *f = *state;
	struct t_gen *g1 = install(f, ""), *g;
	struct t_server *old = server(f, "s1"), *s;
	struct t_frontend *ofe = g1->fe[0];
	char *err = NULL;

	gen_get(g1);                            /* a connection on g1, across the reloads */
	old->bytes_in_total = 10;
	old->connections_total = 1;
	g1->backends->retries_total = 2;
	ofe->connections_total = 1;
	install(f, "");
	s = server(f, "s1");
	assert_int_equal(s->bytes_in_total, 10);
	T_ADD(&old->bytes_in_total, 5);         /* the connection goes on, on g1's objects */
	T_ADD(&g1->backends->retries_total, 1);
	T_ADD(&ofe->proxy_errors_total, 1);
	T_ADD(&s->bytes_in_total, 3);           /* new traffic on the running generation */
	install(f, "balance = \"leastconn\";");
	s = server(f, "s1");
	assert_int_equal(s->bytes_in_total, 13);
	T_ADD(&old->bytes_in_total, 4);
	gen_put(g1);                            /* its last connection ends */
	assert_int_equal(rt_generations(&f->rt), 1);
	assert_int_equal(s->bytes_in_total, 22);        /* 10 + 3 + the 5 + 4 counted on g1 */
	assert_int_equal(s->connections_total, 1);
	assert_int_equal(f->rt.gen->backends->retries_total, 3);
	assert_int_equal(f->rt.gen->fe[0]->proxy_errors_total, 1);
	assert_int_equal(f->rt.gen->fe[0]->connections_total, 1);

	/* a build that failed (never installed): the running counters stay its own */
	g1 = f->rt.gen;
	gen_get(g1);
	g = rt_gen_new(&f->rt, cfg_text(CONF, ""), &err);
	assert_non_null(g);
	rt_gen_free(g);
	old = server(f, "s1");
	assert_false(old->handed_over);
	/* the next file has no s1: its counts start again when it comes back */
	g = rt_gen_new(&f->rt, cfg_text("global = { log = \"stderr\"; };\n"
	                                "frontends = ( { name = \"web\"; bind = [ \"127.0.0.1:1\" ]; backend = \"be\"; } );\n"
	                                "backends = ( { name = \"be\"; servers = ( { name = \"s2\"; address = \"127.0.0.1:3\"; } ); } );\n"),
	               &err);
	assert_non_null(g);
	rt_install(&f->rt, g);
	T_ADD(&old->bytes_in_total, 100);
	install(f, "");
	gen_put(g1);
	assert_int_equal(server(f, "s1")->bytes_in_total, 0);
}

/* A server added to a generation being built (a reload carrying what DNS
 * found) inherits the running same-named server's state; a resolve entry
 * makes no server of its own. */
static void test_gen_server_add_inherits(void **state)
{
	struct fx *f = *state;
	const char *hc = "health = { type = \"tcp\"; rise = 2; fall = 2; };";
	struct t_server *d, *d2;
	struct t_gen *g;
	char *err = NULL;

	install(f, hc);
	assert_int_equal(rt_server_add(&f->rt, "be", "d-10.0.0.1-80", "10.0.0.1:80", 3, &d, &err), 0);
	assert_false(d->lb.up);                         /* checked first */
	rt_server_checked(d, true, "connected");
	rt_server_checked(d, true, "connected");
	assert_true(d->lb.up);
	d->connections_total = 5;
	g = rt_gen_new(&f->rt, cfg_text(CONF, hc), &err);
	assert_non_null(g);
	assert_int_equal(rt_gen_server_add(g, "be", "d-10.0.0.1-80", "10.0.0.1:80", 3, &d2, &err), 0);
	assert_int_equal(rt_gen_server_add(g, "nope", "x", "10.0.0.1:80", 1, &d2, &err), -ENOENT);
	free(err);
	err = NULL;
	rt_install(&f->rt, g);
	d2 = server(f, "d-10.0.0.1-80");
	assert_true(d2->lb.up);                         /* not DOWN until checked again */
	assert_int_equal(d2->connections_total, 5);
	assert_int_equal(d2->lb.weight, 3);
	/* a resolve entry is a name, not a server */
	g = rt_gen_new(&f->rt, cfg_text("%s", "global = { log = \"stderr\"; };\n"
	               "frontends = ( { name = \"web\"; bind = [ \"127.0.0.1:1\" ]; backend = \"be\"; } );\n"
	               "backends = ( { name = \"be\"; servers = ( { name = \"s1\"; address = \"127.0.0.1:2\"; },\n"
	               "  { name = \"dns\"; address = \"pods.example:80\"; resolve = \"A\"; } ); } );\n"), &err);
	assert_non_null(g);
	rt_install(&f->rt, g);
	assert_non_null(server(f, "s1"));
	assert_null(rt_server_lookup(&f->rt, "be", "dns", NULL));
	assert_int_equal(f->rt.gen->backends->pool.nservers, 1);
}

static void test_runtime_api(void **state)
{
	struct fx *f = *state;
	struct t_server *s = NULL;
	char *err = NULL;

	install(f, "");
#define EXPECT_ERR(call, code, msg) do { \
		assert_int_equal((call), code); \
		assert_string_equal(err, msg); \
		free(err); \
		err = NULL; \
	} while (0)
	EXPECT_ERR(rt_server_add(&f->rt, "nope", "s3", "127.0.0.1:4", 1, &s, &err), -ENOENT, "no such backend");
	EXPECT_ERR(rt_server_add(&f->rt, "be", "s 3", "127.0.0.1:4", 1, &s, &err), -EINVAL,
	           "server names are 1..63 characters from A-Z a-z 0-9 . _ -");
	EXPECT_ERR(rt_server_add(&f->rt, "be", "s1", "127.0.0.1:4", 1, &s, &err), -EEXIST,
	           "a server with this name exists");
	EXPECT_ERR(rt_server_add(&f->rt, "be", "s3", "localhost", 1, &s, &err), -EINVAL,
	           "bad address (want 127.0.0.1:9001 or [::1]:9001)");
	EXPECT_ERR(rt_server_add(&f->rt, "be", "s3", "127.0.0.1:4", 257, &s, &err), -EINVAL, "weight must be 0..256");
	assert_int_equal(rt_server_add(&f->rt, "be", "s3", "127.0.0.1:4", 5, &s, &err), 0);
	assert_true(s->lb.up);                  /* no checks: in service at once */
	assert_int_equal(s->lb.weight, 5);
	assert_int_equal(f->rt.gen->backends->pool.nservers, 3);
	EXPECT_ERR(rt_server_set_weight(&f->rt, s, 300, &err), -EINVAL, "weight must be 0..256");
	assert_int_equal(rt_server_set_weight(&f->rt, s, 2, &err), 0);
	assert_int_equal(s->lb.weight, 2);

	/* del: refused while it has connections and is in service */
	lb_conn_open(&s->be->pool, &s->lb);
	EXPECT_ERR(rt_server_del(&f->rt, s, &err), -EBUSY, "server still has connections: drain it first");
	rt_server_set_admin(&f->rt, s, LB_ADMIN_DRAIN);
	assert_int_equal(rt_server_del(&f->rt, s, &err), 0);
	assert_null(rt_server_lookup(&f->rt, "be", "s3", NULL));       /* gone for the API */
	assert_false(lb_server_eligible(&s->be->pool, &s->lb));        /* and for new connections */
	assert_int_equal(f->rt.gen->backends->pool.nservers, 3);       /* in the pool until its last connection */
	srv_conn_end(s);                        /* frees it (ASan would see a leak or a double free) */
	assert_int_equal(f->rt.gen->backends->pool.nservers, 2);
	assert_int_equal(rt_server_add(&f->rt, "be", "s3", "127.0.0.1:4", 1, &s, &err), 0);     /* the name is free */
	assert_int_equal(rt_server_del(&f->rt, s, &err), 0);           /* idle: freed at once */
	assert_int_equal(f->rt.gen->backends->pool.nservers, 2);
	EXPECT_ERR(rt_server_lookup(&f->rt, "be", "s3", &err) ? 0 : -ENOENT, -ENOENT, "no such server");
#undef EXPECT_ERR
}

/* Added to a checked backend: DOWN until `rise` checks passed. */
static void test_added_server_checked_first(void **state)
{
	struct fx *f = *state;
	struct t_server *s = NULL;

	install(f, "health = { type = \"tcp\"; rise = 2; fall = 3; };");
	assert_int_equal(rt_server_add(&f->rt, "be", "s3", "127.0.0.1:4", 1, &s, NULL), 0);
	assert_false(s->lb.up);
	rt_server_checked(s, true, "connected");
	assert_false(s->lb.up);
	rt_server_checked(s, true, "connected");
	assert_true(s->lb.up);
}

/* Observed connect failures take a server DOWN after `fall` of them, and
 * the hook closes its connections when on_down = "close" - in the running
 * generation only. */
static void test_observe_and_on_down_hook(void **state)
{
	struct fx *f = *state;
	struct t_server *s;
	struct t_gen *old;

	old = install(f, "health = { type = \"tcp\"; rise = 1; fall = 2; observe = true; on_down = \"close\"; };");
	s = server(f, "s1");
	for (int i = 0; i < 2; i++) {
		lb_conn_open(&s->be->pool, &s->lb);
		rt_attempt_failed(s, "refused");
	}
	assert_false(s->lb.up);
	assert_int_equal(s->connect_failures_total, 2);
	assert_int_equal(s->lb.active, 0);
	assert_int_equal(f->downs, 1);
	assert_ptr_equal(f->down_be, s->be);
	assert_int_equal(f->down_id, s->lb.id);
	/* a success only counts while UP: a DOWN server must pass the checks */
	rt_server_connected(s);
	assert_false(s->lb.up);

	/* the same in a retired generation: health changes, nobody is called */
	gen_get(old);                           /* a connection still on it */
	install(f, "health = { type = \"tcp\"; rise = 1; fall = 2; observe = true; on_down = \"close\"; };");
	s = &old->backends->servers[1];         /* s2 of the retired generation */
	assert_true(s->lb.up);
	for (int i = 0; i < 2; i++) {
		lb_conn_open(&s->be->pool, &s->lb);
		rt_attempt_failed(s, "refused");
	}
	assert_false(s->lb.up);
	assert_int_equal(f->downs, 1);
	gen_put(old);
}

struct waiter {
	struct rt_waiter qw;
	struct lb_key key;
	int woken;
};

static void woken(struct rt_waiter *qw)
{
	((struct waiter *)qw)->woken++;         /* qw is the first member */
}

static enum rt_wait attempt(struct t_backend *be, struct waiter *w, struct t_server **out)
{
	struct lb_rng rng;
	enum rt_wait why;

	lb_rng_seed(&rng, 1);
	memset(w, 0, sizeof(*w));
	w->qw.key = &w->key;
	w->qw.ready = woken;
	*out = rt_attempt(be, &w->key, 0, &rng, &w->qw, &why);
	return why;
}

/* Every server full: connections wait in order, a freed slot (a
 * connection's end, an enable, a weight, a server UP or added) goes to the
 * oldest at once, counted on its server; leaving gives back what was given;
 * queue.max bounds it, and max 0 is no queue. */
static void test_queue(void **state)
{
	struct fx *f = *state;
	struct waiter w[5];
	struct t_server *s1, *s2, *got, *add = NULL;
	struct t_backend *be;

	install(f, "queue = { max = 3; timeout = \"1s\"; }; health = { type = \"tcp\"; rise = 1; fall = 1; };");
	be = f->rt.gen->backends;
	s1 = server(f, "s1");
	s2 = server(f, "s2");
	s1->lb.maxconn = s2->lb.maxconn = 1;
	assert_non_null(attempt(be, &w[0], &got) == RT_NO_SERVER ? got : NULL);
	assert_non_null(attempt(be, &w[1], &got) == RT_NO_SERVER ? got : NULL);
	for (int i = 2; i < 5; i++) {
		assert_int_equal(attempt(be, &w[i], &got), RT_QUEUED);
		assert_null(got);
	}
	assert_int_equal(be->queue_length, 3);
	assert_int_equal(attempt(be, &(struct waiter){ 0 }, &got), RT_QUEUE_FULL);

	srv_conn_end(s1);                       /* a connection ends: the oldest gets its slot */
	assert_int_equal(w[2].woken, 1);
	assert_true(rt_waiter_given(&w[2].qw));
	assert_false(rt_waiter_given(&w[3].qw));
	assert_int_equal(s1->lb.active, 1);     /* counted on s1 already */
	assert_ptr_equal(rt_queue_take(be, &w[2].qw, false), s1);
	assert_int_equal(be->queue_length, 2);

	rt_server_set_admin(&f->rt, s2, LB_ADMIN_DISABLED);
	srv_conn_end(s2);                       /* s2 disabled: its freed slot is nobody's */
	assert_int_equal(w[3].woken, 0);
	rt_server_set_admin(&f->rt, s2, LB_ADMIN_READY);
	assert_int_equal(w[3].woken, 1);        /* enabled: the next one gets it */
	assert_ptr_equal(rt_queue_take(be, &w[3].qw, true), s2);

	rt_server_checked(s1, false, "down");   /* fall 1 */
	srv_conn_end(s1);
	assert_int_equal(w[4].woken, 0);
	rt_server_checked(s1, true, "up");      /* rise 1: UP with room */
	assert_int_equal(w[4].woken, 1);
	srv_conn_end(rt_queue_take(be, &w[4].qw, true));        /* its client went: the slot is given back */
	assert_int_equal(s1->lb.active, 0);
	assert_int_equal(be->queue_length, 0);

	/* leaving while still waiting; a server added serves the queue */
	lb_conn_open(&be->pool, &s1->lb);
	assert_int_equal(attempt(be, &w[0], &got), RT_QUEUED);
	assert_int_equal(attempt(be, &w[1], &got), RT_QUEUED);
	assert_null(rt_queue_take(be, &w[0].qw, true));
	assert_int_equal(be->queue_length, 1);
	assert_int_equal(rt_server_add(&f->rt, "be", "s3", "127.0.0.1:4", 1, &add, NULL), 0);
	assert_int_equal(w[1].woken, 0);        /* a checked backend: s3 is DOWN until checked */
	rt_server_checked(add, true, "connected");
	assert_int_equal(w[1].woken, 1);
	assert_ptr_equal(rt_queue_take(be, &w[1].qw, true), add);
	assert_int_equal(w[0].woken, 0);
	srv_conn_end(add);
	srv_conn_end(s1);
	srv_conn_end(s2);
	assert_int_equal(be->queued_total, 5);

	/* queue.max = 0: no queue, as before queues existed */
	install(f, "queue = { max = 0; };");
	be = f->rt.gen->backends;
	s1 = server(f, "s1");
	s2 = server(f, "s2");
	s1->lb.maxconn = s2->lb.maxconn = 1;
	lb_conn_open(&be->pool, &s1->lb);
	lb_conn_open(&be->pool, &s2->lb);
	assert_int_equal(attempt(be, &w[0], &got), RT_NO_SERVER);
	assert_null(got);
	srv_conn_end(s1);
	srv_conn_end(s2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_generation_references, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_carries_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_hands_over_late_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gen_server_add_inherits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_runtime_api, setup, teardown),
		cmocka_unit_test_setup_teardown(test_added_server_checked_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_observe_and_on_down_hook, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
