#!/bin/bash
# Black-box tests of sbx-apid's OpenHands Remote Runtime API (docs/openhands.md): the request
# sequences of OpenHands' SDK (APIRemoteWorkspace), app server (RemoteSandboxService) and legacy
# RemoteRuntime replayed against a real apid, with a stand-in agent server (oh_standin.py, run by
# python3 from the local/host image) behind the path-mode proxy: readiness, session reuse,
# pause/resume/stop, /list and /sessions/batch, 404s, the sibling vscode/work-N URLs, HTTP and
# WebSocket, run_as_user, auth, bad input, survival of an apid restart, nothing leaked.
# apid creates its bridge and nftables table in the network namespace it runs in: run this whole
# script in a private one (lo only), never in the host's.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/api/api_lib.sh"
api_private_netns "$@"
HERE=$(cd "$(dirname "$0")" && pwd)
[ -d "$SBX_IMAGES/host" ] || { skip "openhands" "no local/host image (make rootfs)"; finish; }
[ -x "$SBX_IMAGES/host/rootfs/usr/bin/python3" ] || [ -x /usr/bin/python3 ] ||
	{ skip "openhands" "no /usr/bin/python3 for the stand-in agent server"; finish; }
command -v jq >/dev/null || { skip "openhands" "jq not installed"; finish; }
api_prepare "openhands" oh
SERVER=$(cat "$HERE/oh_standin.py")
before=$(host_snapshot)

start_apid() {
	apid_launch --listen 127.0.0.1:$PORT --data-dir "$DATA" --run-dir "$RUN" --agent "$AGENT" \
		--api-key "$KEY" --max-memory 1Gi "$@"
}
trap api_cleanup EXIT

# oh METHOD PATH [BODY] [curl args...]: a runtime-API call as OpenHands makes it (X-API-Key, and
# the stray X-Session-API-Key its shared HTTP client carries); sets CODE, BODY.
oh() {
	local m=$1 p=$2 b=${3-}; shift 3 2>/dev/null || shift $#
	local args=(-s -X "$m" -o "$T/body" -w '%{http_code}' -H "X-Session-API-Key: stray")
	case "$*" in *X-API-Key*) ;; *) args+=(-H "X-API-Key: $KEY") ;; esac
	[ -n "$b" ] && args+=(-H 'Content-Type: application/json' --data-binary "$b")
	CODE=$(curl "${args[@]}" "$@" "$BASE$p"); BODY=$(cat "$T/body")
}
# get URL [curl args...]: a plain request (no apid key) through the path-mode proxy
get() {
	local u=$1; shift
	CODE=$(curl -s -o "$T/body" -w '%{http_code}' "$@" "$u"); BODY=$(cat "$T/body")
}
# expect_detail NAME STATUS: the last reply has STATUS and a JSON object body with a detail
expect_detail() {
	expect_eq "$1" "$2 string" "$CODE $(jqb '.detail | type')"
}
# wait_ready SID [PATH]: polls GET /sessions/SID (or PATH) like the SDK until pod_status is ready
wait_ready() {
	local p=${2:-/sessions/$1}
	for _ in $(seq 150); do
		oh GET "$p"
		[ "$CODE" = 200 ] || return 1
		[ "$(jqb .pod_status)" = ready ] && return 0
		case $(jqb .pod_status) in failed | unknown | crashloopbackoff) return 1 ;; esac
		sleep 0.2
	done
	return 1
}
# ws URL-PATH AUTH-KEY MESSAGE: a WebSocket client through apid; prints the frames it got
ws() {
	python3 - "$PORT" "$1" "$2" "$3" <<'EOF'
import base64, json, os, socket, struct, sys
port, path, key, msg = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
s = socket.create_connection(("127.0.0.1", port), timeout=10)
k = base64.b64encode(os.urandom(16)).decode()
s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, k)).encode())
f = s.makefile("rb")
status = f.readline().split()[1].decode()
while f.readline() not in (b"\r\n", b""):
    pass
def send(d):
    m = os.urandom(4)
    s.sendall(bytes([0x81, 0x80 | len(d)]) + m + bytes(b ^ m[i % 4] for i, b in enumerate(d)))
def recv():
    h = f.read(2)
    if len(h) < 2:
        return "EOF"
    return f.read(h[1] & 127).decode()
out = [status]
if status == "101":
    send(json.dumps({"type": "auth", "session_api_key": key}).encode())
    r = recv()
    out.append(r)
    if r == "authed":
        send(msg.encode())
        out.append(recv())
