#include "cgroup.h"
#include "container.h"
#include "utils.h"

#include <signal.h>
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
            r = sbx_make_error(err, errno, "kill sandbox `%s` (pid %d)", id, st->pid);
    }
    sbx_state_free(st);
    return r;
}

int
sbx_container_delete(const char *root, const char *id, bool force, sbx_error_t *err)
{
    root = root ? root : SBX_DEFAULT_STATE_ROOT;
    struct sbx_state *st = NULL;
    int r = sbx_state_load(root, id, &st, err);
    if (r < 0)
        return r;
    const char *status = sbx_state_current_status(st);
    if (strcmp(status, "stopped") != 0 && !force) {
        sbx_state_free(st);
        return sbx_make_error(err, EBUSY, "sandbox `%s` is %s; stop it first or use --force", id,
                              status);
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
    if (r == 0)
        r = sbx_state_remove(root, id, err);
    sbx_state_free(st);
    return r;
}
