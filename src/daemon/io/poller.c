/*
 * tether - see poller.h.
 */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "defs.h"
#include "poller.h"
#include "tether/err.h"

#define IO_BATCH 256            /* events per epoll_wait */

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct poller *p = container_of(w, struct poller, io);
	struct epoll_event ev[IO_BATCH];
	int n = epoll_wait(p->epfd, ev, IO_BATCH, 0);

	for (int i = 0; i < n; i++) {
		struct poll_item *it = ev[i].data.ptr;

		it->fn(it, ev[i].events);
	}
	p->after(p->arg);
}

static void reaper_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct poller *p = container_of(w, struct poller, reaper);

	p->after(p->arg);
}

int poller_init(struct poller *p, struct ev_loop *loop, poll_after_fn after, void *arg, char **err)
{
	memset(p, 0, sizeof(*p));
	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (p->epfd < 0)
		return tether_err(err, -errno, "epoll_create1: %s", strerror(errno));
	p->loop = loop;
	p->after = after;
	p->arg = arg;
	/* the owners' own watchers (timers) keep the loop alive, not these */
	ev_io_init(&p->io, io_cb, p->epfd, EV_READ);
	ev_io_start(loop, &p->io);
	ev_unref(loop);
	ev_prepare_init(&p->reaper, reaper_cb);
	ev_prepare_start(loop, &p->reaper);
	ev_unref(loop);
	return 0;
}

void poller_fini(struct poller *p)
{
	if (!p->loop)
		return;
	ev_ref(p->loop);
	ev_io_stop(p->loop, &p->io);
	ev_ref(p->loop);
	ev_prepare_stop(p->loop, &p->reaper);
	close(p->epfd);
	p->epfd = -1;
	p->loop = NULL;
}

int poller_arm(struct poller *p, int fd, struct poll_item *it, bool added)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = it };

	return epoll_ctl(p->epfd, added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int poller_add_listener(struct poller *p, int fd, struct poll_item *it, bool exclusive)
{
	struct epoll_event ev = { .events = EPOLLIN | (exclusive ? EPOLLEXCLUSIVE : 0), .data.ptr = it };

	return epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int poller_remove(struct poller *p, int fd)
{
	return epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 ? -errno : 0;
}
