/* The reverse proxy under /sandboxes/{id}/proxy/{port}/... (CONTRACT.md §A.6): apid forwards to
 * <sandbox-ip>:<port> over the sandbox bridge, so clients need one port (apid's) and never see
 * the agent's token or talk to the sandbox network directly.
 *
 * Streaming both ways, never buffering a whole body: the request is opened upstream as soon as
 * its headers are in (so a dead target fails fast, before any upload), each upload piece MHD
 * hands us is written through (re-chunked when the client sent chunked), and the response is an
 * MHD callback response that reads the upstream socket — each read becomes one chunk on the
 * wire, so SSE events arrive as the agent writes them. A 101 answer turns into an MHD upgrade
 * and a thread that splices the two sockets (WebSocket).
 *
 * One upstream connection per request, with Connection: close: body framing stays trivial to get
 * right and a sandbox cannot confuse two clients' requests on a shared connection.
 *
 * Headers: hop-by-hop ones (RFC 9110 §7.6.1, plus those named in Connection) are not forwarded;
 * OPEN-SANDBOX-API-KEY never reaches the sandbox (§C.2); X-EXECD-ACCESS-TOKEN is added from the
 * sandbox record unless the client sent one. */
#include "apid.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define CONNECT_TIMEOUT_MS 2000
#define HEAD_MAX 65536
#define IO_TIMEOUT_S 3600 /* bounds a silent upstream; SSE streams may idle for long */

static struct apid_store *pstore;

void
apid_proxy_setup(struct apid_store *store)
{
    pstore = store;
}

struct apid_proxy {
    int fd;
    char id[65];             /* the sandbox, for apid_proxy_abort() */
    struct apid_proxy *next; /* in `open_list` while fd is open */
    bool chunked_up;         /* request body re-chunked upstream */
    bool head_req;
    bool ws;
    bool failed; /* upstream write failed: the rest of the upload is dropped */
    /* response body decoding */
    enum { B_RAW, B_LEN, B_CHUNK_SIZE, B_CHUNK_DATA, B_CHUNK_CRLF, B_TRAILER, B_DONE } bs;
    uint64_t left;
    char *ib;
    size_t ib_start, ib_end, ib_cap;
    /* building the request head */
    struct sbx_buf hdr;
    char conn_tokens[512]; /* lower-case, comma-separated names listed in Connection */
    bool has_token;
    unsigned flags;
};

static void hdr_printf(struct apid_proxy *px, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void
hdr_printf(struct apid_proxy *px, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n > 0)
        sbx_buf_add(&px->hdr, s, (size_t)n);
    free(s);
}

/* Every open upstream connection, by sandbox: deleting a sandbox destroys its network namespace
 * without a FIN or RST reaching apid, and a thread reading a response from it would otherwise
 * wait out IO_TIMEOUT_S (and hold up apid's shutdown, which waits for connection threads). */
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static struct apid_proxy *open_list;

static void
track(struct apid_proxy *px, bool add)
{
    pthread_mutex_lock(&open_lock);
    if (add) {
        px->next = open_list;
        open_list = px;
    } else {
        for (struct apid_proxy **pp = &open_list; *pp; pp = &(*pp)->next)
            if (*pp == px) {
                *pp = px->next;
                break;
            }
    }
    pthread_mutex_unlock(&open_lock);
}

void
apid_proxy_abort(const char *id)
{
    pthread_mutex_lock(&open_lock);
    for (struct apid_proxy *px = open_list; px; px = px->next)
        if (!strcmp(px->id, id))
            shutdown(px->fd, SHUT_RDWR); /* the reader sees EOF; its owner closes the fd */
    pthread_mutex_unlock(&open_lock);
}

void
apid_proxy_free(struct apid_proxy *px)
{
    if (!px)
        return;
    if (px->fd >= 0) {
        track(px, false);
        close(px->fd);
    }
    free(px->ib);
    free(px->hdr.p);
    free(px);
}

