#include "image_store.h"
#include "config.h"
#include "image_ref.h"
#include "utils.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/file.h>

#define STORE_SUBDIR ".oci"

const char *
sbx_images_dir(void)
{
    const char *d = getenv("SBX_IMAGES");
    return d && *d ? d : SBX_DEFAULT_IMAGES_DIR;
}

int
sbx_store_open(const char *images_dir, bool create, struct sbx_store *st, sbx_error_t *err)
{
    memset(st, 0, sizeof(*st));
    st->dirfd = -1;
    st->dir = xasprintf("%s/" STORE_SUBDIR, images_dir ? images_dir : sbx_images_dir());
    if (create) {
        static const char *const sub[] = {"blobs/sha256", "layers", "images", "tmp"};
        for (size_t i = 0; i < ARRAY_SIZE(sub); i++) {
            cleanup_free char *p = xasprintf("%s/%s", st->dir, sub[i]);
            if (mkdir_p(p, 0755, err) < 0) {
                sbx_store_close(st);
                return sbx_error_wrap(err, "image store");
            }
        }
    }
    st->dirfd = open(st->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (st->dirfd < 0) {
        int e = errno;
        int r = sbx_make_error(err, e, "image store `%s`", st->dir);
        sbx_store_close(st);
        return e == ENOENT ? -ENOENT : r;
    }
    return 0;
}

void
sbx_store_close(struct sbx_store *st)
{
    free(st->dir);
    st->dir = NULL;
    if (st->dirfd >= 0)
        close(st->dirfd);
    st->dirfd = -1;
}

/* Opens name below the store with flags and flocks it (how); returns the fd to close. Every lock
 * of the store goes through here: lock, gc.lock, and the image records a sandbox holds. */
static int
lock_file(struct sbx_store *st, const char *name, int flags, int how, sbx_error_t *err)
{
    int fd = openat(st->dirfd, name, flags | O_CLOEXEC, 0600);
    if (fd < 0)
        return sbx_make_error(err, errno, "open `%s/%s`", st->dir, name);
    if (TEMP_FAILURE_RETRY(flock(fd, how)) < 0) {
        int e = errno;
        close(fd);
        return sbx_make_error(err, e, "lock `%s/%s`", st->dir, name);
    }
    return fd;
}

int
sbx_store_lock(struct sbx_store *st, sbx_error_t *err)
{
    return lock_file(st, "lock", O_RDWR | O_CREAT, LOCK_EX, err);
}

json_t *
sbx_store_refs(struct sbx_store *st, sbx_error_t *err)
{
    cleanup_free char *txt = NULL;
    size_t len;
    sbx_error_t e2 = NULL;
    if (read_file_at(st->dirfd, "refs.json", &txt, &len, &e2) < 0) {
        sbx_error_release(&e2);
        if (errno == ENOENT || faccessat(st->dirfd, "refs.json", F_OK, 0) < 0)
            return json_object();
        sbx_make_error(err, errno, "read `%s/refs.json`", st->dir);
        return NULL;
    }
    json_error_t jerr;
    json_t *refs = json_loadb(txt, len, 0, &jerr);
    if (!json_is_object(refs)) {
        json_decref(refs);
        sbx_make_error(err, 0, "`%s/refs.json` is damaged: %s", st->dir, jerr.text);
        return NULL;
    }
    return refs;
}

int
sbx_store_lookup(struct sbx_store *st, const char *ref, char **digest, sbx_error_t *err)
{
    json_t *refs = sbx_store_refs(st, err);
    if (refs == NULL)
        return -1;
    const char *d = json_string_value(json_object_get(refs, ref));
    int r = d && sbx_digest_valid(d) ? 0 : -ENOENT;
    if (r == 0)
        *digest = xstrdup(d);
    json_decref(refs);
    return r;
}

/* tmp file + rename in the same directory: readers see the old or the new file, whole. */
static int
replace_file_at(int dirfd, const char *dir, const char *name, const char *data, sbx_error_t *err)
{
    cleanup_free char *tmp = xasprintf("tmp/%s.%d", name, getpid());
    for (char *p = tmp + 4; *p; p++)
        if (*p == '/')
            *p = '_';
    cleanup_close int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return sbx_make_error(err, errno, "create `%s/%s`", dir, tmp);
    if (safe_write(fd, data, strlen(data)) < 0 || fsync(fd) < 0 ||
        renameat(dirfd, tmp, dirfd, name) < 0) {
        int e = errno;
        unlinkat(dirfd, tmp, 0);
        return sbx_make_error(err, e, "write `%s/%s`", dir, name);
    }
    return 0;
}

int
sbx_store_set_ref(struct sbx_store *st, const char *ref, const char *digest, sbx_error_t *err)
{
    cleanup_close int lock = sbx_store_lock(st, err);
    if (lock < 0)
        return lock;
    json_t *refs = sbx_store_refs(st, err);
    if (refs == NULL)
        return -1;
    if (digest)
        json_object_set_new(refs, ref, json_string(digest));
    else
        json_object_del(refs, ref);
    cleanup_free char *txt = json_dumps(refs, JSON_INDENT(1) | JSON_SORT_KEYS);
    json_decref(refs);
    return replace_file_at(st->dirfd, st->dir, "refs.json", txt, err);
}

static char *
record_name(const char *digest)
{
    return xasprintf("images/%s.json", digest + 7);
}

json_t *
sbx_store_image(struct sbx_store *st, const char *digest, sbx_error_t *err)
{
    if (!sbx_digest_valid(digest)) {
        sbx_make_error(err, 0, "invalid image digest `%s`", digest);
        return NULL;
    }
    cleanup_free char *name = record_name(digest);
    cleanup_free char *txt = NULL;
    size_t len;
    if (read_file_at(st->dirfd, name, &txt, &len, err) < 0)
        return NULL;
    json_error_t jerr;
    json_t *rec = json_loadb(txt, len, 0, &jerr);
    if (!json_is_object(rec) || !json_is_array(json_object_get(rec, "layers"))) {
        json_decref(rec);
        sbx_make_error(err, 0, "image record `%s/%s` is damaged", st->dir, name);
        return NULL;
    }
    size_t i;
    json_t *l;
    json_array_foreach (json_object_get(rec, "layers"), i, l) {
        if (!sbx_digest_valid(json_string_value(l))) {
            json_decref(rec);
            sbx_make_error(err, 0, "image record `%s/%s` names an invalid layer", st->dir, name);
            return NULL;
        }
    }
    return rec;
}

int
sbx_store_put_image(struct sbx_store *st, const char *digest, json_t *record, sbx_error_t *err)
{
    cleanup_free char *name = record_name(digest);
    cleanup_free char *txt = json_dumps(record, JSON_INDENT(1) | JSON_SORT_KEYS);
    return replace_file_at(st->dirfd, st->dir, name, txt, err);
}

char *
sbx_store_layer_path(struct sbx_store *st, const char *diff_id)
{
    return xasprintf("%s/layers/%s", st->dir, diff_id + 7);
}

bool
sbx_store_has_layer(struct sbx_store *st, const char *diff_id)
{
    cleanup_free char *p = xasprintf("layers/%s", diff_id + 7);
    struct stat sb;
    return sbx_digest_valid(diff_id) && fstatat(st->dirfd, p, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
           S_ISDIR(sb.st_mode);
}

char *
sbx_store_blob_path(struct sbx_store *st, const char *digest)
{
    return xasprintf("%s/blobs/sha256/%s", st->dir, digest + 7);
}

bool
sbx_store_has_blob(struct sbx_store *st, const char *digest)
{
    cleanup_free char *p = xasprintf("blobs/sha256/%s", digest + 7);
    return sbx_digest_valid(digest) && faccessat(st->dirfd, p, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

/* A unique image whose digest starts with prefix (hex, >= 12 digits), as `images` shows it. */
static char *
digest_by_prefix(struct sbx_store *st, const char *prefix)
{
    size_t n = strlen(prefix);
    if (n < 12 || n > 64 || strspn(prefix, "0123456789abcdef") != n)
        return NULL;
    int fd = openat(st->dirfd, "images", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    cleanup_dir DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return NULL;
    }
    char *found = NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, prefix, n) != 0 || strlen(de->d_name) != 64 + 5 ||
            strcmp(de->d_name + 64, ".json") != 0)
            continue;
        if (found) { /* ambiguous */
            free(found);
            return NULL;
        }
        found = xasprintf("sha256:%.64s", de->d_name);
    }
    return found;
}

json_t *
sbx_store_resolve(struct sbx_store *st, const char *name, char **digest, sbx_error_t *err)
{
    *digest = NULL;
    const char *hex = strncmp(name, "sha256:", 7) == 0 ? name + 7 : name;
    char *d = digest_by_prefix(st, hex);
    if (d == NULL) {
        struct sbx_image_ref ref;
        if (sbx_image_ref_parse(name, &ref, err) < 0)
            return NULL;
        cleanup_free char *canon = sbx_image_ref_string(&ref);
        sbx_image_ref_free(&ref);
        int r = sbx_store_lookup(st, canon, &d, err);
        if (r == -ENOENT) {
            sbx_make_error_code(err, SBX_ERR_NOT_FOUND, 0, "image `%s` is not in the store", canon);
            errno = ENOENT;
        }
        if (r < 0)
            return NULL;
    }
    json_t *rec = sbx_store_image(st, d, err);
    if (rec == NULL) {
        free(d);
        return NULL;
    }
    *digest = d;
    return rec;
}

int
sbx_store_hold(struct sbx_store *st, const char *digest, sbx_error_t *err)
{
    cleanup_free char *name = record_name(digest);
    return lock_file(st, name, O_RDONLY | O_NOFOLLOW, LOCK_SH, err);
}

bool
sbx_store_in_use(struct sbx_store *st, const char *digest)
{
    cleanup_free char *name = record_name(digest);
    cleanup_close int fd = openat(st->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return false;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0)
        return errno == EWOULDBLOCK;
    flock(fd, LOCK_UN);
    return false;
}

/* Everything referenced by the records that remain: their layers and blobs. */
static void
collect_used(json_t *used_layers, json_t *used_blobs, json_t *records)
{
    size_t i;
    json_t *rec;
    json_array_foreach (records, i, rec) {
        size_t j;
        json_t *l;
        json_array_foreach (json_object_get(rec, "layers"), j, l)
            json_object_set_new(used_layers, json_string_value(l) + 7, json_true());
        json_array_foreach (json_object_get(rec, "layerBlobs"), j, l)
            if (json_is_string(l) && strlen(json_string_value(l)) > 7)
                json_object_set_new(used_blobs, json_string_value(l) + 7, json_true());
        json_object_set_new(used_blobs, json_string_value(json_object_get(rec, "digest")) + 7,
                            json_true());
        const char *cd = json_string_value(json_object_get(rec, "configDigest"));
        if (cd && strlen(cd) > 7)
            json_object_set_new(used_blobs, cd + 7, json_true());
    }
}

/* Removes what nothing uses: records no reference names (unless a sandbox holds them), then
 * layers and blobs no remaining record names. Returns the number of things removed. */
int
sbx_store_gc(struct sbx_store *st, FILE *log)
{
    json_t *refs = sbx_store_refs(st, NULL);
    if (refs == NULL)
        return -1;
    json_t *named = json_object(), *records = json_array();
    const char *k;
    json_t *v;
    json_object_foreach (refs, k, v)
        json_object_set_new(named, json_string_value(v), json_true());
    int removed = 0;
    int fd = openat(st->dirfd, "images", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (strlen(de->d_name) != 69 || strcmp(de->d_name + 64, ".json") != 0)
            continue;
        char digest[72];
        snprintf(digest, sizeof(digest), "sha256:%.64s", de->d_name);
        json_t *rec = sbx_store_image(st, digest, NULL);
        if (json_object_get(named, digest) || sbx_store_in_use(st, digest)) {
            if (rec)
                json_array_append_new(records, rec);
            continue;
        }
        json_decref(rec);
        cleanup_free char *p = xasprintf("images/%s", de->d_name);
        if (unlinkat(st->dirfd, p, 0) == 0) {
            removed++;
            if (log)
                fprintf(log, "deleted image %s\n", digest);
        }
    }
    if (d)
        closedir(d);
    json_t *used_layers = json_object(), *used_blobs = json_object();
    collect_used(used_layers, used_blobs, records);
    static const char *const dirs[] = {"layers", "blobs/sha256"};
    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
        json_t *used = i == 0 ? used_layers : used_blobs;
        fd = openat(st->dirfd, dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        d = fd >= 0 ? fdopendir(fd) : NULL;
        while (d && (de = readdir(d))) {
            if (de->d_name[0] == '.' || json_object_get(used, de->d_name))
                continue;
            cleanup_free char *p = xasprintf("%s/%s/%s", st->dir, dirs[i], de->d_name);
            if (rm_rf(p, NULL) == 0) {
                removed++;
                if (log)
                    fprintf(log, "deleted %s sha256:%s\n", i == 0 ? "layer" : "blob", de->d_name);
            }
        }
        if (d)
            closedir(d);
    }
    json_decref(used_layers);
    json_decref(used_blobs);
    json_decref(records);
    json_decref(named);
    json_decref(refs);
    return removed;
}

json_t *
sbx_store_list(struct sbx_store *st)
{
    json_t *out = json_array();
    json_t *refs = sbx_store_refs(st, NULL);
    const char *ref;
    json_t *v;
    json_object_foreach (refs, ref, v) {
        const char *d = json_string_value(v);
        json_t *rec = d ? sbx_store_image(st, d, NULL) : NULL;
        if (rec == NULL)
            continue;
        json_t *o = json_pack("{s:s, s:s, s:O, s:O, s:b}", "name", ref, "digest", d, "size",
                              json_object_get(rec, "size"), "layers",
                              json_object_get(rec, "layers"), "inUse", sbx_store_in_use(st, d));
        json_t *created = json_object_get(rec, "created");
        if (json_is_string(created))
            json_object_set(o, "created", created);
        json_t *ports = json_object_get(json_object_get(rec, "config"), "ExposedPorts");
        if (json_is_object(ports)) {
            json_t *pl = json_array();
            const char *k;
            json_t *pv;
            json_object_foreach (ports, k, pv)
                json_array_append_new(pl, json_string(k));
            json_object_set_new(o, "exposedPorts", pl);
        }
        json_array_append_new(out, o);
        json_decref(rec);
    }
    json_decref(refs);
    return out;
}

int
sbx_store_remove(struct sbx_store *st, const char *name, char ***untagged, sbx_error_t *err)
{
    cleanup_free char *digest = NULL;
    json_t *rec = sbx_store_resolve(st, name, &digest, err);
    if (rec == NULL) {
        /* Whatever kept the name from resolving (a malformed name too), there is no such image
         * to remove: callers answer "not found" from the code. */
        if (err && *err && !(*err)->code)
            (*err)->code = SBX_ERR_NOT_FOUND;
        return -ENOENT;
    }
    json_decref(rec);
    /* By name, that reference goes (Docker's untag: other names of the image stay); by id,
     * every reference to it. The image itself goes when no reference is left, unless a
     * sandbox runs it. */
    json_t *refs = sbx_store_refs(st, err);
    if (refs == NULL)
        return -1;
    cleanup_free char *canon = NULL;
    struct sbx_image_ref ref;
    if (sbx_image_ref_parse(name, &ref, NULL) == 0) {
        canon = sbx_image_ref_string(&ref);
        sbx_image_ref_free(&ref);
    }
    bool by_name = canon && json_object_get(refs, canon);
    size_t all = 0, drop = 0;
    const char *k;
    json_t *v;
    json_object_foreach (refs, k, v) {
        if (strcmp(json_string_value(v), digest) != 0)
            continue;
        all++;
        drop += !by_name || strcmp(k, canon) == 0;
    }
    int r = 0;
    if (drop == all && sbx_store_in_use(st, digest)) {
        r = sbx_make_error_code(err, SBX_ERR_BUSY, EBUSY,
                                "image `%s` is in use by a running sandbox", name);
    } else {
        json_object_foreach (refs, k, v) {
            if (strcmp(json_string_value(v), digest) != 0 || (by_name && strcmp(k, canon) != 0))
                continue;
            if ((r = sbx_store_set_ref(st, k, NULL, err)) < 0)
                break;
            strv_append(untagged, k);
        }
    }
    json_decref(refs);
    return r;
}

int
sbx_store_gc_lock(struct sbx_store *st, int how, sbx_error_t *err)
{
    return lock_file(st, "gc.lock", O_RDWR | O_CREAT, how, err);
}
