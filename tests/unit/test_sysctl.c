#include "sysctl.h"
#include "unit.h"
#include "utils.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* "ok", or the error message sbx_sysctl_check gives. */
static char *
check(const char *name, const char *value, bool ipc, bool net, bool uts, const char *hostname)
{
    bool own[SBX_NS_COUNT] = {false};
    own[SBX_NS_IPC] = ipc;
    own[SBX_NS_NET] = net;
    own[SBX_NS_UTS] = uts;
    sbx_error_t err = NULL;
    if (sbx_sysctl_check(name, value, own, hostname, &err) == 0)
        return xstrdup("ok");
    char *m = xstrdup(err->msg);
    sbx_error_release(&err);
    return m;
}

#define CHECK(name, value, ipc, net, uts, host, want)                                              \
    do {                                                                                           \
        char *got = check(name, value, ipc, net, uts, host);                                       \
        CU_ASSERT_STRING_EQUAL(got, want);                                                         \
        free(got);                                                                                 \
    } while (0)
#define CHECK_MATCH(name, value, ipc, net, uts, host, part)                                        \
    do {                                                                                           \
        char *got = check(name, value, ipc, net, uts, host);                                       \
        if (strstr(got, part) == NULL)                                                             \
            fprintf(stderr, "\n  %s: `%s` lacks `%s`\n", name, got, part);                         \
        CU_ASSERT_PTR_NOT_NULL(strstr(got, part));                                                 \
        free(got);                                                                                 \
    } while (0)

UNIT_TEST(sysctl, classification)
{
    const char *ipc[] = {"kernel.msgmax",    "kernel.msgmnb",          "kernel.msgmni",
                         "kernel.sem",       "kernel.shmall",          "kernel.shmmax",
                         "kernel.shmmni",    "kernel.shm_rmid_forced", "fs.mqueue.queues_max",
                         "fs.mqueue.msg_max"};
    for (size_t i = 0; i < ARRAY_SIZE(ipc); i++)
        CU_ASSERT_EQUAL(sbx_sysctl_namespace(ipc[i]), SBX_NS_IPC);
    CU_ASSERT_EQUAL(sbx_sysctl_namespace("net.ipv4.ping_group_range"), SBX_NS_NET);
    CU_ASSERT_EQUAL(sbx_sysctl_namespace("net.core.somaxconn"), SBX_NS_NET);
    CU_ASSERT_EQUAL(sbx_sysctl_namespace("kernel.hostname"), SBX_NS_UTS);
    CU_ASSERT_EQUAL(sbx_sysctl_namespace("kernel.domainname"), SBX_NS_UTS);
    /* Global: they would change the host. Prefixes of namespaced names are not namespaced. */
    const char *global[] = {"vm.swappiness",  "kernel.core_pattern", "kernel.msgmax2",
                            "kernel.shm",     "kernel.modprobe",     "fs.file-max",
                            "fs.mqueue",      "network.x",           "net",
                            "kernel.pid_max", "kernel.hostnamex"};
    for (size_t i = 0; i < ARRAY_SIZE(global); i++)
        CU_ASSERT_EQUAL(sbx_sysctl_namespace(global[i]), -1);
}

UNIT_TEST(sysctl, namespaced_ones_need_their_namespace)
{
    CHECK("kernel.msgmax", "65536", true, false, false, NULL, "ok");
    CHECK("fs.mqueue.msg_max", "20", true, false, false, NULL, "ok");
    CHECK("net.ipv4.ping_group_range", "0 0", false, true, false, NULL, "ok");
    CHECK("kernel.domainname", "example", false, false, true, NULL, "ok");
    CHECK_MATCH("kernel.shmmax", "1", false, true, true, NULL,
                "sysctl `kernel.shmmax` needs the sandbox's own IPC namespace: "
                "it shares the host's");
    CHECK_MATCH("net.ipv4.ip_forward", "1", true, false, true, NULL,
                "needs the sandbox's own network namespace: it shares the host's");
    CHECK_MATCH("kernel.domainname", "x", true, true, false, NULL,
                "needs the sandbox's own UTS namespace");
    /* kernel.hostname may only repeat the config's hostname. */
    CHECK("kernel.hostname", "h1", false, false, true, NULL, "ok");
    CHECK("kernel.hostname", "h1", false, false, true, "h1", "ok");
    CHECK_MATCH("kernel.hostname", "h2", false, false, true, "h1", "conflicts with the config's");
}

