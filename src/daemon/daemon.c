/*
 * tether - one balancer instance (see daemon.h): builds the runtime from a
 * configuration, starts its workers, listeners, checks and control servers,
 * and sequences a reload and a drain across the layers and the workers.
 *
 * Worker 0 runs on the caller's loop and thread, and does the control work
 * (signals, checks, runtime API, metrics, reloads); workers 1..N-1 run on
 * threads of their own (io/worker.c).  What must reach every worker is a
 * function run on each of them (workers_call), which returns once all ran
 * it: when a reload or a log reopen returns, every worker has it.
 *
 * Reload: read and check the file; build a generation (runtime); open its
 * new listeners (one per address and worker); then every worker takes over
 * the sockets whose address did not change, so no connection attempt is
 * ever refused, and stops the others (listener); then the old generation's
 * checks stop and its remaining sockets close, the new one is installed
 * (runtime: the old one is retired and lives on for its connections) and
 * its checks start.  Any failure before the switch leaves the running
 * generation untouched.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "check.h"
#include "daemon.h"
#include "listener.h"
#include "metrics.h"
#include "proxy.h"
#include "tether/err.h"

/* --- on_down = "close", on every worker --- */

struct down {
	struct t_backend *be;           /* its generation referenced while the message lives */
	uint32_t id;
};

static void close_server(struct t_worker *w, void *arg)
{
	struct down *d = arg;

	proxy_close_server(w, d->be, d->id);
	gen_put(d->be->gen);
	free(d);
}

static void server_down(void *arg, struct t_backend *be, uint32_t id)
{
	struct tether *t = arg;

	for (unsigned i = 0; i < t->nw; i++) {
		struct down *d = malloc(sizeof(*d));

		if (!d)
			continue;
		d->be = be;
		d->id = id;
		gen_get(be->gen);
		worker_post(&t->w[i], close_server, d);
	}
}

/* --- drain --- */

static void stop_if_idle(struct t_worker *w0, void *arg)
{
	struct tether *t = arg;

	if (T_LOAD(&t->rt.active) == 0)
		ev_break(t->loop, EVBREAK_ALL);
}

/* A draining worker closed its last connection (on its own thread). */
static void worker_idle(struct t_worker *w, void *arg)
{
	struct tether *t = arg;

	worker_post(&t->w[0], stop_if_idle, t);
}

static void drain_worker(struct t_worker *w, void *unused)
{
	w->draining = true;
	listeners_stop(w, NULL);
	ev_timer_stop(w->loop, &w->accept_timer);
	if (T_LOAD(&w->active) == 0 && w->on_idle)
		w->on_idle(w, w->on_idle_arg);
}

static void close_all(struct t_worker *w, void *unused)
{
	proxy_close_all(w, END_SHUTDOWN);
}

static void drain_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct tether *t = container_of(w, struct tether, drain_timer);

	log_printf(&t->log, "drain timeout: closing %u connections", T_LOAD(&t->rt.active));
	workers_call(t->w, t->nw, close_all, NULL);
	ev_break(loop, EVBREAK_ALL);
}

void tether_drain(struct tether *t, const char *why)
{
	struct t_runtime *rt = &t->rt;

	if (t->draining)
		return;
	t->draining = true;
	log_printf(&t->log, "%s: stopped accepting; draining %u connections (up to %.1fs)", why,
	           T_LOAD(&rt->active), rt->gen->cfg->global.drain_timeout_ms / 1000.0);
	workers_call(t->w, t->nw, drain_worker, NULL);
	listeners_close(rt->gen);
	ctl_stop(&t->admin);
	metrics_stop(&t->metrics);
	resolver_stop(&t->res);
	checks_stop(rt->gen);
	if (T_LOAD(&rt->active) == 0) {
		ev_break(t->loop, EVBREAK_ALL);
		return;
	}
	ev_timer_set(&t->drain_timer, rt->gen->cfg->global.drain_timeout_ms / 1000.0, 0.);
	ev_timer_start(t->loop, &t->drain_timer);
}

/* --- reload --- */

/* Builds a generation for cfg and opens its listeners; NULL with *err. */
static struct t_gen *prepare(struct tether *t, struct tether_config *cfg, char **err)
{
	struct t_gen *g;

	if (cfg_workers(cfg) != t->nw) {
		tether_err(err, -EINVAL, "%s: global.workers: %u workers are running; a change needs a restart",
		           cfg->path, t->nw);
		cfg_free(cfg);
		return NULL;
	}
	if (t->rt.gen && cfg->global.accept != t->rt.gen->cfg->global.accept) {
		tether_err(err, -EINVAL, "%s: global.accept: a change needs a restart", cfg->path);
		cfg_free(cfg);
		return NULL;
	}
	g = rt_gen_new(&t->rt, cfg, err);
	if (g && listeners_open(&t->rt, g, err) < 0) {
		rt_gen_free(g);
		return NULL;
	}
	return g;
}

