/*
 * tether - the relay: bytes between a client and its server, half-close,
 * resets and backpressure (shared definitions in proxy_int.h).
 *
 * Bytes are read into the worker's one scratch buffer and written to the
 * peer at once.  Only when the peer takes part of them is the rest kept in
 * a per-direction buffer (struct pbuf), and reading from the source stops
 * until that buffer drains: memory per connection is bounded by one read,
 * and an idle connection holds no buffer at all.
 *
 * Readiness is edge-triggered (poller.h).  A side remembers whether its
 * last read drained the socket (`rd_ready`), and only resuming a side that
 * may still hold bytes re-arms it (EPOLL_CTL_MOD queues it again, behind
 * the sockets already waiting).  A read shorter than asked drained the
 * socket unless the peer's FIN is known to be there too (EPOLLRDHUP): then
 * the socket holds nothing more but the end, and when no error came with it
 * the end is taken as read (the kernel queues a FIN behind every byte sent
 * before it, so a short read after it left nothing to read).  A proxied
 * connection costs two epoll_ctl calls in all.
 *
 * Timeouts: reads and writes only record ev_now() in the side's `last`;
 * the connection's one timer (proxy.c) re-arms itself for what is left,
 * so activity costs no timer operation.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy_int.h"

#define PUMP_ROUNDS 4           /* reads per readiness event before yielding */

bool io_arm(struct conn *cn, struct side *sd)
{
	int rc = poller_arm(&cn->w->poller, sd->fd, &sd->it, sd->watched);

	if (rc < 0) {
		log_printf(cn->w->log, "epoll_ctl: %s", strerror(-rc));
		return false;
	}
	sd->watched = true;
	return true;
}

bool io_start(struct conn *cn, struct side *sd, uint8_t what)
{
	bool resume = (what & IO_R) && !(sd->want & IO_R) && sd->rd_ready;

	sd->want |= what;
	if (sd->fd < 0 || (sd->watched && !resume) || io_arm(cn, sd))
		return true;
	conn_close(cn, END_ERROR, true);
	return false;
}

void io_stop(struct side *sd, uint8_t what)
{
	sd->want &= (uint8_t)~what;
}

void side_close(struct side *sd, bool reset)
{
	sd->want = 0;
	sd->watched = sd->rd_ready = sd->rd_hup = sd->rd_fin = false;
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
 * the last half-close costs no shutdown call. */
bool pass_fin(struct conn *cn, struct side *to)
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

bool send_to(struct conn *cn, struct side *to, const char *data, size_t len)
{
	ssize_t n = 0;

	if (!to->out) {
		n = send(to->fd, data, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				conn_close(cn, to->client ? END_CLIENT_RESET : END_SERVER_RESET, true);
				return false;
			}
			n = 0;
		} else {
			to->last = ev_now(cn->w->loop);
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

/* Counts n bytes read from `from`; false when they could not be forwarded
 * (cn was closed). */
static bool forward(struct conn *cn, struct side *from, struct side *to, const char *buf, size_t n)
{
	from->last = ev_now(cn->w->loop);
	if (from->client) {
		cn->bytes_in += n;
		T_ADD(&cn->srv->bytes_in_total, n);
	} else {
		cn->bytes_out += n;
		T_ADD(&cn->srv->bytes_out_total, n);
		if (cn->injecting)
			return send_injecting(cn, buf, n);
	}
	return send_to(cn, to, buf, n);
}

/* The end of `from` is read: pass it on, or close when both have ended. */
static void read_end(struct conn *cn, struct side *from, struct side *to)
{
	if (!cn->c.rd_eof && !cn->s.rd_eof)
		cn->first_eof = from->client ? END_CLIENT_CLOSED : END_SERVER_CLOSED;
	from->rd_eof = true;
	from->rd_ready = false;
	if (to->out ? !maybe_done(cn) : !pass_fin(cn, to))
		io_stop(from, IO_R);        /* when done, close() left the epoll set */
}

void pump(struct conn *cn, struct side *from)
{
	struct t_worker *w = cn->w;
	struct side *to = from == &cn->c ? &cn->s : &cn->c;

	for (int round = 0; round < PUMP_ROUNDS; round++) {
		ssize_t n = recv(from->fd, w->scratch, w->scratch_size, 0);

		if (n > 0) {
			bool end = false;

			if (!forward(cn, from, to, w->scratch, (size_t)n))
				return;
			if ((size_t)n < w->scratch_size) {
				end = from->rd_fin;             /* only the FIN is left */
				if (!from->rd_hup)
					from->rd_ready = false; /* drained */
			}
			if (to->out) {          /* backpressure: wait for the peer */
				io_stop(from, IO_R);
				return;
			}
			if (end) {
				read_end(cn, from, to);
				return;
			}
			if (!from->rd_ready)
				return;
			continue;
		}
		if (n == 0) {
			read_end(cn, from, to);
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			from->rd_ready = false;
			return;
		}
		conn_close(cn, from->client ? END_CLIENT_RESET : END_SERVER_RESET, true);
		return;
	}
	/* PUMP_ROUNDS full reads: let the others have a turn, then come back */
	if (!io_arm(cn, from))
		conn_close(cn, END_ERROR, true);
}

void flush(struct conn *cn, struct side *to)
{
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
			conn_close(cn, to->client ? END_CLIENT_RESET : END_SERVER_RESET, true);
			return;
		}
		to->last = ev_now(cn->w->loop);
		b->off += (uint32_t)n;
	}
	free(b);
	to->out = NULL;
	io_stop(to, IO_W);
	if (from->rd_eof)
		pass_fin(cn, to);
	else if (cn->state == ST_RELAY)
		io_start(cn, from, IO_R);
}
