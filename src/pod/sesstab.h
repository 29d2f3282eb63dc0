/*
 * sesstab.h - tether-pod's local session table: the sessions themselves
 * (--store memory) or the cache in front of Redis (--store redis+cache).
 *
 * An open-addressing hash table keyed by the 64-bit session id, with
 * linear probing and backward-shift deletion (no tombstones).  Every entry
 * carries its own expiry; an expired entry is gone for every caller, and is
 * removed when a lookup meets it or when the table would otherwise grow.
 * Lookups and updates never allocate; an insert allocates only when the
 * live entries pass 3/4 of the slots, and then doubles the table.
 */
#ifndef TETHER_POD_SESSTAB_H
#define TETHER_POD_SESSTAB_H

#include <stddef.h>
#include <stdint.h>

#define SESS_USER_MAX 31        /* longest user name, in bytes */

/* One session.  `sid` 0 marks an empty slot. */
struct sess {
	uint64_t sid;
	double expires;         /* ev_now() seconds after which the entry is gone */
	int64_t created;        /* unix seconds */
	uint32_t views;         /* pages viewed (memory store; cache: as last known) */
	uint32_t cart;          /* items in the cart (memory store only) */
	char user[SESS_USER_MAX + 1];
};

struct sesstab {
	struct sess *slot;      /* owned; `mask + 1` slots */
	size_t mask;
	size_t used;            /* occupied slots, expired ones included */
	size_t max;             /* never more slots than this (a memory bound) */
};

/* Sets up an empty table of `slots` (a power of two) that may grow up to
 * `max_slots`.  0 or -ENOMEM. */
int sesstab_init(struct sesstab *t, size_t slots, size_t max_slots);
void sesstab_fini(struct sesstab *t);

/* The live entry of `sid` at time `now`, or NULL (an expired one is removed). */
struct sess *sesstab_find(struct sesstab *t, uint64_t sid, double now);

/* The entry of `sid` (sid != 0), reset to zero but for `sid` and `expires`;
 * an existing entry is reused.  NULL when the table is at its bound and
 * full of live entries, or memory is short. */
struct sess *sesstab_put(struct sesstab *t, uint64_t sid, double expires, double now);

/* Removes `sid` if present. */
void sesstab_del(struct sesstab *t, uint64_t sid);

/* Removes every expired entry, in place (no allocation, O(slots));
 * returns the live ones. */
size_t sesstab_sweep(struct sesstab *t, double now);

/* A set of client addresses (16 bytes: IPv6, or IPv4 mapped into it), to
 * count the distinct ones.  Same probing; grows at 1/2 load. */
struct addrset {
	unsigned char (*key)[16];  /* owned; `mask + 1` slots, all-zero = empty */
	size_t mask;
	size_t count;
	int has_zero;           /* the all-zero address (::) was added */
};

int addrset_init(struct addrset *s, size_t slots);
void addrset_fini(struct addrset *s);
/* Adds `a` (16 bytes).  0, or -ENOMEM (then it is not counted). */
int addrset_add(struct addrset *s, const unsigned char a[16]);

#endif
