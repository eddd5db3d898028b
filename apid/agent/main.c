/* sbx-agent: the in-sandbox execd-compatible agent. See agent_srv.h for the files of the server and
 * CONTRACT.md Part B for the wire contract. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"

extern char **environ;

static void
usage(void)
{
    fprintf(stderr, "usage: sbx-agent [--listen ADDR:PORT] [--token-file PATH] [--max-commands N] "
                    "[--max-body BYTES]\n"
                    "                 [--user UID:GID] [--workdir DIR [--workdir-group GID]]\n"
                    "                 [-- ENTRYPOINT ARGS...]\n"
                    "The token may also come from the environment variable SBX_AGENT_TOKEN.\n");
    exit(2);
}

static char *
read_token_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        fprintf(stderr, "sbx-agent: token file %s: %s\n", path, strerror(errno));
        exit(1);
    }
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        fprintf(stderr, "sbx-agent: token file %s is empty\n", path);
        exit(1);
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    /* The token exists once, in this process: the file goes away so nothing else can read it. */
    if (unlink(path) < 0)
        fprintf(stderr, "sbx-agent: warning: cannot remove token file %s: %s\n", path,
                strerror(errno));
    char *t = malloc((size_t)n + 1);
    if (t == NULL)
        exit(1);
    memcpy(t, buf, (size_t)n);
    t[n] = 0;
    *len = (size_t)n;
    explicit_bzero(buf, sizeof(buf));
    return t;
}

/* Takes SBX_AGENT_TOKEN out of the environment and wipes the original bytes, which live in the
 * initial stack area that /proc/PID/environ shows (unsetenv alone leaves them there). */
static char *
take_env_token(size_t *len)
{
    const char *key = "SBX_AGENT_TOKEN=";
    size_t kl = strlen(key);
    char *t = NULL;
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, key, kl) != 0)
            continue;
        if (t == NULL) {
            t = strdup(*e + kl);
            if (t)
                *len = strlen(t);
        }
        explicit_bzero(*e, strlen(*e));
    }
    unsetenv("SBX_AGENT_TOKEN");
    return t;
}

static int
parse_user(const char *s, uid_t *uid, gid_t *gid)
{
    char *end;
    unsigned long u = strtoul(s, &end, 10);
    if (end == s || *end != ':')
        return -1;
    const char *g = end + 1;
    unsigned long gg = strtoul(g, &end, 10);
    if (end == g || *end)
        return -1;
    *uid = (uid_t)u;
    *gid = (gid_t)gg;
    return 0;
}

/* The working directory of the entrypoint and of commands (OpenHands' working_dir): created
 * when the image lacks it, owned by the workload's uid and its fs group (group-writable, as a
 * Kubernetes fsGroup volume), so that a non-root workload can write where it starts. An
 * existing directory is left as the image has it. */
static int
set_workdir(const char *dir, uid_t uid, gid_t gid)
{
    struct stat st;
    if (dir[0] != '/') {
        fprintf(stderr, "sbx-agent: --workdir `%s` must be absolute\n", dir);
        return -1;
    }
    if (stat(dir, &st) < 0) {
        if (ag_mkdir_p(dir, 0755) < 0) {
            fprintf(stderr, "sbx-agent: creating workdir %s: %s\n", dir, strerror(errno));
            return -1;
        }
        if (geteuid() == 0 && (chown(dir, uid, gid) < 0 || chmod(dir, 0775) < 0))
            fprintf(stderr, "sbx-agent: warning: workdir %s: %s\n", dir, strerror(errno));
    }
    if (chdir(dir) < 0) {
        fprintf(stderr, "sbx-agent: workdir %s: %s\n", dir, strerror(errno));
        return -1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    struct ag_config cfg = {
        .listen = "0.0.0.0:44772", .max_commands = 64, .uid = 1000, .gid = 1000};
    const char *token_file = NULL, *workdir = NULL;
    gid_t workdir_gid = (gid_t)-1;
    /* Make sure fds 0-2 exist so pipes/sockets never land there and get clobbered by dup2. */
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) < 0)
            return 1;
    int i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (i + 1 >= argc)
            usage();
        if (!strcmp(a, "--listen"))
            cfg.listen = argv[++i];
        else if (!strcmp(a, "--token-file"))
            token_file = argv[++i];
        else if (!strcmp(a, "--max-commands"))
            cfg.max_commands = atoi(argv[++i]);
        else if (!strcmp(a, "--max-body"))
            cfg.max_body = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--workdir"))
            workdir = argv[++i];
        else if (!strcmp(a, "--workdir-group")) {
            char *end;
            unsigned long g = strtoul(argv[++i], &end, 10);
            if (end == argv[i] || *end || g > UINT32_MAX - 1)
                usage();
            workdir_gid = (gid_t)g;
        } else if (!strcmp(a, "--user")) {
            if (parse_user(argv[++i], &cfg.uid, &cfg.gid) < 0)
                usage();
        } else
            usage();
    }
    if (i < argc)
        cfg.entry = argv + i;
    if (cfg.max_commands <= 0)
        usage();
    size_t tl = 0;
    char *env_tok = take_env_token(&tl);
    char *tok = NULL;
    if (token_file) {
        free(env_tok);
        tok = read_token_file(token_file, &tl);
    } else {
        tok = env_tok;
    }
    if (tok && tl) {
        cfg.token = tok;
        cfg.toklen = tl;
    } else {
        fprintf(stderr,
                "sbx-agent: warning: no access token configured; requests are not authenticated\n");
    }
    /* Workloads run as another uid: they must not ptrace us or read /proc/<agent>/{mem,environ}. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    umask(022);
    struct ag_fcfg fc = {.uid = cfg.uid, .gid = cfg.gid, .chown_new = geteuid() == 0};
    ag_user_by_uid(NULL, cfg.uid, NULL, 0, NULL, fc.home, sizeof(fc.home));
    ag_files_configure(&fc);
    if (workdir && set_workdir(workdir, cfg.uid, workdir_gid) < 0)
        return 1;
    setvbuf(stderr, NULL, _IOLBF, 0);
    fprintf(stderr, "sbx-agent: listening on %s\n", cfg.listen);
    int rc = ag_server_run(&cfg);
    if (tok)
        explicit_bzero(tok, tl);
    free(tok);
    return rc;
}
