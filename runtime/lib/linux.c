#include "linux.h"
#include "volume.h"
#include "caps.h"
#include "cgroup.h"
#include "sysctl.h"
#include "utils.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <sched.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <termios.h>
#include "container.h"
#include <sys/syscall.h>
#include <sys/wait.h>
#include <net/if.h>
#include <sys/ioctl.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* The scratch root: a tmpfs that holds the overlay's upper/work dirs and the mount point of the
 * new root. It lives only in the sandbox's mount namespace, so it vanishes with the sandbox and
 * nothing is ever left on the host's disk. */
#define SCRATCH "/tmp"
#define OLDROOT "/oldroot"
#define NEWROOT "/newroot"

static __attribute__((noreturn)) void
child_fail(struct sbx_child_ctx *c, int e, const char *fmt, ...)
{
    char buf[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (e)
        sbx_sync_send(c->sync_fd, SYNC_ERROR, e, "%s: %s", buf, strerror(e));
    else
        sbx_sync_send(c->sync_fd, SYNC_ERROR, 0, "%s", buf);
    _exit(125);
}

/* Flags a remount must keep: in a user namespace the kernel refuses (EPERM) to clear nodev, nosuid,
 * noexec or atime flags that were set on the mount when it was inherited ("locked" flags). */
static unsigned long
locked_flags(const char *path)
{
    struct statvfs sv;
    unsigned long f = 0;
    if (statvfs(path, &sv) < 0)
        return 0;
    if (sv.f_flag & ST_NOSUID)
        f |= MS_NOSUID;
    if (sv.f_flag & ST_NODEV)
        f |= MS_NODEV;
    if (sv.f_flag & ST_NOEXEC)
        f |= MS_NOEXEC;
    if (sv.f_flag & ST_NOATIME)
        f |= MS_NOATIME;
    if (sv.f_flag & ST_NODIRATIME)
        f |= MS_NODIRATIME;
    if (sv.f_flag & ST_RELATIME)
        f |= MS_RELATIME;
    if (sv.f_flag & ST_RDONLY)
        f |= MS_RDONLY;
    return f;
}

/* MS_RDONLY, MS_NOSUID, MS_NODEV and MS_NOEXEC of `flags` set on path and every mount below it,
 * in one mount_setattr() (5.12+). Returns 0, or -1 with errno. */
static int
setattr_recursive(const char *path, unsigned long flags)
{
    struct mount_attr attr = {0};
    if (flags & MS_RDONLY)
        attr.attr_set |= MOUNT_ATTR_RDONLY;
    if (flags & MS_NOSUID)
        attr.attr_set |= MOUNT_ATTR_NOSUID;
    if (flags & MS_NODEV)
        attr.attr_set |= MOUNT_ATTR_NODEV;
    if (flags & MS_NOEXEC)
        attr.attr_set |= MOUNT_ATTR_NOEXEC;
    return (int)syscall(SYS_mount_setattr, AT_FDCWD, path, AT_RECURSIVE, &attr, sizeof(attr));
}

static int
remount_bind(const char *path, unsigned long flags, bool recursive)
{
    if (recursive && (flags & MS_RDONLY) && setattr_recursive(path, flags) == 0)
        return 0;
    unsigned long keep = locked_flags(path) & ~MS_RDONLY;
    if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | flags | keep, NULL) == 0)
        return 0;
    return -errno;
}

/* Creates `path` inside the root (a directory, or an empty file when !want_dir) and whatever of
 * its parents is missing, each step resolved from the root with RESOLVE_IN_ROOT. */
static int
make_in_root(int rootfd, char *path, bool want_dir, const struct open_how *how)
{
    char *slash = strrchr(path, '/');
    if (slash == NULL || slash[1] == '\0')
        return -EINVAL;
    *slash = '\0';
    const char *parent_path = path[0] ? path : "/";
    int parent = openat2_retry(rootfd, parent_path, how);
    if (parent < 0 && errno == ENOENT && path[0]) {
        int r = make_in_root(rootfd, path, true, how);
        if (r < 0) {
            *slash = '/';
            return r;
        }
        parent = openat2_retry(rootfd, parent_path, how);
    }
    *slash = '/';
    if (parent < 0)
        return -errno;
    int r;
    if (want_dir)
        r = mkdirat(parent, slash + 1, 0755);
    else if ((r = openat(parent, slash + 1, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644)) >= 0)
        r = close(r);
    int e = errno;
    close(parent);
    return r < 0 && e != EEXIST ? -e : 0;
}

/* Resolves dst inside NEWROOT without letting symlinks in the (untrusted) image escape it
 * (CVE-2021-30465 class): openat2(RESOLVE_IN_ROOT), and with `create` what is missing is made
 * first (mkdir -p), each step resolved the same way. Returns the fd, and in buf a
 * "/proc/self/fd/N" path to it. */
static int
open_in_root(int rootfd, const char *dst, bool want_dir, bool create, char *buf, size_t buflen)
{
    struct open_how how = {.flags = O_PATH | O_CLOEXEC,
                           .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
    /* Most targets exist (/proc, /sys, /tmp in the image): one syscall for them, not one per
     * path component. */
    int fd = openat2_retry(rootfd, dst, &how);
    if (fd < 0 && errno == ENOENT && create) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s", dst);
        size_t n = strlen(path);
        while (n > 1 && path[n - 1] == '/')
            path[--n] = '\0';
        int r = make_in_root(rootfd, path, want_dir, &how);
        if (r < 0)
            return r;
        fd = openat2_retry(rootfd, dst, &how);
    }
    if (fd < 0)
        return -errno;
    /* The host /proc under the old root: the new root has no /proc of its own yet. */
    snprintf(buf, buflen, OLDROOT "/proc/self/fd/%d", fd);
    return fd;
}

static bool
is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* /proc/self/cgroup as read before the cgroup namespace was entered: the host paths of our own
 * v1 cgroups. */
static char own_cgroups[4096];

/* v1/hybrid hosts have no namespaced cgroup filesystem to mount, so the sandbox gets a read-only
 * tmpfs with each controller directory bound from its own cgroup only: tools such as the agent
 * see the sandbox's limits and usage, never the host's tree. */
static int open_in_root(int rootfd, const char *dst, bool want_dir, bool create, char *buf,
                        size_t buflen);

/* Into the sandbox's cgroups (v1: by itself, through the `tasks` files the parent opened), then
 * into a new cgroup namespace (rooted where the process is when it unshares). Without
 * cgroup_late this runs right after SYNC_GO; with it, the child waits here for the parent to have
 * made the cgroups, at its first step that needs to be inside: the view of /sys/fs/cgroup, else
 * the end of the root's set-up. Until then it only built mounts. */
