/*
 * tether - DNS service discovery with c-ares on the libev loop (see
 * resolve.h).
 *
 * c-ares runs in its event-driven mode: its socket-state callback tells
 * which sockets to watch for what (one ev_io each, struct t_dns_io), their
 * events go to ares_process_fd(), and one ev_timer follows ares_timeout()
 * for retransmissions and timeouts.  Nothing blocks the loop.
 *
 * A round of an entry: one query of its type for its name (as written: no
 * search list, like HAProxy's resolvers; write the full name); for SRV,
 * then an A and an AAAA query per target (at most `max` targets).  When the
 * last query of the round is answered, the round ends: a round that saw an
 * error or found nothing keeps the last good set; a good one is sorted by
 * server name, cut to `max`, and applied (apply()).  An entry has one round
 * in flight at most: a timer tick that finds one still running skips.
 *
 * Where the rules come from: HAProxy's `resolvers` (a server template per
 * answer, a failed resolution keeps the servers, SRV gives the port) and
 * nginx's `resolve` (re-resolution at an interval, the upstream follows the
 * answer).  What differs is said in docs/configuration.md.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "check.h"
#include "resolve_int.h"
#include "tether/err.h"

#define DNS_TIMEOUT_MS 1000     /* per try; with DNS_TRIES, a dead server fails a round in ~2 s */
#define DNS_TRIES 2
#define T_A 1                   /* RFC 1035 3.2.2 */
#define T_AAAA 28               /* RFC 3596 */
#define T_SRV 33                /* RFC 2782 */
#define C_IN 1

/* A query's argument. */
struct dns_query {
	struct t_dns_entry *e;
	int type;                       /* T_A, T_AAAA or T_SRV */
	uint16_t port;                  /* of the servers its addresses make */
	bool target;                    /* an SRV target's address query */
};

static const char *const type_names[] = { [CFG_RESOLVE_A] = "A", [CFG_RESOLVE_AAAA] = "AAAA",
	                                  [CFG_RESOLVE_SRV] = "SRV" };

/* --- rounds --- */

static void entry_free(struct t_dns_entry *e)
{
	dns_set_free(&e->found);
	dns_set_free(&e->good);
	dns_set_free(&e->retiring);
	free(e);
}

static void round_end(struct t_dns_entry *e)
{
	struct t_log *log = e->r->w->log;

	if (e->dead) {
		entry_free(e);
		return;
	}
	if (e->r->stopping || e->cancelled) {
		e->cancelled = false;
		dns_set_free(&e->found);
		return;
	}
	if (!e->round_failed && e->found.n == 0) {
		e->round_failed = true;
		snprintf(e->error, sizeof(e->error), "no address in the answer");
	}
	if (e->round_failed) {
		e->failures_total++;
		if (!e->failing)
			log_printf(log, "dns: %s/%s: %s %s: %s; keeping the last %d servers", e->backend, e->cfg.name,
			           type_names[e->cfg.resolve], e->cfg.host, e->error, e->good.n);
		e->failing = true;
		dns_set_free(&e->found);
		dns_reap(e);
		return;
	}
	if (e->failing)
		log_printf(log, "dns: %s/%s: %s %s resolves again", e->backend, e->cfg.name, type_names[e->cfg.resolve],
		           e->cfg.host);
	e->failing = false;
	e->resolutions_total++;
	qsort(e->found.v, (size_t)e->found.n, sizeof(*e->found.v), dns_by_name);
	if (e->found.n > (int)e->cfg.max)
		e->found.n = (int)e->cfg.max;
	dns_apply(e, &e->found);
}

static void schedule_timeout(struct t_resolver *r);
static void query(struct t_dns_entry *e, const char *name, int type, uint16_t port, bool target);

static void fail(struct t_dns_entry *e, int status)
{
	e->round_failed = true;
	snprintf(e->error, sizeof(e->error), "%s", ares_strerror(status));
}

static void addresses(struct t_dns_entry *e, int type, uint16_t port, const unsigned char *abuf, int alen)
{
	struct dns_found f;
	int n = 64;

	if (type == T_A) {
		struct ares_addrttl a[64];

		if (ares_parse_a_reply(abuf, alen, NULL, a, &n) != ARES_SUCCESS)
			{
			fail(e, ARES_EBADRESP);
			return;
		}
		for (int i = 0; i < n; i++) {
			dns_found_of(&f, e->cfg.name, AF_INET, &a[i].ipaddr, port);
			if (!dns_set_add(&e->found, &f))
				{
			fail(e, ARES_ENOMEM);
			return;
		}
		}
	} else {
		struct ares_addr6ttl a[64];

		if (ares_parse_aaaa_reply(abuf, alen, NULL, a, &n) != ARES_SUCCESS)
			{
			fail(e, ARES_EBADRESP);
			return;
		}
		for (int i = 0; i < n; i++) {
			dns_found_of(&f, e->cfg.name, AF_INET6, &a[i].ip6addr, port);
			if (!dns_set_add(&e->found, &f))
				{
			fail(e, ARES_ENOMEM);
			return;
		}
		}
	}
}

