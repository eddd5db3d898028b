/* Starting processes as the sandbox's user: commands (with their pipes, or a terminal) and the
 * entrypoint. The user's groups and home come from the sandbox's own /etc files. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "agent_srv.h"

extern char **environ;

/* The command's environment: the agent's, PATH if it has none, HOME and USER of the user it runs
 * as, then the request's envs (names without '='). */
/* Sets k=v in env[0..*n) (room for one more is the caller's): replaces k when replace. */
static void
env_put(char **env, size_t *n, const char *k, const char *v, bool replace)
{
    size_t kl = strlen(k), i;
    for (i = 0; i < *n; i++)
        if (!strncmp(env[i], k, kl) && env[i][kl] == '=')
            break;
    if (i < *n && !replace)
        return;
    char *kv = malloc(kl + strlen(v) + 2);
    if (kv == NULL)
        return;
    sprintf(kv, "%s=%s", k, v);
    if (i < *n)
        free(env[i]);
    else
        (*n)++;
    env[i] = kv;
}

static char **
build_env(const json_t *envs, const char *home, const char *user)
{
    size_t n = 0;
    for (char **e = environ; *e; e++)
        n++;
    char **out = calloc(n + json_object_size(envs) + 4, sizeof(char *));
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (char **e = environ; *e; e++)
        if ((out[o] = strdup(*e)))
            o++;
    const struct {
        const char *k, *v;
        bool replace; /* PATH from the agent is kept; HOME/USER describe the command's user */
    } defaults[] = {{"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", false},
                    {"HOME", home, true},
                    {"USER", user, true}};
    for (size_t d = 0; d < 3; d++)
        if (defaults[d].v && defaults[d].v[0])
            env_put(out, &o, defaults[d].k, defaults[d].v, defaults[d].replace);
    const char *k;
    json_t *v;
    json_object_foreach ((json_t *)envs, k, v)
        if (*k && !strchr(k, '=') && json_is_string(v))
            env_put(out, &o, k, json_string_value(v), true);
    out[o] = NULL;
    return out;
}

static void
free_env(char **env)
{
    if (env == NULL)
        return;
    for (char **e = env; *e; e++)
        free(*e);
    free(env);
}

static void __attribute__((noreturn)) child_fail(int efd, const char *what, const char *arg)
{
    char msg[512];
    int n = snprintf(msg, sizeof(msg), "%s%s%s: %s", what, arg ? " " : "", arg ? arg : "",
                     strerror(errno));
    if (n > 0 && write(efd, msg, (size_t)n) < 0) {
        /* nothing left to report to */
    }
    _exit(127);
}

/* Who a command runs as: the request's uid (its gid, else the passwd entry's, else the uid) or
 * --user, with the supplementary groups and home that the sandbox's /etc files give. */
struct ids {
    uid_t uid;
    gid_t gid;
    char name[64], home[256];
    gid_t groups[64];
    int ngroups;
    bool set; /* only root can (and must) change them */
};

/* Runs in the forked child: never returns. */
static void __attribute__((noreturn))
child_exec(const struct spawn_req *sr, int out, int err, int state, int efd, const char *cwd,
           const struct ids *id, char **env, char **argv)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    if (sr->pty) {
        /* A session of its own with the terminal as controlling tty: job control, ^C and SIGHUP
         * on hangup work as in a login shell. The parent does not setpgid (that would make the
         * child a group leader first, and setsid would then fail). */
        if (setsid() < 0 || ioctl(out, TIOCSCTTY, 0) < 0)
            child_fail(efd, "controlling terminal", NULL);
        if (dup2(out, 0) < 0)
            child_fail(efd, "dup2", NULL);
    } else {
        setpgid(0, 0);
        if (dup2(ag_srv.devnull, 0) < 0)
            child_fail(efd, "dup2", NULL);
    }
    if (dup2(out, 1) < 0 || dup2(err, 2) < 0)
        child_fail(efd, "dup2", NULL);
    if (state >= 0 && dup2(state, 3) < 0)
        child_fail(efd, "dup2", NULL);
    if (cwd && chdir(cwd) < 0)
        child_fail(efd, "chdir", cwd);
    if (id->set) {
        if (setgroups((size_t)id->ngroups, id->groups) < 0 && errno != EPERM)
            child_fail(efd, "setgroups", NULL);
        if (setgid(id->gid) < 0)
            child_fail(efd, "setgid", NULL);
        if (setuid(id->uid) < 0)
            child_fail(efd, "setuid", NULL);
    }
    execve(argv[0], argv, env);
    child_fail(efd, "exec", argv[0]);
}

