#!/bin/bash
# `sbx exec ID -- true` end to end (process start, endpoint lookup, POST /command through apid's
# proxy, the SSE stream to its end), p50/p99 over N sequential runs, beside the same request made
# by one curl process per run and a local `/bin/true` for the process-start floor. apid runs in a
# private network namespace (bench_isolate); nothing touches the host network.
#   N=200 tests/bench/cli.sh
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${SBX_BIN:-$TOP/build/bin}
N=${N:-200}
. "$TOP/tests/bench/lib.sh"
[ "$(id -u)" = 0 ] || { echo "cli bench: needs root"; exit 0; }
for b in sbx sbx-apid sbx-agent; do [ -x "$BIN/$b" ] || { echo "cli bench: build $BIN/$b first"; exit 1; }; done
bench_isolate "$0" "$@"
bench_workdir cli || exit 1
PORT=$(free_port)
export SBX_URL=http://127.0.0.1:$PORT SBX_API_KEY=bench-$RANDOM
"$BIN/sbx-apid" --listen 127.0.0.1:$PORT --data-dir "$T/data" --run-dir "$T/run" --agent "$BIN/sbx-agent" \
	--api-key "$SBX_API_KEY" --log-level warn >"$T/apid.log" 2>&1 &
APID=$!
ID=
trap '[ -n "$ID" ] && "$BIN/sbx" rm -f "$ID" >/dev/null; kill $APID; wait $APID; bench_workdir_remove' EXIT
for _ in $(seq 100); do curl -s -o /dev/null "$SBX_URL/health" && break; sleep 0.05; done
ID=$("$BIN/sbx" create --wait 2>/dev/null) || { echo "cli bench: create failed"; tail "$T/apid.log"; exit 1; }

# times CMD...: N sequential runs, one duration (ms) per line
times() {
	local i s e
	for ((i = 0; i < N; i++)); do
		s=$EPOCHREALTIME
		"$@" >/dev/null 2>&1
		e=$EPOCHREALTIME
		echo "$s $e"
	done | awk '{printf "%.3f\n", ($2 - $1) * 1000}'
}
stats() { # LABEL < durations
	sort -n | awk -v label="$1" '{v[NR]=$1} END {
		p50 = v[int((NR - 1) * 0.50) + 1]; p99 = v[int((NR - 1) * 0.99) + 1]
		printf "%-44s n=%-4d p50=%.2f ms  p99=%.2f ms  max=%.2f ms\n", label, NR, p50, p99, v[NR] }'
}
pct() { sort -n "$1" | awk -v q="$2" '{v[NR]=$1} END {printf "%.2f", v[int((NR - 1) * q) + 1]}'; }

EP=$(curl -s -H "OPEN-SANDBOX-API-KEY: $SBX_API_KEY" "$SBX_URL/v1/sandboxes/$ID/endpoints/44772" | jq -r .endpoint)
N=20 times "$BIN/sbx" exec "$ID" -- true >/dev/null # warm up
times /bin/true >"$T/true"
times "$BIN/sbx" exec "$ID" -- true >"$T/sbx"
times curl -s -H 'Content-Type: application/json' -d '{"command":"true"}' "http://$EP/command" >"$T/curl"
echo "sbx exec bench on $(nproc) CPUs, $(uname -r), N=$N sequential runs"
stats "local /bin/true (process start floor)" <"$T/true"
stats "curl POST /command via apid's proxy" <"$T/curl"
stats "sbx exec ID -- true" <"$T/sbx"
result "sbx exec \`true\` end to end p50" "$(pct "$T/sbx" 0.50)" ms lower 5 "curl (same request)" "$(pct "$T/curl" 0.50)"
result "sbx exec \`true\` end to end p99" "$(pct "$T/sbx" 0.99)" ms lower
