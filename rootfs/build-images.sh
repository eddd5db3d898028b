#!/bin/sh
# Builds the default images into $SBX_IMAGES (default /var/lib/sbx/images). Idempotent: an image is
# rebuilt into a temporary directory and swapped in only when its inputs changed.
#   host    - the host's /usr (and /bin, /lib*, /sbin through it) read-only, a generated /etc
#   busybox - Debian's busybox-static with its applet links
# Each image is <name>/rootfs plus an optional <name>/sbx-image.json ({"readonlyBinds": [...]}).
set -eu
IMAGES=${SBX_IMAGES:-/var/lib/sbx/images}
here=$(cd "$(dirname "$0")" && pwd)

# Sandbox uid/gid 0..65535 map to this host range (see runtime/lib/config.c sbx_host_id_base).
id_base() {
	b=$(awk -F: '$1 == "sbx" && $3 >= 65536 { print $2; exit }' "$1" 2>/dev/null || true)
	echo "${b:-1000000}"
}
UBASE=$(id_base /etc/subuid)
GBASE=$(id_base /etc/subgid)

write_etc() { # ROOT SHELL
	mkdir -p "$1/etc"
	cat >"$1/etc/passwd" <<EOP
root:x:0:0:root:/root:$2
sandbox:x:1000:1000:sandbox:/home/sandbox:$2
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOP
	cat >"$1/etc/group" <<EOG
root:x:0:
sandbox:x:1000:
nogroup:x:65534:
EOG
	printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$1/etc/hosts"
	printf '# sbx: sandboxes have no DNS unless networking is configured\n' >"$1/etc/resolv.conf"
	printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' >"$1/etc/nsswitch.conf"
	: >"$1/etc/shadow"; chmod 600 "$1/etc/shadow"
	mkdir -p "$1/home/sandbox" "$1/root" "$1/tmp" "$1/var/tmp" "$1/proc" "$1/sys" "$1/dev" "$1/run"
	chmod 1777 "$1/tmp" "$1/var/tmp"
	chmod 700 "$1/root"
	# The whole tree belongs to the sandbox's mapped root (as Docker's userns-remap does with its
	# layers): overlayfs copy-up must recreate parent directories with their owner, which fails
	# with EOVERFLOW for an owner the sandbox's user namespace cannot map (host root).
	chown -R -h "$UBASE:$GBASE" "$1"
	chown "$((UBASE + 1000)):$((GBASE + 1000))" "$1/home/sandbox"
}

install_image() { # NAME BUILDDIR
	dst=$IMAGES/$1
	if [ -d "$dst" ]; then
		old=$IMAGES/.$1.old.$$
		mv "$dst" "$old"
		mv "$2" "$dst"
		rm -rf "$old"
	else
		mv "$2" "$dst"
	fi
	echo "rootfs: image $1 ready in $dst"
}

stamp_of() { # inputs that decide whether an image must be rebuilt
	{ cat "$here/build-images.sh"; echo "$UBASE $GBASE"; shift; for f in "$@"; do ls -l --time-style=+%s "$f" 2>/dev/null; done; } | cksum
}

mkdir -p "$IMAGES"
chmod 755 "$IMAGES"

# --- host ---
stamp=$(stamp_of host /usr/bin)
if [ "$(cat "$IMAGES/host/.stamp" 2>/dev/null)" != "$stamp" ]; then
	tmp=$(mktemp -d "$IMAGES/.host.XXXXXX")
	r=$tmp/rootfs
	mkdir -p "$r/usr"
	binds='"/usr"'
	for d in bin sbin lib lib32 lib64 libx32; do
		if [ -L "/$d" ]; then
			ln -s "$(readlink "/$d")" "$r/$d"
		elif [ -d "/$d" ]; then
			mkdir -p "$r/$d"; binds="$binds, \"/$d\""
		fi
	done
	write_etc "$r" /bin/bash
	printf '{"readonlyBinds": [%s]}\n' "$binds" >"$tmp/sbx-image.json"
	echo "$stamp" >"$tmp/.stamp"
	chmod 755 "$tmp"
	install_image host "$tmp"
fi

# --- busybox ---
BB=/bin/busybox
[ -x "$BB" ] || { echo "rootfs: $BB missing (install busybox-static)" >&2; exit 1; }
stamp=$(stamp_of busybox "$BB")
if [ "$(cat "$IMAGES/busybox/.stamp" 2>/dev/null)" != "$stamp" ]; then
	file "$BB" 2>/dev/null | grep -q 'statically linked' || ldd "$BB" 2>&1 | grep -q 'not a dynamic' ||
		{ echo "rootfs: $BB is not static (install busybox-static)" >&2; exit 1; }
	tmp=$(mktemp -d "$IMAGES/.busybox.XXXXXX")
	r=$tmp/rootfs
	mkdir -p "$r/bin" "$r/sbin" "$r/usr/bin" "$r/usr/sbin"
	cp "$BB" "$r/bin/busybox"
	for applet in $("$BB" --list-full); do
		[ -e "$r/$applet" ] || ln -s /bin/busybox "$r/$applet"
	done
	write_etc "$r" /bin/sh
	echo "$stamp" >"$tmp/.stamp"
	chmod 755 "$tmp"
	install_image busybox "$tmp"
fi
echo "rootfs: images up to date in $IMAGES (host, busybox)"
