#include "image_ref.h"
#include "unit.h"
#include "utils.h"

static char *
canon(const char *s)
{
    struct sbx_image_ref r;
    sbx_error_t err = NULL;
    if (sbx_image_ref_parse(s, &r, &err) < 0) {
        char *m = xasprintf("ERR %s", err->msg);
        sbx_error_release(&err);
        return m;
    }
    char *out = sbx_image_ref_string(&r);
    sbx_image_ref_free(&r);
    return out;
}

#define CANON(in, want)                                                                            \
    do {                                                                                           \
        char *got = canon(in);                                                                     \
        CU_ASSERT_STRING_EQUAL(got, want);                                                         \
        free(got);                                                                                 \
    } while (0)

#define D64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

UNIT_TEST(image_ref, docker_short_names)
{
    CANON("alpine", "docker.io/library/alpine:latest");
    CANON("python:3.12-slim", "docker.io/library/python:3.12-slim");
    CANON("team/app", "docker.io/team/app:latest");
    CANON("docker.io/library/alpine:3.20", "docker.io/library/alpine:3.20");
    CANON("index.docker.io/library/alpine", "docker.io/library/alpine:latest");
    CANON("docker.io/alpine", "docker.io/library/alpine:latest");
}

UNIT_TEST(image_ref, registries_ports_digests)
{
    CANON("127.0.0.1:5000/team/app@sha256:" D64, "127.0.0.1:5000/team/app@sha256:" D64);
    CANON("host:5000/app:v1@sha256:" D64, "host:5000/app:v1@sha256:" D64);
    CANON("localhost/app", "localhost/app:latest");
    CANON("ghcr.io/o/r/deep/path:1", "ghcr.io/o/r/deep/path:1");
    CANON("my-reg.example.com/a__b/c.d-e:Tag_1", "my-reg.example.com/a__b/c.d-e:Tag_1");
    CANON("[::1]:5000/app", "[::1]:5000/app:latest");
}

UNIT_TEST(image_ref, bad_references)
{
    const char *bad[] = {
        "", "Alpine", "alpine:", "alpine@sha256:abc", "a//b", "a/", "/a", "a:b:c", "-a", "a-",
        "a..b", "a___b", "host:0/a", "host:99999/a", "../etc/passwd", "a/../b", "a b",
        "alpine:-tag", "alpine@md5:" D64, "h_st.io/a", "alpine@sha256:" D64 "0",
        /* found by tests/fuzz/fuzz_image_ref.c: no path, a blank in the port */
        "ghcr.io/:1.0", "docker.io/:x", "host: 5000/app", "host:\t5000/app", "host:+5000/app"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        char *got = canon(bad[i]);
        if (strncmp(got, "ERR ", 4) != 0)
            fprintf(stderr, "accepted bad reference `%s` as `%s`\n", bad[i], got);
        CU_ASSERT(strncmp(got, "ERR ", 4) == 0);
        free(got);
    }
    char *m = canon("Alpine");
    CU_ASSERT_PTR_NOT_NULL(strstr(m, "lowercase"));
    free(m);
    /* 512 characters are the bound of the canonical name too (the store's key), which adds
     * "docker.io/library/" and ":latest" to a short one. */
    char name[600];
    memset(name, 'a', 500);
    name[500] = '\0';
    m = canon(name);
    CU_ASSERT(strncmp(m, "ERR ", 4) == 0);
    free(m);
    name[480] = '\0';
    m = canon(name);
    CU_ASSERT(strncmp(m, "docker.io/library/", 18) == 0 && strlen(m) <= 512);
    free(m);
}

UNIT_TEST(image_ref, digest_valid)
{
    CU_ASSERT_TRUE(sbx_digest_valid("sha256:" D64));
    CU_ASSERT_FALSE(sbx_digest_valid("sha256:" D64 "0"));
    CU_ASSERT_FALSE(sbx_digest_valid(
        "sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"));
    CU_ASSERT_FALSE(sbx_digest_valid("sha512:" D64));
    CU_ASSERT_FALSE(sbx_digest_valid(
        "sha256:../../../../../../../../../../../../../../../../../../../../../.."));
    CU_ASSERT_FALSE(sbx_digest_valid(NULL));
}
