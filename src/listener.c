/*
 * tether - listening sockets and the accept loop.
 *
 * accept4() runs in a bounded batch per readiness event.  When the process
 * runs out of descriptors (EMFILE/ENFILE) or memory, accepting pauses for
 * ACCEPT_PAUSE seconds instead of spinning on a listener that stays
 * readable; it also pauses at global maxconn and resumes when a connection
 * closes (tether_accept_resume).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tether.h"

#define ACCEPT_BATCH 64         /* fairness between listeners and relays */
#define ACCEPT_PAUSE 0.1        /* seconds to back off when out of fds */
#define LISTEN_BACKLOG 4096     /* capped by net.core.somaxconn */

void addr_format(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &s->sin_addr, host, sizeof(host));
		snprintf(out, cap, "%s:%u", host, ntohs(s->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof(host));
		snprintf(out, cap, "[%s]:%u", host, ntohs(s->sin6_port));
	} else {
		snprintf(out, cap, "unix");
	}
}

int listener_open(struct t_listener *l, char **err)
{
	int one = 1, fd;
	char msg[256];

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
	snprintf(msg, sizeof(msg), "cannot listen on %s: %s", l->addr.text, strerror(errno));
	if (err)
		*err = strdup(msg);
	if (fd >= 0)
		close(fd);
	l->fd = -1;
	return -1;
}

static void pause_accepting(struct tether *t, double seconds)
{
	for (int i = 0; i < t->gen->nfe; i++)
		for (int j = 0; j < t->gen->fe[i]->cfg.nbinds; j++)
			listener_stop(t, &t->gen->fe[i]->ls[j]);
	t->accept_paused = true;
	if (seconds > 0) {
		ev_timer_stop(t->loop, &t->accept_timer);
		ev_timer_set(&t->accept_timer, seconds, 0.);
		ev_timer_start(t->loop, &t->accept_timer);
	}
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct t_listener *l = container_of(w, struct t_listener, io);
	struct t_frontend *fe = l->fe;
	struct tether *t = fe->t;

	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd;

		if (t->active >= t->gen->cfg->global.maxconn || (fe->cfg.maxconn && fe->active >= fe->cfg.maxconn)) {
			pause_accepting(t, 0);      /* resumed when a connection closes */
			return;
		}
		fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				log_printf("accept on %s: %s; pausing accepts for %.0f ms", l->addr.text,
				           strerror(errno), ACCEPT_PAUSE * 1000);
				pause_accepting(t, ACCEPT_PAUSE);
			}
			return;     /* EAGAIN: drained */
		}
		conn_accept(fe, fd, &ss, len);
	}
}

void listener_start(struct tether *t, struct t_listener *l)
{
	if (l->fd < 0)
		return;
	if (!ev_is_active(&l->io)) {
		ev_io_init(&l->io, accept_cb, l->fd, EV_READ);
		ev_io_start(t->loop, &l->io);
	}
}

void listener_stop(struct tether *t, struct t_listener *l)
{
	if (ev_is_active(&l->io))
		ev_io_stop(t->loop, &l->io);
}
