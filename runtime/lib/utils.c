#include "utils.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <time.h>

void
cleanup_freep(void *p)
{
    free(*(void **)p);
}

void
cleanup_closep(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}

void
cleanup_filep(FILE **f)
{
    if (*f)
        fclose(*f);
}

void
cleanup_dirp(DIR **d)
{
    if (*d)
        closedir(*d);
}

void
cleanup_strvp(char ***v)
{
    strv_free(*v);
}

static int64_t
clock_ms(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
sbx_realtime_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

int64_t
sbx_monotonic_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

void
close_fds(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
}

ssize_t
safe_write_nosigpipe(int fd, const void *buf, size_t len)
{
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigaction(SIGPIPE, &ign, &old);
    ssize_t r = safe_write(fd, buf, len);
    int e = errno;
    sigaction(SIGPIPE, &old, NULL);
    errno = e;
    return r;
}

bool sbx_trace_on;
static struct timespec trace_t0;

void
sbx_trace_start(void)
{
    clock_gettime(CLOCK_MONOTONIC, &trace_t0);
    sbx_trace_on = true;
}

void
sbx_trace(const char *step)
{
    if (!sbx_trace_on)
        return;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    long long us = (t.tv_sec - trace_t0.tv_sec) * 1000000LL + (t.tv_nsec - trace_t0.tv_nsec) / 1000;
    char buf[192];
    int n = snprintf(buf, sizeof(buf), "sbxrun: debug: %4lld.%03lld ms [%d] %s\n", us / 1000,
                     us % 1000, (int)getpid(), step);
    /* A reader that went away (`sbxrun --debug run ... 2>&1 | head`) must not kill sbxrun before
     * it has cleaned up. */
    if (n > 0)
        safe_write_nosigpipe(STDERR_FILENO, buf,
                             (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

union fd_cmsg {
    char buf[CMSG_SPACE(sizeof(int) * SBX_MAX_PASSED_FDS)];
    struct cmsghdr align;
};

int
sbx_send_fds(int sock, const void *buf, size_t len, const int *fds, size_t n)
{
    if (n > SBX_MAX_PASSED_FDS)
        return -E2BIG;
    union fd_cmsg u;
    memset(&u, 0, sizeof(u));
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (n > 0) {
        mh.msg_control = u.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * n);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
    }
    return TEMP_FAILURE_RETRY(sendmsg(sock, &mh, MSG_NOSIGNAL)) < 0 ? -errno : 0;
}

ssize_t
sbx_recv_fds(int sock, void *buf, size_t len, int *fds, size_t max, size_t *n)
{
    union fd_cmsg u;
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    *n = 0;
    ssize_t r = TEMP_FAILURE_RETRY(recvmsg(sock, &mh, MSG_CMSG_CLOEXEC));
    if (r < 0)
        return -errno;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (*n < max)
                fds[(*n)++] = fd;
            else
                close(fd);
        }
    }
    return r;
}

void *
xmalloc0(size_t size)
{
    void *p = calloc(1, size ? size : 1);
    if (p == NULL)
        abort();
    return p;
}

void *
xrealloc(void *p, size_t size)
{
    p = realloc(p, size ? size : 1);
    if (p == NULL)
        abort();
    return p;
}

char *
xstrdup(const char *s)
{
    if (s == NULL)
        return NULL;
    char *r = strdup(s);
    if (r == NULL)
        abort();
    return r;
}

char *
xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *r;
    va_start(ap, fmt);
    if (vasprintf(&r, fmt, ap) < 0)
        abort();
    va_end(ap);
    return r;
}

/* Appends formatted text to *s (malloc'd or NULL), for commands built a piece at a time. */
void
xappendf(char **s, const char *fmt, ...)
{
    va_list ap;
    char *add;
    va_start(ap, fmt);
    if (vasprintf(&add, fmt, ap) < 0)
        abort();
    va_end(ap);
    size_t a = *s ? strlen(*s) : 0, b = strlen(add);
    *s = xrealloc(*s, a + b + 1);
    memcpy(*s + a, add, b + 1);
    free(add);
}