static void
enter_cgroup(struct sbx_child_ctx *c)
{
    sbx_spec_t *s = c->spec;
    if (c->cgroup_entered)
        return;
    c->cgroup_entered = true;
    if (c->cgroup_late) {
        struct sbx_sync_msg m;
        if (sbx_sync_recv_fds(c->sync_fd, &m, c->cgroup_join_fds, ARRAY_SIZE(c->cgroup_join_fds),
                              &c->n_cgroup_join_fds) <= 0 ||
            m.type != SYNC_CGROUP)
            _exit(125); /* the parent failed and reports why */
    }
    if (c->n_cgroup_join_fds > 0) { /* v2: born in its cgroup */
        int r = sbx_cgroup_join_self(c->cgroup_join_fds, c->n_cgroup_join_fds);
        close_fds(c->cgroup_join_fds, c->n_cgroup_join_fds);
        if (r < 0)
            child_fail(c, -r, "join the sandbox's cgroups");
        sbx_trace("joined its cgroup");
    }
    if (sbx_cgroup_mode() != SBX_CGROUP_UNIFIED) {
        /* Through the directory opened at the start: by now /proc may be out of reach (the
         * scratch root has none). */
        int fd = openat(c->proc_self_fd, "cgroup", O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, own_cgroups, sizeof(own_cgroups) - 1) : -1;
        own_cgroups[n > 0 ? n : 0] = '\0';
        if (fd >= 0)
            close(fd);
    }
    close_fds(&c->proc_self_fd, 1);
    if (s->ns_enabled[SBX_NS_CGROUP] && !s->ns_path[SBX_NS_CGROUP] && unshare(CLONE_NEWCGROUP) < 0)
        child_fail(c, errno, "unshare cgroup namespace");
}

static void
mount_v1_cgroups(struct sbx_child_ctx *c, int rootfd, const char *dest, const char *where,
                 unsigned long flags)
{
    enter_cgroup(c);
    char target[80];
    if (mount("cgroup", where, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755") < 0)
        child_fail(c, errno, "mount tmpfs for cgroups");
    /* The O_PATH fd still names the directory underneath; reopen to reach the new tmpfs. */
    int fd = open_in_root(rootfd, dest, true, false, target, sizeof(target));
    if (fd < 0)
        child_fail(c, -fd, "reopen `%s`", dest);
    char *save = NULL;
    char copy[sizeof(own_cgroups)];
    snprintf(copy, sizeof(copy), "%s", own_cgroups);
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *ctrl = strchr(line, ':'), *path;
        if (ctrl == NULL || (path = strchr(++ctrl, ':')) == NULL)
            continue;
        *path++ = '\0';
        /* A controller still at the host's root cgroup would show the whole host: skip it. */
        if (*ctrl == '\0' || strncmp(ctrl, "name=", 5) == 0 || strcmp(path, "/") == 0)
            continue;
        char src[PATH_MAX], dst[PATH_MAX];
        snprintf(src, sizeof(src), OLDROOT "/sys/fs/cgroup/%s%s", ctrl, path);
        snprintf(dst, sizeof(dst), "%s/%s", target, ctrl);
        if (!is_dir(src))
            continue;
        if (mkdir(dst, 0755) < 0 || mount(src, dst, NULL, MS_BIND, NULL) < 0)
            child_fail(c, errno, "bind cgroup `%s`", ctrl);
    }
    const unsigned long ro = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
    /* The tmpfs and the binds read-only in one mount_setattr() (5.12+), not two calls per
     * hierarchy; else, or when the view itself stays writable, each bind on its own. */
    if (!(flags & MS_RDONLY) || remount_bind(target, ro, true) < 0) {
        DIR *d = opendir(target);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            char dst[PATH_MAX];
            if (e->d_name[0] == '.')
                continue;
            snprintf(dst, sizeof(dst), "%s/%s", target, e->d_name);
            remount_bind(dst, ro, false);
        }
        if (d)
            closedir(d);
        if ((flags & MS_RDONLY) && mount(NULL, target, NULL, MS_REMOUNT | ro, NULL) < 0)
            child_fail(c, errno, "remount `%s` read-only", dest);
    }
    close(fd);
}

static void
bring_up_loopback(struct sbx_child_ctx *c)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
        child_fail(c, errno, "loopback flags");
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
        child_fail(c, errno, "bring up loopback");
    close(fd);
}

/* A tmpfs's size= bounds its blocks, not its inodes: empty files cost no block, yet each inode
 * and dentry is host kernel memory (about 1 KiB), and the kernel's default inode count is half
 * of RAM's pages, whatever the size. A sandbox with no memory limit filled 400,000 empty files
 * into a 256 MiB /tmp (issue 17). One inode per 4 KiB of size, the most that full pages could
 * use, unless the config names its own nr_inodes; a tmpfs without size= (or with size=0, or
 * a size in %) is left to the kernel's defaults. Returns data, or buf holding data plus the bound.
 */
static const char *
tmpfs_bounded(const char *data, char *buf, size_t len)
{
    const char *sz = data ? strstr(data, "size=") : NULL;
    if (sz == NULL || (sz != data && sz[-1] != ',') || strstr(data, "nr_inodes="))
        return data;
    char *end;
    unsigned long long n = strtoull(sz + 5, &end, 10);
    switch (*end) {
    case 'k':
    case 'K':
        n <<= 10;
        end++;
        break;
    case 'm':
    case 'M':
        n <<= 20;
        end++;
        break;
    case 'g':
    case 'G':
        n <<= 30;
        end++;
        break;
    default: break;
    }
    /* size=0 is tmpfs for "no limit": no inode bound either. */
    if (end == sz + 5 || (*end != ',' && *end != '\0') || n == 0)
        return data;
    unsigned long long inodes = n / 4096 < 1024 ? 1024 : n / 4096;
    int w = snprintf(buf, len, "%s,nr_inodes=%llu", data, inodes);
    return w > 0 && (size_t)w < len ? buf : data;
}

