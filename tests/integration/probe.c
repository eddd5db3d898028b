/* sbx-probe: a static helper copied into sandboxes by the integration and security tests (the idea of
 * crun's tests/init.c). One verb per invocation; output is one "KEY: VALUE" line per fact so shell
 * tests can grep it.
 *
 * `syscalls` must be harmless when run on the host as root with no filter at all: every call uses
 * arguments that make the kernel fail (bad fd, bad magic, missing path) or acts on a throwaway
 * object (tmpfs on a fresh temp dir, our own child). A result other than EPERM/ENOSYS therefore
 * means the filter let the call through. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static const char *
ename(int e)
{
    const char *n = strerrorname_np(e);
    return n ? n : "E?";
}

static void
report(const char *name, long r, int e)
{
    if (r >= 0)
        printf("%s: OK\n", name);
    else
        printf("%s: %s\n", name, ename(e));
    fflush(stdout);
}

#define TRY(name, call)                                                                            \
    do {                                                                                           \
        errno = 0;                                                                                 \
        long _r = (long)(call);                                                                    \
        report(name, _r, errno);                                                                   \
    } while (0)

/* Runs fn in a forked child so that side effects (new namespaces, personality) stay there; the
 * child exits with 0 for success or the errno. A signal death is reported as KILLED(SIG...). */
static void
in_child(const char *name, long (*fn)(void))
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        printf("%s: fork failed %s\n", name, ename(errno));
        return;
    }
    if (pid == 0) {
        errno = 0;
        long r = fn();
        _exit(r < 0 ? (errno ? errno : 255) : 0);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFSIGNALED(st))
        printf("%s: KILLED(SIG%s)\n", name, sigabbrev_np(WTERMSIG(st)) ?: "?");
    else if (WEXITSTATUS(st) == 0)
        printf("%s: OK\n", name);
    else
        printf("%s: %s\n", name, ename(WEXITSTATUS(st)));
    fflush(stdout);
}

static long
do_unshare_user(void)
{
    return unshare(CLONE_NEWUSER);
}
static long
do_unshare_ns(void)
{
    return unshare(CLONE_NEWNS);
}
static long
do_unshare_net(void)
{
    return unshare(CLONE_NEWNET);
}
static long
do_unshare_fs(void)
{
    return unshare(CLONE_FS | CLONE_FILES);
}

static long
raw_clone(unsigned long flags)
{
    long r = syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
    if (r == 0)
        _exit(0);
    if (r > 0)
        waitpid(r, NULL, 0);
    return r;
}
static long
do_clone_plain(void)
{
    return raw_clone(0);
}
static long
do_clone_newuser(void)
{
    return raw_clone(CLONE_NEWUSER);
}
static long
do_clone_newns(void)
{
    return raw_clone(CLONE_NEWNS);
}
static long
do_clone_newpid(void)
{
    return raw_clone(CLONE_NEWPID);
}
static long
do_clone_newnet(void)
{
    return raw_clone(CLONE_NEWNET);
}
static long
do_clone3(void)
{
    struct clone_args ca = {.exit_signal = SIGCHLD};
    long r = syscall(SYS_clone3, &ca, sizeof(ca));
    if (r == 0)
        _exit(0);
    if (r > 0)
        waitpid(r, NULL, 0);
    return r;
}
static long
do_fork(void)
{
    pid_t p = fork();
    if (p == 0)
        _exit(0);
    if (p > 0)
        waitpid(p, NULL, 0);
    return p;
}
static long
do_personality_linux32(void)
{
    return syscall(SYS_personality, 0x0008UL);
}
static long
do_personality_norandom(void)
{
    return syscall(SYS_personality, 0x0040000UL); /* ADDR_NO_RANDOMIZE */
}
static long
do_ptrace_child(void)
{
    pid_t c = fork();
    if (c == 0) {
        pause();
        _exit(0);
    }
    long r = ptrace(PTRACE_ATTACH, c, NULL, NULL);
    int e = errno;
    kill(c, SIGKILL);
    waitpid(c, NULL, 0);
    errno = e;
    return r;
}

