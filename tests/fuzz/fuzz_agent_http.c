/* fuzz_agent_http: the sbx-agent's HTTP/1.1 request reading (apid/agent/agent_http.c), the
 * first code inside a sandbox that a client's bytes meet. Each input is the start of a
 * connection: the head up to the first blank line goes to ag_parse_head() (request line,
 * absolute-form targets, percent-decoded path, query string, Content-Length, Transfer-Encoding,
 * Connection, the token and the other headers the agent reads), its method and path to
 * ag_route(), its Range header to ag_range_parse(); what follows is the body, through
 * ag_chunked_feed() when the head says chunked, fed once whole and once in pieces of 1 to 16
 * bytes (sizes taken from the input, so runs are deterministic).
 * Checks: a head with a control character other than HTAB and line-ending CRLFs is refused (a
 * NUL or a bare LF hid the headers after it, so a body could be read as the next request); a
 * parsed head has a token for method, a path that starts with '/', and never both
 * Content-Length and chunked; a route's id fits its buffer; a range lies inside the file; the
 * chunked decoder gives the same bytes, the same verdict and the same framing however the body
 * is split, and never more bytes than it read. */
#include "agent.h"
#include "agent_stream.h"
#include "fuzz.h"

struct sink {
    char *p;
    size_t len, cap;
};

static int
sink_put(void *u, const char *p, size_t n)
{
    struct sink *s = u;
    if (s->len + n > s->cap) {
        s->cap = (s->len + n) * 2 + 64;
        s->p = realloc(s->p, s->cap);
        FUZZ_CHECK(s->p != NULL);
    }
    memcpy(s->p + s->len, p, n);
    s->len += n;
    return 0;
}

/* Decodes body[0..n) in pieces whose sizes cycle through `sizes`; returns the verdict and the
 * bytes consumed in *used. */
static int
dechunk(const char *body, size_t n, const uint8_t *sizes, size_t n_sizes, struct sink *out,
        size_t *used)
{
    struct ag_chunked ch = {0};
    size_t off = 0, k = 0;
    int rc = 0;
    *used = 0;
    while (off < n) {
        size_t piece = n_sizes ? (size_t)(sizes[k++ % n_sizes] % 16) + 1 : n - off;
        if (piece > n - off)
            piece = n - off;
        size_t consumed = 0;
        rc = ag_chunked_feed(&ch, body + off, piece, &consumed, sink_put, out);
        FUZZ_CHECK(consumed <= piece);
        *used += consumed;
        if (rc != 0)
            return rc;
        /* Nothing is held back: a piece is always consumed whole until the end. */
        FUZZ_CHECK(consumed == piece);
        off += piece;
    }
    return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const char *e = memmem(in, size, "\r\n\r\n", 4);
    if (e == NULL)
        return 0;
    size_t hl = (size_t)(e - in) + 4;
    struct ag_req r = {0};
    const char *why = "bad request";
    int rc = ag_parse_head(&r, in, hl, &why);
    FUZZ_CHECK(rc == 0 || rc == 400);
    if (rc == 0)
        for (size_t i = 0; i < hl; i++) {
            unsigned char c = data[i];
            if (c == '\r' && i + 1 < hl && data[i + 1] == '\n')
                i++;
            else
                FUZZ_CHECK(c >= 0x20 ? c != 0x7f : c == '\t');
        }
    if (rc != 0) {
        FUZZ_CHECK(why != NULL);
        ag_req_free(&r);
        return 0;
    }
    FUZZ_CHECK(r.method[0] &&
               strspn(r.method, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                "0123456789!#$%&'*+-.^_`|~") == strlen(r.method));
    FUZZ_CHECK(r.path && r.path[0] == '/');
    FUZZ_CHECK(!(r.chunked && r.clen >= 0) && r.clen >= -1);
    for (size_t i = 0; i < r.q.n; i++)
        FUZZ_CHECK(r.q.kv[i].k && r.q.kv[i].v);
    (void)ag_query_get(&r.q, "path");

    char arg[128];
    arg[0] = '\0';
    int rt = ag_route(r.method, r.path, arg, sizeof(arg));
    FUZZ_CHECK(rt > 0 || rt == -404 || rt == -405);
    FUZZ_CHECK(memchr(arg, '\0', sizeof(arg)) != NULL);

    static const uint64_t file_sizes[] = {0, 1, 100, UINT64_MAX};
    for (size_t i = 0; i < sizeof(file_sizes) / sizeof(file_sizes[0]); i++) {
        uint64_t a = 0, b = 0;
        int rr = ag_range_parse(r.range, file_sizes[i], &a, &b);
        FUZZ_CHECK(rr == 0 || rr == 1 || rr == -1);
        if (rr == 0)
            FUZZ_CHECK(a <= b && b < file_sizes[i]);
    }

    if (r.chunked) {
        const char *body = in + hl;
        size_t n = size - hl;
        struct sink whole = {0}, split = {0};
        size_t used_whole, used_split;
        int rw = dechunk(body, n, NULL, 0, &whole, &used_whole);
        int rs = dechunk(body, n, data, size < 64 ? size : 64, &split, &used_split);
        FUZZ_CHECK(rw == rs && used_whole == used_split);
        FUZZ_CHECK(whole.len == split.len &&
                   (whole.len == 0 || memcmp(whole.p, split.p, whole.len) == 0));
        FUZZ_CHECK(whole.len <= used_whole);
        free(whole.p);
        free(split.p);
    }
    ag_req_free(&r);
    return 0;
}
