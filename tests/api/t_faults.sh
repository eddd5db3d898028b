#!/bin/bash
# Faults under load (issue 17), against a real apid on 127.0.0.1 with its own data and run
# directories, in a private network namespace (apid makes its bridge and nft table there):
#   1. kill -9 of apid, 10 times, while two load generators create sessions, execute in them
#      and delete them; after every restart each sandbox is accounted for (re-adopted and usable,
#      or cleaned) and nothing leaks (runtime state, sandbox files, cgroups, veths, addresses,
#      mounts); the numbers are printed as one "# faults:" line.
#   2. data directory full (a small tmpfs): creates fail with 507 JSON, nothing half-made, and
#      creates work again once space returns.
#   3. SQLite busy (another process holds BEGIN EXCLUSIVE): writes wait (busy_timeout) and are
#      never lost; past the timeout a create is a 503 JSON and leaves nothing.
#   4. the agent killed from the host: the sandbox is reported Failed (signal 9) and deletes
#      cleanly.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/api/api_lib.sh"
api_private_netns "$@"
command -v sqlite3 >/dev/null || { skip "faults" "sqlite3 CLI missing (scripts/install-deps.sh)"; finish; }
api_prepare "faults" faults

CYCLES=${SBX_FAULT_CYCLES:-10}
SMALL=$T/small # the tmpfs data dir of part 2
before=$(host_snapshot)

# Recovery of many sandboxes (each interrupted create waits for its monitor) comes first.
APID_WAIT=600
start_apid() {
	apid_launch --listen 127.0.0.1:$PORT --data-dir "$DATA" --run-dir "$RUN" --agent "$AGENT" \
		--api-key "$KEY" --max-memory 1Gi --session-idle-timeout 3600 "$@"
}
cleanup() {
	touch "$T/stop"
	[ -n "${HOLDER:-}" ] && kill "$HOLDER" 2>/dev/null
	# After a crash too: a fresh apid re-adopts the sandboxes, so that they can be deleted.
	{ [ -n "$APID_PID" ] && kill -0 "$APID_PID" 2>/dev/null; } || { [ -d "$DATA" ] && start_apid >/dev/null 2>&1; }
	delete_all
	stop_apid TERM
	mountpoint -q "$SMALL" && umount "$SMALL"
}
trap 'cleanup; rm -rf "$T"' EXIT

sb_pid() { jq -r .pid "$RUN/$1/state.json" 2>/dev/null; }
uuids() { grep -oE '[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}' | sort -u; }
veth_of() { printf 'vsbx%.8s%.2s\n' "$1" "${1:9}"; } # apid_net_veth_name()
# What the host holds for sandboxes, as "KIND ID" lines: runtime state (RUN/ID), apid's files
# (RUN/.sandboxes/ID), cgroups, host veths, mounts. Only ids this test created are compared.
held() {
	ls "$RUN" 2>/dev/null | uuids | sed 's/^/state /'
	ls "$RUN/.sandboxes" 2>/dev/null | uuids | sed 's/^/files /'
	find /sys/fs/cgroup -mindepth 1 -maxdepth 6 -type d -path '*sbx*' 2>/dev/null | uuids | sed 's/^/cgroup /'
	grep -h "$T" /proc/self/mountinfo | uuids | sed 's/^/mount /'
	ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep '^vsbx' | sed 's/^/veth /'
}

