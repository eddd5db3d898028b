#!/bin/bash
# Runs one command as root in a throwaway QEMU VM whose kernel has only cgroup v2, so the
# cgroup v2 code paths run for real on hosts whose own layout is hybrid or v1 (any Debian 12
# host can run it: QEMU and the kernel come from packages, scripts/install-deps.sh --with-vm).
#
#   tests/vm/vm.sh [-t SECS] [-m MEM] -- CMD [ARG]...
#
# Inside: the Debian kernel from /boot (linux-image-amd64) booted with cgroup_no_v1=all; the
# host's root filesystem over 9p, read-only, under a throwaway tmpfs overlay; this checkout
# shared read-write at the same path (CMD runs there, with the caller's environment); no
# network device. CMD's stdout and stderr come back merged on stdout.
# Exit status: CMD's own; 124 when -t SECS passed; 125 when the VM could not run CMD (the
# guest console's last lines are printed on stderr).
# Environment: SBX_VM_KERNEL (a /boot/vmlinuz-KVER to use), SBX_VM_ACCEL (kvm|tcg),
# SBX_VM_CACHE (initramfs and kernel cache, default build/vm), SBX_VM_VERBOSE=1 (console).
set -euo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)

die() { echo "vm.sh: $*" >&2; exit 125; }

timeout=0 mem=2G
while getopts ":t:m:" o; do
	case $o in
	t) [[ $OPTARG =~ ^[0-9]+$ ]] || die "-t wants whole seconds, got '$OPTARG'"; timeout=$OPTARG ;;
	m) [[ $OPTARG =~ ^[1-9][0-9]*[MG]$ ]] || die "-m wants e.g. 2G or 1536M, got '$OPTARG'"; mem=$OPTARG ;;
	*) die "usage: tests/vm/vm.sh [-t SECS] [-m MEM] -- CMD [ARG]..." ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || die "usage: tests/vm/vm.sh [-t SECS] [-m MEM] -- CMD [ARG]..."

command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing (scripts/install-deps.sh --with-vm)"
for t in cpio modprobe xz; do command -v $t >/dev/null || die "$t is missing (scripts/install-deps.sh --with-vm)"; done
# The initramfs runs busybox before any library exists: it must be the static one.
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || die "/bin/busybox is not static (busybox-static)"

