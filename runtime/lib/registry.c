/* Why libcurl and not skopeo: skopeo brings every transport, but it is a 30 MB Go program that
 * writes its own layout, which sbx would then have to copy and unpack a second time; the
 * distribution protocol for pulling is small (GET a manifest, GET blobs, one auth challenge),
 * and libcurl (already a dependency) does TLS, redirects and proxies as every other client on
 * the host does. */
#include "registry.h"
#include "registry_internal.h"
#include "digest.h"
#include "utils.h"

#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sys/utsname.h>

#define MANIFEST_MAX (4 << 20)
#define TOKEN_MAX (1 << 20)
#define DEFAULT_CONF "/etc/sbx/registries.json"
#define DEFAULT_CERTS_DIR "/etc/sbx/certs.d"

struct sbx_registry {
    char *domain; /* as in the reference: the key for credentials and certs */
    char *repo;   /* path inside the registry */
    char **bases; /* endpoints to try in order: mirrors, then the registry itself */
    char *base;   /* the endpoint that answered */
    bool insecure;
    char *ca_file, *client_cert, *client_key;
    char *user, *pass;
    char *token; /* Bearer token, once a challenge asked for one */
    bool basic;  /* the registry asked for Basic auth */
    enum sbx_pull_error kind;
    CURL *curl;
};

const char *
sbx_host_arch(void)
{
    struct utsname u;
    if (uname(&u) < 0)
        return "amd64";
    static const struct {
        const char *machine, *goarch;
    } map[] = {{"x86_64", "amd64"},    {"aarch64", "arm64"}, {"armv7l", "arm"},     {"i686", "386"},
               {"ppc64le", "ppc64le"}, {"s390x", "s390x"},   {"riscv64", "riscv64"}};
    for (size_t i = 0; i < ARRAY_SIZE(map); i++)
        if (strcmp(u.machine, map[i].machine) == 0)
            return map[i].goarch;
    return "amd64";
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void
curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---------- configuration and credentials ---------- */

static json_t *
load_conf(const char *path, sbx_error_t *err)
{
    const char *p = path ? path : getenv("SBX_REGISTRIES_CONF");
    bool explicit = p && *p;
    if (!explicit)
        p = DEFAULT_CONF;
    json_error_t jerr;
    json_t *c = json_load_file(p, JSON_REJECT_DUPLICATES, &jerr);
    if (c == NULL) {
        if (!explicit && access(p, F_OK) < 0)
            return json_object();
        sbx_make_error(err, 0, "registries config `%s`: %s", p, jerr.text);
        return NULL;
    }
    if (!json_is_object(c)) {
        json_decref(c);
        sbx_make_error(err, 0, "registries config `%s`: want a JSON object", p);
        return NULL;
    }
    return c;
}

static bool
json_list_has(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach (arr, i, v)
        if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
            return true;
    return false;
}

/* Base64 user:pass of an auth file entry. */
static int
decode_auth(const char *b64, char **user, char **pass)
{
    size_t n = strlen(b64);
    if (n == 0 || n > 8192)
        return -1;
    cleanup_free unsigned char *out = xmalloc0(n + 4);
    int len = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)n);
    if (len < 0)
        return -1;
    while (n > 0 && b64[n - 1] == '=') { /* EVP_DecodeBlock counts the padding as zero bytes */
        n--;
        len--;
    }
    out[len] = '\0';
    char *colon = strchr((char *)out, ':');
    if (colon == NULL)
        return -1;
    *colon = '\0';
    *user = xstrdup((char *)out);
    *pass = xstrdup(colon + 1);
    return 0;
}

