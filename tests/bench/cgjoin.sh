#!/bin/bash
# Joining a sandbox's cgroups on a v1/hybrid host: the parent moving the child (cgroup.procs)
# against the child moving itself (tasks), which is what sbxrun does (docs/benchmarks.md §1).
#   tests/bench/cgjoin.sh [RUNS (default 10)]
set -u
[ "$(id -u)" = 0 ] || { echo "cgjoin: needs root" >&2; exit 1; }
[ -d /sys/fs/cgroup/memory ] && [ -f /sys/fs/cgroup/memory/tasks ] ||
	{ echo "cgjoin: no cgroup v1 memory hierarchy here (pure v2 needs no join: CLONE_INTO_CGROUP)"; exit 0; }
. "$(dirname "$0")/lib.sh"
T=$(mktemp -d /tmp/sbx-cgjoin.XXXXXX)
trap 'rm -rf "$T"' EXIT
cc -O2 -o "$T/cgjoin" "$(dirname "$0")/cgjoin.c" && "$T/cgjoin" "${1:-10}" | tee "$T/out" || exit 1
mean() { awk -v k="$1" 'index($0, k) == 1 { for (i = 1; i < NF; i++) if ($i == "mean") print $(i + 1) }' "$T/out"; }
result "cgroup v1 join, 8 hierarchies, mean" "$(mean child)" ms lower - "cgroup.procs (crun, runc)" "$(mean parent)"
