/*
 * tether - DNS service discovery, private to resolve.c and resolve_apply.c:
 * the entries, the address sets a round collects, and how a good answer is
 * applied through the runtime API's operations (resolve_apply.c).
 */
#ifndef TETHER_RESOLVE_INT_H
#define TETHER_RESOLVE_INT_H

#include "resolve.h"

/* One address found: the server it makes. */
struct dns_found {
	char name[LB_NAME_MAX];         /* ENTRY-ADDRESS-PORT */
	char addr[64];                  /* "10.1.2.3:8080" or "[fd00::1]:8080" */
};

struct dns_set {
	struct dns_found *v;
	int n, cap;
};

struct t_dns_io {
	ev_io io;
	struct t_resolver *r;
	struct t_dns_io *next;
};

struct t_dns_entry {
	struct t_resolver *r;           /* owner */
	char backend[LB_NAME_MAX];
	struct cfg_server cfg;          /* the entry as the file has it */
	ev_timer timer;
	unsigned pending;               /* queries of the round in flight */
	bool dead;                      /* gone from the file: freed when pending is 0 */
	bool round_failed;
	bool cancelled;                 /* the channel went away under the round: it does not count */
	bool failing;                   /* the last round failed (logged once per outage) */
	char error[96];                 /* why the last round failed */
	struct dns_set found;           /* collected by the round in flight */
	struct dns_set good;            /* the last good answer, applied */
	struct dns_set retiring;        /* drained because they left the answer; deleted once idle */
	uint64_t resolutions_total, failures_total;
	struct t_dns_entry *next;
};

/* A query's argument. */

void dns_set_free(struct dns_set *s);
/* Adds f unless its name is in s already; false when out of memory. */
bool dns_set_add(struct dns_set *s, const struct dns_found *f);
/* qsort comparator: by server name. */
int dns_by_name(const void *a, const void *b);
/* The server an address makes (name and "host:port"). */
void dns_found_of(struct dns_found *f, const char *entry, int af, const void *ip, uint16_t port);
/* Makes next e's good set: adds the new addresses' servers (checks
 * started), drains the ones that left the answer; takes next's contents. */
void dns_apply(struct t_dns_entry *e, struct dns_set *next);
/* Deletes the retiring servers that have no connection left. */
void dns_reap(struct t_dns_entry *e);

#endif
