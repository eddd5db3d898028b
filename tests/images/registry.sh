# Local OCI registries for image tests (sourced, bash). Needs root, docker-registry, skopeo,
# htpasswd (apache2-utils), openssl, curl, python3, iproute2.
#
# Every registry listens on 127.0.0.1 INSIDE a private network namespace, so nothing is reachable
# from (or reaches) the host network; clients run in that namespace via reg_exec.
#
#   reg_setup [--no-token]  Create $REG_NS (named sbxreg-$$) and $REG_DIR, certs, htpasswd, and
#                           start, in the netns on 127.0.0.1 at free ports:
#                             tls   docker-registry, TLS + htpasswd basic auth   -> REG_TLS
#                             plain docker-registry, plain HTTP, no auth         -> REG_PLAIN
#                             token docker-registry, TLS + Bearer token auth     -> REG_TOKEN
#                                   (realm = tokenserver.py, TLS, on REG_TOKEN_REALM)
#                           Waits (bounded) until each answers. Installs an EXIT/INT/TERM trap
#                           that calls reg_teardown and then any EXIT trap set before. If you set
#                           your own EXIT trap afterwards, call reg_teardown from it. Call it in
#                           the test's shell itself, not in $(...) (the exports would be lost).
#                           Returns non-zero (after tearing down) if anything fails.
#   reg_exec CMD...         Run CMD inside the netns (same mounts, same files).
#   reg_skopeo ARGS...      skopeo inside the netns with a private policy, registries.conf and
#                           blob-info cache under $REG_DIR (plain root skopeo would create
#                           /var/lib/containers/cache on the host).
#   reg_push SRC DEST [tls|plain|token]  (default tls)
#                           skopeo copy --all --preserve-digests SRC docker://HOSTPORT/DEST inside
#                           the netns, with the CA dir and sbxuser creds (tls, token) or
#                           --dest-tls-verify=false (plain). SRC is a skopeo ref: oci:DIR:TAG,
#                           dir:DIR, docker-archive:FILE, ... DEST is REPO:TAG. Prints the
#                           pushed manifest (or index) digest on stdout.
#   reg_hostport tls|plain|token  Prints that registry's 127.0.0.1:PORT.
#   reg_bearer_token SCOPE [USER PASS]  Prints a token from the token server for SCOPE
#                           (e.g. repository:foo:pull); no USER: anonymous.
#   reg_log_mark            Remember the current end of every access log; reg_blob_gets counts
#                           from the last mark (reg_setup marks at 0).
#   reg_blob_gets DIGEST [tls|plain|token|all]  (default all)
#                           How many GET .../blobs/DIGEST were answered 200 since the mark, from
#                           the registries' access logs (HEAD and 206 ranges are not counted).
#   reg_teardown            Stop what reg_setup started (by recorded pid), delete the netns and
#                           $REG_DIR. Idempotent.
#
# Exported: REG_NS, REG_DIR, REG_TLS, REG_PLAIN, REG_TOKEN, REG_TOKEN_REALM (https URL),
# REG_CA (CA cert path), REG_CERTS_DIR (<host:port>/ca.crt for each TLS registry, Docker's
# certs.d layout), REG_AUTH_FILE (docker config.json with auths for tls and token), REG_USER,
# REG_PASS, REG_TOKEN_SERVICE. With --no-token, REG_TOKEN and REG_TOKEN_REALM are empty.
# Logs: $REG_DIR/<tls|plain|token>/access.log (the registry's combined access log, its stdout) and
# registry.log (its stderr); $REG_DIR/realm/access.log is the token server's request log.

REG_IMAGES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REG_NS='' REG_DIR='' REG_TLS='' REG_PLAIN='' REG_TOKEN='' REG_TOKEN_REALM='' REG_CA='' REG_CERTS_DIR=''
REG_AUTH_FILE='' REG_USER=sbxuser REG_PASS=sbxpass REG_TOKEN_SERVICE=sbx-test-registry
_REG_PIDS=()
_REG_PREV_EXIT=''

_reg_log() { echo "registry.sh: $*" >&2; }

reg_exec() { ip netns exec "$REG_NS" "$@"; }

