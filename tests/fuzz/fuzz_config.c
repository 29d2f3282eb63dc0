/*
 * libFuzzer target for the configuration loader (src/config), from a
 * buffer (cfg_load_string, the path `tether -c` takes after reading the
 * file).  Checks: it loads or it fails with errors; never both, never
 * neither; every error line names the file (FILE:LINE: or FILE:); a loaded
 * configuration is freed whole (ASan: no leak, no over-read).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tether/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tether_config *c = NULL;
	char *text = malloc(size + 1), *err = NULL;
	int rc;

	memcpy(text, data, size);
	text[size] = '\0';
	/* @include reads other files (an operator's choice, not a parser's
	 * input): "/dev/zero" would only measure the disk */
	if (strstr(text, "@include")) {
		free(text);
		return 0;
	}
	rc = cfg_load_string(text, "f.conf", &c, &err);
	if (rc == 0) {
		if (!c || err)
			abort();
		if (cfg_workers(c) < 1 || c->nfrontends < 1 || c->nbackends < 1)
			abort();
		cfg_free(c);
	} else {
		if (!err || rc > 0)
			abort();
		for (const char *line = err; line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
			if (strncmp(line, "f.conf:", 7) != 0)
				abort();
		free(err);
	}
	free(text);
	return 0;
}
