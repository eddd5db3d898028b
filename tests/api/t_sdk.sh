#!/bin/bash
# The official OpenSandbox TypeScript SDK (@alibaba-group/opensandbox from npm, installed into a
# temporary directory at test time, never globally) driving a real sbx-apid on 127.0.0.1:
# create → command → write/read file → renew → pause/resume → kill (tests/api/sdk/sdk_flow.mjs).
. "$(dirname "$0")/../lib.sh"
. "$TOP/tests/api/api_lib.sh"
SDK_DIR=$TOP/tests/api/sdk
command -v node >/dev/null && command -v npm >/dev/null || { skip "sdk" "node/npm not installed (scripts/install-deps.sh)"; finish; }
node -e 'process.exit(+process.versions.node.split(".")[0] >= 18 ? 0 : 1)' || { skip "sdk" "node >= 18 needed (fetch)"; finish; }
AGENT=${SBX_APID_AGENT:-$BIN/sbx-agent}
[ "$AGENT" = none ] || [ -x "$AGENT" ] || AGENT=none
api_prepare "sdk" sdk
# apid, its bridge and the SDK client run in a throwaway network namespace (never the host's):
# sandboxes get real networking there and the SDK reaches execd through apid's proxy.
trap api_cleanup EXIT
api_netns "sdk" sdk

cp "$SDK_DIR/package.json" "$SDK_DIR/sdk_flow.mjs" "$SDK_DIR/sdk_image.mjs" "$SDK_DIR/sdk_egress.mjs" "$T/"
if ! (cd "$T" && timeout 180 npm install --no-audit --no-fund --loglevel=error >npm.log 2>&1); then
	skip "sdk" "npm install @alibaba-group/opensandbox failed: $(tail -1 "$T/npm.log")"
	finish
fi
ok "sdk: npm install @alibaba-group/opensandbox"

# Its own images dir: the built images linked in, and a store of its own for the pulled image.
mkdir -p "$T/images"; chmod 755 "$T/images"
for i in "$SBX_IMAGES"/*/; do ln -s "$i" "$T/images/$(basename "$i")"; done
echo '{"insecure": ["127.0.0.1"]}' >"$T/registries.json"
SBX_REGISTRIES_CONF="$T/registries.json" apid_launch --listen 127.0.0.1:$PORT \
	--data-dir "$DATA" --run-dir "$RUN" --api-key "$KEY" --images-dir "$T/images" --agent "$AGENT" ||
	{ not_ok "sdk: apid starts"; finish; }

(cd "$T" && SBX_SDK_EXPECT_NET=$([ "$AGENT" = none ] && echo 0 || echo 1) X timeout 120 node sdk_flow.mjs "127.0.0.1:$PORT" "$KEY") 2>&1 | tee "$T/sdk.out"
grep -q '^not ok' "$T/sdk.out" && _failed=1
grep -q '^ok - sdk: kill$' "$T/sdk.out" || not_ok "sdk: flow ran to the end"

# Egress by domain name through the SDK (apid's resolver needs its bridge: the agent's sandboxes).
if [ "$AGENT" != none ]; then
	(cd "$T" && X timeout 120 node sdk_egress.mjs "127.0.0.1:$PORT" "$KEY") 2>&1 | tee "$T/sdk-egress.out"
	grep -q '^not ok' "$T/sdk-egress.out" && _failed=1
	grep -q '^ok - sdk egress: kill$' "$T/sdk-egress.out" || not_ok "sdk egress: flow ran to the end"
fi

# A sandbox from a registry image: a plain-HTTP docker-registry on 127.0.0.1 inside this test's
# netns, a two-layer image (busybox + a marker file) built and pushed here, apid pulling it.
if [ "$AGENT" != none ] && command -v docker-registry >/dev/null && command -v skopeo >/dev/null; then
	RP=$(free_port)
	mkdir -p "$T/reg" "$T/marker" "$T/rhome"
	echo "from the registry" >"$T/marker/sdk-marker"
	cat >"$T/reg/config.yml" <<EOC
version: 0.1
storage: {filesystem: {rootdirectory: $T/reg/data}}
http: {addr: 127.0.0.1:$RP}
EOC
	# nsenter itself, not the X function: $! must be the registry (exec chain), not a subshell.
	nsenter --net=/run/netns/$NS docker-registry serve "$T/reg/config.yml" >"$T/reg/log" 2>&1 &
	REG_PID=$!
	for _ in $(seq 100); do X curl -s -o /dev/null "http://127.0.0.1:$RP/v2/" && break; sleep 0.05; done
	python3 "$TOP/tests/images/mkimage.py" layout "$T/oci" --tag sdk --layer "$SBX_IMAGES/busybox/rootfs" \
		--layer "$T/marker" >/dev/null
	echo '{"default": [{"type": "insecureAcceptAnything"}]}' >"$T/reg/policy.json"
	if X env HOME="$T/rhome" _CONTAINERS_ROOTLESS_UID=4242 XDG_DATA_HOME="$T/rhome" timeout 60 \
		skopeo --policy "$T/reg/policy.json" copy --dest-tls-verify=false "oci:$T/oci:sdk" \
		"docker://127.0.0.1:$RP/team/sdk:v1" >"$T/reg/push.log" 2>&1; then
		(cd "$T" && X timeout 120 node sdk_image.mjs "127.0.0.1:$PORT" "$KEY" "127.0.0.1:$RP/team/sdk:v1") 2>&1 |
			tee "$T/sdk-image.out"
		grep -q '^not ok' "$T/sdk-image.out" && _failed=1
		grep -q '^ok - sdk image: kill$' "$T/sdk-image.out" || not_ok "sdk image: flow ran to the end"
	else
		not_ok "sdk image: push the test image"; sed 's/^/    /' "$T/reg/push.log" | tail -5
	fi
	kill "$REG_PID" 2>/dev/null; wait "$REG_PID" 2>/dev/null
else
	skip "sdk image: a sandbox from a registry image" "needs the agent, docker-registry and skopeo"
fi
finish
