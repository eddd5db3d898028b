#!/bin/bash
# sbx's MCP server: apid's /mcp (streamable HTTP) and the `sbx mcp` stdio bridge (client/mcp.c,
# run through build/bin/sbx-mcp-test), against a real sbx-apid in a throwaway network namespace.
# The official MCP TypeScript SDK client (@modelcontextprotocol/sdk from npm, installed into a
# temporary directory, never globally) lists the tools and calls each one over both transports
# (tests/api/mcp/mcp_flow.mjs); curl checks the JSON-RPC and HTTP error paths and the API key.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/api/api_lib.sh"
BRIDGE=$BIN/sbx-mcp-test
MCP_DIR=$TOP/tests/api/mcp
[ -x "$BRIDGE" ] || { skip "mcp" "build/bin/sbx-mcp-test not built"; finish; }
AGENT=${SBX_APID_AGENT:-$BIN/sbx-agent}
api_prepare "mcp" mcp
before=$(host_snapshot)
trap api_cleanup EXIT
api_netns "mcp" mcp

mkdir -p "$T/images"; chmod 755 "$T/images"
for i in "$SBX_IMAGES"/*/; do ln -s "$i" "$T/images/$(basename "$i")"; done
apid_launch --listen 127.0.0.1:$PORT --data-dir "$DATA" --run-dir "$RUN" \
	--api-key "$KEY" --images-dir "$T/images" --agent "$AGENT" --max-body 262144 ||
	{ not_ok "mcp: apid starts"; finish; }
URL=http://127.0.0.1:$PORT

# post [curl args...] BODY: prints "STATUS BODY" of a POST to /mcp with the key.
post() {
	local body=${*: -1}
	X curl -s -o "$T/out" -w '%{http_code}' -H "OPEN-SANDBOX-API-KEY: $KEY" -H 'Content-Type: application/json' \
		-H 'Accept: application/json, text/event-stream' "${@:1:$#-1}" --data-binary "$body" "$URL/mcp" >"$T/code"
	echo "$(cat "$T/code") $(cat "$T/out")"
}
rpc_code() { printf '%s' "${1#* }" | jq -c '[.error.code, .id]' 2>/dev/null; }
INIT='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}'

# ---- HTTP transport, by hand ----
out=$(X curl -s -D "$T/hdr" -o "$T/out" -w '%{http_code}' -H "OPEN-SANDBOX-API-KEY: $KEY" -H 'Content-Type: application/json' --data-binary "$INIT" "$URL/mcp")
SID=$(grep -i '^mcp-session-id:' "$T/hdr" | tr -d '\r' | awk '{print $2}')
expect_eq "mcp http: initialize answers 200" 200 "$out"
expect_match "mcp http: initialize negotiates 2025-06-18 and names sbx" '"protocolVersion":"2025-06-18".*"tools":\{"listChanged":false\}.*"name":"sbx"' "$(cat "$T/out")"
expect_match "mcp http: initialize issues an Mcp-Session-Id" '^[0-9a-f]{32}$' "$SID"
r=$(post '{"jsonrpc":"2.0","id":"a","method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}')
expect_eq "mcp http: 2025-03-26 is accepted as asked" '"2025-03-26"' "$(printf '%s' "${r#* }" | jq -c .result.protocolVersion)"
r=$(post '{"jsonrpc":"2.0","id":2,"method":"initialize","params":{"protocolVersion":"1999-01-01","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}')
expect_eq "mcp http: an unknown version gets the latest supported" '"2025-06-18"' "$(printf '%s' "${r#* }" | jq -c .result.protocolVersion)"
r=$(post -H "Mcp-Session-Id: $SID" -H 'MCP-Protocol-Version: 2025-06-18' '{"jsonrpc":"2.0","method":"notifications/initialized"}')
expect_eq "mcp http: a notification is 202 with no body" "202 " "$r"
r=$(post -H "Mcp-Session-Id: $SID" '{"jsonrpc":"2.0","id":7,"method":"ping"}')
expect_eq "mcp http: ping in the session" '200 {"jsonrpc":"2.0","id":7,"result":{}}' "$r"
r=$(post '{"jsonrpc":"2.0","id":8,"method":"tools/list"}')
expect_eq "mcp http: tools/list without a session lists 8 tools" 8 "$(printf '%s' "${r#* }" | jq '.result.tools | length')"
r=$(post '[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/x"},{"jsonrpc":"2.0","id":2,"method":"ping"}]')
expect_eq "mcp http: a batch gets an array of the answers" '[1,2]' "$(printf '%s' "${r#* }" | jq -c '[.[].id]')"

# Malformed JSON-RPC: JSON-RPC errors, never a dropped connection.
r=$(post '{"jsonrpc":"2.0","id":1,"method":')
expect_eq "mcp http: bad JSON is a -32700 parse error (400)" '400 [-32700,null]' "${r%% *} $(rpc_code "$r")"
r=$(post '"just a string"')
expect_eq "mcp http: a non-object is -32600" '400 [-32600,null]' "${r%% *} $(rpc_code "$r")"
r=$(post '[]')
expect_eq "mcp http: an empty batch is -32600" '400 [-32600,null]' "${r%% *} $(rpc_code "$r")"
r=$(post '{"jsonrpc":"1.0","id":3,"method":"ping"}')
expect_eq "mcp http: jsonrpc other than 2.0 is -32600" '400 [-32600,3]' "${r%% *} $(rpc_code "$r")"
r=$(post '{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}')
expect_eq "mcp http: an object id is -32600" '400 [-32600,null]' "${r%% *} $(rpc_code "$r")"
r=$(post '{"jsonrpc":"2.0","id":4,"method":7}')
expect_eq "mcp http: a non-string method is -32600" '400 [-32600,4]' "${r%% *} $(rpc_code "$r")"
r=$(post '{"jsonrpc":"2.0","id":5,"method":"resources/list"}')
expect_eq "mcp http: an unknown method is -32601" '200 [-32601,5]' "${r%% *} $(rpc_code "$r")"
r=$(post '{"jsonrpc":"2.0","id":6,"method":"tools/call","params":[1,2]}')
expect_eq "mcp http: array params are -32602" '200 [-32602,6]' "${r%% *} $(rpc_code "$r")"
r=$(post '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"nope","arguments":{}}}')
expect_eq "mcp http: an unknown tool is -32602" '200 [-32602,7]' "${r%% *} $(rpc_code "$r")"
r=$(post '{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"run_command","arguments":"x"}}')
expect_eq "mcp http: non-object arguments are -32602" '200 [-32602,8]' "${r%% *} $(rpc_code "$r")"
r=$(post '{"jsonrpc":"2.0","id":9,"method":"initialize","params":{}}')
expect_eq "mcp http: initialize without protocolVersion is -32602" '200 [-32602,9]' "${r%% *} $(rpc_code "$r")"
r=$(post '{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"delete_sandbox","arguments":{"sandbox_id":"../../etc"}}}')
expect_eq "mcp http: a tool error is a result with isError" 'true' "$(printf '%s' "${r#* }" | jq -c '.result.isError')"
expect_match "mcp http: ... and a message" 'not found' "$(printf '%s' "${r#* }" | jq -r '.result.content[0].text')"
{ printf '{"jsonrpc":"2.0","id":11,"method":"ping","params":{"pad":"'; head -c 300000 /dev/zero | tr '\0' a; printf '"}}'; } >"$T/big.json"
r=$(post @"$T/big.json")
expect_eq "mcp http: a body over --max-body is 413 with a JSON-RPC error" '413 [-32600,null]' "${r%% *} $(rpc_code "$r")"
r=$(post -H 'Mcp-Session-Id: 0123456789abcdef0123456789abcdef' '{"jsonrpc":"2.0","id":12,"method":"ping"}')
expect_eq "mcp http: an unknown session is 404" 404 "${r%% *}"
r=$(post -H 'MCP-Protocol-Version: 2001-01-01' '{"jsonrpc":"2.0","id":13,"method":"ping"}')
expect_eq "mcp http: an unsupported MCP-Protocol-Version is 400" 400 "${r%% *}"
r=$(post -H 'Origin: http://198.18.0.1' '{"jsonrpc":"2.0","id":14,"method":"ping"}')
expect_eq "mcp http: a foreign Origin is refused (DNS rebinding)" 403 "${r%% *}"
r=$(post -H 'Origin: http://localhost:6274' '{"jsonrpc":"2.0","id":15,"method":"ping"}')
expect_eq "mcp http: a loopback Origin is let through" 200 "${r%% *}"
expect_eq "mcp http: GET (no server stream) is 405" 405 "$(X curl -s -o /dev/null -w '%{http_code}' -H "OPEN-SANDBOX-API-KEY: $KEY" -H 'Accept: text/event-stream' "$URL/mcp")"
# Auth: the API key like every other route; the bearer form for MCP clients.
expect_eq "mcp http: no API key is 401" 401 "$(X curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "$INIT" "$URL/mcp")"
expect_eq "mcp http: a wrong API key is 401" 401 "$(X curl -s -o /dev/null -w '%{http_code}' -H 'OPEN-SANDBOX-API-KEY: wrong' --data-binary "$INIT" "$URL/mcp")"
expect_eq "mcp http: a wrong bearer token is 401" 401 "$(X curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer wrong' --data-binary "$INIT" "$URL/mcp")"
expect_eq "mcp http: the key as a bearer token is accepted" 200 "$(X curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $KEY" --data-binary "$INIT" "$URL/mcp")"
expect_eq "mcp http: the bearer form is for /mcp only" 401 "$(X curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $KEY" "$URL/v1/sandboxes")"
expect_eq "mcp http: DELETE ends the session" 204 "$(X curl -s -o /dev/null -w '%{http_code}' -X DELETE -H "OPEN-SANDBOX-API-KEY: $KEY" -H "Mcp-Session-Id: $SID" "$URL/mcp")"
r=$(post -H "Mcp-Session-Id: $SID" '{"jsonrpc":"2.0","id":16,"method":"ping"}')
expect_eq "mcp http: an ended session is 404" 404 "${r%% *}"

# ---- the stdio bridge, by hand ----
out=$(printf '%s\n' "$INIT" '{"jsonrpc":"2.0","method":"notifications/initialized"}' '{"jsonrpc":"2.0","id":2,"method":"ping"}' \
	'{bad json' '' '{"jsonrpc":"2.0","id":3,"method":"tools/list"}' |
	X env SBX_URL="$URL" SBX_API_KEY="$KEY" timeout 30 "$BRIDGE" 2>"$T/bridge.err")
expect_eq "mcp stdio: one answer line per request (none for the notification or blank line)" 4 "$(printf '%s\n' "$out" | grep -c .)"
expect_eq "mcp stdio: answers are JSON-RPC lines" '[1,2,null,3]' "$(printf '%s\n' "$out" | jq -sc 'sort_by(.id // 2.5) | [.[].id]')"
expect_eq "mcp stdio: bad JSON gets -32700 through the bridge" '-32700' "$(printf '%s\n' "$out" | jq -s '.[] | select(.id == null) | .error.code')"
expect_eq "mcp stdio: tools/list through the bridge" 8 "$(printf '%s\n' "$out" | jq -s '.[] | select(.id == 3) | .result.tools | length')"
out=$(printf '%s\n' "$INIT" | X env SBX_URL="$URL" SBX_API_KEY=wrong timeout 30 "$BRIDGE" 2>"$T/bridge.err")
expect_match "mcp stdio: a wrong key is a JSON-RPC error naming it" '"id":1.*"code":-32000.*401.*API key' "$out"
expect_match "mcp stdio: ... and logged on stderr" 'API key' "$(cat "$T/bridge.err")"
out=$(printf '%s\n' "$INIT" | X env SBX_URL="http://127.0.0.1:1" SBX_API_KEY="$KEY" timeout 30 "$BRIDGE" 2>/dev/null)
expect_match "mcp stdio: apid down is a JSON-RPC error, not an exit" '"id":1.*"code":-32000.*cannot reach sbx-apid' "$out"

# A server that answers in SSE (apid never does; other MCP servers may): one notification event
# and the answer, each message over several data lines, CRLF line ends.
SSE_PORT=$(free_port)
cat >"$T/sse.py" <<'EOPY'
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        out = b""
        for m in ({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "x"}},
                  {"jsonrpc": "2.0", "id": req.get("id"), "result": {"sse": True}}):
            lines = "".join("data: %s\r\n" % l for l in json.dumps(m, indent=1).split("\n"))
            out += ("event: message\r\n%s\r\n" % lines).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOPY
nsenter --net=/run/netns/$NS python3 "$T/sse.py" $SSE_PORT &
SSE_PID=$!
for _ in $(seq 100); do X bash -c "echo >/dev/tcp/127.0.0.1/$SSE_PORT" 2>/dev/null && break; sleep 0.05; done
out=$(printf '%s\n' '{"jsonrpc":"2.0","id":41,"method":"ping"}' | X env SBX_URL="http://127.0.0.1:$SSE_PORT" timeout 30 "$BRIDGE" 2>/dev/null)
expect_eq "mcp stdio: an SSE answer becomes one line per event" '["notifications/message",41]' "$(printf '%s\n' "$out" | jq -sc '[.[0].method, .[1].id]')"
kill "$SSE_PID" 2>/dev/null; wait "$SSE_PID" 2>/dev/null

# ---- the official SDK client over both transports ----
cp "$MCP_DIR/package.json" "$MCP_DIR/mcp_flow.mjs" "$T/"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	skip "mcp sdk" "node/npm not installed (scripts/install-deps.sh)"
elif ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 18 ? 0 : 1)'; then
	skip "mcp sdk" "node >= 18 needed by @modelcontextprotocol/sdk"
elif ! (cd "$T" && timeout 180 npm install --no-audit --no-fund --loglevel=error >npm.log 2>&1); then
	skip "mcp sdk" "npm install @modelcontextprotocol/sdk failed: $(tail -1 "$T/npm.log")"
else
	ok "mcp sdk: npm install @modelcontextprotocol/sdk"
	for mode in stdio http; do
		(cd "$T" && X timeout 300 node mcp_flow.mjs $mode "$URL" "$KEY" "$BRIDGE") 2>&1 | tee "$T/flow-$mode.out"
		grep -q '^not ok' "$T/flow-$mode.out" && _failed=1
		grep -q "^ok - mcp $mode: close\$" "$T/flow-$mode.out" || not_ok "mcp $mode: the flow ran to the end"
	done
fi

left=$(X curl -s -H "OPEN-SANDBOX-API-KEY: $KEY" "$URL/v1/sandboxes?state=Running&state=Pending" | jq '.items | length')
expect_eq "mcp: no sandbox left running" 0 "$left"
kill -TERM "$APID_PID" 2>/dev/null; wait "$APID_PID" 2>/dev/null; APID_PID=
grep -q 'AddressSanitizer\|runtime error' "$T/apid.log" && { not_ok "mcp: apid sanitizer report"; grep -m5 'Sanitizer\|runtime error' "$T/apid.log"; }
ip netns del $NS 2>/dev/null
rm -rf "$T"
expect_eq "mcp: nothing leaked on the host" "$before" "$(host_snapshot)"
finish
