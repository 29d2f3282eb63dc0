/*
 * tether - the connection state machine: accept, choose a server through
 * the core's outcome policy, connect without blocking, retry another
 * server after a failed connect, relay (relay.c), time out, close.
 *
 *   ST_PROXY (accept_proxy: reading the client's PROXY header, proxy_pp.c)
 *     -> ST_HEAD (cookie mode: reading the request head, proxy_http.c)
 *     -> ST_QUEUED (every server it could use is at its maxconn: waiting in
 *          the backend's queue until a slot frees for it, on any thread,
 *          which wakes its worker through w->qwake)
 *     -> ST_CONNECTING (lb_attempt chose a server; connect in progress)
 *          -- failed: rt_attempt_failed, lb_attempt again or give up
 *     -> ST_RELAY (both directions until both ended, a reset or a timeout)
 *
 * Timeouts: one ev_timer per connection, firing at the earliest possible
 * deadline of its state and re-arming itself for what is left (libev's
 * "lazy" idle timer): activity only records a time stamp.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listener.h"
#include "proxy_int.h"

const char *t_end_name(enum t_end e)
{
	static const char *const names[] = {
		[END_CLIENT_CLOSED] = "client-closed", [END_SERVER_CLOSED] = "server-closed",
		[END_CLIENT_TIMEOUT] = "client-timeout", [END_SERVER_TIMEOUT] = "server-timeout",
		[END_CONNECT_FAILED] = "connect-failed", [END_NO_SERVER] = "no-server",
		[END_CLIENT_RESET] = "client-reset", [END_SERVER_RESET] = "server-reset",
		[END_SHUTDOWN] = "shutdown", [END_SERVER_DOWN] = "server-down",
		[END_HEAD_TIMEOUT] = "request-timeout", [END_ERROR] = "error",
		[END_PROXY_INVALID] = "proxy-invalid", [END_PROXY_TIMEOUT] = "proxy-timeout",
		[END_QUEUE_TIMEOUT] = "queue-timeout", [END_QUEUE_FULL] = "queue-full",
	};
	return names[e];
}

static uint64_t now_ms(struct ev_loop *loop)
{
	return (uint64_t)(ev_now(loop) * 1000.0);
}

static void key_set_addr(struct lb_key *k, const struct sockaddr_storage *ss, uint16_t *port)
{
	memset(&k->addr, 0, sizeof(k->addr));
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)ss;

		k->addr.len = 4;
		memcpy(k->addr.bytes, &s->sin_addr, 4);
		*port = ntohs(s->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;

		k->addr.len = 16;
		memcpy(k->addr.bytes, &s->sin6_addr, 16);
		*port = ntohs(s->sin6_port);
	}
}

static void client_text(const struct conn *cn, char *out, size_t cap)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (cn->key.addr.len == 4) {
		struct sockaddr_in *s = (struct sockaddr_in *)&ss;

		s->sin_family = AF_INET;
		memcpy(&s->sin_addr, cn->key.addr.bytes, 4);
		s->sin_port = htons(cn->port);
	} else if (cn->key.addr.len == 16) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;

		s->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, cn->key.addr.bytes, 16);
		s->sin6_port = htons(cn->port);
	}
	addr_format(&ss, out, cap);
}

static void unlink_queued(struct conn *cn)
{
	struct t_worker *w = cn->w;

	if (cn->qprev)
		cn->qprev->qnext = cn->qnext;
	else
		w->queued = cn->qnext;
	if (cn->qnext)
		cn->qnext->qprev = cn->qprev;
	cn->qprev = cn->qnext = NULL;
}

/* Out of w->queued and the backend's queue: the server a slot freed for
 * cn meanwhile (counted on it), or NULL. */
static struct t_server *queue_leave(struct conn *cn)
{
	unlink_queued(cn);
	return rt_queue_take(cn->be, &cn->qw, true);
}

