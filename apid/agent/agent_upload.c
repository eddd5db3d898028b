/* POST /files/upload: multipart bodies streamed from the socket through agent_multipart.c
 * straight to disk, metadata part then file part, any number of pairs. The file is opened with
 * O_NOFOLLOW: an upload onto a symlink replaces the link and never writes through it. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_multipart.h"
#include "agent_srv.h"

enum { UP_WANT_META, UP_IN_META, UP_WANT_FILE, UP_IN_FILE, UP_SKIP };

struct ag_upload {
    struct ag_mp mp;
    int st, prev_st;
    struct ag_buf meta;
    int fd;
    char *path;
    mode_t mode;
    bool has_mode, created;
    uid_t uid;
    gid_t gid;
    int status;
    const char *code;
    char msg[512];
    int pairs;
};

static int
up_fail(struct ag_upload *u, int status, const char *code, const char *fmt, ...)
{
    if (u->status)
        return -1;
    u->status = status;
    u->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(u->msg, sizeof(u->msg), fmt, ap);
    va_end(ap);
    return -1;
}

static int
up_open(struct ag_upload *u)
{
    char *slash = strrchr(u->path, '/');
    if (slash && slash != u->path) {
        *slash = 0;
        int rc = ag_mkdir_p(u->path, 0755);
        *slash = '/';
        if (rc < 0)
            return up_fail(u, 500, "RUNTIME_ERROR", "create parent of %s: %s", u->path,
                           strerror(errno));
    }
    for (int tries = 0; tries < 3; tries++) {
        struct stat st;
        u->created = lstat(u->path, &st) < 0;
        int fd = open(u->path,
                      O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK |
                          (u->created ? O_EXCL : 0),
                      0777);
        if (fd < 0 && (errno == ELOOP || errno == EEXIST)) {
            /* A symlink (possibly swapped in since the lstat) is replaced, never written through.
             */
            if (errno == ELOOP)
                unlink(u->path);
            continue;
        }
        if (fd < 0)
            return up_fail(u, 500, "RUNTIME_ERROR", "open %s: %s", u->path, strerror(errno));
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
            close(fd);
            return up_fail(u, 500, "RUNTIME_ERROR", "%s is not a regular file", u->path);
        }
        fcntl(fd, F_SETFL, 0);
        u->fd = fd;
        return 0;
    }
    return up_fail(u, 500, "RUNTIME_ERROR", "open %s: path keeps changing", u->path);
}

static int
up_begin(void *p, const char *name, const char *filename, const char *ctype)
{
    struct ag_upload *u = p;
    if (strcmp(name, "metadata") == 0) {
        if (u->st == UP_WANT_FILE)
            return up_fail(u, 400, "INVALID_FILE_CONTENT",
                           "metadata part without a following file part");
        u->st = UP_IN_META;
        u->meta.len = 0;
        return 0;
    }
    if (strcmp(name, "file") == 0) {
        if (u->st != UP_WANT_FILE)
            return up_fail(u, 400, "INVALID_FILE_METADATA",
                           "file part without a preceding metadata part");
        u->st = UP_IN_FILE;
        return up_open(u);
    }
    u->prev_st = u->st;
    u->st = UP_SKIP;
    return 0;
}

static int
up_data(void *p, const char *d, size_t n)
{
    struct ag_upload *u = p;
    if (u->st == UP_IN_META) {
        if (u->meta.len + n > 64 * 1024)
            return up_fail(u, 400, "INVALID_FILE_METADATA", "metadata part too large");
        return ag_buf_put(&u->meta, d, n);
    }
    if (u->st == UP_IN_FILE) {
        while (n) {
            ssize_t w = write(u->fd, d, n);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return up_fail(u, 500, "RUNTIME_ERROR", "write %s: %s", u->path, strerror(errno));
            d += w;
            n -= (size_t)w;
        }
    }
    return 0;
}

