/* fuzz_agent_client: apid reading what a sandbox's agent answers (apid/agent_client.c), bytes
 * that whoever controls the sandbox controls, read by apid (root, outside any sandbox) for the
 * session API, the warm pool and readiness checks. libcurl parses the head and de-chunks the
 * body; apid's own part is the socket, the split of a call into send and receive, the body bound,
 * the end-of-transfer handling and the error mapping, and this drives them as apid does. Each
 * input is a whole response. A call is started as apid_agent_send starts it, but connected to a
 * listener of the harness (an abstract unix socket, so no TCP ports are used up); once the
 * request is out, the harness accepts, writes the input and shuts its side, and the call is
 * finished as apid_agent_recv finishes it: a GET with the default body limit (64 MiB), a POST
 * with a 100-byte one (truncation).
 * The harness includes agent_client.c: redirecting a call to another socket is private to it.
 * Checks: the error convention; the request is out before any answer (the send half returns);
 * a response that is accepted has a status of 100..999 and a body that is NUL-terminated at its
 * length, made of bytes that follow an "HTTP/" and never over the limit, and is marked
 * truncated only when the limit was reached. */
#include "agent_client.c"

#include "fuzz.h"

#include <stddef.h>
#include <sys/un.h>

static int listener = -1;
static char name[64];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    snprintf(name, sizeof(name), "sbx-fuzz-agent-client-%d", (int)getpid());
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path + 1, name, strlen(name));
    listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FUZZ_CHECK(listener >= 0 &&
               bind(listener, (struct sockaddr *)&sa,
                    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name))) == 0 &&
               listen(listener, 4) == 0);
    return 0;
}

static void
one(const uint8_t *data, size_t size, bool post, size_t max_body)
{
    struct apid_agent_target t = {.pid = 1, .addr = "127.0.0.1", .token = "fuzz"};
    sbx_error_t err = NULL;
    struct apid_agent_call *c = post ? call_new(&t, "POST", "/command", "application/json",
                                                "{\"command\":\"true\"}", 18, true, &err)
                                     : call_new(&t, "GET", "/ping", NULL, NULL, 0, false, &err);
    FUZZ_CHECK(c != NULL);
    curl_easy_setopt(c->easy, CURLOPT_ABSTRACT_UNIX_SOCKET, name);
    CURLcode res;
    FUZZ_CHECK(drive(c, apid_now_ms() + 5000, true, &res) == 0);
    int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    FUZZ_CHECK(fd >= 0);
    int sz = (int)size + 4096;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    FUZZ_CHECK(safe_write(fd, data, size) == (ssize_t)size);
    shutdown(fd, SHUT_WR); /* the agent is done: EOF after the bytes */

    struct apid_http_resp resp;
    int r = apid_agent_recv(c, 5000, max_body, &resp, &err); /* ends the call */
    close(fd);
    FUZZ_CHECK_ERR(r, err);
    if (r == 0) {
        FUZZ_CHECK(resp.status >= 100 && resp.status <= 999);
        FUZZ_CHECK(resp.body && resp.body[resp.len] == '\0');
        FUZZ_CHECK(resp.len + 5 <= size); /* after "HTTP/" (alone, libcurl reads it as 200) */
        FUZZ_CHECK(resp.len <= (max_body ? max_body : MAX_BODY_DEFAULT));
        FUZZ_CHECK(!resp.truncated || resp.len == max_body);
    }
    apid_http_resp_free(&resp);
    sbx_error_release(&err);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 100000) /* what a socket buffers without a reader */
        return 0;
    one(data, size, false, 0);
    one(data, size, true, 100);
    return 0;
}
