/* `sbxrun load`: images from a `docker save` archive (manifest.json, config, <id>/layer.tar) or
 * an OCI archive (a tar of an image layout: oci-layout, index.json, blobs/sha256/...), for hosts
 * without a registry. The archive is untrusted like a registry: its member names are only keys
 * (each member is copied into a temp file of sbx's own naming, hashed on the way), every blob
 * is checked against its digest and every layer against its diff_id. */
#include "image.h"
#include "digest.h"
#include "utils.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>

#define MAX_MEMBERS 100000
#define SMALL_MAX (16 << 20)

struct member {
    char *name, *path;
    char digest[SBX_DIGEST_LEN + 1];
    int64_t size;
};

struct archive_files {
    struct member *m;
    size_t n;
};

static void
files_free(struct archive_files *f)
{
    for (size_t i = 0; i < f->n; i++) {
        if (f->m[i].path)
            unlink(f->m[i].path);
        free(f->m[i].name);
        free(f->m[i].path);
    }
    free(f->m);
}

static const struct member *
find(const struct archive_files *f, const char *name)
{
    while (name[0] == '.' && name[1] == '/')
        name += 2;
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->m[i].name, name) == 0)
            return &f->m[i];
    return NULL;
}

static int
extract(struct sbx_store *st, const char *path, struct archive_files *f, sbx_error_t *err)
{
    struct archive *a = archive_read_new();
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    int r = 0;
    if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
        r = sbx_make_error(err, 0, "load `%s`: %s", path, archive_error_string(a));
        goto out;
    }
    struct archive_entry *e;
    int ar;
    while ((ar = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        if (archive_entry_filetype(e) != AE_IFREG)
            continue;
        if (f->n >= MAX_MEMBERS) {
            r = sbx_make_error(err, 0, "load `%s`: more than %d files", path, MAX_MEMBERS);
            goto out;
        }
        const char *name = archive_entry_pathname(e);
        if (name == NULL)
            continue;
        while (name[0] == '.' && name[1] == '/')
            name += 2;
        struct member m = {.name = xstrdup(name)};
        int fd = sbx_store_tmpfile(st, "load", &m.path, err);
        if (fd < 0) {
            free(m.name);
            r = fd;
            goto out;
        }
        f->m = xrealloc(f->m, (f->n + 1) * sizeof(*f->m));
        f->m[f->n++] = m;
        struct member *mp = &f->m[f->n - 1];
        struct sbx_sha256 *h = sbx_sha256_new();
        const void *buf;
        size_t len;
        la_int64_t off;
        while ((ar = archive_read_data_block(a, &buf, &len, &off)) == ARCHIVE_OK) {
            /* Sparse members come with offsets: write where they say. */
            if ((off >= 0 && lseek(fd, off, SEEK_SET) < 0) || safe_write(fd, buf, len) < 0) {
                r = sbx_make_error(err, errno, "load: copy `%s`", name);
                break;
            }
            sbx_sha256_update(h, buf, len);
            mp->size = off + (int64_t)len;
        }
        sbx_sha256_final(h, mp->digest);
        close(fd);
        if (r < 0)
            goto out;
        if (ar != ARCHIVE_EOF) {
            r = sbx_make_error(err, 0, "load `%s`: member `%s`: %s", path, name,
                               archive_error_string(a));
            goto out;
        }
    }
    if (ar != ARCHIVE_EOF)
        r = sbx_make_error(err, 0, "load `%s`: %s", path, archive_error_string(a));
out:
    archive_read_free(a);
    return r;
}

static int
read_member(const struct member *m, char **out, size_t *len, sbx_error_t *err)
{
    if (m->size > SMALL_MAX)
        return sbx_make_error(err, 0, "load: `%s` is larger than %d MiB", m->name, SMALL_MAX >> 20);
    return read_file(m->path, out, len, err);
}

