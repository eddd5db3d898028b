/* sbx-apid configuration: embedded defaults, then an optional JSON config file (--config, parsed
 * with jansson), then command-line flags and SBX_API_KEY. SIGHUP re-reads the file for the
 * settings that are safe to change while running (key, limits, timeouts, log level). */
#include "apid.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <getopt.h>

enum {
    OPT_LISTEN = 256,
    OPT_DATA_DIR,
    OPT_RUN_DIR,
    OPT_IMAGES_DIR,
    OPT_AGENT,
    OPT_API_KEY,
    OPT_API_KEY_FILE,
    OPT_MAX_TIMEOUT,
    OPT_MIN_TIMEOUT,
    OPT_DEF_CPU,
    OPT_MAX_CPU,
    OPT_DEF_MEM,
    OPT_MAX_MEM,
    OPT_DEF_PIDS,
    OPT_MAX_PIDS,
    OPT_MAX_BODY,
    OPT_BRIDGE,
    OPT_SUBNET,
    OPT_DEFAULT_EGRESS,
    OPT_DNS_UPSTREAM,
    OPT_OPEN_TO_SANDBOXES,
    OPT_CGROUP_PARENT,
    OPT_PUBLIC_HOST,
    OPT_PUBLIC_URL,
    OPT_LOG_LEVEL,
    OPT_LOG_JSON,
    OPT_POOL,
    OPT_POOL_CONCURRENCY,
    OPT_POOL_IDLE_SHRINK,
    OPT_SESSION_IDLE_TIMEOUT,
    OPT_SESSION_IMAGE,
    OPT_VOLUME_ROOT,
    OPT_CONFIG,
    OPT_HELP,
    OPT_VERSION,
};

