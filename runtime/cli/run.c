#include "cli.h"
#include "config.h"
#include "utils.h"
#include "volume.h"

#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>

static void
run_usage(FILE *f)
{
    fprintf(
        f,
        "Usage: sbxrun run [OPTIONS] [--] CMD [ARGS...]\n"
        "       sbxrun run --image REF [OPTIONS] [-- ARGS...]\n"
        "       sbxrun run --bundle DIR [OPTIONS] [ID]\n\n"
        "Runs CMD in a new sandbox and exits with its status.\n\n"
        "Root filesystem:\n"
        "  --image NAME|REF      an image `make rootfs` built in $SBX_IMAGES (default\n"
        "                        " SBX_DEFAULT_IMAGES_DIR "): host, busybox (also local/NAME);\n"
        "                        or a pulled OCI image (`sbxrun pull`): any reference or image\n"
        "                        id. Its config gives the defaults: Env, WorkingDir, User, and\n"
        "                        Entrypoint + Cmd (ARGS replace Cmd). Default: host\n"
        "      --entrypoint CMD  replace a pulled image's Entrypoint (\"\" clears it)\n"
        "  --rootfs DIR          use DIR as the read-only lower layer instead of an image\n"
        "  --rootfs-rw           write straight into the rootfs instead of a private overlay\n"
        "  --read-only           read-only root and no private writable layer; /tmp, /dev/shm\n"
        "                        and --tmpfs/--bind targets stay writable\n"
        "  --disk SIZE           size of the private writable layer (a tmpfs: RAM; default 1G)\n"
        "  --bundle DIR          run an OCI bundle (config.json + rootfs); flags then override it\n"
        "Process:\n"
        "  -u, --user UID[:GID]  user inside the sandbox (default 1000:1000, `sandbox`); 0 is "
        "root\n"
        "                        inside the user namespace only\n"
        "  -e, --env K=V         set a variable (repeatable); the environment starts with PATH,\n"
        "                        HOME and TERM only\n"
        "  -w, --cwd DIR         working directory (default /)\n"
        "      --hostname NAME   (default sbx-<id>)\n"
        "  -v, --bind SRC:DST[:ro]  bind-mount a host path (repeatable)\n"
        "      --volume NAME:DST[:ro]  mount the named volume NAME (created on first use,\n"
        "                        owned by the sandbox user 1000:1000) at DST; kept across\n"
        "                        sandboxes; repeatable. NAME: a-z, 0-9, '-', at most 63\n"
        "      --volumes-dir DIR where named volumes live (default $SBX_VOLUMES_DIR, else\n"
        "                        " SBX_DEFAULT_VOLUMES_DIR ", the same as sbx-apid's default)\n"
        "      --tmpfs DST[:SIZE]   mount a tmpfs (repeatable; default size 256M); /tmp is one\n"
        "                        of 256M unless --tmpfs /tmp:SIZE says otherwise\n"
        "      --net none|host   none (default): own network namespace with only lo;\n"
        "                        host: share the host's network (UNSAFE: no network isolation)\n"
        "      --as-pid-1        run CMD as PID 1 instead of under sbx's tiny init\n"
        "Limits (cgroup v2, or v1 on legacy/hybrid hosts):\n"
        "  -m, --memory SIZE     memory limit, e.g. 512m, 1.5G, 512Mi (swap off unless\n"
        "                        --memory-swap); what the sandbox writes to /tmp, --tmpfs\n"
        "                        and its writable layer is RAM and counts against it too\n"
        "      --memory-swap SIZE  memory+swap limit\n"
        "      --cpus N          CPUs, e.g. 0.5, 2 or 500m\n"
        "      --cpu-weight N    relative CPU weight 1-10000\n"
        "      --pids N          max processes (default %d)\n"
        "      --io-weight N     relative IO weight 10-1000\n"
        "      --nofile N        RLIMIT_NOFILE (soft and hard)\n"
        "      --rlimit NAME=SOFT[:HARD]  any rlimit, e.g. nproc=100, RLIMIT_CORE=0\n"
        "      --timeout SECONDS kill the whole sandbox after that long (exit status 124)\n"
        "      --cgroup-parent PATH  create the sandbox cgroup below PATH\n"
        "Security:\n"
        "      --seccomp NAME|PATH  default (default), strict, none, or an OCI/Docker JSON file\n"
        "      --cap-add CAP     add a capability (repeatable; ALL for every one)\n"
        "      --cap-drop CAP    drop a capability (repeatable)\n"
        "Supervision:\n"
        "      --id ID           sandbox id (default: random)\n"
        "      --json-status-fd FD  write JSON lines to FD: {\"id\",\"pid\"} when started,\n"
        "                        {\"exit-code\",\"signal\",\"oom\",\"timed-out\"} at the end\n"
        "  -q, --quiet           no messages from sbxrun itself\n"
        "  -h, --help            this help\n\n"
        "Sizes (SIZE) mean what they mean to Docker: bytes, or a number with K, M, G or T in\n"
        "any case (optionally followed by B or iB), each a power of 1024: 512m = 512M =\n"
        "512Mi = 536870912 bytes, 1g = 1G = 1073741824. (apid's resourceLimits take\n"
        "Kubernetes quantities instead, where 1G = 10^9 and 500m is a thousandth.)\n"
        "CPUs (N): 0.5 = 500m = half a CPU.\n\n"
        "Exit status: CMD's own; 128+N if killed by signal N (137 also when OOM-killed);\n"
        "124 timeout; 125 sbxrun failed (message on stderr); 126 CMD not executable;\n"
        "127 CMD not found.\n",
        SBX_DEFAULT_PIDS_LIMIT);
}

