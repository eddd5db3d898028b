/* The sandbox tools of apid's MCP server (mcp.c speaks the protocol): their table with the
 * JSON schemas and descriptions an agent reads, and their implementations on the sandbox manager
 * and the sandbox's agent. A failure (bad arguments, unknown sandbox, agent unreachable, missing
 * interpreter) is a tool result with isError and a message, so the model reads it and can
 * correct itself. Every output that comes from a sandbox is bounded and cut with a note. */
#include "mcp.h"
#include "agent_client.h"
#include "pool.h"

#include <curl/curl.h>
#include <openssl/evp.h>

#define CMD_TIMEOUT_DEFAULT 60
#define CMD_TIMEOUT_MAX 3600
#define OUTPUT_DEFAULT (64 << 10) /* bytes kept per stream */
#define OUTPUT_MAX (1 << 20)
#define AGENT_STREAM_MAX (8u << 20) /* raw event stream read from the agent per command */
#define READ_DEFAULT (256 << 10)
#define READ_MAX (4 << 20)
#define LIST_MAX 1000
#define LIST_DEPTH_MAX 8
#define CREATE_WAIT_DEFAULT 120
#define CREATE_WAIT_MAX 600
#define NO_INTERP_MARK "__sbx_mcp_no_interpreter__"

static struct apid_ctx *ctx;

/* ---------- tool definitions ---------- */

struct tool {
    const char *name;
    const char *title;
    const char *description;
    const char *schema; /* inputSchema, JSON */
    json_t *(*run)(json_t *args, char **msg);
};

static json_t *t_create(json_t *a, char **msg);
static json_t *t_run_command(json_t *a, char **msg);
static json_t *t_run_code(json_t *a, char **msg);
static json_t *t_read_file(json_t *a, char **msg);
static json_t *t_write_file(json_t *a, char **msg);
static json_t *t_list_dir(json_t *a, char **msg);
static json_t *t_list(json_t *a, char **msg);
static json_t *t_delete(json_t *a, char **msg);

#define SID_PROP                                                                                   \
    "\"sandbox_id\":{\"type\":\"string\",\"description\":\"Id of the sandbox, as returned by "     \
    "create_sandbox or list_sandboxes.\"}"
#define ENV_PROP                                                                                   \
    "\"env\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"},"                 \
    "\"description\":\"Environment variables to set, e.g. {\\\"DEBUG\\\":\\\"1\\\"}.\"}"
#define TIMEOUT_PROP                                                                               \
    "\"timeout\":{\"type\":\"number\",\"exclusiveMinimum\":0,\"maximum\":3600,\"default\":60,"     \
    "\"description\":\"Seconds before the process group is killed (timed_out is then true).\"}"
#define CWD_PROP                                                                                   \
    "\"cwd\":{\"type\":\"string\",\"description\":\"Working directory inside the sandbox "         \
    "(default: the image's working directory, usually /).\"}"
#define MAXOUT_PROP                                                                                \
    "\"max_output_bytes\":{\"type\":\"integer\",\"minimum\":1024,\"maximum\":1048576,"             \
    "\"default\":65536,\"description\":\"Bytes of stdout and of stderr kept; longer output "       \
    "keeps its start and end with a note of what was cut.\"}"

