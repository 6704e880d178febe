/* Growable arrays, grown by doubling. */
#ifndef DMR_UTIL_GROW_H
#define DMR_UTIL_GROW_H

#include <stdint.h>
#include <stdlib.h>

/* Returns arr with room for element n (n + 1 elements of elem bytes),
 * doubling *cap from 64 as needed; NULL when out of memory, arr then
 * untouched and still the caller's. */
static inline void *dmr_grow(void *arr, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return arr;
	size_t c = *cap ? *cap * 2 : 64;
	if (c <= n)
		c = n + 1;
	if (c > SIZE_MAX / elem)
		return NULL;
	void *p = realloc(arr, c * elem);
	if (p)
		*cap = c;
	return p;
}

#endif
