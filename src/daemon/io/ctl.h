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

/*
 * Handles the request bytes in[0..len).  Returns how many it consumed (0:
 * the request is incomplete, wait for more), appends the answer to out and
 * sets *close_after when the connection must close once it is written.
 */
typedef size_t (*ctl_handle_fn)(void *arg, const char *in, size_t len, struct sbuf *out, bool *close_after);

struct ctl_server {
	ev_io io;
	int fd;                 /* -1 when not listening */
	struct ev_loop *loop;   /* NULL when not listening */
	ctl_handle_fn handle;
	void *arg;              /* handle's first argument */
	char unix_path[108];    /* unlinked on stop; "" for TCP */
	struct ctl_client *clients;
};

/* 0, or a negative errno with *err. */
int ctl_listen_unix(struct ctl_server *cs, struct ev_loop *loop, const char *path, ctl_handle_fn h, void *arg,
                    char **err);
int ctl_listen_tcp(struct ctl_server *cs, struct ev_loop *loop, const struct cfg_addr *a, ctl_handle_fn h,
                   void *arg, char **err);
/* Stops listening and closes every client of this server.  Does nothing
 * on a server that is not listening. */
void ctl_stop(struct ctl_server *cs);

#endif