static const struct option longopts[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"data-dir", required_argument, NULL, OPT_DATA_DIR},
    {"run-dir", required_argument, NULL, OPT_RUN_DIR},
    {"images-dir", required_argument, NULL, OPT_IMAGES_DIR},
    {"agent", required_argument, NULL, OPT_AGENT},
    {"api-key", required_argument, NULL, OPT_API_KEY},
    {"api-key-file", required_argument, NULL, OPT_API_KEY_FILE},
    {"max-timeout", required_argument, NULL, OPT_MAX_TIMEOUT},
    {"min-timeout", required_argument, NULL, OPT_MIN_TIMEOUT},
    {"default-cpu", required_argument, NULL, OPT_DEF_CPU},
    {"max-cpu", required_argument, NULL, OPT_MAX_CPU},
    {"default-memory", required_argument, NULL, OPT_DEF_MEM},
    {"max-memory", required_argument, NULL, OPT_MAX_MEM},
    {"default-pids", required_argument, NULL, OPT_DEF_PIDS},
    {"max-pids", required_argument, NULL, OPT_MAX_PIDS},
    {"max-body", required_argument, NULL, OPT_MAX_BODY},
    {"bridge", required_argument, NULL, OPT_BRIDGE},
    {"subnet", required_argument, NULL, OPT_SUBNET},
    {"default-egress", required_argument, NULL, OPT_DEFAULT_EGRESS},
    {"dns-upstream", required_argument, NULL, OPT_DNS_UPSTREAM},
    {"open-to-sandboxes", required_argument, NULL, OPT_OPEN_TO_SANDBOXES},
    {"cgroup-parent", required_argument, NULL, OPT_CGROUP_PARENT},
    {"public-host", required_argument, NULL, OPT_PUBLIC_HOST},
    {"public-url", required_argument, NULL, OPT_PUBLIC_URL},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"log-json", no_argument, NULL, OPT_LOG_JSON},
    {"pool", required_argument, NULL, OPT_POOL},
    {"pool-concurrency", required_argument, NULL, OPT_POOL_CONCURRENCY},
    {"pool-idle-shrink", required_argument, NULL, OPT_POOL_IDLE_SHRINK},
    {"session-idle-timeout", required_argument, NULL, OPT_SESSION_IDLE_TIMEOUT},
    {"session-image", required_argument, NULL, OPT_SESSION_IMAGE},
    {"volume-root", required_argument, NULL, OPT_VOLUME_ROOT},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static const char usage[] =
    "Usage: sbx-apid [OPTIONS]\n"
    "OpenSandbox-compatible lifecycle API for sbx sandboxes.\n\n"
    "  --listen HOST:PORT       address to serve on (default 127.0.0.1:8080)\n"
    "  --data-dir DIR           SQLite store (default /var/lib/sbx)\n"
    "  --run-dir DIR            runtime state and files of live sandboxes, best on a tmpfs\n"
    "                           (default /run/sbx)\n"
    "  --images-dir DIR         local images, one directory each (default /var/lib/sbx/images)\n"
    "  --agent PATH|none        sbx-agent binary started in every sandbox (default: sbx-agent\n"
    "                           next to sbx-apid, else /usr/local/bin/sbx-agent; none: run the\n"
    "                           entrypoint directly)\n"
    "  --api-key KEY            require OPEN-SANDBOX-API-KEY: KEY (also env SBX_API_KEY)\n"
    "  --api-key-file FILE      read the key from FILE (first line)\n"
    "                           with no key, authentication is off (a warning is logged)\n"
    "  --max-timeout SECONDS    largest sandbox timeout accepted (default 86400, 0 = no max)\n"
    "  --min-timeout SECONDS    smallest timeout accepted (default 60, as the API spec says;\n"
    "                           lower it only for tests)\n"
    "  --default-cpu Q          CPU limit when a request gives none (default 1; e.g. 500m)\n"
    "  --max-cpu Q              largest CPU limit accepted (default: host CPUs)\n"
    "  --default-memory Q       memory limit when a request gives none (default 512Mi)\n"
    "  --max-memory Q           largest memory limit accepted (default 16Gi)\n"
    "  --default-pids N         pids limit when a request gives none (default 512)\n"
    "  --max-pids N             largest pids limit accepted (default 32768)\n"
    "  --max-body BYTES         request body limit (default 1Mi)\n"
    "                           (Q and BYTES are Kubernetes quantities, as in resourceLimits:\n"
    "                           1Gi = 2^30, 1G = 10^9, cpu 500m = 0.5)\n"
    "  --bridge NAME            sandbox bridge (networking; default sbx0)\n"
    "  --subnet CIDR            sandbox address pool (networking; default 10.88.0.0/16)\n"
    "  --default-egress allow|deny  egress of sandboxes whose create has no networkPolicy\n"
    "                           (default deny)\n"
    "  --dns-upstream IP[:PORT],...  resolvers that sandboxes' allowed names are forwarded to\n"
    "                           (default: the nameserver lines of /etc/resolv.conf)\n"
    "  --open-to-sandboxes IPV4[/N][:PORT],...  host or link-local addresses that sandboxes may\n"
    "                           reach after all (closed whatever a policy says by default); a\n"
    "                           forwarded one still needs the sandbox's policy to allow it\n"
    "  --cgroup-parent PATH     parent cgroup of sandboxes (default: libsbx's default)\n"
    "  --public-host HOST       host written into endpoint replies (default: listen host)\n"
    "  --public-url URL         external base URL of apid (http[s]://host[:port][/prefix]),\n"
    "                           for OpenHands runtime urls behind a load balancer\n"
    "                           (default http://PUBLIC-HOST:PORT)\n"
    "  --log-level LEVEL        error, warn, info or debug (default info)\n"
    "  --log-json               one JSON object per log line\n"
    "  --pool IMAGE:COUNT       keep COUNT pre-started sandboxes of IMAGE (default resource\n"
    "                           class and network mode); IMAGE:MIN:MAX grows with demand up to\n"
    "                           MAX. Repeatable; in the config file a comma-separated string\n"
    "  --pool-concurrency N     pooled sandboxes started at once (default 4)\n"
    "  --pool-idle-shrink SEC   shrink a grown pool back to MIN after SEC without claims\n"
    "                           (default 300)\n"
    "  --session-idle-timeout SEC  simple session API: idle sessions are removed (default 3600)\n"
    "  --session-image IMAGE    image of /create_session sandboxes (default local/busybox)\n"
    "  --volume-root DIR        host directory below which `host` volumes may be bound\n"
    "                           (repeatable; in the config file a comma-separated string).\n"
    "                           Default: none, every `host` volume is refused. Named (`pvc`)\n"
    "                           volumes live in <data-dir>/volumes (see docs/volumes.md)\n"
    "  --config FILE            JSON file with any of the settings above, keys as the flag\n"
    "                           names (e.g. {\"listen\": \"127.0.0.1:9000\", \"max-timeout\": "
    "3600});\n"
    "                           flags win over the file. SIGHUP re-reads it (key, limits,\n"
    "                           timeouts, log level); listen and directories need a restart.\n"
    "  --help, --version\n\n"
    "Signals: SIGTERM/SIGINT stop accepting, finish in-flight requests and exit, leaving\n"
    "sandboxes running (they are re-adopted on the next start). SIGHUP reloads the config.\n";

