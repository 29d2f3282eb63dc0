/*
 * tether - command line.  Everything else lives in the daemon libraries.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "daemon.h"

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: tether [-c FILE]          run with FILE (default conf/tether.conf)\n"
	        "       tether -t [-c FILE]       check FILE: prints \"configuration OK\" or the errors\n"
	        "       tether -x SOCKET COMMAND  send one runtime-API command (e.g. show servers)\n"
	        "       tether -v | --version\n"
	        "       tether -h | --help\n"
	        "signals: HUP reload, TERM/INT drain and stop, USR1 reopen the log\n");
}

/* tether -x SOCK show servers: the words after the socket, joined by
 * spaces, are the command (quoted as one argument or not). */
static int admin_command(const char *sock, int n, char **words)
{
	char line[512] = "";
	size_t used = 0;

	for (int i = 0; i < n; i++) {
		int w = snprintf(line + used, sizeof(line) - used, "%s%s", i ? " " : "", words[i]);

		if (w < 0 || (size_t)w >= sizeof(line) - used) {
			fprintf(stderr, "tether: the command is too long (at most %zu characters)\n", sizeof(line) - 1);
			return 2;
		}
		used += (size_t)w;
	}
	return tether_admin_client(sock, line);
}

int main(int argc, char **argv)
{
	const char *path = "conf/tether.conf";
	bool check = false;
	struct tether_config *cfg = NULL;
	struct tether t;
	char *err = NULL;
	int rc;

	for (int i = 1; i < argc; i++) {
		if ((strcmp(argv[i], "-c") == 0 && i + 1 == argc) || (strcmp(argv[i], "-x") == 0 && i + 2 >= argc)) {
			fprintf(stderr, "tether: option %s needs %s\n", argv[i],
			        argv[i][1] == 'c' ? "an argument: the configuration file" : "a socket path and a command");
			usage(stderr);
			return 2;
		} else if (strcmp(argv[i], "-c") == 0) {
			path = argv[++i];
		} else if (strcmp(argv[i], "-t") == 0) {
			check = true;
		} else if (strcmp(argv[i], "-x") == 0) {
			return admin_command(argv[i + 1], argc - i - 2, argv + i + 2);
		} else if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--version") == 0) {
			printf("tether %s\n", TETHER_VERSION);
			return 0;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "tether: unknown argument \"%s\"\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (cfg_load(path, &cfg, &err) < 0) {
		fprintf(stderr, "%s\n", err);
		free(err);
		return 1;
	}
	if (check) {
		printf("configuration OK\n");
		cfg_free(cfg);
		return 0;
	}
	if (tether_start(&t, cfg, path, TETHER_SIGNALS, &err) < 0) {
		fprintf(stderr, "tether: %s\n", err ? err : "cannot start");
		free(err);
		tether_free(&t);
		return 1;
	}
	rc = tether_run(&t);
	tether_free(&t);
	return rc;
}