/* An SRV answer: the address queries of its targets (at most max). */
static void targets(struct t_dns_entry *e, const unsigned char *abuf, int alen)
{
	struct ares_srv_reply *srv = NULL;
	unsigned n = 0;

	if (ares_parse_srv_reply(abuf, alen, &srv) != ARES_SUCCESS)
		{
			fail(e, ARES_EBADRESP);
			return;
		}
	for (struct ares_srv_reply *s = srv; s && n < e->cfg.max; s = s->next, n++) {
		query(e, s->host, T_A, s->port, true);
		query(e, s->host, T_AAAA, s->port, true);
	}
	ares_free_data(srv);
}

static void answer_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_query q = *(struct dns_query *)arg;
	struct t_dns_entry *e = q.e;

	free(arg);
	if (status == ARES_EDESTRUCTION) {
		e->cancelled = true;            /* a new channel, or stopping */
	} else if (e->dead) {
		;                               /* gone from the file: the answer no longer matters */
	} else if (status != ARES_SUCCESS) {
		/* a target has one family or both: "no such data" is an answer for it */
		if (!(q.target && (status == ARES_ENODATA || status == ARES_ENOTFOUND)))
			fail(e, status);
	} else if (q.type == T_SRV) {
		targets(e, abuf, alen);
	} else {
		addresses(e, q.type, q.port, abuf, alen);
	}
	if (--e->pending == 0)
		round_end(e);
}

static void query(struct t_dns_entry *e, const char *name, int type, uint16_t port, bool target)
{
	struct dns_query *q = malloc(sizeof(*q));

	if (!q)
		{
			fail(e, ARES_ENOMEM);
			return;
		}
	*q = (struct dns_query){ .e = e, .type = type, .port = port, .target = target };
	e->pending++;
	ares_query(e->r->ch, name, C_IN, type, answer_cb, q);
}

/* The entry's tick: deletes what drained, then starts a round unless one
 * is still in flight. */
static void tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct t_dns_entry *e = container_of(t, struct t_dns_entry, timer);
	int type = e->cfg.resolve == CFG_RESOLVE_A ? T_A : e->cfg.resolve == CFG_RESOLVE_AAAA ? T_AAAA : T_SRV;

	dns_reap(e);
	if (e->pending || !e->r->ready)
		return;
	e->round_failed = false;
	dns_set_free(&e->found);
	query(e, e->cfg.host, type, e->cfg.port, false);
	schedule_timeout(e->r);
}

/* --- c-ares on the loop --- */

static void schedule_timeout(struct t_resolver *r)
{
	struct timeval tv, *tvp;

	if (!r->ready)
		return;
	ev_timer_stop(r->w->loop, &r->timeout);
	tvp = ares_timeout(r->ch, NULL, &tv);
	if (!tvp)
		return;
	ev_timer_set(&r->timeout, (double)tvp->tv_sec + tvp->tv_usec / 1e6, 0.);
	ev_timer_start(r->w->loop, &r->timeout);
}

static void timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct t_resolver *r = container_of(t, struct t_resolver, timeout);

	ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	schedule_timeout(r);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct t_dns_io *d = container_of(w, struct t_dns_io, io);
	struct t_resolver *r = d->r;

	ares_process_fd(r->ch, (revents & EV_READ) ? w->fd : ARES_SOCKET_BAD,
	                (revents & EV_WRITE) ? w->fd : ARES_SOCKET_BAD);      /* may free d */
	schedule_timeout(r);
}

