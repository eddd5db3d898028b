#include "config.h"
#include "caps.h"
#include "image_ref.h"
#include "image_store.h"
#include "seccomp.h"
#include "utils.h"
#include "volume.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <pwd.h>
#include <sys/stat.h>

static const char *const default_masked[] = {
    "/proc/acpi",          "/proc/asound",     "/proc/kcore",       "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi",          "/proc/interrupts", "/sys/firmware",     "/sys/devices/virtual/powercap",
};
static const char *const default_readonly[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

static json_t *
strv_json(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *
mount_json(const char *dst, const char *type, const char *src, const char *opts)
{
    json_t *m = json_object();
    json_object_set_new(m, "destination", json_string(dst));
    json_object_set_new(m, "type", json_string(type));
    json_object_set_new(m, "source", json_string(src));
    json_t *o = json_array();
    cleanup_free char *copy = xstrdup(opts);
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        json_array_append_new(o, json_string(t));
    json_object_set_new(m, "options", o);
    return m;
}

int
sbx_host_id_base(bool gid, uint32_t *base, uint32_t *count)
{
    cleanup_file FILE *f = fopen(gid ? "/etc/subgid" : "/etc/subuid", "re");
    char line[256];
    while (f && fgets(line, sizeof(line), f)) {
        char name[128];
        unsigned long start, n;
        if (sscanf(line, "%127[^:]:%lu:%lu", name, &start, &n) == 3 && strcmp(name, "sbx") == 0 &&
            n >= SBX_ID_RANGE) {
            *base = start;
            *count = SBX_ID_RANGE;
            return 0;
        }
    }
    *base = SBX_DEFAULT_HOST_ID_BASE;
    *count = SBX_ID_RANGE;
    return 0;
}

/* The caller's own subordinate range (rootless): first entry for its name or uid. */
static bool
caller_subids(bool gid, uint32_t *start, uint32_t *count)
{
    cleanup_file FILE *f = fopen(gid ? "/etc/subgid" : "/etc/subuid", "re");
    struct passwd *pw = getpwuid(getuid());
    char uidstr[32], line[256];
    snprintf(uidstr, sizeof(uidstr), "%u", getuid());
    while (f && fgets(line, sizeof(line), f)) {
        char name[128];
        unsigned long s, n;
        if (sscanf(line, "%127[^:]:%lu:%lu", name, &s, &n) != 3)
            continue;
        if ((pw && strcmp(name, pw->pw_name) == 0) || strcmp(name, uidstr) == 0) {
            *start = s;
            *count = n > SBX_ID_RANGE - 1 ? SBX_ID_RANGE - 1 : n;
            return true;
        }
    }
    return false;
}

static json_t *
idmap_json(uint32_t c, uint32_t h, uint32_t n)
{
    return json_pack("{s:I,s:I,s:I}", "containerID", (json_int_t)c, "hostID", (json_int_t)h, "size",
                     (json_int_t)n);
}

/* Root maps sandbox 0-65535 onto an unprivileged host range. A rootless caller maps sandbox root
 * to itself and 1..N to its subordinate ids (newuidmap), or, without those, only the sandbox
 * user to itself: the single mapping an unprivileged process may write on its own. */
static void
set_idmaps(json_t *linux_obj, uid_t sandbox_uid, gid_t sandbox_gid)
{
    json_t *um = json_array(), *gm = json_array();
    if (geteuid() == 0) {
        uint32_t ub, un, gb, gn;
        sbx_host_id_base(false, &ub, &un);
        sbx_host_id_base(true, &gb, &gn);
        json_array_append_new(um, idmap_json(0, ub, un));
        json_array_append_new(gm, idmap_json(0, gb, gn));
    } else {
        uint32_t us, un, gs, gn;
        if (caller_subids(false, &us, &un) && caller_subids(true, &gs, &gn) &&
            access("/usr/bin/newuidmap", X_OK) == 0 && access("/usr/bin/newgidmap", X_OK) == 0) {
            json_array_append_new(um, idmap_json(0, geteuid(), 1));
            json_array_append_new(um, idmap_json(1, us, un));
            json_array_append_new(gm, idmap_json(0, getegid(), 1));
            json_array_append_new(gm, idmap_json(1, gs, gn));
        } else {
            json_array_append_new(um, idmap_json(sandbox_uid, geteuid(), 1));
            json_array_append_new(gm, idmap_json(sandbox_gid, getegid(), 1));
        }
    }
    json_object_set_new(linux_obj, "uidMappings", um);
    json_object_set_new(linux_obj, "gidMappings", gm);
}

json_t *
sbx_config_new_default(const char *id, char *const *args, sbx_error_t *err)
{
    json_t *cfg = json_object();
    json_object_set_new(cfg, "ociVersion", json_string("1.0.2"));

    json_t *proc = json_object();
    json_t *a = json_array();
    for (size_t i = 0; args && args[i]; i++)
        json_array_append_new(a, json_string(args[i]));
    json_object_set_new(proc, "args", a);
    json_t *env = json_array();
    json_array_append_new(
        env, json_string("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
    const char *term = getenv("TERM");
    cleanup_free char *t = xasprintf("TERM=%s", term && *term ? term : "xterm");
    json_array_append_new(env, json_string(t));
    json_object_set_new(proc, "env", env);
    json_object_set_new(proc, "cwd", json_string("/"));
    json_object_set_new(proc, "noNewPrivileges", json_true());
    json_object_set_new(cfg, "process", proc);

    json_object_set_new(cfg, "root", json_pack("{s:s,s:b}", "path", "rootfs", "readonly", 0));
    char short_id[13];
    snprintf(short_id, sizeof(short_id), "%s", id);
    cleanup_free char *hn = xasprintf("sbx-%s", short_id);
    json_object_set_new(cfg, "hostname", json_string(hn));

    json_t *mounts = json_array();
    json_array_append_new(mounts, mount_json("/proc", "proc", "proc", "nosuid,noexec,nodev"));
    json_array_append_new(
        mounts, mount_json("/dev", "tmpfs", "tmpfs", "nosuid,strictatime,mode=755,size=65536k"));
    json_array_append_new(mounts, mount_json("/dev/pts", "devpts", "devpts",
                                             "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620"));
    json_array_append_new(mounts, mount_json("/dev/shm", "tmpfs", "shm",
                                             "nosuid,noexec,nodev,mode=1777,size=65536k"));
    json_array_append_new(mounts,
                          mount_json("/dev/mqueue", "mqueue", "mqueue", "nosuid,noexec,nodev"));
    json_array_append_new(mounts, mount_json("/sys", "sysfs", "sysfs", "nosuid,noexec,nodev,ro"));
    json_array_append_new(mounts, mount_json("/sys/fs/cgroup", "cgroup", "cgroup",
                                             "nosuid,noexec,nodev,relatime,ro"));
    /* Bounded: see SBX_DEFAULT_TMPFS_SIZE. `--tmpfs /tmp:SIZE` replaces it. */
    cleanup_free char *tmp_opts =
        xasprintf("nosuid,nodev,mode=1777,size=%lld", (long long)SBX_DEFAULT_TMPFS_SIZE);
    json_array_append_new(mounts, mount_json("/tmp", "tmpfs", "tmpfs", tmp_opts));
    json_object_set_new(cfg, "mounts", mounts);

    json_t *lx = json_object();
    json_t *nss = json_array();
    static const char *const ns[] = {"pid", "network", "ipc", "uts", "mount", "user", "cgroup"};
    for (size_t i = 0; i < ARRAY_SIZE(ns); i++)
        json_array_append_new(nss, json_pack("{s:s}", "type", ns[i]));
    json_object_set_new(lx, "namespaces", nss);
    json_object_set_new(lx, "maskedPaths", strv_json(default_masked, ARRAY_SIZE(default_masked)));
    json_object_set_new(lx, "readonlyPaths",
                        strv_json(default_readonly, ARRAY_SIZE(default_readonly)));
    json_object_set_new(
        lx, "resources",
        json_pack("{s:{s:I}}", "pids", "limit", (json_int_t)SBX_DEFAULT_PIDS_LIMIT));
    json_object_set_new(cfg, "linux", lx);
    json_object_set_new(cfg, "annotations", json_object());
    sbx_config_annotate(cfg, "run.sbx.rootfs.overlay", "true");
    sbx_config_annotate(cfg, "run.sbx.init", "true");

    if (sbx_config_set_user(cfg, SBX_DEFAULT_UID, SBX_DEFAULT_GID, err) < 0 ||
        sbx_config_set_seccomp(cfg, "default", err) < 0) {
        json_decref(cfg);
        return NULL;
    }
    return cfg;
}

void
sbx_config_annotate(json_t *cfg, const char *key, const char *value)
{
    json_t *ann = json_object_get(cfg, "annotations");
    if (ann == NULL) {
        ann = json_object();
        json_object_set_new(cfg, "annotations", ann);
    }
    if (value)
        json_object_set_new(ann, key, json_string(value));
    else
        json_object_del(ann, key);
}

int
sbx_config_set_rootfs(json_t *cfg, const char *dir, sbx_error_t *err)
{
    char real[PATH_MAX];
    struct stat st;
    if (realpath(dir, real) == NULL)
        return sbx_make_error(err, errno, "rootfs `%s`", dir);
    if (stat(real, &st) < 0 || !S_ISDIR(st.st_mode))
        return sbx_make_error(err, ENOTDIR, "rootfs `%s`", dir);
    json_object_set_new(json_object_get(cfg, "root"), "path", json_string(real));
    return 0;
}

/* Drops mounts whose destination equals dst so a later one replaces it instead of stacking. */
static void
remove_mount(json_t *mounts, const char *dst)
{
    for (size_t i = 0; i < json_array_size(mounts);) {
        const char *d =
            json_string_value(json_object_get(json_array_get(mounts, i), "destination"));
        if (d && strcmp(d, dst) == 0)
            json_array_remove(mounts, i);
        else
            i++;
    }
}

static char *read_image_file(json_t *cfg, const char *rel, size_t max);

int
sbx_config_set_image(json_t *cfg, const char *images_dir, const char *name, sbx_error_t *err)
{
    if (name == NULL || *name == '\0' || strchr(name, '/') || strcmp(name, ".") == 0 ||
        strcmp(name, "..") == 0)
        return sbx_make_error(err, 0, "invalid image name `%s`", name ? name : "");
    cleanup_free char *dir =
        xasprintf("%s/%s", images_dir ? images_dir : SBX_DEFAULT_IMAGES_DIR, name);
    cleanup_free char *rootfs = xasprintf("%s/rootfs", dir);
    if (access(rootfs, F_OK) < 0) {
        int e = errno;
        return sbx_make_error(err, e,
                              "image `%s` not found in %s (build images with `make rootfs`)", name,
                              images_dir ? images_dir : SBX_DEFAULT_IMAGES_DIR);
    }
    int r = sbx_config_set_rootfs(cfg, rootfs, err);
    if (r < 0)
        return r;
    sbx_config_annotate(cfg, "run.sbx.image", dir);

    cleanup_free char *manifest = xasprintf("%s/sbx-image.json", dir);
    json_error_t jerr;
    json_t *m = json_load_file(manifest, 0, &jerr);
    if (m == NULL) {
        if (access(manifest, F_OK) == 0)
            return sbx_make_error(err, 0, "image `%s`: %s: %s", name, manifest, jerr.text);
        return 0;
    }
    size_t i;
    json_t *v;
    json_t *mounts = json_object_get(cfg, "mounts");
    json_array_foreach (json_object_get(m, "readonlyBinds"), i, v) {
        const char *p = json_string_value(v);
        if (p == NULL || p[0] != '/') {
            json_decref(m);
            return sbx_make_error(err, 0, "image `%s`: readonlyBinds entries must be absolute",
                                  name);
        }
        remove_mount(mounts, p);
        /* Image binds go first: user binds and /proc, /dev... stack on top of them. */
        json_array_insert_new(mounts, i, mount_json(p, "bind", p, "rbind,ro,nosuid,nodev"));
    }
    json_decref(m);
    return 0;
}

/* A plain name with a directory in the images dir is an image `make rootfs` built ("busybox",
 * also "local/busybox"); anything else is a reference into the store of pulled images. */
int
sbx_config_use_image(json_t *cfg, const char *images_dir, const char *name, json_t **image_config,
                     sbx_error_t *err)
{
    *image_config = NULL;
    const char *dir = images_dir ? images_dir : SBX_DEFAULT_IMAGES_DIR;
    const char *local = strncmp(name, "local/", 6) == 0 ? name + 6 : name;
    if (*local && local[0] != '.' && strpbrk(local, "/:@") == NULL) {
        cleanup_free char *rootfs = xasprintf("%s/%s/rootfs", dir, local);
        if (access(rootfs, F_OK) == 0 || local != name)
            return sbx_config_set_image(cfg, images_dir, local, err);
    }
    struct sbx_store st;
    if (sbx_store_open(dir, false, &st, NULL) < 0)
        return sbx_make_error_code(err, SBX_ERR_NOT_FOUND, 0,
                                   "image `%s` not found: not built in %s and no image has "
                                   "been pulled",
                                   name, dir);
    cleanup_free char *digest = NULL;
    errno = 0;
    json_t *rec = sbx_store_resolve(&st, name, &digest, err);
    if (rec == NULL) {
        int e = errno;
        sbx_store_close(&st);
        if (e == ENOENT) /* a well-formed reference that is neither built nor pulled */
            return sbx_make_error_code(err, SBX_ERR_NOT_FOUND, 0,
                                       "image `%s` not found: not built in %s and not pulled", name,
                                       dir);
        return -1;
    }
    json_t *layers = json_object_get(rec, "layers");
    size_t n = json_array_size(layers);
    int r = 0;
    cleanup_free char *list = xstrdup(""), *top = NULL, *ldir = NULL;
    if (n == 0) {
        r = sbx_make_error(err, 0, "image `%s` has no layers", name);
        goto out;
    }
    /* Top layer first, as overlayfs stacks lowerdir; the mount names them relative to the
     * layers directory (see linux.c), which keeps 60 layers within the mount data's page. */
    for (size_t i = n; i-- > 0;) {
        char *l = xasprintf("%s%s%s", list, *list ? ":" : "",
                            json_string_value(json_array_get(layers, i)) + 7);
        free(list);
        list = l;
    }
    top = sbx_store_layer_path(&st, json_string_value(json_array_get(layers, n - 1)));
    ldir = xasprintf("%s/layers", st.dir);
    if ((r = sbx_config_set_rootfs(cfg, top, err)) < 0)
        goto out;
    sbx_config_annotate(cfg, "run.sbx.rootfs.layers.dir", ldir);
    sbx_config_annotate(cfg, "run.sbx.rootfs.layers", list);
    sbx_config_annotate(cfg, "run.sbx.image.digest", digest);
    sbx_config_annotate(cfg, "run.sbx.image.store", st.dir);
    const char *iname = json_string_value(json_object_get(rec, "name"));
    sbx_config_annotate(cfg, "org.opencontainers.image.ref.name", iname ? iname : digest);
    json_t *icfg = json_object_get(rec, "config");
    *image_config = json_is_object(icfg) ? json_incref(icfg) : json_object();
out:
    json_decref(rec);
    sbx_store_close(&st);
    return r;
}

static json_t *
str_array(json_t *a)
{
    json_t *out = json_array();
    size_t i;
    json_t *v;
    json_array_foreach (a, i, v)
        if (json_is_string(v))
            json_array_append(out, v);
    return out;
}

int
sbx_config_apply_image_config(json_t *cfg, json_t *icfg, char *const *cmd, const char *entrypoint,
                              bool user_given, sbx_error_t *err)
{
    json_t *proc = json_object_get(cfg, "process");
    size_t i;
    json_t *v;
    json_array_foreach (json_object_get(icfg, "Env"), i, v) {
        const char *kv = json_string_value(v);
        if (kv && strchr(kv, '=') && sbx_config_setenv(cfg, kv, err) < 0)
            return -1;
    }
    const char *wd = json_string_value(json_object_get(icfg, "WorkingDir"));
    if (wd && wd[0] == '/')
        json_object_set_new(proc, "cwd", json_string(wd));
    /* Docker: arguments replace Cmd and follow the Entrypoint; --entrypoint replaces it (and
     * then the image's Cmd is dropped too). */
    json_t *args = json_array();
    if (entrypoint) {
        if (*entrypoint)
            json_array_append_new(args, json_string(entrypoint));
    } else {
        json_t *ep = str_array(json_object_get(icfg, "Entrypoint"));
        json_array_extend(args, ep);
        json_decref(ep);
    }
    if (cmd && cmd[0]) {
        for (char *const *c = cmd; *c; c++)
            json_array_append_new(args, json_string(*c));
    } else if (!entrypoint) {
        json_t *c = str_array(json_object_get(icfg, "Cmd"));
        json_array_extend(args, c);
        json_decref(c);
    }
    if (json_array_size(args) == 0) {
        json_decref(args);
        return sbx_make_error(err, 0,
                              "no command given and the image has neither Entrypoint "
                              "nor Cmd");
    }
    json_object_set_new(proc, "args", args);
    const char *user = json_string_value(json_object_get(icfg, "User"));
    if (!user_given && user && *user) {
        uid_t uid;
        gid_t gid;
        if (sbx_config_image_user(cfg, user, &uid, &gid, err) < 0 ||
            sbx_config_set_user(cfg, uid, gid, err) < 0)
            return -1;
    }
    return 0;
}

int
sbx_config_set_user(json_t *cfg, uid_t uid, gid_t gid, sbx_error_t *err)
{
    json_t *proc = json_object_get(cfg, "process");
    json_object_set_new(proc, "user",
                        json_pack("{s:I,s:I}", "uid", (json_int_t)uid, "gid", (json_int_t)gid));
    uint64_t mask = 0;
    if (uid == 0) {
        int r = sbx_caps_profile_load("default", &mask, err);
        if (r < 0)
            return r;
    }
    json_t *set = json_array();
    for (int c = 0; c < 64; c++)
        if (mask & (1ULL << c))
            json_array_append_new(set, json_string(sbx_cap_name(c)));
    json_t *caps = json_object();
    json_object_set(caps, "bounding", set);
    json_object_set(caps, "effective", set);
    json_object_set(caps, "permitted", set);
    json_object_set_new(caps, "inheritable", json_array());
    json_object_set_new(caps, "ambient", json_array());
    json_decref(set);
    json_object_set_new(proc, "capabilities", caps);
    set_idmaps(json_object_get(cfg, "linux"), uid, gid);

    /* HOME follows the user; a later --env HOME=... still wins. */
    cleanup_free char *passwd = read_image_file(cfg, "etc/passwd", 4 << 20);
    cleanup_free char *home = passwd ? sbx_passwd_home_in(passwd, uid) : NULL;
    cleanup_free char *kv =
        xasprintf("HOME=%s", home ? home : (uid == 0 ? "/root" : "/home/sandbox"));
    return sbx_config_setenv(cfg, kv, err);
}

int
sbx_config_caps_adjust(json_t *cfg, char *const *add, char *const *drop, sbx_error_t *err)
{
    json_t *caps = json_object_get(json_object_get(cfg, "process"), "capabilities");
    static const char *const sets[] = {"bounding", "effective", "permitted"};
    for (size_t pass = 0; pass < 2; pass++) {
        char *const *names = pass == 0 ? add : drop;
        for (size_t i = 0; names && names[i]; i++) {
            bool all = strcasecmp(names[i], "ALL") == 0;
            int cap = all ? 0 : sbx_cap_from_name(names[i]);
            if (cap < 0)
                return sbx_make_error(err, 0, "unknown capability `%s`", names[i]);
            for (size_t s = 0; s < ARRAY_SIZE(sets); s++) {
                json_t *arr = json_object_get(caps, sets[s]);
                for (int c = all ? 0 : cap; c <= (all ? sbx_caps_last_cap() : cap); c++) {
                    const char *cn = sbx_cap_name(c);
                    if (cn == NULL)
                        continue;
                    size_t k;
                    json_t *v;
                    bool present = false;
                    json_array_foreach (arr, k, v)
                        if (strcasecmp(json_string_value(v), cn) == 0) {
                            present = true;
                            if (pass == 1) {
                                json_array_remove(arr, k);
                                break;
                            }
                        }
                    if (pass == 0 && !present)
                        json_array_append_new(arr, json_string(cn));
                }
            }
        }
    }
    return 0;
}

int
sbx_config_setenv(json_t *cfg, const char *kv, sbx_error_t *err)
{
    const char *eq = strchr(kv, '=');
    if (eq == NULL || eq == kv)
        return sbx_make_error(err, 0, "invalid environment variable `%s` (want KEY=VALUE)", kv);
    json_t *env = json_object_get(json_object_get(cfg, "process"), "env");
    size_t klen = eq - kv + 1, i;
    json_t *v;
    json_array_foreach (env, i, v)
        if (strncmp(json_string_value(v), kv, klen) == 0) {
            json_array_set_new(env, i, json_string(kv));
            return 0;
        }
    json_array_append_new(env, json_string(kv));
    return 0;
}

int
sbx_config_add_bind(json_t *cfg, const char *spec, sbx_error_t *err)
{
    cleanup_free char *copy = xstrdup(spec);
    char *src = copy, *dst = strchr(copy, ':'), *mode = NULL;
    if (dst == NULL)
        return sbx_make_error(err, 0, "invalid bind `%s` (want SRC:DST[:ro])", spec);
    *dst++ = '\0';
    mode = strchr(dst, ':');
    if (mode)
        *mode++ = '\0';
    if (mode && strcmp(mode, "ro") != 0 && strcmp(mode, "rw") != 0)
        return sbx_make_error(err, 0, "invalid bind mode `%s` in `%s` (want ro or rw)", mode, spec);
    if (dst[0] != '/')
        return sbx_make_error(err, 0, "bind destination `%s` must be an absolute path", dst);
    char real[PATH_MAX];
    if (realpath(src, real) == NULL)
        return sbx_make_error(err, errno, "bind source `%s`", src);
    json_t *mounts = json_object_get(cfg, "mounts");
    remove_mount(mounts, dst);
    cleanup_free char *opts = xasprintf("rbind,nosuid,nodev,%s", mode ? mode : "rw");
    json_array_append_new(mounts, mount_json(dst, "bind", real, opts));
    return 0;
}

int
sbx_config_add_volume(json_t *cfg, const char *root, const char *rel, const char *dst, bool ro,
                      json_t *info, sbx_error_t *err)
{
    if (root[0] != '/')
        return sbx_make_error(err, 0, "volume root `%s` must be an absolute path", root);
    if (dst[0] != '/')
        return sbx_make_error(err, 0, "volume destination `%s` must be an absolute path", dst);
    bool whole = rel == NULL || *rel == '\0' || strcmp(rel, ".") == 0;
    cleanup_free char *src = whole ? xstrdup(root) : xasprintf("%s/%s", root, rel);
    json_t *mounts = json_object_get(cfg, "mounts");
    remove_mount(mounts, dst);
    cleanup_free char *beneath = xasprintf(SBX_BENEATH_OPT "%s", root);
    json_t *m =
        json_pack("{s:s, s:s, s:s, s:[s,s,s,s,s]}", "destination", dst, "type", "bind", "source",
                  src, "options", "rbind", "nosuid", "nodev", ro ? "ro" : "rw", beneath);
    json_array_append_new(mounts, m);
    if (info) {
        json_t *ann = json_object_get(cfg, "annotations");
        const char *old = json_string_value(json_object_get(ann, "run.sbx.volumes"));
        json_t *list = old ? json_loads(old, 0, NULL) : NULL;
        if (!json_is_array(list)) {
            json_decref(list);
            list = json_array();
        }
        json_array_append(list, info);
        cleanup_free char *s = json_dumps(list, JSON_COMPACT);
        json_decref(list);
        sbx_config_annotate(cfg, "run.sbx.volumes", s);
    }
    return 0;
}

int
sbx_config_add_tmpfs(json_t *cfg, const char *spec, sbx_error_t *err)
{
    cleanup_free char *copy = xstrdup(spec);
    char *size = strchr(copy, ':');
    if (size)
        *size++ = '\0';
    if (copy[0] != '/')
        return sbx_make_error(err, 0, "tmpfs destination `%s` must be an absolute path", copy);
    /* No size given: the same bound as /tmp, not the kernel's half of RAM. */
    int64_t bytes = SBX_DEFAULT_TMPFS_SIZE;
    if (size && (parse_size(size, &bytes) < 0 || bytes < 4096))
        return sbx_make_error(err, 0, "invalid tmpfs size `%s`", size);
    cleanup_free char *opts = xasprintf("nosuid,nodev,mode=1777,size=%lld", (long long)bytes);
    json_t *mounts = json_object_get(cfg, "mounts");
    remove_mount(mounts, copy);
    json_array_append_new(mounts, mount_json(copy, "tmpfs", "tmpfs", opts));
    return 0;
}

int
sbx_config_set_net_host(json_t *cfg)
{
    json_t *nss = json_object_get(json_object_get(cfg, "linux"), "namespaces");
    for (size_t i = 0; i < json_array_size(nss); i++)
        if (strcmp(json_string_value(json_object_get(json_array_get(nss, i), "type")), "network") ==
            0)
            json_array_remove(nss, i);
    /* sysfs can only be mounted from a netns the user namespace owns; bind the host's instead. */
    json_t *mounts = json_object_get(cfg, "mounts");
    remove_mount(mounts, "/sys");
    /* Before the cgroup mount, which must stay on top. */
    size_t i;
    json_t *v;
    json_array_foreach (mounts, i, v)
        if (strcmp(json_string_value(json_object_get(v, "destination")), "/sys/fs/cgroup") == 0)
            break;
    json_array_insert_new(mounts, i,
                          mount_json("/sys", "bind", "/sys", "rbind,nosuid,noexec,nodev,ro"));
    return 0;
}

int
sbx_config_set_seccomp(json_t *cfg, const char *name_or_path, sbx_error_t *err)
{
    json_t *lx = json_object_get(cfg, "linux");
    /* A built-in profile is named, not copied in: the runtime reads it only when its compiled
     * filter is not cached, which saves parsing and re-serialising it at every start. */
    if (name_or_path && sbx_seccomp_builtin_text(name_or_path, NULL)) {
        json_object_del(lx, "seccomp");
        sbx_config_annotate(cfg, "run.sbx.seccomp", name_or_path);
        return 0;
    }
    json_t *prof = NULL;
    int r = sbx_seccomp_profile_load(name_or_path, &prof, err);
    if (r < 0)
        return r;
    sbx_config_annotate(cfg, "run.sbx.seccomp", NULL);
    if (prof)
        json_object_set_new(lx, "seccomp", prof);
    else
        json_object_del(lx, "seccomp");
    return 0;
}

int
sbx_config_set_rlimit(json_t *cfg, const char *name, uint64_t soft, uint64_t hard)
{
    json_t *proc = json_object_get(cfg, "process");
    json_t *rl = json_object_get(proc, "rlimits");
    if (rl == NULL) {
        rl = json_array();
        json_object_set_new(proc, "rlimits", rl);
    }
    for (size_t i = 0; i < json_array_size(rl); i++)
        if (strcmp(json_string_value(json_object_get(json_array_get(rl, i), "type")), name) == 0)
            json_array_remove(rl, i);
    json_array_append_new(rl, json_pack("{s:s,s:I,s:I}", "type", name, "soft", (json_int_t)soft,
                                        "hard", (json_int_t)hard));
    return 0;
}

/* A file of the sandbox's image, read the way the sandbox would see it but without following
 * anything out of it: images are untrusted (a pulled image's /etc/passwd may be a symlink to
 * the host's /etc/shadow). A layered image is searched top layer first, each layer resolved with
 * no symlinks at all (a link could point into another layer); a whiteout ends the search. */
static char *
read_image_file(json_t *cfg, const char *rel, size_t max)
{
    json_t *ann = json_object_get(cfg, "annotations");
    const char *ldir = json_string_value(json_object_get(ann, "run.sbx.rootfs.layers.dir"));
    const char *layers = json_string_value(json_object_get(ann, "run.sbx.rootfs.layers"));
    const char *root = json_string_value(json_object_get(json_object_get(cfg, "root"), "path"));
    cleanup_strv char **dirs = NULL;
    uint64_t resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    if (ldir && layers) {
        cleanup_free char *copy = xstrdup(layers);
        char *save = NULL;
        for (char *l = strtok_r(copy, ":", &save); l; l = strtok_r(NULL, ":", &save)) {
            cleanup_free char *d = xasprintf("%s/%s", ldir, l);
            strv_append(&dirs, d);
        }
        resolve |= RESOLVE_NO_SYMLINKS;
    } else if (root) {
        strv_append(&dirs, root);
    }
    for (char **d = dirs; d && *d; d++) {
        cleanup_close int dfd = open(*d, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
            continue;
        /* Looked at through O_PATH first: opening a FIFO blocks and opening a device node can
         * have effects of its own (an image's /etc/passwd may be either, or /dev/zero, which
         * never ends); only a regular file is then opened, through the same inode. */
        struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = resolve};
        int pfd = openat2_retry(dfd, rel, &how);
        if (pfd < 0) {
            if (errno == ENOENT)
                continue;
            return NULL;
        }
        cleanup_close int path_fd = pfd;
        struct stat sb;
        if (fstat(path_fd, &sb) < 0 || !S_ISREG(sb.st_mode) || (size_t)sb.st_size > max)
            return NULL; /* a whiteout (0/0 char device), a FIFO, or too big */
        char self[64];
        snprintf(self, sizeof(self), "/proc/self/fd/%d", path_fd);
        cleanup_close int cfd = open(self, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (cfd < 0)
            return NULL;
        char *out = xmalloc0((size_t)sb.st_size + 1);
        ssize_t n = safe_read(cfd, out, (size_t)sb.st_size);
        if (n < 0) {
            free(out);
            return NULL;
        }
        out[n] = '\0';
        return out;
    }
    return NULL;
}

/* One passwd or group line's fields (strsep keeps empty fields, e.g. an empty password). */
static int
split_fields(char *line, char **fields, int max)
{
    int n = 0;
    line[strcspn(line, "\n")] = '\0';
    while (n < max && (fields[n] = strsep(&line, ":")) != NULL)
        n++;
    return n;
}

char *
sbx_passwd_home_in(const char *passwd, uid_t uid)
{
    cleanup_free char *copy = xstrdup(passwd ? passwd : "");
    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *fields[7] = {0};
        if (split_fields(line, fields, 7) < 6)
            continue;
        char *end;
        unsigned long u = strtoul(fields[2], &end, 10);
        if (*end == '\0' && fields[2][0] && u == uid && fields[5][0] == '/')
            return xstrdup(fields[5]);
    }
    return NULL;
}

char *
sbx_passwd_home(const char *rootfs, uid_t uid)
{
    json_t *cfg = json_pack("{s:{s:s}}", "root", "path", rootfs);
    cleanup_free char *passwd = read_image_file(cfg, "etc/passwd", 4 << 20);
    json_decref(cfg);
    return passwd ? sbx_passwd_home_in(passwd, uid) : NULL;
}

/* Docker's USER: "name", "uid", "name:group", "uid:gid", names looked up in the image's own
 * /etc/passwd and /etc/group; a user's gid is its passwd entry's unless a group is given. */
int
sbx_config_image_user(json_t *cfg, const char *spec, uid_t *uid, gid_t *gid, sbx_error_t *err)
{
    cleanup_free char *copy = xstrdup(spec);
    char *grp = strchr(copy, ':');
    if (grp)
        *grp++ = '\0';
    cleanup_free char *passwd = read_image_file(cfg, "etc/passwd", 4 << 20);
    cleanup_free char *group = grp ? read_image_file(cfg, "etc/group", 4 << 20) : NULL;
    int64_t v;
    bool found_user = false;
    *gid = 0;
    if (parse_int64(copy, 0, SBX_ID_RANGE - 1, &v) == 0) {
        *uid = (uid_t)v;
        found_user = true;
    }
    char *save = NULL;
    for (char *line = passwd ? strtok_r(passwd, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save)) {
        char *f[7] = {0};
        int64_t u, g;
        if (split_fields(line, f, 7) < 4 || parse_int64(f[2], 0, UINT32_MAX, &u) < 0 ||
            parse_int64(f[3], 0, UINT32_MAX, &g) < 0)
            continue;
        if ((found_user && u == *uid) || (!found_user && strcmp(f[0], copy) == 0)) {
            *uid = (uid_t)u;
            *gid = (gid_t)g;
            found_user = true;
            break;
        }
    }
    if (!found_user)
        return sbx_make_error(err, 0, "image user `%s` is not in the image's /etc/passwd", spec);
    if (grp) {
        bool found_group = false;
        if (parse_int64(grp, 0, SBX_ID_RANGE - 1, &v) == 0) {
            *gid = (gid_t)v;
            found_group = true;
        }
        save = NULL;
        for (char *line = group && !found_group ? strtok_r(group, "\n", &save) : NULL; line;
             line = strtok_r(NULL, "\n", &save)) {
            char *f[4] = {0};
            int64_t g;
            if (split_fields(line, f, 4) >= 3 && strcmp(f[0], grp) == 0 &&
                parse_int64(f[2], 0, UINT32_MAX, &g) == 0) {
                *gid = (gid_t)g;
                found_group = true;
                break;
            }
        }
        if (!found_group)
            return sbx_make_error(err, 0, "image group `%s` is not in the image's /etc/group", grp);
    }
    if (*uid >= SBX_ID_RANGE || *gid >= SBX_ID_RANGE)
        return sbx_make_error(err, 0, "image user `%s` is outside the sandbox's ids 0-%d", spec,
                              SBX_ID_RANGE - 1);
    return 0;
}
