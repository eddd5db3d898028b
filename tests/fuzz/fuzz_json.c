/* fuzz_json: the sbx-agent's own JSON parser (apid/agent/agent_json.c), which reads every request
 * body the agent takes (commands, sessions, file operations; the agent links no jansson). Each
 * input goes to ag_json_parse(); a parsed document is written back out (strings through
 * ag_json_str(), the agent's JSON string writer) and parsed again.
 * Checks: the depth bound holds; strings are valid UTF-8 (ag_json_str would otherwise replace
 * bytes) whose lengths count any NUL they hold, and ag_json_getstr() refuses those; the second
 * parse gives the same tree: types, booleans, integers (is_int and value), other numbers
 * (bit-exact when finite), strings and member names byte for byte, child counts. */
#include "agent_json.h"
#include "agent_util.h"
#include "fuzz.h"

#include <math.h>

static void
dump(struct ag_buf *b, const struct ag_json *j, int depth)
{
    FUZZ_CHECK(depth <= AG_JSON_MAX_DEPTH);
    switch (j->t) {
    case AG_JNULL: ag_buf_puts(b, "null"); break;
    case AG_JBOOL: ag_buf_puts(b, j->b ? "true" : "false"); break;
    case AG_JNUM:
        if (j->is_int)
            ag_buf_printf(b, "%lld", (long long)j->i);
        else if (isfinite(j->d)) {
            char num[64];
            snprintf(num, sizeof(num), "%.17g", j->d);
            ag_buf_puts(b, num);
            if (strspn(num, "-0123456789") == strlen(num))
                ag_buf_puts(b, ".0"); /* 1.5e3 is 1500 but no integer */
        } else
            ag_buf_puts(b, j->d > 0 ? "1e999" : "-1e999");
        break;
    case AG_JSTR:
        FUZZ_CHECK(j->s && j->s[j->slen] == '\0');
        ag_json_str(b, j->s, j->slen);
        break;
    case AG_JARR:
    case AG_JOBJ: {
        ag_buf_putc(b, j->t == AG_JARR ? '[' : '{');
        size_t n = 0;
        for (const struct ag_json *c = j->child; c; c = c->next, n++) {
            if (n)
                ag_buf_putc(b, ',');
            if (j->t == AG_JOBJ) {
                FUZZ_CHECK(c->key && c->key[c->keylen] == '\0');
                ag_json_str(b, c->key, c->keylen);
                ag_buf_putc(b, ':');
            } else {
                FUZZ_CHECK(c->key == NULL);
            }
            dump(b, c, depth + 1);
        }
        FUZZ_CHECK(n == j->n);
        ag_buf_putc(b, j->t == AG_JARR ? ']' : '}');
        break;
    }
    }
}

static void
same(const struct ag_json *a, const struct ag_json *b)
{
    FUZZ_CHECK(a->t == b->t && a->n == b->n && a->keylen == b->keylen);
    FUZZ_CHECK(a->keylen == 0 || memcmp(a->key, b->key, a->keylen) == 0);
    switch (a->t) {
    case AG_JBOOL: FUZZ_CHECK(a->b == b->b); break;
    case AG_JNUM:
        FUZZ_CHECK(a->is_int == b->is_int);
        if (a->is_int)
            FUZZ_CHECK(a->i == b->i);
        else if (isfinite(a->d))
            FUZZ_CHECK(a->d == b->d);
        break;
    case AG_JSTR: FUZZ_CHECK(a->slen == b->slen && memcmp(a->s, b->s, a->slen) == 0); break;
    default: break;
    }
    const struct ag_json *x = a->child, *y = b->child;
    for (; x && y; x = x->next, y = y->next)
        same(x, y);
    FUZZ_CHECK(x == NULL && y == NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *why = NULL;
    struct ag_json *j = ag_json_parse((const char *)data, size, &why);
    if (j == NULL) {
        FUZZ_CHECK(why != NULL);
        return 0;
    }
    if (j->t == AG_JOBJ)
        for (const struct ag_json *c = j->child; c; c = c->next) {
            const struct ag_json *got = ag_json_get(j, c->key);
            FUZZ_CHECK(c->keylen != strlen(c->key) || got != NULL);
            const char *s = ag_json_getstr(j, c->key);
            FUZZ_CHECK(s == NULL || strlen(s) == ag_json_get(j, c->key)->slen);
        }
    struct ag_buf out = {0};
    dump(&out, j, 0);
    struct ag_json *again = ag_json_parse(out.p, out.len, &why);
    if (again == NULL)
        fprintf(stderr, "fuzz_json: written back as `%.*s`, which does not parse: %s\n",
                (int)out.len, out.p, why);
    FUZZ_CHECK(again != NULL);
    same(j, again);
    ag_json_free(again);
    ag_buf_free(&out);
    ag_json_free(j);
    return 0;
}
