/*
 * The connection state machine (io/proxy.c, relay.c, proxy_http.c) on a
 * real loop, without listeners: the client is one end of a socketpair
 * handed to proxy_accept, servers are loopback listeners of the test.
 * Transitions: connect -> relay -> half-close -> close; a refused connect
 * retried on another server; no usable server; an idle timeout; cookie
 * mode's head routing and Set-Cookie insertion.
 */
#include <fcntl.h>
#include <signal.h>

#include "util.h"

#include "proxy.h"
#include "worker.h"

struct fx {
	struct ev_loop *loop;
	struct t_log log;
	char logpath[64];
	struct t_runtime rt;
	struct t_worker w;
	int lfd, port;          /* the server the test plays */
	int client;             /* the test's end of the client socketpair */
	int server;             /* the accepted server connection, -1 before */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char *err = NULL;
	int fd;

	f->loop = ev_loop_new(EVFLAG_AUTO);
	snprintf(f->logpath, sizeof(f->logpath), "/tmp/tether-test-proxy-XXXXXX");
	fd = mkstemp(f->logpath);
	assert_true(fd >= 0);
	close(fd);
	log_init(&f->log, false);
	assert_int_equal(log_open(&f->log, f->logpath, NULL, &err), 0);
	rt_init(&f->rt, &f->log, "t.conf", 1, 1);
	assert_int_equal(worker_init(&f->w, 0, f->loop, &f->rt, &f->log, &err), 0);
	f->lfd = listen_any(&f->port);
	fcntl(f->lfd, F_SETFL, O_NONBLOCK);
	f->client = f->server = -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	worker_fini(&f->w);
	rt_fini(&f->rt);
	log_close(&f->log);
	unlink(f->logpath);
	ev_loop_destroy(f->loop);
	close(f->lfd);
	if (f->client >= 0)
		close(f->client);
	if (f->server >= 0)
		close(f->server);
	free(f);
	return 0;
}

/* Builds and installs a generation: one backend with the given servers. */
static void start(struct fx *f, const char *balance_extra, const char *servers)
{
	char *err = NULL;
	struct t_gen *g = rt_gen_new(&f->rt, cfg_text(
		"global = { log = \"stderr\"; };\n"
		"frontends = ( { name = \"web\"; bind = [ \"127.0.0.1:1\" ]; backend = \"be\"; } );\n"
		"backends = ( { name = \"be\"; %s servers = ( %s ); } );\n", balance_extra, servers), &err);

	if (!g)
		fail_msg("%s", err);
	rt_install(&f->rt, g);
}

/* A client connection from 10.0.0.1:5555 accepted by the proxy. */
static void accept_client(struct fx *f)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *a = (struct sockaddr_in *)&ss;
	int sv[2];

	memset(&ss, 0, sizeof(ss));
	a->sin_family = AF_INET;
	a->sin_port = htons(5555);
	inet_pton(AF_INET, "10.0.0.1", &a->sin_addr);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	f->client = sv[1];
	proxy_accept(&f->w, f->rt.gen->fe[0], sv[0], &ss);
}

typedef bool (*pred_fn)(struct fx *f, void *arg);

/* Runs the loop until pred holds (fails the test after 3 s). */
static void run_until(struct fx *f, pred_fn pred, void *arg)
{
	double end = now_s() + 3;

	while (!pred(f, arg)) {
		if (now_s() > end)
			fail_msg("timed out waiting");
		ev_run(f->loop, EVRUN_NOWAIT);
		usleep(500);
	}
}

