#!/bin/bash
# Volumes (issue 21) against a real sbx-apid on 127.0.0.1 with its own data and run directories,
# and sbxrun --volume: named (pvc) volumes kept across sandboxes and an apid kill -9, shared by
# two live sandboxes, read-only enforced (write and remount fail), owned as docs/volumes.md
# says; host volumes only below --volume-root; every path escape (a symlink out of the root or
# out of the volume, `..`, an absolute subPath, a missing path) a 400 that creates nothing; a
# volume in use cannot be deleted. The runtime's own check (a bind source swapped for a symlink
# after apid's check) is tested directly with an OCI bundle.
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/api/api_lib.sh"
AGENT=${SBX_APID_AGENT:-$BIN/sbx-agent}
[ "$AGENT" = none ] || [ -x "$AGENT" ] || AGENT=none
api_prepare "volumes" vol
VOLS=$DATA/volumes
IMGS=$T/images
mkdir -p "$IMGS" && chmod 755 "$IMGS"
for i in "$SBX_IMAGES"/*/; do ln -s "$i" "$IMGS/$(basename "$i")"; done
# The sandbox id range: /etc/subuid's entry for user sbx, else 1000000 (docs/volumes.md).
BASE_UID=$(awk -F: '$1=="sbx" && $3>=65536 {print $2; exit}' /etc/subuid 2>/dev/null)
BASE_UID=${BASE_UID:-1000000}
BASE_GID=$(awk -F: '$1=="sbx" && $3>=65536 {print $2; exit}' /etc/subgid 2>/dev/null)
BASE_GID=${BASE_GID:-1000000}

# Host volume roots: one allowed, one outside it, and symlinks that lead out.
HROOT=$T/hostroot OUTSIDE=$T/outside
mkdir -p "$HROOT/shared/sub" "$OUTSIDE"
echo secret >"$OUTSIDE/secret"
echo host-data >"$HROOT/shared/sub/file"
ln -s "$OUTSIDE" "$HROOT/evil"               # absolute, out of the root
ln -s ../../outside "$HROOT/shared/esc"      # relative, out of the root
ln -s sub "$HROOT/shared/inside"             # relative, stays inside: allowed
chmod 755 "$HROOT" "$HROOT/shared/sub" "$OUTSIDE"
chmod 777 "$HROOT/shared" # written by the sandbox's (unprivileged on the host) uid
# A cgroup parent of our own: other suites' sandboxes (outside the lock) cannot change the count.
CGP=sbx-voltest-$$
count_cgroups() { find /sys/fs/cgroup -maxdepth 6 -type d -path "*/$CGP*" 2>/dev/null | wc -l; }
before=$(host_snapshot)

# The second root is given through an (absolute) symlink: apid canonicalizes it.
mkdir -p "$T/second" && chmod 755 "$T/second" && echo second > "$T/second/f"
ln -s "$T/second" "$T/second-link"
start_apid() {
	apid_launch --listen 127.0.0.1:$PORT --data-dir "$DATA" --run-dir "$RUN" --agent "$AGENT" --images-dir "$IMGS" \
		--bridge none --api-key "$KEY" --volume-root "$HROOT" --volume-root "$T/second-link" \
		--cgroup-parent "$CGP" "$@"
}
cleanup() {
	[ -n "$APID_PID" ] || start_apid >/dev/null 2>&1
	delete_all
	stop_apid TERM
	# apid leaves the (empty) levels of a --cgroup-parent it created behind; ours, so removed.
	for d in $(find /sys/fs/cgroup -maxdepth 6 -depth -type d -path "*/$CGP*" 2>/dev/null); do
		rmdir "$d" 2>/dev/null || echo "# cgroup $d is not empty"
	done
	[ -n "${CLI_ID:-}" ] && "$BIN/sbxrun" --root "$T/cli-run" delete --force "$CLI_ID" >/dev/null 2>&1
}
trap 'cleanup; rm -rf "$T"' EXIT

