/* apid's HTTP/1.1 client for the in-sandbox agent, on libcurl (apid links it for image pulls
 * anyway): libcurl reads the response head and de-chunks the body, so apid keeps no second copy
 * of either next to the proxy's streaming one (apid/proxy.c). What stays here is what libcurl
 * cannot know: the socket made inside the sandbox's network namespace (CURLOPT_OPENSOCKETFUNCTION),
 * the body bound and the deadline. Every request uses its own connection, closed after it: agent
 * requests are rare compared with their cost (command runs, uploads), and a fresh connection per
 * request needs no pool that could leak across sandboxes. */
#include "agent_client.h"
#include "state.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <sys/socket.h>

#define MAX_BODY_DEFAULT (64u << 20)

void
apid_http_resp_free(struct apid_http_resp *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
}

void
apid_agent_target_of(const struct apid_sandbox *sb, struct apid_agent_target *t)
{
    memset(t, 0, sizeof(*t));
    t->pid = sb->pid;
    t->pid_start = sb->pid_start;
    t->token = sb->token;
    /* The bridge address when the sandbox has one (a plain connect, as the proxy does); without
     * networking the socket is made inside the sandbox's netns instead. */
    t->addr = sb->address && *sb->address ? sb->address : NULL;
}

struct ns_socket {
    int nsfd, fd, err;
};

/* Runs on a throw-away thread: setns() changes only the calling thread's network namespace, so
 * the namespace switch ends with the thread and no apid thread is ever left inside a sandbox. A
 * socket keeps the namespace it was created in. */
static void *
ns_socket_thread(void *arg)
{
    struct ns_socket *n = arg;
    if (setns(n->nsfd, CLONE_NEWNET) < 0) {
        n->err = errno;
        return NULL;
    }
    n->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (n->fd < 0)
        n->err = errno;
    return NULL;
}

static int
socket_in_netns(pid_t pid, unsigned long long start, sbx_error_t *err)
{
    char p[64];
    snprintf(p, sizeof(p), "/proc/%d/ns/net", pid);
    cleanup_close int nsfd = pid > 0 ? open(p, O_RDONLY | O_CLOEXEC) : -1;
    if (nsfd < 0)
        return apid_fail(err, E_NOT_RUNNING, "the sandbox process is gone");
    /* Checked after the open: the fd pins the namespace of exactly the process we verified. */
    if (start && sbx_pid_start_time(pid) != start)
        return apid_fail(err, E_NOT_RUNNING, "the sandbox process is gone");
    struct ns_socket n = {.nsfd = nsfd, .fd = -1};
    pthread_t th;
    int r = pthread_create(&th, NULL, ns_socket_thread, &n);
    if (r)
        return sbx_make_error(err, r, "thread for the sandbox netns");
    pthread_join(th, NULL);
    if (n.fd < 0)
        return sbx_make_error(err, n.err, "socket in the sandbox netns");
    return n.fd;
}

/* One request in flight. Its own multi handle lets apid_agent_send return once the request is
 * out and apid_agent_recv drive the same transfer on later. */
struct apid_agent_call {
    CURLM *multi;
    CURL *easy;
    struct curl_slist *hdrs;
    pid_t pid; /* the sandbox's netns, when there is no bridge address */
    unsigned long long pid_start;
    bool via_netns;
    sbx_error_t sock_err; /* why the netns socket could not be made (the sandbox is gone) */
    size_t body_len;      /* request body bytes, to tell when the request is out */
    char *buf;            /* response body, NUL-terminated */
    size_t len, cap, max;
    bool truncated;
    bool done; /* the transfer ended, with result */
    CURLcode result;
    char errbuf[CURL_ERROR_SIZE];
};

static curl_socket_t
open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct apid_agent_call *c = arg;
    int fd = c->via_netns ? socket_in_netns(c->pid, c->pid_start, &c->sock_err)
                          : socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (fd < 0 && !c->sock_err)
        sbx_make_error(&c->sock_err, errno, "socket");
    return fd < 0 ? CURL_SOCKET_BAD : fd;
}

/* Keeps at most max body bytes: past them the transfer stops (a short count ends it) and the
 * response is marked truncated, as a sandbox chooses how much its agent sends. */
