/*
 * tether - the last minutes of an instance, for the dashboard's chart
 * (src/daemon/io/history.c): once a second the connections accepted and
 * the failures since the previous second, and the connections open, kept
 * in rings of HISTORY_LEN samples and served inside /stats.
 */
#ifndef TETHER_HISTORY_H
#define TETHER_HISTORY_H

#include <ev.h>
#include <stdint.h>

#include "ctl.h"
#include "worker.h"

#define HISTORY_LEN 300         /* samples: five minutes at one a second */
#define HISTORY_STEP 1.0        /* seconds between samples */

struct t_history {
	ev_timer timer;
	struct t_worker *w;             /* not owned; NULL while stopped */
	uint64_t last_conn, last_fail;  /* the sums at the previous sample */
	unsigned head, count;           /* next slot; samples kept */
	uint32_t conn[HISTORY_LEN];     /* connections accepted in that second */
	uint32_t fail[HISTORY_LEN];     /* failed connects + no-server refusals + PROXY header errors */
	uint32_t active[HISTORY_LEN];   /* connections open at the sample */
};

/* Samples w's running generation every HISTORY_STEP on its loop (the timer
 * alone does not keep the loop running). */
void history_start(struct t_history *h, struct t_worker *w);
void history_stop(struct t_history *h);
/* "history":{...} (oldest sample first), for /stats. */
void history_json(const struct t_history *h, struct sbuf *out);

#endif