static void
do_mount(struct sbx_child_ctx *c, int rootfd, const struct sbx_mount *m)
{
    char target[80], src[PATH_MAX];
    bool want_dir = true;
    cleanup_close int srcfd = -1;
    if (m->bind && m->beneath) {
        /* A volume: the source is walked again here, below its root, and the fd we got is what
         * is bound, so a component swapped for a symlink since apid checked it (the volume's
         * content is written by sandboxes) cannot redirect the bind out of the root. */
        char rootp[PATH_MAX];
        snprintf(rootp, sizeof(rootp), OLDROOT "%s", m->beneath);
        cleanup_close int rootfd = open(rootp, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0)
            child_fail(c, errno, "volume root `%s`%s", m->beneath,
                       errno == EACCES ? " is not reachable by the sandbox's root (its parent "
                                         "directories need o+x)"
                                       : "");
        const char *rel = m->source + strlen(m->beneath);
        while (*rel == '/')
            rel++;
        srcfd = sbx_open_beneath(rootfd, rel);
        if (srcfd == -EXDEV || srcfd == -ELOOP)
            child_fail(c, -srcfd, "volume source `%s` leads out of `%s`", m->source, m->beneath);
        if (srcfd < 0)
            child_fail(c, -srcfd, "volume source `%s`", m->source);
        struct stat st;
        if (fstat(srcfd, &st) < 0)
            child_fail(c, errno, "volume source `%s`", m->source);
        want_dir = S_ISDIR(st.st_mode);
        snprintf(src, sizeof(src), OLDROOT "/proc/self/fd/%d", srcfd);
    } else if (m->bind) {
        snprintf(src, sizeof(src), OLDROOT "%s", m->source[0] == '/' ? m->source : "/");
        if (m->source[0] != '/')
            child_fail(c, 0, "bind source `%s` must be absolute", m->source);
        struct stat st;
        if (stat(src, &st) < 0) {
            /* Binds are made inside the user namespace: the sandbox's mapped root must be able
             * to reach the source (world-traversable parent directories). */
            if (errno == EACCES)
                child_fail(c, errno,
                           "bind source `%s` is not reachable by the sandbox's root "
                           "(host uid %u)",
                           m->source, c->spec->n_uid_maps ? c->spec->uid_maps[0].host_id : 0);
            child_fail(c, errno, "bind source `%s`", m->source);
        }
        want_dir = S_ISDIR(st.st_mode);
    }
    int fd = open_in_root(rootfd, m->destination, want_dir, true, target, sizeof(target));
    if (fd < 0)
        child_fail(c, -fd, "mount destination `%s`", m->destination);

    unsigned long flags = m->flags & ~MS_REMOUNT;
    int r;
    if (m->bind) {
        r = mount(src, target, NULL, MS_BIND | (m->recursive ? MS_REC : 0), NULL);
        if (r < 0)
            child_fail(c, errno, "bind `%s` on `%s`", m->source, m->destination);
        /* The bind itself ignores flags; they need a remount of the new mount point. Re-open it:
         * the fd refers to the directory underneath. */
        close(fd);
        fd = open_in_root(rootfd, m->destination, want_dir, false, target, sizeof(target));
        if (fd < 0)
            child_fail(c, -fd, "reopen `%s`", m->destination);
        if (flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)) {
            r = remount_bind(target, flags, m->recursive);
            if (r < 0)
                child_fail(c, -r, "remount `%s` with its options", m->destination);
        }
    } else if (strcmp(m->type, "sysfs") == 0) {
        r = mount("sysfs", target, "sysfs", flags, m->data);
        if (r < 0 && (errno == EPERM || errno == EBUSY)) {
            /* A user namespace may mount sysfs only for a netns it owns (not with --net host):
             * fall back to a read-only recursive bind of the host's /sys, as crun does. */
            if (mount(OLDROOT "/sys", target, NULL, MS_BIND | MS_REC, NULL) < 0)
                child_fail(c, errno, "bind /sys on `%s`", m->destination);
            close(fd);
            fd = open_in_root(rootfd, m->destination, true, false, target, sizeof(target));
            r = remount_bind(target, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, true);
        }
        if (r < 0)
            child_fail(c, errno, "mount sysfs on `%s`", m->destination);
    } else if (strcmp(m->type, "cgroup") == 0 || strcmp(m->type, "cgroup2") == 0) {
        if (sbx_cgroup_mode() == SBX_CGROUP_UNIFIED) {
            /* Mounted from inside the cgroup namespace, its root is the sandbox's own cgroup. */
            int cr = mount("cgroup2", target, "cgroup2", flags, NULL);
            if (cr < 0 && errno == EBUSY) {
                /* /sys bound from the host (--net host) already shows the host's cgroup2 here:
                 * the kernel refuses one superblock twice on a mount point, and that (locked)
                 * mount cannot be removed in a user namespace. Cover it, then mount ours. */
                if (mount("tmpfs", target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                          "size=0") < 0)
                    child_fail(c, errno, "cover the host's cgroup2 on `%s`", m->destination);
                close(fd);
                fd = open_in_root(rootfd, m->destination, true, false, target, sizeof(target));
                if (fd < 0)
                    child_fail(c, -fd, "reopen `%s`", m->destination);
                cr = mount("cgroup2", target, "cgroup2", flags, NULL);
            }
            if (cr < 0)
                child_fail(c, errno, "mount cgroup2 on `%s`", m->destination);
        } else {
            mount_v1_cgroups(c, rootfd, m->destination, target, flags);
        }
    } else {
        char bounded[1024];
        const char *data = strcmp(m->type, "tmpfs") == 0
                               ? tmpfs_bounded(m->data, bounded, sizeof(bounded))
                               : m->data;
        r = mount(m->source, target, m->type, flags, data);
        if (r < 0)
            child_fail(c, errno, "mount %s on `%s` (options `%s`)", m->type, m->destination,
                       m->data ? m->data : "");
    }
    if (m->propagation) {
        close(fd);
        fd = open_in_root(rootfd, m->destination, want_dir, false, target, sizeof(target));
        if (fd >= 0 && mount(NULL, target, NULL, m->propagation, NULL) < 0)
            child_fail(c, errno, "set propagation of `%s`", m->destination);
    }
    if (fd >= 0)
        close(fd);
}

static const char *const default_devices[] = {"null", "zero", "full", "random", "urandom", "tty"};

/* Real root (no user namespace) creates the node itself, with the major/minor, mode and owner
 * the config asks for, even when the host has no such device. */
static void
make_device(struct sbx_child_ctx *c, int rootfd, const struct sbx_device *d)
{
    char target[80], dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", d->path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash[1] == '\0')
        child_fail(c, EINVAL, "device path `%s`", d->path);
    *slash = '\0';
    int dfd = open_in_root(rootfd, dir[0] ? dir : "/", true, true, target, sizeof(target));
    if (dfd < 0)
        child_fail(c, -dfd, "create parent of `%s`", d->path);
    /* O_PATH fds cannot be used with mknodat: reopen the directory itself. */
    int real = open(target, O_DIRECTORY | O_CLOEXEC);
    if (real < 0)
        child_fail(c, errno, "open parent of `%s`", d->path);
    mode_t type = d->type == 'b' ? S_IFBLK : d->type == 'p' ? S_IFIFO : S_IFCHR;
    unlinkat(real, slash + 1, 0);
    if (mknodat(real, slash + 1, type | (d->mode & 07777 ? d->mode & 07777 : 0666),
                makedev(d->major, d->minor)) < 0)
        child_fail(c, errno, "mknod `%s`", d->path);
    if (fchownat(real, slash + 1, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) < 0)
        child_fail(c, errno, "chown `%s`", d->path);
    /* mknod's mode is filtered by the umask; the config's is exact. */
    if (fchmodat(real, slash + 1, d->mode & 07777 ? d->mode & 07777 : 0666, 0) < 0)
        child_fail(c, errno, "chmod `%s`", d->path);
    close(real);
    close(dfd);
}

