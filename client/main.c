/* sbx: the command-line client of sbx-apid (see docs/cli.md). Verbs map onto the OpenSandbox
 * lifecycle API and, through apid's proxy, the sandbox's agent. Configuration: flags, then the
 * environment (SBX_URL, SBX_API_KEY), then ~/.config/sbx/config.json. */
#include "cli.h"
#include "mcp.h"

#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <time.h>

#define DEFAULT_URL "http://127.0.0.1:8080"
#define KEY_MAX 4096

static const char usage_text[] =
    "Usage: sbx [GLOBAL OPTIONS] VERB [OPTIONS] [ARGS]\n"
    "\n"
    "Verbs:\n"
    "  create [--image REF] [--cpu N] [--memory SIZE] [--timeout S] [--env K=V]...\n"
    "         [--label K=V]... [--network none|deny|allow] [--allow-domain D]...\n"
    "         [--volume NAME:/path[:ro]]... [--wait] [-- ENTRYPOINT...]\n"
    "                         create a sandbox and print its id\n"
    "  ls [--state S]... [--label K=V]...     list sandboxes\n"
    "  inspect ID...                          show a sandbox\n"
    "  exec [-it] [-e K=V]... [-w DIR] [-u UID] [--timeout S] ID -- CMD...\n"
    "                         run a command; exits with its exit status\n"
    "  cp SRC ID:DST | cp ID:SRC DST          copy files and directories\n"
    "  logs [-f] ID                           the sandbox's main process output\n"
    "  pause|resume ID...                     freeze or thaw a sandbox\n"
    "  renew [--timeout S] ID...              push the expiry to now + S (600)\n"
    "  rm [-f] ID...                          delete sandboxes\n"
    "  port [--show-token] ID PORT            URL and headers that reach PORT\n"
    "  run [create options] -- CMD...         create, exec, delete\n"
    "  mcp                                    serve MCP over stdio\n"
    "\n"
    "Global options (also accepted after the verb):\n"
    "  --url URL            apid's URL (env SBX_URL, default " DEFAULT_URL ")\n"
    "  --api-key-file FILE  read the API key from FILE (env SBX_API_KEY)\n"
    "  --json               machine-readable output\n"
    "  -h, --help           this text;  --version  the version\n"
    "IDs may be abbreviated to any unique prefix.\n"
    "Config file: ~/.config/sbx/config.json {\"url\": ..., \"apiKey\": ... | \"apiKeyFile\": ...}\n"
    "\n"
    "Exit codes: 0 success, 1 apid refused or failed the request, 2 bad usage (flag, value,\n"
    "argument), 3 apid or the sandbox unreachable, 4 no such sandbox or an ambiguous id.\n"
    "exec and run exit with the command's status; 125 means sbx failed, 126 the command\n"
    "could not run, 127 it was not found, 130 sbx gave up after a second interrupt.\n";

static int usage_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int
usage_err(const char *fmt, ...)
{
    va_list ap;
    fputs("sbx: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see sbx --help)\n", stderr);
    return EX_USAGE;
}

static int
fail(sbx_error_t *err, int rc)
{
    sbx_error_print("sbx", err);
    return rc < 0 ? -rc : EX_FAIL;
}

/* ---------- configuration ---------- */

static char *
read_key_file(const char *path, sbx_error_t *err)
{
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        sbx_make_error(err, errno, "api key file %s", path);
        return NULL;
    }
    char buf[KEY_MAX + 1];
    ssize_t n = safe_read(fd, buf, sizeof(buf));
    if (n < 0) {
        sbx_make_error(err, errno, "read %s", path);
        return NULL;
    }
    if (n > KEY_MAX) {
        sbx_make_error(err, 0, "api key file %s: longer than %d bytes", path, KEY_MAX);
        return NULL;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    buf[n] = '\0';
    if (!n || strpbrk(buf, "\r\n")) {
        sbx_make_error(err, 0, "api key file %s: empty or more than one line", path);
        return NULL;
    }
    return xstrdup(buf);
}

static char *opt_url, *opt_keyfile;

static int
load_config(sbx_error_t *err)
{
    json_t *cf = NULL;
    const char *home = getenv("HOME");
    cleanup_free char *cpath = home ? xasprintf("%s/.config/sbx/config.json", home) : NULL;
    if (cpath && access(cpath, F_OK) == 0) {
        json_error_t je;
        cf = json_load_file(cpath, JSON_REJECT_DUPLICATES, &je);
        if (!json_is_object(cf)) {
            json_decref(cf);
            sbx_make_error(err, 0, "%s: line %d: %s", cpath, je.line,
                           cf ? "not an object" : je.text);
            return -EX_USAGE;
        }
    }
    const char *u = opt_url ? opt_url : getenv("SBX_URL");
    if (!u || !*u)
        u = json_string_value(json_object_get(cf, "url"));
    G.url = xstrdup(u && *u ? u : DEFAULT_URL);
    size_t n = strlen(G.url);
    while (n && G.url[n - 1] == '/')
        G.url[--n] = '\0';
    if (strncmp(G.url, "http://", 7) && strncmp(G.url, "https://", 8)) {
        json_decref(cf);
        sbx_make_error(err, 0, "URL '%s' must start with http:// or https://", G.url);
        return -EX_USAGE;
    }
    const char *kf = opt_keyfile;
    const char *k = kf ? NULL : getenv("SBX_API_KEY");
    if (!kf && (!k || !*k)) {
        k = json_string_value(json_object_get(cf, "apiKey"));
        kf = k ? NULL : json_string_value(json_object_get(cf, "apiKeyFile"));
    }
    if (kf) {
        G.key = read_key_file(kf, err);
        json_decref(cf);
        return G.key ? 0 : -EX_USAGE;
    }
    if (k && *k)
        G.key = xstrdup(k);
    json_decref(cf);
    return 0;
}

