/* Simple session API (see session_api.h). Commands run through the agent's POST /command as
 * the sandbox user (the agent's --user, uid 1000) in /workspace, with the agent enforcing the
 * timeout (SIGKILL to the process group); stdout and stderr lines are merged in the order the
 * agent read them. Errors are the lifecycle API's {code,message} with the same codes. */
#include "session_api.h"
#include "agent_client.h"
#include "pool.h"

#include <microhttpd.h>

#define WORKSPACE "/workspace"
#define DEFAULT_CMD_TIMEOUT_S 60
#define MAX_CMD_TIMEOUT_S 86400
#define MAX_BATCH 256
#define MAX_STREAM (8u << 20) /* raw event stream kept per command; beyond it output is cut */

static struct apid_ctx *ctx;

void
apid_session_init(struct apid_ctx *c)
{
    ctx = c;
}

static const char *const routes[] = {"create_session", "execute", "execute_batch", "upload_file",
                                     "cleanup"};

static const char *
route_name(const char *path)
{
    if (strncmp(path, "/v1/", 4) == 0)
        path += 3;
    if (*path != '/')
        return NULL;
    path++;
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
        size_t n = strlen(routes[i]);
        if (strncmp(path, routes[i], n) == 0 && (path[n] == '\0' || !strcmp(path + n, "/")))
            return routes[i];
    }
    return NULL;
}

bool
apid_session_is_route(const char *path)
{
    return route_name(path) != NULL;
}

static int
fail_reply(sbx_error_t *err, json_t **reply)
{
    int status;
    const char *code, *msg;
    apid_error_http(*err, &status, &code, &msg);
    if (status >= 500)
        log_err("session API: %s", (*err)->msg);
    *reply = json_pack("{s:s, s:s}", "code", code, "message", msg);
    sbx_error_release(err);
    return status;
}

static int
bad(json_t **reply, const char *msg)
{
    *reply = json_pack("{s:s, s:s}", "code", E_INVALID_PARAMETER, "message", msg);
    return 400;
}

static json_t *
parse_object(const char *body, size_t len, bool allow_empty)
{
    if (len == 0)
        return allow_empty ? json_object() : NULL;
    json_error_t jerr;
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Loads a live session and pushes its idle expiry forward. */
static int
session_get(const char *sid, struct apid_sandbox **out, sbx_error_t *err)
{
    if (!sid || !id_is_valid(sid))
        return apid_fail(err, E_NOT_FOUND, "session not found");
    struct apid_sandbox *sb = NULL;
    sbx_error_t e = NULL;
    if (apid_mgr_get(sid, &sb, &e) < 0) {
        sbx_error_release(&e);
        return apid_fail(err, E_NOT_FOUND, "session `%s` not found", sid);
    }
    const char *mark = json_string_value(json_object_get(sb->metadata, APID_SESSION_LABEL));
    if (!mark || strcmp(mark, "true")) {
        apid_sandbox_free(sb);
        return apid_fail(err, E_NOT_FOUND, "session `%s` not found", sid);
    }
    if (sb->state != ST_RUNNING) {
        int r =
            apid_fail(err, E_NOT_RUNNING, "session `%s` is %s", sid, apid_state_name(sb->state));
        apid_sandbox_free(sb);
        return r;
    }
    pthread_mutex_lock(&ctx->cfg_lock);
    int64_t want = apid_now_ms() + ctx->cfg->session_idle_timeout * 1000;
    pthread_mutex_unlock(&ctx->cfg_lock);
    /* One store write per second at most, not one per command. */
    if (sb->expires_ms && want - sb->expires_ms > 1000)
        apid_mgr_renew(sid, want, NULL);
    *out = sb;
    return 0;
}

/* ---------- command runs ---------- */

static json_t *
parse_events(const char *body, size_t len, bool truncated, int64_t timeout_ms, int64_t elapsed,
             char **cmd_id)
{
    size_t cap = len + 1, olen = 0;
    char *out = xmalloc0(cap);
    int exit_code = -1;
    bool timed_out = false, done = false;
    cleanup_free char *copy = xmalloc0(len + 1);
    memcpy(copy, body, len);
    char *save = NULL;
    for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (strncmp(l, "data:", 5) == 0)
            l += l[5] == ' ' ? 6 : 5;
        if (*l != '{')
            continue;
        json_t *ev = json_loads(l, 0, NULL);
        const char *type = json_string_value(json_object_get(ev, "type"));
        const char *text = json_string_value(json_object_get(ev, "text"));
        if (!type) {
        } else if ((!strcmp(type, "stdout") || !strcmp(type, "stderr")) && text) {
            /* One event per line without its newline; an empty line arrives as "\n". */
            size_t n = strlen(text);
            bool nl_only = !strcmp(text, "\n");
            if (olen + n + 2 > cap) {
                cap = (olen + n + 2) * 2;
                out = xrealloc(out, cap);
            }
            if (!nl_only) {
                memcpy(out + olen, text, n);
                olen += n;
            }
            out[olen++] = '\n';
            out[olen] = '\0';
        } else if (!strcmp(type, "init") && text && cmd_id && !*cmd_id) {
            *cmd_id = xstrdup(text);
        } else if (!strcmp(type, "execution_complete")) {
            exit_code = 0;
            done = true;
        } else if (!strcmp(type, "error")) {
            json_t *e = json_object_get(ev, "error");
            const char *ev_val = json_string_value(json_object_get(e, "evalue"));
            const char *tb = json_string_value(json_array_get(json_object_get(e, "traceback"), 0));
            int64_t v;
            if (ev_val && parse_int64(ev_val, INT32_MIN, INT32_MAX, &v) == 0)
                exit_code = (int)v;
            else
                exit_code = 127; /* spawn failure: the shell convention for "cannot run" */
            if (tb && strncmp(tb, "timeout", 7) == 0)
                timed_out = true;
            if (ev_val && exit_code == 127 && !(tb && *tb)) {
                size_t n = strlen(ev_val);
                if (olen + n + 2 > cap) {
                    cap = (olen + n + 2) * 2;
                    out = xrealloc(out, cap);
                }
                memcpy(out + olen, ev_val, n);
                olen += n;
                out[olen++] = '\n';
                out[olen] = '\0';
            }
            done = true;
        }
        json_decref(ev);
    }
    if (!done && timeout_ms > 0 && elapsed >= timeout_ms)
        timed_out = true;
    json_t *o = json_pack("{s:s%, s:i, s:b, s:I, s:b}", "output", out, olen, "exit_code", exit_code,
                          "timed_out", timed_out, "duration_ms", (json_int_t)elapsed, "truncated",
                          truncated);
    free(out);
    return o;
}

