/* OCI hooks: each hook runs with the container's state JSON on its stdin. The same runner serves
 * the runtime-namespace hooks (prestart, createRuntime, poststart, poststop: run by sbxrun) and the
 * container-namespace ones (createContainer, startContainer: run by the sandbox's own process). */
#include "container.h"
#include "utils.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

static int
run_one(const char *phase, const struct sbx_hook *h, const char *root, const char *state_json,
        sbx_error_t *err)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return sbx_make_error(err, errno, "%s hook `%s`: pipe", phase, h->path);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(p[0]);
        close(p[1]);
        return sbx_make_error(err, e, "%s hook `%s`: fork", phase, h->path);
    }
    if (pid == 0) {
        /* Hooks must not see the sandbox's signal mask (sbxrun blocks signals for signalfd). */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (dup2(p[0], 0) < 0)
            _exit(127);
        if (root && (chroot(root) < 0 || chdir("/") < 0))
            _exit(127);
        char *const fallback[] = {h->path, NULL};
        char *const empty[] = {NULL};
        execve(h->path, h->args && h->args[0] ? h->args : fallback, h->env ? h->env : empty);
        _exit(127);
    }
    close(p[0]);
    /* A hook that does not read its stdin must not kill us. */
    safe_write_nosigpipe(p[1], state_json, strlen(state_json));
    close(p[1]);

    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int st;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR)
            return sbx_make_error(err, errno, "%s hook `%s`: wait", phase, h->path);
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (h->timeout > 0 && now.tv_sec - start.tv_sec >= h->timeout) {
            kill(pid, SIGKILL);
            TEMP_FAILURE_RETRY(waitpid(pid, &st, 0));
            return sbx_make_error(err, ETIMEDOUT, "%s hook `%s` timed out after %d s", phase,
                                  h->path, h->timeout);
        }
        struct timespec d = {0, 5 * 1000 * 1000};
        nanosleep(&d, NULL);
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    if (WIFEXITED(st))
        return sbx_make_error(err, 0, "%s hook `%s` failed with exit status %d", phase, h->path,
                              WEXITSTATUS(st));
    return sbx_make_error(err, 0, "%s hook `%s` killed by SIG%s (%d)", phase, h->path,
                          signal_name(WTERMSIG(st)), WTERMSIG(st));
}

int
sbx_hooks_run(const char *phase, const struct sbx_hook *hooks, size_t n, const char *root,
              const char *state_json, sbx_error_t *err)
{
    for (size_t i = 0; i < n; i++) {
        int r = run_one(phase, &hooks[i], root, state_json, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int
sbx_hooks_run_warn(const char *phase, const struct sbx_hook *hooks, size_t n, const char *root,
                   const char *state_json, bool quiet)
{
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        sbx_error_t e = NULL;
        if (run_one(phase, &hooks[i], root, state_json, &e) < 0) {
            failed++;
            if (!quiet)
                sbx_error_print("sbxrun: warning", &e);
        }
        sbx_error_release(&e);
    }
    return failed;
}

char *
sbx_state_oci_json(const struct sbx_state *st, const char *status)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "ociVersion", "1.0.2", "id", st->id, "status",
                          status, "bundle", st->bundle ? st->bundle : "");
    /* The spec requires pid while the process exists (created or running). */
    if (strcmp(status, "stopped") != 0 && st->pid > 0)
        json_object_set_new(o, "pid", json_integer(st->pid));
    if (st->created)
        json_object_set_new(o, "created", json_string(st->created));
    if (st->annotations)
        json_object_set(o, "annotations", st->annotations);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}