# create VOLUMES_JSON SCRIPT → ID (the script runs as the entrypoint, then the sandbox sleeps)
create() {
	local body
	body=$(jq -nc --argjson v "$1" --arg s "$2; exec sleep 1000" \
		'{image:{uri:"local/busybox"}, entrypoint:["sh","-c",$s], timeout:600, volumes:$v}')
	api POST /v1/sandboxes "$body"; ID=$(jqb .id)
	[ "$CODE" = 202 ] || echo "create failed: $CODE $BODY" >&2
}
del() { api DELETE "/v1/sandboxes/$1"; }
wait_file() { # PATH: bounded wait until it exists and is not empty
	for _ in $(seq 150); do [ -s "$1" ] && return 0; sleep 0.1; done
	return 1
}
count_sandboxes() { api GET "/v1/sandboxes?pageSize=200"; jqb '.pagination.totalItems'; }
count_dirs() { ls "$RUN/.sandboxes" 2>/dev/null | wc -l; }
count_vols() { ls -A "$VOLS" 2>/dev/null | wc -l; }
# refused NAME VOLUMES_JSON PATTERN: 400 whose message matches PATTERN, and nothing created
refused() {
	local n0 d0 v0 c0
	n0=$(count_sandboxes) d0=$(count_dirs) v0=$(count_vols)
	c0=$(count_cgroups)
	create "$2" "true"
	expect_match "$1 → 400" "^400 SANDBOX::INVALID_PARAMETER .*$3" "$CODE $(jqb .code) $(jqb .message)"
	expect_eq "$1: nothing created (rows, sandbox dirs, volumes, cgroups)" "$n0 $d0 $v0 $c0" \
		"$(count_sandboxes) $(count_dirs) $(count_vols) $(count_cgroups)"
}
pvc() { # NAME CLAIM MOUNT [ro] [subPath]
	jq -nc --arg n "$1" --arg c "$2" --arg m "$3" --arg ro "${4:-}" --arg sp "${5:-}" \
		'{name:$n, mountPath:$m, readOnly:($ro=="ro"), pvc:{claimName:$c}} + (if $sp=="" then {} else {subPath:$sp} end)'
}
hostv() { # NAME PATH MOUNT [ro] [subPath]
	jq -nc --arg n "$1" --arg p "$2" --arg m "$3" --arg ro "${4:-}" --arg sp "${5:-}" \
		'{name:$n, mountPath:$m, readOnly:($ro=="ro"), host:{path:$p}} + (if $sp=="" then {} else {subPath:$sp} end)'
}

start_apid || { not_ok "apid starts"; finish; }
ok "apid starts"
expect_eq "apid.db is owner-only (the data dir is traversable for volumes)" 600 "$(stat -c %a "$DATA/apid.db")"

# ---- named volumes: one sandbox writes, the next reads
create "[$(pvc work ws /w)]" 'id -u > /w/uid; echo from-a > /w/f'
A=$ID
check "sandbox A with a new named volume is created" test "$CODE" = 202
check "A's write reaches the volume" wait_file "$VOLS/ws/f"
check "the cgroup counter sees a live sandbox (so 'nothing created' can fail)" test "$(count_cgroups)" -gt 0
expect_eq "A wrote its data" from-a "$(cat "$VOLS/ws/f" 2>/dev/null)"
api GET "/v1/sandboxes/$A"
expect_eq "GET shows the volume" "work /w ws false" \
	"$(jqb '.volumes[0] | "\(.name) \(.mountPath) \(.pvc.claimName) \(.readOnly)"')"
ann=$("$BIN/sbxrun" --root "$RUN" state "$A" | jq -r '.annotations["run.sbx.volumes"]' | jq -c '.[0]')
expect_eq "sbxrun state shows the volume (annotation run.sbx.volumes)" \
	'{"name":"work","mountPath":"/w","readOnly":false,"claimName":"ws"}' "$ann"
# Ownership as docs/volumes.md says: the volume is the sandbox user's (1000:1000 inside), and a
# file is owned on the host by the id range's base + the writer's uid inside.
expect_eq "a new volume is owned by sandbox uid 1000 (host $((BASE_UID + 1000)):$((BASE_GID + 1000)))" \
	"$((BASE_UID + 1000)):$((BASE_GID + 1000)) 775" "$(stat -c '%u:%g %a' "$VOLS/ws")"
