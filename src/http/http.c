/*
 * tether - HTTP/1.x at layer 4: request-head peek for the affinity cookie
 * and streaming Set-Cookie insertion (contract in include/tether/http.h).
 *
 * Both parsers read buf[0..len) only, byte by byte, never allocate and
 * never call string functions that look for a NUL, so input placed against
 * a guard page cannot be over-read (tests/unit/http does exactly that).
 */
#include <stdio.h>
#include <string.h>

#include "tether/http.h"

/* RFC 9110 tchar */
static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	switch (c) {
	case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
	case '-': case '.': case '^': case '_': case '`': case '|': case '~':
		return true;
	default:
		return false;
	}
}

static unsigned char lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/*
 * Looks through one Cookie header value v[0..n) for `name`; sets *val on
 * the first match (quotes removed).
 */
static void find_cookie(const char *v, size_t n, const char *name, size_t name_len,
                        const char **val, size_t *val_len)
{
	size_t i = 0;

	while (i < n && !*val) {
		size_t ks, ke, vs, ve;

		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ';'))
			i++;
		ks = i;
		while (i < n && v[i] != '=' && v[i] != ';')
			i++;
		ke = i;
		while (ke > ks && (v[ke - 1] == ' ' || v[ke - 1] == '\t'))
			ke--;
		if (i >= n || v[i] != '=')
			continue;       /* a pair without '=' is skipped */
		i++;
		while (i < n && (v[i] == ' ' || v[i] == '\t'))
			i++;
		vs = i;
		while (i < n && v[i] != ';')
			i++;
		ve = i;
		while (ve > vs && (v[ve - 1] == ' ' || v[ve - 1] == '\t'))
			ve--;
		if (ve - vs >= 2 && v[vs] == '"' && v[ve - 1] == '"') {
			vs++;
			ve--;
		}
		if (ke - ks == name_len && memcmp(v + ks, name, name_len) == 0) {
			*val = v + vs;
			*val_len = ve - vs;
		}
	}
}

/* http_peek_cookie's parse; *val may be set from a head found partial or
 * not HTTP later on: the caller clears it then. */
static int peek_head(const char *buf, size_t len, const char *name, size_t name_len,
                     const char **val, size_t *val_len)
{
	static const char version[] = "HTTP/1.";
	const unsigned char *p = (const unsigned char *)buf;
	size_t i = 0;

	*val = NULL;
	*val_len = 0;
	/* method */
	while (i < len && is_tchar(p[i]))
		i++;
	if (i == len)
		return HTTP_PARTIAL;
	if (i == 0 || p[i] != ' ')
		return HTTP_NOT_HTTP;
	i++;
	/* request-target: visible characters */
	if (i < len && p[i] == ' ')
		return HTTP_NOT_HTTP;
	while (i < len && p[i] > ' ' && p[i] != 0x7f)
		i++;
	if (i == len)
		return HTTP_PARTIAL;
	if (p[i] != ' ')
		return HTTP_NOT_HTTP;
	i++;
	/* HTTP/1.0 or HTTP/1.1, then CRLF or LF */
	for (size_t k = 0; k < sizeof(version) - 1; k++, i++) {
		if (i == len)
			return HTTP_PARTIAL;
		if (p[i] != (unsigned char)version[k])
			return HTTP_NOT_HTTP;
	}
	if (i == len)
		return HTTP_PARTIAL;
	if (p[i] != '0' && p[i] != '1')
		return HTTP_NOT_HTTP;
	i++;
	if (i < len && p[i] == '\r')
		i++;
	if (i == len)
		return HTTP_PARTIAL;
	if (p[i] != '\n')
		return HTTP_NOT_HTTP;
	i++;
	/* header fields up to the empty line */
	for (;;) {
		size_t ns, ne, vs, ve;

		if (i == len)
			return HTTP_PARTIAL;
		if (p[i] == '\r') {
			if (i + 1 == len)
				return HTTP_PARTIAL;
			if (p[i + 1] != '\n')
				return HTTP_NOT_HTTP;
			return (int)(i + 2);
		}
		if (p[i] == '\n')
			return (int)(i + 1);
		ns = i;
		while (i < len && is_tchar(p[i]))
			i++;
		if (i == len)
			return HTTP_PARTIAL;
		if (i == ns || p[i] != ':')
			return HTTP_NOT_HTTP;    /* includes obs-fold (a line starting with SP/HT) */
		ne = i++;
		while (i < len && (p[i] == ' ' || p[i] == '\t'))
			i++;
		vs = i;
		while (i < len && p[i] != '\n') {
			if (p[i] < ' ' && p[i] != '\t' && p[i] != '\r')
				return HTTP_NOT_HTTP;
			i++;
		}
		if (i == len)
			return HTTP_PARTIAL;
		ve = i++;
		if (ve > vs && p[ve - 1] == '\r')
			ve--;
		if (ne - ns == 6 && !*val) {
			static const char cookie[] = "cookie";
			bool is_cookie = true;

			for (size_t k = 0; k < 6; k++)
				is_cookie = is_cookie && lower(p[ns + k]) == (unsigned char)cookie[k];
			if (is_cookie)
				find_cookie(buf + vs, ve - vs, name, name_len, val, val_len);
		}
	}
}

