/*
 * tether - the daemon: building the runtime from a configuration, signals,
 * drain on SIGTERM, zero-downtime reload on SIGHUP, health results.
 *
 * Reload keeps every listening socket whose address is unchanged (the fd
 * moves to the new frontend, so no connection attempt is ever refused),
 * opens new ones, closes removed ones.  Established connections keep the
 * backend objects they started on (reference counted); servers that still
 * exist (same backend and server name) carry their health and counters over.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "tether.h"
#include "tether_version.h"

#define SCRATCH_SIZE (64 * 1024)   /* one read; bounds what a connection may buffer */

static void set_err(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_err(char **err, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (err)
		*err = strdup(msg);
}

struct t_backend *tether_find_backend(struct tether *t, const char *name)
{
	if (!t->gen)
		return NULL;
	for (struct t_backend *be = t->gen->backends; be; be = be->next)
		if (strcmp(be->cfg.name, name) == 0)
			return be;
	return NULL;
}

struct t_server *be_find_server(struct t_backend *be, const char *name)
{
	struct lb_server *s = lb_pool_find(&be->pool, name);

	return s ? s->data : NULL;
}

static void server_free_checks(struct t_backend *be)
{
	for (int i = 0; i < be->cfg_nservers; i++)
		check_stop(&be->servers[i]);
	for (struct t_server *s = be->dynamic; s; s = s->next_dynamic)
		check_stop(s);
}

static void backend_free(struct t_backend *be)
{
	struct t_server *s, *next;

	server_free_checks(be);
	lb_pool_fini(&be->pool);
	free(be->servers);
	for (s = be->dynamic; s; s = next) {
		next = s->next_dynamic;
		free(s);
	}
	free(be);
}

/* Frees g and everything it owns; closes the listeners it still holds. */
static void gen_free(struct t_gen *g)
{
	for (int i = 0; g->fe && i < g->nfe; i++) {
		struct t_frontend *f = g->fe[i];

		if (!f)
			continue;
		for (int j = 0; f->ls && j < f->cfg.nbinds; j++) {
			listener_stop(g->t, &f->ls[j]);
			if (f->ls[j].fd >= 0)
				close(f->ls[j].fd);
		}
		free(f->ls);
		free(f);
	}
	free(g->fe);
	while (g->backends) {
		struct t_backend *be = g->backends;

		g->backends = be->next;
		backend_free(be);
	}
	cfg_free(g->cfg);
	free(g);
}

void gen_get(struct t_gen *g)
{
	g->refs++;
}

void gen_put(struct t_gen *g)
{
	struct tether *t = g->t;

	if (--g->refs > 0)
		return;
	for (struct t_gen **p = &t->gens; *p; p = &(*p)->next)
		if (*p == g) {
			*p = g->next;
			break;
		}
	gen_free(g);
}

/* Counters and health of the same-named server in the running config. */
static void inherit(struct tether *t, struct t_backend *nb, struct t_server *s)
{
	struct t_backend *ob = tether_find_backend(t, nb->cfg.name);
	struct t_server *o = ob ? be_find_server(ob, s->lb.name) : NULL;

	if (!o)
		return;
	s->hc = o->hc;
	s->lb.up = o->lb.up;
	s->lb.admin = o->lb.admin;
	s->connections_total = o->connections_total;
	s->connect_failures_total = o->connect_failures_total;
	s->bytes_in_total = o->bytes_in_total;
	s->bytes_out_total = o->bytes_out_total;
	memcpy(s->last_check, o->last_check, sizeof(s->last_check));
	nb->retries_total = ob->retries_total;
	nb->no_server_total = ob->no_server_total;
}

static struct t_backend *backend_new(struct t_gen *g, const struct cfg_backend *bc, char **err)
{
	struct tether *t = g->t;
	struct t_backend *be = calloc(1, sizeof(*be));
	int rc;

	if (!be)
		goto nomem;
	be->cfg = *bc;
	be->cfg.servers = NULL;
	be->t = t;
	be->gen = g;
	be->servers = calloc((size_t)bc->nservers + 1, sizeof(*be->servers));
	if (!be->servers)
		goto nomem;
	if (lb_pool_init(&be->pool, bc->algo, &bc->params, err) < 0) {
		free(be->servers);
		free(be);
		return NULL;
	}
	for (int i = 0; i < bc->nservers; i++) {
		struct t_server *s = &be->servers[i];

		snprintf(s->lb.name, sizeof(s->lb.name), "%s", bc->servers[i].name);
		s->lb.weight = bc->servers[i].weight;
		s->lb.maxconn = bc->servers[i].maxconn;
		s->lb.backup = bc->servers[i].backup;
		s->lb.data = s;
		s->lb.up = true;
		s->be = be;
		s->addr = bc->servers[i].addr;
		s->check_fd = -1;
		hc_init(&s->hc, &bc->health.hc, true);
		snprintf(s->last_check, sizeof(s->last_check), "not checked yet");
		inherit(t, be, s);
		rc = lb_pool_add(&be->pool, &s->lb);
		if (rc < 0) {
			set_err(err, "backend %s: cannot add server %s", bc->name, s->lb.name);
			be->cfg_nservers = i;
			backend_free(be);
			return NULL;
		}
		if (s->lb.admin != LB_ADMIN_READY)
			lb_server_set_admin(&be->pool, &s->lb, s->lb.admin);
	}
	be->cfg_nservers = bc->nservers;
	return be;
nomem:
	if (be)
		free(be->servers);
	free(be);
	set_err(err, "out of memory");
	return NULL;
}

static void backend_start_checks(struct t_backend *be)
{
	if (be->cfg.health.type == CFG_CHECK_NONE)
		return;
	for (int i = 0; i < be->cfg_nservers; i++)
		check_start(&be->servers[i]);
}

/* The running listener bound to addr, or NULL. */
static struct t_listener *running_listener(struct tether *t, const struct cfg_addr *addr)
{
	if (!t->gen)
		return NULL;
	for (int i = 0; i < t->gen->nfe; i++)
		for (int j = 0; j < t->gen->fe[i]->cfg.nbinds; j++) {
			struct t_listener *l = &t->gen->fe[i]->ls[j];

			if (l->fd >= 0 && l->addr.len == addr->len && memcmp(&l->addr.ss, &addr->ss, addr->len) == 0)
				return l;
		}
	return NULL;
}

/*
 * Builds a generation for cfg (taking ownership of it), reusing the
 * listeners of the running one.  On failure nothing running is touched:
 * running listeners are only taken over once everything else succeeded.
 */
static struct t_gen *build(struct tether *t, struct tether_config *cfg, char **err)
{
	struct t_gen *g = calloc(1, sizeof(*g));
	struct t_backend **tail, **byidx = calloc((size_t)cfg->nbackends + 1, sizeof(*byidx));

	if (!g || !byidx) {
		set_err(err, "out of memory");
		free(g);
		free(byidx);
		cfg_free(cfg);
		return NULL;
	}
	g->t = t;
	g->cfg = cfg;
	g->refs = 1;            /* the running reference, once installed */
	g->nfe = cfg->nfrontends;
	g->fe = calloc((size_t)cfg->nfrontends + 1, sizeof(*g->fe));
	if (!g->fe)
		goto nomem;
	tail = &g->backends;
	for (int i = 0; i < cfg->nbackends; i++) {
		struct t_backend *be = backend_new(g, &cfg->backends[i], err);

		if (!be)
			goto fail;
		*tail = byidx[i] = be;
		tail = &be->next;
	}
	for (int i = 0; i < cfg->nfrontends; i++) {
		struct t_frontend *f = calloc(1, sizeof(*f));

		if (!f)
			goto nomem;
		g->fe[i] = f;
		f->cfg = cfg->frontends[i];
		f->t = t;
		f->gen = g;
		f->be = byidx[cfg->frontends[i].backend];
		for (int a = 0; t->gen && a < t->gen->nfe; a++)    /* counters carry over by name */
			if (strcmp(t->gen->fe[a]->cfg.name, f->cfg.name) == 0)
				f->connections_total = t->gen->fe[a]->connections_total;
		f->ls = calloc((size_t)f->cfg.nbinds, sizeof(*f->ls));
		if (!f->ls)
			goto nomem;
		for (int j = 0; j < f->cfg.nbinds; j++) {
			f->ls[j].fd = -1;
			f->ls[j].addr = f->cfg.binds[j];
			f->ls[j].fe = f;
		}
	}
	/* open what is new first: a failure leaves the running listeners alone */
	for (int i = 0; i < g->nfe; i++)
		for (int j = 0; j < g->fe[i]->cfg.nbinds; j++)
			if (!running_listener(t, &g->fe[i]->ls[j].addr) && listener_open(&g->fe[i]->ls[j], err) < 0)
				goto fail;
	for (int i = 0; i < g->nfe; i++)
		for (int j = 0; j < g->fe[i]->cfg.nbinds; j++) {
			struct t_listener *l = &g->fe[i]->ls[j], *old;

			if (l->fd >= 0 || !(old = running_listener(t, &l->addr)))
				continue;
			listener_stop(t, old);          /* the fd moves to the new generation */
			l->fd = old->fd;
			old->fd = -1;
		}
	free(byidx);
	return g;
nomem:
	set_err(err, "out of memory");
fail:
	free(byidx);
	gen_free(g);
	return NULL;
}

/* A generation stops being the running one: no checks, no listeners; its
 * connections go on.  Drops the running reference. */
static void gen_retire(struct t_gen *g)
{
	struct tether *t = g->t;

	g->retired = true;
	for (struct t_backend *be = g->backends; be; be = be->next)
		server_free_checks(be);
	for (int i = 0; i < g->nfe; i++)
		for (int j = 0; j < g->fe[i]->cfg.nbinds; j++) {
			struct t_listener *l = &g->fe[i]->ls[j];

			listener_stop(t, l);
			if (l->fd >= 0)
				close(l->fd);
			l->fd = -1;
		}
	gen_put(g);
}

/* Makes g the running generation; retires the previous one. */
static void install(struct tether *t, struct t_gen *g)
{
	struct t_gen *old = t->gen;

	g->next = t->gens;
	t->gens = g;
	t->gen = g;
	if (old)
		gen_retire(old);
	for (struct t_backend *be = g->backends; be; be = be->next)
		backend_start_checks(be);
	for (int i = 0; i < g->nfe; i++)
		for (int j = 0; j < g->fe[i]->cfg.nbinds; j++)
			listener_start(t, &g->fe[i]->ls[j]);
	t->accept_paused = false;
}

void tether_accept_resume(struct tether *t)
{
	if (t->draining)
		return;
	t->accept_paused = false;
	for (int i = 0; i < t->gen->nfe; i++)
		for (int j = 0; j < t->gen->fe[i]->cfg.nbinds; j++)
			listener_start(t, &t->gen->fe[i]->ls[j]);
}

static void accept_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	tether_accept_resume(container_of(w, struct tether, accept_timer));
}

