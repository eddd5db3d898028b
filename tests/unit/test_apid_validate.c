/* sbx-apid request validation, quantities, pagination, the metadata filter, time handling, the
 * error-code mapping and the state machine. */
#include "apid.h"
#include "unit.h"

#include <sys/stat.h>

static struct apid_config cfg;

static void
setup(void)
{
    apid_config_free(&cfg);
    apid_config_init(&cfg);
    cfg.max_timeout = 3600;
    cfg.max_memory = 1LL << 30;
    cfg.max_cpu_milli = 4000;
}

/* Parses a create body; returns the HTTP status (202 for success) and the wire code. */
static int
create_status(const char *body, const char **code)
{
    static char last[128];
    sbx_error_t err = NULL;
    struct apid_create_req r;
    int rc = apid_parse_create(body, strlen(body), &cfg, &r, &err);
    if (rc == 0) {
        apid_create_req_free(&r);
        *code = "";
        return 202;
    }
    int st;
    const char *c, *m;
    apid_error_http(err, &st, &c, &m);
    snprintf(last, sizeof(last), "%s", c);
    *code = last;
    sbx_error_release(&err);
    return st;
}

#define IMG "\"image\":{\"uri\":\"local/busybox\"}"
#define EP "\"entrypoint\":[\"sleep\",\"1\"]"

UNIT_TEST(apid_validate, create_ok_and_defaults)
{
    setup();
    sbx_error_t err = NULL;
    struct apid_create_req r;
    const char *b =
        "{" IMG "," EP ",\"timeout\":600,\"resourceLimits\":{\"cpu\":\"500m\",\"memory\":"
        "\"512Mi\",\"pids\":\"64\"},\"env\":{\"A\":\"1\"},\"metadata\":{\"team\":\"x\"},"
        "\"secureAccess\":false,\"extensions\":{},\"futureField\":1}";
    CU_ASSERT_EQUAL_FATAL(apid_parse_create(b, strlen(b), &cfg, &r, &err), 0);
    CU_ASSERT_STRING_EQUAL(r.image_uri, "local/busybox");
    CU_ASSERT_EQUAL(r.timeout, 600);
    CU_ASSERT_EQUAL(r.limits.cpu_milli, 500);
    CU_ASSERT_EQUAL(r.limits.memory, 512LL << 20);
    CU_ASSERT_EQUAL(r.limits.pids, 64);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(r.env, "A")), "1");
    apid_create_req_free(&r);

    const char *b2 = "{" IMG "," EP ",\"timeout\":null}";
    CU_ASSERT_EQUAL_FATAL(apid_parse_create(b2, strlen(b2), &cfg, &r, &err), 0);
    CU_ASSERT_EQUAL(r.timeout, -1);
    CU_ASSERT_EQUAL(r.limits.cpu_milli, cfg.default_cpu_milli);
    CU_ASSERT_EQUAL(r.limits.memory, cfg.default_memory);
    CU_ASSERT(json_is_object(r.metadata) && json_is_object(r.env));
    apid_create_req_free(&r);
}

