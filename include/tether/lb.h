/*
 * tether - the pure load-balancing core: servers, pools, algorithms.
 *
 * Everything declared here is pure: no sockets, no libev, no clock reads, no
 * global random state.  Time (`now_ms`, any monotonic origin) and a random
 * generator are passed in, which is what lets tether-sim run the exact code
 * that balances real traffic.
 *
 * Ownership: a struct lb_server is created and freed by its owner (the
 * daemon embeds it in its per-server object, the simulator in its pod); the
 * pool only points to it between lb_pool_add() and lb_pool_del().
 * Server indexes (pool->servers[i]) are only valid until the next
 * add/del; anything kept across events (a connection, a tried list) keeps
 * the server pointer or its stable `id`.
 */
#ifndef TETHER_LB_H
#define TETHER_LB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tether/health.h"

#define LB_NAME_MAX 64          /* server/backend name, including the NUL */
#define LB_WEIGHT_MAX 256       /* as HAProxy: weights 0..256 */
#define LB_MAX_TRIED 16         /* first attempt + retries (config caps retries at 10) */
#define LB_COOKIE_LEN 16        /* hex digits of an affinity cookie value */
#define LB_RETRIES_MAX 10       /* retries after a failed connect (LB_MAX_TRIED - 1 would fit) */
#define LB_FULL (-2)            /* lb_attempt: every server it could use is at its maxconn */
#define LB_STICK_SIZE_DEFAULT 100000u            /* entries, when a stick table is on */
#define LB_STICK_TIMEOUT_DEFAULT_MS (30u * 60000u) /* idle entry lifetime (docs/algorithms.md) */

/* Algorithm capability flags (struct lb_algo.flags). */
#define LB_F_WEIGHTS    0x01u   /* honours server weights */
#define LB_F_NEEDS_ADDR 0x02u   /* pick() reads key->addr */
#define LB_F_NEEDS_HTTP 0x04u   /* pick() reads key->cookie: the daemon must peek at the request */
#define LB_F_CONNS      0x08u   /* pick() reads active connection counts */

/* Administrative state, set by the runtime API (health is separate). */
enum lb_admin {
	LB_ADMIN_READY = 0,
	LB_ADMIN_DRAIN,         /* no new connections; existing ones finish */
	LB_ADMIN_DISABLED,      /* no new connections (maintenance) */
};

/* Per-server affinity and pick counters, exported as metrics. */
struct lb_counters {
	uint64_t picks;          /* times chosen by lb_pick() */
	uint64_t affinity_hits;  /* cookie or stick entry routed to this server */
	uint64_t affinity_misses;/* chosen without a usable affinity (new client) */
	uint64_t redispatches;   /* affinity named this server but it was unusable */
};

struct lb_server {
	/* public: set by the owner before lb_pool_add() */
	char name[LB_NAME_MAX];  /* identity for hashing and cookies */
	unsigned weight;         /* 0..LB_WEIGHT_MAX; 0 = only affinity traffic */
	unsigned maxconn;        /* 0 = unlimited */
	bool backup;             /* used only when no primary server is usable */
	void *data;              /* owner's; not owned by the pool */

	/* read-only for the owner: maintained by lb_* functions */
	uint32_t id;             /* unique within the pool, never reused */
	int index;               /* current position in pool->servers */
	uint64_t name_hash;      /* lb_hash(name): stable hashing identity */
	char cookie[LB_COOKIE_LEN + 1]; /* affinity cookie value, see lb_cookie_value() */
	bool up;                 /* health, see lb_server_set_up() */
	struct hc_state hc;      /* active and passive health (lb_server_checked/observed) */
	enum lb_admin admin;
	unsigned active;         /* open connections, including ones connecting */
	struct lb_counters cnt;
};

/* A client address, normalised: IPv4 as 4 bytes, IPv6 as 16. */
struct lb_addr {
	uint8_t len;             /* 4, 16, or 0 when unknown (unix socket, sim without address) */
	uint8_t bytes[16];
};

/* What a pick may use.  Fields not relevant to the algorithm are ignored. */
struct lb_key {
	struct lb_addr addr;
	const char *cookie;      /* affinity cookie value as sent by the client, or NULL */
	size_t cookie_len;
	uint32_t tried[LB_MAX_TRIED]; /* ids of servers already tried for this connection */
	unsigned ntried;
};

/* Deterministic generator (splitmix64 state); seed it with any value. */
struct lb_rng {
	uint64_t s;
};

enum lb_hash_method { LB_HASH_MAGLEV = 0, LB_HASH_MODULO };
enum lb_hash_key { LB_KEY_ADDRESS = 0, LB_KEY_PREFIX };  /* prefix: IPv4 /24, IPv6 /64 */

struct lb_algo;

