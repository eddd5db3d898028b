#include "seccomp.h"
#include "spec.h"
#include "unit.h"
#include "utils.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static int run_filtered(const struct sbx_bpf *bpf, int (*fn)(void));
static int errno_of(long r);
static int plain_getpid(void);

static json_t *
parse(const char *s)
{
    json_error_t jerr;
    json_t *j = json_loads(s, 0, &jerr);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    return j;
}

/* Compiles `text`; returns the compile status and leaves the message (or "") in msg. */
static int
compile_str(const char *text, struct sbx_bpf *bpf, char *msg, size_t msglen)
{
    sbx_error_t err = NULL;
    json_t *j = parse(text);
    int ret = sbx_seccomp_compile(j, bpf, &err);
    snprintf(msg, msglen, "%s", err ? err->msg : "");
    sbx_error_release(&err);
    json_decref(j);
    return ret;
}

static void
compile_named(const char *name, struct sbx_bpf *bpf)
{
    sbx_error_t err = NULL;
    json_t *j = NULL;
    CU_ASSERT_EQUAL_FATAL(sbx_seccomp_profile_load(name, &j, &err), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    int ret = sbx_seccomp_compile(j, bpf, &err);
    if (ret < 0)
        fprintf(stderr, "compile %s: %s\n", name, err->msg);
    CU_ASSERT_EQUAL_FATAL(ret, 0);
    json_decref(j);
}

UNIT_TEST(seccomp, builtin_profiles_compile)
{
    struct sbx_bpf a, b;
    compile_named("default", &a);
    compile_named("strict", &b);
    CU_ASSERT(a.len > 50);
    CU_ASSERT(b.len > 50);
    CU_ASSERT(a.len <= 4096);
    CU_ASSERT_PTR_NOT_NULL(a.insns);
    /* Last instruction of any valid seccomp program is a return. */
    CU_ASSERT_EQUAL(BPF_CLASS(a.insns[a.len - 1].code), BPF_RET);
    sbx_bpf_free(&a);
    sbx_bpf_free(&b);
    CU_ASSERT_PTR_NULL(a.insns);
}

static int
io_destroy_errno(void)
{
    /* io_destroy(0): EINVAL when the filter lets it through (no such context), harmless. */
    return errno_of(syscall(SYS_io_destroy, 0L));
}

/* The two built-in profiles differ where they say they do, run: strict refuses the AIO calls the
 * default allows, and both let ordinary programs run. */
UNIT_TEST(seccomp, builtin_profiles_behave)
{
    struct sbx_bpf def, strict;
    compile_named("default", &def);
    compile_named("strict", &strict);
    CU_ASSERT_EQUAL(run_filtered(&def, io_destroy_errno), EINVAL);
    CU_ASSERT_EQUAL(run_filtered(&strict, io_destroy_errno), EPERM);
    CU_ASSERT_EQUAL(run_filtered(&strict, plain_getpid), 0);
    sbx_bpf_free(&def);
    sbx_bpf_free(&strict);
}

/* Whether the program compares seccomp_data.arch with audit_arch anywhere. */
static bool
checks_arch(const struct sbx_bpf *bpf, uint32_t audit_arch)
{
    for (size_t i = 0; i < bpf->len; i++)
        if (bpf->insns[i].code == (BPF_JMP | BPF_JEQ | BPF_K) && bpf->insns[i].k == audit_arch)
            return true;
    return false;
}

UNIT_TEST(seccomp, only_sections_this_kernel_can_run)
{
    /* The default profile lists x86_64 and aarch64; a host runs only its own. */
    struct sbx_bpf bpf;
    compile_named("default", &bpf);
#if defined(__x86_64__)
    CU_ASSERT(checks_arch(&bpf, AUDIT_ARCH_X86_64));
    CU_ASSERT(!checks_arch(&bpf, AUDIT_ARCH_AARCH64));
#elif defined(__aarch64__)
    CU_ASSERT(checks_arch(&bpf, AUDIT_ARCH_AARCH64));
    CU_ASSERT(!checks_arch(&bpf, AUDIT_ARCH_X86_64));
#endif
    sbx_bpf_free(&bpf);
    /* i386 listed on an x86_64 host stays: the kernel runs it (int $0x80). */
    char msg[512];
    CU_ASSERT_EQUAL(
        compile_str("{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"architectures\":"
                    "[\"SCMP_ARCH_X86_64\",\"SCMP_ARCH_X86\",\"SCMP_ARCH_AARCH64\"],"
                    "\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ALLOW\"}]}",
                    &bpf, msg, sizeof(msg)),
        0);
#if defined(__x86_64__)
    CU_ASSERT(checks_arch(&bpf, AUDIT_ARCH_I386));
    CU_ASSERT(!checks_arch(&bpf, AUDIT_ARCH_AARCH64));
#endif
    sbx_bpf_free(&bpf);
}

static size_t
count_files(const char *dir)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static bool
same_bpf(const struct sbx_bpf *a, const struct sbx_bpf *b)
{
    return a->len == b->len && a->len > 0 &&
           memcmp(a->insns, b->insns, a->len * sizeof(*a->insns)) == 0;
}

/* A built-in profile named by the spec is compiled exactly as its parsed text would be, is cached
 * under its own key, and a name that is not built in is an error, not an empty filter. */
UNIT_TEST(seccomp, builtin_by_name_through_the_cache)
{
    char dir[] = "/tmp/sbx-unit-cache-XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    sbx_error_t err = NULL;
    struct sbx_bpf want, miss, hit, uncached, by_json;
    compile_named("default", &want);
    sbx_spec_t s = {.seccomp_builtin = "default"};
    CU_ASSERT_EQUAL_FATAL(sbx_seccomp_compile_spec(&s, dir, &miss, &err), 0);
    CU_ASSERT(same_bpf(&miss, &want));
    CU_ASSERT_EQUAL(count_files(dir), 1);
    CU_ASSERT_EQUAL_FATAL(sbx_seccomp_compile_spec(&s, dir, &hit, &err), 0);
    CU_ASSERT(same_bpf(&hit, &want));
    CU_ASSERT_EQUAL(count_files(dir), 1);
    CU_ASSERT_EQUAL_FATAL(sbx_seccomp_compile_spec(&s, NULL, &uncached, &err), 0);
    CU_ASSERT(same_bpf(&uncached, &want));

    /* The same profile as a linux.seccomp object: same program, an entry of its own. */
    CU_ASSERT_EQUAL_FATAL(sbx_seccomp_profile_load("default", &s.seccomp, &err), 0);
    s.seccomp_builtin = NULL;
    CU_ASSERT_EQUAL_FATAL(sbx_seccomp_compile_spec(&s, dir, &by_json, &err), 0);
    CU_ASSERT(same_bpf(&by_json, &want));
    CU_ASSERT_EQUAL(count_files(dir), 2);
    json_decref(s.seccomp);

    struct sbx_bpf none = {0};
    sbx_spec_t nothing = {0};
    CU_ASSERT_EQUAL(sbx_seccomp_compile_spec(&nothing, dir, &none, &err), 0);
    CU_ASSERT_EQUAL(none.len, 0);
    sbx_spec_t bogus = {.seccomp_builtin = "bogus"};
    CU_ASSERT(sbx_seccomp_compile_spec(&bogus, dir, &none, &err) < 0);
    CU_ASSERT_PTR_NOT_NULL(err ? strstr(err->msg, "bogus") : NULL);
    sbx_error_release(&err);
    CU_ASSERT_PTR_NULL(sbx_seccomp_builtin_text("../profiles/default", NULL));
    size_t len = 0;
    CU_ASSERT_PTR_NOT_NULL(sbx_seccomp_builtin_text("strict", &len));
    CU_ASSERT(len > 100);

    struct sbx_bpf *all[] = {&want, &miss, &hit, &uncached, &by_json};
    for (size_t i = 0; i < ARRAY_SIZE(all); i++)
        sbx_bpf_free(all[i]);
    CU_ASSERT_EQUAL(rm_rf(dir, NULL), 0);
}

UNIT_TEST(seccomp, none_is_null)
{
    sbx_error_t err = NULL;
    json_t *j = (json_t *)1;
    CU_ASSERT_EQUAL(sbx_seccomp_profile_load("none", &j, &err), 0);
    CU_ASSERT_PTR_NULL(j);
}

UNIT_TEST(seccomp, unknown_profile_named)
{
    sbx_error_t err = NULL;
    json_t *j = NULL;
    CU_ASSERT(sbx_seccomp_profile_load("nosuchprofile", &j, &err) < 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err);
    CU_ASSERT_PTR_NOT_NULL(strstr(err->msg, "nosuchprofile"));
    sbx_error_release(&err);
    CU_ASSERT(sbx_seccomp_profile_load("/nonexistent/p.json", &j, &err) < 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err);
    CU_ASSERT_PTR_NOT_NULL(strstr(err->msg, "/nonexistent/p.json"));
    sbx_error_release(&err);
}

UNIT_TEST(seccomp, load_by_path)
{
    char path[] = "/tmp/sbx-unit-seccomp-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    const char *p = "{\"defaultAction\":\"SCMP_ACT_ALLOW\"}";
    CU_ASSERT(write(fd, p, strlen(p)) == (ssize_t)strlen(p));
    close(fd);
    sbx_error_t err = NULL;
    json_t *j = NULL;
    CU_ASSERT_EQUAL(sbx_seccomp_profile_load(path, &j, &err), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    /* The file's own profile, not some other one. */
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "defaultAction")) ?: "",
                           "SCMP_ACT_ALLOW");
    CU_ASSERT_EQUAL(json_object_size(j), 1);
    json_decref(j);
    unlink(path);
}

