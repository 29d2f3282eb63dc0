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

void rt_gen_free(struct t_gen *g)
{
	gen_free(g);
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
	pthread_mutex_unlock(&rt->lock);
	rt->gen = g;
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
	s->connections_total = T_LOAD(&o->connections_total);
	s->connect_failures_total = T_LOAD(&o->connect_failures_total);
	s->bytes_in_total = T_LOAD(&o->bytes_in_total);
	s->bytes_out_total = T_LOAD(&o->bytes_out_total);
	nb->retries_total = T_LOAD(&ob->retries_total);
	nb->no_server_total = T_LOAD(&ob->no_server_total);
	nb->queued_total = T_LOAD(&ob->queued_total);
	nb->queue_dispatched_total = T_LOAD(&ob->queue_dispatched_total);
	nb->queue_wait_ms_total = T_LOAD(&ob->queue_wait_ms_total);
	nb->queue_timeouts_total = T_LOAD(&ob->queue_timeouts_total);
	nb->queue_full_total = T_LOAD(&ob->queue_full_total);
	nb->request_timeouts_total = T_LOAD(&ob->request_timeouts_total);
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
				f->connections_total = T_LOAD(&rt->gen->fe[a]->connections_total);
				f->proxy_errors_total = T_LOAD(&rt->gen->fe[a]->proxy_errors_total);
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