void
sbx_buf_add(struct sbx_buf *b, const void *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void
strv_free(char **v)
{
    if (v == NULL)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

size_t
strv_len(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

void
strv_append(char ***v, const char *s)
{
    size_t n = strv_len(*v);
    *v = xrealloc(*v, (n + 2) * sizeof(char *));
    (*v)[n] = xstrdup(s);
    (*v)[n + 1] = NULL;
}

ssize_t
safe_write(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t r = TEMP_FAILURE_RETRY(write(fd, p + done, len - done));
        if (r < 0)
            return -1;
        done += r;
    }
    return done;
}

int
openat2_retry(int dirfd, const char *path, const struct open_how *how)
{
    int fd = -1;
    for (int tries = 0; tries < 100; tries++)
        if ((fd = syscall(SYS_openat2, dirfd, path, how, sizeof(*how))) >= 0 || errno != EAGAIN)
            break;
    return fd;
}

ssize_t
safe_read(int fd, void *buf, size_t len)
{
    return TEMP_FAILURE_RETRY(read(fd, buf, len));
}

int
write_file_at(int dirfd, const char *path, const char *data, size_t len, sbx_error_t *err)
{
    cleanup_close int fd = openat(dirfd, path, O_WRONLY | O_CLOEXEC | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return sbx_make_error(err, errno, "open `%s`", path);
    if (safe_write(fd, data, len) < 0)
        return sbx_make_error(err, errno, "write `%s`", path);
    return 0;
}

int
write_file(const char *path, const char *data, size_t len, sbx_error_t *err)
{
    return write_file_at(AT_FDCWD, path, data, len, err);
}

int
read_file_at(int dirfd, const char *path, char **out, size_t *len, sbx_error_t *err)
{
    cleanup_close int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sbx_make_error(err, errno, "open `%s`", path);
    size_t cap = 4096, n = 0;
    cleanup_free char *buf = xmalloc0(cap + 1);
    for (;;) {
        ssize_t r = safe_read(fd, buf + n, cap - n);
        if (r < 0)
            return sbx_make_error(err, errno, "read `%s`", path);
        if (r == 0)
            break;
        n += r;
        if (n == cap) {
            cap *= 2;
            buf = xrealloc(buf, cap + 1);
        }
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    *out = steal_pointer(&buf);
    return 0;
}

int
read_file(const char *path, char **out, size_t *len, sbx_error_t *err)
{
    return read_file_at(AT_FDCWD, path, out, len, err);
}

int
sbx_lockfile_take(struct sbx_lockfile *l, const char *path, int wait_ms, bool write_pid,
                  pid_t *holder, sbx_error_t *err)
{
    l->fd = -1;
    l->path = NULL;
    if (holder)
        *holder = 0;
    int64_t deadline = sbx_monotonic_ms() + (wait_ms > 0 ? wait_ms : 0);
    long delay_us = 100;
    /* Bounded: a turn either waits (until the deadline) or finds that the holder it waited for
     * let go and removed the file; 1000 of those in a row is a bug, not contention. */
    for (int turn = 0; turn < 1000; turn++) {
        cleanup_close int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
            return sbx_make_error(err, errno, "open lock file `%s`", path);
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
            if (errno != EWOULDBLOCK)
                return sbx_make_error(err, errno, "lock `%s`", path);
            if (sbx_monotonic_ms() >= deadline) {
                if (holder)
                    *holder = sbx_lockfile_holder(path);
                return 1;
            }
            /* Polled rather than a blocking flock(): the wait stays bounded without a timer
             * signal, and holders keep these locks for milliseconds. */
            usleep(delay_us);
            delay_us = delay_us < 20000 ? delay_us * 2 : 20000;
            continue;
        }
        struct stat locked, now;
        if (fstat(fd, &locked) < 0)
            return sbx_make_error(err, errno, "stat lock file `%s`", path);
        if (stat(path, &now) < 0 || now.st_ino != locked.st_ino || now.st_dev != locked.st_dev)
            continue; /* the previous holder removed it as it let go */
        if (write_pid) {
            char buf[24];
            int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
            if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, n, 0) != n)
                return sbx_make_error(err, errno, "write lock file `%s`", path);
        }
        l->fd = get_and_reset_fd(&fd);
        l->path = xstrdup(path);
        return 0;
    }
    return sbx_make_error(err, EAGAIN, "lock `%s`: the file kept being replaced", path);
}

void
sbx_lockfile_release(struct sbx_lockfile *l)
{
    int saved = errno;
    if (l->fd >= 0) {
        unlink(l->path);
        close(l->fd);
        l->fd = -1;
    }
    free(l->path);
    l->path = NULL;
    errno = saved;
}

pid_t
sbx_lockfile_holder(const char *path)
{
    cleanup_free char *txt = NULL;
    int64_t pid;
    if (read_file(path, &txt, NULL, NULL) < 0)
        return 0;
    txt[strcspn(txt, "\n")] = '\0';
    return parse_int64(txt, 1, INT32_MAX, &pid) == 0 ? (pid_t)pid : 0;
}

int
mkdir_p(const char *path, mode_t mode, sbx_error_t *err)
{
    cleanup_free char *tmp = xstrdup(path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, mode) < 0 && errno != EEXIST)
            return sbx_make_error(err, errno, "mkdir `%s`", tmp);
        *p = '/';
    }
    if (mkdir(tmp, mode) < 0 && errno != EEXIST)
        return sbx_make_error(err, errno, "mkdir `%s`", tmp);
    return 0;
}

