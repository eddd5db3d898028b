#!/bin/bash
# Black-box tests of sbx-apid's lifecycle API (CONTRACT.md Part A) against a real apid on
# 127.0.0.1 with its own data and run directories: every endpoint and status code, the 4xx paths,
# list filters and pagination, renew and expiry, pause/resume effect on processes, restart
# re-adoption and kill -9 recovery (no sandbox lost, nothing leaked).
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/api/api_lib.sh"
# Sandboxes run the agent as their main process when it is built (SBX_APID_AGENT=none: the
# entrypoint directly); either way the entrypoint's exit status is the sandbox's.
AGENT=${SBX_APID_AGENT:-$BIN/sbx-agent}
[ "$AGENT" = none ] || [ -x "$AGENT" ] || AGENT=none
api_prepare "apid" apid
# An images dir of its own (the built images linked in): a pull creates its store there, never in
# the real one.
IMGS=$T/images
mkdir -p "$IMGS" && chmod 755 "$IMGS"
for i in "$SBX_IMAGES"/*/; do ln -s "$i" "$IMGS/$(basename "$i")"; done
before=$(host_snapshot)

# --bridge none: this file runs in the host netns, which must not get a bridge (t_net.sh tests
# networking inside a throwaway netns).
start_apid() {
	apid_launch --listen 127.0.0.1:$PORT --data-dir "$DATA" --run-dir "$RUN" --agent "$AGENT" --images-dir "$IMGS" \
		--bridge none --api-key "$KEY" --max-timeout 3600 --max-memory 1Gi --max-body 64Ki "$@"
}
cleanup() {
	[ -n "$APID_PID" ] || start_apid >/dev/null 2>&1
	delete_all
	stop_apid TERM
}
trap 'cleanup; rm -rf "$T"' EXIT

create() { # BODY → ID
	api POST /v1/sandboxes "$1"; ID=$(jqb .id)
	[ "$CODE" = 202 ] || echo "create failed: $CODE $BODY" >&2
}
sb_pid() { jq -r .pid "$RUN/$1/state.json" 2>/dev/null; }
proc_states() { # ID → states of every process of the sandbox
	local pid; pid=$(sb_pid "$1"); [ -n "$pid" ] || return
	for p in $pid $(pgrep -P "$pid"); do awk '/^State:/{print $2}' /proc/$p/status 2>/dev/null; done | sort -u | tr '\n' ' '
}
IMG='"image":{"uri":"local/busybox"}'
SLEEP='"entrypoint":["sleep","1000"]'

start_apid || { not_ok "apid starts"; finish; }
ok "apid starts"

# ---- health, auth, request id, routing
api GET /health
expect_eq "health 200" "200 healthy" "$CODE $(jqb .status)"
CODE=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/v1/sandboxes")
BODY=$(curl -s "$BASE/v1/sandboxes")
expect_eq "missing key → 401 MISSING_API_KEY" "401 MISSING_API_KEY" "$CODE $(jqb .code)"
expect_err "wrong key → 401 INVALID_API_KEY" 401 INVALID_API_KEY GET /v1/sandboxes "" -H "OPEN-SANDBOX-API-KEY: nope"
api GET /v1/sandboxes "" -H "X-Request-ID: rid-123"
expect_match "X-Request-ID echoed" '^X-Request-ID: rid-123$' "$HDRS"
api GET /v1/sandboxes
expect_match "X-Request-ID generated" '^X-Request-ID: [0-9a-f-]{36}$' "$HDRS"
expect_err "unknown route → 404 JSON" 404 SANDBOX::ROUTE_NOT_FOUND GET /v1/nothing
expect_err "wrong method → 405 JSON" 405 SANDBOX::METHOD_NOT_ALLOWED PUT /v1/sandboxes
api POST /v1/metrics/events '{"eventType":"sandbox.create","createDurationMs":5,"success":true}'
expect_eq "metrics/events → 204" 204 "$CODE"
expect_err "snapshots → 400 API_NOT_SUPPORTED" 400 SANDBOX::API_NOT_SUPPORTED GET /v1/snapshots
expect_err "sandbox snapshot → 400 API_NOT_SUPPORTED" 400 SANDBOX::API_NOT_SUPPORTED POST /v1/sandboxes/abc/snapshots '{}'

# ---- create: validation (nothing may be left behind)
BAD=(
	"bad JSON|400|SANDBOX::INVALID_PARAMETER|{\"image\":"
	"not an object|400|SANDBOX::INVALID_PARAMETER|[1,2]"
	"empty body|400|SANDBOX::INVALID_PARAMETER|"
	"image missing|400|SANDBOX::INVALID_PARAMETER|{$SLEEP}"
	"image wrong type|400|SANDBOX::INVALID_PARAMETER|{\"image\":\"busybox\",$SLEEP}"
	"image unknown field|400|SANDBOX::INVALID_PARAMETER|{\"image\":{\"uri\":\"busybox\",\"x\":1},$SLEEP}"
	"entrypoint missing|400|DOCKER::INVALID_ENTRYPOINT|{$IMG}"
	"entrypoint empty|400|DOCKER::INVALID_ENTRYPOINT|{$IMG,\"entrypoint\":[]}"
	"entrypoint wrong type|400|SANDBOX::INVALID_PARAMETER|{$IMG,\"entrypoint\":\"sleep 1\"}"
	"entrypoint item type|400|SANDBOX::INVALID_PARAMETER|{$IMG,\"entrypoint\":[\"sleep\",5]}"
	"timeout string|400|SANDBOX::INVALID_PARAMETER|{$IMG,$SLEEP,\"timeout\":\"600\"}"
	"timeout float|400|SANDBOX::INVALID_PARAMETER|{$IMG,$SLEEP,\"timeout\":600.5}"
	"timeout < 60|400|SANDBOX::INVALID_PARAMETER|{$IMG,$SLEEP,\"timeout\":59}"
	"timeout > max|400|SANDBOX::INVALID_PARAMETER|{$IMG,$SLEEP,\"timeout\":3601}"
	"cpu quantity|400|SANDBOX::INVALID_PARAMETER|{$IMG,$SLEEP,\"resourceLimits\":{\"cpu\":\"lots\"}}"
	"cpu over max|400|SANDBOX::INVALID_PARAMETER|{$IMG,$SLEEP,\"resourceLimits\":{\"cpu\":\"4096\"}}"
	"memory quantity|400|SANDBOX::INVALID_PARAMETER|{$IMG,$SLEEP,\"resourceLimits\":{\"memory\":\"12XB\"}}"
	"memory over max|400|SANDBOX::INVALID_PARAMETER|{$IMG,$SLEEP,\"resourceLimits\":{\"memory\":\"2Gi\"}}"
	"memory not string|400|SANDBOX::INVALID_PARAMETER|{$IMG,$SLEEP,\"resourceLimits\":{\"memory\":512}}"
	"memory milli-quantity (Docker's 512m)|400|SANDBOX::INVALID_PARAMETER|{$IMG,$SLEEP,\"resourceLimits\":{\"memory\":\"512m\"}}"
	"memory in Docker's lower case|400|SANDBOX::INVALID_PARAMETER|{$IMG,$SLEEP,\"resourceLimits\":{\"memory\":\"1g\"}}"
	"pids negative|400|SANDBOX::INVALID_PARAMETER|{$IMG,$SLEEP,\"resourceLimits\":{\"pids\":\"-1\"}}"
	"unknown resource|400|SANDBOX::INVALID_PARAMETER|{$IMG,$SLEEP,\"resourceLimits\":{\"bananas\":\"1\"}}"
	"ephemeral-storage too small|400|SANDBOX::INVALID_PARAMETER|{$IMG,$SLEEP,\"resourceLimits\":{\"ephemeral-storage\":\"4Ki\"}}"
	"ephemeral-storage over max|400|SANDBOX::INVALID_PARAMETER|{$IMG,$SLEEP,\"resourceLimits\":{\"ephemeral-storage\":\"2Gi\"}}"
	"gpu|400|SANDBOX::API_NOT_SUPPORTED|{$IMG,$SLEEP,\"resourceLimits\":{\"gpu\":\"1\"}}"
	"env not strings|400|SANDBOX::INVALID_PARAMETER|{$IMG,$SLEEP,\"env\":{\"A\":1}}"
	"metadata reserved key|400|SANDBOX::INVALID_METADATA_LABEL|{$IMG,$SLEEP,\"metadata\":{\"opensandbox.io/x\":\"y\"}}"
	"metadata bad key|400|SANDBOX::INVALID_METADATA_LABEL|{$IMG,$SLEEP,\"metadata\":{\"bad key\":\"y\"}}"
	"metadata value control char|400|SANDBOX::INVALID_METADATA_LABEL|{$IMG,$SLEEP,\"metadata\":{\"k\":\"a\\nb\"}}"
	"metadata value type|400|SANDBOX::INVALID_METADATA_LABEL|{$IMG,$SLEEP,\"metadata\":{\"k\":1}}"
	"metadata not object|400|SANDBOX::INVALID_PARAMETER|{$IMG,$SLEEP,\"metadata\":[]}"
	"snapshotId|400|SANDBOX::API_NOT_SUPPORTED|{\"snapshotId\":\"s1\"}"
	"secureAccess true|400|SANDBOX::API_NOT_SUPPORTED|{$IMG,$SLEEP,\"secureAccess\":true}"
	"platform mismatch|400|SANDBOX::INVALID_PARAMETER|{$IMG,$SLEEP,\"platform\":{\"os\":\"windows\",\"arch\":\"amd64\"}}"
	"volume without a backend|400|SANDBOX::INVALID_PARAMETER|{$IMG,$SLEEP,\"volumes\":[{\"name\":\"v\",\"mountPath\":\"/v\"}]}"
	"unknown image|400|SANDBOX::IMAGE_NOT_FOUND|{\"image\":{\"uri\":\"local/nope\"},$SLEEP}"
	"malformed image reference|400|SANDBOX::IMAGE_NOT_FOUND|{\"image\":{\"uri\":\"Bad/Ref\"},$SLEEP}"
	"path traversal image|400|SANDBOX::IMAGE_NOT_FOUND|{\"image\":{\"uri\":\"local/../images\"},$SLEEP}"
)
for c in "${BAD[@]}"; do
	IFS='|' read -r n st code body <<<"$c"
	expect_err "create 4xx: $n" "$st" "$code" POST /v1/sandboxes "$body"
done
api POST /v1/sandboxes "{\"image\":{\"uri\":\"local/nope\"},$SLEEP}"
expect_match "unknown image lists what exists" 'local/busybox' "$(jqb .message)"
big=$(head -c 70000 /dev/zero | tr '\0' 'a')
expect_err "body over --max-body → 413" 413 SANDBOX::REQUEST_TOO_LARGE POST /v1/sandboxes "{\"x\":\"$big\"}"
api GET /v1/sandboxes
expect_eq "bad input left no sandbox in the store" 0 "$(jqb .pagination.totalItems)"
# A registry image not pulled yet: 202 at once, then Failed when the pull fails (a closed port on
# 127.0.0.1; t_images.sh pulls from real registries).
api POST /v1/sandboxes "{\"image\":{\"uri\":\"127.0.0.1:1/nothere/img:1\"},$SLEEP}"
expect_eq "registry image not pulled yet: 202 Pending IMAGE_PULLING" "202 Pending IMAGE_PULLING" \
	"$CODE $(jqb .status.state) $(jqb .status.reason)"
rid=$(jqb .id)
for _ in $(seq 100); do api GET "/v1/sandboxes/$rid"; [ "$(jqb .status.state)" = Pending ] || break; sleep 0.1; done
expect_eq "... then Failed, IMAGE_PULL_FAILED with the cause" "Failed IMAGE_PULL_FAILED" "$(jqb .status.state) $(jqb .status.reason)"
expect_match "... the cause names the registry" "127.0.0.1:1" "$(jqb .status.message)"
api DELETE "/v1/sandboxes/$rid"
expect_eq "bad input left no runtime state" "" "$(ls "$RUN")"
expect_eq "bad input left no sandbox files" "" "$(ls "$RUN/.sandboxes")"
kill -0 $APID_PID && ok "apid survived the bad input" || not_ok "apid survived the bad input"

# ---- create + get
api POST /v1/sandboxes "{$IMG,$SLEEP,\"resourceLimits\":{\"cpu\":\"500m\",\"memory\":\"256Mi\",\"pids\":\"64\"},\"env\":{\"DEMO\":\"1\"},\"metadata\":{\"team\":\"a\",\"run\":\"r1\"},\"secureAccess\":false,\"extensions\":{},\"timeout\":600}"
A=$(jqb .id)
expect_eq "create → 202 Running" "202 Running" "$CODE $(jqb .status.state)"
expect_match "create returns createdAt/expiresAt in UTC Z" '^[0-9-]{10}T[0-9:.]+Z [0-9-]{10}T[0-9:.]+Z$' "$(jqb .createdAt) $(jqb .expiresAt)"
expect_eq "expiresAt = createdAt + timeout" 600 "$(jqb '((.expiresAt|sub("\\.[0-9]+Z";"Z")|fromdate) - (.createdAt|sub("\\.[0-9]+Z";"Z")|fromdate))')"
expect_eq "create echoes entrypoint and metadata" '["sleep","1000"] a' "$(jqb -c .entrypoint) $(jqb .metadata.team)"
expect_eq "create response has no image" null "$(jqb .image)"
api GET /v1/sandboxes/$A
expect_eq "get → 200 with image" "200 local/busybox Running CONTAINER_RUNNING" "$CODE $(jqb .image.uri) $(jqb .status.state) $(jqb .status.reason)"
expect_match "get has lastTransitionAt" 'Z$' "$(jqb .status.lastTransitionAt)"
pid=$(sb_pid "$A")
expect_match "sandbox process runs" '^[0-9]+$' "$pid"
cg=$(jq -r .cgroup "$RUN/$A/state.json" | jq -r '.dirs[]?|select(.c=="memory").dir' 2>/dev/null)
[ -n "$cg" ] && expect_eq "memory limit applied" 268435456 "$(cat "$cg/memory.limit_in_bytes" 2>/dev/null || cat "$cg/memory.max")"
# Kubernetes quantities (docs/api.md): "300M" is 300*10^6 bytes, not Docker's 300 MiB.
api POST /v1/sandboxes "{$IMG,$SLEEP,\"resourceLimits\":{\"memory\":\"300M\"}}"
Q=$(jqb .id)
expect_eq "memory \"300M\" is 300000000 bytes in the sandbox's config" "202 300000000" \
	"$CODE $(jq .linux.resources.memory.limit "$RUN/.sandboxes/$Q/config.json" 2>/dev/null)"
[ -n "$Q" ] && [ "$Q" != null ] && api DELETE "/v1/sandboxes/$Q"
env_ok=$(tr '\0' '\n' </proc/$(pgrep -P "$pid" | head -1)/environ 2>/dev/null | grep -c '^DEMO=1$')
expect_eq "env applied to the entrypoint" 1 "$env_ok"
expect_err "get unknown id → 404" 404 SANDBOX::NOT_FOUND GET /v1/sandboxes/00000000-0000-4000-8000-000000000000
expect_err "get invalid id → 404" 404 SANDBOX::NOT_FOUND GET "/v1/sandboxes/..%2f..%2fetc"
api GET /sandboxes/$A
expect_eq "routes also without /v1" 200 "$CODE"

# ---- endpoints
for p in 44772 18080 8080; do
	api GET "/v1/sandboxes/$A/endpoints/$p?use_server_proxy=false"
	expect_eq "endpoint $p → 200 without scheme" "200 127.0.0.1:$PORT/sandboxes/$A/proxy/$p" "$CODE $(jqb .endpoint)"
done
for p in 0 65536 abc; do expect_err "endpoint port $p → 400" 400 SANDBOX::INVALID_PARAMETER GET /v1/sandboxes/$A/endpoints/$p; done
expect_err "endpoint unknown id → 404" 404 SANDBOX::NOT_FOUND GET /v1/sandboxes/nope/endpoints/44772
expect_err "endpoint with expires → 400" 400 SANDBOX::API_NOT_SUPPORTED GET "/v1/sandboxes/$A/endpoints/44772?expires=99999999999"
CODE=$(curl -s -o "$T/body" -w '%{http_code}' "$BASE/sandboxes/$A/proxy/44772/ping"); BODY=$(cat "$T/body")
expect_eq "proxy (no key needed) answers a JSON error without networking" "503 SANDBOX::SERVICE_UNAVAILABLE" "$CODE $(jqb .code)"

# ---- pause / resume
api POST /v1/sandboxes/$A/pause
expect_eq "pause → 202" 202 "$CODE"
expect_match "pause reply has Content-Length: 0" '^Content-Length: 0$' "$HDRS"
sleep 0.2
expect_match "pause froze every process" '^[DT] $' "$(proc_states "$A")"
api GET /v1/sandboxes/$A
expect_eq "paused sandbox shows Paused" "Paused CONTAINER_PAUSED" "$(jqb .status.state) $(jqb .status.reason)"
expect_err "pause when Paused → 409" 409 DOCKER::SANDBOX_NOT_RUNNING POST /v1/sandboxes/$A/pause
api POST /v1/sandboxes/$A/resume
expect_eq "resume → 202 empty" "202 " "$CODE $BODY"
expect_match "resume thawed the processes" '^S $' "$(proc_states "$A")"
expect_err "resume when Running → 409" 409 DOCKER::SANDBOX_NOT_PAUSED POST /v1/sandboxes/$A/resume
expect_err "pause unknown → 404" 404 SANDBOX::NOT_FOUND POST /v1/sandboxes/nope/pause

# ---- metadata patch
api PATCH /v1/sandboxes/$A/metadata '{"team":"b","run":null,"new":"x"}'
expect_eq "patch metadata merges" "200 b null x local/busybox" "$CODE $(jqb .metadata.team) $(jqb .metadata.run) $(jqb .metadata.new) $(jqb .image.uri)"
api PATCH /v1/sandboxes/$A/metadata '{}'
expect_eq "empty patch is a no-op" "200 b" "$CODE $(jqb .metadata.team)"
expect_err "patch reserved key → 400" 400 SANDBOX::INVALID_METADATA_LABEL PATCH /v1/sandboxes/$A/metadata '{"opensandbox.io/a":"b"}'
expect_err "patch non-object → 400" 400 SANDBOX::INVALID_PARAMETER PATCH /v1/sandboxes/$A/metadata '["a"]'
expect_err "patch unknown → 404" 404 SANDBOX::NOT_FOUND PATCH /v1/sandboxes/nope/metadata '{}'
api PATCH /v1/sandboxes/$A/metadata '{"team":"a"}'

# ---- renew
future=$(date -u -d '+2 hours' +%Y-%m-%dT%H:%M:%SZ)
api POST /v1/sandboxes/$A/renew-expiration "{\"expiresAt\":\"$future\"}"
expect_eq "renew → 200 with the new expiry" "200 ${future%Z}" "$CODE $(jqb .expiresAt | sed 's/\.[0-9]*Z$//')"
api GET /v1/sandboxes/$A
expect_eq "GET shows the renewed expiry" "${future%Z}" "$(jqb .expiresAt | sed 's/\.[0-9]*Z$//')"
expect_err "renew to the past → 400" 400 DOCKER::INVALID_EXPIRATION POST /v1/sandboxes/$A/renew-expiration '{"expiresAt":"2001-01-01T00:00:00Z"}'
expect_err "renew bad date → 400" 400 SANDBOX::INVALID_PARAMETER POST /v1/sandboxes/$A/renew-expiration '{"expiresAt":"tomorrow"}'
expect_err "renew extra property → 400" 400 SANDBOX::INVALID_PARAMETER POST /v1/sandboxes/$A/renew-expiration "{\"expiresAt\":\"$future\",\"x\":1}"
expect_err "renew unknown → 404" 404 SANDBOX::NOT_FOUND POST /v1/sandboxes/nope/renew-expiration "{\"expiresAt\":\"$future\"}"
create "{$IMG,$SLEEP,\"metadata\":{\"team\":\"b\"}}"; B=$ID
expect_eq "no timeout → no expiresAt" null "$(jqb .expiresAt)"
expect_err "renew without timeout → 409" 409 DOCKER::INVALID_EXPIRATION POST /v1/sandboxes/$B/renew-expiration "{\"expiresAt\":\"$future\"}"

# ---- list
sleep 0.01; create "{$IMG,$SLEEP,\"metadata\":{\"team\":\"a\",\"tier\":\"x y\"}}"; C=$ID
api POST /v1/sandboxes/$C/pause
api GET "/v1/sandboxes?pageSize=200"
expect_eq "list → items sorted by createdAt desc" "$C $B $A" "$(jqb '[.items[].id]|join(" ")')"
expect_eq "list pagination" "1 200 3 1 false" "$(jqb '.pagination|"\(.page) \(.pageSize) \(.totalItems) \(.totalPages) \(.hasNextPage)"')"
api GET "/v1/sandboxes?state=Paused"
expect_eq "state filter" "$C" "$(jqb '[.items[].id]|join(" ")')"
api GET "/v1/sandboxes?state=Paused&state=Running&pageSize=1&page=2"
expect_eq "repeated state (OR) + page 2" "$B 2 3 true" "$(jqb '"\([.items[].id]|join(" ")) \(.pagination.page) \(.pagination.totalPages) \(.pagination.hasNextPage)"')"
api GET "/v1/sandboxes?metadata=team%3Da"
expect_eq "metadata filter" "$C $A" "$(jqb '[.items[].id]|join(" ")')"
api GET "/v1/sandboxes?metadata=team%3Da%26tier%3Dx%2520y&state=Paused"
expect_eq "metadata AND state, value decoded twice" "$C" "$(jqb '[.items[].id]|join(" ")')"
api GET "/v1/sandboxes?state=Bogus"
expect_eq "unknown state matches nothing" "200 0" "$CODE $(jqb .pagination.totalItems)"
api GET "/v1/sandboxes?page=9"
expect_eq "page past the end → empty items" "200 0 false" "$CODE $(jqb '.items|length') $(jqb .pagination.hasNextPage)"
expect_err "page=0 → 400" 400 SANDBOX::INVALID_PARAMETER GET "/v1/sandboxes?page=0"
expect_err "pageSize=abc → 400" 400 SANDBOX::INVALID_PARAMETER GET "/v1/sandboxes?pageSize=abc"
expect_err "pageSize too big → 400" 400 SANDBOX::INVALID_PARAMETER GET "/v1/sandboxes?pageSize=100000"
expect_err "bad metadata filter → 400" 400 INVALID_METADATA_FORMAT GET "/v1/sandboxes?metadata=noequals"

# ---- keep-alive and concurrency
out=$(curl -sv -o /dev/null -o /dev/null -H "OPEN-SANDBOX-API-KEY: $KEY" "$BASE/v1/sandboxes" "$BASE/health" 2>&1)
expect_match "HTTP/1.1 keep-alive reuses the connection" 'Re-using existing connection' "$out"
jobs_=()
for i in 1 2 3 4 5 6; do
	curl -s -o "$T/par$i" -w '%{http_code}\n' -X POST -H "OPEN-SANDBOX-API-KEY: $KEY" \
		--data-binary "{$IMG,$SLEEP,\"metadata\":{\"par\":\"yes\"}}" "$BASE/v1/sandboxes" >"$T/parcode$i" &
	jobs_+=($!)
done
wait "${jobs_[@]}" # not a bare wait: apid itself is a background job
expect_eq "6 parallel creates → 202" "202 202 202 202 202 202" "$(cat "$T"/parcode* | tr '\n' ' ' | sed 's/ $//')"
api GET "/v1/sandboxes?metadata=par%3Dyes&state=Running"
expect_eq "6 parallel sandboxes running" 6 "$(jqb .pagination.totalItems)"
for id in $(jqb '.items[].id'); do
	curl -s -o /dev/null -w '%{http_code}\n' -X DELETE -H "OPEN-SANDBOX-API-KEY: $KEY" "$BASE/v1/sandboxes/$id" >>"$T/pardel" &
	jobs_+=($!)
done
wait "${jobs_[@]}"
expect_eq "6 parallel deletes → 204" "204 204 204 204 204 204" "$(tr '\n' ' ' <"$T/pardel" | sed 's/ $//')"

# ---- main process exit
create "{$IMG,\"entrypoint\":[\"sh\",\"-c\",\"sleep 0.3; exit 3\"]}"; F=$ID
create "{$IMG,\"entrypoint\":[\"sh\",\"-c\",\"sleep 0.3\"]}"; E=$ID
create "{$IMG,\"entrypoint\":[\"/no/such/binary\"]}"; G=$ID
sleep 1.5
api GET /v1/sandboxes/$G
expect_eq "missing entrypoint binary → Failed (127)" "Failed main process exited with code 127" "$(jqb .status.state) $(jqb .status.message)"
api DELETE /v1/sandboxes/$G
api GET /v1/sandboxes/$F
expect_eq "exit 3 → Failed with the code" "Failed CONTAINER_EXITED_ERROR main process exited with code 3" "$(jqb .status.state) $(jqb .status.reason) $(jqb .status.message)"
api GET /v1/sandboxes/$E
expect_eq "exit 0 → Terminated" "Terminated CONTAINER_EXITED" "$(jqb .status.state) $(jqb .status.reason)"
expect_eq "an exited sandbox holds no runtime state" "no no" "$([ -e "$RUN/$F" ] && echo yes || echo no) $([ -e "$RUN/$E" ] && echo yes || echo no)"
expect_err "pause an exited sandbox → 409" 409 DOCKER::SANDBOX_NOT_RUNNING POST /v1/sandboxes/$F/pause

# ---- bounded scratch space (issue 17): /tmp and the writable layer are tmpfs (RAM). The
# entrypoint writes MIB MiB of zeros to PATH and exits 100 + MiB written / 16 when the write
# stopped on a full file system, 1 when all of it fit, 3 on any other error.
FILL='e=$(dd if=/dev/zero of="$0" bs=1048576 count="$1" 2>&1 >/dev/null) && exit 1
case $e in *"No space left"*) exit $((100 + $(stat -c %s "$0") / 16777216)) ;; esac; exit 3'
fill_sb() { # LIMITS PATH MIB → ID
	create "$(jq -cn --arg s "$FILL" --arg p "$2" --arg n "$3" --argjson l "$1" \
		'{image:{uri:"local/busybox"},resourceLimits:$l,entrypoint:["sh","-c",$s,$p,$n]}')"
}
fill_sb '{"memory":"1Gi"}' /tmp/f 300; FT=$ID
fill_sb '{"memory":"1Gi","ephemeral-storage":"32Mi"}' /home/sandbox/f 64; FD=$ID
fill_sb '{"memory":"1Gi","ephemeral-storage":"96Mi"}' /home/sandbox/f 64; FO=$ID
fill_state() { # ID → the state and message once the entrypoint has exited (bounded: 20 s)
	for _ in $(seq 200); do
		api GET /v1/sandboxes/$1
		[ "$(jqb .status.state)" = Running ] || break
		sleep 0.1
	done
	echo "$(jqb .status.state) $(jqb .status.message)"
}
expect_eq "API sandbox: /tmp is bounded by default (ENOSPC at 256 MiB)" \
	"Failed main process exited with code 116" "$(fill_state $FT)"
expect_eq "API sandbox: ephemeral-storage 32Mi bounds the writable layer (ENOSPC at 32 MiB)" \
	"Failed main process exited with code 102" "$(fill_state $FD)"
expect_eq "API sandbox: ephemeral-storage 96Mi lets 64 MiB through" \
	"Failed main process exited with code 1" "$(fill_state $FO)"
for id in $FT $FD $FO; do api DELETE /v1/sandboxes/$id; done

# ---- delete
api DELETE /v1/sandboxes/$E
expect_eq "delete → 204 empty" "204 " "$CODE $BODY"
expect_err "get after delete → 404" 404 SANDBOX::NOT_FOUND GET /v1/sandboxes/$E
expect_err "delete again → 404" 404 SANDBOX::NOT_FOUND DELETE /v1/sandboxes/$E
api DELETE /v1/sandboxes/$F
# pid_state PID: alive or gone; an empty pid (no state read) is neither, so no check passes on it.
pid_state() { [ -n "$1" ] || { echo no-pid; return; }; kill -0 "$1" 2>/dev/null && echo alive || echo gone; }
create "{$IMG,$SLEEP}"; D=$ID; dpid=$(sb_pid "$D")
expect_eq "control: the sandbox to delete runs, with its state" "alive yes" "$(pid_state "$dpid") $([ -e "$RUN/$D" ] && echo yes || echo no)"
api DELETE /v1/sandboxes/$D
expect_eq "delete kills the processes and frees state" "204 gone no" "$CODE $(pid_state "$dpid") $([ -e "$RUN/$D" ] && echo yes || echo no)"

# ---- expiry (timeout >= 60 per the contract; renew brings it close)
create "{$IMG,$SLEEP,\"timeout\":60}"; X=$ID; xpid=$(sb_pid "$X")
expect_eq "control: the sandbox to expire runs" alive "$(pid_state "$xpid")"
soon=$(date -u -d '+2 seconds' +%Y-%m-%dT%H:%M:%S.%3NZ)
api POST /v1/sandboxes/$X/renew-expiration "{\"expiresAt\":\"$soon\"}"
expect_eq "renew to 2 s from now" 200 "$CODE"
for _ in $(seq 40); do api GET /v1/sandboxes/$X; [ "$CODE" = 404 ] && break; sleep 0.25; done
expect_eq "expired sandbox is removed" 404 "$CODE"
expect_eq "expired sandbox's processes are gone" gone "$(pid_state "$xpid")"
expect_match "expiry logged with TTL_EXPIRED" "$X.*TTL_EXPIRED" "$(grep "$X" "$LOG")"

# ---- restart: SIGTERM leaves sandboxes running; a new apid re-adopts them
apid_pid=$(sb_pid "$A"); cpid=$(sb_pid "$C")
stop_apid TERM
expect_eq "SIGTERM leaves sandboxes running" "alive alive" "$(kill -0 "$apid_pid" && echo alive) $(kill -0 "$cpid" && echo alive)"
start_apid
api GET /v1/sandboxes/$A
expect_eq "restart re-adopts a Running sandbox" "Running" "$(jqb .status.state)"
api GET /v1/sandboxes/$C
expect_eq "restart re-adopts a Paused sandbox" "Paused" "$(jqb .status.state)"
expect_match "re-adoption is logged" "recover $A: re-adopted" "$(cat "$LOG")"
api POST /v1/sandboxes/$C/resume
expect_eq "re-adopted sandbox can be resumed" "202 S " "$CODE $(proc_states "$C")"
kill -9 "$(sb_pid "$B")"
for _ in $(seq 40); do api GET /v1/sandboxes/$B; [ "$(jqb .status.state)" = Failed ] && break; sleep 0.1; done
expect_eq "re-adopted sandbox's death is noticed" "Failed" "$(jqb .status.state)"
stop_apid KILL
kill -9 "$(sb_pid "$C")"
start_apid
for _ in $(seq 40); do api GET /v1/sandboxes/$C; [ "$(jqb .status.state)" = Failed ] && break; sleep 0.1; done
expect_eq "sandbox that died while apid was down → Failed" "Failed" "$(jqb .status.state)"
expect_eq "its runtime state is freed" no "$([ -e "$RUN/$C" ] && echo yes || echo no)"

# ---- kill -9 recovery loop: mid-create and mid-delete
created=()
for i in 1 2 3 4; do
	curl -s -o "$T/c$i" -X POST -H "OPEN-SANDBOX-API-KEY: $KEY" --data-binary "{$IMG,$SLEEP,\"metadata\":{\"loop\":\"c$i\"}}" "$BASE/v1/sandboxes" &
	cpid=$!
	sleep "0.0$((i * 2))"
	stop_apid KILL
	wait $cpid
	id=$(jq -r .id "$T/c$i" 2>/dev/null); [ -n "$id" ] && [ "$id" != null ] && created+=("$id")
	start_apid
	victim=$(curl -s -H "OPEN-SANDBOX-API-KEY: $KEY" "$BASE/v1/sandboxes?state=Running&pageSize=200" | jq -r '.items[-1].id')
	curl -s -o /dev/null -X DELETE -H "OPEN-SANDBOX-API-KEY: $KEY" "$BASE/v1/sandboxes/$victim" &
	dpid=$!
	sleep "0.0$((i * 2 - 1))"
	stop_apid KILL
	wait $dpid
	start_apid
done
api GET "/v1/sandboxes?pageSize=200"
LIST=$BODY
echo "# kill -9 loop: $(grep -c 'interrupted' "$LOG") interrupted creates/deletes were recovered"
states=$(jqb '[.items[].status.state]|unique|join(",")')
expect_match "after kill -9 loops every sandbox is in a settled state" '^(Running|Failed|Terminated|Paused)(,(Running|Failed|Terminated|Paused))*$' "$states"
lost=0
for id in "${created[@]}"; do
	api GET /v1/sandboxes/$id
	# A 202 that reached the client must name a sandbox that still exists or was deleted on purpose.
	[ "$CODE" = 200 ] || grep -qE "$id(: removing| removed)" "$LOG" || {
		lost=$((lost + 1))
		echo "# lost $id: GET $CODE $BODY"; grep "$id" "$LOG" | sed 's/^/#   /'
	}
done
expect_eq "no acknowledged sandbox lost" 0 "$lost"
mismatch=0
for id in $(echo "$LIST" | jq -r '.items[]|select(.status.state=="Running" or .status.state=="Paused")|.id'); do
	[ -e "$RUN/$id/state.json" ] && kill -0 "$(sb_pid "$id")" 2>/dev/null || mismatch=$((mismatch + 1))
done
expect_eq "every live sandbox has its processes" 0 "$mismatch"
known=$(echo "$LIST" | jq -r '.items[].id' | sort | tr '\n' ' ')
expect_eq "no runtime state the store does not know" "" "$(for d in $(ls "$RUN"); do case " $known" in *" $d "*) ;; *) echo "$d";; esac; done)"
expect_eq "no sandbox files the store does not know" "" "$(for d in $(ls "$RUN/.sandboxes"); do case " $known" in *" $d "*) ;; *) echo "$d";; esac; done)"

# ---- SIGHUP reload: the key comes from the config file
echo "{\"api-key\":\"$KEY-2\"}" >"$T/apid.json"
stop_apid TERM
start_apid --config "$T/apid.json" --api-key "$KEY" --log-json
expect_eq "--log-json writes JSON log lines" "info" "$(tail -1 "$LOG" | jq -r .level 2>/dev/null)"
echo "{\"api-key\":\"$KEY-3\"}" >"$T/apid.json"
kill -HUP $APID_PID; sleep 0.3
CODE=$(curl -s -o /dev/null -w '%{http_code}' -H "OPEN-SANDBOX-API-KEY: $KEY-3" "$BASE/v1/sandboxes")
expect_eq "SIGHUP reloads the API key" 200 "$CODE"
echo '{"api-key": ' >"$T/apid.json"
kill -HUP $APID_PID; sleep 0.3
CODE=$(curl -s -o /dev/null -w '%{http_code}' -H "OPEN-SANDBOX-API-KEY: $KEY-3" "$BASE/v1/sandboxes")
expect_eq "a broken config on SIGHUP keeps the old settings" 200 "$CODE"
KEY=$KEY-3

# ---- cleanup: delete everything, stop, compare host resources
for id in $(curl -s -H "OPEN-SANDBOX-API-KEY: $KEY" "$BASE/v1/sandboxes?pageSize=200" | jq -r '.items[].id'); do
	curl -s -o /dev/null -X DELETE -H "OPEN-SANDBOX-API-KEY: $KEY" "$BASE/v1/sandboxes/$id"
done
api GET /v1/sandboxes
expect_eq "all sandboxes deleted" 0 "$(jqb .pagination.totalItems)"
stop_apid TERM
expect_eq "no runtime state left" "" "$(ls "$RUN")"
expect_eq "no sandbox monitor left" "" "$(pgrep -f "sbx-apid --listen 127.0.0.1:$PORT" || true)"
after=$(host_snapshot)
# Only apid's (uuid-named) sandboxes: other suites may run at the same time.
expect_eq "no leaked mounts/cgroups/links" "" "$(comm -13 <(echo "$before") <(echo "$after") | grep -E '[0-9a-f]{8}-[0-9a-f]{4}-4' || true)"
finish