UNIT_TEST(seccomp, unknown_syscall_is_error)
{
    struct sbx_bpf bpf;
    char msg[512];
    CU_ASSERT(
        compile_str("{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\","
                    "\"no_such_syscall_x\"],\"action\":\"SCMP_ACT_ALLOW\"}]}",
                    &bpf, msg, sizeof(msg)) < 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "no_such_syscall_x"));
}

static int
read_allowed_write_denied(void)
{
    int code = 0;
    if (errno_of(syscall(SYS_read, -1L, NULL, 0)) != EBADF)
        code = 2; /* the rule's known name was dropped with the unknown one */
    else if (errno_of(syscall(SYS_write, -1L, NULL, 0)) != EPERM)
        code = 3; /* the rule allowed more than it names */
    /* exit_group directly: under ASan, _exit() runs the leak checker, which needs calls this
     * filter refuses. */
    syscall(SYS_exit_group, code);
    return code;
}

/* An unknown name marked optional is skipped, and only it: the rest of the entry still applies
 * (run under the filter, not just compiled). Names libseccomp knows but this architecture lacks
 * add nothing: the program is the one without them. */
UNIT_TEST(seccomp, optional_unknown_ok)
{
    struct sbx_bpf bpf, plain, extra;
    char msg[512];
    /* exit_group: the child must be able to report. */
    CU_ASSERT_EQUAL_FATAL(
        compile_str("{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":["
                    "\"read\",\"exit_group\",\"no_such_syscall_x\"],"
                    "\"action\":\"SCMP_ACT_ALLOW\",\"optional\":true}]}",
                    &bpf, msg, sizeof(msg)),
        0);
    CU_ASSERT_EQUAL(run_filtered(&bpf, read_allowed_write_denied), 0);
    sbx_bpf_free(&bpf);
    /* Known to libseccomp but not to x86_64: accepted without "optional". */
    CU_ASSERT_EQUAL_FATAL(
        compile_str("{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":["
                    "\"read\",\"chown32\",\"socketcall\"],"
                    "\"action\":\"SCMP_ACT_ALLOW\"}]}",
                    &extra, msg, sizeof(msg)),
        0);
    CU_ASSERT_EQUAL_FATAL(
        compile_str("{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":["
                    "\"read\"],\"action\":\"SCMP_ACT_ALLOW\"}]}",
                    &plain, msg, sizeof(msg)),
        0);
#if defined(__x86_64__)
    CU_ASSERT(same_bpf(&extra, &plain));
#endif
    sbx_bpf_free(&extra);
    sbx_bpf_free(&plain);
}

UNIT_TEST(seccomp, bad_values_named)
{
    struct sbx_bpf bpf;
    char msg[512];
    CU_ASSERT(compile_str("{\"defaultAction\":\"SCMP_ACT_BOGUS\"}", &bpf, msg, sizeof(msg)) < 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "SCMP_ACT_BOGUS"));
    CU_ASSERT(
        compile_str("{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\"],"
                    "\"action\":\"SCMP_ACT_WHATEVER\"}]}",
                    &bpf, msg, sizeof(msg)) < 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "SCMP_ACT_WHATEVER"));
    CU_ASSERT(compile_str("{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"architectures\":["
                          "\"SCMP_ARCH_VAX\"]}",
                          &bpf, msg, sizeof(msg)) < 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "SCMP_ARCH_VAX"));
    CU_ASSERT(compile_str("{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"flags\":[\"SECCOMP_FLAG_X\"]}",
                          &bpf, msg, sizeof(msg)) < 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "SECCOMP_FLAG_X"));
    CU_ASSERT(
        compile_str("{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\"],"
                    "\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":0,\"value\":1,"
                    "\"op\":\"SCMP_CMP_SORTOF\"}]}]}",
                    &bpf, msg, sizeof(msg)) < 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "SCMP_CMP_SORTOF"));
    CU_ASSERT(
        compile_str("{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\"],"
                    "\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":6,\"value\":1,"
                    "\"op\":\"SCMP_CMP_EQ\"}]}]}",
                    &bpf, msg, sizeof(msg)) < 0);
    CU_ASSERT(
        compile_str("{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\"],"
                    "\"action\":\"SCMP_ACT_ALLOW\",\"includes\":{\"caps\":[\"CAP_SYS_ADMIN\"]}}]}",
                    &bpf, msg, sizeof(msg)) < 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "includes"));
    CU_ASSERT(compile_str("[]", &bpf, msg, sizeof(msg)) < 0);
}

