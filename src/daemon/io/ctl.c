/*
 * tether - see ctl.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"
#include "defs.h"
#include "tether/err.h"

#define CTL_REQ_MAX 8192        /* a request larger than this is refused */
#define CTL_IDLE 60.0           /* seconds a silent client is kept */

struct ctl_client {
	ev_io rio, wio;
	ev_timer idle;
	int fd;
	struct ctl_server *cs;
	struct ctl_client *next;
	size_t in_len, out_off;
	struct sbuf out;
	bool close_after;
	char in[CTL_REQ_MAX];
};

void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->failed)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->failed = true;
			return;
		}
		if (b->s && (size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		{
			size_t cap = (b->cap ? b->cap * 2 : 1024) + (size_t)n;
			char *s = realloc(b->s, cap);

			if (!s) {
				b->failed = true;
				return;
			}
			b->s = s;
			b->cap = cap;
		}
	}
}

void sb_free(struct sbuf *b)
{
	free(b->s);
	memset(b, 0, sizeof(*b));
}

static void client_free(struct ctl_client *c)
{
	struct ev_loop *loop = c->cs->loop;

	for (struct ctl_client **p = &c->cs->clients; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	ev_io_stop(loop, &c->rio);
	ev_io_stop(loop, &c->wio);
	ev_timer_stop(loop, &c->idle);
	close(c->fd);
	sb_free(&c->out);
	free(c);
}

/* Writes what is pending; true when the client was freed. */
static bool client_flush(struct ctl_client *c)
{
	struct ev_loop *loop = c->cs->loop;

	while (c->out_off < c->out.len) {
		ssize_t n = send(c->fd, c->out.s + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ev_io_start(loop, &c->wio);
			return false;
		}
		if (n < 0) {
			client_free(c);
			return true;
		}
		c->out_off += (size_t)n;
	}
	ev_io_stop(loop, &c->wio);
	c->out.len = c->out_off = 0;
	if (c->close_after) {
		client_free(c);
		return true;
	}
	return false;
}

static void client_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ctl_client *c = container_of(w, struct ctl_client, rio);
	ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
	size_t used;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_free(c);
		return;
	}
	c->in_len += (size_t)n;
	ev_timer_again(loop, &c->idle);
	while (c->in_len && !c->close_after &&
	       (used = c->cs->handle(c->cs->arg, c->in, c->in_len, &c->out, &c->close_after)) > 0) {
		memmove(c->in, c->in + used, c->in_len - used);
		c->in_len -= used;
	}
	if (c->in_len == sizeof(c->in)) {
		sb_printf(&c->out, "ERR request too long\n");
		c->close_after = true;
	}
	if (c->close_after)
		ev_io_stop(loop, &c->rio);
	if (c->out.len)
		client_flush(c);
}

static void client_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	client_flush(container_of(w, struct ctl_client, wio));
}

static void client_idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	client_free(container_of(w, struct ctl_client, idle));
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ctl_server *cs = container_of(w, struct ctl_server, io);

	for (;;) {
		int fd = accept4(cs->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct ctl_client *c;

		if (fd < 0)
			return;
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			return;
		}
		c->fd = fd;
		c->cs = cs;
		c->next = cs->clients;
		cs->clients = c;
		ev_io_init(&c->rio, client_read_cb, fd, EV_READ);
		ev_io_init(&c->wio, client_write_cb, fd, EV_WRITE);
		ev_timer_init(&c->idle, client_idle_cb, 0., CTL_IDLE);
		ev_io_start(loop, &c->rio);
		ev_timer_again(loop, &c->idle);
	}
}

static int start(struct ctl_server *cs, struct ev_loop *loop, int fd, ctl_handle_fn h, void *arg)
{
	cs->fd = fd;
	cs->loop = loop;
	cs->handle = h;
	cs->arg = arg;
	cs->clients = NULL;
	ev_io_init(&cs->io, accept_cb, fd, EV_READ);
	ev_io_start(loop, &cs->io);
	return 0;
}

static int fail(int fd, const char *what, const char *where, char **err)
{
	int rc = tether_err(err, -errno, "%s %s: %s", what, where, strerror(errno));

	if (fd >= 0)
		close(fd);
	return rc;
}

int ctl_listen_unix(struct ctl_server *cs, struct ev_loop *loop, const char *path, ctl_handle_fn h, void *arg,
                    char **err)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return fail(fd, "admin socket", path, err);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	unlink(path);       /* a stale socket from a previous run */
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 64) < 0)
		return fail(fd, "admin socket", path, err);
	snprintf(cs->unix_path, sizeof(cs->unix_path), "%s", path);
	return start(cs, loop, fd, h, arg);
}

int ctl_listen_tcp(struct ctl_server *cs, struct ev_loop *loop, const struct cfg_addr *a, ctl_handle_fn h,
                   void *arg, char **err)
{
	int one = 1, fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return fail(fd, "metrics", a->text, err);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 || listen(fd, 64) < 0)
		return fail(fd, "metrics", a->text, err);
	cs->unix_path[0] = '\0';
	return start(cs, loop, fd, h, arg);
}

void ctl_stop(struct ctl_server *cs)
{
	if (!cs->loop)
		return;
	while (cs->clients)
		client_free(cs->clients);
	ev_io_stop(cs->loop, &cs->io);
	close(cs->fd);
	cs->fd = -1;
	if (cs->unix_path[0])
		unlink(cs->unix_path);
	cs->loop = NULL;
}