UNIT_TEST(apid_validate, create_rejections)
{
    setup();
    static const struct {
        const char *body;
        int status;
        const char *code;
    } cases[] = {
        {"{", 400, "SANDBOX::INVALID_PARAMETER"},
        {"[]", 400, "SANDBOX::INVALID_PARAMETER"},
        {"{\"a\":1,\"a\":2}", 400, "SANDBOX::INVALID_PARAMETER"},
        {"{" EP "}", 400, "SANDBOX::INVALID_PARAMETER"},
        {"{" IMG "}", 400, "DOCKER::INVALID_ENTRYPOINT"},
        {"{" IMG ",\"entrypoint\":[]}", 400, "DOCKER::INVALID_ENTRYPOINT"},
        {"{" IMG ",\"entrypoint\":[\"\"]}", 400, "DOCKER::INVALID_ENTRYPOINT"},
        {"{" IMG ",\"entrypoint\":[1]}", 400, "SANDBOX::INVALID_PARAMETER"},
        {"{" IMG "," EP ",\"timeout\":59}", 400, "SANDBOX::INVALID_PARAMETER"},
        {"{" IMG "," EP ",\"timeout\":3601}", 400, "SANDBOX::INVALID_PARAMETER"},
        {"{" IMG "," EP ",\"timeout\":\"60\"}", 400, "SANDBOX::INVALID_PARAMETER"},
        {"{" IMG "," EP ",\"timeout\":60.5}", 400, "SANDBOX::INVALID_PARAMETER"},
        {"{" IMG "," EP ",\"resourceLimits\":{\"cpu\":\"x\"}}", 400, "SANDBOX::INVALID_PARAMETER"},
        {"{" IMG "," EP ",\"resourceLimits\":{\"cpu\":\"5\"}}", 400, "SANDBOX::INVALID_PARAMETER"},
        {"{" IMG "," EP ",\"resourceLimits\":{\"memory\":\"2Gi\"}}", 400,
         "SANDBOX::INVALID_PARAMETER"},
        {"{" IMG "," EP ",\"resourceLimits\":{\"memory\":\"1k\"}}", 400,
         "SANDBOX::INVALID_PARAMETER"},
        {"{" IMG "," EP ",\"resourceLimits\":{\"pids\":\"0\"}}", 400, "SANDBOX::INVALID_PARAMETER"},
        {"{" IMG "," EP ",\"resourceLimits\":{\"x\":\"1\"}}", 400, "SANDBOX::INVALID_PARAMETER"},
        {"{" IMG "," EP ",\"resourceLimits\":[]}", 400, "SANDBOX::INVALID_PARAMETER"},
        {"{" IMG "," EP ",\"resourceLimits\":{\"gpu\":\"1\"}}", 400, "SANDBOX::API_NOT_SUPPORTED"},
        {"{" IMG "," EP ",\"env\":{\"A=B\":\"1\"}}", 400, "SANDBOX::INVALID_PARAMETER"},
        {"{" IMG "," EP ",\"metadata\":{\"opensandbox.io/a\":\"1\"}}", 400,
         "SANDBOX::INVALID_METADATA_LABEL"},
        {"{" IMG "," EP ",\"metadata\":{\"-bad\":\"1\"}}", 400, "SANDBOX::INVALID_METADATA_LABEL"},
        {"{\"snapshotId\":\"x\"}", 400, "SANDBOX::API_NOT_SUPPORTED"},
        {"{" IMG "," EP ",\"secureAccess\":true}", 400, "SANDBOX::API_NOT_SUPPORTED"},
        {"{" IMG "," EP ",\"secureAccess\":\"no\"}", 400, "SANDBOX::INVALID_PARAMETER"},
        {"{" IMG "," EP ",\"extensions\":{\"poolRef\":\"p\"}}", 400, "SANDBOX::API_NOT_SUPPORTED"},
        {"{" IMG "," EP ",\"platform\":{\"os\":\"linux\"}}", 400, "SANDBOX::INVALID_PARAMETER"},
        {"{\"image\":{\"uri\":\"x\",\"tag\":\"y\"}," EP "}", 400, "SANDBOX::INVALID_PARAMETER"},
        {"{\"image\":{\"uri\":\"\"}," EP "}", 400, "SANDBOX::INVALID_PARAMETER"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        const char *code;
        int st = create_status(cases[i].body, &code);
        if (st != cases[i].status || strcmp(code, cases[i].code) != 0)
            fprintf(stderr, "case %zu %s: got %d %s\n", i, cases[i].body, st, code);
        CU_ASSERT_EQUAL(st, cases[i].status);
        CU_ASSERT_STRING_EQUAL(code, cases[i].code);
    }
}

UNIT_TEST(apid_validate, quantities)
{
    setup();
    sbx_error_t err = NULL;
    struct apid_limits l;
    json_t *m = json_pack("{s:s, s:s}", "cpu", "2", "memory", "1Gi");
    CU_ASSERT_EQUAL(apid_parse_limits(m, &cfg, &l, &err), 0);
    CU_ASSERT_EQUAL(l.cpu_milli, 2000);
    CU_ASSERT_EQUAL(l.memory, 1LL << 30);
    CU_ASSERT_EQUAL(l.pids, cfg.default_pids);
    json_decref(m);
    m = json_pack("{s:s}", "cpu", "250m");
    CU_ASSERT_EQUAL(apid_parse_limits(m, &cfg, &l, &err), 0);
    CU_ASSERT_EQUAL(l.cpu_milli, 250);
    json_decref(m);
    m = json_pack("{s:s}", "memory", "1025Mi"); /* just above the 1Gi maximum */
    CU_ASSERT(apid_parse_limits(m, &cfg, &l, &err) < 0);
    sbx_error_release(&err);
    json_decref(m);
    CU_ASSERT_EQUAL(apid_parse_limits(NULL, &cfg, &l, &err), 0);
    CU_ASSERT_EQUAL(l.memory, cfg.default_memory);
    CU_ASSERT_EQUAL(l.disk, 0); /* libsbx's default writable layer */
    /* ephemeral-storage sizes the writable layer, bounded like memory (it is RAM). */
    m = json_pack("{s:s}", "ephemeral-storage", "64Mi");
    CU_ASSERT_EQUAL(apid_parse_limits(m, &cfg, &l, &err), 0);
    CU_ASSERT_EQUAL(l.disk, 64LL << 20);
    json_decref(m);
    m = json_pack("{s:s}", "ephemeral-storage", "1025Mi");
    CU_ASSERT(apid_parse_limits(m, &cfg, &l, &err) < 0);
    CU_ASSERT_PTR_NOT_NULL(err ? strstr(err->msg, "ephemeral-storage") : NULL);
    sbx_error_release(&err);
    json_decref(m);
    m = json_pack("{s:s}", "ephemeral-storage", "0");
    CU_ASSERT(apid_parse_limits(m, &cfg, &l, &err) < 0);
    sbx_error_release(&err);
    json_decref(m);
    /* Kubernetes, not Docker: G is 10^9, Gi 2^30; "500m" of bytes is refused, naming both
     * spellings the client may have meant, as a 400. */
    m = json_pack("{s:s, s:s, s:s}", "cpu", "500m", "memory", "1G", "ephemeral-storage", "1.5Mi");
    CU_ASSERT_EQUAL(apid_parse_limits(m, &cfg, &l, &err), 0);
    CU_ASSERT_EQUAL(l.cpu_milli, 500);
    CU_ASSERT_EQUAL(l.memory, 1000000000);
    CU_ASSERT_EQUAL(l.disk, 3LL << 19);
    json_decref(m);
    const char *milli[][2] = {
        {"memory", "500m"}, {"ephemeral-storage", "512m"}, {"storage", "64m"}};
    for (size_t i = 0; i < ARRAY_SIZE(milli); i++) {
        m = json_pack("{s:s}", milli[i][0], milli[i][1]);
        CU_ASSERT(apid_parse_limits(m, &cfg, &l, &err) < 0);
        int st = 0;
        const char *code = NULL, *msg = NULL;
        apid_error_http(err, &st, &code, &msg);
        CU_ASSERT_EQUAL(st, 400);
        CU_ASSERT_STRING_EQUAL(code, "SANDBOX::INVALID_PARAMETER");
        CU_ASSERT_PTR_NOT_NULL(strstr(msg, "milli-quantity"));
        CU_ASSERT_PTR_NOT_NULL(strstr(msg, milli[i][1]));
        sbx_error_release(&err);
        json_decref(m);
    }
    m = json_pack("{s:s}", "memory", "1g"); /* Docker's spelling: not a quantity */
    CU_ASSERT(apid_parse_limits(m, &cfg, &l, &err) < 0);
    sbx_error_release(&err);
    json_decref(m);
}

UNIT_TEST(apid_validate, pagination)
{
    sbx_error_t err = NULL;
    int64_t p, ps;
    CU_ASSERT_EQUAL(apid_parse_page(NULL, NULL, &p, &ps, &err), 0);
    CU_ASSERT(p == 1 && ps == 20);
    CU_ASSERT_EQUAL(apid_parse_page("3", "200", &p, &ps, &err), 0);
    CU_ASSERT(p == 3 && ps == 200);
    const char *bad[][2] = {{"0", NULL}, {"-1", NULL},  {"x", NULL}, {"1.5", NULL},
                            {NULL, "0"}, {NULL, "201"}, {NULL, ""},  {"", NULL}};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        CU_ASSERT(apid_parse_page(bad[i][0], bad[i][1], &p, &ps, &err) < 0);
        int st;
        const char *c, *m;
        apid_error_http(err, &st, &c, &m);
        CU_ASSERT_EQUAL(st, 400);
        sbx_error_release(&err);
    }
}

