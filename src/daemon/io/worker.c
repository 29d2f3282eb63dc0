/*
 * tether - workers: loops, threads and the messages between them (see
 * worker.h).
 *
 * A message is a function and its argument, queued under the worker's
 * mq_lock and announced with ev_async (libev's one thread-safe call); the
 * worker's loop runs the queue in order.  workers_call adds a countdown
 * that the caller waits on, so "every worker has it" is a fact when it
 * returns: a reload, a log reopen and a drain are applied everywhere before
 * the control thread goes on.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listener.h"
#include "proxy.h"
#include "tether/err.h"
#include "worker.h"

#define SCRATCH_SIZE (64 * 1024)   /* one read; bounds what a connection may buffer */

/* What a workers_call waits for. */
struct w_sync {
	pthread_mutex_t lock;
	pthread_cond_t done;
	unsigned pending;
};

struct w_msg {
	worker_fn fn;
	void *arg;
	struct w_sync *sync;            /* NULL for worker_post */
	struct w_msg *next;
};

static void accept_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	listener_resume(container_of(t, struct t_worker, accept_timer));
}

static void qwake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	proxy_dispatch(container_of(a, struct t_worker, qwake));
}

static void wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	struct t_worker *w = container_of(a, struct t_worker, wake);
	struct w_msg *m;

	pthread_mutex_lock(&w->mq_lock);
	m = w->mq;
	w->mq = NULL;
	w->mq_tail = &w->mq;
	pthread_mutex_unlock(&w->mq_lock);
	while (m) {
		struct w_msg *next = m->next;

		m->fn(w, m->arg);
		if (m->sync) {
			pthread_mutex_lock(&m->sync->lock);
			if (--m->sync->pending == 0)
				pthread_cond_signal(&m->sync->done);
			pthread_mutex_unlock(&m->sync->lock);
		}
		free(m);
		m = next;
	}
}

int worker_init(struct t_worker *w, unsigned id, struct ev_loop *loop, struct t_runtime *rt, struct t_log *log,
                char **err)
{
	int rc;

	memset(w, 0, sizeof(*w));
	w->id = id;
	w->spare_fd = -1;
	w->rt = rt;
	w->loop = loop ? loop : ev_loop_new(EVFLAG_AUTO);
	if (!w->loop)
		return tether_err(err, -ENOMEM, "cannot create the event loop of worker %u", id);
	if (id == 0) {
		w->log = log;
	} else {
		log_attach(&w->own_log, log);
		w->log = &w->own_log;
	}
	lb_rng_seed(&w->rng, rt->rng.s ^ (0x9e3779b97f4a7c15ULL * (id + 1)));
	w->scratch_size = SCRATCH_SIZE;
	w->scratch = malloc(w->scratch_size);
	if (!w->scratch) {
		rc = tether_err(err, -ENOMEM, "out of memory");
		goto fail;
	}
	rc = poller_init(&w->poller, w->loop, proxy_reap, w, err);
	if (rc < 0)
		goto fail;
	pthread_mutex_init(&w->mq_lock, NULL);
	w->mq_tail = &w->mq;
	/* the wake watcher keeps the loop running (its listeners are in the
	 * poller, whose watchers do not): a worker's loop ends on ev_break only */
	ev_async_init(&w->wake, wake_cb);
	ev_async_start(w->loop, &w->wake);
	ev_async_init(&w->qwake, qwake_cb);
	ev_async_start(w->loop, &w->qwake);
	ev_init(&w->accept_timer, accept_timer_cb);
	if (id > 0)
		log_start_timer(w->log, w->loop);
	worker_spare_ready(w);          /* out of descriptors already: the first accept waits */
	return 0;
fail:
	free(w->scratch);
	w->scratch = NULL;
	if (!loop)
		ev_loop_destroy(w->loop);
	w->loop = NULL;
	return rc;
}

static void *thread_main(void *arg)
{
	struct t_worker *w = arg;

	ev_run(w->loop, 0);
	return NULL;
}

