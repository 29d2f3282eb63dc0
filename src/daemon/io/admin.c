/*
 * tether - the runtime API: text lines over the admin unix socket.
 *
 *   show servers [BACKEND]          name address state weight active total fails
 *                                   (under a "# backend" line with its queue)
 *   show info
 *   add server BACKEND NAME ADDR [weight N]
 *   del server BACKEND NAME
 *   set weight BACKEND NAME N
 *   drain server BACKEND NAME
 *   enable server BACKEND NAME | disable server BACKEND NAME
 *
 * A socket's level (global.admin.level) limits what its clients may run:
 * user, show only; operator, also drain/enable/disable/set weight; admin,
 * everything.
 * Every answer ends with a line "OK" or "ERR <reason>".  The operations
 * themselves are the runtime's (rt_server_*); this file parses lines,
 * formats answers, and starts or stops the checks of added and deleted
 * servers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "admin.h"
#include "check.h"

#define MAX_ARGS 8

static void show_backend(struct t_backend *be, struct sbuf *out)
{
	sb_printf(out, "# backend %s (%s) queue %u/%u\n", be->cfg.name, be->pool.algo->name, T_LOAD(&be->queue_length),
	          be->cfg.queue.max);
	rt_backend_lock(be);
	for (int i = 0; i < be->pool.nservers; i++) {
		struct t_server *s = be->pool.servers[i]->data;

		if (s->deleted)
			continue;
		sb_printf(out, "%s %s %s %u %u %llu %llu%s\n", s->lb.name, s->addr.text, rt_server_state(s), s->lb.weight,
		          s->lb.active, (unsigned long long)T_LOAD(&s->connections_total),
		          (unsigned long long)T_LOAD(&s->connect_failures_total), s->lb.backup ? " backup" : "");
	}
	rt_backend_unlock(be);
}

/* Each command returns NULL (OK) or the reason of an ERR, which may be the
 * runtime's message in *msg (freed by admin_exec). */
static const char *cmd_show(struct t_worker *w, char **argv, int argc, struct sbuf *out)
{
	struct t_runtime *rt = w->rt;

	if (argc >= 2 && strcmp(argv[1], "servers") == 0) {
		if (argc == 3) {
			struct t_backend *be = rt_backend_find(rt, argv[2]);

			if (!be)
				return "no such backend";
			show_backend(be, out);
			return NULL;
		}
		for (struct t_backend *be = rt->gen->backends; be; be = be->next)
			show_backend(be, out);
		return NULL;
	}
	if (argc == 2 && strcmp(argv[1], "info") == 0) {
		uint64_t total = 0;

		for (int i = 0; i < rt->gen->nfe; i++)
			total += T_LOAD(&rt->gen->fe[i]->connections_total);
		sb_printf(out, "version %s\npid %d\nuptime_seconds %.0f\nconfig %s\nactive_connections %u\n"
		          "connections_total %llu\nqueued_connections %u\nmaxconn %u\nreloads %llu\n"
		          "reload_failures %llu\ngenerations %u\n",
		          TETHER_VERSION, (int)getpid(), ev_now(w->loop) - rt->started, rt->conf_path, T_LOAD(&rt->active),
		          (unsigned long long)total, rt_queued(rt), rt->gen->cfg->global.maxconn,
		          (unsigned long long)rt->reloads_total, (unsigned long long)rt->reload_failures_total,
		          rt_generations(rt));
		sb_printf(out, "workers %u\n", w->npeers);
		for (unsigned i = 0; i < w->npeers; i++)
			sb_printf(out, "worker %u active_connections %u connections_total %llu\n", i,
			          T_LOAD(&w->peers[i].active), (unsigned long long)T_LOAD(&w->peers[i].accepted));
		return NULL;
	}
	return "usage: show servers [BACKEND] | show info";
}

static bool parse_weight(const char *s, long *w)
{
	char *end;

	*w = strtol(s, &end, 10);
	return *s && !*end;
}

static const char *cmd_add(struct t_worker *w, char **argv, int argc, char **msg)
{
	struct t_server *s;
	long weight = 1;

	if (argc != 5 && !(argc == 7 && strcmp(argv[5], "weight") == 0))
		return "usage: add server BACKEND NAME ADDR [weight N]";
	if (argc == 7 && (!parse_weight(argv[6], &weight) || weight < 0 || weight > LB_WEIGHT_MAX))
		return "weight must be 0..256";
	if (rt_server_add(w->rt, argv[2], argv[3], argv[4], (unsigned)weight, &s, msg) < 0)
		return *msg ? *msg : "out of memory";
	check_start(w, s);
	return NULL;
}

static const char *cmd_server(struct t_worker *w, char **argv, int argc, char **msg)
{
	struct t_server *s;

	if (argc != 4 || strcmp(argv[1], "server") != 0)
		return "usage: del|drain|enable|disable server BACKEND NAME";
	s = rt_server_lookup(w->rt, argv[2], argv[3], msg);
	if (!s)
		return *msg;
	if (strcmp(argv[0], "del") == 0) {
		if (rt_server_del_refused(s, msg) < 0)
			return *msg;
		check_stop(s);
		return rt_server_del(w->rt, s, msg) < 0 ? *msg : NULL;
	}
	if (strcmp(argv[0], "drain") == 0)
		rt_server_set_admin(w->rt, s, LB_ADMIN_DRAIN);
	else if (strcmp(argv[0], "enable") == 0)
		rt_server_set_admin(w->rt, s, LB_ADMIN_READY);
	else
		rt_server_set_admin(w->rt, s, LB_ADMIN_DISABLED);
	return NULL;
}

