#include "cli.h"
#include "cgroup_cmds.h"
#include "utils.h"

#include <getopt.h>
#include <stdarg.h>
#include <time.h>

/* The default by identity, so "no --root given" is a pointer test (clang's -Wstring-compare
 * rightly refuses comparing against a literal). */
static const char default_root[] = SBX_DEFAULT_STATE_ROOT;
struct sbx_global sbx_global = {.root = default_root};

/* containerd reads the last "msg" of a JSON log to explain a failure, so errors go there too. */
static void
log_line(const char *level, const char *msg)
{
    if (sbx_global.log_file == NULL)
        return;
    FILE *f = fopen(sbx_global.log_file, "ae");
    if (f == NULL)
        return;
    cleanup_free char *now = sbx_now_rfc3339();
    if (sbx_global.log_json) {
        json_t *o = json_pack("{s:s,s:s,s:s}", "level", level, "msg", msg, "time", now);
        char *s = json_dumps(o, JSON_COMPACT);
        fprintf(f, "%s\n", s);
        free(s);
        json_decref(o);
    } else {
        fprintf(f, "%s %s: %s\n", now, level, msg);
    }
    fclose(f);
}

void
cli_errorf(const char *fmt, ...)
{
    va_list ap;
    char *msg;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        abort();
    va_end(ap);
    fprintf(stderr, "sbxrun: %s\n", msg);
    log_line("error", msg);
    free(msg);
}

void
cli_error(sbx_error_t *err)
{
    if (err && *err)
        cli_errorf("%s", (*err)->msg);
    sbx_error_release(err);
}

static int
cmd_pause_verb(int argc, char **argv)
{
    return cmd_pause(argc, argv, sbx_global.root);
}

static int
cmd_resume_verb(int argc, char **argv)
{
    return cmd_resume(argc, argv, sbx_global.root);
}

static int
cmd_ps_verb(int argc, char **argv)
{
    return cmd_ps(argc, argv, sbx_global.root);
}

static int
cmd_stats_verb(int argc, char **argv)
{
    return cmd_stats(argc, argv, sbx_global.root);
}

/* The image verbs live in sbx-image (libcurl, libarchive, OpenSSL), which sbxrun's static,
 * per-start binary does without: sbxrun execs it from its own directory, else from PATH. */
static int
cmd_image_exec(int argc, char **argv)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash && (size_t)(slash - self) + sizeof("/sbx-image") < sizeof(self)) {
            strcpy(slash, "/sbx-image");
            argv[-1] = self; /* argv[0] of sbx-image; its verb is argv[0] here */
            execv(self, argv - 1);
        }
    }
    argv[-1] = (char *)"sbx-image";
    execvp("sbx-image", argv - 1);
    cli_errorf("`%s` needs sbx-image, installed beside sbxrun (%s)", argv[0], strerror(errno));
    (void)argc;
    return EXIT_RUNTIME;
}

struct command {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
};

static const struct command commands[] = {
    {"run", cmd_run, "run a command (or an OCI bundle) in a new sandbox and wait for it"},
    {"create", cmd_create, "create a sandbox from an OCI bundle, stopped before its process"},
    {"start", cmd_start, "run the process of a created sandbox"},
    {"exec", cmd_exec, "run another process in a running sandbox"},
    {"spec", cmd_spec, "write a starting config.json (sbx's defaults) into a bundle"},
    {"features", cmd_features, "print the OCI features this runtime supports, as JSON"},
    {"kill", cmd_kill, "send a signal to a running sandbox"},
    {"delete", cmd_delete, "remove a stopped sandbox (--force: kill it first)"},
    {"list", cmd_list, "list sandboxes in the state directory"},
    {"state", cmd_state, "print a sandbox's OCI state as JSON"},
    {"pause", cmd_pause_verb, "freeze every process of a sandbox"},
    {"resume", cmd_resume_verb, "thaw a paused sandbox"},
    {"ps", cmd_ps_verb, "list the processes of a sandbox"},
    {"stats", cmd_stats_verb, "print a sandbox's resource usage as JSON"},
    {"update", cmd_update, "change a sandbox's limits: its cgroup and its recorded config"},
    {"pull", cmd_image_exec, "pull an OCI image from a registry into the image store"},
    {"images", cmd_image_exec, "list the images in the store (--format json)"},
    {"rmi", cmd_image_exec, "remove images (refused while a sandbox uses them)"},
    {"load", cmd_image_exec, "load images from a `docker save` or OCI archive"},
    {"image", cmd_image_exec, "image ls|pull|load|rm|prune|inspect"},
};

