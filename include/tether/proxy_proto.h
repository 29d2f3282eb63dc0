/*
 * tether - the PROXY protocol, versions 1 (text) and 2 (binary), as
 * specified in HAProxy's doc/proxy-protocol.txt (src/http/proxy_proto.c).
 *
 * A sender puts one header in front of a TCP stream to tell the receiver
 * the addresses of the connection it relays.  Pure like the rest of
 * src/http: no allocation, no I/O, caller storage; the parser reads
 * buf[0..len) only and never looks for a NUL.
 *
 * The parser is strict, as the specification asks: anything that does not
 * match exactly is PP_INVALID, and a header that is not complete within
 * PP_MAX bytes is invalid too, so a receiver needs at most PP_MAX bytes of
 * storage and can decide from a single bounded peek.
 */
#ifndef TETHER_PROXY_PROTO_H
#define TETHER_PROXY_PROTO_H

#include <stddef.h>
#include <stdint.h>

enum {
	PP_PARTIAL = -2,        /* a valid prefix of a header: read more */
	PP_INVALID = -1,        /* not a PROXY header, or a malformed one: close the connection */
};

/* v1 lines are at most 107 bytes with the CRLF (spec 2.1).  v2 headers are
 * 16 bytes plus an address block (12, 36 or 216 bytes) plus optional TLVs;
 * 1024 leaves 792 bytes of TLVs beside the largest block (AWS and GCP send
 * a few dozen).  A longer v2 header is refused. */
#define PP_V1_MAX 107
#define PP_MAX 1024

enum pp_command { PP_CMD_LOCAL = 0, PP_CMD_PROXY = 1 };
/* Address families as tether uses them: UNSPEC covers v1 UNKNOWN and v2
 * UNSPEC and AF_UNIX, for which the receiver uses the connection's own
 * addresses (spec 2.1 and 2.2). */
enum pp_family { PP_AF_UNSPEC = 0, PP_AF_INET = 4, PP_AF_INET6 = 6 };

struct pp_info {
	uint8_t version;        /* 1 or 2 (set by pp_parse; pp_write takes it as an argument) */
	uint8_t command;        /* enum pp_command; v1 is always PROXY */
	uint8_t family;         /* enum pp_family: addresses below are meaningful when not UNSPEC */
	uint8_t src[16], dst[16];       /* network order; IPv4 in the first 4 bytes */
	uint16_t src_port, dst_port;    /* host order */
};

/*
 * Parses a header at the start of buf.  Returns its length (> 0, at most
 * PP_MAX: the bytes to consume before the payload), PP_PARTIAL or
 * PP_INVALID.  On success *out describes it; use the connection's own
 * addresses unless out->command == PP_CMD_PROXY and out->family !=
 * PP_AF_UNSPEC.  TLVs of v2 are checked for framing and skipped; a CRC32C
 * TLV (type 0x03) is verified.
 */
int pp_parse(const char *buf, size_t len, struct pp_info *out);

/*
 * Writes a header of `version` (1 or 2) for `in` into out (size cap).
 * A LOCAL command, or an UNSPEC family, gives "PROXY UNKNOWN\r\n" in v1 and
 * the LOCAL / UNSPEC forms in v2.  Returns its length, or -1 when it does
 * not fit or version is not 1 or 2.
 */
int pp_write(char *out, size_t cap, int version, const struct pp_info *in);

#endif
