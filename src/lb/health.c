/*
 * tether - the health state machine (see the contract in health.h).
 *
 * One integer as in HAProxy's check.c: 0..rise-1 is DOWN, rise..rise+fall-1
 * is UP.  Moving up from rise-1 to rise brings the server UP; a failure in
 * the UP range moves down, and leaving the UP range brings it DOWN.  A
 * configured server starts at the top (needs `fall` failures to go DOWN); a
 * server added at runtime starts at 0 (needs `rise` successes).
 */
#include "tether/health.h"
#include "tether/lb.h"

void hc_params_default(struct hc_params *p)
{
	p->interval_ms = 2000;   /* HAProxy `inter` default */
	p->timeout_ms = 1000;    /* glb-healthcheck default; HAProxy uses inter */
	p->rise = 2;             /* HAProxy `rise` default */
	p->fall = 3;             /* HAProxy `fall` default */
}

void hc_init(struct hc_state *st, const struct hc_params *p, bool start_up)
{
	st->up = start_up;
	st->health = start_up ? p->rise + p->fall - 1 : 0;
	st->transitions = 0;
}

enum hc_change hc_report(struct hc_state *st, const struct hc_params *p, bool success)
{
	unsigned top = p->rise + p->fall - 1;

	if (success) {
		if (st->health < top)
			st->health++;
		if (!st->up && st->health >= p->rise) {
			st->up = true;
			st->health = top;   /* a fresh UP needs `fall` failures to go DOWN */
			st->transitions++;
			return HC_WENT_UP;
		}
		return HC_SAME;
	}
	if (st->up) {
		/* UP range is rise..top: `fall` failures from the top leave it */
		if (st->health > p->rise) {
			st->health--;
			return HC_SAME;
		}
		st->up = false;
		st->health = 0;     /* a fresh DOWN needs `rise` successes to go UP */
		st->transitions++;
		return HC_WENT_DOWN;
	}
	if (st->health > 0)
		st->health--;
	return HC_SAME;
}

uint32_t hc_next_delay_ms(const struct hc_params *p, struct lb_rng *rng)
{
	uint32_t span = p->interval_ms / 5;     /* +-10% */

	if (span == 0)
		return p->interval_ms;
	return p->interval_ms - span / 2 + lb_rng_below(rng, span + 1);
}
