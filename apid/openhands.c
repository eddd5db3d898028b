/* OpenHands Remote Runtime API (see openhands.h and docs/openhands.md).
 *
 * Status: `status` and `pod_status` are derived from the sandbox state and, for a Running
 * sandbox, from whether port 60000 accepts a TCP connection (a probe per reply, short timeout):
 * only then is a runtime `running`/`ready`, so clients that poll for `ready` and then call
 * {url}/alive never see a 502 from the proxy. Paused and stopped runtimes get `not found` as
 * their pod_status (quirk 3 of the contract: anything in ready/pending/running reads as alive).
 *
 * Errors are JSON objects {"detail": ..., "code": ...}: OpenHands' legacy client reads
 * `detail`; `code` is the lifecycle API's machine-readable code. */
#include "openhands.h"
#include "pool.h"

#include <microhttpd.h>
#include <strings.h>

#define AGENT_PORT 60000
#define VSCODE_PORT 60001
#define WORK1_PORT 12000
#define WORK2_PORT 12001
#define PROBE_MS 300
#define MAX_SESSION_ID 128
#define MAX_BATCH 1000
#define MAX_ENV_VARS 4096
#define MAX_ENV_BYTES (256u << 10) /* below the kernel's ARG_MAX share for the environment */
#define MAX_FACTOR 64
#define MAX_ID 65535 /* sandbox uids/gids 0..65535 are mapped (rootfs/build-images.sh) */
#define RENEW_SLACK_MS 60000

static struct apid_ctx *ctx;
/* One /start at a time: "one live runtime per session id" without a window between the look-up
 * and the insert. A create returns once the sandbox runs (or waits for its image in Pending), so
 * this serialises about a second per start. */
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;

void
apid_oh_init(struct apid_ctx *c)
{
    ctx = c;
}

/* ---------- paths ---------- */

/* Collapses runs of '/' and drops a trailing one: "//sessions//x/" → "/sessions/x". */
static char *
norm_path(const char *path)
{
    char *out = xmalloc0(strlen(path) + 2);
    size_t n = 0;
    for (const char *p = path; *p; p++)
        if (*p != '/' || n == 0 || out[n - 1] != '/')
            out[n++] = *p;
    if (n > 1 && out[n - 1] == '/')
        n--;
    out[n] = '\0';
    if (n == 0)
        strcpy(out, "/");
    return out;
}

static const char *const top_routes[] = {
    "start", "sessions",     "runtime",         "list",  "pause",       "resume",
    "stop",  "image_exists", "registry_prefix", "build", "build_status"};

bool
apid_oh_is_route(const char *path)
{
    cleanup_free char *p = norm_path(path);
    const char *s = p + 1;
    size_t n = strcspn(s, "/");
    for (size_t i = 0; i < ARRAY_SIZE(top_routes); i++)
        if (strlen(top_routes[i]) == n && !strncmp(s, top_routes[i], n))
            return true;
    return false;
}

/* Sandbox ids are UUIDs (apid_new_id()); only those are looked up, so an apid route never
 * reaches the store here. */
