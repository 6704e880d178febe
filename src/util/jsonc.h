/* json-c, with what older versions lack filled in (RHEL/CentOS 7 ships
 * json-c 0.11): include this instead of <json-c/json.h>. */
#ifndef DMR_UTIL_JSONC_H
#define DMR_UTIL_JSONC_H

#include "config.h"

#include <json-c/json.h>
#include <stddef.h>

#if defined(HAVE_DECL_JSON_TOKENER_GET_PARSE_END) && !HAVE_DECL_JSON_TOKENER_GET_PARSE_END
/* Before 0.15 the offset was a public field. */
static inline size_t json_tokener_get_parse_end(struct json_tokener *tok)
{
	return (size_t)tok->char_offset;
}
#endif

#ifndef JSON_C_TO_STRING_NOSLASHESCAPE
/* Before 0.13 every '/' is written as "\/": still the same JSON. */
#define JSON_C_TO_STRING_NOSLASHESCAPE 0
#endif

#endif
