/*
 * Guards of the cookie peek and Set-Cookie insertion (docs/cookie-affinity.md)
 * against scripts/mutants.py's kind of bug: exact values out of many
 * spellings of a Cookie header, the exact insertion point whatever way the
 * response is split, interim 1xx responses, the exact Set-Cookie line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "tether/http.h"

struct peek_case {
	const char *cookie_lines;       /* header lines, each ending in \r\n */
	const char *want;               /* the TETHERID value, NULL = none */
};

static const struct peek_case cases[] = {
	{ "Cookie: TETHERID=abc\r\n", "abc" },
	{ "cookie: TETHERID=abc\r\n", "abc" },
	{ "COOKIE: TETHERID=abc\r\n", "abc" },
	{ "CoOkIe:TETHERID=abc\r\n", "abc" },
	{ "Cookie: TETHERIDX=1; TETHERID=abc\r\n", "abc" },
	{ "Cookie: XTETHERID=1; TETHERID=abc\r\n", "abc" },
	{ "Cookie: TETHERIDX=1\r\n", NULL },
	{ "Cookie: TETHERI=1\r\n", NULL },
	{ "Cookie: tetherid=1\r\n", NULL },         /* cookie names are case-sensitive */
	{ "Cookie: a=1; TETHERID=abc; b=2\r\n", "abc" },
	{ "Cookie: a=1;TETHERID=abc;b=2\r\n", "abc" },
	{ "Cookie: TETHERID=\"abc\"\r\n", "abc" },
	{ "Cookie: TETHERID=\"\"\r\n", "" },
	{ "Cookie: TETHERID=\"a\r\n", "\"a" },
	{ "Cookie: TETHERID = abc ; b=2\r\n", "abc" },
	{ "Cookie: TETHERID=abc  \r\n", "abc" },
	{ "Cookie: TETHERID=abc\t; b=2\r\n", "abc" },
	{ "Cookie: TETHERID\r\n", NULL },
	{ "Cookie: TETHERID; TETHERID=x\r\n", "x" },
	{ "Cookie: a=1\r\nCookie: TETHERID=second\r\n", "second" },
	{ "Cookie: TETHERID=first\r\nCookie: TETHERID=second\r\n", "first" },
	{ "Cookies: TETHERID=abc\r\n", NULL },
	{ "X-Cookie: TETHERID=abc\r\n", NULL },
	{ "Set-Cookie: TETHERID=abc\r\n", NULL },
	{ "", NULL },
};

static void test_peek_values(void **unused)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char req[512];
		const char *val = (const char *)1;
		size_t len = 0;
		int n = snprintf(req, sizeof(req), "GET /a HTTP/1.1\r\nHost: x\r\n%s\r\nBODY", cases[i].cookie_lines);
		int rc = http_peek_cookie(req, (size_t)n, "TETHERID", 8, &val, &len);

		if (rc != n - 4)
			fail_msg("case %zu: head length %d, want %d", i, rc, n - 4);
		if (!cases[i].want) {
			if (val)
				fail_msg("case %zu: found %.*s", i, (int)len, val);
		} else if (!val || len != strlen(cases[i].want) || memcmp(val, cases[i].want, len) != 0) {
			fail_msg("case %zu (%s): got %.*s, want %s", i, cases[i].cookie_lines, val ? (int)len : 4,
			         val ? val : "NULL", cases[i].want);
		}
		/* every shorter prefix is partial (it is a valid head so far) */
		for (int cut = 1; cut < n - 4; cut++)
			if (http_peek_cookie(req, (size_t)cut, "TETHERID", 8, &val, &len) != HTTP_PARTIAL)
				fail_msg("case %zu: prefix %d not partial", i, cut);
	}
}

/* Not an HTTP/1.x request head: routed by the fallback and passed through
 * untouched, at whatever length the decision can be made. */
