/* apid's MCP server (apid/mcp.c) without a daemon: JSON-RPC framing and errors, version
 * negotiation, sessions, the HTTP-level refusals, the tool table's schemas, and argument errors
 * that are answered before any sandbox is looked up. */
#include "mcp.h"
#include "unit.h"

static struct apid_ctx mctx;

static json_t *
mcp(const char *method, const char *session, const char *body, int *status, char sid[65])
{
    static bool init;
    if (!init) {
        apid_mcp_init(&mctx);
        init = true;
    }
    struct apid_mcp_req q = {
        .method = method, .session = session, .body = body, .len = body ? strlen(body) : 0};
    struct apid_mcp_reply a;
    apid_mcp_handle(&q, &a);
    *status = a.status;
    if (sid)
        memcpy(sid, a.session, 65);
    json_t *j = a.body ? json_loads(a.body, JSON_DECODE_ANY, NULL) : NULL;
    if (a.body)
        CU_ASSERT_PTR_NOT_NULL(j); /* every body is JSON */
    apid_mcp_reply_free(&a);
    return j;
}

static int
err_code(json_t *j)
{
    return (int)json_integer_value(json_object_get(json_object_get(j, "error"), "code"));
}

#define INIT(v)                                                                                    \
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"" v \
    "\",\"capabilities\":{},\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}"

UNIT_TEST(apid_mcp, malformed_jsonrpc)
{
    static const struct {
        const char *body;
        int status, code;
    } cases[] = {
        {"{\"jsonrpc\":\"2.0\",", 400, -32700},
        {"", 400, -32700},
        {"42", 400, -32600},
        {"[]", 400, -32600},
        {"{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}", 400, -32600},
        {"{\"id\":1,\"method\":\"ping\"}", 400, -32600},
        {"{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}", 400, -32600},
        {"{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"ping\"}", 400, -32600},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":{}}", 400, -32600},
        {"{\"jsonrpc\":\"2.0\",\"id\":1}", 400, -32600},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"prompts/list\"}", 200, -32601},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":7}", 200, -32602},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{}}", 200, -32602},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"x\"}}",
         200, -32602},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
         "\"read_file\",\"arguments\":[]}}",
         200, -32602},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{}}", 200, -32602},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        int st;
        json_t *j = mcp("POST", NULL, cases[i].body, &st, NULL);
        CU_ASSERT_EQUAL(st, cases[i].status);
        CU_ASSERT_EQUAL(err_code(j), cases[i].code);
        if (st != cases[i].status || err_code(j) != cases[i].code)
            fprintf(stderr, "case %zu: %d %d\n", i, st, err_code(j));
        json_decref(j);
    }
}

UNIT_TEST(apid_mcp, notifications_and_batches)
{
    int st;
    json_t *j = mcp("POST", NULL, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}",
                    &st, NULL);
    CU_ASSERT_EQUAL(st, 202);
    CU_ASSERT_PTR_NULL(j);
    /* A response from the client (to a request the server never sends) is accepted too. */
    j = mcp("POST", NULL, "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}", &st, NULL);
    CU_ASSERT_EQUAL(st, 202);
    j = mcp("POST", NULL,
            "[{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"ping\"},{\"jsonrpc\":\"2.0\","
            "\"method\":\"notifications/x\"},{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"nope\"}]",
            &st, NULL);
    CU_ASSERT_EQUAL(st, 200);
    CU_ASSERT_EQUAL(json_array_size(j), 2);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(json_array_get(j, 0), "id")), "a");
    CU_ASSERT_EQUAL(err_code(json_array_get(j, 1)), -32601);
    json_decref(j);
    j = mcp("POST", NULL, "[" INIT("2025-03-26") "]", &st, NULL);
    CU_ASSERT_EQUAL(err_code(json_array_get(j, 0)), -32600); /* initialize is never batched */
    json_decref(j);
}

UNIT_TEST(apid_mcp, initialize_and_sessions)
{
    int st;
    char sid[65];
    json_t *j = mcp("POST", NULL, INIT("2025-03-26"), &st, sid);
    CU_ASSERT_EQUAL(st, 200);
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_object_get(json_object_get(j, "result"), "protocolVersion")),
        "2025-03-26");
    CU_ASSERT_EQUAL(strlen(sid), 32);
    json_decref(j);
    j = mcp("POST", NULL, INIT("2099-01-01"), &st, NULL);
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_object_get(json_object_get(j, "result"), "protocolVersion")),
        "2025-06-18");
    json_decref(j);
    const char *ping = "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"ping\"}";
    j = mcp("POST", sid, ping, &st, NULL);
    CU_ASSERT_EQUAL(st, 200);
    CU_ASSERT_TRUE(json_is_object(json_object_get(j, "result")));
    json_decref(j);
    json_decref(mcp("POST", "ffffffffffffffffffffffffffffffff", ping, &st, NULL));
    CU_ASSERT_EQUAL(st, 404);
    json_decref(mcp("DELETE", sid, NULL, &st, NULL));
    CU_ASSERT_EQUAL(st, 204);
    json_decref(mcp("POST", sid, ping, &st, NULL));
    CU_ASSERT_EQUAL(st, 404);
    json_decref(mcp("DELETE", sid, NULL, &st, NULL));
    CU_ASSERT_EQUAL(st, 404);
    json_decref(mcp("DELETE", NULL, NULL, &st, NULL));
    CU_ASSERT_EQUAL(st, 400);
    json_decref(mcp("GET", NULL, NULL, &st, NULL));
    CU_ASSERT_EQUAL(st, 405);
}