static void
creds_from_auth_file(struct sbx_registry *reg)
{
    cleanup_free char *path = NULL;
    const char *f = getenv("REGISTRY_AUTH_FILE");
    if (f && *f)
        path = xstrdup(f);
    else if ((f = getenv("DOCKER_CONFIG")) && *f)
        path = xasprintf("%s/config.json", f);
    else if ((f = getenv("HOME")) && *f)
        path = xasprintf("%s/.docker/config.json", f);
    if (path == NULL)
        return;
    json_t *c = json_load_file(path, 0, NULL);
    json_t *auths = json_object_get(c, "auths");
    const char *key;
    json_t *v;
    json_object_foreach (auths, key, v) {
        /* Keys are "host:port", "https://host:port[/v1/]"; Docker Hub's is its v1 index URL. */
        const char *k = key;
        if (strncmp(k, "https://", 8) == 0)
            k += 8;
        else if (strncmp(k, "http://", 7) == 0)
            k += 7;
        size_t kn = strcspn(k, "/");
        bool hub = strcmp(reg->domain, SBX_DOCKER_DOMAIN) == 0 &&
                   ((kn == 15 && strncmp(k, "index.docker.io", 15) == 0) ||
                    (kn == 9 && strncmp(k, "docker.io", 9) == 0));
        if (!hub && !(strlen(reg->domain) == kn && strncmp(k, reg->domain, kn) == 0))
            continue;
        const char *a = json_string_value(json_object_get(v, "auth"));
        if (a && decode_auth(a, &reg->user, &reg->pass) == 0)
            break;
        const char *u = json_string_value(json_object_get(v, "username"));
        const char *p = json_string_value(json_object_get(v, "password"));
        if (u && p) {
            reg->user = xstrdup(u);
            reg->pass = xstrdup(p);
            break;
        }
    }
    json_decref(c);
}

int
sbx_registry_open(const struct sbx_image_ref *ref, const struct sbx_registry_opts *o,
                  struct sbx_registry **out, sbx_error_t *err)
{
    pthread_once(&curl_once, curl_init_once);
    json_t *conf = load_conf(o ? o->config_path : NULL, err);
    if (conf == NULL)
        return -1;
    struct sbx_registry *reg = xmalloc0(sizeof(*reg));
    reg->domain = xstrdup(ref->domain);
    reg->repo = xstrdup(ref->path);
    /* "host:port" names one registry; "host" every port of that host. */
    cleanup_free char *host = xstrdup(ref->domain);
    char *colon = host[0] == '[' ? strstr(host, "]:") : strchr(host, ':');
    if (colon)
        colon[host[0] == '[' ? 1 : 0] = '\0';
    reg->insecure = json_list_has(json_object_get(conf, "insecure"), ref->domain) ||
                    json_list_has(json_object_get(conf, "insecure"), host);
    const char *scheme = reg->insecure ? "http" : "https";
    size_t i;
    json_t *m;
    json_array_foreach (json_object_get(json_object_get(conf, "mirrors"), ref->domain), i, m) {
        const char *s = json_string_value(m);
        if (s == NULL || *s == '\0')
            continue;
        /* A mirror without a scheme gets the registry's; a trailing '/' is dropped. */
        char *b = strstr(s, "://") ? xstrdup(s) : xasprintf("https://%s", s);
        size_t n = strlen(b);
        while (n > 0 && b[n - 1] == '/')
            b[--n] = '\0';
        strv_append(&reg->bases, b);
        free(b);
    }
    cleanup_free char *own =
        xasprintf("%s://%s", scheme,
                  strcmp(ref->domain, SBX_DOCKER_DOMAIN) ? ref->domain : "registry-1.docker.io");
    strv_append(&reg->bases, own);
    const char *certs = json_string_value(json_object_get(conf, "certsDir"));
    cleanup_free char *cdir = xasprintf("%s/%s", certs ? certs : DEFAULT_CERTS_DIR, ref->domain);
    cleanup_free char *ca = xasprintf("%s/ca.crt", cdir);
    cleanup_free char *cc = xasprintf("%s/client.cert", cdir);
    cleanup_free char *ck = xasprintf("%s/client.key", cdir);
    if (access(ca, R_OK) == 0)
        reg->ca_file = steal_pointer(&ca);
    if (access(cc, R_OK) == 0 && access(ck, R_OK) == 0) {
        reg->client_cert = steal_pointer(&cc);
        reg->client_key = steal_pointer(&ck);
    }
    json_decref(conf);
    if (o && o->username) {
        reg->user = xstrdup(o->username);
        reg->pass = xstrdup(o->password ? o->password : "");
    } else {
        creds_from_auth_file(reg);
    }
    reg->curl = curl_easy_init();
    if (reg->curl == NULL) {
        sbx_registry_close(reg);
        return sbx_make_error(err, ENOMEM, "curl_easy_init");
    }
    *out = reg;
    return 0;
}

