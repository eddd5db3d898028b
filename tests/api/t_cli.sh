#!/bin/bash
# Black-box tests of `sbx`, the client CLI, against a real apid with its own data and run
# directories: every verb, --json, exit codes (the command's own passed through, sbx's documented
# ones), separate stdout/stderr, SIGINT to `sbx exec` stopping the remote command, `exec -it`
# through a real PTY with a resize seen inside, `cp` of a tree both ways (bytes and modes),
# abbreviated ids, bad flags. apid creates its bridge and nftables table in the network namespace
# it runs in: the whole script runs in a private one (lo only), never in the host's.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/api/api_lib.sh"
api_private_netns "$@"
SBX=$BIN/sbx
[ -x "$SBX" ] || { skip "cli" "$SBX not built"; finish; }
api_prepare "cli" cli
export SBX_URL=$BASE SBX_API_KEY=$KEY HOME=$T/home
mkdir -p "$HOME"
before=$(host_snapshot)

start_apid() {
	apid_launch --listen 127.0.0.1:$PORT --data-dir "$DATA" --run-dir "$RUN" --agent "$AGENT" \
		--api-key "$KEY" --max-memory 1Gi --max-timeout 3600 "$@"
}
trap api_cleanup EXIT
# sbxr ARGS...: runs sbx, stdout → $T/out, stderr → $T/err, status → RC
sbxr() { "$SBX" "$@" >"$T/out" 2>"$T/err"; RC=$?; OUT=$(cat "$T/out"); ERR=$(cat "$T/err"); }

start_apid || { not_ok "apid starts"; finish; }

# ---- help, usage errors, configuration
sbxr --help
expect_eq "--help exits 0" 0 "$RC"
expect_match "--help documents the exit codes" 'Exit codes: 0 success.*' "$OUT"
sbxr frobnicate
expect_eq "unknown verb → 2" 2 "$RC"
expect_match "unknown verb names it" "unknown verb 'frobnicate'" "$ERR"
sbxr create --cpu lots
expect_eq "bad --cpu → 2" 2 "$RC"
expect_match "bad --cpu names the value" "'lots'" "$ERR"
sbxr create --memory 12QB
expect_match "bad --memory → 2 naming the value" "^2 .*'12QB'" "$RC $ERR"
sbxr create --network maybe
expect_match "bad --network → 2 naming the value" "^2 .*'maybe'" "$RC $ERR"
sbxr create --env NOEQUALS
expect_match "bad --env → 2 naming the value" "^2 .*'NOEQUALS'" "$RC $ERR"
sbxr create --volume data
expect_match "bad --volume → 2 naming the value" "^2 .*'data'" "$RC $ERR"
sbxr exec
expect_eq "exec without an id → 2" 2 "$RC"
sbxr exec -u root abc -- true
expect_match "exec -u non-numeric → 2" "^2 .*'root'" "$RC $ERR"
sbxr --bogus ls
expect_eq "unknown global flag → 2" 2 "$RC"
sbxr --url ftp://x ls
expect_match "a non-http URL → 2 naming it" "^2 .*ftp://x" "$RC $ERR"
SBX_API_KEY= sbxr ls
expect_match "no key → 1 with the apid's error and a hint" "^1 .*MISSING_API_KEY.*SBX_API_KEY" "$RC $ERR"
printf '%s\n' "$KEY" >"$T/keyfile"
SBX_API_KEY=wrong sbxr --api-key-file "$T/keyfile" ls
expect_eq "--api-key-file wins over the environment" 0 "$RC"
mkdir -p "$HOME/.config/sbx"
printf '{"url":"%s","apiKey":"%s"}' "$SBX_URL" "$KEY" >"$HOME/.config/sbx/config.json"
SBX_URL= SBX_API_KEY= sbxr ls
expect_eq "config.json gives url and key" 0 "$RC"
printf '{"url": ' >"$HOME/.config/sbx/config.json"
SBX_API_KEY= sbxr ls
expect_match "a broken config.json → 2 naming the file" "^2 .*config.json" "$RC $ERR"
rm -f "$HOME/.config/sbx/config.json"
sbxr --url http://127.0.0.1:1 ls
expect_match "apid unreachable → 3" "^3 .*cannot reach" "$RC $ERR"

