/*
 * tether - the runtime API: text lines over the admin unix socket.
 *
 *   show servers [BACKEND]          name address state weight active total fails
 *   show info
 *   add server BACKEND NAME ADDR [weight N]
 *   del server BACKEND NAME
 *   set weight BACKEND NAME N
 *   drain server BACKEND NAME
 *   enable server BACKEND NAME | disable server BACKEND NAME
 *
 * Every answer ends with a line "OK" or "ERR <reason>".  An added server
 * starts DOWN and gets traffic only once its health check passed `rise`
 * times (immediately UP when the backend has no checks).  `del` is refused
 * while the server has connections unless it is drained or disabled; a
 * drained server with connections is removed from the pool at once (no new
 * traffic, gone from `show servers`) and freed when its last one closes.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"
#include "tether.h"
#include "tether_version.h"

#define MAX_ARGS 8

static const char *state_name(const struct t_server *s)
{
	if (s->lb.admin == LB_ADMIN_DISABLED)
		return "MAINT";
	if (s->lb.admin == LB_ADMIN_DRAIN)
		return "DRAIN";
	return s->lb.up ? "UP" : "DOWN";
}

static void show_backend(struct t_backend *be, struct sbuf *out)
{
	sb_printf(out, "# backend %s (%s)\n", be->cfg.name, be->pool.algo->name);
	for (int i = 0; i < be->pool.nservers; i++) {
		struct t_server *s = be->pool.servers[i]->data;

		if (s->deleted)
			continue;
		sb_printf(out, "%s %s %s %u %u %llu %llu%s\n", s->lb.name, s->addr.text, state_name(s), s->lb.weight,
		          s->lb.active, (unsigned long long)s->connections_total,
		          (unsigned long long)s->connect_failures_total, s->lb.backup ? " backup" : "");
	}
}

static const char *cmd_show(struct tether *t, char **argv, int argc, struct sbuf *out)
{
	if (argc >= 2 && strcmp(argv[1], "servers") == 0) {
		if (argc == 3) {
			struct t_backend *be = tether_find_backend(t, argv[2]);

			if (!be)
				return "no such backend";
			show_backend(be, out);
			return NULL;
		}
		for (struct t_backend *be = t->gen->backends; be; be = be->next)
			show_backend(be, out);
		return NULL;
	}
	if (argc == 2 && strcmp(argv[1], "info") == 0) {
		uint64_t total = 0;
		unsigned gens = 0;

		for (int i = 0; i < t->gen->nfe; i++)
			total += t->gen->fe[i]->connections_total;
		for (struct t_gen *g = t->gens; g; g = g->next)
			gens++;
		sb_printf(out, "version %s\npid %d\nuptime_seconds %.0f\nconfig %s\nactive_connections %u\n"
		          "connections_total %llu\nmaxconn %u\nreloads %llu\nreload_failures %llu\n"
		          "generations %u\n",
		          TETHER_VERSION, (int)getpid(), ev_now(t->loop) - t->started, t->conf_path, t->active,
		          (unsigned long long)total, t->gen->cfg->global.maxconn, (unsigned long long)t->reloads_total,
		          (unsigned long long)t->reload_failures_total, gens);
		return NULL;
	}
	return "usage: show servers [BACKEND] | show info";
}

static const char *cmd_add(struct tether *t, char **argv, int argc)
{
	struct t_backend *be;
	struct t_server *s;
	struct cfg_addr addr;
	long weight = 1;

	if (argc != 5 && !(argc == 7 && strcmp(argv[5], "weight") == 0))
		return "usage: add server BACKEND NAME ADDR [weight N]";
	be = tether_find_backend(t, argv[2]);
	if (!be)
		return "no such backend";
	if (strlen(argv[3]) >= LB_NAME_MAX || strspn(argv[3], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	                                                     "0123456789._-") != strlen(argv[3]))
		return "server names are 1..63 characters from A-Z a-z 0-9 . _ -";
	if (lb_pool_find(&be->pool, argv[3]))
		return "a server with this name exists";
	if (cfg_parse_addr(argv[4], &addr) < 0)
		return "bad address (want 127.0.0.1:9001 or [::1]:9001)";
	if (argc == 7) {
		char *end;

		weight = strtol(argv[6], &end, 10);
		if (*end || weight < 0 || weight > LB_WEIGHT_MAX)
			return "weight must be 0..256";
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return "out of memory";
	snprintf(s->lb.name, sizeof(s->lb.name), "%s", argv[3]);
	s->lb.weight = (unsigned)weight;
	s->lb.data = s;
	s->be = be;
	s->addr = addr;
	s->dynamic = true;
	s->check_fd = -1;
	/* checked before it gets traffic: starts DOWN when the backend has checks */
	hc_init(&s->hc, &be->cfg.health.hc, be->cfg.health.type == CFG_CHECK_NONE);
	s->lb.up = s->hc.up;
	snprintf(s->last_check, sizeof(s->last_check), "added");
	if (lb_pool_add(&be->pool, &s->lb) < 0) {
		free(s);
		return "cannot add the server";
	}
	s->next_dynamic = be->dynamic;
	be->dynamic = s;
	check_start(s);
	log_printf("runtime: added server %s/%s %s weight %ld (%s)", be->cfg.name, s->lb.name, addr.text, weight,
	           s->lb.up ? "UP" : "DOWN until checked");
	return NULL;
}

static struct t_server *find(struct tether *t, char **argv, const char **err)
{
	struct t_backend *be = tether_find_backend(t, argv[2]);
	struct t_server *s;

