/*
 * tether - one balancer instance (see daemon.h): builds the runtime from a
 * configuration, starts listeners, checks and control servers, and
 * sequences a reload and a drain across the layers.
 *
 * Reload: read and check the file; build a generation (runtime); open its
 * new listeners and take over the running ones' sockets whose address did
 * not change, so no connection attempt is ever refused (listener); then
 * stop the old generation's checks and listeners, install the new one
 * (runtime: the old one is retired and lives on for its connections), and
 * start the new one's listeners and checks.  Any failure before the
 * install leaves the running generation untouched.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "check.h"
#include "daemon.h"
#include "listener.h"
#include "metrics.h"
#include "proxy.h"
#include "tether/err.h"

static void server_down(void *arg, struct t_server *s)
{
	struct tether *t = arg;

	proxy_close_server(&t->w, s);
}

/* Builds a generation for cfg and opens its listeners; NULL with *err. */
static struct t_gen *prepare(struct tether *t, struct tether_config *cfg, char **err)
{
	struct t_gen *g = rt_gen_new(&t->rt, cfg, err);

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

	if (old) {
		checks_stop(old);
		listeners_close(old);
	}
	rt_install(&t->rt, g);
	t->w.accept_paused = false;
	listeners_start(&t->w, g);
	checks_start(&t->w, g);
}

void tether_reload(struct tether *t)
{
	struct t_runtime *rt = &t->rt;
	struct tether_config *cfg = NULL;
	struct t_gen *g = NULL;
	char *err = NULL;

	if (t->draining)
		return;
	if (cfg_load(rt->conf_path, &cfg, &err) < 0 || !(g = prepare(t, cfg, &err))) {
		rt->reload_failures_total++;
		log_printf(&t->log, "reload of %s failed; still running the previous configuration:", rt->conf_path);
		for (char *line = strtok(err, "\n"); line; line = strtok(NULL, "\n"))
			log_printf(&t->log, "  %s", line);
		log_flush(&t->log);
		free(err);      /* prepare() owned cfg and freed it; cfg_load() sets none on failure */
		return;
	}
	if (strcmp(g->cfg->global.log, rt->gen->cfg->global.log) != 0 && log_open(&t->log, g->cfg->global.log, &err) < 0) {
		log_printf(&t->log, "reload: %s (keeping the previous log)", err);
		free(err);
	}
	go_live(t, g);
	rt->reloads_total++;
	log_printf(&t->log, "reloaded %s: %d frontends, %d backends, %u connections carried over", rt->conf_path,
	           g->nfe, g->cfg->nbackends, rt->active);
	log_flush(&t->log);
}

static void drain_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct tether *t = container_of(w, struct tether, drain_timer);

	log_printf(&t->log, "drain timeout: closing %u connections", t->rt.active);
	proxy_close_all(&t->w, END_SHUTDOWN);
	ev_break(loop, EVBREAK_ALL);
}

void tether_drain(struct tether *t, const char *why)
{
	struct t_runtime *rt = &t->rt;

	if (t->draining)
		return;
	t->draining = t->w.draining = true;
	log_printf(&t->log, "%s: stopped accepting; draining %u connections (up to %.1fs)", why, rt->active,
	           rt->gen->cfg->global.drain_timeout_ms / 1000.0);
	listeners_close(rt->gen);
	ev_timer_stop(t->loop, &t->w.accept_timer);
	ctl_stop(&t->admin);
	ctl_stop(&t->metrics);
	checks_stop(rt->gen);
	if (rt->active == 0) {
		ev_break(t->loop, EVBREAK_ALL);
		return;
	}
	ev_timer_set(&t->drain_timer, rt->gen->cfg->global.drain_timeout_ms / 1000.0, 0.);
	ev_timer_start(t->loop, &t->drain_timer);
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct tether *t = w->data;

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
		log_reopen(&t->log);
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
		}
	}
}

int tether_start(struct tether *t, struct tether_config *cfg, const char *path, unsigned flags, char **err)
{
	const struct cfg_global *gl = &cfg->global;
	struct t_gen *g;
	int rc;

	memset(t, 0, sizeof(*t));
	t->flags = flags;
	t->admin.fd = t->metrics.fd = -1;
	log_init(&t->log);
	t->loop = (flags & TETHER_SIGNALS) ? ev_default_loop(EVFLAG_AUTO) : ev_loop_new(EVFLAG_AUTO);
	if (!t->loop) {
		cfg_free(cfg);
		return tether_err(err, -ENOMEM, "cannot initialise the event loop");
	}
	rt_init(&t->rt, &t->log, path, (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)t);
	t->rt.hooks = (struct rt_hooks){ .server_down = server_down, .arg = t };
	rc = lb_registry_check(err);
	if (rc < 0 || (rc = log_open(&t->log, gl->log, err)) < 0 || (rc = worker_init(&t->w, t->loop, &t->rt, err)) < 0) {
		cfg_free(cfg);
		return rc;
	}
	ev_init(&t->drain_timer, drain_timer_cb);
	if (flags & TETHER_SIGNALS)
		signal(SIGPIPE, SIG_IGN);
	g = prepare(t, cfg, err);
	if (!g)
		return -EINVAL;
	go_live(t, g);
	gl = &g->cfg->global;
	if (gl->admin[0] && (rc = admin_start(&t->admin, &t->w, gl->admin, err)) < 0)
		return rc;
	if (gl->metrics.len && (rc = metrics_start(&t->metrics, &t->w, &gl->metrics, err)) < 0)
		return rc;
	if (flags & TETHER_SIGNALS)
		signals(t, true);
	log_start_timer(&t->log, t->loop);
	t->rt.started = ev_time();
	log_printf(&t->log, "tether %s started: %s, %d frontends, %d backends", TETHER_VERSION, path, g->nfe,
	           g->cfg->nbackends);
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
	t->draining = t->w.draining = true;     /* a closing connection resumes nothing */
	if (t->rt.gen) {
		checks_stop(t->rt.gen);
		listeners_close(t->rt.gen);
	}
	ctl_stop(&t->admin);
	ctl_stop(&t->metrics);
	worker_fini(&t->w);             /* closes and frees every connection */
	if (t->flags & TETHER_SIGNALS)
		signals(t, false);
	ev_timer_stop(t->loop, &t->drain_timer);
	rt_fini(&t->rt);
	log_close(&t->log);
	ev_loop_destroy(t->loop);
	t->loop = NULL;
}