reg_skopeo() {
	[ -n "$REG_NS" ] || { _reg_log "reg_skopeo: call reg_setup first"; return 1; }
	# _CONTAINERS_ROOTLESS_UID makes containers/image take the per-user paths (XDG_DATA_HOME,
	# HOME) for its blob-info cache and config instead of /var/lib/containers and /etc.
	reg_exec env _CONTAINERS_ROOTLESS_UID=4242 HOME="$REG_DIR/home" XDG_DATA_HOME="$REG_DIR/home/data" \
		XDG_RUNTIME_DIR="$REG_DIR/home/run" XDG_CONFIG_HOME="$REG_DIR/home/config" \
		CONTAINERS_REGISTRIES_CONF="$REG_DIR/registries.conf" \
		timeout 120 skopeo --policy "$REG_DIR/policy.json" "$@"
}

reg_hostport() {
	case ${1:-tls} in
	tls) echo "$REG_TLS" ;; plain) echo "$REG_PLAIN" ;; token) echo "$REG_TOKEN" ;;
	*) _reg_log "unknown registry ${1:-}"; return 1 ;;
	esac
}

# _reg_wait_url URL CURL-ARGS... : bounded wait (10 s) until URL answers with any HTTP status.
_reg_wait_url() {
	local url=$1 code; shift
	for _ in $(seq 100); do
		code=$(reg_exec curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url" 2>/dev/null)
		case $code in 2??|401|404) return 0 ;; esac
		sleep 0.1
	done
	_reg_log "$url did not answer in 10 s (last status '$code')"
	return 1
}

# _reg_start NAME CMD... : starts CMD in the netns, stdout -> NAME/access.log (the registry's
# access log goes there), stderr -> NAME/registry.log; records the pid. `ip netns exec` and
# `env` exec in place, so the recorded pid is the server's own.
_reg_start() {
	local name=$1; shift
	mkdir -p "$REG_DIR/$name"
	ip netns exec "$REG_NS" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		HOME="$REG_DIR/home" "$@" >"$REG_DIR/$name/access.log" 2>"$REG_DIR/$name/registry.log" </dev/null &
	_REG_PIDS+=($!)
	echo "$!" >"$REG_DIR/$name/pid"
}

# _reg_config NAME PORT TLS(0|1) AUTH-YAML : a docker-registry config for one instance.
_reg_config() {
	local name=$1 port=$2 tls=$3 auth=$4
	mkdir -p "$REG_DIR/$name/storage"
	{
		cat <<-EOF
		version: 0.1
		log:
		  level: info
		  formatter: text
		  accesslog:
		    disabled: false
		storage:
		  filesystem:
		    rootdirectory: $REG_DIR/$name/storage
		  delete:
		    enabled: true
		  maintenance:
		    uploadpurging:
		      enabled: false
		http:
		  addr: 127.0.0.1:$port
		  secret: sbx-test-secret-$name
		  headers:
		    X-Content-Type-Options: [nosniff]
		EOF
		if [ "$tls" = 1 ]; then
			cat <<-EOF
			  tls:
			    certificate: $REG_DIR/certs/server.crt
			    key: $REG_DIR/certs/server.key
			EOF
		fi
		printf '%s\n' "$auth"
	} >"$REG_DIR/$name/config.yml"
}

_reg_certs() {
	local c=$REG_DIR/certs
	mkdir -p "$c"
	(
		set -e
		cd "$c"
		# A throwaway CA; the server cert is for 127.0.0.1 and localhost only.
		openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=sbx test CA $$" \
			-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
			-keyout ca.key -out ca.crt
		openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr
		printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
			"extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" >server.ext
		openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
			-extfile server.ext -out server.crt
		# The token signer: a self-signed cert that is the registry's rootcertbundle.
		openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=sbx test token signer $$" \
			-keyout token-signer.key -out token-signer.crt
	) >"$REG_DIR/openssl.log" 2>&1 || { _reg_log "openssl failed: $(tail -5 "$REG_DIR/openssl.log")"; return 1; }
	REG_CA=$c/ca.crt
}

# _reg_ports N : N distinct free ports on 127.0.0.1 inside the netns (all sockets held until
# every port is picked, so they differ; the netns is ours alone, so they stay free).
_reg_ports() {
	reg_exec python3 -c '
import socket, sys
ss = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); ss.append(s)
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}

_reg_on_exit() {
	reg_teardown
	if [ -n "$_REG_PREV_EXIT" ]; then eval "$_REG_PREV_EXIT"; fi
}

