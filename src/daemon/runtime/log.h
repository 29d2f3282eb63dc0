/*
 * tether - the log: one line per closed connection plus lifecycle lines
 * (src/daemon/log.c), as text or as JSON, to stderr, a file, syslog, or
 * nowhere.
 *
 * Lines are formatted into an in-memory buffer and written with one write()
 * (syslog: one sendmmsg() of a datagram per line) when it passes
 * LOG_FLUSH_AT bytes, every second (once a loop runs the timer), and at
 * exit, so logging costs the relay a snprintf, not a syscall.  A line that
 * cannot be written is dropped; logging never blocks the loop for long and
 * never fails its caller.  With the target "off" nothing is formatted at
 * all (log_enabled() lets a caller skip preparing a line).
 *
 * Formats (the field list is in docs/operations.md):
 *   text  2026-01-02T03:04:05.678Z <message>
 *   json  {"time":"2026-01-02T03:04:05.678Z","msg":"<message>"}, and for a
 *         connection the fields of its text line, one JSON object per line
 * syslog: RFC 3164 datagrams "<PRI>Mmm dd hh:mm:ss tether[PID]: " followed
 * by the message (text) or the JSON object, to a unix datagram socket.
 *
 * A struct t_log belongs to whoever owns the loop it is flushed from: an
 * instance has one (it owns the file), and each worker thread one of its
 * own writing to the same file (log_attach), so the relay's lines take no
 * lock.  A log written from several threads (the instance's: the runtime
 * logs state changes from any worker) is made `shared` and locks each call.
 * Lines from different logs interleave whole: each write() carries whole
 * lines to a file opened O_APPEND (a datagram each, to syslog).  Nothing
 * here is global.
 */
#ifndef TETHER_LOG_H
#define TETHER_LOG_H

#include <ev.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#define LOG_BUF 65536
#define LOG_FLUSH_AT 16384

enum log_format { LOG_TEXT = 0, LOG_JSON = 1 };
enum log_kind { LOG_FD = 0, LOG_OFF, LOG_SYSLOG };

/* Where and how to log (global.log of the configuration). */
struct log_target {
	const char *where;              /* "stderr", "off", "syslog" or a file path */
	enum log_format format;
	const char *syslog_socket;      /* "syslog": the socket, usually "/dev/log" */
	int facility;                   /* "syslog": 0..23 (3 = daemon, 16..23 = local0..7) */
};

struct t_log {
	enum log_kind kind;
	enum log_format format;
	int fd;                     /* 2 (stderr), an opened file, the syslog socket, or -1 (off) */
	bool owns_fd;               /* false for a worker's log (log_attach) */
	bool shared;                /* written from several threads: lock */
	pthread_mutex_t lock;
	char path[256];             /* the file or syslog socket, "" for stderr (reopened on SIGUSR1) */
	int facility;
	int pid;                    /* in syslog lines */
	size_t len;                 /* bytes waiting in buf */
	long stamp_sec;             /* the second `stamp` was made for, -1: none */
	char stamp[96];             /* "2026-12-07T18:40:48." (UTC); room for any int in struct tm */
	struct ev_loop *loop;       /* of the flush timer, NULL while none runs */
	ev_timer timer;
	char buf[LOG_BUF];
};

/* The fields of a connection's line, in the order of the text line. */
struct log_conn {
	const char *client;             /* "1.2.3.4:5678" */
	const char *frontend, *backend;
	const char *server;             /* NULL: none was chosen */
	double connect_ms;              /* < 0: never connected */
	double duration_ms;
	unsigned long long bytes_in, bytes_out;
	const char *end;                /* why it ended (t_end_name) */
};

/* An empty log writing text to stderr; `shared`: callable from any thread. */
void log_init(struct t_log *lg, bool shared);
/* A log writing to the target of `to`, in its format (a worker's own buffer). */
void log_attach(struct t_log *lg, const struct t_log *to);
/* Writes what is buffered, then writes to fd (not owned) from now on. */
void log_set_fd(struct t_log *lg, int fd);
/* log_set_fd to `to`'s target, and its format too (a worker following the
 * instance's log after a reload or a reopen). */
void log_follow(struct t_log *lg, const struct t_log *to);
/* Switches to `t`.  On failure the log keeps its previous target and *err
 * says why.  The previous file is closed, or - when old_fd is not NULL -
 * handed to the caller in *old_fd (-1 when none), to close once the logs
 * attached to it moved to the new one. */
int log_open_target(struct t_log *lg, const struct log_target *t, int *old_fd, char **err);
/* log_open_target with text to `where` ("stderr", "off", "syslog" on
 * /dev/log, or a file path: appended, created 0640). */
int log_open(struct t_log *lg, const char *where, int *old_fd, char **err);
/* Reopens the file or the syslog socket (after log rotation); stderr stays.
 * old_fd as above. */
void log_reopen(struct t_log *lg, int *old_fd);
/* False when the target is "off": a caller may skip preparing a line. */
static inline bool log_enabled(const struct t_log *lg)
{
	return lg->kind != LOG_OFF;
}
void log_printf(struct t_log *lg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_conn(struct t_log *lg, const struct log_conn *c);
void log_flush(struct t_log *lg);
/* Flushes every second on loop; the timer alone does not keep it running. */
void log_start_timer(struct t_log *lg, struct ev_loop *loop);
void log_stop_timer(struct t_log *lg);
/* Flushes, stops the timer and goes back to stderr. */
void log_close(struct t_log *lg);

#endif