/* Algorithm parameters, copied into the pool at lb_pool_init(). */
struct lb_params {
	/* iphash */
	enum lb_hash_method hash_method;
	uint32_t table_size;     /* Maglev table size, prime; 0 = default 65537 */
	enum lb_hash_key hash_key;
	unsigned balance_factor; /* 0 = off, else > 100: cap = factor% of mean active */
	/* cookie */
	const struct lb_algo *fallback; /* NULL = leastconn */
	char cookie_secret[128]; /* key for the cookie values; "" is allowed */
	/* stick table (any algorithm); size 0 = off */
	uint32_t stick_size;
	uint64_t stick_timeout_ms;
	/* outcome policy: health rules, passive observation, retries */
	struct hc_params health; /* rise/fall (and the checks' interval and timeout) */
	bool observe;            /* real connections' outcomes count as checks */
	unsigned retries;        /* other servers tried after a failed connect, 0..LB_RETRIES_MAX */
};

struct lb_stick;  /* src/lb/stick.c */

struct lb_pool {
	struct lb_server **servers;  /* not owned: see the ownership note */
	int nservers;
	int cap;
	const struct lb_algo *algo;
	void *state;                 /* algorithm private state */
	struct lb_params params;
	struct lb_stick *stick;      /* owned; NULL when off */
	uint32_t next_id;
	bool use_backup;             /* true when no primary is up and ready */
	unsigned total_active;       /* sum of active over servers */
};

/*
 * An algorithm.  `state` is what init() stored; the pool is read-only to the
 * algorithm (connection counts and health are maintained by lb_*).  pick()
 * returns a server index whose lb_server_eligible() is true and whose id is
 * not in key->tried, or -1 when there is none.
 *
 * validate() (optional) checks the parameters this algorithm reads - whether
 * or not it is the one chosen, so that a configuration is checked the same
 * way whatever `balance` says.  It returns 0, or -EINVAL with *err set to
 * "SETTING: message", SETTING being the name under the backend
 * ("iphash.table_size").  init() calls it too.
 */
struct lb_algo {
	const char *name;
	unsigned flags;
	int  (*validate)(const struct lb_params *p, char **err);
	int  (*init)(void **state, const struct lb_pool *pool, const struct lb_params *p, char **err);
	void (*fini)(void *state);
	void (*rebuild)(void *state, const struct lb_pool *pool);  /* membership, weight, health or admin changed */
	int  (*pick)(void *state, const struct lb_pool *pool, const struct lb_key *key,
	             uint64_t now_ms, struct lb_rng *rng);
	void (*conn_open)(void *state, const struct lb_pool *pool, int server);   /* optional */
	void (*conn_close)(void *state, const struct lb_pool *pool, int server);  /* optional */
};

/* --- registry (src/lb/registry.c) --- */

/* The algorithm called `name`, or NULL. */
const struct lb_algo *lb_algo_find(const char *name);
/* The registered algorithms, NULL-terminated (for tests and --help). */
const struct lb_algo *const *lb_algo_list(void);
/* 0, or -EEXIST with *err set when two registered algorithms share a name. */
int lb_registry_check(char **err);
/* Runs every registered algorithm's validate(); 0, or the first error. */
int lb_params_validate(const struct lb_params *p, char **err);
/* The names of the registered algorithms that have none of `without_flags`
 * (0: all of them), as "a, b, c", into buf (truncated to cap). */
void lb_algo_names(char *buf, size_t cap, unsigned without_flags);

extern const struct lb_algo lb_algo_roundrobin;
extern const struct lb_algo lb_algo_leastconn;
extern const struct lb_algo lb_algo_iphash;
extern const struct lb_algo lb_algo_cookie;

/* --- pool (src/lb/pool.c) --- */

/* Fills *p with the documented defaults. */
void lb_params_default(struct lb_params *p);
/* 0, or a negative errno with *err (malloc'd) set. */
int lb_pool_init(struct lb_pool *pool, const struct lb_algo *algo, const struct lb_params *p, char **err);
/* Releases what the pool owns; the servers stay the caller's. */
void lb_pool_fini(struct lb_pool *pool);
/* Adds `s` (up as given in s->up, admin READY); rebuilds.  0 or -EEXIST (name taken) / -ENOMEM. */
int lb_pool_add(struct lb_pool *pool, struct lb_server *s);
/* Removes `s`; -EBUSY while s->active > 0.  Rebuilds. */
int lb_pool_del(struct lb_pool *pool, struct lb_server *s);
/* The server called `name`, or NULL. */
struct lb_server *lb_pool_find(const struct lb_pool *pool, const char *name);

