/*
 * tether - the configuration, loaded with libconfig (src/config.c).
 *
 * cfg_load() parses and checks a whole file and reports *every* error it
 * finds, one per line, each as `FILE:LINE: SETTING: what is wrong`
 * (e.g. `conf/tether.conf:14: backends.[0].retries: must be 0..10`).
 * Unknown settings are errors.  Durations are strings with a unit:
 * "500ms", "2s", "30m", "3h" (also "1d"); plain integers are refused.
 *
 * cfg_parse_backends() is shared with tether-sim, whose scenario files use
 * the same `backends` syntax.
 */
#ifndef TETHER_CONFIG_H
#define TETHER_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "tether/health.h"
#include "tether/lb.h"

struct config_setting_t;

#define CFG_MAX_BINDS 16

/* An address "host:port", "[v6]:port" or "*:port", resolved numerically. */
struct cfg_addr {
	char text[128];                 /* as written */
	struct sockaddr_storage ss;
	socklen_t len;
};

enum cfg_check { CFG_CHECK_NONE = 0, CFG_CHECK_TCP, CFG_CHECK_HTTP };
enum cfg_on_down { CFG_ON_DOWN_KEEP = 0, CFG_ON_DOWN_CLOSE };

/* Active checks.  Their interval, timeout, rise and fall, and `observe`,
 * are the outcome policy's: cfg_backend.params.health and .observe. */
struct cfg_health {
	enum cfg_check type;            /* none unless a health group is given */
	char path[256];                 /* http: default "/health" */
	char host[256];                 /* http: Host header; default the server address */
	int expect_lo, expect_hi;       /* http: accepted status range; "2xx" = 200..299; default 200..399 */
	enum cfg_on_down on_down;
};

struct cfg_timeouts {
	uint32_t connect_ms;            /* default 5s */
	uint32_t client_ms;             /* idle, default 30s */
	uint32_t server_ms;             /* idle, default 30s */
	uint32_t http_request_ms;       /* cookie peek, default 5s */
};

struct cfg_server {
	char name[LB_NAME_MAX];
	struct cfg_addr addr;
	unsigned weight;                /* default 1 */
	unsigned maxconn;               /* 0 = unlimited */
	bool backup;
	int line;
};

struct cfg_backend {
	char name[LB_NAME_MAX];
	const struct lb_algo *algo;     /* from `balance`, default roundrobin */
	struct lb_params params;        /* iphash, cookie secret/fallback, stick, health rules, retries */
	char cookie_name[64];           /* default "TETHERID" */
	uint64_t cookie_max_age_ms;     /* 0 = session cookie (no Max-Age); sent in whole seconds */
	uint32_t peek_max;              /* bytes of request head to peek; default 8192 */
	struct cfg_timeouts timeouts;
	struct cfg_health health;
	struct cfg_server *servers;
	int nservers;
	int line;
};

struct cfg_frontend {
	char name[LB_NAME_MAX];
	struct cfg_addr binds[CFG_MAX_BINDS];
	int nbinds;
	char backend_name[LB_NAME_MAX];
	int backend;                    /* index into config->backends */
	unsigned maxconn;               /* 0 = only the global limit */
	int line;
};

struct cfg_global {
	unsigned workers;               /* default 1 */
	unsigned maxconn;               /* default 20000 */
	char log[256];                  /* "stderr" (default) or a path */
	char admin[108];                /* unix socket path, "" = none */
	struct cfg_addr metrics;        /* metrics.len == 0: none */
	uint32_t drain_timeout_ms;      /* default 30s */
};

struct tether_config {
	char path[256];
	struct cfg_global global;
	struct cfg_frontend *frontends;
	int nfrontends;
	struct cfg_backend *backends;
	int nbackends;
};

/* Loads and checks `path`.  0 with *out set, or a negative errno (-EINVAL
 * for a wrong file, -ENOENT, -EACCES, ... when it cannot be read) with
 * *err (malloc'd, one error per line, no trailing newline) set. */
int cfg_load(const char *path, struct tether_config **out, char **err);
/* Same from a string; `name` is used in messages in place of the file. */
int cfg_load_string(const char *text, const char *name, struct tether_config **out, char **err);
void cfg_free(struct tether_config *c);

/* Parses the `backends` list at `list` into *out / *n, appending any errors
 * (one per line) to *errs; returns the number of errors added.  `file`
 * names the source in messages. */
int cfg_parse_backends(const struct config_setting_t *list, const char *file,
                       struct cfg_backend **out, int *n, char **errs);
void cfg_free_backends(struct cfg_backend *b, int n);

/* "500ms", "2s", "30m", "3h", "1d" -> milliseconds.  0 or -EINVAL. */
int cfg_parse_duration(const char *s, uint64_t *ms);
/* "127.0.0.1:80", "[::1]:80", "*:80", ":80" -> address.  0 or -EINVAL. */
int cfg_parse_addr(const char *s, struct cfg_addr *a);

#endif