/* The argument tested by the operator below: close(fd) on descriptors that are not open, so the
 * call is harmless either way and says which way the filter went (42: the rule matched, EBADF:
 * it did not and the default let it through). */
static long close_arg;
static int
close_errno(void)
{
    return errno_of(syscall(SYS_close, close_arg));
}

/* Each operator, run: one argument the rule must match and one it must not, on either side of
 * the value (compiling alone would pass with the operators mixed up). */
UNIT_TEST(seccomp, all_arg_operators)
{
    static const struct {
        const char *op;
        long value, value2, match, miss;
    } ops[] = {
        {"SCMP_CMP_NE", 1000000, 0, 1000001, 1000000},
        {"SCMP_CMP_LT", 1000000, 0, 999999, 1000000},
        {"SCMP_CMP_LE", 1000000, 0, 1000000, 1000001},
        {"SCMP_CMP_EQ", 1000000, 0, 1000000, 999999},
        {"SCMP_CMP_GE", 1000000, 0, 1000000, 999999},
        {"SCMP_CMP_GT", 1000000, 0, 1000001, 1000000},
        /* (arg & 0xff) == 8 */
        {"SCMP_CMP_MASKED_EQ", 0xff, 8, 0xf4208, 0xf4241},
    };
    for (size_t i = 0; i < ARRAY_SIZE(ops); i++) {
        struct sbx_bpf bpf;
        char msg[512];
        cleanup_free char *p =
            xasprintf("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"close\"],"
                      "\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":42,\"args\":[{\"index\":0,"
                      "\"value\":%ld,\"valueTwo\":%ld,\"op\":\"%s\"}]}]}",
                      ops[i].value, ops[i].value2, ops[i].op);
        int ret = compile_str(p, &bpf, msg, sizeof(msg));
        CU_ASSERT_EQUAL(ret, 0);
        if (ret != 0)
            continue;
        close_arg = ops[i].match;
        int got = run_filtered(&bpf, close_errno);
        if (got != 42)
            fprintf(stderr, "%s: close(%ld) gave errno %d, want 42\n", ops[i].op, close_arg, got);
        CU_ASSERT_EQUAL(got, 42);
        close_arg = ops[i].miss;
        got = run_filtered(&bpf, close_errno);
        if (got != EBADF)
            fprintf(stderr, "%s: close(%ld) gave errno %d, want EBADF\n", ops[i].op, close_arg,
                    got);
        CU_ASSERT_EQUAL(got, EBADF);
        sbx_bpf_free(&bpf);
    }
}