/* Closes both sides, logs, and queues cn to be freed after the batch.  A
 * second call does nothing. */
void conn_close(struct conn *cn, enum t_end why, bool reset)
{
	struct t_worker *w = cn->w;
	struct t_runtime *rt = w->rt;
	char client[64];

	if (cn->closed)
		return;
	cn->closed = true;
	if (cn->state == ST_QUEUED)
		cn->srv = queue_leave(cn);      /* a slot given meanwhile is released below */
	ev_timer_stop(w->loop, &cn->timer);
	side_close(&cn->c, reset);
	side_close(&cn->s, reset);
	if (log_enabled(w->log)) {
		struct log_conn lc = {
			.client = client, .frontend = cn->fe->cfg.name, .backend = cn->be->cfg.name,
			.server = cn->srv ? cn->srv->lb.name : NULL, .connect_ms = cn->connect_ms,
			.duration_ms = (ev_now(w->loop) - cn->start) * 1000.0, .bytes_in = cn->bytes_in,
			.bytes_out = cn->bytes_out, .end = t_end_name(why),
		};

		client_text(cn, client, sizeof(client));
		log_conn(w->log, &lc);
	}
	if (cn->srv) {
		srv_conn_end(cn->srv);  /* may free a deleted server */
		cn->srv = NULL;
	}
	if (cn->prev)
		cn->prev->next = cn->next;
	else
		w->conns = cn->next;
	if (cn->next)
		cn->next->prev = cn->prev;
	cn->next = w->dead;
	w->dead = cn;
	T_SUB(&cn->fe->active, 1);
	T_SUB(&rt->active, 1);
	T_SUB(&w->active, 1);
	if (w->draining) {
		if (T_LOAD(&w->active) == 0 && w->on_idle)
			w->on_idle(w, w->on_idle_arg);
	} else if (w->accept_paused && !ev_is_active(&w->accept_timer)) {
		listener_resume(w);
	}
}

/* The attempt on cn->srv failed: count it, then retry another server or give up. */
static void connect_failed(struct conn *cn, const char *why)
{
	struct t_server *s = cn->srv;

	side_close(&cn->s, false);
	cn->srv = NULL;
	rt_attempt_failed(s, why);      /* may free a deleted server */
	connect_start(cn);
}

/* No server for cn for now: closed, with a 503 in cookie mode (the request
 * head is read: the client waits for an HTTP answer). */
static void refuse(struct conn *cn, enum t_end why)
{
	if (cn->head)
		http_answer(cn, "503 Service Unavailable");
	conn_close(cn, why, false);
}

static void connect_to(struct conn *cn, struct t_server *s);

/* cn leaves the queue with the server a slot freed for it. */
static void dequeued(struct conn *cn, struct t_server *s)
{
	struct t_backend *be = cn->be;

	T_ADD(&be->queue_dispatched_total, 1);
	T_ADD(&be->queue_wait_ms_total, (uint64_t)((ev_now(cn->w->loop) - cn->qstart) * 1000.0));
	connect_to(cn, s);
}

void proxy_dispatch(struct t_worker *w)
{
	struct conn *cn = w->queued, *next;

	for (; cn; cn = next) {
		struct t_server *s;

		next = cn->qnext;
		if (!rt_waiter_given(&cn->qw))
			continue;               /* still waiting: no lock taken */
		s = rt_queue_take(cn->be, &cn->qw, false);
		if (s) {
			unlink_queued(cn);      /* it left the backend's queue when given s */
			dequeued(cn, s);
		}
	}
}

