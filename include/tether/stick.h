/*
 * tether - the stick table, pure (src/lb/stick.c).
 *
 * Client address -> server id with an idle timeout, bounded, least recently
 * used evicted first.  This is kube-proxy's ClientIP session affinity
 * (`-m recent --rcheck --seconds T --reap`, refreshed by every connection, so
 * T is an idle timeout) and HAProxy's `stick on src`.
 */
#ifndef TETHER_STICK_H
#define TETHER_STICK_H

#include <stdbool.h>
#include <stdint.h>

struct lb_addr;
struct lb_stick;

/* NULL on allocation failure.  size >= 1 entries; timeout in ms. */
struct lb_stick *lb_stick_new(uint32_t size, uint64_t timeout_ms);
void lb_stick_free(struct lb_stick *t);
/* Server id for addr if present and not idle-expired at now_ms (refreshes
 * nothing); true when found. */
bool lb_stick_get(struct lb_stick *t, const struct lb_addr *a, uint64_t now_ms, uint32_t *id);
/* Inserts or refreshes addr -> id at now_ms, evicting the LRU entry when full. */
void lb_stick_put(struct lb_stick *t, const struct lb_addr *a, uint32_t id, uint64_t now_ms);
/* Removes every entry pointing at server id. */
void lb_stick_drop_server(struct lb_stick *t, uint32_t id);
/* Live entries (expired ones not yet reaped may be counted). */
uint32_t lb_stick_count(const struct lb_stick *t);

#endif