/* i386 getpid (20) through int $0x80: the filter must not treat it as x86_64 nr 20 (writev). */
static long
do_i386_getpid(void)
{
#if defined(__x86_64__)
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory", "r8", "r9", "r10", "r11");
    if (ret < 0) {
        errno = -ret;
        return -1;
    }
    return ret;
#else
    errno = ENOSYS;
    return -1;
#endif
}
static long
do_x32_getpid(void)
{
    return syscall(39 | 0x40000000);
}
static long
do_newer_syscall(void)
{
    return syscall(999);
}

static void
verb_syscalls(void)
{
    char dir[] = "/tmp/sbx-probe-XXXXXX";
    const char *target = mkdtemp(dir) ? dir : "/nonexistent-sbx-probe";
    int mounted;

    errno = 0;
    mounted = mount("none", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k") == 0;
    report("mount", mounted ? 0 : -1, errno);
    /* A plain directory is not a mount point: EINVAL when umount2 is allowed. */
    TRY("umount2", umount2(target, mounted ? MNT_DETACH : 0));
    if (target == dir)
        rmdir(dir);
    TRY("pivot_root", syscall(SYS_pivot_root, "/nonexistent-sbx-a", "/nonexistent-sbx-b"));
    in_child("unshare_user", do_unshare_user);
    in_child("unshare_ns", do_unshare_ns);
    in_child("unshare_net", do_unshare_net);
    in_child("unshare_fs", do_unshare_fs);
    TRY("setns", setns(-1, CLONE_NEWNET));
    in_child("clone", do_clone_plain);
    in_child("clone_newuser", do_clone_newuser);
    in_child("clone_newns", do_clone_newns);
    in_child("clone_newpid", do_clone_newpid);
    in_child("clone_newnet", do_clone_newnet);
    in_child("clone3", do_clone3);
    in_child("fork", do_fork);
    in_child("ptrace", do_ptrace_child);
    /* Invalid flags: EINVAL after the permission checks, never a kexec (un)load. */
    TRY("kexec_load", syscall(SYS_kexec_load, 0UL, 100000UL, NULL, 0xdead0000UL));
    TRY("kexec_file_load", syscall(SYS_kexec_file_load, -1L, -1L, 0UL, NULL, 0xdead0000UL));
    TRY("init_module", syscall(SYS_init_module, NULL, 0UL, ""));
    TRY("finit_module", syscall(SYS_finit_module, -1L, "", 0L));
    TRY("delete_module", syscall(SYS_delete_module, "sbx_probe_no_such_module", (long)O_NONBLOCK));
    TRY("bpf", syscall(SYS_bpf, 0L /* BPF_MAP_CREATE */, NULL, 0L));
    TRY("perf_event_open", syscall(SYS_perf_event_open, NULL, 0L, -1L, -1L, 0L));
    TRY("keyctl", syscall(SYS_keyctl, 0L /* GET_KEYRING_ID */, -3L /* session */, 0L));
    TRY("add_key", syscall(SYS_add_key, NULL, NULL, NULL, 0L, 0L));
    TRY("request_key", syscall(SYS_request_key, NULL, NULL, NULL, 0L));
    {
        errno = 0;
        long fd = syscall(SYS_userfaultfd, (long)(O_CLOEXEC | 1 /* UFFD_USER_MODE_ONLY */));
        report("userfaultfd", fd, errno);
        if (fd >= 0)
            close(fd);
    }
    TRY("open_by_handle_at", syscall(SYS_open_by_handle_at, -1L, NULL, 0L));
    TRY("reboot", syscall(SYS_reboot, 0L, 0L, 0L, NULL)); /* bad magic: never reboots */
    TRY("swapon", syscall(SYS_swapon, "/nonexistent-sbx-probe", 0L));
    TRY("swapoff", syscall(SYS_swapoff, "/nonexistent-sbx-probe"));
    TRY("acct", syscall(SYS_acct, "/nonexistent-sbx-probe/acct"));
    TRY("quotactl",
        syscall(SYS_quotactl, (long)((0x800004 << 8) | 0) /* Q_GETFMT usr */,
                "/nonexistent-sbx-probe", 0L, NULL));
    TRY("syslog", syscall(SYS_syslog, 10L /* SIZE_BUFFER */, NULL, 0L));
#ifdef SYS_iopl
    TRY("iopl", syscall(SYS_iopl, 0L));
    TRY("ioperm", syscall(SYS_ioperm, 0x80UL, 1UL, 0L)); /* turning access off */
#endif
    {
        int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        char c = 'x';
        /* /dev/null is no tty: ENOTTY when allowed, nothing is ever injected. */
        TRY("ioctl_tiocsti", syscall(SYS_ioctl, (long)fd, 0x5412UL, &c));
        TRY("ioctl_tiocsti_hibits", syscall(SYS_ioctl, (long)fd, 0x100005412UL, &c));
        TRY("ioctl_tioclinux", syscall(SYS_ioctl, (long)fd, 0x541CUL, &c));
        int p[2], n;
        if (pipe2(p, O_CLOEXEC) == 0) {
            TRY("ioctl_fionread", ioctl(p[0], FIONREAD, &n));
            close(p[0]);
            close(p[1]);
        }
        close(fd);
    }
    TRY("personality_query", syscall(SYS_personality, 0xffffffffUL));
    in_child("personality_linux32", do_personality_linux32);
    in_child("personality_addr_no_randomize", do_personality_norandom);
    TRY("chroot", chroot("/nonexistent-sbx-probe"));
    {
        char buf[1];
        struct iovec l = {buf, 1}, r = {buf, 1};
        TRY("process_vm_readv", syscall(SYS_process_vm_readv, (long)getpid(), &l, 1L, &r, 1L, 0L));
    }
    TRY("io_uring_setup", syscall(SYS_io_uring_setup, 1L, NULL));
    {
        static const struct {
            const char *name;
            int domain, type;
        } socks[] = {{"socket_unix", AF_UNIX, SOCK_STREAM},    {"socket_inet", AF_INET, SOCK_STREAM},
                     {"socket_inet6", AF_INET6, SOCK_DGRAM},   {"socket_netlink", AF_NETLINK, SOCK_RAW},
                     {"socket_packet", AF_PACKET, SOCK_DGRAM}, {"socket_vsock", 40, SOCK_STREAM}};
        for (size_t i = 0; i < sizeof(socks) / sizeof(socks[0]); i++) {
            errno = 0;
            int s = socket(socks[i].domain, socks[i].type | SOCK_CLOEXEC, 0);
            report(socks[i].name, s, errno);
            if (s >= 0)
                close(s);
        }
    }
    TRY("openat2", syscall(SYS_openat2, AT_FDCWD, "/nonexistent-sbx-probe", NULL, 0UL));
    TRY("faccessat2", syscall(SYS_faccessat2, AT_FDCWD, "/", F_OK, 0));
    TRY("close_range", syscall(SYS_close_range, 1000000U, 1000001U, 0U));
    TRY("getpid", getpid());
    in_child("newer_syscall_999", do_newer_syscall);
    in_child("i386_getpid", do_i386_getpid);
    in_child("x32_getpid", do_x32_getpid);
}

static void
print_status_fields(const char *const *keys)
{
    FILE *f = fopen("/proc/self/status", "re");
    char line[512];
    if (f == NULL) {
        printf("error: /proc/self/status: %s\n", ename(errno));
        return;
    }
    while (fgets(line, sizeof(line), f))
        for (const char *const *k = keys; *k; k++)
            if (strncmp(line, *k, strlen(*k)) == 0 && line[strlen(*k)] == ':') {
                char *v = line + strlen(*k) + 1;
                v += strspn(v, " \t");
                printf("%s: %s", *k, v);
            }
    fclose(f);
}

static void
verb_caps(void)
{
    static const char *const keys[] = {"Uid",    "Gid",    "CapInh",  "CapPrm",           "CapEff",
                                       "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters",
                                       NULL};
    print_status_fields(keys);
}

static double
now(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
verb_memhog(long mb)
{
    for (long i = 1; i <= mb; i++) {
        char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            printf("memhog: mmap failed at %ld MB: %s\n", i, ename(errno));
            return 1;
        }
        memset(p, 0xa5, 1 << 20);
        printf("memhog: %ld MB\n", i);
        fflush(stdout);
    }
    printf("memhog: done %ld MB\n", mb);
    return 0;
}

static int
verb_forkbomb(long n)
{
    pid_t *pids = calloc(n > 0 ? n : 1, sizeof(*pids));
    long ok = 0;
    int first_err = 0;
    for (long i = 0; i < n; i++) {
        pid_t p = fork();
        if (p == 0) {
            for (;;)
                pause();
        }
        if (p < 0) {
            if (!first_err)
                first_err = errno;
            continue;
        }
        pids[ok++] = p;
    }
    printf("forkbomb: forked %ld of %ld\n", ok, n);
    printf("forkbomb: first_error %s\n", first_err ? ename(first_err) : "none");
    fflush(stdout);
    for (long i = 0; i < ok; i++)
        kill(pids[i], SIGKILL);
    for (long i = 0; i < ok; i++)
        waitpid(pids[i], NULL, 0);
    free(pids);
    return 0;
}

static int
verb_spin(double secs)
{
    double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID), w;
    volatile unsigned long x = 0;
    do {
        for (int i = 0; i < 100000; i++)
            x++;
        w = now(CLOCK_MONOTONIC);
    } while (w - w0 < secs);
    double c = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
    printf("spin: wall %.3f cpu %.3f ratio %.3f\n", w - w0, c, c / (w - w0));
    return 0;
}

