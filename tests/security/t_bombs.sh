#!/bin/bash
# Resource bombs through the real sbxrun (issue 17): each one stays inside its sandbox, ends the
# way named here, and afterwards the host is as it was (no leaked mount, cgroup, link or state)
# and a new sandbox still starts. Every bomb is bounded (counts, --timeout, the sandbox's own
# limits), so a broken limit ends the test instead of the host.
#
# Elsewhere, not repeated: the default /tmp (256 MiB) and writable-layer (1 GiB) bounds and
# --disk (tests/integration/t_run.sh "... is bounded by default"), the memory and pids limits of
# each cgroup mode (t_cgroup.sh), /tmp in API sandboxes (tests/api/t_apid.sh).
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
require_root t_bombs || finish
[ -x "$SBXRUN" ] && [ -x "$PROBE" ] || { skip t_bombs "build/bin/sbxrun or sbx-probe not built"; finish; }
[ -d "$SBX_IMAGES/busybox" ] || { skip t_bombs "no busybox image (make rootfs)"; finish; }
TAG=tbomb$$
before=$(host_snapshot | grep -F "$TAG")
tmp=$(mktemp -d /tmp/sbx-t-bombs.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
R() { timeout -k 5 180 "$SBXRUN" run --id "$TAG-$RANDOM$RANDOM" --image busybox \
	--bind "$PROBE:/sbx-probe:ro" "$@"; }
# still_serving NAME: a new sandbox starts and runs after the bomb named NAME
still_serving() { expect_eq "after $1: a new sandbox still starts" "alive" "$(R -- echo alive 2>&1)"; }

# --- fork bomb: the default pids limit (512) stops it; EAGAIN inside, never on the host.
v=$(R --timeout 60 -- /sbx-probe forkbomb 2000 2>&1 | xargs)
n=$(printf '%s' "$v" | sed -n 's/.*forked \([0-9]*\) of.*/\1/p')
expect_match "fork bomb: stopped by the default pids limit with EAGAIN" 'first_error EAGAIN' "$v"
[ -n "$n" ] && [ "$n" -lt 512 ] && ok "fork bomb: fewer than 512 processes ($n)" || not_ok "fork bomb: fewer than 512 processes ($v)"
# A shell's own fork bomb, as typed: held at the limit until --timeout ends it (124).
expect_eq "shell fork bomb (:(){ :|:& };:) ends at --timeout, held by the pids limit" 124 \
	"$(status R --timeout 5 -- sh -c 'f() { f | f & }; f; sleep 60')"
still_serving "the fork bombs"

# --- memory hog: OOM inside the sandbox only; sbxrun says so.
exec 9>"$tmp/st"
v=$(R --memory 64M --json-status-fd 9 -- /sbx-probe memhog 512 2>"$tmp/err" | tail -1)
exec 9>&-
expect_match "memory hog (--memory 64M): killed before 512 MB" '^memhog: [0-9]+ MB$' "$v"
expect_match "... the OOM is reported (exit 137, oom true)" '"exit-code":137.*"oom":true' "$(tail -1 "$tmp/st")"
expect_match "... and sbxrun says so" 'killed for exceeding its memory limit \(OOM\)' "$(cat "$tmp/err")"
still_serving "the memory hog"

# --- filling the scratch file systems at once (/tmp, /dev/shm and the writable layer), without
# and with --memory: each stops at its own bound with ENOSPC (tmpfs pages are host RAM; the
# defaults bound them even without --memory, SECURITY.md). With --memory 128M the tmpfs pages
# count against the sandbox's memory: the writer is stopped by ENOSPC or, at the memory limit,
# by the OOM killer; either way the host keeps its RAM.
FILL='for p in /tmp/f /dev/shm/f /home/sandbox/f; do
	e=$(dd if=/dev/zero of=$p bs=1048576 count=1200 2>&1 >/dev/null) && r=ok ||
		case $e in *"No space left"*) r=ENOSPC ;; *) r="error: $e" ;; esac
	echo "$p $r $(($(stat -c %s $p) / 1048576))"
done'
expect_eq "filling /tmp, /dev/shm and the writable layer: each stops at its bound" \
	"/tmp/f ENOSPC 256 /dev/shm/f ENOSPC 64 /home/sandbox/f ENOSPC 1024" "$(R -- sh -c "$FILL" 2>&1 | xargs)"
v=$(R --memory 128M -- sh -c "$FILL" 2>&1; echo "rc=$?")
expect_match "... with --memory 128M: stopped by ENOSPC or the OOM killer before its bounds" \
	'rc=137|/home/sandbox/f (ENOSPC|error: .*)' "$(echo $v)"
still_serving "filling the disks"

