/* The pure core (src/lb) and src/http must not use libev: this header shadows the real
 * <ev.h> on the core's include path so that a stray include fails. */
#error "src/lb and src/http are pure: no libev here (see docs/internals.md)"