static void
tiocsti_on(const char *name, int fd)
{
    char c = ' ';
    if (fd < 0) {
        printf("tiocsti_%s: open %s\n", name, ename(errno));
        return;
    }
    /* A space only, and only if the filter is absent: harmless on a real terminal. */
    TRY(name, ioctl(fd, TIOCSTI, &c));
}

static void
verb_tiocsti(void)
{
    tiocsti_on("tiocsti_fd0", 0);
    tiocsti_on("tiocsti_fd1", 1);
    tiocsti_on("tiocsti_fd2", 2);
    int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    tiocsti_on("tiocsti_devtty", fd);
    if (fd >= 0)
        close(fd);
}

static void
verb_exe_write(void)
{
    /* O_WRONLY on a running binary fails with ETXTBSY at best; never write anything. */
    TRY("exe_write_pid1", open("/proc/1/exe", O_WRONLY | O_CLOEXEC));
    TRY("exe_write_self", open("/proc/self/exe", O_WRONLY | O_CLOEXEC));
}

/* CVE-2019-5736 as the attack runs it: take an O_PATH handle on the executable of a runtime
 * process through /proc/PID/exe while that process still is the runtime (sbx's init, or a
 * sandbox's process waiting for `start`), keep it, and once nothing runs that file any more (the
 * runtime exec'd the workload or exited, so no ETXTBSY) reopen it for writing through
 * /proc/self/fd/N. A write on an executable that is running fails with ETXTBSY whatever sbx does,
 * so only a reopen after the runtime is gone says anything. Prints exe-open (OK or the errno),
 * then with a handle exe-is-runtime (whether it is the file with inode INO: the runtime binary the
 * test named) and exe-reopen-write (the errno, or OK: the attack worked), waiting up to WAIT
 * seconds for ETXTBSY to end. Nothing is ever written: a writable fd is closed at once. */
