/* fuzz_image_ref: image references ([DOMAIN/]PATH[:TAG][@DIGEST]) -> sbx_image_ref_parse()
 * (runtime/lib/image_ref.c), which reads `sbxrun run --image`, `sbx-image pull` and apid's
 * image.uri, the input taken as a C string.
 * Checks (image_ref.c promises that "nothing odd may reach" the store's index or registry URLs,
 * which are built from the canonical string): on success every part is set as documented
 * (domain and a non-empty path, a tag or a digest), the canonical string
 * sbx_image_ref_string() uses only the characters of the grammar (no blank, control character,
 * '%', '?', '#' or backslash), parsing it again succeeds and gives it back unchanged, and the
 * digest, when there is one, is a valid sha256 one; on failure the ref is left zeroed. */
#include "fuzz.h"
#include "image_ref.h"
#include "utils.h"

static const char allowed[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                              "._-/:@[]";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    struct sbx_image_ref ref;
    sbx_error_t err = NULL;
    int r = sbx_image_ref_parse(s, &ref, &err);
    FUZZ_CHECK_ERR(r, err);
    if (r < 0) {
        FUZZ_CHECK(!ref.domain && !ref.path && !ref.tag && !ref.digest);
        sbx_error_release(&err);
        free(s);
        return 0;
    }
    FUZZ_CHECK(ref.domain && *ref.domain && ref.path && *ref.path);
    FUZZ_CHECK(ref.tag || ref.digest);
    FUZZ_CHECK(!ref.digest || sbx_digest_valid(ref.digest));
    FUZZ_CHECK(ref.path[0] != '/' && ref.path[strlen(ref.path) - 1] != '/' &&
               !strstr(ref.path, "//"));
    char *canon = sbx_image_ref_string(&ref);
    char *repo = sbx_image_ref_repo(&ref);
    FUZZ_CHECK(strspn(canon, allowed) == strlen(canon));
    FUZZ_CHECK(strncmp(canon, repo, strlen(repo)) == 0);

    struct sbx_image_ref again;
    r = sbx_image_ref_parse(canon, &again, &err);
    if (r < 0)
        fprintf(stderr, "fuzz_image_ref: `%s` parsed, its canonical `%s` does not: %s\n", s, canon,
                err->msg);
    FUZZ_CHECK(r == 0);
    char *canon2 = sbx_image_ref_string(&again);
    FUZZ_CHECK(strcmp(canon, canon2) == 0);
    free(canon2);
    sbx_image_ref_free(&again);
    free(repo);
    free(canon);
    sbx_image_ref_free(&ref);
    free(s);
    return 0;
}