void tether_reload(struct tether *t)
{
	struct tether_config *cfg = NULL;
	struct t_gen *g = NULL;
	char *err = NULL;

	if (cfg_load(t->conf_path, &cfg, &err) < 0 || !(g = build(t, cfg, &err))) {
		t->reload_failures_total++;
		log_printf("reload of %s failed; still running the previous configuration:", t->conf_path);
		for (char *line = strtok(err, "\n"); line; line = strtok(NULL, "\n"))
			log_printf("  %s", line);
		log_flush();
		free(err);      /* build() owned cfg and freed it; cfg_load() sets none on failure */
		return;
	}
	if (strcmp(g->cfg->global.log, t->gen->cfg->global.log) != 0 && log_open(g->cfg->global.log, &err) < 0) {
		log_printf("reload: %s (keeping the previous log)", err);
		free(err);
	}
	install(t, g);
	t->reloads_total++;
	log_printf("reloaded %s: %d frontends, %d backends, %u connections carried over", t->conf_path,
	           g->nfe, g->cfg->nbackends, t->active);
	log_flush();
}

static void drain_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct tether *t = container_of(w, struct tether, drain_timer);

	log_printf("drain timeout: closing %u connections", t->active);
	conn_close_all(t, END_SHUTDOWN);
	ev_break(loop, EVBREAK_ALL);
}

