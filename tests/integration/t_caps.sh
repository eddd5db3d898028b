#!/bin/bash
# Capabilities through the real sbxrun, read back from /proc/self/status inside: uid 0 gets Docker's
# default set in Eff/Prm/Bnd with empty Inh/Amb (what Docker >= 23 does), any other uid gets
# nothing, --cap-add/--cap-drop adjust every set, unknown names are refused.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

require_root caps || finish
if [ ! -x "$SBXRUN" ] || [ ! -x "$PROBE" ]; then
	skip caps "build/bin/sbxrun or build/bin/sbx-probe not built"
	finish
fi
before=$(host_snapshot)
run() { timeout -k 5 60 "$SBXRUN" run --bind "$PROBE:/sbx-probe:ro" "$@"; }
field() { printf '%s\n' "$1" | sed -n "s/^$2: *//p" | head -1; }
hex() { printf '%016x' "$1"; }

# CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT
# MKNOD AUDIT_WRITE SETFCAP
DEFAULT=$((0xa80425fb))
NET_ADMIN=$((1 << 12)) CHOWN=$((1 << 0)) SYS_ADMIN=$((1 << 21))

check_sets() { # NAME OUTPUT EFF_PRM_BND INH_AMB
	local s
	for s in CapEff CapPrm CapBnd; do
		expect_eq "$1: $s" "$(hex "$3")" "$(field "$2" "$s")"
	done
	for s in CapInh CapAmb; do
		expect_eq "$1: $s" "$(hex "$4")" "$(field "$2" "$s")"
	done
	expect_eq "$1: NoNewPrivs" 1 "$(field "$2" NoNewPrivs)"
	expect_eq "$1: Seccomp filter mode" 2 "$(field "$2" Seccomp)"
}

o=$(run --user 0 -- /sbx-probe caps 2>&1)
expect_match "caps uid 0: runs as root inside" '^0\s' "$(field "$o" Uid)"
check_sets "caps uid 0 default" "$o" $DEFAULT 0
o=$(run -- /sbx-probe caps 2>&1)
expect_match "caps default user: uid 1000" '^1000\s' "$(field "$o" Uid)"
check_sets "caps uid 1000 default" "$o" 0 0
o=$(run --user 1000:1000 --seccomp strict -- /sbx-probe caps 2>&1)
check_sets "caps uid 1000 strict" "$o" 0 0

o=$(run --user 0 --cap-add NET_ADMIN -- /sbx-probe caps 2>&1)
check_sets "caps uid 0 --cap-add NET_ADMIN" "$o" $((DEFAULT | NET_ADMIN)) 0
o=$(run --user 0 --cap-add cap_sys_admin -- /sbx-probe caps 2>&1)
check_sets "caps uid 0 --cap-add cap_sys_admin (any case, CAP_ optional)" "$o" $((DEFAULT | SYS_ADMIN)) 0
o=$(run --user 0 --cap-drop CHOWN -- /sbx-probe caps 2>&1)
check_sets "caps uid 0 --cap-drop CHOWN" "$o" $((DEFAULT & ~CHOWN)) 0
o=$(run --user 0 --cap-drop CAP_CHOWN --cap-add CAP_NET_ADMIN -- /sbx-probe caps 2>&1)
check_sets "caps uid 0 add+drop" "$o" $(((DEFAULT & ~CHOWN) | NET_ADMIN)) 0
o=$(run --user 0 --cap-drop ALL -- /sbx-probe caps 2>&1)
check_sets "caps uid 0 --cap-drop ALL" "$o" 0 0

# Caps must really work, not just show up: CHOWN as root, and not without it.
o=$(run --user 0 --image host -- sh -c 'touch /tmp/f && chown 1000 /tmp/f && echo chowned' 2>&1)
expect_eq "caps uid 0: chown works with CAP_CHOWN" chowned "$o"
# The denial must come from chown itself (EPERM) on a file that exists: "it failed" alone would
# also pass when touch, or the sandbox, failed.
o=$(run --user 0 --cap-drop CHOWN --image host -- sh -c 'touch /tmp/f && echo touched && LC_ALL=C chown 1000 /tmp/f' 2>&1)
expect_eq "caps uid 0: chown denied after --cap-drop CHOWN" "touched
chown: changing ownership of '/tmp/f': Operation not permitted" "$o"

for bad in BOGUS CAP_FLY_TO_MOON; do
	o=$("$SBXRUN" run --cap-add "$bad" -- true 2>&1); rc=$?
	expect_eq "caps: --cap-add $bad exits 125" 125 "$rc"
	expect_match "caps: --cap-add $bad is named in the error" "$bad" "$o"
	o=$("$SBXRUN" run --cap-drop "$bad" -- true 2>&1); rc=$?
	expect_eq "caps: --cap-drop $bad exits 125" 125 "$rc"
	expect_match "caps: --cap-drop $bad is named in the error" "$bad" "$o"
done

# Only what appeared during this file counts: other sandboxes may come and go meanwhile.
leaked=$(comm -13 <(printf '%s\n' "$before") <(host_snapshot))
expect_eq "caps: nothing left behind on the host" "" "$leaked"
finish
