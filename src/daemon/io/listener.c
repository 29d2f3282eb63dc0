/*
 * tether - listening sockets and the accept loop (see listener.h).
 */
#include <errno.h>
#include <fcntl.h>
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

static void accept_cb(struct poll_item *it, uint32_t events);

#define MAXCONN_RETRY 0.01       /* at maxconn, when a close elsewhere may free the slot: retry after */

static int listener_open(struct t_listener *l, bool reuseport, char **err)
{
	int one = 1, fd, rc;

	fd = socket(l->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto err;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto err;
	/* N workers: N sockets on one address, the kernel spreading connections */
	if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
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

/* The listeners of g that worker w runs: ls[bind * nworkers + w]. */
#define EACH_LISTENER(g, wid, l) \
	for (int fi_ = 0; fi_ < (g)->nfe; fi_++) \
		for (int bi_ = 0; bi_ < (g)->fe[fi_]->cfg.nbinds && \
		     ((l) = &(g)->fe[fi_]->ls[(unsigned)bi_ * (g)->rt->nworkers + (wid)], 1); bi_++)

/* accept = "shared": worker 0's socket of l's address. */
static int shared_fd(struct t_gen *g, const struct t_listener *l)
{
	size_t idx = (size_t)(l - l->fe->ls);   /* bind * nworkers + worker */

	return l->fe->ls[idx - idx % g->rt->nworkers].fd;
}

int listeners_open(struct t_runtime *rt, struct t_gen *g, char **err)
{
	bool shared = g->cfg->global.accept == CFG_ACCEPT_SHARED && rt->nworkers > 1;
	struct t_listener *l;
	int rc;

	for (unsigned w = 0; w < rt->nworkers; w++)
		EACH_LISTENER(g, w, l) {
			if (rt_listener_find(rt, &l->addr, w))
				continue;       /* taken over in listeners_switch */
			if (shared && w > 0) {
				/* the same socket (one accept queue), a descriptor of its own */
				l->fd = fcntl(shared_fd(g, l), F_DUPFD_CLOEXEC, 0);
				if (l->fd < 0)
					return tether_err(err, -errno, "cannot listen on %s: %s", l->addr.text, strerror(errno));
			} else if ((rc = listener_open(l, rt->nworkers > 1 && !shared, err)) < 0) {
				return rc;      /* rt_gen_free closes the ones opened */
			}
		}
	return 0;
}

static void listener_stop(struct t_listener *l)
{
	if (l->accepting && l->fd >= 0)
		poller_remove(&l->w->poller, l->fd);
	l->accepting = false;
}

static void listeners_start(struct t_worker *w, struct t_gen *g)
{
	bool exclusive = g->cfg->global.accept == CFG_ACCEPT_SHARED && g->rt->nworkers > 1;
	struct t_listener *l;

	EACH_LISTENER(g, w->id, l) {
		if (l->fd < 0 || l->accepting)
			continue;
		l->w = w;
		l->it.fn = accept_cb;
		if (poller_add_listener(&w->poller, l->fd, &l->it, exclusive) < 0) {
			log_printf(w->log, "cannot watch the listener on %s: %s", l->addr.text, strerror(errno));
			continue;
		}
		l->accepting = true;
	}
}

/* The running listener of worker w on addr in old, or NULL. */
static struct t_listener *same_addr(struct t_gen *old, unsigned w, const struct cfg_addr *addr)
{
	struct t_listener *l;

	EACH_LISTENER(old, w, l)
		if (l->fd >= 0 && l->addr.len == addr->len && memcmp(&l->addr.ss, &addr->ss, addr->len) == 0)
			return l;
	return NULL;
}

void listeners_switch(struct t_worker *w, void *gen)
{
	struct t_gen *g = gen, *old = w->gen;
	struct t_listener *l, *o;

	if (old) {
		EACH_LISTENER(g, w->id, l)
			if (l->fd < 0 && (o = same_addr(old, w->id, &l->addr))) {
				listener_stop(o);
				l->fd = o->fd;          /* the socket moves: no attempt is refused */
				o->fd = -1;
			}
		listeners_stop(w, NULL);
	}
	w->gen = g;
	w->accept_paused = false;
	if (!w->draining)
		listeners_start(w, g);
}

void listeners_stop(struct t_worker *w, void *unused)
{
	struct t_listener *l;

	if (!w->gen)
		return;
	EACH_LISTENER(w->gen, w->id, l)
		listener_stop(l);
}

void listeners_close(struct t_gen *g)
{
	for (int i = 0; i < g->nfe; i++)
		for (unsigned j = 0; j < (unsigned)g->fe[i]->cfg.nbinds * g->rt->nworkers; j++) {
			struct t_listener *l = &g->fe[i]->ls[j];

			if (l->fd >= 0)
				close(l->fd);
			l->fd = -1;
		}
}

/* Stops w's listeners of fe, or all of w's listeners when fe is NULL. */
static void pause_listeners(struct t_worker *w, const struct t_frontend *fe, double seconds)
{
	struct t_listener *l;

	if (fe) {
		EACH_LISTENER(w->gen, w->id, l)
			if (l->fe == fe)
				listener_stop(l);
	} else {
		listeners_stop(w, NULL);
	}
	w->accept_paused = true;
	if (seconds == 0 && (T_LOAD(&w->active) == 0 || w->rt->nworkers > 1))
		seconds = MAXCONN_RETRY;        /* the slot may free on another worker */
	if (seconds > 0) {
		ev_timer_stop(w->loop, &w->accept_timer);
		ev_timer_set(&w->accept_timer, seconds, 0.);
		ev_timer_start(w->loop, &w->accept_timer);
	}
}

void listener_pause(struct t_worker *w, double seconds)
{
	pause_listeners(w, NULL, seconds);
}

static void accept_cb(struct poll_item *it, uint32_t events)
{
	struct t_listener *l = container_of(it, struct t_listener, it);
	struct t_frontend *fe = l->fe;
	struct t_worker *w = l->w;
	struct t_runtime *rt = w->rt;

	for (int i = 0; i < ACCEPT_BATCH && l->accepting; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd;

		if (T_LOAD(&rt->active) >= fe->gen->cfg->global.maxconn) {
			listener_pause(w, 0);       /* resumed when a connection closes */
			return;
		}
		if (fe->cfg.maxconn && T_LOAD(&fe->active) >= fe->cfg.maxconn) {
			pause_listeners(w, fe, 0);  /* this frontend only: the others go on */
			return;
		}
		/* the spare first: what is accepted must be able to reach a server
		 * (out of descriptors for it: pause as for a failed accept) */
		if (!worker_spare_ready(w) && rt_errno_local(errno))
			fd = -1;
		else
			fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (rt_errno_local(errno)) {
				log_printf(w->log, "accept on %s: %s; pausing accepts for %.0f ms", l->addr.text,
				           strerror(errno), ACCEPT_PAUSE * 1000);
				listener_pause(w, ACCEPT_PAUSE);
			}
			return;     /* EAGAIN: drained */
		}
		proxy_accept(w, fe, fd, &ss);
	}
}

void listener_resume(struct t_worker *w)
{
	if (w->draining || !w->gen)
		return;
	w->accept_paused = false;
	listeners_start(w, w->gen);
}
