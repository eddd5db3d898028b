/* `sbx exec`: POST /command on the sandbox's agent and the SSE stream it answers with
 * (CONTRACT.md §B.5). stdout and stderr events go to sbx's own stdout and stderr as they arrive.
 * SIGINT/SIGTERM/SIGHUP are taken through a signalfd polled beside the transfer, so the first one
 * turns into DELETE /command?id= (the agent SIGTERMs the command's process group, SIGKILL after
 * 2 s) while the stream goes on to report how the command ended; a second one gives up at once. */
#include "cli.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>

#define LINE_MAX_BYTES (1u << 20) /* an event line: 64 KiB of text, JSON-escaped, fits */
#define JSON_OUT_MAX (64u << 20)  /* what --json keeps of each stream */

/* A word for `sh -c`: single-quoted unless it is plainly safe. */
char *
shell_join(char **argv)
{
    struct cli_buf b = {0};
    for (int i = 0; argv[i]; i++) {
        const char *a = argv[i];
        if (i)
            cli_buf_put(&b, " ", 1);
        bool safe = *a != '\0';
        for (const char *p = a; *p; p++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+@%",
                        *p))
                safe = false;
        if (safe) {
            cli_buf_put(&b, a, strlen(a));
            continue;
        }
        cli_buf_put(&b, "'", 1);
        for (const char *p = a; *p; p++) {
            if (*p == '\'')
                cli_buf_put(&b, "'\\''", 4);
            else
                cli_buf_put(&b, p, 1);
        }
        cli_buf_put(&b, "'", 1);
    }
    if (!b.p)
        return xstrdup("");
    return b.p;
}

struct stream {
    struct cli_buf line;
    char cmd_id[128];
    bool done;
    int code;
    char *failure;            /* the command could not start: the agent's text */
    struct cli_buf out, errb; /* --json */
    int64_t exec_ms;
    CURL *h;
    long status;          /* of the reply, read at its first body bytes */
    struct cli_buf ebody; /* a non-2xx reply's body, for the message */
};

static void
write_all(FILE *f, const char *p, size_t n)
{
    fwrite(p, 1, n, f);
    fputc('\n', f);
    fflush(f);
}

static void
on_event(struct stream *s, const char *line, size_t n)
{
    if (n >= 5 && !strncmp(line, "data:", 5)) {
        line += 5;
        n -= 5;
        while (n && *line == ' ')
            line++, n--;
    }
    if (!n || *line != '{')
        return; /* blank separators, comments, event:/id:/retry: lines */
    json_t *ev = json_loadb(line, n, 0, NULL);
    if (!ev)
        return;
    const char *type = json_string_value(json_object_get(ev, "type"));
    json_t *tv = json_object_get(ev, "text");
    const char *text = json_string_value(tv);
    size_t tlen = json_string_length(tv);
    if (tlen == 1 && text[0] == '\n')
        tlen = 0; /* the agent sends an empty line as "\n" (SDKs drop empty texts) */
    if (!type) {
    } else if (!strcmp(type, "init") && text) {
        snprintf(s->cmd_id, sizeof(s->cmd_id), "%s", text);
    } else if (!strcmp(type, "stdout") && text) {
        if (G.json) {
            cli_buf_put(&s->out, text, tlen);
            cli_buf_put(&s->out, "\n", 1);
        } else
            write_all(stdout, text, tlen);
    } else if (!strcmp(type, "stderr") && text) {
        if (G.json) {
            cli_buf_put(&s->errb, text, tlen);
            cli_buf_put(&s->errb, "\n", 1);
        } else
            write_all(stderr, text, tlen);
    } else if (!strcmp(type, "execution_complete")) {
        s->done = true;
        s->code = 0;
        s->exec_ms = json_integer_value(json_object_get(ev, "execution_time"));
    } else if (!strcmp(type, "error")) {
        const char *ev_s =
            json_string_value(json_object_get(json_object_get(ev, "error"), "evalue"));
        char *end = NULL;
        long v = ev_s ? strtol(ev_s, &end, 10) : -1;
        s->done = true;
        if (ev_s && *ev_s && end && !*end && v >= 0 && v <= 255) {
            s->code = (int)v;
        } else {
            /* Not an exit status: the command did not start (e.g. no such cwd or user). */
            free(s->failure);
            s->failure = xstrdup(ev_s ? ev_s : "the agent reported an error");
            s->code = strstr(s->failure, "No such file") ? 127 : 126;
        }
    }
    json_decref(ev);
}

static size_t
on_data(char *p, size_t sz, size_t n, void *u)
{
    struct stream *s = u;
    size_t len = sz * n;
    if (!s->status)
        curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &s->status);
    if (s->status >= 300) {
        cli_buf_put(&s->ebody, p, len);
        return len;
    }
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\n') {
            size_t l = s->line.len;
            if (l && s->line.p[l - 1] == '\r')
                l--;
            if (!s->line.over)
                on_event(s, s->line.p ? s->line.p : "", l);
            s->line.len = 0;
            s->line.over = false;
            continue;
        }
        cli_buf_put(&s->line, p + i, 1);
    }
    return len;
}