void
sbx_registry_close(struct sbx_registry *reg)
{
    if (reg == NULL)
        return;
    if (reg->curl)
        curl_easy_cleanup(reg->curl);
    free(reg->domain);
    free(reg->repo);
    strv_free(reg->bases);
    free(reg->ca_file);
    free(reg->client_cert);
    free(reg->client_key);
    if (reg->pass)
        explicit_bzero(reg->pass, strlen(reg->pass));
    free(reg->user);
    free(reg->pass);
    free(reg->token);
    free(reg);
}

enum sbx_pull_error
sbx_registry_error_kind(const struct sbx_registry *reg)
{
    return reg->kind;
}

/* ---------- one request ---------- */

struct response {
    /* body to memory (bounded) or to a file, hashed */
    char *buf;
    size_t len, max;
    int fd;
    struct sbx_sha256 *hash;
    uint64_t written;
    int64_t expect; /* blob size, or -1 */
    bool too_big;
    int write_errno;
    /* headers of the last response in a redirect chain */
    char *www_auth, *content_type;
    sbx_progress_fn progress;
    void *progress_data;
};

static size_t
on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct response *r = arg;
    size_t n = size * nmemb;
    if (r->fd >= 0) {
        if (r->expect >= 0 && r->written + n > (uint64_t)r->expect) {
            r->too_big = true;
            return 0;
        }
        if (safe_write(r->fd, data, n) < 0) {
            r->write_errno = errno;
            return 0;
        }
        sbx_sha256_update(r->hash, data, n);
        r->written += n;
        if (r->progress)
            r->progress(r->written, r->expect >= 0 ? (uint64_t)r->expect : 0, r->progress_data);
        return n;
    }
    if (r->len + n > r->max) {
        r->too_big = true;
        return 0;
    }
    r->buf = xrealloc(r->buf, r->len + n + 1);
    memcpy(r->buf + r->len, data, n);
    r->len += n;
    r->buf[r->len] = '\0';
    return n;
}

static size_t
on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    struct response *r = arg;
    size_t n = size * nmemb;
    /* A new status line starts a new response (redirects, 100-continue): forget the old one. */
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        free(r->www_auth);
        free(r->content_type);
        r->www_auth = r->content_type = NULL;
        return n;
    }
    char **slot = NULL;
    size_t skip = 0;
    if (n > 17 && strncasecmp(data, "WWW-Authenticate:", 17) == 0)
        slot = &r->www_auth, skip = 17;
    else if (n > 13 && strncasecmp(data, "Content-Type:", 13) == 0)
        slot = &r->content_type, skip = 13;
    if (slot && *slot == NULL && n < 8192) {
        const char *v = data + skip;
        size_t vn = n - skip;
        while (vn > 0 && (*v == ' ' || *v == '\t'))
            v++, vn--;
        while (vn > 0 && (v[vn - 1] == '\r' || v[vn - 1] == '\n' || v[vn - 1] == ' '))
            vn--;
        *slot = xasprintf("%.*s", (int)vn, v);
    }
    return n;
}

static void
response_reset(struct response *r)
{
    free(r->buf);
    r->buf = NULL;
    r->len = 0;
    free(r->www_auth);
    free(r->content_type);
    r->www_auth = r->content_type = NULL;
    r->too_big = false;
}