# A kernel that can mount 9p over virtio (Debian's -cloud flavour cannot).
kernel=${SBX_VM_KERNEL:-}
if [ -z "$kernel" ]; then
	for k in $(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -rV); do
		v=${k#/boot/vmlinuz-}
		grep -qE '^CONFIG_9P_FS=(y|m)' "/boot/config-$v" 2>/dev/null &&
			grep -qE '^CONFIG_NET_9P_VIRTIO=(y|m)' "/boot/config-$v" && [ -f "/lib/modules/$v/modules.dep" ] &&
			{ kernel=$k; break; }
	done
fi
[ -n "$kernel" ] && [ -r "$kernel" ] || die "no kernel with 9p in /boot (linux-image-amd64, scripts/install-deps.sh --with-vm)"
kver=${kernel##*/vmlinuz-}
[ -d "/lib/modules/$kver" ] || die "no /lib/modules/$kver for $kernel"

# Stage 1, /init of the initramfs: modules, the host root under an overlay, the API file
# systems, cgroup2 (the only hierarchy this kernel offers), the checkout and the control
# directory, then stage 2 as PID 1 of the new root.
read -r -d '' STAGE1 <<'EOF' || :
#!/bin/busybox sh
B=/bin/busybox
$B mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
die() { echo "sbx-vm-init: $*"; $B poweroff -f; }
while read -r m; do $B insmod "/modules/$m" || echo "sbx-vm-init: insmod $m failed"; done </modules.list
m9p() { # TAG DIR OPTIONS: the virtio devices may appear a moment after the modules load
	i=0
	until $B mount -t 9p -o "trans=virtio,version=9p2000.L,msize=512000,$3" "$1" "$2" 2>/dev/null; do
		i=$((i + 1)); [ $i -lt 300 ] || return 1; $B usleep 10000
	done
}
port=
for i in $($B seq 300); do
	for p in /sys/class/virtio-ports/*; do
		[ "$($B cat "$p/name" 2>/dev/null)" = sbx.out ] && port=/dev/${p##*/}
	done
	[ -n "$port" ] && break; $B usleep 10000
done
[ -n "$port" ] || die "no output port"
R=/newroot
$B mkdir -p /lower /rw $R
m9p hostroot /lower ro,cache=loose || die "cannot mount the host root"
$B mount -t tmpfs -o mode=0755 rw /rw
$B mkdir -p /rw/upper /rw/work
$B mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work root $R || die "overlay failed"
$B mount --move /dev $R/dev
$B mount --move /proc $R/proc
$B mount --move /sys $R/sys
$B mkdir -p $R/dev/pts $R/dev/shm $R/dev/mqueue
$B mount -t devpts -o newinstance,gid=5,mode=620,ptmxmode=666 devpts $R/dev/pts
$B mount -t tmpfs -o nosuid,nodev,mode=1777 shm $R/dev/shm
$B mount -t mqueue mqueue $R/dev/mqueue
$B ln -sfn /proc/self/fd $R/dev/fd
$B ln -sf "$port" $R/dev/sbx-out
$B mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 $R/sys/fs/cgroup || die "no cgroup2"
$B mount -t tmpfs -o nosuid,nodev,mode=1777 tmp $R/tmp
$B mount -t tmpfs -o nosuid,nodev,mode=0755 run $R/run
$B mkdir -p -m 1777 $R/run/lock
$B mkdir -p $R/run/sbx-vm
m9p ctl $R/run/sbx-vm cache=none || die "cannot mount the control directory"
read -r top <$R/run/sbx-vm/top
$B mkdir -p "$R$top"
m9p checkout "$R$top" cache=mmap || die "cannot mount the checkout at $top"
$B cp /bin/busybox $R/run/busybox
exec $B switch_root $R /run/busybox sh -c '
	/run/busybox hostname sbx-vm
	/run/busybox ip link set lo up
	/bin/bash /run/sbx-vm/cmd.sh </dev/null >/dev/sbx-out 2>&1
	echo $? >/run/sbx-vm/status.tmp && /run/busybox mv /run/sbx-vm/status.tmp /run/sbx-vm/status
	/run/busybox poweroff -f'
EOF
MODULES="virtio_pci 9pnet_virtio 9p overlay virtio_console"

cache=${SBX_VM_CACHE:-$TOP/build/vm}
mkdir -p "$cache"
key=$({ echo "$kver $MODULES"; printf '%s\n' "$STAGE1"; stat -Lc '%s %Y' /bin/busybox "/lib/modules/$kver/modules.dep"; } |
	sha256sum | cut -c1-12)
initrd=$cache/initrd-$kver-$key.cpio
if [ ! -s "$initrd" ]; then
	rm -f "$cache"/initrd-*.cpio
	d=$(mktemp -d /tmp/sbx-vm-initrd.XXXXXX)
	mkdir -p "$d"/{bin,dev,proc,sys,modules}
	cp /bin/busybox "$d/bin/"
	printf '%s\n' "$STAGE1" >"$d/init"; chmod 755 "$d/init"
	for m in $MODULES; do modprobe -S "$kver" --show-depends "$m" || die "no module $m for $kver"; done |
		awk '$1 == "insmod" && !seen[$2]++ { print $2 }' | while read -r ko; do
			m=${ko##*/}
			case $ko in
			*.xz) m=${m%.xz}; xz -dc "$ko" >"$d/modules/$m" ;;
			*.zst) m=${m%.zst}; zstd -qdc "$ko" >"$d/modules/$m" ;;
			*) cp "$ko" "$d/modules/$m" ;;
			esac
			echo "$m" >>"$d/modules.list"
		done
	(cd "$d" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$initrd.tmp" ||
		{ rm -rf "$d"; die "cpio failed"; }
	mv "$initrd.tmp" "$initrd"; rm -rf "$d"
fi

# Under TCG the firmware-side decompression of the bzImage costs about 3 s a boot: boot the
# uncompressed vmlinux (its xz payload, found by magic) through the PVH entry point instead.
boot=$kernel
if grep -q '^CONFIG_PVH=y' "/boot/config-$kver" 2>/dev/null; then
	vmlinux=$cache/vmlinux-$kver-$(stat -Lc '%s-%Y' "$kernel")
	if [ ! -s "$vmlinux" ]; then
		rm -f "$cache"/vmlinux-*
		off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$kernel" | head -1 | cut -d: -f1)
		if [ -n "$off" ]; then
			tail -c +$((off + 1)) "$kernel" | xz -dcq >"$vmlinux.tmp" 2>/dev/null || :
			if [ "$(head -c 4 "$vmlinux.tmp" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
				mv "$vmlinux.tmp" "$vmlinux"
			else
				rm -f "$vmlinux.tmp"
			fi
		fi
	fi
	[ -s "$vmlinux" ] && boot=$vmlinux
fi

# KVM when it can run a stock kernel (kvm_pvm, software KVM without VT-x, cannot at any
# useful speed), TCG otherwise.
accel=${SBX_VM_ACCEL:-}
if [ -z "$accel" ]; then
	accel=tcg
	if [ -r /dev/kvm ] && [ -w /dev/kvm ] && { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; } &&
		echo quit | timeout 20 qemu-system-x86_64 -M none -accel kvm -nodefaults -display none -monitor stdio >/dev/null 2>&1; then
		accel=kvm
	fi
fi
case $accel in
kvm) accel_args=(-accel kvm -cpu host) ;;
tcg) accel_args=(-accel tcg,thread=multi -cpu max) ;;
*) die "SBX_VM_ACCEL must be kvm or tcg" ;;
esac

