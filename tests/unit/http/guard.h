/*
 * Inputs placed against a guard page, for the parsers of src/http: a copy
 * of the input ends exactly where a PROT_NONE page starts, so any read
 * past `len` crashes the test (picohttpparser's test.c does the same).
 * Use guard_setup / guard_teardown as the cmocka group fixtures.
 */
#ifndef TETHER_TEST_GUARD_H
#define TETHER_TEST_GUARD_H

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static char *guard_base;
static size_t guard_page;

/* A copy of s[0..len) ending right before the guard page. */
static const char *guarded(const void *s, size_t len)
{
	char *dst = guard_base + guard_page - len;

	assert_true(len <= guard_page);
	memcpy(dst, s, len);
	return dst;
}

static int guard_setup(void **state)
{
	guard_page = (size_t)sysconf(_SC_PAGESIZE) * 4;
	guard_base = mmap(NULL, guard_page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (guard_base == MAP_FAILED)
		return -1;
	return mprotect(guard_base + guard_page, guard_page, PROT_NONE);
}

static int guard_teardown(void **state)
{
	munmap(guard_base, guard_page * 2);
	return 0;
}

#endif