static const struct tool tools[] = {
    {"create_sandbox", "Create a sandbox",
     "Creates a new isolated Linux sandbox (a container-like environment with its own filesystem, "
     "processes and network) and waits until it can run commands. Returns its id, which every "
     "other tool takes as sandbox_id. The sandbox is deleted automatically after `timeout` "
     "seconds; delete it with delete_sandbox when done. Images on this server include "
     "local/busybox (small: sh and busybox tools only) and local/host (python3, node, bash and "
     "the host's usual tools); an OCI reference such as docker.io/library/python:3.12 is pulled.",
     "{\"type\":\"object\",\"properties\":{"
     "\"image\":{\"type\":\"string\",\"default\":\"local/busybox\",\"description\":\"Image to "
     "run: local/busybox, local/host, or an OCI image reference.\"}," ENV_PROP ","
     "\"timeout\":{\"type\":\"integer\",\"minimum\":1,\"default\":600,\"description\":\"Lifetime "
     "in seconds; the sandbox is deleted after it (the server's minimum applies).\"},"
     "\"cpu\":{\"type\":\"string\",\"description\":\"CPU limit, e.g. \\\"1\\\" or \\\"500m\\\" "
     "(server default when omitted).\"},"
     "\"memory\":{\"type\":\"string\",\"description\":\"Memory limit, e.g. \\\"512Mi\\\" or "
     "\\\"2Gi\\\" (server default when omitted).\"},"
     "\"network\":{\"type\":\"string\",\"enum\":[\"default\",\"deny\",\"allow\",\"none\"],"
     "\"default\":\"default\",\"description\":\"Outbound network: deny (no egress), allow (any "
     "egress), none (loopback only), default (the server's policy).\"},"
     "\"metadata\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"},"
     "\"description\":\"Labels to attach (list_sandboxes shows them).\"},"
     "\"wait_seconds\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":600,\"default\":120,"
     "\"description\":\"How long to wait for the sandbox to be ready (image pulls included).\"}"
     "},\"additionalProperties\":false}",
     t_create},
    {"run_command", "Run a shell command",
     "Runs a shell command in a sandbox (`sh -c`, or bash when the image has it) and waits for "
     "it. Returns exit_code, stdout, stderr, duration_ms and timed_out. A non-zero exit code is "
     "a normal result, not an error. Processes left running in the background are killed at the "
     "timeout.",
     "{\"type\":\"object\",\"properties\":{" SID_PROP ","
     "\"command\":{\"type\":\"string\",\"minLength\":1,\"description\":\"Shell command line, e.g. "
     "\\\"ls -la /tmp && cat /etc/os-release\\\".\"}," CWD_PROP "," ENV_PROP "," TIMEOUT_PROP
     "," MAXOUT_PROP "},\"required\":[\"sandbox_id\",\"command\"],\"additionalProperties\":false}",
     t_run_command},
    {"run_code", "Run code",
     "Runs a program in a sandbox: writes `code` to a temporary file and runs it with the "
     "language's interpreter (python: python3 or python; node: node; bash: bash; sh: sh). Returns "
     "exit_code, stdout, stderr, duration_ms and timed_out. Fails with a clear message when the "
     "sandbox's image has no such interpreter (local/busybox has only sh; local/host has python3, "
     "node and bash).",
     "{\"type\":\"object\",\"properties\":{" SID_PROP ","
     "\"language\":{\"type\":\"string\",\"enum\":[\"python\",\"node\",\"bash\",\"sh\"],"
     "\"description\":\"Language of the code.\"},"
     "\"code\":{\"type\":\"string\",\"minLength\":1,\"description\":\"Source code of the whole "
     "program.\"}," CWD_PROP "," ENV_PROP "," TIMEOUT_PROP "," MAXOUT_PROP
     "},\"required\":[\"sandbox_id\",\"language\",\"code\"],\"additionalProperties\":false}",
     t_run_code},
    {"read_file", "Read a file",
     "Reads a file from a sandbox. Text (UTF-8) comes back as is; other bytes come back base64 "
     "encoded (encoding says which). Files longer than max_bytes are cut, with truncated true "
     "and the full size given.",
     "{\"type\":\"object\",\"properties\":{" SID_PROP ","
     "\"path\":{\"type\":\"string\",\"minLength\":1,\"description\":\"Absolute path of the file "
     "inside the sandbox.\"},"
     "\"max_bytes\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":4194304,\"default\":262144,"
     "\"description\":\"Most bytes to return.\"}"
     "},\"required\":[\"sandbox_id\",\"path\"],\"additionalProperties\":false}",
     t_read_file},
    {"write_file", "Write a file",
     "Writes a file in a sandbox, creating missing parent directories and replacing any "
     "existing file. The request (with the content) must fit the server's body limit (1 MiB by "
     "default).",
     "{\"type\":\"object\",\"properties\":{" SID_PROP ","
     "\"path\":{\"type\":\"string\",\"minLength\":1,\"description\":\"Absolute path of the file "
     "inside the sandbox.\"},"
     "\"content\":{\"type\":\"string\",\"description\":\"The file's content.\"},"
     "\"encoding\":{\"type\":\"string\",\"enum\":[\"utf8\",\"base64\"],\"default\":\"utf8\","
     "\"description\":\"How content is encoded: utf8 text, or base64 for binary data.\"},"
     "\"mode\":{\"type\":\"string\",\"pattern\":\"^[0-7]{3,4}$\",\"description\":\"Octal "
     "permissions, e.g. \\\"755\\\" for a script (default: 644-like, from the umask).\"}"
     "},\"required\":[\"sandbox_id\",\"path\",\"content\"],\"additionalProperties\":false}",
     t_write_file},
    {"list_directory", "List a directory",
     "Lists a directory in a sandbox: each entry's path, type (file, directory, symlink, other), "
     "size, mode (octal digits) and modification time. depth 1 lists only the directory's own "
     "entries; more descends into subdirectories.",
     "{\"type\":\"object\",\"properties\":{" SID_PROP ","
     "\"path\":{\"type\":\"string\",\"minLength\":1,\"description\":\"Absolute path of the "
     "directory inside the sandbox.\"},"
     "\"depth\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":8,\"default\":1,\"description\":"
     "\"Levels to descend.\"}"
     "},\"required\":[\"sandbox_id\",\"path\"],\"additionalProperties\":false}",
     t_list_dir},
    {"list_sandboxes", "List sandboxes",
     "Lists the sandboxes on this server, newest first: id, image, state (Pending, Running, "
     "Paused, Terminated, Failed, ...), creation and expiry times and labels.",
     "{\"type\":\"object\",\"properties\":{"
     "\"state\":{\"type\":\"string\",\"enum\":[\"Pending\",\"Running\",\"Pausing\",\"Paused\","
     "\"Resuming\",\"Stopping\",\"Terminated\",\"Failed\"],\"description\":\"Only sandboxes in "
     "this state.\"},"
     "\"metadata\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"},"
     "\"description\":\"Only sandboxes carrying all these labels.\"}"
     "},\"additionalProperties\":false}",
     t_list},
    {"delete_sandbox", "Delete a sandbox",
     "Deletes a sandbox: its processes are killed and its filesystem removed. This cannot be "
     "undone.",
     "{\"type\":\"object\",\"properties\":{" SID_PROP
     "},\"required\":[\"sandbox_id\"],\"additionalProperties\":false}",
     t_delete},
};

static json_t *tools_json; /* the tools/list result's array, built once */

void
apid_mcp_tools_init(struct apid_ctx *c)
{
    ctx = c;
    tools_json = json_array();
    for (size_t i = 0; i < ARRAY_SIZE(tools); i++) {
        json_error_t je;
        json_t *schema = json_loads(tools[i].schema, 0, &je);
        if (!schema) /* a bug in the table above; the unit of review is this file */
            log_err("mcp: tool %s: schema: %s", tools[i].name, je.text);
        bool ro = !strcmp(tools[i].name, "read_file") || !strcmp(tools[i].name, "list_directory") ||
                  !strcmp(tools[i].name, "list_sandboxes");
        json_t *ann = json_pack(
            "{s:s, s:b, s:b, s:b}", "title", tools[i].title, "readOnlyHint", ro, "destructiveHint",
            !strcmp(tools[i].name, "delete_sandbox") || !strcmp(tools[i].name, "write_file"),
            "openWorldHint", false);
        json_array_append_new(tools_json,
                              json_pack("{s:s, s:s, s:s, s:o, s:o}", "name", tools[i].name, "title",
                                        tools[i].title, "description", tools[i].description,
                                        "inputSchema", schema ? schema : json_object(),
                                        "annotations", ann));
    }
}

/* ---------- argument helpers ---------- */