static bool
is_hop(const char *name)
{
    static const char *const hop[] = {"connection",
                                      "keep-alive",
                                      "proxy-connection",
                                      "proxy-authenticate",
                                      "proxy-authorization",
                                      "te",
                                      "trailer",
                                      "transfer-encoding",
                                      "upgrade",
                                      "host",
                                      "content-length",
                                      "expect",
                                      "open-sandbox-api-key"};
    for (size_t i = 0; i < ARRAY_SIZE(hop); i++)
        if (!strcasecmp(name, hop[i]))
            return true;
    return false;
}

static bool
in_conn_tokens(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        while (*p == ',' || *p == ' ')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && t[-1] == ' ')
            t--;
        if ((size_t)(t - p) == n && !strncasecmp(p, name, n))
            return true;
        p = e;
    }
    return false;
}

static enum MHD_Result
copy_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct apid_proxy *px = cls;
    if (!key || !value || is_hop(key) || in_conn_tokens(px->conn_tokens, key))
        return MHD_YES;
    if ((px->flags & APID_PROXY_OPENHANDS) && !strcasecmp(key, "X-API-Key"))
        return MHD_YES; /* apid's own key never reaches the sandbox */
    if (strpbrk(key, "\r\n:") || strpbrk(value, "\r\n"))
        return MHD_YES; /* MHD rejects these already; never let one split the head */
    if (!strcasecmp(key, "X-EXECD-ACCESS-TOKEN"))
        px->has_token = true;
    hdr_printf(px, "%s: %s\r\n", key, value);
    return MHD_YES;
}