	if (!be) {
		*err = "no such backend";
		return NULL;
	}
	s = be_find_server(be, argv[3]);
	if (!s)
		*err = "no such server";
	return s;
}

bool srv_release(struct t_server *s)
{
	struct t_backend *be = s->be;

	if (!s->deleted || s->lb.active > 0)
		return false;
	if (s->lb.index >= 0) {
		lb_pool_del(&be->pool, &s->lb);
		log_printf("runtime: server %s/%s removed", be->cfg.name, s->lb.name);
	}
	if (!s->dynamic)
		return false;   /* lives in the backend's array until the generation goes */
	for (struct t_server **p = &be->dynamic; *p; p = &(*p)->next_dynamic)
		if (*p == s) {
			*p = s->next_dynamic;
			break;
		}
	free(s);
	return true;
}

void srv_conn_end(struct t_server *s)
{
	lb_conn_close(&s->be->pool, &s->lb);
	srv_release(s);
}

static const char *cmd_server(struct tether *t, char **argv, int argc)
{
	const char *err = NULL;
	struct t_server *s;

	if (argc != 4 || strcmp(argv[1], "server") != 0)
		return "usage: del|drain|enable|disable server BACKEND NAME";
	s = find(t, argv, &err);
	if (!s || s->deleted)
		return s ? "no such server" : err;
	if (strcmp(argv[0], "del") == 0) {
		if (s->lb.active > 0 && s->lb.admin == LB_ADMIN_READY)
			return "server still has connections: drain it first";
		check_stop(s);
		s->deleted = true;
		lb_server_set_admin(&s->be->pool, &s->lb, LB_ADMIN_DISABLED);
		log_printf("runtime: del server %s/%s", s->be->cfg.name, s->lb.name);
		if (!srv_release(s) && s->lb.index >= 0) {
			/* drained with connections: hidden now, removed when they end */
			lb_server_set_up(&s->be->pool, &s->lb, false);
		}
		return NULL;
	}
	if (strcmp(argv[0], "drain") == 0)
		lb_server_set_admin(&s->be->pool, &s->lb, LB_ADMIN_DRAIN);
	else if (strcmp(argv[0], "enable") == 0)
		lb_server_set_admin(&s->be->pool, &s->lb, LB_ADMIN_READY);
	else
		lb_server_set_admin(&s->be->pool, &s->lb, LB_ADMIN_DISABLED);
	log_printf("runtime: %s server %s/%s", argv[0], s->be->cfg.name, s->lb.name);
	return NULL;
}

static const char *cmd_set(struct tether *t, char **argv, int argc)
{
	const char *err = NULL;
	struct t_server *s;
	char *end;
	long w;

	if (argc != 5 || strcmp(argv[1], "weight") != 0)
		return "usage: set weight BACKEND NAME N";
	s = find(t, argv, &err);
	if (!s)
		return err;
	w = strtol(argv[4], &end, 10);
	if (*end || w < 0 || w > LB_WEIGHT_MAX)
		return "weight must be 0..256";
	lb_server_set_weight(&s->be->pool, &s->lb, (unsigned)w);
	log_printf("runtime: weight of %s/%s set to %ld", s->be->cfg.name, s->lb.name, w);
	return NULL;
}

void admin_exec(struct tether *t, const char *line, char **outp, size_t *lenp, size_t *capp)
{
	struct sbuf out = { *outp, *lenp, *capp, false };
	char buf[512], *argv[MAX_ARGS];
	const char *err = "unknown command (show, add, del, set, drain, enable, disable)";
	int argc = 0;

	snprintf(buf, sizeof(buf), "%s", line);
	for (char *tok = strtok(buf, " \t\r\n"); tok && argc < MAX_ARGS; tok = strtok(NULL, " \t\r\n"))
		argv[argc++] = tok;
	if (argc == 0)
		err = "empty command";
	else if (strcmp(argv[0], "show") == 0)
		err = cmd_show(t, argv, argc, &out);
	else if (strcmp(argv[0], "add") == 0 && argc >= 2 && strcmp(argv[1], "server") == 0)
		err = cmd_add(t, argv, argc);
	else if (strcmp(argv[0], "set") == 0)
		err = cmd_set(t, argv, argc);
	else if (strcmp(argv[0], "del") == 0 || strcmp(argv[0], "drain") == 0 ||
	         strcmp(argv[0], "enable") == 0 || strcmp(argv[0], "disable") == 0)
		err = cmd_server(t, argv, argc);
	if (err)
		sb_printf(&out, "ERR %s\n", err);
	else
		sb_printf(&out, "OK\n");
	*outp = out.s;
	*lenp = out.len;
	*capp = out.cap;
}

/* One command per line. */
static size_t handle(struct tether *t, const char *in, size_t len, struct sbuf *out, bool *close_after)
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
	admin_exec(t, line, &out->s, &out->len, &out->cap);
	return n + 1;
}

static struct ctl_server admin_srv;

int admin_start(struct tether *t, char **err)
{
	if (!t->gen->cfg->global.admin[0])
		return 0;
	if (ctl_listen_unix(&admin_srv, t, t->gen->cfg->global.admin, handle, err) < 0)
		return -1;
	t->admin = &admin_srv;
	return 0;
}

void admin_stop(struct tether *t)
{
	if (!t->admin)
		return;
	ctl_stop(t->admin);
	t->admin = NULL;
}

/* tether -x SOCKET COMMAND: prints the answer; exit 0 on OK, 1 on ERR, 2 when unreachable. */
int tether_admin_client(const char *socket_path, const char *command);

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
