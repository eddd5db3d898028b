#!/bin/bash
# The final table of `make bench`: every figure recorded with `result` (tests/bench/lib.sh),
# its goal from issue 9 and its ratio to the best peer (measured side by side, or published).
#   tests/bench/summary.sh RESULTS_FILE
set -u
f=${1:?usage: summary.sh RESULTS_FILE}
[ -s "$f" ] || { echo "summary: no results in $f" >&2; exit 1; }
awk -F'\t' '
function fmt(v) { return (v >= 100 ? sprintf("%.0f", v) : v >= 10 ? sprintf("%.1f", v) : sprintf("%.2f", v)) }
BEGIN {
	printf "%-50s %8s %-4s %-14s %-30s %s\n", "metric", "sbx", "unit", "goal", "best peer", "sbx vs peer"
}
{
	metric = $1; v = $2 + 0; unit = $3; lower = ($4 == "lower"); goal = $5; peer = $6; pv = $7
	g = "-"; p = "-"; r = "-"; x = 0
	if (peer != "-" && pv + 0 > 0 && v > 0) {
		p = sprintf("%s %s", peer, fmt(pv + 0))
		x = lower ? (pv + 0) / v : v / (pv + 0)
		r = x >= 1 ? sprintf("%.2fx better", x) : sprintf("%.2fx worse", 1 / x)
	}
	if (goal == "peer") { # the goal is to beat the best peer
		ok = x >= 1
		g = sprintf("beat peer %s", ok ? "met" : "MISSED")
		n++; if (ok) met++
	} else if (goal != "-") {
		ok = lower ? (v <= goal + 0) : (v >= goal + 0)
		g = sprintf("%s%s %s", lower ? "<=" : ">=", goal, ok ? "met" : "MISSED")
		n++; if (ok) met++
	}
	printf "%-50s %8s %-4s %-14s %-30s %s\n", metric, fmt(v), unit, g, p, r
}
END { printf "goals met: %d of %d\n", met, n }' "$f"
