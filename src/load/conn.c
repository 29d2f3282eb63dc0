/*
 * tether-load - a user's connection: connect (from its own source address
 * with --addresses), send the request, read and parse the answer.
 *
 * Costs per request on a kept-alive connection: one send(), one recv(),
 * and a share of one epoll_wait: the read watcher stays started while the
 * connection is open (so a server's idle close is seen and the connection
 * closed), and the write watcher is started only while a request cannot
 * be written at once (a connect in progress, a full socket buffer), so no
 * epoll_ctl is paid per request.  Nothing is allocated per request: the
 * request is formatted into load.wbuf, answers are read into load.rbuf and
 * parsed in place (wire.c); a partly sent request is formatted again (it
 * depends only on the user's state) and resumed at `sent`.
 *
 * An exchange ends in exactly one call of L->on_answer or L->on_fail, and
 * this file touches the user no more after that call: the hook may send
 * the next request on it, or let the user leave.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "load.h"

static void io_cb(struct ev_loop *loop, ev_io *w, int revents);

void conn_init_user(struct lu_user *u)
{
	ev_io_init(&u->io, io_cb, -1, EV_READ);
}

void conn_close(struct load *L, struct lu_user *u)
{
	if (u->io.fd < 0)
		return;
	ev_io_stop(L->loop, &u->io);
	close(u->io.fd);
	ev_io_set(&u->io, -1, EV_READ);
}

/* Read interest always; write interest while `want_write`. */
static void watch(struct load *L, struct lu_user *u, bool want_write)
{
	int ev = EV_READ | (want_write ? EV_WRITE : 0);

	if (ev_is_active(&u->io) && (u->io.events & (EV_READ | EV_WRITE)) == ev)
		return;
	ev_io_stop(L->loop, &u->io);
	ev_io_set(&u->io, u->io.fd, ev);
	ev_io_start(L->loop, &u->io);
}

/* An exchange failed: the connection is not trusted again. */
static void fail(struct load *L, struct lu_user *u, enum lu_fail why)
{
	ev_timer_stop(L->loop, &u->timer);
	conn_close(L, u);
	L->on_fail(L, u, why);
}

/* Opens a non-blocking connection to the target, bound to the user's
 * source address with --addresses; the connect completes later.  0 or -1
 * (the errno says why).  No TCP_NODELAY: a request is one write made when
 * nothing of ours is unacknowledged (the previous answer acknowledged the
 * previous request), which Nagle's algorithm sends at once. */
static int open_conn(struct load *L, struct lu_user *u)
{
	int one = 1, fd = socket(L->target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (L->o->addresses) {
		struct sockaddr_in src = { .sin_family = AF_INET };

		src.sin_addr.s_addr = htonl(LOAD_SRC_BASE + u->addr);
		/* the port is chosen at connect(), per 4-tuple, not per address */
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0)
			goto err;
	}
	if (connect(fd, (struct sockaddr *)&L->target, L->target_len) < 0 && errno != EINPROGRESS)
		goto err;
	ev_io_set(&u->io, fd, EV_READ);
	ev_io_start(L->loop, &u->io);
	return 0;
err:
	{
		int e = errno;

		close(fd);
		errno = e;
	}
	return -1;
}

static size_t format(struct load *L, const struct lu_user *u)
{
	static const char *const what[][2] = {
		[LA_LOGIN] = { "GET", "/login?user=u" }, [LA_RELOGIN] = { "GET", "/login?user=u" },
		[LA_ITEM] = { "GET", "/item/" }, [LA_CART] = { "POST", "/cart/add?item=" },
	};
	struct wire_req q = {
		.method = what[u->action][0], .path = what[u->action][1],
		.num = u->action == LA_LOGIN || u->action == LA_RELOGIN ? u->seq : u->item,
		.host = L->host, .jar = &u->jar, .close = L->o->new_conn, .empty_body = u->action == LA_CART,
	};

	return wire_format_request(L->wbuf, sizeof(L->wbuf), &q);
}

/* A keep-alive connection the server closed while idle takes the request
 * once more on a new connection, as browsers do. */
static bool retry_stale(struct load *L, struct lu_user *u)
{
	if (!u->reused || u->got_bytes || u->retried)
		return false;
	u->retried = true;
	L->s.retries++;
	conn_close(L, u);
	conn_send(L, u);
	return true;
}

