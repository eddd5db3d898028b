/* Commands (POST /command, and the processes behind sessions and terminals): their output, as
 * events to the client that started them and into a bounded log, their end, their status, and
 * timeouts and interrupts. Starting them: agent_spawn.c. */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent_srv.h"
#include "agent_ws.h"

static struct ag_cmd *
cmd_find(const char *id)
{
    for (struct ag_cmd *c = ag_srv.cmds; c; c = c->next)
        if (!strcmp(c->id, id))
            return c;
    return NULL;
}

void
ag_cmd_pause(struct ag_cmd *cmd, bool pause)
{
    cmd->paused = pause;
    for (int i = 0; i < 3; i++)
        if (cmd->fds[i] >= 0)
            ag_ep_set(cmd->fds[i], &cmd->evs[i], pause ? 0 : EPOLLIN, false);
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
    ag_send_event(lc->cmd->conn, &ev);
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
        ag_conn_drive(c);
        if (cmd->conn == c && c->out.len - c->out_off > OUT_HIGH && !cmd->paused)
            ag_cmd_pause(cmd, true);
        return;
    }
    log_append(cmd, p, n);
    if (cmd->conn && !cmd->background) {
        struct line_ctx lc = {cmd, which == 0 ? "stdout" : "stderr"};
        ag_lsplit_feed(&cmd->ls[which], p, n, on_line, &lc);
        struct ag_conn *c = cmd->conn;
        /* Write the new events now: on_line only queues them, and nothing else would arm
         * EPOLLOUT before the next ping or the command's exit, so output arrived in bursts.
         * ag_conn_drive() sends what the socket takes and arms EPOLLOUT for the rest. */
        if (c->out.len > c->out_off)
            ag_conn_drive(c);
        if (cmd->conn != c) /* the write failed and closed the connection */
            return;
        if (c->out.len - c->out_off > OUT_HIGH && !cmd->paused)
            ag_cmd_pause(cmd, true);
    }
}

static void
cmd_close_fd(struct ag_cmd *cmd, int i)
{
    if (cmd->fds[i] < 0)
        return;
    epoll_ctl(ag_srv.ep, EPOLL_CTL_DEL, cmd->fds[i], NULL);
    close(cmd->fds[i]);
    cmd->fds[i] = -1;
}

void
ag_cmd_read(struct ag_cmd *cmd, int i, bool drain)
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
cmd_finalize(struct ag_cmd *cmd)
{
    for (int i = 0; i < 4; i++)
        if (cmd->fds[i] >= 0)
            ag_cmd_read(cmd, i, true);
    cmd->finished = true;
    clock_gettime(CLOCK_REALTIME, &cmd->t_end);
    ag_srv.nrunning--;
    ag_srv.nfinished++;
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
    if (cmd->sess)
        ag_sess_cmd_done(cmd);
    ag_buf_free(&cmd->state);
    ag_buf_free(&cmd->pin);
    struct ag_conn *c = cmd->conn;
    if (c && cmd->pty) {
        ag_pty_exit(c, cmd);
    } else if (c) {
        struct line_ctx lo = {cmd, "stdout"}, le = {cmd, "stderr"};
        ag_lsplit_flush(&cmd->ls[0], on_line, &lo);
        ag_lsplit_flush(&cmd->ls[1], on_line, &le);
        int64_t now = ag_now_ms();
        if (!cmd->spawn_failed && cmd->exit_code == 0) {
            struct ag_event ev = {.type = "execution_complete",
                                  .timestamp = now,
                                  .execution_time = ag_mono_ms() - cmd->mono_start};
            ag_send_event(c, &ev);
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
            ag_send_event(c, &ev);
        }
        ag_stream_end(c);
        c->cmd = NULL;
        cmd->conn = NULL;
        ag_conn_drive(c);
    }
    ag_lsplit_free(&cmd->ls[0]);
    ag_lsplit_free(&cmd->ls[1]);
}

void
ag_cmd_check(struct ag_cmd *cmd)
{
    if (cmd->finished || cmd->running)
        return;
    if ((cmd->fds[0] < 0 && cmd->fds[1] < 0 && cmd->fds[2] < 0 && cmd->fds[3] < 0) ||
        ag_mono_ms() >= cmd->exit_seen + EXIT_GRACE_MS)
        cmd_finalize(cmd);
}

