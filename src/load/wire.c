/*
 * tether-load - HTTP/1.1 client side on the wire (see wire.h).
 *
 * The response parser is a byte-at-a-time state machine in the manner of
 * picohttpparser's and nginx's: it never looks back, so a response split at
 * any byte parses the same as one read whole (tests/load/test_wire.c feeds
 * every split).  '\r' is ignored in the head, so bare-LF heads also parse.
 */
#include <string.h>
#include <strings.h>

#include "wire.h"

enum { S_STATUS, S_NAME, S_VALUE_START, S_VALUE, S_BODY, S_DONE };

/* The headers the parser keeps; every other header is skipped. */
enum { H_OTHER, H_LENGTH, H_CONNECTION, H_COOKIE, H_POD, H_SESSION, H_TE };
static const char *const hdr_names[] = {
	[H_LENGTH] = "content-length", [H_CONNECTION] = "connection", [H_COOKIE] = "set-cookie",
	[H_POD] = "x-pod", [H_SESSION] = "x-session", [H_TE] = "transfer-encoding",
};

void wire_resp_init(struct wire_resp *r)
{
	memset(r, 0, sizeof(*r));
	r->state = S_STATUS;
}

/* "HTTP/1.x NNN ..." in r->val; 0 or -1. */
static int status_line(struct wire_resp *r)
{
	const char *v = r->val;

	if (r->vlen < 12 || memcmp(v, "HTTP/1.", 7) != 0 || (v[7] != '0' && v[7] != '1') || v[8] != ' ')
		return -1;
	if (v[9] < '1' || v[9] > '5' || v[10] < '0' || v[10] > '9' || v[11] < '0' || v[11] > '9')
		return -1;
	r->status = (v[9] - '0') * 100 + (v[10] - '0') * 10 + (v[11] - '0');
	r->http10 = v[7] == '0';
	return 0;
}

static int header_id(const struct wire_resp *r)
{
	for (int i = 1; i < (int)(sizeof(hdr_names) / sizeof(hdr_names[0])); i++)
		if (strlen(hdr_names[i]) == r->name_len && memcmp(hdr_names[i], r->name, r->name_len) == 0)
			return i;
	return H_OTHER;
}

static enum wire_session session_kind(const char *v, size_t n)
{
	static const struct { const char *s; enum wire_session k; } kinds[] = {
		{ "local", WS_LOCAL }, { "cache", WS_CACHE }, { "redis", WS_REDIS },
		{ "miss", WS_MISS }, { "new", WS_NEW },
	};

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strlen(kinds[i].s) == n && strncasecmp(kinds[i].s, v, n) == 0)
			return kinds[i].k;
	return WS_OTHER;
}

static bool has_token(const char *v, size_t n, const char *tok)
{
	size_t tl = strlen(tok);

	for (size_t i = 0; i + tl <= n; i++)
		if (strncasecmp(v + i, tok, tl) == 0)
			return true;
	return false;
}

/* A header line is complete: act on the value kept in r->val. */
static int header_done(struct wire_resp *r, struct wire_jar *jar)
{
	const char *v = r->val;
	size_t n = r->vlen;

	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	switch (r->hdr) {
	case H_LENGTH:
		if (n == 0 || n > 18 || r->has_length)
			return -1;
		r->body_left = 0;
		for (size_t i = 0; i < n; i++) {
			if (v[i] < '0' || v[i] > '9')
				return -1;
			r->body_left = r->body_left * 10 + (uint64_t)(v[i] - '0');
		}
		r->has_length = true;
		break;
	case H_CONNECTION:
		if (has_token(v, n, "close"))
			r->close = true;
		else if (has_token(v, n, "keep-alive"))
			r->keep_alive = true;
		break;
	case H_COOKIE:              /* a NAME=VALUE cut short is not stored */
		if (!r->val_cut || memchr(v, ';', n))
			wire_jar_set(jar, v, n);
		break;
	case H_POD:
		n = n < WIRE_POD_MAX - 1 ? n : WIRE_POD_MAX - 1;
		memcpy(r->pod, v, n);
		r->pod[n] = '\0';
		break;
	case H_SESSION:
		r->session = session_kind(v, n);
		break;
	case H_TE:
		r->chunked = has_token(v, n, "chunked");
		break;
	}
	return 0;
}

