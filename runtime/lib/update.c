/* sbx_container_update(): a live sandbox's limits, changed in its cgroup and in its recorded
 * config together (the order and what each failure leaves: update.h). */
#include "update.h"
#include "cgroup.h"
#include "resources.h"
#include "state.h"
#include "utils.h"

#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>

struct update {
    const char *id;
    struct sbx_state *st;
    struct sbx_cgroup *cg;
    json_t *change;  /* the checked change (sbx_resources_check_update()) */
    json_t *cfg;     /* the recorded config, NULL if there is none */
    json_t *old;     /* its linux.resources as recorded (borrowed from the old cfg), or NULL */
    json_t *applied; /* what the cgroup gets: sbx_resources_pick(merged, change) */
    char *path;      /* the record */
    char *tmp;       /* the new record, until it is renamed over path */
};

static void
update_free(struct update *u)
{
    if (u->tmp)
        unlink(u->tmp);
    free(u->tmp);
    free(u->path);
    json_decref(u->applied);
    json_decref(u->old);
    json_decref(u->cfg);
    json_decref(u->change);
    sbx_cgroup_free(u->cg);
    sbx_state_free(u->st);
}

/* The sandbox exists, lives and has a cgroup. */
static int
open_sandbox(struct update *u, const char *state_root, sbx_error_t *err)
{
    int r = sbx_state_load(state_root, u->id, &u->st, err);
    if (r < 0)
        return r;
    const char *now = sbx_state_current_status(u->st);
    if (strcmp(now, "created") && strcmp(now, "running") && strcmp(now, "paused"))
        return sbx_make_error(err, 0,
                              "sandbox `%s` is %s: only a created, running or paused "
                              "sandbox has limits to change",
                              u->id, now);
    if (u->st->cgroup == NULL)
        return sbx_make_error(err, 0,
                              "sandbox `%s` has no cgroup (cgroups were disabled), so it has no "
                              "limits to change",
                              u->id);
    if ((r = sbx_cgroup_open(u->st->cgroup, &u->cg, err)) < 0)
        return sbx_error_wrap(err, "sandbox `%s`", u->id);
    return 0;
}

/* The recorded config, if any: a missing one is an error only when the caller named it. */
static int
load_record(struct update *u, bool named, sbx_error_t *err)
{
    json_error_t jerr;
    u->cfg = json_load_file(u->path, 0, &jerr);
    if (u->cfg == NULL) {
        if (!named && access(u->path, F_OK) < 0 && errno == ENOENT)
            return 0;
        return sbx_make_error(err, 0, "sandbox `%s`: recorded config `%s`: %s", u->id, u->path,
                              jerr.text);
    }
    json_t *lx = json_object_get(u->cfg, "linux");
    if (!json_is_object(u->cfg) || (lx && !json_is_object(lx)))
        return sbx_make_error(err, 0, "sandbox `%s`: recorded config `%s` is not an OCI config",
                              u->id, u->path);
    if (lx == NULL)
        json_object_set_new(u->cfg, "linux", lx = json_object());
    u->old = json_incref(json_object_get(lx, "resources"));
    return 0;
}

/* memory.checkBeforeUpdate (runc): no memory limit below what the sandbox uses now. */
static int
check_usage(struct update *u, json_t *resources, sbx_error_t *err)
{
    json_t *mem = json_object_get(resources, "memory");
    json_t *limit = json_object_get(json_object_get(u->applied, "memory"), "limit");
    if (!json_is_true(json_object_get(mem, "checkBeforeUpdate")) || !json_is_integer(limit))
        return 0;
    struct sbx_cgroup_stats s;
    int r = sbx_cgroup_stats(u->cg, &s, err);
    if (r < 0)
        return r;
    if (s.memory_current > json_integer_value(limit))
        return sbx_make_error(err, 0,
                              "memory.limit %" JSON_INTEGER_FORMAT " is below the %" PRId64
                              " bytes the sandbox uses now "
                              "(memory.checkBeforeUpdate)",
                              json_integer_value(limit), s.memory_current);
    return 0;
}

/* Writes the new record beside the old one: same mode and owner, close-on-exec. Not fsync'd, as
 * state.json is not: records live in the run directory (tmpfs), which a reboot empties along with
 * the sandboxes; the rename alone makes the change atomic for readers. */
static int
write_temp(struct update *u, sbx_error_t *err)
{
    struct stat st;
    if (stat(u->path, &st) < 0)
        return sbx_make_error(err, errno, "stat `%s`", u->path);
    u->tmp = xasprintf("%s.update-XXXXXX", u->path);
    cleanup_close int fd = mkostemp(u->tmp, O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        free(steal_pointer(&u->tmp));
        return sbx_make_error(err, e, "create a file beside `%s`", u->path);
    }
    cleanup_free char *text = json_dumps(u->cfg, JSON_COMPACT);
    if (fchmod(fd, st.st_mode & 07777) < 0 ||
        (geteuid() == 0 && fchown(fd, st.st_uid, st.st_gid) < 0) ||
        safe_write(fd, text, strlen(text)) < 0)
        return sbx_make_error(err, errno, "write `%s`", u->tmp);
    return 0;
}

