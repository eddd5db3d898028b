#include "spec.h"
#include "volume.h"
#include "seccomp.h"
#include "utils.h"

#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>

const struct sbx_ns_info sbx_ns_info[SBX_NS_COUNT] = {
    [SBX_NS_USER] = {"user", "user", CLONE_NEWUSER},
    [SBX_NS_PID] = {"pid", "pid", CLONE_NEWPID},
    [SBX_NS_MOUNT] = {"mount", "mnt", CLONE_NEWNS},
    [SBX_NS_NET] = {"network", "net", CLONE_NEWNET},
    [SBX_NS_UTS] = {"uts", "uts", CLONE_NEWUTS},
    [SBX_NS_IPC] = {"ipc", "ipc", CLONE_NEWIPC},
    [SBX_NS_CGROUP] = {"cgroup", "cgroup", CLONE_NEWCGROUP},
    [SBX_NS_TIME] = {"time", "time", 0x80 /* CLONE_NEWTIME, not in Debian 12's headers */},
};

const enum sbx_ns_type sbx_ns_join_order[SBX_NS_JOIN_COUNT] = {
    SBX_NS_USER, SBX_NS_IPC, SBX_NS_UTS, SBX_NS_NET, SBX_NS_CGROUP, SBX_NS_PID, SBX_NS_MOUNT,
};

static const struct {
    const char *name;
    int resource;
} rlimit_names[] = {
    {"RLIMIT_AS", RLIMIT_AS},
    {"RLIMIT_CORE", RLIMIT_CORE},
    {"RLIMIT_CPU", RLIMIT_CPU},
    {"RLIMIT_DATA", RLIMIT_DATA},
    {"RLIMIT_FSIZE", RLIMIT_FSIZE},
    {"RLIMIT_LOCKS", RLIMIT_LOCKS},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},
    {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
    {"RLIMIT_NICE", RLIMIT_NICE},
    {"RLIMIT_NOFILE", RLIMIT_NOFILE},
    {"RLIMIT_NPROC", RLIMIT_NPROC},
    {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},
    {"RLIMIT_RTTIME", RLIMIT_RTTIME},
    {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    {"RLIMIT_STACK", RLIMIT_STACK},
};

int
sbx_rlimit_from_name(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(rlimit_names); i++)
        if (strcasecmp(name, rlimit_names[i].name) == 0 ||
            strcasecmp(name, rlimit_names[i].name + 7) == 0)
            return rlimit_names[i].resource;
    return -1;
}

const char *
sbx_rlimit_name(int resource)
{
    for (size_t i = 0; i < ARRAY_SIZE(rlimit_names); i++)
        if (rlimit_names[i].resource == resource)
            return rlimit_names[i].name;
    return "RLIMIT_?";
}

static const struct {
    const char *name;
    bool clear;
    unsigned long flag;
} mount_flags[] = {
    {"ro", false, MS_RDONLY},
    {"rw", true, MS_RDONLY},
    {"nosuid", false, MS_NOSUID},
    {"suid", true, MS_NOSUID},
    {"nodev", false, MS_NODEV},
    {"dev", true, MS_NODEV},
    {"noexec", false, MS_NOEXEC},
    {"exec", true, MS_NOEXEC},
    {"sync", false, MS_SYNCHRONOUS},
    {"async", true, MS_SYNCHRONOUS},
    {"dirsync", false, MS_DIRSYNC},
    {"remount", false, MS_REMOUNT},
    {"mand", false, MS_MANDLOCK},
    {"nomand", true, MS_MANDLOCK},
    {"atime", true, MS_NOATIME},
    {"noatime", false, MS_NOATIME},
    {"diratime", true, MS_NODIRATIME},
    {"nodiratime", false, MS_NODIRATIME},
    {"relatime", false, MS_RELATIME},
    {"norelatime", true, MS_RELATIME},
    {"strictatime", false, MS_STRICTATIME},
    {"nostrictatime", true, MS_STRICTATIME},
    {"silent", false, MS_SILENT},
    {"loud", true, MS_SILENT},
    {"defaults", false, 0},
};

