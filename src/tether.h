/*
 * tether - the daemon's runtime object model (internal).
 *
 * One libev loop owns everything; nothing here is shared between threads,
 * so counters are plain integers.
 *
 *   struct tether            the running daemon: loop, signals, the log
 *    +- struct t_gen *       generations: the running one, and retired ones
 *    |   |                   that still carry connections after a reload
 *    |   +- struct tether_config   the configuration it was built from
 *    |   +- struct t_frontend[]    with their listeners
 *    |   +- struct t_backend *     a list, each with its lb_pool
 *    |       +- struct t_server[]  configured, plus those added at runtime
 *    +- struct conn          one per proxied client connection (conn.c); its
 *                            sockets are in tether.epfd, not libev watchers
 *
 * Ownership (who frees what, and when):
 *  - A generation owns its configuration, frontends, backends and servers,
 *    and frees all of them at once, exactly once: in gen_put() when its
 *    last reference goes.
 *  - References to a generation: one while it is the running one (dropped
 *    by the reload that retires it, or at exit), and one per connection
 *    accepted on one of its frontends (taken in conn_accept, dropped in
 *    conn_reap).  Nothing else counts references.
 *  - A connection's fe, be and srv pointers are borrowed from the
 *    generation it holds; they stay valid until conn_reap, which frees the
 *    connection after the batch of events that closed it and only then
 *    drops its reference.
 *  - Retiring a generation (reload) stops its checks and closes the
 *    listeners the new generation did not take over; its connections keep
 *    running on its objects.  Servers carry health and counters to the
 *    same-named server of the new generation (inherit), never pointers.
 *  - A server added at runtime belongs to its backend.  `del server` takes
 *    it out of the pool; it is freed when its last connection ends
 *    (srv_release), or with its generation.
 */
#ifndef TETHER_DAEMON_H
#define TETHER_DAEMON_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "tether/config.h"
#include "tether/health.h"
#include "tether/lb.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

struct tether;
struct t_backend;

/* Why a connection ended: the last field of its log line. */
enum t_end {
	END_CLIENT_CLOSED = 0, END_SERVER_CLOSED, END_CLIENT_TIMEOUT, END_SERVER_TIMEOUT,
	END_CONNECT_FAILED, END_NO_SERVER, END_CLIENT_RESET, END_SERVER_RESET,
	END_SHUTDOWN, END_SERVER_DOWN, END_HEAD_TIMEOUT, END_ERROR,
};
const char *t_end_name(enum t_end e);

struct t_server {
	struct lb_server lb;            /* embedded; lb.data points back here */
	struct t_backend *be;           /* owner; not owned */
	struct cfg_addr addr;
	bool dynamic;                   /* added at runtime: allocated alone */
	bool deleted;                   /* `del server`: freed once idle (srv_release) */
	struct hc_state hc;             /* active and passive health */
	char last_check[64];            /* reason of the last check result */
	/* counters (monotonic) */
	uint64_t connections_total;
	uint64_t connect_failures_total;
	uint64_t bytes_in_total;        /* client -> server */
	uint64_t bytes_out_total;       /* server -> client */
	/* active health check (check.c); fd -1 when idle */
	ev_timer check_timer;
	ev_io check_io;
	int check_fd;
	unsigned check_len;
	char check_buf[256];
	struct t_server *next_dynamic;  /* list of runtime-added servers */
};

struct t_backend {
	struct cfg_backend cfg;         /* copy; cfg.servers not owned (NULL) */
	struct lb_pool pool;
	struct t_server *servers;       /* configured servers, cfg_nservers of them */
	int cfg_nservers;
	struct t_server *dynamic;       /* runtime-added servers */
	struct tether *t;
	struct t_gen *gen;              /* owner */
	uint64_t retries_total;
	uint64_t no_server_total;
	struct t_backend *next;
};

struct t_listener {
	ev_io io;
	int fd;
	struct cfg_addr addr;
	struct t_frontend *fe;
};

struct t_frontend {
	struct cfg_frontend cfg;
	struct t_gen *gen;              /* owner */
	struct t_backend *be;           /* of the same generation */
	struct t_listener *ls;          /* cfg.nbinds of them */
	uint64_t connections_total;
	unsigned active;
	struct tether *t;
};

/* One configuration and what was built from it (see the ownership notes). */
struct t_gen {
	struct tether *t;
	struct tether_config *cfg;      /* owned */
	struct t_frontend **fe;         /* owned, nfe of them */
	int nfe;
	struct t_backend *backends;     /* owned list */
	unsigned refs;                  /* running: 1; plus one per connection */
	bool retired;                   /* no longer the running generation */
	struct t_gen *next;             /* tether.gens */
};

