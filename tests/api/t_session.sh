#!/bin/bash
# Black-box tests of sbx-apid's simple session API (/create_session, /execute, /execute_batch,
# /upload_file, /cleanup), the warm pool behind POST /v1/sandboxes (claim, per-request
# entrypoint/env/limits, refill), /health pool figures and /metrics, against a real apid on
# 127.0.0.1 with its own data and run directories. Needs root, the busybox image and sbx-agent.
# apid creates its bridge and nftables table in the network namespace it runs in: run this whole
# script in a private one (lo only), never in the host's.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/api/api_lib.sh"
api_private_netns "$@"
api_prepare "session" session
IDLE=6

start_apid() {
	apid_launch --listen 127.0.0.1:$PORT --data-dir "$DATA" --run-dir "$RUN" --agent "$AGENT" \
		--api-key "$KEY" --max-memory 1Gi --pool local/busybox:2 --pool-concurrency 2 \
		--session-idle-timeout $IDLE "$@"
}
trap api_cleanup EXIT
health() { curl -s "$BASE/health"; }
wait_pool() { # N: waits (≤ 20 s) until the pool has N ready members
	for _ in $(seq 200); do
		[ "$(health | jq -r .pool_size)" = "$1" ] && return 0
		sleep 0.1
	done
	return 1
}
sbx_limit() { # ID memory|pids → the limit in the sandbox's cgroup (v2, or the v1 hierarchy)
	local pid cg
	pid=$(jq -r .pid "$RUN/$1/state.json" 2>/dev/null)
	if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
		cg=$(awk -F: '$1=="0"{print $3}' /proc/$pid/cgroup 2>/dev/null)
		cat "/sys/fs/cgroup$cg/$2.max" 2>/dev/null
	else
		cg=$(awk -F: -v c="$2" '$2==c{print $3}' /proc/$pid/cgroup 2>/dev/null)
		case $2 in
		memory) cat "/sys/fs/cgroup/memory$cg/memory.limit_in_bytes" 2>/dev/null ;;
		pids) cat "/sys/fs/cgroup/pids$cg/pids.max" 2>/dev/null ;;
		esac
	fi
}
seen() { ls "$RUN" 2>/dev/null | grep -E '^[0-9a-f-]{36}$' >>"$T/seen"; }

start_apid || { not_ok "apid starts"; finish; }
ok "apid starts with --pool local/busybox:2"

# ---- /health and the pool filling up
check "pool fills to 2" wait_pool 2
seen
H=$(health)
expect_eq "health: status, pool_size, active_sessions" "healthy 2 0" "$(printf '%s' "$H" | jq -r '"\(.status) \(.pool_size) \(.active_sessions)"')"
expect_eq "health: per-key pool" "local/busybox 2 2 2" "$(printf '%s' "$H" | jq -r '.pools[] | "\(.image) \(.ready) \(.min) \(.max)"')"
api GET /v1/sandboxes
expect_eq "pool members are not listed" "0" "$(jqb '.items | length')"

# ---- auth and routing
CODE=$(curl -s -o "$T/body" -w '%{http_code}' -X POST "$BASE/create_session"); BODY=$(cat "$T/body")
expect_eq "create_session without key → 401" "401 MISSING_API_KEY" "$CODE $(jqb .code)"
expect_err "execute with a wrong key → 401" 401 INVALID_API_KEY POST /execute '{}' -H "OPEN-SANDBOX-API-KEY: nope"
expect_err "GET /execute → 405" 405 SANDBOX::METHOD_NOT_ALLOWED GET /execute
expect_err "create_session bad JSON → 400" 400 SANDBOX::INVALID_PARAMETER POST /create_session '{"image":'
expect_err "create_session unknown field → 400" 400 SANDBOX::INVALID_PARAMETER POST /create_session '{"bananas":1}'
expect_err "create_session unknown image → 400" 400 SANDBOX::IMAGE_NOT_FOUND POST /create_session '{"image":"local/nope"}'

