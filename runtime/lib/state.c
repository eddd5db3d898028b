#include "state.h"
#include "strutil.h"
#include "utils.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

char *
sbx_now_rfc3339(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return sbx_rfc3339(&ts);
}

char *
sbx_rfc3339(const struct timespec *ts)
{
    char buf[48];
    sbx_format_rfc3339(ts, 9, buf, sizeof(buf));
    return xstrdup(buf);
}

static unsigned long long
pid_stat(pid_t pid, char *state)
{
    char path[64];
    cleanup_free char *buf = NULL;
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if (pid <= 0 || read_file(path, &buf, NULL, NULL) < 0)
        return 0;
    /* comm (field 2) may contain spaces and ')': parse after the last ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return 0;
    p += 2;
    if (state)
        *state = *p;
    unsigned long long start = 0;
    /* fields 3..22: skip 19 fields to reach starttime. */
    for (int field = 3; field < 22 && p; field++) {
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    if (p == NULL || sscanf(p, "%llu", &start) != 1)
        return 0;
    return start;
}

unsigned long long
sbx_pid_start_time(pid_t pid)
{
    return pid_stat(pid, NULL);
}

bool
sbx_state_alive(const struct sbx_state *st)
{
    if (st == NULL || st->pid <= 0)
        return false;
    /* A created (OCI) sandbox's process belongs to our caller's reaper once it exits: until that
     * reaps it, a zombie with the same start time must already count as stopped. */
    char state = 0;
    unsigned long long now = pid_stat(st->pid, &state);
    return now != 0 && now == st->pid_start && state != 'Z' && state != 'X';
}

static char *
state_dir(const char *root, const char *id)
{
    return xasprintf("%s/%s", root, id);
}

int
sbx_state_save(const char *root, const struct sbx_state *st, sbx_error_t *err)
{
    if (!id_is_valid(st->id))
        return sbx_make_error(err, 0, "invalid id `%s`", st->id ? st->id : "");
    int r = mkdir_p(root, 0711, err);
    if (r < 0)
        return r;
    cleanup_free char *dir = state_dir(root, st->id);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return sbx_make_error(err, errno, "mkdir `%s`", dir);

    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(st->id));
    json_object_set_new(o, "pid", json_integer(st->pid));
    json_object_set_new(o, "pidStart", json_integer((json_int_t)st->pid_start));
    json_object_set_new(o, "status", json_string(st->status ? st->status : "creating"));
    if (st->bundle)
        json_object_set_new(o, "bundle", json_string(st->bundle));
    if (st->rootfs)
        json_object_set_new(o, "rootfs", json_string(st->rootfs));
    if (st->cgroup)
        json_object_set_new(o, "cgroup", json_string(st->cgroup));
    if (st->created)
        json_object_set_new(o, "created", json_string(st->created));
    json_object_set_new(o, "exitCode", json_integer(st->exit_code));
    json_object_set_new(o, "oom", json_boolean(st->oom));
    if (st->annotations)
        json_object_set(o, "annotations", st->annotations);
    if (st->extra)
        json_object_set(o, "extra", st->extra);
    cleanup_free char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);

    cleanup_free char *tmp = xasprintf("%s/state.json.tmp", dir);
    cleanup_free char *final = xasprintf("%s/state.json", dir);
    r = write_file(tmp, text, strlen(text), err);
    if (r < 0)
        return r;
    if (rename(tmp, final) < 0)
        return sbx_make_error(err, errno, "rename `%s`", final);
    return 0;
}

static char *
jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? xstrdup(s) : NULL;
}

