/*
 * sesstab.c - tether-pod's local session table and client address set
 * (see sesstab.h).
 *
 * Linear probing with backward-shift deletion: Knuth, TAOCP vol. 3, 6.4,
 * Algorithm R.  Session ids come from a random generator, but a client can
 * send any id, so the slot index is a mix of the id, not its low bits.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sesstab.h"

/* The splitmix64 finaliser (Steele, Lea, Flood 2014): every bit of the key
 * moves every bit of the index. */
static uint64_t mix64(uint64_t x)
{
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

int sesstab_init(struct sesstab *t, size_t slots, size_t max_slots)
{
	t->slot = calloc(slots, sizeof(*t->slot));
	if (!t->slot)
		return -ENOMEM;
	t->mask = slots - 1;
	t->used = 0;
	t->max = max_slots;
	return 0;
}

void sesstab_fini(struct sesstab *t)
{
	free(t->slot);
	t->slot = NULL;
}

/* The slot of `sid`, or the empty slot where it would go. */
static size_t probe(const struct sesstab *t, uint64_t sid)
{
	size_t i = (size_t)mix64(sid) & t->mask;

	while (t->slot[i].sid && t->slot[i].sid != sid)
		i = (i + 1) & t->mask;
	return i;
}

/* Empties slot i and shifts back the entries of its cluster that may not
 * sit after the hole (their home slot is not cyclically in (i, j]). */
static void del_at(struct sesstab *t, size_t i)
{
	for (size_t j = i;;) {
		size_t k;

		j = (j + 1) & t->mask;
		if (!t->slot[j].sid)
			break;
		k = (size_t)mix64(t->slot[j].sid) & t->mask;
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		t->slot[i] = t->slot[j];
		i = j;
	}
	t->slot[i].sid = 0;
	t->used--;
}

struct sess *sesstab_find(struct sesstab *t, uint64_t sid, double now)
{
	size_t i;

	if (!sid)
		return NULL;
	i = probe(t, sid);
	if (!t->slot[i].sid)
		return NULL;
	if (t->slot[i].expires <= now) {
		del_at(t, i);
		return NULL;
	}
	return &t->slot[i];
}

void sesstab_del(struct sesstab *t, uint64_t sid)
{
	size_t i = sid ? probe(t, sid) : 0;

	if (sid && t->slot[i].sid)
		del_at(t, i);
}

/* Moves the live entries into a new array of `slots`.  0 or -ENOMEM. */
static int rehash(struct sesstab *t, size_t slots, double now)
{
	struct sesstab n;

	if (sesstab_init(&n, slots, t->max) < 0)
		return -ENOMEM;
	for (size_t i = 0; i <= t->mask; i++) {
		if (t->slot[i].sid && t->slot[i].expires > now) {
			n.slot[probe(&n, t->slot[i].sid)] = t->slot[i];
			n.used++;
		}
	}
	free(t->slot);
	*t = n;
	return 0;
}

size_t sesstab_sweep(struct sesstab *t, double now)
{
	/* In place: del_at(i) may pull a later entry of the cluster into slot
	 * i, so slot i is checked again; an entry it pulls across the end of
	 * the array lands in a slot already checked, but it was checked
	 * itself where it came from (same `now`), so it is live. */
	for (size_t i = 0; i <= t->mask; i++) {
		while (t->slot[i].sid && t->slot[i].expires <= now)
			del_at(t, i);
	}
	return t->used;
}

static bool crowded(const struct sesstab *t)
{
	return (t->used + 1) * 4 > (t->mask + 1) * 3;
}

struct sess *sesstab_put(struct sesstab *t, uint64_t sid, double expires, double now)
{
	size_t i = probe(t, sid);

	if (!t->slot[i].sid && crowded(t)) {
		size_t slots = t->mask + 1;

		sesstab_sweep(t, now);
		if (crowded(t) && slots * 2 <= t->max)
			rehash(t, slots * 2, now);
		if (crowded(t))
			return NULL;
		i = probe(t, sid);
	}
	if (!t->slot[i].sid)
		t->used++;
	memset(&t->slot[i], 0, sizeof(t->slot[i]));
	t->slot[i].sid = sid;
	t->slot[i].expires = expires;
	return &t->slot[i];
}

int addrset_init(struct addrset *s, size_t slots)
{
	s->key = calloc(slots, sizeof(*s->key));
	if (!s->key)
		return -ENOMEM;
	s->mask = slots - 1;
	s->count = 0;
	s->has_zero = 0;
	return 0;
}

void addrset_fini(struct addrset *s)
{
	free(s->key);
	s->key = NULL;
}

static size_t addr_home(const struct addrset *s, const unsigned char a[16])
{
	uint64_t hi, lo;

	memcpy(&hi, a, 8);
	memcpy(&lo, a + 8, 8);
	return (size_t)mix64(hi ^ mix64(lo)) & s->mask;
}

static const unsigned char zero16[16];

/* Slot of `a` in s, or the empty slot where it goes. */
static size_t addr_probe(const struct addrset *s, const unsigned char a[16])
{
	size_t i = addr_home(s, a);

	while (memcmp(s->key[i], zero16, 16) != 0 && memcmp(s->key[i], a, 16) != 0)
		i = (i + 1) & s->mask;
	return i;
}

int addrset_add(struct addrset *s, const unsigned char a[16])
{
	size_t i;

	if (memcmp(a, zero16, 16) == 0) {
		s->count += !s->has_zero;
		s->has_zero = 1;
		return 0;
	}
	i = addr_probe(s, a);
	if (memcmp(s->key[i], zero16, 16) != 0)
		return 0;
	if ((s->count + 1) * 2 > s->mask + 1) {
		struct addrset n;

		if (addrset_init(&n, (s->mask + 1) * 2) < 0)
			return -ENOMEM;
		for (size_t j = 0; j <= s->mask; j++)
			if (memcmp(s->key[j], zero16, 16) != 0)
				memcpy(n.key[addr_probe(&n, s->key[j])], s->key[j], 16);
		n.count = s->count;
		n.has_zero = s->has_zero;
		free(s->key);
		*s = n;
		i = addr_probe(s, a);
	}
	memcpy(s->key[i], a, 16);
	s->count++;
	return 0;
}
