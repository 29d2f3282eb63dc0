/*
 * tether - the PROXY protocol v1 and v2 (contract in
 * include/tether/proxy_proto.h; the rules cited as "spec" are sections of
 * HAProxy's doc/proxy-protocol.txt).
 *
 * The parser reads buf[0..len) only, byte by byte; the one libc call that
 * parses text (inet_pton, for a v1 IPv6 address) gets a bounded copy with
 * its own NUL.  Tested against a guard page (tests/unit/http) and fuzzed
 * (tests/fuzz/fuzz_proxy.c).
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "tether/proxy_proto.h"

static const unsigned char v2_sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };
static const char v1_sig[] = "PROXY ";

#define V2_HEAD 16              /* signature, version/command, family, length */
#define TLV_CRC32C 0x03

/* --- version 1 --- */

/* A decimal 0..max without heading zeroes (spec 2.1) in s[0..n). */
static bool dec(const char *s, size_t n, unsigned max, unsigned *out)
{
	unsigned v = 0;

	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

/* Exactly four decimals 0..255 separated by single dots. */
static bool ipv4(const char *s, size_t n, uint8_t out[4])
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		size_t start = i;
		unsigned v;

		while (i < n && s[i] != '.')
			i++;
		if (!dec(s + start, i - start, 255, &v))
			return false;
		out[part] = (uint8_t)v;
		if (part < 3) {
			if (i == n)
				return false;
			i++;            /* the dot */
		}
	}
	return i == n;
}

static bool ipv6(const char *s, size_t n, uint8_t out[16])
{
	char buf[INET6_ADDRSTRLEN];

	if (n == 0 || n >= sizeof(buf))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.'))
			return false;
	}
	memcpy(buf, s, n);
	buf[n] = '\0';
	return inet_pton(AF_INET6, buf, out) == 1;
}

/* The next field of line[*i..end) up to a single space (or the end when
 * last); false when empty. */
static bool field(const char *line, size_t end, size_t *i, bool last, const char **f, size_t *fl)
{
	size_t s = *i;

	while (*i < end && line[*i] != ' ')
		(*i)++;
	*f = line + s;
	*fl = *i - s;
	if (*fl == 0)
		return false;
	if (last)
		return *i == end;
	if (*i == end)
		return false;
	(*i)++;                 /* exactly one space: an empty next field fails */
	return true;
}

static int parse_v1(const char *buf, size_t len, struct pp_info *out)
{
	size_t end, i = sizeof(v1_sig) - 1;
	const char *f;
	size_t fl;
	unsigned sp, dp;
	bool v6;

	/* the CRLF within the first PP_V1_MAX bytes; no lone CR or LF */
	for (end = i; end < len && end < PP_V1_MAX; end++) {
		unsigned char c = (unsigned char)buf[end];

		if (c == '\r')
			break;
		if (c < 0x20 || c > 0x7e)
			return PP_INVALID;
	}
	if (end == len)         /* no CR yet: one at PP_V1_MAX - 1 would leave no room for the LF */
		return end >= PP_V1_MAX - 1 ? PP_INVALID : PP_PARTIAL;
	if (end + 2 > PP_V1_MAX)
		return PP_INVALID;
	if (end + 1 == len)
		return PP_PARTIAL;
	if (buf[end + 1] != '\n')
		return PP_INVALID;
	memset(out, 0, sizeof(*out));
	out->version = 1;
	out->command = PP_CMD_PROXY;
	if (!field(buf, end, &i, false, &f, &fl)) {
		/* "PROXY UNKNOWN\r\n": the short form has nothing after it */
		if (fl == 7 && memcmp(f, "UNKNOWN", 7) == 0 && i == end)
			return (int)end + 2;
		return PP_INVALID;
	}
	if (fl == 7 && memcmp(f, "UNKNOWN", 7) == 0)
		return (int)end + 2;    /* the receiver ignores the rest of the line (spec 2.1) */
	if (fl != 4 || memcmp(f, "TCP", 3) != 0 || (f[3] != '4' && f[3] != '6'))
		return PP_INVALID;
	v6 = f[3] == '6';
	out->family = v6 ? PP_AF_INET6 : PP_AF_INET;
	if (!field(buf, end, &i, false, &f, &fl) || !(v6 ? ipv6(f, fl, out->src) : ipv4(f, fl, out->src)))
		return PP_INVALID;
	if (!field(buf, end, &i, false, &f, &fl) || !(v6 ? ipv6(f, fl, out->dst) : ipv4(f, fl, out->dst)))
		return PP_INVALID;
	if (!field(buf, end, &i, false, &f, &fl) || !dec(f, fl, 65535, &sp))
		return PP_INVALID;
	if (!field(buf, end, &i, true, &f, &fl) || !dec(f, fl, 65535, &dp))
		return PP_INVALID;
	out->src_port = (uint16_t)sp;
	out->dst_port = (uint16_t)dp;
	return (int)end + 2;
}