print(" ".join(out))
EOF
}
sbx_limit() { # ID memory → the memory limit of the sandbox's cgroup (v2, or the v1 hierarchy)
	local pid cg
	pid=$(jq -r .pid "$RUN/$1/state.json" 2>/dev/null)
	if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
		cg=$(awk -F: '$1=="0"{print $3}' /proc/$pid/cgroup 2>/dev/null)
		cat "/sys/fs/cgroup$cg/memory.max" 2>/dev/null
	else
		cg=$(awk -F: '$2=="memory"{print $3}' /proc/$pid/cgroup 2>/dev/null)
		cat "/sys/fs/cgroup/memory$cg/memory.limit_in_bytes" 2>/dev/null
	fi
}
count_sandboxes() {
	curl -s -H "OPEN-SANDBOX-API-KEY: $KEY" "$BASE/v1/sandboxes?pageSize=200" | jq -r '.items | length'
}

start_apid || { not_ok "apid starts"; finish; }
ok "apid starts"

# ---- auth: X-API-Key, constant-time compare in apid; the lifecycle header does not count
CODE=$(curl -s -o "$T/body" -w '%{http_code}' "$BASE/list"); BODY=$(cat "$T/body")
expect_detail "GET /list without X-API-Key → 401 with detail" 401
oh GET /list "" -H "X-API-Key: wrong-$KEY"
expect_detail "GET /list with a wrong X-API-Key → 401" 401
oh GET /list "" -H "X-API-Key: ${KEY%?}"
expect_detail "GET /list with a key one character short → 401" 401
oh GET /list "" -H "X-API-Key: x" -H "OPEN-SANDBOX-API-KEY: $KEY"
expect_detail "the lifecycle API's header does not authorize the runtime API" 401
oh POST /start '{"image":"local/host","command":"true"}' -H "X-API-Key: nope"
expect_detail "POST /start with a wrong key → 401" 401
expect_eq "nothing created by unauthorized starts" 0 "$(count_sandboxes)"
oh GET /list
expect_eq "GET /list with the key and a stray X-Session-API-Key → 200, empty" "200 0 0" "$CODE $(jqb '.runtimes | length') $(jqb .total)"

# ---- bad input: JSON 4xx with detail, nothing created
oh POST /start '[1,2]'
expect_detail "/start with a non-object body → 400" 400
oh POST /start '{"image":'
expect_detail "/start with bad JSON → 400" 400
oh POST /start '{"command":"true"}'
expect_detail "/start without image → 400" 400
oh POST /start '{"image":"local/host"}'
expect_detail "/start without command → 400" 400
oh POST /start '{"image":"local/host","command":[1]}'
expect_detail "/start with a non-string command element → 400" 400
oh POST /start '{"image":"local/host","command":"true","environment":["A=1"]}'
expect_detail "/start with a list environment → 400" 400
oh POST /start '{"image":"local/host","command":"true","environment":{"A":1}}'
expect_detail "/start with a non-string environment value → 400" 400
oh POST /start '{"image":"local/host","command":"true","working_dir":"relative"}'
expect_detail "/start with a relative working_dir → 400" 400
oh POST /start '{"image":"local/host","command":"true","run_as_user":-1}'
expect_detail "/start with run_as_user -1 → 400" 400
oh POST /start '{"image":"local/host","command":"true","run_as_user":"10001"}'
expect_detail "/start with a string run_as_user → 400" 400
oh POST /start '{"image":"local/host","command":"true","resource_factor":1000}'
expect_detail "/start with resource_factor 1000 → 400" 400
oh POST /start '{"image":"local/host","command":"true","image_pull_policy":"Sometimes"}'
expect_detail "/start with an unknown image_pull_policy → 400" 400
oh POST /start '{"image":"local/host","command":"true","session_id":"a/b"}'
expect_detail "/start with a session_id holding '/' → 400" 400
oh POST /start '{"image":"local/nope","command":"true"}'
expect_match "/start with an unknown local image → 4xx with detail" '^4[0-9][0-9] string$' "$CODE $(jqb '.detail | type')"
oh POST /start '{"image":"127.0.0.1:1/nope:1","command":"true","image_pull_policy":"Never"}'
expect_detail "/start of an image not pulled with image_pull_policy Never → 400" 400
python3 -c 'import json; print(json.dumps({"image":"local/host","command":"true","environment":{"V%d" % i: "x" * 1000 for i in range(300)}}))' >"$T/huge.json"
oh POST /start "@$T/huge.json"
expect_detail "/start with a 300 KB environment → 400" 400
python3 -c 'import json; print(json.dumps({"image":"local/host","command":"true","environment":{"V": "x" * 1200000}}))' >"$T/huger.json"
oh POST /start "@$T/huger.json"
expect_detail "/start with a body over --max-body → 413" 413
expect_eq "nothing created by bad starts" "0 0" "$(count_sandboxes) $(ls "$RUN" 2>/dev/null | grep -cE '^[0-9a-f-]{36}$')"

