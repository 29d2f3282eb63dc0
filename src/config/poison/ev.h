/* The configuration layer (src/config) is shared with tether-sim: it does
 * no I/O and knows no event loop.  This header shadows <ev.h> on its
 * include path so that a stray include fails. */
#error "src/config does not use libev (see docs/internals.md)"
