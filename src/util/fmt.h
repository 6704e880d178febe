/* Small formatting helpers for hot output paths. */
#ifndef DMR_UTIL_FMT_H
#define DMR_UTIL_FMT_H

#include <stddef.h>
#include <stdint.h>

/* Writes v in decimal at p (no NUL); returns the number of characters. */
size_t fmt_u64(char *p, uint64_t v);

/* Appends the string s at p (no NUL); returns its length. */
size_t fmt_str(char *p, const char *s);

/* Human size as thin_ls prints it: bytes, then KiB.. while above 1 MiB of
 * the unit, rounding to the next unit above 8 of it ("6400KiB", "38MiB").
 * buf must hold 32 bytes. */
const char *fmt_disk_unit(uint64_t bytes, char *buf);

/* fmt_disk_unit for people: below a KiB "62 bytes", so a bare number is
 * never ambiguous. buf must hold 32 bytes. */
const char *fmt_human(uint64_t bytes, char *buf);

/* A half-open key range [lo, hi) as people read it: "7", "4064..4223",
 * "100..end" (hi == UINT64_MAX). */
void fmt_key_range(char *buf, size_t len, uint64_t lo, uint64_t hi);

/* 1 when s is a non-empty string of decimal digits only. */
int fmt_all_digits(const char *s);

#endif
