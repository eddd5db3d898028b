/* OCI linux.sysctl. A sysctl either belongs to a namespace (the IPC limits, net.* of a network
 * namespace, the UTS names) or is global to the kernel: writing a global one from a sandbox
 * would change the host (vm.swappiness, kernel.core_pattern: a host-side root shell). runc's
 * validateSysctl and crun refuse the global ones and the namespaced ones of a namespace shared
 * with the host, before anything is created; so does sbx, with the reason in the message. */
#include "sysctl.h"

#include "utils.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ipc/ipc_sysctl.c: the parameters of an IPC namespace (the *_next_id ones are there for
 * checkpoint/restore). fs.mqueue.* is the POSIX queues' part of it. */
static const char *const ipc_sysctls[] = {
    "kernel.msgmax", "kernel.msgmnb",      "kernel.msgmni",          "kernel.msg_next_id",
    "kernel.sem",    "kernel.sem_next_id", "kernel.shmall",          "kernel.shmmax",
    "kernel.shmmni", "kernel.shm_next_id", "kernel.shm_rmid_forced",
};

int
sbx_sysctl_namespace(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(ipc_sysctls); i++)
        if (strcmp(name, ipc_sysctls[i]) == 0)
            return SBX_NS_IPC;
    if (strncmp(name, "fs.mqueue.", 10) == 0)
        return SBX_NS_IPC;
    if (strncmp(name, "net.", 4) == 0)
        return SBX_NS_NET;
    if (strcmp(name, "kernel.hostname") == 0 || strcmp(name, "kernel.domainname") == 0)
        return SBX_NS_UTS;
    return -1;
}

/* Dot-separated, each component non-empty: no "..", no leading or trailing dot, and no '/'
 * (it would be a path separator below /proc/sys) nor control characters or spaces. */
static bool
valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > SBX_SYSCTL_NAME_MAX || name[0] == '.' || name[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch == '/' || ch <= ' ' || ch == 0x7f || (ch == '.' && name[i + 1] == '.'))
            return false;
    }
    return true;
}

int
sbx_sysctl_check(const char *name, const char *value, const bool own[SBX_NS_COUNT],
                 const char *hostname, sbx_error_t *err)
{
    static const char *const what[SBX_NS_COUNT] = {
        [SBX_NS_IPC] = "IPC", [SBX_NS_NET] = "network", [SBX_NS_UTS] = "UTS"};
    if (!valid_name(name))
        return sbx_make_error(err, 0,
                              "sysctl `%.64s`: not a valid name (dot-separated, "
                              "no empty component, no '/')",
                              name);
    if (value == NULL)
        return sbx_make_error(err, 0, "sysctl `%s`: value must be a string", name);
    if (strlen(value) > SBX_SYSCTL_VALUE_MAX)
        return sbx_make_error(err, 0, "sysctl `%s`: value longer than %d bytes", name,
                              SBX_SYSCTL_VALUE_MAX);
    int t = sbx_sysctl_namespace(name);
    if (t < 0)
        return sbx_make_error(err, 0,
                              "sysctl `%s` is not namespaced: setting it would change "
                              "the host",
                              name);
    if (!own[t])
        return sbx_make_error(err, 0,
                              "sysctl `%s` needs the sandbox's own %s namespace: "
                              "it shares the host's",
                              name, what[t]);
    /* runc refuses kernel.hostname outright; one that only repeats the hostname is harmless. */
    if (strcmp(name, "kernel.hostname") == 0 && hostname && strcmp(hostname, value) != 0)
        return sbx_make_error(err, 0,
                              "sysctl `kernel.hostname` (`%s`) conflicts with the "
                              "config's hostname `%s`",
                              value, hostname);
    return 0;
}

/* "Own" as runc means it: not the namespace of the runtime itself (a path may name the host's). */
static bool
owns(const sbx_spec_t *s, int t, const char *self)
{
    if (!s->ns_enabled[t])
        return false;
    if (!s->ns_path[t])
        return true;
    struct stat a, b;
    if (stat(s->ns_path[t], &a) < 0 || stat(self, &b) < 0)
        return false;
    return a.st_dev != b.st_dev || a.st_ino != b.st_ino;
}

int
sbx_sysctl_check_spec(const sbx_spec_t *s, sbx_error_t *err)
{
    if (s->sysctl == NULL)
        return 0;
    if (!json_is_object(s->sysctl))
        return sbx_make_error(err, 0, "linux.sysctl must be an object");
    bool own[SBX_NS_COUNT] = {false};
    own[SBX_NS_IPC] = owns(s, SBX_NS_IPC, "/proc/self/ns/ipc");
    own[SBX_NS_NET] = owns(s, SBX_NS_NET, "/proc/self/ns/net");
    own[SBX_NS_UTS] = owns(s, SBX_NS_UTS, "/proc/self/ns/uts");
    const char *key;
    json_t *v;
    json_object_foreach (s->sysctl, key, v) {
        int r = sbx_sysctl_check(key, json_string_value(v), own, s->hostname, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int
sbx_sysctl_write(int procsys, const char *name, const char *value)
{
    char path[SBX_SYSCTL_NAME_MAX + 1];
    size_t n = strlen(name);
    if (!valid_name(name) || n >= sizeof(path))
        return -EINVAL;
    for (size_t i = 0; i <= n; i++)
        path[i] = name[i] == '.' ? '/' : name[i];
    /* /proc/sys has no symlinks; one met here would be a lie about what is written. */
    struct open_how how = {.flags = O_WRONLY | O_CLOEXEC,
                           .resolve =
                               RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
    int fd = openat2_retry(procsys, path, &how);
    if (fd < 0)
        return -errno;
    ssize_t w = safe_write(fd, value, strlen(value));
    int e = errno;
    close(fd);
    return w < 0 ? -e : 0;
}
