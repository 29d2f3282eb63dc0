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

/*
 * The schema: every setting of a group is one row of a table, which gives
 * its type, its limits and where its value goes.  The loader reads a group
 * by walking its table (cfg_read_group), the list of known names (for
 * "unknown setting ... did you mean") is the table itself, and the tests
 * check every numeric setting's limits from the same rows (cfg_schema).
 */
enum cfg_type {
	CT_INT,         /* integer min..max; stored in `size` bytes (unsigned 4 or 8) */
	CT_DURATION,    /* "500ms", "2s", ... min..max milliseconds; stored like CT_INT */
	CT_BOOL,
	CT_STRING,      /* stored in a char[size] */
	CT_ENUM,        /* one of choices; stored as an int: values[i], or i */
	CT_NAME,        /* 1..63 characters from [A-Za-z0-9._-], into a char[64] */
	CT_CUSTOM,      /* read by `read` (a list, an address, a nested group...) */
};

#define CF_REQUIRED 0x1u        /* absent is an error */
#define CF_FURTHER  0x2u        /* limits are necessary, not sufficient: checked further */
#define CF_NUMERIC  0x4u        /* a CT_CUSTOM field that takes a number min..max (and more) */

struct cfg_field;
/* Reads field f of group g (at path) into the object at base. */
typedef void (*cfg_read_fn)(struct cfg_ctx *c, const config_setting_t *g, const char *path,
                            const struct cfg_field *f, void *base);

struct cfg_field {
	const char *name;
	enum cfg_type type;
	size_t offset;                  /* of the value in the object filled */
	size_t size;
	long long min, max;             /* CT_INT, CT_DURATION */
	const char *const *choices;     /* CT_ENUM, NULL-terminated */
	const int *values;              /* CT_ENUM: stored values, NULL = the index */
	cfg_read_fn read;               /* CT_CUSTOM; or an extra check after a typed read */
	unsigned flags;                 /* CF_* */
};

/* A table of fields: a group of the file.  `path` names where it is, with
 * [] for "each element of a list" ("backends.[].health"). */
struct cfg_group {
	const char *path;
	const struct cfg_field *fields;
	size_t nfields;
};
#define CFG_GROUP(p, table) { p, table, sizeof(table) / sizeof(table[0]) }

/* Checks that g is a group, reports its unknown members, and reads every
 * field of grp into base.  False when g is not a group. */
bool cfg_read_group(struct cfg_ctx *c, const config_setting_t *g, const char *path, const struct cfg_group *grp,
                    void *base);
/* Every group of the balancer's configuration, NULL path terminated. */
const struct cfg_group *cfg_schema(void);
/* The backend groups (config_backend.c), NULL path terminated. */
const struct cfg_group *cfg_backend_schema(void);

#endif