/* ---------- option parsing shared by the verbs ---------- */

enum {
    O_JSON = 1000,
    O_KEYFILE,
    O_URL,
    O_SHOWTOKEN,
    O_IMAGE,
    O_CPU,
    O_MEMORY,
    O_TIMEOUT,
    O_LABEL,
    O_NETWORK,
    O_ALLOW,
    O_VOLUME,
    O_WAIT,
    O_STATE,
    O_ENV,
};

#define COMMON_OPTS                                                                                \
    {"json", no_argument, NULL, O_JSON}, {"api-key-file", required_argument, NULL, O_KEYFILE},     \
        {"url", required_argument, NULL, O_URL}, {"help", no_argument, NULL, 'h'},                 \
    {                                                                                              \
        "show-token", no_argument, NULL, O_SHOWTOKEN                                               \
    }
#define CREATE_OPTS                                                                                \
    {"image", required_argument, NULL, O_IMAGE}, {"cpu", required_argument, NULL, O_CPU},          \
        {"memory", required_argument, NULL, O_MEMORY},                                             \
        {"timeout", required_argument, NULL, O_TIMEOUT}, {"env", required_argument, NULL, 'e'},    \
        {"label", required_argument, NULL, O_LABEL},                                               \
        {"network", required_argument, NULL, O_NETWORK},                                           \
        {"allow-domain", required_argument, NULL, O_ALLOW},                                        \
        {"volume", required_argument, NULL, O_VOLUME},                                             \
    {                                                                                              \
        "wait", no_argument, NULL, O_WAIT                                                          \
    }

/* Handles the options every verb takes; 1 when it was one of them, -1 on --help. */
static int
common_opt(int c)
{
    switch (c) {
    case O_JSON: G.json = true; return 1;
    case O_KEYFILE: opt_keyfile = optarg; return 1;
    case O_URL: opt_url = optarg; return 1;
    case O_SHOWTOKEN: G.show_token = true; return 1;
    case 'h': fputs(usage_text, stdout); return -1;
    default: return 0;
    }
}

static int
setup(void)
{
    sbx_error_t err = NULL;
    int rc = load_config(&err);
    if (rc < 0)
        return fail(&err, rc);
    return 0;
}

static bool
kv_ok(const char *s)
{
    const char *eq = strchr(s, '=');
    return eq && eq != s;
}

static bool
parse_secs(const char *s, int64_t min, int64_t *out)
{
    return parse_int64(s, min, 100LL * 365 * 86400, out) == 0;
}

/* ---------- create ---------- */

struct create_opts {
    json_t *body;
    json_t *env, *labels, *limits, *egress, *volumes;
    const char *network;
    bool wait;
};

/* Returns 1 when c was a create option, 0 when not, or an exit code + 2 on a bad value. */
static int
create_opt(struct create_opts *co, int c)
{
    int64_t v;
    char *eq;
    switch (c) {
    case O_IMAGE:
        if (!*optarg)
            return usage_err("--image: empty image reference") + 2;
        json_object_set_new(co->body, "image", json_pack("{s:s}", "uri", optarg));
        return 1;
    case O_CPU:
        if (parse_cpus(optarg, &v) < 0 || v <= 0)
            return usage_err("--cpu '%s' is not a CPU count (e.g. 0.5, 2, 500m)", optarg) + 2;
        json_object_set_new(co->limits, "cpu", json_string(optarg));
        return 1;
    case O_MEMORY:
        if (parse_size(optarg, &v) < 0 || v <= 0)
            return usage_err("--memory '%s' is not a size (e.g. 512Mi, 1G)", optarg) + 2;
        json_object_set_new(co->limits, "memory", json_string(optarg));
        return 1;
    case O_TIMEOUT:
        if (!parse_secs(optarg, 0, &v))
            return usage_err("--timeout '%s' is not a number of seconds", optarg) + 2;
        json_object_set_new(co->body, "timeout", v ? json_integer(v) : json_null());
        return 1;
    case 'e':
    case O_LABEL:
        if (!kv_ok(optarg))
            return usage_err("%s '%s' is not KEY=VALUE", c == 'e' ? "--env" : "--label", optarg) +
                   2;
        eq = strchr(optarg, '=');
        *eq = '\0';
        json_object_set_new(c == 'e' ? co->env : co->labels, optarg, json_string(eq + 1));
        *eq = '=';
        return 1;
    case O_NETWORK:
        if (strcmp(optarg, "none") && strcmp(optarg, "deny") && strcmp(optarg, "allow"))
            return usage_err("--network '%s' must be none, deny or allow", optarg) + 2;
        co->network = optarg;
        return 1;
    case O_ALLOW:
        if (!*optarg || strpbrk(optarg, " /\t"))
            return usage_err("--allow-domain '%s' is not a domain name", optarg) + 2;
        json_array_append_new(co->egress,
                              json_pack("{s:s, s:s}", "action", "allow", "target", optarg));
        return 1;
    case O_VOLUME: {
        /* NAME:/path[:ro] */
        cleanup_free char *s = xstrdup(optarg);
        char *p = strchr(s, ':');
        char *ro = p ? strchr(p + 1, ':') : NULL;
        if (ro)
            *ro++ = '\0';
        if (!p || p == s || p[1] != '/' || (ro && strcmp(ro, "ro") && strcmp(ro, "rw")))
            return usage_err("--volume '%s' is not NAME:/path[:ro]", optarg) + 2;
        *p++ = '\0';
        json_array_append_new(
            co->volumes, json_pack("{s:s, s:s, s:b, s:{s:s}}", "name", s, "mountPath", p,
                                   "readOnly", ro && !strcmp(ro, "ro"), "pvc", "claimName", s));
        return 1;
    }
    case O_WAIT: co->wait = true; return 1;
    default: return 0;
    }
}

