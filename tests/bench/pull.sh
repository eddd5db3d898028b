#!/bin/bash
# Image pulls, side by side: `sbxrun pull` against `skopeo copy` + `umoci unpack` and containerd's
# `ctr image pull` (overlayfs snapshotter), the same ~100 MiB five-layer gzip image from the same
# local registry (tests/images/registry.sh: docker-registry, plain HTTP, in a private network
# namespace on 127.0.0.1). Each pull goes into a new, empty store (`sync` run before it, outside
# the timing), the tools in turn, N rounds (the order rotates each round), so the VM's drift hits
# each alike. Reports wall-clock medians, the `sync` that follows (what a tool left for writeback)
# and peak RSS; then the start latency of a sandbox from the pulled image against the built
# busybox image (tests/bench/interleave.py, RUNS rounds).
#
# Nothing is deleted until the end (about 400 MiB of disk per round): on an ext4 without a journal
# (this VM's root) every inode allocation skips, one buffer-cache lookup each, the group's inodes
# freed in the last minute (six while their inode table block is not written back:
# recently_deleted() in the kernel). A pull right after the removal of the previous pull's 7,000
# files spent 50-70% of its time there (perf), every tool 0.5-0.6 s more; so figures taken
# within minutes of a large deletion on that file system (another suite's clean-up) are high.
#   bash tests/bench/pull.sh      N=5 PULL_WARMUP=1 RUNS=200 WARMUP=10 PULL_WORKDIR=/var/tmp
#                                 (env overrides; PULL_WARMUP rounds are not counted)
#
# Peak RSS: `/usr/bin/time -f %M` of the puller (the largest process of its tree); skopeo+umoci is
# the larger of the two steps, which run one after the other. containerd's pull runs in two
# processes at once, ctr (fetches the blobs into the daemon's content store) and the daemon (writes
# them, unpacks the layers): its figure is the client's peak plus the daemon's VmHWM, a bound on
# their peak together. The daemon's VmHWM cannot be reset, so every ctr round starts a fresh
# containerd (its own --root/state/socket in the work dir, in the registry's netns; not timed) and
# stops it by its pid after; that also gives it an empty store.
#
# Everything lives in one work dir on /var/tmp (the same ext4 file system as /var/lib/sbx for every
# tool); the whole script runs in a private mount namespace with a tmpfs on /run (as run.sh: sbx's
# state dir). Bounded: every pull has a timeout, every wait a count. Removes what it made: the
# registry and its netns (reg_teardown), containerd, any mount below the work dir, the work dir.
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
. "$TOP/tests/bench/lib.sh"
SBXRUN=${SBX_BIN:-$TOP/build/bin}/sbxrun
N=${N:-5} PULL_WARMUP=${PULL_WARMUP:-1} RUNS=${RUNS:-200} WARMUP=${WARMUP:-10}
BUILT=${SBX_IMAGES:-/var/lib/sbx/images} # the built images (busybox: base layer, start peer)
[ "$(id -u)" = 0 ] || { echo "pull bench: needs root" >&2; exit 1; }
for t in skopeo umoci containerd ctr docker-registry /usr/bin/time python3; do
	command -v "$t" >/dev/null || { echo "pull bench: needs $t (scripts/install-deps.sh)" >&2; exit 1; }
done
[ -d "$BUILT/busybox/rootfs" ] || { echo "pull bench: no busybox image in $BUILT (make rootfs)" >&2; exit 1; }
if [ -z "${SBX_BENCH_PULL_NS:-}" ]; then
	export SBX_BENCH_PULL_NS=1
	exec unshare -m --propagation private sh -c '
		[ "$(stat -f -c %T /run)" = tmpfs ] || mount -t tmpfs -o mode=755 tmpfs /run || exit 1
		exec bash "$0" "$@"' "$0" "$@"
fi
. "$TOP/tests/images/registry.sh"

