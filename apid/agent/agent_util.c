#include "agent_util.h"

#include <errno.h>
#include <fnmatch.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

int
ag_buf_reserve(struct ag_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < b->len + extra + 1) {
        if (ncap > SIZE_MAX / 2)
            return -1;
        ncap *= 2;
    }
    char *p = realloc(b->p, ncap);
    if (p == NULL)
        return -1;
    b->p = p;
    b->cap = ncap;
    return 0;
}

int
ag_buf_put(struct ag_buf *b, const void *p, size_t n)
{
    if (ag_buf_reserve(b, n) < 0)
        return -1;
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

int
ag_buf_puts(struct ag_buf *b, const char *s)
{
    return ag_buf_put(b, s, strlen(s));
}

int
ag_buf_putc(struct ag_buf *b, char c)
{
    return ag_buf_put(b, &c, 1);
}

int
ag_buf_printf(struct ag_buf *b, const char *fmt, ...)
{
    va_list ap;
    char tmp[256];
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n < sizeof(tmp))
        return ag_buf_put(b, tmp, (size_t)n);
    if (ag_buf_reserve(b, (size_t)n) < 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void
ag_buf_consume(struct ag_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->p, b->p + n, b->len - n);
        b->len -= n;
    }
    if (b->p)
        b->p[b->len] = 0;
}

void
ag_buf_free(struct ag_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

char *
ag_buf_cstr(struct ag_buf *b)
{
    if (ag_buf_reserve(b, 0) < 0)
        return NULL;
    b->p[b->len] = 0;
    return b->p;
}

int
ag_buf_json(struct ag_buf *b, json_t *j)
{
    if (j == NULL)
        return -1;
    size_t n = json_dumpb(j, NULL, 0, JSON_COMPACT | JSON_REAL_PRECISION(15));
    int rc = n == 0 || ag_buf_reserve(b, n) < 0 ? -1 : 0;
    if (rc == 0 && json_dumpb(j, b->p + b->len, n, JSON_COMPACT | JSON_REAL_PRECISION(15)) == n) {
        b->len += n;
        b->p[b->len] = 0;
    } else {
        rc = -1;
    }
    json_decref(j);
    return rc;
}

json_t *
ag_jtext(const char *s)
{
    return sbx_json_text(s, strlen(s));
}

void
ag_new_id(char out[33])
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

int
ag_query_parse(const char *q, size_t n, struct ag_query *out)
{
    out->kv = NULL;
    out->n = 0;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && q[j] != '&')
            j++;
        if (j > i) {
            size_t eq = i;
            while (eq < j && q[eq] != '=')
                eq++;
            char *k = malloc(eq - i + 1);
            size_t vlen = eq < j ? j - eq - 1 : 0;
            char *v = malloc(vlen + 1);
            struct ag_kv *nkv = realloc(out->kv, (out->n + 1) * sizeof(*nkv));
            if (!k || !v || !nkv) {
                free(k);
                free(v);
                if (nkv)
                    out->kv = nkv;
                ag_query_free(out);
                return -1;
            }
            out->kv = nkv;
            ssize_t kl = sbx_pct_decode(q + i, eq - i, k, true);
            ssize_t vl = eq < j ? sbx_pct_decode(q + eq + 1, vlen, v, true) : 0;
            if (kl < 0 || vl < 0) {
                free(k);
                free(v);
                ag_query_free(out);
                return -1;
            }
            k[kl] = 0;
            v[vl] = 0;
            out->kv[out->n++] = (struct ag_kv){k, v};
        }
        i = j + 1;
    }
    return 0;
}

const char *
ag_query_get(const struct ag_query *q, const char *key)
{
    for (size_t i = 0; i < q->n; i++)
        if (strcmp(q->kv[i].k, key) == 0)
            return q->kv[i].v;
    return NULL;
}

void
ag_query_free(struct ag_query *q)
{
    for (size_t i = 0; i < q->n; i++) {
        free(q->kv[i].k);
        free(q->kv[i].v);
    }
    free(q->kv);
    q->kv = NULL;
    q->n = 0;
}

int
ag_mode_from_api(int64_t api, mode_t *out)
{
    if (api < 0 || api > 7777)
        return -1;
    mode_t m = 0, mul = 1;
    for (int64_t v = api; v > 0; v /= 10) {
        int d = (int)(v % 10);
        if (d > 7)
            return -1;
        m += (mode_t)d * mul;
        mul *= 8;
    }
    *out = m;
    return 0;
}

int64_t
ag_mode_to_api(mode_t m)
{
    m &= 07777;
    int64_t r = 0, mul = 1;
    while (m) {
        r += (int64_t)(m & 7) * mul;
        mul *= 10;
        m >>= 3;
    }
    return r;
}

static int
parse_u64(const char **s, uint64_t *v)
{
    const char *p = *s;
    if (*p < '0' || *p > '9')
        return -1;
    uint64_t x = 0;
    while (*p >= '0' && *p <= '9') {
        if (x > (UINT64_MAX - 9) / 10)
            return -1;
        x = x * 10 + (uint64_t)(*p - '0');
        p++;
    }
    *s = p;
    *v = x;
    return 0;
}