static char *msgf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *
msgf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s ? s : xstrdup("out of memory");
}

/* An apid error's message, after `what`; internal failures are logged in full. */
static char *
err_msg(sbx_error_t *err, const char *what)
{
    int status;
    const char *code, *m;
    apid_error_http(*err, &status, &code, &m);
    if (status >= 500)
        log_warn("mcp: %s: %s", what, (*err)->msg);
    char *s = msgf("%s: %s", what, m);
    sbx_error_release(err);
    return s;
}

static int
check_keys(json_t *a, const char *const *allowed, char **msg)
{
    const char *k;
    json_t *v;
    json_object_foreach (a, k, v) {
        bool ok = false;
        for (const char *const *p = allowed; *p; p++)
            ok = ok || !strcmp(k, *p);
        if (!ok) {
            cleanup_free char *list = xstrdup("");
            for (const char *const *p = allowed; *p; p++) {
                char *n = xasprintf("%s%s%s", list, *list ? ", " : "", *p);
                free(list);
                list = n;
            }
            *msg = msgf("unknown argument `%s` (expected: %s)", k, list);
            return -1;
        }
    }
    return 0;
}

/* NULL when absent; *msg set (and NULL returned) when present and not a string. */
static const char *
get_str(json_t *a, const char *k, bool required, char **msg)
{
    json_t *v = json_object_get(a, k);
    if ((!v || json_is_null(v)) && !required)
        return NULL;
    if (!json_is_string(v) || (required && !*json_string_value(v))) {
        *msg = msgf(required ? "argument `%s` is required: a non-empty string"
                             : "argument `%s` must be a string",
                    k);
        return NULL;
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        *msg = msgf("argument `%s` must not contain NUL characters", k);
        return NULL;
    }
    return json_string_value(v);
}

static int
get_int(json_t *a, const char *k, int64_t def, int64_t min, int64_t max, int64_t *out, char **msg)
{
    json_t *v = json_object_get(a, k);
    *out = def;
    if (!v || json_is_null(v))
        return 0;
    double d = json_is_number(v) ? json_number_value(v) : -1e300;
    if (!json_is_number(v) || d != (double)(int64_t)d || d < (double)min || d > (double)max) {
        *msg = msgf("argument `%s` must be an integer in %lld..%lld", k, (long long)min,
                    (long long)max);
        return -1;
    }
    *out = (int64_t)d;
    return 0;
}

static int
get_string_map(json_t *a, const char *k, json_t **out, char **msg)
{
    json_t *v = json_object_get(a, k);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    const char *key;
    json_t *x;
    if (!json_is_object(v))
        goto bad;
    json_object_foreach (v, key, x)
        if (!json_is_string(x))
            goto bad;
    *out = v;
    return 0;
bad:
    *msg = msgf("argument `%s` must be an object of string values", k);
    return -1;
}

/* The sandbox, which must be Running for anything that talks to its agent. */
static struct apid_sandbox *
running_sandbox(json_t *a, char **msg)
{
    const char *id = get_str(a, "sandbox_id", true, msg);
    if (!id)
        return NULL;
    if (!id_is_valid(id)) {
        *msg = msgf("sandbox `%.80s` not found (list_sandboxes shows the ids)", id);
        return NULL;
    }
    struct apid_sandbox *sb = NULL;
    sbx_error_t err = NULL;
    if (apid_mgr_get(id, &sb, &err) < 0) {
        sbx_error_release(&err);
        *msg = msgf("sandbox `%s` not found (list_sandboxes shows the ids)", id);
        return NULL;
    }
    if (sb->state != ST_RUNNING) {
        *msg = msgf("sandbox `%s` is %s, not Running%s", id, apid_state_name(sb->state),
                    sb->state == ST_PAUSED ? ": resume it first" : "");
        apid_sandbox_free(sb);
        return NULL;
    }
    return sb;
}

static char *
query_escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    char *r = xstrdup(e ? e : "");
    curl_free(e);
    return r;
}

/* Length of the longest prefix of s[0..n) that does not end inside a UTF-8 sequence. */
static size_t
utf8_cut(const char *s, size_t n)
{
    size_t i = n;
    while (i > 0 && i > n - 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--;
    if (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0xC0) {
        unsigned char c = (unsigned char)s[i - 1];
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        if (n - (i - 1) < need)
            return i - 1;
    }
    return n;
}

/* ---------- commands ---------- */

/* Keeps the start and the end of long output, so both the command's first lines and its final
 * error stay visible. */
static json_t *
bounded_output(const struct sbx_buf *b, size_t max, bool *cut)
{
    if (b->len <= max)
        return sbx_json_text(b->p ? b->p : "", b->len);
    *cut = true;
    size_t head = utf8_cut(b->p, max / 2);
    size_t ts = b->len - max / 2;
    while (ts < b->len && ((unsigned char)b->p[ts] & 0xC0) == 0x80)
        ts++;
    cleanup_free char *note =
        xasprintf("\n[... %zu bytes cut by sbx: output longer than max_output_bytes ...]\n",
                  b->len - head - (b->len - ts));
    struct sbx_buf o = {0};
    sbx_buf_add(&o, b->p, head);
    sbx_buf_add(&o, note, strlen(note));
    sbx_buf_add(&o, b->p + ts, b->len - ts);
    json_t *j = sbx_json_text(o.p, o.len);
    free(o.p);
    return j;
}

struct cmd_out {
    struct sbx_buf out, err;
    int exit_code;
    bool timed_out, stream_cut;
    char *spawn_error;
    int64_t ms;
};

static void
parse_stream(const char *body, size_t len, struct cmd_out *r)
{
    r->exit_code = -1;
    cleanup_free char *copy = xmalloc0(len + 1);
    memcpy(copy, body, len);
    char *save = NULL;
    for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(l, "data:", 5))
            l += l[5] == ' ' ? 6 : 5;
        if (*l != '{')
            continue;
        json_t *ev = json_loads(l, JSON_ALLOW_NUL, NULL);
        const char *type = json_string_value(json_object_get(ev, "type"));
        json_t *tv = json_object_get(ev, "text");
        if (!type) {
        } else if ((!strcmp(type, "stdout") || !strcmp(type, "stderr")) && json_is_string(tv)) {
            /* One event per line without its newline; an empty line is "\n". */
            struct sbx_buf *b = type[3] == 'o' ? &r->out : &r->err;
            if (strcmp(json_string_value(tv), "\n"))
                sbx_buf_add(b, json_string_value(tv), json_string_length(tv));
            sbx_buf_add(b, "\n", 1);
        } else if (!strcmp(type, "execution_complete")) {
            r->exit_code = 0;
        } else if (!strcmp(type, "error")) {
            json_t *e = json_object_get(ev, "error");
            const char *ev_val = json_string_value(json_object_get(e, "evalue"));
            const char *tb = json_string_value(json_array_get(json_object_get(e, "traceback"), 0));
            int64_t v;
            if (ev_val && parse_int64(ev_val, INT32_MIN, INT32_MAX, &v) == 0) {
                r->exit_code = (int)v;
            } else {
                r->exit_code = 127;
                free(r->spawn_error);
                r->spawn_error = xstrdup(ev_val ? ev_val : "the command could not be started");
            }
            if (tb && !strncmp(tb, "timeout", 7))
                r->timed_out = true;
        }
        json_decref(ev);
    }
}