static void stop(struct tether *t, const char *sig)
{
	if (t->draining)
		return;
	t->draining = true;
	log_printf("%s: stopped accepting; draining %u connections (up to %.1fs)", sig, t->active,
	           t->gen->cfg->global.drain_timeout_ms / 1000.0);
	for (int i = 0; i < t->gen->nfe; i++)
		for (int j = 0; j < t->gen->fe[i]->cfg.nbinds; j++) {
			struct t_listener *l = &t->gen->fe[i]->ls[j];

			listener_stop(t, l);
			if (l->fd >= 0)
				close(l->fd);
			l->fd = -1;
		}
	ev_timer_stop(t->loop, &t->accept_timer);
	admin_stop(t);
	metrics_stop(t);
	for (struct t_backend *be = t->gen->backends; be; be = be->next)
		server_free_checks(be);
	if (t->active == 0) {
		ev_break(t->loop, EVBREAK_ALL);
		return;
	}
	ev_timer_set(&t->drain_timer, t->gen->cfg->global.drain_timeout_ms / 1000.0, 0.);
	ev_timer_start(t->loop, &t->drain_timer);
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct tether *t = w->data;

	switch (w->signum) {
	case SIGTERM:
		stop(t, "SIGTERM");
		break;
	case SIGINT:
		stop(t, "SIGINT");
		break;
	case SIGHUP:
		if (!t->draining)
			tether_reload(t);
		break;
	case SIGUSR1:
		log_reopen();
		log_printf("log reopened");
		break;
	}
}

