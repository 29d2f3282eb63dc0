/*
 * tether - active health checks (see check.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "pp.h"

/* Ends the check in flight (if any) and schedules the next one. */
static void check_next(struct t_server *s)
{
	struct t_check *c = &s->check;
	const struct hc_params *p = &s->be->pool.params.health;

	ev_io_stop(c->loop, &c->io);
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	ev_timer_stop(c->loop, &c->timer);
	ev_timer_set(&c->timer, hc_next_delay_ms(p, &s->be->gen->rt->rng) / 1000.0, 0.);
	ev_timer_start(c->loop, &c->timer);
}

static void check_done(struct t_server *s, bool ok, const char *why)
{
	check_next(s);
	rt_server_checked(s, ok, why);
}

/* The check could not even start for a local shortage (out of file
 * descriptors, buffers or ephemeral ports): says nothing about the server,
 * whose health stays as it is; counted, logged once, retried at the next
 * interval. */
static void check_local(struct t_server *s, int err)
{
	char what[160];

	snprintf(what, sizeof(what), "health check of %s/%s", s->be->cfg.name, s->lb.name);
	check_next(s);
	rt_local_error(s->be->gen->rt, what, err);
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
	struct t_check *c = &s->check;
	ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, 0);
	char why[64];
	int st;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		check_done(s, false, n == 0 ? "connection closed before a status" : strerror(errno));
		return;
	}
	c->len += (unsigned)n;
	st = status_of(c->buf, c->len);
	if (st < 0) {
		if (c->len >= 12)
			check_done(s, false, "not an HTTP response");
		return;
	}
	snprintf(why, sizeof(why), "HTTP %d", st);
	check_done(s, st >= h->expect_lo && st <= h->expect_hi, why);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct t_server *s = container_of(w, struct t_server, check.io);
	const struct cfg_health *h = &s->be->cfg.health;
	int err = 0;
	socklen_t len = sizeof(err);

	if (w->events & EV_READ) {
		http_read(s);
		return;
	}
	if (getsockopt(s->check.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
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
		int pp = 0, n;

		/* a server that wants a PROXY header wants it on checks too (spec 2.1) */
		if (s->be->cfg.send_proxy && (pp = pp_check_header(s->check.fd, s->be->cfg.send_proxy, req, 128)) < 0) {
			check_done(s, false, "cannot build the PROXY header");
			return;
		}
		n = snprintf(req + pp, sizeof(req) - (size_t)pp, "GET %s HTTP/1.0\r\nHost: %s\r\n"
		             "User-Agent: tether-check\r\nConnection: close\r\n\r\n", h->path,
		             h->host[0] ? h->host : s->addr.text);
		if (n < 0 || (size_t)n >= sizeof(req) - (size_t)pp)
			n = -1;
		else
			n += pp;
		if (n < 0 || send(s->check.fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
			check_done(s, false, "cannot send the request");
			return;
		}
	}
	s->check.len = 0;
	ev_io_stop(loop, w);
	ev_io_set(w, s->check.fd, EV_READ);
	ev_io_start(loop, w);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct t_server *s = container_of(w, struct t_server, check.timer);
	const struct hc_params *p = &s->be->pool.params.health;
	int fd;

	if (s->check.fd >= 0) {             /* the check in flight timed out */
		check_done(s, false, "timeout");
		return;
	}
	fd = socket(s->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		if (rt_errno_local(errno))
			check_local(s, errno);
		else
			check_done(s, false, strerror(errno));
		return;
	}
	s->check.fd = fd;
	if (connect(fd, (const struct sockaddr *)&s->addr.ss, s->addr.len) < 0 && errno != EINPROGRESS) {
		if (rt_errno_local(errno))
			check_local(s, errno);
		else
			check_done(s, false, strerror(errno));
		return;
	}
	rt_local_ok(s->be->gen->rt);
	ev_io_init(&s->check.io, io_cb, fd, EV_WRITE);
	ev_io_start(loop, &s->check.io);
	ev_timer_set(w, p->timeout_ms / 1000.0, 0.);
	ev_timer_start(loop, w);
}

void check_start(struct t_worker *w, struct t_server *s)
{
	struct t_check *c = &s->check;
	const struct hc_params *p = &s->be->pool.params.health;

	if (s->be->cfg.health.type == CFG_CHECK_NONE || c->loop)
		return;
	c->loop = w->loop;
	c->fd = -1;
	ev_init(&c->io, io_cb);
	ev_timer_init(&c->timer, timer_cb, lb_rng_below(&w->rt->rng, p->interval_ms ? p->interval_ms : 1) / 1000.0, 0.);
	ev_timer_start(c->loop, &c->timer);
}

void check_stop(struct t_server *s)
{
	struct t_check *c = &s->check;

	if (!c->loop)
		return;
	ev_timer_stop(c->loop, &c->timer);
	ev_io_stop(c->loop, &c->io);
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	c->loop = NULL;
}

void checks_start(struct t_worker *w, struct t_gen *g)
{
	for (struct t_backend *be = g->backends; be; be = be->next) {
		for (int i = 0; i < be->cfg_nservers; i++)
			if (!be->servers[i].deleted)
				check_start(w, &be->servers[i]);
		for (struct t_server *s = be->dynamic; s; s = s->next_dynamic)
			if (!s->deleted)
				check_start(w, s);
	}
}

void checks_stop(struct t_gen *g)
{
	for (struct t_backend *be = g->backends; be; be = be->next) {
		for (int i = 0; i < be->cfg_nservers; i++)
			check_stop(&be->servers[i]);
		for (struct t_server *s = be->dynamic; s; s = s->next_dynamic)
			check_stop(s);
	}
}