/* Runs `command` through the agent; -1 with *msg when it could not be run at all. */
static int
agent_command(const struct apid_sandbox *sb, const char *command, const char *cwd, json_t *env,
              int64_t timeout_ms, struct cmd_out *r, char **msg)
{
    json_t *req = json_pack("{s:s, s:I}", "command", command, "timeout", (json_int_t)timeout_ms);
    if (cwd)
        json_object_set_new(req, "cwd", json_string(cwd));
    if (env)
        json_object_set(req, "envs", env);
    cleanup_free char *txt = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    struct apid_agent_target t;
    apid_agent_target_of(sb, &t);
    struct apid_http_resp resp;
    sbx_error_t err = NULL;
    int64_t t0 = apid_now_ms();
    /* The agent enforces the timeout; the slack only bounds a hung agent. */
    if (apid_agent_request(&t, "POST", "/command", "application/json", txt, strlen(txt),
                           (int)(timeout_ms + 10000), AGENT_STREAM_MAX, &resp, &err) < 0) {
        *msg = err_msg(&err, "running the command");
        return -1;
    }
    r->ms = apid_now_ms() - t0;
    int rc = 0;
    if (resp.status != 200) {
        cleanup_free char *m = apid_agent_message(&resp);
        *msg = msgf("the sandbox could not run the command (agent answered %d): %s", resp.status,
                    m ? m : "no message");
        rc = -1;
    } else {
        parse_stream(resp.body, resp.len, r);
        r->stream_cut = resp.truncated;
        if (r->exit_code == -1 && !r->timed_out && timeout_ms > 0 && r->ms >= timeout_ms)
            r->timed_out = true;
        /* We stopped reading: stop the command too rather than let it run on unseen. */
        cleanup_free char *cmd_id = NULL;
        if (resp.truncated) {
            const char *init = strstr(resp.body, "\"init\"");
            const char *tx = init ? strstr(init, "\"text\":\"") : NULL;
            if (tx) {
                tx += 8;
                size_t n = strspn(tx, "0123456789abcdefABCDEF-");
                cmd_id = strndup(tx, n);
            }
        }
        if (cmd_id && *cmd_id) {
            cleanup_free char *p = xasprintf("/command?id=%s", cmd_id);
            apid_agent_delete(&t, p);
        }
    }
    apid_http_resp_free(&resp);
    return rc;
}

static json_t *
cmd_result(const struct apid_sandbox *sb, struct cmd_out *r, size_t max_out)
{
    bool cut = r->stream_cut;
    json_t *o = json_pack("{s:s, s:i, s:o, s:o, s:I, s:b}", "sandbox_id", sb->id, "exit_code",
                          r->exit_code, "stdout", bounded_output(&r->out, max_out, &cut), "stderr",
                          bounded_output(&r->err, max_out, &cut), "duration_ms", (json_int_t)r->ms,
                          "timed_out", r->timed_out);
    json_object_set_new(o, "truncated", json_boolean(cut));
    if (r->stream_cut)
        json_object_set_new(o, "note",
                            json_string("the command wrote more than 8 MiB of output: "
                                        "sbx stopped reading and killed it"));
    return o;
}

static void
cmd_out_free(struct cmd_out *r)
{
    free(r->out.p);
    free(r->err.p);
    free(r->spawn_error);
}

static int
common_run_args(json_t *a, const char **cwd, json_t **env, int64_t *timeout_ms, int64_t *max_out,
                char **msg)
{
    json_t *tv = json_object_get(a, "timeout");
    *timeout_ms = CMD_TIMEOUT_DEFAULT * 1000;
    if (tv && !json_is_null(tv)) {
        double d = json_is_number(tv) ? json_number_value(tv) : -1;
        if (!(d > 0) || d > CMD_TIMEOUT_MAX) {
            *msg =
                msgf("argument `timeout` must be a number of seconds in (0, %d]", CMD_TIMEOUT_MAX);
            return -1;
        }
        *timeout_ms = (int64_t)(d * 1000 + 0.999);
    }
    *cwd = get_str(a, "cwd", false, msg);
    if (*msg)
        return -1;
    if (get_string_map(a, "env", env, msg) < 0)
        return -1;
    return get_int(a, "max_output_bytes", OUTPUT_DEFAULT, 1024, OUTPUT_MAX, max_out, msg);
}

