#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int dmr_err_set(struct dmr_err *err, int code, const char *fmt, ...)
{
	if (!err)
		return code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	err->code = code;
	return code;
}

int dmr_err_prefix(struct dmr_err *err, const char *fmt, ...)
{
	if (!err)
		return DMR_EIO;
	char prefix[128];
	char old[sizeof(err->msg) - sizeof(prefix) - 2];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	snprintf(old, sizeof(old), "%s", err->msg);
	snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
	return err->code;
}

void dmr_err_clear(struct dmr_err *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = '\0';
	}
}
