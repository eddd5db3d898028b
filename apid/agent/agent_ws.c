/* WebSocket framing for the agent (see agent_ws.h). SHA-1 is only used for the handshake's
 * Sec-WebSocket-Accept, as RFC 6455 §4.2.2 requires; it protects nothing. The agent links libc
 * only, hence the few lines here instead of a crypto library. */
#include "agent_ws.h"

#include <string.h>

static uint32_t
rol(uint32_t v, int s)
{
    return (v << s) | (v >> (32 - s));
}

static void
sha1_block(uint32_t h[5], const unsigned char *p)
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[i * 4] << 24 | (uint32_t)p[i * 4 + 1] << 16 |
               (uint32_t)p[i * 4 + 2] << 8 | p[i * 4 + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20)
            f = (b & c) | (~b & d), k = 0x5A827999;
        else if (i < 40)
            f = b ^ c ^ d, k = 0x6ED9EBA1;
        else if (i < 60)
            f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
        else
            f = b ^ c ^ d, k = 0xCA62C1D6;
        uint32_t t = rol(a, 5) + f + e + k + w[i];
        e = d, d = c, c = rol(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

static void
sha1(const unsigned char *msg, size_t n, unsigned char out[20])
{
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t i = 0;
    for (; i + 64 <= n; i += 64)
        sha1_block(h, msg + i);
    unsigned char tail[128] = {0};
    size_t r = n - i;
    memcpy(tail, msg + i, r);
    tail[r] = 0x80;
    size_t tl = r + 1 + 8 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)n * 8;
    for (int j = 0; j < 8; j++)
        tail[tl - 1 - j] = (unsigned char)(bits >> (8 * j));
    for (size_t j = 0; j < tl; j += 64)
        sha1_block(h, tail + j);
    for (int j = 0; j < 5; j++) {
        out[j * 4] = (unsigned char)(h[j] >> 24);
        out[j * 4 + 1] = (unsigned char)(h[j] >> 16);
        out[j * 4 + 2] = (unsigned char)(h[j] >> 8);
        out[j * 4 + 3] = (unsigned char)h[j];
    }
}

void
ag_ws_accept(const char *key, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char buf[128 + sizeof(guid)], d[21] = {0};
    size_t kl = strnlen(key, 128);
    memcpy(buf, key, kl);
    memcpy(buf + kl, guid, sizeof(guid) - 1);
    sha1(buf, kl + sizeof(guid) - 1, d);
    int o = 0;
    for (int i = 0; i < 21; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = b64[(v >> 6) & 63];
        out[o++] = b64[v & 63];
    }
    out[27] = '='; /* 20 bytes: 27 significant characters and one pad */
    out[28] = 0;
}

int
ag_ws_frame(struct ag_buf *b, int opcode, const void *p, size_t n)
{
    uint8_t h[SBX_WS_HEAD_MAX];
    size_t hl = sbx_ws_head_put(h, opcode, n, NULL);
    if (ag_buf_put(b, h, hl) < 0)
        return -1;
    return ag_buf_put(b, p, n);
}

int
ag_ws_parse(char *buf, size_t n, struct ag_ws_msg *m)
{
    struct sbx_ws_head h;
    int rc = sbx_ws_head_parse(buf, n, &h);
    if (rc <= 0)
        return rc;
    /* Client frames must be masked (§5.1). */
    if (!h.masked || h.len > AG_WS_MAX_PAYLOAD)
        return -1;
    if (n - h.head_len < h.len)
        return 0;
    m->fin = h.fin;
    m->opcode = h.opcode;
    m->payload = buf + h.head_len;
    m->len = (size_t)h.len;
    m->frame_len = h.head_len + m->len;
    sbx_ws_mask(m->payload, m->len, h.mask);
    return 1;
}
