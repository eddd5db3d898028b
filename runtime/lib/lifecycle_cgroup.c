/* Lifecycle verbs that are pure cgroup work: pause and resume freeze the sandbox's cgroup, which
 * stops every process in it (unlike SIGSTOP, which the workload could see or undo). */
#include "cgroup.h"
#include "container.h"
#include "state.h"
#include "utils.h"

static void
cleanup_statep(struct sbx_state **st)
{
    sbx_state_free(*st);
}

static void
cleanup_cgroupp(struct sbx_cgroup **cg)
{
    sbx_cgroup_free(*cg);
}

static int
set_frozen(const char *state_root, const char *id, bool frozen, sbx_error_t *err)
{
    __attribute__((cleanup(cleanup_statep))) struct sbx_state *st = NULL;
    __attribute__((cleanup(cleanup_cgroupp))) struct sbx_cgroup *cg = NULL;
    /* The status change must not bring back a record a delete just removed. */
    cleanup_lockfile struct sbx_lockfile lock = SBX_LOCKFILE_INIT;
    if (state_root == NULL)
        state_root = SBX_DEFAULT_STATE_ROOT;
    int r = sbx_state_lock(state_root, id, &lock, err);
    if (r < 0)
        return r;
    r = sbx_state_load(state_root, id, &st, err);
    if (r < 0)
        return r;
    const char *now = sbx_state_current_status(st);
    if (strcmp(now, "running") != 0 && strcmp(now, "paused") != 0)
        return sbx_make_error(err, 0, "sandbox `%s` is %s, not %s", id, now,
                              frozen ? "running" : "paused");
    if (st->cgroup == NULL)
        return sbx_make_error(
            err, ENOTSUP, "sandbox `%s` has no cgroup (cgroups were disabled), so it cannot be %s",
            id, frozen ? "paused" : "resumed");
    r = sbx_cgroup_open(st->cgroup, &cg, err);
    if (r < 0)
        return sbx_error_wrap(err, "sandbox `%s`", id);
    r = sbx_cgroup_freeze(cg, frozen, err);
    if (r < 0)
        return sbx_error_wrap(err, "%s sandbox `%s`", frozen ? "pause" : "resume", id);
    free(st->status);
    st->status = xstrdup(frozen ? "paused" : "running");
    return sbx_state_save(state_root, st, err);
}

int
sbx_container_pause(const char *state_root, const char *id, sbx_error_t *err)
{
    return set_frozen(state_root, id, true, err);
}

int
sbx_container_resume(const char *state_root, const char *id, sbx_error_t *err)
{
    return set_frozen(state_root, id, false, err);
}
