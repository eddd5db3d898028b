/* `sbx cp`: files and directory trees between this host and a sandbox, through the agent's files
 * API (no tar needed in the image). Uploads stream each file from disk as a multipart part with
 * its mode; downloads stream each file to disk. The remote side is untrusted when unpacking:
 * every listed path must lie below the source directory, `..` and absolute paths are refused, and
 * every local create goes through openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) under the
 * destination, so a listing cannot make sbx write outside it. Symlinks and special files are
 * skipped with a warning (the files API cannot create them). */
#include "cli.h"

#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/openat2.h>
#include <sys/stat.h>

#define MAX_ENTRIES 1000000

static int64_t
mode_to_api(mode_t m)
{
    m &= 07777;
    int64_t r = 0, mul = 1;
    for (; m; m >>= 3, mul *= 10)
        r += (int64_t)(m & 7) * mul;
    return r;
}

static int
mode_from_api(json_t *v, mode_t *out)
{
    if (!json_is_integer(v))
        return -1;
    int64_t a = json_integer_value(v);
    if (a < 0 || a > 7777)
        return -1;
    mode_t m = 0, mul = 1;
    for (; a; a /= 10, mul *= 8) {
        if (a % 10 > 7)
            return -1;
        m += (mode_t)(a % 10) * mul;
    }
    *out = m;
    return 0;
}

/* "ID:PATH" → id and path; a local path (no colon before the first slash) → false. */
static bool
split_remote(const char *s, char **id, char **path)
{
    const char *c = strchr(s, ':'), *sl = strchr(s, '/');
    if (!c || c == s || (sl && sl < c))
        return false;
    *id = strndup(s, (size_t)(c - s));
    *path = xstrdup(c[1] ? c + 1 : "/");
    return true;
}

static char *
join(const char *a, const char *b)
{
    size_t n = strlen(a);
    return xasprintf("%s%s%s", a, n && a[n - 1] == '/' ? "" : "/", b);
}

/* GET /files/info for one path: 0 with *info, -EX_NOTFOUND when it does not exist. */
static int
remote_info(const struct agent_ep *ep, const char *path, json_t **info, sbx_error_t *err)
{
    cleanup_free char *q = url_escape(path);
    cleanup_free char *url = xasprintf("%s/files/info?path=%s", ep->base, q);
    struct http_resp r;
    int rc = http_request("GET", url, ep->hdrs, NULL, 0, NULL, &r, err);
    if (rc == 0 && r.status == 404)
        rc = -EX_NOTFOUND;
    else if (rc == 0 && r.status != 200) {
        const char *m = json_string_value(json_object_get(r.json, "message"));
        sbx_make_error(err, 0, "%s: HTTP %ld%s%s", path, r.status, m ? ": " : "", m ? m : "");
        rc = -EX_FAIL;
    } else if (rc == 0) {
        json_t *v = json_object_get(r.json, path);
        if (!json_is_object(v)) {
            sbx_make_error(err, 0, "%s: the agent's info reply has no entry for it", path);
            rc = -EX_FAIL;
        } else
            *info = json_incref(v);
    }
    http_resp_free(&r);
    return rc;
}

static int
agent_post_json(const struct agent_ep *ep, const char *route, json_t *body, sbx_error_t *err)
{
    cleanup_free char *url = xasprintf("%s%s", ep->base, route);
    cleanup_free char *b = json_dumps(body, JSON_COMPACT);
    struct http_resp r;
    int rc = http_request("POST", url, ep->hdrs, b, strlen(b), "application/json", &r, err);
    if (rc == 0 && r.status != 200) {
        const char *m = json_string_value(json_object_get(r.json, "message"));
        sbx_make_error(err, 0, "%s: HTTP %ld%s%s", route, r.status, m ? ": " : "", m ? m : "");
        rc = -EX_FAIL;
    }
    http_resp_free(&r);
    return rc;
}

/* ---------- upload ---------- */

