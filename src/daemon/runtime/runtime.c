/*
 * tether - the runtime (contract and ownership rules in runtime.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime.h"
#include "tether/err.h"

void rt_init(struct t_runtime *rt, struct t_log *log, const char *conf_path, unsigned nworkers, uint64_t seed)
{
	memset(rt, 0, sizeof(*rt));
	rt->log = log;
	rt->nworkers = nworkers ? nworkers : 1;
	pthread_mutex_init(&rt->lock, NULL);
	snprintf(rt->conf_path, sizeof(rt->conf_path), "%s", conf_path);
	lb_rng_seed(&rt->rng, seed);
}

/* --- generations --- */

static void backend_free(struct t_backend *be)
{
	struct t_server *s, *next;

	lb_pool_fini(&be->pool);
	pthread_mutex_destroy(&be->lock);
	free(be->servers);
	for (s = be->dynamic; s; s = next) {
		next = s->next_dynamic;
		free(s);
	}
	free(be);
}

/* Frees g and everything it owns; closes the listeners it still holds
 * (a generation that was never started has no watcher to stop). */
static void gen_free(struct t_gen *g)
{
	for (int i = 0; g->fe && i < g->nfe; i++) {
		struct t_frontend *f = g->fe[i];

		if (!f)
			continue;
		for (unsigned j = 0; f->ls && j < (unsigned)f->cfg.nbinds * g->rt->nworkers; j++)
			if (f->ls[j].fd >= 0)
				close(f->ls[j].fd);
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

/* A generation that was built but never installed: the running one's
 * counters were not handed over after all (see hand_over). */
void rt_gen_free(struct t_gen *g)
{
	struct t_gen *run = g->rt->gen;

	for (int i = 0; run && run != g && i < run->nfe; i++)
		run->fe[i]->handed_over = false;
	for (struct t_backend *be = run != g && run ? run->backends : NULL; be; be = be->next) {
		be->handed_over = false;
		pthread_mutex_lock(&be->lock);
		for (int i = 0; i < be->pool.nservers; i++)
			((struct t_server *)be->pool.servers[i]->data)->handed_over = false;
		pthread_mutex_unlock(&be->lock);
	}
	gen_free(g);
}

/* A backend's counters (T_ADD), carried to the same-named backend of the
 * next generation (inherit) and handed over by index (hand_over). */
static const size_t be_counters[] = {
	offsetof(struct t_backend, retries_total), offsetof(struct t_backend, no_server_total),
	offsetof(struct t_backend, queued_total), offsetof(struct t_backend, queue_dispatched_total),
	offsetof(struct t_backend, queue_wait_ms_total), offsetof(struct t_backend, queue_timeouts_total),
	offsetof(struct t_backend, queue_full_total), offsetof(struct t_backend, request_timeouts_total),
};
#define BE_NCOUNTERS (sizeof(be_counters) / sizeof(be_counters[0]))
_Static_assert(BE_NCOUNTERS == sizeof(((struct t_backend *)0)->handed) / sizeof(uint64_t),
               "struct t_backend: one handed[] slot per counter");

static uint64_t *be_counter(struct t_backend *be, size_t i)
{
	return (uint64_t *)((char *)be + be_counters[i]);
}

/* Adds what *counter counted since `handed` to *to. */
static void add_since(uint64_t *to, uint64_t *counter, uint64_t handed)
{
	T_ADD(to, T_LOAD(counter) - handed);
}

/* g, retired, is being freed: what its frontends, backends and servers
 * counted after inherit() copied their counters to the next generation
 * (connections that kept running on g after the reload) goes to the
 * same-named objects of the running generation `run`, so counters lose
 * nothing across reloads.  Called under rt->lock, which keeps rt->gen. */
static void hand_over(struct t_gen *g, struct t_gen *run)
{
	for (int i = 0; i < g->nfe; i++)
		for (int a = 0; g->fe[i]->handed_over && a < run->nfe; a++)
			if (strcmp(run->fe[a]->cfg.name, g->fe[i]->cfg.name) == 0) {
				add_since(&run->fe[a]->connections_total, &g->fe[i]->connections_total, g->fe[i]->handed[0]);
				add_since(&run->fe[a]->proxy_errors_total, &g->fe[i]->proxy_errors_total, g->fe[i]->handed[1]);
			}
	for (struct t_backend *ob = g->backends; ob; ob = ob->next) {
		struct t_backend *nb = run->backends;

		while (nb && strcmp(nb->cfg.name, ob->cfg.name) != 0)
			nb = nb->next;
		if (!nb)
			continue;
		for (size_t i = 0; ob->handed_over && i < BE_NCOUNTERS; i++)
			add_since(be_counter(nb, i), be_counter(ob, i), ob->handed[i]);
		pthread_mutex_lock(&nb->lock);          /* its runtime-added servers may go meanwhile */
		for (int i = 0; i < ob->pool.nservers; i++) {
			struct t_server *o = ob->pool.servers[i]->data;
			struct t_server *s = o->handed_over ? rt_server_find(nb, o->lb.name) : NULL;

			if (s) {
				add_since(&s->connections_total, &o->connections_total, o->handed[0]);
				add_since(&s->connect_failures_total, &o->connect_failures_total, o->handed[1]);
				add_since(&s->bytes_in_total, &o->bytes_in_total, o->handed[2]);
				add_since(&s->bytes_out_total, &o->bytes_out_total, o->handed[3]);
			}
		}
		pthread_mutex_unlock(&nb->lock);
	}
}

void gen_get(struct t_gen *g)
{
	__atomic_fetch_add(&g->refs, 1, __ATOMIC_RELAXED);
}

/* The last reference frees: whichever thread drops it, everything done
 * through the generation by the others happened before (acq_rel). */
void gen_put(struct t_gen *g)
{
	struct t_runtime *rt = g->rt;

	if (__atomic_sub_fetch(&g->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	pthread_mutex_lock(&rt->lock);
	if (rt->gen && rt->gen != g)
		hand_over(g, rt->gen);
	for (struct t_gen **p = &rt->gens; *p; p = &(*p)->next)
		if (*p == g) {
			*p = g->next;
			break;
		}
	pthread_mutex_unlock(&rt->lock);
	gen_free(g);
}

unsigned rt_generations(struct t_runtime *rt)
{
	unsigned n = 0;

	pthread_mutex_lock(&rt->lock);
	for (const struct t_gen *g = rt->gens; g; g = g->next)
		n++;
	pthread_mutex_unlock(&rt->lock);
	return n;
}

bool rt_gen_retired(const struct t_gen *g)
{
	return __atomic_load_n(&g->retired, __ATOMIC_ACQUIRE);
}

static void retire(struct t_gen *g)
{
	__atomic_store_n(&g->retired, true, __ATOMIC_RELEASE);
	gen_put(g);
}

void rt_install(struct t_runtime *rt, struct t_gen *g)
{
	struct t_gen *old = rt->gen;

	pthread_mutex_lock(&rt->lock);
	g->next = rt->gens;
	rt->gens = g;
	rt->gen = g;                    /* under the lock: gen_put's hand_over reads it */
	pthread_mutex_unlock(&rt->lock);
	if (old)
		retire(old);
}

void rt_fini(struct t_runtime *rt)
{
	if (rt->gen) {
		retire(rt->gen);        /* its last reference once the connections are gone */
		rt->gen = NULL;
	}
	while (rt->gens) {              /* none left unless a connection reference was lost */
		struct t_gen *g = rt->gens;

		rt->gens = g->next;
		gen_free(g);
	}
	pthread_mutex_destroy(&rt->lock);
}

void rt_backend_lock(struct t_backend *be)
{
	pthread_mutex_lock(&be->lock);
}

void rt_backend_unlock(struct t_backend *be)
{
	pthread_mutex_unlock(&be->lock);
}

static void queue_unlink(struct t_backend *be, struct rt_waiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		be->qhead = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		be->qtail = w->prev;
	w->prev = w->next = NULL;
	w->queued = false;
	T_SUB(&be->queue_length, 1);
}

/*
 * Slots may have freed (a connection ended, a server came UP, was enabled,
 * added or weighted): the oldest waiters get them, in order, until one
 * cannot be served.  Its slot is counted on the server at once, so that
 * nobody else takes it while its owner wakes.  Called with the lock held;
 * costs nothing while the queue is empty.
 */
static void queue_run(struct t_backend *be)
{
	while (be->qhead) {
		struct rt_waiter *w = be->qhead;
		int idx = lb_attempt(&be->pool, w->key, w->now_ms, &be->qrng);

		if (idx < 0)
			return;
		w->srv = be->pool.servers[idx]->data;
		__atomic_store_n(&w->given, true, __ATOMIC_RELEASE);
		queue_unlink(be, w);
		w->ready(w);
	}
}

struct t_server *rt_attempt(struct t_backend *be, struct lb_key *key, uint64_t now_ms, struct lb_rng *rng,
                            struct rt_waiter *qw, enum rt_wait *why)
{
	int idx;
	struct t_server *s = NULL;

	*why = RT_NO_SERVER;
	pthread_mutex_lock(&be->lock);
	idx = lb_attempt(&be->pool, key, now_ms, rng);
	if (idx >= 0) {
		s = be->pool.servers[idx]->data;
	} else if (idx == LB_FULL && qw && be->cfg.queue.max) {
		if (T_LOAD(&be->queue_length) >= be->cfg.queue.max) {
			*why = RT_QUEUE_FULL;
		} else {
			qw->now_ms = now_ms;
			qw->srv = NULL;
			__atomic_store_n(&qw->given, false, __ATOMIC_RELAXED);
			qw->queued = true;
			qw->next = NULL;
			qw->prev = be->qtail;
			if (be->qtail)
				be->qtail->next = qw;
			else
				be->qhead = qw;
			be->qtail = qw;
			T_ADD(&be->queue_length, 1);
			T_ADD(&be->queued_total, 1);
			*why = RT_QUEUED;
		}
	}
	pthread_mutex_unlock(&be->lock);
	return s;
}

struct t_server *rt_queue_take(struct t_backend *be, struct rt_waiter *qw, bool leave)
{
	struct t_server *s;

	pthread_mutex_lock(&be->lock);
	s = qw->srv;
	qw->srv = NULL;
	__atomic_store_n(&qw->given, false, __ATOMIC_RELAXED);
	if (leave && qw->queued)
		queue_unlink(be, qw);
	pthread_mutex_unlock(&be->lock);
	return s;
}

struct t_backend *rt_backend_find(const struct t_runtime *rt, const char *name)
{
	if (!rt->gen)
		return NULL;
	for (struct t_backend *be = rt->gen->backends; be; be = be->next)
		if (strcmp(be->cfg.name, name) == 0)
			return be;
	return NULL;
}

struct t_server *rt_server_find(const struct t_backend *be, const char *name)
{
	struct lb_server *s = lb_pool_find(&be->pool, name);

	return s ? s->data : NULL;
}

struct t_listener *rt_listener_find(const struct t_runtime *rt, const struct cfg_addr *addr, unsigned w)
{
	if (!rt->gen)
		return NULL;
	for (int i = 0; i < rt->gen->nfe; i++)
		for (int j = 0; j < rt->gen->fe[i]->cfg.nbinds; j++) {
			struct t_listener *l = &rt->gen->fe[i]->ls[(unsigned)j * rt->nworkers + w];

			if (l->fd >= 0 && l->addr.len == addr->len && memcmp(&l->addr.ss, &addr->ss, addr->len) == 0)
				return l;
		}
	return NULL;
}

/* Health and counters of the same-named server of the running generation:
 * a reload does not make a DOWN server UP, nor reset what it counted.
 * Returns its admin state (READY when there is none): a server drained or
 * disabled through the runtime API stays so across a reload - the file
 * decides membership and weights, not whether an operator took a server
 * out of service. */
static enum lb_admin inherit(const struct t_runtime *rt, struct t_backend *nb, struct t_server *s)
{
	struct t_backend *ob = rt_backend_find(rt, nb->cfg.name);
	struct t_server *o = ob ? rt_server_find(ob, s->lb.name) : NULL;

	enum lb_admin admin;

	if (!o)
		return LB_ADMIN_READY;
	pthread_mutex_lock(&ob->lock);
	s->lb.hc = o->lb.hc;
	s->lb.up = o->lb.up;
	admin = o->lb.admin;
	memcpy(s->last_check, o->last_check, sizeof(s->last_check));
	pthread_mutex_unlock(&ob->lock);
	s->connections_total = o->handed[0] = T_LOAD(&o->connections_total);
	s->connect_failures_total = o->handed[1] = T_LOAD(&o->connect_failures_total);
	s->bytes_in_total = o->handed[2] = T_LOAD(&o->bytes_in_total);
	s->bytes_out_total = o->handed[3] = T_LOAD(&o->bytes_out_total);
	for (size_t i = 0; i < BE_NCOUNTERS; i++)
		*be_counter(nb, i) = ob->handed[i] = T_LOAD(be_counter(ob, i));
	o->handed_over = ob->handed_over = true;        /* the rest: hand_over() */
	return admin;
}

static void server_init(struct t_server *s, struct t_backend *be, const char *name, const struct cfg_addr *addr)
{
	snprintf(s->lb.name, sizeof(s->lb.name), "%s", name);
	s->lb.data = s;
	s->be = be;
	s->addr = *addr;
	s->check.fd = -1;
}

static struct t_backend *backend_new(struct t_gen *g, const struct cfg_backend *bc, char **err)
{
	struct t_backend *be = calloc(1, sizeof(*be));
	enum lb_admin admin;
	int rc;

	if (!be || !(be->servers = calloc((size_t)bc->nservers + 1, sizeof(*be->servers)))) {
		free(be);
		tether_err(err, -ENOMEM, "out of memory");
		return NULL;
	}
	be->cfg = *bc;
	be->cfg.servers = NULL;
	be->gen = g;
	rc = lb_pool_init(&be->pool, bc->algo, &bc->params, err);
	if (rc < 0) {
		free(be->servers);
		free(be);
		return NULL;
	}
	pthread_mutex_init(&be->lock, NULL);
	lb_rng_seed(&be->qrng, g->rt->rng.s ^ (uint64_t)(uintptr_t)be);
	for (int i = 0; i < bc->nservers; i++) {
		struct t_server *s = &be->servers[be->cfg_nservers];

		if (bc->servers[i].resolve != CFG_RESOLVE_NONE)
			continue;       /* a name whose addresses become servers (io/resolve.c) */
		be->cfg_nservers++;
		server_init(s, be, bc->servers[i].name, &bc->servers[i].addr);
		s->lb.weight = bc->servers[i].weight;
		s->lb.maxconn = bc->servers[i].maxconn;
		s->lb.backup = bc->servers[i].backup;
		lb_server_health_init(&be->pool, &s->lb, true);
		snprintf(s->last_check, sizeof(s->last_check), "not checked yet");
		admin = inherit(g->rt, be, s);
		rc = lb_pool_add(&be->pool, &s->lb);
		if (rc < 0) {
			tether_err(err, rc, "backend %s: cannot add server %s", bc->name, s->lb.name);
			be->cfg_nservers--;
			backend_free(be);
			return NULL;
		}
		if (admin != LB_ADMIN_READY)            /* lb_pool_add made it READY */
			lb_server_set_admin(&be->pool, &s->lb, admin);
	}
	return be;
}

struct t_gen *rt_gen_new(struct t_runtime *rt, struct tether_config *cfg, char **err)
{
	struct t_gen *g = calloc(1, sizeof(*g));
	struct t_backend **tail, **byidx = calloc((size_t)cfg->nbackends + 1, sizeof(*byidx));

	if (!g || !byidx || !(g->fe = calloc((size_t)cfg->nfrontends + 1, sizeof(*g->fe)))) {
		free(g);
		free(byidx);
		cfg_free(cfg);
		tether_err(err, -ENOMEM, "out of memory");
		return NULL;
	}
	g->rt = rt;
	g->cfg = cfg;
	g->refs = 1;            /* the running reference, once installed */
	g->nfe = cfg->nfrontends;
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

		if (!f || !(f->ls = calloc((size_t)cfg->frontends[i].nbinds * rt->nworkers + 1, sizeof(*f->ls)))) {
			free(f);
			tether_err(err, -ENOMEM, "out of memory");
			goto fail;
		}
		g->fe[i] = f;
		f->cfg = cfg->frontends[i];
		f->gen = g;
		f->be = byidx[cfg->frontends[i].backend];
		for (int a = 0; rt->gen && a < rt->gen->nfe; a++)  /* counters carry over by name */
			if (strcmp(rt->gen->fe[a]->cfg.name, f->cfg.name) == 0) {
				struct t_frontend *o = rt->gen->fe[a];

				f->connections_total = o->handed[0] = T_LOAD(&o->connections_total);
				f->proxy_errors_total = o->handed[1] = T_LOAD(&o->proxy_errors_total);
				o->handed_over = true;
			}
		for (unsigned j = 0; j < (unsigned)f->cfg.nbinds * rt->nworkers; j++) {
			f->ls[j].fd = -1;
			f->ls[j].addr = f->cfg.binds[j / rt->nworkers];
			f->ls[j].fe = f;
		}
	}
	free(byidx);
	return g;
fail:
	free(byidx);
	gen_free(g);
	return NULL;
}

/* --- the runtime API (control thread; each operation under the backend's lock) --- */

struct t_server *rt_server_lookup(struct t_runtime *rt, const char *backend, const char *name, char **err)
{
	struct t_backend *be = rt_backend_find(rt, backend);
	struct t_server *s;

	if (!be) {
		tether_err(err, -ENOENT, "no such backend");
		return NULL;
	}
	pthread_mutex_lock(&be->lock);
	s = rt_server_find(be, name);
	if (s && s->deleted)
		s = NULL;
	pthread_mutex_unlock(&be->lock);
	if (!s)
		tether_err(err, -ENOENT, "no such server");
	return s;       /* stays valid: only a `del` from this thread lets it be freed */
}

const char *rt_server_state(const struct t_server *s)
{
	if (s->lb.admin == LB_ADMIN_DISABLED)
		return "MAINT";
	if (s->lb.admin == LB_ADMIN_DRAIN)
		return "DRAIN";
	return s->lb.up ? "UP" : "DOWN";
}

/* Adds a server to be (of the running generation, or of one being built,
 * which then inherits the same-named running server's state). */
static int server_add(struct t_runtime *rt, struct t_backend *be, const char *name, const char *addr,
                      unsigned weight, struct t_server **out, char **err)
{
	struct t_server *s;
	struct cfg_addr a;
	enum lb_admin admin = LB_ADMIN_READY;
	int rc;
	bool up;

	if (!be)
		return tether_err(err, -ENOENT, "no such backend");
	if (!name[0] || strlen(name) >= LB_NAME_MAX ||
	    strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != strlen(name))
		return tether_err(err, -EINVAL, "server names are 1..63 characters from A-Z a-z 0-9 . _ -");
	if (cfg_parse_addr(addr, &a) < 0 || a.ss.ss_family == 0)
		return tether_err(err, -EINVAL, "bad address (want 127.0.0.1:9001 or [::1]:9001)");
	if (weight > LB_WEIGHT_MAX)
		return tether_err(err, -EINVAL, "weight must be 0..%d", LB_WEIGHT_MAX);
	s = calloc(1, sizeof(*s));
	if (!s)
		return tether_err(err, -ENOMEM, "out of memory");
	server_init(s, be, name, &a);
	s->lb.weight = weight;
	s->dynamic = true;
	snprintf(s->last_check, sizeof(s->last_check), "added");
	pthread_mutex_lock(&be->lock);
	/* checked before it gets traffic: starts DOWN when the backend has checks */
	lb_server_health_init(&be->pool, &s->lb, be->cfg.health.type == CFG_CHECK_NONE);
	if (be->gen != rt->gen)         /* be is not live yet: nobody else takes its lock */
		admin = inherit(rt, be, s);
	up = s->lb.up;
	rc = lb_pool_add(&be->pool, &s->lb);
	if (rc == 0) {
		if (admin != LB_ADMIN_READY)        /* lb_pool_add made it READY */
			lb_server_set_admin(&be->pool, &s->lb, admin);
		s->next_dynamic = be->dynamic;
		be->dynamic = s;
		queue_run(be);
	}
	pthread_mutex_unlock(&be->lock);
	if (rc < 0) {
		free(s);
		return rc == -EEXIST ? tether_err(err, rc, "a server with this name exists")
		                     : tether_err(err, rc, "cannot add the server");
	}
	if (be->gen == rt->gen)
		log_printf(rt->log, "runtime: added server %s/%s %s weight %u (%s)", be->cfg.name, name, a.text, weight,
		           up ? "UP" : "DOWN until checked");
	*out = s;
	return 0;
}

int rt_server_add(struct t_runtime *rt, const char *backend, const char *name, const char *addr,
                  unsigned weight, struct t_server **out, char **err)
{
	return server_add(rt, rt_backend_find(rt, backend), name, addr, weight, out, err);
}

int rt_gen_server_add(struct t_gen *g, const char *backend, const char *name, const char *addr, unsigned weight,
                      struct t_server **out, char **err)
{
	struct t_backend *be = g->backends;

	while (be && strcmp(be->cfg.name, backend) != 0)
		be = be->next;
	return server_add(g->rt, be, name, addr, weight, out, err);
}

/* A deleted server with no connection left: out of the pool, and freed
 * when it was added at runtime (a configured one lives in its backend's
 * array until the generation goes).  True when s was freed.  Called with
 * the backend's lock held. */
static bool srv_release(struct t_server *s)
{
	struct t_backend *be = s->be;

	if (!s->deleted || s->lb.active > 0)
		return false;
	if (s->lb.index >= 0) {
		lb_pool_del(&be->pool, &s->lb);
		if (!rt_gen_retired(be->gen))
			log_printf(be->gen->rt->log, "runtime: server %s/%s removed", be->cfg.name, s->lb.name);
	}
	if (!s->dynamic)
		return false;
	for (struct t_server **p = &be->dynamic; *p; p = &(*p)->next_dynamic)
		if (*p == s) {
			*p = s->next_dynamic;
			break;
		}
	free(s);
	return true;
}

static int del_refused(const struct t_server *s, char **err)
{
	if (s->lb.active > 0 && s->lb.admin == LB_ADMIN_READY)
		return tether_err(err, -EBUSY, "server still has connections: drain it first");
	return 0;
}

int rt_server_del_refused(struct t_server *s, char **err)
{
	int rc;

	pthread_mutex_lock(&s->be->lock);
	rc = del_refused(s, err);
	pthread_mutex_unlock(&s->be->lock);
	return rc;
}

int rt_server_del(struct t_runtime *rt, struct t_server *s, char **err)
{
	struct t_backend *be = s->be;
	char name[LB_NAME_MAX];
	int rc;

	memcpy(name, s->lb.name, sizeof(name));
	pthread_mutex_lock(&be->lock);
	rc = del_refused(s, err);
	if (rc == 0) {
		s->deleted = true;
		lb_server_set_admin(&be->pool, &s->lb, LB_ADMIN_DISABLED);
		if (!srv_release(s) && s->lb.index >= 0)
			lb_server_set_up(&be->pool, &s->lb, false);  /* drained with connections: hidden until they end */
	}
	pthread_mutex_unlock(&be->lock);
	if (rc == 0)
		log_printf(rt->log, "runtime: del server %s/%s", be->cfg.name, name);
	return rc;
}

int rt_server_set_admin(struct t_runtime *rt, struct t_server *s, enum lb_admin a)
{
	static const char *const verb[] = { [LB_ADMIN_READY] = "enable", [LB_ADMIN_DRAIN] = "drain",
	                                    [LB_ADMIN_DISABLED] = "disable" };

	pthread_mutex_lock(&s->be->lock);
	lb_server_set_admin(&s->be->pool, &s->lb, a);
	queue_run(s->be);
	pthread_mutex_unlock(&s->be->lock);
	log_printf(rt->log, "runtime: %s server %s/%s", verb[a], s->be->cfg.name, s->lb.name);
	return 0;
}

int rt_server_set_weight(struct t_runtime *rt, struct t_server *s, long weight, char **err)
{
	if (weight < 0 || weight > LB_WEIGHT_MAX)
		return tether_err(err, -EINVAL, "weight must be 0..%d", LB_WEIGHT_MAX);
	pthread_mutex_lock(&s->be->lock);
	lb_server_set_weight(&s->be->pool, &s->lb, (unsigned)weight);
	queue_run(s->be);
	pthread_mutex_unlock(&s->be->lock);
	log_printf(rt->log, "runtime: weight of %s/%s set to %ld", s->be->cfg.name, s->lb.name, weight);
	return 0;
}

/* --- outcomes (any thread) --- */

/* A health change, noted under the backend's lock and acted on after it
 * is released (by then the server may be gone: only its identity is kept). */
struct change {
	struct t_backend *be;
	uint32_t id;
	enum hc_change ch;
	char name[LB_NAME_MAX];
};

static void note(struct change *c, struct t_server *s, enum hc_change ch)
{
	c->be = s->be;
	c->id = s->lb.id;
	c->ch = s->deleted ? HC_SAME : ch;      /* a deleted server's health matters to nobody */
	memcpy(c->name, s->lb.name, sizeof(c->name));
}

/* Logged - running generation only: a retired one's view of a server no
 * longer matters to anyone - and on_down = "close". */
static void health_changed(const struct change *c, const char *why)
{
	struct t_backend *be = c->be;
	struct t_runtime *rt = be->gen->rt;

	if (c->ch == HC_SAME || rt_gen_retired(be->gen))
		return;
	log_printf(rt->log, "server %s/%s is %s (%s)", be->cfg.name, c->name, c->ch == HC_WENT_UP ? "UP" : "DOWN",
	           why);
	log_flush(rt->log);     /* state changes are rare and wanted at once */
	if (c->ch == HC_WENT_DOWN && be->cfg.health.on_down == CFG_ON_DOWN_CLOSE && rt->hooks.server_down)
		rt->hooks.server_down(rt->hooks.arg, be, c->id);
}

void rt_server_checked(struct t_server *s, bool ok, const char *why)
{
	struct change c;

	pthread_mutex_lock(&s->be->lock);
	snprintf(s->last_check, sizeof(s->last_check), "%s", why);
	note(&c, s, lb_server_checked(&s->be->pool, &s->lb, ok));
	if (c.ch == HC_WENT_UP)
		queue_run(s->be);
	pthread_mutex_unlock(&s->be->lock);
	health_changed(&c, why);
}

void rt_server_connected(struct t_server *s)
{
	struct change c;

	if (!s->be->pool.params.observe)
		return;                 /* the common case costs no lock */
	pthread_mutex_lock(&s->be->lock);
	note(&c, s, lb_server_observed(&s->be->pool, &s->lb, true));
	if (c.ch == HC_WENT_UP)
		queue_run(s->be);
	pthread_mutex_unlock(&s->be->lock);
	health_changed(&c, "connected");
}

void rt_attempt_failed(struct t_server *s, const char *why)
{
	struct t_backend *be = s->be;
	struct change c;

	T_ADD(&s->connect_failures_total, 1);
	pthread_mutex_lock(&be->lock);
	note(&c, s, lb_attempt_failed(&be->pool, &s->lb));
	srv_release(s);
	queue_run(be);
	pthread_mutex_unlock(&be->lock);
	health_changed(&c, why);
}

void srv_conn_end(struct t_server *s)
{
	struct t_backend *be = s->be;

	pthread_mutex_lock(&be->lock);
	lb_conn_close(&be->pool, &s->lb);
	srv_release(s);
	queue_run(be);
	pthread_mutex_unlock(&be->lock);
}

bool rt_errno_local(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM || err == EADDRNOTAVAIL;
}

void rt_local_error(struct t_runtime *rt, const char *what, int err)
{
	T_ADD(&rt->local_errors_total, 1);
	if (__atomic_exchange_n(&rt->local_short, true, __ATOMIC_RELAXED))
		return;
	log_printf(rt->log, "local resource shortage: %s: %s (servers' health is not affected; counted in "
	           "tether_local_errors_total; its end is logged)", what, strerror(err));
	log_flush(rt->log);
}

void rt_local_ok(struct t_runtime *rt)
{
	if (!__atomic_load_n(&rt->local_short, __ATOMIC_RELAXED) ||
	    !__atomic_exchange_n(&rt->local_short, false, __ATOMIC_RELAXED))
		return;
	log_printf(rt->log, "local resource shortage over: %llu failures so far",
	           (unsigned long long)T_LOAD(&rt->local_errors_total));
	log_flush(rt->log);
}

void addr_format(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &s->sin_addr, host, sizeof(host));
		snprintf(out, cap, "%s:%u", host, ntohs(s->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof(host));
		snprintf(out, cap, "[%s]:%u", host, ntohs(s->sin6_port));
	} else {
		snprintf(out, cap, "unix");
	}
}
