/* sha256 digests of streams, in the OCI form "sha256:<64 hex>": every blob and layer sbx takes
 * from outside is hashed as it streams and compared before anything is kept. OpenSSL's EVP does
 * the hashing (a Debian library; hand-written SHA-256 would be one more thing to get right). */
#ifndef SBX_DIGEST_H
#define SBX_DIGEST_H

#include <stdbool.h>
#include <stddef.h>

#define SBX_DIGEST_LEN 71 /* "sha256:" + 64 hex */

struct sbx_sha256;
struct sbx_sha256 *sbx_sha256_new(void);
void sbx_sha256_update(struct sbx_sha256 *h, const void *buf, size_t len);
/* Writes "sha256:<hex>" (SBX_DIGEST_LEN + 1 bytes with the NUL) and frees h. */
void sbx_sha256_final(struct sbx_sha256 *h, char out[SBX_DIGEST_LEN + 1]);
void sbx_sha256_free(struct sbx_sha256 *h);
/* The digest of a buffer. */
void sbx_sha256_buf(const void *buf, size_t len, char out[SBX_DIGEST_LEN + 1]);
/* sbx_digest_valid() is in image_ref.h: sbxrun, linked statically, checks digests without
 * linking OpenSSL. */

#endif
