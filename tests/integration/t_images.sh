#!/bin/bash
# OCI images (issue 15): sbxrun pull from real registries (docker-registry with TLS + htpasswd,
# plain HTTP, and Bearer tokens; all on 127.0.0.1 inside a network namespace this test makes),
# the store (layers shared, verified, crash-safe), load from archives, and malicious layers.
. "$(dirname "$0")/../lib.sh"
require_root "images" || finish
for c in docker-registry skopeo htpasswd openssl python3; do
	command -v $c >/dev/null || { skip "images" "$c is not installed (make deps installs it)"; finish; }
done
. "$TOP/tests/images/registry.sh"
MK="python3 $TOP/tests/images/mkimage.py"
TAG=timg$$
tmp=$(mktemp -d /tmp/sbx-t-images.XXXXXX)
chmod 755 "$tmp" # the sandboxes' mapped root must reach the store's layers
export SBX_IMAGES=$tmp/images
mkdir -p "$SBX_IMAGES"
# The built images stay reachable by name ("busybox") through links into the real images dir.
for i in /var/lib/sbx/images/*/; do ln -s "$i" "$SBX_IMAGES/$(basename "$i")"; done
before=$(host_snapshot | grep -F "$TAG")
cleanup() {
	reg_teardown
	rm -rf "$tmp"
}
reg_setup || { not_ok "images: the test registries start"; finish; }
trap 'cleanup' EXIT
ok "images: the test registries start (tls $REG_TLS, plain $REG_PLAIN, token ${REG_TOKEN:-none})"

cat >"$tmp/registries.json" <<EOC
{"insecure": ["$REG_PLAIN"], "certsDir": "$REG_CERTS_DIR"}
EOC
export SBX_REGISTRIES_CONF=$tmp/registries.json
# Every sbx command that talks to a registry runs inside its namespace.
S() { reg_exec env SBX_IMAGES="$SBX_IMAGES" SBX_REGISTRIES_CONF="$SBX_REGISTRIES_CONF" \
	HOME="$tmp/home" "$SBXRUN" "$@"; }
R() { "$SBXRUN" run --id "$TAG-$RANDOM$RANDOM" "$@"; }

# --- test images, built from files ---
BBROOT=/var/lib/sbx/images/busybox/rootfs
mkdir -p "$tmp/app/etc" "$tmp/app/srv/www" "$tmp/app2"
echo "hello from the app layer" >"$tmp/app/srv/www/index.html"
cp "$BBROOT/etc/passwd" "$BBROOT/etc/group" "$tmp/app/etc/"
echo "app:x:4321:4322:app:/home/app:/bin/sh" >>"$tmp/app/etc/passwd"
echo "appgrp:x:4322:" >>"$tmp/app/etc/group"
echo "second image" >"$tmp/app2/only-in-app2"
$MK layout "$tmp/oci" --tag app --layer "$BBROOT" --layer "$tmp/app" \
	--env GREETING=hi-from-config --env PATH=/bin:/sbin --workdir /srv/www --user app:appgrp \
	--entrypoint '["/bin/sh", "-c"]' --cmd '["echo default-cmd $GREETING"]' \
	--expose 8080/tcp >"$tmp/app.json" || not_ok "images: mkimage builds the app image"
$MK layout "$tmp/oci" --tag app2 --layer "$BBROOT" --layer "$tmp/app2" --cmd '["cat", "/only-in-app2"]' \
	>"$tmp/app2.json"
$MK layout "$tmp/oci" --tag multi --multiarch --layer "$BBROOT" --cmd '["true"]' >"$tmp/multi.json"
$MK layer features-lower "$tmp/fl.tar" >/dev/null && $MK layer features "$tmp/f.tar" >/dev/null
$MK layout "$tmp/oci" --tag features --layer "$BBROOT" --layer "$tmp/fl.tar" --layer "$tmp/f.tar" \
	--compression zstd >"$tmp/features.json"
jd() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$@"; }
APP_DIGEST=$(jd "$tmp/app.json" digest)
for t in app app2 multi features; do
	reg_push "oci:$tmp/oci:$t" "team/$t:v1" plain >/dev/null || not_ok "images: push $t (plain)"
done
reg_push "oci:$tmp/oci:app" "team/app:v1" tls >/dev/null || not_ok "images: push app (tls)"
[ -n "$REG_TOKEN" ] && { reg_push "oci:$tmp/oci:app" "team/app:v1" token >/dev/null || not_ok "images: push app (token)"; }
P=$REG_PLAIN

# --- pull and run ---
out=$(S pull -q "$P/team/app:v1" 2>&1); rc=$?
expect_eq "pull by tag exits 0" 0 "$rc"
expect_eq "pull prints the manifest digest the registry has" "$APP_DIGEST" "$out"
expect_eq "the pulled image's Entrypoint + Cmd, Env and User are the defaults" "default-cmd hi-from-config" \
	"$(R --image "$P/team/app:v1" 2>&1)"
expect_eq "the image's WorkingDir and User (name:group from its /etc/passwd, /etc/group)" "/srv/www 4321:4322" \
	"$(R --image "$P/team/app:v1" -- 'echo $(pwd) $(id -u):$(id -g)' 2>&1)"
expect_eq "ARGS replace Cmd, --entrypoint the Entrypoint, --user and -e win" "1000 flag" \
	"$(R --image "$P/team/app:v1" --entrypoint /bin/sh --user 1000 -e GREETING=flag -- -c 'echo $(id -u) $GREETING' 2>&1)"
expect_eq "files of every layer are there" "hello from the app layer" \
	"$(R --image "$P/team/app:v1" -- 'cat index.html' 2>&1)"
expect_eq "writes go to the private layer, the shared layers stay as they were" "x|hello from the app layer" \
	"$(R --image "$P/team/app:v1" --user 0 -- 'echo x > /srv/www/index.html; cat /srv/www/index.html' 2>&1)|$(cat "$SBX_IMAGES"/.oci/layers/*/srv/www/index.html 2>&1)"