/* Makes g the running generation (see the top of the file). */
static void go_live(struct tether *t, struct t_gen *g)
{
	struct t_gen *old = t->rt.gen;

	workers_call(t->w, t->nw, listeners_switch, g);
	if (old) {
		checks_stop(old);
		listeners_close(old);
	}
	rt_install(&t->rt, g);
	checks_start(&t->w[0], g);
}

static void log_fd(struct t_worker *w, void *instance_log)
{
	if (w->log == &w->own_log)
		log_follow(w->log, instance_log);
}

/* After the instance's log moved to a new file (or format): the workers
 * follow, then the old file closes. */
static void workers_follow_log(struct tether *t, int old_fd)
{
	workers_call(t->w, t->nw, log_fd, &t->log);
	if (old_fd >= 0)
		close(old_fd);
}

/* Logs where and how global.log says. */
static int open_log(struct tether *t, const struct cfg_global *gl, int *old_fd, char **err)
{
	const struct log_target lt = { .where = gl->log, .format = (enum log_format)gl->log_format,
	                               .syslog_socket = gl->log_syslog, .facility = gl->log_facility };

	return log_open_target(&t->log, &lt, old_fd, err);
}

/* --- the control sockets: admin and metrics --- */

/* The control sockets of a configuration, opened where they differ from
 * the running ones; served by control_switch. */
struct ctl_new {
	struct ctl_bound admin, metrics;
	bool admin_change, metrics_change;
};

/* Opens what gl's admin and metrics need that cur (NULL at start) does not
 * have.  On failure nothing running changed: 0, or -1 with *err. */
static int control_open(struct tether *t, const struct cfg_global *cur, const struct cfg_global *gl,
                        struct ctl_new *n, char **err)
{
	n->admin.fd = n->metrics.fd = -1;
	n->admin.path[0] = n->metrics.path[0] = '\0';
	/* a socket file removed meanwhile is made again: without it the
	 * instance cannot be reached but by signals */
	n->admin_change = !cur || strcmp(cur->admin.path, gl->admin.path) != 0 || ctl_bound_gone(&t->admin.b);
	n->metrics_change = !cur || cur->metrics.len != gl->metrics.len ||
	                    memcmp(&cur->metrics.ss, &gl->metrics.ss, gl->metrics.len) != 0;
	if (n->metrics_change && gl->metrics.len && ctl_bind_tcp(&n->metrics, &gl->metrics, "global.metrics", err) < 0)
		return -1;
	if (n->admin_change && gl->admin.path[0] && ctl_bind_unix(&n->admin, &gl->admin, err) < 0)
		goto fail;
	/* the same path: its mode and group may change in place */
	if (!n->admin_change && gl->admin.path[0] &&
	    (cur->admin.mode != gl->admin.mode || strcmp(cur->admin.group, gl->admin.group) != 0) &&
	    ctl_bind_chmod(&t->admin.b, &gl->admin, err) < 0)
		goto fail;
	return 0;
fail:
	ctl_bound_close(&n->metrics);
	return -1;
}

/* Serves what control_open opened, in place of the previous sockets. */
static void control_switch(struct tether *t, const struct cfg_global *gl, struct ctl_new *n)
{
	if (n->metrics_change && n->metrics.fd >= 0)
		metrics_serve(&t->metrics, &t->w[0], &n->metrics);
	else if (n->metrics_change)
		metrics_stop(&t->metrics);
	if (n->admin_change) {
		ctl_stop(&t->admin);
		if (n->admin.fd >= 0)
			admin_serve(&t->admin, &t->w[0], &n->admin, gl->admin.level);
	}
	t->admin.level = gl->admin.level;
}

/* What a reload changed of the control sockets, for its log line. */
static void control_log(struct tether *t, const struct cfg_global *old, const struct cfg_global *gl,
                        const struct ctl_new *n)
{
	if (n->metrics_change)
		log_printf(&t->log, "reload: metrics %s%s", gl->metrics.len ? "now on " : "off",
		           gl->metrics.len ? gl->metrics.text : "");
	if (n->admin_change)
		log_printf(&t->log, "reload: admin socket %s%s", gl->admin.path[0] ? "now " : "off", gl->admin.path);
	else if (gl->admin.path[0] && (old->admin.mode != gl->admin.mode || old->admin.level != gl->admin.level ||
	                               strcmp(old->admin.group, gl->admin.group) != 0))
		log_printf(&t->log, "reload: admin socket %s: mode %04o, group %s, level %s", gl->admin.path,
		           gl->admin.mode, gl->admin.group[0] ? gl->admin.group : "(unchanged)",
		           gl->admin.level == CFG_LEVEL_USER ? "user" :
		           gl->admin.level == CFG_LEVEL_OPERATOR ? "operator" : "admin");
}