static bool
uuid_like(const char *s, size_t n)
{
    if (n != 36)
        return false;
    for (size_t i = 0; i < n; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return true;
}

int
apid_oh_proxy_target(const char *raw_uri, char id[65], int *port, char **rest)
{
    const char *u = raw_uri;
    while (*u == '/')
        u++;
    size_t n = strcspn(u, "/?");
    if (!uuid_like(u, n))
        return 0;
    memcpy(id, u, n);
    id[n] = '\0';
    struct apid_oh_runtime rt;
    if (apid_store_oh_find(ctx->store, id, NULL, &rt, NULL) != 1)
        return -1;
    apid_oh_runtime_free(&rt);
    const char *r = u + n; /* "", "/...", "?..." */
    static const struct {
        const char *name;
        int port;
    } svc[] = {{"vscode", VSCODE_PORT}, {"work-1", WORK1_PORT}, {"work-2", WORK2_PORT}};
    *port = AGENT_PORT;
    for (size_t i = 0; i < ARRAY_SIZE(svc); i++) {
        size_t l = strlen(svc[i].name);
        if (r[0] == '/' && !strncmp(r + 1, svc[i].name, l) &&
            (r[1 + l] == '\0' || r[1 + l] == '/' || r[1 + l] == '?')) {
            *port = svc[i].port;
            r += 1 + l;
            break;
        }
    }
    /* The rest goes upstream as sent ("//" of legacy file paths included). */
    *rest = r[0] == '/' ? xstrdup(r) : xasprintf("/%s", r);
    return 1;
}

/* ---------- replies ---------- */

static int detail(json_t **reply, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int
detail(json_t **reply, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *m = NULL;
    if (vasprintf(&m, fmt, ap) < 0)
        m = NULL;
    va_end(ap);
    *reply = json_pack("{s:s, s:s}", "detail", m ? m : "error", "code", code);
    free(m);
    return status;
}

static int
fail_reply(sbx_error_t *err, json_t **reply)
{
    int status;
    const char *code, *msg;
    apid_error_http(*err, &status, &code, &msg);
    if (status >= 500)
        log_err("openhands: %s", (*err)->msg);
    int r = detail(reply, status, code, "%s", msg);
    sbx_error_release(err);
    return r;
}

static char *
runtime_url(const char *id)
{
    cleanup_free char *base = apid_http_base_url();
    return xasprintf("%s/%s", base, id);
}

static void
oh_status(const struct apid_sandbox *sb, const char **status, const char **pod)
{
    switch (sb->state) {
    case ST_PENDING:
    case ST_RESUMING:
        *status = "starting";
        *pod = "pending";
        break;
    case ST_RUNNING:
        if (apid_proxy_probe(sb->address, AGENT_PORT, PROBE_MS)) {
            *status = "running";
            *pod = "ready";
        } else {
            *status = "starting";
            *pod = "running";
        }
        break;
    case ST_PAUSING:
    case ST_PAUSED:
        *status = "paused";
        *pod = "not found";
        break;
    case ST_FAILED:
        *status = "error";
        *pod = "failed";
        break;
    default: /* Stopping, Terminated */
        *status = "stopped";
        *pod = "not found";
        break;
    }
}

static json_t *
runtime_json(const struct apid_oh_runtime *rt, const struct apid_sandbox *sb)
{
    const char *status, *pod;
    oh_status(sb, &status, &pod);
    cleanup_free char *url = runtime_url(rt->runtime_id);
    cleanup_free char *w1 = xasprintf("%s/work-1", url);
    cleanup_free char *w2 = xasprintf("%s/work-2", url);
    char ts[40];
    apid_format_time(sb->created_ms, ts, sizeof(ts));
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:[], s:{s:i, s:i}, s:s, s:s}", "runtime_id",
                  rt->runtime_id, "session_id", rt->session_id, "url", url, "session_api_key",
                  rt->key, "status", status, "pod_status", pod, "restart_count", 0,
                  "restart_reasons", "work_hosts", w1, WORK1_PORT, w2, WORK2_PORT, "image",
                  sb->image_uri ? sb->image_uri : "", "created_at", ts);
    bool bad = sb->state == ST_FAILED;
    json_object_set_new(o, "status_detail",
                        bad && sb->message ? json_string(sb->message) : json_null());
    return o;
}

/* Loads the runtime's sandbox (1), or 0 when either is gone. */
static int
load(const struct apid_oh_runtime *rt, struct apid_sandbox **sb)
{
    *sb = NULL;
    return apid_store_get(ctx->store, rt->runtime_id, sb, NULL) == 1 && *sb ? 1 : 0;
}

/* OpenHands runtimes live until /stop; a server with --max-timeout gives them that TTL, pushed
 * forward whenever a client touches the runtime. */
