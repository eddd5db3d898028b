#!/bin/bash
# One daemon per state: a second sbx-apid on a data dir, a run dir, or a bridge (or the nft table)
# of a live apid is refused with a message naming the directory or bridge and the holder's pid,
# and the first one is left as it was (its sandbox keeps answering, its bridge, table and
# records are unchanged). A kill -9 leaves no stale lock: a new apid on the same directories
# starts at once and re-adopts the sandbox. Networking runs in throwaway network namespaces
# this file creates and deletes (nsenter --net, not `ip netns exec`, which remounts /sys); traffic
# stays inside them. Every apid it starts it stops by pid.
. "$(dirname "$0")/../lib.sh"
APID=$BIN/sbx-apid
AGENT=$BIN/sbx-agent
require_root "apid lock" || finish
[ -x "$APID" ] && [ -x "$AGENT" ] || { skip "apid lock" "sbx-apid/sbx-agent not built"; finish; }
[ -d "$SBX_IMAGES/busybox" ] || { skip "apid lock" "no busybox image (make rootfs)"; finish; }
for c in ip nft nsenter curl jq sqlite3; do
	command -v $c >/dev/null || { skip "apid lock" "$c not installed"; finish; }
done

NS=sbxlock-$$ NS2=sbxlock2-$$
BR=sbxlk$$ # one bridge name, in both namespaces
T=$(mktemp -d /tmp/sbx-apid-lock.XXXXXX)
chmod 711 "$T" # the sandboxes' mapped root reaches its agent token below it
KEY=lock-key-$$ PORT=$(free_port) PORT2=$(free_port)
BASE=http://127.0.0.1:$PORT
NETLOCKS=/run/sbx/.net
netlocks_existed=$([ -d "$NETLOCKS" ] && echo 1 || echo 0)
X() { nsenter --net=/run/netns/$NS "$@"; }
PIDS=()