# ---- create (from the pool) and execute
api POST /create_session ""
SID=$(jqb .session_id)
expect_eq "create_session → 200 from the pool" "200 true" "$CODE $(jqb .pooled)"
expect_eq "health: active_sessions 1" "1" "$(health | jq -r .active_sessions)"
api POST /execute "{\"session_id\":\"$SID\",\"command\":\"echo hi\"}"
expect_eq "execute echo hi" "200 hi|0 false" "$CODE $(jqb -j .output | tr '\n' '|')$(jqb .exit_code) $(jqb .timed_out)"
api POST /execute "{\"session_id\":\"$SID\",\"command\":\"id -u; pwd\"}"
expect_eq "runs as the sandbox user in /workspace" "1000
/workspace" "$(jqb .output | head -2)"
api POST /execute "{\"session_id\":\"$SID\",\"command\":\"echo out; echo err >&2; exit 3\"}"
expect_eq "combined output and exit code" "err|out|3" "$(jqb -j .output | sort | tr '\n' '|')$(jqb .exit_code)"
api POST /execute "{\"session_id\":\"$SID\",\"command\":\"echo start; sleep 30\",\"timeout\":1}"
expect_eq "timeout enforced (killed, 137, timed_out)" "200 137 true start" "$CODE $(jqb .exit_code) $(jqb .timed_out) $(jqb .output)"
expect_match "timeout: returns in about 1 s" '^[0-9]{3,4}$' "$(jqb .duration_ms)"
api POST /execute "{\"session_id\":\"$SID\",\"command\":\"no-such-cmd\"}"
expect_eq "unknown command → 127" "127" "$(jqb .exit_code)"
api POST /execute "{\"session_id\":\"$SID\",\"command\":\"echo a > f; cat f\"}"
expect_eq "workspace is writable" "a" "$(jqb .output)"

# ---- execute errors
expect_err "execute unknown session → 404" 404 SANDBOX::NOT_FOUND POST /execute '{"session_id":"00000000-0000-4000-8000-000000000000","command":"true"}'
expect_err "execute malformed session id → 404" 404 SANDBOX::NOT_FOUND POST /execute '{"session_id":"../x","command":"true"}'
expect_err "execute bad JSON → 400" 400 SANDBOX::INVALID_PARAMETER POST /execute '{"session_id":'
expect_err "execute empty body → 400" 400 SANDBOX::INVALID_PARAMETER POST /execute ''
expect_err "execute missing command → 400" 400 SANDBOX::INVALID_PARAMETER POST /execute "{\"session_id\":\"$SID\"}"
expect_err "execute empty command → 400" 400 SANDBOX::INVALID_PARAMETER POST /execute "{\"session_id\":\"$SID\",\"command\":\"\"}"
expect_err "execute session_id not a string → 400" 400 SANDBOX::INVALID_PARAMETER POST /execute '{"session_id":5,"command":"true"}'
expect_err "execute timeout 0 → 400" 400 SANDBOX::INVALID_PARAMETER POST /execute "{\"session_id\":\"$SID\",\"command\":\"true\",\"timeout\":0}"
expect_err "execute timeout string → 400" 400 SANDBOX::INVALID_PARAMETER POST /execute "{\"session_id\":\"$SID\",\"command\":\"true\",\"timeout\":\"5\"}"
api POST /v1/sandboxes '{"image":{"uri":"local/busybox"},"entrypoint":["sleep","1000"]}'
PLAIN=$(jqb .id)
expect_err "execute on a non-session sandbox → 404" 404 SANDBOX::NOT_FOUND POST /execute "{\"session_id\":\"$PLAIN\",\"command\":\"true\"}"

