/* HTTP/1.1 framing for the agent: request heads (parsed whole, once the blank line is in),
 * bodies (Content-Length or chunked, into a buffer, an upload or nowhere), responses (fixed
 * length, a file by sendfile, or chunked streams of events). */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent_srv.h"

/* ---------- request heads ---------- */

void
ag_req_free(struct ag_req *r)
{
    ag_query_free(&r->q);
    ag_buf_free(&r->body);
    free(r->head);
    memset(r, 0, sizeof(*r));
}

/* Control characters other than HTAB and the CRLFs that end lines are refused (RFC 9112 §2.2
 * allows that). The parsing below is C string work split on CRLF: after a NUL it saw no more
 * headers, and a bare LF hid the header behind it in the line before, so a Content-Length went
 * unread and the body was taken for the next request (which a server in front, splitting on LF
 * alone, would not have done). */
static bool
head_bytes_ok(const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)buf[i];
        if (ch == '\r' && i + 1 < len && buf[i + 1] == '\n')
            i++;
        else if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return false;
    }
    return true;
}

/* "METHOD TARGET VERSION" in line (which it cuts up): the target in *target. */
static int
parse_request_line(struct ag_req *r, char *line, char **target, const char **why)
{
    *why = "bad request line";
    char *sp1 = strchr(line, ' ');
    if (sp1 == NULL || sp1 - line >= (long)sizeof(r->method) || sp1 == line)
        return 400;
    memcpy(r->method, line, (size_t)(sp1 - line));
    r->method[sp1 - line] = 0;
    /* A method is a token (RFC 9110 §9.1); it is echoed in error messages. */
    if (strspn(r->method, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                          "!#$%&'*+-.^_`|~") != (size_t)(sp1 - line))
        return 400;
    char *sp2 = strchr(sp1 + 1, ' ');
    if (sp2 == NULL)
        return 400;
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
    *target = sp1 + 1;
    return 0;
}

/* The target (origin or absolute form; which it cuts up and decodes in place): r->path and r->q.
 * Room for "/" after it is guaranteed by the version that followed it. */
static int
parse_target(struct ag_req *r, char *target, const char **why)
{
    char *end = target + strlen(target);
    if (strncasecmp(target, "http://", 7) == 0) {
        target = strchr(target + 7, '/');
        if (target == NULL)
            target = end; /* empty: becomes "/" below */
    }
    if (*target == 0) {
        target = end;
        strcpy(end, "/");
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
    return 0;
}

/* One "Name: value" line (cut up in place) into r. */
static int
parse_header(struct ag_req *r, char *line, bool *have_te, const char **why)
{
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
        if (strcasecmp(v, "chunked") != 0 || *have_te)
            return *why = "unsupported Transfer-Encoding", 400;
        *have_te = r->chunked = true;
    } else if (!strcasecmp(line, "Connection")) {
        if (strcasestr(v, "close"))
            r->keepalive = false;
        else if (strcasestr(v, "keep-alive"))
            r->keepalive = true;
    } else {
        static const struct {
            const char *name;
            size_t off;
        } kept[] = {
            {"X-EXECD-ACCESS-TOKEN", offsetof(struct ag_req, token)},
            {"Content-Type", offsetof(struct ag_req, content_type)},
            {"Range", offsetof(struct ag_req, range)},
            {"Expect", offsetof(struct ag_req, expect)},
            {"Upgrade", offsetof(struct ag_req, upgrade)},
            {"Sec-WebSocket-Key", offsetof(struct ag_req, ws_key)},
            {"Sec-WebSocket-Version", offsetof(struct ag_req, ws_version)},
        };
        for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
            if (!strcasecmp(line, kept[i].name))
                *(const char **)((char *)r + kept[i].off) = v;
    }
    return 0;
}

