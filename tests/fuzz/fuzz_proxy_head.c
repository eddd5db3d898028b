/* fuzz_proxy_head: apid's reverse proxy reading a sandbox's answer (apid/proxy.c): bytes that
 * whoever controls the sandbox controls, read by apid (root, outside any sandbox) for every
 * request under /sandboxes/{id}/proxy/{port}/. Each input is what the sandbox's port sends:
 * apid_proxy_response() reads the head from it (interim 1xx answers, the status line, headers,
 * Content-Length, Transfer-Encoding, hop-by-hop filtering, 101 upgrades) and the body is then
 * pulled through the response's reader, body_cb() (raw, by length, de-chunked), 37 bytes at a
 * time, for a GET and for a HEAD request. The upstream is a memfd holding the input, so reads
 * end at its end as at a closed connection.
 * The harness includes proxy.c: the reader, the proxy's state and the upstream's descriptor are
 * private to it, and including it drives the real code without widening apid's interface.
 * Checks: a response has a status MHD can send (100..999; 101 only for an upgrade asked for);
 * the head apid read, interim answers included, is at most HEAD_MAX bytes (beyond, a sandbox
 * held apid's memory, a header at a time); a failure is 502 or 500 with a message; the body
 * delivered is never more than what followed the head, and for a Content-Length response never
 * more than that length; chunk framing is checked (a few fixed inputs, LLVMFuzzerInitialize). */
#include "proxy.c"

#include "fuzz.h"

#include <sys/mman.h>

/* The body bytes delivered. */
static size_t
one(const uint8_t *data, size_t size, bool head_req)
{
    int fd = memfd_create("upstream", MFD_CLOEXEC);
    FUZZ_CHECK(fd >= 0 && safe_write(fd, data, size) == (ssize_t)size &&
               lseek(fd, 0, SEEK_SET) == 0);
    struct apid_proxy *px = xmalloc0(sizeof(*px));
    px->fd = fd;
    px->ws = true;
    px->head_req = head_req;
    snprintf(px->id, sizeof(px->id), "fuzz");

    struct apid_proxy *owner = px;
    int status = 0;
    char msg[256] = "";
    struct MHD_Response *resp = apid_proxy_response(&owner, &status, msg, sizeof(msg));
    if (resp == NULL) {
        FUZZ_CHECK(owner == px && (status == 502 || status == 500) && msg[0]);
        apid_proxy_free(px);
        return 0;
    }
    FUZZ_CHECK(owner == NULL);
    FUZZ_CHECK(status >= 100 && status <= 999);
    off_t pos = lseek(fd, 0, SEEK_CUR);
    size_t head = (size_t)pos - (px->ib_end - px->ib_start);
    FUZZ_CHECK(head <= HEAD_MAX);
    if (status == 101) {
        /* The upgrade handler would own px; it never runs here. */
        MHD_destroy_response(resp);
        apid_proxy_free(px);
        return 0;
    }
    bool by_length = px->bs == B_LEN;
    uint64_t length = px->left;
    char buf[37];
    size_t total = 0;
    for (int i = 0; i < 1000000; i++) {
        ssize_t n = body_cb(px, total, buf, sizeof(buf));
        if (n == MHD_CONTENT_READER_END_OF_STREAM || n == MHD_CONTENT_READER_END_WITH_ERROR)
            break;
        FUZZ_CHECK(n > 0 && (size_t)n <= sizeof(buf));
        total += (size_t)n;
    }
    FUZZ_CHECK(total <= size - head);
    if (by_length)
        FUZZ_CHECK(total <= length);
    if (head_req)
        FUZZ_CHECK(total == 0);
    MHD_destroy_response(resp); /* body_free() frees px */
    return total;
}

/* Chunk framing is checked, not trusted: a size line that is not 1-15 hex digits (then nothing
 * or an extension), or chunk data not ended by CRLF, ends the body there. */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
#define CHUNKED "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    static const struct {
        const char *in;
        size_t body;
    } cases[] = {
        {CHUNKED "3;x=1\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n", 6},
        {CHUNKED "-1\r\nabc\r\n0\r\n\r\n", 0},
        {CHUNKED "3x\r\nabc\r\n0\r\n\r\n", 0},
        {CHUNKED "1000000000000000\r\nabc\r\n0\r\n\r\n", 0},
        {CHUNKED "3\r\nabcX\r\n3\r\ndef\r\n0\r\n\r\n", 3},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        FUZZ_CHECK(one((const uint8_t *)cases[i].in, strlen(cases[i].in), false) == cases[i].body);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one(data, size, false);
    one(data, size, true);
    return 0;
}
