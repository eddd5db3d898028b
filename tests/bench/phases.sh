#!/bin/bash
# Where the time of one `sbxrun run /bin/true` goes: N runs of `sbxrun --debug run`, then for each
# step of its timeline the median time it was reached (ms since sbxrun's main) and the median gap
# to the step before it. [1] is the sandbox's init, [2] the workload, the rest sbxrun itself.
#   N=100 [ARGS=--read-only] tests/bench/phases.sh      (ARGS: sbxrun run flags; "" for the overlay)
set -eu
TOP=$(cd "$(dirname "$0")/../.." && pwd)
SBXRUN=$TOP/build/bin/sbxrun
N=${N:-100}
ARGS=${ARGS---read-only}
ROOTFS=$(readlink -f "${SBX_IMAGES:-/var/lib/sbx/images}/busybox/rootfs") # a symlinked image dir: see run.sh
[ "$(id -u)" = 0 ] || { echo "phases: run as root" >&2; exit 1; }
# Same conditions as run.sh: a private mount namespace with /run on a tmpfs.
if [ -z "${SBX_BENCH_NS:-}" ]; then
	export SBX_BENCH_NS=1
	exec unshare -m --propagation private sh -c '
		[ "$(stat -f -c %T /run)" = tmpfs ] || mount -t tmpfs -o mode=755 tmpfs /run || exit 1
		exec "$0" "$@"' "$0" "$@"
fi
out=$(mktemp /tmp/sbx-phases.XXXXXX)
trap 'rm -f "$out"' EXIT
for i in $(seq 5); do "$SBXRUN" run $ARGS --net none --rootfs "$ROOTFS" -- /bin/true; done # warm-up
for i in $(seq "$N"); do
	echo "run $i" >>"$out"
	"$SBXRUN" --debug run $ARGS --net none --rootfs "$ROOTFS" -- /bin/true 2>>"$out"
done
echo "sbxrun run $ARGS /bin/true, $N runs, $(nproc) CPUs, kernel $(uname -r): median per step"
python3 - "$out" <<'PY'
import re, statistics, sys
runs, cur = [], None
for line in open(sys.argv[1]):
    if line.startswith("run "):
        cur = {}; runs.append(cur); continue
    m = re.match(r"sbxrun: debug:\s+([\d.]+) ms \[(\d+)\] (.*)", line)
    if m and cur is not None:
        who = {"1": "init", "2": "workload"}.get(m.group(2), "sbxrun")
        cur[f"{who}: {m.group(3)}"] = float(m.group(1))
steps = {}
for r in runs:
    prev = 0.0
    for name, t in sorted(r.items(), key=lambda kv: kv[1]):
        steps.setdefault(name, ([], []))
        steps[name][0].append(t); steps[name][1].append(t - prev); prev = t
print(f"{'step':40} {'at ms':>8} {'gap ms':>8}")
for name, (at, gap) in sorted(steps.items(), key=lambda kv: statistics.median(kv[1][0])):
    print(f"{name:40} {statistics.median(at):8.3f} {statistics.median(gap):8.3f}")
PY
