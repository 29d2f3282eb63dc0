/*
 * tether - cookie affinity at layer 4: the client's first request head is
 * read (up to the backend's max_head) before a server is chosen, routed by
 * its affinity cookie, and forwarded once the connect completes; the first
 * response head gets a Set-Cookie when the client's cookie does not name
 * the server it reached (the core's lb_cookie_needed).  The parsing itself
 * is src/http's, pure and tested against a guard page.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy_int.h"

/*
 * The head is complete, over the limit, cut by the client's FIN, or not HTTP.  A
 * complete HTTP/1.x head routes by its cookie (and gets a Set-Cookie when
 * it lands elsewhere); anything else routes by fallback and passes through
 * untouched.
 */
void route_head(struct conn *cn)
{
	const struct cfg_backend *bc = &cn->be->cfg;

	io_stop(&cn->c, IO_R);
	cn->key.cookie = NULL;
	cn->key.cookie_len = 0;
	cn->head_http = http_peek_cookie(cn->head, cn->head_len, bc->cookie_name, strlen(bc->cookie_name),
	                                 &cn->key.cookie, &cn->key.cookie_len) > 0;
	connect_start(cn);
}

/* Reads until the head is complete or the socket drained (edge-triggered:
 * no event comes for bytes already there). */
void head_read(struct conn *cn)
{
	const struct cfg_backend *bc = &cn->be->cfg;
	uint32_t cap = bc->peek_max;
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
		    http_peek_cookie(cn->head, cn->head_len, bc->cookie_name, strlen(bc->cookie_name), &v, &vl) !=
		    HTTP_PARTIAL) {
			route_head(cn);
			return;
		}
		if (!cn->c.rd_ready)
			return;
	}
}

void http_answer(struct conn *cn, const char *status)
{
	char msg[128];
	int n = snprintf(msg, sizeof(msg), "HTTP/1.1 %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status);
	ssize_t k;

	/* what the client sent since (a bounded amount): read, so that the
	 * close sends a FIN - unread bytes make it a reset, which may destroy
	 * the answer in the client's buffer before it reads it */
	for (int i = 0; i < 4; i++)
		if (recv(cn->c.fd, cn->w->scratch, cn->w->scratch_size, MSG_DONTWAIT) <= 0)
			break;
	k = send(cn->c.fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (k > 0)
		cn->bytes_out += (uint64_t)k;
	shutdown(cn->c.fd, SHUT_WR);
}

bool head_forward(struct conn *cn)
{
	if (cn->head_http && lb_cookie_needed(&cn->be->pool, &cn->key, &cn->srv->lb)) {
		cn->injecting = true;
		http_inject_init(&cn->inj);
	}
	cn->key.cookie = NULL;          /* it pointed into head */
	cn->bytes_in += cn->head_len;
	T_ADD(&cn->srv->bytes_in_total, cn->head_len);
	if (cn->head_len && !send_to(cn, &cn->s, cn->head, cn->head_len))
		return false;
	free(cn->head);
	cn->head = NULL;
	if (cn->s.out)
		io_stop(&cn->c, IO_R);
	return !(cn->c.rd_eof && !cn->s.out && pass_fin(cn, &cn->s));
}

bool send_injecting(struct conn *cn, const char *buf, size_t n)
{
	char hdr[512];
	bool ins;
	size_t k = http_inject_scan(&cn->inj, buf, n, &ins);
	int hlen;

	if (!send_to(cn, &cn->c, buf, k))
		return false;
	if (ins) {
		hlen = http_format_set_cookie(hdr, sizeof(hdr), cn->be->cfg.cookie_name, cn->srv->lb.cookie,
		                              (unsigned)(cn->be->cfg.cookie_max_age_ms / 1000));
		if (hlen > 0 && !send_to(cn, &cn->c, hdr, (size_t)hlen))
			return false;
	}
	if (cn->inj.done)
		cn->injecting = false;
	return k == n || send_to(cn, &cn->c, buf + k, n - k);
}