int
sbx_state_load(const char *root, const char *id, struct sbx_state **out, sbx_error_t *err)
{
    if (!id_is_valid(id))
        return sbx_make_error(err, EINVAL, "invalid sandbox id `%s`", id);
    cleanup_free char *path = xasprintf("%s/%s/state.json", root, id);
    json_error_t jerr;
    json_t *o = json_load_file(path, 0, &jerr);
    if (o == NULL) {
        if (access(path, F_OK) < 0)
            return sbx_make_error(err, ENOENT, "sandbox `%s` does not exist", id);
        return sbx_make_error(err, 0, "sandbox `%s`: corrupt state %s: %s", id, path, jerr.text);
    }
    struct sbx_state *st = xmalloc0(sizeof(*st));
    st->id = jstr(o, "id");
    st->pid = json_integer_value(json_object_get(o, "pid"));
    st->pid_start = json_integer_value(json_object_get(o, "pidStart"));
    st->status = jstr(o, "status");
    st->bundle = jstr(o, "bundle");
    st->rootfs = jstr(o, "rootfs");
    st->cgroup = jstr(o, "cgroup");
    st->created = jstr(o, "created");
    st->exit_code = json_integer_value(json_object_get(o, "exitCode"));
    st->oom = json_is_true(json_object_get(o, "oom"));
    st->annotations = json_incref(json_object_get(o, "annotations"));
    st->extra = json_incref(json_object_get(o, "extra"));
    json_decref(o);
    if (st->id == NULL || strcmp(st->id, id) != 0) {
        sbx_state_free(st);
        return sbx_make_error(err, 0, "sandbox `%s`: state file names another id", id);
    }
    *out = st;
    return 0;
}

int
sbx_state_remove(const char *root, const char *id, sbx_error_t *err)
{
    if (!id_is_valid(id))
        return sbx_make_error(err, EINVAL, "invalid sandbox id `%s`", id);
    cleanup_free char *dir = state_dir(root, id);
    return rm_rf(dir, err);
}

int
sbx_state_lock(const char *root, const char *id, struct sbx_lockfile *lock, sbx_error_t *err)
{
    if (!id_is_valid(id))
        return sbx_make_error(err, EINVAL, "invalid sandbox id `%s`", id);
    /* A directory ids cannot name (they start with a letter or digit), so `sbxrun list` and
     * apid's orphan scan never see it. */
    cleanup_free char *path = xasprintf("%s/.locks/%s", root, id);
    pid_t holder = 0;
    sbx_error_t e = NULL;
    int r = sbx_lockfile_take(lock, path, SBX_STATE_LOCK_WAIT_MS, false, &holder, &e);
    if (r < 0 && e->status == ENOENT) {
        /* First use of this root: made here, not on every start. */
        sbx_error_release(&e);
        cleanup_free char *dir = xasprintf("%s/.locks", root);
        if ((r = mkdir_p(root, 0711, err)) < 0)
            return r;
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
            return sbx_make_error(err, errno, "mkdir `%s`", dir);
        r = sbx_lockfile_take(lock, path, SBX_STATE_LOCK_WAIT_MS, false, &holder, &e);
    }
    if (r < 0) {
        if (err) {
            sbx_error_release(err);
            *err = steal_pointer(&e);
        }
        sbx_error_release(&e);
        return r;
    }
    if (r > 0)
        return sbx_make_error(err, EBUSY,
                              "sandbox `%s` is being changed by another process "
                              "(it holds %s for over %d s)",
                              id, path, SBX_STATE_LOCK_WAIT_MS / 1000);
    return 0;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int
sbx_state_list(const char *root, char ***ids, sbx_error_t *err)
{
    char **v = xmalloc0(sizeof(char *));
    cleanup_dir DIR *d = opendir(root);
    if (d == NULL) {
        if (errno == ENOENT) {
            *ids = v;
            return 0;
        }
        free(v);
        return sbx_make_error(err, errno, "open `%s`", root);
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!id_is_valid(de->d_name))
            continue;
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s/state.json", root, de->d_name);
        if (access(path, F_OK) == 0)
            strv_append(&v, de->d_name);
    }
    qsort(v, strv_len(v), sizeof(char *), cmp_str);
    *ids = v;
    return 0;
}

void
sbx_state_free(struct sbx_state *st)
{
    if (st == NULL)
        return;
    free(st->id);
    free(st->status);
    free(st->bundle);
    free(st->rootfs);
    free(st->cgroup);
    free(st->created);
    json_decref(st->annotations);
    json_decref(st->extra);
    free(st);
}

const char *
sbx_state_current_status(const struct sbx_state *st)
{
    if (st->status && (!strcmp(st->status, "creating") || !strcmp(st->status, "stopped")))
        return st->status;
    if (!sbx_state_alive(st))
        return "stopped";
    return st->status ? st->status : "running";
}
