#!/bin/bash
# Proxy overhead: apid's /sandboxes/{id}/proxy/44772/ping vs the agent's /ping on the sandbox
# address, p50 over sequential requests at 1 client (curl), then proxied requests/s with wrk.
# Runs inside a throwaway network namespace (like t_net.sh); nothing touches the host network.
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${SBX_BIN:-$TOP/build/bin}
N=${N:-500} DUR=${DUR:-10} NCMD=${NCMD:-200}
. "$TOP/tests/bench/lib.sh"
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 0; }
command -v wrk >/dev/null || { echo "wrk missing (scripts/install-deps.sh)"; exit 0; }
NS=sbxbench-$$ T=$(mktemp -d /tmp/sbx-bench.XXXXXX); chmod 711 "$T"
PORT=$((19000 + RANDOM % 1000)) BASE=http://127.0.0.1:$PORT
X() { nsenter --net=/run/netns/$NS "$@"; }
ip netns add $NS; X ip link set lo up
nsenter --net=/run/netns/$NS "$BIN/sbx-apid" --listen 127.0.0.1:$PORT --data-dir "$T/data" \
	--run-dir "$T/run" --agent "$BIN/sbx-agent" --log-level warn >"$T/apid.log" 2>&1 &
APID=$!
trap 'X curl -s -o /dev/null -X DELETE $BASE/v1/sandboxes/$ID; kill $APID; wait $APID; ip netns del $NS; rm -rf "$T"' EXIT
for _ in $(seq 100); do X curl -s -o /dev/null $BASE/health && break; sleep 0.05; done
ID=$(X curl -s -X POST $BASE/v1/sandboxes -d '{"image":{"uri":"local/busybox"},"entrypoint":["sleep","1000"],"resourceLimits":{}}' | jq -r .id)
EP=$(X curl -s "$BASE/v1/sandboxes/$ID/endpoints/44772?direct=true")
DIRECT=http://$(echo "$EP" | jq -r .endpoint)/ping TOK=$(echo "$EP" | jq -r '.headers["X-EXECD-ACCESS-TOKEN"]')
PROXY=$BASE/sandboxes/$ID/proxy/44772/ping
for _ in $(seq 100); do [ "$(X curl -s -o /dev/null -w '%{http_code}' $PROXY)" = 200 ] && break; sleep 0.1; done
p50() { # URL [curl args] → median ms of N sequential requests (one curl process, keep-alive)
	local url=$1; shift
	X curl -s "$@" -o /dev/null -w '%{time_total}\n' $(for _ in $(seq $N); do echo "$url"; done) |
		sort -n | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)] * 1000}'
}
direct=$(p50 "$DIRECT" -H "X-EXECD-ACCESS-TOKEN: $TOK") proxied=$(p50 "$PROXY")
echo "direct  p50: $direct ms   (curl, $N sequential GET /ping, keep-alive)"
echo "proxied p50: $proxied ms"
result "apid proxy overhead p50 (GET /ping)" "$(awk -v p="$proxied" -v d="$direct" 'BEGIN{printf "%.3f", p - d}')" ms lower 0.3
echo "+ wrk -t2 -c16 -d${DUR}s $PROXY"
X wrk -t2 -c16 -d${DUR}s "$PROXY" | tee "$T/wrk"
result "apid proxied requests/s (wrk -c16)" "$(awk '/^Requests\/sec/{print $2}' "$T/wrk")" "/s" higher 5000
echo "+ wrk -t2 -c16 -d${DUR}s -H 'X-EXECD-ACCESS-TOKEN: …' $DIRECT"
X wrk -t2 -c16 -d${DUR}s -H "X-EXECD-ACCESS-TOKEN: $TOK" "$DIRECT"

# Exec round trip through the proxy: POST /command {"command":"echo hi"} until the SSE stream ends
# (execution_complete), 200 sequential requests, one curl process per request.
CMD=$BASE/sandboxes/$ID/proxy/44772/command
for _ in $(seq "$NCMD"); do
	X curl -s -N -o /dev/null -w '%{time_total}\n' -X POST -H 'Content-Type: application/json' \
		-d '{"command":"echo hi"}' "$CMD"
done | sort -n >"$T/cmd"
awk '{a[NR]=$1} END {printf "exec `echo hi` via proxy: p50 %.3f ms, p99 %.3f ms (n=%d)\n", a[int((NR+1)/2)]*1000, a[int(NR*0.99)]*1000, NR}' "$T/cmd"
result "agent exec \`echo hi\` via apid proxy, p50" "$(awk '{a[NR]=$1} END {print a[int((NR+1)/2)]*1000}' "$T/cmd")" ms lower
result "agent exec \`echo hi\` via apid proxy, p99" "$(awk '{a[NR]=$1} END {print a[int(NR*0.99)]*1000}' "$T/cmd")" ms lower