static const char *
layer_type_of(const struct member *m)
{
    unsigned char magic[4] = {0};
    cleanup_close int fd = open(m->path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && read(fd, magic, 4) < 0)
        magic[0] = 0;
    if (magic[0] == 0x1f && magic[1] == 0x8b)
        return "application/vnd.oci.image.layer.v1.tar+gzip";
    if (magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd)
        return "application/vnd.oci.image.layer.v1.tar+zstd";
    return "application/vnd.oci.image.layer.v1.tar";
}

/* Installs the layers of manifest m (blobs found by lookup) and commits the image. */
static int
install(struct sbx_store *st, const struct archive_files *f, const struct sbx_manifest *m,
        const char *const *layer_names, const char *manifest_digest, const char *config,
        size_t config_len, const char *ref, const struct sbx_pull_opts *o, sbx_error_t *err)
{
    json_t *cfg = json_loadb(config, config_len, 0, NULL);
    json_t *ids = json_object_get(json_object_get(cfg, "rootfs"), "diff_ids");
    int r = 0;
    if (!json_is_array(ids) || json_array_size(ids) != m->n_layers) {
        r = sbx_make_error(err, 0,
                           "load: image config: rootfs.diff_ids must list one digest "
                           "per layer (%zu)",
                           m->n_layers);
        goto out;
    }
    for (size_t i = 0; i < m->n_layers && r == 0; i++) {
        const struct member *lm = find(f, layer_names[i]);
        const char *diff_id = json_string_value(json_array_get(ids, i));
        if (lm == NULL) {
            r = sbx_make_error(err, 0, "load: layer `%s` is not in the archive", layer_names[i]);
            break;
        }
        if (strcmp(lm->digest, m->layers[i].digest) != 0) {
            r = sbx_make_error(err, 0, "load: layer `%s` does not match its digest %s",
                               layer_names[i], m->layers[i].digest);
            break;
        }
        if (o && o->progress.layer)
            o->progress.layer((int)i, (int)m->n_layers, lm->digest, (uint64_t)lm->size,
                              (uint64_t)lm->size, "unpacking", o->progress.data);
        cleanup_close int fd = open(lm->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            r = sbx_make_error(err, errno, "load: open `%s`", lm->path);
        else
            r = sbx_store_install_layer(st, diff_id ? diff_id : "", fd, o ? o->max_layer_bytes : 0,
                                        err);
        if (r == 0 && o && o->progress.layer)
            o->progress.layer((int)i, (int)m->n_layers, lm->digest, (uint64_t)lm->size,
                              (uint64_t)lm->size, "done", o->progress.data);
    }
    if (r == 0)
        r = sbx_store_commit_image(st, manifest_digest, m, config, config_len, ref, err);
out:
    json_decref(cfg);
    return r;
}

/* docker save: [{"Config": "x.json", "RepoTags": ["a:b"], "Layers": ["id/layer.tar"]}] */
static int
load_docker(struct sbx_store *st, const struct archive_files *f, json_t *manifest,
            const struct sbx_pull_opts *o, char ***refs, sbx_error_t *err)
{
    size_t i;
    json_t *img;
    if (!json_is_array(manifest) || json_array_size(manifest) == 0)
        return sbx_make_error(err, 0, "load: manifest.json must be a non-empty array");
    json_array_foreach (manifest, i, img) {
        const char *cname = json_string_value(json_object_get(img, "Config"));
        json_t *layers = json_object_get(img, "Layers");
        const struct member *cm = cname ? find(f, cname) : NULL;
        if (cm == NULL || !json_is_array(layers) || json_array_size(layers) > 127)
            return sbx_make_error(err, 0,
                                  "load: manifest.json entry %zu needs Config (a file "
                                  "in the archive) and Layers",
                                  i);
        cleanup_free char *config = NULL;
        size_t config_len;
        if (read_member(cm, &config, &config_len, err) < 0)
            return -1;
        /* docker save has no registry manifest: write the OCI one a registry would serve. */
        json_t *jm = json_pack("{s:i, s:s, s:{s:s, s:s, s:I}, s:[]}", "schemaVersion", 2,
                               "mediaType", "application/vnd.oci.image.manifest.v1+json", "config",
                               "mediaType", "application/vnd.oci.image.config.v1+json", "digest",
                               cm->digest, "size", (json_int_t)cm->size, "layers");
        size_t j;
        json_t *l;
        const char **names = xmalloc0((json_array_size(layers) + 1) * sizeof(char *));
        int r = 0;
        json_array_foreach (layers, j, l) {
            const struct member *lm = json_is_string(l) ? find(f, json_string_value(l)) : NULL;
            if (lm == NULL) {
                r = sbx_make_error(err, 0, "load: layer `%s` is not in the archive",
                                   json_is_string(l) ? json_string_value(l) : "?");
                break;
            }
            names[j] = json_string_value(l);
            json_array_append_new(json_object_get(jm, "layers"),
                                  json_pack("{s:s, s:s, s:I}", "mediaType", layer_type_of(lm),
                                            "digest", lm->digest, "size", (json_int_t)lm->size));
        }
        cleanup_free char *body = r == 0 ? json_dumps(jm, JSON_COMPACT) : NULL;
        json_decref(jm);
        struct sbx_manifest m = {0};
        char digest[SBX_DIGEST_LEN + 1];
        if (r == 0) {
            sbx_sha256_buf(body, strlen(body), digest);
            r = sbx_manifest_parse(body, strlen(body), &m, err);
        }
        if (r == 0)
            r = sbx_store_put_blob(st, digest, body, strlen(body), err);
        if (r == 0)
            r = sbx_store_put_blob(st, cm->digest, config, config_len, err);
        json_t *tags = json_object_get(img, "RepoTags");
        const char *first = json_string_value(json_array_get(tags, 0));
        cleanup_free char *canon = NULL;
        struct sbx_image_ref ref;
        if (r == 0 && first) {
            if ((r = sbx_image_ref_parse(first, &ref, err)) == 0) {
                canon = sbx_image_ref_string(&ref);
                sbx_image_ref_free(&ref);
            }
        }
        if (r == 0)
            r = install(st, f, &m, names, digest, config, config_len, canon ? canon : "<none>", o,
                        err);
        /* More tags for the same image. */
        for (size_t t = 1; r == 0 && t < json_array_size(tags); t++) {
            const char *tag = json_string_value(json_array_get(tags, t));
            if (tag && sbx_image_ref_parse(tag, &ref, err) == 0) {
                cleanup_free char *c = sbx_image_ref_string(&ref);
                sbx_image_ref_free(&ref);
                r = sbx_store_set_ref(st, c, digest, err);
                strv_append(refs, c);
            }
        }
        if (r == 0) {
            if (canon)
                strv_append(refs, canon);
            else
                strv_append(refs, digest);
        }
        sbx_manifest_free(&m);
        free(names);
        if (r < 0)
            return r;
    }
    return 0;
}

static int
blob_of(const struct archive_files *f, const char *digest, char **out, size_t *len,
        sbx_error_t *err)
{
    if (!sbx_digest_valid(digest))
        return sbx_make_error(err, 0, "load: invalid digest `%s`", digest ? digest : "");
    cleanup_free char *name = xasprintf("blobs/sha256/%s", digest + 7);
    const struct member *m = find(f, name);
    if (m == NULL)
        return sbx_make_error(err, 0, "load: blob %s is not in the archive", digest);
    if (strcmp(m->digest, digest) != 0)
        return sbx_make_error(err, 0, "load: blob %s does not match its digest", digest);
    return read_member(m, out, len, err);
}

/* An OCI layout: index.json lists manifests (or nested indexes); names from annotations. */
static int
load_oci(struct sbx_store *st, const struct archive_files *f, json_t *index,
         const struct sbx_pull_opts *o, char ***refs, sbx_error_t *err)
{
    size_t i;
    json_t *desc;
    int loaded = 0;
    json_array_foreach (json_object_get(index, "manifests"), i, desc) {
        const char *d = json_string_value(json_object_get(desc, "digest"));
        json_t *ann = json_object_get(desc, "annotations");
        const char *name = json_string_value(json_object_get(ann, "io.containerd.image.name"));
        if (name == NULL)
            name = json_string_value(json_object_get(ann, "org.opencontainers.image.ref.name"));
        cleanup_free char *body = NULL, *config = NULL, *mdigest = xstrdup(d ? d : "");
        size_t len, config_len;
        if (blob_of(f, mdigest, &body, &len, err) < 0)
            return -1;
        json_t *j = json_loadb(body, len, 0, NULL);
        if (sbx_is_index(NULL, j)) {
            free(mdigest);
            mdigest = NULL;
            int r = sbx_index_pick(j, o ? o->platform : NULL, &mdigest, err);
            json_decref(j);
            free(body);
            body = NULL;
            if (r < 0 || blob_of(f, mdigest, &body, &len, err) < 0)
                return -1;
        } else {
            json_decref(j);
        }
        struct sbx_manifest m;
        if (sbx_manifest_parse(body, len, &m, err) < 0)
            return -1;
        const char **names = xmalloc0((m.n_layers + 1) * sizeof(char *));
        cleanup_strv char **keep = NULL;
        for (size_t l = 0; l < m.n_layers; l++) {
            cleanup_free char *k = xasprintf("blobs/sha256/%s", m.layers[l].digest + 7);
            strv_append(&keep, k);
        }
        for (size_t l = 0; l < m.n_layers; l++)
            names[l] = keep[l];
        cleanup_free char *canon = NULL;
        int r = blob_of(f, m.config.digest, &config, &config_len, err);
        if (r == 0 && name) {
            /* A bare tag ("v1") names nothing by itself: it becomes localhost/image:v1. */
            cleanup_free char *full = strchr(name, '/') || strchr(name, ':')
                                          ? xstrdup(name)
                                          : xasprintf("localhost/image:%s", name);
            struct sbx_image_ref ref;
            if ((r = sbx_image_ref_parse(full, &ref, err)) == 0) {
                canon = sbx_image_ref_string(&ref);
                sbx_image_ref_free(&ref);
            }
        }
        if (r == 0)
            r = sbx_store_put_blob(st, mdigest, body, len, err);
        if (r == 0)
            r = sbx_store_put_blob(st, m.config.digest, config, config_len, err);
        if (r == 0)
            r = install(st, f, &m, names, mdigest, config, config_len, canon ? canon : "<none>", o,
                        err);
        if (r == 0) {
            strv_append(refs, canon ? canon : mdigest);
            loaded++;
        }
        sbx_manifest_free(&m);
        free(names);
        if (r < 0)
            return r;
    }
    if (loaded == 0)
        return sbx_make_error(err, 0, "load: index.json lists no image");
    return 0;
}

int
sbx_image_load(const char *path, const struct sbx_pull_opts *o, char ***refs, sbx_error_t *err)
{
    struct sbx_store st;
    if (sbx_store_open(o ? o->images_dir : NULL, true, &st, err) < 0)
        return -1;
    sbx_store_clean_tmp(&st);
    struct archive_files f = {0};
    int r = extract(&st, path, &f, err);
    const struct member *dm = find(&f, "manifest.json"), *im = find(&f, "index.json");
    cleanup_free char *txt = NULL;
    size_t len = 0;
    if (r == 0 && dm == NULL && im == NULL)
        r = sbx_make_error(err, 0,
                           "load `%s`: neither a docker save archive (manifest.json) "
                           "nor an OCI archive (index.json)",
                           path);
    /* Docker 25+ writes both; its manifest.json is the simpler, complete description. */
    if (r == 0)
        r = read_member(dm ? dm : im, &txt, &len, err);
    if (r == 0) {
        json_error_t jerr;
        json_t *j = json_loadb(txt, len, 0, &jerr);
        if (j == NULL)
            r = sbx_make_error(err, 0, "load `%s`: %s: %s", path,
                               dm ? "manifest.json" : "index.json", jerr.text);
        else if (dm)
            r = load_docker(&st, &f, j, o, refs, err);
        else
            r = load_oci(&st, &f, j, o, refs, err);
        json_decref(j);
    }
    files_free(&f);
    sbx_store_close(&st);
    return r;
}
