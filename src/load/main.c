/*
 * tether-load - traffic of tether-sim's virtual users against a real
 * balancer (DESIGN.md "Programs", docs/load.md).  Arguments, the run, the
 * outputs; exit 0 after a run (failed requests are figures, not errors),
 * 1 when the run could not start (target unreachable, output unwritable),
 * 2 on a bad command line or scenario.
 */
#include <stdlib.h>
#include <string.h>

#include "load.h"

static int write_json(const struct load *L, const char *path)
{
	FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");

	if (!f) {
		perror(path);
		return -1;
	}
	stats_json(f, &L->s);
	if (f != stdout && fclose(f) != 0) {
		perror(path);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct load_opts o;
	struct load *L = NULL;
	int rc = load_args(&o, argc, argv);

	if (rc != 0) {
		load_opts_free(&o);
		return rc > 0 ? 0 : 2;
	}
	rc = 1;
	if (!(L = calloc(1, sizeof(*L)))) {
		fprintf(stderr, "tether-load: out of memory\n");
		goto out;
	}
	if (load_run(L, &o) < 0)
		goto out;
	if (!o.quiet)
		stats_print(o.json && strcmp(o.json, "-") == 0 ? stderr : stdout, &L->s, L->wall_s);
	if (o.json && write_json(L, o.json) < 0)
		goto out;
	rc = 0;
out:
	if (L)
		load_fini(L);
	free(L);
	load_opts_free(&o);
	return rc;
}
