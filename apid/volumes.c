/* Volumes of sandboxes: `host` volumes are host directories below an administrator's
 * --volume-root, `pvc` volumes are sbx's named volumes in <data-dir>/volumes (libsbx volume.c,
 * shared with sbxrun --volume). A request is resolved here before anything is created; the
 * runtime walks the same root/rel again at mount time (RESOLVE_BENEATH) and binds the fd it
 * got, so a path swapped after this check still cannot lead out of its root. The store's
 * sandbox rows say which sandbox mounts which named volume. */
#include "apid.h"
#include "volume.h"

#include <fcntl.h>
#include <sys/stat.h>

static struct apid_config *cfg;
static struct apid_store *store;
static char *vol_dir;
/* realpath() of each --volume-root: the runtime opens a root from below its scratch root, where
 * an absolute symlink in the root's own path would not resolve. */
static char **canon_roots;
static pthread_mutex_t vol_lock = PTHREAD_MUTEX_INITIALIZER;

void
apid_volumes_lock(void)
{
    pthread_mutex_lock(&vol_lock);
}

void
apid_volumes_unlock(void)
{
    pthread_mutex_unlock(&vol_lock);
}

int
apid_volumes_init(struct apid_config *c, struct apid_store *s, sbx_error_t *err)
{
    cfg = c;
    store = s;
    free(vol_dir);
    cleanup_free char *given = xasprintf("%s/volumes", c->data_dir);
    int r = mkdir_p(given, 0711, err);
    if (r < 0)
        return r;
    chmod(given, 0711);
    vol_dir = realpath(given, NULL);
    if (!vol_dir)
        return sbx_make_error(err, errno, "volumes directory `%s`", given);
    strv_free(canon_roots);
    canon_roots = NULL;
    for (char **p = c->volume_roots; p && *p; p++) {
        size_t n = strlen(*p);
        while (n > 1 && (*p)[n - 1] == '/')
            (*p)[--n] = '\0';
        struct stat st;
        if ((*p)[0] != '/' || !strcmp(*p, "/"))
            return sbx_make_error(err, 0,
                                  "--volume-root `%s`: must be an absolute directory "
                                  "other than /",
                                  *p);
        if (stat(*p, &st) < 0)
            return sbx_make_error(err, errno, "--volume-root `%s`", *p);
        if (!S_ISDIR(st.st_mode))
            return sbx_make_error(err, ENOTDIR, "--volume-root `%s`", *p);
        char *canon = realpath(*p, NULL);
        if (!canon)
            return sbx_make_error(err, errno, "--volume-root `%s`", *p);
        strv_append(&canon_roots, canon);
        log_info("host volumes allowed below %s%s%s", *p, strcmp(canon, *p) ? " = " : "",
                 strcmp(canon, *p) ? canon : "");
        free(canon);
    }
    /* The sandbox's root is an unprivileged host id: it must traverse every parent of the
     * volumes directory when its bind is made. */
    struct stat st;
    if (stat(c->data_dir, &st) == 0 && !(st.st_mode & S_IXOTH))
        log_warn("named volumes: %s has no o+x, so sandboxes cannot reach %s (chmod o+x %s)",
                 c->data_dir, vol_dir, c->data_dir);
    return 0;
}

/* The --volume-root that contains path (lexically, as given or canonical: both are clean
 * absolute paths): its canonical form, and in *tail the rest of path. NULL: none. */
static const char *
root_of(const char *path, const char **tail)
{
    for (size_t i = 0; canon_roots && canon_roots[i]; i++) {
        const char *forms[2] = {cfg->volume_roots[i], canon_roots[i]};
        for (int f = 0; f < 2; f++) {
            size_t n = strlen(forms[f]);
            if (!strncmp(path, forms[f], n) && (path[n] == '\0' || path[n] == '/')) {
                *tail = path + n;
                return canon_roots[i];
            }
        }
    }
    return NULL;
}

