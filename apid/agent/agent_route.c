/* The agent's routes (contract Part B) and what happens between a request's head and its
 * handler: the access token, the route, the body's limit and where the body goes. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "agent_srv.h"

static void
h_ping(struct ag_conn *c, struct ag_req *r)
{
    ag_reply_empty(c);
}

static void
h_code(struct ag_conn *c, struct ag_req *r)
{
    ag_reply_err(c, 501, "NOT_SUPPORTED", "the code interpreter is not available in sbx-agent");
}

/* A path's "*" segment is an id (non-empty, no '/', shorter than the caller's buffer); a final
 * "**" matches anything below the path before it. Without either, trailing slashes of the
 * request's path do not count. */
static const struct {
    const char *method; /* NULL: any */
    const char *path;
    ag_handler handler;
    int body;
} routes[] = {
    {"GET", "/ping", h_ping, B_DISCARD},
    {"POST", "/command", ag_h_command, B_BUFFER},
    {"DELETE", "/command", ag_h_command_delete, B_DISCARD},
    {"GET", "/command/status/*", ag_h_command_status, B_DISCARD},
    {"GET", "/command/*/logs", ag_h_command_logs, B_DISCARD},
    {"POST", "/session", ag_h_session_new, B_BUFFER},
    {"POST", "/session/*/run", ag_h_session_run, B_BUFFER},
    {"DELETE", "/session/*", ag_h_session_delete, B_DISCARD},
    {"GET", "/files/info", ag_h_files_info, B_DISCARD},
    {"DELETE", "/files", ag_h_files_delete, B_DISCARD},
    {"POST", "/files/mv", ag_h_files_mv, B_BUFFER},
    {"POST", "/files/permissions", ag_h_files_perm, B_BUFFER},
    {"POST", "/files/replace", ag_h_files_replace, B_BUFFER},
    {"GET", "/files/search", ag_h_files_search, B_DISCARD},
    {"POST", "/files/upload", ag_h_files_upload, B_UPLOAD},
    {"GET", "/files/download", ag_h_files_download, B_DISCARD},
    {"GET", "/directories/list", ag_h_dir_list, B_DISCARD},
    {"POST", "/directories", ag_h_dir_mkdir, B_BUFFER},
    {"DELETE", "/directories", ag_h_dir_delete, B_DISCARD},
    {"GET", "/metrics", ag_h_metrics, B_DISCARD},
    {"GET", "/metrics/watch", ag_h_metrics_watch, B_DISCARD},
    {"POST", "/entrypoint", ag_h_entrypoint, B_BUFFER},
    {"GET", "/pty", ag_h_pty, B_DISCARD},
    {NULL, "/code", h_code, B_DISCARD},
    {NULL, "/code/**", h_code, B_DISCARD},
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

static bool
path_match(const char *pat, const char *p, char *arg, size_t argsz)
{
    const char *star = strchr(pat, '*');
    size_t plen = strlen(p);
    if (star == NULL) {
        while (plen > 1 && p[plen - 1] == '/')
            plen--;
        return strlen(pat) == plen && strncmp(pat, p, plen) == 0;
    }
    size_t pre = (size_t)(star - pat);
    if (strncmp(pat, p, pre) != 0)
        return false;
    if (!strcmp(star, "**"))
        return true;
    const char *id = p + pre, *end = strchrnul(id, '/');
    size_t idlen = (size_t)(end - id);
    if (idlen == 0 || idlen >= argsz || strcmp(end, star + 1) != 0)
        return false;
    memcpy(arg, id, idlen);
    arg[idlen] = 0;
    return true;
}

int
ag_route(const char *m, const char *p, char *arg, size_t argsz)
{
    bool path_known = false;
    for (size_t i = 0; i < NROUTES; i++) {
        if (!path_match(routes[i].path, p, arg, argsz))
            continue;
        path_known = true;
        if (routes[i].method == NULL || !strcmp(routes[i].method, m) ||
            (routes[i].handler == h_ping && !strcmp(m, "HEAD")))
            return (int)i + 1;
    }
    return path_known ? -405 : -404;
}

void
ag_on_head(struct ag_conn *c)
{
    struct ag_req *r = &c->req;
    const struct ag_config *cfg = ag_srv.cfg;
    bool has_body = r->chunked || r->clen > 0;
    if (cfg->token &&
        (r->token == NULL || !sbx_ct_equal(r->token, strlen(r->token), cfg->token, cfg->toklen))) {
        if (has_body)
            c->close_after = true;
        ag_reply_err(c, 401, "UNAUTHORIZED", "invalid or missing header X-EXECD-ACCESS-TOKEN");
        return;
    }
    int rt = ag_route(r->method, r->path, c->arg, sizeof(c->arg));
    if (rt < 0 || routes[rt - 1].handler == h_code) {
        if (has_body)
            c->close_after = true;
        if (rt == -405)
            ag_reply_err(c, 405, "NOT_SUPPORTED", "method %s not allowed on %s", r->method,
                         r->path);
        else if (rt == -404)
            ag_reply_err(c, 404, "NOT_FOUND", "no route for %s %s", r->method, r->path);
        else
            h_code(c, r);
        return;
    }
    c->route = rt;
    int bm = routes[rt - 1].body;
    /* JSON and discarded bodies are always bounded; uploads by --max-body (0: unlimited). */
    uint64_t limit = cfg->max_body;
    if (bm != B_UPLOAD && (limit == 0 || limit > AG_JSON_BODY_MAX))
        limit = AG_JSON_BODY_MAX;
    c->blimit = limit;
    if (limit && r->clen > 0 && (uint64_t)r->clen > limit) {
        c->close_after = true;
        ag_reply_err(c, 413, "REQUEST_TOO_LARGE",
                     "request body of %lld bytes exceeds the limit of %llu", (long long)r->clen,
                     (unsigned long long)limit);
        return;
    }
    if (bm == B_UPLOAD) {
        c->up = ag_upload_new(r->content_type);
        if (c->up == NULL) {
            c->close_after = true;
            ag_reply_err(c, 500, "RUNTIME_ERROR", "out of memory");
            return;
        }
        if (ag_upload_feed(c->up, "", 0) < 0) { /* not multipart: fail before reading the body */
            const char *code, *msg;
            int st = ag_upload_error(c->up, &code, &msg);
            c->close_after = true;
            ag_reply_err(c, st, code, "%s", msg);
            return;
        }
    }
    c->bmode = has_body ? bm : B_NONE;
    c->btotal = 0;
    c->bleft = r->clen > 0 ? (uint64_t)r->clen : 0;
    memset(&c->ch, 0, sizeof(c->ch));
    if (has_body && r->expect && !strcasecmp(r->expect, "100-continue"))
        ag_buf_puts(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
    c->st = S_BODY;
}

void
ag_dispatch(struct ag_conn *c)
{
    c->st = S_RESP;
    if (c->route > 0 && (size_t)c->route <= NROUTES)
        routes[c->route - 1].handler(c, &c->req);
    else
        ag_reply_err(c, 500, "UNKNOWN", "unrouted request");
}
