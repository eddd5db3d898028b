#!/bin/bash
# Resource limits through the real sbxrun: OOM kill and its report, pids limit against a fork
# bomb, cpu quota, pause/resume, kill of every process, and no cgroup or process left behind.
# Runs on the host's layout (hybrid/v1 on the dev VMs) and, via tests/vm/run-in-vm.sh, on pure v2.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

require_root cgroup || finish
if [ ! -x "$SBXRUN" ] || [ ! -x "$PROBE" ]; then
	skip cgroup "build/bin/sbxrun or build/bin/sbx-probe not built"
	finish
fi
layout=$(stat -f -c %T /sys/fs/cgroup)
[ "$layout" = cgroup2fs ] && layout=v2 || layout=v1/hybrid
IMG=busybox
[ -d "$SBX_IMAGES/busybox" ] || IMG=host
T=$(mktemp -d /tmp/sbx-cgroup.XXXXXX)
ID=cgt$$
declare -a bg=()
cleanup() {
	local p
	for p in pids pause; do
		[ -e "/run/sbx/$ID-$p" ] || continue
		"$SBXRUN" resume "$ID-$p" >/dev/null 2>&1
		"$SBXRUN" kill "$ID-$p" KILL >/dev/null 2>&1
	done
	for p in "${bg[@]}"; do wait_gone "$p" || kill -KILL "$p" 2>/dev/null; done
	for p in pids pause; do
		[ -e "/run/sbx/$ID-$p" ] && "$SBXRUN" delete --force "$ID-$p" >/dev/null 2>&1
	done
	rm -rf "$T"
}
trap cleanup EXIT
# Other sandboxes may come and go on a shared host: only this file's ids count as leftovers.
before=$(host_snapshot | grep -F "$ID" || true)
run() { timeout -k 5 60 "$SBXRUN" run --image "$IMG" --bind "$PROBE:/sbx-probe:ro" "$@"; }