# ---- 1. kill -9 under load
# loadgen N: until $T/stop exists (at most 200 rounds): create a session, execute in it, delete
# it (but keep two). Appends "create ID", "exec ID CODE", "delete ID CODE" to $T/load.
loadgen() {
	local n=$1 i=0 kept=0 code id
	while [ ! -e "$T/stop" ] && [ $i -lt 200 ]; do
		i=$((i + 1))
		code=$(curl -s -m 30 -o "$T/lg$n" -w '%{http_code}' -X POST -H "OPEN-SANDBOX-API-KEY: $KEY" \
			-H 'Content-Type: application/json' --data-binary '{"metadata":{"load":"yes"}}' "$BASE/create_session")
		if [ "$code" != 200 ]; then echo "createfail $code" >>"$T/load"; sleep 0.2; continue; fi
		id=$(jq -r .session_id "$T/lg$n")
		echo "create $id" >>"$T/load"
		code=$(curl -s -m 30 -o "$T/lx$n" -w '%{http_code}' -X POST -H "OPEN-SANDBOX-API-KEY: $KEY" \
			-H 'Content-Type: application/json' --data-binary "{\"session_id\":\"$id\",\"command\":\"echo hi-$i\"}" "$BASE/execute")
		echo "exec $id $code" >>"$T/load"
		# Keep one in three, at most two per cycle: live sandboxes to re-adopt, a bounded set.
		[ $((i % 3)) = 0 ] && [ $kept -lt 2 ] && { kept=$((kept + 1)); continue; }
		code=$(curl -s -m 30 -o /dev/null -w '%{http_code}' -X DELETE -H "OPEN-SANDBOX-API-KEY: $KEY" "$BASE/v1/sandboxes/$id")
		echo "delete $id $code" >>"$T/load"
	done
}

# audit CYCLE: after a restart, with the load stopped. Sets LEAKS (things held for sandboxes that
# are not live, or live sandboxes missing something) and prints each problem.
audit() {
	local c=$1 id live all states bad=0 k
	api GET "/v1/sandboxes?pageSize=200"
	[ "$CODE" = 200 ] || { echo "# cycle $c: list → $CODE $BODY"; LEAKS=$((LEAKS + 1)); return; }
	all=$(jqb '.items[].id' | sort)
	live=$(jqb '.items[]|select(.status.state=="Running" or .status.state=="Paused")|.id' | sort)
	states=$(jqb '[.items[].status.state]|unique|join(",")')
	case ",$states," in *,Pending,*|*,Stopping,*|*,Pausing,*|*,Resuming,*)
		echo "# cycle $c: unsettled states after recovery: $states"; bad=$((bad + 1)) ;; esac
	# Everything the host holds belongs to a live sandbox ...
	local mine; mine=$( (cut -d' ' -f2 "$T/load" 2>/dev/null; echo "$all"; grep -o 'recover [0-9a-f-]*' "$LOG" | cut -d' ' -f2) | uuids)
	while read -r k id; do
		[ -n "$id" ] || continue
		if [ "$k" = veth ]; then
			printf '%s\n' $live | while read -r l; do [ -n "$l" ] && veth_of "$l"; done | grep -qx "$id" && continue
			echo "# cycle $c: leaked veth $id"; bad=$((bad + 1)); continue
		fi
		grep -qx "$id" <<<"$mine" || continue # not this test's
		[ "$k" = files ] && grep -qx "$id" <<<"$all" && continue # an ended sandbox keeps its files until deleted
		grep -qx "$id" <<<"$live" && continue
		echo "# cycle $c: leaked $k of $id ($(jq -r ".items[]|select(.id==\"$id\")|.status.state" <<<"$BODY" 2>/dev/null || echo no row))"
		bad=$((bad + 1))
	done < <(held)
	# ... every live sandbox has its runtime, its processes, its address, and still executes ...
	for id in $live; do
		local p; p=$(sb_pid "$id")
		if [ -z "$p" ] || ! kill -0 "$p" 2>/dev/null; then echo "# cycle $c: $id listed live without a process"; bad=$((bad + 1)); continue; fi
		ip -o link show "$(veth_of "$id")" >/dev/null 2>&1 || { echo "# cycle $c: $id has no veth"; bad=$((bad + 1)); }
		# The command's own timeout bounds a hung agent (apid adds 10 s of slack).
		api POST /execute "{\"session_id\":\"$id\",\"command\":\"echo alive\",\"timeout\":10}"
		[ "$CODE $(jqb .output | tr -d '\n')" = "200 alive" ] && USABLE=$((USABLE + 1)) ||
			{ echo "# cycle $c: $id does not execute: $CODE $BODY"; grep "$id" "$LOG" | sed 's/^/#   /'; bad=$((bad + 1)); }
	done
	# ... the store holds an address only for live sandboxes, each a different one ...
	local rows; rows=$(sqlite3 -readonly "$DATA/apid.db" "SELECT id||' '||state||' '||ifnull(address,'-') FROM sandboxes" 2>&1)
	while read -r id st addr; do
		[ -n "$id" ] || continue
		case $st in Running|Paused) [ "$addr" != - ] || { echo "# cycle $c: live $id has no address"; bad=$((bad + 1)); } ;;
		*) [ "$addr" = - ] || { echo "# cycle $c: $st $id still holds $addr"; bad=$((bad + 1)); } ;; esac
	done <<<"$rows"
	local dup; dup=$(awk '$3!="-"{print $3}' <<<"$rows" | sort | uniq -d)
	[ -z "$dup" ] || { echo "# cycle $c: addresses handed out twice: $dup"; bad=$((bad + 1)); }
	[ "$(awk '{print $1}' <<<"$rows" | sort)" = "$all" ] || { echo "# cycle $c: store rows differ from the list"; bad=$((bad + 1)); }
	# ... and no acknowledged sandbox is lost: a 200 create is listed unless a delete removed it.
	for id in $(awk '$1=="create"{print $2}' "$T/load" 2>/dev/null); do
		grep -qx "$id" <<<"$all" && continue
		grep -q "^delete $id 204$" "$T/load" && continue
		grep -qE "$id(: removing| removed)" "$LOG" && continue
		echo "# cycle $c: acknowledged sandbox $id lost"; bad=$((bad + 1))
	done
	LEAKS=$((LEAKS + bad))
}

