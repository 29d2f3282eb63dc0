/*
 * The PROXY protocol parser and writer (src/http/proxy_proto.c).  Every
 * input is copied so that it ends exactly at a PROT_NONE guard page: any
 * read past `len` crashes the test.  Every strict prefix of a valid header
 * must be PP_PARTIAL, never a verdict.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "guard.h"

#include "tether/proxy_proto.h"

/* Parses in[0..len) and each of its strict prefixes (which must be
 * partial); returns the verdict on the whole. */
static int parse_all_prefixes(const void *in, size_t len, struct pp_info *out, bool valid)
{
	for (size_t k = 0; valid && k < len; k++) {
		struct pp_info tmp;
		int r = pp_parse(guarded(in, k), k, &tmp);

		if (r != PP_PARTIAL)
			fail_msg("prefix %zu of a valid header: %d", k, r);
	}
	return pp_parse(guarded(in, len), len, out);
}

struct v1_case {
	const char *in;
	int family;             /* -1: invalid */
	const char *src, *dst;
	unsigned sp, dp;
};

static const struct v1_case v1_cases[] = {
	{ "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", PP_AF_INET, "192.168.0.1", "192.168.0.11", 56324, 443 },
	{ "PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", PP_AF_INET, "0.0.0.0", "255.255.255.255", 0, 65535 },
	{ "PROXY TCP6 2001:db8::1 ::1 1 2\r\n", PP_AF_INET6, "2001:db8::1", "::1", 1, 2 },
	{ "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff FFFF:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
	  PP_AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, 65535 },
	{ "PROXY UNKNOWN\r\n", PP_AF_UNSPEC, NULL, NULL, 0, 0 },
	/* the worst case of the spec: 107 bytes */
	{ "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
	  PP_AF_UNSPEC, NULL, NULL, 0, 0 },
	{ "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", -1, NULL, NULL, 0, 0 },         /* heading zero */
	{ "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", -1, NULL, NULL, 0, 0 },
	{ "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", -1, NULL, NULL, 0, 0 },
	{ "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", -1, NULL, NULL, 0, 0 },
	{ "PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", -1, NULL, NULL, 0, 0 },
	{ "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", -1, NULL, NULL, 0, 0 },
	{ "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", -1, NULL, NULL, 0, 0 },        /* trailing space */
	{ "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", -1, NULL, NULL, 0, 0 },        /* two spaces */
	{ "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", -1, NULL, NULL, 0, 0 },
	{ "PROXY TCP4 ::1 ::1 1 2\r\n", -1, NULL, NULL, 0, 0 },                  /* family mismatch */
	{ "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", -1, NULL, NULL, 0, 0 },
	{ "PROXY TCP6 1::2::3 ::1 1 2\r\n", -1, NULL, NULL, 0, 0 },
	{ "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", -1, NULL, NULL, 0, 0 },
	{ "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", -1, NULL, NULL, 0, 0 },
	{ "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", -1, NULL, NULL, 0, 0 },           /* lone LF */
	{ "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", -1, NULL, NULL, 0, 0 },          /* lone CR */
	{ "PROXY UNKNOWNX\r\n", -1, NULL, NULL, 0, 0 },
	{ "PROXY\r\n", -1, NULL, NULL, 0, 0 },
	{ "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", -1, NULL, NULL, 0, 0 },
	{ "GET / HTTP/1.1\r\n\r\n", -1, NULL, NULL, 0, 0 },
	{ "PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n", -1, NULL, NULL, 0, 0 },
};

