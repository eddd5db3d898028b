#include "agent_json.h"

#include <stdlib.h>
#include <string.h>

#include "agent_util.h"

struct parser {
    const char *s, *e;
    const char *err;
};

static void
ws(struct parser *p)
{
    while (p->s < p->e && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
        p->s++;
}

static int
hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static void
put_utf8(struct ag_buf *b, unsigned cp)
{
    char o[4];
    size_t n;
    if (cp < 0x80)
        o[0] = (char)cp, n = 1;
    else if (cp < 0x800)
        o[0] = (char)(0xc0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
    else if (cp < 0x10000)
        o[0] = (char)(0xe0 | cp >> 12), o[1] = (char)(0x80 | ((cp >> 6) & 0x3f)),
        o[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
    else
        o[0] = (char)(0xf0 | cp >> 18), o[1] = (char)(0x80 | ((cp >> 12) & 0x3f)),
        o[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), o[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
    ag_buf_put(b, o, n);
}

/* Validates one raw UTF-8 sequence at s; returns its length or 0. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min, cp;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, min = 0x80, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, min = 0x800, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, min = 0x10000, cp = c & 0x07;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

static int
parse_string(struct parser *p, char **out, size_t *outlen)
{
    struct ag_buf b = {0};
    p->s++; /* opening quote */
    for (;;) {
        if (p->s >= p->e) {
            p->err = "unterminated string";
            goto fail;
        }
        unsigned char c = (unsigned char)*p->s;
        if (c == '"') {
            p->s++;
            break;
        }
        if (c < 0x20) {
            p->err = "control character in string";
            goto fail;
        }
        if (c == '\\') {
            if (p->e - p->s < 2) {
                p->err = "bad escape";
                goto fail;
            }
            char e = p->s[1];
            p->s += 2;
            switch (e) {
            case '"': ag_buf_putc(&b, '"'); break;
            case '\\': ag_buf_putc(&b, '\\'); break;
            case '/': ag_buf_putc(&b, '/'); break;
            case 'b': ag_buf_putc(&b, '\b'); break;
            case 'f': ag_buf_putc(&b, '\f'); break;
            case 'n': ag_buf_putc(&b, '\n'); break;
            case 'r': ag_buf_putc(&b, '\r'); break;
            case 't': ag_buf_putc(&b, '\t'); break;
            case 'u': {
                unsigned cp, lo;
                if (p->e - p->s < 4 || hex4(p->s, &cp) < 0) {
                    p->err = "bad \\u escape";
                    goto fail;
                }
                p->s += 4;
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    if (p->e - p->s < 6 || p->s[0] != '\\' || p->s[1] != 'u' ||
                        hex4(p->s + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff) {
                        p->err = "unpaired surrogate";
                        goto fail;
                    }
                    p->s += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                    p->err = "unpaired surrogate";
                    goto fail;
                }
                put_utf8(&b, cp);
                break;
            }
            default: p->err = "bad escape"; goto fail;
            }
            continue;
        }
        if (c < 0x80) {
            const char *q = p->s;
            while (q < p->e && (unsigned char)*q >= 0x20 && (unsigned char)*q < 0x80 && *q != '"' &&
                   *q != '\\')
                q++;
            ag_buf_put(&b, p->s, (size_t)(q - p->s));
            p->s = q;
            continue;
        }
        size_t l = utf8_seq((const unsigned char *)p->s, (size_t)(p->e - p->s));
        if (l == 0) {
            p->err = "invalid UTF-8";
            goto fail;
        }
        ag_buf_put(&b, p->s, l);
        p->s += l;
    }
    if (ag_buf_cstr(&b) == NULL) {
        p->err = "out of memory";
        goto fail;
    }
    *out = b.p;
    *outlen = b.len;
    return 0;
fail:
    ag_buf_free(&b);
    return -1;
}

static int
parse_number(struct parser *p, struct ag_json *j)
{
    const char *st = p->s, *q = p->s;
    bool integral = true;
    if (q < p->e && *q == '-')
        q++;
    if (q >= p->e || *q < '0' || *q > '9')
        goto bad;
    if (*q == '0') {
        q++;
    } else {
        while (q < p->e && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < p->e && *q == '.') {
        integral = false;
        q++;
        if (q >= p->e || *q < '0' || *q > '9')
            goto bad;
        while (q < p->e && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < p->e && (*q == 'e' || *q == 'E')) {
        integral = false;
        q++;
        if (q < p->e && (*q == '+' || *q == '-'))
            q++;
        if (q >= p->e || *q < '0' || *q > '9')
            goto bad;
        while (q < p->e && *q >= '0' && *q <= '9')
            q++;
    }
    char tmp[64];
    size_t n = (size_t)(q - st);
    if (n >= sizeof(tmp))
        goto bad;
    memcpy(tmp, st, n);
    tmp[n] = 0;
    j->t = AG_JNUM;
    j->d = strtod(tmp, NULL);
    if (integral) {
        /* Exact int64 accumulation; overflow leaves is_int false. */
        const char *d = tmp + (tmp[0] == '-');
        uint64_t v = 0;
        bool ok = true;
        for (; *d; d++) {
            if (v > (UINT64_MAX - 9) / 10) {
                ok = false;
                break;
            }
            v = v * 10 + (uint64_t)(*d - '0');
        }
        if (ok && tmp[0] == '-' && v <= (uint64_t)INT64_MAX + 1)
            j->is_int = true, j->i = (int64_t)(0 - v);
        else if (ok && tmp[0] != '-' && v <= (uint64_t)INT64_MAX)
            j->is_int = true, j->i = (int64_t)v;
    }
    p->s = q;
    return 0;
bad:
    p->err = "bad number";
    return -1;
}

static struct ag_json *parse_value(struct parser *p, int depth);

static bool
lit(struct parser *p, const char *w)
{
    size_t l = strlen(w);
    if ((size_t)(p->e - p->s) >= l && memcmp(p->s, w, l) == 0) {
        p->s += l;
        return true;
    }
    return false;
}

static struct ag_json *
parse_value(struct parser *p, int depth)
{
    if (depth > AG_JSON_MAX_DEPTH) {
        p->err = "nesting too deep";
        return NULL;
    }
    ws(p);
    if (p->s >= p->e) {
        p->err = "unexpected end";
        return NULL;
    }
    struct ag_json *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        p->err = "out of memory";
        return NULL;
    }
    char c = *p->s;
    if (c == '{' || c == '[') {
        bool obj = c == '{';
        j->t = obj ? AG_JOBJ : AG_JARR;
        p->s++;
        ws(p);
        struct ag_json **tail = &j->child;
        if (p->s < p->e && *p->s == (obj ? '}' : ']')) {
            p->s++;
            return j;
        }
        for (;;) {
            char *key = NULL;
            size_t keylen = 0;
            if (obj) {
                ws(p);
                if (p->s >= p->e || *p->s != '"') {
                    p->err = "expected member name";
                    goto fail;
                }
                if (parse_string(p, &key, &keylen) < 0)
                    goto fail;
                ws(p);
                if (p->s >= p->e || *p->s != ':') {
                    free(key);
                    p->err = "expected ':'";
                    goto fail;
                }
                p->s++;
            }
            struct ag_json *v = parse_value(p, depth + 1);
            if (v == NULL) {
                free(key);
                goto fail;
            }
            v->key = key;
            v->keylen = keylen;
            *tail = v;
            tail = &v->next;
            j->n++;
            ws(p);
            if (p->s < p->e && *p->s == ',') {
                p->s++;
                continue;
            }
            if (p->s < p->e && *p->s == (obj ? '}' : ']')) {
                p->s++;
                return j;
            }
            p->err = obj ? "expected ',' or '}'" : "expected ',' or ']'";
            goto fail;
        }
    }
    if (c == '"') {
        j->t = AG_JSTR;
        if (parse_string(p, &j->s, &j->slen) < 0)
            goto fail;
        return j;
    }
    if (lit(p, "true")) {
        j->t = AG_JBOOL;
        j->b = true;
        return j;
    }
    if (lit(p, "false")) {
        j->t = AG_JBOOL;
        return j;
    }
    if (lit(p, "null")) {
        j->t = AG_JNULL;
        return j;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        if (parse_number(p, j) < 0)
            goto fail;
        return j;
    }
    p->err = "unexpected character";
fail:
    ag_json_free(j);
    return NULL;
}

struct ag_json *
ag_json_parse(const char *s, size_t n, const char **err)
{
    struct parser p = {s, s + n, NULL};
    struct ag_json *j = parse_value(&p, 0);
    if (j) {
        ws(&p);
        if (p.s != p.e) {
            ag_json_free(j);
            j = NULL;
            p.err = "trailing data";
        }
    }
    if (err)
        *err = p.err;
    return j;
}

void
ag_json_free(struct ag_json *j)
{
    while (j) {
        struct ag_json *next = j->next;
        ag_json_free(j->child);
        free(j->s);
        free(j->key);
        free(j);
        j = next;
    }
}

const struct ag_json *
ag_json_get(const struct ag_json *obj, const char *key)
{
    if (obj == NULL || obj->t != AG_JOBJ)
        return NULL;
    const struct ag_json *found = NULL;
    /* Last duplicate wins, like Go's encoding/json. */
    for (const struct ag_json *c = obj->child; c; c = c->next)
        if (c->keylen == strlen(key) && memcmp(c->key, key, c->keylen) == 0)
            found = c;
    return found;
}

const char *
ag_json_getstr(const struct ag_json *obj, const char *key)
{
    const struct ag_json *v = ag_json_get(obj, key);
    if (v == NULL || v->t != AG_JSTR || strlen(v->s) != v->slen)
        return NULL;
    return v->s;
}