static void try_send(struct load *L, struct lu_user *u)
{
	size_t len = format(L, u);
	ssize_t n;

	if (len == 0 || len <= u->sent) {   /* the jar is bounded so that requests fit */
		fail(L, u, LF_PROTOCOL);
		return;
	}
	n = send(u->io.fd, L->wbuf + u->sent, len - u->sent, MSG_NOSIGNAL);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ENOTCONN)) {
		watch(L, u, true);              /* connecting, or the buffer is full */
		return;
	}
	if (n < 0) {
		if (!retry_stale(L, u))
			fail(L, u, u->reused ? LF_CRASH : LF_NO_SERVER);
		return;
	}
	if (u->sent == 0 && u->action != LA_RELOGIN && !u->retried)    /* the request's first write */
		stats_hist_add(&L->s.lag, (ev_now(L->loop) - L->t0 - u->sched) * 1e6);
	u->sent = (uint16_t)(u->sent + n);
	if (u->sent < len) {
		watch(L, u, true);
		return;
	}
	L->s.http_requests++;
	u->state = LU_WAIT;
	watch(L, u, false);
}

void conn_send(struct load *L, struct lu_user *u)
{
	ev_timer_stop(L->loop, &u->timer);
	if (u->io.fd >= 0 && (u->conn_done || L->o->new_conn))
		conn_close(L, u);
	u->reused = u->io.fd >= 0;
	if (!u->reused) {
		u->conn_done = false;
		if (open_conn(L, u) < 0) {
			if ((errno == EMFILE || errno == ENFILE) && !L->warned_fds) {
				L->warned_fds = true;
				fprintf(stderr, "tether-load: out of file descriptors (ulimit -n): requests fail\n");
			}
			L->on_fail(L, u, LF_NO_SERVER);
			return;
		}
	}
	u->sent = 0;
	u->got_bytes = false;
	u->state = LU_SEND;
	wire_resp_init(&u->resp);
	ev_timer_set(&u->timer, L->o->timeout_s, 0.);
	ev_timer_start(L->loop, &u->timer);
	try_send(L, u);
}

void conn_timeout(struct load *L, struct lu_user *u)
{
	fail(L, u, LF_TIMEOUT);
}

/* The answer is complete. */
static void answered(struct load *L, struct lu_user *u, bool extra_bytes)
{
	ev_timer_stop(L->loop, &u->timer);
	if (u->resp.close || L->o->new_conn || extra_bytes)
		u->conn_done = true;            /* closed before the next request, or at the server's FIN */
	if (extra_bytes)                    /* bytes nobody asked for: the connection is out of step */
		conn_close(L, u);
	u->state = LU_THINK;                /* the hook moves it on */
	L->on_answer(L, u);
}

/* The peer closed (n == 0) or reset the connection. */
static void closed(struct load *L, struct lu_user *u, int err)
{
	if (u->state == LU_THINK) {         /* idle: the server ended a kept-alive connection */
		conn_close(L, u);
		return;
	}
	if (err == 0 && u->got_bytes && wire_resp_eof(&u->resp) == 1) {
		conn_close(L, u);
		answered(L, u, false);
		return;
	}
	if (retry_stale(L, u))
		return;
	fail(L, u, !u->reused && !u->got_bytes && (err == ECONNREFUSED || err == ETIMEDOUT ||
	     err == EHOSTUNREACH || err == ENETUNREACH) ? LF_NO_SERVER : LF_CRASH);
}

static void do_read(struct load *L, struct lu_user *u)
{
	ssize_t n = recv(u->io.fd, L->rbuf, sizeof(L->rbuf), 0);
	size_t used;
	int rc;

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		closed(L, u, n < 0 ? errno : 0);
		return;
	}
	if (u->state == LU_THINK) {         /* nothing was asked: out of step */
		conn_close(L, u);
		return;
	}
	u->got_bytes = true;
	rc = wire_resp_feed(&u->resp, L->rbuf, (size_t)n, &used, &u->jar);
	if (rc < 0) {
		fail(L, u, LF_PROTOCOL);
		return;
	}
	if (rc == 1)
		answered(L, u, used < (size_t)n);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct lu_user *u = container_of(w, struct lu_user, io);
	struct load *L = ev_userdata(loop);

	if (revents & EV_READ) {
		do_read(L, u);
		return;                         /* a writable socket comes back next turn if still needed */
	}
	if ((revents & EV_WRITE) && u->state == LU_SEND)
		try_send(L, u);
}
