/*
 * tether - see ctl.h.
 */
#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"
#include "defs.h"
#include "tether/err.h"

#define CTL_REQ_MAX 8192        /* a request larger than this is refused */

struct ctl_client {
	ev_io rio, wio;
	ev_timer timer;         /* CTL_REQUEST while busy, cs->idle otherwise */
	int fd;
	bool busy;              /* a request or an answer under way */
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
	struct ctl_server *cs = c->cs;
	struct ev_loop *loop = cs->loop;

	for (struct ctl_client **p = &cs->clients; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	ev_io_stop(loop, &c->rio);
	ev_io_stop(loop, &c->wio);
	ev_timer_stop(loop, &c->timer);
	close(c->fd);
	sb_free(&c->out);
	free(c);
	/* below the cap again: accept (unless paused for descriptors) */
	if (cs->nclients-- == CTL_MAX_CLIENTS && cs->b.fd >= 0 && !ev_is_active(&cs->retry))
		ev_io_start(loop, &cs->io);
}

/*
 * A client's one timer: a request (its first byte to the end of its
 * answer) has CTL_REQUEST seconds, counted from when it starts, whatever
 * trickles in meanwhile; between requests the client is kept cs->idle.
 */
static void client_timer(struct ctl_client *c)
{
	bool busy = c->in_len > 0 || c->out_off < c->out.len;

	if (busy && c->busy)
		return;
	c->busy = busy;
	ev_timer_stop(c->cs->loop, &c->timer);
	ev_timer_set(&c->timer, busy ? CTL_REQUEST : c->cs->idle, 0.);
	ev_timer_start(c->cs->loop, &c->timer);
}

/* Writes what is pending; true when the client was freed (its answer is
 * written and it is to close, or the peer is gone). */
static bool client_flush(struct ctl_client *c)
{
	struct ev_loop *loop = c->cs->loop;

	while (c->out_off < c->out.len) {
		ssize_t n = send(c->fd, c->out.s + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* no more requests read until this answer is: a client
			 * that sends and never reads cannot grow our buffer */
			ev_io_stop(loop, &c->rio);
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
	ev_io_start(loop, &c->rio);
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
	while (c->in_len && !c->close_after &&
	       (used = c->cs->handle(c->cs, c->in, c->in_len, &c->out, &c->close_after)) > 0) {
		memmove(c->in, c->in + used, c->in_len - used);
		c->in_len -= used;
	}
	if (c->in_len == sizeof(c->in)) {
		sb_printf(&c->out, "ERR request too long\n");
		c->close_after = true;
	}
	if (c->close_after)
		ev_io_stop(loop, &c->rio);
	/* `quit` with nothing to write closes at once, too */
	if ((c->out.len || c->close_after) && client_flush(c))
		return;
	client_timer(c);
}

static void client_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ctl_client *c = container_of(w, struct ctl_client, wio);

	if (!client_flush(c))
		client_timer(c);
}

static void client_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	client_free(container_of(w, struct ctl_client, timer));
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ctl_server *cs = container_of(w, struct ctl_server, retry);

	if (cs->nclients < CTL_MAX_CLIENTS)
		ev_io_start(loop, &cs->io);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ctl_server *cs = container_of(w, struct ctl_server, io);

	while (cs->nclients < CTL_MAX_CLIENTS) {
		int fd = accept4(cs->b.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct ctl_client *c;

		if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
			continue;
		if (fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)) {
			/* the connection stays queued: without a pause, the loop
			 * would call us again at once, for as long as it lasts */
			if (!cs->pause_logged && cs->log)
				log_printf(cs->log, "accept on %s: %s; pausing its accepts (%.0f ms at a time)",
				           cs->b.path[0] ? cs->b.path : "the metrics port", strerror(errno), CTL_PAUSE * 1000);
			cs->pause_logged = true;
			ev_io_stop(loop, &cs->io);
			ev_timer_set(&cs->retry, CTL_PAUSE, 0.);
			ev_timer_start(loop, &cs->retry);
			return;
		}
		if (fd < 0)
			return;     /* EAGAIN: drained */
		cs->pause_logged = false;
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			return;
		}
		c->fd = fd;
		c->cs = cs;
		c->next = cs->clients;
		cs->clients = c;
		cs->nclients++;
		ev_io_init(&c->rio, client_read_cb, fd, EV_READ);
		ev_io_init(&c->wio, client_write_cb, fd, EV_WRITE);
		ev_init(&c->timer, client_timer_cb);
		c->busy = true;         /* so that client_timer starts the idle timer */
		client_timer(c);
		ev_io_start(loop, &c->rio);
	}
	ev_io_stop(loop, &cs->io);  /* at the cap: resumed when a client leaves */
}

void ctl_serve(struct ctl_server *cs, struct ev_loop *loop, struct ctl_bound *b, struct t_log *log,
               ctl_handle_fn h, void *arg)
{
	cs->b = *b;
	b->fd = -1;
	b->path[0] = '\0';
	cs->loop = loop;
	cs->log = log;
	cs->handle = h;
	cs->arg = arg;
	cs->clients = NULL;
	cs->nclients = 0;
	cs->pause_logged = false;
	if (cs->idle <= 0)
		cs->idle = CTL_IDLE;
	ev_io_init(&cs->io, accept_cb, cs->b.fd, EV_READ);
	ev_init(&cs->retry, retry_cb);
	ev_io_start(loop, &cs->io);
}