expect_eq "--read-only runs a layered image" "EROFS" \
	"$(R --image "$P/team/app:v1" --read-only --user 0 -- 'touch /x 2>/dev/null && echo WROTE || echo EROFS' 2>&1)"
out=$(R --image "$P/team/app:v1" --rootfs-rw -- true 2>&1); rc=$?
expect_eq "--rootfs-rw is refused for shared layers" "125" "$rc"
expect_match "... saying why" "shared and cannot be written" "$out"
expect_eq "by image id (digest prefix)" "default-cmd hi-from-config" \
	"$(R --image "${APP_DIGEST:7:12}" 2>&1)"
out=$(S pull -q "$P/team/app@$APP_DIGEST" 2>&1)
expect_eq "pull by digest" "$APP_DIGEST" "$out"
expect_match "images lists it with its exposed port" '"exposedPorts": \[[^]]*"8080/tcp"' \
	"$(S images --format json 2>&1 | tr -d '\n ' | sed 's/,/, /g;s/:\[/: [/g')"
expect_match "images table" "$P/team/app:v1 +${APP_DIGEST:7:12}" "$(S images 2>&1)"

# --- a second image shares the base layer: only its own layer is downloaded ---
BASE_BLOB=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][0]["digest"])' "$tmp/app2.json")
TOP_BLOB=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][1]["digest"])' "$tmp/app2.json")
TOP_APP_BLOB=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][1]["digest"])' "$tmp/app.json")
reg_log_mark
S pull -q "$P/team/app2:v1" >/dev/null 2>&1
expect_eq "shared base layer: downloaded 0 times, the new layer once" "0 1" \
	"$(reg_blob_gets "$BASE_BLOB" plain) $(reg_blob_gets "$TOP_BLOB" plain)"
expect_eq "... and both images run" "second image" "$(R --image "$P/team/app2:v1" 2>&1)"
expect_eq "one directory per layer: 3 layers for 2 images of 2 layers" "3" "$(ls "$SBX_IMAGES/.oci/layers" | wc -l)"