enum {
    OPT_ROOTFS = 256,
    OPT_IMAGE,
    OPT_BUNDLE,
    OPT_HOSTNAME,
    OPT_TMPFS,
    OPT_NET,
    OPT_TIMEOUT,
    OPT_STATUS_FD,
    OPT_ID,
    OPT_ROOTFS_RW,
    OPT_AS_PID1,
    OPT_MEMORY_SWAP,
    OPT_CPUS,
    OPT_CPU_WEIGHT,
    OPT_PIDS,
    OPT_IO_WEIGHT,
    OPT_DISK,
    OPT_NOFILE,
    OPT_RLIMIT,
    OPT_SECCOMP,
    OPT_CAP_ADD,
    OPT_CAP_DROP,
    OPT_CGROUP_PARENT,
    OPT_PID_FILE,
    OPT_DETACH,
    OPT_CONSOLE,
    OPT_NO_PIVOT,
    OPT_KEEP,
    OPT_READ_ONLY,
    OPT_ENTRYPOINT,
    OPT_VOLUME,
    OPT_VOLUMES_DIR,
};

static int
bad(const char *opt, const char *value, const char *want)
{
    cli_errorf("invalid %s `%s`: %s", opt, value, want);
    return -1;
}

static int
parse_user(const char *s, uid_t *uid, gid_t *gid)
{
    cleanup_free char *copy = xstrdup(s);
    char *g = strchr(copy, ':');
    if (g)
        *g++ = '\0';
    int64_t u, gg;
    if (parse_int64(copy, 0, 65535, &u) < 0)
        return -1;
    if (g && parse_int64(g, 0, 65535, &gg) < 0)
        return -1;
    *uid = u;
    *gid = g ? gg : (u == 0 ? 0 : u);
    return 0;
}

/* NAME=SOFT[:HARD] with NAME as in RLIMIT_NOFILE or nofile; "unlimited" accepted. */
static int
parse_rlimit_flag(const char *s, char **name, uint64_t *soft, uint64_t *hard)
{
    cleanup_free char *copy = xstrdup(s);
    char *v = strchr(copy, '=');
    if (v == NULL)
        return -1;
    *v++ = '\0';
    if (sbx_rlimit_from_name(copy) < 0)
        return -1;
    char *h = strchr(v, ':');
    if (h)
        *h++ = '\0';
    int64_t n;
    if (strcmp(v, "unlimited") == 0)
        *soft = UINT64_MAX;
    else if (parse_int64(v, 0, INT64_MAX, &n) == 0)
        *soft = n;
    else
        return -1;
    if (h == NULL)
        *hard = *soft;
    else if (strcmp(h, "unlimited") == 0)
        *hard = UINT64_MAX;
    else if (parse_int64(h, 0, INT64_MAX, &n) == 0)
        *hard = n;
    else
        return -1;
    if (*soft > *hard)
        return -1;
    char upper[64];
    snprintf(upper, sizeof(upper), "%s%s", strncasecmp(copy, "RLIMIT_", 7) ? "RLIMIT_" : "", copy);
    for (char *p = upper; *p; p++)
        *p = toupper((unsigned char)*p);
    *name = xstrdup(upper);
    return 0;
}

