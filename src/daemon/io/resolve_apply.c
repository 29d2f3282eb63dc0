/*
 * tether - DNS service discovery: address sets, and applying a good answer
 * through the runtime API's operations (rt_server_add, a drain, then
 * rt_server_del once idle), as resolve.h describes.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "check.h"
#include "resolve_int.h"

/* --- sets --- */

void dns_set_free(struct dns_set *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static bool set_has(const struct dns_set *s, const char *name)
{
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->v[i].name, name) == 0)
			return true;
	return false;
}

static void set_remove(struct dns_set *s, int i)
{
	s->v[i] = s->v[--s->n];
}

bool dns_set_add(struct dns_set *s, const struct dns_found *f)
{
	if (set_has(s, f->name))
		return true;
	if (s->n == s->cap) {
		int cap = s->cap ? s->cap * 2 : 8;
		struct dns_found *v = realloc(s->v, (size_t)cap * sizeof(*v));

		if (!v)
			return false;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = *f;
	return true;
}

int dns_by_name(const void *a, const void *b)
{
	return strcmp(((const struct dns_found *)a)->name, ((const struct dns_found *)b)->name);
}

/* The server an address makes: "pods-10.1.2.3-8080", "pods-fd00__1-8080"
 * (':' is not a name character).  The entry's name is at most
 * CFG_RESOLVE_NAME_MAX characters, so the longest IPv6 address fits. */
void dns_found_of(struct dns_found *f, const char *entry, int af, const void *ip, uint16_t port)
{
	char host[INET6_ADDRSTRLEN];

	inet_ntop(af, ip, host, sizeof(host));
	snprintf(f->addr, sizeof(f->addr), af == AF_INET6 ? "[%s]:%u" : "%s:%u", host, port);
	for (char *p = host; *p; p++)
		if (*p == ':')
			*p = '_';
	snprintf(f->name, sizeof(f->name), "%s-%s-%u", entry, host, port);
}

/* --- applying an answer through the runtime API's operations --- */

static struct t_backend *backend_of(const struct t_dns_entry *e)
{
	return rt_backend_find(e->r->w->rt, e->backend);
}

/* The live (not deleted) server `name` of e's backend, or NULL. */
static struct t_server *server_of(const struct t_dns_entry *e, const char *name)
{
	return rt_server_lookup(e->r->w->rt, e->backend, name, NULL);
}

/* A server's lb state is its backend's lock's (the workers change it). */
static enum lb_admin admin_of(struct t_server *s, unsigned *active)
{
	enum lb_admin a;

	rt_backend_lock(s->be);
	a = s->lb.admin;
	if (active)
		*active = s->lb.active;
	rt_backend_unlock(s->be);
	return a;
}

/* Deletes the retiring servers that have no connection left. */
void dns_reap(struct t_dns_entry *e)
{
	struct t_runtime *rt = e->r->w->rt;

	for (int i = 0; i < e->retiring.n;) {
		struct t_server *s = server_of(e, e->retiring.v[i].name);
		unsigned active = 0;
		char *err = NULL;

		if (s && (admin_of(s, &active), active > 0)) {
			i++;
			continue;
		}
		if (s) {
			check_stop(s);
			if (rt_server_del(rt, s, &err) < 0)
				log_printf(rt->log, "dns: %s/%s: cannot delete %s: %s", e->backend, e->cfg.name,
				           e->retiring.v[i].name, err ? err : "?");
			free(err);
		}
		set_remove(&e->retiring, i);
	}
}

void dns_apply(struct t_dns_entry *e, struct dns_set *next)
{
	struct t_runtime *rt = e->r->w->rt;
	struct t_backend *be = backend_of(e);

	if (!be)
		return;
	for (int i = 0; i < next->n; i++) {
		const struct dns_found *f = &next->v[i];
		struct t_server *s = server_of(e, f->name);
		char *err = NULL;

		for (int k = 0; k < e->retiring.n; k++)
			if (strcmp(e->retiring.v[k].name, f->name) == 0) {
				set_remove(&e->retiring, k);    /* back in the answer: back in service */
				if (s && admin_of(s, NULL) == LB_ADMIN_DRAIN)
					rt_server_set_admin(rt, s, LB_ADMIN_READY);
				break;
			}
		if (s)
			continue;
		if (rt_server_add(rt, e->backend, f->name, f->addr, e->cfg.weight, &s, &err) == 0) {
			rt_backend_lock(s->be);
			s->lb.maxconn = e->cfg.maxconn;
			s->lb.backup = e->cfg.backup;
			rt_backend_unlock(s->be);
			check_start(e->r->w, s);
		} else {
			log_printf(rt->log, "dns: %s/%s: cannot add %s %s: %s", e->backend, e->cfg.name, f->name, f->addr,
			           err ? err : "?");
		}
		free(err);
	}
	for (int i = 0; i < e->good.n; i++) {
		const struct dns_found *f = &e->good.v[i];
		struct t_server *s;

		if (set_has(next, f->name) || set_has(&e->retiring, f->name))
			continue;
		s = server_of(e, f->name);
		if (!s)
			continue;       /* deleted by an operator */
		if (admin_of(s, NULL) == LB_ADMIN_READY)
			rt_server_set_admin(rt, s, LB_ADMIN_DRAIN);
		dns_set_add(&e->retiring, f);
	}
	dns_set_free(&e->good);
	e->good = *next;
	memset(next, 0, sizeof(*next));
	dns_reap(e);
}