static void
set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = v ? xstrdup(v) : NULL;
}

void
apid_config_init(struct apid_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->listen = xstrdup("127.0.0.1:8080");
    cfg->data_dir = xstrdup("/var/lib/sbx");
    cfg->run_dir = xstrdup("/run/sbx");
    cfg->images_dir = xstrdup("/var/lib/sbx/images");
    cfg->bridge = xstrdup("sbx0");
    cfg->subnet = xstrdup("10.88.0.0/16");
    cfg->default_egress = xstrdup("deny");
    cfg->min_timeout = 60;
    cfg->max_timeout = 86400;
    cfg->default_cpu_milli = 1000;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->max_cpu_milli = (ncpu > 0 ? ncpu : 1) * 1000;
    cfg->default_memory = 512LL << 20;
    cfg->max_memory = 16LL << 30;
    cfg->default_pids = 512;
    cfg->max_pids = 32768;
    cfg->max_body = 1 << 20;
    cfg->log_level = APID_LOG_INFO;
    cfg->pool_concurrency = 4;
    cfg->pool_idle_shrink = 300;
    cfg->session_idle_timeout = 3600;
    cfg->session_image = xstrdup("local/busybox");
}

void
apid_config_free(struct apid_config *cfg)
{
    free(cfg->listen);
    free(cfg->data_dir);
    free(cfg->run_dir);
    free(cfg->images_dir);
    free(cfg->agent_path);
    free(cfg->api_key);
    free(cfg->api_key_file);
    free(cfg->config_file);
    free(cfg->bridge);
    free(cfg->subnet);
    free(cfg->default_egress);
    free(cfg->dns_upstream);
    free(cfg->open_to_sandboxes);
    free(cfg->cgroup_parent);
    free(cfg->public_host);
    free(cfg->public_url);
    strv_free(cfg->pool_specs);
    strv_free(cfg->volume_roots);
    free(cfg->session_image);
    memset(cfg, 0, sizeof(*cfg));
}

static int
read_key_file(struct apid_config *cfg, const char *path, sbx_error_t *err)
{
    cleanup_free char *txt = NULL;
    int r = read_file(path, &txt, NULL, err);
    if (r < 0)
        return r;
    txt[strcspn(txt, "\r\n")] = '\0';
    if (!*txt)
        return sbx_make_error(err, 0, "API key file `%s` is empty", path);
    set_str(&cfg->api_key, txt);
    return 0;
}

