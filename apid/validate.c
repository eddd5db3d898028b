/* Request validation and the sandbox model: everything here is pure (no I/O except the image
 * directory lookup), so the CUnit tests cover it directly. Every rejection is an API error whose
 * code comes from CONTRACT.md §A.2. */
#include "apid.h"
#include "image_ref.h"
#include "image_store.h"
#include "state.h"
#include "strutil.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>

/* ---------- API errors ---------- */

static const struct {
    const char *key;
    int status;
    const char *code; /* wire code, NULL: same as key */
} api_codes[] = {
    {E_INVALID_PARAMETER, 400, NULL},
    {E_NOT_FOUND, 404, NULL},
    {E_INVALID_METADATA_FORMAT, 400, NULL},
    {E_INVALID_METADATA_LABEL, 400, NULL},
    {E_INVALID_ENTRYPOINT, 400, NULL},
    {E_INVALID_EXPIRATION, 400, NULL},
    {E_NO_EXPIRATION, 409, "DOCKER::INVALID_EXPIRATION"},
    {E_NOT_RUNNING, 409, NULL},
    {E_NOT_PAUSED, 409, NULL},
    {E_CONFLICT, 409, NULL},
    {E_NOT_SUPPORTED, 400, NULL},
    {E_IMAGE, 500, NULL},
    {E_IMAGE_NOT_FOUND, 400, NULL},
    {E_START_FAILED, 500, NULL},
    {E_UNKNOWN, 500, NULL},
    {E_MISSING_KEY, 401, NULL},
    {E_INVALID_KEY, 401, NULL},
    {E_ROUTE, 404, NULL},
    {E_METHOD, 405, NULL},
    {E_TOO_LARGE, 413, NULL},
    {E_UNAVAILABLE, 503, NULL},
    {E_STORAGE, 507, NULL},
    /* libsbx's categories, for its errors that reach a client unchanged. SBX_ERR_LIMIT is not
     * here: apid checks resourceLimits itself, so a limit libsbx refuses is the host's failure. */
    {SBX_ERR_NOT_FOUND, 404, E_NOT_FOUND},
    {SBX_ERR_BUSY, 409, E_CONFLICT},
};

void
apid_error_http(const sbx_error_t err, int *status, const char **code, const char **msg)
{
    const char *c = sbx_error_code(err);
    *status = 500;
    *code = E_UNKNOWN;
    *msg = err && err->msg ? err->msg : "unknown error";
    for (size_t i = 0; c && i < ARRAY_SIZE(api_codes); i++) {
        if (strcmp(c, api_codes[i].key) == 0) {
            *status = api_codes[i].status;
            *code = api_codes[i].code ? api_codes[i].code : api_codes[i].key;
            return;
        }
    }
}

bool
apid_uri_has_nul(const char *raw)
{
    for (const char *p = raw ? strchr(raw, '%') : NULL; p; p = strchr(p + 1, '%'))
        if (p[1] == '0' && p[2] == '0')
            return true;
    return false;
}

/* ---------- time ---------- */

int64_t
apid_now_ms(void)
{
    return sbx_realtime_ms();
}

void
apid_format_time(int64_t ms, char *buf, size_t len)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
    sbx_format_rfc3339(&ts, 3, buf, len);
}

static int
digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int
apid_parse_time(const char *s, int64_t *ms)
{
    int Y, M, D, h, m, sec, frac_ms = 0;
    const char *p = s;
    if (!s || digits(&p, 4, &Y) || *p++ != '-' || digits(&p, 2, &M) || *p++ != '-' ||
        digits(&p, 2, &D) || (*p != 'T' && *p != 't' && *p != ' '))
        return -EINVAL;
    p++;
    if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &m) || *p++ != ':' || digits(&p, 2, &sec))
        return -EINVAL;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -EINVAL;
        int scale = 100;
        for (; isdigit((unsigned char)*p); p++) {
            frac_ms += (*p - '0') * scale;
            scale /= 10;
        }
    }
    int off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) || oh > 23 || om > 59)
            return -EINVAL;
        off = sign * (oh * 60 + om);
    } else {
        return -EINVAL;
    }
    if (*p || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
        return -EINVAL;
    struct tm tm = {.tm_year = Y - 1900,
                    .tm_mon = M - 1,
                    .tm_mday = D,
                    .tm_hour = h,
                    .tm_min = m,
                    .tm_sec = sec};
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -EINVAL;
    *ms = ((int64_t)t - (int64_t)off * 60) * 1000 + frac_ms;
    return 0;
}

/* ---------- state machine (CONTRACT.md §A.4) ---------- */

static const char *const state_names[ST__COUNT] = {
    "Pending", "Running", "Pausing", "Paused", "Resuming", "Stopping", "Terminated", "Failed",
};

const char *
apid_state_name(int st)
{
    return st >= 0 && st < ST__COUNT ? state_names[st] : "Unknown";
}

int
apid_state_parse(const char *s)
{
    for (int i = 0; s && i < ST__COUNT; i++)
        if (strcmp(s, state_names[i]) == 0)
            return i;
    return -1;
}

bool
apid_state_terminal(int st)
{
    return st == ST_TERMINATED || st == ST_FAILED;
}