/* Runs one command; returns the result object or sets err (agent unreachable and the like). */
static json_t *
run_command(const struct apid_sandbox *sb, const char *command, int64_t timeout_s, sbx_error_t *err)
{
    /* Not the agent's cwd field: a sandbox labelled as a session through the lifecycle API has
     * no /workspace, and its commands then start in the agent's default directory. */
    cleanup_free char *line = xasprintf("cd " WORKSPACE " 2>/dev/null; %s", command);
    json_t *req =
        json_pack("{s:s, s:I}", "command", line, "timeout", (json_int_t)(timeout_s * 1000));
    cleanup_free char *txt = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    struct apid_agent_target t;
    apid_agent_target_of(sb, &t);
    struct apid_http_resp resp;
    int64_t t0 = apid_now_ms();
    /* The agent enforces the timeout; the extra slack only bounds a hung agent. */
    int r = apid_agent_request(&t, "POST", "/command", "application/json", txt, strlen(txt),
                               (int)(timeout_s * 1000 + 10000), MAX_STREAM, &resp, err);
    if (r < 0)
        return NULL;
    int64_t elapsed = apid_now_ms() - t0;
    json_t *o = NULL;
    if (resp.status != 200) {
        cleanup_free char *m = apid_agent_message(&resp);
        if (resp.status == 400)
            apid_fail(err, E_INVALID_PARAMETER, "%s", m ? m : "the agent rejected the command");
        else
            apid_fail(err, E_UNAVAILABLE, "the sandbox agent answered %d: %s", resp.status,
                      m ? m : "");
    } else {
        cleanup_free char *cmd_id = NULL;
        o = parse_events(resp.body, resp.len, resp.truncated, timeout_s * 1000, elapsed, &cmd_id);
        if (resp.truncated && cmd_id) {
            /* We stopped reading: stop the command too rather than let it run on unseen. */
            cleanup_free char *p = xasprintf("/command?id=%s", cmd_id);
            apid_agent_delete(&t, p);
        }
    }
    apid_http_resp_free(&resp);
    return o;
}

