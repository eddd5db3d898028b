/* Interactive terminals: GET /pty, a WebSocket upgrade (framing: agent_ws.c).
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
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "agent_srv.h"
#include "agent_ws.h"

#define PTY_PIN_MAX (1u << 20)

/* A text frame of j's JSON (taken). */
static void
ws_json(struct ag_conn *c, json_t *j)
{
    struct ag_buf b = {0};
    if (ag_buf_json(&b, j) == 0)
        ag_ws_frame(&c->out, SBX_WS_TEXT, b.p, b.len);
    ag_buf_free(&b);
}

static void
ws_error(struct ag_conn *c, const char *error, const char *code)
{
    ws_json(c, json_pack("{s:s,s:o,s:s}", "type", "error", "error", ag_jtext(error), "code", code));
}

void
ag_pty_hangup(struct ag_cmd *cmd)
{
    if (cmd->running && !cmd->interrupted) {
        cmd->interrupted = true;
        ag_cmd_kill(cmd, SIGHUP);
        cmd->kill_at = ag_mono_ms() + TERM_GRACE_MS;
    }
}

/* Writes (p, n) and what is pending to the master; what it does not take waits in cmd->pin for
 * EPOLLOUT. Returns -1 when the pending input would exceed its bound. */
int
ag_pty_write(struct ag_cmd *cmd, const char *p, size_t n)
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
    ag_ep_set(fd, &cmd->evs[0], cmd->pin.len ? EPOLLIN | EPOLLOUT : EPOLLIN, false);
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

void
ag_pty_exit(struct ag_conn *c, struct ag_cmd *cmd)
{
    if (cmd->spawn_failed)
        ws_error(c, cmd->err, "START_FAILED");
    ws_json(c, json_pack("{s:s,s:i}", "type", "exit", "exit_code", cmd->exit_code));
    ag_ws_frame(&c->out, SBX_WS_CLOSE, "\x03\xe8", 2); /* 1000: normal closure */
    c->resp_done = true;
    c->cmd = NULL;
    cmd->conn = NULL;
    ag_conn_drive(c);
}

static int
signal_named(const char *name)
{
    static const struct {
        const char *name;
        int sig;
    } sigs[] = {{"SIGINT", SIGINT},
                {"SIGTERM", SIGTERM},
                {"SIGKILL", SIGKILL},
                {"SIGHUP", SIGHUP},
                {"SIGQUIT", SIGQUIT}};
    for (size_t i = 0; name && i < sizeof(sigs) / sizeof(sigs[0]); i++)
        if (!strcmp(name, sigs[i].name))
            return sigs[i].sig;
    return 0;
}

/* One JSON control frame from the client. */
static void
ws_control(struct ag_conn *c, struct ag_cmd *cmd, const char *p, size_t n)
{
    /* JSON_ALLOW_NUL: stdin may carry a NUL byte (^@), as a binary frame may. */
    json_t *j = json_loadb(p, n, JSON_ALLOW_NUL, NULL);
    const char *type = json_string_value(json_object_get(j, "type"));
    type = type ? type : "";
    if (!strcmp(type, "stdin") && cmd) {
        json_t *d = json_object_get(j, "data");
        if (json_is_string(d) && ag_pty_write(cmd, json_string_value(d), json_string_length(d)) < 0)
            ws_error(c, "input not read", "STDIN_WRITE_FAILED");
    } else if (!strcmp(type, "resize") && cmd) {
        json_t *w = json_object_get(j, "cols"), *h = json_object_get(j, "rows");
        if (json_is_integer(w) && json_is_integer(h))
            pty_resize(cmd, json_integer_value(w), json_integer_value(h));
    } else if (!strcmp(type, "signal") && cmd) {
        int sig = signal_named(json_string_value(json_object_get(j, "signal")));
        if (sig)
            ag_cmd_kill(cmd, sig);
    } else if (!strcmp(type, "ping")) {
        ws_json(c, json_pack("{s:s}", "type", "pong"));
    } else if (cmd) {
        ws_error(c, "unknown frame type", "INVALID_FRAME");
    }
    json_decref(j);
}

void
ag_ws_input(struct ag_conn *c)
{
    struct ag_ws_msg m;
    int rc;
    while (!c->dead && !c->resp_done && (rc = ag_ws_parse(c->in.p, c->in.len, &m)) != 0) {
        struct ag_cmd *cmd = c->cmd;
        if (rc < 0 || m.opcode == SBX_WS_CONT || (!m.fin && m.opcode < 8)) {
            /* Fragmented messages are not needed by any client of this route: refused. */
            ag_ws_frame(&c->out, SBX_WS_CLOSE, "\x03\xea", 2); /* 1002: protocol error */
            c->resp_done = true;
            if (cmd)
                ag_pty_hangup(cmd);
            break;
        }
        if (m.opcode == SBX_WS_BIN && cmd) {
            if (ag_pty_write(cmd, m.payload, m.len) < 0)
                ws_error(c, "input not read", "STDIN_WRITE_FAILED");
        } else if (m.opcode == SBX_WS_TEXT) {
            ws_control(c, cmd, m.payload, m.len);
        } else if (m.opcode == SBX_WS_PING) {
            ag_ws_frame(&c->out, SBX_WS_PONG, m.payload, m.len);
        } else if (m.opcode == SBX_WS_CLOSE) {
            ag_ws_frame(&c->out, SBX_WS_CLOSE, "\x03\xe8", 2);
            c->resp_done = true;
            if (cmd)
                ag_pty_hangup(cmd);
        }
        ag_buf_consume(&c->in, m.frame_len);
    }
}

