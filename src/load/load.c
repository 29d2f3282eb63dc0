/*
 * tether-load - the run: arrivals, reporting intervals, the progress line,
 * the end, and signals.
 *
 * Arrivals are tether-sim's Poisson process (engine.c on_arrival): the next
 * user comes an exponential time with mean 1 / rate(t) after the previous
 * one, t being the previous arrival, until stop_at (if set) and the end.
 * The arrival times are computed, not observed: when the loop runs late,
 * every user that is due arrives at once, its first request due when the
 * user was (open loop; see user.c).
 *
 * The end, at `duration`, is the simulator's: no new user and no new
 * request; requests in flight are waited for (at most --timeout), so both
 * sides of every exchange count it.  Reporting intervals end at multiples
 * of report_interval strictly before the end, as in tether-sim.  SIGINT or
 * SIGTERM ends the run the same way early; a second one stops at once.
 */
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "load.h"

#define PROBE_TIMEOUT_MS 3000

/* Arms w to fire at model time t. */
static void arm(struct load *L, ev_timer *w, double t)
{
	ev_timer_stop(L->loop, w);
	ev_timer_set(w, L->t0 + t - ev_now(L->loop), 0.);
	ev_timer_start(L->loop, w);
}

static void arrival_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct load *L = container_of(w, struct load, arrival);
	const struct sim_params *p = L->p;
	double now = load_now(L);

	while (!L->arrivals_over && L->next_arrival <= now) {
		double at = L->next_arrival;

		user_arrive(L, at);
		L->next_arrival = at + sim_expo_draw(&L->zig, &L->rng) / sim_arrival_rate(p, at);
		if ((p->stop_at_s >= 0 && at >= p->stop_at_s) || L->next_arrival >= p->duration_s)
			L->arrivals_over = true;
	}
	if (!L->arrivals_over)
		arm(L, &L->arrival, L->next_arrival);
}

static void report_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct load *L = container_of(w, struct load, report);

	if (L->next_report >= L->p->duration_s)
		return;
	stats_interval(&L->s, L->next_report);
	L->next_report += L->p->report_s;
	arm(L, &L->report, L->next_report);
}

/* One line on stderr, redrawn each second: only when stderr is a terminal. */
static void progress_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct load *L = container_of(w, struct load, progress);
	const struct load_stats *s = &L->s;
	double li = s->requests_logged_in ? 100.0 / (double)s->requests_logged_in : 0;

	fprintf(stderr, "\r%5.0f/%.0f s  %7.0f req/s  miss %5.1f%%  local %5.1f%%  redis %5.1f%%  failed %llu  users %u ",
	        load_now(L), L->p->duration_s, (double)(s->requests - L->prog_requests) / w->repeat,
	        li * (double)s->misses, li * (double)s->local_hits, li * (double)s->redis_hits,
	        (unsigned long long)s->failed, L->active);
	L->prog_requests = s->requests;
}

static void end_now(struct load *L)
{
	if (L->ending)
		return;
	L->ending = true;
	L->arrivals_over = true;
	ev_timer_stop(L->loop, &L->arrival);
	ev_timer_stop(L->loop, &L->report);
	user_end_all(L);
	load_user_gone(L);
}

static void end_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	end_now(container_of(w, struct load, end));
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct load *L = ev_userdata(loop);

	if (L->ending) {                    /* the second: stop without waiting */
		L->stopped = true;
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	end_now(L);
}

/* SIGUSR1 (--visiting): the lab has just killed a pod or Redis and asks
 * which sessions visiting users hold, to count those it destroyed as
 * tether-sim does (sessions of users still visiting). */
static void usr1_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct load *L = ev_userdata(loop);

	if (L->o->visiting && user_dump_visiting(L, L->o->visiting) < 0)
		fprintf(stderr, "tether-load: %s: %s\n", L->o->visiting, strerror(errno));
}

void load_user_gone(struct load *L)
{
	if (L->ending && L->active == 0)
		ev_break(L->loop, EVBREAK_ALL);
}

static void raise_nofile(void)
{
	struct rlimit r;

	if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
		r.rlim_cur = r.rlim_max;
		setrlimit(RLIMIT_NOFILE, &r);
	}
}

/* Connects once to the target, waiting at most PROBE_TIMEOUT_MS: a wrong
 * address or port is a clear error before the run, not a run of failures.
 * With --addresses, from the first user address (which shows that binding
 * works, and keeps every source the target sees a user's). */
