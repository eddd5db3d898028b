/* Bash sessions (/session routes): state, not a live shell. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_srv.h"

static struct ag_sess *
sess_find(const char *id)
{
    for (struct ag_sess *s = ag_srv.sessions; s; s = s->next)
        if (!strcmp(s->id, id))
            return s;
    return NULL;
}

void
ag_sess_cmd_done(struct ag_cmd *cmd)
{
    struct ag_sess *s = cmd->sess;
    if (cmd->state.len) {
        ag_buf_free(&s->state);
        s->state = cmd->state;
        memset(&cmd->state, 0, sizeof(cmd->state));
    }
    s->cmd = NULL;
    cmd->sess = NULL;
}

void
ag_h_session_new(struct ag_conn *c, struct ag_req *r)
{
    json_t *j = ag_req_json(c, r, false, true);
    if (j == NULL)
        return;
    json_t *cwd = json_object_get(j, "cwd");
    struct ag_sess *s = NULL;
    if (cwd && !json_is_null(cwd) && !json_is_string(cwd)) {
        ag_reply_err(c, 400, "INVALID_REQUEST_BODY", "\"cwd\" must be a string");
    } else if (ag_srv.nsessions >= AG_MAX_SESSIONS) {
        ag_reply_err(c, 429, "TOO_MANY_SESSIONS", "at most %d sessions", AG_MAX_SESSIONS);
    } else if ((s = calloc(1, sizeof(*s))) == NULL) {
        ag_reply_err(c, 500, "RUNTIME_ERROR", "out of memory");
    } else {
        ag_new_id(s->id);
        if (json_string_length(cwd))
            s->cwd = strdup(json_string_value(cwd));
        s->next = ag_srv.sessions;
        ag_srv.sessions = s;
        ag_srv.nsessions++;
        ag_reply_json(c, json_pack("{s:s}", "session_id", s->id));
    }
    json_decref(j);
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
 * variables and the cwd persist (not unexported shell variables, functions or aliases). The
 * script takes the command as $1; NULL when out of memory. */
static char *
session_script(const struct ag_sess *s, const char *cwd)
{
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
    const char *cd = cwd ? cwd : (s->state.len == 0 ? s->cwd : NULL);
    if (cd) {
        ag_buf_puts(&sc, "cd -- ");
        shell_quote(&sc, cd);
        ag_buf_puts(&sc, " || exit 1\n");
    }
    ag_buf_puts(&sc, "eval \"$1\"\n");
    if (ag_buf_cstr(&sc) == NULL)
        ag_buf_free(&sc);
    return sc.p;
}

void
ag_h_session_run(struct ag_conn *c, struct ag_req *r)
{
    struct ag_sess *s = sess_find(c->arg);
    if (s == NULL) {
        ag_reply_err(c, 404, "CONTEXT_NOT_FOUND", "no session %s", c->arg);
        return;
    }
    json_t *j = ag_req_json(c, r, false, false);
    if (j == NULL)
        return;
    struct spawn_req sr = {0};
    if (s->cmd) {
        ag_reply_err(c, 409, "RUNTIME_ERROR", "session %s is already running a command", s->id);
    } else if (ag_parse_run(c, j, &sr)) {
        char *script = session_script(s, sr.cwd);
        sr.script = script;
        sr.cwd = NULL; /* applied by the script, so a bad cwd is an ordinary command error */
        sr.sess = s;
        sr.background = false;
        const char *why = "out of memory";
        struct ag_cmd *cmd = script ? ag_cmd_spawn(&sr, &why) : NULL;
        if (cmd == NULL)
            ag_reply_err(c, 500, "RUNTIME_ERROR", "cannot start command: %s", why);
        else
            ag_cmd_attach(c, cmd);
        free(script);
    }
    json_decref(j);
}

void
ag_h_session_delete(struct ag_conn *c, struct ag_req *r)
{
    for (struct ag_sess **pp = &ag_srv.sessions; *pp; pp = &(*pp)->next) {
        struct ag_sess *s = *pp;
        if (strcmp(s->id, c->arg) != 0)
            continue;
        if (s->cmd) {
            ag_cmd_kill(s->cmd, SIGKILL);
            s->cmd->sess = NULL;
        }
        *pp = s->next;
        free(s->cwd);
        ag_buf_free(&s->state);
        free(s);
        ag_srv.nsessions--;
        ag_reply_empty(c);
        return;
    }
    ag_reply_err(c, 404, "CONTEXT_NOT_FOUND", "no session %s", c->arg);
}
