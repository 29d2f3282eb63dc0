/*
 * tether - HTTP/1.x at layer 4: peek at a request head for the affinity
 * cookie, and insert a Set-Cookie header into the first response head
 * (src/http.c).  Pure: no allocation, no I/O, caller storage only, in the
 * style of picohttpparser.  Every function reads only buf[0..len).
 */
#ifndef TETHER_HTTP_H
#define TETHER_HTTP_H

#include <stdbool.h>
#include <stddef.h>

enum {
	HTTP_PARTIAL = -2,      /* looks like HTTP/1.x so far; the head is not complete */
	HTTP_NOT_HTTP = -1,     /* not an HTTP/1.x request: route by fallback, pass through */
};

/*
 * Looks at the start of a client stream.  Returns the length of the
 * complete request head (request line + headers + empty line, > 0),
 * HTTP_PARTIAL or HTTP_NOT_HTTP.  When a complete head is found and it has a
 * `Cookie:` header (any case, possibly several, `;`-separated pairs) with
 * the cookie `name`, *val / *val_len point at its value inside buf (quotes
 * removed); otherwise *val is NULL.
 */
int http_peek_cookie(const char *buf, size_t len, const char *name, size_t name_len,
                     const char **val, size_t *val_len);

/*
 * Streaming insertion of one header line into the first *final* response
 * head of a server stream (1xx interim heads are passed over).  A stream
 * that does not start like an HTTP/1.x status line is passed through
 * untouched.
 */
struct http_inject {
	int state;              /* private */
	unsigned seen;          /* private */
	bool done;              /* read-only: nothing more will be inserted */
};

void http_inject_init(struct http_inject *in);
/*
 * Scans the next `len` bytes of the server stream.  Returns how many
 * leading bytes of buf the caller must forward before inserting the header
 * (the insertion point), with *insert set to true, or `len` with *insert
 * false when this chunk holds no insertion point.  After an insertion the
 * caller forwards the header, then calls again with the rest of the chunk.
 */
size_t http_inject_scan(struct http_inject *in, const char *buf, size_t len, bool *insert);

/*
 * Writes "Set-Cookie: NAME=VALUE; Path=/; HttpOnly[; Max-Age=N]\r\n" into
 * out (size cap).  Returns its length, or -1 when it does not fit.
 * max_age_s == 0 leaves Max-Age out (a session cookie).
 */
int http_format_set_cookie(char *out, size_t cap, const char *name, const char *value,
                           unsigned max_age_s);

#endif