static void
usage(FILE *f)
{
    fprintf(f,
            "Usage: sbxrun [GLOBAL OPTIONS] COMMAND [ARGS...]\n\n"
            "Run untrusted code in a Linux sandbox: new user, pid, mount, network, uts, ipc and\n"
            "cgroup namespaces, cgroup limits, no capabilities, a seccomp filter, own rootfs.\n\n"
            "Commands:\n");
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nGlobal options:\n"
               "  --root DIR          state directory (default " SBX_DEFAULT_STATE_ROOT ")\n"
               "  --log FILE          append errors to FILE\n"
               "  --log-format FMT    text or json\n"
               "  --debug             print a timeline of each sandbox's start and end (ms)\n"
               "  --systemd-cgroup    accepted for runc compatibility; not supported (error)\n"
               "  -h, --help          this help;  -v, --version  version\n\n"
               "`sbxrun COMMAND --help` describes each command. Exit status of `run`: the\n"
               "workload's own; 128+N if killed by signal N; 124 timeout; 125 sbxrun failed;\n"
               "126 command not executable; 127 command not found.\n");
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"root", required_argument, NULL, 'r'},
        {"log", required_argument, NULL, 'l'},
        {"log-format", required_argument, NULL, 'f'},
        {"systemd-cgroup", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'v'},
        {"debug", no_argument, NULL, 'd'},
        {NULL, 0, NULL, 0},
    };
    int c;
    /* '+': stop at the first non-option, the command name. */
    while ((c = getopt_long(argc, argv, "+hv", opts, NULL)) != -1) {
        switch (c) {
        case 'r': sbx_global.root = optarg; break;
        case 'l': sbx_global.log_file = optarg; break;
        case 'f':
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "text") != 0) {
                cli_errorf("invalid --log-format `%s` (want text or json)", optarg);
                return EXIT_RUNTIME;
            }
            sbx_global.log_json = strcmp(optarg, "json") == 0;
            break;
        case 's': sbx_global.systemd_cgroup = true; break;
        case 'd': sbx_trace_start(); break;
        case 'h': usage(stdout); return 0;
        case 'v': printf("sbxrun version %s\nspec: 1.0.2\n", SBX_VERSION); return 0;
        default: usage(stderr); return EXIT_RUNTIME;
        }
    }
    /* An unprivileged caller cannot write /run/sbx; keep its state in its own runtime dir. */
    static char rootless_root[PATH_MAX];
    if (geteuid() != 0 && sbx_global.root == default_root) {
        const char *xdg = getenv("XDG_RUNTIME_DIR");
        if (xdg && *xdg)
            snprintf(rootless_root, sizeof(rootless_root), "%s/sbx", xdg);
        else
            snprintf(rootless_root, sizeof(rootless_root), "/tmp/sbx-%u", geteuid());
        sbx_global.root = rootless_root;
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_RUNTIME;
    }
    if (sbx_global.systemd_cgroup) {
        cli_errorf("--systemd-cgroup is not supported: sbxrun manages cgroupfs directly");
        return EXIT_RUNTIME;
    }
    const char *name = argv[optind];
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
        if (strcmp(name, commands[i].name) == 0) {
            int first = optind;
            optind = 0; /* reset getopt for the verb (0 also re-reads GNU extensions) */
            return commands[i].fn(argc - first, argv + first);
        }
    cli_errorf("unknown command `%s` (see sbxrun --help)", name);
    return EXIT_RUNTIME;
}
