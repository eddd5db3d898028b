/* The REST front end on libmicrohttpd: one thread per connection (lifecycle calls block on the
 * runtime for up to seconds, so an event loop would need a worker pool anyway), HTTP/1.1
 * keep-alive, a request body limit, X-Request-ID on every reply, JSON errors {code,message} on
 * every non-2xx (CONTRACT.md §0.3) and Content-Length: 0 on every empty 2xx (§0.2). Routes are
 * mounted with and without the /v1 prefix. */
#include "apid.h"
#include <sys/file.h>
#include <sys/stat.h>
#include "image_store.h"
#include "mcp.h"
#include "metrics.h"
#include "openhands.h"
#include "pool.h"
#include "session_api.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <time.h>

static struct MHD_Daemon *daemon_h;
static struct apid_ctx *ctx;
static int listen_port;
static char *endpoint_host;
static pthread_mutex_t inflight_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t inflight_cond = PTHREAD_COND_INITIALIZER;
static int inflight;

struct req {
    struct timespec start;
    char *body;
    size_t len;
    bool too_large;
    int status;
    char rid[129];
    char *path;
    char *method;
    char *raw_uri; /* as sent, query included: the proxy forwards it unchanged */
    bool started;
    struct apid_proxy *px; /* a proxied request in flight */
    bool egress;           /* the sandbox's egress API (port 18080), answered by apid */
    char egress_id[65];
    bool egress_policy; /* ... and the path under it is /policy, the one route it has */
};

static double
elapsed_ms(const struct timespec *a)
{
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a->tv_sec) * 1e3 + (double)(b.tv_nsec - a->tv_nsec) / 1e6;
}

/* Queues resp (and drops our reference) with the request's id; every answer goes out here. */
static enum MHD_Result
send_response(struct MHD_Connection *c, struct req *r, int status, struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "X-Request-ID", r->rid);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    r->status = status;
    return ret;
}

static enum MHD_Result
queue(struct MHD_Connection *c, struct req *r, int status, const char *ctype, const char *body)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        body ? strlen(body) : 0, (void *)(body ? body : ""), MHD_RESPMEM_MUST_COPY);
    if (ctype)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    return send_response(c, r, status, resp);
}

static enum MHD_Result
reply_json(struct MHD_Connection *c, struct req *r, int status, json_t *o)
{
    cleanup_free char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return queue(c, r, status, "application/json", s ? s : "{}");
}

static enum MHD_Result
reply_empty(struct MHD_Connection *c, struct req *r, int status)
{
    return queue(c, r, status, NULL, NULL);
}

static enum MHD_Result
reply_code(struct MHD_Connection *c, struct req *r, int status, const char *code, const char *msg)
{
    apid_metrics_error(status, code);
    return reply_json(c, r, status, json_pack("{s:s, s:s}", "code", code, "message", msg));
}

static enum MHD_Result
reply_err(struct MHD_Connection *c, struct req *r, sbx_error_t *err)
{
    int status;
    const char *code, *msg;
    apid_error_http(*err, &status, &code, &msg);
    if (status >= 500)
        log_err("%s %s: %s", r->method, r->path, (*err)->msg);
    enum MHD_Result ret = reply_code(c, r, status, code, msg);
    sbx_error_release(err);
    return ret;
}

bool
apid_api_key_ok(const char *got)
{
    pthread_mutex_lock(&ctx->cfg_lock);
    const char *key = ctx->cfg->api_key;
    bool ok = !key || !*key || (got && sbx_ct_equal(got, strlen(got), key, strlen(key)));
    pthread_mutex_unlock(&ctx->cfg_lock);
    return ok;
}

static bool
authorized(struct MHD_Connection *c, struct req *r, enum MHD_Result *ret)
{
    const char *got = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "OPEN-SANDBOX-API-KEY");
    /* MCP clients configure a bearer token more easily than a custom header (Codex's
     * bearer_token_env_var), so /mcp also takes the key as `Authorization: Bearer KEY`. */
    const char *authz = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!got && authz && apid_mcp_is_route(r->path) && !strncasecmp(authz, "Bearer ", 7))
        got = authz + 7;
    if (apid_api_key_ok(got))
        return true;
    *ret =
        got ? reply_code(c, r, 401, E_INVALID_KEY, "the API key is not valid")
            : reply_code(c, r, 401, E_MISSING_KEY, "the OPEN-SANDBOX-API-KEY header is required");
    return false;
}

/* ---------- query helpers ---------- */

struct qstate {
    unsigned mask;
    bool given, unknown_only;
    int n;
};

static enum MHD_Result
collect_state(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct qstate *q = cls;
    if (strcmp(key, "state") != 0 || !value)
        return MHD_YES;
    q->given = true;
    /* The SDK may also send one comma-joined value. */
    cleanup_free char *copy = xstrdup(value);
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int st = apid_state_parse(t);
        if (st >= 0)
            q->mask |= 1u << st;
    }
    return MHD_YES;
}

