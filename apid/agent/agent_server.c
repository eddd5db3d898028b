/* The agent's single-threaded epoll server: HTTP/1.1 (keep-alive, chunked in both directions,
 * Expect: 100-continue), command processes and their output streams, bash sessions, metrics.
 * One thread keeps the idle footprint tiny (the agent runs in every sandbox); all sockets and pipes
 * are non-blocking, and disk I/O for files is done inline because it is bounded per event. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/sendfile.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <malloc.h>

#include "agent.h"
#include "agent_json.h"
#include "agent_stream.h"
#include "agent_ws.h"

extern char **environ;

enum { EV_LISTEN = 1, EV_SIGNAL, EV_CONN, EV_PIPE };
struct ag_ev {
    int kind;
    int which; /* pipe: 0 stdout, 1 stderr, 2 session state, 3 exec status */
    void *obj;
};

enum { S_HEAD, S_BODY, S_RESP };
enum { B_NONE, B_BUFFER, B_UPLOAD, B_DISCARD };
enum { W_NONE, W_WATCH, W_ONESHOT };

#define HEAD_MAX (16 * 1024)
#define READ_CHUNK (64 * 1024)
#define OUT_HIGH (1u << 20)
#define OUT_LOW (256u << 10)
#define PING_MS 3000
#define EXIT_GRACE_MS 50 /* after the shell exits, wait this long for its pipes to reach EOF */
#define TERM_GRACE_MS 2000
#define IDLE_MS 75000
#define SLOW_MS 30000

struct ag_cmd;
struct ag_sess;

struct ag_conn {
    struct ag_ev ev;
    int fd;
    struct ag_conn *next;
    int st;
    bool dead;
    struct ag_buf in;
    struct ag_buf out;
    size_t out_off;
    struct ag_req req;
    bool have_req;
    int route;
    char arg[128];
    int bmode;
    uint64_t blimit, bleft, btotal;
    struct ag_chunked ch;
    struct ag_upload *up;
    bool resp_done, close_after, streaming;
    int dl_fd;
    uint64_t dl_off, dl_left;
    struct ag_cmd *cmd;
    int watch;
    struct ag_cpu_sample prev;
    int64_t tick;
    int64_t deadline;
    uint32_t mask;
    bool ws; /* upgraded to a WebSocket (GET /pty): c->in holds frames, c->out gets frames */
};

struct ag_cmd {
    struct ag_cmd *next;
    char id[33];
    char *content;
    pid_t pid;
    bool running; /* not reaped yet */
    bool finished;
    int wstatus;
    int exit_code;
    char err[512];
    struct timespec t_start, t_end;
    int64_t mono_start, exit_seen;
    int fds[4];
    struct ag_ev evs[4];
    struct ag_lsplit ls[2];
    struct ag_buf log;
    uint64_t log_dropped; /* whole lines trimmed from the front of log */
    struct ag_conn *conn;
    int64_t deadline, kill_at;
    bool background, timed_out, interrupted, paused, spawn_failed;
    struct ag_sess *sess;
    struct ag_buf state;
    bool pty;          /* on a terminal: fds[0] is the master, output is raw bytes */
    struct ag_buf pin; /* input for the master that it did not take yet (bounded) */
};

struct ag_sess {
    struct ag_sess *next;
    char id[33];
    char *cwd;
    struct ag_buf state;
    struct ag_cmd *cmd;
};

static struct {
    const struct ag_config *cfg;
    int ep, lfd, sfd, devnull;
    struct ag_ev lev, sev;
    struct ag_conn *conns;
    int nconns;
    struct ag_cmd *cmds;
    int nrunning, nfinished;
    struct ag_sess *sessions;
    int nsessions;
    pid_t entry_pid;
    bool entry_given; /* an entrypoint was started (argv or POST /entrypoint): at most once */
    bool stopping;
    int exit_code;
    int64_t stop_deadline;
    struct ag_cpu_sample last;
    const char *shell;
    struct ag_buf scratch;
} S;

/* ---------- small helpers ---------- */

static void
new_id(char out[33])
{
    unsigned char r[16];
    if (getrandom(r, sizeof(r), 0) != sizeof(r)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        for (size_t i = 0; i < sizeof(r); i++)
            r[i] = (unsigned char)((ts.tv_nsec >> (i % 8)) ^ (getpid() >> (i % 4)) ^ i);
    }
    for (int i = 0; i < 16; i++)
        sprintf(out + i * 2, "%02x", r[i]);
}

static const char *
status_text(int s)
{
    switch (s) {
    case 100: return "Continue";
    case 200: return "OK";
    case 206: return "Partial Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 416: return "Range Not Satisfiable";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

static void
ep_set(int fd, struct ag_ev *ev, uint32_t events, bool add)
{
    struct epoll_event e = {.events = events, .data.ptr = ev};
    if (epoll_ctl(S.ep, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &e) < 0 && !add)
        epoll_ctl(S.ep, EPOLL_CTL_ADD, fd, &e);
}

/* ---------- responses ---------- */

static void
put_head(struct ag_conn *c, int status, const char *ctype, int64_t clen, const char *extra)
{
    if (!c->req.keepalive || S.stopping)
        c->close_after = true;
    ag_buf_printf(&c->out, "HTTP/1.1 %d %s\r\n", status, status_text(status));
    if (ctype)
        ag_buf_printf(&c->out, "Content-Type: %s\r\n", ctype);
    if (clen >= 0)
        ag_buf_printf(&c->out, "Content-Length: %lld\r\n", (long long)clen);
    else
        ag_buf_puts(&c->out, "Transfer-Encoding: chunked\r\n");
    if (c->close_after)
        ag_buf_puts(&c->out, "Connection: close\r\n");
    if (extra)
        ag_buf_puts(&c->out, extra);
    ag_buf_puts(&c->out, "\r\n");
    c->st = S_RESP;
}

void
ag_reply(struct ag_conn *c, int status, const char *ctype, const void *body, size_t len,
         const char *extra)
{
    put_head(c, status, ctype, (int64_t)len, extra);
    ag_buf_put(&c->out, body, len);
    c->resp_done = true;
}

void
ag_reply_empty(struct ag_conn *c)
{
    ag_reply(c, 200, NULL, "", 0, NULL);
}

void
ag_reply_err(struct ag_conn *c, int status, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct ag_buf b = {0};
    ag_buf_puts(&b, "{\"code\":");
    ag_json_str(&b, code, strlen(code));
    ag_buf_puts(&b, ",\"message\":");
    ag_json_str(&b, msg, strlen(msg));
    ag_buf_putc(&b, '}');
    /* A request whose body was not consumed cannot be followed by another on this connection. */
    if (c->st == S_HEAD || (c->st == S_BODY && c->bmode != B_NONE))
        c->close_after = true;
    ag_reply(c, status, "application/json", b.p, b.len, NULL);
    ag_buf_free(&b);
}

void
ag_reply_file(struct ag_conn *c, int status, int fd, uint64_t off, uint64_t len, const char *extra)
{
    put_head(c, status, "application/octet-stream", (int64_t)len, extra);
    c->dl_fd = fd;
    c->dl_off = off;
    c->dl_left = len;
    c->resp_done = true;
}

static void
stream_begin(struct ag_conn *c, const char *ctype)
{
    put_head(c, 200, ctype, -1, "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n");
    c->streaming = true;
    c->resp_done = false;
}

static void
stream_chunk(struct ag_conn *c, const char *p, size_t n)
{
    if (n == 0)
        return;
    ag_buf_printf(&c->out, "%zx\r\n", n);
    ag_buf_put(&c->out, p, n);
    ag_buf_puts(&c->out, "\r\n");
}

static void
stream_end(struct ag_conn *c)
{
    ag_buf_puts(&c->out, "0\r\n\r\n");
    c->streaming = false;
    c->resp_done = true;
}

static void
send_event(struct ag_conn *c, const struct ag_event *ev)
{
    S.scratch.len = 0;
    ag_event_encode(&S.scratch, ev);
    stream_chunk(c, S.scratch.p, S.scratch.len);
}

/* ---------- connections ---------- */

static void cmd_pause(struct ag_cmd *cmd, bool pause);
static void conn_drive(struct ag_conn *c);
static void pty_exit(struct ag_conn *c, struct ag_cmd *cmd);
static void pty_hangup(struct ag_cmd *cmd);

void
ag_req_free(struct ag_req *r)
{
    ag_query_free(&r->q);
    ag_buf_free(&r->body);
    free(r->head);
    memset(r, 0, sizeof(*r));
}

static void
conn_reset(struct ag_conn *c)
{
    ag_req_free(&c->req);
    c->have_req = false;
    c->st = S_HEAD;
    c->bmode = B_NONE;
    c->resp_done = c->streaming = false;
    ag_upload_free(c->up);
    c->up = NULL;
    if (c->dl_fd >= 0)
        close(c->dl_fd);
    c->dl_fd = -1;
    c->dl_left = 0;
    c->watch = W_NONE;
    c->out.len = 0;
    c->out_off = 0;
    /* Idle connections should not pin large buffers (idle RSS budget). */
    if (c->out.cap > 64 * 1024)
        ag_buf_free(&c->out);
    if (c->in.len == 0 && c->in.cap > 16 * 1024)
        ag_buf_free(&c->in);
    c->deadline = ag_mono_ms() + IDLE_MS;
}

static void
conn_close(struct ag_conn *c)
{
    if (c->dead)
        return;
    c->dead = true;
    if (c->cmd) {
        /* The command keeps running; its output still goes to the log. A terminal's user is
         * gone, though: its session gets the hangup a closed terminal gives. */
        if (c->cmd->pty)
            pty_hangup(c->cmd);
        if (c->cmd->paused)
            cmd_pause(c->cmd, false);
        c->cmd->conn = NULL;
        c->cmd = NULL;
    }
    epoll_ctl(S.ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    S.nconns--;
}

static void
conn_mask(struct ag_conn *c)
{
    uint32_t m = EPOLLRDHUP;
    if (c->st == S_HEAD || c->st == S_BODY || (c->ws && !c->resp_done))
        m |= EPOLLIN;
    if (c->out.len > c->out_off || (c->st == S_RESP && c->dl_left && c->out.len == c->out_off))
        m |= EPOLLOUT;
    if (m != c->mask) {
        ep_set(c->fd, &c->ev, m, false);
        c->mask = m;
    }
}

/* Returns true when everything queued has been written. */
static bool
conn_flush(struct ag_conn *c)
{
    while (c->out.len > c->out_off) {
        ssize_t n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return false;
            conn_close(c);
            return false;
        }
        c->out_off += (size_t)n;
    }
    c->out.len = c->out_off = 0;
    if (c->cmd && c->cmd->paused)
        cmd_pause(c->cmd, false);
    while (c->dl_left) {
        off_t off = (off_t)c->dl_off;
        size_t want = c->dl_left > (1u << 20) ? (1u << 20) : (size_t)c->dl_left;
        ssize_t n = sendfile(c->fd, c->dl_fd, &off, want);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return false;
            conn_close(c);
            return false;
        }
        if (n == 0) { /* file shrank under us: the promised length cannot be kept */
            conn_close(c);
            return false;
        }
        c->dl_off += (uint64_t)n;
        c->dl_left -= (uint64_t)n;
    }
    return true;
}

/* ---------- request parsing ---------- */

int
ag_parse_head(struct ag_req *r, const char *buf, size_t len, const char **why)
{
    r->head = malloc(len + 1);
    if (r->head == NULL)
        return 500;
    memcpy(r->head, buf, len);
    r->head[len] = 0;
    r->clen = -1;
    /* Control characters other than HTAB and the CRLFs that end lines are refused (RFC 9112
     * §2.2 allows that). The parsing below is C string work split on CRLF: after a NUL it saw no
     * more headers, and a bare LF hid the header behind it in the line before, so a
     * Content-Length went unread and the body was taken for the next request (which a server
     * in front, splitting on LF alone, would not have done). */
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)buf[i];
        if (ch == '\r' && i + 1 < len && buf[i + 1] == '\n')
            i++;
        else if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return *why = "control character in request head", 400;
    }
    char *line = r->head, *eol = strstr(line, "\r\n");
    if (eol == NULL)
        return 400;
    *eol = 0;
    char *sp1 = strchr(line, ' ');
    if (sp1 == NULL || sp1 - line >= (long)sizeof(r->method) || sp1 == line) {
        *why = "bad request line";
        return 400;
    }
    memcpy(r->method, line, (size_t)(sp1 - line));
    r->method[sp1 - line] = 0;
    /* A method is a token (RFC 9110 §9.1); it is echoed in error messages. */
    if (strspn(r->method, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                          "!#$%&'*+-.^_`|~") != (size_t)(sp1 - line)) {
        *why = "bad request line";
        return 400;
    }
    char *target = sp1 + 1, *sp2 = strchr(target, ' ');
    if (sp2 == NULL) {
        *why = "bad request line";
        return 400;
    }
    *sp2 = 0;
    const char *ver = sp2 + 1;
    if (strcmp(ver, "HTTP/1.1") == 0) {
        r->keepalive = true;
    } else if (strcmp(ver, "HTTP/1.0") == 0) {
        r->http10 = true;
    } else {
        *why = "unsupported HTTP version";
        return 400;
    }
    if (strncasecmp(target, "http://", 7) == 0) {
        target = strchr(target + 7, '/');
        if (target == NULL)
            target = sp2; /* empty string: becomes "/" below */
    }
    if (*target == 0) {
        target = sp2;
        strcpy(sp2, "/");
    }
    if (target[0] != '/') {
        *why = "bad request target";
        return 400;
    }
    char *qm = strchr(target, '?');
    if (qm) {
        *qm = 0;
        if (ag_query_parse(qm + 1, strlen(qm + 1), &r->q) < 0) {
            *why = "bad percent-encoding in query";
            return 400;
        }
    }
    ssize_t pl = sbx_pct_decode(target, strlen(target), target, false);
    if (pl < 0) {
        *why = "bad percent-encoding in path";
        return 400;
    }
    target[pl] = 0;
    r->path = target;
    bool have_te = false;
    for (line = eol + 2; *line; line = eol + 2) {
        eol = strstr(line, "\r\n");
        if (eol == NULL)
            break;
        *eol = 0;
        if (*line == 0)
            break;
        char *colon = strchr(line, ':');
        if (colon == NULL || colon == line || colon[-1] == ' ' || colon[-1] == '\t') {
            *why = "bad header line";
            return 400;
        }
        *colon = 0;
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        char *e = v + strlen(v);
        while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
            *--e = 0;
        if (!strcasecmp(line, "Content-Length")) {
            char *end;
            if (*v < '0' || *v > '9')
                return *why = "bad Content-Length", 400;
            errno = 0;
            unsigned long long n = strtoull(v, &end, 10);
            if (*end || errno || n > (1ULL << 62) || (r->clen >= 0 && (uint64_t)r->clen != n))
                return *why = "bad Content-Length", 400;
            r->clen = (int64_t)n;
        } else if (!strcasecmp(line, "Transfer-Encoding")) {
            if (strcasecmp(v, "chunked") != 0 || have_te)
                return *why = "unsupported Transfer-Encoding", 400;
            have_te = r->chunked = true;
        } else if (!strcasecmp(line, "Connection")) {
            if (strcasestr(v, "close"))
                r->keepalive = false;
            else if (strcasestr(v, "keep-alive"))
                r->keepalive = true;
        } else if (!strcasecmp(line, "X-EXECD-ACCESS-TOKEN")) {
            r->token = v;
        } else if (!strcasecmp(line, "Content-Type")) {
            r->content_type = v;
        } else if (!strcasecmp(line, "Range")) {
            r->range = v;
        } else if (!strcasecmp(line, "Expect")) {
            r->expect = v;
        } else if (!strcasecmp(line, "Upgrade")) {
            r->upgrade = v;
        } else if (!strcasecmp(line, "Sec-WebSocket-Key")) {
            r->ws_key = v;
        } else if (!strcasecmp(line, "Sec-WebSocket-Version")) {
            r->ws_version = v;
        }
    }
    if (r->chunked && r->clen >= 0)
        return *why = "both Content-Length and Transfer-Encoding", 400;
    return 0;
}