/* Evicts the oldest finished commands beyond AG_MAX_FINISHED (the list is newest-first). */
void
ag_cmd_gc(void)
{
    if (ag_srv.nfinished <= AG_MAX_FINISHED)
        return;
    int keep = 0;
    for (struct ag_cmd **pp = &ag_srv.cmds; *pp;) {
        struct ag_cmd *c = *pp;
        if (c->finished && c->conn == NULL && ++keep > AG_MAX_FINISHED) {
            *pp = c->next;
            free(c->content);
            ag_buf_free(&c->log);
            free(c);
            ag_srv.nfinished--;
            continue;
        }
        pp = &c->next;
    }
    malloc_trim(0);
}

void
ag_cmd_kill(struct ag_cmd *cmd, int sig)
{
    if (cmd->running && cmd->pid > 0)
        kill(-cmd->pid, sig);
}

/* Streams a command's events on c (foreground) or just init/complete (background). */
void
ag_cmd_attach(struct ag_conn *c, struct ag_cmd *cmd)
{
    ag_stream_begin(c, "text/event-stream");
    struct ag_event init = {.type = "init",
                            .text = cmd->id,
                            .textlen = strlen(cmd->id),
                            .timestamp = ag_now_ms(),
                            .execution_time = -1};
    ag_send_event(c, &init);
    if (cmd->background) {
        struct ag_event done = {
            .type = "execution_complete", .timestamp = ag_now_ms(), .execution_time = 0};
        ag_send_event(c, &done);
        ag_stream_end(c);
        return;
    }
    c->cmd = cmd;
    cmd->conn = c;
    c->tick = ag_mono_ms() + PING_MS;
}

/* null counts as absent. */
static const json_t *
member(const json_t *j, const char *key)
{
    const json_t *v = json_object_get(j, key);
    return json_is_null(v) ? NULL : v;
}

static bool
json_u32(const json_t *j, uint32_t *out)
{
    if (!json_is_integer(j) || json_integer_value(j) < 0 || json_integer_value(j) > 0xffffffffLL)
        return false;
    *out = (uint32_t)json_integer_value(j);
    return true;
}

static bool
blank(const char *s)
{
    for (; s && *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return false;
    return true;
}

bool
ag_parse_run(struct ag_conn *c, const json_t *j, struct spawn_req *sr)
{
    const json_t *v = member(j, "command");
    if (!json_is_string(v) || blank(json_string_value(v))) {
        ag_reply_err(c, 400, "INVALID_REQUEST_BODY", "\"command\" must be a non-blank string");
        return false;
    }
    sr->command = json_string_value(v);
    if ((v = member(j, "cwd"))) {
        if (!json_is_string(v)) {
            ag_reply_err(c, 400, "INVALID_REQUEST_BODY", "\"cwd\" must be a string");
            return false;
        }
        sr->cwd = json_string_value(v);
    }
    if ((v = member(j, "timeout"))) {
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1e15) {
            ag_reply_err(c, 400, "INVALID_REQUEST_BODY",
                         "\"timeout\" must be a non-negative number of milliseconds");
            return false;
        }
        sr->timeout_ms = json_is_integer(v) ? json_integer_value(v) : (int64_t)json_real_value(v);
    }
    if ((v = member(j, "background"))) {
        if (!json_is_boolean(v)) {
            ag_reply_err(c, 400, "INVALID_REQUEST_BODY", "\"background\" must be a boolean");
            return false;
        }
        sr->background = json_is_true(v);
    }
    uint32_t u;
    if ((v = member(j, "uid"))) {
        if (!json_u32(v, &u)) {
            ag_reply_err(c, 400, "INVALID_REQUEST_BODY",
                         "\"uid\" must be an unsigned 32-bit integer");
            return false;
        }
        sr->has_uid = true;
        sr->uid = u;
    }
    if ((v = member(j, "gid"))) {
        if (!json_u32(v, &u) || !sr->has_uid) {
            ag_reply_err(c, 400, "INVALID_REQUEST_BODY",
                         "\"gid\" must be an unsigned 32-bit integer and needs \"uid\"");
            return false;
        }
        sr->has_gid = true;
        sr->gid = u;
    }
    if ((v = member(j, "envs"))) {
        const char *k;
        const json_t *e;
        if (!json_is_object(v)) {
            ag_reply_err(c, 400, "INVALID_REQUEST_BODY", "\"envs\" must be an object of strings");
            return false;
        }
        json_object_foreach ((json_t *)v, k, e)
            if (!json_is_string(e)) {
                ag_reply_err(c, 400, "INVALID_REQUEST_BODY", "\"envs\" values must be strings");
                return false;
            }
        sr->envs = v;
    }
    if (ag_srv.nrunning >= ag_srv.cfg->max_commands) {
        ag_reply_err(c, 429, "TOO_MANY_COMMANDS", "%d commands are already running",
                     ag_srv.nrunning);
        return false;
    }
    return true;
}

