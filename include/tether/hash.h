/*
 * tether - hashing helpers of the pure core (src/lb/hash.c).
 *
 * lb_hash() is XXH3-64 (libxxhash): fast, well distributed, stable across
 * versions and machines, so two tether instances agree on every key.
 * lb_siphash() is SipHash-2-4, a keyed PRF, used where a value must not
 * reveal its input (affinity cookies).
 */
#ifndef TETHER_HASH_H
#define TETHER_HASH_H

#include <stddef.h>
#include <stdint.h>

struct lb_addr;
struct lb_key;

/* XXH3-64 of buf with seed. */
uint64_t lb_hash(const void *buf, size_t len, uint64_t seed);
/* SipHash-2-4 of buf under the 128-bit key k. */
uint64_t lb_siphash(const uint8_t k[16], const void *buf, size_t len);
/* Hash of a client address; prefix != 0 keeps IPv4 /24 or IPv6 /64 only. */
uint64_t lb_hash_addr(const struct lb_addr *a, int prefix, uint64_t seed);

#endif