# ---- misc routes, 404s, // in paths
oh GET /sessions/agent-server-$$
expect_detail "[SDK] GET /sessions/{unknown} → 404" 404
oh GET /runtime/00000000-0000-4000-8000-000000000000
expect_detail "[V0] GET /runtime/{unknown} → 404" 404
for a in stop pause resume; do
	oh POST /$a '{"runtime_id":"00000000-0000-4000-8000-000000000000"}'
	expect_detail "POST /$a of an unknown runtime → 404" 404
done
oh POST /stop '{}'
expect_detail "POST /stop without runtime_id → 400" 400
oh GET /start
expect_detail "GET /start → 405" 405
oh GET /registry_prefix
expect_eq "[V0] GET /registry_prefix" "200 string" "$CODE $(jqb '.registry_prefix | type')"
oh GET "/image_exists?image=local/host"
expect_eq "[V0] GET /image_exists of a local image → exists" "200 true" "$CODE $(jqb .exists)"
oh GET "/image_exists?image=local/nope"
expect_eq "[V0] GET /image_exists of an unknown image → not exists" "200 false" "$CODE $(jqb .exists)"
oh GET "/image_exists"
expect_detail "GET /image_exists without image → 400" 400
oh POST /build '{}'
expect_detail "POST /build → 501 with detail" 501
oh GET //list
expect_eq "GET //list (api_url with a trailing /) → 200" 200 "$CODE"

# ==== [SDK] APIRemoteWorkspace: string command, working_dir /, run_as_user 10001, fs_group 10001
SID=agent-server-$(cat /proc/sys/kernel/random/uuid)
SDK_START=$(jq -nc --arg s "$SID" --arg srv "$SERVER" '{image:"local/host",
	command:"exec /usr/bin/python3 -c \"$OH_SERVER\"", working_dir:"/",
	environment:{OH_SERVER:$srv, LOG_JSON:"true"}, session_id:$s, run_as_user:10001,
	fs_group:10001, runtime_class:"sysbox-runc", image_pull_policy:"IfNotPresent",
	a_field_from_a_newer_client:{"x":1}}')
oh POST /start "$SDK_START"
expect_eq "[SDK] /start → 200 with runtime_id, url, session_api_key" "200 string string string" \
	"$CODE $(jqb '.runtime_id | type') $(jqb '.url | type') $(jqb '.session_api_key | type')"
