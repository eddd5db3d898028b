#!/bin/bash
# The official OpenSandbox TypeScript SDK (@alibaba-group/opensandbox from npm, installed into a
# temporary directory at test time, never globally) driving a real sbx-apid on 127.0.0.1:
# create → command → write/read file → renew → pause/resume → kill (tests/api/sdk/sdk_flow.mjs).
. "$(dirname "$0")/../lib.sh"
APID=$BIN/sbx-apid
SDK_DIR=$TOP/tests/api/sdk
require_root "sdk" || finish
[ -x "$APID" ] || { skip "sdk" "build/bin/sbx-apid not built"; finish; }
[ -d "$SBX_IMAGES/busybox" ] || { skip "sdk" "no busybox image (make rootfs)"; finish; }
command -v node >/dev/null && command -v npm >/dev/null || { skip "sdk" "node/npm not installed (scripts/install-deps.sh)"; finish; }
node -e 'process.exit(+process.versions.node.split(".")[0] >= 18 ? 0 : 1)' || { skip "sdk" "node >= 18 needed (fetch)"; finish; }

T=$(mktemp -d /tmp/sbx-sdk-test.XXXXXX)
chmod 711 "$T" # the sandboxes' (id-mapped) root reaches its agent token below it
KEY=sdk-key-$$
PORT=$(free_port)
AGENT=${SBX_APID_AGENT:-$BIN/sbx-agent}
[ "$AGENT" = none ] || [ -x "$AGENT" ] || AGENT=none
APID_PID=
# apid, its bridge and the SDK client run in a throwaway network namespace (never the host's):
# sandboxes get real networking there and the SDK reaches execd through apid's proxy.
NS=sbxsdk-$$
ip netns add $NS || { not_ok "sdk: create the test netns"; finish; }
nsenter --net=/run/netns/$NS ip link set lo up
X() { nsenter --net=/run/netns/$NS "$@"; }
cleanup() {
	if [ -n "$APID_PID" ]; then
		for id in $(X curl -s -H "OPEN-SANDBOX-API-KEY: $KEY" "http://127.0.0.1:$PORT/v1/sandboxes?pageSize=200" | jq -r '.items[].id' 2>/dev/null); do
			X curl -s -o /dev/null -X DELETE -H "OPEN-SANDBOX-API-KEY: $KEY" "http://127.0.0.1:$PORT/v1/sandboxes/$id"
		done
		kill -TERM "$APID_PID" 2>/dev/null; wait "$APID_PID" 2>/dev/null
	fi
	ip netns del $NS 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

cp "$SDK_DIR/package.json" "$SDK_DIR/sdk_flow.mjs" "$T/"
if ! (cd "$T" && timeout 180 npm install --no-audit --no-fund --loglevel=error >npm.log 2>&1); then
	skip "sdk" "npm install @alibaba-group/opensandbox failed: $(tail -1 "$T/npm.log")"
	finish
fi
ok "sdk: npm install @alibaba-group/opensandbox"

nsenter --net=/run/netns/$NS "$APID" --listen 127.0.0.1:$PORT --data-dir "$T/data" --run-dir "$T/run" --api-key "$KEY" \
	--agent "$AGENT" >"$T/apid.log" 2>&1 &
APID_PID=$!
for _ in $(seq 100); do X curl -s -o /dev/null "http://127.0.0.1:$PORT/health" && break; sleep 0.05; done

(cd "$T" && SBX_SDK_EXPECT_NET=$([ "$AGENT" = none ] && echo 0 || echo 1) X timeout 120 node sdk_flow.mjs "127.0.0.1:$PORT" "$KEY") 2>&1 | tee "$T/sdk.out"
grep -q '^not ok' "$T/sdk.out" && _failed=1
grep -q '^ok - sdk: kill$' "$T/sdk.out" || not_ok "sdk: flow ran to the end"
finish
