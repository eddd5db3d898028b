/* fuzz_agent_ws: the agent's WebSocket frame reader (apid/agent/agent_ws.c), which reads what a
 * terminal client sends to GET /pty. The input is a stream of client frames, parsed in a loop as
 * the agent does, whole and again in pieces (sizes from the input, deterministic).
 * Checks: a parsed frame lies inside the bytes read, its payload inside the frame and never over
 * AG_WS_MAX_PAYLOAD; control frames are final and at most 125 bytes; an incomplete prefix of a
 * frame is never taken for a frame or an error that the whole frame is not; both ways agree. */
#include "agent_ws.h"
#include "fuzz.h"

/* Parses frames out of buf[0..n) in place; returns how many bytes were consumed, -1 on error. */
static long
run(char *buf, size_t n, unsigned *frames)
{
    size_t off = 0;
    *frames = 0;
    for (;;) {
        struct ag_ws_msg m;
        int rc = ag_ws_parse(buf + off, n - off, &m);
        if (rc < 0)
            return -1;
        if (rc == 0)
            return (long)off;
        FUZZ_CHECK(m.frame_len <= n - off && m.frame_len >= 6);
        FUZZ_CHECK(m.payload >= buf + off && m.payload + m.len == buf + off + m.frame_len);
        FUZZ_CHECK(m.len <= AG_WS_MAX_PAYLOAD);
        FUZZ_CHECK(m.opcode < 8 || (m.fin && m.len <= 125));
        /* Every strict prefix of this frame is "incomplete", not a frame nor an error. */
        for (size_t k = 0; k < m.frame_len && k < 16; k++) {
            struct ag_ws_msg p;
            FUZZ_CHECK(ag_ws_parse(buf + off, k, &p) == 0);
        }
        off += m.frame_len;
        (*frames)++;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *a = malloc(size + 1), *b = malloc(size + 1);
    memcpy(a, data, size);
    memcpy(b, data, size);
    unsigned fa, fb;
    long ra = run(a, size, &fa);
    /* The same bytes fed in growing pieces, as reads from a socket arrive. */
    size_t have = 0, step = size ? (data[0] % 7) + 1 : 1;
    long rb = 0;
    unsigned total = 0;
    size_t base = 0;
    while (have < size) {
        have = have + step > size ? size : have + step;
        unsigned f;
        long r = run(b + base, have - base, &f);
        if (r < 0) {
            rb = -1;
            break;
        }
        base += (size_t)r;
        total += f;
        rb = (long)base;
    }
    fb = total;
    FUZZ_CHECK((ra < 0) == (rb < 0));
    if (ra >= 0)
        FUZZ_CHECK(ra == rb && fa == fb);
    free(a);
    free(b);
    return 0;
}
