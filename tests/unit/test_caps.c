#include "caps.h"
#include "unit.h"
#include "utils.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/wait.h>

#define BIT(c) (UINT64_C(1) << (c))

UNIT_TEST(caps, name_parsing)
{
    CU_ASSERT_EQUAL(sbx_cap_from_name("CAP_CHOWN"), CAP_CHOWN);
    CU_ASSERT_EQUAL(sbx_cap_from_name("CAP_NET_RAW"), CAP_NET_RAW);
    CU_ASSERT_EQUAL(sbx_cap_from_name("NET_RAW"), CAP_NET_RAW);
    CU_ASSERT_EQUAL(sbx_cap_from_name("net_raw"), CAP_NET_RAW);
    CU_ASSERT_EQUAL(sbx_cap_from_name("cap_sys_admin"), CAP_SYS_ADMIN);
    CU_ASSERT_EQUAL(sbx_cap_from_name("Cap_Checkpoint_Restore"), 40);
    CU_ASSERT_EQUAL(sbx_cap_from_name("CAP_NOPE"), -1);
    CU_ASSERT_EQUAL(sbx_cap_from_name("CAP_"), -1);
    CU_ASSERT_EQUAL(sbx_cap_from_name(""), -1);
    CU_ASSERT_EQUAL(sbx_cap_from_name("5"), -1);
    CU_ASSERT_EQUAL(sbx_cap_from_name(NULL), -1);
    CU_ASSERT_STRING_EQUAL(sbx_cap_name(CAP_NET_ADMIN), "CAP_NET_ADMIN");
    CU_ASSERT_STRING_EQUAL(sbx_cap_name(0), "CAP_CHOWN");
    CU_ASSERT_PTR_NULL(sbx_cap_name(-1));
    CU_ASSERT_PTR_NULL(sbx_cap_name(64));
    for (int c = 0; c <= 40; c++)
        CU_ASSERT_EQUAL(sbx_cap_from_name(sbx_cap_name(c)), c);
}

UNIT_TEST(caps, default_profile)
{
    sbx_error_t err = NULL;
    uint64_t m = 0;
    CU_ASSERT_EQUAL_FATAL(sbx_caps_profile_load("default", &m, &err), 0);
    uint64_t want = BIT(CAP_CHOWN) | BIT(CAP_DAC_OVERRIDE) | BIT(CAP_FSETID) | BIT(CAP_FOWNER) |
                    BIT(CAP_MKNOD) | BIT(CAP_NET_RAW) | BIT(CAP_SETGID) | BIT(CAP_SETUID) |
                    BIT(CAP_SETFCAP) | BIT(CAP_SETPCAP) | BIT(CAP_NET_BIND_SERVICE) |
                    BIT(CAP_SYS_CHROOT) | BIT(CAP_KILL) | BIT(CAP_AUDIT_WRITE);
    CU_ASSERT_EQUAL(m, want);
    CU_ASSERT_EQUAL(m, UINT64_C(0xa80425fb));
    CU_ASSERT_EQUAL_FATAL(sbx_caps_profile_load("none", &m, &err), 0);
    CU_ASSERT_EQUAL(m, 0);
}

UNIT_TEST(caps, unknown_profile_and_cap)
{
    sbx_error_t err = NULL;
    uint64_t m;
    CU_ASSERT(sbx_caps_profile_load("nosuchcaps", &m, &err) < 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err);
    CU_ASSERT_PTR_NOT_NULL(strstr(err->msg, "nosuchcaps"));
    sbx_error_release(&err);

    json_t *arr = json_pack("[s,s]", "CAP_KILL", "CAP_FLY");
    CU_ASSERT(sbx_caps_from_json(arr, &m, &err) < 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err);
    CU_ASSERT_PTR_NOT_NULL(strstr(err->msg, "CAP_FLY"));
    sbx_error_release(&err);
    json_decref(arr);

    arr = json_pack("[s,i]", "CAP_KILL", 3);
    CU_ASSERT(sbx_caps_from_json(arr, &m, &err) < 0);
    sbx_error_release(&err);
    json_decref(arr);

    arr = json_pack("[s,s]", "KILL", "cap_net_admin");
    CU_ASSERT_EQUAL(sbx_caps_from_json(arr, &m, &err), 0);
    CU_ASSERT_EQUAL(m, BIT(CAP_KILL) | BIT(CAP_NET_ADMIN));
    json_decref(arr);
}

UNIT_TEST(caps, profile_by_path)
{
    char path[] = "/tmp/sbx-unit-caps-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    const char *p = "{\"capabilities\":[\"CAP_SYS_PTRACE\"]}";
    CU_ASSERT(write(fd, p, strlen(p)) == (ssize_t)strlen(p));
    close(fd);
    sbx_error_t err = NULL;
    uint64_t m = 0;
    CU_ASSERT_EQUAL(sbx_caps_profile_load(path, &m, &err), 0);
    CU_ASSERT_EQUAL(m, BIT(CAP_SYS_PTRACE));
    fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    p = "{\"caps\":[]}";
    CU_ASSERT(write(fd, p, strlen(p)) == (ssize_t)strlen(p));
    close(fd);
    CU_ASSERT(sbx_caps_profile_load(path, &m, &err) < 0);
    sbx_error_release(&err);
    unlink(path);
}

UNIT_TEST(caps, last_cap)
{
    int last = sbx_caps_last_cap();
    CU_ASSERT(last >= CAP_AUDIT_READ && last < 64);
    char *s = NULL;
    if (read_file("/proc/sys/kernel/cap_last_cap", &s, NULL, NULL) == 0) {
        CU_ASSERT_EQUAL(last, atoi(s));
        free(s);
    }
}

/* Needs root: drop everything but two caps in a child and read the result back. */
static int
apply_in_child(void)
{
    struct sbx_caps c = {.bounding = BIT(CAP_KILL) | BIT(CAP_CHOWN),
                         .effective = BIT(CAP_KILL),
                         .permitted = BIT(CAP_KILL) | BIT(CAP_CHOWN),
                         .inheritable = BIT(CAP_CHOWN),
                         .ambient = BIT(CAP_CHOWN)};
    if (sbx_caps_drop_bounding(c.bounding, NULL) < 0)
        return 2;
    if (sbx_caps_apply(&c, NULL) < 0)
        return 3;
    char *s = NULL;
    if (read_file("/proc/self/status", &s, NULL, NULL) < 0)
        return 4;
    int ok = strstr(s, "CapEff:\t0000000000000020") && strstr(s, "CapPrm:\t0000000000000021") &&
             strstr(s, "CapInh:\t0000000000000001") && strstr(s, "CapBnd:\t0000000000000021") &&
             strstr(s, "CapAmb:\t0000000000000001");
    free(s);
    return ok ? 0 : 5;
}

UNIT_TEST(caps, apply_as_root)
{
    if (geteuid() != 0)
        UNIT_SKIP("needs root (drops capabilities it must have first)");
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0)
        _exit(apply_in_child());
    int st;
    waitpid(pid, &st, 0);
    CU_ASSERT(WIFEXITED(st));
    CU_ASSERT_EQUAL(WEXITSTATUS(st), 0);
}