static json_t *
t_run_command(json_t *a, char **msg)
{
    static const char *const keys[] = {"sandbox_id", "command",          "cwd", "env",
                                       "timeout",    "max_output_bytes", NULL};
    const char *cwd = NULL, *command;
    json_t *env = NULL;
    int64_t tmo, max_out;
    if (check_keys(a, keys, msg) < 0 || !(command = get_str(a, "command", true, msg)) ||
        common_run_args(a, &cwd, &env, &tmo, &max_out, msg) < 0)
        return NULL;
    struct apid_sandbox *sb = running_sandbox(a, msg);
    if (!sb)
        return NULL;
    struct cmd_out r = {0};
    json_t *o = NULL;
    if (agent_command(sb, command, cwd, env, tmo, &r, msg) == 0) {
        o = cmd_result(sb, &r, (size_t)max_out);
        if (r.spawn_error)
            json_object_set_new(o, "error", json_string(r.spawn_error));
    }
    cmd_out_free(&r);
    apid_sandbox_free(sb);
    return o;
}

static const struct lang {
    const char *name, *ext, *interp[3];
} langs[] = {
    {"python", "py", {"python3", "python", NULL}},
    {"node", "js", {"node", "nodejs", NULL}},
    {"bash", "sh", {"bash", NULL, NULL}},
    {"sh", "sh", {"sh", NULL, NULL}},
};

static json_t *
t_run_code(json_t *a, char **msg)
{
    static const char *const keys[] = {"sandbox_id", "language",         "code", "cwd", "env",
                                       "timeout",    "max_output_bytes", NULL};
    const char *cwd = NULL, *lang_s, *code;
    json_t *env = NULL;
    int64_t tmo, max_out;
    if (check_keys(a, keys, msg) < 0 || !(lang_s = get_str(a, "language", true, msg)) ||
        !(code = get_str(a, "code", true, msg)) ||
        common_run_args(a, &cwd, &env, &tmo, &max_out, msg) < 0)
        return NULL;
    const struct lang *lg = NULL;
    for (size_t i = 0; i < ARRAY_SIZE(langs); i++)
        if (!strcmp(lang_s, langs[i].name) || (!strcmp(lang_s, "python3") && i == 0) ||
            ((!strcmp(lang_s, "javascript") || !strcmp(lang_s, "js")) && i == 1))
            lg = &langs[i];
    if (!lg) {
        *msg =
            msgf("argument `language` must be one of python, node, bash, sh (got `%.40s`)", lang_s);
        return NULL;
    }
    struct apid_sandbox *sb = running_sandbox(a, msg);
    if (!sb)
        return NULL;
    char rnd[17];
    random_hex(rnd, 16);
    cleanup_free char *path = xasprintf("/tmp/sbx-mcp-%s.%s", rnd, lg->ext);
    struct apid_agent_target t;
    apid_agent_target_of(sb, &t);
    sbx_error_t err = NULL;
    json_t *o = NULL;
    /* 644: only read by the interpreter, never executed or changed. */
    if (apid_agent_upload(&t, path, 644, code, strlen(code), 30000, &err) < 0) {
        *msg = err_msg(&err, "writing the code into the sandbox");
        apid_sandbox_free(sb);
        return NULL;
    }
    /* The interpreter is looked up in the sandbox, and its absence told apart from the program's
     * own exit status 127 by a marker line no program prints by accident. */
    struct sbx_buf cmd = {0};
    sbx_buf_add(&cmd, "for i in", 8);
    for (int i = 0; lg->interp[i]; i++) {
        sbx_buf_add(&cmd, " ", 1);
        sbx_buf_add(&cmd, lg->interp[i], strlen(lg->interp[i]));
    }
    cleanup_free char *tail =
        xasprintf("; do if command -v \"$i\" >/dev/null 2>&1; then exec \"$i\" %s; fi; done; "
                  "echo " NO_INTERP_MARK " >&2; exit 127",
                  path);
    sbx_buf_add(&cmd, tail, strlen(tail));
    struct cmd_out r = {0};
    if (agent_command(sb, cmd.p, cwd, env, tmo, &r, msg) == 0) {
        if (r.exit_code == 127 && r.err.p && strstr(r.err.p, NO_INTERP_MARK "\n") == r.err.p) {
            cleanup_free char *names = xstrdup(lg->interp[0]);
            for (int i = 1; lg->interp[i]; i++) {
                char *n = xasprintf("%s or %s", names, lg->interp[i]);
                free(names);
                names = n;
            }
            *msg = msgf("the image of sandbox %s (%s) has no %s interpreter: %s is not on its "
                        "PATH. Create a sandbox from an image that has it (local/host has "
                        "python3, node and bash; local/busybox only sh).",
                        sb->id, sb->image_uri ? sb->image_uri : "?", lg->name, names);
        } else {
            o = cmd_result(sb, &r, (size_t)max_out);
            json_object_set_new(o, "language", json_string(lg->name));
        }
    }
    free(cmd.p);
    cmd_out_free(&r);
    cleanup_free char *q = query_escape(path);
    cleanup_free char *del = xasprintf("/files?path=%s", q);
    apid_agent_delete(&t, del);
    apid_sandbox_free(sb);
    return o;
}

/* ---------- files ---------- */

/* GET on the agent answering JSON; *msg for anything else. */
static json_t *
agent_get_json(const struct apid_sandbox *sb, const char *path, const char *what, char **msg)
{
    struct apid_agent_target t;
    apid_agent_target_of(sb, &t);
    struct apid_http_resp resp;
    sbx_error_t err = NULL;
    if (apid_agent_request(&t, "GET", path, NULL, NULL, 0, 30000, 16u << 20, &resp, &err) < 0) {
        *msg = err_msg(&err, what);
        return NULL;
    }
    json_t *j = json_loadb(resp.body, resp.len, 0, NULL);
    if (resp.status != 200 || !j || resp.truncated) {
        const char *m = json_string_value(json_object_get(j, "message"));
        *msg = resp.truncated ? msgf("%s: the answer is too large", what)
               : m            ? msgf("%s: %s", what, m)
                              : msgf("%s: the sandbox agent answered %d", what, resp.status);
        json_decref(j);
        j = NULL;
    }
    apid_http_resp_free(&resp);
    return j;
}

