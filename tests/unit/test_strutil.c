/* runtime/lib/strutil.c and ws_frame.c: the helpers libsbx, apid, the client and the static agent
 * share (one copy of each). */
#include <CUnit/CUnit.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "strutil.h"
#include "unit.h"
#include "ws_frame.h"

UNIT_TEST(strutil, json_text_replaces_invalid_utf8_only)
{
    static const struct {
        const char *in;
        size_t len;
        const char *want; /* the string's value */
        size_t want_len;
    } cases[] = {
        {"plain", 5, "plain", 5},
        {"\xe2\x82\xac\xf0\x9f\x98\x80", 7, "\xe2\x82\xac\xf0\x9f\x98\x80", 7},
        {"nul\0in", 6, "nul\0in", 6},
        {"a\xff"
         "b",
         3,
         "a\xef\xbf\xbd"
         "b",
         5},
        {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 9}, /* a lone surrogate */
        {"\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd", 6},                 /* overlong '/' */
        {"\xe2\x82", 2, "\xef\xbf\xbd\xef\xbf\xbd", 6},                 /* cut short */
        {"", 0, "", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *j = sbx_json_text(cases[i].in, cases[i].len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(j);
        CU_ASSERT_EQUAL(json_string_length(j), cases[i].want_len);
        CU_ASSERT(memcmp(json_string_value(j), cases[i].want, cases[i].want_len) == 0);
        /* what jansson writes of it reads back as the same value */
        char *s = json_dumps(j, JSON_ENCODE_ANY);
        json_t *back = json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        CU_ASSERT(back && json_equal(back, j));
        json_decref(back);
        free(s);
        json_decref(j);
    }
}

UNIT_TEST(strutil, pct_decode)
{
    char out[16];
    CU_ASSERT_EQUAL(sbx_pct_decode("%41%62c", 7, out, false), 3);
    CU_ASSERT_EQUAL(memcmp(out, "Abc", 3), 0);
    CU_ASSERT_EQUAL(sbx_pct_decode("a+b", 3, out, false), 3);
    CU_ASSERT_EQUAL(out[1], '+');
    CU_ASSERT_EQUAL(sbx_pct_decode("a+b", 3, out, true), 3);
    CU_ASSERT_EQUAL(out[1], ' ');
    CU_ASSERT_EQUAL(sbx_pct_decode("%", 1, out, false), -1);
    CU_ASSERT_EQUAL(sbx_pct_decode("%4", 2, out, false), -1);
    CU_ASSERT_EQUAL(sbx_pct_decode("%4g", 3, out, false), -1);
    CU_ASSERT_EQUAL(sbx_pct_decode("%00", 3, out, false), -1);
    CU_ASSERT_EQUAL(sbx_pct_decode("a\0b", 3, out, false), -1);
}

UNIT_TEST(strutil, constant_time_compare)
{
    CU_ASSERT(sbx_ct_equal("secret", 6, "secret", 6));
    CU_ASSERT_FALSE(sbx_ct_equal("secreT", 6, "secret", 6));
    CU_ASSERT_FALSE(sbx_ct_equal("secret1", 7, "secret", 6));
    CU_ASSERT_FALSE(sbx_ct_equal("secre", 5, "secret", 6));
    CU_ASSERT_FALSE(sbx_ct_equal("", 0, "secret", 6));
    CU_ASSERT_FALSE(sbx_ct_equal("x", 1, "", 0));
    CU_ASSERT(sbx_ct_equal("", 0, "", 0));
}

UNIT_TEST(ws_frame, heads_round_trip_masked_and_not)
{
    static const uint64_t lens[] = {0, 1, 125, 126, 65535, 65536, 1u << 20};
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
        for (int masked = 0; masked < 2; masked++) {
            uint8_t h[SBX_WS_HEAD_MAX];
            size_t hl = sbx_ws_head_put(h, SBX_WS_BIN, lens[i], masked ? key : NULL);
            size_t want = (lens[i] < 126 ? 2 : lens[i] <= 0xffff ? 4 : 10) + (masked ? 4 : 0);
            CU_ASSERT_EQUAL(hl, want);
            struct sbx_ws_head p;
            for (size_t k = 0; k < hl; k++) /* every strict prefix needs more bytes */
                CU_ASSERT_EQUAL(sbx_ws_head_parse(h, k, &p), 0);
            CU_ASSERT_EQUAL_FATAL(sbx_ws_head_parse(h, hl, &p), 1);
            CU_ASSERT(p.fin && p.opcode == SBX_WS_BIN && p.len == lens[i] && p.head_len == hl);
            CU_ASSERT_EQUAL(p.masked, masked);
            if (masked)
                CU_ASSERT_EQUAL(memcmp(p.mask, key, 4), 0);
        }
    /* RFC 6455 §5.7: masking "Hello" with that key, and unmasking it again. */
    char hello[] = "Hello";
    sbx_ws_mask(hello, 5, key);
    CU_ASSERT_EQUAL(memcmp(hello, "\x7f\x9f\x4d\x51\x58", 5), 0);
    sbx_ws_mask(hello, 5, key);
    CU_ASSERT_STRING_EQUAL(hello, "Hello");
}

UNIT_TEST(ws_frame, frames_no_peer_may_send)
{
    struct sbx_ws_head h;
    static const uint8_t rsv[] = {0xc1, 0x00}, opcode3[] = {0x83, 0x00}, opcode11[] = {0x8b, 0x00},
                         long_ping[] = {0x89, 0x7e, 0x00, 0xc8}, frag_close[] = {0x08, 0x00},
                         top_bit[] = {0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0};
    CU_ASSERT_EQUAL(sbx_ws_head_parse(rsv, sizeof(rsv), &h), -1);
    CU_ASSERT_EQUAL(sbx_ws_head_parse(opcode3, sizeof(opcode3), &h), -1);
    CU_ASSERT_EQUAL(sbx_ws_head_parse(opcode11, sizeof(opcode11), &h), -1);
    CU_ASSERT_EQUAL(sbx_ws_head_parse(long_ping, sizeof(long_ping), &h), -1);
    CU_ASSERT_EQUAL(sbx_ws_head_parse(frag_close, sizeof(frag_close), &h), -1);
    CU_ASSERT_EQUAL(sbx_ws_head_parse(top_bit, sizeof(top_bit), &h), -1);
    static const uint8_t ok_close[] = {0x88, 0x02};
    CU_ASSERT_EQUAL(sbx_ws_head_parse(ok_close, sizeof(ok_close), &h), 1);
    CU_ASSERT(h.opcode == SBX_WS_CLOSE && h.len == 2 && !h.masked);
}