inner=$(cat "$VOLS/ws/uid" 2>/dev/null)
expect_eq "a file the sandbox writes is owned by host uid base+uid inside ($inner)" \
	"$((BASE_UID + ${inner:-99999}))" "$(stat -c %u "$VOLS/ws/f" 2>/dev/null)"
del "$A"
create "[$(pvc work ws /w),$(pvc res res /res)]" \
	'cat /w/f > /w/read-by-b; i=0; while [ $i -lt 300 ]; do [ -e /res/c-started ] && { echo b-live > /w/b-live; break; }; sleep 0.1; i=$((i+1)); done'
B=$ID
check "B reads what A wrote" wait_file "$VOLS/ws/read-by-b"
expect_eq "B read A's data" from-a "$(cat "$VOLS/ws/read-by-b" 2>/dev/null)"

# ---- two live sandboxes share it; read-only is enforced
create "[$(pvc work ws /w ro),$(pvc res res /res)]" \
	'id -u > /res/c-uid; touch /res/c-started; i=0; while [ $i -lt 300 ]; do [ -e /w/b-live ] && { cat /w/b-live > /res/c-saw-b; break; }; sleep 0.1; i=$((i+1)); done;
	 (echo x > /w/new) 2>/dev/null; echo $? > /res/ro-write;
	 mount -o remount,rw /w 2>/dev/null; mount -o remount,rw,bind /w 2>/dev/null; echo $? > /res/remount;
	 (echo y > /w/new2) 2>/dev/null; echo $? > /res/ro-write2'
C=$ID
check "C (read-only) sees what B writes while both run" wait_file "$T/data/volumes/res/c-saw-b"
expect_eq "live sharing between B and C" b-live "$(cat "$VOLS/res/c-saw-b" 2>/dev/null)"
wait_file "$VOLS/res/ro-write2" >/dev/null
echo "# C's entrypoint runs as uid $(cat "$VOLS/res/c-uid" 2>/dev/null) inside"
expect_match "read-only: a write fails" '^[1-9]' "$(cat "$VOLS/res/ro-write" 2>/dev/null)"
expect_match "read-only: mount -o remount,rw fails" '^[1-9]' "$(cat "$VOLS/res/remount" 2>/dev/null)"
expect_match "read-only: still not writable after the remount attempt" '^[1-9]' "$(cat "$VOLS/res/ro-write2" 2>/dev/null)"
check "read-only: nothing reached the host" test ! -e "$VOLS/ws/new" -a ! -e "$VOLS/ws/new2"
api GET /v1/volumes/ws
expect_eq "GET /v1/volumes/ws lists both users" "$(printf '%s\n' "$B" "$C" | sort | tr '\n' ' ')" \
	"$(jqb '.inUseBy[]' | sort | tr '\n' ' ')"

# ---- a volume in use cannot be deleted; it can be afterwards
api DELETE /v1/volumes/ws
expect_match "DELETE a volume in use → 409 naming the sandbox" "^409 SANDBOX::STATE_CONFLICT .*$B" "$CODE $(jqb .code) $(jqb .message)"
check "the volume is still there" test -s "$VOLS/ws/f"
del "$B"; del "$C"
api DELETE /v1/volumes/ws
expect_eq "DELETE after its sandboxes are gone → 204" 204 "$CODE"
check "the volume directory is removed" test ! -e "$VOLS/ws"
api GET /v1/volumes/ws
expect_eq "GET a removed volume → 404" "404 SANDBOX::NOT_FOUND" "$CODE $(jqb .code)"
api DELETE /v1/volumes/ws
expect_eq "DELETE it again → 404" 404 "$CODE"

# ---- /v1/volumes: create, list, names, refused size limits
api POST /v1/volumes '{"name":"made"}'
expect_eq "POST /v1/volumes → 201" "201 made" "$CODE $(jqb .name)"
api POST /v1/volumes '{"name":"made"}'
expect_eq "POST an existing volume → 409" 409 "$CODE"
api GET /v1/volumes
expect_match "GET /v1/volumes lists it" '(^| )made( |$)' "$(jqb '.items[].name' | tr '\n' ' ')"
for bad in '{"name":"Bad_Name"}' '{"name":"-x"}' '{"name":"../x"}' '{"name":""}' '{}' '[]' \
	"{\"name\":\"$(printf 'a%.0s' $(seq 64))\"}"; do
	api POST /v1/volumes "$bad"
	expect_eq "POST /v1/volumes $bad → 400" "400 SANDBOX::INVALID_PARAMETER" "$CODE $(jqb .code)"
