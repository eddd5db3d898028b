/* /files* and /directories* handlers (contract §B.9–B.11). The agent runs inside the sandbox's
 * mount namespace after pivot_root, so "/" is the sandbox root and no path can name a host file;
 * the O_NOFOLLOW uses below keep the API from writing *through* a symlink a workload planted (it
 * replaces the link instead), which also keeps the host-side fallback mode sane. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"

static struct ag_fcfg fcfg;

void
ag_files_configure(const struct ag_fcfg *cfg)
{
    fcfg = *cfg;
}

const struct ag_fcfg *
ag_files_config(void)
{
    return &fcfg;
}

char *
ag_resolve_path(const char *in)
{
    char *x = ag_expand(in, NULL, fcfg.home), *out;
    if (x == NULL)
        return NULL;
    if (x[0] != '/') {
        char cwd[4096];
        if (getcwd(cwd, sizeof(cwd)) == NULL)
            strcpy(cwd, "/");
        struct ag_buf j = {0};
        ag_buf_printf(&j, "%s/%s", cwd, x);
        out = ag_path_clean(ag_buf_cstr(&j) ? j.p : "/");
        ag_buf_free(&j);
    } else {
        out = ag_path_clean(x);
    }
    free(x);
    return out;
}

/* Small per-request id→name cache: a search over many files must not re-read /etc/passwd each time.
 */
struct names {
    struct {
        unsigned id;
        char name[64];
    } u[16], g[16];
    int nu, ng;
};

static const char *
uname_of(struct names *nc, uid_t uid)
{
    for (int i = 0; i < nc->nu; i++)
        if (nc->u[i].id == uid)
            return nc->u[i].name;
    int i = nc->nu < 16 ? nc->nu++ : (int)(uid % 16);
    nc->u[i].id = uid;
    if (ag_user_by_uid(NULL, uid, nc->u[i].name, sizeof(nc->u[i].name), NULL, NULL, 0) < 0)
        snprintf(nc->u[i].name, sizeof(nc->u[i].name), "%u", (unsigned)uid);
    return nc->u[i].name;
}

static const char *
gname_of(struct names *nc, gid_t gid)
{
    for (int i = 0; i < nc->ng; i++)
        if (nc->g[i].id == gid)
            return nc->g[i].name;
    int i = nc->ng < 16 ? nc->ng++ : (int)(gid % 16);
    nc->g[i].id = gid;
    if (ag_group_by_gid(NULL, gid, nc->g[i].name, sizeof(nc->g[i].name)) < 0)
        snprintf(nc->g[i].name, sizeof(nc->g[i].name), "%u", (unsigned)gid);
    return nc->g[i].name;
}

static json_t *
fileinfo(struct names *nc, const char *path, int dirfd, const char *rel)
{
    struct statx sx;
    if (statx(dirfd, rel, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_BTIME, &sx) < 0)
        return NULL;
    const char *type = S_ISREG(sx.stx_mode)   ? "file"
                       : S_ISDIR(sx.stx_mode) ? "directory"
                       : S_ISLNK(sx.stx_mode) ? "symlink"
                                              : "other";
    char mt[48], ct[48];
    struct statx_timestamp c = sx.stx_mask & STATX_BTIME ? sx.stx_btime : sx.stx_ctime;
    ag_rfc3339(mt, &(struct timespec){sx.stx_mtime.tv_sec, sx.stx_mtime.tv_nsec});
    ag_rfc3339(ct, &(struct timespec){c.tv_sec, c.tv_nsec});
    return json_pack("{s:o,s:s,s:I,s:s,s:s,s:o,s:o,s:I}", "path", ag_jtext(path), "type", type,
                     "size", (json_int_t)sx.stx_size, "modified_at", mt, "created_at", ct, "owner",
                     ag_jtext(uname_of(nc, sx.stx_uid)), "group",
                     ag_jtext(gname_of(nc, sx.stx_gid)), "mode",
                     (json_int_t)ag_mode_to_api(sx.stx_mode & 07777));
}