static int
rm_rf_at(int parent_fd, const char *name, dev_t dev, sbx_error_t *err)
{
    struct stat st;
    if (fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : sbx_make_error(err, errno, "stat `%s`", name);
    if (S_ISDIR(st.st_mode)) {
        if (st.st_dev != dev)
            return sbx_make_error(err, EXDEV, "refusing to remove mount point `%s`", name);
        int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return sbx_make_error(err, errno, "open `%s`", name);
        cleanup_dir DIR *d = fdopendir(fd);
        if (d == NULL) {
            close(fd);
            return sbx_make_error(err, errno, "opendir `%s`", name);
        }
        struct dirent *de;
        while ((de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            int r = rm_rf_at(dirfd(d), de->d_name, dev, err);
            if (r < 0)
                return r;
        }
        if (unlinkat(parent_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
            return sbx_make_error(err, errno, "rmdir `%s`", name);
        return 0;
    }
    if (unlinkat(parent_fd, name, 0) < 0 && errno != ENOENT)
        return sbx_make_error(err, errno, "unlink `%s`", name);
    return 0;
}

int
rm_rf(const char *path, sbx_error_t *err)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : sbx_make_error(err, errno, "stat `%s`", path);
    return rm_rf_at(AT_FDCWD, path, st.st_dev, err);
}

int
parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (s == NULL || *s == '\0')
        return -EINVAL;
    /* strtoll also takes leading blanks and a '+': "host:\t80/app" was a valid image
     * reference whose tab became part of the store's key and of the registry's URL. */
    if (!((s[0] >= '0' && s[0] <= '9') || (s[0] == '-' && s[1] >= '0' && s[1] <= '9')))
        return -EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0' || end == s)
        return -EINVAL;
    if (errno == ERANGE || v < min || v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

int
parse_size(const char *s, int64_t *out)
{
    if (s == NULL || *s == '\0' || *s == '-' || *s == '+')
        return -EINVAL;
    char *end;
    errno = 0;
    /* strtod accepts hex, inf and nan; only plain decimals are sizes. */
    for (const char *p = s; *p && (*p == '.' || (*p >= '0' && *p <= '9')); p++)
        ;
    double v = strtod(s, &end);
    if (end == s || errno == ERANGE || !isfinite(v))
        return -EINVAL;
    for (const char *p = s; p < end; p++)
        if (!(*p == '.' || (*p >= '0' && *p <= '9')))
            return -EINVAL;
    double mult = 1;
    const char *u = end;
    static const struct {
        const char *suffix;
        double mult;
    } units[] = {
        {"", 1},
        {"b", 1},
        {"k", 1024.0},
        {"kb", 1024.0},
        {"ki", 1024.0},
        {"kib", 1024.0},
        {"m", 1048576.0},
        {"mb", 1048576.0},
        {"mi", 1048576.0},
        {"mib", 1048576.0},
        {"g", 1073741824.0},
        {"gb", 1073741824.0},
        {"gi", 1073741824.0},
        {"gib", 1073741824.0},
        {"t", 1099511627776.0},
        {"tb", 1099511627776.0},
        {"ti", 1099511627776.0},
        {"tib", 1099511627776.0},
    };
    size_t i;
    for (i = 0; i < ARRAY_SIZE(units); i++)
        if (strcasecmp(u, units[i].suffix) == 0)
            break;
    if (i == ARRAY_SIZE(units))
        return -EINVAL;
    mult = units[i].mult;
    double bytes = v * mult;
    if (bytes >= 9.2e18)
        return -ERANGE;
    if (bytes != (double)(int64_t)bytes && mult == 1)
        return -EINVAL; /* fractional bytes */
    *out = (int64_t)bytes;
    return 0;
}

/* Kubernetes' resource.Quantity, the API's form: decimal suffixes are powers of 1000 and only
 * the `i` ones are binary, case matters ("1G" is 10^9, "1Gi" 2^30, "1g" nothing), and `m` is
 * milli. A milli-quantity of bytes ("500m" = half a byte) is what a Docker habit ("512m") writes
 * by mistake, so it is an error of its own (-EDOM) that callers can name, not a rounding.
 * Exponents ("1e9") and signs are refused: no client sends them for a limit. */
int
parse_quantity(const char *s, int64_t *out)
{
    static const struct {
        const char *suffix;
        int64_t mult;
    } units[] = {
        {"", 1},
        {"k", 1000LL},
        {"M", 1000000LL},
        {"G", 1000000000LL},
        {"T", 1000000000000LL},
        {"P", 1000000000000000LL},
        {"E", 1000000000000000000LL},
        {"Ki", 1LL << 10},
        {"Mi", 1LL << 20},
        {"Gi", 1LL << 30},
        {"Ti", 1LL << 40},
        {"Pi", 1LL << 50},
        {"Ei", 1LL << 60},
    };
    if (s == NULL)
        return -EINVAL;
    const char *u = s;
    size_t digits = 0, dots = 0;
    for (; (*u >= '0' && *u <= '9') || *u == '.'; u++)
        *u == '.' ? dots++ : digits++;
    if (digits == 0 || dots > 1 || *s == '.')
        return -EINVAL;
    if (strcmp(u, "m") == 0)
        return -EDOM;
    size_t i;
    for (i = 0; i < ARRAY_SIZE(units); i++)
        if (strcmp(u, units[i].suffix) == 0)
            break;
    if (i == ARRAY_SIZE(units))
        return -EINVAL;
    int64_t mult = units[i].mult;
    cleanup_free char *num = strndup(s, (size_t)(u - s));
    if (dots == 0) { /* exact: no double between the digits and the byte count */
        int64_t v, bytes;
        int r = parse_int64(num, 0, INT64_MAX, &v);
        if (r < 0)
            return r;
        if (__builtin_mul_overflow(v, mult, &bytes))
            return -ERANGE;
        *out = bytes;
        return 0;
    }
    double bytes = strtod(num, NULL) * (double)mult;
    if (bytes >= 9.2e18)
        return -ERANGE;
    if (mult == 1 && bytes != (double)(int64_t)bytes)
        return -EINVAL;    /* fractional bytes */
    *out = (int64_t)bytes; /* "1.5Gi": rounded down to a whole byte */
    return 0;
}

int
parse_cpus(const char *s, int64_t *millicpus)
{
    if (s == NULL || *s == '\0')
        return -EINVAL;
    size_t n = strlen(s);
    if (s[n - 1] == 'm') {
        cleanup_free char *num = strndup(s, n - 1);
        int64_t v;
        int r = parse_int64(num, 1, 1000000000, &v);
        if (r < 0)
            return r;
        *millicpus = v;
        return 0;
    }
    for (const char *p = s; *p; p++)
        if (!(*p == '.' || (*p >= '0' && *p <= '9')))
            return -EINVAL;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || end == s || errno)
        return -EINVAL;
    if (v <= 0 || v > 1e6)
        return -ERANGE;
    int64_t m = (int64_t)(v * 1000 + 0.5);
    if (m < 1)
        return -ERANGE;
    *millicpus = m;
    return 0;
}

static const struct {
    const char *name;
    int sig;
} signals[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},       {"QUIT", SIGQUIT}, {"ILL", SIGILL},
    {"TRAP", SIGTRAP}, {"ABRT", SIGABRT},     {"BUS", SIGBUS},   {"FPE", SIGFPE},
    {"KILL", SIGKILL}, {"USR1", SIGUSR1},     {"SEGV", SIGSEGV}, {"USR2", SIGUSR2},
    {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},     {"TERM", SIGTERM}, {"STKFLT", SIGSTKFLT},
    {"CHLD", SIGCHLD}, {"CONT", SIGCONT},     {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},
    {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},     {"URG", SIGURG},   {"XCPU", SIGXCPU},
    {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH},
    {"IO", SIGIO},     {"PWR", SIGPWR},       {"SYS", SIGSYS},
};

int
parse_signal(const char *s)
{
    int64_t n;
    if (s == NULL || *s == '\0')
        return -EINVAL;
    if (parse_int64(s, 1, 64, &n) == 0)
        return (int)n;
    if (strncasecmp(s, "SIG", 3) == 0)
        s += 3;
    for (size_t i = 0; i < ARRAY_SIZE(signals); i++)
        if (strcasecmp(s, signals[i].name) == 0)
            return signals[i].sig;
    if (strncasecmp(s, "RTMIN+", 6) == 0 && parse_int64(s + 6, 0, SIGRTMAX - SIGRTMIN, &n) == 0)
        return SIGRTMIN + (int)n;
    return -EINVAL;
}

const char *
signal_name(int sig)
{
    for (size_t i = 0; i < ARRAY_SIZE(signals); i++)
        if (signals[i].sig == sig)
            return signals[i].name;
    return "UNKNOWN";
}

void
random_hex(char *buf, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[64];
    size_t need = (n + 1) / 2;
    if (need > sizeof(raw))
        need = sizeof(raw);
    if (getrandom(raw, need, 0) != (ssize_t)need)
        abort();
    for (size_t i = 0; i < n && i / 2 < need; i++)
        buf[i] = hex[(i % 2) ? (raw[i / 2] & 0xf) : (raw[i / 2] >> 4)];
    buf[n] = '\0';
}

bool
id_is_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
            return false;
    }
    return true;
}