cleanup() {
	if [ -n "${APID_PID:-}" ]; then
		for id in $(X curl -s -m 5 -H "OPEN-SANDBOX-API-KEY: $KEY" "$BASE/v1/sandboxes?pageSize=200" | jq -r '.items[].id' 2>/dev/null); do
			X curl -s -m 10 -o /dev/null -X DELETE -H "OPEN-SANDBOX-API-KEY: $KEY" "$BASE/v1/sandboxes/$id"
		done
	fi
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	ip netns del $NS 2>/dev/null
	ip netns del $NS2 2>/dev/null
	[ "$netlocks_existed" = 1 ] || rmdir "$NETLOCKS" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

ip netns add $NS && ip netns add $NS2 || { not_ok "create test namespaces"; finish; }
X ip link set lo up
nsenter --net=/run/netns/$NS2 ip link set lo up

# apid_args DATA RUN BRIDGE PORT
apid_args() {
	echo --listen 127.0.0.1:$4 --data-dir "$1" --run-dir "$2" --agent "$AGENT" --api-key "$KEY" \
		--bridge "$3" --subnet 10.89.0.0/16 --default-egress allow
}
# start_apid NETNS DATA RUN BRIDGE PORT LOG: nsenter execs apid in place, so $! is apid itself.
start_apid() {
	nsenter --net=/run/netns/$1 "$APID" $(apid_args "$2" "$3" "$4" "$5") >>"$6" 2>&1 &
	STARTED=$!; PIDS+=("$STARTED")
	for _ in $(seq 100); do
		nsenter --net=/run/netns/$1 curl -s -o /dev/null "http://127.0.0.1:$5/health" && return 0
		kill -0 $STARTED 2>/dev/null || break
		sleep 0.05
	done
	echo "apid did not start:"; tail -20 "$6"; return 1
}
# second DATA RUN BRIDGE: a second apid in $NS, in the foreground (bounded); sets RC and OUT.
second() {
	OUT=$(timeout 20 nsenter --net=/run/netns/$NS "$APID" $(apid_args "$1" "$2" "$3" "$PORT2") 2>&1)
	RC=$?
	# Had it started, it would still be running (and be the test's failure): stop it.
	X curl -s -o /dev/null -m 2 "http://127.0.0.1:$PORT2/health" && echo "    (a second apid answered)"
}
api() { # METHOD PATH [BODY] → CODE, BODY
	local args=(-s -m 30 -X "$1" -o "$T/body" -w '%{http_code}' -H "OPEN-SANDBOX-API-KEY: $KEY")
	[ -n "${3-}" ] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
	CODE=$(X curl "${args[@]}" "$BASE$2"); BODY=$(cat "$T/body")
}
jqb() { printf '%s' "$BODY" | jq -r "$@" 2>/dev/null; }
wait_ping() { # ID → 0 when its agent answers /ping through the proxy
	for _ in $(seq 100); do
		[ "$(X curl -s -m 2 -o /dev/null -w '%{http_code}' "$BASE/sandboxes/$1/proxy/44772/ping")" = 200 ] && return 0
		sleep 0.1
	done
	return 1
}
# What a second daemon would disturb: the bridge and its address, the links, the nft table (with
# the sandbox's egress entry) and the sandbox's runtime record and process.
snap() {
	X ip -o -4 addr show dev $BR 2>&1 | awk '{print $2, $4}'
	X ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort
	X nft list table inet sbx 2>&1 | grep -v '^\s*$'
	ls "$RUN1" 2>&1
	kill -0 "$(jq -r .pid "$RUN1/$A/state.json" 2>/dev/null)" 2>/dev/null && echo "sandbox process alive"
}

DATA1=$T/d1 RUN1=$T/r1
start_apid $NS "$DATA1" "$RUN1" $BR $PORT "$T/apid1.log" || { not_ok "first apid starts"; finish; }
APID_PID=$STARTED
ok "first apid starts (bridge $BR in a test netns)"
api POST /v1/sandboxes '{"image":{"uri":"local/busybox"},"entrypoint":["sleep","1000"],"resourceLimits":{"memory":"128Mi"}}'
A=$(jqb .id)
[ "$CODE" = 202 ] && [ -n "$A" ] || { not_ok "create a sandbox ($CODE $BODY)"; finish; }
check "its sandbox answers through the proxy" wait_ping "$A"
before=$(snap)
ADDR=$(sqlite3 "$DATA1/apid.db" "select address from sandboxes where id='$A'")
expect_match "the snapshot sees the sandbox's egress entry in the nft table" "${ADDR:-no address} : jump" "$before"

second "$DATA1" "$T/r2" none
expect_match "same --data-dir: refused, naming the dir and the holder's pid" \
	"rc=1 .*--data-dir $DATA1 is in use by another sbx-apid \(PID $APID_PID;" "rc=$RC $OUT"
second "$T/d3" "$RUN1" none
expect_match "same --run-dir: refused, naming the dir and the holder's pid" \
	"rc=1 .*--run-dir $RUN1 is in use by another sbx-apid \(PID $APID_PID;" "rc=$RC $OUT"
second "$T/d4" "$T/r4" $BR
expect_match "same bridge in the same netns: refused, naming the bridge and the holder's pid" \
	"rc=1 .*bridge $BR in this network namespace is in use by another sbx-apid \(PID $APID_PID;" "rc=$RC $OUT"
second "$T/d5" "$T/r5" sbxlkother
expect_match "another bridge in the same netns: refused for the nft table inet sbx (one name per netns)" \
	"rc=1 .*nft table inet sbx in this network namespace is in use by another sbx-apid \(PID $APID_PID;" "rc=$RC $OUT"
expect_eq "the refused ones made no bridge" "" "$(X ip -o link show sbxlkother 2>/dev/null)"
expect_eq "the first apid's bridge, table, links and sandbox are unchanged" "$before" "$(snap)"
check "the first apid still answers" X curl -sf -o /dev/null "$BASE/health"
api GET "/v1/sandboxes/$A"
expect_eq "its sandbox is still Running" "200 Running" "$CODE $(jqb .status.state)"
check "its sandbox still answers through the proxy" wait_ping "$A"

# The locks are per network namespace: the same bridge name elsewhere is another bridge.
if start_apid $NS2 "$T/d6" "$T/r6" $BR $PORT2 "$T/apid2.log"; then
	ok "an apid with the same bridge name in another netns starts"
	kill "$STARTED"; wait "$STARTED" 2>/dev/null
else
	not_ok "an apid with the same bridge name in another netns starts"
fi

# kill -9, then a new apid on the same directories and bridge: at once, no stale lock.
kill -9 $APID_PID; wait $APID_PID 2>/dev/null
if start_apid $NS "$DATA1" "$RUN1" $BR $PORT "$T/apid3.log"; then
	ok "after kill -9, a new apid on the same dirs and bridge starts at once"
else
	not_ok "after kill -9, a new apid on the same dirs and bridge starts at once"
fi
APID_PID=$STARTED
expect_eq "... and records its own pid in the locks" "$APID_PID $APID_PID" \
	"$(cat "$DATA1/.apid.lock" "$RUN1/.apid.lock" 2>/dev/null | xargs)"
api GET "/v1/sandboxes/$A"
expect_eq "it re-adopted the sandbox: Running" "200 Running" "$CODE $(jqb .status.state)"
check "the re-adopted sandbox answers through the proxy" wait_ping "$A"
api DELETE "/v1/sandboxes/$A"
expect_eq "delete the sandbox" 204 "$CODE"

# A clean stop removes the lock files (a kill -9 leaves them, unlocked, for the next start).
netns_ino=$(stat -L -c %i /run/netns/$NS)
kill $APID_PID; wait $APID_PID 2>/dev/null; APID_PID=
expect_eq "a stopped apid leaves no lock file" "" \
	"$(ls "$DATA1/.apid.lock" "$RUN1/.apid.lock" "$NETLOCKS/ns$netns_ino-"* 2>/dev/null)"
finish
