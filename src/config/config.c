/*
 * tether - configuration loading and checking (libconfig).
 *
 * One pass over the whole file collects every error, each formatted as
 * `FILE:LINE: SETTING: what is wrong`, SETTING being the path of the setting
 * (`backends.[0].retries`).  Unknown settings are errors, with a hint when a
 * known name is one or two edits away.  Cross-checks (references, unique
 * names, duplicate binds) run after the sections parsed.
 *
 * The backend parser is shared with tether-sim (cfg_parse_backends); the
 * setting readers it uses live in config_read.c.
 */
#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_read.h"
#include "tether/config.h"
#include "tether/err.h"

#define GL(field) .offset = offsetof(struct cfg_global, field), .size = sizeof(((struct cfg_global *)0)->field)
#define FE(field) .offset = offsetof(struct cfg_frontend, field), .size = sizeof(((struct cfg_frontend *)0)->field)

/* workers: a number, or "auto" (stored as 0: one per online CPU). */
static void read_workers(struct cfg_ctx *c, const config_setting_t *g, const char *path, const struct cfg_field *f,
                         void *base)
{
	const config_setting_t *s = config_setting_get_member(g, f->name);
	long long v;

	if (s && config_setting_type(s) == CONFIG_TYPE_STRING) {
		if (strcmp(config_setting_get_string(s), "auto") == 0)
			((struct cfg_global *)base)->workers = 0;
		else
			cfg_error(c, s, "global.workers", "must be a number %lld..%lld or \"auto\"", f->min, f->max);
		return;
	}
	if (cfg_get_int(c, g, path, f->name, &v, f->min, f->max) > 0)
		((struct cfg_global *)base)->workers = (unsigned)v;
}

unsigned cfg_workers(const struct tether_config *cfg)
{
	long n;

	if (cfg->global.workers)
		return cfg->global.workers;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > CFG_WORKERS_MAX ? CFG_WORKERS_MAX : (unsigned)n;
}

static void read_metrics(struct cfg_ctx *c, const config_setting_t *g, const char *path, const struct cfg_field *f,
                         void *base)
{
	struct cfg_global *out = base;
	char buf[256];

	if (cfg_get_string(c, g, path, f->name, buf, sizeof(buf)) > 0 && cfg_parse_addr(buf, &out->metrics) < 0) {
		cfg_error(c, config_setting_get_member(g, f->name), "global.metrics",
		          "\"%s\" is not an address like \"127.0.0.1:9100\"", buf);
		out->metrics.len = 0;
	}
}

static void read_binds(struct cfg_ctx *c, const config_setting_t *f, const char *path, const struct cfg_field *fd,
                       void *base)
{
	struct cfg_frontend *out = base;
	const config_setting_t *binds = config_setting_get_member(f, fd->name);
	char sub[96], buf[160];

	snprintf(sub, sizeof(sub), "%s.bind", path);
	if (!binds) {
		cfg_error(c, f, path, "missing \"bind\"");
		return;
	}
	if (config_setting_type(binds) == CONFIG_TYPE_STRING) {
		/* a single address is accepted in place of a list of one */
		if (cfg_parse_addr(config_setting_get_string(binds), &out->binds[0]) < 0)
			cfg_error(c, binds, sub, "\"%s\" is not an address like \"127.0.0.1:8080\"",
			          config_setting_get_string(binds));
		out->nbinds = 1;
		return;
	}
	if (config_setting_type(binds) != CONFIG_TYPE_ARRAY && config_setting_type(binds) != CONFIG_TYPE_LIST) {
		cfg_error(c, binds, sub, "must be a list of addresses such as [ \"127.0.0.1:8080\" ]");
		return;
	}
	if (config_setting_length(binds) == 0)
		cfg_error(c, binds, sub, "must name at least one address");
	for (int i = 0; i < config_setting_length(binds); i++) {
		const config_setting_t *b = config_setting_get_elem(binds, (unsigned)i);
		char bpath[112];

		snprintf(bpath, sizeof(bpath), "%s.[%d]", sub, i);
		if (i >= CFG_MAX_BINDS) {
			cfg_error(c, b, bpath, "at most %d addresses per frontend", CFG_MAX_BINDS);
			break;
		}
		if (config_setting_type(b) != CONFIG_TYPE_STRING) {
			cfg_error(c, b, bpath, "must be a string such as \"127.0.0.1:8080\"");
			continue;
		}
		snprintf(buf, sizeof(buf), "%s", config_setting_get_string(b));
		if (cfg_parse_addr(buf, &out->binds[out->nbinds]) < 0) {
			cfg_error(c, b, bpath, "\"%s\" is not an address like \"127.0.0.1:8080\" or \"[::1]:8080\"", buf);
			continue;
		}
		out->nbinds++;
	}
}