static bool same_log(const struct cfg_global *a, const struct cfg_global *b)
{
	return strcmp(a->log, b->log) == 0 && a->log_format == b->log_format &&
	       strcmp(a->log_syslog, b->log_syslog) == 0 && a->log_facility == b->log_facility;
}

void tether_reload(struct tether *t)
{
	struct t_runtime *rt = &t->rt;
	struct tether_config *cfg = NULL;
	struct t_gen *g = NULL;
	struct ctl_new ctl;
	char *err = NULL;
	int old_fd;

	if (t->draining)
		return;
	if (cfg_load(rt->conf_path, &cfg, &err) < 0 || !(g = prepare(t, cfg, &err)) ||
	    resolver_carry(&t->res, g, &err) < 0 || control_open(t, &rt->gen->cfg->global, &g->cfg->global, &ctl, &err) < 0) {
		if (g)
			rt_gen_free(g);
		rt->reload_failures_total++;
		log_printf(&t->log, "reload of %s failed; still running the previous configuration:", rt->conf_path);
		for (char *line = strtok(err, "\n"); line; line = strtok(NULL, "\n"))
			log_printf(&t->log, "  %s", line);
		log_flush(&t->log);
		free(err);      /* prepare() owned cfg and freed it; cfg_load() sets none on failure */
		return;
	}
	if (!same_log(&g->cfg->global, &rt->gen->cfg->global)) {
		if (open_log(t, &g->cfg->global, &old_fd, &err) < 0) {
			log_printf(&t->log, "reload: %s (keeping the previous log)", err);
			free(err);
		} else {
			workers_follow_log(t, old_fd);
		}
	}
	control_log(t, &rt->gen->cfg->global, &g->cfg->global, &ctl);
	control_switch(t, &g->cfg->global, &ctl);
	go_live(t, g);
	resolver_update(&t->res, g);
	rt->reloads_total++;
	log_printf(&t->log, "reloaded %s: %d frontends, %d backends, %u connections carried over", rt->conf_path,
	           g->nfe, g->cfg->nbackends, T_LOAD(&rt->active));
	log_flush(&t->log);
}

/* --- signals --- */

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct tether *t = w->data;
	int old_fd;

	switch (w->signum) {
	case SIGTERM:
		tether_drain(t, "SIGTERM");
		break;
	case SIGINT:
		tether_drain(t, "SIGINT");
		break;
	case SIGHUP:
		tether_reload(t);
		break;
	case SIGUSR1:
		log_reopen(&t->log, &old_fd);
		workers_follow_log(t, old_fd);
		log_printf(&t->log, "log reopened");
		break;
	}
}

static void signals(struct tether *t, bool start)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1 };
	ev_signal *w[] = { &t->sig_term, &t->sig_int, &t->sig_hup, &t->sig_usr1 };

	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		if (start) {
			ev_signal_init(w[i], signal_cb, sigs[i]);
			w[i]->data = t;
			ev_signal_start(t->loop, w[i]);
			ev_unref(t->loop);      /* signal watchers alone do not keep the loop alive */
		} else if (ev_is_active(w[i])) {
			ev_ref(t->loop);
			ev_signal_stop(t->loop, w[i]);
			/* the instance is going: a late SIGTERM (an init system
			 * repeating itself) must not turn a clean exit into a kill */
			signal(sigs[i], SIG_IGN);
		}
	}
}

/* --- life --- */

static int start_workers(struct tether *t, unsigned n, bool pin, char **err)
{
	int rc;

	t->w = calloc(n, sizeof(*t->w));
	if (!t->w)
		return tether_err(err, -ENOMEM, "out of memory");
	for (unsigned i = 0; i < n; i++) {
		rc = worker_init(&t->w[i], i, i == 0 ? t->loop : NULL, &t->rt, &t->log, err);
		if (rc < 0)
			return rc;
		t->nw = i + 1;
		t->w[i].on_idle = worker_idle;
		t->w[i].on_idle_arg = t;
		t->w[i].peers = t->w;
		t->w[i].npeers = n;
	}
	for (unsigned i = 1; i < n; i++)
		if ((rc = worker_start_thread(&t->w[i], pin, err)) < 0)
			return rc;
	if (pin)            /* worker 0 is this thread; pinned last, so no thread inherits its CPU */
		worker_pin(&t->w[0], pthread_self());
	return 0;
}

/* A warning when global.maxconn cannot be served within RLIMIT_NOFILE:
 * each client connection takes two descriptors (the client's and its
 * server's), plus the listeners, checks and control sockets. */
