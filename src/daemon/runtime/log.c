/*
 * tether - the log (contract in log.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "tether/err.h"

#define LINE_MAX_LEN 2048       /* a longer line is cut (LOG_BUF holds many) */
#define SYSLOG_BATCH 64         /* datagrams per sendmmsg */
#define SYSLOG_INFO 6           /* severity of every line */

void log_init(struct t_log *lg, bool shared)
{
	lg->kind = LOG_FD;
	lg->format = LOG_TEXT;
	lg->fd = 2;
	lg->owns_fd = true;
	lg->shared = shared;
	if (shared)
		pthread_mutex_init(&lg->lock, NULL);
	lg->path[0] = '\0';
	lg->facility = 3;
	lg->pid = (int)getpid();
	lg->len = 0;
	lg->stamp_sec = -1;
	lg->loop = NULL;
}

void log_attach(struct t_log *lg, const struct t_log *to)
{
	log_init(lg, false);
	lg->kind = to->kind;
	lg->format = to->format;
	lg->facility = to->facility;
	lg->fd = to->fd;
	lg->owns_fd = false;
}

static void lock(struct t_log *lg)
{
	if (lg->shared)
		pthread_mutex_lock(&lg->lock);
}

static void unlock(struct t_log *lg)
{
	if (lg->shared)
		pthread_mutex_unlock(&lg->lock);
}

static int open_path(const char *path, char **err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);

	if (fd < 0)
		tether_err(err, -errno, "log \"%s\": %s", path, strerror(errno));
	return fd;
}

/* A non-blocking datagram socket connected to the syslog socket at path. */
static int open_syslog(const char *path, char **err)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path))
		return tether_err(err, -ENAMETOOLONG, "log: syslog socket \"%s\": name too long", path);
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int rc = tether_err(err, -errno, "log: syslog socket \"%s\": %s", path, strerror(errno));

		if (fd >= 0)
			close(fd);
		return rc;
	}
	return fd;
}

static void flush_locked(struct t_log *lg);

/* Moves lg to fd (owned; -1 for "off"); the previous one is closed or handed over. */
static void swap_fd(struct t_log *lg, enum log_kind kind, int fd, const char *path, int *old_fd)
{
	int old;

	lock(lg);
	flush_locked(lg);
	old = lg->fd > 2 && lg->owns_fd ? lg->fd : -1;
	lg->kind = kind;
	lg->fd = fd;
	lg->owns_fd = true;
	snprintf(lg->path, sizeof(lg->path), "%s", path);
	unlock(lg);
	if (old_fd)
		*old_fd = old;
	else if (old >= 0)
		close(old);
}

int log_open_target(struct t_log *lg, const struct log_target *t, int *old_fd, char **err)
{
	enum log_kind kind = LOG_FD;
	const char *path = "";
	int fd = 2;

	if (old_fd)
		*old_fd = -1;
	if (strcmp(t->where, "off") == 0) {
		kind = LOG_OFF;
		fd = -1;
	} else if (strcmp(t->where, "syslog") == 0) {
		kind = LOG_SYSLOG;
		path = t->syslog_socket;
		fd = open_syslog(path, err);
	} else if (strcmp(t->where, "stderr") != 0) {
		path = t->where;
		fd = open_path(path, err);
	}
	if (kind != LOG_OFF && fd < 0)
		return fd;
	lock(lg);
	lg->format = t->format;
	lg->facility = t->facility;
	unlock(lg);
	swap_fd(lg, kind, fd, path, old_fd);
	return 0;
}

int log_open(struct t_log *lg, const char *where, int *old_fd, char **err)
{
	const struct log_target t = { .where = where, .format = LOG_TEXT, .syslog_socket = "/dev/log", .facility = 3 };

	return log_open_target(lg, &t, old_fd, err);
}

void log_reopen(struct t_log *lg, int *old_fd)
{
	char path[sizeof(lg->path)];
	int fd;

	if (old_fd)
		*old_fd = -1;
	if (!lg->path[0])
		return;
	memcpy(path, lg->path, sizeof(path));
	fd = lg->kind == LOG_SYSLOG ? open_syslog(path, NULL) : open_path(path, NULL);
	if (fd >= 0)
		swap_fd(lg, lg->kind, fd, path, old_fd);
}