char *
sbx_registry_challenge_param(const char *h, const char *key)
{
    size_t kn = strlen(key);
    for (const char *p = h; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *eq = strchr(p, '=');
        if (eq == NULL)
            return NULL;
        bool match = (size_t)(eq - p) == kn && strncasecmp(p, key, kn) == 0;
        const char *v = eq + 1, *end;
        char *val;
        if (*v == '"') {
            v++;
            end = strchr(v, '"');
            if (end == NULL)
                return NULL;
            val = xasprintf("%.*s", (int)(end - v), v);
            end++;
        } else {
            end = v + strcspn(v, ",");
            val = xasprintf("%.*s", (int)(end - v), v);
        }
        if (match)
            return val;
        free(val);
        p = end;
    }
    return NULL;
}

static int perform(struct sbx_registry *reg, const char *url, const char *accept,
                   struct response *r, long *status, sbx_error_t *err);

/* Bearer: GET realm?service=...&scope=... with the credentials (if any), and keep the token. */
static int
fetch_token(struct sbx_registry *reg, const char *challenge, sbx_error_t *err)
{
    cleanup_free char *realm = sbx_registry_challenge_param(challenge, "realm");
    cleanup_free char *service = sbx_registry_challenge_param(challenge, "service");
    cleanup_free char *scope = sbx_registry_challenge_param(challenge, "scope");
    if (realm == NULL || (strncmp(realm, "https://", 8) != 0 &&
                          !(reg->insecure && strncmp(realm, "http://", 7) == 0)))
        return sbx_make_error(err, 0, "registry `%s`: unusable auth challenge `%s`", reg->domain,
                              challenge);
    CURL *c = reg->curl;
    cleanup_free char *esc_service = service ? curl_easy_escape(c, service, 0) : NULL;
    cleanup_free char *own_scope = xasprintf("repository:%s:pull", reg->repo);
    cleanup_free char *esc_scope = curl_easy_escape(c, scope ? scope : own_scope, 0);
    cleanup_free char *url =
        xasprintf("%s%s%s%s&scope=%s", realm, strchr(realm, '?') ? "&" : "?",
                  service ? "service=" : "", esc_service ? esc_service : "", esc_scope);
    struct response r = {.fd = -1, .max = TOKEN_MAX, .expect = -1};
    long status = 0;
    free(reg->token);
    reg->token = NULL;
    bool was_basic = reg->basic;
    reg->basic = reg->user != NULL; /* the token endpoint takes the credentials as Basic */
    int ret = perform(reg, url, "application/json", &r, &status, err);
    reg->basic = was_basic;
    if (ret == 0 && (status == 401 || status == 403)) {
        reg->kind = SBX_PULL_AUTH;
        ret = sbx_make_error(err, 0, "registry `%s`: %s (HTTP %ld from the token service)",
                             reg->domain,
                             reg->user ? "authentication failed: wrong user or "
                                         "password?"
                                       : "the registry requires credentials",
                             status);
    } else if (ret == 0 && status != 200) {
        ret = sbx_make_error(err, 0, "registry `%s`: token service answered HTTP %ld", reg->domain,
                             status);
    } else if (ret == 0) {
        json_t *j = json_loads(r.buf ? r.buf : "", 0, NULL);
        const char *t = json_string_value(json_object_get(j, "token"));
        if (t == NULL)
            t = json_string_value(json_object_get(j, "access_token"));
        if (t && *t && strlen(t) < TOKEN_MAX)
            reg->token = xstrdup(t);
        else
            ret = sbx_make_error(err, 0, "registry `%s`: the token service sent no token",
                                 reg->domain);
        json_decref(j);
    }
    response_reset(&r);
    return ret;
}

