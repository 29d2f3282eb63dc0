/*
 * tether - the runtime (contract and ownership rules in runtime.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime.h"
#include "tether/err.h"

void rt_init(struct t_runtime *rt, struct t_log *log, const char *conf_path, uint64_t seed)
{
	memset(rt, 0, sizeof(*rt));
	rt->log = log;
	snprintf(rt->conf_path, sizeof(rt->conf_path), "%s", conf_path);
	lb_rng_seed(&rt->rng, seed);
}

/* --- generations --- */

static void backend_free(struct t_backend *be)
{
	struct t_server *s, *next;

	lb_pool_fini(&be->pool);
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
		for (int j = 0; f->ls && j < f->cfg.nbinds; j++)
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
	g->refs++;
}

void gen_put(struct t_gen *g)
{
	struct t_runtime *rt = g->rt;

	if (--g->refs > 0)
		return;
	for (struct t_gen **p = &rt->gens; *p; p = &(*p)->next)
		if (*p == g) {
			*p = g->next;
			break;
		}
	gen_free(g);
}

unsigned rt_generations(const struct t_runtime *rt)
{
	unsigned n = 0;

	for (const struct t_gen *g = rt->gens; g; g = g->next)
		n++;
	return n;
}

void rt_install(struct t_runtime *rt, struct t_gen *g)
{
	struct t_gen *old = rt->gen;

	g->next = rt->gens;
	rt->gens = g;
	rt->gen = g;
	if (old) {
		old->retired = true;
		gen_put(old);
	}
}