/* ---------- handlers ---------- */

static enum MHD_Result
h_create(struct MHD_Connection *c, struct req *r)
{
    sbx_error_t err = NULL;
    struct apid_create_req cr;
    pthread_mutex_lock(&ctx->cfg_lock);
    int rc = apid_parse_create(r->body, r->len, ctx->cfg, &cr, &err);
    pthread_mutex_unlock(&ctx->cfg_lock);
    if (rc < 0)
        return reply_err(c, r, &err);
    /* Host paths and named volumes checked before anything exists (a 400 creates nothing). */
    if (apid_volumes_resolve(ctx->cfg, &cr, &err) < 0) {
        apid_create_req_free(&cr);
        return reply_err(c, r, &err);
    }
    struct apid_sandbox *sb = NULL;
    bool pooled = false; /* warm pool when the request matches a pool key, else cold */
    rc = apid_pool_create(&cr, &pooled, &sb, &err);
    apid_create_req_free(&cr);
    if (rc < 0)
        return reply_err(c, r, &err);
    json_t *o = apid_sandbox_json(sb, false);
    apid_sandbox_free(sb);
    return reply_json(c, r, 202, o);
}

static enum MHD_Result
h_list(struct MHD_Connection *c, struct req *r)
{
    sbx_error_t err = NULL;
    struct qstate q = {0};
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_state, &q);
    int64_t page, ps;
    if (apid_parse_page(MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "page"),
                        MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "pageSize"), &page,
                        &ps, &err) < 0)
        return reply_err(c, r, &err);
    json_t *md = NULL;
    const char *mds = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "metadata");
    if (mds && apid_parse_metadata_filter(mds, &md, &err) < 0)
        return reply_err(c, r, &err);
    struct apid_sandbox **items = NULL;
    size_t n = 0;
    int64_t total = 0;
    int rc = 0;
    if (!(q.given && q.mask == 0)) /* only unknown states asked for: nothing matches */
        rc = apid_store_list(ctx->store, q.mask, md, page, ps, &items, &n, &total, &err);
    json_decref(md);
    if (rc < 0)
        return reply_err(c, r, &err);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, apid_sandbox_json(items[i], true));
    apid_sandbox_list_free(items, n);
    int64_t pages = (total + ps - 1) / ps;
    json_t *pag = json_pack("{s:I, s:I, s:I, s:I, s:b}", "page", (json_int_t)page, "pageSize",
                            (json_int_t)ps, "totalItems", (json_int_t)total, "totalPages",
                            (json_int_t)pages, "hasNextPage", page < pages);
    return reply_json(c, r, 200, json_pack("{s:o, s:o}", "items", arr, "pagination", pag));
}

static enum MHD_Result
h_get(struct MHD_Connection *c, struct req *r, const char *id)
{
    sbx_error_t err = NULL;
    struct apid_sandbox *sb = NULL;
    if (apid_mgr_get(id, &sb, &err) < 0)
        return reply_err(c, r, &err);
    json_t *o = apid_sandbox_json(sb, true);
    apid_sandbox_free(sb);
    return reply_json(c, r, 200, o);
}

static enum MHD_Result
h_endpoint(struct MHD_Connection *c, struct req *r, const char *id, const char *port_s)
{
    sbx_error_t err = NULL;
    int64_t port;
    if (parse_int64(port_s, 1, 65535, &port) < 0)
        return reply_code(c, r, 400, E_INVALID_PARAMETER, "port must be an integer in 1..65535");
    const char *usp = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "use_server_proxy");
    if (usp && strcmp(usp, "true") && strcmp(usp, "false"))
        return reply_code(c, r, 400, E_INVALID_PARAMETER, "use_server_proxy must be true or false");
    if (MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "expires"))
        return reply_code(c, r, 400, E_NOT_SUPPORTED,
                          "signed endpoints (expires) are not supported");
    const char *direct = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "direct");
    struct apid_sandbox *sb = NULL;
    if (apid_mgr_get(id, &sb, &err) < 0)
        return reply_err(c, r, &err);
    /* By default the server-proxied form (CONTRACT.md §A.6): one port, and apid is the one place
     * that strips the API key and adds the agent's token; it answers while the sandbox is
     * Pending. ?direct=true (sbx extension) gives <sandbox-ip>:<port> for clients on this host.
     * The headers map lets clients that talk to the agent directly authenticate; through the
     * proxy it is redundant (apid adds the token) but harmless. */
    cleanup_free char *ep = NULL;
    if (direct && !strcmp(direct, "true") && port != APID_EGRESS_PORT) {
        if (!sb->address) {
            apid_sandbox_free(sb);
            return reply_code(c, r, 409, E_CONFLICT, "the sandbox has no network address");
        }
        ep = xasprintf("%s:%lld", sb->address, (long long)port);
    } else {
        ep = xasprintf("%s:%d/sandboxes/%s/proxy/%lld", endpoint_host, listen_port, id,
                       (long long)port);
    }
    json_t *o = json_pack("{s:s}", "endpoint", ep);
    cleanup_free char *egress =
        port == APID_EGRESS_PORT && sb->address ? apid_egress_token(id) : NULL;
    if (egress) /* served by apid itself (h_egress), with its own key */
        json_object_set_new(o, "headers", json_pack("{s:s}", "OPENSANDBOX-EGRESS-AUTH", egress));
    else if (sb->token)
        json_object_set_new(o, "headers", json_pack("{s:s}", "X-EXECD-ACCESS-TOKEN", sb->token));
    apid_sandbox_free(sb);
    return reply_json(c, r, 200, o);
}

