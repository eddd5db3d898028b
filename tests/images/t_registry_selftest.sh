#!/bin/bash
# Self-test of the image test infrastructure, without sbx: mkimage.py builds OCI layouts, a
# two-platform index, Docker-format images, docker/OCI archives and special layer tars;
# registry.sh runs three registries (TLS+basic, plain, TLS+token) in a private netns. We push
# with skopeo and read back by hand with curl (the way an OCI client would), then check that
# teardown leaves nothing behind. Run as root: bash tests/images/t_registry_selftest.sh
# (it is deliberately not under tests/integration: the main runner must not pick it up).
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/images/registry.sh"
require_root "registry selftest" || finish

MK="python3 $TOP/tests/images/mkimage.py"
WORK=$(mktemp -d /tmp/sbx-t-regself.XXXXXX)
TOKEN=selftest$$
had_varlib=0; [ -e /var/lib/containers ] && had_varlib=1
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT # set before reg_setup, which chains it after its own teardown

ACCEPT="application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json"

# hget URL CURL-ARGS... : GET inside the netns; prints the status, keeps body and headers.
hget() {
	local url=$1; shift
	reg_exec curl -s --max-time 10 --cacert "$REG_CA" -o "$WORK/body" -D "$WORK/hdr" \
		-w '%{http_code}' "$@" "$url"
}
hdr() { grep -i "^$1:" "$WORK/hdr" | tail -1 | cut -d' ' -f2- | tr -d '\r'; }
body_digest() { echo "sha256:$(sha256sum <"$WORK/body" | cut -d' ' -f1)"; }
js() { jq -r "$1" "$2"; } # js FILTER FILE

# ---------------------------------------------------------------- images from files
mkdir -p "$WORK/base/etc" "$WORK/app/app"
echo "sbx test base" >"$WORK/base/etc/base-release"
echo "hello amd64" >"$WORK/app/app/hello"
echo amd64 >"$WORK/app/arch"
ln "$WORK/app/app/hello" "$WORK/app/app/hello-hardlink"
ln -s hello "$WORK/app/app/hello-symlink"
IMGOPTS=(--layer "$WORK/base" --layer "$WORK/app" --env FOO=bar --env PATH=/usr/bin:/bin
	--entrypoint '["/bin/sh","-c"]' --cmd 'echo "hi there"' --workdir /app --user 1000:1000
	--expose 8080 --expose 53/udp)
# mk NAME OUT.json MKIMAGE-ARGS... : runs mkimage.py, its JSON summary to OUT.json
mk() {
	local n=$1 o=$2; shift 2
	if $MK "$@" >"$o" 2>"$o.err"; then ok "mkimage: $n"; else not_ok "mkimage: $n"; sed 's/^/    /' "$o.err" | tail -5; fi
}
L=$WORK/oci
mk "layout v1 (2 layers from dirs, config options)" "$WORK/v1.json" layout "$L" --tag v1 "${IMGOPTS[@]}"
mk "layout multi (index: amd64 + arm64)" "$WORK/multi.json" layout "$L" --tag multi --multiarch "${IMGOPTS[@]}"
mk "layout v1 again, elsewhere" "$WORK/v1-again.json" layout "$WORK/oci-again" --tag v1 "${IMGOPTS[@]}"
V1=$(js .digest "$WORK/v1.json")
MULTI=$(js .digest "$WORK/multi.json")
BASE_LAYER=$(js '.layers[0].digest' "$WORK/v1.json")
APP_LAYER=$(js '.layers[1].digest' "$WORK/v1.json")
expect_eq "mkimage: rebuilding gives the same manifest digest" "$V1" "$(js .digest "$WORK/v1-again.json")"
expect_eq "mkimage: multi's amd64 image is v1" "$V1" "$(js '.manifests["linux/amd64"]' "$WORK/multi.json")"
mk "layout in Docker schema 2 format, two platforms" "$WORK/ocid.json" layout "$WORK/ocid" --tag v1 --format docker --multiarch "${IMGOPTS[@]}"
mk "dir: copy of the Docker-format list" "$WORK/dird.json" dir "$WORK/ocid" v1 "$WORK/dird"
mk "docker-archive" "$WORK/docker.json" docker-archive "$WORK/docker.tar" --tag sbx/selftest:v1 "${IMGOPTS[@]}"
mk "oci-archive" "$WORK/ociarch.json" oci-archive "$L" "$WORK/oci.tar"