bool
apid_state_transition_ok(int from, int to)
{
#define B(x) (1u << (x))
    static const unsigned allowed[ST__COUNT] = {
        [ST_PENDING] = B(ST_RUNNING) | B(ST_STOPPING) | B(ST_FAILED) | B(ST_TERMINATED),
        [ST_RUNNING] =
            B(ST_PAUSING) | B(ST_PAUSED) | B(ST_STOPPING) | B(ST_TERMINATED) | B(ST_FAILED),
        [ST_PAUSING] = B(ST_PAUSED) | B(ST_RUNNING) | B(ST_STOPPING) | B(ST_FAILED),
        [ST_PAUSED] =
            B(ST_RESUMING) | B(ST_RUNNING) | B(ST_STOPPING) | B(ST_FAILED) | B(ST_TERMINATED),
        [ST_RESUMING] = B(ST_RUNNING) | B(ST_PAUSED) | B(ST_STOPPING) | B(ST_FAILED),
        [ST_STOPPING] = B(ST_TERMINATED) | B(ST_FAILED),
        /* A finished sandbox can only be removed, which goes through Stopping. */
        [ST_TERMINATED] = B(ST_STOPPING),
        [ST_FAILED] = B(ST_STOPPING),
    };
#undef B
    if (from < 0 || from >= ST__COUNT || to < 0 || to >= ST__COUNT)
        return false;
    return (allowed[from] >> to) & 1;
}

/* ---------- metadata (Kubernetes label syntax) ---------- */

static bool
label_name_ok(const char *s, size_t n, size_t max)
{
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        bool alnum = isalnum(c);
        if (!alnum && ((i == 0 || i == n - 1) || (c != '-' && c != '_' && c != '.')))
            return false;
    }
    return true;
}

static bool
dns_subdomain_ok(const char *s, size_t n)
{
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (!(islower(c) || isdigit(c) || ((c == '-' || c == '.') && i > 0 && i < n - 1)))
            return false;
    }
    return true;
}

int
apid_validate_metadata_key(const char *key, sbx_error_t *err)
{
    const char *slash = strchr(key, '/');
    if (strncmp(key, "opensandbox.io/", 15) == 0)
        return apid_fail(err, E_INVALID_METADATA_LABEL,
                         "metadata key `%s` uses the reserved prefix `opensandbox.io/`", key);
    bool ok = slash ? dns_subdomain_ok(key, (size_t)(slash - key)) &&
                          label_name_ok(slash + 1, strlen(slash + 1), 63)
                    : label_name_ok(key, strlen(key), 63);
    if (!ok)
        return apid_fail(err, E_INVALID_METADATA_LABEL,
                         "metadata key `%s` is not a valid label key ([prefix/]name, name up to 63 "
                         "alphanumerics, '-', '_', '.')",
                         key);
    return 0;
}

int
apid_validate_metadata(json_t *md, bool allow_null, sbx_error_t *err)
{
    const char *k;
    json_t *v;
    if (!json_is_object(md))
        return apid_fail(err, E_INVALID_PARAMETER, "metadata must be an object of strings");
    json_object_foreach (md, k, v) {
        int r = apid_validate_metadata_key(k, err);
        if (r < 0)
            return r;
        if (json_is_null(v) && allow_null)
            continue;
        if (!json_is_string(v))
            return apid_fail(err, E_INVALID_METADATA_LABEL,
                             "metadata value of `%s` must be a string", k);
        /* Values are free text (the spec's own example is "Data Processing Sandbox"); only
         * what cannot round-trip through a query string or a log line is refused. */
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        bool ctl = false;
        for (size_t i = 0; i < n; i++)
            ctl |= (unsigned char)s[i] < 0x20 || s[i] == 0x7f;
        if (n != strlen(s) || n > 1024 || ctl)
            return apid_fail(err, E_INVALID_METADATA_LABEL,
                             "metadata value of `%s` must be at most 1024 characters without "
                             "control characters",
                             k);
    }
    return 0;
}

/* Percent-decodes s[0..n) ('+' is a space, as in form encoding); NULL on a bad escape or a NUL. */
static char *
pct_decode(const char *s, size_t n)
{
    char *out = xmalloc0(n + 1);
    if (sbx_pct_decode(s, n, out, true) < 0) {
        free(out);
        return NULL;
    }
    return out;
}

int
apid_parse_metadata_filter(const char *s, json_t **out, sbx_error_t *err)
{
    json_t *o = json_object();
    const char *p = s;
    while (*p) {
        const char *amp = strchrnul(p, '&');
        const char *eq = memchr(p, '=', (size_t)(amp - p));
        if (!eq || eq == p) {
            json_decref(o);
            return apid_fail(err, E_INVALID_METADATA_FORMAT,
                             "metadata filter must be `key=value` pairs joined by `&`");
        }
        cleanup_free char *k = pct_decode(p, (size_t)(eq - p));
        cleanup_free char *v = pct_decode(eq + 1, (size_t)(amp - eq - 1));
        if (!k || !v || !*k) {
            json_decref(o);
            return apid_fail(err, E_INVALID_METADATA_FORMAT, "metadata filter has a bad escape");
        }
        json_object_set_new(o, k, json_string(v));
        p = *amp ? amp + 1 : amp;
    }
    *out = o;
    return 0;
}

int
apid_parse_page(const char *page, const char *size, int64_t *p, int64_t *ps, sbx_error_t *err)
{
    *p = 1;
    *ps = 20;
    if (page && parse_int64(page, 1, INT32_MAX, p) < 0)
        return apid_fail(err, E_INVALID_PARAMETER, "page must be an integer >= 1, got `%s`", page);
    if (size && parse_int64(size, 1, 200, ps) < 0)
        return apid_fail(err, E_INVALID_PARAMETER,
                         "pageSize must be an integer between 1 and 200, got `%s`", size);
    return 0;
}

/* ---------- create ---------- */