static int
connect_timeout(const struct sockaddr_in *sa, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0) {
        if (errno != EINPROGRESS) {
            int e = errno;
            close(fd);
            return -e;
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int r = TEMP_FAILURE_RETRY(poll(&p, 1, timeout_ms));
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (r <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
            close(fd);
            return r == 0 ? -ETIMEDOUT : -(soerr ? soerr : ECONNREFUSED);
        }
    }
    /* Blocking from here on: each proxied request has its own MHD thread. Keepalive finds a
     * sandbox that vanished without closing (its namespace torn down) within ~1 minute. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    int idle = 30, intvl = 10, cnt = 3;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

static int fail(char *msg, size_t len, const char **code, const char *c, int status,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int
fail(char *msg, size_t len, const char **code, const char *c, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, len, fmt, ap);
    va_end(ap);
    *code = c;
    return status;
}

bool
apid_proxy_probe(const char *address, int port, int timeout_ms)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (!address || inet_pton(AF_INET, address, &sa.sin_addr) != 1)
        return false;
    int fd = connect_timeout(&sa, timeout_ms);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

/* Returns 0 with *out set, or an HTTP status with *code and msg describing why. */
int
apid_proxy_open(struct MHD_Connection *c, const char *id, int port, const char *rest,
                const char *method, unsigned flags, struct apid_proxy **out, const char **code,
                char *msg, size_t msglen)
{
    struct apid_sandbox *sb = NULL;
    sbx_error_t err = NULL;
    int r = pstore ? apid_store_get(pstore, id, &sb, &err) : -1;
    if (r <= 0) {
        sbx_error_release(&err);
        return fail(msg, msglen, code, E_NOT_FOUND, r < 0 ? 500 : 404, "sandbox `%s` not found",
                    id);
    }
    int st = sb->state;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    bool have_ip = sb->address && inet_pton(AF_INET, sb->address, &sa.sin_addr) == 1;
    cleanup_free char *token = sb->token ? xstrdup(sb->token) : NULL;
    apid_sandbox_free(sb);
    if (st == ST_PAUSED || st == ST_PAUSING)
        return fail(msg, msglen, code, E_CONFLICT, 409,
                    "sandbox `%s` is paused; resume it to reach port %d", id, port);
    if (st == ST_PENDING)
        return fail(msg, msglen, code, E_UNAVAILABLE, 503, "sandbox `%s` is still starting", id);
    if (st != ST_RUNNING && st != ST_RESUMING)
        return fail(msg, msglen, code, E_UNAVAILABLE, 503, "sandbox `%s` is %s", id,
                    apid_state_name(st));
    if (!have_ip)
        return fail(msg, msglen, code, E_UNAVAILABLE, 503,
                    "sandbox `%s` has no network (created with extensions.network=none or "
                    "apid runs with --bridge none)",
                    id);
    int fd = connect_timeout(&sa, CONNECT_TIMEOUT_MS);
    if (fd < 0)
        return fail(msg, msglen, code, "SANDBOX::UPSTREAM_UNAVAILABLE", 502,
                    "nothing accepts connections on port %d of sandbox `%s` yet: %s", port, id,
                    strerror(-fd));

    struct apid_proxy *px = xmalloc0(sizeof(*px));
    px->fd = fd;
    px->flags = flags;
    snprintf(px->id, sizeof(px->id), "%s", id);
    track(px, true);
    px->head_req = !strcmp(method, "HEAD");
    const char *conn = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Connection");
    const char *upg = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Upgrade");
    if (conn)
        snprintf(px->conn_tokens, sizeof(px->conn_tokens), "%s", conn);
    px->ws = upg && conn && in_conn_tokens(conn, "upgrade") && !strcasecmp(upg, "websocket");
    const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Transfer-Encoding");
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    px->chunked_up = te && strcasestr(te, "chunked");

    hdr_printf(px, "%s %s HTTP/1.1\r\nHost: %s:%d\r\n", method, rest, inet_ntoa(sa.sin_addr), port);
    MHD_get_connection_values(c, MHD_HEADER_KIND, copy_header, px);
    if (!px->has_token && token && !(flags & APID_PROXY_OPENHANDS))
        hdr_printf(px, "X-EXECD-ACCESS-TOKEN: %s\r\n", token);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char cip[INET6_ADDRSTRLEN] = "";
    if (ci && ci->client_addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)ci->client_addr)->sin_addr, cip, sizeof(cip));
    else if (ci && ci->client_addr->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ci->client_addr)->sin6_addr, cip, sizeof(cip));
    if (*cip)
        hdr_printf(px, "X-Forwarded-For: %s\r\n", cip);
    if (px->chunked_up)
        hdr_printf(px, "Transfer-Encoding: chunked\r\n");
    else if (cl)
        hdr_printf(px, "Content-Length: %s\r\n", cl);
    if (px->ws)
        hdr_printf(px, "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    else
        hdr_printf(px, "Connection: close\r\n\r\n");
    if (safe_write(fd, px->hdr.p, px->hdr.len) < 0) {
        int e = errno;
        apid_proxy_free(px);
        return fail(msg, msglen, code, "SANDBOX::UPSTREAM_UNAVAILABLE", 502,
                    "sending to sandbox `%s` port %d: %s", id, port, strerror(e));
    }
    free(px->hdr.p);
    px->hdr = (struct sbx_buf){0};
    *out = px;
    return 0;
}

void
apid_proxy_body(struct apid_proxy *px, const char *data, size_t len)
{
    if (px->failed || !len)
        return;
    if (px->chunked_up) {
        char pre[24];
        int n = snprintf(pre, sizeof(pre), "%zx\r\n", len);
        struct iovec iov[3] = {{pre, (size_t)n}, {(void *)data, len}, {(void *)"\r\n", 2}};
        size_t total = (size_t)n + len + 2;
        /* writev may be partial on a blocking socket only after a signal; finish it by hand. */
        ssize_t w = TEMP_FAILURE_RETRY(writev(px->fd, iov, 3));
        if (w < 0) {
            px->failed = true;
            return;
        }
        if ((size_t)w < total) {
            cleanup_free char *flat = xmalloc0(total);
            memcpy(flat, pre, (size_t)n);
            memcpy(flat + n, data, len);
            memcpy(flat + n + len, "\r\n", 2);
            if (safe_write(px->fd, flat + w, total - (size_t)w) < 0)
                px->failed = true;
        }
        return;
    }
    if (safe_write(px->fd, data, len) < 0)
        px->failed = true;
}

/* ---------- response ---------- */