/* ---------- routing ---------- */

enum {
    R_PING = 1,
    R_CMD_RUN,
    R_CMD_DEL,
    R_CMD_STATUS,
    R_CMD_LOGS,
    R_SESS_NEW,
    R_SESS_RUN,
    R_SESS_DEL,
    R_F_INFO,
    R_F_DEL,
    R_F_MV,
    R_F_PERM,
    R_F_REPL,
    R_F_SEARCH,
    R_F_UP,
    R_F_DOWN,
    R_D_LIST,
    R_D_MK,
    R_D_DEL,
    R_METRICS,
    R_WATCH,
    R_CODE,
    R_ENTRY,
    R_PTY,
};

int
ag_route(const char *m, const char *p, char *arg, size_t argsz)
{
    static const struct {
        const char *method, *path;
        int r;
    } fixed[] = {
        {"GET", "/ping", R_PING},
        {"POST", "/command", R_CMD_RUN},
        {"DELETE", "/command", R_CMD_DEL},
        {"POST", "/session", R_SESS_NEW},
        {"GET", "/files/info", R_F_INFO},
        {"DELETE", "/files", R_F_DEL},
        {"POST", "/files/mv", R_F_MV},
        {"POST", "/files/permissions", R_F_PERM},
        {"POST", "/files/replace", R_F_REPL},
        {"GET", "/files/search", R_F_SEARCH},
        {"POST", "/files/upload", R_F_UP},
        {"GET", "/files/download", R_F_DOWN},
        {"GET", "/directories/list", R_D_LIST},
        {"POST", "/directories", R_D_MK},
        {"DELETE", "/directories", R_D_DEL},
        {"GET", "/metrics", R_METRICS},
        {"GET", "/metrics/watch", R_WATCH},
        {"POST", "/entrypoint", R_ENTRY},
        {"GET", "/pty", R_PTY},
    };
    bool path_known = false;
    size_t plen = strlen(p);
    while (plen > 1 && p[plen - 1] == '/')
        plen--;
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (strlen(fixed[i].path) != plen || strncmp(fixed[i].path, p, plen) != 0)
            continue;
        path_known = true;
        if (!strcmp(fixed[i].method, m) || (!strcmp(m, "HEAD") && fixed[i].r == R_PING))
            return fixed[i].r;
    }
    if (path_known)
        return -405;
    const char *rest;
    char a[128];
    if (!strncmp(p, "/command/status/", 16)) {
        rest = p + 16;
        if (*rest && !strchr(rest, '/') && strlen(rest) < argsz) {
            strcpy(arg, rest);
            return strcmp(m, "GET") ? -405 : R_CMD_STATUS;
        }
    }
    if (!strncmp(p, "/command/", 9) && sscanf(p + 9, "%127[^/]", a) == 1 &&
        !strcmp(p + 9 + strlen(a), "/logs")) {
        snprintf(arg, argsz, "%s", a);
        return strcmp(m, "GET") ? -405 : R_CMD_LOGS;
    }
    if (!strncmp(p, "/session/", 9) && sscanf(p + 9, "%127[^/]", a) == 1) {
        rest = p + 9 + strlen(a);
        snprintf(arg, argsz, "%s", a);
        if (!strcmp(rest, "/run"))
            return strcmp(m, "POST") ? -405 : R_SESS_RUN;
        if (*rest == 0)
            return strcmp(m, "DELETE") ? -405 : R_SESS_DEL;
    }
    if (!strcmp(p, "/code") || !strncmp(p, "/code/", 6))
        return R_CODE;
    return -404;
}

static int
route_body(int r)
{
    switch (r) {
    case R_CMD_RUN:
    case R_SESS_NEW:
    case R_SESS_RUN:
    case R_F_MV:
    case R_F_PERM:
    case R_F_REPL:
    case R_D_MK:
    case R_ENTRY: return B_BUFFER;
    case R_F_UP: return B_UPLOAD;
    default: return B_DISCARD;
    }
}

/* ---------- commands ---------- */

static struct ag_cmd *
cmd_find(const char *id)
{
    for (struct ag_cmd *c = S.cmds; c; c = c->next)
        if (!strcmp(c->id, id))
            return c;
    return NULL;
}

static void
cmd_pause(struct ag_cmd *cmd, bool pause)
{
    cmd->paused = pause;
    for (int i = 0; i < 3; i++)
        if (cmd->fds[i] >= 0)
            ep_set(cmd->fds[i], &cmd->evs[i], pause ? 0 : EPOLLIN, false);
}

struct line_ctx {
    struct ag_cmd *cmd;
    const char *type;
};

static int
on_line(void *u, const char *line, size_t n)
{
    struct line_ctx *lc = u;
    if (lc->cmd->conn == NULL)
        return 0;
    struct ag_event ev = {.type = lc->type,
                          .text = line,
                          .textlen = n,
                          .timestamp = ag_now_ms(),
                          .execution_time = -1};
    send_event(lc->cmd->conn, &ev);
    return 0;
}

static void
log_append(struct ag_cmd *cmd, const char *p, size_t n)
{
    ag_buf_put(&cmd->log, p, n);
    if (cmd->log.len <= AG_LOG_CAP)
        return;
    /* Trim whole lines from the front so line-based cursors stay meaningful. */
    size_t cut = cmd->log.len - AG_LOG_CAP;
    char *nl = memchr(cmd->log.p + cut, '\n', cmd->log.len - cut);
    if (nl && (size_t)(nl - cmd->log.p) < cmd->log.len - 1)
        cut = (size_t)(nl - cmd->log.p) + 1;
    for (size_t i = 0; i < cut; i++)
        if (cmd->log.p[i] == '\n')
            cmd->log_dropped++;
    ag_buf_consume(&cmd->log, cut);
}

