/* cgroup v2 (primary) and v1/hybrid behind one interface.
 *
 * Layout: the sandbox cgroup is <root>/<parent>/<name> in every hierarchy sbx uses, where parent
 * defaults to the caller's own cgroup + "/sbx". The parent never holds processes, so on v2 it can
 * enable controllers for its leaves (no-internal-processes rule); sandboxes are leaves.
 *
 * Hybrid hosts (v1 controllers + an empty cgroup2 at /sys/fs/cgroup/unified) are driven through
 * the v1 hierarchies only; nothing is created in the unified one.
 *
 * Rootless: when the target is not writable and no limit was requested, sbx_cgroup_create()
 * succeeds with *out = NULL ("cgroups disabled"); every other function accepts a NULL cgroup
 * (no-op, -1 or an error for operations that need one). With a limit requested it fails naming
 * the option.
 *
 * Units: io_weight is the OCI blockIO.weight scale (10..1000); on v2 it is converted to io.weight.
 * cpu_weight is v2's 1..10000, cpu_shares v1's 2..262144; either one is converted for the other
 * layout. */
#include "cgroup.h"
#include "cgroup_internal.h"
#include "utils.h"

#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <linux/magic.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>

#define CG_ROOT "/sys/fs/cgroup"
#define CG_DEFAULT_PARENT "sbx"
#define CG_WAIT_MS 5000

enum cg_hier {
    H_MEMORY,
    H_CPU,
    H_CPUACCT,
    H_PIDS,
    H_FREEZER,
    H_BLKIO,
    H_CPUSET,
    H_DEVICES,
    H_COUNT,
    H_UNIFIED = 0
};
static const char *const v1_names[H_COUNT] = {"memory",  "cpu",   "cpuacct", "pids",
                                              "freezer", "blkio", "cpuset",  "devices"};

struct cg_dir {
    char *path;        /* absolute leaf directory; NULL: hierarchy not used */
    char *parent;      /* absolute parent directory */
    int fd;            /* O_DIRECTORY fd of path */
    int alias;         /* index of an earlier entry in the same (co-mounted) hierarchy, or -1 */
    char *top_created; /* highest missing ancestor of parent that create made, or NULL */
    bool parent_created;
    bool owned; /* path was made by this object's create, or reopened from its state */
};

struct sbx_cgroup {
    enum sbx_cgroup_mode mode;
    char *rel; /* "/sbx-ID" (v1), "/sbx/ID" (v2) or PARENT/ID: relative to the hierarchy root */
    struct cg_dir d[H_COUNT];
};

static bool
is_v2(const struct sbx_cgroup *cg)
{
    return cg->mode == SBX_CGROUP_UNIFIED;
}

