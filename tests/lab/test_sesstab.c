/*
 * test_sesstab.c - tether-pod's session table and address set (cmocka).
 *
 * A reference model (a plain array searched linearly) runs the same random
 * puts, finds, deletes, sweeps and clock steps as the table; after every
 * step they must agree on every id ever used.  Small tables and ids whose
 * slots collide make clusters that wrap around the end of the array, which
 * is where backward-shift deletion goes wrong if it does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sesstab.h"

#define IDS 300

struct model {
	uint64_t sid[IDS];
	double expires[IDS];    /* 0: absent */
};

static uint64_t rng_state = 42;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void agree(struct sesstab *t, struct model *m, double now)
{
	size_t live = 0;

	for (int i = 0; i < IDS; i++) {
		struct sess *s = sesstab_find(t, m->sid[i], now);
		int want = m->expires[i] > now;

		live += (size_t)want;
		assert_int_equal(s != NULL, want);
		if (s)
			assert_true(s->expires == m->expires[i] && s->user[0] == (char)('a' + i % 26));
	}
	assert_int_equal(sesstab_sweep(t, now), live);
}

static void random_ops(size_t slots, size_t max_slots)
{
	struct sesstab t;
	struct model m = { { 0 }, { 0 } };
	double now = 1000.;

	for (int i = 0; i < IDS; i++)
		m.sid[i] = rnd() | 1;
	assert_int_equal(sesstab_init(&t, slots, max_slots), 0);
	for (int step = 0; step < 20000; step++) {
		int i = (int)(rnd() % IDS), op = (int)(rnd() % 10);

		if (op < 5) {
			double exp = now + (double)(rnd() % 50);
			struct sess *s = sesstab_put(&t, m.sid[i], exp, now);

			if (s) {
				s->user[0] = (char)('a' + i % 26);
				m.expires[i] = exp;
			} else {        /* only when at the bound with 3/4 of it live */
				assert_true(t.mask + 1 == max_slots);
			}
		} else if (op < 7) {
			sesstab_del(&t, m.sid[i]);
			m.expires[i] = 0;
		} else if (op < 9) {
			now += 1.;
		} else {
			sesstab_sweep(&t, now);
		}
		if (step % 97 == 0)
			agree(&t, &m, now);
	}
	agree(&t, &m, now);
	sesstab_fini(&t);
}

static void test_table_matches_model_growing(void **state)
{
	random_ops(4, 1024);
}

static void test_table_matches_model_bounded(void **state)
{
	random_ops(8, 64);
}

static void test_expired_entry_is_gone(void **state)
{
	struct sesstab t;

	assert_int_equal(sesstab_init(&t, 16, 16), 0);
	assert_non_null(sesstab_put(&t, 7, 10., 0.));
	assert_non_null(sesstab_find(&t, 7, 9.99));
	assert_null(sesstab_find(&t, 7, 10.));
	assert_int_equal(t.used, 0);
	assert_null(sesstab_find(&t, 0, 0.));   /* 0 is no id */
	sesstab_fini(&t);
}

static void test_addrset_counts_distinct(void **state)
{
	struct addrset s;
	unsigned char a[16] = { 0 };

	assert_int_equal(addrset_init(&s, 4), 0);
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 1000; i++) {
			a[10] = a[11] = 0xff;
			a[12] = 127;
			a[14] = (unsigned char)(i >> 8);
			a[15] = (unsigned char)i;
			assert_int_equal(addrset_add(&s, a), 0);
		}
	}
	memset(a, 0, sizeof(a));
	addrset_add(&s, a);
	addrset_add(&s, a);
	assert_int_equal(s.count, 1001);
	addrset_fini(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_matches_model_growing),
		cmocka_unit_test(test_table_matches_model_bounded),
		cmocka_unit_test(test_expired_entry_is_gone),
		cmocka_unit_test(test_addrset_counts_distinct),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
