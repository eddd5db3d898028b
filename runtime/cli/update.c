/* `sbxrun update`: runc's verb, changing a live sandbox's limits with sbx_container_update(). */
#include "cli.h"
#include "resources.h"
#include "update.h"
#include "utils.h"

#include <getopt.h>

static void
update_usage(FILE *f)
{
    fprintf(f,
            "Usage: sbxrun update [OPTIONS] ID\n\n"
            "Changes the resource limits of a created, running or paused sandbox, as `runc\n"
            "update` does: its cgroup and its recorded config (<root>/ID/config.json, kept by\n"
            "`create` and `run --detach`) together. Limits left out stay as they are. A sandbox\n"
            "of a plain `sbxrun run` has no recorded config: only its cgroup changes.\n\n"
            "  -r, --resources FILE|-     OCI linux.resources JSON from FILE or stdin, as runc\n"
            "                             reads it: memory.limit/swap/reservation, cpu.shares/\n"
            "                             quota/period/cpus/mems, pids.limit, blockIO.weight,\n"
            "                             unified; devices are ignored (as runc does), anything\n"
            "                             else is refused. Not with the flags below\n"
            "      --memory SIZE          memory limit (at least 1M); swap is off unless\n"
            "                             --memory-swap is given, as with `run`\n"
            "      --memory-swap SIZE     memory+swap limit, at least the memory limit\n"
            "      --memory-reservation SIZE  soft limit (v2: memory.low)\n"
            "      --cpu-quota USEC       CFS quota per period (at least 1000)\n"
            "      --cpu-period USEC      CFS period (1000-1000000)\n"
            "      --cpu-share N          CPU shares 2-262144 (also --cpu-shares)\n"
            "      --cpuset-cpus LIST     CPUs to run on, e.g. 0-3,6\n"
            "      --cpuset-mems LIST     memory nodes, e.g. 0,1\n"
            "      --pids-limit N         max processes (at least 1)\n"
            "      --blkio-weight N       relative block IO weight 10-1000\n"
            "  -h, --help                 this help\n\n"
            "SIZE as for `run`: bytes, or K, M, G, T (powers of 1024). 0 leaves a limit as it\n"
            "is, as with runc; -1 (\"unlimited\") is refused: sbx does not lift a limit.\n"
            "runc's --cpu-burst, --cpu-rt-period, --cpu-rt-runtime, --cpu-idle,\n"
            "--kernel-memory, --kernel-memory-tcp, --l3-cache-schema and --mem-bw-schema are\n"
            "refused (sbx has no such limit).\n\n"
            "Exit status: 0 updated; 1 the update was refused or failed (the message names the\n"
            "value, and says what the sandbox has if anything changed); 125 a usage error.\n");
}

enum {
    U_MEMORY = 256,
    U_MEMORY_SWAP,
    U_MEMORY_RESERVATION,
    U_CPU_QUOTA,
    U_CPU_PERIOD,
    U_CPU_SHARES,
    U_CPUSET_CPUS,
    U_CPUSET_MEMS,
    U_PIDS_LIMIT,
    U_BLKIO_WEIGHT,
    U_UNSUPPORTED,
};

