#!/bin/bash
# Black-box tests of sbx-agent (contract Part B): first the agent on the host (root, commands as
# uid 1000), then the same agent inside a real sandbox (sbxrun run --net host --user 0).
. "$(dirname "$0")/../lib.sh"
AGENT=$BIN/sbx-agent
T=$(mktemp -d /tmp/sbx-agent-test.XXXXXX)
chmod 755 "$T"
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
[ -x "$AGENT" ] || { not_ok "sbx-agent built" ; finish; }
require_root "agent tests" || finish
command -v curl >/dev/null || { skip "agent tests" "curl missing"; finish; }

TOKEN=tok-$RANDOM$RANDOM$RANDOM
wait_ping() { # URL
	local i
	for i in $(seq 1 100); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' -H "X-EXECD-ACCESS-TOKEN: $TOKEN" "$1/ping")" = 200 ] && return 0
		sleep 0.05
	done
	return 1
}
H() { printf 'X-EXECD-ACCESS-TOKEN: %s' "$TOKEN"; }
# req METHOD PATH [curl args...] -> body on stdout, status in $T/code
req() { local m=$1 p=$2; shift 2; curl -s -X "$m" -H "$(H)" -o "$T/body" -w '%{http_code}' "$URL$p" "$@" >"$T/code"; cat "$T/body"; }
code() { cat "$T/code"; }
rcode() { req "$@" >/dev/null; echo "$(code) $(jget .code <"$T/body")"; } # "STATUS ERRORCODE"
hown() { chown -h "$OWNER" "$@"; } # host-created files must belong to the sandbox user's host uid
jget() { jq -r "$1" 2>/dev/null; }
run() { curl -sN -H "$(H)" -H 'Content-Type: application/json' "$URL/command" -d "$1"; }
events() { grep -v '^$' | jq -c "$1" 2>/dev/null; } # filter SSE lines
vm() { awk -v k="$2:" '$1==k{print $2}' /proc/$1/status; }
children_zombies() { ps --ppid "$1" -o stat= 2>/dev/null | grep -c '^Z'; }

# upload LOCALFILE META_JSON [extra curl args]
upload() {
	local f=$1 meta=$2; shift 2
	printf '%s' "$meta" >"$T/meta.json"
	req POST /files/upload -F "metadata=@$T/meta.json;filename=metadata;type=application/json" \
		-F "file=@$f;filename=$(basename "$f");type=application/octet-stream" "$@" >/dev/null
	code
}