static int
perform(struct sbx_registry *reg, const char *url, const char *accept, struct response *r,
        long *status, sbx_error_t *err)
{
    CURL *c = reg->curl;
    curl_easy_reset(c);
    struct curl_slist *hdrs = NULL;
    cleanup_free char *acc = accept ? xasprintf("Accept: %s", accept) : NULL;
    if (acc)
        hdrs = curl_slist_append(hdrs, acc);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "sbx/1 (+libcurl)");
    /* Plain HTTP only for a registry configured insecure, or a mirror the configuration names
     * with http:// itself; never as a redirect from an HTTPS endpoint otherwise. */
    bool plain = reg->insecure || strncmp(url, "http://", 7) == 0;
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, plain ? "http,https" : "https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, plain ? "http,https" : "https");
    /* Blob storage redirects (S3, CDNs). libcurl sends credentials set through its auth
     * options only to the first host, never to the one redirected to. */
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c, CURLOPT_UNRESTRICTED_AUTH, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    /* A stalled transfer ends: under 1 byte/s for 60 s. */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (reg->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, reg->ca_file);
    if (reg->client_cert) {
        curl_easy_setopt(c, CURLOPT_SSLCERT, reg->client_cert);
        curl_easy_setopt(c, CURLOPT_SSLKEY, reg->client_key);
    }
    if (reg->token) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
        curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, reg->token);
    } else if (reg->basic && reg->user) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERNAME, reg->user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, reg->pass);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode cr = curl_easy_perform(c);
    curl_slist_free_all(hdrs);
    *status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    if (cr == CURLE_OK)
        return 0;
    reg->kind = SBX_PULL_FAILED;
    if (r->too_big)
        return sbx_make_error(err, 0, "`%s`: the registry sent more than %s", url,
                              r->fd >= 0 ? "the size its manifest gives" : "the size allowed");
    if (r->write_errno)
        return sbx_make_error(err, r->write_errno, "`%s`: write", url);
    return sbx_make_error(err, 0, "`%s`: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(cr));
}

/* GET path below /v2/<repo>/ with the auth dance: a 401 tells which auth the registry wants;
 * the request is retried once with it. Mirrors are tried first; any failure there falls back
 * to the next endpoint (a mirror is an optimisation, not an authority). */
static int
get(struct sbx_registry *reg, const char *what, const char *path, const char *accept,
    struct response *r, sbx_error_t *err)
{
    int ret = -1;
    for (char **b = reg->bases; b && *b; b++) {
        bool last = b[1] == NULL;
        cleanup_free char *url = xasprintf("%s/v2/%s/%s", *b, reg->repo, path);
        long status = 0;
        sbx_error_release(err);
        ret = perform(reg, url, accept, r, &status, err);
        if (ret == 0 && status == 401 && r->www_auth) {
            cleanup_free char *ch = steal_pointer(&r->www_auth);
            if (strncasecmp(ch, "Bearer ", 7) == 0) {
                if ((ret = fetch_token(reg, ch + 7, err)) < 0) {
                    if (!last)
                        continue;
                    return ret;
                }
            } else if (strncasecmp(ch, "Basic", 5) == 0) {
                reg->basic = true;
            }
            if (r->fd >= 0 && (ftruncate(r->fd, 0) < 0 || lseek(r->fd, 0, SEEK_SET) < 0))
                return sbx_make_error(err, errno, "truncate download");
            free(r->buf);
            r->buf = NULL;
            r->len = r->written = 0;
            if (r->hash) {
                sbx_sha256_free(r->hash);
                r->hash = sbx_sha256_new();
            }
            ret = perform(reg, url, accept, r, &status, err);
        }
        if (ret < 0) {
            if (!last)
                continue;
            return ret;
        }
        if (status == 200) {
            free(reg->base);
            reg->base = xstrdup(*b);
            reg->kind = SBX_PULL_OK;
            return 0;
        }
        if (!last && status != 401)
            continue;
        if (status == 401 || status == 403) {
            reg->kind = SBX_PULL_AUTH;
            return sbx_make_error(err, 0, "%s: %s (HTTP %ld from %s)", what,
                                  reg->user ? "authentication failed: wrong user or password?"
                                            : "the registry requires credentials",
                                  status, reg->domain);
        }
        if (status == 404) {
            reg->kind = SBX_PULL_NOT_FOUND;
            return sbx_make_error(err, 0, "%s: not found in %s (HTTP 404)", what, reg->domain);
        }
        reg->kind = SBX_PULL_FAILED;
        return sbx_make_error(err, 0, "%s: HTTP %ld from %s", what, status, url);
    }
    return ret;
}

