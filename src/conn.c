/*
 * tether - proxied connections: connect with retries, the relay, half-close,
 * resets, idle timeouts, and cookie affinity's head peek and Set-Cookie
 * insertion.
 *
 * Relay: bytes are read into the loop's one scratch buffer and written to
 * the peer at once.  Only when the peer takes part of them is the rest kept
 * in a per-direction buffer (struct pbuf), and reading from the source
 * stops until that buffer drains: memory per connection is bounded by one
 * read, and an idle connection holds no buffer at all.
 *
 * Timeouts: one ev_timer per connection.  Reads and writes only record
 * ev_now() in the side's `last`; the timer fires at the earliest possible
 * deadline and re-arms itself for what is left (libev's "lazy" idle
 * timer), so activity costs no timer operation.
 *
 * Readiness: the connections' sockets live in an epoll set of their own,
 * watched by the loop as one fd, edge-triggered like nginx's: each socket
 * is added once, for reading and writing, and stays until close() removes
 * it.  What a connection waits for (`want`) is kept in user space, so
 * stopping and resuming a direction costs no system call; a side also
 * remembers whether its last read drained the socket (`rd_ready`), and only
 * resuming a side that may still hold bytes re-arms it (EPOLL_CTL_MOD
 * queues it again, behind the sockets already waiting).  A read shorter
 * than asked drained the socket unless the peer's FIN is known to be
 * there too (EPOLLRDHUP): then the next read returns the end.  A batch of
 * events is played in the order the kernel queued them, so the socket that
 * became ready first is served first; libev would play its pending
 * watchers last-in first-out, and the oldest request of a busy batch would
 * wait for all the others (a longer tail).  A proxied connection costs two
 * epoll_ctl calls in all.
 *
 * Ownership: conn_close() unlinks and closes the connection and puts it on
 * a list freed after the batch (conn_reap), so a later event of the same
 * batch that points at it finds it closed.  Every callback returns right
 * after conn_close, and helpers that may close return true when they did.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tether.h"
#include "tether/http.h"

#define PUMP_ROUNDS 4           /* reads per readiness event before yielding */
#define IO_BATCH 256            /* events per epoll_wait */
#define IO_R 1
#define IO_W 2

enum conn_state { ST_HEAD, ST_CONNECTING, ST_RELAY };

/* Bytes waiting to be written to one side. */
struct pbuf {
	uint32_t off, len, cap;
	char data[];
};

struct side {
	int fd;
	uint8_t want;               /* IO_R | IO_W: what the connection waits for */
	bool client;                /* this side is conn.c (the client's) */
	struct pbuf *out;           /* pending bytes for this fd, NULL when none */
	ev_tstamp last;             /* last read from or write to this fd */
	bool rd_eof;                /* EOF read from this fd */
	bool wr_shut;               /* shutdown(SHUT_WR) done towards this fd */
	bool watched;               /* fd is in the epoll set */
	bool rd_ready;              /* fd may hold unread bytes or an unread end */
	bool rd_hup;                /* the peer's FIN (or an error) has arrived */
};

struct conn {
	struct side c, s;           /* client, server */
	ev_timer timer;
	struct t_frontend *fe;      /* its generation is referenced (gen_put in conn_reap) */
	struct t_backend *be;       /* of the same generation */
	struct t_server *srv;       /* current attempt, then the server; NULL before */
	struct conn *prev, *next;   /* tether.conns; once closed, next links tether.dead */
	bool closed;
	ev_tstamp start, connect_start;
	uint64_t bytes_in, bytes_out;
	float connect_ms;
	uint16_t port;              /* client port, host order */
	uint8_t state;
	uint8_t attempts;
	uint8_t first_eof;          /* END_CLIENT_CLOSED or END_SERVER_CLOSED: who closed first */
	bool injecting;             /* inserting Set-Cookie into the first response */
	bool head_http;             /* head is a complete HTTP/1.x request head */
	char *head;                 /* cookie mode: the client's first bytes */
	uint32_t head_len;
	struct http_inject inj;
	struct lb_key key;          /* client address, cookie, tried servers */
};