/* GET /sandboxes/{id}/logs?offset=N (sbx extension, used by `sbx logs`): the sandbox's own
 * output (its main process's stdout and stderr, which the monitor sends to monitor.log), from
 * byte N on, at most LOG_CHUNK bytes per reply; X-Sbx-Log-Offset is where the next read starts,
 * so `sbx logs -f` polls without re-reading. The file lives as long as the sandbox does. */
#define LOG_CHUNK (1u << 20)
static enum MHD_Result
h_logs(struct MHD_Connection *c, struct req *r, const char *id)
{
    sbx_error_t err = NULL;
    struct apid_sandbox *sb = NULL;
    if (apid_mgr_get(id, &sb, &err) < 0)
        return reply_err(c, r, &err);
    apid_sandbox_free(sb);
    int64_t off = 0;
    const char *o = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "offset");
    if (o && parse_int64(o, 0, INT64_MAX, &off) < 0)
        return reply_code(c, r, 400, E_INVALID_PARAMETER, "offset must be an integer >= 0");
    pthread_mutex_lock(&ctx->cfg_lock);
    cleanup_free char *dir = apid_sandboxes_dir(ctx->cfg);
    pthread_mutex_unlock(&ctx->cfg_lock);
    cleanup_free char *path = xasprintf("%s/%s/monitor.log", dir, id);
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st = {0};
    if (fd >= 0 && fstat(fd, &st) < 0)
        st.st_size = 0;
    if (off > st.st_size) /* the file was recreated (apid restart): start over */
        off = 0;
    size_t want = (size_t)(st.st_size - off) > LOG_CHUNK ? LOG_CHUNK : (size_t)(st.st_size - off);
    cleanup_free char *buf = xmalloc0(want + 1);
    ssize_t got = want && fd >= 0 ? pread(fd, buf, want, off) : 0;
    if (got < 0)
        got = 0;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer((size_t)got, buf, MHD_RESPMEM_MUST_COPY);
    char next[32];
    snprintf(next, sizeof(next), "%lld", (long long)(off + got));
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    MHD_add_response_header(resp, "X-Sbx-Log-Offset", next);
    return send_response(c, r, 200, resp);
}

static enum MHD_Result
h_patch(struct MHD_Connection *c, struct req *r, const char *id)
{
    sbx_error_t err = NULL;
    json_error_t jerr;
    json_t *patch = r->len ? json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (!json_is_object(patch)) {
        json_decref(patch);
        return reply_code(c, r, 400, E_INVALID_PARAMETER,
                          "body must be a JSON merge-patch object of string or null values");
    }
    struct apid_sandbox *sb = NULL;
    int rc = apid_mgr_patch_metadata(id, patch, &sb, &err);
    json_decref(patch);
    if (rc < 0)
        return reply_err(c, r, &err);
    json_t *o = apid_sandbox_json(sb, true);
    apid_sandbox_free(sb);
    return reply_json(c, r, 200, o);
}

static enum MHD_Result
h_renew(struct MHD_Connection *c, struct req *r, const char *id)
{
    sbx_error_t err = NULL;
    int64_t ms;
    struct apid_sandbox *sb = NULL;
    /* 404 before body errors: an unknown id is the more useful answer. */
    if (apid_mgr_get(id, &sb, &err) < 0)
        return reply_err(c, r, &err);
    apid_sandbox_free(sb);
    if (apid_parse_renew(r->body, r->len, apid_now_ms(), &ms, &err) < 0 ||
        apid_mgr_renew(id, ms, &err) < 0)
        return reply_err(c, r, &err);
    char ts[40];
    apid_format_time(ms, ts, sizeof(ts));
    return reply_json(c, r, 200, json_pack("{s:s}", "expiresAt", ts));
}

/* First call of a proxied request (headers only): open the upstream now so that a dead target
 * is answered before any upload is read. */
