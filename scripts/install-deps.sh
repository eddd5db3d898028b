#!/bin/sh
# Installs the Debian 12 packages sbx needs, by group; only missing packages are installed, so a
# second run costs one dpkg query.
#   scripts/install-deps.sh [run] [check] [bench] [vm]     (no group: all of them)
#   run    build and run sbx (`make`, `make run`): compiler, the libraries' -dev packages,
#          busybox-static (the busybox image), uidmap (newuidmap for rootless id ranges),
#          iproute2, curl (the README's examples)
#   check  + everything `make check` uses: the peers the tests compare with or drive (bubblewrap,
#          crun, runc, containerd), registries and image tools (docker-registry, skopeo, umoci,
#          htpasswd, openssl, zstd), podman (tests/integration/t_podman.sh), Node for the SDK test, nft/jq/sqlite3 to inspect what apid
#          did, clang and libclang-rt-14-dev (libFuzzer) for tests/fuzz, the smoke run of the
#          benchmarks, and the vm group
#   bench  + what `make bench` and `make profile` measure with: hey, wrk, linux-perf, bc, time,
#          and the peers bubblewrap, crun, runc
#   vm     + the cgroup v2 VM of tests/vm: QEMU, Debian's kernel, cpio (`make vm-check`)
# --with-vm (older spelling) is `check`.
set -eu
RUN="build-essential pkg-config libseccomp-dev libcap-dev libjansson-dev libnl-3-dev
     libnl-route-3-dev libmicrohttpd-dev libsqlite3-dev libnftables-dev libcurl4-openssl-dev
     libarchive-dev libssl-dev busybox-static uidmap iproute2 curl"
PEERS="bubblewrap crun runc"
BENCH="$PEERS hey wrk bc linux-perf time procps"
VM="qemu-system-x86 linux-image-amd64 cpio kmod xz-utils"
CHECK="$PEERS containerd procps psmisc nodejs npm python3 libcunit1-dev docker-registry skopeo
       apache2-utils openssl zstd umoci nftables jq sqlite3 clang clang-format libclang-rt-14-dev podman $BENCH
       $VM"
want=""
[ $# -gt 0 ] || set -- all
for g in "$@"; do
	case $g in
	run) want="$want $RUN" ;;
	check | --with-vm) want="$want $RUN $CHECK" ;;
	bench) want="$want $RUN $BENCH python3" ;;
	vm) want="$want $RUN $VM" ;;
	all) want="$want $RUN $CHECK $BENCH $VM" ;;
	*) echo "install-deps: unknown group \`$g' (run, check, bench, vm)" >&2; exit 2 ;;
	esac
done
missing=""
for p in $want; do
	case " $missing " in *" $p "*) continue ;; esac
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