static void
create_init(struct create_opts *co)
{
    co->body = json_pack("{s:{s:s}}", "image", "uri", "local/busybox");
    co->env = json_object();
    co->labels = json_object();
    co->limits = json_object();
    co->egress = json_array();
    co->volumes = json_array();
}

static void
create_free(struct create_opts *co)
{
    json_decref(co->body);
    json_decref(co->env);
    json_decref(co->labels);
    json_decref(co->limits);
    json_decref(co->egress);
    json_decref(co->volumes);
}

static json_t *
create_body(struct create_opts *co, char **entry)
{
    json_t *b = json_deep_copy(co->body);
    json_t *ep = json_array();
    if (entry && entry[0])
        for (char **a = entry; *a; a++)
            json_array_append_new(ep, json_string(*a));
    else
        for (const char *const *d = (const char *const[]){"tail", "-f", "/dev/null", NULL}; *d; d++)
            json_array_append_new(ep, json_string(*d));
    json_object_set_new(b, "entrypoint", ep);
    json_object_set(b, "env", co->env);
    json_object_set(b, "metadata", co->labels);
    json_object_set(b, "resourceLimits", co->limits);
    if (co->network && !strcmp(co->network, "none"))
        json_object_set_new(b, "extensions", json_pack("{s:s}", "network", "none"));
    if ((co->network && strcmp(co->network, "none")) || json_array_size(co->egress))
        json_object_set_new(
            b, "networkPolicy",
            json_pack("{s:s, s:O}", "defaultAction",
                      co->network && strcmp(co->network, "none") ? co->network : "deny", "egress",
                      co->egress));
    if (json_array_size(co->volumes))
        json_object_set(b, "volumes", co->volumes);
    return b;
}

static volatile sig_atomic_t stop_waiting;

/* Polls the sandbox until Running (printing its status as it changes: image pulls take long),
 * then the agent's /ping, as the SDKs decide readiness. */
static int
wait_ready(char *id, bool progress, sbx_error_t *err)
{
    cleanup_free char *last = NULL;
    cleanup_free char *path = xasprintf("/sandboxes/%s", id);
    int64_t deadline = sbx_monotonic_ms() + 600000;
    for (;;) {
        struct http_resp r;
        int rc = api_call("GET", path, NULL, &r, err);
        if (rc < 0) {
            http_resp_free(&r);
            return rc;
        }
        json_t *st = json_object_get(r.json, "status");
        const char *state = json_string_value(json_object_get(st, "state"));
        const char *reason = json_string_value(json_object_get(st, "reason"));
        const char *msg = json_string_value(json_object_get(st, "message"));
        cleanup_free char *now = xasprintf("%s%s%s%s%s", state ? state : "?", reason ? " " : "",
                                           reason ? reason : "", msg ? ": " : "", msg ? msg : "");
        if (progress && (!last || strcmp(last, now)))
            fprintf(stderr, "sbx: %.12s %s\n", id, now);
        free(last);
        last = xstrdup(now);
        bool running = state && !strcmp(state, "Running");
        bool dead = state && (!strcmp(state, "Failed") || !strcmp(state, "Terminated") ||
                              !strcmp(state, "Stopping"));
        http_resp_free(&r);
        if (dead) {
            sbx_make_error(err, 0, "sandbox %s did not start: %s", id, now);
            return -EX_FAIL;
        }
        if (running)
            break;
        if (sbx_monotonic_ms() > deadline || stop_waiting) {
            sbx_make_error(err, 0, "sandbox %s: gave up waiting (%s)", id, now);
            return -EX_FAIL;
        }
        usleep(200000);
    }
    struct agent_ep ep;
    cleanup_free char *idc = xstrdup(id);
    int rc = api_agent(&idc, &ep, err);
    if (rc < 0)
        return rc;
    cleanup_free char *url = xasprintf("%s/ping", ep.base);
    for (int i = 0; i < 300 && !stop_waiting; i++) {
        struct http_resp r;
        sbx_error_t e = NULL;
        rc = http_request("GET", url, ep.hdrs, NULL, 0, NULL, &r, &e);
        sbx_error_release(&e);
        long st = r.status;
        http_resp_free(&r);
        if (rc == 0 && st == 200) {
            agent_ep_free(&ep);
            return 0;
        }
        usleep(100000);
    }
    agent_ep_free(&ep);
    sbx_make_error(err, 0, "sandbox %s is Running but its agent does not answer", id);
    return -EX_CONN;
}