# ---- create, ls, inspect
sbxr create --wait --label team=cli --label run=one --env GREETING=hello --timeout 600 --memory 256Mi --cpu 0.5
A=$OUT
expect_match "create --wait prints the id" '^[0-9a-f-]{8,}$' "$A"
expect_match "create --wait shows progress on stderr" 'Running' "$ERR"
sbxr create --json --label team=cli -- sleep 1000
B=$(jq -r .id <"$T/out")
expect_match "create --json prints the reply" '^[0-9a-f-]{8,}$' "$B"
sbxr ls
expect_match "ls table has a header" '^ID +STATE +IMAGE' "$OUT"
expect_match "ls lists A with its labels" "$A +Running .*local/busybox.*run=one" "$OUT"
sbxr ls --json --label run=one
expect_eq "ls --label filters (json)" "$A" "$(jq -r '.[].id' <"$T/out")"
sbxr ls --json --state Paused
expect_eq "ls --state filters" "0" "$(jq length <"$T/out")"
sbxr inspect "$A"
expect_match "inspect shows state and labels" "State: +Running" "$OUT"
expect_match "inspect shows labels" "team=cli" "$OUT"
sbxr inspect --json "$A"
expect_eq "inspect --json" "$A Running" "$(jq -r '.[0].id + " " + .[0].status.state' <"$T/out")"
sbxr inspect nope-not-there
expect_match "inspect unknown → 4 naming it" "^4 .*nope-not-there" "$RC $ERR"