UNIT_TEST(apid_validate, metadata_filter)
{
    sbx_error_t err = NULL;
    json_t *o = NULL;
    CU_ASSERT_EQUAL_FATAL(apid_parse_metadata_filter("team=a&tier=x%20y&e=", &o, &err), 0);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "team")), "a");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "tier")), "x y");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "e")), "");
    json_decref(o);
    const char *bad[] = {"noequals", "=v", "a=%zz", "a=%2", "a=b&&c"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        CU_ASSERT(apid_parse_metadata_filter(bad[i], &o, &err) < 0);
        int st;
        const char *c, *m;
        apid_error_http(err, &st, &c, &m);
        CU_ASSERT_STRING_EQUAL(c, "INVALID_METADATA_FORMAT");
        sbx_error_release(&err);
    }
}

UNIT_TEST(apid_validate, metadata_patch_allows_null)
{
    sbx_error_t err = NULL;
    json_t *p = json_pack("{s:s, s:n}", "a", "1", "b");
    CU_ASSERT_EQUAL(apid_validate_metadata(p, true, &err), 0);
    CU_ASSERT(apid_validate_metadata(p, false, &err) < 0);
    sbx_error_release(&err);
    json_decref(p);
    CU_ASSERT_EQUAL(apid_validate_metadata_key("example.com/name_1", &err), 0);
    CU_ASSERT(apid_validate_metadata_key("Example.com/x", &err) < 0);
    sbx_error_release(&err);
}

