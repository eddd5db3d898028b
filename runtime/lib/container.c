#include "container.h"
#include "image_store.h"
#include "caps.h"
#include "cgroup.h"
#include "linux.h"
#include "seccomp.h"
#include "sysctl.h"
#include "utils.h"

#include <fcntl.h>
#include <poll.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <sys/file.h>

static void
status_line(int fd, json_t *o)
{
    if (fd >= 0) {
        char *s = json_dumps(o, JSON_COMPACT);
        if (s) {
            size_t n = strlen(s);
            s[n] = '\n';
            safe_write(fd, s, n + 1);
            free(s);
        }
    }
    json_decref(o);
}

static int
write_map_direct(pid_t pid, const char *file, const struct sbx_idmap *maps, size_t n,
                 sbx_error_t *err)
{
    char path[64], buf[4096];
    size_t len = 0;
    for (size_t i = 0; i < n && len < sizeof(buf) - 64; i++)
        len += snprintf(buf + len, sizeof(buf) - len, "%u %u %u\n", maps[i].container_id,
                        maps[i].host_id, maps[i].size);
    snprintf(path, sizeof(path), "/proc/%d/%s", pid, file);
    cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return sbx_make_error(err, errno, "open %s", path);
    if (safe_write(fd, buf, len) < 0)
        return sbx_make_error(err, errno, "write %s (`%.*s`)", path, (int)(len ? len - 1 : 0), buf);
    return 0;
}

/* Unprivileged callers may write only a single mapping of their own id; anything else goes
 * through the setuid helpers from uidmap, which check /etc/subuid. */
static int
write_map_helper(pid_t pid, const char *helper, const struct sbx_idmap *maps, size_t n,
                 sbx_error_t *err)
{
    char **argv = NULL;
    strv_append(&argv, helper);
    char buf[32];
    snprintf(buf, sizeof(buf), "%d", pid);
    strv_append(&argv, buf);
    for (size_t i = 0; i < n; i++) {
        snprintf(buf, sizeof(buf), "%u", maps[i].container_id);
        strv_append(&argv, buf);
        snprintf(buf, sizeof(buf), "%u", maps[i].host_id);
        strv_append(&argv, buf);
        snprintf(buf, sizeof(buf), "%u", maps[i].size);
        strv_append(&argv, buf);
    }
    pid_t p = fork();
    if (p < 0) {
        strv_free(argv);
        return sbx_make_error(err, errno, "fork %s", helper);
    }
    if (p == 0) {
        execv(helper, argv);
        _exit(127);
    }
    strv_free(argv);
    int st;
    if (TEMP_FAILURE_RETRY(waitpid(p, &st, 0)) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return sbx_make_error(err, 0, "%s failed for pid %d (check /etc/subuid and /etc/subgid)",
                              helper, pid);
    return 0;
}

static int
write_id_maps(sbx_spec_t *s, pid_t pid, sbx_error_t *err)
{
    bool root = geteuid() == 0;
    bool single_self = s->n_uid_maps == 1 && s->uid_maps[0].host_id == geteuid() &&
                       s->uid_maps[0].size == 1 && s->n_gid_maps == 1 &&
                       s->gid_maps[0].host_id == getegid() && s->gid_maps[0].size == 1;
    int r;
    if (root || single_self) {
        if (!root) {
            char path[64];
            snprintf(path, sizeof(path), "/proc/%d/setgroups", pid);
            /* CVE-2014-8989: an unprivileged gid_map requires setgroups to be denied first. */
            r = write_file(path, "deny", 4, err);
            if (r < 0)
                return r;
        }
        r = write_map_direct(pid, "gid_map", s->gid_maps, s->n_gid_maps, err);
        if (r < 0)
            return r;
        return write_map_direct(pid, "uid_map", s->uid_maps, s->n_uid_maps, err);
    }
    r = write_map_helper(pid, "/usr/bin/newgidmap", s->gid_maps, s->n_gid_maps, err);
    if (r < 0)
        return r;
    return write_map_helper(pid, "/usr/bin/newuidmap", s->uid_maps, s->n_uid_maps, err);
}

static bool
resources_requested(const struct sbx_resources *r)
{
    return r->memory_limit > 0 || r->memory_swap > 0 || r->cpu_quota > 0 || r->cpu_shares > 0 ||
           r->cpu_weight > 0 || r->io_weight > 0 || r->cpuset_cpus || r->cpuset_mems;
}

static int
validate(sbx_spec_t *s, sbx_error_t *err)
{
    if (!s->has_process || strv_len(s->args) == 0)
        return sbx_make_error(err, 0, "config has no process to run");
    struct stat st;
    if (stat(s->rootfs, &st) < 0)
        return sbx_make_error(err, errno, "rootfs `%s`", s->rootfs);
    if (!S_ISDIR(st.st_mode))
        return sbx_make_error(err, ENOTDIR, "rootfs `%s`", s->rootfs);
    /* The child reaches the rootfs from its scratch root (oldroot + path), where an absolute
     * symlink on the way would resolve against the scratch root, not the host's: resolve the
     * path here, on the host, where the caller meant it (root.path is the caller's own, like the
     * bundle path; runc refuses such a path, crun follows it). */
    char *real = realpath(s->rootfs, NULL);
    if (real == NULL)
        return sbx_make_error(err, errno, "rootfs `%s`", s->rootfs);
    free(s->rootfs);
    s->rootfs = real;
    if (!s->ns_enabled[SBX_NS_MOUNT]) {
        /* Sharing the caller's mount namespace: sbxrun then only chroots into the rootfs and
         * mounts nothing (a mount would land in the caller's namespace). What cannot be had
         * without a mount is refused. */
        if (s->root_readonly)
            return sbx_make_error(err, 0, "root.readonly needs a mount namespace");
        if (s->rootfs_propagation)
            return sbx_make_error(err, 0, "linux.rootfsPropagation needs a mount namespace");
        if (s->overlay_rootfs)
            return sbx_make_error(err, 0, "run.sbx.rootfs.overlay needs a mount namespace");
        if (s->sysctl && json_object_size(s->sysctl) > 0)
            return sbx_make_error(err, 0, "linux.sysctl needs a mount namespace");
    }
    if (s->ns_enabled[SBX_NS_USER] && !s->ns_path[SBX_NS_USER] &&
        (s->n_uid_maps == 0 || s->n_gid_maps == 0))
        return sbx_make_error(err, 0, "a user namespace needs uidMappings and gidMappings");
    if (!s->ns_enabled[SBX_NS_USER] && geteuid() != 0)
        return sbx_make_error(err, EPERM, "running without a user namespace needs root");
    if (s->ns_path[SBX_NS_TIME])
        return sbx_make_error(err, ENOTSUP, "joining a time namespace is not supported");
    return sbx_sysctl_check_spec(s, err);
}

/* Opens every linux.namespaces[].path up front, so a wrong path or a namespace of the wrong
 * type fails `create` with a clear message instead of inside the child. */
static int
open_ns_paths(const sbx_spec_t *s, int fds[SBX_NS_COUNT], sbx_error_t *err)
{
    for (int t = 0; t < SBX_NS_COUNT; t++) {
        if (!s->ns_path[t])
            continue;
        fds[t] = open(s->ns_path[t], O_RDONLY | O_CLOEXEC);
        if (fds[t] < 0)
            return sbx_make_error(err, errno, "namespace path `%s`", s->ns_path[t]);
        int type = ioctl(fds[t], NS_GET_NSTYPE);
        if (type < 0)
            return sbx_make_error(err, errno, "`%s` is not a namespace", s->ns_path[t]);
        if (type != sbx_ns_info[t].clone_flag)
            return sbx_make_error(err, EINVAL, "`%s` is a namespace of another type",
                                  s->ns_path[t]);
    }
    return 0;
}

/* AF_UNIX paths are limited to 108 bytes and containerd's state roots plus 64-character ids
 * exceed that: address the socket through a directory fd instead. */
static void
unix_addr(struct sockaddr_un *a, int dirfd, const char *name)
{
    memset(a, 0, sizeof(*a));
    a->sun_family = AF_UNIX;
    if (dirfd >= 0)
        snprintf(a->sun_path, sizeof(a->sun_path), "/proc/self/fd/%d/%s", dirfd, name);
    else
        snprintf(a->sun_path, sizeof(a->sun_path), "%s", name);
}

static int
open_state_dir(const char *root, const char *id, sbx_error_t *err)
{
    cleanup_free char *dir = xasprintf("%s/%s", root, id);
    int fd = open(dir, O_DIRECTORY | O_PATH | O_CLOEXEC);
    if (fd < 0)
        return sbx_make_error(err, errno, "open `%s`", dir);
    return fd;
}

static int
listen_exec_sock(const char *root, const char *id, sbx_error_t *err)
{
    cleanup_close int dfd = open_state_dir(root, id, err);
    if (dfd < 0)
        return dfd;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return sbx_make_error(err, errno, "socket");
    struct sockaddr_un a;
    unix_addr(&a, dfd, "exec.sock");
    unlinkat(dfd, "exec.sock", 0);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1) < 0) {
        int e = errno;
        close(fd);
        return sbx_make_error(err, e, "listen on %s/%s/exec.sock", root, id);
    }
    return fd;
}