void
apid_create_req_free(struct apid_create_req *r)
{
    free(r->image_uri);
    free(r->image_user);
    if (r->image_pass)
        explicit_bzero(r->image_pass, strlen(r->image_pass));
    free(r->image_pass);
    json_decref(r->entrypoint);
    json_decref(r->env);
    json_decref(r->metadata);
    json_decref(r->resource_limits);
    json_decref(r->net_policy);
    free(r->workdir);
    json_decref(r->volumes);
    json_decref(r->volume_mounts);
    memset(r, 0, sizeof(*r));
}

void
apid_create_req_copy(const struct apid_create_req *in, struct apid_create_req *out)
{
    *out = *in;
    out->image_uri = xstrdup(in->image_uri);
    out->image_user = xstrdup(in->image_user);
    out->image_pass = xstrdup(in->image_pass);
    out->entrypoint = json_deep_copy(in->entrypoint);
    out->env = json_deep_copy(in->env);
    out->metadata = json_deep_copy(in->metadata);
    out->resource_limits = json_deep_copy(in->resource_limits);
    out->net_policy = json_deep_copy(in->net_policy);
    out->workdir = in->workdir ? xstrdup(in->workdir) : NULL;
    out->volumes = json_deep_copy(in->volumes);
    out->volume_mounts = json_deep_copy(in->volume_mounts);
}

static int
check_limit(const char *what, int64_t v, int64_t max, const char *unit, sbx_error_t *err)
{
    if (max > 0 && v > max)
        return apid_fail(err, E_INVALID_PARAMETER,
                         "resourceLimits.%s %lld%s is above the maximum %lld%s", what, (long long)v,
                         unit, (long long)max, unit);
    return 0;
}

/* Kubernetes reads "512m" as 0.512 bytes; a client that wrote it almost always meant Docker's
 * 512 MiB. Neither guess is safe for a limit, so the answer says what each spelling means. */
static int
milli_bytes(const char *what, const char *s, sbx_error_t *err)
{
    int n = (int)strlen(s) - 1;
    return apid_fail(err, E_INVALID_PARAMETER,
                     "resourceLimits.%s `%s` is a Kubernetes milli-quantity (thousandths of a "
                     "byte); write %.*sMi for mebibytes or %.*sM for megabytes",
                     what, s, n, s, n, s);
}

int
apid_parse_limits(json_t *map, const struct apid_config *cfg, struct apid_limits *out,
                  sbx_error_t *err)
{
    out->cpu_milli = cfg->default_cpu_milli;
    out->memory = cfg->default_memory;
    out->pids = cfg->default_pids;
    out->disk = 0;
    if (map == NULL || json_is_null(map))
        return 0;
    if (!json_is_object(map))
        return apid_fail(err, E_INVALID_PARAMETER, "resourceLimits must be an object of strings");
    const char *k;
    json_t *v;
    json_object_foreach (map, k, v) {
        if (!json_is_string(v))
            return apid_fail(err, E_INVALID_PARAMETER, "resourceLimits.%s must be a string", k);
        const char *s = json_string_value(v);
        int r;
        if (strcmp(k, "cpu") == 0) {
            if (parse_cpus(s, &out->cpu_milli) < 0)
                return apid_fail(err, E_INVALID_PARAMETER,
                                 "resourceLimits.cpu `%s` is not a CPU quantity (e.g. 500m, 2)", s);
            if ((r = check_limit("cpu", out->cpu_milli, cfg->max_cpu_milli, "m", err)) < 0)
                return r;
        } else if (strcmp(k, "memory") == 0) {
            if ((r = parse_quantity(s, &out->memory)) == -EDOM)
                return milli_bytes(k, s, err);
            if (r < 0 || out->memory < 4096)
                return apid_fail(err, E_INVALID_PARAMETER,
                                 "resourceLimits.memory `%s` is not a memory quantity of at least "
                                 "4Ki (e.g. 512Mi, 2Gi, 1G)",
                                 s);
            if ((r = check_limit("memory", out->memory, cfg->max_memory, " bytes", err)) < 0)
                return r;
        } else if (strcmp(k, "pids") == 0) {
            if (parse_int64(s, 1, INT32_MAX, &out->pids) < 0)
                return apid_fail(err, E_INVALID_PARAMETER,
                                 "resourceLimits.pids `%s` is not a positive integer", s);
            if ((r = check_limit("pids", out->pids, cfg->max_pids, "", err)) < 0)
                return r;
        } else if (strcmp(k, "gpu") == 0 || strncmp(k, "nvidia.com/", 11) == 0) {
            int64_t n;
            if (parse_int64(s, 0, INT32_MAX, &n) < 0)
                return apid_fail(err, E_INVALID_PARAMETER, "resourceLimits.%s `%s` is not a count",
                                 k, s);
            if (n > 0)
                return apid_fail(err, E_NOT_SUPPORTED, "GPUs are not supported by sbx");
        } else if (strcmp(k, "ephemeral-storage") == 0 || strcmp(k, "storage") == 0) {
            /* The writable layer is a tmpfs charged to the memory limit, so it is bounded like
             * memory; without this key it gets libsbx's default size. */
            if ((r = parse_quantity(s, &out->disk)) == -EDOM)
                return milli_bytes(k, s, err);
            if (r < 0 || out->disk < (1 << 20))
                return apid_fail(err, E_INVALID_PARAMETER,
                                 "resourceLimits.%s `%s` is not a size of at least 1Mi", k, s);
            if ((r = check_limit(k, out->disk, cfg->max_memory, " bytes", err)) < 0)
                return r;
        } else {
            return apid_fail(err, E_INVALID_PARAMETER,
                             "unknown resource `%s` (supported: cpu, memory, pids, "
                             "ephemeral-storage)",
                             k);
        }
    }
    return 0;
}

