/*
 * tether - the health state machine, pure (src/lb/health.c).
 *
 * As HAProxy: one integer `health` in 0 .. rise+fall-1.  The server is DOWN
 * while health < rise and UP once it reaches rise; from then on it stays UP
 * until health falls below rise again.  A success moves health up by one
 * (capped at rise+fall-1), a failure down by one (floored at 0), except that
 * a failure seen while UP drops health to at most rise+fall-1 - 1 first, so
 * an UP server at the top goes DOWN after exactly `fall` consecutive failures
 * and a DOWN server at 0 comes UP after exactly `rise` consecutive successes.
 *
 * Used by the daemon for active and passive checks and by tether-sim to
 * model detection delay.
 */
#ifndef TETHER_HEALTH_H
#define TETHER_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

struct lb_rng;

struct hc_params {
	uint32_t interval_ms;    /* between checks; default 2000 (HAProxy inter) */
	uint32_t timeout_ms;     /* one check; default 1000 */
	unsigned rise;           /* default 2 */
	unsigned fall;           /* default 3 */
};

struct hc_state {
	unsigned health;         /* 0 .. rise+fall-1 */
	bool up;
	uint64_t transitions;    /* UP->DOWN and DOWN->UP changes */
};

enum hc_change { HC_SAME = 0, HC_WENT_UP = 1, HC_WENT_DOWN = -1 };

void hc_params_default(struct hc_params *p);
/* start_up: a configured server starts UP at the top of its range (needs
 * `fall` failures); a server added at runtime starts DOWN at 0 (needs
 * `rise` successes before it gets traffic). */
void hc_init(struct hc_state *st, const struct hc_params *p, bool start_up);
/* One check (or passive observation) result. */
enum hc_change hc_report(struct hc_state *st, const struct hc_params *p, bool success);
/* Delay until the next check: interval with up to +-10% jitter so checks of
 * many servers do not fire together. */
uint32_t hc_next_delay_ms(const struct hc_params *p, struct lb_rng *rng);

#endif
