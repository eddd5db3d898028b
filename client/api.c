/* REST calls to sbx-apid (the OpenSandbox lifecycle API under /v1) and the endpoint lookup that
 * leads to a sandbox's agent, the way the OpenSandbox SDKs do it (server-proxied endpoint plus
 * the headers apid hands out). Every reply body is bounded: a misbehaving server cannot make sbx
 * allocate without limit. */
#include "cli.h"

#include <ctype.h>
#include <strings.h>

#define MAX_BODY (64u << 20)
#define CONNECT_TIMEOUT_S 10L

struct cli_cfg G;

void
cli_buf_put(struct cli_buf *b, const void *p, size_t n)
{
    size_t max = b->max ? b->max : MAX_BODY;
    if (b->over || b->len + n > max) {
        b->over = true;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void
cli_buf_free(struct cli_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

void
http_resp_free(struct http_resp *r)
{
    cli_buf_free(&r->body);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

char *
url_escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    char *r = xstrdup(e ? e : "");
    curl_free(e);
    return r;
}

static size_t
on_body(char *p, size_t sz, size_t n, void *u)
{
    cli_buf_put(u, p, sz * n);
    return sz * n;
}

static size_t
on_header(char *p, size_t sz, size_t n, void *u)
{
    struct http_resp *r = u;
    size_t len = sz * n;
    static const char name[] = "x-sbx-log-offset:";
    if (len > sizeof(name) && !strncasecmp(p, name, sizeof(name) - 1)) {
        size_t i = sizeof(name) - 1, o = 0;
        while (i < len && isspace((unsigned char)p[i]))
            i++;
        while (i < len && isdigit((unsigned char)p[i]) && o + 1 < sizeof(r->log_offset))
            r->log_offset[o++] = p[i++];
        r->log_offset[o] = '\0';
    }
    return len;
}

void
http_setup(CURL *h, const char *url, struct curl_slist *hdrs)
{
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "sbx/" SBX_VERSION);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    if (hdrs)
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
}

int
http_request(const char *method, const char *url, struct curl_slist *hdrs, const char *body,
             size_t blen, const char *ctype, struct http_resp *r, sbx_error_t *err)
{
    memset(r, 0, sizeof(*r));
    CURL *h = curl_easy_init();
    if (!h)
        return sbx_make_error(err, ENOMEM, "curl_easy_init"), -EX_FAIL;
    struct curl_slist *all = NULL;
    for (struct curl_slist *s = hdrs; s; s = s->next)
        all = curl_slist_append(all, s->data);
    cleanup_free char *ct = ctype ? xasprintf("Content-Type: %s", ctype) : NULL;
    if (ct)
        all = curl_slist_append(all, ct);
    all = curl_slist_append(all, "Expect:");
    http_setup(h, url, all);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (!strcmp(method, "HEAD"))
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    if (body || !strcmp(method, "POST") || !strcmp(method, "PATCH") || !strcmp(method, "PUT")) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? blen : 0));
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 600L);
    CURLcode cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(h);
    curl_slist_free_all(all);
    if (cc != CURLE_OK) {
        sbx_make_error(err, 0, "cannot reach %s: %s", url, curl_easy_strerror(cc));
        return -EX_CONN;
    }
    if (r->body.over) {
        sbx_make_error(err, 0, "%s: reply larger than %u bytes", url, MAX_BODY);
        return -EX_FAIL;
    }
    if (r->body.len)
        r->json = json_loadb(r->body.p, r->body.len, 0, NULL);
    return 0;
}

/* "message (HTTP 404 SANDBOX::NOT_FOUND)" from a {code,message} body, or the raw status. */
static int
status_error(struct http_resp *r, sbx_error_t *err)
{
    const char *code = json_string_value(json_object_get(r->json, "code"));
    const char *msg = json_string_value(json_object_get(r->json, "message"));
    const char *hint =
        r->status == 401 ? "; set SBX_API_KEY, --api-key-file or ~/.config/sbx/config.json" : "";
    if (msg)
        sbx_make_error(err, 0, "%s (HTTP %ld %s)%s", msg, r->status, code ? code : "", hint);
    else
        sbx_make_error(err, 0, "HTTP %ld from apid%s", r->status, hint);
    return r->status == 404 ? -EX_NOTFOUND : -EX_FAIL;
}

static struct curl_slist *
api_headers(void)
{
    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
    if (G.key) {
        cleanup_free char *k = xasprintf("OPEN-SANDBOX-API-KEY: %s", G.key);
        h = curl_slist_append(h, k);
    }
    return h;
}

int
api_call(const char *method, const char *path, json_t *body, struct http_resp *r, sbx_error_t *err)
{
    cleanup_free char *url = xasprintf("%s/v1%s", G.url, path);
    cleanup_free char *b = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct curl_slist *h = api_headers();
    int rc =
        http_request(method, url, h, b, b ? strlen(b) : 0, b ? "application/json" : NULL, r, err);
    curl_slist_free_all(h);
    if (rc < 0)
        return rc;
    if (r->status < 200 || r->status > 299)
        return status_error(r, err);
    return 0;
}