static int
upload_file(const struct agent_ep *ep, const char *local, const char *remote, mode_t mode,
            sbx_error_t *err)
{
    CURL *h = curl_easy_init();
    curl_mime *mime = curl_mime_init(h);
    json_t *meta = json_pack("{s:s, s:I}", "path", remote, "mode", (json_int_t)mode_to_api(mode));
    cleanup_free char *ms = json_dumps(meta, JSON_COMPACT);
    json_decref(meta);
    curl_mimepart *p = curl_mime_addpart(mime);
    curl_mime_name(p, "metadata");
    curl_mime_filename(p, "metadata");
    curl_mime_type(p, "application/json");
    curl_mime_data(p, ms, CURL_ZERO_TERMINATED);
    p = curl_mime_addpart(mime);
    curl_mime_name(p, "file");
    curl_mime_type(p, "application/octet-stream");
    CURLcode cc = curl_mime_filedata(p, local);
    struct curl_slist *hdrs = NULL;
    for (struct curl_slist *s = ep->hdrs; s; s = s->next)
        hdrs = curl_slist_append(hdrs, s->data);
    hdrs = curl_slist_append(hdrs, "Expect:");
    cleanup_free char *url = xasprintf("%s/files/upload", ep->base);
    struct cli_buf body = {.max = 1u << 16};
    http_setup(h, url, hdrs);
    curl_easy_setopt(h, CURLOPT_MIMEPOST, mime);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, (curl_write_callback)NULL);
    long status = 0;
    if (cc == CURLE_OK) {
        FILE *sink = fopen("/dev/null", "we");
        curl_easy_setopt(h, CURLOPT_WRITEDATA, sink);
        cc = curl_easy_perform(h);
        if (sink)
            fclose(sink);
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    curl_mime_free(mime);
    curl_slist_free_all(hdrs);
    cli_buf_free(&body);
    if (cc != CURLE_OK) {
        sbx_make_error(err, 0, "upload %s: %s", local, curl_easy_strerror(cc));
        return -EX_CONN;
    }
    if (status != 200) {
        sbx_make_error(err, 0, "upload %s to %s: HTTP %ld", local, remote, status);
        return -EX_FAIL;
    }
    return 0;
}

struct up {
    const struct agent_ep *ep;
    json_t *dirs; /* remote path → {mode} */
    size_t n;
};

/* Depth-first over the local tree, never following symlinks: directories are collected (made
 * in one request later), files uploaded as found. */
static int
upload_walk(struct up *u, const char *local, const char *remote, int depth, sbx_error_t *err)
{
    if (depth > 128 || ++u->n > MAX_ENTRIES) {
        sbx_make_error(err, 0, "%s: tree too deep or too large", local);
        return -EX_FAIL;
    }
    struct stat st;
    if (lstat(local, &st) < 0) {
        sbx_make_error(err, errno, "%s", local);
        return -EX_USAGE;
    }
    if (S_ISREG(st.st_mode))
        return upload_file(u->ep, local, remote, st.st_mode & 07777, err);
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "sbx: cp: skipping %s: not a regular file or directory\n", local);
        return 0;
    }
    json_object_set_new(u->dirs, remote,
                        json_pack("{s:I}", "mode", (json_int_t)mode_to_api(st.st_mode)));
    /* Made now, so the files below land in it with the right mode on the way. */
    json_t *one =
        json_pack("{s:{s:I}}", remote, "mode", (json_int_t)mode_to_api(st.st_mode | 0700));
    int rc = agent_post_json(u->ep, "/directories", one, err);
    json_decref(one);
    if (rc < 0)
        return rc;
    cleanup_dir DIR *d = opendir(local);
    if (!d) {
        sbx_make_error(err, errno, "open %s", local);
        return -EX_FAIL;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        cleanup_free char *l = join(local, de->d_name), *r = join(remote, de->d_name);
        if ((rc = upload_walk(u, l, r, depth + 1, err)) < 0)
            return rc;
    }
    return 0;
}

static int
upload(const struct agent_ep *ep, const char *src, const char *dst, sbx_error_t *err)
{
    struct stat st;
    if (lstat(src, &st) < 0) {
        sbx_make_error(err, errno, "cp: %s", src);
        return -EX_USAGE;
    }
    json_t *info = NULL;
    int rc = remote_info(ep, dst, &info, err);
    if (rc < 0 && rc != -EX_NOTFOUND)
        return rc;
    sbx_error_release(err);
    cleanup_free char *target = NULL;
    cleanup_free char *srcc = xstrdup(src);
    const char *type = json_string_value(json_object_get(info, "type"));
    if (rc == 0 && type && !strcmp(type, "directory"))
        target = join(dst, basename(srcc));
    else
        target = xstrdup(dst);
    json_decref(info);
    struct up u = {.ep = ep, .dirs = json_object()};
    rc = upload_walk(&u, src, target, 0, err);
    if (rc == 0 && json_object_size(u.dirs))
        rc = agent_post_json(ep, "/files/permissions", u.dirs, err); /* the real modes, last */
    json_decref(u.dirs);
    return rc;
}

/* ---------- download ---------- */

struct sink {
    int fd;
    uint64_t left; /* the size the listing promised: never write more */
    bool over, werr;
    int status_checked;
    long status;
    CURL *h;
};

