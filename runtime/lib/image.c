#include "image.h"
#include "config.h"
#include "digest.h"
#include "layer.h"
#include "state.h"
#include "utils.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>

#define MAX_LAYERS 127 /* Docker's own limit; overlayfs stacks at most 500 */

void
sbx_manifest_free(struct sbx_manifest *m)
{
    free(m->config.media_type);
    free(m->config.digest);
    for (size_t i = 0; i < m->n_layers; i++) {
        free(m->layers[i].media_type);
        free(m->layers[i].digest);
    }
    free(m->layers);
    memset(m, 0, sizeof(*m));
}

static int
parse_descriptor(json_t *j, struct sbx_descriptor *d, const char *what, sbx_error_t *err)
{
    const char *mt = json_string_value(json_object_get(j, "mediaType"));
    const char *dg = json_string_value(json_object_get(j, "digest"));
    json_t *sz = json_object_get(j, "size");
    if (!sbx_digest_valid(dg))
        return sbx_make_error(err, 0, "manifest: %s has no valid sha256 digest", what);
    if (!json_is_integer(sz) || json_integer_value(sz) < 0)
        return sbx_make_error(err, 0, "manifest: %s has no valid size", what);
    d->media_type = xstrdup(mt ? mt : "");
    d->digest = xstrdup(dg);
    d->size = json_integer_value(sz);
    return 0;
}

static bool
layer_type_known(const char *t)
{
    static const char *const ok[] = {
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.diff.tar",
        "application/vnd.docker.image.rootfs.diff.tar.zstd",
    };
    for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
        if (strcmp(t, ok[i]) == 0)
            return true;
    return false;
}

int
sbx_manifest_parse(const char *body, size_t len, struct sbx_manifest *m, sbx_error_t *err)
{
    memset(m, 0, sizeof(*m));
    json_error_t jerr;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    int r = 0;
    if (!json_is_object(j)) {
        r = sbx_make_error(err, 0, "manifest is not a JSON object: %s", jerr.text);
        goto out;
    }
    if (json_integer_value(json_object_get(j, "schemaVersion")) != 2) {
        r = sbx_make_error(err, 0,
                           "manifest: schemaVersion is not 2 (Docker schema 1 images are "
                           "not supported; push them again with a current client)");
        goto out;
    }
    if ((r = parse_descriptor(json_object_get(j, "config"), &m->config, "config", err)) < 0)
        goto out;
    json_t *layers = json_object_get(j, "layers");
    if (!json_is_array(layers) || json_array_size(layers) > MAX_LAYERS) {
        r = sbx_make_error(err, 0, "manifest: layers must be an array of at most %d", MAX_LAYERS);
        goto out;
    }
    m->layers = xmalloc0((json_array_size(layers) + 1) * sizeof(*m->layers));
    size_t i;
    json_t *l;
    json_array_foreach (layers, i, l) {
        char what[32];
        snprintf(what, sizeof(what), "layer %zu", i);
        if ((r = parse_descriptor(l, &m->layers[i], what, err)) < 0)
            goto out;
        m->n_layers++;
        if (!layer_type_known(m->layers[i].media_type)) {
            r = sbx_make_error(err, 0,
                               "manifest: layer %zu has media type `%s` (sbx takes tar "
                               "layers, uncompressed, gzip or zstd)",
                               i, m->layers[i].media_type);
            goto out;
        }
    }
out:
    json_decref(j);
    if (r < 0)
        sbx_manifest_free(m);
    return r;
}

bool
sbx_is_index(const char *media_type, json_t *body)
{
    const char *t = media_type && *media_type
                        ? media_type
                        : json_string_value(json_object_get(body, "mediaType"));
    if (t && (strcmp(t, "application/vnd.oci.image.index.v1+json") == 0 ||
              strcmp(t, "application/vnd.docker.distribution.manifest.list.v2+json") == 0))
        return true;
    /* An OCI index may leave mediaType out: it has manifests and no config. */
    return json_is_array(json_object_get(body, "manifests")) &&
           json_object_get(body, "config") == NULL;
}

