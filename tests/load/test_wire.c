/*
 * tether-load's wire.c: the response parser split at every byte, input
 * placed against a guard page (an over-read crashes), the cookie jar and
 * request formatting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "wire.h"

static const char answer[] =
	"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Pod: pod2\r\nx-session:  redis \r\n"
	"Set-Cookie: SID=00000000000000ab; Path=/; HttpOnly\r\nSet-Cookie: TETHERID=0123456789abcdef\r\n"
	"Content-Length: 5\r\n\r\nhello";

/* A copy of s[0..n) that ends where an unreadable page begins. */
static char *guarded(const char *s, size_t n, void **map, size_t *maplen)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), len = ((n + pg - 1) / pg + 1) * pg;
	char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(m != MAP_FAILED);
	assert_int_equal(mprotect(m + len - pg, pg, PROT_NONE), 0);
	*map = m;
	*maplen = len;
	memcpy(m + len - pg - n, s, n);
	return m + len - pg - n;
}

/* Feeds s in pieces cut at `cut` (and then byte by byte when cut == 0). */
static int feed(struct wire_resp *r, struct wire_jar *jar, const char *s, size_t n, size_t cut, size_t *total)
{
	size_t off = 0;
	int rc = 0;

	wire_resp_init(r);
	*total = 0;
	while (off < n && rc == 0) {
		size_t len = cut ? (off < cut ? cut - off : n - off) : 1, used = 0;
		void *map;
		size_t maplen;
		char *g = guarded(s + off, len, &map, &maplen);

		rc = wire_resp_feed(r, g, len, &used, jar);
		munmap(map, maplen);
		*total += used;
		off += len;
	}
	return rc;
}

static void test_every_split(void **state)
{
	size_t n = strlen(answer);

	for (size_t cut = 0; cut < n; cut++) {
		struct wire_resp r;
		struct wire_jar jar = { 0 };
		size_t used, vl;
		const char *v;

		assert_int_equal(feed(&r, &jar, answer, n, cut, &used), 1);
		assert_int_equal(used, n);
		assert_int_equal(r.status, 200);
		assert_int_equal(r.session, WS_REDIS);
		assert_string_equal(r.pod, "pod2");
		assert_false(r.close);
		v = wire_jar_get(&jar, "SID", &vl);
		assert_non_null(v);
		assert_int_equal(vl, 16);
		assert_memory_equal(v, "00000000000000ab", 16);
		assert_int_equal(jar.len, strlen("SID=00000000000000ab; TETHERID=0123456789abcdef"));
	}
}

static void test_two_in_a_row_and_close(void **state)
{
	const char two[] = "HTTP/1.1 401 Unauthorized\r\nX-Session: miss\r\nContent-Length: 0\r\n\r\n"
	                   "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok";
	struct wire_resp r;
	struct wire_jar jar = { 0 };
	size_t used, first = strlen(two) - strlen(strstr(two, "HTTP/1.0"));

	wire_resp_init(&r);
	assert_int_equal(wire_resp_feed(&r, two, strlen(two), &used, &jar), 1);
	assert_int_equal(used, first);
	assert_int_equal(r.status, 401);
	assert_int_equal(r.session, WS_MISS);
	wire_resp_init(&r);
	assert_int_equal(wire_resp_feed(&r, two + used, strlen(two) - used, &used, &jar), 1);
	assert_int_equal(r.status, 200);
	assert_true(r.close);               /* HTTP/1.0 without keep-alive */
}

static void test_body_until_close_and_interim(void **state)
{
	const char s[] = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody...";
	struct wire_resp r;
	struct wire_jar jar = { 0 };
	size_t used;

	wire_resp_init(&r);
	assert_int_equal(wire_resp_feed(&r, s, strlen(s), &used, &jar), 0);
	assert_int_equal(used, strlen(s));
	assert_int_equal(r.status, 200);
	assert_true(r.close);
	assert_int_equal(wire_resp_eof(&r), 1);
	wire_resp_init(&r);
	assert_int_equal(wire_resp_feed(&r, s, 30, &used, &jar), 0);
	assert_int_equal(wire_resp_eof(&r), -1);        /* cut inside the head */
}

