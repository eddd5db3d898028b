/* fuzz_apid_request: what apid's clients send, validated by apid/validate.c before anything
 * happens: each input is a POST /sandboxes body (apid_parse_create(), with the image.auth,
 * resourceLimits, env, metadata, networkPolicy and extensions it holds), a renew body
 * (apid_parse_renew()), a metadata PATCH body (apid_validate_metadata() with nulls allowed),
 * and, taken as a C string, a ?metadata= filter (apid_parse_metadata_filter(), with its
 * percent-decoding), page/pageSize values, an RFC 3339 time, a metadata key and an image.uri
 * (apid_resolve_image(), against an images directory that does not exist, so every reference
 * is one to pull). The server's configuration is built once (LLVMFuzzerInitialize), with fixed
 * maxima so that runs do not depend on the machine.
 * Checks: the error convention, an error that maps to a contract status and code; a parsed
 * create within the configured bounds (timeout, cpu, memory, pids, disk), a non-empty
 * entrypoint of NUL-free strings, string maps for env and metadata (metadata valid again), a
 * normalised network policy of allow/deny rules with cidr and port, and a deep copy that
 * frees cleanly; a renew in the future; a time that prints and parses back to itself; a
 * reference to pull in its canonical form. */
#include "apid.h"
#include "fuzz.h"

static struct apid_config cfg;
#define NOW_MS INT64_C(1700000000000)

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    apid_config_init(&cfg);
    cfg.max_cpu_milli = 4000;
    cfg.max_memory = INT64_C(1) << 30;
    cfg.max_timeout = 3600;
    free(cfg.images_dir);
    cfg.images_dir = xstrdup("/nonexistent/sbx-fuzz-images");
    apid_log_setup(APID_LOG_ERROR, false);
    return 0;
}

static void
check_error(sbx_error_t err)
{
    int status;
    const char *code, *msg;
    apid_error_http(err, &status, &code, &msg);
    FUZZ_CHECK(status >= 400 && status < 600 && code && msg);
}

static void
check_create(const struct apid_create_req *r)
{
    FUZZ_CHECK(r->image_uri && *r->image_uri);
    FUZZ_CHECK(json_is_array(r->entrypoint) && json_array_size(r->entrypoint) > 0);
    size_t i;
    json_t *v;
    json_array_foreach (r->entrypoint, i, v)
        FUZZ_CHECK(json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v));
    FUZZ_CHECK(json_string_length(json_array_get(r->entrypoint, 0)) > 0);
    FUZZ_CHECK(r->timeout == -1 ||
               (r->timeout >= cfg.min_timeout && r->timeout <= cfg.max_timeout));
    FUZZ_CHECK(r->limits.cpu_milli >= 1 && r->limits.cpu_milli <= cfg.max_cpu_milli);
    FUZZ_CHECK(r->limits.memory >= 4096 && r->limits.memory <= cfg.max_memory);
    FUZZ_CHECK(r->limits.pids >= 1 && r->limits.pids <= cfg.max_pids);
    FUZZ_CHECK(r->limits.disk == 0 ||
               (r->limits.disk >= (1 << 20) && r->limits.disk <= cfg.max_memory));
    const char *k;
    json_object_foreach (r->env, k, v)
        FUZZ_CHECK(*k && !strchr(k, '=') && json_is_string(v));
    FUZZ_CHECK(json_is_object(r->metadata) && json_is_object(r->resource_limits));
    sbx_error_t err = NULL;
    FUZZ_CHECK(apid_validate_metadata(r->metadata, false, &err) == 0);
    FUZZ_CHECK((r->image_user == NULL) == (r->image_pass == NULL));
    /* The normalised policy apid hands to nft. */
    const char *def = json_string_value(json_object_get(r->net_policy, "defaultAction"));
    FUZZ_CHECK(def && (!strcmp(def, "allow") || !strcmp(def, "deny")));
    json_array_foreach (json_object_get(r->net_policy, "egress"), i, v) {
        const char *a = json_string_value(json_object_get(v, "action"));
        const char *cidr = json_string_value(json_object_get(v, "cidr"));
        json_int_t port = json_integer_value(json_object_get(v, "port"));
        FUZZ_CHECK(a && (!strcmp(a, "allow") || !strcmp(a, "deny")));
        FUZZ_CHECK(cidr && strspn(cidr, "0123456789./") == strlen(cidr) && strchr(cidr, '/'));
        FUZZ_CHECK(port >= 0 && port <= 65535);
    }
}

static void
check_time(const char *s)
{
    int64_t ms;
    if (apid_parse_time(s, &ms) < 0 || ms < 0 || ms >= INT64_C(253402300800000))
        return; /* formatted back only from 1970 to 9999 */
    char buf[64];
    apid_format_time(ms, buf, sizeof(buf));
    int64_t again;
    FUZZ_CHECK(apid_parse_time(buf, &again) == 0 && again == ms);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    sbx_error_t err = NULL;
    struct apid_create_req req;
    int r = apid_parse_create(body, size, &cfg, &req, &err);
    FUZZ_CHECK_ERR(r, err);
    if (r == 0) {
        check_create(&req);
        struct apid_create_req copy;
        apid_create_req_copy(&req, &copy);
        apid_create_req_free(&copy);
        apid_create_req_free(&req);
    } else {
        check_error(err);
        sbx_error_release(&err);
    }

    int64_t expires = 0;
    r = apid_parse_renew(body, size, NOW_MS, &expires, &err);
    FUZZ_CHECK_ERR(r, err);
    FUZZ_CHECK(r < 0 || expires > NOW_MS);
    sbx_error_release(&err);

    json_error_t jerr;
    json_t *patch = json_loadb(body, size, JSON_REJECT_DUPLICATES, &jerr);
    if (patch) {
        r = apid_validate_metadata(patch, true, &err);
        FUZZ_CHECK_ERR(r, err);
        sbx_error_release(&err);
        json_decref(patch);
    }

    char *s = fuzz_cstr(data, size);
    json_t *filter = NULL;
    r = apid_parse_metadata_filter(s, &filter, &err);
    FUZZ_CHECK_ERR(r, err);
    if (r == 0) {
        const char *k;
        json_t *v;
        FUZZ_CHECK(json_is_object(filter));
        json_object_foreach (filter, k, v)
            FUZZ_CHECK(*k && json_is_string(v));
        json_decref(filter);
    } else {
        check_error(err);
    }
    sbx_error_release(&err);

    int64_t page, page_size;
    r = apid_parse_page(s, s, &page, &page_size, &err);
    FUZZ_CHECK_ERR(r, err);
    FUZZ_CHECK(r < 0 || (page >= 1 && page_size >= 1 && page_size <= 200));
    sbx_error_release(&err);

    r = apid_validate_metadata_key(s, &err);
    FUZZ_CHECK_ERR(r, err);
    sbx_error_release(&err);

    check_time(s);

    if (*s) {
        char *name = NULL;
        r = apid_resolve_image(cfg.images_dir, s, &name, &err);
        FUZZ_CHECK_ERR(r, err);
        if (r == APID_IMAGE_PULL)
            FUZZ_CHECK(name && strspn(name, "abcdefghijklmnopqrstuvwxyz"
                                            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/:@[]") ==
                                   strlen(name));
        free(name);
        sbx_error_release(&err);
    }
    free(s);
    return 0;
}
