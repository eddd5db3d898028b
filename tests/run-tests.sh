#!/bin/bash
# Runs every test layer and ends with one summary line: "N passed, N failed, N skipped".
#   tests/run-tests.sh [format|unit|integration|api|security|asan|fuzz|vm]...   (default: all)
# format: every tracked C file matches .clang-format (`make format` fixes it).
# security: tests/security/t_*.sh, escapes, CVE regressions, resource bombs and faults through the
# real sbxrun and apid (SECURITY.md names the check behind each boundary).
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP"
layers=${*:-format unit integration api security asan fuzz vm}
pass=0 fail=0 skipped=0
declare -a failures=()

count_tap() { # FILE NAME
	local p f s
	p=$(grep -c '^ok - ' "$1"); f=$(grep -c '^not ok - ' "$1"); s=$(grep -c '^skip - ' "$1")
	pass=$((pass + p)); fail=$((fail + f)); skipped=$((skipped + s))
	grep '^not ok - ' "$1" | sed "s|^|$2: |" >>"$TOP/build/test-failures.txt"
}

mkdir -p build; : >build/test-failures.txt
for layer in $layers; do
	case $layer in
	format)
		echo "== format (clang-format, .clang-format)"
		if ! command -v clang-format >/dev/null; then
			if [ "${SBX_MUST_WORK:-0}" = 1 ]; then
				fail=$((fail + 1)); echo "not ok - format: clang-format is not installed" | tee -a build/test-failures.txt
			else
				skipped=$((skipped + 1)); echo "skip - format # clang-format is not installed (scripts/install-deps.sh check)"
			fi
			continue
		fi
		bad=0 n=0
		for f in $(git ls-files '*.c' '*.h'); do
			n=$((n + 1))
			if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
				bad=$((bad + 1))
				echo "not ok - format: $f differs from .clang-format (make format)" | tee -a build/test-failures.txt
			fi
		done
		if [ $bad = 0 ]; then
			pass=$((pass + 1)); echo "ok - format: $n C files match .clang-format"
		else
			fail=$((fail + bad))
		fi
		;;
	unit)
		echo "== unit (CUnit)"
		out=$(build/bin/unit-tests 2>&1); rc=$?
		echo "$out" | grep -E 'Test:|FAILED|Suite:|unit:' | grep -vE '\.\.\.passed$' | head -200
		line=$(echo "$out" | grep -E '^unit: [0-9]+ passed, [0-9]+ failed' | tail -1)
		if [ -z "$line" ]; then
			fail=$((fail + 1)); echo "unit: runner crashed (rc=$rc)" | tee -a build/test-failures.txt
			echo "$out" | tail -20
		else
			p=$(echo "$line" | awk '{print $2}'); f=$(echo "$line" | awk '{print $4}')
			s=$(echo "$line" | awk '{print $6}')
			pass=$((pass + p)); fail=$((fail + f)); skipped=$((skipped + ${s:-0}))
			echo "$out" | grep '^ *SKIP ' # loud: which tests did not run, and why
			[ "$f" = 0 ] || echo "$out" | grep -B2 -A5 FAILED | head -60 | tee -a build/test-failures.txt
		fi
		;;
	integration|api|security)
		for t in tests/$layer/t_*.sh; do
			[ -e "$t" ] || continue
			echo "== $t"
			log=build/$(basename "$t" .sh).log
			timeout -k 10 "${SBX_TEST_TIMEOUT:-600}" bash "$t" >"$log" 2>&1; rc=$?
			cat "$log"
			count_tap "$log" "$t"
			if [ $rc -ne 0 ] && ! grep -q '^not ok - ' "$log"; then
				fail=$((fail + 1)); echo "not ok - $t exited $rc without a failing check" | tee -a build/test-failures.txt
			fi
		done
		;;
	asan)
		# sbxrun, sbx-apid and sbx-launcher built with ASan/UBSan, under the unit tests and the
		# runtime and API suites (the agent stays the static one: it runs inside busybox images).
		# Reports go to files, since apid's log goes with each test's temp dir; any report fails.
		echo "== asan (ASan/UBSan build: unit, t_run, t_images, t_apid, t_session, t_net, t_mcp)"
		A=build/asan
		if ! make -s asan-build >build/asan-build.log 2>&1; then
			fail=$((fail + 1)); echo "not ok - asan build failed" | tee -a build/test-failures.txt
			tail -30 build/asan-build.log
			continue
		fi
		# LeakSanitizer reports at exit, after the summary line: its exit status and report count.
		out=$(ASAN_OPTIONS=detect_leaks=1 $A/bin/unit-tests 2>&1); urc=$?
		line=$(echo "$out" | grep -E '^unit: [0-9]+ passed, [0-9]+ failed' | tail -1)
		echo "asan ${line:-unit: runner crashed}"
		if echo "$out" | grep -q 'ERROR: LeakSanitizer'; then
			fail=$((fail + 1)); echo "not ok - asan unit tests: LeakSanitizer found leaks" | tee -a build/test-failures.txt
			echo "$out" | grep -A12 'ERROR: LeakSanitizer' | head -40
		elif [ -z "$line" ] || [ "$(echo "$line" | awk '{print $4}')" != 0 ] || [ $urc != 0 ]; then
			fail=$((fail + 1)); echo "not ok - asan unit tests: ${line:-crashed}" | tee -a build/test-failures.txt
			echo "$out" | grep -B2 -A5 -E 'FAILED|ERROR: AddressSanitizer|runtime error' | head -60
		else
			pass=$((pass + $(echo "$line" | awk '{print $2}')))
		fi
		rm -rf "$A/mix" "$A/reports"; mkdir -p "$A/mix" "$A/reports"; chmod 1777 "$A/reports"
		cp -a build/bin/. "$A/mix/" && cp "$A"/bin/{sbxrun,sbx-apid,sbx-launcher,sbx-image,sbx-mcp-test} "$A/mix/"
		for t in tests/integration/t_run.sh tests/integration/t_images.sh tests/api/t_apid.sh tests/api/t_session.sh tests/api/t_net.sh tests/api/t_mcp.sh; do
			echo "== asan: $t"
			log=build/asan-$(basename "$t" .sh).log
			SBX_BIN=$TOP/$A/mix ASAN_OPTIONS=detect_leaks=0:log_path=$TOP/$A/reports/asan \
				UBSAN_OPTIONS=print_stacktrace=1:log_path=$TOP/$A/reports/ubsan \
				timeout -k 10 "${SBX_TEST_TIMEOUT:-900}" bash "$t" >"$log" 2>&1; rc=$?
			grep -c '^ok - ' "$log" | sed 's/$/ checks passed/'
			grep '^not ok - \|^skip - ' "$log"
			count_tap "$log" "asan: $t"
			if [ $rc -ne 0 ] && ! grep -q '^not ok - ' "$log"; then
				fail=$((fail + 1)); echo "not ok - asan: $t exited $rc without a failing check" | tee -a build/test-failures.txt
			fi
		done
		if [ -n "$(ls -A "$A/reports")" ]; then
			fail=$((fail + 1)); echo "not ok - sanitizer reports in $A/reports" | tee -a build/test-failures.txt
			head -60 "$A"/reports/*
		else
			echo "ok - no ASan/UBSan report from any of them"; pass=$((pass + 1))
		fi
		;;
	fuzz)
		# The libFuzzer harnesses (tests/fuzz/, README "Tests"), built with clang under ASan and
		# UBSan: each replays its seeds and the inputs that once broke it, then fuzzes for
		# FUZZ_CHECK_SECONDS (7 s x 15 harnesses: about 2 minutes with the replays, plus half a
		# minute for a first build; `make fuzz` runs longer). A failure names the input that
		# reproduces it.
		echo "== fuzz (libFuzzer, ${FUZZ_CHECK_SECONDS:-7} s per harness)"
		if ! command -v "${FUZZ_CC:-clang}" >/dev/null 2>&1; then
			why="no clang (scripts/install-deps.sh installs clang and libclang-rt-14-dev)"
			if [ "${SBX_MUST_WORK:-0}" = 1 ]; then
				fail=$((fail + 1)); echo "not ok - fuzz # skipped but SBX_MUST_WORK=1: $why" | tee -a build/test-failures.txt
			else
				skipped=$((skipped + 1)); echo "skip - fuzz: $why"
			fi
			continue
		fi
		if ! make -s fuzz-build >build/fuzz-build.log 2>&1; then
			fail=$((fail + 1)); echo "not ok - fuzz: the harnesses do not build" | tee -a build/test-failures.txt
			tail -30 build/fuzz-build.log
			continue
		fi
		log=build/fuzz.log
		start=$(date +%s)
		FUZZ_SECONDS=${FUZZ_CHECK_SECONDS:-7} tests/fuzz/run.sh >"$log" 2>&1; rc=$?
		cat "$log"; count_tap "$log" fuzz
		echo "fuzz: $(($(date +%s) - start)) s"
		if [ $rc -ne 0 ] && ! grep -q '^not ok - ' "$log"; then
			fail=$((fail + 1)); echo "not ok - fuzz: tests/fuzz/run.sh exited $rc" | tee -a build/test-failures.txt
		fi
		;;
	vm)
		echo "== vm (pure cgroup v2, tests/vm/vm.sh)"
		log=build/vm.log
		if [ -x tests/vm/run-in-vm.sh ]; then
			# The runtime's own suite runs there too: pure v2 and Debian's 6.1 kernel.
			SBX_VM_ALL=1 tests/vm/run-in-vm.sh >"$log" 2>&1; rc=$?
			cat "$log"; count_tap "$log" vm
			if [ $rc -ne 0 ] && ! grep -q '^not ok - ' "$log"; then
				fail=$((fail + 1)); echo "not ok - vm suite exited $rc" | tee -a build/test-failures.txt
			fi
		fi
		;;
	esac
done
if [ -s build/test-failures.txt ]; then echo "== failures"; cat build/test-failures.txt; fi
echo "$pass passed, $fail failed, $skipped skipped"
[ $fail -eq 0 ]