/* The empty line: decide how the body ends.  1 when the response is
 * complete already, 0 when a body follows, -1 on error. */
static int head_done(struct wire_resp *r)
{
	if (r->status < 200) {              /* 1xx: an interim answer; the real one follows */
		wire_resp_init(r);
		return 0;
	}
	if (r->http10 && !r->keep_alive)    /* HTTP/1.0 closes unless it says keep-alive */
		r->close = true;
	if (r->chunked)
		return -1;
	if (r->status == 204 || r->status == 304 || (r->has_length && r->body_left == 0)) {
		r->state = S_DONE;
		return 1;
	}
	if (!r->has_length) {
		r->until_close = true;
		r->close = true;
	}
	r->state = S_BODY;
	return 0;
}

/* One byte of the head. 1 done, 0 more, -1 error. */
static int head_byte(struct wire_resp *r, char c, struct wire_jar *jar)
{
	if (c == '\r')
		return 0;
	switch (r->state) {
	case S_STATUS:
		if (c != '\n') {
			if (r->vlen < WIRE_VAL_MAX)
				r->val[r->vlen++] = c;
			return 0;
		}
		if (status_line(r) < 0)
			return -1;
		r->state = S_NAME;
		r->name_len = 0;
		return 0;
	case S_NAME:
		if (c == '\n')
			return r->name_len ? -1 : head_done(r);
		if (c == ':') {
			r->hdr = (uint8_t)(r->name_len <= sizeof(r->name) ? header_id(r) : H_OTHER);
			r->vlen = 0;
			r->state = S_VALUE_START;
			return 0;
		}
		if (r->name_len < sizeof(r->name))
			r->name[r->name_len] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
		if (r->name_len < 255)
			r->name_len++;
		return 0;
	case S_VALUE_START:
		if (c == ' ' || c == '\t')
			return 0;
		r->state = S_VALUE;
		/* FALLTHROUGH */
	default:                            /* S_VALUE */
		if (c != '\n') {
			if (r->hdr != H_OTHER && r->vlen < WIRE_VAL_MAX)
				r->val[r->vlen++] = c;
			else if (r->hdr != H_OTHER)
				r->val_cut = true;
			return 0;
		}
		if (header_done(r, jar) < 0)
			return -1;
		r->state = S_NAME;
		r->name_len = 0;
		r->val_cut = false;
		return 0;
	}
}

int wire_resp_feed(struct wire_resp *r, const char *p, size_t n, size_t *used, struct wire_jar *jar)
{
	size_t i = 0;

	while (i < n) {
		if (r->state == S_BODY) {
			size_t take = n - i;

			if (!r->until_close) {
				if (take > r->body_left)
					take = (size_t)r->body_left;
				r->body_left -= take;
			}
			i += take;
			if (!r->until_close && r->body_left == 0) {
				r->state = S_DONE;
				break;
			}
			continue;
		}
		if (r->state == S_DONE)
			break;
		if (++r->head_len > WIRE_HEAD_MAX)
			return -1;
		switch (head_byte(r, p[i++], jar)) {
		case -1:
			return -1;
		case 1:
			*used = i;
			return 1;
		}
	}
	*used = i;
	return r->state == S_DONE ? 1 : 0;
}

int wire_resp_eof(struct wire_resp *r)
{
	if (r->state == S_BODY && r->until_close) {
		r->state = S_DONE;
		return 1;
	}
	return -1;
}

/* --- cookie jar --- */

