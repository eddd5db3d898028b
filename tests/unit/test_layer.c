/* The layer unpacker (runtime/lib/layer.c) on tars built here with libarchive's writer: what
 * lands on disk (types, modes, owners, times, xattrs, whiteouts), the diff_id, and the refusal of
 * every malicious layer with nothing written outside the directory.
 *
 * Each test unpacks into ROOT = /tmp/sbx-unit-layer-XXXXXX/root. Escapes aim at a name that is
 * unique to the test (ESCAPE-<hex>) next to ROOT, in /tmp and in /, and the test checks that none
 * of them appeared. Without root the unpacking is rootless (no chown, no trusted.*): the tests of
 * ownership and of trusted.* and security.* xattrs need root and say so on stderr; with
 * SBX_MUST_WORK=1 they fail instead. */
#include "layer.h"
#include "unit.h"
#include "utils.h"

#include <archive.h>
#include <archive_entry.h>
#include <endian.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#define UID_BASE 1000000u
#define GID_BASE 2000000u /* not UID_BASE: a uid/gid mix-up shows */
#define MIB (1024 * 1024)

/* A test's view of the root-only tests: true to go on. Without root: a loud skip, or a failure
 * under SBX_MUST_WORK=1 (CI that must run everything). */
static bool
need_root(const char *test)
{
    if (geteuid() == 0)
        return true;
    const char *must = getenv("SBX_MUST_WORK");
    if (must && strcmp(must, "1") == 0) {
        fprintf(stderr,
                "layer.%s: FAILED: needs root (chown, trusted.* xattrs) and "
                "SBX_MUST_WORK=1\n",
                test);
        CU_FAIL("layer test needs root (SBX_MUST_WORK=1)");
        return false;
    }
    fprintf(stderr, "layer.%s: SKIPPED: needs root (chown, trusted.* xattrs)\n", test);
    return false;
}

/* One tar entry. type 0 is a regular file; perm 0 is 0644 (0755 for directories). */
struct ent {
    const char *name;
    mode_t type;
    mode_t perm;
    int64_t uid, gid;
    const char *data;
    uint64_t zeros; /* then this many zero bytes */
    const char *symlink, *hardlink;
    time_t mtime, atime;
    long mtime_ns;
    dev_t rdev;
    const char *xname[3];
    const void *xval[3];
    size_t xlen[3];
};

static void
add_entry(struct archive *a, const struct ent *t)
{
    static char zeros[MIB];
    struct archive_entry *e = archive_entry_new();
    mode_t type = t->hardlink ? AE_IFREG : t->symlink ? AE_IFLNK : t->type ? t->type : AE_IFREG;
    size_t len = t->data ? strlen(t->data) : 0;
    archive_entry_copy_pathname(e, t->name);
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, t->perm ? t->perm : type == AE_IFDIR ? 0755 : 0644);
    archive_entry_set_uid(e, t->uid);
    archive_entry_set_gid(e, t->gid);
    archive_entry_set_mtime(e, t->mtime ? t->mtime : 1600000000, t->mtime_ns);
    if (t->atime)
        archive_entry_set_atime(e, t->atime, 0);
    if (t->symlink)
        archive_entry_copy_symlink(e, t->symlink);
    if (t->hardlink)
        archive_entry_copy_hardlink(e, t->hardlink);
    if (t->rdev)
        archive_entry_set_rdev(e, t->rdev);
    archive_entry_set_size(e, type == AE_IFREG && !t->hardlink ? (int64_t)(len + t->zeros) : 0);
    for (int i = 0; i < 3 && t->xname[i]; i++)
        archive_entry_xattr_add_entry(e, t->xname[i], t->xval[i],
                                      t->xlen[i] ? t->xlen[i] : strlen(t->xval[i]));
    CU_ASSERT_EQUAL(archive_write_header(a, e), ARCHIVE_OK);
    if (len)
        CU_ASSERT_EQUAL(archive_write_data(a, t->data, len), (la_ssize_t)len);
    for (uint64_t left = t->zeros; left > 0;) {
        size_t n = left < sizeof(zeros) ? left : sizeof(zeros);
        CU_ASSERT_EQUAL(archive_write_data(a, zeros, n), (la_ssize_t)n);
        left -= n;
    }
    archive_entry_free(e);
}

enum comp { RAW, GZIP, ZSTD };

static void
add_filter(struct archive *a, enum comp c)
{
    if (c == GZIP)
        CU_ASSERT_EQUAL(archive_write_add_filter_gzip(a), ARCHIVE_OK);
    if (c == ZSTD)
        CU_ASSERT_EQUAL(archive_write_add_filter_zstd(a), ARCHIVE_OK);
}

/* A layer in a memfd, at offset 0. The uncompressed tar is padded to a whole 10 KiB record, as
 * tar(1) does: that padding is part of the stream the diff_id covers. */
