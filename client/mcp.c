/* `sbx mcp` (see mcp.h): the stdio transport of MCP bridged to apid's /mcp. A line on stdin is
 * one JSON-RPC message and goes to apid as one POST; its answer (JSON, or SSE events should a
 * server send them) goes out as lines on stdout. A failure of the HTTP leg is answered to the
 * client as a JSON-RPC error for that request id, never by exiting: the client stays up and can
 * retry once apid is back. */
#include "mcp.h"
#include "utils.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LINE_MAX_BYTES (16u << 20) /* one message from the client */
#define RESP_MAX_BYTES (64u << 20) /* one answer from apid */
#define WORKERS_MAX 8              /* requests in flight at once */
#define TOTAL_TIMEOUT_S 4000       /* above the longest tool call (run_command: 3600 s) */

static struct {
    char *endpoint, *key;
    pthread_mutex_t lock; /* session, protocol, init_msg, workers */
    pthread_cond_t cond;
    char *session, *protocol;
    char *init_msg; /* the client's initialize, replayed when apid forgot the session */
    int workers;
    pthread_mutex_t out_lock;
} B = {.lock = PTHREAD_MUTEX_INITIALIZER,
       .cond = PTHREAD_COND_INITIALIZER,
       .out_lock = PTHREAD_MUTEX_INITIALIZER};

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void
logf_(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sbx mcp: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void
emit(json_t *msg)
{
    char *s = json_dumps(msg, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!s)
        return;
    pthread_mutex_lock(&B.out_lock);
    fputs(s, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    pthread_mutex_unlock(&B.out_lock);
    free(s);
}

static void
emit_error(json_t *id, int code, const char *message)
{
    json_t *e = json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id ? id : json_null(),
                          "error", "code", code, "message", message);
    emit(e);
    json_decref(e);
}

/* ---------- one HTTP exchange ---------- */

struct resp {
    long status;
    char *body;
    size_t len;
    bool too_big;
    char *session, *ctype;
};

static size_t
on_body(char *p, size_t sz, size_t n, void *ud)
{
    struct resp *r = ud;
    size_t add = sz * n;
    if (r->len + add > RESP_MAX_BYTES) {
        r->too_big = true;
        return 0; /* aborts the transfer */
    }
    r->body = xrealloc(r->body, r->len + add + 1);
    memcpy(r->body + r->len, p, add);
    r->len += add;
    r->body[r->len] = '\0';
    return add;
}

/* The session id is echoed in every later request header, so only visible ASCII is kept. */
static char *
header_value(const char *p, size_t n)
{
    while (n && (*p == ' ' || *p == '\t'))
        p++, n--;
    while (n && (p[n - 1] == '\r' || p[n - 1] == '\n' || p[n - 1] == ' '))
        n--;
    if (n == 0 || n > 256)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x21 || (unsigned char)p[i] > 0x7e)
            return NULL;
    return strndup(p, n);
}

static size_t
on_header(char *p, size_t sz, size_t n, void *ud)
{
    struct resp *r = ud;
    size_t len = sz * n;
    if (len > 15 && !strncasecmp(p, "mcp-session-id:", 15)) {
        free(r->session);
        r->session = header_value(p + 15, len - 15);
    } else if (len > 13 && !strncasecmp(p, "content-type:", 13)) {
        free(r->ctype);
        r->ctype = header_value(p + 13, len - 13);
    }
    return len;
}

static void
resp_free(struct resp *r)
{
    free(r->body);
    free(r->session);
    free(r->ctype);
    memset(r, 0, sizeof(*r));
}

/* 0 with *r filled, or -1 with a message in err (transport failure). */
static int
exchange(const char *method, const char *body, size_t len, struct resp *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(err, errlen, "libcurl could not start a request");
        return -1;
    }
    struct curl_slist *hd = NULL;
    hd = curl_slist_append(hd, "Content-Type: application/json");
    hd = curl_slist_append(hd, "Accept: application/json, text/event-stream");
    hd = curl_slist_append(hd, "Expect:");
    if (B.key && *B.key) {
        cleanup_free char *k = xasprintf("OPEN-SANDBOX-API-KEY: %s", B.key);
        hd = curl_slist_append(hd, k);
    }
    pthread_mutex_lock(&B.lock);
    if (B.session) {
        cleanup_free char *s = xasprintf("Mcp-Session-Id: %s", B.session);
        hd = curl_slist_append(hd, s);
    }
    if (B.protocol) {
        cleanup_free char *s = xasprintf("MCP-Protocol-Version: %s", B.protocol);
        hd = curl_slist_append(hd, s);
    }
    pthread_mutex_unlock(&B.lock);
    char ebuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, B.endpoint);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)TOTAL_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK) {
        if (r->too_big)
            snprintf(err, errlen, "the answer of %s is larger than %u bytes", B.endpoint,
                     RESP_MAX_BYTES);
        else
            snprintf(err, errlen, "cannot reach sbx-apid at %s: %s", B.endpoint,
                     *ebuf ? ebuf : curl_easy_strerror(rc));
        resp_free(r);
        return -1;
    }
    return 0;
}

