/* MCP server (see mcp.h): JSON-RPC 2.0 framing and the session table; the tools are in
 * mcp_tools.c. Only broken JSON-RPC (-32700, -32600), unknown methods (-32601) and unknown tools
 * or non-object params (-32602) are JSON-RPC errors; a tool's own failure is its result. */
#include "mcp.h"

#define MCP_LATEST "2025-06-18"
static const char *const versions[] = {"2025-06-18", "2025-03-26", "2024-11-05"};

#define SESSIONS_MAX 1024
#define SESSION_IDLE_MS (24LL * 3600 * 1000)
#define BATCH_MAX 64

/* ---------- sessions ---------- */

struct msession {
    char id[33];
    char version[16];
    int64_t last;
};
static struct msession sessions[SESSIONS_MAX];
static pthread_mutex_t sess_lock = PTHREAD_MUTEX_INITIALIZER;

/* A new session; when the table is full the least recently used one is ended. */
static void
session_new(const char *version, char out[33])
{
    pthread_mutex_lock(&sess_lock);
    size_t victim = 0;
    for (size_t i = 0; i < SESSIONS_MAX; i++) {
        if (!sessions[i].id[0]) {
            victim = i;
            break;
        }
        if (sessions[i].last < sessions[victim].last)
            victim = i;
    }
    random_hex(sessions[victim].id, 32);
    snprintf(sessions[victim].version, sizeof(sessions[victim].version), "%s", version);
    sessions[victim].last = apid_now_ms();
    memcpy(out, sessions[victim].id, 33);
    pthread_mutex_unlock(&sess_lock);
}

/* 1 known (and touched, or removed with end), 0 unknown or idle too long. */
static int
session_use(const char *id, bool end)
{
    if (!id || strlen(id) != 32)
        return 0;
    int found = 0;
    int64_t now = apid_now_ms();
    pthread_mutex_lock(&sess_lock);
    for (size_t i = 0; i < SESSIONS_MAX; i++) {
        if (!sessions[i].id[0] || strcmp(sessions[i].id, id))
            continue;
        if (now - sessions[i].last > SESSION_IDLE_MS || end) {
            found = !end ? 0 : 1;
            memset(&sessions[i], 0, sizeof(sessions[i]));
        } else {
            found = 1;
            sessions[i].last = now;
        }
        break;
    }
    pthread_mutex_unlock(&sess_lock);
    return found;
}

static bool
version_ok(const char *v)
{
    for (size_t i = 0; i < ARRAY_SIZE(versions); i++)
        if (v && !strcmp(v, versions[i]))
            return true;
    return false;
}

void
apid_mcp_init(struct apid_ctx *c)
{
    apid_mcp_tools_init(c);
}

bool
apid_mcp_is_route(const char *path)
{
    return !strcmp(path, "/mcp") || !strcmp(path, "/mcp/") || !strcmp(path, "/v1/mcp") ||
           !strcmp(path, "/v1/mcp/");
}

/* ---------- JSON-RPC ---------- */

static json_t *
rpc_error(json_t *id, int code, const char *message)
{
    return json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id ? id : json_null(),
                     "error", "code", code, "message", message);
}

static json_t *
rpc_result(json_t *id, json_t *result)
{
    return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result);
}

/* One message of a POST. NULL: nothing to answer (a notification or a response). *bad is set
 * for a message that is not JSON-RPC at all (the HTTP answer is then a 400). */
