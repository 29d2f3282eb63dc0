/*
 * tether - the log: one line per closed connection plus lifecycle lines
 * (src/daemon/log.c).
 *
 * Lines are formatted into an in-memory buffer and written with one write()
 * when it passes LOG_FLUSH_AT bytes, every second (once a loop runs the
 * timer), and at exit, so logging costs the relay a snprintf, not a
 * syscall.  A line that cannot be written is dropped; logging never blocks
 * the loop for long and never fails its caller.
 *
 * A struct t_log belongs to whoever owns the loop it is flushed from: an
 * instance has one (it owns the file), and each worker thread one of its
 * own writing to the same file (log_attach), so the relay's lines take no
 * lock.  A log written from several threads (the instance's: the runtime
 * logs state changes from any worker) is made `shared` and locks each call.
 * Lines from different logs interleave whole: each write() carries whole
 * lines to a file opened O_APPEND.  Nothing here is global.
 */
#ifndef TETHER_LOG_H
#define TETHER_LOG_H

#include <ev.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#define LOG_BUF 65536
#define LOG_FLUSH_AT 16384

struct t_log {
	int fd;                     /* 2 (stderr) or an opened file */
	bool owns_fd;               /* false for a worker's log (log_attach) */
	bool shared;                /* written from several threads: lock */
	pthread_mutex_t lock;
	char path[256];             /* the file, "" for stderr (reopened on SIGUSR1) */
	size_t len;                 /* bytes waiting in buf */
	struct ev_loop *loop;       /* of the flush timer, NULL while none runs */
	ev_timer timer;
	char buf[LOG_BUF];
};

/* An empty log writing to stderr; `shared`: callable from any thread. */
void log_init(struct t_log *lg, bool shared);
/* A log writing to the file of `to` (a worker's own buffer). */
void log_attach(struct t_log *lg, const struct t_log *to);
/* Writes what is buffered, then writes to fd (not owned) from now on. */
void log_set_fd(struct t_log *lg, int fd);
/* Writes to `where`: "stderr" or a file path (appended, created 0640).  On
 * failure the log keeps its previous target and *err says why.  The
 * previous file is closed, or - when old_fd is not NULL - handed to the
 * caller in *old_fd (-1 when none), to close once the logs attached to it
 * moved to the new one. */
int log_open(struct t_log *lg, const char *where, int *old_fd, char **err);
/* Reopens the file (after log rotation); stderr stays.  old_fd as above. */
void log_reopen(struct t_log *lg, int *old_fd);
void log_printf(struct t_log *lg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_flush(struct t_log *lg);
/* Flushes every second on loop; the timer alone does not keep it running. */
void log_start_timer(struct t_log *lg, struct ev_loop *loop);
void log_stop_timer(struct t_log *lg);
/* Flushes, stops the timer and goes back to stderr. */
void log_close(struct t_log *lg);

#endif
