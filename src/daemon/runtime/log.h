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
 * A struct t_log belongs to whoever owns the loop it is flushed from; the
 * daemon has one per instance.  Nothing here is global.
 */
#ifndef TETHER_LOG_H
#define TETHER_LOG_H

#include <ev.h>
#include <stddef.h>

#define LOG_BUF 65536
#define LOG_FLUSH_AT 16384

struct t_log {
	int fd;                     /* 2 (stderr) or an opened file */
	char path[256];             /* the file, "" for stderr (reopened on SIGUSR1) */
	size_t len;                 /* bytes waiting in buf */
	struct ev_loop *loop;       /* of the flush timer, NULL while none runs */
	ev_timer timer;
	char buf[LOG_BUF];
};

/* An empty log writing to stderr. */
void log_init(struct t_log *lg);
/* Writes to `where`: "stderr" or a file path (appended, created 0640).  On
 * failure the log keeps its previous target and *err says why. */
int log_open(struct t_log *lg, const char *where, char **err);
/* Reopens the file (after log rotation); stderr stays. */
void log_reopen(struct t_log *lg);
void log_printf(struct t_log *lg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_flush(struct t_log *lg);
/* Flushes every second on loop; the timer alone does not keep it running. */
void log_start_timer(struct t_log *lg, struct ev_loop *loop);
void log_stop_timer(struct t_log *lg);
/* Flushes, stops the timer and goes back to stderr. */
void log_close(struct t_log *lg);

#endif