int
sbx_index_pick(json_t *index, const char *platform, char **digest, sbx_error_t *err)
{
    cleanup_free char *want = xstrdup(platform ? platform : "");
    if (platform == NULL) {
        free(want);
        want = xasprintf("linux/%s", sbx_host_arch());
    }
    char *os = want, *arch = strchr(want, '/'), *variant = NULL;
    if (arch == NULL)
        return sbx_make_error(err, 0, "platform `%s`: want OS/ARCH[/VARIANT]", want);
    *arch++ = '\0';
    if ((variant = strchr(arch, '/')))
        *variant++ = '\0';
    size_t i;
    json_t *m, *found = NULL;
    cleanup_free char *have = xstrdup("");
    json_array_foreach (json_object_get(index, "manifests"), i, m) {
        json_t *p = json_object_get(m, "platform");
        const char *mo = json_string_value(json_object_get(p, "os"));
        const char *ma = json_string_value(json_object_get(p, "architecture"));
        const char *mv = json_string_value(json_object_get(p, "variant"));
        if (mo && ma) {
            char *h = xasprintf("%s%s%s/%s%s%s", have, *have ? ", " : "", mo, ma, mv ? "/" : "",
                                mv ? mv : "");
            free(have);
            have = h;
        }
        if (mo && ma && strcmp(mo, os) == 0 && strcmp(ma, arch) == 0 &&
            (variant == NULL || (mv && strcmp(mv, variant) == 0))) {
            found = m;
            break;
        }
    }
    const char *d = json_string_value(json_object_get(found, "digest"));
    if (found == NULL)
        return sbx_make_error(err, 0, "no image for platform %s/%s%s%s in the index (it has: %s)",
                              os, arch, variant ? "/" : "", variant ? variant : "",
                              *have ? have : "none");
    if (!sbx_digest_valid(d))
        return sbx_make_error(err, 0, "index entry for %s/%s has no valid digest", os, arch);
    *digest = xstrdup(d);
    return 0;
}

