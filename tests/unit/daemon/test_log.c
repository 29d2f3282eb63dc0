/*
 * The connection line: written piece by piece (runtime/log.c), it must say
 * exactly what the printf format it replaced says, in text and in JSON,
 * for every value a line can hold - including the halves that printf
 * rounds to even, a connection with no server, and counters at their limit.
 */
#include "util.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* A log writing to a temporary file, and all it wrote once closed. */
struct tmplog {
	struct t_log lg;
	char path[32];
	int fd;
};

static void tl_open(struct tmplog *t, enum log_format format)
{
	struct log_target tg = { .where = t->path, .format = format };
	char *err = NULL;

	snprintf(t->path, sizeof(t->path), "/tmp/tether-test-log-XXXXXX");
	t->fd = mkstemp(t->path);
	assert_true(t->fd >= 0);
	log_init(&t->lg, false);
	if (log_open_target(&t->lg, &tg, NULL, &err) < 0)
		fail_msg("log_open_target: %s", err);
}

static size_t tl_read(struct tmplog *t, char *buf, size_t size)
{
	size_t got = 0;
	ssize_t n;

	log_close(&t->lg);
	while ((n = read(t->fd, buf + got, size - 1 - got)) > 0)
		got += (size_t)n;
	close(t->fd);
	unlink(t->path);
	buf[got] = '\0';
	assert_true(got > 0 && buf[got - 1] == '\n');
	return got;
}

/* The line log_conn writes for c, without its time stamp. */
static void line_of(enum log_format format, const struct log_conn *c, char *out, size_t size)
{
	struct tmplog t;
	char buf[4096], *p;
	size_t n;

	tl_open(&t, format);
	log_conn(&t.lg, c);
	n = tl_read(&t, buf, sizeof(buf));
	/* text: "2026-12-07T18:40:48.123Z line\n"; JSON: {"time":"...Z",rest} */
	p = format == LOG_TEXT ? strchr(buf, ' ') + 1 : strstr(buf, "Z\",") + 3;
	buf[n - 1] = '\0';
	if (format == LOG_JSON) {
		assert_int_equal(buf[n - 2], '}');
		buf[n - 2] = '\0';
	}
	snprintf(out, size, "%s", p);
}

static void expect_text(const struct log_conn *c, char *want, size_t size)
{
	snprintf(want, size, "%s %s %s/%s connect=%.1fms duration=%.0fms in=%llu out=%llu end=%s", c->client,
	         c->frontend, c->backend, c->server ? c->server : "-", c->server ? c->connect_ms : -1.0,
	         c->duration_ms, c->bytes_in, c->bytes_out, c->end);
}

static void expect_json(const struct log_conn *c, char *want, size_t size)
{
	int n = snprintf(want, size, "\"client\":\"%s\",\"frontend\":\"%s\",\"backend\":\"%s\",", c->client,
	                 c->frontend, c->backend);

	if (c->server)
		n += snprintf(want + n, size - (size_t)n, "\"server\":\"%s\",\"connect_ms\":%.1f,", c->server,
		              c->connect_ms);
	else
		n += snprintf(want + n, size - (size_t)n, "\"server\":null,\"connect_ms\":null,");
	snprintf(want + n, size - (size_t)n, "\"duration_ms\":%.0f,\"bytes_in\":%llu,\"bytes_out\":%llu,\"end\":\"%s\"",
	         c->duration_ms, c->bytes_in, c->bytes_out, c->end);
}