static size_t
on_body(char *p, size_t size, size_t nmemb, void *arg)
{
    struct apid_agent_call *c = arg;
    size_t n = size * nmemb, room = c->len < c->max ? c->max - c->len : 0;
    size_t take = n < room ? n : room;
    size_t want = c->len + take + 1;
    if (want > c->cap) {
        while (c->cap < want)
            c->cap *= 2;
        if (c->cap > c->max + 1)
            c->cap = c->max + 1; /* want is at most that */
        c->buf = xrealloc(c->buf, c->cap);
    }
    memcpy(c->buf + c->len, p, take);
    c->len += take;
    c->buf[c->len] = '\0';
    if (take < n) {
        c->truncated = true;
        return 0;
    }
    return n;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void
curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void
call_free(struct apid_agent_call *c)
{
    if (!c)
        return;
    if (c->multi && c->easy)
        curl_multi_remove_handle(c->multi, c->easy);
    if (c->easy)
        curl_easy_cleanup(c->easy); /* closes the socket */
    if (c->multi)
        curl_multi_cleanup(c->multi);
    curl_slist_free_all(c->hdrs);
    sbx_error_release(&c->sock_err);
    free(c->buf);
    free(c);
}

static struct apid_agent_call *
call_new(const struct apid_agent_target *t, const char *method, const char *path, const char *ctype,
         const void *body, size_t len, bool copy_body, sbx_error_t *err)
{
    pthread_once(&curl_once, curl_init_once);
    struct apid_agent_call *c = xmalloc0(sizeof(*c));
    c->pid = t->pid;
    c->pid_start = t->pid_start;
    c->cap = 16384;
    c->buf = xmalloc0(c->cap);
    c->max = MAX_BODY_DEFAULT;
    c->body_len = len;
    c->multi = curl_multi_init();
    c->easy = curl_easy_init();
    if (!c->multi || !c->easy) {
        call_free(c);
        apid_fail(err, E_UNAVAILABLE, "cannot start a request to the sandbox agent");
        return NULL;
    }
    /* The bridge address when the sandbox has one (a plain connect, as the proxy does); without
     * networking the socket is made inside the sandbox's netns and connects to its loopback. */
    struct in_addr ia;
    c->via_netns = !t->addr || inet_pton(AF_INET, t->addr, &ia) != 1;
    cleanup_free char *url =
        xasprintf("http://%s:%d%s", c->via_netns ? "127.0.0.1" : t->addr, APID_AGENT_PORT, path);
    cleanup_free char *tok = xasprintf("X-EXECD-ACCESS-TOKEN: %s", t->token ? t->token : "");
    cleanup_free char *ct = xasprintf("Content-Type:%s%s", ctype ? " " : "", ctype ? ctype : "");
    c->hdrs = curl_slist_append(c->hdrs, tok);
    c->hdrs = curl_slist_append(c->hdrs, ct); /* without one, none (not libcurl's form type) */
    c->hdrs = curl_slist_append(c->hdrs, "Accept:");
    c->hdrs = curl_slist_append(c->hdrs, "Expect:"); /* the agent answers no 100 Continue */
    CURL *e = c->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(e, CURLOPT_PROXY, ""); /* never an http_proxy from apid's environment */
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->hdrs);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, c);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    if (strcmp(method, "GET") != 0) {
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        if (len || !strcmp(method, "POST")) {
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
            /* A split request's caller may free its body once the request is under way. */
            curl_easy_setopt(e, copy_body ? CURLOPT_COPYPOSTFIELDS : CURLOPT_POSTFIELDS,
                             len ? body : "");
        }
    }
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
        call_free(c);
        apid_fail(err, E_UNAVAILABLE, "cannot start a request to the sandbox agent");
        return NULL;
    }
    return c;
}

/* Runs the transfer until it ends (1, *res its result) or, with until_sent, until its request
 * body is out (0). -ETIMEDOUT once the deadline passes. libcurl reports the end once: a transfer
 * that ended while apid_agent_send drove it keeps its result for apid_agent_recv. */