# Remembers the EXIT trap set before reg_setup (if any) so ours can run it after tearing down.
_reg_save_exit_trap() {
	local t
	t=$(trap -p EXIT)
	[ -n "$t" ] || return 0
	# `trap -p` prints: trap -- 'CMD' EXIT, quoted for eval; the third word is CMD.
	eval "t=( $t )"
	_REG_PREV_EXIT=${t[2]}
}

reg_setup() {
	local want_token=1
	[ "${1:-}" = --no-token ] && want_token=0
	if [ "$(id -u)" != 0 ]; then _reg_log "needs root"; return 1; fi
	if [ -n "$REG_NS" ]; then _reg_log "already set up ($REG_NS); one setup per shell"; return 1; fi
	local t
	for t in docker-registry skopeo htpasswd openssl curl python3 ip; do
		command -v "$t" >/dev/null 2>&1 || { _reg_log "missing $t"; return 1; }
	done
	_reg_save_exit_trap
	trap _reg_on_exit EXIT
	trap 'reg_teardown; exit 130' INT
	trap 'reg_teardown; exit 143' TERM

	REG_DIR=$(mktemp -d /tmp/sbxreg.XXXXXX) || return 1
	chmod 755 "$REG_DIR"
	mkdir -p "$REG_DIR/home/data" "$REG_DIR/home/run" "$REG_DIR/home/config"
	chmod 700 "$REG_DIR/home/run"
	REG_NS=sbxreg-$$
	if ! ip netns add "$REG_NS"; then
		_reg_log "ip netns add $REG_NS failed"; REG_NS=; reg_teardown; return 1
	fi
	echo "$REG_NS" >"$REG_DIR/netns"
	ip -n "$REG_NS" link set lo up || { reg_teardown; return 1; }

	_reg_certs || { reg_teardown; return 1; }
	htpasswd -Bbn "$REG_USER" "$REG_PASS" >"$REG_DIR/htpasswd" 2>/dev/null || { reg_teardown; return 1; }
	printf '{"default":[{"type":"insecureAcceptAnything"}]}\n' >"$REG_DIR/policy.json"
	: >"$REG_DIR/registries.conf"

	local ports p_tls p_plain p_token p_realm
	ports=$(_reg_ports 4) || { reg_teardown; return 1; }
	read -r p_tls p_plain p_token p_realm <<<"$ports"
	REG_TLS=127.0.0.1:$p_tls
	REG_PLAIN=127.0.0.1:$p_plain

	_reg_config tls "$p_tls" 1 "auth:
  htpasswd:
    realm: sbx-test-basic
    path: $REG_DIR/htpasswd"
	_reg_config plain "$p_plain" 0 ""
	_reg_start tls docker-registry serve "$REG_DIR/tls/config.yml"
	_reg_start plain docker-registry serve "$REG_DIR/plain/config.yml"
	if [ "$want_token" = 1 ]; then
		REG_TOKEN=127.0.0.1:$p_token
		REG_TOKEN_REALM=https://127.0.0.1:$p_realm/token
		_reg_config token "$p_token" 1 "auth:
  token:
    realm: $REG_TOKEN_REALM
    service: $REG_TOKEN_SERVICE
    issuer: sbx-test-issuer
    rootcertbundle: $REG_DIR/certs/token-signer.crt"
		_reg_start token docker-registry serve "$REG_DIR/token/config.yml"
		_reg_start realm python3 "$REG_IMAGES_DIR/tokenserver.py" --listen "127.0.0.1:$p_realm" \
			--tls-cert "$REG_DIR/certs/server.crt" --tls-key "$REG_DIR/certs/server.key" \
			--sign-key "$REG_DIR/certs/token-signer.key" --sign-cert "$REG_DIR/certs/token-signer.crt" \
			--issuer sbx-test-issuer --service "$REG_TOKEN_SERVICE" --user "$REG_USER" --password "$REG_PASS"
	fi

	# Docker-style certs.d and auth file, for clients (sbx, skopeo --cert-dir).
	REG_CERTS_DIR=$REG_DIR/certs.d
	local hp auths="" b64
	b64=$(printf '%s:%s' "$REG_USER" "$REG_PASS" | base64 -w0)
	for hp in $REG_TLS $REG_TOKEN; do
		mkdir -p "$REG_CERTS_DIR/$hp"
		cp "$REG_CA" "$REG_CERTS_DIR/$hp/ca.crt"
		auths="$auths${auths:+,}\"$hp\":{\"auth\":\"$b64\"}"
	done
	REG_AUTH_FILE=$REG_DIR/auth.json
	printf '{"auths":{%s}}\n' "$auths" >"$REG_AUTH_FILE"

	_reg_wait_url "https://$REG_TLS/v2/" --cacert "$REG_CA" || { _reg_dump_logs; reg_teardown; return 1; }
	_reg_wait_url "http://$REG_PLAIN/v2/" || { _reg_dump_logs; reg_teardown; return 1; }
	if [ "$want_token" = 1 ]; then
		_reg_wait_url "https://$REG_TOKEN/v2/" --cacert "$REG_CA" || { _reg_dump_logs; reg_teardown; return 1; }
		_reg_wait_url "$REG_TOKEN_REALM" --cacert "$REG_CA" || { _reg_dump_logs; reg_teardown; return 1; }
	fi
	# Our own readiness probes are not test traffic.
	reg_log_mark
	export REG_NS REG_DIR REG_TLS REG_PLAIN REG_TOKEN REG_TOKEN_REALM REG_CA REG_CERTS_DIR \
		REG_AUTH_FILE REG_USER REG_PASS REG_TOKEN_SERVICE
}