/* Each buffered line as one datagram, in batches. */
static void flush_syslog(struct t_log *lg)
{
	struct mmsghdr msg[SYSLOG_BATCH];
	struct iovec iov[SYSLOG_BATCH];
	size_t off = 0;

	while (off < lg->len) {
		unsigned n = 0;
		int sent;

		for (size_t o = off; o < lg->len && n < SYSLOG_BATCH; n++) {
			char *nl = memchr(lg->buf + o, '\n', lg->len - o);
			size_t l = (size_t)(nl - (lg->buf + o));

			iov[n] = (struct iovec){ .iov_base = lg->buf + o, .iov_len = l };
			memset(&msg[n], 0, sizeof(msg[n]));
			msg[n].msg_hdr.msg_iov = &iov[n];
			msg[n].msg_hdr.msg_iovlen = 1;
			o += l + 1;
		}
		sent = sendmmsg(lg->fd, msg, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (sent <= 0)
			break;          /* the daemon is gone or full: drop the rest */
		for (int i = 0; i < sent; i++)
			off += iov[i].iov_len + 1;
	}
}

static void flush_locked(struct t_log *lg)
{
	size_t off = 0;

	if (lg->kind == LOG_SYSLOG) {
		flush_syslog(lg);
		lg->len = 0;
		return;
	}
	while (off < lg->len) {
		ssize_t n = write(lg->fd, lg->buf + off, lg->len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;      /* drop what cannot be written now */
		off += (size_t)n;
	}
	lg->len = 0;
}

void log_flush(struct t_log *lg)
{
	lock(lg);
	flush_locked(lg);
	unlock(lg);
}

void log_set_fd(struct t_log *lg, int fd)
{
	lock(lg);
	flush_locked(lg);
	lg->fd = fd;
	unlock(lg);
}

void log_follow(struct t_log *lg, const struct t_log *to)
{
	lock(lg);
	flush_locked(lg);
	lg->kind = to->kind;
	lg->format = to->format;
	lg->facility = to->facility;
	lg->fd = to->fd;
	unlock(lg);
}

/* --- building one line at the end of the buffer --- */

struct line {
	struct t_log *lg;
	char *p;                /* lg->buf + lg->len */
	size_t n, cap;          /* cap leaves room for the newline */
};

static void lputs(struct line *l, const char *s, size_t len)
{
	if (len > l->cap - l->n)
		len = l->cap - l->n;
	memcpy(l->p + l->n, s, len);
	l->n += len;
}

static void lvprintf(struct line *l, const char *fmt, va_list ap)
{
	int n = vsnprintf(l->p + l->n, l->cap - l->n + 1, fmt, ap);

	if (n > 0)
		l->n += (size_t)n > l->cap - l->n ? l->cap - l->n : (size_t)n;
}

static void lprintf(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void lprintf(struct line *l, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	lvprintf(l, fmt, ap);
	va_end(ap);
}

#define LIT(l, s) lputs((l), "" s, sizeof(s) - 1)   /* a string literal */

static void lstr(struct line *l, const char *s)
{
	lputs(l, s, strlen(s));
}

static void lu64(struct line *l, unsigned long long v)
{
	char d[20];
	size_t i = sizeof(d);

	do
		d[--i] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	lputs(l, d + i, sizeof(d) - i);
}

/* x with `dec` (0 or 1) decimals, exactly as printf's "%.0f" / "%.1f"
 * writes it: a line is written per connection, and printf's floating point
 * was most of the cost of one.  x * 10 is off the exact product by at most
 * half a unit in its last place (< 1e-7 below 1e9), so only a value that
 * close to a half is left to printf, which rounds the exact binary value. */
static void lfixed(struct line *l, double x, int dec)
{
	double v = dec ? x * 10.0 : x, a = v < 0 ? -v : v, frac;
	unsigned long long r = (unsigned long long)(a < 1e9 ? a : 0);

	frac = a - (double)r;
	if (!(a < 1e9) || (frac > 0.5 - 1e-6 && frac < 0.5 + 1e-6)) {    /* also NaN */
		lprintf(l, dec ? "%.1f" : "%.0f", x);
		return;
	}
	if (frac > 0.5)
		r++;
	if (v < 0)
		LIT(l, "-");
	if (!dec) {
		lu64(l, r);
		return;
	}
	lu64(l, r / 10);
	LIT(l, ".");
	lu64(l, r % 10);
}

/* s as the contents of a JSON string (RFC 8259: ", \ and controls escaped). */
static void lescape(struct line *l, const char *s)
{
	for (; *s && l->n < l->cap; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			lprintf(l, "\\%c", c);
		else if (c < 0x20)
			lprintf(l, "\\u%04x", c);
		else
			l->p[l->n++] = (char)c;
	}
}

/* Starts a line: flushes when the buffer is nearly full, then writes the
 * syslog header and the time as the format wants them. */
static void line_begin(struct t_log *lg, struct line *l)
{
	char ms[3];
	struct timeval tv;
	struct tm tm;

	if (LOG_BUF - lg->len < LINE_MAX_LEN + 1)
		flush_locked(lg);
	l->lg = lg;
	l->p = lg->buf + lg->len;
	l->n = 0;
	l->cap = LINE_MAX_LEN - 1;
	gettimeofday(&tv, NULL);
	if (lg->kind == LOG_SYSLOG) {
		static const char mon[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
		                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

		localtime_r(&tv.tv_sec, &tm);
		lprintf(l, "<%d>%s %2d %02d:%02d:%02d tether[%d]: ", lg->facility * 8 + SYSLOG_INFO, mon[tm.tm_mon],
		        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, lg->pid);
		if (lg->format != LOG_JSON)     /* syslog stamps its text lines itself */
			return;
	}
	if (lg->stamp_sec != (long)tv.tv_sec) {    /* the date part changes once a second */
		gmtime_r(&tv.tv_sec, &tm);
		snprintf(lg->stamp, sizeof(lg->stamp), "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900,
		         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		lg->stamp_sec = (long)tv.tv_sec;
	}
	ms[0] = (char)('0' + tv.tv_usec / 100000);
	ms[1] = (char)('0' + tv.tv_usec / 10000 % 10);
	ms[2] = (char)('0' + tv.tv_usec / 1000 % 10);
	if (lg->format == LOG_JSON)
		LIT(l, "{\"time\":\"");
	lstr(l, lg->stamp);
	lputs(l, ms, 3);
	if (lg->format == LOG_JSON)
		LIT(l, "Z\",");
	else
		LIT(l, "Z ");
}

static void line_end(struct line *l)
{
	struct t_log *lg = l->lg;

	if (lg->format == LOG_JSON) {
		if (l->n > l->cap - 1)          /* cut: keep the object closed */
			l->n = l->cap - 1;
		l->p[l->n++] = '}';
	}
	l->p[l->n++] = '\n';
	lg->len += l->n;
	if (lg->len >= LOG_FLUSH_AT)
		flush_locked(lg);
}

void log_printf(struct t_log *lg, const char *fmt, ...)
{
	struct line l;
	va_list ap;

	lock(lg);
	if (lg->kind == LOG_OFF) {
		unlock(lg);
		return;
	}
	line_begin(lg, &l);
	va_start(ap, fmt);
	if (lg->format == LOG_JSON) {
		char msg[LINE_MAX_LEN];

		vsnprintf(msg, sizeof(msg), fmt, ap);
		LIT(&l, "\"msg\":\"");
		lescape(&l, msg);
		LIT(&l, "\"");
	} else {
		lvprintf(&l, fmt, ap);
	}
	va_end(ap);
	line_end(&l);
	unlock(lg);
}

void log_conn(struct t_log *lg, const struct log_conn *c)
{
	struct line l;

	lock(lg);
	if (lg->kind == LOG_OFF) {
		unlock(lg);
		return;
	}
	line_begin(lg, &l);
	/* "%s %s %s/%s connect=%.1fms duration=%.0fms in=%llu out=%llu end=%s",
	 * written piece by piece; names are [A-Za-z0-9._-] and addresses need
	 * no JSON escaping either */
	if (lg->format == LOG_TEXT) {
		lstr(&l, c->client);
		LIT(&l, " ");
		lstr(&l, c->frontend);
		LIT(&l, " ");
		lstr(&l, c->backend);
		LIT(&l, "/");
		lstr(&l, c->server ? c->server : "-");
		LIT(&l, " connect=");
		lfixed(&l, c->server ? c->connect_ms : -1.0, 1);
		LIT(&l, "ms duration=");
		lfixed(&l, c->duration_ms, 0);
		LIT(&l, "ms in=");
		lu64(&l, c->bytes_in);
		LIT(&l, " out=");
		lu64(&l, c->bytes_out);
		LIT(&l, " end=");
		lstr(&l, c->end);
	} else {
		LIT(&l, "\"client\":\"");
		lstr(&l, c->client);
		LIT(&l, "\",\"frontend\":\"");
		lstr(&l, c->frontend);
		LIT(&l, "\",\"backend\":\"");
		lstr(&l, c->backend);
		if (c->server) {
			LIT(&l, "\",\"server\":\"");
			lstr(&l, c->server);
			LIT(&l, "\",\"connect_ms\":");
			lfixed(&l, c->connect_ms, 1);
		} else {
			LIT(&l, "\",\"server\":null,\"connect_ms\":null");
		}
		LIT(&l, ",\"duration_ms\":");
		lfixed(&l, c->duration_ms, 0);
		LIT(&l, ",\"bytes_in\":");
		lu64(&l, c->bytes_in);
		LIT(&l, ",\"bytes_out\":");
		lu64(&l, c->bytes_out);
		LIT(&l, ",\"end\":\"");
		lstr(&l, c->end);
		LIT(&l, "\"");
	}
	line_end(&l);
	unlock(lg);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	log_flush((struct t_log *)w->data);
}

void log_start_timer(struct t_log *lg, struct ev_loop *loop)
{
	ev_timer_init(&lg->timer, timer_cb, 1.0, 1.0);
	lg->timer.data = lg;
	lg->loop = loop;
	ev_timer_start(loop, &lg->timer);
	ev_unref(loop);     /* the log timer alone does not keep the loop running */
}

void log_stop_timer(struct t_log *lg)
{
	if (lg->loop && ev_is_active(&lg->timer)) {
		ev_ref(lg->loop);
		ev_timer_stop(lg->loop, &lg->timer);
	}
	lg->loop = NULL;
}

void log_close(struct t_log *lg)
{
	bool shared = lg->shared;

	log_stop_timer(lg);
	log_flush(lg);
	if (lg->fd > 2 && lg->owns_fd)
		close(lg->fd);
	if (shared)
		pthread_mutex_destroy(&lg->lock);
	log_init(lg, false);
}