done
api POST /v1/volumes '{"name":"sized","storage":"1Gi"}'
expect_match "a size limit is refused, not ignored" '^400 .*not supported' "$CODE $(jqb .message)"
check "a refused POST creates nothing" test ! -e "$VOLS/sized"
api GET /v1/volumes/Bad_Name
expect_eq "GET a bad volume name → 400" 400 "$CODE"

# ---- create-time refusals: names, backends, fields (400, nothing created)
refused "bad volume name" "[{\"name\":\"Bad\",\"mountPath\":\"/m\",\"pvc\":{\"claimName\":\"x1\"}}]" 'DNS label'
refused "bad claim name" "[$(pvc m UPPER /m)]" 'claimName'
refused "unknown backend ossfs" '[{"name":"m","mountPath":"/m","ossfs":{"bucket":"b","endpoint":"e","accessKeyId":"k","accessKeySecret":"s"}}]' 'backend `ossfs`'
refused "unknown backend nfs" '[{"name":"m","mountPath":"/m","nfs":{"server":"x"}}]' 'backend `nfs`'
refused "pvc size limit" '[{"name":"m","mountPath":"/m","pvc":{"claimName":"x2","storage":"1Gi"}}]' 'not supported'
refused "createIfNotExists false on a missing volume" '[{"name":"m","mountPath":"/m","pvc":{"claimName":"x3","createIfNotExists":false}}]' 'does not exist'
refused "reserved mountPath" "[$(pvc m x4 /proc/x)]" 'reserved'

# ---- subPath: inside the volume only
mkdir -p "$VOLS/made/sub" "$VOLS/other"
echo sub-data >"$VOLS/made/sub/file"
ln -s / "$VOLS/made/abs-out"
ln -s ../other "$VOLS/made/rel-out"
chown -R "$((BASE_UID + 1000)):$((BASE_GID + 1000))" "$VOLS/made/sub"
refused "subPath with .." "[$(pvc m made /m '' ../other)]" 'subPath'
refused "subPath absolute" "[$(pvc m made /m '' /etc)]" 'subPath'
refused "subPath symlink to /" "[$(pvc m made /m '' abs-out)]" 'leads out of the volume'
refused "subPath symlink to a sibling volume" "[$(pvc m made /m '' rel-out)]" 'leads out of the volume'
refused "subPath missing" "[$(pvc m made /m '' nope)]" 'does not exist'
refused "host subPath symlink out of the root" "[$(hostv m "$HROOT/shared" /m '' esc)]" 'leads out of the volume'
create "[$(pvc m made /m '' sub)]" 'cat /m/file > /m/seen'
S=$ID
check "subPath mounts the subdirectory" wait_file "$VOLS/made/sub/seen"
expect_eq "subPath: the sandbox saw the subdirectory's content" sub-data "$(cat "$VOLS/made/sub/seen" 2>/dev/null)"
del "$S"

# ---- host volumes: only below --volume-root, never through a symlink out of it
refused "host path outside the allowed roots" "[$(hostv m "$OUTSIDE" /m)]" "$OUTSIDE.*not below an allowed volume root"
refused "host path through a symlink out of the root" "[$(hostv m "$HROOT/evil" /m)]" "$HROOT/evil.*leads out"
refused "host path below a symlink out of the root" "[$(hostv m "$HROOT/evil/secret" /m)]" "$HROOT/evil/secret.*leads out"
refused "host path with .." "[$(hostv m "$HROOT/../outside" /m)]" 'absolute host path'
refused "missing host path" "[$(hostv m "$HROOT/nope" /m)]" "$HROOT/nope"
refused "the root's parent" "[$(hostv m "$T" /m)]" "not below an allowed volume root"
create "[$(hostv h "$HROOT/shared" /h),$(hostv r "$HROOT/shared" /r ro inside),$(hostv s "$T/second-link" /s ro)]" \
	'cat /r/file > /h/seen; cat /s/f > /h/second; echo from-sb > /h/from-sb; (echo x > /r/w) 2>/dev/null; echo $? > /h/ro-write'