static int
string_map(json_t *v, const char *what, sbx_error_t *err)
{
    const char *k;
    json_t *x;
    if (!json_is_object(v))
        return apid_fail(err, E_INVALID_PARAMETER, "%s must be an object of strings", what);
    json_object_foreach (v, k, x) {
        if (!json_is_string(x))
            return apid_fail(err, E_INVALID_PARAMETER, "%s.%s must be a string", what, k);
    }
    return 0;
}

static const char *
host_arch(void)
{
    struct utsname u;
    uname(&u);
    if (strcmp(u.machine, "x86_64") == 0)
        return "amd64";
    if (strcmp(u.machine, "aarch64") == 0)
        return "arm64";
    return "unknown";
}

int
apid_parse_create(const char *body, size_t len, const struct apid_config *cfg,
                  struct apid_create_req *out, sbx_error_t *err)
{
    json_error_t jerr;
    memset(out, 0, sizeof(*out));
    out->timeout = -1;
    if (len == 0)
        return apid_fail(err, E_INVALID_PARAMETER, "request body is required");
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return apid_fail(err, E_INVALID_PARAMETER, "invalid JSON: %s (line %d)", jerr.text,
                         jerr.line);
    int r = 0;
    json_t *v;
    if (!json_is_object(root)) {
        r = apid_fail(err, E_INVALID_PARAMETER, "request body must be a JSON object");
        goto out;
    }
    json_t *image = json_object_get(root, "image");
    json_t *snap = json_object_get(root, "snapshotId");
    if (snap && !json_is_null(snap)) {
        r = json_is_string(snap)
                ? apid_fail(err, E_NOT_SUPPORTED, "snapshots are not supported")
                : apid_fail(err, E_INVALID_PARAMETER, "snapshotId must be a string");
        goto out;
    }
    if (!image || json_is_null(image)) {
        r = apid_fail(err, E_INVALID_PARAMETER, "image is required");
        goto out;
    }
    if (!json_is_object(image) || !json_is_string(json_object_get(image, "uri"))) {
        r = apid_fail(err, E_INVALID_PARAMETER, "image must be an object with a string uri");
        goto out;
    }
    const char *k;
    json_object_foreach (image, k, v) {
        if (strcmp(k, "uri") != 0 && strcmp(k, "auth") != 0) {
            r = apid_fail(err, E_INVALID_PARAMETER, "image.%s is not allowed", k);
            goto out;
        }
    }
    json_t *auth = json_object_get(image, "auth");
    if (auth && !json_is_null(auth) && !json_is_object(auth)) {
        r = apid_fail(err, E_INVALID_PARAMETER, "image.auth must be an object");
        goto out;
    }
    if (json_is_object(auth)) {
        json_t *u = json_object_get(auth, "username"), *pw = json_object_get(auth, "password");
        if (!json_is_string(u) || !json_is_string(pw) || json_object_size(auth) != 2 ||
            strlen(json_string_value(u)) > 1024 || strlen(json_string_value(pw)) > 8192) {
            r = apid_fail(err, E_INVALID_PARAMETER,
                          "image.auth must be {\"username\": string, \"password\": string}");
            goto out;
        }
        out->image_user = xstrdup(json_string_value(u));
        out->image_pass = xstrdup(json_string_value(pw));
    }
    out->image_uri = xstrdup(json_string_value(json_object_get(image, "uri")));
    if (!*out->image_uri) {
        r = apid_fail(err, E_INVALID_PARAMETER, "image.uri must not be empty");
        goto out;
    }

    v = json_object_get(root, "entrypoint");
    if (!v || json_is_null(v)) {
        r = apid_fail(err, E_INVALID_ENTRYPOINT, "entrypoint is required with image");
        goto out;
    }
    if (!json_is_array(v)) {
        r = apid_fail(err, E_INVALID_PARAMETER, "entrypoint must be an array of strings");
        goto out;
    }
    if (json_array_size(v) == 0) {
        r = apid_fail(err, E_INVALID_ENTRYPOINT, "entrypoint must have at least one element");
        goto out;
    }
    size_t i;
    json_t *x;
    json_array_foreach (v, i, x) {
        if (!json_is_string(x) || json_string_length(x) != strlen(json_string_value(x))) {
            r = apid_fail(err, E_INVALID_PARAMETER, "entrypoint[%zu] must be a string", i);
            goto out;
        }
    }
    if (json_string_length(json_array_get(v, 0)) == 0) {
        r = apid_fail(err, E_INVALID_ENTRYPOINT, "entrypoint[0] must not be empty");
        goto out;
    }
    out->entrypoint = json_incref(v);