inflight() {
	local d
	for d in $(ls "$RUN/.sandboxes" 2>/dev/null | uuids); do
		grep -q "sandbox $d created" "$LOG" || return 0
	done
	return 1
}

start_apid || { not_ok "apid starts"; finish; }
LEAKS=0 USABLE=0 STALLED=0
: >"$T/load"
for c in $(seq "$CYCLES"); do
	rm -f "$T/stop"
	n0=$(grep -c '^create ' "$T/load")
	pids=()
	for n in 1 2; do loadgen $n & pids+=($!); done
	# Vary where in the create/exec/delete sequence the kill lands, then aim at a create in
	# flight: its sandbox directory exists, its "created" line does not (bounded: 3 s).
	sleep "$((1 + c % 3)).$((c * 37 % 10))"
	for _ in $(seq 300); do inflight && break; sleep 0.01; done
	stop_apid KILL
	touch "$T/stop"
	wait "${pids[@]}"
	# Each cycle's load must get sandboxes created (after a restart too), not only survive.
	[ "$(grep -c '^create ' "$T/load")" -gt "$n0" ] || { STALLED=$((STALLED + 1)); echo "# cycle $c: no create succeeded"; }
	start_apid || { not_ok "apid restarts after kill -9 (cycle $c)"; break; }
	audit "$c"
	echo "# cycle $c done at $(date +%T): $(grep -c '^create ' "$T/load") created so far, $LEAKS problems"
	# Bound the live set: keep at most 4 sandboxes across cycles.
	api GET "/v1/sandboxes?pageSize=200"
	for id in $(jqb '.items[4:][].id'); do api DELETE "/v1/sandboxes/$id"; done
done
created=$(grep -c '^create ' "$T/load")
readopted=$(grep -c 'recover .*: re-adopted' "$LOG")
cleaned=$(grep -cE 'recover .*: (create was interrupted|finishing an interrupted removal)|removing orphaned sandbox' "$LOG")
interrupted=$(grep -cE 'recover .*: create was interrupted|removing orphaned sandbox directory' "$LOG")
execs=$(grep -c '^exec .* 200$' "$T/load")
echo "# faults: cycles=$c sandboxes created=$created executed=$execs re-adoptions=$readopted cleaned=$cleaned (interrupted creates $interrupted) live-checked-after-restart=$USABLE createfail=$(grep -c '^createfail' "$T/load") leaks=$LEAKS"
expect_eq "kill -9 x$CYCLES under load: every sandbox accounted for, nothing leaked" 0 "$LEAKS"
expect_eq "every cycle's load created sandboxes (none stalled)" 0 "$STALLED"
[ "$interrupted" -ge 1 ] && ok "kills landed on creates in flight ($interrupted cleaned up)" ||
	not_ok "kills landed on creates in flight ($interrupted cleaned up)"