static void test_v1_table(void **unused)
{
	for (size_t c = 0; c < sizeof(v1_cases) / sizeof(v1_cases[0]); c++) {
		const struct v1_case *vc = &v1_cases[c];
		size_t len = strlen(vc->in);
		char withdata[256];
		struct pp_info pi;
		int r;

		/* payload after the header is never consumed */
		snprintf(withdata, sizeof(withdata), "%sGET / HTTP/1.1\r\n\r\n", vc->in);
		r = parse_all_prefixes(withdata, strlen(withdata), &pi, false);
		if (vc->family < 0) {
			if (r != PP_INVALID)
				fail_msg("case %zu (%s): want invalid, got %d", c, vc->in, r);
			continue;
		}
		r = parse_all_prefixes(vc->in, len, &pi, true);
		if (r != (int)len)
			fail_msg("case %zu (%s): want %zu, got %d", c, vc->in, len, r);
		assert_int_equal(pp_parse(guarded(withdata, strlen(withdata)), strlen(withdata), &pi), (int)len);
		assert_int_equal(pi.version, 1);
		assert_int_equal(pi.command, PP_CMD_PROXY);
		assert_int_equal(pi.family, vc->family);
		if (vc->family != PP_AF_UNSPEC) {
			char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
			int af = vc->family == PP_AF_INET ? AF_INET : AF_INET6;

			assert_non_null(inet_ntop(af, pi.src, s, sizeof(s)));
			assert_non_null(inet_ntop(af, pi.dst, d, sizeof(d)));
			assert_string_equal(s, vc->src);
			assert_string_equal(d, vc->dst);
			assert_int_equal(pi.src_port, vc->sp);
			assert_int_equal(pi.dst_port, vc->dp);
		}
	}
}

/* A line that has no CRLF in its first 107 bytes is invalid, not partial. */
static void test_v1_too_long(void **unused)
{
	char line[200];
	struct pp_info pi;

	memset(line, 'a', sizeof(line));
	memcpy(line, "PROXY UNKNOWN ", 14);
	for (size_t n = 14; n <= sizeof(line); n++) {
		int r = pp_parse(guarded(line, n), n, &pi);

		assert_int_equal(r, n < PP_V1_MAX - 1 ? PP_PARTIAL : PP_INVALID);
	}
	/* CRLF ending at byte 108: one too many */
	line[PP_V1_MAX - 1] = '\r';
	line[PP_V1_MAX] = '\n';
	assert_int_equal(pp_parse(guarded(line, PP_V1_MAX + 1), PP_V1_MAX + 1, &pi), PP_INVALID);
	/* ending at byte 107: the longest valid line */
	line[PP_V1_MAX - 2] = '\r';
	line[PP_V1_MAX - 1] = '\n';
	assert_int_equal(pp_parse(guarded(line, PP_V1_MAX), PP_V1_MAX, &pi), PP_V1_MAX);
}

static const unsigned char sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

/* A v2 header: version/command, family, address block and TLVs. */
static size_t v2(unsigned char *out, unsigned vc, unsigned fam, const void *block, size_t blen)
{
	memcpy(out, sig, 12);
	out[12] = (unsigned char)vc;
	out[13] = (unsigned char)fam;
	out[14] = (unsigned char)(blen >> 8);
	out[15] = (unsigned char)blen;
	if (blen)
		memcpy(out + 16, block, blen);
	return 16 + blen;
}

static uint32_t crc32c_ref(const unsigned char *p, size_t n)
{
	uint32_t crc = 0xFFFFFFFFu;

	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (int k = 0; k < 8; k++)
			crc = crc & 1 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
	}
	return ~crc;
}

