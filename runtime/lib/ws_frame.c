#include "ws_frame.h"

#include <string.h>

int
sbx_ws_head_parse(const void *buf, size_t n, struct sbx_ws_head *h)
{
    const uint8_t *u = buf;
    if (n < 2)
        return 0;
    h->fin = u[0] & 0x80;
    h->opcode = u[0] & 0x0f;
    h->masked = u[1] & 0x80;
    if (u[0] & 0x70)
        return -1;
    if ((h->opcode > SBX_WS_BIN && h->opcode < SBX_WS_CLOSE) || h->opcode > SBX_WS_PONG)
        return -1;
    uint64_t len = u[1] & 0x7f;
    if (h->opcode >= SBX_WS_CLOSE && (len > 125 || !h->fin))
        return -1;
    size_t hl = 2;
    if (len == 126) {
        if (n < 4)
            return 0;
        len = (uint64_t)u[2] << 8 | u[3];
        hl = 4;
    } else if (len == 127) {
        if (n < 10)
            return 0;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | u[2 + i];
        if (len >> 63)
            return -1;
        hl = 10;
    }
    if (h->masked) {
        if (n < hl + 4)
            return 0;
        memcpy(h->mask, u + hl, 4);
        hl += 4;
    }
    h->len = len;
    h->head_len = hl;
    return 1;
}

size_t
sbx_ws_head_put(uint8_t out[SBX_WS_HEAD_MAX], int opcode, uint64_t n, const uint8_t *mask)
{
    size_t hl = 2;
    out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (n < 126) {
        out[1] = (uint8_t)n;
    } else if (n <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(n >> 8);
        out[3] = (uint8_t)n;
        hl = 4;
    } else {
        out[1] = 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(n >> (56 - 8 * i));
        hl = 10;
    }
    if (mask) {
        out[1] |= 0x80;
        memcpy(out + hl, mask, 4);
        hl += 4;
    }
    return hl;
}

void
sbx_ws_mask(void *p, size_t n, const uint8_t mask[4])
{
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] ^= mask[i & 3];
}
