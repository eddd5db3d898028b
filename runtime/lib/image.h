/* Pulling and loading OCI images into the store (image_store.h): what is common to a registry
 * pull (image_pull.c) and an archive load (image_load.c). Used by sbx-image and apid, never by
 * the per-start path. */
#ifndef SBX_IMAGE_H
#define SBX_IMAGE_H

#include "image_store.h"
#include "registry.h"

#include <stdint.h>

struct sbx_pull_progress {
    /* Called as bytes arrive; layer is the index in the manifest (-1: manifest and config). */
    void (*layer)(int layer, int n_layers, const char *digest, uint64_t done, uint64_t total,
                  const char *state, void *data);
    void *data;
};

struct sbx_pull_opts {
    const char *images_dir; /* the store's images dir; NULL: $SBX_IMAGES or the default */
    const char *platform;   /* "os/arch[/variant]"; NULL: this host's */
    struct sbx_registry_opts reg;
    struct sbx_pull_progress progress;
    uint64_t max_layer_bytes; /* bound on one layer's unpacked size; 0: default */
};

struct sbx_pull_result {
    char digest[72]; /* manifest digest: the image's id */
    char *ref;       /* canonical reference recorded */
    int layers, layers_fetched;
    uint64_t bytes_fetched;
    enum sbx_pull_error kind;
};

int sbx_image_pull(const char *ref, const struct sbx_pull_opts *o, struct sbx_pull_result *res,
                   sbx_error_t *err);
/* A `docker save` archive or an OCI archive (tar of an image layout); every image in it is
 * stored and tagged with its names. *refs gets the recorded references (strv). */
int sbx_image_load(const char *path, const struct sbx_pull_opts *o, char ***refs, sbx_error_t *err);
void sbx_pull_result_free(struct sbx_pull_result *res);

/* ---- shared by pull and load ---- */

struct sbx_descriptor {
    char *media_type, *digest;
    int64_t size;
};
struct sbx_manifest {
    struct sbx_descriptor config;
    struct sbx_descriptor *layers;
    size_t n_layers;
};
/* An image manifest (OCI or Docker schema 2), checked: digests valid, sizes sane, layer media
 * types known (tar, tar+gzip, tar+zstd; Docker's foreign layers are refused). */
int sbx_manifest_parse(const char *body, size_t len, struct sbx_manifest *m, sbx_error_t *err);
void sbx_manifest_free(struct sbx_manifest *m);
/* True for an index / manifest list media type (or body). */
bool sbx_is_index(const char *media_type, json_t *body);
/* The manifest of an index that matches platform ("os/arch[/variant]", NULL: this host). */
int sbx_index_pick(json_t *index, const char *platform, char **digest, sbx_error_t *err);
/* Keeps a verified blob in the store (by content; a no-op when present). */
int sbx_store_put_blob(struct sbx_store *st, const char *digest, const char *data, size_t len,
                       sbx_error_t *err);
/* Unpacks a layer blob (read from fd) into layers/<diff_id>, unless it is there already.
 * Concurrent installs of one layer wait for each other (a lock per layer). */
int sbx_store_install_layer(struct sbx_store *st, const char *diff_id, int fd, uint64_t max_bytes,
                            sbx_error_t *err);
/* Parses the config blob, checks rootfs.diff_ids against the manifest's layer count, and
 * writes the image record and its reference. */
int sbx_store_commit_image(struct sbx_store *st, const char *manifest_digest,
                           const struct sbx_manifest *m, const char *config, size_t config_len,
                           const char *ref, sbx_error_t *err);
/* Removes tmp/ entries of processes that are gone (a pull killed with -9). */
void sbx_store_clean_tmp(struct sbx_store *st);
/* A temp file in the store's tmp/ (unlinked names carry the pid). */
int sbx_store_tmpfile(struct sbx_store *st, const char *tag, char **path, sbx_error_t *err);

#endif
