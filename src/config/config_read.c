/*
 * tether - typed setting readers and the value syntaxes (durations,
 * addresses) of the configuration.  See config_read.h.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_read.h"
#include "tether/config.h"

static void append(struct cfg_ctx *c, const char *line)
{
	size_t old = *c->errs ? strlen(*c->errs) : 0, n = strlen(line);
	char *e = realloc(*c->errs, old + n + 2);

	if (!e)
		return;
	if (old)
		e[old++] = '\n';
	memcpy(e + old, line, n + 1);
	*c->errs = e;
}

static void verror(struct cfg_ctx *c, int line, const char *path, const char *fmt, va_list ap)
{
	char msg[512], full[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (path && path[0])
		snprintf(full, sizeof(full), "%s:%d: %s: %s", c->file, line, path, msg);
	else
		snprintf(full, sizeof(full), "%s:%d: %s", c->file, line, msg);
	/* a value quoted in the message may hold a newline (a string literal
	 * across lines) or a terminal escape: one error stays one line */
	for (char *p = full; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	append(c, full);
}

void cfg_error(struct cfg_ctx *c, const config_setting_t *s, const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verror(c, s ? config_setting_source_line(s) : 0, path, fmt, ap);
	va_end(ap);
}

void cfg_error_line(struct cfg_ctx *c, int line, const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verror(c, line, path, fmt, ap);
	va_end(ap);
}

bool cfg_check_group(struct cfg_ctx *c, const config_setting_t *s, const char *path)
{
	if (config_setting_type(s) == CONFIG_TYPE_GROUP)
		return true;
	cfg_error(c, s, path, "must be a group: { ... }");
	return false;
}

/* Levenshtein distance, capped: enough to suggest "retries" for "retires". */
static int distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	int row[64];

	if (la >= 63 || lb >= 63)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		row[j] = (int)j;
	for (size_t i = 1; i <= la; i++) {
		int prev = row[0], cur;

		row[0] = (int)i;
		for (size_t j = 1; j <= lb; j++) {
			int best = prev + (a[i - 1] != b[j - 1]);

			cur = row[j];
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			prev = cur;
			row[j] = best;
		}
	}
	return row[lb];
}

void cfg_check_known(struct cfg_ctx *c, const config_setting_t *g, const char *path, const char *const known[])
{
	for (int i = 0; i < config_setting_length(g); i++) {
		const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(s), *hint = NULL;
		char full[160];
		bool ok = false;

		if (!name)
			continue;
		for (int k = 0; known[k] && !ok; k++) {
			ok = strcmp(known[k], name) == 0;
			if (!hint && distance(known[k], name) <= 2)
				hint = known[k];
		}
		if (ok)
			continue;
		snprintf(full, sizeof(full), "%s%s%s", path, path[0] ? "." : "", name);
		if (hint)
			cfg_error(c, s, full, "unknown setting \"%s\" (did you mean \"%s\"?)", name, hint);
		else
			cfg_error(c, s, full, "unknown setting \"%s\"", name);
	}
}

/* The member and its path; NULL when absent. */
static const config_setting_t *member(const config_setting_t *g, const char *path, const char *name,
                                      char *full, size_t cap)
{
	snprintf(full, cap, "%s%s%s", path, path[0] ? "." : "", name);
	return config_setting_get_member(g, name);
}

int cfg_get_int(struct cfg_ctx *c, const config_setting_t *g, const char *path, const char *name,
                long long *out, long long min, long long max)
{
	char full[160];
	const config_setting_t *s = member(g, path, name, full, sizeof(full));
	long long v;

	if (!s)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_INT && config_setting_type(s) != CONFIG_TYPE_INT64) {
		cfg_error(c, s, full, "must be an integer");
		return -1;
	}
	v = config_setting_get_int64(s);
	if (v < min || v > max) {
		cfg_error(c, s, full, "must be %lld..%lld", min, max);
		return -1;
	}
	*out = v;
	return 1;
}