const char *t_end_name(enum t_end e)
{
	static const char *const names[] = {
		[END_CLIENT_CLOSED] = "client-closed", [END_SERVER_CLOSED] = "server-closed",
		[END_CLIENT_TIMEOUT] = "client-timeout", [END_SERVER_TIMEOUT] = "server-timeout",
		[END_CONNECT_FAILED] = "connect-failed", [END_NO_SERVER] = "no-server",
		[END_CLIENT_RESET] = "client-reset", [END_SERVER_RESET] = "server-reset",
		[END_SHUTDOWN] = "shutdown", [END_SERVER_DOWN] = "server-down",
		[END_HEAD_TIMEOUT] = "request-timeout", [END_ERROR] = "error",
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

static struct conn *side_conn(struct side *sd)
{
	return sd->client ? container_of(sd, struct conn, c) : container_of(sd, struct conn, s);
}

/* Adds sd's fd to the epoll set (first call) or queues it again (later
 * calls: the kernel reports it once more if it is ready).  False when the
 * kernel refused (out of memory or watches). */
static bool io_arm(struct conn *cn, struct side *sd)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = sd };

	if (epoll_ctl(cn->fe->t->epfd, sd->watched ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, sd->fd, &ev) < 0) {
		log_printf("epoll_ctl: %s", strerror(errno));
		return false;
	}
	sd->watched = true;
	return true;
}

static void conn_close(struct conn *cn, enum t_end why, bool reset);

/* Waits for `what` on sd: no system call unless sd is not yet watched, or
 * reading resumes on a socket that may still hold bytes.  When the kernel
 * refuses, the connection is closed and false returned. */
static bool io_start(struct conn *cn, struct side *sd, uint8_t what)
{
	bool resume = (what & IO_R) && !(sd->want & IO_R) && sd->rd_ready;

	sd->want |= what;
	if (sd->fd < 0 || (sd->watched && !resume) || io_arm(cn, sd))
		return true;
	conn_close(cn, END_ERROR, true);
	return false;
}

static void io_stop(struct side *sd, uint8_t what)
{
	sd->want &= (uint8_t)~what;
}

/* Closes the fd (which leaves the epoll set); with `reset`, as an RST
 * (SO_LINGER 0) so the peer sees the error. */