static enum MHD_Result
proxy_begin(struct MHD_Connection *c, struct req *r)
{
    /* From the raw URI: [/v1]/sandboxes/ID/proxy/PORT[/rest][?query] */
    const char *u = r->raw_uri ? r->raw_uri : r->path;
    if (!strncmp(u, "/v1/", 4))
        u += 3;
    char id[65];
    int port = 0, off = 0;
    if (sscanf(u, "/sandboxes/%64[^/]/proxy/%d%n", id, &port, &off) < 2 || port < 1 ||
        port > 65535 || (u[off] && u[off] != '/' && u[off] != '?'))
        return reply_code(c, r, 400, E_INVALID_PARAMETER,
                          "proxy path must be /sandboxes/{id}/proxy/{port 1..65535}[/path]");
    if (!id_is_valid(id))
        return reply_code(c, r, 404, E_NOT_FOUND, "sandbox not found");
    cleanup_free char *rest = u[off] == '/' ? xstrdup(u + off) : xasprintf("/%s", u + off);
    if (port == APID_EGRESS_PORT) {
        /* The sandbox's egress API is apid's (egress.c), never forwarded: the body is read as
         * for any API call and route() answers it. */
        r->egress = true;
        snprintf(r->egress_id, sizeof(r->egress_id), "%s", id);
        const char *p = rest;
        while (p[0] == '/' && p[1] == '/')
            p++;
        size_t n = strcspn(p, "?");
        r->egress_policy = (n == 7 || (n == 8 && p[7] == '/')) && !strncmp(p, "/policy", 7);
        return MHD_YES;
    }
    const char *code = NULL;
    char msg[512];
    int st = apid_proxy_open(c, id, port, rest, r->method, 0, &r->px, &code, msg, sizeof(msg));
    if (st)
        return reply_code(c, r, st, code, msg);
    return MHD_YES;
}

/* OpenHands' path mode, /<runtime_id>[/vscode|/work-N][/rest] (openhands.c): as proxy_begin,
 * with OpenHands' error shape, and 503 for a paused runtime, which its legacy client reads as
 * "paused, resume it". */
static enum MHD_Result
oh_proxy_begin(struct MHD_Connection *c, struct req *r, const char *id, int port, const char *rest)
{
    const char *code = NULL;
    char msg[512];
    int st = apid_proxy_open(c, id, port, rest, r->method, APID_PROXY_OPENHANDS, &r->px, &code, msg,
                             sizeof(msg));
    if (!st)
        return MHD_YES;
    if (st == 409)
        st = 503;
    apid_metrics_error(st, code);
    return reply_json(c, r, st, json_pack("{s:s, s:s}", "detail", msg, "code", code));
}

static enum MHD_Result
proxy_finish(struct MHD_Connection *c, struct req *r)
{
    int status = 502;
    char msg[512];
    struct MHD_Response *resp = apid_proxy_response(&r->px, &status, msg, sizeof(msg));
    if (!resp)
        return reply_code(c, r, status, "SANDBOX::UPSTREAM_UNAVAILABLE", msg);
    return send_response(c, r, status, resp);
}

/* Splits "/v1/sandboxes/ID/x/y" into at most 6 segments after the optional v1. */
/* sbx extensions: GET /v1/images (the store's images) and DELETE /v1/images/{ref or id}, the
 * reference taken whole from the path ("127.0.0.1:5000/team/app:v1" has slashes). */
static enum MHD_Result
h_images(struct MHD_Connection *c, struct req *r, const char *rest)
{
    struct sbx_store st;
    sbx_error_t err = NULL;
    bool have = sbx_store_open(ctx->cfg->images_dir, false, &st, NULL) == 0;
    if (*rest == '\0') {
        if (strcmp(r->method, "GET") != 0)
            return reply_code(c, r, 405, E_METHOD, "method not allowed");
        json_t *items = have ? sbx_store_list(&st) : json_array();
        if (have)
            sbx_store_close(&st);
        return reply_json(c, r, 200, json_pack("{s:o}", "items", items));
    }
    if (strcmp(r->method, "DELETE") != 0)
        return reply_code(c, r, 405, E_METHOD, "method not allowed");
    if (!have)
        return reply_code(c, r, 404, E_IMAGE_NOT_FOUND, "no image has been pulled");
    int lock = sbx_store_gc_lock(&st, LOCK_EX, &err);
    cleanup_strv char **untagged = NULL;
    int rc = lock < 0 ? -1 : sbx_store_remove(&st, rest, &untagged, &err);
    if (rc == 0)
        sbx_store_gc(&st, NULL);
    if (lock >= 0)
        close(lock);
    sbx_store_close(&st);
    if (rc == 0) {
        json_t *u = json_array();
        for (char **t = untagged; t && *t; t++)
            json_array_append_new(u, json_string(*t));
        return reply_json(c, r, 200, json_pack("{s:o}", "untagged", u));
    }
    cleanup_free char *msg = xstrdup(err ? err->msg : "failed");
    /* Here a missing object is the image named in the path, so the image's own 404. */
    bool missing = sbx_error_is(err, SBX_ERR_NOT_FOUND), busy = sbx_error_is(err, SBX_ERR_BUSY);
    sbx_error_release(&err);
    if (missing)
        return reply_code(c, r, 404, E_IMAGE_NOT_FOUND, msg);
    if (busy)
        return reply_code(c, r, 409, E_CONFLICT, msg);
    return reply_code(c, r, 500, E_UNKNOWN, msg);
}