# --- inode exhaustion: empty files cost no blocks, only inodes and dentries (host kernel
# memory, about 1 KiB each, and no memory limit by default). Every tmpfs sbx mounts with a size
# also gets an inode bound, one per 4 KiB of its size: /tmp (256 MiB) 65536, the writable layer
# (1 GiB) 262144. The loop ends with ENOSPC there, not in the host's memory.
# (printf, not ":": a failed redirection on a special builtin ends a POSIX shell.)
INODES='i=0; while [ $i -lt $2 ] && printf "" 2>/dev/null > $1/f$i; do i=$((i + 1)); done
e=$(printf "" 2>&1 > $1/last); case $e in *"No space left"*) echo "ENOSPC after $i" ;; *) echo "no bound after $i: $e" ;; esac'
v=$(R --timeout 150 -- sh -c "$INODES" sh /tmp 100000 2>&1)
expect_match "inode exhaustion in /tmp: ENOSPC at its bound (65536 inodes)" '^ENOSPC after 655[0-9][0-9]$' "$v"
v=$(R --timeout 150 -- sh -c "$INODES" sh /home/sandbox 300000 2>&1)
expect_match "inode exhaustion in the writable layer: ENOSPC at its bound (262144 inodes)" '^ENOSPC after 262[01][0-9][0-9]$' "$v"
v=$(R --timeout 150 --tmpfs /scratch:8M -- sh -c "$INODES" sh /scratch 100000 2>&1)
expect_match "inode exhaustion in --tmpfs /scratch:8M: ENOSPC at its bound (2048 inodes)" '^ENOSPC after 204[0-9]$' "$v"
still_serving "inode exhaustion"

# --- fd exhaustion: EMFILE at the sandbox's RLIMIT_NOFILE, never ENFILE (the host's table).
v=$(R -- /sbx-probe fdbomb 2>&1)
expect_match "fd exhaustion: EMFILE at RLIMIT_NOFILE" '^fdbomb: opened [0-9]+ then EMFILE' "$v"
v=$(R --rlimit NOFILE=64 -- /sbx-probe fdbomb 2>&1)
expect_match "... with --rlimit NOFILE=64: EMFILE after 61 (0-2 are stdio)" '^fdbomb: opened 61 then EMFILE' "$v"
still_serving "fd exhaustion"

# --- a huge argv and environment pass through whole. One string may have 128 KiB at most
# (MAX_ARG_STRLEN) and all of them together a quarter of the stack limit: these are near both,
# and what the kernel refuses, it refuses to sbxrun's caller already.
big=$(head -c 120000 /dev/zero | tr '\0' x)
expect_eq "8 arguments of 120 KB (960 KB) pass through whole" "960000" \
	"$(R -- sh -c 'n=0; for a; do n=$((n + ${#a})); done; echo $n' sh "$big" "$big" "$big" "$big" "$big" "$big" "$big" "$big" 2>&1)"
expect_eq "a 120 KB environment variable passes through whole" 120000 "$(R --env "BIG=$big" -- sh -c 'echo ${#BIG}' 2>&1)"
args=$(seq 1 50000 | xargs)
expect_eq "50,000 arguments pass through" 50000 "$(R -- sh -c 'echo $#' sh $args 2>&1)"
still_serving "huge argv/env"

# --- output flood: 256 MiB on stdout and stderr arrive whole; nothing buffers it in sbxrun.
v=$(R -- sh -c 'head -c 268435456 /dev/zero; head -c 1048576 /dev/zero >&2' 2>"$tmp/err" | wc -c)
expect_eq "output flood: 256 MiB of stdout arrive whole" 268435456 "$v"
expect_eq "... and 1 MiB of stderr" 1048576 "$(wc -c <"$tmp/err")"
# A reader that goes away: the workload gets EPIPE/SIGPIPE, sbxrun ends (no hang).
v=$(R -- sh -c 'yes' 2>/dev/null | head -c 10 | wc -c)
expect_eq "output flood into a reader that stops: sbxrun ends" 10 "$v"
still_serving "the output flood"

# --- a command that never reads stdin, fed without end: it ends, and with it sbxrun.
expect_eq "endless stdin never read: the workload's exit status comes back" "7" \
	"$(yes | R -- sh -c 'sleep 1; exit 7' >/dev/null 2>&1; echo ${PIPESTATUS[1]})"
expect_eq "... and --timeout still ends one that never exits (124)" "124" \
	"$(yes | R --timeout 2 -- sleep 100 >/dev/null 2>&1; echo ${PIPESTATUS[1]})"
still_serving "stdin never read"

after=$(host_snapshot | grep -F "$TAG")
expect_eq "nothing left on the host (mounts, cgroups, links, state)" "$before" "$after"
finish
