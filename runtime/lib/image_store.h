/* The image store: OCI images pulled or loaded by sbx, under <images dir>/.oci (the images dir is
 * $SBX_IMAGES, default /var/lib/sbx/images, beside the images `make rootfs` builds):
 *
 *   blobs/sha256/<hex>   manifests, indexes and configs, kept as fetched (verified by digest)
 *   layers/<hex>/        each layer unpacked once, named by its diff_id (the sha256 of its
 *                        uncompressed tar), used as an overlayfs lower layer by every image
 *                        that has it: shared on disk and in the page cache
 *   images/<hex>.json    one record per image (named by its manifest digest): the layers bottom
 *                        first, and the config fields a sandbox takes its defaults from
 *   refs.json            canonical reference -> manifest digest
 *   tmp/                 downloads and unpacks in progress; renamed into place when complete,
 *                        so a layer or record that exists is whole (a pull killed at any point
 *                        leaves only tmp/ entries, which the next pull removes)
 *   lock                 flock: writers of refs.json and removers (rmi, prune) hold it
 *
 * Reading needs no lock (files appear by rename). A sandbox holds a shared flock on its image's
 * record while it runs (see sbx_store_hold()), so rmi and prune can tell an image in use. */
#ifndef SBX_IMAGE_STORE_H
#define SBX_IMAGE_STORE_H

#include "sbx.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

struct sbx_store {
    char *dir; /* <images dir>/.oci */
    int dirfd;
};

int sbx_store_open(const char *images_dir, bool create, struct sbx_store *st, sbx_error_t *err);
void sbx_store_close(struct sbx_store *st);
/* The images dir in force: $SBX_IMAGES, else the default. */
const char *sbx_images_dir(void);

/* refs.json, whole (a new reference on success; an empty object when there is none). */
json_t *sbx_store_refs(struct sbx_store *st, sbx_error_t *err);
/* Manifest digest of a canonical reference; -ENOENT (no error set) when unknown. */
int sbx_store_lookup(struct sbx_store *st, const char *ref, char **digest, sbx_error_t *err);
/* Points ref at digest (NULL removes ref). Takes the store lock. */
int sbx_store_set_ref(struct sbx_store *st, const char *ref, const char *digest, sbx_error_t *err);

/* The record of an image, by manifest digest. */
json_t *sbx_store_image(struct sbx_store *st, const char *digest, sbx_error_t *err);
int sbx_store_put_image(struct sbx_store *st, const char *digest, json_t *record, sbx_error_t *err);
char *sbx_store_layer_path(struct sbx_store *st, const char *diff_id);
bool sbx_store_has_layer(struct sbx_store *st, const char *diff_id);
bool sbx_store_has_blob(struct sbx_store *st, const char *digest);
/* Path of a blob (it may not exist). */
char *sbx_store_blob_path(struct sbx_store *st, const char *digest);

/* Resolves what `--image` names to an image record: a canonical reference in refs.json, or a
 * manifest digest ("sha256:..." or a unique prefix of at least 12 hex digits, as `sbxrun images`
 * shows it). Sets *digest. -ENOENT with a message naming the reference when it is not there. */
json_t *sbx_store_resolve(struct sbx_store *st, const char *name, char **digest, sbx_error_t *err);

/* Opens the record read-only with a shared flock, for as long as the fd lives: the image is in
 * use. Returns the fd or negative. */
int sbx_store_hold(struct sbx_store *st, const char *digest, sbx_error_t *err);
/* True when some process holds the image (sbx_store_hold). */
bool sbx_store_in_use(struct sbx_store *st, const char *digest);

/* Every reference with its image: name, digest, size, layers, inUse, created, exposedPorts. */
json_t *sbx_store_list(struct sbx_store *st);
/* rmi: by name, that reference; by image id, all of them; the record goes with the last one.
 * -ENOENT when not there; an error (EBUSY) when the image would go while a sandbox runs it.
 * *untagged gets the references removed (strv). */
int sbx_store_remove(struct sbx_store *st, const char *name, char ***untagged, sbx_error_t *err);
/* prune: records no reference names and no sandbox holds, then the layers and blobs no
 * remaining record uses; logs each removal to log (may be NULL). Returns the count removed.
 * Callers serialise against pulls (sbx-image's gc.lock). */
int sbx_store_gc(struct sbx_store *st, FILE *log);

/* Pulls and loads hold gc.lock shared (LOCK_SH), rmi and prune exclusive (LOCK_EX): a layer a
 * pull has unpacked but not yet recorded is never pruned. Returns the fd to close. */
int sbx_store_gc_lock(struct sbx_store *st, int how, sbx_error_t *err);

/* Exclusive store lock (flock on <store>/lock); returns the fd to close. */
int sbx_store_lock(struct sbx_store *st, sbx_error_t *err);

#endif
