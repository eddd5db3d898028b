/* The runc command-line verbs that engines (containerd's shim, the runtime-tools suite) drive:
 * create, start, exec and features. run/kill/delete/state/list/ps/pause/resume live elsewhere. */
#include "cli.h"
#include "config.h"
#include "utils.h"

#include <fcntl.h>
#include <getopt.h>
#include <linux/capability.h>

int
cmd_create(int argc, char **argv)
{
    static const struct option opts[] = {
        {"bundle", required_argument, NULL, 'b'},
        {"pid-file", required_argument, NULL, 'p'},
        {"console-socket", required_argument, NULL, 'c'},
        {"no-pivot", no_argument, NULL, 'n'},
        {"no-new-keyring", no_argument, NULL, 'k'},
        {"preserve-fds", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *bundle = ".";
    struct sbx_run_opts ro = {
        .json_status_fd = -1, .state_root = sbx_global.root, .detach = true, .keep_state = true};
    int c;
    while ((c = getopt_long(argc, argv, "+b:h", opts, NULL)) != -1) {
        switch (c) {
        case 'b': bundle = optarg; break;
        case 'p': ro.pid_file = optarg; break;
        case 'c': ro.console_socket = optarg; break;
        case 'n': ro.no_pivot = true; break;
        case 'k':
        case 'f': break; /* accepted for runc compatibility */
        case 'h':
            printf("Usage: sbxrun create [--bundle DIR] [--pid-file F] [--console-socket S] ID\n"
                   "Creates the sandbox of an OCI bundle and stops before running its process;\n"
                   "`sbxrun start ID` runs it.\n");
            return 0;
        default: return EXIT_RUNTIME;
        }
    }
    if (optind >= argc) {
        cli_errorf("missing sandbox id (usage: sbxrun create [--bundle DIR] ID)");
        return 1;
    }
    ro.id = argv[optind];
    sbx_error_t err = NULL;
    sbx_spec_t *spec = NULL;
    if (sbx_spec_load_bundle(bundle, &spec, &err) < 0) {
        cli_error(&err);
        return 1;
    }
    struct sbx_exit ex;
    int r = sbx_container_run(spec, &ro, &ex, &err);
    sbx_spec_free(spec);
    if (r < 0) {
        cli_error(&err);
        return 1;
    }
    return 0;
}

int
cmd_start(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        cli_errorf("usage: sbxrun start ID");
        return 1;
    }
    sbx_error_t err = NULL;
    if (sbx_container_start(sbx_global.root, argv[1], &err) < 0) {
        cli_error(&err);
        return 1;
    }
    return 0;
}

int
cmd_exec(int argc, char **argv)
{
    static const struct option opts[] = {
        {"process", required_argument, NULL, 'p'},
        {"detach", no_argument, NULL, 'd'},
        {"pid-file", required_argument, NULL, 'P'},
        {"console-socket", required_argument, NULL, 'c'},
        {"tty", no_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct sbx_exec_opts eo = {0};
    const char *process = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "+p:dth", opts, NULL)) != -1) {
        switch (c) {
        case 'p': process = optarg; break;
        case 'd': eo.detach = true; break;
        case 'P': eo.pid_file = optarg; break;
        case 'c': eo.console_socket = optarg; break;
        case 't': break; /* a terminal comes from process.json's `terminal` */
        case 'h':
            printf("Usage: sbxrun exec [--process FILE] [--detach] [--pid-file F] "
                   "[--console-socket S] ID [CMD [ARGS...]]\n"
                   "Runs another process in a running sandbox, in all its namespaces and its\n"
                   "cgroup, with its seccomp filter. Exit status: the process's own.\n");
            return 0;
        default: return EXIT_RUNTIME;
        }
    }
    if (optind >= argc || (process == NULL && optind + 1 >= argc)) {
        cli_errorf("usage: sbxrun exec [--process FILE | ID CMD [ARGS...]]");
        return EXIT_RUNTIME;
    }
    const char *id = argv[optind];
    json_t *proc = NULL;
    if (process) {
        json_error_t jerr;
        proc = json_load_file(process, 0, &jerr);
        if (proc == NULL) {
            cli_errorf("process file `%s`: %s", process, jerr.text);
            return EXIT_RUNTIME;
        }
    }
    eo.process = proc;
    eo.args = argv + optind + 1;
    sbx_error_t err = NULL;
    int code = EXIT_RUNTIME;
    int r = sbx_container_exec(sbx_global.root, id, &eo, &code, &err);
    json_decref(proc);
    if (r < 0) {
        cli_error(&err);
        return code ? code : EXIT_RUNTIME;
    }
    return eo.detach ? 0 : code;
}

/* runc spec: a starting config.json for a bundle. It is sbx's own default (every namespace,
 * id maps from /etc/subuid, seccomp, masked paths, limits), not runc's, so a bundle made with it
 * runs the way `sbxrun run` does. O_EXCL: an existing config is never overwritten. */