/* --volume NAME:DST[:ro|rw]: named volumes below the volumes directory, made on first use. A
 * flag error prints its own message and returns -1 with *err unset. */
static int
add_volumes(json_t *cfg, char **specs, const char *dir_flag, char **cap_add, sbx_error_t *err)
{
    cleanup_free char *dir = sbx_volumes_dir(dir_flag);
    bool admin = false;
    for (char **c = cap_add; c && *c; c++)
        admin |= !strcasecmp(*c, "ALL") || !strcasecmp(*c, "SYS_ADMIN") ||
                 !strcasecmp(*c, "CAP_SYS_ADMIN");
    for (char **v = specs; *v; v++) {
        cleanup_free char *copy = xstrdup(*v);
        char *dst = strchr(copy, ':'), *mode = NULL;
        if (dst) {
            *dst++ = '\0';
            if ((mode = strchr(dst, ':')))
                *mode++ = '\0';
        }
        if (!dst || dst[0] != '/' || (mode && strcmp(mode, "ro") && strcmp(mode, "rw")))
            return bad("--volume", *v, "want NAME:/PATH[:ro]");
        if (!sbx_volume_name_ok(copy))
            return bad("--volume", *v,
                       "NAME must be a-z, 0-9 and '-' (not first or last), "
                       "at most 63");
        bool ro = mode && !strcmp(mode, "ro");
        /* The read-only flag of a bind made in the sandbox's user namespace is not locked
         * against its own root: only the missing CAP_SYS_ADMIN stops a remount. */
        if (ro && admin)
            return bad("--volume", *v,
                       "a read-only volume cannot be combined with --cap-add "
                       "SYS_ADMIN (the sandbox could remount it writable)");
        bool created;
        if (sbx_volume_create(dir, copy, &created, err) < 0)
            return -1;
        /* Canonical: the runtime opens it from below its scratch root, where an absolute
         * symlink in the path would not resolve. */
        cleanup_free char *given = xasprintf("%s/%s", dir, copy);
        cleanup_free char *root = realpath(given, NULL);
        if (!root)
            return sbx_make_error(err, errno, "volume `%s`", given);
        json_t *info = json_pack("{s:s, s:s, s:s, s:b}", "name", copy, "source", root, "mountPath",
                                 dst, "readOnly", ro);
        int r = sbx_config_add_volume(cfg, root, ".", dst, ro, info, err);
        json_decref(info);
        if (r < 0)
            return r;
    }
    return 0;
}

/* libsbx names a limit it refuses by what it is ("memory limit": apid's users know it by another
 * name); here the user gave it as an option, so the report names the options given. */
static void
name_limit_options(sbx_error_t *err, int64_t memory, int64_t memory_swap, int64_t millicpus,
                   int64_t cpu_weight, int64_t pids, int64_t io_weight)
{
    const struct {
        const char *opt;
        bool given;
    } o[] = {{"--memory", memory > 0},  {"--memory-swap", memory_swap > 0},
             {"--cpus", millicpus > 0}, {"--cpu-weight", cpu_weight > 0},
             {"--pids", pids > 0},      {"--io-weight", io_weight > 0}};
    cleanup_free char *list = xstrdup("");
    for (size_t i = 0; i < ARRAY_SIZE(o); i++) {
        if (!o[i].given)
            continue;
        char *l = xasprintf("%s%s%s", list, *list ? ", " : "", o[i].opt);
        free(list);
        list = l;
    }
    if (*list && sbx_error_is(*err, SBX_ERR_LIMIT))
        sbx_error_wrap(err, "%s", list);
}

