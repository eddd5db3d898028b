#!/bin/bash
# Images rebuilt while sandboxes start from them (rootfs/build-images.sh, runtime/lib/container.c
# hold_built_image()): <name> is a symlink switched with one rename to a new tree, a sandbox keeps
# the tree it started on until it ends, and a builder removes the trees no sandbox holds. The
# builder runs only on a temporary images dir of this file's own, never on $SBX_IMAGES of the
# other tests: everything lives under one temp dir, and every process is stopped by its pid.
. "$(dirname "$0")/../lib.sh"
require_root "rootfs" || finish
[ -x /bin/busybox ] || { skip "rootfs" "no /bin/busybox (busybox-static)"; finish; }
command -v jq >/dev/null && command -v flock >/dev/null || { skip "rootfs" "jq or flock missing"; finish; }
LOOP=${SBX_ROOTFS_LOOP_SECONDS:-20}

TMP=$(mktemp -d /tmp/sbx-t-rootfs.XXXXXX)
chmod 755 "$TMP" # the sandboxes' mapped root reaches the images below it
export SBX_IMAGES=$TMP/images
case $SBX_IMAGES in /tmp/sbx-t-rootfs.*/images) ;; *) not_ok "images dir is a temporary one"; finish ;; esac
ROOT=$TMP/state
BUILD() { timeout 120 sh "$TOP/rootfs/build-images.sh" "$@"; }
S() { timeout 30 "$SBXRUN" --root "$ROOT" "$@"; }
BG=()
cleanup() {
	for p in "${BG[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	for id in $(ls "$ROOT" 2>/dev/null); do "$SBXRUN" --root "$ROOT" delete --force "$id" >/dev/null 2>&1; done
	rm -rf "$TMP"
}
trap cleanup EXIT
trees() { (cd "$SBX_IMAGES" && ls -d .busybox.* 2>/dev/null | sort | xargs); }
target() { readlink "$SBX_IMAGES/busybox"; }
# What a sandbox sees of its image: busybox runs, and the names in its directories (a tree half
# built or half removed has fewer); printed twice, apart, so that a tree removed under a running
# sandbox shows too.
VIEW='v() { /bin/busybox true && ls /bin /sbin /usr/bin /usr/sbin /etc | md5sum; }; v; sleep 0.2; v'
view() { S run --image busybox --read-only --net none -- sh -c "$VIEW" 2>&1; }

# --- layout, idempotence, the older layout ---
BUILD busybox >"$TMP/build.log" 2>&1 || { not_ok "first build"; sed 's/^/    /' "$TMP/build.log"; finish; }
expect_match "busybox is a symlink to a tree .busybox.*" '^\.busybox\.[A-Za-z0-9]+$' "$(target)"
expect_eq "the tree has rootfs/, .stamp and .lock; busybox/rootfs reaches it" "yes" \
	"$([ -d "$SBX_IMAGES/busybox/rootfs/bin" ] && [ -s "$SBX_IMAGES/busybox/.stamp" ] && [ -f "$SBX_IMAGES/busybox/.lock" ] && echo yes)"
t1=$(target)
out=$(BUILD busybox 2>&1)
expect_eq "unchanged inputs: no rebuild (same tree, nothing built)" "$t1 no" \
	"$(target) $(echo "$out" | grep -q ready && echo built || echo no)"
out=$(view)
REF=$(echo "$out" | sed -n 1p)
expect_match "a sandbox runs busybox and lists its image" '^[0-9a-f]{32}  -$' "$REF"
expect_eq "... the same twice" "$REF"$'\n'"$REF" "$out"
H=${REF%% *} # the hash alone
# An images dir of the older builder: <name> a directory (its stamp of an older script).
rm "$SBX_IMAGES/busybox" && mv "$SBX_IMAGES/$t1" "$SBX_IMAGES/busybox" && echo old >"$SBX_IMAGES/busybox/.stamp"
rm -f "$SBX_IMAGES/busybox/.lock"
expect_eq "a sandbox starts on an older plain directory (no hold)" "$REF" "$(view | sed -n 2p)"
BUILD busybox >"$TMP/build.log" 2>&1
expect_eq "a build turns it into the link to one new tree" "$(target)" "$(trees)"

