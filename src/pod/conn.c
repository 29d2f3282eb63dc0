/*
 * conn.c - tether-pod's HTTP/1.1 connections (see pod.h).
 *
 * Keep-alive and pipelining: every complete request in the input buffer is
 * answered in order, a batch per half output buffer.  A request that waits
 * for Redis parks its connection: nothing more is read or answered on it
 * until the op is done (so answers stay in request order), and it is not
 * closed under the op (the op only drops its pointer if the client goes).
 * No allocation per request: a connection's buffers are part of it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pod.h"
#include "tether/proxy_proto.h"

#define IDLE_TIMEOUT 60.0       /* s without a byte from the client */
#define ACCEPT_BATCH 64         /* accepts per wake-up, to stay fair to clients */

static void client_free(struct client *c)
{
	struct pod *p = c->pod;

	if (c->op)
		c->op->client = NULL;
	if (c->prev)
		c->prev->next = c->next;
	else
		p->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	ev_io_stop(p->loop, &c->rio);
	ev_io_stop(p->loop, &c->wio);
	ev_timer_stop(p->loop, &c->idle);
	close(c->fd);
	free(c);
}

static const char *status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 404: return "Not Found";
	case 413: return "Payload Too Large";
	case 431: return "Request Header Fields Too Large";
	case 503: return "Service Unavailable";
	default: return status < 400 ? "OK" : "Error";
	}
}

void conn_respond(struct client *c, int status, const char *ctype, const char *extra, const char *body)
{
	size_t room = sizeof(c->out) - c->out_len;
	int n = snprintf(c->out + c->out_len, room,
	                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nX-Pod: %s\r\n%s%s\r\n%s",
	                 status, status_text(status), ctype, strlen(body), c->pod->name, extra,
	                 c->close_after ? "Connection: close\r\n" : "", body);

	if (n > 0 && (size_t)n < room)
		c->out_len += (size_t)n;
	else
		c->close_after = true;      /* output full: finish what we have */
}

/* Sends what is pending.  false when c was freed. */
static bool flush_out(struct ev_loop *loop, struct client *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ev_io_stop(loop, &c->rio);
			ev_io_start(loop, &c->wio);
			return true;
		}
		if (n < 0) {
			client_free(c);
			return false;
		}
		c->out_off += (size_t)n;
	}
	c->out_len = c->out_off = 0;
	ev_io_stop(loop, &c->wio);
	if (c->op)                  /* parked: the answer to come decides */
		return true;
	if (c->close_after) {
		client_free(c);
		return false;
	}
	if (!c->eof)                /* after the FIN there is nothing more to read */
		ev_io_start(loop, &c->rio);
	return true;
}

/* Handles the complete requests at the start of c->in, until one parks or
 * the output is half full (*more).  Returns the bytes consumed. */
static size_t handle_some(struct client *c, bool *more)
{
	size_t off = 0;

	while (!c->close_after && !c->op) {
		const char *head = c->in + off, *v;
		size_t avail = c->in_len - off, head_len, body = 0, vl;
		const char *eoh = memmem(head, avail, "\r\n\r\n", 4);
		struct req r;

		if (!eoh)
			break;
		if (c->out_len >= sizeof(c->out) / 2) {
			*more = true;
			break;
		}
		head_len = (size_t)(eoh - head) + 4;
		v = req_header(head, eoh + 2, "Content-Length", &vl);
		if (v)
			body = strtoul(v, NULL, 10);
		if (body > POD_REQ_MAX) {
			c->close_after = true;
			conn_respond(c, 413, "text/plain", "", "too large\n");
			break;
		}
		if (head_len + body > avail)
			break;
		off += head_len + body;
		if (req_parse(&r, head, head_len) < 0) {
			c->close_after = true;
			conn_respond(c, 400, "text/plain", "", "bad request\n");
			break;
		}
		r.body = body ? head + head_len : NULL;
		r.body_len = body;
		if (r.close)
			c->close_after = true;
		app_handle(c->pod, c, &r);
	}
	return off;
}

/* Answers every complete request in the buffer (pipelining); after the
 * client's FIN, closes once all are answered. */
static void process(struct ev_loop *loop, struct client *c)
{
	bool more;

	do {
		size_t off;

		more = false;
		off = handle_some(c, &more);
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
		if (!c->op && c->in_len == sizeof(c->in)) {
			c->close_after = true;
			conn_respond(c, 431, "text/plain", "", "too large\n");
		} else if (!c->op && c->eof && !more) {
			c->close_after = true;
		}
		if (!flush_out(loop, c))
			return;
	} while (more && c->out_len == 0);
}

void conn_park(struct client *c, struct pod_op *op)
{
	c->op = op;
	op->client = c;
	ev_io_stop(c->pod->loop, &c->rio);
}

void conn_resume(struct client *c)
{
	c->op = NULL;
	process(c->pod->loop, c);
}

/* Counts a client address among the distinct ones (IPv4 as ::ffff:a.b.c.d);
 * `addr` is 4 or 16 bytes. */
