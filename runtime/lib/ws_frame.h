/* WebSocket (RFC 6455 §5.2) frame heads, the one copy that both ends use: the agent's GET /pty
 * server (apid/agent/agent_ws.c) and `sbx exec -it` (client/tty.c). libc only: the static agent
 * compiles it too. Policy (who must mask, the largest payload, fragmentation) stays with the
 * callers. */
#ifndef SBX_WS_FRAME_H
#define SBX_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SBX_WS_HEAD_MAX 14 /* 2 + 8 (64-bit length) + 4 (masking key) */

enum {
    SBX_WS_CONT = 0,
    SBX_WS_TEXT = 1,
    SBX_WS_BIN = 2,
    SBX_WS_CLOSE = 8,
    SBX_WS_PING = 9,
    SBX_WS_PONG = 10
};

struct sbx_ws_head {
    bool fin, masked;
    int opcode;
    uint8_t mask[4];
    uint64_t len;    /* payload bytes */
    size_t head_len; /* bytes before the payload, masking key included */
};

/* Reads the head of the frame at buf[0..n): 1 with *h, 0 when more bytes are needed, -1 on a
 * frame no peer may send: a reserved bit set (no extension is ever negotiated), a reserved
 * opcode, a control frame that is fragmented or longer than 125 bytes, a 64-bit length with its
 * top bit set. The payload need not be there yet (h->head_len + h->len bytes make the frame). */
int sbx_ws_head_parse(const void *buf, size_t n, struct sbx_ws_head *h);

/* Writes the head of a final frame of n payload bytes into out, masked with mask when it is not
 * NULL (a client's frames must be, a server's must not); returns its length. */
size_t sbx_ws_head_put(uint8_t out[SBX_WS_HEAD_MAX], int opcode, uint64_t n, const uint8_t *mask);

/* XORs p[0..n) with the masking key (masking and unmasking are the same). */
void sbx_ws_mask(void *p, size_t n, const uint8_t mask[4]);

#endif