static json_t *
t_read_file(json_t *a, char **msg)
{
    static const char *const keys[] = {"sandbox_id", "path", "max_bytes", NULL};
    const char *path;
    int64_t max;
    if (check_keys(a, keys, msg) < 0 || !(path = get_str(a, "path", true, msg)) ||
        get_int(a, "max_bytes", READ_DEFAULT, 1, READ_MAX, &max, msg) < 0)
        return NULL;
    struct apid_sandbox *sb = running_sandbox(a, msg);
    if (!sb)
        return NULL;
    cleanup_free char *q = query_escape(path);
    cleanup_free char *ip = xasprintf("/files/info?path=%s", q);
    cleanup_free char *what = xasprintf("reading %s", path);
    json_t *info = agent_get_json(sb, ip, what, msg);
    json_t *fi = json_object_get(info, path);
    const char *type = json_string_value(json_object_get(fi, "type"));
    json_t *o = NULL;
    if (!info) {
    } else if (!type || strcmp(type, "file")) {
        *msg = msgf("%s is a %s, not a file%s", path, type ? type : "thing of unknown type",
                    type && !strcmp(type, "directory") ? ": use list_directory" : "");
    } else {
        int64_t size = json_integer_value(json_object_get(fi, "size"));
        cleanup_free char *dp = xasprintf("/files/download?path=%s", q);
        struct apid_agent_target t;
        apid_agent_target_of(sb, &t);
        struct apid_http_resp resp;
        sbx_error_t err = NULL;
        if (apid_agent_request(&t, "GET", dp, NULL, NULL, 0, 60000, (size_t)max, &resp, &err) < 0) {
            *msg = err_msg(&err, what);
        } else if (resp.status != 200) {
            cleanup_free char *m = apid_agent_message(&resp);
            *msg = msgf("%s: %s", what, m ? m : "the sandbox agent refused");
        } else {
            size_t n = resp.len;
            bool cut = resp.truncated || n > (size_t)max || (int64_t)n < size;
            if (n > (size_t)max)
                n = (size_t)max;
            size_t tn = cut ? utf8_cut(resp.body, n) : n;
            json_t *txt = memchr(resp.body, '\0', tn) ? NULL : json_stringn(resp.body, tn);
            o = json_pack("{s:s, s:s, s:I}", "sandbox_id", sb->id, "path", path, "size",
                          (json_int_t)(size > (int64_t)resp.len ? size : (int64_t)resp.len));
            if (txt) {
                json_object_set_new(o, "encoding", json_string("utf8"));
                json_object_set_new(o, "content", txt);
                n = tn;
            } else {
                size_t bl = 4 * ((n + 2) / 3) + 1;
                unsigned char *b64 = xmalloc0(bl);
                EVP_EncodeBlock(b64, (const unsigned char *)resp.body, (int)n);
                json_object_set_new(o, "encoding", json_string("base64"));
                json_object_set_new(o, "content", json_string((char *)b64));
                free(b64);
            }
            json_object_set_new(o, "returned_bytes", json_integer((json_int_t)n));
            json_object_set_new(o, "truncated", json_boolean(cut));
        }
        apid_http_resp_free(&resp);
    }
    json_decref(info);
    apid_sandbox_free(sb);
    return o;
}

static json_t *
t_write_file(json_t *a, char **msg)
{
    static const char *const keys[] = {"sandbox_id", "path", "content", "encoding", "mode", NULL};
    const char *path, *enc, *mode_s;
    json_t *cv = json_object_get(a, "content");
    if (check_keys(a, keys, msg) < 0 || !(path = get_str(a, "path", true, msg)))
        return NULL;
    enc = get_str(a, "encoding", false, msg);
    if (*msg)
        return NULL;
    mode_s = get_str(a, "mode", false, msg);
    if (*msg)
        return NULL;
    if (!json_is_string(cv)) {
        *msg = msgf("argument `content` is required: a string");
        return NULL;
    }
    if (enc && strcmp(enc, "utf8") && strcmp(enc, "base64")) {
        *msg = msgf("argument `encoding` must be utf8 or base64");
        return NULL;
    }
    int mode = 0;
    if (mode_s) {
        size_t ml = strlen(mode_s);
        if (ml < 3 || ml > 4 || strspn(mode_s, "01234567") != ml) {
            *msg = msgf("argument `mode` must be 3 or 4 octal digits such as \"644\" or \"755\"");
            return NULL;
        }
        mode = atoi(mode_s); /* the agent's decimal-digits-are-octal form (§B.9) */
    }
    const char *data = json_string_value(cv);
    size_t len = json_string_length(cv);
    cleanup_free unsigned char *bin = NULL;
    if (enc && !strcmp(enc, "base64")) {
        /* EVP_DecodeBlock takes no whitespace and counts padding as zero bytes. */
        cleanup_free char *clean = xmalloc0(len + 1);
        size_t cl = 0;
        for (size_t i = 0; i < len; i++)
            if (!strchr(" \t\r\n", data[i]))
                clean[cl++] = data[i];
        bin = xmalloc0(cl / 4 * 3 + 3);
        int n = cl % 4 == 0 && strspn(clean, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                             "0123456789+/=") == cl
                    ? EVP_DecodeBlock(bin, (unsigned char *)clean, (int)cl)
                    : -1;
        if (n < 0) {
            *msg = msgf("argument `content` is not valid base64");
            return NULL;
        }
        if (cl >= 1 && clean[cl - 1] == '=')
            n--;
        if (cl >= 2 && clean[cl - 2] == '=')
            n--;
        data = (const char *)bin;
        len = (size_t)n;
    }
    struct apid_sandbox *sb = running_sandbox(a, msg);
    if (!sb)
        return NULL;
    struct apid_agent_target t;
    apid_agent_target_of(sb, &t);
    sbx_error_t err = NULL;
    json_t *o = NULL;
    if (apid_agent_upload(&t, path, mode, data, len, 60000, &err) < 0)
        *msg = err_msg(&err, "writing the file");
    else
        o = json_pack("{s:s, s:s, s:I}", "sandbox_id", sb->id, "path", path, "bytes_written",
                      (json_int_t)len);
    apid_sandbox_free(sb);
    return o;
}