static void
resolve_ids(const struct spawn_req *sr, struct ids *id)
{
    id->uid = sr->has_uid ? sr->uid : ag_srv.cfg->uid;
    id->gid = ag_srv.cfg->gid;
    gid_t pw_gid = (gid_t)-1;
    if (ag_user_by_uid(NULL, id->uid, id->name, sizeof(id->name), &pw_gid, id->home,
                       sizeof(id->home)) < 0)
        id->name[0] = id->home[0] = 0;
    if (sr->has_gid)
        id->gid = sr->gid;
    else if (sr->has_uid)
        id->gid = pw_gid != (gid_t)-1 ? pw_gid : (gid_t)id->uid;
    id->ngroups = id->name[0] ? ag_user_groups(NULL, id->name, id->groups, 64) : 0;
    id->set = geteuid() == 0;
}

/* The command's fds as in cmd->fds, the parent's end [0] and the child's [1]: output (a
 * terminal's master and slave), stderr, the session's state (fd 3), the exec status. */
struct pipes {
    int fd[4][2];
};

static void
pipes_close(struct pipes *p, int end)
{
    for (int i = 0; i < 4; i++)
        if (p->fd[i][end] >= 0) {
            close(p->fd[i][end]);
            p->fd[i][end] = -1;
        }
}

static int
pipes_open(const struct spawn_req *sr, struct pipes *p)
{
    if (sr->pty) { /* the master is the caller's: a copy of it here */
        p->fd[0][0] = fcntl(sr->pty_master, F_DUPFD_CLOEXEC, 3);
        p->fd[0][1] = fcntl(sr->slave, F_DUPFD_CLOEXEC, 3);
        p->fd[1][1] = fcntl(sr->slave, F_DUPFD_CLOEXEC, 3);
        if (p->fd[0][0] < 0 || p->fd[0][1] < 0 || p->fd[1][1] < 0)
            return -1;
    } else if (pipe2(p->fd[0], O_CLOEXEC) < 0 || pipe2(p->fd[1], O_CLOEXEC) < 0) {
        return -1;
    }
    if ((sr->sess && pipe2(p->fd[2], O_CLOEXEC) < 0) || pipe2(p->fd[3], O_CLOEXEC) < 0)
        return -1;
    return 0;
}

static struct ag_cmd *
cmd_new(const struct spawn_req *sr)
{
    struct ag_cmd *cmd = calloc(1, sizeof(*cmd));
    if (cmd == NULL)
        return NULL;
    if ((cmd->content = strdup(sr->command)) == NULL) {
        free(cmd);
        return NULL;
    }
    ag_new_id(cmd->id);
    cmd->fds[0] = cmd->fds[1] = cmd->fds[2] = cmd->fds[3] = -1;
    cmd->background = sr->background;
    cmd->pty = sr->pty;
    clock_gettime(CLOCK_REALTIME, &cmd->t_start);
    cmd->mono_start = ag_mono_ms();
    return cmd;
}

/* The started command joins the list and its pipes the loop. The exec-status pipe (EOF on exec,
 * a message on failure) is read from the loop rather than waited for here, so a burst of spawns
 * does not serialise on the children's exec. */
static void
cmd_register(struct ag_cmd *cmd, const struct spawn_req *sr, pid_t pid, const struct pipes *p)
{
    cmd->pid = pid;
    cmd->running = true;
    ag_srv.nrunning++;
    cmd->next = ag_srv.cmds;
    ag_srv.cmds = cmd;
    for (int i = 0; i < 4; i++) {
        int fd = cmd->fds[i] = p->fd[i][0];
        if (fd < 0)
            continue;
        fcntl(fd, F_SETFL, O_NONBLOCK);
        cmd->evs[i] = (struct ag_ev){EV_PIPE, i, cmd};
        ag_ep_set(fd, &cmd->evs[i], EPOLLIN, true);
    }
    if (sr->timeout_ms > 0)
        cmd->deadline = cmd->mono_start + sr->timeout_ms;
    if (sr->sess) {
        cmd->sess = sr->sess;
        sr->sess->cmd = cmd;
    }
}

