/*
 * tether - typed setting readers shared by the configuration parsers of the
 * daemon (config.c, config_backend.c) and of tether-sim.
 *
 * Every reader reports its own errors into the context and returns 1 when
 * the setting was present and valid, 0 when absent, -1 when present but
 * wrong, so callers keep their default on anything but 1.
 */
#ifndef TETHER_CONFIG_READ_H
#define TETHER_CONFIG_READ_H

#include <libconfig.h>
#include <stdbool.h>
#include <stdint.h>

struct cfg_ctx {
	const char *file;       /* named in messages */
	char **errs;            /* malloc'd, one error per line; NULL while none */
};

/* Appends `FILE:LINE: PATH: message` (line of setting s). */
void cfg_error(struct cfg_ctx *c, const config_setting_t *s, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void cfg_error_line(struct cfg_ctx *c, int line, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* False (and an error) unless s is a group. */
bool cfg_check_group(struct cfg_ctx *c, const config_setting_t *s, const char *path);
/* Reports every member of group g whose name is not in known (NULL-terminated). */
void cfg_check_known(struct cfg_ctx *c, const config_setting_t *g, const char *path, const char *const known[]);

int cfg_get_int(struct cfg_ctx *c, const config_setting_t *g, const char *path, const char *name,
                long long *out, long long min, long long max);
int cfg_get_float(struct cfg_ctx *c, const config_setting_t *g, const char *path, const char *name,
                  double *out, double min, double max);
int cfg_get_bool(struct cfg_ctx *c, const config_setting_t *g, const char *path, const char *name, bool *out);
int cfg_get_string(struct cfg_ctx *c, const config_setting_t *g, const char *path, const char *name,
                   char *out, size_t cap);
/* One of choices (NULL-terminated); *out = its index. */
int cfg_get_enum(struct cfg_ctx *c, const config_setting_t *g, const char *path, const char *name,
                 const char *const choices[], int *out);
int cfg_get_duration(struct cfg_ctx *c, const config_setting_t *g, const char *path, const char *name,
                     uint64_t *ms, uint64_t min_ms, uint64_t max_ms);
/* A `name` member: 1..63 characters from [A-Za-z0-9._-]; required ones are reported when absent. */
int cfg_get_name(struct cfg_ctx *c, const config_setting_t *g, const char *path, char out[64], bool required);

#endif