suite() { # MODE(host|sandbox) PID DIR(a writable dir as the agent sees it) HOSTDIR(same dir from the host)
	local mode=$1 apid=$2 D=$3 HD=$4 out id st

	# --- ping / auth
	expect_eq "$mode: ping 200" 200 "$(curl -s -o /dev/null -w '%{http_code}' -H "$(H)" "$URL/ping")"
	expect_match "$mode: ping has Content-Length: 0" '[Cc]ontent-[Ll]ength: 0' "$(curl -s -i -H "$(H)" "$URL/ping")"
	out=$(curl -s -w ' %{http_code}' "$URL/ping")
	expect_match "$mode: missing token → 401 JSON" '"code":"UNAUTHORIZED".* 401$' "$out"
	out=$(curl -s -w ' %{http_code}' -H 'X-EXECD-ACCESS-TOKEN: wrong' "$URL/ping")
	expect_match "$mode: wrong token → 401 JSON" '"code":"UNAUTHORIZED".* 401$' "$out"
	out=$(curl -s -w ' %{http_code}' -H "X-EXECD-ACCESS-TOKEN: ${TOKEN}x" "$URL/command" -d '{"command":"true"}')
	expect_match "$mode: token with extra byte → 401" ' 401$' "$out"

	# --- commands: exit codes and stream framing
	out=$(run '{"command":"echo hello; echo oops >&2"}')
	expect_eq "$mode: echo → init,stdout,stderr,complete" 'init stdout stderr execution_complete' "$(printf '%s' "$out" | events .type | tr -d '"' | tr '\n' ' ' | sed 's/ $//')"
	expect_eq "$mode: stdout text" '"hello"' "$(printf '%s' "$out" | events 'select(.type=="stdout").text')"
	expect_match "$mode: events are <json>\\n\\n" '^\{"type":"init".*\}$' "$(printf '%s' "$out" | head -1)"
	expect_eq "$mode: blank line after each event" '' "$(printf '%s' "$out" | sed -n 2p)"
	# each event is written when its line is read, not at the next ping or at exit: stamp every
	# received stdout event and require the 0.8 s spacing to survive (bounded by curl -m)
	out=$(curl -sN -m 15 -H "$(H)" -H 'Content-Type: application/json' "$URL/command" \
		-d '{"command":"for i in 1 2 3; do echo $i; sleep 0.8; done; for i in 4 5; do echo $i >&2; sleep 0.8; done"}' |
		while IFS= read -r l; do case $l in *'"type":"std'*) echo "${EPOCHREALTIME/./} $l" ;; esac; done)
	local gaps=$(printf '%s\n' "$out" | awk 'NR>1{printf "%d ", ($1-p)/1000} {p=$1}')
	expect_eq "$mode: 5 stdout/stderr events received" 5 "$(printf '%s\n' "$out" | grep -c '"type":"std')"
	[ -n "$gaps" ] && printf '%s\n' $gaps | awk '$1<500{bad=1} END{exit bad}' &&
		ok "$mode: events streamed incrementally (gaps ms: $gaps)" || not_ok "$mode: events streamed incrementally (gaps ms: $gaps)"
	for c in 0 3; do
		out=$(run "{\"command\":\"exit $c\"}")
		if [ $c = 0 ]; then
			expect_eq "$mode: exit 0 → execution_complete" 1 "$(printf '%s' "$out" | events 'select(.type=="execution_complete")' | wc -l)"
		else
			expect_eq "$mode: exit 3 → evalue \"3\"" '"3"' "$(printf '%s' "$out" | events 'select(.type=="error").error.evalue')"
		fi
	done
	out=$(run '{"command":"kill -9 $$"}')
	expect_eq "$mode: SIGKILL → evalue \"137\"" '"137"' "$(printf '%s' "$out" | events 'select(.type=="error").error.evalue')"
	out=$(run '{"command":"printf \"a\\r\\nb\\rc\\n\\nd\""}')
	expect_eq "$mode: \\r, \\n, \\r\\n split; empty line is \\n; tail sent" '"a" "b" "c" "\n" "d"' \
		"$(printf '%s' "$out" | events 'select(.type=="stdout").text' | tr '\n' ' ' | sed 's/ $//')"
	out=$(run '{"command":"echo $FOO; pwd; id -u","cwd":"/tmp","envs":{"FOO":"bar baz"}}')
	expect_eq "$mode: envs, cwd, default uid 1000" '"bar baz" "/tmp" "1000"' "$(printf '%s' "$out" | events 'select(.type=="stdout").text' | tr '\n' ' ' | sed 's/ $//')"
	out=$(run '{"command":"id -u; id -g","uid":0}')
	expect_eq "$mode: uid 0 on request" '"0" "0"' "$(printf '%s' "$out" | events 'select(.type=="stdout").text' | tr '\n' ' ' | sed 's/ $//')"
	out=$(run '{"command":"true","cwd":"/nonexistent-dir"}')
	expect_match "$mode: bad cwd → init + error with text" 'chdir' "$(printf '%s' "$out" | events 'select(.type=="error").error.evalue')"
	expect_eq "$mode: bad JSON → 400" '400 INVALID_REQUEST_BODY' "$(rcode POST /command -d '{"command":')"
	expect_eq "$mode: blank command → 400" '400 INVALID_REQUEST_BODY' "$(rcode POST /command -d '{"command":"  "}')"
	expect_eq "$mode: gid without uid → 400" 400 "$(req POST /command -d '{"command":"true","gid":5}' >/dev/null; code)"

	# --- timeout kills the process group
	local t0=$(date +%s%N)
	out=$(run '{"command":"sleep 30 & sleep 30","timeout":300}')
	local ms=$((($(date +%s%N) - t0) / 1000000))
	expect_eq "$mode: timeout → error 137" '"137"' "$(printf '%s' "$out" | events 'select(.type=="error").error.evalue')"
	[ $ms -lt 3000 ] && ok "$mode: timeout honoured (${ms} ms)" || not_ok "$mode: timeout honoured (${ms} ms)"

	# --- interrupt a foreground command
	run '{"command":"sleep 30"}' >"$T/int.sse" &
	local cpid=$!
	for i in $(seq 50); do id=$(events 'select(.type=="init").text' <"$T/int.sse" | tr -d '"'); [ -n "$id" ] && break; sleep 0.05; done
	expect_eq "$mode: DELETE /command → 200" 200 "$(req DELETE "/command?id=$id" >/dev/null; code)"
	wait $cpid
	expect_eq "$mode: interrupted stream ends with error 143" '"143"' "$(events 'select(.type=="error").error.evalue' <"$T/int.sse")"
	st=$(req GET "/command/status/$id")
	expect_eq "$mode: status after interrupt" 'false 143' "$(echo "$st" | jget '"\(.running) \(.exit_code)"')"
	expect_eq "$mode: DELETE /command without id → 400 MISSING_QUERY" '400 MISSING_QUERY' "$(rcode DELETE /command)"
	expect_eq "$mode: status of unknown id → 404" 404 "$(req GET /command/status/nope >/dev/null; code)"
	expect_eq "$mode: logs of unknown id → 400" 400 "$(req GET /command/nope/logs >/dev/null; code)"

	# --- background + status + logs with cursor
	out=$(run '{"command":"for i in 1 2 3; do echo line$i; sleep 0.2; done; echo err >&2; exit 4","background":true}')
	expect_eq "$mode: background → init, execution_complete" 'init execution_complete' "$(printf '%s' "$out" | events .type | tr -d '"' | tr '\n' ' ' | sed 's/ $//')"
	id=$(printf '%s' "$out" | events 'select(.type=="init").text' | tr -d '"')
	st=$(req GET "/command/status/$id")
	expect_eq "$mode: status while running" 'true null' "$(echo "$st" | jget '"\(.running) \(.exit_code)"')"
	sleep 0.3
	req GET "/command/$id/logs?cursor=0" >/dev/null
	local cur=$(curl -s -D - -o /dev/null -H "$(H)" "$URL/command/$id/logs?cursor=0" | tr -d '\r' | awk -F': ' 'tolower($1)=="execd-commands-tail-cursor"{print $2}')
	[ -n "$cur" ] && [ "$cur" -ge 1 ] && [ "$cur" -le 3 ] && ok "$mode: tail cursor mid-run ($cur)" || not_ok "$mode: tail cursor mid-run ($cur)"
	for i in $(seq 40); do [ "$(req GET "/command/status/$id" | jget .running)" = false ] && break; sleep 0.1; done
	st=$(req GET "/command/status/$id")
	expect_eq "$mode: status after exit" 'false 4 exit status 4' "$(echo "$st" | jget '"\(.running) \(.exit_code) \(.error)"')"
	expect_match "$mode: status timestamps RFC3339 Z" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z [0-9]{4}-.*Z$' "$(echo "$st" | jget '"\(.started_at) \(.finished_at)"')"
	expect_eq "$mode: full logs" "$(printf 'line1\nline2\nline3\nerr')" "$(req GET "/command/$id/logs")"
	expect_eq "$mode: logs after cursor 2" "$(printf 'line3\nerr')" "$(req GET "/command/$id/logs?cursor=2")"
	cur=$(curl -s -D - -o /dev/null -H "$(H)" "$URL/command/$id/logs?cursor=2" | tr -d '\r' | awk -F': ' 'tolower($1)=="execd-commands-tail-cursor"{print $2}')
	expect_eq "$mode: next cursor" 4 "$cur"
	expect_eq "$mode: logs at tail cursor empty" "" "$(req GET "/command/$id/logs?cursor=4")"

	# --- client disconnect does not kill the command; no zombie / fd leak
	local fds0=$(ls /proc/$apid/fd | wc -l)
	rm -f "$HD/disc"
	curl -sN -m 0.5 -H "$(H)" "$URL/command" -d "{\"command\":\"sleep 1; echo done > $D/disc\"}" >/dev/null 2>&1
	for i in $(seq 5); do curl -sN -m 0.2 -H "$(H)" "$URL/command" -d '{"command":"sleep 0.5"}' >/dev/null 2>&1; done
	sleep 1.5
	expect_eq "$mode: disconnected command still finished" done "$(cat "$HD/disc" 2>/dev/null)"
	expect_eq "$mode: no zombies" 0 "$(children_zombies "$apid")"
	expect_eq "$mode: no fd leak after disconnects" "$fds0" "$(ls /proc/$apid/fd | wc -l)"

	# --- sessions
	out=$(req POST /session -d "{\"cwd\":\"$D\"}")
	local sid=$(echo "$out" | jget .session_id)
	expect_match "$mode: session created" '^[0-9a-f]{32}$' "$sid"
	out=$(curl -sN -H "$(H)" "$URL/session/$sid/run" -d '{"command":"pwd; mkdir -p sub; cd sub; export SX=kept; Y=notexported"}')
	expect_eq "$mode: session starts in its cwd" "\"$D\"" "$(printf '%s' "$out" | events 'select(.type=="stdout").text')"
	out=$(curl -sN -H "$(H)" "$URL/session/$sid/run" -d '{"command":"pwd; echo $SX"}')
	expect_eq "$mode: session keeps cwd and env" "\"$D/sub\" \"kept\"" "$(printf '%s' "$out" | events 'select(.type=="stdout").text' | tr '\n' ' ' | sed 's/ $//')"
	out=$(curl -sN -H "$(H)" "$URL/session/$sid/run" -d '{"command":"exit 5"}')
	expect_eq "$mode: session exit code" '"5"' "$(printf '%s' "$out" | events 'select(.type=="error").error.evalue')"
	out=$(curl -sN -H "$(H)" "$URL/session/$sid/run" -d '{"command":"pwd","cwd":"/"}')
	expect_eq "$mode: session run cwd override" '"/"' "$(printf '%s' "$out" | events 'select(.type=="stdout").text')"
	expect_eq "$mode: delete session" 200 "$(req DELETE "/session/$sid" >/dev/null; code)"
	expect_eq "$mode: delete unknown session → 404 CONTEXT_NOT_FOUND" '404 CONTEXT_NOT_FOUND' "$(rcode DELETE "/session/$sid")"
	expect_eq "$mode: run in unknown session → 404" 404 "$(req POST "/session/$sid/run" -d '{"command":"true"}' >/dev/null; code)"
	expect_eq "$mode: empty body creates a session" 200 "$(req POST /session >/dev/null; code)"

	# --- files
	printf 'hello world\n' >"$T/small.txt"
	expect_eq "$mode: upload small" 200 "$(upload "$T/small.txt" "{\"path\":\"$D/up/a/b.txt\",\"mode\":600}")"
	expect_eq "$mode: uploaded bytes" "hello world" "$(cat "$HD/up/a/b.txt")"
	out=$(req GET "/files/info?path=$D/up/a/b.txt")
	expect_eq "$mode: info mode 600 size 12 type file" '600 12 file' "$(echo "$out" | jget ".[\"$D/up/a/b.txt\"] | \"\(.mode) \(.size) \(.type)\"")"
	expect_match "$mode: info owner is the sandbox user" '^(1000|[a-z].*)$' "$(echo "$out" | jget ".[\"$D/up/a/b.txt\"].owner")"
	expect_eq "$mode: download" "hello world" "$(req GET "/files/download?path=$D/up/a/b.txt")"
	expect_match "$mode: download Content-Disposition" 'attachment; filename="b.txt"' "$(curl -s -D - -o /dev/null -H "$(H)" "$URL/files/download?path=$D/up/a/b.txt")"
	req GET "/files/download?path=$D/up/a/b.txt" -H 'Range: bytes=1-3' >/dev/null
	expect_eq "$mode: Range bytes=1-3 → 206" '206 ell' "$(code) $(cat "$T/body")"
	expect_match "$mode: Content-Range" 'Content-Range: bytes 1-3/12' "$(curl -s -D - -o /dev/null -H "$(H)" -H 'Range: bytes=1-3' "$URL/files/download?path=$D/up/a/b.txt")"
	expect_eq "$mode: Range suffix bytes=-6" 'world' "$(req GET "/files/download?path=$D/up/a/b.txt" -H 'Range: bytes=-6')"
	expect_eq "$mode: Range past end → 416" 416 "$(req GET "/files/download?path=$D/up/a/b.txt" -H 'Range: bytes=100-' >/dev/null; code)"
	expect_eq "$mode: download missing path → 400 MISSING_QUERY" '400 MISSING_QUERY' "$(rcode GET /files/download)"
	expect_eq "$mode: download missing file → 404 FILE_NOT_FOUND" '404 FILE_NOT_FOUND' "$(rcode GET "/files/download?path=$D/nope")"
	# chunked request body, two pairs in one request
	printf 'one' >"$T/one"; printf 'two' >"$T/two"; printf '{"path":"%s/p/one"}' "$D" >"$T/m1"; printf '{"path":"%s/p/two","mode":755}' "$D" >"$T/m2"
	req POST /files/upload -H 'Transfer-Encoding: chunked' -F "metadata=@$T/m1;filename=metadata" -F "file=@$T/one" \
		-F "metadata=@$T/m2;filename=metadata" -F "file=@$T/two" >/dev/null
	expect_eq "$mode: chunked upload of 2 pairs" "200 one two 755" "$(code) $(cat "$HD/p/one") $(cat "$HD/p/two") $(stat -c %a "$HD/p/two")"
	expect_eq "$mode: not multipart → 400 INVALID_FILE" '400 INVALID_FILE' "$(rcode POST /files/upload -H 'Content-Type: application/json' -d '{}')"
	expect_eq "$mode: truncated multipart → 400 INVALID_FILE" '400 INVALID_FILE' "$(rcode POST /files/upload -H 'Content-Type: multipart/form-data; boundary=XX' --data-binary $'--XX\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n{"path":"/tmp/x"}')"
	expect_eq "$mode: metadata without file → 400 INVALID_FILE_CONTENT" '400 INVALID_FILE_CONTENT' "$(rcode POST /files/upload -F "metadata=@$T/m1;filename=metadata")"
	expect_eq "$mode: file without metadata → 400 INVALID_FILE_METADATA" '400 INVALID_FILE_METADATA' "$(rcode POST /files/upload -F "file=@$T/one")"
	printf '{"mode":644}' >"$T/m3"
	expect_eq "$mode: metadata without path → 400 INVALID_FILE_METADATA" '400 INVALID_FILE_METADATA' "$(rcode POST /files/upload -F "metadata=@$T/m3;filename=metadata" -F "file=@$T/one")"
	printf '{"path":"%s/x","mode":999}' "$D" >"$T/m4"
	expect_eq "$mode: mode with digit 9 → 400 INVALID_FILE_METADATA" '400 INVALID_FILE_METADATA' "$(rcode POST /files/upload -F "metadata=@$T/m4;filename=metadata" -F "file=@$T/one")"
	# info/search/list/mkdir/permissions/replace/mv/delete
	out=$(req GET "/files/info?path=$D/p/one&path=$D/p/two")
	expect_eq "$mode: info for two paths" 2 "$(echo "$out" | jget 'keys|length')"
	expect_eq "$mode: info with a missing path → 404" 404 "$(req GET "/files/info?path=$D/p/one&path=$D/p/none" >/dev/null; code)"
	expect_eq "$mode: info without path → {}" '{}' "$(req GET /files/info)"
	out=$(req GET "/files/search?path=$D&pattern=t*")
	expect_eq "$mode: search t* (basename, files only)" "$D/p/two" "$(echo "$out" | jget '.[].path' | tr '\n' ' ' | sed 's/ $//')"
	expect_eq "$mode: search default ** walks subdirectories" "$D/up/a/b.txt" "$(req GET "/files/search?path=$D/up" | jget '.[].path')"
	expect_eq "$mode: search missing dir → 404" 404 "$(req GET "/files/search?path=$D/none" >/dev/null; code)"
	expect_eq "$mode: search without path → 400" 400 "$(req GET "/files/search" >/dev/null; code)"
	expect_eq "$mode: mkdir -p with mode 700" 200 "$(req POST /directories -d "{\"$D/mk/x/y\":{\"mode\":700}}" >/dev/null; code)"
	expect_eq "$mode: mkdir mode applied" 700 "$(stat -c %a "$HD/mk/x/y")"
	out=$(req GET "/directories/list?path=$D/mk&depth=2")
	expect_eq "$mode: list depth 2 in order" "$D/mk/x $D/mk/x/y" "$(echo "$out" | jget '.[].path' | tr '\n' ' ' | sed 's/ $//')"
	expect_eq "$mode: list depth 1" "$D/mk/x" "$(req GET "/directories/list?path=$D/mk" | jget '.[].path')"
	ln -sfn "$D/mk" "$HD/mklink"
	expect_eq "$mode: list of a symlink → 400" 400 "$(req GET "/directories/list?path=$D/mklink" >/dev/null; code)"
	expect_eq "$mode: permissions 640" "200 640" "$(req POST /files/permissions -d "{\"$D/p/one\":{\"mode\":640}}" >/dev/null; code) $(stat -c %a "$HD/p/one")"
	expect_eq "$mode: permissions on missing file → 404" 404 "$(req POST /files/permissions -d "{\"$D/p/none\":{\"mode\":640}}" >/dev/null; code)"
	printf 'a-b-a-b-a' >"$HD/p/r.txt"; chmod 604 "$HD/p/r.txt"; hown "$HD/p/r.txt"
	out=$(req POST '/files/replace?verbose=true' -d "{\"$D/p/r.txt\":{\"old\":\"a\",\"new\":\"XY\"}}")
	expect_eq "$mode: replace verbose count" 3 "$(echo "$out" | jget ".[\"$D/p/r.txt\"].replacedCount")"
	expect_eq "$mode: replaced content keeps mode" "XY-b-XY-b-XY 604" "$(cat "$HD/p/r.txt") $(stat -c %a "$HD/p/r.txt")"
	req POST /files/replace -d "{\"$D/p/r.txt\":{\"old\":\"b\",\"new\":\"c\"}}" >/dev/null
	expect_eq "$mode: replace non-verbose → empty 200" "200:" "$(code):$(cat "$T/body")"
	expect_eq "$mode: replace empty old → 400" 400 "$(req POST /files/replace -d "{\"$D/p/r.txt\":{\"old\":\"\",\"new\":\"c\"}}" >/dev/null; code)"
	expect_eq "$mode: replace missing file → 404" 404 "$(req POST /files/replace -d "{\"$D/p/none\":{\"old\":\"a\",\"new\":\"c\"}}" >/dev/null; code)"
	expect_eq "$mode: mv" "200 one" "$(req POST /files/mv -d "[{\"src\":\"$D/p/one\",\"dest\":\"$D/p/moved\"}]" >/dev/null; code) $(cat "$HD/p/moved")"
	expect_eq "$mode: mv missing src → 404" 404 "$(req POST /files/mv -d "[{\"src\":\"$D/p/one\",\"dest\":\"$D/p/x\"}]" >/dev/null; code)"
	expect_eq "$mode: mv bad JSON → 400" 400 "$(req POST /files/mv -d '[{"src":' >/dev/null; code)"
	expect_eq "$mode: delete file (+ missing ok)" "200 gone" "$(req DELETE "/files?path=$D/p/moved&path=$D/p/none" >/dev/null; code) $([ -e "$HD/p/moved" ] || echo gone)"
	expect_eq "$mode: delete a directory via /files → 500" 500 "$(req DELETE "/files?path=$D/mk" >/dev/null; code)"
	expect_eq "$mode: rm -rf directories" "200 gone" "$(req DELETE "/directories?path=$D/mk" >/dev/null; code) $([ -e "$HD/mk" ] || echo gone)"

	# --- symlinks: uploads replace a link instead of writing through it
	echo original >"$HD/victim"
	ln -sfn "$D/victim" "$HD/link"
	hown "$HD/victim" "$HD/link"
	upload "$T/small.txt" "{\"path\":\"$D/link\"}" >/dev/null
	expect_eq "$mode: upload onto a symlink replaces the link" "original regular" "$(cat "$HD/victim") $([ -L "$HD/link" ] && echo link || echo regular)"
	# swap the target for a symlink while a slow upload is in flight
	head -c 300000 /dev/zero >"$T/slow"
	(upload "$T/slow" "{\"path\":\"$D/swap\"}" --limit-rate 200k >/dev/null) &
	local upid=$!
	sleep 0.5
	rm -f "$HD/swap"; ln -s "$D/victim" "$HD/swap"; hown "$HD/swap"
	wait $upid
	expect_eq "$mode: symlink swap during upload does not redirect writes" original "$(cat "$HD/victim")"
	upload "$T/small.txt" "{\"path\":\"$D/../../../../..$D/dots.txt\"}" >/dev/null
	expect_eq "$mode: .. is resolved lexically below /" "hello world" "$(cat "$HD/dots.txt" 2>/dev/null)"

	# --- metrics
	out=$(req GET /metrics)
	expect_eq "$mode: metrics fields" 'number number number number number' "$(echo "$out" | jget '[.cpu_count,.cpu_used_pct,.mem_total_mib,.mem_used_mib,.timestamp]|map(type)|join(" ")')"
	out=$(curl -sN -m 2.6 -H "$(H)" "$URL/metrics/watch")
	[ "$(printf '%s\n' "$out" | grep -c '"cpu_used_pct"')" -ge 2 ] && ok "$mode: metrics/watch streams lines" || not_ok "$mode: metrics/watch streams lines: $out"

	# --- agent hardening as seen from a uid-1000 command
	# The pid is the agent's (its comm says so) and each refusal is the kernel's own (EACCES,
	# EPERM): a wrong pid or a failing command would refuse too, and must not pass.
	out=$(run "{\"command\":\"cat /proc/$SELFPID/comm; cat /proc/$SELFPID/environ 2>&1 >/dev/null | grep -o 'Permission denied'; kill -9 $SELFPID 2>&1 | grep -o 'Operation not permitted'\"}")
	expect_eq "$mode: uid 1000 cannot read agent environ nor kill it" '"sbx-agent" "Permission denied" "Operation not permitted"' "$(printf '%s' "$out" | events 'select(.type=="stdout").text' | tr '\n' ' ' | sed 's/ $//')"
	expect_eq "$mode: no zombies at the end" 0 "$(children_zombies "$apid")"
}

big_test() { # MODE PID DIR HOSTDIR
	local mode=$1 apid=$2 D=$3 HD=$4
	local avail=$(df -Pk "$HD" | awk 'NR==2{print $4}')
	if [ "${avail:-0}" -lt 3500000 ]; then skip "$mode: 1 GiB upload/download" "less than 3.5 GiB free"; return; fi
	head -c 1G /dev/urandom >"$T/big"
	local sum=$(sha256sum <"$T/big" | cut -d' ' -f1)
	local t0=$(date +%s%N)
	expect_eq "$mode: 1 GiB upload" 200 "$(upload "$T/big" "{\"path\":\"$D/big\"}")"
	local t1=$(date +%s%N)
	expect_eq "$mode: 1 GiB on disk byte-exact" "$sum" "$(sha256sum <"$HD/big" | cut -d' ' -f1)"
	local t2=$(date +%s%N)
	expect_eq "$mode: 1 GiB download byte-exact" "$sum" "$(curl -s -H "$(H)" "$URL/files/download?path=$D/big" | sha256sum | cut -d' ' -f1)"
	local t3=$(date +%s%N)
	local hwm=$(vm "$apid" VmHWM)
	echo "# $mode: 1 GiB upload $(((t1 - t0) / 1000000)) ms, download+sha $(((t3 - t2) / 1000000)) ms, agent VmHWM ${hwm} kB"
	[ "${hwm:-999999}" -lt 32768 ] && ok "$mode: agent VmHWM ${hwm} kB < 32 MiB after 1 GiB transfers" || not_ok "$mode: agent VmHWM ${hwm} kB"
	rm -f "$T/big" "$HD/big"
}

limits_test() { # starts a second agent with tight limits
	local port=$(free_port) LURL
	SBX_AGENT_TOKEN=$TOKEN "$AGENT" --listen 127.0.0.1:$port --max-commands 1 --max-body 4096 2>>"$T/agent2.log" &
	PIDS+=($!)
	LURL=http://127.0.0.1:$port
	wait_ping "$LURL" || { not_ok "limits agent starts"; return; }
	local save=$URL; URL=$LURL
	run '{"command":"sleep 2","background":true}' >/dev/null
	expect_eq "limits: second command → 429" 429 "$(req POST /command -d '{"command":"true"}' >/dev/null; code)"
	expect_match "limits: 429 has a JSON body" '"code":' "$(cat "$T/body")"
	local big=$(head -c 5000 /dev/zero | tr '\0' a)
	expect_eq "limits: JSON body over --max-body → 413" 413 "$(req POST /command -d "{\"command\":\"$big\"}" >/dev/null; code)"
	head -c 8192 /dev/zero >"$T/8k"
	expect_eq "limits: upload over --max-body → 413" 413 "$(upload "$T/8k" "{\"path\":\"$T/8k.out\"}")"
	expect_eq "limits: chunked upload over --max-body → 413" 413 "$(upload "$T/8k" "{\"path\":\"$T/8k.out\"}" -H 'Transfer-Encoding: chunked')"
	expect_eq "limits: agent still serves after 413s" 200 "$(req GET /ping >/dev/null; code)"
	URL=$save
}

entry_test() {
	local port=$(free_port) rc
	SBX_AGENT_TOKEN=$TOKEN timeout 10 "$AGENT" --listen 127.0.0.1:$port -- sh -c 'sleep 0.2; exit 7' 2>/dev/null; rc=$?
	expect_eq "entrypoint exit 7 → agent exits 7" 7 "$rc"
	SBX_AGENT_TOKEN=$TOKEN timeout 10 "$AGENT" --listen 127.0.0.1:$port -- sh -c 'kill -9 $$' 2>/dev/null; rc=$?
	expect_eq "entrypoint killed by 9 → agent exits 137" 137 "$rc"
}

# ================= host mode =================
PORT=$(free_port)
URL=http://127.0.0.1:$PORT
printf '%s' "$TOKEN" >"$T/token"; chmod 400 "$T/token"
"$AGENT" --listen 127.0.0.1:$PORT --token-file "$T/token" --user 1000:1000 2>"$T/agent.log" &
SELFPID=$!
PIDS+=($SELFPID)
if wait_ping "$URL"; then
	ok "host: agent answers /ping"
	rss=$(vm $SELFPID VmRSS)
	echo "# host: idle agent VmRSS ${rss} kB (goal < 2048 kB)"
	[ "$rss" -lt 2048 ] && ok "host: idle RSS ${rss} kB < 2 MiB" || not_ok "host: idle RSS ${rss} kB"
	expect_eq "host: token file removed after start" gone "$([ -e "$T/token" ] || echo gone)"
	OWNER=1000:1000
	mkdir -p "$T/w" && chown $OWNER "$T/w"
	suite host "$SELFPID" "$T/w" "$T/w"
	big_test host "$SELFPID" "$T/w" "$T/w"
	echo "# host: agent VmRSS after the suite $(vm $SELFPID VmRSS) kB"
else
	not_ok "host: agent answers /ping"; cat "$T/agent.log"
fi
limits_test
entry_test
SBX_AGENT_TOKEN=$TOKEN "$AGENT" --listen 127.0.0.1:$(free_port) 2>/dev/null &
p=$!; PIDS+=($p); sleep 0.3
expect_eq "env token scrubbed from /proc/PID/environ" 0 "$(tr '\0' '\n' </proc/$p/environ | grep -c "$TOKEN")"
expect_eq "agent is not dumpable (no ptrace/proc access for uid 1000)" "root" "$(stat -c %U /proc/$p/environ)"
kill $p

# ================= sandbox mode =================
if ! [ -x "$SBXRUN" ]; then
	skip "sandbox: agent tests" "sbxrun not built"
elif ! [ -d "$SBX_IMAGES/host" ]; then
	skip "sandbox: agent tests" "no host image in $SBX_IMAGES (make rootfs)"
else
	PORT=$(free_port)
	URL=http://127.0.0.1:$PORT
	# the runtime maps sandbox uids onto a host range; the bind-mounted work dir belongs to the
	# host uid that sandbox uid 1000 maps to
	base=$("$SBXRUN" run -q --image host --user 0 -- cat /proc/self/uid_map | awk '$1==0{print $2}')
	OWNER=$((base + 1000)):$((base + 1000))
	mkdir -p "$T/sbw" && chown $OWNER "$T/sbw"
	"$SBXRUN" run -q --image host --net host --user 0 --bind "$AGENT:/.sbx/sbx-agent:ro" --bind "$T/sbw:/work" \
		--env "SBX_AGENT_TOKEN=$TOKEN" -- /.sbx/sbx-agent --listen 127.0.0.1:$PORT --user 1000:1000 2>"$T/sbagent.log" &
	PIDS+=($!)
	if wait_ping "$URL"; then
		ok "sandbox: agent answers /ping"
		SELFPID=$(pgrep -f "sbx-agent --listen 127.0.0.1:$PORT" | while read -r p; do [ "$(readlink /proc/$p/exe)" != "$SBXRUN" ] && echo $p; done | tail -1)
		# inside, the agent sees its own pid; the hardening test needs the pid it has inside
		INPID=$(awk '/^NSpid/{print $NF}' /proc/$SELFPID/status)
		rss=$(vm $SELFPID VmRSS)
		echo "# sandbox: idle agent VmRSS ${rss} kB"
		[ "${rss:-9999}" -lt 2048 ] && ok "sandbox: idle RSS ${rss} kB < 2 MiB" || not_ok "sandbox: idle RSS ${rss} kB"
		HOSTPID=$SELFPID; SELFPID=$INPID
		suite sandbox "$HOSTPID" /work "$T/sbw"
		# escapes: absolute paths and .. name sandbox paths, never host ones
		# Each upload must succeed and land inside (read back through the agent), so that
		# "absent on the host" cannot pass because nothing was written at all.
		small=$(cat "$T/small.txt")
		st=$(upload "$T/small.txt" '{"path":"/../../../../tmp/sbx-escape-'$$'"}')
		expect_eq "sandbox: /../../tmp upload stays inside the sandbox" "200 $small absent" \
			"$st $(req GET "/files/download?path=/tmp/sbx-escape-$$") $([ -e /tmp/sbx-escape-$$ ] && echo present || echo absent)"
		ln -sfn /etc "$T/sbw/etclink"; hown "$T/sbw/etclink"
		st=$(upload "$T/small.txt" '{"path":"/work/etclink/sbx-escape-'$$'"}')
		expect_eq "sandbox: upload through an absolute symlink stays inside" "200 $small absent" \
			"$st $(req GET "/files/download?path=/etc/sbx-escape-$$") $([ -e /etc/sbx-escape-$$ ] && echo present || echo absent)"
		expect_eq "sandbox: download of /etc/hostname is the sandbox's" "$(hostname)-differs" "$(req GET '/files/download?path=/etc/hostname' | grep -qx "$(hostname)" && echo same || echo "$(hostname)-differs")"
		big_test sandbox "$HOSTPID" /work "$T/sbw"
	else
		not_ok "sandbox: agent answers /ping"; sed 's/^/    /' "$T/sbagent.log" | head -20
	fi
fi
finish