static void
cmd_output(struct ag_cmd *cmd, int which, const char *p, size_t n)
{
    if (which == 2) {
        if (cmd->state.len + n <= AG_LOG_CAP)
            ag_buf_put(&cmd->state, p, n);
        return;
    }
    if (which == 3) { /* the child could not exec: its message replaces the exit status */
        size_t have = cmd->spawn_failed ? strlen(cmd->err) : 0;
        if (have + n >= sizeof(cmd->err))
            n = sizeof(cmd->err) - have - 1;
        memcpy(cmd->err + have, p, n);
        cmd->err[have + n] = 0;
        cmd->spawn_failed = true;
        return;
    }
    if (cmd->pty) {
        struct ag_conn *c = cmd->conn;
        if (c == NULL)
            return; /* nobody to show it to: a terminal keeps no log */
        ag_ws_frame(&c->out, SBX_WS_BIN, p, n);
        conn_drive(c);
        if (cmd->conn == c && c->out.len - c->out_off > OUT_HIGH && !cmd->paused)
            cmd_pause(cmd, true);
        return;
    }
    log_append(cmd, p, n);
    if (cmd->conn && !cmd->background) {
        struct line_ctx lc = {cmd, which == 0 ? "stdout" : "stderr"};
        ag_lsplit_feed(&cmd->ls[which], p, n, on_line, &lc);
        struct ag_conn *c = cmd->conn;
        /* Write the new events now: on_line only queues them, and nothing else would arm
         * EPOLLOUT before the next ping or the command's exit, so output arrived in bursts.
         * conn_drive() sends what the socket takes and arms EPOLLOUT for the rest. */
        if (c->out.len > c->out_off)
            conn_drive(c);
        if (cmd->conn != c) /* the write failed and closed the connection */
            return;
        if (c->out.len - c->out_off > OUT_HIGH && !cmd->paused)
            cmd_pause(cmd, true);
    }
}

static void
cmd_close_fd(struct ag_cmd *cmd, int i)
{
    if (cmd->fds[i] < 0)
        return;
    epoll_ctl(S.ep, EPOLL_CTL_DEL, cmd->fds[i], NULL);
    close(cmd->fds[i]);
    cmd->fds[i] = -1;
}

static void
cmd_read(struct ag_cmd *cmd, int i, bool drain)
{
    char buf[READ_CHUNK];
    for (;;) {
        ssize_t n = read(cmd->fds[i], buf, sizeof(buf));
        if (n > 0) {
            cmd_output(cmd, i, buf, (size_t)n);
            if (!drain)
                return;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0 || errno != EAGAIN || drain)
            cmd_close_fd(cmd, i);
        return;
    }
}

static void
sess_store_state(struct ag_sess *s, struct ag_buf *st)
{
    if (st->len == 0)
        return;
    ag_buf_free(&s->state);
    s->state = *st;
    memset(st, 0, sizeof(*st));
}

static void
cmd_finalize(struct ag_cmd *cmd)
{
    for (int i = 0; i < 4; i++)
        if (cmd->fds[i] >= 0)
            cmd_read(cmd, i, true);
    cmd->finished = true;
    clock_gettime(CLOCK_REALTIME, &cmd->t_end);
    S.nrunning--;
    S.nfinished++;
    int st = cmd->wstatus;
    if (cmd->spawn_failed) {
        cmd->exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 127;
    } else {
        if (WIFEXITED(st)) {
            cmd->exit_code = WEXITSTATUS(st);
            if (cmd->exit_code)
                snprintf(cmd->err, sizeof(cmd->err), "exit status %d", cmd->exit_code);
        } else if (WIFSIGNALED(st)) {
            /* Shell convention (128+signal) rather than Go's -1: still an integer for the SDK, and
             * it says which signal (contract §B.5). */
            cmd->exit_code = 128 + WTERMSIG(st);
            const char *sn = strsignal(WTERMSIG(st));
            snprintf(cmd->err, sizeof(cmd->err), "signal: %s", sn ? sn : "unknown");
            if (cmd->err[8] >= 'A' && cmd->err[8] <= 'Z')
                cmd->err[8] = (char)(cmd->err[8] - 'A' + 'a');
        }
        if (cmd->timed_out)
            snprintf(cmd->err, sizeof(cmd->err), "timeout: killed after %lld ms (exit status %d)",
                     (long long)(ag_mono_ms() - cmd->mono_start), cmd->exit_code);
    }
    if (cmd->sess) {
        sess_store_state(cmd->sess, &cmd->state);
        cmd->sess->cmd = NULL;
        cmd->sess = NULL;
    }
    ag_buf_free(&cmd->state);
    ag_buf_free(&cmd->pin);
    struct ag_conn *c = cmd->conn;
    if (c && cmd->pty) {
        pty_exit(c, cmd);
    } else if (c) {
        struct line_ctx lo = {cmd, "stdout"}, le = {cmd, "stderr"};
        ag_lsplit_flush(&cmd->ls[0], on_line, &lo);
        ag_lsplit_flush(&cmd->ls[1], on_line, &le);
        int64_t now = ag_now_ms();
        if (!cmd->spawn_failed && cmd->exit_code == 0) {
            struct ag_event ev = {.type = "execution_complete",
                                  .timestamp = now,
                                  .execution_time = ag_mono_ms() - cmd->mono_start};
            send_event(c, &ev);
        } else {
            char ev_val[32];
            const char *val = cmd->err;
            if (!cmd->spawn_failed) {
                snprintf(ev_val, sizeof(ev_val), "%d", cmd->exit_code);
                val = ev_val;
            }
            struct ag_event ev = {.type = "error",
                                  .timestamp = now,
                                  .execution_time = -1,
                                  .ename = "CommandExecError",
                                  .evalue = val,
                                  .traceback = cmd->err};
            send_event(c, &ev);
        }
        stream_end(c);
        c->cmd = NULL;
        cmd->conn = NULL;
        conn_drive(c);
    }
    ag_lsplit_free(&cmd->ls[0]);
    ag_lsplit_free(&cmd->ls[1]);
}

static void
cmd_check(struct ag_cmd *cmd)
{
    if (cmd->finished || cmd->running)
        return;
    if ((cmd->fds[0] < 0 && cmd->fds[1] < 0 && cmd->fds[2] < 0 && cmd->fds[3] < 0) ||
        ag_mono_ms() >= cmd->exit_seen + EXIT_GRACE_MS)
        cmd_finalize(cmd);
}

/* Evicts the oldest finished commands beyond AG_MAX_FINISHED (the list is newest-first). */
static void
cmd_gc(void)
{
    if (S.nfinished <= AG_MAX_FINISHED)
        return;
    int keep = 0;
    for (struct ag_cmd **pp = &S.cmds; *pp;) {
        struct ag_cmd *c = *pp;
        if (c->finished && c->conn == NULL && ++keep > AG_MAX_FINISHED) {
            *pp = c->next;
            free(c->content);
            ag_buf_free(&c->log);
            free(c);
            S.nfinished--;
            continue;
        }
        pp = &c->next;
    }
    malloc_trim(0);
}

struct spawn_req {
    const char *command;
    const char *cwd;
    const struct ag_json *envs;
    bool has_uid, has_gid;
    uid_t uid;
    gid_t gid;
    int64_t timeout_ms;
    bool background;
    struct ag_sess *sess;
    const char *script; /* session wrapper; command passed as $1 */
    bool pty;
    int pty_master;
    int slave; /* with pty: the terminal's slave side, the command's stdin, stdout and stderr */
};

static char **
build_env(const struct ag_json *envs, const char *home, const char *user)
{
    size_t n = 0;
    for (char **e = environ; *e; e++)
        n++;
    size_t extra = (envs ? envs->n : 0) + 4;
    char **out = calloc(n + extra + 1, sizeof(char *));
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (char **e = environ; *e; e++)
        out[o++] = strdup(*e);
    struct {
        const char *k;
        const char *v;
    } defaults[] = {{"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
                    {"HOME", home},
                    {"USER", user}};
    for (size_t d = 0; d < 3; d++) {
        if (defaults[d].v == NULL || !defaults[d].v[0])
            continue;
        size_t kl = strlen(defaults[d].k);
        size_t i;
        for (i = 0; i < o; i++)
            if (out[i] && !strncmp(out[i], defaults[d].k, kl) && out[i][kl] == '=')
                break;
        char *kv = malloc(kl + strlen(defaults[d].v) + 2);
        if (kv == NULL)
            continue;
        sprintf(kv, "%s=%s", defaults[d].k, defaults[d].v);
        if (i < o) {
            /* PATH from the agent is kept; HOME/USER describe the user the command runs as. */
            if (d == 0) {
                free(kv);
                continue;
            }
            free(out[i]);
            out[i] = kv;
        } else {
            out[o++] = kv;
        }
    }
    for (const struct ag_json *e = envs ? envs->child : NULL; e; e = e->next) {
        if (e->t != AG_JSTR || !e->key || strchr(e->key, '=') || !*e->key ||
            strlen(e->key) != e->keylen || strlen(e->s) != e->slen)
            continue;
        size_t kl = e->keylen;
        char *kv = malloc(kl + e->slen + 2);
        if (kv == NULL)
            continue;
        sprintf(kv, "%s=%s", e->key, e->s);
        size_t i;
        for (i = 0; i < o; i++)
            if (out[i] && !strncmp(out[i], e->key, kl) && out[i][kl] == '=')
                break;
        if (i < o) {
            free(out[i]);
            out[i] = kv;
        } else {
            out[o++] = kv;
        }
    }
    out[o] = NULL;
    return out;
}

static void
free_env(char **env)
{
    if (env == NULL)
        return;
    for (char **e = env; *e; e++)
        free(*e);
    free(env);
}

static void __attribute__((noreturn)) child_fail(int efd, const char *what, const char *arg)
{
    char msg[512];
    int n = snprintf(msg, sizeof(msg), "%s%s%s: %s", what, arg ? " " : "", arg ? arg : "",
                     strerror(errno));
    if (n > 0 && write(efd, msg, (size_t)n) < 0) {
        /* nothing left to report to */
    }
    _exit(127);
}

/* Runs in the forked child: never returns. */
static void __attribute__((noreturn))
child_exec(const struct spawn_req *sr, int out, int err, int state, int efd, const char *cwd,
           uid_t uid, gid_t gid, const gid_t *groups, int ngroups, bool setids, char **env,
           char **argv)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    if (sr->pty) {
        /* A session of its own with the terminal as controlling tty: job control, ^C and SIGHUP
         * on hangup work as in a login shell. The parent does not setpgid (that would make the
         * child a group leader first, and setsid would then fail). */
        if (setsid() < 0 || ioctl(out, TIOCSCTTY, 0) < 0)
            child_fail(efd, "controlling terminal", NULL);
        if (dup2(out, 0) < 0)
            child_fail(efd, "dup2", NULL);
    } else {
        setpgid(0, 0);
        if (dup2(S.devnull, 0) < 0)
            child_fail(efd, "dup2", NULL);
    }
    if (dup2(out, 1) < 0 || dup2(err, 2) < 0)
        child_fail(efd, "dup2", NULL);
    if (state >= 0 && dup2(state, 3) < 0)
        child_fail(efd, "dup2", NULL);
    if (cwd && chdir(cwd) < 0)
        child_fail(efd, "chdir", cwd);
    if (setids) {
        if (setgroups((size_t)ngroups, groups) < 0 && errno != EPERM)
            child_fail(efd, "setgroups", NULL);
        if (setgid(gid) < 0)
            child_fail(efd, "setgid", NULL);
        if (setuid(uid) < 0)
            child_fail(efd, "setuid", NULL);
    }
    execve(argv[0], argv, env);
    child_fail(efd, "exec", argv[0]);
}

