#include "unit.h"

#include "cgroup.h"
#include "cgroup_internal.h"
#include "utils.h"

#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

static const char hybrid_text[] = "9:name=systemd:/\n"
                                  "8:pids:/user.slice\n"
                                  "4:memory:/process_api/cf12a0063e7aabbe8ab0bf2d9a38bed0\n"
                                  "2:cpu,cpuacct:/a:b\n"
                                  "0::/\n";

UNIT_TEST(cgroup, parse_proc_cgroup)
{
    char *p = NULL;
    CU_ASSERT_EQUAL(sbx_cgroup_parse_proc_cgroup(hybrid_text, "memory", &p, NULL), 0);
    CU_ASSERT_STRING_EQUAL(p, "/process_api/cf12a0063e7aabbe8ab0bf2d9a38bed0");
    free(p);
    CU_ASSERT_EQUAL(sbx_cgroup_parse_proc_cgroup(hybrid_text, "cpuacct", &p, NULL), 0);
    CU_ASSERT_STRING_EQUAL(p, "/a:b"); /* ':' inside the path is part of it */
    free(p);
    CU_ASSERT_EQUAL(sbx_cgroup_parse_proc_cgroup(hybrid_text, "cpu", &p, NULL), 0);
    CU_ASSERT_STRING_EQUAL(p, "/a:b");
    free(p);
    CU_ASSERT_EQUAL(sbx_cgroup_parse_proc_cgroup(hybrid_text, "name=systemd", &p, NULL), 0);
    CU_ASSERT_STRING_EQUAL(p, "/");
    free(p);
    CU_ASSERT_EQUAL(sbx_cgroup_parse_proc_cgroup(hybrid_text, NULL, &p, NULL), 0);
    CU_ASSERT_STRING_EQUAL(p, "/");
    free(p);
    /* "cpu" must not match "cpuset" */
    p = NULL;
    CU_ASSERT(sbx_cgroup_parse_proc_cgroup("3:cpuset:/x\n", "cpu", &p, NULL) < 0);
    CU_ASSERT_PTR_NULL(p);
    sbx_error_t err = NULL;
    CU_ASSERT_EQUAL(sbx_cgroup_parse_proc_cgroup("1:freezer:/\n", "", &p, &err), -ENOENT - 1);
    CU_ASSERT_PTR_NOT_NULL(err);
    sbx_error_release(&err);
    /* pure v2, no trailing newline */
    CU_ASSERT_EQUAL(sbx_cgroup_parse_proc_cgroup("0::/user.slice/u.scope", NULL, &p, NULL), 0);
    CU_ASSERT_STRING_EQUAL(p, "/user.slice/u.scope");
    free(p);
    CU_ASSERT(sbx_cgroup_parse_proc_cgroup("0::\n", NULL, &p, NULL) < 0);
    CU_ASSERT(sbx_cgroup_parse_proc_cgroup("", NULL, &p, NULL) < 0);
}

UNIT_TEST(cgroup, cpu_max)
{
    int64_t m = 0;
    CU_ASSERT_EQUAL(parse_cpus("0.5", &m), 0);
    int64_t q = sbx_cgroup_millicpus_to_quota(m, 100000);
    char *s = sbx_cgroup_cpu_max_string(q, 100000);
    CU_ASSERT_STRING_EQUAL(s, "50000 100000");
    free(s);
    CU_ASSERT_EQUAL(sbx_cgroup_millicpus_to_quota(500, 0), 50000);
    CU_ASSERT_EQUAL(sbx_cgroup_millicpus_to_quota(2000, 100000), 200000);
    CU_ASSERT_EQUAL(sbx_cgroup_millicpus_to_quota(1, 100000), 1000); /* kernel minimum */
    s = sbx_cgroup_cpu_max_string(-1, 0);
    CU_ASSERT_STRING_EQUAL(s, "max 100000");
    free(s);
    s = sbx_cgroup_cpu_max_string(25000, 50000);
    CU_ASSERT_STRING_EQUAL(s, "25000 50000");
    free(s);
}