static int
resolve_one(json_t *v, json_t **out, sbx_error_t *err)
{
    const char *name = json_string_value(json_object_get(v, "name"));
    const char *sub = json_string_value(json_object_get(v, "subPath"));
    json_t *host = json_object_get(v, "host"), *pvc = json_object_get(v, "pvc");
    cleanup_free char *root = NULL, *rel = NULL;
    const char *claim = NULL;
    sbx_error_t e2 = NULL;
    struct stat st;
    int fd;
    if (host) {
        const char *path = json_string_value(json_object_get(host, "path"));
        const char *tail = NULL;
        const char *r = root_of(path, &tail);
        if (!r)
            return apid_fail(err, E_INVALID_PARAMETER,
                             "volume `%s`: host path `%s` is not below an allowed volume root "
                             "(sbx-apid --volume-root%s)",
                             name, path, cfg->volume_roots ? "" : "; none is configured");
        root = xstrdup(r);
        while (*tail == '/')
            tail++;
        rel = xstrdup(tail);
        /* Every component walked below the root, symlinks included, never leaving it. */
        fd = sbx_resolve_beneath(root, rel, &st, &e2);
        if (fd < 0) {
            int rr = apid_fail(err, E_INVALID_PARAMETER, "volume `%s`: host path `%s`: %s", name,
                               path, e2->msg);
            sbx_error_release(&e2);
            return rr;
        }
    } else {
        claim = json_string_value(json_object_get(pvc, "claimName"));
        root = xasprintf("%s/%s", vol_dir, claim);
        rel = xstrdup("");
        if (!sbx_volume_exists(vol_dir, claim)) {
            if (!json_is_true(json_object_get(pvc, "createIfNotExists")))
                return apid_fail(err, E_INVALID_PARAMETER,
                                 "volume `%s`: named volume `%s` does not exist "
                                 "(createIfNotExists is false)",
                                 name, claim);
            if (sub)
                return apid_fail(err, E_INVALID_PARAMETER,
                                 "volume `%s`: subPath `%s` does not exist in the new volume `%s`",
                                 name, sub, claim);
            *out =
                json_pack("{s:s, s:s, s:s, s:s, s:b, s:s}", "name", name, "root", root, "rel", "",
                          "mountPath", json_string_value(json_object_get(v, "mountPath")),
                          "readOnly", json_is_true(json_object_get(v, "readOnly")), "claim", claim);
            return 0;
        }
        fd = sbx_resolve_beneath(root, "", &st, &e2);
        if (fd < 0) {
            int rr = apid_fail(err, E_UNKNOWN, "volume `%s`: %s", name, e2->msg);
            sbx_error_release(&e2);
            return rr;
        }
    }
    cleanup_close int volfd = fd;
    if (sub) {
        /* Below the volume itself, never above it: a symlink in the volume (which sandboxes
         * write) that points out of it, or to another place in the root, is refused. */
        if (!S_ISDIR(st.st_mode))
            return apid_fail(err, E_INVALID_PARAMETER,
                             "volume `%s`: subPath needs a directory volume", name);
        int sfd = sbx_open_beneath(volfd, sub);
        if (sfd < 0)
            return apid_fail(err, E_INVALID_PARAMETER, "volume `%s`: subPath `%s` %s", name, sub,
                             sfd == -EXDEV || sfd == -ELOOP ? "leads out of the volume"
                             : sfd == -ENOENT               ? "does not exist"
                                                            : strerror(-sfd));
        close(sfd);
        char *nr = *rel ? xasprintf("%s/%s", rel, sub) : xstrdup(sub);
        free(rel);
        rel = nr;
    }
    *out = json_pack("{s:s, s:s, s:s, s:s, s:b}", "name", name, "root", root, "rel", rel,
                     "mountPath", json_string_value(json_object_get(v, "mountPath")), "readOnly",
                     json_is_true(json_object_get(v, "readOnly")));
    if (claim)
        json_object_set_new(*out, "claim", json_string(claim));
    return 0;
}

int
apid_volumes_resolve(const struct apid_config *c, struct apid_create_req *req, sbx_error_t *err)
{
    (void)c;
    json_decref(req->volume_mounts);
    req->volume_mounts = NULL;
    if (json_array_size(req->volumes) == 0)
        return 0;
    json_t *arr = json_array(), *v;
    size_t i;
    json_array_foreach (req->volumes, i, v) {
        json_t *m = NULL;
        int r = resolve_one(v, &m, err);
        if (r < 0) {
            json_decref(arr);
            return r;
        }
        json_array_append_new(arr, m);
    }
    req->volume_mounts = arr;
    return 0;
}

int
apid_volumes_make(const struct apid_create_req *req, sbx_error_t *err)
{
    json_t *m;
    size_t i;
    json_array_foreach (req->volume_mounts, i, m) {
        const char *claim = json_string_value(json_object_get(m, "claim"));
        bool created;
        if (claim && sbx_volume_create(vol_dir, claim, &created, err) < 0)
            return apid_fail(err, E_START_FAILED, "named volume `%s`: %s", claim, (*err)->msg);
        if (claim && created)
            log_info("named volume %s created", claim);
    }
    return 0;
}