static int64_t
ttl_s(void)
{
    pthread_mutex_lock(&ctx->cfg_lock);
    int64_t t = ctx->cfg->max_timeout;
    pthread_mutex_unlock(&ctx->cfg_lock);
    return t > 0 ? t : -1;
}

static void
touch(const struct apid_sandbox *sb)
{
    int64_t ttl = ttl_s();
    if (ttl <= 0 || !sb->expires_ms || apid_state_terminal(sb->state) || sb->state == ST_STOPPING)
        return;
    int64_t want = apid_now_ms() + ttl * 1000;
    if (want - sb->expires_ms > RENEW_SLACK_MS)
        apid_mgr_renew(sb->id, want, NULL);
}

/* ---------- auth ---------- */

static bool
authorized(struct MHD_Connection *c, json_t **reply, int *status)
{
    const char *got = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-API-Key");
    if (apid_api_key_ok(got))
        return true;
    *status = got ? detail(reply, 401, E_INVALID_KEY, "the X-API-Key is not valid")
                  : detail(reply, 401, E_MISSING_KEY, "the X-API-Key header is required");
    return false;
}

/* ---------- /start ---------- */

static bool
session_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_SESSION_ID)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' || s[i] == '.'))
            return false;
    return true;
}

/* An optional id field: absent/null leaves *out, else an integer 0..MAX_ID. */
static int
opt_id(json_t *body, const char *name, bool *given, uint32_t *out, json_t **reply)
{
    json_t *v = json_object_get(body, name);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > MAX_ID)
        return detail(reply, 400, E_INVALID_PARAMETER, "%s must be an integer in 0..%d", name,
                      MAX_ID);
    *given = true;
    *out = (uint32_t)json_integer_value(v);
    return 0;
}

static int64_t
scaled(int64_t dflt, double f, int64_t max)
{
    if (dflt <= 0)
        return dflt;
    double v = (double)dflt * f;
    if (max > 0 && v > (double)max)
        return max;
    return v < 1 ? 1 : (int64_t)v;
}

/* Validates /start's body into a create request (the lifecycle API's validation applied to the
 * equivalent body). Unknown fields are ignored: OpenHands' clients add fields over time. */