static int
connect_unix(int dirfd, const char *path, sbx_error_t *err)
{
    int fd = socket(AF_UNIX, (dirfd >= 0 ? SOCK_SEQPACKET : SOCK_STREAM) | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return sbx_make_error(err, errno, "socket");
    struct sockaddr_un a;
    if (dirfd < 0 && strlen(path) >= sizeof(a.sun_path)) {
        /* A long console socket path: go through its directory too. */
        cleanup_free char *dir = xstrdup(path);
        char *slash = strrchr(dir, '/');
        if (slash == NULL) {
            close(fd);
            return sbx_make_error(err, ENAMETOOLONG, "socket `%s`", path);
        }
        *slash = '\0';
        cleanup_close int dfd = open(dir[0] ? dir : "/", O_DIRECTORY | O_PATH | O_CLOEXEC);
        unix_addr(&a, dfd, slash + 1);
    } else {
        unix_addr(&a, dirfd, path);
    }
    if (TEMP_FAILURE_RETRY(connect(fd, (struct sockaddr *)&a, sizeof(a))) < 0) {
        int e = errno;
        close(fd);
        return sbx_make_error(err, e, "connect to `%s`", path);
    }
    return fd;
}

/* A built image (rootfs/build-images.sh) is a tree .<name>.<suffix> in the images dir that the
 * symlink <name> points to: a rebuild makes a new tree, switches the link with one rename, and
 * removes the old trees that no sandbox holds. The sandbox's config took the image as it was
 * then, once: root.path is the tree's own rootfs (sbx_config_set_image() resolves the link). A
 * shared flock on the tree's .lock marks the tree in use while the sandbox lives (the fd is
 * inherited by its init, which never execs, as with the hold on a pulled image's record; a file,
 * never a directory, so nothing of the host can be reached through the sandbox's fds). The
 * builder unlinks .lock under an exclusive flock before it removes a tree, so a tree whose .lock
 * is unlinked or gone is on its way out (unused until now: apid's create and its start are
 * apart): the link, switched before, is followed again to the image's current tree. A directory
 * without .lock that is not such a tree (made by hand or by an older builder) is used unheld.
 * *hold: the fd, or -1 when nothing is held. */
static int
hold_built_image(sbx_spec_t *spec, int *hold, sbx_error_t *err)
{
    *hold = -1;
    const char *name = spec->image_dir ? strrchr(spec->image_dir, '/') : NULL;
    const char *base = strrchr(spec->rootfs, '/');
    if (!name || spec->image_digest || !base || base == spec->rootfs || strcmp(base, "/rootfs"))
        return 0;
    name++;
    cleanup_free char *tree = xasprintf("%.*s", (int)(base - spec->rootfs), spec->rootfs);
    /* Bounded: a turn ends early only when a build removed the tree just looked at, which
     * cannot happen more often than builds end. */
    for (int turn = 0; turn < 100; turn++) {
        cleanup_free char *lock = xasprintf("%s/.lock", tree);
        cleanup_close int fd = open(lock, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0 && errno != ENOENT)
            return sbx_make_error(err, errno, "image `%s`: open %s", spec->image_dir, lock);
        bool gone = fd < 0;
        if (fd >= 0) {
            struct stat st;
            if (TEMP_FAILURE_RETRY(flock(fd, LOCK_SH)) < 0 || fstat(fd, &st) < 0)
                return sbx_make_error(err, errno, "image `%s`: lock %s", spec->image_dir, lock);
            gone = st.st_nlink == 0;
        }
        if (gone) {
            /* A builder's tree is named .<name>.<suffix>; anything else without .lock is used
             * as it is. */
            const char *tb = strrchr(tree, '/');
            size_t nl = strlen(name);
            if (fd < 0 &&
                !(tb && tb[1] == '.' && strncmp(tb + 2, name, nl) == 0 && tb[2 + nl] == '.'))
                return 0;
            char now[PATH_MAX];
            if (realpath(spec->image_dir, now) == NULL)
                return sbx_make_error(err, errno, "image `%s`", spec->image_dir);
            if (strcmp(now, tree) != 0) {
                free(tree);
                tree = xstrdup(now);
                continue;
            }
            /* The tree the link names, its .lock removed by hand: builders never remove that
             * tree, so it is used, unheld. */
            close_fds(&fd, 1);
        }
        if (strlen(tree) != (size_t)(base - spec->rootfs) ||
            strncmp(tree, spec->rootfs, base - spec->rootfs) != 0) {
            free(spec->rootfs);
            spec->rootfs = xasprintf("%s/rootfs", tree);
            /* What `create` saves and hooks see agree with what is mounted. */
            json_t *root = json_object_get(spec->root, "root");
            if (json_is_object(root))
                json_object_set_new(root, "path", json_string(spec->rootfs));
        }
        *hold = get_and_reset_fd(&fd);
        return 0;
    }
    return sbx_make_error(err, EAGAIN, "image `%s` kept being rebuilt while starting",
                          spec->image_dir);
}

struct run_ctx {
    const struct sbx_run_opts *o;
    const char *root;
    sbx_spec_t *spec;
    struct sbx_cgroup *cg;
    pid_t pid;
    int sync_fd;
    bool state_saved;
    /* The id's lock (sbx_state_lock()): held from the claim until the record names the live
     * sandbox, taken again for the record's last change. */
    struct sbx_lockfile *id_lock;
    /* The pid and start time the record was last saved with: once the lock was let go, the
     * record is still this run's only while it names them. */
    pid_t saved_pid;
    unsigned long long saved_pid_start;
    /* What sbx_container_run's steps share: the child's context (what it takes with it), the
     * signals forwarded while it lives and the masks around them, the signalfd and the
     * timeout's timer read by wait_loop(), and whether clone3 put the child in its cgroup. */
    struct sbx_child_ctx *cc;
    sigset_t mask, old_mask;
    int sigfd, timerfd;
    bool born_in_cgroup;
};

/* Takes the id's lock again (unless still held) and tells whether the record is still this
 * run's: after the sandbox died and the lock was let go, another `run --id` may have claimed the
 * id, and that record must be left alone. */
static bool
lock_own_record(struct run_ctx *rc)
{
    if (rc->id_lock->fd >= 0)
        return true; /* never let go: nobody else could have touched it */
    /* Removed meanwhile (a delete --force, or its whole root): nothing of it to change, and the
     * lock would make the root's directories again. */
    cleanup_free char *dir = xasprintf("%s/%s", rc->root, rc->o->id);
    if (access(dir, F_OK) < 0)
        return false;
    if (sbx_state_lock(rc->root, rc->o->id, rc->id_lock, NULL) < 0)
        return false;
    struct sbx_state *st = NULL;
    if (sbx_state_load(rc->root, rc->o->id, &st, NULL) < 0)
        return false;
    bool own = st->pid == rc->saved_pid && st->pid_start == rc->saved_pid_start;
    sbx_state_free(st);
    return own;
}

static void
run_ctx_cleanup(struct run_ctx *rc, bool remove_state)
{
    if (rc->pid > 0) {
        kill(rc->pid, SIGKILL);
        TEMP_FAILURE_RETRY(waitpid(rc->pid, NULL, 0));
        rc->pid = 0;
    }
    if (rc->cg) {
        sbx_error_t e = NULL;
        if (sbx_cgroup_destroy(rc->cg, &e) < 0 && !rc->o->quiet)
            sbx_error_print("sbxrun: warning", &e);
        sbx_cgroup_free(rc->cg);
        rc->cg = NULL;
    }
    if (rc->state_saved && remove_state) {
        if (lock_own_record(rc))
            sbx_state_remove(rc->root, rc->o->id, NULL);
        sbx_lockfile_release(rc->id_lock);
    }
    if (rc->sync_fd >= 0) {
        close(rc->sync_fd);
        rc->sync_fd = -1;
    }
}

static void
fill_state(struct run_ctx *rc, struct sbx_state *st, const char *status, char *created)
{
    st->id = (char *)rc->o->id;
    st->pid = rc->pid;
    st->status = (char *)status;
    st->bundle = rc->spec->bundle;
    st->rootfs = rc->spec->rootfs;
    st->created = created;
    st->annotations = json_object_get(rc->spec->root, "annotations");
}

/* prestart/createRuntime (creating), poststart (running), poststop (stopped) in run mode. */
static int
run_hooks(struct run_ctx *rc, const char *phase, const struct sbx_hook *h, size_t n,
          const char *status, sbx_error_t *err)
{
    if (n == 0)
        return 0;
    struct sbx_state st = {0};
    cleanup_free char *created = sbx_now_rfc3339();
    fill_state(rc, &st, status, created);
    cleanup_free char *json = sbx_state_oci_json(&st, status);
    return sbx_hooks_run(phase, h, n, NULL, json, err);
}

/* poststart and poststop: every hook runs, failures are warnings. */
static void
run_hooks_warn(struct run_ctx *rc, const char *phase, const struct sbx_hook *h, size_t n,
               const char *status, bool quiet)
{
    if (n == 0)
        return;
    struct sbx_state st = {0};
    cleanup_free char *created = sbx_now_rfc3339();
    fill_state(rc, &st, status, created);
    cleanup_free char *json = sbx_state_oci_json(&st, status);
    sbx_hooks_run_warn(phase, h, n, NULL, json, quiet);
}

static int
save_state(struct run_ctx *rc, const char *status, const struct sbx_exit *ex, sbx_error_t *err)
{
    struct sbx_state st = {0};
    cleanup_free char *cg = rc->cg ? sbx_cgroup_serialize(rc->cg) : NULL;
    cleanup_free char *created = sbx_now_rfc3339();
    fill_state(rc, &st, status, created);
    st.pid_start = rc->pid > 0 ? sbx_pid_start_time(rc->pid) : 0;
    st.cgroup = cg;
    if (ex) {
        st.exit_code = ex->exit_code;
        st.oom = ex->oom;
    }
    int r = sbx_state_save(rc->root, &st, err);
    if (r == 0) {
        rc->state_saved = true;
        rc->saved_pid = st.pid;
        rc->saved_pid_start = st.pid_start;
    }
    return r;
}

/* Blocks until the child sends `want`; its error report or its death fail the run. */
static int
wait_child(struct run_ctx *rc, int want, sbx_error_t *err)
{
    struct sbx_sync_msg m;
    for (;;) {
        int r = sbx_sync_recv(rc->sync_fd, &m);
        if (r < 0)
            return sbx_make_error(err, -r, "sync with the sandbox process");
        if (r == 0)
            return sbx_make_error(err, 0, "the sandbox process exited during setup");
        if (m.type == want)
            return 0;
        if (m.type == SYNC_ERROR || m.type == SYNC_EXEC_FAILED)
            return sbx_make_error(err, 0, "%s", m.msg);
    }
}

static int
wait_loop(struct run_ctx *rc, int sigfd, int timerfd, struct sbx_exit *res, sbx_error_t *err)
{
    int exit_status = -1;
    bool child_gone = false, sync_open = true;
    struct sbx_sync_msg m;
    while (!child_gone) {
        /* A closed socket reports POLLHUP even with no events asked for: once it is done, leave
         * it out, or this loop spins until init is reaped. The spinning is worse than wasted CPU:
         * init's exit waits for expedited RCU grace periods (unmounting its root), which a CPU
         * looping through syscalls holds up until the next tick (~4 ms per sandbox). */
        struct pollfd pfd[3] = {
            {sigfd, POLLIN, 0}, {sync_open ? rc->sync_fd : -1, POLLIN, 0}, {timerfd, POLLIN, 0}};
        if (poll(pfd, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            return sbx_make_error(err, errno, "poll");
        }
        if (pfd[1].revents) {
            int r = sbx_sync_recv(rc->sync_fd, &m);
            if (r <= 0)
                sync_open = false;
            else if (m.type == SYNC_EXIT) {
                sbx_trace("workload exited");
                exit_status = m.value;
            } else if (m.type == SYNC_EXEC_FAILED || m.type == SYNC_ERROR) {
                if (!rc->o->quiet)
                    fprintf(stderr, "sbxrun: %s\n", m.msg);
                res->exit_code = m.type == SYNC_ERROR ? 125 : (m.value == ENOENT ? 127 : 126);
                exit_status = -2;
            }
        }
        if (pfd[2].revents) {
            uint64_t n;
            if (read(timerfd, &n, sizeof(n)) > 0) {
                res->timed_out = true;
                if (rc->cg)
                    sbx_cgroup_kill(rc->cg, SIGKILL, NULL);
                kill(rc->pid, SIGKILL);
            }
        }
        if (pfd[0].revents) {
            struct signalfd_siginfo si;
            while (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
                if (si.ssi_signo != SIGCHLD) {
                    kill(rc->pid, si.ssi_signo);
                    continue;
                }
            }
            int st;
            pid_t p = waitpid(rc->pid, &st, WNOHANG);
            if (p == rc->pid) {
                child_gone = true;
                rc->pid = 0;
                if (exit_status == -1)
                    exit_status = st;
            }
        }
    }
    /* The init's report may still be queued behind the exit. */
    while (sync_open && sbx_sync_recv(rc->sync_fd, &m) > 0) {
        if (m.type == SYNC_EXIT)
            exit_status = m.value;
    }
    if (exit_status != -2) {
        if (WIFSIGNALED(exit_status)) {
            res->signal = WTERMSIG(exit_status);
            res->exit_code = 128 + res->signal;
        } else {
            res->exit_code = WEXITSTATUS(exit_status);
        }
    }
    if (rc->cg) {
        if (sbx_cgroup_oom_kills(rc->cg) > 0)
            res->oom = true;
    }
    if (res->timed_out)
        res->exit_code = 124;
    return 0;
}

/* Creates the sandbox's cgroup in rc->cg (none for a rootless caller without delegation and
 * without limits) and, on v1, opens the files through which its first process joins it (see
 * sbx_cgroup_self_join_fds()). Returns their number or a negative error. */
static int
create_cgroup(struct run_ctx *rc, int *join_fds, size_t max, sbx_error_t *err)
{
    const sbx_spec_t *spec = rc->spec;
    /* OCI cgroupsPath names the sandbox's own cgroup (containerd: /default/<id>); sbx's default
     * is named after the id, below the caller's cgroup (see sbx_cgroup_create()). */
    cleanup_free char *cg_parent = NULL, *cg_name = NULL;
    if (rc->o->cgroup_parent) {
        cg_parent = xstrdup(rc->o->cgroup_parent);
    } else if (spec->cgroups_path) {
        cg_parent = xstrdup(spec->cgroups_path);
        size_t n = strlen(cg_parent);
        while (n > 1 && cg_parent[n - 1] == '/')
            cg_parent[--n] = '\0';
        char *slash = strrchr(cg_parent, '/');
        cg_name = xstrdup(slash ? slash + 1 : cg_parent);
        if (slash)
            slash[slash == cg_parent ? 1 : 0] = '\0';
        else
            cg_parent[0] = '\0';
    }
    int r = sbx_cgroup_create(cg_parent, cg_name && *cg_name ? cg_name : rc->o->id,
                              &rc->spec->resources, &rc->cg, err);
    if (r < 0 || rc->cg == NULL)
        return r < 0 ? r : 0;
    return sbx_cgroup_self_join_fds(rc->cg, join_fds, max, err);
}

/* A new cgroup goes on record at once: a sbxrun killed before the sandbox runs leaves a cgroup
 * that `delete --force` must find. */
static int
record_cgroup(struct run_ctx *rc, sbx_error_t *err)
{
    return rc->cg ? save_state(rc, "creating", NULL, err) : 0;
}

/* ---- sbx_container_run, step by step ---- */

/* What the request asks for is refused before anything exists. A built image's tree is held
 * from here on (see hold_built_image()); first, since a tree removed after the config was made
 * is replaced by the image's current one. */
static int
check_request(struct run_ctx *rc, int *built_hold, sbx_error_t *err)
{
    const struct sbx_run_opts *o = rc->o;
    sbx_spec_t *spec = rc->spec;
    int r;
    if (!id_is_valid(o->id))
        return sbx_make_error(err, 0,
                              "invalid sandbox id `%s` (letters, digits, '_', '.', '-'; "
                              "at most 64)",
                              o->id ? o->id : "");
    if ((r = hold_built_image(spec, built_hold, err)) < 0 || (r = validate(spec, err)) < 0)
        return r;
    /* Refused before anything exists: on v1 the cgroup is only made after the clone. */
    if (!o->cgroup_parent && spec->cgroups_path && strchr(spec->cgroups_path, ':'))
        return sbx_make_error(err, ENOTSUP,
                              "cgroupsPath `%s` is in systemd form "
                              "(slice:prefix:name); sbxrun manages cgroupfs "
                              "directly",
                              spec->cgroups_path);
    if (!spec->ns_enabled[SBX_NS_MOUNT] && !o->quiet &&
        (spec->n_mounts > 0 || spec->n_devices > 0 || strv_len(spec->masked_paths) > 0 ||
         strv_len(spec->readonly_paths) > 0))
        fprintf(stderr,
                "sbxrun: warning: no mount namespace: mounts, devices, maskedPaths and "
                "readonlyPaths are not applied (the process is only chrooted into "
                "`%s`)\n",
                spec->rootfs);
    if (o->detach && spec->terminal && !o->console_socket)
        return sbx_make_error(err, 0, "process.terminal needs a console socket when detached");
    return 0;
}

/* The capability probe and the seccomp filter, made once here so that the child, its init and
 * the workload inherit them. */
static int
compile_seccomp(struct run_ctx *rc, sbx_error_t *err)
{
    struct sbx_child_ctx *cc = rc->cc;
    cc->in_userns = rc->spec->ns_enabled[SBX_NS_USER];
    sbx_trace("spec ready");
    /* Probed here once (42 prctl calls) so the child, its init and the workload inherit it. */
    sbx_caps_last_cap();
    cleanup_free char *seccomp_cache = xasprintf("%s/.cache/seccomp", rc->root);
    if (sbx_seccomp_compile_spec(rc->spec, seccomp_cache, &cc->bpf, err) < 0)
        return sbx_error_wrap(err, "seccomp profile");
    cc->has_bpf = cc->bpf.len > 0;
    sbx_trace("seccomp filter ready");
    return 0;
}

/* A pulled image is in use while the sandbox lives: a shared lock on its store record, held
 * by this process and inherited by the sandbox's init (which never execs, so the
 * close-on-exec fd stays with it; the workload's exec drops it). rmi and prune skip it.
 * *hold: the fd, or -1 for no pulled image. */
static int
hold_pulled_image(const sbx_spec_t *spec, int *hold, sbx_error_t *err)
{
    if (!spec->image_digest || !spec->image_store)
        return 0;
    struct sbx_store st = {.dir = spec->image_store,
                           .dirfd = open(spec->image_store, O_PATH | O_DIRECTORY | O_CLOEXEC)};
    *hold = st.dirfd >= 0 ? sbx_store_hold(&st, spec->image_digest, err) : -1;
    int e = errno;
    if (st.dirfd >= 0)
        close(st.dirfd);
    if (*hold >= 0)
        return 0;
    if (st.dirfd < 0)
        return sbx_make_error(err, e, "image store `%s`", spec->image_store);
    return sbx_error_wrap(err, "image %s", spec->image_digest);
}

/* Claims the id: an existing live sandbox of that name is an error, a stale record is not.
 * Under the id's lock, kept until the record names the live sandbox: another claim of the id
 * meanwhile would take this "creating" record (no live pid yet) for a stale one. */
static int
claim_id(struct run_ctx *rc, sbx_error_t *err)
{
    const char *id = rc->o->id;
    int r;
    if ((r = sbx_state_lock(rc->root, id, rc->id_lock, err)) < 0)
        return r;
    struct sbx_state *old = NULL;
    if (sbx_state_load(rc->root, id, &old, NULL) == 0) {
        bool alive = sbx_state_alive(old);
        sbx_state_free(old);
        if (alive)
            return sbx_make_error(err, EEXIST, "sandbox `%s` already exists", id);
        sbx_state_remove(rc->root, id, NULL);
    }
    if ((r = save_state(rc, "creating", NULL, err)) < 0)
        return r;
    sbx_trace("state recorded");
    return 0;
}

/* The signals sbxrun forwards to the sandbox (and SIGCHLD) are read from a signalfd while
 * they are blocked; rc->old_mask is restored when the run ends and in the child. */
static void
block_signals(struct run_ctx *rc)
{
    static const int fwd[] = {SIGCHLD, SIGTERM, SIGINT,  SIGHUP,
                              SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
    sigemptyset(&rc->mask);
    for (size_t i = 0; i < ARRAY_SIZE(fwd); i++)
        sigaddset(&rc->mask, fwd[i]);
    sigprocmask(SIG_BLOCK, &rc->mask, &rc->old_mask);
}

static int
open_signal_fds(struct run_ctx *rc, sbx_error_t *err)
{
    rc->sigfd = signalfd(-1, &rc->mask, SFD_CLOEXEC | SFD_NONBLOCK);
    rc->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (rc->sigfd < 0 || rc->timerfd < 0)
        return sbx_make_error(err, errno, "signalfd/timerfd");
    return 0;
}

/* What the child takes with it: the namespaces it joins, exec.sock and the config copy of a
 * detached sandbox, the console socket, and its end of the sync socket. */
static int
open_child_fds(struct run_ctx *rc, sbx_error_t *err)
{
    const struct sbx_run_opts *o = rc->o;
    struct sbx_child_ctx *cc = rc->cc;
    int r, sp[2];
    if ((r = open_ns_paths(rc->spec, cc->ns_fd, err)) < 0)
        return r;
    if (o->detach) {
        /* start, exec and delete use this copy: edits of the bundle must not reach them. */
        cleanup_free char *cfg = json_dumps(rc->spec->root, JSON_COMPACT);
        cleanup_free char *cfg_path = xasprintf("%s/%s/config.json", rc->root, o->id);
        if ((r = write_file(cfg_path, cfg, strlen(cfg), err)) < 0)
            return r;
        if ((cc->start_fd = listen_exec_sock(rc->root, o->id, err)) < 0)
            return cc->start_fd;
    }
    if (o->console_socket && rc->spec->terminal &&
        (cc->console_fd = connect_unix(-1, o->console_socket, err)) < 0)
        return cc->console_fd;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
        return sbx_make_error(err, errno, "socketpair");
    rc->sync_fd = sp[0];
    cc->sync_fd = sp[1];
    return 0;
}

/* Decides what the parent does while the child builds its root, and makes the cgroup now when
 * the child must be born in it. The network (a veth plumbed over netlink, ~2 ms) is set up
 * meanwhile; the child waits for it before anything of the workload runs. cgroup v2: the child
 * is born in its cgroup (CLONE_INTO_CGROUP), so that comes first. v1: the child joins by itself
 * (see sbx_cgroup_self_join_fds()), which lets the parent make the cgroups (a directory in each
 * of five hierarchies unless limits need more, ~0.4 ms) while the child builds its root: it
 * waits for them at its first step that needs them. Prestart hooks expect a created sandbox,
 * network (CNI plugins) and cgroups included: with those, the old order. */
static int
cgroup_before_clone(struct run_ctx *rc, sbx_error_t *err)
{
    const sbx_spec_t *spec = rc->spec;
    struct sbx_child_ctx *cc = rc->cc;
    bool early_hooks = spec->n_hooks_prestart + spec->n_hooks_create_runtime > 0;
    cc->wait_net = rc->o->net_setup && !early_hooks;
    bool want_cgroup = geteuid() == 0 || resources_requested(&spec->resources);
    cc->cgroup_late = want_cgroup && sbx_cgroup_mode() != SBX_CGROUP_UNIFIED && !early_hooks;
    if (!want_cgroup || cc->cgroup_late)
        return 0;
    int n = create_cgroup(rc, cc->cgroup_join_fds, ARRAY_SIZE(cc->cgroup_join_fds), err);
    if (n < 0)
        return n;
    cc->n_cgroup_join_fds = (size_t)n;
    return record_cgroup(rc, err);
}

/* The namespaces the clone makes. Not the cgroup namespace: the child unshares it once inside
 * its cgroup, which then is its root. Not a time namespace: clone() cannot take its flag. */
static int
clone_flags(const sbx_spec_t *spec)
{
    int flags = 0;
    for (int t = 0; t < SBX_NS_COUNT; t++)
        if (t != SBX_NS_CGROUP && t != SBX_NS_TIME && spec->ns_enabled[t] && !spec->ns_path[t])
            flags |= sbx_ns_info[t].clone_flag;
    return flags;
}

/* The parent's copies of what open_child_fds() and cgroup_before_clone() opened for the child:
 * once it is cloned (it has its own) or the run failed. */
static void
close_child_fds(struct sbx_child_ctx *cc)
{
    close_fds(&cc->sync_fd, 1);
    close_fds(cc->ns_fd, SBX_NS_COUNT);
    close_fds(&cc->start_fd, 1);
    close_fds(&cc->console_fd, 1);
    close_fds(cc->cgroup_join_fds, cc->n_cgroup_join_fds);
    cc->n_cgroup_join_fds = 0;
}

/* Clones the sandbox's first process into its new namespaces (and, on v2, its cgroup); the
 * child never returns from here. */
static int
clone_child(struct run_ctx *rc, sbx_error_t *err)
{
    const sbx_spec_t *spec = rc->spec;
    struct sbx_child_ctx *cc = rc->cc;
    int flags = clone_flags(spec);
    /* A pid namespace can only be entered by a new process: point our children at it for the
     * clone, then back at our own. */
    cleanup_close int own_pidns = -1;
    if (cc->ns_fd[SBX_NS_PID] >= 0) {
        own_pidns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
        if (own_pidns < 0 || setns(cc->ns_fd[SBX_NS_PID], CLONE_NEWPID) < 0)
            return sbx_make_error(err, errno, "join pid namespace `%s`", spec->ns_path[SBX_NS_PID]);
    }
    /* Kernels before 5.7 have no CLONE_INTO_CGROUP: clone, then move the child. */
    pid_t pid = -1;
    int cgfd = rc->cg ? sbx_cgroup_dirfd(rc->cg) : -1;
    if (cgfd >= 0) {
        struct clone_args ca = {.flags = (uint64_t)flags | CLONE_INTO_CGROUP,
                                .exit_signal = SIGCHLD,
                                .cgroup = (uint64_t)cgfd};
        pid = syscall(SYS_clone3, &ca, sizeof(ca));
        rc->born_in_cgroup = pid >= 0;
    }
    if (!rc->born_in_cgroup)
        pid = syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
    if (pid != 0 && own_pidns >= 0)
        setns(own_pidns, CLONE_NEWPID);
    if (pid < 0) {
        int e = errno;
        if (e == EPERM || e == ENOSPC || e == EUSERS)
            return sbx_make_error(err, e,
                                  "clone new namespaces (are unprivileged user namespaces "
                                  "allowed? see /proc/sys/user/max_user_namespaces)");
        return sbx_make_error(err, e, "clone");
    }
    if (pid == 0) {
        close(rc->sync_fd);
        /* The parent lets the id go once the record is written; this copy (its init never
         * execs) would otherwise keep the lock for the sandbox's life. */
        close(rc->id_lock->fd);
        sigprocmask(SIG_SETMASK, &rc->old_mask, NULL);
        cc->wait_for_start = rc->o->detach;
        sbx_child_main(cc);
    }
    rc->pid = pid;
    sbx_trace("cloned (new namespaces)");
    close_child_fds(cc);
    return 0;
}

/* What only the parent can set for the child: its id maps, its cgroup (where it was not born
 * in it), its OOM score and, unless the child waits for it later, its network. */
static int
configure_child(struct run_ctx *rc, sbx_error_t *err)
{
    sbx_spec_t *spec = rc->spec;
    pid_t pid = rc->pid;
    int r;
    if (spec->ns_enabled[SBX_NS_USER] && !spec->ns_path[SBX_NS_USER] &&
        (r = write_id_maps(spec, pid, err)) < 0)
        return r;
    if (rc->cg && sbx_cgroup_dirfd(rc->cg) >= 0 && !rc->born_in_cgroup &&
        (r = sbx_cgroup_enter(rc->cg, pid, err)) < 0)
        return r;
    if (spec->has_oom_score_adj) {
        char path[64], val[16];
        snprintf(path, sizeof(path), "/proc/%d/oom_score_adj", pid);
        snprintf(val, sizeof(val), "%d", spec->oom_score_adj);
        if ((r = write_file(path, val, strlen(val), err)) < 0)
            return r;
    }
    if (rc->o->net_setup && !rc->cc->wait_net &&
        (r = rc->o->net_setup(pid, rc->o->net_data, err)) < 0)
        return r;
    return 0;
}

/* Lets the child build its root. The state for the hooks that run inside the sandbox travels
 * with the go-ahead (only for those: the child is waiting for it). */
static int
send_go(struct run_ctx *rc, sbx_error_t *err)
{
    const sbx_spec_t *spec = rc->spec;
    struct sbx_state hs = {0};
    cleanup_free char *created = NULL, *json = NULL;
    if (spec->n_hooks_create_container + spec->n_hooks_start_container > 0) {
        created = sbx_now_rfc3339();
        fill_state(rc, &hs, "created", created);
        json = sbx_state_oci_json(&hs, "created");
        if (strlen(json) >= sizeof(((struct sbx_sync_msg *)0)->msg)) {
            free(json);
            hs.annotations = NULL;
            json = sbx_state_oci_json(&hs, "created");
        }
    }
    if (sbx_sync_send(rc->sync_fd, SYNC_GO, 0, "%s", json ? json : "") < 0)
        return sbx_make_error(err, errno, "sandbox init exited before setup");
    return 0;
}

/* v1 without early hooks: the cgroups are made while the child builds its root, and their
 * `tasks` files handed over (see cgroup_before_clone()). */
static int
cgroup_after_clone(struct run_ctx *rc, sbx_error_t *err)
{
    struct sbx_child_ctx *cc = rc->cc;
    if (!cc->cgroup_late)
        return 0;
    int fds[ARRAY_SIZE(cc->cgroup_join_fds)];
    int n = create_cgroup(rc, fds, ARRAY_SIZE(fds), err);
    if (n < 0)
        return n;
    sbx_trace("cgroup created");
    int r = sbx_sync_send_fds(rc->sync_fd, SYNC_CGROUP, fds, (size_t)n);
    close_fds(fds, (size_t)n);
    if (r < 0)
        return sbx_make_error(err, -r, "sandbox init exited during setup");
    /* After the hand-over, which the child is waiting for (~0.1 ms sooner). */
    return record_cgroup(rc, err);
}

/* The network the child waits for (see cgroup_before_clone()). */
static int
net_after_clone(struct run_ctx *rc, sbx_error_t *err)
{
    int r;
    if (!rc->cc->wait_net)
        return 0;
    if ((r = rc->o->net_setup(rc->pid, rc->o->net_data, err)) < 0)
        return r;
    if (sbx_sync_send(rc->sync_fd, SYNC_NET, 0, NULL) < 0)
        return sbx_make_error(err, errno, "sandbox init exited during setup");
    return 0;
}

/* prestart and createRuntime hooks, once the child has its mounts, then its go-ahead. */
static int
prestart_hooks(struct run_ctx *rc, sbx_error_t *err)
{
    const sbx_spec_t *spec = rc->spec;
    int r;
    if (spec->n_hooks_prestart + spec->n_hooks_create_runtime == 0)
        return 0;
    if ((r = wait_child(rc, SYNC_HOOKS, err)) < 0 ||
        (r = run_hooks(rc, "prestart", spec->hooks_prestart, spec->n_hooks_prestart, "created",
                       err)) < 0 ||
        (r = run_hooks(rc, "createRuntime", spec->hooks_create_runtime,
                       spec->n_hooks_create_runtime, "created", err)) < 0)
        return r;
    if (sbx_sync_send(rc->sync_fd, SYNC_GO, 0, NULL) < 0)
        return sbx_make_error(err, errno, "sandbox init exited during setup");
    return 0;
}

/* The record names the live sandbox ("created" when detached, else "running") and the id's
 * lock goes: a claim or a delete may look at it now. */
static int
record_started(struct run_ctx *rc, sbx_error_t *err)
{
    const struct sbx_run_opts *o = rc->o;
    int r;
    if (o->detach && (r = wait_child(rc, SYNC_CREATED, err)) < 0)
        return r;
    if ((r = save_state(rc, o->detach ? "created" : "running", NULL, err)) < 0)
        return r;
    sbx_lockfile_release(rc->id_lock);
    if (o->pid_file) {
        char buf[32];
        int n = snprintf(buf, sizeof(buf), "%d", rc->pid);
        if ((r = write_file(o->pid_file, buf, n, err)) < 0)
            return r;
    }
    return 0;
}

/* poststart hooks, then waits for the sandbox's end (or its timeout). */
static int
wait_for_exit(struct run_ctx *rc, struct sbx_exit *res, sbx_error_t *err)
{
    const struct sbx_run_opts *o = rc->o;
    run_hooks_warn(rc, "poststart", rc->spec->hooks_poststart, rc->spec->n_hooks_poststart,
                   "running", o->quiet);
    status_line(o->json_status_fd, json_pack("{s:s,s:i}", "id", o->id, "pid", rc->pid));
    if (o->timeout_sec > 0) {
        struct itimerspec its = {.it_value = {.tv_sec = o->timeout_sec}};
        timerfd_settime(rc->timerfd, 0, &its, NULL);
    }
    int r = wait_loop(rc, rc->sigfd, rc->timerfd, res, err);
    sbx_trace("init reaped");
    return r;
}

/* Reports how the sandbox ended, keeps or removes its record, and runs the poststop hooks. */
static void
finish_run(struct run_ctx *rc, const struct sbx_exit *res)
{
    const struct sbx_run_opts *o = rc->o;
    if (res->oom && !o->quiet)
        fprintf(stderr,
                "sbxrun: sandbox `%s`: the workload was killed for exceeding its memory "
                "limit (OOM)\n",
                o->id);
    if (res->timed_out && !o->quiet)
        fprintf(stderr, "sbxrun: sandbox `%s`: timed out after %d s, killed\n", o->id,
                o->timeout_sec);
    status_line(o->json_status_fd,
                json_pack("{s:s,s:i,s:i,s:b,s:b}", "id", o->id, "exit-code", res->exit_code,
                          "signal", res->signal, "oom", res->oom, "timed-out", res->timed_out));
    if (o->keep_state) {
        if (lock_own_record(rc))
            save_state(rc, "stopped", res, NULL);
        sbx_lockfile_release(rc->id_lock);
    }
    run_ctx_cleanup(rc, !o->keep_state);
    sbx_trace("cleaned up");
    run_hooks_warn(rc, "poststop", rc->spec->hooks_poststop, rc->spec->n_hooks_poststop, "stopped",
                   o->quiet);
}

/* A failed run leaves nothing behind: the child, its cgroup, its record and every descriptor
 * meant for it go. Returns r. */
static int
abort_run(struct run_ctx *rc, int r, sbx_error_t *err)
{
    close_child_fds(rc->cc);
    /* The child may have reported why it failed: prefer its message. */
    if (rc->sync_fd >= 0 && rc->pid > 0) {
        struct sbx_sync_msg m;
        struct pollfd pfd = {rc->sync_fd, POLLIN, 0};
        if (poll(&pfd, 1, 0) > 0 && sbx_sync_recv(rc->sync_fd, &m) > 0 && m.type == SYNC_ERROR)
            sbx_make_error(err, 0, "%s", m.msg);
    }
    run_ctx_cleanup(rc, true);
    return r;
}

/* From the claimed id to the sandbox's end (or, detached, to its creation). */
static int
create_and_wait(struct run_ctx *rc, struct sbx_exit *res, sbx_error_t *err)
{
    int r;
    if ((r = open_signal_fds(rc, err)) < 0 || (r = open_child_fds(rc, err)) < 0 ||
        (r = cgroup_before_clone(rc, err)) < 0 || (r = clone_child(rc, err)) < 0 ||
        (r = configure_child(rc, err)) < 0 || (r = send_go(rc, err)) < 0 ||
        (r = cgroup_after_clone(rc, err)) < 0 || (r = net_after_clone(rc, err)) < 0 ||
        (r = prestart_hooks(rc, err)) < 0 || (r = record_started(rc, err)) < 0)
        return abort_run(rc, r, err);
    if (rc->o->detach) {
        /* Created: the process now waits on exec.sock and belongs to our caller's reaper. */
        close_fds(&rc->sync_fd, 1);
        return 0;
    }
    if ((r = wait_for_exit(rc, res, err)) < 0)
        return abort_run(rc, r, err);
    finish_run(rc, res);
    return 0;
}

int
sbx_container_run(sbx_spec_t *spec, const struct sbx_run_opts *o, struct sbx_exit *res,
                  sbx_error_t *err)
{
    cleanup_lockfile struct sbx_lockfile id_lock = SBX_LOCKFILE_INIT;
    cleanup_close int built_hold = -1, image_hold = -1;
    struct sbx_child_ctx cc = {.spec = spec,
                               .sync_fd = -1,
                               .parent_pid = getpid(),
                               .start_fd = -1,
                               .console_fd = -1,
                               .pty_slave = -1,
                               .proc_self_fd = -1};
    for (int t = 0; t < SBX_NS_COUNT; t++)
        cc.ns_fd[t] = -1;
    struct run_ctx rc = {.o = o,
                         .spec = spec,
                         .cc = &cc,
                         .sync_fd = -1,
                         .sigfd = -1,
                         .timerfd = -1,
                         .id_lock = &id_lock,
                         .root = o->state_root ? o->state_root : SBX_DEFAULT_STATE_ROOT};
    memset(res, 0, sizeof(*res));

    int r = check_request(&rc, &built_hold, err);
    if (r < 0 || (r = compile_seccomp(&rc, err)) < 0)
        return r;
    if ((r = hold_pulled_image(spec, &image_hold, err)) == 0 && (r = claim_id(&rc, err)) == 0) {
        block_signals(&rc);
        r = create_and_wait(&rc, res, err);
        close_fds(&rc.sigfd, 1);
        close_fds(&rc.timerfd, 1);
        sigprocmask(SIG_SETMASK, &rc.old_mask, NULL);
    }
    sbx_bpf_free(&cc.bpf);
    return r;
}
