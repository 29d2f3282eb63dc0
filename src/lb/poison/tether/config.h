/* The pure core (src/lb) and the HTTP parsers (src/http) sit below the
 * configuration: this header shadows include/tether/config.h on their
 * include paths so that a stray include fails. */
#error "src/lb and src/http are below the configuration layer (see docs/internals.md)"
