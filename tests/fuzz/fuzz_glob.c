/* fuzz_glob: the sbx-agent's file-name patterns (GET /files/search?pattern=), matched by
 * ag_glob_match() (apid/agent/agent_util.c) against every name below the searched directory.
 * Each input is a pattern and a name, split at the first newline.
 * Checks: the result is the one of the plain recursive definition written out here (each '*'
 * tried at every split; '?', sets with ranges, '!'/'^' negation and backslash escapes, an
 * unterminated '[' taken literally), compared while that is cheap (at most 3 runs of '*' and a
 * name of at most 64 bytes); and, through libFuzzer's -timeout, that no pattern takes long
 * (names are at most 255 bytes, but the agent answers nothing else while it matches). */
#include "agent_util.h"
#include "fuzz.h"

#include <stdbool.h>

static bool
reference(const char *p, const char *s)
{
    while (*p) {
        switch (*p) {
        case '*':
            while (*p == '*')
                p++;
            if (*p == 0)
                return true;
            for (const char *t = s;; t++) {
                if (reference(p, t))
                    return true;
                if (*t == 0)
                    return false;
            }
        case '?':
            if (*s == 0)
                return false;
            p++, s++;
            break;
        case '[': {
            if (*s == 0)
                return false;
            const char *q = p + 1;
            bool neg = false, hit = false;
            if (*q == '!' || *q == '^')
                neg = true, q++;
            const char *first = q;
            while (*q && (*q != ']' || q == first)) {
                unsigned char lo = (unsigned char)*q, hi;
                if (lo == '\\' && q[1])
                    lo = (unsigned char)*++q;
                q++;
                hi = lo;
                if (*q == '-' && q[1] && q[1] != ']') {
                    hi = (unsigned char)q[1];
                    if (hi == '\\' && q[2])
                        hi = (unsigned char)q[2], q++;
                    q += 2;
                }
                if ((unsigned char)*s >= lo && (unsigned char)*s <= hi)
                    hit = true;
            }
            if (*q != ']') {
                if (*s != '[')
                    return false;
                p++, s++;
                break;
            }
            if (hit == neg)
                return false;
            p = q + 1;
            s++;
            break;
        }
        case '\\':
            if (p[1])
                p++;
            /* fallthrough */
        default:
            if (*p != *s)
                return false;
            p++, s++;
        }
    }
    return *s == 0;
}

static int
star_runs(const char *p)
{
    int n = 0;
    for (; *p; p++)
        if (*p == '*' && (p[1] != '*'))
            n++;
    return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *nl = memchr(data, '\n', size);
    if (nl == NULL)
        return 0;
    size_t pl = (size_t)(nl - (const char *)data);
    char *pat = fuzz_cstr(data, pl);
    char *name = fuzz_cstr((const uint8_t *)nl + 1, size - pl - 1);
    bool got = ag_glob_match(pat, name);
    if (star_runs(pat) <= 3 && strlen(name) <= 64)
        FUZZ_CHECK(got == reference(pat, name));
    free(pat);
    free(name);
    return 0;
}
