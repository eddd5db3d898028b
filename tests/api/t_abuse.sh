#!/bin/bash
# API abuse (issue 17): 10,000 malformed or hostile requests (tests/api/abuse.py: bad JSON, wrong
# types, huge bodies and headers, bad methods, path tricks on the proxy route, slowloris clients,
# hundreds of idle connections, then more than the connection limit) against a real apid on
# 127.0.0.1 in a private network namespace. Checked: apid never crashes (same pid, still
# healthy), every answer is a 4xx JSON error or a documented limit of the HTTP layer (SECURITY.md
# "Faults and load"), its memory stays bounded, and a legitimate client creates a session and
# executes in it while the abuse runs.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/api/api_lib.sh"
api_private_netns "$@"
api_prepare "abuse" abuse

TOTAL=${SBX_ABUSE_TOTAL:-10000}
# apid's resident memory may grow by at most this much (KiB) under the abuse: ~1,000 connection
# threads (stack pages touched + libmicrohttpd's 32 KiB per-connection pool) and malloc arenas.
# Measured: 15 MiB at the start, a 40 MiB peak.
RSS_BOUND_KB=${SBX_ABUSE_RSS_KB:-65536}
ABUSER=
before=$(host_snapshot)

start_apid() {
	apid_launch --listen 127.0.0.1:$PORT --data-dir "$DATA" --run-dir "$RUN" --agent "$AGENT" --api-key "$KEY" \
		--max-memory 1Gi --max-body 64Ki --session-idle-timeout 3600
}
start_apid
cleanup() {
	[ -n "$ABUSER" ] && kill "$ABUSER" 2>/dev/null
	# After a crash a fresh apid re-adopts the sandboxes, so that they can be deleted.
	kill -0 "$APID_PID" 2>/dev/null || start_apid
	delete_all
	stop_apid TERM
}
trap 'cleanup; rm -rf "$T"' EXIT
check "apid starts" curl -sf -o /dev/null "$BASE/health"

kb() { awk -v k="$2:" '$1==k{print $2}' /proc/$1/status; }

# A bystander session: the proxy phase aims at its agent port, the path tricks at its id.
api POST /create_session '{}'
SID=$(jqb .session_id)
expect_eq "bystander session created" 200 "$CODE"
rss0=$(kb $APID_PID VmRSS)

python3 "$TOP/tests/api/abuse.py" "$PORT" "$KEY" "$SID" "$TOTAL" "$T/abuse.json" >"$T/abuse.out" 2>&1 &
ABUSER=$!
# A legitimate client, while the abuse runs: create a session, execute in it, delete it.
sleep 2
legit=
for i in 1 2 3; do
	kill -0 $ABUSER 2>/dev/null || break
	api POST /create_session '{"metadata":{"legit":"yes"}}'; c1=$CODE; L=$(jqb .session_id)
	api POST /execute "{\"session_id\":\"$L\",\"command\":\"echo served-$i\"}"; c2="$CODE $(jqb .output | tr -d '\n')"
	api DELETE "/v1/sandboxes/$L"; c3=$CODE
	running=$(kill -0 $ABUSER 2>/dev/null && echo during || echo after)
	legit="$legit|$c1 $c2 $c3 $running"
done
expect_match "a legitimate create + execute + delete is served during the abuse" '\|200 200 served-[0-9] 204 during' "$legit"
for _ in $(seq 600); do kill -0 $ABUSER 2>/dev/null || break; sleep 0.5; done
kill $ABUSER 2>/dev/null && echo "# abuse.py did not finish in 300 s"
wait $ABUSER; ABUSER=
cat "$T/abuse.out"
R=$T/abuse.json
[ -s "$R" ] || { not_ok "abuse client produced its report"; finish; }
sent=$(jq .sent "$R")
echo "# abuse: $(jq -c '{sent, json4xx, bad_count, seconds, idle_opened, idle_closed_by_server, by_status}' "$R")"
echo "# abuse limits: $(jq -c .limit "$R")"
expect_eq "apid did not crash (same pid)" alive "$(kill -0 $APID_PID 2>/dev/null && echo alive)"
expect_eq "... and still answers" 200 "$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$BASE/health")"
[ "$sent" -ge "$TOTAL" ] && ok "$sent hostile requests/connections sent (asked $TOTAL)" || not_ok "$sent hostile requests/connections sent (asked $TOTAL)"
expect_eq "no answer outside a 4xx JSON error or a documented limit" 0 "$(jq .bad_count "$R")"
[ "$(jq .bad_count "$R")" = 0 ] || { jq -c .bad_kinds "$R"; jq -c '.bad[]' "$R" | head -30; } | sed 's/^/#   /'
[ "$(jq .json4xx "$R")" -ge $((TOTAL / 2)) ] && ok "most answers are 4xx JSON errors ($(jq .json4xx "$R"))" ||
	not_ok "most answers are 4xx JSON errors ($(jq .json4xx "$R"))"