/* Lists every sandbox (all pages, bounded) and keeps the ids starting with prefix. */
int
api_resolve(const char *prefix, char **id, sbx_error_t *err)
{
    if (!*prefix || strlen(prefix) > 128 || strpbrk(prefix, "/?#%& \t\r\n")) {
        sbx_make_error(err, 0, "'%s' is not a sandbox id", prefix);
        return -EX_USAGE;
    }
    json_t *found = json_array();
    for (int page = 1; page <= 100; page++) {
        struct http_resp r;
        cleanup_free char *path = xasprintf("/sandboxes?pageSize=200&page=%d", page);
        int rc = api_call("GET", path, NULL, &r, err);
        if (rc < 0) {
            http_resp_free(&r);
            json_decref(found);
            return rc;
        }
        size_t i;
        json_t *it;
        json_array_foreach (json_object_get(r.json, "items"), i, it) {
            const char *s = json_string_value(json_object_get(it, "id"));
            if (s && !strcmp(s, prefix)) { /* an exact id wins over longer ids it prefixes */
                *id = xstrdup(s);
                http_resp_free(&r);
                json_decref(found);
                return 0;
            }
            if (s && !strncmp(s, prefix, strlen(prefix)))
                json_array_append_new(found, json_string(s));
        }
        bool more =
            json_is_true(json_object_get(json_object_get(r.json, "pagination"), "hasNextPage"));
        http_resp_free(&r);
        if (!more)
            break;
    }
    size_t n = json_array_size(found);
    if (n == 1) {
        *id = xstrdup(json_string_value(json_array_get(found, 0)));
        json_decref(found);
        return 0;
    }
    if (n == 0) {
        json_decref(found);
        sbx_make_error(err, 0, "no sandbox matches '%s'", prefix);
        return -EX_NOTFOUND;
    }
    struct cli_buf b = {0};
    for (size_t i = 0; i < n && i < 20; i++) {
        const char *s = json_string_value(json_array_get(found, i));
        cli_buf_put(&b, i ? ", " : "", i ? 2 : 0);
        cli_buf_put(&b, s, strlen(s));
    }
    if (n > 20)
        cli_buf_put(&b, ", ...", 5);
    sbx_make_error(err, 0, "'%s' is ambiguous: %zu sandboxes match (%s)", prefix, n, b.p);
    cli_buf_free(&b);
    json_decref(found);
    return -EX_NOTFOUND;
}

void
agent_ep_free(struct agent_ep *ep)
{
    free(ep->base);
    curl_slist_free_all(ep->hdrs);
    memset(ep, 0, sizeof(*ep));
}

#define AGENT_PORT 44772

/* The lookup is tried with the id as given first, so a full id costs one request (what `sbx exec`
 * pays per call); only a 404 falls back to prefix resolution. */
int
api_agent(char **id, struct agent_ep *ep, sbx_error_t *err)
{
    memset(ep, 0, sizeof(*ep));
    struct http_resp r;
    int rc = -EX_NOTFOUND;
    bool plain = strlen(*id) <= 128 && !strpbrk(*id, "/?#%& \t\r\n");
    if (plain) {
        cleanup_free char *path = xasprintf("/sandboxes/%s/endpoints/%d", *id, AGENT_PORT);
        rc = api_call("GET", path, NULL, &r, err);
    }
    if (rc == -EX_NOTFOUND) {
        if (plain)
            http_resp_free(&r);
        sbx_error_release(err);
        char *full = NULL;
        if ((rc = api_resolve(*id, &full, err)) < 0)
            return rc;
        free(*id);
        *id = full;
        cleanup_free char *path = xasprintf("/sandboxes/%s/endpoints/%d", *id, AGENT_PORT);
        rc = api_call("GET", path, NULL, &r, err);
    }
    if (rc < 0) {
        http_resp_free(&r);
        return rc;
    }
    const char *e = json_string_value(json_object_get(r.json, "endpoint"));
    if (!e) {
        http_resp_free(&r);
        sbx_make_error(err, 0, "apid's endpoint reply has no endpoint");
        return -EX_FAIL;
    }
    /* The endpoint has no scheme (CONTRACT §A.6): it takes the lifecycle URL's. */
    const char *scheme = !strncmp(G.url, "https://", 8) ? "https" : "http";
    ep->base = xasprintf("%s://%s", scheme, e);
    const char *k;
    json_t *v;
    json_object_foreach (json_object_get(r.json, "headers"), k, v) {
        if (!json_is_string(v))
            continue;
        cleanup_free char *h = xasprintf("%s: %s", k, json_string_value(v));
        ep->hdrs = curl_slist_append(ep->hdrs, h);
    }
    http_resp_free(&r);
    return 0;
}