static int
drive(struct apid_agent_call *c, int64_t deadline, bool until_sent, CURLcode *res)
{
    while (!c->done) {
        int running = 0;
        if (curl_multi_perform(c->multi, &running) != CURLM_OK) {
            c->result = CURLE_FAILED_INIT;
            c->done = true;
            break;
        }
        if (!running) {
            CURLMsg *m;
            int q;
            c->result = CURLE_GOT_NOTHING;
            while ((m = curl_multi_info_read(c->multi, &q)))
                if (m->msg == CURLMSG_DONE)
                    c->result = m->data.result;
            c->done = true;
            break;
        }
        long head = 0;
        curl_off_t sent = 0;
        if (until_sent && curl_easy_getinfo(c->easy, CURLINFO_REQUEST_SIZE, &head) == CURLE_OK &&
            head > 0 && curl_easy_getinfo(c->easy, CURLINFO_SIZE_UPLOAD_T, &sent) == CURLE_OK &&
            sent >= (curl_off_t)c->body_len)
            return 0;
        int64_t left = deadline - apid_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        curl_multi_poll(c->multi, NULL, 0, left > INT_MAX ? INT_MAX : (int)left, NULL);
    }
    *res = c->result;
    return 1;
}

/* The error for a transfer that did not end in a response (r: drive's result). */
static int
call_error(struct apid_agent_call *c, int r, CURLcode res, sbx_error_t *err)
{
    if (c->sock_err) {
        *err = c->sock_err;
        c->sock_err = NULL;
        return -1;
    }
    if (r == -ETIMEDOUT || res == CURLE_OPERATION_TIMEDOUT)
        return apid_fail(err, E_UNAVAILABLE, "the sandbox agent did not answer in time");
    const char *why = c->errbuf[0] ? c->errbuf : curl_easy_strerror(res);
    switch (res) {
    case CURLE_COULDNT_CONNECT:
        return apid_fail(err, E_UNAVAILABLE, "the sandbox agent is not reachable: %s", why);
    case CURLE_SEND_ERROR:
        return apid_fail(err, E_UNAVAILABLE, "sending to the sandbox agent: %s", why);
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR: {
        long status = 0;
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status) /* else the connection ended inside the head */
            return apid_fail(err, E_UNAVAILABLE, "the sandbox agent sent a truncated response");
        break;
    }
    default: break;
    }
    return apid_fail(err, E_UNAVAILABLE, "the sandbox agent sent no valid HTTP response: %s", why);
}

struct apid_agent_call *
apid_agent_send(const struct apid_agent_target *t, const char *method, const char *path,
                const char *ctype, const void *body, size_t len, int timeout_ms, sbx_error_t *err)
{
    struct apid_agent_call *c = call_new(t, method, path, ctype, body, len, true, err);
    if (!c)
        return NULL;
    CURLcode res = CURLE_OK;
    int r = drive(c, apid_now_ms() + timeout_ms, true, &res);
    /* Ended already (an answer before the body was out, or a failure): recv reports it, unless
     * nothing came back at all. */
    if (r < 0 || (r == 1 && res != CURLE_OK && res != CURLE_WRITE_ERROR)) {
        call_error(c, r, res, err);
        call_free(c);
        return NULL;
    }
    return c;
}

int
apid_agent_recv(struct apid_agent_call *c, int timeout_ms, size_t max_body,
                struct apid_http_resp *out, sbx_error_t *err)
{
    memset(out, 0, sizeof(*out));
    c->max = max_body ? max_body : MAX_BODY_DEFAULT;
    if (c->len > c->max) { /* read while the request was sent, under the default bound */
        c->len = c->max;
        c->buf[c->len] = '\0';
        c->truncated = true;
    }
    CURLcode res = CURLE_OK;
    int r = drive(c, apid_now_ms() + timeout_ms, false, &res);
    long status = 0;
    if (r == 1 && (res == CURLE_OK || (res == CURLE_WRITE_ERROR && c->truncated)))
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status < 100 || status > 999) {
        r = r == 1 && res == CURLE_OK
                ? apid_fail(err, E_UNAVAILABLE, "the sandbox agent sent no valid HTTP response")
                : call_error(c, r, res, err);
        call_free(c);
        return r;
    }
    out->status = (int)status;
    out->body = c->buf;
    out->len = c->len;
    out->truncated = c->truncated;
    c->buf = NULL;
    call_free(c);
    return 0;
}

void
apid_agent_abandon(struct apid_agent_call *c)
{
    call_free(c);
}