/* Writes the JSON-RPC messages of an answer to stdout; returns how many. */
static int
forward_answer(const struct resp *r)
{
    int n = 0;
    if (!r->len)
        return 0;
    if (r->ctype && !strncasecmp(r->ctype, "text/event-stream", 17)) {
        /* SSE: each event's data lines, joined by newlines, form one message; a blank line
         * ends an event. */
        cleanup_free char *data = NULL;
        size_t dl = 0;
        const char *p = r->body, *end = r->body + r->len;
        while (p <= end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t ll = (size_t)((nl ? nl : end) - p);
            if (ll && p[ll - 1] == '\r')
                ll--;
            if (ll >= 5 && !strncmp(p, "data:", 5)) {
                const char *v = p + 5 + (ll > 5 && p[5] == ' ');
                size_t vl = ll - (size_t)(v - p);
                data = xrealloc(data, dl + vl + 2);
                if (dl)
                    data[dl++] = '\n';
                memcpy(data + dl, v, vl);
                dl += vl;
            } else if ((ll == 0 || !nl) && dl) {
                json_t *m = json_loadb(data, dl, 0, NULL);
                if (m) {
                    emit(m);
                    json_decref(m);
                    n++;
                }
                dl = 0;
            }
            if (!nl)
                break;
            p = nl + 1;
        }
        if (dl) { /* the last event, when the body ends without a blank line */
            json_t *m = json_loadb(data, dl, 0, NULL);
            if (m) {
                emit(m);
                json_decref(m);
                n++;
            }
        }
        return n;
    }
    /* Only JSON-RPC goes to the client: apid's own errors ({code,message}: a refused key) are
     * turned into a JSON-RPC error by the caller. */
    json_t *m = json_loadb(r->body, r->len, 0, NULL);
    if (m && ((json_is_object(m) && json_object_get(m, "jsonrpc")) || json_is_array(m))) {
        emit(m);
        n = 1;
    }
    json_decref(m);
    return n;
}

static void
remember_session(const struct resp *r, const char *protocol)
{
    pthread_mutex_lock(&B.lock);
    if (r->session) {
        free(B.session);
        B.session = xstrdup(r->session);
    }
    if (protocol) {
        free(B.protocol);
        B.protocol = xstrdup(protocol);
    }
    pthread_mutex_unlock(&B.lock);
}

/* After an initialize answer: the negotiated version goes into later requests' headers. */
static void
learn_init(const struct resp *r)
{
    json_t *m = json_loadb(r->body ? r->body : "", r->len, 0, NULL);
    const char *v =
        json_string_value(json_object_get(json_object_get(m, "result"), "protocolVersion"));
    remember_session(r, v);
    json_decref(m);
}

/* apid restarted and forgot our session (404): a fresh initialize with the client's own
 * parameters, then initialized, as the client did at the start. */
static bool
reinitialize(void)
{
    pthread_mutex_lock(&B.lock);
    cleanup_free char *init = B.init_msg ? xstrdup(B.init_msg) : NULL;
    free(B.session);
    B.session = NULL;
    pthread_mutex_unlock(&B.lock);
    if (!init)
        return false;
    struct resp r;
    char err[512];
    if (exchange("POST", init, strlen(init), &r, err, sizeof(err)) < 0)
        return false;
    bool ok = r.status == 200;
    if (ok)
        learn_init(&r);
    resp_free(&r);
    if (!ok)
        return false;
    const char *n = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";
    if (exchange("POST", n, strlen(n), &r, err, sizeof(err)) == 0)
        resp_free(&r);
    logf_("the server had lost the session: initialized a new one");
    return true;
}

/* One message from the client, start to end. */
static void
handle_line(const char *line, size_t len)
{
    json_error_t je;
    json_t *m = json_loadb(line, len, 0, &je);
    json_t *id = json_object_get(m, "id");
    const char *method = json_string_value(json_object_get(m, "method"));
    bool is_init = method && !strcmp(method, "initialize");
    if (is_init) {
        pthread_mutex_lock(&B.lock);
        free(B.init_msg);
        B.init_msg = strndup(line, len);
        pthread_mutex_unlock(&B.lock);
    }
    struct resp r;
    char err[512];
    int rc = exchange("POST", line, len, &r, err, sizeof(err));
    if (rc == 0 && r.status == 404 && !is_init) {
        pthread_mutex_lock(&B.lock);
        bool had = B.session != NULL;
        pthread_mutex_unlock(&B.lock);
        if (had && reinitialize()) {
            resp_free(&r);
            rc = exchange("POST", line, len, &r, err, sizeof(err));
        }
    }
    if (rc < 0) {
        logf_("%s", err);
        if (id)
            emit_error(id, -32000, err);
        json_decref(m);
        return;
    }
    if (is_init && r.status == 200)
        learn_init(&r);
    int sent = forward_answer(&r);
    if (r.status >= 300 && !sent) {
        const char *why = r.status == 401   ? "the API key was refused (set SBX_API_KEY)"
                          : r.status == 404 ? "no MCP endpoint there (is SBX_URL an sbx-apid?)"
                                            : "the request failed";
        snprintf(err, sizeof(err), "sbx-apid at %s answered HTTP %ld: %s", B.endpoint, r.status,
                 why);
        logf_("%s", err);
        if (id && method)
            emit_error(id, -32000, err);
    } else if (r.status >= 300 && !(id && method)) {
        logf_("sbx-apid answered HTTP %ld to a notification", r.status);
    }
    resp_free(&r);
    json_decref(m);
}

