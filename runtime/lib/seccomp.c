/* OCI `linux.seccomp` → BPF. libseccomp does the heavy lifting in the parent; the result is read
 * back as raw instructions so that the child only has to call seccomp(2) (libseccomp allocates and
 * can fail halfway, which is not acceptable after clone).
 *
 * Two things are added in front of libseccomp's program, for the native architecture only:
 *  - "newer than the profile": when the default action is SCMP_ACT_ERRNO, any syscall number above
 *    the highest one the profile mentions returns ENOSYS instead of the default errno, so that libc
 *    falls back to the older call (clone3 → clone, fchmodat2 → fchmodat, ...) instead of treating
 *    EPERM as a hard failure.
 *  - "overrides": libseccomp silently drops conditional rules on a syscall that also has an
 *    unconditional rule (e.g. "allow ioctl" + "deny ioctl(TIOCSTI)" would allow TIOCSTI). Such
 *    conditional rules are compiled here instead, limited to EQ / MASKED_EQ comparisons. */
#include "seccomp.h"
#include "utils.h"

#include <endian.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <scmp.h>
#include <stddef.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>

struct sbx_embedded_file {
    const char *name;
    const char *data;
    size_t len;
};
extern const struct sbx_embedded_file sbx_embedded_files[];

#define MAX_ARGS 6
/* The kernel refuses longer programs (BPF_MAXINSNS). */
#define MAX_INSNS 4096
#define X32_SYSCALL_BIT 0x40000000u

struct rule {
    const char *name; /* borrowed from the JSON */
    int nr;
    uint32_t action;
    unsigned n_cmps;
    struct scmp_arg_cmp cmps[MAX_ARGS];
    bool optional;
    bool override; /* compiled into the prefix rather than by libseccomp */
};

static void
cleanup_seccomp_ctx(scmp_filter_ctx *ctx)
{
    if (*ctx)
        seccomp_release(*ctx);
}
#define cleanup_scmp __attribute__((cleanup(cleanup_seccomp_ctx)))

/* The embedded file DIR/NAME.json, or NULL. */
static const struct sbx_embedded_file *
embedded_find(const char *dir, const char *name)
{
    if (name == NULL || strchr(name, '/'))
        return NULL;
    cleanup_free char *want = xasprintf("%s/%s.json", dir, name);
    for (const struct sbx_embedded_file *f = sbx_embedded_files; f->name; f++)
        if (strcmp(f->name, want) == 0)
            return f;
    return NULL;
}

int
sbx_profile_load_json(const char *kind, const char *dir, const char *name_or_path, json_t **out,
                      sbx_error_t *err)
{
    json_error_t jerr;
    json_t *j;

    *out = NULL;
    if (name_or_path == NULL || *name_or_path == '\0')
        return sbx_make_error(err, EINVAL, "empty %s profile name", kind);
    if (strchr(name_or_path, '/')) {
        j = json_load_file(name_or_path, JSON_REJECT_DUPLICATES, &jerr);
        if (j == NULL)
            return sbx_make_error(err, 0, "%s profile `%s`: %s (line %d)", kind, name_or_path,
                                  jerr.text, jerr.line);
        *out = j;
        return 0;
    }
    const struct sbx_embedded_file *f = embedded_find(dir, name_or_path);
    if (f == NULL)
        return sbx_make_error(
            err, ENOENT, "unknown %s profile `%s` (use a built-in name or a path containing '/')",
            kind, name_or_path);
    j = json_loadb((const char *)f->data, f->len, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL)
        return sbx_make_error(err, 0, "embedded %s profile `%s`: %s (line %d)", kind, name_or_path,
                              jerr.text, jerr.line);
    *out = j;
    return 0;
}

const char *
sbx_seccomp_builtin_text(const char *name, size_t *len)
{
    const struct sbx_embedded_file *f = embedded_find("profiles", name);
    if (f && len)
        *len = f->len;
    return f ? (const char *)f->data : NULL;
}

