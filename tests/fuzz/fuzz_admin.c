/*
 * libFuzzer target for the runtime API's command parser and commands
 * (src/daemon/io/admin.c), on a runtime without sockets (as the unit test
 * daemon_admin).  The first byte picks the client's level; the rest is
 * split into lines, each run as a command.  Checks: every answer ends with
 * exactly one final line, "OK" or "ERR ..."; a user-level client changes
 * nothing (its answers to anything but show are refusals or errors).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ev_loop *loop;
static struct t_log lg;
static struct t_runtime rt;
static struct t_worker w;
static unsigned runs;

static const char conf[] =
	"global = { log = \"off\"; };\n"
	"frontends = ( { name = \"web\"; bind = [ \"127.0.0.1:1\" ]; backend = \"be\"; } );\n"
	"backends = ( { name = \"be\"; servers = ( { name = \"s1\"; address = \"127.0.0.1:2\"; },\n"
	"  { name = \"s2\"; address = \"127.0.0.1:3\"; weight = 4; } ); },\n"
	"  { name = \"b2\"; balance = \"leastconn\"; servers = ( { name = \"x\"; address = \"[::1]:4\"; } ); } );\n";

/* A fresh generation now and then: added servers do not pile up forever. */
static void fresh(void)
{
	struct tether_config *c = NULL;
	struct t_gen *g;
	char *err = NULL;

	if (cfg_load_string(conf, "f.conf", &c, &err) < 0 || !(g = rt_gen_new(&rt, c, &err)))
		abort();
	rt_install(&rt, g);
}

static void setup(void)
{
	char *err = NULL;

	loop = ev_loop_new(EVFLAG_AUTO);
	log_init(&lg, false);
	if (log_open(&lg, "/dev/null", NULL, &err) < 0)
		abort();
	rt_init(&rt, &lg, "f.conf", 1, 1);
	if (worker_init(&w, 0, loop, &rt, &lg, &err) < 0)
		abort();
	w.peers = &w;
	w.npeers = 1;
	fresh();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sbuf out = { 0 };
	int level;

	if (!loop)
		setup();
	if (++runs % 4096 == 0)
		fresh();
	if (size == 0)
		return 0;
	level = data[0] % 3;
	for (size_t i = 1; i < size;) {
		const uint8_t *nl = memchr(data + i, '\n', size - i);
		size_t n = nl ? (size_t)(nl - (data + i)) : size - i;
		char *line = malloc(n + 1);
		const char *last;

		memcpy(line, data + i, n);
		line[n] = '\0';
		out.len = 0;
		admin_exec(&w, level, line, &out);
		sb_printf(&out, "%s", "");
		if (out.failed || out.len == 0 || out.s[out.len - 1] != '\n')
			abort();
		out.s[out.len - 1] = '\0';
		last = strrchr(out.s, '\n');
		last = last ? last + 1 : out.s;
		if (strcmp(last, "OK") != 0 && strncmp(last, "ERR ", 4) != 0)
			abort();
		if (level == 0 && strcmp(last, "OK") == 0 && strncmp(line + strspn(line, " \t\r"), "show", 4) != 0)
			abort();        /* a user-level client ran something else */
		free(line);
		i += n + 1;
	}
	sb_free(&out);
	return 0;
}