/* --- version 2 --- */

/* CRC32C (Castagnoli, reflected 0x82F63B78) of p[0..n) with the 4 bytes at
 * `hole` counted as zeroes (the checksum field itself, spec 2.2.3). */
static uint32_t crc32c(const unsigned char *p, size_t n, size_t hole)
{
	uint32_t crc = 0xFFFFFFFFu;

	for (size_t i = 0; i < n; i++) {
		crc ^= (i >= hole && i < hole + 4) ? 0 : p[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
	}
	return ~crc;
}

/* TLVs in p[off..hlen): framing, and the CRC32C when one is present. */
static bool tlvs_ok(const unsigned char *p, size_t off, size_t hlen)
{
	while (off < hlen) {
		size_t tl;

		if (hlen - off < 3)
			return false;
		tl = (size_t)p[off + 1] << 8 | p[off + 2];
		if (tl > hlen - off - 3)
			return false;
		if (p[off] == TLV_CRC32C) {
			uint32_t want;

			if (tl != 4)
				return false;
			want = (uint32_t)p[off + 3] << 24 | (uint32_t)p[off + 4] << 16 | (uint32_t)p[off + 5] << 8 |
			       p[off + 6];
			if (crc32c(p, hlen, off + 3) != want)
				return false;
		}
		off += 3 + tl;
	}
	return true;
}

static int parse_v2(const unsigned char *p, size_t len, struct pp_info *out)
{
	size_t hlen, alen;
	unsigned cmd, fam, proto;

	if (len < V2_HEAD)
		return PP_PARTIAL;
	fam = p[13] >> 4;
	proto = p[13] & 0x0F;
	if (fam > 3 || proto > 2)
		return PP_INVALID;
	hlen = V2_HEAD + ((size_t)p[14] << 8 | p[15]);
	if (hlen > PP_MAX)
		return PP_INVALID;
	if (len < hlen)
		return PP_PARTIAL;
	cmd = p[12] & 0x0F;
	memset(out, 0, sizeof(*out));
	out->version = 2;
	out->command = (uint8_t)cmd;
	if (cmd == PP_CMD_LOCAL)       /* the block is skipped, family and all (spec 2.2) */
		return (int)hlen;
	switch (p[13]) {
	case 0x00: alen = 0; break;     /* UNSPEC: the connection's own addresses */
	case 0x11: alen = 12; break;    /* TCP over IPv4 */
	case 0x21: alen = 36; break;    /* TCP over IPv6 */
	case 0x31: alen = 216; break;   /* UNIX stream: not an address tether can use */
	default: return PP_INVALID;     /* datagrams, or a family without a protocol */
	}
	if (hlen - V2_HEAD < alen || !tlvs_ok(p, V2_HEAD + alen, hlen))
		return PP_INVALID;
	if (p[13] == 0x11) {
		out->family = PP_AF_INET;
		memcpy(out->src, p + 16, 4);
		memcpy(out->dst, p + 20, 4);
		out->src_port = (uint16_t)(p[24] << 8 | p[25]);
		out->dst_port = (uint16_t)(p[26] << 8 | p[27]);
	} else if (p[13] == 0x21) {
		out->family = PP_AF_INET6;
		memcpy(out->src, p + 16, 16);
		memcpy(out->dst, p + 32, 16);
		out->src_port = (uint16_t)(p[48] << 8 | p[49]);
		out->dst_port = (uint16_t)(p[50] << 8 | p[51]);
	}
	return (int)hlen;
}

int pp_parse(const char *buf, size_t len, struct pp_info *out)
{
	const unsigned char *p = (const unsigned char *)buf;
	size_t n;

	if (len == 0)
		return PP_PARTIAL;
	if (p[0] == v2_sig[0]) {
		n = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
		if (memcmp(p, v2_sig, n) != 0)
			return PP_INVALID;
		if (len <= sizeof(v2_sig))
			return PP_PARTIAL;
		if (p[12] >> 4 != 2 || (p[12] & 0x0F) > 1)     /* version 2; LOCAL or PROXY */
			return PP_INVALID;
		return parse_v2(p, len, out);
	}
	n = len < sizeof(v1_sig) - 1 ? len : sizeof(v1_sig) - 1;
	if (memcmp(buf, v1_sig, n) != 0)
		return PP_INVALID;
	if (len < sizeof(v1_sig) - 1)
		return PP_PARTIAL;
	return parse_v1(buf, len, out);
}

/* --- writing --- */

static int write_v1(char *out, size_t cap, const struct pp_info *in)
{
	char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
	int af = in->family == PP_AF_INET ? AF_INET : AF_INET6, n;

	if (in->command == PP_CMD_LOCAL || in->family == PP_AF_UNSPEC)
		n = snprintf(out, cap, "PROXY UNKNOWN\r\n");
	else if (!inet_ntop(af, in->src, s, sizeof(s)) || !inet_ntop(af, in->dst, d, sizeof(d)))
		return -1;
	else
		n = snprintf(out, cap, "PROXY TCP%c %s %s %u %u\r\n", in->family == PP_AF_INET ? '4' : '6', s, d,
		             in->src_port, in->dst_port);
	return n < 0 || (size_t)n >= cap ? -1 : n;
}

static int write_v2(char *out, size_t cap, const struct pp_info *in)
{
	unsigned char *p = (unsigned char *)out;
	size_t alen = 0, al;
	bool local = in->command == PP_CMD_LOCAL;

	if (!local && in->family == PP_AF_INET)
		alen = 12;
	else if (!local && in->family == PP_AF_INET6)
		alen = 36;
	if (cap < V2_HEAD + alen)
		return -1;
	memcpy(p, v2_sig, sizeof(v2_sig));
	p[12] = local ? 0x20 : 0x21;
	p[13] = alen == 12 ? 0x11 : alen == 36 ? 0x21 : 0x00;
	p[14] = (unsigned char)(alen >> 8);
	p[15] = (unsigned char)alen;
	if (alen) {
		al = alen == 12 ? 4 : 16;
		memcpy(p + 16, in->src, al);
		memcpy(p + 16 + al, in->dst, al);
		p[16 + 2 * al] = (unsigned char)(in->src_port >> 8);
		p[17 + 2 * al] = (unsigned char)in->src_port;
		p[18 + 2 * al] = (unsigned char)(in->dst_port >> 8);
		p[19 + 2 * al] = (unsigned char)in->dst_port;
	}
	return (int)(V2_HEAD + alen);
}

int pp_write(char *out, size_t cap, int version, const struct pp_info *in)
{
	if (version == 1)
		return write_v1(out, cap, in);
	if (version == 2)
		return write_v2(out, cap, in);
	return -1;
}