static const char *const log_formats[] = { "text", "json", NULL };
static const char *const facilities[] = { "user", "daemon", "local0", "local1", "local2", "local3", "local4",
                                          "local5", "local6", "local7", NULL };
static const int facility_values[] = { 1, 3, 16, 17, 18, 19, 20, 21, 22, 23 };
static const struct cfg_field log_fields[] = {
	{ .name = "target", .type = CT_STRING, GL(log), .flags = CF_REQUIRED },
	{ .name = "format", .type = CT_ENUM, GL(log_format), .choices = log_formats },
	{ .name = "syslog_socket", .type = CT_STRING, GL(log_syslog) },
	{ .name = "facility", .type = CT_ENUM, GL(log_facility), .choices = facilities, .values = facility_values },
};
static const struct cfg_group log_group = CFG_GROUP("global.log", log_fields);

/* log = "stderr" | "off" | "syslog" | FILE, or a group { target = ...; format = ...; } */
static void read_log(struct cfg_ctx *c, const config_setting_t *g, const char *path, const struct cfg_field *f,
                     void *base)
{
	const config_setting_t *s = config_setting_get_member(g, f->name);
	struct cfg_global *out = base;

	if (s && config_setting_type(s) == CONFIG_TYPE_GROUP)
		cfg_read_group(c, s, "global.log", &log_group, out);
	else
		cfg_get_string(c, g, path, f->name, out->log, sizeof(out->log));
	if (!out->log[0])
		cfg_error(c, s, "global.log", "must name a target: \"stderr\", \"off\", \"syslog\" or a file");
}

/* resolvers = [ "10.96.0.10:53", "[fd00::a]:53" ]: the name servers of
 * resolve entries, as c-ares's "ip:port,..." list. */
static void read_resolvers(struct cfg_ctx *c, const config_setting_t *g, const char *path, const struct cfg_field *f,
                           void *base)
{
	const config_setting_t *l = config_setting_get_member(g, f->name);
	struct cfg_global *out = base;

	if (!l)
		return;
	if (config_setting_type(l) != CONFIG_TYPE_ARRAY && config_setting_type(l) != CONFIG_TYPE_LIST) {
		cfg_error(c, l, "global.resolvers", "must be a list of addresses such as [ \"10.96.0.10:53\" ]");
		return;
	}
	for (int i = 0; i < config_setting_length(l); i++) {
		const config_setting_t *e = config_setting_get_elem(l, (unsigned)i);
		const char *v = config_setting_type(e) == CONFIG_TYPE_STRING ? config_setting_get_string(e) : NULL;
		size_t used = strlen(out->resolvers);
		struct cfg_addr a;
		char p[48];

		snprintf(p, sizeof(p), "global.resolvers.[%d]", i);
		if (!v || cfg_parse_addr(v, &a) < 0 || a.ss.ss_family == 0)
			cfg_error(c, e, p, "must be a name server address such as \"10.96.0.10:53\" or \"[fd00::a]:53\"");
		else if (used + strlen(v) + 2 > sizeof(out->resolvers))
			cfg_error(c, e, p, "too many name servers");
		else
			snprintf(out->resolvers + used, sizeof(out->resolvers) - used, "%s%s", used ? "," : "", v);
	}
	if (config_setting_length(l) == 0)
		cfg_error(c, l, "global.resolvers", "must name at least one address (leave it out for /etc/resolv.conf)");
}

static void read_admin_mode(struct cfg_ctx *c, const config_setting_t *g, const char *path,
                            const struct cfg_field *f, void *base)
{
	const config_setting_t *s = config_setting_get_member(g, f->name);
	struct cfg_admin *a = base;
	char buf[16], *end;
	unsigned long m;

	if (cfg_get_string(c, g, path, f->name, buf, sizeof(buf)) <= 0)
		return;
	m = strtoul(buf, &end, 8);
	if (!buf[0] || *end || m > 0777 || buf[0] == '-' || buf[0] == '+' || buf[0] == ' ')
		cfg_error(c, s, "global.admin.mode", "\"%s\" is not an octal mode like \"0660\" (at most \"0777\")", buf);
	else
		a->mode = (unsigned)m;
}

