/*
 * tether-pod - a small, fast libev HTTP/1.1 server standing in for an app
 * pod: it answers with its own name, serves /health, and can keep login
 * sessions in its own memory (so that losing it, or landing on another
 * pod, forces a new login - the failure the four patterns are about).
 *
 *   tether-pod --name NAME --listen ADDR:PORT [--listen ...]
 *              [--health-status N] [--sessions none|memory]
 *
 *   GET /health        200 "ok" (or --health-status)
 *   POST /login?user=U 200, Set-Cookie: SID=...   (--sessions memory)
 *   anything else      200 "NAME\n", or with sessions "NAME hello U\n" / 401
 *
 * One thread, no allocation per request, keep-alive and pipelining.
 */
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tether/config.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#define REQ_MAX 16384           /* larger heads get 431 */
#define IDLE_TIMEOUT 60.0
#define SESSIONS 65536          /* power of two; oldest overwritten when full */

struct client {
	ev_io rio, wio;
	ev_timer idle;
	int fd;
	size_t in_len, out_len, out_off;
	bool close_after;
	bool eof;                   /* the client sent its FIN: answer what is left, then close */
	char in[REQ_MAX];
	char out[REQ_MAX];
};

struct session {
	uint64_t sid;
	char user[32];
};

static const char *pod_name = "pod";
static int health_status = 200;
static bool sessions_on;
static struct session sessions[SESSIONS];
static uint64_t sid_state = 0x9e3779b97f4a7c15ULL;

static uint64_t next_sid(void)
{
	uint64_t z = (sid_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return (z ^ (z >> 31)) | 1;
}

static void client_free(struct ev_loop *loop, struct client *c)
{
	ev_io_stop(loop, &c->rio);
	ev_io_stop(loop, &c->wio);
	ev_timer_stop(loop, &c->idle);
	close(c->fd);
	free(c);
}

static void respond(struct client *c, int status, const char *reason, const char *extra, const char *body)
{
	int n = snprintf(c->out + c->out_len, sizeof(c->out) - c->out_len,
	                 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s%s\r\n%s",
	                 status, reason, strlen(body), extra, c->close_after ? "Connection: close\r\n" : "", body);

	if (n > 0 && (size_t)n < sizeof(c->out) - c->out_len)
		c->out_len += (size_t)n;
	else
		c->close_after = true;      /* output full: finish what we have */
}

/* Header value of `name` in the head [h, end), or NULL; *len set. */
static const char *header(const char *h, const char *end, const char *name, size_t *len)
{
	size_t nl = strlen(name);

	for (const char *p = h; p < end;) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));

		if (!eol)
			break;
		if ((size_t)(eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
			const char *v = p + nl + 1;

			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			*len = (size_t)(eol - v);
			if (*len && v[*len - 1] == '\r')
				(*len)--;
			return v;
		}
		p = eol + 1;
	}
	return NULL;
}

static struct session *find_session(const char *cookie, size_t len)
{
	const char *p = cookie, *end = cookie + len;

	while (p < end) {
		const char *sid = memmem(p, (size_t)(end - p), "SID=", 4);
		uint64_t v;

		if (!sid)
			return NULL;
		if (sid == cookie || sid[-1] == ' ' || sid[-1] == ';') {
			v = strtoull(sid + 4, NULL, 16);
			if (v && sessions[v & (SESSIONS - 1)].sid == v)
				return &sessions[v & (SESSIONS - 1)];
		}
		p = sid + 4;
	}
	return NULL;
}

static void handle_request(struct client *c, const char *head, size_t head_len)
{
	const char *end = head + head_len, *sp1, *sp2, *v;
	char body[160], extra[96];
	size_t vl;
	bool http10;

	sp1 = memchr(head, ' ', head_len);
	sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1)) : NULL;
	if (!sp1 || !sp2 || (size_t)(end - sp2) < 9 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0) {
		c->close_after = true;
		respond(c, 400, "Bad Request", "", "bad request\n");
		return;
	}
	http10 = sp2[8] == '0';
	v = header(head, end, "Connection", &vl);
	if (v && vl == 5 && strncasecmp(v, "close", 5) == 0)
		c->close_after = true;
	else if (http10 && !(v && vl == 10 && strncasecmp(v, "keep-alive", 10) == 0))
		c->close_after = true;
	if ((size_t)(sp2 - sp1 - 1) == 7 && memcmp(sp1 + 1, "/health", 7) == 0) {
		respond(c, health_status, health_status == 200 ? "OK" : "Unavailable", "", "ok\n");
		return;
	}
	if (!sessions_on) {
		snprintf(body, sizeof(body), "%s\n", pod_name);
		respond(c, 200, "OK", "", body);
		return;
	}
	if (sp1 - head == 4 && memcmp(head, "POST", 4) == 0 && sp2 - sp1 > 6 && memcmp(sp1 + 1, "/login", 6) == 0) {
		const char *u = memmem(sp1, (size_t)(sp2 - sp1), "user=", 5);
		uint64_t sid = next_sid();
		struct session *s = &sessions[sid & (SESSIONS - 1)];
		size_t ul = u ? (size_t)(sp2 - u - 5) : 0;

		s->sid = sid;
		snprintf(s->user, sizeof(s->user), "%.*s", (int)(ul < sizeof(s->user) ? ul : sizeof(s->user) - 1),
		         u ? u + 5 : "anonymous");
		if (!u)
			snprintf(s->user, sizeof(s->user), "anonymous");
		snprintf(extra, sizeof(extra), "Set-Cookie: SID=%016llx; Path=/; HttpOnly\r\n", (unsigned long long)sid);
		snprintf(body, sizeof(body), "%s logged in %s\n", pod_name, s->user);
		respond(c, 200, "OK", extra, body);
		return;
	}
	v = header(head, end, "Cookie", &vl);
	{
		struct session *s = v ? find_session(v, vl) : NULL;

		if (!s) {
			snprintf(body, sizeof(body), "%s: login required\n", pod_name);
			respond(c, 401, "Unauthorized", "", body);
			return;
		}
		snprintf(body, sizeof(body), "%s hello %s\n", pod_name, s->user);
		respond(c, 200, "OK", "", body);
	}
}

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
			client_free(loop, c);
			return false;
		}
		c->out_off += (size_t)n;
	}
	c->out_len = c->out_off = 0;
	ev_io_stop(loop, &c->wio);
	if (c->close_after) {
		client_free(loop, c);
		return false;
	}
	if (!c->eof)                /* after the FIN there is nothing more to read */
		ev_io_start(loop, &c->rio);
	return true;
}