static int
parse_start(const char *body, size_t len, struct apid_create_req *cr, char **sid, char key[65],
            json_t **reply)
{
    json_error_t jerr;
    json_t *o = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    int st = 0;
    cleanup_free char *cbs = NULL;
    json_t *entry = NULL, *env = NULL, *cb = NULL;
    if (!json_is_object(o)) {
        st = detail(reply, 400, E_INVALID_PARAMETER, "the body must be a JSON object");
        goto out;
    }
    json_t *img = json_object_get(o, "image");
    if (!json_is_string(img) || json_string_length(img) == 0) {
        st = detail(reply, 400, E_INVALID_PARAMETER, "image is required (a non-empty string)");
        goto out;
    }
    json_t *cmd = json_object_get(o, "command");
    if (json_is_string(cmd) && json_string_length(cmd) > 0 &&
        strlen(json_string_value(cmd)) == json_string_length(cmd)) {
        /* A string is a shell command line, as in a Dockerfile's shell-form CMD. */
        entry = json_pack("[s,s,s]", "/bin/sh", "-c", json_string_value(cmd));
    } else if (json_is_array(cmd) && json_array_size(cmd) > 0) {
        entry = json_incref(cmd);
    } else {
        st = detail(reply, 400, E_INVALID_PARAMETER,
                    "command is required: a non-empty string or list of strings");
        goto out;
    }
    json_t *wd = json_object_get(o, "working_dir");
    if (wd && !json_is_null(wd) &&
        (!json_is_string(wd) || json_string_value(wd)[0] != '/' || json_string_length(wd) > 4096 ||
         strlen(json_string_value(wd)) != json_string_length(wd))) {
        st = detail(reply, 400, E_INVALID_PARAMETER, "working_dir must be an absolute path");
        goto out;
    }
    json_t *e = json_object_get(o, "environment");
    if (e && !json_is_null(e) && !json_is_object(e)) {
        st = detail(reply, 400, E_INVALID_PARAMETER, "environment must be an object of strings");
        goto out;
    }
    env = json_is_object(e) ? json_deep_copy(e) : json_object();
    {
        size_t bytes = 0;
        const char *k;
        json_t *x;
        json_object_foreach (env, k, x) {
            if (!json_is_string(x)) {
                st = detail(reply, 400, E_INVALID_PARAMETER, "environment.%s must be a string", k);
                goto out;
            }
            bytes += strlen(k) + json_string_length(x) + 2;
        }
        if (json_object_size(env) > MAX_ENV_VARS || bytes > MAX_ENV_BYTES) {
            st = detail(reply, 400, E_INVALID_PARAMETER,
                        "environment is too large (at most %d variables and %u bytes)",
                        MAX_ENV_VARS, MAX_ENV_BYTES);
            goto out;
        }
    }
    json_t *s = json_object_get(o, "session_id");
    if (s && !json_is_null(s) && (!json_is_string(s) || !session_id_ok(json_string_value(s)))) {
        st = detail(reply, 400, E_INVALID_PARAMETER,
                    "session_id must be 1..%d letters, digits, '-', '_' or '.'", MAX_SESSION_ID);
        goto out;
    }
    double factor = 1;
    json_t *rf = json_object_get(o, "resource_factor");
    if (rf && !json_is_null(rf)) {
        factor = json_is_number(rf) ? json_number_value(rf) : -1;
        if (!(factor > 0 && factor <= MAX_FACTOR)) {
            st = detail(reply, 400, E_INVALID_PARAMETER,
                        "resource_factor must be a number above 0 and at most %d", MAX_FACTOR);
            goto out;
        }
    }
    bool has_uid = false, has_gid = false, has_fs = false;
    uint32_t uid = 0, gid = 0, fsg = 0;
    if ((st = opt_id(o, "run_as_user", &has_uid, &uid, reply)) ||
        (st = opt_id(o, "run_as_group", &has_gid, &gid, reply)) ||
        (st = opt_id(o, "fs_group", &has_fs, &fsg, reply)))
        goto out;
    json_t *rc = json_object_get(o, "runtime_class");
    if (rc && !json_is_null(rc) && !json_is_string(rc)) {
        st = detail(reply, 400, E_INVALID_PARAMETER, "runtime_class must be a string");
        goto out;
    }
    json_t *pp = json_object_get(o, "image_pull_policy");
    const char *policy = json_is_string(pp) ? json_string_value(pp) : NULL;
    if ((pp && !json_is_null(pp) && !policy) ||
        (policy && strcmp(policy, "Always") && strcmp(policy, "IfNotPresent") &&
         strcmp(policy, "Never"))) {
        st = detail(reply, 400, E_INVALID_PARAMETER,
                    "image_pull_policy must be Always, IfNotPresent or Never");
        goto out;
    }
    if (policy && !strcmp(policy, "Never")) {
        cleanup_free char *name = NULL;
        sbx_error_t err = NULL;
        int r = apid_resolve_image(ctx->cfg->images_dir, json_string_value(img), &name, &err);
        if (r < 0) {
            st = fail_reply(&err, reply);
            goto out;
        }
        if (r == APID_IMAGE_PULL) {
            st = detail(reply, 400, E_IMAGE_NOT_FOUND,
                        "image `%s` is not in the image store and image_pull_policy is Never",
                        json_string_value(img));
            goto out;
        }
    }

    random_hex(key, 64);
    json_object_set_new(env, "SESSION_API_KEY", json_string(key));
    cb = json_pack("{s:{s:O}, s:O, s:O, s:{s:s}}", "image", "uri", img, "entrypoint", entry, "env",
                   env, "metadata", "sbx-openhands", "true");
    int64_t ttl = ttl_s();
    if (ttl > 0)
        json_object_set_new(cb, "timeout", json_integer(ttl));
    cbs = json_dumps(cb, JSON_COMPACT);
    sbx_error_t err = NULL;
    pthread_mutex_lock(&ctx->cfg_lock);
    int r = apid_parse_create(cbs, strlen(cbs), ctx->cfg, cr, &err);
    if (r == 0) {
        /* resource_factor multiplies the server's default class, capped at its maxima. */
        cr->limits.cpu_milli = scaled(ctx->cfg->default_cpu_milli, factor, ctx->cfg->max_cpu_milli);
        cr->limits.memory = scaled(ctx->cfg->default_memory, factor, ctx->cfg->max_memory);
        cr->limits.pids = scaled(ctx->cfg->default_pids, factor, ctx->cfg->max_pids);
    }
    pthread_mutex_unlock(&ctx->cfg_lock);
    if (r < 0) {
        st = fail_reply(&err, reply);
        goto out;
    }
    char f[32];
    snprintf(f, sizeof(f), "%g", factor);
    json_decref(cr->resource_limits);
    cr->resource_limits = json_pack(
        "{s:s, s:I, s:I, s:I}", "resource_factor", f, "cpuMilli", (json_int_t)cr->limits.cpu_milli,
        "memory", (json_int_t)cr->limits.memory, "pids", (json_int_t)cr->limits.pids);
    if (has_uid || has_gid || has_fs) {
        cr->run_as = true;
        cr->uid = has_uid ? uid : 1000;
        /* Kubernetes' defaults: the group is the user's unless given, fs_group else the group. */
        cr->gid = has_gid ? gid : has_fs ? fsg : cr->uid;
        cr->fs_gid = has_fs ? fsg : cr->gid;
    }
    if (json_is_string(wd))
        cr->workdir = xstrdup(json_string_value(wd));
    if (json_is_string(s)) {
        *sid = xstrdup(json_string_value(s));
    } else {
        char id[37];
        apid_new_id(id);
        *sid = xasprintf("sbx-%s", id);
    }
out:
    json_decref(cb);
    json_decref(entry);
    json_decref(env);
    json_decref(o);
    return st;
}

