#include "cli.h"
#include "config.h"
#include "resources.h"
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

/* What `sbxrun run`'s command line asks for. */
struct run_flags {
    const char *rootfs, *image, *bundle, *user, *cwd, *hostname, *net, *id, *seccomp, *disk,
        *entrypoint, *volumes_dir;
    char **envs, **binds, **volumes, **tmpfs, **cap_add, **cap_drop, **rlimits;
    bool rootfs_rw, as_pid1, read_only;
    struct sbx_limits limits; /* the cgroup limits: --memory, --cpus, --pids... */
    const char *memory_swap;  /* --memory-swap as given, for its message */
    int64_t nofile;
    char *const *cmd; /* CMD [ARGS...]; with --bundle, [ID] */
    char gen_id[17];
    struct sbx_run_opts ro;
};

/* libsbx names a limit it refuses by what it is ("memory limit": apid's users know it by another
 * name); here the user gave it as an option, so the report names the options given. */
static void
name_limit_options(sbx_error_t *err, const struct sbx_limits *l)
{
    const struct {
        const char *opt;
        bool given;
    } o[] = {{"--memory", l->memory > 0},  {"--memory-swap", l->memory_swap > 0},
             {"--cpus", l->cpu_milli > 0}, {"--cpu-weight", l->cpu_weight > 0},
             {"--pids", l->pids > 0},      {"--io-weight", l->io_weight > 0}};
    cleanup_free char *list = xstrdup("");
    for (size_t i = 0; i < ARRAY_SIZE(o); i++) {
        if (!o[i].given)
            continue;
        char *l2 = xasprintf("%s%s%s", list, *list ? ", " : "", o[i].opt);
        free(list);
        list = l2;
    }
    if (*list && sbx_error_is(*err, SBX_ERR_LIMIT))
        sbx_error_wrap(err, "%s", list);
}

static void
run_flags_free(struct run_flags *f)
{
    strv_free(f->envs);
    strv_free(f->binds);
    strv_free(f->volumes);
    strv_free(f->tmpfs);
    strv_free(f->cap_add);
    strv_free(f->cap_drop);
    strv_free(f->rlimits);
}

