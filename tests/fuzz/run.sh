#!/bin/bash
# Runs the libFuzzer harnesses (tests/fuzz/fuzz_NAME.c, built as build/fuzz/NAME by
# `make fuzz-build`) one after the other, with one TAP line each: "ok - fuzz: NAME (N runs)" or
# "not ok - fuzz: NAME ..." with the command that reproduces the failure.
#   tests/fuzz/run.sh [NAME]...     (default: every harness)
# Each harness first runs once over its seeds (tests/fuzz/corpus/NAME) and over the inputs that
# once broke it (tests/fuzz/regressions/NAME), then fuzzes for FUZZ_SECONDS (default 60; 0: the
# replay only), keeping the new inputs it finds in build/fuzz/corpus-NAME and a crashing one in
# build/fuzz/artifacts/NAME/. A crash found here is fixed, then its input joins the regressions.
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
cd "$TOP"
B=${BUILD:-build}/fuzz
secs=${FUZZ_SECONDS:-60}
names=${*:-$(for f in tests/fuzz/fuzz_*.c; do basename "$f" .c; done | sed 's/^fuzz_//')}
# Any sanitizer report aborts (UBSan is built not to recover); leaks are reported at each input.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=0
for n in $names; do
	bin=$B/$n
	if [ ! -x "$bin" ]; then
		echo "not ok - fuzz: $n is not built (make fuzz-build)"; failed=1; continue
	fi
	mkdir -p "$B/corpus-$n" "$B/artifacts/$n"
	log=$B/$n.log
	opts=(-timeout=10 -rss_limit_mb=2048 "-artifact_prefix=$B/artifacts/$n/")
	[ -f "tests/fuzz/$n.dict" ] && opts+=("-dict=tests/fuzz/$n.dict")
	# Seeds and regressions, each run once (files as arguments: no fuzzing, no truncation).
	mapfile -t inputs < <(find "tests/fuzz/corpus/$n" "tests/fuzz/regressions/$n" -type f 2>/dev/null | sort)
	if [ ${#inputs[@]} -gt 0 ] &&
		! timeout -k 10 300 "$bin" "${opts[@]}" "${inputs[@]}" >"$log.replay" 2>&1; then
		bad=$(sed -n 's/^Running: //p' "$log.replay" | tail -1)
		echo "not ok - fuzz: $n fails on ${bad:-its seeds}: reproduce with $bin $bad"
		grep -m3 -E 'ERROR:|runtime error|broken promise' "$log.replay" | sed 's/^/#   /'
		failed=1; continue
	fi
	if [ "$secs" = 0 ]; then
		echo "ok - fuzz: $n (${#inputs[@]} seeds and regressions replayed)"; continue
	fi
	timeout -k 10 $((secs + 120)) "$bin" "${opts[@]}" -max_total_time="$secs" -print_final_stats=1 \
		"$B/corpus-$n" "tests/fuzz/corpus/$n" >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	if [ $rc -eq 0 ]; then
		echo "ok - fuzz: $n (${runs:-?} runs in ${secs} s, ${#inputs[@]} seeds and regressions replayed)"
	else
		crash=$(sed -n 's/.*Test unit written to //p' "$log" | tail -1)
		echo "not ok - fuzz: $n failed after ${runs:-?} runs (rc $rc): reproduce with $bin ${crash:-(no input saved; see $log)}"
		grep -m3 -E 'ERROR:|runtime error|broken promise' "$log" | sed 's/^/#   /'
		failed=1
	fi
done
exit $failed
