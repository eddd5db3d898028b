#!/bin/sh
# Builds the default images into $SBX_IMAGES (default /var/lib/sbx/images).
#   rootfs/build-images.sh [--force] [NAME...]     (NAME: host, busybox; default both)
#   host    - the host's /usr (and /bin, /lib*, /sbin through it) read-only, a generated /etc
#   busybox - Debian's busybox-static with its applet links
# An image is a symlink <name> -> .<name>.XXXXXX, a tree holding rootfs/, an optional
# sbx-image.json ({"readonlyBinds": [...]}), .stamp (its inputs) and .lock; so
# $SBX_IMAGES/<name>/rootfs is the image's root, as it always was.
#
# Idempotent: an image is rebuilt only when its inputs changed (--force: always), into a new tree,
# and switched in with one rename of a new symlink over <name>. A sandbox starting meanwhile gets
# the old tree or the new one, each whole; it resolves the link once and holds a shared flock on
# its tree's .lock while it runs (runtime/lib/container.c, hold_built_image()), so running
# sandboxes keep their tree. Every run removes the trees no link names and no sandbox holds.
# Builders take $SBX_IMAGES/.build.lock, so two of them never interleave.
set -eu
IMAGES=${SBX_IMAGES:-/var/lib/sbx/images}
here=$(cd "$(dirname "$0")" && pwd)
FORCE=0
[ "${1:-}" = --force ] && { FORCE=1; shift; }
NAMES=${*:-host busybox}
for n in $NAMES; do
	case $n in host|busybox) ;; *) echo "rootfs: unknown image $n (host, busybox)" >&2; exit 2 ;; esac
done

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

new_tree() { # NAME: a new, empty tree for NAME (mode 700 until it is complete)
	mktemp -d "$IMAGES/.$1.XXXXXX"
}

install_image() { # NAME TREE STAMP: completes TREE and makes <NAME> point at it
	echo "$3" >"$2/.stamp"
	: >"$2/.lock"
	chmod 644 "$2/.lock"
	chmod 755 "$2"
	link=$IMAGES/.$1.link.$$
	ln -s "${2##*/}" "$link"
	if [ -d "$IMAGES/$1" ] && [ ! -L "$IMAGES/$1" ]; then
		# A directory from an older builder cannot be replaced by a rename: moved aside (this
		# once, <name> is missing between the two renames) and removed below like any old tree.
		mv "$IMAGES/$1" "$IMAGES/.$1.legacy$$"
	fi
	mv -T "$link" "$IMAGES/$1"
	echo "rootfs: image $1 ready in $IMAGES/$1 -> ${2##*/}"
}

remove_unused() { # NAME: removes NAME's trees that the link does not name and no sandbox holds
	cur=$(readlink "$IMAGES/$1" 2>/dev/null || true)
	for d in "$IMAGES"/."$1".*; do
		[ -d "$d" ] && [ ! -L "$d" ] || continue
		[ "${d##*/}" != "$cur" ] || continue
		# Without waiting: a tree that a sandbox holds stays for a later run. .lock is unlinked
		# first, under the exclusive lock: a sandbox that opened it meanwhile finds it unlinked
		# once it gets its shared lock, and follows the (already switched) link again.
		if flock -xn "$d/.lock" rm -f "$d/.lock"; then
			rm -rf "$d"
			echo "rootfs: removed unused tree ${d##*/}"
		fi
	done
	# Links a killed builder left before its rename (none is in use: the builder lock is ours).
	for l in "$IMAGES"/."$1".link.*; do
		[ -L "$l" ] && rm -f "$l"
	done
	return 0
}

stamp_of() { # inputs that decide whether an image must be rebuilt
	{ cat "$here/build-images.sh"; echo "$UBASE $GBASE"; shift; for f in "$@"; do ls -l --time-style=+%s "$f" 2>/dev/null; done; } | cksum
}

needs_build() { # NAME STAMP
	[ "$FORCE" = 1 ] || [ "$(cat "$IMAGES/$1/.stamp" 2>/dev/null)" != "$2" ]
}

build_host() {
	stamp=$(stamp_of host /usr/bin)
	needs_build host "$stamp" || return 0
	tmp=$(new_tree host)
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
	install_image host "$tmp" "$stamp"
}

build_busybox() {
	BB=/bin/busybox
	[ -x "$BB" ] || { echo "rootfs: $BB missing (install busybox-static)" >&2; exit 1; }
	stamp=$(stamp_of busybox "$BB")
	needs_build busybox "$stamp" || return 0
	file "$BB" 2>/dev/null | grep -q 'statically linked' || ldd "$BB" 2>&1 | grep -q 'not a dynamic' ||
		{ echo "rootfs: $BB is not static (install busybox-static)" >&2; exit 1; }
	tmp=$(new_tree busybox)
	r=$tmp/rootfs
	mkdir -p "$r/bin" "$r/sbin" "$r/usr/bin" "$r/usr/sbin"
	cp "$BB" "$r/bin/busybox"
	for applet in $("$BB" --list-full); do
		[ -e "$r/$applet" ] || ln -s /bin/busybox "$r/$applet"
	done
	write_etc "$r" /bin/sh
	install_image busybox "$tmp" "$stamp"
}

mkdir -p "$IMAGES"
chmod 755 "$IMAGES"
# Bounded: a build takes seconds; a builder stuck for ten minutes is an error, not a wait.
exec 9>"$IMAGES/.build.lock"
flock -w 600 9 || { echo "rootfs: another build holds $IMAGES/.build.lock" >&2; exit 1; }
for n in $NAMES; do
	# A tree of a build killed half-way is unlinked and unheld: remove_unused takes it too.
	"build_$n"
	remove_unused "$n"
done
echo "rootfs: images up to date in $IMAGES ($NAMES)"