static void
verb_exe_reopen(const char *pid, const char *ino, const char *wait)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%s/exe", pid);
    errno = 0;
    int fd = open(path, O_PATH | O_CLOEXEC);
    report("exe-open", fd, errno);
    if (fd < 0)
        return;
    struct stat st;
    printf("exe-is-runtime: %s\n",
           fstat(fd, &st) == 0 && (unsigned long long)st.st_ino == strtoull(ino, NULL, 10)
               ? "yes"
               : "no");
    fflush(stdout);
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    int w, e;
    for (long left_ms = (long)(atof(wait) * 1000);; left_ms -= 50) {
        errno = 0;
        w = open(path, O_WRONLY | O_CLOEXEC);
        e = errno;
        if (w >= 0 || e != ETXTBSY || left_ms <= 0)
            break;
        usleep(50 * 1000);
    }
    if (w >= 0)
        close(w);
    report("exe-reopen-write", w, e);
    close(fd);
}

static void
verb_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    if (d == NULL) {
        printf("error: /proc/self/fd: %s\n", ename(errno));
        return;
    }
    while ((de = readdir(d))) {
        char path[300], target[512];
        if (de->d_name[0] == '.' || atoi(de->d_name) == dirfd(d))
            continue;
        snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
        ssize_t n = readlink(path, target, sizeof(target) - 1);
        target[n > 0 ? n : 0] = '\0';
        printf("fd %s: %s\n", de->d_name, target);
    }
    closedir(d);
}

