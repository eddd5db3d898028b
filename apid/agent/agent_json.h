/* Small strict JSON parser (RFC 8259) for request bodies. Depth- and size-bounded so hostile input
 * cannot exhaust the stack; strings are decoded to UTF-8 and keep their length (may contain NUL).
 */
#ifndef SBX_AGENT_JSON_H
#define SBX_AGENT_JSON_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ag_jtype { AG_JNULL, AG_JBOOL, AG_JNUM, AG_JSTR, AG_JARR, AG_JOBJ };

struct ag_json {
    enum ag_jtype t;
    bool b;
    bool is_int; /* AG_JNUM without fraction/exponent that fits int64 */
    int64_t i;
    double d;
    char *s; /* AG_JSTR value, NUL-terminated */
    size_t slen;
    char *key; /* member name when the parent is an object */
    size_t keylen;
    struct ag_json *child, *next; /* children of arrays/objects, in order */
    size_t n;                     /* number of children */
};

#define AG_JSON_MAX_DEPTH 32

struct ag_json *ag_json_parse(const char *s, size_t n, const char **err);
void ag_json_free(struct ag_json *j);
const struct ag_json *ag_json_get(const struct ag_json *obj, const char *key);
/* Convenience: string member without embedded NULs, else NULL. */
const char *ag_json_getstr(const struct ag_json *obj, const char *key);

#endif
