#include "cgroup.h"
#include "container.h"
#include "utils.h"

#include "linux.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

static int
open_cgroup(struct sbx_state *st, struct sbx_cgroup **cg, sbx_error_t *err)
{
    *cg = NULL;
    if (st->cgroup == NULL)
        return 0;
    return sbx_cgroup_open(st->cgroup, cg, err);
}

int
sbx_container_kill(const char *root, const char *id, int sig, bool all, sbx_error_t *err)
{
    struct sbx_state *st = NULL;
    int r = sbx_state_load(root ? root : SBX_DEFAULT_STATE_ROOT, id, &st, err);
    if (r < 0)
        return r;
    if (!sbx_state_alive(st)) {
        sbx_state_free(st);
        return sbx_make_error(err, ESRCH, "sandbox `%s` is not running", id);
    }
    struct sbx_cgroup *cg = NULL;
    /* A frozen v1 cgroup holds even SIGKILL until thawed: cgroup kill thaws, so use it whenever
     * the sandbox is paused or must die anyway. */
    bool paused = st->status && strcmp(st->status, "paused") == 0;
    if ((all || paused || sig == SIGKILL) && (r = open_cgroup(st, &cg, err)) == 0 && cg) {
        r = sbx_cgroup_kill(cg, sig, err);
        sbx_cgroup_free(cg);
    } else if (r == 0) {
        if (kill(st->pid, sig) < 0)
            r = sbx_make_error(err, errno, "kill sandbox `%s` (pid %d) with SIG%s", id, st->pid,
                               signal_name(sig));
    }
    sbx_state_free(st);
    return r;
}

static void run_poststop(const char *root, const char *id, const struct sbx_state *st);

int
sbx_container_delete(const char *root, const char *id, bool force, sbx_error_t *err)
{
    root = root ? root : SBX_DEFAULT_STATE_ROOT;
    /* Under the id's lock: a record that a run is still creating (no live pid yet) would look
     * stale; the run lets the id go once its record names the live sandbox. */
    cleanup_lockfile struct sbx_lockfile lock = SBX_LOCKFILE_INIT;
    int r = sbx_state_lock(root, id, &lock, err);
    if (r < 0)
        return r;
    struct sbx_state *st = NULL;
    if ((r = sbx_state_load(root, id, &st, err)) < 0)
        return r;
    const char *status = sbx_state_current_status(st);
    if (strcmp(status, "stopped") != 0 && !force) {
        /* status may point into st: report before freeing it. */
        r = sbx_make_error_code(err, SBX_ERR_BUSY, EBUSY,
                                "sandbox `%s` is %s; stop it first or delete it by force", id,
                                status);
        sbx_state_free(st);
        return r;
    }
    struct sbx_cgroup *cg = NULL;
    if (open_cgroup(st, &cg, NULL) == 0 && cg) {
        /* cgroup.kill / freeze-kill-thaw also reaches processes that left the pid namespace's
         * view, and destroy removes the directories. */
        r = sbx_cgroup_destroy(cg, err);
        sbx_cgroup_free(cg);
    } else if (sbx_state_alive(st)) {
        kill(st->pid, SIGKILL);
    }
    if (r == 0) {
        run_poststop(root, id, st);
        r = sbx_state_remove(root, id, err);
    }
    sbx_state_free(st);
    return r;
}

int
sbx_container_load_spec(const char *root, const char *id, json_t *process, sbx_spec_t **out,
                        sbx_error_t *err)
{
    struct sbx_state *st = NULL;
    int r = sbx_state_load(root, id, &st, err);
    if (r < 0)
        return r;
    cleanup_free char *path = xasprintf("%s/%s/config.json", root, id);
    json_error_t jerr;
    json_t *cfg = json_load_file(path, 0, &jerr);
    if (cfg == NULL) {
        sbx_state_free(st);
        return sbx_make_error(err, 0, "sandbox `%s` has no saved config (not made by `create`)",
                              id);
    }
    if (process)
        json_object_set(cfg, "process", process);
    r = sbx_spec_parse(cfg, st->bundle, out, err);
    json_decref(cfg);
    sbx_state_free(st);
    return r;
}

