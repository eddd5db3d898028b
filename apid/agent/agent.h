/* Interfaces between the agent's HTTP server (agent_srv.h lists its files) and its request
 * handlers, and the parts of it the unit tests and fuzzers drive. */
#ifndef SBX_AGENT_H
#define SBX_AGENT_H
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent_util.h"

struct ag_conn;

struct ag_req {
    char method[8];
    char *path; /* percent-decoded, without the query */
    struct ag_query q;
    const char *content_type, *range, *token, *expect;
    const char *upgrade, *ws_key, *ws_version; /* a WebSocket handshake (GET /pty) */
    int64_t clen;                              /* -1: none */
    bool chunked;
    bool http10;
    bool keepalive;
    struct ag_buf body; /* buffered bodies (JSON endpoints) */
    char *head;         /* owns the strings above */
};

/* Request parsing (agent_http.c); pure functions, also driven by tests/fuzz/fuzz_agent_http.c.
 * ag_parse_head parses buf[0..len), the request line and headers through the blank line, into
 * *r (r->head owns the strings): 0, or an HTTP status (400, 500) with *why set for 400s. */
int ag_parse_head(struct ag_req *r, const char *buf, size_t len, const char **why);
/* Route of method m on path p (agent_route.c): its number (> 0), with the id in the path, if any,
 * in arg; or -404 / -405. */
int ag_route(const char *m, const char *p, char *arg, size_t argsz);
void ag_req_free(struct ag_req *r);

/* The request's buffered body as JSON: an object (or an array when array), NULL after queueing
 * a 400. An empty body is {} when allow_empty. Strings never hold a NUL (refused). */
json_t *ag_req_json(struct ag_conn *c, struct ag_req *r, bool array, bool allow_empty);

void ag_reply(struct ag_conn *c, int status, const char *ctype, const void *body, size_t len,
              const char *extra_hdrs);
void ag_reply_empty(struct ag_conn *c);
/* 200 with j as its compact JSON body; takes j. */
void ag_reply_json(struct ag_conn *c, json_t *j);
void ag_reply_err(struct ag_conn *c, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Serves [off, off+len) of fd (which the connection then owns) after the headers. */
void ag_reply_file(struct ag_conn *c, int status, int fd, uint64_t off, uint64_t len,
                   const char *extra_hdrs);

/* Files (agent_files.c). */
struct ag_fcfg {
    uid_t uid; /* owner of files and directories the API creates */
    gid_t gid;
    bool chown_new;
    char home[256]; /* for "~" */
};
void ag_files_configure(const struct ag_fcfg *cfg);
const struct ag_fcfg *ag_files_config(void);
/* A Permission object's mode (its API decimal digits), owner and group (names or ids) for chmod
 * and chown: -1 on a bad mode; a 0 mode and unknown names leave that part alone. */
int ag_perm_of(const json_t *o, mode_t *mode, bool *has_mode, uid_t *uid, gid_t *gid);
/* mkdir -p; new directories belong to the configured user. */
int ag_mkdir_p(const char *path, mode_t mode);
/* "~", $VAR/${VAR} expansion, then lexical cleaning; relative paths are taken from the cwd. */
char *ag_resolve_path(const char *in);
void ag_h_files_info(struct ag_conn *c, struct ag_req *r);
void ag_h_files_delete(struct ag_conn *c, struct ag_req *r);
void ag_h_files_mv(struct ag_conn *c, struct ag_req *r);
void ag_h_files_perm(struct ag_conn *c, struct ag_req *r);
void ag_h_files_replace(struct ag_conn *c, struct ag_req *r);
void ag_h_files_search(struct ag_conn *c, struct ag_req *r);
void ag_h_files_download(struct ag_conn *c, struct ag_req *r);
void ag_h_dir_list(struct ag_conn *c, struct ag_req *r);
void ag_h_dir_mkdir(struct ag_conn *c, struct ag_req *r);
void ag_h_dir_delete(struct ag_conn *c, struct ag_req *r);
/* POST /files/upload once its body has streamed through ag_upload_feed. */
void ag_h_files_upload(struct ag_conn *c, struct ag_req *r);

/* Uploads (agent_upload.c). */
struct ag_upload;
/* NULL only when out of memory; a non-multipart request fails at the first feed/finish. */
struct ag_upload *ag_upload_new(const char *content_type);
int ag_upload_feed(struct ag_upload *up, const char *p,
                   size_t n); /* <0: failed, see ag_upload_error */
int ag_upload_finish(struct ag_upload *up);
int ag_upload_error(const struct ag_upload *up, const char **code, const char **msg);
void ag_upload_free(struct ag_upload *up);

/* Metrics (agent_metrics.c). */
struct ag_cpu_sample {
    int64_t mono_ms;
    uint64_t usage_us;
    bool ok;
};
void ag_metrics_sample(struct ag_cpu_sample *s);
/* The Metrics JSON object, CPU % computed between two samples. */
json_t *ag_metrics_json(const struct ag_cpu_sample *prev, const struct ag_cpu_sample *cur);

/* Server (agent_server.c). */
struct ag_config {
    const char *listen; /* ADDR:PORT */
    const char *token;  /* NULL: no auth */
    size_t toklen;
    int max_commands;
    uint64_t max_body; /* 0: uploads unlimited, JSON bodies capped at AG_JSON_BODY_MAX */
    uid_t uid;
    gid_t gid;
    char **entry; /* entrypoint argv or NULL */
};
#define AG_JSON_BODY_MAX (16u << 20)
#define AG_LOG_CAP (1u << 20) /* per-command output kept for /command/{id}/logs */
#define AG_MAX_FINISHED 256   /* finished commands kept for status/logs */
#define AG_MAX_SESSIONS 64
#define AG_MAX_CONNS 1024
/* Runs until SIGTERM or the entrypoint exits; returns the process exit status. */
int ag_server_run(const struct ag_config *cfg);
#endif
