/* fuzz_layer: the layer unpacker (runtime/lib/layer.c): each input is a layer (tar, gzip or
 * zstd), unpacked with small bounds into a fresh directory that is then removed. Beyond the
 * sanitizers it checks the error convention, that the bounds held, that a digest came out of a
 * success, that nothing appeared next to that directory (an escape) and that what was unpacked
 * can be removed.
 *
 * `make fuzz-layer FUZZ_SECONDS=30` builds and runs it (README, Tests). As root the unpacking is
 * the real one (chown to 1000000+, trusted.* xattrs); otherwise it is rootless. libarchive itself
 * is not instrumented: the Debian build is used, so coverage guides through layer.c only. */
#include "layer.h"
#include "utils.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>

static char base[64];
static char dir[96];

static void
remove_base(void)
{
    sbx_error_t err = NULL;
    rm_rf(base, &err);
    sbx_error_release(&err);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* rm_rf keeps a descriptor open per level, and a layer name may be PATH_MAX / 2 levels
     * deep. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    snprintf(base, sizeof(base), "/tmp/sbx-fuzz-layer-XXXXXX");
    if (mkdtemp(base) == NULL)
        abort();
    snprintf(dir, sizeof(dir), "%s/layer", base);
    atexit(remove_base);
    return 0;
}

/* Without root, directories the layer made read-only (0555, 0) must be opened up first. */
static int
open_up(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    if (flag == FTW_D || flag == FTW_DNR)
        chmod(path, 0700);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("layer", MFD_CLOEXEC);
    if (fd < 0 || safe_write(fd, data, size) != (ssize_t)size || lseek(fd, 0, SEEK_SET) != 0)
        abort();
    if (mkdir(dir, 0755) < 0)
        abort();
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        abort();
    struct sbx_layer_opts o = {
        .uid_base = 1000000,
        .gid_base = 1000000,
        .max_bytes = 4 << 20,
        .max_entries = 256,
        .rootless = geteuid() != 0,
    };
    char diff_id[SBX_DIGEST_LEN + 1];
    struct sbx_layer_stats st;
    sbx_error_t err = NULL;
    int r = sbx_layer_unpack(fd, dfd, &o, diff_id, &st, &err);
    if ((r < 0) != (err != NULL) || st.bytes > o.max_bytes || st.entries > o.max_entries + 1)
        abort();
    if (r == 0 && strlen(diff_id) != SBX_DIGEST_LEN)
        abort();
    sbx_error_release(&err);
    close(dfd);
    close(fd);

    if (geteuid() != 0)
        nftw(dir, open_up, 16, FTW_PHYS);
    if (rm_rf(dir, &err) < 0) {
        fprintf(stderr, "fuzz_layer: cannot remove what was unpacked: %s\n", err->msg);
        abort();
    }
    /* The layer directory was the only thing in base: anything else is an escape. */
    DIR *d = opendir(base);
    if (d == NULL)
        abort();
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            fprintf(stderr, "fuzz_layer: ESCAPE: %s/%s\n", base, de->d_name);
            abort();
        }
    closedir(d);
    return 0;
}