/* poststop runs after the sandbox is gone; its failure is a warning (the spec's rule). */
static void
run_poststop(const char *root, const char *id, const struct sbx_state *st)
{
    sbx_spec_t *spec = NULL;
    if (sbx_container_load_spec(root, id, NULL, &spec, NULL) < 0)
        return;
    if (spec->n_hooks_poststop > 0) {
        cleanup_free char *json = sbx_state_oci_json(st, "stopped");
        sbx_hooks_run_warn("poststop", spec->hooks_poststop, spec->n_hooks_poststop, NULL, json,
                           false);
    }
    sbx_spec_free(spec);
}

int
sbx_container_start(const char *root, const char *id, sbx_error_t *err)
{
    root = root ? root : SBX_DEFAULT_STATE_ROOT;
    /* Its record's change to running must not bring back a record a delete just removed. */
    cleanup_lockfile struct sbx_lockfile lock = SBX_LOCKFILE_INIT;
    int r = sbx_state_lock(root, id, &lock, err);
    if (r < 0)
        return r;
    struct sbx_state *st = NULL;
    if ((r = sbx_state_load(root, id, &st, err)) < 0)
        return r;
    const char *status = sbx_state_current_status(st);
    if (strcmp(status, "created") != 0) {
        r = sbx_make_error(err, 0, "sandbox `%s` is %s, not created", id, status);
        sbx_state_free(st);
        return r;
    }
    sbx_spec_t *spec = NULL;
    if ((r = sbx_container_load_spec(root, id, NULL, &spec, err)) < 0) {
        sbx_state_free(st);
        return r;
    }
    cleanup_free char *dir = xasprintf("%s/%s", root, id);
    cleanup_close int dfd = open(dir, O_DIRECTORY | O_PATH | O_CLOEXEC);
    char addr[64];
    snprintf(addr, sizeof(addr), "/proc/self/fd/%d/exec.sock", dfd);
    cleanup_close int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", addr);
    /* Declared before the first `goto out`: jumped over, it would be freed uninitialised when a
     * start fails to connect (clang refuses to compile that; gcc says nothing). */
    cleanup_free char *json = NULL;
    if (dfd < 0 || fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        r = sbx_make_error(err, errno, "sandbox `%s`: connect to its exec.sock", id);
        goto out;
    }
    /* Only one start: the socket goes as soon as the process has taken the connection. */
    unlinkat(dfd, "exec.sock", 0);
    json = sbx_state_oci_json(st, "running");
    if (strlen(json) >= sizeof(((struct sbx_sync_msg *)0)->msg)) {
        json_decref(st->annotations);
        st->annotations = NULL;
        free(json);
        json = sbx_state_oci_json(st, "running");
    }
    if (sbx_sync_send(fd, SYNC_START, 0, "%s", json) < 0) {
        r = sbx_make_error(err, errno, "sandbox `%s`: release it", id);
        goto out;
    }
    /* EOF: execve succeeded (the connection is close-on-exec); a message: it failed. Bounded,
     * although startContainer hooks have their own timeouts. */
    struct pollfd pfd = {fd, POLLIN, 0};
    int n = TEMP_FAILURE_RETRY(poll(&pfd, 1, 60 * 1000));
    struct sbx_sync_msg m;
    if (n == 0) {
        r = sbx_make_error(err, ETIMEDOUT, "sandbox `%s`: waiting for its exec", id);
        goto out;
    }
    if (sbx_sync_recv(fd, &m) > 0 && (m.type == SYNC_ERROR || m.type == SYNC_EXEC_FAILED)) {
        r = sbx_make_error(err, 0, "%s", m.msg);
        goto out;
    }
    free(st->status);
    st->status = xstrdup("running");
    if ((r = sbx_state_save(root, st, err)) < 0)
        goto out;
    sbx_lockfile_release(&lock); /* a poststart hook may well run sbxrun on this id */
    if (spec->n_hooks_poststart > 0)
        sbx_hooks_run_warn("poststart", spec->hooks_poststart, spec->n_hooks_poststart, NULL, json,
                           false);
out:
    sbx_spec_free(spec);
    sbx_state_free(st);
    return r;
}