/* Starts a command. Returns NULL with *why set on an internal failure (→ 500); failures inside the
 * child (chdir, setuid, exec) arrive later on the exec-status pipe and end it with spawn_failed. */
static struct ag_cmd *
cmd_spawn(const struct spawn_req *sr, const char **why)
{
    struct ag_cmd *cmd = calloc(1, sizeof(*cmd));
    if (cmd == NULL)
        return *why = "out of memory", NULL;
    new_id(cmd->id);
    cmd->content = strdup(sr->command);
    cmd->fds[0] = cmd->fds[1] = cmd->fds[2] = cmd->fds[3] = -1;
    cmd->background = sr->background;
    clock_gettime(CLOCK_REALTIME, &cmd->t_start);
    cmd->mono_start = ag_mono_ms();

    uid_t uid = sr->has_uid ? sr->uid : S.cfg->uid;
    gid_t gid = S.cfg->gid;
    char uname[64] = "", home[256] = "";
    gid_t pw_gid = (gid_t)-1;
    if (ag_user_by_uid(NULL, uid, uname, sizeof(uname), &pw_gid, home, sizeof(home)) < 0)
        uname[0] = home[0] = 0;
    if (sr->has_gid)
        gid = sr->gid;
    else if (sr->has_uid)
        gid = pw_gid != (gid_t)-1 ? pw_gid : (gid_t)uid;
    gid_t groups[64];
    int ngroups = uname[0] ? ag_user_groups(NULL, uname, groups, 64) : 0;
    bool setids = geteuid() == 0;

    char **env = build_env(sr->envs, home[0] ? home : NULL, uname[0] ? uname : NULL);
    char *cwd = sr->cwd && *sr->cwd ? ag_expand(sr->cwd, env, NULL) : NULL;
    char *argv[6];
    int ac = 0;
    argv[ac++] = (char *)S.shell;
    argv[ac++] = "-c";
    if (sr->script) {
        argv[ac++] = (char *)sr->script;
        argv[ac++] = "sbx-session";
    }
    argv[ac++] = (char *)sr->command;
    argv[ac] = NULL;

    int po[2] = {-1, -1}, pe[2] = {-1, -1}, ps[2] = {-1, -1}, pf[2] = {-1, -1};
    pid_t pid = -1;
    if (sr->pty) { /* po[0] is the master (owned by the caller until here), po[1] the slave */
        po[0] = fcntl(sr->pty_master, F_DUPFD_CLOEXEC, 3);
        po[1] = fcntl(sr->slave, F_DUPFD_CLOEXEC, 3);
        pe[1] = fcntl(sr->slave, F_DUPFD_CLOEXEC, 3);
        cmd->pty = true;
    }
    if (env == NULL || cmd->content == NULL || (sr->pty && (po[0] < 0 || po[1] < 0 || pe[1] < 0)) ||
        (!sr->pty && (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0)) ||
        (sr->sess && pipe2(ps, O_CLOEXEC) < 0) || pipe2(pf, O_CLOEXEC) < 0) {
        *why = "cannot create pipes";
        goto fail;
    }
    pid = fork();
    if (pid < 0) {
        *why = "fork failed";
        goto fail;
    }
    if (pid == 0)
        child_exec(sr, po[1], pe[1], ps[1], pf[1], cwd, uid, gid, groups, ngroups, setids, env,
                   argv);
    close(po[1]);
    close(pe[1]);
    if (ps[1] >= 0)
        close(ps[1]);
    close(pf[1]);
    /* Also set in the parent so a kill(-pid) right after spawn cannot race the child's setpgid. */
    if (!sr->pty)
        setpgid(pid, pid);
    free_env(env);
    free(cwd);
    cmd->pid = pid;
    S.nrunning++;
    cmd->next = S.cmds;
    S.cmds = cmd;
    cmd->running = true;
    /* The exec-status pipe (EOF on exec, a message on failure) is read from the event loop rather
     * than waited for here, so a burst of spawns does not serialise on the children's exec. */
    int fds[4] = {po[0], pe[0], ps[0], pf[0]};
    for (int i = 0; i < 4; i++) {
        cmd->fds[i] = fds[i];
        if (fds[i] < 0)
            continue;
        fcntl(fds[i], F_SETFL, O_NONBLOCK);
        cmd->evs[i] = (struct ag_ev){EV_PIPE, i, cmd};
        ep_set(fds[i], &cmd->evs[i], EPOLLIN, true);
    }
    if (sr->timeout_ms > 0)
        cmd->deadline = cmd->mono_start + sr->timeout_ms;
    if (sr->sess) {
        cmd->sess = sr->sess;
        sr->sess->cmd = cmd;
    }
    return cmd;
fail:
    for (int i = 0; i < 2; i++) {
        if (po[i] >= 0)
            close(po[i]);
        if (pe[i] >= 0)
            close(pe[i]);
        if (ps[i] >= 0)
            close(ps[i]);
        if (pf[i] >= 0)
            close(pf[i]);
    }
    free_env(env);
    free(cwd);
    free(cmd->content);
    free(cmd);
    return NULL;
}

static void
cmd_kill(struct ag_cmd *cmd, int sig)
{
    if (cmd->running && cmd->pid > 0)
        kill(-cmd->pid, sig);
}

/* Streams a command's events on c (foreground) or just init/complete (background). */
static void
cmd_attach(struct ag_conn *c, struct ag_cmd *cmd)
{
    stream_begin(c, "text/event-stream");
    struct ag_event init = {.type = "init",
                            .text = cmd->id,
                            .textlen = strlen(cmd->id),
                            .timestamp = ag_now_ms(),
                            .execution_time = -1};
    send_event(c, &init);
    if (cmd->background) {
        struct ag_event done = {
            .type = "execution_complete", .timestamp = ag_now_ms(), .execution_time = 0};
        send_event(c, &done);
        stream_end(c);
        return;
    }
    c->cmd = cmd;
    cmd->conn = c;
    c->tick = ag_mono_ms() + PING_MS;
}

static bool
json_u32(const struct ag_json *j, uint32_t *out)
{
    if (j == NULL || j->t == AG_JNULL)
        return false;
    if (j->t != AG_JNUM || !j->is_int || j->i < 0 || j->i > 0xffffffffLL)
        return false;
    *out = (uint32_t)j->i;
    return true;
}

static struct ag_json *
parse_body(struct ag_conn *c, bool allow_empty)
{
    const char *err = NULL;
    struct ag_req *r = &c->req;
    if (allow_empty && r->body.len == 0)
        return ag_json_parse("{}", 2, NULL);
    struct ag_json *j = ag_json_parse(r->body.p ? r->body.p : "", r->body.len, &err);
    if (j == NULL || j->t != AG_JOBJ) {
        ag_reply_err(c, 400, "INVALID_REQUEST_BODY", "error parsing request body: %s",
                     j ? "expected an object" : err);
        ag_json_free(j);
        return NULL;
    }
    return j;
}