/* A /start that failed while holding start_lock with a live runtime's records. */
static int
start_failed(struct apid_create_req *cr, struct apid_oh_runtime *rt, struct apid_sandbox *sb,
             sbx_error_t *err, json_t **reply)
{
    pthread_mutex_unlock(&start_lock);
    apid_create_req_free(cr);
    apid_oh_runtime_free(rt);
    apid_sandbox_free(sb);
    return fail_reply(err, reply);
}

static int
h_start(const char *body, size_t len, json_t **reply)
{
    struct apid_create_req cr;
    memset(&cr, 0, sizeof(cr));
    cleanup_free char *sid = NULL;
    char key[65] = "";
    int st = parse_start(body, len, &cr, &sid, key, reply);
    if (st)
        return st;
    if (!apid_net_enabled()) {
        apid_create_req_free(&cr);
        return detail(reply, 503, E_UNAVAILABLE,
                      "OpenHands runtimes are reached through sandbox networking, which is off "
                      "(apid runs with --bridge none)");
    }
    sbx_error_t err = NULL;
    pthread_mutex_lock(&start_lock);
    struct apid_oh_runtime rt;
    struct apid_sandbox *sb = NULL;
    if (apid_store_oh_find(ctx->store, NULL, sid, &rt, NULL) == 1) {
        if (load(&rt, &sb) && !apid_state_terminal(sb->state) && sb->state != ST_STOPPING) {
            /* One live runtime per session: a /start for it returns it, resumed if paused. */
            if (sb->state == ST_PAUSED && apid_mgr_resume(sb->id, &err) < 0)
                return start_failed(&cr, &rt, sb, &err, reply);
            apid_sandbox_free(sb);
            sb = NULL;
            load(&rt, &sb);
            pthread_mutex_unlock(&start_lock);
            apid_create_req_free(&cr);
            if (!sb) {
                apid_oh_runtime_free(&rt);
                return detail(reply, 409, E_CONFLICT, "the runtime of session `%s` went away", sid);
            }
            touch(sb);
            *reply = runtime_json(&rt, sb);
            apid_oh_runtime_free(&rt);
            apid_sandbox_free(sb);
            return 200;
        }
        /* Stopped or failed: replaced by a new runtime under the same session id. */
        if (sb && apid_mgr_delete(sb->id, "OPENHANDS_RESTART", &err) < 0)
            return start_failed(&cr, &rt, sb, &err, reply);
        apid_sandbox_free(sb);
        sb = NULL;
        apid_oh_runtime_free(&rt);
    }
    bool pooled = false;
    int r = apid_pool_create(&cr, &pooled, &sb, &err);
    apid_create_req_free(&cr);
    if (r == 0 && apid_store_oh_insert(ctx->store, sb->id, sid, key, &err) < 0) {
        /* Never a sandbox without its runtime row. */
        sbx_error_t e2 = NULL;
        if (apid_mgr_delete(sb->id, "OPENHANDS_START_FAILED", &e2) < 0)
            sbx_error_release(&e2);
        apid_sandbox_free(sb);
        r = -1;
    }
    pthread_mutex_unlock(&start_lock);
    if (r < 0) {
        explicit_bzero(key, sizeof(key));
        return fail_reply(&err, reply);
    }
    rt = (struct apid_oh_runtime){.session_id = sid, .key = key};
    snprintf(rt.runtime_id, sizeof(rt.runtime_id), "%s", sb->id);
    *reply = runtime_json(&rt, sb);
    log_info("openhands: runtime %s started for session %s", sb->id, sid);
    apid_sandbox_free(sb);
    explicit_bzero(key, sizeof(key));
    return 200;
}