expect_match "[SDK] /start status is starting or running, pod_status lowercase" '^(starting|running) (pending|running|ready)$' "$(jqb .status) $(jqb .pod_status)"
RID=$(jqb .runtime_id) URL=$(jqb .url) SKEY=$(jqb .session_api_key)
expect_eq "[SDK] url is path mode on apid" "$BASE/$RID" "$URL"
expect_match "[SDK] session_api_key is a fresh random key" '^[0-9a-f]{64}$' "$SKEY"
oh GET /sessions/$SID
expect_eq "[SDK] GET /sessions/{sid} right after /start → 200, same runtime" "200 $RID $SID $SKEY" "$CODE $(jqb .runtime_id) $(jqb .session_id) $(jqb .session_api_key)"
oh GET /runtime/$RID
expect_eq "[V0] GET /runtime/{rid} right after /start → 200, echoes runtime_id" "200 $RID" "$CODE $(jqb .runtime_id)"
check "[SDK] polling /sessions reaches pod_status ready" wait_ready "$SID"
expect_eq "[SDK] ready means status running" "running" "$(jqb .status)"
get "$URL/health"
expect_eq "[SDK] GET {url}/health with no headers → 200 ok" '200 ok' "$CODE $(jqb .status)"
get "$URL/alive"
expect_eq "GET {url}/alive with no headers → 200" 200 "$CODE"
get "$URL/api/whoami"
expect_eq "agent server /api/* without the session key → its own 401" 401 "$CODE"
get "$URL/api/whoami" -H "X-Session-API-Key: wrong"
expect_eq "agent server /api/* with a wrong session key → 401" 401 "$CODE"
get "$URL/api/whoami" -H "X-Session-API-Key: $SKEY" -H "X-API-Key: $KEY"
expect_eq "agent server /api/* with the session key → 200" 200 "$CODE"
expect_eq "run_as_user 10001: the agent server runs as uid 10001, in /" "10001 /" "$(jqb .uid) $(jqb .cwd)"
expect_eq "apid's X-API-Key and the execd token never reach the sandbox" "null null" "$(jqb .x_api_key) $(jqb .execd_token)"
get "$URL/api/file/upload//tmp/x?y=1" -X POST -H "X-Session-API-Key: $SKEY" --data-binary 'payload'
expect_eq "legacy //abs/path and the query pass through, body streamed" "200 /api/file/upload//tmp/x?y=1 payload" "$CODE $(jqb .path) $(jqb .body)"
oh POST /start "$SDK_START"
expect_eq "[SDK] /start for a running session returns the same runtime" "200 $RID $SKEY" "$CODE $(jqb .runtime_id) $(jqb .session_api_key)"
expect_eq "no second sandbox for the same session" 1 "$(count_sandboxes)"
# pause → resume → the key /resume returns works
oh POST /pause "{\"runtime_id\":\"$RID\"}"
expect_eq "[SDK] /pause → 200 JSON object" "200 object" "$CODE $(jqb type)"
oh GET /sessions/$SID
expect_eq "paused: status paused, pod_status not found" "paused|not found" "$(jqb .status)|$(jqb .pod_status)"
get "$URL/alive"
expect_detail "[V0] the agent-server URL of a paused runtime → 503 (read as paused)" 503
oh POST /pause "{\"runtime_id\":\"$RID\"}"
expect_eq "/pause of a paused runtime is a no-op" 200 "$CODE"
oh GET /list
expect_eq "/list leaves paused runtimes out" 0 "$(jqb '.runtimes | length')"
oh POST /resume "{\"runtime_id\":\"$RID\"}"
expect_eq "[SDK] /resume → 200 with the session_api_key" "200 $SKEY" "$CODE $(jqb .session_api_key)"
RKEY=$(jqb .session_api_key)
check "[SDK] after /resume, polling reaches ready again" wait_ready "$SID"
get "$URL/api/whoami" -H "X-Session-API-Key: $RKEY"
expect_eq "the key /resume returned works on the agent server" "200 10001" "$CODE $(jqb .uid)"
oh POST /resume "{\"runtime_id\":\"$RID\"}"
expect_eq "/resume of a running runtime is a 200 no-op" "200 $SKEY" "$CODE $(jqb .session_api_key)"

# ---- survives an apid restart
stop_apid
start_apid || not_ok "apid restarts"
oh GET /sessions/$SID
expect_eq "after an apid restart the runtime is found with its key" "200 $RID $SKEY" "$CODE $(jqb .runtime_id) $(jqb .session_api_key)"
check "after an apid restart it is ready" wait_ready "$SID"
get "$URL/api/whoami" -H "X-Session-API-Key: $SKEY"
expect_eq "after an apid restart the url still reaches the agent server" "200 10001" "$CODE $(jqb .uid)"

oh POST /stop "{\"runtime_id\":\"$RID\"}"
expect_eq "[SDK] /stop → 200 JSON object" "200 object" "$CODE $(jqb type)"
oh GET /sessions/$SID
expect_detail "after /stop GET /sessions/{sid} → 404" 404
oh POST /stop "{\"runtime_id\":\"$RID\"}"
expect_detail "a second /stop → 404 (counted as success by clients)" 404
get "$URL/alive"
expect_detail "the url of a stopped runtime → 404 (no apid key needed to learn it)" 404
expect_eq "the sandbox is gone" 0 "$(count_sandboxes)"

# ==== [V1] RemoteSandboxService: list command, /workspace/project, 10001/10001/10001, factor 2
V1SID=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
oh GET /list
expect_eq "[V1] GET /list before start → 200" 200 "$CODE"
V1_START=$(jq -nc --arg s "$V1SID" --arg srv "$SERVER" '{image:"local/host",
	command:["/usr/bin/python3","-c",$srv], working_dir:"/workspace/project",
	environment:{OH_WEBHOOKS_0_BASE_URL:"http://198.18.0.1/api", WORKER_1:"12000",
	WORKER_2:"12001", OH_VSCODE_PORT:"60001"}, session_id:$s, resource_factor:2,
	run_as_user:10001, run_as_group:10001, fs_group:10001}')
