#!/bin/bash
# Egress by domain name (apid/dns.c, apid/egress.c, net.c): networkPolicy with FQDN and wildcard
# targets enforced by apid's resolver on the bridge gateway and per-sandbox nftables sets, and
# the egress API on port 18080. Like t_net.sh, everything runs in two throwaway network
# namespaces made here: "$NS" plays the host (apid, bridge, table), "$OUT" the outside world, with
# an upstream DNS server (198.18.0.53), a second, rogue resolver (198.18.0.54) and web servers on
# made-up addresses of the benchmarking range 198.18.0.0/15. No packet goes anywhere else.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/api/api_lib.sh"
APID=$BIN/sbx-apid
AGENT=$BIN/sbx-agent
DNSD=$TOP/tests/api/dns_server.py
PROBE_PY=$TOP/tests/api/egress_probe.py
require_root "egress" || finish
[ -x "$APID" ] && [ -x "$AGENT" ] || { skip "egress" "sbx-apid/sbx-agent not built"; finish; }
[ -d "$SBX_IMAGES/host" ] || { skip "egress" "no host image (make rootfs): the probes need python3"; finish; }
for c in ip nft nsenter python3 curl jq base64; do
	command -v $c >/dev/null || { skip "egress" "$c not installed"; finish; }
done

NS=sbxeg-$$ OUT=sbxego-$$
T=$(mktemp -d /tmp/sbx-egress-test.XXXXXX)
chmod 711 "$T"
DATA=$T/data RUN=$T/run LOG=$T/apid.log KEY=egress-key-$$
PORT=$((19000 + RANDOM % 1000))
BASE=http://127.0.0.1:$PORT
O() { nsenter --net=/run/netns/$OUT "$@"; }
APID_PID= PIDS=()

