/* Lock files (utils.c sbx_lockfile_*, state.c sbx_state_lock): refusal with the holder's pid, a
 * bounded wait, no stale lock after a holder died without letting go, no file left behind. */
#include "state.h"
#include "unit.h"
#include "utils.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

static char *
tmpdir(void)
{
    char tmpl[] = "/tmp/sbx-unit-lock-XXXXXX";
    return xstrdup(mkdtemp(tmpl) ? tmpl : "/nonexistent");
}

UNIT_TEST(lockfile, take_refuse_release)
{
    char *dir = tmpdir();
    char *path = xasprintf("%s/x.lock", dir);
    struct sbx_lockfile a = SBX_LOCKFILE_INIT, b = SBX_LOCKFILE_INIT;
    pid_t holder = -1;
    CU_ASSERT_EQUAL(sbx_lockfile_take(&a, path, 0, true, &holder, NULL), 0);
    CU_ASSERT(a.fd >= 0);
    CU_ASSERT_EQUAL(sbx_lockfile_holder(path), getpid());
    /* Another open file description is another owner, even in this process. */
    CU_ASSERT_EQUAL(sbx_lockfile_take(&b, path, 0, true, &holder, NULL), 1);
    CU_ASSERT_EQUAL(holder, getpid());
    CU_ASSERT_EQUAL(b.fd, -1);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CU_ASSERT_EQUAL(sbx_lockfile_take(&b, path, 150, false, NULL, NULL), 1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    CU_ASSERT(ms >= 150 && ms < 2000);
    sbx_lockfile_release(&a);
    CU_ASSERT_EQUAL(a.fd, -1);
    CU_ASSERT_NOT_EQUAL(access(path, F_OK), 0); /* removed as it was let go */
    sbx_lockfile_release(&a);                   /* idempotent */
    CU_ASSERT_EQUAL(sbx_lockfile_take(&b, path, 0, false, NULL, NULL), 0);
    sbx_lockfile_release(&b);
    CU_ASSERT_EQUAL(rm_rf(dir, NULL), 0);
    free(path);
    free(dir);
}

/* A holder that exits without letting go (kill -9) leaves its file and pid, not its lock. */
UNIT_TEST(lockfile, dead_holder_does_not_block)
{
    char *dir = tmpdir();
    char *path = xasprintf("%s/x.lock", dir);
    pid_t p = fork();
    if (p == 0) {
        struct sbx_lockfile l = SBX_LOCKFILE_INIT;
        _exit(sbx_lockfile_take(&l, path, 0, true, NULL, NULL) == 0 ? 0 : 1);
    }
    int st = -1;
    CU_ASSERT_EQUAL(waitpid(p, &st, 0), p);
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CU_ASSERT_EQUAL(sbx_lockfile_holder(path), p); /* its file, with its pid, is still there */
    struct sbx_lockfile l = SBX_LOCKFILE_INIT;
    CU_ASSERT_EQUAL(sbx_lockfile_take(&l, path, 0, true, NULL, NULL), 0);
    CU_ASSERT_EQUAL(sbx_lockfile_holder(path), getpid());
    sbx_lockfile_release(&l);
    CU_ASSERT_EQUAL(rm_rf(dir, NULL), 0);
    free(path);
    free(dir);
}

/* A waiter gets the lock once the holder lets go, on the file the path names then. */
UNIT_TEST(lockfile, waiter_gets_it_after_release)
{
    char *dir = tmpdir();
    char *path = xasprintf("%s/x.lock", dir);
    struct sbx_lockfile a = SBX_LOCKFILE_INIT;
    CU_ASSERT_EQUAL_FATAL(sbx_lockfile_take(&a, path, 0, false, NULL, NULL), 0);
    pid_t p = fork();
    if (p == 0) {
        close(a.fd); /* the parent's lock, shared by the fork: not this waiter's */
        struct sbx_lockfile l = SBX_LOCKFILE_INIT;
        struct stat fs, ps;
        int r = sbx_lockfile_take(&l, path, 5000, false, NULL, NULL);
        _exit(r == 0 && fstat(l.fd, &fs) == 0 && stat(path, &ps) == 0 && fs.st_ino == ps.st_ino
                  ? 0
                  : 1);
    }
    usleep(100 * 1000);
    sbx_lockfile_release(&a);
    int st = -1;
    CU_ASSERT_EQUAL(waitpid(p, &st, 0), p);
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CU_ASSERT_EQUAL(rm_rf(dir, NULL), 0);
    free(path);
    free(dir);
}

UNIT_TEST(lockfile, state_lock_makes_its_dir)
{
    char *dir = tmpdir();
    char *root = xasprintf("%s/state", dir); /* not there yet */
    struct sbx_lockfile l = SBX_LOCKFILE_INIT;
    CU_ASSERT_EQUAL(sbx_state_lock(root, "abc", &l, NULL), 0);
    char *path = xasprintf("%s/.locks/abc", root);
    CU_ASSERT_EQUAL(access(path, F_OK), 0);
    sbx_lockfile_release(&l);
    CU_ASSERT_NOT_EQUAL(access(path, F_OK), 0);
    CU_ASSERT(sbx_state_lock(root, "../x", &l, NULL) < 0); /* ids only */
    CU_ASSERT_EQUAL(rm_rf(dir, NULL), 0);
    free(path);
    free(root);
    free(dir);
}
