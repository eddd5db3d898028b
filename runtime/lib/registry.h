/* A client for the OCI distribution API (registries: Docker Hub, GHCR, distribution, Harbor...)
 * on libcurl. Anonymous, Basic and Bearer-token auth (the WWW-Authenticate challenge's realm,
 * service and scope), redirects to blob storage (credentials are never sent to another host),
 * TLS verified against the system store or the registry's own CA (Docker's
 * certs.d/HOST:PORT/ca.crt convention), plain HTTP only for registries configured insecure.
 * Configuration (one file for sbxrun and apid): $SBX_REGISTRIES_CONF, else
 * /etc/sbx/registries.json:
 *   {"mirrors": {"docker.io": ["https://mirror.example"]},
 *    "insecure": ["127.0.0.1:5000"],
 *    "certsDir": "/etc/sbx/certs.d"}
 * Credentials: explicit (--creds, the API's image.auth), else $REGISTRY_AUTH_FILE, else
 * $DOCKER_CONFIG/config.json or ~/.docker/config.json ("auths": {"HOST": {"auth": b64}}). */
#ifndef SBX_REGISTRY_H
#define SBX_REGISTRY_H

#include "image_ref.h"

#include <stdint.h>
#include <sys/types.h>

/* What went wrong, for apid's reasons (IMAGE_NOT_FOUND, IMAGE_AUTH_FAILED, IMAGE_PULL_FAILED). */
enum sbx_pull_error { SBX_PULL_OK, SBX_PULL_NOT_FOUND, SBX_PULL_AUTH, SBX_PULL_FAILED };

struct sbx_registry_opts {
    const char *username, *password; /* NULL: from the auth file, else anonymous */
    const char *config_path;         /* NULL: $SBX_REGISTRIES_CONF or the default */
};

struct sbx_registry;

int sbx_registry_open(const struct sbx_image_ref *ref, const struct sbx_registry_opts *o,
                      struct sbx_registry **out, sbx_error_t *err);
void sbx_registry_close(struct sbx_registry *reg);
/* The last failure's kind. */
enum sbx_pull_error sbx_registry_error_kind(const struct sbx_registry *reg);

/* A manifest or index by tag or digest (max 4 MiB). *media_type from the response (or the
 * body's mediaType); digest is the sha256 of the body, checked against `reference` when that
 * is a digest. */
int sbx_registry_manifest(struct sbx_registry *reg, const char *reference, char **body, size_t *len,
                          char **media_type, char digest[72], sbx_error_t *err);

typedef void (*sbx_progress_fn)(uint64_t done, uint64_t total, void *data);
/* A blob into fd, verified: exactly `size` bytes (when >= 0) whose sha256 is `digest`. */
int sbx_registry_blob(struct sbx_registry *reg, const char *digest, int64_t size, int fd,
                      sbx_progress_fn progress, void *data, sbx_error_t *err);

/* Registries configuration helpers, shared with the loader. "linux/amd64" of this host. */
const char *sbx_host_arch(void);

#endif