/* ---------- look-ups ---------- */

/* By runtime id or (rid NULL) session id: 1 with both loaded, or a 404 reply. */
static int
find(const char *rid, const char *sid, struct apid_oh_runtime *rt, struct apid_sandbox **sb,
     json_t **reply)
{
    const char *what = rid ? "runtime" : "session";
    const char *v = rid ? rid : sid;
    if (!v || !*v || strlen(v) > MAX_SESSION_ID)
        return detail(reply, 404, E_NOT_FOUND, "%s not found", what);
    if (apid_store_oh_find(ctx->store, rid, rid ? NULL : sid, rt, NULL) != 1)
        return detail(reply, 404, E_NOT_FOUND, "%s `%s` not found", what, v);
    if (!load(rt, sb)) {
        apid_oh_runtime_free(rt);
        return detail(reply, 404, E_NOT_FOUND, "%s `%s` not found", what, v);
    }
    return 1;
}

static int
h_get(const char *rid, const char *sid, json_t **reply)
{
    struct apid_oh_runtime rt;
    struct apid_sandbox *sb = NULL;
    int st = find(rid, sid, &rt, &sb, reply);
    if (st != 1)
        return st;
    touch(sb);
    *reply = runtime_json(&rt, sb);
    apid_oh_runtime_free(&rt);
    apid_sandbox_free(sb);
    return 200;
}

struct batch {
    json_t *arr;
    bool too_many;
};

static enum MHD_Result
batch_item(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
    struct batch *b = cls;
    if (strcmp(k, "ids") != 0)
        return MHD_YES;
    if (json_array_size(b->arr) >= MAX_BATCH) {
        b->too_many = true;
        return MHD_NO;
    }
    json_t *r = NULL;
    struct apid_oh_runtime rt;
    struct apid_sandbox *sb = NULL;
    if (find(NULL, v ? v : "", &rt, &sb, &r) == 1) {
        json_array_append_new(b->arr, runtime_json(&rt, sb));
        apid_oh_runtime_free(&rt);
        apid_sandbox_free(sb);
    } else {
        json_decref(r);
        json_array_append_new(b->arr, json_null());
    }
    return MHD_YES;
}

