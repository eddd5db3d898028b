/* Egress policy by domain name: targets as apid_parse_net_policy normalizes them, and the
 * decisions apid's resolver makes from them (apid_egress_name_allowed), plus the DNS wire helpers
 * that read queries and answers (apid/dns_wire.c). */
#include "apid.h"
#include "dns_wire.h"
#include "unit.h"

static json_t *
policy(const char *js)
{
    json_error_t je;
    json_t *in = json_loads(js, 0, &je), *out = NULL;
    sbx_error_t err = NULL;
    int r = apid_parse_net_policy(in, "deny", &out, &err);
    json_decref(in);
    if (r < 0) {
        sbx_error_release(&err);
        return NULL;
    }
    return out;
}

static const char *
target(json_t *p, size_t i)
{
    return json_string_value(
        json_object_get(json_array_get(json_object_get(p, "egress"), i), "target"));
}

UNIT_TEST(egress, targets_normalized)
{
    json_t *p = policy("{\"egress\":[{\"action\":\"allow\",\"target\":\"PyPI.org.\"},"
                       "{\"action\":\"allow\",\"target\":\"*.Example.com\"},"
                       "{\"action\":\"deny\",\"target\":\"10.1.2.3/8:443\"},"
                       "{\"action\":\"allow\",\"target\":\"_srv.a-b.c\"}]}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_STRING_EQUAL(target(p, 0), "pypi.org");
    CU_ASSERT_STRING_EQUAL(target(p, 1), "*.example.com");
    CU_ASSERT_STRING_EQUAL(target(p, 2), "10.1.2.3/8:443"); /* as written; the cidr is masked */
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_object_get(json_array_get(json_object_get(p, "egress"), 2), "cidr")),
        "10.0.0.0/8");
    CU_ASSERT_STRING_EQUAL(target(p, 3), "_srv.a-b.c");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(p, "defaultAction")), "deny");
    json_decref(p);
}

UNIT_TEST(egress, bad_targets_refused)
{
    const char *bad[] = {
        "",           "*",
        "*.",         "a..b",
        "-a.com",     "a-.com",
        "a.*.com",    "**.a.com",
        "a b.com",    "a/b.com",
        "1.2.3.4.5",  "1.2.3",
        "a.com:80",   "300.1.1.1",
        "1.2.3.4/33", "1.2.3.4:0",
        "x.com/8",    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cleanup_free char *js =
            xasprintf("{\"egress\":[{\"action\":\"allow\",\"target\":\"%s\"}]}", bad[i]);
        json_t *p = policy(js);
        if (p)
            fprintf(stderr, "accepted: %s\n", bad[i]);
        CU_ASSERT_PTR_NULL(p);
        json_decref(p);
    }
}

UNIT_TEST(egress, defaults)
{
    json_t *p = policy("{}");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(p, "defaultAction")), "allow");
    json_decref(p);
    p = policy("{\"egress\":[]}");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(p, "defaultAction")), "deny");
    json_decref(p);
    json_t *none = NULL;
    sbx_error_t err = NULL;
    CU_ASSERT_EQUAL(apid_parse_net_policy(NULL, "allow", &none, &err), 0);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(none, "defaultAction")), "allow");
    json_decref(none);
}