/* Runs `fn` in a child under `bpf` with NO_NEW_PRIVS; returns the child's exit code or 128+sig. */
static int
run_filtered(const struct sbx_bpf *bpf, int (*fn)(void))
{
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
            _exit(100);
        if (sbx_seccomp_apply(bpf) < 0)
            _exit(101);
        _exit(fn());
    }
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int
errno_of(long r)
{
    return r < 0 ? errno : 0;
}

/* Each check returns a distinct code so a failure says which one. */
static int
check_default_filter(void)
{
    char dir[] = "/tmp/sbx-unit-mnt-XXXXXX";
    if (mkdtemp(dir) == NULL)
        return 2;
    int e = errno_of(mount("none", dir, "tmpfs", 0, "size=4k"));
    if (e == 0)
        umount2(dir, MNT_DETACH);
    rmdir(dir);
    if (e != EPERM)
        return 3;
    if (getpid() <= 0)
        return 4;
    struct clone_args ca = {.exit_signal = SIGCHLD};
    long r = syscall(SYS_clone3, &ca, sizeof(ca));
    if (r == 0)
        _exit(0);
    if (r > 0 || errno != ENOSYS)
        return 5;
    if (errno_of(unshare(CLONE_NEWUSER)) != EPERM)
        return 6;
    /* ioctl: TIOCSTI blocked, even with garbage in the upper half of the 32-bit cmd register. */
    if (errno_of(syscall(SYS_ioctl, 0, 0x5412UL, "x")) != EPERM)
        return 7;
    if (errno_of(syscall(SYS_ioctl, 0, 0x100005412UL, "x")) != EPERM)
        return 8;
    int fds[2], n = 0;
    if (pipe(fds) < 0 || ioctl(fds[0], FIONREAD, &n) < 0)
        return 9;
    if (errno_of(syscall(SYS_personality, 0x0040000UL)) != EPERM)
        return 10;
    /* A number far above anything the profile names: "newer than the profile". */
    if (errno_of(syscall(1000)) != ENOSYS)
        return 11;
    pid_t c = fork();
    if (c < 0)
        return 12;
    if (c == 0)
        _exit(0);
    waitpid(c, NULL, 0);
    return 0;
}