static int
usage(void)
{
    fprintf(stderr, "usage: sbx-probe syscalls|caps|memhog MB|forkbomb N|spin SECONDS|tiocsti|"
                    "exe-write|exe-reopen PID INO WAIT|pid|fds|cwd|sleep SECONDS|exit N|\n"
                    "kill-self SIG\n");
    return 2;
}

int
main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2)
        return usage();
    const char *v = argv[1];
    const char *a = argc > 2 ? argv[2] : NULL;

    if (strcmp(v, "syscalls") == 0)
        verb_syscalls();
    else if (strcmp(v, "caps") == 0)
        verb_caps();
    else if (strcmp(v, "memhog") == 0 && a)
        return verb_memhog(atol(a));
    else if (strcmp(v, "forkbomb") == 0 && a)
        return verb_forkbomb(atol(a));
    else if (strcmp(v, "spin") == 0 && a)
        return verb_spin(atof(a));
    else if (strcmp(v, "tiocsti") == 0)
        verb_tiocsti();
    else if (strcmp(v, "exe-write") == 0)
        verb_exe_write();
    else if (strcmp(v, "exe-reopen") == 0 && argc > 4)
        verb_exe_reopen(argv[2], argv[3], argv[4]);
    else if (strcmp(v, "pid") == 0)
        printf("pid: %d\n", (int)getpid());
    else if (strcmp(v, "fds") == 0)
        verb_fds();
    else if (strcmp(v, "cwd") == 0) {
        char buf[4096];
        if (getcwd(buf, sizeof(buf)) == NULL) {
            printf("cwd: error %s\n", ename(errno));
            return 1;
        }
        printf("cwd: %s\n", buf);
    } else if (strcmp(v, "sleep") == 0 && a) {
        double s = atof(a);
        struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    } else if (strcmp(v, "exit") == 0 && a)
        return atoi(a);
    else if (strcmp(v, "kill-self") == 0 && a) {
        int sig = atoi(a);
        if (sig <= 0) {
            const char *n = strncmp(a, "SIG", 3) == 0 ? a + 3 : a;
            for (int s = 1; s < NSIG; s++)
                if (sigabbrev_np(s) && strcmp(sigabbrev_np(s), n) == 0)
                    sig = s;
        }
        if (sig <= 0)
            return usage();
        signal(sig, SIG_DFL);
        kill(getpid(), sig);
        return 1;
    } else
        return usage();
    return 0;
}