struct job {
    char *line;
    size_t len;
};

static void *
worker(void *arg)
{
    struct job *j = arg;
    handle_line(j->line, j->len);
    free(j->line);
    free(j);
    pthread_mutex_lock(&B.lock);
    B.workers--;
    pthread_cond_broadcast(&B.cond);
    pthread_mutex_unlock(&B.lock);
    return NULL;
}

/* Reads one line of at most LINE_MAX_BYTES; a longer one is skipped whole (*too_long set).
 * Returns -1 at the end of input. */
static ssize_t
read_line(FILE *in, char **buf, size_t *cap, bool *too_long)
{
    size_t n = 0;
    int c;
    *too_long = false;
    while ((c = getc(in)) != EOF && c != '\n') {
        if (n >= LINE_MAX_BYTES) {
            *too_long = true;
            continue;
        }
        if (n + 2 > *cap) {
            *cap = *cap ? *cap * 2 : 4096;
            *buf = xrealloc(*buf, *cap);
        }
        (*buf)[n++] = (char)c;
    }
    if (c == EOF && n == 0 && !*too_long)
        return -1;
    if (!*buf) {
        *cap = 16;
        *buf = xmalloc0(*cap);
    }
    (*buf)[n] = '\0';
    return (ssize_t)n;
}

int
sbx_mcp_stdio(const char *url, const char *api_key)
{
    if (!url || !*url)
        url = "http://127.0.0.1:8080";
    if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) {
        logf_("SBX_URL `%s` is not an http:// or https:// URL", url);
        return 1;
    }
    size_t ul = strlen(url);
    while (ul && url[ul - 1] == '/')
        ul--;
    B.endpoint = ul >= 4 && !strncmp(url + ul - 4, "/mcp", 4) ? strndup(url, ul)
                                                              : xasprintf("%.*s/mcp", (int)ul, url);
    B.key = api_key ? xstrdup(api_key) : NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        logf_("libcurl failed to initialize");
        return 1;
    }
    logf_("serving MCP on stdio for %s%s", B.endpoint,
          B.key && *B.key ? "" : " (no API key: set SBX_API_KEY if apid requires one)");
    cleanup_free char *line = NULL;
    size_t cap = 0;
    bool too_long;
    ssize_t n;
    while ((n = read_line(stdin, &line, &cap, &too_long)) >= 0) {
        if (too_long) {
            logf_("a message longer than %u bytes was dropped", LINE_MAX_BYTES);
            emit_error(NULL, -32600, "message too large");
            continue;
        }
        size_t s = 0, e = (size_t)n;
        while (s < e && strchr(" \t\r", line[s]))
            s++;
        while (e > s && strchr(" \t\r", line[e - 1]))
            e--;
        if (s == e)
            continue;
        /* initialize and notifications in order, on this thread (initialized must follow the
         * session's creation); requests on workers, so slow tools do not block the others. */
        json_t *m = json_loadb(line + s, e - s, 0, NULL);
        const char *method = json_string_value(json_object_get(m, "method"));
        bool sync = !m || !json_object_get(m, "id") || (method && !strcmp(method, "initialize"));
        json_decref(m);
        if (sync) {
            handle_line(line + s, e - s);
            continue;
        }
        struct job *j = xmalloc0(sizeof(*j));
        j->line = strndup(line + s, e - s);
        j->len = e - s;
        pthread_mutex_lock(&B.lock);
        while (B.workers >= WORKERS_MAX)
            pthread_cond_wait(&B.cond, &B.lock);
        B.workers++;
        pthread_mutex_unlock(&B.lock);
        pthread_t th;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&th, &at, worker, j) != 0) {
            pthread_mutex_lock(&B.lock);
            B.workers--;
            pthread_mutex_unlock(&B.lock);
            handle_line(j->line, j->len);
            free(j->line);
            free(j);
        }
        pthread_attr_destroy(&at);
    }
    /* End of input: the answers still owed, then the session ends (the spec's DELETE). */
    pthread_mutex_lock(&B.lock);
    while (B.workers > 0)
        pthread_cond_wait(&B.cond, &B.lock);
    bool have = B.session != NULL;
    pthread_mutex_unlock(&B.lock);
    if (have) {
        struct resp r;
        char err[512];
        if (exchange("DELETE", NULL, 0, &r, err, sizeof(err)) == 0)
            resp_free(&r);
    }
    curl_global_cleanup();
    free(B.endpoint);
    free(B.key);
    free(B.session);
    free(B.protocol);
    free(B.init_msg);
    return 0;
}