static const struct option update_opts[] = {
    {"resources", required_argument, NULL, 'r'},
    {"memory", required_argument, NULL, U_MEMORY},
    {"memory-swap", required_argument, NULL, U_MEMORY_SWAP},
    {"memory-reservation", required_argument, NULL, U_MEMORY_RESERVATION},
    {"cpu-quota", required_argument, NULL, U_CPU_QUOTA},
    {"cpu-period", required_argument, NULL, U_CPU_PERIOD},
    {"cpu-share", required_argument, NULL, U_CPU_SHARES},
    {"cpu-shares", required_argument, NULL, U_CPU_SHARES},
    {"cpuset-cpus", required_argument, NULL, U_CPUSET_CPUS},
    {"cpuset-mems", required_argument, NULL, U_CPUSET_MEMS},
    {"pids-limit", required_argument, NULL, U_PIDS_LIMIT},
    {"blkio-weight", required_argument, NULL, U_BLKIO_WEIGHT},
    {"cpu-burst", required_argument, NULL, U_UNSUPPORTED},
    {"cpu-rt-period", required_argument, NULL, U_UNSUPPORTED},
    {"cpu-rt-runtime", required_argument, NULL, U_UNSUPPORTED},
    {"cpu-idle", required_argument, NULL, U_UNSUPPORTED},
    {"kernel-memory", required_argument, NULL, U_UNSUPPORTED},
    {"kernel-memory-tcp", required_argument, NULL, U_UNSUPPORTED},
    {"l3-cache-schema", required_argument, NULL, U_UNSUPPORTED},
    {"mem-bw-schema", required_argument, NULL, U_UNSUPPORTED},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int
bad_value(const char *flag, const char *value, const char *want)
{
    cli_errorf("invalid --%s `%s`: %s", flag, value, want);
    return -1;
}

/* "-1" is runc's "unlimited", which sbx does not do. */
static int
refuse_unlimited(const char *flag, const char *value)
{
    return bad_value(flag, value,
                     "sbx cannot lift a limit (\"unlimited\" is not supported); give a value");
}

static int
size_flag(const char *flag, const char *arg, int64_t min, int64_t *out)
{
    if (strcmp(arg, "-1") == 0)
        return refuse_unlimited(flag, arg);
    if (parse_size(arg, out) < 0 || (*out != 0 && *out < min))
        return bad_value(flag, arg,
                         min > 1
                             ? "want a size of at least 1M like 512M, 1.5G, 512Mi (0: unchanged)"
                             : "want a size like 512M, 1G or bytes (0: unchanged)");
    return 0;
}

static int
int_flag(const char *flag, const char *arg, int64_t *out)
{
    if (strcmp(arg, "-1") == 0)
        return refuse_unlimited(flag, arg);
    if (parse_int64(arg, 0, INT64_MAX, out) < 0)
        return bad_value(flag, arg, "want a whole number");
    return 0;
}

/* One limit flag into l. -1: a bad value or a refused flag (said). */
static int
limit_flag(int c, const char *name, const char *arg, struct sbx_limits *l)
{
    switch (c) {
    case U_MEMORY: return size_flag(name, arg, 1 << 20, &l->memory);
    case U_MEMORY_SWAP: return size_flag(name, arg, 1 << 20, &l->memory_swap);
    case U_MEMORY_RESERVATION: return size_flag(name, arg, 1, &l->memory_reservation);
    case U_CPU_QUOTA: return int_flag(name, arg, &l->cpu_quota);
    case U_CPU_PERIOD: return int_flag(name, arg, &l->cpu_period);
    case U_CPU_SHARES: return int_flag(name, arg, &l->cpu_shares);
    case U_PIDS_LIMIT: return int_flag(name, arg, &l->pids);
    case U_BLKIO_WEIGHT: return int_flag(name, arg, &l->io_weight);
    case U_CPUSET_CPUS: l->cpuset_cpus = arg; return 0;
    case U_CPUSET_MEMS: l->cpuset_mems = arg; return 0;
    case U_UNSUPPORTED: cli_errorf("--%s is not supported: sbx has no such limit", name); return -1;
    }
    fprintf(stderr, "Try `sbxrun update --help`.\n");
    return -1;
}

/* -r FILE|-: the linux.resources object; NULL when it cannot be read (said). */
static json_t *
read_resources(const char *file)
{
    json_error_t jerr;
    json_t *res = strcmp(file, "-") == 0 ? json_loadf(stdin, JSON_REJECT_DUPLICATES, &jerr)
                                         : json_load_file(file, JSON_REJECT_DUPLICATES, &jerr);
    if (res == NULL && jerr.line > 0)
        cli_errorf("--resources `%s`: %s (line %d)", file, jerr.text, jerr.line);
    else if (res == NULL)
        cli_errorf("--resources `%s`: %s", file, jerr.text);
    return res;
}

int
cmd_update(int argc, char **argv)
{
    struct sbx_limits l = SBX_LIMITS_UNSET;
    const char *file = NULL;
    bool flags = false;
    int c, idx = -1;
    while ((c = getopt_long(argc, argv, "r:h", update_opts, &idx)) != -1) {
        if (c == 'h') {
            update_usage(stdout);
            return 0;
        }
        if (c == 'r') {
            file = optarg;
            continue;
        }
        const char *name = c >= U_MEMORY && idx >= 0 ? update_opts[idx].name : "?";
        if (limit_flag(c, name, optarg, &l) < 0)
            return EXIT_RUNTIME;
        flags = true;
        idx = -1;
    }
    if (optind != argc - 1) {
        cli_errorf("want one sandbox id (usage: sbxrun update [OPTIONS] ID)");
        return EXIT_RUNTIME;
    }
    if (file && flags) {
        cli_errorf("--resources cannot be combined with the limit flags (runc ignores them; "
                   "sbx refuses)");
        return EXIT_RUNTIME;
    }
    if (!file && !flags) {
        cli_errorf("nothing to update: give --resources FILE|- or a limit flag (see --help)");
        return EXIT_RUNTIME;
    }
    sbx_error_t err = NULL;
    json_t *res = file ? read_resources(file) : sbx_limits_resources(&l, &err);
    if (res == NULL) {
        cli_error(&err);
        return EXIT_RUNTIME;
    }
    int r = sbx_container_update(sbx_global.root, argv[optind], NULL, res, &err);
    json_decref(res);
    if (r < 0) {
        cli_error(&err);
        return 1;
    }
    return 0;
}