static json_t *
handle_message(json_t *m, const char *hdr_session, char new_session[33], bool *bad)
{
    if (!json_is_object(m)) {
        *bad = true;
        return rpc_error(NULL, -32600, "invalid request: a JSON-RPC message must be an object");
    }
    json_t *id = json_object_get(m, "id");
    json_t *method = json_object_get(m, "method");
    bool id_ok = id && (json_is_string(id) || json_is_integer(id) || json_is_real(id));
    if (!json_is_string(json_object_get(m, "jsonrpc")) ||
        strcmp(json_string_value(json_object_get(m, "jsonrpc")), "2.0")) {
        *bad = true;
        return rpc_error(id_ok ? id : NULL, -32600, "invalid request: jsonrpc must be \"2.0\"");
    }
    if (!method) {
        /* A response to a server request: none is ever sent, so it is accepted and dropped. */
        if (id && (json_object_get(m, "result") || json_object_get(m, "error")))
            return NULL;
        *bad = true;
        return rpc_error(id_ok ? id : NULL, -32600, "invalid request: method is missing");
    }
    if (!json_is_string(method) || (id && !id_ok)) {
        *bad = true;
        return rpc_error(id_ok ? id : NULL, -32600,
                         !json_is_string(method)
                             ? "invalid request: method must be a string"
                             : "invalid request: id must be a string or a number");
    }
    const char *mn = json_string_value(method);
    json_t *params = json_object_get(m, "params");
    if (!id) /* notifications: initialized, cancelled, ...: nothing to do or answer */
        return NULL;
    if (params && !json_is_object(params) && !json_is_null(params))
        return rpc_error(id, -32602, "invalid params: params must be an object");
    if (!strcmp(mn, "initialize")) {
        const char *want = json_string_value(json_object_get(params, "protocolVersion"));
        if (!want)
            return rpc_error(id, -32602, "invalid params: protocolVersion (a string) is required");
        const char *v = version_ok(want) ? want : MCP_LATEST;
        session_new(v, new_session);
        (void)hdr_session;
        return rpc_result(
            id, json_pack("{s:s, s:{s:{s:b}}, s:{s:s, s:s, s:s}, s:s}", "protocolVersion", v,
                          "capabilities", "tools", "listChanged", false, "serverInfo", "name",
                          "sbx", "title", "sbx sandboxes", "version", SBX_VERSION, "instructions",
                          "Tools to run code in isolated Linux sandboxes. Call create_sandbox "
                          "first (image local/host has python3, node and bash; local/busybox is "
                          "small), then run_command, run_code, write_file, read_file and "
                          "list_directory with its sandbox_id; delete_sandbox when done."));
    }
    if (!strcmp(mn, "ping"))
        return rpc_result(id, json_object());
    if (!strcmp(mn, "tools/list"))
        return rpc_result(id, json_pack("{s:O}", "tools", apid_mcp_tools_list()));
    if (!strcmp(mn, "tools/call")) {
        const char *name = json_string_value(json_object_get(params, "name"));
        json_t *args = json_object_get(params, "arguments");
        if (!name)
            return rpc_error(id, -32602, "invalid params: name (a string) is required");
        if (args && !json_is_object(args) && !json_is_null(args))
            return rpc_error(id, -32602, "invalid params: arguments must be an object");
        json_t *res = apid_mcp_tool_call(name, json_is_object(args) ? args : NULL);
        if (res)
            return rpc_result(id, res);
        cleanup_free char *t = xasprintf("unknown tool `%.80s` (tools/list names them)", name);
        return rpc_error(id, -32602, t);
    }
    cleanup_free char *t = xasprintf("method `%.80s` not found", mn);
    return rpc_error(id, -32601, t);
}

static void
reply_json(struct apid_mcp_reply *out, int status, json_t *o)
{
    out->status = status;
    out->body = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    out->ctype = "application/json";
    json_decref(o);
}

/* DNS rebinding (the transport spec's "MUST validate Origin"): a browser page may reach a
 * loopback listener; only pages from a loopback origin are let through. Clients that are not
 * browsers send no Origin. */
static bool
origin_ok(const char *origin)
{
    if (!origin || !*origin)
        return true;
    const char *h = strstr(origin, "://");
    if (!h)
        return false;
    h += 3;
    static const char *const loop[] = {"localhost", "127.0.0.1", "[::1]"};
    for (size_t i = 0; i < ARRAY_SIZE(loop); i++) {
        size_t n = strlen(loop[i]);
        if (!strncmp(h, loop[i], n) && (h[n] == '\0' || h[n] == ':' || h[n] == '/'))
            return true;
    }
    return false;
}