static void side_close(struct side *sd, bool reset)
{
	sd->want = 0;
	sd->watched = sd->rd_ready = sd->rd_hup = false;
	if (sd->fd >= 0) {
		if (reset) {
			struct linger lg = { 1, 0 };

			setsockopt(sd->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		close(sd->fd);
		sd->fd = -1;
	}
	free(sd->out);
	sd->out = NULL;
}

/* Closes both sides, logs, and queues cn to be freed after the batch.  A
 * second call does nothing. */
static void conn_close(struct conn *cn, enum t_end why, bool reset)
{
	struct tether *t = cn->fe->t;
	struct ev_loop *loop = t->loop;
	char client[64];

	if (cn->closed)
		return;
	cn->closed = true;
	ev_timer_stop(loop, &cn->timer);
	side_close(&cn->c, reset);
	side_close(&cn->s, reset);
	client_text(cn, client, sizeof(client));
	log_printf("%s %s %s/%s connect=%.1fms duration=%.0fms in=%llu out=%llu end=%s", client,
	           cn->fe->cfg.name, cn->be->cfg.name, cn->srv ? cn->srv->lb.name : "-",
	           cn->srv ? (double)cn->connect_ms : -1.0, (ev_now(loop) - cn->start) * 1000.0,
	           (unsigned long long)cn->bytes_in, (unsigned long long)cn->bytes_out, t_end_name(why));
	if (cn->srv) {
		srv_conn_end(cn->srv);  /* may free a deleted server */
		cn->srv = NULL;
	}
	if (cn->prev)
		cn->prev->next = cn->next;
	else
		t->conns = cn->next;
	if (cn->next)
		cn->next->prev = cn->prev;
	cn->next = t->dead;
	t->dead = cn;
	cn->fe->active--;
	t->active--;
	if (t->draining) {
		if (t->active == 0)
			ev_break(loop, EVBREAK_ALL);
	} else if (t->accept_paused && !ev_is_active(&t->accept_timer)) {
		tether_accept_resume(t);
	}
}

static void route_head(struct conn *cn);
static void connect_failed(struct conn *cn, const char *why);
static void connect_start(struct conn *cn);

/* Deadline check; re-arms the timer for the earliest next deadline. */
static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct conn *cn = container_of(w, struct conn, timer);
	const struct cfg_timeouts *to = &cn->be->cfg.timeouts;
	ev_tstamp now = ev_now(loop), next;
	ev_tstamp cdl, sdl;

	switch (cn->state) {
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
	ev_timer_set(w, next - now + 0.001, 0.);
	ev_timer_start(loop, w);
}

static void arm_timer(struct conn *cn, double seconds)
{
	struct ev_loop *loop = cn->fe->t->loop;

	ev_timer_stop(loop, &cn->timer);
	ev_timer_set(&cn->timer, seconds, 0.);
	ev_timer_start(loop, &cn->timer);
}

/* Both directions finished and flushed: close normally, naming the side
 * that closed first. */
static bool maybe_done(struct conn *cn)
{
	if (cn->c.rd_eof && cn->s.wr_shut && cn->s.rd_eof && cn->c.wr_shut) {
		conn_close(cn, (enum t_end)cn->first_eof, false);
		return true;
	}
	return false;
}

static struct side *peer_of(struct conn *cn, struct side *sd)
{
	return sd == &cn->c ? &cn->s : &cn->c;
}

/* Everything for `to` is written and its peer has ended: pass the FIN on
 * (shutdown SHUT_WR; the other direction keeps flowing).  When the other
 * direction has ended too, close instead: close() sends the same FIN, so
 * the last half-close costs no shutdown call.  True when cn was closed. */
static bool pass_fin(struct conn *cn, struct side *to)
{
	if (!to->wr_shut) {
		if (to->rd_eof && peer_of(cn, to)->wr_shut) {
			conn_close(cn, (enum t_end)cn->first_eof, false);
			return true;
		}
		shutdown(to->fd, SHUT_WR);
		to->wr_shut = true;
	}
	return maybe_done(cn);
}

/* Appends bytes to a side's pending buffer. */
static bool pbuf_append(struct side *to, const char *data, size_t len)
{
	struct pbuf *b = to->out;

	if (!b || b->len + len > b->cap) {
		size_t used = b ? b->len - b->off : 0, cap = used + len;
		struct pbuf *n = malloc(sizeof(*n) + cap);

		if (!n)
			return false;
		if (b)
			memcpy(n->data, b->data + b->off, used);
		n->off = 0;
		n->len = (uint32_t)used;
		n->cap = (uint32_t)cap;
		free(b);
		to->out = b = n;
	}
	memcpy(b->data + b->len, data, len);
	b->len += (uint32_t)len;
	return true;
}

/*
 * Sends data to `to`, keeping what it cannot take.  Returns false when the
 * connection was closed (peer reset or out of memory).
 */
static bool send_to(struct conn *cn, struct side *to, const char *data, size_t len)
{
	struct ev_loop *loop = cn->fe->t->loop;
	ssize_t n = 0;

	if (!to->out) {
		n = send(to->fd, data, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				conn_close(cn, to == &cn->c ? END_CLIENT_RESET : END_SERVER_RESET, true);
				return false;
			}
			n = 0;
		} else {
			to->last = ev_now(loop);
		}
		if ((size_t)n == len)
			return true;
	}
	if (!pbuf_append(to, data + n, len - (size_t)n)) {
		conn_close(cn, END_ERROR, true);
		return false;
	}
	return io_start(cn, to, IO_W);
}

/* Server -> client bytes while the Set-Cookie header is still to insert. */
static bool send_injecting(struct conn *cn, const char *buf, size_t n)
{
	char hdr[512];
	bool ins;
	size_t k = http_inject_scan(&cn->inj, buf, n, &ins);
	int hlen;

	if (!send_to(cn, &cn->c, buf, k))
		return false;
	if (ins) {
		hlen = http_format_set_cookie(hdr, sizeof(hdr), cn->be->cfg.cookie_name, cn->srv->lb.cookie,
		                              cn->be->cfg.cookie_max_age_s);
		if (hlen > 0 && !send_to(cn, &cn->c, hdr, (size_t)hlen))
			return false;
	}
	if (cn->inj.done)
		cn->injecting = false;
	return k == n || send_to(cn, &cn->c, buf + k, n - k);
}

/* `from` is readable: move its bytes to its peer. */
static void pump(struct conn *cn, struct side *from)
{
	struct tether *t = cn->fe->t;
	struct side *to = peer_of(cn, from);
	bool from_client = from == &cn->c;

	for (int round = 0; round < PUMP_ROUNDS; round++) {
		ssize_t n = recv(from->fd, t->scratch, t->scratch_size, 0);

		if (n > 0) {
			from->last = ev_now(t->loop);
			if (from_client) {
				cn->bytes_in += (uint64_t)n;
				cn->srv->bytes_in_total += (uint64_t)n;
			} else {
				cn->bytes_out += (uint64_t)n;
				cn->srv->bytes_out_total += (uint64_t)n;
			}
			if (!from_client && cn->injecting) {
				if (!send_injecting(cn, t->scratch, (size_t)n))
					return;
			} else if (!send_to(cn, to, t->scratch, (size_t)n)) {
				return;
			}
			if ((size_t)n < t->scratch_size && !from->rd_hup)
				from->rd_ready = false;         /* drained */
			if (to->out) {          /* backpressure: wait for the peer */
				io_stop(from, IO_R);
				return;
			}
			if (!from->rd_ready)
				return;
			continue;
		}
		if (n == 0) {
			if (!cn->c.rd_eof && !cn->s.rd_eof)
				cn->first_eof = from_client ? END_CLIENT_CLOSED : END_SERVER_CLOSED;
			from->rd_eof = true;
			if (to->out ? !maybe_done(cn) : !pass_fin(cn, to))
				io_stop(from, IO_R);        /* when done, close() left the epoll set */
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			from->rd_ready = false;
			return;
		}
		conn_close(cn, from_client ? END_CLIENT_RESET : END_SERVER_RESET, true);
		return;
	}
	/* PUMP_ROUNDS full reads: let the others have a turn, then come back */
	if (!io_arm(cn, from))
		conn_close(cn, END_ERROR, true);
}

/* `to` is writable: flush its pending bytes; resume the source when empty. */
static void flush(struct conn *cn, struct side *to)
{
	struct ev_loop *loop = cn->fe->t->loop;
	struct side *from = peer_of(cn, to);
	struct pbuf *b = to->out;
	ssize_t n;

	while (b->off < b->len) {
		n = send(to->fd, b->data + b->off, b->len - b->off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EINTR)
				continue;
			conn_close(cn, to == &cn->c ? END_CLIENT_RESET : END_SERVER_RESET, true);
			return;
		}
		to->last = ev_now(loop);
		b->off += (uint32_t)n;
	}
	free(b);
	to->out = NULL;
	io_stop(to, IO_W);
	if (from->rd_eof)
		pass_fin(cn, to);
	else if (cn->state == ST_RELAY) {
		io_start(cn, from, IO_R);
	}
}