int cfg_get_float(struct cfg_ctx *c, const config_setting_t *g, const char *path, const char *name,
                  double *out, double min, double max)
{
	char full[160];
	const config_setting_t *s = member(g, path, name, full, sizeof(full));
	double v;

	if (!s)
		return 0;
	if (config_setting_type(s) == CONFIG_TYPE_FLOAT)
		v = config_setting_get_float(s);
	else if (config_setting_type(s) == CONFIG_TYPE_INT || config_setting_type(s) == CONFIG_TYPE_INT64)
		v = (double)config_setting_get_int64(s);
	else {
		cfg_error(c, s, full, "must be a number");
		return -1;
	}
	if (!(v >= min && v <= max)) {
		cfg_error(c, s, full, "must be %g..%g", min, max);
		return -1;
	}
	*out = v;
	return 1;
}

int cfg_get_bool(struct cfg_ctx *c, const config_setting_t *g, const char *path, const char *name, bool *out)
{
	char full[160];
	const config_setting_t *s = member(g, path, name, full, sizeof(full));

	if (!s)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
		cfg_error(c, s, full, "must be true or false");
		return -1;
	}
	*out = config_setting_get_bool(s);
	return 1;
}

int cfg_get_string(struct cfg_ctx *c, const config_setting_t *g, const char *path, const char *name,
                   char *out, size_t cap)
{
	char full[160];
	const config_setting_t *s = member(g, path, name, full, sizeof(full));
	const char *v;

	if (!s)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		cfg_error(c, s, full, "must be a string in double quotes");
		return -1;
	}
	v = config_setting_get_string(s);
	if (strlen(v) >= cap) {
		cfg_error(c, s, full, "is too long (at most %zu characters)", cap - 1);
		return -1;
	}
	memcpy(out, v, strlen(v) + 1);
	return 1;
}

int cfg_get_enum(struct cfg_ctx *c, const config_setting_t *g, const char *path, const char *name,
                 const char *const choices[], int *out)
{
	char full[160], v[64], list[256] = "";
	int rc = cfg_get_string(c, g, path, name, v, sizeof(v));

	if (rc <= 0)
		return rc;
	for (int i = 0; choices[i]; i++) {
		if (strcmp(v, choices[i]) == 0) {
			*out = i;
			return 1;
		}
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "", choices[i]);
	}
	cfg_error(c, member(g, path, name, full, sizeof(full)), full, "\"%s\" is not one of %s", v, list);
	return -1;
}

int cfg_get_duration(struct cfg_ctx *c, const config_setting_t *g, const char *path, const char *name,
                     uint64_t *ms, uint64_t min_ms, uint64_t max_ms)
{
	char full[160];
	const config_setting_t *s = member(g, path, name, full, sizeof(full));
	uint64_t v;

	if (!s)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		cfg_error(c, s, full, "must be a duration string with a unit, such as \"500ms\", \"2s\", \"30m\", \"3h\"");
		return -1;
	}
	if (cfg_parse_duration(config_setting_get_string(s), &v) < 0) {
		cfg_error(c, s, full, "\"%s\" is not a duration such as \"500ms\", \"2s\", \"30m\", \"3h\"",
		          config_setting_get_string(s));
		return -1;
	}
	if (v < min_ms || v > max_ms) {
		cfg_error(c, s, full, "must be between %llums and %llums", (unsigned long long)min_ms,
		          (unsigned long long)max_ms);
		return -1;
	}
	*ms = v;
	return 1;
}

int cfg_get_name(struct cfg_ctx *c, const config_setting_t *g, const char *path, char out[64], bool required)
{
	char full[160], v[256];
	int rc = cfg_get_string(c, g, path, "name", v, sizeof(v));

	if (rc == 0 && required)
		cfg_error(c, g, path, "missing \"name\"");
	if (rc <= 0)
		return rc;
	member(g, path, "name", full, sizeof(full));
	if (v[0] == '\0' || strlen(v) > 63 || strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	                                              "0123456789._-") != strlen(v)) {
		cfg_error(c, config_setting_get_member(g, "name"), full,
		          "\"%s\": names are 1..63 characters from A-Z a-z 0-9 . _ -", v);
		return -1;
	}
	memcpy(out, v, strlen(v) + 1);
	return 1;
}

int cfg_parse_duration(const char *s, uint64_t *ms)
{
	static const struct { const char *unit; uint64_t ms; } units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 },
	};
	uint64_t v = 0;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	while (isdigit((unsigned char)*p)) {
		if (v > UINT64_MAX / 10 / 86400000)
			return -EINVAL;     /* would overflow once scaled */
		v = v * 10 + (uint64_t)(*p++ - '0');
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(p, units[i].unit) == 0) {
			*ms = v * units[i].ms;
			return 0;
		}
	return -EINVAL;
}