static int
do_create(struct create_opts *co, char **entry, char **idout, bool print)
{
    sbx_error_t err = NULL;
    json_t *b = create_body(co, entry);
    struct http_resp r;
    int rc = api_call("POST", "/sandboxes", b, &r, &err);
    json_decref(b);
    if (rc < 0) {
        http_resp_free(&r);
        return fail(&err, rc);
    }
    const char *id = json_string_value(json_object_get(r.json, "id"));
    if (!id) {
        http_resp_free(&r);
        fprintf(stderr, "sbx: apid's create reply has no id\n");
        return EX_FAIL;
    }
    *idout = xstrdup(id);
    if (co->wait && (rc = wait_ready(*idout, !G.json, &err)) < 0) {
        http_resp_free(&r);
        fprintf(stderr, "sbx: created %s\n", *idout);
        return fail(&err, rc);
    }
    if (print) {
        if (G.json) {
            json_dumpf(r.json, stdout, JSON_INDENT(2));
            putchar('\n');
        } else
            printf("%s\n", id);
    }
    http_resp_free(&r);
    return 0;
}

/* ---------- verbs ---------- */

static int
cmd_create(int argc, char **argv)
{
    static const struct option lo[] = {COMMON_OPTS, CREATE_OPTS, {0}};
    struct create_opts co = {0};
    create_init(&co);
    int c, rc = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, "+he:", lo, NULL)) != -1) {
        int k = common_opt(c);
        if (k < 0) {
            create_free(&co);
            return 0;
        }
        if (k)
            continue;
        k = create_opt(&co, c);
        if (k >= 2)
            rc = k - 2;
        else if (k == 0)
            rc = EX_USAGE;
    }
    if (rc == 0 && optind < argc && strcmp(argv[optind - 1], "--"))
        rc = usage_err("create: unexpected argument '%s' (the entrypoint goes after --)",
                       argv[optind]);
    if (rc == 0 && !(rc = setup())) {
        cleanup_free char *id = NULL;
        rc = do_create(&co, argv + optind, &id, true);
    }
    create_free(&co);
    return rc;
}

