#!/bin/bash
# apid create latency and throughput: POST /v1/sandboxes → the agent answers /ping through apid's
# proxy (on the client's keep-alive connection, as a client of the API reaches it). Cold (no pool) and pooled, at 1 and 16 concurrent clients, then create throughput with
# hey (pooled: as many requests as the pool holds, so every one is a claim). Bounded: every phase
# has a request count and hey a 60 s cap; everything created is deleted, apid is stopped.
#   tests/bench/apid.sh            N1=20 N16=64 POOL=96 THRU=96 (env overrides)
set -u
. "$(dirname "$0")/lib.sh"
bench_isolate "$0" "$@"
TOP=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${SBX_BIN:-$TOP/build/bin}
N1=${N1:-20} N16=${N16:-64} POOL=${POOL:-96} THRU=${THRU:-96}
[ "$(id -u)" = 0 ] || { echo "apid bench: needs root" >&2; exit 1; }
command -v hey >/dev/null || { echo "apid bench: needs hey (scripts/install-deps.sh)" >&2; exit 1; }
bench_workdir bench-apid || exit 1
PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
APID_PID=

start_apid() { # extra args
	"$BIN/sbx-apid" --listen 127.0.0.1:$PORT --data-dir "$T/data" --run-dir "$T/run" \
		--agent "$BIN/sbx-agent" --log-level warn "$@" >>"$T/apid.log" 2>&1 &
	APID_PID=$!
	for _ in $(seq 200); do curl -s -o /dev/null "$BASE/health" && return 0; sleep 0.05; done
	echo "apid did not start"; tail "$T/apid.log"; exit 1
}
delete_all() { # pages of 200 until the list is empty (bounded)
	local ids
	for _ in $(seq 50); do
		ids=$(curl -s "$BASE/v1/sandboxes?pageSize=200" | jq -r '.items[]?.id')
		[ -n "$ids" ] || return 0
		printf '%s\n' $ids | xargs -r -P 8 -I{} curl -s -o /dev/null -X DELETE "$BASE/v1/sandboxes/{}"
	done
}
stop_apid() {
	[ -n "$APID_PID" ] || return 0
	delete_all
	kill -TERM "$APID_PID" 2>/dev/null; wait "$APID_PID" 2>/dev/null; APID_PID=
}
wait_pool() { # N, ≤ 120 s
	for _ in $(seq 1200); do
		[ "$(curl -s "$BASE/health" | jq -r .pool_size)" -ge "$1" ] && return 0
		sleep 0.1
	done
	echo "pool did not reach $1" >&2
}
trap 'stop_apid; bench_workdir_remove' EXIT

# latency LABEL N CONC: create → /ping ready, per request, in ms
latency() {
	python3 - "$BASE" "$2" "$3" "$1" "$T/latency" <<'EOF'
import http.client, json, sys, threading, time
base, n, conc, label, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
# Readiness is probed the way a client sees it: GET /ping through apid's proxy on the client's own
# keep-alive connection (502/503 until the agent answers).
def ping(c, sid):
    c.request("GET", "/v1/sandboxes/%s/proxy/44772/ping" % sid)
    r = c.getresponse(); r.read()
    return r.status == 200
host, port = base[7:].split(":")
body = json.dumps({"image": {"uri": "local/busybox"}, "entrypoint": ["sleep", "100000"]})
created, ready, lock, todo = [], [], threading.Lock(), [n]
def one(c):
    t0 = time.perf_counter()
    c.request("POST", "/v1/sandboxes", body, {"Content-Type": "application/json"})
    r = c.getresponse(); data = r.read()
    if r.status != 202:
        raise SystemExit("create failed: %d %s" % (r.status, data))
    t1 = time.perf_counter()
    sid = json.loads(data)["id"]
    for _ in range(20000):
        if ping(c, sid):
            break
        time.sleep(0.0005)
    else:
        raise SystemExit("sandbox %s: agent never answered /ping" % sid)
    t2 = time.perf_counter()
    with lock:
        created.append((t1 - t0) * 1e3); ready.append((t2 - t0) * 1e3)
def worker():
    c = http.client.HTTPConnection(host, int(port), timeout=60)
    while True:
        with lock:
            if todo[0] == 0: return
            todo[0] -= 1
        one(c)
t0 = time.perf_counter()
ts = [threading.Thread(target=worker) for _ in range(conc)]
[t.start() for t in ts]; [t.join() for t in ts]
wall = time.perf_counter() - t0
def pct(v, p):
    v = sorted(v); return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]
print("%-8s c=%-3d n=%-4d  create p50 %7.2f p99 %7.2f ms | ready(/ping) p50 %7.2f p99 %7.2f ms | %6.1f sandboxes/s"
      % (label, conc, n, pct(created, 50), pct(created, 99), pct(ready, 50), pct(ready, 99), n / wall))
open(out, "w").write("%f %f\n" % (pct(ready, 50), pct(ready, 99)))
EOF
}
throughput() { # LABEL N
	local out c=$(($2 < 16 ? $2 : 16)) # hey refuses fewer requests than clients
	out=$(timeout 60 hey -n "$2" -c "$c" -t 60 -m POST -T application/json \
		-d '{"image":{"uri":"local/busybox"},"entrypoint":["sleep","100000"]}' "$BASE/v1/sandboxes" 2>&1)
	# hey leaves out percentiles it has too few samples for (99% under 100 requests).
	echo "$out" | awk '/Requests\/sec/{print $2}' >"$T/rate"
	printf '%-8s hey -n %s -c %s: %s creates/s, p50 %s s, p95 %s s, p99 %s s, status %s\n' "$1" "$2" "$c" \
		"$(echo "$out" | awk '/Requests\/sec/{print $2}')" \
		"$(echo "$out" | awk '/ 50% in/{print $3}')" "$(echo "$out" | awk '/ 95% in/{print $3}')" \
		"$(echo "$out" | awk '/ 99% in/{print $3}' | grep . || echo n/a)" \
		"$(echo "$out" | awk '/^ +\[[0-9]+\]/{printf "%s%s ", $1, $2}')"
}

echo "== apid create latency ($(nproc) CPUs, $(uname -r))"
start_apid
latency cold 1 1 >/dev/null # warm the page cache
delete_all
latency cold "$N1" 1; delete_all
result "apid create -> agent ready p50, cold" "$(cut -d' ' -f1 "$T/latency")" ms lower 10 \
	published:hosted-services 90
latency cold "$N16" 16; delete_all
throughput cold "$THRU"; delete_all
stop_apid

start_apid --pool "local/busybox:$POOL" --pool-concurrency 4
wait_pool "$POOL"; latency pooled "$N1" 1; delete_all
result "apid create -> agent ready p50, pooled" "$(cut -d' ' -f1 "$T/latency")" ms lower 2 \
	published:pooled-docker 50
wait_pool "$POOL"; latency pooled "$N16" 16; delete_all
wait_pool "$POOL"; throughput pooled "$THRU"
result "apid pooled creates/s (hey -c 16)" "$(cat "$T/rate")" "/s" higher 500 published:pooled-docker 500
curl -s "$BASE/metrics" | grep -E '^sbx_apid_pool_claims_total'
delete_all
stop_apid