oh POST /start "$V1_START"
expect_match "[V1] /start status must be starting or running" '^200 (starting|running)$' "$CODE $(jqb .status)"
V1RID=$(jqb .runtime_id) V1URL=$(jqb .url) V1KEY=$(jqb .session_api_key)
expect_eq "[V1] work_hosts name the work-N URLs" "$V1URL/work-1=12000 $V1URL/work-2=12001" "$(jqb '.work_hosts | to_entries | map("\(.key)=\(.value)") | join(" ")')"
v1_wait() { # GET /sessions every 0.2 s until running, then {url}/alive
	for _ in $(seq 150); do
		oh GET /sessions/$V1SID
		[ "$(jqb .status)" = error ] && return 1
		if [ "$(jqb .status)" = running ]; then
			get "$V1URL/alive" && [ "$CODE" = 200 ] && return 0
		fi
		sleep 0.2
	done
	return 1
}
check "[V1] wait: status running, then {url}/alive succeeds" v1_wait
get "$V1URL/api/whoami" -H "X-Session-API-Key: $V1KEY"
expect_eq "[V1] uid/gid 10001, cwd /workspace/project created with group 10001, env passed" \
	"10001 10001 /workspace/project 10001 10001 12000" \
	"$(jqb .uid) $(jqb .gid) $(jqb .cwd) $(jqb .cwd_uid) $(jqb .cwd_gid) $(jqb .worker_1)"
expect_eq "[V1] resource_factor 2 doubles the default memory class (512Mi)" $((1024 << 20)) "$(sbx_limit "$V1RID")"
get "$BASE/$V1RID/vscode?tkn=$V1KEY&folder=%2Fworkspace%2Fproject"
expect_eq "[V1] {base}/{rid}/vscode → port 60001, query kept" "200 60001 /?tkn=$V1KEY&folder=%2Fworkspace%2Fproject" "$CODE $(jqb .port) $(jqb .path)"
get "$BASE/$V1RID/work-1/app/x"
expect_eq "[V1] {base}/{rid}/work-1/app/x → port 12000 /app/x" "200 12000 /app/x" "$CODE $(jqb .port) $(jqb .path)"
get "$BASE/$V1RID/work-2"
expect_eq "[V1] {base}/{rid}/work-2 → port 12001 /" "200 12001 /" "$CODE $(jqb .port) $(jqb .path)"
expect_eq "WebSocket /sockets/events/x through the url: first-frame auth, then echo" "101 authed echo:hello" "$(ws "/$V1RID/sockets/events/x" "$V1KEY" hello)"
expect_eq "WebSocket with a wrong key in the first frame is refused by the agent server" "101 denied" "$(ws "/$V1RID/sockets/events/x" "wrong" hello)"
oh GET /list
expect_eq "[V1] /list has the runtime with session_id, key and status" "1 $V1SID $V1KEY running ready" \
	"$(jqb .total) $(jqb '.runtimes[0].session_id') $(jqb '.runtimes[0].session_api_key') $(jqb '.runtimes[0].status') $(jqb '.runtimes[0].pod_status')"
oh GET "/sessions/batch?ids=$V1SID&ids=unknown-session"
expect_eq "[V1] /sessions/batch → bare array, null for unknown ids" "array 2 $V1RID null" "$(jqb type) $(jqb length) $(jqb '.[0].runtime_id') $(jqb '.[1]')"
oh GET "//sessions//batch?ids=$V1SID"
expect_eq "// in runtime-API paths is tolerated" "200 $V1RID" "$CODE $(jqb '.[0].runtime_id')"
# [V1] pause/resume/delete: GET /sessions first, then the call
oh GET /sessions/$V1SID && oh POST /pause "{\"runtime_id\":\"$V1RID\"}"
expect_eq "[V1] pause" "200 paused" "$CODE $(jqb .status)"
oh POST /start "$V1_START"
expect_match "/start for a paused session resumes and returns it" "^200 $V1RID (starting|running)\$" "$CODE $(jqb .runtime_id) $(jqb .status)"
check "[V1] ready again after /start resumed it" v1_wait
oh GET /sessions/$V1SID && oh POST /stop "{\"runtime_id\":\"$V1RID\"}"
expect_eq "[V1] delete → /stop" 200 "$CODE"

