/* Named volumes and beneath-root resolution (see volume.h). */
#include "volume.h"
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>

bool
sbx_volume_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > SBX_VOLUME_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = name[i];
        if (!(islower(c) || isdigit(c) || (c == '-' && i > 0 && i < n - 1)))
            return false;
    }
    return true;
}

int
sbx_open_beneath(int rootfd, const char *rel)
{
    /* RESOLVE_BENEATH, not IN_ROOT: an absolute symlink or a ".." that climbs out is an error
     * (EXDEV) rather than silently re-rooted, so a volume whose content points elsewhere is
     * refused instead of mounting something the client did not name. */
    struct open_how how = {.flags = O_PATH | O_CLOEXEC,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    int fd = openat2_retry(rootfd, rel && *rel ? rel : ".", &how);
    return fd < 0 ? -errno : fd;
}

int
sbx_resolve_beneath(const char *root, const char *rel, struct stat *st, sbx_error_t *err)
{
    cleanup_close int rfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rfd < 0)
        return sbx_make_error(err, errno, "volume root `%s`", root);
    int fd = sbx_open_beneath(rfd, rel);
    if (fd == -EXDEV || fd == -ELOOP)
        return sbx_make_error(err, -fd, "`%s` leads out of `%s` (a symlink or `..`)", rel, root);
    if (fd < 0)
        return sbx_make_error(err, -fd, "`%s` below `%s`", rel, root);
    if (fstat(fd, st) < 0) {
        int e = errno;
        close(fd);
        return sbx_make_error(err, e, "stat `%s` below `%s`", rel, root);
    }
    return fd;
}

char *
sbx_volumes_dir(const char *flag)
{
    const char *env = getenv("SBX_VOLUMES_DIR");
    if (flag && *flag)
        return xstrdup(flag);
    return xstrdup(env && *env ? env : SBX_DEFAULT_VOLUMES_DIR);
}

void
sbx_volume_owner(uid_t *uid, gid_t *gid)
{
    uint32_t ub, gb, n;
    sbx_host_id_base(false, &ub, &n);
    sbx_host_id_base(true, &gb, &n);
    *uid = ub + SBX_DEFAULT_UID;
    *gid = gb + SBX_DEFAULT_GID;
}

int
sbx_volume_create(const char *dir, const char *name, bool *created, sbx_error_t *err)
{
    *created = false;
    if (!sbx_volume_name_ok(name))
        return sbx_make_error(err, EINVAL,
                              "volume name `%s` is not a DNS label (a-z, 0-9, '-', at most %d)",
                              name, SBX_VOLUME_NAME_MAX);
    /* 0711: sandboxes' (id-mapped) roots must traverse it to reach their volume at mount time,
     * but may not list the others. */
    int r = mkdir_p(dir, 0711, err);
    if (r < 0)
        return r;
    cleanup_close int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return sbx_make_error(err, errno, "volumes directory `%s`", dir);
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (!S_ISDIR(st.st_mode))
            return sbx_make_error(err, EEXIST, "`%s/%s` exists and is not a directory", dir, name);
        return 0;
    }
    char hex[17], tmp[96];
    random_hex(hex, 16);
    snprintf(tmp, sizeof(tmp), ".new-%s-%s", name, hex);
    if (mkdirat(dfd, tmp, 0775) < 0)
        return sbx_make_error(err, errno, "mkdir `%s/%s`", dir, tmp);
    uid_t uid;
    gid_t gid;
    sbx_volume_owner(&uid, &gid);
    /* The mode again: the umask may have taken group write. */
    if (fchownat(dfd, tmp, uid, gid, AT_SYMLINK_NOFOLLOW) < 0 || fchmodat(dfd, tmp, 0775, 0) < 0) {
        int e = errno;
        unlinkat(dfd, tmp, AT_REMOVEDIR);
        return sbx_make_error(err, e, "chown `%s/%s`", dir, tmp);
    }
    if (renameat2(dfd, tmp, dfd, name, RENAME_NOREPLACE) < 0) {
        int e = errno;
        unlinkat(dfd, tmp, AT_REMOVEDIR);
        if (e == EEXIST) /* made by someone else meanwhile */
            return 0;
        return sbx_make_error(err, e, "rename `%s/%s`", dir, name);
    }
    *created = true;
    return 0;
}

int
sbx_volume_exists(const char *dir, const char *name)
{
    if (!sbx_volume_name_ok(name))
        return 0;
    cleanup_free char *p = xasprintf("%s/%s", dir, name);
    struct stat st;
    return lstat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int
sbx_volume_remove(const char *dir, const char *name, sbx_error_t *err)
{
    if (!sbx_volume_name_ok(name))
        return sbx_make_error(err, EINVAL, "volume name `%s` is not a DNS label", name);
    cleanup_free char *p = xasprintf("%s/%s", dir, name);
    /* rm_rf never follows a symlink and stays on one file system: a volume's content is
     * written by sandboxes. */
    return rm_rf(p, err);
}

static int
cmp_name(const void *a, const void *b)
{
    return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "name")),
                  json_string_value(json_object_get(*(json_t *const *)b, "name")));
}

json_t *
sbx_volume_list(const char *dir)
{
    json_t *arr = json_array();
    cleanup_dir DIR *d = opendir(dir);
    struct dirent *de;
    size_t n = 0, cap = 0;
    json_t **v = NULL;
    while (d && (de = readdir(d))) {
        struct stat st;
        if (!sbx_volume_name_ok(de->d_name) ||
            fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
            continue;
        if (n == cap)
            v = xrealloc(v, (cap = cap ? cap * 2 : 16) * sizeof(*v));
        v[n++] = json_pack("{s:s}", "name", de->d_name);
    }
    if (n)
        qsort(v, n, sizeof(*v), cmp_name);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, v[i]);
    free(v);
    return arr;
}