static bool server_accepted(struct fx *f, void *arg)
{
	if (f->server < 0)
		f->server = accept4(f->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	return f->server >= 0;
}

struct rd {
	int fd;
	char buf[1024];
	size_t len;
	bool eof;
};

static bool read_some(struct fx *f, void *arg)
{
	struct rd *r = arg;
	ssize_t n = read(r->fd, r->buf + r->len, sizeof(r->buf) - 1 - r->len);

	if (n > 0)
		r->len += (size_t)n;
	if (n == 0)
		r->eof = true;
	r->buf[r->len] = '\0';
	return n > 0 || n == 0;
}

static bool read_eof(struct fx *f, void *arg)
{
	struct rd *r = arg;

	read_some(f, arg);
	return r->eof;
}

static bool all_closed(struct fx *f, void *arg)
{
	return f->rt.active == 0 && !f->w.dead;
}

static char *log_text(struct fx *f)
{
	static char text[8192];
	FILE *fp;
	size_t n;

	log_flush(&f->log);
	fp = fopen(f->logpath, "r");
	assert_non_null(fp);
	n = fread(text, 1, sizeof(text) - 1, fp);
	text[n] = '\0';
	fclose(fp);
	return text;
}

static void test_relay_half_close(void **state)
{
	struct fx *f = *state;
	struct rd r = { 0 };
	char srv[64];

	snprintf(srv, sizeof(srv), "{ name = \"s1\"; address = \"127.0.0.1:%d\"; }", f->port);
	start(f, "", srv);
	accept_client(f);
	assert_int_equal(f->rt.active, 1);
	assert_int_equal(write(f->client, "ping", 4), 4);
	run_until(f, server_accepted, NULL);
	r.fd = f->server;
	run_until(f, read_some, &r);
	assert_string_equal(r.buf, "ping");
	assert_int_equal(write(f->server, "pong!", 5), 5);
	memset(&r, 0, sizeof(r));
	r.fd = f->client;
	run_until(f, read_some, &r);
	assert_string_equal(r.buf, "pong!");
	/* the client half-closes: the server sees the end, and can still answer */
	shutdown(f->client, SHUT_WR);
	memset(&r, 0, sizeof(r));
	r.fd = f->server;
	run_until(f, read_eof, &r);
	assert_int_equal(write(f->server, "bye", 3), 3);
	close(f->server);
	f->server = -1;
	memset(&r, 0, sizeof(r));
	r.fd = f->client;
	run_until(f, read_eof, &r);
	assert_string_equal(r.buf, "bye");
	run_until(f, all_closed, NULL);
	assert_non_null(strstr(log_text(f), "10.0.0.1:5555 web be/s1 "));
	assert_non_null(strstr(log_text(f), " in=4 out=8 end=client-closed"));
	assert_int_equal(f->rt.gen->backends->servers[0].bytes_in_total, 4);
	assert_int_equal(f->rt.gen->backends->servers[0].bytes_out_total, 8);
	assert_int_equal(f->rt.gen->backends->servers[0].lb.active, 0);
}

static void test_refused_then_retried(void **state)
{
	struct fx *f = *state;
	struct t_backend *be;
	char srv[160];

	snprintf(srv, sizeof(srv), "{ name = \"dead\"; address = \"127.0.0.1:%d\"; },"
	         "{ name = \"live\"; address = \"127.0.0.1:%d\"; }", closed_port(), f->port);
	start(f, "balance = \"leastconn\"; retries = 1;", srv);
	be = f->rt.gen->backends;
	/* leastconn ties rotate: force the dead one first by weight */
	lb_server_set_weight(&be->pool, &be->servers[1].lb, 0);
	accept_client(f);
	lb_server_set_weight(&be->pool, &be->servers[1].lb, 1);
	run_until(f, server_accepted, NULL);
	assert_int_equal(be->servers[0].connect_failures_total, 1);
	assert_int_equal(be->retries_total, 1);
	assert_int_equal(be->servers[1].lb.active, 1);
	assert_int_equal(be->servers[0].lb.active, 0);
}

static void test_no_server(void **state)
{
	struct fx *f = *state;
	struct t_backend *be;
	struct rd r = { 0 };
	char srv[64];

	snprintf(srv, sizeof(srv), "{ name = \"s1\"; address = \"127.0.0.1:%d\"; }", f->port);
	start(f, "", srv);
	be = f->rt.gen->backends;
	lb_server_set_up(&be->pool, &be->servers[0].lb, false);
	accept_client(f);
	r.fd = f->client;
	run_until(f, read_eof, &r);
	run_until(f, all_closed, NULL);
	assert_int_equal(be->no_server_total, 1);
	assert_non_null(strstr(log_text(f), "be/- connect=-1.0ms"));
	assert_non_null(strstr(log_text(f), "end=no-server"));
}

static void test_client_idle_timeout(void **state)
{
	struct fx *f = *state;
	char srv[128];

	snprintf(srv, sizeof(srv), "{ name = \"s1\"; address = \"127.0.0.1:%d\"; }", f->port);
	start(f, "timeouts = { client = \"100ms\"; server = \"10s\"; };", srv);
	accept_client(f);
	run_until(f, server_accepted, NULL);
	run_until(f, all_closed, NULL);
	assert_non_null(strstr(log_text(f), "end=client-timeout"));
}

static void test_cookie_mode(void **state)
{
	struct fx *f = *state;
	struct rd r = { 0 };
	static const char req[] = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
	static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	char srv[64], want[128];
	const char *cookie;

	snprintf(srv, sizeof(srv), "{ name = \"s1\"; address = \"127.0.0.1:%d\"; }", f->port);
	start(f, "balance = \"cookie\"; cookie = { secret = \"k\"; };", srv);
	accept_client(f);
	/* the head in two pieces: no server is chosen before it is complete */
	assert_int_equal(write(f->client, req, 10), 10);
	ev_run(f->loop, EVRUN_NOWAIT);
	assert_false(server_accepted(f, NULL));
	assert_int_equal(write(f->client, req + 10, sizeof(req) - 11), (ssize_t)sizeof(req) - 11);
	run_until(f, server_accepted, NULL);
	r.fd = f->server;
	run_until(f, read_some, &r);
	assert_string_equal(r.buf, req);
	assert_int_equal(write(f->server, resp, sizeof(resp) - 1), (ssize_t)sizeof(resp) - 1);
	memset(&r, 0, sizeof(r));
	r.fd = f->client;
	while (!strstr(r.buf, "ok"))
		run_until(f, read_some, &r);
	cookie = f->rt.gen->backends->servers[0].lb.cookie;
	snprintf(want, sizeof(want), "HTTP/1.1 200 OK\r\nSet-Cookie: TETHERID=%s; Path=/; HttpOnly\r\n", cookie);
	assert_memory_equal(r.buf, want, strlen(want));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_relay_half_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_then_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_server, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_idle_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cookie_mode, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