int
sbx_seccomp_profile_load(const char *name_or_path, json_t **out, sbx_error_t *err)
{
    *out = NULL;
    if (name_or_path && strcmp(name_or_path, "none") == 0)
        return 0;
    return sbx_profile_load_json("seccomp", "profiles", name_or_path, out, err);
}

static int
parse_action(const char *what, json_t *obj, const char *action_key, const char *errno_key,
             uint32_t default_errno, uint32_t *out, sbx_error_t *err)
{
    json_t *a = json_object_get(obj, action_key);
    json_t *e = json_object_get(obj, errno_key);
    const char *s;
    uint32_t ret = default_errno;

    if (!json_is_string(a))
        return sbx_make_error(err, EINVAL, "seccomp %s: `%s` must be a string", what, action_key);
    s = json_string_value(a);
    if (e && !json_is_null(e)) {
        if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > 4094)
            return sbx_make_error(err, EINVAL, "seccomp %s: `%s` must be an integer in 0..4094",
                                  what, errno_key);
        ret = json_integer_value(e);
    }
    if (strcmp(s, "SCMP_ACT_ALLOW") == 0)
        *out = SCMP_ACT_ALLOW;
    else if (strcmp(s, "SCMP_ACT_ERRNO") == 0)
        *out = SCMP_ACT_ERRNO(ret);
    else if (strcmp(s, "SCMP_ACT_KILL") == 0 || strcmp(s, "SCMP_ACT_KILL_THREAD") == 0)
        *out = SCMP_ACT_KILL_THREAD;
    else if (strcmp(s, "SCMP_ACT_KILL_PROCESS") == 0)
        *out = SCMP_ACT_KILL_PROCESS;
    else if (strcmp(s, "SCMP_ACT_TRAP") == 0)
        *out = SCMP_ACT_TRAP;
    else if (strcmp(s, "SCMP_ACT_TRACE") == 0)
        *out = SCMP_ACT_TRACE(ret);
    else if (strcmp(s, "SCMP_ACT_LOG") == 0)
        *out = SCMP_ACT_LOG;
    else if (strcmp(s, "SCMP_ACT_NOTIFY") == 0)
        return sbx_make_error(err, ENOTSUP,
                              "seccomp %s: SCMP_ACT_NOTIFY needs a listener, which sbx does not "
                              "support",
                              what);
    else
        return sbx_make_error(err, EINVAL, "seccomp %s: unknown action `%s`", what, s);
    return 0;
}