# --- auth: Basic over TLS, Bearer tokens ---
out=$(S pull "$REG_TLS/team/app:v1" 2>&1); rc=$?
expect_eq "TLS registry without credentials: exit 4" "4" "$rc"
expect_match "... saying it requires credentials" "requires credentials" "$out"
out=$(S pull --creds "$REG_USER:wrong" "$REG_TLS/team/app:v1" 2>&1); rc=$?
expect_eq "wrong password: exit 4" "4" "$rc"
expect_match "... saying authentication failed" "authentication failed" "$out"
expect_eq "--creds over TLS (CA from certs.d/HOST:PORT/ca.crt)" "$APP_DIGEST" \
	"$(S pull -q --creds "$REG_USER:$REG_PASS" "$REG_TLS/team/app:v1" 2>&1)"
expect_eq "credentials from \$REGISTRY_AUTH_FILE" "$APP_DIGEST" \
	"$(reg_exec env SBX_IMAGES="$SBX_IMAGES" SBX_REGISTRIES_CONF="$SBX_REGISTRIES_CONF" \
		REGISTRY_AUTH_FILE="$REG_AUTH_FILE" "$SBXRUN" pull -q "$REG_TLS/team/app:v1" 2>&1)"
echo '{}' >"$tmp/nocerts.json"
out=$(reg_exec env SBX_IMAGES="$SBX_IMAGES" SBX_REGISTRIES_CONF="$tmp/nocerts.json" "$SBXRUN" pull \
	--creds "$REG_USER:$REG_PASS" "$REG_TLS/team/app:v1" 2>&1); rc=$?
expect_match "a registry whose CA is not trusted is refused" "certificate|SSL" "$out"
if [ -n "$REG_TOKEN" ]; then
	expect_eq "Bearer token flow (realm, service, scope)" "$APP_DIGEST" \
		"$(S pull -q --creds "$REG_USER:$REG_PASS" "$REG_TOKEN/team/app:v1" 2>&1)"
	out=$(S pull --creds "$REG_USER:nope" "$REG_TOKEN/team/app:v1" 2>&1); rc=$?
	expect_eq "Bearer with a wrong password: exit 4" "4" "$rc"
else
	skip "Bearer token flow" "registry.sh could not start its token server"
fi
out=$(S pull "$P/team/nothere:v1" 2>&1); rc=$?
expect_eq "unknown repository: exit 3" "3" "$rc"
expect_match "... saying not found" "not found" "$out"
out=$(S pull "$P/team/app:nosuchtag" 2>&1); rc=$?
expect_eq "unknown tag: exit 3" "3" "$rc"
out=$(S pull 'Bad/Ref' 2>&1); rc=$?
expect_match "a malformed reference is named" "invalid image reference .Bad/Ref." "$out"

# --- mirrors: a made-up registry name served by the mirror listed for it (the namespace has no
# route out, so a fallback to the name itself could not leave the host either) ---
cat >"$tmp/mirrors.json" <<EOC
{"mirrors": {"registry.example:5000": ["http://$P"]}}
EOC
out=$(reg_exec env SBX_IMAGES="$SBX_IMAGES" SBX_REGISTRIES_CONF="$tmp/mirrors.json" "$SBXRUN" pull -q \
	registry.example:5000/team/app:v1 2>&1)
expect_eq "a mirror serves a registry's images (same digest)" "$APP_DIGEST" "$out"
expect_match "... recorded under the registry's name" "registry.example:5000/team/app:v1" "$(S images 2>&1)"
echo '{"mirrors": {"registry.example:5000": ["http://127.0.0.1:1"]}}' >"$tmp/mirrors-down.json"
out=$(reg_exec env SBX_IMAGES="$SBX_IMAGES" SBX_REGISTRIES_CONF="$tmp/mirrors-down.json" "$SBXRUN" pull \
	registry.example:5000/team/nothere:v1 2>&1); rc=$?
expect_eq "a mirror that is down falls through to the registry itself (unreachable here: exit 1)" "1" "$rc"
expect_match "... and the error names the registry" "registry.example" "$out"

# --- an index with two platforms ---
expect_eq "an index resolves to this host's platform" "absent" \
	"$(S pull -q "$P/team/multi:v1" >/dev/null 2>&1; R --image "$P/team/multi:v1" -- cat /arch 2>/dev/null || echo absent)"