static ssize_t
ib_fill(struct apid_proxy *px)
{
    if (px->ib_start == px->ib_end)
        px->ib_start = px->ib_end = 0;
    if (px->ib_end == px->ib_cap) {
        if (px->ib_start > 0) {
            memmove(px->ib, px->ib + px->ib_start, px->ib_end - px->ib_start);
            px->ib_end -= px->ib_start;
            px->ib_start = 0;
        } else {
            px->ib_cap = px->ib_cap ? px->ib_cap * 2 : 16384;
            px->ib = xrealloc(px->ib, px->ib_cap);
        }
    }
    ssize_t n = TEMP_FAILURE_RETRY(read(px->fd, px->ib + px->ib_end, px->ib_cap - px->ib_end));
    if (n > 0)
        px->ib_end += (size_t)n;
    return n;
}

/* A CRLF-terminated line at the buffer start: returns its length (without CRLF) or -1 (EOF). */
static ssize_t
ib_line(struct apid_proxy *px, char **line)
{
    for (;;) {
        size_t avail = px->ib_end - px->ib_start;
        /* Before the first read px->ib is NULL, and NULL + 0 is undefined (UBSan says so). */
        char *s = avail ? px->ib + px->ib_start : NULL;
        char *nl = avail ? memchr(s, '\n', avail) : NULL;
        if (nl) {
            size_t n = (size_t)(nl - s);
            px->ib_start += n + 1;
            if (n && s[n - 1] == '\r')
                n--;
            s[n] = '\0';
            *line = s;
            return (ssize_t)n;
        }
        if (avail > HEAD_MAX || ib_fill(px) <= 0)
            return -1;
    }
}

/* Copies body bytes: buffered ones first, then straight from the socket. */
static ssize_t
take(struct apid_proxy *px, char *buf, size_t max)
{
    size_t avail = px->ib_end - px->ib_start;
    if (avail) {
        size_t n = avail < max ? avail : max;
        memcpy(buf, px->ib + px->ib_start, n);
        px->ib_start += n;
        return (ssize_t)n;
    }
    return TEMP_FAILURE_RETRY(read(px->fd, buf, max));
}

/* A chunk-size line: hex digits (at most 15, far from wrapping around), then nothing or an
 * extension. The sandbox writes it, so it is checked, not trusted: strtoull() took "-1" (as
 * 2^64-1), blanks and garbage after the digits, and a size apid's earlier agent client then
 * wrapped around made it memmove 2^64 bytes. */
static int
chunk_size(const char *line, uint64_t *out)
{
    uint64_t n = 0;
    int digits = 0;
    const char *p = line;
    for (; isxdigit((unsigned char)*p); p++) {
        if (++digits > 15)
            return -1;
        n = n * 16 + (uint64_t)(*p <= '9' ? *p - '0' : (*p | 0x20) - 'a' + 10);
    }
    if (digits == 0 || (*p && *p != ';' && *p != ' ' && *p != '\t'))
        return -1;
    *out = n;
    return 0;
}

static ssize_t
body_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct apid_proxy *px = cls;
    char *line;
    for (;;) {
        switch (px->bs) {
        case B_DONE: return MHD_CONTENT_READER_END_OF_STREAM;
        case B_RAW: {
            ssize_t n = take(px, buf, max);
            if (n == 0)
                return MHD_CONTENT_READER_END_OF_STREAM;
            return n < 0 ? MHD_CONTENT_READER_END_WITH_ERROR : n;
        }
        case B_LEN: {
            if (px->left == 0)
                return MHD_CONTENT_READER_END_OF_STREAM;
            ssize_t n = take(px, buf, max < px->left ? max : (size_t)px->left);
            if (n <= 0)
                return MHD_CONTENT_READER_END_WITH_ERROR;
            px->left -= (uint64_t)n;
            return n;
        }
        case B_CHUNK_SIZE: {
            uint64_t sz;
            if (ib_line(px, &line) < 0 || chunk_size(line, &sz) < 0)
                return MHD_CONTENT_READER_END_WITH_ERROR;
            px->left = sz;
            px->bs = sz ? B_CHUNK_DATA : B_TRAILER;
            continue;
        }
        case B_CHUNK_DATA: {
            ssize_t n = take(px, buf, max < px->left ? max : (size_t)px->left);
            if (n <= 0)
                return MHD_CONTENT_READER_END_WITH_ERROR;
            px->left -= (uint64_t)n;
            if (px->left == 0)
                px->bs = B_CHUNK_CRLF;
            return n;
        }
        case B_CHUNK_CRLF:
            if (ib_line(px, &line) != 0) /* the chunk's data ends with CRLF, nothing before it */
                return MHD_CONTENT_READER_END_WITH_ERROR;
            px->bs = B_CHUNK_SIZE;
            continue;
        case B_TRAILER: {
            ssize_t n = ib_line(px, &line);
            if (n < 0)
                return MHD_CONTENT_READER_END_WITH_ERROR;
            if (n == 0)
                px->bs = B_DONE;
            continue;
        }
        }
    }
}