static void
interrupt_remote(const struct agent_ep *ep, const char *cmd_id)
{
    if (!*cmd_id)
        return;
    cleanup_free char *q = url_escape(cmd_id);
    cleanup_free char *url = xasprintf("%s/command?id=%s", ep->base, q);
    struct http_resp r;
    sbx_error_t err = NULL;
    if (http_request("DELETE", url, ep->hdrs, NULL, 0, NULL, &r, &err) < 0)
        sbx_error_print("sbx: interrupt", &err);
    http_resp_free(&r);
}

int
cli_exec(char **id, char **argv, const struct exec_opts *o, int *code, sbx_error_t *err)
{
    struct agent_ep ep;
    int rc = api_agent(id, &ep, err);
    if (rc < 0)
        return rc;
    cleanup_free char *cmd = shell_join(argv);
    json_t *body = json_pack("{s:s, s:b}", "command", cmd, "background", 0);
    if (o->cwd)
        json_object_set_new(body, "cwd", json_string(o->cwd));
    if (o->uid >= 0)
        json_object_set_new(body, "uid", json_integer(o->uid));
    if (o->timeout_s > 0)
        json_object_set_new(body, "timeout", json_integer(o->timeout_s * 1000));
    if (o->env && o->env[0]) {
        json_t *envs = json_object();
        for (char **e = o->env; *e; e++) {
            cleanup_free char *k = xstrdup(*e);
            char *eq = strchr(k, '=');
            *eq = '\0';
            json_object_set_new(envs, k, json_string(eq + 1));
        }
        json_object_set_new(body, "envs", envs);
    }
    cleanup_free char *b = json_dumps(body, JSON_COMPACT);
    json_decref(body);

    struct curl_slist *hdrs = NULL;
    for (struct curl_slist *s = ep.hdrs; s; s = s->next)
        hdrs = curl_slist_append(hdrs, s->data);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Accept: text/event-stream");
    hdrs = curl_slist_append(hdrs, "Expect:");
    cleanup_free char *url = xasprintf("%s/command", ep.base);
    struct stream s = {
        .line.max = LINE_MAX_BYTES, .out.max = JSON_OUT_MAX, .errb.max = JSON_OUT_MAX};
    CURL *h = curl_easy_init();
    http_setup(h, url, hdrs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, b);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    s.h = h;
    s.ebody.max = 1u << 16;

    sigset_t sigs, old;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    sigprocmask(SIG_BLOCK, &sigs, &old);
    cleanup_close int sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);

    CURLM *m = curl_multi_init();
    curl_multi_add_handle(m, h);
    int running = 1, interrupts = 0;
    bool sent_interrupt = false;
    long status = 0;
    CURLcode result = CURLE_OK;
    while (running) {
        if (curl_multi_perform(m, &running) != CURLM_OK)
            break;
        if (!running)
            break;
        struct curl_waitfd wfd = {.fd = sfd, .events = CURL_WAIT_POLLIN};
        curl_multi_poll(m, &wfd, sfd >= 0 ? 1 : 0, 1000, NULL);
        struct signalfd_siginfo si;
        while (sfd >= 0 && read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
            if (++interrupts > 1) {
                running = 0;
                s.done = false;
                break;
            }
        }
        /* An interrupt before the init event waits for the command's id: leaving then would
         * detach the stream and leave the command running. */
        if (interrupts == 1 && !sent_interrupt && s.cmd_id[0]) {
            interrupt_remote(&ep, s.cmd_id);
            sent_interrupt = true;
        }
    }
    int left;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(m, &left)))
        if (msg->msg == CURLMSG_DONE)
            result = msg->data.result;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(m, h);
    curl_multi_cleanup(m);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    sigprocmask(SIG_SETMASK, &old, NULL);

    if (interrupts > 1) {
        rc = 0;
        *code = 130;
    } else if (status >= 300) {
        json_t *j = s.ebody.len ? json_loadb(s.ebody.p, s.ebody.len, 0, NULL) : NULL;
        const char *msgs = json_string_value(json_object_get(j, "message"));
        sbx_make_error(err, 0, "the sandbox's agent answered HTTP %ld%s%s", status,
                       msgs ? ": " : "", msgs ? msgs : "");
        json_decref(j);
        rc = status == 404 ? -EX_NOTFOUND : -EX_FAIL;
    } else if (result != CURLE_OK) {
        sbx_make_error(err, 0, "%s: %s", url, curl_easy_strerror(result));
        rc = -EX_CONN;
    } else if (!s.done) {
        sbx_make_error(err, 0, "the command's stream ended before it reported an exit status");
        rc = -EX_CONN;
    } else {
        rc = 0;
        *code = s.code;
        if (s.failure && !G.json)
            fprintf(stderr, "sbx: exec: %s\n", s.failure);
    }
    if (G.json && rc == 0) {
        json_t *j = json_pack("{s:s, s:i, s:s%, s:s%}", "id", *id, "exitCode", *code, "stdout",
                              s.out.p ? s.out.p : "", s.out.len, "stderr", s.errb.p ? s.errb.p : "",
                              s.errb.len);
        if (s.failure)
            json_object_set_new(j, "error", json_string(s.failure));
        if (s.cmd_id[0])
            json_object_set_new(j, "commandId", json_string(s.cmd_id));
        json_object_set_new(j, "durationMs", json_integer(s.exec_ms));
        json_dumpf(j, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(j);
    }
    cli_buf_free(&s.ebody);
    cli_buf_free(&s.line);
    cli_buf_free(&s.out);
    cli_buf_free(&s.errb);
    free(s.failure);
    agent_ep_free(&ep);
    return rc;
}
