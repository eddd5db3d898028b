#!/bin/bash
# OCI runtime CLI: create/start/state/kill/delete/exec by hand, the runtime-tools validation suite
# (an optional kit: SBX_OCI_KIT=DIR, see docs/oci.md) with a floor of tests that must stay clean,
# and a private containerd driving sbxrun through `ctr run --runc-binary`. Everything it starts it stops by pid; everything it
# creates lives under one temp dir.
. "$(dirname "$0")/../lib.sh"
require_root "oci" || finish

# The runtime-tools kit (oci-validate.sh + oci-validation-bin.tar.xz) is not part of the repo;
# .ci/run points at its copy. SBX_SHARED (its parent) is still understood.
KIT=${SBX_OCI_KIT:-${SBX_SHARED:+$SBX_SHARED/oci}}
TMP=$(mktemp -d /tmp/sbx-t-oci.XXXXXX)
ROOT=$TMP/state
S() { timeout 20 "$SBXRUN" --root "$ROOT" "$@"; }
CTRD_PID=
cleanup() {
	if [ -n "$CTRD_PID" ]; then
		kill "$CTRD_PID" 2>/dev/null
		for _ in $(seq 100); do kill -0 "$CTRD_PID" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$CTRD_PID" 2>/dev/null
	fi
	for r in "$ROOT" "$TMP/vroot"; do
		for id in $(ls "$r" 2>/dev/null); do "$SBXRUN" --root "$r" delete --force "$id" >/dev/null 2>&1; done
	done
	# Shims of our containerd exit once their tasks are gone; leftover ones are ours only if
	# their socket lives under $TMP.
	for p in $(pgrep -f "containerd-shim.*$TMP" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
	grep " $TMP" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
# Other sandboxes (other tests, apid) may come and go meanwhile: a leak is a new sbx cgroup
# that is empty, or one of our ids.
empty_sbx_cgroups() {
	find /sys/fs/cgroup -mindepth 2 -maxdepth 7 -type d \( -path '*/sbx/*' -o -name 'sbx-*' \) 2>/dev/null |
		while read -r d; do [ -s "$d/cgroup.procs" ] || echo "$d"; done | sort
}
before=$(empty_sbx_cgroups)

# --- a bundle: busybox rootfs + runc's default config, adjusted per check -----------------------
mkdir -p "$TMP/b"
cp -a "$SBX_IMAGES/busybox/rootfs" "$TMP/b/rootfs"
(cd "$TMP/b" && runc spec 2>/dev/null || crun spec 2>/dev/null)
setargs() { # ARGS as a JSON array
	python3 - "$TMP/b/config.json" "$1" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c['process']['args'] = json.loads(sys.argv[2])
c['process']['terminal'] = False
json.dump(c, open(sys.argv[1], 'w'))
EOF
}
state_of() { S state "$1" 2>/dev/null | sed -n 's/.*"status": "\([a-z]*\)".*/\1/p'; }

# cgroupsPath in systemd's slice:prefix:name form is refused, before anything is made.
cp "$TMP/b/config.json" "$TMP/config.saved"
python3 - "$TMP/b/config.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c['linux']['cgroupsPath'] = 'system.slice:sbx:cbad'
c['process']['args'] = ['true']
c['process']['terminal'] = False
json.dump(c, open(sys.argv[1], 'w'))
EOF
out=$(S run --bundle "$TMP/b" cbad 2>&1); rc=$?
expect_eq "systemd-form cgroupsPath: exit 125, said so, nothing made" "125 yes none" \
	"$rc $(printf '%s' "$out" | grep -q 'systemd form' && echo yes) $(ls "$ROOT" 2>/dev/null | grep -x cbad || find /sys/fs/cgroup -maxdepth 6 -name cbad | grep . || echo none)"
cp "$TMP/config.saved" "$TMP/b/config.json"

setargs '["sh","-c","echo started > /dev/shm/x; sleep 30"]'
check "create returns" S create --bundle "$TMP/b" --pid-file "$TMP/pid" c1
expect_eq "state after create" created "$(state_of c1)"
expect_eq "pid file names the created process" "$(cat "$TMP/pid" 2>/dev/null)" \
	"$(S state c1 | sed -n 's/.*"pid": \([0-9]*\).*/\1/p')"
# ". .." (ls -a of the empty dir): a wrong pid or a missing path must not read as "empty".
expect_eq "create stops before the program runs" ". .." \
	"$(ls -a /proc/"$(cat "$TMP/pid")"/root/dev/shm/ 2>&1 | xargs)"
expect_eq "delete of a created sandbox fails without --force" 1 "$(status S delete c1)"
check "start" S start c1
expect_eq "state after start" running "$(state_of c1)"
expect_eq "start twice fails" 1 "$(status S start c1)"
expect_eq "exec CMD passes output and status" "hi 7" \
	"$( (S exec c1 sh -c 'echo hi; exit 7'; echo $?) 2>&1 | tr '\n' ' ' | sed 's/ $//')"
expect_eq "exec joins the sandbox's pid namespace" \
	"$(readlink /proc/"$(cat "$TMP/pid")"/ns/pid)" "$(S exec c1 readlink /proc/self/ns/pid 2>&1)"
cat >"$TMP/p.json" <<'EOF'
{"args":["sleep","20"],"cwd":"/","env":["PATH=/bin"],"user":{"uid":0,"gid":0}}
EOF
check "exec --process --detach --pid-file" S exec --process "$TMP/p.json" --detach --pid-file "$TMP/epid" c1
expect_match "ps --format json lists both processes" "\[[0-9]+,[0-9]+\]" "$(S ps --format json c1 2>&1)"
check "kill KILL" S kill c1 9
for _ in $(seq 50); do [ "$(state_of c1)" = stopped ] && break; sleep 0.1; done
expect_eq "state after kill" stopped "$(state_of c1)"
check "delete a stopped sandbox" S delete c1
expect_eq "kill in created state" stopped "$(S create --bundle "$TMP/b" c2 && S kill c2 KILL &&
	for _ in $(seq 50); do [ "$(state_of c2)" = stopped ] && break; sleep 0.1; done; state_of c2)"
check "delete after kill in created state" S delete c2
check "delete --force of an unknown id succeeds (runc semantics)" S delete --force nosuch
expect_match "features JSON" '"ociVersionMax"' "$(S features)"

# hooks: poststart failure warns, start still succeeds; prestart sees the state on stdin
cat >"$TMP/hook.sh" <<EOF
#!/bin/sh
cat > $TMP/hook-\$1.json
exit \${2:-0}
EOF
chmod +x "$TMP/hook.sh"
python3 - "$TMP/b/config.json" "$TMP/hook.sh" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
h = sys.argv[2]
c['hooks'] = {'prestart': [{'path': h, 'args': [h, 'prestart']}],
              'poststart': [{'path': h, 'args': [h, 'poststart', '3']}],
              'poststop': [{'path': h, 'args': [h, 'poststop']}]}
c['process']['args'] = ['true']
json.dump(c, open(sys.argv[1], 'w'))
EOF
check "create with hooks" S create --bundle "$TMP/b" c3
expect_match "prestart hook got the state" '"id": ?"c3"' "$(cat "$TMP/hook-prestart.json" 2>/dev/null)"
expect_match "a failing poststart hook only warns" "warning.*poststart" "$(S start c3 2>&1; echo rc=$?)"
for _ in $(seq 50); do [ "$(state_of c3)" = stopped ] && break; sleep 0.1; done
check "delete runs poststop" S delete c3
expect_match "poststop hook got the state" '"status": ?"stopped"' "$(cat "$TMP/hook-poststop.json" 2>/dev/null)"

# terminal + --console-socket: the pty master arrives over SCM_RIGHTS and carries the output
python3 - "$TMP/b/config.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c.pop('hooks', None)
c['process']['args'] = ['sh', '-c', 'tty; echo from-tty']
c['process']['terminal'] = True
json.dump(c, open(sys.argv[1], 'w'))
EOF
out=$(timeout 30 python3 - "$SBXRUN" "$ROOT" "$TMP" <<'EOF' 2>&1
import array, os, socket, subprocess, sys, time
sbx, root, tmp = sys.argv[1:4]
S = [sbx, '--root', root]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(tmp + '/console.sock'); srv.listen(1); srv.settimeout(10)
p = subprocess.Popen(S + ['create', '--bundle', tmp + '/b', '--console-socket', tmp + '/console.sock', 'tty1'])
conn, _ = srv.accept()
_, anc, _, _ = conn.recvmsg(1, socket.CMSG_SPACE(4))
fds = array.array('i'); fds.frombytes(anc[0][2][:4])
assert p.wait(timeout=10) == 0 and subprocess.call(S + ['start', 'tty1']) == 0
out = b''
deadline = time.time() + 5
while b'from-tty' not in out and time.time() < deadline:
    try:
        out += os.read(fds[0], 4096)
    except OSError:
        break
subprocess.call(S + ['delete', '--force', 'tty1'])
print(out.decode().replace('\r', '').replace('\n', ' ').strip())
EOF
)
expect_match "terminal over --console-socket" "^/dev/pts/[0-9]+ from-tty$" "$out"

# --- runtime-tools validation suite -----------------------------------------------------------
# Tests that are clean for sbxrun on a hybrid cgroup host; a regression in any of them fails.
# Not in the floor: poststart. It checks that the process's own write lands before the hook's,
# which no runtime can guarantee without waiting for the process (it passes most runs, fails
# about one in six; crun fails it on this host too).
FLOOR="config_updates_without_affect create default delete delete_only_create_resources
hooks_stdin hostname kill kill_no_effect killsig linux_cgroups_cpus linux_cgroups_devices
linux_cgroups_relative_cpus linux_cgroups_relative_devices linux_devices linux_masked_paths
linux_mount_label linux_ns_itype linux_ns_nopath linux_ns_path linux_ns_path_type
linux_process_apparmor_profile linux_readonly_paths linux_rootfs_propagation linux_seccomp
linux_sysctl linux_uid_mappings mounts poststop poststop_fail prestart_fail process
process_capabilities_fail process_oom_score_adj process_rlimits_fail process_user
root_readonly_true state"
if [ -z "$KIT" ] || [ ! -r "$KIT/oci-validation-bin.tar.xz" ] || [ ! -x "$KIT/oci-validate.sh" ]; then
	skip "runtime-tools validation" "no OCI runtime-tools kit${KIT:+ in $KIT}: set SBX_OCI_KIT=DIR (oci-validate.sh + oci-validation-bin.tar.xz, docs/oci.md) to run it"
else
	tar -xJf "$KIT/oci-validation-bin.tar.xz" -C "$TMP"
	# Its own state root, so whatever the suite leaves is ours to find and remove.
	printf '#!/bin/sh\nexec %s --root %s "$@"\n' "$SBXRUN" "$TMP/vroot" >"$TMP/sbxrun-v"
	chmod +x "$TMP/sbxrun-v"
	timeout 600 "$KIT/oci-validate.sh" -o "$TMP/vout" "$TMP/oci-validation" "$TMP/sbxrun-v" \
		>"$TMP/validate.log" 2>&1
	sed 's/^/    /' "$TMP/validate.log"
	for id in $(ls "$TMP/vroot" 2>/dev/null); do "$SBXRUN" --root "$TMP/vroot" delete --force "$id" >/dev/null 2>&1; done
	for t in $FLOOR; do
		st=$(awk -v t="$t" '$1 == t {print $5}' "$TMP/validate.log")
		case $st in ok*) ok "validation: $t";; *) not_ok "validation: $t ($st)";; esac
	done