static int
rename_temp(struct update *u, sbx_error_t *err)
{
    if (rename(u->tmp, u->path) < 0)
        return sbx_make_error(err, errno, "rename `%s` to `%s`", u->tmp, u->path);
    free(steal_pointer(&u->tmp));
    return 0;
}

/* The fields of `applied` set back to their recorded values. Returns 0 when every one of them
 * was set back, 1 when some had no recorded value (or nothing was recorded), < 0 (with *err)
 * when writing them failed. */
static int
set_back(struct update *u, sbx_error_t *err)
{
    json_t *back = sbx_resources_pick(u->old, u->applied);
    int complete = 1;
    const char *name, *key;
    json_t *sec, *v;
    json_object_foreach (u->applied, name, sec)
        json_object_foreach (sec, key, v)
            if (json_object_get(json_object_get(back, name), key) == NULL)
                complete = 0;
    struct sbx_resources res = {0};
    int r = json_object_size(back) == 0 ? 0 : sbx_resources_parse(back, &res, err);
    if (r == 0 && json_object_size(back) > 0)
        r = sbx_cgroup_update(u->cg, &res, err);
    sbx_resources_free(&res);
    json_decref(back);
    return r < 0 ? r : !complete;
}

/* After the cgroup write failed (or the record could not be renamed): set back, and say what
 * the sandbox has now in front of the error. */
static int
fail_after_cgroup(struct update *u, bool recording, sbx_error_t *err)
{
    sbx_error_t e = NULL;
    int r = set_back(u, &e);
    const char *what =
        recording ? "the new limits could not be recorded" : "the cgroup write failed";
    if (r == 0)
        sbx_error_wrap(err,
                       "sandbox `%s`: %s; its cgroup was set back to the recorded limits, "
                       "nothing changed",
                       u->id, what);
    else if (r > 0)
        sbx_error_wrap(err,
                       "sandbox `%s`: %s; its cgroup may keep part of the update (the "
                       "record has no earlier value to set back), its record is unchanged",
                       u->id, what);
    else
        sbx_error_wrap(err,
                       "sandbox `%s`: %s, and setting its cgroup back to the recorded limits "
                       "failed too (%s): the cgroup and the record may differ",
                       u->id, what, e->msg);
    sbx_error_release(&e);
    return err && *err ? -(*err)->status - 1 : -1;
}

/* The merged record, checked, and what the cgroup gets (u->applied); the new record replaces
 * the old one in u->cfg. 1: there is nothing to change. */
static int
plan(struct update *u, sbx_error_t *err)
{
    json_t *merged = sbx_resources_merge(u->old, u->change);
    u->applied = sbx_resources_pick(merged, u->change);
    int r = sbx_resources_check_merged(merged, err);
    if (r < 0 || json_object_size(u->applied) == 0 || u->cfg == NULL) {
        json_decref(merged);
        return r < 0 ? sbx_error_wrap(err, "sandbox `%s`", u->id)
                     : json_object_size(u->applied) == 0;
    }
    json_object_set_new(json_object_get(u->cfg, "linux"), "resources", merged);
    return 0;
}

/* Steps 2 to 4 of update.h: the new record beside the old, the cgroup, the rename. */
static int
apply(struct update *u, json_t *resources, sbx_error_t *err)
{
    struct sbx_resources res = {0};
    int r;
    if ((r = sbx_resources_parse(u->applied, &res, err)) < 0 ||
        (r = check_usage(u, resources, err)) < 0 || (u->cfg && (r = write_temp(u, err)) < 0)) {
        sbx_resources_free(&res);
        return sbx_error_wrap(err, "sandbox `%s`", u->id);
    }
    r = sbx_cgroup_update(u->cg, &res, err);
    sbx_resources_free(&res);
    if (r < 0)
        return fail_after_cgroup(u, false, err);
    if (u->cfg && rename_temp(u, err) < 0)
        return fail_after_cgroup(u, true, err);
    return 0;
}

static int
update_locked(struct update *u, const char *state_root, const char *config_path, json_t *resources,
              sbx_error_t *err)
{
    int r = open_sandbox(u, state_root, err);
    if (r < 0)
        return r;
    u->path =
        config_path ? xstrdup(config_path) : xasprintf("%s/%s/config.json", state_root, u->id);
    if ((r = load_record(u, config_path != NULL, err)) < 0 || (r = plan(u, err)) != 0)
        return r < 0 ? r : 0;
    return apply(u, resources, err);
}

int
sbx_container_update(const char *state_root, const char *id, const char *config_path,
                     json_t *resources, sbx_error_t *err)
{
    struct update u = {.id = id};
    cleanup_lockfile struct sbx_lockfile lock = SBX_LOCKFILE_INIT;
    if (state_root == NULL)
        state_root = SBX_DEFAULT_STATE_ROOT;
    int r = sbx_resources_check_update(resources, &u.change, err);
    if (r < 0)
        return sbx_error_wrap(err, "sandbox `%s`", id);
    /* The change must not bring back a record that a delete just removed, nor race another. */
    if ((r = sbx_state_lock(state_root, id, &lock, err)) == 0)
        r = update_locked(&u, state_root, config_path, resources, err);
    update_free(&u);
    return r;
}
