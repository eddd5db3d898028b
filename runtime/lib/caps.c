/* Capability names, profiles and the child-side drop. The child half uses raw capset/prctl only:
 * it runs between clone and exec, where allocating (libcap's cap_t) is best avoided. */
#include "caps.h"
#include "seccomp.h"
#include "utils.h"

#include <linux/capability.h>
#include <strings.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

/* Canonical names, so sbx_cap_name() can return a static string; libcap only hands out
 * allocated lower-case ones. Numbers past the table fall back to libcap. */
static const char *const cap_names[] = {
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
};

int
sbx_cap_from_name(const char *name)
{
    const char *bare = name;

    if (name == NULL)
        return -1;
    if (strncasecmp(name, "CAP_", 4) == 0)
        bare = name + 4;
    if (*bare == '\0' || (*bare >= '0' && *bare <= '9'))
        return -1;
    for (size_t i = 0; i < ARRAY_SIZE(cap_names); i++)
        if (strcasecmp(cap_names[i] + 4, bare) == 0)
            return i;

    /* A capability newer than this table but known to libcap. */
    cleanup_free char *lower = xasprintf("cap_%s", bare);
    for (char *p = lower; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p += 'a' - 'A';
    cap_value_t v;
    if (cap_from_name(lower, &v) < 0 || v < 0 || v > 63)
        return -1;
    return v;
}

const char *
sbx_cap_name(int cap)
{
    static char buf[64][24];

    if (cap < 0 || cap > 63)
        return NULL;
    if ((size_t)cap < ARRAY_SIZE(cap_names))
        return cap_names[cap];
    if (buf[cap][0] == '\0')
        snprintf(buf[cap], sizeof(buf[cap]), "CAP_%d", cap);
    return buf[cap];
}

int
sbx_caps_from_json(json_t *arr, uint64_t *mask, sbx_error_t *err)
{
    size_t i;
    json_t *v;
    uint64_t m = 0;

    if (arr == NULL || json_is_null(arr)) {
        *mask = 0;
        return 0;
    }
    if (!json_is_array(arr))
        return sbx_make_error(err, EINVAL, "capabilities must be an array of names");
    json_array_foreach (arr, i, v) {
        if (!json_is_string(v))
            return sbx_make_error(err, EINVAL, "capabilities[%zu] is not a string", i);
        int c = sbx_cap_from_name(json_string_value(v));
        if (c < 0)
            return sbx_make_error(err, EINVAL, "unknown capability `%s`", json_string_value(v));
        m |= UINT64_C(1) << c;
    }
    *mask = m;
    return 0;
}

int
sbx_caps_profile_load(const char *name_or_path, uint64_t *mask, sbx_error_t *err)
{
    json_t *j = NULL;
    int ret;

    *mask = 0;
    ret = sbx_profile_load_json("capability", "profiles/caps", name_or_path, &j, err);
    if (ret < 0)
        return ret;
    if (!json_is_object(j) || !json_is_array(json_object_get(j, "capabilities"))) {
        json_decref(j);
        return sbx_make_error(err, EINVAL,
                              "capability profile `%s`: expected {\"capabilities\": [...]}",
                              name_or_path);
    }
    ret = sbx_caps_from_json(json_object_get(j, "capabilities"), mask, err);
    json_decref(j);
    if (ret < 0)
        return sbx_error_wrap(err, "capability profile `%s`", name_or_path);
    return 0;
}

int
sbx_caps_last_cap(void)
{
    static int last = -1;
    int c;

    if (last >= 0)
        return last;
    /* Probing the bounding set needs neither /proc (maybe not mounted yet) nor allocation. */
    for (c = 0; c < 64; c++)
        if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) < 0)
            break;
    last = c > 0 ? c - 1 : CAP_LAST_CAP;
    return last;
}

int
sbx_caps_drop_bounding(uint64_t bounding, int *failed)
{
    int last = sbx_caps_last_cap();

    for (int c = 0; c <= last; c++) {
        if (bounding & (UINT64_C(1) << c))
            continue;
        /* Dropped without reading first (half the syscalls); without CAP_SETPCAP a drop fails
         * even for a capability already gone, which is no failure. */
        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0) {
            int e = errno;
            if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) != 0) {
                if (failed)
                    *failed = c;
                return -e;
            }
        }
    }
    return 0;
}

int
sbx_caps_apply(const struct sbx_caps *caps, int *failed)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    int last = sbx_caps_last_cap();
    uint64_t known = last >= 63 ? UINT64_MAX : (UINT64_C(1) << (last + 1)) - 1;
    /* Bits the kernel does not know make capset fail with EINVAL; a profile may name newer caps. */
    uint64_t eff = caps->effective & known, prm = caps->permitted & known;
    uint64_t inh = caps->inheritable & known, amb = caps->ambient & known;

    if (failed)
        *failed = -1;
    memset(data, 0, sizeof(data));
    data[0].effective = (uint32_t)eff;
    data[1].effective = (uint32_t)(eff >> 32);
    data[0].permitted = (uint32_t)prm;
    data[1].permitted = (uint32_t)(prm >> 32);
    data[0].inheritable = (uint32_t)inh;
    data[1].inheritable = (uint32_t)(inh >> 32);
    if (syscall(SYS_capset, &hdr, data) < 0)
        return -errno;

    /* Ambient caps survive execve for non-root: clear whatever was inherited from the caller, then
     * raise exactly the requested ones (each must already be permitted and inheritable). */
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) {
        if (errno != EINVAL || amb != 0) /* EINVAL: kernel < 4.3, no ambient set */
            return -errno;
        return 0;
    }
    /* The kernel only raises an ambient cap that is also permitted and inheritable; OCI configs
     * (runc's default among them) list ambient caps without inheritable ones, and runc and crun
     * skip those rather than fail. */
    amb &= prm & inh;
    for (int c = 0; c <= last; c++)
        if ((amb & (UINT64_C(1) << c)) &&
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0) {
            if (failed)
                *failed = c;
            return -errno;
        }
    return 0;
}