static json_t *
t_list_dir(json_t *a, char **msg)
{
    static const char *const keys[] = {"sandbox_id", "path", "depth", NULL};
    const char *path;
    int64_t depth;
    if (check_keys(a, keys, msg) < 0 || !(path = get_str(a, "path", true, msg)) ||
        get_int(a, "depth", 1, 1, LIST_DEPTH_MAX, &depth, msg) < 0)
        return NULL;
    struct apid_sandbox *sb = running_sandbox(a, msg);
    if (!sb)
        return NULL;
    cleanup_free char *q = query_escape(path);
    cleanup_free char *lp = xasprintf("/directories/list?path=%s&depth=%lld", q, (long long)depth);
    cleanup_free char *what = xasprintf("listing %s", path);
    json_t *arr = agent_get_json(sb, lp, what, msg);
    json_t *o = NULL;
    if (arr && !json_is_array(arr)) {
        *msg = msgf("%s: the sandbox agent sent no list", what);
    } else if (arr) {
        json_t *entries = json_array();
        size_t i;
        json_t *x;
        json_array_foreach (arr, i, x) {
            if (i >= LIST_MAX)
                break;
            json_t *e = json_object();
            static const char *const fields[] = {"path", "type", "size", "mode", "modified_at"};
            for (size_t f = 0; f < ARRAY_SIZE(fields); f++) {
                json_t *v = json_object_get(x, fields[f]);
                if (v)
                    json_object_set(e, fields[f], v);
            }
            json_array_append_new(entries, e);
        }
        o = json_pack("{s:s, s:s, s:o, s:b}", "sandbox_id", sb->id, "path", path, "entries",
                      entries, "truncated", json_array_size(arr) > LIST_MAX);
        if (json_array_size(arr) > LIST_MAX)
            json_object_set_new(
                o, "note",
                json_sprintf("only the first %d of %zu entries", LIST_MAX, json_array_size(arr)));
    }
    json_decref(arr);
    apid_sandbox_free(sb);
    return o;
}

/* ---------- lifecycle ---------- */

static json_t *
sandbox_summary(const struct apid_sandbox *sb)
{
    json_t *full = apid_sandbox_json(sb, true);
    json_t *st = json_object_get(full, "status");
    json_t *o = json_pack("{s:s, s:O}", "id", sb->id, "state", json_object_get(st, "state"));
    if (sb->image_uri)
        json_object_set_new(o, "image", json_string(sb->image_uri));
    static const char *const copy[] = {"createdAt", "expiresAt", "metadata"};
    for (size_t i = 0; i < ARRAY_SIZE(copy); i++)
        if (json_object_get(full, copy[i]))
            json_object_set(o, copy[i], json_object_get(full, copy[i]));
    if (json_object_get(st, "message"))
        json_object_set(o, "message", json_object_get(st, "message"));
    json_decref(full);
    return o;
}

static json_t *
t_create(json_t *a, char **msg)
{
    static const char *const keys[] = {"image",   "env",      "timeout",      "cpu", "memory",
                                       "network", "metadata", "wait_seconds", NULL};
    const char *image, *cpu, *mem, *net;
    json_t *env, *md;
    int64_t timeout, wait_s;
    if (check_keys(a, keys, msg) < 0)
        return NULL;
    if ((image = get_str(a, "image", false, msg), *msg) ||
        (cpu = get_str(a, "cpu", false, msg), *msg) ||
        (mem = get_str(a, "memory", false, msg), *msg) ||
        (net = get_str(a, "network", false, msg), *msg) ||
        get_string_map(a, "env", &env, msg) < 0 || get_string_map(a, "metadata", &md, msg) < 0 ||
        get_int(a, "timeout", 600, 1, 100LL * 365 * 86400, &timeout, msg) < 0 ||
        get_int(a, "wait_seconds", CREATE_WAIT_DEFAULT, 0, CREATE_WAIT_MAX, &wait_s, msg) < 0)
        return NULL;
    if (net && strcmp(net, "default") && strcmp(net, "deny") && strcmp(net, "allow") &&
        strcmp(net, "none")) {
        *msg = msgf("argument `network` must be default, deny, allow or none");
        return NULL;
    }
    /* The lifecycle API's own validation, on the equivalent create body. The entrypoint is the
     * agent alone (as for sessions): a placeholder satisfies the validation and is cleared. */
    json_t *body = json_pack("{s:{s:s}, s:[s], s:I}", "image", "uri",
                             image && *image ? image : "local/busybox", "entrypoint", "true",
                             "timeout", (json_int_t)timeout);
    if (env)
        json_object_set(body, "env", env);
    if (md)
        json_object_set(body, "metadata", md);
    if (cpu || mem) {
        json_t *rl = json_object();
        if (cpu)
            json_object_set_new(rl, "cpu", json_string(cpu));
        if (mem)
            json_object_set_new(rl, "memory", json_string(mem));
        json_object_set_new(body, "resourceLimits", rl);
    }
    if (net && !strcmp(net, "none"))
        json_object_set_new(body, "extensions", json_pack("{s:s}", "network", "none"));
    else if (net && strcmp(net, "default"))
        json_object_set_new(body, "networkPolicy", json_pack("{s:s}", "defaultAction", net));
    cleanup_free char *bs = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    struct apid_create_req cr;
    sbx_error_t err = NULL;
    pthread_mutex_lock(&ctx->cfg_lock);
    int rc = apid_parse_create(bs, strlen(bs), ctx->cfg, &cr, &err);
    pthread_mutex_unlock(&ctx->cfg_lock);
    if (rc < 0) {
        *msg = err_msg(&err, "creating the sandbox");
        return NULL;
    }
    json_array_clear(cr.entrypoint);
    struct apid_sandbox *sb = NULL;
    bool pooled = false;
    rc = apid_pool_create(&cr, &pooled, &sb, &err);
    apid_create_req_free(&cr);
    if (rc < 0) {
        *msg = err_msg(&err, "creating the sandbox");
        return NULL;
    }
    char id[65];
    snprintf(id, sizeof(id), "%s", sb->id);
    /* Ready means the agent answers: a Pending sandbox (pulling its image) is polled until it
     * runs, ends, or wait_seconds pass. */
    int64_t deadline = apid_now_ms() + wait_s * 1000;
    bool ready = false;
    for (;;) {
        if (sb->state == ST_RUNNING) {
            struct apid_agent_target t;
            apid_agent_target_of(sb, &t);
            int64_t left = deadline - apid_now_ms();
            if (apid_agent_wait_ready(&t, (int)(left > 1000 ? left : 1000), &err) == 0) {
                ready = true;
                break;
            }
            sbx_error_release(&err);
        }
        if (apid_state_terminal(sb->state) || sb->state == ST_FAILED) {
            *msg = msgf("sandbox %s did not start: %s%s%s", id,
                        sb->reason ? sb->reason : apid_state_name(sb->state),
                        sb->message ? ": " : "", sb->message ? sb->message : "");
            break;
        }
        if (apid_now_ms() >= deadline)
            break;
        usleep(200 * 1000);
        struct apid_sandbox *n = NULL;
        if (apid_mgr_get(id, &n, &err) < 0) {
            *msg = err_msg(&err, "the new sandbox disappeared");
            break;
        }
        apid_sandbox_free(sb);
        sb = n;
    }
    json_t *o = NULL;
    if (*msg) {
        /* Never leave a sandbox that failed to start behind a failed tool call. */
        if (apid_mgr_delete(id, "MCP_START_FAILED", &err) < 0)
            sbx_error_release(&err);
    } else {
        o = sandbox_summary(sb);
        json_object_set_new(o, "ready", json_boolean(ready));
        if (!ready)
            json_object_set_new(o, "note",
                                json_string("not ready yet: the image may still be "
                                            "pulling; list_sandboxes shows its state"));
        log_info("mcp: sandbox %s created (%s)", id, pooled ? "pool" : "cold");
    }
    apid_sandbox_free(sb);
    return o;
}