    v = json_object_get(root, "timeout");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v)) {
            r = apid_fail(err, E_INVALID_PARAMETER, "timeout must be an integer number of seconds");
            goto out;
        }
        out->timeout = json_integer_value(v);
        if (out->timeout < cfg->min_timeout) {
            r = apid_fail(err, E_INVALID_PARAMETER, "timeout must be at least %lld seconds",
                          (long long)cfg->min_timeout);
            goto out;
        }
        if (cfg->max_timeout > 0 && out->timeout > cfg->max_timeout) {
            r = apid_fail(err, E_INVALID_PARAMETER,
                          "timeout %lld is above the maximum of %lld seconds",
                          (long long)out->timeout, (long long)cfg->max_timeout);
            goto out;
        }
        if (out->timeout > 100LL * 365 * 86400) {
            r = apid_fail(err, E_INVALID_PARAMETER, "timeout is too large");
            goto out;
        }
    }

    v = json_object_get(root, "resourceLimits");
    if ((r = apid_parse_limits(v, cfg, &out->limits, err)) < 0)
        goto out;
    out->resource_limits = v && json_is_object(v) ? json_deep_copy(v) : json_object();

    v = json_object_get(root, "env");
    if (v && !json_is_null(v)) {
        if ((r = string_map(v, "env", err)) < 0)
            goto out;
        json_object_foreach (v, k, x) {
            if (!*k || strchr(k, '=') || strlen(json_string_value(x)) != json_string_length(x)) {
                r = apid_fail(err, E_INVALID_PARAMETER, "env name `%s` is not valid", k);
                goto out;
            }
        }
        out->env = json_deep_copy(v);
    } else {
        out->env = json_object();
    }

    v = json_object_get(root, "metadata");
    if (v && !json_is_null(v)) {
        if ((r = apid_validate_metadata(v, false, err)) < 0)
            goto out;
        out->metadata = json_deep_copy(v);
    } else {
        out->metadata = json_object();
    }

    v = json_object_get(root, "secureAccess");
    if (v && !json_is_null(v) && !json_is_boolean(v)) {
        r = apid_fail(err, E_INVALID_PARAMETER, "secureAccess must be a boolean");
        goto out;
    }
    if (json_is_true(v)) {
        r = apid_fail(err, E_NOT_SUPPORTED, "secureAccess is not supported");
        goto out;
    }
    v = json_object_get(root, "extensions");
    if (v && !json_is_null(v) && !json_is_object(v)) {
        r = apid_fail(err, E_INVALID_PARAMETER, "extensions must be an object");
        goto out;
    }
    if (json_object_get(v, "poolRef")) {
        r = apid_fail(err, E_NOT_SUPPORTED, "pools (extensions.poolRef) are not supported yet");
        goto out;
    }
    {
        /* sbx extension: extensions.network = "none" gives a sandbox with only lo. */
        json_t *nw = json_object_get(v, "network");
        if (nw && (!json_is_string(nw) || (strcmp(json_string_value(nw), "none") &&
                                           strcmp(json_string_value(nw), "bridge")))) {
            r = apid_fail(err, E_INVALID_PARAMETER,
                          "extensions.network must be \"none\" or \"bridge\"");
            goto out;
        }
        out->net_none = nw && !strcmp(json_string_value(nw), "none");
        json_t *np = json_object_get(root, "networkPolicy");
        if (out->net_none && np && !json_is_null(np)) {
            r = apid_fail(err, E_INVALID_PARAMETER,
                          "networkPolicy cannot apply to a sandbox with extensions.network=none");
            goto out;
        }
        if ((r = apid_parse_net_policy(np, cfg->default_egress, &out->net_policy, err)) < 0)
            goto out;
        if (apid_egress_has_domains(out->net_policy) && !apid_dns_running()) {
            r = apid_fail(err, E_NOT_SUPPORTED,
                          "networkPolicy has domain targets, which need apid's resolver for "
                          "sandboxes; it is not running (no bridge networking, or port 53 of "
                          "the gateway taken: see apid's log)");
            goto out;
        }
    }
    v = json_object_get(root, "platform");
    if (v && !json_is_null(v)) {
        json_t *os = json_object_get(v, "os"), *arch = json_object_get(v, "arch");
        if (!json_is_object(v) || !json_is_string(os) || !json_is_string(arch) ||
            json_object_size(v) != 2) {
            r = apid_fail(err, E_INVALID_PARAMETER, "platform must be {os, arch}");
            goto out;
        }
        if (strcmp(json_string_value(os), "linux") != 0 ||
            strcmp(json_string_value(arch), host_arch()) != 0) {
            r = apid_fail(err, E_INVALID_PARAMETER,
                          "platform %s/%s cannot be satisfied (this host is linux/%s)",
                          json_string_value(os), json_string_value(arch), host_arch());
            goto out;
        }
    }
    if ((r = apid_parse_volumes(json_object_get(root, "volumes"), &out->volumes, err)) < 0)
        goto out;
    v = json_object_get(root, "credentialProxy");
    if (v && json_is_true(json_object_get(v, "enabled"))) {
        r = apid_fail(err, E_NOT_SUPPORTED, "credentialProxy is not supported");
        goto out;
    }
out:
    json_decref(root);
    if (r < 0)
        apid_create_req_free(out);
    return r;
}

/* ---------- volumes ---------- */

static bool
dns_label_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (!(islower(c) || isdigit(c) || (c == '-' && i > 0 && i < n - 1)))
            return false;
    }
    return true;
}

/* A path without "..", "." or empty components and without control characters; absolute or
 * relative as asked. */
static bool
clean_path(const char *p, bool absolute)
{
    size_t n = strlen(p);
    if (n == 0 || n > 1024 || (p[0] == '/') != absolute)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
            return false;
    cleanup_free char *copy = xstrdup(p);
    char *save = NULL;
    for (char *t = strtok_r(copy, "/", &save); t; t = strtok_r(NULL, "/", &save))
        if (!strcmp(t, "..") || !strcmp(t, "."))
            return false;
    return strstr(p, "//") == NULL && (n == 1 || p[n - 1] != '/');
}

/* Mount paths that would hide what the sandbox's own setup relies on. */
static bool
reserved_mount_path(const char *p)
{
    static const char *const reserved[] = {"/proc", "/sys", "/dev", "/.sbx"};
    if (!strcmp(p, "/"))
        return true;
    for (size_t i = 0; i < ARRAY_SIZE(reserved); i++) {
        size_t n = strlen(reserved[i]);
        if (!strncmp(p, reserved[i], n) && (p[n] == '\0' || p[n] == '/'))
            return true;
    }
    return false;
}