/* Deadline check; re-arms the timer for the earliest next deadline. */
static void timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct conn *cn = container_of(t, struct conn, timer);
	const struct cfg_timeouts *to = &cn->be->cfg.timeouts;
	ev_tstamp now = ev_now(loop), next;
	ev_tstamp cdl, sdl;

	switch (cn->state) {
	case ST_PROXY:
		if (now - cn->start >= cn->fe->cfg.proxy_timeout_ms / 1000.0) {
			T_ADD(&cn->fe->proxy_errors_total, 1);
			conn_close(cn, END_PROXY_TIMEOUT, false);
			return;
		}
		next = cn->start + cn->fe->cfg.proxy_timeout_ms / 1000.0;
		break;
	case ST_HEAD:
		/* no complete head in time: 408, and no server is bothered with
		 * it.  A client that sent nothing at all (a browser's
		 * pre-connect, a port scan) is closed without an answer, as
		 * nginx does and HAProxy with http-ignore-probes: a browser may
		 * read a 408 as the answer to the request it sends next. */
		if (now - cn->start >= to->http_request_ms / 1000.0) {
			T_ADD(&cn->be->request_timeouts_total, 1);
			if (cn->head_len)
				http_answer(cn, "408 Request Timeout");
			conn_close(cn, END_HEAD_TIMEOUT, false);
			return;
		}
		next = cn->start + to->http_request_ms / 1000.0;
		break;
	case ST_QUEUED:
		if (now - cn->qstart >= cn->be->cfg.queue.timeout_ms / 1000.0) {
			struct t_server *s = queue_leave(cn);

			if (s) {                /* given a slot just now */
				dequeued(cn, s);
				return;
			}
			T_ADD(&cn->be->queue_timeouts_total, 1);
			refuse(cn, END_QUEUE_TIMEOUT);
			return;
		}
		next = cn->qstart + cn->be->cfg.queue.timeout_ms / 1000.0;
		break;
	case ST_CONNECTING:
		if (now - cn->connect_start >= to->connect_ms / 1000.0) {
			connect_failed(cn, "connect timeout");
			return;
		}
		next = cn->connect_start + to->connect_ms / 1000.0;
		break;
	default:
		cdl = cn->c.last + to->client_ms / 1000.0;
		sdl = cn->s.last + to->server_ms / 1000.0;
		if (now >= cdl) {
			conn_close(cn, END_CLIENT_TIMEOUT, false);
			return;
		}
		if (now >= sdl) {
			conn_close(cn, END_SERVER_TIMEOUT, false);
			return;
		}
		next = cdl < sdl ? cdl : sdl;
		break;
	}
	ev_timer_set(t, next - now + 0.001, 0.);
	ev_timer_start(loop, t);
}

void arm_timer(struct conn *cn, double seconds)
{
	ev_timer_stop(cn->w->loop, &cn->timer);
	ev_timer_set(&cn->timer, seconds, 0.);
	ev_timer_start(cn->w->loop, &cn->timer);
}

static void connected(struct conn *cn)
{
	struct ev_loop *loop = cn->w->loop;
	const struct cfg_timeouts *to = &cn->be->cfg.timeouts;
	bool peeked = cn->head != NULL;

	cn->state = ST_RELAY;
	cn->connect_ms = (float)((ev_now(loop) - cn->connect_start) * 1000.0);
	rt_server_connected(cn->srv);
	cn->c.last = cn->s.last = ev_now(loop);
	io_stop(&cn->s, IO_W);
	if (!io_start(cn, &cn->s, IO_R) || !io_start(cn, &cn->c, IO_R))
		return;
	if (cn->be->cfg.send_proxy && !pp_send(cn))
		return;
	if (peeked && !head_forward(cn))
		return;
	arm_timer(cn, (to->client_ms < to->server_ms ? to->client_ms : to->server_ms) / 1000.0);
	/* The client has usually sent its request while the connect was under
	 * way: forward it now rather than one loop turn later (a read that
	 * finds nothing costs one recv; the watcher is armed either way). */
	if (!peeked && !cn->closed)
		pump(cn, &cn->c);
}

/* The server side is writable: the connect finished, or room to flush.
 * `events` are epoll's: only with an error or hang-up flag can a finished
 * connect have failed, so a clean one costs no getsockopt. */
