/*
 * tether - the runtime: generations (built from a configuration, installed,
 * retired, freed by their last reference) and what a reload carries over.
 * The runtime API's operations, the backend queue and the outcomes of
 * connections and checks are in server.c.  Contract and ownership rules in
 * runtime.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime_int.h"
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

unsigned rt_queued(struct t_runtime *rt)
{
	unsigned n = 0;

	pthread_mutex_lock(&rt->lock);
	for (const struct t_gen *g = rt->gens; g; g = g->next)
		for (struct t_backend *be = g->backends; be; be = be->next)
			n += T_LOAD(&be->queue_length);
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
enum lb_admin rt_inherit(const struct t_runtime *rt, struct t_backend *nb, struct t_server *s)
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

void rt_server_init(struct t_server *s, struct t_backend *be, const char *name, const struct cfg_addr *addr)
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
		rt_server_init(s, be, bc->servers[i].name, &bc->servers[i].addr);
		s->lb.weight = bc->servers[i].weight;
		s->lb.maxconn = bc->servers[i].maxconn;
		s->lb.backup = bc->servers[i].backup;
		lb_server_health_init(&be->pool, &s->lb, true);
		snprintf(s->last_check, sizeof(s->last_check), "not checked yet");
		admin = rt_inherit(g->rt, be, s);
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
