/* The pure core (src/lb) and src/http must not read configuration files. */
#error "src/lb and src/http do not use libconfig (see docs/internals.md)"
