/*
 * tether - active health checks: TCP connect, or HTTP GET with an expected
 * status.  Each server has one timer and at most one check socket.  The
 * result goes to srv_health_result(), i.e. the pure state machine of
 * health.h (rise/fall); the first check of each server is spread over one
 * interval so that checks of many servers do not fire together.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tether.h"

static void check_done(struct t_server *s, bool ok, const char *why)
{
	struct ev_loop *loop = s->be->t->loop;
	const struct hc_params *p = &s->be->cfg.health.hc;

	ev_io_stop(loop, &s->check_io);
	if (s->check_fd >= 0) {
		close(s->check_fd);
		s->check_fd = -1;
	}
	ev_timer_stop(loop, &s->check_timer);
	ev_timer_set(&s->check_timer, hc_next_delay_ms(p, &s->be->t->rng) / 1000.0, 0.);
	ev_timer_start(loop, &s->check_timer);
	srv_health_result(s, ok, why);
}

/* Parses "HTTP/1.x NNN" at the start of the answer; -1 while incomplete/invalid. */
static int status_of(const char *b, unsigned len)
{
	if (len < 12 || memcmp(b, "HTTP/1.", 7) != 0 || b[8] != ' ')
		return -1;
	for (int i = 9; i < 12; i++)
		if (b[i] < '0' || b[i] > '9')
			return -1;
	return (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
}

static void http_read(struct t_server *s)
{
	const struct cfg_health *h = &s->be->cfg.health;
	ssize_t n = recv(s->check_fd, s->check_buf + s->check_len, sizeof(s->check_buf) - 1 - s->check_len, 0);
	char why[64];
	int st;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		check_done(s, false, n == 0 ? "connection closed before a status" : strerror(errno));
		return;
	}
	s->check_len += (unsigned)n;
	st = status_of(s->check_buf, s->check_len);
	if (st < 0) {
		if (s->check_len >= 12)
			check_done(s, false, "not an HTTP response");
		return;
	}
	snprintf(why, sizeof(why), "HTTP %d", st);
	check_done(s, st >= h->expect_lo && st <= h->expect_hi, why);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct t_server *s = container_of(w, struct t_server, check_io);
	const struct cfg_health *h = &s->be->cfg.health;
	int err = 0;
	socklen_t len = sizeof(err);

	if (w->events & EV_READ) {
		http_read(s);
		return;
	}
	if (getsockopt(s->check_fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		check_done(s, false, strerror(err));
		return;
	}
	if (h->type == CFG_CHECK_TCP) {
		check_done(s, true, "connected");
		return;
	}
	{
		char req[640];
		int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: tether-check\r\n"
		                 "Connection: close\r\n\r\n", h->path, h->host[0] ? h->host : s->addr.text);

		if (n < 0 || (size_t)n >= sizeof(req) || send(s->check_fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
			check_done(s, false, "cannot send the request");
			return;
		}
	}
	s->check_len = 0;
	ev_io_stop(loop, w);
	ev_io_set(w, s->check_fd, EV_READ);
	ev_io_start(loop, w);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct t_server *s = container_of(w, struct t_server, check_timer);
	const struct hc_params *p = &s->be->cfg.health.hc;
	int fd;

	if (s->check_fd >= 0) {             /* the check in flight timed out */
		check_done(s, false, "timeout");
		return;
	}
	fd = socket(s->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		check_done(s, false, strerror(errno));
		return;
	}
	s->check_fd = fd;
	if (connect(fd, (const struct sockaddr *)&s->addr.ss, s->addr.len) < 0 && errno != EINPROGRESS) {
		check_done(s, false, strerror(errno));
		return;
	}
	ev_io_init(&s->check_io, io_cb, fd, EV_WRITE);
	ev_io_start(loop, &s->check_io);
	ev_timer_set(w, p->timeout_ms / 1000.0, 0.);
	ev_timer_start(loop, w);
}

void check_start(struct t_server *s)
{
	struct ev_loop *loop = s->be->t->loop;
	const struct hc_params *p = &s->be->cfg.health.hc;

	if (s->be->cfg.health.type == CFG_CHECK_NONE || ev_is_active(&s->check_timer))
		return;
	s->check_fd = -1;
	ev_init(&s->check_io, io_cb);
	ev_timer_init(&s->check_timer, timer_cb,
	              lb_rng_below(&s->be->t->rng, p->interval_ms ? p->interval_ms : 1) / 1000.0, 0.);
	ev_timer_start(loop, &s->check_timer);
}

void check_stop(struct t_server *s)
{
	struct ev_loop *loop;

	if (!s->be || !s->be->t || !s->be->t->loop)
		return;
	loop = s->be->t->loop;
	ev_timer_stop(loop, &s->check_timer);
	ev_io_stop(loop, &s->check_io);
	if (s->check_fd >= 0) {
		close(s->check_fd);
		s->check_fd = -1;
	}
}
