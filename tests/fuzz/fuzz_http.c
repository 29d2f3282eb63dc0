/*
 * libFuzzer target for src/http.c: the request peek with a fuzzed cookie
 * name, and the response injector fed at fuzzed split points.  Checks:
 * return values within bounds, a found cookie lies inside the input, the
 * header is inserted at most once, and removing it gives back the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tether/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char hdr[] = "Set-Cookie: F=1\r\n";
	struct http_inject ij;
	const char *val;
	size_t vl, name_len, o = 0, pos = 0, ins_at = (size_t)-1;
	char *in, *out;
	int r;

	if (size < 2)
		return 0;
	name_len = data[0] % 16 + 1;
	if (name_len >= size)
		return 0;
	/* exact-size heap copies so ASan catches any over-read */
	in = malloc(size - 1 - name_len);
	memcpy(in, data + 1 + name_len, size - 1 - name_len);
	r = http_peek_cookie(in, size - 1 - name_len, (const char *)data + 1, name_len, &val, &vl);
	if (r == 0 || r < HTTP_PARTIAL || r > (int)(size - 1 - name_len))
		abort();
	if (val && (val < in || val + vl > in + (size - 1 - name_len)))
		abort();

	out = malloc(size + sizeof(hdr));
	http_inject_init(&ij);
	while (pos < size) {
		size_t chunk = 1 + data[pos] % 7, k;
		bool ins = false;

		if (chunk > size - pos)
			chunk = size - pos;
		char *piece = malloc(chunk);

		memcpy(piece, data + pos, chunk);
		k = ij.done ? chunk : http_inject_scan(&ij, piece, chunk, &ins);
		if (k > chunk)
			abort();
		memcpy(out + o, piece, k);
		o += k;
		if (ins) {
			if (ins_at != (size_t)-1)
				abort();        /* inserted twice */
			ins_at = o;
			memcpy(out + o, hdr, sizeof(hdr) - 1);
			o += sizeof(hdr) - 1;
		}
		if (k < chunk) {
			memcpy(out + o, piece + k, chunk - k);
			o += chunk - k;
		}
		free(piece);
		pos += chunk;
	}
	if (ins_at != (size_t)-1) {
		memmove(out + ins_at, out + ins_at + sizeof(hdr) - 1, o - ins_at - (sizeof(hdr) - 1));
		o -= sizeof(hdr) - 1;
	}
	if (o != size || memcmp(out, data, size) != 0)
		abort();
	free(out);
	free(in);
	return 0;
}