struct ag_cmd *
ag_cmd_spawn(const struct spawn_req *sr, const char **why)
{
    struct ag_cmd *cmd = cmd_new(sr);
    if (cmd == NULL)
        return *why = "out of memory", NULL;
    struct ids id;
    resolve_ids(sr, &id);
    char **env = build_env(sr->envs, id.home[0] ? id.home : NULL, id.name[0] ? id.name : NULL);
    char *cwd = env && sr->cwd && *sr->cwd ? ag_expand(sr->cwd, env, NULL) : NULL;
    char *argv[6];
    int ac = 0;
    argv[ac++] = (char *)ag_srv.shell;
    argv[ac++] = "-c";
    if (sr->script) {
        argv[ac++] = (char *)sr->script;
        argv[ac++] = "sbx-session";
    }
    argv[ac++] = (char *)sr->command;
    argv[ac] = NULL;
    struct pipes p = {{{-1, -1}, {-1, -1}, {-1, -1}, {-1, -1}}};
    pid_t pid = -1;
    if (env == NULL || pipes_open(sr, &p) < 0)
        *why = "cannot create pipes";
    else if ((pid = fork()) < 0)
        *why = "fork failed";
    else if (pid == 0)
        child_exec(sr, p.fd[0][1], p.fd[1][1], p.fd[2][1], p.fd[3][1], cwd, &id, env, argv);
    free_env(env);
    free(cwd);
    pipes_close(&p, 1);
    if (pid < 0) {
        pipes_close(&p, 0);
        free(cmd->content);
        free(cmd);
        return NULL;
    }
    /* Also set in the parent so a kill(-pid) right after spawn cannot race the child's setpgid. */
    if (!sr->pty)
        setpgid(pid, pid);
    cmd_register(cmd, sr, pid, &p);
    return cmd;
}

pid_t
ag_start_entrypoint(char **argv)
{
    const struct ag_config *cfg = ag_srv.cfg;
    char uname[64] = "", home[256] = "";
    gid_t groups[64];
    int ng = 0;
    if (ag_user_by_uid(NULL, cfg->uid, uname, sizeof(uname), NULL, home, sizeof(home)) == 0)
        ng = ag_user_groups(NULL, uname, groups, 64);
    char **env = build_env(NULL, home[0] ? home : NULL, uname[0] ? uname : NULL);
    pid_t pid = fork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        setpgid(0, 0);
        dup2(ag_srv.devnull, 0);
        if (geteuid() == 0 && ((setgroups((size_t)ng, groups) < 0 && errno != EPERM) ||
                               setgid(cfg->gid) < 0 || setuid(cfg->uid) < 0)) {
            perror("sbx-agent: entrypoint: set user");
            _exit(126);
        }
        if (env)
            environ = env;
        execvp(argv[0], argv);
        fprintf(stderr, "sbx-agent: exec %s: %s\n", argv[0], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    free_env(env);
    if (pid > 0)
        setpgid(pid, pid);
    return pid;
}

/* POST /entrypoint {"argv":[...], "env":{...}}: apid's warm pool starts sandboxes without an
 * entrypoint and hands the claimant's over here, once. From then on the agent behaves as if it had
 * been started with `-- ARGV` (it exits with the entrypoint's status). env goes into the agent's
 * own environment so later commands see it too, as they would with the sandbox's OCI env. */
void
ag_h_entrypoint(struct ag_conn *c, struct ag_req *r)
{
    json_t *j = ag_req_json(c, r, false, false);
    if (j == NULL)
        return;
    json_t *av = json_object_get(j, "argv"), *env = json_object_get(j, "env"), *x;
    size_t n = json_array_size(av), i;
    const char *k;
    bool ok = n > 0 && n < 4096 && (!env || json_is_null(env) || json_is_object(env));
    json_array_foreach (av, i, x)
        ok = ok && json_is_string(x);
    json_object_foreach (env, k, x)
        ok = ok && json_is_string(x) && *k && !strchr(k, '=');
    if (!ok) {
        ag_reply_err(c, 400, "INVALID_REQUEST_BODY",
                     "expected {\"argv\": [strings...], \"env\": {name: string}}");
    } else if (ag_srv.entry_given || ag_srv.stopping) {
        ag_reply_err(c, 409, "ENTRYPOINT_SET", "this sandbox already has an entrypoint");
    } else {
        json_object_foreach (env, k, x)
            setenv(k, json_string_value(x), 1);
        char **argv = calloc(n + 1, sizeof(char *));
        json_array_foreach (av, i, x)
            if (argv)
                argv[i] = (char *)json_string_value(x);
        pid_t pid = argv ? ag_start_entrypoint(argv) : -1;
        free(argv);
        if (pid < 0) {
            ag_reply_err(c, 500, "RUNTIME_ERROR", "cannot start the entrypoint: %s",
                         strerror(errno));
        } else {
            ag_srv.entry_given = true;
            ag_srv.entry_pid = pid;
            ag_reply_empty(c);
        }
    }
    json_decref(j);
}