# 505 is libmicrohttpd's own answer to "HTTP/9.9" (the raw phase), before apid sees the request.
expect_eq "no 5xx answer (but MHD's 505 to an unknown HTTP version)" "" "$(jq -r '.by_status|keys[]|select(startswith("5") and . != "505")' "$R")"
rss1=$(kb $APID_PID VmRSS) hwm=$(kb $APID_PID VmHWM)
echo "# apid memory: VmRSS before ${rss0} KiB, after ${rss1} KiB, peak (VmHWM) ${hwm} KiB; bound: before + ${RSS_BOUND_KB} KiB"
[ "$hwm" -le $((rss0 + RSS_BOUND_KB)) ] && ok "apid's peak RSS stayed within ${RSS_BOUND_KB} KiB of the start" ||
	not_ok "apid's peak RSS stayed within ${RSS_BOUND_KB} KiB of the start"
api GET "/v1/sandboxes?pageSize=200"
expect_eq "the abuse created no sandbox (only the bystander is listed)" "$SID" "$(jqb '[.items[].id]|join(" ")')"
api POST /execute "{\"session_id\":\"$SID\",\"command\":\"echo still\"}"
expect_eq "the bystander session still executes" "200 still" "$CODE $(jqb .output | tr -d '\n')"
threads=$(ls /proc/$APID_PID/task | wc -l)
for _ in $(seq 60); do [ "$threads" -le 20 ] && break; sleep 1; threads=$(ls /proc/$APID_PID/task | wc -l); done
[ "$threads" -le 20 ] && ok "connection threads are released after the abuse ($threads threads)" ||
	not_ok "connection threads are released after the abuse ($threads threads)"
# An output flood through the SSE stream: 256 MiB of stdout from the bystander's agent, through
# apid's proxy, to a client that reads it all. apid streams it (nothing held per request), so its
# resident memory must not grow with the output; its peak is reset first (clear_refs 5).
echo 5 >/proc/$APID_PID/clear_refs 2>/dev/null
rssf0=$(kb $APID_PID VmRSS)
got=$(curl -sN -m 300 -o /dev/null -w '%{size_download}' -H 'Content-Type: application/json' \
	-d '{"command":"yes xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx | head -c 268435456"}' \
	"$BASE/sandboxes/$SID/proxy/44772/command")
hwmf=$(kb $APID_PID VmHWM)
echo "# SSE flood: ${got} bytes streamed; apid VmRSS before ${rssf0} KiB, peak during ${hwmf} KiB"
[ "${got:-0}" -ge 268435456 ] && ok "256 MiB of output streamed through apid's proxy to the client" ||
	not_ok "256 MiB of output streamed through apid's proxy to the client (got ${got:-0} bytes)"
[ "$hwmf" -le $((rssf0 + 32768)) ] && ok "apid's memory did not grow with the flood (peak within 32 MiB)" ||
	not_ok "apid's memory did not grow with the flood (peak ${hwmf} KiB, before ${rssf0} KiB)"
api POST /execute "{\"session_id\":\"$SID\",\"command\":\"echo after-flood\"}"
expect_eq "the sandbox still executes after the flood" "200 after-flood" "$CODE $(jqb .output | tr -d '\n')"
api DELETE "/v1/sandboxes/$SID"
expect_eq "bystander deleted" 204 "$CODE"
cleanup; trap 'rm -rf "$T"' EXIT
after=$(host_snapshot)
expect_eq "no leaked mounts/cgroups/links/state" "" "$(comm -13 <(echo "$before") <(echo "$after") | grep -E '[0-9a-f]{8}-[0-9a-f]{4}-4' || true)"
finish
