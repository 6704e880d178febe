/* Error reporting for library code: functions return 0 or a negative
 * DMR_E* code and fill a struct dmr_err with one line of context. Only the
 * CLI prints, and only the CLI picks an exit code. */
#ifndef DMR_UTIL_ERR_H
#define DMR_UTIL_ERR_H

#include <stddef.h>

enum dmr_errcode {
	DMR_OK = 0,
	DMR_EIO = -1,      /* could not read or write the input */
	DMR_ECORRUPT = -2, /* the input is damaged (checksum, bounds, order...) */
	DMR_ENOMEM = -3,
	DMR_EUSAGE = -4,   /* the caller asked for something impossible */
	DMR_ENOENT = -5,   /* the thing asked for does not exist */
	DMR_EUNSUPP = -6,  /* valid input this version cannot handle */
};

struct dmr_err {
	int code;
	char msg[512];
};

/* Sets err (if not NULL) and returns code, so callers can
 * `return dmr_err_set(err, DMR_EIO, "...")`. */
int dmr_err_set(struct dmr_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefixes the existing message with more context ("reading device 7: ...").
 * Returns err->code. */
int dmr_err_prefix(struct dmr_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void dmr_err_clear(struct dmr_err *err);

#endif