static void test_refused(void **state)
{
	static const char *const bad[] = {
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
		"SSH-2.0-OpenSSH\r\n\r\n",
		"HTTP/1.1 2x0 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
	};
	char big[WIRE_HEAD_MAX + 64];
	struct wire_resp r;
	struct wire_jar jar = { 0 };
	size_t used;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		wire_resp_init(&r);
		assert_int_equal(wire_resp_feed(&r, bad[i], strlen(bad[i]), &used, &jar), -1);
	}
	memcpy(big, "HTTP/1.1 200 OK\r\nX-Long: ", 25);
	memset(big + 25, 'a', sizeof(big) - 25);
	wire_resp_init(&r);
	assert_int_equal(wire_resp_feed(&r, big, sizeof(big), &used, &jar), -1);
}

static void test_long_cookie_dropped(void **state)
{
	char s[600];
	struct wire_resp r;
	struct wire_jar jar = { 0 };
	size_t used;
	int n = snprintf(s, sizeof(s), "HTTP/1.1 200 OK\r\nSet-Cookie: big=%0200d\r\n"
	                 "Set-Cookie: SID=1; Path=/; %0200d\r\nContent-Length: 0\r\n\r\n", 0, 0);

	wire_resp_init(&r);
	assert_int_equal(wire_resp_feed(&r, s, (size_t)n, &used, &jar), 1);
	assert_int_equal(jar.len, 5);                     /* SID kept (its attributes were cut), big dropped */
	assert_memory_equal(jar.s, "SID=1", 5);
}

static void test_jar(void **state)
{
	struct wire_jar j = { 0 };
	const char *v;
	size_t vl;
	char huge[WIRE_JAR_MAX + 10];

	wire_jar_set(&j, "a=1", 3);
	wire_jar_set(&j, "b=2; Path=/", 11);
	wire_jar_set(&j, "c=3", 3);
	assert_int_equal(j.len, strlen("a=1; b=2; c=3"));
	assert_memory_equal(j.s, "a=1; b=2; c=3", j.len);
	wire_jar_set(&j, "b=22", 4);                     /* replaced, moved last */
	assert_memory_equal(j.s, "a=1; c=3; b=22", j.len);
	wire_jar_set(&j, "c=; Max-Age=0", 13);           /* deleted */
	assert_memory_equal(j.s, "a=1; b=22", j.len);
	wire_jar_set(&j, "b=x; max-age=0", 14);
	wire_jar_set(&j, "a=x; Max-Age=0", 14);
	assert_int_equal(j.len, 0);
	wire_jar_set(&j, "=nameless", 9);
	wire_jar_set(&j, "novalue", 7);
	assert_int_equal(j.len, 0);
	memset(huge, 'x', sizeof(huge));
	huge[0] = 'h';
	huge[1] = '=';
	wire_jar_set(&j, "SID=1", 5);
	wire_jar_set(&j, huge, sizeof(huge));           /* does not fit: dropped, SID kept */
	v = wire_jar_get(&j, "SID", &vl);
	assert_non_null(v);
	assert_int_equal(vl, 1);
	assert_null(wire_jar_get(&j, "SI", &vl));
	assert_null(wire_jar_get(&j, "h", &vl));
}

static void test_format(void **state)
{
	struct wire_jar j = { 0 };
	struct wire_req q = { .method = "POST", .path = "/cart/add?item=", .num = 42, .host = "127.0.0.1:8080",
	                      .jar = &j, .close = true, .empty_body = true };
	char buf[256];
	size_t n;

	wire_jar_set(&j, "SID=ab", 6);
	n = wire_format_request(buf, sizeof(buf), &q);
	assert_int_equal(n, strlen("POST /cart/add?item=42 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nCookie: SID=ab\r\n"
	                           "Content-Length: 0\r\nConnection: close\r\n\r\n"));
	assert_memory_equal(buf, "POST /cart/add?item=42 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nCookie: SID=ab\r\n"
	                    "Content-Length: 0\r\nConnection: close\r\n\r\n", n);
	q = (struct wire_req){ .method = "GET", .path = "/login?user=u", .num = 0, .host = "h" };
	n = wire_format_request(buf, sizeof(buf), &q);
	assert_memory_equal(buf, "GET /login?user=u0 HTTP/1.1\r\nHost: h\r\n\r\n", n);
	assert_int_equal(wire_format_request(buf, 10, &q), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_split),
		cmocka_unit_test(test_two_in_a_row_and_close),
		cmocka_unit_test(test_body_until_close_and_interim),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_long_cookie_dropped),
		cmocka_unit_test(test_jar),
		cmocka_unit_test(test_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
