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

#define SHIFT 10                        /* slots of 1024 keys */

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A delay: mostly inside the current slot or the wheel, sometimes far
 * beyond it, sometimes zero (an event at the very key just popped). */
static uint64_t delay(uint64_t *s)
{
	switch (rnd(s) % 8) {
	case 0:
		return 0;
	case 1:
		return rnd(s) % (1u << SHIFT);
	case 2:
		return ((uint64_t)EVQ_SLOTS << SHIFT) + rnd(s) % ((uint64_t)EVQ_SLOTS << (SHIFT + 3));
	default:
		return rnd(s) % ((uint64_t)EVQ_SLOTS << SHIFT);
	}
}

static void test_pops_in_key_order(void **unused)
{
	struct evq q;
	uint64_t s = 42, last = 0, now = 0, seq = 0;
	size_t popped = 0, pushed = 0;

	(void)unused;
	assert_int_equal(evq_init(&q, SHIFT), 0);
	for (int i = 0; i < 1000; i++, pushed++) {
		uint64_t key = (delay(&s) << 20) | seq++;

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
				uint64_t key = ((now + delay(&s)) << 20) | (seq++ & 0xfffff);

				evq_push(&q, key, (uint32_t)(key % 16), (uint32_t)key);
			}
	}
	assert_true(popped > 200000);
	assert_int_equal(popped, pushed);
	evq_fini(&q);
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
		cmocka_unit_test(test_equal_times_fifo),
		cmocka_unit_test(test_clear),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
