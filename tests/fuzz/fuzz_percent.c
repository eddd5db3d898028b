/* fuzz_percent: URL handling in the sbx-agent (apid/agent/agent_util.c), on request targets a
 * client chooses: sbx_pct_decode() (runtime/lib/strutil.c, apid decodes with it too: paths, and
 * query strings with '+' as a space), in a separate
 * buffer and in place as ag_parse_head() calls it, ag_query_parse() on the input as a query
 * string, and ag_path_clean(), which turns the decoded paths of the file API into absolute
 * ones, on the input as a C string.
 * Checks: the decoder matches the RFC 3986 reading written out here (a '%' needs two hex digits;
 * a NUL, raw or decoded, is refused), in place or not; a parsed query, re-encoded and parsed
 * again, gives the same pairs in the same order; a cleaned path starts with '/', has no empty,
 * "." or ".." component and no trailing '/', never climbs above "/", is no longer than its
 * input allows, and cleaning it again changes nothing. */
#include "agent_util.h"
#include "fuzz.h"

#include <stdbool.h>

static int
hex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static ssize_t
reference_decode(const uint8_t *in, size_t n, char *out, bool plus)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = in[i];
        if (c == '%') {
            if (n - i < 3 || hex(in[i + 1]) < 0 || hex(in[i + 2]) < 0)
                return -1;
            c = hex(in[i + 1]) * 16 + hex(in[i + 2]);
            i += 2;
        } else if (c == '+' && plus) {
            c = ' ';
        }
        if (c == 0)
            return -1;
        out[o++] = (char)c;
    }
    return (ssize_t)o;
}

static void
check_decode(const uint8_t *data, size_t size, bool plus)
{
    char *want = malloc(size + 1), *got = malloc(size + 1), *inplace = malloc(size + 1);
    FUZZ_CHECK(want && got && inplace);
    ssize_t w = reference_decode(data, size, want, plus);
    ssize_t g = sbx_pct_decode((const char *)data, size, got, plus);
    memcpy(inplace, data, size);
    ssize_t p = sbx_pct_decode(inplace, size, inplace, plus);
    FUZZ_CHECK(g == w && p == w);
    if (w > 0)
        FUZZ_CHECK(memcmp(got, want, (size_t)w) == 0 && memcmp(inplace, want, (size_t)w) == 0);
    free(want);
    free(got);
    free(inplace);
}

struct out {
    char *p;
    size_t len, cap;
};

static void
put(struct out *o, const char *s, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        o->cap = (o->len + n + 1) * 2;
        o->p = realloc(o->p, o->cap);
        FUZZ_CHECK(o->p != NULL);
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

/* Percent-encodes everything but RFC 3986's unreserved characters. */
static void
encode(struct out *o, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[4];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("-._~", c))
            put(o, (const char *)&c, 1);
        else
            put(o, esc, (size_t)snprintf(esc, sizeof(esc), "%%%02X", c));
    }
}

static void
check_query(const uint8_t *data, size_t size)
{
    struct ag_query q;
    if (ag_query_parse((const char *)data, size, &q) < 0) {
        FUZZ_CHECK(q.kv == NULL && q.n == 0);
        return;
    }
    struct out o = {0};
    put(&o, "", 0);
    for (size_t i = 0; i < q.n; i++) {
        if (i)
            put(&o, "&", 1);
        encode(&o, q.kv[i].k);
        put(&o, "=", 1);
        encode(&o, q.kv[i].v);
    }
    struct ag_query again;
    FUZZ_CHECK(ag_query_parse(o.p, o.len, &again) == 0);
    /* Pairs with an empty key and value ("&=&") read back as such; empty segments vanish. */
    FUZZ_CHECK(again.n == q.n);
    for (size_t i = 0; i < q.n; i++)
        FUZZ_CHECK(!strcmp(q.kv[i].k, again.kv[i].k) && !strcmp(q.kv[i].v, again.kv[i].v));
    ag_query_free(&again);
    ag_query_free(&q);
    free(o.p);
}

static void
check_clean(const char *s)
{
    char *c = ag_path_clean(s);
    FUZZ_CHECK(c != NULL && c[0] == '/');
    size_t n = strlen(c);
    FUZZ_CHECK(n <= strlen(s) + 1);
    FUZZ_CHECK(n == 1 || c[n - 1] != '/');
    FUZZ_CHECK(!strstr(c, "//") && !strstr(c, "/./") && !strstr(c, "/../"));
    FUZZ_CHECK(strcmp(c, "/.") != 0 && strcmp(c, "/..") != 0);
    FUZZ_CHECK(n < 2 || strcmp(c + n - 2, "/.") != 0);
    FUZZ_CHECK(n < 3 || strcmp(c + n - 3, "/..") != 0);
    char *again = ag_path_clean(c);
    FUZZ_CHECK(again && strcmp(again, c) == 0);
    free(again);
    free(c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_decode(data, size, false);
    check_decode(data, size, true);
    check_query(data, size);
    char *s = fuzz_cstr(data, size);
    check_clean(s);
    free(s);
    return 0;
}
