/*
 * tether - the log (contract in log.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "tether/err.h"

void log_init(struct t_log *lg)
{
	lg->fd = 2;
	lg->path[0] = '\0';
	lg->len = 0;
	lg->loop = NULL;
}

static int open_path(const char *path, char **err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);

	if (fd < 0)
		tether_err(err, -errno, "log \"%s\": %s", path, strerror(errno));
	return fd;
}

int log_open(struct t_log *lg, const char *where, char **err)
{
	int fd = 2;

	if (strcmp(where, "stderr") != 0) {
		fd = open_path(where, err);
		if (fd < 0)
			return fd;
	}
	log_flush(lg);
	if (lg->fd > 2)
		close(lg->fd);
	lg->fd = fd;
	snprintf(lg->path, sizeof(lg->path), "%s", fd == 2 ? "" : where);
	return 0;
}

void log_reopen(struct t_log *lg)
{
	int fd;

	if (!lg->path[0])
		return;
	log_flush(lg);
	fd = open_path(lg->path, NULL);
	if (fd < 0)
		return;
	close(lg->fd);
	lg->fd = fd;
}

void log_flush(struct t_log *lg)
{
	size_t off = 0;

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

void log_printf(struct t_log *lg, const char *fmt, ...)
{
	struct timeval tv;
	struct tm tm;
	va_list ap;
	int n;

	if (LOG_BUF - lg->len < 1024)
		log_flush(lg);
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = snprintf(lg->buf + lg->len, LOG_BUF - lg->len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ ",
	             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	             (int)(tv.tv_usec / 1000));
	va_start(ap, fmt);
	n += vsnprintf(lg->buf + lg->len + (size_t)n, LOG_BUF - lg->len - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if ((size_t)n >= LOG_BUF - lg->len - 1)
		n = (int)(LOG_BUF - lg->len - 2);
	lg->len += (size_t)n;
	lg->buf[lg->len++] = '\n';
	if (lg->len >= LOG_FLUSH_AT)
		log_flush(lg);
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
	log_stop_timer(lg);
	log_flush(lg);
	if (lg->fd > 2)
		close(lg->fd);
	lg->fd = 2;
	lg->path[0] = '\0';
}
