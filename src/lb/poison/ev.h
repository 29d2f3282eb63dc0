/* The pure core (src/lb) must not use libev: this header shadows the real
 * <ev.h> on the core's include path so that a stray include fails. */
#error "src/lb is the pure algorithm core: no libev here (see DESIGN.md)"