static bool
blank(const char *s)
{
    for (; s && *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return false;
    return true;
}

/* Common validation for POST /command and /session/{sid}/run. */
static bool
parse_run(struct ag_conn *c, const struct ag_json *j, struct spawn_req *sr)
{
    const struct ag_json *cmd = ag_json_get(j, "command");
    if (cmd == NULL || cmd->t != AG_JSTR || strlen(cmd->s) != cmd->slen || blank(cmd->s)) {
        ag_reply_err(c, 400, "INVALID_REQUEST_BODY", "\"command\" must be a non-blank string");
        return false;
    }
    sr->command = cmd->s;
    const struct ag_json *v = ag_json_get(j, "cwd");
    if (v && v->t != AG_JNULL) {
        if (v->t != AG_JSTR || strlen(v->s) != v->slen) {
            ag_reply_err(c, 400, "INVALID_REQUEST_BODY", "\"cwd\" must be a string");
            return false;
        }
        sr->cwd = v->s;
    }
    v = ag_json_get(j, "timeout");
    if (v && v->t != AG_JNULL) {
        if (v->t != AG_JNUM || v->d < 0 || v->d > 1e15) {
            ag_reply_err(c, 400, "INVALID_REQUEST_BODY",
                         "\"timeout\" must be a non-negative number of milliseconds");
            return false;
        }
        sr->timeout_ms = v->is_int ? v->i : (int64_t)v->d;
    }
    v = ag_json_get(j, "background");
    if (v && v->t != AG_JNULL) {
        if (v->t != AG_JBOOL) {
            ag_reply_err(c, 400, "INVALID_REQUEST_BODY", "\"background\" must be a boolean");
            return false;
        }
        sr->background = v->b;
    }
    uint32_t u;
    const struct ag_json *ju = ag_json_get(j, "uid"), *jg = ag_json_get(j, "gid");
    if (ju && ju->t != AG_JNULL) {
        if (!json_u32(ju, &u)) {
            ag_reply_err(c, 400, "INVALID_REQUEST_BODY",
                         "\"uid\" must be an unsigned 32-bit integer");
            return false;
        }
        sr->has_uid = true;
        sr->uid = u;
    }
    if (jg && jg->t != AG_JNULL) {
        if (!json_u32(jg, &u) || !sr->has_uid) {
            ag_reply_err(c, 400, "INVALID_REQUEST_BODY",
                         "\"gid\" must be an unsigned 32-bit integer and needs \"uid\"");
            return false;
        }
        sr->has_gid = true;
        sr->gid = u;
    }
    v = ag_json_get(j, "envs");
    if (v && v->t != AG_JNULL) {
        if (v->t != AG_JOBJ) {
            ag_reply_err(c, 400, "INVALID_REQUEST_BODY", "\"envs\" must be an object of strings");
            return false;
        }
        for (const struct ag_json *e = v->child; e; e = e->next)
            if (e->t != AG_JSTR) {
                ag_reply_err(c, 400, "INVALID_REQUEST_BODY", "\"envs\" values must be strings");
                return false;
            }
        sr->envs = v;
    }
    if (S.nrunning >= S.cfg->max_commands) {
        ag_reply_err(c, 429, "TOO_MANY_COMMANDS", "%d commands are already running", S.nrunning);
        return false;
    }
    return true;
}

static void
h_command(struct ag_conn *c)
{
    struct ag_json *j = parse_body(c, false);
    if (j == NULL)
        return;
    struct spawn_req sr = {0};
    if (parse_run(c, j, &sr)) {
        const char *why = NULL;
        struct ag_cmd *cmd = cmd_spawn(&sr, &why);
        if (cmd == NULL)
            ag_reply_err(c, 500, "RUNTIME_ERROR", "cannot start command: %s", why);
        else
            cmd_attach(c, cmd);
    }
    ag_json_free(j);
}

static void
h_command_delete(struct ag_conn *c)
{
    const char *id = ag_query_get(&c->req.q, "id");
    if (id == NULL || !*id) {
        ag_reply_err(c, 400, "MISSING_QUERY", "missing query parameter: id");
        return;
    }
    struct ag_cmd *cmd = cmd_find(id);
    if (cmd == NULL) {
        ag_reply_err(c, 404, "COMMAND_NOT_FOUND", "no command %s", id);
        return;
    }
    if (cmd->running && !cmd->interrupted) {
        cmd->interrupted = true;
        cmd_kill(cmd, SIGTERM);
        cmd->kill_at = ag_mono_ms() + TERM_GRACE_MS;
    }
    ag_reply_empty(c);
}

static void
h_command_status(struct ag_conn *c)
{
    struct ag_cmd *cmd = cmd_find(c->arg);
    if (cmd == NULL) {
        ag_reply_err(c, 404, "COMMAND_NOT_FOUND", "no command %s", c->arg);
        return;
    }
    struct ag_buf b = {0};
    char ts[48];
    ag_buf_puts(&b, "{\"id\":");
    ag_json_str(&b, cmd->id, strlen(cmd->id));
    ag_buf_puts(&b, ",\"content\":");
    ag_json_str(&b, cmd->content, strlen(cmd->content));
    ag_buf_printf(&b, ",\"running\":%s", cmd->finished ? "false" : "true");
    if (cmd->finished)
        ag_buf_printf(&b, ",\"exit_code\":%d", cmd->exit_code);
    else
        ag_buf_puts(&b, ",\"exit_code\":null");
    if (cmd->finished && cmd->err[0]) {
        ag_buf_puts(&b, ",\"error\":");
        ag_json_str(&b, cmd->err, strlen(cmd->err));
    }
    ag_rfc3339(ts, &cmd->t_start);
    ag_buf_printf(&b, ",\"started_at\":\"%s\"", ts);
    if (cmd->finished) {
        ag_rfc3339(ts, &cmd->t_end);
        ag_buf_printf(&b, ",\"finished_at\":\"%s\"}", ts);
    } else {
        ag_buf_puts(&b, ",\"finished_at\":null}");
    }
    ag_reply(c, 200, "application/json", b.p, b.len, NULL);
    ag_buf_free(&b);
}

/* Logs are line-addressed: line k (0-based, counting from the command's first output byte) ends at
 * the k-th '\n'. With ?cursor=N the body holds lines N.. up to the last complete line (plus the
 * unterminated tail once the command has finished) and EXECD-COMMANDS-TAIL-CURSOR is the next N. */
static void
h_command_logs(struct ag_conn *c)
{
    struct ag_cmd *cmd = cmd_find(c->arg);
    if (cmd == NULL) {
        ag_reply_err(c, 400, "INVALID_REQUEST_BODY", "no command %s", c->arg);
        return;
    }
    const char *cs = ag_query_get(&c->req.q, "cursor");
    uint64_t cursor = 0;
    if (cs) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(cs, &end, 10);
        if (!*cs || *end || errno || *cs == '-') {
            ag_reply_err(c, 400, "INVALID_REQUEST_BODY", "cursor must be a non-negative integer");
            return;
        }
        cursor = v;
    }
    const char *p = cmd->log.p ? cmd->log.p : "", *end = p + cmd->log.len;
    uint64_t line = cmd->log_dropped;
    const char *start = p;
    while (line < cursor && start < end) {
        const char *nl = memchr(start, '\n', (size_t)(end - start));
        if (nl == NULL)
            break;
        start = nl + 1;
        line++;
    }
    if (line < cursor) /* cursor beyond what exists: nothing new */
        start = end, line = cursor;
    const char *stop = end;
    uint64_t next = line;
    for (const char *q = start; q < end;) {
        const char *nl = memchr(q, '\n', (size_t)(end - q));
        if (nl == NULL) {
            if (!cmd->finished && cs)
                stop = q; /* an incomplete line is returned once it is complete */
            else
                next++;
            break;
        }
        next++;
        q = nl + 1;
    }
    if (!cs)
        start = p;
    char hdr[80];
    snprintf(hdr, sizeof(hdr), "EXECD-COMMANDS-TAIL-CURSOR: %llu\r\n", (unsigned long long)next);
    ag_reply(c, 200, "text/plain; charset=utf-8", start, (size_t)(stop - start), hdr);
}

static struct ag_sess *
sess_find(const char *id)
{
    for (struct ag_sess *s = S.sessions; s; s = s->next)
        if (!strcmp(s->id, id))
            return s;
    return NULL;
}

static void
h_session_new(struct ag_conn *c)
{
    struct ag_json *j = parse_body(c, true);
    if (j == NULL)
        return;
    const struct ag_json *cwd = ag_json_get(j, "cwd");
    if (cwd && cwd->t != AG_JNULL && (cwd->t != AG_JSTR || strlen(cwd->s) != cwd->slen)) {
        ag_reply_err(c, 400, "INVALID_REQUEST_BODY", "\"cwd\" must be a string");
    } else if (S.nsessions >= AG_MAX_SESSIONS) {
        ag_reply_err(c, 429, "TOO_MANY_SESSIONS", "at most %d sessions", AG_MAX_SESSIONS);
    } else {
        struct ag_sess *s = calloc(1, sizeof(*s));
        if (s == NULL) {
            ag_reply_err(c, 500, "RUNTIME_ERROR", "out of memory");
        } else {
            new_id(s->id);
            if (cwd && cwd->t == AG_JSTR && *cwd->s)
                s->cwd = strdup(cwd->s);
            s->next = S.sessions;
            S.sessions = s;
            S.nsessions++;
            char body[64];
            int n = snprintf(body, sizeof(body), "{\"session_id\":\"%s\"}", s->id);
            ag_reply(c, 200, "application/json", body, (size_t)n, NULL);
        }
    }
    ag_json_free(j);
}

static void
shell_quote(struct ag_buf *b, const char *s)
{
    ag_buf_putc(b, '\'');
    for (; *s; s++) {
        if (*s == '\'')
            ag_buf_puts(b, "'\\''");
        else
            ag_buf_putc(b, *s);
    }
    ag_buf_putc(b, '\'');
}

/* Sessions are re-created per run from saved state rather than kept as a live shell: each run is a
 * fresh `sh -c` that restores the exported environment and cwd captured by an EXIT trap of the
 * previous run (written to fd 3). This keeps timeouts/interrupts identical to /command, needs no
 * output framing markers, and a run that kills its shell cannot wedge the session. Only exported
 * variables and the cwd persist (not unexported shell variables, functions or aliases). */
static void
h_session_run(struct ag_conn *c)
{
    struct ag_sess *s = sess_find(c->arg);
    if (s == NULL) {
        ag_reply_err(c, 404, "CONTEXT_NOT_FOUND", "no session %s", c->arg);
        return;
    }
    struct ag_json *j = parse_body(c, false);
    if (j == NULL)
        return;
    struct spawn_req sr = {0};
    if (s->cmd) {
        ag_reply_err(c, 409, "RUNTIME_ERROR", "session %s is already running a command", s->id);
    } else if (parse_run(c, j, &sr)) {
        struct ag_buf sc = {0};
        ag_buf_puts(&sc, "__sbx_save() { __SBX_CWD=$PWD; export __SBX_CWD; export -p >&3; }\n"
                         "trap __sbx_save EXIT\n");
        if (s->state.len) {
            ag_buf_puts(&sc, "{ :\n");
            ag_buf_put(&sc, s->state.p, s->state.len);
            ag_buf_puts(&sc, "\n} 2>/dev/null\n"
                             "[ -n \"$__SBX_CWD\" ] && cd -- \"$__SBX_CWD\" 2>/dev/null\n");
        }
        ag_buf_puts(&sc, "unset __SBX_CWD\n");
        const char *cd = sr.cwd ? sr.cwd : (s->state.len == 0 ? s->cwd : NULL);
        if (cd) {
            ag_buf_puts(&sc, "cd -- ");
            shell_quote(&sc, cd);
            ag_buf_puts(&sc, " || exit 1\n");
        }
        ag_buf_puts(&sc, "eval \"$1\"\n");
        sr.script = ag_buf_cstr(&sc);
        sr.cwd = NULL; /* applied by the script, so a bad cwd is an ordinary command error */
        sr.sess = s;
        sr.background = false;
        const char *why = NULL;
        struct ag_cmd *cmd = sr.script ? cmd_spawn(&sr, &why) : NULL;
        if (cmd == NULL)
            ag_reply_err(c, 500, "RUNTIME_ERROR", "cannot start command: %s",
                         why ? why : "out of memory");
        else
            cmd_attach(c, cmd);
        ag_buf_free(&sc);
    }
    ag_json_free(j);
}

static void
h_session_delete(struct ag_conn *c)
{
    for (struct ag_sess **pp = &S.sessions; *pp; pp = &(*pp)->next) {
        struct ag_sess *s = *pp;
        if (strcmp(s->id, c->arg) != 0)
            continue;
        if (s->cmd) {
            cmd_kill(s->cmd, SIGKILL);
            s->cmd->sess = NULL;
        }
        *pp = s->next;
        free(s->cwd);
        ag_buf_free(&s->state);
        free(s);
        S.nsessions--;
        ag_reply_empty(c);
        return;
    }
    ag_reply_err(c, 404, "CONTEXT_NOT_FOUND", "no session %s", c->arg);
}

static void
metrics_send(struct ag_conn *c)
{
    struct ag_cpu_sample cur;
    ag_metrics_sample(&cur);
    struct ag_buf b = {0};
    ag_metrics_json(&b, &c->prev, &cur);
    S.last = cur;
    c->prev = cur;
    if (c->watch == W_ONESHOT) {
        c->watch = W_NONE;
        ag_reply(c, 200, "application/json", b.p, b.len, NULL);
    } else {
        ag_buf_putc(&b, '\n');
        stream_chunk(c, b.p, b.len);
        c->tick = ag_mono_ms() + 1000;
    }
    ag_buf_free(&b);
}

static void
h_metrics(struct ag_conn *c, bool watch)
{
    struct ag_cpu_sample now;
    ag_metrics_sample(&now);
    int64_t age = now.mono_ms - S.last.mono_ms;
    c->watch = watch ? W_WATCH : W_ONESHOT;
    if (watch)
        stream_begin(c, "text/event-stream");
    else
        c->st = S_RESP; /* response comes from the timer */
    if (S.last.ok && age >= 50 && age < 60000) {
        c->prev = S.last;
        metrics_send(c);
        return;
    }
    /* CPU% needs two samples; take the second one shortly. */
    c->prev = now;
    c->tick = ag_mono_ms() + 100;
}

/* ---------- dispatch ---------- */

static void h_entrypoint(struct ag_conn *c);