static void server_writable(struct conn *cn, uint32_t events)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (cn->state != ST_CONNECTING) {
		flush(cn, &cn->s);
		return;
	}
	if ((events & (EPOLLERR | EPOLLHUP)) && getsockopt(cn->s.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err)
		connect_failed(cn, strerror(err));
	else
		connected(cn);
}

/* Every server cn could use is at its maxconn: it waits, its client
 * unread, until a slot frees for it (proxy_dispatch) or queue.timeout. */
static void queue_wait(struct conn *cn)
{
	struct t_worker *w = cn->w;

	cn->state = ST_QUEUED;
	cn->qstart = ev_now(w->loop);
	cn->qprev = NULL;
	cn->qnext = w->queued;
	if (w->queued)
		w->queued->qprev = cn;
	w->queued = cn;
	arm_timer(cn, cn->be->cfg.queue.timeout_ms / 1000.0);
}

/* A slot freed for some of the worker's queued connections (called under
 * a backend's lock, on any thread): wake the worker. */
static void queue_ready(struct rt_waiter *qw)
{
	struct conn *cn = container_of(qw, struct conn, qw);

	ev_async_send(cn->w->loop, &cn->w->qwake);
}

void connect_start(struct conn *cn)
{
	struct t_worker *w = cn->w;
	struct t_backend *be = cn->be;
	struct t_server *s;
	enum rt_wait why;

	s = rt_attempt(be, &cn->key, now_ms(w->loop), &w->rng, &cn->qw, &why);
	if (s) {
		connect_to(cn, s);
		return;
	}
	if (why == RT_QUEUED) {
		queue_wait(cn);
	} else if (why == RT_QUEUE_FULL) {
		T_ADD(&be->queue_full_total, 1);
		refuse(cn, END_QUEUE_FULL);
	} else {
		if (cn->key.ntried == 0)
			T_ADD(&be->no_server_total, 1);
		conn_close(cn, cn->key.ntried == 0 ? END_NO_SERVER : END_CONNECT_FAILED, false);
	}
}

/* Connects cn to s (its attempt is counted on s). */
static void connect_to(struct conn *cn, struct t_server *s)
{
	struct t_worker *w = cn->w;
	struct t_backend *be = cn->be;
	int fd, err;

	if (cn->key.ntried > 1)
		T_ADD(&be->retries_total, 1);
	T_ADD(&s->connections_total, 1);
	cn->srv = s;
	cn->state = ST_CONNECTING;
	cn->connect_start = ev_now(w->loop);
	fd = socket(s->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 && (errno == EMFILE || errno == ENFILE))
		fd = worker_spare_take(w, s->addr.ss.ss_family);   /* errno kept when there is none */
	if (fd < 0) {
		err = errno;
		if (rt_errno_local(err))
			rt_local_error(w->rt, "socket() for a connection", err);
		else
			log_printf(w->log, "socket: %s", strerror(err));
		conn_close(cn, END_ERROR, false);       /* not the server's failure: releases it (srv_conn_end) */
		return;
	}
	cn->s.fd = fd;
	if (connect(fd, (const struct sockaddr *)&s->addr.ss, s->addr.len) == 0) {
		rt_local_ok(w->rt);
		connected(cn);
		return;
	}
	err = errno;
	if (err == EINPROGRESS) {
		rt_local_ok(w->rt);
		if (io_start(cn, &cn->s, IO_W))
			arm_timer(cn, be->cfg.timeouts.connect_ms / 1000.0);
		return;
	}
	if (rt_errno_local(err)) {             /* no local port or buffer: not the server's failure */
		rt_local_error(w->rt, "connect() for a connection", err);
		conn_close(cn, END_ERROR, false);
		return;
	}
	connect_failed(cn, strerror(err));     /* refused at once (e.g. unreachable) */
}

