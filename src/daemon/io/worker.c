/*
 * tether - a worker's loop-side state (see worker.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "listener.h"
#include "proxy.h"
#include "tether/err.h"
#include "worker.h"

#define SCRATCH_SIZE (64 * 1024)   /* one read; bounds what a connection may buffer */

static void accept_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	listener_resume(container_of(t, struct t_worker, accept_timer));
}

int worker_init(struct t_worker *w, struct ev_loop *loop, struct t_runtime *rt, char **err)
{
	int rc;

	memset(w, 0, sizeof(*w));
	w->loop = loop;
	w->rt = rt;
	w->log = rt->log;
	w->scratch_size = SCRATCH_SIZE;
	w->scratch = malloc(w->scratch_size);
	if (!w->scratch)
		return tether_err(err, -ENOMEM, "out of memory");
	rc = poller_init(&w->poller, loop, proxy_reap, w, err);
	if (rc < 0) {
		free(w->scratch);
		w->scratch = NULL;
		return rc;
	}
	ev_init(&w->accept_timer, accept_timer_cb);
	return 0;
}

void worker_fini(struct t_worker *w)
{
	if (!w->loop)
		return;
	proxy_close_all(w, END_SHUTDOWN);
	proxy_reap(w);
	ev_timer_stop(w->loop, &w->accept_timer);
	poller_fini(&w->poller);
	free(w->scratch);
	w->scratch = NULL;
	w->loop = NULL;
}