/* c-ares opened, changed or closed one of its sockets. */
static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct t_resolver *r = data;
	struct t_dns_io **p = &r->ios, *d;

	while (*p && (*p)->io.fd != fd)
		p = &(*p)->next;
	d = *p;
	if (!readable && !writable) {
		if (d) {
			ev_io_stop(r->w->loop, &d->io);
			*p = d->next;
			free(d);
		}
		return;
	}
	if (!d) {
		d = calloc(1, sizeof(*d));
		if (!d)
			return;         /* its query times out */
		d->r = r;
		d->next = r->ios;
		r->ios = d;
		ev_init(&d->io, io_cb);
	}
	ev_io_stop(r->w->loop, &d->io);
	ev_io_set(&d->io, fd, (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
	ev_io_start(r->w->loop, &d->io);
}

static int channel_open(struct t_resolver *r, const char *servers, char **err)
{
	struct ares_options o = { .sock_state_cb = sock_state_cb, .sock_state_cb_data = r,
	                          .timeout = DNS_TIMEOUT_MS, .tries = DNS_TRIES };
	int rc = ares_init_options(&r->ch, &o, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);

	if (rc != ARES_SUCCESS)
		return tether_err(err, -EINVAL, "dns: cannot start c-ares: %s", ares_strerror(rc));
	if (servers[0] && (rc = ares_set_servers_ports_csv(r->ch, servers)) != ARES_SUCCESS) {
		ares_destroy(r->ch);
		return tether_err(err, -EINVAL, "dns: resolvers \"%s\": %s", servers, ares_strerror(rc));
	}
	snprintf(r->servers, sizeof(r->servers), "%s", servers);
	r->ready = true;
	return 0;
}

/* Destroys the channel: pending queries end (ARES_EDESTRUCTION), which
 * frees the entries already marked dead. */
static void channel_close(struct t_resolver *r)
{
	if (!r->ready)
		return;
	ares_destroy(r->ch);            /* calls back, then closes its sockets (sock_state_cb) */
	r->ready = false;
	ev_timer_stop(r->w->loop, &r->timeout);
	while (r->ios) {
		struct t_dns_io *d = r->ios;

		r->ios = d->next;
		ev_io_stop(r->w->loop, &d->io);
		free(d);
	}
}

/* --- entries and reloads --- */

static bool same_entry(const struct t_dns_entry *e, const char *backend, const struct cfg_server *c)
{
	return strcmp(e->backend, backend) == 0 && strcmp(e->cfg.name, c->name) == 0 &&
	       e->cfg.resolve == c->resolve && strcmp(e->cfg.host, c->host) == 0 && e->cfg.port == c->port;
}

static struct t_dns_entry *find_entry(struct t_resolver *r, const char *backend, const struct cfg_server *c)
{
	for (struct t_dns_entry *e = r->entries; e; e = e->next)
		if (!e->dead && same_entry(e, backend, c))
			return e;
	return NULL;
}

/* Takes e out of the list; freed now, or by its last answer. */
static void entry_drop(struct t_resolver *r, struct t_dns_entry *e)
{
	for (struct t_dns_entry **p = &r->entries; *p; p = &(*p)->next)
		if (*p == e) {
			*p = e->next;
			break;
		}
	ev_timer_stop(r->w->loop, &e->timer);
	e->dead = true;
	if (e->pending == 0)
		entry_free(e);
}

/* Adds g's entries that r does not have, updates those it has (and keeps
 * them), drops the others.  New entries resolve at once. */
static void follow(struct t_resolver *r, struct t_gen *g)
{
	struct t_dns_entry *keep = NULL, *e, *next;

	for (struct t_backend *be = g->backends; be; be = be->next) {
		const struct cfg_backend *bc = NULL;

		for (int i = 0; i < g->cfg->nbackends; i++)
			if (strcmp(g->cfg->backends[i].name, be->cfg.name) == 0)
				bc = &g->cfg->backends[i];
		for (int i = 0; bc && i < bc->nservers; i++) {
			const struct cfg_server *c = &bc->servers[i];
			double first = 0.;

			if (c->resolve == CFG_RESOLVE_NONE)
				continue;
			e = find_entry(r, bc->name, c);
			if (e) {                /* kept: out of r's list, into keep */
				for (struct t_dns_entry **p = &r->entries; *p; p = &(*p)->next)
					if (*p == e) {
						*p = e->next;
						break;
					}
				first = e->cfg.interval_ms / 1000.0;
				dns_set_free(&e->retiring);     /* drained ones stayed in the old generation */
			} else if ((e = calloc(1, sizeof(*e)))) {
				e->r = r;
				snprintf(e->backend, sizeof(e->backend), "%s", bc->name);
				ev_init(&e->timer, tick_cb);
			} else {
				continue;
			}
			e->cfg = *c;
			ev_timer_stop(r->w->loop, &e->timer);
			ev_timer_set(&e->timer, first, e->cfg.interval_ms / 1000.0);
			ev_timer_start(r->w->loop, &e->timer);
			e->next = keep;
			keep = e;
		}
	}
	for (e = r->entries; e; e = next) {
		next = e->next;
		entry_drop(r, e);
	}
	r->entries = keep;
}

int resolver_start(struct t_resolver *r, struct t_worker *w, struct t_gen *g, char **err)
{
	int rc;

	memset(r, 0, sizeof(*r));
	r->w = w;
	ev_init(&r->timeout, timeout_cb);
	rc = ares_library_init(ARES_LIB_INIT_ALL);
	if (rc != ARES_SUCCESS)
		return tether_err(err, -EINVAL, "dns: cannot start c-ares: %s", ares_strerror(rc));
	rc = channel_open(r, g->cfg->global.resolvers, err);
	if (rc < 0) {
		ares_library_cleanup();
		r->w = NULL;
		return rc;
	}
	follow(r, g);
	return 0;
}

int resolver_carry(struct t_resolver *r, struct t_gen *g, char **err)
{
	if (!r->w)
		return 0;
	for (int b = 0; b < g->cfg->nbackends; b++) {
		const struct cfg_backend *bc = &g->cfg->backends[b];

		for (int i = 0; i < bc->nservers; i++) {
			struct t_dns_entry *e = bc->servers[i].resolve ? find_entry(r, bc->name, &bc->servers[i]) : NULL;

			for (int k = 0; e && k < e->good.n; k++) {
				struct t_server *s;
				int rc = rt_gen_server_add(g, bc->name, e->good.v[k].name, e->good.v[k].addr,
				                           bc->servers[i].weight, &s, err);

				if (rc < 0 && rc != -EEXIST)
					return rc;
				if (rc == 0) {
					s->lb.maxconn = bc->servers[i].maxconn;
					s->lb.backup = bc->servers[i].backup;
				}
			}
		}
	}
	return 0;
}

void resolver_update(struct t_resolver *r, struct t_gen *g)
{
	char *err = NULL;

	if (!r->w)
		return;
	if (strcmp(r->servers, g->cfg->global.resolvers) != 0) {
		channel_close(r);       /* rounds in flight end as failures */
		if (channel_open(r, g->cfg->global.resolvers, &err) < 0) {
			log_printf(r->w->log, "%s; keeping the servers found so far", err);
			free(err);
		}
	}
	follow(r, g);
}

void resolver_stop(struct t_resolver *r)
{
	struct t_dns_entry *e;

	if (!r->w)
		return;
	r->stopping = true;
	for (e = r->entries; e; e = e->next)
		ev_timer_stop(r->w->loop, &e->timer);
	channel_close(r);               /* every round in flight ends (dropped entries are freed) */
	while ((e = r->entries)) {
		r->entries = e->next;
		entry_free(e);
	}
	ares_library_cleanup();
	r->w = NULL;
}

/* --- metrics --- */

void resolver_metrics(const struct t_resolver *r, struct sbuf *o)
{
	static const char *const names[3][3] = {
		{ "tether_dns_resolutions_total", "counter", "Resolutions of a resolve entry that found addresses." },
		{ "tether_dns_failures_total", "counter",
		  "Resolutions that failed (error, timeout, empty answer): the last good servers were kept." },
		{ "tether_dns_servers", "gauge", "Servers of the last good answer of a resolve entry." },
	};

	if (!r->w || !r->entries)
		return;
	for (int m = 0; m < 3; m++) {
		sb_printf(o, "# HELP %s %s\n# TYPE %s %s\n", names[m][0], names[m][2], names[m][0], names[m][1]);
		for (const struct t_dns_entry *e = r->entries; e; e = e->next)
			sb_printf(o, "%s{backend=\"%s\",entry=\"%s\"} %llu\n", names[m][0], e->backend, e->cfg.name,
			          m == 0 ? (unsigned long long)e->resolutions_total
			          : m == 1 ? (unsigned long long)e->failures_total : (unsigned long long)e->good.n);
	}
}

void resolver_json(const struct t_resolver *r, struct sbuf *o)
{
	sb_printf(o, "\"dns\":[");
	for (const struct t_dns_entry *e = r->w ? r->entries : NULL; e; e = e->next)
		sb_printf(o, "%s{\"backend\":\"%s\",\"entry\":\"%s\",\"type\":\"%s\",\"name\":\"%s\",\"servers\":%d,"
		          "\"resolutions_total\":%llu,\"failures_total\":%llu,\"failing\":%s,\"last_error\":\"%s\"}",
		          e == r->entries ? "" : ",", e->backend, e->cfg.name, type_names[e->cfg.resolve], e->cfg.host,
		          e->good.n, (unsigned long long)e->resolutions_total, (unsigned long long)e->failures_total,
		          e->failing ? "true" : "false", strpbrk(e->error, "\"\\") ? "?" : e->error);
	sb_printf(o, "]");
}
