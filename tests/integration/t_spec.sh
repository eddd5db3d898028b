#!/bin/bash
# `sbxrun spec` (runc's verb: a starting config.json for a bundle, here sbx's own defaults) and
# bundles whose rootfs is reached through a symlink. Everything lives under one temp dir.
. "$(dirname "$0")/../lib.sh"
require_root "spec" || finish
[ -d "$SBX_IMAGES/busybox/rootfs" ] || { skip "spec" "no busybox image in $SBX_IMAGES (make rootfs)"; finish; }

TMP=$(mktemp -d /tmp/sbx-t-spec.XXXXXX)
chmod 755 "$TMP" # the sandbox's mapped root walks to its rootfs
ROOT=$TMP/state
S() { timeout 20 "$SBXRUN" --root "$ROOT" "$@"; }
cleanup() {
	for id in $(ls "$ROOT" 2>/dev/null); do "$SBXRUN" --root "$ROOT" delete --force "$id" >/dev/null 2>&1; done
	rm -rf "$TMP"
}
trap cleanup EXIT
setargs() { # BUNDLE ARGS-as-JSON
	jq --argjson a "$2" '.process.args = $a' "$1/config.json" >"$1/config.new" && mv "$1/config.new" "$1/config.json"
}

mkdir -p "$TMP/b"
check "spec --bundle DIR writes DIR/config.json" S spec --bundle "$TMP/b"
expect_eq "the config is sbx's default: sh in rootfs as uid 1000, every namespace" \
	"sh rootfs 1000 cgroup,ipc,mount,network,pid,user,uts" \
	"$(jq -r '[.process.args[0], .root.path, (.process.user.uid|tostring),
		([.linux.namespaces[].type] | sort | join(","))] | join(" ")' "$TMP/b/config.json" 2>&1)"
sum=$(sha256sum <"$TMP/b/config.json")
out=$(S spec -b "$TMP/b" 2>&1); rc=$?
expect_eq "spec refuses an existing config.json (exit 1, says so, file unchanged)" "1 yes $sum" \
	"$rc $(echo "$out" | grep -q 'exists; remove it first' && echo yes) $(sha256sum <"$TMP/b/config.json")"
out=$(S spec -b "$TMP/nosuch" 2>&1); rc=$?
expect_eq "spec into a missing directory: exit 1, names the path" "1 yes" \
	"$rc $(echo "$out" | grep -q "$TMP/nosuch/config.json" && echo yes)"
out=$(S spec --rootless -b "$TMP/r" 2>&1); rc=$?
expect_eq "spec --rootless is refused by name" "1 yes" "$rc $(echo "$out" | grep -q -- '--rootless' && echo yes)"
out=$(S spec stray 2>&1); rc=$?
expect_eq "a stray argument is named" "1 yes" "$rc $(echo "$out" | grep -q '`stray`' && echo yes)"
expect_match "spec --help says what it writes" "config.json" "$(S spec --help 2>&1)"

# A bundle from spec runs as it says: the workload is uid 1000 in its own user namespace.
cp -a "$SBX_IMAGES/busybox/rootfs" "$TMP/real"
ln -s "$TMP/real" "$TMP/b/rootfs"
setargs "$TMP/b" '["sh","-c","id -u; cat /proc/self/uid_map | wc -l"]'
expect_eq "a spec bundle runs (absolute rootfs symlink followed)" "1000 1" "$(S run --bundle "$TMP/b" s1 2>&1 | xargs)"
rm "$TMP/b/rootfs"
ln -s ../real "$TMP/b/rootfs"
expect_eq "a relative rootfs symlink is followed too" "1000 1" "$(S run --bundle "$TMP/b" s2 2>&1 | xargs)"
rm "$TMP/b/rootfs"
ln -s "$TMP/nothing" "$TMP/b/rootfs"
out=$(S run --bundle "$TMP/b" s3 2>&1); rc=$?
expect_eq "a dangling rootfs symlink: exit 125, names the rootfs, no state left" "125 yes none" \
	"$rc $(echo "$out" | grep -q "rootfs" && echo yes) $(ls "$ROOT" 2>/dev/null | grep -x s3 || echo none)"
finish
