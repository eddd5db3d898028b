/* apid's HTTP/1.1 client for the sbx-agent inside a sandbox (execd API, CONTRACT.md Part B), on
 * libcurl.
 * Used by the session API, the warm pool (readiness, entrypoint hand-over) and usable by the
 * proxy. A sandbox is reached on its own network address once networking assigns one; until then
 * (and as a fallback) the socket is created inside the sandbox's network namespace and connects
 * to 127.0.0.1:44772 there. */
#ifndef SBX_APID_AGENT_CLIENT_H
#define SBX_APID_AGENT_CLIENT_H

#include "apid.h"

#define APID_AGENT_PORT 44772

struct apid_agent_target {
    pid_t pid; /* any process of the sandbox: its network namespace is used */
    unsigned long long pid_start;
    const char *addr;  /* IPv4 address of the sandbox on the bridge; NULL: via the netns */
    const char *token; /* X-EXECD-ACCESS-TOKEN */
};

struct apid_http_resp {
    int status;
    char *body; /* NUL-terminated, de-chunked */
    size_t len;
    bool truncated; /* the body exceeded max_body and reading stopped there */
};
void apid_http_resp_free(struct apid_http_resp *r);

void apid_agent_target_of(const struct apid_sandbox *sb, struct apid_agent_target *t);
/* One request on a fresh connection (Connection: close). max_body 0: 64 MiB. */
int apid_agent_request(const struct apid_agent_target *t, const char *method, const char *path,
                       const char *ctype, const void *body, size_t len, int timeout_ms,
                       size_t max_body, struct apid_http_resp *out, sbx_error_t *err);
/* The two halves of apid_agent_request, for a caller with other work to do while the agent
 * answers: send returns once the request (body included) is out, with the call in flight (or
 * NULL; the body is copied, the caller may free it); recv reads the response and ends the call,
 * whatever it returns. Each half has its own timeout. */
struct apid_agent_call;
struct apid_agent_call *apid_agent_send(const struct apid_agent_target *t, const char *method,
                                        const char *path, const char *ctype, const void *body,
                                        size_t len, int timeout_ms, sbx_error_t *err);
int apid_agent_recv(struct apid_agent_call *call, int timeout_ms, size_t max_body,
                    struct apid_http_resp *out, sbx_error_t *err);
/* Ends a call without reading its answer (NULL: nothing). */
void apid_agent_abandon(struct apid_agent_call *call);
/* The "message" of the agent's JSON error answer, a copy to free; NULL without one. */
char *apid_agent_message(const struct apid_http_resp *r);
/* DELETE path, best effort (cleaning up after a command or a temporary file): the answer and
 * any failure are ignored. */
void apid_agent_delete(const struct apid_agent_target *t, const char *path);
/* Writes one file through POST /files/upload (parents made, file truncated): mode 0 keeps the
 * agent's default, else the §B.9 decimal-digits-are-octal form (644). A non-200 answer is an
 * error carrying the agent's message: 4xx as E_INVALID_PARAMETER, else E_UNAVAILABLE. */
int apid_agent_upload(const struct apid_agent_target *t, const char *path, int mode,
                      const void *data, size_t len, int timeout_ms, sbx_error_t *err);
/* Polls GET /ping until it answers 200 or timeout_ms passes. */
int apid_agent_wait_ready(const struct apid_agent_target *t, int timeout_ms, sbx_error_t *err);

#endif