static void connected(struct conn *cn)
{
	struct ev_loop *loop = cn->fe->t->loop;
	const struct cfg_backend *bc = &cn->be->cfg;
	bool peeked = cn->head != NULL;

	cn->state = ST_RELAY;
	cn->connect_ms = (float)((ev_now(loop) - cn->connect_start) * 1000.0);
	srv_observe(cn->srv, true, "connected");
	cn->c.last = cn->s.last = ev_now(loop);
	io_stop(&cn->s, IO_W);
	if (!io_start(cn, &cn->s, IO_R) || !io_start(cn, &cn->c, IO_R))
		return;
	if (cn->head) {
		/* cookie mode: a fresh cookie unless the client holds this server's */
		if (cn->head_http && !(cn->key.cookie && cn->key.cookie_len == LB_COOKIE_LEN &&
		                       memcmp(cn->key.cookie, cn->srv->lb.cookie, LB_COOKIE_LEN) == 0)) {
			cn->injecting = true;
			http_inject_init(&cn->inj);
		}
		cn->key.cookie = NULL;          /* it pointed into head */
		cn->bytes_in += cn->head_len;
		cn->srv->bytes_in_total += cn->head_len;
		if (cn->head_len && !send_to(cn, &cn->s, cn->head, cn->head_len))
			return;
		free(cn->head);
		cn->head = NULL;
		if (cn->s.out)
			io_stop(&cn->c, IO_R);
		if (cn->c.rd_eof && !cn->s.out && pass_fin(cn, &cn->s))
			return;
	}
	arm_timer(cn, (bc->timeouts.client_ms < bc->timeouts.server_ms ? bc->timeouts.client_ms
	                                                                : bc->timeouts.server_ms) / 1000.0);
	/* The client has usually sent its request while the connect was under
	 * way: forward it now rather than one loop turn later (a read that
	 * finds nothing costs one recv; the watcher is armed either way). */
	if (!peeked && !cn->closed)
		pump(cn, &cn->c);
}