/* Answers every complete request in the buffer (pipelining), a batch per
 * half output buffer; after the client's FIN, closes once all are answered. */
static void process(struct ev_loop *loop, struct client *c)
{
	bool more;

	do {
		size_t off = 0;

		more = false;
		while (!c->close_after) {
			const char *head = c->in + off, *v;
			size_t avail = c->in_len - off, head_len, body = 0, vl;
			const char *eoh = memmem(head, avail, "\r\n\r\n", 4);

			if (!eoh)
				break;
			if (c->out_len >= sizeof(c->out) / 2) {
				more = true;
				break;
			}
			head_len = (size_t)(eoh - head) + 4;
			v = header(head, eoh + 2, "Content-Length", &vl);
			if (v)
				body = strtoul(v, NULL, 10);
			if (body > REQ_MAX) {
				c->close_after = true;
				respond(c, 413, "Payload Too Large", "", "too large\n");
				break;
			}
			if (head_len + body > avail)
				break;
			handle_request(c, head, head_len);
			off += head_len + body;
		}
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
		if (c->in_len == sizeof(c->in)) {
			c->close_after = true;
			respond(c, 431, "Request Header Fields Too Large", "", "too large\n");
		} else if (c->eof && !more) {
			c->close_after = true;
		}
		if (!flush_out(loop, c))
			return;
	} while (more && c->out_len == 0);
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
		process(loop, c);
		return;
	}
	if (n < 0) {
		client_free(loop, c);
		return;
	}
	c->in_len += (size_t)n;
	ev_timer_again(loop, &c->idle);
	process(loop, c);
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *c = container_of(w, struct client, wio);

	if (flush_out(loop, c) && c->in_len)
		process(loop, c);
}

static void idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	client_free(loop, container_of(w, struct client, idle));
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	for (int i = 0; i < 64; i++) {
		int one = 1, fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct client *c;

		if (fd < 0)
			return;
		c = malloc(sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->fd = fd;
		c->in_len = c->out_len = c->out_off = 0;
		c->close_after = c->eof = false;
		ev_io_init(&c->rio, read_cb, fd, EV_READ);
		ev_io_init(&c->wio, write_cb, fd, EV_WRITE);
		ev_timer_init(&c->idle, idle_cb, 0., IDLE_TIMEOUT);
		ev_io_start(loop, &c->rio);
		ev_timer_again(loop, &c->idle);
	}
}

static void stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
	struct ev_loop *loop = ev_default_loop(0);
	static ev_io listeners[16];
	ev_signal sterm, sint;
	int nl = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--name") == 0 && i + 1 < argc) {
			pod_name = argv[++i];
		} else if (strcmp(argv[i], "--health-status") == 0 && i + 1 < argc) {
			health_status = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--sessions") == 0 && i + 1 < argc) {
			i++;
			if (strcmp(argv[i], "memory") == 0)
				sessions_on = true;
			else if (strcmp(argv[i], "none") != 0) {
				fprintf(stderr, "tether-pod: --sessions none|memory\n");
				return 2;
			}
		} else if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc && nl < 16) {
			struct cfg_addr a;
			int one = 1, fd;

			if (cfg_parse_addr(argv[++i], &a) < 0) {
				fprintf(stderr, "tether-pod: bad address %s\n", argv[i]);
				return 2;
			}
			fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			if (fd < 0 || bind(fd, (struct sockaddr *)&a.ss, a.len) < 0 || listen(fd, 4096) < 0) {
				fprintf(stderr, "tether-pod: cannot listen on %s: %s\n", argv[i], strerror(errno));
				return 1;
			}
			ev_io_init(&listeners[nl], accept_cb, fd, EV_READ);
			ev_io_start(loop, &listeners[nl++]);
		} else {
			fprintf(stderr, "usage: tether-pod --name NAME --listen ADDR:PORT [--listen ...] "
			        "[--health-status N] [--sessions none|memory]\n");
			return strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0 ? 0 : 2;
		}
	}
	if (nl == 0) {
		fprintf(stderr, "tether-pod: give at least one --listen ADDR:PORT\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	ev_signal_init(&sterm, stop_cb, SIGTERM);
	ev_signal_init(&sint, stop_cb, SIGINT);
	ev_signal_start(loop, &sterm);
	ev_signal_start(loop, &sint);
	ev_run(loop, 0);
	return 0;
}
