/*
 * tether - server pools: membership, health/admin state, the generic pick
 * path (stick table, then the algorithm) and the affinity counters.
 *
 * Every change of membership, weight, health or admin state ends in
 * pool_changed(), which recomputes use_backup and calls algo->rebuild(): the
 * algorithms never see a stale server index.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tether/err.h"
#include "tether/hash.h"
#include "tether/lb.h"
#include "tether/stick.h"
#include "core.h"

/* Seed of name hashes: fixed forever, since it decides where clients go. */
#define NAME_HASH_SEED 0x7e7e7e7eULL

void lb_params_default(struct lb_params *p)
{
	memset(p, 0, sizeof(*p));
	p->hash_method = LB_HASH_MAGLEV;
	p->table_size = 65537;          /* Maglev paper and Envoy default */
	p->hash_key = LB_KEY_ADDRESS;
	p->fallback = NULL;             /* cookie: leastconn */
	p->stick_timeout_ms = LB_STICK_TIMEOUT_DEFAULT_MS;
	hc_params_default(&p->health);
	p->retries = 2;                 /* as nginx's proxy_next_upstream_tries: a few, not all */
}

void *lb_state_alloc(size_t size, char **err)
{
	void *st = calloc(1, size);

	if (!st)
		tether_err(err, -ENOMEM, "out of memory");
	return st;
}

int lb_pool_init(struct lb_pool *pool, const struct lb_algo *algo, const struct lb_params *p, char **err)
{
	int rc;

	memset(pool, 0, sizeof(*pool));
	pool->algo = algo;
	pool->params = *p;
	pool->params.cookie_secret[sizeof(pool->params.cookie_secret) - 1] = '\0';
	if (p->stick_size) {
		pool->stick = lb_stick_new(p->stick_size, p->stick_timeout_ms);
		if (!pool->stick)
			return tether_err(err, -ENOMEM, "out of memory for the stick table");
	}
	rc = algo->init(&pool->state, pool, &pool->params, err);
	if (rc < 0) {
		lb_stick_free(pool->stick);
		pool->stick = NULL;
		return rc;
	}
	return 0;
}

void lb_pool_fini(struct lb_pool *pool)
{
	if (pool->algo && pool->algo->fini)
		pool->algo->fini(pool->state);
	lb_stick_free(pool->stick);
	free(pool->servers);
	memset(pool, 0, sizeof(*pool));
}

static bool primary_ready(const struct lb_server *s)
{
	return !s->backup && s->up && s->admin == LB_ADMIN_READY && s->weight > 0;
}

static void pool_changed(struct lb_pool *pool)
{
	bool any = false;

	for (int i = 0; i < pool->nservers && !any; i++)
		any = primary_ready(pool->servers[i]);
	pool->use_backup = !any;
	pool->algo->rebuild(pool->state, pool);
}

struct lb_server *lb_pool_find(const struct lb_pool *pool, const char *name)
{
	for (int i = 0; i < pool->nservers; i++)
		if (strcmp(pool->servers[i]->name, name) == 0)
			return pool->servers[i];
	return NULL;
}

static struct lb_server *find_id(const struct lb_pool *pool, uint32_t id)
{
	for (int i = 0; i < pool->nservers; i++)
		if (pool->servers[i]->id == id)
			return pool->servers[i];
	return NULL;
}

