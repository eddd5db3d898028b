#!/bin/bash
# `..` and symlink traversal through every route of the agent's files API (execd, contract Part
# B) with the agent inside a real sandbox, as apid runs it (root inside, commands as uid 1000):
# each request aims at a host directory that the sandbox does not have, by an absolute path, by
# `..` above the sandbox's root, and through absolute and climbing symlinks in a work directory
# bound from the host. Each one must answer an error (or act on the sandbox's own files) and
# leave the host directory exactly as it was; a control per route shows the route works on a
# file that is there, so an error cannot come from a broken route. (Upload is also in
# tests/api/t_agent.sh; apid has no files API of its own: /files/* reaches the agent through
# the proxy, byte for byte.)
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
AGENT=$BIN/sbx-agent
require_root t_escape_api || finish
[ -x "$AGENT" ] && [ -x "$SBXRUN" ] || { skip t_escape_api "sbx-agent or sbxrun not built"; finish; }
[ -d "$SBX_IMAGES/host" ] || { skip t_escape_api "no host image in $SBX_IMAGES (make rootfs)"; finish; }
command -v curl >/dev/null && command -v jq >/dev/null || { skip t_escape_api "curl or jq missing"; finish; }
TAG=tesca$$
before=$(host_snapshot | grep -F "$TAG")
T=$(mktemp -d /tmp/sbx-t-escape-api.XXXXXX)
chmod 755 "$T"
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"' EXIT
TOKEN=tok-$RANDOM$RANDOM$RANDOM
PORT=$(free_port)
URL=http://127.0.0.1:$PORT
# The target: a host directory with a file, never bound into the sandbox.
H=$T/hostonly
mkdir -p "$H/dir" && echo "host secret" >"$H/secret" && chmod 644 "$H/secret"
snap() { find "$1" -printf '%P %y %m %s %T@\n' | sort; }
h_before=$(snap "$H")
base=$("$SBXRUN" run -q --image host --user 0 -- cat /proc/self/uid_map | awk '$1==0{print $2}')
OWNER=$((base + 1000)):$((base + 1000))
mkdir -p "$T/w" && echo "inside" >"$T/w/inside.txt" && mkdir "$T/w/d"
ln -s "$H" "$T/w/abslink"
ln -s "../../../../../../../..$H" "$T/w/rellink"
chown -R -h "$OWNER" "$T/w"
"$SBXRUN" run -q --id "$TAG" --image host --net host --user 0 --bind "$AGENT:/.sbx/sbx-agent:ro" \
	--bind "$T/w:/work" --env "SBX_AGENT_TOKEN=$TOKEN" -- \
	/.sbx/sbx-agent --listen "127.0.0.1:$PORT" --user 1000:1000 2>"$T/agent.log" &
PID=$!
up=""
for _ in $(seq 100); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' -H "X-EXECD-ACCESS-TOKEN: $TOKEN" "$URL/ping")" = 200 ] && { up=1; break; }
	sleep 0.1
done
if [ -z "$up" ]; then
	not_ok "the agent answers in its sandbox"; sed 's/^/    /' "$T/agent.log" | head; finish
fi
# req METHOD PATH [curl args] -> "STATUS" (body in $T/body)
req() { local m=$1 p=$2; shift 2; curl -s -X "$m" -H "X-EXECD-ACCESS-TOKEN: $TOKEN" -o "$T/body" -w '%{http_code}' "$URL$p" "$@"; }
upload() { # DEST-PATH -> STATUS
	printf '{"path":"%s"}' "$1" >"$T/meta.json"; echo "planted" >"$T/up.txt"
	req POST /files/upload -F "metadata=@$T/meta.json;filename=metadata;type=application/json" \
		-F "file=@$T/up.txt;filename=up.txt;type=application/octet-stream"
}

