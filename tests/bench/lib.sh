# Sourced by the bench scripts: `result` records one figure for the final table of `make bench`
# (tests/bench/summary.sh) when SBX_BENCH_RESULTS names a file; otherwise it does nothing.
#   result METRIC VALUE UNIT lower|higher [GOAL] [PEER PEER_VALUE]
# GOAL is a bound in the same unit (<= for lower-is-better, >= for higher), or "peer": better than
# the best peer; PEER is the best peer measured side by side, or a published figure when its name
# starts with "published:".
result() {
	[ -n "${SBX_BENCH_RESULTS:-}" ] || return 0
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5:--}" "${6:--}" "${7:--}" \
		>>"$SBX_BENCH_RESULTS"
}
