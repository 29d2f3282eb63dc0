/*
 * Helpers of the daemon's unit tests: configurations from text, loopback
 * listeners, and running a loop until something is true.  Header-only so
 * that each test program links only the layers it tests.
 */
#ifndef TETHER_TEST_DAEMON_UTIL_H
#define TETHER_TEST_DAEMON_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "tether/config.h"

/* A loaded configuration from printf-style text; fails the test on errors. */
__attribute__((format(printf, 1, 2), unused))
static struct tether_config *cfg_text(const char *fmt, ...)
{
	struct tether_config *c = NULL;
	char text[4096], *err = NULL;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (cfg_load_string(text, "t.conf", &c, &err) < 0)
		fail_msg("config: %s\n%s", err, text);
	return c;
}

/* A listening TCP socket on 127.0.0.1 and a free port; *port is its port. */
__attribute__((unused))
static int listen_any(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* A port nothing listens on (bound, then closed). */
__attribute__((unused))
static int closed_port(void)
{
	int port, fd = listen_any(&port);

	close(fd);
	return port;
}

__attribute__((unused))
static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
