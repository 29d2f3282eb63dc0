/*
 * tether - the connection state machine: accept, choose a server through
 * the core's outcome policy, connect without blocking, retry another
 * server after a failed connect, relay (relay.c), time out, close.
 *
 *   ST_PROXY (accept_proxy: reading the client's PROXY header, proxy_pp.c)
 *     -> ST_HEAD (cookie mode: reading the request head, proxy_http.c)
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
		/* no complete head in time: route what we have by fallback */
		if (now - cn->start >= to->http_request_ms / 1000.0) {
			route_head(cn);
			return;
		}
		next = cn->start + to->http_request_ms / 1000.0;
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

void connect_start(struct conn *cn)
{
	struct t_worker *w = cn->w;
	struct t_backend *be = cn->be;
	struct t_server *s;
	int fd;

	s = rt_attempt(be, &cn->key, now_ms(w->loop), &w->rng);
	if (!s) {
		if (cn->key.ntried == 0)
			T_ADD(&be->no_server_total, 1);
		conn_close(cn, cn->key.ntried == 0 ? END_NO_SERVER : END_CONNECT_FAILED, false);
		return;
	}
	if (cn->key.ntried > 1)
		T_ADD(&be->retries_total, 1);
	T_ADD(&s->connections_total, 1);
	cn->srv = s;
	cn->state = ST_CONNECTING;
	cn->connect_start = ev_now(w->loop);
	fd = socket(s->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_printf(w->log, "socket: %s", strerror(errno));
		cn->srv = NULL;
		srv_conn_end(s);
		conn_close(cn, END_ERROR, false);
		return;
	}
	cn->s.fd = fd;
	if (connect(fd, (const struct sockaddr *)&s->addr.ss, s->addr.len) == 0) {
		connected(cn);
		return;
	}
	if (errno == EINPROGRESS) {
		if (io_start(cn, &cn->s, IO_W))
			arm_timer(cn, be->cfg.timeouts.connect_ms / 1000.0);
		return;
	}
	connect_failed(cn, strerror(errno));    /* refused at once (e.g. unreachable) */
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