static int fail(int fd, const char *what, const char *where, char **err)
{
	int rc = tether_err(err, -errno, "%s %s: %s", what, where, strerror(errno));

	if (fd >= 0)
		close(fd);
	return rc;
}

/* Whether a process answers on the unix socket at path: 1 yes, 0 no (a
 * stale file), or a negative errno. */
static int socket_alive(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), rc;

	if (fd < 0)
		return -errno;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0 || errno == EAGAIN)
		rc = 1;         /* EAGAIN: listening, its queue full */
	else
		rc = errno == ECONNREFUSED ? 0 : -errno;
	close(fd);
	return rc;
}

static int set_mode(const char *file, const struct cfg_admin *a, char **err)
{
	gid_t gid = (gid_t)-1;

	if (a->group[0]) {
		struct group gr, *found = NULL;
		char buf[4096];
		int e = getgrnam_r(a->group, &gr, buf, sizeof(buf), &found);

		if (!found)
			return tether_err(err, -(e ? e : ENOENT), "global.admin.group: no group \"%s\"%s%s", a->group,
			                  e ? ": " : "", e ? strerror(e) : "");
		gid = gr.gr_gid;
	}
	if (chmod(file, a->mode) < 0)
		return tether_err(err, -errno, "global.admin %s: mode %04o: %s", a->path, a->mode, strerror(errno));
	if (gid != (gid_t)-1 && chown(file, (uid_t)-1, gid) < 0)
		return tether_err(err, -errno, "global.admin %s: group %s: %s", a->path, a->group, strerror(errno));
	return 0;
}

int ctl_bind_unix(struct ctl_bound *b, const struct cfg_admin *a, char **err)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, alive, rc;
	size_t len;

	b->fd = -1;
	b->path[0] = '\0';
	/* bound under a temporary name, given its mode and group, then linked
	 * to the path: never reachable with the umask's permissions, and never
	 * replacing a file that appeared meanwhile (link does not overwrite) */
	len = strlen(a->path);
	if (len > sizeof(sun.sun_path) - 12)        /* room for ".PID~" */
		return tether_err(err, -ENAMETOOLONG, "global.admin %s: the path is too long (at most %zu characters)",
		                  a->path, sizeof(sun.sun_path) - 12);
	memcpy(sun.sun_path, a->path, len);
	snprintf(sun.sun_path + len, sizeof(sun.sun_path) - len, ".%d~", (int)getpid());
	if (lstat(a->path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return tether_err(err, -EEXIST, "global.admin %s: the path exists and is not a socket; "
			                  "not replacing it", a->path);
		alive = socket_alive(a->path);
		if (alive == 1)
			return tether_err(err, -EADDRINUSE, "global.admin %s: another process is listening on it "
			                  "(is another tether running?); not taking it over", a->path);
		if (alive < 0)
			return tether_err(err, alive, "global.admin %s: %s", a->path, strerror(-alive));
		if (unlink(a->path) < 0 && errno != ENOENT)     /* stale: its process is gone */
			return fail(-1, "global.admin", a->path, err);
	} else if (errno != ENOENT) {
		return fail(-1, "global.admin", a->path, err);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail(fd, "global.admin", a->path, err);
	unlink(sun.sun_path);   /* our own leftover: the name has our pid */
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		return fail(fd, "global.admin", a->path, err);
	rc = set_mode(sun.sun_path, a, err);
	if (rc == 0 && (listen(fd, 64) < 0 || link(sun.sun_path, a->path) < 0))
		rc = fail(-1, "global.admin", a->path, err);
	if (rc < 0) {
		unlink(sun.sun_path);
		close(fd);
		return rc;
	}
	unlink(sun.sun_path);
	if (lstat(a->path, &st) < 0) {
		close(fd);
		return fail(-1, "global.admin", a->path, err);
	}
	b->fd = fd;
	b->dev = st.st_dev;
	b->ino = st.st_ino;
	snprintf(b->path, sizeof(b->path), "%s", a->path);
	return 0;
}

int ctl_bind_chmod(const struct ctl_bound *b, const struct cfg_admin *a, char **err)
{
	return set_mode(b->path, a, err);
}

int ctl_bind_tcp(struct ctl_bound *b, const struct cfg_addr *a, const char *what, char **err)
{
	int one = 1, fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	b->fd = -1;
	b->path[0] = '\0';
	if (fd < 0)
		return fail(fd, what, a->text, err);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 || listen(fd, 64) < 0)
		return fail(fd, what, a->text, err);
	b->fd = fd;
	return 0;
}

bool ctl_bound_gone(const struct ctl_bound *b)
{
	struct stat st;

	return b->fd >= 0 && b->path[0] && lstat(b->path, &st) < 0 && errno == ENOENT;
}

void ctl_bound_close(struct ctl_bound *b)
{
	struct stat st;

	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
	/* another instance may have replaced the file meanwhile: leave its */
	if (b->path[0] && lstat(b->path, &st) == 0 && st.st_dev == b->dev && st.st_ino == b->ino)
		unlink(b->path);
	b->path[0] = '\0';
}

void ctl_stop(struct ctl_server *cs)
{
	if (!cs->loop)
		return;
	ev_io_stop(cs->loop, &cs->io);
	ev_timer_stop(cs->loop, &cs->retry);
	ctl_bound_close(&cs->b);       /* fd -1: client_free restarts nothing */
	while (cs->clients)
		client_free(cs->clients);
	cs->loop = NULL;
}
