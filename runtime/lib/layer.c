/* The layer unpacker (layer.h): one OCI layer, a tar stream that may be gzip or zstd
 * compressed, into a directory of its own, as containerd's overlayfs snapshotter lays them out.
 *
 * The layer is untrusted and this code runs as host root.
 *
 * Containment. Every entry's parent directory is opened with openat2(RESOLVE_IN_ROOT |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV) from the layer directory, and the
 * last component is made with *at() calls on that fd that never follow a final symlink
 * (O_CREAT|O_EXCL|O_NOFOLLOW, AT_SYMLINK_NOFOLLOW, mknodat, symlinkat, linkat without
 * AT_SYMLINK_FOLLOW); metadata goes through an fd of the object itself where there is one. No
 * name in the tar, and nothing an earlier entry made (a symlink `etc` -> `/etc`), can then send a
 * write outside the directory: the kernel refuses the walk, not a check of ours. The name checks
 * below (absolute names, `..`, names through symlinks) are there to refuse such a layer with a
 * clear message; they are not what contains it.
 *
 * Why in this process and not in a separate sandbox (a helper in a user namespace that sees only
 * the layer directory): openat2 gives the same containment of the writes for one syscall per
 * entry, without a second process, an id-mapped helper or passing fds and errors back; and the
 * files still have to be owned by the sandboxes' host ids, which host root sets directly.
 *
 * Known limitation: libarchive's parsing of the layer (gzip, zstd, tar, pax headers) runs here,
 * as host root. A memory-safety bug in it that a crafted layer reaches runs as root on the host.
 * A later step can run the parse-and-write loop in a child in a user namespace (its root mapped
 * to uid_base, the layer directory its only writable place), this code unchanged inside it.
 *
 * Bounds: the uncompressed stream (max_bytes, checked as it is decompressed, so a bomb stops
 * within one block of the bound), the entries (max_entries), names (PATH_MAX; libarchive rejects
 * special headers over 1 MiB). Nothing recurses on the layer's depth. Memory grows with the
 * number of directory entries only (their times and modes are applied at the end), which the
 * stream bound bounds.
 *
 * What a layer cannot do here: forge overlay metadata (trusted.overlay.* and user.overlay.* are
 * dropped; the sandbox mounts overlayfs with userxattr, which reads the user.* ones), make device
 * nodes (skipped, counted: sandboxes get their own /dev), set capabilities that host processes
 * would honour (security.capability is rewritten to a v3 value whose rootid is the sandbox's
 * root), or own files as a host uid outside its range. Setuid files are owned by uid_base + id:
 * the directory the layers live in must not be reachable by host users (the caller's job).
 *
 * Stricter than containerd, which follows symlinks clamped to the root: an entry or hardlink
 * target whose path goes through a symlink (even one inside the layer, `lib` -> `usr/lib` then
 * `lib/x`) is refused. Layers that docker and buildkit write do not have such names (they are
 * diffs of real paths). A hardlink to a skipped device node fails as a missing target.
 *
 * Not supported: POSIX ACLs (system.posix_acl_* would need the id shift; dropped and counted) and
 * file flags (chattr). Names are taken byte for byte, pax ones that are not UTF-8 included. */
#include "layer.h"
#include "utils.h"

#include <archive.h>
#include <archive_entry.h>
#include <endian.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <locale.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#define IN_BLOCK (128 * 1024)
/* How much of an attacker-chosen name an error message shows. */
#define NAME_SHOWN 200

#define WH_PREFIX ".wh."
#define WH_META_PREFIX ".wh..wh."
#define WH_OPAQUE ".wh..wh..opq"

enum stream_fail {
    FAIL_NONE,
    FAIL_INPUT,   /* reading or decompressing the input */
    FAIL_TOO_BIG, /* max_bytes */
};

/* A directory's metadata, applied once the whole layer is written: creating entries inside it
 * changes its times, and a mode without write or search permission would stop the unpacking of
 * its children when not root. */
struct dir_fixup {
    char *path; /* normalized; "" is the layer directory */
    mode_t mode;
    uid_t uid;
    gid_t gid;
    struct timespec ts[2];
};

struct unpack {
    struct sbx_layer_opts o; /* the caller's, defaults filled in */
    int root;                /* the layer directory */
    int in_fd;
    char *inbuf;
    struct archive *in;  /* the input through gzip/zstd, as one raw stream */
    struct archive *tar; /* the tar reader, fed from `in` */
    struct sbx_sha256 *hash;
    enum stream_fail fail;
    char *in_msg; /* libarchive's message when fail == FAIL_INPUT */
    struct sbx_layer_stats st;
    char ename[NAME_SHOWN * 4 + 8]; /* the current entry's name, printable */
    /* The last parent directory opened: entries come grouped by directory. */
    char ppath[PATH_MAX];
    int pfd;
    bool pstale; /* something was removed since: ppath may now name something else */
    struct dir_fixup *fixups;
    size_t n_fixups, cap_fixups;
};