T=$(mktemp -d "${PULL_WORKDIR:-/var/tmp}/sbx-bench-pull.XXXXXX") || exit 1
chmod 755 "$T" # the sandboxes' mapped root reaches the pulled layers below it
CTRD_PID=
die() { echo "pull bench: $*" >&2; exit 1; }
umount_below() { # DIR: every mount below DIR in this namespace, deepest first
	awk -v d="$1/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r |
		while read -r m; do umount -l "$m"; done
}
ctrd_stop() {
	[ -n "$CTRD_PID" ] || return 0
	kill -TERM "$CTRD_PID" 2>/dev/null
	for _ in $(seq 100); do kill -0 "$CTRD_PID" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$CTRD_PID" 2>/dev/null
	wait "$CTRD_PID" 2>/dev/null
	CTRD_PID=
}
cleanup() {
	ctrd_stop
	reg_teardown
	umount_below "$T"
	rm -rf "$T"
}
trap cleanup EXIT
reg_setup --no-token || die "registry setup failed"
# registry.sh's traps tear the registry down first; containerd must stop before its netns goes.
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- The image: five gzip layers from host files, bottom first.
src=$T/src
mkdir -p "$src/base" "$src/python/usr/lib" "$src/perl/usr/share" "$src/doc/usr/share/doc" "$src/tz/usr/share"
py=$(ls -d /usr/lib/python3.* 2>/dev/null | head -1)
[ -n "$py" ] && [ -d /usr/share/perl ] && [ -d /usr/share/doc ] && [ -d /usr/share/zoneinfo ] ||
	die "needs /usr/lib/python3.*, /usr/share/perl, /usr/share/doc, /usr/share/zoneinfo"
cp -a "$BUILT/busybox/rootfs/." "$src/base/" &&
	cp -a "$py" "$src/python/usr/lib/" &&
	cp -a /usr/share/perl "$src/perl/usr/share/" &&
	cp -a /usr/share/zoneinfo "$src/tz/usr/share/" || die "copying the layers' files failed"
# /usr/share/doc's package directories in name order, up to 32 MiB.
kib=0
for d in /usr/share/doc/*/; do
	[ -L "${d%/}" ] && continue
	s=$(du -sk "$d" | cut -f1)
	[ $((kib + s)) -gt 32768 ] && continue
	cp -a "${d%/}" "$src/doc/usr/share/doc/" || die "copying $d failed"
	kib=$((kib + s))
done
t0=${EPOCHREALTIME/./}
python3 "$TOP/tests/images/mkimage.py" layout "$T/layout" --tag v1 --layer "$src/base" \
	--layer "$src/python" --layer "$src/perl" --layer "$src/doc" --layer "$src/tz" \
	--env PATH=/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/sh >"$T/image.json" || die "mkimage failed"
nfiles=$(find "$src" -mindepth 2 | wc -l) usize=$(du -sb "$src" | cut -f1)
REPO=bench/pull:v1
REF=$REG_PLAIN/$REPO
digest=$(reg_push "oci:$T/layout:v1" "$REPO" plain) || die "push failed"
csize=$(python3 -c 'import json, sys; print(sum(l["size"] for l in json.load(open(sys.argv[1]))["layers"]))' "$T/image.json")
printf 'image %s (%s): 5 gzip layers, %.1f MiB compressed, %.1f MiB of files (%d entries); built and pushed in %.1f s\n' \
	"$REF" "$digest" "$(echo "$csize / 1048576" | bc -l)" "$(echo "$usize / 1048576" | bc -l)" "$nfiles" \
	"$(echo "(${EPOCHREALTIME/./} - $t0) / 1000000" | bc -l)"
read -r dev fstype < <(findmnt -n -o SOURCE,FSTYPE -T "$T")
journal=
[ "$fstype" = ext4 ] && { [ -d "/proc/fs/jbd2/${dev##*/}-8" ] && journal=" (journal)" || journal=" (no journal: see above)"; }
echo "stores in $T: $dev, $fstype$journal"

