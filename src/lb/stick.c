/*
 * tether - the stick table: client address -> server id, idle timeout, LRU.
 *
 * All memory is allocated once in lb_stick_new(): `size` entries, chained
 * through 32-bit indexes, and a power-of-two bucket array.  Entries sit on a
 * doubly linked LRU list (most recent at the head); a put on a full table
 * recycles the tail.  Idle-expired entries are treated as absent by get()
 * and recycled lazily, so no timer is needed (the core has no clock).
 */
#include <stdlib.h>
#include <string.h>

#include "tether/hash.h"
#include "tether/lb.h"
#include "tether/stick.h"

#define NIL UINT32_MAX

struct stick_entry {
	struct lb_addr addr;
	uint32_t id;            /* server id */
	uint32_t chain;         /* next in bucket, or NIL */
	uint32_t prev, next;    /* LRU list (or free list through next) */
	uint64_t used_ms;       /* last put */
};

struct lb_stick {
	struct stick_entry *e;
	uint32_t *bucket;
	uint32_t mask;          /* buckets - 1 */
	uint32_t size, count;
	uint32_t head, tail;    /* LRU: head = most recent */
	uint32_t free;          /* free list */
	uint64_t timeout_ms;
};

struct lb_stick *lb_stick_new(uint32_t size, uint64_t timeout_ms)
{
	struct lb_stick *t = calloc(1, sizeof(*t));
	uint32_t nb = 1;

	if (!t || size == 0)
		goto err;
	while (nb < size && nb < (1u << 31))
		nb <<= 1;
	t->e = calloc(size, sizeof(*t->e));
	t->bucket = malloc((size_t)nb * sizeof(*t->bucket));
	if (!t->e || !t->bucket)
		goto err;
	memset(t->bucket, 0xff, (size_t)nb * sizeof(*t->bucket));
	t->mask = nb - 1;
	t->size = size;
	t->timeout_ms = timeout_ms;
	t->head = t->tail = NIL;
	for (uint32_t i = 0; i < size; i++)
		t->e[i].next = i + 1 < size ? i + 1 : NIL;
	t->free = 0;
	return t;
err:
	lb_stick_free(t);
	return NULL;
}

void lb_stick_free(struct lb_stick *t)
{
	if (!t)
		return;
	free(t->e);
	free(t->bucket);
	free(t);
}

static uint32_t bucket_of(const struct lb_stick *t, const struct lb_addr *a)
{
	return (uint32_t)lb_hash_addr(a, 0, 0x5717c4) & t->mask;
}

static bool addr_eq(const struct lb_addr *a, const struct lb_addr *b)
{
	return a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0;
}

static void lru_unlink(struct lb_stick *t, uint32_t i)
{
	struct stick_entry *e = &t->e[i];

	if (e->prev != NIL)
		t->e[e->prev].next = e->next;
	else
		t->head = e->next;
	if (e->next != NIL)
		t->e[e->next].prev = e->prev;
	else
		t->tail = e->prev;
}

static void lru_push_head(struct lb_stick *t, uint32_t i)
{
	t->e[i].prev = NIL;
	t->e[i].next = t->head;
	if (t->head != NIL)
		t->e[t->head].prev = i;
	t->head = i;
	if (t->tail == NIL)
		t->tail = i;
}

/* Index of the entry for a, or NIL; *link points at the slot that holds it. */
static uint32_t find(struct lb_stick *t, const struct lb_addr *a, uint32_t **link)
{
	uint32_t *l = &t->bucket[bucket_of(t, a)];

	while (*l != NIL && !addr_eq(&t->e[*l].addr, a))
		l = &t->e[*l].chain;
	*link = l;
	return *l;
}

static void remove_entry(struct lb_stick *t, uint32_t i)
{
	uint32_t *l;

	if (find(t, &t->e[i].addr, &l) == i)
		*l = t->e[i].chain;
	lru_unlink(t, i);
	t->e[i].next = t->free;
	t->free = i;
	t->count--;
}

static bool expired(const struct lb_stick *t, const struct stick_entry *e, uint64_t now_ms)
{
	return now_ms >= e->used_ms && now_ms - e->used_ms >= t->timeout_ms;
}

bool lb_stick_get(struct lb_stick *t, const struct lb_addr *a, uint64_t now_ms, uint32_t *id)
{
	uint32_t *l;
	uint32_t i = find(t, a, &l);

	if (i == NIL)
		return false;
	if (expired(t, &t->e[i], now_ms)) {
		remove_entry(t, i);
		return false;
	}
	*id = t->e[i].id;
	return true;
}

void lb_stick_put(struct lb_stick *t, const struct lb_addr *a, uint32_t id, uint64_t now_ms)
{
	uint32_t *l;
	uint32_t i = find(t, a, &l);

	if (i != NIL) {
		lru_unlink(t, i);
	} else {
		if (t->free == NIL)
			remove_entry(t, t->tail);   /* full: evict the least recently used */
		i = t->free;
		t->free = t->e[i].next;
		t->e[i].addr = *a;
		t->e[i].chain = NIL;
		find(t, a, &l);                 /* the slot may have moved with the eviction */
		*l = i;
		t->count++;
	}
	t->e[i].id = id;
	t->e[i].used_ms = now_ms;
	lru_push_head(t, i);
}

void lb_stick_drop_server(struct lb_stick *t, uint32_t id)
{
	uint32_t i = t->head;

	while (i != NIL) {
		uint32_t next = t->e[i].next;

		if (t->e[i].id == id)
			remove_entry(t, i);
		i = next;
	}
}

uint32_t lb_stick_count(const struct lb_stick *t)
{
	return t->count;
}
