/* fuzz_json: the JSON the sbx-agent writes from bytes a workload controls. A command's output
 * lines become the text of its events (ag_event_encode(), apid/agent/agent_stream.c, through
 * sbx_json_text() of runtime/lib/strutil.c, which apid's MCP tools use too); file names, user
 * names and paths go through the same function. Request bodies are read by jansson. The input's
 * first byte picks the event (stdout, stderr, an error with the rest as its traceback), the rest
 * is the text.
 * Checks: the event is one line of JSON ending in a blank line; jansson reads it back; its text is
 * the input itself when that is UTF-8 and otherwise the input with each byte that is not part of
 * a valid sequence replaced by U+FFFD, every valid sequence kept in order. */
#include "agent_stream.h"
#include "fuzz.h"

/* The expected text: the valid sequences of in, U+FFFD for each other byte. */
static size_t
expected(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        json_t *one = NULL;
        size_t len = in[i] < 0x80 ? 1 : in[i] >= 0xf0 ? 4 : in[i] >= 0xe0 ? 3 : 2;
        if (i + len <= n)
            one = json_stringn((const char *)in + i, len); /* jansson's own UTF-8 check */
        if (one && (in[i] < 0x80 || in[i] >= 0xc0)) {
            memcpy(out + o, in + i, len);
            o += len;
            i += len;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
        json_decref(one);
    }
    return o;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    struct ag_event ev = {.type = data[0] % 3 == 0 ? "stdout" : "stderr",
                          .text = text,
                          .textlen = n,
                          .timestamp = 1,
                          .execution_time = -1};
    char *tb = NULL;
    if (data[0] % 3 == 2) { /* an error event: the text as its traceback, a C string */
        tb = fuzz_cstr((const uint8_t *)text, n);
        ev = (struct ag_event){.type = "error",
                               .timestamp = 1,
                               .execution_time = -1,
                               .ename = "CommandExecError",
                               .evalue = "1",
                               .traceback = tb};
        n = strlen(tb);
    }
    struct ag_buf b = {0};
    FUZZ_CHECK(ag_event_encode(&b, &ev) == 0);
    FUZZ_CHECK(b.len >= 3 && memcmp(b.p + b.len - 3, "}\n\n", 3) == 0);
    FUZZ_CHECK(memchr(b.p, '\n', b.len) == b.p + b.len - 2);
    json_error_t e;
    json_t *j = json_loadb(b.p, b.len - 2, JSON_ALLOW_NUL, &e);
    if (j == NULL)
        fprintf(stderr, "fuzz_json: `%.*s` does not parse: %s\n", (int)b.len, b.p, e.text);
    FUZZ_CHECK(j != NULL);
    json_t *t = tb ? json_array_get(json_object_get(json_object_get(j, "error"), "traceback"), 0)
                   : json_object_get(j, "text");
    const uint8_t *in = tb ? (const uint8_t *)tb : (const uint8_t *)text;
    char *want = malloc(3 * n + 1);
    FUZZ_CHECK(want != NULL);
    size_t wn = n == 0 && !tb ? 1 : expected(in, n, want);
    if (n == 0 && !tb)
        want[0] = '\n'; /* an empty line is sent as "\n" (contract §B.5) */
    FUZZ_CHECK(json_is_string(t) && json_string_length(t) == wn &&
               memcmp(json_string_value(t), want, wn) == 0);
    free(want);
    json_decref(j);
    ag_buf_free(&b);
    free(tb);
    return 0;
}