/* Verbs whose arguments are only ids (and -f for rm, --timeout for renew). */
static int
parse_simple(int argc, char **argv, const char *shorts, const struct option *lo, int (*extra)(int))
{
    int c;
    while ((c = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
        int k = common_opt(c);
        if (k < 0)
            return -1;
        if (k)
            continue;
        if (!extra || extra(c) <= 0)
            return EX_USAGE;
    }
    return 0;
}

static const char *
fmt_time(const char *iso, char *buf, size_t n)
{
    if (!iso)
        return "-";
    struct tm tm = {0};
    if (!strptime(iso, "%Y-%m-%dT%H:%M:%S", &tm))
        return iso;
    time_t t = timegm(&tm);
    long d = (long)(time(NULL) - t);
    if (d < 0) {
        d = -d;
        if (d < 120)
            snprintf(buf, n, "in %lds", d);
        else if (d < 7200)
            snprintf(buf, n, "in %ldm", d / 60);
        else
            snprintf(buf, n, "in %ldh", d / 3600);
    } else if (d < 120)
        snprintf(buf, n, "%lds ago", d);
    else if (d < 7200)
        snprintf(buf, n, "%ldm ago", d / 60);
    else if (d < 172800)
        snprintf(buf, n, "%ldh ago", d / 3600);
    else
        snprintf(buf, n, "%ldd ago", d / 86400);
    return buf;
}

static char *
labels_str(json_t *m)
{
    struct cli_buf b = {0};
    const char *k;
    json_t *v;
    json_object_foreach (m, k, v) {
        if (b.len)
            cli_buf_put(&b, ",", 1);
        cli_buf_put(&b, k, strlen(k));
        cli_buf_put(&b, "=", 1);
        const char *s = json_string_value(v);
        cli_buf_put(&b, s ? s : "", s ? strlen(s) : 0);
    }
    return b.p ? b.p : xstrdup("");
}

static json_t *ls_states, *ls_labels;

static int
ls_extra(int c)
{
    if (c == O_STATE) {
        json_array_append_new(ls_states, json_string(optarg));
        return 1;
    }
    if (c == O_LABEL) {
        if (!kv_ok(optarg))
            return usage_err("--label '%s' is not KEY=VALUE", optarg), -1;
        json_array_append_new(ls_labels, json_string(optarg));
        return 1;
    }
    return 0;
}

static int
cmd_ls(int argc, char **argv)
{
    static const struct option lo[] = {COMMON_OPTS,
                                       {"state", required_argument, NULL, O_STATE},
                                       {"label", required_argument, NULL, O_LABEL},
                                       {0}};
    ls_states = json_array();
    ls_labels = json_array();
    int rc = parse_simple(argc, argv, "h", lo, ls_extra);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (optind < argc)
        return usage_err("ls: unexpected argument '%s'", argv[optind]);
    if ((rc = setup()))
        return rc;
    struct cli_buf q = {0};
    size_t i;
    json_t *v;
    json_array_foreach (ls_states, i, v) {
        cleanup_free char *e = url_escape(json_string_value(v));
        cleanup_free char *s = xasprintf("&state=%s", e);
        cli_buf_put(&q, s, strlen(s));
    }
    if (json_array_size(ls_labels)) {
        struct cli_buf m = {0};
        json_array_foreach (ls_labels, i, v) {
            const char *kv = json_string_value(v);
            const char *eq = strchr(kv, '=');
            cleanup_free char *k = strndup(kv, (size_t)(eq - kv));
            cleanup_free char *ke = url_escape(k), *ve = url_escape(eq + 1);
            cleanup_free char *s = xasprintf("%s%s=%s", i ? "&" : "", ke, ve);
            cli_buf_put(&m, s, strlen(s));
        }
        cleanup_free char *me = url_escape(m.p);
        cleanup_free char *s = xasprintf("&metadata=%s", me);
        cli_buf_put(&q, s, strlen(s));
        cli_buf_free(&m);
    }
    json_t *all = json_array();
    sbx_error_t err = NULL;
    for (int page = 1; page <= 100; page++) {
        cleanup_free char *path =
            xasprintf("/sandboxes?pageSize=200&page=%d%s", page, q.p ? q.p : "");
        struct http_resp r;
        if ((rc = api_call("GET", path, NULL, &r, &err)) < 0) {
            http_resp_free(&r);
            cli_buf_free(&q);
            json_decref(all);
            return fail(&err, rc);
        }
        json_array_extend(all, json_object_get(r.json, "items"));
        bool more =
            json_is_true(json_object_get(json_object_get(r.json, "pagination"), "hasNextPage"));
        http_resp_free(&r);
        if (!more)
            break;
    }
    cli_buf_free(&q);
    if (G.json) {
        json_dumpf(all, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(all);
        return 0;
    }
    printf("%-36s  %-10s  %-24s  %-10s  %-10s  %s\n", "ID", "STATE", "IMAGE", "CREATED", "EXPIRES",
           "LABELS");
    json_array_foreach (all, i, v) {
        char b1[32], b2[32];
        cleanup_free char *l = labels_str(json_object_get(v, "metadata"));
        const char *img = json_string_value(json_object_get(json_object_get(v, "image"), "uri"));
        printf("%-36s  %-10s  %-24s  %-10s  %-10s  %s\n",
               json_string_value(json_object_get(v, "id")),
               json_string_value(json_object_get(json_object_get(v, "status"), "state")),
               img ? img : "-",
               fmt_time(json_string_value(json_object_get(v, "createdAt")), b1, sizeof(b1)),
               fmt_time(json_string_value(json_object_get(v, "expiresAt")), b2, sizeof(b2)), l);
    }
    json_decref(all);
    return 0;
}

static bool rm_force;
static int64_t renew_secs = 600;

static int
rm_extra(int c)
{
    if (c == 'f') {
        rm_force = true;
        return 1;
    }
    return 0;
}

static int
renew_extra(int c)
{
    if (c == O_TIMEOUT) {
        if (!parse_secs(optarg, 1, &renew_secs))
            return usage_err("--timeout '%s' is not a number of seconds", optarg), -1;
        return 1;
    }
    return 0;
}

static void
print_inspect(json_t *o)
{
    json_t *st = json_object_get(o, "status");
    char b[32];
    const char *k;
    json_t *v;
    printf("ID:          %s\n", json_string_value(json_object_get(o, "id")));
    printf("State:       %s\n", json_string_value(json_object_get(st, "state")));
    if (json_object_get(st, "reason"))
        printf("Reason:      %s\n", json_string_value(json_object_get(st, "reason")));
    if (json_object_get(st, "message"))
        printf("Message:     %s\n", json_string_value(json_object_get(st, "message")));
    const char *img = json_string_value(json_object_get(json_object_get(o, "image"), "uri"));
    printf("Image:       %s\n", img ? img : "-");
    cleanup_free char *ep = NULL;
    {
        json_t *e = json_object_get(o, "entrypoint");
        size_t n = json_array_size(e);
        char **a = xmalloc0((n + 1) * sizeof(char *));
        for (size_t i = 0; i < n; i++)
            a[i] = (char *)json_string_value(json_array_get(e, i));
        for (size_t i = 0; i < n; i++)
            if (!a[i])
                a[i] = "";
        ep = shell_join(a);
        free(a);
    }
    printf("Entrypoint:  %s\n", ep);
    const char *c = json_string_value(json_object_get(o, "createdAt"));
    const char *x = json_string_value(json_object_get(o, "expiresAt"));
    printf("Created:     %s (%s)\n", c ? c : "-", fmt_time(c, b, sizeof(b)));
    if (x)
        printf("Expires:     %s (%s)\n", x, fmt_time(x, b, sizeof(b)));
    else
        printf("Expires:     never\n");
    printf("Labels:\n");
    json_object_foreach (json_object_get(o, "metadata"), k, v)
        printf("  %s=%s\n", k, json_string_value(v));
}

/* inspect, pause, resume, renew, rm: one request per id, each reported; the worst code wins. */
static int
cmd_each(const char *verb, int argc, char **argv)
{
    static const struct option lo[] = {COMMON_OPTS,
                                       {"force", no_argument, NULL, 'f'},
                                       {"timeout", required_argument, NULL, O_TIMEOUT},
                                       {0}};
    bool is_rm = !strcmp(verb, "rm"), is_renew = !strcmp(verb, "renew");
    int rc = parse_simple(argc, argv, is_rm ? "hf" : "h", lo,
                          is_rm      ? rm_extra
                          : is_renew ? renew_extra
                                     : NULL);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (optind >= argc)
        return usage_err("%s: which sandbox? (an ID is required)", verb);
    if ((rc = setup()))
        return rc;
    int worst = 0;
    json_t *out = json_array();
    for (int i = optind; i < argc; i++) {
        sbx_error_t err = NULL;
        cleanup_free char *id = NULL;
        int r = api_resolve(argv[i], &id, &err);
        struct http_resp resp = {0};
        if (r == 0) {
            cleanup_free char *path = NULL;
            json_t *body = NULL;
            const char *m = "POST";
            if (!strcmp(verb, "inspect")) {
                m = "GET";
                path = xasprintf("/sandboxes/%s", id);
            } else if (is_rm) {
                m = "DELETE";
                path = xasprintf("/sandboxes/%s", id);
            } else if (is_renew) {
                char ts[64];
                time_t t = time(NULL) + renew_secs;
                strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
                body = json_pack("{s:s}", "expiresAt", ts);
                path = xasprintf("/sandboxes/%s/renew-expiration", id);
            } else
                path = xasprintf("/sandboxes/%s/%s", id, verb);
            r = api_call(m, path, body, &resp, &err);
            json_decref(body);
        }
        if (r == -EX_NOTFOUND && is_rm && rm_force) {
            sbx_error_release(&err);
            r = 0;
        }
        if (r < 0) {
            cleanup_free char *pfx = xasprintf("%s %s", verb, argv[i]);
            sbx_error_print(pfx, &err);
            if (-r > worst)
                worst = -r;
            http_resp_free(&resp);
            continue;
        }
        if (!strcmp(verb, "inspect")) {
            if (G.json)
                json_array_append(out, resp.json);
            else
                print_inspect(resp.json);
        } else if (G.json) {
            json_t *o = json_pack("{s:s, s:s}", "id", id ? id : argv[i], "result", "ok");
            if (is_renew)
                json_object_set(o, "expiresAt", json_object_get(resp.json, "expiresAt"));
            json_array_append_new(out, o);
        } else if (is_renew) {
            printf("%s expires %s\n", id,
                   json_string_value(json_object_get(resp.json, "expiresAt")));
        } else
            printf("%s\n", id ? id : argv[i]);
        http_resp_free(&resp);
    }
    if (G.json) {
        json_dumpf(out, stdout, JSON_INDENT(2));
        putchar('\n');
    }
    json_decref(out);
    return worst;
}

static bool logs_follow;
static int
logs_extra(int c)
{
    if (c == 'f') {
        logs_follow = true;
        return 1;
    }
    return 0;
}

static int
cmd_logs(int argc, char **argv)
{
    static const struct option lo[] = {COMMON_OPTS, {"follow", no_argument, NULL, 'f'}, {0}};
    int rc = parse_simple(argc, argv, "hf", lo, logs_extra);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (optind + 1 != argc)
        return usage_err("logs: exactly one ID is required");
    if ((rc = setup()))
        return rc;
    sbx_error_t err = NULL;
    cleanup_free char *id = NULL;
    if ((rc = api_resolve(argv[optind], &id, &err)) < 0)
        return fail(&err, rc);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    long long off = 0;
    struct cli_buf all = {0};
    for (;;) {
        cleanup_free char *path = xasprintf("/sandboxes/%s/logs?offset=%lld", id, off);
        struct http_resp r;
        rc = api_call("GET", path, NULL, &r, &err);
        if (rc < 0) {
            http_resp_free(&r);
            if (rc == -EX_NOTFOUND && off > 0) { /* -f: the sandbox is gone, its log with it */
                sbx_error_release(&err);
                break;
            }
            cli_buf_free(&all);
            return fail(&err, rc);
        }
        if (G.json)
            cli_buf_put(&all, r.body.p, r.body.len);
        else if (r.body.len) {
            fwrite(r.body.p, 1, r.body.len, stdout);
            fflush(stdout);
        }
        long long next = r.log_offset[0] ? atoll(r.log_offset) : off + (long long)r.body.len;
        bool more = next > off && r.body.len >= (1u << 20);
        off = next;
        http_resp_free(&r);
        if (more)
            continue;
        if (!logs_follow)
            break;
        struct timespec ts = {0, 500000000};
        if (sigtimedwait(&sigs, NULL, &ts) > 0)
            break;
    }
    if (G.json) {
        json_t *o = json_pack("{s:s, s:s%}", "id", id, "log", all.p ? all.p : "", all.len);
        json_dumpf(o, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(o);
    }
    cli_buf_free(&all);
    return 0;
}

static int
cmd_port(int argc, char **argv)
{
    static const struct option lo[] = {COMMON_OPTS, {0}};
    int rc = parse_simple(argc, argv, "h", lo, NULL);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (optind + 2 != argc)
        return usage_err("port: ID and PORT are required");
    int64_t port;
    if (parse_int64(argv[optind + 1], 1, 65535, &port) < 0)
        return usage_err("port: '%s' is not a port (1..65535)", argv[optind + 1]);
    if ((rc = setup()))
        return rc;
    sbx_error_t err = NULL;
    cleanup_free char *id = NULL;
    if ((rc = api_resolve(argv[optind], &id, &err)) < 0)
        return fail(&err, rc);
    cleanup_free char *path = xasprintf("/sandboxes/%s/endpoints/%lld", id, (long long)port);
    struct http_resp r;
    if ((rc = api_call("GET", path, NULL, &r, &err)) < 0) {
        http_resp_free(&r);
        return fail(&err, rc);
    }
    const char *e = json_string_value(json_object_get(r.json, "endpoint"));
    const char *scheme = !strncmp(G.url, "https://", 8) ? "https" : "http";
    cleanup_free char *url = xasprintf("%s://%s", scheme, e ? e : "");
    json_t *hdrs = json_object();
    const char *k;
    json_t *v;
    json_object_foreach (json_object_get(r.json, "headers"), k, v)
        json_object_set_new(
            hdrs, k, json_string(G.show_token ? json_string_value(v) : "<hidden: --show-token>"));
    if (G.json) {
        json_t *o = json_pack("{s:s, s:s, s:I, s:o}", "id", id, "url", url, "port",
                              (json_int_t)port, "headers", hdrs);
        json_dumpf(o, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(o);
    } else {
        printf("%s\n", url);
        json_object_foreach (hdrs, k, v)
            printf("%s: %s\n", k, json_string_value(v));
        json_decref(hdrs);
    }
    http_resp_free(&r);
    return 0;
}

/* ---------- exec and run ---------- */

struct exec_cli {
    struct exec_opts o;
    char **env;
    bool tty, interactive;
};

static int
exec_opt(struct exec_cli *x, int c)
{
    switch (c) {
    case 'e':
        if (!kv_ok(optarg))
            return usage_err("-e '%s' is not KEY=VALUE", optarg) + 2;
        strv_append(&x->env, optarg);
        x->o.env = x->env;
        return 1;
    case 'w':
        if (!*optarg)
            return usage_err("-w: empty directory") + 2;
        x->o.cwd = optarg;
        return 1;
    case 'u':
        if (parse_int64(optarg, 0, 0xfffffffe, &x->o.uid) < 0)
            return usage_err("-u '%s' is not a numeric uid", optarg) + 2;
        return 1;
    case O_TIMEOUT:
        if (!parse_secs(optarg, 1, &x->o.timeout_s))
            return usage_err("--timeout '%s' is not a number of seconds >= 1", optarg) + 2;
        return 1;
    case 't': x->tty = true; return 1;
    case 'i': x->interactive = true; return 1;
    default: return 0;
    }
}

static int
run_exec(struct exec_cli *x, char **id, char **cmd)
{
    sbx_error_t err = NULL;
    int code = 0, rc;
    if (x->tty)
        rc = cli_exec_tty(id, cmd, &x->o, &code, &err);
    else
        rc = cli_exec(id, cmd, &x->o, &code, &err);
    if (rc < 0) {
        sbx_error_print("sbx: exec", &err);
        return rc == -EX_NOTFOUND ? EX_NOTFOUND : EX_EXEC;
    }
    return code;
}

static int
cmd_exec(int argc, char **argv)
{
    static const struct option lo[] = {COMMON_OPTS,
                                       {"env", required_argument, NULL, 'e'},
                                       {"workdir", required_argument, NULL, 'w'},
                                       {"user", required_argument, NULL, 'u'},
                                       {"timeout", required_argument, NULL, O_TIMEOUT},
                                       {"tty", no_argument, NULL, 't'},
                                       {"interactive", no_argument, NULL, 'i'},
                                       {0}};
    struct exec_cli x = {.o.uid = -1};
    int c, rc = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, "+he:w:u:it", lo, NULL)) != -1) {
        int k = common_opt(c);
        if (k < 0)
            return 0;
        if (k)
            continue;
        k = exec_opt(&x, c);
        rc = k >= 2 ? k - 2 : k == 0 ? EX_USAGE : 0;
    }
    if (rc) {
        strv_free(x.env);
        return rc;
    }
    if (optind >= argc) {
        strv_free(x.env);
        return usage_err("exec: which sandbox? (usage: sbx exec ID -- CMD...)");
    }
    char *idarg = argv[optind++];
    if (optind < argc && !strcmp(argv[optind], "--"))
        optind++;
    if (optind >= argc) {
        strv_free(x.env);
        return usage_err("exec: no command given (usage: sbx exec ID -- CMD...)");
    }
    if (x.tty && G.json) {
        strv_free(x.env);
        return usage_err("exec: -t and --json do not go together");
    }
    if ((rc = setup())) {
        strv_free(x.env);
        return rc;
    }
    cleanup_free char *id = xstrdup(idarg);
    rc = run_exec(&x, &id, argv + optind);
    strv_free(x.env);
    return rc;
}

static int
cmd_run(int argc, char **argv)
{
    static const struct option lo[] = {COMMON_OPTS,
                                       CREATE_OPTS,
                                       {"workdir", required_argument, NULL, 'w'},
                                       {"user", required_argument, NULL, 'u'},
                                       {"tty", no_argument, NULL, 't'},
                                       {"interactive", no_argument, NULL, 'i'},
                                       {0}};
    struct create_opts co = {0};
    struct exec_cli x = {.o.uid = -1};
    create_init(&co);
    int c, rc = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, "+he:w:u:it", lo, NULL)) != -1) {
        int k = common_opt(c);
        if (k < 0) {
            create_free(&co);
            return 0;
        }
        if (k)
            continue;
        /* -w/-u/-t/-i are exec's; --env and --timeout go to the sandbox. */
        k = (c == 'w' || c == 'u' || c == 't' || c == 'i') ? exec_opt(&x, c) : create_opt(&co, c);
        rc = k >= 2 ? k - 2 : k == 0 ? EX_USAGE : 0;
    }
    if (rc == 0 && optind >= argc)
        rc = usage_err("run: no command given (usage: sbx run [OPTIONS] -- CMD...)");
    if (rc == 0 && (rc = setup()) == 0) {
        /* Interrupts are held until the sandbox exists, so Ctrl-C never leaks one; exec takes
         * them from here (signalfd), and the sandbox is deleted whatever happened. */
        sigset_t sigs, pend;
        sigemptyset(&sigs);
        sigaddset(&sigs, SIGINT);
        sigaddset(&sigs, SIGTERM);
        sigaddset(&sigs, SIGHUP);
        sigprocmask(SIG_BLOCK, &sigs, NULL);
        cleanup_free char *id = NULL;
        co.wait = false;
        bool json = G.json;
        rc = do_create(&co, NULL, &id, false);
        if (rc == 0) {
            sbx_error_t err = NULL;
            sigpending(&pend);
            int wr = sigismember(&pend, SIGINT) || sigismember(&pend, SIGTERM)
                         ? -EX_FAIL
                         : wait_ready(id, false, &err);
            if (wr < 0) {
                if (err)
                    sbx_error_print("sbx", &err);
                rc = wr == -EX_FAIL ? EX_EXEC : -wr;
            } else
                rc = run_exec(&x, &id, argv + optind);
            G.json = false;
            struct http_resp r;
            cleanup_free char *path = xasprintf("/sandboxes/%s", id);
            if (api_call("DELETE", path, NULL, &r, &err) < 0)
                sbx_error_print("sbx: run: delete", &err);
            http_resp_free(&r);
            G.json = json;
        } else if (rc != EX_USAGE)
            rc = EX_EXEC;
    }
    strv_free(x.env);
    create_free(&co);
    return rc;
}