void rt_fini(struct t_runtime *rt)
{
	if (rt->gen) {
		rt->gen->retired = true;
		gen_put(rt->gen);       /* its last reference once the connections are gone */
		rt->gen = NULL;
	}
	while (rt->gens) {              /* none left unless a connection reference was lost */
		struct t_gen *g = rt->gens;

		rt->gens = g->next;
		gen_free(g);
	}
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

struct t_listener *rt_listener_find(const struct t_runtime *rt, const struct cfg_addr *addr)
{
	if (!rt->gen)
		return NULL;
	for (int i = 0; i < rt->gen->nfe; i++)
		for (int j = 0; j < rt->gen->fe[i]->cfg.nbinds; j++) {
			struct t_listener *l = &rt->gen->fe[i]->ls[j];

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

	if (!o)
		return LB_ADMIN_READY;
	s->lb.hc = o->lb.hc;
	s->lb.up = o->lb.up;
	s->connections_total = o->connections_total;
	s->connect_failures_total = o->connect_failures_total;
	s->bytes_in_total = o->bytes_in_total;
	s->bytes_out_total = o->bytes_out_total;
	memcpy(s->last_check, o->last_check, sizeof(s->last_check));
	nb->retries_total = ob->retries_total;
	nb->no_server_total = ob->no_server_total;
	return o->lb.admin;
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
	for (int i = 0; i < bc->nservers; i++) {
		struct t_server *s = &be->servers[i];

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
			be->cfg_nservers = i;
			backend_free(be);
			return NULL;
		}
		if (admin != LB_ADMIN_READY)            /* lb_pool_add made it READY */
			lb_server_set_admin(&be->pool, &s->lb, admin);
	}
	be->cfg_nservers = bc->nservers;
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

		if (!f || !(f->ls = calloc((size_t)cfg->frontends[i].nbinds + 1, sizeof(*f->ls)))) {
			free(f);
			tether_err(err, -ENOMEM, "out of memory");
			goto fail;
		}
		g->fe[i] = f;
		f->cfg = cfg->frontends[i];
		f->gen = g;
		f->be = byidx[cfg->frontends[i].backend];
		for (int a = 0; rt->gen && a < rt->gen->nfe; a++)  /* counters carry over by name */
			if (strcmp(rt->gen->fe[a]->cfg.name, f->cfg.name) == 0)
				f->connections_total = rt->gen->fe[a]->connections_total;
		for (int j = 0; j < f->cfg.nbinds; j++) {
			f->ls[j].fd = -1;
			f->ls[j].addr = f->cfg.binds[j];
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

/* --- the runtime API --- */

struct t_server *rt_server_lookup(struct t_runtime *rt, const char *backend, const char *name, char **err)
{
	struct t_backend *be = rt_backend_find(rt, backend);
	struct t_server *s;

	if (!be) {
		tether_err(err, -ENOENT, "no such backend");
		return NULL;
	}
	s = rt_server_find(be, name);
	if (!s || s->deleted) {
		tether_err(err, -ENOENT, "no such server");
		return NULL;
	}
	return s;
}

const char *rt_server_state(const struct t_server *s)
{
	if (s->lb.admin == LB_ADMIN_DISABLED)
		return "MAINT";
	if (s->lb.admin == LB_ADMIN_DRAIN)
		return "DRAIN";
	return s->lb.up ? "UP" : "DOWN";
}

int rt_server_add(struct t_runtime *rt, const char *backend, const char *name, const char *addr,
                  unsigned weight, struct t_server **out, char **err)
{
	struct t_backend *be = rt_backend_find(rt, backend);
	struct t_server *s;
	struct cfg_addr a;
	int rc;

	if (!be)
		return tether_err(err, -ENOENT, "no such backend");
	if (!name[0] || strlen(name) >= LB_NAME_MAX ||
	    strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != strlen(name))
		return tether_err(err, -EINVAL, "server names are 1..63 characters from A-Z a-z 0-9 . _ -");
	if (lb_pool_find(&be->pool, name))
		return tether_err(err, -EEXIST, "a server with this name exists");
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
	/* checked before it gets traffic: starts DOWN when the backend has checks */
	lb_server_health_init(&be->pool, &s->lb, be->cfg.health.type == CFG_CHECK_NONE);
	snprintf(s->last_check, sizeof(s->last_check), "added");
	rc = lb_pool_add(&be->pool, &s->lb);
	if (rc < 0) {
		free(s);
		return tether_err(err, rc, "cannot add the server");
	}
	s->next_dynamic = be->dynamic;
	be->dynamic = s;
	log_printf(rt->log, "runtime: added server %s/%s %s weight %u (%s)", be->cfg.name, s->lb.name, a.text,
	           weight, s->lb.up ? "UP" : "DOWN until checked");
	*out = s;
	return 0;
}

/* A deleted server with no connection left: out of the pool, and freed
 * when it was added at runtime (a configured one lives in its backend's
 * array until the generation goes).  True when s was freed. */
static bool srv_release(struct t_server *s)
{
	struct t_backend *be = s->be;

	if (!s->deleted || s->lb.active > 0)
		return false;
	if (s->lb.index >= 0) {
		lb_pool_del(&be->pool, &s->lb);
		if (!be->gen->retired)
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

int rt_server_del_refused(const struct t_server *s, char **err)
{
	if (s->lb.active > 0 && s->lb.admin == LB_ADMIN_READY)
		return tether_err(err, -EBUSY, "server still has connections: drain it first");
	return 0;
}

int rt_server_del(struct t_runtime *rt, struct t_server *s, char **err)
{
	int rc = rt_server_del_refused(s, err);

	if (rc < 0)
		return rc;
	s->deleted = true;
	lb_server_set_admin(&s->be->pool, &s->lb, LB_ADMIN_DISABLED);
	log_printf(rt->log, "runtime: del server %s/%s", s->be->cfg.name, s->lb.name);
	if (!srv_release(s) && s->lb.index >= 0)
		lb_server_set_up(&s->be->pool, &s->lb, false);  /* drained with connections: hidden until they end */
	return 0;
}

int rt_server_set_admin(struct t_runtime *rt, struct t_server *s, enum lb_admin a)
{
	static const char *const verb[] = { [LB_ADMIN_READY] = "enable", [LB_ADMIN_DRAIN] = "drain",
	                                    [LB_ADMIN_DISABLED] = "disable" };

	lb_server_set_admin(&s->be->pool, &s->lb, a);
	log_printf(rt->log, "runtime: %s server %s/%s", verb[a], s->be->cfg.name, s->lb.name);
	return 0;
}

int rt_server_set_weight(struct t_runtime *rt, struct t_server *s, long weight, char **err)
{
	if (weight < 0 || weight > LB_WEIGHT_MAX)
		return tether_err(err, -EINVAL, "weight must be 0..%d", LB_WEIGHT_MAX);
	lb_server_set_weight(&s->be->pool, &s->lb, (unsigned)weight);
	log_printf(rt->log, "runtime: weight of %s/%s set to %ld", s->be->cfg.name, s->lb.name, weight);
	return 0;
}

/* --- outcomes --- */

/* A health change of s: logged (running generation only: a retired one's
 * view of a server no longer matters to anyone), and on_down = "close". */
static void health_changed(struct t_server *s, enum hc_change ch, const char *why)
{
	struct t_backend *be = s->be;
	struct t_runtime *rt = be->gen->rt;

	if (ch == HC_SAME || be->gen->retired)
		return;
	log_printf(rt->log, "server %s/%s is %s (%s)", be->cfg.name, s->lb.name, ch == HC_WENT_UP ? "UP" : "DOWN",
	           why);
	log_flush(rt->log);     /* state changes are rare and wanted at once */
	if (ch == HC_WENT_DOWN && be->cfg.health.on_down == CFG_ON_DOWN_CLOSE && rt->hooks.server_down)
		rt->hooks.server_down(rt->hooks.arg, s);
}

void rt_server_checked(struct t_server *s, bool ok, const char *why)
{
	snprintf(s->last_check, sizeof(s->last_check), "%s", why);
	health_changed(s, lb_server_checked(&s->be->pool, &s->lb, ok), why);
}

void rt_server_connected(struct t_server *s)
{
	health_changed(s, lb_server_observed(&s->be->pool, &s->lb, true), "connected");
}

void rt_attempt_failed(struct t_server *s, const char *why)
{
	s->connect_failures_total++;
	health_changed(s, lb_attempt_failed(&s->be->pool, &s->lb), why);
	srv_release(s);
}

void srv_conn_end(struct t_server *s)
{
	lb_conn_close(&s->be->pool, &s->lb);
	srv_release(s);
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
