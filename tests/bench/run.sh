#!/bin/bash
# make bench: startup of one sandbox running /bin/true, sbxrun against its peers, side by side in one
# invocation on the same machine (hyperfine). Prints medians, p99 and ratios to sbxrun.
#   RUNS=200 (default) tests/bench/run.sh
set -eu
TOP=$(cd "$(dirname "$0")/../.." && pwd)
SBXRUN=$TOP/build/bin/sbxrun
RUNS=${RUNS:-200} WARMUP=${WARMUP:-10}
. "$TOP/tests/bench/lib.sh"
IMAGES=${SBX_IMAGES:-/var/lib/sbx/images}
ROOTFS=$IMAGES/busybox/rootfs
[ "$(id -u)" = 0 ] || { echo "bench: run as root (crun/runc need it)" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "bench: hyperfine missing (scripts/install-deps.sh)" >&2; exit 1; }
# The whole benchmark (every runtime alike) runs in a private mount namespace; the host is not
# changed. There: crun refuses hybrid cgroup hosts, so like ../shared/oci's -L the empty cgroup2
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

# Every peer runs a read-only root (bwrap --ro-bind, crun/runc root.readonly as `crun spec` makes
# it), and so does the first sbxrun row (--read-only); the last row is sbxrun's default, a private
# writable overlay on the image, which none of the peers has. Peers are rows 1 to 4.
cmds=(
	"$SBXRUN run --read-only --net none --rootfs $ROOTFS -- /bin/true"
	"bwrap --unshare-all --ro-bind $ROOTFS / --proc /proc --dev /dev /bin/true"
	"crun run --bundle $work/bundle sbxbench-crun"
	"runc run --bundle $work/bundle sbxbench-runc"
	"unshare -Urpf --mount-proc /bin/true"
	"$SBXRUN run --net none --rootfs $ROOTFS -- /bin/true"
)
names=(sbxrun bwrap crun runc unshare sbxrun-overlay)
echo "bench: $RUNS runs each, $(nproc) CPUs, kernel $(uname -r)"
hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --export-json "$work/seq.json" "${cmds[@]}" >/dev/null 2>"$work/hf.err" ||
	{ cat "$work/hf.err"; exit 1; }

printf '\n%-15s %10s %10s %12s %10s\n' runtime median_ms p99_ms sandboxes/s vs_sbxrun
base=$(jq '.results[0].median' "$work/seq.json")
for i in "${!names[@]}"; do
	jq -r --argjson i "$i" --arg n "${names[$i]}" --argjson base "$base" '
		.results[$i] as $r | ($r.times | sort) as $t |
		"\($n) \($r.median*1000) \($t[(($t|length)*0.99|floor)]*1000) \(1/$r.mean) \($r.median/$base)"' "$work/seq.json" |
		awk '{printf "%-15s %10.2f %10.2f %12.1f %9.2fx\n", $1, $2, $3, $4, $5}'
done

# Best peer by median and by p99 (every runtime but sbxrun).
read -r sbx_med sbx_p99 < <(jq -r '.results[0] | (.times | sort) as $t | "\(.median*1000) \($t[(($t|length)*0.99|floor)]*1000)"' "$work/seq.json")
best() { # jq expression over a result → "name value" of the smallest among the peers
	jq -r --arg names "${names[*]}" "[.results | to_entries[] | select(.key >= 1 and .key <= 4) | {n: (\$names | split(\" \"))[.key], v: (.value | $1)}] | min_by(.v) | \"\(.n) \(.v)\"" "$work/seq.json"
}
read -r peer_med med < <(best '.median*1000')
read -r peer_p99 p99 < <(best '(.times | sort) as $t | $t[(($t|length)*0.99|floor)]*1000')
result "sbxrun run --read-only /bin/true, median" "$sbx_med" ms lower peer "$peer_med" "$med"
result "sbxrun run --read-only /bin/true, p99" "$sbx_p99" ms lower - "$peer_p99" "$p99"
ov_med=$(jq '.results[5].median*1000' "$work/seq.json")
result "sbxrun /bin/true, default overlay root, median" "$ov_med" ms lower - "$peer_med" "$med"

# Two at a time: wall time for 2*N sandboxes with 2 workers, as sandboxes/s.
echo
echo "2-parallel ($RUNS sandboxes per runtime):"
for i in 0 1 4 5; do
	start=$(date +%s.%N)
	seq "$RUNS" | xargs -P 2 -I{} sh -c "${cmds[$i]} >/dev/null" 
	end=$(date +%s.%N)
	rate=$(awk -v n="$RUNS" -v s="$start" -v e="$end" 'BEGIN{printf "%.1f", n/(e-s)}')
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

# The peers above do less: bwrap by default has no seccomp filter, keeps root's capabilities in its
# user namespace and masks nothing. Here bwrap gets what it can of sbxrun's isolation (sbxrun's own
# compiled default filter, every capability dropped, uid 1000, sbxrun's masked paths, /tmp, /sys
# read-only, a new session, death with its parent) and all of them run interleaved (round-robin, so
# drift hits each alike). It still has no cgroup and no state record, which sbxrun creates and
# removes every run.
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
hardened="fd3=$bpf $(command -v bwrap) --unshare-all --uid 1000 --gid 1000 --ro-bind $ROOTFS / --proc /proc --dev /dev"
hardened+=" --tmpfs /tmp --ro-bind /sys /sys ${masks[*]} --new-session --die-with-parent --cap-drop ALL --seccomp 3 /bin/true"
echo
echo "same isolation as far as bwrap goes ($RUNS runs each, interleaved):"
python3 "$TOP/tests/bench/interleave.py" "$RUNS" "$WARMUP" "sbxrun=${cmds[0]}" \
	"bwrap=$(command -v bwrap) ${cmds[1]#bwrap }" "bwrap-hardened=$hardened" \
	"sbxrun-overlay=${cmds[5]}" >"$work/same.txt" || exit 1
printf '%-16s %10s %10s %10s\n' runtime median_ms p99_ms mean_ms
awk '{printf "%-16s %10.2f %10.2f %10.2f\n", $1, $2, $3, $4}' "$work/same.txt"
read -r _ same_sbx _ _ < <(grep '^sbxrun ' "$work/same.txt")
read -r _ same_bwh _ _ < <(grep '^bwrap-hardened ' "$work/same.txt")
result "sbxrun /bin/true vs bwrap with sbx's isolation, median" "$same_sbx" ms lower - bwrap-hardened "$same_bwh"
