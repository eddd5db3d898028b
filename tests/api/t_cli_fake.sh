#!/bin/bash
# `sbx` against a fake apid and a hostile agent (tests/api/fake_agent.py on 127.0.0.1): the
# create body each flag produces, and `sbx cp ID:SRC DST` writing nothing outside DST whatever
# paths the sandbox lists (`..`, paths outside SRC, a symlink already in DST), no file growing
# past the size the listing gave. No sandbox, no root needed.
. "$(dirname "$0")/../lib.sh"
SBX=$BIN/sbx
[ -x "$SBX" ] || { skip "cli fake" "build/bin/sbx not built"; finish; }
command -v python3 >/dev/null || { skip "cli fake" "python3 missing"; finish; }
T=$(mktemp -d /tmp/sbx-cli-cp.XXXXXX)
python3 "$TOP/tests/api/fake_agent.py" "$T/port" &
FP=$!
trap 'kill $FP 2>/dev/null; wait $FP 2>/dev/null; rm -rf "$T"' EXIT
for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.05; done
URL=http://127.0.0.1:$(cat "$T/port")
export SBX_URL=$URL SBX_API_KEY=
scenario() { curl -s -o /dev/null "$URL/scenario/$1"; }
try() { # SCENARIO → runs sbx cp evil:/d $T/dl.SCENARIO, sets RC and ERR
	rm -rf "$T/dl.$1" "$T/escape" "$T/outside"
	mkdir -p "$T/dl.$1"
	[ "$1" = symlink ] && mkdir -p "$T/dl.$1/d" "$T/outside" && ln -s "$T/outside" "$T/dl.$1/d/link"
	scenario "$1"
	ERR=$("$SBX" cp evil:/d "$T/dl.$1" 2>&1 >/dev/null); RC=$?
}
try good
expect_eq "a well-formed listing is copied with its modes" "0 abc 640 700" \
	"$RC $(cat "$T/dl.good/d/a/f" 2>/dev/null) $(stat -c %a "$T/dl.good/d/a/f" "$T/dl.good/d/a" 2>/dev/null | tr '\n' ' ' | sed 's/ $//')"
for s in dotdot outside prefix deep; do
	try $s
	expect_match "cp refuses a listed path escaping SRC ($s)" "^1 .*refusing the listed path" "$RC $ERR"
	expect_eq "cp wrote nothing outside DST ($s)" "" "$(ls "$T/escape" "$T/dl.$s/escape" 2>/dev/null)"
done
try symlink
expect_match "cp does not follow a symlink already in DST" "^1 " "$RC $ERR"
expect_eq "nothing was written through the symlink" "" "$(ls -A "$T/outside")"
try oversize
expect_match "cp refuses a download longer than listed" "^1 .*more than the 3 bytes" "$RC $ERR"
expect_match "at most the listed size was written" "^[0-3]$" "$(stat -c %s "$T/dl.oversize/d/big.bin" 2>/dev/null)"

# ---- what create sends (the fake answers 400 and keeps the body)
body() { jq -c "$1" <"$T/port.create.json" 2>/dev/null; }
ERR=$("$SBX" create --image local/x --cpu 500m --memory 256Mi --timeout 600 --env A=1 --env 'B=x y' \
	--label team=ml --volume cache:/data:ro --volume work:/w --allow-domain example.com \
	--allow-domain api.example.org -- sleep 5 2>&1); RC=$?
expect_match "a 400 from apid → 1 with its message and code" "^1 .*captured by the fake.*INVALID_PARAMETER" "$RC $ERR"
expect_eq "create: image, entrypoint, limits, timeout" \
	'{"uri":"local/x"} ["sleep","5"] {"cpu":"500m","memory":"256Mi"} 600' \
	"$(body .image) $(body .entrypoint) $(body .resourceLimits) $(body .timeout)"
expect_eq "create: env and labels" '{"A":"1","B":"x y"} {"team":"ml"}' "$(body .env) $(body .metadata)"
expect_eq "create --volume: pvc volumes with mount path and read-only" \
	'[{"name":"cache","mountPath":"/data","readOnly":true,"pvc":{"claimName":"cache"}},{"name":"work","mountPath":"/w","readOnly":false,"pvc":{"claimName":"work"}}]' \
	"$(body '.volumes')"
expect_eq "create --allow-domain: deny by default, FQDN allow rules" \
	'{"defaultAction":"deny","egress":[{"action":"allow","target":"example.com"},{"action":"allow","target":"api.example.org"}]}' \
	"$(body .networkPolicy)"
"$SBX" create --network none >/dev/null 2>&1
expect_eq "create --network none → extensions.network" '{"network":"none"} null' "$(body .extensions) $(body .networkPolicy)"
"$SBX" create --network allow >/dev/null 2>&1
expect_eq "create --network allow → the policy's default" '{"defaultAction":"allow","egress":[]}' "$(body .networkPolicy)"
"$SBX" create >/dev/null 2>&1
expect_eq "create defaults: busybox, tail -f /dev/null, no timeout" '{"uri":"local/busybox"} ["tail","-f","/dev/null"] null' \
	"$(body .image) $(body .entrypoint) $(body .timeout)"
finish
