/*
 * evq - timing wheel, sorted run and overflow heap (see evq.h).
 *
 * Invariants: every wheel event has a slot in (cur, cur + EVQ_SLOTS), at
 * position slot % EVQ_SLOTS, so a position never holds two slots; the
 * position of cur itself is empty (its events were moved to the run); every
 * overflow event has a slot >= cur + EVQ_SLOTS.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "evq.h"

#define WORDS (EVQ_SLOTS / 64)
#define NONE UINT64_MAX
#define SORT_BITS 8             /* counting sort on the 8 bits below the slot */
#define SORT_BUCKETS (1 << SORT_BITS)

_Static_assert((EVQ_SLOTS & (EVQ_SLOTS - 1)) == 0 && EVQ_SLOTS >= 64, "EVQ_SLOTS is a power of two");
_Static_assert(sizeof(struct evq_chunk) == 256, "a chunk is four cache lines");

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

/* --- the run: the slot being played, sorted --- */

static void run_reserve(struct evq_run *r, size_t n)
{
	if (n <= r->cap)
		return;
	while (r->cap < n)
		r->cap = r->cap ? r->cap * 2 : 256;
	r->a = realloc(r->a, r->cap * sizeof(*r->a));
	r->tmp = realloc(r->tmp, r->cap * sizeof(*r->tmp));
	if (!r->a || !r->tmp)
		abort();
}

static void insertion_sort(struct evq_event *a, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		struct evq_event e = a[i];
		size_t j = i;

		for (; j > 0 && a[j - 1].key > e.key; j--)
			a[j] = a[j - 1];
		a[j] = e;
	}
}

/* Sorts a[0..len) of one slot: keys share every bit from `shift` up, so a
 * counting sort on the 8 bits below leaves buckets of about one event for
 * a slot of a few hundred, which the insertion sort then finishes in one
 * pass. */
static void run_sort(struct evq_run *r, unsigned shift)
{
	size_t count[SORT_BUCKETS + 1] = { 0 };
	unsigned low = shift >= SORT_BITS ? shift - SORT_BITS : 0;
	struct evq_event *t;

	if (r->len <= 16) {
		insertion_sort(r->a, r->len);
		return;
	}
	for (size_t i = 0; i < r->len; i++)
		count[((r->a[i].key >> low) & (SORT_BUCKETS - 1)) + 1]++;
	for (int b = 1; b <= SORT_BUCKETS; b++)
		count[b] += count[b - 1];
	for (size_t i = 0; i < r->len; i++)
		r->tmp[count[(r->a[i].key >> low) & (SORT_BUCKETS - 1)]++] = r->a[i];
	t = r->a;
	r->a = r->tmp;
	r->tmp = t;
	insertion_sort(r->a, r->len);
}

/* --- the wheel --- */

int evq_init(struct evq *q, unsigned shift)
{
	memset(q, 0, sizeof(*q));
	q->shift = shift;
	q->slot = calloc(EVQ_SLOTS, sizeof(*q->slot));
	q->bits = calloc(WORDS, sizeof(*q->bits));
	if (!q->slot || !q->bits) {
		evq_fini(q);
		return -ENOMEM;
	}
	return 0;
}

void evq_fini(struct evq *q)
{
	free(q->slot);
	free(q->bits);
	free(q->chunks);
	free(q->now.a);
	free(q->now.tmp);
	free(q->late.a);
	free(q->far.a);
	memset(q, 0, sizeof(*q));
}

static uint32_t chunk_alloc(struct evq *q)
{
	uint32_t c;

	if (q->free) {
		c = q->free - 1;
		q->free = q->chunks[c].next;
		return c;
	}
	if (q->nchunks == q->cap) {     /* grow, keeping chunks on cache-line boundaries */
		struct evq_chunk *n;

		q->cap = q->cap ? q->cap * 2 : 64;
		n = aligned_alloc(64, q->cap * sizeof(*q->chunks));
		if (!n)
			abort();
		if (q->chunks)
			memcpy(n, q->chunks, q->nchunks * sizeof(*q->chunks));
		free(q->chunks);
		q->chunks = n;
	}
	return q->nchunks++;
}

static void wheel_add(struct evq *q, uint64_t slot, struct evq_event e)
{
	uint32_t pos = (uint32_t)(slot & (EVQ_SLOTS - 1));
	struct evq_slot *sl = &q->slot[pos];

	if (!sl->chunk || sl->n == EVQ_CHUNK) {
		uint32_t c = chunk_alloc(q);

		q->chunks[c].next = sl->chunk;
		sl->chunk = c + 1;
		sl->n = 0;
		q->bits[pos / 64] |= 1ull << (pos % 64);
	}
	q->chunks[sl->chunk - 1].ev[sl->n++] = e;
}

static void place(struct evq *q, struct evq_event e)
{
	uint64_t slot = e.key >> q->shift;

	if (slot <= q->cur)
		heap_push(&q->late, e);
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

/* Turns the wheel to the next slot holding events and moves them, sorted,
 * to the run (the run and `late` are empty when called). */
static void advance(struct evq *q)
{
	uint64_t s = wheel_next(q), f = q->far.len ? q->far.a[0].key >> q->shift : NONE;
	uint32_t pos;

	q->cur = s < f ? s : f;
	q->now.head = q->now.len = 0;
	while (q->far.len && (q->far.a[0].key >> q->shift) - q->cur < EVQ_SLOTS)
		place(q, heap_pop(&q->far));
	pos = (uint32_t)(q->cur & (EVQ_SLOTS - 1));
	for (uint32_t c = q->slot[pos].chunk, n = q->slot[pos].n; c; n = EVQ_CHUNK) {
		struct evq_chunk *ch = &q->chunks[c - 1];
		uint32_t next = ch->next;

		if (next)
			__builtin_prefetch(&q->chunks[next - 1]);
		run_reserve(&q->now, q->now.len + n);
		memcpy(q->now.a + q->now.len, ch->ev, n * sizeof(ch->ev[0]));
		q->now.len += n;
		ch->next = q->free;
		q->free = c;
		c = next;
	}
	q->slot[pos] = (struct evq_slot){ 0, 0 };
	q->bits[pos / 64] &= ~(1ull << (pos % 64));
	run_sort(&q->now, q->shift);
	q->turns++;
}

struct evq_event evq_pop(struct evq *q)
{
	struct evq_run *r = &q->now;

	if (r->head == r->len && !q->late.len)
		advance(q);
	q->len--;
	if (q->late.len && (r->head == r->len || q->late.a[0].key < r->a[r->head].key))
		return heap_pop(&q->late);
	return r->a[r->head++];
}

void evq_clear(struct evq *q)
{
	memset(q->slot, 0, EVQ_SLOTS * sizeof(*q->slot));
	memset(q->bits, 0, WORDS * sizeof(*q->bits));
	q->nchunks = q->free = 0;
	q->now.head = q->now.len = q->late.len = q->far.len = 0;
	q->len = 0;
}