#define VOLUMES_MAX 32

static int
parse_volume(json_t *x, size_t i, json_t *seen_names, json_t *seen_paths, json_t **out,
             sbx_error_t *err)
{
    if (!json_is_object(x))
        return apid_fail(err, E_INVALID_PARAMETER, "volumes[%zu] must be an object", i);
    json_t *name = json_object_get(x, "name");
    if (!json_is_string(name) || !dns_label_ok(json_string_value(name), 63))
        return apid_fail(err, E_INVALID_PARAMETER,
                         "volumes[%zu].name must be a DNS label (a-z, 0-9, '-', at most 63)", i);
    const char *nm = json_string_value(name);
    if (json_object_get(seen_names, nm))
        return apid_fail(err, E_INVALID_PARAMETER, "volume name `%s` is used twice", nm);
    json_object_set_new(seen_names, nm, json_true());
    const char *backend = NULL, *k;
    json_t *v, *bv = NULL;
    json_object_foreach (x, k, v) {
        if (!strcmp(k, "name") || !strcmp(k, "mountPath") || !strcmp(k, "readOnly") ||
            !strcmp(k, "subPath"))
            continue;
        if (json_is_null(v))
            continue;
        if (backend)
            return apid_fail(err, E_INVALID_PARAMETER,
                             "volume `%s` names two backends (`%s` and `%s`); give exactly one", nm,
                             backend, k);
        backend = k;
        bv = v;
    }
    if (!backend)
        return apid_fail(err, E_INVALID_PARAMETER,
                         "volume `%s` has no backend; give `host` or `pvc`", nm);
    if (strcmp(backend, "host") && strcmp(backend, "pvc"))
        return apid_fail(err, E_INVALID_PARAMETER,
                         "volume `%s`: backend `%s` is not supported by sbx (supported: host, pvc)",
                         nm, backend);
    json_t *mp = json_object_get(x, "mountPath");
    if (!json_is_string(mp) || !clean_path(json_string_value(mp), true))
        return apid_fail(err, E_INVALID_PARAMETER,
                         "volume `%s`: mountPath must be an absolute path without `.`, `..` or "
                         "empty components",
                         nm);
    const char *mps = json_string_value(mp);
    if (reserved_mount_path(mps))
        return apid_fail(err, E_INVALID_PARAMETER,
                         "volume `%s`: mountPath `%s` is reserved (/, /proc, /sys, /dev, /.sbx)",
                         nm, mps);
    if (json_object_get(seen_paths, mps))
        return apid_fail(err, E_INVALID_PARAMETER, "mountPath `%s` is used by two volumes", mps);
    json_object_set_new(seen_paths, mps, json_true());
    json_t *ro = json_object_get(x, "readOnly");
    if (ro && !json_is_null(ro) && !json_is_boolean(ro))
        return apid_fail(err, E_INVALID_PARAMETER, "volume `%s`: readOnly must be a boolean", nm);
    json_t *sp = json_object_get(x, "subPath");
    if (sp && !json_is_null(sp) &&
        (!json_is_string(sp) || !clean_path(json_string_value(sp), false)))
        return apid_fail(err, E_INVALID_PARAMETER,
                         "volume `%s`: subPath must be a relative path inside the volume, without "
                         "`..`, `.` or empty components",
                         nm);
    json_t *o =
        json_pack("{s:s, s:s, s:b}", "name", nm, "mountPath", mps, "readOnly", json_is_true(ro));
    if (json_is_string(sp))
        json_object_set(o, "subPath", sp);
    if (!json_is_object(bv)) {
        json_decref(o);
        return apid_fail(err, E_INVALID_PARAMETER, "volume `%s`: %s must be an object", nm,
                         backend);
    }
    if (!strcmp(backend, "host")) {
        json_t *path = json_object_get(bv, "path");
        if (!json_is_string(path) || json_object_size(bv) != 1 ||
            !clean_path(json_string_value(path), true)) {
            json_decref(o);
            return apid_fail(err, E_INVALID_PARAMETER,
                             "volume `%s`: host must be {\"path\": an absolute host path without "
                             "`.`, `..` or empty components}",
                             nm);
        }
        json_object_set_new(o, "host", json_pack("{s:O}", "path", path));
        *out = o;
        return 0;
    }
    json_t *claim = json_object_get(bv, "claimName");
    if (!json_is_string(claim) || !dns_label_ok(json_string_value(claim), 63)) {
        json_decref(o);
        return apid_fail(err, E_INVALID_PARAMETER,
                         "volume `%s`: pvc.claimName must be a DNS label (a-z, 0-9, '-', at most "
                         "63)",
                         nm);
    }
    json_t *pvc = json_pack("{s:O, s:b}", "claimName", claim, "createIfNotExists", 1);
    json_object_foreach (bv, k, v) {
        const char *why = NULL;
        if (!strcmp(k, "claimName"))
            continue;
        if (!strcmp(k, "createIfNotExists")) {
            if (!json_is_boolean(v))
                why = "must be a boolean";
            else
                json_object_set(pvc, k, v);
        } else if (!strcmp(k, "deleteOnSandboxTermination")) {
            if (json_is_true(v))
                why = "is not supported (named volumes are removed with DELETE /v1/volumes/{name})";
        } else if (!strcmp(k, "storage")) {
            /* Honest refusal: a named volume is a directory on the data directory's file system
             * and nothing bounds its size (no quota, no loop device). */
            if (!json_is_null(v))
                why = "(a size limit) is not supported: sbx named volumes are directories "
                      "without a quota; leave it out";
        } else if (!strcmp(k, "storageClass") || !strcmp(k, "accessModes")) {
            /* Kubernetes provisioning hints; the spec has Docker-like runtimes ignore them. */
        } else {
            why = "is not a pvc field";
        }
        if (why) {
            json_decref(pvc);
            json_decref(o);
            return apid_fail(err, E_INVALID_PARAMETER, "volume `%s`: pvc.%s %s", nm, k, why);
        }
    }
    json_object_set_new(o, "pvc", pvc);
    *out = o;
    return 0;
}