static const char *const admin_levels[] = { "user", "operator", "admin", NULL };
#define AD(field) .offset = offsetof(struct cfg_admin, field), .size = sizeof(((struct cfg_admin *)0)->field)
static const struct cfg_field admin_fields[] = {
	{ .name = "path", .type = CT_STRING, AD(path), .flags = CF_REQUIRED },
	{ .name = "mode", .type = CT_CUSTOM, .read = read_admin_mode },
	{ .name = "group", .type = CT_STRING, AD(group) },
	{ .name = "level", .type = CT_ENUM, AD(level), .choices = admin_levels },
};
static const struct cfg_group admin_group = CFG_GROUP("global.admin", admin_fields);

/* admin = "/path", or a group { path = ...; mode = ...; group = ...; level = ...; } */
static void read_admin(struct cfg_ctx *c, const config_setting_t *g, const char *path, const struct cfg_field *f,
                       void *base)
{
	const config_setting_t *s = config_setting_get_member(g, f->name);
	struct cfg_admin *a = &((struct cfg_global *)base)->admin;

	if (!s)
		return;
	if (config_setting_type(s) == CONFIG_TYPE_GROUP)
		cfg_read_group(c, s, "global.admin", &admin_group, a);
	else
		cfg_get_string(c, g, path, f->name, a->path, sizeof(a->path));
	if (!a->path[0] && config_setting_type(s) == CONFIG_TYPE_GROUP && config_setting_get_member(s, "path"))
		cfg_error(c, s, "global.admin.path", "must name a unix socket path such as \"/run/tether/admin.sock\"");
}

static const char *const accept_modes[] = { "reuseport", "shared", NULL };
static const int accept_values[] = { CFG_ACCEPT_REUSEPORT, CFG_ACCEPT_SHARED };

static const struct cfg_field global_fields[] = {
	{ .name = "workers", .type = CT_CUSTOM, GL(workers), .min = 1, .max = CFG_WORKERS_MAX, .read = read_workers,
	  .flags = CF_NUMERIC },
	{ .name = "cpu_affinity", .type = CT_BOOL, GL(cpu_affinity) },
	{ .name = "accept", .type = CT_ENUM, GL(accept), .choices = accept_modes, .values = accept_values },
	{ .name = "maxconn", .type = CT_INT, GL(maxconn), .min = 1, .max = 10000000 },
	{ .name = "log", .type = CT_CUSTOM, .read = read_log },
	{ .name = "admin", .type = CT_CUSTOM, .read = read_admin },
	{ .name = "metrics", .type = CT_CUSTOM, .read = read_metrics },
	{ .name = "drain_timeout", .type = CT_DURATION, GL(drain_timeout_ms), .min = 0, .max = 3600000 },
	{ .name = "resolvers", .type = CT_CUSTOM, .read = read_resolvers },
};
static const struct cfg_field frontend_fields[] = {
	{ .name = "name", .type = CT_NAME, FE(name), .flags = CF_REQUIRED },
	{ .name = "bind", .type = CT_CUSTOM, .read = read_binds },
	{ .name = "backend", .type = CT_STRING, FE(backend_name), .flags = CF_REQUIRED },
	{ .name = "maxconn", .type = CT_INT, FE(maxconn), .min = 0, .max = 10000000 },
	{ .name = "accept_proxy", .type = CT_BOOL, FE(accept_proxy) },
	{ .name = "proxy_timeout", .type = CT_DURATION, FE(proxy_timeout_ms), .min = 100, .max = 600000 },
};
static const struct cfg_field top_fields[] = {
	{ .name = "global", .type = CT_CUSTOM }, { .name = "frontends", .type = CT_CUSTOM },
	{ .name = "backends", .type = CT_CUSTOM },
};
static const struct cfg_group global_group = CFG_GROUP("global", global_fields);
static const struct cfg_group frontend_group = CFG_GROUP("frontends.[]", frontend_fields);

