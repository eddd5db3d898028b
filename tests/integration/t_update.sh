#!/bin/bash
# `sbxrun update` (runc's verb): a sandbox's limits change in its cgroup and in its recorded
# config.json together, in the created, running and paused states, from flags or from OCI
# linux.resources JSON (-r FILE|-); bad values are refused with a message naming the value, and
# change neither the cgroup nor the record. Runs on the host's layout (hybrid/v1 on the dev VMs)
# and, via tests/vm/run-in-vm.sh, on pure v2.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

require_root update || finish
if [ ! -x "$SBXRUN" ] || ! command -v jq >/dev/null; then
	skip update "build/bin/sbxrun not built, or no jq"
	finish
fi
layout=$(stat -f -c %T /sys/fs/cgroup)
[ "$layout" = cgroup2fs ] && layout=v2 || layout=v1/hybrid
IMG=busybox
[ -d "$SBX_IMAGES/busybox" ] || IMG=host
T=$(mktemp -d /tmp/sbx-update.XXXXXX)
ROOT=$T/state
ID=upd$$
S() { timeout 20 "$SBXRUN" --root "$ROOT" "$@"; }
declare -a bg=()
cleanup() {
	local id p
	for id in $(ls "$ROOT" 2>/dev/null); do S resume "$id" >/dev/null 2>&1; S delete --force "$id" >/dev/null 2>&1; done
	for p in "${bg[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
before=$(host_snapshot | grep -F "$ID" || true)
wait_for() { local i; for i in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }

# limit ID memory|swap|pids|quota|period: the value in the sandbox's cgroup, in OCI terms (swap is
# memory+swap; "max" on v2 is printed as is); "n/a" where this host has no such file.
limit() {
	local pid cg f v
	pid=$(jq -r .pid "$ROOT/$1/state.json" 2>/dev/null)
	if [ "$layout" = v2 ]; then
		cg=/sys/fs/cgroup$(awk -F: '$1 == "0" {print $3}' "/proc/$pid/cgroup" 2>/dev/null)
		case $2 in
		memory) cat "$cg/memory.max" ;;
		swap) [ -e "$cg/memory.swap.max" ] && echo $(($(cat "$cg/memory.max") + $(cat "$cg/memory.swap.max"))) || echo n/a ;;
		pids) cat "$cg/pids.max" ;;
		quota) awk '{print $1}' "$cg/cpu.max" ;;
		period) awk '{print $2}' "$cg/cpu.max" ;;
		esac 2>/dev/null
		return
	fi
	case $2 in memory | swap) h=memory ;; pids) h=pids ;; *) h=cpu ;; esac
	cg=/sys/fs/cgroup/$h$(awk -F: -v h="$h" '{n = split($2, c, ","); for (i = 1; i <= n; i++) if (c[i] == h) print $3}' "/proc/$pid/cgroup" 2>/dev/null)
	case $2 in
	memory) f=memory.limit_in_bytes ;; swap) f=memory.memsw.limit_in_bytes ;; pids) f=pids.max ;;
	quota) f=cpu.cfs_quota_us ;; period) f=cpu.cfs_period_us ;;
	esac
	[ -e "$cg/$f" ] && cat "$cg/$f" || echo n/a
}
# rec ID PATH: a field of linux.resources in the recorded config.json ("none" if absent).
rec() { jq -r ".linux.resources.$2 // \"none\"" "$ROOT/$1/config.json" 2>&1; }
# Everything both sides say, on one line, for "nothing changed" checks.
snapshot() {
	echo "$(limit "$1" memory) $(limit "$1" swap) $(limit "$1" pids) $(limit "$1" quota) $(limit "$1" period)"
	md5sum <"$ROOT/$1/config.json"
}
# cgroup_says ID: memory, swap (where the host accounts it), pids as the cgroup has them, and the
# same three as the record has them; the two halves must agree.
agree() { # NAME ID
	local sw=$(limit "$2" swap) rsw
	rsw=$(rec "$2" memory.swap)
	[ "$sw" = n/a ] && rsw=n/a
	expect_eq "$1: the record says what the cgroup has (memory, memory+swap, pids)" \
		"$(limit "$2" memory) $sw $(limit "$2" pids)" "$(rec "$2" memory.limit) $rsw $(rec "$2" pids.limit)"
}

A=$ID-a
expect_match "update --help names runc's flags and the exit statuses" "--memory-swap.*--pids-limit.*Exit status" \
	"$("$SBXRUN" update --help 2>&1 | tr '\n' ' ')"
