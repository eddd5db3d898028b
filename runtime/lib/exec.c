/* `sbxrun exec`: another process in a running sandbox. It goes through the same child tail as the
 * sandbox's first process (sbx_child_exec), after joining what that process lives in. */
#include "cgroup.h"
#include "container.h"
#include "linux.h"
#include "utils.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

/* The sandbox's namespaces are joined in sbx_ns_join_order (spec.h), their /proc files by name. */
#define JOIN_NAME(i) sbx_ns_info[sbx_ns_join_order[i]].proc_name
#define JOIN_FLAG(i) sbx_ns_info[sbx_ns_join_order[i]].clone_flag

static bool
same_ns(pid_t pid, const char *name)
{
    char a[64], b[64];
    struct stat sa, sb;
    snprintf(a, sizeof(a), "/proc/%d/ns/%s", pid, name);
    snprintf(b, sizeof(b), "/proc/self/ns/%s", name);
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_ino == sb.st_ino &&
           sa.st_dev == sb.st_dev;
}

static int
connect_console(const char *path, sbx_error_t *err)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(a.sun_path)) {
        if (fd >= 0)
            close(fd);
        return sbx_make_error(err, ENAMETOOLONG, "console socket `%s`", path);
    }
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    if (fd < 0 || TEMP_FAILURE_RETRY(connect(fd, (struct sockaddr *)&a, sizeof(a))) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return sbx_make_error(err, e, "connect to console socket `%s`", path);
    }
    return fd;
}