# ==== [V0] RemoteRuntime: list command, /openhands/code/, no run_as_*, readiness via /runtime
V0SID=v0-$$
oh GET /sessions/$V0SID
expect_detail "[V0] GET /sessions/{sid} of a new session → 404" 404
oh POST /start "$(jq -nc --arg s "$V0SID" --arg srv "$SERVER" '{image:"local/host",
	command:["/usr/bin/python3","-c",$srv], working_dir:"/openhands/code/",
	environment:{DEBUG:"false"}, session_id:$s, resource_factor:1}')"
V0RID=$(jqb .runtime_id) V0URL=$(jqb .url) V0KEY=$(jqb .session_api_key)
expect_eq "[V0] /start → 200" "200 $V0SID" "$CODE $(jqb .session_id)"
check "[V0] polling GET /runtime/{rid} reaches ready" wait_ready "$V0SID" "/runtime/$V0RID"
get "$V0URL/alive"
expect_eq "[V0] {url}/alive → 200" 200 "$CODE"
get "$V0URL/api/whoami" -H "X-Session-API-Key: $V0KEY"
expect_eq "[V0] without run_as_user the workload runs as the sandbox user (1000) in its working_dir" "1000 /openhands/code" "$(jqb .uid) $(jqb .cwd)"
oh POST /pause "{\"runtime_id\":\"$V0RID\"}"
oh GET /sessions/$V0SID
expect_eq "[V0] close with keep_runtime_alive → paused" "paused" "$(jqb .status)"
oh POST /resume "{\"runtime_id\":\"$V0RID\"}"
expect_eq "[V0] reattach: /resume" "200 $V0KEY" "$CODE $(jqb .session_api_key)"
check "[V0] ready after resume" wait_ready "$V0SID" "/runtime/$V0RID"
# A runtime whose agent server exits shows as stopped; /start of its session replaces it.
oh POST /stop "{\"runtime_id\":\"$V0RID\"}"
oh POST /start "$(jq -nc --arg s "$V0SID" '{image:"local/host", command:"exit 3", session_id:$s}')"
FRID=$(jqb .runtime_id)
failed_state() {
	for _ in $(seq 100); do
		oh GET /sessions/$V0SID
		[ "$(jqb .status)" = error ] && return 0
		sleep 0.1
	done
	return 1
}
check "a runtime whose command exits 3 ends as status error" failed_state
expect_eq "error: pod_status failed, status_detail says why" "failed string" "$(jqb .pod_status) $(jqb '.status_detail | type')"
oh POST /resume "{\"runtime_id\":\"$FRID\"}"
expect_detail "/resume of a failed runtime → 409" 409
oh POST /start "$(jq -nc --arg s "$V0SID" '{image:"local/host", command:["sleep","600"], session_id:$s}')"
expect_eq "/start of a failed session replaces its runtime" "200 true" "$CODE $([ "$(jqb .runtime_id)" != "$FRID" ] && echo true)"
expect_eq "the failed sandbox was removed" 1 "$(count_sandboxes)"
oh POST /stop "{\"runtime_id\":\"$(jqb .runtime_id)\"}"

# ---- --public-url: the url is built on the external base URL
stop_apid
start_apid --public-url https://oh.example.test/sbx/
oh POST /start "$(jq -nc '{image:"local/host", command:["sleep","600"], session_id:"pub-1"}')"
expect_eq "--public-url is the base of url" "https://oh.example.test/sbx/$(jqb .runtime_id)" "$(jqb .url)"
oh POST /stop "{\"runtime_id\":\"$(jqb .runtime_id)\"}"
# (--max-body nonsense: refused as well, so no apid starts even if the check were broken)
out=$("$APID" --public-url http:// --max-body nonsense 2>&1); rc=$?
expect_eq "--public-url: http:// without a host is refused: exit 2, the flag named" "2 yes" \
	"$rc $(printf '%s' "$out" | grep -q -- '--public-url `http://`' && echo yes)"

# ---- cleanup: nothing left
expect_eq "no sandboxes left" 0 "$(count_sandboxes)"
stop_apid
expect_eq "no runtime state left" "" "$(ls "$RUN" | grep -E '^[0-9a-f-]{36}$' || true)"
after=$(host_snapshot)
expect_eq "no leaked mounts/cgroups/links" "" "$(comm -13 <(echo "$before") <(echo "$after") | grep -E '[0-9a-f]{8}-[0-9a-f]{4}-4' || true)"
finish