_reg_dump_logs() {
	local f
	for f in "$REG_DIR"/*/registry.log; do
		[ -f "$f" ] || continue
		_reg_log "--- $f"; tail -5 "$f" | sed 's/^/    /' >&2
	done
}

reg_push() {
	local src=$1 dest=$2 which=${3:-tls} hp df args
	hp=$(reg_hostport "$which") || return 1
	[ -n "$hp" ] || { _reg_log "registry $which not started"; return 1; }
	df=$(mktemp "$REG_DIR/digest.XXXXXX")
	args=(copy --quiet --all --preserve-digests --retry-times 0 --digestfile "$df")
	case $which in
	plain) args+=(--dest-tls-verify=false --dest-no-creds) ;;
	*) args+=(--dest-cert-dir "$REG_CERTS_DIR/$hp" --dest-creds "$REG_USER:$REG_PASS") ;;
	esac
	if ! reg_skopeo "${args[@]}" "$src" "docker://$hp/$dest" >&2; then
		rm -f "$df"; return 1
	fi
	cat "$df"; echo
	rm -f "$df"
}

reg_bearer_token() {
	local scope=$1 user=${2:-} pass=${3:-} auth=()
	[ -n "$user" ] && auth=(-u "$user:$pass")
	reg_exec curl -sf --max-time 10 --cacert "$REG_CA" "${auth[@]}" -G \
		--data-urlencode "service=$REG_TOKEN_SERVICE" --data-urlencode "scope=$scope" \
		"$REG_TOKEN_REALM" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}

reg_log_mark() {
	local n
	for n in tls plain token; do
		[ -f "$REG_DIR/$n/access.log" ] || continue
		wc -l <"$REG_DIR/$n/access.log" >"$REG_DIR/$n/mark"
	done
}

reg_blob_gets() {
	local digest=$1 which=${2:-all} n names total=0 c mark
	case $which in all) names="tls plain token" ;; *) names=$which ;; esac
	for n in $names; do
		[ -f "$REG_DIR/$n/access.log" ] || continue
		mark=$(cat "$REG_DIR/$n/mark" 2>/dev/null || echo 0)
		# combined log: ... "GET /v2/<name>/blobs/<digest> HTTP/1.1" 200 <bytes> ...
		c=$(tail -n +"$((mark + 1))" "$REG_DIR/$n/access.log" |
			grep -cE "\"GET /v2/[^ ]+/blobs/$digest HTTP/[0-9.]+\" 200 ")
		total=$((total + c))
	done
	echo "$total"
}

reg_teardown() {
	local pid
	for pid in "${_REG_PIDS[@]}"; do
		kill "$pid" 2>/dev/null
	done
	for pid in "${_REG_PIDS[@]}"; do
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	_REG_PIDS=()
	if [ -n "$REG_NS" ]; then
		# Anything still inside was started by a test through reg_exec and outlived it: say so
		# rather than kill what we did not start ourselves.
		local left
		left=$(ip netns pids "$REG_NS" 2>/dev/null | tr '\n' ' ')
		[ -n "$left" ] && _reg_log "processes still in $REG_NS: $left"
		ip netns del "$REG_NS" 2>/dev/null
		REG_NS=
	fi
	if [ -n "$REG_DIR" ] && [ -d "$REG_DIR" ]; then
		rm -rf "$REG_DIR"
	fi
	REG_DIR=
}