# ---- execute_batch
api POST /execute_batch "{\"session_id\":\"$SID\",\"commands\":[\"echo a\",\"false\",\"echo c\"]}"
expect_eq "execute_batch: results in order" "200 3 a|:0 :1 c|:0 " "$CODE $(jqb length) $(jqb -j '.[] | "\(.output):\(.exit_code) "' | tr '\n' '|')"
api POST /execute_batch "{\"session_id\":\"$SID\",\"commands\":[\"true\",\"exit 4\",\"echo never\"],\"stop_on_error\":true}"
expect_eq "execute_batch stop_on_error" "2 4" "$(jqb length) $(jqb '.[-1].exit_code')"
api POST /execute_batch "{\"session_id\":\"$SID\",\"commands\":[\"cd /tmp\",\"pwd\"]}"
expect_eq "execute_batch: each command starts in /workspace" "/workspace" "$(jqb '.[1].output' | head -1)"
expect_err "execute_batch empty list → 400" 400 SANDBOX::INVALID_PARAMETER POST /execute_batch "{\"session_id\":\"$SID\",\"commands\":[]}"
expect_err "execute_batch non-string item → 400" 400 SANDBOX::INVALID_PARAMETER POST /execute_batch "{\"session_id\":\"$SID\",\"commands\":[\"true\",5]}"
expect_err "execute_batch unknown session → 404" 404 SANDBOX::NOT_FOUND POST /execute_batch '{"session_id":"00000000-0000-4000-8000-000000000000","commands":["true"]}'

# ---- upload_file
printf 'line1\nline2\n' >"$T/up.txt"
head -c 100000 /dev/urandom >"$T/up.bin"
api POST /upload_file "" -F "session_id=$SID" -F "file=@$T/up.txt" -F "destination=sub/dir/up.txt"
expect_eq "upload_file relative → /workspace" "200 /workspace/sub/dir/up.txt 12" "$CODE $(jqb .path) $(jqb .size)"
api POST /execute "{\"session_id\":\"$SID\",\"command\":\"cat sub/dir/up.txt; stat -c %u sub/dir/up.txt\"}"
expect_eq "uploaded file content, owned by the sandbox user" "line1 line2 1000 " "$(jqb -j .output | tr '\n' ' ')"
api POST /upload_file "" -F "session_id=$SID" -F "file=@$T/up.bin" -F "destination=/tmp/up.bin"
SUM=$(md5sum <"$T/up.bin" | cut -d' ' -f1)
api POST /execute "{\"session_id\":\"$SID\",\"command\":\"md5sum /tmp/up.bin\"}"
expect_eq "binary upload to an absolute path is exact" "$SUM" "$(jqb .output | cut -d' ' -f1)"
api POST /upload_file "" -F "session_id=$SID" -F "file=@$T/up.txt"
expect_eq "upload_file without destination uses the file name" "200 /workspace/up.txt" "$CODE $(jqb .path)"
expect_err "upload_file unknown session → 404" 404 SANDBOX::NOT_FOUND POST /upload_file "" -F "session_id=00000000-0000-4000-8000-000000000000" -F "file=@$T/up.txt"
expect_err "upload_file without file → 400" 400 SANDBOX::INVALID_PARAMETER POST /upload_file "" -F "session_id=$SID" -F "destination=x"
expect_err "upload_file without session_id → 400" 400 SANDBOX::INVALID_PARAMETER POST /upload_file "" -F "file=@$T/up.txt"
expect_err "upload_file JSON body → 400" 400 SANDBOX::INVALID_PARAMETER POST /upload_file "{\"session_id\":\"$SID\"}"

# ---- cleanup
expect_err "cleanup bad body → 400" 400 SANDBOX::INVALID_PARAMETER POST /cleanup '[]'
api POST /cleanup "{\"session_id\":\"$SID\"}"
expect_eq "cleanup → 200" "200 cleaned" "$CODE $(jqb .status)"
expect_err "execute after cleanup → 404" 404 SANDBOX::NOT_FOUND POST /execute "{\"session_id\":\"$SID\",\"command\":\"true\"}"
expect_err "cleanup twice → 404" 404 SANDBOX::NOT_FOUND POST /cleanup "{\"session_id\":\"$SID\"}"