UNIT_TEST(cgroup, weight_shares)
{
    CU_ASSERT_EQUAL(sbx_cgroup_shares_to_weight(1024), 100);
    CU_ASSERT_EQUAL(sbx_cgroup_weight_to_shares(100), 1024);
    CU_ASSERT_EQUAL(sbx_cgroup_shares_to_weight(2), 1);
    CU_ASSERT_EQUAL(sbx_cgroup_shares_to_weight(262144), 10000);
    CU_ASSERT_EQUAL(sbx_cgroup_weight_to_shares(1), 10);
    CU_ASSERT_EQUAL(sbx_cgroup_weight_to_shares(10000), 102400);
    CU_ASSERT_EQUAL(sbx_cgroup_shares_to_weight(0), 1);
    CU_ASSERT_EQUAL(sbx_cgroup_weight_to_shares(1000000), 102400);
    int64_t prev = 0;
    for (int64_t w = 1; w <= 10000; w += 37) {
        int64_t s = sbx_cgroup_weight_to_shares(w);
        CU_ASSERT(s >= prev);
        prev = s;
        int64_t back = sbx_cgroup_shares_to_weight(s);
        CU_ASSERT(back >= w - 1 && back <= w);
    }
    CU_ASSERT_EQUAL(sbx_cgroup_blkio_to_io_weight(10), 1);
    CU_ASSERT_EQUAL(sbx_cgroup_blkio_to_io_weight(1000), 10000);
    CU_ASSERT_EQUAL(sbx_cgroup_blkio_to_io_weight(500), 1 + 490 * 9999 / 990);
}

static void
res_unset(struct sbx_resources *r)
{
    *r = (struct sbx_resources){-1, -1, -1, -1, -1, -1, -1, -1, -1, NULL, NULL, NULL, NULL};
}

UNIT_TEST(cgroup, open_rejects_bad_input)
{
    struct sbx_cgroup *cg = NULL;
    sbx_error_t err = NULL;
    CU_ASSERT(sbx_cgroup_open("not json", &cg, &err) < 0);
    sbx_error_release(&err);
    CU_ASSERT(sbx_cgroup_open("{\"mode\":\"unified\",\"path\":\"/x\",\"dirs\":[{\"c\":\"unified\","
                              "\"dir\":\"/etc\",\"parent\":\"/\"}]}",
                              &cg, &err) < 0);
    sbx_error_release(&err);
    CU_ASSERT(sbx_cgroup_open("{\"mode\":\"legacy\",\"path\":\"/x\",\"dirs\":[{\"c\":\"memory\","
                              "\"dir\":\"/sys/fs/cgroup/memory/../../../etc\"}]}",
                              &cg, &err) < 0);
    sbx_error_release(&err);
    CU_ASSERT_PTR_NULL(cg);
    /* a NULL ("disabled") cgroup is accepted everywhere */
    CU_ASSERT_PTR_NULL(sbx_cgroup_serialize(NULL));
    CU_ASSERT_EQUAL(sbx_cgroup_dirfd(NULL), -1);
    CU_ASSERT_EQUAL(sbx_cgroup_enter(NULL, 1, NULL), 0);
    CU_ASSERT_EQUAL(sbx_cgroup_destroy(NULL, NULL), 0);
    sbx_cgroup_free(NULL);
}

static bool
dir_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* A fresh cgroup name for the privileged tests, which skip (UNIT_SKIP) without root. */
static void
fresh_name(char name[32])
{
    strcpy(name, "unit-");
    random_hex(name + 5, 8);
}