static bool attr_max_age_zero(const char *v, size_t n)
{
	static const char key[] = "max-age=";

	for (size_t i = 0; i + sizeof(key) - 1 < n; i++)
		if (strncasecmp(v + i, key, sizeof(key) - 1) == 0) {
			const char *a = v + i + sizeof(key) - 1;

			return *a == '0' || *a == '-';
		}
	return false;
}

/* Removes cookie name[0..nl) from the jar, if present. */
static void jar_remove(struct wire_jar *j, const char *name, size_t nl)
{
	size_t at = 0;

	while (at < j->len) {
		const char *e = memchr(j->s + at, ';', j->len - at);
		size_t end = e ? (size_t)(e - j->s) : j->len;
		size_t next = e ? end + 2 : j->len;     /* entries are separated by "; " */

		if (end - at > nl && j->s[at + nl] == '=' && memcmp(j->s + at, name, nl) == 0) {
			if (next > j->len)
				next = j->len;
			if (!e && at >= 2)              /* the last one: drop the "; " before it */
				at -= 2;
			memmove(j->s + at, j->s + next, j->len - next);
			j->len = (uint8_t)(j->len - (next - at));
			return;
		}
		at = next;
	}
}

void wire_jar_set(struct wire_jar *j, const char *v, size_t n)
{
	const char *semi = memchr(v, ';', n), *eq;
	size_t pair = semi ? (size_t)(semi - v) : n, nl, need;

	while (pair && (v[pair - 1] == ' ' || v[pair - 1] == '\t'))
		pair--;
	eq = memchr(v, '=', pair);
	if (!eq || eq == v)
		return;
	nl = (size_t)(eq - v);
	jar_remove(j, v, nl);
	if (semi && attr_max_age_zero(semi, n - pair))
		return;
	need = pair + (j->len ? 2 : 0);
	if (j->len + need > WIRE_JAR_MAX)
		return;
	if (j->len) {
		j->s[j->len++] = ';';
		j->s[j->len++] = ' ';
	}
	memcpy(j->s + j->len, v, pair);
	j->len = (uint8_t)(j->len + pair);
}

const char *wire_jar_get(const struct wire_jar *j, const char *name, size_t *len)
{
	size_t nl = strlen(name), at = 0;

	while (nl && at < j->len) {
		const char *e = memchr(j->s + at, ';', j->len - at);
		size_t end = e ? (size_t)(e - j->s) : j->len;

		if (end - at > nl && j->s[at + nl] == '=' && memcmp(j->s + at, name, nl) == 0) {
			*len = end - at - nl - 1;
			return j->s + at + nl + 1;
		}
		at = e ? end + 2 : j->len;
	}
	return NULL;
}

/* --- requests --- */

struct out {
	char *p, *end;
	bool full;
};

static void put(struct out *o, const char *s, size_t n)
{
	if ((size_t)(o->end - o->p) < n) {
		o->full = true;
		return;
	}
	memcpy(o->p, s, n);
	o->p += n;
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void putnum(struct out *o, uint64_t v)
{
	char d[20];
	int i = 20;

	do
		d[--i] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	put(o, d + i, (size_t)(20 - i));
}

size_t wire_format_request(char *buf, size_t cap, const struct wire_req *q)
{
	struct out o = { buf, buf + cap, false };

	puts_(&o, q->method);
	put(&o, " ", 1);
	puts_(&o, q->path);
	putnum(&o, q->num);
	puts_(&o, " HTTP/1.1\r\nHost: ");
	puts_(&o, q->host);
	if (q->jar && q->jar->len) {
		puts_(&o, "\r\nCookie: ");
		put(&o, q->jar->s, q->jar->len);
	}
	if (q->empty_body)
		puts_(&o, "\r\nContent-Length: 0");
	if (q->close)
		puts_(&o, "\r\nConnection: close");
	puts_(&o, "\r\n\r\n");
	return o.full ? 0 : (size_t)(o.p - buf);
}