UNIT_TEST(egress, names_decided_in_order)
{
    json_t *p = policy("{\"defaultAction\":\"deny\",\"egress\":["
                       "{\"action\":\"deny\",\"target\":\"bad.example.com\"},"
                       "{\"action\":\"allow\",\"target\":\"*.example.com\"},"
                       "{\"action\":\"allow\",\"target\":\"pypi.org\"},"
                       "{\"action\":\"allow\",\"target\":\"10.0.0.0/8\"}]}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_TRUE(apid_egress_has_domains(p));
    CU_ASSERT_TRUE(apid_egress_name_allowed(p, "a.example.com"));
    CU_ASSERT_TRUE(apid_egress_name_allowed(p, "a.b.example.com"));
    CU_ASSERT_FALSE(apid_egress_name_allowed(p, "bad.example.com")); /* first match wins */
    CU_ASSERT_FALSE(apid_egress_name_allowed(p, "example.com"));     /* not the apex */
    CU_ASSERT_FALSE(apid_egress_name_allowed(p, "xexample.com"));    /* a label boundary */
    CU_ASSERT_TRUE(apid_egress_name_allowed(p, "pypi.org"));
    CU_ASSERT_FALSE(apid_egress_name_allowed(p, "www.pypi.org"));
    CU_ASSERT_FALSE(apid_egress_name_allowed(p, "other.net"));
    json_decref(p);
    p = policy(
        "{\"defaultAction\":\"allow\",\"egress\":[{\"action\":\"deny\",\"target\":\"x.org\"}]}");
    CU_ASSERT_TRUE(apid_egress_name_allowed(p, "y.org"));
    CU_ASSERT_FALSE(apid_egress_name_allowed(p, "x.org"));
    json_decref(p);
    p = policy("{\"egress\":[{\"action\":\"allow\",\"target\":\"10.0.0.0/8\"}]}");
    CU_ASSERT_FALSE(apid_egress_has_domains(p));
    json_decref(p);
}

static const uint8_t answer[] = {
    0x12, 0x34, 0x81, 0x80, 0,    1,    0,    2,    0,    0,   0,   1, /* header */
    3,    'W',  'w',  'W',  7,    'e',  'x',  'a',  'm',  'p', 'l', 'e',
    3,    'c',  'o',  'm',  0, /* question */
    0,    1,    0,    1,    0xc0, 12,   0,    1,    0,    1,   0,   1,
    0x51, 0x80, 0,    4,    198,  18,   1,    1, /* A, TTL 86400 */
    0xc0, 12,   0,    1,    0,    1,    0,    0,    0,    5,   0,   4,
    198,  18,   1,    2,                                          /* A, TTL 5 */
    0,    0,    41,   0x10, 0,    0x00, 0x01, 0x51, 0x80, 0,   0, /* OPT: "TTL" not a time */
};

static void
collect(void *arg, const uint8_t a[4], uint32_t ttl)
{
    char *s = arg;
    size_t l = strlen(s);
    snprintf(s + l, 128 - l, "%u.%u.%u.%u/%u ", a[0], a[1], a[2], a[3], ttl);
}

UNIT_TEST(egress, dns_wire)
{
    uint8_t m[sizeof(answer)];
    memcpy(m, answer, sizeof(m));
    struct dns_question q;
    CU_ASSERT_EQUAL_FATAL(dns_parse_question(m, sizeof(m), &q), 0);
    CU_ASSERT_STRING_EQUAL(q.name, "www.example.com");
    CU_ASSERT_EQUAL(q.qtype, 1);
    char got[128] = "";
    CU_ASSERT_EQUAL(dns_scan_answer(m, sizeof(m), 3600, collect, got), 2);
    CU_ASSERT_STRING_EQUAL(got, "198.18.1.1/3600 198.18.1.2/5 ");
    CU_ASSERT(m[39] == 0 && m[40] == 0 && m[41] == 0x0e && m[42] == 0x10); /* capped in place */
    CU_ASSERT(memcmp(m + sizeof(m) - 6, answer + sizeof(m) - 6, 6) == 0);  /* OPT untouched */
    uint8_t out[512];
    size_t n = dns_error_reply(m, &q, DNS_RCODE_NXDOMAIN, out, sizeof(out));
    CU_ASSERT_EQUAL(n, q.end);
    CU_ASSERT(out[0] == 0x12 && out[1] == 0x34 && out[2] == 0x81 && out[3] == 0x83);
    CU_ASSERT(out[5] == 1 && out[7] == 0 && out[11] == 0);
    /* A pointer forward, into itself or into the header, and a non-host label are refused. */
    uint8_t loop[] = {0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1};
    CU_ASSERT_EQUAL(dns_parse_question(loop, sizeof(loop), &q), -1);
    uint8_t hdr[] = {0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 2, 0, 1, 0, 1};
    CU_ASSERT_EQUAL(dns_parse_question(hdr, sizeof(hdr), &q), -1);
    uint8_t dot[] = {0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'a', '.', 'b', 0, 0, 1, 0, 1};
    CU_ASSERT_EQUAL(dns_parse_question(dot, sizeof(dot), &q), -1);
    uint8_t two[] = {0, 1, 1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 1, 'a', 0, 0, 1, 0, 1};
    CU_ASSERT_EQUAL(dns_parse_question(two, sizeof(two), &q), -1); /* two questions */
    CU_ASSERT_EQUAL(dns_scan_answer(m, 20, 3600, NULL, NULL), -1); /* cut short */
}