[ "$created" -ge "$CYCLES" ] && [ "$readopted" -ge 1 ] && ok "the load ran ($created creates) and sandboxes were re-adopted ($readopted)" ||
	not_ok "the load ran ($created creates) and sandboxes were re-adopted ($readopted)"
expect_eq "apid log has no store errors" "" "$(grep -iE 'store: .*(corrupt|malformed)' "$LOG" || true)"
delete_all
stop_apid TERM
expect_eq "after kill -9 loop: nothing of its sandboxes left" "" "$(held | grep -v '^veth' | awk '{print $2}' | grep -xFf <(cut -d' ' -f2 "$T/load" | uuids) || true)"

# ---- 2. data directory full: a 2 MiB tmpfs as --data-dir (it holds only apid.db and its WAL)
mkdir -p "$SMALL" && mount -t tmpfs -o size=2m,mode=700 sbx-faults-small "$SMALL"
DATA=$SMALL
IMG='"image":{"uri":"local/busybox"},"entrypoint":["sleep","1000"]'
start_apid || { not_ok "apid starts on a small data dir"; finish; }
api POST /v1/sandboxes "{$IMG}"
expect_eq "control: create with space left → 202" 202 "$CODE"
OK1=$(jqb .id)
held0=$(held)
dd if=/dev/zero of="$SMALL/fill" bs=4k 2>/dev/null # until ENOSPC
codes=
for i in 1 2 3; do
	api POST /v1/sandboxes "{$IMG,\"metadata\":{\"full\":\"$i\"}}"
	codes="$codes $CODE/$(jqb .code)"
	[ "$CODE" = 507 ] && msg=$(jqb .message)
done
expect_eq "data dir full: every create → 507 JSON" " 507/SANDBOX::INSUFFICIENT_STORAGE 507/SANDBOX::INSUFFICIENT_STORAGE 507/SANDBOX::INSUFFICIENT_STORAGE" "$codes"
expect_match "... with a message naming the cause" 'full|space' "${msg:-}"
expect_eq "... and nothing half-made (state, files, cgroups, links, mounts)" "$held0" "$(held)"
api GET "/v1/sandboxes?pageSize=200"
expect_eq "... reads still work and list only the control sandbox" "200 $OK1" "$CODE $(jqb '[.items[].id]|join(" ")')"
expect_eq "... apid still runs" alive "$(kill -0 $APID_PID 2>/dev/null && echo alive)"
rm -f "$SMALL/fill"
api POST /v1/sandboxes "{$IMG}"
expect_eq "space back: create → 202 Running" "202 Running" "$CODE $(jqb .status.state)"
OK2=$(jqb .id)
api DELETE "/v1/sandboxes/$OK2"; d2=$CODE
api DELETE "/v1/sandboxes/$OK1"
expect_eq "... and deletes work" "204 204" "$d2 $CODE"
stop_apid TERM
umount "$SMALL"
DATA=$T/data2