int
apid_parse_volumes(json_t *v, json_t **out, sbx_error_t *err)
{
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v))
        return apid_fail(err, E_INVALID_PARAMETER, "volumes must be an array");
    if (json_array_size(v) == 0)
        return 0;
    if (json_array_size(v) > VOLUMES_MAX)
        return apid_fail(err, E_INVALID_PARAMETER, "at most %d volumes per sandbox", VOLUMES_MAX);
    json_t *names = json_object(), *paths = json_object(), *arr = json_array(), *x;
    size_t i;
    int r = 0;
    json_array_foreach (v, i, x) {
        json_t *o = NULL;
        if ((r = parse_volume(x, i, names, paths, &o, err)) < 0)
            break;
        json_array_append_new(arr, o);
    }
    json_decref(names);
    json_decref(paths);
    if (r < 0) {
        json_decref(arr);
        return r;
    }
    *out = arr;
    return 0;
}

int
apid_parse_renew(const char *body, size_t len, int64_t now_ms, int64_t *expires_ms,
                 sbx_error_t *err)
{
    json_error_t jerr;
    json_t *root = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    int r = 0;
    if (!root)
        return apid_fail(err, E_INVALID_PARAMETER, "body must be {\"expiresAt\": \"<RFC 3339>\"}");
    json_t *v = json_object_get(root, "expiresAt");
    if (!json_is_object(root) || !json_is_string(v) || json_object_size(root) != 1) {
        r = apid_fail(err, E_INVALID_PARAMETER,
                      "body must be exactly {\"expiresAt\": \"<RFC 3339>\"}");
    } else if (apid_parse_time(json_string_value(v), expires_ms) < 0) {
        r = apid_fail(err, E_INVALID_PARAMETER, "expiresAt `%s` is not an RFC 3339 date-time",
                      json_string_value(v));
    } else if (*expires_ms <= now_ms) {
        r = apid_fail(err, E_INVALID_EXPIRATION, "expiresAt must be in the future");
    }
    json_decref(root);
    return r;
}

/* ---------- images ---------- */

static char *
list_images(const char *images_dir)
{
    cleanup_dir DIR *d = opendir(images_dir);
    char *s = xstrdup("");
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char *n = xasprintf("%s%slocal/%s", s, *s ? ", " : "", de->d_name);
        free(s);
        s = n;
    }
    if (!*s) {
        free(s);
        s = xasprintf("none (build them with `make rootfs` into %s)", images_dir);
    }
    return s;
}

int
apid_resolve_image(const char *images_dir, const char *uri, char **out, sbx_error_t *err)
{
    const char *name = uri;
    bool local = strncmp(uri, "local/", 6) == 0;
    if (local)
        name = uri + 6;
    /* Built images (make rootfs) are single path components below images_dir. */
    bool plain = id_is_valid(name) && strcmp(name, ".") && strcmp(name, "..");
    struct stat st;
    cleanup_free char *path = plain ? xasprintf("%s/%s", images_dir, name) : NULL;
    if (path && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        *out = xstrdup(name);
        return 0;
    }
    if (local) {
        cleanup_free char *have = list_images(images_dir);
        return apid_fail(err, E_IMAGE_NOT_FOUND, "unknown image `%s`; available images: %s", uri,
                         have);
    }
    /* Anything else is a registry reference (Docker's reading: "python:3.12" is
     * docker.io/library/python:3.12), or the id of an image in the store. */
    struct sbx_image_ref ref;
    sbx_error_t e2 = NULL;
    if (sbx_image_ref_parse(uri, &ref, &e2) < 0) {
        int r = apid_fail(err, E_IMAGE_NOT_FOUND, "image.uri: %s", e2->msg);
        sbx_error_release(&e2);
        return r;
    }
    cleanup_free char *canon = sbx_image_ref_string(&ref);
    sbx_image_ref_free(&ref);
    struct sbx_store store;
    if (sbx_store_open(images_dir, false, &store, NULL) == 0) {
        char *digest = NULL;
        json_t *rec = sbx_store_resolve(&store, uri, &digest, NULL);
        sbx_store_close(&store);
        json_decref(rec);
        if (rec) {
            *out = digest;
            return 0;
        }
    }
    *out = steal_pointer(&canon);
    return APID_IMAGE_PULL;
}

void
apid_new_id(char out[37])
{
    char hex[33];
    random_hex(hex, 32);
    hex[12] = '4';                 /* version 4 */
    hex[16] = "89ab"[hex[16] % 4]; /* RFC 4122 variant */
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

/* ---------- network policy ---------- */

/* A domain target: a host name (labels of letters, digits, '-' and '_', 1..63 bytes, 253 in all),
 * or "*." and one: the wildcard matches every name below it, not the name itself. Stored
 * lowercase without a trailing dot, the form the resolver compares (dns_wire.c). */
static bool
domain_target(const char *t, char out[256])
{
    size_t n = strlen(t);
    if (n && t[n - 1] == '.')
        n--;
    const char *s = t;
    size_t o = 0;
    if (n > 2 && s[0] == '*' && s[1] == '.') {
        out[o++] = '*';
        out[o++] = '.';
        s += 2;
        n -= 2;
    }
    if (n == 0 || n > 253)
        return false;
    size_t label = 0;
    bool alpha = false; /* an all-digit last label is an IPv4 address, not a name */
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return false;
            label = 0;
            alpha = false;
        } else if (isalnum((unsigned char)c) || c == '-' || c == '_') {
            if ((label == 0 && c == '-') || ++label > 63)
                return false;
            alpha |= !isdigit((unsigned char)c);
        } else {
            return false;
        }
        out[o++] = (char)tolower((unsigned char)c);
    }
    out[o] = '\0';
    return label > 0 && alpha && s[n - 1] != '-';
}