int lb_pool_add(struct lb_pool *pool, struct lb_server *s)
{
	if (lb_pool_find(pool, s->name))
		return -EEXIST;
	if (pool->nservers == pool->cap) {
		int cap = pool->cap ? pool->cap * 2 : 8;
		struct lb_server **n = realloc(pool->servers, (size_t)cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		pool->servers = n;
		pool->cap = cap;
	}
	s->name[LB_NAME_MAX - 1] = '\0';
	if (s->weight > LB_WEIGHT_MAX)
		s->weight = LB_WEIGHT_MAX;
	s->id = pool->next_id++;
	s->index = pool->nservers;
	s->name_hash = lb_hash(s->name, strlen(s->name), NAME_HASH_SEED);
	lb_cookie_value(pool->params.cookie_secret, s->name, s->cookie);
	s->admin = LB_ADMIN_READY;
	s->active = 0;
	memset(&s->cnt, 0, sizeof(s->cnt));
	pool->servers[pool->nservers++] = s;
	pool_changed(pool);
	return 0;
}

int lb_pool_del(struct lb_pool *pool, struct lb_server *s)
{
	int i = s->index;

	if (i < 0 || i >= pool->nservers || pool->servers[i] != s)
		return -ENOENT;
	if (s->active > 0)
		return -EBUSY;
	memmove(&pool->servers[i], &pool->servers[i + 1],
	        (size_t)(pool->nservers - i - 1) * sizeof(*pool->servers));
	pool->nservers--;
	for (; i < pool->nservers; i++)
		pool->servers[i]->index = i;
	s->index = -1;
	if (pool->stick)
		lb_stick_drop_server(pool->stick, s->id);
	pool_changed(pool);
	return 0;
}

void lb_server_set_up(struct lb_pool *pool, struct lb_server *s, bool up)
{
	if (s->up == up)
		return;
	s->up = up;
	if (!up && pool->stick)
		lb_stick_drop_server(pool->stick, s->id);
	pool_changed(pool);
}

void lb_server_set_admin(struct lb_pool *pool, struct lb_server *s, enum lb_admin a)
{
	if (s->admin == a)
		return;
	s->admin = a;
	pool_changed(pool);
}

void lb_server_set_weight(struct lb_pool *pool, struct lb_server *s, unsigned weight)
{
	if (weight > LB_WEIGHT_MAX)
		weight = LB_WEIGHT_MAX;
	if (s->weight == weight)
		return;
	s->weight = weight;
	pool_changed(pool);
}

bool lb_server_usable(const struct lb_server *s)
{
	return s->up && s->admin == LB_ADMIN_READY && (s->maxconn == 0 || s->active < s->maxconn);
}

bool lb_server_full(const struct lb_server *s)
{
	return s->maxconn && s->active >= s->maxconn;
}

bool lb_server_eligible(const struct lb_pool *pool, const struct lb_server *s)
{
	return lb_server_usable(s) && s->backup == pool->use_backup;
}

bool lb_key_tried(const struct lb_key *key, uint32_t id)
{
	for (unsigned i = 0; i < key->ntried; i++)
		if (key->tried[i] == id)
			return true;
	return false;
}

void lb_key_add_tried(struct lb_key *key, const struct lb_server *s)
{
	if (key->ntried < LB_MAX_TRIED && !lb_key_tried(key, s->id))
		key->tried[key->ntried++] = s->id;
}

bool lb_cookie_names(const struct lb_key *key, const struct lb_server *s)
{
	return key->cookie && key->cookie_len == LB_COOKIE_LEN && memcmp(key->cookie, s->cookie, LB_COOKIE_LEN) == 0;
}

/* The server whose cookie value the client sent, if any. */
static struct lb_server *find_cookie(const struct lb_pool *pool, const struct lb_key *key)
{
	if (!key->cookie)
		return NULL;
	for (int i = 0; i < pool->nservers; i++)
		if (lb_cookie_names(key, pool->servers[i]))
			return pool->servers[i];
	return NULL;
}

/* A ready primary is full: with no other primary to take a connection, the
 * backups take it (HAProxy queues instead, and uses backups only once every
 * primary is down; tether prefers serving to waiting). */
static bool primary_full(const struct lb_pool *pool)
{
	for (int i = 0; i < pool->nservers; i++)
		if (primary_ready(pool->servers[i]) && lb_server_full(pool->servers[i]))
			return true;
	return false;
}

static int algo_pick(struct lb_pool *pool, const struct lb_key *key, uint64_t now_ms, struct lb_rng *rng)
{
	int idx = pool->algo->pick(pool->state, pool, key, now_ms, rng);

	if (idx < 0 && !pool->use_backup && primary_full(pool)) {
		pool->use_backup = true;        /* the algorithms read the active set from it */
		idx = pool->algo->pick(pool->state, pool, key, now_ms, rng);
		pool->use_backup = false;
	}
	return idx;
}

bool lb_pool_full(const struct lb_pool *pool, const struct lb_key *key)
{
	bool backups = !pool->use_backup && primary_full(pool);

	for (int i = 0; i < pool->nservers; i++) {
		const struct lb_server *s = pool->servers[i];

		if (s->up && s->admin == LB_ADMIN_READY && s->weight > 0 && lb_server_full(s) &&
		    (s->backup == pool->use_backup || (s->backup && backups)) && !lb_key_tried(key, s->id))
			return true;
	}
	return false;
}

/*
 * Counters: a hit is counted on the server an affinity (cookie or stick
 * entry) named and that got the connection; a redispatch on the server an
 * affinity named but that could not take it; a miss on the chosen server
 * when the client brought no valid affinity (a new client).
 */
int lb_pick(struct lb_pool *pool, const struct lb_key *key, uint64_t now_ms, struct lb_rng *rng)
{
	bool sticky = pool->stick && key->addr.len;
	bool affinity_known = false;
	struct lb_server *s;
	uint32_t id;
	int idx;

	if (sticky && lb_stick_get(pool->stick, &key->addr, now_ms, &id)) {
		s = find_id(pool, id);
		if (s && lb_server_eligible(pool, s) && !lb_key_tried(key, id)) {
			s->cnt.affinity_hits++;
			idx = s->index;
			goto done;
		}
		if (s)
			s->cnt.redispatches++;
		affinity_known = true;
	}
	idx = algo_pick(pool, key, now_ms, rng);
	if (idx < 0)
		return -1;
	s = pool->servers[idx];
	if (pool->algo->flags & LB_F_NEEDS_HTTP) {
		struct lb_server *named = find_cookie(pool, key);

		if (named == s)
			s->cnt.affinity_hits++;
		else if (named)
			named->cnt.redispatches++;
		else if (!affinity_known)
			s->cnt.affinity_misses++;
	} else if (sticky && !affinity_known) {
		s->cnt.affinity_misses++;
	}
done:
	if (sticky)
		lb_stick_put(pool->stick, &key->addr, s->id, now_ms);
	s->cnt.picks++;
	return idx;
}

void lb_conn_open(struct lb_pool *pool, struct lb_server *s)
{
	s->active++;
	pool->total_active++;
	if (pool->algo->conn_open)
		pool->algo->conn_open(pool->state, pool, s->index);
}

void lb_conn_close(struct lb_pool *pool, struct lb_server *s)
{
	if (s->active > 0) {
		s->active--;
		pool->total_active--;
	}
	if (pool->algo->conn_close && s->index >= 0)
		pool->algo->conn_close(pool->state, pool, s->index);
}

void lb_cookie_value(const char *secret, const char *name, char out[LB_COOKIE_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t key[16];
	uint64_t k0, k1, v;

	/* 128-bit SipHash key from the secret: two differently seeded XXH3. */
	k0 = lb_hash(secret, strlen(secret), 0x746574686572ULL);
	k1 = lb_hash(secret, strlen(secret), 0x636f6f6b6965ULL);
	for (int i = 0; i < 8; i++) {
		key[i] = (uint8_t)(k0 >> (8 * i));
		key[8 + i] = (uint8_t)(k1 >> (8 * i));
	}
	v = lb_siphash(key, name, strlen(name));
	for (int i = 0; i < LB_COOKIE_LEN; i++)
		out[i] = hex[(v >> (60 - 4 * i)) & 0xf];
	out[LB_COOKIE_LEN] = '\0';
}