/* OpenSandbox's egress API (egress-api.yaml) on /sandboxes/{id}/proxy/18080/policy, keyed by
 * the sandbox's own OPENSANDBOX-EGRESS-AUTH (the endpoint answer for port 18080 hands it out to
 * holders of the API key). The policy may only be changed from outside the sandbox: its code
 * can reach neither apid nor that key. */
static enum MHD_Result
h_egress(struct MHD_Connection *c, struct req *r)
{
    cleanup_free char *token = apid_egress_token(r->egress_id);
    const char *got = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "OPENSANDBOX-EGRESS-AUTH");
    if (!token || !got || !sbx_ct_equal(got, strlen(got), token, strlen(token)))
        return reply_code(c, r, 401, E_INVALID_KEY,
                          "the OPENSANDBOX-EGRESS-AUTH header is missing or not valid");
    if (!apid_egress_known(r->egress_id))
        return reply_code(c, r, 404, E_NOT_FOUND,
                          "sandbox not found, not running yet, or without networking");
    if (!r->egress_policy)
        return reply_code(c, r, 404, E_ROUTE,
                          "no such egress route (sbx serves /policy; no credential vault)");
    if (r->too_large)
        return reply_code(c, r, 413, E_TOO_LARGE, "request body too large");
    sbx_error_t err = NULL;
    json_t *out = NULL;
    int rc;
    if (!strcmp(r->method, "GET")) {
        rc = apid_egress_get(r->egress_id, &out, &err);
    } else if (!strcmp(r->method, "PATCH") || !strcmp(r->method, "DELETE")) {
        json_error_t jerr;
        json_t *body = r->len ? json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
        if (!body)
            return reply_code(c, r, 400, E_INVALID_PARAMETER, "body must be a JSON array");
        rc = !strcmp(r->method, "PATCH") ? apid_egress_patch(r->egress_id, body, &out, &err)
                                         : apid_egress_delete(r->egress_id, body, &out, &err);
        json_decref(body);
    } else {
        return reply_code(c, r, 405, E_METHOD, "method not allowed");
    }
    if (rc < 0)
        return reply_err(c, r, &err);
    return reply_json(c, r, 200, out);
}

/* 413 in the shape of the API the path belongs to: a JSON-RPC error for /mcp, {detail} for the
 * OpenHands routes, {code, message} for the rest. */
static enum MHD_Result
too_large(struct MHD_Connection *c, struct req *r)
{
    if (apid_mcp_is_route(r->path)) {
        cleanup_free char *m =
            xasprintf("{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,\"message\":"
                      "\"request body too large: the limit is %lld bytes (--max-body)\"}}",
                      (long long)ctx->cfg->max_body);
        return queue(c, r, 413, "application/json", m);
    }
    if (apid_oh_is_route(r->path))
        return reply_json(
            c, r, 413,
            json_pack("{s:s, s:s}", "detail", "request body too large", "code", E_TOO_LARGE));
    return reply_code(c, r, 413, E_TOO_LARGE, "request body too large");
}

/* MCP's streamable HTTP transport (mcp.c): JSON-RPC in, JSON-RPC out, errors in its shape. */
static enum MHD_Result
h_mcp(struct MHD_Connection *c, struct req *r)
{
    if (r->too_large)
        return too_large(c, r);
    struct apid_mcp_req q = {
        .method = r->method,
        .session = MHD_lookup_connection_value(c, MHD_HEADER_KIND, APID_MCP_SESSION_HEADER),
        .protocol = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "MCP-Protocol-Version"),
        .origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin"),
        .body = r->body,
        .len = r->len,
    };
    struct apid_mcp_reply a;
    apid_mcp_handle(&q, &a);
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        a.body ? strlen(a.body) : 0, (void *)(a.body ? a.body : ""), MHD_RESPMEM_MUST_COPY);
    if (a.body)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, a.ctype);
    if (a.session[0])
        MHD_add_response_header(resp, APID_MCP_SESSION_HEADER, a.session);
    if (a.allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, a.allow);
    enum MHD_Result ret = send_response(c, r, a.status, resp);
    apid_mcp_reply_free(&a);
    return ret;
}

