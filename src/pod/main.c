/*
 * tether-pod - a small, fast libev HTTP/1.1 server standing in for an app
 * pod: it answers with its own name, serves /health and /stats, and logs
 * users in, keeping their sessions in its own memory, in Redis, or in Redis
 * with a local cache (the four patterns of the lab; docs/lab.md).
 *
 *   tether-pod --name NAME --listen ADDR:PORT [--listen ...]
 *              [--store memory|redis|redis+cache|none] [--health-status N]
 *              [--redis H:P | --redis-sentinel H:P,H:P,... --redis-master NAME]
 *              [--cache-ttl T] [--session-ttl T] [--redis-timeout T]
 *              [--proxy-protocol] [--log-connections]
 *
 * One thread, one loop; it never blocks on Redis.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tether/config.h"

#include "pod.h"

#define SESSIONS_MIN 1024               /* first table size (slots) */
#define SESSIONS_MAX (1u << 22)         /* slots: 3 M live sessions, 256 MiB at most */
#define ADDRS_MIN 256

static const char usage[] =
	"usage: tether-pod --name NAME --listen ADDR:PORT [--listen ...]\n"
	"                  [--store memory|redis|redis+cache|none] [--health-status N]\n"
	"                  [--redis HOST:PORT | --redis-sentinel H:P,H:P,... --redis-master NAME]\n"
	"                  [--cache-ttl T] [--session-ttl T] [--redis-timeout T]\n"
	"                  [--proxy-protocol] [--log-connections]\n"
	"  --proxy-protocol   every connection starts with a PROXY v1/v2 header (tether send_proxy);\n"
	"                     its client address is the one counted in /stats client_addresses\n"
	"  --log-connections  one line per connection on stderr, with the client's address\n"
	"  durations: 500ms, 2s, 5m, 1h (a bare number is seconds)\n"
	"  --sessions memory|none is an old name of --store\n";

/* The options that are not the pod itself. */
struct opts {
	const char *listen[POD_LISTEN_MAX];
	int nlisten;
	struct rlink_conf redis;
	bool redis_given;
	char log_name[96];
};

/* "HOST:PORT" or "[V6]:PORT" into a. */
static int parse_hostport(const char *s, struct rlink_addr *a)
{
	const char *colon = strrchr(s, ':'), *h = s;
	size_t hl;
	char *end;
	long port;

	if (!colon)
		return -1;
	hl = (size_t)(colon - s);
	if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	port = strtol(colon + 1, &end, 10);
	if (hl == 0 || hl >= sizeof(a->host) || *end || port < 1 || port > 65535)
		return -1;
	memcpy(a->host, h, hl);
	a->host[hl] = '\0';
	a->port = (int)port;
	return 0;
}

static int parse_sentinels(const char *s, struct rlink_conf *rc)
{
	char buf[1024], *save = NULL;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (rc->nsentinels == RLINK_SENTINELS_MAX || parse_hostport(t, &rc->sentinel[rc->nsentinels]) < 0)
			return -1;
		rc->nsentinels++;
	}
	return rc->nsentinels ? 0 : -1;
}

/* A duration in seconds (> 0), or -1. */
static double parse_secs(const char *s)
{
	char buf[64];
	uint64_t ms;

	if (strlen(s) >= sizeof(buf) - 1)
		return -1;
	snprintf(buf, sizeof(buf), "%s%s", s, s[0] && strspn(s, "0123456789") == strlen(s) ? "s" : "");
	if (cfg_parse_duration(buf, &ms) < 0 || ms == 0)
		return -1;
	return (double)ms / 1000.;
}

static int parse_store(const char *s, enum pod_store *out)
{
	static const char *const names[] = { "none", "memory", "redis", "redis+cache" };

	for (int i = 0; i < 4; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum pod_store)i;
			return 0;
		}
	}
	return -1;
}

/* One option and its value; 0, or 2 (usage error) with a message. */
static int parse_opt(struct pod *p, struct opts *o, const char *opt, const char *v)
{
	double *secs = NULL;

	if (strcmp(opt, "--name") == 0 && strlen(v) < 64 && !strpbrk(v, "\r\n\"\\"))
		p->name = v;
	else if (strcmp(opt, "--health-status") == 0 && atoi(v) >= 100 && atoi(v) <= 599)
		p->health_status = atoi(v);
	else if ((strcmp(opt, "--store") == 0 || strcmp(opt, "--sessions") == 0) && parse_store(v, &p->store) == 0)
		;
	else if (strcmp(opt, "--listen") == 0 && o->nlisten < POD_LISTEN_MAX)
		o->listen[o->nlisten++] = v;
	else if (strcmp(opt, "--redis") == 0 && parse_hostport(v, &o->redis.direct) == 0)
		o->redis_given = true;
	else if (strcmp(opt, "--redis-sentinel") == 0 && parse_sentinels(v, &o->redis) == 0)
		o->redis_given = true;
	else if (strcmp(opt, "--redis-master") == 0)
		o->redis.master_name = v;
	else if ((secs = strcmp(opt, "--cache-ttl") == 0 ? &p->cache_ttl
	              : strcmp(opt, "--session-ttl") == 0 ? &p->session_ttl
	              : strcmp(opt, "--redis-timeout") == 0 ? &o->redis.timeout : NULL) && parse_secs(v) > 0)
		*secs = parse_secs(v);
	else {
		fprintf(stderr, "tether-pod: bad option or value: %s %s\n%s", opt, v, usage);
		return 2;
	}
	return 0;
}

