#!/bin/bash
# Density: N idle sandboxes (agent running, networking as configured) created through apid's API,
# listed, deleted. Reports host memory per sandbox (MemAvailable delta / N), apid RSS at 0, 100
# and N sandboxes, and checks that nothing of them is left (runtime state, sandbox directories,
# cgroups, mounts, links, processes). Bounded: creates time out, deletes run 8 at a time.
#   tests/bench/density.sh          N=100 (N=1000 for the full run)
set -u
. "$(dirname "$0")/lib.sh"
bench_isolate "$0" "$@"
TOP=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${SBX_BIN:-$TOP/build/bin}
N=${N:-100} PAR=${PAR:-8}
[ "$(id -u)" = 0 ] || { echo "density: needs root" >&2; exit 1; }
. "$TOP/tests/lib.sh"
bench_workdir bench-density || exit 1
PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
"$BIN/sbx-apid" --listen 127.0.0.1:$PORT --data-dir "$T/data" --run-dir "$T/run" \
	--agent "$BIN/sbx-agent" --log-level warn >"$T/apid.log" 2>&1 &
APID_PID=$!
trap 'kill -TERM $APID_PID 2>/dev/null; wait $APID_PID 2>/dev/null; bench_workdir_remove' EXIT
for _ in $(seq 200); do curl -s -o /dev/null "$BASE/health" && break; sleep 0.05; done

memavail() { awk '/^MemAvailable:/{print $2}' /proc/meminfo; } # KiB
rss() { awk '/^VmRSS:/{print $2}' /proc/$APID_PID/status; }     # KiB
create_n() { # COUNT
	seq "$1" | xargs -P "$PAR" -I{} curl -s -m 60 -X POST -H 'Content-Type: application/json' \
		-d '{"image":{"uri":"local/busybox"},"entrypoint":["sleep","1000000"]}' \
		"$BASE/v1/sandboxes" | jq -r .id >>"$T/ids"
}
# A one-shot action, not a setting: the page cache starts empty so it is not counted as freed.
[ "${DROP_CACHES:-1}" = 0 ] || { sync; echo 3 >/proc/sys/vm/drop_caches; }
sleep 1
m0=$(memavail) r0=$(rss)
t0=$(date +%s.%N)
first=$((N < 100 ? N : 100))
create_n "$first"
r100=$(rss)
[ "$N" -gt 100 ] && create_n $((N - 100))
t1=$(date +%s.%N)
sleep 2
running=$(curl -s "$BASE/v1/sandboxes?state=Running&pageSize=1" | jq -r .pagination.totalItems)
m1=$(memavail) rN=$(rss)
listed=$(curl -s "$BASE/v1/sandboxes?pageSize=200" | jq -r .pagination.totalItems)
tl=$( { /usr/bin/time -f %e curl -s -o /dev/null "$BASE/v1/sandboxes?pageSize=200"; } 2>&1)
printf 'created %s/%s in %.1f s (%.1f/s), Running %s, listed %s (list of 200 took %s s)\n' \
	"$(grep -c . "$T/ids")" "$N" "$(echo "$t1 - $t0" | bc)" "$(echo "$N / ($t1 - $t0)" | bc -l)" \
	"$running" "$listed" "$tl"
printf 'host memory: %.2f MiB per sandbox (MemAvailable %d → %d MiB)\n' \
	"$(echo "($m0 - $m1) / 1024 / $N" | bc -l)" $((m0 / 1024)) $((m1 / 1024))
printf 'apid RSS: %d KiB at 0, %d KiB at %d, %d KiB at %d\n' "$r0" "$r100" "$first" "$rN" "$N"
result "host memory per idle sandbox (N=$N)" "$(awk -v a="$m0" -v b="$m1" -v n="$N" 'BEGIN{printf "%.3f", (a - b) / 1024 / n}')" MiB lower 2
result "apid RSS with $N sandboxes" "$(awk -v r="$rN" 'BEGIN{printf "%.2f", r / 1024}')" MiB lower
t2=$(date +%s.%N)
xargs -P "$PAR" -I{} curl -s -m 60 -o /dev/null -X DELETE "$BASE/v1/sandboxes/{}" <"$T/ids"
t3=$(date +%s.%N)
printf 'deleted in %.1f s\n' "$(echo "$t3 - $t2" | bc)"
sleep 1
m2=$(memavail)
printf 'after delete: MemAvailable %d MiB (%+d MiB vs before)\n' $((m2 / 1024)) $(((m2 - m0) / 1024))
ids=$(paste -sd'|' "$T/ids")
left_list=$(curl -s "$BASE/v1/sandboxes?pageSize=1" | jq -r .pagination.totalItems)
left_host=$(host_snapshot | grep -cE "${ids:-none}")
left_dirs=$(ls "$T/run" "$T/run/.sandboxes" 2>/dev/null | grep -cE "${ids:-none}")
left_procs=$(grep -lE "${ids:-none}" /proc/[0-9]*/cgroup 2>/dev/null | wc -l)
echo "leaks: listed $left_list, host mounts/cgroups/links $left_host, dirs $left_dirs, processes $left_procs"
[ "$left_list$left_host$left_dirs$left_procs" = 0000 ]
