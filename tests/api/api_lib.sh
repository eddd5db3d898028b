# Shared by the API test files (sourced after tests/lib.sh): the set-up each of them needs, apid's
# start and stop, and the request helpers, so that a fix to one (a wait, a leak on exit) reaches
# every file. Variables the helpers read: T (temp dir), KEY, BASE, LOG, APID, and NS: when set,
# the name of the throwaway network namespace the test made, in which X runs curl and
# apid_launch runs apid (nsenter --net: `ip netns exec` would remount /sys and hide the cgroups).

# Re-runs the calling script, from the top, in a private network namespace with only lo: apid
# makes its bridge and nftables table in the namespace it runs in, never in the host's.
api_private_netns() { # "$@" of the script
	[ -n "${SBX_PRIVATE_NETNS:-}" ] && return 0
	export SBX_PRIVATE_NETNS=1
	exec unshare -n sh -c 'ip link set lo up && exec bash "$0" "$@"' "$0" "$@"
}

# api_prepare NAME TAG: needs root, sbx-apid, sbx-agent and the busybox image (a missing one is a
# skip that names it, and ends the file); then sets T (mode 711: the sandboxes' id-mapped root
# reaches its agent token below it), DATA, RUN, LOG, KEY, PORT and BASE.
api_prepare() {
	local name=$1 tag=$2
	APID=${APID:-$BIN/sbx-apid}
	AGENT=${AGENT:-$BIN/sbx-agent}
	require_root "$name" || finish
	[ -x "$APID" ] || { skip "$name" "build/bin/sbx-apid not built"; finish; }
	[ "$AGENT" = none ] || [ -x "$AGENT" ] || { skip "$name" "build/bin/sbx-agent not built"; finish; }
	[ -d "$SBX_IMAGES/busybox" ] || { skip "$name" "no busybox image (make rootfs)"; finish; }
	T=$(mktemp -d "/tmp/sbx-$tag-test.XXXXXX")
	chmod 711 "$T"
	DATA=$T/data RUN=$T/run LOG=$T/apid.log KEY=$tag-key-$$
	PORT=$(free_port)
	BASE=http://127.0.0.1:$PORT
	APID_PID=
}

# api_netns NAME TAG: makes the throwaway network namespace (lo up) that X and apid_launch use
# from then on; api_cleanup deletes it.
api_netns() {
	NS=sbx$2-$$
	ip netns add "$NS" || { not_ok "$1: create the test netns"; finish; }
	X ip link set lo up
}
# The usual end: every sandbox deleted through the API, apid stopped, the netns and T removed.
api_cleanup() {
	delete_all
	stop_apid TERM
	[ -n "${NS:-}" ] && ip netns del "$NS" 2>/dev/null
	rm -rf "$T"
}

X() { # CMD...: in the test's network namespace NS, if it has one
	if [ -n "${NS:-}" ]; then nsenter --net="/run/netns/$NS" "$@"; else "$@"; fi
}

# apid_launch ARGS...: starts apid with ARGS (nsenter execs it in place, so APID_PID is apid itself
# and a kill -9 hits apid) and waits until /health answers, APID_WAIT tries of 50 ms (recovering
# many sandboxes after a kill takes longer than a fresh start).
apid_launch() {
	if [ -n "${NS:-}" ]; then
		nsenter --net="/run/netns/$NS" "$APID" "$@" >>"$LOG" 2>&1 &
	else
		"$APID" "$@" >>"$LOG" 2>&1 &
	fi
	APID_PID=$!
	for _ in $(seq "${APID_WAIT:-100}"); do
		X curl -s -o /dev/null "$BASE/health" && return 0
		kill -0 $APID_PID 2>/dev/null || break
		sleep 0.05
	done
	echo "apid did not start:"; tail -20 "$LOG"; return 1
}

stop_apid() { # [SIGNAL]: TERM by default
	[ -n "${APID_PID:-}" ] || return 0
	kill -"${1:-TERM}" $APID_PID 2>/dev/null; wait $APID_PID 2>/dev/null; APID_PID=
}

delete_all() { # every sandbox the running apid knows, through its API
	[ -n "${APID_PID:-}" ] || return 0
	for id in $(X curl -s -m 10 -H "OPEN-SANDBOX-API-KEY: $KEY" "$BASE/v1/sandboxes?pageSize=200" | jq -r '.items[].id' 2>/dev/null); do
		X curl -s -m 30 -o /dev/null -X DELETE -H "OPEN-SANDBOX-API-KEY: $KEY" "$BASE/v1/sandboxes/$id"
	done
}

# api METHOD PATH [BODY] [curl args...]: sets CODE, BODY and HDRS (headers, no CRs). The API key
# goes with the request unless the extra args carry their own OPEN-SANDBOX-API-KEY header.
api() {
	local m=$1 p=$2 b=${3-}; shift 3 2>/dev/null || shift $#
	local args=(-s -m "${API_MAX_TIME:-60}" -X "$m" -o "$T/body" -D "$T/hdrs" -w '%{http_code}')
	case "$*" in *OPEN-SANDBOX-API-KEY*) ;; *) args+=(-H "OPEN-SANDBOX-API-KEY: $KEY") ;; esac
	[ -n "$b" ] && args+=(-H 'Content-Type: application/json' --data-binary "$b")
	rm -f "$T/body" "$T/hdrs" # a failed request must not read as the previous answer
	CODE=$(X curl "${args[@]}" "$@" "$BASE$p")
	BODY=$(cat "$T/body" 2>/dev/null)
	HDRS=$(tr -d '\r' <"$T/hdrs" 2>/dev/null)
}
jqb() { printf '%s' "$BODY" | jq -r "$@" 2>/dev/null; }
expect_err() { # NAME STATUS CODE METHOD PATH [BODY] [curl args...]: the status and the JSON code
	local n=$1 st=$2 code=$3; shift 3
	api "$@"
	expect_eq "$n" "$st $code" "$CODE $(jqb .code)"
}