static const struct open_how dir_how = {
    /* No O_NOFOLLOW: with O_DIRECTORY it would make a symlink ENOTDIR, not the ELOOP of
     * RESOLVE_NO_SYMLINKS (which refuses it all the same). */
    .flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
    .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV,
};

/* Tar names are attacker-chosen bytes: messages show them with control characters, backquotes
 * and backslashes escaped, and cut, so that a name cannot forge lines in a log. */
static void
printable(const char *s, char *out, size_t outlen)
{
    size_t n = 0, i;
    for (i = 0; s[i] && i < NAME_SHOWN && n + 5 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '`' || c == '\\')
            n += snprintf(out + n, outlen - n, "\\x%02x", c);
        else
            out[n++] = (char)c;
    }
    if (s[i] && n + 4 < outlen)
        n += snprintf(out + n, outlen - n, "...");
    out[n] = '\0';
}

/* An error about the current entry: "layer entry `NAME`: ...", or "layer: ..." before the first
 * one. status is an errno value or 0. */
static int __attribute__((format(printf, 4, 5)))
fail(struct unpack *u, sbx_error_t *err, int status, const char *fmt, ...)
{
    va_list ap;
    char *msg = NULL;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        abort();
    va_end(ap);
    int r;
    if (u->ename[0])
        r = sbx_make_error(err, status, "layer entry `%s`: %s", u->ename, msg);
    else
        r = sbx_make_error(err, status, "layer: %s", msg);
    free(msg);
    return r;
}

/* The input, as libarchive's filters read it. */
static la_ssize_t
in_read(struct archive *a, void *data, const void **buf)
{
    struct unpack *u = data;
    ssize_t n = TEMP_FAILURE_RETRY(read(u->in_fd, u->inbuf, IN_BLOCK));
    if (n < 0) {
        archive_set_error(a, errno, "read: %s", strerror(errno));
        return -1;
    }
    u->st.in_bytes += (uint64_t)n;
    if (n > 0 && u->o.progress)
        u->o.progress(u->st.in_bytes, u->o.progress_data);
    *buf = u->inbuf;
    return n;
}

/* The next piece of the uncompressed stream. Every byte passes here once, whoever reads it (the
 * tar reader, or the drain after the end of the archive), so this is where it is hashed and
 * bounded. Returns its size, 0 at the end, -1 on failure (u->fail says which). */
static ssize_t
stream_next(struct unpack *u, const void **buf)
{
    for (;;) {
        size_t size = 0;
        la_int64_t off;
        int r = archive_read_data_block(u->in, buf, &size, &off);
        if (r == ARCHIVE_EOF)
            return 0;
        if (r != ARCHIVE_OK) {
            const char *m = archive_error_string(u->in);
            free(u->in_msg);
            u->in_msg = xstrdup(m ? m : "unknown error");
            u->fail = FAIL_INPUT;
            return -1;
        }
        if (size == 0)
            continue;
        if (size > u->o.max_bytes - u->st.bytes) {
            u->fail = FAIL_TOO_BIG;
            return -1;
        }
        u->st.bytes += size;
        sbx_sha256_update(u->hash, *buf, size);
        return (ssize_t)size;
    }
}

static la_ssize_t
tar_read(struct archive *a, void *data, const void **buf)
{
    struct unpack *u = data;
    ssize_t n = stream_next(u, buf);
    if (n < 0)
        archive_set_error(a, EIO, "input failed");
    return n;
}

/* A failure of the stream or of the tar reader, as the caller should read it. */
static int
stream_error(struct unpack *u, const char *doing, sbx_error_t *err)
{
    if (u->fail == FAIL_TOO_BIG)
        return fail(u, err, EFBIG,
                    "the uncompressed layer is larger than max_bytes (%" PRIu64 " bytes)",
                    u->o.max_bytes);
    if (u->fail == FAIL_INPUT)
        return fail(u, err, 0, "reading or decompressing the layer: %s", u->in_msg);
    const char *m = archive_error_string(u->tar);
    return fail(u, err, 0, "%s: %s", doing, m ? m : "unknown error");
}

static void
drop_parent(struct unpack *u)
{
    if (u->pfd >= 0)
        close(u->pfd);
    u->pfd = -1;
    u->pstale = false;
}

/* Opens a directory of the layer (path normalized, "" for the layer directory itself). */
static int
open_dir(int at, const char *path)
{
    return openat2_retry(at, path[0] ? path : ".", &dir_how);
}

static int
resolve_error(struct unpack *u, int e, const char *what, sbx_error_t *err)
{
    switch (e) {
    case ELOOP: return fail(u, err, 0, "%sgoes through a symlink", what);
    case ENOTDIR: return fail(u, err, 0, "%sgoes through something that is not a directory", what);
    case EXDEV: return fail(u, err, 0, "%scrosses a mount point", what);
    default: return fail(u, err, e, "%sopening its directory", what);
    }
}

