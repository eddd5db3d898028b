#!/bin/bash
# make bench: startup of one sandbox running /bin/true, sbxrun against its peers, side by side in one
# invocation on the same machine, round-robin (interleave.py). Prints medians, p99 and ratios to sbxrun.
#   RUNS=200 (default) tests/bench/run.sh
set -eu
TOP=$(cd "$(dirname "$0")/../.." && pwd)
SBXRUN=$TOP/build/bin/sbxrun
RUNS=${RUNS:-200} WARMUP=${WARMUP:-10}
. "$TOP/tests/bench/lib.sh"
IMAGES=${SBX_IMAGES:-/var/lib/sbx/images}
# The image dir is a symlink to its current build (make rootfs); runc and crun refuse a root
# path through a symlink, so the real path is used.
ROOTFS=$(readlink -f "$IMAGES/busybox/rootfs")
[ "$(id -u)" = 0 ] || { echo "bench: run as root (crun/runc need it)" >&2; exit 1; }
# The whole benchmark (every runtime alike) runs in a private mount namespace; the host is not
# changed. There: crun refuses hybrid cgroup hosts, so like the OCI kit's -L the empty cgroup2
# mount goes; and /run is a tmpfs, as on any systemd host (this VM's /run is ext4, where the
# runtimes' per-container state files make inode allocation slower with every run).
if [ -z "${SBX_BENCH_NS:-}" ]; then
	export SBX_BENCH_NS=1
	exec unshare -m --propagation private sh -c '
		if mountpoint -q /sys/fs/cgroup/unified; then umount -l /sys/fs/cgroup/unified || exit 1; fi
		[ "$(stat -f -c %T /run)" = tmpfs ] || mount -t tmpfs -o mode=755 tmpfs /run || exit 1
		exec "$0" "$@"' "$0" "$@"
fi
work=$(mktemp -d /tmp/sbx-bench.XXXXXX)
trap 'crun delete -f sbxbench-crun >/dev/null 2>&1; runc delete -f sbxbench-runc >/dev/null 2>&1; rm -rf "$work"' EXIT

# One OCI bundle for crun and runc: same busybox rootfs, /bin/true, their default namespaces.
mkdir -p "$work/bundle"
(cd "$work/bundle" && crun spec)
jq --arg r "$ROOTFS" '.root.path = $r | .root.readonly = true | .process.terminal = false | .process.args = ["/bin/true"]' \
	"$work/bundle/config.json" >"$work/bundle/c.json" && mv "$work/bundle/c.json" "$work/bundle/config.json"

