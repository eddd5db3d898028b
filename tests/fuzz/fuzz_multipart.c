/* fuzz_multipart: the sbx-agent's streaming multipart/form-data parser
 * (apid/agent/agent_multipart.c), which POST /files/upload feeds straight from the socket. Each
 * input is a Content-Type header value (its first line) and a body (the rest): ag_mp_init()
 * takes the boundary out of the header, and the body goes through ag_mp_feed() once whole and
 * once in pieces of 1 to 32 bytes (sizes taken from the input, so runs are deterministic).
 * Checks: both feeds report the same parts (names, file names, content types), the same data
 * for each, the same verdict and the same end; no part's data holds the delimiter
 * ("\r\n--" boundary) that should have ended it; part names and headers come back
 * NUL-terminated within their bounds; callbacks are balanced (an end only after a begin). */
#include "agent_multipart.h"
#include "fuzz.h"

#include <stdbool.h>

struct rec {
    char *p;
    size_t len, cap;
    size_t data_at; /* offset of the open data record's length field, or SIZE_MAX */
    bool in_part;
    int parts;
    const struct ag_mp *mp;
};

static void
put(struct rec *r, const void *p, size_t n)
{
    if (r->len + n > r->cap) {
        r->cap = (r->len + n) * 2 + 256;
        r->p = realloc(r->p, r->cap);
        FUZZ_CHECK(r->p != NULL);
    }
    memcpy(r->p + r->len, p, n);
    r->len += n;
}

static int
on_begin(void *u, const char *name, const char *filename, const char *ctype)
{
    struct rec *r = u;
    FUZZ_CHECK(!r->in_part);
    FUZZ_CHECK(strlen(name) < 256 && strlen(filename) < 1024 && strlen(ctype) < 256);
    r->in_part = true;
    r->parts++;
    r->data_at = SIZE_MAX;
    put(r, "B", 1);
    put(r, name, strlen(name) + 1);
    put(r, filename, strlen(filename) + 1);
    put(r, ctype, strlen(ctype) + 1);
    return 0;
}

/* Data records are coalesced, so that how the body was split does not show. */
static int
on_data(void *u, const char *p, size_t n)
{
    struct rec *r = u;
    FUZZ_CHECK(r->in_part);
    if (n == 0)
        return 0;
    if (r->data_at == SIZE_MAX) {
        put(r, "D", 1);
        r->data_at = r->len;
        size_t zero = 0;
        put(r, &zero, sizeof(zero));
    }
    put(r, p, n);
    size_t have;
    memcpy(&have, r->p + r->data_at, sizeof(have));
    have += n;
    memcpy(r->p + r->data_at, &have, sizeof(have));
    return 0;
}

static int
on_end(void *u)
{
    struct rec *r = u;
    FUZZ_CHECK(r->in_part);
    r->in_part = false;
    /* The delimiter ends a part: it can never be part of its data. */
    if (r->data_at != SIZE_MAX) {
        size_t n;
        memcpy(&n, r->p + r->data_at, sizeof(n));
        const char *d = r->p + r->data_at + sizeof(n);
        FUZZ_CHECK(memmem(d, n, r->mp->delim, r->mp->dlen) == NULL);
    }
    r->data_at = SIZE_MAX;
    put(r, "E", 1);
    return 0;
}

static const struct ag_mp_cb cb = {on_begin, on_data, on_end};

static int
feed(const char *ct, const char *body, size_t n, const uint8_t *sizes, size_t n_sizes,
     struct rec *r, bool *done)
{
    struct ag_mp *mp = malloc(sizeof(*mp));
    FUZZ_CHECK(mp != NULL);
    memset(r, 0, sizeof(*r));
    r->data_at = SIZE_MAX;
    r->mp = mp;
    int rc = ag_mp_init(mp, ct);
    FUZZ_CHECK(rc == 0 || rc == -1);
    if (rc == 0) {
        FUZZ_CHECK(mp->dlen > 4 && mp->dlen <= 4 + AG_MP_BOUNDARY_MAX);
        FUZZ_CHECK(memcmp(mp->delim, "\r\n--", 4) == 0 &&
                   !memchr(mp->delim + 4, '\r', mp->dlen - 4));
        size_t off = 0, k = 0;
        while (off < n && rc == 0) {
            size_t piece = n_sizes ? (size_t)(sizes[k++ % n_sizes] % 32) + 1 : n - off;
            if (piece > n - off)
                piece = n - off;
            rc = ag_mp_feed(mp, body + off, piece, &cb, r);
            FUZZ_CHECK(rc == 0 || rc == -1);
            off += piece;
        }
        *done = ag_mp_done(mp);
        if (*done)
            FUZZ_CHECK(!r->in_part);
        FUZZ_CHECK(mp->parts == r->parts);
    }
    free(mp);
    return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *nl = memchr(data, '\n', size);
    if (nl == NULL)
        return 0;
    size_t hl = (size_t)(nl - (const char *)data);
    char *ct = fuzz_cstr(data, hl);
    const char *body = nl + 1;
    size_t n = size - hl - 1;

    struct rec whole, split;
    bool done_whole = false, done_split = false;
    int rw = feed(ct, body, n, NULL, 0, &whole, &done_whole);
    int rs = feed(ct, body, n, data, size < 64 ? size : 64, &split, &done_split);
    FUZZ_CHECK(rw == rs && done_whole == done_split);
    FUZZ_CHECK(whole.len == split.len && (whole.len == 0 || !memcmp(whole.p, split.p, whole.len)));
    free(whole.p);
    free(split.p);
    free(ct);
    return 0;
}