static int
h_batch(struct MHD_Connection *c, json_t **reply)
{
    struct batch b = {.arr = json_array()};
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, batch_item, &b);
    if (b.too_many) {
        json_decref(b.arr);
        return detail(reply, 400, E_INVALID_PARAMETER, "at most %d ids per batch", MAX_BATCH);
    }
    *reply = b.arr;
    return 200;
}

/* Active runtimes: starting or running. Paused and stopped ones are left out, because
 * OpenHands' app server counts every entry against its limit of running sandboxes (and pauses
 * the oldest to make room); GET /sessions/{id} still finds them. */
static int
h_list(json_t **reply)
{
    struct apid_oh_runtime *v = NULL;
    size_t n = 0;
    sbx_error_t err = NULL;
    if (apid_store_oh_list(ctx->store, &v, &n, &err) < 0)
        return fail_reply(&err, reply);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        struct apid_sandbox *sb = NULL;
        if (load(&v[i], &sb) &&
            (sb->state == ST_PENDING || sb->state == ST_RUNNING || sb->state == ST_RESUMING))
            json_array_append_new(arr, runtime_json(&v[i], sb));
        apid_sandbox_free(sb);
        apid_oh_runtime_free(&v[i]);
    }
    free(v);
    *reply = json_pack("{s:o, s:I}", "runtimes", arr, "total", (json_int_t)json_array_size(arr));
    return 200;
}

/* ---------- pause / resume / stop ---------- */

static int
h_action(const char *action, const char *body, size_t len, json_t **reply)
{
    json_error_t jerr;
    json_t *o = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    json_t *v = json_object_get(o, "runtime_id");
    if (!json_is_object(o) || !json_is_string(v)) {
        json_decref(o);
        return detail(reply, 400, E_INVALID_PARAMETER,
                      "the body must be a JSON object with a string runtime_id");
    }
    cleanup_free char *rid = xstrdup(json_string_value(v));
    json_decref(o);
    struct apid_oh_runtime rt;
    struct apid_sandbox *sb = NULL;
    int st = find(rid, NULL, &rt, &sb, reply);
    if (st != 1)
        return st;
    sbx_error_t err = NULL;
    int r = 0;
    if (!strcmp(action, "stop")) {
        r = apid_mgr_delete(sb->id, "OPENHANDS_STOP", &err);
        if (r == 0) {
            *reply = json_pack("{s:s, s:s}", "runtime_id", rt.runtime_id, "status", "stopped");
            log_info("openhands: runtime %s stopped", rt.runtime_id);
        }
    } else if (!strcmp(action, "pause")) {
        /* Pausing a paused runtime is a no-op; one still starting or ended cannot pause. */
        if (sb->state == ST_RUNNING)
            r = apid_mgr_pause(sb->id, &err);
        else if (sb->state != ST_PAUSED)
            r = apid_fail(&err, E_CONFLICT, "runtime `%s` is %s and cannot be paused", rid,
                          apid_state_name(sb->state));
    } else {
        /* Resuming a runtime that runs or starts is a 200 no-op: OpenHands' legacy client
         * resumes after any 503 from the agent server. An ended one answers 409. */
        if (sb->state == ST_PAUSED)
            r = apid_mgr_resume(sb->id, &err);
        else if (sb->state != ST_RUNNING && sb->state != ST_PENDING && sb->state != ST_RESUMING)
            r = apid_fail(&err, E_CONFLICT, "runtime `%s` is %s and cannot be resumed", rid,
                          apid_state_name(sb->state));
    }
    if (r == 0 && strcmp(action, "stop")) {
        struct apid_sandbox *now = NULL;
        if (load(&rt, &now)) {
            touch(now);
            *reply = runtime_json(&rt, now);
        } else {
            *reply =
                json_pack("{s:s, s:s}", "runtime_id", rt.runtime_id, "session_api_key", rt.key);
        }
        apid_sandbox_free(now);
    }
    apid_oh_runtime_free(&rt);
    apid_sandbox_free(sb);
    if (r < 0)
        return fail_reply(&err, reply);
    return 200;
}

