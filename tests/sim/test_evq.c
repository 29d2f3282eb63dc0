/*
 * The simulator's event queue (sim/evq.c) pops exactly in key order, as one
 * heap would, whatever mix of near (same slot), wheel and overflow events it
 * holds, while events are pushed between pops as a simulation does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "evq.h"

/* Keys are time << 20 | counter; slots are 2^SHIFT keys = 16 time units. */
#define SHIFT 24
#define SLOT_T (1u << (SHIFT - 20))
#define WHEEL_T ((uint64_t)EVQ_SLOTS * SLOT_T)

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A delay in time units: sometimes zero (an event at the very time just
 * popped), sometimes inside the slot being played, sometimes beyond the
 * wheel (overflow), else within `spread` slots. */
static uint64_t delay(uint64_t *s, uint64_t spread)
{
	switch (rnd(s) % 8) {
	case 0:
		return 0;
	case 1:
		return rnd(s) % SLOT_T;
	case 2:
		return WHEEL_T + rnd(s) % (WHEEL_T * 8);
	default:
		return rnd(s) % (spread * SLOT_T);
	}
}

/* Pops are never below the last pop (every push is at or after it), and
 * everything pushed comes out with its payload: the queue is in key order. */
static void pops_in_key_order(uint64_t spread)
{
	struct evq q;
	uint64_t s = 42, last = 0, now = 0, seq = 0;
	size_t popped = 0, pushed = 0;

	assert_int_equal(evq_init(&q, SHIFT), 0);
	for (int i = 0; i < 1000; i++, pushed++) {
		uint64_t key = (delay(&s, spread) << 20) | (seq++ & 0xfffff);

		evq_push(&q, key, (uint32_t)(key % 16), (uint32_t)key);
	}
	while (q.len) {
		struct evq_event e = evq_pop(&q);

		assert_true(e.key >= last);
		assert_int_equal(e.kind, e.key % 16);   /* the payload travels with its key */
		assert_int_equal(e.a, (uint32_t)e.key);
		last = e.key;
		now = e.key >> 20;
		popped++;
		/* keep the queue busy for a while: one or two new events per pop */
		if (popped < 200000)
			for (uint64_t k = 0, n = 1 + rnd(&s) % 2; k < n && q.len < 5000; k++, pushed++) {
				uint64_t key = ((now + delay(&s, spread)) << 20) | (seq++ & 0xfffff);

				evq_push(&q, key, (uint32_t)(key % 16), (uint32_t)key);
			}
	}
	assert_true(popped > 200000);
	assert_int_equal(popped, pushed);
	evq_fini(&q);
}

/* Events spread over the whole wheel: about one per slot. */
static void test_pops_in_key_order(void **unused)
{
	(void)unused;
	pops_in_key_order(EVQ_SLOTS);
}

/* Many events per slot: the slot's sort and the inserts into the slot
 * being played do the ordering. */
static void test_pops_in_key_order_dense(void **unused)
{
	(void)unused;
	pops_in_key_order(64);
}

/* Equal times keep their push order (the low key bits are a counter). */
static void test_equal_times_fifo(void **unused)
{
	struct evq q;

	(void)unused;
	assert_int_equal(evq_init(&q, SHIFT), 0);
	for (uint32_t i = 0; i < 100; i++)
		evq_push(&q, (5000ull << 20) | i, 1, i);
	for (uint32_t i = 0; i < 100; i++)
		assert_int_equal(evq_pop(&q).a, i);
	evq_fini(&q);
}

static void test_clear(void **unused)
{
	struct evq q;

	(void)unused;
	assert_int_equal(evq_init(&q, SHIFT), 0);
	for (uint64_t i = 0; i < 50; i++)
		evq_push(&q, i << 40, 2, (uint32_t)i);
	evq_pop(&q);
	evq_clear(&q);
	assert_int_equal(q.len, 0);
	evq_push(&q, 77ull << 30, 9, 1);
	assert_int_equal(evq_pop(&q).kind, 9);
	assert_int_equal(q.len, 0);
	evq_fini(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pops_in_key_order),
		cmocka_unit_test(test_pops_in_key_order_dense),
		cmocka_unit_test(test_equal_times_fifo),
		cmocka_unit_test(test_clear),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
