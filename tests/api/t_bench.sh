#!/bin/bash
# Smoke run of every `make bench` script with tiny counts: each must finish, record its figures
# for the final table (tests/bench/summary.sh) and leave nothing behind. The figures themselves
# are not judged here (benchmarks, not timed tests); that they are numbers is.
. "$(dirname "$0")/../lib.sh"
require_root "bench smoke" || finish
[ -d "$SBX_IMAGES/busybox" ] || { skip "bench smoke" "no busybox image (make rootfs)"; finish; }
for t in crun runc bwrap hey wrk perf python3 skopeo umoci containerd ctr docker-registry; do
	command -v $t >/dev/null || { skip "bench smoke" "$t missing (scripts/install-deps.sh)"; finish; }
done
T=$(mktemp -d /tmp/sbx-t-bench.XXXXXX)
trap 'rm -rf "$T"' EXIT
export SBX_BENCH_RESULTS=$T/results.tsv
B=$TOP/tests/bench
before=$(host_snapshot)

run_bench() { # NAME COMMAND...
	local name=$1
	shift
	if "$@" >"$T/$name.log" 2>&1; then
		ok "bench $name finishes"
	else
		not_ok "bench $name finishes (exit $?)"
		tail -20 "$T/$name.log"
	fi
}
run_bench run env RUNS=3 WARMUP=1 "$B/run.sh"
run_bench cgjoin bash "$B/cgjoin.sh" 2
run_bench phases env N=3 "$B/phases.sh"
run_bench agent bash "$B/agent.sh" 5 2
run_bench proxy env N=10 DUR=1 NCMD=5 bash "$B/proxy.sh"
run_bench cli env N=5 bash "$B/cli.sh"
run_bench apid env N1=2 N16=4 POOL=6 THRU=6 bash "$B/apid.sh"
run_bench density env N=3 PAR=3 DROP_CACHES=0 bash "$B/density.sh"
run_bench profile env N1=3 N2=2 OUT="$T/perf" bash "$B/profile.sh"
run_bench pull env N=1 PULL_WARMUP=0 RUNS=3 WARMUP=1 bash "$B/pull.sh"

# Every figure of the final table, each a number.
for m in "sbxrun run --read-only /bin/true, median" "sbxrun run --read-only /bin/true, p99" \
	"sbxrun run --read-only /bin/true, 2 in parallel" "sbxrun /bin/true, default overlay root, median" \
	"sbxrun /bin/true, default overlay root, 2 parallel" "sbx-agent idle RSS" \
	"sbx-agent exec \`true\` round trip p50, 1 client" "apid proxy overhead p50 (GET /ping)" \
	"apid proxied requests/s (wrk -c16)" "sbx exec \`true\` end to end p50" \
	"sbx exec \`true\` end to end p99" "agent exec \`echo hi\` via apid proxy, p50" \
	"apid create -> agent ready p50, cold" "apid create -> agent ready p50, pooled" \
	"apid pooled creates/s (hey -c 16)" "host memory per idle sandbox (N=3)" \
	"apid RSS with 3 sandboxes" "cgroup v1 join, 8 hierarchies, mean" \
	"sbxrun /bin/true vs bwrap with sbx's isolation, median" \
	"sbxrun pull, 100 MiB 5-layer image, median" "sbxrun pull, peak RSS" \
	"sbxrun run --read-only, pulled image, median" "sbxrun run (overlay), pulled image, median"; do
	v=$(awk -F'\t' -v m="$m" '$1 == m {print $2}' "$SBX_BENCH_RESULTS" 2>/dev/null)
	expect_match "result: $m is a number" '^-?[0-9]+(\.[0-9]+)?$' "$v"
done
# Side-by-side peers are named (the best of bwrap, crun, runc, unshare).
expect_match "run.sh compares with bwrap given sbx's isolation" '^[0-9]+(\.[0-9]+)?$' \
	"$(awk -F'\t' '$6 == "bwrap-hardened" {print $7}' "$SBX_BENCH_RESULTS")"
expect_match "run.sh names its best peer" \
	'^(bwrap|crun|runc|unshare)$' "$(awk -F'\t' '$1 == "sbxrun run --read-only /bin/true, median" {print $6}' "$SBX_BENCH_RESULTS")"
expect_match "... the overlay row is measured against the same peer, not counted as one" \
	'^(bwrap|crun|runc|unshare) -$' "$(awk -F'\t' '$1 == "sbxrun /bin/true, default overlay root, median" {print $6, $5}' "$SBX_BENCH_RESULTS")"
expect_match "pull.sh names its best peer" '^(skopeo\+umoci|ctr) peer$' \
	"$(awk -F'\t' '$1 == "sbxrun pull, 100 MiB 5-layer image, median" {print $6, $5}' "$SBX_BENCH_RESULTS")"
"$B/summary.sh" "$SBX_BENCH_RESULTS" >"$T/summary" 2>&1
expect_eq "summary exits 0" 0 $?
sed 's/^/    /' "$T/summary" # the smoke run's table (tiny counts: the figures mean little)
expect_match "summary ends with the goals line" '^goals met: [0-9]+ of 12$' "$(tail -1 "$T/summary")"
expect_match "summary has a ratio for sbxrun" 'sbxrun run --read-only /bin/true, median .*x (better|worse)' "$(cat "$T/summary")"
printf 'x\t1\tms\tlower\t-\t-\t-\n' >"$T/bad.tsv"
expect_match "summary of a figure without goal or peer" '^goals met: 0 of 0$' "$("$B/summary.sh" "$T/bad.tsv" | tail -1)"
"$B/summary.sh" "$T/missing.tsv" >/dev/null 2>&1
expect_eq "summary of no results fails" 1 $?
expect_match "profile names the sandbox processes" 'sbx-monitor|sbx-init' "$(cat "$T/profile.log")"
expect_match "profile shows syscalls by CPU" '__x64_sys_|__do_sys_' "$(cat "$T/profile.log")"
# Every step of sbxrun's --debug timeline shows up, from the three processes.
for step in "sbxrun: spec ready" "sbxrun: cloned (new namespaces)" "init: go from the parent" \
	"init: root ready" "workload: exec" "sbxrun: workload exited" "sbxrun: cleaned up"; do
	expect_match "phases: $step" "^$(printf '%s' "$step" | sed 's/[()]/\\&/g') +[0-9.]+ +[0-9.]+$" "$(cat "$T/phases.log")"
done

expect_eq "benches left the host as it was" "$before" "$(host_snapshot)"
expect_eq "no bench temp dirs left" "" "$(ls -d /var/tmp/sbx-bench-* /var/tmp/sbx-profile.* /tmp/sbx-bench.* /tmp/sbx-cgjoin.* /tmp/sbx-phases.* 2>/dev/null)"
finish
