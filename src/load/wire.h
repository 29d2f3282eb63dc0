/*
 * tether-load - the client side of HTTP/1.1 on the wire: request
 * formatting, a streaming response parser, and a cookie jar.
 *
 * Pure: no sockets, no libev, no allocation.  The parser keeps no copy of
 * the bytes it was fed: it reads a response byte by byte, keeps only the
 * few header values tether-load counts with (the header contract of
 * tether-pod, DESIGN.md "The lab": `X-Pod`, `X-Session`, `Set-Cookie`), and
 * skips the body by its Content-Length, so a response may arrive split at
 * any byte.  Answers must carry Content-Length or end with the connection;
 * a chunked answer is refused (-1), since no tether pod sends one.
 */
#ifndef TETHER_LOAD_WIRE_H
#define TETHER_LOAD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_JAR_MAX 200        /* "SID=<16 hex>; TETHERID=<16 hex>" needs 44 */
#define WIRE_POD_MAX 32         /* an X-Pod value, truncated beyond */
#define WIRE_VAL_MAX 160        /* a captured header value, truncated beyond (a cookie then dropped) */
#define WIRE_HEAD_MAX 16384     /* larger response heads are an error */

/* Where the pod found the session (the X-Session header). */
enum wire_session { WS_NONE = 0, WS_LOCAL, WS_CACHE, WS_REDIS, WS_MISS, WS_NEW, WS_OTHER };

/* Cookies as the Cookie header sends them: "a=1; b=2" (len bytes, no NUL). */
struct wire_jar {
	uint8_t len;
	char s[WIRE_JAR_MAX];
};

/* A response being parsed.  Public fields are valid once wire_resp_feed()
 * returned 1 (or wire_resp_eof() returned 1). */
struct wire_resp {
	/* public, read-only */
	int status;
	enum wire_session session;
	bool close;                 /* the server will close: Connection: close, or HTTP/1.0 */
	char pod[WIRE_POD_MAX];     /* X-Pod, NUL-terminated, "" when absent */
	/* private */
	uint8_t state;
	uint8_t hdr;                /* the header of the current line */
	uint8_t name_len;
	bool http10, keep_alive, chunked, has_length, until_close, val_cut;
	uint16_t vlen;
	uint32_t head_len;
	uint64_t body_left;
	char name[20];
	char val[WIRE_VAL_MAX];
};

/* What a request asks: `METHOD PATHnum` ("GET /item/" 42 -> GET /item/42). */
struct wire_req {
	const char *method;         /* "GET", "POST" */
	const char *path;           /* path prefix, completed by `num` */
	uint64_t num;
	const char *host;           /* Host header value */
	const struct wire_jar *jar; /* sent as Cookie when not empty */
	bool close;                 /* Connection: close */
	bool empty_body;            /* Content-Length: 0 (a POST without body) */
};

/* Ready to parse a new response. */
void wire_resp_init(struct wire_resp *r);
/*
 * Feeds n bytes.  Returns 1 when the response is complete (*used bytes of
 * p belong to it; the rest do not), 0 when it needs more (*used == n), or
 * -1 when the bytes are not an HTTP/1.x response tether-load understands.
 * Set-Cookie headers are applied to `jar` as they are read.
 */
int wire_resp_feed(struct wire_resp *r, const char *p, size_t n, size_t *used, struct wire_jar *jar);
/* The server closed the connection: 1 when that completes the response
 * (a body delimited by the close), else -1 (the answer was cut short). */
int wire_resp_eof(struct wire_resp *r);

/* Stores a Set-Cookie value ("NAME=VALUE; attributes"): replaces a cookie
 * of the same name, deletes it on Max-Age=0; a cookie that does not fit is
 * dropped. */
void wire_jar_set(struct wire_jar *j, const char *v, size_t n);
/* The value of cookie `name` in the jar, or NULL; *len set. */
const char *wire_jar_get(const struct wire_jar *j, const char *name, size_t *len);

/* Writes the request into buf; returns its length, or 0 when cap is too small. */
size_t wire_format_request(char *buf, size_t cap, const struct wire_req *q);

#endif
