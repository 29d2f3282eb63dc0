/*
 * tether - the PROXY protocol on proxied connections (parsing and writing
 * are src/http/proxy_proto.c's, pure and fuzzed).
 *
 * Reading (frontend accept_proxy): the header is peeked (MSG_PEEK, at most
 * PP_MAX bytes) until it parses, then exactly its bytes are consumed, so
 * what follows stays in the socket for the relay or the cookie peek and no
 * byte of the client's stream is copied twice.  A partial header waits for
 * more bytes (a new edge comes with them) until the frontend's
 * proxy_timeout; a malformed one, or an end of stream inside it, closes the
 * connection and counts in the frontend's proxy_errors_total.  The address
 * it gives replaces the peer's in the connection's key, so that iphash, the
 * stick table and the log line use it.
 *
 * Writing (backend send_proxy): the header goes first on every server
 * connection, retries included, describing the client (the PROXY header's
 * addresses when there was one, else the client socket's).
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "pp.h"
#include "proxy_int.h"
#include "tether/proxy_proto.h"

static void proxy_error(struct conn *cn)
{
	T_ADD(&cn->fe->proxy_errors_total, 1);
	conn_close(cn, END_PROXY_INVALID, false);
}

/* A PROXY command with an address replaces the peer's; LOCAL, UNKNOWN and
 * AF_UNIX keep the real one (spec 2.1, 2.2). */
static void use_header(struct conn *cn, const struct pp_info *pi)
{
	uint8_t len = pi->family == PP_AF_INET ? 4 : 16;

	if (pi->command != PP_CMD_PROXY || pi->family == PP_AF_UNSPEC)
		return;
	memset(&cn->key.addr, 0, sizeof(cn->key.addr));
	cn->key.addr.len = len;
	memcpy(cn->key.addr.bytes, pi->src, len);
	cn->port = pi->src_port;
	memset(&cn->dst, 0, sizeof(cn->dst));
	cn->dst.len = len;
	memcpy(cn->dst.bytes, pi->dst, len);
	cn->dport = pi->dst_port;
}

void pp_read(struct conn *cn)
{
	char buf[PP_MAX];
	struct pp_info pi;
	ssize_t n;
	int r;

	do
		n = recv(cn->c.fd, buf, sizeof(buf), MSG_PEEK);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			cn->c.rd_ready = false;
		else
			conn_close(cn, END_CLIENT_RESET, true);
		return;
	}
	if (n == 0) {           /* closed before a byte: a TCP check of the balancer in front */
		conn_close(cn, END_CLIENT_CLOSED, false);
		return;
	}
	r = pp_parse(buf, (size_t)n, &pi);
	if (r == PP_PARTIAL) {
		if (cn->c.rd_hup)       /* the rest will never come */
			proxy_error(cn);
		else
			cn->c.rd_ready = false;     /* everything there was peeked: wait for the next edge */
		return;
	}
	if (r < 0) {
		proxy_error(cn);
		return;
	}
	if (recv(cn->c.fd, buf, (size_t)r, 0) != r) {   /* consume exactly the header (it is there) */
		conn_close(cn, END_ERROR, true);
		return;
	}
	use_header(cn, &pi);
	cn->c.rd_ready = n > r || cn->c.rd_hup;
	ev_timer_stop(cn->w->loop, &cn->timer);
	conn_route(cn);
}

void pp_info_from(struct pp_info *pi, const struct sockaddr_storage *src, const struct sockaddr_storage *dst)
{
	memset(pi, 0, sizeof(*pi));
	pi->command = PP_CMD_PROXY;
	if (src->ss_family != dst->ss_family)
		return;                 /* UNSPEC */
	if (src->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)src, *d = (const struct sockaddr_in *)dst;

		pi->family = PP_AF_INET;
		memcpy(pi->src, &s->sin_addr, 4);
		memcpy(pi->dst, &d->sin_addr, 4);
		pi->src_port = ntohs(s->sin_port);
		pi->dst_port = ntohs(d->sin_port);
	} else if (src->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)src, *d = (const struct sockaddr_in6 *)dst;

		pi->family = PP_AF_INET6;
		memcpy(pi->src, &s->sin6_addr, 16);
		memcpy(pi->dst, &d->sin6_addr, 16);
		pi->src_port = ntohs(s->sin6_port);
		pi->dst_port = ntohs(d->sin6_port);
	}
}

int pp_check_header(int fd, int version, char *out, size_t cap)
{
	struct sockaddr_storage me, peer;
	socklen_t ml = sizeof(me), pl = sizeof(peer);
	struct pp_info pi;

	if (version == 2) {     /* LOCAL: "established on purpose by the proxy" (spec 2.2) */
		memset(&pi, 0, sizeof(pi));
		pi.command = PP_CMD_LOCAL;
		return pp_write(out, cap, 2, &pi);
	}
	/* v1 has no LOCAL; the spec asks for the check's own addresses */
	if (getsockname(fd, (struct sockaddr *)&me, &ml) < 0 || getpeername(fd, (struct sockaddr *)&peer, &pl) < 0)
		return -1;
	pp_info_from(&pi, &me, &peer);
	return pp_write(out, cap, 1, &pi);
}

bool pp_send(struct conn *cn)
{
	struct pp_info pi;
	char hdr[PP_MAX];
	int n;

	memset(&pi, 0, sizeof(pi));
	pi.command = PP_CMD_PROXY;
	if (cn->key.addr.len && cn->dst.len == cn->key.addr.len) {
		pi.family = cn->key.addr.len == 4 ? PP_AF_INET : PP_AF_INET6;
		memcpy(pi.src, cn->key.addr.bytes, cn->key.addr.len);
		memcpy(pi.dst, cn->dst.bytes, cn->dst.len);
		pi.src_port = cn->port;
		pi.dst_port = cn->dport;
	} else {
		struct sockaddr_storage peer, me;
		socklen_t pl = sizeof(peer), ml = sizeof(me);

		if (getpeername(cn->c.fd, (struct sockaddr *)&peer, &pl) == 0 &&
		    getsockname(cn->c.fd, (struct sockaddr *)&me, &ml) == 0)
			pp_info_from(&pi, &peer, &me);
	}
	n = pp_write(hdr, sizeof(hdr), cn->be->cfg.send_proxy, &pi);
	if (n < 0) {
		conn_close(cn, END_ERROR, true);
		return false;
	}
	return send_to(cn, &cn->s, hdr, (size_t)n);
}