int
apid_agent_request(const struct apid_agent_target *t, const char *method, const char *path,
                   const char *ctype, const void *body, size_t len, int timeout_ms, size_t max_body,
                   struct apid_http_resp *out, sbx_error_t *err)
{
    memset(out, 0, sizeof(*out));
    struct apid_agent_call *c = call_new(t, method, path, ctype, body, len, false, err);
    return c ? apid_agent_recv(c, timeout_ms, max_body, out, err) : -1;
}

char *
apid_agent_message(const struct apid_http_resp *r)
{
    json_t *e = json_loadb(r->body, r->len, 0, NULL);
    const char *m = json_string_value(json_object_get(e, "message"));
    char *copy = m ? xstrdup(m) : NULL;
    json_decref(e);
    return copy;
}

void
apid_agent_delete(const struct apid_agent_target *t, const char *path)
{
    struct apid_http_resp resp;
    sbx_error_t err = NULL;
    if (apid_agent_request(t, "DELETE", path, NULL, NULL, 0, 5000, 4096, &resp, &err) == 0)
        apid_http_resp_free(&resp);
    sbx_error_release(&err);
}

int
apid_agent_upload(const struct apid_agent_target *t, const char *path, int mode, const void *data,
                  size_t len, int timeout_ms, sbx_error_t *err)
{
    char bnd[33];
    random_hex(bnd, 32);
    json_t *md = mode ? json_pack("{s:s, s:i}", "path", path, "mode", mode)
                      : json_pack("{s:s}", "path", path);
    cleanup_free char *mds = md ? json_dumps(md, JSON_COMPACT) : NULL;
    json_decref(md);
    if (!mds)
        return apid_fail(err, E_INVALID_PARAMETER, "the path is not valid UTF-8");
    cleanup_free char *head = xasprintf(
        "--%s\r\nContent-Disposition: form-data; name=\"metadata\"; filename=\"metadata\"\r\n"
        "Content-Type: application/json\r\n\r\n%s\r\n--%s\r\nContent-Disposition: "
        "form-data; name=\"file\"; filename=\"file\"\r\nContent-Type: "
        "application/octet-stream\r\n\r\n",
        bnd, mds, bnd);
    cleanup_free char *tail = xasprintf("\r\n--%s--\r\n", bnd);
    size_t hl = strlen(head), tl = strlen(tail), total = hl + len + tl;
    cleanup_free char *mp = xmalloc0(total + 1);
    memcpy(mp, head, hl);
    if (len)
        memcpy(mp + hl, data, len);
    memcpy(mp + hl + len, tail, tl);
    cleanup_free char *ct = xasprintf("multipart/form-data; boundary=%s", bnd);
    struct apid_http_resp resp;
    if (apid_agent_request(t, "POST", "/files/upload", ct, mp, total, timeout_ms, 65536, &resp,
                           err) < 0)
        return -1;
    int r = 0;
    if (resp.status != 200) {
        cleanup_free char *m = apid_agent_message(&resp);
        r = apid_fail(err, resp.status < 500 ? E_INVALID_PARAMETER : E_UNAVAILABLE,
                      "upload to %s failed: %s", path, m ? m : "agent error");
    }
    apid_http_resp_free(&resp);
    return r;
}

int
apid_agent_wait_ready(const struct apid_agent_target *t, int timeout_ms, sbx_error_t *err)
{
    int64_t deadline = apid_now_ms() + timeout_ms;
    useconds_t delay = 500;
    for (;;) {
        struct apid_http_resp resp;
        sbx_error_t e = NULL;
        int left = (int)(deadline - apid_now_ms());
        if (left <= 0)
            return apid_fail(err, E_UNAVAILABLE, "the sandbox agent did not become ready");
        if (apid_agent_request(t, "GET", "/ping", NULL, NULL, 0, left, 4096, &resp, &e) == 0) {
            int st = resp.status;
            apid_http_resp_free(&resp);
            if (st == 200)
                return 0;
        } else if (sbx_error_is(e, E_NOT_RUNNING)) {
            /* The sandbox ended: waiting longer cannot help. */
            *err = e;
            return -1;
        }
        sbx_error_release(&e);
        /* The agent binds its port a few ms after the sandbox's pid is reported. */
        usleep(delay);
        if (delay < 20000)
            delay *= 2;
    }
}