static void test_not_http(void **unused)
{
	static const char *const bad[] = {
		" / HTTP/1.1\r\n\r\n", "GET  / HTTP/1.1\r\n\r\n", "GET / HTTP/2.0\r\n\r\n", "GET / HTTP/1.2\r\n\r\n",
		"GET / FTP/1.1\r\n\r\n", "GET /\r\n\r\n", "GET / HTTP/1.1\r\nHost x\r\n\r\n",
		"GET / HTTP/1.1\r\n folded: x\r\n\r\n", "GET / HTTP/1.1\r\nA: b\x01" "c\r\n\r\n",
		"GET / HTTP/1.1\rX\r\n\r\n", "GET / HTTP/1.1\r\n: empty\r\n\r\n", "\x16\x03\x01\x02\x00\x01",
		"G(T / HTTP/1.1\r\n\r\n", "GET /a\x7f" "b HTTP/1.1\r\n\r\n", "GET / HTTP/1.1\r\nA: b\r\n\rX",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *val;
		size_t len;
		int rc = http_peek_cookie(bad[i], strlen(bad[i]), "TETHERID", 8, &val, &len);

		if (rc != HTTP_NOT_HTTP)
			fail_msg("case %zu: %d, want HTTP_NOT_HTTP", i, rc);
	}
}

/* Feeds resp split at every point and one byte at a time; the insertion
 * point must always be `want` bytes in (0 = never). */
static size_t inject_at(const char *resp, size_t split)
{
	struct http_inject in;
	size_t len = strlen(resp), pos = 0, at = 0;

	http_inject_init(&in);
	while (pos < len && !in.done) {
		size_t chunk = split ? (len - pos < split ? len - pos : split) : len - pos;
		bool insert = false;
		size_t fwd = http_inject_scan(&in, resp + pos, chunk, &insert);

		assert_true(fwd <= chunk);
		if (insert) {
			assert_int_equal(at, 0);
			at = pos + fwd;
		}
		pos += insert ? fwd : chunk;
	}
	return at;
}

static void test_inject_points(void **unused)
{
	static const struct { const char *resp; const char *after; } r[] = {
		{ "HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody", "HTTP/1.1 200 OK\r\n" },
		{ "HTTP/1.0 404 Not Found\nA: b\n\nbody", "HTTP/1.0 404 Not Found\n" },
		{ "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nA: b\r\n\r\n", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n" },
		{ "HTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 302 Found\r\n\r\n",
		  "HTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 302 Found\r\n" },
		{ "HTTP/1.1 500 Oops\r\n\r\n", "HTTP/1.1 500 Oops\r\n" },
		{ "SSH-2.0-OpenSSH\r\n", NULL },
		{ "HTTP/2 200\r\n\r\n", NULL },
		{ "HTTP/1.1 600 Nope\r\n\r\n", NULL },
		{ "HTTP/1.1 099 Nope\r\n\r\n", NULL },
		{ "http/1.1 200 OK\r\n\r\n", NULL },
	};

	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++)
		for (size_t split = 0; split <= strlen(r[i].resp); split++) {
			size_t want = r[i].after ? strlen(r[i].after) : 0, got = inject_at(r[i].resp, split);

			if (got != want)
				fail_msg("response %zu split %zu: inserted at %zu, want %zu", i, split, got, want);
		}
}

static void test_set_cookie_lines(void **unused)
{
	char out[256];

	assert_int_equal(http_format_set_cookie(out, sizeof(out), "TETHERID", "0123456789abcdef", 0),
	                 (int)strlen("Set-Cookie: TETHERID=0123456789abcdef; Path=/; HttpOnly\r\n"));
	assert_string_equal(out, "Set-Cookie: TETHERID=0123456789abcdef; Path=/; HttpOnly\r\n");
	http_format_set_cookie(out, sizeof(out), "sid", "v", 3600);
	assert_string_equal(out, "Set-Cookie: sid=v; Path=/; HttpOnly; Max-Age=3600\r\n");
	/* too small: refused, never cut */
	assert_int_equal(http_format_set_cookie(out, 20, "TETHERID", "0123456789abcdef", 0), -1);
	assert_int_equal(http_format_set_cookie(out, strlen("Set-Cookie: a=b; Path=/; HttpOnly\r\n"), "a", "b", 0), -1);
	assert_int_equal(http_format_set_cookie(out, strlen("Set-Cookie: a=b; Path=/; HttpOnly\r\n") + 1, "a", "b", 0),
	                 (int)strlen("Set-Cookie: a=b; Path=/; HttpOnly\r\n"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_peek_values),
		cmocka_unit_test(test_not_http),
		cmocka_unit_test(test_inject_points),
		cmocka_unit_test(test_set_cookie_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
