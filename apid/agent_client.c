/* Minimal HTTP/1.1 client for the in-sandbox agent. Every request uses its own connection with
 * Connection: close: agent requests are rare compared with their cost (command runs, uploads),
 * and a fresh connection per request needs no pool that could leak across sandboxes. */
#include "agent_client.h"
#include "state.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
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

static int
wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - apid_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, (int)left);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -errno;
    }
}

int
apid_agent_connect(const struct apid_agent_target *t, int timeout_ms, sbx_error_t *err)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(APID_AGENT_PORT)};
    int fd;
    if (t->addr && inet_pton(AF_INET, t->addr, &sa.sin_addr) == 1) {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            return sbx_make_error(err, errno, "socket");
    } else {
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if ((fd = socket_in_netns(t->pid, t->pid_start, err)) < 0)
            return fd;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        if (e == EINPROGRESS) {
            socklen_t sl = sizeof(e);
            int r = wait_fd(fd, POLLOUT, apid_now_ms() + timeout_ms);
            if (r < 0)
                e = -r;
            else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) < 0)
                e = errno;
        }
        if (e) {
            close(fd);
            return apid_fail(err, E_UNAVAILABLE, "the sandbox agent is not reachable: %s",
                             strerror(e));
        }
    }
    return fd;
}

/* Decodes a chunked body in place. 1: complete, 0: more input needed, -1: malformed.
 * The sandbox writes these bytes, so the framing is checked, not trusted: a size line is hex
 * digits (at most 15: sizes stay far from wrapping around) and then nothing or an extension,
 * and each chunk's data ends with CRLF. strtoull() took "-1" (as 2^64-1), blanks and garbage
 * after the digits, and the size then wrapped `hdr + n + 2` around: a sandbox made apid
 * memmove 2^64 bytes. */
static int
dechunk(char *b, size_t len, size_t *out_len)
{
    size_t in = 0, out = 0;
    for (;;) {
        char *eol = memmem(b + in, len - in, "\r\n", 2);
        if (!eol)
            return 0;
        const char *p = b + in;
        uint64_t n = 0;
        int digits = 0;
        for (; p < eol && isxdigit((unsigned char)*p); p++) {
            if (++digits > 15)
                return -1;
            n = n * 16 + (uint64_t)(*p <= '9' ? *p - '0' : (*p | 0x20) - 'a' + 10);
        }
        if (digits == 0 || (p < eol && *p != ';' && *p != ' ' && *p != '\t'))
            return -1;
        size_t hdr = (size_t)(eol + 2 - (b + in));
        if (n == 0) {
            *out_len = out;
            return 1; /* trailers are not used by the agent */
        }
        if (len - in < hdr + n + 2)
            return 0;
        if (memcmp(b + in + hdr + n, "\r\n", 2) != 0)
            return -1;
        memmove(b + out, b + in + hdr, n);
        out += n;
        in += hdr + n + 2;
    }
}

static int
send_all(int fd, const char *p, size_t n, int64_t deadline, sbx_error_t *err)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            return apid_fail(err, E_UNAVAILABLE, "sending to the sandbox agent: %s",
                             strerror(errno));
        if (wait_fd(fd, POLLOUT, deadline) < 0)
            return apid_fail(err, E_UNAVAILABLE, "sending to the sandbox agent timed out");
    }
    return 0;
}

int
apid_agent_send(const struct apid_agent_target *t, const char *method, const char *path,
                const char *ctype, const void *body, size_t len, int timeout_ms, sbx_error_t *err)
{
    int64_t deadline = apid_now_ms() + timeout_ms;
    int fd = apid_agent_connect(t, timeout_ms, err);
    if (fd < 0)
        return fd;
    cleanup_free char *head =
        xasprintf("%s %s HTTP/1.1\r\nHost: sandbox\r\nConnection: close\r\n"
                  "X-EXECD-ACCESS-TOKEN: %s\r\n%s%s%sContent-Length: %zu\r\n\r\n",
                  method, path, t->token ? t->token : "", ctype ? "Content-Type: " : "",
                  ctype ? ctype : "", ctype ? "\r\n" : "", len);
    int r = send_all(fd, head, strlen(head), deadline, err);
    if (r == 0 && len)
        r = send_all(fd, body, len, deadline, err);
    if (r < 0) {
        close(fd);
        return r;
    }
    return fd;
}