static int probe(struct load *L)
{
	int fd = socket(L->target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), err = 0;
	socklen_t el = sizeof(err);
	struct pollfd pf;

	if (fd < 0)
		goto fail;
	if (L->o->addresses) {
		struct sockaddr_in src = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(LOAD_SRC_BASE) };

		if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0)
			goto fail;
	}
	if (connect(fd, (struct sockaddr *)&L->target, L->target_len) < 0) {
		if (errno != EINPROGRESS)
			goto fail;
		pf = (struct pollfd){ .fd = fd, .events = POLLOUT };
		if (poll(&pf, 1, PROBE_TIMEOUT_MS) != 1) {
			errno = ETIMEDOUT;
			goto fail;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
			errno = err ? err : errno;
			goto fail;
		}
	}
	close(fd);
	return 0;
fail:
	fprintf(stderr, "tether-load: cannot connect to %s: %s\n", L->host, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

static int setup(struct load *L, struct load_opts *o)
{
	L->o = o;
	L->p = &o->p;
	memcpy(&L->target, &o->target.ss, o->target.len);
	L->target_len = o->target.len;
	snprintf(L->host, sizeof(L->host), "%s", o->target.text);
	if (o->addresses && L->target.ss_family != AF_INET) {
		fprintf(stderr, "tether-load: --addresses binds 127.0.0.0/8 sources: the target must be IPv4\n");
		return -1;
	}
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	if (o->check && probe(L) < 0)
		return -1;
	if (o->csv && !(L->csv = fopen(o->csv, "w"))) {
		fprintf(stderr, "tether-load: %s: %s\n", o->csv, strerror(errno));
		return -1;
	}
	L->loop = ev_default_loop(EVFLAG_AUTO);
	if (!L->loop) {
		fprintf(stderr, "tether-load: cannot start libev\n");
		return -1;
	}
	ev_set_userdata(L->loop, L);
	sim_expo_init(&L->zig);
	lb_rng_seed(&L->rng, L->p->seed);
	stats_init(&L->s, L->p);
	user_init_hooks(L);
	return 0;
}

static void start_timers(struct load *L)
{
	ev_init(&L->arrival, arrival_cb);
	ev_init(&L->report, report_cb);
	ev_init(&L->end, end_cb);
	ev_signal_init(&L->sigint, signal_cb, SIGINT);
	ev_signal_init(&L->sigterm, signal_cb, SIGTERM);
	ev_signal_start(L->loop, &L->sigint);
	ev_signal_start(L->loop, &L->sigterm);
	ev_signal_init(&L->sigusr1, usr1_cb, SIGUSR1);
	ev_signal_start(L->loop, &L->sigusr1);
	ev_now_update(L->loop);
	L->t0 = ev_now(L->loop);
	/* sim_run(): the first user an exponential time after 0 */
	L->next_arrival = sim_expo_draw(&L->zig, &L->rng) / sim_arrival_rate(L->p, 0);
	L->arrivals_over = L->next_arrival >= L->p->duration_s;
	if (!L->arrivals_over)
		arm(L, &L->arrival, L->next_arrival);
	L->next_report = L->p->report_s;
	arm(L, &L->report, L->next_report);
	arm(L, &L->end, L->p->duration_s);
	if (!L->o->quiet && isatty(2)) {
		ev_timer_init(&L->progress, progress_cb, 1., 1.);
		ev_timer_start(L->loop, &L->progress);
	}
}

int load_run(struct load *L, struct load_opts *o)
{
	struct timespec w0, w1;

	if (setup(L, o) < 0)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &w0);
	start_timers(L);
	ev_run(L->loop, 0);
	if (ev_is_active(&L->progress))
		fprintf(stderr, "\r%100s\r", "");
	stats_finish(&L->s, fmin(load_now(L), L->p->duration_s), L->p->report_s);
	clock_gettime(CLOCK_MONOTONIC, &w1);
	L->wall_s = (double)(w1.tv_sec - w0.tv_sec) + (double)(w1.tv_nsec - w0.tv_nsec) / 1e9;
	if (L->csv && stats_csv(L->csv, &L->s) < 0) {
		fprintf(stderr, "tether-load: %s: %s\n", o->csv, strerror(errno));
		return -1;
	}
	if (L->s.rows_dropped)
		fprintf(stderr, "tether-load: out of memory: %llu CSV rows not kept\n",
		        (unsigned long long)L->s.rows_dropped);
	return 0;
}

void load_fini(struct load *L)
{
	if (L->loop) {
		ev_timer_stop(L->loop, &L->arrival);
		ev_timer_stop(L->loop, &L->report);
		ev_timer_stop(L->loop, &L->end);
		ev_timer_stop(L->loop, &L->progress);
		ev_signal_stop(L->loop, &L->sigint);
		ev_signal_stop(L->loop, &L->sigterm);
		ev_signal_stop(L->loop, &L->sigusr1);
		user_free_all(L);
		ev_loop_destroy(L->loop);
		L->loop = NULL;
	}
	if (L->csv)
		fclose(L->csv);
	L->csv = NULL;
	stats_fini(&L->s);
}