if ! S run -d --id "$A" --image "$IMG" --memory 64M --pids 100 -- sleep 120 >"$T/a.out" 2>&1; then
	not_ok "update[$layout]: run --detach a sandbox to update"; sed 's/^/    /' "$T/a.out" | head -5
	finish
fi
expect_eq "update[$layout]: created with --memory 64M --pids 100" "67108864 100" "$(limit "$A" memory) $(limit "$A" pids)"
mode=$(stat -c '%a %U' "$ROOT/$A/config.json")

# --- created, then running: flags ---------------------------------------------------------------
rc=0; S update --pids-limit 90 "$A" >"$T/u.out" 2>&1 || rc=$?
expect_eq "update[$layout]: a created sandbox: exit 0, pids.max 90, recorded 90" "0 90 90" "$rc $(limit "$A" pids) $(rec "$A" pids.limit)"
check "update[$layout]: start after the update" S start "$A"
rc=0; S update --memory 32M --pids-limit 50 "$A" >"$T/u.out" 2>&1 || rc=$?
expect_eq "update[$layout]: --memory 32M --pids-limit 50 exits 0" "0" "$rc"
[ "$rc" = 0 ] || sed 's/^/    /' "$T/u.out" | head -5
expect_eq "update[$layout]: the cgroup has memory 32M and pids 50" "33554432 50" "$(limit "$A" memory) $(limit "$A" pids)"
expect_eq "update[$layout]: the record has them, swap off (memory.swap = memory.limit)" "33554432 33554432 50" \
	"$(rec "$A" memory.limit) $(rec "$A" memory.swap) $(rec "$A" pids.limit)"
agree "update[$layout]: after flags" "$A"
expect_eq "update[$layout]: the rest of the record stays (args, hostname)" "sleep 120 sbx-$A" \
	"$(jq -r '"\(.process.args | join(" ")) \(.hostname)"' "$ROOT/$A/config.json")"
expect_eq "update[$layout]: the record keeps its mode and owner, no temporary file is left" "$mode 0" \
	"$(stat -c '%a %U' "$ROOT/$A/config.json") $(ls -A "$ROOT/$A" | grep -c update)"

# --- -r FILE|-: OCI linux.resources as containerd sends it (devices included, ignored) -----------
printf '%s' '{"cpu":{"quota":25000,"period":50000},"devices":[{"allow":false,"access":"rwm"}],"memory":{"limit":41943040}}' >"$T/r.json"
rc=0; S update -r "$T/r.json" "$A" >"$T/u.out" 2>&1 || rc=$?
expect_eq "update[$layout]: -r FILE exits 0" "0" "$rc"
[ "$rc" = 0 ] || sed 's/^/    /' "$T/u.out" | head -5
expect_eq "update[$layout]: -r: cgroup quota/period and memory" "25000 50000 41943040" "$(limit "$A" quota) $(limit "$A" period) $(limit "$A" memory)"
expect_eq "update[$layout]: -r: recorded likewise" "25000 50000 41943040" "$(rec "$A" cpu.quota) $(rec "$A" cpu.period) $(rec "$A" memory.limit)"
rc=0; echo '{"cpu":{"quota":40000}}' | S update -r - "$A" >"$T/u.out" 2>&1 || rc=$?
expect_eq "update[$layout]: -r - (stdin): a quota alone keeps the period, in both" "0 40000 50000 40000 50000" \
	"$rc $(limit "$A" quota) $(limit "$A" period) $(rec "$A" cpu.quota) $(rec "$A" cpu.period)"
agree "update[$layout]: after -r" "$A"

# --- refused: the message names the value; neither the cgroup nor the record changes --------------
was=$(snapshot "$A")
refuse() { # NAME WANT-IN-MESSAGE ARGS...
	local n=$1 want=$2 out rc=0
	shift 2
	out=$(S update "$@" "$A" 2>&1) || rc=$?
	if [ "$rc" != 0 ] && printf '%s' "$out" | grep -qF -- "$want"; then
		ok "update[$layout]: refused: $n"
	else
		not_ok "update[$layout]: refused: $n (exit $rc, message naming \`$want\`)"
		printf '    %s\n' "$out" | head -3
	fi
	expect_eq "update[$layout]: ... and nothing changed ($n)" "$was" "$(snapshot "$A")"
}
refuse "--memory 12x" 12x --memory 12x
refuse "--memory -1 (unlimited)" '`-1`' --memory -1
refuse "--memory 512 (below 1M)" '`512`' --memory 512
refuse "--pids-limit 0" "pids.limit 0" --pids-limit 0
refuse "--blkio-weight 5" "blockIO.weight 5" --blkio-weight 5
refuse "--cpu-quota 500" "cpu.quota 500" --cpu-quota 500
refuse "--cpu-share 1" "cpu.shares 1" --cpu-share 1
refuse "--memory-swap below --memory" "memory.swap 33554432 is below memory.limit 67108864" --memory 64M --memory-swap 32M
refuse "--memory-swap below the recorded memory" "memory.swap 20971520 is below memory.limit 41943040" --memory-swap 20M
refuse "--cpu-burst (not in sbx)" "--cpu-burst is not supported" --cpu-burst 1000
refuse "-r with flags" "cannot be combined" -r "$T/r.json" --pids-limit 10
printf '%s' '{"hugepageLimits":[{"pageSize":"2MB","limit":1048576}]}' >"$T/bad.json"
refuse "-r: hugepageLimits" "hugepageLimits" -r "$T/bad.json"
printf '%s' '{"memory":{"limit":"64M"}}' >"$T/bad.json"
refuse "-r: a string where bytes go" 'memory.limit "64M"' -r "$T/bad.json"
printf '%s' '{"memory":{"limit":' >"$T/bad.json"
refuse "-r: not JSON" "$T/bad.json" -r "$T/bad.json"