static void
body_free(void *cls)
{
    apid_proxy_free(cls);
}

/* ---------- WebSocket: splice the client and upstream sockets ---------- */

struct splice {
    struct apid_proxy *px;
    struct MHD_UpgradeResponseHandle *urh;
    int client;
};

static void *
splice_thread(void *arg)
{
    struct splice *sp = arg;
    char buf[16384];
    struct pollfd p[2] = {{.fd = sp->client, .events = POLLIN},
                          {.fd = sp->px->fd, .events = POLLIN}};
    for (;;) {
        if (TEMP_FAILURE_RETRY(poll(p, 2, IO_TIMEOUT_S * 1000)) <= 0)
            break;
        int i = (p[0].revents & (POLLIN | POLLHUP | POLLERR)) ? 0 : 1;
        if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        ssize_t n = TEMP_FAILURE_RETRY(read(p[i].fd, buf, sizeof(buf)));
        if (n <= 0 || safe_write(p[1 - i].fd, buf, (size_t)n) < 0)
            break;
    }
    MHD_upgrade_action(sp->urh, MHD_UPGRADE_ACTION_CLOSE);
    apid_proxy_free(sp->px);
    free(sp);
    return NULL;
}

static void
on_upgrade(void *cls, struct MHD_Connection *c, void *req_cls, const char *extra_in,
           size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
    struct apid_proxy *px = cls;
    struct splice *sp = xmalloc0(sizeof(*sp));
    sp->px = px;
    sp->urh = urh;
    sp->client = sock;
    /* Bytes that arrived with the heads belong to the other side. */
    if (extra_in_size)
        safe_write(px->fd, extra_in, extra_in_size);
    if (px->ib_end > px->ib_start)
        safe_write(sock, px->ib + px->ib_start, px->ib_end - px->ib_start);
    px->ib_start = px->ib_end = 0;
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &a, splice_thread, sp) != 0) {
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        apid_proxy_free(px);
        free(sp);
    }
    pthread_attr_destroy(&a);
}

/* A line of the upstream's response head; -1 at EOF, or once the head (interim 1xx answers
 * included) passes HEAD_MAX. ib_line bounds one line only: a sandbox that sent header lines,
 * or "100 Continue" heads, without end had apid keep every header in memory (or read for
 * ever) until IO_TIMEOUT_S. */
static ssize_t
head_line(struct apid_proxy *px, char **line, size_t *head_bytes)
{
    ssize_t n = ib_line(px, line);
    if (n < 0)
        return -1;
    *head_bytes += (size_t)n + 2;
    return *head_bytes > HEAD_MAX ? -1 : n;
}

/* "HTTP/1.x NNN[ reason]" -> NNN (100..999, what MHD can send on), or -1. sscanf("%d") took
 * "+200", " 200", "0" and "2000000"; the small ones were skipped as interim answers, the
 * large ones made MHD refuse the response and drop the client's connection. */
static int
status_code(const char *line)
{
    if (strncmp(line, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)line[7]) || line[8] != ' ')
        return -1;
    const char *d = line + 9;
    if (!isdigit((unsigned char)d[0]) || !isdigit((unsigned char)d[1]) ||
        !isdigit((unsigned char)d[2]) || (d[3] != '\0' && d[3] != ' ') || d[0] == '0')
        return -1;
    return (d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0');
}