/* Ids of live (non-terminal) sandboxes that mount named volume `name`. */
static json_t *
users_of(const char *name, sbx_error_t *err)
{
    struct apid_sandbox **all = NULL;
    size_t n = 0;
    if (apid_store_all(store, &all, &n, err) < 0)
        return NULL;
    json_t *ids = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *v;
        size_t j;
        if (apid_state_terminal(all[i]->state))
            continue;
        json_array_foreach (all[i]->volumes, j, v) {
            const char *c =
                json_string_value(json_object_get(json_object_get(v, "pvc"), "claimName"));
            if (c && !strcmp(c, name)) {
                json_array_append_new(ids, json_string(all[i]->id));
                break;
            }
        }
    }
    apid_sandbox_list_free(all, n);
    return ids;
}

static json_t *
volume_json(const char *name, sbx_error_t *err)
{
    json_t *ids = users_of(name, err);
    if (!ids)
        return NULL;
    return json_pack("{s:s, s:o}", "name", name, "inUseBy", ids);
}

int
apid_volume_list(json_t **out, sbx_error_t *err)
{
    json_t *names = sbx_volume_list(vol_dir), *items = json_array(), *v;
    size_t i;
    json_array_foreach (names, i, v) {
        json_t *o = volume_json(json_string_value(json_object_get(v, "name")), err);
        if (!o) {
            json_decref(names);
            json_decref(items);
            return -1;
        }
        json_array_append_new(items, o);
    }
    json_decref(names);
    *out = json_pack("{s:o}", "items", items);
    return 0;
}

static int
check_name(const char *name, sbx_error_t *err)
{
    if (!sbx_volume_name_ok(name))
        return apid_fail(err, E_INVALID_PARAMETER,
                         "volume name `%s` must be a DNS label (a-z, 0-9, '-', at most %d)", name,
                         SBX_VOLUME_NAME_MAX);
    return 0;
}

int
apid_volume_get(const char *name, json_t **out, sbx_error_t *err)
{
    int r = check_name(name, err);
    if (r < 0)
        return r;
    if (!sbx_volume_exists(vol_dir, name))
        return apid_fail(err, E_NOT_FOUND, "volume `%s` not found", name);
    *out = volume_json(name, err);
    return *out ? 0 : -1;
}

int
apid_volume_create(const char *body, size_t len, json_t **out, sbx_error_t *err)
{
    json_error_t jerr;
    json_t *root = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    json_t *name = json_object_get(root, "name");
    int r = 0;
    if (!json_is_object(root) || !json_is_string(name)) {
        r = apid_fail(err, E_INVALID_PARAMETER, "body must be {\"name\": \"<volume name>\"}");
        goto out;
    }
    const char *k;
    json_t *v;
    json_object_foreach (root, k, v) {
        if (!strcmp(k, "name"))
            continue;
        if (!strcmp(k, "storage") && !json_is_null(v))
            r = apid_fail(err, E_INVALID_PARAMETER,
                          "storage (a size limit) is not supported: sbx named volumes are "
                          "directories without a quota");
        else
            r = apid_fail(err, E_INVALID_PARAMETER, "unknown field `%s`", k);
        goto out;
    }
    const char *nm = json_string_value(name);
    if ((r = check_name(nm, err)) < 0)
        goto out;
    apid_volumes_lock();
    bool created = false;
    r = sbx_volume_create(vol_dir, nm, &created, err);
    apid_volumes_unlock();
    if (r < 0) {
        r = apid_fail(err, E_UNKNOWN, "creating volume `%s`: %s", nm, (*err)->msg);
        goto out;
    }
    if (!created) {
        r = apid_fail(err, E_CONFLICT, "volume `%s` exists already", nm);
        goto out;
    }
    log_info("named volume %s created", nm);
    *out = volume_json(nm, err);
    r = *out ? 0 : -1;
out:
    json_decref(root);
    return r;
}

int
apid_volume_delete(const char *name, sbx_error_t *err)
{
    int r = check_name(name, err);
    if (r < 0)
        return r;
    apid_volumes_lock();
    if (!sbx_volume_exists(vol_dir, name)) {
        apid_volumes_unlock();
        return apid_fail(err, E_NOT_FOUND, "volume `%s` not found", name);
    }
    json_t *ids = users_of(name, err);
    if (!ids) {
        apid_volumes_unlock();
        return -1;
    }
    if (json_array_size(ids) > 0) {
        cleanup_free char *s = json_dumps(ids, JSON_COMPACT);
        json_decref(ids);
        apid_volumes_unlock();
        return apid_fail(err, E_CONFLICT, "volume `%s` is in use by sandbox(es) %s", name, s);
    }
    json_decref(ids);
    sbx_error_t e2 = NULL;
    r = sbx_volume_remove(vol_dir, name, &e2);
    apid_volumes_unlock();
    if (r < 0) {
        r = apid_fail(err, E_UNKNOWN, "removing volume `%s`: %s", name, e2->msg);
        sbx_error_release(&e2);
        return r;
    }
    log_info("named volume %s removed", name);
    return 0;
}