static uint32_t
map_id(struct unpack *u, la_int64_t id, uint32_t base)
{
    if (id < 0 || id >= SBX_LAYER_ID_COUNT) {
        u->st.unmapped_ids++;
        id = SBX_LAYER_ID_NOBODY;
    }
    return base + (uint32_t)id;
}

/* chown before chmod: chown clears the setuid and setgid bits. */
static int
set_owner_mode(struct unpack *u, int fd, uid_t uid, gid_t gid, mode_t mode)
{
    if (!u->o.rootless && fchown(fd, uid, gid) < 0)
        return -errno;
    if (fchmod(fd, mode & 07777) < 0)
        return -errno;
    return 0;
}

/* Opens path's parent directory inside the layer, making what is missing of it (0755, owned by
 * the sandbox's root), one component at a time, each opened with the same resolve flags from
 * the one before. The fd belongs to the cache: not to be closed. */
static int
parent_fd(struct unpack *u, const char *parent, sbx_error_t *err)
{
    if (u->pfd >= 0 && !u->pstale && strcmp(u->ppath, parent) == 0)
        return u->pfd;
    drop_parent(u);
    int fd = open_dir(u->root, parent);
    if (fd < 0 && errno == ENOENT) {
        cleanup_close int cur = open_dir(u->root, "");
        if (cur < 0)
            return fail(u, err, errno, "opening the layer directory");
        char comp[PATH_MAX];
        const char *p = parent;
        while (*p) {
            const char *slash = strchr(p, '/');
            size_t len = slash ? (size_t)(slash - p) : strlen(p);
            memcpy(comp, p, len);
            comp[len] = '\0';
            p += len + (slash != NULL);
            int next = openat2_retry(cur, comp, &dir_how);
            if (next < 0 && errno == ENOENT) {
                if (mkdirat(cur, comp, 0755) < 0)
                    return fail(u, err, errno, "making its directory `%s`", comp);
                next = openat2_retry(cur, comp, &dir_how);
                if (next >= 0 && set_owner_mode(u, next, u->o.uid_base, u->o.gid_base, 0755) < 0) {
                    int e = errno;
                    close(next);
                    return fail(u, err, e, "setting the owner of its directory `%s`", comp);
                }
            }
            if (next < 0)
                return resolve_error(u, errno, "", err);
            close(cur);
            cur = next;
        }
        fd = get_and_reset_fd(&cur);
    }
    if (fd < 0)
        return resolve_error(u, errno, "", err);
    u->pfd = fd;
    snprintf(u->ppath, sizeof(u->ppath), "%s", parent);
    return fd;
}

/* Normalizes a tar name into out: no empty or "." components, no leading "./" or trailing "/";
 * "" is the layer directory. Refuses absolute names and "..". */
static int
normalize(struct unpack *u, const char *name, char out[PATH_MAX], const char *what,
          sbx_error_t *err)
{
    char shown[NAME_SHOWN * 4 + 8];
    printable(name, shown, sizeof(shown));
    if (strlen(name) >= PATH_MAX)
        return fail(u, err, 0, "%slonger than PATH_MAX (%d)", what, PATH_MAX);
    if (name[0] == '/')
        return fail(u, err, 0, "%s`%s` is absolute", what, shown);
    size_t n = 0;
    const char *p = name;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.')
            return fail(u, err, 0, "%s`%s` has a `..` component", what, shown);
        if (len > 0 && !(len == 1 && p[0] == '.')) {
            if (n > 0)
                out[n++] = '/';
            memcpy(out + n, p, len);
            n += len;
        }
        p += len + (slash != NULL);
    }
    out[n] = '\0';
    return 0;
}

/* Splits a normalized, non-empty path into its parent (into buf) and last component. */
static const char *
split(const char *path, char parent[PATH_MAX])
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        parent[0] = '\0';
        return path;
    }
    memcpy(parent, path, (size_t)(slash - path));
    parent[slash - path] = '\0';
    return slash + 1;
}

/* What an earlier entry of this layer left at dir/base. */
enum slot {
    SLOT_FREE,     /* nothing (any was removed) */
    SLOT_DIR,      /* a directory, kept: the new entry is one too */
    SLOT_WHITEOUT, /* was a whiteout, removed */
};

/* Makes room for a new entry at dir/base: a later entry replaces an earlier one of the same
 * name, unless both are directories (then only the metadata changes). A non-empty directory is
 * not removed: that would need a recursive removal driven by the layer, and tars do not do it. */
