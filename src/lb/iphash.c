/*
 * tether - consistent IP-hash: a weighted Maglev table, or plain modulo.
 *
 * Maglev (Eisenbud et al., NSDI'16, section 3.4): each server has a
 * permutation of the M table slots, derived from its *name* hash (offset =
 * h1 mod M, skip = h2 mod (M-1) + 1, M prime), and servers take turns
 * claiming their next free preferred slot until the table is full.  Members
 * are sorted by name hash first, so the table depends only on the set of
 * (name, weight) pairs: reordering the config or changing an address moves
 * nobody, and two tether instances with the same list agree on every client.
 *
 * Weights: each member's quota is its weight share of M (floor, with the
 * remainder handed out by largest fraction), and a member stops claiming
 * once it has its quota, so every share is within one slot of exact.
 *
 * Health never rebuilds the table.  When the table's choice cannot take a
 * client (down, draining, full, already tried, or over the bounded-load
 * cap), the client walks *its own* preference order: further lookups with
 * derived hashes, then a scan of the members from a client-specific start.
 * That order depends only on the client and the table, so no other client
 * moves when one server goes down.
 *
 * Modulo: hash mod N over the servers with weight > 0, in pool order.  Kept
 * for teaching: N -> N+1 moves N/(N+1) of the clients.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tether/err.h"
#include "tether/hash.h"
#include "tether/lb.h"
#include "core.h"

#define MAGLEV_DEFAULT 65537u      /* paper and Envoy default; prime */
#define MAGLEV_MAX 5000011u        /* Envoy's maximum table size; prime */
#define PREF_LOOKUPS 20            /* derived lookups before the scan (nginx hash tries 20) */
#define ADDR_SEED 0x1f3a5c7eULL    /* fixed: decides where clients go */

struct member {
	uint64_t name_hash;
	unsigned weight;
	int index;                  /* pool index, refreshed at every rebuild */
};

/* One table: primaries or backups. */
struct ih_table {
	struct member *m;
	int n;
	uint64_t signature;         /* of the (name_hash, weight) set the slots were built for */
	uint16_t *slot;             /* M entries, member numbers; NULL for modulo */
};

struct ih_state {
	enum lb_hash_method method;
	enum lb_hash_key key;
	uint32_t size;              /* M */
	unsigned balance_factor;
	struct ih_table t[2];       /* [0] primaries, [1] backups */
};

static bool is_prime(uint32_t n)
{
	if (n < 2)
		return false;
	for (uint32_t d = 2; (uint64_t)d * d <= n; d++)
		if (n % d == 0)
			return false;
	return true;
}

#define BALANCE_FACTOR_MAX 1000    /* 10x the mean: beyond, the cap no longer bounds anything */

/* Checks the iphash parameters (used by iphash, and by cookie falling back
 * to it): a prime Maglev table no larger than Envoy's maximum, and a
 * balance factor that is off or above 100 %. */
static int ih_validate(const struct lb_params *p, char **err)
{
	uint32_t size = p->table_size ? p->table_size : MAGLEV_DEFAULT;

	if (p->hash_method == LB_HASH_MAGLEV && (!is_prime(size) || size > MAGLEV_MAX))
		return tether_err(err, -EINVAL, "iphash.table_size: %u is not a prime <= %u (Maglev needs a prime "
		                  "table size, e.g. 65537)", size, MAGLEV_MAX);
	if (p->balance_factor != 0 && (p->balance_factor <= 100 || p->balance_factor > BALANCE_FACTOR_MAX))
		return tether_err(err, -EINVAL, "iphash.balance_factor: must be 0 (off) or 101..%d (125 = at most "
		                  "1.25x the mean)", BALANCE_FACTOR_MAX);
	return 0;
}

static int ih_init(void **state, const struct lb_pool *pool, const struct lb_params *p, char **err)
{
	struct ih_state *st;
	uint32_t size = p->table_size ? p->table_size : MAGLEV_DEFAULT;
	int rc = ih_validate(p, err);

	if (rc < 0)
		return rc;
	st = lb_state_alloc(sizeof(*st), err);
	if (!st)
		return -ENOMEM;
	st->method = p->hash_method;
	st->key = p->hash_key;
	st->size = size;
	st->balance_factor = p->balance_factor;
	*state = st;
	return 0;
}