int
ag_range_parse(const char *hdr, uint64_t size, uint64_t *start, uint64_t *end)
{
    if (hdr == NULL)
        return 1;
    while (*hdr == ' ' || *hdr == '\t')
        hdr++;
    if (strncasecmp(hdr, "bytes=", 6) != 0)
        return 1;
    const char *p = hdr + 6;
    while (*p == ' ')
        p++;
    uint64_t a = 0, b = 0;
    bool has_a = false, has_b = false;
    if (*p != '-') {
        if (parse_u64(&p, &a) < 0)
            return 1;
        has_a = true;
    }
    if (*p != '-')
        return 1;
    p++;
    if (*p >= '0' && *p <= '9') {
        if (parse_u64(&p, &b) < 0)
            return 1;
        has_b = true;
    }
    while (*p == ' ')
        p++;
    /* Only the first range is served (contract §B.10); anything after a comma is ignored. */
    if (*p != 0 && *p != ',')
        return 1;
    if (!has_a && !has_b)
        return 1;
    if (has_a && has_b && b < a)
        return 1;
    if (!has_a) { /* suffix range: last b bytes */
        if (b == 0 || size == 0)
            return -1;
        *start = b >= size ? 0 : size - b;
        *end = size - 1;
        return 0;
    }
    if (a >= size)
        return -1;
    *start = a;
    *end = (!has_b || b >= size) ? size - 1 : b;
    return 0;
}

bool
ag_name_match(const char *pat, const char *name)
{
    /* No FNM_PATHNAME (names have no '/'; "**" is then "*") and no FNM_PERIOD (a search finds
     * dot files too). glibc's matcher backtracks only to the last '*', so a hostile pattern
     * costs O(pattern x name), as the hand-written one it replaces did. */
    return fnmatch(pat, name, 0) == 0;
}

int64_t
ag_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
ag_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
ag_rfc3339(char out[48], const struct timespec *ts)
{
    /* Milliseconds unless there are none, as Go's RFC3339Nano trims them (execd writes those). */
    sbx_format_rfc3339(ts, ts->tv_nsec > 0 ? 3 : 0, out, 48);
}

