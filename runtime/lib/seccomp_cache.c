/* Compiled-filter cache. libseccomp needs several milliseconds to turn the default profile into
 * BPF, more than the rest of a sandbox start; the result depends only on the profile text and the
 * libseccomp build, so it is kept under <state_root>/.cache/seccomp (a tmpfs in /run: it starts
 * empty after a reboot or an upgrade). An entry stores the full canonical profile text and is used
 * only when that text matches byte for byte, so a hash collision can never select another filter.
 */
#include "seccomp.h"
#include "spec.h"
#include "utils.h"

#include <fcntl.h>
#include <scmp.h>
#include <sys/stat.h>

/* 2: sections for architectures this kernel cannot run are left out. */
#define SBX_BPF_REV 2

static uint64_t
fnv1a64(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static int
cache_load(const char *path, const char *text, size_t tlen, struct sbx_bpf *out)
{
    cleanup_free char *buf = NULL;
    size_t len;
    if (read_file(path, &buf, &len, NULL) < 0)
        return -1;
    uint32_t stored;
    if (len < sizeof(stored))
        return -1;
    memcpy(&stored, buf, sizeof(stored));
    size_t rest = len - sizeof(stored);
    if (stored != tlen || rest < tlen || memcmp(buf + sizeof(stored), text, tlen) != 0)
        return -1;
    size_t blen = rest - tlen;
    if (blen == 0 || blen % sizeof(struct sock_filter) != 0)
        return -1;
    out->insns = xmalloc0(blen);
    memcpy(out->insns, buf + sizeof(stored) + tlen, blen);
    out->len = blen / sizeof(struct sock_filter);
    return 0;
}

static void
cache_store(const char *dir, const char *path, const char *text, size_t tlen,
            const struct sbx_bpf *bpf)
{
    if (mkdir_p(dir, 0700, NULL) < 0)
        return;
    cleanup_free char *tmp = xasprintf("%s.%d.tmp", path, getpid());
    cleanup_close int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    uint32_t n = tlen;
    if (safe_write(fd, &n, sizeof(n)) < 0 || safe_write(fd, text, tlen) < 0 ||
        safe_write(fd, bpf->insns, bpf->len * sizeof(struct sock_filter)) < 0 ||
        rename(tmp, path) < 0)
        unlink(tmp);
}

/* Compiles the spec's linux.seccomp, or its built-in profile, parsed only now. */
static int
compile_uncached(const sbx_spec_t *s, struct sbx_bpf *out, sbx_error_t *err)
{
    if (s->seccomp)
        return sbx_seccomp_compile(s->seccomp, out, err);
    json_t *parsed = NULL;
    int r = sbx_seccomp_profile_load(s->seccomp_builtin, &parsed, err);
    if (r == 0)
        r = sbx_seccomp_compile(parsed, out, err);
    json_decref(parsed);
    return r;
}

/* The cache entry keyed by the full `text`, or on a miss the compiled filter, stored. */
static int
compile_keyed(const char *cache_dir, const char *text, const sbx_spec_t *s, struct sbx_bpf *out,
              sbx_error_t *err)
{
    size_t tlen = strlen(text);
    cleanup_free char *path =
        xasprintf("%s/%016llx", cache_dir, (unsigned long long)fnv1a64(text, tlen));
    if (cache_load(path, text, tlen, out) == 0)
        return 0;
    int r = compile_uncached(s, out, err);
    if (r == 0 && out->len > 0)
        cache_store(cache_dir, path, text, tlen, out);
    return r;
}

int
sbx_seccomp_compile_spec(const sbx_spec_t *s, const char *cache_dir, struct sbx_bpf *out,
                         sbx_error_t *err)
{
    *out = (struct sbx_bpf){0};
    if (s->seccomp == NULL && s->seccomp_builtin == NULL)
        return 0;
    if (cache_dir == NULL)
        return compile_uncached(s, out, err);
    /* SBX_BPF_REV: bumped whenever sbx's own compilation changes, so no entry made before is
     * used (the entries live on /run until a reboot). A built-in profile is keyed by its
     * embedded text as it is: parsing and re-serialising it (~0.3 ms) cost more than the rest of
     * sbxrun's own work before clone, and is only needed on a miss. */
    const struct scmp_version *v = seccomp_version();
    cleanup_free char *head =
        xasprintf("libseccomp %u.%u.%u sbx-bpf %d\n", v->major, v->minor, v->micro, SBX_BPF_REV);
    if (s->seccomp == NULL) {
        size_t len = 0;
        const char *builtin = sbx_seccomp_builtin_text(s->seccomp_builtin, &len);
        if (builtin == NULL)
            return sbx_make_error(err, ENOENT, "no built-in seccomp profile `%s`",
                                  s->seccomp_builtin);
        cleanup_free char *text =
            xasprintf("%sbuilt-in %s\n%.*s", head, s->seccomp_builtin, (int)len, builtin);
        return compile_keyed(cache_dir, text, s, out, err);
    }
    cleanup_free char *profile = json_dumps(s->seccomp, JSON_COMPACT | JSON_SORT_KEYS);
    if (profile == NULL)
        return compile_uncached(s, out, err);
    cleanup_free char *text = xasprintf("%s%s", head, profile);
    return compile_keyed(cache_dir, text, s, out, err);
}