static int
parse_timeout(json_t *v, int64_t *out)
{
    *out = DEFAULT_CMD_TIMEOUT_S;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v))
        return -1;
    double d = json_number_value(v);
    if (!(d > 0) || d > MAX_CMD_TIMEOUT_S)
        return -1;
    *out = (int64_t)(d + 0.999); /* fractional seconds round up: never shorter than asked */
    return 0;
}

static bool
all_commands(json_t *arr)
{
    size_t i;
    json_t *x;
    json_array_foreach (arr, i, x)
        if (!json_is_string(x) || !*json_string_value(x))
            return false;
    return true;
}

static int
h_execute(const char *body, size_t len, bool batch, json_t **reply)
{
    sbx_error_t err = NULL;
    json_t *o = parse_object(body, len, false);
    if (!o)
        return bad(reply, "body must be a JSON object");
    int status = 200;
    json_t *sidv = json_object_get(o, "session_id");
    json_t *cmds = json_object_get(o, batch ? "commands" : "command");
    int64_t timeout;
    struct apid_sandbox *sb = NULL;
    if (!json_is_string(sidv)) {
        status = bad(reply, "session_id must be a string");
    } else if (batch ? !json_is_array(cmds) || json_array_size(cmds) == 0 ||
                           json_array_size(cmds) > MAX_BATCH
                     : !json_is_string(cmds) || !*json_string_value(cmds)) {
        status = bad(reply, batch ? "commands must be a non-empty array of strings (at most 256)"
                                  : "command must be a non-empty string");
    } else if (parse_timeout(json_object_get(o, "timeout"), &timeout) < 0) {
        status = bad(reply, "timeout must be a number of seconds in (0, 86400]");
    } else if (batch && !all_commands(cmds)) {
        status = bad(reply, "commands must be a non-empty array of non-empty strings");
    } else if (session_get(json_string_value(sidv), &sb, &err) < 0) {
        status = fail_reply(&err, reply);
    } else if (!batch) {
        json_t *res = run_command(sb, json_string_value(cmds), timeout, &err);
        if (!res) {
            status = fail_reply(&err, reply);
        } else {
            json_object_set_new(res, "session_id", json_string(sb->id));
            *reply = res;
        }
    } else {
        /* Results in order; a failing command does not stop the batch unless stop_on_error. */
        bool stop = json_is_true(json_object_get(o, "stop_on_error"));
        json_t *arr = json_array();
        size_t i;
        json_t *x;
        json_array_foreach (cmds, i, x) {
            json_t *res = run_command(sb, json_string_value(x), timeout, &err);
            if (!res)
                break;
            json_object_set_new(res, "command", json_incref(x));
            int code = (int)json_integer_value(json_object_get(res, "exit_code"));
            json_array_append_new(arr, res);
            if (stop && code != 0)
                break;
        }
        if (err) {
            json_decref(arr);
            status = fail_reply(&err, reply);
        } else {
            *reply = arr;
        }
    }
    apid_sandbox_free(sb);
    json_decref(o);
    return status;
}

/* ---------- create / cleanup ---------- */