struct tether {
	struct ev_loop *loop;
	struct t_gen *gen;              /* the running generation */
	struct t_gen *gens;             /* every live generation, running first */
	char conf_path[256];
	struct lb_rng rng;
	unsigned active;                /* all client connections */
	bool accept_paused;             /* out of fds or at maxconn */
	bool draining;                  /* SIGTERM received */
	int exit_code;
	char *scratch;                  /* relay buffer shared by every connection */
	size_t scratch_size;
	struct conn *conns;             /* every live connection (for drain and on_down) */
	struct conn *dead;              /* closed, freed by conn_reap */
	int epfd;                       /* the connections' sockets (conn.c) */
	ev_io io;                       /* epfd readable: conn_io_cb */
	ev_prepare reaper;              /* frees closed connections once per loop */
	ev_timer accept_timer;
	ev_timer drain_timer;
	ev_signal sig_term, sig_int, sig_hup, sig_usr1;
	uint64_t reloads_total, reload_failures_total;
	double started;
	void *admin;                    /* admin.c state, NULL when none */
	void *metrics;                  /* metrics.c state, NULL when none */
};

/* --- daemon.c --- */
/* Builds the runtime from a loaded config (taking ownership of cfg). */
int tether_start(struct tether *t, struct tether_config *cfg, const char *path, char **err);
/* Runs the loop until stopped; returns the exit code. */
int tether_run(struct tether *t);
void tether_free(struct tether *t);
/* SIGHUP: re-read the file; a bad file keeps the running configuration. */
void tether_reload(struct tether *t);
void tether_accept_resume(struct tether *t);
/* A connection takes / drops its one reference to its generation; the last
 * gen_put of a retired generation frees it and everything it owns. */
void gen_get(struct t_gen *g);
void gen_put(struct t_gen *g);
/* Server objects of a backend (configured + dynamic, not deleted). */
struct t_server *be_find_server(struct t_backend *be, const char *name);
struct t_backend *tether_find_backend(struct tether *t, const char *name);
/* A health change (check or passive observation) of s. */
void srv_health_result(struct t_server *s, bool ok, const char *why);
/* A connection to s (or an attempt) ended: lb_conn_close, then, when s was
 * deleted at runtime and this was its last connection, takes it out of the
 * pool and frees it.  s must not be used after this call. */
void srv_conn_end(struct t_server *s);
/* s was deleted: same as the end of its last connection when it has none.
 * True when s was freed. */
bool srv_release(struct t_server *s);
/* Outcome of a real connect to s: feeds passive health when `observe`. */
void srv_observe(struct t_server *s, bool ok, const char *why);

/* --- listener.c --- */
int listener_open(struct t_listener *l, char **err);
void listener_start(struct tether *t, struct t_listener *l);
void listener_stop(struct tether *t, struct t_listener *l);

/* --- conn.c --- */
void conn_accept(struct t_frontend *fe, int fd, const struct sockaddr_storage *ss, socklen_t len);
/* Closes every connection (shutdown deadline). */
void conn_close_all(struct tether *t, enum t_end why);
/* Plays the ready events of t->epfd (the callback of t->io). */
void conn_io_cb(struct ev_loop *loop, ev_io *w, int revents);
/* Frees the connections closed since the last call. */
void conn_reap(struct tether *t);
/* Closes the connections established to s (on_down = "close"). */
void conn_close_server(struct tether *t, struct t_server *s);

/* --- log.c --- */
int log_open(const char *where, char **err);
void log_reopen(void);
void log_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_flush(void);
void log_close(void);
void log_start_timer(struct ev_loop *loop);
void log_stop_timer(struct ev_loop *loop);

/* --- check.c --- */
void check_start(struct t_server *s);
void check_stop(struct t_server *s);

/* --- admin.c / metrics.c --- */
int admin_start(struct tether *t, char **err);
void admin_stop(struct tether *t);
int metrics_start(struct tether *t, char **err);
void metrics_stop(struct tether *t);
/* Runs one runtime-API command line; appends the answer (ending in OK or ERR) to out. */
void admin_exec(struct tether *t, const char *line, char **out, size_t *len, size_t *cap);

/* Address text "a.b.c.d:port" / "[v6]:port" of ss. */
void addr_format(const struct sockaddr_storage *ss, char *out, size_t cap);

#endif
