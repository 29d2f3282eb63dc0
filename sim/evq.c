/*
 * evq - timing wheel + heaps (see evq.h for the contract).
 *
 * Invariants: every wheel event has a slot in (cur, cur + EVQ_SLOTS), at
 * position slot % EVQ_SLOTS, so a position never holds two slots; the
 * position of cur itself is empty (its events were moved to `now`); every
 * overflow event has a slot >= cur + EVQ_SLOTS.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "evq.h"

#define WORDS (EVQ_SLOTS / 64)
#define NONE UINT64_MAX

_Static_assert((EVQ_SLOTS & (EVQ_SLOTS - 1)) == 0 && EVQ_SLOTS >= 64, "EVQ_SLOTS is a power of two");

/* --- 4-ary heap: half the depth of a binary one; the four 16-byte children
 * of a node share one cache line --- */

static void heap_push(struct evq_heap *h, struct evq_event e)
{
	size_t i;

	if (h->len == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 256;
		h->a = realloc(h->a, h->cap * sizeof(*h->a));
		if (!h->a)
			abort();
	}
	i = h->len++;
	while (i > 0 && e.key < h->a[(i - 1) / 4].key) {
		h->a[i] = h->a[(i - 1) / 4];
		i = (i - 1) / 4;
	}
	h->a[i] = e;
}

static struct evq_event heap_pop(struct evq_heap *h)
{
	struct evq_event top = h->a[0], last = h->a[--h->len];
	size_t i = 0;

	for (;;) {
		size_t c = 4 * i + 1, best = c, end;

		if (c >= h->len)
			break;
		end = c + 4 < h->len ? c + 4 : h->len;
		for (size_t k = c + 1; k < end; k++)
			if (h->a[k].key < h->a[best].key)
				best = k;
		if (h->a[best].key >= last.key)
			break;
		h->a[i] = h->a[best];
		i = best;
	}
	if (h->len)
		h->a[i] = last;
	return top;
}

/* --- the wheel --- */

int evq_init(struct evq *q, unsigned shift)
{
	memset(q, 0, sizeof(*q));
	q->shift = shift;
	q->head = calloc(EVQ_SLOTS, sizeof(*q->head));
	q->bits = calloc(WORDS, sizeof(*q->bits));
	if (!q->head || !q->bits) {
		evq_fini(q);
		return -ENOMEM;
	}
	return 0;
}

void evq_fini(struct evq *q)
{
	free(q->head);
	free(q->bits);
	free(q->nodes);
	free(q->now.a);
	free(q->far.a);
	memset(q, 0, sizeof(*q));
}

static void wheel_add(struct evq *q, uint64_t slot, struct evq_event e)
{
	uint32_t pos = (uint32_t)(slot & (EVQ_SLOTS - 1)), n;

	if (q->free) {
		n = q->free - 1;
		q->free = q->nodes[n].next;
	} else {
		if (q->nnodes == q->cap) {
			q->cap = q->cap ? q->cap * 2 : 1024;
			if (q->cap > (1u << 28) - 1)
				abort();
			q->nodes = realloc(q->nodes, q->cap * sizeof(*q->nodes));
			if (!q->nodes)
				abort();
		}
		n = q->nnodes++;
	}
	q->nodes[n] = (struct evq_node){ .key = e.key, .a = e.a, .next = q->head[pos], .kind = e.kind & 15 };
	q->head[pos] = n + 1;
	q->bits[pos / 64] |= 1ull << (pos % 64);
}

static void place(struct evq *q, struct evq_event e)
{
	uint64_t slot = e.key >> q->shift;

	if (slot <= q->cur)
		heap_push(&q->now, e);
	else if (slot - q->cur < EVQ_SLOTS)
		wheel_add(q, slot, e);
	else
		heap_push(&q->far, e);
}

void evq_push(struct evq *q, uint64_t key, uint32_t kind, uint32_t a)
{
	place(q, (struct evq_event){ key, kind, a });
	q->len++;
}

/* The first non-empty wheel slot after cur, or NONE. */
static uint64_t wheel_next(const struct evq *q)
{
	uint32_t start = (uint32_t)((q->cur + 1) & (EVQ_SLOTS - 1));

	for (uint32_t scanned = 0; scanned < EVQ_SLOTS;) {
		uint32_t pos = (start + scanned) & (EVQ_SLOTS - 1);
		uint64_t w = q->bits[pos / 64] >> (pos % 64);

		if (w) {
			uint32_t d = scanned + (uint32_t)__builtin_ctzll(w);

			return d < EVQ_SLOTS - 1 ? q->cur + 1 + d : NONE;
		}
		scanned += 64 - pos % 64;
	}
	return NONE;
}

/* Turns the wheel to the next slot holding events and moves them to `now`. */
static void advance(struct evq *q)
{
	uint64_t s = wheel_next(q), f = q->far.len ? q->far.a[0].key >> q->shift : NONE;
	uint32_t pos, n;

	q->cur = s < f ? s : f;
	while (q->far.len && (q->far.a[0].key >> q->shift) - q->cur < EVQ_SLOTS)
		place(q, heap_pop(&q->far));
	pos = (uint32_t)(q->cur & (EVQ_SLOTS - 1));
	for (n = q->head[pos]; n;) {
		struct evq_node *nd = &q->nodes[n - 1];
		uint32_t next = nd->next;

		heap_push(&q->now, (struct evq_event){ nd->key, nd->kind, nd->a });
		nd->next = q->free;
		q->free = n;
		n = next;
	}
	q->head[pos] = 0;
	q->bits[pos / 64] &= ~(1ull << (pos % 64));
}

struct evq_event evq_pop(struct evq *q)
{
	if (!q->now.len)
		advance(q);
	q->len--;
	return heap_pop(&q->now);
}

void evq_clear(struct evq *q)
{
	memset(q->head, 0, EVQ_SLOTS * sizeof(*q->head));
	memset(q->bits, 0, WORDS * sizeof(*q->bits));
	q->nnodes = q->free = 0;
	q->now.len = q->far.len = 0;
	q->len = 0;
}
