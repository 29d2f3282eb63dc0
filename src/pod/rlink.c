/*
 * rlink.c - tether-pod's link to the Redis master (see rlink.h).
 *
 * hiredis rules this file lives by (async.c of hiredis 0.14):
 *  - a context that fails to connect, or loses its connection, is freed by
 *    hiredis right after our connect / disconnect callback: we only forget
 *    it there (lost()), never free it;
 *  - redisAsyncFree() runs every pending reply callback with a NULL reply
 *    before it returns, and from inside a reply callback of the same
 *    context it is deferred until that callback returns;
 *  - connect and disconnect callbacks are not "in a callback" for hiredis,
 *    so nothing frees a context from them.
 * So every context pointer in struct rlink is cleared *before* the context
 * is freed, and each callback first checks that its context is still the
 * current one: a callback of a forgotten context only fails its op.
 *
 * Sentinel: "Guidelines for Redis clients with support for Redis Sentinel"
 * (redis.io/docs/reference/sentinel-clients): ask the sentinels in turn,
 * check ROLE on the address given, and reconnect on +switch-master.
 *
 * Longer than our usual file: the link is one state machine (connect,
 * ask the sentinels, check the role, subscribe, back off, reconnect) whose
 * hiredis lifetime rules above hold for every state; split, each part would
 * need them all.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/adapters/libev.h>

#include "rlink.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#define PRINTF(f, a) __attribute__((format(printf, f, a)))

static void ask_sentinel(struct rlink *l);
static void sub_lost(struct rlink *l);

static void log_line(const struct rlink *l, const char *msg)
{
	fprintf(stderr, "%s: redis: %s\n", l->conf.log_name, msg);
}

/* The link is down for the reason given: log it if it is news, and retry
 * after the backoff (unless a retry is already due, or we are stopping). */
PRINTF(2, 0) static void down_v(struct rlink *l, const char *fmt, va_list ap)
{
	bool was_up = l->state == RLINK_UP;

	vsnprintf(l->reason, sizeof(l->reason), fmt, ap);
	l->state = RLINK_DOWN;
	ev_timer_stop(l->loop, &l->conn_timer);
	ev_timer_stop(l->loop, &l->op_timer);
	if (l->stopping)
		return;
	if (was_up || strcmp(l->logged, l->reason) != 0) {
		log_line(l, l->reason);
		memcpy(l->logged, l->reason, sizeof(l->logged));
	}
	if (ev_is_active(&l->retry))
		return;
	ev_timer_set(&l->retry, l->backoff, 0.);
	ev_timer_start(l->loop, &l->retry);
	l->backoff *= 2;
	if (l->backoff < RLINK_BACKOFF_MIN)
		l->backoff = RLINK_BACKOFF_MIN;
	if (l->backoff > RLINK_BACKOFF_MAX)
		l->backoff = RLINK_BACKOFF_MAX;
}

PRINTF(2, 3) static void down(struct rlink *l, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	down_v(l, fmt, ap);
	va_end(ap);
}

/* Ends the master connection (and any sentinel query) ourselves. */
PRINTF(2, 3) static void drop(struct rlink *l, const char *fmt, ...)
{
	redisAsyncContext *ac = l->ac, *q = l->query;
	va_list ap;

	l->ac = l->query = NULL;
	va_start(ap, fmt);
	down_v(l, fmt, ap);
	va_end(ap);
	if (ac)
		redisAsyncFree(ac);
	if (q)
		redisAsyncFree(q);
}

PRINTF(2, 3) static void sentinel_failed(struct rlink *l, const char *fmt, ...)
{
	const struct rlink_addr *s = &l->conf.sentinel[l->next_sentinel];
	char why[96];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	l->next_sentinel = (l->next_sentinel + 1) % l->conf.nsentinels;
	if (++l->tried < l->conf.nsentinels) {
		ask_sentinel(l);
		return;
	}
	down(l, "no sentinel gave master \"%s\" (last: %s:%d: %s)", l->conf.master_name, s->host, s->port, why);
}

/* hiredis is freeing `ac` (a failed connect, or a lost connection). */
static void lost(struct rlink *l, const redisAsyncContext *ac, const char *what)
{
	const char *err = ac->errstr && ac->errstr[0] ? ac->errstr : "closed";

	if (ac == l->ac) {
		l->ac = NULL;
		down(l, "%s %s:%d: %s", what, l->master.host, l->master.port, err);
	} else if (ac == l->query) {
		l->query = NULL;
		sentinel_failed(l, "%s", err);
	} else if (ac == l->sub) {
		sub_lost(l);
	}
}

static void connect_cb(const redisAsyncContext *ac, int status)
{
	if (status != REDIS_OK)
		lost(ac->data, ac, "connect");
}

