#include "cli.h"
#include "utils.h"

#include <getopt.h>

static int
need_id(int argc, char **argv, const char *usage)
{
    if (optind >= argc) {
        cli_errorf("missing sandbox id (usage: sbxrun %s)", usage);
        return -1;
    }
    return 0;
}

int
cmd_kill(int argc, char **argv)
{
    static const struct option opts[] = {
        {"all", no_argument, NULL, 'a'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    bool all = false;
    int c;
    while ((c = getopt_long(argc, argv, "+ah", opts, NULL)) != -1) {
        if (c == 'a')
            all = true;
        else if (c == 'h') {
            printf("Usage: sbxrun kill [--all] ID [SIGNAL]\n"
                   "Sends SIGNAL (default TERM; a name or number) to the sandbox's main process,\n"
                   "or with --all to every process in it. KILL ends the whole sandbox.\n");
            return 0;
        } else
            return EXIT_RUNTIME;
    }
    if (need_id(argc, argv, "kill [--all] ID [SIGNAL]") < 0)
        return 1;
    const char *id = argv[optind];
    int sig = SIGTERM;
    if (optind + 1 < argc && (sig = parse_signal(argv[optind + 1])) < 0) {
        cli_errorf("invalid signal `%s`", argv[optind + 1]);
        return 1;
    }
    sbx_error_t err = NULL;
    if (sbx_container_kill(sbx_global.root, id, sig, all, &err) < 0) {
        cli_error(&err);
        return 1;
    }
    return 0;
}

int
cmd_delete(int argc, char **argv)
{
    static const struct option opts[] = {
        {"force", no_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    bool force = false;
    int c;
    while ((c = getopt_long(argc, argv, "+fh", opts, NULL)) != -1) {
        if (c == 'f')
            force = true;
        else if (c == 'h') {
            printf("Usage: sbxrun delete [--force] ID\n"
                   "Removes a stopped sandbox; --force kills a running one first.\n");
            return 0;
        } else
            return EXIT_RUNTIME;
    }
    if (need_id(argc, argv, "delete [--force] ID") < 0)
        return 1;
    sbx_error_t err = NULL;
    if (sbx_container_delete(sbx_global.root, argv[optind], force, &err) < 0) {
        /* runc semantics: `delete --force` of an unknown id succeeds (containerd's shim calls it
         * again while cleaning up after a delete). */
        if (force && err && err->status == ENOENT) {
            sbx_error_release(&err);
            return 0;
        }
        /* libsbx says "by force"; here that is an option. */
        if (!force && sbx_error_is(err, SBX_ERR_BUSY))
            sbx_error_wrap(&err, "delete without --force");
        cli_error(&err);
        return 1;
    }
    return 0;
}

int
cmd_list(int argc, char **argv)
{
    static const struct option opts[] = {{"format", required_argument, NULL, 'f'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {NULL, 0, NULL, 0}};
    bool json = false, quiet = false;
    int c;
    while ((c = getopt_long(argc, argv, "+f:q", opts, NULL)) != -1) {
        if (c == 'f')
            json = strcmp(optarg, "json") == 0;
        else if (c == 'q')
            quiet = true;
        else
            return EXIT_RUNTIME;
    }
    sbx_error_t err = NULL;
    cleanup_strv char **ids = NULL;
    if (sbx_state_list(sbx_global.root, &ids, &err) < 0) {
        cli_error(&err);
        return 1;
    }
    json_t *arr = json_array();
    if (!json && !quiet)
        printf("%-24s %-8s %-9s %s\n", "ID", "PID", "STATUS", "CREATED");
    for (char **id = ids; *id; id++) {
        struct sbx_state *st = NULL;
        if (sbx_state_load(sbx_global.root, *id, &st, NULL) < 0)
            continue;
        const char *status = sbx_state_current_status(st);
        if (json)
            json_array_append_new(arr, json_pack("{s:s,s:i,s:s,s:s,s:s}", "id", st->id, "pid",
                                                 st->pid, "status", status, "bundle",
                                                 st->bundle ? st->bundle : "", "created",
                                                 st->created ? st->created : ""));
        else if (quiet)
            printf("%s\n", st->id);
        else
            printf("%-24s %-8d %-9s %s\n", st->id, st->pid, status, st->created ? st->created : "");
        sbx_state_free(st);
    }
    if (json) {
        char *s = json_dumps(arr, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
    }
    json_decref(arr);
    return 0;
}

int
cmd_state(int argc, char **argv)
{
    if (argc < 2) {
        cli_errorf("missing sandbox id (usage: sbxrun state ID)");
        return 1;
    }
    sbx_error_t err = NULL;
    struct sbx_state *st = NULL;
    if (sbx_state_load(sbx_global.root, argv[1], &st, &err) < 0) {
        cli_error(&err);
        return 1;
    }
    const char *status = sbx_state_current_status(st);
    if (strcmp(status, "running") && strcmp(status, "paused") && strcmp(status, "created") &&
        strcmp(status, "stopped"))
        status = "creating";
    cleanup_free char *json = sbx_state_oci_json(st, status);
    json_t *o = json_loads(json, 0, NULL);
    char *s = json_dumps(o, JSON_INDENT(2));
    printf("%s\n", s);
    free(s);
    json_decref(o);
    sbx_state_free(st);
    return 0;
}
