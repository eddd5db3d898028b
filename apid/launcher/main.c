/* sbx-launcher: the single-threaded process that forks every sandbox's monitor for apid.
 * libsbx clones and execs, which is unsafe from a multithreaded process (another thread may hold
 * a libc lock at fork time, see the minijail note in STYLE.md), so apid's threads never fork:
 * they send "start" requests over a SOCK_SEQPACKET socket (launcher.h) and the launcher forks.
 *
 * For each sandbox the launcher forks a monitor (setsid, reaped by the kernel) that runs
 * sbx_container_run() and, once the sandbox has ended, writes <dir>/result.json atomically. The
 * monitor does not depend on apid or the launcher, so sandboxes survive apid restarts and kill -9.
 * The read end of the monitor's JSON status pipe travels back to apid with SCM_RIGHTS.
 *
 * A separate executable, started by apid with the socket's fd as its only argument, so that what
 * is forked per sandbox maps libsbx and libnl only. */
#include "container.h"
#include "launcher.h"
#include "netlink.h"
#include "state.h"
#include "utils.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/close_range.h>

/* ---------- monitor (runs in its own session, single-threaded) ---------- */

static void
write_result(const char *dir, int rc, const struct sbx_exit *res, const char *error)
{
    json_t *o =
        json_pack("{s:i, s:i, s:b, s:b, s:I}", "exitCode", rc < 0 ? 125 : res->exit_code, "signal",
                  rc < 0 ? 0 : res->signal, "oom", rc < 0 ? 0 : res->oom, "timedOut",
                  rc < 0 ? 0 : res->timed_out, "finishedAt", (json_int_t)sbx_realtime_ms());
    if (error)
        json_object_set_new(o, "error", json_string(error));
    cleanup_free char *txt = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    cleanup_free char *tmp = xasprintf("%s/result.json.tmp", dir);
    cleanup_free char *dst = xasprintf("%s/result.json", dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    safe_write(fd, txt, strlen(txt));
    fsync(fd);
    close(fd);
    rename(tmp, dst);
}

static __attribute__((noreturn)) void
monitor_main(const char *id, const char *dir, const char *state_root, const char *cgroup_parent,
             int status_fd)
{
    sbx_error_t err = NULL;
    prctl(PR_SET_NAME, "sbx-monitor");
    /* apid ignores SIGPIPE and the launcher ignores SIGHUP/SIGINT; a sandbox must start with
     * default dispositions and an empty mask. The monitor holds the status pipe's read end
     * itself, so the runtime's status writes never hit EPIPE. */
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    cleanup_free char *logp = xasprintf("%s/monitor.log", dir);
    int logfd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (null >= 0)
        dup2(null, 0);
    if (logfd >= 0) {
        dup2(logfd, 1);
        dup2(logfd, 2);
    }
    /* Nothing of apid's (sockets, the launcher channel) may leak into the sandbox. */
    close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    if (fcntl(status_fd, F_SETFD, FD_CLOEXEC) < 0)
        _exit(125);

    cleanup_free char *pidp = xasprintf("%s/monitor.pid", dir);
    cleanup_free char *pidtxt = xasprintf("%d %llu\n", getpid(), sbx_pid_start_time(getpid()));
    write_file(pidp, pidtxt, strlen(pidtxt), NULL);

    cleanup_free char *cfgp = xasprintf("%s/config.json", dir);
    json_error_t jerr;
    json_t *root = json_load_file(cfgp, JSON_REJECT_DUPLICATES, &jerr);
    struct sbx_exit res = {0};
    sbx_spec_t *spec = NULL;
    int rc;
    if (!root) {
        rc = sbx_make_error(&err, 0, "load %s: %s", cfgp, jerr.text);
    } else {
        rc = sbx_spec_parse(root, NULL, &spec, &err);
        json_decref(root);
    }
    /* net.json exists only for a sandbox on the bridge; without it the sandbox has just lo. */
    cleanup_free char *netp = xasprintf("%s/net.json", dir);
    json_t *plan = json_load_file(netp, 0, NULL);
    if (rc >= 0) {
        struct sbx_run_opts opts = {
            .id = id,
            .state_root = state_root,
            .cgroup_parent = cgroup_parent && *cgroup_parent ? cgroup_parent : NULL,
            .json_status_fd = status_fd,
            .keep_state = true,
            .quiet = false, /* runtime diagnostics go to monitor.log */
            .net_setup = plan ? apid_net_child_setup : NULL,
            .net_data = plan,
        };
        rc = sbx_container_run(spec, &opts, &res, &err);
    }
    if (rc < 0)
        fprintf(stderr, "sbx-monitor %s: %s\n", id, err ? err->msg : "failed");
    write_result(dir, rc, &res, rc < 0 && err ? err->msg : NULL);
    _exit(0);
}

/* ---------- launcher process ---------- */

static int
send_reply(int sock, const char *msg, int fd)
{
    return sbx_send_fds(sock, msg, strlen(msg), &fd, fd >= 0 ? 1 : 0) < 0 ? -1 : 0;
}

static void
handle_start(int sock, char *fields[5])
{
    int status[2];
    char reply[256];
    if (pipe2(status, O_CLOEXEC) < 0) {
        snprintf(reply, sizeof(reply), "err pipe: %s", strerror(errno));
        send_reply(sock, reply, -1);
        return;
    }
    /* One fork: the launcher ignores SIGCHLD, so the kernel reaps its monitors and none waits
     * for the launcher; when the launcher goes, the monitors are reparented (a double fork did
     * the same at the cost of another copy of this process, ~0.5 ms a sandbox). */
    pid_t mon = fork();
    if (mon == 0) {
        setsid();
        close(sock);
        /* status[0] stays open here (close-on-exec): with a reader always present the runtime's
         * final status line cannot fail with EPIPE after apid went away. */
        monitor_main(fields[1], fields[2], fields[3], fields[4], status[1]);
    }
    close(status[1]);
    if (mon < 0) {
        snprintf(reply, sizeof(reply), "err fork: %s", strerror(errno));
        send_reply(sock, reply, -1);
    } else {
        snprintf(reply, sizeof(reply), "ok %d", mon);
        send_reply(sock, reply, status[0]);
    }
    close(status[0]);
}

int
main(int argc, char **argv)
{
    int64_t sock = -1;
    if (argc != 2 || parse_int64(argv[1], 3, 1 << 20, &sock) < 0 ||
        fcntl((int)sock, F_SETFD, FD_CLOEXEC) < 0) {
        fprintf(stderr, "usage: sbx-launcher FD (started by sbx-apid, not by hand)\n");
        return 2;
    }
    /* apid going away (even kill -9) ends the launcher, never the monitors; apid set the
     * death signal before exec, and the socket's end closing covers a death before that. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGCHLD, SIG_IGN);
    char buf[MSG_MAX + 1];
    for (;;) {
        ssize_t n = TEMP_FAILURE_RETRY(recv((int)sock, buf, MSG_MAX, 0));
        if (n <= 0)
            _exit(0);
        buf[n] = '\0';
        /* "start\0id\0dir\0state_root\0cgroup_parent" */
        char *fields[5] = {0};
        char *p = buf;
        int nf = 0;
        while (nf < 5 && p < buf + n + 1) {
            fields[nf++] = p;
            p += strlen(p) + 1;
        }
        if (nf == 5 && strcmp(fields[0], "start") == 0 && id_is_valid(fields[1]))
            handle_start((int)sock, fields);
        else
            send_reply((int)sock, "err bad request", -1);
    }
}