int
cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"rootfs", required_argument, NULL, OPT_ROOTFS},
        {"image", required_argument, NULL, OPT_IMAGE},
        {"bundle", required_argument, NULL, OPT_BUNDLE},
        {"b", required_argument, NULL, OPT_BUNDLE},
        {"user", required_argument, NULL, 'u'},
        {"env", required_argument, NULL, 'e'},
        {"cwd", required_argument, NULL, 'w'},
        {"hostname", required_argument, NULL, OPT_HOSTNAME},
        {"bind", required_argument, NULL, 'v'},
        {"tmpfs", required_argument, NULL, OPT_TMPFS},
        {"net", required_argument, NULL, OPT_NET},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"json-status-fd", required_argument, NULL, OPT_STATUS_FD},
        {"id", required_argument, NULL, OPT_ID},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"rootfs-rw", no_argument, NULL, OPT_ROOTFS_RW},
        {"as-pid-1", no_argument, NULL, OPT_AS_PID1},
        {"memory", required_argument, NULL, 'm'},
        {"memory-swap", required_argument, NULL, OPT_MEMORY_SWAP},
        {"cpus", required_argument, NULL, OPT_CPUS},
        {"cpu-weight", required_argument, NULL, OPT_CPU_WEIGHT},
        {"pids", required_argument, NULL, OPT_PIDS},
        {"io-weight", required_argument, NULL, OPT_IO_WEIGHT},
        {"disk", required_argument, NULL, OPT_DISK},
        {"nofile", required_argument, NULL, OPT_NOFILE},
        {"rlimit", required_argument, NULL, OPT_RLIMIT},
        {"seccomp", required_argument, NULL, OPT_SECCOMP},
        {"cap-add", required_argument, NULL, OPT_CAP_ADD},
        {"cap-drop", required_argument, NULL, OPT_CAP_DROP},
        {"cgroup-parent", required_argument, NULL, OPT_CGROUP_PARENT},
        {"pid-file", required_argument, NULL, OPT_PID_FILE},
        {"detach", no_argument, NULL, 'd'},
        {"console-socket", required_argument, NULL, OPT_CONSOLE},
        {"no-pivot", no_argument, NULL, OPT_NO_PIVOT},
        {"keep", no_argument, NULL, OPT_KEEP},
        {"read-only", no_argument, NULL, OPT_READ_ONLY},
        {"entrypoint", required_argument, NULL, OPT_ENTRYPOINT},
        {"volume", required_argument, NULL, OPT_VOLUME},
        {"volumes-dir", required_argument, NULL, OPT_VOLUMES_DIR},
        {NULL, 0, NULL, 0},
    };
    const char *rootfs = NULL, *image = NULL, *bundle = NULL, *user = NULL, *cwd = NULL,
               *hostname = NULL, *net = "none", *id = NULL, *seccomp = NULL, *disk = NULL,
               *entrypoint = NULL, *volumes_dir = NULL;
    cleanup_strv char **envs = NULL, **binds = NULL, **volumes = NULL, **tmpfs = NULL,
                      **cap_add = NULL, **cap_drop = NULL, **rlimits = NULL;
    struct sbx_run_opts ro = {.json_status_fd = -1, .state_root = sbx_global.root};
    bool rootfs_rw = false, as_pid1 = false, read_only = false;
    int64_t memory = -1, memory_swap = -1, millicpus = -1, cpu_weight = -1, pids = -1,
            io_weight = -1, nofile = -1, v;
    int c;

    while ((c = getopt_long(argc, argv, "+u:e:w:v:m:qhd", opts, NULL)) != -1) {
        switch (c) {
        case OPT_ROOTFS: rootfs = optarg; break;
        case OPT_IMAGE: image = optarg; break;
        case OPT_BUNDLE: bundle = optarg; break;
        case 'u': user = optarg; break;
        case 'e': strv_append(&envs, optarg); break;
        case 'w': cwd = optarg; break;
        case OPT_HOSTNAME: hostname = optarg; break;
        case 'v': strv_append(&binds, optarg); break;
        case OPT_TMPFS: strv_append(&tmpfs, optarg); break;
        case OPT_NET:
            if (strcmp(optarg, "none") && strcmp(optarg, "host"))
                return bad("--net", optarg, "want none or host"), EXIT_RUNTIME;
            net = optarg;
            break;
        case OPT_TIMEOUT:
            if (parse_int64(optarg, 1, 100000000, &v) < 0)
                return bad("--timeout", optarg, "want whole seconds >= 1"), EXIT_RUNTIME;
            ro.timeout_sec = v;
            break;
        case OPT_STATUS_FD:
            if (parse_int64(optarg, 0, 1 << 20, &v) < 0 || fcntl(v, F_GETFD) < 0)
                return bad("--json-status-fd", optarg, "not an open file descriptor"), EXIT_RUNTIME;
            ro.json_status_fd = v;
            fcntl(v, F_SETFD, FD_CLOEXEC);
            break;
        case OPT_ID:
            if (!id_is_valid(optarg))
                return bad("--id", optarg, "letters, digits, '_', '.', '-', at most 64"),
                       EXIT_RUNTIME;
            id = optarg;
            break;
        case 'q': ro.quiet = true; break;
        case 'h': run_usage(stdout); return 0;
        case OPT_ROOTFS_RW: rootfs_rw = true; break;
        case OPT_AS_PID1: as_pid1 = true; break;
        case 'm':
            if (parse_size(optarg, &memory) < 0 || memory < 1 << 20)
                return bad("--memory", optarg, "want a size of at least 1M like 512M, 1.5G, 512Mi"),
                       EXIT_RUNTIME;
            break;
        case OPT_MEMORY_SWAP:
            if (parse_size(optarg, &memory_swap) < 0 || memory_swap < 1 << 20)
                return bad("--memory-swap", optarg, "want a size like 1G"), EXIT_RUNTIME;
            break;
        case OPT_CPUS:
            if (parse_cpus(optarg, &millicpus) < 0)
                return bad("--cpus", optarg, "want a positive number like 0.5, 2 or 500m"),
                       EXIT_RUNTIME;
            break;
        case OPT_CPU_WEIGHT:
            if (parse_int64(optarg, 1, 10000, &cpu_weight) < 0)
                return bad("--cpu-weight", optarg, "want 1-10000"), EXIT_RUNTIME;
            break;
        case OPT_PIDS:
            if (parse_int64(optarg, 1, 4194304, &pids) < 0)
                return bad("--pids", optarg, "want a positive integer"), EXIT_RUNTIME;
            break;
        case OPT_IO_WEIGHT:
            if (parse_int64(optarg, 10, 1000, &io_weight) < 0)
                return bad("--io-weight", optarg, "want 10-1000 (OCI blockIO weight)"),
                       EXIT_RUNTIME;
            break;
        case OPT_DISK:
            if (parse_size(optarg, &v) < 0 || v < 4096)
                return bad("--disk", optarg, "want a size like 1G"), EXIT_RUNTIME;
            disk = optarg;
            break;
        case OPT_NOFILE:
            if (parse_int64(optarg, 1, 1 << 30, &nofile) < 0)
                return bad("--nofile", optarg, "want a positive integer"), EXIT_RUNTIME;
            break;
        case OPT_RLIMIT: strv_append(&rlimits, optarg); break;
        case OPT_SECCOMP: seccomp = optarg; break;
        case OPT_CAP_ADD: strv_append(&cap_add, optarg); break;
        case OPT_CAP_DROP: strv_append(&cap_drop, optarg); break;
        case OPT_CGROUP_PARENT: ro.cgroup_parent = optarg; break;
        case OPT_PID_FILE: ro.pid_file = optarg; break;
        case 'd': ro.detach = true; break;
        case OPT_CONSOLE: ro.console_socket = optarg; break;
        case OPT_NO_PIVOT: ro.no_pivot = true; break;
        case OPT_KEEP: ro.keep_state = true; break;
        case OPT_READ_ONLY: read_only = true; break;
        case OPT_ENTRYPOINT: entrypoint = optarg; break;
        case OPT_VOLUME: strv_append(&volumes, optarg); break;
        case OPT_VOLUMES_DIR: volumes_dir = optarg; break;
        default: fprintf(stderr, "Try `sbxrun run --help`.\n"); return EXIT_RUNTIME;
        }
    }
    if (read_only && (rootfs_rw || disk)) {
        cli_errorf("--read-only cannot be combined with %s (a read-only root has no writable "
                   "layer)",
                   rootfs_rw ? "--rootfs-rw" : "--disk");
        return EXIT_RUNTIME;
    }
    char *const *cmd = argv + optind;
    sbx_error_t err = NULL;
    json_t *cfg = NULL;
    char gen_id[17];
    if (bundle && id == NULL && cmd[0]) {
        id = cmd[0];
        if (!id_is_valid(id))
            return bad("sandbox id", id, "letters, digits, '_', '.', '-', at most 64"),
                   EXIT_RUNTIME;
    }
    if (id == NULL) {
        random_hex(gen_id, 16);
        id = gen_id;
    }
    ro.id = id;

    if (bundle) {
        if (rootfs || image) {
            cli_errorf("--bundle cannot be combined with --rootfs or --image");
            return EXIT_RUNTIME;
        }
        cleanup_free char *path = xasprintf("%s/config.json", bundle);
        json_error_t jerr;
        cfg = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
        if (cfg == NULL) {
            cli_errorf("bundle `%s`: %s", bundle, jerr.text);
            return EXIT_RUNTIME;
        }
    } else {
        if (cmd[0] == NULL && image == NULL) {
            cli_errorf("no command given (usage: sbxrun run [OPTIONS] -- CMD [ARGS...])");
            return EXIT_RUNTIME;
        }
        if (rootfs && image) {
            cli_errorf("--rootfs and --image are mutually exclusive");
            return EXIT_RUNTIME;
        }
        static char *const no_cmd[] = {(char *)"/bin/sh", NULL};
        cfg = sbx_config_new_default(id, cmd[0] ? cmd : no_cmd, &err);
        if (cfg == NULL)
            goto fail;
        const char *images = getenv("SBX_IMAGES");
        json_t *icfg = NULL;
        if (rootfs) {
            if (sbx_config_set_rootfs(cfg, rootfs, &err) < 0)
                goto fail;
        } else if (sbx_config_use_image(cfg, images && *images ? images : NULL,
                                        image ? image : "host", &icfg, &err) < 0) {
            goto fail;
        }
        uid_t uid = SBX_DEFAULT_UID;
        gid_t gid = SBX_DEFAULT_GID;
        if (user && parse_user(user, &uid, &gid) < 0) {
            bad("--user", user, "want UID[:GID] with ids 0-65535");
            json_decref(icfg);
            json_decref(cfg);
            return EXIT_RUNTIME;
        }
        if (sbx_config_set_user(cfg, uid, gid, &err) < 0) {
            json_decref(icfg);
            goto fail;
        }
        /* A pulled image's config gives the defaults (Docker's rules); flags below override. */
        if (icfg == NULL && cmd[0] == NULL) {
            cli_errorf("no command given (usage: sbxrun run [OPTIONS] -- CMD [ARGS...])");
            json_decref(cfg);
            return EXIT_RUNTIME;
        }
        int ir = icfg
                     ? sbx_config_apply_image_config(cfg, icfg, cmd, entrypoint, user != NULL, &err)
                     : 0;
        json_decref(icfg);
        if (ir < 0)
            goto fail;
        if (as_pid1)
            sbx_config_annotate(cfg, "run.sbx.init", NULL);
        if (rootfs_rw)
            sbx_config_annotate(cfg, "run.sbx.rootfs.overlay", NULL);
        if (strcmp(net, "host") == 0)
            sbx_config_set_net_host(cfg);
    }

    /* Flags that refine either a generated config or a bundle's. */
    for (char **e = envs; e && *e; e++)
        if (sbx_config_setenv(cfg, *e, &err) < 0)
            goto fail;
    if (cwd) {
        if (cwd[0] != '/') {
            bad("--cwd", cwd, "must be an absolute path");
            json_decref(cfg);
            return EXIT_RUNTIME;
        }
        json_object_set_new(json_object_get(cfg, "process"), "cwd", json_string(cwd));
    }
    if (hostname)
        json_object_set_new(cfg, "hostname", json_string(hostname));
    for (char **b = binds; b && *b; b++)
        if (sbx_config_add_bind(cfg, *b, &err) < 0)
            goto fail;
    for (char **t = tmpfs; t && *t; t++)
        if (sbx_config_add_tmpfs(cfg, *t, &err) < 0)
            goto fail;
    if (volumes && add_volumes(cfg, volumes, volumes_dir, cap_add, &err) < 0) {
        if (err == NULL) {
            json_decref(cfg);
            return EXIT_RUNTIME;
        }
        goto fail;
    }
    if (seccomp && sbx_config_set_seccomp(cfg, seccomp, &err) < 0)
        goto fail;
    if ((cap_add || cap_drop) && sbx_config_caps_adjust(cfg, cap_add, cap_drop, &err) < 0)
        goto fail;
    if (disk)
        sbx_config_annotate(cfg, "run.sbx.rootfs.size", disk);
    if (read_only) {
        json_t *root = json_object_get(cfg, "root");
        if (!json_is_object(root)) {
            cli_errorf("--read-only: the config has no root object");
            json_decref(cfg);
            return EXIT_RUNTIME;
        }
        json_object_set_new(root, "readonly", json_true());
        sbx_config_annotate(cfg, "run.sbx.rootfs.overlay", NULL);
    }
    if (nofile > 0)
        sbx_config_set_rlimit(cfg, "RLIMIT_NOFILE", nofile, nofile);
    for (char **r = rlimits; r && *r; r++) {
        cleanup_free char *name = NULL;
        uint64_t soft, hard;
        if (parse_rlimit_flag(*r, &name, &soft, &hard) < 0) {
            bad("--rlimit", *r, "want NAME=SOFT[:HARD] with a known rlimit name");
            json_decref(cfg);
            return EXIT_RUNTIME;
        }
        sbx_config_set_rlimit(cfg, name, soft, hard);
    }
    json_t *res = sbx_config_resources(cfg);
    if (memory > 0 || memory_swap > 0) {
        json_t *mem = json_object();
        if (memory > 0)
            json_object_set_new(mem, "limit", json_integer(memory));
        /* Swap is off unless asked for: memory+swap equal to memory means no swap. */
        json_object_set_new(mem, "swap", json_integer(memory_swap > 0 ? memory_swap : memory));
        if (memory > 0 && memory_swap > 0 && memory_swap < memory) {
            bad("--memory-swap", "value", "must be at least --memory");
            json_decref(cfg);
            return EXIT_RUNTIME;
        }
        json_object_set_new(res, "memory", mem);
    }
    if (millicpus > 0)
        json_object_set_new(res, "cpu",
                            json_pack("{s:I,s:I}", "quota", (json_int_t)(millicpus * 100), "period",
                                      (json_int_t)100000));
    if (cpu_weight > 0) {
        char w[24];
        snprintf(w, sizeof(w), "%lld", (long long)cpu_weight);
        json_t *u = json_object_get(res, "unified");
        if (u == NULL)
            json_object_set_new(res, "unified", u = json_object());
        json_object_set_new(u, "cpu.weight", json_string(w));
    }
    if (pids > 0)
        json_object_set_new(res, "pids", json_pack("{s:I}", "limit", (json_int_t)pids));
    if (io_weight > 0)
        json_object_set_new(res, "blockIO", json_pack("{s:I}", "weight", (json_int_t)io_weight));

    sbx_spec_t *spec = NULL;
    if (sbx_spec_parse(cfg, bundle, &spec, &err) < 0)
        goto fail;
    json_decref(cfg);
    struct sbx_exit ex;
    int r = sbx_container_run(spec, &ro, &ex, &err);
    sbx_spec_free(spec);
    if (r < 0) {
        name_limit_options(&err, memory, memory_swap, millicpus, cpu_weight, pids, io_weight);
        cli_error(&err);
        return EXIT_RUNTIME;
    }
    return ex.exit_code;

fail:
    json_decref(cfg);
    cli_error(&err);
    return EXIT_RUNTIME;
}