/* sbx extension: named volumes. GET/POST /v1/volumes, GET/DELETE /v1/volumes/{name}. */
static enum MHD_Result
h_volumes(struct MHD_Connection *c, struct req *r, const char *name)
{
    const char *m = r->method;
    sbx_error_t err = NULL;
    json_t *o = NULL;
    if (*name == '\0') {
        if (!strcmp(m, "GET")) {
            if (apid_volume_list(&o, &err) < 0)
                return reply_err(c, r, &err);
            return reply_json(c, r, 200, o);
        }
        if (!strcmp(m, "POST")) {
            if (apid_volume_create(r->body, r->len, &o, &err) < 0)
                return reply_err(c, r, &err);
            return reply_json(c, r, 201, o);
        }
        return reply_code(c, r, 405, E_METHOD, "method not allowed");
    }
    if (strchr(name, '/'))
        return reply_code(c, r, 404, E_ROUTE, "no such route");
    if (!strcmp(m, "GET")) {
        if (apid_volume_get(name, &o, &err) < 0)
            return reply_err(c, r, &err);
        return reply_json(c, r, 200, o);
    }
    if (!strcmp(m, "DELETE")) {
        if (apid_volume_delete(name, &err) < 0)
            return reply_err(c, r, &err);
        return reply_empty(c, r, 204);
    }
    return reply_code(c, r, 405, E_METHOD, "method not allowed");
}

static int
split_path(char *path, char *seg[6])
{
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(path, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (n == 0 && strcmp(t, "v1") == 0 && seg[0] == NULL) {
            seg[0] = (char *)"";
            continue;
        }
        if (n >= 6)
            return -1;
        seg[n++] = t;
    }
    return n;
}

static enum MHD_Result
route(struct MHD_Connection *c, struct req *r)
{
    const char *m = r->method;
    cleanup_free char *path = xstrdup(r->path);
    char *seg[6] = {0};
    enum MHD_Result ret;
    int n = split_path(path, seg);
    sbx_error_t err = NULL;
#define IS(x) (strcmp(m, x) == 0)
#define SEG(i, s) (n > (i) && strcmp(seg[i], s) == 0)
    if (n == 1 && SEG(0, "health")) {
        if (!IS("GET") && !IS("HEAD"))
            return reply_code(c, r, 405, E_METHOD, "method not allowed");
        json_t *h = json_pack("{s:s}", "status", "healthy");
        apid_pool_health(h); /* pool_size, pools{} */
        json_object_set_new(h, "active_sessions", json_integer(apid_session_active(ctx->store)));
        return reply_json(c, r, 200, h);
    }
    /* Prometheus scrapers send no API key; like /health this exposes only counts. */
    if (n == 1 && SEG(0, "metrics")) {
        if (!IS("GET") && !IS("HEAD"))
            return reply_code(c, r, 405, E_METHOD, "method not allowed");
        cleanup_free char *txt = apid_metrics_render(ctx->store);
        return queue(c, r, 200, "text/plain; version=0.0.4; charset=utf-8", txt);
    }
    /* The proxy paths carry the agent's own auth, never the lifecycle key (§A.6). */
    if (r->px)
        return proxy_finish(c, r);
    if (r->egress)
        return h_egress(c, r);
    if (apid_oh_is_route(r->path)) { /* OpenHands runtime API (openhands.c): its own auth */
        json_t *o = NULL;
        int st = apid_oh_handle(c, m, r->path, r->body, r->len, r->too_large, &o);
        if (st >= 400)
            apid_metrics_error(st, json_string_value(json_object_get(o, "code")));
        return reply_json(c, r, st, o);
    }
    if (!authorized(c, r, &ret))
        return ret;
    if (apid_mcp_is_route(r->path))
        return h_mcp(c, r);
    if (r->too_large)
        return reply_code(c, r, 413, E_TOO_LARGE, "request body too large");

    if (apid_session_is_route(r->path)) { /* simple session API (session_api.c) */
        json_t *o = NULL;
        int st = apid_session_handle(c, m, r->path, r->body, r->len, &o);
        if (st >= 400)
            apid_metrics_error(st, json_string_value(json_object_get(o, "code")));
        return reply_json(c, r, st, o);
    }
    if (n == 2 && SEG(0, "metrics") && SEG(1, "events")) {
        if (!IS("POST"))
            return reply_code(c, r, 405, E_METHOD, "method not allowed");
        return reply_empty(c, r, 204);
    }
    if (n >= 1 && SEG(0, "snapshots"))
        return reply_code(c, r, 400, E_NOT_SUPPORTED, "snapshots are not supported");
    {
        const char *p = r->path;
        if (!strncmp(p, "/v1/", 4))
            p += 3;
        if (!strcmp(p, "/images") || !strncmp(p, "/images/", 8))
            return h_images(c, r, p[7] ? p + 8 : "");
        if (!strcmp(p, "/volumes") || !strncmp(p, "/volumes/", 9))
            return h_volumes(c, r, p[8] ? p + 9 : "");
    }
    if (!SEG(0, "sandboxes") || n < 1)
        return reply_code(c, r, 404, E_ROUTE, "no such route");
    if (n == 1) {
        if (IS("POST"))
            return h_create(c, r);
        if (IS("GET"))
            return h_list(c, r);
        return reply_code(c, r, 405, E_METHOD, "method not allowed");
    }
    const char *id = seg[1];
    if (!id_is_valid(id))
        return reply_code(c, r, 404, E_NOT_FOUND, "sandbox not found");
    if (n == 2) {
        if (IS("GET"))
            return h_get(c, r, id);
        if (IS("DELETE")) {
            if (apid_mgr_delete(id, "USER_DELETE", &err) < 0)
                return reply_err(c, r, &err);
            return reply_empty(c, r, 204);
        }
        return reply_code(c, r, 405, E_METHOD, "method not allowed");
    }
    if (n == 3 && (SEG(2, "pause") || SEG(2, "resume"))) {
        if (!IS("POST"))
            return reply_code(c, r, 405, E_METHOD, "method not allowed");
        int rc = SEG(2, "pause") ? apid_mgr_pause(id, &err) : apid_mgr_resume(id, &err);
        if (rc < 0)
            return reply_err(c, r, &err);
        return reply_empty(c, r, 202);
    }
    if (n == 3 && SEG(2, "renew-expiration")) {
        if (!IS("POST"))
            return reply_code(c, r, 405, E_METHOD, "method not allowed");
        return h_renew(c, r, id);
    }
    if (n == 3 && SEG(2, "logs")) {
        if (!IS("GET"))
            return reply_code(c, r, 405, E_METHOD, "method not allowed");
        return h_logs(c, r, id);
    }
    if (n == 3 && SEG(2, "metadata")) {
        if (!IS("PATCH"))
            return reply_code(c, r, 405, E_METHOD, "method not allowed");
        return h_patch(c, r, id);
    }
    if (n == 4 && SEG(2, "endpoints")) {
        if (!IS("GET"))
            return reply_code(c, r, 405, E_METHOD, "method not allowed");
        return h_endpoint(c, r, id, seg[3]);
    }
    if (n == 3 && SEG(2, "snapshots"))
        return reply_code(c, r, 400, E_NOT_SUPPORTED, "snapshots are not supported");
    return reply_code(c, r, 404, E_ROUTE, "no such route");
#undef IS
#undef SEG
}