/* The attempt on cn->srv failed: count it, then retry another server or give up. */
static void connect_failed(struct conn *cn, const char *why)
{
	struct t_server *s = cn->srv;

	side_close(&cn->s, false);
	s->connect_failures_total++;
	cn->srv = NULL;
	srv_observe(s, false, why);
	srv_conn_end(s);                /* may free a deleted server */
	if (cn->attempts <= cn->be->cfg.retries) {
		cn->be->retries_total++;
		connect_start(cn);
		return;
	}
	conn_close(cn, END_CONNECT_FAILED, false);
}

/* The server side is writable: the connect finished, or room to flush.
 * `events` are epoll's: only with an error or hang-up flag can a finished
 * connect have failed, so a clean one costs no getsockopt. */
static void server_writable(struct conn *cn, uint32_t events)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (cn->state == ST_CONNECTING) {
		if ((events & (EPOLLERR | EPOLLHUP)) && getsockopt(cn->s.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			connect_failed(cn, strerror(err));
			return;
		}
		connected(cn);
		return;
	}
	flush(cn, &cn->s);
}

/* Picks a server not yet tried and starts a non-blocking connect. */
static void connect_start(struct conn *cn)
{
	struct tether *t = cn->fe->t;
	struct t_backend *be = cn->be;
	struct t_server *s;
	int idx, fd, one = 1;

	{
		idx = lb_pick(&be->pool, &cn->key, now_ms(t->loop), &t->rng);
		if (idx < 0) {
			if (cn->attempts == 0)
				be->no_server_total++;
			conn_close(cn, cn->attempts == 0 ? END_NO_SERVER : END_CONNECT_FAILED, false);
			return;
		}
		s = be->pool.servers[idx]->data;
		lb_key_add_tried(&cn->key, &s->lb);
		lb_conn_open(&be->pool, &s->lb);
		s->connections_total++;
		cn->srv = s;
		cn->attempts++;
		cn->state = ST_CONNECTING;
		cn->connect_start = ev_now(t->loop);
		fd = socket(s->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			log_printf("socket: %s", strerror(errno));
			cn->srv = NULL;
			srv_conn_end(s);
			conn_close(cn, END_ERROR, false);
			return;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
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
		/* refused at once (e.g. unreachable): count it and try the next */
		connect_failed(cn, strerror(errno));
	}
}

/*
 * Cookie mode: the head is complete, over the limit, timed out, or not
 * HTTP.  A complete HTTP/1.x head routes by its cookie (and gets a
 * Set-Cookie when it lands elsewhere); anything else routes by fallback and
 * passes through untouched.
 */
static void route_head(struct conn *cn)
{
	const struct cfg_backend *bc = &cn->be->cfg;

	io_stop(&cn->c, IO_R);
	cn->key.cookie = NULL;
	cn->key.cookie_len = 0;
	cn->head_http = http_peek_cookie(cn->head, cn->head_len, bc->cookie_name, strlen(bc->cookie_name),
	                                 &cn->key.cookie, &cn->key.cookie_len) > 0;
	connect_start(cn);
}

/* Cookie mode: the client sent more of its head.  Reads until the head is
 * complete or the socket drained (edge-triggered: no event comes for bytes
 * already there). */
static void head_read(struct conn *cn)
{
	uint32_t cap = cn->be->cfg.peek_max;
	const char *v;
	size_t vl;

	for (;;) {
		size_t room = cap - cn->head_len;
		ssize_t n = recv(cn->c.fd, cn->head + cn->head_len, room, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				cn->c.rd_ready = false;
				return;
			}
			conn_close(cn, END_CLIENT_RESET, true);
			return;
		}
		if (n == 0) {
			cn->c.rd_eof = true;
			cn->first_eof = END_CLIENT_CLOSED;
			if (cn->head_len == 0) {        /* closed without a byte: nothing to route */
				conn_close(cn, END_CLIENT_CLOSED, false);
				return;
			}
			route_head(cn);
			return;
		}
		cn->head_len += (uint32_t)n;
		if ((size_t)n < room && !cn->c.rd_hup)
			cn->c.rd_ready = false;         /* drained */
		if (cn->head_len == cap ||
		    http_peek_cookie(cn->head, cn->head_len, cn->be->cfg.cookie_name, strlen(cn->be->cfg.cookie_name),
		                     &v, &vl) != HTTP_PARTIAL) {
			route_head(cn);
			return;
		}
		if (!cn->c.rd_ready)
			return;
	}
}