const struct cfg_group *cfg_schema(void)
{
	static struct cfg_group all[16];

	if (!all[0].path) {
		const struct cfg_group *be = cfg_backend_schema();
		size_t n = 0;

		all[n++] = global_group;
		all[n++] = log_group;
		all[n++] = admin_group;
		all[n++] = frontend_group;
		for (; be->path && n < sizeof(all) / sizeof(all[0]) - 1; be++)
			all[n++] = *be;
	}
	return all;
}

static void parse_global(struct cfg_ctx *c, const config_setting_t *g, struct cfg_global *out)
{
	out->workers = 1;
	out->maxconn = 20000;
	strcpy(out->log, "stderr");
	strcpy(out->log_syslog, "/dev/log");
	out->log_facility = 3;
	out->drain_timeout_ms = 30000;
	out->admin.mode = 0600;
	out->admin.level = CFG_LEVEL_ADMIN;
	if (g)
		cfg_read_group(c, g, "global", &global_group, out);
}

static void parse_frontend(struct cfg_ctx *c, const config_setting_t *f, const char *path,
                           struct cfg_frontend *out)
{
	out->line = config_setting_source_line(f);
	out->proxy_timeout_ms = 5000;
	cfg_read_group(c, f, path, &frontend_group, out);
}

static bool same_addr(const struct cfg_addr *a, const struct cfg_addr *b)
{
	return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

/* Whether binding both a and b would collide: the same port of the same
 * family, and the same address or a wildcard on either side. */
static bool addr_overlap(const struct cfg_addr *a, const struct cfg_addr *b)
{
	if (a->ss.ss_family != b->ss.ss_family)
		return false;
	if (a->ss.ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)&a->ss, *y = (const void *)&b->ss;

		return x->sin_port == y->sin_port && (x->sin_addr.s_addr == y->sin_addr.s_addr ||
		                                      x->sin_addr.s_addr == INADDR_ANY || y->sin_addr.s_addr == INADDR_ANY);
	}
	if (a->ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)&a->ss, *y = (const void *)&b->ss;

		return x->sin6_port == y->sin6_port &&
		       (IN6_ARE_ADDR_EQUAL(&x->sin6_addr, &y->sin6_addr) || IN6_IS_ADDR_UNSPECIFIED(&x->sin6_addr) ||
		        IN6_IS_ADDR_UNSPECIFIED(&y->sin6_addr));
	}
	return same_addr(a, b);
}

/* References, unique names, duplicate binds, a metrics address that a
 * frontend binds too. */
static void cross_check(struct cfg_ctx *c, struct tether_config *cfg)
{
	for (int i = 0; i < cfg->nfrontends; i++) {
		struct cfg_frontend *f = &cfg->frontends[i];
		char path[64];

		snprintf(path, sizeof(path), "frontends.[%d]", i);
		f->backend = -1;
		for (int j = 0; j < cfg->nbackends; j++)
			if (strcmp(cfg->backends[j].name, f->backend_name) == 0)
				f->backend = j;
		if (f->backend < 0 && f->backend_name[0])
			cfg_error_line(c, f->line, path, "backend \"%s\" is not defined", f->backend_name);
		for (int j = 0; j < i; j++)
			if (f->name[0] && strcmp(cfg->frontends[j].name, f->name) == 0)
				cfg_error_line(c, f->line, path, "frontend name \"%s\" is used twice", f->name);
		for (int b = 0; b < f->nbinds; b++)
			for (int j = 0; j <= i; j++)
				for (int k = 0; k < (j == i ? b : cfg->frontends[j].nbinds); k++)
					if (same_addr(&f->binds[b], &cfg->frontends[j].binds[k]))
						cfg_error_line(c, f->line, path, "address %s is bound twice", f->binds[b].text);
		for (int b = 0; b < f->nbinds; b++)
			if (cfg->global.metrics.len && addr_overlap(&cfg->global.metrics, &f->binds[b]))
				cfg_error_line(c, f->line, "global.metrics", "%s is also bound by frontend \"%s\" (%s)",
				               cfg->global.metrics.text, f->name, f->binds[b].text);
	}
}

/* Line number of one `FILE:LINE: ...` error line. */
static long line_of(const char *e, size_t file_len)
{
	return strtol(e + file_len + 1, NULL, 10);
}

/* Orders the collected errors by line (stable), so they read in file order
 * whatever order the sections were checked in. */
