/*
 * tether-sim - plots of a run with gnuplot (--plot FILE.png|.svg).
 *
 * Panels, top to bottom, sharing the time axis: what users saw (miss rate
 * and failed requests, in % of the interval's requests), Redis (commands/s
 * per second; only for the Redis stores), and the pods
 * (ready, and what the HPA or the deployment wants).  A dashed line marks
 * each crash and scaling step the run recorded; crashes are labelled with
 * the sessions they lost.  Ranges are fitted to the data, a panel without
 * data is left out, the legends sit outside the plotting area, and
 * gnuplot's own messages are shown only when it fails.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim.h"

#define MAX_LABELS 24           /* more crash/scale labels than this would overlap: lines only */

static int error(char **err, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int error(char **err, int rc, const char *fmt, ...)
{
	va_list ap;

	free(*err);
	if ((*err = malloc(512))) {
		va_start(ap, fmt);
		vsnprintf(*err, 512, fmt, ap);
		va_end(ap);
	}
	return rc;
}

int sim_plot_check(const char *path, char **err)
{
	const char *ext = strrchr(path, '.');

	*err = NULL;
	if (!ext || (strcmp(ext, ".png") != 0 && strcmp(ext, ".svg") != 0))
		return error(err, -EINVAL, "tether-sim: --plot %s: the file must end in .png or .svg", path);
	if (strchr(path, '\''))
		return error(err, -EINVAL, "tether-sim: --plot %s: the name may not contain a quote", path);
	if (system("command -v gnuplot >/dev/null 2>&1") != 0)
		return error(err, -ENOENT, "tether-sim: --plot needs gnuplot: apt-get install gnuplot-nox");
	return 0;
}

static const char *store_name(enum store s)
{
	return s == STORE_LOCAL ? "sessions in pod memory" : s == STORE_REDIS ? "sessions in Redis"
	                                                                      : "Redis + pod-local cache";
}

/* Dashed lines at the run's marks; labels (with the sessions lost) only on
 * the panel where `labels` is true. */
static void marks(FILE *f, const struct sim_summary *s, bool labels)
{
	fprintf(f, "unset arrow\nunset label\n");
	for (int i = 0; i < s->nmarks; i++) {
		const struct sim_mark *m = &s->marks[i];
		const char *color = strstr(m->what, "crash") ? "#c0392b" : strstr(m->what, "Redis") ||
		                    strstr(m->what, "replica") ? "#1e8449" : "#2e86c1";

		fprintf(f, "set arrow from %.1f, graph 0 to %.1f, graph 1 nohead dashtype 2 lc rgb '%s'\n", m->t_s,
		        m->t_s, color);
		if (!labels || s->nmarks > MAX_LABELS)
			continue;
		/* labels of marks close in time alternate between two heights */
		if (m->lost >= 0)
			fprintf(f, "set label '%s: %lld of %llu lost' at %.1f, graph %.2f rotate by 90 right boxed "
			        "offset -0.8,0 font ',9' tc rgb '%s' front\n", m->what, (long long)m->lost,
			        (unsigned long long)m->live, m->t_s, i % 2 ? 0.45 : 0.97, color);
		else
			fprintf(f, "set label '%s' at %.1f, graph %.2f rotate by 90 right boxed offset -0.8,0 font ',9' "
			        "tc rgb '%s' front\n", m->what, m->t_s, i % 2 ? 0.45 : 0.97, color);
	}
}

static void script(FILE *f, const struct sim_params *p, const struct sim_summary *s, const char *csv,
                   const char *out)
{
	const char *ext = strrchr(out, '.');
	bool redis = p->store != STORE_LOCAL && s->redis_reads + s->redis_writes > 0;
	int panels = redis ? 3 : 2, h = panels * 260 + 60;

	fprintf(f, "set terminal %s size 1100,%d font ',10'\nset output '%s'\nset datafile separator ','\n",
	        strcmp(ext, ".png") == 0 ? "pngcairo" : "svg", h, out);
	fprintf(f, "set multiplot layout %d,1 title 'tether-sim: %s - %s, %s, %.0f s, seed %llu' font ',12'\n",
	        panels, p->name[0] ? p->name : "scenario", store_name(p->store), p->be.algo->name, p->duration_s,
	        (unsigned long long)p->seed);
	fprintf(f, "set style textbox opaque noborder\n");
	fprintf(f, "set key outside right top vertical Left reverse width 2\nset grid ytics lc rgb '#dddddd'\n"
	        "set xrange [0:%.0f]\nset lmargin 10\nset rmargin 28\n", p->duration_s);
	/* users: miss rate and failures, % */
	marks(f, s, true);
	fprintf(f, "set ylabel '%% of requests'\nset format y '%%g%%%%'\n");
	if (s->misses + s->failed == 0)
		fprintf(f, "set yrange [0:1]\n");
	else
		fprintf(f, "set yrange [0:*]\nset offsets 0, 0, graph 0.1, 0\n");
	fprintf(f, "plot '%s' using 1:($7*100) skip 1 with lines lw 2 lc rgb '#8e44ad' title 'session miss rate', "
	        "'' using 1:($14*100) skip 1 with lines lw 2 lc rgb '#c0392b' title 'failed (502/503/504)'\n", csv);
	fprintf(f, "set offsets 0, 0, 0, 0\nset format y '%%g'\n");
	if (redis) {
		marks(f, s, false);
		fprintf(f, "set ylabel 'commands/s'\nset yrange [0:*]\nset offsets 0, 0, graph 0.1, 0\n"
		        "plot '%s' using 1:($10/%g) skip 1 with lines lw 2 lc rgb '#1e8449' title 'Redis commands/s'\n"
		        "set offsets 0, 0, 0, 0\n", csv, p->report_s);
	}
	marks(f, s, false);
	if ((p->hpa ? p->hpa_max : p->pods + p->scale_to) <= 16)
		fprintf(f, "set ytics 1\n");
	fprintf(f, "set xlabel 'time (s)'\nset ylabel 'pods'\nset yrange [0:*]\nset offsets 0, 0, 1, 0\n"
	        "plot '%s' using 1:3 skip 1 with steps lw 2 lc rgb '#2e86c1' title 'pods ready', "
	        "'' using 1:4 skip 1 with steps dashtype 2 lc rgb '#34495e' title '%s'\n"
	        "unset multiplot\n", csv, p->hpa ? "HPA desired" : "replicas wanted");
}

int sim_plot(const struct sim_params *p, const struct sim_summary *s, const char *csv, const char *path,
             char **err)
{
	char gp[4200], log[4200], cmd[8600];
	FILE *f;
	int rc;

	if ((rc = sim_plot_check(path, err)) < 0)
		return rc;
	snprintf(gp, sizeof(gp), "%s.gp", path);
	snprintf(log, sizeof(log), "%s.log", path);
	if (!(f = fopen(gp, "w")))
		return error(err, -errno, "tether-sim: --plot: cannot write %s", gp);
	script(f, p, s, csv, path);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "gnuplot '%s' 2>'%s'", gp, log);
	rc = system(cmd);
	if (rc != 0) {
		rc = error(err, -EIO, "tether-sim: gnuplot failed; its script is %s", gp);
		snprintf(cmd, sizeof(cmd), "cat '%s' >&2", log);
		if (system(cmd) != 0)
			rc = -EIO;
	} else {
		unlink(gp);
	}
	unlink(log);
	if (rc == 0 && s->nmarks > MAX_LABELS)
		fprintf(stderr, "tether-sim: plot: %d events marked by lines without labels (more than %d)\n",
		        s->nmarks, MAX_LABELS);
	return rc;
}