static int
clear_slot(struct unpack *u, int dir, const char *base, bool new_is_dir, sbx_error_t *err)
{
    struct stat st;
    if (fstatat(dir, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return SLOT_FREE;
        return fail(u, err, errno, "stat");
    }
    if (new_is_dir && S_ISDIR(st.st_mode))
        return SLOT_DIR;
    if (unlinkat(dir, base, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0) {
        if (errno == ENOTEMPTY || errno == EEXIST)
            return fail(u, err, 0, "replaces a directory that is not empty");
        return fail(u, err, errno, "removing what an earlier entry made");
    }
    u->pstale = true;
    bool wh = S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
    return wh ? SLOT_WHITEOUT : SLOT_FREE;
}

static void
entry_times(struct archive_entry *e, struct timespec ts[2])
{
    if (!archive_entry_mtime_is_set(e)) {
        ts[0].tv_nsec = ts[1].tv_nsec = UTIME_OMIT;
        ts[0].tv_sec = ts[1].tv_sec = 0;
        return;
    }
    ts[1].tv_sec = archive_entry_mtime(e);
    ts[1].tv_nsec = archive_entry_mtime_nsec(e);
    if (archive_entry_atime_is_set(e)) {
        ts[0].tv_sec = archive_entry_atime(e);
        ts[0].tv_nsec = archive_entry_atime_nsec(e);
    } else {
        ts[0] = ts[1];
    }
}

/* Rewrites a security.capability value from the image (revision 1 or 2: capabilities for
 * whoever runs the file, host root's meaning when host root writes it; or 3 with a rootid in
 * the image's ids) to revision 3 with the sandbox's root as rootid: the kernel then grants them
 * inside the sandbox's user namespace only, and never to a host process. Refuses malformed
 * values. */
static int
rewrite_cap(struct unpack *u, const void *value, size_t size, struct vfs_ns_cap_data *out)
{
    struct vfs_ns_cap_data in;
    if (size < sizeof(in.magic_etc) || size > sizeof(in))
        return -1;
    memset(&in, 0, sizeof(in));
    memcpy(&in, value, size);
    uint32_t magic = le32toh(in.magic_etc);
    uint32_t flags = magic & ~VFS_CAP_REVISION_MASK;
    if (flags & ~(uint32_t)VFS_CAP_FLAGS_EFFECTIVE)
        return -1;
    int64_t rootid = 0;
    switch (magic & VFS_CAP_REVISION_MASK) {
    case VFS_CAP_REVISION_1:
        if (size != XATTR_CAPS_SZ_1)
            return -1;
        break;
    case VFS_CAP_REVISION_2:
        if (size != XATTR_CAPS_SZ_2)
            return -1;
        break;
    case VFS_CAP_REVISION_3:
        if (size != XATTR_CAPS_SZ_3)
            return -1;
        rootid = le32toh(in.rootid);
        if (rootid >= SBX_LAYER_ID_COUNT)
            return -1;
        break;
    default: return -1;
    }
    memset(out, 0, sizeof(*out));
    out->magic_etc = htole32(VFS_CAP_REVISION_3 | flags);
    memcpy(out->data, in.data, sizeof(out->data));
    out->rootid = htole32(u->o.uid_base + (uint32_t)rootid);
    return 0;
}

/* The entry's xattrs onto fd (a regular file or a directory): user.* and trusted.* are kept but
 * the overlay's own, security.capability is rewritten (regular files), the rest is dropped. */
static int
set_xattrs(struct unpack *u, int fd, struct archive_entry *e, bool regular, sbx_error_t *err)
{
    const char *name;
    const void *value;
    size_t size;
    archive_entry_xattr_reset(e);
    while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
        bool keep;
        struct vfs_ns_cap_data cap;
        if (strncmp(name, "user.", 5) == 0)
            keep = strncmp(name, "user.overlay.", 13) != 0;
        else if (strncmp(name, "trusted.", 8) == 0)
            keep = !u->o.rootless && strncmp(name, "trusted.overlay.", 16) != 0;
        else if (strcmp(name, "security.capability") == 0 && regular && !u->o.rootless) {
            if (rewrite_cap(u, value, size, &cap) < 0)
                return fail(u, err, 0, "malformed security.capability (%zu bytes)", size);
            value = &cap;
            size = sizeof(cap);
            keep = true;
        } else {
            keep = false;
        }
        if (!keep) {
            u->st.dropped_xattrs++;
            continue;
        }
        if (fsetxattr(fd, name, value, size, 0) < 0) {
            char shown[NAME_SHOWN * 4 + 8];
            printable(name, shown, sizeof(shown));
            return fail(u, err, errno, "setting xattr `%s`", shown);
        }
    }
    return 0;
}

static void
drop_xattrs(struct unpack *u, struct archive_entry *e)
{
    u->st.dropped_xattrs += (uint64_t)archive_entry_xattr_count(e);
}

static int
add_fixup(struct unpack *u, const char *path, struct archive_entry *e)
{
    if (u->n_fixups == u->cap_fixups) {
        u->cap_fixups = u->cap_fixups ? u->cap_fixups * 2 : 64;
        u->fixups = xrealloc(u->fixups, u->cap_fixups * sizeof(*u->fixups));
    }
    struct dir_fixup *f = &u->fixups[u->n_fixups++];
    f->path = xstrdup(path);
    f->mode = archive_entry_perm(e);
    f->uid = map_id(u, archive_entry_uid(e), u->o.uid_base);
    f->gid = map_id(u, archive_entry_gid(e), u->o.gid_base);
    entry_times(e, f->ts);
    return 0;
}

/* Marks a directory opaque: the lower layers' contents of it are hidden. Both xattrs: host
 * overlayfs mounts read trusted.overlay.*, the sandbox's mount in its user namespace (userxattr)
 * the user.overlay.* one. */
static int
set_opaque(struct unpack *u, int dir, sbx_error_t *err)
{
    if (!u->o.rootless && fsetxattr(dir, "trusted.overlay.opaque", "y", 1, 0) < 0)
        return fail(u, err, errno, "setting trusted.overlay.opaque");
    if (fsetxattr(dir, "user.overlay.opaque", "y", 1, 0) < 0)
        return fail(u, err, errno, "setting user.overlay.opaque");
    u->st.opaque_dirs++;
    return 0;
}

static int
make_dir(struct unpack *u, const char *path, int dir, const char *base, struct archive_entry *e,
         sbx_error_t *err)
{
    int slot = clear_slot(u, dir, base, true, err);
    if (slot < 0)
        return slot;
    /* 0700 until the end: see struct dir_fixup. */
    if (slot != SLOT_DIR && mkdirat(dir, base, 0700) < 0)
        return fail(u, err, errno, "mkdir");
    cleanup_close int fd = openat(dir, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return fail(u, err, errno, "opening the directory");
    int r = set_xattrs(u, fd, e, false, err);
    if (r < 0)
        return r;
    /* `.wh.d` then `d/` in one layer: d was deleted from the lower layers and made anew, so
     * their d must not show through. */
    if (slot == SLOT_WHITEOUT && (r = set_opaque(u, fd, err)) < 0)
        return r;
    return add_fixup(u, path, e);
}

static int
pwrite_all(int fd, const char *buf, size_t len, off_t off)
{
    while (len > 0) {
        ssize_t n = TEMP_FAILURE_RETRY(pwrite(fd, buf, len, off));
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO;
        buf += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

static int
make_file(struct unpack *u, int dir, const char *base, struct archive_entry *e, sbx_error_t *err)
{
    int r = clear_slot(u, dir, base, false, err);
    if (r < 0)
        return r;
    cleanup_close int fd =
        openat(dir, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return fail(u, err, errno, "creating the file");
    /* Sparse files (pax/GNU sparse maps) come as blocks at offsets: the gaps stay holes. */
    int64_t end = 0;
    for (;;) {
        const void *buf;
        size_t size;
        la_int64_t off;
        r = archive_read_data_block(u->tar, &buf, &size, &off);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK)
            return stream_error(u, "reading its data", err);
        if (off < 0 || (uint64_t)off > (uint64_t)INT64_MAX - size)
            return fail(u, err, 0, "data at a bad offset");
        if ((r = pwrite_all(fd, buf, size, off)) < 0)
            return fail(u, err, -r, "writing");
        if (off + (int64_t)size > end)
            end = off + (int64_t)size;
    }
    if (archive_entry_size_is_set(e) && archive_entry_size(e) > end &&
        ftruncate(fd, archive_entry_size(e)) < 0)
        return fail(u, err, errno, "setting the size");
    uid_t uid = map_id(u, archive_entry_uid(e), u->o.uid_base);
    gid_t gid = map_id(u, archive_entry_gid(e), u->o.gid_base);
    if (set_owner_mode(u, fd, uid, gid, archive_entry_perm(e)) < 0)
        return fail(u, err, errno, "setting owner and mode");
    /* After the chown, which clears security.capability. */
    if ((r = set_xattrs(u, fd, e, true, err)) < 0)
        return r;
    struct timespec ts[2];
    entry_times(e, ts);
    if (futimens(fd, ts) < 0)
        return fail(u, err, errno, "setting times");
    return 0;
}

static int
make_symlink(struct unpack *u, int dir, const char *base, struct archive_entry *e, sbx_error_t *err)
{
    /* The target is only data here: it is resolved later, inside the sandbox's root. */
    const char *target = archive_entry_symlink(e);
    if (target == NULL || target[0] == '\0')
        return fail(u, err, 0, "symlink without a target");
    if (strlen(target) >= PATH_MAX)
        return fail(u, err, 0, "symlink target longer than PATH_MAX (%d)", PATH_MAX);
    int r = clear_slot(u, dir, base, false, err);
    if (r < 0)
        return r;
    if (symlinkat(target, dir, base) < 0)
        return fail(u, err, errno, "symlink");
    uid_t uid = map_id(u, archive_entry_uid(e), u->o.uid_base);
    gid_t gid = map_id(u, archive_entry_gid(e), u->o.gid_base);
    if (!u->o.rootless && fchownat(dir, base, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
        return fail(u, err, errno, "setting the symlink's owner");
    struct timespec ts[2];
    entry_times(e, ts);
    if (utimensat(dir, base, ts, AT_SYMLINK_NOFOLLOW) < 0)
        return fail(u, err, errno, "setting the symlink's times");
    /* user.* cannot be set on symlinks, and nothing else is worth keeping there. */
    drop_xattrs(u, e);
    return 0;
}

static int
make_fifo(struct unpack *u, int dir, const char *base, struct archive_entry *e, sbx_error_t *err)
{
    int r = clear_slot(u, dir, base, false, err);
    if (r < 0)
        return r;
    if (mknodat(dir, base, S_IFIFO | 0600, 0) < 0)
        return fail(u, err, errno, "mkfifo");
    /* O_NONBLOCK: opening a FIFO for reading does not wait for a writer then. */
    cleanup_close int fd = openat(dir, base, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return fail(u, err, errno, "opening the FIFO");
    uid_t uid = map_id(u, archive_entry_uid(e), u->o.uid_base);
    gid_t gid = map_id(u, archive_entry_gid(e), u->o.gid_base);
    if (set_owner_mode(u, fd, uid, gid, archive_entry_perm(e)) < 0)
        return fail(u, err, errno, "setting owner and mode");
    struct timespec ts[2];
    entry_times(e, ts);
    if (futimens(fd, ts) < 0)
        return fail(u, err, errno, "setting times");
    drop_xattrs(u, e);
    return 0;
}

/* A hardlink to an earlier entry of this layer. The target is resolved like a parent (same
 * flags, nothing made); linkat does not follow a final symlink (it links the symlink). */
static int
make_hardlink(struct unpack *u, const char *path, const char *parent, const char *base,
              const char *link, sbx_error_t *err)
{
    char tpath[PATH_MAX], tparent[PATH_MAX], tshown[NAME_SHOWN * 4 + 8];
    int r = normalize(u, link, tpath, "hardlink target ", err);
    if (r < 0)
        return r;
    printable(tpath, tshown, sizeof(tshown));
    if (tpath[0] == '\0')
        return fail(u, err, 0, "hardlink to the layer's root");
    if (strcmp(tpath, path) == 0)
        return fail(u, err, 0, "hardlink to itself");
    const char *tbase = split(tpath, tparent);
    cleanup_close int tdir = open_dir(u->root, tparent);
    if (tdir < 0 && errno == ENOENT)
        return fail(u, err, 0, "hardlink target `%s` does not exist in this layer", tshown);
    if (tdir < 0) {
        char what[sizeof(tshown) + 32];
        snprintf(what, sizeof(what), "hardlink target `%s` ", tshown);
        return resolve_error(u, errno, what, err);
    }
    struct stat st;
    if (fstatat(tdir, tbase, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return fail(u, err, 0, "hardlink target `%s` does not exist in this layer", tshown);
        return fail(u, err, errno, "hardlink target `%s`", tshown);
    }
    if (S_ISDIR(st.st_mode))
        return fail(u, err, 0, "hardlink target `%s` is a directory", tshown);
    int dir = parent_fd(u, parent, err);
    if (dir < 0)
        return dir;
    if ((r = clear_slot(u, dir, base, false, err)) < 0)
        return r;
    if (linkat(tdir, tbase, dir, base, 0) < 0)
        return fail(u, err, errno, "hardlink to `%s`", tshown);
    return 0;
}

/* DIR/.wh.NAME: NAME is deleted from the lower layers, an overlayfs whiteout (a 0/0 character
 * device). Whiteouts apply to the lower layers only: when this layer has NAME already, that
 * entry stays (it hides the lower one by itself), a directory made opaque. */
static int
make_whiteout(struct unpack *u, const char *parent, const char *name, struct archive_entry *e,
              sbx_error_t *err)
{
    if (name[0] == '\0')
        return fail(u, err, 0, "whiteout without a name");
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return fail(u, err, 0, "whiteout of `%s`", name);
    int dir = parent_fd(u, parent, err);
    if (dir < 0)
        return dir;
    struct stat st;
    if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (!S_ISDIR(st.st_mode))
            return 0;
        cleanup_close int fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return fail(u, err, errno, "opening the directory it whites out");
        return set_opaque(u, fd, err);
    }
    if (errno != ENOENT)
        return fail(u, err, errno, "stat");
    if (mknodat(dir, name, S_IFCHR, makedev(0, 0)) < 0)
        return fail(u, err, errno, "making the whiteout");
    uid_t uid = map_id(u, archive_entry_uid(e), u->o.uid_base);
    gid_t gid = map_id(u, archive_entry_gid(e), u->o.gid_base);
    if (!u->o.rootless && fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
        return fail(u, err, errno, "setting the whiteout's owner");
    u->st.whiteouts++;
    return 0;
}

/* AUFS metadata (.wh..wh.plnk, .wh..wh.aufs and what is below them): not for overlayfs. */
static bool
is_aufs_meta(const char *path)
{
    for (const char *p = path; p; p = strchr(p, '/'), p = p ? p + 1 : NULL)
        if (strncmp(p, WH_META_PREFIX, strlen(WH_META_PREFIX)) == 0 &&
            strncmp(p, WH_OPAQUE, strlen(WH_OPAQUE)) != 0)
            return true;
    return false;
}

static int
unpack_entry(struct unpack *u, struct archive_entry *e, sbx_error_t *err)
{
    const char *name = archive_entry_pathname(e);
    if (name == NULL) {
        snprintf(u->ename, sizeof(u->ename), "#%" PRIu64, u->st.entries);
        return fail(u, err, 0, "no usable name");
    }
    printable(name, u->ename, sizeof(u->ename));
    if (u->st.entries > u->o.max_entries)
        return fail(u, err, 0, "more than max_entries (%" PRIu64 ") entries", u->o.max_entries);
    char path[PATH_MAX], parent[PATH_MAX];
    int r = normalize(u, name, path, "name ", err);
    if (r < 0)
        return r;
    const char *link = archive_entry_hardlink(e);
    mode_t type = archive_entry_filetype(e);
    if (path[0] == '\0') {
        /* ".": the layer directory's own metadata. */
        if (link != NULL || type != AE_IFDIR)
            return fail(u, err, 0, "the layer's root is not a directory");
        if ((r = set_xattrs(u, u->root, e, false, err)) < 0)
            return r;
        return add_fixup(u, "", e);
    }
    const char *base = split(path, parent);
    if (is_aufs_meta(path)) {
        u->st.skipped_other++;
        return 0;
    }
    if (strcmp(base, WH_OPAQUE) == 0) {
        int dir = parent_fd(u, parent, err);
        return dir < 0 ? dir : set_opaque(u, dir, err);
    }
    if (strncmp(base, WH_PREFIX, strlen(WH_PREFIX)) == 0)
        return make_whiteout(u, parent, base + strlen(WH_PREFIX), e, err);
    if (link != NULL)
        return make_hardlink(u, path, parent, base, link, err);
    if (type == AE_IFCHR || type == AE_IFBLK) {
        u->st.skipped_devices++;
        return 0;
    }
    if (type == AE_IFSOCK) {
        u->st.skipped_other++;
        return 0;
    }
    int dir = parent_fd(u, parent, err);
    if (dir < 0)
        return dir;
    switch (type) {
    case AE_IFDIR: return make_dir(u, path, dir, base, e, err);
    case AE_IFREG: return make_file(u, dir, base, e, err);
    case AE_IFLNK: return make_symlink(u, dir, base, e, err);
    case AE_IFIFO: return make_fifo(u, dir, base, e, err);
    default: return fail(u, err, 0, "unknown file type 0%o", (unsigned)type);
    }
}

/* The directories' modes, owners and times, now that nothing more is made inside them. Each is
 * opened again the safe way: a later entry may have replaced it (then it is skipped). */
static int
apply_fixups(struct unpack *u, sbx_error_t *err)
{
    for (size_t i = 0; i < u->n_fixups; i++) {
        struct dir_fixup *f = &u->fixups[i];
        printable(f->path[0] ? f->path : ".", u->ename, sizeof(u->ename));
        cleanup_close int fd = open_dir(u->root, f->path);
        if (fd < 0 && (errno == ENOENT || errno == ENOTDIR || errno == ELOOP))
            continue;
        if (fd < 0)
            return resolve_error(u, errno, "", err);
        if (set_owner_mode(u, fd, f->uid, f->gid, f->mode) < 0)
            return fail(u, err, errno, "setting owner and mode");
        if (futimens(fd, f->ts) < 0)
            return fail(u, err, errno, "setting times");
    }
    return 0;
}

static bool
is_conversion_warning(struct archive *a)
{
    /* libarchive keeps the raw bytes of a pax name that is not valid UTF-8 and warns "Pathname
     * can't be converted from UTF-8 to current locale.": the name is usable as it is. Every other
     * warning (malformed pax records, too many special headers) leaves the entry unreliable. */
    const char *m = archive_error_string(a);
    return m != NULL && strstr(m, "can't be converted") != NULL;
}

static int
check_empty(struct unpack *u, sbx_error_t *err)
{
    int fd = openat(u->root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return fail(u, err, errno, "opening the layer directory");
    cleanup_dir DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return fail(u, err, errno, "opening the layer directory");
    }
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            return fail(u, err, ENOTEMPTY, "the layer directory");
    return 0;
}

static int
run(struct unpack *u, char diff_id[SBX_DIGEST_LEN + 1], sbx_error_t *err)
{
    int r = check_empty(u, err);
    if (r < 0)
        return r;

    /* Two readers: `in` undoes the compression and yields the tar stream as one raw entry,
     * which stream_next() hashes (the diff_id is the digest of exactly these bytes) and bounds as
     * it hands it to `tar`. gzip and zstd only: the layer media types name no other. */
    u->in = archive_read_new();
    u->tar = archive_read_new();
    if (u->in == NULL || u->tar == NULL)
        abort();
    /* ARCHIVE_WARN: the library lacks the codec and would run the external program. */
    if (archive_read_support_filter_gzip(u->in) < ARCHIVE_WARN ||
        archive_read_support_filter_zstd(u->in) < ARCHIVE_WARN ||
        archive_read_support_format_raw(u->in) != ARCHIVE_OK ||
        archive_read_support_format_tar(u->tar) != ARCHIVE_OK)
        return fail(u, err, 0, "libarchive: %s", archive_error_string(u->in));
    struct archive_entry *e;
    /* libarchive reads ahead to choose the filters and the format as it opens. */
    r = archive_read_open(u->in, u, NULL, in_read, NULL);
    if (r == ARCHIVE_OK)
        r = archive_read_next_header(u->in, &e);
    if (r != ARCHIVE_OK) {
        if (u->st.in_bytes == 0)
            return fail(u, err, 0, "the layer is empty");
        const char *m = archive_error_string(u->in);
        return fail(u, err, 0, "reading the layer: %s", m ? m : "unknown error");
    }
    if (archive_read_open(u->tar, u, NULL, tar_read, NULL) != ARCHIVE_OK)
        return stream_error(u, "not a tar archive (uncompressed, gzip or zstd)", err);

    for (;;) {
        r = archive_read_next_header(u->tar, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK && !(r == ARCHIVE_WARN && is_conversion_warning(u->tar))) {
            if (u->st.entries == 0 && u->fail == FAIL_NONE)
                return stream_error(u, "not a tar archive (uncompressed, gzip or zstd)", err);
            char doing[sizeof(u->ename) + 32];
            snprintf(doing, sizeof(doing), "the entry after `%s`", u->ename);
            u->ename[0] = '\0';
            return stream_error(u, doing, err);
        }
        u->st.entries++;
        if ((r = unpack_entry(u, e, err)) < 0)
            return r;
    }
    /* What follows the end-of-archive blocks (the rest of the last record) is part of the
     * stream the diff_id is computed over. */
    u->ename[0] = '\0';
    const void *buf;
    ssize_t n;
    while ((n = stream_next(u, &buf)) > 0)
        ;
    if (n < 0)
        return stream_error(u, "reading the end of the layer", err);

    if ((r = apply_fixups(u, err)) < 0)
        return r;
    sbx_sha256_final(u->hash, diff_id);
    u->hash = NULL;
    return 0;
}

int
sbx_layer_unpack(int fd, int dirfd, const struct sbx_layer_opts *o,
                 char diff_id[SBX_DIGEST_LEN + 1], struct sbx_layer_stats *st, sbx_error_t *err)
{
    struct unpack u = {.in_fd = fd, .root = -1, .pfd = -1};
    if (o)
        u.o = *o;
    if (u.o.max_bytes == 0)
        u.o.max_bytes = SBX_LAYER_MAX_BYTES_DEFAULT;
    if (u.o.max_entries == 0)
        u.o.max_entries = SBX_LAYER_MAX_ENTRIES_DEFAULT;
    if (u.o.rootless) {
        if (geteuid() == 0)
            return sbx_make_error(err, EINVAL,
                                  "layer: rootless unpacking as root would leave "
                                  "setuid files owned by host root");
        u.o.uid_base = u.o.gid_base = 0;
    }
    /* The highest id made must be a valid one, not (uid_t)-1 or a wrap-around. */
    if (u.o.uid_base > UINT32_MAX - SBX_LAYER_ID_COUNT ||
        u.o.gid_base > UINT32_MAX - SBX_LAYER_ID_COUNT)
        return sbx_make_error(err, EINVAL, "layer: uid_base or gid_base out of range");
    u.root = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (u.root < 0)
        return sbx_make_error(err, errno, "layer: opening the layer directory");
    u.inbuf = xmalloc0(IN_BLOCK);
    u.hash = sbx_sha256_new();

    /* pax names are UTF-8, which libarchive converts to the locale's charset: with the C locale
     * of a daemon every non-ASCII name would warn. UTF-8 for this thread, for the duration. */
    locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    locale_t old = utf8 ? uselocale(utf8) : (locale_t)0;

    int r = run(&u, diff_id, err);

    if (u.tar)
        archive_read_free(u.tar);
    if (u.in)
        archive_read_free(u.in);
    if (utf8) {
        uselocale(old);
        freelocale(utf8);
    }
    sbx_sha256_free(u.hash);
    drop_parent(&u);
    close(u.root);
    free(u.inbuf);
    free(u.in_msg);
    for (size_t i = 0; i < u.n_fixups; i++)
        free(u.fixups[i].path);
    free(u.fixups);
    if (st)
        *st = u.st;
    return r;
}
