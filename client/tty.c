/* `sbx exec -it`: an interactive terminal over the agent's GET /pty WebSocket, reached through
 * apid's proxy (which carries the upgrade). libcurl here has no WebSocket support, so curl only
 * opens the connection (CONNECT_ONLY: plain or TLS) and this file speaks RFC 6455 over
 * curl_easy_send/recv. The local terminal goes to raw mode, SIGWINCH becomes a resize frame, and
 * the terminal is restored on every way out (the end of the command, a lost connection, SIGTERM or
 * SIGHUP, an error), never left raw. Frame format: see the agent's /pty (binary = bytes, text =
 * JSON control frames). */
#include "cli.h"
#include "ws_frame.h"

#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <termios.h>

#define HEAD_MAX 16384
#define FRAME_MAX (4u << 20)

static struct termios saved;
static bool raw_on;

static void
tty_restore(void)
{
    if (raw_on) {
        tcsetattr(STDIN_FILENO, TCSADRAIN, &saved);
        raw_on = false;
    }
}

static void
tty_raw(void)
{
    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved) < 0)
        return;
    struct termios t = saved;
    cfmakeraw(&t);
    if (tcsetattr(STDIN_FILENO, TCSADRAIN, &t) == 0) {
        raw_on = true;
        atexit(tty_restore);
    }
}

static void
winsize(int *cols, int *rows)
{
    struct winsize ws = {0};
    if ((ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 || ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) &&
        ws.ws_col && ws.ws_row) {
        *cols = ws.ws_col;
        *rows = ws.ws_row;
    } else {
        *cols = 80;
        *rows = 24;
    }
}

static int
send_all(CURL *h, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        size_t sent = 0;
        CURLcode cc = curl_easy_send(h, c, n, &sent);
        if (cc == CURLE_AGAIN) {
            curl_socket_t s;
            curl_easy_getinfo(h, CURLINFO_ACTIVESOCKET, &s);
            struct pollfd pf = {.fd = s, .events = POLLOUT};
            poll(&pf, 1, 1000);
            continue;
        }
        if (cc != CURLE_OK)
            return -1;
        c += sent;
        n -= sent;
    }
    return 0;
}

/* A masked client frame (RFC 6455 §5.3). */
static int
send_frame(CURL *h, int opcode, const void *p, size_t n)
{
    uint8_t mask[4];
    if (getrandom(mask, 4, 0) != 4)
        memset(mask, 0x5a, 4);
    cleanup_free unsigned char *buf = xmalloc0(SBX_WS_HEAD_MAX + n + 1);
    size_t hl = sbx_ws_head_put(buf, opcode, n, mask);
    memcpy(buf + hl, p, n);
    sbx_ws_mask(buf + hl, n, mask);
    return send_all(h, buf, hl + n);
}

static int
send_resize(CURL *h)
{
    int cols, rows;
    winsize(&cols, &rows);
    char msg[96];
    int n = snprintf(msg, sizeof(msg), "{\"type\":\"resize\",\"cols\":%d,\"rows\":%d}", cols, rows);
    return send_frame(h, SBX_WS_TEXT, msg, (size_t)n);
}

/* host[:port] and path of an http(s) URL. */
static void
split_url(const char *url, char **hostport, char **path)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    const char *sl = strchr(p, '/');
    *hostport = sl ? strndup(p, (size_t)(sl - p)) : xstrdup(p);
    *path = xstrdup(sl ? sl : "/");
}

static void
b64(const unsigned char *in, size_t n, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        out[o++] = t[(v >> 18) & 63];
        out[o++] = t[(v >> 12) & 63];
        out[o++] = i + 1 < n ? t[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? t[v & 63] : '=';
    }
    out[o] = '\0';
}

struct session {
    CURL *h;
    struct cli_buf in;
    int code;
    bool done;
    char *error;
};

/* Consumes complete server frames from s->in; -1 on a protocol error. */
static int
on_frames(struct session *s)
{
    for (;;) {
        struct sbx_ws_head fh;
        size_t n = s->in.len;
        int rc = sbx_ws_head_parse(s->in.p, n, &fh);
        if (rc <= 0)
            return rc;
        if (fh.masked || fh.len > FRAME_MAX)
            return -1; /* servers never mask */
        int op = fh.opcode;
        size_t hl = fh.head_len, len = (size_t)fh.len;
        if (n - hl < len)
            return 0;
        const char *p = s->in.p + hl;
        if (op == SBX_WS_BIN || op == SBX_WS_CONT) {
            fwrite(p, 1, len, stdout);
            fflush(stdout);
        } else if (op == SBX_WS_TEXT) {
            json_t *j = json_loadb(p, len, 0, NULL);
            const char *t = json_string_value(json_object_get(j, "type"));
            if (t && !strcmp(t, "exit")) {
                s->code = (int)json_integer_value(json_object_get(j, "exit_code"));
                s->done = true;
            } else if (t && !strcmp(t, "error")) {
                const char *e = json_string_value(json_object_get(j, "error"));
                free(s->error);
                s->error = xstrdup(e ? e : "the agent reported an error");
            } else if (t && !strcmp(t, "stdout")) { /* upstream-style text output */
                const char *d = json_string_value(json_object_get(j, "data"));
                if (d) {
                    fputs(d, stdout);
                    fflush(stdout);
                }
            }
            json_decref(j);
        } else if (op == SBX_WS_CLOSE) {
            s->done = true;
        } else if (op == SBX_WS_PING) {
            send_frame(s->h, SBX_WS_PONG, p, len);
        }
        memmove(s->in.p, s->in.p + hl + len, n - hl - len);
        s->in.len = n - hl - len;
    }
}

