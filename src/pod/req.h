/*
 * req.h - tether-pod's HTTP/1.x request head parsing.
 *
 * Pure functions over caller storage, in the picohttpparser spirit: nothing
 * allocates, nothing reads outside [head, head + len), and every pointer a
 * parse returns points into the caller's buffer (valid until it moves).
 */
#ifndef TETHER_POD_REQ_H
#define TETHER_POD_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One request, as its head says.  Every pointer points into the head. */
struct req {
	const char *method;     /* "GET", "POST", ... */
	size_t method_len;
	const char *path;       /* "/item/7", without the query */
	size_t path_len;
	const char *query;      /* after '?', or NULL */
	size_t query_len;
	const char *body;       /* the body (Content-Length bytes), or NULL */
	size_t body_len;
	bool close;             /* the connection ends after this answer */
	uint64_t sid;           /* the SID cookie, 0 when absent or not 1-16 hex digits */
};

/* Parses the head [head, head + len), which ends with the blank line.
 * 0 with *r filled (body left empty: the caller knows it), or -1 when the
 * request line is not "METHOD SP TARGET SP HTTP/1.x". */
int req_parse(struct req *r, const char *head, size_t len);

/* The value of header `name` (case-insensitive) in the head [h, end), with
 * leading blanks and the trailing CR removed, or NULL; *len is set. */
const char *req_header(const char *h, const char *end, const char *name, size_t *len);

/* The value of parameter `name` in a query string or urlencoded body
 * [q, q + qlen) ("a=1&user=x"), undecoded, or NULL; *vlen is set. */
const char *req_param(const char *q, size_t qlen, const char *name, size_t *vlen);

/* The SID cookie of a Cookie header value: 1-16 hex digits, 0 if none. */
uint64_t req_cookie_sid(const char *v, size_t len);

/* Whether the path is exactly `lit`. */
bool req_path_is(const struct req *r, const char *lit);

/* Parses `len` decimal digits (1-9 of them) into *out; -1 when not that. */
int req_uint(const char *s, size_t len, uint32_t *out);

#endif