# ---- idle expiry (--session-idle-timeout $IDLE)
api POST /create_session '{"env":{"GREETING":"hello"}}'
SID2=$(jqb .session_id)
expect_eq "create_session with env (cold: env needs an entrypoint to ride on)" "200 false" "$CODE $(jqb .pooled)"
api POST /execute "{\"session_id\":\"$SID2\",\"command\":\"echo \$GREETING\"}"
expect_eq "session env reaches commands" "hello" "$(jqb .output)"
sleep $((IDLE - 3))
api POST /execute "{\"session_id\":\"$SID2\",\"command\":\"true\"}"
expect_eq "activity keeps a session alive" "200" "$CODE"
sleep $((IDLE - 3))
api POST /execute "{\"session_id\":\"$SID2\",\"command\":\"true\"}"
expect_eq "still alive after 2×(idle-3) s of activity" "200" "$CODE"
sleep $((IDLE + 2))
expect_err "idle session expired → 404" 404 SANDBOX::NOT_FOUND POST /execute "{\"session_id\":\"$SID2\",\"command\":\"true\"}"

# ---- warm pool behind POST /v1/sandboxes
check "pool refilled to 2" wait_pool 2
api POST /v1/sandboxes '{"image":{"uri":"local/busybox"},"entrypoint":["sh","-c","echo $FOO > /tmp/foo; sleep 1000"],"env":{"FOO":"bar"},"metadata":{"sbx-session":"true","team":"a"},"timeout":600,"resourceLimits":{"memory":"256Mi","pids":"64"}}'
PID1=$(jqb .id)
expect_eq "pooled create → 202 Running with metadata and expiry" "202 Running a true" "$CODE $(jqb .status.state) $(jqb .metadata.team) $(jqb 'has("expiresAt")')"
api POST /execute "{\"session_id\":\"$PID1\",\"command\":\"sleep 0.2; cat /tmp/foo; echo \$FOO\"}"
expect_eq "pooled: entrypoint ran with the request's env; commands see env" "bar bar " "$(jqb -j .output | tr '\n' ' ')"
expect_eq "pooled: memory limit lowered within the class" "268435456" "$(sbx_limit "$PID1" memory)"
expect_eq "pooled: pids limit lowered within the class" "64" "$(sbx_limit "$PID1" pids)"
# The claim changes the member's cgroup and its config.json together (sbx_container_update): the
# record says what the cgroup has, swap off (memory.swap = memory.limit) as in a cold create.
expect_eq "pooled: the recorded config.json matches the cgroup (memory, swap, pids)" \
	"$(sbx_limit "$PID1" memory) $(sbx_limit "$PID1" memory) $(sbx_limit "$PID1" pids)" \
	"$(jq -r '.linux.resources | "\(.memory.limit) \(.memory.swap) \(.pids.limit)"' "$RUN/.sandboxes/$PID1/config.json" 2>&1)"
api GET "/v1/sandboxes/$PID1"
expect_eq "pooled sandbox is listed with the request's entrypoint" "sh local/busybox" "$(jqb '.entrypoint[0]') $(jqb .image.uri)"
check "pool refills after a claim" wait_pool 2
seen
api POST /v1/sandboxes '{"image":{"uri":"local/busybox"},"entrypoint":["sh","-c","exit 3"]}'
PID2=$(jqb .id)
for _ in $(seq 50); do api GET "/v1/sandboxes/$PID2"; [ "$(jqb .status.state)" = Failed ] && break; sleep 0.1; done
expect_eq "pooled: the sandbox ends with its entrypoint (exit 3 → Failed)" "Failed" "$(jqb .status.state)"
expect_match "pooled: exit status recorded" "code 3" "$(jqb .status.message)"
api POST /v1/sandboxes '{"image":{"uri":"local/busybox"},"entrypoint":["sleep","1000"],"resourceLimits":{"memory":"900Mi"}}'
expect_eq "above the pool's class → cold create" "202" "$CODE"

