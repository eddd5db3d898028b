# Shared helpers for the integration tests (sourced). Each test file prints one line per check:
#   ok - NAME | not ok - NAME | skip - NAME # REASON
# and tests/run-tests.sh counts them. SBX_MUST_WORK=1 (set by .ci/run) turns skips into failures.
set -u
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${SBX_BIN:-$TOP/build/bin}
. "$TOP/tests/ports.sh"
SBXRUN=$BIN/sbxrun
PROBE=$BIN/sbx-probe
SBX_IMAGES=${SBX_IMAGES:-/var/lib/sbx/images}
export SBX_IMAGES
_failed=0

ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; _failed=1; }
skip() {
	local name=$1; shift
	if [ "${SBX_MUST_WORK:-0}" = 1 ]; then
		echo "not ok - $name # skipped but SBX_MUST_WORK=1: $*"; _failed=1
	else
		echo "skip - $name # $*"
	fi
}
# check NAME CMD... : CMD succeeds
check() { local n=$1; shift; if "$@" >/tmp/sbx-test.$$ 2>&1; then ok "$n"; else not_ok "$n"; sed 's/^/    /' /tmp/sbx-test.$$ | head -20; fi; rm -f /tmp/sbx-test.$$; }
# expect_eq NAME EXPECTED ACTUAL
expect_eq() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1"; printf '    expected: %s\n    actual:   %s\n' "$2" "$3"; fi
}
# expect_match NAME REGEX ACTUAL
expect_match() {
	if printf '%s' "$3" | grep -Eq -- "$2"; then ok "$1"; else not_ok "$1"; printf '    expected /%s/\n    actual:   %s\n' "$2" "$3" | head -20; fi
}
expect_nomatch() {
	if printf '%s' "$3" | grep -Eq -- "$2"; then not_ok "$1"; printf '    unexpected /%s/ in: %s\n' "$2" "$3" | head -20; else ok "$1"; fi
}
# status CMD... : prints the exit status of CMD, discarding output
status() { "$@" >/dev/null 2>&1; echo $?; }
require_root() { [ "$(id -u)" = 0 ] || { skip "$1" "needs root"; return 1; }; }

# Host resources that sbx could leak; compared before/after a test file.
host_snapshot() {
	{
		grep -E 'sbx' /proc/self/mountinfo | awk '{print "mount", $5}'
		find /sys/fs/cgroup -mindepth 1 -maxdepth 6 -type d -path '*sbx*' 2>/dev/null | grep -v '/sbx$' | sed 's/^/cgroup /'
		ip -o link show 2>/dev/null | awk -F': ' '{print "link", $2}' | grep -E 'sbx' || true
		ls /run/sbx 2>/dev/null | sed 's/^/state /'
	} | sort
}
finish() { exit $_failed; }