/* A user namespace cannot mknod, so device nodes are bind mounts of the host's own nodes. */
static void
setup_dev(struct sbx_child_ctx *c, int rootfd)
{
    char target[80], src[PATH_MAX];
    for (size_t i = 0; i < ARRAY_SIZE(default_devices); i++) {
        char dst[64];
        snprintf(dst, sizeof(dst), "/dev/%s", default_devices[i]);
        snprintf(src, sizeof(src), OLDROOT "/dev/%s", default_devices[i]);
        int fd = open_in_root(rootfd, dst, false, true, target, sizeof(target));
        if (fd < 0)
            child_fail(c, -fd, "create `%s`", dst);
        if (mount(src, target, NULL, MS_BIND, NULL) < 0)
            child_fail(c, errno, "bind `%s`", dst);
        close(fd);
    }
    for (size_t i = 0; i < c->spec->n_devices; i++) {
        const struct sbx_device *d = &c->spec->devices[i];
        if (!c->in_userns) {
            make_device(c, rootfd, d);
            continue;
        }
        snprintf(src, sizeof(src), OLDROOT "%s", d->path);
        if (access(src, F_OK) < 0)
            child_fail(c, errno, "device `%s` is not present on the host", d->path);
        int fd = open_in_root(rootfd, d->path, false, true, target, sizeof(target));
        if (fd < 0)
            child_fail(c, -fd, "create `%s`", d->path);
        if (mount(src, target, NULL, MS_BIND, NULL) < 0)
            child_fail(c, errno, "bind device `%s`", d->path);
        close(fd);
    }
    static const struct {
        const char *target, *link;
    } links[] = {
        {"/proc/self/fd", "fd"},       {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
        {"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"},         {"/proc/kcore", "core"},
    };
    int devfd = openat(rootfd, "dev", O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (devfd < 0)
        child_fail(c, errno, "open /dev");
    for (size_t i = 0; i < ARRAY_SIZE(links); i++) {
        if (symlinkat(links[i].target, devfd, links[i].link) < 0 && errno != EEXIST)
            child_fail(c, errno, "symlink /dev/%s", links[i].link);
    }
    close(devfd);
}

static void
mask_paths(struct sbx_child_ctx *c, int rootfd)
{
    char target[80];
    for (char **p = c->spec->masked_paths; p && *p; p++) {
        int fd = open_in_root(rootfd, *p, false, false, target, sizeof(target));
        if (fd < 0)
            continue; /* absent on this kernel: nothing to hide */
        struct stat st;
        int r;
        if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
            r = mount("tmpfs", target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      "size=0,mode=0555");
        else
            r = mount(OLDROOT "/dev/null", target, NULL, MS_BIND, NULL);
        if (r < 0)
            child_fail(c, errno, "mask `%s`", *p);
        close(fd);
    }
    for (char **p = c->spec->readonly_paths; p && *p; p++) {
        int fd = open_in_root(rootfd, *p, false, false, target, sizeof(target));
        if (fd < 0)
            continue;
        if (mount(target, target, NULL, MS_BIND | MS_REC, NULL) < 0)
            child_fail(c, errno, "bind `%s` read-only", *p);
        close(fd);
        fd = open_in_root(rootfd, *p, false, false, target, sizeof(target));
        int r = remount_bind(target, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, true);
        if (r < 0)
            child_fail(c, -r, "remount `%s` read-only", *p);
        close(fd);
    }
}

/* Runs hooks from the sandbox's side with the error reported to whoever waits on sync_fd.
 * root: where the hook's path resolves (the host root while it is still reachable). */
static void
child_hooks(struct sbx_child_ctx *c, const char *phase, const struct sbx_hook *hooks, size_t n,
            const char *root)
{
    sbx_error_t err = NULL;
    if (sbx_hooks_run(phase, hooks, n, root, c->state_json, &err) < 0) {
        char msg[900];
        snprintf(msg, sizeof(msg), "%s", err->msg);
        sbx_error_release(&err);
        child_fail(c, 0, "%s", msg);
    }
}

/* OCI order: prestart and createRuntime run in the runtime namespace once the environment
 * exists but before pivot_root (sbxrun runs them: it still sees the host), then
 * createContainer runs here, in the container's namespaces (path resolved on the host). */
static void
run_create_hooks(struct sbx_child_ctx *c, const char *host_root)
{
    sbx_spec_t *s = c->spec;
    struct sbx_sync_msg m;
    if (s->n_hooks_prestart + s->n_hooks_create_runtime > 0) {
        if (sbx_sync_send(c->sync_fd, SYNC_HOOKS, 0, NULL) < 0 ||
            sbx_sync_recv(c->sync_fd, &m) <= 0 || m.type != SYNC_GO)
            _exit(125);
    }
    child_hooks(c, "createContainer", s->hooks_create_container, s->n_hooks_create_container,
                host_root);
}

/* No mount namespace of its own: the sandbox shares its creator's, where any mount would be
 * visible outside. Nothing is mounted (validate() refused what would need it); the process
 * only chroots into the rootfs. */
static void
setup_chroot(struct sbx_child_ctx *c)
{
    run_create_hooks(c, NULL);
    if (chdir(c->spec->rootfs) < 0)
        child_fail(c, errno, "chdir to rootfs `%s`", c->spec->rootfs);
    if (chroot(".") < 0)
        child_fail(c, errno, "chroot into rootfs `%s`", c->spec->rootfs);
    if (chdir("/") < 0)
        child_fail(c, errno, "chdir /");
}

static bool
paths_overlap(const char *a, const char *b)
{
    while (*a == '/' && a[1] == '/')
        a++;
    while (*b == '/' && b[1] == '/')
        b++;
    size_t la = strlen(a), lb = strlen(b);
    while (la > 1 && a[la - 1] == '/')
        la--;
    while (lb > 1 && b[lb - 1] == '/')
        lb--;
    size_t n = la < lb ? la : lb;
    if (strncmp(a, b, n) != 0)
        return false;
    const char *rest = la < lb ? b + n : a + n;
    return n == 1 || *rest == '\0' || *rest == '/';
}

/* With cgroup_late, the v1 view of /sys/fs/cgroup is what makes the child wait for the parent's
 * cgroups; mounting it after the others (and /dev's nodes) leaves the child ~1 ms more to do
 * meanwhile. Only when the order cannot matter: no later mount above or below it. */
static bool
may_defer_cgroup_view(const struct sbx_child_ctx *c, size_t i)
{
    const sbx_spec_t *s = c->spec;
    const struct sbx_mount *m = &s->mounts[i];
    if (!c->cgroup_late || c->cgroup_entered || m->bind || m->propagation ||
        strcmp(m->type, "cgroup") != 0)
        return false;
    for (size_t j = i + 1; j < s->n_mounts; j++)
        if (paths_overlap(m->destination, s->mounts[j].destination))
            return false;
    return true;
}

/* A pulled image: its layers, shared by every image that has them, as overlayfs lower layers
 * (top first), with the private writable layer on top unless the root is read-only (an
 * overlay of lower layers alone is read-only). The layers are named relative to their
 * directory, the current one during the mount, so that the mount data (one page) holds ~60 of
 * them. */
static void
mount_layer_stack(struct sbx_child_ctx *c)
{
    sbx_spec_t *s = c->spec;
    char dir[PATH_MAX + 16], data[4096];
    snprintf(dir, sizeof(dir), OLDROOT "%s", s->rootfs_layers_dir);
    if (chdir(dir) < 0)
        child_fail(c, errno, "image layers `%s`", s->rootfs_layers_dir);
    int n = s->overlay_rootfs
                ? snprintf(data, sizeof(data), "lowerdir=%s,upperdir=/upper,workdir=/work%s",
                           s->rootfs_layers, c->in_userns ? ",userxattr" : "")
                : snprintf(data, sizeof(data), "lowerdir=%s%s", s->rootfs_layers,
                           c->in_userns ? ",userxattr" : "");
    if (n < 0 || (size_t)n >= sizeof(data))
        child_fail(c, E2BIG, "image has too many layers for one overlay mount");
    if (mount("overlay", NEWROOT, "overlay",
              MS_NOSUID | MS_NODEV | (s->overlay_rootfs ? 0 : MS_RDONLY), data) < 0)
        child_fail(c, errno, "mount the image's layers (overlay)");
    if (chdir("/") < 0)
        child_fail(c, errno, "chdir /");
}

/* linux.sysctl (checked against the sandbox's namespaces by sbx_sysctl_check_spec() before the
 * clone), written from inside those namespaces: /proc/sys resolves net.* and the IPC and UTS
 * parameters to the namespaces of the writer. Through the sandbox's own proc mount when it has
 * one (the host's /proc/sys may be read-only, as in a container), and before readonlyPaths
 * makes /proc/sys read-only (podman and runc's default configs list it). */
static void
write_sysctls(struct sbx_child_ctx *c, int rootfd)
{
    if (c->spec->sysctl == NULL || json_object_size(c->spec->sysctl) == 0)
        return;
    struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                           .resolve =
                               RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
    struct statfs sf;
    int dir = openat2_retry(rootfd, "proc/sys", &how);
    if (dir >= 0 && (fstatfs(dir, &sf) < 0 || sf.f_type != PROC_SUPER_MAGIC)) {
        close(dir);
        dir = -1;
    }
    if (dir < 0)
        dir = open(OLDROOT "/proc/sys", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        child_fail(c, errno, "open /proc/sys for linux.sysctl");
    const char *key;
    json_t *v;
    json_object_foreach (c->spec->sysctl, key, v) {
        const char *val = json_string_value(v);
        int r = val ? sbx_sysctl_write(dir, key, val) : -EINVAL;
        if (r < 0)
            child_fail(c, -r, "sysctl `%s` = `%s`", key, val ? val : "");
    }
    close(dir);
}

static void
setup_root(struct sbx_child_ctx *c)
{
    sbx_spec_t *s = c->spec;
    if (!s->ns_enabled[SBX_NS_MOUNT]) {
        setup_chroot(c);
        return;
    }
    unsigned long prop = MS_REC | MS_PRIVATE;
    if (s->rootfs_propagation && strstr(s->rootfs_propagation, "slave"))
        prop = MS_REC | MS_SLAVE;
    if (mount(NULL, "/", NULL, prop, NULL) < 0)
        child_fail(c, errno, "make / private");

    /* The scratch tmpfs holds the overlay's upper dir, i.e. everything the workload writes to its
     * root: its size is the writable layer's (run.sbx.rootfs.size, a default when absent). Only
     * 0 asks for no size= (the kernel's half of RAM). */
    char opts[128] = "mode=0755";
    if (s->overlay_size > 0)
        snprintf(opts, sizeof(opts), "mode=0755,size=%lld,nr_inodes=%lld",
                 (long long)s->overlay_size,
                 (long long)(s->overlay_size / 4096 < 1024 ? 1024 : s->overlay_size / 4096));
    if (mount("sbx-scratch", SCRATCH, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
        child_fail(c, errno, "mount scratch tmpfs");
    if (chdir(SCRATCH) < 0 || mkdir("oldroot", 0700) < 0 || mkdir("newroot", 0755) < 0 ||
        (s->overlay_rootfs && (mkdir("upper", 0755) < 0 || mkdir("work", 0755) < 0)))
        child_fail(c, errno, "prepare scratch root");
    if (syscall(SYS_pivot_root, ".", "oldroot") < 0)
        child_fail(c, errno, "pivot_root into scratch root");
    if (chdir("/") < 0)
        child_fail(c, errno, "chdir /");

    char lower[PATH_MAX + 16];
    snprintf(lower, sizeof(lower), OLDROOT "%s", s->rootfs);
    if (!is_dir(lower))
        child_fail(c, errno ? errno : ENOTDIR, "rootfs `%s`", s->rootfs);
    bool stack = s->rootfs_layers && (s->overlay_rootfs || strchr(s->rootfs_layers, ':'));
    if (stack) {
        mount_layer_stack(c);
    } else if (s->overlay_rootfs) {
        char data[PATH_MAX + 128];
        if (strpbrk(s->rootfs, ",:\\"))
            child_fail(c, EINVAL, "rootfs path `%s` contains ',', ':' or '\\'", s->rootfs);
        snprintf(data, sizeof(data), "lowerdir=%s,upperdir=/upper,workdir=/work%s", lower,
                 c->in_userns ? ",userxattr" : "");
        if (mount("overlay", NEWROOT, "overlay", MS_NOSUID | MS_NODEV, data) < 0) {
            int e = errno;
            /* Kernels before 5.11 lack userxattr; retry without it. */
            if (!c->in_userns ||
                (snprintf(data, sizeof(data), "lowerdir=%s,upperdir=/upper,workdir=/work", lower),
                 mount("overlay", NEWROOT, "overlay", MS_NOSUID | MS_NODEV, data) < 0))
                child_fail(c, e, "mount overlay on rootfs `%s`", s->rootfs);
        }
    } else {
        /* A bind keeps the host mount's flags: nosuid and nodev as on the overlay, or a device
         * node or setuid file in the image would work in the sandbox. */
        if (mount(lower, NEWROOT, NULL, MS_BIND | MS_REC, NULL) < 0)
            child_fail(c, errno, "bind rootfs `%s`", s->rootfs);
        if (setattr_recursive(NEWROOT, MS_NOSUID | MS_NODEV) < 0 &&
            (errno != ENOSYS || remount_bind(NEWROOT, MS_NOSUID | MS_NODEV, false) < 0))
            child_fail(c, errno, "make rootfs `%s` nosuid,nodev", s->rootfs);
    }

    sbx_trace(s->overlay_rootfs ? "overlay mounted" : "rootfs bound");
    int rootfd = open(NEWROOT, O_DIRECTORY | O_PATH | O_CLOEXEC);
    if (rootfd < 0)
        child_fail(c, errno, "open new root");
    bool dev_tmpfs = false;
    const struct sbx_mount *cgroup_view = NULL;
    for (size_t i = 0; i < s->n_mounts; i++) {
        if (cgroup_view == NULL && may_defer_cgroup_view(c, i)) {
            cgroup_view = &s->mounts[i];
            continue;
        }
        do_mount(c, rootfd, &s->mounts[i]);
        if (strcmp(s->mounts[i].destination, "/dev") == 0 && !s->mounts[i].bind)
            dev_tmpfs = true;
    }
    if (dev_tmpfs)
        setup_dev(c, rootfd);
    if (cgroup_view)
        do_mount(c, rootfd, cgroup_view);
    write_sysctls(c, rootfd);
    mask_paths(c, rootfd);
    close(rootfd);
    run_create_hooks(c, OLDROOT);

    /* pivot_root(".", ".") stacks the old root on the new one; detaching it drops the scratch
     * root and every host mount under /oldroot in one step (no path to the host remains). */
    if (chdir(NEWROOT) < 0)
        child_fail(c, errno, "chdir new root");
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        child_fail(c, errno, "pivot_root");
    if (umount2(".", MNT_DETACH) < 0)
        child_fail(c, errno, "detach old root");
    if (chdir("/") < 0)
        child_fail(c, errno, "chdir /");
    if (s->root_readonly && remount_bind("/", MS_RDONLY, false) < 0)
        child_fail(c, errno, "remount / read-only");
    /* linux.rootfsPropagation applies to the new root itself, once it is the root. */
    static const struct {
        const char *name;
        unsigned long flag;
    } props[] = {{"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
                 {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
                 {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
                 {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC}};
    for (size_t i = 0; s->rootfs_propagation && i < ARRAY_SIZE(props); i++)
        if (strcmp(s->rootfs_propagation, props[i].name) == 0 &&
            mount(NULL, "/", NULL, props[i].flag, NULL) < 0)
            child_fail(c, errno, "rootfsPropagation `%s`", s->rootfs_propagation);
}

/* Nothing may outlive `sbxrun run` (or apid's monitor): when it dies, so does the sandbox's
 * PID 1 and with it the pid namespace. PR_SET_PDEATHSIG alone, set once at the start, did not
 * hold: the kernel clears it whenever the process's credentials change (commit_creds() on a new
 * euid, egid, fsuid or fsgid, or capabilities that are not a subset of the old ones) and on a
 * set-id execve, and the child changes its uid twice (root of the user namespace, then the
 * workload's user). A kill -9 of sbxrun left init and the workload running under the host's
 * PID 1. So it is armed again after every credential change, and each time the sync socket
 * tells whether the parent is already gone (getppid() is 0 across a pid namespace and cannot).
 * The signal follows the parent *thread*: sbxrun and apid's monitor clone from their only
 * thread. A created (OCI create/start) sandbox outlives `sbxrun create` by design. */
static void
arm_parent_death(struct sbx_child_ctx *c)
{
    if (c->wait_for_start || c->join_only)
        return;
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    struct pollfd p = {.fd = c->sync_fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP)))
        _exit(125);
}

static void
format_rlim(char *buf, size_t n, rlim_t v)
{
    if (v == RLIM_INFINITY)
        snprintf(buf, n, "unlimited");
    else
        snprintf(buf, n, "%llu", (unsigned long long)v);
}

/* Named as in the config, with the values asked for: "setrlimit RLIMIT_NOFILE (1048576)" says
 * what to change (a hard limit above fs.nr_open, or a raise without CAP_SYS_RESOURCE). */
static __attribute__((noreturn)) void
fail_rlimit(struct sbx_child_ctx *c, const struct sbx_rlimit *rl)
{
    int e = errno;
    char soft[24], hard[24];
    format_rlim(soft, sizeof(soft), rl->limit.rlim_cur);
    format_rlim(hard, sizeof(hard), rl->limit.rlim_max);
    if (rl->limit.rlim_cur == rl->limit.rlim_max)
        child_fail(c, e, "setrlimit %s (%s)", sbx_rlimit_name(rl->resource), soft);
    child_fail(c, e, "setrlimit %s (soft %s, hard %s)", sbx_rlimit_name(rl->resource), soft, hard);
}

static void
set_identity(struct sbx_child_ctx *c)
{
    sbx_spec_t *s = c->spec;
    if (setgroups(s->n_additional_gids, s->additional_gids) < 0 && errno != EPERM)
        child_fail(c, errno, "setgroups");
    if (setresgid(s->gid, s->gid, s->gid) < 0)
        child_fail(c, errno, "setresgid %u (is gid %u mapped?)", s->gid, s->gid);
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        child_fail(c, errno, "PR_SET_KEEPCAPS");
    if (setresuid(s->uid, s->uid, s->uid) < 0)
        child_fail(c, errno, "setresuid %u (is uid %u mapped?)", s->uid, s->uid);
}

int
sbx_child_setup_pty(struct sbx_child_ctx *c)
{
    /* The sandbox's own devpts (via /dev/ptmx), so the slave is a path inside it. */
    int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0)
        return -errno;
    int unlock = 0, n;
    if (ioctl(master, TIOCSPTLCK, &unlock) < 0 || ioctl(master, TIOCGPTN, &n) < 0) {
        int e = errno;
        close(master);
        return -e;
    }
    char path[32];
    snprintf(path, sizeof(path), "/dev/pts/%d", n);
    int slave = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0) {
        int e = errno;
        close(master);
        return -e;
    }
    char byte = 0;
    int r = sbx_send_fds(c->console_fd, &byte, 1, &master, 1);
    close(master);
    close(c->console_fd);
    c->console_fd = -1;
    if (r < 0) {
        close(slave);
        return r;
    }
    c->pty_slave = slave;
    return 0;
}

/* OCI create/start split: blocks until `sbxrun start` connects to exec.sock; from then on errors
 * go to that connection (the creating sbxrun is gone), and it sees EOF once execve succeeds. */
static void
wait_for_start(struct sbx_child_ctx *c)
{
    if (sbx_sync_send(c->sync_fd, SYNC_CREATED, getpid(), NULL) < 0)
        _exit(125);
    int conn;
    do
        conn = accept4(c->start_fd, NULL, NULL, SOCK_CLOEXEC);
    while (conn < 0 && (errno == EINTR || errno == ECONNABORTED));
    if (conn < 0)
        _exit(125);
    close(c->start_fd);
    c->start_fd = -1;
    close(c->sync_fd);
    c->sync_fd = conn;
    struct sbx_sync_msg m;
    if (sbx_sync_recv(conn, &m) <= 0 || m.type != SYNC_START)
        _exit(125);
    if (m.msg[0])
        snprintf(c->state_json, sizeof(c->state_json), "%s", m.msg);
    child_hooks(c, "startContainer", c->spec->hooks_start_container,
                c->spec->n_hooks_start_container, NULL);
}

struct workload_start {
    struct sbx_child_ctx *c;
    const sigset_t *mask;
};

void
sbx_child_exec(struct sbx_child_ctx *c)
{
    sbx_spec_t *s = c->spec;
    if (setsid() < 0 && errno != EPERM)
        child_fail(c, errno, "setsid");
    if (c->pty_slave >= 0) {
        if (dup2(c->pty_slave, 0) < 0 || dup2(c->pty_slave, 1) < 0 || dup2(c->pty_slave, 2) < 0)
            child_fail(c, errno, "terminal as stdio");
        if (c->pty_slave > 2)
            close(c->pty_slave);
        if (ioctl(0, TIOCSCTTY, 0) < 0)
            child_fail(c, errno, "terminal as controlling tty");
    }
    for (size_t i = 0; i < s->n_rlimits; i++)
        if (setrlimit(s->rlimits[i].resource, &s->rlimits[i].limit) < 0)
            fail_rlimit(c, &s->rlimits[i]);
    if (s->umask != (mode_t)-1)
        umask(s->umask);
    int cap = -1;
    int r = sbx_caps_drop_bounding(s->caps.bounding, &cap);
    if (r < 0)
        child_fail(c, -r, "drop %s from the capability bounding set", sbx_cap_name(cap));
    /* Without no_new_privs the kernel lets only CAP_SYS_ADMIN install a filter, and that is gone
     * once the identity and capabilities change: load it now, as runc does (the rest of the
     * setup then runs under it). With no_new_privs it goes last, right before execve. */
    bool early_seccomp = c->has_bpf && !s->no_new_privileges;
    if (early_seccomp && sbx_seccomp_apply(&c->bpf) < 0)
        child_fail(c, errno, "load seccomp filter");
    set_identity(c);
    if (chdir(s->cwd) < 0)
        child_fail(c, errno, "chdir to cwd `%s`", s->cwd);
    /* CVE-2024-21626: a cwd outside the root (via a leaked fd) shows up as "(unreachable)". */
    char cwd[PATH_MAX];
    char *got = getcwd(cwd, sizeof(cwd));
    /* An early seccomp filter (see above) may deny getcwd itself: that is no escape. */
    if ((got && cwd[0] != '/') ||
        (!got && !(early_seccomp && (errno == EPERM || errno == EACCES || errno == ENOSYS))))
        child_fail(c, EPERM, "cwd `%s` is outside the sandbox root", s->cwd);
    r = sbx_caps_apply(&s->caps, &cap);
    if (r < 0 && cap >= 0)
        child_fail(c, -r, "raise ambient capability %s", sbx_cap_name(cap));
    if (r < 0)
        child_fail(c, -r, "apply capabilities");
    if (s->no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        child_fail(c, errno, "PR_SET_NO_NEW_PRIVS");
    /* The workload as the sandbox's PID 1 (no init of ours): its identity is final now. A set-id
     * program it execs without no_new_privs clears the signal again, as with runc and crun. */
    if (c->workload_is_pid1)
        arm_parent_death(c);

    if (c->wait_for_start)
        wait_for_start(c);

    /* Resolve the program before seccomp so the error can be told apart from the workload's. */
    const char *prog = s->args[0];
    char found[PATH_MAX];
    if (strchr(prog, '/') == NULL) {
        const char *path = NULL;
        for (char **e = s->env; e && *e; e++)
            if (strncmp(*e, "PATH=", 5) == 0)
                path = *e + 5;
        if (path == NULL)
            path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        int first_err = ENOENT;
        bool ok = false;
        while (*path) {
            const char *end = strchrnul(path, ':');
            snprintf(found, sizeof(found), "%.*s/%s", (int)(end - path), path, prog);
            if (access(found, X_OK) == 0) {
                ok = true;
                break;
            }
            if (errno == EACCES && access(found, F_OK) == 0)
                first_err = EACCES;
            path = *end ? end + 1 : end;
        }
        if (!ok) {
            sbx_sync_send(c->sync_fd, SYNC_EXEC_FAILED, first_err, "exec `%s`: %s", prog,
                          first_err == ENOENT ? "command not found" : strerror(first_err));
            _exit(first_err == ENOENT ? 127 : 126);
        }
        prog = found;
    }
    /* The last fds above stdio (the sync socket) are close-on-exec; nothing else may leak. */
    syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
    if (c->has_bpf && !early_seccomp && sbx_seccomp_apply(&c->bpf) < 0)
        child_fail(c, errno, "load seccomp filter");
    sbx_trace("exec");
    execve(prog, s->args, s->env);
    int e = errno;
    sbx_sync_send(c->sync_fd, SYNC_EXEC_FAILED, e, "exec `%s`: %s", s->args[0], strerror(e));
    _exit(e == ENOENT ? 127 : 126);
}

static int
workload_main(void *arg)
{
    struct workload_start *ws = arg;
    sigprocmask(SIG_SETMASK, ws->mask, NULL);
    sbx_child_exec(ws->c); /* does not return */
    return 127;
}

/* PID 1 of the sandbox: reaps every orphan, forwards termination signals to the workload and
 * reports its status. It keeps only CAP_KILL and runs under a seccomp filter of its own that
 * allows just that (sbx_seccomp_apply_init()). */
static __attribute__((noreturn)) void
run_init(struct sbx_child_ctx *c, pid_t workload, sigset_t *mask)
{
    /* CAP_KILL alone: the workload may run under another uid, and forwarding a signal to it
     * needs that capability (only within the sandbox's user namespace). */
    uint64_t kill_only = 1ULL << CAP_KILL;
    struct sbx_caps init_caps = {
        .bounding = kill_only, .effective = kill_only, .permitted = kill_only};
    sbx_caps_drop_bounding(kill_only, NULL);
    sbx_caps_apply(&init_caps, NULL);
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    arm_parent_death(c); /* before init's filter, which allows neither prctl nor poll */
    if (c->has_bpf)
        sbx_seccomp_apply_init(&c->bpf);
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(mask, &si);
        if (sig < 0)
            continue;
        if (sig != SIGCHLD) {
            kill(workload, sig);
            continue;
        }
        for (;;) {
            int status;
            pid_t p = waitpid(-1, &status, WNOHANG);
            if (p <= 0)
                break;
            if (p == workload) {
                sbx_sync_send(c->sync_fd, SYNC_EXIT, status, NULL);
                /* Exiting as PID 1 makes the kernel SIGKILL everything left in the namespace. */
                _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
            }
        }
    }
}

/* linux.namespaces[].path, in sbx_ns_join_order; the pid namespace was joined by the parent
 * before clone (only a new process can enter one). */
static void
join_namespaces(struct sbx_child_ctx *c)
{
    for (size_t i = 0; i < SBX_NS_JOIN_COUNT; i++) {
        enum sbx_ns_type t = sbx_ns_join_order[i];
        int fd = c->ns_fd[t];
        if (fd < 0 || t == SBX_NS_PID)
            continue;
        if (setns(fd, sbx_ns_info[t].clone_flag) < 0)
            child_fail(c, errno, "join namespace `%s`", c->spec->ns_path[t]);
        close(fd);
        c->ns_fd[t] = -1;
    }
}

/* The join that may wait (v1, cgroup_late): /proc/self is kept open for enter_cgroup(), which
 * then runs at the first step that needs the child inside (the view of /sys/fs/cgroup) or at
 * the latest once the root is built. Everyone else joins here, right after SYNC_GO. */
static void
join_cgroup_now_or_later(struct sbx_child_ctx *c)
{
    c->proc_self_fd = open("/proc/self", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (!c->cgroup_late)
        enter_cgroup(c);
}

static void
setup_uts_and_loopback(struct sbx_child_ctx *c)
{
    sbx_spec_t *s = c->spec;
    if (s->ns_enabled[SBX_NS_NET] && !s->ns_path[SBX_NS_NET])
        bring_up_loopback(c);
    if (s->hostname && s->ns_enabled[SBX_NS_UTS] &&
        sethostname(s->hostname, strlen(s->hostname)) < 0)
        child_fail(c, errno, "sethostname `%s`", s->hostname);
    if (s->domainname && s->ns_enabled[SBX_NS_UTS] &&
        setdomainname(s->domainname, strlen(s->domainname)) < 0)
        child_fail(c, errno, "setdomainname");
}

/* sbx's PID 1: starts the workload, tells the parent its pid, then reaps and forwards signals
 * until the workload ends (run_init()). */
static __attribute__((noreturn)) void
run_workload_under_init(struct sbx_child_ctx *c)
{
    sigset_t mask, old;
    sigemptyset(&mask);
    int fwd[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
    for (size_t i = 0; i < ARRAY_SIZE(fwd); i++)
        sigaddset(&mask, fwd[i]);
    sigprocmask(SIG_BLOCK, &mask, &old);
    sbx_trace("forking the workload");
    /* Named before the workload exists: with the vfork below, init only runs on after the
     * workload's exec, and the workload must see its init as such. */
    prctl(PR_SET_NAME, "sbx-init", 0, 0, 0);
    pid_t w;
    /* It waits for `sbxrun start` before its exec; init carries on meanwhile. ASan cannot follow a
     * second task running on its thread's memory (it deadlocked init on its own lock), so its
     * builds fork too. */
#if defined(__SANITIZE_ADDRESS__)
    bool use_fork = true;
#else
    bool use_fork = c->wait_for_start;
#endif
    struct workload_start ws = {.c = c, .mask = &old};
    if (use_fork) {
        if ((w = fork()) == 0)
            workload_main(&ws);
    } else {
        /* Like posix_spawn: the workload runs in init's memory on a stack of its own until its
         * exec, with init suspended, instead of a fork copying init's page tables for two
         * processes to then fault their pages apart (~0.1 ms of every start). */
        static char stack[128 * 1024] __attribute__((aligned(16)));
        w = clone(workload_main, stack + sizeof(stack), CLONE_VM | CLONE_VFORK | SIGCHLD, &ws);
    }
    if (w < 0)
        child_fail(c, errno, "fork workload");
    /* The workload reports its own exec failure; tell the parent the pid once it is running. */
    sbx_sync_send(c->sync_fd, SYNC_STARTED, w, NULL);
    /* init never execs, so close-on-exec does not clean its fd table: whatever the caller of
     * sbxrun (or apid's launcher) held open stayed open in the sandbox's PID 1 for its whole life
     * (a lock a test suite held kept every other suite waiting behind a sandbox). Only the sync
     * socket is init's. The workload has a table of its own (no CLONE_FILES). */
    syscall(SYS_close_range, 0, 2, 0);
    if (c->sync_fd > 3)
        syscall(SYS_close_range, 3, c->sync_fd - 1, 0);
    syscall(SYS_close_range, c->sync_fd + 1, ~0U, 0);
    run_init(c, w, &mask);
}

void
sbx_child_main(struct sbx_child_ctx *c)
{
    sbx_spec_t *s = c->spec;
    struct sbx_sync_msg m;

    /* See arm_parent_death(); a parent that dies before this is seen by the recv below. */
    arm_parent_death(c);
    if (sbx_sync_recv(c->sync_fd, &m) <= 0 || m.type != SYNC_GO)
        _exit(125);
    snprintf(c->state_json, sizeof(c->state_json), "%s", m.msg);
    join_namespaces(c);
    /* Not dumpable: sandbox processes cannot ptrace us or open /proc/1/exe (CVE-2019-5736).
     * Only now: an unprivileged parent must still own our /proc files to write the id maps. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (c->in_userns) {
        /* Become root of the new user namespace (if mapped) so files we create are owned by it. */
        if (setresgid(0, 0, 0) == 0 && setresuid(0, 0, 0) < 0)
            child_fail(c, errno, "become root in the user namespace");
        arm_parent_death(c); /* the new uid cleared it */
    }
    join_cgroup_now_or_later(c);
    setup_uts_and_loopback(c);
    sbx_trace("go from the parent");
    setup_root(c);
    sbx_trace("root ready");
    enter_cgroup(c); /* the latest point of a deferred join; else done already */
    if (c->wait_net && (sbx_sync_recv(c->sync_fd, &m) <= 0 || m.type != SYNC_NET))
        _exit(125);
    if (s->terminal && c->console_fd >= 0) {
        int r = sbx_child_setup_pty(c);
        if (r < 0)
            child_fail(c, -r, "allocate the terminal (is devpts mounted on /dev/pts?)");
    }
    if (s->own_init && s->ns_enabled[SBX_NS_PID] && !s->ns_path[SBX_NS_PID])
        run_workload_under_init(c);
    c->workload_is_pid1 = true;
    sbx_child_exec(c);
}