void srv_health_result(struct t_server *s, bool ok, const char *why)
{
	struct t_backend *be = s->be;
	enum hc_change ch = hc_report(&s->hc, &be->cfg.health.hc, ok);

	snprintf(s->last_check, sizeof(s->last_check), "%s", why);
	if (ch == HC_SAME)
		return;
	lb_server_set_up(&be->pool, &s->lb, ch == HC_WENT_UP);
	log_printf("server %s/%s is %s (%s)", be->cfg.name, s->lb.name, ch == HC_WENT_UP ? "UP" : "DOWN", why);
	log_flush();        /* state changes are rare and wanted at once */
	if (ch == HC_WENT_DOWN && be->cfg.health.on_down == CFG_ON_DOWN_CLOSE)
		conn_close_server(be->t, s);
}

void srv_observe(struct t_server *s, bool ok, const char *why)
{
	const struct cfg_health *h = &s->be->cfg.health;

	if (!h->observe || s->be->gen->retired)
		return;
	/* A successful real connection only counts while the server is UP: a
	 * DOWN server must prove itself to the active check (rise). */
	if (ok && !s->lb.up)
		return;
	if (ok && s->hc.health == h->hc.rise + h->hc.fall - 1)
		return;
	srv_health_result(s, ok, why);
}

static void reaper_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	conn_reap(container_of(w, struct tether, reaper));
}

int tether_start(struct tether *t, struct tether_config *cfg, const char *path, char **err)
{
	struct t_gen *g;
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1 };
	ev_signal *w[] = { &t->sig_term, &t->sig_int, &t->sig_hup, &t->sig_usr1 };

	memset(t, 0, sizeof(*t));
	t->epfd = -1;
	t->loop = ev_default_loop(EVFLAG_AUTO);
	if (!t->loop) {
		set_err(err, "cannot initialise the event loop");
		cfg_free(cfg);
		return -1;
	}
	snprintf(t->conf_path, sizeof(t->conf_path), "%s", path);
	lb_rng_seed(&t->rng, (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32));
	t->scratch_size = SCRATCH_SIZE;
	t->scratch = malloc(t->scratch_size);
	if (!t->scratch) {
		set_err(err, "out of memory");
		cfg_free(cfg);
		return -1;
	}
	if (log_open(cfg->global.log, err) < 0) {
		cfg_free(cfg);
		return -1;
	}
	t->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (t->epfd < 0) {
		set_err(err, "epoll_create1: %s", strerror(errno));
		cfg_free(cfg);
		return -1;
	}
	/* the connections' own watchers (timers) keep the loop alive, not these */
	ev_io_init(&t->io, conn_io_cb, t->epfd, EV_READ);
	ev_io_start(t->loop, &t->io);
	ev_unref(t->loop);
	ev_prepare_init(&t->reaper, reaper_cb);
	ev_prepare_start(t->loop, &t->reaper);
	ev_unref(t->loop);
	ev_init(&t->accept_timer, accept_timer_cb);
	ev_init(&t->drain_timer, drain_timer_cb);
	signal(SIGPIPE, SIG_IGN);
	g = build(t, cfg, err);
	if (!g)
		return -1;
	install(t, g);
	if (admin_start(t, err) < 0 || metrics_start(t, err) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		ev_signal_init(w[i], signal_cb, sigs[i]);
		w[i]->data = t;
		ev_signal_start(t->loop, w[i]);
		ev_unref(t->loop);      /* signal watchers alone do not keep the loop alive */
	}
	log_start_timer(t->loop);
	t->started = ev_time();
	log_printf("tether %s started: %s, %d frontends, %d backends", TETHER_VERSION, path, cfg->nfrontends,
	           cfg->nbackends);
	log_flush();
	return 0;
}

int tether_run(struct tether *t)
{
	ev_run(t->loop, 0);
	log_printf("tether stopped");
	return t->exit_code;
}

void tether_free(struct tether *t)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1 };
	ev_signal *w[] = { &t->sig_term, &t->sig_int, &t->sig_hup, &t->sig_usr1 };

	if (!t->loop)
		return;
	conn_close_all(t, END_SHUTDOWN);
	conn_reap(t);
	if (t->epfd >= 0) {
		ev_ref(t->loop);
		ev_io_stop(t->loop, &t->io);
		ev_ref(t->loop);
		ev_prepare_stop(t->loop, &t->reaper);
		close(t->epfd);
	}
	admin_stop(t);
	metrics_stop(t);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (ev_is_active(w[i])) {
			ev_ref(t->loop);
			ev_signal_stop(t->loop, w[i]);
		}
	log_stop_timer(t->loop);
	ev_timer_stop(t->loop, &t->accept_timer);
	ev_timer_stop(t->loop, &t->drain_timer);
	if (t->gen) {
		gen_retire(t->gen);     /* its last reference, once the connections are reaped */
		t->gen = NULL;
	}
	while (t->gens) {               /* none left unless a reference was lost */
		struct t_gen *g = t->gens;

		t->gens = g->next;
		gen_free(g);
	}
	free(t->scratch);
	log_close();
	ev_loop_destroy(t->loop);
	t->loop = NULL;
}
