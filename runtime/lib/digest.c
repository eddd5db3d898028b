#include "digest.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sbx_sha256 {
    EVP_MD_CTX *ctx;
};

struct sbx_sha256 *
sbx_sha256_new(void)
{
    struct sbx_sha256 *h = calloc(1, sizeof(*h));
    if (h == NULL || (h->ctx = EVP_MD_CTX_new()) == NULL ||
        EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1)
        abort(); /* out of memory: as xmalloc */
    return h;
}

void
sbx_sha256_update(struct sbx_sha256 *h, const void *buf, size_t len)
{
    if (len > 0)
        EVP_DigestUpdate(h->ctx, buf, len);
}

void
sbx_sha256_final(struct sbx_sha256 *h, char out[SBX_DIGEST_LEN + 1])
{
    unsigned char md[32];
    unsigned int n = 0;
    EVP_DigestFinal_ex(h->ctx, md, &n);
    memcpy(out, "sha256:", 7);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
    sbx_sha256_free(h);
}

void
sbx_sha256_free(struct sbx_sha256 *h)
{
    if (h == NULL)
        return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

void
sbx_sha256_buf(const void *buf, size_t len, char out[SBX_DIGEST_LEN + 1])
{
    struct sbx_sha256 *h = sbx_sha256_new();
    sbx_sha256_update(h, buf, len);
    sbx_sha256_final(h, out);
}