static void sort_errors(char *errs, const char *file)
{
	size_t n = 1, flen = strlen(file), total = strlen(errs);
	char **line, *copy;

	for (const char *p = errs; *p; p++)
		n += *p == '\n';
	line = malloc(n * sizeof(*line));
	copy = strdup(errs);
	if (!line || !copy)
		goto out;
	n = 0;
	for (char *tok = strtok(copy, "\n"); tok; tok = strtok(NULL, "\n"))
		line[n++] = tok;
	for (size_t i = 1; i < n; i++)          /* insertion sort: few lines, stable */
		for (size_t j = i; j > 0 && line_of(line[j - 1], flen) > line_of(line[j], flen); j--) {
			char *t = line[j];

			line[j] = line[j - 1];
			line[j - 1] = t;
		}
	errs[0] = '\0';
	for (size_t i = 0; i < n; i++)
		snprintf(errs + strlen(errs), total + 1 - strlen(errs), "%s%s", i ? "\n" : "", line[i]);
out:
	free(line);
	free(copy);
}

static int load(config_t *lc, const char *name, struct tether_config **out, char **err)
{
	struct tether_config *cfg = calloc(1, sizeof(*cfg));
	struct cfg_ctx ctx = { .file = name, .errs = err };
	const config_setting_t *root = config_root_setting(lc), *fl, *bl;

	*err = NULL;
	if (!cfg)
		return tether_err(err, -ENOMEM, "out of memory");
	snprintf(cfg->path, sizeof(cfg->path), "%s", name);
	{
		static const struct cfg_group top = CFG_GROUP("", top_fields);
		const char *known[] = { top.fields[0].name, top.fields[1].name, top.fields[2].name, NULL };

		cfg_check_known(&ctx, root, "", known);
	}
	parse_global(&ctx, config_setting_get_member(root, "global"), &cfg->global);

	fl = config_setting_get_member(root, "frontends");
	if (!fl) {
		cfg_error_line(&ctx, 1, "frontends", "missing: at least one frontend is needed");
	} else if (config_setting_type(fl) != CONFIG_TYPE_LIST) {
		cfg_error(&ctx, fl, "frontends", "must be a list: frontends = ( { ... } );");
	} else {
		int n = config_setting_length(fl);

		if (n == 0)
			cfg_error(&ctx, fl, "frontends", "at least one frontend is needed");
		cfg->frontends = calloc((size_t)n + 1, sizeof(*cfg->frontends));
		for (int i = 0; i < n && cfg->frontends; i++) {
			char path[32];

			snprintf(path, sizeof(path), "frontends.[%d]", i);
			parse_frontend(&ctx, config_setting_get_elem(fl, (unsigned)i), path, &cfg->frontends[i]);
		}
		cfg->nfrontends = cfg->frontends ? n : 0;
	}
	bl = config_setting_get_member(root, "backends");
	if (!bl)
		cfg_error_line(&ctx, 1, "backends", "missing: at least one backend is needed");
	else
		cfg_parse_backends(bl, name, &cfg->backends, &cfg->nbackends, err);
	if (!*err)
		cross_check(&ctx, cfg);
	if (*err) {
		sort_errors(*err, name);
		cfg_free(cfg);
		return -EINVAL;
	}
	*out = cfg;
	return 0;
}

/* The whole of f, NUL-terminated, into a malloc'd *text.  0 or -errno. */
static int read_all(FILE *f, char **text, size_t *len)
{
	size_t cap = 4096;
	char *buf = malloc(cap), *n;

	errno = 0;
	*len = 0;
	while (buf) {
		size_t got = fread(buf + *len, 1, cap - *len - 1, f);

		*len += got;
		if (got == 0)
			break;
		if (*len + 1 == cap) {
			if (cap >= (64u << 20)) {       /* a configuration is not this large */
				free(buf);
				return -EFBIG;
			}
			n = realloc(buf, cap * 2);
			if (!n)
				break;
			buf = n;
			cap *= 2;
		}
	}
	if (!buf || ferror(f)) {
		int e = !buf ? ENOMEM : errno ? errno : EIO;

		free(buf);
		return -e;
	}
	buf[*len] = '\0';
	*text = buf;
	return 0;
}