/* key (bytes a client or a file system chose) as an object key, invalid UTF-8 replaced. */
static void
set_text_key(json_t *o, const char *key, json_t *v)
{
    json_t *k = ag_jtext(key);
    if (k)
        json_object_setn_new_nocheck(o, json_string_value(k), json_string_length(k), v);
    else
        json_decref(v);
    json_decref(k);
}

static void
reply_errno(struct ag_conn *c, int e, const char *what, const char *path)
{
    if (e == ENOENT || e == ENOTDIR)
        ag_reply_err(c, 404, "FILE_NOT_FOUND", "%s %s: %s", what, path, strerror(e));
    else
        ag_reply_err(c, 500, "RUNTIME_ERROR", "%s %s: %s", what, path, strerror(e));
}

void
ag_h_files_info(struct ag_conn *c, struct ag_req *r)
{
    json_t *o = json_object();
    struct names nc = {0};
    for (size_t i = 0; i < r->q.n; i++) {
        if (strcmp(r->q.kv[i].k, "path") != 0)
            continue;
        char *p = ag_resolve_path(r->q.kv[i].v);
        json_t *fi = p ? fileinfo(&nc, p, AT_FDCWD, p) : NULL;
        int e = p ? errno : ENOMEM;
        free(p);
        if (fi == NULL) {
            json_decref(o);
            reply_errno(c, e, "stat", r->q.kv[i].v);
            return;
        }
        set_text_key(o, r->q.kv[i].v, fi);
    }
    ag_reply_json(c, o);
}

void
ag_h_files_delete(struct ag_conn *c, struct ag_req *r)
{
    for (size_t i = 0; i < r->q.n; i++) {
        if (strcmp(r->q.kv[i].k, "path") != 0)
            continue;
        char *p = ag_resolve_path(r->q.kv[i].v);
        if (p && unlink(p) < 0 && errno != ENOENT) {
            ag_reply_err(c, 500, "RUNTIME_ERROR", "remove %s: %s", r->q.kv[i].v, strerror(errno));
            free(p);
            return;
        }
        free(p);
    }
    ag_reply_empty(c);
}

void
ag_h_files_mv(struct ag_conn *c, struct ag_req *r)
{
    json_t *j = ag_req_json(c, r, true, false), *it;
    if (j == NULL)
        return;
    size_t i;
    json_array_foreach (j, i, it) {
        const char *src = json_string_value(json_object_get(it, "src")),
                   *dst = json_string_value(json_object_get(it, "dest"));
        if (src == NULL || dst == NULL || !*src || !*dst) {
            ag_reply_err(c, 400, "INVALID_REQUEST_BODY", "each item needs non-empty src and dest");
            goto out;
        }
        char *s = ag_resolve_path(src), *d = ag_resolve_path(dst);
        struct stat st;
        int rc = 0, e = 0;
        if (s == NULL || d == NULL)
            rc = -1, e = ENOMEM;
        else if (lstat(s, &st) < 0)
            rc = -1, e = errno;
        else if (rename(s, d) < 0)
            rc = -2, e = errno;
        free(s);
        free(d);
        if (rc == -1) {
            reply_errno(c, e, "stat", src);
            goto out;
        }
        if (rc == -2) {
            ag_reply_err(c, 500, "RUNTIME_ERROR", "move %s -> %s: %s", src, dst, strerror(e));
            goto out;
        }
    }
    ag_reply_empty(c);
out:
    json_decref(j);
}

static int
resolve_owner(const char *owner, const char *group, uid_t *uid, gid_t *gid)
{
    *uid = (uid_t)-1;
    *gid = (gid_t)-1;
    char *end;
    if (owner && *owner) {
        unsigned long v = strtoul(owner, &end, 10);
        if (*end == 0)
            *uid = (uid_t)v;
        else if (ag_user_by_name(NULL, owner, uid, NULL, NULL, 0) < 0)
            fprintf(stderr, "sbx-agent: unknown user %s ignored\n", owner);
    }
    if (group && *group) {
        unsigned long v = strtoul(group, &end, 10);
        if (*end == 0)
            *gid = (gid_t)v;
        else if (ag_group_by_name(NULL, group, gid) < 0)
            fprintf(stderr, "sbx-agent: unknown group %s ignored\n", group);
    }
    return 0;
}

