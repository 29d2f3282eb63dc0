/*
 * tether-sim - a Kubernetes HorizontalPodAutoscaler on CPU, as
 * kube-controller-manager runs it (sources §1: replica_calculator.go,
 * horizontal.go; autoscaling/v2 default behavior).
 *
 * Every hpa.sync:
 *  1. Pods are grouped as groupPods does: pods being deleted and dead pods
 *     are ignored; pods not ready, or ready for less than one metric window
 *     (taken to be one sync period), are "unready"; the rest are ready and
 *     have a metric.  With no ready pod there is no recommendation.
 *  2. Utilisation = int(sum of CPU used * 100 / sum of CPU requested) over
 *     the ready pods, a whole percent; ratio = utilisation / target.
 *  3. With no unready pod, or ratio <= 1: no change within the tolerance
 *     |1 - ratio| <= 0.1, else ceil(ratio * ready).  Scaling up with unready
 *     pods, those count as 0 % and the ratio is computed again; no change if
 *     it is within the tolerance or changed direction, else
 *     ceil(new ratio * (ready + unready)).
 *  4. Stabilization: the recommendation kept is the highest raw one (as
 *     computed in 3, before any limit) of the last `stabilization` seconds
 *     when scaling down (scale-up window 0); raw recommendations are
 *     stored with their time and dropped when older than the window.
 *  5. Rate: up by at most max(100 %, 4 pods) of the replicas at the start
 *     of the 15 s period (scale events of the period are remembered);
 *     down by at most 100 % per 15 s; then within min .. max.
 *
 * CPU model: a pod requests `concurrency` CPUs (one per worker); a request
 * uses CPU only for its service time, not while it waits for Redis or in
 * the queue.  Utilisation is thus the share of the workers' time spent
 * computing.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

#define TOLERANCE 0.1           /* HorizontalPodAutoscalerTolerance */
#define POLICY_PERIOD_S 15.0    /* default behavior: periodSeconds of both policies */

int sim_hpa_desired(int current, int util_percent, double target_percent)
{
	double ratio = util_percent / target_percent;

	if (fabs(1.0 - ratio) <= TOLERANCE)
		return current;
	return (int)ceil(ratio * current);
}

int sim_hpa_scale_up_limit(int current)
{
	/* default behavior: 100 % or 4 pods per 15 s, selectPolicy Max */
	return current * 2 > current + 4 ? current * 2 : current + 4;
}

/* Steps 1-3: the raw recommendation, or -1 when there is none. */
static int recommend(struct sim *S, int current)
{
	const struct sim_params *p = S->p;
	double window = p->hpa_sync_s, t = now_s(S);
	double used = 0, requested = 0, per_pod = p->concurrency * window * US;
	int ready = 0, unready = 0, util, desired;
	double ratio;

	for (int i = 0; i < S->nslots; i++) {
		struct pod *pd = &S->pods[i];
		double cpu = pd->cpu_us - pd->cpu_at_sync;

		pd->cpu_at_sync = pd->cpu_us;
		if (!pd->exists || pd->deleting || !pd->alive)
			continue;
		if (!pd->ready || pd->ready_since > t - window) {
			unready++;
			continue;
		}
		used += cpu;
		requested += per_pod;
		ready++;
	}
	if (!ready)
		return -1;
	util = (int)(used * 100 / requested);
	ratio = util / p->hpa_target;
	if (!(unready > 0 && ratio > 1.0)) {
		if (fabs(1.0 - ratio) <= TOLERANCE)
			return current;
		return (int)ceil(ratio * ready);
	}
	util = (int)(used * 100 / (requested + unready * per_pod));     /* unready pods at 0 % */
	ratio = util / p->hpa_target;
	if (fabs(1.0 - ratio) <= TOLERANCE || ratio < 1.0)
		return current;
	desired = (int)ceil(ratio * (ready + unready));
	return desired < current ? current : desired;
}