static int
h_create(const char *body, size_t len, json_t **reply)
{
    sbx_error_t err = NULL;
    json_t *o = parse_object(body, len, true);
    if (!o)
        return bad(reply, "body must be empty or a JSON object");
    const char *k;
    json_t *v;
    json_object_foreach (o, k, v) {
        if (strcmp(k, "image") && strcmp(k, "env") && strcmp(k, "metadata")) {
            json_decref(o);
            return bad(reply, "create_session accepts only image, env and metadata");
        }
    }
    json_t *img = json_object_get(o, "image");
    /* {"image":{}} or {"image":{"uri":5}} is a malformed image, not "the default image". */
    if (json_is_object(img))
        img = json_object_get(img, "uri") ? json_object_get(img, "uri") : json_null();
    json_t *env = json_object_get(o, "env"), *md = json_object_get(o, "metadata");
    /* Reuse the lifecycle API's validation: build the equivalent create body. */
    pthread_mutex_lock(&ctx->cfg_lock);
    json_t *cb =
        json_pack("{s:{s:s}, s:[s], s:I}", "image", "uri",
                  json_is_string(img) ? json_string_value(img) : ctx->cfg->session_image,
                  "entrypoint", "true", "timeout", (json_int_t)ctx->cfg->session_idle_timeout);
    pthread_mutex_unlock(&ctx->cfg_lock);
    if ((img && !json_is_string(img))) {
        json_decref(cb);
        json_decref(o);
        return bad(reply, "image must be a string or {\"uri\": string}");
    }
    if (env)
        json_object_set(cb, "env", env);
    json_t *mdc = json_is_object(md) ? json_deep_copy(md) : md ? json_incref(md) : json_object();
    if (json_is_object(mdc))
        json_object_set_new(mdc, APID_SESSION_LABEL, json_string("true"));
    json_object_set_new(cb, "metadata", mdc);
    cleanup_free char *cbs = json_dumps(cb, JSON_COMPACT);
    json_decref(cb);
    json_decref(o);
    struct apid_create_req cr;
    pthread_mutex_lock(&ctx->cfg_lock);
    /* The idle timeout may be below the lifecycle API's minimum timeout: checked here instead. */
    int64_t saved_min = ctx->cfg->min_timeout;
    ctx->cfg->min_timeout = 1;
    int64_t saved_max = ctx->cfg->max_timeout;
    ctx->cfg->max_timeout = 0;
    int rc = apid_parse_create(cbs, strlen(cbs), ctx->cfg, &cr, &err);
    ctx->cfg->min_timeout = saved_min;
    ctx->cfg->max_timeout = saved_max;
    pthread_mutex_unlock(&ctx->cfg_lock);
    if (rc < 0)
        return fail_reply(&err, reply);
    /* A session has no entrypoint: the agent alone keeps it alive. */
    json_array_clear(cr.entrypoint);
    struct apid_sandbox *sb = NULL;
    bool pooled = false;
    rc = apid_pool_create(&cr, &pooled, &sb, &err);
    apid_create_req_free(&cr);
    if (rc < 0)
        return fail_reply(&err, reply);
    struct apid_agent_target t;
    apid_agent_target_of(sb, &t);
    struct apid_http_resp resp = {0};
    const char *mk = "{\"" WORKSPACE "\":{\"mode\":755}}";
    if ((pooled || apid_agent_wait_ready(&t, 10000, &err) == 0) &&
        apid_agent_request(&t, "POST", "/directories", "application/json", mk, strlen(mk), 5000,
                           4096, &resp, &err) == 0 &&
        resp.status != 200)
        apid_fail(&err, E_START_FAILED, "creating %s: agent answered %d", WORKSPACE, resp.status);
    apid_http_resp_free(&resp);
    if (err) {
        /* Never hand out a half-ready session. */
        sbx_error_t e2 = NULL;
        if (apid_mgr_delete(sb->id, "SESSION_START_FAILED", &e2) < 0)
            sbx_error_release(&e2);
        apid_sandbox_free(sb);
        return fail_reply(&err, reply);
    }
    *reply = json_pack("{s:s, s:s, s:b}", "session_id", sb->id, "workspace", WORKSPACE, "pooled",
                       pooled);
    log_info("session %s created (%s)", sb->id, pooled ? "pool" : "cold");
    apid_sandbox_free(sb);
    return 200;
}

static int
h_cleanup(const char *body, size_t len, json_t **reply)
{
    sbx_error_t err = NULL;
    json_t *o = parse_object(body, len, false);
    json_t *sidv = json_object_get(o, "session_id");
    int status = 200;
    struct apid_sandbox *sb = NULL;
    if (!json_is_string(sidv)) {
        status = bad(reply, "body must be {\"session_id\": string}");
    } else if (session_get(json_string_value(sidv), &sb, &err) < 0 &&
               !sbx_error_is(err, E_NOT_RUNNING)) {
        status = fail_reply(&err, reply);
    } else {
        /* A session whose sandbox already ended can still be cleaned up. */
        sbx_error_release(&err);
        if (apid_mgr_delete(json_string_value(sidv), "SESSION_CLEANUP", &err) < 0)
            status = fail_reply(&err, reply);
        else
            *reply =
                json_pack("{s:s, s:s}", "session_id", json_string_value(sidv), "status", "cleaned");
    }
    apid_sandbox_free(sb);
    json_decref(o);
    return status;
}

/* ---------- upload ---------- */

struct upload {
    char *sid, *dest, *filename;
    char *data;
    size_t len;
    bool have_file;
};