static int
parse_op(const char *s, enum scmp_compare *op)
{
    static const struct {
        const char *name;
        enum scmp_compare op;
    } ops[] = {
        {"SCMP_CMP_NE", SCMP_CMP_NE},
        {"SCMP_CMP_LT", SCMP_CMP_LT},
        {"SCMP_CMP_LE", SCMP_CMP_LE},
        {"SCMP_CMP_EQ", SCMP_CMP_EQ},
        {"SCMP_CMP_GE", SCMP_CMP_GE},
        {"SCMP_CMP_GT", SCMP_CMP_GT},
        {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
    };
    for (size_t i = 0; i < ARRAY_SIZE(ops); i++)
        if (strcmp(s, ops[i].name) == 0) {
            *op = ops[i].op;
            return 0;
        }
    return -1;
}

static int
json_u64(json_t *v, uint64_t *out)
{
    if (v == NULL || json_is_null(v)) {
        *out = 0;
        return 0;
    }
    if (!json_is_integer(v))
        return -1;
    /* JSON has no unsigned type; negative values are taken as their two's complement so that
     * e.g. -1 can stand for 0xffffffffffffffff. */
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int
parse_args(const char *name, json_t *args, struct scmp_arg_cmp *cmps, unsigned *n, sbx_error_t *err)
{
    size_t i;
    json_t *a;

    *n = 0;
    if (args == NULL || json_is_null(args))
        return 0;
    if (!json_is_array(args))
        return sbx_make_error(err, EINVAL, "seccomp rule for `%s`: `args` must be an array", name);
    if (json_array_size(args) > MAX_ARGS)
        return sbx_make_error(err, EINVAL, "seccomp rule for `%s`: more than %d args", name,
                              MAX_ARGS);
    json_array_foreach (args, i, a) {
        json_t *idx = json_object_get(a, "index");
        json_t *op = json_object_get(a, "op");
        uint64_t v1, v2;

        if (!json_is_integer(idx) || json_integer_value(idx) < 0 ||
            json_integer_value(idx) >= MAX_ARGS)
            return sbx_make_error(err, EINVAL, "seccomp rule for `%s`: arg index must be 0..5",
                                  name);
        if (!json_is_string(op) || parse_op(json_string_value(op), &cmps[i].op) < 0)
            return sbx_make_error(err, EINVAL, "seccomp rule for `%s`: unknown arg op `%s`", name,
                                  json_is_string(op) ? json_string_value(op) : "(not a string)");
        if (json_u64(json_object_get(a, "value"), &v1) < 0 ||
            json_u64(json_object_get(a, "valueTwo"), &v2) < 0)
            return sbx_make_error(
                err, EINVAL, "seccomp rule for `%s`: arg value/valueTwo must be integers", name);
        cmps[i].arg = json_integer_value(idx);
        cmps[i].datum_a = v1;
        cmps[i].datum_b = v2;
    }
    *n = json_array_size(args);
    return 0;
}

static bool
args_distinct(const struct scmp_arg_cmp *cmps, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        for (unsigned j = i + 1; j < n; j++)
            if (cmps[i].arg == cmps[j].arg)
                return false;
    return true;
}

/* One JSON entry becomes one rule per name, or (runc semantics) one rule per comparison when
 * several comparisons test the same argument: those are alternatives, not a conjunction. */
static int
parse_entry(json_t *e, size_t idx, struct rule **rules, size_t *n_rules, sbx_error_t *err)
{
    json_t *names = json_object_get(e, "names");
    json_t *single = json_object_get(e, "name");
    json_t *opt = json_object_get(e, "optional");
    struct scmp_arg_cmp cmps[MAX_ARGS];
    unsigned n_cmps;
    uint32_t action;
    int ret;
    char what[64];

    if (!json_is_object(e))
        return sbx_make_error(err, EINVAL, "seccomp syscalls[%zu] is not an object", idx);
    snprintf(what, sizeof(what), "syscalls[%zu]", idx);
    for (const char *k = "includes"; k; k = strcmp(k, "includes") == 0 ? "excludes" : NULL) {
        json_t *x = json_object_get(e, k);
        if (x && json_is_object(x) && json_object_size(x) > 0)
            /* Docker-engine only: ignoring it could allow (or fail to block) the calls it guards.
             */
            return sbx_make_error(err, EINVAL,
                                  "seccomp %s: `%s` is a Docker-engine extension, not OCI; "
                                  "rewrite the profile without it",
                                  what, k);
    }
    if (opt && !json_is_boolean(opt))
        return sbx_make_error(err, EINVAL, "seccomp %s: `optional` must be a boolean", what);
    ret = parse_action(what, e, "action", "errnoRet", EPERM, &action, err);
    if (ret < 0)
        return ret;

    json_t *list = names;
    if (list == NULL && json_is_string(single)) {
        list = json_array();
        json_array_append(list, single);
    } else if (!json_is_array(list) || json_array_size(list) == 0) {
        return sbx_make_error(err, EINVAL, "seccomp %s: `names` must be a non-empty array", what);
    }

    size_t i;
    json_t *n;
    int r = 0;
    json_array_foreach (list, i, n) {
        const char *name = json_string_value(n);
        if (name == NULL) {
            r = sbx_make_error(err, EINVAL, "seccomp %s: names[%zu] is not a string", what, i);
            break;
        }
        r = parse_args(name, json_object_get(e, "args"), cmps, &n_cmps, err);
        if (r < 0)
            break;
        bool split = !args_distinct(cmps, n_cmps);
        for (unsigned k = 0; k < (split ? n_cmps : 1); k++) {
            struct rule *ru;
            *rules = xrealloc(*rules, (*n_rules + 1) * sizeof(**rules));
            ru = &(*rules)[(*n_rules)++];
            memset(ru, 0, sizeof(*ru));
            ru->name = name;
            ru->action = action;
            ru->optional = json_is_true(opt);
            ru->nr = seccomp_syscall_resolve_name(name);
            if (split) {
                ru->n_cmps = 1;
                ru->cmps[0] = cmps[k];
            } else {
                ru->n_cmps = n_cmps;
                memcpy(ru->cmps, cmps, sizeof(cmps));
            }
        }
    }
    if (list != names)
        json_decref(list);
    return r;
}

/* The "overrides" and "newer than the profile" checks described at the top of this file. */
struct prefix {
    struct sock_filter insns[1024];
    size_t n;
};

static int
emit(struct prefix *p, uint16_t code, uint8_t jt, uint8_t jf, uint32_t k)
{
    if (p->n >= ARRAY_SIZE(p->insns))
        return -1;
    p->insns[p->n++] = (struct sock_filter)BPF_JUMP(code, k, jt, jf);
    return p->n - 1;
}

/* Points the false branch (or, for JA, the jump) of insn `at` to `target`. */
static int
patch(struct prefix *p, int at, size_t target)
{
    size_t off = target - (size_t)at - 1;
    if (BPF_OP(p->insns[at].code) == BPF_JA) {
        p->insns[at].k = off;
        return 0;
    }
    if (off > 255)
        return -1;
    p->insns[at].jf = off;
    return 0;
}

#if __BYTE_ORDER == __LITTLE_ENDIAN
#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i))
#define ARG_HI(i) (offsetof(struct seccomp_data, args) + 8 * (i) + 4)
#else
#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i) + 4)
#define ARG_HI(i) (offsetof(struct seccomp_data, args) + 8 * (i))
#endif

static int
build_prefix(struct prefix *p, const struct rule *rules, size_t n_rules, int max_nr,
             sbx_error_t *err)
{
    uint32_t native = seccomp_arch_native();
    int to_end[2];
    size_t n_end = 0;

    p->n = 0;
    emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, offsetof(struct seccomp_data, arch));
    to_end[n_end++] = emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, 0, native);
    if (native == SCMP_ARCH_X86_64) {
        /* x32 calls share AUDIT_ARCH_X86_64; libseccomp's program deals with them. */
        emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, offsetof(struct seccomp_data, nr));
        emit(p, BPF_JMP | BPF_JGE | BPF_K, 0, 1, X32_SYSCALL_BIT);
        to_end[n_end++] = emit(p, BPF_JMP | BPF_JA, 0, 0, 0);
    }
    if (max_nr >= 0) {
        emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, offsetof(struct seccomp_data, nr));
        emit(p, BPF_JMP | BPF_JGT | BPF_K, 0, 1, max_nr);
        emit(p, BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ERRNO | ENOSYS);
    }
    for (size_t i = 0; i < n_rules; i++) {
        const struct rule *r = &rules[i];
        int skips[1 + 2 * MAX_ARGS];
        size_t n_skips = 0;

        if (!r->override)
            continue;
        emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, offsetof(struct seccomp_data, nr));
        skips[n_skips++] = emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, 0, r->nr);
        for (unsigned c = 0; c < r->n_cmps; c++) {
            const struct scmp_arg_cmp *cmp = &r->cmps[c];
            uint64_t mask = cmp->op == SCMP_CMP_MASKED_EQ ? cmp->datum_a : UINT64_MAX;
            uint64_t val = cmp->op == SCMP_CMP_MASKED_EQ ? cmp->datum_b : cmp->datum_a;
            uint32_t halves[2][3] = {{ARG_LO(cmp->arg), mask, val},
                                     {ARG_HI(cmp->arg), mask >> 32, val >> 32}};
            for (int h = 0; h < 2; h++) {
                emit(p, BPF_LD | BPF_W | BPF_ABS, 0, 0, halves[h][0]);
                if (halves[h][1] != UINT32_MAX)
                    emit(p, BPF_ALU | BPF_AND | BPF_K, 0, 0, halves[h][1]);
                skips[n_skips++] =
                    emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, 0, halves[h][2] & halves[h][1]);
            }
        }
        emit(p, BPF_RET | BPF_K, 0, 0, r->action);
        for (size_t s = 0; s < n_skips; s++)
            if (skips[s] < 0 || patch(p, skips[s], p->n) < 0)
                goto too_long;
    }
    if (p->n >= ARRAY_SIZE(p->insns))
        goto too_long;
    for (size_t s = 0; s < n_end; s++)
        if (to_end[s] < 0 || patch(p, to_end[s], p->n) < 0)
            goto too_long;
    return 0;