UNIT_TEST(sysctl, global_ones_are_refused)
{
    CHECK("vm.swappiness", "10", true, true, true, NULL,
          "sysctl `vm.swappiness` is not namespaced: setting it would change the host");
    CHECK_MATCH("kernel.core_pattern", "|/tmp/x", true, true, true, NULL, "is not namespaced");
    CHECK_MATCH("kernel.randomize_va_space", "0", true, true, true, NULL, "is not namespaced");
}

UNIT_TEST(sysctl, names_and_values_are_bounded)
{
    const char *bad[] = {"",           ".net.ipv4.ip_forward", "net.ipv4.ip_forward.",
                         "net..ipv4",  "net.ipv4/../../x",     "net.ipv4.conf.a/b.x",
                         "net.ipv4 x", "net.ipv4\nx"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        CHECK_MATCH(bad[i], "1", true, true, true, NULL, "not a valid name");
    char name[300];
    memset(name, 'a', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    memcpy(name, "net.", 4);
    CHECK_MATCH(name, "1", true, true, true, NULL, "not a valid name");
    CHECK_MATCH("net.ipv4.ip_forward", NULL, true, true, true, NULL, "value must be a string");
    char *big = xmalloc0(SBX_SYSCTL_VALUE_MAX + 2);
    memset(big, '1', SBX_SYSCTL_VALUE_MAX + 1);
    CHECK_MATCH("net.ipv4.ip_forward", big, true, true, true, NULL, "value longer than");
    free(big);
}

/* The write resolves beneath the directory given, and never through a symlink: a stand-in tree
 * (sysctl names map to files by '.' -> '/'). */
UNIT_TEST(sysctl, write_stays_beneath_and_follows_no_symlink)
{
    char dir[] = "/tmp/sbx-unit-sysctl.XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    char p[256];
    snprintf(p, sizeof(p), "%s/net", dir);
    CU_ASSERT_EQUAL(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/net/x", dir);
    CU_ASSERT_EQUAL(write_file(p, "0", 1, NULL), 0);
    snprintf(p, sizeof(p), "%s/outside", dir);
    CU_ASSERT_EQUAL(write_file(p, "0", 1, NULL), 0);
    snprintf(p, sizeof(p), "%s/net/link", dir);
    CU_ASSERT_EQUAL(symlink("x", p), 0);
    snprintf(p, sizeof(p), "%s/net", dir);
    int fd = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(sbx_sysctl_write(fd, "x", "42"), 0);
    CU_ASSERT_EQUAL(sbx_sysctl_write(fd, "link", "43"), -ELOOP);
    CU_ASSERT_EQUAL(sbx_sysctl_write(fd, "..outside", "44"), -EINVAL);
    CU_ASSERT_EQUAL(sbx_sysctl_write(fd, "a/../../outside", "45"), -EINVAL);
    char *s = NULL;
    snprintf(p, sizeof(p), "%s/net/x", dir);
    CU_ASSERT_EQUAL(read_file(p, &s, NULL, NULL), 0);
    CU_ASSERT_STRING_EQUAL(s ? s : "", "42");
    free(s);
    s = NULL;
    snprintf(p, sizeof(p), "%s/outside", dir);
    CU_ASSERT_EQUAL(read_file(p, &s, NULL, NULL), 0);
    CU_ASSERT_STRING_EQUAL(s ? s : "", "0");
    free(s);
    close(fd);
    rm_rf(dir, NULL);
}
