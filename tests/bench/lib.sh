# Sourced by the bench scripts.
. "$(dirname "${BASH_SOURCE[0]}")/../ports.sh"
#
# `result` records one figure for the final table of `make bench` (tests/bench/summary.sh) when
# SBX_BENCH_RESULTS names a file; otherwise it does nothing.
#   result METRIC VALUE UNIT lower|higher [GOAL] [PEER PEER_VALUE]
# GOAL is a bound in the same unit (<= for lower-is-better, >= for higher), or "peer": better than
# the best peer; PEER is the best peer measured side by side, or a published figure when its name
# starts with "published:".
result() {
	[ -n "${SBX_BENCH_RESULTS:-}" ] || return 0
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5:--}" "${6:--}" "${7:--}" \
		>>"$SBX_BENCH_RESULTS"
}

# bench_isolate "$0" "$@": re-runs the calling script in a private network namespace (lo only:
# apid creates its bridge and nftables table where it runs, never in the host's) and a private
# mount namespace (for bench_workdir's tmpfs). Returns once isolated.
bench_isolate() {
	[ -n "${SBX_PRIVATE_NETNS:-}" ] && return 0
	export SBX_PRIVATE_NETNS=1
	exec unshare -n -m --propagation private sh -c 'ip link set lo up && exec bash "$0" "$@"' "$@"
}

# bench_workdir NAME: sets T to a new directory (711: sandboxes' mapped roots reach their token)
# whose run/ is a tmpfs, as /run is on systemd hosts; apid keeps each sandbox's files in its run
# dir, and on ext4 (this VM's /run) their churn slows every later create. Undo with
# bench_workdir_remove.
bench_workdir() {
	T=$(mktemp -d "/var/tmp/sbx-$1.XXXXXX") && chmod 711 "$T" && mkdir "$T/run" &&
		mount -t tmpfs -o mode=711 tmpfs "$T/run"
}
bench_workdir_remove() {
	umount -l "$T/run"
	rm -rf "$T"
}