/* Applies one setting by flag id; `from` names the source for error messages. */
static int
apply(struct apid_config *cfg, int opt, const char *v, const char *from, bool runtime_only,
      sbx_error_t *err)
{
    int64_t n;
    switch (opt) {
    case OPT_LISTEN:
    case OPT_DATA_DIR:
    case OPT_RUN_DIR:
    case OPT_IMAGES_DIR:
    case OPT_AGENT:
    case OPT_BRIDGE:
    case OPT_SUBNET:
    case OPT_DEFAULT_EGRESS:
    case OPT_DNS_UPSTREAM:
    case OPT_OPEN_TO_SANDBOXES:
    case OPT_CGROUP_PARENT:
    case OPT_PUBLIC_HOST:
    case OPT_PUBLIC_URL:
    case OPT_LOG_JSON:
    case OPT_POOL:
    case OPT_POOL_CONCURRENCY:
    case OPT_POOL_IDLE_SHRINK:
    case OPT_SESSION_IDLE_TIMEOUT:
    case OPT_SESSION_IMAGE:
    case OPT_VOLUME_ROOT:
        if (runtime_only)
            return 0;
        break;
    default: break;
    }
    switch (opt) {
    case OPT_LISTEN: set_str(&cfg->listen, v); break;
    case OPT_DATA_DIR: set_str(&cfg->data_dir, v); break;
    case OPT_RUN_DIR: set_str(&cfg->run_dir, v); break;
    case OPT_IMAGES_DIR: set_str(&cfg->images_dir, v); break;
    case OPT_AGENT: set_str(&cfg->agent_path, v); break;
    case OPT_API_KEY: set_str(&cfg->api_key, v); break;
    case OPT_API_KEY_FILE: set_str(&cfg->api_key_file, v); return read_key_file(cfg, v, err);
    case OPT_BRIDGE: set_str(&cfg->bridge, v); break;
    case OPT_SUBNET: set_str(&cfg->subnet, v); break;
    case OPT_DEFAULT_EGRESS:
        if (strcmp(v, "allow") && strcmp(v, "deny"))
            return sbx_make_error(err, 0, "%s `%s`: expected allow or deny", from, v);
        set_str(&cfg->default_egress, v);
        break;
    case OPT_DNS_UPSTREAM: {
        struct sockaddr_in up[APID_DNS_MAX_UPSTREAMS];
        size_t n;
        if (apid_dns_parse_upstreams(v, up, &n) < 0)
            return sbx_make_error(err, 0, "%s `%s`: expected up to %d IPV4[:PORT], comma-separated",
                                  from, v, APID_DNS_MAX_UPSTREAMS);
        set_str(&cfg->dns_upstream, v);
        break;
    }
    case OPT_OPEN_TO_SANDBOXES: {
        /* Checked here so a typo stops apid at start, not at the first sandbox. */
        cleanup_free char *copy = xstrdup(v);
        char *save = NULL;
        for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
            json_t *in = json_pack("{s:s, s:s}", "action", "allow", "target", t), *rule = NULL;
            int pr = apid_parse_net_rule(in, from, &rule, err);
            bool name = pr == 0 && json_object_get(rule, "domain");
            json_decref(in);
            json_decref(rule);
            if (pr < 0)
                return -1;
            if (name)
                return sbx_make_error(err, 0, "%s `%s`: an address or CIDR, not a name", from, t);
        }
        set_str(&cfg->open_to_sandboxes, v);
        break;
    }
    case OPT_CGROUP_PARENT: set_str(&cfg->cgroup_parent, v); break;
    case OPT_PUBLIC_HOST: set_str(&cfg->public_host, v); break;
    case OPT_PUBLIC_URL: {
        size_t n = strlen(v);
        if ((strncmp(v, "http://", 7) && strncmp(v, "https://", 8)) || strpbrk(v, "?# \t\r\n") ||
            n > 2048 || !v[strncmp(v, "http://", 7) ? 8 : 7] ||
            v[strncmp(v, "http://", 7) ? 8 : 7] == '/')
            return sbx_make_error(
                err, 0, "%s `%s`: expected http://HOST[:PORT][/PREFIX] or https://...", from, v);
        while (n > 0 && v[n - 1] == '/')
            n--;
        free(cfg->public_url);
        cfg->public_url = strndup(v, n);
        break;
    }
    case OPT_LOG_JSON: cfg->log_json = !v || strcmp(v, "false") != 0; break;
    case OPT_CONFIG: set_str(&cfg->config_file, v); break;
    case OPT_POOL: {
        /* Repeatable, and a comma-separated list in the config file; checked by apid_pool_init. */
        cleanup_free char *copy = xstrdup(v);
        char *save = NULL;
        for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
            strv_append(&cfg->pool_specs, t);
        break;
    }
    case OPT_SESSION_IMAGE: set_str(&cfg->session_image, v); break;
    case OPT_VOLUME_ROOT: {
        /* Repeatable, and a comma-separated list in the config file; checked by
         * apid_volumes_init(). */
        cleanup_free char *copy = xstrdup(v);
        char *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
            strv_append(&cfg->volume_roots, t);
        break;
    }
    case OPT_POOL_CONCURRENCY:
    case OPT_POOL_IDLE_SHRINK:
    case OPT_SESSION_IDLE_TIMEOUT:
        if (parse_int64(v, 1, INT32_MAX, &n) < 0)
            return sbx_make_error(err, 0, "%s: `%s` is not a positive integer", from, v);
        *(opt == OPT_POOL_CONCURRENCY   ? &cfg->pool_concurrency
          : opt == OPT_POOL_IDLE_SHRINK ? &cfg->pool_idle_shrink
                                        : &cfg->session_idle_timeout) = n;
        break;
    case OPT_MAX_TIMEOUT:
    case OPT_MIN_TIMEOUT:
    case OPT_DEF_PIDS:
    case OPT_MAX_PIDS:
        if (parse_int64(v, 0, INT32_MAX, &n) < 0)
            return sbx_make_error(err, 0, "%s: `%s` is not a non-negative integer", from, v);
        if (opt == OPT_MAX_TIMEOUT)
            cfg->max_timeout = n;
        else if (opt == OPT_MIN_TIMEOUT)
            cfg->min_timeout = n;
        else if (opt == OPT_DEF_PIDS)
            cfg->default_pids = n;
        else
            cfg->max_pids = n;
        break;
    case OPT_DEF_CPU:
    case OPT_MAX_CPU:
        if (parse_cpus(v, &n) < 0)
            return sbx_make_error(err, 0, "%s: `%s` is not a CPU quantity", from, v);
        *(opt == OPT_DEF_CPU ? &cfg->default_cpu_milli : &cfg->max_cpu_milli) = n;
        break;
    case OPT_DEF_MEM:
    case OPT_MAX_MEM:
    case OPT_MAX_BODY:
        /* The same quantities as the API's resourceLimits that they bound. */
        if (parse_quantity(v, &n) < 0)
            return sbx_make_error(err, 0, "%s: `%s` is not a quantity (e.g. 512Mi, 2Gi, 1G)", from,
                                  v);
        *(opt == OPT_DEF_MEM   ? &cfg->default_memory
          : opt == OPT_MAX_MEM ? &cfg->max_memory
                               : &cfg->max_body) = n;
        break;
    case OPT_LOG_LEVEL: {
        int l = apid_log_level_parse(v);
        if (l < 0)
            return sbx_make_error(err, 0, "%s: unknown log level `%s`", from, v);
        cfg->log_level = l;
        break;
    }
    default: return sbx_make_error(err, 0, "%s: unknown setting", from);
    }
    return 0;
}