static int
up_end(void *p)
{
    struct ag_upload *u = p;
    if (u->st == UP_SKIP) {
        u->st = u->prev_st;
        return 0;
    }
    if (u->st == UP_IN_META) {
        json_error_t e;
        json_t *j = json_loadb(u->meta.p ? u->meta.p : "", u->meta.len, 0, &e);
        if (!json_is_object(j)) {
            json_decref(j);
            return up_fail(u, 400, "INVALID_FILE_METADATA", "metadata is not a JSON object: %s",
                           j ? "not an object" : e.text);
        }
        const char *path = json_string_value(json_object_get(j, "path"));
        int rc = 0;
        free(u->path);
        u->path = NULL;
        if (path == NULL || !*path)
            rc = up_fail(u, 400, "INVALID_FILE_METADATA", "metadata needs a non-empty path");
        else if (ag_perm_of(j, &u->mode, &u->has_mode, &u->uid, &u->gid) < 0)
            rc = up_fail(u, 400, "INVALID_FILE_METADATA", "bad mode in metadata");
        else if ((u->path = ag_resolve_path(path)) == NULL || strcmp(u->path, "/") == 0)
            rc = up_fail(u, 400, "INVALID_FILE_METADATA", "bad path %s", path);
        json_decref(j);
        u->st = UP_WANT_FILE;
        return rc;
    }
    if (u->st == UP_IN_FILE) {
        int fd = u->fd;
        u->fd = -1;
        int rc = 0;
        if (fsync(fd) < 0 && errno != EINVAL)
            rc = up_fail(u, 500, "RUNTIME_ERROR", "fsync %s: %s", u->path, strerror(errno));
        uid_t uid = u->uid;
        gid_t gid = u->gid;
        const struct ag_fcfg *fc = ag_files_config();
        if (u->created && fc->chown_new) {
            if (uid == (uid_t)-1)
                uid = fc->uid;
            if (gid == (gid_t)-1)
                gid = fc->gid;
        }
        if (rc == 0 && u->has_mode && fchmod(fd, u->mode) < 0)
            rc = up_fail(u, 500, "RUNTIME_ERROR", "chmod %s: %s", u->path, strerror(errno));
        if (rc == 0 && (uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) < 0)
            rc = up_fail(u, 500, "RUNTIME_ERROR", "chown %s: %s", u->path, strerror(errno));
        close(fd);
        u->pairs++;
        u->st = UP_WANT_META;
        return rc;
    }
    return 0;
}

static const struct ag_mp_cb up_cb = {up_begin, up_data, up_end};

struct ag_upload *
ag_upload_new(const char *content_type)
{
    struct ag_upload *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return NULL;
    u->fd = -1;
    if (ag_mp_init(&u->mp, content_type) < 0)
        up_fail(u, 400, "INVALID_FILE", "request is not multipart/form-data with a boundary");
    return u;
}

int
ag_upload_feed(struct ag_upload *u, const char *p, size_t n)
{
    if (u->status)
        return -1;
    int rc = ag_mp_feed(&u->mp, p, n, &up_cb, u);
    if (rc == -1)
        return up_fail(u, 400, "INVALID_FILE", "malformed multipart body");
    return rc < 0 ? -1 : 0;
}

int
ag_upload_finish(struct ag_upload *u)
{
    if (u->status)
        return -1;
    if (!ag_mp_done(&u->mp))
        return up_fail(u, 400, "INVALID_FILE", "multipart body ended before its closing boundary");
    if (u->st == UP_WANT_FILE)
        return up_fail(u, 400, "INVALID_FILE_CONTENT", "metadata part without a file part");
    if (u->pairs == 0)
        return up_fail(u, 400, "INVALID_FILE", "no metadata/file pairs in the request");
    return 0;
}

int
ag_upload_error(const struct ag_upload *u, const char **code, const char **msg)
{
    *code = u->code ? u->code : "RUNTIME_ERROR";
    *msg = u->msg;
    return u->status ? u->status : 500;
}

void
ag_upload_free(struct ag_upload *u)
{
    if (u == NULL)
        return;
    if (u->fd >= 0)
        close(u->fd);
    free(u->path);
    ag_buf_free(&u->meta);
    free(u);
}

void
ag_h_files_upload(struct ag_conn *c, struct ag_req *r)
{
    const char *code, *msg;
    if (ag_upload_finish(c->up) < 0) {
        int st = ag_upload_error(c->up, &code, &msg);
        ag_reply_err(c, st, code, "%s", msg);
    } else {
        ag_reply_empty(c);
    }
}