int
ag_perm_of(const json_t *o, mode_t *mode, bool *has_mode, uid_t *uid, gid_t *gid)
{
    const json_t *m = json_object_get(o, "mode");
    *has_mode = false;
    if (m && !json_is_null(m)) {
        if (!json_is_integer(m) || ag_mode_from_api(json_integer_value(m), mode) < 0)
            return -1;
        *has_mode = *mode != 0; /* 0 leaves the mode alone (contract §B.9) */
    }
    return resolve_owner(json_string_value(json_object_get(o, "owner")),
                         json_string_value(json_object_get(o, "group")), uid, gid);
}

/* mkdir -p; new directories belong to the sandbox user so its commands can use them. */
int
ag_mkdir_p(const char *path, mode_t mode)
{
    char *p = strdup(path);
    if (p == NULL)
        return -1;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != 0)
            continue;
        char save = *s;
        *s = 0;
        if (mkdir(p, mode) == 0) {
            if (fcfg.chown_new && lchown(p, fcfg.uid, fcfg.gid) < 0) {
                /* best effort: a non-root agent cannot chown */
            }
        } else if (errno != EEXIST) {
            int e = errno;
            free(p);
            errno = e;
            return -1;
        }
        *s = save;
        if (save == 0)
            break;
    }
    free(p);
    struct stat st;
    if (stat(path, &st) < 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static void
perm_or_mkdir(struct ag_conn *c, struct ag_req *r, bool mk)
{
    json_t *j = ag_req_json(c, r, false, false), *it;
    if (j == NULL)
        return;
    const char *key;
    json_object_foreach (j, key, it) {
        mode_t mode = 0;
        bool has_mode;
        uid_t uid;
        gid_t gid;
        if (!json_is_object(it) || !*key || ag_perm_of(it, &mode, &has_mode, &uid, &gid) < 0) {
            ag_reply_err(c, 400, "INVALID_REQUEST_BODY", "bad permission entry for %s", key);
            goto out;
        }
        char *p = ag_resolve_path(key);
        int rc = 0;
        const char *what = "stat";
        if (p == NULL) {
            errno = ENOMEM;
            rc = -1;
        } else if (mk) {
            what = "mkdir";
            rc = ag_mkdir_p(p, 0755);
        } else {
            struct stat st;
            rc = lstat(p, &st);
        }
        if (rc == 0 && has_mode && (what = "chmod", chmod(p, mode)) < 0)
            rc = -1;
        if (rc == 0 && (uid != (uid_t)-1 || gid != (gid_t)-1) &&
            (what = "chown", chown(p, uid, gid)) < 0)
            rc = -1;
        int e = errno;
        free(p);
        if (rc < 0) {
            if (e == ENOENT && !mk)
                ag_reply_err(c, 404, "FILE_NOT_FOUND", "%s %s: %s", what, key, strerror(e));
            else
                ag_reply_err(c, 500, "RUNTIME_ERROR", "%s %s: %s", what, key, strerror(e));
            goto out;
        }
    }
    ag_reply_empty(c);
out:
    json_decref(j);
}

void
ag_h_files_perm(struct ag_conn *c, struct ag_req *r)
{
    perm_or_mkdir(c, r, false);
}

void
ag_h_dir_mkdir(struct ag_conn *c, struct ag_req *r)
{
    perm_or_mkdir(c, r, true);
}

#define REPLACE_MAX (256u << 20)

/* Keeping the owner is best effort: a non-root agent (host fallback mode) cannot chown. */
static bool
keep_owner(int fd, const struct stat *st)
{
    if (fchown(fd, st->st_uid, st->st_gid) < 0 && errno != EPERM)
        return false;
    return true;
}

/* Whole-file replace through a temp file + rename, so a reader never sees a half-written file. */
static int
replace_one(const char *path, const char *old, size_t oldlen, const char *new, size_t newlen,
            long *count, int *status)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    *status = 500;
    if (fd < 0) {
        if (errno == ENOENT)
            *status = 404;
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > REPLACE_MAX) {
        if (errno == 0 || !S_ISREG(st.st_mode))
            errno = EINVAL;
        close(fd);
        return -1;
    }
    char *data = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (data && got < (size_t)st.st_size) {
        ssize_t n = read(fd, data + got, (size_t)st.st_size - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (data == NULL)
        return -1;
    struct ag_buf out = {0};
    long cnt = 0;
    const char *p = data, *end = data + got;
    while (p < end) {
        const char *m = memmem(p, (size_t)(end - p), old, oldlen);
        if (m == NULL)
            break;
        ag_buf_put(&out, p, (size_t)(m - p));
        ag_buf_put(&out, new, newlen);
        p = m + oldlen;
        cnt++;
    }
    *count = cnt;
    if (cnt == 0) {
        free(data);
        ag_buf_free(&out);
        return 0;
    }
    ag_buf_put(&out, p, (size_t)(end - p));
    free(data);
    char *tmp = malloc(strlen(path) + 32);
    int rc = -1;
    if (tmp) {
        sprintf(tmp, "%s.sbx-replace-%d", path, (int)getpid());
        int tfd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (tfd >= 0) {
            size_t off = 0;
            while (off < out.len) {
                ssize_t n = write(tfd, out.p + off, out.len - off);
                if (n <= 0)
                    break;
                off += (size_t)n;
            }
            if (off == out.len && fchmod(tfd, st.st_mode & 07777) == 0 && keep_owner(tfd, &st) &&
                fsync(tfd) == 0 && rename(tmp, path) == 0)
                rc = 0;
            int e = errno;
            close(tfd);
            if (rc < 0)
                unlink(tmp);
            errno = e;
        }
        free(tmp);
    }
    ag_buf_free(&out);
    return rc;
}

void
ag_h_files_replace(struct ag_conn *c, struct ag_req *r)
{
    json_t *j = ag_req_json(c, r, false, false), *it;
    if (j == NULL)
        return;
    const char *v = ag_query_get(&r->q, "verbose"), *key;
    bool verbose = v && (!strcmp(v, "true") || !strcmp(v, "1"));
    json_object_foreach (j, key, it) {
        json_t *o = json_object_get(it, "old"), *n = json_object_get(it, "new");
        if (!json_string_length(o) || (n && !json_is_string(n))) {
            ag_reply_err(c, 400, "INVALID_REQUEST_BODY",
                         "replace %s: \"old\" must be a non-empty string", key);
            goto out;
        }
    }
    json_t *counts = json_object();
    json_object_foreach (j, key, it) {
        json_t *o = json_object_get(it, "old"), *n = json_object_get(it, "new");
        char *p = ag_resolve_path(key);
        long cnt = 0;
        int status = 500;
        if (p == NULL ||
            replace_one(p, json_string_value(o), json_string_length(o),
                        n ? json_string_value(n) : "", json_string_length(n), &cnt, &status) < 0) {
            int e = errno;
            free(p);
            json_decref(counts);
            if (status == 404)
                ag_reply_err(c, 404, "FILE_NOT_FOUND", "replace %s: %s", key, strerror(e));
            else
                ag_reply_err(c, 500, "RUNTIME_ERROR", "replace %s: %s", key, strerror(e));
            goto out;
        }
        free(p);
        json_object_set_new(counts, key, json_pack("{s:I}", "replacedCount", (json_int_t)cnt));
    }
    if (verbose)
        ag_reply_json(c, counts);
    else {
        json_decref(counts);
        ag_reply_empty(c);
    }
out:
    json_decref(j);
}

struct walk {
    struct ag_buf out;
    struct names nc;
    const char *pattern;
    int depth_max;
    size_t count;
    bool list; /* directory listing (all entries) vs search (regular files matching) */
};

static int
cmpstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Walks dirfd (which it closes) in lexical order, never following symlinks. */
static void
walk_dir(struct walk *w, int dirfd, const char *path, int depth)
{
    DIR *d = fdopendir(dirfd);
    if (d == NULL) {
        close(dirfd);
        return;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            char **nn = realloc(names, cap * sizeof(*nn));
            if (nn == NULL)
                break;
            names = nn;
        }
        names[n] = strdup(de->d_name);
        if (names[n])
            n++;
    }
    qsort(names, n, sizeof(*names), cmpstr);
    for (size_t i = 0; i < n; i++) {
        struct ag_buf full = {0};
        ag_buf_printf(&full, "%s%s%s", path, strcmp(path, "/") ? "/" : "", names[i]);
        struct stat st;
        if (fstatat(dirfd, names[i], &st, AT_SYMLINK_NOFOLLOW) == 0) {
            bool emit =
                w->list ? true : (S_ISREG(st.st_mode) && ag_name_match(w->pattern, names[i]));
            json_t *fi = emit ? fileinfo(&w->nc, full.p, dirfd, names[i]) : NULL;
            /* Each entry is written out as it is found: a tree of json_t for a large search
             * would take several times the memory of its text. */
            if (fi && (w->count == 0 || ag_buf_putc(&w->out, ',') == 0) &&
                ag_buf_json(&w->out, fi) == 0)
                w->count++;
            if (S_ISDIR(st.st_mode) && depth + 1 < w->depth_max) {
                int sub = openat(dirfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub >= 0)
                    walk_dir(w, sub, full.p, depth + 1);
            }
        }
        ag_buf_free(&full);
        free(names[i]);
    }
    free(names);
    closedir(d);
}

static void
list_or_search(struct ag_conn *c, struct ag_req *r, bool list)
{
    const char *arg = ag_query_get(&r->q, "path");
    if (arg == NULL || !*arg) {
        ag_reply_err(c, 400, "MISSING_QUERY", "missing query parameter: path");
        return;
    }
    struct walk w = {.list = list, .pattern = "**", .depth_max = 128};
    if (list) {
        const char *d = ag_query_get(&r->q, "depth");
        if (d) {
            char *end;
            long v = strtol(d, &end, 10);
            if (*d == 0 || *end || v < 0) {
                ag_reply_err(c, 400, "INVALID_REQUEST_BODY", "depth must be an integer >= 0");
                return;
            }
            w.depth_max = v > 128 ? 128 : (int)v;
        } else {
            w.depth_max = 1;
        }
    } else {
        const char *pat = ag_query_get(&r->q, "pattern");
        if (pat && *pat)
            w.pattern = pat;
    }
    char *p = ag_resolve_path(arg);
    struct stat st;
    if (p == NULL || lstat(p, &st) < 0) {
        reply_errno(c, p ? errno : ENOMEM, "stat", arg);
        free(p);
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        /* listing rejects symlinks and files with 400 (spec); search treats them as "no such dir"
         */
        if (list)
            ag_reply_err(c, 400, "INVALID_REQUEST_BODY", "%s is not a directory", arg);
        else
            ag_reply_err(c, 404, "FILE_NOT_FOUND", "%s is not a directory", arg);
        free(p);
        return;
    }
    int fd = open(p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        reply_errno(c, errno, "open", arg);
        free(p);
        return;
    }
    ag_buf_putc(&w.out, '[');
    if (w.depth_max > 0)
        walk_dir(&w, fd, p, 0);
    else
        close(fd);
    ag_buf_putc(&w.out, ']');
    free(p);
    ag_reply(c, 200, "application/json", w.out.p, w.out.len, NULL);
    ag_buf_free(&w.out);
}

void
ag_h_files_search(struct ag_conn *c, struct ag_req *r)
{
    list_or_search(c, r, false);
}

void
ag_h_dir_list(struct ag_conn *c, struct ag_req *r)
{
    list_or_search(c, r, true);
}

/* rm -rf below dirfd/name without following symlinks. */
static int
rm_rf_at(int dirfd, const char *name, int depth)
{
    if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
        return 0;
    if (errno != EISDIR && errno != EPERM)
        return -1;
    if (depth > 256) {
        errno = ELOOP;
        return -1;
    }
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return -1;
    }
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (rm_rf_at(fd, de->d_name, depth + 1) < 0)
            rc = -1;
    }
    closedir(d);
    if (rc == 0 && unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        rc = -1;
    return rc;
}

