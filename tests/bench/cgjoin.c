/* How long joining a cgroup v1 hierarchy takes, two ways (see sbx_cgroup_self_join_fds()):
 *   procs: the parent writes the child's pid to cgroup.procs (write-locks
 *          cgroup_threadgroup_rwsem: an RCU grace period);
 *   self:  the child writes "0" to `tasks` through files the parent opened.
 * Uses `sbxbench-<pid>` below each hierarchy's root (v1 only) and removes it. Run by cgjoin.sh. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *const hier[] = {"memory",  "cpu",   "cpuacct", "pids",
                                   "freezer", "blkio", "cpuset",  "devices"};
#define NH (sizeof(hier) / sizeof(hier[0]))

static double
now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void
copy_parent(const char *dir, const char *file)
{
    char src[256], dst[256], v[256] = "";
    snprintf(src, sizeof(src), "/sys/fs/cgroup/cpuset/%s", file);
    snprintf(dst, sizeof(dst), "%s/%s", dir, file);
    int f = open(src, O_RDONLY);
    ssize_t n = f >= 0 ? read(f, v, sizeof(v) - 1) : -1;
    if (f >= 0)
        close(f);
    f = open(dst, O_WRONLY);
    if (f >= 0 && n > 0 && write(f, v, (size_t)n) < 0)
        perror(dst);
    if (f >= 0)
        close(f);
}

/* One join of a fresh child; returns the milliseconds it took. */
static double
join_once(const char (*dirs)[256], int self)
{
    int fds[NH], go[2];
    for (size_t i = 0; i < NH; i++) {
        char p[300];
        snprintf(p, sizeof(p), "%s/%s", dirs[i], self ? "tasks" : "cgroup.procs");
        if ((fds[i] = open(p, O_WRONLY | O_CLOEXEC)) < 0) {
            perror(p);
            exit(1);
        }
    }
    if (pipe(go) < 0)
        exit(1);
    double t = 0;
    pid_t c = fork();
    if (c == 0) {
        if (self) {
            double a = now_ms();
            for (size_t i = 0; i < NH; i++)
                if (write(fds[i], "0", 1) != 1)
                    _exit(1);
            double d = now_ms() - a;
            if (write(go[1], &d, sizeof(d)) != sizeof(d))
                _exit(1);
        } else {
            char x;
            if (read(go[0], &x, 1) < 0)
                _exit(1);
        }
        _exit(0);
    }
    if (self) {
        if (read(go[0], &t, sizeof(t)) != sizeof(t))
            t = -1;
    } else {
        char s[32];
        int n = snprintf(s, sizeof(s), "%d", (int)c);
        double a = now_ms();
        for (size_t i = 0; i < NH; i++)
            if (write(fds[i], s, (size_t)n) != n)
                perror("cgroup.procs");
        t = now_ms() - a;
        if (write(go[1], "x", 1) < 0)
            t = -1;
    }
    waitpid(c, NULL, 0);
    for (size_t i = 0; i < NH; i++)
        close(fds[i]);
    close(go[0]);
    close(go[1]);
    return t;
}

int
main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 10;
    char dirs[NH][256];
    for (size_t i = 0; i < NH; i++) {
        snprintf(dirs[i], sizeof(dirs[i]), "/sys/fs/cgroup/%s/sbxbench-%d", hier[i], (int)getpid());
        if (mkdir(dirs[i], 0755) < 0) {
            perror(dirs[i]);
            while (i-- > 0)
                rmdir(dirs[i]);
            return 1;
        }
    }
    copy_parent(dirs[6], "cpuset.cpus");
    copy_parent(dirs[6], "cpuset.mems");
    for (int self = 0; self < 2; self++) {
        double sum = 0, max = 0;
        for (int r = 0; r < runs; r++) {
            double t = join_once(dirs, self);
            sum += t;
            max = t > max ? t : max;
            usleep(50 * 1000); /* let the grace period machinery settle between moves */
        }
        printf("%-46s mean %7.3f ms  max %7.3f ms  (%d runs, %zu hierarchies)\n",
               self ? "child writes 0 to tasks (sbx's way)" : "parent writes pid to cgroup.procs",
               sum / runs, max, runs, NH);
    }
    for (size_t i = 0; i < NH; i++)
        rmdir(dirs[i]);
    return 0;
}
