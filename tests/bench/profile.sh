#!/bin/bash
# make profile: where the time of a sandbox start goes, with perf (Debian's linux-perf), system
# wide, call graphs. Two workloads, each bounded by a count:
#   1. N1 sequential `sbxrun run --net none --image busybox -- /bin/true`
#   2. N2 sequential cold `POST /v1/sandboxes` to an apid in a private network and mount namespace
#      (run dir on a tmpfs, as on a systemd host), then deleted.
# For each: CPU share by process, the syscalls (kernel entry points) that cost the most CPU in the
# sandbox's processes, and the hottest symbols. perf sees CPU, not waiting: pair it with
# bench/apid.sh and bench/run.sh for wall time.
#   N1=200 N2=60 tests/bench/profile.sh      (perf.data files kept under $OUT, default a temp dir)
set -u
. "$(dirname "$0")/lib.sh"
bench_isolate "$0" "$@"
TOP=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${SBX_BIN:-$TOP/build/bin}
N1=${N1:-200} N2=${N2:-60}
[ "$(id -u)" = 0 ] || { echo "profile: needs root" >&2; exit 1; }
command -v perf >/dev/null || { echo "profile: needs perf (linux-perf; scripts/install-deps.sh)" >&2; exit 1; }
OUT=${OUT:-$(mktemp -d /tmp/sbx-profile.XXXXXX)}
mkdir -p "$OUT" || exit 1
bench_workdir profile || exit 1
APID_PID=
cleanup() {
	if [ -n "$APID_PID" ]; then
		for id in $(curl -s "$BASE/v1/sandboxes?pageSize=200" | jq -r '.items[]?.id'); do
			curl -s -o /dev/null -X DELETE "$BASE/v1/sandboxes/$id"
		done
		kill -TERM "$APID_PID" 2>/dev/null
		wait "$APID_PID" 2>/dev/null
	fi
	bench_workdir_remove
}
trap cleanup EXIT

# report DATA COMMS: share by process, then syscalls and symbols of the given processes
report() {
	echo "-- CPU by process (all CPUs; swapper = idle)"
	perf report -i "$1" --no-children --sort comm -q -g none 2>/dev/null | head -8
	echo "-- syscalls by CPU in $2 (inclusive, % of all samples)"
	perf report -i "$1" --children --comm "$2" --sort sym -q -g none 2>/dev/null |
		grep -E '\[k\] (__x64_sys_|__do_sys_)' | head -14
	echo "-- hottest symbols in $2 (exclusive)"
	perf report -i "$1" --no-children --comm "$2" --sort dso,sym -q -g none 2>/dev/null | head -12
}

echo "== 1. sbxrun run /bin/true x $N1 ($(nproc) CPUs, $(uname -r))"
"$BIN/sbxrun" run --net none --image busybox -- /bin/true # seccomp cache, page cache
perf record -q -a -g -F 4999 -o "$OUT/sbxrun.data" -- \
	sh -c "for i in \$(seq $N1); do '$BIN/sbxrun' run --net none --image busybox -- /bin/true; done" ||
	exit 1
report "$OUT/sbxrun.data" sbxrun,sbx-init,true

echo
echo "== 2. apid cold create x $N2"
PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
"$BIN/sbx-apid" --listen 127.0.0.1:$PORT --data-dir "$T/data" --run-dir "$T/run" \
	--agent "$BIN/sbx-agent" --log-level warn >"$T/apid.log" 2>&1 &
APID_PID=$!
for _ in $(seq 200); do curl -s -o /dev/null "$BASE/health" && break; sleep 0.05; done
body='{"image":{"uri":"local/busybox"},"entrypoint":["sleep","100000"]}'
curl -s -o /dev/null -X POST -H 'Content-Type: application/json' -d "$body" "$BASE/v1/sandboxes"
perf record -q -a -g -F 4999 -o "$OUT/apid.data" -- \
	sh -c "for i in \$(seq $N2); do curl -s -o /dev/null -X POST -H 'Content-Type: application/json' \
		-d '$body' '$BASE/v1/sandboxes' || exit 1; done" || exit 1
report "$OUT/apid.data" sbx-monitor,sbx-launcher,sbx-init,sbx-agent,MHD-connection
echo
echo "perf data: $OUT (perf report -i $OUT/apid.data)"