/* The real thing on whatever layout this machine has (hybrid on the dev host, v2 in vmrun). */
UNIT_TEST(cgroup, create_limits_destroy)
{
    char name[32];
    if (geteuid() != 0)
        UNIT_SKIP("needs root (creates cgroups)");
    fresh_name(name);
    struct sbx_resources res;
    res_unset(&res);
    res.memory_limit = 64 << 20;
    res.pids_limit = 42;
    res.cpu_quota = 50000;
    res.cpu_period = 100000;
    res.cpu_weight = 200;
    struct sbx_cgroup *cg = NULL;
    sbx_error_t err = NULL;
    int r = sbx_cgroup_create(NULL, name, &res, &cg, &err);
    if (r < 0)
        fprintf(stderr, "create: %s\n", err->msg);
    CU_ASSERT_EQUAL_FATAL(r, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cg);
    enum sbx_cgroup_mode mode = sbx_cgroup_mode();
    char *ser = sbx_cgroup_serialize(cg);
    CU_ASSERT_PTR_NOT_NULL(strstr(ser, name));
    CU_ASSERT_PTR_NOT_NULL(strstr(sbx_cgroup_path(cg), name));

    /* the leaf directories, from the serialized form */
    json_t *j = json_loads(ser, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    const char *memdir = NULL, *pidsdir = NULL, *cpudir = NULL;
    size_t i;
    json_t *o;
    json_array_foreach (json_object_get(j, "dirs"), i, o) {
        const char *c = json_string_value(json_object_get(o, "c"));
        const char *d = json_string_value(json_object_get(o, "dir"));
        if (!strcmp(c, "unified"))
            memdir = pidsdir = cpudir = d;
        else if (!strcmp(c, "memory"))
            memdir = d;
        else if (!strcmp(c, "pids"))
            pidsdir = d;
        else if (!strcmp(c, "cpu"))
            cpudir = d;
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(memdir);
    CU_ASSERT_TRUE(dir_exists(memdir));
    char *v = NULL, *path;
    bool v2 = mode == SBX_CGROUP_UNIFIED;
    path = xasprintf("%s/%s", memdir, v2 ? "memory.max" : "memory.limit_in_bytes");
    CU_ASSERT_EQUAL(read_file(path, &v, NULL, NULL), 0);
    CU_ASSERT_STRING_EQUAL(v, "67108864\n");
    free(v), free(path);
    if (pidsdir) {
        path = xasprintf("%s/pids.max", pidsdir);
        CU_ASSERT_EQUAL(read_file(path, &v, NULL, NULL), 0);
        CU_ASSERT_STRING_EQUAL(v, "42\n");
        free(v), free(path);
    }
    if (cpudir) {
        path = xasprintf("%s/%s", cpudir, v2 ? "cpu.max" : "cpu.cfs_quota_us");
        CU_ASSERT_EQUAL(read_file(path, &v, NULL, NULL), 0);
        CU_ASSERT_STRING_EQUAL(v, v2 ? "50000 100000\n" : "50000\n");
        free(v), free(path);
        path = xasprintf("%s/%s", cpudir, v2 ? "cpu.weight" : "cpu.shares");
        CU_ASSERT_EQUAL(read_file(path, &v, NULL, NULL), 0);
        CU_ASSERT_STRING_EQUAL(v, v2 ? "200\n" : "2048\n");
        free(v), free(path);
    }
    if (v2)
        CU_ASSERT(sbx_cgroup_dirfd(cg) >= 0);

    /* a child in the cgroup: pids, freeze, stats, kill */
    pid_t pid = fork();
    if (pid == 0) {
        for (;;)
            pause();
    }
    CU_ASSERT_EQUAL(sbx_cgroup_enter(cg, pid, &err), 0);
    sbx_error_release(&err);

    /* reopen from the serialized form, as `sbxrun pause ID` does */
    struct sbx_cgroup *cg2 = NULL;
    CU_ASSERT_EQUAL_FATAL(sbx_cgroup_open(ser, &cg2, &err), 0);
    char *ser2 = sbx_cgroup_serialize(cg2);
    CU_ASSERT_STRING_EQUAL(ser, ser2);
    free(ser2);
    pid_t *pids = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(sbx_cgroup_pids(cg2, &pids, &n, &err), 0);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT(n == 1 && pids[0] == pid);
    free(pids);
    struct sbx_cgroup_stats st;
    CU_ASSERT_EQUAL(sbx_cgroup_freeze(cg2, true, &err), 0);
    CU_ASSERT_EQUAL(sbx_cgroup_stats(cg2, &st, &err), 0);
    CU_ASSERT_TRUE(st.frozen);
    CU_ASSERT_EQUAL(sbx_cgroup_freeze(cg2, false, &err), 0);
    CU_ASSERT_EQUAL(sbx_cgroup_stats(cg2, &st, &err), 0);
    CU_ASSERT_FALSE(st.frozen);
    CU_ASSERT(st.memory_current >= 0);
    CU_ASSERT(st.cpu_usec >= 0);
    CU_ASSERT_EQUAL(st.pids_current, 1);
    CU_ASSERT_EQUAL(st.oom_kills, 0);
    sbx_cgroup_free(cg2);

    CU_ASSERT_EQUAL(sbx_cgroup_kill(cg, SIGKILL, &err), 0);
    int status = 0;
    CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    /* limits can change on a live cgroup */
    res_unset(&res);
    res.memory_limit = 32 << 20;
    CU_ASSERT_EQUAL(sbx_cgroup_update(cg, &res, &err), 0);
    path = xasprintf("%s/%s", memdir, v2 ? "memory.max" : "memory.limit_in_bytes");
    CU_ASSERT_EQUAL(read_file(path, &v, NULL, NULL), 0);
    CU_ASSERT_STRING_EQUAL(v, "33554432\n");
    free(v), free(path);

    char *leaf = xstrdup(memdir);
    json_decref(j);
    CU_ASSERT_EQUAL(sbx_cgroup_destroy(cg, &err), 0);
    if (err)
        fprintf(stderr, "destroy: %s\n", err->msg);
    sbx_error_release(&err);
    sbx_cgroup_free(cg);
    CU_ASSERT_FALSE(dir_exists(leaf));
    free(leaf);
    free(ser);
}

UNIT_TEST(cgroup, create_errors)
{
    struct sbx_cgroup *cg = NULL;
    sbx_error_t err = NULL;
    struct sbx_resources res;
    res_unset(&res);
    CU_ASSERT(sbx_cgroup_create(NULL, "../x", &res, &cg, &err) < 0);
    sbx_error_release(&err);
    CU_ASSERT(sbx_cgroup_create("a/../../b", "x", &res, &cg, &err) < 0);
    sbx_error_release(&err);
    res.memory_limit = 100 << 20;
    res.memory_swap = 50 << 20;
    CU_ASSERT(sbx_cgroup_create(NULL, "x", &res, &cg, &err) < 0);
    /* Named by what it is, not by a CLI option (apid's users send resourceLimits instead). */
    CU_ASSERT(sbx_error_is(err, SBX_ERR_LIMIT));
    CU_ASSERT(err && strstr(err->msg, "memory+swap limit") && !strstr(err->msg, "--"));
    sbx_error_release(&err);
    CU_ASSERT_PTR_NULL(cg);
}

/* A process joins by itself (v1: "0" into `tasks` through descriptors its creator opened, also
 * from inside a new user namespace, as the sandbox's first process does; v2: no descriptors, the
 * sandbox is born in its cgroup instead). */
UNIT_TEST(cgroup, self_join)
{
    char name[32];
    if (geteuid() != 0)
        UNIT_SKIP("needs root (creates cgroups)");
    fresh_name(name);
    struct sbx_resources res;
    res_unset(&res);
    struct sbx_cgroup *cg = NULL;
    sbx_error_t err = NULL;
    CU_ASSERT_EQUAL_FATAL(sbx_cgroup_create(NULL, name, &res, &cg, &err), 0);
    int fds[8];
    int n = sbx_cgroup_self_join_fds(cg, fds, 8, &err);
    bool v2 = sbx_cgroup_mode() == SBX_CGROUP_UNIFIED;
    CU_ASSERT(v2 ? n == 0 : n >= 3);
    /* too few slots: an error, nothing left open */
    if (!v2) {
        int few[2];
        CU_ASSERT(sbx_cgroup_self_join_fds(cg, few, 2, &err) < 0);
        CU_ASSERT(err && strstr(err->msg, "tasks") != NULL);
        sbx_error_release(&err);
    }
    int pipefd[2];
    CU_ASSERT_EQUAL_FATAL(pipe(pipefd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(pipefd[0]);
        int r = n > 0 ? (unshare(CLONE_NEWUSER) < 0 ? -errno : sbx_cgroup_join_self(fds, (size_t)n))
                      : sbx_cgroup_enter_self(cg, NULL);
        char c = r == 0 ? 'y' : 'n';
        if (write(pipefd[1], &c, 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    close(pipefd[1]);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    char c = 0;
    CU_ASSERT_EQUAL(read(pipefd[0], &c, 1), 1);
    close(pipefd[0]);
    CU_ASSERT_EQUAL(c, 'y');
    pid_t *pids = NULL;
    size_t np = 0;
    CU_ASSERT_EQUAL(sbx_cgroup_pids(cg, &pids, &np, &err), 0);
    CU_ASSERT(np == 1 && pids[0] == pid);
    free(pids);
    /* the child is in every hierarchy's leaf, not only the one listed */
    char *path = xasprintf("/proc/%d/cgroup", (int)pid), *txt = NULL;
    CU_ASSERT_EQUAL(read_file(path, &txt, NULL, NULL), 0);
    int hits = 0;
    for (char *p = txt; p && (p = strstr(p, name)); p++)
        hits++;
    CU_ASSERT(v2 ? hits == 1 : hits == n);
    free(txt), free(path);
    kill(pid, SIGKILL); /* also when it never joined */
    waitpid(pid, NULL, 0);
    CU_ASSERT_EQUAL(sbx_cgroup_destroy(cg, &err), 0);
    sbx_error_release(&err);
    sbx_cgroup_free(cg);
}