# --- a cgroup write that fails part way is set back to the record: pids.max is written first, then
# the unified file, which no kernel has, fails (v2: no such file; v1: unified needs v2).
printf '%s' '{"pids":{"limit":33},"unified":{"sbx.nosuch":"1"}}' >"$T/half.json"
was=$(snapshot "$A")
rc=0; out=$(S update -r "$T/half.json" "$A" 2>&1) || rc=$?
expect_eq "update[$layout]: a cgroup write failing part way: exit 1, says what was set back" "1 yes" \
	"$rc $(printf '%s' "$out" | grep -q 'cgroup write failed; its cgroup may keep part of the update (the record has no earlier value to set back), its record is unchanged: .*sbx.nosuch' && echo yes)"
[ "$rc" = 1 ] || printf '    %s\n' "$out" | head -3
expect_eq "update[$layout]: ... pids.max set back, the record unchanged" "$was" "$(snapshot "$A")"

# --- paused --------------------------------------------------------------------------------------
check "update[$layout]: pause" S pause "$A"
rc=0; S update --pids-limit 40 "$A" >"$T/u.out" 2>&1 || rc=$?
expect_eq "update[$layout]: a paused sandbox: exit 0, pids 40 in both" "0 40 40" "$rc $(limit "$A" pids) $(rec "$A" pids.limit)"
check "update[$layout]: resume" S resume "$A"

# --- a plain `sbxrun run` keeps no config: its cgroup alone changes -----------------------------
B=$ID-b
"$SBXRUN" --root "$ROOT" run --image "$IMG" --id "$B" --pids 100 -- sleep 120 >"$T/b.out" 2>&1 &
bg+=($!)
if wait_for S ps "$B"; then
	rc=0; S update --pids-limit 30 "$B" >"$T/u.out" 2>&1 || rc=$?
	expect_eq "update[$layout]: a plain run's sandbox: exit 0, pids.max 30, no record made" "0 30 no" \
		"$rc $(limit "$B" pids) $([ -e "$ROOT/$B/config.json" ] && echo yes || echo no)"
	S kill "$B" KILL >/dev/null 2>&1
else
	not_ok "update[$layout]: a plain run's sandbox started"; sed 's/^/    /' "$T/b.out" | head -5
fi

# --- stopped and unknown sandboxes ----------------------------------------------------------------
S kill "$A" KILL >/dev/null 2>&1
wait_for sh -c "$SBXRUN --root $ROOT state $A | grep -q '\"stopped\"'"
rc=0; out=$(S update --pids-limit 20 "$A" 2>&1) || rc=$?
expect_eq "update[$layout]: a stopped sandbox: exit 1, said so" "1 yes" "$rc $(printf '%s' "$out" | grep -q "is stopped" && echo yes)"
rc=0; out=$(S update --pids-limit 20 "$ID-nosuch" 2>&1) || rc=$?
expect_eq "update: an unknown id: exit 1, named" "1 yes" "$rc $(printf '%s' "$out" | grep -qF "$ID-nosuch" && echo yes)"
rc=0; S update "$A" >/dev/null 2>&1 || rc=$?
expect_eq "update: nothing to update is a usage error (125)" "125" "$rc"

S delete --force "$A" >/dev/null 2>&1
for p in "${bg[@]}"; do wait "$p" 2>/dev/null; done
bg=()
S delete --force "$B" >/dev/null 2>&1
after=$(host_snapshot | grep -F "$ID" || true)
expect_eq "update[$layout]: host left as it was (mounts, cgroups, state)" "$before" "$after"
finish