static void ih_fini(void *state)
{
	struct ih_state *st = state;

	if (!st)
		return;
	for (int i = 0; i < 2; i++) {
		free(st->t[i].m);
		free(st->t[i].slot);
	}
	free(st);
}

static int member_cmp(const void *a, const void *b)
{
	const struct member *x = a, *y = b;

	return x->name_hash < y->name_hash ? -1 : x->name_hash > y->name_hash;
}

/* Fills t->slot with the weighted Maglev population for t->m[0..n). */
static int maglev_fill(struct ih_table *t, uint32_t size)
{
	uint32_t *next = calloc((size_t)t->n, sizeof(*next));     /* permutation position */
	uint32_t *quota = calloc((size_t)t->n, sizeof(*quota));
	double *frac = calloc((size_t)t->n, sizeof(*frac));
	uint32_t *got = calloc((size_t)t->n, sizeof(*got));
	uint16_t *slot = malloc((size_t)size * sizeof(*slot));
	uint64_t wsum = 0;
	uint32_t given = 0, filled = 0;
	int rc = -ENOMEM;

	if (!next || !quota || !frac || !got || !slot)
		goto out;
	for (int i = 0; i < t->n; i++)
		wsum += t->m[i].weight;
	for (int i = 0; i < t->n; i++) {
		double exact = (double)size * t->m[i].weight / (double)wsum;

		quota[i] = (uint32_t)exact;
		frac[i] = exact - quota[i];
		given += quota[i];
	}
	while (given < size) {          /* largest remainders first; ties by name-hash order */
		int best = 0;

		for (int i = 1; i < t->n; i++)
			if (frac[i] > frac[best])
				best = i;
		quota[best]++;
		frac[best] = -1.0;
		given++;
	}
	memset(slot, 0xff, (size_t)size * sizeof(*slot));
	while (filled < size) {
		for (int i = 0; i < t->n && filled < size; i++) {
			uint64_t h = t->m[i].name_hash;
			uint32_t offset = (uint32_t)(h % size);
			uint32_t skip = (uint32_t)((h >> 32) % (size - 1)) + 1;
			uint32_t c;

			if (got[i] >= quota[i])
				continue;
			do {
				c = (uint32_t)((offset + (uint64_t)next[i] * skip) % size);
				next[i]++;
			} while (slot[c] != UINT16_MAX);
			slot[c] = (uint16_t)i;
			got[i]++;
			filled++;
		}
	}
	free(t->slot);
	t->slot = slot;
	slot = NULL;
	rc = 0;
out:
	free(next);
	free(quota);
	free(frac);
	free(got);
	free(slot);
	return rc;
}

/* Collects the members of one table (backup = which); rebuilds the slots
 * only when the (name, weight) set changed. */
static void table_rebuild(struct ih_state *st, struct ih_table *t, const struct lb_pool *pool, bool backup)
{
	int n = 0;
	uint64_t sig = 0x9e3779b97f4a7c15ULL;
	struct member *m = realloc(t->m, (size_t)(pool->nservers ? pool->nservers : 1) * sizeof(*m));

	if (!m)
		return;     /* keep the previous table: clients keep their servers */
	t->m = m;
	for (int i = 0; i < pool->nservers && n < UINT16_MAX; i++) {
		const struct lb_server *s = pool->servers[i];

		if (s->backup != backup || s->weight == 0)
			continue;
		m[n].name_hash = s->name_hash;
		m[n].weight = s->weight;
		m[n].index = i;
		n++;
	}
	t->n = n;
	if (st->method == LB_HASH_MODULO)
		return;     /* modulo uses pool order */
	qsort(m, (size_t)n, sizeof(*m), member_cmp);
	for (int i = 0; i < n; i++) {
		uint64_t pair[2] = { m[i].name_hash, m[i].weight };

		sig = lb_hash(pair, sizeof(pair), sig);
	}
	if (n > 0 && (sig != t->signature || !t->slot)) {
		if (maglev_fill(t, st->size) == 0)
			t->signature = sig;
	}
}

static void ih_rebuild(void *state, const struct lb_pool *pool)
{
	struct ih_state *st = state;

	table_rebuild(st, &st->t[0], pool, false);
	table_rebuild(st, &st->t[1], pool, true);
}

/* Bounded load (Mirrokni, Thorup, Zadimoghaddam, arXiv 1608.01350; HAProxy
 * hash-balance-factor): a server may hold at most
 * ceil(factor/100 * (total_active + 1) / eligible) connections. */