/* The same request as POST /command's, made of the query: command, cwd, uid, timeout, env=K=V. */
static json_t *
query_request(struct ag_conn *c, const struct ag_query *q)
{
    json_t *j = json_object(), *envs = json_object();
    const char *v;
    char *end;
    if ((v = ag_query_get(q, "command")))
        json_object_set_new(j, "command", ag_jtext(v));
    if ((v = ag_query_get(q, "cwd")))
        json_object_set_new(j, "cwd", ag_jtext(v));
    if ((v = ag_query_get(q, "uid"))) {
        unsigned long u = strtoul(v, &end, 10);
        if (!*v || *end || u > 0xffffffffUL) {
            ag_reply_err(c, 400, "INVALID_REQUEST_BODY", "uid '%s' is not a number", v);
            goto fail;
        }
        json_object_set_new(j, "uid", json_integer((json_int_t)u));
    }
    if ((v = ag_query_get(q, "timeout"))) {
        unsigned long long t = strtoull(v, &end, 10);
        if (!*v || *end) {
            ag_reply_err(c, 400, "INVALID_REQUEST_BODY", "timeout '%s' is not a number", v);
            goto fail;
        }
        json_object_set_new(j, "timeout", json_real((double)t));
    }
    for (size_t i = 0; i < q->n; i++) {
        const char *kv = q->kv[i].v, *eq = strchr(kv, '=');
        if (strcmp(q->kv[i].k, "env") || !eq || eq == kv)
            continue;
        json_t *k = sbx_json_text(kv, (size_t)(eq - kv));
        if (k)
            json_object_setn_new_nocheck(envs, json_string_value(k), json_string_length(k),
                                         ag_jtext(eq + 1));
        json_decref(k);
    }
    json_object_set_new(j, "envs", envs);
    return j;
fail:
    json_decref(envs);
    json_decref(j);
    return NULL;
}

/* A new terminal of cols x rows: the master in *master, the slave (belonging to uid, as login(1)
 * would arrange) returned; -1 when none could be had. */
static int
pty_open(int64_t cols, int64_t rows, uid_t uid, int *master)
{
    char sname[64];
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC), slave = -1;
    if (m >= 0 && grantpt(m) == 0 && unlockpt(m) == 0 && ptsname_r(m, sname, sizeof(sname)) == 0)
        slave = open(sname, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0) {
        if (m >= 0)
            close(m);
        return -1;
    }
    struct winsize ws = {.ws_row = (unsigned short)(rows > 0 && rows < 10000 ? rows : 24),
                         .ws_col = (unsigned short)(cols > 0 && cols < 10000 ? cols : 80)};
    ioctl(m, TIOCSWINSZ, &ws);
    if (geteuid() == 0 && fchown(slave, uid, (gid_t)-1) < 0) {
        /* a read-only /dev/pts mount: the shell still works through the inherited fds */
    }
    *master = m;
    return slave;
}

void
ag_h_pty(struct ag_conn *c, struct ag_req *r)
{
    if (!r->upgrade || strcasecmp(r->upgrade, "websocket") || !r->ws_key ||
        strlen(r->ws_key) > 64 || (r->ws_version && strcmp(r->ws_version, "13"))) {
        ag_reply_err(c, 400, "INVALID_REQUEST", "GET /pty is a WebSocket (version 13) upgrade");
        return;
    }
    json_t *j = query_request(c, &r->q);
    struct spawn_req sr = {0};
    if (j == NULL || !ag_parse_run(c, j, &sr)) { /* (the reply is queued) */
        json_decref(j);
        return;
    }
    const char *v;
    int64_t cols = (v = ag_query_get(&r->q, "cols")) ? strtoll(v, NULL, 10) : 80;
    int64_t rows = (v = ag_query_get(&r->q, "rows")) ? strtoll(v, NULL, 10) : 24;
    const char *why = "cannot open a terminal";
    int master = -1;
    int slave = pty_open(cols, rows, sr.has_uid ? sr.uid : ag_srv.cfg->uid, &master);
    struct ag_cmd *cmd = NULL;
    if (slave >= 0) {
        sr.pty = true;
        sr.pty_master = master;
        sr.slave = slave;
        cmd = ag_cmd_spawn(&sr, &why);
        close(master);
        close(slave);
    }
    json_decref(j);
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
    ws_json(c,
            json_pack("{s:s,s:s,s:s}", "type", "connected", "session_id", cmd->id, "mode", "pty"));
}