static void warn_nofile(struct tether *t, const struct t_gen *g)
{
	const struct tether_config *cfg = g->cfg;
	unsigned long long clients = 0, need, fixed = 32;
	struct rlimit rl;
	bool all = true;

	for (int i = 0; i < cfg->nfrontends; i++) {
		clients += cfg->frontends[i].maxconn;
		all &= cfg->frontends[i].maxconn > 0;
		fixed += (unsigned long long)cfg->frontends[i].nbinds * t->nw;
	}
	if (!all || clients > cfg->global.maxconn)
		clients = cfg->global.maxconn;
	for (int i = 0; i < cfg->nbackends; i++)
		fixed += (unsigned long long)cfg->backends[i].nservers;       /* a check each */
	need = 2 * clients + fixed;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && need > rl.rlim_cur)
		log_printf(&t->log, "warning: %llu client connections (global.maxconn %u%s) need about %llu file "
		           "descriptors, but RLIMIT_NOFILE is %llu: raise it (ulimit -n, systemd LimitNOFILE=) or lower "
		           "maxconn; beyond it, accepts pause and connects fail", clients, cfg->global.maxconn,
		           all ? ", frontends' maxconn" : "", need, (unsigned long long)rl.rlim_cur);
}

int tether_start(struct tether *t, struct tether_config *cfg, const char *path, unsigned flags, char **err)
{
	const struct cfg_global *gl = &cfg->global;
	unsigned nw = cfg_workers(cfg);
	struct t_gen *g;
	int rc;

	memset(t, 0, sizeof(*t));
	t->flags = flags;
	t->admin.b.fd = t->metrics.cs.b.fd = -1;
	log_init(&t->log, true);
	t->loop = (flags & TETHER_SIGNALS) ? ev_default_loop(EVFLAG_AUTO) : ev_loop_new(EVFLAG_AUTO);
	if (!t->loop) {
		cfg_free(cfg);
		return tether_err(err, -ENOMEM, "cannot initialise the event loop");
	}
	/* before any listener opens: a signal that finds no handler would
	 * kill the process (SIGHUP's default); they are played once the loop runs */
	if (flags & TETHER_SIGNALS) {
		signal(SIGPIPE, SIG_IGN);
		signals(t, true);
	}
	rt_init(&t->rt, &t->log, path, nw, (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)t);
	t->rt.hooks = (struct rt_hooks){ .server_down = server_down, .arg = t };
	rc = lb_registry_check(err);
	if (rc < 0 || (rc = open_log(t, gl, NULL, err)) < 0 ||
	    (rc = start_workers(t, nw, gl->cpu_affinity, err)) < 0) {
		cfg_free(cfg);
		return rc;
	}
	ev_init(&t->drain_timer, drain_timer_cb);
	g = prepare(t, cfg, err);
	if (!g)
		return -EINVAL;
	go_live(t, g);
	gl = &g->cfg->global;
	if ((rc = resolver_start(&t->res, &t->w[0], g, err)) < 0)
		return rc;
	t->metrics.res = &t->res;
	{
		struct ctl_new ctl;

		if (control_open(t, NULL, gl, &ctl, err) < 0)
			return -EINVAL;
		control_switch(t, gl, &ctl);
	}
	warn_nofile(t, g);
	log_start_timer(&t->log, t->loop);
	t->rt.started = ev_time();
	log_printf(&t->log, "tether %s started: %s, %d frontends, %d backends, %u worker%s", TETHER_VERSION, path,
	           g->nfe, g->cfg->nbackends, nw, nw == 1 ? "" : "s");
	log_flush(&t->log);
	return 0;
}

int tether_run(struct tether *t)
{
	ev_run(t->loop, 0);
	log_printf(&t->log, "tether stopped");
	return t->exit_code;
}

void tether_free(struct tether *t)
{
	if (!t->loop)
		return;
	for (unsigned i = 1; i < t->nw; i++)
		worker_stop_thread(&t->w[i]);   /* from here on, one thread does everything */
	t->draining = true;
	for (unsigned i = 0; i < t->nw; i++) {
		t->w[i].draining = true;        /* a closing connection resumes nothing */
		listeners_stop(&t->w[i], NULL);
	}
	if (t->rt.gen) {
		checks_stop(t->rt.gen);
		listeners_close(t->rt.gen);
	}
	ctl_stop(&t->admin);
	metrics_stop(&t->metrics);
	resolver_stop(&t->res);
	for (unsigned i = t->nw; i-- > 0;)
		worker_fini(&t->w[i]);          /* closes and frees every connection */
	free(t->w);
	t->w = NULL;
	if (t->flags & TETHER_SIGNALS)
		signals(t, false);
	ev_timer_stop(t->loop, &t->drain_timer);
	rt_fini(&t->rt);
	log_close(&t->log);
	ev_loop_destroy(t->loop);
	t->loop = NULL;
}