/* One epoll event of a connection's side (the poller's callback). */
static void side_event(struct poll_item *it, uint32_t e)
{
	struct side *sd = container_of(it, struct side, it);
	struct conn *cn = sd->client ? container_of(sd, struct conn, c) : container_of(sd, struct conn, s);

	if (cn->closed || sd->fd < 0)
		return;
	if (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		sd->rd_hup = true;
	/* a FIN without an error: once a read comes back short, the end is
	 * known without reading it (relay.c) */
	sd->rd_fin = (e & EPOLLERR) ? false : sd->rd_fin || (e & EPOLLRDHUP);
	if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		sd->rd_ready = true;
	if (sd->rd_ready && (sd->want & IO_R)) {
		if (cn->state == ST_PROXY)
			pp_read(cn);
		else if (cn->state == ST_HEAD)
			head_read(cn);
		else
			pump(cn, sd);
		if (cn->closed || sd->fd < 0)
			return;
	}
	if ((e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && (sd->want & IO_W)) {
		if (sd->client)
			flush(cn, sd);
		else
			server_writable(cn, e);
	}
}

void proxy_accept(struct t_worker *w, struct t_frontend *fe, int fd, const struct sockaddr_storage *ss)
{
	struct conn *cn = calloc(1, sizeof(*cn));

	if (!cn) {
		close(fd);
		return;
	}
	cn->w = w;
	cn->fe = fe;
	gen_get(fe->gen);
	cn->be = fe->be;
	cn->c.fd = fd;
	cn->c.client = true;
	cn->c.it.fn = cn->s.it.fn = side_event;
	cn->s.fd = -1;
	cn->qw.key = &cn->key;
	cn->qw.ready = queue_ready;
	cn->start = ev_now(w->loop);
	key_set_addr(&cn->key, ss, &cn->port);
	ev_init(&cn->timer, timer_cb);
	cn->next = w->conns;
	if (w->conns)
		w->conns->prev = cn;
	w->conns = cn;
	T_ADD(&fe->active, 1);
	T_ADD(&fe->connections_total, 1);
	T_ADD(&w->rt->active, 1);
	T_ADD(&w->active, 1);
	T_ADD(&w->accepted, 1);
	if (fe->cfg.accept_proxy) {
		cn->state = ST_PROXY;
		if (io_start(cn, &cn->c, IO_R))
			arm_timer(cn, fe->cfg.proxy_timeout_ms / 1000.0);
		return;
	}
	conn_route(cn);
}

void conn_route(struct conn *cn)
{
	if (!(cn->be->pool.algo->flags & LB_F_NEEDS_HTTP)) {
		io_stop(&cn->c, IO_R);          /* read again once connected */
		connect_start(cn);
		return;
	}
	cn->head = malloc(cn->be->cfg.peek_max);
	if (!cn->head) {
		conn_close(cn, END_ERROR, false);
		return;
	}
	cn->state = ST_HEAD;
	if (!io_start(cn, &cn->c, IO_R))
		return;
	arm_timer(cn, cn->be->cfg.timeouts.http_request_ms / 1000.0);
	if (cn->c.rd_ready)             /* bytes behind a PROXY header: no new edge will tell */
		head_read(cn);
}

void proxy_close_all(struct t_worker *w, enum t_end why)
{
	while (w->conns)
		conn_close(w->conns, why, false);
}

void proxy_close_server(struct t_worker *w, const struct t_backend *be, uint32_t id)
{
	struct conn *cn = w->conns, *next;

	for (; cn; cn = next) {
		next = cn->next;
		if (cn->be == be && cn->srv && cn->srv->lb.id == id && cn->state == ST_RELAY)
			conn_close(cn, END_SERVER_DOWN, true);
	}
}

void proxy_reap(void *worker)
{
	struct t_worker *w = worker;

	while (w->dead) {
		struct conn *cn = w->dead;

		w->dead = cn->next;
		gen_put(cn->fe->gen);   /* may free fe and be: cn is not used after */
		free(cn->head);
		free(cn);
	}
}