static void test_v2(void **unused)
{
	static const unsigned char a4[12] = { 10, 0, 0, 1, 10, 0, 0, 2, 0x1F, 0x90, 0x00, 0x50 };
	unsigned char a6[36] = { 0 }, unixb[216] = { 0 }, buf[1200], blk[300];
	struct pp_info pi;
	size_t n;
	uint32_t crc;

	/* TCP over IPv4, then payload */
	n = v2(buf, 0x21, 0x11, a4, sizeof(a4));
	memcpy(buf + n, "DATA", 4);
	assert_int_equal(parse_all_prefixes(buf, n, &pi, true), (int)n);
	assert_int_equal(pp_parse(guarded(buf, n + 4), n + 4, &pi), (int)n);
	assert_int_equal(pi.version, 2);
	assert_int_equal(pi.command, PP_CMD_PROXY);
	assert_int_equal(pi.family, PP_AF_INET);
	assert_memory_equal(pi.src, a4, 4);
	assert_memory_equal(pi.dst, a4 + 4, 4);
	assert_int_equal(pi.src_port, 8080);
	assert_int_equal(pi.dst_port, 80);

	/* TCP over IPv6 */
	a6[15] = 1;
	a6[31] = 2;
	a6[32] = 0xff;
	a6[35] = 7;
	n = v2(buf, 0x21, 0x21, a6, sizeof(a6));
	assert_int_equal(parse_all_prefixes(buf, n, &pi, true), (int)n);
	assert_int_equal(pi.family, PP_AF_INET6);
	assert_int_equal(pi.src[15], 1);
	assert_int_equal(pi.dst[15], 2);
	assert_int_equal(pi.src_port, 0xff00);
	assert_int_equal(pi.dst_port, 7);

	/* LOCAL: the block is skipped, whatever it holds */
	n = v2(buf, 0x20, 0x00, NULL, 0);
	assert_int_equal(parse_all_prefixes(buf, n, &pi, true), 16);
	assert_int_equal(pi.command, PP_CMD_LOCAL);
	n = v2(buf, 0x20, 0x11, a4, sizeof(a4));
	assert_int_equal(parse_all_prefixes(buf, n, &pi, true), (int)n);
	assert_int_equal(pi.command, PP_CMD_LOCAL);

	/* UNSPEC and UNIX: accepted, no usable address */
	n = v2(buf, 0x21, 0x00, NULL, 0);
	assert_int_equal(parse_all_prefixes(buf, n, &pi, true), 16);
	assert_int_equal(pi.family, PP_AF_UNSPEC);
	n = v2(buf, 0x21, 0x31, unixb, sizeof(unixb));
	assert_int_equal(parse_all_prefixes(buf, n, &pi, true), (int)n);
	assert_int_equal(pi.family, PP_AF_UNSPEC);

	/* TLVs: a NOOP and an ALPN are skipped */
	memcpy(blk, a4, 12);
	memcpy(blk + 12, "\x04\x00\x02zz\x01\x00\x02h2", 10);
	n = v2(buf, 0x21, 0x11, blk, 22);
	assert_int_equal(parse_all_prefixes(buf, n, &pi, true), (int)n);
	assert_int_equal(pi.src_port, 8080);
	/* a TLV that runs past the header */
	memcpy(blk + 12, "\x04\x00\x05zz", 5);
	n = v2(buf, 0x21, 0x11, blk, 17);
	assert_int_equal(pp_parse(guarded(buf, n), n, &pi), PP_INVALID);
	/* a TLV header cut short */
	n = v2(buf, 0x21, 0x11, blk, 14);
	assert_int_equal(pp_parse(guarded(buf, n), n, &pi), PP_INVALID);

	/* CRC32C: right, then wrong */
	memcpy(blk + 12, "\x03\x00\x04\x00\x00\x00\x00", 7);
	n = v2(buf, 0x21, 0x11, blk, 19);
	crc = crc32c_ref(buf, n);
	buf[n - 4] = (unsigned char)(crc >> 24);
	buf[n - 3] = (unsigned char)(crc >> 16);
	buf[n - 2] = (unsigned char)(crc >> 8);
	buf[n - 1] = (unsigned char)crc;
	assert_int_equal(parse_all_prefixes(buf, n, &pi, true), (int)n);
	buf[n - 1] ^= 1;
	assert_int_equal(pp_parse(guarded(buf, n), n, &pi), PP_INVALID);

	/* invalid: version, command, family, protocol, datagrams, short block */
	n = v2(buf, 0x11, 0x11, a4, sizeof(a4));
	assert_int_equal(pp_parse(guarded(buf, 13), 13, &pi), PP_INVALID);    /* decided at byte 13 */
	n = v2(buf, 0x22, 0x11, a4, sizeof(a4));
	assert_int_equal(pp_parse(guarded(buf, n), n, &pi), PP_INVALID);
	n = v2(buf, 0x21, 0x41, a4, sizeof(a4));
	assert_int_equal(pp_parse(guarded(buf, n), n, &pi), PP_INVALID);
	n = v2(buf, 0x21, 0x13, a4, sizeof(a4));
	assert_int_equal(pp_parse(guarded(buf, n), n, &pi), PP_INVALID);
	n = v2(buf, 0x21, 0x12, a4, sizeof(a4));
	assert_int_equal(pp_parse(guarded(buf, n), n, &pi), PP_INVALID);
	n = v2(buf, 0x21, 0x10, a4, sizeof(a4));
	assert_int_equal(pp_parse(guarded(buf, n), n, &pi), PP_INVALID);
	n = v2(buf, 0x21, 0x21, a4, sizeof(a4));                               /* 12 bytes for IPv6 */
	assert_int_equal(pp_parse(guarded(buf, n), n, &pi), PP_INVALID);
	/* a wrong signature byte is seen at once */
	n = v2(buf, 0x21, 0x11, a4, sizeof(a4));
	buf[5] = 0x0B;
	assert_int_equal(pp_parse(guarded(buf, 6), 6, &pi), PP_INVALID);

	/* the bound: a header of PP_MAX bytes is read, one more is refused */
	memset(blk, 0, sizeof(blk));
	{
		static unsigned char big[PP_MAX + 2];

		memcpy(big, sig, 12);
		big[12] = 0x21;
		big[13] = 0x00;
		big[14] = (PP_MAX - 16) >> 8;
		big[15] = (PP_MAX - 16) & 0xff;
		/* UNSPEC with TLV padding: NOOPs */
		for (size_t o = 16; o < PP_MAX;) {
			size_t tl = PP_MAX - o - 3 > 200 ? 200 : PP_MAX - o - 3;

			big[o] = 0x04;
			big[o + 1] = (unsigned char)(tl >> 8);
			big[o + 2] = (unsigned char)tl;
			o += 3 + tl;
		}
		assert_int_equal(pp_parse(guarded(big, PP_MAX), PP_MAX, &pi), PP_MAX);
		big[14] = (PP_MAX - 15) >> 8;
		big[15] = (PP_MAX - 15) & 0xff;
		assert_int_equal(pp_parse(guarded(big, 16), 16, &pi), PP_INVALID);     /* known from the length */
	}
}