int worker_start_thread(struct t_worker *w, bool pin_cpu, char **err)
{
	sigset_t all, old;
	int rc;

	/* signals are the control thread's (libev's default loop): a worker
	 * thread blocks them all, from its first instruction */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&w->thread, NULL, thread_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		return tether_err(err, -rc, "cannot start worker %u: %s", w->id, strerror(rc));
	w->running = true;
	if (pin_cpu)
		worker_pin(w, w->thread);
	return 0;
}

void worker_pin(const struct t_worker *w, pthread_t thread)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(w->id % (unsigned)(ncpu > 0 ? ncpu : 1), &set);
	pthread_setaffinity_np(thread, sizeof(set), &set);
}

static void stop_loop(struct t_worker *w, void *arg)
{
	ev_break(w->loop, EVBREAK_ALL);
}

void worker_stop_thread(struct t_worker *w)
{
	if (!w->running)
		return;
	worker_post(w, stop_loop, NULL);
	pthread_join(w->thread, NULL);
	w->running = false;
}

void worker_fini(struct t_worker *w)
{
	if (!w->loop)
		return;
	w->draining = true;             /* a closing connection resumes nothing */
	proxy_close_all(w, END_SHUTDOWN);
	proxy_reap(w);
	ev_timer_stop(w->loop, &w->accept_timer);
	ev_async_stop(w->loop, &w->qwake);
	ev_async_stop(w->loop, &w->wake);
	wake_cb(w->loop, &w->wake, 0);  /* what was posted last: run, so that no waiter waits forever */
	pthread_mutex_destroy(&w->mq_lock);
	poller_fini(&w->poller);
	free(w->scratch);
	w->scratch = NULL;
	if (w->spare_fd >= 0)
		close(w->spare_fd);
	w->spare_fd = -1;
	if (w->id > 0) {
		log_close(&w->own_log);
		ev_loop_destroy(w->loop);
	}
	w->loop = NULL;
}

bool worker_spare_ready(struct t_worker *w)
{
	if (w->spare_fd < 0)
		w->spare_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	return w->spare_fd >= 0;
}

int worker_spare_take(struct t_worker *w, int family)
{
	int fd = w->spare_fd;

	w->spare_fd = -1;
	if (fd < 0 || family == AF_INET)
		return fd;
	close(fd);                      /* frees one descriptor for the other family */
	return socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

static void post(struct t_worker *w, worker_fn fn, void *arg, struct w_sync *sync)
{
	struct w_msg *m = malloc(sizeof(*m));

	if (!m)
		abort();        /* a message that cannot be sent leaves the workers inconsistent */
	m->fn = fn;
	m->arg = arg;
	m->sync = sync;
	m->next = NULL;
	pthread_mutex_lock(&w->mq_lock);
	*w->mq_tail = m;
	w->mq_tail = &m->next;
	pthread_mutex_unlock(&w->mq_lock);
	ev_async_send(w->loop, &w->wake);
}

void worker_post(struct t_worker *w, worker_fn fn, void *arg)
{
	post(w, fn, arg, NULL);
}

void workers_call(struct t_worker *ws, unsigned n, worker_fn fn, void *arg)
{
	struct w_sync sync = { .pending = 0 };

	pthread_mutex_init(&sync.lock, NULL);
	pthread_cond_init(&sync.done, NULL);
	for (unsigned i = 1; i < n; i++)
		if (ws[i].running) {
			pthread_mutex_lock(&sync.lock);
			sync.pending++;
			pthread_mutex_unlock(&sync.lock);
			post(&ws[i], fn, arg, &sync);
		} else if (ws[i].loop) {
			fn(&ws[i], arg);        /* no thread (yet, or any more): nothing runs on it */
		}
	if (n)
		fn(&ws[0], arg);
	pthread_mutex_lock(&sync.lock);
	while (sync.pending)
		pthread_cond_wait(&sync.done, &sync.lock);
	pthread_mutex_unlock(&sync.lock);
	pthread_cond_destroy(&sync.done);
	pthread_mutex_destroy(&sync.lock);
}