/* Step 4: stores the raw recommendation; returns the stabilized one. */
static int stabilize(struct sim *S, int current, int raw)
{
	struct hpa_state *h = &S->hpa;
	double t = now_s(S), cutoff = t - S->p->hpa_stabilize_s;
	int down = raw, n = 0;

	for (int j = 0; j < h->nrecs; j++)
		if (h->recs[j].t > cutoff) {
			down = h->recs[j].v > down ? h->recs[j].v : down;
			h->recs[n++] = h->recs[j];
		}
	h->nrecs = n;
	if (h->nrecs == h->caprecs) {
		int cap = h->caprecs ? h->caprecs * 2 : 32;
		struct hpa_rec *r = realloc(h->recs, (size_t)cap * sizeof(*r));

		if (!r) {
			S->nomem = 1;
			return current;
		}
		h->recs = r;
		h->caprecs = cap;
	}
	h->recs[h->nrecs++] = (struct hpa_rec){ t, raw };
	if (raw > current)
		return raw;
	return down < current ? down : current;
}

/* Step 5. */
static int limit_rate(struct sim *S, int current, int want)
{
	const struct sim_params *p = S->p;
	struct hpa_state *h = &S->hpa;
	double t = now_s(S);
	int changed = 0, n = 0, start, cap;

	for (int j = 0; j < h->nev; j++)
		if (h->ev[j].t > t - POLICY_PERIOD_S) {
			changed += h->ev[j].v;
			h->ev[n++] = h->ev[j];
		}
	h->nev = n;
	start = current - changed;          /* replicas at the start of the period */
	if (want > current) {
		cap = sim_hpa_scale_up_limit(start);
		cap = cap < current ? current : cap;
		cap = cap < p->hpa_max ? cap : p->hpa_max;
		return want > cap ? cap : want;
	}
	if (want < current)
		return want < p->hpa_min ? p->hpa_min : want;   /* 100 % per period: only min limits */
	return want;
}

/* Scale-down removes pods not ready yet first (newest first), then the
 * most recently ready, as the ReplicaSet controller ranks them. */
static void scale_down(struct sim *S, int n)
{
	while (n-- > 0) {
		int best = -1;

		for (int i = 0; i < S->nslots; i++) {
			const struct pod *pd = &S->pods[i], *b = best >= 0 ? &S->pods[best] : NULL;

			if (!pd->exists || pd->deleting || !pd->alive)
				continue;
			if (!b || (!pd->ready && b->ready) ||
			    (pd->ready == b->ready && (pd->ready ? pd->ready_since >= b->ready_since : pd->id > b->id)))
				best = i;
		}
		if (best < 0)
			return;
		pod_delete(S, best);
	}
}

void hpa_sync(struct sim *S)
{
	const struct sim_params *p = S->p;
	struct hpa_state *h = &S->hpa;
	int current = S->spec, desired;

	if (current > p->hpa_max)
		desired = p->hpa_max;
	else if (current < p->hpa_min)
		desired = p->hpa_min;
	else if ((desired = recommend(S, current)) < 0)
		desired = current;              /* no metrics: no decision */
	else
		desired = limit_rate(S, current, stabilize(S, current, desired));
	h->desired = desired;
	if (desired != current) {
		sim_mark(S, -1, 0, "HPA %d->%d", current, desired);
		if (h->nev < (int)(sizeof(h->ev) / sizeof(h->ev[0])))
			h->ev[h->nev++] = (struct hpa_rec){ now_s(S), desired - current };
		S->spec = desired;
		if (desired > current) {
			for (int n = current; n < desired; n++)
				pod_new(S, false);
			S->last_scale_t = now_s(S);
			S->rebalanced = false;
		} else {
			scale_down(S, current - desired);
		}
	}
	push(S, now_s(S) + p->hpa_sync_s, EV_HPA, 0, 0);
}

void hpa_fini(struct sim *S)
{
	free(S->hpa.recs);
}