static json_t *
t_list(json_t *a, char **msg)
{
    static const char *const keys[] = {"state", "metadata", NULL};
    const char *state;
    json_t *md;
    if (check_keys(a, keys, msg) < 0 || (state = get_str(a, "state", false, msg), *msg) ||
        get_string_map(a, "metadata", &md, msg) < 0)
        return NULL;
    unsigned mask = 0;
    if (state) {
        int st = apid_state_parse(state);
        if (st < 0) {
            *msg = msgf("argument `state` `%.40s` is not a sandbox state", state);
            return NULL;
        }
        mask = 1u << st;
    }
    struct apid_sandbox **items = NULL;
    size_t n = 0;
    int64_t total = 0;
    sbx_error_t err = NULL;
    if (apid_store_list(ctx->store, mask, md && json_object_size(md) ? md : NULL, 1, 200, &items,
                        &n, &total, &err) < 0) {
        *msg = err_msg(&err, "listing sandboxes");
        return NULL;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, sandbox_summary(items[i]));
    apid_sandbox_list_free(items, n);
    json_t *o = json_pack("{s:o, s:I}", "sandboxes", arr, "total", (json_int_t)total);
    if (total > (int64_t)n)
        json_object_set_new(o, "note", json_sprintf("only the newest %zu are listed", n));
    return o;
}

static json_t *
t_delete(json_t *a, char **msg)
{
    static const char *const keys[] = {"sandbox_id", NULL};
    const char *id;
    if (check_keys(a, keys, msg) < 0 || !(id = get_str(a, "sandbox_id", true, msg)))
        return NULL;
    sbx_error_t err = NULL;
    if (!id_is_valid(id)) {
        *msg = msgf("sandbox `%.80s` not found (list_sandboxes shows the ids)", id);
        return NULL;
    }
    if (apid_mgr_delete(id, "USER_DELETE", &err) < 0) {
        cleanup_free char *what = xasprintf("deleting sandbox %s", id);
        *msg = err_msg(&err, what);
        return NULL;
    }
    return json_pack("{s:s, s:b}", "sandbox_id", id, "deleted", true);
}

/* ---------- results ---------- */

static json_t *
tool_result(const struct tool *tl, json_t *args)
{
    char *msg = NULL;
    json_t *args_obj = args ? args : json_object();
    json_t *res = tl->run(args_obj, &msg);
    if (!args)
        json_decref(args_obj);
    if (!res) {
        json_t *r = json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text", "text",
                              msg ? msg : "the tool failed", "isError", true);
        log_info("mcp: %s: %s", tl->name, msg ? msg : "failed");
        free(msg);
        return r;
    }
    json_t *content = json_array();
    if (!strcmp(tl->name, "read_file") &&
        !strcmp(json_string_value(json_object_get(res, "encoding")), "utf8")) {
        /* The file's text itself, not a JSON string of it. */
        json_array_append_new(content, json_pack("{s:s, s:O}", "type", "text", "text",
                                                 json_object_get(res, "content")));
        if (json_is_true(json_object_get(res, "truncated")))
            json_array_append_new(
                content, json_pack("{s:s, s:s}", "type", "text", "text",
                                   "[sbx: the file is longer; only max_bytes were returned]"));
    } else {
        char *s = json_dumps(res, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_array_append_new(content, json_pack("{s:s, s:s}", "type", "text", "text", s ? s : ""));
        free(s);
    }
    return json_pack("{s:o, s:o, s:b}", "content", content, "structuredContent", res, "isError",
                     false);
}

json_t *
apid_mcp_tools_list(void)
{
    return tools_json;
}

json_t *
apid_mcp_tool_call(const char *name, json_t *args)
{
    for (size_t i = 0; i < ARRAY_SIZE(tools); i++)
        if (!strcmp(name, tools[i].name))
            return tool_result(&tools[i], args);
    return NULL;
}