static const char *cmd_set(struct t_worker *w, char **argv, int argc, char **msg)
{
	struct t_server *s;
	long weight;

	if (argc != 5 || strcmp(argv[1], "weight") != 0)
		return "usage: set weight BACKEND NAME N";
	s = rt_server_lookup(w->rt, argv[2], argv[3], msg);
	if (!s)
		return *msg;
	if (!parse_weight(argv[4], &weight))
		return "weight must be 0..256";
	return rt_server_set_weight(w->rt, s, weight, msg) < 0 ? *msg : NULL;
}

static const char *const level_names[] = { "user", "operator", "admin" };

/* The level a command needs: show reads; drain, enable, disable and set
 * change servers' traffic; add and del change the pool. */
static int needed_level(const char *cmd)
{
	if (strcmp(cmd, "add") == 0 || strcmp(cmd, "del") == 0)
		return CFG_LEVEL_ADMIN;
	if (strcmp(cmd, "show") == 0)
		return CFG_LEVEL_USER;
	return CFG_LEVEL_OPERATOR;
}

void admin_exec(struct t_worker *w, int level, const char *line, struct sbuf *out)
{
	char buf[512], *argv[MAX_ARGS], *msg = NULL, denied[96];
	const char *err = "unknown command (show, add, del, set, drain, enable, disable)";
	int argc = 0;

	snprintf(buf, sizeof(buf), "%s", line);
	for (char *tok = strtok(buf, " \t\r\n"); tok && argc < MAX_ARGS; tok = strtok(NULL, " \t\r\n"))
		argv[argc++] = tok;
	if (argc == 0) {
		err = "empty command";
	} else if (strcmp(argv[0], "show") != 0 && strcmp(argv[0], "add") != 0 && strcmp(argv[0], "set") != 0 &&
	           strcmp(argv[0], "del") != 0 && strcmp(argv[0], "drain") != 0 && strcmp(argv[0], "enable") != 0 &&
	           strcmp(argv[0], "disable") != 0) {
		/* err: unknown command */
	} else if (needed_level(argv[0]) > level) {
		snprintf(denied, sizeof(denied), "permission denied (level %s; %s needs level %s)", level_names[level],
		         argv[0], level_names[needed_level(argv[0])]);
		err = denied;
	} else if (strcmp(argv[0], "show") == 0) {
		err = cmd_show(w, argv, argc, out);
	} else if (strcmp(argv[0], "add") == 0) {
		err = argc >= 2 && strcmp(argv[1], "server") == 0 ? cmd_add(w, argv, argc, &msg)
		                                                   : "usage: add server BACKEND NAME ADDR [weight N]";
	} else if (strcmp(argv[0], "set") == 0) {
		err = cmd_set(w, argv, argc, &msg);
	} else {
		err = cmd_server(w, argv, argc, &msg);
	}
	if (err)
		sb_printf(out, "ERR %s\n", err);
	else
		sb_printf(out, "OK\n");
	free(msg);
}

/* One command per line. */
static size_t handle(struct ctl_server *cs, const char *in, size_t len, struct sbuf *out, bool *close_after)
{
	const char *nl = memchr(in, '\n', len);
	char line[512];
	size_t n;

	if (!nl)
		return 0;
	n = (size_t)(nl - in);
	if (n >= sizeof(line)) {
		sb_printf(out, "ERR line too long\n");
		return n + 1;
	}
	memcpy(line, in, n);
	line[n] = '\0';
	if (strcmp(line, "quit") == 0 || strcmp(line, "quit\r") == 0) {
		*close_after = true;
		return n + 1;
	}
	admin_exec(cs->arg, cs->level, line, out);
	return n + 1;
}

void admin_serve(struct ctl_server *cs, struct t_worker *w, struct ctl_bound *b, int level)
{
	cs->level = level;
	cs->idle = CTL_IDLE;
	ctl_serve(cs, w->loop, b, w->log, handle, w);
}

int tether_admin_client(const char *socket_path, const char *command)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char buf[4096], last[512] = "";
	size_t llen = 0;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", socket_path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr, "tether: cannot connect to %s: %s\n", socket_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return 2;
	}
	if (dprintf(fd, "%s\n", command) < 0)
		goto broken;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n <= 0)
			goto broken;
		fwrite(buf, 1, (size_t)n, stdout);
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != '\n') {
				if (llen < sizeof(last) - 1)
					last[llen++] = buf[i];
				continue;
			}
			last[llen] = '\0';
			llen = 0;
			if (strcmp(last, "OK") == 0 || strncmp(last, "ERR", 3) == 0) {
				close(fd);
				return last[0] == 'O' ? 0 : 1;
			}
		}
	}
broken:
	fprintf(stderr, "tether: %s closed before answering\n", socket_path);
	close(fd);
	return 2;
}
