#include "cgroup_cmds.h"

#include "cgroup.h"
#include "cli.h"
#include "container.h"
#include "state.h"
#include "utils.h"

#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>

static int
fail(sbx_error_t *err)
{
    cli_error(err);
    return 1;
}

static int
usage(const char *verb, const char *args)
{
    cli_errorf("usage: sbxrun %s %s", verb, args);
    return 1;
}

/* Loads the sandbox and opens its cgroup; prints the error and returns 1 when it cannot. */
static int
open_sandbox(const char *state_root, const char *id, struct sbx_state **st, struct sbx_cgroup **cg)
{
    sbx_error_t err = NULL;
    if (!id_is_valid(id)) {
        cli_errorf("invalid sandbox id `%s`", id);
        return 1;
    }
    if (sbx_state_load(state_root ? state_root : SBX_DEFAULT_STATE_ROOT, id, st, &err) < 0)
        return fail(&err);
    const char *now = sbx_state_current_status(*st);
    if (strcmp(now, "stopped") == 0) {
        cli_errorf("sandbox `%s` is not running", id);
        return 1;
    }
    if ((*st)->cgroup == NULL) {
        cli_errorf("sandbox `%s` has no cgroup (cgroups were disabled)", id);
        return 1;
    }
    if (sbx_cgroup_open((*st)->cgroup, cg, &err) < 0) {
        sbx_error_wrap(&err, "sandbox `%s`", id);
        return fail(&err);
    }
    return 0;
}

static int
freeze_cmd(int argc, char **argv, const char *state_root, bool frozen)
{
    if (argc != 2 || argv[1][0] == '-')
        return usage(argv[0], "ID");
    if (!id_is_valid(argv[1])) {
        cli_errorf("invalid sandbox id `%s`", argv[1]);
        return 1;
    }
    sbx_error_t err = NULL;
    int r = frozen ? sbx_container_pause(state_root, argv[1], &err)
                   : sbx_container_resume(state_root, argv[1], &err);
    return r < 0 ? fail(&err) : 0;
}

int
cmd_pause(int argc, char **argv, const char *state_root)
{
    return freeze_cmd(argc, argv, state_root, true);
}

int
cmd_resume(int argc, char **argv, const char *state_root)
{
    return freeze_cmd(argc, argv, state_root, false);
}

static char *
pid_cmdline(pid_t pid)
{
    char path[64];
    char *buf = NULL;
    size_t len = 0;
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    if (read_file(path, &buf, &len, NULL) < 0)
        return xstrdup("?");
    for (size_t i = 0; i + 1 < len; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    return buf;
}

int
cmd_ps(int argc, char **argv, const char *state_root)
{
    static const struct option opts[] = {{"format", required_argument, NULL, 'f'},
                                         {NULL, 0, NULL, 0}};
    const char *format = "table";
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "f:", opts, NULL)) != -1) {
        if (c != 'f')
            return usage(argv[0], "ID [--format json|table]");
        format = optarg;
    }
    if (strcmp(format, "json") && strcmp(format, "table")) {
        cli_errorf("ps: unknown format `%s` (json or table)", format);
        return 1;
    }
    if (argc - optind != 1)
        return usage(argv[0], "ID [--format json|table]");

    struct sbx_state *st = NULL;
    struct sbx_cgroup *cg = NULL;
    int rc = open_sandbox(state_root, argv[optind], &st, &cg);
    if (rc == 0) {
        sbx_error_t err = NULL;
        pid_t *pids = NULL;
        size_t n = 0;
        if (sbx_cgroup_pids(cg, &pids, &n, &err) < 0)
            rc = fail(&err);
        else if (strcmp(format, "json") == 0) {
            json_t *a = json_array();
            for (size_t i = 0; i < n; i++)
                json_array_append_new(a, json_integer(pids[i]));
            char *s = json_dumps(a, JSON_COMPACT);
            puts(s);
            free(s);
            json_decref(a);
        } else {
            printf("%-8s %s\n", "PID", "CMD");
            for (size_t i = 0; i < n; i++) {
                char *cmd = pid_cmdline(pids[i]);
                printf("%-8d %s\n", (int)pids[i], cmd);
                free(cmd);
            }
        }
        free(pids);
    }
    sbx_cgroup_free(cg);
    sbx_state_free(st);
    return rc;
}

int
cmd_stats(int argc, char **argv, const char *state_root)
{
    if (argc != 2 || argv[1][0] == '-')
        return usage(argv[0], "ID");
    struct sbx_state *st = NULL;
    struct sbx_cgroup *cg = NULL;
    int rc = open_sandbox(state_root, argv[1], &st, &cg);
    if (rc == 0) {
        sbx_error_t err = NULL;
        struct sbx_cgroup_stats s;
        if (sbx_cgroup_stats(cg, &s, &err) < 0)
            rc = fail(&err);
        else {
            json_t *o =
                json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:b}", "id", argv[1], "memory_current",
                          (json_int_t)s.memory_current, "memory_peak", (json_int_t)s.memory_peak,
                          "cpu_usec", (json_int_t)s.cpu_usec, "pids", (json_int_t)s.pids_current,
                          "oom_kills", (json_int_t)s.oom_kills, "frozen", s.frozen);
            char *str = json_dumps(o, JSON_COMPACT);
            puts(str);
            free(str);
            json_decref(o);
        }
    }
    sbx_cgroup_free(cg);
    sbx_state_free(st);
    return rc;
}
