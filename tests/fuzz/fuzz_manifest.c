/* fuzz_manifest: what a registry (or an image archive) says about an image, read by
 * runtime/lib/image.c before any blob is fetched: sbx_manifest_parse() on the input as an image
 * manifest (OCI or Docker schema 2), and, when the input is JSON, sbx_is_index() and
 * sbx_index_pick() on it as an index / manifest list, for this host's platform and for a few
 * others ("linux/arm/v7" has a variant, "windows" no architecture part).
 * Checks: the error convention; a parsed manifest has a config and at most 127 layers, every
 * digest a valid sha256 one (digests become file names in the store), sizes >= 0, known layer
 * media types; an error leaves the manifest zeroed; a picked digest is a valid sha256 one. */
#include "fuzz.h"
#include "image.h"
#include "utils.h"

static void
check_manifest(const char *body, size_t len)
{
    struct sbx_manifest m;
    sbx_error_t err = NULL;
    int r = sbx_manifest_parse(body, len, &m, &err);
    FUZZ_CHECK_ERR(r, err);
    if (r < 0) {
        FUZZ_CHECK(m.layers == NULL && m.n_layers == 0 && m.config.digest == NULL);
        sbx_error_release(&err);
        return;
    }
    FUZZ_CHECK(sbx_digest_valid(m.config.digest) && m.config.size >= 0 && m.config.media_type);
    FUZZ_CHECK(m.n_layers <= 127 && (m.n_layers == 0 || m.layers));
    for (size_t i = 0; i < m.n_layers; i++) {
        FUZZ_CHECK(sbx_digest_valid(m.layers[i].digest) && m.layers[i].size >= 0);
        FUZZ_CHECK(strstr(m.layers[i].media_type, "tar") != NULL);
    }
    sbx_manifest_free(&m);
}

static void
check_pick(json_t *index, const char *platform)
{
    char *digest = NULL;
    sbx_error_t err = NULL;
    int r = sbx_index_pick(index, platform, &digest, &err);
    FUZZ_CHECK_ERR(r, err);
    FUZZ_CHECK(r < 0 ? digest == NULL : sbx_digest_valid(digest));
    free(digest);
    sbx_error_release(&err);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_manifest((const char *)data, size);
    json_error_t jerr;
    json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL)
        return 0;
    (void)sbx_is_index(NULL, j);
    (void)sbx_is_index("application/vnd.oci.image.index.v1+json", j);
    static const char *const platforms[] = {NULL, "linux/amd64", "linux/arm/v7", "windows",
                                            "linux/arm64/v8/extra"};
    for (size_t i = 0; i < ARRAY_SIZE(platforms); i++)
        check_pick(j, platforms[i]);
    json_decref(j);
    return 0;
}