# --- The pullers. Each: prepare (untimed), pull (timed), sync (timed apart), measure.
export SBX_REGISTRIES_CONF=$T/registries.json
printf '{"insecure": ["%s"]}\n' "$REG_PLAIN" >"$SBX_REGISTRIES_CONF"
# What reg_skopeo sets (a private policy and blob-info cache), without its wrappers.
SKOPEO_ENV=(env _CONTAINERS_ROOTLESS_UID=4242 HOME="$REG_DIR/home" XDG_DATA_HOME="$REG_DIR/home/data"
	XDG_RUNTIME_DIR="$REG_DIR/home/run" XDG_CONFIG_HOME="$REG_DIR/home/config"
	CONTAINERS_REGISTRIES_CONF="$REG_DIR/registries.conf")
TO=120 # seconds, any one step

now_us() { echo "${EPOCHREALTIME/./}"; }
HZ=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # PID: its user + system CPU, in ticks
in_ns() { ip netns exec "$REG_NS" "$@"; }
# timed OUT_PREFIX CMD...: runs CMD under /usr/bin/time in the netns; writes OUT_PREFIX.ms (wall),
# .rss (peak, KiB), .cpu (user + system, ms, its whole process tree).
timed() {
	local out=$1 t0 t1 rc
	shift
	t0=$(now_us)
	in_ns /usr/bin/time -f '%M %U %S' -o "$out.time" timeout "$TO" "$@" >/dev/null 2>"$out.err"
	rc=$?
	t1=$(now_us)
	[ "$rc" = 0 ] || { cat "$out.err" >&2; die "failed (exit $rc): $*"; }
	echo $(((t1 - t0) / 1000)) >"$out.ms"
	local rss u sy
	read -r rss u sy <"$out.time"
	echo "$rss" >"$out.rss"
	awk -v u="$u" -v s="$sy" 'BEGIN {printf "%d\n", (u + s) * 1000}' >"$out.cpu"
}
timed_sync() { # OUT_PREFIX: a `sync` right after the pull, what the tool left dirty
	local t0
	t0=$(now_us)
	sync
	echo $((($(now_us) - t0) / 1000)) >"$1.sync"
}

ctrd_start() { # DIR: a containerd of its own in DIR; sets CTRD_PID, CSOCK
	mkdir -p "$1" || return 1
	CSOCK=$1/containerd.sock
	cat >"$1/config.toml" <<-EOF
	version = 2
	root = "$1/root"
	state = "$1/state"
	disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs",
	  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper",
	  "io.containerd.snapshotter.v1.zfs"]
	[grpc]
	  address = "$CSOCK"
	[plugins."io.containerd.internal.v1.opt"]
	  path = "$1/opt"
	EOF
	# `ip netns exec` execs containerd in place: $! is the daemon's pid.
	ip netns exec "$REG_NS" containerd --config "$1/config.toml" --log-level warn \
		>>"$T/containerd.log" 2>&1 </dev/null &
	CTRD_PID=$!
	for _ in $(seq 200); do
		ctr --address "$CSOCK" version >/dev/null 2>&1 && return 0
		kill -0 "$CTRD_PID" 2>/dev/null || break
		sleep 0.05
	done
	tail -5 "$T/containerd.log" >&2
	return 1
}