static const struct {
    const char *name;
    unsigned long flag;
} propagation_flags[] = {
    {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
    {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
    {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
    {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
};

int
sbx_parse_mount_options(json_t *options, struct sbx_mount *m, sbx_error_t *err)
{
    size_t i;
    json_t *v;
    cleanup_free char *data = NULL;

    if (options && !json_is_array(options))
        return sbx_make_error(err, 0, "mount `%s`: options must be an array", m->destination);
    json_array_foreach (options, i, v) {
        const char *o = json_string_value(v);
        if (o == NULL)
            return sbx_make_error(err, 0, "mount `%s`: option %zu is not a string", m->destination,
                                  i);
        bool known = false;
        for (size_t k = 0; k < ARRAY_SIZE(mount_flags); k++) {
            if (strcmp(o, mount_flags[k].name) == 0) {
                if (mount_flags[k].clear) {
                    m->clear |= mount_flags[k].flag;
                    m->flags &= ~mount_flags[k].flag;
                } else {
                    m->flags |= mount_flags[k].flag;
                    m->clear &= ~mount_flags[k].flag;
                }
                known = true;
                break;
            }
        }
        if (!known)
            for (size_t k = 0; k < ARRAY_SIZE(propagation_flags); k++)
                if (strcmp(o, propagation_flags[k].name) == 0) {
                    m->propagation = propagation_flags[k].flag;
                    known = true;
                    break;
                }
        if (!known && (strcmp(o, "bind") == 0 || strcmp(o, "rbind") == 0)) {
            m->bind = true;
            m->recursive = o[0] == 'r';
            known = true;
        }
        if (!known && strncmp(o, SBX_BENEATH_OPT, strlen(SBX_BENEATH_OPT)) == 0) {
            const char *root = o + strlen(SBX_BENEATH_OPT);
            if (root[0] != '/')
                return sbx_make_error(err, 0, "mount `%s`: %s needs an absolute path",
                                      m->destination, SBX_BENEATH_OPT);
            free(m->beneath);
            m->beneath = xstrdup(root);
            continue;
        }
        if (!known && (strcmp(o, "tmpcopyup") == 0 || strncmp(o, "idmap", 5) == 0 ||
                       strncmp(o, "rro", 3) == 0))
            known = true; /* accepted, not implemented: harmless to ignore */
        if (known)
            continue;
        char *nd = data ? xasprintf("%s,%s", data, o) : xstrdup(o);
        free(data);
        data = nd;
    }
    m->data = steal_pointer(&data);
    return 0;
}

static int
parse_strv(json_t *arr, const char *what, char ***out, sbx_error_t *err)
{
    size_t i;
    json_t *v;
    char **r = xmalloc0(sizeof(char *));
    if (arr && !json_is_array(arr)) {
        free(r);
        return sbx_make_error(err, 0, "config: `%s` must be an array of strings", what);
    }
    json_array_foreach (arr, i, v) {
        if (!json_is_string(v)) {
            strv_free(r);
            return sbx_make_error(err, 0, "config: `%s[%zu]` must be a string", what, i);
        }
        strv_append(&r, json_string_value(v));
    }
    *out = r;
    return 0;
}

static int
parse_idmaps(json_t *arr, const char *what, struct sbx_idmap **out, size_t *n, sbx_error_t *err)
{
    size_t i;
    json_t *v;
    if (arr == NULL)
        return 0;
    if (!json_is_array(arr))
        return sbx_make_error(err, 0, "config: `%s` must be an array", what);
    *out = xmalloc0(sizeof(**out) * (json_array_size(arr) + 1));
    json_array_foreach (arr, i, v) {
        json_t *c = json_object_get(v, "containerID"), *h = json_object_get(v, "hostID"),
               *s = json_object_get(v, "size");
        if (!json_is_integer(c) || !json_is_integer(h) || !json_is_integer(s) ||
            json_integer_value(s) <= 0 || json_integer_value(c) < 0 || json_integer_value(h) < 0 ||
            json_integer_value(c) > UINT32_MAX || json_integer_value(h) > UINT32_MAX ||
            json_integer_value(s) > UINT32_MAX)
            return sbx_make_error(err, 0, "config: `%s[%zu]` needs containerID, hostID, size >= 1",
                                  what, i);
        (*out)[i] =
            (struct sbx_idmap){json_integer_value(c), json_integer_value(h), json_integer_value(s)};
    }
    *n = json_array_size(arr);
    return 0;
}

static int
parse_hooks(json_t *arr, const char *what, struct sbx_hook **out, size_t *n, sbx_error_t *err)
{
    size_t i;
    json_t *v;
    if (arr == NULL)
        return 0;
    if (!json_is_array(arr))
        return sbx_make_error(err, 0, "config: `hooks.%s` must be an array", what);
    *out = xmalloc0(sizeof(**out) * (json_array_size(arr) + 1));
    *n = json_array_size(arr);
    json_array_foreach (arr, i, v) {
        const char *path = json_string_value(json_object_get(v, "path"));
        if (path == NULL || path[0] != '/')
            return sbx_make_error(err, 0, "config: `hooks.%s[%zu].path` must be absolute", what, i);
        (*out)[i].path = xstrdup(path);
        int r = parse_strv(json_object_get(v, "args"), "hooks.args", &(*out)[i].args, err);
        if (r < 0)
            return r;
        r = parse_strv(json_object_get(v, "env"), "hooks.env", &(*out)[i].env, err);
        if (r < 0)
            return r;
        (*out)[i].timeout = json_integer_value(json_object_get(v, "timeout"));
    }
    return 0;
}

static int64_t
jint(json_t *o, const char *k, int64_t dflt)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? json_integer_value(v) : dflt;
}

static int
parse_caps_set(json_t *caps, const char *k, uint64_t *mask, sbx_error_t *err)
{
    size_t i;
    json_t *v;
    json_t *arr = json_object_get(caps, k);
    *mask = 0;
    if (arr == NULL)
        return 0;
    if (!json_is_array(arr))
        return sbx_make_error(err, 0, "config: `process.capabilities.%s` must be an array", k);
    json_array_foreach (arr, i, v) {
        const char *name = json_string_value(v);
        int cap = name ? sbx_cap_from_name(name) : -1;
        if (cap < 0)
            return sbx_make_error(err, 0, "config: unknown capability `%s` in %s",
                                  name ? name : "(not a string)", k);
        *mask |= 1ULL << cap;
    }
    return 0;
}

static int
parse_process(sbx_spec_t *s, json_t *p, sbx_error_t *err)
{
    int r;
    if (p == NULL)
        return 0;
    s->has_process = true;
    r = parse_strv(json_object_get(p, "args"), "process.args", &s->args, err);
    if (r < 0)
        return r;
    r = parse_strv(json_object_get(p, "env"), "process.env", &s->env, err);
    if (r < 0)
        return r;
    const char *cwd = json_string_value(json_object_get(p, "cwd"));
    s->cwd = xstrdup(cwd ? cwd : "/");
    if (s->cwd[0] != '/')
        return sbx_make_error(err, 0, "config: `process.cwd` must be absolute, got `%s`", s->cwd);
    json_t *user = json_object_get(p, "user");
    s->uid = jint(user, "uid", 0);
    s->gid = jint(user, "gid", 0);
    s->umask =
        json_is_integer(json_object_get(user, "umask")) ? jint(user, "umask", 022) : (mode_t)-1;
    json_t *ag = json_object_get(user, "additionalGids");
    if (json_is_array(ag) && json_array_size(ag)) {
        size_t i;
        json_t *v;
        s->additional_gids = xmalloc0(sizeof(gid_t) * json_array_size(ag));
        json_array_foreach (ag, i, v)
            s->additional_gids[i] = json_integer_value(v);
        s->n_additional_gids = json_array_size(ag);
    }
    s->terminal = json_is_true(json_object_get(p, "terminal"));
    s->no_new_privileges = json_is_true(json_object_get(p, "noNewPrivileges"));
    if (json_is_integer(json_object_get(p, "oomScoreAdj"))) {
        s->has_oom_score_adj = true;
        s->oom_score_adj = jint(p, "oomScoreAdj", 0);
    }
    json_t *caps = json_object_get(p, "capabilities");
    if ((r = parse_caps_set(caps, "bounding", &s->caps.bounding, err)) < 0 ||
        (r = parse_caps_set(caps, "effective", &s->caps.effective, err)) < 0 ||
        (r = parse_caps_set(caps, "permitted", &s->caps.permitted, err)) < 0 ||
        (r = parse_caps_set(caps, "inheritable", &s->caps.inheritable, err)) < 0 ||
        (r = parse_caps_set(caps, "ambient", &s->caps.ambient, err)) < 0)
        return r;
    json_t *rl = json_object_get(p, "rlimits");
    if (json_is_array(rl)) {
        size_t i;
        json_t *v;
        s->rlimits = xmalloc0(sizeof(*s->rlimits) * (json_array_size(rl) + 1));
        json_array_foreach (rl, i, v) {
            const char *type = json_string_value(json_object_get(v, "type"));
            int res = type ? sbx_rlimit_from_name(type) : -1;
            if (res < 0)
                return sbx_make_error(err, 0, "config: unknown rlimit `%s`", type ? type : "");
            json_t *soft = json_object_get(v, "soft"), *hard = json_object_get(v, "hard");
            if (!json_is_integer(soft) || !json_is_integer(hard))
                return sbx_make_error(err, 0, "config: rlimit `%s` needs soft and hard", type);
            s->rlimits[i].resource = res;
            s->rlimits[i].limit.rlim_cur = (rlim_t)json_integer_value(soft);
            s->rlimits[i].limit.rlim_max = (rlim_t)json_integer_value(hard);
            if (s->rlimits[i].limit.rlim_cur > s->rlimits[i].limit.rlim_max)
                return sbx_make_error(err, 0, "config: rlimit `%s`: soft limit above hard limit",
                                      type);
        }
        s->n_rlimits = json_array_size(rl);
    }
    const char *aa = json_string_value(json_object_get(p, "apparmorProfile"));
    s->apparmor_profile = xstrdup(aa);
    s->selinux_label = xstrdup(json_string_value(json_object_get(p, "selinuxLabel")));
    return 0;
}

/* "*" for an absent or negative major/minor (OCI: absent means all). */
static void
dev_number(json_t *v, char *buf, size_t len)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        snprintf(buf, len, "*");
    else
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
}

/* linux.resources.devices -> device-cgroup writes. Once the config restricts devices, the
 * devices the runtime must supply (runtime-spec "Default Devices": null, zero, full, random,
 * urandom, tty, ptmx and the pty slaves) and those of linux.devices stay usable, as runc and
 * crun do: the config's own rules come first and cannot take them away. */
static int
parse_device_rules(sbx_spec_t *s, json_t *rules, sbx_error_t *err)
{
    struct sbx_resources *r = &s->resources;
    size_t i;
    json_t *v;
    if (rules == NULL || json_is_null(rules))
        return 0;
    if (!json_is_array(rules))
        return sbx_make_error(err, 0, "config: `linux.resources.devices` must be an array");
    if (json_array_size(rules) == 0)
        return 0;
    json_array_foreach (rules, i, v) {
        json_t *allow = json_object_get(v, "allow");
        const char *type = json_string_value(json_object_get(v, "type"));
        const char *access = json_string_value(json_object_get(v, "access"));
        if (!json_is_boolean(allow))
            return sbx_make_error(err, 0,
                                  "config: `linux.resources.devices[%zu].allow` must be "
                                  "a boolean",
                                  i);
        if (type == NULL || type[0] == '\0')
            type = "a";
        if (strlen(type) != 1 || !strchr("acb", type[0]))
            return sbx_make_error(err, 0,
                                  "config: `linux.resources.devices[%zu].type` must be "
                                  "a, c or b, got `%s`",
                                  i, type);
        if (access == NULL || access[0] == '\0')
            access = "rwm";
        if (strlen(access) > 3 || strspn(access, "rwm") != strlen(access))
            return sbx_make_error(err, 0,
                                  "config: `linux.resources.devices[%zu].access` must be "
                                  "made of r, w and m, got `%s`",
                                  i, access);
        char major[32], minor[32];
        dev_number(json_object_get(v, "major"), major, sizeof(major));
        dev_number(json_object_get(v, "minor"), minor, sizeof(minor));
        cleanup_free char *line = xasprintf(
            "%s %s %s:%s %s", json_is_true(allow) ? "allow" : "deny", type, major, minor, access);
        strv_append(&r->devices, line);
    }
    static const char *const defaults[] = {
        "allow c 1:3 rwm", "allow c 1:5 rwm", "allow c 1:7 rwm", "allow c 1:8 rwm",
        "allow c 1:9 rwm", "allow c 5:0 rwm", "allow c 5:2 rwm", "allow c 136:* rwm",
    };
    for (i = 0; i < ARRAY_SIZE(defaults); i++)
        strv_append(&r->devices, defaults[i]);
    for (i = 0; i < s->n_devices; i++) {
        const struct sbx_device *d = &s->devices[i];
        if (d->type == 'p')
            continue;
        cleanup_free char *line = xasprintf("allow %c %" PRId64 ":%" PRId64 " rwm",
                                            d->type == 'u' ? 'c' : d->type, d->major, d->minor);
        strv_append(&r->devices, line);
    }
    return 0;
}

int
sbx_resources_parse(json_t *res, struct sbx_resources *r, sbx_error_t *err)
{
    json_t *mem = json_object_get(res, "memory"), *cpu = json_object_get(res, "cpu"),
           *pids = json_object_get(res, "pids"), *blkio = json_object_get(res, "blockIO");
    r->memory_limit = jint(mem, "limit", -1);
    r->memory_swap = jint(mem, "swap", -1);
    r->memory_reservation = jint(mem, "reservation", -1);
    r->cpu_quota = jint(cpu, "quota", -1);
    r->cpu_period = jint(cpu, "period", -1);
    r->cpu_shares = jint(cpu, "shares", -1);
    r->cpu_weight = -1;
    r->pids_limit = jint(pids, "limit", -1);
    r->io_weight = jint(blkio, "weight", -1);
    r->cpuset_cpus = xstrdup(json_string_value(json_object_get(cpu, "cpus")));
    r->cpuset_mems = xstrdup(json_string_value(json_object_get(cpu, "mems")));
    r->unified = json_object_get(res, "unified");
    json_t *w = json_object_get(r->unified, "cpu.weight");
    if (json_is_string(w)) {
        int64_t v;
        if (parse_int64(json_string_value(w), 1, 10000, &v) < 0)
            return sbx_make_error(err, 0, "config: bad cpu.weight `%s` (1-10000)",
                                  json_string_value(w));
        r->cpu_weight = v;
    }
    if (r->memory_limit == 0 || r->memory_limit < -1)
        return sbx_make_error(err, 0, "config: memory limit must be positive");
    if (r->pids_limit == 0 || r->pids_limit < -1)
        return sbx_make_error(err, 0, "config: pids limit must be positive");
    return 0;
}

void
sbx_resources_free(struct sbx_resources *r)
{
    free(r->cpuset_cpus);
    free(r->cpuset_mems);
    strv_free(r->devices);
    r->cpuset_cpus = r->cpuset_mems = NULL;
    r->devices = NULL;
}

static int
parse_linux(sbx_spec_t *s, json_t *l, sbx_error_t *err)
{
    int r;
    size_t i;
    json_t *v;
    json_t *nss = json_object_get(l, "namespaces");
    if (nss && !json_is_array(nss))
        return sbx_make_error(err, 0, "config: `linux.namespaces` must be an array");
    json_array_foreach (nss, i, v) {
        const char *type = json_string_value(json_object_get(v, "type"));
        int t;
        for (t = 0; t < SBX_NS_COUNT; t++)
            if (type && strcmp(type, sbx_ns_info[t].oci_name) == 0)
                break;
        if (t == SBX_NS_COUNT)
            return sbx_make_error(err, 0, "config: unknown namespace type `%s`",
                                  type ? type : "(none)");
        if (s->ns_enabled[t])
            return sbx_make_error(err, 0, "config: namespace `%s` listed twice", type);
        s->ns_enabled[t] = true;
        const char *path = json_string_value(json_object_get(v, "path"));
        if (path && *path)
            s->ns_path[t] = xstrdup(path);
    }
    if ((r = parse_idmaps(json_object_get(l, "uidMappings"), "linux.uidMappings", &s->uid_maps,
                          &s->n_uid_maps, err)) < 0 ||
        (r = parse_idmaps(json_object_get(l, "gidMappings"), "linux.gidMappings", &s->gid_maps,
                          &s->n_gid_maps, err)) < 0)
        return r;
    if ((r = parse_strv(json_object_get(l, "maskedPaths"), "linux.maskedPaths", &s->masked_paths,
                        err)) < 0 ||
        (r = parse_strv(json_object_get(l, "readonlyPaths"), "linux.readonlyPaths",
                        &s->readonly_paths, err)) < 0)
        return r;
    if ((r = sbx_resources_parse(json_object_get(l, "resources"), &s->resources, err)) < 0)
        return r;
    s->cgroups_path = xstrdup(json_string_value(json_object_get(l, "cgroupsPath")));
    s->seccomp = json_object_get(l, "seccomp");
    s->sysctl = json_object_get(l, "sysctl");
    s->rootfs_propagation = xstrdup(json_string_value(json_object_get(l, "rootfsPropagation")));
    s->mount_label = xstrdup(json_string_value(json_object_get(l, "mountLabel")));
    json_t *devs = json_object_get(l, "devices");
    if (json_is_array(devs)) {
        s->devices = xmalloc0(sizeof(*s->devices) * (json_array_size(devs) + 1));
        json_array_foreach (devs, i, v) {
            const char *path = json_string_value(json_object_get(v, "path"));
            const char *type = json_string_value(json_object_get(v, "type"));
            if (path == NULL || path[0] != '/' || type == NULL || strlen(type) != 1 ||
                !strchr("cbup", type[0]))
                return sbx_make_error(err, 0,
                                      "config: `linux.devices[%zu]` needs an absolute "
                                      "path and type c, b, u or p",
                                      i);
            s->devices[i].path = xstrdup(path);
            s->devices[i].type = type[0];
            s->devices[i].major = jint(v, "major", 0);
            s->devices[i].minor = jint(v, "minor", 0);
            s->devices[i].mode = jint(v, "fileMode", 0666);
            s->devices[i].uid = jint(v, "uid", 0);
            s->devices[i].gid = jint(v, "gid", 0);
        }
        s->n_devices = json_array_size(devs);
    }
    return parse_device_rules(s, json_object_get(json_object_get(l, "resources"), "devices"), err);
}

static int
parse_mounts(sbx_spec_t *s, json_t *arr, sbx_error_t *err)
{
    size_t i;
    json_t *v;
    if (arr == NULL)
        return 0;
    if (!json_is_array(arr))
        return sbx_make_error(err, 0, "config: `mounts` must be an array");
    s->mounts = xmalloc0(sizeof(*s->mounts) * (json_array_size(arr) + 1));
    json_array_foreach (arr, i, v) {
        struct sbx_mount *m = &s->mounts[s->n_mounts];
        const char *dst = json_string_value(json_object_get(v, "destination"));
        if (dst == NULL || dst[0] != '/')
            return sbx_make_error(err, 0,
                                  "config: `mounts[%zu].destination` must be an absolute "
                                  "path, got `%s`",
                                  i, dst ? dst : "(none)");
        m->destination = xstrdup(dst);
        const char *type = json_string_value(json_object_get(v, "type"));
        const char *src = json_string_value(json_object_get(v, "source"));
        m->type = xstrdup(type ? type : "");
        s->n_mounts++;
        int r = sbx_parse_mount_options(json_object_get(v, "options"), m, err);
        if (r < 0)
            return r;
        if (strcmp(m->type, "bind") == 0 || strcmp(m->type, "rbind") == 0) {
            m->bind = true;
            if (m->type[0] == 'r')
                m->recursive = true;
        }
        if (m->bind && (src == NULL || *src == '\0'))
            return sbx_make_error(err, 0, "config: bind mount `%s` has no source", dst);
        if (src && m->bind && src[0] != '/' && s->bundle)
            m->source = xasprintf("%s/%s", s->bundle, src);
        else
            m->source = xstrdup(src ? src : m->type);
        if (m->beneath) {
            size_t n = strlen(m->beneath);
            while (n > 1 && m->beneath[n - 1] == '/')
                m->beneath[--n] = '\0';
            if (!m->bind || strncmp(m->source, m->beneath, n) != 0 ||
                (m->source[n] != '\0' && m->source[n] != '/' && n > 1))
                return sbx_make_error(err, 0,
                                      "config: mount `%s`: source `%s` is not below its "
                                      "%s`%s`",
                                      dst, m->source, SBX_BENEATH_OPT, m->beneath);
        }
    }
    return 0;
}

static bool
annotation_true(json_t *ann, const char *k)
{
    const char *v = json_string_value(json_object_get(ann, k));
    return v && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

int
sbx_spec_parse(json_t *root, const char *bundle, sbx_spec_t **out, sbx_error_t *err)
{
    int r;
    if (!json_is_object(root))
        return sbx_make_error(err, 0, "config: top level must be a JSON object");
    sbx_spec_t *s = xmalloc0(sizeof(*s));
    s->root = json_incref(root);
    s->umask = (mode_t)-1;
    s->overlay_size = SBX_DEFAULT_DISK_SIZE;
    if (bundle) {
        char real[PATH_MAX];
        if (realpath(bundle, real) == NULL) {
            sbx_spec_free(s);
            return sbx_make_error(err, errno, "bundle `%s`", bundle);
        }
        s->bundle = xstrdup(real);
    }
    const char *ver = json_string_value(json_object_get(root, "ociVersion"));
    if (ver == NULL || strncmp(ver, "1.", 2) != 0) {
        sbx_spec_free(s);
        return sbx_make_error(err, 0, "config: unsupported ociVersion `%s` (need 1.x)",
                              ver ? ver : "(missing)");
    }
    s->oci_version = xstrdup(ver);

    json_t *rootobj = json_object_get(root, "root");
    const char *rootpath = json_string_value(json_object_get(rootobj, "path"));
    if (rootpath == NULL || *rootpath == '\0') {
        sbx_spec_free(s);
        return sbx_make_error(err, 0, "config: `root.path` is required");
    }
    if (rootpath[0] != '/' && s->bundle)
        s->rootfs = xasprintf("%s/%s", s->bundle, rootpath);
    else
        s->rootfs = xstrdup(rootpath);
    s->root_readonly = json_is_true(json_object_get(rootobj, "readonly"));
    s->hostname = xstrdup(json_string_value(json_object_get(root, "hostname")));
    s->domainname = xstrdup(json_string_value(json_object_get(root, "domainname")));

    if ((r = parse_process(s, json_object_get(root, "process"), err)) < 0 ||
        (r = parse_mounts(s, json_object_get(root, "mounts"), err)) < 0 ||
        (r = parse_linux(s, json_object_get(root, "linux"), err)) < 0) {
        sbx_spec_free(s);
        return r;
    }
    if (s->has_process && strv_len(s->args) == 0) {
        sbx_spec_free(s);
        return sbx_make_error(err, 0, "config: `process.args` must not be empty");
    }
    json_t *hooks = json_object_get(root, "hooks");
    if ((r = parse_hooks(json_object_get(hooks, "prestart"), "prestart", &s->hooks_prestart,
                         &s->n_hooks_prestart, err)) < 0 ||
        (r = parse_hooks(json_object_get(hooks, "createRuntime"), "createRuntime",
                         &s->hooks_create_runtime, &s->n_hooks_create_runtime, err)) < 0 ||
        (r = parse_hooks(json_object_get(hooks, "createContainer"), "createContainer",
                         &s->hooks_create_container, &s->n_hooks_create_container, err)) < 0 ||
        (r = parse_hooks(json_object_get(hooks, "startContainer"), "startContainer",
                         &s->hooks_start_container, &s->n_hooks_start_container, err)) < 0 ||
        (r = parse_hooks(json_object_get(hooks, "poststart"), "poststart", &s->hooks_poststart,
                         &s->n_hooks_poststart, err)) < 0 ||
        (r = parse_hooks(json_object_get(hooks, "poststop"), "poststop", &s->hooks_poststop,
                         &s->n_hooks_poststop, err)) < 0) {
        sbx_spec_free(s);
        return r;
    }

    json_t *ann = json_object_get(root, "annotations");
    s->overlay_rootfs = annotation_true(ann, "run.sbx.rootfs.overlay");
    s->own_init = annotation_true(ann, "run.sbx.init");
    /* Absent: SBX_DEFAULT_DISK_SIZE, for sbx's own configs and bundles alike; "0" lifts the cap
     * (the sandbox's memory limit, if any, is then the only bound). */
    const char *sz = json_string_value(json_object_get(ann, "run.sbx.rootfs.size"));
    if (sz && parse_size(sz, &s->overlay_size) < 0) {
        sbx_spec_free(s);
        return sbx_make_error(err, 0, "config: bad run.sbx.rootfs.size `%s`", sz);
    }
    s->image_dir = xstrdup(json_string_value(json_object_get(ann, "run.sbx.image")));
    s->rootfs_layers = xstrdup(json_string_value(json_object_get(ann, "run.sbx.rootfs.layers")));
    s->rootfs_layers_dir =
        xstrdup(json_string_value(json_object_get(ann, "run.sbx.rootfs.layers.dir")));
    s->image_digest = xstrdup(json_string_value(json_object_get(ann, "run.sbx.image.digest")));
    s->image_store = xstrdup(json_string_value(json_object_get(ann, "run.sbx.image.store")));
    if ((s->rootfs_layers == NULL) != (s->rootfs_layers_dir == NULL) ||
        (s->rootfs_layers &&
         (strspn(s->rootfs_layers, "0123456789abcdef:") != strlen(s->rootfs_layers) ||
          strpbrk(s->rootfs_layers_dir, ",:\\") || s->rootfs_layers_dir[0] != '/'))) {
        sbx_spec_free(s);
        return sbx_make_error(err, 0,
                              "annotations run.sbx.rootfs.layers and .layers.dir: want "
                              "hex layer names and an absolute directory, both or none");
    }
    /* Layers are shared by every image and sandbox that has them: never written. */
    if (s->rootfs_layers && !s->overlay_rootfs && !s->root_readonly) {
        sbx_spec_free(s);
        return sbx_make_error(err, 0,
                              "a pulled image's layers are shared and cannot be written: "
                              "use the private writable layer (the default) or a "
                              "read-only root");
    }
    json_t *builtin = json_object_get(ann, "run.sbx.seccomp");
    if (builtin) {
        const char *name = json_string_value(builtin), *bad = NULL;
        if (s->seccomp)
            bad = "cannot be combined with linux.seccomp";
        else if (!sbx_seccomp_builtin_text(name, NULL))
            bad = "names no built-in profile (default, strict)";
        if (bad) {
            sbx_spec_free(s);
            return sbx_make_error(err, EINVAL, "config: annotation run.sbx.seccomp `%s` %s",
                                  name ? name : "(not a string)", bad);
        }
        s->seccomp_builtin = xstrdup(name);
    }
    *out = s;
    return 0;
}

int
sbx_spec_load_bundle(const char *bundle, sbx_spec_t **out, sbx_error_t *err)
{
    cleanup_free char *path = xasprintf("%s/config.json", bundle);
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        if (access(path, F_OK) < 0)
            return sbx_make_error(err, errno, "bundle `%s`: cannot read config.json", bundle);
        return sbx_make_error(err, 0, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
    }
    int r = sbx_spec_parse(root, bundle, out, err);
    json_decref(root);
    return r;
}

static void
free_hooks(struct sbx_hook *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(h[i].path);
        strv_free(h[i].args);
        strv_free(h[i].env);
    }
    free(h);
}

void
sbx_spec_free(sbx_spec_t *s)
{
    if (s == NULL)
        return;
    json_decref(s->root);
    free(s->bundle);
    free(s->oci_version);
    strv_free(s->args);
    strv_free(s->env);
    free(s->cwd);
    free(s->additional_gids);
    free(s->rlimits);
    free(s->apparmor_profile);
    free(s->selinux_label);
    free(s->rootfs);
    free(s->hostname);
    free(s->domainname);
    for (size_t i = 0; i < s->n_mounts; i++) {
        free(s->mounts[i].destination);
        free(s->mounts[i].type);
        free(s->mounts[i].source);
        free(s->mounts[i].data);
        free(s->mounts[i].beneath);
    }
    free(s->mounts);
    for (int i = 0; i < SBX_NS_COUNT; i++)
        free(s->ns_path[i]);
    free(s->uid_maps);
    free(s->gid_maps);
    strv_free(s->masked_paths);
    strv_free(s->readonly_paths);
    sbx_resources_free(&s->resources);
    free(s->cgroups_path);
    for (size_t i = 0; i < s->n_devices; i++)
        free(s->devices[i].path);
    free(s->devices);
    free(s->rootfs_propagation);
    free(s->mount_label);
    free_hooks(s->hooks_prestart, s->n_hooks_prestart);
    free_hooks(s->hooks_create_runtime, s->n_hooks_create_runtime);
    free_hooks(s->hooks_create_container, s->n_hooks_create_container);
    free_hooks(s->hooks_start_container, s->n_hooks_start_container);
    free_hooks(s->hooks_poststart, s->n_hooks_poststart);
    free_hooks(s->hooks_poststop, s->n_hooks_poststop);
    free(s->image_dir);
    free(s->rootfs_layers);
    free(s->rootfs_layers_dir);
    free(s->image_digest);
    free(s->image_store);
    free(s->seccomp_builtin);
    free(s);
}