void
ag_h_dir_delete(struct ag_conn *c, struct ag_req *r)
{
    for (size_t i = 0; i < r->q.n; i++) {
        if (strcmp(r->q.kv[i].k, "path") != 0)
            continue;
        char *p = ag_resolve_path(r->q.kv[i].v);
        if (p && strcmp(p, "/") == 0) {
            free(p);
            ag_reply_err(c, 400, "INVALID_REQUEST_BODY", "refusing to remove /");
            return;
        }
        if (p && rm_rf_at(AT_FDCWD, p, 0) < 0) {
            ag_reply_err(c, 500, "RUNTIME_ERROR", "remove %s: %s", r->q.kv[i].v, strerror(errno));
            free(p);
            return;
        }
        free(p);
    }
    ag_reply_empty(c);
}

static void
content_disposition(struct ag_buf *h, const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (!*base)
        base = "download";
    bool plain = true;
    for (const unsigned char *s = (const unsigned char *)base; *s; s++)
        if (*s < 0x20 || *s >= 0x7f || *s == '"' || *s == '\\' || *s == '%')
            plain = false;
    if (plain) {
        ag_buf_printf(h, "Content-Disposition: attachment; filename=\"%s\"\r\n", base);
        return;
    }
    ag_buf_puts(h, "Content-Disposition: attachment; filename=\"download\"; filename*=UTF-8''");
    for (const unsigned char *s = (const unsigned char *)base; *s; s++) {
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
            strchr("-._~", *s))
            ag_buf_putc(h, (char)*s);
        else
            ag_buf_printf(h, "%%%02X", *s);
    }
    ag_buf_puts(h, "\r\n");
}

