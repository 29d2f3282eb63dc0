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
#define CFG_WORKERS_MAX 64

/* An address "host:port", "[v6]:port" or "*:port", resolved numerically. */
struct cfg_addr {
	char text[128];                 /* as written */
	struct sockaddr_storage ss;
	socklen_t len;
};

enum cfg_check { CFG_CHECK_NONE = 0, CFG_CHECK_TCP, CFG_CHECK_HTTP };
enum cfg_on_down { CFG_ON_DOWN_KEEP = 0, CFG_ON_DOWN_CLOSE };
/* How N workers share an address: a socket each (the kernel spreads new
 * connections by a hash), or one socket whose readiness wakes one worker
 * (EPOLLEXCLUSIVE). */
enum cfg_accept { CFG_ACCEPT_REUSEPORT = 0, CFG_ACCEPT_SHARED };
/* What an admin socket may do: show only; also drain/enable/disable/set
 * weight; everything (add/del server). */
enum cfg_admin_level { CFG_LEVEL_USER = 0, CFG_LEVEL_OPERATOR, CFG_LEVEL_ADMIN };

struct cfg_admin {
	char path[108];                 /* unix socket path, "" = none */
	unsigned mode;                  /* permissions of the socket file, default 0600 */
	char group[64];                 /* group owning it, "" = the process's */
	int level;                      /* enum cfg_admin_level, default admin */
};

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

/* Connections waiting for a slot when every server they could use is at
 * its maxconn (io/proxy.c, runtime.h's rt_waiter). */
struct cfg_queue {
	unsigned max;                   /* waiting at most; 0 = no queue (closed at once); default 1000 */
	uint32_t timeout_ms;            /* waiting at most; default 5s */
};

enum cfg_resolve { CFG_RESOLVE_NONE = 0, CFG_RESOLVE_A, CFG_RESOLVE_AAAA, CFG_RESOLVE_SRV };

/* A resolved entry's name becomes the prefix of its servers' names
 * ("pods-10.1.2.3-8080"): short enough that an IPv6 address fits. */
#define CFG_RESOLVE_NAME_MAX 16

struct cfg_server {
	char name[LB_NAME_MAX];
	struct cfg_addr addr;           /* unused by a resolve entry (addr.len 0) */
	unsigned weight;                /* default 1 */
	unsigned maxconn;               /* 0 = unlimited */
	bool backup;
	/* DNS service discovery: not a server but a name whose addresses
	 * become servers (src/daemon/io/resolve.c) */
	enum cfg_resolve resolve;       /* NONE: a plain server */
	char host[254];                 /* the name to resolve (A/AAAA: from "NAME:PORT"; SRV: the SRV name) */
	uint16_t port;                  /* A/AAAA: the servers' port; SRV gives its own */
	uint32_t interval_ms;           /* between resolutions; default 5s */
	unsigned max;                   /* servers at most; default 32 */
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
	struct cfg_queue queue;
	struct cfg_health health;
	int send_proxy;                 /* PROXY protocol version written to servers: 0 (none), 1 or 2 */
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
	bool accept_proxy;              /* a PROXY v1/v2 header starts every connection */
	uint32_t proxy_timeout_ms;      /* to receive it; default 5s */
	int line;
};

struct cfg_global {
	unsigned workers;               /* default 1; 0 = "auto" (see cfg_workers) */
	bool cpu_affinity;              /* pin worker i to CPU i */
	int accept;                     /* enum cfg_accept, default reuseport */
	unsigned maxconn;               /* default 20000 */
	char log[256];                  /* "stderr" (default), "off", "syslog" or a file path */
	int log_format;                 /* 0 text (default), 1 json */
	char log_syslog[108];           /* "syslog": its unix socket, default "/dev/log" */
	int log_facility;               /* "syslog": default 3 (daemon) */
	struct cfg_admin admin;         /* the runtime API's socket */
	struct cfg_addr metrics;        /* metrics.len == 0: none */
	uint32_t drain_timeout_ms;      /* default 30s */
	char resolvers[512];            /* name servers "ip:port,..." for resolve entries; "" = /etc/resolv.conf */
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
/* The number of workers to run: global.workers, or with "auto" the number
 * of online CPUs (at most CFG_WORKERS_MAX). */
unsigned cfg_workers(const struct tether_config *c);

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