too_long:
    return sbx_make_error(err, E2BIG, "seccomp profile: too many conditional override rules");
}

static int
export_bpf(scmp_filter_ctx ctx, const struct prefix *pre, struct sbx_bpf *out, sbx_error_t *err)
{
    cleanup_close int fd = memfd_create("sbx-seccomp", MFD_CLOEXEC);
    struct stat st;
    int ret;

    if (fd < 0)
        return sbx_make_error(err, errno, "memfd_create");
    ret = seccomp_export_bpf(ctx, fd);
    if (ret < 0)
        return sbx_make_error(err, -ret, "seccomp_export_bpf");
    if (fstat(fd, &st) < 0)
        return sbx_make_error(err, errno, "fstat seccomp memfd");
    if (st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) != 0)
        return sbx_make_error(err, EIO, "libseccomp produced a BPF program of %lld bytes",
                              (long long)st.st_size);
    size_t n = st.st_size / sizeof(struct sock_filter);
    if (n + pre->n > MAX_INSNS)
        return sbx_make_error(err, E2BIG, "seccomp program has %zu instructions (max %d)",
                              n + pre->n, MAX_INSNS);
    cleanup_free struct sock_filter *insns = xmalloc0((n + pre->n) * sizeof(*insns));
    memcpy(insns, pre->insns, pre->n * sizeof(*insns));
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r =
            TEMP_FAILURE_RETRY(pread(fd, (char *)(insns + pre->n) + got, st.st_size - got, got));
        if (r < 0)
            return sbx_make_error(err, errno, "read seccomp memfd");
        if (r == 0)
            return sbx_make_error(err, EIO, "short read of seccomp memfd");
        got += r;
    }
    out->insns = steal_pointer(&insns);
    out->len = n + pre->n;
    return 0;
}