void
ag_h_files_download(struct ag_conn *c, struct ag_req *r)
{
    const char *arg = ag_query_get(&r->q, "path");
    if (arg == NULL || !*arg) {
        ag_reply_err(c, 400, "MISSING_QUERY", "missing query parameter: path");
        return;
    }
    char *p = ag_resolve_path(arg);
    int fd = p ? open(p, O_RDONLY | O_CLOEXEC | O_NONBLOCK) : -1;
    if (fd < 0) {
        reply_errno(c, p ? errno : ENOMEM, "open", arg);
        free(p);
        return;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        free(p);
        ag_reply_err(c, 400, "INVALID_FILE", "%s is not a regular file", arg);
        return;
    }
    uint64_t size = (uint64_t)st.st_size, a = 0, b = size ? size - 1 : 0;
    int rr = ag_range_parse(r->range, size, &a, &b);
    const char *off = ag_query_get(&r->q, "offset"), *lim = ag_query_get(&r->q, "limit");
    if (rr == 1 && (off || lim)) {
        /* SDK 0.1.11's offset/limit: the same byte window as a Range would give. */
        char rh[64];
        unsigned long long o = off ? strtoull(off, NULL, 10) : 0,
                           l = lim ? strtoull(lim, NULL, 10) : 0;
        if (l)
            snprintf(rh, sizeof(rh), "bytes=%llu-%llu", o, o + l - 1);
        else
            snprintf(rh, sizeof(rh), "bytes=%llu-", o);
        rr = ag_range_parse(rh, size, &a, &b);
    }
    struct ag_buf h = {0};
    content_disposition(&h, p);
    free(p);
    if (rr < 0) {
        close(fd);
        ag_buf_free(&h);
        ag_reply_err(c, 416, "INVALID_REQUEST_BODY", "range not satisfiable (size %llu)",
                     (unsigned long long)size);
        return;
    }
    if (rr == 0) {
        ag_buf_printf(&h, "Content-Range: bytes %llu-%llu/%llu\r\n", (unsigned long long)a,
                      (unsigned long long)b, (unsigned long long)size);
        ag_reply_file(c, 206, fd, a, b - a + 1, h.p);
    } else {
        ag_reply_file(c, 200, fd, 0, size, h.p);
    }
    ag_buf_free(&h);
}
