#include "config.h"
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
	char msg[sizeof(err->msg)];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	size_t used = (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1;
	/* "prefix: old message", cut to fit */
	snprintf(msg + used, sizeof(msg) - used, ": ");
	used = strlen(msg);
	size_t room = sizeof(msg) - used - 1;
	size_t old = strnlen(err->msg, sizeof(err->msg));
	if (old > room)
		old = room;
	memcpy(msg + used, err->msg, old);
	msg[used + old] = '\0';
	memcpy(err->msg, msg, sizeof(msg));
	return err->code;
}

void dmr_err_clear(struct dmr_err *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = '\0';
	}
}