static const char *const known_flags[] = {
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
};

/* A kernel reports only its own ABIs in seccomp_data.arch: x86_64 ones x86_64, i386 and x32,
 * aarch64 ones aarch64 and arm. A section for any other architecture a profile lists (the default
 * profile lists x86_64 and aarch64, to serve either host) could never run here, yet the kernel
 * verifies, translates and JITs it at every load: leaving it out takes the default filter from
 * 773 to 440 instructions and its load from ~140 to ~95 us, at every sandbox start. */
static bool
arch_possible_here(uint32_t arch)
{
    uint32_t native = seccomp_arch_native();
    if (arch == native)
        return true;
    switch (native) {
    case SCMP_ARCH_X86_64: return arch == SCMP_ARCH_X86 || arch == SCMP_ARCH_X32;
    case SCMP_ARCH_AARCH64: return arch == SCMP_ARCH_ARM;
    default: return true; /* another host: every listed section stays */
    }
}

static int
add_arch(scmp_filter_ctx ctx, const char *name, sbx_error_t *err)
{
    char buf[32];
    uint32_t arch;
    int ret;

    if (strncmp(name, "SCMP_ARCH_", 10) != 0 || strlen(name) - 10 >= sizeof(buf))
        return sbx_make_error(err, EINVAL, "seccomp: unknown architecture `%s`", name);
    size_t i;
    for (i = 0; name[10 + i]; i++)
        buf[i] = name[10 + i] >= 'A' && name[10 + i] <= 'Z' ? name[10 + i] + 32 : name[10 + i];
    buf[i] = '\0';
    arch = seccomp_arch_resolve_name(buf);
    if (arch == 0)
        return sbx_make_error(err, EINVAL, "seccomp: unknown architecture `%s`", name);
    if (!arch_possible_here(arch))
        return 0;
    ret = seccomp_arch_add(ctx, arch);
    if (ret < 0 && ret != -EEXIST)
        return sbx_make_error(err, -ret, "seccomp: cannot add architecture `%s`", name);
    return 0;
}