static enum MHD_Result
upload_field(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
             const char *ctype, const char *enc, const char *data, uint64_t off, size_t size)
{
    struct upload *u = cls;
    char **str = NULL;
    if (!strcmp(key, "file")) {
        if (filename && !u->filename)
            u->filename = xstrdup(filename);
        u->have_file = true;
        u->data = xrealloc(u->data, u->len + size + 1);
        memcpy(u->data + u->len, data, size);
        u->len += size;
        return MHD_YES;
    }
    if (!strcmp(key, "session_id"))
        str = &u->sid;
    else if (!strcmp(key, "destination") || !strcmp(key, "path") || !strcmp(key, "dest_path") ||
             !strcmp(key, "file_path"))
        str = &u->dest;
    if (!str)
        return MHD_YES; /* unknown fields are ignored, as form posts often carry extras */
    size_t have = *str ? strlen(*str) : 0;
    if (have + size > 4096)
        return MHD_NO;
    *str = xrealloc(*str, have + size + 1);
    memcpy(*str + have, data, size);
    (*str)[have + size] = '\0';
    return MHD_YES;
}

static int
h_upload(struct MHD_Connection *conn, const char *body, size_t len, json_t **reply)
{
    sbx_error_t err = NULL;
    struct upload u = {0};
    int status = 200;
    struct MHD_PostProcessor *pp =
        conn ? MHD_create_post_processor(conn, 65536, upload_field, &u) : NULL;
    bool parsed = pp && MHD_post_process(pp, body, len) == MHD_YES;
    if (pp && MHD_destroy_post_processor(pp) != MHD_YES)
        parsed = false;
    struct apid_sandbox *sb = NULL;
    if (!parsed) {
        status = bad(reply, "body must be multipart/form-data with session_id, file and "
                            "destination");
    } else if (!u.sid || !u.have_file) {
        status = bad(reply, "multipart fields session_id and file are required");
    } else if (session_get(u.sid, &sb, &err) < 0) {
        status = fail_reply(&err, reply);
    } else {
        const char *d = u.dest && *u.dest ? u.dest : u.filename;
        if (!d || !*d) {
            status = bad(reply, "destination (or a file name) is required");
        } else {
            /* Relative destinations are in the workspace; absolute ones are taken as given (the
             * sandbox itself is the boundary, and the agent resolves `..` lexically). */
            cleanup_free char *path = d[0] == '/' ? xstrdup(d) : xasprintf(WORKSPACE "/%s", d);
            struct apid_agent_target t;
            apid_agent_target_of(sb, &t);
            if (apid_agent_upload(&t, path, 0, u.data, u.len, 60000, &err) < 0)
                status = fail_reply(&err, reply);
            else
                *reply = json_pack("{s:s, s:s, s:I}", "session_id", sb->id, "path", path, "size",
                                   (json_int_t)u.len);
        }
    }
    apid_sandbox_free(sb);
    free(u.sid);
    free(u.dest);
    free(u.filename);
    free(u.data);
    return status;
}

int
apid_session_handle(struct MHD_Connection *conn, const char *method, const char *path,
                    const char *body, size_t len, json_t **reply)
{
    const char *name = route_name(path);
    if (!name) {
        *reply = json_pack("{s:s, s:s}", "code", E_ROUTE, "message", "no such route");
        return 404;
    }
    if (strcmp(method, "POST")) {
        *reply = json_pack("{s:s, s:s}", "code", E_METHOD, "message", "method not allowed");
        return 405;
    }
    if (!strcmp(name, "create_session"))
        return h_create(body, len, reply);
    if (!strcmp(name, "execute"))
        return h_execute(body, len, false, reply);
    if (!strcmp(name, "execute_batch"))
        return h_execute(body, len, true, reply);
    if (!strcmp(name, "upload_file"))
        return h_upload(conn, body, len, reply);
    return h_cleanup(body, len, reply);
}

int64_t
apid_session_active(struct apid_store *store)
{
    json_t *md = json_pack("{s:s}", APID_SESSION_LABEL, "true");
    unsigned live = (1u << ST_PENDING) | (1u << ST_RUNNING) | (1u << ST_PAUSING) |
                    (1u << ST_PAUSED) | (1u << ST_RESUMING);
    struct apid_sandbox **items = NULL;
    size_t n = 0;
    int64_t total = 0;
    sbx_error_t err = NULL;
    if (apid_store_list(store, live, md, 1, 1, &items, &n, &total, &err) < 0) {
        sbx_error_release(&err);
        total = -1;
    }
    apid_sandbox_list_free(items, n);
    json_decref(md);
    return total;
}