int
sbx_container_exec(const char *root, const char *id, const struct sbx_exec_opts *eo, int *exit_code,
                   sbx_error_t *err)
{
    root = root ? root : SBX_DEFAULT_STATE_ROOT;
    struct sbx_state *st = NULL;
    sbx_spec_t *spec = NULL;
    struct sbx_cgroup *cg = NULL;
    struct sbx_child_ctx cc = {
        .sync_fd = -1, .start_fd = -1, .console_fd = -1, .pty_slave = -1, .join_only = true};
    int ns_fds[SBX_NS_JOIN_COUNT];
    int sp[2] = {-1, -1};
    int root_fd = -1;
    json_t *proc = NULL;
    int r;
    for (size_t i = 0; i < SBX_NS_JOIN_COUNT; i++)
        ns_fds[i] = -1;
    for (int t = 0; t < SBX_NS_COUNT; t++)
        cc.ns_fd[t] = -1;

    if ((r = sbx_state_load(root, id, &st, err)) < 0)
        return r;
    const char *status = sbx_state_current_status(st);
    if (strcmp(status, "running") != 0) {
        r = sbx_make_error(err, 0, "sandbox `%s` is %s, not running", id, status);
        goto out;
    }
    if (eo->process == NULL) {
        /* `exec ID CMD...`: the sandbox's own process with other arguments, no terminal. */
        sbx_spec_t *base = NULL;
        if ((r = sbx_container_load_spec(root, id, NULL, &base, err)) < 0)
            goto out;
        proc = json_deep_copy(json_object_get(base->root, "process"));
        sbx_spec_free(base);
        json_t *args = json_array();
        for (char *const *a = eo->args; a && *a; a++)
            json_array_append_new(args, json_string(*a));
        json_object_set_new(proc, "args", args);
        json_object_set_new(proc, "terminal", json_false());
    } else {
        proc = json_incref(eo->process);
    }
    if ((r = sbx_container_load_spec(root, id, proc, &spec, err)) < 0)
        goto out;
    if (!spec->has_process || strv_len(spec->args) == 0) {
        r = sbx_make_error(err, 0, "exec: the process has no args");
        goto out;
    }
    if (spec->terminal && !eo->console_socket) {
        if (eo->detach) {
            r = sbx_make_error(err, 0,
                               "exec: process.terminal needs a console socket when detached");
            goto out;
        }
        spec->terminal = false; /* attached: the caller's own stdio is the terminal */
    }
    cc.spec = spec;
    cc.in_userns = spec->ns_enabled[SBX_NS_USER];
    if ((r = sbx_seccomp_compile_spec(spec, NULL, &cc.bpf, err)) < 0) {
        sbx_error_wrap(err, "seccomp profile");
        goto out;
    }
    cc.has_bpf = cc.bpf.len > 0;
    if (st->cgroup && (r = sbx_cgroup_open(st->cgroup, &cg, err)) < 0)
        goto out;
    for (size_t i = 0; i < SBX_NS_JOIN_COUNT; i++) {
        if (same_ns(st->pid, JOIN_NAME(i)))
            continue;
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/ns/%s", st->pid, JOIN_NAME(i));
        ns_fds[i] = open(path, O_RDONLY | O_CLOEXEC);
        if (ns_fds[i] < 0) {
            r = sbx_make_error(err, errno, "open `%s`", path);
            goto out;
        }
    }
    /* A sandbox in its creator's mount namespace is only chrooted: so is the new process. */
    if (!spec->ns_enabled[SBX_NS_MOUNT]) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/root", st->pid);
        root_fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root_fd < 0) {
            r = sbx_make_error(err, errno, "open `%s`", path);
            goto out;
        }
    }
    /* The pid may have been recycled between the state check and the opens. */
    if (!sbx_state_alive(st)) {
        r = sbx_make_error(err, ESRCH, "sandbox `%s` exited", id);
        goto out;
    }
    if (spec->terminal && (cc.console_fd = connect_console(eo->console_socket, err)) < 0) {
        r = cc.console_fd;
        goto out;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
        r = sbx_make_error(err, errno, "socketpair");
        goto out;
    }
    /* The process is a grandchild (a pid namespace is entered by forking); as subreaper we
     * still get its exit status when its parent, the joiner, is gone. */
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    if (cg && (r = sbx_cgroup_enter_self(cg, err)) < 0)
        goto out;
    pid_t joiner = fork();
    if (joiner < 0) {
        r = sbx_make_error(err, errno, "fork");
        goto out;
    }
    if (joiner == 0) {
        close(sp[0]);
        cc.sync_fd = sp[1];
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        for (size_t i = 0; i < SBX_NS_JOIN_COUNT; i++)
            if (ns_fds[i] >= 0 && setns(ns_fds[i], JOIN_FLAG(i)) < 0) {
                sbx_sync_send(cc.sync_fd, SYNC_ERROR, errno, "exec: join %s namespace: %s",
                              JOIN_NAME(i), strerror(errno));
                _exit(125);
            }
        if (root_fd >= 0 && (fchdir(root_fd) < 0 || chroot(".") < 0 || chdir("/") < 0)) {
            sbx_sync_send(cc.sync_fd, SYNC_ERROR, errno, "exec: chroot into the sandbox: %s",
                          strerror(errno));
            _exit(125);
        }
        pid_t p = fork();
        if (p < 0)
            _exit(125);
        if (p == 0) {
            if (spec->terminal) {
                int e = sbx_child_setup_pty(&cc);
                if (e < 0) {
                    sbx_sync_send(cc.sync_fd, SYNC_ERROR, -e, "exec: allocate terminal: %s",
                                  strerror(-e));
                    _exit(125);
                }
            }
            sbx_child_exec(&cc);
        }
        sbx_sync_send(cc.sync_fd, SYNC_STARTED, p, NULL);
        _exit(0);
    }
    close(sp[1]);
    sp[1] = -1;
    int jst;
    TEMP_FAILURE_RETRY(waitpid(joiner, &jst, 0));
    struct sbx_sync_msg m;
    pid_t child = -1;
    /* STARTED, then EOF once exec succeeded (the socket is close-on-exec), or an error. */
    while (sbx_sync_recv(sp[0], &m) > 0) {
        if (m.type == SYNC_STARTED)
            child = m.value;
        else if (m.type == SYNC_ERROR || m.type == SYNC_EXEC_FAILED) {
            r = sbx_make_error(err, 0, "%s", m.msg);
            if (child > 0)
                TEMP_FAILURE_RETRY(waitpid(child, NULL, 0));
            if (exit_code)
                *exit_code = m.type == SYNC_ERROR ? 125 : (m.value == ENOENT ? 127 : 126);
            goto out;
        }
    }
    if (child <= 0) {
        r = sbx_make_error(err, 0, "exec: the process could not be started");
        goto out;
    }
    if (eo->pid_file) {
        char buf[32];
        int n = snprintf(buf, sizeof(buf), "%d", child);
        if ((r = write_file(eo->pid_file, buf, n, err)) < 0)
            goto out;
    }
    if (eo->detach) {
        r = 0;
        goto out;
    }
    int wst;
    if (TEMP_FAILURE_RETRY(waitpid(child, &wst, 0)) < 0) {
        r = sbx_make_error(err, errno, "wait for the exec'd process");
        goto out;
    }
    if (exit_code)
        *exit_code = WIFEXITED(wst) ? WEXITSTATUS(wst) : 128 + WTERMSIG(wst);
    r = 0;
out:
    for (size_t i = 0; i < SBX_NS_JOIN_COUNT; i++)
        if (ns_fds[i] >= 0)
            close(ns_fds[i]);
    if (root_fd >= 0)
        close(root_fd);
    if (sp[0] >= 0)
        close(sp[0]);
    if (sp[1] >= 0)
        close(sp[1]);
    if (cc.console_fd >= 0)
        close(cc.console_fd);
    json_decref(proc);
    sbx_bpf_free(&cc.bpf);
    sbx_cgroup_free(cg);
    sbx_spec_free(spec);
    sbx_state_free(st);
    return r;
}