/* Reads the upstream head and builds the client's response. On success *px is owned by the
 * response; on failure the caller answers with *status / msg. */
struct MHD_Response *
apid_proxy_response(struct apid_proxy **pxp, int *status, char *msg, size_t msglen)
{
    struct apid_proxy *px = *pxp;
    if (px->failed) {
        *status = 502;
        snprintf(msg, msglen, "the sandbox closed the connection during the upload");
        return NULL;
    }
    if (px->chunked_up && safe_write(px->fd, "0\r\n\r\n", 5) < 0) {
        *status = 502;
        snprintf(msg, msglen, "the sandbox closed the connection during the upload");
        return NULL;
    }
    char *line;
    int code = 0;
    size_t head_bytes = 0;
    /* Skip interim 1xx answers (100 Continue) except 101. */
    for (;;) {
        if (head_line(px, &line, &head_bytes) < 0 || (code = status_code(line)) < 0) {
            *status = 502;
            snprintf(msg, msglen, "the sandbox sent no valid HTTP response");
            return NULL;
        }
        if (code >= 200 || code == 101)
            break;
        ssize_t n;
        while ((n = head_line(px, &line, &head_bytes)) > 0)
            ;
        if (n < 0) {
            *status = 502;
            snprintf(msg, msglen, "the sandbox sent no valid HTTP response");
            return NULL;
        }
    }
    struct MHD_Response *resp = NULL;
    json_t *hdrs = json_array();
    bool chunked = false;
    int64_t clen = -1;
    for (;;) {
        ssize_t n = head_line(px, &line, &head_bytes);
        if (n < 0) {
            json_decref(hdrs);
            *status = 502;
            snprintf(msg, msglen,
                     "the sandbox's response head was cut short or longer than "
                     "%d bytes",
                     HEAD_MAX);
            return NULL;
        }
        if (n == 0)
            break;
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        if (!strcasecmp(line, "transfer-encoding")) {
            chunked = strcasestr(v, "chunked") != NULL;
            continue;
        }
        if (!strcasecmp(line, "content-length")) {
            int64_t x;
            if (parse_int64(v, 0, INT64_MAX, &x) == 0)
                clen = x;
            continue;
        }
        bool keep_upgrade = code == 101 && !strcasecmp(line, "upgrade");
        if (!keep_upgrade && (is_hop(line) || !strcasecmp(line, "date")))
            continue;
        json_array_append_new(hdrs, json_pack("[s,s]", line, v));
    }
    if (code == 101) {
        if (!px->ws) {
            json_decref(hdrs);
            *status = 502;
            snprintf(msg, msglen, "the sandbox switched protocols unasked");
            return NULL;
        }
        resp = MHD_create_response_for_upgrade(on_upgrade, px);
    } else {
        uint64_t size = MHD_SIZE_UNKNOWN;
        if (px->head_req || code == 204 || code == 304) {
            px->bs = B_DONE;
            size = 0;
        } else if (chunked) {
            px->bs = B_CHUNK_SIZE;
        } else if (clen >= 0) {
            px->bs = B_LEN;
            px->left = (uint64_t)clen;
            size = (uint64_t)clen;
        } else {
            px->bs = B_RAW;
        }
        /* A small block size: MHD hands each read straight to the client (SSE). */
        resp = MHD_create_response_from_callback(size, 16384, body_cb, px, body_free);
    }
    if (!resp) {
        json_decref(hdrs);
        *status = 500;
        snprintf(msg, msglen, "cannot create the response");
        return NULL;
    }
    *pxp = NULL; /* owned by the response (body_free) or the upgrade handler now */
    size_t i;
    json_t *h;
    json_array_foreach (hdrs, i, h)
        MHD_add_response_header(resp, json_string_value(json_array_get(h, 0)),
                                json_string_value(json_array_get(h, 1)));
    json_decref(hdrs);
    *status = code;
    return resp;
}
