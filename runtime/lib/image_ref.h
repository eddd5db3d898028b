/* Image references as Docker and containerd read them: [DOMAIN/]PATH[:TAG][@DIGEST].
 * Short names resolve as Docker does: "alpine" is docker.io/library/alpine:latest, "team/app"
 * is docker.io/team/app:latest; a first component with a '.', a ':' or "localhost" is a
 * registry ("127.0.0.1:5000/app", "ghcr.io/o/r"). Pure string work: sbxrun (static) uses it
 * at every `run --image`. */
#ifndef SBX_IMAGE_REF_H
#define SBX_IMAGE_REF_H

#include "sbx.h"

#include <stdbool.h>

#define SBX_DOCKER_DOMAIN "docker.io"

struct sbx_image_ref {
    char *domain; /* "docker.io", "127.0.0.1:5000" */
    char *path;   /* "library/alpine" */
    char *tag;    /* NULL when only a digest was given */
    char *digest; /* "sha256:<hex>" or NULL */
};

int sbx_image_ref_parse(const char *s, struct sbx_image_ref *ref, sbx_error_t *err);
void sbx_image_ref_free(struct sbx_image_ref *ref);
/* The canonical name, the key of the store's index: "docker.io/library/alpine:3.20",
 * "host:5000/app@sha256:...", or with both "repo:tag@sha256:...". Caller frees. */
char *sbx_image_ref_string(const struct sbx_image_ref *ref);
/* "DOMAIN/PATH", no tag or digest. Caller frees. */
char *sbx_image_ref_repo(const struct sbx_image_ref *ref);
/* True for "sha256:" and exactly 64 lowercase hex digits, the only algorithm sbx accepts, so a
 * digest is also a safe file name once the prefix is cut. */
bool sbx_digest_valid(const char *d);

#endif