# bwrap by default has no seccomp filter, keeps root's capabilities in its user namespace and masks
# nothing, so it also runs with what it can of sbxrun's isolation (sbxrun's own compiled default
# filter, every capability dropped, uid 1000, sbxrun's masked paths, /tmp, /sys read-only, a new
# session, death with its parent): "bwrap-hardened". It still makes no cgroup and no state record.
bpf=$work/default.bpf
# A state root of its own, so its filter cache holds just the default profile's entry.
"$SBXRUN" --root "$work/state" run --net none --rootfs "$ROOTFS" -- /bin/true || exit 1
python3 - "$bpf" "$work"/state/.cache/seccomp/* <<'PY' || { echo "bench: no compiled seccomp filter in sbxrun's cache" >&2; exit 1; }
import struct, sys
# An entry of runtime/lib/seccomp_cache.c: u32 length of the profile text, the text, the BPF.
data = open(sys.argv[2], "rb").read()
n = struct.unpack("=I", data[:4])[0]
assert len(data) > 4 + n and (len(data) - 4 - n) % 8 == 0
open(sys.argv[1], "wb").write(data[4 + n:])
PY
masks=()
for p in /proc/acpi /proc/asound /proc/kcore /proc/keys /proc/latency_stats /proc/timer_list \
	/proc/timer_stats /proc/sched_debug /proc/scsi /proc/interrupts /sys/firmware /sys/devices/virtual/powercap; do
	if [ -d "$p" ]; then masks+=(--tmpfs "$p"); elif [ -e "$p" ]; then masks+=(--ro-bind /dev/null "$p"); fi
done
BWRAP=$(command -v bwrap)
hardened="$BWRAP --unshare-all --uid 1000 --gid 1000 --ro-bind $ROOTFS / --proc /proc --dev /dev"
hardened+=" --tmpfs /tmp --ro-bind /sys /sys ${masks[*]} --new-session --die-with-parent --cap-drop ALL --seccomp 3 /bin/true"

# Every peer runs a read-only root (bwrap --ro-bind, crun/runc root.readonly as `crun spec` makes
# it), and so does the first sbxrun row (--read-only); sbxrun-overlay is sbxrun's default, a
# private writable overlay on the image, which none of the peers has. The peers proper are bwrap,
# crun, runc and unshare (rows 1 to 4).
names=(sbxrun bwrap crun runc unshare sbxrun-overlay bwrap-hardened)
cmds=(
	"$SBXRUN run --read-only --net none --rootfs $ROOTFS -- /bin/true"
	"$BWRAP --unshare-all --ro-bind $ROOTFS / --proc /proc --dev /dev /bin/true"
	"$(command -v crun) run --bundle $work/bundle sbxbench-crun"
	"$(command -v runc) run --bundle $work/bundle sbxbench-runc"
	"$(command -v unshare) -Urpf --mount-proc /bin/true"
	"$SBXRUN run --net none --rootfs $ROOTFS -- /bin/true"
	"fd3=$bpf $hardened"
)
# Round-robin (tests/bench/interleave.py): one run of each in turn, so that the VM's drift (±30%
# within minutes) hits every runtime alike; back-to-back blocks of each (hyperfine) did not: the
# first block ran in a slower minute than the last, by more than the differences measured.
echo "bench: $RUNS runs each, interleaved, $(nproc) CPUs, kernel $(uname -r)"
args=()
for i in "${!names[@]}"; do args+=("${names[$i]}=${cmds[$i]}"); done
python3 "$TOP/tests/bench/interleave.py" "$RUNS" "$WARMUP" "${args[@]}" >"$work/seq.txt" || exit 1
printf '\n%-15s %10s %10s %12s %10s\n' runtime median_ms p99_ms sandboxes/s vs_sbxrun
read -r _ base _ _ < <(grep '^sbxrun ' "$work/seq.txt")
awk -v base="$base" '{printf "%-15s %10.2f %10.2f %12.1f %9.2fx\n", $1, $2, $3, 1000 / $4, $2 / base}' "$work/seq.txt"

get() { awk -v n="$1" -v c="$2" '$1 == n {print $c}' "$work/seq.txt"; } # NAME COLUMN (2 median, 3 p99)
best() { # COLUMN → "name value" of the smallest among the peers proper
	for n in bwrap crun runc unshare; do echo "$n $(get "$n" "$1")"; done | sort -k2 -g | head -1
}
read -r peer_med med < <(best 2)
read -r peer_p99 p99 < <(best 3)
result "sbxrun run --read-only /bin/true, median" "$(get sbxrun 2)" ms lower peer "$peer_med" "$med"
result "sbxrun run --read-only /bin/true, p99" "$(get sbxrun 3)" ms lower - "$peer_p99" "$p99"
result "sbxrun /bin/true, default overlay root, median" "$(get sbxrun-overlay 2)" ms lower - "$peer_med" "$med"
result "sbxrun /bin/true vs bwrap with sbx's isolation, median" "$(get sbxrun 2)" ms lower - bwrap-hardened "$(get bwrap-hardened 2)"

# Two at a time: 2*N sandboxes with 2 workers, as sandboxes/s; in four rounds, each runtime in
# turn, for the same reason.
echo
echo "2-parallel ($RUNS sandboxes per runtime, 4 rounds):"
par=(0 1 4 5)
declare -A secs=()
for round in 1 2 3 4; do
	for i in "${par[@]}"; do
		start=$(date +%s.%N)
		seq $(((RUNS + 3) / 4)) | xargs -P 2 -I{} sh -c "${cmds[$i]} >/dev/null"
		end=$(date +%s.%N)
		secs[$i]=$(awk -v a="${secs[$i]:-0}" -v s="$start" -v e="$end" 'BEGIN{print a + e - s}')
	done
done
for i in "${par[@]}"; do
	rate=$(awk -v n="$(((RUNS + 3) / 4 * 4))" -v t="${secs[$i]}" 'BEGIN{printf "%.1f", n / t}')
	printf '%-15s %8.1f sandboxes/s\n' "${names[$i]}" "$rate"
	if [ "$i" = 0 ]; then sbx_rate=$rate
	elif [ "$i" = 5 ]; then ov_rate=$rate
	elif [ -z "${peer_rate:-}" ] || awk -v a="$rate" -v b="$peer_rate" 'BEGIN{exit !(a > b)}'; then
		peer_rate=$rate peer_rate_name=${names[$i]}
	fi
done
result "sbxrun run --read-only /bin/true, 2 in parallel" "$sbx_rate" "/s" higher peer "$peer_rate_name" "$peer_rate"
result "sbxrun /bin/true, default overlay root, 2 parallel" "$ov_rate" "/s" higher - "$peer_rate_name" "$peer_rate"
echo "(crun/runc are not run in parallel: one bundle, one container id at a time)"