/* ---------- images ---------- */

static int
h_image_exists(struct MHD_Connection *c, json_t **reply)
{
    const char *img = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "image");
    if (!img || !*img)
        return detail(reply, 400, E_INVALID_PARAMETER, "the image query parameter is required");
    cleanup_free char *name = NULL;
    sbx_error_t err = NULL;
    int r = apid_resolve_image(ctx->cfg->images_dir, img, &name, &err);
    if (r < 0) {
        int status;
        const char *code, *msg;
        apid_error_http(err, &status, &code, &msg);
        /* Unknown local images just do not exist; a malformed reference is the caller's error. */
        if (status == 404 || !strcmp(code, E_IMAGE_NOT_FOUND)) {
            sbx_error_release(&err);
            *reply = json_pack("{s:b}", "exists", 0);
            return 200;
        }
        return fail_reply(&err, reply);
    }
    if (r == APID_IMAGE_PULL) {
        *reply = json_pack("{s:b}", "exists", 0);
        return 200;
    }
    *reply = json_pack("{s:b, s:{s:n, s:i}}", "exists", 1, "image", "upload_time",
                       "image_size_bytes", 0);
    return 200;
}

/* ---------- dispatch ---------- */

int
apid_oh_handle(struct MHD_Connection *c, const char *method, const char *path, const char *body,
               size_t len, bool too_large, json_t **reply)
{
    int st;
    if (!authorized(c, reply, &st))
        return st;
    if (too_large)
        return detail(reply, 413, E_TOO_LARGE, "request body too large");
    cleanup_free char *p = norm_path(path);
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    bool post = !strcmp(method, "POST");
#define METHOD(ok)                                                                                 \
    do {                                                                                           \
        if (!(ok))                                                                                 \
            return detail(reply, 405, E_METHOD, "method %s not allowed on %s", method, p);         \
    } while (0)
    if (!strcmp(p, "/start")) {
        METHOD(post);
        return h_start(body, len, reply);
    }
    if (!strcmp(p, "/sessions/batch")) { /* before /sessions/{id} */
        METHOD(get);
        return h_batch(c, reply);
    }
    if (!strncmp(p, "/sessions/", 10) && !strchr(p + 10, '/')) {
        METHOD(get);
        return h_get(NULL, p + 10, reply);
    }
    if (!strncmp(p, "/runtime/", 9) && !strchr(p + 9, '/')) {
        METHOD(get);
        return h_get(p + 9, NULL, reply);
    }
    if (!strcmp(p, "/list")) {
        METHOD(get);
        return h_list(reply);
    }
    if (!strcmp(p, "/pause") || !strcmp(p, "/resume") || !strcmp(p, "/stop")) {
        METHOD(post);
        return h_action(p + 1, body, len, reply);
    }
    if (!strcmp(p, "/image_exists")) {
        METHOD(get);
        return h_image_exists(c, reply);
    }
    if (!strcmp(p, "/registry_prefix")) {
        METHOD(get);
        /* Images apid builds are local/NAME; sbx does not build for OpenHands (see /build). */
        *reply = json_pack("{s:s}", "registry_prefix", "local");
        return 200;
    }
    if (!strcmp(p, "/build") || !strcmp(p, "/build_status")) {
        return detail(reply, 501, E_NOT_SUPPORTED,
                      "sbx does not build images: build the runtime image elsewhere, push it to "
                      "a registry and start it by reference (apid pulls it), or use a prebuilt "
                      "agent-server image");
    }
    return detail(reply, 404, E_ROUTE, "no such route: %s", p);
#undef METHOD
}
