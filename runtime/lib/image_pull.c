/* A pull: manifest (through an index to this host's platform), config, then each layer that is
 * not in the store yet: downloaded into tmp/ while its sha256 is checked, unpacked into a tmp
 * directory while its diff_id is checked, renamed into layers/. The record and the reference
 * are written last, so an image is visible only once all of it is there. */
#include "image.h"
#include "digest.h"
#include "utils.h"

#include <fcntl.h>

struct layer_progress {
    const struct sbx_pull_opts *o;
    int index, n;
    const char *digest;
};

static void
on_blob_progress(uint64_t done, uint64_t total, void *data)
{
    struct layer_progress *lp = data;
    if (lp->o && lp->o->progress.layer)
        lp->o->progress.layer(lp->index, lp->n, lp->digest, done, total, "downloading",
                              lp->o->progress.data);
}

static void
report(const struct sbx_pull_opts *o, int i, int n, const char *digest, uint64_t done,
       uint64_t total, const char *state)
{
    if (o && o->progress.layer)
        o->progress.layer(i, n, digest, done, total, state, o->progress.data);
}

void
sbx_pull_result_free(struct sbx_pull_result *res)
{
    free(res->ref);
    res->ref = NULL;
}

static int
fetch_small_blob(struct sbx_registry *reg, struct sbx_store *st, const struct sbx_descriptor *d,
                 char **out, size_t *len, sbx_error_t *err)
{
    if (d->size > (16 << 20))
        return sbx_make_error(err, 0, "config blob %s is %lld bytes (at most 16 MiB)", d->digest,
                              (long long)d->size);
    cleanup_free char *path = NULL;
    cleanup_close int fd = sbx_store_tmpfile(st, "config", &path, err);
    if (fd < 0)
        return fd;
    int r = sbx_registry_blob(reg, d->digest, d->size, fd, NULL, NULL, err);
    if (r == 0)
        r = read_file(path, out, len, err);
    unlink(path);
    return r;
}

int
sbx_image_pull(const char *name, const struct sbx_pull_opts *o, struct sbx_pull_result *res,
               sbx_error_t *err)
{
    memset(res, 0, sizeof(*res));
    res->kind = SBX_PULL_FAILED;
    struct sbx_image_ref ref;
    if (sbx_image_ref_parse(name, &ref, err) < 0)
        return -1;
    res->ref = sbx_image_ref_string(&ref);
    struct sbx_store st;
    struct sbx_registry *reg = NULL;
    struct sbx_manifest m = {0};
    char *body = NULL, *mtype = NULL, *config = NULL;
    size_t len = 0, config_len = 0;
    json_t *index = NULL;
    int r = sbx_store_open(o ? o->images_dir : NULL, true, &st, err);
    if (r < 0)
        goto out_ref;
    sbx_store_clean_tmp(&st);
    if ((r = sbx_registry_open(&ref, o ? &o->reg : NULL, &reg, err)) < 0)
        goto out;
    report(o, -1, 0, NULL, 0, 0, "resolving");
    const char *want = ref.digest ? ref.digest : ref.tag;
    if ((r = sbx_registry_manifest(reg, want, &body, &len, &mtype, res->digest, err)) < 0)
        goto out;
    index = json_loadb(body, len, 0, NULL);
    if (index == NULL) {
        r = sbx_make_error(err, 0, "manifest of `%s` is not JSON", res->ref);
        goto out;
    }
    if (sbx_is_index(mtype, index)) {
        /* The index is kept too: pulling the same reference for another platform reuses it. */
        cleanup_free char *pick = NULL;
        if ((r = sbx_store_put_blob(&st, res->digest, body, len, err)) < 0 ||
            (r = sbx_index_pick(index, o ? o->platform : NULL, &pick, err)) < 0)
            goto out;
        free(body);
        free(mtype);
        body = mtype = NULL;
        if ((r = sbx_registry_manifest(reg, pick, &body, &len, &mtype, res->digest, err)) < 0)
            goto out;
    }
    if ((r = sbx_manifest_parse(body, len, &m, err)) < 0)
        goto out;
    if ((r = sbx_store_put_blob(&st, res->digest, body, len, err)) < 0)
        goto out;
    if ((r = fetch_small_blob(reg, &st, &m.config, &config, &config_len, err)) < 0 ||
        (r = sbx_store_put_blob(&st, m.config.digest, config, config_len, err)) < 0)
        goto out;
    json_t *cfg = json_loadb(config, config_len, 0, NULL);
    json_t *ids = json_object_get(json_object_get(cfg, "rootfs"), "diff_ids");
    if (!json_is_array(ids) || json_array_size(ids) != m.n_layers) {
        json_decref(cfg);
        r = sbx_make_error(err, 0,
                           "image config of `%s`: rootfs.diff_ids must list one digest "
                           "per layer (%zu)",
                           res->ref, m.n_layers);
        goto out;
    }
    res->layers = (int)m.n_layers;
    for (size_t i = 0; i < m.n_layers; i++) {
        const char *diff_id = json_string_value(json_array_get(ids, i));
        const struct sbx_descriptor *d = &m.layers[i];
        if (!sbx_digest_valid(diff_id)) {
            r = sbx_make_error(err, 0, "image config: diff_id %zu is not a sha256 digest", i);
            break;
        }
        if (sbx_store_has_layer(&st, diff_id)) {
            report(o, (int)i, (int)m.n_layers, d->digest, d->size, d->size, "present");
            continue;
        }
        cleanup_free char *path = NULL;
        cleanup_close int fd = sbx_store_tmpfile(&st, "layer", &path, err);
        if (fd < 0) {
            r = fd;
            break;
        }
        struct layer_progress lp = {o, (int)i, (int)m.n_layers, d->digest};
        r = sbx_registry_blob(reg, d->digest, d->size, fd, on_blob_progress, &lp, err);
        if (r == 0) {
            report(o, (int)i, (int)m.n_layers, d->digest, d->size, d->size, "unpacking");
            /* Gone before the layer's syncfs, which would otherwise write the compressed copy
             * to disk for nothing (the fd keeps it readable). */
            unlink(path);
            if (lseek(fd, 0, SEEK_SET) < 0)
                r = sbx_make_error(err, errno, "rewind `%s`", path);
            else
                r = sbx_store_install_layer(&st, diff_id, fd, o ? o->max_layer_bytes : 0, err);
            if (r < 0)
                sbx_error_wrap(err, "layer %zu (%s)", i, d->digest);
        }
        unlink(path);
        if (r < 0)
            break;
        res->layers_fetched++;
        res->bytes_fetched += (uint64_t)d->size;
        report(o, (int)i, (int)m.n_layers, d->digest, d->size, d->size, "done");
    }
    json_decref(cfg);
    if (r < 0)
        goto out;
    r = sbx_store_commit_image(&st, res->digest, &m, config, config_len, res->ref, err);
    if (r == 0)
        res->kind = SBX_PULL_OK;
out:
    if (r < 0 && reg && sbx_registry_error_kind(reg) != SBX_PULL_OK)
        res->kind = sbx_registry_error_kind(reg);
    json_decref(index);
    free(body);
    free(mtype);
    free(config);
    sbx_manifest_free(&m);
    sbx_registry_close(reg);
    sbx_store_close(&st);
out_ref:
    sbx_image_ref_free(&ref);
    return r;
}