static int
x32_getpid(void)
{
    syscall(39 | 0x40000000);
    return 0;
}

static int
plain_getpid(void)
{
    return getpid() > 0 ? 0 : 1;
}

/* What the sandbox's init does, each a distinct code; then what it must not be able to do. */
static int
check_init_filter(pid_t self)
{
    /* The pid comes from before the filter: getpid() fails under it, and kill(-1) would signal
     * every process there is. */
    if (self <= 1)
        return 1;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    if (kill(self, SIGUSR1) < 0)
        return 1;
    siginfo_t si;
    if (sigwaitinfo(&set, &si) != SIGUSR1)
        return 2;
    if (waitpid(-1, NULL, WNOHANG) != -1 || errno != ECHILD)
        return 3;
    int sv[2] = {-1, -1};
    if (errno_of(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv)) != EPERM)
        return 4;
    if (errno_of(open("/", O_RDONLY | O_DIRECTORY)) != EPERM)
        return 5;
    if (errno_of(syscall(SYS_getpid)) != EPERM)
        return 6;
    if (errno_of(fork()) != EPERM)
        return 7;
    return 0;
}

UNIT_TEST(seccomp, init_filter_allows_only_its_loop)
{
    int sv[2];
    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        /* Blocked before the filter, as init's are (rt_sigprocmask is not allowed under it). */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGUSR1);
        pid_t self = getpid();
        if (sigprocmask(SIG_BLOCK, &set, NULL) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
            sbx_seccomp_apply_init(NULL) < 0)
            _exit(100);
        /* Reporting back to the parent is allowed (sendto). */
        int code = check_init_filter(self);
        /* exit_group directly: under ASan, _exit() runs the leak checker, which needs calls
         * the filter refuses. */
        if (send(sv[1], &code, sizeof(code), 0) != sizeof(code))
            syscall(SYS_exit_group, 101);
        syscall(SYS_exit_group, code);
        _exit(102);
    }
    close(sv[1]);
    int st, code = -1;
    CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
    CU_ASSERT(WIFEXITED(st));
    CU_ASSERT_EQUAL(WEXITSTATUS(st), 0);
    CU_ASSERT_EQUAL(recv(sv[0], &code, sizeof(code), 0), (ssize_t)sizeof(code));
    CU_ASSERT_EQUAL(code, 0);
    close(sv[0]);
}