# --- a running sandbox keeps its tree; the next build after it ended removes it ---
t2=$(target)
S run --id held --image busybox --read-only --net none -- sh -c "sleep 2; $VIEW" >"$TMP/held.out" 2>&1 & p=$!; BG+=("$p")
for _ in $(seq 100); do [ "$(jq -r .status "$ROOT/held/state.json" 2>/dev/null)" = running ] && break; sleep 0.05; done
expect_eq "the sandbox's record names its tree's rootfs" "$SBX_IMAGES/$t2/rootfs" "$(jq -r .rootfs "$ROOT/held/state.json" 2>/dev/null)"
BUILD --force busybox >"$TMP/build.log" 2>&1
t3=$(target)
expect_eq "a rebuild while it runs: a new tree, the held one kept" "$(printf '%s\n' "$t2" "$t3" | sort | xargs)" "$(trees)"
wait "$p"
expect_eq "the sandbox saw its whole image to its end" "$H $H" "$(xargs <"$TMP/held.out" | awk '{print $1, $3}')"
BUILD busybox >"$TMP/build.log" 2>&1
expect_eq "once it ended, the next build removes the old tree" "$t3" "$(trees)"

# --- a config made before a rebuild (as apid writes one before its monitor starts the
# sandbox) whose tree is gone starts on the image's current tree ---
mkdir -p "$TMP/b"
jq -n --arg root "$SBX_IMAGES/$t3/rootfs" --arg img "$SBX_IMAGES/busybox" --arg view "$VIEW" '{
	ociVersion: "1.0.2",
	process: {terminal: false, user: {uid: 0, gid: 0}, args: ["sh", "-c", $view], cwd: "/",
	          env: ["PATH=/bin:/usr/bin"]},
	root: {path: $root, readonly: true}, annotations: {"run.sbx.image": $img},
	mounts: [{destination: "/proc", type: "proc", source: "proc"}],
	linux: {namespaces: [{type: "pid"}, {type: "network"}, {type: "ipc"}, {type: "uts"},
	                     {type: "mount"}]}}' >"$TMP/b/config.json"
BUILD --force busybox >"$TMP/build.log" 2>&1
expect_eq "(its tree was removed by the rebuild)" "absent" "$([ -e "$SBX_IMAGES/$t3" ] && echo present || echo absent)"
expect_eq "a config naming a removed tree starts on the current one" "$H $H" \
	"$(S run --bundle "$TMP/b" oldcfg 2>&1 | xargs | awk '{print $1, $3}')"

# --- the loops: rebuilds in one, sandboxes starting from the image in two others ---
end=$(($(date +%s) + LOOP))
sandbox_loop() { # N: one line per sandbox, "ok" or what it saw
	while [ "$(date +%s)" -lt "$end" ]; do
		out=$(view); rc=$?
		if [ $rc = 0 ] && [ "$out" = "$REF"$'\n'"$REF" ]; then echo ok; else echo "bad rc=$rc: $(echo "$out" | xargs)"; fi
	done >"$TMP/loop$1.out"
}
sandbox_loop 1 & s1=$!; BG+=("$s1")
sandbox_loop 2 & s2=$!; BG+=("$s2")
(
	n=0
	# Until the sandbox loops are done, then once more: what they held is unheld by then.
	while kill -0 $s1 2>/dev/null || kill -0 $s2 2>/dev/null; do
		BUILD --force busybox >>"$TMP/loop-build.log" 2>&1 || echo "build failed" >>"$TMP/loop-build.err"
		n=$((n + 1))
	done
	BUILD --force busybox >>"$TMP/loop-build.log" 2>&1 || echo "build failed" >>"$TMP/loop-build.err"
	echo $((n + 1)) >"$TMP/builds"
) & b=$!; BG+=("$b")
wait $s1 $s2 $b
runs=$(cat "$TMP"/loop[12].out | wc -l)
bad=$(grep -hv '^ok$' "$TMP"/loop[12].out)
echo "# $runs sandboxes and $(cat "$TMP/builds" 2>/dev/null) builds in ${LOOP} s"
expect_eq "no build failed" "" "$(cat "$TMP/loop-build.err" 2>/dev/null)"
if [ "$runs" -ge 10 ] && [ "$(cat "$TMP/builds" 2>/dev/null || echo 0)" -ge 5 ]; then
	ok "the loops ran ($runs sandboxes, $(cat "$TMP/builds") builds)"
else
	not_ok "the loops ran ($runs sandboxes, $(cat "$TMP/builds" 2>/dev/null) builds)"
fi
expect_eq "every sandbox started and saw the whole image, twice" "" "$([ -n "$bad" ] && echo "$bad" | sort | uniq -c | head -5)"
expect_eq "once the loops ended, no old tree is left" "$(target)" "$(trees)"
expect_eq "nor a link of a build" "" "$(cd "$SBX_IMAGES" && ls -d .busybox.link.* 2>/dev/null)"
finish
