/* sbx-probe: a static helper copied into sandboxes by the integration and security tests (the idea
 * of crun's tests/init.c). One verb per invocation; output is one "KEY: VALUE" line per fact so
 * shell tests can grep it.
 *
 * `syscalls` must be harmless when run on the host as root with no filter at all: every call uses
 * arguments that make the kernel fail (bad fd, bad magic, missing path) or acts on a throwaway
 * object (tmpfs on a fresh temp dir, our own child). A result other than EPERM/ENOSYS therefore
 * means the filter let the call through. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
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
#include <sys/sysmacros.h>
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
    TRY("quotactl", syscall(SYS_quotactl, (long)((0x800004 << 8) | 0) /* Q_GETFMT usr */,
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
        } socks[] = {
            {"socket_unix", AF_UNIX, SOCK_STREAM},    {"socket_inet", AF_INET, SOCK_STREAM},
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
    static const char *const keys[] = {
        "Uid",    "Gid",        "CapInh",  "CapPrm",          "CapEff", "CapBnd",
        "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters", NULL};
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
           fstat(fd, &st) == 0 && (unsigned long long)st.st_ino == strtoull(ino, NULL, 10) ? "yes"
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

/* `escape`: the real attempts of an escaping workload, one per line, each with arguments that
 * would do something inside the sandbox if the kernel let it (unlike `syscalls`, which only
 * looks at the filter). Run it only inside a sandbox: on a host, as root and without a filter,
 * several of these would succeed (nothing here touches the host's state even then: mounts land
 * on a fresh temp dir, namespaces and chroots are made in a throwaway child). MARKER is a host
 * path the test made; no way to reach it must exist. */
static long
unshare_one(unsigned long flag)
{
    return unshare((int)flag);
}
#define UNSHARE_FN(n, f)                                                                           \
    static long do_unshare_##n(void)                                                               \
    {                                                                                              \
        return unshare_one(f);                                                                     \
    }
UNSHARE_FN(mnt2, CLONE_NEWNS)
UNSHARE_FN(pid, CLONE_NEWPID)
UNSHARE_FN(uts, CLONE_NEWUTS)
UNSHARE_FN(ipc, CLONE_NEWIPC)
UNSHARE_FN(cgroup, CLONE_NEWCGROUP)
UNSHARE_FN(time, 0x00000080 /* CLONE_NEWTIME */)
UNSHARE_FN(user2, CLONE_NEWUSER)
UNSHARE_FN(net2, CLONE_NEWNET)

static long
do_umount_keys(void)
{
    return umount2("/proc/keys", MNT_DETACH);
}

static long
do_clone_all_ns(void)
{
    return raw_clone(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWUTS |
                     CLONE_NEWIPC | CLONE_NEWCGROUP);
}

/* The classic chroot break-out: chroot into a subdirectory while holding a directory fd outside
 * it, fchdir back to it, climb with "..", and chroot to where the climb ended. Prints where "/"
 * is afterwards compared with the sandbox's root: "same-root" means the climb stopped at the
 * sandbox's root (pivot_root left nothing above it). */
static int chroot_root_dev, chroot_root_ino;
static long
do_chroot_escape(void)
{
    char jail[] = "/tmp/sbx-probe-jail-XXXXXX";
    if (mkdtemp(jail) == NULL)
        return -1;
    int out = open("/", O_DIRECTORY | O_CLOEXEC);
    if (out < 0 || chroot(jail) < 0)
        return -1;
    if (fchdir(out) < 0)
        return -1;
    for (int i = 0; i < 64; i++)
        if (chdir("..") < 0)
            return -1;
    if (chroot(".") < 0)
        return -1;
    struct stat st;
    if (stat("/", &st) < 0)
        return -1;
    /* 0: stopped at the sandbox's root; EXDEV: the climb got above it. */
    if ((int)st.st_dev == chroot_root_dev && (int)st.st_ino == chroot_root_ino)
        return 0;
    errno = EXDEV;
    return -1;
}

static void
verb_escape(const char *marker)
{
    char dir[] = "/tmp/sbx-probe-XXXXXX";
    const char *target = mkdtemp(dir) ? dir : "/nonexistent-sbx-probe";
    errno = 0;
    int r = mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    report("mount_proc", r, errno);
    if (r == 0)
        umount2(target, MNT_DETACH);
    errno = 0;
    r = mount("/", target, NULL, MS_BIND | MS_REC, NULL);
    report("mount_bind_root", r, errno);
    if (r == 0)
        umount2(target, MNT_DETACH);
    rmdir(dir);
    /* Taking a mask away would show the real file under it. */
    in_child("umount_masked_keys", do_umount_keys);
    in_child("unshare_user", do_unshare_user2);
    in_child("unshare_mnt", do_unshare_mnt2);
    in_child("unshare_pid", do_unshare_pid);
    in_child("unshare_net", do_unshare_net2);
    in_child("unshare_uts", do_unshare_uts);
    in_child("unshare_ipc", do_unshare_ipc);
    in_child("unshare_cgroup", do_unshare_cgroup);
    in_child("unshare_time", do_unshare_time);
    in_child("clone_all_ns", do_clone_all_ns);
    {
        static const char *const ns[] = {"mnt", "net", "pid", "user", "uts", "ipc", "cgroup"};
        for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
            char path[64], name[32];
            snprintf(path, sizeof(path), "/proc/1/ns/%s", ns[i]);
            snprintf(name, sizeof(name), "setns_%s", ns[i]);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                printf("%s: open %s\n", name, ename(errno));
            else {
                TRY(name, setns(fd, 0));
                close(fd);
            }
            /* Our own namespace files open; only setns() itself stands in the way. */
            snprintf(path, sizeof(path), "/proc/self/ns/%s", ns[i]);
            snprintf(name, sizeof(name), "setns_self_%s", ns[i]);
            fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                printf("%s: open %s\n", name, ename(errno));
            else {
                TRY(name, setns(fd, 0));
                close(fd);
            }
        }
    }
    {
        /* Processes whose namespaces are not ours: a host process would show here. */
        DIR *d = opendir("/proc");
        char self_ns[64] = "", path[300], link[64];
        int foreign = 0, pids = 0;
        ssize_t n = readlink("/proc/self/ns/pid", self_ns, sizeof(self_ns) - 1);
        self_ns[n > 0 ? n : 0] = '\0';
        for (struct dirent *de; d && (de = readdir(d));) {
            if (de->d_name[0] < '0' || de->d_name[0] > '9')
                continue;
            pids++;
            snprintf(path, sizeof(path), "/proc/%s/ns/pid", de->d_name);
            n = readlink(path, link, sizeof(link) - 1);
            link[n > 0 ? n : 0] = '\0';
            if (n > 0 && strcmp(link, self_ns) != 0)
                foreign++;
        }
        if (d)
            closedir(d);
        printf("foreign_pidns_processes: %d\n", foreign);
        printf("max_pid_seen_le_64: %s\n", pids <= 64 ? "yes" : "no");
    }
    TRY("ptrace_attach_init", ptrace(PTRACE_ATTACH, 1, NULL, NULL));
    TRY("ptrace_seize_init", ptrace(PTRACE_SEIZE, 1, NULL, NULL));
    TRY("open_init_mem", open("/proc/1/mem", O_RDONLY | O_CLOEXEC));
    {
        char buf[8];
        struct iovec l = {buf, sizeof(buf)}, rv = {(void *)0x400000, sizeof(buf)};
        TRY("process_vm_readv_init", syscall(SYS_process_vm_readv, 1L, &l, 1L, &rv, 1L, 0L));
    }
    {
        errno = 0;
        int s = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, 1 /* ICMP */);
        report("socket_raw_inet", s, errno);
        if (s >= 0)
            close(s);
        errno = 0;
        s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
        report("socket_packet_raw", s, errno);
        if (s >= 0)
            close(s);
    }
    {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        TRY("finit_module_devnull", syscall(SYS_finit_module, (long)fd, "", 0L));
        close(fd);
    }
    TRY("keyctl_join_session", syscall(SYS_keyctl, 1L /* JOIN_SESSION_KEYRING */, "sbx-probe"));
    {
        union bpf_attr a;
        memset(&a, 0, sizeof(a));
        a.map_type = BPF_MAP_TYPE_ARRAY;
        a.key_size = 4;
        a.value_size = 4;
        a.max_entries = 1;
        errno = 0;
        long fd = syscall(SYS_bpf, (long)BPF_MAP_CREATE, &a, (long)sizeof(a));
        report("bpf_map_create", fd, errno);
        if (fd >= 0)
            close((int)fd);
    }
    {
        struct perf_event_attr pa;
        memset(&pa, 0, sizeof(pa));
        pa.type = PERF_TYPE_SOFTWARE;
        pa.size = sizeof(pa);
        pa.config = PERF_COUNT_SW_TASK_CLOCK;
        pa.disabled = 1;
        pa.exclude_kernel = 1;
        pa.exclude_hv = 1;
        errno = 0;
        long fd = syscall(SYS_perf_event_open, &pa, 0L, -1L, -1L, 0L);
        report("perf_event_open_self", fd, errno);
        if (fd >= 0)
            close((int)fd);
    }
    {
        errno = 0;
        long fd = syscall(SYS_userfaultfd, (long)(O_CLOEXEC | 1 /* UFFD_USER_MODE_ONLY */));
        report("userfaultfd_user", fd, errno);
        if (fd >= 0)
            close((int)fd);
    }
    {
        unsigned char params[120]; /* struct io_uring_params */
        memset(params, 0, sizeof(params));
        errno = 0;
        long fd = syscall(SYS_io_uring_setup, 4L, params);
        report("io_uring_setup_real", fd, errno);
        if (fd >= 0)
            close((int)fd);
    }
    TRY("kexec_file_load", syscall(SYS_kexec_file_load, -1L, -1L, 0UL, NULL, 0xdead0000UL));
    TRY("reboot_bad_magic", syscall(SYS_reboot, 0L, 0L, 0L, NULL));
    /* Opened for writing only: nothing is written, so a broken sandbox triggers nothing. */
    TRY("write_sysrq_trigger", open("/proc/sysrq-trigger", O_WRONLY | O_CLOEXEC));
    TRY("write_proc_sys_vm", open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC));
    TRY("write_proc_sys_kernel", open("/proc/sys/kernel/core_pattern", O_WRONLY | O_CLOEXEC));
    /* The sandbox's own netns: root inside owns this sysctl, only the read-only mount stops it. */
    TRY("write_proc_sys_net", open("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_CLOEXEC));
    TRY("write_sys_kernel", open("/sys/kernel/profiling", O_WRONLY | O_CLOEXEC));
    TRY("mkdir_sys", mkdir("/sys/fs/sbx-probe", 0755));
    if (marker) {
        struct stat st;
        char p[600];
        TRY("host_marker_path", stat(marker, &st));
        snprintf(p, sizeof(p), "/proc/1/root%s", marker);
        TRY("host_marker_via_proc1_root", stat(p, &st));
        snprintf(p, sizeof(p), "/proc/self/root%s", marker);
        TRY("host_marker_via_self_root", stat(p, &st));
    }
    TRY("mknod_char_null", mknod("/tmp/sbx-probe-null", S_IFCHR | 0666, makedev(1, 3)));
    unlink("/tmp/sbx-probe-null");
    TRY("mknod_block_sda", mknod("/tmp/sbx-probe-sda", S_IFBLK | 0600, makedev(8, 0)));
    unlink("/tmp/sbx-probe-sda");
    TRY("mknod_kvm", mknod("/tmp/sbx-probe-kvm", S_IFCHR | 0600, makedev(10, 232)));
    unlink("/tmp/sbx-probe-kvm");
    TRY("mknod_fifo", mknod("/tmp/sbx-probe-fifo", S_IFIFO | 0600, 0));
    unlink("/tmp/sbx-probe-fifo");
    TRY("open_dev_kvm", open("/dev/kvm", O_RDWR | O_CLOEXEC));
    {
        /* A real terminal of the sandbox's own devpts: TIOCSTI would push a byte into its input
         * (harmless here), TIOCLINUX is only for virtual consoles. */
        int m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC), s = -1, unlock = 0;
        char c = ' ';
        if (m >= 0 && ioctl(m, TIOCSPTLCK, &unlock) == 0)
            s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (s < 0) {
            printf("pty_tiocsti: no pty %s\n", ename(errno));
            printf("pty_tioclinux: no pty %s\n", ename(errno));
        } else {
            TRY("pty_tiocsti", ioctl(s, TIOCSTI, &c));
            char sub = 12; /* TIOCL_GETSHIFTSTATE: a read */
            TRY("pty_tioclinux", ioctl(s, TIOCLINUX, &sub));
            close(s);
        }
        if (m >= 0)
            close(m);
    }
    {
        /* Shocker (2014): a file handle forged or taken on the sandbox's root, opened through
         * a mount fd, bypasses the path walk. */
        struct {
            struct file_handle fh;
            unsigned char buf[128];
        } h;
        int mnt_id;
        h.fh.handle_bytes = sizeof(h.buf);
        errno = 0;
        long r2 = syscall(SYS_name_to_handle_at, AT_FDCWD, "/", &h.fh, &mnt_id, 0L);
        report("name_to_handle_at", r2, errno);
        int rootfd = open("/", O_DIRECTORY | O_CLOEXEC);
        if (r2 < 0) { /* forge one: ext4/xfs root inode 2 */
            h.fh.handle_bytes = 8;
            h.fh.handle_type = 1;
            memset(h.fh.f_handle, 0, 8);
            h.fh.f_handle[0] = 2;
        }
        errno = 0;
        long fd = syscall(SYS_open_by_handle_at, (long)rootfd, &h.fh, (long)O_RDONLY);
        report("open_by_handle_at_root", fd, errno);
        if (fd >= 0)
            close((int)fd);
        close(rootfd);
    }
    {
        struct stat st;
        stat("/", &st);
        chroot_root_dev = (int)st.st_dev;
        chroot_root_ino = (int)st.st_ino;
        in_child("chroot_escape_contained", do_chroot_escape);
    }
}

/* Opens /dev/null until the kernel refuses: prints how many and the errno (EMFILE at
 * RLIMIT_NOFILE; ENFILE would mean the host's file table ran out). */
static int
verb_fdbomb(void)
{
    long n = 0;
    int e = 0;
    for (;;) {
        if (open("/dev/null", O_RDONLY | O_CLOEXEC) < 0) {
            e = errno;
            break;
        }
        n++;
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    printf("fdbomb: opened %ld then %s (RLIMIT_NOFILE %llu)\n", n, ename(e),
           (unsigned long long)rl.rlim_cur);
    return 0;
}

static int
usage(void)
{
    fprintf(stderr, "usage: sbx-probe syscalls|caps|memhog MB|forkbomb N|spin SECONDS|tiocsti|"
                    "exe-write|exe-reopen PID INO WAIT|escape [MARKER]|fdbomb|pid|fds|cwd|sleep "
                    "SECONDS|exit N|\n"
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
    else if (strcmp(v, "fdbomb") == 0)
        return verb_fdbomb();
    else if (strcmp(v, "escape") == 0)
        verb_escape(a);
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
