/* Wire-format pieces: output line splitting, execd stream events, chunked request decoding. */
#ifndef SBX_AGENT_STREAM_H
#define SBX_AGENT_STREAM_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent_util.h"

/* Longest line held back before it is emitted anyway, so a process that prints without newlines
 * cannot grow the agent's memory without bound. */
#define AG_LINE_MAX (64 * 1024)

typedef int (*ag_line_cb)(void *u, const char *line, size_t n);

/* Splits on \n, \r and \r\n (one terminator); partial lines are carried across feeds. */
struct ag_lsplit {
    struct ag_buf part;
    bool last_cr;
};
int ag_lsplit_feed(struct ag_lsplit *ls, const char *p, size_t n, ag_line_cb cb, void *u);
/* Emits a pending unterminated fragment (process exit). */
int ag_lsplit_flush(struct ag_lsplit *ls, ag_line_cb cb, void *u);
void ag_lsplit_free(struct ag_lsplit *ls);

/* One execd event: `<compact json>\n\n`. NULL/negative fields are omitted. An empty stdout/stderr
 * line is sent as text "\n" (contract §B.5). */
struct ag_event {
    const char *type;
    const char *text;
    size_t textlen;
    int64_t timestamp;
    int64_t execution_time; /* < 0: omitted */
    const char *ename, *evalue, *traceback;
};
int ag_event_encode(struct ag_buf *out, const struct ag_event *ev);

/* Transfer-Encoding: chunked decoder. */
struct ag_chunked {
    int st;
    uint64_t left;
    int ndigits;
};
typedef int (*ag_data_cb)(void *u, const char *p, size_t n);
/* Consumes from in; returns 1 when the terminating chunk and trailers were read, 0 when it
 * needs more, -1 on a framing error; a callback error (<0) is returned as -2. */
int ag_chunked_feed(struct ag_chunked *c, const char *in, size_t n, size_t *consumed, ag_data_cb cb,
                    void *u);

#endif