static int
cmd_cp(int argc, char **argv)
{
    static const struct option lo[] = {COMMON_OPTS, {0}};
    int rc = parse_simple(argc, argv, "h", lo, NULL);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (optind + 2 != argc)
        return usage_err("cp: SRC and DST are required (one of them ID:PATH)");
    if ((rc = setup()))
        return rc;
    sbx_error_t err = NULL;
    if ((rc = cli_cp(argv[optind], argv[optind + 1], &err)) < 0)
        return fail(&err, rc);
    return 0;
}

__attribute__((weak)) int
sbx_mcp_stdio(const char *url, const char *api_key)
{
    fprintf(stderr, "sbx: mcp is not built in\n");
    return 1;
}

static int
cmd_mcp(int argc, char **argv)
{
    static const struct option lo[] = {COMMON_OPTS, {0}};
    int rc = parse_simple(argc, argv, "h", lo, NULL);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (optind < argc)
        return usage_err("mcp: unexpected argument '%s'", argv[optind]);
    if ((rc = setup()))
        return rc;
    return sbx_mcp_stdio(G.url, G.key);
}

int
main(int argc, char **argv)
{
    static const struct option lo[] = {COMMON_OPTS, {"version", no_argument, NULL, 'V'}, {0}};
    int c;
    opterr = 1;
    while ((c = getopt_long(argc, argv, "+h", lo, NULL)) != -1) {
        if (c == 'V') {
            printf("sbx %s\n", SBX_VERSION);
            return 0;
        }
        int k = common_opt(c);
        if (k < 0)
            return 0;
        if (k == 0)
            return EX_USAGE;
    }
    if (optind >= argc) {
        fputs(usage_text, stderr);
        return EX_USAGE;
    }
    const char *verb = argv[optind];
    int vargc = argc - optind;
    char **vargv = argv + optind;
    optind = 0; /* restart getopt for the verb's options */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
    int rc;
    if (!strcmp(verb, "create"))
        rc = cmd_create(vargc, vargv);
    else if (!strcmp(verb, "ls") || !strcmp(verb, "list"))
        rc = cmd_ls(vargc, vargv);
    else if (!strcmp(verb, "inspect") || !strcmp(verb, "pause") || !strcmp(verb, "resume") ||
             !strcmp(verb, "renew") || !strcmp(verb, "rm"))
        rc = cmd_each(verb, vargc, vargv);
    else if (!strcmp(verb, "exec"))
        rc = cmd_exec(vargc, vargv);
    else if (!strcmp(verb, "run"))
        rc = cmd_run(vargc, vargv);
    else if (!strcmp(verb, "cp"))
        rc = cmd_cp(vargc, vargv);
    else if (!strcmp(verb, "logs"))
        rc = cmd_logs(vargc, vargv);
    else if (!strcmp(verb, "port"))
        rc = cmd_port(vargc, vargv);
    else if (!strcmp(verb, "mcp"))
        rc = cmd_mcp(vargc, vargv);
    else if (!strcmp(verb, "help"))
        fputs(usage_text, stdout), rc = 0;
    else
        rc = usage_err("unknown verb '%s'", verb);
    free(G.url);
    free(G.key);
    curl_global_cleanup();
    return rc;
}