void
apid_mcp_handle(const struct apid_mcp_req *req, struct apid_mcp_reply *out)
{
    memset(out, 0, sizeof(*out));
    if (!origin_ok(req->origin)) {
        reply_json(out, 403, rpc_error(NULL, -32600, "forbidden: Origin is not a loopback origin"));
        return;
    }
    if (!strcmp(req->method, "DELETE")) {
        if (!req->session) {
            reply_json(out, 400, rpc_error(NULL, -32600, "Mcp-Session-Id header is required"));
            return;
        }
        if (!session_use(req->session, true)) {
            reply_json(out, 404, rpc_error(NULL, -32001, "session not found"));
            return;
        }
        out->status = 204;
        return;
    }
    if (strcmp(req->method, "POST")) {
        /* No server-initiated stream (GET): nothing is ever pushed to clients. */
        out->allow = "POST, DELETE";
        reply_json(out, 405,
                   rpc_error(NULL, -32600,
                             "method not allowed: POST JSON-RPC messages "
                             "to /mcp (no SSE stream is offered)"));
        return;
    }
    if (req->protocol && !version_ok(req->protocol)) {
        cleanup_free char *m = xasprintf("unsupported MCP-Protocol-Version `%.40s` (supported: "
                                         "2025-06-18, 2025-03-26, 2024-11-05)",
                                         req->protocol);
        reply_json(out, 400, rpc_error(NULL, -32600, m));
        return;
    }
    json_error_t je;
    json_t *msg =
        req->len ? json_loadb(req->body, req->len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je)
                 : NULL;
    if (!msg) {
        cleanup_free char *m = xasprintf("parse error: %s", req->len ? je.text : "empty body");
        reply_json(out, 400, rpc_error(NULL, -32700, m));
        return;
    }
    bool is_init = json_is_object(msg) &&
                   !strcmp(json_string_value(json_object_get(msg, "method")) ?: "", "initialize");
    if (req->session && !is_init && !session_use(req->session, false)) {
        json_decref(msg);
        reply_json(out, 404, rpc_error(NULL, -32001, "session not found: initialize again"));
        return;
    }
    char new_session[33] = "";
    bool bad = false;
    json_t *answer = NULL;
    if (json_is_array(msg)) {
        /* Batches (2025-03-26; later versions send none): the answers in one array. */
        if (json_array_size(msg) == 0 || json_array_size(msg) > BATCH_MAX) {
            answer = rpc_error(NULL, -32600, "invalid request: a batch holds 1 to 64 messages");
            bad = true;
        } else {
            json_t *arr = json_array();
            size_t i;
            json_t *x;
            json_array_foreach (msg, i, x) {
                bool b = false;
                /* initialize is never batched (the spec), so no batch creates a session. */
                json_t *one = json_is_object(x) &&
                                      !strcmp(json_string_value(json_object_get(x, "method")) ?: "",
                                              "initialize")
                                  ? rpc_error(json_object_get(x, "id"), -32600,
                                              "invalid request: initialize cannot be batched")
                                  : handle_message(x, req->session, new_session, &b);
                if (one)
                    json_array_append_new(arr, one);
            }
            if (json_array_size(arr))
                answer = arr;
            else
                json_decref(arr);
        }
    } else {
        answer = handle_message(msg, req->session, new_session, &bad);
    }
    json_decref(msg);
    if (new_session[0])
        snprintf(out->session, sizeof(out->session), "%s", new_session);
    if (!answer) {
        out->status = 202;
        return;
    }
    reply_json(out, bad ? 400 : 200, answer);
}

void
apid_mcp_reply_free(struct apid_mcp_reply *r)
{
    free(r->body);
    r->body = NULL;
}