UNIT_TEST(apid_validate, time_roundtrip_and_renew)
{
    sbx_error_t err = NULL;
    int64_t ms;
    CU_ASSERT_EQUAL(apid_parse_time("2025-01-15T10:30:00Z", &ms), 0);
    CU_ASSERT_EQUAL(ms, 1736937000000LL);
    CU_ASSERT_EQUAL(apid_parse_time("2025-01-15T12:30:00.250+02:00", &ms), 0);
    CU_ASSERT_EQUAL(ms, 1736937000250LL);
    char buf[40];
    apid_format_time(1736937000250LL, buf, sizeof(buf));
    CU_ASSERT_STRING_EQUAL(buf, "2025-01-15T10:30:00.250Z");
    CU_ASSERT(apid_parse_time("2025-01-15T10:30:00", &ms) < 0);
    CU_ASSERT(apid_parse_time("2025-13-15T10:30:00Z", &ms) < 0);
    CU_ASSERT(apid_parse_time("yesterday", &ms) < 0);

    const char *ok = "{\"expiresAt\":\"2030-01-01T00:00:00Z\"}";
    CU_ASSERT_EQUAL(apid_parse_renew(ok, strlen(ok), 0, &ms, &err), 0);
    const char *past = "{\"expiresAt\":\"2001-01-01T00:00:00Z\"}";
    CU_ASSERT(apid_parse_renew(past, strlen(past), apid_now_ms(), &ms, &err) < 0);
    int st;
    const char *c, *m;
    apid_error_http(err, &st, &c, &m);
    CU_ASSERT_EQUAL(st, 400);
    CU_ASSERT_STRING_EQUAL(c, "DOCKER::INVALID_EXPIRATION");
    sbx_error_release(&err);
    const char *extra = "{\"expiresAt\":\"2030-01-01T00:00:00Z\",\"x\":1}";
    CU_ASSERT(apid_parse_renew(extra, strlen(extra), 0, &ms, &err) < 0);
    sbx_error_release(&err);
}