void conn_accept(struct t_frontend *fe, int fd, const struct sockaddr_storage *ss, socklen_t len)
{
	struct tether *t = fe->t;
	struct conn *cn = calloc(1, sizeof(*cn));

	if (!cn) {
		close(fd);
		return;
	}
	cn->fe = fe;
	gen_get(fe->gen);
	cn->be = fe->be;
	cn->c.fd = fd;
	cn->s.fd = -1;
	cn->start = ev_now(t->loop);
	key_set_addr(&cn->key, ss, &cn->port);
	cn->c.client = true;
	ev_init(&cn->timer, timer_cb);
	cn->next = t->conns;
	if (t->conns)
		t->conns->prev = cn;
	t->conns = cn;
	fe->active++;
	fe->connections_total++;
	t->active++;
	if (cn->be->pool.algo->flags & LB_F_NEEDS_HTTP) {
		cn->head = malloc(cn->be->cfg.peek_max);
		if (!cn->head) {
			conn_close(cn, END_ERROR, false);
			return;
		}
		cn->state = ST_HEAD;
		if (!io_start(cn, &cn->c, IO_R))
			return;
		arm_timer(cn, cn->be->cfg.timeouts.http_request_ms / 1000.0);
		return;
	}
	connect_start(cn);
}

void conn_close_all(struct tether *t, enum t_end why)
{
	while (t->conns)
		conn_close(t->conns, why, false);
}

void conn_close_server(struct tether *t, struct t_server *s)
{
	struct conn *cn = t->conns, *next;

	for (; cn; cn = next) {
		next = cn->next;
		if (cn->srv == s && cn->state == ST_RELAY)
			conn_close(cn, END_SERVER_DOWN, true);
	}
}

/* Frees the connections closed since the last call. */
void conn_reap(struct tether *t)
{
	while (t->dead) {
		struct conn *cn = t->dead;

		t->dead = cn->next;
		gen_put(cn->fe->gen);   /* may free fe and be: cn is not used after */
		free(cn->head);
		free(cn);
	}
}

/* The epoll set of the connections is ready: play its events in the
 * kernel's order (see the top of the file). */
void conn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct tether *t = container_of(w, struct tether, io);
	struct epoll_event ev[IO_BATCH];
	int n = epoll_wait(t->epfd, ev, IO_BATCH, 0);

	for (int i = 0; i < n; i++) {
		struct side *sd = ev[i].data.ptr;
		struct conn *cn = side_conn(sd);
		uint32_t e = ev[i].events;

		if (cn->closed || sd->fd < 0)
			continue;
		if (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			sd->rd_hup = true;
		if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			sd->rd_ready = true;
		if (sd->rd_ready && (sd->want & IO_R)) {
			if (cn->state == ST_HEAD)
				head_read(cn);
			else
				pump(cn, sd);
			if (cn->closed || sd->fd < 0)
				continue;
		}
		if ((e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && (sd->want & IO_W)) {
			if (sd->client)
				flush(cn, sd);
			else
				server_writable(cn, e);
		}
	}
	conn_reap(t);
}