static bool
rid_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7e)
            return false;
    return true;
}

static bool
is_proxy_path(const char *url)
{
    if (!strncmp(url, "/v1/", 4))
        url += 3;
    if (strncmp(url, "/sandboxes/", 11))
        return false;
    const char *s = strchr(url + 11, '/');
    return s && !strncmp(s, "/proxy/", 7);
}

static enum MHD_Result
count_framing(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    (void)value;
    if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) ||
        !strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING))
        ++*(int *)cls;
    return MHD_YES;
}

/* MHD calls this first with the URI as received (query included); its result becomes the
 * request's con_cls. */
static void *
on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    struct req *r = xmalloc0(sizeof(*r));
    clock_gettime(CLOCK_MONOTONIC, &r->start);
    r->raw_uri = xstrdup(uri ? uri : "/");
    return r;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
           const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    struct req *r = *con_cls;
    if (!r || !r->started) {
        if (!r) {
            r = xmalloc0(sizeof(*r));
            clock_gettime(CLOCK_MONOTONIC, &r->start);
        }
        r->started = true;
        r->path = xstrdup(url);
        r->method = xstrdup(method);
        const char *rid = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-ID");
        if (rid_ok(rid))
            snprintf(r->rid, sizeof(r->rid), "%s", rid);
        else
            apid_new_id(r->rid);
        *con_cls = r;
        pthread_mutex_lock(&inflight_lock);
        inflight++;
        pthread_mutex_unlock(&inflight_lock);
        if (apid_uri_has_nul(r->raw_uri))
            return reply_code(c, r, 400, E_INVALID_PARAMETER,
                              "NUL byte (%00) in the request target");
        /* Two framings (Content-Length twice, or with Transfer-Encoding) are how requests are
         * smuggled past one parser to another; libmicrohttpd takes one, the proxied agent might
         * take the other. */
        int framing = 0;
        MHD_get_connection_values(c, MHD_HEADER_KIND, count_framing, &framing);
        if (framing > 1)
            return reply_code(c, r, 400, E_INVALID_PARAMETER,
                              "more than one Content-Length or Transfer-Encoding header");
        if (is_proxy_path(url))
            return proxy_begin(c, r);
        char oh_id[65];
        int oh_port;
        cleanup_free char *oh_rest = NULL;
        int oh = apid_oh_proxy_target(r->raw_uri ? r->raw_uri : url, oh_id, &oh_port, &oh_rest);
        if (oh == 1)
            return oh_proxy_begin(c, r, oh_id, oh_port, oh_rest);
        if (oh < 0)
            return reply_json(
                c, r, 404,
                json_pack("{s:s, s:s}", "detail", "runtime not found", "code", E_NOT_FOUND));
        /* A declared body over --max-body is refused before any of it is read: otherwise the
         * connection (and its thread) stays busy while the client sends bytes that are thrown
         * away. libmicrohttpd closes the connection after this reply. */
        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        int64_t declared;
        if (cl && parse_int64(cl, 0, INT64_MAX, &declared) == 0 && declared > ctx->cfg->max_body)
            return too_large(c, r);
        return MHD_YES;
    }
    if (r->px && *upload_size) {
        /* Streamed through, never held: uploads through the proxy have no size limit here. */
        apid_proxy_body(r->px, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!r->too_large && r->len + *upload_size <= (size_t)ctx->cfg->max_body) {
            r->body = xrealloc(r->body, r->len + *upload_size + 1);
            memcpy(r->body + r->len, upload, *upload_size);
            r->len += *upload_size;
            r->body[r->len] = '\0';
        } else {
            /* A chunked body (no declared length) over the limit: libmicrohttpd can answer only
             * before the body or after all of it, and reading an endless body would hold the
             * connection for ever. Close it (logged by MHD as an application error). */
            return MHD_NO;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    return route(c, r);
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    struct req *r = *con_cls;
    if (!r)
        return;
    if (!r->started) { /* the URI callback ran, the request never did */
        free(r->raw_uri);
        free(r);
        *con_cls = NULL;
        return;
    }
    apid_log_access(r->method, r->path, r->status ? r->status : 0, elapsed_ms(&r->start), r->rid);
    apid_proxy_free(r->px);
    free(r->raw_uri);
    free(r->body);
    free(r->path);
    free(r->method);
    free(r);
    *con_cls = NULL;
    pthread_mutex_lock(&inflight_lock);
    inflight--;
    pthread_cond_broadcast(&inflight_cond);
    pthread_mutex_unlock(&inflight_lock);
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    size_t n = strlen(buf);
    while (n && buf[n - 1] == '\n')
        buf[--n] = '\0';
    log_warn("http: %s", buf);
}

int
apid_http_start(struct apid_ctx *c, sbx_error_t *err)
{
    ctx = c;
    apid_proxy_setup(c->store);
    const char *listen = c->cfg->listen;
    const char *colon = strrchr(listen, ':');
    if (!colon)
        return sbx_make_error(err, 0, "--listen `%s`: expected HOST:PORT", listen);
    cleanup_free char *host = strndup(listen, (size_t)(colon - listen));
    int64_t port;
    if (parse_int64(colon + 1, 0, 65535, &port) < 0)
        return sbx_make_error(err, 0, "--listen `%s`: bad port", listen);
    struct sockaddr_storage ss = {0};
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    /* poll(), not select(): apid holds an fd per sandbox (watchers, sockets), so with a
     * thousand sandboxes new connections get descriptors above FD_SETSIZE. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_POLL | MHD_USE_ERROR_LOG | MHD_USE_ITC | MHD_ALLOW_UPGRADE;
    if (!*host || inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        flags |= MHD_USE_IPv6;
    } else {
        return sbx_make_error(err, 0, "--listen `%s`: host must be an IP address", listen);
    }
    daemon_h = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, NULL,
                                MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
                                (struct sockaddr *)&ss, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
                                NULL, MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL,
                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                                MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000, MHD_OPTION_END);
    if (!daemon_h)
        return sbx_make_error(err, errno, "cannot listen on %s", listen);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon_h, MHD_DAEMON_INFO_BIND_PORT);
    listen_port = info ? info->port : (int)port;
    const char *ph = c->cfg->public_host;
    if (ph && *ph)
        endpoint_host = xstrdup(ph);
    else if (!*host || !strcmp(host, "0.0.0.0") || !strcmp(host, "::"))
        endpoint_host = xstrdup("127.0.0.1");
    else if (strchr(host, ':'))
        endpoint_host = xasprintf("[%s]", host);
    else
        endpoint_host = xstrdup(host);
    log_info("listening on %s (port %d)", listen, listen_port);
    return 0;
}

char *
apid_http_base_url(void)
{
    const char *pu = ctx ? ctx->cfg->public_url : NULL;
    if (pu && *pu)
        return xstrdup(pu);
    return xasprintf("http://%s:%d", endpoint_host ? endpoint_host : "127.0.0.1", listen_port);
}

void
apid_http_stop(void)
{
    if (!daemon_h)
        return;
    /* Stop accepting, let in-flight requests finish (bounded), then close keep-alive idlers. */
    MHD_quiesce_daemon(daemon_h);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 30;
    pthread_mutex_lock(&inflight_lock);
    while (inflight > 0 && pthread_cond_timedwait(&inflight_cond, &inflight_lock, &dl) == 0)
        ;
    pthread_mutex_unlock(&inflight_lock);
    MHD_stop_daemon(daemon_h);
    daemon_h = NULL;
    free(endpoint_host);
    endpoint_host = NULL;
}