static size_t
on_file(char *p, size_t sz, size_t n, void *u)
{
    struct sink *s = u;
    size_t len = sz * n;
    if (!s->status)
        curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &s->status);
    if (s->status != 200)
        return len;
    if (len > s->left) {
        s->over = true;
        return 0;
    }
    if (safe_write(s->fd, p, len) != (ssize_t)len) {
        s->werr = true;
        return 0;
    }
    s->left -= len;
    return len;
}

static int
download_file(const struct agent_ep *ep, const char *remote, int fd, uint64_t size,
              sbx_error_t *err)
{
    cleanup_free char *q = url_escape(remote);
    cleanup_free char *url = xasprintf("%s/files/download?path=%s", ep->base, q);
    CURL *h = curl_easy_init();
    struct sink s = {.fd = fd, .left = size, .h = h};
    http_setup(h, url, ep->hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_file);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    CURLcode cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &s.status);
    curl_easy_cleanup(h);
    if (s.over) {
        sbx_make_error(err, 0, "download %s: more than the %llu bytes it was listed with", remote,
                       (unsigned long long)size);
        return -EX_FAIL;
    }
    if (s.werr) {
        sbx_make_error(err, errno, "download %s: write", remote);
        return -EX_FAIL;
    }
    if (cc != CURLE_OK) {
        sbx_make_error(err, 0, "download %s: %s", remote, curl_easy_strerror(cc));
        return -EX_CONN;
    }
    if (s.status != 200) {
        sbx_make_error(err, 0, "download %s: HTTP %ld", remote, s.status);
        return s.status == 404 ? -EX_NOTFOUND : -EX_FAIL;
    }
    return 0;
}

static bool
rel_ok(const char *rel)
{
    if (!*rel || *rel == '/')
        return false;
    cleanup_free char *c = xstrdup(rel);
    char *save = NULL;
    for (char *t = strtok_r(c, "/", &save); t; t = strtok_r(NULL, "/", &save))
        if (!strcmp(t, "..") || !strcmp(t, "."))
            return false;
    return true;
}