static const char *
env_get(char *const *env, const char *name, size_t n)
{
    extern char **environ;
    for (char *const *e = env ? env : environ; e && *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

static bool
name_char(char c, bool first)
{
    return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (!first && c >= '0' && c <= '9');
}

char *
ag_expand(const char *in, char *const *env, const char *home)
{
    struct ag_buf b = {0};
    const char *p = in;
    if (p[0] == '~' && (p[1] == '/' || p[1] == 0)) {
        const char *h = home && *home ? home : env_get(env, "HOME", 4);
        ag_buf_puts(&b, h && *h ? h : "/");
        p++;
    }
    while (*p) {
        if (*p == '$') {
            bool brace = p[1] == '{';
            const char *s = p + 1 + brace, *e = s;
            if (name_char(*e, true))
                while (name_char(*++e, false))
                    ;
            if (e > s && (!brace || *e == '}')) {
                const char *v = env_get(env, s, (size_t)(e - s));
                if (v)
                    ag_buf_puts(&b, v);
                p = e + brace;
                continue;
            }
        }
        ag_buf_putc(&b, *p++);
    }
    if (ag_buf_cstr(&b) == NULL) {
        ag_buf_free(&b);
        return NULL;
    }
    return b.p;
}

char *
ag_path_clean(const char *in)
{
    size_t n = strlen(in);
    char *out = malloc(n + 2);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    out[o++] = '/';
    const char *p = in;
    while (*p) {
        while (*p == '/')
            p++;
        if (*p == 0)
            break;
        const char *e = p;
        while (*e && *e != '/')
            e++;
        size_t l = (size_t)(e - p);
        if (l == 1 && p[0] == '.') {
            /* skip */
        } else if (l == 2 && p[0] == '.' && p[1] == '.') {
            if (o > 1) {
                o--;
                while (o > 1 && out[o - 1] != '/')
                    o--;
            }
        } else {
            if (o > 1 && out[o - 1] != '/')
                out[o++] = '/';
            memcpy(out + o, p, l);
            o += l;
        }
        p = e;
    }
    if (o > 1 && out[o - 1] == '/')
        o--;
    out[o] = 0;
    return out;
}

/* passwd and group entries of the sandbox's own files, with fgetpwent_r/fgetgrent_r: they read the
 * file given and never NSS (a static binary in a scratch rootfs has no libnss, and getpwuid would
 * read the host's files in host mode). The files are the workload's: an entry longer than
 * ENT_MAX is skipped, not grown into; malformed lines are skipped by glibc. */
#define ENT_MAX 16384

static FILE *
open_db(const char *root, const char *file)
{
    char path[512];
    if ((size_t)snprintf(path, sizeof(path), "%s%s", root ? root : "", file) >= sizeof(path))
        return NULL;
    return fopen(path, "re");
}

/* After ERANGE glibc has put the stream back at the start of the entry: skip past its line. */
static bool
skip_line(FILE *f)
{
    int c;
    while ((c = getc(f)) != EOF && c != '\n')
        ;
    return c != EOF;
}

/* Calls cb on each entry of /etc/passwd under root until it returns true: 0 then, -1 if none did
 * or the file cannot be read. */
static int
each_pw(const char *root, bool (*cb)(const struct passwd *pw, void *u), void *u)
{
    FILE *f = open_db(root, "/etc/passwd");
    if (f == NULL)
        return -1;
    char *buf = malloc(ENT_MAX);
    struct passwd pw, *res;
    int rc = -1, e;
    while (buf && ((e = fgetpwent_r(f, &pw, buf, ENT_MAX, &res)) == 0 || e == ERANGE)) {
        if (e == ERANGE) {
            if (!skip_line(f))
                break;
        } else if (cb(res, u)) {
            rc = 0;
            break;
        }
    }
    free(buf);
    fclose(f);
    return rc;
}

static int
each_gr(const char *root, bool (*cb)(const struct group *gr, void *u), void *u)
{
    FILE *f = open_db(root, "/etc/group");
    if (f == NULL)
        return -1;
    char *buf = malloc(ENT_MAX);
    struct group gr, *res;
    int rc = -1, e;
    while (buf && ((e = fgetgrent_r(f, &gr, buf, ENT_MAX, &res)) == 0 || e == ERANGE)) {
        if (e == ERANGE) {
            if (!skip_line(f))
                break;
        } else if (cb(res, u)) {
            rc = 0;
            break;
        }
    }
    free(buf);
    fclose(f);
    return rc;
}

struct pw_q {
    const char *name; /* by name, else by uid */
    uid_t uid;
    uid_t ouid;
    gid_t ogid;
    char *oname, *home;
    size_t namesz, homesz;
};

static bool
pw_cb(const struct passwd *pw, void *u)
{
    struct pw_q *q = u;
    if (q->name ? strcmp(pw->pw_name, q->name) != 0 : pw->pw_uid != q->uid)
        return false;
    q->ouid = pw->pw_uid;
    q->ogid = pw->pw_gid;
    if (q->oname)
        snprintf(q->oname, q->namesz, "%s", pw->pw_name);
    if (q->home)
        snprintf(q->home, q->homesz, "%s", pw->pw_dir && *pw->pw_dir ? pw->pw_dir : "/");
    return true;
}

int
ag_user_by_name(const char *root, const char *name, uid_t *uid, gid_t *gid, char *home,
                size_t homesz)
{
    struct pw_q q = {.name = name, .home = home, .homesz = homesz};
    if (each_pw(root, pw_cb, &q) < 0)
        return -1;
    if (uid)
        *uid = q.ouid;
    if (gid)
        *gid = q.ogid;
    return 0;
}

int
ag_user_by_uid(const char *root, uid_t uid, char *name, size_t namesz, gid_t *gid, char *home,
               size_t homesz)
{
    struct pw_q q = {.uid = uid, .oname = name, .namesz = namesz, .home = home, .homesz = homesz};
    if (each_pw(root, pw_cb, &q) < 0)
        return -1;
    if (gid)
        *gid = q.ogid;
    return 0;
}

struct gr_q {
    const char *name; /* by name, else by gid */
    gid_t gid;
    gid_t ogid;
    char *oname;
    size_t namesz;
};

static bool
gr_cb(const struct group *gr, void *u)
{
    struct gr_q *q = u;
    if (q->name ? strcmp(gr->gr_name, q->name) != 0 : gr->gr_gid != q->gid)
        return false;
    q->ogid = gr->gr_gid;
    if (q->oname)
        snprintf(q->oname, q->namesz, "%s", gr->gr_name);
    return true;
}

int
ag_group_by_name(const char *root, const char *name, gid_t *gid)
{
    struct gr_q q = {.name = name};
    if (each_gr(root, gr_cb, &q) < 0)
        return -1;
    *gid = q.ogid;
    return 0;
}

int
ag_group_by_gid(const char *root, gid_t gid, char *name, size_t namesz)
{
    struct gr_q q = {.gid = gid, .oname = name, .namesz = namesz};
    return each_gr(root, gr_cb, &q);
}

struct member_q {
    const char *user;
    gid_t *list;
    int n, max;
};

static bool
member_cb(const struct group *gr, void *u)
{
    struct member_q *q = u;
    for (char **m = gr->gr_mem; m && *m; m++)
        if (strcmp(*m, q->user) == 0) {
            q->list[q->n++] = gr->gr_gid;
            break;
        }
    return q->n >= q->max;
}

int
ag_user_groups(const char *root, const char *user, gid_t *out, int max)
{
    struct member_q q = {.user = user, .list = out, .max = max};
    if (max > 0)
        each_gr(root, member_cb, &q);
    return q.n;
}