int
sbx_seccomp_compile(json_t *s, struct sbx_bpf *out, sbx_error_t *err)
{
    cleanup_scmp scmp_filter_ctx ctx = NULL;
    cleanup_free struct rule *rules = NULL;
    size_t n_rules = 0, i;
    uint32_t def;
    json_t *v;
    int ret, max_nr = -1;

    out->insns = NULL;
    out->len = 0;
    if (!json_is_object(s))
        return sbx_make_error(err, EINVAL, "seccomp: profile must be a JSON object");
    ret = parse_action("defaultAction", s, "defaultAction", "defaultErrnoRet", EPERM, &def, err);
    if (ret < 0)
        return ret;
    if (json_object_get(s, "listenerPath"))
        return sbx_make_error(err, ENOTSUP, "seccomp: `listenerPath` (notify) is not supported");

    v = json_object_get(s, "flags");
    if (v && !json_is_null(v)) {
        json_t *f;
        if (!json_is_array(v))
            return sbx_make_error(err, EINVAL, "seccomp: `flags` must be an array");
        /* SPEC_ALLOW is always applied; the others are accepted for compatibility but have no
         * effect (the child is single-threaded and there is no listener). */
        json_array_foreach (v, i, f) {
            size_t k;
            for (k = 0; k < ARRAY_SIZE(known_flags); k++)
                if (json_is_string(f) && strcmp(json_string_value(f), known_flags[k]) == 0)
                    break;
            if (k == ARRAY_SIZE(known_flags))
                return sbx_make_error(err, EINVAL, "seccomp: unknown flag `%s`",
                                      json_is_string(f) ? json_string_value(f) : "(not a string)");
        }
    }

    ctx = seccomp_init(def);
    if (ctx == NULL)
        return sbx_make_error(err, EINVAL, "seccomp_init");
    /* An i386 (int $0x80) or x32 call not covered by the profile must not reach the kernel. */
    ret = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    if (ret < 0)
        return sbx_make_error(err, -ret, "seccomp: set bad-arch action");
    /* Binary-tree dispatch; older libseccomp lacks it, which only costs speed. */
    (void)seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);

    v = json_object_get(s, "architectures");
    if (v && !json_is_null(v)) {
        json_t *a;
        if (!json_is_array(v))
            return sbx_make_error(err, EINVAL, "seccomp: `architectures` must be an array");
        json_array_foreach (v, i, a) {
            if (!json_is_string(a))
                return sbx_make_error(err, EINVAL, "seccomp: architectures[%zu] not a string", i);
            ret = add_arch(ctx, json_string_value(a), err);
            if (ret < 0)
                return ret;
        }
    }

    v = json_object_get(s, "syscalls");
    if (v && !json_is_null(v)) {
        json_t *e;
        if (!json_is_array(v))
            return sbx_make_error(err, EINVAL, "seccomp: `syscalls` must be an array");
        json_array_foreach (v, i, e) {
            ret = parse_entry(e, i, &rules, &n_rules, err);
            if (ret < 0)
                return ret;
        }
    }

    for (i = 0; i < n_rules; i++) {
        struct rule *r = &rules[i];
        if (r->nr == __NR_SCMP_ERROR) {
            if (r->optional)
                continue;
            return sbx_make_error(err, EINVAL,
                                  "seccomp: unknown syscall `%s` (mark the entry \"optional\": "
                                  "true to skip it)",
                                  r->name);
        }
        if (r->nr > max_nr)
            max_nr = r->nr;
        if (r->n_cmps == 0)
            continue;
        for (size_t k = 0; k < n_rules; k++)
            if (rules[k].nr == r->nr && rules[k].n_cmps == 0 && rules[k].action != r->action)
                r->override = true;
        if (!r->override)
            continue;
        if (r->nr < 0) /* not a syscall of the native arch */
            r->override = false;
        for (unsigned c = 0; r->override && c < r->n_cmps; c++)
            if (r->cmps[c].op != SCMP_CMP_EQ && r->cmps[c].op != SCMP_CMP_MASKED_EQ)
                return sbx_make_error(err, EINVAL,
                                      "seccomp: `%s` has an unconditional rule and a conditional "
                                      "one with another action; only EQ and MASKED_EQ are "
                                      "supported for the conditional one",
                                      r->name);
    }

    for (i = 0; i < n_rules; i++) {
        struct rule *r = &rules[i];
        if (r->nr == __NR_SCMP_ERROR || r->override)
            continue;
        ret = seccomp_rule_add_array(ctx, r->action, r->nr, r->n_cmps, r->cmps);
        /* EACCES: same action as the default, a no-op. A negative pseudo-number is a syscall
         * libseccomp knows but this architecture does not have. */
        if (ret == -EACCES || (ret < 0 && (r->nr < 0 || r->optional)))
            continue;
        if (ret < 0)
            return sbx_make_error(err, -ret, "seccomp: cannot add rule for syscall `%s`", r->name);
    }

    struct prefix *pre = xmalloc0(sizeof(*pre));
    bool enosys = (def & SECCOMP_RET_ACTION_FULL) == SECCOMP_RET_ERRNO;
    ret = build_prefix(pre, rules, n_rules, enosys ? max_nr : -1, err);
    if (ret == 0)
        ret = export_bpf(ctx, pre, out, err);
    free(pre);
    return ret;
}