static void test_round_trip(void **unused)
{
	struct pp_info in = { 0 }, out;
	char buf[PP_MAX];
	int n;

	for (int version = 1; version <= 2; version++) {
		in.command = PP_CMD_PROXY;
		in.family = PP_AF_INET;
		memcpy(in.src, "\x7f\x00\x00\x05", 4);
		memcpy(in.dst, "\x0a\x01\x02\x03", 4);
		in.src_port = 40000;
		in.dst_port = 8080;
		n = pp_write(buf, sizeof(buf), version, &in);
		assert_true(n > 0);
		assert_int_equal(pp_parse(guarded(buf, (size_t)n), (size_t)n, &out), n);
		assert_int_equal(out.version, version);
		assert_int_equal(out.family, PP_AF_INET);
		assert_memory_equal(out.src, in.src, 4);
		assert_memory_equal(out.dst, in.dst, 4);
		assert_int_equal(out.src_port, 40000);
		assert_int_equal(out.dst_port, 8080);

		in.family = PP_AF_INET6;
		memset(in.src, 0, 16);
		in.src[0] = 0xfd;
		in.src[15] = 9;
		n = pp_write(buf, sizeof(buf), version, &in);
		assert_int_equal(pp_parse(guarded(buf, (size_t)n), (size_t)n, &out), n);
		assert_int_equal(out.family, PP_AF_INET6);
		assert_memory_equal(out.src, in.src, 16);

		in.command = PP_CMD_LOCAL;
		n = pp_write(buf, sizeof(buf), version, &in);
		assert_int_equal(pp_parse(guarded(buf, (size_t)n), (size_t)n, &out), n);
		assert_int_equal(out.family, PP_AF_UNSPEC);
		if (version == 1)
			assert_memory_equal(buf, "PROXY UNKNOWN\r\n", 15);
		else
			assert_int_equal(out.command, PP_CMD_LOCAL);
	}
	{
		const struct pp_info zero = { .command = PP_CMD_PROXY, .family = PP_AF_INET };

		assert_int_equal(pp_write(buf, sizeof(buf), 1, &zero), 32);
		assert_memory_equal(buf, "PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n", 32);
		assert_int_equal(pp_write(buf, 32, 1, &zero), -1);      /* no room for the snprintf NUL */
		assert_int_equal(pp_write(buf, 27, 2, &zero), -1);
		assert_int_equal(pp_write(buf, 28, 2, &zero), 28);
	}
	assert_int_equal(pp_write(buf, sizeof(buf), 3, &in), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1_table),
		cmocka_unit_test(test_v1_too_long),
		cmocka_unit_test(test_v2),
		cmocka_unit_test(test_round_trip),
	};
	return cmocka_run_group_tests(tests, guard_setup, guard_teardown);
}