/* Health change from checks; drops stick entries that point at a down server. */
void lb_server_set_up(struct lb_pool *pool, struct lb_server *s, bool up);
void lb_server_set_admin(struct lb_pool *pool, struct lb_server *s, enum lb_admin a);
void lb_server_set_weight(struct lb_pool *pool, struct lb_server *s, unsigned weight);

/* Up, READY, not full.  Ignores the backup split. */
bool lb_server_usable(const struct lb_server *s);
/* At its maxconn. */
bool lb_server_full(const struct lb_server *s);
/* Usable, in the active set (primary, or backup while pool->use_backup). */
bool lb_server_eligible(const struct lb_pool *pool, const struct lb_server *s);
/* True when `id` is in key->tried. */
bool lb_key_tried(const struct lb_key *key, uint32_t id);
/* Appends s->id to key->tried (ignored when full). */
void lb_key_add_tried(struct lb_key *key, const struct lb_server *s);

/*
 * Chooses a server: the stick table first (when on), then the algorithm.
 * When the algorithm finds no primary because the ready primaries are full
 * (maxconn) or tried, it chooses among the backups: they take the overflow
 * before a connection has to wait.  Maintains the affinity counters and the
 * stick table.  Returns an index into pool->servers, or -1 when no eligible
 * untried server exists.
 */
int lb_pick(struct lb_pool *pool, const struct lb_key *key, uint64_t now_ms, struct lb_rng *rng);
/* True when a server lb_pick could choose for key (up, READY, weight > 0,
 * untried, in the active set or an overflow backup) is at its maxconn. */
bool lb_pool_full(const struct lb_pool *pool, const struct lb_key *key);
/* A connection to `s` opened / closed (maintains active counts). */
void lb_conn_open(struct lb_pool *pool, struct lb_server *s);
void lb_conn_close(struct lb_pool *pool, struct lb_server *s);

/* The affinity cookie value of a server name under `secret`: LB_COOKIE_LEN
 * lowercase hex digits of a keyed hash (SipHash-2-4), written to out[]. */
void lb_cookie_value(const char *secret, const char *name, char out[LB_COOKIE_LEN + 1]);

/* True when the client's affinity cookie (key->cookie) names s: the one
 * place where a cookie value is matched against a server. */
bool lb_cookie_names(const struct lb_key *key, const struct lb_server *s);

/*
 * --- the outcome policy (src/lb/outcome.c) ---
 * What the result of a connection attempt or a health check does.  The
 * daemon and tether-sim both call these; neither decides it on its own.
 */

/* Sets s's health state for a server entering the pool: UP at the top of
 * its range (a configured server), or DOWN at 0 (one added at runtime to a
 * checked backend: it must pass `rise` checks before it gets traffic). */
void lb_server_health_init(const struct lb_pool *pool, struct lb_server *s, bool start_up);
/* An active health check of s succeeded or failed.  Returns the change
 * (HC_WENT_UP/DOWN), already applied to the pool. */
enum hc_change lb_server_checked(struct lb_pool *pool, struct lb_server *s, bool ok);
/* A real connection to s connected or failed: passive health when
 * params.observe.  A success only counts while s is UP (a DOWN server must
 * prove itself to the active checks), and not once s is at the top. */
enum hc_change lb_server_observed(struct lb_pool *pool, struct lb_server *s, bool ok);
/* True while another attempt is allowed for this connection: the first
 * one, and up to params.retries more after failed connects. */
bool lb_retry_allowed(const struct lb_pool *pool, const struct lb_key *key);
/* Chooses the server for the connection's next attempt (lb_pick; never one
 * already tried), records it in key->tried and counts the connection on it
 * (lb_conn_open).  Returns its index; LB_FULL when no server can take it
 * now only because those it could use are at their maxconn (a slot that
 * frees lets it through: the daemon queues it); -1 when no usable server
 * is left or the retries are spent. */
int lb_attempt(struct lb_pool *pool, struct lb_key *key, uint64_t now_ms, struct lb_rng *rng);
/* The attempt on s failed to connect: passive health, then the connection
 * is no longer counted on s.  Returns the health change. */
enum hc_change lb_attempt_failed(struct lb_pool *pool, struct lb_server *s);
/* True when the answer to a client routed to s must carry a (new)
 * affinity cookie: the pool balances by cookie and the client's cookie
 * does not name s. */
bool lb_cookie_needed(const struct lb_pool *pool, const struct lb_key *key, const struct lb_server *s);

/* --- rng (src/lb/rng.c) --- */
void lb_rng_seed(struct lb_rng *rng, uint64_t seed);
uint64_t lb_rng_next(struct lb_rng *rng);
/* Uniform in [0, n); n > 0. */
uint32_t lb_rng_below(struct lb_rng *rng, uint32_t n);
/* Uniform in [0, 1). */
double lb_rng_double(struct lb_rng *rng);

#endif
