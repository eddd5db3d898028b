/* sbx, the client CLI of sbx-apid: what the verbs (main.c), the REST calls (api.c), command
 * execution (exec.c), file copy (cp.c) and the interactive terminal (tty.c) share. */
#ifndef SBX_CLI_H
#define SBX_CLI_H

#include "sbx.h"
#include "utils.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* Exit codes of sbx (documented in `sbx --help`, README and docs/cli.md). exec and run exit with
 * the command's own status; 125 then means sbx failed before or around the command. */
enum {
    EX_OK = 0,
    EX_FAIL = 1,     /* apid refused or failed the request */
    EX_USAGE = 2,    /* bad flag, value or argument */
    EX_CONN = 3,     /* apid or the sandbox's agent cannot be reached */
    EX_NOTFOUND = 4, /* no such sandbox, or an ambiguous id prefix */
    EX_EXEC = 125,   /* exec/run: sbx itself failed */
};

struct cli_cfg {
    char *url; /* apid base URL, no trailing slash */
    char *key; /* API key or NULL */
    bool json;
    bool show_token;
};
extern struct cli_cfg G;

/* A growable byte buffer with a cap (cap 0 = the default bound, MAX_BODY). */
struct cli_buf {
    char *p;
    size_t len, cap, max;
    bool over;
};
void cli_buf_put(struct cli_buf *b, const void *p, size_t n);
void cli_buf_free(struct cli_buf *b);

struct http_resp {
    long status;
    struct cli_buf body;
    json_t *json;        /* body parsed, when it is JSON */
    char log_offset[32]; /* X-Sbx-Log-Offset */
};
void http_resp_free(struct http_resp *r);

/* Applies the options every sbx request shares (timeouts, no signals, user agent). */
void http_setup(CURL *h, const char *url, struct curl_slist *hdrs);
/* One request with a bounded, buffered body. Transport failures return -EX_CONN; any HTTP status
 * returns 0 (the caller decides). */
int http_request(const char *method, const char *url, struct curl_slist *hdrs, const char *body,
                 size_t blen, const char *ctype, struct http_resp *r, sbx_error_t *err);
/* A request to apid's lifecycle API (PATH below /v1, JSON body or NULL): 0 on 2xx; otherwise
 * -EX_NOTFOUND (404), -EX_FAIL (other statuses, message from the {code,message} body) or
 * -EX_CONN. */
int api_call(const char *method, const char *path, json_t *body, struct http_resp *r,
             sbx_error_t *err);
/* The full sandbox id for a unique prefix (or a full id). */
int api_resolve(const char *prefix, char **id, sbx_error_t *err);
/* The agent's base URL ("http://host:port/sandboxes/ID/proxy/44772") and the headers to send it,
 * from apid's endpoint lookup; *id is replaced by the resolved full id when it was a prefix. */
struct agent_ep {
    char *base;
    struct curl_slist *hdrs;
};
int api_agent(char **id, struct agent_ep *ep, sbx_error_t *err);
void agent_ep_free(struct agent_ep *ep);
char *url_escape(const char *s);

/* exec.c */
struct exec_opts {
    char **env; /* K=V */
    const char *cwd;
    int64_t uid;       /* -1: the agent's default user */
    int64_t timeout_s; /* 0: none */
};
/* Runs argv (joined into one shell-quoted command line) in the sandbox, streaming stdout and
 * stderr; *code gets the command's exit status. */
int cli_exec(char **id, char **argv, const struct exec_opts *o, int *code, sbx_error_t *err);
char *shell_join(char **argv);

/* cp.c: exactly one of the two paths is "ID:PATH". */
int cli_cp(const char *src, const char *dst, sbx_error_t *err);

/* tty.c: an interactive terminal over the agent's /pty WebSocket. */
int cli_exec_tty(char **id, char **argv, const struct exec_opts *o, int *code, sbx_error_t *err);

#endif
