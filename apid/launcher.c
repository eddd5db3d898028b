/* apid's side of the launcher (apid/launcher/main.c, the `sbx-launcher` executable): started
 * before any thread exists, it forks every sandbox's monitor, so apid's threads never fork. */
#include "apid.h"
#include "launcher.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

static int launcher_fd = -1;
static pid_t launcher_pid;
static pthread_mutex_t launcher_lock = PTHREAD_MUTEX_INITIALIZER;

/* The launcher is its own small executable next to sbx-apid: every monitor and sandbox is a
 * fork of it, and a fork (and the sandbox's later exec and exit) costs in proportion to the
 * mappings copied; apid maps 23 libraries (TLS, SQLite, nftables...), the launcher 7. */
static char *
launcher_path(sbx_error_t *err)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n < 0) {
        sbx_make_error(err, errno, "readlink /proc/self/exe");
        return NULL;
    }
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    char *p = xasprintf("%.*s/sbx-launcher", slash ? (int)(slash - self) : 1, slash ? self : ".");
    if (access(p, X_OK) < 0) {
        sbx_make_error(err, errno, "`%s` (installed beside sbx-apid)", p);
        free(p);
        return NULL;
    }
    return p;
}

int
apid_launcher_start(sbx_error_t *err)
{
    cleanup_free char *path = launcher_path(err);
    if (!path)
        return -1;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return sbx_make_error(err, errno, "launcher socketpair");
    pid_t pid = fork();
    if (pid < 0) {
        close(sv[0]);
        close(sv[1]);
        return sbx_make_error(err, errno, "fork launcher");
    }
    if (pid == 0) {
        /* Set here, before the exec: a launcher must never outlive apid (apid going away, even
         * kill -9, ends it; never the monitors, which are not its children's children). */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        char fd[16];
        snprintf(fd, sizeof(fd), "%d", sv[1]);
        if (fcntl(sv[1], F_SETFD, 0) == 0)
            execl(path, "sbx-launcher", fd, (char *)NULL);
        fprintf(stderr, "sbx-apid: exec %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    close(sv[1]);
    launcher_fd = sv[0];
    launcher_pid = pid;
    return 0;
}

int
apid_launcher_spawn(const char *id, const char *dir, const char *state_root,
                    const char *cgroup_parent, pid_t *monitor, int *status_fd, sbx_error_t *err)
{
    char msg[MSG_MAX];
    const char *parts[] = {"start", id, dir, state_root, cgroup_parent ? cgroup_parent : ""};
    size_t len = 0;
    for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
        size_t n = strlen(parts[i]) + 1;
        if (len + n > sizeof(msg))
            return sbx_make_error(err, ENAMETOOLONG, "launcher request");
        memcpy(msg + len, parts[i], n);
        len += n;
    }
    char reply[512];
    int fd = -1;
    size_t nfd = 0;
    pthread_mutex_lock(&launcher_lock);
    ssize_t n = -EPIPE;
    if (launcher_fd >= 0 && TEMP_FAILURE_RETRY(send(launcher_fd, msg, len, MSG_NOSIGNAL)) >= 0)
        n = sbx_recv_fds(launcher_fd, reply, sizeof(reply) - 1, &fd, 1, &nfd);
    else if (launcher_fd >= 0)
        n = -errno;
    pthread_mutex_unlock(&launcher_lock);
    if (n <= 0)
        return sbx_make_error(err, n < 0 ? (int)-n : EPIPE, "launcher is gone");
    reply[n] = '\0';
    if (strncmp(reply, "ok ", 3) != 0) {
        if (fd >= 0)
            close(fd);
        return sbx_make_error(err, 0, "launcher: %s", reply);
    }
    *monitor = (pid_t)atoi(reply + 3);
    *status_fd = fd;
    return 0;
}

void
apid_launcher_stop(void)
{
    if (launcher_fd >= 0) {
        close(launcher_fd);
        launcher_fd = -1;
    }
    if (launcher_pid > 0) {
        TEMP_FAILURE_RETRY(waitpid(launcher_pid, NULL, 0));
        launcher_pid = 0;
    }
}