H=$ID
check "a host volume is bound" wait_file "$HROOT/shared/ro-write"
expect_eq "host volume: the sandbox wrote to the host directory" from-sb "$(cat "$HROOT/shared/from-sb" 2>/dev/null)"
expect_eq "host volume: a read-only host volume with a subPath (symlink inside the root) reads" host-data "$(cat "$HROOT/shared/seen" 2>/dev/null)"
expect_match "host volume: the read-only one refuses writes" '^[1-9]' "$(cat "$HROOT/shared/ro-write" 2>/dev/null)"
check "host volume: nothing written through the read-only mount" test ! -e "$HROOT/shared/sub/w"
expect_eq "host volume: a root given through a symlink works" second "$(cat "$HROOT/shared/second" 2>/dev/null)"
del "$H"
stop_apid TERM
APID_PID=
"$APID" --listen 127.0.0.1:$PORT --data-dir "$DATA" --run-dir "$RUN" --agent "$AGENT" --images-dir "$IMGS" \
	--bridge none --volume-root / >"$T/root.log" 2>&1
expect_match "--volume-root / is refused at start-up" 'volume-root `/`' "$(cat "$T/root.log")"
start_apid || not_ok "apid restarts"
api POST /v1/sandboxes "{\"image\":{\"uri\":\"local/busybox\"},\"entrypoint\":[\"true\"],\"volumes\":[$(hostv m "$HROOT/shared" /m)]}"
expect_eq "host volumes work again after a restart" 202 "$CODE"
del "$(jqb .id)"

# ---- a volume and its users survive apid kill -9
create "[$(pvc k keep /k)]" 'echo kept > /k/f'
K=$ID
wait_file "$VOLS/keep/f" >/dev/null
stop_apid KILL
start_apid || not_ok "apid restarts after kill -9"
api GET /v1/volumes/keep
expect_eq "after kill -9 the volume and its user are known" "keep $K" "$(jqb '"\(.name) \(.inUseBy[0])"')"
api DELETE /v1/volumes/keep
expect_eq "after kill -9 the volume in use still cannot be deleted" 409 "$CODE"
del "$K"
create "[$(pvc k keep /k)]" 'cat /k/f > /k/again'
check "the data written before kill -9 is read by a new sandbox" wait_file "$VOLS/keep/again"
expect_eq "kept data" kept "$(cat "$VOLS/keep/again" 2>/dev/null)"
del "$ID"
api DELETE /v1/volumes/keep
expect_eq "then it can be deleted" 204 "$CODE"

# ---- the runtime's own check: a bind source that leads out of its root at mount time (as if
# a path were swapped for a symlink after apid checked it) fails the start; nothing escapes.
B2=$T/bundle
mkdir -p "$B2"
ln -s "$OUTSIDE" "$HROOT/swapped"
# Relative: the runtime looks at the rootfs from below its scratch root.
ln -s "$(realpath --relative-to="$B2" "$SBX_IMAGES/busybox/rootfs")" "$B2/rootfs"
if (cd "$B2" && { runc spec 2>/dev/null || crun spec 2>/dev/null; }) && [ -s "$B2/config.json" ]; then
	jq --arg root "$HROOT" '
		.mounts += [{destination:"/x", type:"bind", source:($root + "/swapped"),
		             options:["rbind","nosuid","nodev","ro",("sbx.beneath=" + $root)]},
		            {destination:"/y", type:"bind", source:($root + "/shared/inside"),
		             options:["rbind","nosuid","nodev","ro",("sbx.beneath=" + $root)]}]
		| .process.args = ["cat","/x/secret"] | .process.terminal = false | .root.readonly = true' \
		"$B2/config.json" >"$B2/c.json" && mv "$B2/c.json" "$B2/config.json"
	out=$("$BIN/sbxrun" --root "$T/cli-run" run --bundle "$B2" swapcheck 2>&1); rc=$?
	expect_match "runtime: a bind source leading out of its root is refused at mount time" 'leads out of' "$out (rc $rc)"
	check "runtime: the outside file was not read" test "$(printf '%s' "$out" | grep -c secret)" = 0
	# The same bundle with a source that stays inside (through a relative symlink) runs.
	jq '.mounts |= map(select(.destination != "/x")) | .process.args = ["cat","/y/file"]' \
		"$B2/config.json" >"$B2/c.json" && mv "$B2/c.json" "$B2/config.json"
	out=$("$BIN/sbxrun" --root "$T/cli-run" run --bundle "$B2" swapcheck2 2>&1)
	expect_eq "runtime: a source below its root (through a symlink inside it) is bound" host-data "$out"