# ---- abbreviated ids
P=$(common=; for i in $(seq 1 36); do [ "${A:0:$i}" = "${B:0:$i}" ] || { echo "${A:0:$i}"; break; }; done)
sbxr inspect --json "$P"
expect_eq "a unique prefix resolves ($P)" "$A" "$(jq -r '.[0].id' <"$T/out")"
# Ids are random: more sandboxes are made (at most 17 in all, by then two must share a first hex
# digit) until two share a first character, which is then an ambiguous prefix.
IDS=("$A" "$B") EXTRA=() amb=
while [ -z "$amb" ] && [ ${#IDS[@]} -le 17 ]; do
	for x in "${IDS[@]}"; do for y in "${IDS[@]}"; do
		[ "$x" != "$y" ] && [ "${x:0:1}" = "${y:0:1}" ] && amb=${x:0:1}
	done; done
	[ -n "$amb" ] && break
	C=$(curl -s -H "OPEN-SANDBOX-API-KEY: $KEY" -H 'Content-Type: application/json' "$SBX_URL/v1/sandboxes" \
		-d '{"image":{"uri":"local/busybox"},"entrypoint":["sleep","1000"],"resourceLimits":{}}' | jq -r .id)
	IDS+=("$C") EXTRA+=("$C")
done
if [ -n "$amb" ]; then
	sbxr inspect "$amb"
	expect_match "an ambiguous prefix → 4 listing the candidates" "^4 .*ambiguous.*,.*" "$RC $ERR"
else
	skip "an ambiguous prefix → 4" "the three random ids share no first character"
fi

# ---- exec: output, exit codes, stderr, env, cwd, uid
sbxr exec "$A" -- sh -c 'echo out1; echo err1 >&2; echo out2; exit 7'
expect_eq "exec passes the exit code through" 7 "$RC"
expect_eq "exec stdout only on stdout" "out1
out2" "$OUT"
expect_eq "exec stderr only on stderr" "err1" "$ERR"
sbxr exec "$A" -- printf 'a\n\n\tb\n'
expect_eq "exec keeps empty lines and tabs" "$(printf 'a\n\n\tb')" "$OUT"
sbxr exec "${A:0:8}" -- true
expect_eq "exec with an abbreviated id" 0 "$RC"
sbxr exec -e X=1 -e 'Y=a b' -w /tmp "$A" -- sh -c 'echo "$X|$Y|$(pwd)|$(id -u)|$GREETING"'
expect_eq "exec -e -w, create --env" "1|a b|/tmp|1000|hello" "$OUT"
sbxr exec -u 0 "$A" -- id -u
expect_eq "exec -u 0" "0" "$OUT"
sbxr exec "$A" -- sh -c 'printf "%s\n" "$1"' x "it's a 'quoted' \$arg"
expect_eq "exec keeps each argument as one word" "it's a 'quoted' \$arg" "$OUT"
sbxr exec "$A" -- /no/such/binary
expect_eq "exec of a missing binary → 127" 127 "$RC"
sbxr exec --timeout 1 "$A" -- sleep 30
expect_eq "exec --timeout kills the command (137)" 137 "$RC"
sbxr exec --json "$A" -- sh -c 'echo hi; echo ho >&2; exit 3'
expect_eq "exec --json" '3 [3,"hi\n","ho\n"]' "$RC $(jq -c '[.exitCode, .stdout, .stderr]' <"$T/out")"
sbxr exec nope-not-there -- true
expect_match "exec on an unknown id → 4" "^4 .*nope-not-there" "$RC $ERR"

# ---- SIGINT to sbx exec stops the remote command
"$SBX" exec "$A" -- sh -c 'echo $$ >/tmp/int.pid; exec sleep 300' >"$T/int.out" 2>&1 &
XP=$!
rpid=
for _ in $(seq 100); do
	rpid=$("$SBX" exec "$A" -- cat /tmp/int.pid 2>/dev/null) && [ -n "$rpid" ] && break
	sleep 0.1
done
kill -INT $XP
st=timeout
for _ in $(seq 100); do kill -0 $XP 2>/dev/null || { wait $XP; st=$?; break; }; sleep 0.1; done
expect_eq "SIGINT ends sbx exec with the command's signal status" 143 "$st"
sbxr exec "$A" -- sh -c "kill -0 $rpid 2>/dev/null && echo alive || echo gone"
expect_eq "SIGINT stopped the remote command" "gone" "$OUT"

# ---- exec -it: a real terminal, driven through a pty (tests/api/pty_helper.py)
mkdir "$T/pty"
out=$(timeout 90 python3 "$TOP/tests/api/pty_helper.py" "$T/pty" "$SBX" exec -it "${A:0:8}" -- sh)
expect_match "exec -it: stty size inside is the local terminal's size" "size1 30 100" "$out"
expect_match "exec -it: a local resize is seen inside" "size2 40 120" "$out"
expect_eq "exec -it: the shell's exit status is sbx's" 3 "$(cat "$T/pty/rc" 2>/dev/null)"
expect_eq "exec -it: the local terminal is restored" "$(cat "$T/pty/before" 2>/dev/null)" "$(cat "$T/pty/after" 2>/dev/null)"
out=$(printf 'echo in-$((2+3))\nexit 4\n' | timeout 30 "$SBX" exec -t "$A" -- sh 2>&1); rc=$?
expect_eq "exec -t with piped input: exit status" 4 "$rc"
expect_match "exec -t with piped input: the shell ran it" 'in-5' "$out"
exec 7< <(sleep 300)
SLP=$!
"$SBX" exec -t "$A" -- sh -c 'echo $$ >/tmp/tty.pid; exec sleep 300' <&7 >/dev/null 2>&1 &
XP=$!
exec 7<&-
for _ in $(seq 100); do
	tpid=$("$SBX" exec "$A" -- cat /tmp/tty.pid 2>/dev/null) && [ -n "$tpid" ] && break
	sleep 0.1
done
kill -TERM $XP
for _ in $(seq 50); do
	[ "$("$SBX" exec "$A" -- sh -c "kill -0 $tpid 2>/dev/null && echo alive || echo gone")" = gone ] && break
	sleep 0.1
done
expect_eq "exec -t: sbx ending hangs up the remote terminal's command" "gone" \
	"$("$SBX" exec "$A" -- sh -c "kill -0 $tpid 2>/dev/null && echo alive || echo gone")"
wait $XP 2>/dev/null
kill $SLP 2>/dev/null

# ---- cp, both ways, a tree with modes and binary data
S=$T/src
mkdir -p "$S/sub/deeper" "$S/empty"
head -c 300000 /dev/urandom >"$S/big.bin"
printf 'hello\n' >"$S/sub/a.txt"
printf '#!/bin/sh\necho x\n' >"$S/sub/deeper/run.sh"
: >"$S/zero"
chmod 0755 "$S/sub/deeper/run.sh"; chmod 0600 "$S/sub/a.txt"; chmod 0750 "$S/sub"; chmod 0444 "$S/big.bin"
sbxr cp "$S" "$A:/tmp/up"
expect_eq "cp DIR ID:DST exits 0" "0 " "$RC $ERR"
sbxr exec "$A" -- sh -c 'cd /tmp/up && find . | sort | while read f; do printf "%s %s\n" "$f" "$(stat -c %a "$f")"; done; md5sum big.bin sub/a.txt sub/deeper/run.sh zero'
exp=$(cd "$S" && find . | sort | while read f; do printf "%s %s\n" "$f" "$(stat -c %a "$f")"; done; md5sum big.bin sub/a.txt sub/deeper/run.sh zero)
expect_eq "cp up: the tree, its modes and bytes are the same inside" "$exp" "$OUT"
mkdir "$T/down"
sbxr cp "${A:0:8}:/tmp/up" "$T/down"
expect_eq "cp ID:DIR DST exits 0" "0 " "$RC $ERR"
expect_eq "cp down: the tree comes back byte-exact with its modes" \
	"$(cd "$S" && find . -printf '%p %m %s\n' | sort; cd "$S" && find . -type f -exec md5sum {} + | sort)" \
	"$(cd "$T/down/up" && find . -printf '%p %m %s\n' | sort; cd "$T/down/up" && find . -type f -exec md5sum {} + | sort)"
sbxr cp "$S/sub/a.txt" "$A:/tmp/one.txt"
sbxr cp "$A:/tmp/one.txt" "$T/one.txt"
expect_eq "cp a single file both ways" "hello 600" "$(cat "$T/one.txt") $(stat -c %a "$T/one.txt")"
sbxr cp "$A:/no/such" "$T/x"
expect_match "cp of a missing remote path → error naming it" "^[1-4] .*/no/such" "$RC $ERR"
sbxr cp "$T/one.txt" "$T/two.txt"
expect_match "cp with no ID: side → 2" "^2 .*ID:PATH" "$RC $ERR"

# ---- logs
sbxr create --wait -- sh -c 'echo started-$((6*7)); i=0; while :; do i=$((i+1)); echo tick$i; sleep 0.3; done'
L=$OUT
for _ in $(seq 50); do "$SBX" logs "$L" 2>/dev/null | grep -q tick2 && break; sleep 0.1; done
sbxr logs "$L"
expect_match "logs shows the main process's output" 'started-42' "$OUT"
timeout 3 "$SBX" logs -f "$L" >"$T/follow" 2>&1
n1=$(grep -c tick "$T/follow")
expect_match "logs -f keeps streaming new lines" '^([5-9]|[1-9][0-9]+)$' "$n1"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "OPEN-SANDBOX-API-KEY: $KEY" "$SBX_URL/v1/sandboxes/$L/logs?offset=-1")
expect_eq "GET logs with a bad offset → 400" 400 "$code"
code=$(curl -s -o /dev/null -w '%{http_code}' "$SBX_URL/v1/sandboxes/$L/logs")
expect_eq "GET logs needs the API key" 401 "$code"
sbxr logs nope-not-there
expect_match "logs of an unknown sandbox → 4" "^4 .*nope-not-there" "$RC $ERR"
sbxr logs --json "$L"
expect_match "logs --json" 'started-42' "$(jq -r .log <"$T/out")"

# ---- port
sbxr port "$A" 8000
expect_match "port prints the URL" "^http://127.0.0.1:$PORT/sandboxes/$A/proxy/8000" "$OUT"
expect_match "port hides the token" 'X-EXECD-ACCESS-TOKEN: <hidden' "$OUT"
tok=$(curl -s -H "OPEN-SANDBOX-API-KEY: $KEY" "$SBX_URL/v1/sandboxes/$A/endpoints/8000" | jq -r '.headers["X-EXECD-ACCESS-TOKEN"]')
expect_nomatch "port never prints the token by default" "$tok" "$OUT$ERR"
sbxr port --show-token "$A" 8000
expect_match "port --show-token prints it" "X-EXECD-ACCESS-TOKEN: $tok" "$OUT"
sbxr port "$A" 70000
expect_match "port out of range → 2 naming it" "^2 .*'70000'" "$RC $ERR"

# ---- pause, resume, renew, rm
sbxr pause "$B"
expect_eq "pause" "0 Paused" "$RC $(curl -s -H "OPEN-SANDBOX-API-KEY: $KEY" "$SBX_URL/v1/sandboxes/$B" | jq -r .status.state)"
sbxr pause "$B"
expect_match "pause twice → 1 with apid's message" "^1 .*409" "$RC $ERR"
sbxr resume "$B"
expect_eq "resume" "0 Running" "$RC $(curl -s -H "OPEN-SANDBOX-API-KEY: $KEY" "$SBX_URL/v1/sandboxes/$B" | jq -r .status.state)"
sbxr renew --timeout 1800 "$A"
exp=$(date -u -d @$(( $(date +%s) + 1800 )) +%Y-%m-%dT%H:%M)
expect_match "renew sets expiresAt to now + timeout" "$exp" "$OUT"
sbxr rm "$B" "${EXTRA[@]}"
expect_eq "rm several" 0 "$RC"
sbxr rm "$B"
expect_eq "rm of a removed sandbox → 4" 4 "$RC"
sbxr rm -f "$B"
expect_eq "rm -f of a removed sandbox → 0" 0 "$RC"

# ---- run: a one-shot sandbox
n0=$(curl -s -H "OPEN-SANDBOX-API-KEY: $KEY" "$SBX_URL/v1/sandboxes" | jq '.items|length')
sbxr run --env Z=9 -- sh -c 'echo "z=$Z"; echo e >&2; exit 5'
expect_eq "run: output, stderr and exit code" "5 z=9 e" "$RC $OUT $ERR"
n1=$(curl -s -H "OPEN-SANDBOX-API-KEY: $KEY" "$SBX_URL/v1/sandboxes" | jq '.items|length')
expect_eq "run deletes its sandbox" "$n0" "$n1"

# ---- network flags reach apid
sbxr create --allow-domain example.com
expect_match "create --allow-domain: apid accepts the FQDN policy" "^0 [0-9a-f-]+$" "$RC $(echo $OUT)"
if [ "$RC" = 0 ]; then
	P=$(curl -s -H "OPEN-SANDBOX-API-KEY: $KEY" "$SBX_URL/v1/sandboxes/$OUT/endpoints/18080" | jq -r '.headers["OPENSANDBOX-EGRESS-AUTH"]')
	expect_eq "… and its egress policy allows only that domain" "deny allow:example.com" \
		"$(curl -s -H "OPENSANDBOX-EGRESS-AUTH: $P" "$SBX_URL/sandboxes/$OUT/proxy/18080/policy" | jq -r '"\(.policy.defaultAction) \([.policy.egress[] | "\(.action):\(.target)"] | join(","))"')"
	"$SBX" rm "$OUT" >/dev/null
fi
sbxr create --json --volume cache:/data:ro
expect_eq "create --volume: apid accepts the named volume" "0" "$RC"
if [ "$RC" = 0 ]; then
	V=$(jq -r .id <"$T/out")
	sbxr inspect --json "$V"
	expect_eq "… inspect shows it mounted read-only at /data" "cache /data true" \
		"$(jq -r '(if type == "array" then .[0] else . end) | .volumes[0] | "\(.pvc.claimName) \(.mountPath) \(.readOnly)"' <"$T/out")"
	"$SBX" rm "$V" >/dev/null
	curl -s -o /dev/null -X DELETE -H "OPEN-SANDBOX-API-KEY: $KEY" "$SBX_URL/v1/volumes/cache"
fi

# ---- secrets never printed
all=$(cat "$T"/out "$T"/err "$T"/follow 2>/dev/null)
expect_nomatch "the API key is never printed" "$KEY" "$all"

sbxr rm "$A" "$L"
delete_all; stop_apid TERM
after=$(host_snapshot)
expect_eq "nothing leaked on the host" "$before" "$after"
finish
