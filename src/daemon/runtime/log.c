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

void log_init(struct t_log *lg, bool shared)
{
	lg->fd = 2;
	lg->owns_fd = true;
	lg->shared = shared;
	if (shared)
		pthread_mutex_init(&lg->lock, NULL);
	lg->path[0] = '\0';
	lg->len = 0;
	lg->loop = NULL;
}

void log_attach(struct t_log *lg, const struct t_log *to)
{
	log_init(lg, false);
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

static void flush_locked(struct t_log *lg)
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

static int open_path(const char *path, char **err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);

	if (fd < 0)
		tether_err(err, -errno, "log \"%s\": %s", path, strerror(errno));
	return fd;
}

/* Moves lg to fd (owned); the previous one is closed or handed over. */
static void swap_fd(struct t_log *lg, int fd, const char *path, int *old_fd)
{
	int old;

	lock(lg);
	flush_locked(lg);
	old = lg->fd > 2 && lg->owns_fd ? lg->fd : -1;
	lg->fd = fd;
	lg->owns_fd = true;
	snprintf(lg->path, sizeof(lg->path), "%s", path);
	unlock(lg);
	if (old_fd)
		*old_fd = old;
	else if (old >= 0)
		close(old);
}

int log_open(struct t_log *lg, const char *where, int *old_fd, char **err)
{
	int fd = 2;

	if (old_fd)
		*old_fd = -1;
	if (strcmp(where, "stderr") != 0) {
		fd = open_path(where, err);
		if (fd < 0)
			return fd;
	}
	swap_fd(lg, fd, fd == 2 ? "" : where, old_fd);
	return 0;
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
	fd = open_path(path, NULL);
	if (fd >= 0)
		swap_fd(lg, fd, path, old_fd);
}

void log_printf(struct t_log *lg, const char *fmt, ...)
{
	struct timeval tv;
	struct tm tm;
	va_list ap;
	int n;

	lock(lg);
	if (LOG_BUF - lg->len < 1024)
		flush_locked(lg);
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
		flush_locked(lg);
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
	log_stop_timer(lg);
	log_flush(lg);
	if (lg->fd > 2 && lg->owns_fd)
		close(lg->fd);
	lg->fd = 2;
	lg->path[0] = '\0';
	if (lg->shared)
		pthread_mutex_destroy(&lg->lock);
	lg->shared = false;
}