static void disconnect_cb(const redisAsyncContext *ac, int status)
{
	lost(ac->data, ac, "lost");
}

/* A new context to `a`, attached to our loop, or NULL with `err` set. */
static redisAsyncContext *open_ctx(struct rlink *l, const struct rlink_addr *a, char *err, size_t errlen)
{
	redisAsyncContext *ac = redisAsyncConnect(a->host, a->port);

	if (!ac) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (ac->err) {
		snprintf(err, errlen, "%s", ac->errstr);
		redisAsyncFree(ac);
		return NULL;
	}
	ac->data = l;
	redisLibevAttach(l->loop, ac);
	redisAsyncSetConnectCallback(ac, connect_cb);
	redisAsyncSetDisconnectCallback(ac, disconnect_cb);
	return ac;
}

static void arm_conn_timer(struct rlink *l)
{
	ev_timer_stop(l->loop, &l->conn_timer);
	ev_timer_set(&l->conn_timer, l->conf.timeout, 0.);
	ev_timer_start(l->loop, &l->conn_timer);
}

static void up(struct rlink *l)
{
	char msg[128];

	l->state = RLINK_UP;
	ev_timer_stop(l->loop, &l->conn_timer);
	l->backoff = RLINK_BACKOFF_MIN;
	l->tried = 0;
	l->ups++;
	l->logged[0] = '\0';
	snprintf(msg, sizeof(msg), "up: master %s:%d", l->master.host, l->master.port);
	log_line(l, msg);
}

/* A handshake reply of the current master context, or NULL when there is
 * nothing to do (a forgotten context, or the connection was lost). */
static const redisReply *handshake_reply(struct rlink *l, redisAsyncContext *ac, void *reply)
{
	if (ac != l->ac)
		return NULL;
	if (!reply)
		lost(l, ac, "lost");
	return reply;
}

/* The first handshake reply: the server must be a master. */
static void role_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	struct rlink *l = priv;
	const redisReply *r = handshake_reply(l, ac, reply);

	if (!r)
		return;
	if (r->type == REDIS_REPLY_ERROR) {
		drop(l, "ROLE on %s:%d: %s", l->master.host, l->master.port, r->str);
		return;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || r->element[0]->type != REDIS_REPLY_STRING ||
	    strcmp(r->element[0]->str, "master") != 0)
		drop(l, "%s:%d is not a master", l->master.host, l->master.port);
}

/* The second handshake reply: the script's SHA1.  Then the link is up. */
static void script_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	struct rlink *l = priv;
	const redisReply *r = handshake_reply(l, ac, reply);

	if (!r)
		return;
	if (r->type != REDIS_REPLY_STRING || r->len != 40) {
		drop(l, "SCRIPT LOAD on %s:%d: %s", l->master.host, l->master.port,
		     r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
		return;
	}
	memcpy(l->sha, r->str, 40);
	l->sha[40] = '\0';
	up(l);
}

static void connect_master(struct rlink *l)
{
	char err[96];

	l->state = RLINK_CONNECTING;
	l->ac = open_ctx(l, &l->master, err, sizeof(err));
	if (!l->ac) {
		down(l, "connect %s:%d: %s", l->master.host, l->master.port, err);
		return;
	}
	/* queued now, written by hiredis once connected */
	if (redisAsyncCommand(l->ac, role_cb, l, "ROLE") != REDIS_OK ||
	    redisAsyncCommand(l->ac, script_cb, l, "SCRIPT LOAD %s", l->conf.script) != REDIS_OK) {
		drop(l, "cannot queue the handshake to %s:%d", l->master.host, l->master.port);
		return;
	}
	arm_conn_timer(l);
}

/* The answer to SENTINEL get-master-addr-by-name: [ip, port] or nil. */
static void query_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	struct rlink *l = priv;
	const redisReply *r = reply;

	if (ac != l->query)
		return;
	l->query = NULL;
	ev_timer_stop(l->loop, &l->conn_timer);
	if (!r) {
		sentinel_failed(l, "%s", ac->errstr && ac->errstr[0] ? ac->errstr : "closed");
		return;
	}
	redisAsyncFree(ac);     /* one question per connection; freed when we return */
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING &&
	    r->element[1]->type == REDIS_REPLY_STRING && r->element[0]->len < sizeof(l->master.host)) {
		memcpy(l->master.host, r->element[0]->str, r->element[0]->len + 1);
		l->master.port = atoi(r->element[1]->str);
		l->tried = 0;
		connect_master(l);
	} else if (r->type == REDIS_REPLY_ERROR) {
		sentinel_failed(l, "%s", r->str);
	} else {
		sentinel_failed(l, "does not know master \"%s\"", l->conf.master_name);
	}
}

