/*
 * tether - DNS service discovery (src/daemon/io/resolve.c): server entries
 * with `resolve = "A" | "AAAA" | "SRV"` are names, resolved with c-ares on
 * the worker's loop every `interval`; each address found becomes a server
 * named after it ("ENTRY-10.1.2.3-8080"), so the name, and with it the
 * server's place in Maglev and its cookie value, stays the same for as long
 * as the address does.  Servers come and go through the runtime API's own
 * operations: rt_server_add (checks started like `add server`), a drain
 * when an address leaves the answer, rt_server_del once the drained server
 * has no connection left.  A failed resolution (an error, a timeout, an
 * empty answer) changes nothing: the last good set stays, the failure is
 * logged and counted.
 *
 * Ownership: a struct t_resolver belongs to the instance (struct tether)
 * and its entries to it; they outlive generations.  A reload keeps the
 * entries that are still in the file (same backend, name, type, name to
 * resolve and port) with their last good set, whose servers it re-creates
 * in the new generation before it goes live (resolver_carry), so a reload
 * never leaves a discovered backend empty.
 */
#ifndef TETHER_RESOLVE_H
#define TETHER_RESOLVE_H

#include <ares.h>
#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctl.h"
#include "worker.h"

struct t_dns_io;
struct t_dns_entry;

struct t_resolver {
	struct t_worker *w;             /* not owned; NULL while stopped */
	ares_channel ch;                /* valid while `ready` */
	bool ready;
	bool stopping;                  /* resolver_stop: answers only end their rounds */
	char servers[512];              /* global.resolvers the channel was made with; "" = resolv.conf */
	ev_timer timeout;               /* c-ares's next timeout */
	struct t_dns_io *ios;           /* the sockets c-ares has open, with their watchers */
	struct t_dns_entry *entries;
};

/* Starts resolving the entries of g (the running generation) on w's loop.
 * 0, or a negative errno with *err (c-ares cannot start, bad resolvers). */
int resolver_start(struct t_resolver *r, struct t_worker *w, struct t_gen *g, char **err);
/* A reload, before g goes live: re-creates in g the servers of the last
 * good answer of every entry g keeps.  0, or a negative errno with *err. */
int resolver_carry(struct t_resolver *r, struct t_gen *g, char **err);
/* A reload, after g went live: follows g's entries (new ones start at
 * once, removed ones stop, changed intervals apply; a change of
 * global.resolvers makes a new channel). */
void resolver_update(struct t_resolver *r, struct t_gen *g);
/* Stops everything and frees the entries; nothing when not started. */
void resolver_stop(struct t_resolver *r);
/* The entries' metrics (Prometheus text) and their "dns":[...] for /stats. */
void resolver_metrics(const struct t_resolver *r, struct sbuf *out);
void resolver_json(const struct t_resolver *r, struct sbuf *out);

#endif
