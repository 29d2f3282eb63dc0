/*
 * HTTP peek and Set-Cookie insertion.  Every input is copied so that it ends
 * exactly at a PROT_NONE guard page: any read past `len` crashes the test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "guard.h"

#include "tether/http.h"

struct peek_case {
	const char *in;
	int complete;           /* 1: a complete head; 0: not HTTP */
	const char *cookie;     /* expected TETHERID value, or NULL */
};

static const struct peek_case peeks[] = {
	{ "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1, NULL },
	{ "GET / HTTP/1.1\r\nCookie: TETHERID=abc\r\n\r\n", 1, "abc" },
	{ "GET / HTTP/1.0\r\ncookie:TETHERID=abc;x=1\r\n\r\n", 1, "abc" },
	{ "POST /x?y HTTP/1.1\r\nCOOKIE: a=1; TETHERID = \"q v\" ; b=2\r\nContent-Length: 3\r\n\r\n", 1, "q v" },
	{ "GET / HTTP/1.1\r\nCookie: XTETHERID=no; TETHERIDX=no\r\n\r\n", 1, NULL },
	{ "GET / HTTP/1.1\r\nCookie: a=1\r\nCookie: TETHERID=second\r\n\r\n", 1, "second" },
	{ "GET / HTTP/1.1\nCookie: TETHERID=lf\n\n", 1, "lf" },
	{ "GET / HTTP/1.1\r\nX-Cookie: TETHERID=no\r\n\r\n", 1, NULL },
	{ "GET / HTTP/1.1\r\nCookie: TETHERID\r\n\r\n", 1, NULL },
	{ "GET / HTTP/1.1\r\nCookie: TETHERID=\r\n\r\n", 1, "" },
	{ "\x16\x03\x01\x02\x00", 0, NULL },
	{ "SSH-2.0-OpenSSH\r\n", 0, NULL },
	{ "GET / HTTP/2\r\n\r\n", 0, NULL },
	{ "GET  / HTTP/1.1\r\n\r\n", 0, NULL },
	{ "GET / HTTP/1.1\r\n folded: no\r\n\r\n", 0, NULL },
	{ "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 0, NULL },
	{ "GET / HTTP/1.1\rX", 0, NULL },
	{ " GET / HTTP/1.1\r\n\r\n", 0, NULL },
};

static void test_peek_table(void **unused)
{
	for (size_t c = 0; c < sizeof(peeks) / sizeof(peeks[0]); c++) {
		const struct peek_case *pc = &peeks[c];
		size_t len = strlen(pc->in);
		const char *val;
		size_t vl;
		int r;

		/* every strict prefix of a valid head is partial, never an error */
		for (size_t k = 0; k < len && pc->complete; k++) {
			r = http_peek_cookie(guarded(pc->in, k), k, "TETHERID", 8, &val, &vl);
			if (r != HTTP_PARTIAL)
				fail_msg("case %zu prefix %zu: %d", c, k, r);
			if (val)        /* a cut head (over max_head) is routed by fallback */
				fail_msg("case %zu prefix %zu: a cookie from a partial head", c, k);
		}
		r = http_peek_cookie(guarded(pc->in, len), len, "TETHERID", 8, &val, &vl);
		if (!pc->complete) {
			if (r != HTTP_NOT_HTTP)
				fail_msg("case %zu: want not-HTTP, got %d", c, r);
			assert_null(val);
			continue;
		}
		if (r != (int)len)
			fail_msg("case %zu: want %zu, got %d", c, len, r);
		if (!pc->cookie) {
			assert_null(val);
		} else {
			assert_non_null(val);
			assert_int_equal(vl, strlen(pc->cookie));
			assert_memory_equal(val, pc->cookie, vl);
		}
	}
}

static void test_peek_body_after_head(void **unused)
{
	static const char in[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY";
	const char *val;
	size_t vl;

	assert_int_equal(http_peek_cookie(guarded(in, sizeof(in) - 1), sizeof(in) - 1, "T", 1, &val, &vl),
	                 (int)(sizeof(in) - 1 - 4));
}

static void test_peek_many_headers(void **unused)
{
	static char in[12000];
	const char *val;
	size_t vl, n = 0;

	n += (size_t)sprintf(in, "GET / HTTP/1.1\r\n");
	for (int i = 0; i < 500; i++)
		n += (size_t)sprintf(in + n, "X-H%d: v\r\n", i);
	n += (size_t)sprintf(in + n, "Cookie: TETHERID=deep\r\n\r\n");
	assert_int_equal(http_peek_cookie(guarded(in, n), n, "TETHERID", 8, &val, &vl), (int)n);
	assert_int_equal(vl, 4);
}

/* Runs the injector over `in` cut at the given split points; returns the output. */
static char *inject_split(const char *in, const size_t *cuts, int ncuts, int *inserted)
{
	static char out[8192];
	static const char hdr[] = "Set-Cookie: X=1\r\n";
	struct http_inject ij;
	size_t len = strlen(in), o = 0, start = 0;

	*inserted = 0;
	http_inject_init(&ij);
	for (int c = 0; c <= ncuts; c++) {
		size_t end = c < ncuts ? cuts[c] : len;
		const char *chunk = guarded(in + start, end - start);
		size_t clen = end - start;

		while (clen > 0) {
			bool ins = false;
			size_t k = ij.done ? clen : http_inject_scan(&ij, chunk, clen, &ins);

			memcpy(out + o, chunk, k);
			o += k;
			if (ins) {
				memcpy(out + o, hdr, sizeof(hdr) - 1);
				o += sizeof(hdr) - 1;
				(*inserted)++;
			}
			chunk += k;
			clen -= k;
		}
		start = end;
	}
	out[o] = '\0';
	return out;
}

struct inj_case {
	const char *in, *want;
};

static const struct inj_case injs[] = {
	{ "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", "HTTP/1.1 200 OK\r\nSet-Cookie: X=1\r\nContent-Length: 2\r\n\r\nhi" },
	{ "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
	  "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nSet-Cookie: X=1\r\n\r\n" },
	{ "HTTP/1.1 204 No Content\r\n\r\n", "HTTP/1.1 204 No Content\r\nSet-Cookie: X=1\r\n\r\n" },
	{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nc\r\nHTTP/1.1 200\r\n0\r\n\r\n",
	  "HTTP/1.1 200 OK\r\nSet-Cookie: X=1\r\nTransfer-Encoding: chunked\r\n\r\nc\r\nHTTP/1.1 200\r\n0\r\n\r\n" },
	{ "HTTP/1.0 200 OK\n\nbody", "HTTP/1.0 200 OK\nSet-Cookie: X=1\r\n\nbody" },
	{ "SSH-2.0-x\r\nHTTP/1.1 200 OK\r\n", "SSH-2.0-x\r\nHTTP/1.1 200 OK\r\n" },
	{ "HTTP/2 200\r\n\r\n", "HTTP/2 200\r\n\r\n" },
	{ "\x16\x03\x01binary", "\x16\x03\x01binary" },
};

static void test_inject_every_split(void **unused)
{
	for (size_t c = 0; c < sizeof(injs) / sizeof(injs[0]); c++) {
		const char *in = injs[c].in;
		size_t len = strlen(in);
		int ins;

		if (len == 0)
			continue;
		/* whole */
		assert_string_equal(inject_split(in, NULL, 0, &ins), injs[c].want);
		assert_int_equal(ins, strcmp(in, injs[c].want) != 0);   /* inserted once, or never */
		/* one cut at every point */
		for (size_t k = 1; k < len; k++) {
			size_t cuts[1] = { k };

			if (strcmp(inject_split(in, cuts, 1, &ins), injs[c].want) != 0)
				fail_msg("case %zu cut at %zu: %s", c, k, inject_split(in, cuts, 1, &ins));
		}
		/* byte by byte */
		{
			size_t cuts[256];
			int n = 0;

			for (size_t k = 1; k < len && n < 256; k++)
				cuts[n++] = k;
			assert_string_equal(inject_split(in, cuts, n, &ins), injs[c].want);
		}
	}
}

static void test_format_set_cookie(void **unused)
{
	char b[128];

	assert_int_equal(http_format_set_cookie(b, sizeof(b), "T", "v", 0), (int)strlen("Set-Cookie: T=v; Path=/; HttpOnly\r\n"));
	assert_string_equal(b, "Set-Cookie: T=v; Path=/; HttpOnly\r\n");
	http_format_set_cookie(b, sizeof(b), "T", "v", 1800);
	assert_string_equal(b, "Set-Cookie: T=v; Path=/; HttpOnly; Max-Age=1800\r\n");
	assert_int_equal(http_format_set_cookie(b, 10, "T", "v", 0), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_peek_table),
		cmocka_unit_test(test_peek_body_after_head),
		cmocka_unit_test(test_peek_many_headers),
		cmocka_unit_test(test_inject_every_split),
		cmocka_unit_test(test_format_set_cookie),
	};
	return cmocka_run_group_tests(tests, guard_setup, guard_teardown);
}