#define MANIFEST_TYPES                                                                             \
    "application/vnd.oci.image.index.v1+json, "                                                    \
    "application/vnd.docker.distribution.manifest.list.v2+json, "                                  \
    "application/vnd.oci.image.manifest.v1+json, "                                                 \
    "application/vnd.docker.distribution.manifest.v2+json"

int
sbx_registry_manifest(struct sbx_registry *reg, const char *reference, char **body, size_t *len,
                      char **media_type, char digest[72], sbx_error_t *err)
{
    struct response r = {.fd = -1, .max = MANIFEST_MAX, .expect = -1};
    cleanup_free char *path = xasprintf("manifests/%s", reference);
    cleanup_free char *what = xasprintf("manifest `%s/%s%s%s`", reg->domain, reg->repo,
                                        strncmp(reference, "sha256:", 7) ? ":" : "@", reference);
    int ret = get(reg, what, path, MANIFEST_TYPES, &r, err);
    if (ret < 0) {
        response_reset(&r);
        return ret;
    }
    sbx_sha256_buf(r.buf ? r.buf : "", r.len, digest);
    if (strncmp(reference, "sha256:", 7) == 0 && strcmp(reference, digest) != 0) {
        response_reset(&r);
        reg->kind = SBX_PULL_FAILED;
        return sbx_make_error(err, 0, "%s: the registry sent content whose digest is %s", what,
                              digest);
    }
    /* Content-Type may carry parameters ("; charset=utf-8"). */
    char *ct = r.content_type ? xstrdup(r.content_type) : NULL;
    if (ct)
        ct[strcspn(ct, "; ")] = '\0';
    *media_type = ct;
    *body = r.buf ? r.buf : xstrdup("");
    *len = r.len;
    r.buf = NULL;
    response_reset(&r);
    return 0;
}

int
sbx_registry_blob(struct sbx_registry *reg, const char *digest, int64_t size, int fd,
                  sbx_progress_fn progress, void *data, sbx_error_t *err)
{
    if (!sbx_digest_valid(digest))
        return sbx_make_error(err, 0, "blob digest `%s` is not sha256:<64 hex>", digest);
    struct response r = {.fd = fd,
                         .expect = size,
                         .hash = sbx_sha256_new(),
                         .progress = progress,
                         .progress_data = data};
    cleanup_free char *path = xasprintf("blobs/%s", digest);
    cleanup_free char *what = xasprintf("blob %s of `%s/%s`", digest, reg->domain, reg->repo);
    int ret = get(reg, what, path, NULL, &r, err);
    char got[SBX_DIGEST_LEN + 1];
    sbx_sha256_final(r.hash, got);
    r.hash = NULL;
    if (ret == 0 && size >= 0 && r.written != (uint64_t)size)
        ret = sbx_make_error(err, 0, "%s: got %llu bytes, the manifest says %lld", what,
                             (unsigned long long)r.written, (long long)size);
    else if (ret == 0 && strcmp(got, digest) != 0)
        ret = sbx_make_error(err, 0, "%s: content does not match its digest (got %s)", what, got);
    if (ret < 0 && reg->kind == SBX_PULL_OK)
        reg->kind = SBX_PULL_FAILED;
    response_reset(&r);
    return ret;
}