void
sbx_bpf_free(struct sbx_bpf *bpf)
{
    if (bpf == NULL)
        return;
    free(bpf->insns);
    bpf->insns = NULL;
    bpf->len = 0;
}

#if defined(__x86_64__)
#define SBX_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SBX_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

#ifdef SBX_AUDIT_ARCH
#define ALLOW_NR(nr)                                                                               \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
/* The sandbox's init only waits for signals, reaps, forwards signals and reports the workload's
 * status: those calls pass, any other fails with EPERM, another ABI kills it. The workload's
 * profile (440 instructions for the default one) takes ~0.1 ms to load; this one takes
 * microseconds, and leaves next to nothing to a compromised init. */
static const struct sock_filter init_filter[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SBX_AUDIT_ARCH, 1, 0),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
#ifdef __x86_64__
    BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
#endif
    ALLOW_NR(__NR_rt_sigtimedwait),
    ALLOW_NR(__NR_wait4),
    ALLOW_NR(__NR_waitid),
    ALLOW_NR(__NR_kill),
    ALLOW_NR(__NR_sendto),
    ALLOW_NR(__NR_exit_group),
    ALLOW_NR(__NR_exit),
    ALLOW_NR(__NR_rt_sigreturn),
    ALLOW_NR(__NR_restart_syscall),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
};
#endif

int
sbx_seccomp_apply_init(const struct sbx_bpf *workload_bpf)
{
#ifdef SBX_AUDIT_ARCH
    struct sbx_bpf init = {.insns = (struct sock_filter *)init_filter,
                           .len = ARRAY_SIZE(init_filter)};
    return sbx_seccomp_apply(&init);
#else
    return sbx_seccomp_apply(workload_bpf);
#endif
}

int
sbx_seccomp_apply(const struct sbx_bpf *bpf)
{
    struct sock_fprog prog;

    if (bpf == NULL || bpf->len == 0)
        return 0;
    prog.len = bpf->len;
    prog.filter = bpf->insns;
    /* SPEC_ALLOW: the workload is already isolated; the SSB mitigation costs a lot and is what
     * Docker and crun skip too. Kernels before 4.17 reject the flag. */
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_SPEC_ALLOW, &prog) == 0)
        return 0;
    if (errno == EINVAL && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0)
        return 0;
    return -errno;
}