int http_peek_cookie(const char *buf, size_t len, const char *name, size_t name_len,
                     const char **val, size_t *val_len)
{
	int rc = peek_head(buf, len, name, name_len, val, val_len);

	if (rc <= 0) {          /* a cookie counts only in a complete head */
		*val = NULL;
		*val_len = 0;
	}
	return rc;
}

/* http_inject states */
enum { IJ_PREFIX = 0, IJ_MINOR, IJ_SP, IJ_CODE, IJ_LINE, IJ_INTERIM };

void http_inject_init(struct http_inject *in)
{
	in->state = IJ_PREFIX;
	in->seen = 0;
	in->done = false;
}

size_t http_inject_scan(struct http_inject *in, const char *buf, size_t len, bool *insert)
{
	static const char prefix[] = "HTTP/1.";
	const unsigned char *p = (const unsigned char *)buf;

	*insert = false;
	for (size_t i = 0; i < len && !in->done; i++) {
		unsigned char c = p[i];

		switch (in->state) {
		case IJ_PREFIX:
			if (c != (unsigned char)prefix[in->seen]) {
				in->done = true;        /* not an HTTP/1.x response: pass through */
				break;
			}
			if (++in->seen == sizeof(prefix) - 1)
				in->state = IJ_MINOR;
			break;
		case IJ_MINOR:
			in->state = c >= '0' && c <= '9' ? IJ_SP : -1;
			break;
		case IJ_SP:
			in->state = c == ' ' ? IJ_CODE : -1;
			break;
		case IJ_CODE:
			if (c < '1' || c > '5') {
				in->state = -1;
				break;
			}
			in->seen = c == '1';    /* 1: interim response, insert into the next one */
			in->state = IJ_LINE;
			break;
		case IJ_LINE:
			if (c != '\n')
				break;
			if (in->seen) {
				in->state = IJ_INTERIM;
				in->seen = 1;       /* at the start of a line */
				break;
			}
			in->done = true;
			*insert = true;
			return i + 1;           /* right after the status line */
		case IJ_INTERIM:
			if (c == '\n' && in->seen) {
				in->state = IJ_PREFIX;  /* end of the interim head */
				in->seen = 0;
			} else if (c != '\r') {
				in->seen = c == '\n';
			}
			break;
		}
		if (in->state < 0)
			in->done = true;
	}
	return len;
}

int http_format_set_cookie(char *out, size_t cap, const char *name, const char *value, unsigned max_age_s)
{
	int n;

	if (max_age_s)
		n = snprintf(out, cap, "Set-Cookie: %s=%s; Path=/; HttpOnly; Max-Age=%u\r\n", name, value, max_age_s);
	else
		n = snprintf(out, cap, "Set-Cookie: %s=%s; Path=/; HttpOnly\r\n", name, value);
	return n < 0 || (size_t)n >= cap ? -1 : n;
}