# The leaf directories of sandbox $1, if any are left, in any hierarchy.
# (v1: `sbx-ID` below the caller's cgroup; v2: ID below its `sbx` child.)
leftover_cgroups() {
	find /sys/fs/cgroup -mindepth 1 -maxdepth 7 -type d \( -name "$1" -o -name "sbx-$1" \) 2>/dev/null
}
# Waits up to 10 s for CMD to succeed.
wait_for() { local i; for i in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
# Waits up to 10 s for process $1 (one this script started) to exit, and reaps it.
wait_gone() {
	local i
	for i in $(seq 100); do
		if [ ! -e "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]; then
			wait "$1" 2>/dev/null
			return 0
		fi
		sleep 0.1
	done
	return 1
}
json_num() { printf '%s' "$2" | grep -Eo "\"$1\": *-?[0-9]+" | grep -Eo -- '-?[0-9]+$'; }

# --- the sandbox's view: its own cgroup at /sys/fs/cgroup, rooted at it ---------------------
if [ "$layout" = v2 ]; then mem=/sys/fs/cgroup/memory.max pids=/sys/fs/cgroup/pids.max
else mem=/sys/fs/cgroup/memory/memory.limit_in_bytes pids=/sys/fs/cgroup/pids/pids.max; fi
expect_eq "cgroup[$layout]: the sandbox sees its own limits" "67108864 512" \
	"$(run --id "$ID-view" --memory 64M -- sh -c "echo \$(cat $mem) \$(cat $pids)" 2>&1)"
expect_eq "cgroup[$layout]: /proc/self/cgroup is rooted at the sandbox's cgroup" "" \
	"$(run --id "$ID-view" -- cat /proc/self/cgroup 2>&1 | grep -v ':/$')"
expect_match "cgroup[$layout]: the view is read-only, even for root inside" "Read-only file system" \
	"$(run --id "$ID-view" --user 0 -- sh -c "echo 1 > $pids; mkdir ${pids%/*}/sub" 2>&1)"
expect_eq "cgroup[$layout]: ... for every mount in it" "" \
	"$(run --id "$ID-view" -- grep ' /sys/fs/cgroup' /proc/self/mountinfo 2>&1 | awk '$6 !~ /^ro,/')"

# --- where the cgroup is: leftover_cgroups must find a live one, or its checks prove nothing ---
run --id "$ID-where" -- sleep 30 >/dev/null 2>&1 &
where_pid=$!
bg+=("$where_pid")
wait_for test -n "$(leftover_cgroups "$ID-where")"
if [ "$layout" = v2 ]; then want="/sbx/$ID-where"; else want="/sbx-$ID-where"; fi
expect_eq "cgroup[$layout]: the sandbox's cgroup is \$own$want in every hierarchy" "" \
	"$(leftover_cgroups "$ID-where" | while read -r d; do
		h=${d#/sys/fs/cgroup}; h=${h#/}; h=${h%%/*}
		[ "$layout" = v2 ] && own=$(awk -F: '$1 == 0 {print $3}' /proc/self/cgroup) h= ||
			own=$(awk -F: -v h="$h" '$2 == h {print $3; next} {n = split($2, c, ","); for (i = 1; i <= n; i++) if (c[i] == h) print $3}' /proc/self/cgroup)
		[ "$d" = "/sys/fs/cgroup${h:+/$h}${own%/}$want" ] || echo "unexpected: $d"
	done)"
expect_match "cgroup[$layout]: ... in more than one hierarchy on v1" "$([ "$layout" = v2 ] && echo '^1$' || echo '^[2-9]$')" \
	"$(leftover_cgroups "$ID-where" | wc -l)"
if [ "$layout" != v2 ] && [ -d /sys/fs/cgroup/cpuset ] && [ -d /sys/fs/cgroup/blkio ] && [ -d /sys/fs/cgroup/devices ] &&
	[ ! -L /sys/fs/cgroup/cpuset ] && [ ! -L /sys/fs/cgroup/blkio ] && [ ! -L /sys/fs/cgroup/devices ]; then
	expect_eq "cgroup[$layout]: no cpuset, blkio or devices cgroup unless a limit needs one (they would constrain nothing)" "" \
		"$(leftover_cgroups "$ID-where" | grep -E '^/sys/fs/cgroup/(cpuset|blkio|devices)/')"
	expect_eq "cgroup[$layout]: ... and the sandbox's view shows none of them" "" \
		"$(run --id "$ID-view" -- ls /sys/fs/cgroup 2>&1 | grep -E '^(cpuset|blkio|devices)$')"
	expect_eq "cgroup[$layout]: --io-weight puts it in a blkio cgroup of its own" "blkio /" \
		"$(run --id "$ID-view" --io-weight 100 -- sh -c 'ls /sys/fs/cgroup | grep -x blkio; grep -o ":blkio:.*" /proc/self/cgroup | cut -d: -f3' 2>&1 | xargs)"
fi
"$SBXRUN" kill "$ID-where" KILL >/dev/null 2>&1
wait_gone "$where_pid"
expect_eq "cgroup[$layout]: ... and gone after the sandbox" "" "$(leftover_cgroups "$ID-where")"

# --- memory: OOM kill is reported, the host is fine ---------------------------------------
rc=0
run --id "$ID-oom" --memory 32M --json-status-fd 3 -- /sbx-probe memhog 256 \
	3>"$T/oom.status" >"$T/oom.out" 2>"$T/oom.err" || rc=$?
expect_eq "cgroup[$layout]: memory hog exits 137" 137 "$rc"
expect_match "cgroup[$layout]: OOM on stderr" '[Oo][Oo][Mm]|out of memory' "$(cat "$T/oom.err")"
expect_match "cgroup[$layout]: \"oom\": true in the JSON status" '"oom": *true' "$(cat "$T/oom.status")"
expect_eq "cgroup[$layout]: OOM sandbox leaves no cgroup" "" "$(leftover_cgroups "$ID-oom")"
rc=0
run --id "$ID-after" --memory 64M -- /sbx-probe sleep 0 >/dev/null 2>&1 || rc=$?
expect_eq "cgroup[$layout]: a sandbox runs fine after the OOM" 0 "$rc"
rc=0
run --id "$ID-ok" --memory 64M --json-status-fd 3 -- /sbx-probe memhog 8 3>"$T/ok.status" >/dev/null 2>&1 || rc=$?
expect_eq "cgroup[$layout]: memhog under the limit exits 0" 0 "$rc"
# "oom": false said, not merely "oom": true absent (an empty status file has neither).
expect_match "cgroup[$layout]: no oom reported under the limit" '"exit-code": *0.*"oom": *false' "$(cat "$T/ok.status")"

# --- pids: a fork bomb stops at the limit and sbxrun cleans up -----------------------------
rc=0
run --id "$ID-fb" --pids 32 -- /sbx-probe forkbomb 2000 >"$T/fb.out" 2>&1 || rc=$?
if [ "$rc" = 124 ]; then
	not_ok "cgroup[$layout]: fork bomb ends"; sed 's/^/    /' "$T/fb.out" | head -5
else
	ok "cgroup[$layout]: fork bomb ends (rc=$rc)"
fi
# It ended because fork hit the limit (EAGAIN from the pids controller) short of its 2000, not
# because it never ran.
expect_match "cgroup[$layout]: the fork bomb stopped at the pids limit" \
	'forkbomb: forked ([0-9]|[12][0-9]|3[0-2]) of 2000.*first_error EAGAIN' "$(tr '\n' ' ' <"$T/fb.out")"
expect_eq "cgroup[$layout]: fork bomb leaves no cgroup" "" "$(leftover_cgroups "$ID-fb")"
expect_eq "cgroup[$layout]: fork bomb leaves no process" "" "$(pgrep -f '/sbx-probe forkbomb' || true)"

# The limit itself, observed from outside: an inner shell starts sleepers until fork fails (a
# shell exits on a failed fork); the outer one then execs, which needs no new task.
"$SBXRUN" run --image "$IMG" --id "$ID-pids" --pids 16 -- \
	sh -c 'sh -c "for i in \$(seq 40); do sleep 60 & done" 2>/dev/null; exec sleep 60' >"$T/pids.out" 2>&1 &
bg+=($!); pids_bg=$!
if wait_for "$SBXRUN" ps "$ID-pids"; then
	sleep 2
	stats=$("$SBXRUN" stats "$ID-pids" 2>&1)
	n=$(json_num pids "$stats")
	if [ -n "$n" ] && [ "$n" -le 16 ] && [ "$n" -ge 8 ]; then ok "cgroup[$layout]: --pids 16 holds ($n tasks)"; else not_ok "cgroup[$layout]: --pids 16 holds"; echo "    stats: $stats"; fi
	pids=$("$SBXRUN" ps "$ID-pids" --format json 2>/dev/null | tr -d '[],' )
	expect_match "cgroup[$layout]: ps lists the sandbox's processes" '[0-9]' "$pids"
	rc=0; "$SBXRUN" kill "$ID-pids" KILL >"$T/kill.out" 2>&1 || rc=$?
	expect_eq "cgroup[$layout]: kill ID KILL" 0 "$rc"
	wait_gone "$pids_bg" || not_ok "cgroup[$layout]: sbxrun run returns after kill"
	alive=""
	for p in $pids; do [ -e "/proc/$p" ] && alive="$alive $p"; done
	expect_eq "cgroup[$layout]: kill removes every process" "" "$alive"
else
	not_ok "cgroup[$layout]: --pids sandbox started"; sed 's/^/    /' "$T/pids.out" | head -5
	kill -KILL "$pids_bg" 2>/dev/null
fi
expect_eq "cgroup[$layout]: killed sandbox leaves no cgroup" "" "$(leftover_cgroups "$ID-pids")"

# --- cpu: --cpus 0.5 busy loop gets about half a cpu ----------------------------------------
out=$(run --id "$ID-cpu" --cpus 0.5 -- /sbx-probe spin 3 2>&1)
ratio=$(printf '%s\n' "$out" | grep -Eo '[0-9]+(\.[0-9]+)?' | tail -1)
# The probe may print a fraction (0.5) or a percentage (50).
pct=$(awk -v r="${ratio:-x}" 'BEGIN { if (r !~ /^[0-9.]+$/) { print "none"; exit } if (r <= 1.5) r *= 100; printf "%d", r }')
if [ "$pct" != none ] && [ "$pct" -ge 30 ] && [ "$pct" -le 70 ]; then
	ok "cgroup[$layout]: --cpus 0.5 busy loop uses ${pct}%"
else
	not_ok "cgroup[$layout]: --cpus 0.5 busy loop uses 30..70%"; echo "    output: $out"
fi

# --- pause / resume: a counter in a bind-mounted file stops and restarts -------------------
mkdir -p "$T/out"
# The workload runs as an unprivileged user inside its user namespace.
chmod 755 "$T"; chmod 777 "$T/out"
"$SBXRUN" run --image "$IMG" --id "$ID-pause" --bind "$T/out:/out" -- \
	sh -c 'i=0; while :; do i=$((i+1)); echo $i > /out/c; sleep 0.1; done' >"$T/pause.out" 2>&1 &
bg+=($!); pause_bg=$!
if wait_for test -s "$T/out/c"; then
	rc=0; "$SBXRUN" pause "$ID-pause" >"$T/p.out" 2>&1 || rc=$?
	expect_eq "cgroup[$layout]: pause ID" 0 "$rc"
	[ "$rc" = 0 ] || sed 's/^/    /' "$T/p.out"
	sleep 0.5; a=$(cat "$T/out/c"); sleep 1.5; b=$(cat "$T/out/c")
	expect_eq "cgroup[$layout]: paused sandbox makes no progress" "$a" "$b"
	expect_match "cgroup[$layout]: stats says frozen" '"frozen": *true' "$("$SBXRUN" stats "$ID-pause" 2>&1)"
	rc=0; "$SBXRUN" resume "$ID-pause" >"$T/r.out" 2>&1 || rc=$?
	expect_eq "cgroup[$layout]: resume ID" 0 "$rc"
	sleep 1.5; c=$(cat "$T/out/c")
	if [ "${c:-0}" -gt "${b:-0}" ]; then ok "cgroup[$layout]: resumed sandbox progresses ($b -> $c)"; else not_ok "cgroup[$layout]: resumed sandbox progresses ($b -> $c)"; fi
	stats=$("$SBXRUN" stats "$ID-pause" 2>&1)
	for k in memory_current memory_peak cpu_usec pids oom_kills; do
		expect_match "cgroup[$layout]: stats has $k" "\"$k\": *[0-9]" "$stats"
	done
	pids=$("$SBXRUN" ps "$ID-pause" --format json 2>/dev/null | tr -d '[],')
	"$SBXRUN" pause "$ID-pause" >/dev/null 2>&1
	rc=0; "$SBXRUN" kill "$ID-pause" KILL >/dev/null 2>&1 || rc=$?
	expect_eq "cgroup[$layout]: kill a paused sandbox" 0 "$rc"
	wait_gone "$pause_bg" || not_ok "cgroup[$layout]: sbxrun run returns after a paused sandbox is killed"
	alive=""
	for p in $pids; do [ -e "/proc/$p" ] && alive="$alive $p"; done
	expect_eq "cgroup[$layout]: kill of a paused sandbox removes every process" "" "$alive"
else
	not_ok "cgroup[$layout]: pause sandbox started"; sed 's/^/    /' "$T/pause.out" | head -5
	kill -KILL "$pause_bg" 2>/dev/null
fi
expect_eq "cgroup[$layout]: paused+killed sandbox leaves no cgroup" "" "$(leftover_cgroups "$ID-pause")"

# --- unknown ids -----------------------------------------------------------------------------
for verb in pause resume ps stats; do
	rc=0; err=$("$SBXRUN" "$verb" "$ID-nosuch" 2>&1) || rc=$?
	expect_eq "cgroup: $verb of an unknown id exits 1" 1 "$rc"
	expect_match "cgroup: $verb of an unknown id names it" "$ID-nosuch" "$err"
done

# --- a limit the host cannot enforce: libsbx names the limit, the CLI its own options -------
# (rootless without a delegated cgroup: uid 65534 cannot write below the root-owned tree)
mkdir -m 777 "$T/rootless"
out=$(cd "$T" && timeout -k 5 30 setpriv --reuid=65534 --regid=65534 --clear-groups \
	"$SBXRUN" --root "$T/rootless" run --id "$ID-rl" --rootfs / --memory 64M --pids 20 -- true 2>&1)
if [[ $out == *"clone new namespaces"* ]]; then
	skip "cgroup[$layout]: rootless --memory/--pids report" "no unprivileged user namespaces here"
else
	expect_match "cgroup[$layout]: rootless --memory/--pids: the report names the options and the limit" \
		"^sbxrun: --memory, --pids: memory limit requested but the cgroup is not writable" "$out"
fi

after=$(host_snapshot | grep -F "$ID" || true)
expect_eq "cgroup[$layout]: host left as it was (mounts, cgroups, links, state)" "$before" "$after"
finish