static int
load_file(struct apid_config *cfg, const char *path, bool runtime_only, sbx_error_t *err)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return sbx_make_error(err, 0, "config `%s`: %s (line %d)", path, jerr.text, jerr.line);
    int r = 0;
    if (!json_is_object(root))
        r = sbx_make_error(err, 0, "config `%s`: must be a JSON object", path);
    const char *k;
    json_t *v;
    json_object_foreach (root, k, v) {
        if (r < 0)
            break;
        const struct option *o = NULL;
        for (const struct option *p = longopts; p->name; p++)
            if (strcmp(p->name, k) == 0 && p->val != OPT_CONFIG && p->val != OPT_HELP &&
                p->val != OPT_VERSION)
                o = p;
        if (!o) {
            r = sbx_make_error(err, 0, "config `%s`: unknown setting `%s`", path, k);
            break;
        }
        cleanup_free char *val = NULL;
        if (json_is_string(v))
            val = xstrdup(json_string_value(v));
        else if (json_is_integer(v))
            val = xasprintf("%lld", (long long)json_integer_value(v));
        else if (json_is_boolean(v))
            val = xstrdup(json_is_true(v) ? "true" : "false");
        else {
            r = sbx_make_error(err, 0, "config `%s`: `%s` must be a string, integer or boolean",
                               path, k);
            break;
        }
        cleanup_free char *from = xasprintf("config `%s`: %s", path, k);
        r = apply(cfg, o->val, val, from, runtime_only, err);
    }
    json_decref(root);
    return r;
}