# ---------------------------------------------------------------- registries (skopeo runs in the netns too)
t0=$(date +%s%N)
if ! reg_setup; then not_ok "reg_setup"; finish; fi
ok "reg_setup: tls=$REG_TLS plain=$REG_PLAIN token=$REG_TOKEN realm=$REG_TOKEN_REALM ($((($(date +%s%N) - t0) / 1000000)) ms)"
MYNS=$REG_NS MYDIR=$REG_DIR MYPIDS=$(cat "$REG_DIR"/*/pid | tr '\n' ' ')
expect_eq "registries + token server run inside the netns" "$(tr ' ' '\n' <<<"$MYPIDS" | grep . | sort -n | tr '\n' ' ')" \
	"$(ip netns pids "$REG_NS" | sort -n | tr '\n' ' ')"
rp=${REG_TOKEN_REALM##*:} rp=${rp%%/*}
expect_nomatch "nothing of ours listens in the host netns" ":(${REG_TLS#*:}|${REG_PLAIN#*:}|${REG_TOKEN#*:}|$rp) " \
	"$(ss -Hltn | awk '{print $4" "}')"

# skopeo reads what we wrote (its parsers are strict about layout and descriptors)
out=$(reg_skopeo inspect "oci:$L:v1" 2>&1)
expect_eq "skopeo inspect oci: digest" "$V1" "$(jq -r .Digest <<<"$out" 2>&1)"
expect_eq "skopeo inspect oci: layers" "$BASE_LAYER $APP_LAYER" "$(jq -r '.Layers|join(" ")' <<<"$out" 2>&1)"
expect_eq "skopeo inspect oci: arch/os" "amd64/linux" "$(jq -r '.Architecture+"/"+.Os' <<<"$out" 2>&1)"
out=$(reg_skopeo inspect --config "oci:$L:v1" 2>&1)
expect_eq "config: Env Entrypoint Cmd WorkingDir User ExposedPorts" \
	'["FOO=bar","PATH=/usr/bin:/bin"]|["/bin/sh","-c"]|["echo","hi there"]|/app|1000:1000|["53/udp","8080/tcp"]' \
	"$(jq -c -j '.config|(.Env|tojson),"|",(.Entrypoint|tojson),"|",(.Cmd|tojson),"|",.WorkingDir,"|",.User,"|",(.ExposedPorts|keys|tojson)' <<<"$out" 2>&1)"
expect_eq "config: rootfs.diff_ids" "$(js '[.layers[].diff_id]|join(" ")' "$WORK/v1.json")" \
	"$(jq -r '.rootfs.diff_ids|join(" ")' <<<"$out" 2>&1)"
# diff_id = sha256 of the uncompressed layer tar
expect_eq "config: diff_id is the sha256 of the gunzipped layer" "$(js '.layers[1].diff_id' "$WORK/v1.json")" \
	"sha256:$(gzip -dc "$L/blobs/sha256/${APP_LAYER#sha256:}" | sha256sum | cut -d' ' -f1)"
out=$(reg_skopeo inspect --raw "oci:$L:multi" 2>&1)
expect_eq "skopeo inspect oci: multi is an index of amd64 + arm64/v8" "linux/amd64/ linux/arm64/v8" \
	"$(jq -r '[.manifests[].platform|.os+"/"+.architecture+"/"+(.variant//"")]|join(" ")' <<<"$out" 2>&1)"
out=$(reg_skopeo inspect "dir:$WORK/dird" 2>&1)
expect_eq "skopeo inspect dir: Docker-format image picks amd64" amd64 "$(jq -r .Architecture <<<"$out" 2>&1)"
out=$(reg_skopeo inspect "docker-archive:$WORK/docker.tar" 2>&1)
expect_eq "skopeo inspect docker-archive: layers are the diff_ids" \
	"$(js '[.layers[].diff_id]|join(" ")' "$WORK/v1.json")" "$(jq -r '.Layers|join(" ")' <<<"$out" 2>&1)"
expect_eq "docker-archive: manifest.json RepoTags" '["sbx/selftest:v1"]' \
	"$(tar -xOf "$WORK/docker.tar" manifest.json | jq -c '.[0].RepoTags')"
out=$(reg_skopeo inspect "oci-archive:$WORK/oci.tar:multi" 2>&1)
expect_eq "skopeo inspect oci-archive: multi digest" "$MULTI" "$(jq -r .Digest <<<"$out" 2>&1)"
if command -v zstd >/dev/null; then
	$MK layout "$L" --tag zstd --compression zstd --layer "$WORK/base" >"$WORK/zstd.json"
	out=$(reg_skopeo inspect --raw "oci:$L:zstd" 2>&1)
	expect_eq "mkimage: zstd layer media type" application/vnd.oci.image.layer.v1.tar+zstd \
		"$(jq -r '.layers[0].mediaType' <<<"$out" 2>&1)"
	expect_eq "mkimage: zstd layer has the same diff_id as the gzip one" \
		"$(js '.layers[0].diff_id' "$WORK/v1.json")" "$(js '.layers[0].diff_id' "$WORK/zstd.json")"
else
	skip "mkimage: zstd layer" "no zstd command"
fi

# ---------------------------------------------------------------- special layer tars
# tarlist FILE : one line per entry: name|type|mode(octal)|uid|linkname|xattr-hex|size
tarlist() {
	python3 - "$1" <<-'EOF'
	import sys, tarfile
	T = {tarfile.REGTYPE: "file", tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "sym",
	     tarfile.LNKTYPE: "link", tarfile.CHRTYPE: "chr"}
	with tarfile.open(sys.argv[1]) as t:
	    for m in t:
	        x = m.pax_headers.get("SCHILY.xattr.security.capability", "")
	        print("|".join([m.name, T.get(m.type, "?"), "%o" % m.mode, str(m.uid), m.linkname,
	                        x.encode("latin-1").hex(), str(m.size)]))
	EOF
}
for k in features-lower features dotdot absolute symlink-escape hardlink-host hardlink-dotdot; do
	$MK layer "$k" "$WORK/$k.tar" --token "$TOKEN" >/dev/null || not_ok "mkimage: layer $k"
done
l=$(tarlist "$WORK/features.tar")
for want in ".wh.removed-file|file|644|0|" "opaque-dir/.wh..wh..opq|file|644|0|" \
	"hardlink-to-regular|link|644|0|regular-file|" "symlink-relative|sym|777|0|regular-file|" \
	"symlink-absolute|sym|777|0|/regular-file|" "setuid-file|file|4755|0||" \
	"cap-file|file|755|0||0100000200040000000000000000000000000000|" "dev/char-null|chr|666|0|" \
	"owned-by-1000|file|644|1000|" "owned-by-0|file|644|0|"; do
	expect_match "layer features: $want" "^$(printf '%s' "$want" | sed 's/[.|]/\\&/g')" "$l"
done
expect_eq "layer features: the hardlink comes after its target" "regular-file hardlink-to-regular" \
	"$(printf '%s\n' "$l" | cut -d'|' -f1 | grep -E '^(regular-file|hardlink-to-regular)$' | tr '\n' ' ' | sed 's/ $//')"
expect_match "layer features-lower: holds what features whites out" "removed-file.*opaque-dir/lower-only|opaque-dir/lower-only.*removed-file" \
	"$(tarlist "$WORK/features-lower.tar" | tr '\n' ' ')"
expect_eq "layer dotdot" "../../escape-dotdot-$TOKEN|file" "$(tarlist "$WORK/dotdot.tar" | tail -1 | cut -d'|' -f1,2)"
expect_eq "layer absolute" "/tmp/escape-abs-$TOKEN|file" "$(tarlist "$WORK/absolute.tar" | tail -1 | cut -d'|' -f1,2)"
expect_eq "layer symlink-escape" "etc|sym|/etc etc/escape-symlink-$TOKEN|file|" \
	"$(tarlist "$WORK/symlink-escape.tar" | tail -2 | cut -d'|' -f1,2,5 | tr '\n' ' ' | sed 's/ $//')"
expect_eq "layer hardlink-host" "escape-hardlink-host-$TOKEN|link|/etc/passwd" \
	"$(tarlist "$WORK/hardlink-host.tar" | tail -1 | cut -d'|' -f1,2,5)"
expect_eq "layer hardlink-dotdot" "escape-hardlink-dotdot-$TOKEN|link|../../etc/passwd" \
	"$(tarlist "$WORK/hardlink-dotdot.tar" | tail -1 | cut -d'|' -f1,2,5)"
$MK layer many-entries "$WORK/many.tar.gz" --count 5000 --compression gzip >/dev/null
expect_eq "layer many-entries: 5000 files + dir" 5001 "$(tarlist "$WORK/many.tar.gz" | wc -l)"
a=$($MK layer features "$WORK/f2.tar" --token "$TOKEN" | jq -r .digest)
expect_eq "layer features: deterministic" "sha256:$(sha256sum <"$WORK/features.tar" | cut -d' ' -f1)" "$a"
t0=$(date +%s)
$MK layer bomb "$WORK/bomb.tar.gz" --token "$TOKEN" >"$WORK/bomb.json"
t1=$(date +%s)
bsize=$(stat -c %s "$WORK/bomb.tar.gz")
if [ "$bsize" -lt $((10 << 20)) ] && [ $((t1 - t0)) -le 30 ]; then
	ok "layer bomb: $bsize bytes on disk, made in $((t1 - t0)) s"
else
	not_ok "layer bomb: $bsize bytes (want < 10 MiB), $((t1 - t0)) s (want <= 30)"
fi
# Only the first header is read: a streaming reader stops long before the 8 GiB.
expect_eq "layer bomb: declares an 8 GiB file" "bomb-$TOKEN 8589934592" "$(python3 -c '
import sys, tarfile
t = tarfile.open(sys.argv[1], "r|gz"); m = t.next(); print(m.name, m.size)' "$WORK/bomb.tar.gz")"
expect_eq "layer bomb: .diffid sidecar" "$(js .diff_id "$WORK/bomb.json")" "$(cat "$WORK/bomb.tar.gz.diffid")"
$MK layout "$L" --tag bomb --layer "$WORK/base" --layer "$WORK/bomb.tar.gz" >"$WORK/bombimg.json"
expect_eq "mkimage: a bomb layer goes in as is, its diff_id from the sidecar" \
	"$(js .digest "$WORK/bomb.json") $(js .diff_id "$WORK/bomb.json")" \
	"$(js '.layers[1].digest+" "+.layers[1].diff_id' "$WORK/bombimg.json")"

for r in tls plain token; do
	expect_eq "push v1 to $r keeps the digest" "$V1" "$(reg_push "oci:$L:v1" selftest/app:v1 $r)"
	expect_eq "push multi (--all) to $r keeps the index digest" "$MULTI" "$(reg_push "oci:$L:multi" selftest/multi:v1 $r)"
done
expect_eq "push Docker-format list (dir:) to plain" "$(js .digest "$WORK/dird.json")" \
	"$(reg_push "dir:$WORK/dird" selftest/docker:v1 plain)"
BOMBD=$(reg_push "oci:$L:bomb" selftest/bomb:v1 plain)
expect_eq "push bomb image to plain" "$(js .digest "$WORK/bombimg.json")" "$BOMBD"

# --- TLS + basic auth
reg_log_mark
U="https://$REG_TLS/v2/selftest/app"
expect_eq "tls: /v2/ without credentials is 401" 401 "$(hget "https://$REG_TLS/v2/")"
expect_match "tls: challenge is Basic" '^Basic realm="sbx-test-basic"' "$(hdr WWW-Authenticate)"
expect_eq "tls: manifest with a wrong password is 401" 401 "$(hget "$U/manifests/v1" -u "$REG_USER:wrong" -H "Accept: $ACCEPT")"
expect_eq "tls: manifest by tag is 200" 200 "$(hget "$U/manifests/v1" -u "$REG_USER:$REG_PASS" -H "Accept: $ACCEPT")"
expect_eq "tls: manifest Docker-Content-Digest" "$V1" "$(hdr Docker-Content-Digest)"
expect_eq "tls: manifest body hashes to its digest" "$V1" "$(body_digest)"
expect_eq "tls: manifest media type" application/vnd.oci.image.manifest.v1+json "$(js .mediaType "$WORK/body")"
expect_eq "tls: blob by digest is 200" 200 "$(hget "$U/blobs/$BASE_LAYER" -L -u "$REG_USER:$REG_PASS")"
expect_eq "tls: blob sha256 matches" "$BASE_LAYER" "$(body_digest)"
expect_eq "tls: HEAD of a blob is not counted" 200 "$(hget "$U/blobs/$BASE_LAYER" -I -u "$REG_USER:$REG_PASS")"
expect_eq "reg_blob_gets: 1 GET of the base layer on tls" 1 "$(reg_blob_gets "$BASE_LAYER" tls)"
hget "$U/blobs/$BASE_LAYER" -u "$REG_USER:$REG_PASS" >/dev/null
expect_eq "reg_blob_gets: 2 after a second GET" 2 "$(reg_blob_gets "$BASE_LAYER")"
expect_eq "reg_blob_gets: 0 on plain" 0 "$(reg_blob_gets "$BASE_LAYER" plain)"
reg_log_mark
expect_eq "reg_blob_gets: 0 after reg_log_mark" 0 "$(reg_blob_gets "$BASE_LAYER")"
expect_eq "tls: unknown tag is 404" 404 "$(hget "$U/manifests/nosuchtag" -u "$REG_USER:$REG_PASS" -H "Accept: $ACCEPT")"
expect_eq "tls: unknown blob is 404" 404 "$(hget "$U/blobs/sha256:$(printf '%064d' 0)" -u "$REG_USER:$REG_PASS")"
# The index: a client must pick the platform itself.
expect_eq "tls: index by tag is 200" 200 "$(hget "https://$REG_TLS/v2/selftest/multi/manifests/v1" -u "$REG_USER:$REG_PASS" -H "Accept: $ACCEPT")"
expect_eq "tls: index media type and digest" "application/vnd.oci.image.index.v1+json $MULTI" "$(js .mediaType "$WORK/body") $(body_digest)"
ARM=$(js '.manifests[]|select(.platform.architecture=="arm64").digest' "$WORK/body")
hget "https://$REG_TLS/v2/selftest/multi/manifests/$ARM" -u "$REG_USER:$REG_PASS" -H "Accept: $ACCEPT" >/dev/null
expect_eq "tls: arm64 manifest by digest" "$ARM" "$(body_digest)"
ARML=$(js '.layers[0].digest' "$WORK/body")
hget "https://$REG_TLS/v2/selftest/multi/blobs/$ARML" -u "$REG_USER:$REG_PASS" >/dev/null
expect_eq "tls: the arm64 layer's arch file says arm64" arm64 "$(python3 -c '
import sys, tarfile
print(tarfile.open(sys.argv[1]).extractfile("arch").read().decode().strip())' "$WORK/body" 2>&1)"
# the exported auth file and certs dir work for a client
out=$(reg_skopeo inspect --authfile "$REG_AUTH_FILE" --cert-dir "$REG_CERTS_DIR/$REG_TLS" "docker://$REG_TLS/selftest/app:v1" 2>&1)
expect_eq "tls: skopeo with REG_AUTH_FILE + REG_CERTS_DIR" "$V1" "$(jq -r .Digest <<<"$out" 2>&1)"

# --- plain HTTP, no auth
P="http://$REG_PLAIN/v2"
expect_eq "plain: manifest by tag without credentials is 200" 200 "$(hget "$P/selftest/app/manifests/v1" -H "Accept: $ACCEPT")"
expect_eq "plain: manifest digest" "$V1" "$(body_digest)"
expect_eq "plain: unknown tag is 404" 404 "$(hget "$P/selftest/app/manifests/nosuchtag" -H "Accept: $ACCEPT")"
expect_eq "plain: blob" "200 $APP_LAYER" "$(hget "$P/selftest/app/blobs/$APP_LAYER") $(body_digest)"
expect_eq "plain: Docker manifest list" "200 application/vnd.docker.distribution.manifest.list.v2+json" \
	"$(hget "$P/selftest/docker/manifests/v1" -H "Accept: $ACCEPT") $(js .mediaType "$WORK/body")"
D=$(js '.manifests[]|select(.platform.architecture=="amd64").digest' "$WORK/body")
expect_eq "plain: Docker schema 2 manifest + layer media type" \
	"200 application/vnd.docker.distribution.manifest.v2+json application/vnd.docker.image.rootfs.diff.tar.gzip" \
	"$(hget "$P/selftest/docker/manifests/$D" -H "Accept: $ACCEPT") $(js '.mediaType+" "+.layers[0].mediaType' "$WORK/body")"

# --- TLS + Bearer token, by hand: 401 -> realm -> token -> retry
T="https://$REG_TOKEN/v2/selftest/app"
expect_eq "token: manifest without a token is 401" 401 "$(hget "$T/manifests/v1" -H "Accept: $ACCEPT")"
chal=$(hdr WWW-Authenticate)
realm=$(sed -n 's/.*realm="\([^"]*\)".*/\1/p' <<<"$chal")
service=$(sed -n 's/.*service="\([^"]*\)".*/\1/p' <<<"$chal")
scope=$(sed -n 's/.*scope="\([^"]*\)".*/\1/p' <<<"$chal")
expect_eq "token: Bearer challenge" "$REG_TOKEN_REALM $REG_TOKEN_SERVICE repository:selftest/app:pull" "$realm $service $scope"
expect_eq "token: realm with a wrong password is 401" 401 \
	"$(hget "$realm" -G --data-urlencode "service=$service" --data-urlencode "scope=$scope" -u "$REG_USER:wrong")"
expect_eq "token: realm with sbxuser is 200" 200 \
	"$(hget "$realm" -G --data-urlencode "service=$service" --data-urlencode "scope=$scope" -u "$REG_USER:$REG_PASS")"
tok=$(js .token "$WORK/body")
expect_eq "token: manifest with the token is 200" 200 "$(hget "$T/manifests/v1" -H "Authorization: Bearer $tok" -H "Accept: $ACCEPT")"
expect_eq "token: manifest digest" "$V1" "$(body_digest)"
expect_eq "token: blob with the token" "200 $APP_LAYER" "$(hget "$T/blobs/$APP_LAYER" -L -H "Authorization: Bearer $tok") $(body_digest)"
expect_eq "token: unknown tag is 404" 404 "$(hget "$T/manifests/nosuchtag" -H "Authorization: Bearer $tok" -H "Accept: $ACCEPT")"
expect_eq "token: the token does not open another repository" 401 \
	"$(hget "https://$REG_TOKEN/v2/selftest/multi/manifests/v1" -H "Authorization: Bearer $tok" -H "Accept: $ACCEPT")"
anon=$(reg_bearer_token "$scope")
expect_eq "token: an anonymous token grants nothing" 401 "$(hget "$T/manifests/v1" -H "Authorization: Bearer $anon" -H "Accept: $ACCEPT")"
expect_eq "token: reg_bearer_token with credentials works" 200 \
	"$(hget "$T/manifests/v1" -H "Authorization: Bearer $(reg_bearer_token "$scope" "$REG_USER" "$REG_PASS")" -H "Accept: $ACCEPT")"
out=$(reg_skopeo inspect --authfile "$REG_AUTH_FILE" --cert-dir "$REG_CERTS_DIR/$REG_TOKEN" "docker://$REG_TOKEN/selftest/multi:v1" 2>&1)
expect_eq "token: skopeo with REG_AUTH_FILE reads the index, picks amd64" "$MULTI amd64 $BASE_LAYER $APP_LAYER" \
	"$(jq -r '.Digest+" "+.Architecture+" "+(.Layers|join(" "))' <<<"$out" 2>&1)"
expect_eq "token: blob GETs counted on the token registry" 1 "$(reg_blob_gets "$APP_LAYER" token)"

# ---------------------------------------------------------------- teardown leaves nothing
reg_teardown
expect_eq "teardown: netns $MYNS gone" "" "$(ip netns list | grep -w "$MYNS")"
left=
for p in $MYPIDS; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
expect_eq "teardown: no registry/token server pid left" "" "$left"
expect_eq "teardown: REG_DIR removed" no "$([ -e "$MYDIR" ] && echo yes || echo no)"
if [ "$had_varlib" = 0 ]; then
	expect_eq "skopeo left no /var/lib/containers on the host" no "$([ -e /var/lib/containers ] && echo yes || echo no)"
fi
finish