static void count_addr(struct pod *p, const unsigned char *addr, size_t len)
{
	unsigned char a[16] = { 0 };

	if (len == 4) {
		a[10] = a[11] = 0xff;
		memcpy(a + 12, addr, 4);
	} else {
		memcpy(a, addr, 16);
	}
	addrset_add(&p->addrs, a);
}

static void count_peer(struct pod *p, const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		count_addr(p, (const unsigned char *)&((const struct sockaddr_in *)ss)->sin_addr, 4);
	else if (ss->ss_family == AF_INET6)
		count_addr(p, (const unsigned char *)&((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
}

static void addr_text(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	char h[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, h, sizeof(h));
		snprintf(out, cap, "[%s]:%u", h, ntohs(((const struct sockaddr_in6 *)ss)->sin6_port));
	} else {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, h, sizeof(h));
		snprintf(out, cap, "%s:%u", h, ntohs(((const struct sockaddr_in *)ss)->sin_port));
	}
}

/*
 * --proxy-protocol: the PROXY header at the start of c->in (the spec asks a
 * receiver not to guess: a connection without one is refused).  Its client
 * address is the one counted and logged; LOCAL (a balancer's health check)
 * and UNKNOWN keep the peer's.  Returns false when c was freed.
 */
static bool read_proxy_header(struct client *c)
{
	struct pod *p = c->pod;
	char peer[64], client[64];
	struct pp_info pi;
	int r = pp_parse(c->in, c->in_len, &pi);

	if (r == PP_PARTIAL && !c->eof)
		return true;
	if (c->in_len == 0) {           /* closed without a byte: a TCP health check */
		client_free(c);
		return false;
	}
	if (r < 0) {
		p->st.proxy_errors++;
		if (p->log_connections) {
			addr_text(&c->peer, peer, sizeof(peer));
			fprintf(stderr, "tether-pod %s: connection from %s: no valid PROXY header: closed\n", p->name, peer);
		}
		client_free(c);
		return false;
	}
	c->pp_pending = false;
	memmove(c->in, c->in + r, c->in_len - (size_t)r);
	c->in_len -= (size_t)r;
	if (pi.command == PP_CMD_PROXY && pi.family != PP_AF_UNSPEC) {
		struct sockaddr_storage ss = { 0 };

		count_addr(p, pi.src, pi.family == PP_AF_INET ? 4 : 16);
		if (pi.family == PP_AF_INET) {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

			s4->sin_family = AF_INET;
			memcpy(&s4->sin_addr, pi.src, 4);
			s4->sin_port = htons(pi.src_port);
		} else {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

			s6->sin6_family = AF_INET6;
			memcpy(&s6->sin6_addr, pi.src, 16);
			s6->sin6_port = htons(pi.src_port);
		}
		addr_text(&ss, client, sizeof(client));
	} else {                /* the balancer's own connection (a check): not a client */
		addr_text(&c->peer, client, sizeof(client));
	}
	if (p->log_connections) {
		addr_text(&c->peer, peer, sizeof(peer));
		fprintf(stderr, "tether-pod %s: connection from %s (PROXY v%d%s via %s)\n", p->name, client, pi.version,
		        pi.command == PP_CMD_LOCAL ? " LOCAL" : "", peer);
	}
	return true;
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *c = container_of(w, struct client, rio);
	ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n == 0) {
		c->eof = true;
		ev_io_stop(loop, &c->rio);
		if (c->pp_pending && !read_proxy_header(c))
			return;
		process(loop, c);
		return;
	}
	if (n < 0) {
		client_free(c);
		return;
	}
	c->in_len += (size_t)n;
	ev_timer_again(loop, &c->idle);
	if (c->pp_pending && (!read_proxy_header(c) || c->pp_pending))
		return;
	process(loop, c);
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *c = container_of(w, struct client, wio);

	if (flush_out(loop, c) && c->in_len && !c->op)
		process(loop, c);
}

static void idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	client_free(container_of(w, struct client, idle));
}

void conn_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct pod *p = w->data;

	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(w->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct client *c;

		if (fd < 0)
			return;
		c = malloc(sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		p->st.connections++;
		c->peer = ss;
		c->pp_pending = p->proxy_protocol;
		if (!c->pp_pending) {
			count_peer(p, &ss);
			if (p->log_connections) {
				char peer[64];

				addr_text(&ss, peer, sizeof(peer));
				fprintf(stderr, "tether-pod %s: connection from %s\n", p->name, peer);
			}
		}
		c->pod = p;
		c->fd = fd;
		c->op = NULL;
		c->in_len = c->out_len = c->out_off = 0;
		c->close_after = c->eof = false;
		c->prev = NULL;
		c->next = p->clients;
		if (c->next)
			c->next->prev = c;
		p->clients = c;
		ev_io_init(&c->rio, read_cb, fd, EV_READ);
		ev_io_init(&c->wio, write_cb, fd, EV_WRITE);
		ev_timer_init(&c->idle, idle_cb, 0., IDLE_TIMEOUT);
		ev_io_start(loop, &c->rio);
		ev_timer_again(loop, &c->idle);
	}
}

void conn_close_all(struct pod *p)
{
	while (p->clients)
		client_free(p->clients);
}
