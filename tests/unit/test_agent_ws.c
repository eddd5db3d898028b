/* sbx-agent WebSocket framing (agent_ws.c): the handshake key, server frames, client frames. */
#include <CUnit/CUnit.h>
#include <string.h>

#include "agent_ws.h"
#include "unit.h"

UNIT_TEST(agent_ws, accept_key_rfc6455_example)
{
    char out[29];
    ag_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", out); /* RFC 6455 §1.3 */
    CU_ASSERT_STRING_EQUAL(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

UNIT_TEST(agent_ws, server_frame_lengths)
{
    struct ag_buf b = {0};
    ag_ws_frame(&b, SBX_WS_TEXT, "hi", 2);
    CU_ASSERT_EQUAL(b.len, 4);
    CU_ASSERT_EQUAL((unsigned char)b.p[0], 0x81);
    CU_ASSERT_EQUAL((unsigned char)b.p[1], 2);
    b.len = 0;
    static char big[70000];
    ag_ws_frame(&b, SBX_WS_BIN, big, 300);
    CU_ASSERT_EQUAL((unsigned char)b.p[1], 126);
    CU_ASSERT_EQUAL(b.len, 4 + 300);
    b.len = 0;
    ag_ws_frame(&b, SBX_WS_BIN, big, sizeof(big));
    CU_ASSERT_EQUAL((unsigned char)b.p[1], 127);
    CU_ASSERT_EQUAL(b.len, 10 + sizeof(big));
    ag_buf_free(&b);
}

UNIT_TEST(agent_ws, client_frame_unmasked_in_place)
{
    /* RFC 6455 §5.7: a masked "Hello". */
    char f[] = {(char)0x81, (char)0x85, 0x37, (char)0xfa, 0x21, 0x3d,
                0x7f,       (char)0x9f, 0x4d, 0x51,       0x58};
    struct ag_ws_msg m;
    CU_ASSERT_EQUAL(ag_ws_parse(f, 5, &m), 0); /* incomplete */
    CU_ASSERT_EQUAL(ag_ws_parse(f, sizeof(f), &m), 1);
    CU_ASSERT_EQUAL(m.opcode, SBX_WS_TEXT);
    CU_ASSERT_EQUAL(m.len, 5);
    CU_ASSERT_EQUAL(m.frame_len, sizeof(f));
    CU_ASSERT_EQUAL(memcmp(m.payload, "Hello", 5), 0);
}

UNIT_TEST(agent_ws, bad_client_frames_refused)
{
    struct ag_ws_msg m;
    char unmasked[] = {(char)0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};
    CU_ASSERT_EQUAL(ag_ws_parse(unmasked, sizeof(unmasked), &m), -1);
    char rsv[] = {(char)0xc1, (char)0x80, 0, 0, 0, 0};
    CU_ASSERT_EQUAL(ag_ws_parse(rsv, sizeof(rsv), &m), -1);
    char huge[] = {(char)0x82, (char)0xff, 0, 0, 0, 0, 0x7f, 0, 0, 0, 0, 0, 0, 0};
    CU_ASSERT_EQUAL(ag_ws_parse(huge, sizeof(huge), &m), -1);
    char long_ping[] = {(char)0x89, (char)0xfe, 0, (char)200};
    CU_ASSERT_EQUAL(ag_ws_parse(long_ping, sizeof(long_ping), &m), -1);
    char frag_close[] = {(char)0x08, (char)0x80, 0, 0, 0, 0};
    CU_ASSERT_EQUAL(ag_ws_parse(frag_close, sizeof(frag_close), &m), -1);
}
