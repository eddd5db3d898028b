#!/bin/bash
# Podman as a second OCI consumer: Debian's podman drives the built sbxrun through
# `--runtime`, on an image imported from the busybox rootfs (no registry), with storage, run,
# lock, network-config and event directories of its own under one temp dir and its cgroups
# under a parent of its own, so it never touches the host's podman state. Also the runtime's own
# refusals of linux.sysctl entries that podman refuses before it gets there.
. "$(dirname "$0")/../lib.sh"
require_root "podman" || finish
if ! command -v podman >/dev/null; then
	skip "podman" "podman not installed (scripts/install-deps.sh installs it)"
	finish
fi

TMP=$(mktemp -d /tmp/sbx-t-podman.XXXXXX)
NAME=$(basename "$TMP")
CGP=/$NAME # --cgroup-parent: every cgroup podman and sbxrun make for it lives below this
IMG=localhost/sbx-busybox:test
# Not under the snapshot's eyes otherwise: podman's own places on a host.
podman_host_state() {
	stat -c '%n %Y' /var/lib/containers/cache/* 2>/dev/null
	ls -d /var/lib/containers /run/containers /run/libpod /etc/containers/networks \
		/dev/shm/libpod_lock /dev/shm/libpod_rootless_lock_0 2>/dev/null
	find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -type d \( -name 'libpod*' -o -name "$NAME" \) 2>/dev/null
	ls /run/netns 2>/dev/null
}
snap_before=$(host_snapshot)
podman_before=$(podman_host_state)

# podman asks for RLIMIT_NOFILE and RLIMIT_NPROC of 1048576, which only a caller with
# CAP_SYS_RESOURCE may set (the test host's root has none), after lowering its own (so conmon's
# and the runtime's) hard RLIMIT_NPROC to 32768: defaults within those limits instead.
nofile=$(ulimit -Hn)
nproc=$(ulimit -Hu)
[ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ] && nproc=32768
# lock_type=file: the default shm lock (/dev/shm/libpod_lock) is shared by every podman on the
# host. network_config_dir: podman writes its default network's config there. default_sysctls:
# CONTAINERS_CONF replaces every other containers.conf, Debian's with it, which sets this one.
cat >"$TMP/containers.conf" <<EOF
[containers]
default_sysctls = ["net.ipv4.ping_group_range=0 0"]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
lock_type = "file"
events_logfile_path = "$TMP/events.log"
volume_path = "$TMP/volumes"
[network]
network_config_dir = "$TMP/networks"
EOF
cat >"$TMP/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$TMP/root"
runroot = "$TMP/run"
EOF
export CONTAINERS_CONF=$TMP/containers.conf CONTAINERS_STORAGE_CONF=$TMP/storage.conf
export XDG_CONFIG_HOME=$TMP/xdg-config XDG_DATA_HOME=$TMP/xdg-data XDG_RUNTIME_DIR=$TMP/xdg-run
P() {
	timeout 60 podman --root "$TMP/root" --runroot "$TMP/run" --tmpdir "$TMP/tmp" \
		--storage-driver vfs --cgroup-manager cgroupfs --events-backend file \
		--runtime "$SBXRUN" "$@"
}
R() { P run --network none --cgroup-parent "$CGP" "$@"; }
# podman 4.3 (containers/image) keeps a blob-info cache in /var/lib/containers/cache whatever
# --root says, and writes it on every image copy: the import runs in a private mount namespace
# with a tmpfs on /var/lib, so the host's is neither created nor changed.
PI() {
	timeout 60 unshare -m --propagation private sh -c 'mount -t tmpfs -o size=16m t-podman /var/lib && exec "$@"' \
		sh podman --root "$TMP/root" --runroot "$TMP/run" --tmpdir "$TMP/tmp" \
		--storage-driver vfs --cgroup-manager cgroupfs --events-backend file "$@"
}

cleanup() {
	P rm -a -f -t 0 >/dev/null 2>&1
	P rmi -a -f >/dev/null 2>&1
	# conmon exits with its container; one left is ours only if it names our temp dir.
	for p in $(pgrep -f "conmon.*$TMP" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
	grep " $TMP" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
	find /sys/fs/cgroup -mindepth 2 -maxdepth 2 -type d -name "$NAME" 2>/dev/null |
		while read -r d; do find "$d" -depth -type d -exec rmdir {} + 2>/dev/null; done
	for r in "$TMP/sbx"; do
		for id in $(ls "$r" 2>/dev/null); do "$SBXRUN" --root "$r" delete --force "$id" >/dev/null 2>&1; done
	done
	rm -rf "$TMP"
}
trap cleanup EXIT

# --- an image from the busybox rootfs, no registry ----------------------------------------------
out=$(tar -C "$SBX_IMAGES/busybox/rootfs" -c . | PI import - "$IMG" 2>&1); rc=$?
expect_eq "podman import of the busybox rootfs" 0 "$rc"
[ "$rc" = 0 ] || { echo "$out" | tail -5 | sed 's/^/    /'; finish; }

# --- run: output and exit status pass through ---------------------------------------------------
out=$(R --rm "$IMG" sh -c 'echo hello from podman; exit 3' 2>&1); rc=$?
expect_eq "run: output passes through" "hello from podman" "$out"
expect_eq "run: exit status passes through" 3 "$rc"
expect_eq "run: the runtime is sbxrun" "$(realpath "$SBXRUN")" \
	"$(P info --format '{{.Host.OCIRuntime.Path}}' 2>&1 | xargs realpath 2>&1)"

# --- linux.sysctl: podman's default net.ipv4.ping_group_range, an IPC and a network one --------
host_msgmax=$(cat /proc/sys/kernel/msgmax)
host_fwd=$(cat /proc/sys/net/ipv4/ip_forward)
host_pgr=$(cat /proc/sys/net/ipv4/ping_group_range | xargs)
out=$(R --rm --sysctl kernel.msgmax=65530 --sysctl net.ipv4.ip_forward=1 \
	--sysctl fs.mqueue.msg_max=17 "$IMG" sh -c \
	'cat /proc/sys/kernel/msgmax /proc/sys/net/ipv4/ip_forward /proc/sys/fs/mqueue/msg_max' 2>&1)
expect_eq "run --sysctl: IPC, network and mqueue values read back inside" "65530 1 17" \
	"$(echo $out)"
expect_eq "run: podman's default net.ipv4.ping_group_range is set" "0 0" \
	"$(R --rm "$IMG" cat /proc/sys/net/ipv4/ping_group_range 2>&1 | xargs)"
expect_eq "the host's own values are unchanged" "$host_msgmax $host_fwd $host_pgr" \
	"$(cat /proc/sys/kernel/msgmax /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/ping_group_range | xargs)"
expect_eq "/proc/sys stays read-only after the sysctls are applied" "refused" \
	"$(R --rm --sysctl kernel.msgmax=65530 "$IMG" sh -c '(echo 1 >/proc/sys/kernel/msgmax) 2>/dev/null && echo written || echo refused' 2>&1)"
out=$(R --rm --sysctl vm.swappiness="$(cat /proc/sys/vm/swappiness)" "$IMG" true 2>&1); rc=$?
expect_match "run --sysctl vm.swappiness: refused (125), named" "^125 .*vm\.swappiness" "$rc $out"

# --- the runtime's own refusals (podman refuses these before asking it) -------------------------
mkdir -p "$TMP/b"
cp -a "$SBX_IMAGES/busybox/rootfs" "$TMP/b/rootfs"
(cd "$TMP/b" && runc spec 2>/dev/null || crun spec 2>/dev/null)
cp "$TMP/b/config.json" "$TMP/config.orig"
sysctl_bundle() { # SYSCTL_JSON NS_EDIT(python expression on the namespaces list `ns`)
	python3 - "$TMP/config.orig" "$TMP/b/config.json" "$1" "$2" <<'EOF'
import json, sys
orig, p, sysctl, edit = sys.argv[1:5]
c = json.load(open(orig))
c['root'] = {'path': 'rootfs', 'readonly': True}
c['process']['args'] = ['cat', '/proc/sys/kernel/msgmax']
c['process']['terminal'] = False
c['linux']['sysctl'] = json.loads(sysctl)
c['linux'].pop('cgroupsPath', None)
ns = [n for n in c['linux']['namespaces'] if n['type'] != 'network'] + [{'type': 'network'}]
exec(edit)
c['linux']['namespaces'] = ns
json.dump(c, open(p, 'w'))
EOF
}
S() { timeout 20 "$SBXRUN" --root "$TMP/sbx" "$@"; }
# Each refused one asks for the value the host already has: should the check ever let one
# through, the write lands on the host's kernel but changes nothing there.
js() { python3 -c 'import json, sys; print(json.dumps({sys.argv[1]: open(sys.argv[2]).read().rstrip("\n")}))' "$1" "/proc/sys/${1//.//}"; }
sysctl_bundle "$(js vm.swappiness)" ''
out=$(S run --bundle "$TMP/b" s1 2>&1); rc=$?
expect_eq "sbxrun: a global sysctl is refused, and says why" \
	"125 sbxrun: sysctl \`vm.swappiness\` is not namespaced: setting it would change the host" "$rc $out"
sysctl_bundle "$(js kernel.core_pattern)" ''
expect_match "sbxrun: kernel.core_pattern is refused" "is not namespaced" "$(S run --bundle "$TMP/b" s2 2>&1)"
sysctl_bundle "$(js kernel.msgmax)" "ns = [n for n in ns if n['type'] != 'ipc']"
expect_match "sbxrun: an IPC sysctl without an IPC namespace is refused" \
	"kernel\.msgmax. needs the sandbox's own IPC namespace: it shares the host's" "$(S run --bundle "$TMP/b" s3 2>&1)"
sysctl_bundle "$(js net.ipv4.ip_forward)" "ns = [n for n in ns if n['type'] != 'network']"
expect_match "sbxrun: a network sysctl in the host's network namespace is refused" \
	"ip_forward. needs the sandbox's own network namespace" "$(S run --bundle "$TMP/b" s4 2>&1)"
sysctl_bundle "$(js net.ipv4.ip_forward)" \
	"ns = [n for n in ns if n['type'] != 'network'] + [{'type': 'network', 'path': '/proc/self/ns/net'}]"
expect_match "sbxrun: ... also when it is joined by path" \
	"ip_forward. needs the sandbox's own network namespace" "$(S run --bundle "$TMP/b" s5 2>&1)"
sysctl_bundle '{"net.ipv4..ip_forward": "1"}' ''
expect_match "sbxrun: a malformed name is refused" "not a valid name" "$(S run --bundle "$TMP/b" s6 2>&1)"
sysctl_bundle '{"kernel.msgmax": "65532", "net.ipv4.ip_forward": "1"}' ''
expect_eq "sbxrun: namespaced ones apply (read-only root, own namespaces)" "65532" \
	"$(S run --bundle "$TMP/b" s7 2>&1)"
expect_eq "sbxrun: no state left by the refused ones" "none" \
	"$(ls "$TMP/sbx" 2>/dev/null | grep -E '^s[1-6]$' || echo none)"
expect_eq "sbxrun: the host's values are unchanged" "$host_msgmax $host_fwd" \
	"$(cat /proc/sys/kernel/msgmax /proc/sys/net/ipv4/ip_forward | xargs)"

# --- error messages name the resource -----------------------------------------------------------
out=$(R --rm --ulimit nofile=1048577:1048577 "$IMG" true 2>&1)
expect_match "a failing rlimit is named with its value" \
	"setrlimit RLIMIT_NOFILE \(1048577\): Operation not permitted" "$out"

# --- run -d, exec, logs, resources, pause/unpause, ps, stop, rm ---------------------------------
cid=$(R -d --memory 64m --pids-limit 50 --sysctl kernel.shmmax=123456789 "$IMG" \
	sh -c 'echo started; exec sleep 300' 2>&1); rc=$?
expect_eq "run -d" 0 "$rc"
cid=$(echo "$cid" | tail -1)
for _ in $(seq 50); do P logs "$cid" 2>/dev/null | grep -q started && break; sleep 0.1; done
expect_eq "logs shows the detached program's output" started "$(P logs "$cid" 2>&1)"
expect_eq "exec: output and status pass through" "in-exec 123456789 4" \
	"$( (P exec "$cid" sh -c 'echo in-exec $(cat /proc/sys/kernel/shmmax); exit 4'; echo $?) 2>&1 | xargs)"
expect_match "ps shows the container running" "^${cid:0:12} +Up" \
	"$(P ps --format '{{.ID}} {{.Status}}' 2>&1)"
pid=$(P inspect --format '{{.State.Pid}}' "$cid" 2>/dev/null)
# The path of its cgroup for a controller (v1), or its one cgroup (v2).
cg_of() {
	awk -F: -v c="$1" '{n = split($2, a, ","); for (i = 1; i <= n; i++) if (a[i] == c) print $3}
		$1 == 0 && $2 == "" {v2 = $3} END {if (v2 != "") print v2}' "/proc/$pid/cgroup" 2>/dev/null | head -1
}
if [ -d /sys/fs/cgroup/memory ]; then
	mem=$(cat "/sys/fs/cgroup/memory$(cg_of memory)/memory.limit_in_bytes" 2>&1)
	pids=$(cat "/sys/fs/cgroup/pids$(cg_of pids)/pids.max" 2>&1)
else
	mem=$(cat "/sys/fs/cgroup$(cg_of memory)/memory.max" 2>&1)
	pids=$(cat "/sys/fs/cgroup$(cg_of pids)/pids.max" 2>&1)
fi
expect_eq "--memory and --pids-limit applied (cgroup files of its process)" "67108864 50" "$mem $pids"
expect_match "its cgroup lives below --cgroup-parent" "^$CGP/" "$(cg_of pids)"
# podman update hands the runtime `update --resources FILE` (runc's verb): the cgroup changes.
out=$(P update --memory 32m --cpu-quota 30000 --cpu-period 60000 "$cid" 2>&1); rc=$?
if [ -d /sys/fs/cgroup/memory ]; then
	now="$(cat "/sys/fs/cgroup/memory$(cg_of memory)/memory.limit_in_bytes" 2>&1) $(cat "/sys/fs/cgroup/cpu$(cg_of cpu)/cpu.cfs_quota_us" "/sys/fs/cgroup/cpu$(cg_of cpu)/cpu.cfs_period_us" 2>&1 | xargs)"
else
	now="$(cat "/sys/fs/cgroup$(cg_of memory)/memory.max" 2>&1) $(cat "/sys/fs/cgroup$(cg_of cpu)/cpu.max" 2>&1)"
fi
expect_eq "podman update --memory --cpu-quota --cpu-period reaches its cgroup" "0 33554432 30000 60000" "$rc $now"
[ "$rc" = 0 ] || echo "    $out" | head -3
check "pause" P pause "$cid"
expect_match "ps -a shows it paused" "^${cid:0:12} +Paused" "$(P ps -a --format '{{.ID}} {{.Status}}' 2>&1)"
if [ -d /sys/fs/cgroup/freezer ]; then
	frozen=$(cat "/sys/fs/cgroup/freezer$(cg_of freezer)/freezer.state" 2>&1)
else
	frozen=$(grep -q '^frozen 1' "/sys/fs/cgroup$(cg_of x)/cgroup.events" 2>&1 && echo FROZEN)
fi
expect_eq "its cgroup is frozen" FROZEN "$frozen"
check "unpause" P unpause "$cid"
expect_match "ps shows it up again" "^${cid:0:12} +Up" "$(P ps --format '{{.ID}} {{.Status}}' 2>&1)"
check "stop" P stop -t 1 "$cid"
expect_match "ps -a shows it exited" "Exited" "$(P ps -a --format '{{.ID}} {{.Status}}' 2>&1)"
check "rm" P rm "$cid"
expect_eq "ps -a is empty" "" "$(P ps -a -q 2>&1)"

# --- nothing left behind ------------------------------------------------------------------------
check "rmi" P rmi "$IMG"
expect_eq "no conmon of ours left" "" "$(pgrep -f "conmon.*$TMP" 2>/dev/null)"
find /sys/fs/cgroup -mindepth 2 -maxdepth 2 -type d -name "$NAME" 2>/dev/null |
	while read -r d; do find "$d" -depth -type d -exec rmdir {} + 2>/dev/null; done
expect_eq "no mount below the test's directory left" "" "$(grep " $TMP" /proc/self/mountinfo)"
cgs=$(find /sys/fs/cgroup -mindepth 2 -maxdepth 2 -type d -name "$NAME" 2>/dev/null)
expect_eq "podman's cgroups were empty and are gone" "" "$cgs"
expect_eq "podman's host-wide state untouched" "$podman_before" "$(podman_host_state)"
expect_eq "host_snapshot unchanged" "$snap_before" "$(host_snapshot)"
finish