/* "IPV4[/PREFIX][:PORT]" → cidr + port (0: any). */
static int
parse_cidr_target(const char *t, const char *field, char **cidr, int64_t *port, sbx_error_t *err)
{
    char buf[80];
    snprintf(buf, sizeof(buf), "%s", t);
    *port = 0;
    char *colon = strchr(buf, ':');
    if (colon) {
        *colon = '\0';
        if (parse_int64(colon + 1, 1, 65535, port) < 0)
            return apid_fail(err, E_INVALID_PARAMETER, "%s target `%s`: bad port", field, t);
    }
    char *slash = strchr(buf, '/');
    int64_t prefix = 32;
    if (slash) {
        *slash = '\0';
        if (parse_int64(slash + 1, 0, 32, &prefix) < 0)
            return apid_fail(err, E_INVALID_PARAMETER, "%s target `%s`: bad prefix", field, t);
    }
    struct in_addr a;
    if (strlen(t) >= sizeof(buf) || inet_pton(AF_INET, buf, &a) != 1)
        return apid_fail(err, E_INVALID_PARAMETER,
                         "%s target `%s` is neither a domain name (example.com, *.example.com) "
                         "nor an IPv4 address or CIDR with an optional :PORT",
                         field, t);
    uint32_t mask = prefix ? 0xffffffffu << (32 - prefix) : 0;
    a.s_addr = htonl(ntohl(a.s_addr) & mask);
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &a, ip, sizeof(ip));
    *cidr = xasprintf("%s/%lld", ip, (long long)prefix);
    return 0;
}

int
apid_parse_net_rule(json_t *x, const char *field, json_t **out, sbx_error_t *err)
{
    *out = NULL;
    json_t *a = json_object_get(x, "action"), *t = json_object_get(x, "target");
    const char *as = json_string_value(a);
    if (!json_is_object(x) || !as || !json_is_string(t) || json_object_size(x) != 2 ||
        (strcmp(as, "allow") && strcmp(as, "deny")))
        return apid_fail(err, E_INVALID_PARAMETER, "%s must be {action: allow|deny, target}",
                         field);
    const char *ts = json_string_value(t);
    char dom[256];
    if (strlen(ts) < 256 && domain_target(ts, dom)) {
        *out = json_pack("{s:s, s:s, s:s}", "action", as, "target", dom, "domain", dom);
        return 0;
    }
    char *cidr = NULL;
    int64_t port;
    if (parse_cidr_target(ts, field, &cidr, &port, err) < 0)
        return -1;
    *out = json_pack("{s:s, s:s, s:s, s:I}", "action", as, "target", ts, "cidr", cidr, "port",
                     (json_int_t)port);
    free(cidr);
    return 0;
}

int
apid_parse_net_policy(json_t *v, const char *server_default, json_t **out, sbx_error_t *err)
{
    *out = NULL;
    if (!v || json_is_null(v)) {
        *out = json_pack("{s:s, s:[]}", "defaultAction",
                         server_default && *server_default ? server_default : "deny", "egress");
        return 0;
    }
    if (!json_is_object(v))
        return apid_fail(err, E_INVALID_PARAMETER, "networkPolicy must be an object");
    const char *k;
    json_t *x;
    json_object_foreach (v, k, x) {
        if (strcmp(k, "defaultAction") && strcmp(k, "egress"))
            return apid_fail(err, E_INVALID_PARAMETER, "networkPolicy: unknown field `%s`", k);
    }
    json_t *da = json_object_get(v, "defaultAction");
    /* The spec: an omitted defaultAction is deny, while an empty policy object allows all. */
    const char *def = json_object_size(v) == 0 ? "allow" : "deny";
    if (da && !json_is_null(da)) {
        def = json_string_value(da);
        if (!def || (strcmp(def, "allow") && strcmp(def, "deny")))
            return apid_fail(err, E_INVALID_PARAMETER,
                             "networkPolicy.defaultAction must be allow or deny");
    }
    json_t *eg = json_object_get(v, "egress");
    if (eg && !json_is_null(eg) && !json_is_array(eg))
        return apid_fail(err, E_INVALID_PARAMETER, "networkPolicy.egress must be an array");
    if (json_array_size(eg) > APID_MAX_EGRESS_RULES)
        return apid_fail(err, E_INVALID_PARAMETER,
                         "networkPolicy.egress has %zu rules; at most %d are allowed",
                         json_array_size(eg), APID_MAX_EGRESS_RULES);
    json_t *rules = json_array();
    size_t i;
    json_array_foreach (eg, i, x) {
        char field[48];
        snprintf(field, sizeof(field), "networkPolicy.egress[%zu]", i);
        json_t *rule = NULL;
        if (apid_parse_net_rule(x, field, &rule, err) < 0) {
            json_decref(rules);
            return -1;
        }
        json_array_append_new(rules, rule);
    }
    *out = json_pack("{s:s, s:o}", "defaultAction", def, "egress", rules);
    return 0;
}
