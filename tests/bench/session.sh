#!/bin/bash
# apid → agent round trip: POST /execute of `true` through the session API (apid's agent client,
# apid/agent_client.c, to the sandbox's agent and back), N sequential requests, one curl process
# each, p50/p90/p99; and apid's memory idle, after one request and after all (VmRSS, RssAnon,
# RssFile). Not part of `make bench`: for comparing apid builds side by side, e.g.
#   SBX_BIN=/tmp/old/bin bash tests/bench/session.sh 300; bash tests/bench/session.sh 300
# (SBX_BIN: a directory holding sbx-apid, sbx-launcher and sbx-agent). Needs root and the busybox
# image; runs in a private network namespace and removes what it created.
set -u
. "$(dirname "$0")/lib.sh"
bench_isolate "$0" "$@"
TOP=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${SBX_BIN:-$TOP/build/bin}
N=${1:-200}
[ "$(id -u)" = 0 ] || { echo "session bench: needs root" >&2; exit 1; }
bench_workdir bench-session || exit 1
PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
KEY=bench-$$
"$BIN/sbx-apid" --listen 127.0.0.1:$PORT --data-dir "$T/data" --run-dir "$T/run" \
	--agent "$BIN/sbx-agent" --api-key "$KEY" --log-level warn >"$T/apid.log" 2>&1 &
P=$!
H=(-H "OPEN-SANDBOX-API-KEY: $KEY" -H 'Content-Type: application/json')
cleanup() {
	for id in $(curl -s "${H[@]}" "$BASE/v1/sandboxes?pageSize=200" | jq -r '.items[]?.id'); do
		curl -s -o /dev/null -X DELETE "${H[@]}" "$BASE/v1/sandboxes/$id"
	done
	kill $P 2>/dev/null; wait $P 2>/dev/null
	bench_workdir_remove
}
trap cleanup EXIT
for _ in $(seq 200); do curl -s -o /dev/null "$BASE/health" && break; sleep 0.05; done
mem() { awk '/^(VmRSS|RssAnon|RssFile)/ {printf "%s %d kB  ", $1, $2}' /proc/$P/status; echo; }
sleep 1
echo "apid idle:            $(mem)"
SID=$(curl -s "${H[@]}" -X POST "$BASE/create_session" -d '{}' | jq -r .session_id)
ex() { curl -s -o /dev/null -w '%{time_total}\n' "${H[@]}" -X POST "$BASE/execute" \
	-d "{\"session_id\":\"$SID\",\"command\":\"true\"}"; }
ex >/dev/null
sleep 0.5
echo "after 1 execute:      $(mem)"
for _ in $(seq 20); do ex >/dev/null; done # warm up
for _ in $(seq "$N"); do ex; done | sort -n >"$T/lat"
awk '{a[NR]=$1} END {printf "execute `true` (n=%d): p50 %.2f ms, p90 %.2f ms, p99 %.2f ms\n", NR,
	a[int((NR+1)/2)]*1000, a[int(NR*0.9)]*1000, a[int(NR*0.99)]*1000}' "$T/lat"
echo "after $((N + 21)) executes: $(mem)"