UNIT_TEST(seccomp, default_filter_in_child)
{
    struct sbx_bpf bpf;
    compile_named("default", &bpf);
    CU_ASSERT_EQUAL(run_filtered(&bpf, check_default_filter), 0);
    CU_ASSERT_EQUAL(run_filtered(&bpf, plain_getpid), 0);
    /* x32 ABI shares AUDIT_ARCH_X86_64 but is not in the profile: the process dies. */
    CU_ASSERT_EQUAL(run_filtered(&bpf, x32_getpid), 128 + SIGSYS);
    sbx_bpf_free(&bpf);
}

static int
ioctl_tiocsti_only(void)
{
    if (errno_of(syscall(SYS_ioctl, 0, 0x5412UL, "x")) != EPERM)
        return 2;
    if (errno_of(syscall(SYS_read, -1L, NULL, 0)) != EBADF)
        return 3;
    if (errno_of(syscall(SYS_write, -1L, NULL, 0)) != 42)
        return 4;
    return 0;
}

/* An unconditional allow plus a conditional deny on the same syscall: libseccomp alone would keep
 * only the allow. Also an allow-list profile whose default is not EPERM. */
UNIT_TEST(seccomp, override_rules)
{
    struct sbx_bpf bpf;
    char msg[512];
    int ret =
        compile_str("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":["
                    "{\"names\":[\"ioctl\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":1,\"args\":["
                    "{\"index\":1,"
                    "\"value\":4294967295,\"valueTwo\":21522,\"op\":\"SCMP_CMP_MASKED_EQ\"}]},"
                    "{\"names\":[\"ioctl\"],\"action\":\"SCMP_ACT_ALLOW\"},"
                    "{\"names\":[\"write\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":42,\"args\":"
                    "[{\"index\":0,"
                    "\"value\":-1,\"op\":\"SCMP_CMP_EQ\"}]}]}",
                    &bpf, msg, sizeof(msg));
    CU_ASSERT_EQUAL_FATAL(ret, 0);
    int rc = run_filtered(&bpf, ioctl_tiocsti_only);
    if (rc != 0)
        fprintf(stderr, "override child: %d\n", rc);
    CU_ASSERT_EQUAL(rc, 0);
    sbx_bpf_free(&bpf);
}

/* The seccomp lines of /proc/self/status ("Seccomp:" mode, "Seccomp_filters:" count): a child
 * that installed nothing shows its parent's (the tests may themselves run under a filter). */
static char parent_seccomp[128];
static void
seccomp_lines(char *out, size_t len)
{
    char *s = NULL;
    out[0] = '\0';
    if (read_file("/proc/self/status", &s, NULL, NULL) < 0)
        return;
    for (char *l = strtok(s, "\n"); l; l = strtok(NULL, "\n"))
        if (strncmp(l, "Seccomp", 7) == 0)
            snprintf(out + strlen(out), len - strlen(out), "%s;", l);
    free(s);
}

static int
no_filter_installed(void)
{
    char mine[128];
    seccomp_lines(mine, sizeof(mine));
    return mine[0] && strcmp(mine, parent_seccomp) == 0 ? 0 : 3;
}

static int
write_denied(void)
{
    return errno_of(syscall(SYS_write, -1L, NULL, 0)) == EPERM ? 0 : 4;
}

/* NULL means no filter: it succeeds and installs nothing (run_filtered applies it). The control:
 * a real filter does show in those lines. */
UNIT_TEST(seccomp, apply_null_is_noop)
{
    CU_ASSERT_EQUAL(sbx_seccomp_apply(NULL), 0);
    seccomp_lines(parent_seccomp, sizeof(parent_seccomp));
    CU_ASSERT_PTR_NOT_NULL(strstr(parent_seccomp, "Seccomp:"));
    CU_ASSERT_EQUAL(run_filtered(NULL, no_filter_installed), 0);
    struct sbx_bpf bpf;
    char msg[512];
    CU_ASSERT_EQUAL_FATAL(
        compile_str("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":["
                    "\"write\"],\"action\":\"SCMP_ACT_ERRNO\"}]}",
                    &bpf, msg, sizeof(msg)),
        0);
    CU_ASSERT_EQUAL(run_filtered(&bpf, no_filter_installed), 3);
    CU_ASSERT_EQUAL(run_filtered(&bpf, write_denied), 0);
    sbx_bpf_free(&bpf);
}