int
apid_config_load_file(struct apid_config *cfg, const char *path, sbx_error_t *err)
{
    return load_file(cfg, path, false, err);
}

static char *
default_agent(void)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            char *p = xasprintf("%s/sbx-agent", self);
            if (access(p, X_OK) == 0)
                return p;
            free(p);
        }
    }
    if (access("/usr/local/bin/sbx-agent", X_OK) == 0)
        return xstrdup("/usr/local/bin/sbx-agent");
    return NULL;
}

int
apid_config_parse(struct apid_config *cfg, int argc, char **argv, sbx_error_t *err)
{
    int c, r;
    /* First pass: find --config so the file is applied before (and overridden by) flags. */
    optind = 0; /* 0: glibc re-initializes getopt fully (parsed twice, and again in tests) */
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == OPT_CONFIG)
            set_str(&cfg->config_file, optarg);
        if (c == OPT_HELP || c == 'h') {
            fputs(usage, stdout);
            return 1;
        }
        if (c == OPT_VERSION) {
            printf("sbx-apid %s\n", SBX_VERSION);
            return 1;
        }
        if (c == '?')
            return sbx_make_error(err, 0, "unknown or incomplete option `%s` (see --help)",
                                  argv[optind - 1]);
    }
    if (optind < argc)
        return sbx_make_error(err, 0, "unexpected argument `%s`", argv[optind]);
    if (cfg->config_file && (r = load_file(cfg, cfg->config_file, false, err)) < 0)
        return r;
    const char *envkey = getenv("SBX_API_KEY");
    if (envkey && *envkey)
        set_str(&cfg->api_key, envkey);
    optind = 0; /* 0: glibc re-initializes getopt fully (parsed twice, and again in tests) */
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == OPT_CONFIG)
            continue;
        cleanup_free char *from = xasprintf("--%s", longopts[0].name);
        for (const struct option *p = longopts; p->name; p++)
            if (p->val == c) {
                free(from);
                from = xasprintf("--%s", p->name);
            }
        if ((r = apply(cfg, c, optarg, from, false, err)) < 0)
            return r;
    }
    if (!cfg->agent_path)
        cfg->agent_path = default_agent();
    if (cfg->min_timeout < 1)
        cfg->min_timeout = 1;
    return 0;
}

int
apid_config_reload(struct apid_config *cfg, sbx_error_t *err)
{
    /* Parse into a copy first so a broken file changes nothing. */
    struct apid_config tmp = *cfg;
    tmp.api_key = cfg->api_key ? xstrdup(cfg->api_key) : NULL;
    tmp.api_key_file = NULL;
    int r = cfg->config_file ? load_file(&tmp, cfg->config_file, true, err) : 0;
    /* A key file named on the command line is re-read too, so keys can be rotated with HUP. */
    if (r == 0 && !tmp.api_key_file && cfg->api_key_file)
        r = read_key_file(&tmp, cfg->api_key_file, err);
    if (r < 0) {
        free(tmp.api_key);
        free(tmp.api_key_file);
        return r;
    }
    free(cfg->api_key);
    cfg->api_key = tmp.api_key;
    if (tmp.api_key_file) {
        free(cfg->api_key_file);
        cfg->api_key_file = tmp.api_key_file;
    }
    cfg->min_timeout = tmp.min_timeout;
    cfg->max_timeout = tmp.max_timeout;
    cfg->default_cpu_milli = tmp.default_cpu_milli;
    cfg->max_cpu_milli = tmp.max_cpu_milli;
    cfg->default_memory = tmp.default_memory;
    cfg->max_memory = tmp.max_memory;
    cfg->default_pids = tmp.default_pids;
    cfg->max_pids = tmp.max_pids;
    cfg->max_body = tmp.max_body;
    cfg->log_level = tmp.log_level;
    apid_log_setup(cfg->log_level, cfg->log_json);
    return 0;
}

char *
apid_sandboxes_dir(const struct apid_config *cfg)
{
    return xasprintf("%s/.sandboxes", cfg->run_dir);
}