int
sbx_store_tmpfile(struct sbx_store *st, const char *tag, char **path, sbx_error_t *err)
{
    char rnd[9];
    random_hex(rnd, 8);
    cleanup_free char *name = xasprintf("tmp/%s-%s.%d", tag, rnd, getpid());
    int fd = openat(st->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return sbx_make_error(err, errno, "create `%s/%s`", st->dir, name);
    *path = xasprintf("%s/%s", st->dir, name);
    return fd;
}

int
sbx_store_put_blob(struct sbx_store *st, const char *digest, const char *data, size_t len,
                   sbx_error_t *err)
{
    char got[SBX_DIGEST_LEN + 1];
    sbx_sha256_buf(data, len, got);
    if (strcmp(got, digest) != 0)
        return sbx_make_error(err, 0, "blob %s: content does not match its digest", digest);
    if (sbx_store_has_blob(st, digest))
        return 0;
    cleanup_free char *tmp = NULL;
    cleanup_close int fd = sbx_store_tmpfile(st, "blob", &tmp, err);
    if (fd < 0)
        return fd;
    cleanup_free char *dst = sbx_store_blob_path(st, digest);
    if (safe_write(fd, data, len) < 0 || fsync(fd) < 0 || rename(tmp, dst) < 0) {
        int e = errno;
        unlink(tmp);
        return sbx_make_error(err, e, "store blob %s", digest);
    }
    return 0;
}

int
sbx_store_install_layer(struct sbx_store *st, const char *diff_id, int fd, uint64_t max_bytes,
                        sbx_error_t *err)
{
    if (!sbx_digest_valid(diff_id))
        return sbx_make_error(err, 0, "invalid layer diff_id `%s`", diff_id);
    if (sbx_store_has_layer(st, diff_id))
        return 0;
    /* One unpack per layer at a time; the rename below keeps it correct without the lock. */
    cleanup_free char *lockname = xasprintf("tmp/lock-%s", diff_id + 7);
    cleanup_close int lock = openat(st->dirfd, lockname, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock >= 0)
        TEMP_FAILURE_RETRY(flock(lock, LOCK_EX));
    if (sbx_store_has_layer(st, diff_id))
        return 0;
    char rnd[9];
    random_hex(rnd, 8);
    cleanup_free char *tmpname = xasprintf("tmp/layer-%.12s-%s.%d", diff_id + 7, rnd, getpid());
    cleanup_free char *tmp = xasprintf("%s/%s", st->dir, tmpname);
    /* Declared before the first goto: a cleanup variable jumped over is freed uninitialised. */
    cleanup_free char *dst = xasprintf("layers/%s", diff_id + 7);
    if (mkdirat(st->dirfd, tmpname, 0755) < 0)
        return sbx_make_error(err, errno, "create `%s`", tmp);
    struct sbx_layer_opts lo = {.max_bytes = max_bytes};
    uint32_t n;
    sbx_host_id_base(false, &lo.uid_base, &n);
    sbx_host_id_base(true, &lo.gid_base, &n);
    /* The layer's root: the mapped root owns it, as it owns everything of `make rootfs`. */
    int r;
    {
        cleanup_close int dfd =
            openat(st->dirfd, tmpname, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (dfd < 0 || fchown(dfd, lo.uid_base, lo.gid_base) < 0) {
            r = sbx_make_error(err, errno, "prepare `%s`", tmp);
            goto fail;
        }
        char got[SBX_DIGEST_LEN + 1];
        struct sbx_layer_stats stats;
        if ((r = sbx_layer_unpack(fd, dfd, &lo, got, &stats, err)) < 0)
            goto fail;
        if (strcmp(got, diff_id) != 0) {
            r = sbx_make_error(err, 0, "layer content does not match its diff_id %s (got %s)",
                               diff_id, got);
            goto fail;
        }
        if (syncfs(dfd) < 0) {
            r = sbx_make_error(err, errno, "sync `%s`", tmp);
            goto fail;
        }
    }
    if (renameat(st->dirfd, tmpname, st->dirfd, dst) < 0) {
        int e = errno;
        if ((e == EEXIST || e == ENOTEMPTY) && sbx_store_has_layer(st, diff_id)) {
            rm_rf(tmp, NULL); /* another process won the race: its copy is the same */
            return 0;
        }
        r = sbx_make_error(err, e, "install layer %s", diff_id);
        goto fail;
    }
    unlinkat(st->dirfd, lockname, 0);
    return 0;
fail:
    rm_rf(tmp, NULL);
    return r;
}

static json_t *
config_subset(json_t *cfg)
{
    json_t *c = json_object_get(cfg, "config");
    json_t *out = json_object();
    static const char *const keep[] = {"Env",        "Entrypoint", "Cmd",
                                       "WorkingDir", "User",       "ExposedPorts",
                                       "Labels",     "StopSignal", "Volumes"};
    for (size_t i = 0; i < ARRAY_SIZE(keep); i++) {
        json_t *v = json_object_get(c, keep[i]);
        if (v && !json_is_null(v))
            json_object_set(out, keep[i], v);
    }
    return out;
}

int
sbx_store_commit_image(struct sbx_store *st, const char *manifest_digest,
                       const struct sbx_manifest *m, const char *config, size_t config_len,
                       const char *ref, sbx_error_t *err)
{
    json_error_t jerr;
    json_t *cfg = json_loadb(config, config_len, 0, &jerr);
    if (!json_is_object(cfg)) {
        json_decref(cfg);
        return sbx_make_error(err, 0, "image config is not a JSON object: %s", jerr.text);
    }
    json_t *ids = json_object_get(json_object_get(cfg, "rootfs"), "diff_ids");
    int r = 0;
    cleanup_free char *now = sbx_now_rfc3339(); /* before any goto: see install_layer */
    if (!json_is_array(ids) || json_array_size(ids) != m->n_layers) {
        r = sbx_make_error(err, 0,
                           "image config: rootfs.diff_ids must list one digest per "
                           "layer (%zu)",
                           m->n_layers);
        goto out;
    }
    json_t *layers = json_array(), *blobs = json_array();
    int64_t size = 0;
    for (size_t i = 0; i < m->n_layers; i++) {
        const char *d = json_string_value(json_array_get(ids, i));
        if (!sbx_digest_valid(d) || !sbx_store_has_layer(st, d)) {
            json_decref(layers);
            json_decref(blobs);
            r = sbx_make_error(err, 0, "image config: layer %zu (%s) is %s", i, d ? d : "?",
                               sbx_digest_valid(d) ? "not in the store" : "not a sha256 digest");
            goto out;
        }
        json_array_append_new(layers, json_string(d));
        json_array_append_new(blobs, json_string(m->layers[i].digest));
        size += m->layers[i].size;
    }
    const char *os = json_string_value(json_object_get(cfg, "os"));
    const char *arch = json_string_value(json_object_get(cfg, "architecture"));
    const char *created = json_string_value(json_object_get(cfg, "created"));
    json_t *rec =
        json_pack("{s:s, s:s, s:s, s:o, s:o, s:I, s:s, s:s, s:s, s:o}", "digest", manifest_digest,
                  "configDigest", m->config.digest, "name", ref, "layers", layers, "layerBlobs",
                  blobs, "size", (json_int_t)size, "os", os ? os : "linux", "architecture",
                  arch ? arch : "", "pulled", now, "config", config_subset(cfg));
    if (created)
        json_object_set_new(rec, "created", json_string(created));
    r = sbx_store_put_image(st, manifest_digest, rec, err);
    json_decref(rec);
    /* An untagged image (a `docker save` of an image id) is named by its digest alone. */
    if (r == 0 && strcmp(ref, "<none>") != 0)
        r = sbx_store_set_ref(st, ref, manifest_digest, err);
out:
    json_decref(cfg);
    return r;
}

void
sbx_store_clean_tmp(struct sbx_store *st)
{
    int fd = openat(st->dirfd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    cleanup_dir DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *dot = strrchr(de->d_name, '.');
        int64_t pid;
        if (dot == NULL || parse_int64(dot + 1, 1, INT32_MAX, &pid) < 0)
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        cleanup_free char *p = xasprintf("%s/tmp/%s", st->dir, de->d_name);
        rm_rf(p, NULL);
    }
}