# Ways to name the host directory from inside.
WAYS="$H /../../../../..$H /work/../../../..$H /work/abslink /work/rellink"
for w in $WAYS; do
	expect_match "download $w/secret: not found, not the host's file" '^404$' "$(req GET "/files/download?path=$w/secret")"
	expect_match "info $w/secret: 404" '^404$' "$(req GET "/files/info?path=$w/secret")"
	# (The first way's mkdir and upload below make $H inside the sandbox: later lists see that.)
	v=$(req GET "/directories/list?path=$w"); expect_match "list $w: answered ($v)" '^(200|40[04])$' "$v"
	expect_nomatch "... list $w names no host file" 'secret' "$(cat "$T/body")"
	v=$(req GET "/files/search?path=$w&pattern=*"); expect_match "search $w: 404 or no host file" '^404$|^200$' "$v"
	expect_nomatch "... search $w names no host file" 'secret' "$(cat "$T/body")"
	expect_match "permissions on $w/secret: 404" '^404$' \
		"$(req POST /files/permissions -d "{\"$w/secret\":{\"mode\":777}}")"
	expect_match "replace in $w/secret: 404" '^404$' \
		"$(req POST /files/replace -d "{\"$w/secret\":{\"old\":\"host\",\"new\":\"pwned\"}}")"
	expect_match "mv $w/secret out: 404" '^404$' \
		"$(req POST /files/mv -d "[{\"src\":\"$w/secret\",\"dest\":\"/work/stolen\"}]")"
	# Deletes are idempotent (200 for a path that is not there): the host's file must stay.
	v=$(req DELETE "/files?path=$w/secret")
	expect_eq "delete $w/secret: answered, the host's file stays" "ok host secret" \
		"$(echo "$v" | grep -qE '^(200|404)$' && echo ok || echo "$v") $(cat "$H/secret" 2>&1)"
	v=$(req DELETE "/directories?path=$w/dir")
	expect_eq "delete directory $w/dir: answered, the host's directory stays" "ok dir" \
		"$(echo "$v" | grep -qE '^(200|404)$' && echo ok || echo "$v") $([ -d "$H/dir" ] && echo dir)"
	# Writes: they may succeed, but inside the sandbox (its /tmp is its own tmpfs).
	v=$(req POST /directories -d "{\"$w/made-$TAG\":{\"mode\":755}}")
	expect_match "mkdir $w/made: answered (${v}), made in the sandbox if at all" '^(200|40[034])$' "$v"
	v=$(upload "$w/planted-$TAG")
	expect_match "upload to $w/planted: answered (${v}), written in the sandbox if at all" '^(200|40[034])$' "$v"
	v=$(req POST /files/mv -d "[{\"src\":\"/work/inside.txt\",\"dest\":\"$w/moved-$TAG\"}]")
	# 500 where the destination is on another mount than /work (EXDEV: the sandbox's /tmp).
	expect_match "mv into $w: answered (${v}), moved in the sandbox if at all" '^(200|40[034]|500)$' "$v"
	[ "$v" = 200 ] && req POST /files/mv -d "[{\"src\":\"$w/moved-$TAG\",\"dest\":\"/work/inside.txt\"}]" >/dev/null
done
expect_eq "the host directory is unchanged (names, modes, sizes, mtimes)" "$h_before" "$(snap "$H")"
expect_eq "... and its file too" "host secret" "$(cat "$H/secret")"
expect_eq "... nothing planted anywhere on the host's /tmp or /work paths" "" \
	"$(ls -d /tmp/*"$TAG"* "$H"/*"$TAG"* 2>/dev/null)"
# Controls: the same routes work on the sandbox's own files.
expect_eq "control: download /work/inside.txt" "200 inside" "$(req GET '/files/download?path=/work/inside.txt') $(cat "$T/body")"
expect_eq "control: info /work/inside.txt" "200" "$(req GET '/files/info?path=/work/inside.txt')"
expect_eq "control: list /work/d" "200" "$(req GET '/directories/list?path=/work/d')"
expect_eq "control: delete /work/d" "200" "$(req DELETE '/directories?path=/work/d')"
expect_eq "control: an upload through abslink lands inside the sandbox, at the link's path there" \
	"200 planted" "$(req GET "/files/download?path=$H/planted-$TAG") $(cat "$T/body")"
# ptrace of the agent from a command it runs (uid 1000): refused. Two layers stop it: the agent
# is another user (root of the sandbox), and sbx's default seccomp profile has no ptrace at all
# (profiles/default.json), which the second half shows: not even the command's own child can be
# traced. A profile that let ptrace through would fail this check at "child=ok".
cmd_out() { # COMMAND -> its stdout
	curl -sN -m 60 -H "X-EXECD-ACCESS-TOKEN: $TOKEN" -H 'Content-Type: application/json' \
		-d "$(jq -cn --arg c "$1" '{command:$c}')" "$URL/command" |
		sed 's/^data: //' | jq -rR 'fromjson? | select(.type=="stdout") | .text' 2>/dev/null | tr -d '\n'
}
PT='import ctypes, errno, os, subprocess
libc = ctypes.CDLL(None, use_errno=True)
def attach(pid):
    r = libc.ptrace(ctypes.c_long(16), ctypes.c_long(pid), None, None)
    return "ok" if r == 0 else errno.errorcode.get(ctypes.get_errno(), "?")
agents = [int(p) for p in os.listdir("/proc") if p.isdigit() and open("/proc/%s/cmdline" % p, "rb").read().split(b"\0")[0].endswith(b"/sbx-agent")]
child = subprocess.Popen(["sleep", "5"])
print("uid=%d agent=%s child=%s" % (os.getuid(), ",".join(attach(p) for p in agents) or "none", attach(child.pid)))'
expect_eq "ptrace of the agent from its command (uid 1000): EPERM; of its own child: EPERM (no ptrace)" \
	"uid=1000 agent=EPERM child=EPERM" "$(cmd_out "python3 -c '$PT'")"
kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; PID=""
"$SBXRUN" delete --force "$TAG" >/dev/null 2>&1
after=$(host_snapshot | grep -F "$TAG")
expect_eq "nothing left on the host (mounts, cgroups, links, state)" "$before" "$after"

finish