UNIT_TEST(apid_mcp, http_guards)
{
    const char *ping = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}";
    static const struct {
        const char *origin, *protocol;
        int status;
    } cases[] = {
        {NULL, NULL, 200},
        {"http://localhost:6274", NULL, 200},
        {"http://127.0.0.1", NULL, 200},
        {"http://[::1]:80", "2025-06-18", 200},
        {"http://localhost.evil.example", NULL, 403},
        {"http://198.18.0.1", NULL, 403},
        {"null", NULL, 403},
        {NULL, "2024-11-05", 200},
        {NULL, "2025-01-01", 400},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct apid_mcp_req q = {.method = "POST",
                                 .origin = cases[i].origin,
                                 .protocol = cases[i].protocol,
                                 .body = ping,
                                 .len = strlen(ping)};
        struct apid_mcp_reply a;
        apid_mcp_handle(&q, &a);
        CU_ASSERT_EQUAL(a.status, cases[i].status);
        if (a.status != cases[i].status)
            fprintf(stderr, "case %zu: %d\n", i, a.status);
        apid_mcp_reply_free(&a);
    }
}

UNIT_TEST(apid_mcp, tool_table)
{
    int st;
    json_t *j =
        mcp("POST", NULL, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}", &st, NULL);
    json_t *tools = json_object_get(json_object_get(j, "result"), "tools");
    CU_ASSERT_EQUAL(json_array_size(tools), 8);
    size_t i;
    json_t *t;
    json_array_foreach (tools, i, t) {
        json_t *s = json_object_get(t, "inputSchema");
        json_t *props = json_object_get(s, "properties");
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(s, "type")), "object");
        CU_ASSERT_TRUE(json_is_object(props));
        CU_ASSERT_TRUE(strlen(json_string_value(json_object_get(t, "description"))) > 40);
        size_t k;
        json_t *req;
        json_array_foreach (json_object_get(s, "required"), k, req) /* required ⊂ properties */
            CU_ASSERT_PTR_NOT_NULL(json_object_get(props, json_string_value(req)));
    }
    json_decref(j);
}

/* Argument errors are tool results (isError) naming the argument, found before any lookup. */
UNIT_TEST(apid_mcp, argument_errors)
{
    static const struct {
        const char *tool, *args, *msg;
    } cases[] = {
        {"run_command", "{\"sandbox_id\":\"x\"}", "argument `command` is required"},
        {"run_command", "{\"sandbox_id\":\"x\",\"command\":\"true\",\"timeout\":0}", "`timeout`"},
        {"run_command", "{\"sandbox_id\":\"x\",\"command\":\"true\",\"env\":{\"A\":1}}", "`env`"},
        {"run_command", "{\"sandbox_id\":\"x\",\"command\":\"true\",\"max_output_bytes\":5}",
         "`max_output_bytes`"},
        {"run_code", "{\"sandbox_id\":\"x\",\"language\":\"cobol\",\"code\":\"x\"}", "`language`"},
        {"read_file", "{\"sandbox_id\":\"x\",\"path\":\"/a\",\"max_bytes\":1.5}", "`max_bytes`"},
        {"write_file", "{\"sandbox_id\":\"x\",\"path\":\"/a\"}", "`content`"},
        {"write_file",
         "{\"sandbox_id\":\"x\",\"path\":\"/a\",\"content\":\"!\",\"encoding\":"
         "\"base64\"}",
         "not valid base64"},
        {"write_file", "{\"sandbox_id\":\"x\",\"path\":\"/a\",\"content\":\"\",\"mode\":\"9\"}",
         "`mode`"},
        {"list_directory", "{\"sandbox_id\":\"x\",\"path\":\"/\",\"depth\":99}", "`depth`"},
        {"create_sandbox", "{\"network\":\"wifi\"}", "`network`"},
        {"create_sandbox", "{\"imag\":\"x\"}", "unknown argument `imag`"},
        {"list_sandboxes", "{\"state\":\"Sleeping\"}", "`state`"},
        {"delete_sandbox", "{\"sandbox_id\":\"../x\"}", "not found"},
        {"delete_sandbox", "{}", "`sandbox_id` is required"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        cleanup_free char *body = xasprintf(
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"%s\","
            "\"arguments\":%s}}",
            cases[i].tool, cases[i].args);
        int st;
        json_t *j = mcp("POST", NULL, body, &st, NULL);
        json_t *res = json_object_get(j, "result");
        const char *text = json_string_value(
            json_object_get(json_array_get(json_object_get(res, "content"), 0), "text"));
        CU_ASSERT_EQUAL(st, 200);
        CU_ASSERT_TRUE(json_is_true(json_object_get(res, "isError")));
        CU_ASSERT_TRUE(text && strstr(text, cases[i].msg));
        if (!text || !strstr(text, cases[i].msg))
            fprintf(stderr, "case %zu: %s\n", i, text ? text : "(none)");
        json_decref(j);
    }
}
