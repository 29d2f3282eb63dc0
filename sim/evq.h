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
 * played live in a small heap; events of the next EVQ_SLOTS slots hang off
 * the wheel, unsorted, one list per slot; events further out wait in an
 * overflow heap and move onto the wheel as it turns.  Pushing is O(1) for
 * nearly every event, popping sorts a handful of events per slot, and the
 * large set of pending events is never sifted through as in one big heap.
 * The pop order is exactly the key order, as a single heap would give.
 */
#ifndef TETHER_SIM_EVQ_H
#define TETHER_SIM_EVQ_H

#include <stddef.h>
#include <stdint.h>

/* 2^17 slots: the wheel covers 134 s of simulated time with 1024 µs slots,
 * longer than nearly every think time, so the overflow heap stays small. */
#define EVQ_SLOTS (1u << 17)

struct evq_event {
	uint64_t key;
	uint32_t kind, a;               /* the simulator's: what, and to whom */
};

struct evq_heap {                       /* private */
	struct evq_event *a;
	size_t len, cap;
};

struct evq_node {                       /* private: a wheel entry */
	uint64_t key;
	uint32_t a;
	uint32_t next : 28, kind : 4;   /* next: node index + 1, 0 ends the list */
};

struct evq {
	size_t len;                     /* read-only: events pending */
	/* private */
	unsigned shift;
	uint64_t cur;                   /* slot being played; its events are in `now` */
	struct evq_heap now, far;
	uint32_t *head;                 /* per wheel position: first node + 1, 0 empty */
	uint64_t *bits;                 /* per wheel position: non-empty */
	struct evq_node *nodes;
	uint32_t nnodes, cap, free;     /* free: first free node + 1 */
};

/* Slots are 2^shift keys wide.  Returns 0 or -ENOMEM. */
int evq_init(struct evq *q, unsigned shift);
void evq_fini(struct evq *q);
/* kind < 16.  Aborts when out of memory (the run cannot go on). */
void evq_push(struct evq *q, uint64_t key, uint32_t kind, uint32_t a);
/* The event with the smallest key; q->len must be > 0. */
struct evq_event evq_pop(struct evq *q);
/* Drops every pending event. */
void evq_clear(struct evq *q);

#endif
