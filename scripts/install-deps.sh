#!/bin/sh
# Installs the Debian 12 packages sbx needs to build, test and benchmark.
# Idempotent: only missing packages are installed, so a second run costs one dpkg query.
# clang and libclang-rt-14-dev (libFuzzer's runtime, libclang_rt.fuzzer-x86_64.a) build the fuzz
# harnesses of tests/fuzz (the `fuzz` layer of `make check`, `make fuzz`).
set -eu
BUILD="build-essential pkg-config libseccomp-dev libcap-dev libjansson-dev libcunit1-dev
       libnl-3-dev libnl-route-3-dev libmicrohttpd-dev libsqlite3-dev libnftables-dev
       libcurl4-openssl-dev libarchive-dev libssl-dev busybox-static uidmap iproute2 nftables curl
       jq sqlite3"
TEST="bubblewrap crun runc containerd procps psmisc nodejs npm python3 hey wrk bc linux-perf
      docker-registry skopeo apache2-utils openssl zstd umoci time clang libclang-rt-14-dev podman"
VM="qemu-system-x86 linux-image-amd64 cpio"
want="$BUILD $TEST"
case "${1:-}" in --with-vm) want="$want $VM" ;; esac
missing=""
for p in $want; do
	# Node may come from elsewhere (e.g. NodeSource's nodejs bundles npm and conflicts with
	# Debian's npm): a working command is as good as the package.
	case $p in
	nodejs) command -v node >/dev/null 2>&1 && continue ;;
	npm) command -v npm >/dev/null 2>&1 && continue ;;
	python3) command -v python3 >/dev/null 2>&1 && continue ;; # the test helpers and benches
	esac
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in *"ok installed"*) ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing packages:$missing (run as root to install them)" >&2
	exit 1
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