static int
build(const struct ent *ents, size_t n, enum comp c)
{
    int fd = memfd_create("layer", MFD_CLOEXEC);
    CU_ASSERT_FATAL(fd >= 0);
    struct archive *a = archive_write_new();
    CU_ASSERT_EQUAL(archive_write_set_format_pax(a), ARCHIVE_OK);
    add_filter(a, c);
    archive_write_set_bytes_per_block(a, 10240);
    archive_write_set_bytes_in_last_block(a, c == RAW ? 10240 : 1);
    CU_ASSERT_EQUAL_FATAL(archive_write_open_fd(a, fd), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++)
        add_entry(a, &ents[i]);
    CU_ASSERT_EQUAL(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    lseek(fd, 0, SEEK_SET);
    return fd;
}

static char *
fd_bytes(int fd, size_t *len)
{
    struct stat st;
    CU_ASSERT_FATAL(fstat(fd, &st) == 0);
    char *buf = xmalloc0((size_t)st.st_size + 1);
    CU_ASSERT_FATAL(pread(fd, buf, (size_t)st.st_size, 0) == st.st_size);
    *len = (size_t)st.st_size;
    return buf;
}

static int
memfd_of(const void *buf, size_t len)
{
    int fd = memfd_create("layer", MFD_CLOEXEC);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(safe_write(fd, buf, len) == (ssize_t)len);
    lseek(fd, 0, SEEK_SET);
    return fd;
}

/* The exact bytes of raw, compressed (libarchive's raw format writes data as it is). */
static int
compress_fd(int raw, enum comp c)
{
    size_t len;
    cleanup_free char *buf = fd_bytes(raw, &len);
    int fd = memfd_create("layer", MFD_CLOEXEC);
    struct archive *a = archive_write_new();
    add_filter(a, c);
    CU_ASSERT_EQUAL(archive_write_set_format_raw(a), ARCHIVE_OK);
    CU_ASSERT_EQUAL_FATAL(archive_write_open_fd(a, fd), ARCHIVE_OK);
    struct archive_entry *e = archive_entry_new();
    archive_entry_copy_pathname(e, "layer.tar");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_size(e, (int64_t)len);
    CU_ASSERT_EQUAL(archive_write_header(a, e), ARCHIVE_OK);
    CU_ASSERT_EQUAL(archive_write_data(a, buf, len), (la_ssize_t)len);
    archive_entry_free(e);
    CU_ASSERT_EQUAL(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    lseek(fd, 0, SEEK_SET);
    return fd;
}

struct env {
    char outer[64];  /* mkdtemp */
    char root[80];   /* outer/root: the layer directory */
    char escape[32]; /* ESCAPE-<hex>: what an escape would make */
    int rootfd;
};

static void
env_init(struct env *v)
{
    snprintf(v->outer, sizeof(v->outer), "/tmp/sbx-unit-layer-XXXXXX");
    CU_ASSERT_FATAL(mkdtemp(v->outer) != NULL);
    snprintf(v->root, sizeof(v->root), "%s/root", v->outer);
    CU_ASSERT_FATAL(mkdir(v->root, 0755) == 0);
    v->rootfd = open(v->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CU_ASSERT_FATAL(v->rootfd >= 0);
    strcpy(v->escape, "ESCAPE-");
    random_hex(v->escape + 7, 12);
}

/* Whether anything named v->escape appeared next to the root, in /tmp or in /. */
static bool
escaped(struct env *v)
{
    char p[3][128];
    snprintf(p[0], sizeof(p[0]), "%s/%s", v->outer, v->escape);
    snprintf(p[1], sizeof(p[1]), "/tmp/%s", v->escape);
    snprintf(p[2], sizeof(p[2]), "/%s", v->escape);
    bool found = false;
    for (int i = 0; i < 3; i++) {
        struct stat st;
        if (lstat(p[i], &st) == 0) {
            fprintf(stderr, "layer: ESCAPED: %s exists\n", p[i]);
            found = true;
            sbx_error_t err = NULL;
            rm_rf(p[i], &err);
            sbx_error_release(&err);
        }
    }
    return found;
}

/* rm_rf as a non-root user needs write and search permission on the directories the layer made
 * read-only. */
static int
open_up(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    if (flag == FTW_D)
        chmod(path, 0700);
    return 0;
}

static void
env_done(struct env *v)
{
    close(v->rootfd);
    if (geteuid() != 0)
        nftw(v->outer, open_up, 16, FTW_PHYS);
    sbx_error_t err = NULL;
    rm_rf(v->outer, &err);
    sbx_error_release(&err);
}

/* An empty layer directory again, for the next layer. */
static void
env_reset(struct env *v)
{
    close(v->rootfd);
    if (geteuid() != 0)
        nftw(v->root, open_up, 16, FTW_PHYS);
    sbx_error_t err = NULL;
    CU_ASSERT(rm_rf(v->root, &err) == 0);
    sbx_error_release(&err);
    CU_ASSERT_FATAL(mkdir(v->root, 0755) == 0);
    v->rootfd = open(v->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CU_ASSERT_FATAL(v->rootfd >= 0);
}

static struct sbx_layer_opts
opts(void)
{
    struct sbx_layer_opts o = {.uid_base = UID_BASE, .gid_base = GID_BASE};
    o.rootless = geteuid() != 0;
    return o;
}

static int
unpack_fd(struct env *v, int fd, const struct sbx_layer_opts *o, char diff[SBX_DIGEST_LEN + 1],
          struct sbx_layer_stats *st, sbx_error_t *err)
{
    struct sbx_layer_opts def = opts();
    char d[SBX_DIGEST_LEN + 1];
    return sbx_layer_unpack(fd, v->rootfd, o ? o : &def, diff ? diff : d, st, err);
}

/* Unpacks ents, which must succeed. */
static bool
unpack_ok(struct env *v, const struct ent *ents, size_t n, struct sbx_layer_stats *st)
{
    int fd = build(ents, n, RAW);
    sbx_error_t err = NULL;
    int r = unpack_fd(v, fd, NULL, NULL, st, &err);
    close(fd);
    if (r < 0)
        fprintf(stderr, "layer: unexpected failure: %s\n", err ? err->msg : "?");
    sbx_error_release(&err);
    CU_ASSERT_EQUAL(r, 0);
    return r == 0;
}

/* Unpacks ents (with o), which must be refused with a message holding want1 and want2, and
 * leave nothing outside the layer directory. */
static void
refused_o(struct env *v, const struct ent *ents, size_t n, const struct sbx_layer_opts *o,
          const char *want1, const char *want2)
{
    env_reset(v);
    int fd = build(ents, n, RAW);
    sbx_error_t err = NULL;
    int r = unpack_fd(v, fd, o, NULL, NULL, &err);
    close(fd);
    CU_ASSERT(r < 0);
    CU_ASSERT_PTR_NOT_NULL(err);
    if (r == 0)
        fprintf(stderr, "layer: NOT REFUSED: `%s` (want `%s`)\n", ents[n - 1].name,
                want1 ? want1 : "");
    if (r < 0 && err) {
        bool ok1 = want1 == NULL || strstr(err->msg, want1) != NULL;
        bool ok2 = want2 == NULL || strstr(err->msg, want2) != NULL;
        CU_ASSERT(ok1);
        CU_ASSERT(ok2);
        if (!ok1 || !ok2)
            fprintf(stderr, "layer: message `%s` lacks `%s` or `%s`\n", err->msg,
                    want1 ? want1 : "", want2 ? want2 : "");
    }
    sbx_error_release(&err);
    CU_ASSERT(!escaped(v));
}

static void
refused(struct env *v, const struct ent *ents, size_t n, const char *want1, const char *want2)
{
    refused_o(v, ents, n, NULL, want1, want2);
}

static bool
lst(struct env *v, const char *rel, struct stat *st)
{
    return fstatat(v->rootfd, rel, st, AT_SYMLINK_NOFOLLOW) == 0;
}

static ssize_t
xget(struct env *v, const char *rel, const char *name, void *buf, size_t size)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", v->root, rel);
    return lgetxattr(p, name, buf, size);
}

static bool
content_is(struct env *v, const char *rel, const char *want)
{
    cleanup_free char *got = NULL;
    size_t len = 0;
    sbx_error_t err = NULL;
    if (read_file_at(v->rootfd, rel, &got, &len, &err) < 0) {
        sbx_error_release(&err);
        return false;
    }
    return len == strlen(want) && memcmp(got, want, len) == 0;
}

UNIT_TEST(layer, files_dirs_symlinks_hardlinks)
{
    struct env v;
    env_init(&v);
    struct ent ents[] = {
        {.name = "./", .type = AE_IFDIR},
        {.name = "./etc/", .type = AE_IFDIR},
        {.name = "./etc/hostname", .data = "box\n"},
        {.name = "etc/motd", .data = "hi"},
        {.name = "bin/sh", .symlink = "/bin/busybox"},
        {.name = "bin/busybox", .data = "ELF", .perm = 0755},
        {.name = "bin/ls", .hardlink = "bin/busybox"},
        {.name = "./bin/./cat", .hardlink = "./bin//busybox"},
        {.name = "empty", .data = ""},
        {.name = "deep/a/b/c/file", .data = "x"},
        {.name = "fifo", .type = AE_IFIFO, .perm = 0640},
    };
    struct sbx_layer_stats st;
    if (!unpack_ok(&v, ents, ARRAY_SIZE(ents), &st))
        goto out;
    struct stat s, s2;
    CU_ASSERT(lst(&v, "etc", &s) && S_ISDIR(s.st_mode));
    CU_ASSERT(content_is(&v, "etc/hostname", "box\n"));
    CU_ASSERT(content_is(&v, "etc/motd", "hi"));
    CU_ASSERT(lst(&v, "empty", &s) && S_ISREG(s.st_mode) && s.st_size == 0);
    char target[64] = "";
    CU_ASSERT(lst(&v, "bin/sh", &s) && S_ISLNK(s.st_mode));
    CU_ASSERT(readlinkat(v.rootfd, "bin/sh", target, sizeof(target) - 1) == 12);
    CU_ASSERT_STRING_EQUAL(target, "/bin/busybox");
    CU_ASSERT(lst(&v, "bin/busybox", &s) && S_ISREG(s.st_mode) && s.st_nlink == 3);
    CU_ASSERT(lst(&v, "bin/ls", &s2) && s2.st_ino == s.st_ino);
    CU_ASSERT(lst(&v, "bin/cat", &s2) && s2.st_ino == s.st_ino);
    CU_ASSERT(content_is(&v, "bin/ls", "ELF"));
    /* Parents the tar does not list are made 0755. */
    CU_ASSERT(lst(&v, "deep/a/b", &s) && S_ISDIR(s.st_mode) && (s.st_mode & 07777) == 0755);
    CU_ASSERT(content_is(&v, "deep/a/b/c/file", "x"));
    CU_ASSERT(lst(&v, "fifo", &s) && S_ISFIFO(s.st_mode) && (s.st_mode & 07777) == 0640);
    CU_ASSERT_EQUAL(st.entries, ARRAY_SIZE(ents));
    CU_ASSERT_EQUAL(st.skipped_devices, 0);
out:
    env_done(&v);
}

UNIT_TEST(layer, modes)
{
    struct env v;
    env_init(&v);
    struct ent ents[] = {
        {.name = "suid", .data = "x", .perm = 04755},
        {.name = "sgid", .data = "x", .perm = 02711},
        {.name = "ro", .data = "x", .perm = 0400},
        {.name = "tmp/", .type = AE_IFDIR, .perm = 01777},
        /* Read-only before its child: directory modes are applied at the end. */
        {.name = "rodir/", .type = AE_IFDIR, .perm = 0555},
        {.name = "rodir/f", .data = "x"},
        {.name = "none/", .type = AE_IFDIR, .perm = 0700},
    };
    if (!unpack_ok(&v, ents, ARRAY_SIZE(ents), NULL))
        goto out;
    struct stat s;
    CU_ASSERT(lst(&v, "suid", &s) && (s.st_mode & 07777) == 04755);
    CU_ASSERT(lst(&v, "sgid", &s) && (s.st_mode & 07777) == 02711);
    CU_ASSERT(lst(&v, "ro", &s) && (s.st_mode & 07777) == 0400);
    CU_ASSERT(lst(&v, "tmp", &s) && (s.st_mode & 07777) == 01777);
    CU_ASSERT(lst(&v, "rodir", &s) && (s.st_mode & 07777) == 0555);
    CU_ASSERT(content_is(&v, "rodir/f", "x"));
    CU_ASSERT(lst(&v, "none", &s) && (s.st_mode & 07777) == 0700);
out:
    env_done(&v);
}

UNIT_TEST(layer, ownership_shift)
{
    if (!need_root("ownership_shift"))
        return;
    struct env v;
    env_init(&v);
    struct ent ents[] = {
        {.name = "./", .type = AE_IFDIR, .uid = 0, .gid = 0},
        {.name = "root", .data = "x", .uid = 0, .gid = 0},
        {.name = "user", .data = "x", .uid = 1000, .gid = 100},
        {.name = "big", .data = "x", .uid = 70000, .gid = 65536},
        {.name = "suid", .data = "x", .perm = 04755, .uid = 0, .gid = 0},
        {.name = "sgid", .data = "x", .perm = 02755, .uid = 0, .gid = 50},
        {.name = "dir/", .type = AE_IFDIR, .uid = 33, .gid = 33},
        {.name = "link", .symlink = "root", .uid = 1, .gid = 2},
        {.name = "fifo", .type = AE_IFIFO, .uid = 5, .gid = 6},
        {.name = "made/f", .data = "x", .uid = 7, .gid = 8},
        {.name = ".wh.gone", .uid = 9, .gid = 10},
    };
    struct sbx_layer_stats st;
    if (!unpack_ok(&v, ents, ARRAY_SIZE(ents), &st))
        goto out;
    struct stat s;
    CU_ASSERT(lst(&v, ".", &s) && s.st_uid == UID_BASE && s.st_gid == GID_BASE);
    CU_ASSERT(lst(&v, "root", &s) && s.st_uid == UID_BASE && s.st_gid == GID_BASE);
    CU_ASSERT(lst(&v, "user", &s) && s.st_uid == UID_BASE + 1000 && s.st_gid == GID_BASE + 100);
    CU_ASSERT(lst(&v, "big", &s) && s.st_uid == UID_BASE + 65534 && s.st_gid == GID_BASE + 65534);
    CU_ASSERT_EQUAL(st.unmapped_ids, 2);
    /* chown before chmod: the setuid and setgid bits survive. */
    CU_ASSERT(lst(&v, "suid", &s) && s.st_uid == UID_BASE && (s.st_mode & 07777) == 04755);
    CU_ASSERT(lst(&v, "sgid", &s) && s.st_gid == GID_BASE + 50 && (s.st_mode & 07777) == 02755);
    CU_ASSERT(lst(&v, "dir", &s) && s.st_uid == UID_BASE + 33 && s.st_gid == GID_BASE + 33);
    CU_ASSERT(lst(&v, "link", &s) && S_ISLNK(s.st_mode) && s.st_uid == UID_BASE + 1 &&
              s.st_gid == GID_BASE + 2);
    CU_ASSERT(lst(&v, "fifo", &s) && s.st_uid == UID_BASE + 5 && s.st_gid == GID_BASE + 6);
    /* A parent the tar does not list belongs to the sandbox's root. */
    CU_ASSERT(lst(&v, "made", &s) && s.st_uid == UID_BASE && s.st_gid == GID_BASE &&
              (s.st_mode & 07777) == 0755);
    CU_ASSERT(lst(&v, "made/f", &s) && s.st_uid == UID_BASE + 7 && s.st_gid == GID_BASE + 8);
    CU_ASSERT(lst(&v, "gone", &s) && s.st_uid == UID_BASE + 9 && s.st_gid == GID_BASE + 10);
out:
    env_done(&v);
}

UNIT_TEST(layer, times)
{
    struct env v;
    env_init(&v);
    struct ent ents[] = {
        {.name = "d/", .type = AE_IFDIR, .mtime = 1000000000},
        {.name = "d/f",
         .data = "x",
         .mtime = 1234567890,
         .mtime_ns = 123456789,
         .atime = 1200000000},
        {.name = "d/sub/", .type = AE_IFDIR, .mtime = 1000000001},
        {.name = "d/sub/g", .data = "y", .mtime = 1300000000},
        {.name = "d/l", .symlink = "f", .mtime = 1111111111},
        {.name = "d/p", .type = AE_IFIFO, .mtime = 1222222222},
    };
    if (!unpack_ok(&v, ents, ARRAY_SIZE(ents), NULL))
        goto out;
    struct stat s;
    CU_ASSERT(lst(&v, "d/f", &s) && s.st_mtim.tv_sec == 1234567890 &&
              s.st_mtim.tv_nsec == 123456789 && s.st_atim.tv_sec == 1200000000);
    CU_ASSERT(lst(&v, "d/l", &s) && S_ISLNK(s.st_mode) && s.st_mtim.tv_sec == 1111111111);
    CU_ASSERT(lst(&v, "d/p", &s) && s.st_mtim.tv_sec == 1222222222);
    CU_ASSERT(lst(&v, "d/sub/g", &s) && s.st_mtim.tv_sec == 1300000000);
    /* Directories keep their times although entries were made in them afterwards. */
    CU_ASSERT(lst(&v, "d", &s) && s.st_mtim.tv_sec == 1000000000);
    CU_ASSERT(lst(&v, "d/sub", &s) && s.st_mtim.tv_sec == 1000000001);
out:
    env_done(&v);
}

UNIT_TEST(layer, diff_id_and_compression)
{
    struct ent ents[] = {
        {.name = "etc/", .type = AE_IFDIR},
        {.name = "etc/os-release", .data = "ID=test\n"},
        {.name = "bin/sh", .symlink = "busybox"},
        {.name = "bin/busybox", .data = "#!fake\n", .perm = 0755},
    };
    int raw = build(ents, ARRAY_SIZE(ents), RAW);
    size_t len;
    cleanup_free char *bytes = fd_bytes(raw, &len);
    /* Padded to a whole record: the padding is in the digest too. */
    CU_ASSERT(len % 10240 == 0);
    char want[SBX_DIGEST_LEN + 1];
    sbx_sha256_buf(bytes, len, want);

    enum comp comps[] = {RAW, GZIP, ZSTD};
    for (size_t i = 0; i < ARRAY_SIZE(comps); i++) {
        struct env v;
        env_init(&v);
        int fd = comps[i] == RAW ? dup(raw) : compress_fd(raw, comps[i]);
        lseek(fd, 0, SEEK_SET);
        struct stat fst;
        fstat(fd, &fst);
        char diff[SBX_DIGEST_LEN + 1] = "";
        struct sbx_layer_stats st;
        sbx_error_t err = NULL;
        int r = unpack_fd(&v, fd, NULL, diff, &st, &err);
        if (r < 0)
            fprintf(stderr, "layer: compression %zu: %s\n", i, err->msg);
        sbx_error_release(&err);
        CU_ASSERT_EQUAL(r, 0);
        CU_ASSERT_STRING_EQUAL(diff, want);
        CU_ASSERT_EQUAL(st.bytes, len);
        CU_ASSERT_EQUAL(st.in_bytes, (uint64_t)fst.st_size);
        if (comps[i] != RAW)
            CU_ASSERT(st.in_bytes < len);
        CU_ASSERT(content_is(&v, "etc/os-release", "ID=test\n"));
        close(fd);
        env_done(&v);
    }
    close(raw);
}

/* tar -b 2048 and other writers with big records leave much more zero padding after the
 * end-of-archive blocks than the tar reader looks at: it is hashed all the same. */
UNIT_TEST(layer, diff_id_covers_trailing_padding)
{
    struct ent ents[] = {{.name = "a", .data = "x"}};
    int raw = build(ents, 1, RAW);
    size_t len;
    cleanup_free char *bytes = fd_bytes(raw, &len);
    close(raw);
    size_t total = len + 4 * MIB;
    char *padded = xmalloc0(total);
    memcpy(padded, bytes, len);
    char want[SBX_DIGEST_LEN + 1], diff[SBX_DIGEST_LEN + 1] = "";
    sbx_sha256_buf(padded, total, want);
    raw = memfd_of(padded, total);
    free(padded);
    for (int gz = 0; gz < 2; gz++) {
        struct env v;
        env_init(&v);
        int fd = gz ? compress_fd(raw, GZIP) : dup(raw);
        lseek(fd, 0, SEEK_SET);
        struct sbx_layer_stats st;
        sbx_error_t err = NULL;
        CU_ASSERT_EQUAL(unpack_fd(&v, fd, NULL, diff, &st, &err), 0);
        sbx_error_release(&err);
        CU_ASSERT_STRING_EQUAL(diff, want);
        CU_ASSERT_EQUAL(st.bytes, total);
        CU_ASSERT(content_is(&v, "a", "x"));
        close(fd);
        env_done(&v);
    }
    close(raw);
}

/* The progress callback, on a layer that libarchive's tar writer gzipped itself. */
static uint64_t progress_last, progress_calls;

static void
progress(uint64_t in_bytes, void *data)
{
    CU_ASSERT(in_bytes >= progress_last);
    CU_ASSERT_PTR_EQUAL(data, &progress_last);
    progress_last = in_bytes;
    progress_calls++;
}

UNIT_TEST(layer, progress_and_direct_gzip)
{
    struct env v;
    env_init(&v);
    struct ent ents[] = {{.name = "f", .data = "data"}, {.name = "z", .zeros = 3 * MIB}};
    int fd = build(ents, ARRAY_SIZE(ents), GZIP);
    struct stat fst;
    fstat(fd, &fst);
    struct sbx_layer_opts o = opts();
    o.progress = progress;
    o.progress_data = &progress_last;
    progress_last = progress_calls = 0;
    char diff[SBX_DIGEST_LEN + 1];
    sbx_error_t err = NULL;
    CU_ASSERT_EQUAL(unpack_fd(&v, fd, &o, diff, NULL, &err), 0);
    sbx_error_release(&err);
    CU_ASSERT(progress_calls >= 1);
    CU_ASSERT_EQUAL(progress_last, (uint64_t)fst.st_size);
    CU_ASSERT(strncmp(diff, "sha256:", 7) == 0 && strlen(diff) == SBX_DIGEST_LEN);
    struct stat s;
    CU_ASSERT(lst(&v, "z", &s) && s.st_size == 3 * MIB);
    close(fd);
    env_done(&v);
}

/* Holes stay holes: a sparse entry writes its data blocks only. */
UNIT_TEST(layer, sparse_file)
{
    struct env v;
    env_init(&v);
    int fd = memfd_create("layer", MFD_CLOEXEC);
    struct archive *a = archive_write_new();
    CU_ASSERT_EQUAL(archive_write_set_format_pax(a), ARCHIVE_OK);
    CU_ASSERT_EQUAL_FATAL(archive_write_open_fd(a, fd), ARCHIVE_OK);
    struct archive_entry *e = archive_entry_new();
    archive_entry_copy_pathname(e, "sparse");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, 64 * MIB);
    archive_entry_sparse_add_entry(e, 0, 4096);
    archive_entry_sparse_add_entry(e, 32 * MIB, 4096);
    CU_ASSERT_EQUAL(archive_write_header(a, e), ARCHIVE_OK);
    /* The writer takes the whole file and keeps the data blocks. */
    static char block[MIB];
    for (int i = 0; i < 64; i++) {
        memset(block, 0, sizeof(block));
        if (i == 0 || i == 32)
            memset(block, 'a' + i % 26, 4096);
        CU_ASSERT_EQUAL(archive_write_data(a, block, sizeof(block)), (la_ssize_t)sizeof(block));
    }
    archive_entry_free(e);
    CU_ASSERT_EQUAL(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    struct stat fst;
    fstat(fd, &fst);
    CU_ASSERT(fst.st_size < MIB);
    lseek(fd, 0, SEEK_SET);
    sbx_error_t err = NULL;
    int r = unpack_fd(&v, fd, NULL, NULL, NULL, &err);
    if (r < 0)
        fprintf(stderr, "layer.sparse_file: %s\n", err->msg);
    sbx_error_release(&err);
    CU_ASSERT_EQUAL(r, 0);
    struct stat s;
    CU_ASSERT(lst(&v, "sparse", &s) && s.st_size == 64 * MIB);
    CU_ASSERT((uint64_t)s.st_blocks * 512 < 4 * MIB);
    int f = openat(v.rootfd, "sparse", O_RDONLY | O_CLOEXEC);
    char c[2] = "";
    CU_ASSERT(pread(f, c, 1, 0) == 1 && c[0] == 'a');
    CU_ASSERT(pread(f, c, 1, 32 * MIB + 4095) == 1 && c[0] == 'a' + 6);
    CU_ASSERT(pread(f, c, 1, 16 * MIB) == 1 && c[0] == '\0');
    close(f);
    close(fd);
    env_done(&v);
}

/* A pax-extended ustar layer with one file whose pax "path" record is given raw: UTF-8 as Go and
 * buildkit write it, or bytes that are not UTF-8 at all. */
static int
pax_path_tar(const char *path)
{
    char out[5 * 512] = {0}, rec[600];
    /* "LEN path=VALUE\n", LEN counting its own digits. */
    int n = (int)strlen(" path=\n") + (int)strlen(path), digits = 1;
    while (snprintf(NULL, 0, "%d", n + digits) != digits)
        digits++;
    int len = n + digits;
    snprintf(rec, sizeof(rec), "%d path=%s\n", len, path);
    CU_ASSERT_FATAL((int)strlen(rec) == len);
    for (int h = 0; h < 2; h++) {
        char *b = out + h * 1024;
        strcpy(b, h == 0 ? "PaxHeader" : "placeholder");
        memcpy(b + 100, "0000644", 8);
        memcpy(b + 108, "0000000", 8);
        memcpy(b + 116, "0000000", 8);
        snprintf(b + 124, 12, "%011o", h == 0 ? len : 0);
        memcpy(b + 136, "00000000000", 12);
        b[156] = h == 0 ? 'x' : '0';
        memcpy(b + 257, "ustar", 6);
        memcpy(b + 263, "00", 2);
        memset(b + 148, ' ', 8);
        unsigned sum = 0;
        for (int i = 0; i < 512; i++)
            sum += (unsigned char)b[i];
        snprintf(b + 148, 8, "%06o", sum);
        if (h == 0)
            memcpy(b + 512, rec, (size_t)len);
    }
    /* out: pax header, its record, the file's header, an end block (+ the one after). */
    return memfd_of(out, 1024 + 512 + 1024);
}

UNIT_TEST(layer, pax_names_utf8_and_raw)
{
    const char *names[] = {"caf\xc3\xa9-\xe6\x97\xa5\xe6\x9c\xac", "latin1-\xe9\xff"};
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        struct env v;
        env_init(&v);
        int fd = pax_path_tar(names[i]);
        sbx_error_t err = NULL;
        int r = unpack_fd(&v, fd, NULL, NULL, NULL, &err);
        if (r < 0)
            fprintf(stderr, "layer.pax_names: %s\n", err->msg);
        sbx_error_release(&err);
        CU_ASSERT_EQUAL(r, 0);
        struct stat s;
        /* The name is kept byte for byte. */
        CU_ASSERT(lst(&v, names[i], &s) && S_ISREG(s.st_mode));
        close(fd);
        env_done(&v);
    }
}

UNIT_TEST(layer, whiteouts)
{
    struct env v;
    env_init(&v);
    struct ent ents[] = {
        {.name = "a/", .type = AE_IFDIR},
        {.name = "a/.wh.b"},
        {.name = ".wh.top"},
        {.name = "missing/dir/.wh.x"}, /* parents made */
        {.name = "o/", .type = AE_IFDIR},
        {.name = "o/.wh..wh..opq"},
        {.name = "o/kept", .data = "k"},
        /* Whiteouts hide the lower layers only: this layer's own k stays. */
        {.name = "k", .data = "mine"},
        {.name = ".wh.k"},
        /* Deleted below, made anew here: opaque, whichever comes first. */
        {.name = ".wh.d1"},
        {.name = "d1/", .type = AE_IFDIR},
        {.name = "d2/", .type = AE_IFDIR},
        {.name = ".wh.d2"},
        /* AUFS metadata is not for overlayfs. */
        {.name = ".wh..wh.plnk/", .type = AE_IFDIR},
        {.name = ".wh..wh.plnk/123.456", .data = "x"},
    };
    struct sbx_layer_stats st;
    if (!unpack_ok(&v, ents, ARRAY_SIZE(ents), &st))
        goto out;
    struct stat s;
    CU_ASSERT(lst(&v, "a/b", &s) && S_ISCHR(s.st_mode) && s.st_rdev == makedev(0, 0));
    CU_ASSERT(!lst(&v, "a/.wh.b", &s));
    CU_ASSERT(lst(&v, "top", &s) && S_ISCHR(s.st_mode) && s.st_rdev == makedev(0, 0));
    CU_ASSERT(lst(&v, "missing/dir/x", &s) && S_ISCHR(s.st_mode));
    CU_ASSERT_EQUAL(st.whiteouts, 4); /* d1's too, replaced by the directory */
    char val[8] = "";
    CU_ASSERT(xget(&v, "o", "user.overlay.opaque", val, sizeof(val)) == 1 && val[0] == 'y');
    if (need_root("whiteouts: trusted.overlay.opaque"))
        CU_ASSERT(xget(&v, "o", "trusted.overlay.opaque", val, sizeof(val)) == 1 && val[0] == 'y');
    CU_ASSERT(!lst(&v, "o/.wh..wh..opq", &s));
    CU_ASSERT(content_is(&v, "o/kept", "k"));
    CU_ASSERT(content_is(&v, "k", "mine"));
    CU_ASSERT(lst(&v, "d1", &s) && S_ISDIR(s.st_mode));
    CU_ASSERT(xget(&v, "d1", "user.overlay.opaque", val, sizeof(val)) == 1);
    CU_ASSERT(lst(&v, "d2", &s) && S_ISDIR(s.st_mode));
    CU_ASSERT(xget(&v, "d2", "user.overlay.opaque", val, sizeof(val)) == 1);
    CU_ASSERT(xget(&v, "a", "user.overlay.opaque", val, sizeof(val)) < 0);
    CU_ASSERT_EQUAL(st.opaque_dirs, 3);
    CU_ASSERT(!lst(&v, ".wh..wh.plnk", &s));
    CU_ASSERT_EQUAL(st.skipped_other, 2);
out:
    env_done(&v);
}

UNIT_TEST(layer, whiteout_without_name)
{
    struct env v;
    env_init(&v);
    struct ent e1[] = {{.name = "a/.wh."}};
    refused(&v, e1, 1, "layer entry `a/.wh.`", "whiteout without a name");
    struct ent e2[] = {{.name = "a/.wh.."}};
    refused(&v, e2, 1, "layer entry `a/.wh..`", "whiteout of `.`");
    env_done(&v);
}

UNIT_TEST(layer, xattrs)
{
    if (!need_root("xattrs"))
        return;
    struct env v;
    env_init(&v);
    struct ent ents[] = {
        {.name = "f",
         .data = "x",
         .xname = {"user.keep", "trusted.keep", "trusted.overlay.opaque"},
         .xval = {"u", "t", "y"}},
        {.name = "g",
         .data = "x",
         .xname = {"user.overlay.redirect", "security.selinux", "system.posix_acl_access"},
         .xval = {"/x", "system_u:object_r:bin_t:s0", "junk"}},
        {.name = "d/",
         .type = AE_IFDIR,
         .xname = {"user.overlay.opaque", "trusted.overlay.origin", "user.d"},
         .xval = {"y", "z", "dv"}},
        {.name = "l", .symlink = "f", .xname = {"trusted.l"}, .xval = {"v"}},
    };
    struct sbx_layer_stats st;
    if (!unpack_ok(&v, ents, ARRAY_SIZE(ents), &st))
        goto out;
    char val[64];
    CU_ASSERT(xget(&v, "f", "user.keep", val, sizeof(val)) == 1 && val[0] == 'u');
    CU_ASSERT(xget(&v, "f", "trusted.keep", val, sizeof(val)) == 1 && val[0] == 't');
    /* The layer cannot forge overlay metadata, in either namespace. */
    CU_ASSERT(xget(&v, "f", "trusted.overlay.opaque", val, sizeof(val)) < 0 && errno == ENODATA);
    CU_ASSERT(xget(&v, "g", "user.overlay.redirect", val, sizeof(val)) < 0);
    CU_ASSERT(xget(&v, "g", "security.selinux", val, sizeof(val)) < 0);
    CU_ASSERT(xget(&v, "g", "system.posix_acl_access", val, sizeof(val)) < 0);
    CU_ASSERT(xget(&v, "d", "user.overlay.opaque", val, sizeof(val)) < 0);
    CU_ASSERT(xget(&v, "d", "trusted.overlay.origin", val, sizeof(val)) < 0);
    CU_ASSERT(xget(&v, "d", "user.d", val, sizeof(val)) == 2);
    CU_ASSERT(xget(&v, "l", "trusted.l", val, sizeof(val)) < 0);
    /* 7 dropped, each twice: libarchive's writer stores every xattr as SCHILY.xattr.* and as
     * LIBARCHIVE.xattr.*, and its reader reports both. */
    CU_ASSERT_EQUAL(st.dropped_xattrs, 2 * 7);
out:
    env_done(&v);
}

static void
cap_value(uint32_t magic, uint32_t permitted, void *out)
{
    struct vfs_cap_data c = {.magic_etc = htole32(magic)};
    c.data[0].permitted = htole32(permitted);
    c.data[0].inheritable = htole32(0);
    memcpy(out, &c, sizeof(c));
}

UNIT_TEST(layer, file_capabilities)
{
    if (!need_root("file_capabilities"))
        return;
    struct env v;
    env_init(&v);
    char v2[XATTR_CAPS_SZ_2], v2ne[XATTR_CAPS_SZ_2];
    cap_value(VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE, 1u << CAP_NET_RAW, v2);
    cap_value(VFS_CAP_REVISION_2, 1u << CAP_NET_BIND_SERVICE, v2ne);
    struct vfs_ns_cap_data v3in;
    cap_value(VFS_CAP_REVISION_3, 1u << CAP_CHOWN, &v3in);
    v3in.rootid = htole32(0);
    struct ent ents[] = {
        {.name = "ping",
         .data = "x",
         .perm = 04755,
         .xname = {"security.capability"},
         .xval = {v2},
         .xlen = {sizeof(v2)}},
        {.name = "srv",
         .data = "x",
         .xname = {"security.capability"},
         .xval = {v2ne},
         .xlen = {sizeof(v2ne)}},
        {.name = "v3",
         .data = "x",
         .xname = {"security.capability"},
         .xval = {&v3in},
         .xlen = {sizeof(v3in)}},
    };
    if (!unpack_ok(&v, ents, ARRAY_SIZE(ents), NULL))
        goto out;
    struct vfs_ns_cap_data c;
    CU_ASSERT_EQUAL(xget(&v, "ping", "security.capability", &c, sizeof(c)), XATTR_CAPS_SZ_3);
    CU_ASSERT_EQUAL(le32toh(c.magic_etc), VFS_CAP_REVISION_3 | VFS_CAP_FLAGS_EFFECTIVE);
    CU_ASSERT_EQUAL(le32toh(c.rootid), UID_BASE);
    CU_ASSERT_EQUAL(le32toh(c.data[0].permitted), 1u << CAP_NET_RAW);
    CU_ASSERT_EQUAL(le32toh(c.data[1].permitted), 0);
    struct stat s;
    CU_ASSERT(lst(&v, "ping", &s) && (s.st_mode & 07777) == 04755 && s.st_uid == UID_BASE);
    CU_ASSERT_EQUAL(xget(&v, "srv", "security.capability", &c, sizeof(c)), XATTR_CAPS_SZ_3);
    CU_ASSERT_EQUAL(le32toh(c.magic_etc), VFS_CAP_REVISION_3);
    CU_ASSERT_EQUAL(le32toh(c.rootid), UID_BASE);
    CU_ASSERT_EQUAL(le32toh(c.data[0].permitted), 1u << CAP_NET_BIND_SERVICE);
    CU_ASSERT_EQUAL(xget(&v, "v3", "security.capability", &c, sizeof(c)), XATTR_CAPS_SZ_3);
    CU_ASSERT_EQUAL(le32toh(c.rootid), UID_BASE);
out:
    env_done(&v);

    /* Malformed values refuse the layer. */
    char bad_size[7] = {0}, bad_rev[XATTR_CAPS_SZ_2], bad_flags[XATTR_CAPS_SZ_2];
    cap_value(0x07000000, 1, bad_rev);
    cap_value(VFS_CAP_REVISION_2 | 0x10, 1, bad_flags);
    const void *bad[] = {bad_size, bad_rev, bad_flags};
    size_t bad_len[] = {sizeof(bad_size), sizeof(bad_rev), sizeof(bad_flags)};
    for (int i = 0; i < 3; i++) {
        env_init(&v);
        struct ent e[] = {{.name = "bin/x",
                           .data = "x",
                           .xname = {"security.capability"},
                           .xval = {bad[i]},
                           .xlen = {bad_len[i]}}};
        refused(&v, e, 1, "layer entry `bin/x`", "malformed security.capability");
        env_done(&v);
    }
}

UNIT_TEST(layer, duplicates_replace)
{
    struct env v;
    env_init(&v);
    char evil[128];
    snprintf(evil, sizeof(evil), "%s/%s", v.outer, v.escape);
    struct ent ents[] = {
        {.name = "f", .data = "one"},
        {.name = "f", .data = "two", .perm = 0600},
        {.name = "d/", .type = AE_IFDIR, .perm = 0700},
        {.name = "d/x", .data = "x"},
        {.name = "d/", .type = AE_IFDIR, .perm = 0750}, /* metadata only, content kept */
        {.name = "e/", .type = AE_IFDIR},
        {.name = "e", .symlink = "f"}, /* an empty directory replaced */
        {.name = "g", .data = "file"},
        {.name = "g/", .type = AE_IFDIR},
        /* A symlink then a file of the same name: the file replaces the link, the write never
         * goes through it. */
        {.name = "s", .symlink = evil},
        {.name = "s", .data = "plain"},
        {.name = "h", .data = "old"},
        {.name = "h", .hardlink = "f"},
    };
    if (!unpack_ok(&v, ents, ARRAY_SIZE(ents), NULL))
        goto out;
    struct stat s, s2;
    CU_ASSERT(content_is(&v, "f", "two"));
    CU_ASSERT(lst(&v, "f", &s) && (s.st_mode & 07777) == 0600);
    CU_ASSERT(lst(&v, "d", &s) && (s.st_mode & 07777) == 0750);
    CU_ASSERT(content_is(&v, "d/x", "x"));
    CU_ASSERT(lst(&v, "e", &s) && S_ISLNK(s.st_mode));
    CU_ASSERT(lst(&v, "g", &s) && S_ISDIR(s.st_mode));
    CU_ASSERT(lst(&v, "s", &s) && S_ISREG(s.st_mode));
    CU_ASSERT(content_is(&v, "s", "plain"));
    CU_ASSERT(lst(&v, "h", &s) && lst(&v, "f", &s2) && s.st_ino == s2.st_ino);
    CU_ASSERT(!escaped(&v));
out:
    env_done(&v);

    env_init(&v);
    struct ent full[] = {
        {.name = "n/", .type = AE_IFDIR},
        {.name = "n/x", .data = "x"},
        {.name = "n", .data = "file"},
    };
    refused(&v, full, ARRAY_SIZE(full), "layer entry `n`", "not empty");
    env_done(&v);
}

UNIT_TEST(layer, devices_skipped)
{
    struct env v;
    env_init(&v);
    struct ent ents[] = {
        {.name = "dev/null", .type = AE_IFCHR, .rdev = makedev(1, 3), .perm = 0666},
        {.name = "dev/sda", .type = AE_IFBLK, .rdev = makedev(8, 0), .perm = 0660},
        {.name = "dev/ok", .data = "x"},
    };
    struct sbx_layer_stats st;
    if (!unpack_ok(&v, ents, ARRAY_SIZE(ents), &st))
        goto out;
    struct stat s;
    CU_ASSERT(!lst(&v, "dev/null", &s));
    CU_ASSERT(!lst(&v, "dev/sda", &s));
    CU_ASSERT(content_is(&v, "dev/ok", "x"));
    CU_ASSERT_EQUAL(st.skipped_devices, 2);
    CU_ASSERT_EQUAL(st.entries, 3);
out:
    env_done(&v);
}

UNIT_TEST(layer, refuse_dotdot_and_absolute)
{
    struct env v;
    env_init(&v);
    char n1[64], n2[64], n3[64], m1[80], m2[80], m3[80];
    snprintf(n1, sizeof(n1), "../%s", v.escape);
    snprintf(n2, sizeof(n2), "a/../../%s", v.escape);
    snprintf(n3, sizeof(n3), "/%s", v.escape);
    /* No closing backquote: the writer adds a "/" to directory names. */
    snprintf(m1, sizeof(m1), "layer entry `%s", n1);
    snprintf(m2, sizeof(m2), "layer entry `%s", n2);
    snprintf(m3, sizeof(m3), "layer entry `%s", n3);
    struct ent e1[] = {{.name = "ok", .data = "x"}, {.name = n1, .data = "x"}};
    refused(&v, e1, 2, m1, "`..` component");
    struct ent e2[] = {{.name = "a/", .type = AE_IFDIR}, {.name = n2, .data = "x"}};
    refused(&v, e2, 2, m2, "`..` component");
    struct ent e3[] = {{.name = n3, .data = "x"}};
    refused(&v, e3, 1, m3, "is absolute");
    /* As a directory and a symlink too. */
    struct ent e4[] = {{.name = n1, .type = AE_IFDIR}};
    refused(&v, e4, 1, m1, "`..` component");
    struct ent e5[] = {{.name = n3, .symlink = "/etc"}};
    refused(&v, e5, 1, m3, "is absolute");
    env_done(&v);
}

UNIT_TEST(layer, refuse_through_symlink)
{
    struct env v;
    env_init(&v);
    /* s -> / then s/tmp/<outer>/ESCAPE, which would be next to the root. */
    char via_root[160], m_root[220], via_up[64], m_up[128], deep[64], m_deep[128];
    snprintf(via_root, sizeof(via_root), "s%s/%s", v.outer, v.escape);
    snprintf(m_root, sizeof(m_root), "layer entry `%s`: goes through a symlink", via_root);
    struct ent e1[] = {{.name = "s", .symlink = "/"}, {.name = via_root, .data = "x"}};
    refused(&v, e1, 2, m_root, NULL);
    env_done(&v);

    env_init(&v);
    snprintf(via_up, sizeof(via_up), "s/%s", v.escape);
    snprintf(m_up, sizeof(m_up), "layer entry `%s`: goes through a symlink", via_up);
    struct ent e2[] = {{.name = "s", .symlink = ".."}, {.name = via_up, .data = "x"}};
    refused(&v, e2, 2, m_up, NULL);
    /* A directory entry through it: no mkdir outside either. */
    char via_up_dir[80], m_up_dir[160];
    snprintf(via_up_dir, sizeof(via_up_dir), "%s/", via_up);
    snprintf(m_up_dir, sizeof(m_up_dir), "layer entry `%s`: goes through a symlink", via_up_dir);
    struct ent e3[] = {{.name = "s", .symlink = ".."}, {.name = via_up_dir, .type = AE_IFDIR}};
    refused(&v, e3, 2, m_up_dir, NULL);
    /* A whiteout and an opaque marker through it. */
    char wh[64], m_wh[128];
    snprintf(wh, sizeof(wh), "s/.wh.%s", v.escape);
    snprintf(m_wh, sizeof(m_wh), "layer entry `%s`: goes through a symlink", wh);
    struct ent e4[] = {{.name = "s", .symlink = ".."}, {.name = wh}};
    refused(&v, e4, 2, m_wh, NULL);
    struct ent e5[] = {{.name = "s", .symlink = ".."}, {.name = "s/.wh..wh..opq"}};
    refused(&v, e5, 2, "layer entry `s/.wh..wh..opq`: goes through a symlink", NULL);
    char val[4];
    CU_ASSERT(getxattr(v.outer, "user.overlay.opaque", val, sizeof(val)) < 0);
    env_done(&v);

    /* A symlink deeper down, to a directory with a parent escape in it. */
    env_init(&v);
    snprintf(deep, sizeof(deep), "a/b/up/%s", v.escape);
    snprintf(m_deep, sizeof(m_deep), "layer entry `%s`: goes through a symlink", deep);
    struct ent e6[] = {{.name = "a/b/", .type = AE_IFDIR},
                       {.name = "a/b/up", .symlink = "../../.."},
                       {.name = deep, .data = "x"}};
    refused(&v, e6, 3, m_deep, NULL);
    env_done(&v);
}

UNIT_TEST(layer, refuse_bad_hardlinks)
{
    struct env v;
    env_init(&v);
    /* A file next to the root that a link would reach. */
    char secret[128];
    snprintf(secret, sizeof(secret), "%s/secret", v.outer);
    int sfd = open(secret, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    CU_ASSERT_FATAL(sfd >= 0);
    close(sfd);
    struct stat passwd_before, s;
    CU_ASSERT_FATAL(stat("/etc/passwd", &passwd_before) == 0);

    struct ent e1[] = {{.name = "h", .hardlink = "/etc/passwd"}};
    refused(&v, e1, 1, "layer entry `h`", "hardlink target `/etc/passwd` is absolute");
    struct ent e2[] = {{.name = "h", .hardlink = "../secret"}};
    refused(&v, e2, 1, "layer entry `h`", "`..` component");
    struct ent e3[] = {{.name = "s", .symlink = ".."}, {.name = "h", .hardlink = "s/secret"}};
    refused(&v, e3, 2, "layer entry `h`", "hardlink target `s/secret` goes through a symlink");
    struct ent e4[] = {{.name = "s", .symlink = "/etc"}, {.name = "h", .hardlink = "s/passwd"}};
    refused(&v, e4, 2, "layer entry `h`", "goes through a symlink");
    struct ent e5[] = {{.name = "h", .hardlink = "nope"}};
    refused(&v, e5, 1, "layer entry `h`", "hardlink target `nope` does not exist in this layer");
    struct ent e6[] = {{.name = "h", .hardlink = "no/such"}};
    refused(&v, e6, 1, "layer entry `h`", "does not exist in this layer");
    struct ent e7[] = {{.name = "d/", .type = AE_IFDIR}, {.name = "h", .hardlink = "d"}};
    refused(&v, e7, 2, "layer entry `h`", "is a directory");

    CU_ASSERT(!lst(&v, "h", &s));
    CU_ASSERT(stat(secret, &s) == 0 && s.st_nlink == 1);
    CU_ASSERT(stat("/etc/passwd", &s) == 0 && s.st_nlink == passwd_before.st_nlink);
    env_done(&v);
}

UNIT_TEST(layer, refuse_long_names)
{
    struct env v;
    env_init(&v);
    char *name = xmalloc0(PATH_MAX + 200);
    for (size_t i = 0; i < PATH_MAX + 100; i += 2)
        memcpy(name + i, "a/", 2);
    strcat(name, "f");
    struct ent e1[] = {{.name = name, .data = "x"}};
    refused(&v, e1, 1, "layer entry `a/a/a/", "longer than PATH_MAX");
    struct ent e2[] = {{.name = "l", .symlink = name}};
    refused(&v, e2, 1, "layer entry `l`", "longer than PATH_MAX");
    free(name);
    env_done(&v);
}

UNIT_TEST(layer, refuse_max_entries)
{
    struct env v;
    env_init(&v);
    struct ent ents[10];
    char names[10][8];
    memset(ents, 0, sizeof(ents));
    for (int i = 0; i < 10; i++) {
        snprintf(names[i], sizeof(names[i]), "f%d", i);
        ents[i].name = names[i];
        ents[i].data = "x";
    }
    struct sbx_layer_opts o = opts();
    o.max_entries = 5;
    refused_o(&v, ents, 10, &o, "layer entry `f5`", "more than max_entries (5)");
    struct stat s;
    CU_ASSERT(lst(&v, "f4", &s));
    CU_ASSERT(!lst(&v, "f5", &s));
    env_done(&v);

    env_init(&v);
    o.max_entries = 10;
    CU_ASSERT(unpack_ok(&v, ents, 10, NULL));
    env_done(&v);
}

/* Bytes a directory's files take on disk (one level). */
static uint64_t
disk_usage(struct env *v)
{
    uint64_t total = 0;
    int fd = openat(v->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fdopendir(fd);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        struct stat s;
        if (fstatat(v->rootfd, de->d_name, &s, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(s.st_mode))
            total += (uint64_t)s.st_blocks * 512;
    }
    if (d)
        closedir(d);
    return total;
}

UNIT_TEST(layer, refuse_bomb)
{
    struct env v;
    env_init(&v);
    struct ent ents[] = {{.name = "small", .data = "x"}, {.name = "bomb", .zeros = 64 * MIB}};
    int fd = build(ents, ARRAY_SIZE(ents), GZIP);
    struct stat fst;
    fstat(fd, &fst);
    CU_ASSERT(fst.st_size < MIB); /* a bomb: 64 MiB from a few dozen KiB */
    struct sbx_layer_opts o = opts();
    o.max_bytes = MIB;
    struct sbx_layer_stats st;
    sbx_error_t err = NULL;
    int64_t t0 = sbx_monotonic_ms();
    int r = unpack_fd(&v, fd, &o, NULL, &st, &err);
    int64_t ms = sbx_monotonic_ms() - t0;
    CU_ASSERT(r < 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err);
    CU_ASSERT_PTR_NOT_NULL(strstr(err->msg, "layer entry `bomb`"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err->msg, "larger than max_bytes (1048576 bytes)"));
    sbx_error_release(&err);
    /* Stopped at the bound, not after inflating everything. */
    CU_ASSERT(st.bytes <= MIB);
    CU_ASSERT(disk_usage(&v) < 2 * MIB);
    CU_ASSERT(ms < 2000);
    close(fd);
    env_done(&v);

    /* A bomb after the end of the tar: the drain is bounded too. */
    env_init(&v);
    struct ent one[] = {{.name = "a", .data = "x"}};
    int raw = build(one, 1, RAW);
    size_t len;
    cleanup_free char *bytes = fd_bytes(raw, &len);
    close(raw);
    char *padded = xmalloc0(len + 8 * MIB);
    memcpy(padded, bytes, len);
    raw = memfd_of(padded, len + 8 * MIB);
    free(padded);
    fd = compress_fd(raw, GZIP);
    close(raw);
    r = unpack_fd(&v, fd, &o, NULL, &st, &err);
    CU_ASSERT(r < 0);
    CU_ASSERT(err && strstr(err->msg, "larger than max_bytes"));
    sbx_error_release(&err);
    close(fd);
    env_done(&v);
}

UNIT_TEST(layer, refuse_corrupt_streams)
{
    struct ent ents[] = {
        {.name = "a", .data = "some text that compresses somewhat, some text that compresses"},
        {.name = "b", .zeros = 300000},
        {.name = "c", .data = "tail"},
    };
    int raw = build(ents, ARRAY_SIZE(ents), RAW);
    size_t rlen, glen;
    cleanup_free char *rbytes = fd_bytes(raw, &rlen);
    int gz = compress_fd(raw, GZIP);
    cleanup_free char *gbytes = fd_bytes(gz, &glen);
    close(gz);
    close(raw);
    struct {
        const char *what;
        char *buf;
        size_t len;
        const char *want;
    } cases[] = {
        {"truncated gzip", NULL, glen / 2, "layer"},
        {"corrupt gzip", NULL, glen, "layer"},
        {"garbage", NULL, 4096, "not a tar archive"},
        {"empty", NULL, 0, "layer: the layer is empty"},
        {"bad tar checksum", NULL, rlen, "Damaged tar archive"},
        {"truncated tar", NULL, 1024 + 100, "layer"},
    };
    cases[0].buf = xmalloc0(glen);
    memcpy(cases[0].buf, gbytes, glen);
    cases[1].buf = xmalloc0(glen);
    memcpy(cases[1].buf, gbytes, glen);
    for (size_t i = glen / 3; i < glen / 3 + 16; i++)
        cases[1].buf[i] ^= 0x55;
    cases[2].buf = xmalloc0(4096);
    random_hex(cases[2].buf, 4095);
    cases[3].buf = xmalloc0(1);
    cases[4].buf = xmalloc0(rlen);
    memcpy(cases[4].buf, rbytes, rlen);
    /* The second header (after a's header and its one data block): its checksum field. */
    memcpy(cases[4].buf + 1024 + 148, "0000000", 7);
    cases[5].buf = xmalloc0(rlen);
    memcpy(cases[5].buf, rbytes, rlen);
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct env v;
        env_init(&v);
        int fd = memfd_of(cases[i].buf, cases[i].len);
        sbx_error_t err = NULL;
        int r = unpack_fd(&v, fd, NULL, NULL, NULL, &err);
        CU_ASSERT(r < 0);
        if (r < 0 && err) {
            bool ok = strstr(err->msg, cases[i].want) != NULL;
            CU_ASSERT(ok);
            fprintf(stderr, "layer.%s: %s%s\n", cases[i].what, err->msg, ok ? "" : " (WRONG)");
        } else {
            fprintf(stderr, "layer.%s: NOT REFUSED\n", cases[i].what);
        }
        sbx_error_release(&err);
        close(fd);
        free(cases[i].buf);
        env_done(&v);
    }
}

UNIT_TEST(layer, refuse_bad_root_and_opts)
{
    struct env v;
    env_init(&v);
    struct ent e1[] = {{.name = ".", .data = "not a dir"}};
    refused(&v, e1, 1, "layer entry `.`", "root is not a directory");
    struct ent e2[] = {{.name = "x", .hardlink = "."}};
    refused(&v, e2, 1, "layer entry `x`", "layer's root");
    struct ent e3[] = {{.name = "x", .hardlink = "./x"}};
    refused(&v, e3, 1, "layer entry `x`", "hardlink to itself");
    env_done(&v);

    /* The directory must be empty. */
    env_init(&v);
    int f = openat(v.rootfd, "there", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    close(f);
    struct ent ok[] = {{.name = "a", .data = "x"}};
    int fd = build(ok, 1, RAW);
    sbx_error_t err = NULL;
    CU_ASSERT(unpack_fd(&v, fd, NULL, NULL, NULL, &err) < 0);
    CU_ASSERT(err && strstr(err->msg, "not empty"));
    sbx_error_release(&err);
    close(fd);
    env_done(&v);

    env_init(&v);
    struct sbx_layer_opts o = opts();
    o.rootless = false; /* rootless ignores uid_base */
    o.uid_base = UINT32_MAX - 10;
    refused_o(&v, ok, 1, &o, "uid_base", NULL);
    if (geteuid() == 0) {
        o = opts();
        o.rootless = true;
        refused_o(&v, ok, 1, &o, "rootless", NULL);
    }
    env_done(&v);
}
