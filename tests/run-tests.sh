#!/bin/bash
# Runs every test layer and ends with one summary line: "N passed, N failed, N skipped".
#   tests/run-tests.sh [unit|integration|api|vm]...   (default: all)
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP"
layers=${*:-unit integration api vm}
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
			pass=$((pass + p)); fail=$((fail + f))
			[ "$f" = 0 ] || echo "$out" | grep -B2 -A5 FAILED | head -60 | tee -a build/test-failures.txt
		fi
		;;
	integration|api)
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
	vm)
		echo "== vm (pure cgroup v2, ../shared/tools/vmrun)"
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