fi

# --- containerd: a private instance driving sbxrun ---------------------------------------------
if ! command -v containerd >/dev/null || ! command -v ctr >/dev/null; then
	skip "containerd" "containerd/ctr not installed (scripts/install-deps.sh)"
else
	D=$TMP/ctrd
	mkdir -p "$D/rootfs"
	cp -a "$SBX_IMAGES/busybox/rootfs/." "$D/rootfs/"
	cat >"$D/config.toml" <<EOF
version = 2
root = "$D/root"
state = "$D/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$D/c.sock"
[ttrpc]
  address = "$D/c.sock.ttrpc"
[debug]
  address = "$D/d.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$D/opt"
EOF
	containerd --config "$D/config.toml" >"$D/log" 2>&1 &
	CTRD_PID=$!
	for _ in $(seq 100); do [ -S "$D/c.sock" ] && break; sleep 0.1; done
	C() { timeout 30 ctr --address "$D/c.sock" "$@"; }
	RB=(--runc-binary "$SBXRUN" --rootfs "$D/rootfs")
	out=$(C run --rm "${RB[@]}" ct1 sh -c 'echo hello from ctr; exit 5' 2>&1); rc=$?
	expect_eq "ctr run: output passes through" "hello from ctr" "$out"
	expect_eq "ctr run: exit status passes through" 5 "$rc"
	check "ctr run -d" C run -d "${RB[@]}" ct2 sleep 100
	check "ctr task pause" C task pause ct2
	expect_match "task is paused" "ct2 +[0-9]+ +PAUSED" "$(C task ls)"
	check "ctr task resume" C task resume ct2
	expect_match "task is running" "ct2 +[0-9]+ +RUNNING" "$(C task ls)"
	expect_eq "ctr task exec" "in-exec 3" \
		"$( (C task exec --exec-id e1 ct2 sh -c 'echo in-exec; exit 3'; echo $?) 2>&1 | tr '\n' ' ' | sed 's/ $//')"
	check "ctr task kill" C task kill -s SIGKILL ct2
	for _ in $(seq 50); do C task ls | grep -Eq "ct2 +[0-9]+ +STOPPED" && break; sleep 0.1; done
	expect_match "task is stopped" "ct2 +[0-9]+ +STOPPED" "$(C task ls)"
	check "ctr task delete" C task delete ct2
	check "ctr container delete" C container delete ct2
	expect_eq "no sbxrun state left" "" "$(ls /run/containerd/runc/default 2>/dev/null | grep -E '^ct[12]$')"
	kill "$CTRD_PID"
	for _ in $(seq 100); do kill -0 "$CTRD_PID" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$CTRD_PID" 2>/dev/null && not_ok "containerd stops on SIGTERM" || ok "containerd stops on SIGTERM"
	CTRD_PID=
	expect_eq "no containerd cgroups left" "" \
		"$(find /sys/fs/cgroup -mindepth 2 -maxdepth 3 -type d -path '*/default/ct[12]' 2>/dev/null)"
fi

cleanup
trap - EXIT
expect_eq "no empty sbx cgroup left behind" "$before" "$(empty_sbx_cgroups)"
expect_eq "no mounts left behind" "" "$(grep -c "$TMP" /proc/self/mountinfo | grep -v '^0$')"
finish