# ---- 3. SQLite busy: another process holds the write lock (BEGIN EXCLUSIVE) for a while
start_apid || { not_ok "apid starts (busy)"; finish; }
api POST /v1/sandboxes "{$IMG,\"metadata\":{\"v\":\"0\"}}"
B=$(jqb .id)
hold() { # SECONDS: holds the lock in the background; returns once it is held
	rm -f "$T/held"
	sqlite3 "$DATA/apid.db" ".timeout 5000" "BEGIN EXCLUSIVE" ".shell touch $T/held" ".shell sleep $1" "ROLLBACK" >/dev/null 2>&1 &
	HOLDER=$!
	for _ in $(seq 100); do [ -e "$T/held" ] && return 0; sleep 0.05; done
	return 1
}
check "lock holder took the write lock" hold 2
api PATCH "/v1/sandboxes/$B/metadata" '{"v":"1"}'; p1=$CODE
api POST /v1/sandboxes "{$IMG,\"metadata\":{\"busy\":\"short\"}}"; c1=$CODE; S1=$(jqb .id)
wait $HOLDER; HOLDER=
expect_eq "lock held 2 s (< busy_timeout 5 s): patch and create wait and succeed" "200 202" "$p1 $c1"
api GET "/v1/sandboxes/$B"
expect_eq "... the patch was not lost" 1 "$(jqb .metadata.v)"
api GET "/v1/sandboxes/$S1"
expect_eq "... the create was not lost" "200 Running" "$CODE $(jqb .status.state)"
held1=$(held)
check "lock holder took the write lock again" hold 12
api POST /v1/sandboxes "{$IMG,\"metadata\":{\"busy\":\"long\"}}"; c2="$CODE $(jqb .code)"
api PATCH "/v1/sandboxes/$B/metadata" '{"v":"2"}'; p2="$CODE $(jqb .code)"
wait $HOLDER; HOLDER=
expect_eq "lock held 12 s (> busy_timeout, one after the other): create and patch → 503 SERVICE_UNAVAILABLE" \
	"503 SANDBOX::SERVICE_UNAVAILABLE|503 SANDBOX::SERVICE_UNAVAILABLE" "$c2|$p2"
expect_eq "... the refused create left nothing behind" "$held1" "$(held)"
api GET "/v1/sandboxes?metadata=busy%3Dlong"
expect_eq "... and is not listed" "200 0" "$CODE $(jqb .pagination.totalItems)"
api GET "/v1/sandboxes/$B"
expect_eq "... the refused patch changed nothing" 1 "$(jqb .metadata.v)"
api PATCH "/v1/sandboxes/$B/metadata" '{"v":"3"}'
expect_eq "lock released: writes work again" "200 3" "$CODE $(jqb .metadata.v)"

# ---- 4. the agent (the sandbox's main process) killed from the host
api POST /create_session '{}'
SID=$(jqb .session_id)
spid=$(sb_pid "$SID")
apid_agent=$(pgrep -P "$spid" | head -1)
expect_match "control: the sandbox's main process is the agent" 'sbx-agent' "$(tr '\0' ' ' </proc/$apid_agent/cmdline 2>/dev/null)"
api POST /execute "{\"session_id\":\"$SID\",\"command\":\"echo up\"}"
expect_eq "control: execute works before" "200 up" "$CODE $(jqb .output | tr -d '\n')"
kill -9 "$apid_agent"
for _ in $(seq 100); do api GET "/v1/sandboxes/$SID"; [ "$(jqb .status.state)" = Running ] || break; sleep 0.1; done
expect_eq "agent killed → sandbox reported Failed (signal named)" "Failed CONTAINER_EXITED_ERROR main process exited with code 137 (signal KILL)" \
	"$(jqb .status.state) $(jqb .status.reason) $(jqb .status.message)"
api POST /execute "{\"session_id\":\"$SID\",\"command\":\"echo up\"}"
expect_eq "... execute → 409 JSON, no hang" "409 DOCKER::SANDBOX_NOT_RUNNING" "$CODE $(jqb .code)"
expect_eq "... its processes, cgroup, veth and state are freed" "" "$(held | grep -v '^files' | grep -E "$SID|$(veth_of "$SID")" || true)"
api DELETE "/v1/sandboxes/$SID"
expect_eq "... and it deletes cleanly (its files too)" "204" "$CODE$(held | grep -E "$SID|$(veth_of "$SID")")"

delete_all
stop_apid TERM
after=$(host_snapshot)
expect_eq "no leaked mounts/cgroups/links/state" "" "$(comm -13 <(echo "$before") <(echo "$after") | grep -E '[0-9a-f]{8}-[0-9a-f]{4}-4' || true)"
finish