static const struct option run_opts[] = {
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

/* The cgroup limit flags. 1: not one of them; 0: taken; -1: bad value (said). */
static int
parse_limit_flag(int c, const char *arg, struct run_flags *f)
{
    struct sbx_limits *l = &f->limits;
    switch (c) {
    case 'm':
        if (parse_size(arg, &l->memory) < 0 || l->memory < 1 << 20)
            return bad("--memory", arg, "want a size of at least 1M like 512M, 1.5G, 512Mi");
        return 0;
    case OPT_MEMORY_SWAP:
        if (parse_size(arg, &l->memory_swap) < 0 || l->memory_swap < 1 << 20)
            return bad("--memory-swap", arg, "want a size like 1G");
        f->memory_swap = arg;
        return 0;
    case OPT_CPUS:
        if (parse_cpus(arg, &l->cpu_milli) < 0)
            return bad("--cpus", arg, "want a positive number like 0.5, 2 or 500m");
        return 0;
    case OPT_CPU_WEIGHT:
        if (parse_int64(arg, 1, 10000, &l->cpu_weight) < 0)
            return bad("--cpu-weight", arg, "want 1-10000");
        return 0;
    case OPT_PIDS:
        if (parse_int64(arg, 1, 4194304, &l->pids) < 0)
            return bad("--pids", arg, "want a positive integer");
        return 0;
    case OPT_IO_WEIGHT:
        if (parse_int64(arg, 10, 1000, &l->io_weight) < 0)
            return bad("--io-weight", arg, "want 10-1000 (OCI blockIO weight)");
        return 0;
    }
    return 1;
}

/* The supervision flags, which go to struct sbx_run_opts. 1: not one of them; 0: taken; -1: bad
 * value (said). */
static int
parse_run_opt_flag(int c, const char *arg, struct sbx_run_opts *ro)
{
    int64_t v;
    switch (c) {
    case OPT_TIMEOUT:
        if (parse_int64(arg, 1, 100000000, &v) < 0)
            return bad("--timeout", arg, "want whole seconds >= 1");
        ro->timeout_sec = v;
        return 0;
    case OPT_STATUS_FD:
        if (parse_int64(arg, 0, 1 << 20, &v) < 0 || fcntl(v, F_GETFD) < 0)
            return bad("--json-status-fd", arg, "not an open file descriptor");
        ro->json_status_fd = v;
        fcntl(v, F_SETFD, FD_CLOEXEC);
        return 0;
    case 'q': ro->quiet = true; return 0;
    case OPT_CGROUP_PARENT: ro->cgroup_parent = arg; return 0;
    case OPT_PID_FILE: ro->pid_file = arg; return 0;
    case 'd': ro->detach = true; return 0;
    case OPT_CONSOLE: ro->console_socket = arg; return 0;
    case OPT_NO_PIVOT: ro->no_pivot = true; return 0;
    case OPT_KEEP: ro->keep_state = true; return 0;
    }
    return 1;
}

/* Every other flag: the config's. 0: taken; -1: bad value or unknown flag (said). */
static int
parse_config_flag(int c, const char *arg, struct run_flags *f)
{
    int64_t v;
    switch (c) {
    case OPT_ROOTFS: f->rootfs = arg; break;
    case OPT_IMAGE: f->image = arg; break;
    case OPT_BUNDLE: f->bundle = arg; break;
    case 'u': f->user = arg; break;
    case 'e': strv_append(&f->envs, arg); break;
    case 'w': f->cwd = arg; break;
    case OPT_HOSTNAME: f->hostname = arg; break;
    case 'v': strv_append(&f->binds, arg); break;
    case OPT_TMPFS: strv_append(&f->tmpfs, arg); break;
    case OPT_NET:
        if (strcmp(arg, "none") && strcmp(arg, "host"))
            return bad("--net", arg, "want none or host");
        f->net = arg;
        break;
    case OPT_ID:
        if (!id_is_valid(arg))
            return bad("--id", arg, "letters, digits, '_', '.', '-', at most 64");
        f->id = arg;
        break;
    case OPT_ROOTFS_RW: f->rootfs_rw = true; break;
    case OPT_AS_PID1: f->as_pid1 = true; break;
    case OPT_DISK:
        if (parse_size(arg, &v) < 0 || v < 4096)
            return bad("--disk", arg, "want a size like 1G");
        f->disk = arg;
        break;
    case OPT_NOFILE:
        if (parse_int64(arg, 1, 1 << 30, &f->nofile) < 0)
            return bad("--nofile", arg, "want a positive integer");
        break;
    case OPT_RLIMIT: strv_append(&f->rlimits, arg); break;
    case OPT_SECCOMP: f->seccomp = arg; break;
    case OPT_CAP_ADD: strv_append(&f->cap_add, arg); break;
    case OPT_CAP_DROP: strv_append(&f->cap_drop, arg); break;
    case OPT_READ_ONLY: f->read_only = true; break;
    case OPT_ENTRYPOINT: f->entrypoint = arg; break;
    case OPT_VOLUME: strv_append(&f->volumes, arg); break;
    case OPT_VOLUMES_DIR: f->volumes_dir = arg; break;
    default: fprintf(stderr, "Try `sbxrun run --help`.\n"); return -1;
    }
    return 0;
}

/* The sandbox's id: --id, a bundle's ID argument, or a random one. */
static int
choose_id(struct run_flags *f)
{
    if (f->bundle && f->id == NULL && f->cmd[0]) {
        f->id = f->cmd[0];
        if (!id_is_valid(f->id))
            return bad("sandbox id", f->id, "letters, digits, '_', '.', '-', at most 64");
    }
    if (f->id == NULL) {
        random_hex(f->gen_id, 16);
        f->id = f->gen_id;
    }
    f->ro.id = f->id;
    return 0;
}

/* 0: parsed; 1: --help was printed; -1: a bad flag (said). */
static int
parse_run_flags(int argc, char **argv, struct run_flags *f)
{
    int c, r;
    while ((c = getopt_long(argc, argv, "+u:e:w:v:m:qhd", run_opts, NULL)) != -1) {
        if (c == 'h') {
            run_usage(stdout);
            return 1;
        }
        if ((r = parse_limit_flag(c, optarg, f)) == 1 &&
            (r = parse_run_opt_flag(c, optarg, &f->ro)) == 1)
            r = parse_config_flag(c, optarg, f);
        if (r < 0)
            return -1;
    }
    if (f->read_only && (f->rootfs_rw || f->disk)) {
        cli_errorf("--read-only cannot be combined with %s (a read-only root has no writable "
                   "layer)",
                   f->rootfs_rw ? "--rootfs-rw" : "--disk");
        return -1;
    }
    f->cmd = argv + optind;
    return choose_id(f);
}

static int
load_bundle_config(const struct run_flags *f, json_t **out)
{
    if (f->rootfs || f->image) {
        cli_errorf("--bundle cannot be combined with --rootfs or --image");
        return -1;
    }
    cleanup_free char *path = xasprintf("%s/config.json", f->bundle);
    json_error_t jerr;
    *out = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (*out == NULL) {
        cli_errorf("bundle `%s`: %s", f->bundle, jerr.text);
        return -1;
    }
    return 0;
}

static int
no_command(void)
{
    cli_errorf("no command given (usage: sbxrun run [OPTIONS] -- CMD [ARGS...])");
    return -1;
}

/* The root filesystem (--rootfs or --image), the user and, for a pulled image, its config's
 * defaults (Docker's rules: the flags that follow override them). */
static int
set_root_and_user(json_t *cfg, const struct run_flags *f, sbx_error_t *err)
{
    const char *images = getenv("SBX_IMAGES");
    json_t *icfg = NULL;
    if (f->rootfs) {
        if (sbx_config_set_rootfs(cfg, f->rootfs, err) < 0)
            return -1;
    } else if (sbx_config_use_image(cfg, images && *images ? images : NULL,
                                    f->image ? f->image : "host", &icfg, err) < 0) {
        /* libsbx says what is missing; the way to get it is the CLI's to name. */
        if (sbx_error_is(*err, SBX_ERR_NOT_FOUND))
            sbx_make_error_code(err, SBX_ERR_NOT_FOUND, 0, "%s (`sbxrun pull %s`)", (*err)->msg,
                                f->image ? f->image : "host");
        return -1;
    }
    uid_t uid = SBX_DEFAULT_UID;
    gid_t gid = SBX_DEFAULT_GID;
    int r = 0;
    if (f->user && parse_user(f->user, &uid, &gid) < 0)
        r = bad("--user", f->user, "want UID[:GID] with ids 0-65535");
    else if (sbx_config_set_user(cfg, uid, gid, err) < 0)
        r = -1;
    else if (icfg == NULL && f->cmd[0] == NULL)
        r = no_command();
    else if (icfg)
        r = sbx_config_apply_image_config(cfg, icfg, f->cmd, f->entrypoint, f->user != NULL, err);
    json_decref(icfg);
    return r;
}

/* sbx's default config for CMD, with the flags that only a generated config takes. */
static int
generate_config(const struct run_flags *f, json_t **out, sbx_error_t *err)
{
    if (f->cmd[0] == NULL && f->image == NULL)
        return no_command();
    if (f->rootfs && f->image) {
        cli_errorf("--rootfs and --image are mutually exclusive");
        return -1;
    }
    static char *const no_cmd[] = {(char *)"/bin/sh", NULL};
    json_t *cfg = sbx_config_new_default(f->id, f->cmd[0] ? f->cmd : no_cmd, err);
    if (cfg == NULL)
        return -1;
    if (set_root_and_user(cfg, f, err) < 0) {
        json_decref(cfg);
        return -1;
    }
    if (f->as_pid1)
        sbx_config_annotate(cfg, "run.sbx.init", NULL);
    if (f->rootfs_rw)
        sbx_config_annotate(cfg, "run.sbx.rootfs.overlay", NULL);
    if (strcmp(f->net, "host") == 0)
        sbx_config_set_net_host(cfg);
    *out = cfg;
    return 0;
}

/* --env, --cwd and --hostname. */
static int
set_process(json_t *cfg, const struct run_flags *f, sbx_error_t *err)
{
    for (char **e = f->envs; e && *e; e++)
        if (sbx_config_setenv(cfg, *e, err) < 0)
            return -1;
    if (f->cwd) {
        if (f->cwd[0] != '/')
            return bad("--cwd", f->cwd, "must be an absolute path");
        json_object_set_new(json_object_get(cfg, "process"), "cwd", json_string(f->cwd));
    }
    if (f->hostname)
        json_object_set_new(cfg, "hostname", json_string(f->hostname));
    return 0;
}

/* --bind, --tmpfs and --volume. */
static int
add_mounts(json_t *cfg, const struct run_flags *f, sbx_error_t *err)
{
    for (char **b = f->binds; b && *b; b++)
        if (sbx_config_add_bind(cfg, *b, err) < 0)
            return -1;
    for (char **t = f->tmpfs; t && *t; t++)
        if (sbx_config_add_tmpfs(cfg, *t, err) < 0)
            return -1;
    if (f->volumes && add_volumes(cfg, f->volumes, f->volumes_dir, f->cap_add, err) < 0)
        return -1;
    return 0;
}

/* --seccomp, --cap-add, --cap-drop, --disk and --read-only. */
static int
set_security_and_root(json_t *cfg, const struct run_flags *f, sbx_error_t *err)
{
    if (f->seccomp && sbx_config_set_seccomp(cfg, f->seccomp, err) < 0)
        return -1;
    if ((f->cap_add || f->cap_drop) &&
        sbx_config_caps_adjust(cfg, f->cap_add, f->cap_drop, err) < 0)
        return -1;
    if (f->disk)
        sbx_config_annotate(cfg, "run.sbx.rootfs.size", f->disk);
    if (f->read_only) {
        json_t *root = json_object_get(cfg, "root");
        if (!json_is_object(root)) {
            cli_errorf("--read-only: the config has no root object");
            return -1;
        }
        json_object_set_new(root, "readonly", json_true());
        sbx_config_annotate(cfg, "run.sbx.rootfs.overlay", NULL);
    }
    return 0;
}

/* --nofile and --rlimit. */
static int
set_rlimits(json_t *cfg, const struct run_flags *f)
{
    if (f->nofile > 0)
        sbx_config_set_rlimit(cfg, "RLIMIT_NOFILE", f->nofile, f->nofile);
    for (char **r = f->rlimits; r && *r; r++) {
        cleanup_free char *name = NULL;
        uint64_t soft, hard;
        if (parse_rlimit_flag(*r, &name, &soft, &hard) < 0)
            return bad("--rlimit", *r, "want NAME=SOFT[:HARD] with a known rlimit name");
        sbx_config_set_rlimit(cfg, name, soft, hard);
    }
    return 0;
}

/* The cgroup limits, through libsbx's one builder of linux.resources. */
static int
set_limits(json_t *cfg, const struct run_flags *f, sbx_error_t *err)
{
    const struct sbx_limits *l = &f->limits;
    if (l->memory > 0 && l->memory_swap > 0 && l->memory_swap < l->memory)
        return bad("--memory-swap", f->memory_swap, "must be at least --memory");
    return sbx_config_set_limits(cfg, l, err);
}

/* The flags that refine either a generated config or a bundle's. */
static int
refine_config(json_t *cfg, const struct run_flags *f, sbx_error_t *err)
{
    if (set_process(cfg, f, err) < 0 || add_mounts(cfg, f, err) < 0 ||
        set_security_and_root(cfg, f, err) < 0 || set_rlimits(cfg, f) < 0 ||
        set_limits(cfg, f, err) < 0)
        return -1;
    return 0;
}

/* The whole config the command line asks for; a failure is said (*err, or printed). */
static int
build_config(const struct run_flags *f, json_t **out, sbx_error_t *err)
{
    json_t *cfg = NULL;
    int r = f->bundle ? load_bundle_config(f, &cfg) : generate_config(f, &cfg, err);
    if (r < 0)
        return r;
    if (refine_config(cfg, f, err) < 0) {
        json_decref(cfg);
        return -1;
    }
    *out = cfg;
    return 0;
}

/* Runs the sandbox and waits for it (or, with --detach, until it is created): the workload's
 * exit status, or -1 with *err. Takes cfg. */
static int
run_sandbox(json_t *cfg, const struct run_flags *f, sbx_error_t *err)
{
    sbx_spec_t *spec = NULL;
    int r = sbx_spec_parse(cfg, f->bundle, &spec, err);
    json_decref(cfg);
    if (r < 0)
        return -1;
    struct sbx_exit ex;
    r = sbx_container_run(spec, &f->ro, &ex, err);
    sbx_spec_free(spec);
    return r < 0 ? -1 : ex.exit_code;
}

int
cmd_run(int argc, char **argv)
{
    __attribute__((cleanup(run_flags_free))) struct run_flags f = {
        .net = "none",
        .limits = SBX_LIMITS_UNSET,
        .nofile = -1,
        .ro = {.json_status_fd = -1, .state_root = sbx_global.root},
    };
    int r = parse_run_flags(argc, argv, &f);
    if (r != 0)
        return r > 0 ? 0 : EXIT_RUNTIME;
    sbx_error_t err = NULL;
    json_t *cfg = NULL;
    if (build_config(&f, &cfg, &err) < 0 || (r = run_sandbox(cfg, &f, &err)) < 0) {
        name_limit_options(&err, &f.limits);
        cli_error(&err); /* prints nothing when the message was printed already */
        return EXIT_RUNTIME;
    }
    return r;
}