int cfg_parse_addr(const char *s, struct cfg_addr *a)
{
	char host[128];
	const char *colon, *port;
	char *end;
	long p;

	memset(a, 0, sizeof(*a));
	if (strlen(s) >= sizeof(a->text))
		return -EINVAL;
	snprintf(a->text, sizeof(a->text), "%s", s);
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':' || (size_t)(close - s - 1) >= sizeof(host))
			return -EINVAL;
		memcpy(host, s + 1, (size_t)(close - s - 1));
		host[close - s - 1] = '\0';
		port = close + 2;
	} else {
		colon = strrchr(s, ':');
		if (!colon || (size_t)(colon - s) >= sizeof(host) || memchr(s, ':', (size_t)(colon - s)))
			return -EINVAL;
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = '\0';
		port = colon + 1;
	}
	if (!isdigit((unsigned char)port[0]))
		return -EINVAL;
	errno = 0;
	p = strtol(port, &end, 10);
	if (errno || *end || p < 1 || p > 65535)
		return -EINVAL;
	if (s[0] == '[') {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return -EINVAL;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)p);
		a->len = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;

		if (host[0] == '\0' || strcmp(host, "*") == 0)
			sin->sin_addr.s_addr = htonl(INADDR_ANY);
		else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return -EINVAL;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)p);
		a->len = sizeof(*sin);
	}
	return 0;
}

static void store_uint(void *at, size_t size, uint64_t v)
{
	if (size == sizeof(uint64_t))
		*(uint64_t *)at = v;
	else
		*(uint32_t *)at = (uint32_t)v;
}

/* One typed field; returns what the reader returned (1 = read and valid). */
static int read_field(struct cfg_ctx *c, const config_setting_t *g, const char *path, const struct cfg_field *f,
                      void *base)
{
	char *at = (char *)base + f->offset;
	long long v;
	uint64_t ms;
	int rc = 0, e;

	switch (f->type) {
	case CT_INT:
		rc = cfg_get_int(c, g, path, f->name, &v, f->min, f->max);
		if (rc > 0)
			store_uint(at, f->size, (uint64_t)v);
		break;
	case CT_DURATION:
		rc = cfg_get_duration(c, g, path, f->name, &ms, (uint64_t)f->min, (uint64_t)f->max);
		if (rc > 0)
			store_uint(at, f->size, ms);
		break;
	case CT_BOOL:
		rc = cfg_get_bool(c, g, path, f->name, (bool *)at);
		break;
	case CT_STRING:
		rc = cfg_get_string(c, g, path, f->name, at, f->size);
		break;
	case CT_ENUM:
		rc = cfg_get_enum(c, g, path, f->name, f->choices, &e);
		if (rc > 0)
			*(int *)at = f->values ? f->values[e] : e;
		break;
	case CT_NAME:
		return cfg_get_name(c, g, path, at, f->flags & CF_REQUIRED);
	case CT_CUSTOM:
		f->read(c, g, path, f, base);
		return 1;
	}
	if (rc == 0 && (f->flags & CF_REQUIRED))
		cfg_error(c, g, path, "missing \"%s\"", f->name);
	return rc;
}

bool cfg_read_group(struct cfg_ctx *c, const config_setting_t *g, const char *path, const struct cfg_group *grp,
                    void *base)
{
	const char *known[48];

	if (!cfg_check_group(c, g, path))
		return false;
	for (size_t i = 0; i < grp->nfields && i < sizeof(known) / sizeof(known[0]) - 1; i++)
		known[i] = grp->fields[i].name;
	known[grp->nfields < sizeof(known) / sizeof(known[0]) - 1 ? grp->nfields : sizeof(known) / sizeof(known[0]) - 1] =
		NULL;
	cfg_check_known(c, g, path, known);
	for (size_t i = 0; i < grp->nfields; i++) {
		const struct cfg_field *f = &grp->fields[i];

		if (read_field(c, g, path, f, base) > 0 && f->type != CT_CUSTOM && f->read)
			f->read(c, g, path, f, base);       /* an extra check of the value read */
	}
	return true;
}
