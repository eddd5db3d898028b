#!/bin/bash
# Egress by domain name (docs/egress.md): what apid's resolver and the per-sandbox nftables chain
# cost a sandbox. From inside sandboxes (python3 of the host image), p50/p99 of
#   - an A query through apid's resolver (10.88.0.1) vs straight to the upstream server it
#     forwards to (from a sandbox allowed to reach it), and with a 1,000-rule policy;
#   - a TCP connect to an allowed outside address with no rules vs a 1,000-rule policy.
# Everything runs in two throwaway network namespaces, as in tests/api/t_egress.sh: the upstream
# DNS server and the web server live at 198.18.x addresses of the "outside" one.
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${SBX_BIN:-$TOP/build/bin}
. "$TOP/tests/bench/lib.sh"
N=${N_EGRESS:-300}
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 0; }
[ -d /var/lib/sbx/images/host ] || { echo "egress bench: no host image (make rootfs)"; exit 0; }
NS=sbxbeg-$$ OUT=sbxbego-$$ T=$(mktemp -d /tmp/sbx-bench-egress.XXXXXX); chmod 711 "$T"
PORT=$((19000 + RANDOM % 1000)) BASE=http://127.0.0.1:$PORT
X() { nsenter --net=/run/netns/$NS "$@"; }
O() { nsenter --net=/run/netns/$OUT "$@"; }
PIDS=()
cleanup() {
	for id in $(X curl -s "$BASE/v1/sandboxes?pageSize=100" | jq -r '.items[].id' 2>/dev/null); do
		X curl -s -o /dev/null -X DELETE "$BASE/v1/sandboxes/$id"
	done
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	ip netns del $NS 2>/dev/null; ip netns del $OUT 2>/dev/null; rm -rf "$T"
}
trap cleanup EXIT
ip netns add $NS; ip netns add $OUT
X ip link set lo up; O ip link set lo up
X ip link add up0 type veth peer name dn0 netns $OUT
X ip addr add 192.0.2.1/24 dev up0; X ip link set up0 up
O ip addr add 192.0.2.2/24 dev dn0; O ip link set dn0 up
X sysctl -qw net.ipv4.ip_forward=1
O ip addr add 198.18.0.53/32 dev dn0; O ip addr add 198.18.1.1/32 dev dn0
X ip route add 198.18.0.0/15 via 192.0.2.2
nsenter --net=/run/netns/$OUT python3 "$TOP/tests/api/dns_server.py" 198.18.0.53 53 /dev/null allowed.test=198.18.1.1 &
PIDS+=($!)
# The connect target accepts and closes at once, with a deep backlog: python's http.server
# listens with a backlog of 5, and SYNs dropped on its full queue showed up as 1 s p99s.
nsenter --net=/run/netns/$OUT python3 -c 'import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.18.1.1", 80)); s.listen(4096)
while True: s.accept()[0].close()' >/dev/null 2>&1 &
PIDS+=($!)
nsenter --net=/run/netns/$NS "$BIN/sbx-apid" --listen 127.0.0.1:$PORT --data-dir "$T/data" --run-dir "$T/run" \
	--agent "$BIN/sbx-agent" --bridge sbx0 --subnet 10.88.0.0/16 --dns-upstream 198.18.0.53 --log-level warn >"$T/apid.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do X curl -s -o /dev/null $BASE/health && break; sleep 0.05; done
HI='"image":{"uri":"local/host"},"resourceLimits":{"memory":"256Mi"}'
create() { X curl -s -X POST "$BASE/v1/sandboxes" --data-binary "@$1" | jq -r .id; }
jq -cn "{$HI}"' + {entrypoint:["sleep","1000"], networkPolicy:{defaultAction:"allow"}}' >"$T/open.json"
jq -cn "{$HI}"' + {entrypoint:["sleep","1000"], networkPolicy:{defaultAction:"deny", egress:[{action:"allow", target:"allowed.test"}]}}' >"$T/one.json"
# 1,000 rules: 500 names and 500 addresses that do not match, before the one that does.
jq -cn "{$HI}"' + {entrypoint:["sleep","1000"], networkPolicy:{defaultAction:"deny", egress:
	([range(500) | {action:"allow", target:"h\(.).example.com"}] + [range(500) | {action:"deny", target:"198.19.\(. / 256 | floor).\(. % 256)"}] +
	 [{action:"allow", target:"allowed.test"}])}}' >"$T/big.json"
OPEN=$(create "$T/open.json") ONE=$(create "$T/one.json") BIG=$(create "$T/big.json")
px() { echo "$BASE/sandboxes/$1/proxy/44772"; }
for id in $OPEN $ONE $BIG; do
	for _ in $(seq 100); do [ "$(X curl -s -o /dev/null -w '%{http_code}' "$(px $id)/ping")" = 200 ] && break; sleep 0.1; done
done
B64=$(base64 -w0 "$TOP/tests/api/egress_probe.py")
probe() {
	X curl -sN -m 300 -H 'Content-Type: application/json' \
		-d "$(jq -cn --arg c "echo $B64 | base64 -d > /tmp/p.py && python3 /tmp/p.py ${*:2}" '{command:$c}')" "$(px "$1")/command" |
		sed 's/^data: //' | jq -rR 'fromjson? | select(.type=="stdout") | .text' 2>/dev/null | tr -d '\n'
}
probe $ONE resolve allowed.test >/dev/null; probe $BIG resolve allowed.test >/dev/null # learn the address
# Interleaved: each pair of runs measures both sides back to back, three rounds.
for r in 1 2 3; do
	echo "$(probe $OPEN qbench 198.18.0.53 allowed.test $N)" >>"$T/q-direct"
	echo "$(probe $ONE qbench 10.88.0.1 allowed.test $N)" >>"$T/q-apid"
	echo "$(probe $BIG qbench 10.88.0.1 allowed.test $N)" >>"$T/q-big"
	echo "$(probe $ONE cbench 198.18.1.1 80 $N)" >>"$T/c-one"
	echo "$(probe $BIG cbench 198.18.1.1 80 $N)" >>"$T/c-big"
	echo "$(probe $OPEN cbench 198.18.1.1 80 $N)" >>"$T/c-open"
done
med() { sort -n -k"$2" "$1" | awk -v k="$2" '{a[NR]=$k} END {print a[int((NR+1)/2)]}'; }
for f in q-direct q-apid q-big c-open c-one c-big; do printf '%-9s p50/p99 ms per round: %s\n' "$f" "$(tr '\n' ';' <"$T/$f")"; done
result "DNS A query p50, straight to the upstream (from a sandbox)" "$(med "$T/q-direct" 1)" ms lower
result "DNS A query p50, through apid's resolver" "$(med "$T/q-apid" 1)" ms lower
result "DNS A query p50, through apid's resolver, 1,000-rule policy" "$(med "$T/q-big" 1)" ms lower
result "TCP connect p50, allow-all sandbox" "$(med "$T/c-open" 1)" ms lower
result "TCP connect p50, one-name policy" "$(med "$T/c-one" 1)" ms lower
result "TCP connect p50, 1,000-rule policy" "$(med "$T/c-big" 1)" ms lower
