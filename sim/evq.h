/*
 * evq - the simulator's event queue: a timing wheel in front of two small
 * 4-ary heaps.
 *
 * An event is ordered by one 64-bit key (the simulator packs the time in µs
 * above an insertion counter, so keys are unique and equal times keep their
 * order).  Keys handed to evq_push must never be below the key last popped:
 * a discrete-event simulation only schedules into its future.
 *
 * The key space is cut into slots of 2^shift keys.  Events of the slot being
 * played live in a short sorted array (the run), and those pushed into it
 * while it plays in a small heap beside it (`late`); events of the next
 * EVQ_SLOTS slots hang off the wheel, unsorted, one list per slot; events
 * further out wait in an overflow heap and move onto the wheel as it turns.
 * Pushing is O(1) for nearly every event, a slot is sorted once when its
 * turn comes (a counting sort on the next bits, then an insertion sort
 * that has almost nothing left to do), and the large set of pending events
 * is never sifted through as in one big heap.
 * The pop order is exactly the key order, as a single heap would give.
 */
#ifndef TETHER_SIM_EVQ_H
#define TETHER_SIM_EVQ_H

#include <stddef.h>
#include <stdint.h>

/* 2^13 slots: with the simulator's 16384 µs slots the wheel covers 134 s of
 * simulated time, longer than nearly every think time, so the overflow heap
 * stays small; and the slot table (64 KB) stays in the L2 cache, which
 * random pushes into it need (2^15 slots of 4096 µs: 7 % slower on the
 * retail peak, the table no longer cached). */
#define EVQ_SLOTS (1u << 13)
#define EVQ_CHUNK 15            /* events per 256-byte chunk of a slot's list */

struct evq_event {
	uint64_t key;
	uint32_t kind, a;               /* the simulator's: what, and to whom */
};

struct evq_heap {                       /* private */
	struct evq_event *a;
	size_t len, cap;
};

struct evq_run {                        /* private: a[head..len) in key order */
	struct evq_event *a, *tmp;      /* tmp: scratch of the same capacity */
	size_t head, len, cap;
};

/* private: a slot's events are a list of chunks of four cache lines, so
 * playing a slot follows a few links instead of one per event (the lines of
 * a chunk are fetched together; 3 events per 64-byte chunk: 14 % slower). */
struct evq_chunk {
	struct evq_event ev[EVQ_CHUNK];
	uint32_t next;                  /* chunk index + 1; 0 ends the list */
	uint32_t pad[3];
};

struct evq_slot {                       /* private */
	uint32_t chunk;                 /* first chunk + 1 (the one being filled), 0 empty */
	uint32_t n;                     /* events in the first chunk; the others are full */
};

struct evq {
	size_t len;                     /* read-only: events pending */
	/* private */
	unsigned shift;
	uint64_t cur;                   /* slot being played; its events are in `now` */
	struct evq_run now;
	struct evq_heap late;           /* pushed into slot cur while it plays */
	struct evq_heap far;
	uint64_t turns;                 /* read-only: times the wheel moved events to `now` */
	struct evq_slot *slot;          /* per wheel position */
	uint64_t *bits;                 /* per wheel position: non-empty */
	struct evq_chunk *chunks;
	uint32_t nchunks, cap, free;    /* free: first free chunk + 1 */
};

/* Slots are 2^shift keys wide.  Returns 0 or -ENOMEM. */
int evq_init(struct evq *q, unsigned shift);
void evq_fini(struct evq *q);
/* Aborts when out of memory (the run cannot go on). */
void evq_push(struct evq *q, uint64_t key, uint32_t kind, uint32_t a);
/* The event with the smallest key; q->len must be > 0. */
struct evq_event evq_pop(struct evq *q);
/* The events of the slot being played as it was sorted, in key order (*n
 * of them; not those pushed into it since);
 * after q->turns changed, the caller may prefetch what they will touch. */
static inline const struct evq_event *evq_near(const struct evq *q, size_t *n)
{
	*n = q->now.len - q->now.head;
	return q->now.a + q->now.head;
}

/* Drops every pending event. */
void evq_clear(struct evq *q);

#endif
