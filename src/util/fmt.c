#include "config.h"
#include "util/fmt.h"

#include <stdio.h>
#include <string.h>

size_t fmt_u64(char *p, uint64_t v)
{
	char tmp[20];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		p[i] = tmp[n - 1 - i];
	return n;
}

size_t fmt_str(char *p, const char *s)
{
	size_t n = strlen(s);
	memcpy(p, s, n);
	return n;
}

const char *fmt_disk_unit(uint64_t n, char *buf)
{
	static const char *const ext[] = { "", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	unsigned i = 0;
	while (n > 1024ull * 1024ull) {
		n /= 1024ull;
		i++;
	}
	if (n > 8ull * 1024ull) {
		/* round half away from zero, as the reference does with round() */
		n = (n + 512ull) / 1024ull;
		i++;
	}
	snprintf(buf, 32, "%llu%s", (unsigned long long)n, ext[i]);
	return buf;
}

void fmt_key_range(char *buf, size_t len, uint64_t lo, uint64_t hi)
{
	if (hi == UINT64_MAX)
		snprintf(buf, len, "%llu..end", (unsigned long long)lo);
	else if (hi == lo + 1)
		snprintf(buf, len, "%llu", (unsigned long long)lo);
	else
		snprintf(buf, len, "%llu..%llu", (unsigned long long)lo, (unsigned long long)(hi - 1));
}

const char *fmt_human(uint64_t bytes, char *buf)
{
	fmt_disk_unit(bytes, buf);
	if (bytes < 1024)
		snprintf(buf, 32, "%llu bytes", (unsigned long long)bytes);
	return buf;
}

int fmt_all_digits(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}
