#!/bin/bash
# sbx-agent micro-benchmark (127.0.0.1, agent on the host): round trip of POST /command `true`
# (request → init → execution_complete → end of stream) over keep-alive connections, p50/p99 at
# 1 and 16 concurrent clients, plus SSE first-byte latency (time to the init event).
#   tests/bench/agent.sh [N_PER_CLIENT_1 (default 500)] [N_PER_CLIENT_16 (default 100)]
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
AGENT=${SBX_BIN:-$TOP/build/bin}/sbx-agent
N1=${1:-500}
N16=${2:-100}
. "$TOP/tests/bench/lib.sh"
[ -x "$AGENT" ] || { echo "build $AGENT first (make build/bin/sbx-agent)"; exit 1; }
T=$(mktemp -d)
TOKEN=bench-$RANDOM$RANDOM
PORT=$(free_port)
SBX_AGENT_TOKEN=$TOKEN "$AGENT" --listen 127.0.0.1:$PORT --max-commands 64 --user "$(id -u):$(id -g)" 2>"$T/agent.log" &
APID=$!
trap 'kill $APID 2>/dev/null; wait 2>/dev/null; rm -rf "$T"' EXIT
URL=http://127.0.0.1:$PORT
for i in $(seq 100); do curl -s -o /dev/null -H "X-EXECD-ACCESS-TOKEN: $TOKEN" "$URL/ping" && break; sleep 0.05; done
curl -s -o /dev/null -H "X-EXECD-ACCESS-TOKEN: $TOKEN" "$URL/ping" ||
	{ echo "agent bench: the agent did not come up on $URL:"; cat "$T/agent.log"; exit 1; }

# One curl process per client, all requests on one keep-alive connection; -w prints per transfer.
client() { # N OUTFILE
	local n=$1 out=$2 cfg=$T/cfg.$RANDOM$RANDOM
	{
		for _ in $(seq "$n"); do
			# `next` resets per-transfer options, so each transfer repeats them
			echo "silent"
			echo "header = \"X-EXECD-ACCESS-TOKEN: $TOKEN\""
			echo "header = \"Content-Type: application/json\""
			echo 'write-out = "%{time_starttransfer} %{time_total}\n"'
			echo "url = \"$URL/command\""
			echo 'data = "{\"command\":\"true\"}"'
			echo "output = /dev/null"
			echo "next"
		done
	} >"$cfg"
	curl -K "$cfg" >"$out" 2>/dev/null
}

stats() { # FILE COLUMN LABEL
	sort -n -k"$2" "$1" | awk -v c="$2" -v label="$3" '{v[NR]=$c*1000} END {
		if (NR == 0) { print label ": no samples"; exit }
		p50 = v[int((NR - 1) * 0.50) + 1]; p99 = v[int((NR - 1) * 0.99) + 1]
		printf "%-40s n=%-5d p50=%.3f ms  p99=%.3f ms  max=%.3f ms\n", label, NR, p50, p99, v[NR] }'
}

echo "sbx-agent bench on $(nproc) CPUs, $(uname -r); agent pid $APID"
echo "idle agent VmRSS: $(awk '/^VmRSS/{print $2, $3}' /proc/$APID/status)"
result "sbx-agent idle RSS" "$(awk '/^VmRSS/{print $2 / 1024}' /proc/$APID/status)" MiB lower 2
client 20 "$T/warm"
client "$N1" "$T/c1"
stats "$T/c1" 2 "exec true round trip, 1 client"
result "sbx-agent exec \`true\` round trip p50, 1 client" \
	"$(sort -n -k2 "$T/c1" | awk '{v[NR]=$2*1000} END {print v[int((NR - 1) * 0.50) + 1]}')" ms lower 2
stats "$T/c1" 1 "SSE first byte (init), 1 client"
for i in $(seq 16); do client "$N16" "$T/c16.$i" & done
wait $(jobs -p | grep -v "^$APID$") 2>/dev/null
cat "$T"/c16.* >"$T/c16"
stats "$T/c16" 2 "exec true round trip, 16 clients"
stats "$T/c16" 1 "SSE first byte (init), 16 clients"
echo "agent VmHWM after bench: $(awk '/^VmHWM/{print $2, $3}' /proc/$APID/status)"
echo "samples: $(wc -l <"$T/c1") (1 client), $(wc -l <"$T/c16") (16 clients)"
