/*
 * Two complete tether instances in one process, each with its own loop,
 * listeners, admin socket and metrics port: nothing in the daemon is
 * global.  Both balance to one server the test plays; each proxies its own
 * client, answers its own runtime-API commands, reloads alone, and both
 * free everything (ASan/valgrind check that).
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/un.h>

#include "util.h"

#include "daemon.h"

struct inst {
	struct tether t;
	int port, mport;
	char dir[64], conf[96], sock[96];
};

static void write_conf(struct inst *in, int server_port, const char *balance)
{
	FILE *fp = fopen(in->conf, "w");

	assert_non_null(fp);
	fprintf(fp, "global = { log = \"%s/log\"; admin = \"%s\"; metrics = \"127.0.0.1:%d\"; };\n"
	        "frontends = ( { name = \"web\"; bind = [ \"127.0.0.1:%d\" ]; backend = \"be\"; } );\n"
	        "backends = ( { name = \"be\"; balance = \"%s\";\n"
	        "  servers = ( { name = \"s1\"; address = \"127.0.0.1:%d\"; } ); } );\n",
	        in->dir, in->sock, in->mport, in->port, balance, server_port);
	fclose(fp);
}

static void start(struct inst *in, int server_port)
{
	struct tether_config *cfg = NULL;
	char *err = NULL;

	snprintf(in->dir, sizeof(in->dir), "/tmp/tether-inst-XXXXXX");
	assert_non_null(mkdtemp(in->dir));
	snprintf(in->conf, sizeof(in->conf), "%s/t.conf", in->dir);
	snprintf(in->sock, sizeof(in->sock), "%s/admin.sock", in->dir);
	in->port = closed_port();
	in->mport = closed_port();
	write_conf(in, server_port, "roundrobin");
	if (cfg_load(in->conf, &cfg, &err) < 0)
		fail_msg("%s", err);
	if (tether_start(&in->t, cfg, in->conf, 0, &err) < 0)
		fail_msg("tether_start: %s", err);
}

static void stop(struct inst *in)
{
	char path[128];

	tether_free(&in->t);
	snprintf(path, sizeof(path), "%s/log", in->dir);
	unlink(path);
	unlink(in->conf);
	rmdir(in->dir);
}

/* Runs both loops once. */
static void step(struct inst *a, struct inst *b)
{
	ev_run(a->t.loop, EVRUN_NOWAIT);
	ev_run(b->t.loop, EVRUN_NOWAIT);
	usleep(500);
}

static int connect_to(int port, bool unix_sock, const char *path)
{
	int fd;

	if (unix_sock) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };

		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
		assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	} else {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
		                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	}
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

/* Reads from fd, stepping both loops, until `want` is in what was read. */
static void expect(struct inst *a, struct inst *b, int fd, const char *want)
{
	char buf[2048];
	size_t len = 0;
	double end = now_s() + 3;

	buf[0] = '\0';
	while (!strstr(buf, want)) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);

		if (n > 0) {
			len += (size_t)n;
			buf[len] = '\0';
		}
		if (now_s() > end)
			fail_msg("waiting for \"%s\", got \"%s\"", want, buf);
		step(a, b);
	}
}

static int accept_one(struct inst *a, struct inst *b, int lfd)
{
	double end = now_s() + 3;
	int fd;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) < 0) {
		if (now_s() > end)
			fail_msg("no connection reached the server");
		step(a, b);
	}
	return fd;
}

static void test_two_instances(void **unused)
{
	struct inst a, b;
	int sport, lfd = listen_any(&sport), ca, cb, sa, sb, adm;

	fcntl(lfd, F_SETFL, O_NONBLOCK);
	start(&a, sport);
	start(&b, sport);
	/* each proxies its own client to the server */
	ca = connect_to(a.port, false, NULL);
	sa = accept_one(&a, &b, lfd);
	cb = connect_to(b.port, false, NULL);
	sb = accept_one(&a, &b, lfd);
	assert_int_equal(write(ca, "from-a", 6), 6);
	assert_int_equal(write(cb, "from-b", 6), 6);
	expect(&a, &b, sa, "from-a");
	expect(&a, &b, sb, "from-b");
	assert_int_equal(a.t.rt.active, 1);
	assert_int_equal(b.t.rt.active, 1);
	/* each answers its own runtime API */
	adm = connect_to(0, true, a.sock);
	assert_int_equal(write(adm, "drain server be s1\n", 19), 19);
	expect(&a, &b, adm, "OK\n");
	close(adm);
	assert_int_equal(a.t.rt.gen->backends->servers[0].lb.admin, LB_ADMIN_DRAIN);
	assert_int_equal(b.t.rt.gen->backends->servers[0].lb.admin, LB_ADMIN_READY);
	adm = connect_to(b.mport, false, NULL);
	assert_int_equal(write(adm, "GET /stats HTTP/1.0\r\n\r\n", 23), 23);
	expect(&a, &b, adm, "\"active_connections\":1,");
	close(adm);
	/* one reloads, the other does not notice */
	write_conf(&a, sport, "leastconn");
	tether_reload(&a.t);
	assert_int_equal(a.t.rt.reloads_total, 1);
	assert_int_equal(b.t.rt.reloads_total, 0);
	assert_int_equal(rt_generations(&a.t.rt), 2);      /* the old one still carries ca */
	assert_string_equal(a.t.rt.gen->backends->pool.algo->name, "leastconn");
	assert_string_equal(b.t.rt.gen->backends->pool.algo->name, "roundrobin");
	close(ca);
	close(sa);
	close(cb);
	close(sb);
	stop(&a);
	stop(&b);
	close(lfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_instances),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
