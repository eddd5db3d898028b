#!/bin/bash
# Runs the cgroup tests (t_cgroup.sh, t_update.sh) on a pure cgroup v2 kernel: a throwaway QEMU
# VM started by tests/vm/vm.sh (QEMU and Debian's kernel from packages, the host's root
# read-only, this checkout shared).
# Nothing is built inside; the binaries in build/ are used as they are. Prints TAP
# lines ("ok - vm: ...", "not ok - vm: ...", "skip - vm: ...") for tests/run-tests.sh to count.
#   tests/vm/run-in-vm.sh            host side: boots the VM and runs itself inside
#   SBX_VM_ALL=1 tests/vm/run-in-vm.sh   also runs t_run.sh inside (slower under TCG)
# Environment: SBX_VM_TIMEOUT (seconds, default 420: TCG emulation takes about 4 minutes), SBX_MUST_WORK, the SBX_VM_* of vm.sh,
# SBX_BIN (binaries dir, as in lib.sh), SBX_UNIT_TESTS (unit-test runner).
set -u
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$TOP"
. tests/lib.sh

prefix() { sed -u -E 's/^(ok|not ok|skip) - /\1 - vm: /'; }

inside() {
	local layout rc out
	layout=$(stat -f -c %T /sys/fs/cgroup)
	# Pure v2 is also: no controller can be mounted as a v1 hierarchy (cgroup_no_v1=all), so
	# nothing in the suite can fall back to v1 code paths.
	local d v1=
	d=$(mktemp -d /tmp/sbx-v1.XXXXXX)
	if mount -t cgroup -o memory sbx-v1 "$d" 2>/dev/null; then v1=", and a v1 memory hierarchy mounts"; umount "$d"; fi
	rmdir "$d"
	if [ "$layout" != cgroup2fs ] || [ -n "$v1" ]; then
		not_ok "cgroup layout is pure v2 inside the VM (got $layout$v1)"
	fi
	local unit=${SBX_UNIT_TESTS:-build/bin/unit-tests}
	if [ -x "$unit" ]; then
		out=$(timeout -k 5 60 "$unit" cgroup 2>&1); rc=$?
		# CUnit verbose lines: "  Test: NAME ...passed" or "...FAILED" followed by details.
		printf '%s\n' "$out" | awk '
			/Test: .*\.\.\.passed/ { sub(/^ *Test: /, ""); sub(/ \.\.\.passed.*/, ""); print "ok - unit cgroup." $0; n++ }
			/Test: .*\.\.\.FAILED/ { sub(/^ *Test: /, ""); sub(/ \.\.\.FAILED.*/, ""); print "not ok - unit cgroup." $0; n++ }
			/^ +[0-9]+\. / { print "    " $0 }
			END { if (n == 0) print "not ok - unit cgroup: no test ran" }'
		if ! printf '%s\n' "$out" | grep -q '^unit: [0-9]* passed'; then
			not_ok "unit cgroup: runner crashed (rc=$rc)"; printf '%s\n' "$out" | tail -10 | sed 's/^/    /'
		fi
	else
		skip "unit cgroup" "build/bin/unit-tests not built"
	fi
	bash tests/integration/t_cgroup.sh 2>&1
	bash tests/integration/t_update.sh 2>&1
	if [ "${SBX_VM_ALL:-0}" = 1 ] && [ -e tests/integration/t_run.sh ]; then
		bash tests/integration/t_run.sh 2>&1
	fi
	return 0
}

if [ "${1:-}" = --inside ]; then
	inside | prefix
	exit 0
fi

if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
	skip "vm" "qemu-system-x86 is not installed (scripts/install-deps.sh --with-vm)"
elif ! ls /boot/vmlinuz-* >/dev/null 2>&1; then
	skip "vm" "no kernel in /boot (linux-image-amd64, scripts/install-deps.sh --with-vm)"
else
	limit=${SBX_VM_TIMEOUT:-420}
	log=$(mktemp /tmp/sbx-vm.XXXXXX)
	start=$(date +%s)
	tests/vm/vm.sh -t "$limit" -- bash tests/vm/run-in-vm.sh --inside >"$log" 2>&1
	rc=$?
	cat "$log"
	echo "# vm: exit $rc after $(($(date +%s) - start)) s"
	case $rc in
	0) grep -qE '^(ok|not ok|skip) - ' "$log" || not_ok "vm: no test output (see the log above)" ;;
	124) not_ok "vm: timed out after $limit s" ;;
	125) not_ok "vm: tests/vm/vm.sh could not start the VM (see the log above)" ;;
	*) not_ok "vm: in-VM runner exited $rc" ;;
	esac
	rm -f "$log"
fi
finish
