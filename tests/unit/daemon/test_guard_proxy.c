/*
 * Guard of the idle timeout's promise (docs/configuration.md: "idle time on
 * the client side (no byte read from or written to it)") on the path a
 * loopback test cannot reach: a slow client behind a small socket buffer,
 * to which one read from the server is written in parts from tether's own
 * buffer for longer than the client timeout.  Each of those flushed writes
 * is activity; the client side must not time out while they go on.
 *
 * It reuses test_proxy.c's fixture (a real loop, the client one end of a
 * socketpair whose buffer sizes the test sets) by including it.
 */
int test_proxy_main(void);
#define main test_proxy_main
#include "test_proxy.c"
#undef main

/* As accept_client(), with small socket buffers on both ends. */
static void accept_slow_client(struct fx *f)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *a = (struct sockaddr_in *)&ss;
	int sv[2], small = 4096;

	memset(&ss, 0, sizeof(ss));
	a->sin_family = AF_INET;
	a->sin_port = htons(5556);
	inet_pton(AF_INET, "10.0.0.2", &a->sin_addr);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	f->client = sv[1];
	proxy_accept(&f->w, f->rt.gen->fe[0], sv[0], &ss);
}

static void test_flushed_writes_keep_the_client_alive(void **state)
{
	struct fx *f = *state;
	static char data[65536], buf[2048];
	char srv[128];
	size_t put = 0, got = 0;
	double t0, deadline;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)('a' + i % 23);
	snprintf(srv, sizeof(srv), "{ name = \"s1\"; address = \"127.0.0.1:%d\"; }", f->port);
	start(f, "timeouts = { client = \"300ms\"; server = \"10s\"; };", srv);
	accept_slow_client(f);
	run_until(f, server_accepted, NULL);
	while (put < sizeof(data)) {            /* one read's worth for tether, at once */
		ssize_t n = write(f->server, data + put, sizeof(data) - put);

		if (n > 0)
			put += (size_t)n;
		ev_run(f->loop, EVRUN_NOWAIT);
	}
	/* the client takes 2 kB every 20 ms: 64 kB last over 0.6 s, twice the timeout */
	t0 = now_s();
	deadline = t0 + 10;
	while (got < sizeof(data) && now_s() < deadline) {
		ssize_t n = read(f->client, buf, sizeof(buf));

		if (n == 0)
			break;
		if (n > 0) {
			assert_memory_equal(buf, data + got, (size_t)n);
			got += (size_t)n;
		}
		for (int i = 0; i < 4; i++)
			ev_run(f->loop, EVRUN_NOWAIT);
		usleep(20000);
	}
	if (got != sizeof(data))
		fail_msg("the client got %zu of %zu bytes in %.2f s: %s", got, sizeof(data), now_s() - t0, log_text(f));
	assert_true(now_s() - t0 > 0.3);        /* else the buffers took it all: nothing was tested */
	assert_null(strstr(log_text(f), "client-timeout"));
	close(f->client);
	close(f->server);
	f->client = f->server = -1;
	run_until(f, all_closed, NULL);
	assert_null(strstr(log_text(f), "timeout"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_flushed_writes_keep_the_client_alive, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
