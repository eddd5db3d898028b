#include "agent_stream.h"

#include <string.h>

static int
emit(struct ag_lsplit *ls, const char *p, size_t n, ag_line_cb cb, void *u)
{
    if (ls->part.len) {
        if (ag_buf_put(&ls->part, p, n) < 0)
            return -1;
        int rc = cb(u, ls->part.p, ls->part.len);
        ls->part.len = 0;
        return rc;
    }
    return cb(u, p, n);
}

int
ag_lsplit_feed(struct ag_lsplit *ls, const char *p, size_t n, ag_line_cb cb, void *u)
{
    size_t i = 0;
    if (n && ls->last_cr && p[0] == '\n')
        i = 1;
    ls->last_cr = false;
    size_t start = i;
    for (; i < n; i++) {
        char c = p[i];
        if (c != '\n' && c != '\r')
            continue;
        int rc = emit(ls, p + start, i - start, cb, u);
        if (rc < 0)
            return rc;
        if (c == '\r') {
            if (i + 1 < n) {
                if (p[i + 1] == '\n')
                    i++;
            } else {
                ls->last_cr = true;
            }
        }
        start = i + 1;
    }
    if (start < n) {
        if (ag_buf_put(&ls->part, p + start, n - start) < 0)
            return -1;
        if (ls->part.len >= AG_LINE_MAX) {
            int rc = cb(u, ls->part.p, ls->part.len);
            ls->part.len = 0;
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

int
ag_lsplit_flush(struct ag_lsplit *ls, ag_line_cb cb, void *u)
{
    int rc = 0;
    if (ls->part.len)
        rc = cb(u, ls->part.p, ls->part.len);
    ls->part.len = 0;
    ls->last_cr = false;
    return rc;
}

void
ag_lsplit_free(struct ag_lsplit *ls)
{
    ag_buf_free(&ls->part);
    ls->last_cr = false;
}

int
ag_event_encode(struct ag_buf *o, const struct ag_event *ev)
{
    json_t *j = json_object();
    int rc = json_object_set_new(j, "type", json_string(ev->type));
    if (ev->text) {
        bool out = !strcmp(ev->type, "stdout") || !strcmp(ev->type, "stderr");
        rc |= json_object_set_new(j, "text",
                                  ev->textlen == 0 && out ? json_string("\n")
                                                          : sbx_json_text(ev->text, ev->textlen));
    }
    rc |= json_object_set_new(j, "timestamp", json_integer(ev->timestamp));
    if (ev->execution_time >= 0)
        rc |= json_object_set_new(j, "execution_time", json_integer(ev->execution_time));
    if (ev->ename)
        rc |= json_object_set_new(j, "error",
                                  json_pack("{s:o,s:o,s:[o*]}", "ename", ag_jtext(ev->ename),
                                            "evalue", ag_jtext(ev->evalue ? ev->evalue : ""),
                                            "traceback",
                                            ev->traceback ? ag_jtext(ev->traceback) : NULL));
    if (rc) {
        json_decref(j);
        return -1;
    }
    size_t before = o->len;
    if (ag_buf_json(o, j) < 0 || ag_buf_puts(o, "\n\n") < 0) {
        o->len = before;
        return -1;
    }
    return 0;
}

enum {
    CH_SIZE,
    CH_EXT,
    CH_SIZE_LF,
    CH_DATA,
    CH_DATA_CR,
    CH_DATA_LF,
    CH_TRAILER,
    CH_TRAILER_LINE,
    CH_END_LF,
    CH_DONE
};

int
ag_chunked_feed(struct ag_chunked *c, const char *in, size_t n, size_t *consumed, ag_data_cb cb,
                void *u)
{
    size_t i = 0;
    int ret = 0;
    while (i < n && c->st != CH_DONE) {
        char ch = in[i];
        switch (c->st) {
        case CH_SIZE: {
            int v = -1;
            if (ch >= '0' && ch <= '9')
                v = ch - '0';
            else if (ch >= 'a' && ch <= 'f')
                v = ch - 'a' + 10;
            else if (ch >= 'A' && ch <= 'F')
                v = ch - 'A' + 10;
            if (v >= 0) {
                if (++c->ndigits > 15)
                    goto bad;
                c->left = c->left * 16 + (uint64_t)v;
                i++;
                break;
            }
            if (c->ndigits == 0)
                goto bad;
            if (ch == ';' || ch == ' ' || ch == '\t')
                c->st = CH_EXT;
            else if (ch == '\r')
                c->st = CH_SIZE_LF;
            else
                goto bad;
            i++;
            break;
        }
        case CH_EXT:
            if (ch == '\r')
                c->st = CH_SIZE_LF;
            else if (ch == '\n')
                goto bad;
            i++;
            break;
        case CH_SIZE_LF:
            if (ch != '\n')
                goto bad;
            i++;
            c->ndigits = 0;
            c->st = c->left ? CH_DATA : CH_TRAILER;
            break;
        case CH_DATA: {
            size_t take = n - i;
            if (take > c->left)
                take = (size_t)c->left;
            if (cb) {
                int rc = cb(u, in + i, take);
                if (rc < 0) {
                    *consumed = i;
                    return -2;
                }
            }
            i += take;
            c->left -= take;
            if (c->left == 0)
                c->st = CH_DATA_CR;
            break;
        }
        case CH_DATA_CR:
            if (ch != '\r')
                goto bad;
            c->st = CH_DATA_LF;
            i++;
            break;
        case CH_DATA_LF:
            if (ch != '\n')
                goto bad;
            c->st = CH_SIZE;
            i++;
            break;
        case CH_TRAILER: /* start of a trailer line, or the final CRLF */
            if (ch == '\r')
                c->st = CH_END_LF;
            else
                c->st = CH_TRAILER_LINE;
            i++;
            break;
        case CH_TRAILER_LINE:
            if (ch == '\n')
                c->st = CH_TRAILER;
            i++;
            break;
        case CH_END_LF:
            if (ch != '\n')
                goto bad;
            c->st = CH_DONE;
            i++;
            break;
        }
    }
    *consumed = i;
    if (c->st == CH_DONE)
        ret = 1;
    return ret;
bad:
    *consumed = i;
    return -1;
}
