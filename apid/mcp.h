/* MCP (Model Context Protocol) server of sbx-apid: JSON-RPC 2.0 over the streamable HTTP
 * transport at /mcp on apid's own listener and API key (docs/mcp.md). Every POST is answered
 * with one application/json body (no SSE: no tool sends progress, and plain JSON is what every
 * client reads); GET (a server-to-client stream) is 405. Sessions: `initialize` hands out an
 * Mcp-Session-Id; a request that names an unknown or ended one gets 404 (the client then
 * initializes again), DELETE /mcp ends one. Requests without the header are served too, as no
 * tool keeps state in the MCP session (sandboxes are named by id in every call). The tools run
 * on the sandbox manager and the sandbox's agent directly, never through apid's REST
 * (mcp_tools.c). */
#ifndef SBX_APID_MCP_H
#define SBX_APID_MCP_H

#include "apid.h"

#define APID_MCP_SESSION_HEADER "Mcp-Session-Id"

struct apid_mcp_req {
    const char *method;   /* HTTP method */
    const char *session;  /* Mcp-Session-Id header or NULL */
    const char *protocol; /* MCP-Protocol-Version header or NULL */
    const char *origin;   /* Origin header or NULL */
    const char *body;
    size_t len;
};

struct apid_mcp_reply {
    int status;
    char *body;        /* NULL: an empty body */
    const char *ctype; /* with body */
    char session[65];  /* "" or the Mcp-Session-Id to send back */
    const char *allow; /* Allow header of a 405, or NULL */
};

void apid_mcp_init(struct apid_ctx *ctx);
/* True for /mcp and /v1/mcp. */
bool apid_mcp_is_route(const char *path);
/* Handles one authorized request; never fails (errors are JSON-RPC errors or HTTP 4xx). */
void apid_mcp_handle(const struct apid_mcp_req *req, struct apid_mcp_reply *out);
void apid_mcp_reply_free(struct apid_mcp_reply *r);

/* mcp_tools.c: the tools. */
void apid_mcp_tools_init(struct apid_ctx *ctx);
/* The tools/list array (borrowed). */
json_t *apid_mcp_tools_list(void);
/* The tools/call result of tool `name` (isError set on its failure), or NULL for no such tool.
 * args NULL: no arguments. */
json_t *apid_mcp_tool_call(const char *name, json_t *args);

#endif
