/*
 * tether - a tiny request/response server on the daemon's loop, shared by
 * the runtime API (admin.c, unix socket) and the metrics endpoint
 * (metrics.c, TCP).  Requests are small; answers are buffered and written
 * as the socket accepts them.  A ctl_server owns its clients: nothing here
 * is global, so an instance may have several, and a process several
 * instances.
 */
#ifndef TETHER_CTL_H
#define TETHER_CTL_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "log.h"
#include "tether/config.h"

struct ctl_client;

/* A growable text buffer. */
struct sbuf {
	char *s;
	size_t len, cap;
	bool failed;            /* an allocation failed: the text is truncated */
};
void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_free(struct sbuf *b);

/* Limits of every control server (admin and metrics), documented in
 * docs/operations.md (Control sockets). */
#define CTL_MAX_CLIENTS 64      /* clients at once; beyond, accepting pauses */
#define CTL_REQUEST 5.0         /* seconds to send a whole request and read its answer */
#define CTL_IDLE 60.0           /* seconds an idle admin client is kept */
#define CTL_PAUSE 0.1           /* seconds accepting pauses when out of descriptors */

struct ctl_server;

/*
 * Handles the request bytes in[0..len).  Returns how many it consumed (0:
 * the request is incomplete, wait for more), appends the answer to out and
 * sets *close_after when the connection must close once it is written.
 */
typedef size_t (*ctl_handle_fn)(struct ctl_server *cs, const char *in, size_t len, struct sbuf *out,
                                bool *close_after);

/* A listening socket, opened but not yet served: a reload opens the new
 * one before it closes the old one, and can still give up. */
struct ctl_bound {
	int fd;                 /* -1: none */
	char path[108];         /* unix: the socket file; "" for TCP */
	dev_t dev;              /* of that file: it is removed on close only */
	ino_t ino;              /* while it is still this one */
};

struct ctl_server {
	ev_io io;
	ev_timer retry;         /* accepting paused: out of descriptors */
	struct ctl_bound b;
	struct ev_loop *loop;   /* NULL when not listening */
	struct t_log *log;
	ctl_handle_fn handle;
	void *arg;              /* for handle */
	int level;              /* admin: enum cfg_admin_level of its clients */
	double idle;            /* seconds a client with no request under way is kept */
	unsigned nclients;
	bool pause_logged;
	struct ctl_client *clients;
};

/*
 * Opens the admin socket a->path with a's mode and group.  A path that
 * exists is refused unless it is a socket nobody answers on (a stale one,
 * removed).  0, or a negative errno with *err.
 */
int ctl_bind_unix(struct ctl_bound *b, const struct cfg_admin *a, char **err);
int ctl_bind_tcp(struct ctl_bound *b, const struct cfg_addr *a, const char *what, char **err);
/* Sets the mode and group of b's socket file to a's (a reload). */
int ctl_bind_chmod(const struct ctl_bound *b, const struct cfg_admin *a, char **err);
/* Whether b's socket file was removed (by hand, or a tmp cleaner). */
bool ctl_bound_gone(const struct ctl_bound *b);
/* Closes b; removes its socket file if it is still b's. */
void ctl_bound_close(struct ctl_bound *b);

/* Serves b (taken over: *b is left with fd -1) on loop. */
void ctl_serve(struct ctl_server *cs, struct ev_loop *loop, struct ctl_bound *b, struct t_log *log,
               ctl_handle_fn h, void *arg);
/* Stops listening and closes every client of this server.  Does nothing
 * on a server that is not listening. */
void ctl_stop(struct ctl_server *cs);

#endif