int
apid_agent_request(const struct apid_agent_target *t, const char *method, const char *path,
                   const char *ctype, const void *body, size_t len, int timeout_ms, size_t max_body,
                   struct apid_http_resp *out, sbx_error_t *err)
{
    memset(out, 0, sizeof(*out));
    int fd = apid_agent_send(t, method, path, ctype, body, len, timeout_ms, err);
    if (fd < 0)
        return fd;
    return apid_agent_recv(fd, timeout_ms, max_body, out, err);
}

int
apid_agent_recv(int fd_in, int timeout_ms, size_t max_body, struct apid_http_resp *out,
                sbx_error_t *err)
{
    cleanup_close int fd = fd_in;
    memset(out, 0, sizeof(*out));
    if (!max_body)
        max_body = MAX_BODY_DEFAULT;
    int64_t deadline = apid_now_ms() + timeout_ms;
    size_t cap = 16384, n = 0, hlen = 0;
    char *buf = xmalloc0(cap + 1);
    bool chunked = false, eof = false;
    long long clen = -1;
    for (;;) {
        if (hlen) {
            size_t blen = n - hlen;
            if (clen >= 0 && blen >= (size_t)clen)
                break;
            if (blen > max_body) {
                out->truncated = true;
                break;
            }
            if (chunked) {
                /* Decode a copy: the raw bytes stay until the body is complete. */
                size_t dl;
                char *tmp = xmalloc0(blen + 1);
                memcpy(tmp, buf + hlen, blen);
                int d = dechunk(tmp, blen, &dl);
                free(tmp);
                if (d != 0)
                    break;
            }
        }
        if (eof)
            break;
        if (n == cap) {
            cap *= 2;
            buf = xrealloc(buf, cap + 1);
        }
        ssize_t got = recv(fd, buf + n, cap - n, 0);
        if (got > 0) {
            n += (size_t)got;
            buf[n] = '\0';
            if (!hlen) {
                char *e = memmem(buf, n, "\r\n\r\n", 4);
                if (e) {
                    hlen = (size_t)(e + 4 - buf);
                    *e = '\0';
                    if (sscanf(buf, "HTTP/1.%*d %d", &out->status) != 1)
                        break;
                    for (char *l = strstr(buf, "\r\n"); l; l = strstr(l + 2, "\r\n")) {
                        if (!strncasecmp(l + 2, "Content-Length:", 15))
                            clen = atoll(l + 17);
                        else if (!strncasecmp(l + 2, "Transfer-Encoding:", 18) &&
                                 strcasestr(l + 20, "chunked"))
                            chunked = true;
                    }
                    e[0] = '\r';
                }
            }
            continue;
        }
        if (got == 0) {
            eof = true;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN || wait_fd(fd, POLLIN, deadline) < 0) {
            free(buf);
            return apid_fail(err, E_UNAVAILABLE, "the sandbox agent did not answer in time");
        }
    }
    if (!hlen || !out->status) {
        free(buf);
        return apid_fail(err, E_UNAVAILABLE, "the sandbox agent sent no valid HTTP response");
    }
    size_t blen = n - hlen;
    if (clen >= 0 && blen > (size_t)clen)
        blen = (size_t)clen;
    memmove(buf, buf + hlen, blen);
    buf[blen] = '\0';
    if (chunked) {
        size_t dl = 0;
        int d = dechunk(buf, blen, &dl);
        if (d < 0 || (d == 0 && !out->truncated)) {
            free(buf);
            return apid_fail(err, E_UNAVAILABLE, "the sandbox agent sent a truncated response");
        }
        if (d == 1)
            blen = dl;
        buf[blen] = '\0';
    }
    out->body = buf;
    out->len = blen;
    return 0;
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
        json_t *e = json_loadb(resp.body, resp.len, 0, NULL);
        const char *m = json_string_value(json_object_get(e, "message"));
        r = apid_fail(err, resp.status < 500 ? E_INVALID_PARAMETER : E_UNAVAILABLE,
                      "upload to %s failed: %s", path, m ? m : "agent error");
        json_decref(e);
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