S pull -q --platform linux/arm64 "$P/team/multi:v1" >/dev/null 2>&1
expect_eq "--platform picks the other one" "$(jd "$tmp/multi.json" manifests | python3 -c 'import ast,sys; print(ast.literal_eval(sys.stdin.read())["linux/arm64/v8"])')" \
	"$(S images --format json --digests 2>/dev/null | python3 -c 'import json,sys; print([i["digest"] for i in json.load(sys.stdin) if i["name"].endswith("multi:v1")][0])')"

# --- layer features: whiteouts, opaque dirs, links, modes, file capabilities, zstd ---
S pull -q "$P/team/features:v1" >/dev/null 2>&1
expect_eq "zstd layers, whiteout and opaque directory as overlayfs sees them" "absent kept upper-only" \
	"$(R --image "$P/team/features:v1" -- sh -c 'cat /removed-file 2>/dev/null || echo absent; cat /kept-file; ls /opaque-dir' 2>&1 | xargs)"
expect_eq "hardlink is one inode, symlinks kept" "1 regular-file /regular-file" \
	"$(R --image "$P/team/features:v1" -- sh -c '[ /hardlink-to-regular -ef /regular-file ] && echo 1; readlink /symlink-relative; readlink /symlink-absolute' 2>&1 | xargs)"