void
ag_h_command(struct ag_conn *c, struct ag_req *r)
{
    json_t *j = ag_req_json(c, r, false, false);
    if (j == NULL)
        return;
    struct spawn_req sr = {0};
    if (ag_parse_run(c, j, &sr)) {
        const char *why = NULL;
        struct ag_cmd *cmd = ag_cmd_spawn(&sr, &why);
        if (cmd == NULL)
            ag_reply_err(c, 500, "RUNTIME_ERROR", "cannot start command: %s", why);
        else
            ag_cmd_attach(c, cmd);
    }
    json_decref(j);
}

void
ag_h_command_delete(struct ag_conn *c, struct ag_req *r)
{
    const char *id = ag_query_get(&r->q, "id");
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
        ag_cmd_kill(cmd, SIGTERM);
        cmd->kill_at = ag_mono_ms() + TERM_GRACE_MS;
    }
    ag_reply_empty(c);
}

void
ag_h_command_status(struct ag_conn *c, struct ag_req *r)
{
    struct ag_cmd *cmd = cmd_find(c->arg);
    if (cmd == NULL) {
        ag_reply_err(c, 404, "COMMAND_NOT_FOUND", "no command %s", c->arg);
        return;
    }
    char ts[48];
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(cmd->id));
    json_object_set_new(o, "content", ag_jtext(cmd->content));
    json_object_set_new(o, "running", json_boolean(!cmd->finished));
    json_object_set_new(o, "exit_code", cmd->finished ? json_integer(cmd->exit_code) : json_null());
    if (cmd->finished && cmd->err[0])
        json_object_set_new(o, "error", ag_jtext(cmd->err));
    ag_rfc3339(ts, &cmd->t_start);
    json_object_set_new(o, "started_at", json_string(ts));
    if (cmd->finished)
        ag_rfc3339(ts, &cmd->t_end);
    json_object_set_new(o, "finished_at", cmd->finished ? json_string(ts) : json_null());
    ag_reply_json(c, o);
}

/* Logs are line-addressed: line k (0-based, counting from the command's first output byte) ends at
 * the k-th '\n'. With ?cursor=N the body holds lines N.. up to the last complete line (plus the
 * unterminated tail once the command has finished) and EXECD-COMMANDS-TAIL-CURSOR is the next N. */
void
ag_h_command_logs(struct ag_conn *c, struct ag_req *r)
{
    struct ag_cmd *cmd = cmd_find(c->arg);
    if (cmd == NULL) {
        ag_reply_err(c, 400, "INVALID_REQUEST_BODY", "no command %s", c->arg);
        return;
    }
    const char *cs = ag_query_get(&r->q, "cursor");
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

bool
ag_cmd_reaped(pid_t pid, int st)
{
    for (struct ag_cmd *cmd = ag_srv.cmds; cmd; cmd = cmd->next) {
        if (cmd->pid == pid && cmd->running) {
            cmd->running = false;
            cmd->wstatus = st;
            cmd->exit_seen = ag_mono_ms();
            ag_cmd_check(cmd);
            return true;
        }
    }
    return false;
}

void
ag_cmd_timers(int64_t now, int64_t *next)
{
    for (struct ag_cmd *cmd = ag_srv.cmds; cmd; cmd = cmd->next) {
        if (cmd->finished)
            continue;
        if (cmd->running && cmd->deadline && now >= cmd->deadline) {
            cmd->timed_out = true;
            ag_cmd_kill(cmd, SIGKILL);
            cmd->deadline = 0;
        }
        if (cmd->running && cmd->kill_at && now >= cmd->kill_at) {
            ag_cmd_kill(cmd, SIGKILL);
            cmd->kill_at = 0;
        }
        int64_t due[] = {0, cmd->deadline, cmd->kill_at};
        if (!cmd->running) {
            ag_cmd_check(cmd);
            if (!cmd->finished)
                due[0] = cmd->exit_seen + EXIT_GRACE_MS;
        }
        for (int i = 0; i < 3; i++)
            if (due[i] > 0 && due[i] < *next)
                *next = due[i];
    }
}