/* Opens (creating) REL below rootfd, which the kernel keeps beneath the root. */
static int
open_beneath(int rootfd, const char *rel, bool dir, mode_t mode, sbx_error_t *err)
{
    cleanup_free char *c = xstrdup(rel);
    char *slash = strrchr(c, '/');
    const char *name = slash ? slash + 1 : c;
    cleanup_close int pfd = -1;
    if (slash) {
        *slash = '\0';
        struct open_how how = {.flags = O_DIRECTORY | O_RDONLY | O_CLOEXEC,
                               .resolve =
                                   RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
        pfd = openat2_retry(rootfd, c, &how);
        if (pfd < 0) {
            sbx_make_error(err, errno, "cp: %s", rel);
            return -EX_FAIL;
        }
    }
    int at = slash ? pfd : rootfd;
    if (dir) {
        if (mkdirat(at, name, 0700) < 0 && errno != EEXIST) {
            sbx_make_error(err, errno, "cp: mkdir %s", rel);
            return -EX_FAIL;
        }
        int fd = openat(at, name, O_DIRECTORY | O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            sbx_make_error(err, errno, "cp: %s", rel);
        return fd < 0 ? -EX_FAIL : fd;
    }
    int fd = openat(at, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode & 0777);
    if (fd < 0)
        sbx_make_error(err, errno, "cp: create %s", rel);
    return fd < 0 ? -EX_FAIL : fd;
}

static int
download(const struct agent_ep *ep, const char *src, const char *dst, sbx_error_t *err)
{
    json_t *info = NULL;
    int rc = remote_info(ep, src, &info, err);
    if (rc == -EX_NOTFOUND) {
        sbx_error_release(err);
        sbx_make_error(err, 0, "cp: %s: no such file or directory in the sandbox", src);
    }
    if (rc < 0)
        return rc;
    const char *type = json_string_value(json_object_get(info, "type"));
    const char *rpath = json_string_value(json_object_get(info, "path"));
    mode_t mode = 0644;
    mode_from_api(json_object_get(info, "mode"), &mode);
    cleanup_free char *base = xstrdup(rpath ? rpath : src);
    struct stat st;
    cleanup_free char *target = NULL;
    if (stat(dst, &st) == 0 && S_ISDIR(st.st_mode)) {
        cleanup_free char *b2 = xstrdup(base);
        target = join(dst, basename(b2));
    } else
        target = xstrdup(dst);
    if (!type || (strcmp(type, "file") && strcmp(type, "directory"))) {
        json_decref(info);
        sbx_make_error(err, 0, "cp: %s is a %s, not a file or directory", src, type ? type : "?");
        return -EX_FAIL;
    }
    if (!strcmp(type, "file")) {
        uint64_t size = (uint64_t)json_integer_value(json_object_get(info, "size"));
        json_decref(info);
        cleanup_close int fd = open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode & 0777);
        if (fd < 0) {
            sbx_make_error(err, errno, "cp: create %s", target);
            return -EX_FAIL;
        }
        if ((rc = download_file(ep, base, fd, size, err)) < 0)
            return rc;
        if (fchmod(fd, mode) < 0)
            return sbx_make_error(err, errno, "cp: chmod %s", target), -EX_FAIL;
        return 0;
    }
    json_decref(info);
    if (mkdir(target, 0700) < 0 && errno != EEXIST) {
        sbx_make_error(err, errno, "cp: mkdir %s", target);
        return -EX_FAIL;
    }
    cleanup_close int root = open(target, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (root < 0) {
        sbx_make_error(err, errno, "cp: %s", target);
        return -EX_FAIL;
    }
    cleanup_free char *q = url_escape(base);
    cleanup_free char *url = xasprintf("%s/directories/list?path=%s&depth=128", ep->base, q);
    struct http_resp r;
    if ((rc = http_request("GET", url, ep->hdrs, NULL, 0, NULL, &r, err)) < 0) {
        http_resp_free(&r);
        return rc;
    }
    if (r.status != 200 || !json_is_array(r.json)) {
        sbx_make_error(err, 0, "cp: list %s: HTTP %ld", base, r.status);
        http_resp_free(&r);
        return -EX_FAIL;
    }
    size_t plen = strlen(base), i;
    json_t *e;
    json_t *dirmodes = json_array(); /* [rel, mode] applied deepest first, at the end */
    json_array_foreach (r.json, i, e) {
        const char *p = json_string_value(json_object_get(e, "path"));
        const char *t = json_string_value(json_object_get(e, "type"));
        mode_t m = 0644;
        if (!p || !t || mode_from_api(json_object_get(e, "mode"), &m) < 0 ||
            strncmp(p, base, plen) || (plen > 1 && p[plen] != '/') ||
            !rel_ok(p + plen + (plen > 1))) {
            sbx_make_error(err, 0, "cp: refusing the listed path '%s': not below %s", p ? p : "?",
                           base);
            rc = -EX_FAIL;
            break;
        }
        const char *rel = p + plen + (plen > 1);
        if (!strcmp(t, "directory")) {
            int fd = open_beneath(root, rel, true, m, err);
            if (fd < 0) {
                rc = fd;
                break;
            }
            close(fd);
            json_array_insert_new(dirmodes, 0, json_pack("[s,i]", rel, (int)m));
        } else if (!strcmp(t, "file")) {
            int fd = open_beneath(root, rel, false, m, err);
            if (fd < 0) {
                rc = fd;
                break;
            }
            rc = download_file(ep, p, fd, (uint64_t)json_integer_value(json_object_get(e, "size")),
                               err);
            if (rc == 0 && fchmod(fd, m) < 0)
                rc = (sbx_make_error(err, errno, "cp: chmod %s", rel), -EX_FAIL);
            close(fd);
            if (rc < 0)
                break;
        } else
            fprintf(stderr, "sbx: cp: skipping %s: a %s\n", p, t);
    }
    http_resp_free(&r);
    if (rc == 0) {
        json_array_foreach (dirmodes, i, e) {
            const char *rel = json_string_value(json_array_get(e, 0));
            if (fchmodat(root, rel, (mode_t)json_integer_value(json_array_get(e, 1)),
                         AT_SYMLINK_NOFOLLOW) < 0 &&
                errno != EOPNOTSUPP) {
                rc = (sbx_make_error(err, errno, "cp: chmod %s", rel), -EX_FAIL);
                break;
            }
        }
        if (rc == 0 && fchmod(root, mode) < 0)
            rc = (sbx_make_error(err, errno, "cp: chmod %s", target), -EX_FAIL);
    }
    json_decref(dirmodes);
    return rc;
}

int
cli_cp(const char *src, const char *dst, sbx_error_t *err)
{
    cleanup_free char *sid = NULL, *spath = NULL, *did = NULL, *dpath = NULL;
    bool sr = split_remote(src, &sid, &spath), dr = split_remote(dst, &did, &dpath);
    if (sr == dr) {
        sbx_make_error(err, 0, "cp: exactly one of '%s' and '%s' must be ID:PATH", src, dst);
        return -EX_USAGE;
    }
    char *id = xstrdup(sr ? sid : did);
    struct agent_ep ep;
    int rc = api_agent(&id, &ep, err);
    free(id);
    if (rc < 0)
        return rc;
    rc = sr ? download(&ep, spath, dst, err) : upload(&ep, src, dpath, err);
    agent_ep_free(&ep);
    return rc;
}