/* ---------- interactive terminals: GET /pty (WebSocket) ----------
 *
 * The upgrade runs `command` (a shell command line, like POST /command) on a new pseudo-terminal,
 * as the request's uid or the agent's user. Frames follow OpenSandbox execd's /ws/session JSON
 * frames where they overlap, with raw bytes in binary frames so terminal output needs no UTF-8:
 *   client → agent: binary = keystrokes; text JSON {"type":"stdin","data":S},
 *                   {"type":"resize","cols":C,"rows":R}, {"type":"signal","signal":"SIGINT"},
 *                   {"type":"ping"}
 *   agent → client: binary = terminal output; text JSON {"type":"connected","session_id":ID,
 *                   "mode":"pty"}, {"type":"exit","exit_code":N}, {"type":"error","error":S,
 *                   "code":C}, {"type":"pong"}; then a close frame.
 * Query: command (required), cwd, uid, cols, rows, env=K=V (repeatable), timeout (ms). */

#define PTY_PIN_MAX (1u << 20)

static void ws_text(struct ag_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void
ws_text(struct ag_conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[1024];
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        ag_ws_frame(&c->out, SBX_WS_TEXT, tmp,
                    (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static void
pty_hangup(struct ag_cmd *cmd)
{
    if (cmd->running && !cmd->interrupted) {
        cmd->interrupted = true;
        cmd_kill(cmd, SIGHUP);
        cmd->kill_at = ag_mono_ms() + TERM_GRACE_MS;
    }
}

/* Writes (p, n) and what is pending to the master; what it does not take waits in cmd->pin for
 * EPOLLOUT. Returns -1 when the pending input would exceed its bound. */
static int
pty_write(struct ag_cmd *cmd, const char *p, size_t n)
{
    int fd = cmd->fds[0];
    if (fd < 0)
        return 0;
    if (cmd->pin.len + n > PTY_PIN_MAX)
        return -1;
    if (n)
        ag_buf_put(&cmd->pin, p, n);
    while (cmd->pin.len) {
        ssize_t w = write(fd, cmd->pin.p, cmd->pin.len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        ag_buf_consume(&cmd->pin, (size_t)w);
    }
    ep_set(fd, &cmd->evs[0], cmd->pin.len ? EPOLLIN | EPOLLOUT : EPOLLIN, false);
    return 0;
}

static void
pty_resize(struct ag_cmd *cmd, int64_t cols, int64_t rows)
{
    if (cmd->fds[0] < 0 || cols < 1 || rows < 1 || cols > 10000 || rows > 10000)
        return;
    struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
    ioctl(cmd->fds[0], TIOCSWINSZ, &ws); /* the kernel sends SIGWINCH to the foreground group */
}

static void
pty_exit(struct ag_conn *c, struct ag_cmd *cmd)
{
    if (cmd->spawn_failed) {
        S.scratch.len = 0;
        ag_json_str(&S.scratch, cmd->err, strlen(cmd->err));
        ag_buf_cstr(&S.scratch);
        ws_text(c, "{\"type\":\"error\",\"error\":%s,\"code\":\"START_FAILED\"}", S.scratch.p);
    }
    ws_text(c, "{\"type\":\"exit\",\"exit_code\":%d}", cmd->exit_code);
    ag_ws_frame(&c->out, SBX_WS_CLOSE, "\x03\xe8", 2); /* 1000: normal closure */
    c->resp_done = true;
    c->cmd = NULL;
    cmd->conn = NULL;
    conn_drive(c);
}

/* Handles the client's complete frames in c->in. */
static void
ws_input(struct ag_conn *c)
{
    struct ag_ws_msg m;
    int rc;
    while (!c->dead && !c->resp_done && (rc = ag_ws_parse(c->in.p, c->in.len, &m)) != 0) {
        struct ag_cmd *cmd = c->cmd;
        if (rc < 0 || (m.opcode == SBX_WS_CONT) || (!m.fin && m.opcode < 8)) {
            /* Fragmented messages are not needed by any client of this route: refused. */
            ag_ws_frame(&c->out, SBX_WS_CLOSE, "\x03\xea", 2); /* 1002: protocol error */
            c->resp_done = true;
            if (cmd)
                pty_hangup(cmd);
            break;
        }
        if (m.opcode == SBX_WS_BIN && cmd) {
            if (pty_write(cmd, m.payload, m.len) < 0)
                ws_text(c, "{\"type\":\"error\",\"error\":\"input not "
                           "read\",\"code\":\"STDIN_WRITE_FAILED\"}");
        } else if (m.opcode == SBX_WS_TEXT) {
            struct ag_json *j = ag_json_parse(m.payload, m.len, NULL);
            const struct ag_json *t = ag_json_get(j, "type");
            const char *type = t && t->t == AG_JSTR ? t->s : "";
            if (!strcmp(type, "stdin") && cmd) {
                const struct ag_json *d = ag_json_get(j, "data");
                if (d && d->t == AG_JSTR && pty_write(cmd, d->s, d->slen) < 0)
                    ws_text(c, "{\"type\":\"error\",\"error\":\"input not "
                               "read\",\"code\":\"STDIN_WRITE_FAILED\"}");
            } else if (!strcmp(type, "resize") && cmd) {
                const struct ag_json *w = ag_json_get(j, "cols"), *h = ag_json_get(j, "rows");
                if (w && h && w->t == AG_JNUM && h->t == AG_JNUM && w->is_int && h->is_int)
                    pty_resize(cmd, w->i, h->i);
            } else if (!strcmp(type, "signal") && cmd) {
                const struct ag_json *sg = ag_json_get(j, "signal");
                const char *name = sg && sg->t == AG_JSTR ? sg->s : "";
                int sig = !strcmp(name, "SIGINT")    ? SIGINT
                          : !strcmp(name, "SIGTERM") ? SIGTERM
                          : !strcmp(name, "SIGKILL") ? SIGKILL
                          : !strcmp(name, "SIGHUP")  ? SIGHUP
                          : !strcmp(name, "SIGQUIT") ? SIGQUIT
                                                     : 0;
                if (sig)
                    cmd_kill(cmd, sig);
            } else if (!strcmp(type, "ping")) {
                ws_text(c, "{\"type\":\"pong\"}");
            } else if (cmd) {
                ws_text(c, "{\"type\":\"error\",\"error\":\"unknown frame "
                           "type\",\"code\":\"INVALID_FRAME\"}");
            }
            ag_json_free(j);
        } else if (m.opcode == SBX_WS_PING) {
            ag_ws_frame(&c->out, SBX_WS_PONG, m.payload, m.len);
        } else if (m.opcode == SBX_WS_CLOSE) {
            ag_ws_frame(&c->out, SBX_WS_CLOSE, "\x03\xe8", 2);
            c->resp_done = true;
            if (cmd)
                pty_hangup(cmd);
        }
        ag_buf_consume(&c->in, m.frame_len);
    }
}

static void
h_pty(struct ag_conn *c)
{
    struct ag_req *r = &c->req;
    if (!r->upgrade || strcasecmp(r->upgrade, "websocket") || !r->ws_key ||
        strlen(r->ws_key) > 64 || (r->ws_version && strcmp(r->ws_version, "13"))) {
        ag_reply_err(c, 400, "INVALID_REQUEST", "GET /pty is a WebSocket (version 13) upgrade");
        return;
    }
    /* The same checks as POST /command, on a JSON object made of the query. */
    struct ag_buf jb = {0};
    ag_buf_putc(&jb, '{');
    const char *v;
    bool first = true;
#define JKEY(k) (ag_buf_puts(&jb, first ? "\"" k "\":" : ",\"" k "\":"), first = false)
    if ((v = ag_query_get(&r->q, "command"))) {
        JKEY("command");
        ag_json_str(&jb, v, strlen(v));
    }
    if ((v = ag_query_get(&r->q, "cwd"))) {
        JKEY("cwd");
        ag_json_str(&jb, v, strlen(v));
    }
    char *end;
    if ((v = ag_query_get(&r->q, "uid"))) {
        unsigned long u = strtoul(v, &end, 10);
        if (!*v || *end || u > 0xffffffffUL) {
            ag_buf_free(&jb);
            ag_reply_err(c, 400, "INVALID_REQUEST_BODY", "uid '%s' is not a number", v);
            return;
        }
        JKEY("uid");
        ag_buf_printf(&jb, "%lu", u);
    }
    if ((v = ag_query_get(&r->q, "timeout"))) {
        unsigned long long t = strtoull(v, &end, 10);
        if (!*v || *end) {
            ag_buf_free(&jb);
            ag_reply_err(c, 400, "INVALID_REQUEST_BODY", "timeout '%s' is not a number", v);
            return;
        }
        JKEY("timeout");
        ag_buf_printf(&jb, "%llu", t);
    }
    JKEY("envs");
    ag_buf_putc(&jb, '{');
    int ne = 0;
    for (size_t i = 0; i < r->q.n; i++) {
        if (strcmp(r->q.kv[i].k, "env"))
            continue;
        const char *eq = strchr(r->q.kv[i].v, '=');
        if (!eq || eq == r->q.kv[i].v)
            continue;
        if (ne++)
            ag_buf_putc(&jb, ',');
        ag_json_str(&jb, r->q.kv[i].v, (size_t)(eq - r->q.kv[i].v));
        ag_buf_putc(&jb, ':');
        ag_json_str(&jb, eq + 1, strlen(eq + 1));
    }
    ag_buf_puts(&jb, "}}");
#undef JKEY
    struct ag_json *j = ag_json_parse(jb.p, jb.len, NULL);
    ag_buf_free(&jb);
    struct spawn_req sr = {0};
    if (j == NULL) {
        ag_reply_err(c, 500, "RUNTIME_ERROR", "out of memory");
        return;
    }
    if (!parse_run(c, j, &sr)) {
        ag_json_free(j);
        return;
    }
    int64_t cols = 80, rows = 24;
    if ((v = ag_query_get(&r->q, "cols")))
        cols = strtoll(v, NULL, 10);
    if ((v = ag_query_get(&r->q, "rows")))
        rows = strtoll(v, NULL, 10);
    const char *why = "cannot open a terminal";
    char sname[64];
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC), slave = -1;
    if (master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0 &&
        ptsname_r(master, sname, sizeof(sname)) == 0)
        slave = open(sname, O_RDWR | O_NOCTTY | O_CLOEXEC);
    struct ag_cmd *cmd = NULL;
    if (slave >= 0) {
        struct winsize ws = {.ws_row = (unsigned short)(rows > 0 && rows < 10000 ? rows : 24),
                             .ws_col = (unsigned short)(cols > 0 && cols < 10000 ? cols : 80)};
        ioctl(master, TIOCSWINSZ, &ws);
        /* The terminal belongs to the user who runs in it, as login(1) would arrange. */
        uid_t uid = sr.has_uid ? sr.uid : S.cfg->uid;
        if (geteuid() == 0 && fchown(slave, uid, (gid_t)-1) < 0) {
            /* a read-only /dev/pts mount: the shell still works through the inherited fds */
        }
        sr.pty = true;
        sr.pty_master = master;
        sr.slave = slave;
        cmd = cmd_spawn(&sr, &why);
    }
    if (master >= 0)
        close(master);
    if (slave >= 0)
        close(slave);
    ag_json_free(j);
    if (cmd == NULL) {
        ag_reply_err(c, 500, "RUNTIME_ERROR", "cannot start a terminal: %s", why);
        return;
    }
    char accept[29];
    ag_ws_accept(r->ws_key, accept);
    ag_buf_printf(
        &c->out,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: %s\r\n\r\n",
        accept);
    c->ws = true;
    c->st = S_RESP;
    c->resp_done = false;
    c->cmd = cmd;
    cmd->conn = c;
    ws_text(c, "{\"type\":\"connected\",\"session_id\":\"%s\",\"mode\":\"pty\"}", cmd->id);
}

static void
dispatch(struct ag_conn *c)
{
    c->st = S_RESP;
    struct ag_req *r = &c->req;
    switch (c->route) {
    case R_PING: ag_reply_empty(c); break;
    case R_CMD_RUN: h_command(c); break;
    case R_CMD_DEL: h_command_delete(c); break;
    case R_CMD_STATUS: h_command_status(c); break;
    case R_CMD_LOGS: h_command_logs(c); break;
    case R_SESS_NEW: h_session_new(c); break;
    case R_SESS_RUN: h_session_run(c); break;
    case R_SESS_DEL: h_session_delete(c); break;
    case R_F_INFO: ag_h_files_info(c, r); break;
    case R_F_DEL: ag_h_files_delete(c, r); break;
    case R_F_MV: ag_h_files_mv(c, r); break;
    case R_F_PERM: ag_h_files_perm(c, r); break;
    case R_F_REPL: ag_h_files_replace(c, r); break;
    case R_F_SEARCH: ag_h_files_search(c, r); break;
    case R_F_DOWN: ag_h_files_download(c, r); break;
    case R_D_LIST: ag_h_dir_list(c, r); break;
    case R_D_MK: ag_h_dir_mkdir(c, r); break;
    case R_D_DEL: ag_h_dir_delete(c, r); break;
    case R_METRICS: h_metrics(c, false); break;
    case R_WATCH: h_metrics(c, true); break;
    case R_ENTRY: h_entrypoint(c); break;
    case R_PTY: h_pty(c); break;
    case R_F_UP: {
        const char *code, *msg;
        if (ag_upload_finish(c->up) < 0) {
            int st = ag_upload_error(c->up, &code, &msg);
            ag_reply_err(c, st, code, "%s", msg);
        } else {
            ag_reply_empty(c);
        }
        break;
    }
    default: ag_reply_err(c, 500, "UNKNOWN", "unrouted request"); break;
    }
}

static void
on_head(struct ag_conn *c)
{
    struct ag_req *r = &c->req;
    bool has_body = r->chunked || r->clen > 0;
    if (S.cfg->token && (r->token == NULL ||
                         !sbx_ct_equal(r->token, strlen(r->token), S.cfg->token, S.cfg->toklen))) {
        if (has_body)
            c->close_after = true;
        ag_reply_err(c, 401, "UNAUTHORIZED", "invalid or missing header X-EXECD-ACCESS-TOKEN");
        return;
    }
    int rt = ag_route(r->method, r->path, c->arg, sizeof(c->arg));
    if (rt < 0 || rt == R_CODE) {
        if (has_body)
            c->close_after = true;
        if (rt == -405)
            ag_reply_err(c, 405, "NOT_SUPPORTED", "method %s not allowed on %s", r->method,
                         r->path);
        else if (rt == R_CODE)
            ag_reply_err(c, 501, "NOT_SUPPORTED",
                         "the code interpreter is not available in sbx-agent");
        else
            ag_reply_err(c, 404, "NOT_FOUND", "no route for %s %s", r->method, r->path);
        return;
    }
    c->route = rt;
    int bm = route_body(rt);
    uint64_t limit = S.cfg->max_body;
    if (bm == B_BUFFER && (limit == 0 || limit > AG_JSON_BODY_MAX))
        limit = AG_JSON_BODY_MAX;
    if (bm == B_DISCARD && (limit == 0 || limit > AG_JSON_BODY_MAX))
        limit = AG_JSON_BODY_MAX;
    c->blimit = limit;
    if (limit && r->clen > 0 && (uint64_t)r->clen > limit) {
        c->close_after = true;
        ag_reply_err(c, 413, "REQUEST_TOO_LARGE",
                     "request body of %lld bytes exceeds the limit of %llu", (long long)r->clen,
                     (unsigned long long)limit);
        return;
    }
    if (bm == B_UPLOAD) {
        c->up = ag_upload_new(r->content_type);
        if (c->up == NULL) {
            c->close_after = true;
            ag_reply_err(c, 500, "RUNTIME_ERROR", "out of memory");
            return;
        }
        if (ag_upload_feed(c->up, "", 0) < 0) { /* not multipart: fail before reading the body */
            const char *code, *msg;
            int st = ag_upload_error(c->up, &code, &msg);
            c->close_after = true;
            ag_reply_err(c, st, code, "%s", msg);
            return;
        }
    }
    c->bmode = has_body ? bm : B_NONE;
    c->btotal = 0;
    c->bleft = r->clen > 0 ? (uint64_t)r->clen : 0;
    memset(&c->ch, 0, sizeof(c->ch));
    if (has_body && r->expect && !strcasecmp(r->expect, "100-continue"))
        ag_buf_puts(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
    c->st = S_BODY;
}

/* Returns <0 when the request failed (a reply has been queued). */
static int
body_data(void *u, const char *p, size_t n)
{
    struct ag_conn *c = u;
    c->btotal += n;
    if (c->blimit && c->btotal > c->blimit) {
        c->close_after = true;
        ag_reply_err(c, 413, "REQUEST_TOO_LARGE", "request body exceeds the limit of %llu bytes",
                     (unsigned long long)c->blimit);
        return -1;
    }
    if (c->bmode == B_BUFFER) {
        if (ag_buf_put(&c->req.body, p, n) < 0) {
            c->close_after = true;
            ag_reply_err(c, 500, "RUNTIME_ERROR", "out of memory");
            return -1;
        }
    } else if (c->bmode == B_UPLOAD) {
        if (ag_upload_feed(c->up, p, n) < 0) {
            const char *code, *msg;
            int st = ag_upload_error(c->up, &code, &msg);
            c->close_after = true;
            ag_reply_err(c, st, code, "%s", msg);
            return -1;
        }
    }
    return 0;
}

/* Feeds buffered input to the body decoder; true when the body is complete. */
static bool
body_feed(struct ag_conn *c)
{
    if (c->bmode == B_NONE)
        return true;
    if (c->req.chunked) {
        size_t used = 0;
        int rc = ag_chunked_feed(&c->ch, c->in.p, c->in.len, &used, body_data, c);
        ag_buf_consume(&c->in, used);
        if (rc == -1) {
            c->close_after = true;
            ag_reply_err(c, 400, c->bmode == B_UPLOAD ? "INVALID_FILE" : "INVALID_REQUEST_BODY",
                         "bad chunked encoding");
        }
        if (rc < 0) {
            c->st = S_RESP;
            return false;
        }
        return rc == 1;
    }
    size_t take = c->in.len < c->bleft ? c->in.len : (size_t)c->bleft;
    int rc = take ? body_data(c, c->in.p, take) : 0;
    ag_buf_consume(&c->in, take);
    c->bleft -= take;
    if (rc < 0) {
        c->st = S_RESP;
        return false;
    }
    return c->bleft == 0;
}

static void ws_input(struct ag_conn *c);

static void
conn_drive(struct ag_conn *c)
{
    if (c->ws) {
        if (!c->resp_done)
            ws_input(c);
        if (!c->dead && conn_flush(c) && c->resp_done) {
            conn_close(c);
            return;
        }
        if (!c->dead)
            conn_mask(c);
        return;
    }
    for (int guard = 0; guard < 1000 && !c->dead; guard++) {
        if (c->st == S_RESP) {
            if (!conn_flush(c))
                break;
            if (!c->resp_done)
                break;
            if (c->close_after) {
                conn_close(c);
                return;
            }
            conn_reset(c);
        }
        if (c->st == S_HEAD) {
            if (c->in.len == 0)
                break;
            char *e = memmem(c->in.p, c->in.len, "\r\n\r\n", 4);
            if (e == NULL) {
                if (c->in.len > HEAD_MAX) {
                    c->close_after = true;
                    c->req.keepalive = false;
                    ag_reply_err(c, 431, "INVALID_REQUEST_BODY",
                                 "request head larger than %d bytes", HEAD_MAX);
                    continue;
                }
                c->deadline = ag_mono_ms() + SLOW_MS;
                break;
            }
            size_t hl = (size_t)(e - c->in.p) + 4;
            const char *why = "bad request";
            int rc = ag_parse_head(&c->req, c->in.p, hl, &why);
            ag_buf_consume(&c->in, hl);
            c->have_req = true;
            if (rc) {
                c->close_after = true;
                c->req.keepalive = false;
                ag_reply_err(c, rc, "INVALID_REQUEST_BODY", "%s", why);
                continue;
            }
            on_head(c);
            continue;
        }
        if (c->st == S_BODY) {
            c->deadline = ag_mono_ms() + SLOW_MS;
            if (!body_feed(c)) {
                if (c->st == S_BODY) {
                    /* need more input; 100-continue may be pending */
                    if (c->out.len > c->out_off)
                        conn_flush(c);
                    break;
                }
                continue;
            }
            dispatch(c);
            continue;
        }
    }
    if (!c->dead)
        conn_mask(c);
}

static void
conn_read(struct ag_conn *c)
{
    if (ag_buf_reserve(&c->in, READ_CHUNK) < 0) {
        conn_close(c);
        return;
    }
    ssize_t n = recv(c->fd, c->in.p + c->in.len, READ_CHUNK, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        conn_close(c);
        return;
    }
    if (n > 0) {
        c->in.len += (size_t)n;
        conn_drive(c);
    }
}

static void
on_accept(void)
{
    for (;;) {
        int fd = accept4(S.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (S.nconns >= AG_MAX_CONNS || S.stopping) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct ag_conn *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->dl_fd = -1;
        c->ev = (struct ag_ev){EV_CONN, 0, c};
        c->mask = EPOLLIN | EPOLLRDHUP;
        c->deadline = ag_mono_ms() + SLOW_MS;
        ep_set(fd, &c->ev, c->mask, true);
        c->next = S.conns;
        S.conns = c;
        S.nconns++;
    }
}

static void
reap(void)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        if (pid == S.entry_pid) {
            S.entry_pid = 0;
            S.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            S.stopping = true;
            S.stop_deadline = ag_mono_ms() + 1000;
            continue;
        }
        for (struct ag_cmd *cmd = S.cmds; cmd; cmd = cmd->next) {
            if (cmd->pid == pid && cmd->running) {
                cmd->running = false;
                cmd->wstatus = st;
                cmd->exit_seen = ag_mono_ms();
                cmd_check(cmd);
                break;
            }
        }
    }
}

static void
on_signal(void)
{
    struct signalfd_siginfo si;
    bool chld = false;
    while (read(S.sfd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGCHLD) {
            chld = true;
        } else if (S.entry_pid > 0) {
            kill(-S.entry_pid, (int)si.ssi_signo); /* the entrypoint decides; we exit with it */
        } else if (!S.stopping) {
            S.stopping = true;
            S.exit_code = 0;
            S.stop_deadline = ag_mono_ms() + 500;
        }
    }
    if (chld)
        reap();
}

/* Runs timers; returns ms until the next one (-1: none). */
static int
timers(void)
{
    int64_t now = ag_mono_ms(), next = now + 60000;
#define NEXT(t)                                                                                    \
    do {                                                                                           \
        if ((t) > 0 && (t) < next)                                                                 \
            next = (t);                                                                            \
    } while (0)
    for (struct ag_cmd *cmd = S.cmds; cmd; cmd = cmd->next) {
        if (cmd->finished)
            continue;
        if (cmd->running && cmd->deadline && now >= cmd->deadline) {
            cmd->timed_out = true;
            cmd_kill(cmd, SIGKILL);
            cmd->deadline = 0;
        }
        if (cmd->running && cmd->kill_at && now >= cmd->kill_at) {
            cmd_kill(cmd, SIGKILL);
            cmd->kill_at = 0;
        }
        if (!cmd->running) {
            cmd_check(cmd);
            if (!cmd->finished)
                NEXT(cmd->exit_seen + EXIT_GRACE_MS);
        }
        NEXT(cmd->deadline);
        NEXT(cmd->kill_at);
    }
    for (struct ag_conn *c = S.conns; c; c = c->next) {
        if (c->dead)
            continue;
        if (c->cmd && !c->ws && now >= c->tick) {
            struct ag_event ping = {.type = "ping",
                                    .text = "pong",
                                    .textlen = 4,
                                    .timestamp = ag_now_ms(),
                                    .execution_time = -1};
            send_event(c, &ping);
            c->tick = now + PING_MS;
            conn_drive(c);
        } else if (c->watch && now >= c->tick) {
            metrics_send(c);
            conn_drive(c);
        }
        if (c->dead)
            continue;
        if ((c->cmd && !c->ws) || c->watch)
            NEXT(c->tick);
        else if (c->ws)
            ; /* a terminal may sit idle for as long as its user likes */
        else if (c->st != S_RESP || (c->out.len == c->out_off && !c->dl_left)) {
            if (now >= c->deadline && !(c->st == S_RESP && !c->resp_done)) {
                conn_close(c);
                continue;
            }
            NEXT(c->deadline);
        }
    }
    if (S.stopping)
        NEXT(S.stop_deadline);
#undef NEXT
    int64_t d = next - now;
    return d < 0 ? 0 : d > 60000 ? 60000 : (int)d;
}

static void
gc(void)
{
    for (struct ag_conn **pp = &S.conns; *pp;) {
        struct ag_conn *c = *pp;
        if (c->dead) {
            *pp = c->next;
            conn_reset(c);
            ag_buf_free(&c->in);
            ag_buf_free(&c->out);
            free(c);
            continue;
        }
        pp = &c->next;
    }
    cmd_gc();
}

static int
listen_on(const char *spec)
{
    char host[128];
    const char *colon = strrchr(spec, ':');
    if (colon == NULL || (size_t)(colon - spec) >= sizeof(host)) {
        fprintf(stderr, "sbx-agent: bad --listen %s (want ADDR:PORT)\n", spec);
        return -1;
    }
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = 0;
    int port = atoi(colon + 1);
    struct sockaddr_storage ss = {0};
    socklen_t sl;
    int fam;
    char *h = host;
    if (h[0] == '[') {
        h++;
        h[strlen(h) - 1] = 0;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, *h ? h : "0.0.0.0", &s4->sin_addr) == 1) {
        fam = AF_INET;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        sl = sizeof(*s4);
    } else if (inet_pton(AF_INET6, h, &s6->sin6_addr) == 1) {
        fam = AF_INET6;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        sl = sizeof(*s6);
    } else {
        fprintf(stderr, "sbx-agent: bad listen address %s\n", host);
        return -1;
    }
    int fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 512) < 0) {
        fprintf(stderr, "sbx-agent: listen %s: %s\n", spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static pid_t
start_entrypoint(char **argv)
{
    const struct ag_config *cfg = S.cfg;
    char uname[64] = "", home[256] = "";
    gid_t groups[64];
    int ng = 0;
    if (ag_user_by_uid(NULL, cfg->uid, uname, sizeof(uname), NULL, home, sizeof(home)) == 0)
        ng = ag_user_groups(NULL, uname, groups, 64);
    char **env = build_env(NULL, home[0] ? home : NULL, uname[0] ? uname : NULL);
    pid_t pid = fork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        setpgid(0, 0);
        dup2(S.devnull, 0);
        if (geteuid() == 0 && ((setgroups((size_t)ng, groups) < 0 && errno != EPERM) ||
                               setgid(cfg->gid) < 0 || setuid(cfg->uid) < 0)) {
            perror("sbx-agent: entrypoint: set user");
            _exit(126);
        }
        if (env)
            environ = env;
        execvp(argv[0], argv);
        fprintf(stderr, "sbx-agent: exec %s: %s\n", argv[0], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    free_env(env);
    if (pid > 0)
        setpgid(pid, pid);
    return pid;
}

/* POST /entrypoint {"argv":[...], "env":{...}}: apid's warm pool starts sandboxes without an
 * entrypoint and hands the claimant's over here, once. From then on the agent behaves as if it had
 * been started with `-- ARGV` (it exits with the entrypoint's status). env goes into the agent's
 * own environment so later commands see it too, as they would with the sandbox's OCI env. */
static void
h_entrypoint(struct ag_conn *c)
{
    struct ag_json *j = parse_body(c, false);
    if (j == NULL)
        return;
    const struct ag_json *av = ag_json_get(j, "argv"), *env = ag_json_get(j, "env");
    bool ok = av && av->t == AG_JARR && av->n > 0 && av->n < 4096 &&
              (!env || env->t == AG_JNULL || env->t == AG_JOBJ);
    for (const struct ag_json *x = ok ? av->child : NULL; x; x = x->next)
        ok = ok && x->t == AG_JSTR && strlen(x->s) == x->slen;
    for (const struct ag_json *x = ok && env && env->t == AG_JOBJ ? env->child : NULL; x;
         x = x->next)
        ok = ok && x->t == AG_JSTR && strlen(x->s) == x->slen && x->keylen &&
             strlen(x->key) == x->keylen && !strchr(x->key, '=');
    if (!ok) {
        ag_reply_err(c, 400, "INVALID_REQUEST_BODY",
                     "expected {\"argv\": [strings...], \"env\": {name: string}}");
    } else if (S.entry_given || S.stopping) {
        ag_reply_err(c, 409, "ENTRYPOINT_SET", "this sandbox already has an entrypoint");
    } else {
        for (const struct ag_json *x = env && env->t == AG_JOBJ ? env->child : NULL; x; x = x->next)
            setenv(x->key, x->s, 1);
        char **argv = calloc(av->n + 1, sizeof(char *));
        size_t i = 0;
        for (const struct ag_json *x = av->child; argv && x; x = x->next)
            argv[i++] = x->s;
        pid_t pid = argv ? start_entrypoint(argv) : -1;
        free(argv);
        if (pid < 0) {
            ag_reply_err(c, 500, "RUNTIME_ERROR", "cannot start the entrypoint: %s",
                         strerror(errno));
        } else {
            S.entry_given = true;
            S.entry_pid = pid;
            ag_reply_empty(c);
        }
    }
    ag_json_free(j);
}

int
ag_server_run(const struct ag_config *cfg)
{
    memset(&S, 0, sizeof(S));
    S.cfg = cfg;
    S.shell = access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh";
    S.devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (S.devnull < 0) {
        perror("sbx-agent: /dev/null");
        return 1;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    S.sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    S.ep = epoll_create1(EPOLL_CLOEXEC);
    S.lfd = listen_on(cfg->listen);
    if (S.sfd < 0 || S.ep < 0 || S.lfd < 0)
        return 1;
    S.lev = (struct ag_ev){EV_LISTEN, 0, NULL};
    S.sev = (struct ag_ev){EV_SIGNAL, 0, NULL};
    ep_set(S.lfd, &S.lev, EPOLLIN, true);
    ep_set(S.sfd, &S.sev, EPOLLIN, true);
    if (cfg->entry) {
        S.entry_given = true;
        S.entry_pid = start_entrypoint(cfg->entry);
        if (S.entry_pid < 0) {
            perror("sbx-agent: fork entrypoint");
            return 1;
        }
    }
    struct epoll_event evs[64];
    for (;;) {
        int timeout = timers();
        if (S.stopping) {
            if (S.lfd >= 0) {
                epoll_ctl(S.ep, EPOLL_CTL_DEL, S.lfd, NULL);
                close(S.lfd);
                S.lfd = -1;
            }
            bool pending = false;
            for (struct ag_conn *c = S.conns; c; c = c->next)
                if (!c->dead && (c->out.len > c->out_off || c->dl_left))
                    pending = true;
            if (!pending || ag_mono_ms() >= S.stop_deadline)
                break;
        }
        int n = epoll_wait(S.ep, evs, 64, timeout);
        if (n < 0 && errno != EINTR) {
            perror("sbx-agent: epoll_wait");
            break;
        }
        for (int i = 0; i < n; i++) {
            struct ag_ev *ev = evs[i].data.ptr;
            uint32_t e = evs[i].events;
            switch (ev->kind) {
            case EV_LISTEN: on_accept(); break;
            case EV_SIGNAL: on_signal(); break;
            case EV_PIPE: {
                struct ag_cmd *cmd = ev->obj;
                if (cmd->pty && ev->which == 0 && (e & EPOLLOUT))
                    pty_write(cmd, NULL, 0);
                if (cmd->fds[ev->which] >= 0 && (e & ~EPOLLOUT)) {
                    cmd_read(cmd, ev->which, false);
                    cmd_check(cmd);
                }
                break;
            }
            case EV_CONN: {
                struct ag_conn *c = ev->obj;
                if (c->dead)
                    break;
                if (e & EPOLLIN)
                    conn_read(c);
                if (c->dead)
                    break;
                if (e & EPOLLOUT)
                    conn_drive(c);
                if (!c->dead && (e & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) && !(e & EPOLLIN))
                    conn_close(c); /* peer went away; a running command is left alone */
                break;
            }
            }
        }
        gc();
    }
    /* Commands must not outlive the agent (in host mode nobody else would reap or bound them). */
    for (struct ag_cmd *cmd = S.cmds; cmd; cmd = cmd->next)
        cmd_kill(cmd, SIGKILL);
    for (struct ag_conn *c = S.conns; c; c = c->next)
        if (!c->dead)
            conn_close(c);
    gc();
    return S.exit_code;
}
