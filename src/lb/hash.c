/*
 * tether - hashing for the pure core.
 */
#include <string.h>
#include <xxhash.h>

#include "tether/hash.h"
#include "tether/lb.h"

uint64_t lb_hash(const void *buf, size_t len, uint64_t seed)
{
	return XXH3_64bits_withSeed(buf, len, seed);
}

static inline uint64_t rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

static inline uint64_t load64_le(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

#define SIPROUND(v0, v1, v2, v3) do { \
	v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32); \
	v2 += v3; v3 = rotl(v3, 16); v3 ^= v2; \
	v0 += v3; v3 = rotl(v3, 21); v3 ^= v0; \
	v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32); \
} while (0)

/* SipHash-2-4 (Aumasson and Bernstein, 2012), written from the paper's
 * description: 2 compression rounds per 8-byte word, 4 finalisation rounds. */
uint64_t lb_siphash(const uint8_t k[16], const void *buf, size_t len)
{
	const uint8_t *in = buf;
	uint64_t k0 = load64_le(k), k1 = load64_le(k + 8);
	uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
	uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
	uint64_t v3 = 0x7465646279746573ULL ^ k1;
	size_t whole = len & ~(size_t)7;
	uint64_t m, b = (uint64_t)len << 56;

	for (size_t i = 0; i < whole; i += 8) {
		m = load64_le(in + i);
		v3 ^= m;
		SIPROUND(v0, v1, v2, v3);
		SIPROUND(v0, v1, v2, v3);
		v0 ^= m;
	}
	for (size_t i = 0; i < (len & 7); i++)
		b |= (uint64_t)in[whole + i] << (8 * i);
	v3 ^= b;
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	v0 ^= b;
	v2 ^= 0xff;
	for (int i = 0; i < 4; i++)
		SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

/* IPv4 /24 keeps 3 bytes, IPv6 /64 keeps 8: the client's NAT pool or
 * delegated prefix (nginx ip_hash uses the first three octets too). */
uint64_t lb_hash_addr(const struct lb_addr *a, int prefix, uint64_t seed)
{
	size_t n = a->len;

	if (prefix)
		n = a->len == 4 ? 3 : a->len == 16 ? 8 : a->len;
	return XXH3_64bits_withSeed(a->bytes, n, seed ^ a->len);
}