enum sbx_cgroup_mode
sbx_cgroup_mode(void)
{
    static int cached = -1;
    int m = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (m >= 0)
        return m;
    struct statfs sfs;
    if (statfs(CG_ROOT, &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC)
        m = SBX_CGROUP_UNIFIED;
    else if (statfs(CG_ROOT "/unified", &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC)
        m = SBX_CGROUP_HYBRID;
    else
        m = SBX_CGROUP_LEGACY;
    __atomic_store_n(&cached, m, __ATOMIC_RELAXED);
    return m;
}

static const char *
mode_name(enum sbx_cgroup_mode m)
{
    return m == SBX_CGROUP_UNIFIED ? "unified" : m == SBX_CGROUP_HYBRID ? "hybrid" : "legacy";
}

/* ---- pure helpers ---- */

int
sbx_cgroup_parse_proc_cgroup(const char *content, const char *controller, char **path,
                             sbx_error_t *err)
{
    bool want_v2 = controller == NULL || *controller == '\0';
    size_t clen = want_v2 ? 0 : strlen(controller);
    for (const char *line = content; line && *line;) {
        const char *eol = strchrnul(line, '\n');
        /* "hierarchy-ID:controller-list:cgroup-path"; the path itself may contain ':'. */
        const char *c1 = memchr(line, ':', eol - line);
        const char *c2 = c1 ? memchr(c1 + 1, ':', eol - c1 - 1) : NULL;
        if (c2) {
            const char *ctrl = c1 + 1;
            size_t ctrl_len = c2 - ctrl;
            bool match = false;
            if (want_v2)
                match = ctrl_len == 0 && c1 - line == 1 && line[0] == '0';
            else {
                for (const char *p = ctrl; p < c2;) {
                    const char *comma = memchr(p, ',', c2 - p);
                    const char *end = comma ? comma : c2;
                    if ((size_t)(end - p) == clen && memcmp(p, controller, clen) == 0) {
                        match = true;
                        break;
                    }
                    p = end + 1;
                }
            }
            if (match) {
                const char *p = c2 + 1;
                if (p == eol || *p != '/')
                    return sbx_make_error(err, EINVAL, "malformed /proc/self/cgroup line `%.*s`",
                                          (int)(eol - line), line);
                *path = strndup(p, eol - p);
                if (*path == NULL)
                    abort();
                return 0;
            }
        }
        line = *eol ? eol + 1 : eol;
    }
    return sbx_make_error(err, ENOENT, "no %s%s line in /proc/self/cgroup",
                          want_v2 ? "cgroup v2" : "controller ", want_v2 ? "" : controller);
}

int64_t
sbx_cgroup_millicpus_to_quota(int64_t millicpus, int64_t period)
{
    if (period <= 0)
        period = 100000;
    int64_t q = millicpus * period / 1000;
    return q < 1000 ? 1000 : q;
}

char *
sbx_cgroup_cpu_max_string(int64_t quota, int64_t period)
{
    if (period <= 0)
        period = 100000;
    if (quota < 0)
        return xasprintf("max %" PRId64, period);
    return xasprintf("%" PRId64 " %" PRId64, quota, period);
}

static int64_t
clamp64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

int64_t
sbx_cgroup_shares_to_weight(int64_t shares)
{
    return clamp64(clamp64(shares, 2, 262144) * 100 / 1024, 1, 10000);
}

int64_t
sbx_cgroup_weight_to_shares(int64_t weight)
{
    return clamp64(clamp64(weight, 1, 10000) * 1024 / 100, 2, 262144);
}

int64_t
sbx_cgroup_blkio_to_io_weight(int64_t w)
{
    w = clamp64(w, 10, 1000);
    return 1 + (w - 10) * 9999 / 990;
}

/* ---- file helpers ---- */

static const char *
file_controller(const char *file, char *buf, size_t size)
{
    const char *dot = strchr(file, '.');
    size_t n = dot ? (size_t)(dot - file) : strlen(file);
    if (n >= size)
        n = size - 1;
    memcpy(buf, file, n);
    buf[n] = '\0';
    if (strcmp(buf, "cgroup") == 0)
        snprintf(buf, size, "%s", strcmp(file, "cgroup.kill") == 0 ? "kill" : "freezer");
    return buf;
}

/* cgroupfs takes a value in one write(); no O_CREAT: a missing file means a missing controller. */
static int
cg_write(int dirfd, const char *dir, const char *file, const char *value, sbx_error_t *err)
{
    char ctrl[32];
    cleanup_close int fd = openat(dirfd, file, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return sbx_make_error(err, ENOENT,
                                  "controller %s not available: no `%s/%s` to write `%s`",
                                  file_controller(file, ctrl, sizeof(ctrl)), dir, file, value);
        return sbx_make_error(err, errno, "open `%s/%s` to write `%s`", dir, file, value);
    }
    if (TEMP_FAILURE_RETRY(write(fd, value, strlen(value))) < 0)
        return sbx_make_error(err, errno, "write `%s` to `%s/%s`", value, dir, file);
    return 0;
}

static int cg_writef(int dirfd, const char *dir, const char *file, sbx_error_t *err,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int
cg_writef(int dirfd, const char *dir, const char *file, sbx_error_t *err, const char *fmt, ...)
{
    va_list ap;
    cleanup_free char *v = NULL;
    va_start(ap, fmt);
    if (vasprintf(&v, fmt, ap) < 0)
        abort();
    va_end(ap);
    return cg_write(dirfd, dir, file, v, err);
}

static bool
cg_has(int dirfd, const char *file)
{
    return faccessat(dirfd, file, F_OK, 0) == 0;
}

static int
cg_read(int dirfd, const char *dir, const char *file, char **out, sbx_error_t *err)
{
    char ctrl[32];
    int r = read_file_at(dirfd, file, out, NULL, err);
    if (r == -ENOENT - 1) {
        sbx_error_release(err);
        return sbx_make_error(err, ENOENT, "controller %s not available: no `%s/%s`",
                              file_controller(file, ctrl, sizeof(ctrl)), dir, file);
    }
    if (r < 0)
        return sbx_error_wrap(err, "cgroup `%s`", dir);
    return 0;
}

/* Reads a file holding one number ("max" -> INT64_MAX); -1 if it is missing or unreadable. */
static int64_t
cg_read_int(int dirfd, const char *file)
{
    cleanup_free char *buf = NULL;
    if (read_file_at(dirfd, file, &buf, NULL, NULL) < 0)
        return -1;
    if (strncmp(buf, "max", 3) == 0)
        return INT64_MAX;
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    return errno || end == buf ? -1 : v;
}

/* Value of "key N" in a flat-keyed file (memory.events, cpu.stat, ...); -1 if absent. */
static int64_t
keyed_value(const char *content, const char *key)
{
    size_t klen = strlen(key);
    for (const char *l = content; l && *l;) {
        if (strncmp(l, key, klen) == 0 && l[klen] == ' ')
            return strtoll(l + klen + 1, NULL, 10);
        l = strchr(l, '\n');
        if (l)
            l++;
    }
    return -1;
}

static int64_t
cg_read_keyed(int dirfd, const char *file, const char *key)
{
    cleanup_free char *buf = NULL;
    if (read_file_at(dirfd, file, &buf, NULL, NULL) < 0)
        return -1;
    return keyed_value(buf, key);
}

static bool
word_in_list(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; (p = strstr(p, word)); p += n)
        if ((p == list || p[-1] == ' ' || p[-1] == '\n') &&
            (p[n] == ' ' || p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ---- object ---- */

static struct sbx_cgroup *
cg_new(enum sbx_cgroup_mode mode)
{
    struct sbx_cgroup *cg = xmalloc0(sizeof(*cg));
    cg->mode = mode;
    for (int i = 0; i < H_COUNT; i++) {
        cg->d[i].fd = -1;
        cg->d[i].alias = -1;
    }
    return cg;
}

void
sbx_cgroup_free(struct sbx_cgroup *cg)
{
    if (cg == NULL)
        return;
    for (int i = 0; i < H_COUNT; i++) {
        if (cg->d[i].fd >= 0)
            close(cg->d[i].fd);
        free(cg->d[i].path);
        free(cg->d[i].parent);
        free(cg->d[i].top_created);
    }
    free(cg->rel);
    free(cg);
}

static void
cleanup_cgp(struct sbx_cgroup **cg)
{
    sbx_cgroup_free(*cg);
}
#define cleanup_cg __attribute__((cleanup(cleanup_cgp)))

/* Co-mounted v1 controllers (cpu,cpuacct) share one directory: operate on it once. */
static void
cg_find_aliases(struct sbx_cgroup *cg)
{
    struct stat st[H_COUNT];
    for (int i = 0; i < H_COUNT; i++) {
        cg->d[i].alias = -1;
        if (cg->d[i].fd < 0 || fstat(cg->d[i].fd, &st[i]) < 0)
            continue;
        for (int j = 0; j < i; j++)
            if (cg->d[j].fd >= 0 && cg->d[j].alias < 0 && st[j].st_dev == st[i].st_dev &&
                st[j].st_ino == st[i].st_ino) {
                cg->d[i].alias = j;
                break;
            }
    }
}

/* Primary entry for a v1 controller (resolving co-mounts); NULL if that hierarchy is not used. */
static struct cg_dir *
v1dir(struct sbx_cgroup *cg, enum cg_hier h)
{
    struct cg_dir *d = &cg->d[h];
    if (d->alias >= 0)
        d = &cg->d[d->alias];
    return d->fd >= 0 ? d : NULL;
}

/* The directory that lists the sandbox's processes. */
static struct cg_dir *
procs_dir(struct sbx_cgroup *cg)
{
    if (is_v2(cg))
        return cg->d[H_UNIFIED].fd >= 0 ? &cg->d[H_UNIFIED] : NULL;
    static const enum cg_hier order[] = {H_FREEZER, H_PIDS,  H_MEMORY, H_CPU,
                                         H_CPUACCT, H_BLKIO, H_CPUSET, H_DEVICES};
    for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
        struct cg_dir *d = v1dir(cg, order[i]);
        if (d)
            return d;
    }
    return NULL;
}

const char *
sbx_cgroup_path(const struct sbx_cgroup *cg)
{
    return cg ? cg->rel : NULL;
}

int
sbx_cgroup_dirfd(const struct sbx_cgroup *cg)
{
    return cg && is_v2(cg) ? cg->d[H_UNIFIED].fd : -1;
}

/* ---- limits ---- */

/* The first requested limit, named by what it is: sbxrun and sbx-apid spell them differently
 * (--memory, resourceLimits.memory), so each caller names its own option when it reports an
 * SBX_ERR_LIMIT error. NULL if none. */
static const char *
first_limit(const struct sbx_resources *res)
{
    if (res == NULL)
        return NULL;
    if (res->memory_limit >= 0)
        return "memory limit";
    if (res->memory_swap >= 0)
        return "memory+swap limit";
    if (res->memory_reservation >= 0)
        return "memory reservation";
    if (res->cpu_quota >= 0)
        return "cpu quota";
    if (res->cpu_weight >= 0 || res->cpu_shares >= 0)
        return "cpu weight/shares";
    if (res->pids_limit >= 0)
        return "pids limit";
    if (res->io_weight >= 0)
        return "io weight";
    if (res->cpuset_cpus || res->cpuset_mems)
        return "cpuset";
    if (res->unified && json_object_size(res->unified) > 0)
        return "linux.resources.unified";
    return NULL;
}

static int
check_resources(const struct sbx_resources *res, sbx_error_t *err)
{
    if (res->memory_swap >= 0 && res->memory_limit >= 0 && res->memory_swap < res->memory_limit)
        return sbx_make_error_code(err, SBX_ERR_LIMIT, EINVAL,
                                   "memory+swap limit %" PRId64
                                   " is smaller than the memory limit %" PRId64,
                                   res->memory_swap, res->memory_limit);
    if (res->memory_swap >= 0 && res->memory_limit < 0)
        return sbx_make_error_code(err, SBX_ERR_LIMIT, EINVAL,
                                   "a memory+swap limit needs a memory limit");
    if (res->cpu_weight >= 0 && (res->cpu_weight < 1 || res->cpu_weight > 10000))
        return sbx_make_error_code(err, SBX_ERR_LIMIT, ERANGE,
                                   "cpu weight %" PRId64 " out of range 1..10000", res->cpu_weight);
    if (res->cpu_shares >= 0 && (res->cpu_shares < 2 || res->cpu_shares > 262144))
        return sbx_make_error_code(err, SBX_ERR_LIMIT, ERANGE,
                                   "cpu shares %" PRId64 " out of range 2..262144",
                                   res->cpu_shares);
    if (res->io_weight >= 0 && (res->io_weight < 10 || res->io_weight > 1000))
        return sbx_make_error_code(err, SBX_ERR_LIMIT, ERANGE,
                                   "io weight %" PRId64 " out of range 10..1000", res->io_weight);
    if (res->cpu_quota >= 0 && res->cpu_quota < 1000)
        return sbx_make_error_code(err, SBX_ERR_LIMIT, ERANGE,
                                   "cpu quota %" PRId64 " usec is under the kernel's 1000",
                                   res->cpu_quota);
    return 0;
}

static int
update_v2(struct sbx_cgroup *cg, const struct sbx_resources *res, sbx_error_t *err)
{
    struct cg_dir *d = &cg->d[H_UNIFIED];
    int fd = d->fd;
    const char *p = d->path;
    int r;

    if (res->memory_limit >= 0) {
        r = cg_writef(fd, p, "memory.max", err, "%" PRId64, res->memory_limit);
        if (r < 0)
            return r;
        /* OCI memory.swap is memory+swap; memory.swap.max is the swap part alone. Without swap
         * accounting (no memory.swap.max) "no swap" cannot be enforced but is moot only if the
         * host has no swap; granting swap is then impossible and reported. */
        int64_t swap = res->memory_swap >= 0 ? res->memory_swap - res->memory_limit : 0;
        if (swap > 0 || cg_has(fd, "memory.swap.max"))
            r = cg_writef(fd, p, "memory.swap.max", err, "%" PRId64, swap);
        if (r < 0)
            return r;
    }
    if (res->memory_reservation >= 0 &&
        (r = cg_writef(fd, p, "memory.low", err, "%" PRId64, res->memory_reservation)) < 0)
        return r;
    if (res->cpu_quota >= 0 || res->cpu_period > 0) {
        cleanup_free char *v = sbx_cgroup_cpu_max_string(res->cpu_quota, res->cpu_period);
        if ((r = cg_write(fd, p, "cpu.max", v, err)) < 0)
            return r;
    }
    int64_t w = res->cpu_weight >= 0   ? res->cpu_weight
                : res->cpu_shares >= 0 ? sbx_cgroup_shares_to_weight(res->cpu_shares)
                                       : -1;
    if (w >= 0 && (r = cg_writef(fd, p, "cpu.weight", err, "%" PRId64, w)) < 0)
        return r;
    /* OCI: pids.limit 0 means unlimited, like -1 does there. */
    if (res->pids_limit > 0 &&
        (r = cg_writef(fd, p, "pids.max", err, "%" PRId64, res->pids_limit)) < 0)
        return r;
    if (res->pids_limit == 0 && (r = cg_write(fd, p, "pids.max", "max", err)) < 0)
        return r;
    if (res->io_weight >= 0 && (r = cg_writef(fd, p, "io.weight", err, "default %" PRId64,
                                              sbx_cgroup_blkio_to_io_weight(res->io_weight))) < 0)
        return r;
    if (res->cpuset_cpus && (r = cg_write(fd, p, "cpuset.cpus", res->cpuset_cpus, err)) < 0)
        return r;
    if (res->cpuset_mems && (r = cg_write(fd, p, "cpuset.mems", res->cpuset_mems, err)) < 0)
        return r;
    if (res->unified) {
        const char *key;
        json_t *val;
        json_object_foreach (res->unified, key, val) {
            if (!json_is_string(val))
                return sbx_make_error(err, EINVAL,
                                      "linux.resources.unified `%s`: value is not a string", key);
            if (strchr(key, '/') || key[0] == '.' || strncmp(key, "cgroup.", 7) == 0)
                return sbx_make_error(err, EINVAL, "linux.resources.unified: refusing key `%s`",
                                      key);
            if ((r = cg_write(fd, p, key, json_string_value(val), err)) < 0)
                return r;
        }
    }
    return 0;
}

static int
update_v1(struct sbx_cgroup *cg, const struct sbx_resources *res, sbx_error_t *err)
{
    struct cg_dir *d;
    int r;
#define NEED(h)                                                                                    \
    do {                                                                                           \
        if ((d = v1dir(cg, h)) == NULL)                                                            \
            return sbx_make_error(                                                                 \
                err, ENOENT, "controller %s not available: no v1 hierarchy at `" CG_ROOT "/%s`",   \
                v1_names[h], v1_names[h]);                                                         \
    } while (0)

    if (res->memory_limit >= 0) {
        NEED(H_MEMORY);
        bool memsw = cg_has(d->fd, "memory.memsw.limit_in_bytes");
        int64_t total = res->memory_swap >= 0 ? res->memory_swap : res->memory_limit;
        /* The kernel keeps limit <= memsw at every step: when the new limit is above the current
         * memsw, memsw has to be raised first. */
        r = cg_writef(d->fd, d->path, "memory.limit_in_bytes", NULL, "%" PRId64, res->memory_limit);
        if (r < 0 && memsw) {
            if ((r = cg_writef(d->fd, d->path, "memory.memsw.limit_in_bytes", err, "%" PRId64,
                               total)) < 0)
                return r;
            memsw = false;
        }
        if ((r = cg_writef(d->fd, d->path, "memory.limit_in_bytes", err, "%" PRId64,
                           res->memory_limit)) < 0)
            return r;
        if (memsw && (r = cg_writef(d->fd, d->path, "memory.memsw.limit_in_bytes", err, "%" PRId64,
                                    total)) < 0)
            return r;
        if (!cg_has(d->fd, "memory.memsw.limit_in_bytes") && total > res->memory_limit)
            return sbx_make_error(err, ENOENT,
                                  "controller memory swap accounting not available: no "
                                  "`%s/memory.memsw.limit_in_bytes` to write `%" PRId64 "`",
                                  d->path, total);
    }
    if (res->memory_reservation >= 0) {
        NEED(H_MEMORY);
        if ((r = cg_writef(d->fd, d->path, "memory.soft_limit_in_bytes", err, "%" PRId64,
                           res->memory_reservation)) < 0)
            return r;
    }
    if (res->cpu_quota >= 0 || res->cpu_period > 0) {
        NEED(H_CPU);
        int64_t period = res->cpu_period > 0 ? res->cpu_period : 100000;
        if ((r = cg_writef(d->fd, d->path, "cpu.cfs_period_us", err, "%" PRId64, period)) < 0)
            return r;
        if ((r = cg_writef(d->fd, d->path, "cpu.cfs_quota_us", err, "%" PRId64,
                           res->cpu_quota >= 0 ? res->cpu_quota : -1)) < 0)
            return r;
    }
    int64_t shares = res->cpu_shares >= 0   ? res->cpu_shares
                     : res->cpu_weight >= 0 ? sbx_cgroup_weight_to_shares(res->cpu_weight)
                                            : -1;
    if (shares >= 0) {
        NEED(H_CPU);
        if ((r = cg_writef(d->fd, d->path, "cpu.shares", err, "%" PRId64, shares)) < 0)
            return r;
    }
    if (res->pids_limit >= 0) {
        NEED(H_PIDS);
        if (res->pids_limit == 0)
            r = cg_write(d->fd, d->path, "pids.max", "max", err);
        else
            r = cg_writef(d->fd, d->path, "pids.max", err, "%" PRId64, res->pids_limit);
        if (r < 0)
            return r;
    }
    if (res->io_weight >= 0 && (d = v1dir(cg, H_BLKIO))) {
        /* Best effort: blkio.weight only exists with CFQ (gone since 5.0) or BFQ as the
         * scheduler; it is a priority, not a limit. */
        if (cg_has(d->fd, "blkio.weight"))
            r = cg_writef(d->fd, d->path, "blkio.weight", err, "%" PRId64, res->io_weight);
        else if (cg_has(d->fd, "blkio.bfq.weight"))
            r = cg_writef(d->fd, d->path, "blkio.bfq.weight", err, "%" PRId64, res->io_weight);
        else
            r = 0;
        if (r < 0)
            return r;
    }
    if (res->cpuset_cpus) {
        NEED(H_CPUSET);
        if ((r = cg_write(d->fd, d->path, "cpuset.cpus", res->cpuset_cpus, err)) < 0)
            return r;
    }
    if (res->cpuset_mems) {
        NEED(H_CPUSET);
        if ((r = cg_write(d->fd, d->path, "cpuset.mems", res->cpuset_mems, err)) < 0)
            return r;
    }
    if (res->devices) {
        /* Deny everything, then the rules in order (the last matching one wins). */
        NEED(H_DEVICES);
        if ((r = cg_write(d->fd, d->path, "devices.deny", "a", err)) < 0)
            return r;
        for (char **l = res->devices; *l; l++) {
            bool allow = strncmp(*l, "allow ", 6) == 0;
            const char *rule = strchr(*l, ' ');
            if (rule == NULL)
                return sbx_make_error(err, EINVAL, "bad device rule `%s`", *l);
            if ((r = cg_write(d->fd, d->path, allow ? "devices.allow" : "devices.deny", rule + 1,
                              err)) < 0)
                return r;
        }
    }
    if (res->unified) {
        const char *key;
        json_t *val;
        json_object_foreach (res->unified, key, val) {
            /* spec.c lifts the sbx extension "cpu.weight" into cpu_weight, applied above as
             * cpu.shares; any other v2 file has no v1 equivalent. */
            if (strcmp(key, "cpu.weight") == 0 && res->cpu_weight >= 0)
                continue;
            return sbx_make_error(err, ENOTSUP,
                                  "linux.resources.unified `%s` needs cgroup v2 (this host is %s)",
                                  key, mode_name(cg->mode));
        }
    }
    return 0;
#undef NEED
}

int
sbx_cgroup_update(struct sbx_cgroup *cg, const struct sbx_resources *res, sbx_error_t *err)
{
    if (res == NULL)
        return 0;
    if (cg == NULL) {
        const char *opt = first_limit(res);
        return opt ? sbx_make_error_code(err, SBX_ERR_LIMIT, EPERM,
                                         "%s needs a cgroup, but cgroups are disabled", opt)
                   : 0;
    }
    int r = check_resources(res, err);
    if (r < 0)
        return r;
    return is_v2(cg) ? update_v2(cg, res, err) : update_v1(cg, res, err);
}

/* ---- create / open ---- */

static bool
path_is_safe(const char *p)
{
    if (p == NULL)
        return false;
    for (const char *s = p; *s;) {
        while (*s == '/')
            s++;
        const char *e = strchrnul(s, '/');
        if ((e - s == 2 && s[0] == '.' && s[1] == '.') || (e - s == 1 && s[0] == '.'))
            return false;
        s = e;
    }
    return true;
}

/* Joins "a", "/b/" and "c" with single slashes, no trailing slash. */
static char *
path_join3(const char *a, const char *b, const char *c)
{
    char *r = xasprintf("%s/%s/%s", a, b ? b : "", c ? c : "");
    char *w = r;
    for (char *s = r; *s; s++)
        if (!(*s == '/' && w > r && w[-1] == '/'))
            *w++ = *s;
    *w = '\0';
    while (w > r + 1 && w[-1] == '/')
        *--w = '\0';
    return r;
}

/* v2: each level from the root down to `parent` must delegate the controllers to its children.
 * Controllers in `required` must end up available; the others (for stats) only if possible. */
static int
enable_controllers_v2(const char *parent, const char *const *want, const bool *required, size_t n,
                      sbx_error_t *err)
{
    bool ok[8];
    for (size_t i = 0; i < n; i++)
        ok[i] = true;
    size_t rootlen = strlen(CG_ROOT);
    cleanup_free char *cur = xstrdup(parent);
    for (size_t end = rootlen;;) {
        char saved = cur[end];
        cur[end] = '\0';
        cleanup_free char *controllers = NULL, *subtree = NULL;
        cleanup_close int fd = open(cur, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            return sbx_make_error(err, errno, "open cgroup `%s`", cur);
        if (read_file_at(fd, "cgroup.controllers", &controllers, NULL, err) < 0 ||
            read_file_at(fd, "cgroup.subtree_control", &subtree, NULL, err) < 0)
            return sbx_error_wrap(err, "cgroup `%s`", cur);
        for (size_t i = 0; i < n; i++) {
            if (!ok[i] || word_in_list(subtree, want[i]))
                continue;
            if (!word_in_list(controllers, want[i])) {
                if (required[i])
                    return sbx_make_error(
                        err, ENOENT, "controller %s not available in `%s` (cgroup.controllers: %s)",
                        want[i], cur, strtok(controllers, "\n") ?: "");
                ok[i] = false;
                continue;
            }
            cleanup_free char *v = xasprintf("+%s", want[i]);
            int r = cg_write(fd, cur, "cgroup.subtree_control", v, err);
            if (r == -EBUSY - 1)
                return sbx_error_wrap(
                    err,
                    "cannot enable controller %s below `%s`: it holds processes (cgroup v2 "
                    "no-internal-processes rule); run sbx from a leaf of a delegated cgroup "
                    "or pass a cgroup parent outside the caller's cgroup",
                    want[i], cur);
            if (r < 0 && required[i])
                return r;
            if (r < 0) {
                sbx_error_release(err);
                ok[i] = false;
            }
        }
        cur[end] = saved;
        if (saved == '\0')
            break;
        end = strchrnul(cur + end + 1, '/') - cur;
    }
    return 0;
}

static bool
is_perm_error(int e)
{
    return e == EACCES || e == EPERM || e == EROFS;
}

/* Says why a rootless create failed; a requested limit that cannot be enforced is an
 * SBX_ERR_LIMIT error, so the caller can name its own option for it. Returns r. */
static int
rootless_hint(sbx_error_t *err, const char *limit, int r)
{
    if (geteuid() == 0 || !is_perm_error(-r - 1))
        return r;
    sbx_error_wrap(err,
                   "%s requested but the cgroup is not writable by uid %u (rootless without a "
                   "delegated cgroup)",
                   limit ? limit : "a cgroup", geteuid());
    if (limit && err && *err)
        (*err)->code = SBX_ERR_LIMIT;
    return r;
}

/* Creates parent (if missing; one level) and the leaf. Sets d->parent_created. Concurrent
 * destroys may remove a parent they created between our mkdirs: retry on ENOENT. */
static int
make_dirs(struct cg_dir *d, sbx_error_t *err)
{
    for (int attempt = 0;; attempt++) {
        /* A nested parent (cgroupsPath a/b/c): its missing ancestors first, top-down; the
         * highest one made is remembered so destroy removes them again. Everything below the
         * hierarchy's mount point (CG_ROOT/<controller>) only. */
        if (access(d->parent, F_OK) < 0 &&
            strncmp(d->parent, CG_ROOT "/", strlen(CG_ROOT) + 1) == 0) {
            cleanup_free char *cur = xstrdup(d->parent);
            char *p = cur + strlen(CG_ROOT) + 1;
            p += strcspn(p, "/"); /* the mount point itself */
            while (*p == '/') {
                char *next = strchr(p + 1, '/');
                if (next == NULL)
                    break; /* d->parent itself: below */
                *next = '\0';
                if (mkdir(cur, 0755) == 0) {
                    if (d->top_created == NULL)
                        d->top_created = xstrdup(cur);
                } else if (errno != EEXIST)
                    return sbx_make_error(err, errno, "mkdir cgroup `%s`", cur);
                *next = '/';
                p = next;
            }
        }
        if (mkdir(d->parent, 0755) == 0)
            d->parent_created = true;
        else if (errno != EEXIST)
            return sbx_make_error(err, errno, "mkdir cgroup parent `%s`", d->parent);
        if (mkdir(d->path, 0755) == 0) {
            d->owned = true;
            return 0;
        }
        if (errno == ENOENT && attempt < 3)
            continue;
        if (errno == EEXIST)
            return sbx_make_error(
                err, EEXIST, "cgroup `%s` already exists (a sandbox with this id, or a leftover)",
                d->path);
        return sbx_make_error(err, errno, "mkdir cgroup `%s`", d->path);
    }
}

static int
open_dir(struct cg_dir *d, sbx_error_t *err)
{
    d->fd = open(d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d->fd < 0)
        return sbx_make_error(err, errno, "open cgroup `%s`", d->path);
    return 0;
}

/* A new v1 cpuset cgroup starts with empty cpuset.cpus/mems and takes no task until both are
 * set: an empty one gets its parent's (the parent `sbx` first, then the leaf). Directories that
 * already have values are left alone. */
static int
cpuset_fill(const char *dir, sbx_error_t *err)
{
    static const char *const files[] = {"cpuset.cpus", "cpuset.mems"};
    cleanup_free char *up = xstrdup(dir);
    char *slash = strrchr(up, '/');
    if (slash == NULL || slash == up)
        return 0;
    *slash = '\0';
    cleanup_close int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    cleanup_close int upfd = open(up, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || upfd < 0)
        return sbx_make_error(err, errno, "open cpuset cgroup `%s`", fd < 0 ? dir : up);
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        cleanup_free char *cur = NULL, *parent = NULL;
        int r = cg_read(fd, dir, files[i], &cur, err);
        if (r < 0)
            return r;
        if (cur[strspn(cur, " \n")] != '\0')
            continue;
        if ((r = cg_read(upfd, up, files[i], &parent, err)) < 0)
            return r;
        parent[strcspn(parent, "\n")] = '\0';
        if ((r = cg_write(fd, dir, files[i], parent, err)) < 0)
            return r;
    }
    return 0;
}

/* cpuset_fill() on every level below the mount point, top-down, down to the leaf dir. */
static int
cpuset_fill_path(const char *dir, sbx_error_t *err)
{
    cleanup_free char *cur = xstrdup(dir);
    char *p = cur + strlen(CG_ROOT) + 1;
    p += strcspn(p, "/");
    while (*p == '/') {
        char *next = strchr(p + 1, '/');
        if (next)
            *next = '\0';
        int r = cpuset_fill(cur, err);
        if (r < 0)
            return r;
        if (next == NULL)
            break;
        *next = '/';
        p = next;
    }
    return 0;
}

static int
read_own_cgroup(const char *controller, char **path, sbx_error_t *err)
{
    cleanup_free char *content = NULL;
    if (read_file("/proc/self/cgroup", &content, NULL, err) < 0)
        return -1;
    return sbx_cgroup_parse_proc_cgroup(content, controller, path, err);
}

/* Removes what create made in one hierarchy; returns 0 or the rmdir error. */
static int
remove_dir(struct cg_dir *d, sbx_error_t *err)
{
    int r = 0;
    if (d->path && d->owned) {
        /* rmdir fails with EBUSY until exiting tasks are gone from the cgroup. */
        for (int i = 0; i < CG_WAIT_MS / 10; i++) {
            if (rmdir(d->path) == 0 || errno == ENOENT)
                break;
            if (errno != EBUSY || i == CG_WAIT_MS / 10 - 1) {
                r = sbx_make_error(err, errno, "rmdir cgroup `%s`", d->path);
                break;
            }
            sleep_ms(10);
        }
    }
    /* Another sandbox may be using the shared parent: failing here is expected. */
    if (r == 0 && d->parent_created && d->parent && rmdir(d->parent) == 0 && d->top_created) {
        /* Then the ancestors make_dirs created, bottom-up, while they are empty. */
        size_t toplen = strlen(d->top_created);
        cleanup_free char *cur = xstrdup(d->parent);
        for (char *slash; (slash = strrchr(cur, '/')) && (size_t)(slash - cur) >= toplen;) {
            *slash = '\0';
            if (rmdir(cur) < 0)
                break;
        }
    }
    return r;
}

/* Builds the leaf paths for every hierarchy without touching the filesystem. */
static int
plan_paths(struct sbx_cgroup *cg, const char *parent, const char *name, sbx_error_t *err)
{
    int r;
    if (is_v2(cg)) {
        cleanup_free char *own = NULL, *prel = NULL;
        if (parent == NULL) {
            if ((r = read_own_cgroup(NULL, &own, err)) < 0)
                return r;
            prel = path_join3(own, CG_DEFAULT_PARENT, NULL);
        } else
            prel = path_join3("", parent, NULL);
        cg->d[H_UNIFIED].parent = path_join3(CG_ROOT, prel, NULL);
        cg->d[H_UNIFIED].path = path_join3(CG_ROOT, prel, name);
        cg->rel = path_join3("", prel, name);
        return 0;
    }
    struct stat seen[H_COUNT];
    cleanup_free char *leaf = parent ? xstrdup(name) : xasprintf(CG_DEFAULT_PARENT "-%s", name);
    cleanup_free char *own_cgroups = NULL; /* /proc/self/cgroup, read once for all hierarchies */
    if (parent == NULL && (r = read_file("/proc/self/cgroup", &own_cgroups, NULL, err)) < 0)
        return r;
    for (int h = 0; h < H_COUNT; h++) {
        cleanup_free char *mnt = xasprintf(CG_ROOT "/%s", v1_names[h]), *own = NULL, *prel = NULL;
        struct statfs sfs;
        if (statfs(mnt, &sfs) < 0 || sfs.f_type != CGROUP_SUPER_MAGIC || stat(mnt, &seen[h]) < 0)
            continue;
        /* cpu,cpuacct co-mounted: cpu is the primary, cpuacct an alias (found later). */
        /* By default the leaf is a `sbx-ID` child of the caller's own cgroup: v1 has no
         * internal-process rule that would need a parent of sbx's own, and a shared `sbx`
         * parent (which the last sandbox to leave must remove, or it blocks the removal of
         * the caller's cgroup) doubled the kernel's cgroup work of every sandbox: seven more
         * mkdir and rmdir, each building a directory of control files. */
        if (parent == NULL) {
            if (sbx_cgroup_parse_proc_cgroup(own_cgroups, v1_names[h], &own, NULL) < 0)
                continue;
            prel = path_join3(own, NULL, NULL);
        } else
            prel = path_join3("", parent, NULL);
        cg->d[h].parent = path_join3(mnt, prel, NULL);
        cg->d[h].path = path_join3(mnt, prel, leaf);
        if (cg->rel == NULL || h == H_MEMORY) {
            free(cg->rel);
            cg->rel = path_join3("", prel, leaf);
        }
        for (int j = 0; j < h; j++)
            if (cg->d[j].path && seen[j].st_dev == seen[h].st_dev &&
                seen[j].st_ino == seen[h].st_ino)
                cg->d[h].alias = j;
    }
    if (cg->rel == NULL)
        return sbx_make_error(err, ENOENT, "no cgroup v1 hierarchy mounted under `" CG_ROOT "`");
    return 0;
}

/* v1: a cpuset cgroup without cpus/mems of its own takes its parent's, blkio only weights IO, and
 * a devices cgroup without rules allows what its parent does; sbx reads no statistics from them.
 * A sandbox that asks for no such limit is left in the caller's cgroup there: three hierarchies
 * fewer to make, fill, join, show and remove (~0.5 ms of every start and exit). A hierarchy
 * co-mounted with a used one stays. (The sandbox cannot make device nodes either way: no
 * mknod in a user namespace, and its root and /dev are nodev or hold only the standard nodes.) */
static void
skip_idle_v1(struct sbx_cgroup *cg, const struct sbx_resources *res)
{
    const struct {
        enum cg_hier h;
        bool wanted;
    } idle[] = {
        {H_CPUSET, res && (res->cpuset_cpus || res->cpuset_mems)},
        {H_BLKIO, res && res->io_weight >= 0},
        {H_DEVICES, res && res->devices},
    };
    for (size_t i = 0; i < ARRAY_SIZE(idle); i++) {
        struct cg_dir *d = &cg->d[idle[i].h];
        bool shared = d->alias >= 0;
        for (int j = 0; j < H_COUNT; j++)
            shared = shared || (cg->d[j].path && cg->d[j].alias == (int)idle[i].h);
        if (idle[i].wanted || d->path == NULL || shared)
            continue;
        free(d->path);
        free(d->parent);
        d->path = d->parent = NULL;
    }
}

int
sbx_cgroup_create(const char *parent, const char *name, const struct sbx_resources *res,
                  struct sbx_cgroup **out, sbx_error_t *err)
{
    int r;
    *out = NULL;
    if (name == NULL || *name == '\0' || strchr(name, '/') || !path_is_safe(name))
        return sbx_make_error(err, EINVAL, "invalid cgroup name `%s`", name ? name : "");
    if (parent && !path_is_safe(parent))
        return sbx_make_error(err, EINVAL, "invalid cgroup parent `%s`", parent);
    if (res && (r = check_resources(res, err)) < 0)
        return r;
    const char *limit = first_limit(res);

    cleanup_cg struct sbx_cgroup *cg = cg_new(sbx_cgroup_mode());
    if ((r = plan_paths(cg, parent, name, err)) < 0)
        return r;

    if (is_v2(cg)) {
        struct cg_dir *d = &cg->d[H_UNIFIED];
        /* Rootless without delegation: nothing to enforce and nowhere to write. */
        if (geteuid() != 0 && limit == NULL) {
            const char *probe = access(d->parent, F_OK) == 0 ? d->parent : NULL;
            cleanup_free char *up = probe ? NULL : xstrdup(d->parent);
            if (up)
                *strrchr(up, '/') = '\0';
            if (access(probe ? probe : up, W_OK) < 0)
                return 0;
        }
        const char *want[5];
        bool required[5];
        size_t n = 0;
#define WANT(c, req) (want[n] = (c), required[n] = (req), n++)
        WANT("memory", res && (res->memory_limit >= 0 || res->memory_reservation >= 0));
        WANT("pids", res && res->pids_limit >= 0);
        WANT("cpu", res && (res->cpu_quota >= 0 || res->cpu_weight >= 0 || res->cpu_shares >= 0));
        if (res && res->io_weight >= 0)
            WANT("io", true);
        if (res && (res->cpuset_cpus || res->cpuset_mems))
            WANT("cpuset", true);
#undef WANT
        /* Parent first, so the enabling walk can include it: it only ever holds leaves. */
        bool created = false;
        if (mkdir(d->parent, 0755) == 0)
            created = d->parent_created = true;
        else if (errno != EEXIST) {
            if (is_perm_error(errno) && limit == NULL)
                return 0;
            r = sbx_make_error(err, errno, "mkdir cgroup parent `%s`", d->parent);
            goto rootless_hint;
        }
        r = enable_controllers_v2(d->parent, want, required, n, err);
        if (r >= 0)
            r = make_dirs(d, err);
        if (r < 0) {
            if (created)
                rmdir(d->parent);
            if (is_perm_error(-r - 1) && limit == NULL) {
                sbx_error_release(err);
                return 0;
            }
            goto rootless_hint;
        }
        d->parent_created = d->parent_created || created;
        if ((r = open_dir(d, err)) < 0)
            goto fail;
    } else {
        skip_idle_v1(cg, res);
        for (int h = 0; h < H_COUNT; h++) {
            struct cg_dir *d = &cg->d[h];
            if (d->path == NULL || d->alias >= 0)
                continue;
            if ((r = make_dirs(d, err)) < 0) {
                if (is_perm_error(-r - 1) && limit == NULL) {
                    sbx_error_release(err);
                    sbx_cgroup_destroy(cg, NULL);
                    return 0;
                }
                goto fail_hint;
            }
            if ((r = open_dir(d, err)) < 0)
                goto fail;
            if (h == H_CPUSET && (r = cpuset_fill_path(d->path, err)) < 0)
                goto fail;
        }
        for (int h = 0; h < H_COUNT; h++) {
            struct cg_dir *d = &cg->d[h];
            if (d->alias >= 0 && (d->fd = dup(cg->d[d->alias].fd)) < 0) {
                r = sbx_make_error(err, errno, "dup");
                goto fail;
            }
        }
        cg_find_aliases(cg);
    }
    if (res && (r = sbx_cgroup_update(cg, res, err)) < 0)
        goto fail;
    *out = steal_pointer(&cg);
    return 0;

rootless_hint:
    return rootless_hint(err, limit, r);
fail_hint:
    rootless_hint(err, limit, r);
fail:
    sbx_cgroup_destroy(cg, NULL);
    return r;
}

char *
sbx_cgroup_serialize(const struct sbx_cgroup *cg)
{
    if (cg == NULL)
        return NULL;
    json_t *root = json_object();
    json_object_set_new(root, "mode", json_string(mode_name(cg->mode)));
    json_object_set_new(root, "path", json_string(cg->rel));
    json_t *dirs = json_array();
    for (int h = 0; h < H_COUNT; h++) {
        const struct cg_dir *d = &cg->d[h];
        if (d->path == NULL)
            continue;
        json_t *o = json_object();
        json_object_set_new(o, "c", json_string(is_v2(cg) ? "unified" : v1_names[h]));
        json_object_set_new(o, "dir", json_string(d->path));
        json_object_set_new(o, "parent", json_string(d->parent));
        if (d->parent_created && d->alias < 0)
            json_object_set_new(o, "parent_created", json_true());
        if (d->top_created && d->alias < 0)
            json_object_set_new(o, "top_created", json_string(d->top_created));
        json_array_append_new(dirs, o);
        if (is_v2(cg))
            break;
    }
    json_object_set_new(root, "dirs", dirs);
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (s == NULL)
        abort();
    return s;
}

int
sbx_cgroup_open(const char *serialized, struct sbx_cgroup **out, sbx_error_t *err)
{
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_loads(serialized ? serialized : "", 0, &jerr);
    if (root == NULL)
        return sbx_make_error(err, EINVAL, "invalid serialized cgroup: %s", jerr.text);
    int r = 0;
    const char *mode = json_string_value(json_object_get(root, "mode"));
    const char *rel = json_string_value(json_object_get(root, "path"));
    json_t *dirs = json_object_get(root, "dirs");
    enum sbx_cgroup_mode m;
    if (mode && strcmp(mode, "unified") == 0)
        m = SBX_CGROUP_UNIFIED;
    else if (mode && strcmp(mode, "hybrid") == 0)
        m = SBX_CGROUP_HYBRID;
    else if (mode && strcmp(mode, "legacy") == 0)
        m = SBX_CGROUP_LEGACY;
    else {
        json_decref(root);
        return sbx_make_error(err, EINVAL, "invalid serialized cgroup: bad mode");
    }
    cleanup_cg struct sbx_cgroup *cg = cg_new(m);
    cg->rel = xstrdup(rel ? rel : "");
    size_t i;
    json_t *o;
    json_array_foreach (dirs, i, o) {
        const char *c = json_string_value(json_object_get(o, "c"));
        const char *dir = json_string_value(json_object_get(o, "dir"));
        const char *parent = json_string_value(json_object_get(o, "parent"));
        const char *top = json_string_value(json_object_get(o, "top_created"));
        int h = -1;
        if (c && is_v2(cg) && strcmp(c, "unified") == 0)
            h = H_UNIFIED;
        for (int k = 0; c && !is_v2(cg) && k < H_COUNT; k++)
            if (strcmp(c, v1_names[k]) == 0)
                h = k;
        /* State files are root's, but a path outside cgroupfs must never be acted on. */
        if (h < 0 || cg->d[h].path || dir == NULL ||
            strncmp(dir, CG_ROOT "/", strlen(CG_ROOT) + 1) || !path_is_safe(dir) ||
            (parent &&
             (strncmp(parent, CG_ROOT "/", strlen(CG_ROOT) + 1) || !path_is_safe(parent))) ||
            (top &&
             (parent == NULL || strncmp(parent, top, strlen(top)) || parent[strlen(top)] != '/' ||
              strncmp(top, CG_ROOT "/", strlen(CG_ROOT) + 1) || !path_is_safe(top)))) {
            r = sbx_make_error(err, EINVAL, "invalid serialized cgroup entry `%s`",
                               dir ? dir : "?");
            break;
        }
        cg->d[h].path = xstrdup(dir);
        cg->d[h].parent = xstrdup(parent);
        cg->d[h].parent_created = json_is_true(json_object_get(o, "parent_created"));
        cg->d[h].top_created = top ? xstrdup(top) : NULL;
        cg->d[h].owned = true;
        if ((r = open_dir(&cg->d[h], err)) < 0)
            break;
    }
    json_decref(root);
    if (r < 0)
        return r;
    if (procs_dir(cg) == NULL)
        return sbx_make_error(err, EINVAL, "invalid serialized cgroup: no directories");
    cg_find_aliases(cg);
    *out = steal_pointer(&cg);
    return 0;
}

/* ---- operations ---- */

int
sbx_cgroup_enter(struct sbx_cgroup *cg, pid_t pid, sbx_error_t *err)
{
    if (cg == NULL)
        return 0;
    for (int h = 0; h < H_COUNT; h++) {
        struct cg_dir *d = &cg->d[h];
        if (d->fd < 0 || d->alias >= 0)
            continue;
        int r = cg_writef(d->fd, d->path, "cgroup.procs", err, "%d", (int)pid);
        if (r < 0)
            return r;
        if (is_v2(cg))
            break;
    }
    return 0;
}

/* cgroup v1 moves: writing a pid to cgroup.procs (or any pid but our own thread) write-locks
 * cgroup_threadgroup_rwsem, and taking that lock waits for an RCU grace period: 9-21 ms measured
 * on this HZ=250 host for the first move, the largest single cost of starting a sandbox. A thread
 * that writes "0" to a `tasks` file moves only itself; the kernel needs no threadgroup stability
 * for that and skips the lock (cgroup_procs_write_start(), "If the thread is `current`"): 0.08 ms
 * for all eight hierarchies. So a single-threaded process joins by itself. v1 checks the
 * credentials of the file's opener, not the writer's, which lets the creator open the files and
 * a child already in a new user namespace write them. */
int
sbx_cgroup_self_join_fds(struct sbx_cgroup *cg, int *fds, size_t max, sbx_error_t *err)
{
    size_t n = 0;
    if (cg == NULL || is_v2(cg))
        return 0;
    for (int h = 0; h < H_COUNT; h++) {
        struct cg_dir *d = &cg->d[h];
        if (d->fd < 0 || d->alias >= 0)
            continue;
        int fd = n < max ? openat(d->fd, "tasks", O_WRONLY | O_CLOEXEC) : -1;
        if (fd < 0) {
            int e = n < max ? errno : E2BIG;
            while (n > 0)
                close(fds[--n]);
            return sbx_make_error(err, e, "open `%s/tasks`", d->path);
        }
        fds[n++] = fd;
    }
    return (int)n;
}

int
sbx_cgroup_join_self(const int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (write(fds[i], "0", 1) != 1)
            return -errno;
    return 0;
}

int
sbx_cgroup_enter_self(struct sbx_cgroup *cg, sbx_error_t *err)
{
    int fds[H_COUNT];
    int n = sbx_cgroup_self_join_fds(cg, fds, H_COUNT, err);
    if (n <= 0)
        return n < 0 ? n : sbx_cgroup_enter(cg, getpid(), err);
    int r = sbx_cgroup_join_self(fds, (size_t)n);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    return r < 0 ? sbx_make_error(err, -r, "join cgroup `%s`", cg->rel) : 0;
}

static int
read_pids(struct cg_dir *d, pid_t **pids, size_t *n, sbx_error_t *err)
{
    cleanup_free char *buf = NULL;
    int r = cg_read(d->fd, d->path, "cgroup.procs", &buf, err);
    if (r < 0)
        return r;
    size_t cap = 16, cnt = 0;
    pid_t *v = xmalloc0(cap * sizeof(pid_t));
    for (char *p = buf, *end; *p; p = end) {
        long x = strtol(p, &end, 10);
        if (end == p)
            break;
        if (cnt == cap)
            v = xrealloc(v, (cap *= 2) * sizeof(pid_t));
        v[cnt++] = (pid_t)x;
    }
    *pids = v;
    *n = cnt;
    return 0;
}

int
sbx_cgroup_pids(struct sbx_cgroup *cg, pid_t **pids, size_t *n, sbx_error_t *err)
{
    *pids = NULL;
    *n = 0;
    if (cg == NULL)
        return 0;
    struct cg_dir *d = procs_dir(cg);
    if (d == NULL)
        return sbx_make_error(err, ENOENT, "cgroup has no directory to list processes");
    return read_pids(d, pids, n, err);
}

static bool
is_frozen_v1(struct cg_dir *d)
{
    cleanup_free char *s = NULL;
    return read_file_at(d->fd, "freezer.state", &s, NULL, NULL) == 0 &&
           strncmp(s, "FROZEN", 6) == 0;
}

static int
freeze_v2(struct cg_dir *d, bool frozen, sbx_error_t *err)
{
    int r = cg_write(d->fd, d->path, "cgroup.freeze", frozen ? "1" : "0", err);
    if (r < 0)
        return r;
    /* The write only requests the state; cgroup.events reports when every task got there. */
    for (int i = 0; i < CG_WAIT_MS / 10; i++) {
        if (cg_read_keyed(d->fd, "cgroup.events", "frozen") == (frozen ? 1 : 0))
            return 0;
        sleep_ms(10);
    }
    if (frozen)
        cg_write(d->fd, d->path, "cgroup.freeze", "0", NULL);
    return sbx_make_error(err, ETIMEDOUT, "cgroup `%s` did not become %s within %d ms", d->path,
                          frozen ? "frozen" : "thawed", CG_WAIT_MS);
}

static int
freeze_v1(struct cg_dir *d, bool frozen, sbx_error_t *err)
{
    const char *want = frozen ? "FROZEN" : "THAWED";
    for (int i = 0; i < CG_WAIT_MS / 10; i++) {
        /* A freeze can stall in FREEZING (a task in an uninterruptible sleep); writing FROZEN
         * again retries it, as runc does. */
        int r = cg_write(d->fd, d->path, "freezer.state", want, err);
        if (r < 0)
            return r;
        cleanup_free char *s = NULL;
        if (read_file_at(d->fd, "freezer.state", &s, NULL, NULL) == 0 &&
            strncmp(s, want, strlen(want)) == 0)
            return 0;
        sleep_ms(10);
    }
    if (frozen)
        cg_write(d->fd, d->path, "freezer.state", "THAWED", NULL);
    return sbx_make_error(err, ETIMEDOUT, "cgroup `%s` did not become %s within %d ms", d->path,
                          want, CG_WAIT_MS);
}

int
sbx_cgroup_freeze(struct sbx_cgroup *cg, bool frozen, sbx_error_t *err)
{
    if (cg == NULL)
        return sbx_make_error(err, ENOTSUP, "the sandbox has no cgroup (cgroups disabled)");
    if (is_v2(cg))
        return freeze_v2(&cg->d[H_UNIFIED], frozen, err);
    struct cg_dir *d = v1dir(cg, H_FREEZER);
    if (d == NULL)
        return sbx_make_error(err, ENOENT,
                              "controller freezer not available: no v1 hierarchy at `" CG_ROOT
                              "/freezer`");
    return freeze_v1(d, frozen, err);
}

static int
wait_empty(struct cg_dir *d, sbx_error_t *err)
{
    for (int i = 0; i < CG_WAIT_MS / 10; i++) {
        cleanup_free char *buf = NULL;
        if (read_file_at(d->fd, "cgroup.procs", &buf, NULL, NULL) < 0 || buf[0] == '\0')
            return 0;
        sleep_ms(10);
    }
    return sbx_make_error(err, ETIMEDOUT, "processes left in cgroup `%s` after %d ms", d->path,
                          CG_WAIT_MS);
}

int
sbx_cgroup_kill(struct sbx_cgroup *cg, int sig, sbx_error_t *err)
{
    if (cg == NULL)
        return 0;
    struct cg_dir *pd = procs_dir(cg);
    if (pd == NULL)
        return 0;
    if (is_v2(cg) && sig == SIGKILL && cg_has(pd->fd, "cgroup.kill")) {
        int r = cg_write(pd->fd, pd->path, "cgroup.kill", "1", err);
        if (r < 0)
            return r;
        return wait_empty(pd, err);
    }
    /* Freeze so nothing forks past the pid list, signal each, and thaw on every path: a failed
     * kill must not leave the sandbox frozen forever. */
    bool frozen = sbx_cgroup_freeze(cg, true, NULL) == 0;
    int r = 0;
    for (int round = 0; round < (frozen ? 1 : 10); round++) {
        pid_t *pids = NULL;
        size_t n = 0;
        r = read_pids(pd, &pids, &n, err);
        if (r < 0)
            break;
        for (size_t i = 0; i < n; i++)
            if (kill(pids[i], sig) < 0 && errno != ESRCH && r == 0)
                r = sbx_make_error(err, errno, "kill %d with SIG%s", (int)pids[i],
                                   signal_name(sig));
        free(pids);
        if (n == 0 || sig != SIGKILL)
            break;
        if (!frozen)
            sleep_ms(10);
    }
    /* A cgroup that vanished meanwhile (its sandbox ended and was cleaned up by its own
     * supervisor) has nothing left to kill or thaw. */
    if (access(pd->path, F_OK) < 0 && errno == ENOENT) {
        sbx_error_release(err);
        return 0;
    }
    if (frozen) {
        sbx_error_t terr = NULL;
        int tr = sbx_cgroup_freeze(cg, false, &terr);
        if (tr < 0 && terr && terr->status == ENOENT)
            tr = 0; /* the freezer directory went away with the sandbox */
        if (tr < 0 && r == 0) {
            r = tr;
            *err = terr;
        } else
            sbx_error_release(&terr);
    }
    if (r < 0 || sig != SIGKILL)
        return r;
    return wait_empty(pd, err);
}

int64_t
sbx_cgroup_oom_kills(struct sbx_cgroup *cg)
{
    struct cg_dir *d;
    if (cg && is_v2(cg))
        return cg_read_keyed(cg->d[H_UNIFIED].fd, "memory.events", "oom_kill");
    /* oom_kill in memory.oom_control appeared in 4.13; older kernels only have under_oom. */
    if (cg && (d = v1dir(cg, H_MEMORY)))
        return cg_read_keyed(d->fd, "memory.oom_control", "oom_kill");
    return -1;
}

int
sbx_cgroup_stats(struct sbx_cgroup *cg, struct sbx_cgroup_stats *st, sbx_error_t *err)
{
    *st = (struct sbx_cgroup_stats){-1, -1, -1, -1, -1, false};
    if (cg == NULL)
        return sbx_make_error(err, ENOTSUP, "the sandbox has no cgroup (cgroups disabled)");
    if (is_v2(cg)) {
        int fd = cg->d[H_UNIFIED].fd;
        st->memory_current = cg_read_int(fd, "memory.current");
        st->memory_peak = cg_read_int(fd, "memory.peak");
        st->cpu_usec = cg_read_keyed(fd, "cpu.stat", "usage_usec");
        st->pids_current = cg_read_int(fd, "pids.current");
        st->oom_kills = sbx_cgroup_oom_kills(cg);
        st->frozen = cg_read_keyed(fd, "cgroup.events", "frozen") == 1;
        return 0;
    }
    struct cg_dir *d;
    if ((d = v1dir(cg, H_MEMORY))) {
        st->memory_current = cg_read_int(d->fd, "memory.usage_in_bytes");
        st->memory_peak = cg_read_int(d->fd, "memory.max_usage_in_bytes");
        st->oom_kills = sbx_cgroup_oom_kills(cg);
    }
    if ((d = v1dir(cg, H_CPUACCT))) {
        int64_t ns = cg_read_int(d->fd, "cpuacct.usage");
        st->cpu_usec = ns >= 0 ? ns / 1000 : -1;
    }
    if ((d = v1dir(cg, H_PIDS)))
        st->pids_current = cg_read_int(d->fd, "pids.current");
    if ((d = v1dir(cg, H_FREEZER)))
        st->frozen = is_frozen_v1(d);
    return 0;
}

int
sbx_cgroup_destroy(struct sbx_cgroup *cg, sbx_error_t *err)
{
    if (cg == NULL)
        return 0;
    int r = 0;
    struct cg_dir *pd = procs_dir(cg);
    if (pd) {
        cleanup_free char *buf = NULL;
        if (read_file_at(pd->fd, "cgroup.procs", &buf, NULL, NULL) == 0 && buf[0])
            r = sbx_cgroup_kill(cg, SIGKILL, err);
    }
    for (int h = 0; h < H_COUNT; h++) {
        struct cg_dir *d = &cg->d[h];
        if (d->path == NULL || d->alias >= 0)
            continue;
        int rr = remove_dir(d, r < 0 ? NULL : err);
        if (rr < 0 && r == 0)
            r = rr;
        if (is_v2(cg))
            break;
    }
    return r;
}