static void ask_sentinel(struct rlink *l)
{
	const struct rlink_addr *s = &l->conf.sentinel[l->next_sentinel];
	char err[96];

	l->state = RLINK_RESOLVING;
	l->query = open_ctx(l, s, err, sizeof(err));
	if (!l->query) {
		sentinel_failed(l, "%s", err);
		return;
	}
	if (redisAsyncCommand(l->query, query_cb, l, "SENTINEL get-master-addr-by-name %s",
	                      l->conf.master_name) != REDIS_OK) {
		redisAsyncContext *q = l->query;

		l->query = NULL;
		redisAsyncFree(q);
		sentinel_failed(l, "cannot queue the question");
		return;
	}
	arm_conn_timer(l);
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct rlink *l = container_of(w, struct rlink, retry);

	if (l->conf.nsentinels) {
		l->tried = 0;
		ask_sentinel(l);
	} else {
		connect_master(l);
	}
}

static void conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct rlink *l = container_of(w, struct rlink, conn_timer);

	if (l->state == RLINK_RESOLVING && l->query) {
		redisAsyncContext *q = l->query;

		l->query = NULL;
		redisAsyncFree(q);
		sentinel_failed(l, "no answer in %g s", l->conf.timeout);
	} else if (l->state == RLINK_CONNECTING) {
		drop(l, "connect %s:%d: no answer in %g s", l->master.host, l->master.port, l->conf.timeout);
	}
}

/* "+switch-master <name> <old-ip> <old-port> <new-ip> <new-port>" */
static void switch_master(struct rlink *l, const char *msg)
{
	char name[128], ip[64], line[256];
	int port;

	if (sscanf(msg, "%127s %*s %*s %63s %d", name, ip, &port) != 3 || strcmp(name, l->conf.master_name) != 0)
		return;
	snprintf(line, sizeof(line), "sentinel: +switch-master: %s is now %s:%d", name, ip, port);
	log_line(l, line);
	if (l->state == RLINK_UP && (strcmp(ip, l->master.host) != 0 || port != l->master.port)) {
		l->backoff = 0.;
		drop(l, "failover: master %s moved to %s:%d", name, ip, port);
	} else if (l->state == RLINK_DOWN) {
		ev_timer_stop(l->loop, &l->retry);
		ev_timer_set(&l->retry, 0., 0.);
		ev_timer_start(l->loop, &l->retry);
	}
}

static void sub_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	struct rlink *l = priv;
	const redisReply *r = reply;

	if (ac != l->sub)
		return;
	if (!r) {
		sub_lost(l);
		return;
	}
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[0]->type == REDIS_REPLY_STRING &&
	    strcmp(r->element[0]->str, "message") == 0 && r->element[2]->type == REDIS_REPLY_STRING)
		switch_master(l, r->element[2]->str);
}

/* The subscription's context is gone (hiredis frees it): another sentinel
 * in a while. */
static void sub_lost(struct rlink *l)
{
	l->sub = NULL;
	l->sub_next = (l->sub_next + 1) % l->conf.nsentinels;
	if (l->stopping || ev_is_active(&l->sub_retry))
		return;
	ev_timer_set(&l->sub_retry, RLINK_BACKOFF_MAX, 0.);
	ev_timer_start(l->loop, &l->sub_retry);
}

static void sub_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct rlink *l = container_of(w, struct rlink, sub_retry);
	char err[96];

	l->sub = open_ctx(l, &l->conf.sentinel[l->sub_next], err, sizeof(err));
	if (l->sub && redisAsyncCommand(l->sub, sub_cb, l, "SUBSCRIBE +switch-master") == REDIS_OK)
		return;
	if (l->sub) {
		redisAsyncContext *s = l->sub;

		l->sub = NULL;
		redisAsyncFree(s);
	}
	sub_lost(l);
}

static void op_fail(struct rop *op, const char *reason)
{
	if (op->failed)
		return;
	op->failed = true;
	snprintf(op->reason, sizeof(op->reason), "%s", reason);
}

/* Error replies after which this server cannot serve us: a demoted master
 * (READONLY), a script cache flushed (NOSCRIPT), a server still loading or
 * cut from its master.  Reconnecting (through Sentinel) is the cure. */
