/*
 * tether - the dashboard page served at / of the metrics port: one
 * self-contained HTML file (src/daemon/io/dashboard.html: no external
 * assets) that polls /stats.  Its bytes are compiled in: meson turns the
 * file into dashboard_html.c (embed.py), so the binary serves it without
 * a file next to it and without a build step of its own.
 */
#ifndef TETHER_DASHBOARD_H
#define TETHER_DASHBOARD_H

#include <stddef.h>

extern const unsigned char dashboard_html[];
extern const size_t dashboard_html_len;

#endif
