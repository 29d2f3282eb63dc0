/*
 * tether - listening sockets and the accept loop (see listener.h).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listener.h"
#include "proxy.h"
#include "tether/err.h"

#define ACCEPT_BATCH 64         /* fairness between listeners and relays */
#define ACCEPT_PAUSE 0.1        /* seconds to back off when out of fds */
#define LISTEN_BACKLOG 4096     /* capped by net.core.somaxconn */

static int listener_open(struct t_listener *l, char **err)
{
	int one = 1, fd, rc;

	fd = socket(l->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto err;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto err;
	if (l->addr.ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		goto err;
	/* Accepted sockets inherit TCP_NODELAY from the listener (Linux), so
	 * a connection costs no setsockopt for it. */
	if (l->addr.ss.ss_family != AF_UNIX && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		goto err;
	if (bind(fd, (const struct sockaddr *)&l->addr.ss, l->addr.len) < 0)
		goto err;
	if (listen(fd, LISTEN_BACKLOG) < 0)
		goto err;
	l->fd = fd;
	return 0;
err:
	rc = tether_err(err, -errno, "cannot listen on %s: %s", l->addr.text, strerror(errno));
	if (fd >= 0)
		close(fd);
	l->fd = -1;
	return rc;
}

int listeners_open(struct t_runtime *rt, struct t_gen *g, char **err)
{
	for (int i = 0; i < g->nfe; i++)
		for (int j = 0; j < g->fe[i]->cfg.nbinds; j++) {
			struct t_listener *l = &g->fe[i]->ls[j];
			int rc;

			if (!rt_listener_find(rt, &l->addr) && (rc = listener_open(l, err)) < 0)
				return rc;      /* rt_gen_free closes the ones opened */
		}
	for (int i = 0; i < g->nfe; i++)
		for (int j = 0; j < g->fe[i]->cfg.nbinds; j++) {
			struct t_listener *l = &g->fe[i]->ls[j], *old;

			if (l->fd >= 0 || !(old = rt_listener_find(rt, &l->addr)))
				continue;
			if (old->w)
				ev_io_stop(old->w->loop, &old->io);     /* the fd moves to g */
			l->fd = old->fd;
			old->fd = -1;
		}
	return 0;
}

static void listener_stop(struct t_listener *l)
{
	if (l->w && ev_is_active(&l->io))
		ev_io_stop(l->w->loop, &l->io);
}

void listeners_close(struct t_gen *g)
{
	for (int i = 0; i < g->nfe; i++)
		for (int j = 0; j < g->fe[i]->cfg.nbinds; j++) {
			struct t_listener *l = &g->fe[i]->ls[j];

			listener_stop(l);
			if (l->fd >= 0)
				close(l->fd);
			l->fd = -1;
		}
}

void listener_pause(struct t_worker *w, double seconds)
{
	struct t_gen *g = w->rt->gen;

	for (int i = 0; i < g->nfe; i++)
		for (int j = 0; j < g->fe[i]->cfg.nbinds; j++)
			listener_stop(&g->fe[i]->ls[j]);
	w->accept_paused = true;
	if (seconds > 0) {
		ev_timer_stop(w->loop, &w->accept_timer);
		ev_timer_set(&w->accept_timer, seconds, 0.);
		ev_timer_start(w->loop, &w->accept_timer);
	}
}

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct t_listener *l = container_of(io, struct t_listener, io);
	struct t_frontend *fe = l->fe;
	struct t_worker *w = l->w;
	struct t_runtime *rt = w->rt;

	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd;

		if (rt->active >= rt->gen->cfg->global.maxconn || (fe->cfg.maxconn && fe->active >= fe->cfg.maxconn)) {
			listener_pause(w, 0);       /* resumed when a connection closes */
			return;
		}
		fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				log_printf(w->log, "accept on %s: %s; pausing accepts for %.0f ms", l->addr.text,
				           strerror(errno), ACCEPT_PAUSE * 1000);
				listener_pause(w, ACCEPT_PAUSE);
			}
			return;     /* EAGAIN: drained */
		}
		proxy_accept(w, fe, fd, &ss);
	}
}

void listeners_start(struct t_worker *w, struct t_gen *g)
{
	for (int i = 0; i < g->nfe; i++)
		for (int j = 0; j < g->fe[i]->cfg.nbinds; j++) {
			struct t_listener *l = &g->fe[i]->ls[j];

			if (l->fd < 0 || ev_is_active(&l->io))
				continue;
			l->w = w;
			ev_io_init(&l->io, accept_cb, l->fd, EV_READ);
			ev_io_start(w->loop, &l->io);
		}
}

void listener_resume(struct t_worker *w)
{
	if (w->draining)
		return;
	w->accept_paused = false;
	listeners_start(w, w->rt->gen);
}