UNIT_TEST(apid_validate, error_mapping)
{
    sbx_error_t err = NULL;
    int st;
    const char *c, *m;
    apid_fail(&err, E_NO_EXPIRATION, "x");
    apid_error_http(err, &st, &c, &m);
    CU_ASSERT_EQUAL(st, 409);
    CU_ASSERT_STRING_EQUAL(c, "DOCKER::INVALID_EXPIRATION");
    CU_ASSERT_STRING_EQUAL(m, "x");
    sbx_error_release(&err);
    /* store.c's classes of SQLite failure (t_faults.sh drives them for real) */
    apid_fail(&err, E_STORAGE, "store: insert: database or disk is full (data directory full)");
    apid_error_http(err, &st, &c, &m);
    CU_ASSERT_EQUAL(st, 507);
    CU_ASSERT_STRING_EQUAL(c, "SANDBOX::INSUFFICIENT_STORAGE");
    sbx_error_release(&err);
    apid_fail(&err, E_UNAVAILABLE,
              "store: insert: database is locked (data directory busy, retry)");
    apid_error_http(err, &st, &c, &m);
    CU_ASSERT_EQUAL(st, 503);
    sbx_error_release(&err);
    sbx_make_error(&err, ENOENT, "open foo");
    apid_error_http(err, &st, &c, &m);
    CU_ASSERT_EQUAL(st, 500);
    CU_ASSERT_STRING_EQUAL(c, "SANDBOX::UNKNOWN_ERROR");
    CU_ASSERT_STRING_EQUAL(m, "open foo: No such file or directory");
    sbx_error_release(&err);
    /* A message that merely looks like a coded one is not: the code is the field, never text. */
    sbx_make_error(&err, 0, "SANDBOX::NOT_FOUND: x");
    apid_error_http(err, &st, &c, &m);
    CU_ASSERT_EQUAL(st, 500);
    sbx_error_release(&err);
}

/* Context added on the way up keeps the code: a 4xx stays that 4xx, the message grows. */
UNIT_TEST(apid_validate, wrapped_errors_keep_their_status)
{
    sbx_error_t err = NULL;
    int st;
    const char *c, *m;
    apid_fail(&err, E_NOT_FOUND, "sandbox `%s` not found", "abc");
    sbx_error_wrap(&err, "renew");
    sbx_error_wrap(&err, "session %d", 7);
    apid_error_http(err, &st, &c, &m);
    CU_ASSERT_EQUAL(st, 404);
    CU_ASSERT_STRING_EQUAL(c, "SANDBOX::NOT_FOUND");
    CU_ASSERT_STRING_EQUAL(m, "session 7: renew: sandbox `abc` not found");
    sbx_error_release(&err);
    /* errno-carrying ones too, and the errno survives the wrap */
    sbx_make_error_code(&err, E_INVALID_PARAMETER, EINVAL, "bad value");
    sbx_error_wrap(&err, "field x");
    sbx_error_wrap(&err, "request");
    apid_error_http(err, &st, &c, &m);
    CU_ASSERT_EQUAL(st, 400);
    CU_ASSERT_STRING_EQUAL(c, "SANDBOX::INVALID_PARAMETER");
    CU_ASSERT_EQUAL(err->status, EINVAL);
    CU_ASSERT_STRING_EQUAL(m, "request: field x: bad value: Invalid argument");
    sbx_error_release(&err);
}

