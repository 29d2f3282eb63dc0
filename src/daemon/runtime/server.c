/*
 * tether - the runtime's servers: the backend's lock and queue, the
 * runtime API's operations (lookup, add, del, admin state, weight; control
 * thread) and the outcomes of connections and health checks (any thread),
 * each under the backend's lock.  Contract in runtime.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime_int.h"
#include "tether/err.h"

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
	rt_server_init(s, be, name, &a);
	s->lb.weight = weight;
	s->dynamic = true;
	snprintf(s->last_check, sizeof(s->last_check), "added");
	pthread_mutex_lock(&be->lock);
	/* checked before it gets traffic: starts DOWN when the backend has checks */
	lb_server_health_init(&be->pool, &s->lb, be->cfg.health.type == CFG_CHECK_NONE);
	if (be->gen != rt->gen)         /* be is not live yet: nobody else takes its lock */
		admin = rt_inherit(rt, be, s);
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