static int check_opts(const struct pod *p, const struct opts *o)
{
	bool redis = p->store == STORE_REDIS || p->store == STORE_CACHE;
	const char *err = NULL;

	if (o->nlisten == 0)
		err = "give at least one --listen ADDR:PORT";
	else if (o->redis.nsentinels && !o->redis.master_name)
		err = "--redis-sentinel needs --redis-master NAME";
	else if (o->redis.master_name && !o->redis.nsentinels)
		err = "--redis-master goes with --redis-sentinel";
	else if (o->redis.nsentinels && o->redis.direct.port)
		err = "give --redis or --redis-sentinel, not both";
	else if (o->redis_given && !redis)
		err = "--redis and --redis-sentinel need --store redis or redis+cache";
	if (err)
		fprintf(stderr, "tether-pod: %s\n", err);
	return err ? 2 : 0;
}

static int parse_args(struct pod *p, struct opts *o, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(usage, stdout);
			return -1;
		}
		if (strcmp(argv[i], "--proxy-protocol") == 0 || strcmp(argv[i], "--log-connections") == 0) {
			*(argv[i][2] == 'p' ? &p->proxy_protocol : &p->log_connections) = true;
			continue;
		}
		if (i + 1 == argc) {
			fprintf(stderr, "tether-pod: %s needs a value\n%s", argv[i], usage);
			return 2;
		}
		if (parse_opt(p, o, argv[i], argv[i + 1]) != 0)
			return 2;
		i++;
	}
	return check_opts(p, o);
}

static int listen_on(struct pod *p, const char *addr)
{
	struct cfg_addr a;
	int one = 1, fd;
	ev_io *w = &p->listener[p->nlisteners];

	if (cfg_parse_addr(addr, &a) < 0) {
		fprintf(stderr, "tether-pod: bad address %s\n", addr);
		return -1;
	}
	fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||    /* inherited by accept */
	    bind(fd, (struct sockaddr *)&a.ss, a.len) < 0 || listen(fd, 4096) < 0) {
		fprintf(stderr, "tether-pod: cannot listen on %s: %s\n", addr, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	ev_io_init(w, conn_accept_cb, fd, EV_READ);
	w->data = p;
	ev_io_start(p->loop, w);
	p->nlisteners++;
	return 0;
}

static void stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

static uint64_t random_seed(void)
{
	uint64_t s = 0;

	if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != sizeof(s))
		s = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL;
	return s ^ (uint64_t)getpid() << 32;
}

/* Everything the pod needs but its listeners; 0 or -1. */
static int pod_start(struct pod *p, struct opts *o)
{
	p->sid_state = random_seed();
	if (sesstab_init(&p->sessions, SESSIONS_MIN, SESSIONS_MAX) < 0 || addrset_init(&p->addrs, ADDRS_MIN) < 0)
		return -1;
	if (p->store != STORE_REDIS && p->store != STORE_CACHE)
		return 0;
	if (!o->redis_given)
		parse_hostport("127.0.0.1:6379", &o->redis.direct);
	snprintf(o->log_name, sizeof(o->log_name), "tether-pod %s", p->name);
	o->redis.log_name = o->log_name;
	o->redis.script = store_touch_lua;
	o->redis.op_size = sizeof(struct pod_op);
	o->redis.reply = store_reply;
	o->redis.done = store_done;
	o->redis.owner = p;
	if (rlink_start(&p->redis, p->loop, &o->redis) < 0)
		return -1;
	p->redis_on = true;
	return 0;
}

/* Undoes pod_start and closes the listeners and connections. */
static void pod_stop(struct pod *p)
{
	if (p->redis_on)
		rlink_stop(&p->redis);          /* parked clients get their 503 first */
	conn_close_all(p);
	for (int i = 0; i < p->nlisteners; i++) {
		ev_io_stop(p->loop, &p->listener[i]);
		close(p->listener[i].fd);
	}
	ev_signal_stop(p->loop, &p->sterm);
	ev_signal_stop(p->loop, &p->sint);
	sesstab_fini(&p->sessions);
	addrset_fini(&p->addrs);
}

int main(int argc, char **argv)
{
	struct pod pod = {
		.loop = ev_default_loop(0), .name = "pod", .health_status = 200, .store = STORE_MEMORY,
		.session_ttl = 3600., .cache_ttl = 300.,
	};
	struct opts o = { .redis = { .timeout = 1. } };
	int rc = parse_args(&pod, &o, argc, argv);

	if (rc)
		return rc < 0 ? 0 : rc;
	signal(SIGPIPE, SIG_IGN);
	ev_signal_init(&pod.sterm, stop_cb, SIGTERM);
	ev_signal_init(&pod.sint, stop_cb, SIGINT);
	ev_signal_start(pod.loop, &pod.sterm);
	ev_signal_start(pod.loop, &pod.sint);
	rc = pod_start(&pod, &o);
	for (int i = 0; rc == 0 && i < o.nlisten; i++)
		rc = listen_on(&pod, o.listen[i]);
	if (rc == 0)
		ev_run(pod.loop, 0);
	pod_stop(&pod);
	ev_loop_destroy(pod.loop);
	return rc == 0 ? 0 : 1;
}
