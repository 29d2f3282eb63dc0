/*
 * tether - see include/tether/err.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "tether/err.h"

int tether_err(char **err, int code, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	if (!err || *err)
		return code;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	*err = msg;
	return code;
}