cleanup() {
	if [ -n "$APID_PID" ]; then
		delete_all
		kill $APID_PID 2>/dev/null; wait $APID_PID 2>/dev/null
	fi
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	cp "$LOG" /tmp/sbx-egress-test.log 2>/dev/null # kept for diagnosis
	ip netns del $NS 2>/dev/null
	ip netns del $OUT 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

ip netns add $NS && ip netns add $OUT || { not_ok "create test namespaces"; finish; }
X ip link set lo up
O ip link set lo up
X ip link add up0 type veth peer name dn0 netns $OUT
X ip addr add 192.0.2.1/24 dev up0
X ip link set up0 up
O ip addr add 192.0.2.2/24 dev dn0
O ip link set dn0 up
X sysctl -qw net.ipv4.ip_forward=1 # the test namespace's own setting
for a in 198.18.0.53 198.18.0.54 198.18.1.1 198.18.1.2 198.18.1.3 198.18.1.4; do O ip addr add $a/32 dev dn0; done
X ip route add 198.18.0.0/15 via 192.0.2.2
# Two made-up link-local services, routed like a cloud's metadata address (t_net.sh).
O ip addr add 169.254.169.254/32 dev dn0
O ip addr add 169.254.1.1/32 dev dn0
X ip route add 169.254.0.0/16 via 192.0.2.2
NAMES="allowed.test=198.18.1.1 denied.test=198.18.1.2 a.wild.test=198.18.1.3 wild.test=198.18.1.4"
# nsenter execs in place, so $! is the server itself.
# shellcheck disable=SC2086
nsenter --net=/run/netns/$OUT python3 "$DNSD" 198.18.0.53 53 "$T/upstream.log" $NAMES >"$T/dns1.err" 2>&1 &
PIDS+=($!)
# shellcheck disable=SC2086
nsenter --net=/run/netns/$OUT python3 "$DNSD" 198.18.0.54 53 "$T/rogue.log" $NAMES >"$T/dns2.err" 2>&1 &
PIDS+=($!)
nsenter --net=/run/netns/$OUT python3 -m http.server 80 --bind 0.0.0.0 --directory "$T" >/dev/null 2>&1 &
PIDS+=($!)
: >"$T/upstream.log"

start_apid() {
	apid_launch --listen 0.0.0.0:$PORT --data-dir "$DATA" --run-dir "$RUN" --agent "$AGENT" \
		--api-key "$KEY" --bridge sbx0 --subnet 10.88.0.0/16 --dns-upstream 198.18.0.53 "$@"
}
create() { # BODY → ID
	api POST /v1/sandboxes "$1"; ID=$(jqb .id)
	[ "$CODE" = 202 ] || { echo "create failed: $CODE $BODY" >&2; ID=; }
}
px() { echo "$BASE/sandboxes/$1/proxy/${2:-44772}"; }
wait_ping() {
	for _ in $(seq 100); do
		[ "$(X curl -s -m 2 -o /dev/null -w '%{http_code}' "$(px "$1")/ping")" = 200 ] && return 0
		sleep 0.1
	done
	return 1
}
run() { # ID CMD: stdout of CMD run in the sandbox through the agent
	X curl -sN -m 30 -H 'Content-Type: application/json' \
		-d "$(jq -cn --arg c "$2" '{command:$c}')" "$(px "$1")/command" |
		sed 's/^data: //' | jq -rR 'fromjson? | select(.type=="stdout") | .text' 2>/dev/null | tr -d '\n'
}
B64=$(base64 -w0 "$PROBE_PY")
probe() { # ID ARGS...: egress_probe.py in the sandbox; NO-RESULT if it did not run
	local o; o=$(run "$1" "echo $B64 | base64 -d > /tmp/p.py && python3 /tmp/p.py ${*:2}")
	echo "${o:-NO-RESULT}"
}
# egress API through apid: EG ID METHOD [BODY] [AUTH] → CODE, BODY
eg() {
	local auth=${4-$(token_of "$1")}
	local args=(-s -m 30 -X "$2" -o "$T/body" -w '%{http_code}')
	[ -n "$auth" ] && args+=(-H "OPENSANDBOX-EGRESS-AUTH: $auth")
	[ -n "${3-}" ] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
	CODE=$(X curl "${args[@]}" "$(px "$1" 18080)/policy"); BODY=$(cat "$T/body")
}
token_of() {
	local c b
	c=$(X curl -s -m 10 -H "OPEN-SANDBOX-API-KEY: $KEY" "$BASE/v1/sandboxes/$1/endpoints/18080")
	printf '%s' "$c" | jq -r '.headers["OPENSANDBOX-EGRESS-AUTH"] // empty'
}
snap() {
	X ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort
	# (the restart below adds --open-to-sandboxes rules for 169.254.1.1: configuration, not a leak)
	X nft list table inet sbx 2>/dev/null | grep -v '^\s*$' | grep -v 'expires' | grep -v '169\.254\.1\.1'
}
HI='"image":{"uri":"local/host"},"resourceLimits":{"memory":"256Mi"}'

start_apid || { not_ok "apid starts with its resolver"; finish; }
ok "apid starts with its resolver"
expect_eq "the resolver listens on the gateway's port 53, udp and tcp" "10.88.0.1:53 10.88.0.1:53" \
	"$(X ss -lnuH 'sport = :53' | awk '{print $4}') $(X ss -lntH 'sport = :53' | awk '{print $4}')"
base_snap=$(snap)

# ---- validation: bad targets and sizes are 400s naming the field, nothing created
api POST /v1/sandboxes "{$HI,\"entrypoint\":[\"true\"],\"networkPolicy\":{\"egress\":[{\"action\":\"allow\",\"target\":\"not a host\"}]}}"
expect_eq "a target that is neither a name nor an address → 400" "400" "$CODE"
expect_match "… naming the rule" "networkPolicy.egress\[0\].*not a host" "$(jqb .message)"
api POST /v1/sandboxes "{$HI,\"entrypoint\":[\"true\"],\"networkPolicy\":{\"egress\":[{\"action\":\"allow\",\"target\":\"*.*.test\"}]}}"
expect_eq "a wildcard in the middle → 400" "400" "$CODE"
jq -cn --argjson img "{$HI}" '$img + {entrypoint:["true"], networkPolicy:{egress:[range(5000) | {action:"allow", target:"h\(.).example.com"}]}}' >"$T/many.json"
api POST /v1/sandboxes "@$T/many.json"
expect_eq "5,000 rules → 400" "400" "$CODE"
expect_match "… naming the field and the limit" "networkPolicy.egress has 5000 rules; at most 4096" "$(jqb .message)"
expect_eq "nothing was created" "0" "$(api GET '/v1/sandboxes?pageSize=200'; jqb '.items | length')"

# ---- A: deny by default, one name and one wildcard allowed
POL='{"defaultAction":"deny","egress":[{"action":"allow","target":"allowed.test"},{"action":"allow","target":"*.wild.test"}]}'
create "{$HI,\"entrypoint\":[\"sleep\",\"1000\"],\"networkPolicy\":$POL}"; A=$ID
[ -n "$A" ] || { not_ok "create with an FQDN policy"; finish; }
ok "create with an FQDN policy → 202"
check "A's agent answers" wait_ping $A
expect_eq "A's resolv.conf names the gateway" "nameserver 10.88.0.1" "$(run $A 'grep ^nameserver /etc/resolv.conf')"
expect_eq "allowed.test resolves through apid" "198.18.1.1" "$(probe $A resolve allowed.test)"
expect_eq "allowed.test's address is reachable" "REACH" "$(probe $A connect allowed.test 80)"
: >"$T/upstream.log"
expect_eq "denied.test → NXDOMAIN" "NXDOMAIN" "$(probe $A resolve denied.test)"
expect_eq "… answered by apid, never asked upstream" "" "$(grep -x denied.test "$T/upstream.log")"
expect_eq "denied.test's address is unreachable by IP" "BLOCKED" "$(probe $A connect 198.18.1.2 80)"
expect_eq "a.wild.test matches *.wild.test" "198.18.1.3" "$(probe $A resolve a.wild.test)"
expect_eq "… and its address is reachable" "REACH" "$(probe $A connect 198.18.1.3 80)"
expect_eq "the wildcard does not match its apex wild.test" "NXDOMAIN" "$(probe $A resolve wild.test)"
expect_eq "wild.test's address is unreachable" "BLOCKED" "$(probe $A connect 198.18.1.4 80)"
expect_eq "DNS to another resolver (udp) is dropped" "TIMEOUT" "$(probe $A query 198.18.0.54 allowed.test udp)"
expect_eq "DNS to another resolver (tcp) is dropped" "TIMEOUT" "$(probe $A query 198.18.0.54 allowed.test tcp)"
expect_eq "raw DNS to apid's resolver (tcp) answers" "NOERROR 198.18.1.1" "$(probe $A query 10.88.0.1 allowed.test tcp)"
expect_eq "the sandbox cannot reach apid's API (and so its own policy)" "BLOCKED" "$(probe $A connect 10.88.0.1 $PORT)"
expect_eq "… nor any other host service on the gateway" "BLOCKED" "$(probe $A connect 10.88.0.1 80)"

# ---- B: allow by default, one name denied; no domain allow rules means no DNS lockdown
create "{$HI,\"entrypoint\":[\"sleep\",\"1000\"],\"networkPolicy\":{\"defaultAction\":\"allow\",\"egress\":[{\"action\":\"deny\",\"target\":\"denied.test\"}]}}"; B=$ID
check "B's agent answers" wait_ping $B
expect_eq "allow + deny rule: denied.test → NXDOMAIN" "NXDOMAIN" "$(probe $B resolve denied.test)"
expect_eq "allow + deny rule: allowed.test resolves" "198.18.1.1" "$(probe $B resolve allowed.test)"
expect_eq "allow + deny rule: other addresses reachable (documented: a deny rule closes a name, not an address)" "REACH" "$(probe $B connect 198.18.1.2 80)"
expect_eq "a policy with domain rules drops DNS to other resolvers under allow too" "TIMEOUT" "$(probe $B query 198.18.0.54 denied.test udp)"
# C: allow everything, no rules: the rogue resolver is reachable, which shows the drop above is
# the policy's doing and not the test network's.
create "{$HI,\"entrypoint\":[\"sleep\",\"1000\"],\"networkPolicy\":{\"defaultAction\":\"allow\"}}"; C=$ID
check "C's agent answers" wait_ping $C
expect_eq "allow-all: another resolver answers (the drop above is real)" "NOERROR 198.18.1.1" "$(probe $C query 198.18.0.54 allowed.test udp)"

expect_eq "allow-all: link-local 169.254.1.1 stays closed" "BLOCKED" "$(probe $C connect 169.254.1.1 80)"

# ---- the egress API (18080 through apid)
tok=$(token_of $A)
expect_match "endpoint 18080 hands out OPENSANDBOX-EGRESS-AUTH" '^[0-9a-f]{64}$' "$tok"
expect_eq "… which is not the agent's token" "different" \
	"$([ "$tok" != "$(sqlite3 "$DATA/apid.db" "select token from sandboxes where id='$A'")" ] && echo different)"
eg $A GET "" ""
expect_eq "GET /policy without the header → 401" "401" "$CODE"
eg $A GET "" "$(token_of $B)"
expect_eq "GET /policy with another sandbox's key → 401" "401" "$CODE"
eg $A GET
expect_eq "GET /policy → 200" "200" "$CODE"
expect_eq "… mode, enforcementMode and the policy as written" \
	'deny_all dns+nft deny allow:allowed.test,allow:*.wild.test' \
	"$(jqb '[.mode, .enforcementMode, .policy.defaultAction, ([.policy.egress[] | "\(.action):\(.target)"] | join(","))] | join(" ")')"
egpath() { X curl -s -m 30 -o /dev/null -w '%{http_code}' -H "OPENSANDBOX-EGRESS-AUTH: $tok" "$(px $A 18080)$1"; }
expect_eq "the egress API's one route: /policy/ and //policy?x=1 are it, /policyx and /credentials 404" \
	"200 200 404 404" "$(egpath /policy/) $(egpath '//policy?x=1') $(egpath /policyx) $(egpath /credentials)"
eg $A PATCH '[{"action":"allow","target":"denied.test"},{"action":"deny","target":"denied.test"}]'
expect_eq "PATCH → 200" "200" "$CODE"
expect_eq "… incoming first, the first of duplicates wins" 'allow:denied.test,allow:allowed.test,allow:*.wild.test' \
	"$(jqb '[.policy.egress[] | "\(.action):\(.target)"] | join(",")')"
expect_eq "after PATCH denied.test resolves" "198.18.1.2" "$(probe $A resolve denied.test)"
expect_eq "… and is reachable" "REACH" "$(probe $A connect 198.18.1.2 80)"
eg $A PATCH '[{"action":"deny","target":"allowed.test"}]'
expect_eq "PATCH deny allowed.test → 200" "200" "$CODE"
expect_eq "allowed.test → NXDOMAIN at once" "NXDOMAIN" "$(probe $A resolve allowed.test)"
expect_eq "its learned address is closed at once, not at TTL" "BLOCKED" "$(probe $A connect 198.18.1.1 80)"
expect_eq "… while a name still allowed keeps its learned address (the set is refilled)" "REACH" "$(probe $A connect 198.18.1.3 80)"
eg $A DELETE '["denied.test","never.there"]'
expect_eq "DELETE /policy → 200 (unknown targets ignored)" "200" "$CODE"
expect_eq "denied.test's rule is gone" 'deny:allowed.test,allow:*.wild.test' "$(jqb '[.policy.egress[] | "\(.action):\(.target)"] | join(",")')"
expect_eq "denied.test → NXDOMAIN again" "NXDOMAIN" "$(probe $A resolve denied.test)"
expect_eq "… and its address closed" "BLOCKED" "$(probe $A connect 198.18.1.2 80)"
eg $A PATCH '[]'
expect_eq "PATCH with an empty array → 400" "400" "$CODE"
eg $A PATCH '{"action":"allow"}'
expect_eq "PATCH with an object → 400" "400" "$CODE"
eg $A PATCH '[{"action":"allow","target":"bad target"}]'
expect_match "PATCH with a bad target → 400 naming it" "400 .*rule \[0\].*bad target" "$CODE $(jqb .message)"
jq -cn '[range(10000) | {action:"allow", target:"h\(.).example.com"}]' >"$T/10k.json"
eg $A PATCH "@$T/10k.json"
expect_eq "PATCH with 10,000 rules → 400" "400" "$CODE"
eg $A GET
expect_eq "failed PATCHes changed nothing" 'deny:allowed.test,allow:*.wild.test' "$(jqb '[.policy.egress[] | "\(.action):\(.target)"] | join(",")')"

# ---- metrics
mt=$(X curl -s "$BASE/metrics")
expect_match "metrics count A's allowed answers" "sbx_dns_queries_total\{sandbox=\"$A\",result=\"allowed\"\} [1-9]" "$mt"
expect_match "metrics count A's denied answers" "sbx_dns_queries_total\{sandbox=\"$A\",result=\"denied\"\} [1-9]" "$mt"

# ---- the policy survives an apid restart (kill -9)
eg $A PATCH '[{"action":"allow","target":"denied.test"}]'
kill -9 $APID_PID; wait $APID_PID 2>/dev/null; APID_PID=
# Restarted with one link-local address opened by the operator (--open-to-sandboxes).
start_apid --open-to-sandboxes 169.254.1.1:80 || { not_ok "apid restarts"; finish; }
expect_eq "--open-to-sandboxes opens 169.254.1.1:80 to an allow-all sandbox" "REACH" "$(probe $C connect 169.254.1.1 80)"
expect_eq "… but not the rest of link-local" "BLOCKED" "$(probe $C connect 169.254.169.254 80)"
expect_eq "… and a deny policy still applies to it" "BLOCKED" "$(probe $A connect 169.254.1.1 80)"
eg $A GET
expect_eq "after kill -9 and restart GET shows the patched policy" 'allow:denied.test,deny:allowed.test,allow:*.wild.test' \
	"$(jqb '[.policy.egress[] | "\(.action):\(.target)"] | join(",")')"
expect_eq "after restart denied.test resolves" "198.18.1.2" "$(probe $A resolve denied.test)"
expect_eq "… and is reachable" "REACH" "$(probe $A connect 198.18.1.2 80)"
expect_eq "after restart allowed.test is still denied" "NXDOMAIN" "$(probe $A resolve allowed.test)"
expect_eq "… and its address closed" "BLOCKED" "$(probe $A connect 198.18.1.1 80)"

# ---- nothing left behind
for id in $A $B $C; do api DELETE /v1/sandboxes/$id; done
for _ in $(seq 50); do [ "$(snap)" = "$base_snap" ] && break; sleep 0.1; done
expect_eq "no chain, set, map entry or link left after delete" "$base_snap" "$(snap)"
eg $A GET "" "$tok"
expect_eq "a deleted sandbox's egress API (with its old key) → 404" "404" "$CODE"
finish