run=$(mktemp -d /tmp/sbx-vm.XXXXXX)
qpid='' tpid=''
cleanup() {
	local rc=$?
	trap - EXIT
	[ -n "$qpid" ] && kill -KILL "$qpid" 2>/dev/null && wait "$qpid" 2>/dev/null
	[ -n "$tpid" ] && kill "$tpid" 2>/dev/null && wait "$tpid" 2>/dev/null
	rm -rf "$run"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir "$run/ctl"
printf '%s\n' "$TOP" >"$run/ctl/top"
{
	while read -r v; do
		case $v in PWD | OLDPWD | SHLVL | _ | HOSTNAME | SHELLOPTS | BASHOPTS | BASH_*) continue ;; esac
		printf 'export %s=%q\n' "$v" "${!v}"
	done < <(compgen -e)
	echo 'export SBX_IN_VM=1'
	printf 'cd -- %q || exit 125\n' "$TOP"
	printf 'exec'; printf ' %q' "$@"; printf '\n'
} >"$run/ctl/cmd.sh"
: >"$run/out"; : >"$run/console"

esc() { printf '%s' "${1//,/,,}"; } # qemu option values write ',' as ',,'
cmdline="console=ttyS0 quiet loglevel=4 panic=-1 systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all psi=1"
cmdline+=" mitigations=off tsc=reliable no_timer_check i8042.noaux i8042.nokbd"
# setpriv: if this script dies by SIGKILL, the kernel kills qemu with it.
setpriv --pdeathsig KILL -- qemu-system-x86_64 -nodefaults -no-user-config -display none -no-reboot \
	"${accel_args[@]}" -M q35 -smp "$(nproc)" -m "$mem" \
	-kernel "$(esc "$boot")" -initrd "$(esc "$initrd")" -append "$cmdline" -nic none \
	-chardev "file,id=con,path=$(esc "$run/console")" -serial chardev:con \
	-device virtio-serial-pci,id=vser \
	-chardev "file,id=out,path=$(esc "$run/out")" -device virtserialport,bus=vser.0,chardev=out,name=sbx.out \
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
	-virtfs "local,path=$(esc "$TOP"),mount_tag=checkout,security_model=none,multidevs=remap" \
	-virtfs "local,path=$(esc "$run/ctl"),mount_tag=ctl,security_model=none" \
	</dev/null 2>"$run/qemu.log" &
qpid=$!
tail -q -s 0.1 --pid="$qpid" -c +1 -f "$run/out" &
tpid=$!
[ "${SBX_VM_VERBOSE:-0}" = 1 ] && tail -q -s 0.1 --pid="$qpid" -f "$run/console" >&2 &

timed_out=0
if [ "$timeout" -gt 0 ]; then
	deadline=$((SECONDS + timeout))
	while kill -0 "$qpid" 2>/dev/null; do
		[ $SECONDS -lt $deadline ] || { timed_out=1; kill -TERM "$qpid"; break; }
		sleep 0.5
	done
fi
wait "$qpid" || :
qpid=''
wait "$tpid" 2>/dev/null || :
tpid=''
if [ -s "$run/ctl/status" ]; then
	read -r rc <"$run/ctl/status"
	[[ $rc =~ ^[0-9]+$ ]] || die "bad status from the guest: $rc"
	exit "$rc"
fi
if [ $timed_out = 1 ]; then
	echo "vm.sh: timed out after $timeout s; VM killed" >&2
	exit 124
fi
echo "vm.sh: the VM stopped before the command finished" >&2
tail -n 10 "$run/qemu.log" >&2
grep -v "^\[ *[0-9.]*\]  " "$run/console" | tail -n 30 >&2 # stack frames left out
exit 125