static bool fatal_error(const char *s)
{
	static const char *const prefixes[] = { "READONLY", "NOSCRIPT", "LOADING", "MASTERDOWN", NULL };

	for (int i = 0; prefixes[i]; i++)
		if (strncmp(s, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	return false;
}

static void fifo_del(struct rlink *l, struct rop *op)
{
	if (op->prev)
		op->prev->next = op->next;
	else
		l->head = op->next;
	if (op->next)
		op->next->prev = op->prev;
	else
		l->tail = op->prev;
	op->prev = op->next = NULL;
	l->inflight--;
}

static void op_cb(redisAsyncContext *ac, void *reply, void *priv)
{
	struct rlink *l = ac->data;
	struct rop *op = priv;
	const redisReply *r = reply;

	if (!r) {
		if (ac == l->ac)
			lost(l, ac, "lost");
		op_fail(op, l->reason);
	} else if (r->type == REDIS_REPLY_ERROR) {
		op_fail(op, r->str);
		if (ac == l->ac && fatal_error(r->str))
			drop(l, "%s:%d: %s", l->master.host, l->master.port, r->str);
	} else {
		l->conf.reply(l->conf.owner, op, r);
	}
	if (--op->pending > 0)
		return;
	fifo_del(l, op);
	l->conf.done(l->conf.owner, op);
	if (op->pending == 0)
		rlink_op_put(l, op);
}

static void op_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct rlink *l = container_of(w, struct rlink, op_timer);
	double left;

	if (!l->head)
		return;
	left = l->head->sent + l->conf.timeout - ev_now(loop);
	if (left > 1e-3) {
		ev_timer_set(w, left, 0.);
		ev_timer_start(loop, w);
		return;
	}
	drop(l, "no reply from %s:%d in %g s", l->master.host, l->master.port, l->conf.timeout);
}

int rlink_cmd(struct rlink *l, struct rop *op, int argc, const char **argv, const size_t *argvlen)
{
	if (l->state != RLINK_UP) {
		op_fail(op, l->reason);
		return -1;
	}
	if (redisAsyncCommandArgv(l->ac, op_cb, op, argc, argv, argvlen) != REDIS_OK) {
		op_fail(op, "cannot queue a command");
		return -1;
	}
	l->commands++;
	if (op->pending++ > 0)
		return 0;
	op->sent = ev_now(l->loop);
	op->prev = l->tail;
	op->next = NULL;
	if (l->tail)
		l->tail->next = op;
	else
		l->head = op;
	l->tail = op;
	l->inflight++;
	if (!ev_is_active(&l->op_timer)) {
		ev_timer_set(&l->op_timer, l->conf.timeout, 0.);
		ev_timer_start(l->loop, &l->op_timer);
	}
	return 0;
}

struct rop *rlink_op(struct rlink *l)
{
	struct rop *op = l->free_ops;

	if (op)
		l->free_ops = op->next;
	else
		op = malloc(l->conf.op_size);
	if (op)
		memset(op, 0, l->conf.op_size);
	return op;
}

void rlink_op_put(struct rlink *l, struct rop *op)
{
	op->next = l->free_ops;
	l->free_ops = op;
}

int rlink_start(struct rlink *l, struct ev_loop *loop, const struct rlink_conf *conf)
{
	if (conf->op_size < sizeof(struct rop) || !conf->reply || !conf->done || conf->timeout <= 0 ||
	    conf->nsentinels < 0 || conf->nsentinels > RLINK_SENTINELS_MAX ||
	    (conf->nsentinels && !conf->master_name)) {
		fprintf(stderr, "%s: redis: bad link configuration\n", conf->log_name);
		return -EINVAL;
	}
	memset(l, 0, sizeof(*l));
	l->conf = *conf;
	l->loop = loop;
	l->backoff = RLINK_BACKOFF_MIN;
	l->master = conf->direct;
	snprintf(l->reason, sizeof(l->reason), "connecting");
	ev_timer_init(&l->retry, retry_cb, 0., 0.);
	ev_timer_init(&l->conn_timer, conn_timer_cb, 0., 0.);
	ev_timer_init(&l->op_timer, op_timer_cb, 0., 0.);
	ev_timer_init(&l->sub_retry, sub_retry_cb, 0., 0.);
	ev_timer_start(loop, &l->retry);
	if (conf->nsentinels)
		ev_timer_start(loop, &l->sub_retry);
	return 0;
}

void rlink_stop(struct rlink *l)
{
	redisAsyncContext *ac = l->ac, *q = l->query, *s = l->sub;

	l->stopping = true;
	l->ac = l->query = l->sub = NULL;
	ev_timer_stop(l->loop, &l->retry);
	ev_timer_stop(l->loop, &l->sub_retry);
	down(l, "stopping");
	if (ac)
		redisAsyncFree(ac);
	if (q)
		redisAsyncFree(q);
	if (s)
		redisAsyncFree(s);
	while (l->free_ops) {
		struct rop *op = l->free_ops;

		l->free_ops = op->next;
		free(op);
	}
}