static int
recv_some(struct session *s, bool *eof)
{
    char buf[65536];
    for (;;) {
        size_t got = 0;
        CURLcode cc = curl_easy_recv(s->h, buf, sizeof(buf), &got);
        if (cc == CURLE_AGAIN)
            return 0;
        if (cc != CURLE_OK)
            return -1;
        if (got == 0) {
            *eof = true;
            return 0;
        }
        cli_buf_put(&s->in, buf, got);
        if (s->in.over)
            return -1;
    }
}

int
cli_exec_tty(char **id, char **argv, const struct exec_opts *o, int *code, sbx_error_t *err)
{
    struct agent_ep ep;
    cleanup_close int sfd =
        -1; /* before any goto out (a cleanup variable must not be jumped past) */
    int rc = api_agent(id, &ep, err);
    if (rc < 0)
        return rc;
    cleanup_free char *hostport = NULL, *path = NULL;
    split_url(ep.base, &hostport, &path);
    cleanup_free char *cmd = shell_join(argv);
    int cols, rows;
    winsize(&cols, &rows);
    struct cli_buf q = {0};
    {
        cleanup_free char *c = url_escape(cmd);
        cleanup_free char *s = xasprintf("%s/pty?command=%s&cols=%d&rows=%d", path, c, cols, rows);
        cli_buf_put(&q, s, strlen(s));
    }
    /* The user's terminal type first, so that an -e TERM=... given too comes later and wins:
     * programs inside need it to draw. */
    const char *term = getenv("TERM");
    if (term && *term && strlen(term) < 64) {
        cleanup_free char *c = xasprintf("TERM=%s", term);
        cleanup_free char *ce = url_escape(c);
        cleanup_free char *s = xasprintf("&env=%s", ce);
        cli_buf_put(&q, s, strlen(s));
    }
    if (o->cwd) {
        cleanup_free char *c = url_escape(o->cwd);
        cleanup_free char *s = xasprintf("&cwd=%s", c);
        cli_buf_put(&q, s, strlen(s));
    }
    if (o->uid >= 0) {
        cleanup_free char *s = xasprintf("&uid=%lld", (long long)o->uid);
        cli_buf_put(&q, s, strlen(s));
    }
    if (o->timeout_s > 0) {
        cleanup_free char *s = xasprintf("&timeout=%lld", (long long)o->timeout_s * 1000);
        cli_buf_put(&q, s, strlen(s));
    }
    for (char **e = o->env; e && *e; e++) {
        cleanup_free char *c = url_escape(*e);
        cleanup_free char *s = xasprintf("&env=%s", c);
        cli_buf_put(&q, s, strlen(s));
    }

    unsigned char nonce[16];
    if (getrandom(nonce, sizeof(nonce), 0) != sizeof(nonce))
        memset(nonce, 0x42, sizeof(nonce));
    char key[32];
    b64(nonce, sizeof(nonce), key);
    struct cli_buf req = {0};
    cleanup_free char *head =
        xasprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nUser-Agent: sbx/%s\r\n",
                  q.p, hostport, key, SBX_VERSION);
    cli_buf_free(&q);
    cli_buf_put(&req, head, strlen(head));
    for (struct curl_slist *h = ep.hdrs; h; h = h->next) {
        cli_buf_put(&req, h->data, strlen(h->data));
        cli_buf_put(&req, "\r\n", 2);
    }
    cli_buf_put(&req, "\r\n", 2);

    struct session s = {.in.max = FRAME_MAX + 16};
    s.h = curl_easy_init();
    http_setup(s.h, ep.base, NULL);
    curl_easy_setopt(s.h, CURLOPT_CONNECT_ONLY, 1L);
    CURLcode cc = curl_easy_perform(s.h);
    rc = 0;
    if (cc != CURLE_OK) {
        sbx_make_error(err, 0, "cannot reach %s: %s", ep.base, curl_easy_strerror(cc));
        rc = -EX_CONN;
        goto out;
    }
    if (send_all(s.h, req.p, req.len) < 0) {
        sbx_make_error(err, 0, "%s: the connection closed", ep.base);
        rc = -EX_CONN;
        goto out;
    }
    curl_socket_t sock;
    curl_easy_getinfo(s.h, CURLINFO_ACTIVESOCKET, &sock);
    /* The reply head: 101, or an HTTP error with a JSON body. */
    char *eoh = NULL;
    int64_t deadline = sbx_monotonic_ms() + 30000;
    while (!(eoh = s.in.p ? memmem(s.in.p, s.in.len, "\r\n\r\n", 4) : NULL)) {
        bool eof = false;
        struct pollfd pf = {.fd = sock, .events = POLLIN};
        if (s.in.len > HEAD_MAX || sbx_monotonic_ms() > deadline || poll(&pf, 1, 1000) < 0 ||
            recv_some(&s, &eof) < 0 || eof) {
            sbx_make_error(err, 0, "%s: no WebSocket handshake reply", ep.base);
            rc = -EX_CONN;
            goto out;
        }
    }
    if (strncmp(s.in.p, "HTTP/1.1 101", 12)) {
        long st = strtol(s.in.p + 9, NULL, 10);
        /* What follows the head is the error body (bounded by the read so far plus a little). */
        for (int i = 0; i < 20; i++) {
            bool eof = false;
            struct pollfd pf = {.fd = sock, .events = POLLIN};
            if (poll(&pf, 1, 100) <= 0 || recv_some(&s, &eof) < 0 || eof)
                break;
        }
        eoh = memmem(s.in.p, s.in.len, "\r\n\r\n", 4);
        const char *body = eoh + 4;
        json_t *j = json_loadb(body, s.in.len - (size_t)(body - s.in.p), 0, NULL);
        const char *m = json_string_value(json_object_get(j, "message"));
        sbx_make_error(err, 0, "-t: the agent answered HTTP %ld%s%s", st, m ? ": " : "",
                       m ? m : "");
        json_decref(j);
        rc = st == 404 ? -EX_NOTFOUND : -EX_FAIL;
        goto out;
    }
    size_t hl = (size_t)(eoh - s.in.p) + 4;
    memmove(s.in.p, s.in.p + hl, s.in.len - hl);
    s.in.len -= hl;

    sigset_t sigs, old;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGWINCH);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGQUIT);
    sigprocmask(SIG_BLOCK, &sigs, &old);
    sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
    tty_raw();
    bool in_open = true, eof = false;
    if (on_frames(&s) < 0)
        rc = -EX_CONN;
    while (rc == 0 && !s.done && !eof) {
        struct pollfd pf[3] = {{.fd = sock, .events = POLLIN},
                               {.fd = sfd, .events = POLLIN},
                               {.fd = in_open ? STDIN_FILENO : -1, .events = POLLIN}};
        if (poll(pf, 3, -1) < 0 && errno != EINTR)
            break;
        if (pf[1].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                if (si.ssi_signo == SIGWINCH)
                    send_resize(s.h);
                else if (si.ssi_signo == SIGINT || si.ssi_signo == SIGQUIT) {
                    /* Not from the keyboard (raw mode sends ^C as a byte): pass it on. */
                    const char *f = si.ssi_signo == SIGINT
                                        ? "{\"type\":\"signal\",\"signal\":\"SIGINT\"}"
                                        : "{\"type\":\"signal\",\"signal\":\"SIGQUIT\"}";
                    send_frame(s.h, SBX_WS_TEXT, f, strlen(f));
                } else { /* SIGTERM, SIGHUP: hang up, as closing a terminal does */
                    send_frame(s.h, SBX_WS_CLOSE, "\x03\xe8", 2);
                    s.code = 128 + (int)si.ssi_signo;
                    s.done = true;
                }
            }
        }
        if (pf[2].revents & (POLLIN | POLLHUP)) {
            char buf[4096];
            ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
            if (n > 0) {
                if (send_frame(s.h, SBX_WS_BIN, buf, (size_t)n) < 0)
                    rc = -EX_CONN;
            } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
                in_open = false; /* input ended: ^D for the remote side, as a terminal gives */
                send_frame(s.h, SBX_WS_BIN, "\x04", 1);
            }
        }
        if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            if (recv_some(&s, &eof) < 0 || on_frames(&s) < 0)
                rc = -EX_CONN;
        }
    }
    tty_restore();
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (rc == 0 && !s.done) {
        sbx_make_error(err, 0, "the terminal's connection closed before the command ended");
        rc = -EX_CONN;
    }
    if (rc == 0) {
        *code = s.code;
        if (s.error)
            fprintf(stderr, "sbx: exec: %s\n", s.error);
    } else if (rc == -EX_CONN && !*err)
        sbx_make_error(err, 0, "the terminal's connection failed");
out:
    tty_restore();
    cli_buf_free(&req);
    cli_buf_free(&s.in);
    free(s.error);
    curl_easy_cleanup(s.h);
    agent_ep_free(&ep);
    return rc;
}