int
cmd_spec(int argc, char **argv)
{
    static const struct option opts[] = {
        {"bundle", required_argument, NULL, 'b'},
        {"rootless", no_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *bundle = ".";
    int c;
    while ((c = getopt_long(argc, argv, "+b:h", opts, NULL)) != -1) {
        switch (c) {
        case 'b': bundle = optarg; break;
        case 'r':
            cli_errorf("spec --rootless: not supported (sbxrun runs as root and maps the sandbox "
                       "to the subordinate ids of user `sbx`, which the default config holds)");
            return 1;
        case 'h':
            printf("Usage: sbxrun spec [--bundle DIR]\n"
                   "Writes DIR/config.json (default: the current directory): sbx's default\n"
                   "config, running `sh` in DIR/rootfs. An existing config.json is left alone.\n"
                   "Exit status: 0 written, 1 error.\n");
            return 0;
        default: return 1;
        }
    }
    if (optind < argc) {
        cli_errorf("spec: unexpected argument `%s` (usage: sbxrun spec [--bundle DIR])",
                   argv[optind]);
        return 1;
    }
    sbx_error_t err = NULL;
    char *const args[] = {"sh", NULL};
    json_t *cfg = sbx_config_new_default("sandbox", args, &err);
    if (cfg == NULL) {
        cli_error(&err);
        return 1;
    }
    cleanup_free char *text = json_dumps(cfg, JSON_INDENT(2));
    json_decref(cfg);
    cleanup_free char *path = xasprintf("%s/config.json", bundle);
    cleanup_close int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        if (errno == EEXIST)
            cli_errorf("spec: `%s` exists; remove it first", path);
        else
            cli_errorf("spec: create `%s`: %s", path, strerror(errno));
        return 1;
    }
    size_t len = strlen(text);
    if (safe_write(fd, text, len) != (ssize_t)len || safe_write(fd, "\n", 1) != 1) {
        cli_errorf("spec: write `%s`: %s", path, strerror(errno));
        unlink(path);
        return 1;
    }
    return 0;
}

static json_t *
str_array(const char *const *v)
{
    json_t *a = json_array();
    for (; *v; v++)
        json_array_append_new(a, json_string(*v));
    return a;
}

/* runtime-spec features.md: what this build honours, so engines can check before creating. */
int
cmd_features(int argc, char **argv)
{
    static const char *const hooks[] = {
        "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop",
        NULL};
    static const char *const mount_opts[] = {
        "ro",         "rw",          "nosuid",      "suid",          "nodev",    "dev",
        "noexec",     "exec",        "sync",        "async",         "dirsync",  "remount",
        "mand",       "nomand",      "atime",       "noatime",       "diratime", "nodiratime",
        "relatime",   "norelatime",  "strictatime", "nostrictatime", "bind",     "rbind",
        "private",    "rprivate",    "shared",      "rshared",       "slave",    "rslave",
        "unbindable", "runbindable", NULL};
    static const char *const namespaces[] = {"user", "pid", "mount",  "network",
                                             "uts",  "ipc", "cgroup", NULL};
    static const char *const actions[] = {
        "SCMP_ACT_ALLOW",       "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",  "SCMP_ACT_LOG",  NULL};
    static const char *const operators[] = {"SCMP_CMP_NE",        "SCMP_CMP_LT", "SCMP_CMP_LE",
                                            "SCMP_CMP_EQ",        "SCMP_CMP_GE", "SCMP_CMP_GT",
                                            "SCMP_CMP_MASKED_EQ", NULL};
    static const char *const archs[] = {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", NULL};
    json_t *caps = json_array();
    for (int i = 0; i <= CAP_LAST_CAP; i++) {
        const char *n = sbx_cap_name(i);
        if (n)
            json_array_append_new(caps, json_string(n));
    }
    json_t *lx =
        json_pack("{s:o,s:o,s:{s:b,s:b,s:b},s:{s:b,s:o,s:o,s:o},s:{s:b},s:{s:b}}", "namespaces",
                  str_array(namespaces), "capabilities", caps, "cgroup", "v1", true, "v2", true,
                  "systemd", false, "seccomp", "enabled", true, "actions", str_array(actions),
                  "operators", str_array(operators), "archs", str_array(archs), "apparmor",
                  "enabled", false, "selinux", "enabled", false);
    json_t *o = json_pack("{s:s,s:s,s:o,s:o,s:o,s:{s:s}}", "ociVersionMin", "1.0.0",
                          "ociVersionMax", "1.1.0", "hooks", str_array(hooks), "mountOptions",
                          str_array(mount_opts), "linux", lx, "annotations", "run.sbx.init",
                          "true: a tiny init is PID 1, reaps orphans and forwards signals");
    char *s = json_dumps(o, JSON_INDENT(2));
    printf("%s\n", s);
    free(s);
    json_decref(o);
    return 0;
}