# pull_TOOL OUT_PREFIX DIR: one pull into the new directory DIR.
pull_sbx() {
	mkdir -p "$2" && chmod 755 "$2" || die "mkdir $2"
	export SBX_IMAGES=$2
	sync
	timed "$1" "$SBXRUN" pull -q "$REF"
	timed_sync "$1"
}
pull_skopeo() {
	mkdir -p "$2" || die "mkdir $2"
	sync
	timed "$1.copy" "${SKOPEO_ENV[@]}" skopeo --policy "$REG_DIR/policy.json" copy --quiet \
		--retry-times 0 --src-tls-verify=false --src-no-creds "docker://$REF" "oci:$2/oci:v1"
	timed "$1.unpack" umoci unpack --image "$2/oci:v1" "$2/bundle"
	timed_sync "$1"
	[ -x "$2/bundle/rootfs/bin/busybox" ] && [ -d "$2/bundle/rootfs/${py#/}" ] || die "umoci's rootfs is incomplete"
	echo $(($(cat "$1.copy.ms") + $(cat "$1.unpack.ms"))) >"$1.ms"
	echo $(($(cat "$1.copy.cpu") + $(cat "$1.unpack.cpu"))) >"$1.cpu"
	local a b
	a=$(cat "$1.copy.rss") b=$(cat "$1.unpack.rss")
	echo $((a > b ? a : b)) >"$1.rss"
}
pull_ctr() {
	ctrd_start "$2" || die "containerd did not start"
	awk '/^VmHWM:/{print $2}' "/proc/$CTRD_PID/status" >"$1.idle"
	local ticks0
	ticks0=$(ticks "$CTRD_PID")
	sync
	timed "$1.client" ctr --address "$CSOCK" -n sbxbench image pull --plain-http \
		--snapshotter overlayfs "$REF"
	cp "$1.client.ms" "$1.ms"
	awk '/^VmHWM:/{print $2}' "/proc/$CTRD_PID/status" >"$1.daemon"
	echo $((($(ticks "$CTRD_PID") - ticks0) * 1000 / HZ + $(cat "$1.client.cpu"))) >"$1.cpu"
	timed_sync "$1"
	[ "$(ctr --address "$CSOCK" -n sbxbench snapshots --snapshotter overlayfs ls | grep -c Committed)" = 5 ] ||
		die "containerd did not unpack the 5 layers"
	echo $(($(cat "$1.client.rss") + $(cat "$1.daemon"))) >"$1.rss"
	ctrd_stop
}

