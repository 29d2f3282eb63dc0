/*
 * req.c - tether-pod's HTTP/1.x request head parsing (see req.h).
 */
#include <string.h>
#include <strings.h>

#include "req.h"

const char *req_header(const char *h, const char *end, const char *name, size_t *len)
{
	size_t nl = strlen(name);

	for (const char *p = h; p < end;) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));

		if (!eol)
			break;
		if ((size_t)(eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
			const char *v = p + nl + 1;

			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			*len = (size_t)(eol - v);
			if (*len && v[*len - 1] == '\r')
				(*len)--;
			return v;
		}
		p = eol + 1;
	}
	return NULL;
}

static bool token_is(const char *v, size_t len, const char *lit)
{
	return len == strlen(lit) && strncasecmp(v, lit, len) == 0;
}

int req_parse(struct req *r, const char *head, size_t len)
{
	const char *end = head + len, *sp1, *sp2, *q, *v;
	size_t vl;
	bool http10;

	sp1 = memchr(head, ' ', len);
	sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1)) : NULL;
	if (!sp1 || !sp2 || sp1 == head || (size_t)(end - sp2) < 9 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0)
		return -1;
	memset(r, 0, sizeof(*r));
	r->method = head;
	r->method_len = (size_t)(sp1 - head);
	r->path = sp1 + 1;
	r->path_len = (size_t)(sp2 - r->path);
	q = memchr(r->path, '?', r->path_len);
	if (q) {
		r->query = q + 1;
		r->query_len = (size_t)(sp2 - r->query);
		r->path_len = (size_t)(q - r->path);
	}
	http10 = sp2[8] == '0';
	v = req_header(head, end, "Connection", &vl);
	r->close = v ? token_is(v, vl, "close") : false;
	if (http10 && !(v && token_is(v, vl, "keep-alive")))
		r->close = true;
	v = req_header(head, end, "Cookie", &vl);
	r->sid = v ? req_cookie_sid(v, vl) : 0;
	return 0;
}

const char *req_param(const char *q, size_t qlen, const char *name, size_t *vlen)
{
	size_t nl = strlen(name);
	const char *end = q + qlen;

	for (const char *p = q; p && p < end;) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *stop = amp ? amp : end;

		if ((size_t)(stop - p) > nl && p[nl] == '=' && memcmp(p, name, nl) == 0) {
			*vlen = (size_t)(stop - p - nl - 1);
			return p + nl + 1;
		}
		p = amp ? amp + 1 : NULL;
	}
	return NULL;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* The cookie value at [p, end) up to ';' as a 1-16 digit hex number, or 0. */
static uint64_t hex_sid(const char *p, const char *end)
{
	uint64_t v = 0;
	int n = 0;

	for (; p < end && *p != ';' && *p != ' '; p++, n++) {
		int d = hexval(*p);

		if (d < 0 || n == 16)
			return 0;
		v = v << 4 | (uint64_t)d;
	}
	return v;
}

uint64_t req_cookie_sid(const char *v, size_t len)
{
	const char *end = v + len;

	for (const char *p = v; p < end;) {
		const char *sid = memmem(p, (size_t)(end - p), "SID=", 4);

		if (!sid)
			return 0;
		if (sid == v || sid[-1] == ' ' || sid[-1] == ';')
			return hex_sid(sid + 4, end);
		p = sid + 4;
	}
	return 0;
}

bool req_path_is(const struct req *r, const char *lit)
{
	return r->path_len == strlen(lit) && memcmp(r->path, lit, r->path_len) == 0;
}

int req_uint(const char *s, size_t len, uint32_t *out)
{
	uint32_t v = 0;

	if (len == 0 || len > 9)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint32_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}