L=$(ls -d "$SBX_IMAGES"/.oci/layers/*/ | while read -r d; do [ -e "$d/setuid-file" ] && echo "$d"; done | head -1)
expect_eq "setuid bit and owners kept, shifted to the sandbox range" "4755 1000000 1001000" \
	"$(stat -c %a "$L/setuid-file") $(stat -c %u "$L/owned-by-0") $(stat -c %u "$L/owned-by-1000")"
expect_eq "file capability rewritten for the sandbox's user namespace (v3, rootid 1000000)" "3 1000000" \
	"$(python3 -c 'import os,struct,sys; v=os.getxattr(sys.argv[1],"security.capability",follow_symlinks=False); m=struct.unpack("<I",v[:4])[0]; print(m>>24, struct.unpack("<I",v[20:24])[0] if len(v)>=24 else "none")' "$L/cap-file" 2>&1)"
expect_eq "device nodes are skipped" "absent" "$( [ -e "$L/dev/char-null" ] && echo present || echo absent)"

# --- malicious layers: refused, nothing outside the store ---
for kind in dotdot absolute symlink-escape hardlink-host hardlink-dotdot; do
	$MK layer $kind "$tmp/bad-$kind.tar" --token "$TAG" >/dev/null
	$MK layout "$tmp/oci" --tag bad-$kind --layer "$tmp/bad-$kind.tar" >/dev/null
	reg_push "oci:$tmp/oci:bad-$kind" "team/bad-$kind:v1" plain >/dev/null
	out=$(S pull "$P/team/bad-$kind:v1" 2>&1); rc=$?
	expect_eq "malicious layer ($kind): pull fails (exit 1)" "1" "$rc"
	expect_match "... with a message naming the entry" "layer entry|hardlink|symlink|\.\." "$out"
done
expect_eq "no escaped file anywhere on the host" "" \
	"$(find / -xdev \( -path /proc -o -path /sys \) -prune -o -name "*$TAG*" -print 2>/dev/null | grep -v "^$tmp" | head -5)"
$MK layer bomb "$tmp/bomb.tar.gz" --token "$TAG" --size $((2 << 30)) >/dev/null
$MK layout "$tmp/oci" --tag bomb --layer "$tmp/bomb.tar.gz" >/dev/null
reg_push "oci:$tmp/oci:bomb" "team/bomb:v1" plain >/dev/null
out=$(S pull --max-layer-size 64M "$P/team/bomb:v1" 2>&1); rc=$?
expect_eq "decompression bomb: stopped at --max-layer-size" "1" "$rc"
expect_match "... saying so" "larger than|max|limit|bound" "$out"
expect_eq "failed pulls leave nothing in tmp/ and no half layer" "0" \
	"$(ls "$SBX_IMAGES/.oci/tmp" | grep -vc '^lock-' ; true)"

# --- a blob whose content does not match its digest ---
data=$(find "$REG_DIR" -path "*blobs/sha256/*/${TOP_BLOB:7}/data" | head -1)
if [ -n "$data" ]; then
	S rmi "$P/team/app2:v1" >/dev/null 2>&1
	cp "$data" "$tmp/saved-blob"; printf 'tampered' | dd of="$data" bs=1 seek=100 conv=notrunc 2>/dev/null
	out=$(S pull "$P/team/app2:v1" 2>&1); rc=$?
	expect_eq "tampered blob: pull fails" "1" "$rc"
	expect_match "... content does not match its digest" "does not match its digest" "$out"
	cp "$tmp/saved-blob" "$data"
	expect_eq "... and nothing of it was kept" "absent" \
		"$( [ -e "$SBX_IMAGES/.oci/layers/$(jd "$tmp/app2.json" layers | python3 -c 'import ast,sys; print(ast.literal_eval(sys.stdin.read())[1]["diff_id"][7:])')" ] && echo present || echo absent)"
else
	not_ok "tampered blob: registry storage not found under $REG_DIR"
fi

# --- kill -9 during a pull, then pull again ---
rm -rf "$SBX_IMAGES/.oci/layers/"* "$SBX_IMAGES/.oci/images/"*
S pull -q "$P/team/app:v1" >/dev/null 2>&1 &
kp=$!
sleep 0.3
for k in $(pgrep -P $kp) $(for c in $(pgrep -P $kp); do pgrep -P $c; done); do kill -KILL $k 2>/dev/null; done
kill -KILL $kp 2>/dev/null; wait $kp 2>/dev/null
expect_eq "after kill -9 mid-pull, the next pull gives the same digest" "$APP_DIGEST" \
	"$(S pull -q "$P/team/app:v1" 2>&1)"
expect_eq "... its image runs" "default-cmd hi-from-config" "$(R --image "$P/team/app:v1" 2>&1)"
expect_eq "... and no tmp entries remain" "0" "$(ls "$SBX_IMAGES/.oci/tmp" | grep -vc '^lock-'; true)"
# Two pulls of the same image at once.
rm -rf "$SBX_IMAGES/.oci/layers/"* "$SBX_IMAGES/.oci/images/"*
S pull -q "$P/team/app:v1" >"$tmp/c1" 2>&1 & c1=$!
S pull -q "$P/team/app:v1" >"$tmp/c2" 2>&1 & c2=$!
wait $c1; r1=$?; wait $c2; r2=$?
expect_eq "two concurrent pulls of one image both succeed" "0 0 $APP_DIGEST $APP_DIGEST" "$r1 $r2 $(cat "$tmp/c1") $(cat "$tmp/c2")"

# --- load from archives ---
$MK docker-archive "$tmp/saved.tar" --tag loaded/dock:1 --layer "$BBROOT" --layer "$tmp/app2" --cmd '["cat", "/only-in-app2"]' >/dev/null
out=$(S load "$tmp/saved.tar" 2>&1)
expect_match "load a docker save archive" "Loaded image: docker.io/loaded/dock:1" "$out"
expect_eq "... and run it" "second image" "$(R --image loaded/dock:1 2>&1)"
$MK layout "$tmp/oci2" --tag app2 --layer "$BBROOT" --layer "$tmp/app2" --cmd '["cat", "/only-in-app2"]' >/dev/null
$MK oci-archive "$tmp/oci2" "$tmp/oci.tar" >/dev/null
out=$(S load "$tmp/oci.tar" 2>&1)
expect_match "load an OCI archive (tags from its index)" "Loaded image: localhost/image:app2" "$out"
echo garbage >"$tmp/garbage.tar"
out=$(S load "$tmp/garbage.tar" 2>&1); rc=$?
expect_eq "load of a file that is no archive: exit 1" "1" "$rc"

# --- in use, rmi, prune ---
"$SBXRUN" run --id "$TAG-hold" --image "$P/team/app:v1" -- 'sleep 30' >/dev/null 2>&1 & hp=$!
for _ in $(seq 50); do "$SBXRUN" state "$TAG-hold" >/dev/null 2>&1 && break; sleep 0.1; done
sleep 0.3
# By id every reference goes (by one name of several, only that name: Docker's untag).
out=$(S rmi "$APP_DIGEST" 2>&1); rc=$?
expect_eq "rmi of an image a sandbox runs: refused" "1" "$rc"
expect_match "... saying it is in use" "in use" "$out"
expect_eq "... and it still runs from it" "default-cmd hi-from-config" "$(R --image "$P/team/app:v1" 2>&1)"
kill -TERM $hp; wait $hp 2>/dev/null
out=$(S rmi "$APP_DIGEST" 2>&1); rc=$?
expect_eq "rmi once the sandbox is gone" "0" "$rc"
expect_match "... untags every name of it" "Untagged: $P/team/app:v1" "$out"
out=$(S rmi "$P/team/app:v1" 2>&1); rc=$?
expect_eq "rmi of an image not there: exit 3" "3" "$rc"
S image prune >/dev/null 2>&1
expect_eq "prune keeps the layers images still use" "default-cmd hi-from-config" \
	"$(S pull -q "$P/team/app:v1" >/dev/null 2>&1; R --image "$P/team/app:v1" 2>&1)"
for r in $(S images --format json 2>/dev/null | python3 -c 'import json,sys; print(" ".join(i["name"] for i in json.load(sys.stdin)))'); do
	S rmi "$r" >/dev/null 2>&1
done
S image prune >/dev/null 2>&1
expect_eq "after rmi of every image and prune: no layers, blobs or records left" "0 0 0" \
	"$(ls "$SBX_IMAGES/.oci/layers" | wc -l) $(ls "$SBX_IMAGES/.oci/blobs/sha256" | wc -l) $(ls "$SBX_IMAGES/.oci/images" | wc -l)"

# --- apid: a create whose image is not pulled yet (202, Pending/IMAGE_PULLING, then Running) ---
APID=$BIN/sbx-apid
AK=key-$$
APORT=$(free_port)
mkdir -p "$tmp/apid-data" "$tmp/apid-run"; chmod 711 "$tmp/apid-run"
# nsenter, not `ip netns exec` (which mounts a sysfs of the netns over /sys, hiding the cgroup
# hierarchies sandboxes need) nor the reg_exec function ($! must be apid itself, not a subshell).
nsenter --net="/run/netns/$REG_NS" env SBX_REGISTRIES_CONF="$SBX_REGISTRIES_CONF" "$APID" --listen 127.0.0.1:$APORT \
	--data-dir "$tmp/apid-data" --run-dir "$tmp/apid-run" --images-dir "$SBX_IMAGES" --agent none \
	--bridge none --api-key "$AK" >"$tmp/apid.log" 2>&1 &
apid_pid=$!
A() { # METHOD PATH [BODY]: prints the status line then the body
	reg_exec curl -s -X "$1" -H "OPEN-SANDBOX-API-KEY: $AK" ${3:+-H 'Content-Type: application/json' --data-binary "$3"} \
		-w '\n%{http_code}' "http://127.0.0.1:$APORT$2"
}
for _ in $(seq 100); do reg_exec curl -s -o /dev/null "http://127.0.0.1:$APORT/health" && break; sleep 0.05; done
state_of() { A GET "/v1/sandboxes/$1" | head -n -1 | jq -r '.status.state + " " + (.status.reason // "")'; }
wait_state() { # ID STATE...: waits (bounded) until the sandbox is in one of the states; prints it
	local st=""
	for _ in $(seq 300); do
		st=$(state_of "$1")
		for w in "${@:2}"; do [ "${st%% *}" = "$w" ] && { echo "$st"; return; }; done
		sleep 0.1
	done
	echo "$st"
}
reg_log_mark
body='{"image":{"uri":"'$P'/team/app:v1"},"entrypoint":["/bin/sh","-c","sleep 60"],"timeout":300}'
r1=$(A POST /v1/sandboxes "$body"); r2=$(A POST /v1/sandboxes "$body")
id1=$(echo "$r1" | head -n -1 | jq -r .id); id2=$(echo "$r2" | head -n -1 | jq -r .id)
expect_eq "apid: create with an image not pulled yet answers 202 at once" "202 202" "$(echo "$r1" | tail -1) $(echo "$r2" | tail -1)"
expect_match "... Pending, reason IMAGE_PULLING" "Pending IMAGE_PULLING" "$(echo "$r1" | head -n -1 | jq -r '.status.state + " " + .status.reason')"
expect_eq "... then Running" "Running Running" "$(wait_state "$id1" Running Failed | cut -d' ' -f1) $(wait_state "$id2" Running Failed | cut -d' ' -f1)"
expect_eq "... two creates of one image shared one pull (its top layer fetched once)" "1" "$(reg_blob_gets "$TOP_APP_BLOB" plain)"
expect_match "apid: GET /v1/images lists it, in use" "\"name\":\"$P/team/app:v1\".*\"inUse\":true" "$(A GET /v1/images | head -n -1)"
out=$(A DELETE "/v1/images/$P/team/app:v1")
expect_eq "apid: DELETE /v1/images/{ref} of an image in use: 409" "409" "$(echo "$out" | tail -1)"
id3=$(A POST /v1/sandboxes '{"image":{"uri":"'$P'/team/app:nosuchtag"},"entrypoint":["true"]}' | head -n -1 | jq -r .id)
expect_eq "apid: unknown tag ends Failed, IMAGE_NOT_FOUND" "Failed IMAGE_NOT_FOUND" "$(wait_state "$id3" Failed Running)"
id4=$(A POST /v1/sandboxes '{"image":{"uri":"'$REG_TLS'/team/app:v1","auth":{"username":"'$REG_USER'","password":"wrong"}},"entrypoint":["true"]}' | head -n -1 | jq -r .id)
expect_eq "apid: wrong image.auth ends Failed, IMAGE_AUTH_FAILED" "Failed IMAGE_AUTH_FAILED" "$(wait_state "$id4" Failed Running)"
id5=$(A POST /v1/sandboxes '{"image":{"uri":"'$REG_TLS'/team/app:v1","auth":{"username":"'$REG_USER'","password":"'$REG_PASS'"}},"entrypoint":["/bin/sh","-c","sleep 60"]}' | head -n -1 | jq -r .id)
expect_eq "apid: image.auth over TLS: Running" "Running" "$(wait_state "$id5" Running Failed | cut -d' ' -f1)"
expect_eq "apid: image.auth is never echoed" "null" "$(A GET "/v1/sandboxes/$id5" | head -n -1 | jq -c '.image.auth')"
out=$(A POST /v1/sandboxes '{"image":{"uri":"Bad/Ref"},"entrypoint":["true"]}')
expect_eq "apid: a malformed reference: 400, nothing created" "400" "$(echo "$out" | tail -1)"
m=$(reg_exec curl -s "http://127.0.0.1:$APORT/metrics")
expect_match "apid: /metrics counts pulls and failures" "sbx_image_pulls_total [3-9].*sbx_image_pull_failures_total [2-9]" "$(echo "$m" | grep -E '^sbx_image_pull(s|_failures)_total' | xargs)"
for id in $id1 $id2 $id3 $id4 $id5; do A DELETE "/v1/sandboxes/$id" >/dev/null; done
out=$(A DELETE "/v1/images/$P/team/app:v1")
expect_eq "apid: DELETE /v1/images/{ref} once unused: 200" "200" "$(echo "$out" | tail -1)"
out=$(A DELETE "/v1/images/$P/team/app:v1")
expect_eq "apid: ... and then 404" "404" "$(echo "$out" | tail -1)"
expect_nomatch "apid: ... whose message names no sbxrun command (apid's users have none)" "sbxrun" "$(echo "$out" | head -n -1)"
kill -TERM $apid_pid; wait $apid_pid 2>/dev/null; grep -iE "warn|error|fail" "$tmp/apid.log" | head -5 | sed "s/^/    apid: /"

expect_eq "images: host left as it was (mounts, cgroups, links, state)" "$before" "$(host_snapshot | grep -F "$TAG")"
finish