# A member whose agent refuses the entrypoint (here: it already has one, given behind apid's back)
# is removed once adopted, and the claim goes on to the next member or a cold create.
check "pool refilled to 2 again" wait_pool 2
listed=$(curl -s -H "OPEN-SANDBOX-API-KEY: $KEY" "$BASE/v1/sandboxes?pageSize=200" | jq -r '.items[].id')
members=$(ls "$RUN/.sandboxes" | grep -vxF "$listed" | xargs)
poisoned=0
for id in $members; do
	pid=$(jq -r .pid "$RUN/$id/state.json" 2>/dev/null)
	code=$(nsenter --net=/proc/${pid:-0}/ns/net curl -s -o /dev/null -w '%{http_code}' -m 5 \
		-H "X-EXECD-ACCESS-TOKEN: $(cat "$RUN/.sandboxes/$id/token" 2>/dev/null)" \
		-H 'Content-Type: application/json' -d '{"argv":["sleep","1000"]}' http://127.0.0.1:44772/entrypoint)
	[ "$code" = 200 ] && poisoned=$((poisoned + 1))
done
expect_eq "both pool members given an entrypoint behind apid's back" "2 2" "$(echo $members | wc -w) $poisoned"
seen
api POST /v1/sandboxes '{"image":{"uri":"local/busybox"},"entrypoint":["sh","-c","echo handed > /tmp/h; sleep 1000"],"metadata":{"sbx-session":"true"}}'
PID3=$(jqb .id)
expect_eq "create past refusing members → 202 Running" "202 Running" "$CODE $(jqb .status.state)"
api POST /execute "{\"session_id\":\"$PID3\",\"command\":\"sleep 0.2; cat /tmp/h\"}"
expect_eq "... and its own entrypoint ran" "handed" "$(jqb -r .output | tr -d '\n')"
gone=0
for id in $members; do
	for _ in $(seq 50); do [ -e "$RUN/$id" ] || [ -e "$RUN/.sandboxes/$id" ] || break; sleep 0.1; done
	[ -e "$RUN/$id" ] || [ -e "$RUN/.sandboxes/$id" ] || gone=$((gone + 1))
	[ "$id" = "$PID3" ] && gone=-99
done
expect_eq "the refusing members are removed, none handed out" "2" "$gone"
expect_eq "apid logs each refusal" "2" "$(grep -c 'refused the entrypoint' "$LOG")"

# ---- /metrics
M=$(curl -s "$BASE/metrics")
expect_match "metrics: pool hits counted" 'sbx_apid_pool_claims_total\{result="hit"\} [1-9]' "$M"
expect_match "metrics: create latency histogram (pool)" 'sbx_apid_create_duration_seconds_count\{source="pool"\} [1-9]' "$M"
expect_match "metrics: create latency histogram (cold)" 'sbx_apid_create_duration_seconds_bucket\{source="cold",le="\+Inf"\} [1-9]' "$M"
expect_match "metrics: sandboxes by state" 'sbx_apid_sandboxes\{state="Running"\} [1-9]' "$M"
expect_match "metrics: errors by code" 'sbx_apid_errors_total\{status="404",code="SANDBOX::NOT_FOUND"\} [1-9]' "$M"
expect_match "metrics: per-key pool gauge" 'sbx_apid_pool_ready\{key="local/busybox' "$M"
expect_match "metrics: proxy counter exported" 'sbx_apid_proxy_requests_total\{code="2xx"\}' "$M"

# ---- nothing leaks: delete everything, stop apid (removes the unclaimed pool members). Other
# tests may run sandboxes meanwhile, so only this test's sandbox ids are looked for.
seen
delete_all; stop_apid TERM
sleep 0.5
ids=$(sort -u "$T/seen" | paste -sd'|')
expect_eq "no leaked mounts, cgroups or state of this test's sandboxes" "" "$(host_snapshot | grep -E "${ids:-none}")"
expect_eq "no runtime state or sandbox directories left" "" "$(ls "$RUN" "$RUN/.sandboxes" 2>/dev/null | grep -v ':$' | grep .)"
finish
