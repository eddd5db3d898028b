/* WebSocket (RFC 6455) pieces for the agent's /pty route: the handshake's accept key and the
 * server's side of framing (frame heads: runtime/lib/ws_frame.c, shared with the client). Pure
 * functions over buffers, so the framing is testable without sockets. */
#ifndef SBX_AGENT_WS_H
#define SBX_AGENT_WS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent_util.h"
#include "ws_frame.h"

#define AG_WS_MAX_PAYLOAD (1u << 20) /* a client frame above this closes the connection */

/* base64(SHA-1(key + RFC 6455 GUID)) into out (29 bytes with the NUL). */
void ag_ws_accept(const char *key, char out[29]);
/* Appends one unmasked, final server frame. */
int ag_ws_frame(struct ag_buf *b, int opcode, const void *p, size_t n);

struct ag_ws_msg {
    int opcode;
    bool fin;
    char *payload; /* unmasked in place, inside the input buffer */
    size_t len;
    size_t frame_len; /* bytes to consume */
};
/* Parses the first frame of buf[0..n): 1 with *m, 0 when incomplete, -1 on a protocol error
 * (unmasked client frame, reserved bits, oversized or fragmented control frame). */
int ag_ws_parse(char *buf, size_t n, struct ag_ws_msg *m);
#endif