tools=(sbx skopeo ctr)
mkdir -p "$T/m" "$T/w"
echo "pulls: $N rounds of ${tools[*]} (order rotating) after $PULL_WARMUP of warm-up, each into an empty store"
for ((r = -PULL_WARMUP; r < N; r++)); do
	for ((k = 0; k < ${#tools[@]}; k++)); do
		tool=${tools[$(((k + r + PULL_WARMUP) % ${#tools[@]}))]}
		if [ "$r" -lt 0 ]; then "pull_$tool" "$T/w/$tool.$r" "$T/$tool.w$r"; else "pull_$tool" "$T/m/$tool.$r" "$T/$tool.$r"; fi
	done
	[ "$r" -lt 0 ] && continue
	printf '  round %d: sbx %s ms, skopeo+umoci %s ms, ctr %s ms\n' $((r + 1)) \
		"$(cat "$T/m/sbx.$r.ms")" "$(cat "$T/m/skopeo.$r.ms")" "$(cat "$T/m/ctr.$r.ms")"
done
# The pulled image's record must be the pushed manifest.
[ "$(in_ns "$SBXRUN" pull -q "$REF" 2>/dev/null)" = "$digest" ] || die "sbx's store does not hold $digest"

med() { # FILES...: median of their first numbers (lower middle for an even count)
	cat "$@" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
}
range() { cat "$@" | sort -n | awk 'NR == 1 {a = $1} {b = $1} END {printf "%s-%s", a, b}'; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
m() { med "$T"/m/$1; } # GLOB below $T/m
echo
row() { printf '%-26s %9s %11s %8s %8s %9s  %s\n' "$@"; }
row puller median_ms range_ms cpu_ms sync_ms rss_MiB "detail (medians)"
row "sbxrun pull" "$(m 'sbx.*.ms')" "$(range "$T"/m/sbx.*.ms)" "$(m 'sbx.*.cpu')" "$(m 'sbx.*.sync')" \
	"$(mib "$(m 'sbx.*.rss')")" "one process (sbx-image)"
row "skopeo copy + umoci unpack" "$(m 'skopeo.*[0-9].ms')" "$(range "$T"/m/skopeo.*[0-9].ms)" \
	"$(m 'skopeo.*[0-9].cpu')" "$(m 'skopeo.*.sync')" "$(mib "$(m 'skopeo.*[0-9].rss')")" \
	"copy $(m 'skopeo.*.copy.ms') ms $(mib "$(m 'skopeo.*.copy.rss')") MiB, unpack $(m 'skopeo.*.unpack.ms') ms $(mib "$(m 'skopeo.*.unpack.rss')") MiB"
row "ctr image pull (overlayfs)" "$(m 'ctr.*[0-9].ms')" "$(range "$T"/m/ctr.*[0-9].ms)" \
	"$(m 'ctr.*[0-9].cpu')" "$(m 'ctr.*.sync')" "$(mib "$(m 'ctr.*[0-9].rss')")" \
	"ctr $(mib "$(m 'ctr.*.client.rss')") MiB + containerd $(mib "$(m 'ctr.*.daemon')") MiB (idle $(mib "$(m 'ctr.*.idle')"))"
echo "(cpu_ms: user + system of every process of the pull; sync_ms: a \`sync\` right after it, what"
echo " it left to write back, not in median_ms; rss: peak, containerd's client + daemon)"

sbx_ms=$(m 'sbx.*.ms') sk_ms=$(m 'skopeo.*[0-9].ms') ctr_ms=$(m 'ctr.*[0-9].ms')
sbx_rss=$(m 'sbx.*.rss') sk_rss=$(m 'skopeo.*[0-9].rss') ctr_rss=$(m 'ctr.*[0-9].rss')
if [ "$sk_ms" -le "$ctr_ms" ]; then best=skopeo+umoci best_ms=$sk_ms other=ctr other_ms=$ctr_ms
else best=ctr best_ms=$ctr_ms other=skopeo+umoci other_ms=$sk_ms; fi
if [ "$sk_rss" -le "$ctr_rss" ]; then rbest=skopeo+umoci rbest_v=$sk_rss; else rbest=ctr rbest_v=$ctr_rss; fi
result "sbxrun pull, 100 MiB 5-layer image, median" "$sbx_ms" ms lower peer "$best" "$best_ms"
result "sbxrun pull, same, vs the other peer" "$sbx_ms" ms lower - "$other" "$other_ms"
result "sbxrun pull, peak RSS" "$(mib "$sbx_rss")" MiB lower - "$rbest" "$(mib "$rbest_v")"

# --- Start latency from the pulled image against the built busybox, as run.sh measures.
ln -s "$BUILT/busybox" "$SBX_IMAGES/busybox" # --image busybox: the built image, same store dir
names=(pulled busybox pulled-overlay busybox-overlay)
cmds=(
	"$SBXRUN run --read-only --net none --image $REF -- /bin/true"
	"$SBXRUN run --read-only --net none --image busybox -- /bin/true"
	"$SBXRUN run --net none --image $REF -- /bin/true"
	"$SBXRUN run --net none --image busybox -- /bin/true"
)
args=()
for i in "${!names[@]}"; do args+=("${names[$i]}=${cmds[$i]}"); done
echo
echo "start latency: $RUNS runs each, interleaved (pulled: 5 overlayfs lower layers; busybox: one bound dir)"
python3 "$TOP/tests/bench/interleave.py" "$RUNS" "$WARMUP" "${args[@]}" >"$T/seq.txt" || die "start latency run failed"
printf '%-36s %10s %10s\n' "sbxrun run --net none -- /bin/true" median_ms p99_ms
awk '{printf "%-36s %10.2f %10.2f\n", ($1 ~ /overlay/ ? $1 : $1 " --read-only"), $2, $3}' "$T/seq.txt"
get() { awk -v n="$1" '$1 == n {print $2}' "$T/seq.txt"; }
result "sbxrun run --read-only, pulled image, median" "$(get pulled)" ms lower - busybox "$(get busybox)"
result "sbxrun run (overlay), pulled image, median" "$(get pulled-overlay)" ms lower - busybox "$(get busybox-overlay)"