else
	skip "runtime check" "neither runc nor crun can write a default OCI config"
fi

# ---- sbxrun --volume
CV=$T/cli-vols
out=$("$BIN/sbxrun" --root "$T/cli-run" run -q --image busybox --volumes-dir "$CV" --volume cv:/v -- sh -c 'echo cli > /v/f; id -u' 2>&1)
expect_eq "sbxrun --volume: the sandbox writes as uid 1000 by default" 1000 "$out"
expect_eq "sbxrun --volume: data on the host, owned by base+1000" "cli $((BASE_UID + 1000))" "$(cat "$CV/cv/f" 2>/dev/null) $(stat -c %u "$CV/cv/f" 2>/dev/null)"
out=$(SBX_VOLUMES_DIR=$CV "$BIN/sbxrun" --root "$T/cli-run" run -q --image busybox --volume cv:/v:ro -- sh -c 'cat /v/f; (echo x > /v/g) 2>/dev/null; echo w=$?' 2>&1)
expect_match "sbxrun --volume (SBX_VOLUMES_DIR): the next run reads it, read-only refuses writes" '^cli w=[1-9]' "$(echo $out)"
out=$("$BIN/sbxrun" --root "$T/cli-run" run -q --image busybox --volumes-dir "$CV" -u 0 --volume cv:/v:ro -- sh -c 'mount -o remount,rw,bind /v 2>/dev/null; echo m=$?; touch /v/h 2>/dev/null; echo t=$?' 2>&1)
expect_match "sbxrun --volume :ro as root: remount and write fail" '^m=[1-9] t=[1-9]$' "$(echo $out)"
CLI_ID=volcli$$
"$BIN/sbxrun" --root "$T/cli-run" run -q -d --id "$CLI_ID" --image busybox --volumes-dir "$CV" --volume cv:/v:ro -- sleep 100 >/dev/null 2>&1
expect_eq "sbxrun state shows the volume" "cv /v true" \
	"$("$BIN/sbxrun" --root "$T/cli-run" state "$CLI_ID" 2>/dev/null | jq -r '.annotations["run.sbx.volumes"]' | jq -r '.[0] | "\(.name) \(.mountPath) \(.readOnly)"')"
"$BIN/sbxrun" --root "$T/cli-run" delete --force "$CLI_ID" >/dev/null 2>&1; CLI_ID=
for bad in "Bad:/v" "cv:rel" "cv:/v:rx" "cv" "../x:/v"; do
	"$BIN/sbxrun" --root "$T/cli-run" run -q --image busybox --volumes-dir "$CV" --volume "$bad" -- true 2>"$T/err"
	expect_eq "sbxrun --volume $bad → exit 125 naming it" "125 1" "$? $(grep -c -- "--volume \`$bad\`" "$T/err")"
done
"$BIN/sbxrun" --root "$T/cli-run" run -q --image busybox --volumes-dir "$CV" --cap-add SYS_ADMIN --volume cv:/v:ro -- true 2>"$T/err"
expect_eq "sbxrun: a read-only volume with CAP_SYS_ADMIN is refused" "125 1" "$? $(grep -c 'remount' "$T/err")"
check "sbxrun: refused flags created no volume" test ! -e "$CV/Bad" -a ! -e "$CV/x"

cleanup
APID_PID=
trap 'rm -rf "$T"' EXIT
after=$(host_snapshot)
expect_eq "no mount, cgroup or state left behind" "$before" "$after"
finish