static unsigned load_cap(const struct ih_state *st, const struct lb_pool *pool)
{
	unsigned eligible = 0;

	if (!st->balance_factor)
		return 0;
	for (int i = 0; i < pool->nservers; i++)
		eligible += lb_server_eligible(pool, pool->servers[i]) && pool->servers[i]->weight > 0;
	if (!eligible)
		return 0;
	return (unsigned)(((uint64_t)st->balance_factor * (pool->total_active + 1) + 100u * eligible - 1) /
	                  (100u * eligible));
}

static bool takes(const struct lb_pool *pool, const struct lb_key *key, int idx, unsigned cap)
{
	const struct lb_server *s = pool->servers[idx];

	return lb_server_eligible(pool, s) && !lb_key_tried(key, s->id) && (cap == 0 || s->active + 1 <= cap);
}

/* Member number for the j-th lookup of hash h. */
static int lookup(const struct ih_state *st, const struct ih_table *t, uint64_t h, int j)
{
	uint64_t hj = j == 0 ? h : lb_hash(&h, sizeof(h), (uint64_t)j);

	if (st->method == LB_HASH_MODULO)
		return (int)(hj % (uint64_t)t->n);
	return t->slot ? t->slot[hj % st->size] : (int)(hj % (uint64_t)t->n);
}

static int walk(const struct ih_state *st, const struct ih_table *t, const struct lb_pool *pool,
                const struct lb_key *key, uint64_t h, unsigned cap)
{
	int first;

	for (int j = 0; j < PREF_LOOKUPS; j++) {
		int mi = lookup(st, t, h, j);

		if (takes(pool, key, t->m[mi].index, cap))
			return t->m[mi].index;
	}
	first = (int)(h % (uint64_t)t->n);
	for (int k = 0; k < t->n; k++) {
		int mi = (first + k) % t->n;

		if (takes(pool, key, t->m[mi].index, cap))
			return t->m[mi].index;
	}
	return -1;
}

static int ih_pick(void *state, const struct lb_pool *pool, const struct lb_key *key,
                   uint64_t now_ms, struct lb_rng *rng)
{
	const struct ih_state *st = state;
	const struct ih_table *t = &st->t[pool->use_backup ? 1 : 0];
	uint64_t h;
	unsigned cap;
	int idx;

	if (t->n == 0)
		return -1;
	h = lb_hash_addr(&key->addr, st->key == LB_KEY_PREFIX, ADDR_SEED);
	cap = load_cap(st, pool);
	idx = walk(st, t, pool, key, h, cap);
	if (idx < 0 && cap)
		idx = walk(st, t, pool, key, h, 0);     /* everyone at the cap: ignore it */
	return idx;
}

/* The Maglev table of an iphash pool (primaries or backups), or NULL. */
static const struct ih_table *maglev_table(const struct lb_pool *pool, bool backup)
{
	const struct ih_state *st = pool->state;

	if (pool->algo != &lb_algo_iphash || st->method != LB_HASH_MAGLEV || !st->t[backup ? 1 : 0].slot)
		return NULL;
	return &st->t[backup ? 1 : 0];
}

int lb_iphash_entries(const struct lb_pool *pool, const struct lb_server *s)
{
	const struct ih_state *st = pool->state;
	const struct ih_table *t = maglev_table(pool, s->backup);
	int count = 0, mi = -1;

	if (!t)
		return -1;
	for (int i = 0; i < t->n; i++)
		if (t->m[i].index == s->index)
			mi = i;
	if (mi < 0)
		return 0;
	for (uint32_t i = 0; i < st->size; i++)
		count += t->slot[i] == mi;
	return count;
}

int lb_iphash_slot(const struct lb_pool *pool, bool backup, uint32_t slot)
{
	const struct ih_state *st = pool->state;
	const struct ih_table *t = maglev_table(pool, backup);

	if (!t || slot >= st->size)
		return -1;
	return t->m[t->slot[slot]].index;
}

const struct lb_algo lb_algo_iphash = {
	.name = "iphash",
	.flags = LB_F_NEEDS_ADDR | LB_F_WEIGHTS,
	.validate = ih_validate,
	.init = ih_init,
	.fini = ih_fini,
	.rebuild = ih_rebuild,
	.pick = ih_pick,
};