static int syntax_error(config_t *lc, const char *name, char **err)
{
	const char *file = config_error_file(lc) ? config_error_file(lc) : name;
	const char *text = config_error_text(lc) ? config_error_text(lc) : "unreadable";

	return tether_err(err, -EINVAL, "%s:%d: syntax error: %s", file, config_error_line(lc), text);
}

/*
 * libconfig (1.5, Debian 12) reads an integer literal too large for 32 bits
 * and without the L suffix by wrapping it silently (4294967296 becomes 0).
 * Find such literals first and report them; strings and comments are
 * skipped.  0 or -EINVAL with *err.
 */
static int check_int_literals(const char *text, const char *name, char **err)
{
	int line = 1;

	for (const char *p = text; *p; p++) {
		if (*p == '\n') {
			line++;
		} else if (*p == '"') {             /* a string, with \" escapes */
			for (p++; *p && *p != '"'; p++) {
				if (*p == '\\' && p[1])
					p++;
				else if (*p == '\n')
					line++;
			}
			if (!*p)
				return 0;
		} else if (*p == '#' || (*p == '/' && p[1] == '/')) {
			while (p[1] && p[1] != '\n')
				p++;
		} else if (*p == '/' && p[1] == '*') {
			for (p += 2; *p && !(*p == '*' && p[1] == '/'); p++)
				line += *p == '\n';
			if (!*p)
				return 0;
			p++;
		} else if (*p >= '0' && *p <= '9' && (p == text || !(isalnum((unsigned char)p[-1]) || p[-1] == '_' ||
		                                                      p[-1] == '.'))) {
			const char *start = p;
			unsigned long long v = 0;
			bool big = false;

			if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
				continue;           /* hexadecimal: rare here, left to libconfig */
			while (*p >= '0' && *p <= '9') {
				big |= v > (unsigned long long)INT32_MAX / 10 + 1;
				v = v * 10 + (unsigned long long)(*p - '0');
				p++;
			}
			big |= v > (unsigned long long)INT32_MAX + (start > text && start[-1] == '-');
			if (*p == '.' || *p == 'e' || *p == 'E' || *p == 'L')
				big = false;        /* a float, or a 64-bit literal */
			if (big) {
				const char *k = start, *ke;

				while (k > text && (k[-1] == ' ' || k[-1] == '\t' || k[-1] == '=' || k[-1] == ':' ||
				                    k[-1] == '-'))
					k--;
				ke = k;
				while (k > text && (isalnum((unsigned char)k[-1]) || k[-1] == '_'))
					k--;
				return tether_err(err, -EINVAL, "%s:%d: %.*s: %.*s is too large (at most %d)", name, line,
				                  (int)(ke - k), k, (int)(p - start), start, INT32_MAX);
			}
			p--;
		}
	}
	return 0;
}

/* Parses text (the file's contents or a string) as `name`. */
static int parse(const char *text, const char *name, struct tether_config **out, char **err)
{
	config_t lc;
	int rc;

	*err = NULL;
	if (strncmp(text, "\xef\xbb\xbf", 3) == 0)
		return tether_err(err, -EINVAL, "%s:1: the file starts with a UTF-8 byte order mark (BOM); "
		                  "save it without one", name);
	rc = check_int_literals(text, name, err);
	if (rc < 0)
		return rc;
	config_init(&lc);
	if (config_read_string(&lc, text) == CONFIG_TRUE)
		rc = load(&lc, name, out, err);
	else
		rc = syntax_error(&lc, name, err);
	config_destroy(&lc);
	return rc;
}

int cfg_load(const char *path, struct tether_config **out, char **err)
{
	FILE *f = fopen(path, "re");
	char *text = NULL;
	size_t len = 0;
	int rc;

	*err = NULL;
	if (!f)
		return tether_err(err, -errno, "%s: cannot read the file: %s", path, strerror(errno));
	rc = read_all(f, &text, &len);
	fclose(f);
	if (rc < 0)
		return tether_err(err, rc, "%s: cannot read the file: %s", path, strerror(-rc));
	rc = parse(text, path, out, err);
	free(text);
	return rc;
}

int cfg_load_string(const char *text, const char *name, struct tether_config **out, char **err)
{
	return parse(text, name, out, err);
}

void cfg_free(struct tether_config *c)
{
	if (!c)
		return;
	free(c->frontends);
	cfg_free_backends(c->backends, c->nbackends);
	free(c);
}