int
ag_parse_head(struct ag_req *r, const char *buf, size_t len, const char **why)
{
    r->head = malloc(len + 1);
    if (r->head == NULL)
        return 500;
    memcpy(r->head, buf, len);
    r->head[len] = 0;
    r->clen = -1;
    if (!head_bytes_ok(buf, len))
        return *why = "control character in request head", 400;
    char *line = r->head, *eol = strstr(line, "\r\n"), *target;
    if (eol == NULL)
        return 400;
    *eol = 0;
    int rc = parse_request_line(r, line, &target, why);
    if (rc == 0)
        rc = parse_target(r, target, why);
    bool have_te = false;
    for (line = eol + 2; rc == 0 && *line; line = eol + 2) {
        eol = strstr(line, "\r\n");
        if (eol == NULL)
            break;
        *eol = 0;
        if (*line == 0)
            break;
        rc = parse_header(r, line, &have_te, why);
    }
    if (rc == 0 && r->chunked && r->clen >= 0)
        return *why = "both Content-Length and Transfer-Encoding", 400;
    return rc;
}

/* ---------- request bodies ---------- */

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

bool
ag_body_feed(struct ag_conn *c)
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

json_t *
ag_req_json(struct ag_conn *c, struct ag_req *r, bool array, bool allow_empty)
{
    if (allow_empty && r->body.len == 0)
        return json_object();
    json_error_t e;
    /* JSON_DECODE_ANY so that a scalar gets the message below rather than jansson's. Without
     * JSON_ALLOW_NUL a \u0000 is refused: no path, command or name may hold one. Bounds: the
     * body (AG_JSON_BODY_MAX), jansson's nesting limit (2048). */
    json_t *j = json_loadb(r->body.p ? r->body.p : "", r->body.len, JSON_DECODE_ANY, &e);
    if (j == NULL) {
        ag_reply_err(c, 400, "INVALID_REQUEST_BODY", "error parsing request body: %s", e.text);
        return NULL;
    }
    if (array ? !json_is_array(j) : !json_is_object(j)) {
        json_decref(j);
        ag_reply_err(c, 400, "INVALID_REQUEST_BODY",
                     "error parsing request body: expected a JSON %s", array ? "array" : "object");
        return NULL;
    }
    return j;
}

/* ---------- responses ---------- */

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

/* clen < 0: chunked. */
static void
put_head(struct ag_conn *c, int status, const char *ctype, int64_t clen, const char *extra)
{
    if (!c->req.keepalive || ag_srv.stopping)
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

static void
reply_json_status(struct ag_conn *c, int status, json_t *j)
{
    struct ag_buf b = {0};
    if (ag_buf_json(&b, j) < 0) {
        ag_buf_free(&b);
        c->close_after = true;
        ag_reply(c, 500, NULL, "", 0, NULL);
        return;
    }
    ag_reply(c, status, "application/json", b.p, b.len, NULL);
    ag_buf_free(&b);
}

void
ag_reply_json(struct ag_conn *c, json_t *j)
{
    reply_json_status(c, 200, j);
}

void
ag_reply_err(struct ag_conn *c, int status, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* A request whose body was not consumed cannot be followed by another on this connection. */
    if (c->st == S_HEAD || (c->st == S_BODY && c->bmode != B_NONE))
        c->close_after = true;
    reply_json_status(c, status,
                      json_pack("{s:o,s:o}", "code", ag_jtext(code), "message", ag_jtext(msg)));
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

void
ag_stream_begin(struct ag_conn *c, const char *ctype)
{
    put_head(c, 200, ctype, -1, "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n");
    c->streaming = true;
    c->resp_done = false;
}

void
ag_stream_chunk(struct ag_conn *c, const char *p, size_t n)
{
    if (n == 0)
        return;
    ag_buf_printf(&c->out, "%zx\r\n", n);
    ag_buf_put(&c->out, p, n);
    ag_buf_puts(&c->out, "\r\n");
}

void
ag_stream_end(struct ag_conn *c)
{
    ag_buf_puts(&c->out, "0\r\n\r\n");
    c->streaming = false;
    c->resp_done = true;
}

void
ag_send_event(struct ag_conn *c, const struct ag_event *ev)
{
    ag_srv.scratch.len = 0;
    if (ag_event_encode(&ag_srv.scratch, ev) == 0)
        ag_stream_chunk(c, ag_srv.scratch.p, ag_srv.scratch.len);
}