static void test_conn_line_as_printf(void **state)
{
	static const double values[] = { 0, 0.04, 0.05, 0.15, 0.25, 0.35, 0.45, 0.5, 0.94, 0.95, 0.96, 1.5, 2.5,
	                                 3.5, 9.95, 99.95, 123.456, 1e3 + 0.5, 86400000.25, 1e12 + 0.5, 1e16,
	                                 -0.04, -1.25, 1e9 - 0.05 };
	static const unsigned long long counts[] = { 0, 1, 9, 10, 12345678901ULL, 18446744073709551615ULL };
	char got[2048], want[2048];
	size_t nv = sizeof(values) / sizeof(values[0]), nc = sizeof(counts) / sizeof(counts[0]);

	(void)state;
	for (size_t i = 0; i < nv; i++)
		for (int with_server = 0; with_server < 2; with_server++) {
			struct log_conn c = {
				.client = "192.0.2.7:51234", .frontend = "web", .backend = "app",
				.server = with_server ? "pod-1" : NULL, .connect_ms = values[i],
				.duration_ms = values[nv - 1 - i], .bytes_in = counts[i % nc],
				.bytes_out = counts[(i + 3) % nc], .end = "server-closed",
			};

			line_of(LOG_TEXT, &c, got, sizeof(got));
			expect_text(&c, want, sizeof(want));
			assert_string_equal(got, want);
			line_of(LOG_JSON, &c, got, sizeof(got));
			expect_json(&c, want, sizeof(want));
			assert_string_equal(got, want);
		}
}

/* Many values at once, in one file: durations and connect times with up to
 * four decimals, and values a hair either side of a rounding half. */
static void test_conn_lines_sweep(void **state)
{
	enum { N = 20000 };
	static double vals[N][2];
	struct log_conn c = { .client = "10.0.0.1:1", .frontend = "f", .backend = "b", .server = "s", .end = "error" };
	char want[512], *buf = malloc((size_t)N * 128), *line;
	unsigned long long x = 12345;
	struct tmplog t;

	(void)state;
	assert_non_null(buf);
	tl_open(&t, LOG_TEXT);
	for (int i = 0; i < N; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		vals[i][0] = (double)(x >> 40 & 0xfffff) / 10000.0;
		vals[i][1] = (double)(x >> 20 & 0xfffff) / (i % 2 ? 20.0 : 1000.0);
		if (i % 5 == 0)
			vals[i][0] = nextafter(vals[i][0] + 0.05, i % 10 ? 0.0 : 1e9);
		c.connect_ms = vals[i][0];
		c.duration_ms = vals[i][1];
		log_conn(&t.lg, &c);
	}
	tl_read(&t, buf, (size_t)N * 128);
	line = buf;
	for (int i = 0; i < N; i++) {
		char *nl = strchr(line, '\n');

		assert_non_null(nl);
		*nl = '\0';
		c.connect_ms = vals[i][0];
		c.duration_ms = vals[i][1];
		expect_text(&c, want, sizeof(want));
		assert_string_equal(strchr(line, ' ') + 1, want);
		line = nl + 1;
	}
	free(buf);
}

/* The time stamp: made once a second, the milliseconds every line. */
static void test_stamp_is_utc_with_milliseconds(void **state)
{
	struct log_conn c = { .client = "[::1]:1", .frontend = "f", .backend = "b", .duration_ms = 1, .end = "error" };
	char buf[4096];
	struct tmplog t;
	int y, mo, d, h, mi, s, ms;

	(void)state;
	tl_open(&t, LOG_TEXT);
	for (int i = 0; i < 3; i++)
		log_conn(&t.lg, &c);
	tl_read(&t, buf, sizeof(buf));
	for (char *line = buf; *line; line = strchr(line, '\n') + 1) {
		char z;

		assert_int_equal(sscanf(line, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c ", &y, &mo, &d, &h, &mi, &s, &ms, &z), 8);
		assert_int_equal(z, 'Z');
		assert_true(y >= 2024 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h < 24 && mi < 60 && s < 61);
		assert_memory_equal(line + 24, " [::1]:1 f b/- connect=-1.0ms duration=1ms in=0 out=0 end=error\n", 64);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conn_line_as_printf),
		cmocka_unit_test(test_conn_lines_sweep),
		cmocka_unit_test(test_stamp_is_utc_with_milliseconds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