/* libsbx's categories reach the client as the API's own codes, wrapped or not. */
UNIT_TEST(apid_validate, libsbx_categories)
{
    static const struct {
        const char *code;
        int status;
        const char *wire;
    } cases[] = {
        {SBX_ERR_NOT_FOUND, 404, "SANDBOX::NOT_FOUND"},
        {SBX_ERR_BUSY, 409, "SANDBOX::STATE_CONFLICT"},
        /* apid checks limits itself; one libsbx still refuses is the host's failure */
        {SBX_ERR_LIMIT, 500, "SANDBOX::UNKNOWN_ERROR"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        sbx_error_t err = NULL;
        int st;
        const char *c, *m;
        sbx_make_error_code(&err, cases[i].code, 0, "what");
        sbx_error_wrap(&err, "context");
        apid_error_http(err, &st, &c, &m);
        CU_ASSERT_EQUAL(st, cases[i].status);
        CU_ASSERT_STRING_EQUAL(c, cases[i].wire);
        CU_ASSERT_STRING_EQUAL(m, "context: what");
        sbx_error_release(&err);
    }
}

UNIT_TEST(apid_validate, uri_nul)
{
    /* t_abuse.sh: "/sandboxes/ID%00/proxy/44772" reached the handler as "/sandboxes/ID". */
    CU_ASSERT_TRUE(apid_uri_has_nul("/sandboxes/abc%00/proxy/1"));
    CU_ASSERT_TRUE(apid_uri_has_nul("/%00"));
    CU_ASSERT_TRUE(apid_uri_has_nul("/v1/sandboxes?metadata=a%3D%00"));
    CU_ASSERT_TRUE(apid_uri_has_nul("/x%%00"));
    CU_ASSERT_FALSE(apid_uri_has_nul("/sandboxes/abc/proxy/1/a%2500b"));
    CU_ASSERT_FALSE(apid_uri_has_nul("/a%0"));
    CU_ASSERT_FALSE(apid_uri_has_nul("/a%"));
    CU_ASSERT_FALSE(apid_uri_has_nul("/100%200"));
    CU_ASSERT_FALSE(apid_uri_has_nul(NULL));
}

UNIT_TEST(apid_validate, state_machine)
{
    CU_ASSERT(apid_state_transition_ok(ST_PENDING, ST_RUNNING));
    CU_ASSERT(apid_state_transition_ok(ST_RUNNING, ST_PAUSED));
    CU_ASSERT(apid_state_transition_ok(ST_PAUSED, ST_RUNNING));
    CU_ASSERT(apid_state_transition_ok(ST_RUNNING, ST_STOPPING));
    CU_ASSERT(apid_state_transition_ok(ST_STOPPING, ST_TERMINATED));
    CU_ASSERT(apid_state_transition_ok(ST_RUNNING, ST_FAILED));
    CU_ASSERT(apid_state_transition_ok(ST_FAILED, ST_STOPPING));
    CU_ASSERT(!apid_state_transition_ok(ST_TERMINATED, ST_RUNNING));
    CU_ASSERT(!apid_state_transition_ok(ST_STOPPING, ST_RUNNING));
    CU_ASSERT(!apid_state_transition_ok(ST_PENDING, ST_PAUSED));
    CU_ASSERT(!apid_state_transition_ok(ST_PAUSED, ST_PAUSING));
    CU_ASSERT(!apid_state_transition_ok(-1, ST_RUNNING));
    for (int s = 0; s < ST__COUNT; s++)
        CU_ASSERT_EQUAL(apid_state_parse(apid_state_name(s)), s);
    CU_ASSERT_EQUAL(apid_state_parse("running"), -1);
    CU_ASSERT(apid_state_terminal(ST_FAILED) && !apid_state_terminal(ST_PAUSED));
}

UNIT_TEST(apid_validate, image_resolution)
{
    sbx_error_t err = NULL;
    char dir[] = "/tmp/sbx-unit-images.XXXXXX";
    CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
    cleanup_free char *img = xasprintf("%s/busybox", dir);
    CU_ASSERT_FATAL(mkdir(img, 0755) == 0);
    char *name = NULL;
    CU_ASSERT_EQUAL(apid_resolve_image(dir, "local/busybox", &name, &err), 0);
    CU_ASSERT_STRING_EQUAL(name, "busybox");
    free(name);
    CU_ASSERT_EQUAL(apid_resolve_image(dir, "busybox", &name, &err), 0);
    free(name);
    const char *bad[] = {"local/..", "local/../x", "local/nope"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        CU_ASSERT(apid_resolve_image(dir, bad[i], &name, &err) < 0);
        CU_ASSERT(err && strstr(err->msg, "local/busybox") != NULL);
        sbx_error_release(&err);
    }
    /* Registry references not in the store are to be pulled, by their canonical name. */
    CU_ASSERT_EQUAL(apid_resolve_image(dir, "python:3.11", &name, &err), APID_IMAGE_PULL);
    CU_ASSERT_STRING_EQUAL(name, "docker.io/library/python:3.11");
    free(name);
    CU_ASSERT_EQUAL(apid_resolve_image(dir, "docker.io/library/busybox", &name, &err),
                    APID_IMAGE_PULL);
    CU_ASSERT_STRING_EQUAL(name, "docker.io/library/busybox:latest");
    free(name);
    CU_ASSERT(apid_resolve_image(dir, "Bad/Ref", &name, &err) < 0);
    CU_ASSERT(err && strstr(err->msg, "lowercase") != NULL);
    sbx_error_release(&err);
    rmdir(img);
    rmdir(dir);
}

UNIT_TEST(apid_validate, new_id_is_uuid4)
{
    char a[37], b[37];
    apid_new_id(a);
    apid_new_id(b);
    CU_ASSERT_EQUAL(strlen(a), 36);
    CU_ASSERT(a[8] == '-' && a[13] == '-' && a[14] == '4' && a[18] == '-' && a[23] == '-');
    CU_ASSERT(strchr("89ab", a[19]) != NULL);
    CU_ASSERT(strcmp(a, b) != 0);
    CU_ASSERT(id_is_valid(a));
}

UNIT_TEST(apid_validate, volumes)
{
    sbx_error_t err = NULL;
    json_t *out = NULL;
    json_t *ok = json_loads("[{\"name\":\"work\",\"mountPath\":\"/work\",\"pvc\":{\"claimName\":"
                            "\"ws-1\",\"storageClass\":null}},{\"name\":\"data\",\"mountPath\":"
                            "\"/data\",\"readOnly\":true,\"subPath\":\"a/b\",\"host\":{\"path\":"
                            "\"/srv/data\"}}]",
                            0, NULL);
    CU_ASSERT_EQUAL_FATAL(apid_parse_volumes(ok, &out, &err), 0);
    CU_ASSERT_EQUAL(json_array_size(out), 2);
    json_t *p = json_object_get(json_array_get(out, 0), "pvc");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(p, "claimName")), "ws-1");
    CU_ASSERT(json_is_true(json_object_get(p, "createIfNotExists")));
    CU_ASSERT(json_is_true(json_object_get(json_array_get(out, 1), "readOnly")));
    json_decref(out);
    json_decref(ok);
    json_t *none = json_array();
    CU_ASSERT_EQUAL(apid_parse_volumes(none, &out, &err), 0);
    CU_ASSERT_PTR_NULL(out);
    json_decref(none);

    /* Each refused with a message naming what is wrong. */
    static const char *const bad[][2] = {
        {"{\"name\":\"Bad\",\"mountPath\":\"/a\",\"pvc\":{\"claimName\":\"x\"}}", "DNS label"},
        {"{\"name\":\"a\",\"mountPath\":\"/a\",\"ossfs\":{\"bucket\":\"b\"}}", "backend `ossfs`"},
        {"{\"name\":\"a\",\"mountPath\":\"/a\",\"nfs\":{}}", "backend `nfs`"},
        {"{\"name\":\"a\",\"mountPath\":\"/a\"}", "no backend"},
        {"{\"name\":\"a\",\"mountPath\":\"/a\",\"pvc\":{\"claimName\":\"x\"},\"host\":{\"path\":"
         "\"/x\"}}",
         "two backends"},
        {"{\"name\":\"a\",\"mountPath\":\"a\",\"pvc\":{\"claimName\":\"x\"}}", "mountPath"},
        {"{\"name\":\"a\",\"mountPath\":\"/proc/x\",\"pvc\":{\"claimName\":\"x\"}}", "reserved"},
        {"{\"name\":\"a\",\"mountPath\":\"/\",\"pvc\":{\"claimName\":\"x\"}}", "reserved"},
        {"{\"name\":\"a\",\"mountPath\":\"/a/../b\",\"pvc\":{\"claimName\":\"x\"}}", "mountPath"},
        {"{\"name\":\"a\",\"mountPath\":\"/a\",\"subPath\":\"../x\",\"pvc\":{\"claimName\":\"x\"}}",
         "subPath"},
        {"{\"name\":\"a\",\"mountPath\":\"/a\",\"subPath\":\"/etc\",\"pvc\":{\"claimName\":\"x\"}}",
         "subPath"},
        {"{\"name\":\"a\",\"mountPath\":\"/a\",\"subPath\":\"x/../../y\",\"pvc\":{\"claimName\":"
         "\"x\"}}",
         "subPath"},
        {"{\"name\":\"a\",\"mountPath\":\"/a\",\"host\":{\"path\":\"rel\"}}", "absolute host path"},
        {"{\"name\":\"a\",\"mountPath\":\"/a\",\"host\":{\"path\":\"/srv/../etc\"}}",
         "absolute host path"},
        {"{\"name\":\"a\",\"mountPath\":\"/a\",\"pvc\":{\"claimName\":\"x_y\"}}", "claimName"},
        {"{\"name\":\"a\",\"mountPath\":\"/a\",\"pvc\":{\"claimName\":\"x\",\"storage\":\"1Gi\"}}",
         "not supported"},
        {"{\"name\":\"a\",\"mountPath\":\"/a\",\"pvc\":{\"claimName\":\"x\","
         "\"deleteOnSandboxTermination\":true}}",
         "not supported"},
        {"{\"name\":\"a\",\"mountPath\":\"/a\",\"readOnly\":\"yes\",\"pvc\":{\"claimName\":\"x\"}}",
         "readOnly"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        cleanup_free char *s = xasprintf("[%s]", bad[i][0]);
        json_t *v = json_loads(s, 0, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(v);
        CU_ASSERT(apid_parse_volumes(v, &out, &err) < 0);
        if (!err || !strstr(err->msg, bad[i][1]))
            fprintf(stderr, "volume case %zu: %s\n", i, err ? err->msg : "(accepted)");
        CU_ASSERT(sbx_error_is(err, E_INVALID_PARAMETER) && strstr(err->msg, bad[i][1]) != NULL);
        sbx_error_release(&err);
        json_decref(v);
    }
    /* Names and mount paths are unique within a sandbox. */
    json_t *dup = json_loads("[{\"name\":\"a\",\"mountPath\":\"/a\",\"pvc\":{\"claimName\":\"x\"}},"
                             "{\"name\":\"a\",\"mountPath\":\"/b\",\"pvc\":{\"claimName\":\"x\"}}]",
                             0, NULL);
    CU_ASSERT(apid_parse_volumes(dup, &out, &err) < 0);
    sbx_error_release(&err);
    json_decref(dup);
    dup = json_loads("[{\"name\":\"a\",\"mountPath\":\"/a\",\"pvc\":{\"claimName\":\"x\"}},"
                     "{\"name\":\"b\",\"mountPath\":\"/a\",\"pvc\":{\"claimName\":\"x\"}}]",
                     0, NULL);
    CU_ASSERT(apid_parse_volumes(dup, &out, &err) < 0);
    sbx_error_release(&err);
    json_decref(dup);
}
