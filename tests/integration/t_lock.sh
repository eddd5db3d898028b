#!/bin/bash
# sbxrun's per-id lock (runtime/lib/state.c, sbx_state_lock()): two `run` of one id never both
# win, `delete --force` never tears down a sandbox that a run is still creating, a creator killed
# with -9 never blocks the id, and no lock file is left behind. A prestart hook that sleeps keeps
# each run in its "creating" phase (its record exists and names no live process yet) long enough
# to race it from here. Everything lives under one temp dir with its own --root; every process
# this file starts is stopped by its pid.
. "$(dirname "$0")/../lib.sh"
require_root "lock" || finish
[ -d "$SBX_IMAGES/busybox/rootfs" ] || { skip "lock" "no busybox image (make rootfs)"; finish; }
command -v jq >/dev/null || { skip "lock" "jq not installed"; finish; }

TMP=$(mktemp -d /tmp/sbx-t-lock.XXXXXX)
ROOT=$TMP/state
S() { timeout 60 "$SBXRUN" --root "$ROOT" "$@"; }
BG=()
cleanup() {
	for p in "${BG[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	for id in $(ls "$ROOT" 2>/dev/null); do "$SBXRUN" --root "$ROOT" delete --force "$id" >/dev/null 2>&1; done
	rm -rf "$TMP"
}
trap cleanup EXIT

# bundle NAME HOOK_SECONDS ARGS_JSON: an OCI bundle on the busybox image (read-only, no user
# namespace, as `crun spec` makes it) whose prestart hook sleeps HOOK_SECONDS.
bundle() {
	mkdir -p "$TMP/$1"
	jq -n --arg root "$SBX_IMAGES/busybox/rootfs" --arg hook "$2" --argjson args "$3" '{
		ociVersion: "1.0.2",
		process: {terminal: false, user: {uid: 0, gid: 0}, args: $args, cwd: "/",
		          env: ["PATH=/bin:/usr/bin"]},
		root: {path: $root, readonly: true},
		hostname: "lock",
		mounts: [{destination: "/proc", type: "proc", source: "proc"}],
		hooks: {prestart: [{path: "/bin/sleep", args: ["sleep", $hook]}]},
		linux: {namespaces: [{type: "pid"}, {type: "network"}, {type: "ipc"}, {type: "uts"},
		                     {type: "mount"}]}}' >"$TMP/$1/config.json"
}
# until_record ID: waits (bounded) until ID's record names its cgroup: its run is in "creating",
# in the prestart hook (a run killed before that leaves a cgroup that no record names).
until_record() {
	for _ in $(seq 100); do grep -qs '"cgroup"' "$ROOT/$1/state.json" && return 0; sleep 0.02; done
	return 1
}
bundle hold 1.5 '["sleep", "4"]'
bundle quick 0 '["true"]'
bundle long 1.5 '["sleep", "30"]'
bundle stuck 10 '["true"]'

# --- two runs of one id: the second waits for the first's claim, then finds it alive ---
S run --bundle "$TMP/hold" x1 >"$TMP/x1.out" 2>&1 & p1=$!; BG+=("$p1")
until_record x1 || not_ok "first run of x1 reached creating"
out=$(S run --bundle "$TMP/quick" x1 2>&1); rc=$?
expect_match "a second run of an id being created is refused: it already exists" \
	"rc=125 .*sandbox .x1. already exists" "rc=$rc $out"
expect_eq "... and x1's record is still there, running" "running" \
	"$(S state x1 2>&1 | jq -r .status 2>/dev/null)"
wait "$p1"; rc=$?
expect_eq "the first run of x1 is unharmed (its workload ran to the end)" "0" "$rc"
[ "$rc" = 0 ] || sed 's/^/    /' "$TMP/x1.out"
expect_eq "x1 is gone once its run ended" "absent" "$([ -e "$ROOT/x1" ] && echo present || echo absent)"

# --- delete --force during creation: it waits until the sandbox runs, then kills it ---
S run --bundle "$TMP/long" x2 >"$TMP/x2.out" 2>&1 & p2=$!; BG+=("$p2")
until_record x2 || not_ok "run of x2 reached creating"
out=$(S delete --force x2 2>&1); rc=$?
expect_eq "delete --force of a sandbox being created succeeds" "0" "$rc${out:+ $out}"
wait "$p2"; rc=$?
# 137: its init was killed as a running sandbox is. A delete that removed the half-made record
# and its cgroup under the run makes the run fail its set-up instead (125).
expect_eq "the run ends killed (137), not broken in its set-up" "137" "$rc"
[ "$rc" = 137 ] || sed 's/^/    /' "$TMP/x2.out"
expect_eq "no record of x2 is left" "absent" "$([ -e "$ROOT/x2" ] && echo present || echo absent)"

# --- a creator killed with -9 while it holds the id: nothing waits for it ---
# Started directly (not through S, whose subshell and timeout would be what $! names).
"$SBXRUN" --root "$ROOT" run --bundle "$TMP/stuck" x3 >/dev/null 2>&1 & p3=$!; BG+=("$p3")
until_record x3 || not_ok "run of x3 reached creating"
kill -9 "$p3"; wait "$p3" 2>/dev/null
start=$(date +%s%N)
out=$(S delete --force x3 2>&1); rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
expect_eq "delete --force after the creator was killed -9 succeeds" "0" "$rc${out:+ $out}"
# The hook (sleep 10) outlives its killed parent: had it inherited the lock, this waits for it.
if [ "$ms" -lt 3000 ]; then ok "... at once (${ms} ms): a dead holder's lock is gone"; else not_ok "delete --force waited ${ms} ms for a dead creator"; fi
out=$(S run --bundle "$TMP/quick" x3 2>&1); rc=$?
expect_eq "the id can be run again at once" "0" "$rc${out:+ $out}"

expect_eq "no lock file is left in <root>/.locks" "" "$(ls -A "$ROOT/.locks" 2>&1)"
expect_eq "sbxrun list shows no lock entry" "" "$(S list -q)"
finish
